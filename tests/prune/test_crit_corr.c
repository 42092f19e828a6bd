/* CorrTopo: moments and Pearson vs a two-pass reference (shift far from the mean), duplicate
 * and negated-scaled copies are removed first with value 1, removal values never increase
 * (random maps, both redundancy modes), threshold mode leaves no kept pair above tau,
 * topology cosine vs a direct computation, dead channels first with their mean, and the
 * compensation fold reproduces the consumer conv's output; the two pair rules (remove the
 * more redundant member, or the weaker one) on a hand-made case. */
#include "dprune/nn.h"
#include "dprune/prune_criteria.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

// x [N, C, P] -> folded CorrTopo stats (one container, batches of 7), shift from first 4
static double *corr_stats(int N, int C, int P, const float *x, double *k) {
    dp_corr_shift(N < 4 ? N : 4, C, P, x, k);
    dp_calib_partials p;
    dp_error err;
    size_t len = dp_corr_stats_len(C);
    CHECK(dp_calib_partials_init(&p, 0, dp_calib_nblocks(N, DP_CALIB_BLOCK), DP_CALIB_BLOCK, len,
                                 &err) == DP_OK);
    double *ws = dp_alloc(sizeof(double) * C * P);
    for (int s = 0; s < N; s += 7) {
        int n = N - s < 7 ? N - s : 7;
        CHECK(dp_corr_accumulate(&p, s, n, C, P, x + (size_t)s * C * P, k, ws, &err) == DP_OK);
    }
    double *stats = calloc(len, sizeof(double));
    dp_calib_fold(&p, stats);
    dp_calib_partials_free(&p);
    dp_free(ws);
    return stats;
}

static float *gaussian_maps(int N, int C, int P, unsigned seed) {
    float *x = dp_alloc_floats((size_t)N * C * P);
    dp_rng r;
    dp_rng_init(&r, seed, 0, 0, 0);
    for (size_t i = 0; i < (size_t)N * C * P; i++) x[i] = (float)dp_rng_normal(&r);
    return x;
}

static float *X(float *x, int C, int P, int n, int c) {
    return x + ((size_t)n * C + c) * P;
}

static void test_moments(void) {
    int N = 40, C = 5, P = 9;
    float *x = gaussian_maps(N, C, P, 3);
    // large offsets: naive sum-of-squares would lose digits; the shift keeps them
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) X(x, C, P, n, c)[p] += 1000.0f * (c + 1);
    double k[5], mu[5], Sigma[25], rho[25];
    double *stats = corr_stats(N, C, P, x, k);
    dp_error err;
    CHECK(dp_corr_moments(C, stats, k, mu, Sigma, &err) == DP_OK);
    dp_corr_pearson(C, Sigma, rho);
    double ref_mu[5], ref_S[25];
    double M = (double)N * P;
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < P; p++) acc += X(x, C, P, n, c)[p];
        ref_mu[c] = acc / M;
    }
    for (int c = 0; c < C; c++)
        for (int d = 0; d < C; d++) {
            double acc = 0;
            for (int n = 0; n < N; n++)
                for (int p = 0; p < P; p++)
                    acc += (X(x, C, P, n, c)[p] - ref_mu[c]) * (X(x, C, P, n, d)[p] - ref_mu[d]);
            ref_S[c * C + d] = acc / M;
        }
    for (int c = 0; c < C; c++) {
        CHECK_CLOSE(mu[c], ref_mu[c], 1e-9, 1e-12);
        for (int d = 0; d < C; d++) {
            CHECK_CLOSE(Sigma[c * C + d], ref_S[c * C + d], 1e-10, 1e-9);
            double rr = ref_S[c * C + d] / sqrt(ref_S[c * C + c] * ref_S[d * C + d]);
            CHECK_CLOSE(rho[c * C + d], rr, 1e-10, 0);
        }
    }
    double zero[3] = {0, 0, 0};
    CHECK(dp_corr_moments(1, zero, k, mu, Sigma, &err) == DP_ERR_ARG);
    free(stats);
    dp_free(x);
}

