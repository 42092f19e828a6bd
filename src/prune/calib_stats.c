/* Calibration statistics as per-block partial sums (see prune_criteria.h): a block of
 * consecutive global sample indices is always summed the same way, sample by sample in
 * index order, and blocks are folded in index order, so the totals do not depend on how
 * many ranks shared the calibration set or how it was batched. */
#include "dprune/prune_criteria.h"
#include <string.h>

int64_t dp_calib_nblocks(int64_t nsamples, int block_size) {
    if (nsamples <= 0 || block_size <= 0) return 0;
    return (nsamples + block_size - 1) / block_size;
}

void dp_calib_block_range(int64_t nsamples, int block_size, int rank, int nranks,
                          int64_t *first_block, int64_t *nblocks) {
    int64_t total = dp_calib_nblocks(nsamples, block_size);
    if (nranks <= 0 || rank < 0 || rank >= nranks) {
        *first_block = 0, *nblocks = 0;
        return;
    }
    // balanced contiguous ranges; the first (total % nranks) ranks take one extra block
    int64_t base = total / nranks, extra = total % nranks;
    *nblocks = base + (rank < extra ? 1 : 0);
    *first_block = (int64_t)rank * base + (rank < extra ? rank : extra);
}

dp_status dp_calib_partials_init(dp_calib_partials *p, int64_t first_block, int64_t nblocks,
                                 int block_size, size_t len, dp_error *err) {
    memset(p, 0, sizeof *p);
    if (first_block < 0 || nblocks < 0 || block_size <= 0 || len == 0)
        return dp_fail(err, DP_ERR_ARG,
                       "calibration partials: bad range (first %lld, %lld blocks of %d, len %zu)",
                       (long long)first_block, (long long)nblocks, block_size, len);
    p->first_block = first_block;
    p->nblocks = nblocks;
    p->block_size = block_size;
    p->len = len;
    size_t nb = (size_t)(nblocks > 0 ? nblocks : 1);
    p->part = dp_alloc(sizeof(double) * nb * len);
    p->touched = dp_alloc(nb);
    p->next_index = dp_alloc(sizeof(int64_t) * nb);
    if (!p->part || !p->touched || !p->next_index) {
        dp_calib_partials_free(p);
        return dp_fail(err, DP_ERR_NOMEM, "calibration partials: %lld blocks x %zu doubles",
                       (long long)nblocks, len);
    }
    for (int64_t b = 0; b < nblocks; b++) p->next_index[b] = (first_block + b) * block_size;
    return DP_OK;
}

void dp_calib_partials_free(dp_calib_partials *p) {
    dp_free(p->part);
    dp_free(p->touched);
    dp_free(p->next_index);
    memset(p, 0, sizeof *p);
}

double *dp_calib_partial_for_sample(dp_calib_partials *p, int64_t global_index, dp_error *err) {
    if (global_index < 0) {
        dp_fail(err, DP_ERR_ARG, "calibration: negative sample index %lld",
                (long long)global_index);
        return NULL;
    }
    int64_t b = global_index / p->block_size - p->first_block;
    if (b < 0 || b >= p->nblocks) {
        dp_fail(err, DP_ERR_ARG,
                "calibration: sample %lld is in block %lld, not held here "
                "(blocks %lld..%lld)",
                (long long)global_index, (long long)(global_index / p->block_size),
                (long long)p->first_block, (long long)(p->first_block + p->nblocks - 1));
        return NULL;
    }
    // the in-order rule is what makes a block's partial independent of the batching
    if (global_index != p->next_index[b]) {
        dp_fail(err, DP_ERR_ARG,
                "calibration: sample %lld arrived out of order (block %lld "
                "expects %lld next)",
                (long long)global_index, (long long)(p->first_block + b),
                (long long)p->next_index[b]);
        return NULL;
    }
    p->next_index[b]++;
    p->touched[b] = 1;
    return p->part + (size_t)b * p->len;
}

dp_status dp_calib_partials_put(dp_calib_partials *dst, const dp_calib_partials *src,
                                dp_error *err) {
    if (dst->len != src->len || dst->block_size != src->block_size)
        return dp_fail(err, DP_ERR_ARG, "calibration: partials of different layout");
    if (src->first_block < dst->first_block ||
        src->first_block + src->nblocks > dst->first_block + dst->nblocks)
        return dp_fail(err, DP_ERR_ARG, "calibration: blocks %lld..%lld not covered",
                       (long long)src->first_block,
                       (long long)(src->first_block + src->nblocks - 1));
    int64_t off = src->first_block - dst->first_block;
    if (src->nblocks > 0)
        memcpy(dst->part + (size_t)off * dst->len, src->part,
               sizeof(double) * (size_t)src->nblocks * src->len);
    for (int64_t b = 0; b < src->nblocks; b++) {
        dst->touched[off + b] = src->touched[b];
        dst->next_index[off + b] = src->next_index[b];
    }
    return DP_OK;
}

