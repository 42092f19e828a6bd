/* linear: hand case, FLOPs, backward vs finite differences, SGEMM kernels vs naive on odd
 * shapes with 1 and 2 threads (forward and all three grads), NULL bias/dx, accumulation. */
#include "dprune/nn.h"
#include "gradcheck.h"
#include <omp.h>

typedef struct {
    int N, I, O;
    float *x, *w, *b, *y, *r;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    linear_forward(c->N, c->I, c->O, c->x, c->w, c->b, c->y);
    return gc_dot(c->r, c->y, (size_t)c->N * c->O);
}

static void check_fd(int N, int I, int O, int bias, unsigned seed) {
    lin_ctx c = {N, I, O, NULL, NULL, NULL, NULL, NULL};
    size_t nx = (size_t)N * I, nw = (size_t)O * I, ny = (size_t)N * O;
    c.x = gc_alloc_uniform(nx, seed, 1.0f);
    c.w = gc_alloc_uniform(nw, seed + 1, 0.5f);
    c.b = bias ? gc_alloc_uniform(O, seed + 2, 0.5f) : NULL;
    c.r = gc_alloc_uniform(ny, seed + 3, 1.0f);
    c.y = dp_alloc_floats(ny);
    float *dx = dp_alloc_floats(nx), *dw = dp_alloc_floats(nw), *db = dp_alloc_floats(O);
    lin_loss(&c);
    linear_backward(N, I, O, c.x, c.w, c.r, dx, dw, bias ? db : NULL);
    char name[64];
    snprintf(name, sizeof name, "linear N%d I%d O%d", N, I, O);
    gc_check(name, c.x, dx, nx, lin_loss, &c, 1e-2f, 1e-3, 1e-2, 50);
    gc_check(name, c.w, dw, nw, lin_loss, &c, 1e-2f, 1e-3, 1e-2, 50);
    if (bias) gc_check(name, c.b, db, O, lin_loss, &c, 1e-2f, 1e-3, 1e-2, 50);
    dp_free(c.x), dp_free(c.w), dp_free(c.b), dp_free(c.r), dp_free(c.y);
    dp_free(dx), dp_free(dw), dp_free(db);
}

static void check_fast_vs_naive(int N, int I, int O, int bias, int threads, unsigned seed) {
    omp_set_num_threads(threads);
    size_t nx = (size_t)N * I, nw = (size_t)O * I, ny = (size_t)N * O;
    float *x = gc_alloc_uniform(nx, seed, 1.0f), *w = gc_alloc_uniform(nw, seed + 1, 0.5f);
    float *b = bias ? gc_alloc_uniform(O, seed + 2, 0.5f) : NULL;
    float *dy = gc_alloc_uniform(ny, seed + 3, 1.0f);
    float *y1 = dp_alloc_floats(ny), *y2 = dp_alloc_floats(ny);
    float *dx1 = gc_alloc_uniform(nx, seed + 4, 1.0f), *dx2 = gc_copy(dx1, nx);
    float *dw1 = gc_alloc_uniform(nw, seed + 5, 1.0f), *dw2 = gc_copy(dw1, nw);
    float *db1 = gc_alloc_uniform(O, seed + 6, 1.0f), *db2 = gc_copy(db1, O);
    linear_forward(N, I, O, x, w, b, y1);
    linear_forward_naive(N, I, O, x, w, b, y2);
    linear_backward(N, I, O, x, w, dy, dx1, dw1, db1);
    linear_backward_naive(N, I, O, x, w, dy, dx2, dw2, db2);
    char name[64];
    snprintf(name, sizeof name, "linear fast/naive N%d I%d O%d t%d", N, I, O, threads);
    gc_close(name, y1, y2, ny, 1e-4);
    gc_close(name, dx1, dx2, nx, 1e-4);
    gc_close(name, dw1, dw2, nw, 1e-4);
    gc_close(name, db1, db2, O, 1e-4);
    // NULL dx/db: dw alone, unchanged
    float *dw3 = gc_alloc_uniform(nw, seed + 5, 1.0f);
    linear_backward(N, I, O, x, w, dy, NULL, dw3, NULL);
    gc_close(name, dw3, dw1, nw, 1e-5);
    // accumulation: a second call doubles the increment
    float *dx4 = dp_alloc_floats(nx), *dx5 = dp_alloc_floats(nx);
    float *dw4 = dp_alloc_floats(nw), *dw5 = dp_alloc_floats(nw);
    float *db4 = dp_alloc_floats(O), *db5 = dp_alloc_floats(O);
    linear_backward(N, I, O, x, w, dy, dx4, dw4, db4);
    linear_backward(N, I, O, x, w, dy, dx5, dw5, db5);
    linear_backward(N, I, O, x, w, dy, dx5, dw5, db5);
    for (size_t i = 0; i < nx; i++) dx4[i] *= 2;
    for (size_t i = 0; i < nw; i++) dw4[i] *= 2;
    for (int i = 0; i < O; i++) db4[i] *= 2;
    gc_close("linear accumulate dx", dx5, dx4, nx, 1e-6);
    gc_close("linear accumulate dw", dw5, dw4, nw, 1e-6);
    gc_close("linear accumulate db", db5, db4, O, 1e-6);
    dp_free(x), dp_free(w), dp_free(b), dp_free(dy), dp_free(y1), dp_free(y2), dp_free(dx1);
    dp_free(dx2), dp_free(dw1), dp_free(dw2), dp_free(db1), dp_free(db2), dp_free(dw3);
    dp_free(dx4), dp_free(dx5), dp_free(dw4), dp_free(dw5), dp_free(db4), dp_free(db5);
}

int main(void) {
    CHECK(linear_flops(256, 2048, 1000) == (int64_t)256 * 2048 * 1000);
    {
        // w [O=2, I=3]: y = x w^T + b
        float x[3] = {1, 2, 3}, w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[2] = {10, 20}, y[2];
        linear_forward(1, 3, 2, x, w, b, y);
        CHECK(y[0] == 8 && y[1] == 23);
        linear_forward(1, 3, 2, x, w, NULL, y);
        CHECK(y[0] == -2 && y[1] == 3);
    }
    check_fd(3, 7, 5, 1, 1);
    check_fd(4, 16, 10, 0, 2);
    check_fd(1, 1, 3, 1, 3);
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {2, 512, 10}, {64, 100, 3}};
    for (int t = 1; t <= 2; t++)
        for (int i = 0; i < 5; i++)
            check_fast_vs_naive(shapes[i][0], shapes[i][1], shapes[i][2], i % 2 == 0, t,
                                100 + 10 * i);
    return dp_test_finish();
}
