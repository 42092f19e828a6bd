/* dist: the only module that calls MPI. This file: init/finalize, collectives with the
 * watchdog, collective error checks, the identical-parameters debug check. */
#include "dprune/dist.h"
#include "watchdog.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MPI counts are int: large buffers go in chunks of 2^30 elements. */
#define CHUNK (1 << 30)

dp_status dp_dist_init(int *argc, char ***argv, dp_dist *d, dp_error *err) {
    int provided = 0;
#ifdef OPEN_MPI
    /* Open MPI's non-blocking collectives (coll/libnbc) run every in-place MPI_Iallreduce, and
     * any on fewer than 4 ranks, as a binomial reduce to rank 0 followed by a broadcast:
     * 2 log2(W) times the buffer through one link instead of the 2(W-1)/W of a reduce-scatter
     * + allgather. Every gradient bucket is in place, so ask for Rabenseifner's algorithm
     * (libnbc falls back to a ring when a message has fewer elements than ranks): twice the
     * bandwidth on 2 ranks (NOTES.md, "Distributed performance"), log2(W) times at scale.
     * A setting of the user's (mpirun --mca, OMPI_MCA_* in the environment) wins. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
#endif
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return dp_fail(err, DP_ERR_MPI, "MPI_Init_thread failed");
    d->comm = MPI_COMM_WORLD;
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->world);
    d->seq = 0;
    return DP_OK;
}

void dp_dist_self(dp_dist *d) {
    d->comm = MPI_COMM_SELF;
    d->rank = 0;
    d->world = 1;
    d->seq = 0;
}

void dp_dist_finalize(void) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

void dp_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* not reached */
}

static dp_status allreduce(dp_dist *d, void *x, size_t n, MPI_Datatype type, size_t elem, MPI_Op op,
                           const char *what, dp_error *err) {
    char *p = x;
    while (n > 0) {
        int chunk = n > CHUNK ? CHUNK : (int)n;
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, p, chunk, type, op, d->comm, &req);
        dp_status st = dp_watchdog_wait(d, &req, what, err);
        if (st != DP_OK) return st;
        p += (size_t)chunk * elem;
        n -= (size_t)chunk;
    }
    return DP_OK;
}

dp_status dp_dist_sum_double(dp_dist *d, double *x, size_t n, dp_error *err) {
    return allreduce(d, x, n, MPI_DOUBLE, sizeof(double), MPI_SUM, "sum of doubles", err);
}

dp_status dp_dist_sum_i64(dp_dist *d, int64_t *x, size_t n, dp_error *err) {
    return allreduce(d, x, n, MPI_INT64_T, sizeof(int64_t), MPI_SUM, "sum of counts", err);
}

dp_status dp_dist_sum_float(dp_dist *d, float *x, size_t n, dp_error *err) {
    return allreduce(d, x, n, MPI_FLOAT, sizeof(float), MPI_SUM, "sum of floats", err);
}

dp_status dp_dist_barrier(dp_dist *d, dp_error *err) {
    MPI_Request req;
    MPI_Ibarrier(d->comm, &req);
    return dp_watchdog_wait(d, &req, "barrier", err);
}

dp_status dp_dist_check(dp_dist *d, dp_status st, const dp_error *err) {
    int mine = st != DP_OK ? d->rank : d->world, first = mine;
    allreduce(d, &first, 1, MPI_INT, sizeof(int), MPI_MIN, "error check", NULL);
    if (first == d->world) return DP_OK;
    if (d->rank == first && err) {
        if (d->world > 1)
            fprintf(stderr, "dprune: error (rank %d): %s\n", d->rank, err->msg);
        else
            fprintf(stderr, "dprune: error: %s\n", err->msg);
        fflush(stderr);
    }
    return st != DP_OK ? st : DP_ERR_MPI; /* ranks that were fine fail too */
}

