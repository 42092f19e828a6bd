/* conv2d for 3x3 stride-1 kernels by Winograd F(2x2,3x3) (Lavin & Gray 2016), with the
 * multiplications done as 16 batched GEMMs over blocks of tiles, as NNPACK does; the GEMMs are
 * our own register tiles (tile_gemm.c), which read U in place instead of packing it.
 *
 * Why: a 3x3 output-2x2 tile costs 36 multiply-adds per (in, out) channel pair directly but
 * 16 in the Winograd domain (2.25x fewer), and the transformed input is 4x the output instead
 * of im2col's 9x, so less memory traffic too. The transforms are O(C) per tile, the GEMMs
 * O(C K), so the win grows with the channel counts.
 *
 * For one tile d [4,4] of the input plane of channel c and the kernel g [3,3] of (k, c):
 *   V = B^T d B,  U = G g G^T,  M = sum_c U (.) V (elementwise, per xi = 0..15),
 *   y [2,2] = A^T M A.
 * Summing over c for a fixed xi is a GEMM: M[xi] [K, T] = U[xi] [K, C] * V[xi] [C, T] for
 * T tiles. Tiles are numbered across the whole batch (n, ty, tx) and processed in blocks of
 * whole tile rows per thread, so V and M of a block stay in the core's L2 cache.
 *
 * The input gradient of a 3x3 stride-1 conv with padding pad is itself a 3x3 stride-1 conv of
 * dy with the kernels flipped (r, s) -> (2-r, 2-s) and the channel roles swapped, padding
 * 2 - pad; the same code runs it with accumulation into dx, on the forward's U read through
 * an index permutation and transposed (rot_xi), so the weights are transformed the same way
 * for both passes.
 *
 * Each output element is produced by exactly one block, in a fixed order of operations, so
 * the results do not depend on the thread count or scheduling. */
#include "conv2d_internal.h"
#include "tile_gemm.h"
#include <omp.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

enum { TB_TARGET_MAX = 512 }; /* tiles per block, upper bound of the cache-sized target */

bool conv2d_wino_applicable(const conv2d_shape *s) {
    // tile offsets are int: keep every tensor below 2^31 elements
    const double big = 2147483647.0;
    return s->R == 3 && s->S == 3 && s->stride == 1 && s->pad >= 0 && s->pad <= 2 && s->P > 0 &&
           s->Q > 0 && (double)s->N * s->C * s->H * s->W < big &&
           (double)s->N * s->K * s->P * s->Q < big;
}

static size_t round16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

/* Target tiles per block: V [16, Cin, tb] + M [16, Cout, tb] in about 1 MB (half of this
 * machine's 2 MB L2, the other half for the rows of U the GEMMs stream), but at least 64 so the
 * GEMMs stay wide. Blocks hold whole rows of tiles (see wino_conv), so a block may be larger. */
static int tile_target(int C, int K) {
    int tb = (int)((256 * 1024) / (16 * (size_t)(C + K)));
    tb &= ~15;
    if (tb < 64) tb = 64;
    if (tb > TB_TARGET_MAX) tb = TB_TARGET_MAX;
    return tb;
}

/* Tiles per row of the widest image either pass transforms: the forward's output Q or the
 * input gradient's W. */
static int max_tiles_per_row(const conv2d_shape *s) {
    int a = (s->Q + 1) / 2, b = (s->W + 1) / 2;
    return a > b ? a : b;
}

/* per-thread scratch for blocks of tb tiles: V and M, plus the row buffers of the transforms */
static size_t slice_for(const conv2d_shape *s, int tb) {
    int tw = max_tiles_per_row(s);
    if (tb < tw) tb = tw;
    // V, M and the transforms; rows of V and M in whole register tiles (tile_gemm.h); the
    // blocked dW's V^T of one xi
    const size_t ld = tile_cols_round((size_t)tb);
    return round16((size_t)(16 * (s->C + s->K) + 32) * ld + 64) +
           round16(ld * tile_cols_round((size_t)s->C));
}

/* the slice at the cache-sized target (dW's blocks, and the fallback of the others) */
static size_t slice_floats(const conv2d_shape *s) {
    return slice_for(s, tile_target(s->C, s->K));
}

/* Tiles per block for the forward and dx passes. Every block runs 16 GEMMs that read all of
 * U (16 K C floats) again, so where the weights outweigh the batch's tiles, T (C + K) <=
 * 2 K C (VGG's 4x4 maps at batch 32 and 64: 16 MB of U for 128..256 tiles), a thread takes
 * all its tiles in one block (up to TB_TARGET_MAX) and lets V and M spill from L2 instead:
 * vgg16's 512-channel 4x4 layers ran 10% (batch 32) and 18% (batch 64) faster forward, 3-8%
 * backward, resnet50's 7x7 ones 9-18% and 5-10% (NOTES "Session 7", with OpenBLAS's GEMMs,
 * which packed U in every block). Elsewhere the
 * cache-sized target. */
static int block_target(const conv2d_shape *s) {
    const int tb = tile_target(s->C, s->K);
    const long tiles = (long)s->N * ((s->P + 1) / 2) * ((s->Q + 1) / 2);
    if (tiles * (s->C + s->K) > 2L * s->K * s->C) return tb;
    const long all = tiles < TB_TARGET_MAX ? tiles : TB_TARGET_MAX;
    return all > tb ? (int)all : tb;
}

