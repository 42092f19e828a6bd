/* relu: y = max(x, 0). The backward masks with the output (y > 0 iff x > 0), so the input
 * need not be kept. */
#include "dprune/nn.h"

/* Below this many elements (a few microseconds of work) one thread beats a parallel region's
 * fork and join, the more so when the cores are shared (lenet5's 120- and 84-wide layers). */
enum { SERIAL_MAX = 32768 };

// x: [n] -> y: [n] (may alias x)
void relu_forward(size_t n, const float *x, float *y) {
    // written so that a NaN passes through (as in PyTorch): a NaN must surface in the loss,
    // not vanish inside the network
#pragma omp parallel for schedule(static) if (n > SERIAL_MAX)
    for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

// y, dy: [n] -> dx: [n] +=
void relu_backward(size_t n, const float *y, const float *dy, float *dx) {
#pragma omp parallel for schedule(static) if (n > SERIAL_MAX)
    for (size_t i = 0; i < n; i++)
        if (y[i] > 0.0f) dx[i] += dy[i];
}

// y, dy: [n] -> dx: [n] = (0 + dy) * mask; the 0 + keeps a -0 gradient +0 as relu_backward does
void relu_backward_set(size_t n, const float *y, const float *dy, float *dx) {
#pragma omp parallel for schedule(static) if (n > SERIAL_MAX)
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? 0.0f + dy[i] : 0.0f;
}
