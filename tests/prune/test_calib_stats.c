/* Calibration partials: 1, 2 and 4 simulated ranks (each batching differently) give
 * bitwise-identical folded statistics, by gather and by chain; block ranges cover the set;
 * out-of-order and foreign samples are refused; folded sums equal the plain sums. */
#include "dprune/prune_criteria.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

enum { NS = 203, C = 6, H = 3, W = 4, P = H * W, BS = 8 };

typedef enum { K_RMS, K_CORR, K_CI, K_HRANK } kind;

static size_t len_of(kind k) {
    switch (k) {
    case K_RMS:
        return dp_rms_stats_len(C);
    case K_CORR:
        return dp_corr_stats_len(C);
    case K_CI:
        return dp_ci_stats_len(C);
    default:
        return dp_hrank_stats_len(C);
    }
}

// one rank: its blocks, in batches of `batch` samples
static dp_calib_partials run_rank(kind k, const float *x, const double *shift, int rank, int nranks,
                                  int batch) {
    int64_t fb, nb;
    dp_calib_block_range(NS, BS, rank, nranks, &fb, &nb);
    dp_calib_partials p;
    dp_error err;
    CHECK(dp_calib_partials_init(&p, fb, nb, BS, len_of(k), &err) == DP_OK);
    int64_t lo = fb * BS, hi = (fb + nb) * BS;
    if (hi > NS) hi = NS;
    size_t wl = dp_ci_workspace_doubles(C, P) + dp_hrank_workspace_doubles(H, W) + C * P;
    double *ws = dp_alloc(sizeof(double) * wl);
    for (int64_t s = lo; s < hi; s += batch) {
        int n = (int)(hi - s < batch ? hi - s : batch);
        const float *xb = x + (size_t)s * C * P;
        dp_status st = DP_OK;
        switch (k) {
        case K_RMS:
            st = dp_rms_accumulate(&p, s, n, C, P, xb, &err);
            break;
        case K_CORR:
            st = dp_corr_accumulate(&p, s, n, C, P, xb, shift, ws, &err);
            break;
        case K_CI:
            st = dp_ci_accumulate(&p, s, n, C, P, xb, ws, wl, &err);
            break;
        case K_HRANK:
            st = dp_hrank_accumulate(&p, s, n, C, H, W, xb, ws, wl, &err);
            break;
        }
        CHECK_MSG(st == DP_OK, "%s", err.msg);
    }
    dp_free(ws);
    return p;
}

static void check_kind(kind k, const float *x, const double *shift) {
    size_t len = len_of(k);
    double *ref = calloc(len, sizeof(double)), *got = calloc(len, sizeof(double));
    dp_calib_partials one = run_rank(k, x, shift, 0, 1, 17);
    dp_calib_fold(&one, ref);
    static const int ranks[] = {2, 4, 3};
    static const int batches[] = {5, 32, 1, 64};
    for (int ri = 0; ri < 3; ri++) {
        int R = ranks[ri];
        dp_calib_partials *parts = calloc(R, sizeof *parts);
        for (int r = 0; r < R; r++) parts[r] = run_rank(k, x, shift, r, R, batches[(r + ri) % 4]);
        // gather: rank 0 collects every range into one all-block container
        dp_calib_partials all;
        dp_error err;
        CHECK(dp_calib_partials_init(&all, 0, dp_calib_nblocks(NS, BS), BS, len, &err) == 0);
        for (int r = 0; r < R; r++) CHECK(dp_calib_partials_put(&all, &parts[r], &err) == 0);
        memset(got, 0, sizeof(double) * len);
        dp_calib_fold(&all, got);
        CHECK_MSG(memcmp(got, ref, sizeof(double) * len) == 0, "kind %d, %d ranks, gather", k, R);
        // chain: the running sum passes from rank to rank
        memset(got, 0, sizeof(double) * len);
        for (int r = 0; r < R; r++) dp_calib_fold(&parts[r], got);
        CHECK_MSG(memcmp(got, ref, sizeof(double) * len) == 0, "kind %d, %d ranks, chain", k, R);
        for (int b = 0; b < all.nblocks; b++) CHECK(all.touched[b]);
        dp_calib_partials_free(&all);
        for (int r = 0; r < R; r++) dp_calib_partials_free(&parts[r]);
        free(parts);
    }
    dp_calib_partials_free(&one);
    free(ref), free(got);
}

int main(void) {
    size_t n = (size_t)NS * C * P;
    float *x = dp_alloc_floats(n);
    dp_fill_uniform(x, n, 11, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0; // post-ReLU
    double shift[C];
    dp_corr_shift(BS, C, P, x, shift); // first block

    // block ranges: contiguous, cover everything once, balanced
    for (int R = 1; R <= 5; R++) {
        int64_t next = 0;
        for (int r = 0; r < R; r++) {
            int64_t fb, nb;
            dp_calib_block_range(NS, BS, r, R, &fb, &nb);
            CHECK(fb == next);
            next = fb + nb;
        }
        CHECK(next == dp_calib_nblocks(NS, BS));
    }
    CHECK(dp_calib_nblocks(NS, BS) == 26);

    check_kind(K_RMS, x, shift);
    check_kind(K_CORR, x, shift);
    check_kind(K_CI, x, shift);
    check_kind(K_HRANK, x, shift);

    // folded values equal the plain sums
    {
        dp_calib_partials p = run_rank(K_RMS, x, shift, 0, 1, 7);
        double tot[1 + C] = {0};
        dp_calib_fold(&p, tot);
        CHECK(tot[0] == (double)NS * P);
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int s = 0; s < NS; s++)
                for (int q = 0; q < P; q++) {
                    double v = x[((size_t)s * C + c) * P + q];
                    acc += v * v;
                }
            CHECK_CLOSE(tot[1 + c], acc, 1e-12, 1e-12);
        }
        dp_calib_partials_free(&p);
    }

    // in-order rule and ownership
    {
        dp_calib_partials p;
        dp_error err;
        CHECK(dp_calib_partials_init(&p, 2, 3, BS, dp_rms_stats_len(C), &err) == DP_OK);
        CHECK(dp_calib_partial_for_sample(&p, 2 * BS, &err) != NULL);
        CHECK(dp_calib_partial_for_sample(&p, 2 * BS + 2, &err) == NULL); // gap
        CHECK(strstr(err.msg, "out of order") != NULL);
        CHECK(dp_calib_partial_for_sample(&p, 2 * BS + 1, &err) != NULL);
        CHECK(dp_calib_partial_for_sample(&p, 2 * BS, &err) == NULL);             // repeat
        CHECK(dp_calib_partial_for_sample(&p, 5 * BS, &err) == NULL);             // not held
        CHECK(dp_calib_partial_for_sample(&p, 2 * BS - 1, &err) == NULL);         // not held
        CHECK(dp_calib_partial_for_sample(&p, 4 * BS, &err) != NULL);             // other block ok
        CHECK(dp_rms_accumulate(&p, 3 * BS, 2, C + 1, P, x, &err) == DP_ERR_ARG); // wrong len
        dp_calib_partials other;
        CHECK(dp_calib_partials_init(&other, 0, 3, BS, dp_rms_stats_len(C), &err) == DP_OK);
        CHECK(dp_calib_partials_put(&other, &p, &err) == DP_ERR_ARG); // 2..4 not in 0..2
        dp_calib_partials_free(&other);
        dp_calib_partials_free(&p);
    }
    dp_free(x);
    return dp_test_finish();
}
