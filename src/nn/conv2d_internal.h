/* Private to src/nn/conv2d*.c: the Winograd path used by conv2d_forward/backward. */
#ifndef DPRUNE_NN_CONV2D_INTERNAL_H
#define DPRUNE_NN_CONV2D_INTERNAL_H

#include "dprune/nn.h"
#include <stdbool.h>
#include <string.h>

/* 16 floats as one GCC/Clang vector: the register tiles of the direct and taps paths (one
 * AVX-512 register, two AVX2 ones); loads and stores through memcpy (no alignment needed) */
typedef float v16 __attribute__((vector_size(64)));

static inline v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store16(float *p, v16 v) {
    memcpy(p, &v, sizeof v);
}

/* Output positions q in [*q0, *q1) read input column q*stride + off inside [0, W); the others
 * fall in the zero padding (conv2d.c: im2col, col2im; conv2d_taps.c: each tap's reach). */
void conv2d_valid_range(int stride, int off, int W, int Q, int *q0, int *q1);

/* 3x3, stride 1, pad 0..2 (the dx conv then has pad 2 - pad): both passes can use F(2x2,3x3) */
bool conv2d_wino_applicable(const conv2d_shape *s);
/* floats the forward and the dx backward need for nthreads threads (same for both) */
size_t conv2d_wino_workspace_floats(const conv2d_shape *s, int nthreads);
/* the least any pass runs in (one thread, cache-sized blocks); the backward's test */
size_t conv2d_wino_min_workspace_floats(const conv2d_shape *s);
/* floats of the transformed weights U [16, K, C] */
size_t conv2d_wino_u_floats(const conv2d_shape *s);
/* y = conv(x, w) + b. Returns false (and does nothing) if ws cannot hold one thread's part.
 * U goes to u_keep (conv2d_wino_u_floats) if given, else into ws; with u_ready, u_keep
 * already holds the transform of w (conv2d_wino_transform_part) and is used as it is. */
bool conv2d_wino_forward(const conv2d_shape *s, const float *x, const float *w, const float *b,
                         float *y, float *ws, size_t ws_floats, float *u_keep, bool u_ready);
/* Part `part` of `parts` of U = the transform of w: parts split the K * C kernels into runs of
 * whole cache lines, so processes sharing u can each write one. */
void conv2d_wino_transform_part(const conv2d_shape *s, const float *w, float *u, int part,
                                int parts);
/* dw += the weight gradient (exact gradient of the Winograd forward), or dw = it with set.
 * Returns false if ws is too small. Deterministic for a given thread count. */
bool conv2d_wino_backward_dw(const conv2d_shape *s, const float *x, const float *dy, float *dw,
                             bool set, float *ws, size_t ws_floats);
/* dx += conv_transpose(dy, w), i.e. the input gradient. Returns false if ws is too small.
 * u_kept: the forward's U of these weights (then w is not transformed again), or NULL. */
bool conv2d_wino_backward_dx(const conv2d_shape *s, const float *w, const float *dy, float *dx,
                             float *ws, size_t ws_floats, const float *u_kept);

/* Direct convolution (conv2d_direct.c): stride 1, pad <= R-1 and S-1. */
bool conv2d_direct_applicable(const conv2d_shape *s);
size_t conv2d_direct_workspace_floats(const conv2d_shape *s, int nthreads);
/* y = conv(x, w) + b. Returns false (and does nothing) if ws cannot hold one thread's part. */
bool conv2d_direct_forward(const conv2d_shape *s, const float *x, const float *w, const float *b,
                           float *y, float *ws, size_t ws_floats);
/* dw += the weight gradient, dx += the input gradient (if dx), db += the bias gradient (if db).
 * Returns false (and does nothing) if ws is too small. Deterministic for a given thread
 * count. */
bool conv2d_direct_backward(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db, float *ws, size_t ws_floats);

/* One small GEMM per kernel tap over the positions it reaches (conv2d_taps.c): any shape
 * with R*S <= 121. The weights are read in place (nothing to keep between the passes). */
bool conv2d_taps_applicable(const conv2d_shape *s);
/* real (tap, position) pairs per sample: what the GEMMs multiply, per (c, k) pair */
size_t conv2d_taps_products(const conv2d_shape *s);
size_t conv2d_taps_workspace_floats(const conv2d_shape *s, int nthreads);
/* y = conv(x, w) + b. Returns false (and does nothing) if ws cannot hold one thread's part. */
bool conv2d_taps_forward(const conv2d_shape *s, const float *x, const float *w, const float *b,
                         float *y, float *ws, size_t ws_floats);
/* dw += (or = with set) the weight gradient, dx += the input gradient (if dx). Returns false
 * (and does nothing) if ws is too small. Deterministic, and the same for any thread count. */
bool conv2d_taps_backward(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, bool set, float *ws, size_t ws_floats);

#endif
