/* Large SGEMM throughput of the OpenBLAS in use: the ceiling the conv kernels are measured
 * against (bench/run_train_bench.sh prints vgg16's step GFLOP/s as a fraction of it).
 *
 *   bench_sgemm [N=2048] [THREADS=2] [REPS=5]
 *
 * C [N,N] = A [N,N] * B [N,N], called outside any OpenMP region so OpenBLAS threads it itself.
 * Prints per-rep GFLOP/s and "RESULT impl=sgemm n=.. threads=.. gflops=<median> core=..". */
#include "dprune/core.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2048, threads = argc > 2 ? atoi(argv[2]) : 2;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (n < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: %s [N] [THREADS] [REPS<=100]\n", argv[0]);
        return 2;
    }
    threads = dp_threads_setup(threads);
    size_t nn = (size_t)n * n;
    float *a = dp_alloc_floats(nn), *b = dp_alloc_floats(nn), *c = dp_alloc_floats(nn);
    for (size_t i = 0; i < nn; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double g[100], flop = 2.0 * n * (double)n * n;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = dp_now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        g[r] = flop / (dp_now_seconds() - t0) * 1e-9;
        printf("rep %d: %.1f GFLOP/s\n", r, g[r]);
    }
    qsort(g, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? g[reps / 2] : 0.5 * (g[reps / 2 - 1] + g[reps / 2]);
    printf("RESULT impl=sgemm n=%d threads=%d gflops=%.1f core=%s\n", n, threads, med,
           dp_blas_corename());
    dp_free(a), dp_free(b), dp_free(c);
    return 0;
}
