#include "dprune/core.h"
#include "testutil.h"
#include <stdlib.h>

int main(void) {
    dp_rng a, b;
    /* same key -> same stream; different key -> different stream */
    dp_rng_init(&a, 42, 1, 2, 3);
    dp_rng_init(&b, 42, 1, 2, 3);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= dp_rng_u64(&a) == dp_rng_u64(&b);
    CHECK(same);
    dp_rng_init(&b, 42, 1, 2, 4);
    dp_rng_init(&a, 42, 1, 2, 3);
    CHECK(dp_rng_u64(&a) != dp_rng_u64(&b));

    /* uniform mean and variance, normal moments */
    dp_rng_init(&a, 7, 0, 0, 0);
    double s = 0, s2 = 0, n1 = 0, n2 = 0;
    const int n = 200000;
    int in_range = 1;
    for (int i = 0; i < n; i++) {
        double u = dp_rng_uniform(&a);
        in_range &= u >= 0 && u < 1;
        s += u, s2 += u * u;
        double z = dp_rng_normal(&a);
        n1 += z, n2 += z * z;
    }
    CHECK(in_range);
    CHECK_CLOSE(s / n, 0.5, 0.005, 0);
    CHECK_CLOSE(s2 / n - (s / n) * (s / n), 1.0 / 12, 0.002, 0);
    CHECK_CLOSE(n1 / n, 0.0, 0.01, 0);
    CHECK_CLOSE(n2 / n, 1.0, 0.02, 0);

    /* below() stays in range and hits every value */
    int hits[7] = {0};
    for (int i = 0; i < 7000; i++) hits[dp_rng_below(&a, 7)]++;
    int all = 1;
    for (int i = 0; i < 7; i++) all &= hits[i] > 800 && hits[i] < 1200;
    CHECK(all);

    /* permutation is a permutation */
    int64_t perm[1000];
    dp_rng_permutation(&a, perm, 1000);
    char seen[1000] = {0};
    int ok = 1, moved = 0;
    for (int i = 0; i < 1000; i++) {
        ok &= perm[i] >= 0 && perm[i] < 1000 && !seen[perm[i]];
        seen[perm[i]] = 1;
        moved += perm[i] != i;
    }
    CHECK(ok);
    CHECK(moved > 900);
    return dp_test_finish();
}
