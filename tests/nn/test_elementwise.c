/* relu, residual add and dropout: values, backward vs finite differences, accumulation, and for
 * dropout the RNG contract (p = 0 exact identity, per-sample streams independent of batch
 * composition and thread count, mask values and keep rate). */
#include "dprune/nn.h"
#include "gradcheck.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- relu */

typedef struct {
    size_t n;
    float *x, *y, *r;
} relu_ctx;

static double relu_loss(void *p) {
    relu_ctx *c = p;
    relu_forward(c->n, c->x, c->y);
    return gc_dot(c->r, c->y, c->n);
}

static void test_relu(void) {
    float x[5] = {-2, -0.0f, 0, 0.5f, 3}, y[5], dy[5] = {1, 1, 1, 1, 1}, dx[5] = {0};
    relu_forward(5, x, y);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 0 && y[3] == 0.5f && y[4] == 3);
    relu_backward(5, y, dy, dx);
    CHECK(dx[0] == 0 && dx[2] == 0 && dx[3] == 1 && dx[4] == 1);
    relu_backward(5, y, dy, dx); // accumulates
    CHECK(dx[3] == 2 && dx[4] == 2 && dx[1] == 0);
    relu_forward(5, x, x); // in place
    CHECK(x[0] == 0 && x[4] == 3);
    float bad[2] = {NAN, -INFINITY}, out[2];
    relu_forward(2, bad, out); // a NaN passes through, as in PyTorch
    CHECK(isnan(out[0]) && out[1] == 0);

    // finite differences away from the kink: |x| >= 0.05 > step
    relu_ctx c = {1000, NULL, NULL, NULL};
    c.x = gc_alloc_uniform(c.n, 5, 1.0f);
    for (size_t i = 0; i < c.n; i++) c.x[i] += c.x[i] >= 0 ? 0.05f : -0.05f;
    c.y = dp_alloc_floats(c.n);
    c.r = gc_alloc_uniform(c.n, 6, 1.0f);
    float *g = dp_alloc_floats(c.n);
    relu_loss(&c);
    relu_backward(c.n, c.y, c.r, g);
    gc_check("relu", c.x, g, c.n, relu_loss, &c, 1e-2f, 1e-4, 1e-3, 200);
    // the overwriting variant == relu_backward on a zeroed dx, bitwise (a -0 gradient too),
    // serial and threaded sizes, whatever dx held before
    for (size_t n = 5; n <= 70000; n += 69995) {
        float *y = gc_alloc_uniform(n, 7, 1.0f), *dy = gc_alloc_uniform(n, 8, 1.0f);
        float *d1 = dp_alloc_floats(n), *d2 = gc_alloc_uniform(n, 9, 5.0f);
        dy[0] = -0.0f, y[0] = 1.0f, y[1] = 0.0f;
        memset(d1, 0, sizeof(float) * n);
        relu_backward(n, y, dy, d1);
        relu_backward_set(n, y, dy, d2);
        CHECK(memcmp(d1, d2, sizeof(float) * n) == 0);
        dp_free(y), dp_free(dy), dp_free(d1), dp_free(d2);
    }
    dp_free(c.x), dp_free(c.y), dp_free(c.r), dp_free(g);
}

/* ---------------- add */

typedef struct {
    size_t n;
    float *a, *b, *y, *r;
} add_ctx;

static double add_loss(void *p) {
    add_ctx *c = p;
    add_forward(c->n, c->a, c->b, c->y);
    return gc_dot(c->r, c->y, c->n);
}

static void test_add(void) {
    add_ctx c = {300, NULL, NULL, NULL, NULL};
    c.a = gc_alloc_uniform(c.n, 1, 1.0f), c.b = gc_alloc_uniform(c.n, 2, 1.0f);
    c.y = dp_alloc_floats(c.n), c.r = gc_alloc_uniform(c.n, 3, 1.0f);
    add_loss(&c);
    int ok = 1;
    for (size_t i = 0; i < c.n; i++) ok &= c.y[i] == c.a[i] + c.b[i];
    CHECK(ok);
    float *da = dp_alloc_floats(c.n), *db = dp_alloc_floats(c.n);
    add_backward(c.n, c.r, da, db);
    gc_check("add a", c.a, da, c.n, add_loss, &c, 1e-2f, 1e-4, 1e-3, 100);
    gc_check("add b", c.b, db, c.n, add_loss, &c, 1e-2f, 1e-4, 1e-3, 100);
    add_backward(c.n, c.r, NULL, db); // one branch only, accumulating
    ok = 1;
    for (size_t i = 0; i < c.n; i++) ok &= db[i] == 2 * c.r[i] && da[i] == c.r[i];
    CHECK(ok);
    dp_free(c.a), dp_free(c.b), dp_free(c.y), dp_free(c.r), dp_free(da), dp_free(db);
}

