/* Direct convolution for small stride-1 layers (lenet5's 1->6 and 6->16 5x5 convs).
 *
 * Why: with C*R*S = 25..150 and K = 6..16 the im2col path spends more time building the
 * column matrix (25x the input for C = 1), copying dy into chunks and scattering col2im than
 * in its thin GEMMs. Here the input plane is copied once, zero-padded, and every output is a
 * dot product over "taps" read straight from it:
 *
 *   flat layout: a padded plane xp [Hp, Wp] read as one row of Hp*Wp floats. Output (p, q)
 *   sits at o = p*Wp + q, and tap (c, r, t) of it at xp[c][o + r*Wp + t]. Computing all o in
 *   [0, L), L = (P-1)*Wp + Q, makes every loop a long contiguous one; the Wp - Q columns per
 *   row that are not outputs are computed and dropped.
 *
 * forward  out[k][o]  = sum_taps w[k][tap] * xp[o + off(tap)]          (then + b, unflatten)
 * dx       U[tap][o] = sum_k w[k][tap] * dyf[k][o] with the same kernel, then each tap's row
 *          added into the padded dx at its offset (dyf: dy in the flat layout, zero in the
 *          dropped columns, so they add nothing)
 * dW       dw[k][tap] = sum_n sum_o dy[k][o] * xp[o + off(tap)], vectorised over positions
 *          (K <= 8) or over 16 output channels of a transposed dy (K > 8)
 *
 * The blocks are GCC/Clang vector extensions (16 floats): the register tiles must stay in
 * registers, which plain loops with runtime bounds do not guarantee; on targets without
 * 512-bit vectors the compiler splits them. Samples go to threads in contiguous ranges; dW
 * and db partials are per thread and added in thread order, so results are deterministic for
 * a thread count. */
#include "conv2d_internal.h"
#include <omp.h>
#include <stdint.h>
#include <string.h>

enum { VL = 16, NV = 3, OB = NV * VL, KB = 6, DKB = 3, DTB = 5, TB = 8, SLACK = OB };

static int round_up(int n, int m) {
    return (n + m - 1) / m * m;
}

/* the geometry of one pass: input planes [Cin, Hp, Wp] (padded), L flat outputs (rounded up
 * to OB), taps Cin*R*S */
typedef struct {
    int Cin, Hp, Wp, R, S, L, Lp;
} flat_geom;

static flat_geom geom(int Cin, int Hp, int Wp, int R, int S) {
    flat_geom g = {Cin, Hp, Wp, R, S, 0, 0};
    g.L = (Hp - R) * Wp + (Wp - S + 1);
    g.Lp = round_up(g.L, OB);
    return g;
}

static size_t plane_floats(const flat_geom *g) {
    return (size_t)g->Cin * g->Hp * g->Wp + SLACK; // the last blocks read up to OB past
}

static flat_geom fwd_geom(const conv2d_shape *s) {
    return geom(s->C, s->H + 2 * s->pad, s->W + 2 * s->pad, s->R, s->S);
}

bool conv2d_direct_applicable(const conv2d_shape *s) {
    return s->stride == 1 && s->pad <= s->R - 1 && s->pad <= s->S - 1 && s->P > 0 && s->Q > 0;
}

/* x [C, H, W] -> xp [C, H+2ph, W+2pw] zero-padded, then SLACK zeros (read by the last
 * blocks; zeros keep the dropped outputs finite, which dW needs since 0 * inf is NaN) */
static void pad_planes(const float *x, int C, int H, int W, int ph, int pw, float *xp) {
    const int Hp = H + 2 * ph, Wp = W + 2 * pw;
    memset(xp, 0, sizeof(float) * ((size_t)C * Hp * Wp + SLACK));
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++)
            memcpy(xp + ((size_t)c * Hp + h + ph) * Wp + pw, x + ((size_t)c * H + h) * W,
                   sizeof(float) * W);
}

// offsets of the taps (c, r, t) in the padded input, padded with repeats of tap 0 to ntp
static void tap_offsets(const flat_geom *g, int *off, int ntp) {
    int j = 0;
    for (int c = 0; c < g->Cin; c++)
        for (int r = 0; r < g->R; r++)
            for (int t = 0; t < g->S; t++) off[j++] = (c * g->Hp + r) * g->Wp + t;
    for (; j < ntp; j++) off[j] = 0;
}

