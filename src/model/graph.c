/* The graph: nodes appended in topological order (a node's inputs are always earlier nodes),
 * with output shapes inferred as they are added, then parameters laid out in one buffer. */
#include "dprune/model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dp_op_name(dp_op op) {
    static const char *names[] = {"input", "conv",   "bn",  "relu",    "maxpool", "avgpool",
                                  "gap",   "linear", "add", "flatten", "dropout", "shortcut_pad"};
    return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "?";
}

void dp_model_begin(dp_model *m, int in_c, int in_h, int in_w) {
    memset(m, 0, sizeof *m);
    m->in_c = in_c, m->in_h = in_h, m->in_w = in_w;
    m->cap_nodes = 64;
    m->nodes = calloc((size_t)m->cap_nodes, sizeof(dp_node));
    dp_node *in = &m->nodes[m->n_nodes++];
    in->op = DP_OP_INPUT;
    snprintf(in->name, sizeof in->name, "input");
    in->c = in_c, in->h = in_h, in->w = in_w;
    in->p[0] = in->p[1] = in->buf[0] = in->buf[1] = -1;
}

/* Appends a node of `op` reading `in` and returns a pointer to it (NULL on a bad input). */
static dp_node *append(dp_model *m, dp_op op, int in, const char *name, dp_error *err) {
    if (!m->nodes) {
        dp_fail(err, DP_ERR_NOMEM, "model: out of memory");
        return NULL;
    }
    if (in < 0 || in >= m->n_nodes) {
        dp_fail(err, DP_ERR_ARG, "layer '%s': input node %d does not exist", name, in);
        return NULL;
    }
    if (m->n_nodes == m->cap_nodes) {
        dp_node *grown = realloc(m->nodes, sizeof(dp_node) * (size_t)m->cap_nodes * 2);
        if (!grown) {
            dp_fail(err, DP_ERR_NOMEM, "model: out of memory adding '%s'", name);
            return NULL;
        }
        m->nodes = grown;
        m->cap_nodes *= 2;
    }
    dp_node *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    snprintf(n->name, sizeof n->name, "%s", name);
    n->in[0] = in, n->in[1] = -1, n->n_in = 1;
    n->p[0] = n->p[1] = n->buf[0] = n->buf[1] = -1;
    const dp_node *src = &m->nodes[in];
    n->c = src->c, n->h = src->h, n->w = src->w;
    return n;
}

static int commit(dp_model *m, dp_node *n, dp_error *err) {
    if (n->c <= 0 || n->h <= 0 || n->w <= 0) {
        dp_fail(err, DP_ERR_ARG, "layer '%s' (%s): output shape %dx%dx%d is empty", n->name,
                dp_op_name(n->op), n->c, n->h, n->w);
        return -1;
    }
    return m->n_nodes++;
}

int dp_add_conv(dp_model *m, int in, const char *name, int out, int k, int stride, int pad,
                bool bias, dp_error *err) {
    dp_node *n = append(m, DP_OP_CONV, in, name, err);
    if (!n) return -1;
    if (out < 1 || k < 1 || stride < 1 || pad < 0) {
        dp_fail(err, DP_ERR_ARG, "conv '%s': out=%d k=%d stride=%d pad=%d must be positive", name,
                out, k, stride, pad);
        return -1;
    }
    n->a.conv = (dp_conv_attr){out, k, stride, pad, bias};
    n->c = out;
    n->h = (n->h + 2 * pad - k) / stride + 1;
    n->w = (n->w + 2 * pad - k) / stride + 1;
    return commit(m, n, err);
}

int dp_add_bn(dp_model *m, int in, const char *name, dp_error *err) {
    dp_node *n = append(m, DP_OP_BN, in, name, err);
    if (!n) return -1;
    n->a.bn = (dp_bn_attr){1e-5f, 0.1f};
    return commit(m, n, err);
}

int dp_add_relu(dp_model *m, int in, const char *name, dp_error *err) {
    dp_node *n = append(m, DP_OP_RELU, in, name, err);
    return n ? commit(m, n, err) : -1;
}

