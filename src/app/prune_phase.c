/* The pruning phase: rounds of calibrate -> plan (rank 0) -> broadcast -> surgery -> BN
 * re-estimation -> fine-tune, then the final evaluation and a before/after summary.
 * Algorithms live in prune/ (groups, criteria, planner, surgery) and dist/ (reductions);
 * this file only sequences them. */
#include "app.h"
#include "calibrate.h"
#include "corr_fold.h"
#include "fec_plan.h"
#include "latency.h"
#include "prune_report.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- which statistics a criterion needs ---- */
static bool needs_calibration(const char *crit, calib_kind *kind) {
    if (!strcmp(crit, "corr"))
        *kind = CALIB_CORR;
    else if (!strcmp(crit, "hrank"))
        *kind = CALIB_HRANK;
    else if (!strcmp(crit, "ci"))
        *kind = CALIB_CI;
    else
        return false;
    return true;
}

void app_budget_from_config(const dp_prune_config *pc, dp_budget *b) {
    dp_budget_default(b);
    b->min_channels = pc->min_channels;
    b->min_keep = pc->min_keep;
    b->round_to = pc->round_to;
    b->ratio = pc->ratio;
    b->ratios = pc->ratios;
    b->n_ratios = pc->n_ratios;
    b->target = pc->target;
    if (!strcmp(pc->budget, "ratios"))
        b->kind = DP_BUDGET_PER_GROUP;
    else if (!strcmp(pc->budget, "global"))
        b->kind = DP_BUDGET_GLOBAL;
    else if (!strcmp(pc->budget, "flops"))
        b->kind = DP_BUDGET_FLOPS;
    else if (!strcmp(pc->budget, "params"))
        b->kind = DP_BUDGET_PARAMS;
    else if (!strcmp(pc->budget, "latency"))
        b->kind = DP_BUDGET_LATENCY; /* b->latency is set by decide_plan */
    else
        b->kind = DP_BUDGET_UNIFORM;
}

/* Per-group results of the data-driven criteria that the planner needs beyond scores. */
typedef struct {
    dp_corr_result *corr; /* [n_groups] (C = 0 where unused) */
    int n_groups;
} criterion_state;

static void criterion_state_free(criterion_state *cs) {
    for (int g = 0; g < cs->n_groups && cs->corr; g++)
        if (cs->corr[g].C) dp_corr_result_free(&cs->corr[g]);
    free(cs->corr);
    memset(cs, 0, sizeof *cs);
}

/* Rank 0: scores from folded statistics. */
static dp_status scores_from_stats(const char *crit, const dp_prune_config *pc, const dp_groups *gs,
                                   const calib_result *cr, dp_scores *sc, criterion_state *cs,
                                   dp_error *err) {
    dp_status st = dp_scores_alloc(sc, gs, err);
    cs->n_groups = gs->n_groups;
    cs->corr = calloc((size_t)gs->n_groups, sizeof(dp_corr_result));
    if (st == DP_OK && !cs->corr) st = dp_fail(err, DP_ERR_NOMEM, "scores: out of memory");
    for (int g = 0; g < gs->n_groups && st == DP_OK; g++) {
        if (!sc->s[g] || !cr->total[g]) continue;
        int C = gs->groups[g].channels;
        const double *t = cr->total[g];
        if (!strcmp(crit, "corr")) {
            dp_corr_remove rm = strcmp(pc->corr_remove, "weaker") ? DP_CORR_REMOVE_REDUNDANCY
                                                                  : DP_CORR_REMOVE_WEAKER;
            st = dp_corr_run(C, t, cr->shift[g], pc->corr_topology, rm, &cs->corr[g], err);
            if (st == DP_OK) dp_corr_scores(&cs->corr[g], sc->s[g]);
        } else { /* hrank, ci: [images, sum[C]] -> mean over images */
            double images = t[0] > 0 ? t[0] : 1;
            for (int c = 0; c < C; c++) sc->s[g][c] = t[1 + c] / images;
        }
    }
    return st;
}

