/* pooling: shapes, hand cases (argmax, padded average, global mean), backward vs finite
 * differences for max (tie-free inputs), average with padding and global average, thread-count
 * independence and accumulation. */
#include "dprune/nn.h"
#include "gradcheck.h"
#include <omp.h>

typedef struct {
    pool2d_shape s;
    int kind; // 0 max, 1 avg, 2 global avg
    float *x, *y, *r;
    int32_t *arg;
    size_t ny;
} pool_ctx;

static double pool_loss(void *p) {
    pool_ctx *c = p;
    if (c->kind == 0)
        maxpool2d_forward(&c->s, c->x, c->y, c->arg);
    else if (c->kind == 1)
        avgpool2d_forward(&c->s, c->x, c->y);
    else
        global_avgpool_forward(c->s.N, c->s.C, c->s.H * c->s.W, c->x, c->y);
    return gc_dot(c->r, c->y, c->ny);
}

static void backward(pool_ctx *c, const float *dy, float *dx) {
    if (c->kind == 0)
        maxpool2d_backward(&c->s, c->arg, dy, dx);
    else if (c->kind == 1)
        avgpool2d_backward(&c->s, dy, dx);
    else
        global_avgpool_backward(c->s.N, c->s.C, c->s.H * c->s.W, dy, dx);
}

/* Tie-free input: a random permutation of values 0.1 apart, so a +-1e-2 step never changes
 * which element is the maximum of a window. */
static float *distinct_input(size_t n, unsigned seed) {
    int64_t *perm = dp_alloc(n * sizeof(int64_t));
    dp_rng r;
    dp_rng_init(&r, seed, 0, 0, 0);
    dp_rng_permutation(&r, perm, (int64_t)n);
    float *x = dp_alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = 0.1f * (float)(perm[i] - (int64_t)n / 2);
    dp_free(perm);
    return x;
}

static void check_pool(int kind, int N, int C, int H, int W, int k, int stride, int pad,
                       unsigned seed) {
    pool_ctx c;
    c.kind = kind;
    pool2d_shape_init(&c.s, N, C, H, W, k, stride, pad);
    size_t nx = (size_t)N * C * H * W;
    c.ny = kind == 2 ? (size_t)N * C : (size_t)N * C * c.s.P * c.s.Q;
    c.x = kind == 0 ? distinct_input(nx, seed) : gc_alloc_uniform(nx, seed, 1.0f);
    c.y = dp_alloc_floats(c.ny);
    c.arg = dp_alloc(c.ny * sizeof(int32_t));
    c.r = gc_alloc_uniform(c.ny, seed + 1, 1.0f);
    float *dx = dp_alloc_floats(nx), *dx1 = dp_alloc_floats(nx), *y1 = dp_alloc_floats(c.ny);
    omp_set_num_threads(1);
    pool_loss(&c);
    memcpy(y1, c.y, c.ny * sizeof(float));
    backward(&c, c.r, dx1);
    omp_set_num_threads(2);
    pool_loss(&c);
    backward(&c, c.r, dx);
    char name[96];
    snprintf(name, sizeof name, "%s N%d C%d %dx%d k%d s%d p%d", kind == 0 ? "max" : "avg", N, C, H,
             W, k, stride, pad);
    CHECK_MSG(memcmp(y1, c.y, c.ny * sizeof(float)) == 0, "%s: threads differ (y)", name);
    CHECK_MSG(memcmp(dx1, dx, nx * sizeof(float)) == 0, "%s: threads differ (dx)", name);
    gc_check(name, c.x, dx, nx, pool_loss, &c, 1e-2f, 1e-4, 1e-3, 80);
    // accumulation
    backward(&c, c.r, dx);
    for (size_t i = 0; i < nx; i++) dx1[i] *= 2;
    gc_close(name, dx, dx1, nx, 1e-6);
    dp_free(c.x), dp_free(c.y), dp_free(c.arg), dp_free(c.r), dp_free(dx), dp_free(dx1);
    dp_free(y1);
}

