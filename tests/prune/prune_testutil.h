/* Models shared by the prune/ tests: a ResNet-20 with projection shortcuts on 12x12 inputs
 * (residual-coupled groups), a quarter-width fmnist_cnn (a small plain chain), and random
 * weights with non-trivial BN statistics. */
#ifndef DPRUNE_PRUNE_TESTUTIL_H
#define DPRUNE_PRUNE_TESTUTIL_H

#include "dprune/model.h"
#include "testutil.h"
#include <stdio.h>
#include <string.h>

/* The built-in architecture arch (shortcut "A"/"B" or NULL for none) at a width multiplier,
 * on c x h x w inputs with 10 classes; counts a failed check and returns false on error. */
static inline bool build_arch(dp_model *m, const char *arch, const char *shortcut, double width,
                              int c, int h, int w) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    if (shortcut) snprintf(mc.shortcut, sizeof mc.shortcut, "%s", shortcut);
    mc.width = width;
    dp_error err = {0};
    dp_status st = dp_model_build(m, &mc, c, h, w, 10, &err);
    CHECK_MSG(st == DP_OK, "%s: %s", arch, err.msg);
    return st == DP_OK;
}

static inline bool build_resnet20(dp_model *m) {
    return build_arch(m, "resnet20", "B", 1.0, 3, 12, 12);
}

/* fmnist_cnn at a quarter of its width on 1x28x28 inputs: conv1 8, conv2 16, fc1 32 channels. */
static inline bool build_quarter_fmnist_cnn(dp_model *m) {
    return build_arch(m, "fmnist_cnn", NULL, 0.25, 1, 28, 28);
}

/* Random weights everywhere; BN with gamma, beta, running mean and var far from 1/0. */
static inline void randomize(dp_model *m, unsigned seed) {
    dp_model_init_weights(m, seed);
    for (int p = 0; p < m->n_params; p++) {
        const dp_tensor_view *v = &m->params[p];
        if (m->nodes[v->node].op == DP_OP_BN || strstr(v->name, ".bias")) {
            dp_fill_uniform(dp_param_ptr(m, p), v->numel, seed + 7u * (unsigned)p, 0.5f);
            if (strstr(v->name, "weight"))
                for (size_t j = 0; j < v->numel; j++) dp_param_ptr(m, p)[j] += 1.0f;
        }
    }
    for (int b = 0; b < m->n_buffers; b++) {
        float *x = dp_buffer_ptr(m, b);
        dp_fill_uniform(x, m->buffers[b].numel, seed + 101u * (unsigned)b, 0.4f);
        if (strstr(m->buffers[b].name, "running_var"))
            for (size_t j = 0; j < m->buffers[b].numel; j++) x[j] += 1.0f;
    }
}

#endif
