/* conv2d: im2col + SGEMM fast path (direct GEMM for 1x1/stride 1/pad 0), OpenMP over samples,
 * Winograd for 3x3 stride-1 (conv2d_winograd.c), one GEMM per tap on small maps
 * (conv2d_taps.c), direct convolution for tiny layers (conv2d_direct.c), and the plain-loop
 * reference kernels the fast paths are tested against. */
#include "conv2d_internal.h"
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
 * never share a cache line. A thread works on a chunk of nb consecutive samples at a time:
 *   slice = [col: CRS x nb*PQ | buf: K x nb*PQ (only if nb > 1) | dW partial: K x CRS (bwd)]
 * Why chunks: in the deep layers PQ is 4..64, so per-sample GEMMs are thin (4..64 columns)
 * and the per-sample dW update is a rank-PQ update of the whole K x CRS matrix, both far from
 * GEMM speed. A chunk makes them one GEMM of nb*PQ columns. buf holds the chunk's y (forward)
 * or dy (backward) as [K, nb*PQ], the layout the GEMM needs, since tensors are [n, K, PQ]. */

enum { CHUNK_COLS = 256 };          /* GEMM columns a chunk aims for */
enum { TAPS_MAX_POSITIONS = 64 };   /* output positions per map up to which taps can run */
enum { TAPS_MAX_GATHER = 1 << 19 }; /* floats of gathered inputs up to which AUTO takes taps */
enum { TAPS_SMALL_WS = 1 << 20 };   /* workspace floats reserved for a forced taps path */

static bool taps_pays(const conv2d_shape *s); /* AUTO's choice of taps (below) */

/* A 1x1 stride-1 unpadded conv is a plain GEMM on the input plane: x_n [C,HW] is its own
 * im2col matrix, so a one-sample chunk needs no col buffer. */
static int is_direct(const conv2d_shape *s) {
    return s->R == 1 && s->S == 1 && s->stride == 1 && s->pad == 0;
}

static size_t round16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

static size_t col_floats(const conv2d_shape *s, int nb) {
    return is_direct(s) && nb == 1 ? 0 : (size_t)s->C * s->R * s->S * s->P * s->Q * nb;
}

static size_t buf_floats(const conv2d_shape *s, int nb) {
    return nb > 1 ? (size_t)s->K * s->P * s->Q * nb : 0;
}

static size_t dw_floats(const conv2d_shape *s) {
    return (size_t)s->K * s->C * s->R * s->S;
}

static size_t slice_floats(const conv2d_shape *s, int nb, bool backward) {
    return round16(col_floats(s, nb) + buf_floats(s, nb) + (backward ? dw_floats(s) : 0));
}

// the largest chunk plan() can ask for: about CHUNK_COLS columns, at most N samples
static int max_chunk(const conv2d_shape *s) {
    int pq = s->P * s->Q > 0 ? s->P * s->Q : 1;
    int nb = (CHUNK_COLS + pq - 1) / pq;
    return nb < s->N ? nb : (s->N > 0 ? s->N : 1);
}

size_t conv2d_workspace_floats(const conv2d_shape *s, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    size_t n = (size_t)nthreads * slice_floats(s, max_chunk(s), true);
    // Winograd runs after the im2col dW pass in backward, so the two share the workspace
    if (conv2d_wino_applicable(s)) {
        size_t nw = conv2d_wino_workspace_floats(s, nthreads);
        if (nw > n) n = nw;
    }
    /* the direct path only where it could be asked for (AUTO's small layers, and tests forcing
     * it on small shapes): its dx buffer is taps x positions, far too big to reserve for
     * every wide layer that will never run it (a forced DIRECT there falls back to im2col) */
    if (conv2d_direct_applicable(s) && s->C * s->R * s->S <= 256 && s->K <= 64) {
        size_t nd = conv2d_direct_workspace_floats(s, nthreads);
        if (nd > n) n = nd;
    }
    /* taps likewise: where AUTO takes it, and for a forced run on small maps when the room
     * is small (tests); resnet50's 7x7 maps, which AUTO leaves on Winograd, would otherwise
     * reserve 47 MB of gathered inputs at batch 32 */
    if (conv2d_taps_applicable(s) && s->P * s->Q <= TAPS_MAX_POSITIONS) {
        size_t nt = conv2d_taps_workspace_floats(s, nthreads);
        if ((taps_pays(s) || nt <= TAPS_SMALL_WS) && nt > n) n = nt;
    }
    return n;
}