int dp_add_pool(dp_model *m, dp_op op, int in, const char *name, int k, int stride, int pad,
                dp_error *err) {
    dp_node *n = append(m, op, in, name, err);
    if (!n) return -1;
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k) {
        dp_fail(err, DP_ERR_ARG, "pool '%s': k=%d stride=%d pad=%d invalid (pad <= k/2)", name, k,
                stride, pad);
        return -1;
    }
    n->a.pool = (dp_pool_attr){k, stride, pad};
    n->h = (n->h + 2 * pad - k) / stride + 1;
    n->w = (n->w + 2 * pad - k) / stride + 1;
    return commit(m, n, err);
}

int dp_add_gap(dp_model *m, int in, const char *name, dp_error *err) {
    dp_node *n = append(m, DP_OP_GAP, in, name, err);
    if (!n) return -1;
    n->h = n->w = 1;
    return commit(m, n, err);
}

int dp_add_linear(dp_model *m, int in, const char *name, int out, bool bias, dp_error *err) {
    dp_node *n = append(m, DP_OP_LINEAR, in, name, err);
    if (!n) return -1;
    if (out < 1) {
        dp_fail(err, DP_ERR_ARG, "linear '%s': out=%d must be >= 1", name, out);
        return -1;
    }
    n->a.linear = (dp_linear_attr){out, bias};
    n->c = out, n->h = n->w = 1; /* a spatial input is flattened implicitly */
    return commit(m, n, err);
}

int dp_add_add(dp_model *m, int a, int b, const char *name, dp_error *err) {
    dp_node *n = append(m, DP_OP_ADD, a, name, err);
    if (!n) return -1;
    if (b < 0 || b >= m->n_nodes) {
        dp_fail(err, DP_ERR_ARG, "add '%s': input node %d does not exist", name, b);
        return -1;
    }
    const dp_node *nb = &m->nodes[b];
    if (nb->c != n->c || nb->h != n->h || nb->w != n->w) {
        dp_fail(err, DP_ERR_ARG, "add '%s': shapes %dx%dx%d and %dx%dx%d differ", name, n->c, n->h,
                n->w, nb->c, nb->h, nb->w);
        return -1;
    }
    n->in[1] = b, n->n_in = 2;
    return commit(m, n, err);
}

int dp_add_flatten(dp_model *m, int in, const char *name, dp_error *err) {
    dp_node *n = append(m, DP_OP_FLATTEN, in, name, err);
    if (!n) return -1;
    n->c = n->c * n->h * n->w, n->h = n->w = 1;
    return commit(m, n, err);
}

int dp_add_dropout(dp_model *m, int in, const char *name, float p, dp_error *err) {
    dp_node *n = append(m, DP_OP_DROPOUT, in, name, err);
    if (!n) return -1;
    if (!(p >= 0 && p < 1)) {
        dp_fail(err, DP_ERR_ARG, "dropout '%s': p=%g must be in [0, 1)", name, p);
        return -1;
    }
    n->a.dropout.p = p;
    return commit(m, n, err);
}

int dp_add_shortcut_pad(dp_model *m, int in, const char *name, int out, int stride, dp_error *err) {
    dp_node *n = append(m, DP_OP_SHORTCUT_PAD, in, name, err);
    if (!n) return -1;
    if (out < n->c || stride < 1) {
        dp_fail(err, DP_ERR_ARG, "shortcut '%s': out=%d < in=%d", name, out, n->c);
        return -1;
    }
    n->a.shortcut = (dp_shortcut_attr){stride, out, (out - n->c) / 2};
    n->c = out;
    n->h = (n->h + stride - 1) / stride;
    n->w = (n->w + stride - 1) / stride;
    return commit(m, n, err);
}

int dp_model_output_node(const dp_model *m) {
    return m->n_nodes - 1;
}

/* ---- parameter layout ---- */

static void add_view(dp_tensor_view *v, int *count, size_t *offset, int node, const char *node_name,
                     const char *suffix, int ndim, const int *dims, bool no_decay) {
    dp_tensor_view *t = &v[(*count)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", node_name, suffix);
    t->node = node;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) t->dims[i] = dims[i], t->numel *= (size_t)dims[i];
    t->offset = *offset;
    /* keep every tensor 16-float (64-byte) aligned inside the buffer */
    *offset += (t->numel + 15) & ~(size_t)15;
    t->no_decay_candidate = no_decay;
}

