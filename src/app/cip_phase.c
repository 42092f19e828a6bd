/* A CIP round (METHODS.md section 3): a training phase of prune.cip_epochs epochs in which, at
 * the ends of epochs t * Delta (Delta = cip_epochs / cip_steps), step t re-scores every channel
 * (calibration of the feature maps, propagation from the classifier) and soft-zeroes the
 * lowest-scored ones of the fraction p_t / p_f = 1 - (1 - t/n)^3 of the budget, with Soft Filter
 * Pruning semantics; step n's plan is then cut physically like any other criterion's, and the
 * ordinary fine-tuning follows. Masks are plans decided on rank 0 and broadcast.
 * The algorithms are in prune/ (crit_cip.c, cip_scores.c, soft_zero.c); this file sequences. */
#include "app.h"
#include "calibrate.h"
#include "dprune/cip.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void app_cip_budget_at(const dp_prune_config *pc, double fraction, dp_prune_config *out) {
    *out = *pc;
    out->ratio *= fraction;
    out->target *= fraction;
    for (int i = 0; i < out->n_ratios; i++) out->ratios[i] *= fraction;
}

dp_status app_cip_scores(trainer *t, const dp_groups *gs, dp_scores *sc, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    dp_dist *d = &t->app->dist;
    const dp_model *m = t->m;
    uint64_t seed = (uint64_t)c->run.seed;
    int *nodes = malloc(sizeof(int) * ((size_t)m->n_nodes + 1));
    const double **rms = calloc((size_t)m->n_nodes + 1, sizeof(double *));
    calib_set set = {0};
    calib_result cr = {0};
    dp_status st = nodes && rms ? DP_OK : dp_fail(err, DP_ERR_NOMEM, "cip: out of memory");
    int n = nodes ? dp_cip_feature_nodes(m, gs, nodes, m->n_nodes) : 0;
    /* pruning decisions never see the test set: calibration uses training images */
    if (st == DP_OK) st = calib_set_init(&set, &t->data->train, c->prune.calib_images, seed, err);
    if ((st = dp_dist_check(d, st, err)) == DP_OK)
        st = calibrate_nodes(d, m, t->data, &set, nodes, n, CALIB_RMS, seed, &cr, err);
    if (st == DP_OK && d->rank == 0) {
        for (int i = 0; i < n; i++) rms[nodes[i]] = cr.total[i];
        dp_cip_phi phi = c->prune.cip_phi_tanh ? DP_CIP_PHI_TANH : DP_CIP_PHI_ONE;
        st = dp_cip_scores(m, gs, rms, phi, sc, err);
    }
    calib_result_free(&cr);
    calib_set_free(&set);
    free(rms);
    free(nodes);
    return st; /* rank 0's scoring error reaches the others through the planner's check */
}

/* The schedule in progress: where it is, and the trainer it runs in. */
typedef struct {
    trainer *t;
    int round, steps, every; /* every = Delta epochs */
    dp_cip_state state;      /* the last step done and its mask */
} schedule;

/* t->cip_state = the schedule's bytes, for the checkpoints of the phase. */
static dp_status keep_state(schedule *s, dp_error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    dp_status st = dp_cip_state_serialize(&s->state, &buf, &len, err);
    if (st == DP_OK) {
        free(s->t->cip_state);
        s->t->cip_state = buf, s->t->cip_state_len = len;
    }
    return dp_dist_check(&s->t->app->dist, st, err);
}

/* Rank 0: one line and one metrics record per step: what the mask zeroes (or the plan cuts),
 * per prunable group, and how many of the previous step's zeroed channels it no longer masks
 * (re-scored above others: grown back, or a tie among dead maps broken by index). */