int main(void) {
    pool2d_shape s;
    pool2d_shape_init(&s, 1, 1, 112, 112, 3, 2, 1);
    CHECK(s.P == 56 && s.Q == 56);
    pool2d_shape_init(&s, 1, 1, 7, 5, 2, 2, 0);
    CHECK(s.P == 3 && s.Q == 2);

    // hand case: 4x4 plane, 2x2 max pool stride 2
    {
        float x[16] = {1, 5, 2, 0, 3, 4, 8, 1, 9, 0, 1, 1, 2, 2, 0, 7}, y[4], dx[16] = {0};
        float dy[4] = {1, 2, 3, 4};
        int32_t arg[4];
        pool2d_shape_init(&s, 1, 1, 4, 4, 2, 2, 0);
        maxpool2d_forward(&s, x, y, arg);
        CHECK(y[0] == 5 && y[1] == 8 && y[2] == 9 && y[3] == 7);
        CHECK(arg[0] == 1 && arg[1] == 6 && arg[2] == 8 && arg[3] == 15);
        maxpool2d_backward(&s, arg, dy, dx);
        CHECK(dx[1] == 1 && dx[6] == 2 && dx[8] == 3 && dx[15] == 4 && dx[0] == 0);
    }
    // padding is -inf for max: an all-negative plane never picks a padded zero
    {
        float x[4] = {-4, -3, -2, -1}, y[4];
        int32_t arg[4];
        pool2d_shape_init(&s, 1, 1, 2, 2, 3, 1, 1);
        maxpool2d_forward(&s, x, y, arg);
        CHECK(y[0] == -1 && y[1] == -1 && arg[0] == 3);
    }
    // avg pool counts padding: corner of a 3x3 window with pad 1 sees 4 real cells / 9
    {
        float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[9];
        pool2d_shape_init(&s, 1, 1, 3, 3, 3, 1, 1);
        avgpool2d_forward(&s, x, y);
        CHECK_CLOSE(y[0], (1 + 2 + 4 + 5) / 9.0, 1e-6, 0);
        CHECK_CLOSE(y[4], 45 / 9.0, 1e-6, 0);
        CHECK_CLOSE(y[8], (5 + 6 + 8 + 9) / 9.0, 1e-6, 0);
    }
    // global average
    {
        float x[8] = {1, 2, 3, 6, -1, -1, -1, -1}, y[2], dx[8] = {0}, dy[2] = {4, 8};
        global_avgpool_forward(1, 2, 4, x, y);
        CHECK(y[0] == 3 && y[1] == -1);
        global_avgpool_backward(1, 2, 4, dy, dx);
        CHECK(dx[0] == 1 && dx[3] == 1 && dx[4] == 2 && dx[7] == 2);
    }

    // the 2x2 stride-2 fast path vs the definition with ties: odd-sized planes, rows of 4
    // outputs (plain loop), 8 (one span), 14 and 17 (overlapping last span)
    const int sizes[4][2] = {{7, 9}, {5, 17}, {6, 28}, {4, 35}};
    for (int z = 0; z < 4; z++) {
        const int H = sizes[z][0], W = sizes[z][1], P = H / 2, Q = W / 2;
        float *x = dp_alloc_floats((size_t)2 * H * W), *y = dp_alloc_floats((size_t)2 * P * Q);
        int32_t *arg = dp_alloc((size_t)2 * P * Q * sizeof(int32_t));
        for (int i = 0; i < 2 * H * W; i++) x[i] = (float)((i * 7919) % 5); // many ties
        pool2d_shape_init(&s, 1, 2, H, W, 2, 2, 0);
        maxpool2d_forward(&s, x, y, arg);
        int bad = 0;
        for (int c = 0; c < 2; c++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    const float *xp = x + c * H * W;
                    int best = 2 * p * W + 2 * q; // first maximum in row-major window order
                    for (int r = 0; r < 2; r++)
                        for (int t = 0; t < 2; t++)
                            if (xp[(2 * p + r) * W + 2 * q + t] > xp[best])
                                best = (2 * p + r) * W + 2 * q + t;
                    int o = (c * P + p) * Q + q;
                    bad += arg[o] != best || y[o] != xp[best];
                }
        CHECK(bad == 0);
        dp_free(x), dp_free(y), dp_free(arg);
    }

    // maxpool2d_backward_set == maxpool2d_backward on a zeroed dx, bitwise, over a dx holding
    // garbage: 2x2 on an odd-sized plane, overlapping padded windows, 2x2 tiling the plane;
    // ties from the rounding below make the first maximum matter
    for (int v = 0; v < 3; v++) {
        const int H = v == 2 ? 8 : 9, W = v == 2 ? 6 : 7; // v = 2: windows tile the plane
        pool2d_shape_init(&s, 2, 3, H, W, v == 1 ? 3 : 2, 2, v == 1);
        size_t nx = (size_t)2 * 3 * H * W, ny = (size_t)2 * 3 * s.P * s.Q;
        float *x = gc_alloc_uniform(nx, 90 + v, 1.0f), *y = dp_alloc_floats(ny);
        for (size_t i = 0; i < nx; i++) x[i] = (float)(int)(x[i] * 3.0f); // ties
        float *dy = gc_alloc_uniform(ny, 92 + v, 1.0f);
        float *d1 = dp_alloc_floats(nx), *d2 = gc_alloc_uniform(nx, 94 + v, 3.0f);
        int32_t *arg = dp_alloc(ny * sizeof(int32_t));
        maxpool2d_forward(&s, x, y, arg);
        memset(d1, 0, sizeof(float) * nx);
        maxpool2d_backward(&s, arg, dy, d1);
        maxpool2d_backward_set(&s, arg, dy, d2);
        CHECK(memcmp(d1, d2, sizeof(float) * nx) == 0);
        dp_free(x), dp_free(y), dp_free(dy), dp_free(d1), dp_free(d2), dp_free(arg);
    }

    check_pool(0, 2, 3, 9, 7, 3, 2, 1, 10); // ResNet stem max pool, non-square
    check_pool(0, 2, 2, 6, 6, 2, 2, 0, 20);
    check_pool(0, 1, 3, 5, 8, 3, 1, 1, 30); // overlapping windows
    check_pool(1, 2, 3, 7, 6, 3, 1, 1, 40); // avg with padding
    check_pool(1, 2, 2, 8, 5, 2, 2, 0, 50);
    check_pool(1, 1, 2, 9, 9, 3, 2, 1, 60);
    check_pool(2, 3, 4, 5, 3, 1, 1, 0, 70); // global (k/stride unused)
    return dp_test_finish();
}