static size_t u_floats(const conv2d_shape *s) {
    return round16((size_t)16 * s->C * s->K);
}

size_t conv2d_wino_u_floats(const conv2d_shape *s) {
    return u_floats(s);
}

size_t conv2d_wino_min_workspace_floats(const conv2d_shape *s) {
    return u_floats(s) + slice_floats(s);
}

/* forward and dx: U + one slice per thread; dW: a private dU and a slice per thread */
size_t conv2d_wino_workspace_floats(const conv2d_shape *s, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    const size_t blocked = (size_t)nthreads * (u_floats(s) + slice_floats(s));
    const size_t whole = u_floats(s) + (size_t)nthreads * slice_for(s, block_target(s));
    return blocked > whole ? blocked : whole;
}

#define WT_LANES 16 // kernels transformed together: one vector lane each

/* g [9][WT_LANES]: WT_LANES kernels, tap-major -> u[xi * stride + l] = (G g_l G^T)[xi],
 * xi = 4 * (row of G g) + column, for the first n lanes. Lane-parallel so that the loops
 * vectorise and each of the 16 output rows gets one contiguous store of n values (one kernel
 * at a time spent ~10% of a batch-32 vgg16 step in scalar code and 16 scattered stores). */
static void transform_kernels(const float g[9][WT_LANES], float *u, size_t stride, int n) {
    float a[4][3][WT_LANES]; // G g: rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2
    for (int j = 0; j < 3; j++)
        for (int l = 0; l < WT_LANES; l++) {
            float g0 = g[j][l], g1 = g[3 + j][l], g2 = g[6 + j][l];
            a[0][j][l] = g0;
            a[1][j][l] = 0.5f * (g0 + g1 + g2);
            a[2][j][l] = 0.5f * (g0 - g1 + g2);
            a[3][j][l] = g2;
        }
    for (int i = 0; i < 4; i++) { // (G g) G^T, the same combination on columns
        float *u0 = u + (size_t)(i * 4 + 0) * stride, *u1 = u + (size_t)(i * 4 + 1) * stride;
        float *u2 = u + (size_t)(i * 4 + 2) * stride, *u3 = u + (size_t)(i * 4 + 3) * stride;
        for (int l = 0; l < n; l++) {
            u0[l] = a[i][0][l];
            u1[l] = 0.5f * (a[i][0][l] + a[i][1][l] + a[i][2][l]);
            u2[l] = 0.5f * (a[i][0][l] - a[i][1][l] + a[i][2][l]);
            u3[l] = a[i][2][l];
        }
    }
}

enum { WT_PANEL = 256 }; // kernels staged per panel: 16 rows of 1 KB, in L1

/* U larger than this (floats; 2 MB, this machine's L2 in total) is written with streaming
 * stores. It cannot stay in cache until the GEMMs read it anyway (16 MB for 512 x 512), and
 * ordinary stores first read every line of it from memory: streaming took the 512 x 512
 * transform from 3.0 to 1.3 ms and the layer's forward from 17.7 to 15.4 ms at batch 32. A
 * smaller U is read back from L2/L3 by the GEMMs, so it is stored normally. */
enum { WT_STREAM_MIN = 512 * 1024 };

/* dst[0, n) = src[0, n), bypassing the caches where the target supports it */
static void copy_out(float *restrict dst, const float *restrict src, int n, bool stream) {
#ifdef __SSE2__
    if (stream && ((uintptr_t)dst & 15) == 0 && n % 4 == 0) {
        for (int q = 0; q < n; q += 4) _mm_stream_ps(dst + q, _mm_loadu_ps(src + q));
        return;
    }
#else
    (void)stream;
#endif
    memcpy(dst, src, sizeof(float) * (size_t)n);
}

/* w [K,C,3,3] -> U [16, K, C], U[xi][k][c] = (G w[k][c] G^T)[xi]. The input gradient reads the
 * same U (see rot_xi), so only this orientation exists.
 * A panel of WT_PANEL kernels is transformed into an L1 stage and then copied out as 16
 * contiguous runs, which can be streamed. */
static void transform_weights_range(const float *w, int K, int C, long lo, long hi, float *U,
                                    int nt) {
    const long pairs = (long)K * C, panels = (hi - lo + WT_PANEL - 1) / WT_PANEL;
    const bool stream = 16 * pairs > WT_STREAM_MIN;
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
        for (long pn = 0; pn < panels; pn++) {
            const long p0 = lo + pn * WT_PANEL;
            const int np = hi - p0 < WT_PANEL ? (int)(hi - p0) : WT_PANEL;
            float stage[16 * WT_PANEL];
            for (int c0 = 0; c0 < np; c0 += WT_LANES) {
                const int n = np - c0 < WT_LANES ? np - c0 : WT_LANES;
                const float *src = w + (size_t)(p0 + c0) * 9;
                float g[9][WT_LANES] = {{0}};
                for (int l = 0; l < n; l++)
                    for (int j = 0; j < 9; j++) g[j][l] = src[l * 9 + j];
                transform_kernels((const float(*)[WT_LANES])g, stage + c0, WT_PANEL, n);
            }
            for (int xi = 0; xi < 16; xi++)
                copy_out(U + (size_t)xi * pairs + p0, stage + xi * WT_PANEL, np, stream);
        }
#ifdef __SSE2__
        _mm_sfence(); // streaming stores are weakly ordered: publish them before the barrier
#endif
    }
}

