/* conv2d as one small GEMM per kernel tap, over only the output positions that tap reaches.
 *
 *   y[n,k,p,q] = b[k] + sum_(r,s) sum_c W[k,c,r,s] x[n,c, p*st + r - pad, q*st + s - pad]
 *
 * For a fixed tap t = (r, s) the positions whose input lies inside the map form a rectangle
 * [p0,p1) x [q0,q1); outside it the tap reads the zero padding. On small maps most
 * (tap, position) pairs are padding: of VGG's 2x2 maps' 36 pairs per image only 16 are real.
 * im2col multiplies all 36. Winograd F(2x2,3x3) also does 16 products per image there, but
 * it first turns the K x C x 9 weights into 16 x K x C transformed ones, which its GEMMs then
 * pack again, and its dW comes back through the inverse transform. On these layers the
 * weights are the big operand and the per-image work is small, so that weight-sized traffic,
 * paid once per call, is what costs (NOTES "Session 7").
 *
 * Here the weights are read in place: the GEMMs are our own register tiles (tile_gemm.c) that
 * broadcast weights from any strides, so w is never copied, reordered or packed. With X_t,
 * dY_t the inputs and output gradients gathered over tap t's rectangle (m = (n, p, q)):
 *
 *   forward   Y_t  [K, M_t] = W_t [K, C]   X_t [C, M_t]    W_t[k][c] = w[(k*C + c)*T + t]
 *   dx        dX_t [C, M_t] = W_t^T [C, K] dY_t [K, M_t]
 *   dW        dW_t [K, C]   = dY_t [K, M_t] X_t^T [M_t, C]
 *
 * and each product is added at its tap's positions (y, dx) or stored at its tap's slot of w's
 * layout (dw, all taps of a tile at once, so dw is written once, contiguously). A block of 6
 * kernels holds all its taps (6 x 9C floats, ~110 KB for C = 512): it is read from memory
 * once and from cache for the 9 taps. Threads take contiguous ranges of K (forward, dW) or C
 * (dx), so every output element is written by one thread in a fixed order: the results do not
 * depend on the thread count. */
#include "conv2d_internal.h"
#include "tile_gemm.h"
#include <omp.h>
#include <stdint.h>
#include <string.h>

enum {
    TAPS_MAX = 121, /* kernels up to 11x11 */
    TR = TILE_ROWS, /* rows of a register tile (output channels, or input channels for dx) */
    TC = TILE_COLS, /* columns of a register tile */
};

/* Where tap t = r*S + s reaches: output rows [p0,p1), columns [q0,q1); m = the number of
 * such positions in the batch, ld = m rounded up to whole tiles; off = the tap's first
 * column in the gathered matrices (sum of the earlier taps' ld), first = its first row in
 * the transposed gather (sum of the earlier taps' m). */
typedef struct {
    int r, s, p0, p1, q0, q1;
    size_t m, ld, off, first;
} tap_rect;

/* the geometry of one call: the taps, and the sums over them */
typedef struct {
    tap_rect rect[TAPS_MAX];
    int T;
    size_t cols;     /* sum of ld: columns of the gathered X (forward) and dY */
    size_t products; /* sum of m: rows of the transposed gathered X (dW) */
    size_t cpad;     /* C rounded up to whole tiles: the transposed X's row length */
} tap_geom;

static size_t round_up(size_t n, size_t m) {
    return (n + m - 1) / m * m;
}

bool conv2d_taps_applicable(const conv2d_shape *s) {
    return s->R * s->S <= TAPS_MAX && s->P > 0 && s->Q > 0 && s->stride > 0 && s->N > 0;
}

