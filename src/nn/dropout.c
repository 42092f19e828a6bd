/* Inverted dropout: keep each value with probability 1-p and scale kept ones by 1/(1-p), so
 * evaluation needs no rescaling. Sample i draws from its own counter-based stream keyed by
 * (seed, sample_keys[i], layer_id, DP_RNG_DROPOUT): its mask is the same whichever rank,
 * thread or batch it lands in. */
#include "dprune/core.h"
#include "dprune/nn.h"

// x: [N,D] -> y: [N,D], mask: [N,D] (0 or 1/(1-p))
void dropout_forward(int N, int D, float p, uint64_t seed, const uint64_t *sample_keys,
                     uint64_t layer_id, const float *x, float *y, float *mask) {
    const size_t total = (size_t)N * D;
    if (p <= 0.0f) { // exact identity: no RNG draws, no rounding
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < total; i++) y[i] = x[i], mask[i] = 1.0f;
        return;
    }
    if (p >= 1.0f) { // everything dropped (1/(1-p) would be inf)
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < total; i++) y[i] = 0.0f, mask[i] = 0.0f;
        return;
    }
    const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        dp_rng r;
        dp_rng_init(&r, seed, sample_keys[n], layer_id, DP_RNG_DROPOUT);
        const float *xn = x + (size_t)n * D;
        float *yn = y + (size_t)n * D, *mn = mask + (size_t)n * D;
        for (int j = 0; j < D; j++) {
            mn[j] = dp_rng_uniform(&r) >= (double)p ? scale : 0.0f;
            yn[j] = xn[j] * mn[j];
        }
    }
}

// mask, dy: [n] -> dx: [n] += dy * mask
void dropout_backward(size_t n, const float *mask, const float *dy, float *dx) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
}