dp_status dp_model_finish(dp_model *m, dp_error *err) {
    int maxp = 2 * m->n_nodes;
    m->params = calloc((size_t)maxp, sizeof(dp_tensor_view));
    m->buffers = calloc((size_t)maxp, sizeof(dp_tensor_view));
    if (!m->params || !m->buffers) return dp_fail(err, DP_ERR_NOMEM, "model: out of memory");
    m->n_params = m->n_buffers = 0;
    size_t off = 0, boff = 0;
    /* Reverse topological order: backward produces the last layers' gradients first, so the
     * gradient buffer fills from its start and buckets can be sent as soon as they are full. */
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        dp_node *n = &m->nodes[i];
        const dp_node *src = n->n_in > 0 ? &m->nodes[n->in[0]] : NULL;
        if (n->op == DP_OP_CONV) {
            int d[4] = {n->a.conv.out, src->c, n->a.conv.k, n->a.conv.k};
            n->p[0] = m->n_params;
            add_view(m->params, &m->n_params, &off, i, n->name, "weight", 4, d, false);
            if (n->a.conv.bias) {
                n->p[1] = m->n_params;
                add_view(m->params, &m->n_params, &off, i, n->name, "bias", 1, d, true);
            }
        } else if (n->op == DP_OP_LINEAR) {
            int d[2] = {n->a.linear.out, src->c * src->h * src->w};
            n->p[0] = m->n_params;
            add_view(m->params, &m->n_params, &off, i, n->name, "weight", 2, d, false);
            if (n->a.linear.bias) {
                n->p[1] = m->n_params;
                add_view(m->params, &m->n_params, &off, i, n->name, "bias", 1, d, true);
            }
        } else if (n->op == DP_OP_BN) {
            int d[1] = {n->c};
            n->p[0] = m->n_params;
            add_view(m->params, &m->n_params, &off, i, n->name, "weight", 1, d, true);
            n->p[1] = m->n_params;
            add_view(m->params, &m->n_params, &off, i, n->name, "bias", 1, d, true);
            n->buf[0] = m->n_buffers;
            add_view(m->buffers, &m->n_buffers, &boff, i, n->name, "running_mean", 1, d, false);
            n->buf[1] = m->n_buffers;
            add_view(m->buffers, &m->n_buffers, &boff, i, n->name, "running_var", 1, d, false);
        }
    }
    m->n_param_floats = off;
    m->n_buffer_floats = boff;
    m->param_data = dp_alloc_floats(off);
    m->grad_data = dp_alloc_floats(off);
    m->buffer_data = dp_alloc_floats(boff);
    if (!m->param_data || !m->grad_data || !m->buffer_data)
        return dp_fail(err, DP_ERR_NOMEM, "model: cannot allocate %zu parameters", off);
    for (int b = 0; b < m->n_buffers; b++)
        if (strstr(m->buffers[b].name, "running_var"))
            for (size_t j = 0; j < m->buffers[b].numel; j++) dp_buffer_ptr(m, b)[j] = 1.0f;
    return DP_OK;
}

void dp_model_free(dp_model *m) {
    free(m->nodes);
    free(m->params);
    free(m->buffers);
    dp_free(m->param_data);
    dp_free(m->grad_data);
    dp_free(m->buffer_data);
    memset(m, 0, sizeof *m);
}

/* ---- counts ---- */

int64_t dp_node_params(const dp_model *m, int node) {
    const dp_node *n = &m->nodes[node];
    int64_t total = 0;
    for (int j = 0; j < 2; j++)
        if (n->p[j] >= 0) total += (int64_t)m->params[n->p[j]].numel;
    return total;
}

int64_t dp_node_flops(const dp_model *m, int node) {
    const dp_node *n = &m->nodes[node];
    if (n->op == DP_OP_CONV) {
        const dp_node *src = &m->nodes[n->in[0]];
        return (int64_t)n->c * n->h * n->w * src->c * n->a.conv.k * n->a.conv.k;
    }
    if (n->op == DP_OP_LINEAR) {
        const dp_node *src = &m->nodes[n->in[0]];
        return (int64_t)n->c * src->c * src->h * src->w;
    }
    return 0;
}

int64_t dp_model_params(const dp_model *m) {
    int64_t t = 0;
    for (int i = 0; i < m->n_nodes; i++) t += dp_node_params(m, i);
    return t;
}

int64_t dp_model_flops(const dp_model *m) {
    int64_t t = 0;
    for (int i = 0; i < m->n_nodes; i++) t += dp_node_flops(m, i);
    return t;
}