static void geometry(const conv2d_shape *s, tap_geom *g) {
    g->T = s->R * s->S;
    g->cols = g->products = 0;
    g->cpad = round_up((size_t)s->C, TC);
    for (int r = 0; r < s->R; r++)
        for (int t = 0; t < s->S; t++) {
            tap_rect *e = &g->rect[r * s->S + t];
            e->r = r, e->s = t;
            conv2d_valid_range(s->stride, r - s->pad, s->H, s->P, &e->p0, &e->p1);
            conv2d_valid_range(s->stride, t - s->pad, s->W, s->Q, &e->q0, &e->q1);
            e->m = (size_t)s->N * (size_t)(e->p1 - e->p0) * (size_t)(e->q1 - e->q0);
            e->ld = round_up(e->m, TC);
            e->off = g->cols, e->first = g->products;
            g->cols += e->ld, g->products += e->m;
        }
}

size_t conv2d_taps_products(const conv2d_shape *s) {
    tap_geom g;
    if (!conv2d_taps_applicable(s)) return 0;
    geometry(s, &g);
    return g.products / (size_t)s->N;
}

/* forward: X gathered [C, cols]; backward: X^T gathered [products, cpad] and dY gathered
 * [K, cols] */
static size_t shared_floats(const conv2d_shape *s, const tap_geom *g) {
    size_t fwd = (size_t)s->C * g->cols;
    size_t bwd = g->products * g->cpad + round_up((size_t)s->K * g->cols, 16);
    return round_up(fwd > bwd ? fwd : bwd, 16);
}

/* per thread: dW's tiles of all taps [T][TR][TC] */
static size_t slice_floats(const tap_geom *g) {
    return round_up((size_t)g->T * TR * TC, 16);
}

size_t conv2d_taps_workspace_floats(const conv2d_shape *s, int nthreads) {
    tap_geom g;
    if (!conv2d_taps_applicable(s)) return 0;
    if (nthreads < 1) nthreads = 1;
    geometry(s, &g);
    return shared_floats(s, &g) + (size_t)nthreads * slice_floats(&g);
}

/* threads: OpenMP's count, no more than the workspace holds slices for (0: too small) */
static int pick_threads(const conv2d_shape *s, const tap_geom *g, size_t ws_floats) {
    const size_t fixed = shared_floats(s, g), slice = slice_floats(g);
    if (ws_floats < fixed + slice) return 0;
    int nt = omp_get_max_threads();
    if (nt < 1) nt = 1;
    size_t fit = (ws_floats - fixed) / slice;
    return (size_t)nt > fit ? (int)fit : nt;
}

/* thread tid's share [*a, *b) of n rows, in whole register tiles */
static void share(int n, int tid, int nth, int *a, int *b) {
    int units = (n + TR - 1) / TR;
    int u0 = (int)((long)units * tid / nth), u1 = (int)((long)units * (tid + 1) / nth);
    *a = u0 * TR < n ? u0 * TR : n;
    *b = u1 * TR < n ? u1 * TR : n;
}

/* The index of gathered column m of tap e inside a [N, rows, H, W] tensor (the output map
 * for y and dy, the input map for x and dx), at row 0. */
static size_t column_at(const conv2d_shape *s, const tap_rect *e, size_t m, int rows, bool input) {
    const size_t wq = (size_t)(e->q1 - e->q0), hp = (size_t)(e->p1 - e->p0);
    const size_t n = m / (hp * wq), pp = m / wq % hp, qq = m % wq;
    const int p = e->p0 + (int)pp, q = e->q0 + (int)qq;
    if (!input) return (n * rows * s->P + p) * s->Q + q;
    const int h = p * s->stride + e->r - s->pad, v = q * s->stride + e->s - s->pad;
    return (n * rows * s->H + h) * s->W + v;
}

/* src [N, rows, H, W] gathered for every tap into g [rows, cols]: g[row][off_t + m] = src at
 * column m of tap t (input cells with input, else output cells); columns m..ld zero */
