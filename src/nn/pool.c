/* Pooling: max (saves the argmax for backward), average (count_include_pad, PyTorch's
 * default) and global average. OpenMP over the N*C planes: planes are independent, so the
 * backward scatters never collide. */
#include "dprune/nn.h"
#include <math.h>
#include <stdbool.h>
#include <string.h>

void pool2d_shape_init(pool2d_shape *s, int N, int C, int H, int W, int k, int stride, int pad) {
    s->N = N, s->C = C, s->H = H, s->W = W;
    s->k = k, s->stride = stride, s->pad = pad;
    s->P = (H + 2 * pad - k) / stride + 1;
    s->Q = (W + 2 * pad - k) / stride + 1;
}

// x: [N,C,H,W] -> y: [N,C,P,Q], argmax: [N,C,P,Q] (h*W+w inside the plane; -1 if none)
/* The common 2x2 stride-2 unpadded window without the bounds checks of the general loop
 * (which cost more than the comparisons). The selects are bit masks, not ternaries: GCC turns
 * ternaries into branches in the scalar remainder of each row (Q = 14 or 5 in lenet5 leaves
 * most outputs there), and those branches mispredict on half the windows; masks keep the whole
 * row branch-free and still vectorise. Same scan order and strict '>' as the general loop, so
 * ties and NaNs resolve identically. */
static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// one window step: if v > *best (strict), take v and its index (m = all ones iff taken)
static inline void take_if_greater(float v, int32_t idx, float *best, int32_t *arg) {
    const uint32_t m = 0u - (uint32_t)(v > *best);
    *best = u2f((f2u(*best) & ~m) | (f2u(v) & m));
    *arg = (int32_t)(((uint32_t)*arg & ~m) | ((uint32_t)idx & m));
}

// outputs q in [q0, q0 + n) of one output row (r0, r1: its two input rows, base = 2p*W)
static inline void pool2x2_span(const float *restrict r0, const float *restrict r1, int W,
                                int32_t base, int q0, int n, float *restrict yr,
                                int32_t *restrict ar) {
    for (int i = 0; i < n; i++) {
        const int q = q0 + i;
        float best = r0[2 * q];
        int32_t arg = base + 2 * q;
        take_if_greater(r0[2 * q + 1], base + 2 * q + 1, &best, &arg);
        take_if_greater(r1[2 * q], base + W + 2 * q, &best, &arg);
        take_if_greater(r1[2 * q + 1], base + W + 2 * q + 1, &best, &arg);
        yr[q] = best;
        ar[q] = arg;
    }
}

/* One output row in spans of 8 outputs (a constant trip count the compiler vectorises whole),
 * the last span moved back to end at Q and overlapping the one before:
 * outputs are recomputed identically, so the overlap is harmless, and no scalar remainder is
 * left (lenet5's pool1 rows are 14 outputs long: 0.29 -> 0.09 ms). */
static void pool2x2_row(const float *r0, const float *r1, int W, int32_t base, int Q, float *yr,
                        int32_t *ar) {
    if (Q >= 8) {
        for (int q0 = 0;; q0 += 8) {
            if (q0 > Q - 8) q0 = Q - 8;
            pool2x2_span(r0, r1, W, base, q0, 8, yr, ar);
            if (q0 == Q - 8) break;
        }
    } else { // two spans of 4 were slower on lenet5's 5-wide rows (0.29 vs 0.10 ms)
        pool2x2_span(r0, r1, W, base, 0, Q, yr, ar);
    }
}

static void maxpool2x2_forward(const pool2d_shape *s, const float *x, float *y, int32_t *argmax) {
    const int H = s->H, W = s->W, P = s->P, Q = s->Q;
    const long planes = (long)s->N * s->C;
#pragma omp parallel for schedule(static)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * H * W;
        float *yp = y + (size_t)pl * P * Q;
        int32_t *ap = argmax + (size_t)pl * P * Q;
        for (int p = 0; p < P; p++) {
            const float *r0 = xp + (size_t)(2 * p) * W;
            pool2x2_row(r0, r0 + W, W, 2 * p * W, Q, yp + (size_t)p * Q, ap + (size_t)p * Q);
        }
    }
}

