/* Allreduce (float sum, in place, as dprune's gradient buckets) latency and bandwidth over
 * message sizes, median of repetitions, for the scaling model in NOTES.md.
 *
 *   launch/mpirun 2 build/bench/bench_allreduce                          # shared memory (vader)
 *   launch/mpirun 2 --mca btl tcp,self build/bench/bench_allreduce       # TCP on loopback
 *
 * Options: --min BYTES (4) --max BYTES (64 MB) --seconds S per size and op (0.3)
 *          --max-reps N (200) --label TEXT (printed on every row, e.g. shm or tcp)
 *          --nap: wait for the MPI_Iallreduce as src/dist/watchdog.c did, MPI_Test in a loop
 *                 that naps 50 us between tests once 100 us have passed (instead of MPI_Wait)
 *
 * Two ops per size: MPI_Iallreduce + MPI_Wait (what dprune posts: every collective of
 * src/dist is non-blocking, so this is the one the model uses) and the blocking
 * MPI_Allreduce (Open MPI picks its algorithms separately: coll/tuned vs coll/libnbc).
 * Every repetition starts after a barrier; its time is the slowest rank's.
 *
 * Output: one row per size, then FIT lines: t(n) = alpha + f * n * beta with the ring factor
 * f = 2(W-1)/W, alpha from the median of the sizes <= 256 B, beta by least squares over the
 * sizes >= 1 MB (bus bandwidth = 1/beta). bench/scaling_model.py reads the rows itself. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_util.h"

static int nap_wait;

static void one(float *buf, int count, int nonblocking) {
    if (nonblocking) {
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        if (!nap_wait) {
            MPI_Wait(&req, MPI_STATUS_IGNORE);
            return;
        }
        double t0 = MPI_Wtime();
        for (;;) {
            int done = 0;
            MPI_Test(&req, &done, MPI_STATUS_IGNORE);
            if (done) return;
            if (MPI_Wtime() - t0 >= 1e-4) {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
    } else {
        MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

/* median over repetitions of the slowest rank's time, in seconds */
static double measure(float *buf, int count, int nonblocking, double seconds, int max_reps,
                      double *times, double *all) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    double t0 = 0, warm = 0;
    for (int i = 0; i < 2; i++) { /* warm-up: connections, registration, page faults */
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        one(buf, count, nonblocking);
        warm = MPI_Wtime() - t0;
    }
    int reps = warm > 0 ? (int)(seconds / warm) : max_reps;
    if (reps < 5) reps = 5;
    if (reps > max_reps) reps = max_reps;
    MPI_Bcast(&reps, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        one(buf, count, nonblocking);
        times[r] = MPI_Wtime() - t0;
    }
    MPI_Allreduce(times, all, reps, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return median(all, reps);
}

static void fit(const char *label, const char *op, int world, int n, const double *bytes,
                const double *t) {
    double f = world > 1 ? 2.0 * (world - 1) / world : 0;
    double small[64];
    int ns = 0;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int nl = 0;
    for (int i = 0; i < n; i++) {
        if (bytes[i] <= 256) small[ns++] = t[i];
        if (bytes[i] >= 1e6) {
            double x = f * bytes[i];
            sx += x, sy += t[i], sxx += x * x, sxy += x * t[i], nl++;
        }
    }
    double alpha = ns ? median(small, ns) : 0;
    double beta = nl >= 2 ? (nl * sxy - sx * sy) / (nl * sxx - sx * sx) : 0;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double m = alpha + f * bytes[i] * beta, e = (m - t[i]) / t[i];
        if (bytes[i] >= 1e5 && (e < 0 ? -e : e) > worst) worst = e < 0 ? -e : e;
    }
    printf("FIT label=%s op=%s ranks=%d alpha_us=%.2f beta_ns_per_byte=%.4f busbw_GBps=%.3f "
           "worst_rel_err_ge_100KB=%.2f\n",
           label, op, world, 1e6 * alpha, 1e9 * beta, beta > 0 ? 1e-9 / beta : 0, worst);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    size_t min_b = 4, max_b = 64u << 20;
    double seconds = 0.3;
    int max_reps = 200;
    const char *label = "-";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--min") && i + 1 < argc)
            min_b = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--max") && i + 1 < argc)
            max_b = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--max-reps") && i + 1 < argc)
            max_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--label") && i + 1 < argc)
            label = argv[++i];
        else if (!strcmp(argv[i], "--nap"))
            nap_wait = 1;
        else {
            if (rank == 0)
                fprintf(stderr, "usage: bench_allreduce [--min B] [--max B] [--seconds S] "
                                "[--max-reps N] [--label TEXT] [--nap]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (min_b < 4) min_b = 4;
    if (max_reps < 5) max_reps = 5;
    float *buf = calloc(max_b / 4, sizeof(float));
    double *times = malloc(sizeof(double) * (size_t)max_reps * 2), *all = times + max_reps;
    if (!buf || !times) {
        fprintf(stderr, "bench_allreduce: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    char *nl = strchr(lib, '\n');
    if (nl) *nl = 0;
    nl = strchr(lib, ',');
    if (nl) *nl = 0;
    if (rank == 0) {
        printf("# bench_allreduce: %d ranks, %s, float sum in place, median of repetitions "
               "(slowest rank), label %s\n",
               world, lib, label);
        printf("%-6s %12s %14s %14s %12s %12s\n", "label", "bytes", "iallreduce_us", "allreduce_us",
               "nb_busbw_GBps", "b_busbw_GBps");
    }
    double bytes[64], tnb[64], tb[64];
    int n = 0;
    double f = world > 1 ? 2.0 * (world - 1) / world : 1;
    for (size_t b = min_b; b <= max_b && n < 64; b *= 2, n++) {
        int count = (int)(b / 4);
        tnb[n] = measure(buf, count, 1, seconds, max_reps, times, all);
        tb[n] = measure(buf, count, 0, seconds, max_reps, times, all);
        bytes[n] = (double)b;
        if (rank == 0) {
            printf("%-6s %12zu %14.2f %14.2f %12.3f %12.3f\n", label, b, 1e6 * tnb[n], 1e6 * tb[n],
                   f * b / tnb[n] / 1e9, f * b / tb[n] / 1e9);
            fflush(stdout);
        }
    }
    if (rank == 0) {
        fit(label, "iallreduce", world, n, bytes, tnb);
        fit(label, "allreduce", world, n, bytes, tb);
    }
    free(buf);
    free(times);
    MPI_Finalize();
    return 0;
}