static void test_duplicates_and_dead(int topology) {
    int N = 30, C = 7, P = 16;
    float *x = gaussian_maps(N, C, P, 5);
    for (int n = 0; n < N; n++) {
        memcpy(X(x, C, P, n, 4), X(x, C, P, n, 1), sizeof(float) * P); // exact duplicate
        for (int p = 0; p < P; p++)
            X(x, C, P, n, 5)[p] = -2.0f * X(x, C, P, n, 2)[p] + 3.0f; // negated, scaled, shifted
        for (int p = 0; p < P; p++) X(x, C, P, n, 3)[p] = 0.75f;      // dead (constant)
    }
    double k[7];
    double *stats = corr_stats(N, C, P, x, k);
    dp_corr_result res;
    dp_error err;
    CHECK(dp_corr_run(C, stats, k, topology, DP_CORR_REMOVE_REDUNDANCY, &res, &err) == DP_OK);
    CHECK(res.ndead == 1 && res.dead[3]);
    CHECK(res.order[0] == 3 && res.value[0] == DP_CORR_DEAD_VALUE);
    CHECK_CLOSE(res.mu[3], 0.75, 1e-12, 0);
    // the next two removals are one member of each redundant pair, with value 1
    int r1 = res.order[1], r2 = res.order[2];
    int pair14 = (r1 == 1 || r1 == 4) + (r2 == 1 || r2 == 4);
    int pair25 = (r1 == 2 || r1 == 5) + (r2 == 2 || r2 == 5);
    CHECK_MSG(pair14 == 1 && pair25 == 1, "removed %d, %d", r1, r2);
    CHECK_CLOSE(res.value[1], 1.0, 1e-9, 0);
    CHECK_CLOSE(res.value[2], 1.0, 1e-9, 0);
    CHECK_MSG(topology || res.value[3] < 0.9, "value %g", res.value[3]); // rest independent
    if (!topology) CHECK(dp_corr_kept_count(&res, 0.9) == C - 3);
    CHECK(dp_corr_kept_count(&res, 2.5) == C); // above even the dead value
    CHECK(dp_corr_kept_count(&res, -5) == 1);  // everything but the survivor
    uint8_t keep[7];
    dp_corr_keep_mask(&res, C - 3, keep);
    CHECK(!keep[3] && keep[1] + keep[4] == 1 && keep[2] + keep[5] == 1 && keep[0] && keep[6]);
    double sc[7];
    dp_corr_scores(&res, sc);
    CHECK(sc[3] == 1 && sc[res.order[C - 1]] == C);
    // every channel appears once in the order
    int seen[7] = {0};
    for (int t = 0; t < C; t++) seen[res.order[t]]++;
    for (int c = 0; c < C; c++) CHECK(seen[c] == 1);
    dp_corr_result_free(&res);
    free(stats);
    dp_free(x);
}

// random correlated maps: x = L g with a random mixing, so r spans a range
static void test_monotone(int topology, unsigned seed) {
    int N = 20, C = 24, P = 10, Cl = 10;
    float *g = gaussian_maps(N, Cl, P, seed);
    float *x = dp_alloc_floats((size_t)N * C * P);
    float *mix = dp_alloc_floats((size_t)C * Cl);
    dp_fill_uniform(mix, (size_t)C * Cl, seed + 1, 1.0f);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) {
                double acc = 0;
                for (int l = 0; l < Cl; l++) acc += mix[c * Cl + l] * X(g, Cl, P, n, l)[p];
                X(x, C, P, n, c)[p] = acc > 0 ? (float)acc : 0.0f; // post-ReLU
            }
    double k[24];
    double *stats = corr_stats(N, C, P, x, k);
    dp_corr_result res;
    dp_error err;
    CHECK(dp_corr_run(C, stats, k, topology, DP_CORR_REMOVE_REDUNDANCY, &res, &err) == DP_OK);
    int mono = 1;
    for (int t = 1; t < C; t++) mono &= res.value[t] <= res.value[t - 1];
    CHECK_MSG(mono, "topology %d seed %u: removal values increase", topology, seed);
    int prev = 0, monok = 1;
    for (double tau = -0.1; tau <= 1.1; tau += 0.05) {
        int kc = dp_corr_kept_count(&res, tau);
        monok &= kc >= prev;
        prev = kc;
    }
    CHECK(monok);
    // threshold property: no kept pair above tau
    double tau = 0.6, rho[24 * 24], r[24 * 24];
    int nk = dp_corr_kept_count(&res, tau);
    uint8_t keep[24];
    dp_corr_keep_mask(&res, nk, keep);
    dp_corr_pearson(C, res.Sigma, rho);
    CHECK(dp_corr_redundancy(C, rho, res.dead, topology, r, &err) == DP_OK);
    double maxr = 0;
    for (int c = 0; c < C; c++)
        for (int d = c + 1; d < C; d++)
            if (keep[c] && keep[d] && r[c * C + d] > maxr) maxr = r[c * C + d];
    CHECK_MSG(maxr < tau, "max kept r %g (kept %d)", maxr, nk);
    CHECK(nk < C); // the mixing makes some pairs redundant
    dp_corr_result_free(&res);
    free(stats);
    dp_free(g), dp_free(x), dp_free(mix);
}