/* out [Kp, Lp] = wt^T * taps: wt [ntaps, Kp] (Kp a multiple of KB), xp the padded planes.
 * Tile: KB = 6 output channels x NV = 3 vectors of positions = 18 accumulators; per tap 3 loads
 * of x and 6 broadcasts of a weight. 6 x 48 beat 8 x 32, 6 x 32, 6 x 64 on lenet5 (K = 6 and
 * the 150 taps of dx need no padded rows; 48 rounds conv2's 136 flat positions to 144). */
static void direct_rows(const flat_geom *g, const float *xp, const int *off, int ntaps,
                        const float *wt, int Kp, float *out) {
    for (int o0 = 0; o0 < g->Lp; o0 += OB) {
        const float *xo = xp + o0;
        for (int k0 = 0; k0 < Kp; k0 += KB) {
            v16 acc[KB][NV];
            memset(acc, 0, sizeof acc);
            for (int j = 0; j < ntaps; j++) {
                v16 xv[NV];
                for (int v = 0; v < NV; v++) xv[v] = load16(xo + off[j] + v * VL);
                const float *wk = wt + (size_t)j * Kp + k0;
                for (int kb = 0; kb < KB; kb++)
                    for (int v = 0; v < NV; v++) acc[kb][v] += xv[v] * wk[kb];
            }
            for (int kb = 0; kb < KB; kb++)
                for (int v = 0; v < NV; v++)
                    store16(out + (size_t)(k0 + kb) * g->Lp + o0 + v * VL, acc[kb][v]);
        }
    }
}

/* accv [Kp, ntp] (vectors) += dyf [Kp, Lp] x taps: lane i of accv[k][j] sums the positions
 * o = i (mod 16). Tile: DKB channels x DTB taps = 15 accumulators, per 16 positions DKB + DTB
 * loads. ntp and Kp are multiples of DTB and DKB; 3 x 5 fits a 6-channel 5x5 conv with no
 * padded rows (4 x 4 padded it to 8 x 28: 0.63 -> 0.50 ms for lenet5's conv1 backward). */
static void direct_dw(const flat_geom *g, const float *xp, const int *off, int ntp,
                      const float *dyf, int Kp, v16 *accv) {
    for (int k0 = 0; k0 < Kp; k0 += DKB)
        for (int j0 = 0; j0 < ntp; j0 += DTB) {
            v16 acc[DKB][DTB];
            memset(acc, 0, sizeof acc);
            for (int o = 0; o < g->Lp; o += VL) {
                v16 xv[DTB], dv[DKB];
                for (int jb = 0; jb < DTB; jb++) xv[jb] = load16(xp + o + off[j0 + jb]);
                for (int kb = 0; kb < DKB; kb++)
                    dv[kb] = load16(dyf + (size_t)(k0 + kb) * g->Lp + o);
                for (int kb = 0; kb < DKB; kb++)
                    for (int jb = 0; jb < DTB; jb++) acc[kb][jb] += dv[kb] * xv[jb];
            }
            for (int kb = 0; kb < DKB; kb++)
                for (int jb = 0; jb < DTB; jb++)
                    accv[(size_t)(k0 + kb) * ntp + j0 + jb] += acc[kb][jb];
        }
}

/* dwT [ntp, Kp] += taps x dyT, vectorised over output channels instead (K > 8): dyT [P*Q, Kp]
 * is dy transposed, so a 16-channel vector of dy times a broadcast x is one FMA. Unlike
 * direct_dw this reads x as broadcast scalars (no unaligned vector loads, which split cache
 * lines and which GCC reloaded for every FMA) and visits only the P*Q real outputs. Tile: TB
 * taps x 16 channels, per output one dy load and TB broadcasts, addressed from TB base pointers
 * (8 stay in registers; 16 tap offsets were reloaded from memory per FMA). ntp is a multiple of
 * TB, Kp of 16. */
static void direct_dw_by_k(const float *xp, const int *off, int ntp, int P, int Q, int Wp,
                           const float *dyT, int Kp, float *dwT) {
    for (int kv = 0; kv < Kp; kv += VL)
        for (int j0 = 0; j0 < ntp; j0 += TB) {
            v16 acc[TB];
            memset(acc, 0, sizeof acc);
            const float *xj[TB]; // one base pointer per tap: TB of them fit in registers
            for (int jb = 0; jb < TB; jb++) xj[jb] = xp + off[j0 + jb];
            for (int p = 0; p < P; p++) {
                const float *dr = dyT + (size_t)p * Q * Kp + kv;
                for (int q = 0; q < Q; q++) {
                    const v16 d = load16(dr + (size_t)q * Kp);
                    const int o = p * Wp + q;
                    for (int jb = 0; jb < TB; jb++) acc[jb] += d * xj[jb][o];
                }
            }
            for (int jb = 0; jb < TB; jb++) {
                float *dst = dwT + (size_t)(j0 + jb) * Kp + kv;
                store16(dst, load16(dst) + acc[jb]);
            }
        }
}

