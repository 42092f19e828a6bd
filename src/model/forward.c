/* Execution of the graph: activation storage, forward in topological order, backward in
 * reverse. Each node dispatches to its nn/ kernel; shapes come from the node table. */
#include "dprune/model.h"
#include "dprune/nn.h"
#include <stdlib.h>
#include <string.h>

/* Flatten is a view: its output (and gradient) share the input's storage. */
static bool is_view(const dp_node *n) {
    return n->op == DP_OP_FLATTEN;
}

static size_t node_numel(const dp_node *n, int N) {
    return (size_t)N * n->c * n->h * n->w;
}

// x[0..n) = 0 on all threads (one core does not reach the memory bandwidth)
static void zero_floats(float *x, size_t n) {
    const long blocks = (long)((n + 16383) / 16384);
#pragma omp parallel for schedule(static) if (blocks > 4)
    for (long b = 0; b < blocks; b++) {
        size_t lo = (size_t)b * 16384, len = n - lo < 16384 ? n - lo : 16384;
        memset(x + lo, 0, sizeof(float) * len);
    }
}

static void conv_shape(const dp_model *m, const dp_node *n, int N, conv2d_shape *s) {
    const dp_node *src = &m->nodes[n->in[0]];
    conv2d_shape_init(s, N, src->c, src->h, src->w, n->c, n->a.conv.k, n->a.conv.k,
                      n->a.conv.stride, n->a.conv.pad);
}

static void pool_shape(const dp_model *m, const dp_node *n, int N, pool2d_shape *s) {
    const dp_node *src = &m->nodes[n->in[0]];
    pool2d_shape_init(s, N, src->c, src->h, src->w, n->a.pool.k, n->a.pool.stride, n->a.pool.pad);
}

dp_status dp_activations_alloc(dp_activations *a, const dp_model *m, int cap, dp_error *err) {
    memset(a, 0, sizeof *a);
    a->cap = cap;
    int nn = m->n_nodes;
    a->out = calloc((size_t)nn, sizeof(float *));
    a->dout = calloc((size_t)nn, sizeof(float *));
    a->saved = calloc((size_t)nn, sizeof(float *));
    a->argmax = calloc((size_t)nn, sizeof(int32_t *));
    a->conv_kept = calloc((size_t)nn, sizeof(conv2d_kept));
    if (!a->out || !a->dout || !a->saved || !a->argmax || !a->conv_kept) goto nomem;
    int threads = dp_threads_count(), maxc = 1;
    for (int i = 1; i < nn; i++) {
        const dp_node *n = &m->nodes[i];
        if (n->c > maxc) maxc = n->c;
        if (is_view(n)) {
            a->out[i] = a->out[n->in[0]];
            a->dout[i] = a->dout[n->in[0]];
            continue;
        }
        a->out[i] = dp_alloc_floats(node_numel(n, cap));
        a->dout[i] = dp_alloc_floats(node_numel(n, cap));
        if (!a->out[i] || !a->dout[i]) goto nomem;
        if (n->op == DP_OP_BN) a->saved[i] = dp_alloc_floats(2 * (size_t)n->c);
        if (n->op == DP_OP_DROPOUT) a->saved[i] = dp_alloc_floats(node_numel(n, cap));
        if (n->op == DP_OP_MAXPOOL) a->argmax[i] = dp_alloc(node_numel(n, cap) * sizeof(int32_t));
        if ((n->op == DP_OP_BN || n->op == DP_OP_DROPOUT) && !a->saved[i]) goto nomem;
        if (n->op == DP_OP_MAXPOOL && !a->argmax[i]) goto nomem;
        if (n->op == DP_OP_CONV) {
            conv2d_shape s;
            conv_shape(m, n, cap, &s);
            size_t ws = conv2d_workspace_floats(&s, threads);
            if (ws > a->conv_ws_floats) a->conv_ws_floats = ws;
            size_t kept = conv2d_kept_floats(&s);
            if (kept > 0 && !(a->conv_kept[i].u = dp_alloc_floats(kept))) goto nomem;
        }
    }
    a->conv_ws = dp_alloc_floats(a->conv_ws_floats);
    a->bn_sums = calloc(4 * (size_t)maxc, sizeof(double));
    a->zeroed = calloc((size_t)nn, sizeof(bool));
    if (!a->zeroed) goto nomem;
    if (!a->conv_ws || !a->bn_sums) goto nomem;
    return DP_OK;
nomem:
    dp_activations_free(a, m);
    return dp_fail(err, DP_ERR_NOMEM, "cannot allocate activations for batch %d", cap);
}

