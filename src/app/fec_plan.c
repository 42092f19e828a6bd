/* FEC's plans: the one-shot plan and the layer-by-layer schedule (METHODS section 5, "backward
 * layer-by-layer order, a few fine-tune epochs between layers").
 *
 * Layer by layer, every group keeps the count the one-shot plan of the unpruned model gives it:
 * the one-shot rule bisects beta over all groups at once, so its widths are what reaches the
 * budget; recomputing the rule after each fine-tune would move the target with every layer.
 * Only which channels a group keeps is decided at its own round, from the FEC scores of the
 * weights as they are then. Going backward, a group's filters (the scores) read the channels of
 * the group before it, which is still whole, so with no fine-tuning in between the result is
 * exactly the one-shot model. */
#include "fec_plan.h"
#include "latency.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEDULE_KEY "\"fec_layerwise\":\""

/* Scores of every prunable group (prune.fec_abs_mean) and each group's entropy summary. */
static dp_status fec_scores(const dp_prune_config *pc, const dp_model *m, const dp_groups *gs,
                            dp_scores *sc, dp_fec_group_info *info, dp_error *err) {
    dp_status st = dp_scores_alloc(sc, gs, err);
    dp_fec_opts o = {pc->fec_abs_mean};
    for (int g = 0; g < gs->n_groups && st == DP_OK; g++) {
        memset(&info[g], 0, sizeof info[g]);
        if (!sc->s[g]) continue;
        st = dp_score_fec(m, gs, g, &o, sc->s[g], &info[g], err);
        if (st == DP_OK && info[g].fell_back_to_l1)
            fprintf(stderr,
                    "prune: fec: group '%s' has a writer with one input channel: l1 used "
                    "there\n",
                    gs->groups[g].name);
    }
    return st;
}

/* The one-shot plan: the ratio rule for a flops, params or global target, else the planner. */
static dp_status oneshot_plan(const dp_prune_config *pc, const dp_model *m, const dp_groups *gs,
                              const dp_scores *sc, const dp_fec_group_info *info, dp_plan *plan,
                              dp_error *err) {
    dp_budget b;
    app_budget_from_config(pc, &b);
    if (!strcmp(pc->budget, "threshold"))
        return dp_fail(err, DP_ERR_CONFIG,
                       "prune.budget = \"threshold\" needs prune.criterion corr or ci (got fec)");
    if (b.kind == DP_BUDGET_FLOPS || b.kind == DP_BUDGET_PARAMS || b.kind == DP_BUDGET_GLOBAL)
        return dp_plan_fec_ratio_rule(m, gs, sc, info, &b, plan, NULL, err);
    app_latency lat = {0};
    dp_status st = DP_OK;
    if (b.kind == DP_BUDGET_LATENCY && (st = app_latency_open(pc, m, &lat, err)) == DP_OK)
        b.latency = &lat.map;
    if (st == DP_OK) st = dp_plan_make(m, gs, sc, &b, "fec", plan, err);
    app_latency_close(&lat);
    return st;
}

typedef struct {
    int n;
    int group[256], keep[256]; /* in cut order */
} schedule;

/* "G:K G:K ..." after SCHEDULE_KEY in the summary; false when there is none. */
static bool schedule_parse(const char *summary, schedule *s) {
    const char *q = strstr(summary, SCHEDULE_KEY);
    s->n = 0;
    if (!q) return false;
    for (q += strlen(SCHEDULE_KEY); *q && *q != '"' && s->n < 256;) {
        int g, k, used = 0;
        if (sscanf(q, " %d:%d%n", &g, &k, &used) != 2 || used == 0) return false;
        s->group[s->n] = g, s->keep[s->n] = k, s->n++;
        q += used;
    }
    return *q == '"';
}

/* Groups the plan cuts, last first, with their kept counts, as "G:K G:K". */
static void schedule_text(const dp_plan *plan, char *out, size_t n) {
    size_t w = 0;
    out[0] = 0;
    for (int g = plan->n_groups - 1; g >= 0 && w + 32 < n; g--)
        if (plan->groups[g].n_keep < plan->groups[g].channels)
            w += (size_t)snprintf(out + w, n - w, "%s%d:%d", w ? " " : "", g,
                                  plan->groups[g].n_keep);
}

