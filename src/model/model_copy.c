/* Deep copy of a model (graph, tensor views, parameters, buffers): the snapshot a background
 * checkpoint write works from while training changes the original. */
#include "dprune/checkpoint.h"
#include <stdlib.h>
#include <string.h>

/* Like dp_alloc_floats but without zero-filling: the copy overwrites every float, and the
 * snapshot is the training thread's stall, so touch the memory once. Freed with dp_free. */
static float *alloc_floats_uninit(size_t n) {
    size_t bytes = (n ? n : 16) * sizeof(float);
    if (n > SIZE_MAX / sizeof(float) - 64) return NULL;
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

static void *dup_mem(const void *p, size_t bytes) {
    void *q = malloc(bytes ? bytes : 1);
    if (q && bytes) memcpy(q, p, bytes);
    return q;
}

dp_status dp_model_copy(dp_model *dst, const dp_model *src, bool with_grads, dp_error *err) {
    *dst = *src;
    dst->cap_nodes = src->n_nodes;
    dst->nodes = dup_mem(src->nodes, sizeof(dp_node) * (size_t)src->n_nodes);
    dst->params = dup_mem(src->params, sizeof(dp_tensor_view) * (size_t)src->n_params);
    dst->buffers = dup_mem(src->buffers, sizeof(dp_tensor_view) * (size_t)src->n_buffers);
    dst->param_data = alloc_floats_uninit(src->n_param_floats);
    dst->buffer_data = alloc_floats_uninit(src->n_buffer_floats);
    dst->grad_data = with_grads ? alloc_floats_uninit(src->n_param_floats) : NULL;
    if (!dst->nodes || !dst->params || !dst->buffers || !dst->param_data || !dst->buffer_data ||
        (with_grads && !dst->grad_data)) {
        dp_model_free(dst);
        return dp_fail(err, DP_ERR_NOMEM, "model copy: out of memory (%zu parameters)",
                       src->n_param_floats);
    }
    memcpy(dst->param_data, src->param_data, src->n_param_floats * sizeof(float));
    memcpy(dst->buffer_data, src->buffer_data, src->n_buffer_floats * sizeof(float));
    if (with_grads) memcpy(dst->grad_data, src->grad_data, src->n_param_floats * sizeof(float));
    return DP_OK;
}
