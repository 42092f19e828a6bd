/* Network Slimming (Liu et al., ICCV 2017): a channel's importance is |gamma| of the BN that
 * follows its conv; the L1 training term drives unimportant gammas to zero. */
#include "prune_internal.h"
#include <math.h>
#include <string.h>

dp_status dp_score_slim(const dp_model *m, const dp_channel_group *g, double *scores,
                        dp_error *err) {
    if (g->n_bns == 0)
        return dp_fail(err, DP_ERR_CONFIG,
                       "prune.criterion = slim: group '%s' has no batch norm after its conv",
                       g->name);
    memset(scores, 0, sizeof(double) * (size_t)g->channels);
    for (int k = 0; k < g->n_bns; k++) {
        const dp_node *bn = &m->nodes[g->bns[k]];
        const float *gamma = dp_param_ptr(m, bn->p[0]);
        int span = bn->c / g->channels; /* a BN after flatten sees span values per channel */
        for (int j = 0; j < g->channels; j++)
            for (int s = 0; s < span; s++) scores[j] += fabs((double)gamma[j * span + s]);
    }
    return DP_OK;
}

static void add_sign_to_grad(dp_model *m, int bn_node, float lambda) {
    const dp_node *bn = &m->nodes[bn_node];
    const float *gamma = dp_param_ptr(m, bn->p[0]);
    float *grad = dp_grad_ptr(m, bn->p[0]);
    for (int c = 0; c < bn->c; c++)
        grad[c] += gamma[c] > 0 ? lambda : gamma[c] < 0 ? -lambda : 0.0f;
}

void dp_slim_add_bn_l1_grad(dp_model *m, const dp_groups *gs, double lambda) {
    for (int i = 0; i < m->n_nodes; i++) {
        if (m->nodes[i].op != DP_OP_BN) continue;
        if (gs && !gs->groups[gs->node_group[i]].prunable) continue;
        add_sign_to_grad(m, i, (float)lambda);
    }
}
