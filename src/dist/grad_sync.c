/* Gradient allreduce in buckets, overlapped with backward.
 *
 * The gradient buffer is laid out in reverse topological order, so backward finalises it
 * from offset 0 upward: once node i's backward is done, every tensor of nodes >= i is final.
 * A bucket is posted with MPI_Iallreduce as soon as its lowest node is done, always in bucket
 * order (the same order on every rank, as MPI requires for collectives), and outstanding
 * requests are progressed with MPI_Test between layers.
 *
 * Layout (runs of whole tensors, computed from the model alone, so identical on every rank):
 *   head    the first bucket, about first_bytes: the output layers' gradients, posted early
 *           so the network starts working at once;
 *   tail    the last buckets, built from the end of the buffer (the lowest nodes) with
 *           limits first_bytes, 2 first_bytes, 4 first_bytes, ... while below bucket_bytes,
 *           so that the bucket posted when the first layer's backward ends is about
 *           first_bytes, and each bucket before it is at most about twice the one after it;
 *   middle  what lies between, greedily in buckets of about bucket_bytes from the head side.
 * "About n" means: tensors are added until the bucket reaches n (or the region ends).
 * Why the tail: the wait after backward is the allreduce of whatever is posted last, plus
 * what is still in flight. With one ~bucket_bytes tail bucket (vgg16: 4.6 MB after a 26 MB
 * one, posted when conv7's backward ended) that was several ms per step exposed; with the
 * doubling tail it is the allreduce of ~first_bytes, and every larger bucket has the backward
 * of all the layers below it to complete in. vgg16 (1 MB / 25 MB): 1.1, 18.9, 18.9, 9.4,
 * 7.1, 3.5, 1.0 MB instead of 1.1, 28.3, 26.0, 4.6 MB. */
#include "dprune/dist.h"
#include "shm_sum.h"
#include "watchdog.h"
#include <mpi.h>
#include <stdio.h>
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
    double wait_seconds;     /* time spent blocked in finish() (communication not hidden) */
    double progress_seconds; /* time spent posting and testing during backward */
    /* the shm route: the window, the model whose gradient buffer is the slot meanwhile and
     * whose parameters are the window's one shared copy, and that model's own buffers, put
     * back by free() */
    dp_shm_sum *shm;
    dp_model *model;
    float *own_grad, *own_params;
    bool kept_shared; /* the activations' kept Winograd weights: one copy in the window */
};

/* floats from the start of tensor a to the start of tensor b (b = n_params: the end),
 * including the alignment padding after each tensor */
static size_t span(const dp_model *m, int a, int b) {
    size_t end = b < m->n_params ? m->params[b].offset : m->n_param_floats;
    return end - m->params[a].offset;
}

/* Appends the bucket of tensors [a, b) (b > a) */
static void add_bucket(dp_grad_sync *g, const dp_model *m, int a, int b) {
    bucket *cur = &g->buckets[g->n_buckets++];
    cur->offset = m->params[a].offset;
    cur->count = span(m, a, b);
    cur->min_node = m->params[a].node;
    for (int p = a + 1; p < b; p++)
        if (m->params[p].node < cur->min_node) cur->min_node = m->params[p].node;
}

/* The end of the bucket that starts at tensor a and takes tensors up to b until it holds at
 * least limit floats (at least one tensor). */
static int fill_forward(const dp_model *m, int a, int b, size_t limit) {
    int e = a + 1;
    while (e < b && span(m, a, e) < limit) e++;
    return e;
}

/* The start of the bucket that ends at tensor b (exclusive) and takes tensors down to a
 * until it holds at least limit floats (at least one tensor). */
static int fill_backward(const dp_model *m, int a, int b, size_t limit) {
    int s = b - 1;
    while (s > a && span(m, s, b) < limit) s--;
    return s;
}

/* head, middle, tail as described at the top; buckets in buffer (posting) order */
static void layout(dp_grad_sync *g, const dp_model *m, size_t first_bytes, size_t bucket_bytes) {
    const int n = m->n_params;
    if (n == 0) return;
    size_t first = first_bytes / sizeof(float), big = bucket_bytes / sizeof(float);
    if (first == 0) first = 1;
    const int head_end = fill_forward(m, 0, n, first);
    // tail bucket starts, from the last bucket backwards; the limit doubles from >= 1 float
    // while below a size_t, so there are fewer than 64
    int starts[64], n_tail = 0, lo = n;
    for (size_t limit = first; limit < big && lo > head_end && n_tail < 64; limit *= 2) {
        lo = fill_backward(m, head_end, lo, limit);
        starts[n_tail++] = lo;
    }
    add_bucket(g, m, 0, head_end);
    for (int a = head_end; a < lo;) {
        int e = fill_forward(m, a, lo, big);
        add_bucket(g, m, a, e);
        a = e;
    }
    for (int t = n_tail - 1; t >= 0; t--) add_bucket(g, m, starts[t], t > 0 ? starts[t - 1] : n);
}

