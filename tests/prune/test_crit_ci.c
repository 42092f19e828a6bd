/* CI: the Gram/eigenvalue route equals the direct route (one SVD per channel) within 1e-8
 * of the nuclear norm, for C <= P and P < C, on random post-ReLU maps and on maps with dead
 * and duplicated channels; CI >= 0, exactly 0 for a dead channel, small for a channel in the
 * span of the others, equal to the row norm for a row orthogonal to all others; the
 * cumulative width rule. */
#include "dprune/prune_criteria.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

static double *ws_for(int C, int P, size_t *len) {
    *len = dp_ci_workspace_doubles(C, P);
    return dp_alloc(sizeof(double) * *len);
}

// A [C, P] post-ReLU random; optional dead row, duplicate row
static float *maps(int C, int P, unsigned seed, int dead, int dup_of, int dup) {
    float *A = dp_alloc_floats((size_t)C * P);
    dp_fill_uniform(A, (size_t)C * P, seed, 1.0f);
    for (size_t i = 0; i < (size_t)C * P; i++) A[i] = A[i] > 0 ? A[i] : 0;
    if (dead >= 0) memset(A + (size_t)dead * P, 0, sizeof(float) * P);
    if (dup >= 0) memcpy(A + (size_t)dup * P, A + (size_t)dup_of * P, sizeof(float) * P);
    return A;
}

static void compare_routes(int C, int P, unsigned seed, int dead, int dup_of, int dup) {
    float *A = maps(C, P, seed, dead, dup_of, dup);
    size_t wl;
    double *ws = ws_for(C, P, &wl);
    double *g = calloc(C, sizeof(double)), *d = calloc(C, sizeof(double));
    double *e = calloc(C, sizeof(double));
    dp_error err;
    CHECK(dp_ci_image(C, P, A, g, ws, wl, &err) == DP_OK);
    CHECK(dp_ci_image_eig(C, P, A, e, ws, wl, &err) == DP_OK);
    CHECK(dp_ci_image_direct(C, P, A, d, ws, wl, &err) == DP_OK);
    double nuc = 0;
    CHECK(dp_nuclear_norm(C, P, A, &nuc, &err) == DP_OK);
    CHECK(nuc > 0); // a vacuous comparison would prove nothing
    double maxdiff = 0, maxdiff_e = 0;
    int nonneg = 1;
    for (int c = 0; c < C; c++) {
        double df = fabs(g[c] - d[c]), de = fabs(e[c] - d[c]);
        if (df > maxdiff) maxdiff = df;
        if (de > maxdiff_e) maxdiff_e = de;
        nonneg &= g[c] >= 0 && d[c] >= -1e-12 * nuc;
    }
    CHECK_MSG(maxdiff <= 1e-8 * nuc, "C %d P %d dead %d dup %d: |gram - direct| %.3g (nuclear %g)",
              C, P, dead, dup, maxdiff, nuc);
    CHECK_MSG(maxdiff_e <= 1e-8 * nuc, "C %d P %d: |eig - direct| %.3g", C, P, maxdiff_e);
    CHECK(nonneg);
    if (getenv("CI_VERBOSE"))
        printf("C %3d P %3d dead %2d dup %2d: secular %.2e, eig %.2e (relative to nuclear)\n", C, P,
               dead, dup, maxdiff / nuc, maxdiff_e / nuc);
    if (dead >= 0) {
        CHECK(g[dead] == 0 && e[dead] == 0);
        CHECK(fabs(d[dead]) <= 1e-12 * nuc);
    }
    free(g), free(d), free(e);
    dp_free(ws), dp_free(A);
}

static void test_span_and_orthogonal(void) {
    int C = 5, P = 40;
    float *A = maps(C, P, 7, -1, 0, -1);
    // row 3 = 0.5 row0 + 0.5 row1 (in the span), row 4 orthogonal to all others: support on
    // pixels where every other row is zero
    for (int p = 0; p < P; p++) A[3 * P + p] = 0.5f * A[0 * P + p] + 0.5f * A[1 * P + p];
    for (int c = 0; c < 4; c++)
        for (int p = 30; p < P; p++) A[c * P + p] = 0;
    for (int p = 0; p < P; p++) A[4 * P + p] = p >= 30 ? (float)(p - 29) : 0.0f;
    size_t wl;
    double *ws = ws_for(C, P, &wl), ci[5] = {0}, norm[5];
    dp_error err;
    CHECK(dp_ci_image(C, P, A, ci, ws, wl, &err) == DP_OK);
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int p = 0; p < P; p++) s += (double)A[c * P + p] * A[c * P + p];
        norm[c] = sqrt(s);
    }
    CHECK_CLOSE(ci[4], norm[4], 1e-9, 1e-9); // an orthogonal row contributes its own norm
    double rel_span = ci[3] / norm[3];
    for (int c = 0; c < 3; c++) {
        CHECK_MSG(ci[c] / norm[c] > 1.5 * rel_span, "ch %d: %g vs span %g", c, ci[c] / norm[c],
                  rel_span);
    }
    CHECK(rel_span < 0.35);
    dp_free(ws), dp_free(A);
}

