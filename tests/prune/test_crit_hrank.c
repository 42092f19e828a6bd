/* HRank: rank of constructed rank-r maps (r = 0..min(H, W)), the float32 tolerance (a
 * component far below sigma_max * max(H, W) * FLT_EPSILON is not counted, one above it is),
 * per-channel ranks of an image and their mean through the calibration partials. */
#include "dprune/prune_criteria.h"
#include "testutil.h"
#include <float.h>

// map [H, W] = sum_{i < r} w_i u_i v_i^T (+ scale_extra * u_e v_e^T if scale_extra > 0)
static void low_rank(int H, int W, int r, unsigned seed, double scale_extra, float *map) {
    double acc[12 * 12] = {0};
    dp_rng g;
    dp_rng_init(&g, seed, 0, 0, 0);
    for (int i = 0; i < r + (scale_extra > 0); i++) {
        double u[12], v[12], w = i < r ? 1.0 + i : scale_extra;
        for (int h = 0; h < H; h++) u[h] = dp_rng_normal(&g);
        for (int x = 0; x < W; x++) v[x] = dp_rng_normal(&g);
        for (int h = 0; h < H; h++)
            for (int x = 0; x < W; x++) acc[h * W + x] += w * u[h] * v[x];
    }
    for (int i = 0; i < H * W; i++) map[i] = (float)acc[i];
}

int main(void) {
    int H = 8, W = 6;
    size_t wl = dp_hrank_workspace_doubles(H, W);
    double *ws = dp_alloc(sizeof(double) * wl);
    float map[8 * 6];
    for (int r = 0; r <= 6; r++) {
        low_rank(H, W, r, 10 + r, 0, map);
        CHECK_MSG(dp_hrank_map_rank(H, W, map, ws, wl) == r, "rank %d", r);
        low_rank(W, H, r, 20 + r, 0, map); // transposed shape
        CHECK_MSG(dp_hrank_map_rank(W, H, map, ws, wl) == r, "rank %d (6 x 8)", r);
    }
    // tolerance: sigma_max * 8 * FLT_EPSILON ~ 1e-6 sigma_max
    low_rank(H, W, 2, 5, 1e-9, map);
    CHECK(dp_hrank_map_rank(H, W, map, ws, wl) == 2);
    low_rank(H, W, 2, 5, 1e-3, map);
    CHECK(dp_hrank_map_rank(H, W, map, ws, wl) == 3);
    // a constant map has rank 1, a 1 x 1 map rank 1 (0 if zero)
    for (int i = 0; i < H * W; i++) map[i] = 0.3f;
    CHECK(dp_hrank_map_rank(H, W, map, ws, wl) == 1);
    float one = 2.0f, zero = 0.0f;
    size_t wl1 = dp_hrank_workspace_doubles(1, 1);
    CHECK(dp_hrank_map_rank(1, 1, &one, ws, wl1) == 1);
    CHECK(dp_hrank_map_rank(1, 1, &zero, ws, wl1) == 0);
    CHECK(dp_hrank_map_rank(H, W, map, ws, 3) == -1); // workspace too small

    // image of C = 4 channels with ranks {3, 0, 6, 1}, twice, through the partials
    int C = 4, ranks[4] = {3, 0, 6, 1}, N = 2;
    float x[2 * 4 * 48];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) low_rank(H, W, ranks[c], 100 * n + c, 0, x + (n * C + c) * 48);
    dp_calib_partials p;
    dp_error err;
    CHECK(dp_calib_partials_init(&p, 0, 1, DP_CALIB_BLOCK, dp_hrank_stats_len(C), &err) == DP_OK);
    CHECK(dp_hrank_accumulate(&p, 0, N, C, H, W, x, ws, wl, &err) == DP_OK);
    double tot[5] = {0};
    dp_calib_fold(&p, tot);
    CHECK(tot[0] == 2);
    for (int c = 0; c < C; c++) CHECK(tot[1 + c] / tot[0] == ranks[c]);
    CHECK(dp_hrank_image(C, H, W, x, tot, ws, 5, &err) == DP_ERR_ARG);
    dp_calib_partials_free(&p);
    dp_free(ws);
    return dp_test_finish();
}
