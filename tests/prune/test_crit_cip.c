/* CIP: feature term and kernel term on a hand case, seed from the classifier, one
 * propagation step by hand (tanh and phi = 1 = NISP), the residual-block rule for identity,
 * zero-pad and projection shortcuts by hand, normalization sums to 1, and the cubic
 * schedule (0 at t = 0, p_final at t = n, increasing with shrinking steps). */
#include "dprune/prune_criteria.h"
#include "testutil.h"

static double sum(int n, const double *s) {
    double a = 0;
    for (int i = 0; i < n; i++) a += s[i];
    return a;
}

static void test_chain(void) {
    // classifier Wfc [K = 2, C = 2 x HW = 2]: s_c = sum |.| over k and the channel's columns
    float Wfc[8] = {1, -1, 0.5f, 0, 2, 0, 0, -0.5f};
    double s2[2];
    dp_cip_seed_fc(2, 2, 2, Wfc, s2);
    CHECK_CLOSE(s2[0], 4.0 / 5.0, 1e-15, 0); // |1|+|-1|+|2|+|0| = 4 ; 0.5+0+0+0.5 = 1
    CHECK_CLOSE(s2[1], 1.0 / 5.0, 1e-15, 0);

    // kernel term of the conv consuming a 3-channel layer: W [2, 3, 2], BN gamma/var, eps 1
    float W[12] = {1, 0, -2, 0, 0, 0, 0, 0, 0.5f, -0.5f, 3, 0};
    float gamma[2] = {-2, 1}, var[2] = {3, 0};
    double A[6];
    dp_cip_kernel(2, 3, 2, W, gamma, var, 1.0f, A);
    double want_A[6] = {1, 2, 0, 0, 1, 3};
    for (int i = 0; i < 6; i++) CHECK_CLOSE(A[i], want_A[i], 1e-7, 0);
    dp_cip_kernel(2, 3, 2, W, NULL, NULL, 1.0f, A);
    CHECK(A[1] == 2 && A[4] == 1 && A[5] == 3);
    dp_cip_kernel(2, 3, 2, W, gamma, var, 1.0f, A);

    // feature term: M = 4, sumsq = {4, 16, 0} -> a = {1, 2, 0}, mean 1, z = {1, 2, 0}
    double stats[4] = {4, 4, 16, 0}, phi[3], one[3];
    dp_error err;
    CHECK(dp_cip_feature(3, stats, DP_CIP_PHI_TANH, phi, &err) == DP_OK);
    CHECK_CLOSE(phi[0], tanh(1.0), 1e-15, 0);
    CHECK_CLOSE(phi[1], tanh(2.0), 1e-15, 0);
    CHECK(phi[2] == 0); // dead map scores 0
    CHECK(dp_cip_feature(3, stats, DP_CIP_PHI_ONE, one, &err) == DP_OK);
    CHECK(one[0] == 1 && one[1] == 1 && one[2] == 1);
    double nostats[4] = {0, 0, 0, 0};
    CHECK(dp_cip_feature(3, nostats, DP_CIP_PHI_TANH, phi, &err) == DP_ERR_ARG);
    CHECK(dp_cip_feature(3, stats, DP_CIP_PHI_TANH, phi, &err) == DP_OK);

    // t = A^T s2 = {0.8, 1.6 + 0.2, 0.6}
    double s[3], t[3] = {0.8, 1.8, 0.6};
    dp_cip_propagate(2, 3, A, s2, phi, s);
    double z = t[0] * tanh(1.0) + t[1] * tanh(2.0);
    CHECK_CLOSE(s[0], t[0] * tanh(1.0) / z, 1e-14, 0);
    CHECK_CLOSE(s[1], t[1] * tanh(2.0) / z, 1e-14, 0);
    CHECK(s[2] == 0);
    CHECK_CLOSE(sum(3, s), 1.0, 1e-15, 0);
    // phi = 1 is NISP: the normalized A^T s
    dp_cip_propagate(2, 3, A, s2, one, s);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(s[i], t[i] / 3.2, 1e-14, 0);
    double s_null[3];
    dp_cip_propagate(2, 3, A, s2, NULL, s_null);
    for (int i = 0; i < 3; i++) CHECK(s_null[i] == s[i]);
}