static conv2d_algo g_algo = CONV2D_ALGO_AUTO;

void conv2d_set_algo(conv2d_algo algo) {
    g_algo = algo;
}

/* Winograd pays off once the GEMMs over channels dominate its per-tile transforms: below
 * 16 channels (the 1- and 3-channel input layers) im2col's one GEMM is as fast. It also
 * transforms all K*C kernels on every call, which the tiles must amortise. Since that
 * transform streams U and dx reads the forward's layout (conv2d_winograd.c), 16 tiles in the
 * batch are enough: VGG's 2x2-map layers (N * 4 positions) run faster on Winograd than on
 * im2col's 9 taps of which only 4 touch the map, at batch 32 and 64 alike (vgg16 step +8%, 1
 * thread; NOTES "Winograd on VGG's 2x2 maps"). The bound was N*P*Q >= 512 before. */
static bool wino_pays(const conv2d_shape *s) {
    return conv2d_wino_applicable(s) && s->C >= 16 && s->K >= 16 && (long)s->N * s->P * s->Q >= 64;
}

static bool use_wino(const conv2d_shape *s) {
    if (g_algo == CONV2D_ALGO_WINOGRAD) return conv2d_wino_applicable(s);
    return g_algo == CONV2D_ALGO_AUTO && wino_pays(s);
}

/* One GEMM per tap where the maps are so small that most (tap, position) pairs fall in the
 * padding and the taps multiply no more than Winograd would: VGG's 2x2 maps (16 products per
 * sample and (c, k), as Winograd's one tile) and 1x1 maps (1 against 16). Same multiply-adds
 * as Winograd, but the weights are read in place instead of transformed into 1.8x their size
 * and packed from there: that per-call traffic dominates these layers (NOTES "Session 7"). */
static bool taps_pays(const conv2d_shape *s) {
    if (!wino_pays(s)) return false;
    const size_t wino = (size_t)16 * ((s->P + 1) / 2) * ((s->Q + 1) / 2);
    const size_t products = conv2d_taps_products(s);
    /* The tiles stream the gathered inputs (or output gradients) once per block of 6
     * kernels: beyond ~2 MB they come from L3, not L2, and Winograd wins (bench_conv, 512
     * channels on 2x2 maps, forward + backward, Winograd on OpenBLAS's GEMMs: taps 27% faster
     * at batch 32, 3% at 64 (2 MB), 5% slower at 128). */
    const size_t channels = (size_t)(s->C > s->K ? s->C : s->K);
    return products <= wino && (size_t)s->N * products * channels <= TAPS_MAX_GATHER;
}

static bool use_taps(const conv2d_shape *s) {
    if (g_algo == CONV2D_ALGO_TAPS)
        return conv2d_taps_applicable(s) && s->P * s->Q <= TAPS_MAX_POSITIONS;
    return g_algo == CONV2D_ALGO_AUTO && taps_pays(s);
}

/* Direct convolution for small stride-1 layers: below ~160 taps and 16 output channels the
 * im2col copies (25x the input for a 1-channel 5x5 conv), chunk copies and col2im cost more
 * than the thin GEMMs they feed (lenet5: ~50% of the step). Winograd, where it applies, is
 * checked first. In backward, more than 8 channels take the dW kernel that transposes dy
 * sample by sample (scalar, strided), which large planes do not amortise: resnet20's 3->16
 * conv on 32x32 ran its backward in 2.3 ms against im2col's 1.5 (the forward is faster). */
