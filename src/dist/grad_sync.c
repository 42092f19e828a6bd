/* Gradient allreduce in buckets, overlapped with backward.
 *
 * The gradient buffer is laid out in reverse topological order, so backward finalises it
 * from offset 0 upward: once node i's backward is done, every tensor of nodes >= i is final.
 * Buckets are runs of whole tensors (the first about first_bytes, then about bucket_bytes);
 * a bucket is posted with MPI_Iallreduce as soon as its lowest node is done, always in bucket
 * order (the same order on every rank, as MPI requires for collectives), and outstanding
 * requests are progressed with MPI_Test between layers. */
#include "dprune/dist.h"
#include "watchdog.h"
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t offset, count; /* floats */
    int min_node;         /* the earliest node whose gradients are in this bucket */
    MPI_Request req;
    bool posted;
} bucket;

struct dp_grad_sync {
    dp_dist *dist;
    float *grad;
    bucket *buckets;
    int n_buckets;
    int next_to_post;
    bool overlap, active;
    size_t total;
    double wait_seconds; /* time spent blocked in finish() (communication not hidden) */
};

dp_status dp_grad_sync_create(dp_grad_sync **out, dp_dist *d, const dp_model *m, size_t first_bytes,
                              size_t bucket_bytes, bool overlap, dp_error *err) {
    dp_grad_sync *g = calloc(1, sizeof *g);
    if (!g) return dp_fail(err, DP_ERR_NOMEM, "grad sync: out of memory");
    g->buckets = calloc((size_t)m->n_params + 1, sizeof(bucket));
    if (!g->buckets) {
        free(g);
        return dp_fail(err, DP_ERR_NOMEM, "grad sync: out of memory");
    }
    g->dist = d;
    g->grad = m->grad_data;
    g->overlap = overlap;
    g->total = m->n_param_floats;
    size_t limit = first_bytes / sizeof(float);
    bucket *cur = NULL;
    for (int p = 0; p < m->n_params; p++) {
        const dp_tensor_view *v = &m->params[p];
        if (!cur || cur->count >= limit) {
            if (cur) limit = bucket_bytes / sizeof(float);
            cur = &g->buckets[g->n_buckets++];
            cur->offset = v->offset;
            cur->min_node = v->node;
        }
        /* a bucket spans to the end of its last tensor (including alignment padding) */
        size_t end = p + 1 < m->n_params ? m->params[p + 1].offset : m->n_param_floats;
        cur->count = end - cur->offset;
        if (v->node < cur->min_node) cur->min_node = v->node;
    }
    *out = g;
    return DP_OK;
}

void dp_grad_sync_free(dp_grad_sync *g) {
    if (!g) return;
    free(g->buckets);
    free(g);
}

int dp_grad_sync_buckets(const dp_grad_sync *g) {
    return g->n_buckets;
}

void dp_grad_sync_begin(dp_grad_sync *g) {
    g->next_to_post = 0;
    g->active = g->overlap;
    for (int b = 0; b < g->n_buckets; b++) g->buckets[b].posted = false;
}

static void post(dp_grad_sync *g, bucket *b) {
    MPI_Iallreduce(MPI_IN_PLACE, g->grad + b->offset, (int)b->count, MPI_FLOAT, MPI_SUM,
                   g->dist->comm, &b->req);
    b->posted = true;
}

void dp_grad_sync_node_done(dp_grad_sync *g, int node) {
    if (!g->active) return;
    while (g->next_to_post < g->n_buckets && g->buckets[g->next_to_post].min_node >= node)
        post(g, &g->buckets[g->next_to_post++]);
    /* drive progress of what is in flight (Open MPI progresses non-blocking collectives only
     * inside MPI calls) */
    for (int b = 0; b < g->next_to_post; b++) {
        if (g->buckets[b].req == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&g->buckets[b].req, &done, MPI_STATUS_IGNORE);
    }
}

dp_status dp_grad_sync_finish(dp_grad_sync *g, dp_error *err) {
    double t0 = dp_now_seconds();
    if (!g->overlap) {
        /* the comparison mode: one blocking allreduce of the whole buffer */
        dp_status st = dp_dist_sum_float(g->dist, g->grad, g->total, err);
        g->wait_seconds += dp_now_seconds() - t0;
        return st;
    }
    while (g->next_to_post < g->n_buckets) post(g, &g->buckets[g->next_to_post++]);
    for (int b = 0; b < g->n_buckets; b++) {
        dp_status st = dp_watchdog_wait(g->dist, &g->buckets[b].req, "gradient allreduce", err);
        if (st != DP_OK) return st;
    }
    g->active = false;
    g->wait_seconds += dp_now_seconds() - t0;
    return DP_OK;
}

double dp_grad_sync_wait_seconds(const dp_grad_sync *g) {
    return g->wait_seconds;
}

void dp_grad_sync_reset_timers(dp_grad_sync *g) {
    g->wait_seconds = 0;
}