/* *room: whether the backing directory has room for `bytes` more on every rank (this rank's
 * free bytes in *have). Collective. */
static dp_status room_on_every_rank(dp_dist *d, size_t bytes, bool *room, size_t *have,
                                    dp_error *err) {
    int64_t short_of_room = !dp_shm_room(dp_shm_backing_dir(), bytes, have);
    dp_status st = dp_dist_sum_i64(d, &short_of_room, 1, err);
    *room = st == DP_OK && short_of_room == 0;
    return st;
}

/* The route for `want` on this job: shm needs every rank on one node and room for the window.
 * Collective. On a fallback from auto, rank 0 says why. */
static dp_status choose_route(dp_dist *d, size_t floats, dp_sum_route want, dp_sum_route *route,
                              dp_error *err) {
    *route = DP_SUM_MPI;
    if (want == DP_SUM_MPI || !d || d->world == 1) return DP_OK;
    const char *why = NULL;
    char reason[256];
    bool one_node = false;
    dp_status st = dp_shm_single_node(d, &one_node, err);
    if (st != DP_OK) return st;
    if (!one_node) {
        why = "the ranks run on more than one node";
    } else {
        /* a slot per rank and one shared copy of the parameters */
        size_t need = (size_t)(d->world + 1) * dp_shm_sum_bytes(floats), have = 0;
        bool room = false;
        if ((st = room_on_every_rank(d, need, &room, &have, err)) != DP_OK) return st;
        if (!room) {
            snprintf(reason, sizeof reason,
                     "%s has %zu MB free, the gradient window needs %zu MB plus slack (mount a "
                     "larger one or point OMPI_MCA_osc_sm_backing_directory elsewhere)",
                     dp_shm_backing_dir(), have >> 20, need >> 20);
            why = reason;
        }
    }
    if (!why) {
        *route = DP_SUM_SHM;
        return DP_OK;
    }
    if (want == DP_SUM_SHM)
        return dp_fail(err, DP_ERR_CONFIG,
                       "dist.allreduce = \"shm\" cannot be used: %s; set it to \"auto\" or "
                       "\"mpi\"",
                       why);
    if (d->rank == 0) fprintf(stderr, "dprune: note: gradients summed with MPI: %s\n", why);
    return DP_OK;
}

/* The shm route: the model computes its gradients straight into this rank's window slot,
 * and computes with the one copy of the parameters all ranks share. */
static dp_status borrow_model_buffers(dp_grad_sync *g, dp_dist *d, dp_model *m, dp_error *err) {
    float *slot = NULL, *params = NULL;
    dp_status st = dp_shm_sum_create(&g->shm, d, m->n_param_floats, &slot, err);
    if (st != DP_OK) return st;
    memcpy(slot, m->grad_data, sizeof(float) * m->n_param_floats);
    g->model = m;
    g->own_grad = m->grad_data;
    m->grad_data = g->grad = slot;
    if ((st = dp_shm_sum_share_state(g->shm, m->param_data, &params, err)) != DP_OK) return st;
    g->own_params = m->param_data;
    m->param_data = params;
    return DP_OK;
}

dp_status dp_grad_sync_create(dp_grad_sync **out, dp_dist *d, dp_model *m,
                              const dp_grad_sync_opts *o, dp_error *err) {
    *out = NULL;
    dp_grad_sync *g = calloc(1, sizeof *g);
    if (!g) return dp_fail(err, DP_ERR_NOMEM, "grad sync: out of memory");
    g->buckets = calloc((size_t)m->n_params + 1, sizeof(bucket));
    if (!g->buckets) {
        dp_grad_sync_free(g);
        return dp_fail(err, DP_ERR_NOMEM, "grad sync: out of memory");
    }
    g->dist = d;
    g->grad = m->grad_data;
    g->overlap = o->overlap;
    g->total = m->n_param_floats;
    layout(g, m, o->first_bytes, o->bucket_bytes);
    dp_sum_route route;
    dp_status st = choose_route(d, m->n_param_floats, o->route, &route, err);
    if (st == DP_OK && route == DP_SUM_SHM) st = borrow_model_buffers(g, d, m, err);
    if (st != DP_OK) {
        dp_grad_sync_free(g);
        return st;
    }
    *out = g;
    return DP_OK;
}

void dp_grad_sync_free(dp_grad_sync *g) {
    if (!g) return;
    if (g->shm) {
        memcpy(g->own_grad, g->grad, sizeof(float) * g->total);
        g->model->grad_data = g->own_grad;
        if (g->own_params) {
            memcpy(g->own_params, g->model->param_data, sizeof(float) * g->total);
            g->model->param_data = g->own_params;
        }
        dp_shm_sum_free(g->shm);
    }
    free(g->buckets);
    free(g);
}

const char *dp_grad_sync_route(const dp_grad_sync *g) {
    return g->shm ? "shared memory" : g->overlap ? "MPI buckets" : "MPI, blocking";
}

