/* dprune model: the graph (nodes in topological order, edges by index), per-node attributes,
 * parameters in one contiguous buffer (reverse topological order, so gradient buckets are
 * slices filled in backward order), activation buffers, forward/backward, builders, summary.
 * Knows nothing about pruning criteria. */
#ifndef DPRUNE_MODEL_H
#define DPRUNE_MODEL_H

#include "dprune/core.h"
#include "dprune/nn.h" /* conv2d_kept */
#include "dprune/io.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    DP_OP_INPUT,
    DP_OP_CONV,
    DP_OP_BN,
    DP_OP_RELU,
    DP_OP_MAXPOOL,
    DP_OP_AVGPOOL,
    DP_OP_GAP, /* global average pool: [C,H,W] -> [C,1,1] */
    DP_OP_LINEAR,
    DP_OP_ADD,
    DP_OP_FLATTEN,
    DP_OP_DROPOUT,
    DP_OP_SHORTCUT_PAD, /* ResNet option A: spatial subsample + zero channels on both sides */
} dp_op;

const char *dp_op_name(dp_op op);

typedef struct {
    int out, k, stride, pad;
    bool bias;
} dp_conv_attr;
typedef struct {
    int k, stride, pad;
} dp_pool_attr;
typedef struct {
    float eps, momentum;
} dp_bn_attr;
typedef struct {
    int out;
    bool bias;
} dp_linear_attr;
typedef struct {
    float p;
} dp_dropout_attr;
typedef struct {
    int stride, out, pad_before; /* out channels; input lands at [pad_before, pad_before+C) */
} dp_shortcut_attr;

typedef struct {
    dp_op op;
    char name[48];
    int in[2]; /* producer node indices (earlier in topological order) */
    int n_in;
    int c, h, w; /* output shape per sample */
    union {
        dp_conv_attr conv;
        dp_pool_attr pool;
        dp_bn_attr bn;
        dp_linear_attr linear;
        dp_dropout_attr dropout;
        dp_shortcut_attr shortcut;
    } a;
    /* indices into the model's param / buffer tables, -1 when absent:
     * conv/linear: p[0] = weight, p[1] = bias; bn: p[0] = gamma, p[1] = beta, buf = running
     * mean, running var */
    int p[2];
    int buf[2];
} dp_node;

/* A named view into a contiguous buffer. */
typedef struct {
    char name[64];
    int node;
    int ndim;
    int dims[4];
    size_t offset; /* in floats */
    size_t numel;
    bool no_decay_candidate; /* BN gamma/beta and biases (for no_decay_bn_bias) */
} dp_tensor_view;

typedef struct {
    dp_node *nodes;
    int n_nodes, cap_nodes;
    int in_c, in_h, in_w;
    int num_classes;
    char arch[DP_NAME_MAX];
    /* parameters and their gradients: one buffer each, same layout */
    dp_tensor_view *params;
    int n_params;
    float *param_data, *grad_data;
    size_t n_param_floats;
    /* non-trainable state (BN running statistics) */
    dp_tensor_view *buffers;
    int n_buffers;
    float *buffer_data;
    size_t n_buffer_floats;
} dp_model;

/* ---- building ---- */
void dp_model_begin(dp_model *m, int in_c, int in_h, int in_w);
/* Each adder appends a node fed by `in` (node index) and returns its index (or -1 on error,
 * with err set). Shapes are inferred immediately, so errors name the layer. */
int dp_add_conv(dp_model *m, int in, const char *name, int out, int k, int stride, int pad,
                bool bias, dp_error *err);
int dp_add_bn(dp_model *m, int in, const char *name, dp_error *err);
int dp_add_relu(dp_model *m, int in, const char *name, dp_error *err);
int dp_add_pool(dp_model *m, dp_op op, int in, const char *name, int k, int stride, int pad,
                dp_error *err);
int dp_add_gap(dp_model *m, int in, const char *name, dp_error *err);
int dp_add_linear(dp_model *m, int in, const char *name, int out, bool bias, dp_error *err);
int dp_add_add(dp_model *m, int a, int b, const char *name, dp_error *err);
int dp_add_flatten(dp_model *m, int in, const char *name, dp_error *err);
int dp_add_dropout(dp_model *m, int in, const char *name, float p, dp_error *err);
int dp_add_shortcut_pad(dp_model *m, int in, const char *name, int out, int stride, dp_error *err);
/* Lays out parameters (reverse topological order) and buffers, allocates them. */
dp_status dp_model_finish(dp_model *m, dp_error *err);
void dp_model_free(dp_model *m);

/* Builds a network by name (config model.arch, width, shortcut) for the given input shape. */
dp_status dp_model_build(dp_model *m, const dp_model_config *mc, int in_c, int in_h, int in_w,
                         int num_classes, dp_error *err);

/* Seeded init (deterministic, independent of rank): conv Kaiming-normal (fan_out, as
 * torchvision), linear uniform(+-1/sqrt(fan_in)) for weight and bias, BN gamma 1 beta 0,
 * running mean 0 var 1, conv bias 0. */
void dp_model_init_weights(dp_model *m, uint64_t seed);

/* Rebuilds `src`'s graph into `dst` with new output widths for its conv and linear nodes
 * (widths[i] for node i, ignored for other ops; NULL = unchanged): same nodes, names and
 * attributes, shapes re-inferred, fresh zeroed parameter/gradient/buffer storage (running var
 * 1). Used by pruning surgery, which then copies the kept slices. */
dp_status dp_model_reshape(const dp_model *src, const int *widths, dp_model *dst, dp_error *err);
/* Appends a node like `n` (its inputs must already be valid indices of dst) with output width
 * `width` for conv and linear nodes; returns the new node index or -1. */
