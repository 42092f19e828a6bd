/* The training phase: epochs of data-parallel SGD steps with evaluation, progress lines on
 * stderr (rank 0) and JSON-lines metrics in the run directory. */
#include "app.h"
#include "dprune/nn.h"
#include "dprune/dist.h"
#include "dprune/optim.h"
#include "dprune/prune.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <jpeglib.h>
#include <libconfig.h>

/* backward hook: hand finished gradients to the bucketed allreduce */
static void on_node_backward_done(void *ctx, int node) {
    trainer *t = ctx;
    if (t->sync) dp_grad_sync_node_done(t->sync, node);
}

static void on_bn_allreduce(void *ctx, double *sums, int n, double *count) {
    trainer *t = ctx;
    dp_dist_bn_allreduce(&t->app->dist, sums, n, count);
}

dp_status trainer_open_metrics(trainer *t, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    dp_status st = app_make_run_dir(c->run.dir, err);
    char path[DP_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->run.dir);
    if (st == DP_OK) st = dp_metrics_open(&t->metrics, path, err);
    if (st != DP_OK) return st;
    char mpi[128], cfgpath[2 * DP_PATH_MAX];
    dp_json_escape(c->path, cfgpath, sizeof cfgpath);
    dp_metrics_write(
        t->metrics,
        "\"type\":\"provenance\",\"dprune\":\"%s\",\"commit\":\"%s\",\"config\":\"%s\","
        "\"config_hash\":\"%016llx\",\"openblas_core\":\"%s\",\"mpi\":\"%s\","
        "\"zlib\":\"%s\",\"libjpeg\":%d,\"libconfig\":\"%d.%d.%d\",\"ranks\":%d,"
        "\"threads\":%d,\"seed\":%lld,\"arch\":\"%s\",\"params\":%lld,\"flops\":%lld",
        DPRUNE_VERSION, DPRUNE_GIT_COMMIT, cfgpath, (unsigned long long)c->hash, dp_blas_corename(),
        dp_dist_library_version(mpi, sizeof mpi), zlibVersion(), JPEG_LIB_VERSION,
        LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION, t->app->dist.world,
        t->app->threads, (long long)c->run.seed, t->m->arch, (long long)dp_model_params(t->m),
        (long long)dp_model_flops(t->m));
    return DP_OK;
}

/* Every rank holds its own BN running statistics (batch statistics are per rank); averaging
 * them before evaluation makes every rank hold the same model. Skipped while they are known to
 * be identical already (after a broadcast, a resume, an earlier average with no training step
 * since, or always with sync-BN): that saves a collective, and averaging identical values in
 * float is not always exact. */
dp_status trainer_average_bn(trainer *t, dp_error *err) {
    int world = t->app->dist.world;
    if (world == 1 || t->m->n_buffer_floats == 0 || t->bn_identical) return DP_OK;
    dp_status st = dp_dist_sum_float(&t->app->dist, t->m->buffer_data, t->m->n_buffer_floats, err);
    for (size_t i = 0; i < t->m->n_buffer_floats; i++) t->m->buffer_data[i] /= (float)world;
    t->bn_identical = st == DP_OK;
    return st;
}

void trainer_bn_updated(trainer *t) {
    if (!t->app->cfg.dist.sync_bn) t->bn_identical = false; /* per-rank batch statistics */
}