int dp_grad_sync_buckets(const dp_grad_sync *g) {
    return g->n_buckets;
}

void dp_grad_sync_bucket(const dp_grad_sync *g, int b, size_t *offset, size_t *floats,
                         int *min_node) {
    *offset = g->buckets[b].offset;
    *floats = g->buckets[b].count;
    *min_node = g->buckets[b].min_node;
}

void dp_grad_sync_begin(dp_grad_sync *g) {
    g->next_to_post = 0;
    g->active = g->overlap && !g->shm;
    for (int b = 0; b < g->n_buckets; b++) g->buckets[b].posted = false;
}

static void post(dp_grad_sync *g, bucket *b) {
    MPI_Iallreduce(MPI_IN_PLACE, g->grad + b->offset, (int)b->count, MPI_FLOAT, MPI_SUM,
                   g->dist->comm, &b->req);
    b->posted = true;
}

void dp_grad_sync_node_done(dp_grad_sync *g, int node) {
    if (!g->active) return;
    double t0 = dp_now_seconds();
    while (g->next_to_post < g->n_buckets && g->buckets[g->next_to_post].min_node >= node)
        post(g, &g->buckets[g->next_to_post++]);
    /* drive progress of what is in flight (Open MPI progresses non-blocking collectives only
     * inside MPI calls) */
    for (int b = 0; b < g->next_to_post; b++) {
        if (g->buckets[b].req == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&g->buckets[b].req, &done, MPI_STATUS_IGNORE);
    }
    g->progress_seconds += dp_now_seconds() - t0;
}

dp_status dp_grad_sync_finish(dp_grad_sync *g, dp_error *err) {
    double t0 = dp_now_seconds();
    if (g->shm) {
        dp_status st = dp_shm_sum_run(g->shm, err);
        g->wait_seconds += dp_now_seconds() - t0;
        return st;
    }
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

bool dp_grad_sync_shards_step(const dp_grad_sync *g) {
    return g->shm != NULL;
}

dp_status dp_grad_sync_finish_update(dp_grad_sync *g, dp_range_update_fn update, void *ctx,
                                     float *params, dp_error *err) {
    double t0 = dp_now_seconds();
    dp_status st = dp_shm_sum_update(g->shm, update, ctx, params, err);
    g->wait_seconds += dp_now_seconds() - t0;
    return st;
}

dp_status dp_grad_sync_share_kept(dp_grad_sync *g, dp_activations *a, const dp_model *m,
                                  dp_error *err) {
    size_t floats = dp_activations_kept_floats(a, m), have = 0;
    if (!g->shm || floats == 0) return DP_OK;
    /* without room the kept weights stay per rank (each then transforms all of them) */
    bool room = false;
    dp_status st = room_on_every_rank(g->dist, dp_shm_sum_bytes(floats), &room, &have, err);
    if (st != DP_OK || !room) {
        if (st == DP_OK && g->dist->rank == 0)
            fprintf(stderr,
                    "dprune: note: the transformed weights stay per rank: %s has %zu MB free, "
                    "one copy needs %zu MB\n",
                    dp_shm_backing_dir(), have >> 20, dp_shm_sum_bytes(floats) >> 20);
        return st;
    }
    float *buf = NULL;
    st = dp_shm_sum_add_block(g->shm, floats, "the transformed weights", &buf, err);
    if (st != DP_OK) return st;
    dp_activations_lend_kept(a, m, buf);
    g->kept_shared = true;
    return DP_OK;
}

dp_status dp_grad_sync_prepare_kept(dp_grad_sync *g, const dp_model *m, dp_activations *a,
                                    dp_error *err) {
    if (!g || !g->kept_shared) {
        dp_model_prepare_kept(m, a, 0, 1);
        return DP_OK;
    }
    dp_model_prepare_kept(m, a, g->dist->rank, g->dist->world);
    double t0 = dp_now_seconds();
    dp_status st = dp_shm_sum_barrier(g->shm, err); /* every part written */
    g->wait_seconds += dp_now_seconds() - t0;
    return st;
}

bool dp_grad_sync_shares_params(const dp_grad_sync *g) {
    return g && g->own_params != NULL;
}

dp_status dp_grad_sync_step_shared(dp_grad_sync *g, dp_range_update_fn update, void *ctx,
                                   dp_error *err) {
    double t0 = dp_now_seconds();
    dp_status st = dp_shm_step_shared(g->shm, update, ctx, err);
    g->wait_seconds += dp_now_seconds() - t0;
    return st;
}

dp_status dp_grad_sync_gather(dp_grad_sync *g, float *buf, dp_error *err) {
    return dp_shm_gather(g->shm, buf, err);
}

double dp_grad_sync_wait_seconds(const dp_grad_sync *g) {
    return g->wait_seconds;
}

double dp_grad_sync_progress_seconds(const dp_grad_sync *g) {
    return g->progress_seconds;
}

void dp_grad_sync_reset_timers(dp_grad_sync *g) {
    g->wait_seconds = g->progress_seconds = 0;
}
