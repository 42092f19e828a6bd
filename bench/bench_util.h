/* Small helpers shared by the bench programs: medians, seeded fills, process CPU time. */
#ifndef DPRUNE_BENCH_UTIL_H
#define DPRUNE_BENCH_UTIL_H

#include "dprune/core.h"
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place. */
static inline double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* uniform in [-scale, scale) from a counter-based stream */
static inline void fill_uniform(float *x, size_t n, uint64_t seed, float scale) {
    dp_rng r;
    dp_rng_init(&r, seed, 0, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)(2.0 * dp_rng_uniform(&r) - 1.0);
}

/* CPU time of the whole process (all threads): with T threads, cpu_s / T close to the wall
 * time means the threads had their cores; much less means the machine was busy (noisy). */
static inline double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
