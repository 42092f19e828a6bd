/* Subcommands on a config or a checkpoint: `dprune [--resume] CONF`, `summary`, `eval`, `export`.
 */
#include "app.h"
#include "latency.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int app_cmd_train(dp_app *app) {
    const dp_config *c = &app->cfg;
    dp_error err = {0};
    dp_app_data data;
    dp_model m;
    memset(&m, 0, sizeof m);
    trainer t;
    memset(&t, 0, sizeof t);
    dp_status st = dp_dist_check(&app->dist, app_open_data(c, &data, &err), &err);
    if (st == DP_OK) st = dp_dist_check(&app->dist, app_build_model(app, &data, &m, &err), &err);
    if (st == DP_OK) st = app_latency_precheck(app, &m, &err);
    if (st == DP_OK) st = trainer_init(&t, app, &data, &m, &err);
    if (st == DP_OK && app->dist.rank == 0)
        fprintf(stderr,
                "dprune %s: %s on %s, %d ranks x %d threads, OpenBLAS core %s, %lld params, "
                "%.1f MFLOPs/sample, %lld train / %lld val / %lld test images, gradient sum: "
                "%s\n",
                DPRUNE_VERSION, m.arch, c->data.dataset, app->dist.world, app->threads,
                dp_blas_corename(), (long long)dp_model_params(&m), dp_model_flops(&m) / 1e6,
                (long long)data.train.n, (long long)data.val.n, (long long)data.test.n,
                t.sync ? dp_grad_sync_route(t.sync) : "none (1 rank)");
    t.bn_l1 = c->prune.bn_l1;
    if (st == DP_OK) st = trainer_resume(&t, &m, &err);
    /* a run resumed in a fine-tuning phase has finished training (and the rounds before) */
    if (st == DP_OK && !(t.resuming && t.resume_state.phase > 0)) st = trainer_run(&t, &err);
    if (st == DP_OK && !t.stopped) st = app_prune(&t, &m, &err);
    if (st == DP_OK && t.stopped && app->dist.rank == 0)
        fprintf(stderr, "stopped on a signal; continue with: dprune --resume %s\n", c->path);
    /* a NaN loss is found on every rank at once (the loss is allreduced): report it once */
    if (st != DP_OK && err.code == DP_ERR_NUMERIC) st = dp_dist_check(&app->dist, st, &err);
    trainer_free(&t);
    dp_model_free(&m);
    app_close_data(&data);
    return st == DP_OK ? 0 : 1;
}

int app_cmd_eval(dp_app *app, const char *checkpoint_path) {
    dp_error err = {0};
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    dp_status st = dp_checkpoint_load(&ck, checkpoint_path, &err);
    if (st == DP_OK && !ck.config_text)
        st = dp_fail(&err, DP_ERR_CHECKPOINT, "checkpoint %s holds no config", checkpoint_path);
    if (st == DP_OK) {
        /* relative paths of the stored config resolve where the config file was */
        const char *dir = dp_ckpt_kv_get(ck.provenance, ck.n_provenance, "config_dir");
        st = dp_config_parse(&app->cfg, ck.config_text, checkpoint_path, dir ? dir : ".", &err);
    }
    if ((st = dp_dist_check(&app->dist, st, &err)) != DP_OK) {
        dp_checkpoint_free(&ck);
        return 1;
    }
    app_setup_threads(app);
    app->dist.watchdog_seconds = app->cfg.dist.watchdog_seconds;
    /* evaluation only: no run directory is written */
    snprintf(app->cfg.run.dir, sizeof app->cfg.run.dir, "/tmp/dprune-eval-%d", (int)getpid());
    app->cfg.checkpoint.every_epochs = 0;
    dp_app_data data;
    dp_model m = ck.model;
    memset(&ck.model, 0, sizeof ck.model);
    trainer t;
    memset(&t, 0, sizeof t);
    st = dp_dist_check(&app->dist, app_open_data(&app->cfg, &data, &err), &err);
    if (st == DP_OK) st = trainer_init(&t, app, &data, &m, &err);
    eval_result r = {0};
    if (st == DP_OK) st = trainer_evaluate(&t, &data.test, &r, &err);
    if (st == DP_OK && app->dist.rank == 0 && r.count > 0)
        printf("%s: %s, %lld params, %lld FLOPs: test top1 %.2f%%  top5 %.2f%%  loss %.4f  "
               "(%lld images)\n",
               checkpoint_path, m.arch, (long long)dp_model_params(&m),
               (long long)dp_model_flops(&m), 100.0 * r.top1 / r.count, 100.0 * r.top5 / r.count,
               r.loss_sum / r.count, (long long)r.count);
    trainer_free(&t);
    dp_model_free(&m);
    app_close_data(&data);
    dp_checkpoint_free(&ck);
    return st == DP_OK ? 0 : 1;
}