/* Keep count of group g under threshold tau for the threshold criteria. */
static int threshold_keep(const char *crit, const dp_groups *gs, const dp_scores *sc,
                          const criterion_state *cs, int g, double tau, const dp_budget *b) {
    int C = gs->groups[g].channels, k;
    if (!strcmp(crit, "corr")) {
        k = dp_corr_kept_count(&cs->corr[g], tau);
    } else { /* ci: cumulative share of the total CI */
        int *order = malloc(sizeof(int) * (size_t)C);
        k = order ? dp_ci_keep_count(C, sc->s[g], tau, order) : C;
        free(order);
    }
    return dp_keep_finalize(k < dp_keep_floor(C, b) ? dp_keep_floor(C, b) : k, C, b);
}

/* Threshold criteria: a fixed tau (budget "threshold"), or one global tau bisected to a
 * FLOPs/params/latency target; returns the plan closest to the target. */
static dp_status plan_by_threshold(const dp_model *m, const char *crit, const dp_prune_config *pc,
                                   const dp_groups *gs, const dp_scores *sc,
                                   const criterion_state *cs, const dp_budget *b, dp_plan *plan,
                                   dp_error *err) {
    int *keep = malloc(sizeof(int) * (size_t)gs->n_groups);
    if (!keep) return dp_fail(err, DP_ERR_NOMEM, "plan: out of memory");
    bool by_target =
        b->kind == DP_BUDGET_FLOPS || b->kind == DP_BUDGET_PARAMS || b->kind == DP_BUDGET_LATENCY;
    double tau = pc->tau, best_tau = tau, best_gap = INFINITY;
    /* keep counts grow with tau (corr) or with the CI share (ci): bisect on [0, 1] */
    double lo = 0, hi = 1;
    for (int it = 0; it < (by_target ? 40 : 1); it++) {
        if (by_target) tau = 0.5 * (lo + hi);
        for (int g = 0; g < gs->n_groups; g++)
            keep[g] = gs->groups[g].prunable && sc->s[g]
                          ? threshold_keep(crit, gs, sc, cs, g, tau, b)
                          : gs->groups[g].channels;
        if (!by_target) break;
        double reached = dp_budget_reduction(m, gs, b, keep);
        if (fabs(reached - b->target) < best_gap)
            best_gap = fabs(reached - b->target), best_tau = tau;
        if (reached > b->target)
            lo = tau; /* cut too much: keep more (larger tau) */
        else
            hi = tau;
    }
    if (by_target)
        for (int g = 0; g < gs->n_groups; g++)
            keep[g] = gs->groups[g].prunable && sc->s[g]
                          ? threshold_keep(crit, gs, sc, cs, g, best_tau, b)
                          : gs->groups[g].channels;
    dp_status st = dp_plan_from_scores(m, gs, sc, keep, crit, plan, err);
    if (st == DP_OK && by_target)
        plan->target = b->target, plan->achieved = dp_budget_reduction(m, gs, b, keep);
    if (st == DP_OK)
        snprintf(plan->budget, sizeof plan->budget, "%s tau %.4f",
                 by_target ? pc->budget : "threshold", by_target ? best_tau : pc->tau);
    free(keep);
    return st;
}

/* Rank 0: the plan of this round. */
static dp_status decide_plan(const dp_model *m, const dp_prune_config *pc, const dp_groups *gs,
                             const dp_scores *sc, const criterion_state *cs, dp_plan *plan,
                             dp_error *err) {
    const char *crit = pc->criterion;
    dp_budget b;
    app_budget_from_config(pc, &b);
    bool threshold_crit = !strcmp(crit, "corr") || !strcmp(crit, "ci");
    if (!strcmp(pc->budget, "threshold") && !threshold_crit)
        return dp_fail(err, DP_ERR_CONFIG,
                       "prune.budget = \"threshold\" needs prune.criterion corr or ci (got %s)",
                       crit);
    app_latency lat = {0};
    if (b.kind == DP_BUDGET_LATENCY) {
        dp_status st = app_latency_open(pc, m, &lat, err);
        if (st != DP_OK) return st;
        b.latency = &lat.map;
    }
    dp_status st;
    if (threshold_crit && (!strcmp(pc->budget, "threshold") || b.kind == DP_BUDGET_FLOPS ||
                           b.kind == DP_BUDGET_PARAMS || b.kind == DP_BUDGET_LATENCY))
        st = plan_by_threshold(m, crit, pc, gs, sc, cs, &b, plan, err);
    else
        st = dp_plan_make(m, gs, sc, &b, crit, plan, err);
    app_latency_close(&lat);
    return st;
}

