/* conv2d: shape arithmetic, FLOPs, backward vs finite differences, fast (im2col/GEMM, OpenMP;
 * Winograd F(2x2,3x3) for 3x3 stride 1, direct convolution for small stride-1 layers) vs naive with
 * 1 and 2 threads, workspace clamping, determinism, accumulation, gradients written instead of
 * added (set_grads: never reading the old contents). Each path is also forced on its
 * own (conv2d_set_algo), the taps path (one GEMM per kernel tap on small maps) included. */
#include "dprune/nn.h"
#include "gradcheck.h"
#include <math.h>
#include <omp.h>

typedef struct {
    conv2d_shape s;
    float *x, *w, *b, *y, *r, *ws;
    size_t nws, ny;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    conv2d_forward(&c->s, c->x, c->w, c->b, c->y, c->ws, c->nws);
    return gc_dot(c->r, c->y, c->ny);
}

typedef struct {
    int N, C, H, W, K, R, S, stride, pad, bias;
} conv_cfg;

static void shape_of(const conv_cfg *g, conv2d_shape *s) {
    conv2d_shape_init(s, g->N, g->C, g->H, g->W, g->K, g->R, g->S, g->stride, g->pad);
}

static size_t nx_of(const conv2d_shape *s) {
    return (size_t)s->N * s->C * s->H * s->W;
}
static size_t nw_of(const conv2d_shape *s) {
    return (size_t)s->K * s->C * s->R * s->S;
}
static size_t ny_of(const conv2d_shape *s) {
    return (size_t)s->N * s->K * s->P * s->Q;
}

// backward of the fast kernel vs central differences of its forward
static void check_fd(const conv_cfg *g, unsigned seed) {
    conv_ctx c;
    shape_of(g, &c.s);
    size_t nx = nx_of(&c.s), nw = nw_of(&c.s);
    c.ny = ny_of(&c.s);
    c.nws = conv2d_workspace_floats(&c.s, omp_get_max_threads());
    c.ws = dp_alloc_floats(c.nws);
    c.x = gc_alloc_uniform(nx, seed, 1.0f);
    c.w = gc_alloc_uniform(nw, seed + 1, 0.5f);
    c.b = g->bias ? gc_alloc_uniform(g->K, seed + 2, 0.5f) : NULL;
    c.r = gc_alloc_uniform(c.ny, seed + 3, 1.0f);
    c.y = dp_alloc_floats(c.ny);
    float *dx = dp_alloc_floats(nx), *dw = dp_alloc_floats(nw), *db = dp_alloc_floats(g->K);
    conv_loss(&c);
    conv2d_backward(&c.s, c.x, c.w, c.r, dx, dw, c.b ? db : NULL, c.ws, c.nws);
    char name[128];
    snprintf(name, sizeof name, "conv %dx%d s%d p%d C%d K%d %dx%d %s", g->R, g->S, g->stride,
             g->pad, g->C, g->K, g->H, g->W, g->bias ? "bias" : "nobias");
    // conv is linear in x and w: the differences are exact up to float rounding of y
    gc_check(name, c.x, dx, nx, conv_loss, &c, 1e-2f, 1e-3, 1e-2, 50);
    gc_check(name, c.w, dw, nw, conv_loss, &c, 1e-2f, 1e-3, 1e-2, 50);
    if (c.b) gc_check(name, c.b, db, g->K, conv_loss, &c, 1e-2f, 1e-3, 1e-2, 50);
    dp_free(c.ws), dp_free(c.x), dp_free(c.w), dp_free(c.b), dp_free(c.r), dp_free(c.y);
    dp_free(dx), dp_free(dw), dp_free(db);
}

/* Fast vs naive, forward and all three gradients. Gradients start from the same non-zero
 * values so accumulation (+=) is part of the comparison. ws_threads sizes the workspace. */