dp_status dp_dist_bcast_bytes(dp_dist *d, void *buf, size_t n, int root, dp_error *err) {
    char *p = buf;
    while (n > 0) {
        int chunk = n > CHUNK ? CHUNK : (int)n;
        MPI_Request req;
        MPI_Ibcast(p, chunk, MPI_BYTE, root, d->comm, &req);
        dp_status st = dp_watchdog_wait(d, &req, "broadcast", err);
        if (st != DP_OK) return st;
        p += chunk;
        n -= (size_t)chunk;
    }
    return DP_OK;
}

dp_status dp_dist_bcast_text(dp_dist *d, char **text, size_t *len, int root, dp_error *err) {
    unsigned long long n = d->rank == root ? (unsigned long long)*len : 0;
    dp_status st = dp_dist_bcast_bytes(d, &n, sizeof n, root, err);
    if (st != DP_OK) return st;
    if (d->rank != root) {
        *text = malloc(n + 1);
        if (!*text) return dp_fail(err, DP_ERR_NOMEM, "cannot allocate %llu bytes of config", n);
        (*text)[n] = 0;
        *len = n;
    }
    return dp_dist_bcast_bytes(d, *text, n, root, err);
}

const char *dp_dist_library_version(char *buf, size_t n) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    /* first part only: "Open MPI v4.1.4" */
    size_t i = 0;
    while (i + 1 < n && v[i] && v[i] != '\n' && v[i] != ',') buf[i] = v[i], i++;
    buf[i] = 0;
    return buf;
}

dp_status dp_dist_check_identical(dp_dist *d, const dp_model *m, dp_error *err) {
    int nt = m->n_params + m->n_buffers;
    uint64_t *lo = malloc(sizeof(uint64_t) * (size_t)nt * 2);
    if (!lo) return dp_fail(err, DP_ERR_NOMEM, "identical-parameter check: out of memory");
    uint64_t *hi = lo + nt;
    for (int t = 0; t < nt; t++) {
        const dp_tensor_view *v = t < m->n_params ? &m->params[t] : &m->buffers[t - m->n_params];
        const float *data = t < m->n_params ? m->param_data : m->buffer_data;
        lo[t] = hi[t] = dp_fnv1a(data + v->offset, v->numel * sizeof(float));
    }
    dp_status st = allreduce(d, lo, (size_t)nt, MPI_UINT64_T, 8, MPI_MIN, "parameter check", err);
    if (st == DP_OK)
        st = allreduce(d, hi, (size_t)nt, MPI_UINT64_T, 8, MPI_MAX, "parameter check", err);
    for (int t = 0; t < nt && st == DP_OK; t++)
        if (lo[t] != hi[t]) {
            const dp_tensor_view *v =
                t < m->n_params ? &m->params[t] : &m->buffers[t - m->n_params];
            st = dp_fail(err, DP_ERR_NUMERIC,
                         "ranks hold different values of '%s' (and maybe more): the replicas "
                         "diverged; this is a bug or a faulty node (dist.check_every)",
                         v->name);
        }
    free(lo);
    return st;
}

void dp_dist_bn_allreduce(void *ctx, double *sums, int n, double *count) {
    dp_dist *d = ctx;
    /* sums and the count travel together: one collective per BN layer (4096 channels fit) */
    double all[2 * 4096 + 1];
    if ((size_t)n + 1 > sizeof all / sizeof all[0]) {
        allreduce(d, sums, (size_t)n, MPI_DOUBLE, sizeof(double), MPI_SUM, "sync-BN", NULL);
        allreduce(d, count, 1, MPI_DOUBLE, sizeof(double), MPI_SUM, "sync-BN", NULL);
        return;
    }
    memcpy(all, sums, sizeof(double) * (size_t)n);
    all[n] = *count;
    allreduce(d, all, (size_t)n + 1, MPI_DOUBLE, sizeof(double), MPI_SUM, "sync-BN", NULL);
    memcpy(sums, all, sizeof(double) * (size_t)n);
    *count = all[n];
}
