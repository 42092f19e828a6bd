/* Seeded weight initialisation. Each tensor draws from its own stream keyed by (seed, node
 * index), so the result does not depend on rank, thread count or parameter layout. */
#include "dprune/model.h"
#include <math.h>

void dp_model_init_weights(dp_model *m, uint64_t seed) {
    for (int i = 0; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        dp_rng r;
        dp_rng_init(&r, seed, (uint64_t)i, 0, DP_RNG_INIT);
        if (n->op == DP_OP_CONV) {
            /* Kaiming normal, fan_out, ReLU gain (torchvision ResNet/VGG) */
            const dp_tensor_view *w = &m->params[n->p[0]];
            double fan_out = (double)w->dims[0] * w->dims[2] * w->dims[3];
            double std = sqrt(2.0 / fan_out);
            float *p = dp_param_ptr(m, n->p[0]);
            for (size_t j = 0; j < w->numel; j++) p[j] = (float)(std * dp_rng_normal(&r));
            if (n->p[1] >= 0)
                for (size_t j = 0; j < m->params[n->p[1]].numel; j++)
                    dp_param_ptr(m, n->p[1])[j] = 0;
        } else if (n->op == DP_OP_LINEAR) {
            /* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias */
            const dp_tensor_view *w = &m->params[n->p[0]];
            double bound = 1.0 / sqrt((double)w->dims[1]);
            float *p = dp_param_ptr(m, n->p[0]);
            for (size_t j = 0; j < w->numel; j++)
                p[j] = (float)((2 * dp_rng_uniform(&r) - 1) * bound);
            if (n->p[1] >= 0) {
                float *b = dp_param_ptr(m, n->p[1]);
                for (size_t j = 0; j < m->params[n->p[1]].numel; j++)
                    b[j] = (float)((2 * dp_rng_uniform(&r) - 1) * bound);
            }
        } else if (n->op == DP_OP_BN) {
            for (int c = 0; c < n->c; c++) {
                dp_param_ptr(m, n->p[0])[c] = 1.0f;
                dp_param_ptr(m, n->p[1])[c] = 0.0f;
                dp_buffer_ptr(m, n->buf[0])[c] = 0.0f;
                dp_buffer_ptr(m, n->buf[1])[c] = 1.0f;
            }
        }
    }
}
