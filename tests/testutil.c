#include "testutil.h"
#include "dprune/core.h"
#include <stdlib.h>

int dp_test_passed = 0, dp_test_failed = 0;

int dp_test_finish(void) {
    printf("%d passed, %d failed\n", dp_test_passed, dp_test_failed);
    return dp_test_failed == 0 && dp_test_passed > 0 ? 0 : 1;
}

double dp_max_rel_diff(const float *a, const float *b, size_t n) {
    double maxdiff = 0, maxb = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxdiff || d != d) maxdiff = d != d ? INFINITY : d;
        if (fabs(b[i]) > maxb) maxb = fabs(b[i]);
    }
    return maxdiff / maxb;
}

void dp_fill_uniform(float *x, size_t n, unsigned seed, float scale) {
    dp_rng r;
    dp_rng_init(&r, seed, 0, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)((2 * dp_rng_uniform(&r) - 1) * scale);
}

static const char *join(const char *env, const char *fallback, const char *rel, char *buf,
                        size_t bufsz) {
    const char *root = getenv(env);
    snprintf(buf, bufsz, "%s/%s", root ? root : fallback, rel);
    return buf;
}

const char *dp_test_source_path(const char *rel, char *buf, size_t bufsz) {
    return join("DPRUNE_SOURCE_DIR", ".", rel, buf, bufsz);
}

const char *dp_test_shared_path(const char *rel, char *buf, size_t bufsz) {
    return join("DPRUNE_SHARED_DIR", "../shared", rel, buf, bufsz);
}
