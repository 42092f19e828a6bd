/* Private to src/nn: the register-tile GEMM of the taps and Winograd paths (tile_gemm.c). */
#ifndef DPRUNE_NN_TILE_GEMM_H
#define DPRUNE_NN_TILE_GEMM_H

#include <stdbool.h>
#include <stddef.h>

/* A register tile is TILE_ROWS rows x TILE_COLS columns: TILE_ROWS broadcast values of A times
 * TILE_COLS / 16 vectors of 16 columns of B per step. With AVX-512 (32 registers) two vectors
 * per row (12 accumulators, half the broadcasts per multiply-add); with AVX2 a 16-float vector
 * is two registers already, so one. */
#ifdef __AVX512F__
#define TILE_COLS 32
#else
#define TILE_COLS 16
#endif
#define TILE_ROWS 6

/* out [TILE_ROWS][0..TILE_COLS) (row stride ldo) = sum over i < inner of a[j][i * csa] *
 * b[i * ldb + 0..TILE_COLS): one broadcast value per row and step, read in place through
 * the row pointers a[j] with column stride csa (A's own layout: nothing is copied or
 * packed). */
void tile_kernel(int inner, const float *const a[TILE_ROWS], size_t csa, const float *b, size_t ldb,
                 float *out, size_t ldo);

/* the row pointers of a tile whose A rows start at src, rsa apart: a[j] = src + min(j, rows -
 * 1) * rsa (rows past the real ones repeat the last; the caller drops their results) */
static inline void tile_rows(const float *src, int rows, size_t rsa, const float *a[TILE_ROWS]) {
    for (int j = 0; j < TILE_ROWS; j++) a[j] = src + (size_t)(j < rows ? j : rows - 1) * rsa;
}

/* C [m, n] = A [m, inner] B [inner, n], or C += it with accumulate, where A(i, p) = a[i * rsa +
 * p * csa] (any strides: a row-major A, or a transposed one, read in place) and B, C are
 * row-major with leading dimensions ldb, ldc. B's rows are read in whole tiles: each must have
 * round_up(n, TILE_COLS) readable floats (what lies past column n only reaches the columns of
 * C past n, which are not written). Every element of C is one sum over p in increasing order,
 * whatever m, n and the caller's split of the rows. */
void tile_gemm(int m, int n, int inner, const float *a, size_t rsa, size_t csa, const float *b,
               size_t ldb, float *c, size_t ldc, bool accumulate);

/* dst [cols][tile_cols_round(rows)] = src [rows][cols]^T (src's row stride lds), the columns
 * past rows zero: a B operand for tile_gemm from a matrix stored the other way round. */
void transpose_padded(const float *src, size_t lds, int rows, int cols, float *dst);

static inline size_t tile_cols_round(size_t n) {
    return (n + TILE_COLS - 1) / TILE_COLS * TILE_COLS;
}

#endif
