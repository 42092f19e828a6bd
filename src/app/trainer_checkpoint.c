/* Checkpoints of a run: the snapshot handed to the background writer, and resuming from the
 * newest valid checkpoint (or a given file) exactly where it left off. */
#include "app.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

dp_status trainer_checkpoint(trainer *t, int64_t epoch, int64_t step_in_epoch, dp_error *err) {
    dp_app *app = t->app;
    /* every rank must hold the same model: BN statistics are per rank until averaged */
    dp_status st = trainer_average_bn(t, err);
    if (st == DP_OK) st = trainer_whole_momentum(t, err);
    if (st != DP_OK || app->dist.rank != 0) return dp_dist_check(&app->dist, st, err);
    dp_error werr = {0};
    if (dp_ckpt_writer_take_error(t->writer, &werr)) /* a failed earlier write: say, go on */
        fprintf(stderr, "dprune: warning: %s (the previous checkpoint is intact)\n", werr.msg);
    dp_train_state ts = {.phase = t->phase_index,
                         .round = t->phase_index,
                         .epoch = epoch,
                         .step_in_epoch = step_in_epoch,
                         .global_step = t->run_step,
                         .samples_in_epoch = step_in_epoch * t->tc->batch,
                         .lr = t->tc->lr,
                         .seed = (uint64_t)app->cfg.run.seed,
                         .ranks = app->dist.world,
                         .threads = app->threads};
    snprintf(ts.phase_name, sizeof ts.phase_name, "%s", t->phase);
    dp_ckpt_kv kv[DP_CKPT_MAX_KV];
    char mpi[128], summary[sizeof t->summary + 64];
    int nkv = dp_checkpoint_provenance(kv, 0, DP_CKPT_MAX_KV, app->cfg.hash, app->dist.world,
                                       app->threads, (uint64_t)app->cfg.run.seed);
    nkv = dp_ckpt_kv_add(kv, nkv, DP_CKPT_MAX_KV, "mpi", "%s",
                         dp_dist_library_version(mpi, sizeof mpi));
    nkv = dp_ckpt_kv_add(kv, nkv, DP_CKPT_MAX_KV, "config_dir", "%s", app->cfg.base_dir);
    /* the metrics file as it is now: a resume cuts it back here, so no line appears twice */
    snprintf(summary, sizeof summary, "{\"metrics_offset\":%ld%s%s}", dp_metrics_offset(t->metrics),
             t->summary[0] ? "," : "", t->summary);
    dp_checkpoint_src src = {.model = t->m,
                             .momentum = t->opt.momentum,
                             .momentum_started = t->opt.started,
                             .state = &ts,
                             .config_text = app->cfg_text,
                             .provenance = kv,
                             .n_provenance = nkv,
                             .prune_history = t->prune_history,
                             .prune_history_len = t->prune_history_len,
                             .metrics_json = summary,
                             .csgd_state = t->csgd ? t->csgd_state : NULL,
                             .csgd_state_len = t->csgd_state_len,
                             .cip_state = t->cip_state,
                             .cip_state_len = t->cip_state_len};
    st = dp_checkpoint_submit(t->writer, t->run_step, &src, NULL, err);
    return dp_dist_check(&app->dist, st, err);
}

