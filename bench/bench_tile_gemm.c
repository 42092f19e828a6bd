/* The register-tile GEMM (src/nn/tile_gemm.c) against OpenBLAS's cblas_sgemm on Winograd's
 * per-xi products, side by side in one run: 16 GEMMs M[xi] [K, T] = U[xi] [K, C] V[xi] [C, T]
 * (the forward; "dx" reads U transposed), one thread, a 64 MB buffer written between reps so
 * U comes from memory as in a training step.
 *
 *   bench_tile_gemm [K=512] [C=512] [T=128] [REPS=9]
 *
 * Prints per pass the median ms and GFLOP/s of both, their ratio, and the largest difference
 * between their results; "RESULT ... blas_ms= tile_ms= ratio=" for each pass. OpenBLAS's
 * kernel depends on OPENBLAS_CORETYPE (printed as core=). */
#include "dprune/core.h"
#include "tile_gemm.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const int K = argc > 1 ? atoi(argv[1]) : 512, C = argc > 2 ? atoi(argv[2]) : 512;
    const int T = argc > 3 ? atoi(argv[3]) : 128, reps = argc > 4 ? atoi(argv[4]) : 9;
    if (K < 1 || C < 1 || T < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: %s [K] [C] [T] [REPS<=100]\n", argv[0]);
        return 2;
    }
    dp_threads_setup(1);
    const size_t ld = tile_cols_round((size_t)T), un = (size_t)16 * K * C;
    float *u = dp_alloc_floats(un), *v = dp_alloc_floats((size_t)16 * C * ld);
    float *m1 = dp_alloc_floats((size_t)16 * K * ld), *m2 = dp_alloc_floats((size_t)16 * K * ld);
    const size_t flush_n = (size_t)16 << 20;
    float *flush = dp_alloc_floats(flush_n);
    for (size_t i = 0; i < un; i++) u[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)16 * C * ld; i++) v[i] = (float)((i * 104729) % 1000) * 1e-3f;
    const double flop = 2.0 * 16 * K * (double)C * T;
    for (int pass = 0; pass < 2; pass++) { // 0: forward (U [K, C]); 1: dx (U stored [C, K])
        double tb[100], tt[100];
        for (int r = 0; r < reps; r++) {
            memset(flush, r, flush_n * sizeof(float));
            double t0 = dp_now_seconds();
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, pass ? CblasTrans : CblasNoTrans, CblasNoTrans, K, T, C,
                            1.0f, u + (size_t)xi * K * C, pass ? K : C, v + xi * C * ld, (int)ld,
                            0.0f, m1 + xi * K * ld, (int)ld);
            tb[r] = dp_now_seconds() - t0;
            memset(flush, r + 1, flush_n * sizeof(float));
            t0 = dp_now_seconds();
            for (int xi = 0; xi < 16; xi++)
                tile_gemm(K, T, C, u + (size_t)xi * K * C, pass ? 1 : (size_t)C,
                          pass ? (size_t)K : 1, v + xi * C * ld, ld, m2 + xi * K * ld, ld, false);
            tt[r] = dp_now_seconds() - t0;
        }
        double diff = 0.0;
        for (int xi = 0; xi < 16; xi++)
            for (size_t i = 0; i < (size_t)K; i++)
                for (size_t j = 0; j < (size_t)T; j++) {
                    size_t at = (size_t)xi * K * ld + i * ld + j;
                    diff = fmax(diff, fabs((double)m1[at] - m2[at]));
                }
        qsort(tb, (size_t)reps, sizeof(double), cmp_double);
        qsort(tt, (size_t)reps, sizeof(double), cmp_double);
        const double b = tb[reps / 2], t = tt[reps / 2];
        printf("RESULT pass=%s K=%d C=%d T=%d blas_ms=%.3f blas_gflops=%.1f tile_ms=%.3f "
               "tile_gflops=%.1f ratio=%.3f maxdiff=%.2g core=%s\n",
               pass ? "dx" : "forward", K, C, T, b * 1e3, flop / b * 1e-9, t * 1e3, flop / t * 1e-9,
               b / t, diff, dp_blas_corename());
    }
    dp_free(u), dp_free(v), dp_free(m1), dp_free(m2), dp_free(flush);
    return 0;
}
