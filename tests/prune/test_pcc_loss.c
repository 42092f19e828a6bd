/* PCC loss: pcc in [0, 1] (loss term in [-lambda, 0]), ~1 for identical channels, ~0 for
 * channels on disjoint pixels, analytic gradient vs central finite differences in double
 * (inputs and steps exactly representable in float) for both Gram routes (C <= P, P < C),
 * values against the definition, the float gradient of training, sign and scaling of the batch
 * loss (-lambda / (N_global * layers)) and accumulation into dA. */
#include "dprune/prune_criteria.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

// values k / 1024 in [0, 1) with some exact zeros (post-ReLU), exactly representable
static void fill_grid(float *A, size_t n, unsigned seed) {
    dp_rng g;
    dp_rng_init(&g, seed, 0, 0, 0);
    for (size_t i = 0; i < n; i++) {
        int k = (int)dp_rng_below(&g, 1400) - 376;
        A[i] = k > 0 ? (float)k / 1024.0f : 0.0f;
    }
}

static void test_fd(int C, int P, unsigned seed) {
    size_t CP = (size_t)C * P, wl = dp_pcc_workspace_doubles(C, P);
    float *A = dp_alloc_floats(CP);
    double *ws = dp_alloc(sizeof(double) * wl), *g = dp_alloc(sizeof(double) * CP);
    fill_grid(A, CP, seed);
    double v = dp_pcc_sample(C, P, A, g, ws, wl);
    CHECK(v >= 0 && v <= 1);
    const float h = 1.0f / 4096; // a +- h stays exact in float
    double maxerr = 0, maxg = 0, gmean = 0;
    for (size_t i = 0; i < CP; i++) {
        float a0 = A[i];
        A[i] = a0 + h;
        double fp = dp_pcc_sample(C, P, A, NULL, ws, wl);
        A[i] = a0 - h;
        double fm = dp_pcc_sample(C, P, A, NULL, ws, wl);
        A[i] = a0;
        double fd = (fp - fm) / (2.0 * h);
        if (fabs(fd - g[i]) > maxerr) maxerr = fabs(fd - g[i]);
        if (fabs(g[i]) > maxg) maxg = fabs(g[i]);
        gmean += g[i];
    }
    CHECK_MSG(maxerr <= 1e-6 * maxg + 1e-12, "C %d P %d: fd error %.3g (max |g| %.3g)", C, P,
              maxerr, maxg);
    CHECK(maxg > 0);
    CHECK(fabs(gmean) < 1e-12 * maxg * CP); // per-channel zero mean -> total zero mean
    dp_free(A), dp_free(ws), dp_free(g);
}

/* pcc by the definition: z_c in double, then every pair */
static double naive_pcc(int C, int P, const float *A) {
    double *Z = malloc(sizeof(double) * (size_t)C * P), acc = 0;
    for (int c = 0; c < C; c++) {
        double mean = 0, ss = 0;
        for (int p = 0; p < P; p++) mean += A[c * P + p];
        mean /= P;
        for (int p = 0; p < P; p++) ss += (A[c * P + p] - mean) * (A[c * P + p] - mean);
        for (int p = 0; p < P; p++) Z[c * P + p] = (A[c * P + p] - mean) / sqrt(ss + 1e-5 * P);
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            if (i == j) continue;
            double r = 0;
            for (int p = 0; p < P; p++) r += Z[i * P + p] * Z[j * P + p];
            acc += r * r;
        }
    free(Z);
    return acc / ((double)C * (C - 1));
}

static void test_routes_and_float_grad(int C, int P, unsigned seed) {
    size_t CP = (size_t)C * P, wl = dp_pcc_workspace_doubles(C, P);
    float *A = dp_alloc_floats(CP), *gf = dp_alloc_floats(CP);
    double *ws = dp_alloc(sizeof(double) * wl), *g = dp_alloc(sizeof(double) * CP);
    fill_grid(A, CP, seed);
    double v = dp_pcc_sample(C, P, A, g, ws, wl), want = naive_pcc(C, P, A);
    CHECK_MSG(fabs(v - want) <= 1e-12 * (want + 1e-3), "C %d P %d: pcc %.17g vs definition %.17g",
              C, P, v, want);
    double scale = -0.37;
    CHECK(dp_pcc_sample_grad(C, P, A, scale, gf, ws, wl) == v);
    int ok = 1;
    for (size_t i = 0; i < CP; i++) ok &= gf[i] == (float)(scale * g[i]);
    CHECK_MSG(ok, "C %d P %d: float gradient is not scale * the double one", C, P);
    // too small a workspace: zero gradient, zero value (never a write past the end)
    for (size_t i = 0; i < CP; i++) gf[i] = 1;
    CHECK(dp_pcc_sample_grad(C, P, A, scale, gf, ws, wl - 1) == 0);
    ok = 1;
    for (size_t i = 0; i < CP; i++) ok &= gf[i] == 0;
    CHECK(ok);
    dp_free(A), dp_free(gf), dp_free(ws), dp_free(g);
}