static void check_fast_vs_naive(const conv_cfg *g, int threads, int ws_threads, unsigned seed) {
    omp_set_num_threads(threads);
    conv2d_shape s;
    shape_of(g, &s);
    size_t nx = nx_of(&s), nw = nw_of(&s), ny = ny_of(&s), nws = 0;
    float *ws = NULL;
    if (ws_threads > 0) {
        nws = conv2d_workspace_floats(&s, ws_threads);
        ws = dp_alloc_floats(nws);
    }
    float *x = gc_alloc_uniform(nx, seed, 1.0f), *w = gc_alloc_uniform(nw, seed + 1, 0.5f);
    float *b = g->bias ? gc_alloc_uniform(g->K, seed + 2, 0.5f) : NULL;
    float *dy = gc_alloc_uniform(ny, seed + 3, 1.0f);
    float *y1 = dp_alloc_floats(ny), *y2 = dp_alloc_floats(ny);
    float *dx1 = gc_alloc_uniform(nx, seed + 4, 1.0f), *dx2 = gc_copy(dx1, nx);
    float *dw1 = gc_alloc_uniform(nw, seed + 5, 1.0f), *dw2 = gc_copy(dw1, nw);
    float *db1 = gc_alloc_uniform(g->K, seed + 6, 1.0f), *db2 = gc_copy(db1, g->K);

    conv2d_forward(&s, x, w, b, y1, ws, nws);
    conv2d_forward_naive(&s, x, w, b, y2);
    conv2d_backward(&s, x, w, dy, dx1, dw1, db1, ws, nws);
    conv2d_backward_naive(&s, x, w, dy, dx2, dw2, db2);
    char name[160];
    snprintf(name, sizeof name, "fast/naive N%d C%d %dx%d K%d %dx%d s%d p%d t%d ws%d", g->N, g->C,
             g->H, g->W, g->K, g->R, g->S, g->stride, g->pad, threads, ws_threads);
    gc_close(name, y1, y2, ny, 1e-4);
    gc_close(name, dx1, dx2, nx, 1e-4);
    gc_close(name, dw1, dw2, nw, 1e-4);
    gc_close(name, db1, db2, g->K, 1e-4);

    // dx == NULL and db == NULL must leave dw unchanged
    float *dw3 = gc_alloc_uniform(nw, seed + 5, 1.0f);
    conv2d_backward(&s, x, w, dy, NULL, dw3, NULL, ws, nws);
    gc_close(name, dw3, dw1, nw, 1e-4);

    // set_grads: dw and db written, their NaN contents never read; the bits of clear + add
    float *dw4 = dp_alloc_floats(nw), *db4 = dp_alloc_floats(g->K);
    for (size_t i = 0; i < nw; i++) dw4[i] = NAN, dw3[i] = 0.0f;
    for (int k = 0; k < g->K; k++) db4[k] = NAN, db1[k] = 0.0f;
    conv2d_backward_kept(&s, x, w, dy, NULL, dw4, db4, true, ws, nws, NULL);
    conv2d_backward(&s, x, w, dy, NULL, dw3, db1, ws, nws);
    CHECK_MSG(memcmp(dw4, dw3, nw * sizeof(float)) == 0 &&
                  memcmp(db4, db1, g->K * sizeof(float)) == 0,
              "%s: set_grads differs from clearing and adding", name);

    dp_free(ws), dp_free(x), dp_free(w), dp_free(b), dp_free(dy), dp_free(y1), dp_free(y2);
    dp_free(dx1), dp_free(dx2), dp_free(dw1), dp_free(dw2), dp_free(db1), dp_free(db2);
    dp_free(dw3), dp_free(dw4), dp_free(db4);
}