int app_cmd_export(const char *path, const char *out_path, dp_dtype dtype) {
    dp_error err = {0};
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    dp_model folded;
    memset(&folded, 0, sizeof folded);
    char out[DP_PATH_MAX + 32];
    if (out_path) {
        snprintf(out, sizeof out, "%s", out_path);
    } else { /* x.dpck -> x-export.dpck */
        snprintf(out, sizeof out, "%s", path);
        char *dot = strrchr(out, '.');
        if (dot && !strcmp(dot, ".dpck")) *dot = 0;
        strncat(out, "-export.dpck", sizeof out - strlen(out) - 1);
    }
    dp_status st = dp_checkpoint_load(&ck, path, &err);
    if (st == DP_OK) st = dp_model_fold_bn(&ck.model, &folded, &err);
    if (st == DP_OK) {
        int n = ck.n_provenance;
        n = dp_ckpt_kv_add(ck.provenance, n, DP_CKPT_MAX_KV, "exported_from", "%s", path);
        n = dp_ckpt_kv_add(ck.provenance, n, DP_CKPT_MAX_KV, "export", "BN folded, %s",
                           dtype == DP_DTYPE_F16    ? "fp16"
                           : dtype == DP_DTYPE_BF16 ? "bf16"
                                                    : "fp32");
        /* a deployable model: no optimizer or training state, the config for `dprune eval` */
        dp_checkpoint_src src = {.model = &folded,
                                 .config_text = ck.config_text,
                                 .provenance = ck.provenance,
                                 .n_provenance = n,
                                 .prune_history = ck.prune_history,
                                 .prune_history_len = ck.prune_history_len,
                                 .metrics_json = ck.metrics_json};
        dp_tensor_codec codec = {.dtype = dtype};
        st = dp_checkpoint_save(&src, out, &codec, &err);
    }
    if (st == DP_OK)
        printf("%s: %s, %lld params (%lld before BN folding) -> %s\n", path, folded.arch,
               (long long)dp_model_params(&folded), (long long)dp_model_params(&ck.model), out);
    else
        fprintf(stderr, "dprune: error: %s\n", err.msg);
    dp_model_free(&folded);
    dp_checkpoint_free(&ck);
    return st == DP_OK ? 0 : 1;
}

int app_cmd_summary(dp_app *app) {
    dp_error err = {0};
    dp_app_data d;
    dp_model m;
    memset(&m, 0, sizeof m);
    dp_status st = dp_dist_check(&app->dist, app_open_data(&app->cfg, &d, &err), &err);
    if (st == DP_OK) st = dp_dist_check(&app->dist, app_build_model(app, &d, &m, &err), &err);
    if (st == DP_OK && app->dist.rank == 0) {
        printf("%s, input %dx%dx%d, %d classes\n", m.arch, m.in_c, m.in_h, m.in_w, m.num_classes);
        dp_model_summary(&m, stdout);
    }
    dp_model_free(&m);
    app_close_data(&d);
    return st == DP_OK ? 0 : 1;
}