void maxpool2d_forward(const pool2d_shape *s, const float *x, float *y, int32_t *argmax) {
    if (s->k == 2 && s->stride == 2 && s->pad == 0) {
        maxpool2x2_forward(s, x, y, argmax);
        return;
    }
    const int H = s->H, W = s->W, P = s->P, Q = s->Q;
    const long planes = (long)s->N * s->C;
#pragma omp parallel for schedule(static)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * H * W;
        float *yp = y + (size_t)pl * P * Q;
        int32_t *ap = argmax + (size_t)pl * P * Q;
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                // padding is -inf, i.e. simply skipped; ties keep the first maximum
                float best = -INFINITY;
                int32_t arg = -1;
                for (int r = 0; r < s->k; r++) {
                    int h = p * s->stride + r - s->pad;
                    if (h < 0 || h >= H) continue;
                    for (int t = 0; t < s->k; t++) {
                        int w = q * s->stride + t - s->pad;
                        if (w < 0 || w >= W) continue;
                        if (arg < 0 || xp[h * W + w] > best) best = xp[h * W + w], arg = h * W + w;
                    }
                }
                yp[p * Q + q] = best;
                ap[p * Q + q] = arg;
            }
    }
}

// argmax, dy: [N,C,P,Q] -> dx: [N,C,H,W] += dy routed to each window's max; with zero_first
// each plane is zeroed first while it is in cache (no separate fill pass)
static void maxpool2d_route(const pool2d_shape *s, const int32_t *argmax, const float *dy,
                            float *dx, bool zero_first) {
    const size_t HW = (size_t)s->H * s->W, PQ = (size_t)s->P * s->Q;
    const long planes = (long)s->N * s->C;
#pragma omp parallel for schedule(static)
    for (long pl = 0; pl < planes; pl++) {
        const int32_t *ap = argmax + pl * PQ;
        const float *dp = dy + pl * PQ;
        float *gp = dx + pl * HW;
        if (zero_first) memset(gp, 0, sizeof(float) * HW);
        for (size_t i = 0; i < PQ; i++)
            if (ap[i] >= 0) gp[ap[i]] += dp[i];
    }
}

void maxpool2d_backward(const pool2d_shape *s, const int32_t *argmax, const float *dy, float *dx) {
    maxpool2d_route(s, argmax, dy, dx, false);
}

void maxpool2d_backward_set(const pool2d_shape *s, const int32_t *argmax, const float *dy,
                            float *dx) {
    maxpool2d_route(s, argmax, dy, dx, true);
}

// x: [N,C,H,W] -> y: [N,C,P,Q], mean over the k*k window, padded zeros included
void avgpool2d_forward(const pool2d_shape *s, const float *x, float *y) {
    const int H = s->H, W = s->W, P = s->P, Q = s->Q;
    const float inv = 1.0f / (float)(s->k * s->k);
    const long planes = (long)s->N * s->C;
#pragma omp parallel for schedule(static)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * H * W;
        float *yp = y + (size_t)pl * P * Q;
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                float acc = 0.0f;
                for (int r = 0; r < s->k; r++) {
                    int h = p * s->stride + r - s->pad;
                    if (h < 0 || h >= H) continue;
                    for (int t = 0; t < s->k; t++) {
                        int w = q * s->stride + t - s->pad;
                        if (w >= 0 && w < W) acc += xp[h * W + w];
                    }
                }
                yp[p * Q + q] = acc * inv;
            }
    }
}

// dy: [N,C,P,Q] -> dx: [N,C,H,W] += dy/(k*k) spread over each window's real cells
void avgpool2d_backward(const pool2d_shape *s, const float *dy, float *dx) {
    const int H = s->H, W = s->W, P = s->P, Q = s->Q;
    const float inv = 1.0f / (float)(s->k * s->k);
    const long planes = (long)s->N * s->C;
#pragma omp parallel for schedule(static)
    for (long pl = 0; pl < planes; pl++) {
        const float *dp = dy + (size_t)pl * P * Q;
        float *gp = dx + (size_t)pl * H * W;
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                float g = dp[p * Q + q] * inv;
                for (int r = 0; r < s->k; r++) {
                    int h = p * s->stride + r - s->pad;
                    if (h < 0 || h >= H) continue;
                    for (int t = 0; t < s->k; t++) {
                        int w = q * s->stride + t - s->pad;
                        if (w >= 0 && w < W) gp[h * W + w] += g;
                    }
                }
            }
    }
}

// x: [N,C,HW] -> y: [N,C]
void global_avgpool_forward(int N, int C, int HW, const float *x, float *y) {
    const long planes = (long)N * C;
#pragma omp parallel for schedule(static)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * HW;
        double acc = 0.0;
        for (int i = 0; i < HW; i++) acc += xp[i];
        y[pl] = (float)(acc / HW);
    }
}

// dy: [N,C] -> dx: [N,C,HW] += dy/HW
void global_avgpool_backward(int N, int C, int HW, const float *dy, float *dx) {
    const long planes = (long)N * C;
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static)
    for (long pl = 0; pl < planes; pl++) {
        float g = dy[pl] * inv;
        float *gp = dx + (size_t)pl * HW;
        for (int i = 0; i < HW; i++) gp[i] += g;
    }
}