/* kernels (k, c) = pairs [lo, hi) of the K * C, in that order (pair k * C + c) */
static void transform_weights(const float *w, int K, int C, float *U, int nt) {
    transform_weights_range(w, K, C, 0, (long)K * C, U, nt);
}

void conv2d_wino_transform_part(const conv2d_shape *s, const float *w, float *u, int part,
                                int parts) {
    /* part boundaries on whole cache lines of every U row (pairs is a multiple of 16 for
     * C >= 16, the Winograd layers): parts never share a line, streamed or not */
    const long pairs = (long)s->K * s->C, lines = (pairs + 15) / 16;
    long lo = lines * part / parts * 16, hi = lines * (part + 1) / parts * 16;
    if (hi > pairs) hi = pairs;
    if (lo < hi) transform_weights_range(w, s->K, s->C, lo, hi, u, omp_get_max_threads());
}

/* The transforms work on a whole block at once: nr tile rows (g = r0 .. r0+nr-1 of the batch,
 * g = n * TH + ty) of TW tiles, cnt = nr * TW tiles, tile j = i * TW + tx. Every pass is a
 * loop over all cnt tiles (or all rows of them) with contiguous loads and stores, long
 * enough to vectorise even when a row holds 1..8 tiles (the deep layers). */

/* Input transform of channel c for the block: v[xi * vstride + j] = (B^T d B)[xi], d the 4x4
 * input patch of tile j at rows 2ty-pad.., columns 2tx-pad.. (zero outside the plane).
 * B^T d B is separable: each input row is transformed along its columns (d0-d2, d1+d2,
 * d2-d1, d1-d3 of each tile's 4 columns), then the 4 rows of a tile are combined the same
 * way. Row a of tile row i is copied zero-padded to rows[a][i][0, 2TW) plus its 2 extra
 * columns to ext[a][i]; the column pass runs over all 4 * cnt (row, tile) pairs as one loop
 * reading rows[2u .. 2u+3], which for the last tile of a row spills into the next row, so
 * those tiles are redone from ext afterwards. scratch: 32 * cnt + 8 * nr + 64 floats. */
static void input_block(const float *restrict x, int Cin, int H, int W, int pad, int TH, int TW,
                        long r0, int nr, int c, float *restrict v, size_t vstride,
                        float *restrict scratch) {
    const int RW = 2 * TW, cnt = nr * TW;
    float *restrict rows = scratch;                // [4][nr][RW] + 2 spill
    float *restrict ext = rows + 4 * nr * RW + 16; // [4][nr][2]
    float *restrict hr = ext + 8 * nr + 16;        // [4 column combos][4 rows a][cnt]
    const size_t plane = (size_t)H * W;
    for (int i = 0; i < nr; i++) {
        const long g = r0 + i;
        const int n = (int)(g / TH), ty = (int)(g % TH);
        const float *xc = x + ((size_t)n * Cin + c) * plane;
        for (int a = 0; a < 4; a++) {
            float *row = rows + (size_t)(a * nr + i) * RW, *ex = ext + (a * nr + i) * 2;
            const int h = 2 * ty - pad + a;
            if (h < 0 || h >= H) {
                for (int q = 0; q < RW; q++) row[q] = 0.0f;
                ex[0] = ex[1] = 0.0f;
                continue;
            }
            // padded column q reads input column q - pad, for q in [0, RW + 2)
            const float *xr = xc + (size_t)h * W;
            const int lo = pad, hi = W + pad < RW + 2 ? W + pad : RW + 2; // in-plane q range
            for (int q = 0; q < lo; q++) row[q] = 0.0f;
            const int hi_row = hi < RW ? hi : RW;
            if (hi_row > lo) memcpy(row + lo, xr, sizeof(float) * (size_t)(hi_row - lo));
            for (int q = hi_row > lo ? hi_row : lo; q < RW; q++) row[q] = 0.0f;
            ex[0] = RW >= lo && RW < hi ? xr[RW - pad] : 0.0f;
            ex[1] = RW + 1 >= lo && RW + 1 < hi ? xr[RW + 1 - pad] : 0.0f;
        }
    }
    rows[4 * nr * RW] = rows[4 * nr * RW + 1] = 0.0f;
    const int U = 4 * cnt; // u = a * cnt + j, since (a * nr + i) * TW + tx = a * cnt + j
    float *restrict h0 = hr, *restrict h1 = hr + U, *restrict h2 = hr + 2 * U,
                    *restrict h3 = hr + 3 * U;
    for (int u = 0; u < U; u++) {
        float d0 = rows[2 * u], d1 = rows[2 * u + 1], d2 = rows[2 * u + 2], d3 = rows[2 * u + 3];
        h0[u] = d0 - d2;
        h1[u] = d1 + d2;
        h2[u] = d2 - d1;
        h3[u] = d1 - d3;
    }
    for (int a = 0; a < 4; a++) // the last tile of each row, from the true columns
        for (int i = 0; i < nr; i++) {
            const int u = a * cnt + i * TW + TW - 1;
            const float *row = rows + (size_t)(a * nr + i) * RW, *ex = ext + (a * nr + i) * 2;
            float d0 = row[RW - 2], d1 = row[RW - 1], d2 = ex[0], d3 = ex[1];
            h0[u] = d0 - d2;
            h1[u] = d1 + d2;
            h2[u] = d2 - d1;
            h3[u] = d1 - d3;
        }
    // B^T (.) down the rows: combos 0-2, 1+2, 2-1, 1-3 of rows a, for each column combo b
    for (int b = 0; b < 4; b++) {
        const float *restrict a0 = hr + (size_t)b * U, *restrict a1 = a0 + cnt,
                              *restrict a2 = a1 + cnt, *restrict a3 = a2 + cnt;
        float *restrict v0 = v + (0 * 4 + b) * vstride, *restrict v1 = v + (1 * 4 + b) * vstride,
                        *restrict v2 = v + (2 * 4 + b) * vstride,
                        *restrict v3 = v + (3 * 4 + b) * vstride;
        for (int j = 0; j < cnt; j++) {
            v0[j] = a0[j] - a2[j];
            v1[j] = a1[j] + a2[j];
            v2[j] = a2[j] - a1[j];
            v3[j] = a1[j] - a3[j];
        }
    }
}

