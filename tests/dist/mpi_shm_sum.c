/* The shared-memory sum (src/dist/shm_sum.c): every rank ends with the exact elementwise sum
 * over ranks, whatever the length (slices of whole cache lines, empty slices when the buffer
 * is shorter than W lines), run after run on the same window; the sum with an update folded
 * in (the sharded optimizer step) updates every float once, on its owner, and leaves every
 * rank with the whole updated state; the gather gives every rank each owner's slice; with the
 * state shared, every rank sees one copy, which each rank's update of its own slice alone
 * makes whole, through the folded update and through the step after a plain sum; the room
 * check says no when there is no room. Run with 1, 2 and 4 ranks. */
#include "mpi_testutil.h"
#include "shm_sum.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* integer values: their sums are exact in float, so "the sum" has one right answer */
static float value(int rank, size_t i, int run) {
    return (float)((int)((i * 7 + (size_t)rank * 131 + (size_t)run * 17) % 1000) - 500);
}

/* what the sum over ranks of value() is at i */
static float expected_sum(int world, size_t i, int run) {
    float sum = 0;
    for (int q = 0; q < world; q++) sum += value(q, i, run);
    return sum;
}

/* a window of n floats per rank (NULL, the check failed, if it cannot be made) */
static dp_shm_sum *open_window(dp_dist *d, size_t n, float **slot) {
    dp_error err = {0};
    dp_shm_sum *s = NULL;
    CHECK_MSG(dp_shm_sum_create(&s, d, n, slot, &err) == DP_OK, "%s", err.msg);
    return s;
}

static void test_sum(dp_dist *d, size_t n) {
    dp_error err = {0};
    float *slot = NULL;
    dp_shm_sum *s = open_window(d, n, &slot);
    if (!s) return;
    CHECK_MSG(((uintptr_t)slot & 63) == 0, "slot %p is not 64-byte aligned", (void *)slot);
    for (int run = 0; run < 3; run++) {
        for (size_t i = 0; i < n; i++) slot[i] = value(d->rank, i, run);
        CHECK(dp_shm_sum_run(s, &err) == DP_OK);
        size_t wrong = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (slot[i] != expected_sum(d->world, i, run) && wrong++ == 0) first = i;
        CHECK_MSG(wrong == 0, "n=%zu run %d rank %d: %zu wrong sums, first at %zu", n, run, d->rank,
                  wrong, first);
    }
    dp_shm_sum_free(s);
}

/* the update of the test: state -= sum, and a count of the floats this rank updated */
typedef struct {
    float *state;
    size_t updated;
} update_ctx;

static void subtract_sum(void *ctx, const float *sum, size_t lo, size_t hi) {
    update_ctx *c = ctx;
    for (size_t i = lo; i < hi; i++) c->state[i] -= sum[i - lo];
#pragma omp atomic
    c->updated += hi - lo;
}

static void test_update_and_gather(dp_dist *d, size_t n) {
    dp_error err = {0};
    float *slot = NULL;
    dp_shm_sum *s = open_window(d, n, &slot);
    if (!s) return;
    float *state = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; i < n; i++) state[i] = (float)(i % 977); /* the same on every rank */
    update_ctx c = {.state = state};
    size_t wrong = 0;
    for (int run = 0; run < 2; run++) {
        for (size_t i = 0; i < n; i++) slot[i] = value(d->rank, i, run);
        CHECK(dp_shm_sum_update(s, subtract_sum, &c, state, &err) == DP_OK);
    }
    for (size_t i = 0; i < n; i++) {
        float expect = (float)(i % 977);
        for (int run = 0; run < 2; run++) expect -= expected_sum(d->world, i, run);
        wrong += state[i] != expect;
    }
    CHECK_MSG(wrong == 0, "update n=%zu rank %d: %zu floats wrong", n, d->rank, wrong);
    int64_t updated = (int64_t)c.updated;
    CHECK(dp_dist_sum_i64(d, &updated, 1, &err) == DP_OK);
    CHECK_MSG(updated == (int64_t)(2 * n), "update n=%zu: %lld floats updated over ranks, want %zu",
              n, (long long)updated, 2 * n);

    /* gather: this rank's slice right, the rest garbage; afterwards all right everywhere */
    size_t lo, hi;
    dp_shm_slice(n, d->world, d->rank, &lo, &hi);
    for (size_t i = 0; i < n; i++) state[i] = i >= lo && i < hi ? (float)i : -1.0f - d->rank;
    CHECK(dp_shm_gather(s, state, &err) == DP_OK);
    wrong = 0;
    for (size_t i = 0; i < n; i++) wrong += state[i] != (float)i;
    CHECK_MSG(wrong == 0, "gather n=%zu rank %d: %zu floats wrong", n, d->rank, wrong);
    free(state);
    dp_shm_sum_free(s);
}

