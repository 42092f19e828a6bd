/* The register-tile GEMM (src/nn/tile_gemm.c) against the naive triple loop in double:
 * A row-major and transposed (read in place through its strides), every tail of rows and
 * columns (m, n not multiples of the tile), inner lengths 1..300, C written and accumulated,
 * C's elements past n and the rows' padding never touched, each element the same bits
 * whatever rows the caller hands it (the Winograd and taps paths split rows across threads);
 * and transpose_padded: the transpose with zeroed padding columns. */
#include "testutil.h"
#include "tile_gemm.h"
#include "dprune/core.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const float SENTINEL = -12345.0f;

/* C [m, n] (+)= A [m, inner] B [inner, n], in double; A(i, p) = a[i * rsa + p * csa] */
static void naive(int m, int n, int inner, const float *a, size_t rsa, size_t csa, const float *b,
                  size_t ldb, float *c, size_t ldc, bool accumulate) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = accumulate ? c[(size_t)i * ldc + j] : 0.0;
            for (int p = 0; p < inner; p++)
                acc += (double)a[(size_t)i * rsa + (size_t)p * csa] * b[(size_t)p * ldb + j];
            c[(size_t)i * ldc + j] = (float)acc;
        }
}

static void check_case(int m, int n, int inner, bool transposed, bool accumulate, unsigned seed) {
    const size_t ldb = tile_cols_round((size_t)n), ldc = (size_t)n + 3; // C: padding to watch
    // A stored [m, inner] (rsa = inner, csa = 1) or [inner, m] read transposed (1, m)
    const size_t rsa = transposed ? 1 : (size_t)inner, csa = transposed ? (size_t)m : 1;
    float *a = dp_alloc_floats((size_t)m * inner), *b = dp_alloc_floats((size_t)inner * ldb);
    float *c = dp_alloc_floats((size_t)m * ldc), *ref = dp_alloc_floats((size_t)m * ldc);
    dp_fill_uniform(a, (size_t)m * inner, seed, 1.0f);
    dp_fill_uniform(b, (size_t)inner * ldb, seed + 1, 1.0f);
    // B's columns past n are what a caller's padding may hold: NaN must not reach C
    for (int p = 0; p < inner; p++)
        for (size_t j = (size_t)n; j < ldb; j++) b[(size_t)p * ldb + j] = NAN;
    dp_fill_uniform(c, (size_t)m * ldc, seed + 2, 1.0f);
    for (int i = 0; i < m; i++)
        for (size_t j = (size_t)n; j < ldc; j++) c[(size_t)i * ldc + j] = SENTINEL;
    memcpy(ref, c, sizeof(float) * (size_t)m * ldc);

    tile_gemm(m, n, inner, a, rsa, csa, b, ldb, c, ldc, accumulate);
    naive(m, n, inner, a, rsa, csa, b, ldb, ref, ldc, accumulate);
    double worst = 0.0;
    bool padding_kept = true;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            const double got = c[(size_t)i * ldc + j], want = ref[(size_t)i * ldc + j];
            const double err = fabs(got - want) / (1.0 + fabs(want));
            if (!(err <= worst)) worst = err; // NaN counts as the worst
        }
        for (size_t j = (size_t)n; j < ldc; j++) padding_kept &= c[(size_t)i * ldc + j] == SENTINEL;
    }
    CHECK_MSG(worst <= 1e-5 * sqrt((double)inner + 1.0),
              "tile_gemm m%d n%d inner%d %s %s: error %.3g against the naive product", m, n, inner,
              transposed ? "A^T" : "A", accumulate ? "+=" : "=", worst);
    CHECK_MSG(padding_kept, "tile_gemm m%d n%d inner%d: wrote C past column n", m, n, inner);

    // rows handed over in two parts (as threads split them): the same bits as all at once
    if (!accumulate && m > 1) {
        float *split = dp_alloc_floats((size_t)m * ldc);
        memcpy(split, ref, sizeof(float) * (size_t)m * ldc);
        const int half = m / 2 + 1;
        tile_gemm(half, n, inner, a, rsa, csa, b, ldb, split, ldc, false);
        tile_gemm(m - half, n, inner, a + (size_t)half * rsa, rsa, csa, b, ldb,
                  split + (size_t)half * ldc, ldc, false);
        CHECK_MSG(memcmp(split, c, sizeof(float) * (size_t)m * ldc) == 0,
                  "tile_gemm m%d n%d inner%d: rows split in two give other bits", m, n, inner);
        dp_free(split);
    }
    dp_free(a), dp_free(b), dp_free(c), dp_free(ref);
}

static void check_transpose(int rows, int cols) {
    const size_t lds = (size_t)cols + 5, ldd = tile_cols_round((size_t)rows);
    float *src = dp_alloc_floats((size_t)rows * lds), *dst = dp_alloc_floats((size_t)cols * ldd);
    dp_fill_uniform(src, (size_t)rows * lds, (unsigned)(rows * 31 + cols), 1.0f);
    for (size_t i = 0; i < (size_t)cols * ldd; i++) dst[i] = NAN;
    transpose_padded(src, lds, rows, cols, dst);
    bool ok = true;
    for (int j = 0; j < cols; j++)
        for (size_t i = 0; i < ldd; i++)
            ok &= dst[(size_t)j * ldd + i] == (i < (size_t)rows ? src[i * lds + (size_t)j] : 0.0f);
    CHECK_MSG(ok, "transpose_padded %d x %d: wrong element or padding not zero", rows, cols);
    dp_free(src), dp_free(dst);
}

int main(void) {
    // rows: below, at and past one tile (6); columns: below, at and past one and two tiles
    const int ms[] = {1, 5, 6, 7, 13, 64};
    const int ns[] = {1, 15, 16, 17, 32, 33, 64, 100};
    const int inners[] = {1, 3, 64, 300};
    unsigned seed = 1;
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
            for (size_t k = 0; k < sizeof inners / sizeof *inners; k++)
                for (int mode = 0; mode < 4; mode++)
                    check_case(ms[i], ns[j], inners[k], mode & 1, mode & 2, seed += 3);
    // the Winograd shapes of VGG at batch 32 (U [512, 512] against 128 tiles), both ways
    check_case(512, 128, 512, false, false, 7);
    check_case(512, 128, 512, true, false, 8);

    const int dims[] = {1, 3, 16, 17, 40};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++)
        for (size_t j = 0; j < sizeof dims / sizeof *dims; j++) check_transpose(dims[i], dims[j]);
    return dp_test_finish();
}
