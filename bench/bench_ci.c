/* CI scoring of VGG-16-like layers' feature maps: the Gram/eigenvalue route (dp_ci_image)
 * against the direct route (dp_ci_image_direct: one SVD of the map per channel), side by
 * side on the same images, single-threaded BLAS/LAPACK. Prints time per image for both,
 * the speed ratio (best of 3 passes), and the largest difference relative to the map's
 * nuclear norm.
 *   usage: bench_ci [images (default 4)] */
#include "dprune/prune_criteria.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

// post-ReLU maps with the correlation structure of real features: relu(mix * latent + bias)
static void make_maps(int C, int P, int N, unsigned seed, float *x) {
    int L = C / 4 > 8 ? C / 4 : 8; // latent dimension: channels are redundant
    dp_rng g;
    dp_rng_init(&g, seed, 0, 0, 0);
    double *mix = malloc(sizeof(double) * C * L), *lat = malloc(sizeof(double) * L * P);
    for (int i = 0; i < C * L; i++) mix[i] = dp_rng_normal(&g) / sqrt(L);
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < L * P; i++) lat[i] = dp_rng_normal(&g);
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) {
                double acc = 0.2;
                for (int l = 0; l < L; l++) acc += mix[c * L + l] * lat[l * P + p];
                x[((size_t)n * C + c) * P + p] = acc > 0 ? (float)acc : 0.0f;
            }
    }
    free(mix), free(lat);
}

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 4;
    if (N < 1) N = 1;
    openblas_set_num_threads(1);
    static const int shapes[][2] = {{512, 2}, {512, 4}, {256, 8}, {128, 16}, {64, 32}};
    printf("CI scoring, %d images per layer, single-threaded (%s)\n", N, dp_blas_corename());
    printf("%-14s %12s %12s %8s %12s\n", "layer CxHxW", "gram ms/img", "direct ms/img", "ratio",
           "max|diff|/nuc");
    double tg_all = 0, td_all = 0;
    int failed = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int C = shapes[s][0], H = shapes[s][1], P = H * H;
        size_t CP = (size_t)C * P, wl = dp_ci_workspace_doubles(C, P);
        float *x = dp_alloc_floats(CP * N);
        double *ws = dp_alloc(sizeof(double) * wl);
        double *cg = dp_alloc(sizeof(double) * C), *cd = dp_alloc(sizeof(double) * C);
        make_maps(C, P, N, 7 + (unsigned)s, x);
        dp_error err;
        // best of 3 passes over the images: the machine is shared, the minimum is the signal
        double tg = 1e30, td = 1e30, worst = 0;
        for (int rep = 0; rep < 3; rep++) {
            double sg = 0, sd = 0;
            for (int n = 0; n < N; n++) {
                const float *A = x + n * CP;
                for (int c = 0; c < C; c++) cg[c] = cd[c] = 0;
                double t0 = dp_now_seconds();
                if (dp_ci_image(C, P, A, cg, ws, wl, &err))
                    return fprintf(stderr, "%s\n", err.msg), 1;
                double t1 = dp_now_seconds();
                if (dp_ci_image_direct(C, P, A, cd, ws, wl, &err))
                    return fprintf(stderr, "%s\n", err.msg), 1;
                double t2 = dp_now_seconds();
                sg += t1 - t0, sd += t2 - t1;
                double nuc = 0;
                dp_nuclear_norm(C, P, A, &nuc, &err);
                for (int c = 0; c < C; c++) {
                    double d = fabs(cg[c] - cd[c]) / nuc;
                    if (d > worst) worst = d;
                }
            }
            if (sg < tg) tg = sg;
            if (sd < td) td = sd;
        }
        char name[32];
        snprintf(name, sizeof name, "%dx%dx%d", C, H, H);
        printf("%-14s %12.3f %12.3f %7.1fx %12.2e%s\n", name, 1e3 * tg / N, 1e3 * td / N, td / tg,
               worst, worst <= 1e-8 ? "" : "  > 1e-8!");
        failed |= worst > 1e-8;
        tg_all += tg, td_all += td;
        dp_free(x), dp_free(ws), dp_free(cg), dp_free(cd);
    }
    printf("all layers: gram %.3f s, direct %.3f s, ratio %.1fx\n", tg_all, td_all,
           td_all / tg_all);
    return failed;
}