void dp_activations_free(dp_activations *a, const dp_model *m) {
    if (a->out)
        for (int i = 1; i < m->n_nodes; i++) {
            if (is_view(&m->nodes[i])) continue;
            dp_free(a->out[i]);
            dp_free(a->dout[i]);
            dp_free(a->saved[i]);
            dp_free(a->argmax[i]);
            if (a->conv_kept && !a->kept_lent) dp_free(a->conv_kept[i].u);
        }
    free(a->out);
    free(a->dout);
    free(a->saved);
    free(a->argmax);
    free(a->conv_kept);
    dp_free(a->conv_ws);
    free(a->bn_sums);
    free(a->zeroed);
    memset(a, 0, sizeof *a);
}

/* floats of node i's kept weights at a->cap, rounded up to whole 64-byte lines */
static size_t kept_run(const dp_model *m, const dp_activations *a, int i) {
    if (m->nodes[i].op != DP_OP_CONV || !a->conv_kept[i].u) return 0;
    conv2d_shape s;
    conv_shape(m, &m->nodes[i], a->cap, &s);
    return (conv2d_kept_floats(&s) + 15) / 16 * 16;
}

size_t dp_activations_kept_floats(const dp_activations *a, const dp_model *m) {
    size_t n = 0;
    for (int i = 1; i < m->n_nodes; i++) n += kept_run(m, a, i);
    return n;
}

void dp_activations_lend_kept(dp_activations *a, const dp_model *m, float *buf) {
    size_t at = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        size_t run = kept_run(m, a, i);
        if (run == 0) continue;
        if (!a->kept_lent) dp_free(a->conv_kept[i].u);
        a->conv_kept[i].u = buf + at;
        a->conv_kept[i].valid = a->conv_kept[i].ready = false;
        at += run;
    }
    a->kept_lent = true;
}

void dp_model_prepare_kept(const dp_model *m, dp_activations *a, int part, int parts) {
    for (int i = 1; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        if (n->op != DP_OP_CONV) continue;
        conv2d_shape s;
        conv_shape(m, n, a->cap, &s);
        conv2d_prepare_kept(&s, dp_param_ptr(m, n->p[0]), &a->conv_kept[i], part, parts);
    }
}

void dp_activations_forget_kept(dp_activations *a, const dp_model *m) {
    for (int i = 1; i < m->n_nodes; i++) a->conv_kept[i].ready = false;
}

static void bn_forward(const dp_model *m, dp_activations *a, int i, int N,
                       const dp_forward_opts *o) {
    const dp_node *n = &m->nodes[i];
    int C = n->c, HW = n->h * n->w;
    const float *x = a->out[n->in[0]];
    float *gamma = dp_param_ptr(m, n->p[0]), *beta = dp_param_ptr(m, n->p[1]);
    float *rm = dp_buffer_ptr(m, n->buf[0]), *rv = dp_buffer_ptr(m, n->buf[1]);
    if (!o->train) {
        batchnorm_forward_eval(N, C, HW, x, gamma, beta, n->a.bn.eps, rm, rv, a->out[i]);
        return;
    }
    double *sums = a->bn_sums, count = (double)N * HW;
    batchnorm_sums(N, C, HW, x, sums);
    if (o->hooks && o->hooks->bn_allreduce)
        o->hooks->bn_allreduce(o->hooks->ctx, sums, 2 * C, &count);
    batchnorm_forward_from_sums(N, C, HW, x, sums, count, gamma, beta, n->a.bn.eps,
                                n->a.bn.momentum, rm, rv, a->saved[i], a->saved[i] + C, a->out[i]);
}