static void report(schedule *s, int step, int epoch, const dp_groups *gs, const dp_plan *mask,
                   bool cut) {
    trainer *t = s->t;
    if (t->app->dist.rank != 0) return;
    const dp_plan *prev = &s->state.mask;
    int64_t zeroed = 0, unmasked = 0;
    char per_text[1024] = "", per_json[1024] = "";
    size_t tl = 0, jl = 0;
    for (int g = 0; g < gs->n_groups; g++) {
        if (!gs->groups[g].prunable) continue;
        const dp_group_plan *gp = &mask->groups[g];
        int removed = gp->channels - gp->n_keep;
        zeroed += removed;
        if (g < prev->n_groups && prev->groups[g].channels == gp->channels) {
            /* channels zeroed before (not kept then) that this mask keeps */
            const dp_group_plan *pp = &prev->groups[g];
            for (int k = 0, j = 0; k < gp->n_keep; k++) {
                while (j < pp->n_keep && pp->keep[j] < gp->keep[k]) j++;
                unmasked += !(j < pp->n_keep && pp->keep[j] == gp->keep[k]);
            }
        }
        if (tl < sizeof per_text)
            tl += (size_t)snprintf(per_text + tl, sizeof per_text - tl, "%s%s %d", tl ? ", " : "",
                                   gs->groups[g].name, removed);
        if (jl < sizeof per_json)
            jl += (size_t)snprintf(per_json + jl, sizeof per_json - jl, "%s%d", jl ? "," : "",
                                   removed);
    }
    double fraction = dp_cip_schedule(1.0, step, s->steps);
    fprintf(stderr,
            "%s step %d/%d after epoch %d: %.4f of the budget (%s): %s %lld channels (%s); %lld "
            "of step %d's are no longer masked; FLOPs if cut %lld -> %lld\n",
            t->phase, step, s->steps, epoch, fraction, mask->budget, cut ? "cuts" : "soft-zeroes",
            (long long)zeroed, per_text, (long long)unmasked, s->state.step,
            (long long)mask->flops_before, (long long)mask->flops_after);
    dp_metrics_write(t->metrics,
                     "\"type\":\"cip_step\",\"phase\":\"%s\",\"round\":%d,\"step\":%d,"
                     "\"steps\":%d,\"epoch\":%d,\"fraction\":%.6f,\"cut\":%s,\"zeroed\":%lld,"
                     "\"zeroed_per_group\":[%s],\"unmasked\":%lld,\"flops_after\":%lld,"
                     "\"params_after\":%lld",
                     t->phase, s->round, step, s->steps, epoch, fraction, cut ? "true" : "false",
                     (long long)zeroed, per_json, (long long)unmasked, (long long)mask->flops_after,
                     (long long)mask->params_after);
}

/* Step t < n: re-score, decide the mask (rank 0, broadcast), soft-zero it on every rank. */
static dp_status soft_step(schedule *s, int step, int epoch, dp_error *err) {
    trainer *t = s->t;
    /* calibration runs every rank's share in eval mode: every rank must hold the same BN */
    dp_status st = trainer_average_bn(t, err);
    dp_groups gs = {0};
    dp_plan mask = {0};
    if (st == DP_OK)
        st = app_plan_round_at(t, s->round, dp_cip_schedule(1.0, step, s->steps), &gs, &mask, err);
    if (st == DP_OK) {
        dp_cip_soft_zero(t->m, &gs, &mask, t->opt.momentum);
        report(s, step, epoch, &gs, &mask, false);
        dp_plan_free(&s->state.mask);
        s->state.mask = mask, s->state.step = step;
        memset(&mask, 0, sizeof mask);
        st = keep_state(s, err);
    }
    dp_plan_free(&mask);
    dp_groups_free(&gs);
    return st;
}

static dp_status schedule_epoch_end(void *ctx, trainer_epoch_info *info, bool *stop,
                                    dp_error *err) {
    schedule *s = ctx;
    *stop = false;
    int step = dp_cip_step_at_epoch(info->epoch, info->epochs, s->steps);
    /* step n is the cut, after the phase */
    return step >= 1 && step < s->steps ? soft_step(s, step, info->epoch, err) : DP_OK;
}

/* The state saved in the checkpoint this run resumed from, checked against the round, the
 * groups and the epoch the checkpoint says it was taken at. */
