/* linear (fully connected): y = x w^T + b with w [O,I] as in PyTorch. Two SGEMMs per
 * backward; OpenBLAS threads them itself (called outside OpenMP regions). */
#include "dprune/nn.h"
#include <cblas.h>

#undef I // complex.h (pulled in by cblas.h) defines I; here it is the input width

int64_t linear_flops(int N, int I, int O) {
    return (int64_t)N * I * O;
}

// x: [N,I], w: [O,I], b: [O] or NULL -> y: [N,O] (overwritten)
void linear_forward(int N, int I, int O, const float *x, const float *w, const float *b, float *y) {
    // bias first so the GEMM can accumulate on top of it
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) y[(size_t)n * O + o] = b ? b[o] : 0.0f;
    // y [N,O] += x [N,I] * w^T [I,O]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, I, 1.0f, x, I, w, I, 1.0f, y, O);
}

// dy: [N,O] -> dx += [N,I] (if dx), dw += [O,I], db += [O] (if db)
void linear_backward(int N, int I, int O, const float *x, const float *w, const float *dy,
                     float *dx, float *dw, float *db) {
    // dx [N,I] += dy [N,O] * w [O,I]
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, I, O, 1.0f, dy, O, w, I, 1.0f, dx,
                    I);
    // dw [O,I] += dy^T [O,N] * x [N,I]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, N, 1.0f, dy, O, x, I, 1.0f, dw, I);
    if (db)
        for (int o = 0; o < O; o++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += dy[(size_t)n * O + o];
            db[o] += (float)acc;
        }
}

/* ---------------- naive reference */

void linear_forward_naive(int N, int I, int O, const float *x, const float *w, const float *b,
                          float *y) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < I; i++) acc += (double)w[(size_t)o * I + i] * x[(size_t)n * I + i];
            y[(size_t)n * O + o] = (float)acc;
        }
}

void linear_backward_naive(int N, int I, int O, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *db) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            float g = dy[(size_t)n * O + o];
            if (db) db[o] += g;
            for (int i = 0; i < I; i++) {
                dw[(size_t)o * I + i] += g * x[(size_t)n * I + i];
                if (dx) dx[(size_t)n * I + i] += g * w[(size_t)o * I + i];
            }
        }
}