dp_status trainer_evaluate(trainer *t, const dp_split *split, eval_result *r, dp_error *err) {
    memset(r, 0, sizeof *r);
    if (split->n == 0) return DP_OK;
    dp_status st = trainer_average_bn(t, err);
    if (st != DP_OK) return st;
    dp_loader_config lc = {.split = split,
                           .aug = &t->data->aug,
                           .train = false,
                           .shuffle = false,
                           .drop_last = false,
                           .prefetch = t->app->cfg.data.prefetch,
                           .global_batch = t->micro_global,
                           .rank = t->app->dist.rank,
                           .world = t->app->dist.world,
                           .seed = (uint64_t)t->app->cfg.run.seed};
    dp_loader *ld = NULL;
    st = dp_loader_open(&ld, &lc, err);
    if (st == DP_OK) st = dp_loader_start_epoch(ld, 0, err);
    int64_t batches = st == DP_OK ? dp_loader_batches_per_epoch(ld) : 0;
    dp_forward_opts fo = {.train = false};
    int last = dp_model_output_node(t->m), K = t->m->num_classes;
    for (int64_t b = 0; b < batches && st == DP_OK; b++) {
        dp_batch batch;
        st = dp_loader_next(ld, &batch, err);
        if (st != DP_OK || batch.n == 0) continue;
        dp_model_forward(t->m, &t->act, batch.x, batch.n, &fo);
        r->loss_sum += softmax_xent_loss(batch.n, K, t->act.out[last], batch.y, 0.0f);
        int64_t t1 = 0, t5 = 0;
        topk_correct(batch.n, K, t->act.out[last], batch.y, &t1, &t5);
        r->top1 += t1, r->top5 += t5, r->count += batch.n;
    }
    dp_loader_close(ld);
    if ((st = dp_dist_check(&t->app->dist, st, err)) != DP_OK) return st;
    /* counts are summed exactly: every test image is counted once, on whichever rank */
    int64_t counts[3] = {r->top1, r->top5, r->count};
    st = dp_dist_sum_i64(&t->app->dist, counts, 3, err);
    if (st == DP_OK) st = dp_dist_sum_double(&t->app->dist, &r->loss_sum, 1, err);
    r->top1 = counts[0], r->top5 = counts[1], r->count = counts[2];
    return st;
}

void trainer_report_eval(trainer *t, const char *split, int epoch, const eval_result *r) {
    if (t->app->dist.rank != 0 || r->count == 0) return;
    double n = (double)r->count;
    fprintf(stderr, "eval  %s epoch %d  %s: top1 %.2f%%  top5 %.2f%%  loss %.4f  (%lld images)\n",
            t->phase, epoch, split, 100.0 * r->top1 / n, 100.0 * r->top5 / n, r->loss_sum / n,
            (long long)r->count);
    dp_metrics_write(t->metrics,
                     "\"type\":\"eval\",\"phase\":\"%s\",\"epoch\":%d,\"split\":\"%s\","
                     "\"top1\":%.6f,\"top5\":%.6f,\"loss\":%.6f,\"images\":%lld",
                     t->phase, epoch, split, r->top1 / n, r->top5 / n, r->loss_sum / n,
                     (long long)r->count);
}

/* Global samples in micro-batch j of an epoch: B, except in a kept partial tail. */
static int64_t micro_batch_size(const trainer *t, int64_t j) {
    int64_t left = t->data->train.n - j * t->micro_global;
    return left < 0 ? 0 : left < t->micro_global ? left : t->micro_global;
}

/* Testing aids (dist.debug_*): faults injected on purpose so tests can see them handled. */
static void inject_faults(const trainer *t, int64_t global_step, dp_batch *b) {
    const dp_dist_config *dc = &t->app->cfg.dist;
    if (dc->debug_stall_rank == t->app->dist.rank && dc->debug_stall_step == global_step &&
        dc->debug_stall_seconds > 0) {
        double until = dp_now_seconds() + dc->debug_stall_seconds;
        while (dp_now_seconds() < until) {
        }
    }
    if (dc->debug_nan_step == global_step && t->app->dist.rank == 0 && b->n > 0) b->x[0] = NAN;
}

typedef struct {
    dp_sgd *opt;
    dp_model *m;
    double lr;
} sgd_slice_ctx;

/* the sharded route's update: the SGD step of one range of the parameters */
static void sgd_slice(void *ctx, const float *sum, size_t lo, size_t hi) {
    const sgd_slice_ctx *c = ctx;
    dp_sgd_step_range(c->opt, c->m, c->lr, sum, lo, hi);
}