// same thread count -> bitwise identical dW; backward twice -> twice the gradient
static void check_determinism_and_accumulation(int threads) {
    omp_set_num_threads(threads);
    conv2d_shape s;
    conv2d_shape_init(&s, 5, 3, 9, 8, 4, 3, 3, 1, 1);
    size_t nx = nx_of(&s), nw = nw_of(&s), ny = ny_of(&s);
    size_t nws = conv2d_workspace_floats(&s, threads);
    float *ws = dp_alloc_floats(nws);
    float *x = gc_alloc_uniform(nx, 11, 1.0f), *w = gc_alloc_uniform(nw, 12, 0.5f);
    float *dy = gc_alloc_uniform(ny, 13, 1.0f);
    float *dwa = dp_alloc_floats(nw), *dwb = dp_alloc_floats(nw);
    float *dxa = dp_alloc_floats(nx), *dxb = dp_alloc_floats(nx);
    float *dba = dp_alloc_floats(s.K), *dbb = dp_alloc_floats(s.K);
    conv2d_backward(&s, x, w, dy, dxa, dwa, dba, ws, nws);
    conv2d_backward(&s, x, w, dy, dxb, dwb, dbb, ws, nws);
    CHECK(memcmp(dwa, dwb, nw * sizeof(float)) == 0);
    CHECK(memcmp(dxa, dxb, nx * sizeof(float)) == 0);
    // second call on the same buffers doubles them
    conv2d_backward(&s, x, w, dy, dxb, dwb, dbb, ws, nws);
    for (size_t i = 0; i < nx; i++) dxa[i] *= 2;
    for (size_t i = 0; i < nw; i++) dwa[i] *= 2;
    for (int i = 0; i < s.K; i++) dba[i] *= 2;
    gc_close("accumulate dx", dxb, dxa, nx, 1e-6);
    gc_close("accumulate dw", dwb, dwa, nw, 1e-6);
    gc_close("accumulate db", dbb, dba, s.K, 1e-6);
    dp_free(ws), dp_free(x), dp_free(w), dp_free(dy), dp_free(dwa), dp_free(dwb);
    dp_free(dxa), dp_free(dxb), dp_free(dba), dp_free(dbb);
}

/* The forward's transformed weights kept for backward (conv2d_forward_keep / backward_kept):
 * the same bits as the plain calls; dx really reads the kept U (a corrupted one changes dx);
 * a kept U marked invalid is ignored; shapes off Winograd keep nothing. AUTO algorithm. */
