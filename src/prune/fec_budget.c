/* FEC's per-layer ratio rule: r_g = clip(beta (1 - mean H_g / ln c_g), 0, 0.9). Groups whose
 * filters are far from maximal entropy (redundant) lose more. The one knob beta is bisected
 * so that the plan's reduction (FLOPs, params or channels) is the closest to the target. */
#include "prune_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define FEC_MAX_RATIO 0.9

static void counts_for_beta(const dp_groups *gs, const dp_fec_group_info *info, double beta,
                            const dp_budget *b, int *counts) {
    for (int g = 0; g < gs->n_groups; g++) {
        const dp_channel_group *grp = &gs->groups[g];
        counts[g] = grp->channels;
        if (!grp->prunable) continue;
        double r = beta * (1.0 - info[g].norm_entropy);
        r = r < 0 ? 0 : r > FEC_MAX_RATIO ? FEC_MAX_RATIO : r;
        counts[g] = dp_keep_from_ratio(grp->channels, r, b);
    }
}

dp_status dp_plan_fec_ratio_rule(const dp_model *m, const dp_groups *gs, const dp_scores *sc,
                                 const dp_fec_group_info *info, const dp_budget *b, dp_plan *p,
                                 double *beta_out, dp_error *err) {
    if (b->kind != DP_BUDGET_FLOPS && b->kind != DP_BUDGET_PARAMS && b->kind != DP_BUDGET_GLOBAL)
        return dp_fail(err, DP_ERR_CONFIG,
                       "fec ratio rule: the budget must be a flops, params or global target");
    double target = b->kind == DP_BUDGET_GLOBAL ? b->ratio : b->target;
    if (!(target >= 0 && target < 1))
        return dp_fail(err, DP_ERR_CONFIG, "fec ratio rule: target %g must be in [0, 1)", target);
    int *counts = malloc(sizeof(int) * (size_t)(gs->n_groups + 1));
    if (!counts) return dp_fail(err, DP_ERR_NOMEM, "fec: out of memory planning");
    /* beta large enough that every group with 1 - u > 0 sits at the 0.9 cap */
    double min_gap = 1.0;
    for (int g = 0; g < gs->n_groups; g++) {
        double gap = 1.0 - info[g].norm_entropy;
        if (gs->groups[g].prunable && gap > 1e-12 && gap < min_gap) min_gap = gap;
    }
    double lo = 0, hi = FEC_MAX_RATIO / min_gap * 1.000001;
    double best_beta = 0, best_diff = INFINITY, best_red = 0;
    for (int it = 0; it < 64; it++) {
        double beta = it == 0 ? 0.0 : it == 1 ? hi : 0.5 * (lo + hi);
        counts_for_beta(gs, info, beta, b, counts);
        double red = prune_reduction(m, gs, b->kind, counts), diff = fabs(red - target);
        if (diff < best_diff || (diff == best_diff && beta < best_beta))
            best_diff = diff, best_beta = beta, best_red = red;
        if (it >= 2) {
            if (red >= target)
                hi = beta;
            else
                lo = beta;
        }
    }
    counts_for_beta(gs, info, best_beta, b, counts);
    dp_status st = dp_plan_from_scores(m, gs, sc, counts, "fec", p, err);
    free(counts);
    if (st != DP_OK) return st;
    p->target = target;
    p->achieved = best_red;
    snprintf(p->budget, sizeof p->budget, "fec ratio rule, %s %.6g, beta %.6g",
             b->kind == DP_BUDGET_FLOPS    ? "flops"
             : b->kind == DP_BUDGET_PARAMS ? "params"
                                           : "channels",
             target, best_beta);
    if (beta_out) *beta_out = best_beta;
    return DP_OK;
}