static bool use_direct(const conv2d_shape *s, bool backward) {
    if (g_algo == CONV2D_ALGO_IM2COL || g_algo == CONV2D_ALGO_WINOGRAD ||
        !conv2d_direct_applicable(s))
        return false;
    if (g_algo == CONV2D_ALGO_DIRECT) return true;
    if (backward && s->K > 8 && s->P * s->Q > 256) return false;
    return s->R * s->S > 1 && s->C * s->R * s->S <= 160 && s->K <= 16;
}

/* Samples per chunk (nb) and threads (nt) for one call. nb aims at CHUNK_COLS GEMM columns
 * with a chunk count that is a multiple of the threads (so they get equal work); nt is what
 * OpenMP offers, no more than the chunks. A small workspace shrinks nb first (down to one
 * sample), then the threads; nt = 0 means it cannot hold even a one-sample slice. */
static void plan(const conv2d_shape *s, bool backward, const float *ws, size_t ws_floats,
                 int *nb_out, int *nt_out) {
    const int N = s->N;
    int nt = omp_get_max_threads();
    if (nt > N) nt = N;
    if (nt < 1) nt = 1;
    long cols = (long)N * s->P * s->Q;
    long nch = (cols + CHUNK_COLS - 1) / CHUNK_COLS;
    nch = (nch + nt - 1) / nt * nt;
    if (nch > N) nch = N;
    if (nch < 1) nch = 1;
    int nb = (int)((N + nch - 1) / nch);
    const size_t avail = ws ? ws_floats : 0;
    while (nb > 1 && (size_t)nt * slice_floats(s, nb, backward) > avail) nb--;
    const size_t slice = slice_floats(s, nb, backward); // 0: a direct forward needs none
    if (slice > 0 && (size_t)nt > avail / slice) nt = (int)(avail / slice);
    *nb_out = nb, *nt_out = nt;
}

/* Shared by im2col and col2im so both skip the same cells, and by the taps path */
void conv2d_valid_range(int stride, int off, int W, int Q, int *q0, int *q1) {
    int lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int hi = W - 1 - off >= 0 ? (W - 1 - off) / stride + 1 : 0;
    if (hi > Q) hi = Q;
    if (lo > Q) lo = Q;
    if (hi < lo) hi = lo;
    *q0 = lo, *q1 = hi;
}

/* x: [C,H,W] -> col: [C*R*S, P*Q] with rows ld apart (ld = P*Q for one sample; a chunk puts
 * sample i at columns i*PQ of rows nb*PQ long). col[(c,r,s), (p,q)] = x[c, p*st+r-pad,
 * q*st+s-pad] or 0. */