/* ---------------- workspace: [shared weights | per-thread slices], each 16-float aligned */

static size_t r16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

static int kp_fwd(const conv2d_shape *s) {
    return round_up(s->K, KB);
}
// dx: U [C*R*S, Lp] = w^T dyf has one row per tap, padded to the register tile
static int kp_dx(const conv2d_shape *s) {
    return round_up(s->C * s->R * s->S, KB);
}
// which dW kernel: by output channels for more than 8 of them (lenet5's conv2), by positions
// below (conv1: 6 channels would fill 6 of 16 lanes)
static bool dw_by_k(const conv2d_shape *s) {
    return s->K > 8;
}
static int ntp_dw(const conv2d_shape *s) {
    return round_up(s->C * s->R * s->S, dw_by_k(s) ? TB : DTB);
}
static int kp_dw(const conv2d_shape *s) {
    return round_up(s->K, dw_by_k(s) ? VL : DKB);
}
// the dy copy (dyf [Kp, Lp] or dyT [P*Q, Kp]) and the accumulators (accv or dwT), in floats
static size_t dyw_floats(const conv2d_shape *s) {
    const flat_geom g = fwd_geom(s);
    return (size_t)kp_dw(s) * (dw_by_k(s) ? (size_t)s->P * s->Q : (size_t)g.Lp);
}
static size_t accw_floats(const conv2d_shape *s) {
    return (size_t)kp_dw(s) * ntp_dw(s) * (dw_by_k(s) ? 1 : VL);
}

static size_t fwd_shared(const conv2d_shape *s) {
    const int ntaps = s->C * s->R * s->S;
    return r16((size_t)ntaps * kp_fwd(s)) + r16((size_t)ntaps); // wt, offsets (as int)
}
static size_t fwd_slice(const conv2d_shape *s) {
    const flat_geom g = fwd_geom(s);
    return r16(plane_floats(&g)) + r16((size_t)kp_fwd(s) * g.Lp);
}
// [wu [K, kp_dx] | tap offsets of wu (K) | tap offsets of dW (ntp)], ints stored as floats
static size_t bwd_shared(const conv2d_shape *s) {
    return r16((size_t)s->K * kp_dx(s)) + r16((size_t)s->K) + r16((size_t)ntp_dw(s));
}
/* [dW_t [K, CRS] | db_t [K] doubles | xp | dyf or dyT (dW) | dyu [K, Lp] | U [kp_dx, Lp] |
 * dxp | accv or dwT] */
static size_t bwd_slice(const conv2d_shape *s) {
    const flat_geom g = fwd_geom(s);
    size_t n = r16((size_t)s->K * s->C * s->R * s->S) + r16(2 * (size_t)s->K);
    n += r16(plane_floats(&g)) + r16(dyw_floats(s));
    n += r16((size_t)s->K * g.Lp) + r16((size_t)kp_dx(s) * g.Lp) + r16(plane_floats(&g));
    return n + r16(accw_floats(s));
}

size_t conv2d_direct_workspace_floats(const conv2d_shape *s, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    const size_t f = fwd_shared(s) + (size_t)nthreads * fwd_slice(s);
    const size_t b = bwd_shared(s) + (size_t)nthreads * bwd_slice(s);
    return f > b ? f : b;
}

static int threads_for(const conv2d_shape *s, size_t shared, size_t slice, size_t ws_floats) {
    if (ws_floats < shared + slice) return 0;
    int nt = omp_get_max_threads();
    if (nt > s->N) nt = s->N;
    if ((size_t)nt > (ws_floats - shared) / slice) nt = (int)((ws_floats - shared) / slice);
    return nt < 1 ? 1 : nt;
}

/* ---------------- forward */

