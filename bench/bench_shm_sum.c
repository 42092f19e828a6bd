/* The two gradient routes of src/dist on one node, side by side in one run: the shared-memory
 * sum (dist.allreduce = shm, src/dist/shm_sum.c) against MPI_Iallreduce of the same buffer
 * (what the mpi route posts, with the algorithm dprune asks Open MPI for), float sums in place.
 *
 *   launch/mpirun 2 build/bench/bench_shm_sum [MB (60: vgg16's gradients)] [reps (15)]
 *
 * Every repetition first rewrites the whole buffer, as a backward does (so it starts from
 * memory, not from cache), then a barrier, then the timed sum; the figure is the slowest
 * rank's time, median over repetitions, the two routes alternating. Both results are checked
 * against each other (integer-valued floats, so both sums are exact).
 * Then the optimizer step with it (SGD with momentum and weight decay over parameters and
 * momentum as large as the gradient): the sum followed by a full step on every rank, against
 * the sharded step (dp_shm_sum_update: each rank steps its slice while the sum is in cache,
 * then copies the other slices of parameters), against the same with the parameters shared
 * (dp_shm_sum_share_state: one copy for all ranks, each rank's update writes its slice in
 * place, nothing copied); all must leave the same parameters. */
#include "bench_util.h"
#include "shm_sum.h"
#include <stdio.h>
#include <string.h>

static void backward_like_write(float *g, size_t n, int rank, int rep) {
    for (size_t i = 0; i < n; i++)
        g[i] = (float)((int)((i + (size_t)rank * 7 + (size_t)rep) & 1023));
}

typedef struct {
    float *p, *buf;
} sgd_state;

/* SGD as dp_sgd_step does it (mu 0.9, wd 5e-4, lr 0.05) on floats [lo, hi), gradient g */
static void sgd_range(void *ctx, const float *g, size_t lo, size_t hi) {
    sgd_state *s = ctx;
    for (size_t i = lo; i < hi; i++) {
        float d = g[i - lo] + 5e-4f * s->p[i];
        s->buf[i] = 0.9f * s->buf[i] + d;
        s->p[i] -= 0.05f * s->buf[i];
    }
}

static void sgd_full(sgd_state *s, const float *g, size_t n) {
    enum { CHUNK = 16384 };
#pragma omp parallel for schedule(static)
    for (size_t lo = 0; lo < n; lo += CHUNK)
        sgd_range(s, g + lo, lo, lo + CHUNK < n ? lo + CHUNK : n);
}

static double slowest(dp_dist *d, double t) {
    double all = t;
    MPI_Allreduce(&t, &all, 1, MPI_DOUBLE, MPI_MAX, d->comm);
    return all;
}

int main(int argc, char **argv) {
    dp_dist d;
    dp_error err = {0};
    if (dp_dist_init(&argc, &argv, &d, &err) != DP_OK) return 1;
    d.watchdog_seconds = 60;
    const double mb = argc > 1 ? atof(argv[1]) : 60;
    const int reps = argc > 2 ? atoi(argv[2]) : 15;
    const size_t n = (size_t)(mb * 1e6 / sizeof(float));
    dp_shm_sum *s = NULL;
    float *slot = NULL, *own = dp_alloc_floats(n);
    if (dp_shm_sum_create(&s, &d, n, &slot, &err) != DP_OK || !own) {
        fprintf(stderr, "bench_shm_sum: %s\n", err.msg[0] ? err.msg : "out of memory");
        dp_dist_abort(1);
    }
    double *t_shm = calloc((size_t)reps, sizeof(double)),
           *t_mpi = calloc((size_t)reps, sizeof(double)),
           *t_shared = calloc((size_t)reps, sizeof(double));
    size_t mismatches = 0;
    for (int r = 0; r < reps + 1; r++) { /* repetition 0 warms up (page faults, connections) */
        backward_like_write(own, n, d.rank, r);
        MPI_Barrier(d.comm);
        double t0 = dp_now_seconds();
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, own, (int)n, MPI_FLOAT, MPI_SUM, d.comm, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        double tm = slowest(&d, dp_now_seconds() - t0);

        backward_like_write(slot, n, d.rank, r);
        MPI_Barrier(d.comm);
        t0 = dp_now_seconds();
        dp_shm_sum_run(s, &err);
        double ts = slowest(&d, dp_now_seconds() - t0);
        if (r > 0) t_mpi[r - 1] = tm, t_shm[r - 1] = ts;
        for (size_t i = 0; i < n; i += 4099) mismatches += own[i] != slot[i];
    }
    if (d.rank == 0) {
        double mm = median(t_mpi, reps), ms = median(t_shm, reps);
        printf("RESULT ranks=%d mb=%.1f reps=%d iallreduce_ms=%.2f shm_sum_ms=%.2f ratio=%.2f "
               "mismatches=%zu\n",
               d.world, mb, reps, 1e3 * mm, 1e3 * ms, mm / ms, mismatches);
    }
    /* the step: a = sum then full step, b = sharded, c = sharded on shared parameters; all from
     * the same parameters */
    sgd_state a = {dp_alloc_floats(n), dp_alloc_floats(n)},
              b = {dp_alloc_floats(n), dp_alloc_floats(n)}, c = {NULL, dp_alloc_floats(n)};
    for (size_t i = 0; i < n; i++) a.p[i] = b.p[i] = (float)(i % 101) * 0.01f;
    if (dp_shm_sum_share_state(s, a.p, &c.p, &err) != DP_OK) {
        fprintf(stderr, "bench_shm_sum: %s\n", err.msg);
        dp_dist_abort(1);
    }
    for (int r = 0; r < reps + 1; r++) {
        backward_like_write(slot, n, d.rank, r);
        MPI_Barrier(d.comm);
        double t0 = dp_now_seconds();
        dp_shm_sum_run(s, &err);
        sgd_full(&a, slot, n);
        double tf = slowest(&d, dp_now_seconds() - t0);
        backward_like_write(slot, n, d.rank, r);
        MPI_Barrier(d.comm);
        t0 = dp_now_seconds();
        dp_shm_sum_update(s, sgd_range, &b, b.p, &err);
        double tu = slowest(&d, dp_now_seconds() - t0);
        backward_like_write(slot, n, d.rank, r);
        MPI_Barrier(d.comm);
        t0 = dp_now_seconds();
        dp_shm_sum_update(s, sgd_range, &c, c.p, &err);
        double tc = slowest(&d, dp_now_seconds() - t0);
        if (r > 0) t_mpi[r - 1] = tf, t_shm[r - 1] = tu, t_shared[r - 1] = tc;
    }
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += a.p[i] != b.p[i] || a.p[i] != c.p[i];
    mismatches += differ;
    if (d.rank == 0) {
        double mf = median(t_mpi, reps), mu = median(t_shm, reps), mc = median(t_shared, reps);
        printf("RESULT step: sum_then_full_step_ms=%.2f sharded_step_ms=%.2f "
               "shared_params_step_ms=%.2f full/sharded=%.2f sharded/shared=%.2f "
               "parameters_differing=%zu\n",
               1e3 * mf, 1e3 * mu, 1e3 * mc, mf / mu, mu / mc, differ);
    }
    dp_free(a.p), dp_free(a.buf), dp_free(b.p), dp_free(b.buf), dp_free(c.buf);
    dp_shm_sum_free(s);
    dp_free(own);
    free(t_shm), free(t_mpi), free(t_shared);
    dp_dist_finalize();
    return mismatches ? 1 : 0;
}
