/* Minimal test helpers: every CHECK counts; main returns dp_test_finish(), which prints
 * "N passed, N failed" and fails the process if any check failed. */
#ifndef DPRUNE_TESTUTIL_H
#define DPRUNE_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

extern int dp_test_passed, dp_test_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            dp_test_passed++;                                                                      \
        } else {                                                                                   \
            dp_test_failed++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) {                                                                                \
            dp_test_passed++;                                                                      \
        } else {                                                                                   \
            dp_test_failed++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                              \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (atol) + (rtol)*fabs((double)(b)),                \
              "%.9g vs %.9g", (double)(a), (double)(b))

int dp_test_finish(void);
/* max |a-b| / max(1, max|b|) over n values */
double dp_max_rel_diff(const float *a, const float *b, size_t n);
/* deterministic pseudo-random fill in [-scale, scale] */
void dp_fill_uniform(float *x, size_t n, unsigned seed, float scale);
/* path under the source tree / shared dir (env DPRUNE_SOURCE_DIR, DPRUNE_SHARED_DIR) */
const char *dp_test_source_path(const char *rel, char *buf, size_t bufsz);
const char *dp_test_shared_path(const char *rel, char *buf, size_t bufsz);

#endif