dp_status app_bcast_blob(dp_dist *d, uint8_t **buf, size_t *len, dp_error *err) {
    uint64_t n = *len;
    dp_status st = dp_dist_bcast_bytes(d, &n, sizeof n, 0, err);
    if (st == DP_OK && d->rank != 0) {
        *buf = malloc(n ? n : 1);
        *len = n;
        if (!*buf)
            st = dp_fail(err, DP_ERR_NOMEM, "broadcast: out of memory for %llu bytes",
                         (unsigned long long)n);
    }
    if ((st = dp_dist_check(d, st, err)) == DP_OK) st = dp_dist_bcast_bytes(d, *buf, n, 0, err);
    return st;
}

static dp_status broadcast_plan(dp_dist *d, dp_plan *plan, dp_error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    dp_status st = DP_OK;
    if (d->rank == 0) st = dp_plan_serialize(plan, &buf, &len, err);
    if ((st = dp_dist_check(d, st, err)) != DP_OK) return st;
    st = app_bcast_blob(d, &buf, &len, err);
    if (st == DP_OK && d->rank != 0) st = dp_plan_deserialize(buf, len, plan, err);
    free(buf);
    return dp_dist_check(d, st, err);
}

void app_write_plan_text(const trainer *t, int round, const dp_plan *plan, const dp_model *m,
                         const dp_groups *gs) {
    char *text = NULL;
    dp_error err = {0};
    if (dp_plan_render(plan, m, gs, &text, &err) != DP_OK) return;
    char path[DP_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/plan-round%d.txt", t->app->cfg.run.dir, round);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
        fprintf(stderr, "prune round %d: plan written to %s\n", round, path);
    } else {
        fprintf(stderr, "dprune: warning: cannot write the plan to %s\n", path);
    }
    free(text);
}

/* BN running statistics re-estimated on a few training batches (cumulative average, as
 * torchvision's recalibration): the pruned network's statistics have moved. */
dp_status app_reestimate_bn(trainer *t, int batches, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    dp_model *m = t->m;
    if (batches <= 0) return DP_OK;
    dp_loader_config lc = {.split = &t->data->train,
                           .aug = &t->data->aug,
                           .train = true,
                           .shuffle = true,
                           .drop_last = true,
                           .prefetch = c->data.prefetch,
                           .global_batch = t->micro_global,
                           .rank = t->app->dist.rank,
                           .world = t->app->dist.world,
                           .seed = (uint64_t)c->run.seed};
    dp_loader *ld = NULL;
    dp_status st = dp_loader_open(&ld, &lc, err);
    if (st == DP_OK) st = dp_loader_start_epoch(ld, 1 << 29, err);
    int64_t avail = st == DP_OK ? dp_loader_batches_per_epoch(ld) : 0;
    if ((st = dp_dist_check(&t->app->dist, st, err)) != DP_OK) {
        dp_loader_close(ld);
        return st;
    }
    for (int i = 0; i < m->n_buffers; i++) {
        float *b = dp_buffer_ptr(m, i);
        bool var = strstr(m->buffers[i].name, "running_var") != NULL;
        for (size_t j = 0; j < m->buffers[i].numel; j++) b[j] = var ? 1.0f : 0.0f;
    }
    for (int64_t k = 0; k < batches && k < avail && st == DP_OK; k++) {
        dp_batch b;
        st = dp_dist_check(&t->app->dist, dp_loader_next(ld, &b, err), err);
        if (st != DP_OK || b.n == 0) continue;
        for (int i = 0; i < m->n_nodes; i++) /* cumulative average: stat k has weight 1/(k+1) */
            if (m->nodes[i].op == DP_OP_BN) m->nodes[i].a.bn.momentum = 1.0f / (float)(k + 1);
        for (int i = 0; i < b.n; i++) t->keys[i] = b.keys[i];
        dp_forward_opts fo = {.train = true,
                              .seed = (uint64_t)c->run.seed,
                              .sample_keys = t->keys,
                              .hooks = &t->hooks};
        dp_model_forward(m, &t->act, b.x, b.n, &fo);
        trainer_bn_updated(t);
    }
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op == DP_OP_BN) m->nodes[i].a.bn.momentum = 0.1f;
    dp_loader_close(ld);
    return st;
}