bool conv2d_direct_forward(const conv2d_shape *s, const float *x, const float *w, const float *b,
                           float *y, float *ws, size_t ws_floats) {
    const int nt = ws ? threads_for(s, fwd_shared(s), fwd_slice(s), ws_floats) : 0;
    if (nt < 1) return false;
    const flat_geom g = fwd_geom(s);
    const int K = s->K, Kp = kp_fwd(s), ntaps = s->C * s->R * s->S, P = s->P, Q = s->Q;
    float *wt = ws; // [ntaps, Kp]: w transposed, zero columns for k >= K
    int *off = (int *)(ws + r16((size_t)ntaps * Kp));
    memset(wt, 0, sizeof(float) * (size_t)ntaps * Kp);
    for (int k = 0; k < K; k++)
        for (int j = 0; j < ntaps; j++) wt[(size_t)j * Kp + k] = w[(size_t)k * ntaps + j];
    tap_offsets(&g, off, ntaps);
    float *slices = ws + fwd_shared(s);
    const size_t slice = fwd_slice(s), in_n = (size_t)s->C * s->H * s->W;
    const size_t out_n = (size_t)K * P * Q;

#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        float *xp = slices + (size_t)tid * slice, *out = xp + r16(plane_floats(&g));
        const int n0 = (int)((int64_t)s->N * tid / nth),
                  n1 = (int)((int64_t)s->N * (tid + 1) / nth);
        for (int n = n0; n < n1; n++) {
            pad_planes(x + n * in_n, s->C, s->H, s->W, s->pad, s->pad, xp);
            direct_rows(&g, xp, off, ntaps, wt, Kp, out);
            float *yn = y + n * out_n;
            for (int k = 0; k < K; k++) {
                const float bk = b ? b[k] : 0.0f;
                for (int p = 0; p < P; p++) {
                    const float *src = out + (size_t)k * g.Lp + (size_t)p * g.Wp;
                    float *dst = yn + ((size_t)k * P + p) * Q;
                    for (int q = 0; q < Q; q++) dst[q] = src[q] + bk;
                }
            }
        }
    }
    return true;
}

/* ---------------- backward: dW (and dx) per sample, dW partials per thread */

// dy_n [K, P, Q] -> dyf [Kp, Lp] in the flat layout (row stride Wp), zeros elsewhere
static void flatten_dy(const conv2d_shape *s, const flat_geom *g, const float *dyn, int Kp,
                       float *dyf) {
    memset(dyf, 0, sizeof(float) * (size_t)Kp * g->Lp);
    for (int k = 0; k < s->K; k++)
        for (int p = 0; p < s->P; p++)
            memcpy(dyf + (size_t)k * g->Lp + (size_t)p * g->Wp, dyn + ((size_t)k * s->P + p) * s->Q,
                   sizeof(float) * s->Q);
}

// dy_n [K, P, Q] -> dyT [P*Q, Kp], zero lanes for k >= K
static void transpose_dy(const conv2d_shape *s, const float *dyn, int Kp, float *dyT) {
    const int PQ = s->P * s->Q;
    if (Kp > s->K)
        for (int i = 0; i < PQ; i++)
            memset(dyT + (size_t)i * Kp + s->K, 0, sizeof(float) * (Kp - s->K));
    for (int k = 0; k < s->K; k++)
        for (int i = 0; i < PQ; i++) dyT[(size_t)i * Kp + k] = dyn[(size_t)k * PQ + i];
}

/* U [ntaps, Lp] -> dxp [C, Hp, Wp] += each tap's row shifted to its offset (the adjoint of
 * reading taps), then dx_n [C, H, W] += dxp without its padding. U is zero at the dropped
 * positions (dyf is), so they add nothing. */
static void scatter_taps(const conv2d_shape *s, const flat_geom *g, const int *off, const float *U,
                         float *dxp, float *dxn) {
    const int ntaps = s->C * s->R * s->S;
    memset(dxp, 0, sizeof(float) * (size_t)s->C * g->Hp * g->Wp);
    for (int j = 0; j < ntaps; j++) {
        float *restrict dst = dxp + off[j];
        const float *restrict src = U + (size_t)j * g->Lp;
        for (int o = 0; o < g->L; o++) dst[o] += src[o];
    }
    for (int c = 0; c < s->C; c++)
        for (int h = 0; h < s->H; h++) {
            const float *src = dxp + ((size_t)c * g->Hp + h + s->pad) * g->Wp + s->pad;
            float *dst = dxn + ((size_t)c * s->H + h) * s->W;
            for (int v = 0; v < s->W; v++) dst[v] += src[v];
        }
}

