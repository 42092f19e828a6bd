/* BN folding for export: a BN whose input is a conv or linear read by nothing else becomes
 * part of that layer, y = s * (W x + b - mean) + beta with s = gamma / sqrt(var + eps), so
 * W' = s W and b' = beta + s (b - mean). The graph is replayed without those BN nodes. */
#include "dprune/model.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int find_param(const dp_model *m, int node, int slot) {
    return m->nodes[node].p[slot];
}

dp_status dp_model_fold_bn(const dp_model *src, dp_model *dst, dp_error *err) {
    int n = src->n_nodes;
    int *readers = calloc((size_t)n, sizeof(int)), *map = calloc((size_t)n, sizeof(int));
    int *folded_into = calloc((size_t)n, sizeof(int)); /* conv/linear -> its BN, or 0 */
    if (!readers || !map || !folded_into) {
        free(readers), free(map), free(folded_into);
        return dp_fail(err, DP_ERR_NOMEM, "fold BN: out of memory");
    }
    for (int i = 1; i < n; i++)
        for (int k = 0; k < src->nodes[i].n_in; k++) readers[src->nodes[i].in[k]]++;
    for (int i = 1; i < n; i++) {
        const dp_node *b = &src->nodes[i];
        if (b->op != DP_OP_BN) continue;
        const dp_node *w = &src->nodes[b->in[0]];
        if ((w->op == DP_OP_CONV || w->op == DP_OP_LINEAR) && readers[b->in[0]] == 1)
            folded_into[b->in[0]] = i;
    }
    dp_model_begin(dst, src->in_c, src->in_h, src->in_w);
    dst->num_classes = src->num_classes;
    memcpy(dst->arch, src->arch, sizeof dst->arch);
    dp_status st = DP_OK;
    for (int i = 1; i < n && st == DP_OK; i++) {
        const dp_node *s = &src->nodes[i];
        if (s->op == DP_OP_BN && folded_into[s->in[0]] == i) { /* gone: readers see the layer */
            map[i] = map[s->in[0]];
            continue;
        }
        dp_node c = *s;
        for (int k = 0; k < c.n_in; k++) c.in[k] = map[c.in[k]];
        if (folded_into[i]) { /* the layer gains a bias */
            if (c.op == DP_OP_CONV)
                c.a.conv.bias = true;
            else
                c.a.linear.bias = true;
        }
        int width = c.op == DP_OP_CONV ? c.a.conv.out : c.op == DP_OP_LINEAR ? c.a.linear.out : 0;
        map[i] = dp_model_add_like(dst, &c, width, err);
        if (map[i] < 0) st = err ? err->code : DP_ERR_ARG;
    }
    if (st == DP_OK) st = dp_model_finish(dst, err);
    for (int i = 1; i < n && st == DP_OK; i++) {
        const dp_node *s = &src->nodes[i];
        if (s->op == DP_OP_BN && folded_into[s->in[0]] == i) continue;
        const dp_node *d = &dst->nodes[map[i]];
        for (int slot = 0; slot < 2; slot++) { /* parameters as they are */
            int ps = find_param(src, i, slot), pd = d->p[slot];
            if (ps >= 0 && pd >= 0)
                memcpy(dp_param_ptr(dst, pd), dp_param_ptr(src, ps),
                       sizeof(float) * src->params[ps].numel);
            if (s->buf[slot] >= 0 && d->buf[slot] >= 0)
                memcpy(dp_buffer_ptr(dst, d->buf[slot]), dp_buffer_ptr(src, s->buf[slot]),
                       sizeof(float) * src->buffers[s->buf[slot]].numel);
        }
        int bn = folded_into[i];
        if (!bn) continue;
        const dp_node *b = &src->nodes[bn];
        const float *gamma = dp_param_ptr(src, b->p[0]), *beta = dp_param_ptr(src, b->p[1]);
        const float *mean = dp_buffer_ptr(src, b->buf[0]), *var = dp_buffer_ptr(src, b->buf[1]);
        float *w = dp_param_ptr(dst, d->p[0]), *bias = dp_param_ptr(dst, d->p[1]);
        const float *b0 = s->p[1] >= 0 ? dp_param_ptr(src, s->p[1]) : NULL;
        size_t per_out = dst->params[d->p[0]].numel / (size_t)d->c; /* weights of one output */
        for (int o = 0; o < d->c; o++) { /* in double: the fold adds no rounding of its own */
            double scale = (double)gamma[o] / sqrt((double)var[o] + (double)b->a.bn.eps);
            for (size_t j = 0; j < per_out; j++)
                w[o * per_out + j] = (float)(w[o * per_out + j] * scale);
            bias[o] = (float)(beta[o] + scale * ((b0 ? b0[o] : 0.0) - mean[o]));
        }
    }
    free(readers), free(map), free(folded_into);
    if (st != DP_OK) dp_model_free(dst);
    return st;
}