// equal eigenvalues exercise the deflation of the secular route
static void test_degenerate(void) {
    dp_error err;
    // C <= P: rows 2 e_{2c} (orthogonal, equal norms): G = 4 I, CI(c) = 2
    {
        int C = 4, P = 8;
        float A[32] = {0};
        for (int c = 0; c < C; c++) A[c * P + 2 * c] = 2;
        size_t wl;
        double *ws = ws_for(C, P, &wl), ci[4] = {0}, ce[4] = {0};
        CHECK(dp_ci_image(C, P, A, ci, ws, wl, &err) == DP_OK);
        CHECK(dp_ci_image_eig(C, P, A, ce, ws, wl, &err) == DP_OK);
        for (int c = 0; c < C; c++) CHECK_CLOSE(ci[c], 2.0, 1e-13, 0);
        for (int c = 0; c < C; c++) CHECK_CLOSE(ce[c], 2.0, 1e-13, 0);
        dp_free(ws);
    }
    // P < C: A = [I; I] (C = 2P): A^T A = 2 I; zeroing a row leaves {1, 2, ..., 2}
    {
        int P = 5, C = 10;
        float A[50] = {0};
        for (int c = 0; c < C; c++) A[c * P + c % P] = 1;
        size_t wl;
        double *ws = ws_for(C, P, &wl), ci[10] = {0}, cd[10] = {0};
        CHECK(dp_ci_image(C, P, A, ci, ws, wl, &err) == DP_OK);
        CHECK(dp_ci_image_direct(C, P, A, cd, ws, wl, &err) == DP_OK);
        for (int c = 0; c < C; c++) CHECK_CLOSE(ci[c], sqrt(2.0) - 1, 1e-13, 0);
        for (int c = 0; c < C; c++) CHECK_CLOSE(cd[c], sqrt(2.0) - 1, 1e-13, 0);
        dp_free(ws);
    }
}

static void test_keep_count(void) {
    double ci[4] = {5, 1, 3, 1};
    int order[4];
    CHECK(dp_ci_keep_count(4, ci, 0.5, order) == 2); // 5 is not > 5; 8 is
    CHECK(order[0] == 0 && order[1] == 2 && order[2] == 1 && order[3] == 3);
    CHECK(dp_ci_keep_count(4, ci, 0.4, NULL) == 1);
    CHECK(dp_ci_keep_count(4, ci, 0.85, NULL) == 3);
    CHECK(dp_ci_keep_count(4, ci, 1.0, NULL) == 4);
    CHECK(dp_ci_keep_count(4, ci, 0.0, NULL) == 1);
    double z[3] = {0, 0, 0};
    CHECK(dp_ci_keep_count(3, z, 0.5, order) == 3); // nothing exceeds 0: keep all
    CHECK(order[0] == 0 && order[2] == 2);
    // monotone in tau
    double r[30];
    for (int i = 0; i < 30; i++) r[i] = (i * 37 % 11) + 0.5;
    int prev = 0, mono = 1;
    for (double tau = 0; tau <= 1.0001; tau += 0.01) {
        int k = dp_ci_keep_count(30, r, tau, NULL);
        mono &= k >= prev;
        prev = k;
    }
    CHECK(mono && prev == 30);
}

static void test_accumulate_average(void) {
    int N = 3, C = 4, P = 9;
    float *x = dp_alloc_floats((size_t)N * C * P);
    dp_fill_uniform(x, (size_t)N * C * P, 3, 1.0f);
    size_t wl;
    double *ws = ws_for(C, P, &wl);
    dp_calib_partials p;
    dp_error err;
    CHECK(dp_calib_partials_init(&p, 0, 1, DP_CALIB_BLOCK, dp_ci_stats_len(C), &err) == DP_OK);
    CHECK(dp_ci_accumulate(&p, 0, N, C, P, x, ws, wl, &err) == DP_OK);
    double tot[5] = {0}, ref[4] = {0};
    dp_calib_fold(&p, tot);
    for (int n = 0; n < N; n++)
        CHECK(dp_ci_image(C, P, x + (size_t)n * C * P, ref, ws, wl, &err) == DP_OK);
    CHECK(tot[0] == N);
    for (int c = 0; c < C; c++) CHECK(tot[1 + c] == ref[c]);
    CHECK(dp_ci_image(C, P, x, ref, ws, wl - 1, &err) == DP_ERR_ARG);
    dp_calib_partials_free(&p);
    dp_free(ws), dp_free(x);
}

int main(void) {
    // C <= P
    compare_routes(6, 20, 1, -1, 0, -1);
    compare_routes(8, 8, 2, -1, 0, -1);
    compare_routes(16, 64, 3, 5, 0, -1);
    compare_routes(12, 30, 4, 2, 3, 7);
    compare_routes(1, 5, 5, -1, 0, -1);
    // P < C
    compare_routes(20, 6, 6, -1, 0, -1);
    compare_routes(64, 4, 7, 9, 0, -1);
    compare_routes(40, 16, 8, 1, 2, 30);
    compare_routes(5, 1, 12, -1, 0, -1);
    // a dead row in a tiny map
    compare_routes(3, 4, 10, 0, 0, -1);
    test_span_and_orthogonal();
    test_degenerate();
    test_keep_count();
    test_accumulate_average();
    return dp_test_finish();
}
