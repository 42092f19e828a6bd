/* SGD with momentum as torch.optim.SGD: g' = g + wd p; buf = mu buf + g' (buf = g' at the first
 * step); step = nesterov ? g' + mu buf : buf; p -= lr step. */
#include "dprune/optim.h"
#include <stdlib.h>

dp_status dp_sgd_init(dp_sgd *o, const dp_model *m, const dp_train_config *tc, dp_error *err) {
    o->n = m->n_param_floats;
    o->momentum = dp_alloc_floats(o->n);
    o->decay = calloc((size_t)m->n_params + 1, sizeof(double));
    if (!o->momentum || !o->decay) return dp_fail(err, DP_ERR_NOMEM, "optimizer: out of memory");
    for (int p = 0; p < m->n_params; p++)
        o->decay[p] =
            tc->no_decay_bn_bias && m->params[p].no_decay_candidate ? 0.0 : tc->weight_decay;
    o->momentum_coef = tc->momentum;
    o->nesterov = tc->nesterov;
    o->started = false;
    return DP_OK;
}

void dp_sgd_free(dp_sgd *o) {
    dp_free(o->momentum);
    free(o->decay);
    o->momentum = NULL;
    o->decay = NULL;
}

/* the update of n floats of one tensor: p, its gradient g, its momentum buf */
static void sgd_update(const dp_sgd *o, float wd, float lr, long n, const float *g, float *p,
                       float *buf) {
    const float mu = (float)o->momentum_coef;
    const bool first = !o->started;
    for (long j = 0; j < n; j++) {
        float d = g[j] + wd * p[j];
        float b = mu == 0.0f ? d : (first ? d : mu * buf[j] + d);
        buf[j] = b;
        float step = o->nesterov ? d + mu * b : b;
        p[j] -= lr * step;
    }
}

void dp_sgd_step(dp_sgd *o, dp_model *m, double lr) {
    enum { CHUNK = 16384 };
    for (int t = 0; t < m->n_params; t++) {
        const dp_tensor_view *v = &m->params[t];
        float *p = dp_param_ptr(m, t), *buf = o->momentum + v->offset;
        const float *g = dp_grad_ptr(m, t);
        const long n = (long)v->numel, chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (chunks > 2)
        for (long c = 0; c < chunks; c++) {
            long lo = c * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
            sgd_update(o, (float)o->decay[t], (float)lr, len, g + lo, p + lo, buf + lo);
        }
    }
    o->started = true;
}

void dp_sgd_step_range(const dp_sgd *o, dp_model *m, double lr, const float *g, size_t lo,
                       size_t hi) {
    /* the first tensor that ends after lo (tensors lie in offset order) */
    int a = 0, b = m->n_params;
    while (a < b) {
        int mid = (a + b) / 2;
        if (m->params[mid].offset + m->params[mid].numel <= lo)
            a = mid + 1;
        else
            b = mid;
    }
    for (int t = a; t < m->n_params && m->params[t].offset < hi; t++) {
        const dp_tensor_view *v = &m->params[t];
        size_t s = v->offset > lo ? v->offset : lo, e = v->offset + v->numel;
        if (e > hi) e = hi;
        sgd_update(o, (float)o->decay[t], (float)lr, (long)(e - s), g + (s - lo), m->param_data + s,
                   o->momentum + s);
    }
}

void dp_sgd_end_step(dp_sgd *o) {
    o->started = true;
}
