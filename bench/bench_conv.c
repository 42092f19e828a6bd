/* One conv layer through each fast path, side by side: im2col + OpenBLAS, Winograd
 * F(2x2,3x3) and one GEMM per tap (conv2d_set_algo), forward and backward (dW and dx, the
 * first backward of a step: set_grads), in interleaved rounds; medians in ms and the GFLOP/s
 * of the direct convolution's multiply-adds (so the paths compare on one scale).
 *
 *   bench_conv N C HW K [rounds (5)] [iters per round (5)]
 *
 * 3x3 kernels, stride 1, pad 1 (VGG's layers): e.g. `bench_conv 32 512 2 512` is vgg16's
 * conv11-13 at batch 32. Threads: OMP_NUM_THREADS. A path a shape does not take falls back
 * to im2col (the output says so under the table). */
#include "bench_util.h"
#include "dprune/nn.h"
#include <omp.h>
#include <stdio.h>
#include <string.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

enum { MAX_ROUNDS = 64, MAX_ITERS = 64 };

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s N C HW K [rounds] [iters]\n", argv[0]);
        return 2;
    }
    const int N = atoi(argv[1]), C = atoi(argv[2]), HW = atoi(argv[3]), K = atoi(argv[4]);
    const int rounds = argc > 5 ? atoi(argv[5]) : 5, iters = argc > 6 ? atoi(argv[6]) : 5;
    if (N < 1 || C < 1 || HW < 1 || K < 1 || rounds < 1 || rounds > MAX_ROUNDS || iters < 1 ||
        iters > MAX_ITERS) {
        fprintf(stderr, "bench_conv: N, C, HW, K >= 1, rounds 1..64, iters 1..64\n");
        return 2;
    }
    conv2d_shape s;
    conv2d_shape_init(&s, N, C, HW, HW, K, 3, 3, 1, 1);
    const size_t nx = (size_t)N * C * HW * HW, nw = (size_t)K * C * 9;
    const size_t ny = (size_t)N * K * s.P * s.Q;
    const int nt = omp_get_max_threads();
    const size_t nws = conv2d_workspace_floats(&s, nt);
    float *ws = dp_alloc_floats(nws), *x = dp_alloc_floats(nx), *w = dp_alloc_floats(nw);
    float *b = dp_alloc_floats((size_t)K), *y = dp_alloc_floats(ny), *dy = dp_alloc_floats(ny);
    float *dx = dp_alloc_floats(nx), *dw = dp_alloc_floats(nw), *db = dp_alloc_floats((size_t)K);
    fill_uniform(x, nx, 1, 1.0f), fill_uniform(w, nw, 2, 0.05f),
        fill_uniform(b, (size_t)K, 3, 0.1f);
    fill_uniform(dy, ny, 4, 1.0f);

    const conv2d_algo algos[] = {CONV2D_ALGO_IM2COL, CONV2D_ALGO_WINOGRAD, CONV2D_ALGO_TAPS};
    const char *names[] = {"im2col", "winograd", "taps"};
    enum { NA = 3 };
    double fwd[NA][MAX_ROUNDS], bwd[NA][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < NA; k++) {
            const int a = (k + r) % NA; // rotate the order per round
            conv2d_set_algo(algos[a]);
            conv2d_kept keep = {.u = NULL};
            size_t nk = conv2d_kept_floats(&s);
            if (nk) keep.u = dp_alloc_floats(nk);
            double f[MAX_ITERS], g[MAX_ITERS];
            for (int i = 0; i < iters; i++) {
                double t0 = now_ms();
                conv2d_forward_keep(&s, x, w, b, y, ws, nws, &keep);
                double t1 = now_ms();
                memset(dx, 0, nx * sizeof(float));
                double t2 = now_ms();
                conv2d_backward_kept(&s, x, w, dy, dx, dw, db, true, ws, nws, &keep);
                f[i] = t1 - t0, g[i] = now_ms() - t2;
            }
            fwd[a][r] = median(f, iters), bwd[a][r] = median(g, iters);
            dp_free(keep.u);
        }
    const double gflop = 2.0 * (double)conv2d_flops(&s) * 1e-9; // per pass
    printf("conv 3x3 N%d C%d %dx%d K%d, %d thread(s), medians of %d rounds x %d\n", N, C, HW, HW, K,
           nt, rounds, iters);
    for (int a = 0; a < NA; a++) {
        double f = median(fwd[a], rounds), g = median(bwd[a], rounds);
        printf("%-9s fwd %8.3f ms (%6.1f GF/s)  bwd %8.3f ms (%6.1f GF/s)\n", names[a], f,
               gflop / f * 1e3, g, 2 * gflop / g * 1e3);
    }
    printf(
        "(GF/s of the direct convolution's FLOPs; a path the shape does not take runs im2col)\n");
    dp_free(ws), dp_free(x), dp_free(w), dp_free(b), dp_free(y), dp_free(dy), dp_free(dx);
    dp_free(dw), dp_free(db);
    return 0;
}