static void test_residual(void) {
    // C_in = 2, C_mid = 2, C_out = 2 (identity) or 4 (pad, projection)
    double A1[4] = {1, 0, 1, 2};              // [C_mid, C_in]
    double A2[4] = {2, 0, 0, 1};              // [C_out = 2, C_mid]
    double A2w[8] = {1, 0, 0, 1, 1, 1, 0, 0}; // [C_out = 4, C_mid]
    double phi_mid[2] = {1, 0.5}, phi_in[2] = {1, 1};
    double s_out[2] = {0.25, 0.75}, s_mid[2], s_in[2], ws[2];
    dp_cip_residual_block(2, 2, 2, A1, A2, DP_CIP_SHORT_IDENTITY, NULL, 0, phi_mid, phi_in, s_out,
                          s_mid, s_in, ws);
    // s_mid = norm({1 * 0.5, 0.5 * 0.75}) = {0.5, 0.375}/0.875
    CHECK_CLOSE(s_mid[0], 0.5 / 0.875, 1e-15, 0);
    CHECK_CLOSE(s_mid[1], 0.375 / 0.875, 1e-15, 0);
    // A1^T s_mid = {s_mid0 + s_mid1, 2 s_mid1} -> normalized; shortcut = s_out
    double m0 = s_mid[0] + s_mid[1], m1 = 2 * s_mid[1], mt = m0 + m1;
    double t0 = 0.25 + m0 / mt, t1 = 0.75 + m1 / mt;
    CHECK_CLOSE(s_in[0], t0 / (t0 + t1), 1e-15, 0);
    CHECK_CLOSE(s_in[1], t1 / (t0 + t1), 1e-15, 0);
    CHECK_CLOSE(sum(2, s_in), 1.0, 1e-15, 0);
    // phi_in weighting applies after the two paths are added
    double phi_in2[2] = {0.5, 1};
    dp_cip_residual_block(2, 2, 2, A1, A2, DP_CIP_SHORT_IDENTITY, NULL, 0, phi_mid, phi_in2, s_out,
                          s_mid, s_in, ws);
    CHECK_CLOSE(s_in[0], 0.5 * t0 / (0.5 * t0 + t1), 1e-15, 0);

    // zero-pad shortcut: in channel i feeds out channel 1 + i
    double s_out4[4] = {0.1, 0.2, 0.6, 0.1};
    dp_cip_residual_block(2, 2, 4, A1, A2w, DP_CIP_SHORT_PAD, NULL, 1, phi_mid, phi_in, s_out4,
                          s_mid, s_in, ws);
    // s_mid = norm(phi_mid * A2w^T s_out4) = norm({0.1 + 0.6, 0.5 * (0.2 + 0.6)})
    CHECK_CLOSE(s_mid[0], 0.7 / 1.1, 1e-15, 0);
    m0 = s_mid[0] + s_mid[1], m1 = 2 * s_mid[1], mt = m0 + m1;
    t0 = 0.2 / 0.8 + m0 / mt, t1 = 0.6 / 0.8 + m1 / mt;
    CHECK_CLOSE(s_in[0], t0 / (t0 + t1), 1e-15, 0);
    // projection: A_short [4, 2]
    double As[8] = {1, 0, 0, 1, 2, 0, 0, 0};
    dp_cip_residual_block(2, 2, 4, A1, A2w, DP_CIP_SHORT_PROJ, As, 0, phi_mid, phi_in, s_out4,
                          s_mid, s_in, ws);
    double p0 = 0.1 + 2 * 0.6, p1 = 0.2;
    t0 = p0 / (p0 + p1) + m0 / mt, t1 = p1 / (p0 + p1) + m1 / mt;
    CHECK_CLOSE(s_in[1], t1 / (t0 + t1), 1e-15, 0);
}