bool conv2d_direct_backward(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db, float *ws, size_t ws_floats) {
    // the dW accumulators are vectors: a workspace off 64-byte alignment goes to im2col
    const bool aligned = ((uintptr_t)ws & 63) == 0;
    const int nt = ws && aligned ? threads_for(s, bwd_shared(s), bwd_slice(s), ws_floats) : 0;
    if (nt < 1) return false;
    const flat_geom gf = fwd_geom(s);
    const int K = s->K, C = s->C, ntaps = C * s->R * s->S;
    const int Kpx = kp_dx(s), Kpw = kp_dw(s), ntp = ntp_dw(s);
    const bool by_k = dw_by_k(s);
    /* dx as U = w^T dyf (direct_rows with the K rows of dyf as its taps, offsets k*Lp, and
     * wu [K, Kpx] = w with padded rows as weights), then scatter_taps: about half the FMAs of
     * correlating a zero-padded dy with the flipped kernel. */
    float *wu = ws;
    int *offu = (int *)(ws + r16((size_t)K * Kpx));
    int *offw = (int *)(ws + r16((size_t)K * Kpx) + r16((size_t)K));
    for (int k = 0; k < K; k++) {
        memcpy(wu + (size_t)k * Kpx, w + (size_t)k * ntaps, sizeof(float) * ntaps);
        memset(wu + (size_t)k * Kpx + ntaps, 0, sizeof(float) * (Kpx - ntaps));
        offu[k] = k * gf.Lp;
    }
    tap_offsets(&gf, offw, ntp); // the first ntaps are also where scatter_taps adds U's rows
    float *slices = ws + bwd_shared(s);
    const size_t slice = bwd_slice(s), in_n = (size_t)C * s->H * s->W;
    const size_t out_n = (size_t)K * s->P * s->Q;
    const size_t db_off = r16((size_t)K * ntaps), PQ = (size_t)s->P * s->Q;

    /* One parallel region for dW, dx, db and the reductions (a fork/join less per step for
     * each reduction; under contention each costs a wait for a descheduled thread). */
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads(); // nth may be < nt
        float *dw_t = slices + (size_t)tid * slice, *xp = dw_t + db_off + r16(2 * (size_t)K);
        double *db_t = (double *)(dw_t + db_off);
        memset(db_t, 0, sizeof(double) * K);
        float *dyw = xp + r16(plane_floats(&gf)), *dyu = dyw + r16(dyw_floats(s));
        float *U = dyu + r16((size_t)K * gf.Lp), *dxp = U + r16((size_t)Kpx * gf.Lp);
        float *accw = dxp + r16(plane_floats(&gf));
        memset(accw, 0, sizeof(float) * accw_floats(s));
        const int n0 = (int)((int64_t)s->N * tid / nth),
                  n1 = (int)((int64_t)s->N * (tid + 1) / nth);
        for (int n = n0; n < n1; n++) {
            const float *dyn = dy + n * out_n;
            for (int k = 0; db && k < K; k++) {
                const float *d = dyn + k * PQ;
                double plane = 0.0;
#pragma omp simd reduction(+ : plane)
                for (size_t i = 0; i < PQ; i++) plane += d[i];
                db_t[k] += plane;
            }
            pad_planes(x + n * in_n, C, s->H, s->W, s->pad, s->pad, xp);
            if (by_k) {
                transpose_dy(s, dyn, Kpw, dyw);
                direct_dw_by_k(xp, offw, ntp, s->P, s->Q, gf.Wp, dyw, Kpw, accw);
            } else {
                flatten_dy(s, &gf, dyn, Kpw, dyw);
                direct_dw(&gf, xp, offw, ntp, dyw, Kpw, (v16 *)accw);
            }
            if (!dx) continue;
            flatten_dy(s, &gf, dyn, K, dyu);
            direct_rows(&gf, dyu, offu, K, wu, Kpx, U);
            scatter_taps(s, &gf, offw, U, dxp, dx + n * in_n);
        }
        // -> this thread's dW [K, ntaps]: dwT transposed, or accv's lanes in a fixed order
        for (int k = 0; k < K; k++)
            for (int j = 0; j < ntaps; j++) {
                float sum = 0.0f;
                if (by_k) {
                    sum = accw[(size_t)j * Kpw + k];
                } else {
                    const v16 a = ((const v16 *)accw)[(size_t)k * ntp + j];
                    for (int i = 0; i < VL; i++) sum += a[i];
                }
                dw_t[(size_t)k * ntaps + j] = sum;
            }
#pragma omp barrier
        // dw += sum_t dW_t, db += sum_t db_t, in thread order (fixed for a thread count)
        const long nw = (long)K * ntaps;
#pragma omp for schedule(static)
        for (long i = 0; i < nw; i++) {
            float acc = 0.0f;
            for (int t = 0; t < nth; t++) acc += slices[(size_t)t * slice + i];
            dw[i] += acc;
        }
#pragma omp single nowait
        for (int k = 0; db && k < K; k++) {
            double acc = 0.0;
            for (int t = 0; t < nth; t++)
                acc += ((const double *)(slices + (size_t)t * slice + db_off))[k];
            db[k] += (float)acc;
        }
    }
    return true;
}
