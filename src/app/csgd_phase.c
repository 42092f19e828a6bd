/* A C-SGD round (METHODS.md section 6): widths from the budget, clusters decided on rank 0 and
 * broadcast, a training phase with the centripetal transform until the members are identical
 * (the relative deviation below csgd.threshold) or the epoch limit, then the merge -- BN
 * statistics equalised, one member kept, the others' consumer slices summed into it.
 * The algorithms are in prune/csgd*.c; this file sequences them. */
#include "app.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Final widths of every group, from the configured model as built (the pruned model has the
 * same graph, so group g is the same group): the prune budget, or the widths of the model at
 * width 1 (train wider, then squeeze). Round r of R goes r/R of the way there. */
static dp_status round_widths(trainer *t, const dp_groups *gs, int round, int *keep,
                              dp_error *err) {
    const dp_config *c = &t->app->cfg;
    const dp_app_data *d = t->data;
    dp_model orig = {0}, base = {0};
    dp_groups og = {0};
    int *final = calloc((size_t)gs->n_groups + 1, sizeof(int));
    if (!final) return dp_fail(err, DP_ERR_NOMEM, "C-SGD: out of memory");
    dp_status st = dp_model_build(&orig, &c->model, d->in_c, d->in_h, d->in_w, d->num_classes, err);
    if (st == DP_OK) st = app_build_groups(&c->prune, &orig, &og, err); /* rank 0 only */
    if (st == DP_OK && og.n_groups != gs->n_groups)
        st = dp_fail(err, DP_ERR_ARG,
                     "C-SGD: the configured %s has %d channel groups, the model "
                     "being trained %d",
                     orig.arch, og.n_groups, gs->n_groups);
    if (st == DP_OK && !strcmp(c->csgd.target, "base_width")) {
        dp_model_config mc = c->model;
        mc.width = 1.0;
        st = dp_model_build(&base, &mc, d->in_c, d->in_h, d->in_w, d->num_classes, err);
        if (st == DP_OK && base.n_nodes != orig.n_nodes)
            st = dp_fail(err, DP_ERR_CONFIG,
                         "csgd.target = \"base_width\": %s at width 1 has "
                         "another graph",
                         orig.arch);
        for (int g = 0; g < og.n_groups && st == DP_OK; g++) {
            int w = og.groups[g].n_writers ? og.groups[g].writers[0] : -1;
            final[g] = og.groups[g].prunable && w >= 0 ? base.nodes[w].c : og.groups[g].channels;
        }
    } else if (st == DP_OK) {
        dp_budget b;
        app_budget_from_config(&c->prune, &b);
        st = dp_budget_widths(&orig, &og, &b, final, NULL, err);
    }
    int R = c->prune.rounds;
    for (int g = 0; g < gs->n_groups && st == DP_OK; g++) {
        int C0 = og.groups[g].channels, now = gs->groups[g].channels;
        int k = C0 - (int)((int64_t)(C0 - final[g]) * round / R);
        keep[g] = gs->groups[g].prunable && k < now ? k : now;
    }
    free(final);
    dp_groups_free(&og);
    dp_model_free(&orig);
    dp_model_free(&base);
    return st;
}

/* Rank 0 clusters every group that shrinks this round; every rank gets the same bytes. */
dp_status app_csgd_decide(trainer *t, int round, const dp_groups *gs, dp_csgd_clusters *cl,
                          dp_error *err) {
    const dp_csgd_config *cc = &t->app->cfg.csgd;
    dp_dist *d = &t->app->dist;
    uint8_t *buf = NULL;
    size_t len = 0;
    dp_status st = DP_OK;
    if (d->rank == 0) {
        int *keep = malloc(sizeof(int) * ((size_t)gs->n_groups + 1));
        dp_csgd_clusters mine = {0};
        st = keep ? round_widths(t, gs, round, keep, err)
                  : dp_fail(err, DP_ERR_NOMEM, "C-SGD: out of memory");
        if (st == DP_OK) st = dp_csgd_clusters_init(&mine, gs, err);
        dp_csgd_method method = !strcmp(cc->clusters, "even") ? DP_CSGD_EVEN : DP_CSGD_KMEANS;
        for (int g = 0; g < gs->n_groups && st == DP_OK; g++)
            st = dp_csgd_cluster_group(t->m, gs, g, keep[g], method,
                                       (uint64_t)t->app->cfg.run.seed + (uint64_t)round,
                                       cc->kmeans_inits, &mine, err);
        if (st == DP_OK) st = dp_csgd_serialize(&mine, round, &buf, &len, err);
        dp_csgd_clusters_free(&mine);
        free(keep);
    }
    if ((st = dp_dist_check(d, st, err)) != DP_OK) return st;
    st = app_bcast_blob(d, &buf, &len, err);
    int got_round = 0;
    if (st == DP_OK) st = dp_csgd_deserialize(buf, len, cl, &got_round, err);
    if (st == DP_OK) st = dp_csgd_check(cl, gs, err);
    if (st == DP_OK) t->csgd_state = buf, t->csgd_state_len = len, buf = NULL;
    free(buf);
    return dp_dist_check(d, st, err);
}