static void im2col(const conv2d_shape *s, const float *x, float *col, size_t ld) {
    const int st = s->stride, P = s->P, Q = s->Q;
    for (int c = 0; c < s->C; c++) {
        for (int r = 0; r < s->R; r++) {
            for (int t = 0; t < s->S; t++) {
                float *row = col + ((size_t)(c * s->R + r) * s->S + t) * ld;
                int q0, q1;
                conv2d_valid_range(st, t - s->pad, s->W, Q, &q0, &q1);
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

// col: [C*R*S, P*Q] (rows ld apart) -> dx: [C,H,W] += (the adjoint of im2col: windows add up)
static void col2im_add(const conv2d_shape *s, const float *col, size_t ld, float *dx) {
    const int st = s->stride, P = s->P, Q = s->Q;
    for (int c = 0; c < s->C; c++) {
        for (int r = 0; r < s->R; r++) {
            for (int t = 0; t < s->S; t++) {
                const float *row = col + ((size_t)(c * s->R + r) * s->S + t) * ld;
                int q0, q1;
                conv2d_valid_range(st, t - s->pad, s->W, Q, &q0, &q1);
                for (int p = 0; p < P; p++) {
                    int h = p * st + r - s->pad;
                    if (h < 0 || h >= s->H) continue;
                    const float *src = row + (size_t)p * Q;
                    float *dst = dx + ((size_t)c * s->H + h) * s->W;
                    const int off = t - s->pad;
                    if (st == 1) // contiguous: lets the compiler vectorise
                        for (int q = q0; q < q1; q++) dst[q + off] += src[q];
                    else
                        for (int q = q0; q < q1; q++) dst[q * st + off] += src[q];
                }
            }
        }
    }
}

/* ---------------- fast kernels */

size_t conv2d_kept_floats(const conv2d_shape *s) {
    /* s->N is the largest batch. use_wino only grows with N, so a shape it declines at N
     * never runs on Winograd with fewer samples; use_taps only shrinks with N (the gather
     * limit), so a shape on taps at N stays on taps, which reads w in place, whenever
     * Winograd would apply. */
    if (use_taps(s)) return 0;
    return use_wino(s) ? conv2d_wino_u_floats(s) : 0;
}

void conv2d_prepare_kept(const conv2d_shape *s, const float *w, conv2d_kept *keep, int part,
                         int parts) {
    if (keep->u) conv2d_wino_transform_part(s, w, keep->u, part, parts);
    keep->ready = true;
}

void conv2d_forward(const conv2d_shape *s, const float *x, const float *w, const float *b, float *y,
                    float *ws, size_t ws_floats) {
    conv2d_forward_keep(s, x, w, b, y, ws, ws_floats, NULL);
}

void conv2d_forward_keep(const conv2d_shape *s, const float *x, const float *w, const float *b,
                         float *y, float *ws, size_t ws_floats, conv2d_kept *keep) {
    float *u_keep = keep ? keep->u : NULL; /* sized by conv2d_kept_floats for any N <= cap */
    if (keep) keep->valid = false;
    if (use_taps(s)) {
        if (conv2d_taps_forward(s, x, w, b, y, ws, ws_floats)) return;
        u_keep = NULL; /* nothing was reserved for this shape */
    }
    if (use_wino(s) &&
        conv2d_wino_forward(s, x, w, b, y, ws, ws_floats, u_keep, keep && keep->ready)) {
        if (keep) keep->valid = u_keep != NULL;
        return;
    }
    if (use_direct(s, false) && conv2d_direct_forward(s, x, w, b, y, ws, ws_floats)) return;
    int nb, nt;
    plan(s, false, ws, ws_floats, &nb, &nt);
    if (nt < 1) {
        conv2d_forward_naive(s, x, w, b, y);
        return;
    }
    const int N = s->N, K = s->K, CRS = s->C * s->R * s->S, PQ = s->P * s->Q;
    const size_t in_n = (size_t)s->C * s->H * s->W, out_n = (size_t)K * PQ;
    const size_t slice = slice_floats(s, nb, false), ncol = col_floats(s, nb);
    const int nchunks = (N + nb - 1) / nb;

#pragma omp parallel for num_threads(nt) schedule(static)
    for (int ch = 0; ch < nchunks; ch++) {
        float *col = ws + (size_t)omp_get_thread_num() * slice;
        const int n0 = ch * nb, cnt = N - n0 < nb ? N - n0 : nb;
        if (nb == 1) {
            const float *xn = x + n0 * in_n;
            float *yn = y + n0 * out_n; // [K, P*Q]
            // bias first, then the GEMM accumulates on top (beta = 1)
            for (int k = 0; k < K; k++) {
                float bk = b ? b[k] : 0.0f;
                for (int i = 0; i < PQ; i++) yn[(size_t)k * PQ + i] = bk;
            }
            const float *xcol = xn; // direct path: x_n [C, H*W] is already [CRS, PQ]
            if (!is_direct(s)) {
                im2col(s, xn, col, PQ);
                xcol = col;
            }
            // y_n [K,PQ] += w [K,CRS] * col [CRS,PQ]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, PQ, CRS, 1.0f, w, CRS, xcol,
                        PQ, 1.0f, yn, PQ);
            continue;
        }
        // a chunk: col [CRS, cnt*PQ] -> out [K, cnt*PQ] -> y[n0+i][k] = out[k][i*PQ..] + b[k]
        const int ld = cnt * PQ;
        float *out = col + ncol;
        for (int i = 0; i < cnt; i++) im2col(s, x + (n0 + i) * in_n, col + (size_t)i * PQ, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, ld, CRS, 1.0f, w, CRS, col, ld,
                    0.0f, out, ld);
        for (int i = 0; i < cnt; i++)
            for (int k = 0; k < K; k++) {
                const float bk = b ? b[k] : 0.0f, *src = out + (size_t)k * ld + (size_t)i * PQ;
                float *dst = y + (n0 + i) * out_n + (size_t)k * PQ;
                for (int j = 0; j < PQ; j++) dst[j] = src[j] + bk;
            }
    }
}

static void backward_im2col(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db, float *ws, size_t ws_floats);

/* db [K] += (or = with set) sum of dy [N,K,P,Q] over n, p, q (in double, one thread per channel).
 * Each plane is summed as a vector reduction (one serial chain of double adds over N*P*Q values was
 * ~6% of a lenet5 step); the lanes and planes combine in an order fixed by the build. */
static void bias_grad(const conv2d_shape *s, const float *dy, float *db, bool set, int nt) {
    const int N = s->N, K = s->K, PQ = s->P * s->Q;
    const size_t out_n = (size_t)K * PQ;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int k = 0; k < K; k++) {
        double acc = 0.0;
        for (int n = 0; n < N; n++) {
            const float *d = dy + n * out_n + (size_t)k * PQ;
            double plane = 0.0;
#pragma omp simd reduction(+ : plane)
            for (int i = 0; i < PQ; i++) plane += d[i];
            acc += plane;
        }
        db[k] = (set ? 0.0f : db[k]) + (float)acc;
    }
}

void conv2d_backward(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                     float *dx, float *dw, float *db, float *ws, size_t ws_floats) {
    conv2d_backward_kept(s, x, w, dy, dx, dw, db, false, ws, ws_floats, NULL);
}

void conv2d_backward_kept(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db, bool set_grads, float *ws,
                          size_t ws_floats, const conv2d_kept *keep) {
    /* A workspace too small for taps or Winograd (sized for another shape) falls back to
     * im2col. keep->valid only ever comes from a Winograd forward. */
    if (use_taps(s) && conv2d_taps_backward(s, x, w, dy, dx, dw, set_grads, ws, ws_floats)) {
        if (db) bias_grad(s, dy, db, set_grads, omp_get_max_threads());
        return;
    }
    /* Winograd dW then dx, one after the other in the same workspace */
    if (ws && use_wino(s) && ws_floats >= conv2d_wino_min_workspace_floats(s)) {
        const float *u_kept = keep && keep->valid ? keep->u : NULL;
        conv2d_wino_backward_dw(s, x, dy, dw, set_grads, ws, ws_floats);
        if (dx) conv2d_wino_backward_dx(s, w, dy, dx, ws, ws_floats, u_kept);
        if (db) bias_grad(s, dy, db, set_grads, omp_get_max_threads());
        return;
    }
    /* the other paths add: their weight gradients are small next to the Winograd layers' */
    if (set_grads) {
        memset(dw, 0, sizeof(float) * dw_floats(s));
        if (db) memset(db, 0, sizeof(float) * (size_t)s->K);
    }
    if (use_direct(s, true) && conv2d_direct_backward(s, x, w, dy, dx, dw, db, ws, ws_floats))
        return;
    backward_im2col(s, x, w, dy, dx, dw, db, ws, ws_floats);
}

// dw += sum_t dW_t (part t at ws + t * slice + off), in fixed thread order for every element
static void add_dw_parts(const float *ws, size_t slice, size_t off, int team, size_t ndw, float *dw,
                         int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long i = 0; i < (long)ndw; i++) {
        float acc = 0.0f;
        for (int t = 0; t < team; t++) acc += ws[(size_t)t * slice + off + i];
        dw[i] += acc;
    }
}

static void backward_im2col(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db, float *ws, size_t ws_floats) {
    int nb, nt;
    plan(s, true, ws, ws_floats, &nb, &nt);
    if (nt < 1) {
        conv2d_backward_naive(s, x, w, dy, dx, dw, db);
        return;
    }
    const int N = s->N, K = s->K, CRS = s->C * s->R * s->S, PQ = s->P * s->Q;
    const size_t in_n = (size_t)s->C * s->H * s->W, out_n = (size_t)K * PQ;
    const size_t ncol = col_floats(s, nb), nbuf = buf_floats(s, nb), ndw = dw_floats(s);
    const size_t slice = slice_floats(s, nb, true);
    const int nchunks = (N + nb - 1) / nb;
    int team = nt;

    /* Each thread takes a contiguous run of chunks and sums their dW into its own slice;
     * the slices are added in thread order below, so dW does not depend on scheduling.
     * One thread accumulates straight into dw instead: clearing its slice and adding it to
     * dw afterwards cost three extra passes over K*CRS floats per call (9.4 MB for VGG's
     * 512x512 layers), a cost a batch-32 step pays per 32 images and a batch-64 one per 64. */
    const bool direct_dw = nt == 1;
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
#pragma omp single
        team = nth;                                // may be < nt (nested region, dynamic threads)
        float *col = ws + (size_t)tid * slice;     // [CRS, nb*PQ]
        float *buf = col + ncol;                   // [K, nb*PQ] (chunks)
        float *dw_t = direct_dw ? dw : buf + nbuf; // [K, CRS]
        if (!direct_dw) memset(dw_t, 0, sizeof(float) * ndw);
        const int c0 = (int)((int64_t)nchunks * tid / nth);
        const int c1 = (int)((int64_t)nchunks * (tid + 1) / nth);
        for (int ch = c0; ch < c1; ch++) {
            const int n0 = ch * nb, cnt = N - n0 < nb ? N - n0 : nb;
            if (nb == 1) {
                const int n = n0;
                const float *xn = x + n * in_n, *dyn = dy + n * out_n;
                const float *xcol = xn;
                if (!is_direct(s)) {
                    im2col(s, xn, col, PQ);
                    xcol = col;
                }
                // dW_t [K,CRS] += dy_n [K,PQ] * col^T [PQ,CRS]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, CRS, PQ, 1.0f, dyn, PQ,
                            xcol, PQ, 1.0f, dw_t, CRS);
                if (!dx) continue;
                float *dxn = dx + n * in_n;
                if (is_direct(s)) {
                    // dx_n [C,HW] += w^T [C,K] * dy_n [K,HW]
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CRS, PQ, K, 1.0f, w, CRS,
                                dyn, PQ, 1.0f, dxn, PQ);
                } else {
                    // dcol [CRS,PQ] = w^T * dy_n (reusing the col buffer), then scatter-add
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CRS, PQ, K, 1.0f, w, CRS,
                                dyn, PQ, 0.0f, col, PQ);
                    col2im_add(s, col, PQ, dxn);
                }
                continue;
            }
            // a chunk: dyc [K, cnt*PQ] and col [CRS, cnt*PQ] side by side for all samples
            const int ld = cnt * PQ;
            for (int i = 0; i < cnt; i++) {
                const float *dyn = dy + (n0 + i) * out_n;
                for (int k = 0; k < K; k++)
                    memcpy(buf + (size_t)k * ld + (size_t)i * PQ, dyn + (size_t)k * PQ,
                           sizeof(float) * PQ);
                im2col(s, x + (n0 + i) * in_n, col + (size_t)i * PQ, ld);
            }
            // dW_t [K,CRS] += dyc [K,ld] * col^T [ld,CRS]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, CRS, ld, 1.0f, buf, ld, col, ld,
                        1.0f, dw_t, CRS);
            if (!dx) continue;
            // dcol [CRS,ld] = w^T [CRS,K] * dyc [K,ld], then scatter-add sample by sample
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CRS, ld, K, 1.0f, w, CRS, buf, ld,
                        0.0f, col, ld);
            for (int i = 0; i < cnt; i++)
                col2im_add(s, col + (size_t)i * PQ, ld, dx + (n0 + i) * in_n);
        }
    }

    if (!direct_dw) add_dw_parts(ws, slice, ncol + nbuf, team, ndw, dw, nt);
    if (db) bias_grad(s, dy, db, false, nt);
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
