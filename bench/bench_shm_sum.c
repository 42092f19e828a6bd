/* The two gradient routes of src/dist on one node, side by side in one run: the shared-memory
 * sum (dist.allreduce = shm, src/dist/shm_sum.c) against MPI_Iallreduce of the same buffer
 * (what the mpi route posts, with the algorithm dprune asks Open MPI for), float sums in place.
 *
 *   launch/mpirun 2 build/bench/bench_shm_sum [MB (60: vgg16's gradients)] [reps (15)]
 *
 * Every repetition first rewrites the whole buffer, as a backward does (so it starts from
 * memory, not from cache), then a barrier, then the timed sum; the figure is the slowest
 * rank's time, median over repetitions, the two routes alternating. Both results are checked
 * against each other (integer-valued floats, so both sums are exact). */
#include "bench_util.h"
#include "shm_sum.h"
#include <stdio.h>
#include <string.h>

static void backward_like_write(float *g, size_t n, int rank, int rep) {
    for (size_t i = 0; i < n; i++)
        g[i] = (float)((int)((i + (size_t)rank * 7 + (size_t)rep) & 1023));
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
           *t_mpi = calloc((size_t)reps, sizeof(double));
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
    dp_shm_sum_free(s);
    dp_free(own);
    free(t_shm), free(t_mpi);
    dp_dist_finalize();
    return mismatches ? 1 : 0;
}
