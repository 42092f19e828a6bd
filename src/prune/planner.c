/* The planner shared by all criteria: turns scores and a budget into keep counts per group,
 * then into a plan (plan.c keeps the best channels of each group).
 *
 * Global budgets rank every prunable channel by score / (mean score of its group), so that
 * criteria whose scale differs between layers can still be compared, and remove channels in
 * that order. The number k of channels removed in the global order is the "threshold": every
 * measure (channels, FLOPs, params) is monotone in k even with floors and rounding, so a
 * bisection over k finds the exact crossing of the target, and the closer of the two plans
 * around it is returned. */
#include "prune_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dp_budget_default(dp_budget *b) {
    memset(b, 0, sizeof *b);
    b->kind = DP_BUDGET_UNIFORM;
    b->min_channels = 4;
    b->min_keep = 0.1;
}

int dp_keep_floor(int C, const dp_budget *b) {
    /* the epsilon keeps ceil(0.1 * 30) at 3 although 0.1 * 30 = 3.0000000000000004 */
    int f = (int)ceil(b->min_keep * C - 1e-9);
    if (b->min_channels > f) f = b->min_channels;
    if (f < 1) f = 1;
    return f < C ? f : C;
}

int dp_keep_finalize(int n, int C, const dp_budget *b) {
    int f = dp_keep_floor(C, b);
    if (n < f) n = f;
    if (n > C) n = C;
    if (b->round_to > 1) {
        n = (n + b->round_to - 1) / b->round_to * b->round_to;
        if (n > C) n = C;
    }
    return n;
}

int dp_keep_from_ratio(int C, double r, const dp_budget *b) {
    int removed = (int)floor(r * C + 1e-9);
    return dp_keep_finalize(C - removed, C, b);
}

/* The reduction (fraction removed) that keep counts give in the measure of `kind`. */
static double kind_reduction(const dp_model *m, const dp_groups *gs, dp_budget_kind kind,
                             const int *counts) {
    if (kind == DP_BUDGET_FLOPS || kind == DP_BUDGET_PARAMS) {
        int64_t f0, p0, f, p;
        dp_groups_count(m, gs, NULL, &f0, &p0);
        dp_groups_count(m, gs, counts, &f, &p);
        if (kind == DP_BUDGET_FLOPS) return f0 > 0 ? 1.0 - (double)f / (double)f0 : 0.0;
        return p0 > 0 ? 1.0 - (double)p / (double)p0 : 0.0;
    }
    int64_t total = 0, kept = 0;
    for (int g = 0; g < gs->n_groups; g++)
        if (gs->groups[g].prunable) total += gs->groups[g].channels, kept += counts[g];
    return total > 0 ? 1.0 - (double)kept / (double)total : 0.0;
}

double prune_reduction(const dp_model *m, const dp_groups *gs, dp_budget_kind kind,
                       const int *counts) {
    return kind_reduction(m, gs, kind, counts);
}

double dp_budget_reduction(const dp_model *m, const dp_groups *gs, const dp_budget *b,
                           const int *counts) {
    if (b->kind != DP_BUDGET_LATENCY) return kind_reduction(m, gs, b->kind, counts);
    double t0 = dp_groups_latency_ms(m, gs, b->latency, NULL);
    return t0 > 0 ? 1.0 - dp_groups_latency_ms(m, gs, b->latency, counts) / t0 : 0.0;
}

/* ---- global ranking ---- */

typedef struct {
    double norm; /* score / group mean */
    int group;
    int rank; /* 0 = the group's least important channel */
} global_entry;