dp_status app_test_accuracy(trainer *t, const char *label, int epoch, double *top1, double *top5,
                            dp_error *err) {
    eval_result r;
    dp_status st = DP_OK;
    if (t->data->val.n > 0) {
        st = trainer_evaluate(t, &t->data->val, &r, err);
        if (st == DP_OK) trainer_report_eval(t, "val", epoch, &r);
    }
    if (st == DP_OK) st = trainer_evaluate(t, &t->data->test, &r, err);
    if (st != DP_OK) return st;
    const char *keep = t->phase;
    t->phase = label;
    trainer_report_eval(t, "test", epoch, &r);
    t->phase = keep;
    *top1 = r.count ? (double)r.top1 / r.count : 0;
    *top5 = r.count ? (double)r.top5 / r.count : 0;
    return DP_OK;
}

static dp_status parse_protect(const dp_prune_config *pc, char names[][48], const char **ptrs,
                               int *n, dp_error *err) {
    *n = 0;
    char buf[DP_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", pc->protect);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (*n == 64) return dp_fail(err, DP_ERR_CONFIG, "prune.protect: more than 64 names");
        snprintf(names[*n], 48, "%s", tok);
        ptrs[*n] = names[*n];
        (*n)++;
    }
    return DP_OK;
}

/* The prune history of checkpoints: each round's broadcast plan (criterion, budget, kept
 * indices and scores per group) as [u64 length][plan bytes], appended. */
dp_status app_record_plan(trainer *t, const dp_plan *plan, dp_error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    dp_status st = dp_plan_serialize(plan, &buf, &len, err);
    if (st != DP_OK) return st;
    uint8_t *grown = realloc(t->prune_history, t->prune_history_len + 8 + len);
    if (!grown) {
        free(buf);
        return dp_fail(err, DP_ERR_NOMEM, "prune history: out of memory");
    }
    uint64_t n = len;
    memcpy(grown + t->prune_history_len, &n, 8);
    memcpy(grown + t->prune_history_len + 8, buf, len);
    t->prune_history = grown;
    t->prune_history_len += 8 + len;
    free(buf);
    return DP_OK;
}

dp_status app_build_groups(const dp_prune_config *pc, const dp_model *m, dp_groups *gs,
                           dp_error *err) {
    char names[64][48];
    const char *ptrs[64];
    dp_group_opts go;
    dp_group_opts_default(&go);
    go.residual = pc->residual;
    go.protect_first_conv = pc->protect_first;
    dp_status st = parse_protect(pc, names, ptrs, &go.n_protect, err);
    go.protect = ptrs;
    return st == DP_OK ? dp_groups_build(m, &go, gs, err) : st;
}

dp_status app_plan_round(trainer *t, int round, dp_groups *gs, dp_plan *plan, dp_error *err) {
    return app_plan_round_at(t, round, 1.0, gs, plan, err);
}

/* One round on the current model: groups, scores, plan (rank 0), broadcast; fraction < 1 plans
 * a step of CIP's schedule (a fraction of the budget); with fold, also CorrTopo's fold of the
 * plan's cuts (rank 0, broadcast). */