/* ---------------- dropout */

typedef struct {
    int N, D;
    float p;
    const uint64_t *keys;
    float *x, *y, *mask, *r;
} drop_ctx;

static double drop_loss(void *p) {
    drop_ctx *c = p;
    dropout_forward(c->N, c->D, c->p, 42, c->keys, 3, c->x, c->y, c->mask);
    return gc_dot(c->r, c->y, (size_t)c->N * c->D);
}

static void test_dropout(void) {
    const int N = 4, D = 5000;
    const size_t n = (size_t)N * D;
    const uint64_t keys[4] = {17, 3, 99, 123456789};
    float *x = gc_alloc_uniform(n, 1, 2.0f), *y = dp_alloc_floats(n), *m = dp_alloc_floats(n);

    // p = 0: exact identity, mask all ones
    dropout_forward(N, D, 0.0f, 42, keys, 3, x, y, m);
    CHECK(memcmp(x, y, n * sizeof(float)) == 0);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= m[i] == 1.0f;
    CHECK(ok);

    // p = 0.3: mask in {0, 1/(1-p)}, y = x*mask, keep rate ~ 0.7 per sample
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    dropout_forward(N, D, p, 42, keys, 3, x, y, m);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= (m[i] == 0.0f || m[i] == scale) && y[i] == x[i] * m[i];
    CHECK(ok);
    for (int s = 0; s < N; s++) {
        int kept = 0;
        for (int j = 0; j < D; j++) kept += m[(size_t)s * D + j] != 0.0f;
        // binomial sd = sqrt(5000*0.21) ~ 32: allow 5 sd
        CHECK_MSG(abs(kept - 3500) < 160, "sample %d kept %d of %d", s, kept, D);
    }
    CHECK(memcmp(m, m + D, D * sizeof(float)) != 0); // samples get different masks

    // a sample's mask depends on its key only: same row alone, or in another batch position
    float *y1 = dp_alloc_floats(D), *m1 = dp_alloc_floats(D);
    dropout_forward(1, D, p, 42, &keys[2], 3, x + 2 * (size_t)D, y1, m1);
    CHECK(memcmp(m1, m + 2 * (size_t)D, D * sizeof(float)) == 0);
    CHECK(memcmp(y1, y + 2 * (size_t)D, D * sizeof(float)) == 0);
    // ... and changes with the layer id and with the seed
    dropout_forward(1, D, p, 42, &keys[2], 4, x, y1, m1);
    CHECK(memcmp(m1, m + 2 * (size_t)D, D * sizeof(float)) != 0);
    dropout_forward(1, D, p, 43, &keys[2], 3, x, y1, m1);
    CHECK(memcmp(m1, m + 2 * (size_t)D, D * sizeof(float)) != 0);

    // thread count does not matter
    float *m2 = dp_alloc_floats(n), *y2 = dp_alloc_floats(n);
    omp_set_num_threads(1);
    dropout_forward(N, D, p, 42, keys, 3, x, y2, m2);
    omp_set_num_threads(2);
    CHECK(memcmp(m2, m, n * sizeof(float)) == 0 && memcmp(y2, y, n * sizeof(float)) == 0);

    // backward: dx += dy*mask, accumulating
    float *dy = gc_alloc_uniform(n, 9, 1.0f), *dx = dp_alloc_floats(n);
    dropout_backward(n, m, dy, dx);
    dropout_backward(n, m, dy, dx);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= dx[i] == 2 * (dy[i] * m[i]);
    CHECK(ok);

    // p = 1 drops everything (no inf scale)
    dropout_forward(N, D, 1.0f, 42, keys, 3, x, y2, m2);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= y2[i] == 0.0f && m2[i] == 0.0f;
    CHECK(ok);

    // finite differences through the (deterministic) forward
    drop_ctx c = {2, 40, 0.5f, keys, NULL, NULL, NULL, NULL};
    c.x = gc_alloc_uniform(80, 4, 1.0f), c.y = dp_alloc_floats(80), c.mask = dp_alloc_floats(80);
    c.r = gc_alloc_uniform(80, 5, 1.0f);
    float *g = dp_alloc_floats(80);
    drop_loss(&c);
    dropout_backward(80, c.mask, c.r, g);
    gc_check("dropout", c.x, g, 80, drop_loss, &c, 1e-2f, 1e-4, 1e-3, 80);

    dp_free(x), dp_free(y), dp_free(m), dp_free(y1), dp_free(m1), dp_free(m2), dp_free(y2);
    dp_free(dy), dp_free(dx), dp_free(c.x), dp_free(c.y), dp_free(c.mask), dp_free(c.r);
    dp_free(g);
}

int main(void) {
    omp_set_num_threads(2);
    test_relu();
    test_add();
    test_dropout();
    return dp_test_finish();
}