static int by_removal_order(const void *pa, const void *pb) {
    const global_entry *a = pa, *b = pb;
    if (a->norm < b->norm) return -1;
    if (a->norm > b->norm) return 1;
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

/* The divisor that makes a group's scores comparable across groups: its mean (|mean| keeps
 * the order for negative scores; 1 when the mean is 0). */
static double group_scale(const double *s, int C) {
    double sum = 0;
    for (int j = 0; j < C; j++) sum += s[j];
    double mean = sum / C;
    return mean > 0 ? mean : mean < 0 ? -mean : 1.0;
}

/* All prunable channels in global removal order (entries of one group appear by rank). */
static dp_status global_order(const dp_groups *gs, const dp_scores *sc, global_entry **out,
                              int *n_out, dp_error *err) {
    int total = 0, maxc = 1;
    for (int g = 0; g < gs->n_groups; g++)
        if (gs->groups[g].prunable) {
            total += gs->groups[g].channels;
            if (gs->groups[g].channels > maxc) maxc = gs->groups[g].channels;
        }
    global_entry *e = malloc(sizeof *e * (size_t)(total > 0 ? total : 1));
    int *order = malloc(sizeof(int) * (size_t)maxc);
    if (!e || !order) {
        free(e), free(order);
        return dp_fail(err, DP_ERR_NOMEM, "prune: out of memory ranking %d channels", total);
    }
    int n = 0;
    for (int g = 0; g < gs->n_groups; g++) {
        const dp_channel_group *grp = &gs->groups[g];
        if (!grp->prunable) continue;
        int C = grp->channels;
        const double *s = sc->s[g];
        dp_error why = {0};
        dp_status st = prune_rank_channels(s, C, order, &why);
        if (st != DP_OK) {
            free(e), free(order);
            return dp_fail(err, st, "group '%s': %s", grp->name, why.msg);
        }
        double scale = group_scale(s, C);
        for (int r = 0; r < C; r++) {
            int ch = order[C - 1 - r];
            e[n++] = (global_entry){s[ch] / scale, g, r};
        }
    }
    free(order);
    qsort(e, (size_t)n, sizeof *e, by_removal_order);
    *out = e;
    *n_out = n;
    return DP_OK;
}

/* Keep counts after removing the first k channels of the global order. */
static void counts_after_k(const dp_groups *gs, const global_entry *e, int k, const dp_budget *b,
                           int *counts) {
    for (int g = 0; g < gs->n_groups; g++) counts[g] = gs->groups[g].channels;
    for (int i = 0; i < k; i++) counts[e[i].group]--;
    for (int g = 0; g < gs->n_groups; g++)
        if (gs->groups[g].prunable)
            counts[g] = dp_keep_finalize(counts[g], gs->groups[g].channels, b);
}

static dp_status global_counts(const dp_model *m, const dp_groups *gs, const dp_scores *sc,
                               const dp_budget *b, double target, int *counts, double *achieved,
                               dp_error *err) {
    global_entry *e;
    int K;
    dp_status st = global_order(gs, sc, &e, &K, err);
    if (st != DP_OK) return st;
    /* smallest k whose reduction reaches the target (K when none does) */
    int lo = 0, hi = K;
    counts_after_k(gs, e, K, b, counts);
    if (dp_budget_reduction(m, gs, b, counts) >= target) {
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            counts_after_k(gs, e, mid, b, counts);
            if (dp_budget_reduction(m, gs, b, counts) >= target)
                hi = mid;
            else
                lo = mid + 1;
        }
    } else {
        lo = K;
    }
    int best = lo;
    counts_after_k(gs, e, lo, b, counts);
    double r_hi = dp_budget_reduction(m, gs, b, counts);
    if (lo > 0) {
        counts_after_k(gs, e, lo - 1, b, counts);
        double r_lo = dp_budget_reduction(m, gs, b, counts);
        if (fabs(r_lo - target) <= fabs(r_hi - target)) best = lo - 1; /* tie: prune less */
    }
    counts_after_k(gs, e, best, b, counts);
    *achieved = dp_budget_reduction(m, gs, b, counts);
    free(e);
    return DP_OK;
}

static dp_status check_budget(const dp_groups *gs, const dp_scores *sc, const dp_budget *b,
                              dp_error *err) {
    if (b->min_channels < 0 || !(b->min_keep >= 0 && b->min_keep <= 1) || b->round_to < 0)
        return dp_fail(err, DP_ERR_CONFIG,
                       "prune: floors min_channels=%d min_keep=%g round_to=%d out of range",
                       b->min_channels, b->min_keep, b->round_to);
    if ((b->kind == DP_BUDGET_UNIFORM || b->kind == DP_BUDGET_GLOBAL) &&
        !(b->ratio >= 0 && b->ratio <= 1))
        return dp_fail(err, DP_ERR_CONFIG, "prune: ratio %g must be in [0, 1]", b->ratio);
    if (b->kind == DP_BUDGET_LATENCY && (!b->latency || !b->latency->entry))
        return dp_fail(err, DP_ERR_CONFIG,
                       "prune: a latency budget needs a latency table (prune.latency_table, "
                       "written by `dprune profile`)");
    if ((b->kind == DP_BUDGET_FLOPS || b->kind == DP_BUDGET_PARAMS ||
         b->kind == DP_BUDGET_LATENCY) &&
        !(b->target >= 0 && b->target < 1))
        return dp_fail(err, DP_ERR_CONFIG, "prune: target reduction %g must be in [0, 1)",
                       b->target);
    if (b->kind == DP_BUDGET_PER_GROUP) {
        if (b->n_ratios != dp_groups_prunable_count(gs))
            return dp_fail(err, DP_ERR_CONFIG,
                           "prune: %d per-group ratios given, the model has %d prunable groups",
                           b->n_ratios, dp_groups_prunable_count(gs));
        for (int i = 0; i < b->n_ratios; i++)
            if (!(b->ratios[i] >= 0 && b->ratios[i] <= 1))
                return dp_fail(err, DP_ERR_CONFIG, "prune: ratio %d = %g must be in [0, 1]", i,
                               b->ratios[i]);
    }
    for (int g = 0; g < gs->n_groups; g++)
        if (gs->groups[g].prunable && (!sc || g >= sc->n_groups || !sc->s[g]))
            return dp_fail(err, DP_ERR_ARG, "prune: group '%s' has no scores", gs->groups[g].name);
    return DP_OK;
}