static void check_kept_weights(void) {
    conv2d_set_algo(CONV2D_ALGO_AUTO);
    omp_set_num_threads(2);
    conv2d_shape s;
    conv2d_shape_init(&s, 4, 16, 8, 8, 24, 3, 3, 1, 1); /* Winograd: 256 output positions */
    size_t nx = nx_of(&s), nw = nw_of(&s), ny = ny_of(&s), nk = conv2d_kept_floats(&s);
    CHECK(nk >= (size_t)16 * 16 * 24);
    size_t nws = conv2d_workspace_floats(&s, 2);
    float *ws = dp_alloc_floats(nws), *x = gc_alloc_uniform(nx, 31, 1.0f);
    float *w = gc_alloc_uniform(nw, 32, 0.5f), *b = gc_alloc_uniform(s.K, 33, 0.5f);
    float *dy = gc_alloc_uniform(ny, 34, 1.0f), *y1 = dp_alloc_floats(ny),
          *y2 = dp_alloc_floats(ny);
    float *dx1 = dp_alloc_floats(nx), *dx2 = dp_alloc_floats(nx), *dw1 = dp_alloc_floats(nw);
    float *dw2 = dp_alloc_floats(nw), *db1 = dp_alloc_floats(s.K), *db2 = dp_alloc_floats(s.K);
    conv2d_kept keep = {.u = dp_alloc_floats(nk)};
    conv2d_forward(&s, x, w, b, y1, ws, nws);
    conv2d_forward_keep(&s, x, w, b, y2, ws, nws, &keep);
    CHECK(keep.valid);
    CHECK(memcmp(y1, y2, ny * sizeof(float)) == 0);
    memset(dx1, 0, nx * sizeof(float)), memset(dx2, 0, nx * sizeof(float));
    memset(dw1, 0, nw * sizeof(float)), memset(dw2, 0, nw * sizeof(float));
    memset(db1, 0, s.K * sizeof(float)), memset(db2, 0, s.K * sizeof(float));
    conv2d_backward(&s, x, w, dy, dx1, dw1, db1, ws, nws);
    conv2d_backward_kept(&s, x, w, dy, dx2, dw2, db2, false, ws, nws, &keep);
    CHECK(memcmp(dx1, dx2, nx * sizeof(float)) == 0);
    CHECK(memcmp(dw1, dw2, nw * sizeof(float)) == 0);
    CHECK(memcmp(db1, db2, s.K * sizeof(float)) == 0);
    /* dx is computed from the kept U, not from w */
    for (size_t i = 0; i < nk; i++) keep.u[i] *= 2;
    memset(dx2, 0, nx * sizeof(float));
    conv2d_backward_kept(&s, x, w, dy, dx2, dw2, NULL, false, ws, nws, &keep);
    CHECK_MSG(dp_max_rel_diff(dx2, dx1, nx) > 0.5, "a doubled kept U should double dx");
    /* ... unless it is not valid */
    keep.valid = false;
    memset(dx2, 0, nx * sizeof(float));
    conv2d_backward_kept(&s, x, w, dy, dx2, dw2, NULL, false, ws, nws, &keep);
    CHECK(memcmp(dx1, dx2, nx * sizeof(float)) == 0);
    /* too few positions for Winograd (1 sample of 2x2): nothing kept, the result unchanged */
    conv2d_shape small;
    conv2d_shape_init(&small, 1, 16, 2, 2, 24, 3, 3, 1, 1);
    CHECK(conv2d_kept_floats(&small) == 0);
    conv2d_forward_keep(&small, x, w, b, y2, ws, nws, &keep);
    CHECK(!keep.valid);
    conv2d_forward(&small, x, w, b, y1, ws, nws);
    CHECK(memcmp(y1, y2, ny_of(&small) * sizeof(float)) == 0);
    /* VGG's 2x2 maps with enough samples for Winograd go to taps instead (16 products per
     * sample either way), which read the weights in place: nothing to keep; 4x4 maps stay on
     * Winograd (100 tap products against its 64) */
    conv2d_shape vgg2, vgg4;
    conv2d_shape_init(&vgg2, 16, 16, 2, 2, 24, 3, 3, 1, 1);
    conv2d_shape_init(&vgg4, 16, 16, 4, 4, 24, 3, 3, 1, 1);
    CHECK(conv2d_kept_floats(&vgg2) == 0);
    CHECK(conv2d_kept_floats(&vgg4) >= (size_t)16 * 16 * 24);
    /* ... up to 2 MB of gathered inputs: vgg16's 512-channel 2x2 layers on taps at batch 64,
     * on Winograd at 128 */
    conv2d_shape_init(&vgg2, 64, 512, 2, 2, 512, 3, 3, 1, 1);
    CHECK(conv2d_kept_floats(&vgg2) == 0);
    conv2d_shape_init(&vgg2, 128, 512, 2, 2, 512, 3, 3, 1, 1);
    CHECK(conv2d_kept_floats(&vgg2) >= (size_t)16 * 512 * 512);
    /* off Winograd altogether (3 input channels): no room asked for */
    conv2d_shape stem;
    conv2d_shape_init(&stem, 4, 3, 8, 8, 16, 3, 3, 1, 1);
    CHECK(conv2d_kept_floats(&stem) == 0);
    dp_free(keep.u), dp_free(ws), dp_free(x), dp_free(w), dp_free(b), dp_free(dy), dp_free(y1);
    dp_free(y2), dp_free(dx1), dp_free(dx2), dp_free(dw1), dp_free(dw2), dp_free(db1), dp_free(db2);
}

