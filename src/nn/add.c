/* residual add: y = a + b. Backward passes dy to both branches (accumulating, so a branch
 * that also feeds other layers simply sums its gradients). */
#include "dprune/nn.h"

// a, b: [n] -> y: [n] (may alias a or b)
void add_forward(size_t n, const float *a, const float *b, float *y) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

// dy: [n] -> da += dy (if da), db += dy (if db)
void add_backward(size_t n, const float *dy, float *da, float *db) {
    if (da) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) da[i] += dy[i];
    }
    if (db) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) db[i] += dy[i];
    }
}