static dp_status plan_round(trainer *t, int round, double fraction, dp_groups *gs, dp_plan *plan,
                            dp_corr_fold *fold, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    const dp_prune_config *pc = &c->prune;
    dp_prune_config scaled; /* a step of CIP's schedule: a fraction of the budget */
    if (fraction != 1.0) app_cip_budget_at(pc, fraction, &scaled), pc = &scaled;
    dp_dist *d = &t->app->dist;
    dp_status st = app_build_groups(pc, t->m, gs, err);
    if ((st = dp_dist_check(d, st, err)) != DP_OK) return st;
    if (!strcmp(pc->criterion, "csgd")) { /* the plan the merge would make */
        dp_csgd_clusters cl = {0};
        st = app_csgd_decide(t, round, gs, &cl, err);
        if (st == DP_OK) st = dp_csgd_merge_plan(t->m, gs, &cl, plan, err);
        dp_csgd_clusters_free(&cl);
        free(t->csgd_state);
        t->csgd_state = NULL, t->csgd_state_len = 0;
        return dp_dist_check(d, st, err);
    }

    dp_scores sc = {0};
    criterion_state cs = {0};
    calib_kind kind;
    uint64_t seed = (uint64_t)c->run.seed;
    calib_result cr = {0};
    if (needs_calibration(pc->criterion, &kind)) {
        calib_set set;
        /* pruning decisions never see the test set: calibration uses training images */
        st = calib_set_init(&set, &t->data->train, pc->calib_images, seed, err);
        if ((st = dp_dist_check(d, st, err)) != DP_OK) return st;
        if (fold) /* also the maps the consumers read */
            st = app_corr_fold_calibrate(d, t->m, t->data, &set, gs, seed, &cr, err);
        else
            st = calibrate(d, t->m, t->data, &set, gs, kind, seed, &cr, err);
        if (st == DP_OK && d->rank == 0)
            st = scores_from_stats(pc->criterion, pc, gs, &cr, &sc, &cs, err);
        calib_set_free(&set);
    } else if (!strcmp(pc->criterion, "cip")) { /* collective: statistics of every feature map */
        st = app_cip_scores(t, gs, &sc, err);
    } else if (d->rank == 0 && !strcmp(pc->criterion, "fec")) {
        st = app_fec_plan(t, round, gs, plan, err); /* the ratio rule, or layer by layer */
    } else if (d->rank == 0) {
        st = dp_weight_scores(pc->criterion, t->m, gs, seed, round, &sc, err);
        if (st == DP_OK && sc.note[0]) fprintf(stderr, "prune: %s\n", sc.note);
    }
    if (st == DP_OK && d->rank == 0 && strcmp(pc->criterion, "fec") != 0)
        st = decide_plan(t->m, pc, gs, &sc, &cs, plan, err);
    else if (st == DP_OK && d->rank != 0)
        st = dp_plan_init(plan, gs, err);
    if (st == DP_OK && d->rank == 0 && fold)
        st = app_corr_fold_decide(pc, t->m, gs, &cr, plan, fold, err);
    calib_result_free(&cr);
    dp_scores_free(&sc);
    criterion_state_free(&cs);
    if ((st = dp_dist_check(d, st, err)) != DP_OK) return st;
    st = broadcast_plan(d, plan, err);
    if (st == DP_OK && fold) st = app_corr_fold_bcast(d, fold, err);
    return st;
}

dp_status app_plan_round_at(trainer *t, int round, double fraction, dp_groups *gs, dp_plan *plan,
                            dp_error *err) {
    return plan_round(t, round, fraction, gs, plan, NULL, err);
}

