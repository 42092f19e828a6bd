/* Shared helpers of the nn tests: finite-difference gradient checks and small array utilities.
 * The loss is always L = sum_i r_i * y_i with a fixed random r (accumulated in double), so the
 * analytic gradient is the layer's backward run with dy = r. */
#ifndef DPRUNE_TESTS_NN_GRADCHECK_H
#define DPRUNE_TESTS_NN_GRADCHECK_H

#include "dprune/core.h"
#include "testutil.h"
#include <string.h>

/* runs the forward for the current parameter values and returns L */
typedef double (*gc_loss_fn)(void *ctx);

static inline double gc_dot(const float *r, const float *y, size_t n) {
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)r[i] * y[i];
    return acc;
}

/* Central differences on p[0..n) (every element if n <= maxn, else maxn random ones) against the
 * analytic gradient g. One CHECK per tensor, reporting the worst element. The step actually
 * taken is measured after float rounding, which matters for large |p|. */
static inline void gc_check(const char *name, float *p, const float *g, size_t n, gc_loss_fn loss,
                            void *ctx, float h, double atol, double rtol, size_t maxn) {
    dp_rng rng;
    dp_rng_init(&rng, 77, n, maxn, 0);
    size_t count = n <= maxn ? n : maxn, worst_i = 0;
    double worst = -1e300, worst_fd = 0, worst_g = 0;
    for (size_t k = 0; k < count; k++) {
        size_t i = n <= maxn ? k : (size_t)dp_rng_below(&rng, (uint32_t)n);
        float orig = p[i];
        p[i] = orig + h;
        float up = p[i] - orig;
        double lp = loss(ctx);
        p[i] = orig - h;
        float down = orig - p[i];
        double lm = loss(ctx);
        p[i] = orig;
        double fd = (lp - lm) / ((double)up + down);
        double excess = fabs(fd - g[i]) - (atol + rtol * fabs(fd));
        if (excess > worst) worst = excess, worst_i = i, worst_fd = fd, worst_g = g[i];
    }
    loss(ctx); // leave the outputs as they were for the unperturbed parameters
    CHECK_MSG(worst <= 0, "%s: grad[%zu] analytic %.7g vs finite-diff %.7g", name, worst_i, worst_g,
              worst_fd);
}

static inline float *gc_alloc_uniform(size_t n, unsigned seed, float scale) {
    float *p = dp_alloc_floats(n);
    dp_fill_uniform(p, n, seed, scale);
    return p;
}

static inline float *gc_copy(const float *src, size_t n) {
    float *p = dp_alloc_floats(n);
    memcpy(p, src, n * sizeof(float));
    return p;
}

/* max relative difference check with a label */
static inline void gc_close(const char *name, const float *a, const float *b, size_t n,
                            double tol) {
    double d = dp_max_rel_diff(a, b, n);
    CHECK_MSG(d <= tol, "%s: max rel diff %.3g > %.3g", name, d, tol);
}

#endif
