/* batchnorm: train-mode backward vs finite differences, statistics and running stats by hand,
 * eval mode, split (sync-BN) API == one-call API, a batch split in two with summed statistics
 * == the whole batch, thread-count independence, accumulation. */
#include "dprune/nn.h"
#include "gradcheck.h"
#include <omp.h>

typedef struct {
    int N, C, HW;
    float *x, *gamma, *beta, *y, *r, *rm, *rv, *mean, *invstd;
} bn_ctx;

static double bn_loss(void *p) {
    bn_ctx *b = p;
    batchnorm_forward_train(b->N, b->C, b->HW, b->x, b->gamma, b->beta, 1e-5f, 0.1f, b->rm, b->rv,
                            b->mean, b->invstd, b->y);
    return gc_dot(b->r, b->y, (size_t)b->N * b->C * b->HW);
}

// x with a different offset and spread per channel, so channels are not interchangeable
static float *bn_input(int N, int C, int HW, unsigned seed) {
    size_t n = (size_t)N * C * HW;
    float *x = gc_alloc_uniform(n, seed, 1.0f);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            for (int j = 0; j < HW; j++) {
                float *v = &x[((size_t)i * C + c) * HW + j];
                *v = *v * (1.0f + c) + 0.5f * c;
            }
    return x;
}

static void check_fd(int N, int C, int HW, unsigned seed) {
    bn_ctx b = {N, C, HW, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t n = (size_t)N * C * HW;
    b.x = bn_input(N, C, HW, seed);
    b.gamma = gc_alloc_uniform(C, seed + 1, 1.0f);
    b.beta = gc_alloc_uniform(C, seed + 2, 1.0f);
    b.r = gc_alloc_uniform(n, seed + 3, 1.0f);
    b.y = dp_alloc_floats(n);
    b.rm = dp_alloc_floats(C), b.rv = dp_alloc_floats(C);
    b.mean = dp_alloc_floats(C), b.invstd = dp_alloc_floats(C);
    float *dx = dp_alloc_floats(n), *dg = dp_alloc_floats(C), *dbt = dp_alloc_floats(C);
    bn_loss(&b);
    batchnorm_backward(N, C, HW, b.x, b.r, b.gamma, b.mean, b.invstd, dx, dg, dbt);
    char name[64];
    snprintf(name, sizeof name, "bn N%d C%d HW%d", N, C, HW);
    // nonlinear in x: small step, tolerance for float forward rounding
    gc_check(name, b.x, dx, n, bn_loss, &b, 2e-3f, 2e-3, 2e-2, 60);
    gc_check(name, b.gamma, dg, C, bn_loss, &b, 1e-2f, 1e-3, 1e-2, 60);
    gc_check(name, b.beta, dbt, C, bn_loss, &b, 1e-2f, 1e-3, 1e-2, 60);
    dp_free(b.x), dp_free(b.gamma), dp_free(b.beta), dp_free(b.r), dp_free(b.y), dp_free(b.rm);
    dp_free(b.rv), dp_free(b.mean), dp_free(b.invstd), dp_free(dx), dp_free(dg), dp_free(dbt);
}

// mean, invstd, running stats and y against a double-precision hand computation
static void check_stats_by_hand(void) {
    const int N = 3, C = 2, HW = 4;
    const float eps = 1e-3f, mom = 0.1f;
    float *x = bn_input(N, C, HW, 7), y[24], mean[2], invstd[2];
    float gamma[2] = {1.5f, -0.5f}, beta[2] = {0.25f, 1.0f};
    float rm[2] = {0.5f, -1.0f}, rv[2] = {2.0f, 0.25f};
    batchnorm_forward_train(N, C, HW, x, gamma, beta, eps, mom, rm, rv, mean, invstd, y);
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < HW; j++) s += x[(n * C + c) * HW + j];
        double m = s / (N * HW);
        for (int n = 0; n < N; n++)
            for (int j = 0; j < HW; j++) {
                double d = x[(n * C + c) * HW + j] - m;
                ss += d * d;
            }
        double var = ss / (N * HW), unbiased = ss / (N * HW - 1);
        double is = 1.0 / sqrt(var + eps);
        double rm0 = c == 0 ? 0.5 : -1.0, rv0 = c == 0 ? 2.0 : 0.25;
        CHECK_CLOSE(mean[c], m, 1e-6, 1e-5);
        CHECK_CLOSE(invstd[c], is, 1e-6, 1e-5);
        CHECK_CLOSE(rm[c], 0.9 * rm0 + 0.1 * m, 1e-6, 1e-5);
        CHECK_CLOSE(rv[c], 0.9 * rv0 + 0.1 * unbiased, 1e-6, 1e-5);
        double maxerr = 0;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < HW; j++) {
                int i = (n * C + c) * HW + j;
                double want = gamma[c] * (x[i] - m) * is + beta[c];
                maxerr = fmax(maxerr, fabs(y[i] - want));
            }
        CHECK_MSG(maxerr < 1e-5, "train y err %g", maxerr);
    }
    // eval: uses the running stats only
    float ye[24];
    batchnorm_forward_eval(N, C, HW, x, gamma, beta, eps, rm, rv, ye);
    double maxerr = 0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int j = 0; j < HW; j++) {
                int i = (n * C + c) * HW + j;
                double want = gamma[c] * (x[i] - rm[c]) / sqrt((double)rv[c] + eps) + beta[c];
                maxerr = fmax(maxerr, fabs(ye[i] - want));
            }
    CHECK_MSG(maxerr < 1e-5, "eval y err %g", maxerr);
    dp_free(x);
}

