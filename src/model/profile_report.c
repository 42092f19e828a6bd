/* Per-layer time reports: node times summed under the conv/linear layer they belong to (the
 * BN, ReLU, pooling and adds that follow a layer are part of what pruning it saves). */
#include "dprune/profile.h"
#include <stdlib.h>

int dp_profile_owner(const dp_model *m, int node) {
    while (node > 0 && m->nodes[node].op != DP_OP_CONV && m->nodes[node].op != DP_OP_LINEAR)
        node = m->nodes[node].in[0];
    return node > 0 ? node : -1;
}

static void sums(const dp_model *m, const double *ms, double *own, double *ops, double *other,
                 double *total) {
    *other = *total = 0;
    for (int i = 0; i < m->n_nodes; i++) own[i] = ops[i] = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        int o = dp_profile_owner(m, i);
        *total += ms[i];
        if (o < 0)
            *other += ms[i];
        else if (o == i)
            own[i] += ms[i];
        else
            ops[o] += ms[i];
    }
}

void dp_profile_print_layers(const dp_model *m, const double *infer_ms, const double *train_ms,
                             FILE *out) {
    size_t n = (size_t)m->n_nodes;
    double *own = calloc(n, sizeof(double)), *ops = calloc(n, sizeof(double));
    double *town = calloc(n, sizeof(double)), *tops = calloc(n, sizeof(double));
    if (!own || !ops || !town || !tops) {
        free(own), free(ops), free(town), free(tops);
        return;
    }
    double other, total, tother = 0, ttotal = 0;
    sums(m, infer_ms, own, ops, &other, &total);
    if (train_ms) sums(m, train_ms, town, tops, &tother, &ttotal);
    fprintf(out, "%-22s %-28s %9s %9s %9s %6s", "layer", "shape (in -> out, kernel)", "layer ms",
            "+ops ms", "infer ms", "share");
    if (train_ms) fprintf(out, " %9s %6s", "train ms", "share");
    fputc('\n', out);
    for (int i = 1; i < m->n_nodes; i++) {
        const dp_node *nd = &m->nodes[i];
        if (nd->op != DP_OP_CONV && nd->op != DP_OP_LINEAR) continue;
        const dp_node *src = &m->nodes[nd->in[0]];
        char shape[64];
        if (nd->op == DP_OP_CONV)
            snprintf(shape, sizeof shape, "%dx%dx%d -> %dx%dx%d k%d/%d", src->c, src->h, src->w,
                     nd->c, nd->h, nd->w, nd->a.conv.k, nd->a.conv.stride);
        else
            snprintf(shape, sizeof shape, "%d -> %d", src->c * src->h * src->w, nd->c);
        double t = own[i] + ops[i];
        fprintf(out, "%-22s %-28s %9.3f %9.3f %9.3f %5.1f%%", nd->name, shape, own[i], ops[i], t,
                total > 0 ? 100 * t / total : 0);
        if (train_ms) {
            double tt = town[i] + tops[i];
            fprintf(out, " %9.3f %5.1f%%", tt, ttotal > 0 ? 100 * tt / ttotal : 0);
        }
        fputc('\n', out);
    }
    if (other > 0 || tother > 0) {
        fprintf(out, "%-22s %-28s %9s %9.3f %9.3f %5.1f%%", "(before any layer)", "", "", other,
                other, total > 0 ? 100 * other / total : 0);
        if (train_ms)
            fprintf(out, " %9.3f %5.1f%%", tother, ttotal > 0 ? 100 * tother / ttotal : 0);
        fputc('\n', out);
    }
    fprintf(out, "%-22s %-28s %9s %9s %9.3f %5.1f%%", "total", "", "", "", total, 100.0);
    if (train_ms) fprintf(out, " %9.3f %5.1f%%", ttotal, 100.0);
    fputc('\n', out);
    free(own), free(ops), free(town), free(tops);
}
