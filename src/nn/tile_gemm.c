/* The register-tile GEMM: our own 6 x 32 tiles (AVX-512) instead of OpenBLAS for the small
 * GEMMs of the convolution paths.
 *
 * Why: those GEMMs multiply weight-sized matrices (Winograd's U [K, C] per xi, the taps'
 * W_t) by a few hundred columns. OpenBLAS packs the weights again for every call, and with
 * the core it picks on this machine (Haswell, AVX2) its kernel runs at half of what AVX-512
 * tiles reach: Winograd's 16 GEMMs [512 x 512] x [512 x 128] in 10.4 ms with packing against
 * 5.5 ms here (bench_tile_gemm; NOTES.md, issue 3, "Session 10"). A tile broadcasts A's values
 * straight from A's layout (any strides, so a transposed A costs nothing to set up) and keeps 12
 * accumulators in registers; A's 6 rows (6 x inner floats) stay in L1 while the tiles walk B's
 * columns.
 *
 * Built with -ffp-contract=fast (CMakeLists.txt): each step is a fused multiply-add. */
#include "tile_gemm.h"
#include "conv2d_internal.h"

enum { NV = TILE_COLS / 16 };

void tile_kernel(int inner, const float *const a[TILE_ROWS], size_t csa, const float *b, size_t ldb,
                 float *out, size_t ldo) {
    v16 acc[TILE_ROWS][NV];
    memset(acc, 0, sizeof acc);
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (size_t i = 0, o = 0; i < (size_t)inner; i++, o += csa, b += ldb) {
        v16 bv[NV];
        for (int v = 0; v < NV; v++) bv[v] = load16(b + v * 16);
        const float w[TILE_ROWS] = {a0[o], a1[o], a2[o], a3[o], a4[o], a5[o]};
        for (int j = 0; j < TILE_ROWS; j++)
            for (int v = 0; v < NV; v++) acc[j][v] += w[j] * bv[v];
    }
    for (int j = 0; j < TILE_ROWS; j++)
        for (int v = 0; v < NV; v++) store16(out + j * ldo + v * 16, acc[j][v]);
}

void tile_gemm(int m, int n, int inner, const float *a, size_t rsa, size_t csa, const float *b,
               size_t ldb, float *c, size_t ldc, bool accumulate) {
    float part[TILE_ROWS * TILE_COLS];
    const float *rows_of[TILE_ROWS];
    for (int i = 0; i < m; i += TILE_ROWS) {
        const int rows = m - i < TILE_ROWS ? m - i : TILE_ROWS;
        tile_rows(a + (size_t)i * rsa, rows, rsa, rows_of);
        for (int q = 0; q < n; q += TILE_COLS) {
            const int cols = n - q < TILE_COLS ? n - q : TILE_COLS;
            float *dst = c + (size_t)i * ldc + q;
            if (rows == TILE_ROWS && cols == TILE_COLS && !accumulate) {
                tile_kernel(inner, rows_of, csa, b + q, ldb, dst, ldc);
                continue;
            }
            tile_kernel(inner, rows_of, csa, b + q, ldb, part, TILE_COLS);
            for (int j = 0; j < rows; j++)
                for (int l = 0; l < cols; l++) {
                    float *d = dst + (size_t)j * ldc + l;
                    *d = accumulate ? *d + part[j * TILE_COLS + l] : part[j * TILE_COLS + l];
                }
        }
    }
}

void transpose_padded(const float *src, size_t lds, int rows, int cols, float *dst) {
    const size_t ldd = tile_cols_round((size_t)rows);
    enum { B = 16 }; // 16 x 16 blocks: both sides touch whole cache lines
    for (int i0 = 0; i0 < rows; i0 += B)
        for (int j0 = 0; j0 < cols; j0 += B) {
            const int i1 = i0 + B < rows ? i0 + B : rows, j1 = j0 + B < cols ? j0 + B : cols;
            for (int j = j0; j < j1; j++)
                for (int i = i0; i < i1; i++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
        }
    if (ldd > (size_t)rows)
        for (int j = 0; j < cols; j++)
            memset(dst + (size_t)j * ldd + rows, 0, (ldd - (size_t)rows) * sizeof(float));
}