dp_status app_cut(trainer *t, int round, const dp_groups *gs, const dp_plan *plan,
                  const dp_corr_fold *fold, dp_error *err) {
    const dp_prune_config *pc = &t->app->cfg.prune;
    dp_model *m = t->m;
    dp_status st = app_record_plan(t, plan, err);
    if (st == DP_OK && t->app->dist.rank == 0) {
        app_write_plan_text(t, round, plan, m, gs);
        fprintf(stderr, "prune round %d (%s, %s): FLOPs %lld -> %lld, params %lld -> %lld\n", round,
                pc->criterion, plan->budget, (long long)dp_model_flops(m),
                (long long)plan->flops_after, (long long)dp_model_params(m),
                (long long)plan->params_after);
    }
    if (st == DP_OK && fold && t->app->dist.rank == 0)
        fprintf(stderr, "prune round %d: corr fold of %d map(s) into their consumers (%s)\n", round,
                fold->n_maps, pc->corr_compensate ? "mean + compensation" : "mean");
    dp_model small = {0};
    /* every rank cuts the same channels from the same plan (and folds the same numbers) */
    dp_surgery_opts so = {0};
    if (fold) so = dp_corr_surgery_opts(fold);
    if (st == DP_OK)
        st = dp_dist_check(&t->app->dist,
                           dp_surgery(m, gs, plan, &t->opt, fold ? &so : NULL, &small, err), err);
    if (st == DP_OK) st = trainer_replace_model(t, &small, err);
    return st;
}

/* One round's decision and cut for a scoring criterion: plan (and corr's fold) on rank 0,
 * broadcast, the same surgery (and fold) on every rank. */
dp_status app_plan_and_cut(trainer *t, int round, dp_error *err) {
    dp_groups gs = {0};
    dp_plan plan = {0};
    dp_corr_fold fold = {0};
    bool folding = app_corr_fold_wanted(&t->app->cfg.prune);
    dp_status st = plan_round(t, round, 1.0, &gs, &plan, folding ? &fold : NULL, err);
    if (st == DP_OK) st = app_cut(t, round, &gs, &plan, folding ? &fold : NULL, err);
    dp_corr_fold_free(&fold);
    dp_plan_free(&plan);
    dp_groups_free(&gs);
    return st;
}

dp_status app_prune(trainer *t, dp_model *m, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    const dp_prune_config *pc = &c->prune;
    if (!strcmp(pc->criterion, "none")) return DP_OK;
    model_facts before = {0}, after = {0};
    dp_status st = DP_OK;
    int infer_batch = t->micro_global < 64 ? t->micro_global : 64;
    bool resumed_pruned = t->resuming && t->resume_state.phase > 0;
    /* a run resumed after its surgery measured the baseline before the interruption */
    if (!(resumed_pruned && facts_from_summary(t->summary, m, &before))) {
        facts_free(&before); /* what a partial parse may have allocated */
        facts_take(m, &before);
        st = app_test_accuracy(t, "baseline", 0, &before.top1, &before.top5, err);
        before.images_per_s = measure_inference(m, infer_batch);
        facts_to_summary(&before, m, t->summary, sizeof t->summary);
    }
    dp_train_config ft = c->train; /* fine-tuning: the training recipe, its own length and lr */
    ft.epochs = pc->finetune_epochs;
    ft.lr = pc->finetune_lr;
    ft.warmup_epochs = 0;
    snprintf(ft.schedule, sizeof ft.schedule, "cosine");
    ft.pcc_lambda = 0; /* the PCC term shapes pre-training for CI; fine-tuning is CE only */
    char phase[32];
    bool csgd = !strcmp(pc->criterion, "csgd"), cip = !strcmp(pc->criterion, "cip");
    int rounds = pc->rounds; /* layer by layer: one round per group to cut */
    if (st == DP_OK && pc->fec_layerwise)
        st = app_fec_layer_schedule(t, resumed_pruned, &rounds, err);
    for (int round = 1; round <= rounds && st == DP_OK; round++) {
        snprintf(phase, sizeof phase, "finetune%d", round);
        ft.epochs =
            pc->fec_layerwise && round < rounds ? pc->fec_layer_epochs : pc->finetune_epochs;
        /* resumed: phase r is round r's fine-tuning, APP_CSGD_PHASE_BASE + r its C-SGD phase */
        int at = t->resuming ? t->resume_state.phase : -1;
        bool at_csgd = at >= APP_CSGD_PHASE_BASE;
        int at_round = at_csgd ? at - APP_CSGD_PHASE_BASE : at;
        if (t->resuming && at_round > round) continue; /* this round is in the loaded model */
        if (t->resuming && at_round == round && !at_csgd) {
            t->phase = phase;
            t->phase_index = round;
            t->tc = &ft;
            if (ft.epochs > 0) st = trainer_run(t, err);
            t->tc = &c->train;
            if (t->stopped) break;
            continue;
        }
        if (csgd) {
            /* the merge is exact: no BN re-estimation after it */
            st = app_csgd_round(t, round, err);
            if (t->stopped) break;
        } else {
            /* cip: the soft schedule, then its last step's plan is cut */
            st = cip ? app_cip_round(t, round, err) : app_plan_and_cut(t, round, err);
            if (t->stopped) break;
            if (st == DP_OK) st = app_reestimate_bn(t, pc->bn_recalib_batches, err);
        }
        t->phase = phase;
        t->phase_index = round;
        double top1, top5;
        if (st == DP_OK) st = app_test_accuracy(t, "after-surgery", round, &top1, &top5, err);
        t->tc = &ft;
        if (st == DP_OK && ft.epochs > 0) st = trainer_run(t, err);
        /* no fine-tuning: still checkpoint the pruned model (the end of this phase) */
        if (st == DP_OK && ft.epochs == 0 && c->checkpoint.every_epochs > 0)
            st = trainer_checkpoint(t, 0, 0, err);
        t->tc = &c->train;
        if (t->stopped) break;
    }
    if (st == DP_OK && !t->stopped) {
        t->phase = "final";
        facts_take(m, &after);
        st = app_test_accuracy(t, "final", 0, &after.top1, &after.top5, err);
        after.images_per_s = measure_inference(m, infer_batch);
        if (st == DP_OK) print_summary(t, m, &before, &after);
    }
    facts_free(&before);
    facts_free(&after);
    return st;
}