static void test_topology_values(void) {
    int C = 5;
    double rho[25], r[25];
    dp_rng rg;
    dp_rng_init(&rg, 9, 0, 0, 0);
    for (int c = 0; c < C; c++) {
        rho[c * C + c] = 1;
        for (int d = c + 1; d < C; d++)
            rho[c * C + d] = rho[d * C + c] = 2 * dp_rng_uniform(&rg) - 1;
    }
    uint8_t dead[5] = {0, 0, 0, 0, 0};
    dp_error err;
    CHECK(dp_corr_redundancy(C, rho, dead, 1, r, &err) == DP_OK);
    for (int c = 0; c < C; c++)
        for (int d = 0; d < C; d++) {
            double dot = 0, nc = 0, nd = 0;
            for (int e = 0; e < C; e++) {
                if (e == c || e == d) continue;
                double a = fabs(rho[c * C + e]), b = fabs(rho[d * C + e]);
                dot += a * b, nc += a * a, nd += b * b;
            }
            double want = c == d ? 0 : dot / sqrt(nc * nd);
            CHECK_CLOSE(r[c * C + d], want, 1e-12, 0);
        }
    CHECK(dp_corr_redundancy(C, rho, dead, 0, r, &err) == DP_OK);
    CHECK(r[1] == fabs(rho[1]) && r[0] == 0);
}