static void test_values(void) {
    int C = 4, P = 16;
    size_t wl = dp_pcc_workspace_doubles(C, P);
    double *ws = dp_alloc(sizeof(double) * wl);
    float A[64];
    // identical channels: R_ij = ||x||^2 / (||x||^2 + e) ~ 1
    for (int c = 0; c < C; c++)
        for (int p = 0; p < P; p++) A[c * P + p] = (float)(p % 5);
    double v = dp_pcc_sample(C, P, A, NULL, ws, wl);
    CHECK(v > 0.999 && v <= 1);
    // disjoint supports: centered maps are still (negatively) correlated a little; a
    // checkerboard of +-1 patterns that are orthogonal after centering gives exactly 0
    static const float had[4][16] = {
        {1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0},
        {1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0},
        {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0},
    };
    memcpy(A, had, sizeof had);
    v = dp_pcc_sample(C, P, A, NULL, ws, wl);
    CHECK_CLOSE(v, 0.0, 1e-15, 0);
    // C = 1: no pairs
    CHECK(dp_pcc_sample(1, P, A, NULL, ws, wl) == 0);
    // random maps: strictly inside
    fill_grid(A, 64, 3);
    v = dp_pcc_sample(C, P, A, NULL, ws, wl);
    CHECK(v > 0 && v < 1);
    dp_free(ws);
}

static void test_batch(void) {
    int N = 3, C = 5, P = 12;
    size_t CP = (size_t)C * P, wl = dp_pcc_workspace_doubles(C, P) + CP;
    float *A = dp_alloc_floats(N * CP), *dA = dp_alloc_floats(N * CP);
    double *ws = dp_alloc(sizeof(double) * wl), *g = dp_alloc(sizeof(double) * CP);
    fill_grid(A, N * CP, 8);
    for (size_t i = 0; i < N * CP; i++) dA[i] = 0.5f; // accumulates on top
    double lambda = 0.7;
    int64_t Ng = 8;
    int L = 2;
    double term = dp_pcc_loss(N, C, P, A, lambda, Ng, L, dA, ws, wl);
    double want = 0;
    int ok = 1;
    for (int n = 0; n < N; n++) {
        double v = dp_pcc_sample(C, P, A + n * CP, g, ws, wl);
        want += v;
        for (size_t i = 0; i < CP; i++) {
            double gi = 0.5 - lambda / (Ng * L) * g[i];
            ok &= fabs(dA[n * CP + i] - gi) <= 1e-6 * (fabs(gi) + 1e-3);
        }
    }
    want *= -lambda / (Ng * L);
    CHECK_CLOSE(term, want, 1e-15, 1e-12);
    CHECK(term <= 0 && term >= -lambda * N / (double)(Ng * L));
    CHECK(ok);
    // the gradient points uphill of the loss term: a small step against it lowers the term
    float *A2 = dp_alloc_floats(N * CP);
    for (size_t i = 0; i < N * CP; i++) A2[i] = A[i] - 1e-2f * (dA[i] - 0.5f);
    CHECK(dp_pcc_loss(N, C, P, A2, lambda, Ng, L, NULL, ws, wl) < term);
    // too small a workspace is loud
    CHECK(isnan(dp_pcc_loss(N, C, P, A, lambda, Ng, L, dA, ws, wl - 1)));
    dp_free(A), dp_free(dA), dp_free(ws), dp_free(g), dp_free(A2);
}

int main(void) {
    test_fd(4, 9, 1);
    test_fd(7, 16, 2);
    test_fd(3, 50, 3);
    test_fd(12, 4, 4); // P < C
    test_fd(9, 8, 5);  // P < C by one
    test_routes_and_float_grad(6, 20, 6);
    test_routes_and_float_grad(20, 6, 7);
    test_routes_and_float_grad(16, 16, 8);
    test_routes_and_float_grad(40, 2, 9);
    test_values();
    test_batch();
    return dp_test_finish();
}