/* the state after `runs` updates state -= sum(run), from i % 977 */
static size_t wrong_state(const float *state, size_t n, int world, int runs) {
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float expect = (float)(i % 977);
        for (int run = 0; run < runs; run++) expect -= expected_sum(world, i, run);
        wrong += state[i] != expect;
    }
    return wrong;
}

static void test_shared_state(dp_dist *d, size_t n) {
    dp_error err = {0};
    float *slot = NULL, *shared = NULL;
    dp_shm_sum *s = open_window(d, n, &slot);
    if (!s) return;
    float *own = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; i < n; i++) own[i] = (float)(i % 977); /* the same on every rank */
    CHECK_MSG(dp_shm_sum_share_state(s, own, &shared, &err) == DP_OK, "%s", err.msg);
    CHECK(((uintptr_t)shared & 63) == 0 && shared != own);
    CHECK_MSG(wrong_state(shared, n, d->world, 0) == 0, "n=%zu: the shared copy is not own", n);
    update_ctx c = {.state = shared};
    /* run 0: the folded update; run 1: a plain sum, then each rank steps its slice */
    for (int run = 0; run < 2; run++) {
        for (size_t i = 0; i < n; i++) slot[i] = value(d->rank, i, run);
        if (run == 0) {
            CHECK(dp_shm_sum_update(s, subtract_sum, &c, shared, &err) == DP_OK);
        } else {
            CHECK(dp_shm_sum_run(s, &err) == DP_OK);
            CHECK(dp_shm_step_shared(s, subtract_sum, &c, &err) == DP_OK);
        }
        /* each rank changed only its slice, and every rank sees all of them */
        size_t wrong = wrong_state(shared, n, d->world, run + 1);
        CHECK_MSG(wrong == 0, "shared n=%zu run %d rank %d: %zu floats wrong", n, run, d->rank,
                  wrong);
        CHECK(dp_dist_barrier(d, &err) == DP_OK); /* all have checked before the next run */
    }
    int64_t updated = (int64_t)c.updated;
    CHECK(dp_dist_sum_i64(d, &updated, 1, &err) == DP_OK);
    CHECK_MSG(updated == (int64_t)(2 * n), "shared n=%zu: %lld floats updated, want %zu", n,
              (long long)updated, 2 * n);
    CHECK(wrong_state(own, n, d->world, 0) == 0); /* the rank's own copy is left alone */
    free(own);
    dp_shm_sum_free(s);
}

/* the slices tile [0, n) in rank order, in whole cache lines but for the end */
static void test_slices(void) {
    const size_t sizes[] = {0, 5, 16, 17, 1000003};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (int world = 1; world <= 5; world++) {
            size_t next = 0;
            for (int q = 0; q < world; q++) {
                size_t lo, hi;
                dp_shm_slice(sizes[k], world, q, &lo, &hi);
                CHECK(lo == next && hi >= lo && hi <= sizes[k]);
                CHECK(lo % 16 == 0 && (hi % 16 == 0 || hi == sizes[k]));
                next = hi;
            }
            CHECK(next == sizes[k]);
        }
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
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        test_sum(&d, sizes[k]);
        test_update_and_gather(&d, sizes[k]);
        test_shared_state(&d, sizes[k]);
    }
    test_slices();
    test_room();
    return dp_test_finish_mpi(&d);
}