static void gather_rows(const conv2d_shape *s, const tap_geom *g, const float *src, int rows,
                        bool input, float *dst) {
    const int H = input ? s->H : s->P, W = input ? s->W : s->Q, st = input ? s->stride : 1;
#pragma omp for schedule(static)
    for (int row = 0; row < rows; row++)
        for (int t = 0; t < g->T; t++) {
            const tap_rect *e = &g->rect[t];
            const int dh = input ? e->r - s->pad : 0, dv = input ? e->s - s->pad : 0;
            float *d = dst + (size_t)row * g->cols + e->off;
            for (int n = 0; n < s->N; n++) {
                const float *plane = src + ((size_t)n * rows + row) * H * W;
                for (int p = e->p0; p < e->p1; p++) {
                    const float *line = plane + (size_t)(p * st + dh) * W + dv;
                    for (int q = e->q0; q < e->q1; q++) *d++ = line[q * st];
                }
            }
            for (size_t m = e->m; m < e->ld; m++) *d++ = 0.0f;
        }
}

/* x [N, C, H, W] gathered transposed for every tap: g[first_t + m][c] over cpad columns
 * (c >= C zero): the rows dW's tiles run along input channels on */
static void gather_input_transposed(const conv2d_shape *s, const tap_geom *g, const float *x,
                                    float *dst) {
    const int C = s->C, HW = s->H * s->W;
#pragma omp for schedule(static)
    for (int n = 0; n < s->N; n++)
        for (int t = 0; t < g->T; t++) {
            const tap_rect *e = &g->rect[t];
            const size_t per_n = e->m / (size_t)s->N;
            float *d = dst + (e->first + (size_t)n * per_n) * g->cpad;
            for (int p = e->p0; p < e->p1; p++)
                for (int q = e->q0; q < e->q1; q++, d += g->cpad) {
                    const float *src = x + (size_t)n * C * HW +
                                       (size_t)(p * s->stride + e->r - s->pad) * s->W +
                                       (q * s->stride + e->s - s->pad);
                    for (int c = 0; c < C; c++) d[c] = src[(size_t)c * HW];
                    for (size_t c = (size_t)C; c < g->cpad; c++) d[c] = 0.0f;
                }
        }
}

/* dst[(row0 + j) * row_stride + column_at(m0 + l)] += out[j][l] for the tile's real rows and
 * columns (y: rows of K, output cells; dx: rows of C, input cells) */
static void scatter_tile(const conv2d_shape *s, const tap_rect *e, const float *out, int rows,
                         int all_rows, bool input, size_t m0, size_t row_stride, int row0,
                         float *dst) {
    const size_t mend = e->m - m0 < TC ? e->m - m0 : TC;
    for (size_t l = 0; l < mend; l++) {
        float *d = dst + column_at(s, e, m0 + l, all_rows, input) + (size_t)row0 * row_stride;
        for (int j = 0; j < rows; j++) d[(size_t)j * row_stride] += out[j * TC + l];
    }
}

/* The passes that add tiles at tap positions: the forward (rows = output channels, b = X
 * gathered, into y) and dx (rows = input channels, b = dY gathered, into dx). A block of TR
 * rows of w (~110 KB for 512 channels and 9 taps) comes from memory for the first tap and
 * from cache for the others. */
static void taps_into(const conv2d_shape *s, const tap_geom *g, const float *w, bool dx_pass,
                      int row0, int row1, const float *b, float *dst) {
    const int C = s->C, K = s->K, T = g->T;
    const int inner = dx_pass ? K : C, all_rows = dx_pass ? C : K;
    const size_t rsa = dx_pass ? (size_t)T : (size_t)C * T,
                 csa = dx_pass ? (size_t)C * T : (size_t)T;
    const size_t row_stride = dx_pass ? (size_t)s->H * s->W : (size_t)s->P * s->Q;
    float out[TR * TC];
    const float *a[TR];
    for (int r = row0; r < row1; r += TR) {
        const int rows = row1 - r < TR ? row1 - r : TR;
        for (int t = 0; t < T; t++) {
            tile_rows(w + (size_t)r * rsa + t, rows, rsa, a);
            for (size_t m0 = 0; m0 < g->rect[t].m; m0 += TC) {
                tile_kernel(inner, a, csa, b + g->rect[t].off + m0, g->cols, out, TC);
                scatter_tile(s, &g->rect[t], out, rows, all_rows, dx_pass, m0, row_stride, r, dst);
            }
        }
    }
}