void dp_calib_fold(const dp_calib_partials *p, double *acc) {
    for (int64_t b = 0; b < p->nblocks; b++) {
        const double *part = p->part + (size_t)b * p->len;
        for (size_t j = 0; j < p->len; j++) acc[j] += part[j];
    }
}

/* ---------------- RMS (CIP / NISP feature term) ---------------- */

size_t dp_rms_stats_len(int C) {
    return 1 + (size_t)C;
}

// x [C, P] -> partial [M, sumsq[C]]
void dp_rms_accumulate_sample(int C, int P, const float *x, double *partial) {
    partial[0] += P;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * P;
        double acc = 0;
        for (int p = 0; p < P; p++) acc += (double)xc[p] * xc[p];
        partial[1 + c] += acc;
    }
}

size_t dp_hrank_stats_len(int C) {
    return 1 + (size_t)C;
}

size_t dp_ci_stats_len(int C) {
    return 1 + (size_t)C;
}

/* ---------------- batch drivers: one sample at a time into its block ---------------- */

static dp_status check_len(const dp_calib_partials *p, size_t want, const char *what,
                           dp_error *err) {
    if (p->len != want)
        return dp_fail(err, DP_ERR_ARG, "%s: partials hold %zu doubles, need %zu", what, p->len,
                       want);
    return DP_OK;
}

dp_status dp_rms_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int P,
                            const float *x, dp_error *err) {
    if (check_len(p, dp_rms_stats_len(C), "rms", err)) return DP_ERR_ARG;
    for (int n = 0; n < N; n++) {
        double *part = dp_calib_partial_for_sample(p, first_index + n, err);
        if (!part) return DP_ERR_ARG;
        dp_rms_accumulate_sample(C, P, x + (size_t)n * C * P, part);
    }
    return DP_OK;
}

dp_status dp_corr_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int P,
                             const float *x, const double *k, double *ws, dp_error *err) {
    if (check_len(p, dp_corr_stats_len(C), "corrtopo", err)) return DP_ERR_ARG;
    for (int n = 0; n < N; n++) {
        double *part = dp_calib_partial_for_sample(p, first_index + n, err);
        if (!part) return DP_ERR_ARG;
        dp_corr_accumulate_sample(C, P, x + (size_t)n * C * P, k, part, ws);
    }
    return DP_OK;
}

dp_status dp_corr_pos_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int P,
                                 const float *x, const double *k, double *ws, dp_error *err) {
    if (check_len(p, dp_corr_pos_stats_len(C, P), "corrtopo", err)) return DP_ERR_ARG;
    for (int n = 0; n < N; n++) {
        double *part = dp_calib_partial_for_sample(p, first_index + n, err);
        if (!part) return DP_ERR_ARG;
        dp_corr_pos_accumulate_sample(C, P, x + (size_t)n * C * P, k, part, ws);
    }
    return DP_OK;
}

dp_status dp_hrank_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int H, int W,
                              const float *x, double *ws, size_t ws_len, dp_error *err) {
    if (check_len(p, dp_hrank_stats_len(C), "hrank", err)) return DP_ERR_ARG;
    size_t P = (size_t)H * W;
    for (int n = 0; n < N; n++) {
        double *part = dp_calib_partial_for_sample(p, first_index + n, err);
        if (!part) return DP_ERR_ARG;
        part[0] += 1;
        dp_status st = dp_hrank_image(C, H, W, x + (size_t)n * C * P, part + 1, ws, ws_len, err);
        if (st) return st;
    }
    return DP_OK;
}

dp_status dp_ci_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int P,
                           const float *x, double *ws, size_t ws_len, dp_error *err) {
    if (check_len(p, dp_ci_stats_len(C), "ci", err)) return DP_ERR_ARG;
    for (int n = 0; n < N; n++) {
        double *part = dp_calib_partial_for_sample(p, first_index + n, err);
        if (!part) return DP_ERR_ARG;
        part[0] += 1;
        dp_status st = dp_ci_image(C, P, x + (size_t)n * C * P, part + 1, ws, ws_len, err);
        if (st) return st;
    }
    return DP_OK;
}