dp_status trainer_whole_momentum(trainer *t, dp_error *err) {
    if (!t->momentum_sliced) return DP_OK;
    t->momentum_sliced = false;
    return dp_grad_sync_gather(t->sync, t->opt.momentum, err);
}

/* Runs one optimizer step over `accum` micro-batches; returns the summed loss/correct/count
 * over all ranks in stats[0..2], a stop request in stats[3] and the summed per-sample PCC in
 * stats[4]. */
static dp_status train_step(trainer *t, dp_loader *ld, int64_t epoch, int64_t global_step,
                            int64_t step_in_epoch, int64_t steps_per_epoch, double stats[5],
                            dp_error *err) {
    const dp_config *c = &t->app->cfg;
    dp_dist *d = &t->app->dist;
    dp_model *m = t->m;
    int last = dp_model_output_node(m), K = m->num_classes, accum = t->tc->accumulation;
    /* the step's first backward writes the gradients, the others add to them: no clearing of
     * the whole buffer (60 MB for vgg16) per step */
    bool grads_written = false;
    /* the gradient is the mean over the step's global batch: every rank scales by 1/B */
    int64_t step_samples = 0;
    for (int a = 0; a < accum; a++) step_samples += micro_batch_size(t, step_in_epoch * accum + a);
    float scale = 1.0f / (float)step_samples;
    double local[3] = {0, 0, 0}, pcc_sum = 0;
    /* the Winograd layers' transformed weights, once for all of the step's micro-batches (on
     * one node, each rank transforms its part of one shared copy) */
    dp_status st = dp_grad_sync_prepare_kept(t->sync, m, &t->act, err);
    for (int a = 0; a < accum && st == DP_OK; a++) {
        dp_batch b;
        /* a data error on one rank must stop every rank before the next collective */
        st = dp_dist_check(d, dp_loader_next(ld, &b, err), err);
        if (st != DP_OK) break;
        bool last_micro = a == accum - 1;
        if (t->sync && last_micro) dp_grad_sync_begin(t->sync);
        if (b.n == 0) continue; /* an empty share of a kept tail: the sync still runs */
        inject_faults(t, global_step, &b);
        /* dropout and other per-sample randomness: keyed by (epoch, dataset index) */
        for (int i = 0; i < b.n; i++) t->keys[i] = b.keys[i] ^ ((uint64_t)epoch << 40);
        dp_forward_opts fo = {.train = true,
                              .seed = (uint64_t)c->run.seed,
                              .sample_keys = t->keys,
                              .hooks = &t->hooks,
                              .write_grads = !grads_written};
        dp_model_forward(m, &t->act, b.x, b.n, &fo);
        trainer_bn_updated(t);
        float *dlogits = t->act.dout[last];
        memset(dlogits, 0, sizeof(float) * (size_t)b.n * K);
        local[0] += softmax_xent_forward_backward(b.n, K, t->act.out[last], b.y,
                                                  (float)t->tc->label_smoothing, scale, dlogits);
        int64_t t1, t5;
        topk_correct(b.n, K, t->act.out[last], b.y, &t1, &t5);
        local[1] += (double)t1, local[2] += b.n;
        /* the PCC term's gradient goes into the maps' activation gradients; backward adds on */
        if (t->pcc.n_maps > 0)
            pcc_sum += dp_pcc_term_apply(&t->pcc, m, &t->act, b.n, 1.0 / (double)step_samples);
        dp_model_backward(m, &t->act, b.n, &fo);
        grads_written = true;
    }
    dp_activations_forget_kept(&t->act, m); /* the weights change next */
    if (st != DP_OK) return st;
    /* a rank with no samples in this step (an uneven kept tail) adds zeros to the sum */
    if (!grads_written) memset(m->grad_data, 0, sizeof(float) * m->n_param_floats);
    /* On the shared-memory route each rank steps only its slice of the parameters, folded
     * into the gradient sum (dp_grad_sync_finish_update). The C-SGD and Network Slimming
     * transforms need the whole summed gradient first, so they take the plain sum. */
    bool sharded = t->sync && dp_grad_sync_shards_step(t->sync) && !t->csgd && t->bn_l1 == 0;
    if (t->sync && !sharded && (st = dp_grad_sync_finish(t->sync, err)) != DP_OK) return st;
    /* Network Slimming's sparsity term: after the sync, so it is added once, not per rank */
    if (t->bn_l1 > 0) dp_slim_add_bn_l1_grad(m, NULL, t->bn_l1);
    /* C-SGD: on the averaged gradient, so every rank transforms the same numbers */
    if (t->csgd) dp_csgd_transform(m, t->csgd_groups, t->csgd, &t->csgd_strength);
    memcpy(stats, local, sizeof local);
    /* a stop signal on any rank travels with the step's sums: every rank stops here */
    stats[3] = app_signal_pending() ? 1.0 : 0.0;
    stats[4] = pcc_sum;
    if ((st = dp_dist_sum_double(d, stats, 5, err)) != DP_OK) return st;
    if (!isfinite(stats[0]))
        return dp_fail(err, DP_ERR_NUMERIC,
                       "the training loss became %g in %s at step %lld; lower the learning "
                       "rate (now %g) or check the data",
                       stats[0], t->phase, (long long)global_step + 1, t->tc->lr);
    sgd_slice_ctx sc = {
        .opt = &t->opt, .m = m, .lr = dp_lr_at(t->tc, global_step, steps_per_epoch)};
    if (sharded || dp_grad_sync_shares_params(t->sync)) {
        /* one copy of the parameters on the node: each rank steps its slice of it */
        st = sharded ? dp_grad_sync_finish_update(t->sync, sgd_slice, &sc, m->param_data, err)
                     : dp_grad_sync_step_shared(t->sync, sgd_slice, &sc, err);
        dp_sgd_end_step(&t->opt);
        t->momentum_sliced = true;
        if (st != DP_OK) return st;
    } else {
        dp_sgd_step(&t->opt, m, sc.lr);
    }
    if (c->dist.debug_perturb_rank == d->rank && c->dist.debug_perturb_step == global_step)
        m->param_data[0] += 1e-3f;
    /* Per-rank BN running statistics are averaged after every step, not only before evaluations
     * and checkpoints. The running statistics are an EMA, linear in the batch statistics, so
     * this is the same arithmetic up to rounding, but it makes the rounding the same whether a
     * run stops mid-epoch (its checkpoint must hold one average) or not, so a resumed run
     * stays bitwise identical. Cost: one allreduce of the BN buffers (KBs) per step. */
    if (st == DP_OK) st = trainer_average_bn(t, err);
    if (c->dist.check_every > 0 && (global_step + 1) % c->dist.check_every == 0)
        st = dp_dist_check(d, dp_dist_check_identical(d, m, err), err);
    return st;
}

