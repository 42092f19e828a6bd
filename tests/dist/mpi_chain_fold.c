/* The statistics chain gives bitwise the one-rank total on any rank count: rank 0 recomputes
 * the sequential block-order sum itself and compares bits. Run with 1, 2 and 4 ranks. */
#include "dprune/dist.h"
#include "mpi_testutil.h"
#include <stdlib.h>
#include <string.h>

#define N 1000
#define BLOCKS 13

/* a partial whose sum depends on the order of addition (wildly different magnitudes) */
static void partial(int block, double *p) {
    dp_rng r;
    dp_rng_init(&r, 5, (uint64_t)block, 0, 0);
    for (int i = 0; i < N; i++)
        p[i] = (dp_rng_uniform(&r) - 0.5) * pow(10.0, (double)dp_rng_below(&r, 30) - 15);
}

typedef struct {
    int first, count;
} range;

static void fold_mine(void *ctx, double *acc) {
    const range *r = ctx;
    double p[N];
    for (int b = r->first; b < r->first + r->count; b++) {
        partial(b, p);
        for (int i = 0; i < N; i++) acc[i] += p[i];
    }
}

int main(int argc, char **argv) {
    dp_dist d;
    dp_error err = {0};
    if (dp_dist_init(&argc, &argv, &d, &err) != DP_OK) return 1;
    d.watchdog_seconds = 60;
    /* contiguous ranges, lower ranks take the remainder */
    int base = BLOCKS / d.world, extra = BLOCKS % d.world;
    range mine = {d.rank * base + (d.rank < extra ? d.rank : extra), base + (d.rank < extra)};
    double *total = malloc(sizeof(double) * N);
    CHECK(dp_dist_chain_fold(&d, total, N, fold_mine, &mine, &err) == DP_OK);
    CHECK(dp_dist_chain_fold_finish(&d, total, N, &err) == DP_OK);
    if (d.rank == 0) {
        double *expect = calloc(N, sizeof(double)), *rev = calloc(N, sizeof(double)), p[N];
        range all = {0, BLOCKS};
        fold_mine(&all, expect);
        CHECK(memcmp(expect, total, sizeof(double) * N) == 0);
        /* the order matters for these numbers: a reversed fold differs (the test has teeth) */
        for (int b = BLOCKS - 1; b >= 0; b--) {
            partial(b, p);
            for (int i = 0; i < N; i++) rev[i] += p[i];
        }
        CHECK(memcmp(rev, total, sizeof(double) * N) != 0);
        free(expect);
        free(rev);
    }
    free(total);
    return dp_test_finish_mpi(&d);
}