/* The split API gives bit-identical results to the one-call API; two half batches whose sums
 * are added (what sync-BN's allreduce does) reproduce the whole batch. */
static void check_split_api(int threads) {
    omp_set_num_threads(threads);
    const int N = 6, C = 5, HW = 7, half = N / 2;
    const size_t n = (size_t)N * C * HW, nh = n / 2;
    const double count = (double)N * HW;
    float *x = bn_input(N, C, HW, 21), *dy = gc_alloc_uniform(n, 22, 1.0f);
    float *gamma = gc_alloc_uniform(C, 23, 1.0f), *beta = gc_alloc_uniform(C, 24, 1.0f);
    float y1[210], y2[210], mean1[5], mean2[5], is1[5], is2[5];
    float rm1[5] = {0}, rv1[5] = {1, 1, 1, 1, 1}, rm2[5] = {0}, rv2[5] = {1, 1, 1, 1, 1};
    double sums[10], sa[10], sb[10], ds[10], da[10], db[10], dg[10];

    batchnorm_forward_train(N, C, HW, x, gamma, beta, 1e-5f, 0.1f, rm1, rv1, mean1, is1, y1);
    batchnorm_sums(N, C, HW, x, sums);
    batchnorm_forward_from_sums(N, C, HW, x, sums, count, gamma, beta, 1e-5f, 0.1f, rm2, rv2, mean2,
                                is2, y2);
    CHECK(memcmp(y1, y2, sizeof y1) == 0);
    CHECK(memcmp(mean1, mean2, sizeof mean1) == 0 && memcmp(is1, is2, sizeof is1) == 0);
    CHECK(memcmp(rm1, rm2, sizeof rm1) == 0 && memcmp(rv1, rv2, sizeof rv1) == 0);

    // backward: one call == sums + from_sums, accumulating onto non-zero grads
    float *dx1 = gc_alloc_uniform(n, 25, 1.0f), *dx2 = gc_copy(dx1, n);
    float dg1[5] = {1, 2, 3, 4, 5}, dg2[5] = {1, 2, 3, 4, 5}, dbt1[5] = {0}, dbt2[5] = {0};
    batchnorm_backward(N, C, HW, x, dy, gamma, mean1, is1, dx1, dg1, dbt1);
    batchnorm_backward_sums(N, C, HW, x, dy, mean1, is1, ds);
    batchnorm_backward_from_sums(N, C, HW, x, dy, gamma, mean1, is1, ds, ds, count, dx2, dg2, dbt2);
    CHECK(memcmp(dx1, dx2, n * sizeof(float)) == 0);
    CHECK(memcmp(dg1, dg2, sizeof dg1) == 0 && memcmp(dbt1, dbt2, sizeof dbt1) == 0);

    // two "ranks" with half the batch each; statistics summed as an allreduce would
    float yh[210], mh[5], ih[5], rmh[5] = {0}, rvh[5] = {1, 1, 1, 1, 1};
    batchnorm_sums(half, C, HW, x, sa);
    batchnorm_sums(half, C, HW, x + nh, sb);
    for (int i = 0; i < 2 * C; i++) sums[i] = sa[i] + sb[i];
    batchnorm_forward_from_sums(half, C, HW, x, sums, count, gamma, beta, 1e-5f, 0.1f, rmh, rvh, mh,
                                ih, yh);
    batchnorm_forward_from_sums(half, C, HW, x + nh, sums, count, gamma, beta, 1e-5f, 0.1f, NULL,
                                NULL, mh, ih, yh + nh);
    gc_close("sync-bn y", yh, y2, n, 1e-5);
    gc_close("sync-bn running mean", rmh, rm2, C, 1e-5);
    gc_close("sync-bn running var", rvh, rv2, C, 1e-5);

    float *dxh = dp_alloc_floats(n), *dxf = dp_alloc_floats(n);
    float dgh[5] = {0}, dbh[5] = {0}, dgf[5] = {0}, dbf[5] = {0};
    batchnorm_backward(N, C, HW, x, dy, gamma, mean1, is1, dxf, dgf, dbf);
    batchnorm_backward_sums(half, C, HW, x, dy, mh, ih, da);
    batchnorm_backward_sums(half, C, HW, x + nh, dy + nh, mh, ih, db);
    for (int i = 0; i < 2 * C; i++) dg[i] = da[i] + db[i];
    batchnorm_backward_from_sums(half, C, HW, x, dy, gamma, mh, ih, da, dg, count, dxh, dgh, dbh);
    batchnorm_backward_from_sums(half, C, HW, x + nh, dy + nh, gamma, mh, ih, db, dg, count,
                                 dxh + nh, dgh, dbh);
    gc_close("sync-bn dx", dxh, dxf, n, 1e-5);
    gc_close("sync-bn dgamma", dgh, dgf, C, 1e-5);
    gc_close("sync-bn dbeta", dbh, dbf, C, 1e-5);

    // accumulation: a second backward doubles everything
    float *dx3 = dp_alloc_floats(n), dg3[5] = {0}, db3[5] = {0};
    batchnorm_backward(N, C, HW, x, dy, gamma, mean1, is1, dx3, dg3, db3);
    batchnorm_backward(N, C, HW, x, dy, gamma, mean1, is1, dx3, dg3, db3);
    for (size_t i = 0; i < n; i++) dxf[i] *= 2;
    for (int i = 0; i < C; i++) dgf[i] *= 2, dbf[i] *= 2;
    gc_close("bn accumulate dx", dx3, dxf, n, 1e-6);
    gc_close("bn accumulate dgamma", dg3, dgf, C, 1e-6);
    gc_close("bn accumulate dbeta", db3, dbf, C, 1e-6);

    // dx == NULL still yields the parameter grads
    float dg4[5] = {0}, db4[5] = {0};
    batchnorm_backward(N, C, HW, x, dy, gamma, mean1, is1, NULL, dg4, db4);
    for (int i = 0; i < C; i++) dg4[i] *= 2, db4[i] *= 2;
    CHECK(memcmp(dg4, dg3, sizeof dg4) == 0 && memcmp(db4, db3, sizeof db4) == 0);

    dp_free(x), dp_free(dy), dp_free(gamma), dp_free(beta), dp_free(dx1), dp_free(dx2);
    dp_free(dxh), dp_free(dxf), dp_free(dx3);
}

