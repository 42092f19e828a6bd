/* The per-layer table of `dprune summary`: output shape, parameters, FLOPs (MACs). */
#include "dprune/model.h"
#include <inttypes.h>

/* 1234567 -> "1,234,567" */
static const char *grouped(int64_t v, char *buf, size_t n) {
    char raw[32];
    int len = snprintf(raw, sizeof raw, "%" PRId64, v);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < n; i++) {
        buf[o++] = raw[i];
        int left = len - 1 - i;
        if (left > 0 && left % 3 == 0 && raw[i] != '-') buf[o++] = ',';
    }
    buf[o] = 0;
    return buf;
}

void dp_model_summary(const dp_model *m, FILE *out) {
    char a[32], b[32];
    fprintf(out, "%-28s %-12s %-16s %14s %16s\n", "layer", "op", "output", "params", "FLOPs");
    for (int i = 0; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", n->c, n->h, n->w);
        fprintf(out, "%-28s %-12s %-16s %14s %16s\n", n->name, dp_op_name(n->op), shape,
                grouped(dp_node_params(m, i), a, sizeof a),
                grouped(dp_node_flops(m, i), b, sizeof b));
    }
    fprintf(out, "total: %s params, %s FLOPs (multiply-accumulates per %dx%dx%d sample)\n",
            grouped(dp_model_params(m), a, sizeof a), grouped(dp_model_flops(m), b, sizeof b),
            m->in_c, m->in_h, m->in_w);
}