void dp_model_forward(const dp_model *m, dp_activations *a, const float *x, int N,
                      const dp_forward_opts *o) {
    a->out[0] = (float *)x;
    /* gradients written for an earlier forward are stale now */
    memset(a->zeroed, 0, sizeof(bool) * (size_t)m->n_nodes);
    for (int i = 1; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        const dp_node *src = &m->nodes[n->in[0]];
        const float *in = a->out[n->in[0]];
        float *y = a->out[i];
        double t0 = o->node_seconds ? dp_now_seconds() : 0;
        switch (n->op) {
        case DP_OP_CONV: {
            conv2d_shape s;
            conv_shape(m, n, N, &s);
            /* only a training forward keeps (or reuses) the transformed weights: evaluation
             * has no backward, and must not write a kept buffer other processes share */
            conv2d_kept *keep = &a->conv_kept[i];
            if (!o->train) keep->valid = false; /* a backward after it transforms again */
            conv2d_forward_keep(&s, in, dp_param_ptr(m, n->p[0]),
                                n->p[1] >= 0 ? dp_param_ptr(m, n->p[1]) : NULL, y, a->conv_ws,
                                a->conv_ws_floats, o->train ? keep : NULL);
            break;
        }
        case DP_OP_BN:
            bn_forward(m, a, i, N, o);
            break;
        case DP_OP_RELU:
            relu_forward(node_numel(n, N), in, y);
            break;
        case DP_OP_MAXPOOL: {
            pool2d_shape s;
            pool_shape(m, n, N, &s);
            maxpool2d_forward(&s, in, y, a->argmax[i]);
            break;
        }
        case DP_OP_AVGPOOL: {
            pool2d_shape s;
            pool_shape(m, n, N, &s);
            avgpool2d_forward(&s, in, y);
            break;
        }
        case DP_OP_GAP:
            global_avgpool_forward(N, src->c, src->h * src->w, in, y);
            break;
        case DP_OP_LINEAR:
            linear_forward(N, src->c * src->h * src->w, n->c, in, dp_param_ptr(m, n->p[0]),
                           n->p[1] >= 0 ? dp_param_ptr(m, n->p[1]) : NULL, y);
            break;
        case DP_OP_ADD:
            add_forward(node_numel(n, N), in, a->out[n->in[1]], y);
            break;
        case DP_OP_FLATTEN:
            a->out[i] = a->out[n->in[0]];
            break;
        case DP_OP_DROPOUT:
            if (o->train && n->a.dropout.p > 0)
                dropout_forward(N, n->c * n->h * n->w, n->a.dropout.p, o->seed, o->sample_keys,
                                (uint64_t)i, in, y, a->saved[i]);
            else
                memcpy(y, in, sizeof(float) * node_numel(n, N));
            break;
        case DP_OP_SHORTCUT_PAD:
            shortcut_pad_forward(N, src->c, src->h, src->w, n->c, n->a.shortcut.stride,
                                 n->a.shortcut.pad_before, in, y);
            break;
        case DP_OP_INPUT:
            break;
        }
        if (o->node_seconds) o->node_seconds[i] += dp_now_seconds() - t0;
    }
}

static void bn_backward(const dp_model *m, dp_activations *a, int i, int N, float *dx,
                        const dp_forward_opts *o) {
    const dp_node *n = &m->nodes[i];
    int C = n->c, HW = n->h * n->w;
    const float *x = a->out[n->in[0]], *mean = a->saved[i], *invstd = a->saved[i] + C;
    double *local = a->bn_sums, *global = a->bn_sums + 2 * C, count = (double)N * HW;
    batchnorm_backward_sums(N, C, HW, x, a->dout[i], mean, invstd, local);
    memcpy(global, local, sizeof(double) * 2 * C);
    if (o->hooks && o->hooks->bn_allreduce)
        o->hooks->bn_allreduce(o->hooks->ctx, global, 2 * C, &count);
    batchnorm_backward_from_sums(N, C, HW, x, a->dout[i], dp_param_ptr(m, n->p[0]), mean, invstd,
                                 local, global, count, dx, dp_grad_ptr(m, n->p[0]),
                                 dp_grad_ptr(m, n->p[1]));
}

