/* relu: y = max(x, 0). The backward masks with the output (y > 0 iff x > 0), so the input
 * need not be kept. */
#include "dprune/nn.h"

// x: [n] -> y: [n] (may alias x)
void relu_forward(size_t n, const float *x, float *y) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// y, dy: [n] -> dx: [n] +=
void relu_backward(size_t n, const float *y, const float *dy, float *dx) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        if (y[i] > 0.0f) dx[i] += dy[i];
}