dp_status trainer_resume(trainer *t, dp_model *m, dp_error *err) {
    dp_app *app = t->app;
    const dp_config *c = &app->cfg;
    char path[DP_PATH_MAX + 64] = "";
    bool automatic = app->resume_flag || !strcmp(c->checkpoint.resume, "auto");
    if (!automatic && !strcmp(c->checkpoint.resume, "none")) return DP_OK;
    dp_status st = DP_OK;
    if (app->dist.rank == 0) {
        if (automatic) {
            /* find it on rank 0 only: its warnings are printed once */
            dp_checkpoint probe;
            char warnings[4096] = "";
            st = dp_checkpoint_load_newest(&probe, c->run.dir, path, sizeof path, warnings,
                                           sizeof warnings, err);
            if (warnings[0]) fprintf(stderr, "dprune: warning: %s", warnings);
            if (st == DP_OK && path[0]) dp_checkpoint_free(&probe);
        } else {
            dp_config_resolve_path(c, c->checkpoint.resume, path, sizeof path);
        }
    }
    if ((st = dp_dist_check(&app->dist, st, err)) != DP_OK) return st;
    if ((st = dp_dist_bcast_bytes(&app->dist, path, sizeof path, 0, err)) != DP_OK) return st;
    if (!path[0]) {
        /* attempts killed before their first checkpoint left lines that this run repeats: a
         * fresh start in its own directory starts the metrics afresh too */
        if (app->dist.rank == 0) {
            fprintf(stderr, "resume: no checkpoint in %s, starting fresh\n", c->run.dir);
            char mpath[DP_PATH_MAX + 32];
            snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", c->run.dir);
            if (automatic && t->metrics) {
                dp_metrics_close(t->metrics);
                t->metrics = NULL;
                if (truncate(mpath, 0) != 0)
                    fprintf(stderr, "dprune: warning: cannot empty %s\n", mpath);
                st = trainer_open_metrics(t, err);
            }
        }
        return dp_dist_check(&app->dist, st, err);
    }
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    st = dp_checkpoint_load(&ck, path, err);
    if (st == DP_OK && strcmp(ck.model.arch, m->arch) != 0)
        st = dp_fail(err, DP_ERR_CHECKPOINT, "checkpoint %s holds a %s but %s asks for a %s", path,
                     ck.model.arch, c->path, m->arch);
    if (st == DP_OK && (!ck.has_state || !ck.momentum))
        st =
            dp_fail(err, DP_ERR_CHECKPOINT,
                    "checkpoint %s has no training state (an export?): it cannot be resumed", path);
    if ((st = dp_dist_check(&app->dist, st, err)) != DP_OK) {
        dp_checkpoint_free(&ck);
        return st;
    }
    /* the checkpoint's model (maybe pruned) replaces the configured one */
    st = trainer_replace_model(t, &ck.model, err);
    if (st == DP_OK) {
        dp_sgd_free(&t->opt);
        st = dp_sgd_init(&t->opt, t->m, &c->train, err);
    }
    if (st == DP_OK) {
        memcpy(t->opt.momentum, ck.momentum, sizeof(float) * t->m->n_param_floats);
        t->opt.started = ck.momentum_started;
        t->resume_state = ck.state;
        t->resuming = true;
        t->bn_identical = true; /* every rank read the same file */
        t->run_step = ck.state.global_step;
        /* inside a C-SGD phase: its clusters, for app_csgd_round to pick up */
        if (ck.csgd_state) {
            t->csgd_state = ck.csgd_state, t->csgd_state_len = ck.csgd_state_len;
            ck.csgd_state = NULL;
        }
        /* inside a CIP schedule: its step and mask, for app_cip_round */
        if (ck.cip_state) {
            t->cip_state = ck.cip_state, t->cip_state_len = ck.cip_state_len;
            ck.cip_state = NULL;
        }
        if (ck.prune_history_len) {
            t->prune_history = malloc(ck.prune_history_len);
            if (t->prune_history) {
                memcpy(t->prune_history, ck.prune_history, ck.prune_history_len);
                t->prune_history_len = ck.prune_history_len;
            }
        }
        /* {"metrics_offset":N,<summary>} */
        long offset = -1;
        const char *js = ck.metrics_json ? ck.metrics_json : "";
        if (sscanf(js, "{\"metrics_offset\":%ld", &offset) == 1) {
            const char *rest = strchr(js, ',');
            if (rest) {
                snprintf(t->summary, sizeof t->summary, "%s", rest + 1);
                size_t n = strlen(t->summary);
                if (n && t->summary[n - 1] == '}') t->summary[n - 1] = 0;
            }
        }
        if (app->dist.rank == 0) {
            char mpath[DP_PATH_MAX + 32];
            snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", c->run.dir);
            /* only a run continuing in its own directory has lines to cut back */
            if (automatic && offset >= 0 && truncate(mpath, offset) != 0)
                fprintf(stderr, "dprune: warning: cannot cut %s back to the checkpoint\n", mpath);
            fprintf(stderr, "resume: %s (%s, epoch %lld, step %lld in epoch, global step %lld)\n",
                    path, ck.state.phase_name, (long long)ck.state.epoch,
                    (long long)ck.state.step_in_epoch, (long long)ck.state.global_step);
            if (ck.state.ranks != app->dist.world)
                fprintf(stderr,
                        "resume: saved on %d ranks, now %d: the global batch is kept, but results "
                        "are no longer bitwise identical to an uninterrupted run\n",
                        ck.state.ranks, app->dist.world);
        }
    }
    dp_checkpoint_free(&ck);
    return dp_dist_check(&app->dist, st, err);
}
