/* Ordered sums are bitwise the same on any number of ranks: rank 0 recomputes the one-rank
 * answer itself and compares bits. Run with 1, 2 and 4 ranks. */
#include "dprune/dist.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

#define N 1000
#define BLOCKS 13

/* a partial whose sum depends on the order of addition (wildly different magnitudes) */
static void partial(int block, double *p) {
    dp_rng r;
    dp_rng_init(&r, 5, (uint64_t)block, 0, 0);
    for (int i = 0; i < N; i++)
        p[i] = (dp_rng_uniform(&r) - 0.5) * pow(10.0, (double)(dp_rng_below(&r, 30)) - 15);
}

int main(int argc, char **argv) {
    dp_dist d;
    dp_error err = {0};
    if (dp_dist_init(&argc, &argv, &d, &err) != DP_OK) return 1;
    d.watchdog_seconds = 60;
    dp_ordered_sum *o = NULL;
    CHECK(dp_ordered_sum_begin(&o, &d, N, BLOCKS, &err) == DP_OK);
    double *p = malloc(sizeof(double) * N), *total = calloc(N, sizeof(double));
    for (int b = 0; b < BLOCKS; b++) {
        if (dp_ordered_sum_owner(o, b) != d.rank) continue;
        partial(b, p);
        CHECK(dp_ordered_sum_add(o, b, p, &err) == DP_OK);
    }
    /* a block that is not ours is refused */
    if (d.world > 1) CHECK(dp_ordered_sum_add(o, (d.rank + 1) % d.world, p, &err) == DP_ERR_ARG);
    CHECK(dp_ordered_sum_finish(o, total, &err) == DP_OK);
    dp_ordered_sum_free(o);
    if (d.rank == 0) {
        double *expect = calloc(N, sizeof(double));
        for (int b = 0; b < BLOCKS; b++) {
            partial(b, p);
            for (int i = 0; i < N; i++) expect[i] += p[i];
        }
        CHECK(memcmp(expect, total, sizeof(double) * N) == 0);
        /* and the order matters: a reversed fold differs somewhere (the test has teeth) */
        double *rev = calloc(N, sizeof(double));
        for (int b = BLOCKS - 1; b >= 0; b--) {
            partial(b, p);
            for (int i = 0; i < N; i++) rev[i] += p[i];
        }
        CHECK(memcmp(rev, total, sizeof(double) * N) != 0);
        free(expect);
        free(rev);
    }
    free(p);
    free(total);
    int rc = d.rank == 0 ? dp_test_finish() : (dp_test_failed ? 1 : 0);
    dp_dist_finalize();
    return rc;
}