void dp_model_backward(const dp_model *m, dp_activations *a, int N, const dp_forward_opts *o) {
    int last = dp_model_output_node(m);
    /* Activation grads accumulate (+=), so each must start at zero. Zeroing them all up front
     * streams every gradient buffer through memory once more before backward touches it;
     * instead each is zeroed (on all threads) just before the first consumer in reverse
     * order adds into it, while its lines are about to be used anyway. */
    /* allocated with the activations (no allocation per step); cleared by forward and at the
     * end, so only the caller's dp_activations_grad_written marks are set here */
    bool *zeroed = a->zeroed;
    for (int i = last; i >= 1; i--) {
        const dp_node *n = &m->nodes[i];
        double t0 = o->node_seconds ? dp_now_seconds() : 0; /* zeroing belongs to the consumer */
        /* ReLU and max-pool can overwrite their input's gradient instead: when they are its
         * first writer (no later consumer wrote it yet) they skip the fill and the += */
        bool set_dx = false;
        for (int k = -1; k < n->n_in; k++) {
            int j = k < 0 ? i : n->in[k]; // k = -1: a node nobody consumed has a zero gradient
            while (j > 0 && is_view(&m->nodes[j])) j = m->nodes[j].in[0]; // shared storage
            if (j == 0 || j == last || zeroed[j]) continue;
            if (k == 0 && (n->op == DP_OP_RELU || n->op == DP_OP_MAXPOOL))
                set_dx = true;
            else
                zero_floats(a->dout[j], node_numel(&m->nodes[j], N));
            zeroed[j] = true;
        }
        const dp_node *src = &m->nodes[n->in[0]];
        const float *in = a->out[n->in[0]];
        const float *dy = a->dout[i];
        float *dx = n->in[0] == 0 ? NULL : a->dout[n->in[0]]; /* no gradient for the input */
        /* convolutions write their gradients themselves; the other ops add to cleared ones */
        if (o->write_grads && n->op != DP_OP_CONV)
            for (int k = 0; k < 2; k++)
                if (n->p[k] >= 0) zero_floats(dp_grad_ptr(m, n->p[k]), m->params[n->p[k]].numel);
        switch (n->op) {
        case DP_OP_CONV: {
            conv2d_shape s;
            conv_shape(m, n, N, &s);
            conv2d_backward_kept(&s, in, dp_param_ptr(m, n->p[0]), dy, dx, dp_grad_ptr(m, n->p[0]),
                                 n->p[1] >= 0 ? dp_grad_ptr(m, n->p[1]) : NULL, o->write_grads,
                                 a->conv_ws, a->conv_ws_floats, &a->conv_kept[i]);
            break;
        }
        case DP_OP_BN:
            bn_backward(m, a, i, N, dx, o);
            break;
        case DP_OP_RELU:
            if (dx && set_dx) relu_backward_set(node_numel(n, N), a->out[i], dy, dx);
            if (dx && !set_dx) relu_backward(node_numel(n, N), a->out[i], dy, dx);
            break;
        case DP_OP_MAXPOOL: {
            pool2d_shape s;
            pool_shape(m, n, N, &s);
            if (dx && set_dx) maxpool2d_backward_set(&s, a->argmax[i], dy, dx);
            if (dx && !set_dx) maxpool2d_backward(&s, a->argmax[i], dy, dx);
            break;
        }
        case DP_OP_AVGPOOL: {
            pool2d_shape s;
            pool_shape(m, n, N, &s);
            if (dx) avgpool2d_backward(&s, dy, dx);
            break;
        }
        case DP_OP_GAP:
            if (dx) global_avgpool_backward(N, src->c, src->h * src->w, dy, dx);
            break;
        case DP_OP_LINEAR:
            linear_backward(N, src->c * src->h * src->w, n->c, in, dp_param_ptr(m, n->p[0]), dy, dx,
                            dp_grad_ptr(m, n->p[0]), n->p[1] >= 0 ? dp_grad_ptr(m, n->p[1]) : NULL);
            break;
        case DP_OP_ADD: {
            float *db = n->in[1] == 0 ? NULL : a->dout[n->in[1]];
            if (dx) add_backward(node_numel(n, N), dy, dx, NULL);
            if (db) add_backward(node_numel(n, N), dy, db, NULL);
            break;
        }
        case DP_OP_FLATTEN:
            break; /* shares storage with its input */
        case DP_OP_DROPOUT:
            if (dx) {
                if (o->train && n->a.dropout.p > 0)
                    dropout_backward(node_numel(n, N), a->saved[i], dy, dx);
                else
                    add_backward(node_numel(n, N), dy, dx, NULL);
            }
            break;
        case DP_OP_SHORTCUT_PAD:
            if (dx)
                shortcut_pad_backward(N, src->c, src->h, src->w, n->c, n->a.shortcut.stride,
                                      n->a.shortcut.pad_before, dy, dx);
            break;
        case DP_OP_INPUT:
            break;
        }
        if (o->node_seconds) o->node_seconds[i] += dp_now_seconds() - t0;
        if (o->hooks && o->hooks->node_backward_done)
            o->hooks->node_backward_done(o->hooks->ctx, i);
    }
    memset(zeroed, 0, sizeof(bool) * (size_t)m->n_nodes);
}

void dp_activations_grad_written(dp_activations *a, const dp_model *m, int node) {
    while (node > 0 && is_view(&m->nodes[node])) node = m->nodes[node].in[0]; /* shared storage */
    if (node > 0) a->zeroed[node] = true;
}
