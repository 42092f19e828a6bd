/* The shared-memory sum (src/dist/shm_sum.c): every rank ends with the exact elementwise sum
 * over ranks, whatever the length (slices of whole cache lines, empty slices when the buffer
 * is shorter than W lines), run after run on the same window; the room check says no when
 * there is no room. Run with 1, 2 and 4 ranks. */
#include "mpi_testutil.h"
#include "shm_sum.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* integer values: their sums are exact in float, so "the sum" has one right answer */
static float value(int rank, size_t i, int run) {
    return (float)((int)((i * 7 + (size_t)rank * 131 + (size_t)run * 17) % 1000) - 500);
}

static void test_sum(dp_dist *d, size_t n) {
    dp_error err = {0};
    dp_shm_sum *s = NULL;
    float *slot = NULL;
    CHECK_MSG(dp_shm_sum_create(&s, d, n, &slot, &err) == DP_OK, "%s", err.msg);
    if (!s) return;
    CHECK_MSG(((uintptr_t)slot & 63) == 0, "slot %p is not 64-byte aligned", (void *)slot);
    for (int run = 0; run < 3; run++) {
        for (size_t i = 0; i < n; i++) slot[i] = value(d->rank, i, run);
        CHECK(dp_shm_sum_run(s, &err) == DP_OK);
        size_t wrong = 0, first = 0;
        for (size_t i = 0; i < n; i++) {
            float expect = 0;
            for (int q = 0; q < d->world; q++) expect += value(q, i, run);
            if (slot[i] != expect && wrong++ == 0) first = i;
        }
        CHECK_MSG(wrong == 0, "n=%zu run %d rank %d: %zu wrong sums, first at %zu", n, run, d->rank,
                  wrong, first);
    }
    dp_shm_sum_free(s);
}

static void test_room(void) {
    size_t have = 0;
    CHECK(!dp_shm_room("/nonexistent-dprune-dir", 1, &have) && have == 0);
    CHECK(!dp_shm_room("/tmp", SIZE_MAX / 4, &have) && have > 0);
    CHECK(dp_shm_room("/tmp", 1, &have));
}

int main(int argc, char **argv) {
    dp_dist d;
    dp_error err = {0};
    if (dp_dist_init(&argc, &argv, &d, &err) != DP_OK) return 1;
    d.watchdog_seconds = 60;
    bool one_node = false;
    CHECK(dp_shm_single_node(&d, &one_node, &err) == DP_OK);
    CHECK_MSG(one_node, "mpirun on one machine: every rank should share the node");
    const size_t sizes[] = {0, 5, 16, 17, 63, 1000, 1000003};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) test_sum(&d, sizes[k]);
    test_room();
    return dp_test_finish_mpi(&d);
}
