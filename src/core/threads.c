#include "dprune/core.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <time.h>

int dp_threads_setup(int requested) {
    int n = requested;
    if (n <= 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        n = env ? atoi(env) : 0;
    }
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    /* OpenBLAS (OpenMP build) runs single-threaded when called inside a parallel region and
     * uses the same pool outside one, so it never oversubscribes. */
    openblas_set_num_threads(n);
    return n;
}

int dp_threads_count(void) {
    return omp_get_max_threads();
}

const char *dp_blas_corename(void) {
    return openblas_get_corename();
}

double dp_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