/* Output transform of output channel k for the block: m[xi * mstride + j] -> y[n][k] rows
 * 2ty, 2ty+1 (those < P), columns < Q; y = out + bias, or y += out. A^T m A is separable:
 * rows first (m0+m1+m2, m1-m2-m3), then columns into interleaved output rows
 * out[a][j * 2 + 0/1], i.e. [a][i][2 TW]. scratch: 12 * cnt floats. */
static void output_block(const float *restrict m, size_t mstride, int Cout, int k, int TH, int TW,
                         int P, int Q, long r0, int nr, float bias, bool accumulate,
                         float *restrict y, float *restrict scratch) {
    const int cnt = nr * TW;
    float *restrict sr = scratch;            // [2 rows][4 column combos][cnt]
    float *restrict out = scratch + 8 * cnt; // [2 rows][cnt * 2]
    for (int jj = 0; jj < 4; jj++) {
        const float *restrict m0 = m + (0 * 4 + jj) * mstride,
                              *restrict m1 = m + (4 + jj) * mstride,
                              *restrict m2 = m + (8 + jj) * mstride,
                              *restrict m3 = m + (12 + jj) * mstride;
        float *restrict s0 = sr + jj * cnt, *restrict s1 = sr + (4 + jj) * cnt;
        for (int j = 0; j < cnt; j++) {
            s0[j] = m0[j] + m1[j] + m2[j];
            s1[j] = m1[j] - m2[j] - m3[j];
        }
    }
    for (int a = 0; a < 2; a++) {
        const float *s0 = sr + (a * 4 + 0) * cnt, *s1 = s0 + cnt, *s2 = s1 + cnt, *s3 = s2 + cnt;
        float *o = out + (size_t)a * 2 * cnt;
        for (int j = 0; j < cnt; j++) {
            o[2 * j] = s0[j] + s1[j] + s2[j];
            o[2 * j + 1] = s1[j] - s2[j] - s3[j];
        }
    }
    const size_t plane = (size_t)P * Q;
    for (int i = 0; i < nr; i++) {
        const long g = r0 + i;
        const int n = (int)(g / TH), ty = (int)(g % TH);
        float *yk = y + ((size_t)n * Cout + k) * plane;
        for (int a = 0; a < 2 && 2 * ty + a < P; a++) {
            const float *src = out + (size_t)a * 2 * cnt + (size_t)i * 2 * TW;
            float *yr = yk + (size_t)(2 * ty + a) * Q;
            if (accumulate)
                for (int q = 0; q < Q; q++) yr[q] += src[q];
            else
                for (int q = 0; q < Q; q++) yr[q] = src[q] + bias;
        }
    }
}

/* The 180-degree rotation g'[r][s] = g[2-r][2-s] is g' = J g J with J the 3x3 reversal, and
 * G J = Pi G for this G (its rows 0 and 3 swap, rows 1 and 2 are symmetric), so
 * G g' G^T = Pi (G g G^T) Pi^T: element (i, j) of the rotated kernel's transform is element
 * (pi(i), pi(j)) of the original's, pi = (3 1 2 0). rot_xi[4i + j] = 4 pi(i) + pi(j). The input
 * gradient therefore reads the forward's U [16, K, C] transposed at rot_xi[xi] instead of
 * transforming gathered, flipped kernels into a second layout (the same values up to the
 * rounding of 0.5 (g0 + g1 + g2) against 0.5 (g2 + g1 + g0)). */
static const unsigned char rot_xi[16] = {15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0};

/* One 3x3 stride-1 conv by Winograd: x [N,Cin,H,W] (padding pad) -> y [N,Cout,P,Q], P = H +
 * 2 pad - 2. U [16,Cout,Cin] pre-transformed, or with rotated, the transform of the kernels
 * before their 180-degree rotation and channel swap, U [16,Cin,Cout] (see rot_xi).
 * y = result + bias, or y += result (accumulate).
 * A block is a run of whole tile rows (n, ty) across the batch, so the transforms work on
 * contiguous rows. slices: nt per-thread scratch areas of `slice` floats. */
