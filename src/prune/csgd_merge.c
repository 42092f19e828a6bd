/* C-SGD's merge: once the members of a cluster are identical, their feature maps are identical,
 * so a consumer reading them computes sum_k W_next[:, k] a_k = (sum_k W_next[:, k]) a_h. Keeping
 * one member h and summing the consumers' input slices into it removes the others without
 * changing the function. */
#include "csgd_internal.h"
#include <stdlib.h>
#include <string.h>

void dp_csgd_equalize(dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                      bool mean_params) {
    csgd_tensor ts[CSGD_MAX_TENSORS];
    for (int g = 0; g < cl->n_groups; g++) {
        if (!cl->n_clusters[g]) continue;
        int n = csgd_group_tensors(m, &gs->groups[g], true, ts, CSGD_MAX_TENSORS);
        const int *mem = cl->members[g], *first = cl->first[g];
        for (int i = 0; i < n; i++) {
            if (ts[i].param >= 0 && !mean_params) continue;
            float *x = csgd_tensor_data(m, &ts[i]);
            size_t row = ts[i].row;
            for (int h = 0; h < cl->n_clusters[g]; h++) {
                int a = first[h], b = first[h + 1];
                for (size_t j = 0; j < row; j++) {
                    double mean = 0;
                    for (int q = a; q < b; q++) mean += x[(size_t)mem[q] * row + j];
                    float v = (float)(mean / (b - a));
                    for (int q = a; q < b; q++) x[(size_t)mem[q] * row + j] = v;
                }
            }
        }
    }
}

dp_status dp_csgd_merge_plan(const dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                             dp_plan *p, dp_error *err) {
    dp_status st = dp_csgd_check(cl, gs, err);
    if (st != DP_OK) return st;
    dp_scores sc = {0};
    int *keep = malloc(sizeof(int) * ((size_t)gs->n_groups + 1));
    if (!keep) return dp_fail(err, DP_ERR_NOMEM, "C-SGD merge: out of memory");
    if ((st = dp_scores_alloc(&sc, gs, err)) != DP_OK) {
        free(keep);
        return st;
    }
    /* scores that make the planner keep exactly the first members: 1 for them, 0 otherwise */
    for (int g = 0; g < gs->n_groups; g++) {
        int k = cl->n_clusters[g];
        keep[g] = k ? k : gs->groups[g].channels;
        if (!sc.s[g]) continue;
        for (int c = 0; c < gs->groups[g].channels; c++) sc.s[g][c] = k ? 0.0 : 1.0;
        for (int h = 0; h < k; h++) sc.s[g][cl->members[g][cl->first[g][h]]] = 1.0;
    }
    st = dp_plan_from_scores(m, gs, &sc, keep, "csgd", p, err);
    if (st == DP_OK) { /* no target: the widths were chosen before C-SGD; FLOPs say what it did */
        p->target = -1;
        p->achieved = p->flops_before > 0 ? 1.0 - (double)p->flops_after / p->flops_before : 0;
    }
    if (st == DP_OK) /* the plan's scores say how many channels each kept one stands for */
        for (int g = 0; g < gs->n_groups; g++)
            for (int h = 0; h < cl->n_clusters[g] && p->groups[g].scores; h++)
                p->groups[g].scores[cl->members[g][cl->first[g][h]]] =
                    cl->first[g][h + 1] - cl->first[g][h];
    dp_scores_free(&sc);
    free(keep);
    return st;
}

/* new index -> old index of node i's output channels under the plan (NULL = all kept). */
static const int *kept_of(const dp_groups *gs, const dp_plan *p, int node) {
    const dp_group_plan *gp = &p->groups[gs->node_group[node]];
    return gp->n_keep == gp->channels ? NULL : gp->keep;
}

/* Adds the removed members' input slices of consumer `c` of group g into the kept member's:
 * weight [rows][cols * span][inner] of the old model into the new one. */
static void fold_consumer(const dp_model *old_m, const dp_groups *gs, const dp_plan *p,
                          const dp_csgd_clusters *cl, int g, const dp_group_consumer *cons,
                          const float *old_w, float *new_w) {
    const dp_node *n = &old_m->nodes[cons->node];
    const dp_node *src = &old_m->nodes[n->in[0]];
    /* floats of one group channel in a row: a conv's k x k, a linear's span * h * w columns
     * (span = H*W after a flatten, 1 on a map or after global pooling) */
    size_t inner =
        n->op == DP_OP_CONV ? (size_t)n->a.conv.k * n->a.conv.k : (size_t)src->h * src->w;
    size_t block = (size_t)cons->span * inner;
    int old_cols = cl->channels[g], new_cols = cl->n_clusters[g];
    int rows_new = p->groups[gs->node_group[cons->node]].n_keep;
    const int *row_map = kept_of(gs, p, cons->node);
    size_t old_row = (size_t)old_cols * block, new_row = (size_t)new_cols * block;
    for (int r = 0; r < rows_new; r++) {
        int ro = row_map ? row_map[r] : r;
        for (int h = 0; h < new_cols; h++) {
            int a = cl->first[g][h], b = cl->first[g][h + 1];
            float *dst = new_w + (size_t)r * new_row + (size_t)h * block;
            for (int q = a + 1; q < b; q++) {
                const float *s = old_w + (size_t)ro * old_row + (size_t)cl->members[g][q] * block;
                for (size_t j = 0; j < block; j++) dst[j] += s[j];
            }
        }
    }
}

static dp_status csgd_fold(void *ctx, const dp_model *old_m, const dp_groups *gs, const dp_plan *p,
                           const float *old_momentum, dp_model *new_m, float *new_momentum,
                           dp_error *err) {
    const dp_csgd_clusters *cl = ctx;
    dp_status st = dp_csgd_check(cl, gs, err);
    if (st != DP_OK) return st;
    for (int g = 0; g < gs->n_groups; g++) {
        if (!cl->n_clusters[g]) continue;
        const dp_group_plan *gp = &p->groups[g];
        bool firsts = gp->n_keep == cl->n_clusters[g];
        for (int h = 0; h < gp->n_keep && firsts; h++)
            firsts = gp->keep[h] == cl->members[g][cl->first[g][h]];
        if (!firsts)
            return dp_fail(err, DP_ERR_ARG,
                           "C-SGD merge: the plan of group %s does not keep the first member of "
                           "every cluster",
                           gs->groups[g].name);
        const dp_channel_group *grp = &gs->groups[g];
        for (int i = 0; i < grp->n_consumers; i++) {
            const dp_group_consumer *cons = &grp->consumers[i];
            int pi = old_m->nodes[cons->node].p[0];
            size_t from = old_m->params[pi].offset, to = new_m->params[pi].offset;
            fold_consumer(old_m, gs, p, cl, g, cons, old_m->param_data + from,
                          new_m->param_data + to);
            /* the merged column's gradient is the members' summed: so is its momentum */
            if (old_momentum && new_momentum)
                fold_consumer(old_m, gs, p, cl, g, cons, old_momentum + from, new_momentum + to);
        }
    }
    return DP_OK;
}

dp_surgery_opts dp_csgd_surgery_opts(const dp_csgd_clusters *cl) {
    return (dp_surgery_opts){.fold_removed = csgd_fold, .fold_ctx = (void *)cl};
}