// removed channels = B^T x_K + a exactly; fold into a pad-0 conv and compare outputs
static void test_compensation(double ridge, double tol) {
    int N = 6, C = 6, H = 7, W = 7, P = H * W, O = 4, KS = 3;
    float *x = gaussian_maps(N, C, P, 21);
    for (int n = 0; n < N; n++)
        for (int p = 0; p < P; p++) {
            // channel 2 = 0.5 x0 - 1.5 x3 + 0.25; channel 5 = 2 x1 + x4 - 1; channel 4 dead
            X(x, C, P, n, 4)[p] = 0.5f;
            X(x, C, P, n, 2)[p] = 0.5f * X(x, C, P, n, 0)[p] - 1.5f * X(x, C, P, n, 3)[p] + 0.25f;
            X(x, C, P, n, 5)[p] = 2.0f * X(x, C, P, n, 1)[p] - 1.0f;
        }
    double k[6];
    double *stats = corr_stats(N, C, P, x, k);
    dp_corr_result res;
    dp_error err;
    CHECK(dp_corr_run(C, stats, k, 0, DP_CORR_REMOVE_REDUNDANCY, &res, &err) == DP_OK);
    CHECK(res.ndead == 1 && res.order[0] == 4);
    int kept[3] = {0, 1, 3}, removed[3] = {2, 4, 5};
    double B[9], a[3];
    CHECK(dp_corr_compensation(C, res.Sigma, res.mu, 3, kept, 3, removed, ridge, B, a, &err) ==
          DP_OK);
    if (ridge == 0) {
        CHECK_CLOSE(B[0 * 3 + 0], 0.5, 1e-6, 0);
        CHECK_CLOSE(B[2 * 3 + 0], -1.5, 1e-6, 0);
        CHECK_CLOSE(a[0], 0.25, 1e-6, 0);
        CHECK_CLOSE(a[1], 0.5, 1e-9, 0);
        CHECK_CLOSE(B[1 * 3 + 2], 2.0, 1e-6, 0);
        CHECK_CLOSE(a[2], -1.0, 1e-6, 0);
    }
    float *Wt = dp_alloc_floats((size_t)O * C * KS * KS), *bias = dp_alloc_floats(O);
    dp_fill_uniform(Wt, (size_t)O * C * KS * KS, 22, 0.5f);
    dp_fill_uniform(bias, O, 23, 0.5f);
    float *Wout = dp_alloc_floats((size_t)O * 3 * KS * KS), *b2 = dp_alloc_floats(O);
    double delta[4];
    dp_corr_fold_consumer(O, C, KS * KS, Wt, 3, kept, 3, removed, B, a, Wout, delta);
    for (int o = 0; o < O; o++) b2[o] = (float)(bias[o] + delta[o]);
    // small conv: x [N, C, H, W] -> y [N, O, 5, 5]; pruned input x_K [N, 3, H, W]
    conv2d_shape s1, s2;
    conv2d_shape_init(&s1, N, C, H, W, O, KS, KS, 1, 0);
    conv2d_shape_init(&s2, N, 3, H, W, O, KS, KS, 1, 0);
    size_t ny = (size_t)N * O * s1.P * s1.Q;
    float *y1 = dp_alloc_floats(ny), *y2 = dp_alloc_floats(ny);
    float *xk = dp_alloc_floats((size_t)N * 3 * P);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < 3; i++)
            memcpy(xk + ((size_t)n * 3 + i) * P, X(x, C, P, n, kept[i]), sizeof(float) * P);
    conv2d_forward_naive(&s1, x, Wt, bias, y1);
    conv2d_forward_naive(&s2, xk, Wout, b2, y2);
    double diff = dp_max_rel_diff(y2, y1, ny);
    CHECK_MSG(diff < tol, "ridge %g: fold error %g", ridge, diff);
    // without the fold the output is clearly different (the test can fail)
    float *Wplain = dp_alloc_floats((size_t)O * 3 * KS * KS);
    dp_corr_fold_consumer(O, C, KS * KS, Wt, 3, kept, 3, removed, NULL, a, Wplain, delta);
    conv2d_forward_naive(&s2, xk, Wplain, bias, y2);
    CHECK(dp_max_rel_diff(y2, y1, ny) > 1e-2);
    dp_corr_result_free(&res);
    free(stats);
    dp_free(x), dp_free(Wt), dp_free(bias), dp_free(Wout), dp_free(b2), dp_free(y1), dp_free(y2);
    dp_free(xk), dp_free(Wplain);
}

// The top pair is (0, 1); channel 0 is the more redundant with the rest (0.9 + 0.5 against
// 0.9 + 0.1) but the stronger map.
static void test_pair_rule(void) {
    const double r[9] = {0, 0.9, 0.5, 0.9, 0, 0.1, 0.5, 0.1, 0};
    const double var[3] = {4, 1, 2}, same_var[3] = {1, 1, 2};
    int order[3];
    double value[3];
    dp_error err;
    CHECK(dp_corr_eliminate(3, r, NULL, var, DP_CORR_REMOVE_REDUNDANCY, order, value, &err) ==
          DP_OK);
    CHECK(order[0] == 0 && order[1] == 1 && order[2] == 2); // then {1, 2} tie: smaller var
    CHECK(value[0] == 0.9 && value[1] == 0.1 && value[2] == -1);
    CHECK(dp_corr_eliminate(3, r, NULL, var, DP_CORR_REMOVE_WEAKER, order, value, &err) == DP_OK);
    CHECK(order[0] == 1 && order[1] == 2 && order[2] == 0); // the strong map 0 survives
    CHECK(value[0] == 0.9 && value[1] == 0.5 && value[2] == -1);
    // equal variances: the weaker rule falls back to the redundancy rule
    CHECK(dp_corr_eliminate(3, r, NULL, same_var, DP_CORR_REMOVE_WEAKER, order, value, &err) ==
          DP_OK);
    CHECK(order[0] == 0);
}

int main(void) {
    test_pair_rule();
    test_moments();
    test_duplicates_and_dead(0);
    test_duplicates_and_dead(1);
    for (unsigned seed = 1; seed <= 4; seed++) {
        test_monotone(0, seed * 10);
        test_monotone(1, seed * 10);
    }
    test_topology_values();
    test_compensation(0.0, 2e-6);
    test_compensation(DP_CORR_RIDGE_DEFAULT, 2e-3);
    return dp_test_finish();
}