static void wino_conv(int N, int Cin, int H, int W, int Cout, int pad, const float *x,
                      const float *U, bool rotated, const float *bias, float *y, bool accumulate,
                      float *slices, size_t slice, int tb_target, int nt) {
    const int P = H + 2 * pad - 2, Q = W + 2 * pad - 2;
    const int TH = (P + 1) / 2, TW = (Q + 1) / 2;
    const long rows = (long)N * TH; // tile rows in the batch
    // rows per block: the cache-sized target, but enough blocks to keep every thread busy
    long rpb = tb_target / TW;
    if (rpb < 1) rpb = 1;
    if (rpb * nt > rows) rpb = (rows + nt - 1) / nt;
    const int tb = (int)rpb * TW;
    const size_t ld = tile_cols_round((size_t)tb); // leading dimension of V and M
    const long nblocks = (rows + rpb - 1) / rpb;
    const size_t vstride = (size_t)Cin * ld, mstride = (size_t)Cout * ld;

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (long blk = 0; blk < nblocks; blk++) {
        float *V = slices + (size_t)omp_get_thread_num() * slice; // [16, Cin, ld]
        float *M = V + 16 * vstride;                              // [16, Cout, ld]
        float *scratch = M + 16 * mstride;
        const long r0 = blk * rpb;
        const int nr = (int)(rows - r0 < rpb ? rows - r0 : rpb), cnt = nr * TW;
        // the GEMMs read V's rows in whole tiles; what they read past cnt only reaches M's
        // columns past cnt, but zeros there spare them stale floats (a NaN or a denormal
        // costs time, never correctness)
        const size_t pad_cols = tile_cols_round((size_t)cnt) - (size_t)cnt;

        for (int c = 0; c < Cin; c++) {
            float *vc = V + (size_t)c * ld;
            input_block(x, Cin, H, W, pad, TH, TW, r0, nr, c, vc, vstride, scratch);
            for (int xi = 0; pad_cols && xi < 16; xi++)
                memset(vc + xi * vstride + cnt, 0, pad_cols * sizeof(float));
        }
        // M[xi] [Cout, cnt] = U[xi] [Cout, Cin] * V[xi] [Cin, cnt]; rotated, U[rot(xi)] is
        // [Cin, Cout], read transposed
        for (int xi = 0; xi < 16; xi++) {
            if (rotated)
                tile_gemm(Cout, cnt, Cin, U + (size_t)rot_xi[xi] * Cout * Cin, 1, (size_t)Cout,
                          V + xi * vstride, ld, M + xi * mstride, ld, false);
            else
                tile_gemm(Cout, cnt, Cin, U + (size_t)xi * Cout * Cin, (size_t)Cin, 1,
                          V + xi * vstride, ld, M + xi * mstride, ld, false);
        }
        for (int k = 0; k < Cout; k++)
            output_block(M + (size_t)k * ld, mstride, Cout, k, TH, TW, P, Q, r0, nr,
                         bias ? bias[k] : 0.0f, accumulate, y, scratch);
    }
}

/* ---------------- weight gradient. The forward is linear in U, y = A^T [sum_c U (.) V] A,
 * so dU[xi] [K, C] = sum over tiles of dM[xi] [K, T] * V[xi]^T [T, C] with dM = A dy A^T
 * (the adjoint of the output transform), and dW = G^T dU G (the adjoint of the kernel
 * transform): the exact gradient, with 16 T K C multiply-adds instead of im2col's 36. */

/* dy of output channel k for the block -> d[xi * dstride + j] = (A dy A^T)[xi] for the 2x2
 * dy patch of tile j (zero beyond P, Q). A's rows: (1,0) (1,1) (1,-1) (0,-1). Rows 2ty+a
 * are copied zero-padded to rows[a][i][2 TW]; columns first over all 2 * cnt (row, tile)
 * pairs, then rows. scratch: 12 * cnt floats. */
static void dy_block(const float *restrict dy, int K, int k, int TH, int TW, int P, int Q, long r0,
                     int nr, float *restrict d, size_t dstride, float *restrict scratch) {
    const int RW = 2 * TW, cnt = nr * TW, U = 2 * cnt;
    float *restrict rows = scratch;         // [2][nr][RW]
    float *restrict hr = scratch + 4 * cnt; // [4 column combos][2 rows][cnt]
    const size_t plane = (size_t)P * Q;
    for (int i = 0; i < nr; i++) {
        const long g = r0 + i;
        const int n = (int)(g / TH), ty = (int)(g % TH);
        const float *dyk = dy + ((size_t)n * K + k) * plane;
        for (int a = 0; a < 2; a++) {
            float *row = rows + (size_t)(a * nr + i) * RW;
            const int p = 2 * ty + a;
            int q0 = 0;
            if (p < P) memcpy(row, dyk + (size_t)p * Q, sizeof(float) * (size_t)Q), q0 = Q;
            for (int q = q0; q < RW; q++) row[q] = 0.0f;
        }
    }
    float *restrict c0 = hr, *restrict c1 = hr + U, *restrict c2 = hr + 2 * U,
                    *restrict c3 = hr + 3 * U;
    for (int u = 0; u < U; u++) { // u = a * cnt + j
        float e0 = rows[2 * u], e1 = rows[2 * u + 1];
        c0[u] = e0;
        c1[u] = e0 + e1;
        c2[u] = e0 - e1;
        c3[u] = -e1;
    }
    for (int jj = 0; jj < 4; jj++) {
        const float *restrict a0 = hr + (size_t)jj * U, *restrict a1 = a0 + cnt;
        float *restrict d0 = d + (0 * 4 + jj) * dstride, *restrict d1 = d + (1 * 4 + jj) * dstride,
                        *restrict d2 = d + (2 * 4 + jj) * dstride,
                        *restrict d3 = d + (3 * 4 + jj) * dstride;
        for (int j = 0; j < cnt; j++) {
            d0[j] = a0[j];
            d1[j] = a0[j] + a1[j];
            d2[j] = a0[j] - a1[j];
            d3[j] = -a1[j];
        }
    }
}

