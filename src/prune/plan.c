/* The plan object: a sorted keep-list per group, made from scores and keep counts, and its
 * consistency check. The budget logic that chooses the counts is in planner.c. */
#include "prune_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double score;
    int index;
} ranked;

/* Most important first; equal scores: lower index first. A total order, so qsort (not
 * stable) still gives one answer. */
static int by_importance(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    return (a->index > b->index) - (a->index < b->index);
}

dp_status prune_rank_channels(const double *scores, int C, int *order, dp_error *err) {
    ranked *r = malloc(sizeof *r * (size_t)(C > 0 ? C : 1));
    if (!r) return dp_fail(err, DP_ERR_NOMEM, "prune: out of memory ranking %d channels", C);
    for (int j = 0; j < C; j++) {
        if (!isfinite(scores[j])) {
            free(r);
            return dp_fail(err, DP_ERR_NUMERIC, "prune: score of channel %d is %g", j, scores[j]);
        }
        r[j] = (ranked){scores[j], j};
    }
    qsort(r, (size_t)C, sizeof *r, by_importance);
    for (int j = 0; j < C; j++) order[j] = r[j].index;
    free(r);
    return DP_OK;
}

static int ascending(const void *pa, const void *pb) {
    int a = *(const int *)pa, b = *(const int *)pb;
    return (a > b) - (a < b);
}

dp_status dp_plan_init(dp_plan *p, const dp_groups *gs, dp_error *err) {
    memset(p, 0, sizeof *p);
    p->groups = calloc((size_t)(gs->n_groups > 0 ? gs->n_groups : 1), sizeof(dp_group_plan));
    if (!p->groups) return dp_fail(err, DP_ERR_NOMEM, "prune: out of memory for a plan");
    p->n_groups = gs->n_groups;
    p->target = -1;
    snprintf(p->budget, sizeof p->budget, "none");
    for (int g = 0; g < gs->n_groups; g++) {
        dp_group_plan *gp = &p->groups[g];
        const dp_channel_group *grp = &gs->groups[g];
        snprintf(gp->name, sizeof gp->name, "%s", grp->name);
        gp->channels = gp->n_keep = grp->channels;
        gp->keep = malloc(sizeof(int) * (size_t)grp->channels);
        if (!gp->keep) {
            dp_plan_free(p);
            return dp_fail(err, DP_ERR_NOMEM, "prune: out of memory for a plan");
        }
        for (int j = 0; j < grp->channels; j++) gp->keep[j] = j;
    }
    return DP_OK;
}

void dp_plan_free(dp_plan *p) {
    for (int g = 0; g < p->n_groups; g++) {
        free(p->groups[g].keep);
        free(p->groups[g].scores);
    }
    free(p->groups);
    memset(p, 0, sizeof *p);
}

/* Fills the before/after counts of a plan whose keep-lists are final. */
static void plan_counts(const dp_model *m, const dp_groups *gs, dp_plan *p, int *counts) {
    for (int g = 0; g < gs->n_groups; g++) counts[g] = p->groups[g].n_keep;
    dp_groups_count(m, gs, NULL, &p->flops_before, &p->params_before);
    dp_groups_count(m, gs, counts, &p->flops_after, &p->params_after);
}

dp_status dp_plan_from_scores(const dp_model *m, const dp_groups *gs, const dp_scores *sc,
                              const int *keep_counts, const char *criterion, dp_plan *p,
                              dp_error *err) {
    dp_status st = dp_plan_init(p, gs, err);
    if (st != DP_OK) return st;
    snprintf(p->criterion, sizeof p->criterion, "%s", criterion ? criterion : "");
    int *order = malloc(sizeof(int));
    int *counts = malloc(sizeof(int) * (size_t)(gs->n_groups + 1));
    if (!order || !counts) goto nomem;
    for (int g = 0; g < gs->n_groups; g++) {
        const dp_channel_group *grp = &gs->groups[g];
        dp_group_plan *gp = &p->groups[g];
        int C = grp->channels, keep = keep_counts ? keep_counts[g] : C;
        const double *s = sc && g < sc->n_groups ? sc->s[g] : NULL;
        if (s) {
            gp->scores = malloc(sizeof(double) * (size_t)C);
            if (!gp->scores) goto nomem;
            memcpy(gp->scores, s, sizeof(double) * (size_t)C);
        }
        if (keep == C) continue;
        if (!grp->prunable) {
            st = dp_fail(err, DP_ERR_ARG, "prune: group '%s' cannot be pruned (%s)", grp->name,
                         grp->why_not);
            goto fail;
        }
        if (keep < 1 || keep > C) {
            st = dp_fail(err, DP_ERR_ARG, "prune: group '%s' would keep %d of %d channels",
                         grp->name, keep, C);
            goto fail;
        }
        if (!s) {
            st = dp_fail(err, DP_ERR_ARG, "prune: group '%s' has no scores", grp->name);
            goto fail;
        }
        int *rank = realloc(order, sizeof(int) * (size_t)C);
        if (!rank) goto nomem;
        order = rank;
        dp_error why = {0};
        if ((st = prune_rank_channels(s, C, order, &why)) != DP_OK) {
            st = dp_fail(err, st, "group '%s': %s", grp->name, why.msg);
            goto fail;
        }
        memcpy(gp->keep, order, sizeof(int) * (size_t)keep);
        qsort(gp->keep, (size_t)keep, sizeof(int), ascending);
        gp->n_keep = keep;
    }
    plan_counts(m, gs, p, counts);
    free(order);
    free(counts);
    return DP_OK;
nomem:
    st = dp_fail(err, DP_ERR_NOMEM, "prune: out of memory making a plan");
fail:
    free(order);
    free(counts);
    dp_plan_free(p);
    return st;
}

dp_status dp_plan_check(const dp_plan *p, const dp_groups *gs, dp_error *err) {
    if (p->n_groups != gs->n_groups)
        return dp_fail(err, DP_ERR_ARG, "plan: %d groups, the model has %d", p->n_groups,
                       gs->n_groups);
    for (int g = 0; g < gs->n_groups; g++) {
        const dp_group_plan *gp = &p->groups[g];
        const dp_channel_group *grp = &gs->groups[g];
        if (gp->channels != grp->channels || strcmp(gp->name, grp->name))
            return dp_fail(err, DP_ERR_ARG,
                           "plan: group %d is '%s' with %d channels, the model's is '%s' with %d",
                           g, gp->name, gp->channels, grp->name, grp->channels);
        if (gp->n_keep < 1 || gp->n_keep > gp->channels)
            return dp_fail(err, DP_ERR_ARG, "plan: group '%s' keeps %d of %d channels", gp->name,
                           gp->n_keep, gp->channels);
        if (gp->n_keep < gp->channels && !grp->prunable)
            return dp_fail(err, DP_ERR_ARG, "plan: group '%s' cannot be pruned (%s)", gp->name,
                           grp->why_not);
        for (int j = 0; j < gp->n_keep; j++)
            if (gp->keep[j] < 0 || gp->keep[j] >= gp->channels ||
                (j > 0 && gp->keep[j] <= gp->keep[j - 1]))
                return dp_fail(err, DP_ERR_ARG,
                               "plan: group '%s': kept indices must be ascending in [0, %d)",
                               gp->name, gp->channels);
    }
    return DP_OK;
}