static void test_normalize_random(void) {
    int O = 13, I = 9;
    double A[13 * 9], sn[13], phi[9], s[9];
    dp_rng g;
    dp_rng_init(&g, 4, 0, 0, 0);
    for (int i = 0; i < O * I; i++) A[i] = dp_rng_uniform(&g);
    for (int i = 0; i < O; i++) sn[i] = dp_rng_uniform(&g);
    dp_cip_normalize(O, sn);
    CHECK_CLOSE(sum(O, sn), 1.0, 1e-14, 0);
    for (int i = 0; i < I; i++) phi[i] = tanh(2 * dp_rng_uniform(&g));
    dp_cip_propagate(O, I, A, sn, phi, s);
    CHECK_CLOSE(sum(I, s), 1.0, 1e-14, 0);
    double zero[9] = {0};
    dp_cip_propagate(O, I, A, sn, zero, s); // all-dead layer: uniform
    for (int i = 0; i < I; i++) CHECK_CLOSE(s[i], 1.0 / I, 1e-15, 0);
}

static void test_schedule(void) {
    double pf = 0.6;
    int n = 10;
    CHECK(dp_cip_schedule(pf, 0, n) == 0);
    CHECK_CLOSE(dp_cip_schedule(pf, n, n), pf, 1e-15, 0);
    CHECK_CLOSE(dp_cip_schedule(pf, 5, n), pf * (1 - 0.125), 1e-15, 0);
    int mono = 1, concave = 1;
    for (int t = 1; t <= n; t++) {
        double a = dp_cip_schedule(pf, t - 1, n), b = dp_cip_schedule(pf, t, n);
        mono &= b > a;
        if (t >= 2) concave &= b - a <= a - dp_cip_schedule(pf, t - 2, n);
    }
    CHECK(mono && concave);
    CHECK(dp_cip_schedule(pf, 12, n) == dp_cip_schedule(pf, n, n)); // clamped
    CHECK(dp_cip_schedule(pf, 3, 0) == pf);
    CHECK(dp_cip_schedule_count(64, 0.5, n, n) == 32);
    CHECK(dp_cip_schedule_count(64, 0.5, 0, n) == 0);
    CHECK(dp_cip_schedule_count(10, 0.3, n, n) == 3); // 0.3 * 10 rounds to 2.9999...
    int prev = 0, cm = 1;
    for (int t = 0; t <= n; t++) {
        int k = dp_cip_schedule_count(100, 0.9, t, n);
        cm &= k >= prev && k <= 90;
        prev = k;
    }
    CHECK(cm && prev == 90);
}

/* Steps 1..n at the ends of epochs t * E / n; other epochs, and schedules whose length is not
 * a multiple of the steps, do none. */
static void test_step_epochs(void) {
    int want[9] = {-1, -1, 1, -1, 2, -1, 3, -1, 4}; /* E = 8, n = 4: Delta = 2 */
    int same = 1;
    for (int e = 0; e <= 8; e++) same &= dp_cip_step_at_epoch(e, 8, 4) == want[e];
    CHECK(same);
    CHECK(dp_cip_step_at_epoch(9, 8, 4) == -1);
    CHECK(dp_cip_step_at_epoch(3, 3, 3) == 3 && dp_cip_step_at_epoch(1, 3, 3) == 1);
    CHECK(dp_cip_step_at_epoch(5, 10, 3) == -1 && dp_cip_step_at_epoch(2, 0, 4) == -1);
    // the fractions of the e2e schedule (ratio 0.5, n = 3, 16 and 32 channels)
    CHECK(dp_cip_schedule_count(16, 0.5, 1, 3) == 5 && dp_cip_schedule_count(32, 0.5, 1, 3) == 11);
    CHECK(dp_cip_schedule_count(16, 0.5, 2, 3) == 7 && dp_cip_schedule_count(32, 0.5, 2, 3) == 15);
    CHECK(dp_cip_schedule_count(16, 0.5, 3, 3) == 8 && dp_cip_schedule_count(32, 0.5, 3, 3) == 16);
}

int main(void) {
    test_chain();
    test_residual();
    test_normalize_random();
    test_schedule();
    test_step_epochs();
    return dp_test_finish();
}
