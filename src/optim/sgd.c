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

void dp_sgd_step(dp_sgd *o, dp_model *m, double lr) {
    const float mu = (float)o->momentum_coef, flr = (float)lr;
    const bool first = !o->started;
    for (int t = 0; t < m->n_params; t++) {
        const dp_tensor_view *v = &m->params[t];
        float *p = dp_param_ptr(m, t), *g = dp_grad_ptr(m, t), *buf = o->momentum + v->offset;
        const float wd = (float)o->decay[t];
        const long n = (long)v->numel;
#pragma omp parallel for schedule(static) if (n > 32768)
        for (long j = 0; j < n; j++) {
            float d = g[j] + wd * p[j];
            float b = mu == 0.0f ? d : (first ? d : mu * buf[j] + d);
            buf[j] = b;
            float step = o->nesterov ? d + mu * b : b;
            p[j] -= flr * step;
        }
    }
    o->started = true;
}
