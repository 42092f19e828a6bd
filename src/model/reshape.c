/* Rebuilding a graph with changed layer widths: replays the node list through the dp_add_*
 * builders so shapes (and the parameter layout) are derived exactly as for a fresh model. */
#include "dprune/model.h"
#include <string.h>

int dp_model_add_like(dp_model *dst, const dp_node *n, int width, dp_error *err) {
    int x = n->in[0];
    switch (n->op) {
    case DP_OP_CONV:
        return dp_add_conv(dst, x, n->name, width, n->a.conv.k, n->a.conv.stride, n->a.conv.pad,
                           n->a.conv.bias, err);
    case DP_OP_BN: {
        int i = dp_add_bn(dst, x, n->name, err);
        if (i >= 0) dst->nodes[i].a.bn = n->a.bn; /* keep non-default eps / momentum */
        return i;
    }
    case DP_OP_RELU:
        return dp_add_relu(dst, x, n->name, err);
    case DP_OP_MAXPOOL:
    case DP_OP_AVGPOOL:
        return dp_add_pool(dst, n->op, x, n->name, n->a.pool.k, n->a.pool.stride, n->a.pool.pad,
                           err);
    case DP_OP_GAP:
        return dp_add_gap(dst, x, n->name, err);
    case DP_OP_LINEAR:
        return dp_add_linear(dst, x, n->name, width, n->a.linear.bias, err);
    case DP_OP_ADD:
        return dp_add_add(dst, x, n->in[1], n->name, err);
    case DP_OP_FLATTEN:
        return dp_add_flatten(dst, x, n->name, err);
    case DP_OP_DROPOUT:
        return dp_add_dropout(dst, x, n->name, n->a.dropout.p, err);
    case DP_OP_SHORTCUT_PAD:
        return dp_add_shortcut_pad(dst, x, n->name, n->a.shortcut.out, n->a.shortcut.stride, err);
    case DP_OP_INPUT:
        break;
    }
    dp_fail(err, DP_ERR_ARG, "reshape: node '%s' (%s) cannot be replayed", n->name,
            dp_op_name(n->op));
    return -1;
}

dp_status dp_model_reshape(const dp_model *src, const int *widths, dp_model *dst, dp_error *err) {
    dp_model_begin(dst, src->in_c, src->in_h, src->in_w);
    dst->num_classes = src->num_classes;
    memcpy(dst->arch, src->arch, sizeof dst->arch);
    for (int i = 1; i < src->n_nodes; i++) {
        const dp_node *n = &src->nodes[i];
        int width = n->op == DP_OP_CONV     ? n->a.conv.out
                    : n->op == DP_OP_LINEAR ? n->a.linear.out
                                            : 0;
        if (widths && (n->op == DP_OP_CONV || n->op == DP_OP_LINEAR)) width = widths[i];
        int idx = dp_model_add_like(dst, n, width, err);
        if (idx < 0) {
            dp_model_free(dst);
            return err ? err->code : DP_ERR_ARG;
        }
        if (idx != i) { /* cannot happen: nodes are appended in order */
            dp_model_free(dst);
            return dp_fail(err, DP_ERR_ARG, "reshape: node '%s' moved from %d to %d", n->name, i,
                           idx);
        }
    }
    dp_status st = dp_model_finish(dst, err);
    if (st != DP_OK) dp_model_free(dst);
    return st;
}