// per-channel work never depends on the thread count
static void check_threads_identical(void) {
    const int N = 4, C = 9, HW = 6;
    const size_t n = (size_t)N * C * HW;
    float *x = bn_input(N, C, HW, 31), *dy = gc_alloc_uniform(n, 32, 1.0f);
    float *g = gc_alloc_uniform(C, 33, 1.0f), *b = gc_alloc_uniform(C, 34, 1.0f);
    float *out[2], *dxs[2], rm[2][9] = {{0}}, rv[2][9] = {{0}}, m[2][9], is[2][9];
    float dg[2][9] = {{0}}, dbt[2][9] = {{0}};
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        out[t] = dp_alloc_floats(n), dxs[t] = dp_alloc_floats(n);
        batchnorm_forward_train(N, C, HW, x, g, b, 1e-5f, 0.1f, rm[t], rv[t], m[t], is[t], out[t]);
        batchnorm_backward(N, C, HW, x, dy, g, m[t], is[t], dxs[t], dg[t], dbt[t]);
    }
    CHECK(memcmp(out[0], out[1], n * sizeof(float)) == 0);
    CHECK(memcmp(dxs[0], dxs[1], n * sizeof(float)) == 0);
    CHECK(memcmp(dg[0], dg[1], sizeof dg[0]) == 0 && memcmp(rv[0], rv[1], sizeof rv[0]) == 0);
    for (int t = 0; t < 2; t++) dp_free(out[t]), dp_free(dxs[t]);
    dp_free(x), dp_free(dy), dp_free(g), dp_free(b);
}

int main(void) {
    omp_set_num_threads(2);
    check_fd(4, 3, 5, 1);
    check_fd(6, 4, 1, 2); // BatchNorm1d
    check_fd(2, 2, 9, 3);
    check_stats_by_hand();
    check_split_api(1);
    check_split_api(2);
    check_threads_identical();
    return dp_test_finish();
}