bool conv2d_taps_forward(const conv2d_shape *s, const float *x, const float *w, const float *b,
                         float *y, float *ws, size_t ws_floats) {
    tap_geom g;
    if (!ws || !conv2d_taps_applicable(s)) return false;
    geometry(s, &g);
    const int nt = pick_threads(s, &g, ws_floats);
    if (nt < 1) return false;
    const int K = s->K, PQ = s->P * s->Q, N = s->N;
    float *xg = ws; // [C, cols]

#pragma omp parallel num_threads(nt)
    {
        gather_rows(s, &g, x, s->C, true, xg); // ends in a barrier
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        int k0, k1;
        share(K, tid, nth, &k0, &k1);
        for (int n = 0; n < N; n++)
            for (int k = k0; k < k1; k++) {
                float *dst = y + ((size_t)n * K + k) * PQ;
                const float bk = b ? b[k] : 0.0f;
                for (int i = 0; i < PQ; i++) dst[i] = bk;
            }
        taps_into(s, &g, w, false, k0, k1, xg, y);
    }
    return true;
}

/* dw [k0..k1, C, T] = (or +=) tiles of TR output x TC input channels of every tap (a = dY's
 * rows, b = X^T's rows), all taps of a tile first so that dw is written once, in order */
static void dw_rows(const conv2d_shape *s, const tap_geom *g, const float *dyg, const float *xt,
                    int k0, int k1, bool set, float *tiles, float *dw) {
    const int C = s->C, T = g->T;
    const float *a[TR];
    for (int k = k0; k < k1; k += TR) {
        const int rows = k1 - k < TR ? k1 - k : TR;
        for (int c = 0; c < C; c += TC) {
            const int lanes = C - c < TC ? C - c : TC;
            for (int t = 0; t < T; t++) {
                const tap_rect *e = &g->rect[t];
                tile_rows(dyg + (size_t)k * g->cols + e->off, rows, g->cols, a);
                tile_kernel((int)e->m, a, 1, xt + e->first * g->cpad + c, g->cpad,
                            tiles + (size_t)t * TR * TC, TC);
            }
            for (int j = 0; j < rows; j++)
                for (int l = 0; l < lanes; l++) {
                    float *d = dw + ((size_t)(k + j) * C + c + l) * T;
                    const float *src = tiles + (size_t)j * TC + l;
                    for (int t = 0; t < T; t++)
                        d[t] = (set ? 0.0f : d[t]) + src[(size_t)t * TR * TC];
                }
        }
    }
}

bool conv2d_taps_backward(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, bool set, float *ws, size_t ws_floats) {
    tap_geom g;
    if (!ws || !conv2d_taps_applicable(s)) return false;
    geometry(s, &g);
    const int nt = pick_threads(s, &g, ws_floats);
    if (nt < 1) return false;
    float *xt = ws;                        // [products, cpad]
    float *dyg = xt + g.products * g.cpad; // [K, cols]
    float *slices = ws + shared_floats(s, &g);
    const size_t slice = slice_floats(&g);

#pragma omp parallel num_threads(nt)
    {
        gather_input_transposed(s, &g, x, xt);
        gather_rows(s, &g, dy, s->K, false, dyg); // ends in a barrier
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        float *tiles = slices + (size_t)tid * slice; // [T, TR, TC]
        int k0, k1, c0, c1;
        share(s->K, tid, nth, &k0, &k1);
        dw_rows(s, &g, dyg, xt, k0, k1, set, tiles, dw);
        share(s->C, tid, nth, &c0, &c1);
        if (dx) taps_into(s, &g, w, true, c0, c1, dyg, dx);
    }
    return true;
}