int app_cmd_plan(dp_app *app) {
    const dp_config *c = &app->cfg;
    dp_error err = {0};
    dp_app_data data;
    dp_model m = {0};
    trainer t = {0};
    dp_groups gs = {0};
    dp_plan plan = {0};
    if (!strcmp(c->prune.criterion, "none")) {
        if (app->dist.rank == 0)
            fprintf(stderr, "dprune: error: %s: prune.criterion is \"none\": nothing to plan\n",
                    c->path);
        return 1;
    }
    dp_status st = dp_dist_check(&app->dist, app_open_data(c, &data, &err), &err);
    if (st == DP_OK) st = dp_dist_check(&app->dist, app_build_model(app, &data, &m, &err), &err);
    if (st == DP_OK) st = trainer_init(&t, app, &data, &m, &err);
    if (st == DP_OK) st = app_plan_round(&t, 1, &gs, &plan, &err);
    if (st == DP_OK && app->dist.rank == 0) {
        char *text = NULL;
        if (dp_plan_render(&plan, &m, &gs, &text, &err) == DP_OK) fputs(text, stdout);
        free(text);
        printf("weights: freshly initialised (seed %lld); nothing was cut\n",
               (long long)c->run.seed);
        printf("FLOPs %lld -> %lld (-%.2f%%), params %lld -> %lld (-%.2f%%)\n",
               (long long)plan.flops_before, (long long)plan.flops_after,
               100.0 * (1 - (double)plan.flops_after / plan.flops_before),
               (long long)plan.params_before, (long long)plan.params_after,
               100.0 * (1 - (double)plan.params_after / plan.params_before));
        app_latency_print_plan(&c->prune, &m, &gs, &plan, stdout);
        if (c->prune.fec_layerwise)
            printf("fec_layerwise: these widths are reached one group per round, last group "
                   "first, with %d fine-tune epoch(s) between groups\n",
                   c->prune.fec_layer_epochs);
    }
    dp_plan_free(&plan);
    dp_groups_free(&gs);
    trainer_free(&t);
    dp_model_free(&m);
    app_close_data(&data);
    return st == DP_OK ? 0 : 1;
}