static dp_status resumed_state(schedule *s, const dp_groups *gs, dp_error *err) {
    trainer *t = s->t;
    dp_status st = t->cip_state
                       ? dp_cip_state_deserialize(t->cip_state, t->cip_state_len, &s->state, err)
                       : dp_fail(err, DP_ERR_CHECKPOINT,
                                 "the checkpoint was saved inside CIP round %d's "
                                 "schedule but holds no cip section",
                                 s->round);
    int done = (int)t->resume_state.epoch; /* epochs completed when it was saved */
    int want = s->every > 0 ? done / s->every : 0;
    if (want > s->steps - 1) want = s->steps - 1;
    if (st == DP_OK && (s->state.round != s->round || s->state.steps != s->steps))
        st = dp_fail(err, DP_ERR_CHECKPOINT,
                     "the checkpoint's CIP state is of round %d with %d steps; this run is in "
                     "round %d with prune.cip_steps = %d",
                     s->state.round, s->state.steps, s->round, s->steps);
    else if (st == DP_OK && s->state.step != want)
        st = dp_fail(err, DP_ERR_CHECKPOINT,
                     "the checkpoint's CIP state is after step %d, but it was saved after %d "
                     "epochs of the schedule, i.e. after step %d",
                     s->state.step, done, want);
    if (st == DP_OK) st = dp_plan_check(&s->state.mask, gs, err);
    return dp_dist_check(&t->app->dist, st, err);
}

/* Step n: the final plan (the whole budget), cut on every rank. */
static dp_status final_step(schedule *s, int epochs, dp_error *err) {
    trainer *t = s->t;
    dp_status st = trainer_average_bn(t, err);
    dp_groups gs = {0};
    dp_plan plan = {0};
    if (st == DP_OK) st = app_plan_round_at(t, s->round, 1.0, &gs, &plan, err);
    if (st == DP_OK) report(s, s->steps, epochs, &gs, &plan, true);
    if (st == DP_OK) st = app_cut(t, s->round, &gs, &plan, NULL, err);
    dp_plan_free(&plan);
    dp_groups_free(&gs);
    return st;
}

dp_status app_cip_round(trainer *t, int round, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    const dp_prune_config *pc = &c->prune;
    bool resumed = t->resuming && t->resume_state.phase == APP_CIP_PHASE_BASE + round;
    schedule s = {
        .t = t, .round = round, .steps = pc->cip_steps, .every = pc->cip_epochs / pc->cip_steps};
    dp_groups gs = {0};
    dp_status st = dp_dist_check(&t->app->dist, app_build_groups(pc, t->m, &gs, err), err);
    if (st == DP_OK && resumed) {
        st = resumed_state(&s, &gs, err);
    } else if (st == DP_OK) { /* step 0: p_0 = 0, nothing zeroed */
        s.state = (dp_cip_state){.round = round, .step = 0, .steps = s.steps};
        st = dp_dist_check(&t->app->dist, dp_plan_init(&s.state.mask, &gs, err), err);
    }
    if (st == DP_OK) st = keep_state(&s, err);
    if (st != DP_OK) goto done;

    dp_train_config phase_tc = c->train;
    phase_tc.epochs = pc->cip_epochs;
    phase_tc.lr = pc->cip_lr;
    phase_tc.warmup_epochs = 0;
    phase_tc.pcc_lambda = 0;
    snprintf(phase_tc.schedule, sizeof phase_tc.schedule, "constant");
    char phase[32];
    snprintf(phase, sizeof phase, "cip%d", round);
    t->phase = phase;
    t->phase_index = APP_CIP_PHASE_BASE + round;
    t->tc = &phase_tc;
    if (t->app->dist.rank == 0) {
        if (resumed)
            fprintf(stderr, "CIP round %d: resumed inside the schedule after step %d of %d\n",
                    round, s.state.step, s.steps);
        else if (pc->cip_epochs == 0)
            fprintf(stderr, "CIP round %d: prune.cip_epochs = 0: one shot, no soft steps\n", round);
        else
            fprintf(stderr,
                    "CIP round %d: %d steps, one every %d epochs (%d epochs at lr %g), toward "
                    "prune.budget = %s; step 0 zeroes nothing\n",
                    round, s.steps, s.every, pc->cip_epochs, pc->cip_lr, pc->budget);
    }
    t->epoch_end = schedule_epoch_end, t->epoch_end_ctx = &s;
    st = phase_tc.epochs > 0 ? trainer_run(t, err) : DP_OK;
    t->epoch_end = NULL, t->epoch_end_ctx = NULL;
    t->tc = &c->train;
    if (st == DP_OK && !t->stopped) st = final_step(&s, pc->cip_epochs, err);
done:
    free(t->cip_state);
    t->cip_state = NULL, t->cip_state_len = 0;
    dp_cip_state_free(&s.state);
    dp_groups_free(&gs);
    return st;
}
