/* dist: the only module that calls MPI. This file: init/finalize, rank/size, collective abort. */
#include "dprune/dist.h"
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

dp_status dp_dist_init(int *argc, char ***argv, dp_dist *d, dp_error *err) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return dp_fail(err, DP_ERR_MPI, "MPI_Init_thread failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    return DP_OK;
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

int dp_dist_any(int flag) {
    int out = 0;
    MPI_Allreduce(&flag, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

dp_status dp_dist_bcast_bytes(void *buf, size_t n, int root, dp_error *err) {
    char *p = buf;
    while (n > 0) { /* MPI counts are int: send in chunks */
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        if (MPI_Bcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS)
            return dp_fail(err, DP_ERR_MPI, "MPI_Bcast of %zu bytes failed", n);
        p += chunk;
        n -= (size_t)chunk;
    }
    return DP_OK;
}

dp_status dp_dist_bcast_text(char **text, size_t *len, int root, dp_error *err) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    unsigned long long n = rank == root ? (unsigned long long)*len : 0;
    MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD);
    if (rank != root) {
        *text = malloc(n + 1);
        if (!*text) return dp_fail(err, DP_ERR_NOMEM, "cannot allocate %llu bytes of config", n);
        (*text)[n] = 0;
        *len = n;
    }
    return dp_dist_bcast_bytes(*text, n, root, err);
}

void dp_dist_allreduce_sum_double(double *x, size_t n) {
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void dp_dist_allreduce_sum_i64(int64_t *x, size_t n) {
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
}

void dp_dist_barrier(void) {
    MPI_Barrier(MPI_COMM_WORLD);
}

dp_status dp_dist_check(dp_status st, const dp_error *err) {
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    int mine = st != DP_OK ? rank : world, first = world;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == world) return DP_OK;
    if (rank == first && err) {
        if (world > 1) fprintf(stderr, "dprune: error (rank %d): %s\n", rank, err->msg);
        else fprintf(stderr, "dprune: error: %s\n", err->msg);
        fflush(stderr);
    }
    return st != DP_OK ? st : DP_ERR_MPI; /* ranks that were fine fail too */
}

void dp_dist_allreduce_sum_float(float *x, size_t n) {
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        MPI_Allreduce(MPI_IN_PLACE, x, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        x += chunk;
        n -= (size_t)chunk;
    }
}

const char *dp_dist_library_version(char *buf, size_t n) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    /* first line only: "Open MPI v4.1.4, package: ..." */
    size_t i = 0;
    while (i + 1 < n && v[i] && v[i] != '\n' && v[i] != ',') buf[i] = v[i], i++;
    buf[i] = 0;
    return buf;
}
