/* Measuring a per-layer time table. Each node is timed alone, in a model of just that node,
 * at every point of its channel grid: pruning changes a layer's input and output widths
 * independently (they belong to different channel groups), which a whole-network run at a few
 * uniform widths could not separate. The node's time is read from the executor's per-node
 * clock (dp_forward_opts.node_seconds), so the feeding ReLU is not counted. */
#include "dprune/profile.h"
#include "dprune/nn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dp_profile_opts_default(dp_profile_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 64;
    o->grid = 8;
    o->reps = 5;
    o->train = true;
    o->seed = 1;
}

bool dp_profile_is_timed(const dp_model *m, int node) {
    return node > 0 && node < m->n_nodes && m->nodes[node].op != DP_OP_FLATTEN;
}

/* Ops whose output has the channels of their (first) input. */
static bool keeps_channels(dp_op op) {
    return op != DP_OP_CONV && op != DP_OP_LINEAR && op != DP_OP_SHORTCUT_PAD &&
           op != DP_OP_INPUT && op != DP_OP_FLATTEN;
}

/* The channels of node i come unchanged from the network input (never pruned). */
static bool from_input(const dp_model *m, int i) {
    while (i > 0 && (keeps_channels(m->nodes[i].op) || m->nodes[i].op == DP_OP_FLATTEN))
        i = m->nodes[i].in[0];
    return i == 0;
}

int dp_profile_axis(int C, int grid, int *axis) {
    int n = 0;
    if (grid < 1) grid = 1;
    if (grid > DP_LATENCY_MAX_AXIS) grid = DP_LATENCY_MAX_AXIS;
    for (int i = 1; i <= grid; i++) {
        int c = (int)lround((double)i * C / grid);
        if (c < 1) c = 1;
        if (n == 0 || c > axis[n - 1]) axis[n++] = c;
    }
    return n;
}

static void single(int C, int *axis, int *n) {
    axis[0] = C;
    *n = 1;
}

void dp_profile_axes(const dp_model *m, int node, int grid, dp_latency_entry *e) {
    const dp_node *n = &m->nodes[node], *src = &m->nodes[n->in[0]];
    snprintf(e->name, sizeof e->name, "%s", n->name);
    snprintf(e->op, sizeof e->op, "%s", dp_op_name(n->op));
    e->in_c = src->c, e->in_h = src->h, e->in_w = src->w;
    e->out_c = n->c, e->out_h = n->h, e->out_w = n->w;
    e->k = e->stride = 0;
    if (n->op == DP_OP_CONV) e->k = n->a.conv.k, e->stride = n->a.conv.stride;
    if (n->op == DP_OP_MAXPOOL || n->op == DP_OP_AVGPOOL)
        e->k = n->a.pool.k, e->stride = n->a.pool.stride;
    bool in_fixed = from_input(m, n->in[0]) || keeps_channels(n->op);
    bool out_fixed = node == dp_model_output_node(m) || n->op == DP_OP_SHORTCUT_PAD ||
                     (keeps_channels(n->op) && from_input(m, node));
    if (in_fixed)
        single(e->in_c, e->in_axis, &e->n_in);
    else
        e->n_in = dp_profile_axis(e->in_c, grid, e->in_axis);
    if (out_fixed)
        single(e->out_c, e->out_axis, &e->n_out);
    else
        e->n_out = dp_profile_axis(e->out_c, grid, e->out_axis);
}