static const char *kind_name(dp_budget_kind k) {
    switch (k) {
    case DP_BUDGET_UNIFORM:
        return "uniform";
    case DP_BUDGET_PER_GROUP:
        return "per-group";
    case DP_BUDGET_GLOBAL:
        return "global";
    case DP_BUDGET_FLOPS:
        return "flops";
    case DP_BUDGET_PARAMS:
        return "params";
    case DP_BUDGET_LATENCY:
        return "latency";
    }
    return "?";
}

/* Keep counts of one ratio r for every prunable group, or (r < 0) b->ratios per group. */
static void ratio_counts(const dp_groups *gs, const dp_budget *b, double r, int *counts) {
    for (int g = 0, i = 0; g < gs->n_groups; g++) {
        const dp_channel_group *grp = &gs->groups[g];
        counts[g] = grp->channels;
        if (grp->prunable)
            counts[g] = dp_keep_from_ratio(grp->channels, r < 0 ? b->ratios[i++] : r, b);
    }
}

dp_status dp_budget_widths(const dp_model *m, const dp_groups *gs, const dp_budget *b, int *keep,
                           double *achieved, dp_error *err) {
    if (b->kind == DP_BUDGET_PER_GROUP && b->n_ratios != dp_groups_prunable_count(gs))
        return dp_fail(err, DP_ERR_CONFIG,
                       "prune.ratios has %d entries but the model has %d prunable groups "
                       "(`dprune plan` lists them)",
                       b->n_ratios, dp_groups_prunable_count(gs));
    if (b->kind == DP_BUDGET_FLOPS || b->kind == DP_BUDGET_PARAMS || b->kind == DP_BUDGET_LATENCY) {
        /* one ratio for every group, bisected; the closest to the target wins */
        double lo = 0, hi = 0.99, best_r = 0, best_gap = INFINITY;
        for (int it = 0; it < 40; it++) {
            double r = 0.5 * (lo + hi);
            ratio_counts(gs, b, r, keep);
            double got = dp_budget_reduction(m, gs, b, keep);
            if (fabs(got - b->target) < best_gap) best_gap = fabs(got - b->target), best_r = r;
            if (got > b->target)
                hi = r;
            else
                lo = r;
        }
        ratio_counts(gs, b, best_r, keep);
    } else {
        ratio_counts(gs, b, b->kind == DP_BUDGET_PER_GROUP ? -1 : b->ratio, keep);
    }
    if (achieved)
        *achieved = b->kind == DP_BUDGET_PARAMS || b->kind == DP_BUDGET_LATENCY
                        ? dp_budget_reduction(m, gs, b, keep)
                        : kind_reduction(m, gs, DP_BUDGET_FLOPS, keep);
    return DP_OK;
}

dp_status dp_plan_make(const dp_model *m, const dp_groups *gs, const dp_scores *sc,
                       const dp_budget *b, const char *criterion, dp_plan *p, dp_error *err) {
    dp_status st = check_budget(gs, sc, b, err);
    if (st != DP_OK) return st;
    int *counts = malloc(sizeof(int) * (size_t)(gs->n_groups + 1));
    if (!counts) return dp_fail(err, DP_ERR_NOMEM, "prune: out of memory planning");
    double target = -1, achieved = 0;
    if (b->kind == DP_BUDGET_UNIFORM || b->kind == DP_BUDGET_PER_GROUP) {
        ratio_counts(gs, b, b->kind == DP_BUDGET_UNIFORM ? b->ratio : -1, counts);
        if (b->kind == DP_BUDGET_UNIFORM) target = b->ratio;
        /* reported as the fraction of prunable channels removed */
        achieved = kind_reduction(m, gs, DP_BUDGET_GLOBAL, counts);
    } else {
        target = b->kind == DP_BUDGET_GLOBAL ? b->ratio : b->target;
        st = global_counts(m, gs, sc, b, target, counts, &achieved, err);
    }
    if (st == DP_OK) st = dp_plan_from_scores(m, gs, sc, counts, criterion, p, err);
    free(counts);
    if (st != DP_OK) return st;
    p->target = target;
    p->achieved = achieved;
    const char *kind =
        b->kind == DP_BUDGET_LATENCY && b->latency->train ? "train-latency" : kind_name(b->kind);
    if (target >= 0)
        snprintf(p->budget, sizeof p->budget, "%s %.6g (min_channels %d, min_keep %g, round_to %d)",
                 kind, target, b->min_channels, b->min_keep, b->round_to);
    else
        snprintf(p->budget, sizeof p->budget, "%s (min_channels %d, min_keep %g, round_to %d)",
                 kind, b->min_channels, b->min_keep, b->round_to);
    return DP_OK;
}