int dp_model_add_like(dp_model *dst, const dp_node *n, int width, dp_error *err);
/* Deployment copy with every BN that directly follows a conv or linear (its only consumer)
 * folded into that layer's weights and bias (eval-mode arithmetic: y = s (Wx + b - mean) +
 * beta, s = gamma / sqrt(var + eps)). Other BNs stay. dst is built fresh. */
dp_status dp_model_fold_bn(const dp_model *src, dp_model *dst, dp_error *err);

/* ---- counts ---- */
int64_t dp_node_params(const dp_model *m, int node);
int64_t dp_node_flops(const dp_model *m, int node); /* per sample, MACs of conv/linear */
int64_t dp_model_params(const dp_model *m);
int64_t dp_model_flops(const dp_model *m);
void dp_model_summary(const dp_model *m, FILE *out);

static inline float *dp_param_ptr(const dp_model *m, int p) {
    return m->param_data + m->params[p].offset;
}
static inline float *dp_grad_ptr(const dp_model *m, int p) {
    return m->grad_data + m->params[p].offset;
}
static inline float *dp_buffer_ptr(const dp_model *m, int b) {
    return m->buffer_data + m->buffers[b].offset;
}
int dp_model_output_node(const dp_model *m);

/* ---- execution ---- */
/* Hooks that let dist/ take part in a step without model/ knowing MPI. All optional. */
typedef struct {
    void *ctx;
    /* called after backward has finished node `node` (its parameter grads are final) */
    void (*node_backward_done)(void *ctx, int node);
    /* sync-BN: sum `n` doubles and the per-channel count across ranks, in place */
    void (*bn_allreduce)(void *ctx, double *sums, int n, double *count);
} dp_exec_hooks;

/* Activation storage for batches of up to `cap` samples. */
typedef struct {
    int cap;
    float **out;      /* [n_nodes] node outputs [N, c, h, w] */
    float **dout;     /* [n_nodes] gradients of node outputs */
    float **saved;    /* bn: mean/invstd [2C]; dropout: mask */
    int32_t **argmax; /* maxpool */
    float *conv_ws;
    size_t conv_ws_floats;
    conv2d_kept *conv_kept; /* [n_nodes] Winograd convs: the forward's transformed weights */
    bool kept_lent;         /* conv_kept[*].u lie in a caller's buffer (dp_activations_lend_kept) */
    double *bn_sums;        /* scratch [4 * max C] */
    bool *zeroed; /* [n_nodes] backward bookkeeping: gradient buffer already set (zeroed, or
                     written by the caller: dp_activations_grad_written) */
} dp_activations;

dp_status dp_activations_alloc(dp_activations *a, const dp_model *m, int cap, dp_error *err);
void dp_activations_free(dp_activations *a, const dp_model *m);
/* Floats of all the kept Winograd weights of a (each layer's run a whole number of 64-byte
 * lines), i.e. what dp_activations_lend_kept needs. */
size_t dp_activations_kept_floats(const dp_activations *a, const dp_model *m);
/* The kept weights move into buf (dp_activations_kept_floats floats, 64-byte aligned, owned
 * by the caller, e.g. one copy shared by the processes of a node); a's own are freed. */
void dp_activations_lend_kept(dp_activations *a, const dp_model *m, float *buf);
/* Transforms part `part` of `parts` of every kept layer's weights ahead of the forward
 * (conv2d_prepare_kept) and marks them ready: the step's forwards then reuse them, however
 * many micro-batches it has. Processes sharing the kept buffer each take one part and must
 * all be done before any forward. dp_activations_forget_kept ends it: call it before the
 * weights change. Training forwards only (evaluation forwards do not touch the kept weights). */
void dp_model_prepare_kept(const dp_model *m, dp_activations *a, int part, int parts);
void dp_activations_forget_kept(dp_activations *a, const dp_model *m);

typedef struct {
    bool train;                  /* BN batch stats + running-stat update, dropout active */
    uint64_t seed;               /* dropout stream */
    const uint64_t *sample_keys; /* [N] per-sample keys (dataset index + epoch mix) */
    const dp_exec_hooks *hooks;
    /* When set, [n_nodes] wall seconds added per node (forward and backward alike), for the
     * per-layer time tables of `dprune profile` and the benchmarks. NULL on the normal path. */
    double *node_seconds;
    /* Backward writes the parameter gradients instead of adding to them (a step's first
     * micro-batch): their old contents are ignored, so the caller need not clear them; the
     * Winograd layers then skip reading them too. */
    bool write_grads;
} dp_forward_opts;

/* x [N, in_c, in_h, in_w] -> logits in a->out[output node] ([N, num_classes]). */
void dp_model_forward(const dp_model *m, dp_activations *a, const float *x, int N,
                      const dp_forward_opts *o);
/* Needs a->dout[output] set (dlogits). Zeroes the other activation grads first (except those
 * marked by dp_activations_grad_written), then accumulates parameter grads into m->grad_data
 * (callers zero it per optimizer step). */
void dp_model_backward(const dp_model *m, dp_activations *a, int N, const dp_forward_opts *o);
/* A loss term on a hidden activation (e.g. PCC on a post-ReLU map): between a forward and its
 * backward the caller writes (=, not +=) the term's gradient into the whole [N, c, h, w] buffer
 * a->dout[node] of a node other than the input and the output, then marks it here; backward
 * then adds the consumers' gradients onto it instead of zeroing it first. The mark lasts until
 * the end of that backward (or the next forward). */
void dp_activations_grad_written(dp_activations *a, const dp_model *m, int node);

#endif