// du[xi * stride + l] (16 rows of WT_LANES) -> dg [9][WT_LANES] = G^T du_l G for each lane l
// (G's columns: (1,.5,.5,0) (0,.5,-.5,0) (0,.5,.5,1)); lane-parallel like transform_kernels
static void kernel_grads(const float *du, size_t stride, float dg[9][WT_LANES]) {
    float t[3][4][WT_LANES];
    for (int j = 0; j < 4; j++) {
        const float *d0 = du + j * stride, *d1 = du + (4 + j) * stride;
        const float *d2 = du + (8 + j) * stride, *d3 = du + (12 + j) * stride;
        for (int l = 0; l < WT_LANES; l++) {
            float u0 = d0[l], u1 = d1[l], u2 = d2[l], u3 = d3[l];
            t[0][j][l] = u0 + 0.5f * (u1 + u2);
            t[1][j][l] = 0.5f * (u1 - u2);
            t[2][j][l] = 0.5f * (u1 + u2) + u3;
        }
    }
    for (int r = 0; r < 3; r++)
        for (int l = 0; l < WT_LANES; l++) {
            dg[r * 3 + 0][l] = t[r][0][l] + 0.5f * (t[r][1][l] + t[r][2][l]);
            dg[r * 3 + 1][l] = 0.5f * (t[r][1][l] - t[r][2][l]);
            dg[r * 3 + 2][l] = 0.5f * (t[r][1][l] + t[r][2][l]) + t[r][3][l];
        }
}

// dw[i][0..9) += dg[.][l] (or = with set) for the n kernels i = l of a lane chunk (dw [n][9]
// contiguous). set skips reading dw: a step's first backward need not clear the gradients.
// (0 + dg, not dg: the same bits as clearing and adding, -0 included.)
static void add_kernel_grads(const float dg[9][WT_LANES], int n, float *dw, bool set) {
    if (set) {
        for (int l = 0; l < n; l++)
            for (int j = 0; j < 9; j++) dw[l * 9 + j] = 0.0f + dg[j][l];
        return;
    }
    for (int l = 0; l < n; l++)
        for (int j = 0; j < 9; j++) dw[l * 9 + j] += dg[j][l];
}

/* The blocks [b0, b1) of thread tid out of team: a contiguous share, fixed by the counts. */
static void dw_share(long nblocks, int tid, int team, long *b0, long *b1) {
    *b0 = nblocks * tid / team;
    *b1 = nblocks * (tid + 1) / team;
}

/* dW[k][c] += G^T (sum_t dU_t[.][k][c]) G, the parts of the threads that had blocks added in
 * thread order, so dW does not depend on scheduling. part(t) = ws + t * part_stride. */
static void dw_reduce(const float *ws, size_t part_stride, long nblocks, int team, size_t KC,
                      float *dw, bool set, int nt) {
    const long pairs = (long)KC, chunks = (pairs + WT_LANES - 1) / WT_LANES;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long ch = 0; ch < chunks; ch++) {
        const long i0 = ch * WT_LANES;
        const int n = pairs - i0 < WT_LANES ? (int)(pairs - i0) : WT_LANES;
        float du[16][WT_LANES] = {{0}}, dg[9][WT_LANES];
        for (int t = 0; t < team; t++) {
            long b0, b1;
            dw_share(nblocks, t, team, &b0, &b1);
            if (b0 == b1) continue; // its dU was never written
            for (int xi = 0; xi < 16; xi++) {
                const float *part = ws + (size_t)t * part_stride + xi * KC + i0;
                for (int l = 0; l < n; l++) du[xi][l] += part[l];
            }
        }
        kernel_grads(&du[0][0], WT_LANES, dg);
        add_kernel_grads((const float(*)[WT_LANES])dg, n, dw + (size_t)i0 * 9, set);
    }
}

/* ---- dW over the whole batch at once, by chunks of output channels. The blocked dW below
 * keeps a full dU [16, K, C] per thread; for the deep layers of a small batch (VGG's 4x4
 * maps: 512 x 512, 128 tiles at batch 32) dU is larger than the transformed input and dy of
 * every tile together, and it goes through memory three times per call (the GEMMs write it,
 * later blocks read it back, the reduction reads it again): ~3 ms of a 15 ms layer at batch
 * 32, a cost a batch-64 step pays per 64 images. Here V and D hold all T tiles, and each
 * chunk of kc output channels gets its dU (16 kc C floats, DW_CHUNK_FLOATS) from one GEMM per
 * xi over all T tiles and turns it into dW while it is still in cache. Every dW element comes
 * from one chunk, whatever the thread count, so no reduction between threads either. */

