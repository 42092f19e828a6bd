/* conv2d: im2col + SGEMM fast path (direct GEMM for 1x1/stride 1/pad 0), OpenMP over samples,
 * and the plain-loop reference kernels the fast path is tested against. */
#include "dprune/nn.h"
#include <cblas.h>
#include <omp.h>
#include <string.h>

void conv2d_shape_init(conv2d_shape *s, int N, int C, int H, int W, int K, int R, int S, int stride,
                       int pad) {
    s->N = N, s->C = C, s->H = H, s->W = W;
    s->K = K, s->R = R, s->S = S;
    s->stride = stride, s->pad = pad;
    s->P = (H + 2 * pad - R) / stride + 1;
    s->Q = (W + 2 * pad - S) / stride + 1;
}

int64_t conv2d_flops(const conv2d_shape *s) {
    return (int64_t)s->N * s->K * s->P * s->Q * s->C * s->R * s->S;
}

/* ---------------- workspace layout: one slice per thread, each 64-byte aligned so threads
 * never share a cache line. Slice = [col: C*R*S x P*Q | dW partial: K*C*R*S (backward only)]. */

/* A 1x1 stride-1 unpadded conv is a plain GEMM on the input plane: x_n [C,HW] is its own
 * im2col matrix, so no col buffer is needed. */
static int is_direct(const conv2d_shape *s) {
    return s->R == 1 && s->S == 1 && s->stride == 1 && s->pad == 0;
}

static size_t round16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

static size_t col_floats(const conv2d_shape *s) {
    return is_direct(s) ? 0 : (size_t)s->C * s->R * s->S * s->P * s->Q;
}

static size_t dw_floats(const conv2d_shape *s) {
    return (size_t)s->K * s->C * s->R * s->S;
}

size_t conv2d_workspace_floats(const conv2d_shape *s, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    return (size_t)nthreads * round16(col_floats(s) + dw_floats(s));
}

/* Threads to run with: what OpenMP offers, no more than samples, no more than the workspace
 * holds slices of `slice` floats. 0 means the workspace cannot hold even one slice. */
static int pick_threads(int N, size_t slice, const float *ws, size_t ws_floats) {
    int nt = omp_get_max_threads();
    if (nt > N) nt = N;
    if (nt < 1) nt = 1;
    if (slice > 0) {
        size_t fit = ws ? ws_floats / slice : 0;
        if ((size_t)nt > fit) nt = (int)fit;
    }
    return nt;
}

/* Output positions q in [*q0, *q1) read input column q*stride + off inside [0, W); the others
 * fall in the zero padding. Shared by im2col and col2im so both skip the same cells. */
static void valid_range(int stride, int off, int W, int Q, int *q0, int *q1) {
    int lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int hi = W - 1 - off >= 0 ? (W - 1 - off) / stride + 1 : 0;
    if (hi > Q) hi = Q;
    if (lo > Q) lo = Q;
    if (hi < lo) hi = lo;
    *q0 = lo, *q1 = hi;
}

// x: [C,H,W] -> col: [C*R*S, P*Q], col[(c,r,s), (p,q)] = x[c, p*st+r-pad, q*st+s-pad] or 0
static void im2col(const conv2d_shape *s, const float *x, float *col) {
    const int st = s->stride, P = s->P, Q = s->Q;
    for (int c = 0; c < s->C; c++) {
        for (int r = 0; r < s->R; r++) {
            for (int t = 0; t < s->S; t++) {
                float *row = col + ((size_t)(c * s->R + r) * s->S + t) * P * Q;
                int q0, q1;
                valid_range(st, t - s->pad, s->W, Q, &q0, &q1);
                for (int p = 0; p < P; p++) {
                    float *dst = row + (size_t)p * Q;
                    int h = p * st + r - s->pad;
                    if (h < 0 || h >= s->H) {
                        memset(dst, 0, sizeof(float) * Q);
                        continue;
                    }
                    const float *src = x + ((size_t)c * s->H + h) * s->W;
                    const int off = t - s->pad; // input column = q*st + off
                    for (int q = 0; q < q0; q++) dst[q] = 0.0f;
                    if (st == 1)
                        memcpy(dst + q0, src + q0 + off, sizeof(float) * (q1 - q0));
                    else
                        for (int q = q0; q < q1; q++) dst[q] = src[q * st + off];
                    for (int q = q1; q < Q; q++) dst[q] = 0.0f;
                }
            }
        }
    }
}

// col: [C*R*S, P*Q] -> dx: [C,H,W] += (the adjoint of im2col: overlapping windows add up)
static void col2im_add(const conv2d_shape *s, const float *col, float *dx) {
    const int st = s->stride, P = s->P, Q = s->Q;
    for (int c = 0; c < s->C; c++) {
        for (int r = 0; r < s->R; r++) {
            for (int t = 0; t < s->S; t++) {
                const float *row = col + ((size_t)(c * s->R + r) * s->S + t) * P * Q;
                int q0, q1;
                valid_range(st, t - s->pad, s->W, Q, &q0, &q1);
                for (int p = 0; p < P; p++) {
                    int h = p * st + r - s->pad;
                    if (h < 0 || h >= s->H) continue;
                    const float *src = row + (size_t)p * Q;
                    float *dst = dx + ((size_t)c * s->H + h) * s->W;
                    const int off = t - s->pad;
                    for (int q = q0; q < q1; q++) dst[q * st + off] += src[q];
                }
            }
        }
    }
}

/* ---------------- fast kernels */