/* The clusters saved in the checkpoint this run resumed from. */
static dp_status resumed_clusters(trainer *t, int round, const dp_groups *gs, dp_csgd_clusters *cl,
                                  dp_error *err) {
    int got_round = -1;
    dp_status st = t->csgd_state
                       ? dp_csgd_deserialize(t->csgd_state, t->csgd_state_len, cl, &got_round, err)
                       : dp_fail(err, DP_ERR_CHECKPOINT,
                                 "the checkpoint was saved inside C-SGD round %d but "
                                 "holds no csgd section",
                                 round);
    if (st == DP_OK && got_round != round)
        st = dp_fail(err, DP_ERR_CHECKPOINT,
                     "the checkpoint's C-SGD clusters are of round %d, "
                     "its phase is round %d",
                     got_round, round);
    if (st == DP_OK) st = dp_csgd_check(cl, gs, err);
    return dp_dist_check(&t->app->dist, st, err);
}

typedef struct {
    trainer *t;
    int round;
    double threshold;
    double last_relative;
    bool reached;
} phase_watch;

static void log_deviation(trainer *t, const char *when, int epoch, const dp_csgd_deviation *dv) {
    if (t->app->dist.rank != 0) return;
    double rk = dv->kernel_norm2 > 0 ? dv->kernel / dv->kernel_norm2 : 0;
    double rv = dv->vector_norm2 > 0 ? dv->vector / dv->vector_norm2 : 0;
    fprintf(stderr, "%s %s: deviation %.4g (relative %.3g kernels, %.3g BN/bias)\n", t->phase, when,
            dv->kernel + dv->vector, rk, rv);
    dp_metrics_write(t->metrics,
                     "\"type\":\"csgd\",\"phase\":\"%s\",\"epoch\":%d,\"deviation_kernel\":%.6g,"
                     "\"deviation_vector\":%.6g,\"relative_kernel\":%.6g,\"relative_vector\":%.6g",
                     t->phase, epoch, dv->kernel, dv->vector, rk, rv);
}

static dp_status watch_epoch_end(void *ctx, trainer_epoch_info *info, bool *stop, dp_error *err) {
    (void)err;
    phase_watch *w = ctx;
    dp_csgd_deviation dv;
    dp_csgd_measure(w->t->m, w->t->csgd_groups, w->t->csgd, &dv);
    char when[32];
    snprintf(when, sizeof when, "epoch %d", info->epoch);
    log_deviation(w->t, when, info->epoch, &dv);
    w->last_relative = dp_csgd_relative(&dv);
    /* parameters are identical on every rank, so every rank decides the same */
    *stop = w->reached = w->last_relative < w->threshold;
    if (w->t->app->dist.rank == 0 && (*stop || info->epoch == info->epochs))
        fprintf(stderr, "%s ends at epoch %d of %d: %s (relative deviation %.3g, threshold %.3g)\n",
                w->t->phase, info->epoch, info->epochs,
                *stop ? "the members are identical to the threshold"
                      : "epoch limit reached before the threshold; the merge will be approximate",
                w->last_relative, w->threshold);
    return DP_OK;
}

/* Says when the configured strengths bring the deviation below the threshold: member
 * differences follow a known recurrence (prune/csgd.c), so this is a prediction, not a guess. */
static void predict(trainer *t, const dp_csgd_deviation *dv) {
    const dp_config *c = &t->app->cfg;
    int64_t spe = trainer_steps_per_epoch(t), total = spe * t->tc->epochs;
    if (t->app->dist.rank != 0 || total <= 0) return;
    double *lr = malloc(sizeof(double) * (size_t)total);
    if (!lr) return;
    for (int64_t s = 0; s < total; s++) lr[s] = dp_lr_at(t->tc, s, spe);
    double rk = dv->kernel_norm2 > 0 ? dv->kernel / dv->kernel_norm2 : 0;
    double rv = dv->vector_norm2 > 0 ? dv->vector / dv->vector_norm2 : 0;
    double ck = c->csgd.centripetal + c->train.weight_decay,
           cv = c->csgd.vector_ratio * c->csgd.centripetal;
    /* the first epoch end at which both parts are below the threshold */
    int reach = -1;
    for (int e = 1; e <= t->tc->epochs && reach < 0; e++) {
        double fk = dp_csgd_decay_factor(lr, spe * e, c->train.momentum, c->train.nesterov, ck);
        double fv = dp_csgd_decay_factor(lr, spe * e, c->train.momentum, c->train.nesterov, cv);
        if (rk * fk * fk < c->csgd.threshold && rv * fv * fv < c->csgd.threshold) reach = e;
    }
    if (reach > 0)
        fprintf(stderr, "%s: predicted below the threshold %.3g at the end of epoch %d of %d\n",
                t->phase, c->csgd.threshold, reach, t->tc->epochs);
    else
        fprintf(stderr,
                "dprune: warning: %s: with csgd.centripetal = %g (vector_ratio %g) the deviation "
                "does not reach csgd.threshold = %g within csgd.epochs = %d; raise the strength "
                "or the epochs (members drift apart again when lr * strength exceeds "
                "(1 - sqrt(momentum))^2 much)\n",
                t->phase, c->csgd.centripetal, c->csgd.vector_ratio, c->csgd.threshold,
                t->tc->epochs);
    free(lr);
}