/* floats of one dU chunk: 4 MB, in L3 (a 2 MB chunk, half as many channels, was ~4% slower
 * for 512 x 512 at batch 32: the GEMMs read all of V^T for every chunk) */
enum { DW_CHUNK_FLOATS = 1 << 20 };

// output channels per dU chunk: DW_CHUNK_FLOATS / (16 C), at least 16, at most K
static int dw_chunk_channels(int C, int K) {
    int kc = (int)(DW_CHUNK_FLOATS / (16 * (size_t)C));
    if (kc < 16) kc = 16;
    return kc < K ? kc : K;
}

static size_t dw_whole_scratch(long T, long rows) {
    return round16((size_t)(32 * T + 8 * rows + 64)); // input_block's; dy_block needs 12 T
}

// floats of V [16, C, T], D [16, K, T] and V^T [16, T, C rounded to tiles] of all T tiles
static size_t dw_whole_shared_floats(int C, int K, long T) {
    return round16((size_t)16 * (C + K) * T) + (size_t)16 * T * tile_cols_round((size_t)C);
}

// floats of one thread's part in the whole-batch dW: its dU chunk [16, kc, C] and scratch
static size_t dw_whole_thread_floats(int C, int kc, long T, long rows) {
    return round16((size_t)16 * kc * C) + dw_whole_scratch(T, rows);
}

/* floats the whole-batch dW needs with nt threads (0 if it does not pay: dU no larger than V
 * and D of all tiles, where the blocked path's dU stays in cache anyway) */
static size_t dw_whole_floats(const conv2d_shape *s, int nt) {
    const long TH = (s->P + 1) / 2, TW = (s->Q + 1) / 2, T = (long)s->N * TH * TW;
    if (T * (s->C + s->K) > (long)s->K * s->C) return 0;
    const int kc = dw_chunk_channels(s->C, s->K);
    return dw_whole_shared_floats(s->C, s->K, T) +
           (size_t)nt * dw_whole_thread_floats(s->C, kc, T, (long)s->N * TH);
}

static void dw_whole(const conv2d_shape *s, const float *x, const float *dy, float *dw, bool set,
                     float *ws, int nt) {
    const int N = s->N, C = s->C, K = s->K, P = s->P, Q = s->Q, TH = (P + 1) / 2, TW = (Q + 1) / 2;
    const long rows = (long)N * TH, T = rows * TW;
    const int kc = dw_chunk_channels(C, K), nchunks = (K + kc - 1) / kc;
    const size_t vstride = (size_t)C * T, dstride = (size_t)K * T,
                 cpad = tile_cols_round((size_t)C);
    float *V = ws, *D = V + 16 * vstride;               // [16, C, T], [16, K, T]
    float *Vt = ws + round16(16 * (vstride + dstride)); // [16, T, cpad]
    float *own = ws + dw_whole_shared_floats(C, K, T);
    const size_t own_floats = dw_whole_thread_floats(C, kc, T, rows);
#pragma omp parallel num_threads(nt)
    {
        float *dU = own + (size_t)omp_get_thread_num() * own_floats; // [16, kc, C]
        float *scratch = dU + round16((size_t)16 * kc * C);
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++)
            input_block(x, C, s->H, s->W, s->pad, TH, TW, 0, (int)rows, c, V + (size_t)c * T,
                        vstride, scratch);
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++)
            dy_block(dy, K, k, TH, TW, P, Q, 0, (int)rows, D + (size_t)k * T, dstride, scratch);
#pragma omp for schedule(static)
        for (int xi = 0; xi < 16; xi++)
            transpose_padded(V + xi * vstride, (size_t)T, C, (int)T, Vt + xi * T * cpad);
#pragma omp for schedule(static)
        for (int ch = 0; ch < nchunks; ch++) {
            const int k0 = ch * kc, m = K - k0 < kc ? K - k0 : kc;
            const size_t xs = (size_t)m * C; // dU's xi stride for this chunk
            // dU[xi] [m, C] = D[xi] rows k0.. [m, T] * V[xi]^T [T, C]
            for (int xi = 0; xi < 16; xi++)
                tile_gemm(m, C, (int)T, D + xi * dstride + (size_t)k0 * T, (size_t)T, 1,
                          Vt + xi * T * cpad, cpad, dU + xi * xs, (size_t)C, false);
            for (size_t i0 = 0; i0 < xs; i0 += WT_LANES) {
                const int n = xs - i0 < WT_LANES ? (int)(xs - i0) : WT_LANES;
                float dg[9][WT_LANES];
                kernel_grads(dU + i0, xs, dg);
                add_kernel_grads((const float(*)[WT_LANES])dg, n, dw + ((size_t)k0 * C + i0) * 9,
                                 set);
            }
        }
    }
}

