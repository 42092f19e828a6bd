/* The random criterion: the control every criterion must beat. Seeded from its own stream,
 * (seed, round, group, DP_RNG_PRUNE), so every rank and every rerun draws the same scores. */
#include "dprune/prune.h"

void dp_score_random(uint64_t seed, int round, int group_index, int channels, double *scores) {
    dp_rng r;
    dp_rng_init(&r, seed, (uint64_t)round, (uint64_t)group_index, DP_RNG_PRUNE);
    for (int j = 0; j < channels; j++) scores[j] = dp_rng_uniform(&r);
}
