/* Shared inside prune/'s C-SGD files: which tensors of a group C-SGD makes identical. */
#ifndef DPRUNE_CSGD_INTERNAL_H
#define DPRUNE_CSGD_INTERNAL_H

#include "dprune/csgd.h"

/* Tensors of one group at most (writers' weights and biases, BNs' four vectors). */
#define CSGD_MAX_TENSORS 256

/* One tensor whose rows are the group's channels: a writer's weight (kernel) or bias, a BN's
 * gamma or beta (param >= 0), or a BN running statistic (buffer >= 0). */
typedef struct {
    int param, buffer;
    bool kernel;
    size_t row; /* floats per channel */
} csgd_tensor;

/* The tensors of group g (writers' weights and biases, BN gamma/beta; with buffers also the
 * BN running mean/var). Returns the count written to out (at most max). */
int csgd_group_tensors(const dp_model *m, const dp_channel_group *g, bool buffers, csgd_tensor *out,
                       int max);

/* n groups, none clustered, channel counts 0. */
dp_status csgd_clusters_alloc(dp_csgd_clusters *cl, int n, dp_error *err);

static inline float *csgd_tensor_data(const dp_model *m, const csgd_tensor *t) {
    return t->param >= 0 ? dp_param_ptr(m, t->param) : dp_buffer_ptr(m, t->buffer);
}

#endif