bool conv2d_wino_backward_dw(const conv2d_shape *s, const float *x, const float *dy, float *dw,
                             bool set, float *ws, size_t ws_floats) {
    const size_t u = u_floats(s), slice = slice_floats(s);
    if (!ws || ws_floats < u + slice) return false;
    int nt = omp_get_max_threads();
    if (nt < 1) nt = 1;
    const size_t whole = dw_whole_floats(s, nt);
    if (whole > 0 && whole <= ws_floats) {
        dw_whole(s, x, dy, dw, set, ws, nt);
        return true;
    }
    if ((size_t)nt > ws_floats / (u + slice)) nt = (int)(ws_floats / (u + slice));
    const int N = s->N, C = s->C, K = s->K, H = s->H, W = s->W, P = s->P, Q = s->Q;
    const int pad = s->pad, TH = (P + 1) / 2, TW = (Q + 1) / 2;
    const long rows = (long)N * TH;
    long rpb = tile_target(C, K) / TW;
    if (rpb < 1) rpb = 1;
    if (rpb * nt > rows) rpb = (rows + nt - 1) / nt;
    const int tb = (int)rpb * TW;
    const long nblocks = (rows + rpb - 1) / rpb;
    const size_t vstride = (size_t)C * tb, dstride = (size_t)K * tb, KC = (size_t)K * C;
    const size_t cpad = tile_cols_round((size_t)C);
    int team = nt;

    /* Thread t sums its share of the blocks into its own dU. The first block's GEMMs write dU
     * (beta = 0) and the others add to it, so dU is never cleared: clearing 16 K C floats and
     * reading them back in the first GEMM was a per-call cost (0.4 + ~1 ms for 512 x 512)
     * that a batch-32 step pays per 32 images and a batch-64 one per 64. */
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
#pragma omp single
        team = nth;
        float *dU = ws + (size_t)tid * (u + slice); // [16, K, C]
        float *V = dU + u;                          // [16, C, tb]
        float *D = V + 16 * vstride;                // [16, K, tb]
        float *scratch = D + 16 * dstride;
        // the slice's last part (slice_for): V^T of one xi [cnt, cpad]
        float *Vt = dU + u + slice - round16(tile_cols_round((size_t)tb) * cpad);
        long b0, b1;
        dw_share(nblocks, tid, nth, &b0, &b1);
        for (long blk = b0; blk < b1; blk++) {
            const long r0 = blk * rpb;
            const int nr = (int)(rows - r0 < rpb ? rows - r0 : rpb), cnt = nr * TW;
            for (int c = 0; c < C; c++)
                input_block(x, C, H, W, pad, TH, TW, r0, nr, c, V + (size_t)c * tb, vstride,
                            scratch);
            for (int k = 0; k < K; k++)
                dy_block(dy, K, k, TH, TW, P, Q, r0, nr, D + (size_t)k * tb, dstride, scratch);
            // dU[xi] [K, C] (+)= D[xi] [K, cnt] * V[xi]^T [cnt, C]
            for (int xi = 0; xi < 16; xi++) {
                transpose_padded(V + xi * vstride, (size_t)tb, C, cnt, Vt);
                tile_gemm(K, C, cnt, D + xi * dstride, (size_t)tb, 1, Vt, cpad, dU + xi * KC,
                          (size_t)C, blk != b0);
            }
        }
    }
    dw_reduce(ws, u + slice, nblocks, team, KC, dw, set, nt);
    return true;
}

/* threads: OpenMP's count, no more than the workspace holds slices for (0 = too small), and
 * the tiles per block: block_target's, or the cache-sized target in a workspace too small
 * for that (sized for fewer samples) */
static int pick_threads(const conv2d_shape *s, const float *ws, size_t ws_floats, int *tb) {
    const size_t u = u_floats(s);
    *tb = block_target(s);
    if (ws && ws_floats < u + slice_for(s, *tb)) *tb = tile_target(s->C, s->K);
    const size_t slice = slice_for(s, *tb);
    if (!ws || ws_floats < u + slice) return 0;
    int nt = omp_get_max_threads();
    if (nt < 1) nt = 1;
    size_t fit = (ws_floats - u) / slice;
    if ((size_t)nt > fit) nt = (int)fit;
    return nt;
}

bool conv2d_wino_forward(const conv2d_shape *s, const float *x, const float *w, const float *b,
                         float *y, float *ws, size_t ws_floats, float *u_keep, bool u_ready) {
    int tb;
    const int nt = pick_threads(s, ws, ws_floats, &tb);
    if (nt < 1) return false;
    float *U = u_keep ? u_keep : ws, *slices = ws + u_floats(s);
    if (!u_keep || !u_ready) transform_weights(w, s->K, s->C, U, nt);
    wino_conv(s->N, s->C, s->H, s->W, s->K, s->pad, x, U, false, b, y, false, slices,
              slice_for(s, tb), tb, nt);
    return true;
}

bool conv2d_wino_backward_dx(const conv2d_shape *s, const float *w, const float *dy, float *dx,
                             float *ws, size_t ws_floats, const float *u_kept) {
    int tb;
    const int nt = pick_threads(s, ws, ws_floats, &tb);
    if (nt < 1) return false;
    float *slices = ws + u_floats(s);
    const float *U = u_kept;
    if (!U) {
        transform_weights(w, s->K, s->C, ws, nt);
        U = ws;
    }
    // dy [N,K,P,Q] padded by 2 - pad gives back [N,C,H,W], with the kernels rotated
    wino_conv(s->N, s->K, s->P, s->Q, s->C, 2 - s->pad, dy, U, true, NULL, dx, true, slices,
              slice_for(s, tb), tb, nt);
    return true;
}