void conv2d_forward(const conv2d_shape *s, const float *x, const float *w, const float *b, float *y,
                    float *ws, size_t ws_floats) {
    const size_t slice = round16(col_floats(s));
    const int nt = pick_threads(s->N, slice, ws, ws_floats);
    if (nt < 1) {
        conv2d_forward_naive(s, x, w, b, y);
        return;
    }
    const int K = s->K, CRS = s->C * s->R * s->S, PQ = s->P * s->Q;
    const size_t in_n = (size_t)s->C * s->H * s->W, out_n = (size_t)K * PQ;

#pragma omp parallel for num_threads(nt) schedule(static)
    for (int n = 0; n < s->N; n++) {
        const float *xn = x + n * in_n;
        float *yn = y + n * out_n; // [K, P*Q]
        // bias first, then the GEMM accumulates on top (beta = 1)
        for (int k = 0; k < K; k++) {
            float bk = b ? b[k] : 0.0f;
            for (int i = 0; i < PQ; i++) yn[(size_t)k * PQ + i] = bk;
        }
        const float *col = xn; // direct path: x_n [C, H*W] is already [CRS, PQ]
        if (!is_direct(s)) {
            float *buf = ws + (size_t)omp_get_thread_num() * slice;
            im2col(s, xn, buf);
            col = buf;
        }
        // y_n [K,PQ] += w [K,CRS] * col [CRS,PQ]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, PQ, CRS, 1.0f, w, CRS, col, PQ,
                    1.0f, yn, PQ);
    }
}

void conv2d_backward(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                     float *dx, float *dw, float *db, float *ws, size_t ws_floats) {
    const size_t ncol = col_floats(s), ndw = dw_floats(s);
    const size_t slice = round16(ncol + ndw);
    const int nt = pick_threads(s->N, slice, ws, ws_floats);
    if (nt < 1) {
        conv2d_backward_naive(s, x, w, dy, dx, dw, db);
        return;
    }
    const int N = s->N, K = s->K, CRS = s->C * s->R * s->S, PQ = s->P * s->Q;
    const size_t in_n = (size_t)s->C * s->H * s->W, out_n = (size_t)K * PQ;
    int team = nt;

    /* Each thread takes a contiguous block of samples and sums their dW into its own slice;
     * the slices are added in thread order below, so dW does not depend on scheduling. */
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
#pragma omp single
        team = nth;                            // may be < nt (nested region, dynamic threads)
        float *col = ws + (size_t)tid * slice; // [CRS, PQ]
        float *dw_t = col + ncol;              // [K, CRS]
        memset(dw_t, 0, sizeof(float) * ndw);
        const int n0 = (int)((int64_t)N * tid / nth), n1 = (int)((int64_t)N * (tid + 1) / nth);
        for (int n = n0; n < n1; n++) {
            const float *xn = x + n * in_n, *dyn = dy + n * out_n;
            const float *xcol = xn;
            if (!is_direct(s)) {
                im2col(s, xn, col);
                xcol = col;
            }
            // dW_t [K,CRS] += dy_n [K,PQ] * col^T [PQ,CRS]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, CRS, PQ, 1.0f, dyn, PQ, xcol,
                        PQ, 1.0f, dw_t, CRS);
            if (!dx) continue;
            float *dxn = dx + n * in_n;
            if (is_direct(s)) {
                // dx_n [C,HW] += w^T [C,K] * dy_n [K,HW]
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CRS, PQ, K, 1.0f, w, CRS, dyn,
                            PQ, 1.0f, dxn, PQ);
            } else {
                // dcol [CRS,PQ] = w^T * dy_n (reusing the col buffer), then scatter-add to dx_n
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CRS, PQ, K, 1.0f, w, CRS, dyn,
                            PQ, 0.0f, col, PQ);
                col2im_add(s, col, dxn);
            }
        }
    }

    // dw += sum_t dW_t, in fixed thread order for every element
    const long nw = (long)ndw;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long i = 0; i < nw; i++) {
        float acc = 0.0f;
        for (int t = 0; t < team; t++) acc += ws[(size_t)t * slice + ncol + i];
        dw[i] += acc;
    }

    if (db) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int k = 0; k < K; k++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) {
                const float *d = dy + n * out_n + (size_t)k * PQ;
                for (int i = 0; i < PQ; i++) acc += d[i];
            }
            db[k] += (float)acc;
        }
    }
}

/* ---------------- naive reference: the definition, written as loops */

void conv2d_forward_naive(const conv2d_shape *s, const float *x, const float *w, const float *b,
                          float *y) {
    const int C = s->C, H = s->H, W = s->W, R = s->R, S = s->S, P = s->P, Q = s->Q;
    for (int n = 0; n < s->N; n++)
        for (int k = 0; k < s->K; k++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    double acc = b ? b[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++)
                            for (int t = 0; t < S; t++) {
                                int h = p * s->stride + r - s->pad, v = q * s->stride + t - s->pad;
                                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                                acc += (double)w[((k * C + c) * R + r) * S + t] *
                                       x[(((size_t)n * C + c) * H + h) * W + v];
                            }
                    y[(((size_t)n * s->K + k) * P + p) * Q + q] = (float)acc;
                }
}

void conv2d_backward_naive(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *db) {
    const int C = s->C, H = s->H, W = s->W, R = s->R, S = s->S, P = s->P, Q = s->Q;
    for (int n = 0; n < s->N; n++)
        for (int k = 0; k < s->K; k++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    float g = dy[(((size_t)n * s->K + k) * P + p) * Q + q];
                    if (db) db[k] += g;
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++)
                            for (int t = 0; t < S; t++) {
                                int h = p * s->stride + r - s->pad, v = q * s->stride + t - s->pad;
                                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                                size_t xi = (((size_t)n * C + c) * H + h) * W + v;
                                size_t wi = ((size_t)(k * C + c) * R + r) * S + t;
                                dw[wi] += g * x[xi];
                                if (dx) dx[xi] += g * w[wi];
                            }
                }
}
