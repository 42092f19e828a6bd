/* HRank (METHODS section 1, Lin et al. 2020): the score of a channel is the mean rank of its
 * H x W feature maps over the calibration images. Rank by SVD in double with the float32
 * tolerance of numpy/PyTorch matrix_rank: sigma > sigma_max * max(H, W) * FLT_EPSILON. */
#include "dprune/prune_criteria.h"
#include <float.h>

extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt, double *work,
                    const int *lwork, int *iwork, int *info, size_t jobz_len);

static size_t hrank_lwork(int H, int W) {
    size_t mn = (size_t)(H < W ? H : W), mx = (size_t)(H > W ? H : W);
    return 3 * mn + (mx > 7 * mn ? mx : 7 * mn) + 128 * (mx + mn);
}

size_t dp_hrank_workspace_doubles(int H, int W) {
    size_t mn = (size_t)(H < W ? H : W);
    // map copy, singular values, work, iwork (8 mn ints)
    return (size_t)H * W + mn + hrank_lwork(H, W) + 4 * mn + 8;
}

// map [H, W] -> rank
int dp_hrank_map_rank(int H, int W, const float *map, double *ws, size_t ws_len) {
    if (H <= 0 || W <= 0 || ws_len < dp_hrank_workspace_doubles(H, W)) return -1;
    size_t HW = (size_t)H * W;
    int mn = H < W ? H : W, lwork = (int)hrank_lwork(H, W);
    double *R = ws, *s = R + HW, *work = s + mn;
    int *iwork = (int *)(work + lwork);
    int allzero = 1;
    for (size_t i = 0; i < HW; i++) {
        R[i] = map[i];
        if (map[i] != 0) allzero = 0;
    }
    if (allzero) return 0;
    // row-major [H, W] is column-major W x H: same singular values
    int m = W, n = H, one = 1, info = 0;
    double dummy = 0;
    dgesdd_("N", &m, &n, R, &m, s, &dummy, &one, &dummy, &one, work, &lwork, iwork, &info, 1);
    if (info) return -1;
    double tol = s[0] * (H > W ? H : W) * FLT_EPSILON; // s is in decreasing order
    int rank = 0;
    for (int i = 0; i < mn; i++) rank += s[i] > tol;
    return rank;
}

// x [C, H*W] -> ranks [C] +=
dp_status dp_hrank_image(int C, int H, int W, const float *x, double *ranks, double *ws,
                         size_t ws_len, dp_error *err) {
    if (ws_len < dp_hrank_workspace_doubles(H, W))
        return dp_fail(err, DP_ERR_ARG, "hrank: workspace of %zu doubles, need %zu", ws_len,
                       dp_hrank_workspace_doubles(H, W));
    for (int c = 0; c < C; c++) {
        int r = dp_hrank_map_rank(H, W, x + (size_t)c * H * W, ws, ws_len);
        if (r < 0) return dp_fail(err, DP_ERR_NUMERIC, "hrank: dgesdd failed on channel %d", c);
        ranks[c] += r;
    }
    return DP_OK;
}