dp_status dp_model_isolate(const dp_model *m, int node, int in_c, int out_c, dp_model *out,
                           dp_error *err) {
    if (!dp_profile_is_timed(m, node))
        return dp_fail(err, DP_ERR_ARG, "profile: node %d is not timed", node);
    const dp_node *n = &m->nodes[node], *src = &m->nodes[n->in[0]];
    int c = keeps_channels(n->op) ? out_c : in_c;
    dp_model_begin(out, c, src->h, src->w);
    snprintf(out->arch, sizeof out->arch, "%s", m->arch);
    int x = n->in[0] == 0 ? 0 : dp_add_relu(out, 0, "profile_feed", err);
    dp_node like = *n;
    like.in[0] = x;
    like.in[1] = x;
    int i = x < 0 ? -1 : dp_model_add_like(out, &like, out_c, err);
    if (i < 0) {
        dp_model_free(out);
        return err ? err->code : DP_ERR_ARG;
    }
    out->num_classes = out->nodes[i].c;
    dp_status st = dp_model_finish(out, err);
    if (st != DP_OK) dp_model_free(out);
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill_normal(float *x, size_t n, uint64_t seed, uint64_t stream) {
    dp_rng r;
    dp_rng_init(&r, seed, stream, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)dp_rng_normal(&r);
}

/* ms of the timed part of one call: the last node alone, or (whole) every node */
static double timed_ms(const dp_model *m, const double *sec, bool whole) {
    double s = whole ? 0 : sec[dp_model_output_node(m)];
    for (int i = 1; whole && i < m->n_nodes; i++) s += sec[i];
    return 1e3 * s;
}

/* Median ms of the last node of `mini` (or of all of it: whole) in inference and (if
 * train_ms) in a training step. */
static dp_status time_point(dp_model *mini, const dp_profile_opts *o, bool whole, double *infer_ms,
                            double *train_ms, dp_error *err) {
    int N = o->batch, last = dp_model_output_node(mini), reps = o->reps < 1 ? 1 : o->reps;
    dp_activations a;
    dp_status st = dp_activations_alloc(&a, mini, N, err);
    if (st != DP_OK) return st;
    size_t nx = (size_t)N * mini->in_c * mini->in_h * mini->in_w;
    const dp_node *y = &mini->nodes[last];
    size_t ny = (size_t)N * y->c * y->h * y->w;
    float *x = dp_alloc_floats(nx);
    double *sec = calloc((size_t)mini->n_nodes, sizeof(double));
    double *t = calloc((size_t)reps, sizeof(double));
    uint64_t *keys = calloc((size_t)N, sizeof(uint64_t));
    if (!x || !sec || !t || !keys) {
        st = dp_fail(err, DP_ERR_NOMEM, "profile: out of memory (batch %d)", N);
        goto done;
    }
    fill_normal(x, nx, o->seed, 1);
    fill_normal(a.dout[last], ny, o->seed, 2);
    for (int i = 0; i < N; i++) keys[i] = (uint64_t)i;
    dp_model_init_weights(mini, o->seed);
    dp_forward_opts eval = {.train = false, .node_seconds = sec};
    dp_forward_opts train = {
        .train = true, .seed = o->seed, .sample_keys = keys, .node_seconds = sec};
    dp_model_forward(mini, &a, x, N, &eval); /* warm-up: page faults, caches */
    for (int r = 0; r < reps; r++) {
        memset(sec, 0, sizeof(double) * (size_t)mini->n_nodes);
        dp_model_forward(mini, &a, x, N, &eval);
        t[r] = timed_ms(mini, sec, whole);
    }
    *infer_ms = median(t, reps);
    if (train_ms) {
        dp_model_forward(mini, &a, x, N, &train);
        dp_model_backward(mini, &a, N, &train);
        for (int r = 0; r < reps; r++) {
            memset(sec, 0, sizeof(double) * (size_t)mini->n_nodes);
            dp_model_forward(mini, &a, x, N, &train);
            dp_model_backward(mini, &a, N, &train);
            t[r] = timed_ms(mini, sec, whole);
        }
        *train_ms = median(t, reps);
    }
done:
    dp_free(x);
    free(sec), free(t), free(keys);
    dp_activations_free(&a, mini);
    return st;
}

static dp_status measure_entry(const dp_model *m, int node, const dp_profile_opts *o,
                               dp_latency_entry *e, dp_error *err) {
    dp_status st = dp_latency_entry_alloc(e, o->train, err);
    for (int a = 0; a < e->n_in && st == DP_OK; a++)
        for (int b = 0; b < e->n_out && st == DP_OK; b++) {
            dp_model mini;
            st = dp_model_isolate(m, node, e->in_axis[a], e->out_axis[b], &mini, err);
            if (st != DP_OK) break;
            int k = a * e->n_out + b;
            st = time_point(&mini, o, false, &e->infer_ms[k], o->train ? &e->train_ms[k] : NULL,
                            err);
            dp_model_free(&mini);
        }
    return st;
}

dp_status dp_profile_measure(const dp_model *m, const dp_profile_opts *o, dp_latency_table *t,
                             dp_error *err) {
    if (o->batch < 1 || o->grid < 1 || o->grid > DP_LATENCY_MAX_AXIS || o->reps < 1)
        return dp_fail(err, DP_ERR_ARG, "profile: batch %d, grid %d (1..%d), reps %d out of range",
                       o->batch, o->grid, DP_LATENCY_MAX_AXIS, o->reps);
    int total = 0;
    for (int i = 1; i < m->n_nodes; i++) total += dp_profile_is_timed(m, i);
    dp_status st = dp_latency_table_alloc(t, total, err);
    if (st != DP_OK) return st;
    snprintf(t->model, sizeof t->model, "%s", m->arch);
    t->in_c = m->in_c, t->in_h = m->in_h, t->in_w = m->in_w;
    t->batch = o->batch, t->threads = dp_threads_count(), t->reps = o->reps;
    snprintf(t->blas_core, sizeof t->blas_core, "%s", dp_blas_corename());
    snprintf(t->version, sizeof t->version, "dprune %s (commit %s)", DPRUNE_VERSION,
             DPRUNE_GIT_COMMIT);
    for (int i = 1, done = 0; i < m->n_nodes && st == DP_OK; i++) {
        if (!dp_profile_is_timed(m, i)) continue;
        if (o->progress) o->progress(o->progress_ctx, m, i, done, total);
        dp_latency_entry *e = &t->entries[done++];
        dp_profile_axes(m, i, o->grid, e);
        st = measure_entry(m, i, o, e, err);
    }
    if (st != DP_OK) dp_latency_table_free(t);
    return st;
}

dp_status dp_profile_whole(const dp_model *m, const dp_profile_opts *o, double *infer_ms,
                           double *train_ms, dp_error *err) {
    dp_model copy; /* fresh storage: timing writes BN statistics and gradients */
    dp_status st = dp_model_reshape(m, NULL, &copy, err);
    if (st != DP_OK) return st;
    st = time_point(&copy, o, true, infer_ms, o->train ? train_ms : NULL, err);
    dp_model_free(&copy);
    return st;
}
