/* CorrTopo's fold in a pruning round: calibration also reads the maps the consumers read,
 * rank 0 turns their statistics and the plan into the fold, and every rank receives the same
 * bytes before the surgery applies it. */
#include "corr_fold.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool app_corr_fold_wanted(const dp_prune_config *pc) {
    return !strcmp(pc->criterion, "corr") && (pc->corr_fold || pc->corr_compensate);
}

dp_status app_corr_fold_calibrate(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                                  const calib_set *set, const dp_groups *gs, uint64_t seed,
                                  calib_result *r, dp_error *err) {
    /* every map is read by at least one consumer node: n_nodes bounds the count */
    int *nodes = malloc(sizeof(int) * (size_t)m->n_nodes);
    int *groups = malloc(sizeof(int) * (size_t)m->n_nodes);
    bool *pos = malloc(sizeof(bool) * (size_t)m->n_nodes);
    int n = 0;
    if (!nodes || !groups || !pos) {
        free(nodes), free(groups), free(pos);
        memset(r, 0, sizeof *r);
        return dp_fail(err, DP_ERR_NOMEM, "corr fold: out of memory");
    }
    for (int g = 0; g < gs->n_groups; g++) {
        if (!gs->groups[g].prunable) continue;
        int k = dp_corr_read_maps(m, &gs->groups[g], nodes + n, m->n_nodes - n);
        for (int j = n; j < n + k; j++)
            groups[j] = g, pos[j] = dp_corr_map_positional(m, &gs->groups[g], nodes[j]);
        n += k;
    }
    dp_status st =
        calibrate_with_maps(dist, m, d, set, gs, CALIB_CORR, seed, nodes, groups, pos, n, r, err);
    free(nodes), free(groups), free(pos);
    return st;
}

/* Consumers of cut groups whose constant has nowhere to go, said once per round. */
static void warn_lost_constants(const dp_model *m, const dp_groups *gs, const dp_plan *plan) {
    for (int g = 0; g < gs->n_groups; g++) {
        if (plan->groups[g].n_keep == plan->groups[g].channels) continue;
        for (int c = 0; c < gs->groups[g].n_consumers; c++) {
            int node = gs->groups[g].consumers[c].node, bn;
            if (dp_corr_offset_of(m, node, &bn) == DP_CORR_OFFSET_NONE)
                fprintf(stderr,
                        "prune: warning: corr fold: '%s' has no bias and is not read by a BN "
                        "alone: the removed channels' mean is dropped there\n",
                        m->nodes[node].name);
        }
    }
}

dp_status app_corr_fold_decide(const dp_prune_config *pc, const dp_model *m, const dp_groups *gs,
                               const calib_result *cr, const dp_plan *plan, dp_corr_fold *f,
                               dp_error *err) {
    memset(f, 0, sizeof *f);
    dp_status st = DP_OK;
    for (int i = 0; i < cr->n_maps && st == DP_OK; i++) {
        const calib_map *cm = &cr->maps[i];
        if (!cm->total)
            return dp_fail(err, DP_ERR_ARG, "corr fold: no statistics of map '%s'",
                           m->nodes[cm->node].name);
        const dp_node *n = &m->nodes[cm->node];
        st = dp_corr_fold_add(f, cm->group, cm->node, n->c, n->h * n->w, cm->pos, cm->total,
                              cm->shift, &plan->groups[cm->group], pc->corr_compensate,
                              DP_CORR_RIDGE_DEFAULT, err);
    }
    if (st != DP_OK) {
        dp_corr_fold_free(f);
        return st;
    }
    warn_lost_constants(m, gs, plan);
    return DP_OK;
}

dp_status app_corr_fold_bcast(dp_dist *d, dp_corr_fold *f, dp_error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    dp_status st = DP_OK;
    if (d->rank == 0) st = dp_corr_fold_serialize(f, &buf, &len, err);
    if ((st = dp_dist_check(d, st, err)) != DP_OK) return st;
    st = app_bcast_blob(d, &buf, &len, err);
    if (st == DP_OK && d->rank != 0) st = dp_corr_fold_deserialize(buf, len, f, err);
    free(buf);
    return dp_dist_check(d, st, err);
}