/* Kept weights prepared ahead of the forward (conv2d_prepare_kept), in parts as processes
 * sharing them write them: whatever the split, the parts make up the forward's own U bit for
 * bit (a part left out would leave NaN); a ready U is what the forward uses (doubled, it
 * changes y); not ready, the forward transforms again. Winograd shapes with 16 and with 3
 * input channels (runs of kernels that are not whole cache lines). */
static void check_prepared_kept(int C, int K, conv2d_algo algo) {
    conv2d_set_algo(algo);
    omp_set_num_threads(2);
    conv2d_shape s;
    conv2d_shape_init(&s, 4, C, 8, 8, K, 3, 3, 1, 1);
    size_t nx = nx_of(&s), nw = nw_of(&s), ny = ny_of(&s), nk = conv2d_kept_floats(&s);
    CHECK_MSG(nk >= (size_t)16 * C * K, "C=%d K=%d: %zu kept floats", C, K, nk);
    size_t nws = conv2d_workspace_floats(&s, 2);
    float *ws = dp_alloc_floats(nws), *x = gc_alloc_uniform(nx, 41, 1.0f);
    float *w = gc_alloc_uniform(nw, 42, 0.5f), *b = gc_alloc_uniform(s.K, 43, 0.5f);
    float *y1 = dp_alloc_floats(ny), *y2 = dp_alloc_floats(ny);
    conv2d_kept own = {.u = dp_alloc_floats(nk)}, prep = {.u = dp_alloc_floats(nk)};
    conv2d_forward_keep(&s, x, w, b, y1, ws, nws, &own);
    CHECK(own.valid && !own.ready);
    for (int parts = 1; parts <= 5; parts++) {
        for (size_t i = 0; i < nk; i++) prep.u[i] = NAN;
        prep.ready = false;
        for (int part = parts - 1; part >= 0; part--)
            conv2d_prepare_kept(&s, w, &prep, part, parts);
        CHECK(prep.ready);
        CHECK_MSG(memcmp(prep.u, own.u, (size_t)16 * C * K * sizeof(float)) == 0,
                  "C=%d K=%d: %d prepared parts differ from the forward's U", C, K, parts);
        conv2d_forward_keep(&s, x, w, b, y2, ws, nws, &prep);
        CHECK(prep.valid && memcmp(y1, y2, ny * sizeof(float)) == 0);
    }
    for (size_t i = 0; i < nk; i++) prep.u[i] *= 2;
    conv2d_forward_keep(&s, x, w, b, y2, ws, nws, &prep);
    CHECK_MSG(dp_max_rel_diff(y2, y1, ny) > 0.1, "a ready U is what the forward uses");
    prep.ready = false;
    conv2d_forward_keep(&s, x, w, b, y2, ws, nws, &prep);
    CHECK(memcmp(y1, y2, ny * sizeof(float)) == 0);
    conv2d_set_algo(CONV2D_ALGO_AUTO);
    dp_free(own.u), dp_free(prep.u), dp_free(ws), dp_free(x), dp_free(w), dp_free(b);
    dp_free(y1), dp_free(y2);
}

/* The taps path splits output (forward, dW) or input channels (dx) between threads, each
 * element computed by one thread in a fixed order: 1 and 2 threads give the same bits. */
static void check_taps_thread_independent(const conv_cfg *g) {
    conv2d_set_algo(CONV2D_ALGO_TAPS);
    conv2d_shape s;
    shape_of(g, &s);
    size_t nx = nx_of(&s), nw = nw_of(&s), ny = ny_of(&s), nws = conv2d_workspace_floats(&s, 2);
    float *ws = dp_alloc_floats(nws), *x = gc_alloc_uniform(nx, 41, 1.0f);
    float *w = gc_alloc_uniform(nw, 42, 0.5f), *dy = gc_alloc_uniform(ny, 43, 1.0f);
    float *y[2], *dx[2], *dw[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        y[t] = dp_alloc_floats(ny), dx[t] = dp_alloc_floats(nx), dw[t] = dp_alloc_floats(nw);
        memset(dx[t], 0, nx * sizeof(float));
        conv2d_forward(&s, x, w, NULL, y[t], ws, nws);
        conv2d_backward_kept(&s, x, w, dy, dx[t], dw[t], NULL, true, ws, nws, NULL);
    }
    CHECK_MSG(memcmp(y[0], y[1], ny * sizeof(float)) == 0, "taps: y differs with 2 threads");
    CHECK_MSG(memcmp(dx[0], dx[1], nx * sizeof(float)) == 0, "taps: dx differs with 2 threads");
    CHECK_MSG(memcmp(dw[0], dw[1], nw * sizeof(float)) == 0, "taps: dw differs with 2 threads");
    for (int t = 0; t < 2; t++) dp_free(y[t]), dp_free(dx[t]), dp_free(dw[t]);
    dp_free(ws), dp_free(x), dp_free(w), dp_free(dy);
}