/* Max |logit change| / max |logit| over the first test batch, between the model as it is and
 * `other`; every rank computes the same (the models are identical). */
static double logits_change(trainer *t, const dp_model *a, const dp_model *b) {
    const dp_split *sp = &t->data->test;
    int N = sp->n < 64 ? (int)sp->n : 64;
    if (N <= 0) return 0;
    dp_loader_config lc = {.split = sp,
                           .aug = &t->data->aug,
                           .global_batch = N,
                           .rank = 0,
                           .world = 1,
                           .seed = (uint64_t)t->app->cfg.run.seed};
    dp_loader *ld = NULL;
    dp_error e = {0};
    dp_batch batch;
    double worst = -1;
    if (dp_loader_open(&ld, &lc, &e) == DP_OK && dp_loader_start_epoch(ld, 0, &e) == DP_OK &&
        dp_loader_next(ld, &batch, &e) == DP_OK && batch.n > 0) {
        const dp_model *ms[2] = {a, b};
        float *out[2] = {NULL, NULL};
        for (int i = 0; i < 2; i++) {
            dp_activations act;
            if (dp_activations_alloc(&act, ms[i], batch.n, &e) != DP_OK) break;
            dp_forward_opts fo = {.train = false};
            dp_model_forward(ms[i], &act, batch.x, batch.n, &fo);
            size_t n = (size_t)batch.n * ms[i]->num_classes;
            out[i] = malloc(sizeof(float) * n);
            if (out[i]) memcpy(out[i], act.out[dp_model_output_node(ms[i])], sizeof(float) * n);
            dp_activations_free(&act, ms[i]);
        }
        if (out[0] && out[1]) {
            double num = 0, den = 0;
            for (size_t j = 0; j < (size_t)batch.n * a->num_classes; j++) {
                num = fmax(num, fabs((double)out[0][j] - out[1][j]));
                den = fmax(den, fabs((double)out[0][j]));
            }
            worst = num / (den > 0 ? den : 1);
        }
        free(out[0]);
        free(out[1]);
    }
    dp_loader_close(ld);
    return worst;
}

/* BN statistics equalised, then the merge: plan from the clusters, surgery with the fold. */
static dp_status merge(trainer *t, int round, const dp_groups *gs, const dp_csgd_clusters *cl,
                       dp_error *err) {
    const dp_config *c = &t->app->cfg;
    dp_status st = DP_OK;
    if (!strcmp(c->csgd.merge_bn, "reestimate"))
        st = app_reestimate_bn(t, c->prune.bn_recalib_batches, err);
    if (st == DP_OK) st = trainer_average_bn(t, err);
    if (st != DP_OK) return st;
    /* the model as C-SGD left it: the merge's logit change is measured against this */
    dp_model trained = {0};
    if (t->app->dist.rank == 0 && dp_model_copy(&trained, t->m, false, err) != DP_OK)
        memset(&trained, 0, sizeof trained); /* no memory for the check: it is skipped */
    dp_csgd_equalize(t->m, gs, cl, !strcmp(c->csgd.merge_keep, "mean"));
    double top1, top5;
    st = app_test_accuracy(t, "before-merge", round, &top1, &top5, err);
    dp_plan plan = {0};
    if (st == DP_OK)
        st = dp_dist_check(&t->app->dist, dp_csgd_merge_plan(t->m, gs, cl, &plan, err), err);
    if (st == DP_OK) st = app_record_plan(t, &plan, err);
    if (st == DP_OK && t->app->dist.rank == 0) {
        snprintf(plan.budget, sizeof plan.budget, "merge of %s clusters", c->csgd.clusters);
        app_write_plan_text(t, round, &plan, t->m, gs);
    }
    dp_model small = {0};
    dp_surgery_opts so = dp_csgd_surgery_opts(cl);
    if (st == DP_OK)
        st = dp_dist_check(&t->app->dist, dp_surgery(t->m, gs, &plan, &t->opt, &so, &small, err),
                           err);
    if (st == DP_OK && t->app->dist.rank == 0) {
        double change = trained.nodes ? logits_change(t, &trained, &small) : -1;
        fprintf(stderr,
                "C-SGD round %d merge: FLOPs %lld -> %lld, params %lld -> %lld; logits of 64 test "
                "images change by %.3g (relative to their largest)\n",
                round, (long long)dp_model_flops(t->m), (long long)plan.flops_after,
                (long long)dp_model_params(t->m), (long long)plan.params_after, change);
        dp_metrics_write(t->metrics,
                         "\"type\":\"csgd_merge\",\"round\":%d,\"logits_change\":%.6g,"
                         "\"before_merge_top1\":%.6f,\"flops_after\":%lld,\"params_after\":%lld",
                         round, change, top1, (long long)plan.flops_after,
                         (long long)plan.params_after);
    }
    dp_plan_free(&plan);
    dp_model_free(&trained);
    if (st == DP_OK) st = trainer_replace_model(t, &small, err);
    dp_model_free(&small);
    return st;
}

