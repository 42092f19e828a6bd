/* Analytic FLOPs and params of a model with some channels removed, without building it.
 * Pruning changes only channel counts, never spatial sizes: node i then has
 * keep[group(i)] * span(i) channels. The formulas are those of dp_node_flops /
 * dp_node_params (conv, linear with optional bias, BN gamma + beta), so the planner's
 * prediction equals dp_model_params / dp_model_flops of the model surgery builds. */
#include "dprune/prune.h"

static int64_t channels_after(const dp_model *m, const dp_groups *gs, const int *keep, int i) {
    if (!keep) return m->nodes[i].c;
    return (int64_t)keep[gs->node_group[i]] * gs->node_span[i];
}

void dp_groups_count(const dp_model *m, const dp_groups *gs, const int *keep_counts, int64_t *flops,
                     int64_t *params) {
    int64_t f = 0, p = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        int64_t c = channels_after(m, gs, keep_counts, i);
        if (n->op == DP_OP_CONV) {
            int64_t cin = channels_after(m, gs, keep_counts, n->in[0]);
            int64_t kk = (int64_t)n->a.conv.k * n->a.conv.k;
            f += c * n->h * n->w * cin * kk;
            p += c * cin * kk + (n->a.conv.bias ? c : 0);
        } else if (n->op == DP_OP_LINEAR) {
            const dp_node *src = &m->nodes[n->in[0]];
            int64_t cols = channels_after(m, gs, keep_counts, n->in[0]) * src->h * src->w;
            f += c * cols;
            p += c * cols + (n->a.linear.bias ? c : 0);
        } else if (n->op == DP_OP_BN) {
            p += 2 * c;
        }
    }
    if (flops) *flops = f;
    if (params) *params = p;
}