/* Every cfg[0..n) through one forced algorithm at 1 and 2 threads; a workspace for one thread
 * with two running (cfg[one_ws]); none at all (cfg[0]: the naive fallback); finite
 * differences on cfg[fd0..fd1); determinism and accumulation. Seeds from seed up. */
static void check_algo(conv2d_algo algo, const conv_cfg *cfg, size_t n, size_t one_ws, size_t fd0,
                       size_t fd1, unsigned seed) {
    conv2d_set_algo(algo);
    for (int t = 1; t <= 2; t++)
        for (size_t i = 0; i < n; i++) check_fast_vs_naive(&cfg[i], t, t, seed + 10 * (unsigned)i);
    check_fast_vs_naive(&cfg[one_ws], 2, 1, seed + 100);
    check_fast_vs_naive(&cfg[0], 2, 0, seed + 110);
    omp_set_num_threads(2);
    for (size_t i = fd0; i < fd1; i++) check_fd(&cfg[i], seed + 200 + 10 * (unsigned)i);
    check_determinism_and_accumulation(1);
    check_determinism_and_accumulation(2);
}

int main(void) {
    // shapes and FLOPs: ResNet stem on 224x224
    conv2d_shape s;
    conv2d_shape_init(&s, 2, 3, 224, 224, 64, 7, 7, 2, 3);
    CHECK(s.P == 112 && s.Q == 112);
    CHECK(conv2d_flops(&s) == (int64_t)2 * 64 * 112 * 112 * 3 * 7 * 7);
    conv2d_shape_init(&s, 1, 8, 21, 20, 8, 3, 3, 2, 1); /* > 64 positions: no taps workspace */
    CHECK(s.P == 11 && s.Q == 10);
    CHECK(conv2d_workspace_floats(&s, 2) >= 2 * conv2d_workspace_floats(&s, 1) - 32);

    // a hand case: 1 channel 3x3 input, 2x2 kernel of ones, bias 1 -> window sums + 1
    {
        float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, b[1] = {1}, y[4], yn[4];
        conv2d_shape_init(&s, 1, 1, 3, 3, 1, 2, 2, 1, 0);
        float ws[64];
        conv2d_forward(&s, x, w, b, y, ws, 64);
        conv2d_forward_naive(&s, x, w, b, yn);
        CHECK(y[0] == 13 && y[1] == 17 && y[2] == 25 && y[3] == 29);
        CHECK(memcmp(y, yn, sizeof y) == 0);
    }

    const conv_cfg fd[] = {
        {2, 3, 5, 7, 4, 3, 3, 1, 1, 1},  // 3x3 s1 p1, bias, non-square
        {2, 3, 7, 6, 4, 3, 3, 2, 1, 0},  // 3x3 s2 p1, no bias
        {2, 2, 6, 5, 3, 3, 3, 1, 0, 1},  // 3x3 s1 p0
        {2, 2, 6, 5, 3, 3, 3, 2, 0, 0},  // 3x3 s2 p0
        {2, 5, 4, 3, 6, 1, 1, 1, 0, 1},  // 1x1 direct GEMM path
        {2, 4, 6, 7, 3, 1, 1, 2, 0, 0},  // 1x1 stride 2 (im2col path)
        {1, 3, 11, 9, 2, 7, 7, 2, 3, 1}, // 7x7 s2 p3 (stem)
        {3, 2, 5, 5, 2, 3, 1, 1, 1, 1},  // non-square kernel
    };
    omp_set_num_threads(2);
    for (size_t i = 0; i < sizeof fd / sizeof fd[0]; i++) check_fd(&fd[i], 100 + 10 * (unsigned)i);

    const conv_cfg cmp[] = {
        {3, 3, 9, 7, 5, 3, 3, 1, 1, 1},   {5, 4, 8, 11, 6, 3, 3, 2, 1, 0},
        {2, 3, 13, 13, 4, 7, 7, 2, 3, 1}, {3, 7, 5, 9, 5, 1, 1, 1, 0, 1},
        {3, 6, 9, 9, 5, 1, 1, 2, 0, 1},   {1, 5, 6, 6, 3, 3, 3, 1, 1, 1},
        {4, 16, 8, 8, 32, 3, 3, 1, 1, 0}, {2, 32, 7, 7, 16, 1, 1, 1, 0, 0},
        {3, 2, 10, 10, 3, 5, 5, 1, 2, 1}, {2, 3, 1, 1, 4, 1, 1, 1, 0, 1},
        {2, 3, 3, 3, 4, 3, 3, 1, 1, 1},
    };
    for (int t = 1; t <= 2; t++)
        for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++)
            check_fast_vs_naive(&cmp[i], t, t, 500 + 10 * (unsigned)i);
    // workspace sized for fewer threads than run (clamped), and none at all (naive fallback)
    check_fast_vs_naive(&cmp[0], 2, 1, 900);
    check_fast_vs_naive(&cmp[3], 2, 1, 910);
    check_fast_vs_naive(&cmp[1], 2, 0, 920);
    check_fast_vs_naive(&cmp[3], 2, 0, 930);

    check_determinism_and_accumulation(1);
    check_determinism_and_accumulation(2);

    /* Winograd F(2x2,3x3), forced on every 3x3 stride-1 conv: odd and even output sizes
     * (partial tiles), pad 0/1/2, 1x1 outputs, more tiles than one block (resnet-like 16
     * channels on 32x32 with 3 samples is 768 tiles > 512), wide channels (blocks of 64).
     * {2, 96, 4, 4, 80} and the last have few tiles for their channels, so dW runs over the
     * whole batch by chunks of output channels (the last in two uneven chunks). The last two
     * have K C > 32768, so U is written with streaming stores, {1, 181, 20, 20, 183} with K C
     * odd (U's rows not 16-byte aligned) and dW on the blocked path; {1, 4, 2, 30, 5} has a
     * single tile row, so the blocked dW's second thread gets no block. {2, 96, 14, 12, 96} has
     * more weights than tiles (84 tiles, 96 channels): the forward and dx take all of a
     * thread's tiles in one block, larger than the cache-sized 80. */
    const conv_cfg wino[] = {
        {3, 3, 9, 7, 5, 3, 3, 1, 1, 1},     {2, 4, 8, 8, 6, 3, 3, 1, 1, 0},
        {2, 5, 7, 6, 4, 3, 3, 1, 0, 1},     {2, 3, 5, 5, 2, 3, 3, 1, 2, 0},
        {3, 2, 1, 1, 3, 3, 3, 1, 1, 1},     {2, 6, 3, 2, 5, 3, 3, 1, 1, 1},
        {3, 16, 32, 32, 16, 3, 3, 1, 1, 0}, {2, 96, 4, 4, 80, 3, 3, 1, 1, 1},
        {1, 1, 6, 6, 1, 3, 3, 1, 1, 1},     {1, 181, 20, 20, 183, 3, 3, 1, 1, 1},
        {1, 4, 2, 30, 5, 3, 3, 1, 1, 0},    {1, 300, 3, 3, 290, 3, 3, 1, 1, 1},
        {2, 96, 14, 12, 96, 3, 3, 1, 1, 1},
    };
    check_algo(CONV2D_ALGO_WINOGRAD, wino, sizeof wino / sizeof wino[0], 6, 0, 4, 1000);
    // the same shapes through im2col only (AUTO would send the wide ones to Winograd)
    conv2d_set_algo(CONV2D_ALGO_IM2COL);
    for (size_t i = 0; i < sizeof wino / sizeof wino[0]; i++)
        check_fast_vs_naive(&wino[i], 2, 2, 1300 + 10 * (unsigned)i);

    /* direct convolution, forced on every stride-1 conv it applies to: lenet5's two layers
     * (1->6 5x5 pad 2 on 28x28, 6->16 5x5 on 14x14), channel counts off the register tiles
     * (K = 3, 11, 20; taps not a multiple of 4), 1x1, non-square input and kernel, 1x1
     * outputs, pad 0..R-1; the last shape (pad 1 with a 1-wide kernel) is not applicable and
     * must stay on im2col. */
    const conv_cfg direct[] = {
        {3, 1, 28, 28, 6, 5, 5, 1, 2, 1}, {3, 6, 14, 14, 16, 5, 5, 1, 0, 1},
        {2, 3, 9, 7, 11, 3, 3, 1, 1, 1},  {2, 5, 6, 5, 3, 3, 3, 1, 0, 0},
        {3, 7, 5, 9, 20, 1, 1, 1, 0, 1},  {2, 2, 10, 7, 5, 5, 3, 1, 2, 1},
        {2, 4, 3, 3, 4, 3, 3, 1, 0, 1},   {2, 3, 4, 6, 9, 4, 4, 1, 3, 0},
        {3, 2, 5, 5, 2, 3, 1, 1, 1, 1},
    };
    check_algo(CONV2D_ALGO_DIRECT, direct, sizeof direct / sizeof direct[0], 1, 2, 8, 1400);
    /* one GEMM per tap, forced on every conv with at most 64 output positions: VGG's 2x2 and
     * 1x1 maps, channel counts off the register tiles (6 rows, 16 or 32 columns), batches
     * whose tap columns end mid-tile, stride 2, pad 0..3 (pad 3 with a 3x3 kernel: taps that
     * reach no position and outputs that are bias only), 5x3 and 1x1 kernels; the last shape
     * (81 positions) is not taken and must stay on im2col. */
    const conv_cfg taps[] = {
        {3, 3, 9, 7, 5, 3, 3, 1, 1, 1},   {2, 40, 2, 2, 37, 3, 3, 1, 1, 1},
        {3, 20, 1, 1, 13, 3, 3, 1, 1, 0}, {2, 5, 7, 6, 4, 3, 3, 2, 1, 1},
        {2, 3, 5, 5, 2, 3, 3, 1, 2, 0},   {1, 4, 3, 3, 3, 3, 3, 1, 3, 1},
        {2, 6, 4, 5, 7, 5, 3, 1, 2, 1},   {5, 33, 2, 2, 70, 3, 3, 1, 1, 1},
        {1, 2, 8, 8, 3, 1, 1, 1, 0, 1},   {2, 3, 9, 9, 4, 3, 3, 1, 1, 1},
    };
    check_algo(CONV2D_ALGO_TAPS, taps, sizeof taps / sizeof taps[0], 1, 0, 6, 1800);
    check_taps_thread_independent(&taps[7]);
    conv2d_set_algo(CONV2D_ALGO_AUTO);
    // AUTO sends lenet5's layers to the direct path; the same through im2col for comparison
    check_fast_vs_naive(&direct[1], 2, 2, 1700);
    check_kept_weights();
    check_prepared_kept(16, 24, CONV2D_ALGO_AUTO);
    check_prepared_kept(3, 10, CONV2D_ALGO_WINOGRAD);
    return dp_test_finish();
}
