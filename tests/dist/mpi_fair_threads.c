/* Threads per rank when unset (src/dist/fair_threads.c): the rank's fair share of the cores it
 * may run on. The test sets the masks itself: every rank on every core (--bind-to none) gives
 * each round(P / L), at least 1; one core each gives 1; one rank alone gets all P. The ranks of
 * this test all run on one node. Run with 1, 2 and 4 ranks. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_SET */
#endif
#include "dprune/dist.h"
#include "mpi_testutil.h"
#include <sched.h>
#include <unistd.h>

static void set_mask(int first, int count) {
    cpu_set_t m;
    CPU_ZERO(&m);
    for (int c = first; c < first + count; c++) CPU_SET(c, &m);
    CHECK(sched_setaffinity(0, sizeof m, &m) == 0);
}

int main(int argc, char **argv) {
    dp_dist d;
    dp_error err = {0};
    if (dp_dist_init(&argc, &argv, &d, &err) != DP_OK) return 1;
    d.watchdog_seconds = 60;
    cpu_set_t saved;
    sched_getaffinity(0, sizeof saved, &saved);
    const int P = (int)sysconf(_SC_NPROCESSORS_ONLN), L = d.world;

    set_mask(0, P); /* every rank may use every core */
    int n = dp_dist_fair_threads(&d), expect = (int)((double)P / L + 0.5);
    if (expect < 1) expect = 1;
    CHECK_MSG(n == expect, "%d ranks on all %d cores: %d threads each, expected %d", L, P, n,
              expect);

    set_mask(d.rank % P, 1); /* one core each */
    n = dp_dist_fair_threads(&d);
    CHECK_MSG(n == 1, "one core per rank: %d threads", n);

    dp_dist self;
    dp_dist_self(&self);
    set_mask(0, P);
    n = dp_dist_fair_threads(&self);
    CHECK_MSG(n == P, "a rank alone on %d cores: %d threads", P, n);

    sched_setaffinity(0, sizeof saved, &saved);
    return dp_test_finish_mpi(&d);
}