dp_status app_csgd_round(trainer *t, int round, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    bool resumed = t->resuming && t->resume_state.phase == APP_CSGD_PHASE_BASE + round;
    dp_groups gs = {0};
    dp_csgd_clusters cl = {0};
    dp_status st = dp_dist_check(&t->app->dist, app_build_groups(&c->prune, t->m, &gs, err), err);
    if (st == DP_OK)
        st = resumed ? resumed_clusters(t, round, &gs, &cl, err)
                     : app_csgd_decide(t, round, &gs, &cl, err);
    if (st != DP_OK) goto done;
    dp_train_config phase_tc = c->train;
    phase_tc.epochs = c->csgd.epochs;
    phase_tc.lr = c->csgd.lr;
    phase_tc.warmup_epochs = 0;
    phase_tc.pcc_lambda = 0; /* PCC builds redundancy for CI; C-SGD makes its own */
    snprintf(phase_tc.schedule, sizeof phase_tc.schedule, "%s", c->csgd.schedule);
    char phase[32];
    snprintf(phase, sizeof phase, "csgd%d", round);
    t->phase = phase;
    t->phase_index = APP_CSGD_PHASE_BASE + round;
    t->tc = &phase_tc;
    t->csgd = &cl, t->csgd_groups = &gs;
    t->csgd_strength = (dp_csgd_strength){.centripetal = c->csgd.centripetal,
                                          .weight_decay = c->train.weight_decay,
                                          .vector_ratio = c->csgd.vector_ratio};
    /* the transform adds the decay itself; a resumed phase has its momentum in the file */
    double *decay = malloc(sizeof(double) * ((size_t)t->m->n_params + 1));
    if (!decay) {
        st = dp_dist_check(&t->app->dist, dp_fail(err, DP_ERR_NOMEM, "C-SGD: out of memory"), err);
        goto done;
    }
    memcpy(decay, t->opt.decay, sizeof(double) * (size_t)t->m->n_params);
    dp_csgd_set_decay(&t->opt, t->m, &gs, &cl, false, 0);
    if (!resumed) dp_csgd_reset_momentum(&t->opt, t->m, &gs, &cl);
    dp_csgd_deviation dv;
    dp_csgd_measure(t->m, &gs, &cl, &dv);
    if (t->app->dist.rank == 0) {
        int clustered = 0;
        for (int g = 0; g < gs.n_groups; g++) clustered += cl.n_clusters[g] > 0;
        fprintf(stderr, "C-SGD round %d: %d groups clustered (%s)%s\n", round, clustered,
                c->csgd.clusters, resumed ? ", resumed inside the phase" : "");
        if (!resumed) predict(t, &dv);
    }
    log_deviation(t, "start", 0, &dv);
    phase_watch w = {.t = t, .round = round, .threshold = c->csgd.threshold};
    t->epoch_end = watch_epoch_end, t->epoch_end_ctx = &w;
    st = phase_tc.epochs > 0 ? trainer_run(t, err) : DP_OK;
    t->epoch_end = NULL, t->epoch_end_ctx = NULL;
    t->csgd = NULL, t->csgd_groups = NULL;
    t->tc = &c->train;
    memcpy(t->opt.decay, decay, sizeof(double) * (size_t)t->m->n_params);
    free(decay);
    if (st == DP_OK && !t->stopped) st = merge(t, round, &gs, &cl, err);
done:
    free(t->csgd_state);
    t->csgd_state = NULL, t->csgd_state_len = 0;
    dp_csgd_clusters_free(&cl);
    dp_groups_free(&gs);
    return st;
}
