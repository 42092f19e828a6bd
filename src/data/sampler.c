/* The epoch order of split positions: identity, or a permutation keyed by (seed, epoch) only,
 * so every rank computes the same order without communicating. */
#include "dprune/data.h"

void dp_sampler_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int64_t *order) {
    if (!shuffle) {
        for (int64_t i = 0; i < n; i++) order[i] = i;
        return;
    }
    dp_rng r;
    dp_rng_init(&r, seed, (uint64_t)epoch, 0, DP_RNG_SHUFFLE);
    dp_rng_permutation(&r, order, n);
}