static void format_eta(double s, char *buf, size_t n) {
    if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

dp_status trainer_run(trainer *t, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    const dp_dist *d = &t->app->dist;
    dp_loader_config lc = {.split = &t->data->train,
                           .aug = &t->data->aug,
                           .train = true,
                           .shuffle = true,
                           .drop_last = c->data.drop_last,
                           .prefetch = c->data.prefetch,
                           .global_batch = t->micro_global,
                           .rank = d->rank,
                           .world = d->world,
                           .seed = (uint64_t)c->run.seed};
    dp_loader *ld = NULL;
    dp_status st = trainer_pcc_prepare(t, err);
    if (st != DP_OK) return st;
    st = dp_dist_check(&t->app->dist, dp_loader_open(&ld, &lc, err), err);
    if (st != DP_OK) return st;
    int64_t steps_per_epoch = dp_loader_batches_per_epoch(ld) / t->tc->accumulation;
    if (steps_per_epoch < 1) {
        dp_loader_close(ld);
        return dp_dist_check(
            &t->app->dist,
            dp_fail(err, DP_ERR_CONFIG,
                    "%s: train.batch = %d is larger than the %lld training samples", c->path,
                    t->tc->batch, (long long)t->data->train.n),
            err);
    }
    /* where to start: the beginning, or where a checkpoint of this phase left off */
    int64_t first_epoch = 0, first_step = 0;
    if (t->resuming && t->resume_state.phase == t->phase_index) {
        first_epoch = t->resume_state.epoch;
        first_step = t->resume_state.step_in_epoch;
        t->run_step = t->resume_state.global_step;
        t->resuming = false;
    }
    int64_t total = steps_per_epoch * t->tc->epochs,
            step = first_epoch * steps_per_epoch + first_step;
    int64_t done_before = step;
    double t0 = dp_now_seconds(), window_t = t0;
    int64_t window_images = 0, window_steps = 0;
    for (int epoch = (int)first_epoch; epoch < t->tc->epochs && st == DP_OK; epoch++) {
        /* the data epoch is keyed by phase too: fine-tuning does not replay training's order */
        int64_t data_epoch = (int64_t)t->phase_index * 1000000 + epoch;
        int64_t s0 = epoch == first_epoch ? first_step : 0;
        st = dp_dist_check(&t->app->dist,
                           dp_loader_start_epoch_at(ld, data_epoch, s0 * t->tc->accumulation, err),
                           err);
        double ep_loss = 0, ep_correct = 0, ep_count = 0, ep_pcc = 0;
        for (int64_t s = s0; s < steps_per_epoch && st == DP_OK; s++, step++) {
            double stats[5];
            st = train_step(t, ld, data_epoch, step, s, steps_per_epoch, stats, err);
            if (st != DP_OK) break;
            t->run_step++;
            ep_loss += stats[0], ep_correct += stats[1], ep_count += stats[2], ep_pcc += stats[4];
            window_images += (int64_t)stats[2];
            window_steps++;
            if (stats[3] > 0) { /* a stop signal: checkpoint at this step boundary and end */
                if (d->rank == 0)
                    fprintf(stderr, "stop signal: checkpointing at %s epoch %d step %lld\n",
                            t->phase, epoch + 1, (long long)s + 1);
                st = trainer_checkpoint(t, epoch, s + 1, err);
                t->stopped = st == DP_OK;
                break;
            }
            bool log = (c->run.log_every > 0 && (step + 1) % c->run.log_every == 0) ||
                       s == steps_per_epoch - 1;
            if (log && d->rank == 0) {
                double now = dp_now_seconds(), ips = window_images / (now - window_t);
                char eta[32];
                format_eta((now - t0) / (step + 1 - done_before) * (total - step - 1), eta,
                           sizeof eta);
                double lr = dp_lr_at(t->tc, step, steps_per_epoch);
                double wait_ms =
                    t->sync ? 1e3 * dp_grad_sync_wait_seconds(t->sync) / window_steps : 0;
                double progress_ms =
                    t->sync ? 1e3 * dp_grad_sync_progress_seconds(t->sync) / window_steps : 0;
                if (t->sync) dp_grad_sync_reset_timers(t->sync);
                char pcc_text[48], pcc_json[96];
                trainer_pcc_format(t, stats[4], stats[2], pcc_text, sizeof pcc_text, pcc_json,
                                   sizeof pcc_json);
                fprintf(stderr,
                        "%s epoch %d/%d  step %lld/%lld  loss %.4f%s  acc %.2f%%  lr %.5f  "
                        "%.0f img/s  ETA %s\n",
                        t->phase, epoch + 1, t->tc->epochs, (long long)s + 1,
                        (long long)steps_per_epoch, stats[0] / stats[2], pcc_text,
                        100.0 * stats[1] / stats[2], lr, ips, eta);
                dp_metrics_write(
                    t->metrics,
                    "\"type\":\"train\",\"phase\":\"%s\",\"epoch\":%d,\"step\":%lld,\"loss\":%.6f,"
                    "\"acc\":%.6f,\"lr\":%.8g,\"images_per_s\":%.1f,"
                    "\"comm_wait_ms\":%.3f,\"comm_progress_ms\":%.3f%s",
                    t->phase, epoch + 1, (long long)step + 1, stats[0] / stats[2],
                    stats[1] / stats[2], lr, ips, wait_ms, progress_ms, pcc_json);
                window_t = now, window_images = 0, window_steps = 0;
            }
        }
        if (st != DP_OK || t->stopped) break;
        if ((st = trainer_whole_momentum(t, err)) != DP_OK) break;
        if (t->sync && d->rank != 0) dp_grad_sync_reset_timers(t->sync);
        if (d->rank == 0) {
            char pcc_text[48], pcc_json[96];
            trainer_pcc_format(t, ep_pcc, ep_count, pcc_text, sizeof pcc_text, pcc_json,
                               sizeof pcc_json);
            dp_metrics_write(
                t->metrics,
                "\"type\":\"epoch\",\"phase\":\"%s\",\"epoch\":%d,\"loss\":%.6f,\"acc\":%.6f,"
                "\"seconds\":%.3f%s",
                t->phase, epoch + 1, ep_loss / ep_count, ep_correct / ep_count,
                dp_now_seconds() - t0, pcc_json);
        }
        bool stop = false;
        if (t->epoch_end) {
            trainer_epoch_info info = {.epoch = epoch + 1, .epochs = t->tc->epochs};
            if ((st = t->epoch_end(t->epoch_end_ctx, &info, &stop, err)) != DP_OK) break;
        }
        bool last_epoch = epoch == t->tc->epochs - 1 || stop;
        if ((t->tc->eval_every > 0 && (epoch + 1) % t->tc->eval_every == 0) || last_epoch) {
            eval_result r;
            if (t->data->val.n > 0) {
                if ((st = trainer_evaluate(t, &t->data->val, &r, err)) != DP_OK) break;
                trainer_report_eval(t, "val", epoch + 1, &r);
            }
            if ((st = trainer_evaluate(t, &t->data->test, &r, err)) != DP_OK) break;
            trainer_report_eval(t, "test", epoch + 1, &r);
        }
        int every = c->checkpoint.every_epochs;
        /* a phase ended early is complete: a resume from this checkpoint moves on */
        if (every > 0 && ((epoch + 1) % every == 0 || last_epoch))
            st = trainer_checkpoint(t, stop ? t->tc->epochs : epoch + 1, 0, err);
        if (stop) break;
    }
    dp_loader_close(ld);
    if (st == DP_OK && !t->stopped && d->rank == 0)
        fprintf(stderr, "%s done in %.1f s\n", t->phase, dp_now_seconds() - t0);
    return st;
}

/* The gradient sum over ranks (none on one rank), as dist.* asks. Collective. */
static dp_status create_grad_sync(trainer *t, dp_error *err) {
    const dp_dist_config *dc = &t->app->cfg.dist;
    if (t->app->dist.world == 1) return DP_OK;
    dp_grad_sync_opts o = {.first_bytes = (size_t)(dc->first_bucket_mb * 1e6),
                           .bucket_bytes = (size_t)(dc->bucket_mb * 1e6),
                           .overlap = dc->overlap,
                           .route = strcmp(dc->allreduce, "mpi") == 0   ? DP_SUM_MPI
                                    : strcmp(dc->allreduce, "shm") == 0 ? DP_SUM_SHM
                                                                        : DP_SUM_AUTO};
    dp_status st = dp_grad_sync_create(&t->sync, &t->app->dist, t->m, &o, err);
    if (st == DP_OK) st = dp_grad_sync_share_kept(t->sync, &t->act, t->m, err);
    if (st == DP_OK && dp_grad_sync_shares_params(t->sync) && dc->debug_perturb_rank >= 0)
        st = dp_fail(err, DP_ERR_CONFIG,
                     "%s: dist.debug_perturb_rank needs dist.allreduce = \"mpi\": on the "
                     "shared-memory route the ranks compute with one copy of the parameters, "
                     "which cannot diverge",
                     t->app->cfg.path);
    return st;
}

dp_status trainer_init(trainer *t, dp_app *app, dp_app_data *data, dp_model *m, dp_error *err) {
    const dp_config *c = &app->cfg;
    memset(t, 0, sizeof *t);
    t->app = app, t->data = data, t->m = m;
    int per_step = c->train.batch / c->train.accumulation;
    dp_status v = DP_OK;
    if (c->dist.sync_bn && !c->data.drop_last)
        v = dp_fail(err, DP_ERR_CONFIG,
                    "%s: dist.sync_bn = true needs data.drop_last = true (every rank must take "
                    "part in every batch-norm reduction)",
                    c->path);
    else if (c->train.batch % c->train.accumulation != 0 || per_step < app->dist.world)
        v = dp_fail(err, DP_ERR_CONFIG,
                    "%s: train.batch = %d must be a multiple of train.accumulation = %d with at "
                    "least one sample per rank (%d ranks)",
                    c->path, c->train.batch, c->train.accumulation, app->dist.world);
    t->micro_global = per_step;
    t->tc = &c->train;
    t->phase = "train";
    t->bn_identical = true; /* rank 0's initial or loaded model was broadcast */
    dp_status st = dp_dist_check(&app->dist, v, err);
    if (st != DP_OK) return st;
    int cap = (t->micro_global + app->dist.world - 1) / app->dist.world;
    st = dp_activations_alloc(&t->act, m, cap, err);
    if (st == DP_OK) st = dp_sgd_init(&t->opt, m, &c->train, err);
    t->keys = calloc((size_t)cap, sizeof(uint64_t));
    if (st == DP_OK && !t->keys) st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
    t->hooks = (dp_exec_hooks){.ctx = t,
                               .node_backward_done = on_node_backward_done,
                               .bn_allreduce = c->dist.sync_bn ? on_bn_allreduce : NULL};
    if (st == DP_OK) st = create_grad_sync(t, err);
    if ((st = dp_dist_check(&app->dist, st, err)) != DP_OK) return st;
    st = app->dist.rank == 0 ? trainer_open_metrics(t, err) : DP_OK;
    if (st == DP_OK && app->dist.rank == 0)
        st = dp_ckpt_writer_start(&t->writer, c->run.dir, c->checkpoint.keep_last, err);
    return dp_dist_check(&app->dist, st, err);
}

dp_status trainer_replace_model(trainer *t, dp_model *fresh, dp_error *err) {
    int cap = t->act.cap;
    if (t->act.out) dp_activations_free(&t->act, t->m);
    dp_grad_sync_free(t->sync);
    t->sync = NULL;
    trainer_pcc_drop(t); /* its maps were nodes of the old model */
    dp_model_free(t->m);
    *t->m = *fresh; /* the caller's model now is the new one */
    memset(fresh, 0, sizeof *fresh);
    dp_status st = dp_activations_alloc(&t->act, t->m, cap, err);
    if (st == DP_OK) st = create_grad_sync(t, err);
    return dp_dist_check(&t->app->dist, st, err);
}

int64_t trainer_steps_per_epoch(const trainer *t) {
    int64_t n = t->data->train.n, B = t->micro_global;
    int64_t batches = t->app->cfg.data.drop_last ? n / B : (n + B - 1) / B; /* as the loader */
    return batches / t->tc->accumulation;
}

void trainer_free(trainer *t) {
    if (t->writer) { /* waits for the write in flight */
        dp_error werr = {0};
        if (!dp_ckpt_writer_wait(t->writer, &werr))
            fprintf(stderr, "dprune: warning: %s (the previous checkpoint is intact)\n", werr.msg);
        dp_ckpt_writer_stop(t->writer);
    }
    free(t->prune_history);
    free(t->csgd_state);
    free(t->cip_state);
    free(t->keys);
    trainer_pcc_drop(t);
    dp_grad_sync_free(t->sync);
    dp_sgd_free(&t->opt);
    if (t->act.out) dp_activations_free(&t->act, t->m);
    if (t->metrics) dp_metrics_close(t->metrics);
    memset(t, 0, sizeof *t);
}