/* Rank 0: the schedule of the current model as text. */
static dp_status schedule_decide(trainer *t, char *text, size_t n, dp_error *err) {
    const dp_prune_config *pc = &t->app->cfg.prune;
    dp_groups gs = {0};
    dp_scores sc = {0};
    dp_plan plan = {0};
    dp_fec_group_info *info = NULL;
    dp_status st = app_build_groups(pc, t->m, &gs, err);
    if (st == DP_OK && !(info = calloc((size_t)gs.n_groups + 1, sizeof *info)))
        st = dp_fail(err, DP_ERR_NOMEM, "fec: out of memory");
    if (st == DP_OK) st = fec_scores(pc, t->m, &gs, &sc, info, err);
    if (st == DP_OK) st = oneshot_plan(pc, t->m, &gs, &sc, info, &plan, err);
    if (st == DP_OK && dp_groups_prunable_count(&gs) > 256)
        st = dp_fail(err, DP_ERR_CONFIG, "fec_layerwise: more than 256 prunable groups");
    if (st == DP_OK) {
        schedule_text(&plan, text, n);
        fprintf(stderr, "prune: fec layer by layer (%s), last group first:", plan.budget);
        for (int g = gs.n_groups - 1; g >= 0; g--)
            if (plan.groups[g].n_keep < plan.groups[g].channels)
                fprintf(stderr, " %s %d->%d", gs.groups[g].name, plan.groups[g].channels,
                        plan.groups[g].n_keep);
        fprintf(stderr, "; %d fine-tune epoch(s) between groups\n", pc->fec_layer_epochs);
    }
    dp_plan_free(&plan);
    dp_scores_free(&sc);
    free(info);
    dp_groups_free(&gs);
    return st;
}

dp_status app_fec_layer_schedule(trainer *t, bool resumed_pruned, int *rounds, dp_error *err) {
    dp_dist *d = &t->app->dist;
    schedule s;
    if (schedule_parse(t->summary, &s)) { /* resumed: every rank read the same summary */
        *rounds = s.n;
        return DP_OK;
    }
    if (resumed_pruned)
        return dp_dist_check(d,
                             dp_fail(err, DP_ERR_CHECKPOINT,
                                     "fec_layerwise: the checkpoint was written after a cut but "
                                     "holds no layer-by-layer schedule"),
                             err);
    char text[256 * 24];
    dp_status st = d->rank == 0 ? schedule_decide(t, text, sizeof text, err) : DP_OK;
    if ((st = dp_dist_check(d, st, err)) != DP_OK) return st;
    uint8_t *buf = d->rank == 0 ? (uint8_t *)text : NULL;
    size_t len = strlen(text) + 1;
    if ((st = app_bcast_blob(d, &buf, &len, err)) != DP_OK) return st;
    size_t used = strlen(t->summary);
    int w = snprintf(t->summary + used, sizeof t->summary - used, "%s" SCHEDULE_KEY "%s\"",
                     used ? "," : "", (const char *)buf);
    if (d->rank != 0) free(buf);
    if (w < 0 || (size_t)w >= sizeof t->summary - used || !schedule_parse(t->summary, &s))
        st = dp_fail(err, DP_ERR_NOMEM, "fec_layerwise: the schedule does not fit the summary");
    *rounds = s.n;
    return dp_dist_check(d, st, err);
}

dp_status app_fec_plan(trainer *t, int round, const dp_groups *gs, dp_plan *plan, dp_error *err) {
    const dp_prune_config *pc = &t->app->cfg.prune;
    dp_scores sc = {0};
    dp_fec_group_info *info = calloc((size_t)gs->n_groups + 1, sizeof *info);
    int *keep = malloc(sizeof(int) * ((size_t)gs->n_groups + 1));
    dp_status st = info && keep ? fec_scores(pc, t->m, gs, &sc, info, err)
                                : dp_fail(err, DP_ERR_NOMEM, "fec: out of memory");
    schedule s;
    if (st == DP_OK && !(pc->fec_layerwise && schedule_parse(t->summary, &s))) {
        st = oneshot_plan(pc, t->m, gs, &sc, info, plan, err);
    } else if (st == DP_OK) {
        int g = round >= 1 && round <= s.n ? s.group[round - 1] : -1;
        if (g < 0 || g >= gs->n_groups || !gs->groups[g].prunable ||
            s.keep[round - 1] > gs->groups[g].channels || s.keep[round - 1] < 1)
            st = dp_fail(err, DP_ERR_CHECKPOINT,
                         "fec_layerwise: round %d does not fit the schedule of %d groups", round,
                         s.n);
        for (int i = 0; i < gs->n_groups && st == DP_OK; i++)
            keep[i] = i == g ? s.keep[round - 1] : gs->groups[i].channels;
        if (st == DP_OK) st = dp_plan_from_scores(t->m, gs, &sc, keep, "fec", plan, err);
        if (st == DP_OK)
            snprintf(plan->budget, sizeof plan->budget, "fec layer by layer: group %d of %d (%s)",
                     round, s.n, gs->groups[g].name);
    }
    dp_scores_free(&sc);
    free(info), free(keep);
    return st;
}
