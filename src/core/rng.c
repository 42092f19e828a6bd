/* Counter-based RNG: output i of stream `key` is hash(key, i). A stream is derived from
 * (seed, a, b, c) only, so any worker can reproduce any sample's randomness without state. */
#include "dprune/core.h"
#include <math.h>

/* splitmix64 finaliser: a bijective 64-bit mixer with good avalanche. */
uint64_t dp_hash64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t dp_fnv1a(const void *data, size_t n) {
    const unsigned char *b = data;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

void dp_rng_init(dp_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t k = dp_hash64(seed);
    k = dp_hash64(k ^ a);
    k = dp_hash64(k ^ (b * 0xd6e8feb86659fd93ULL));
    k = dp_hash64(k ^ (c * 0xa0761d6478bd642fULL));
    r->key = k;
    r->counter = 0;
}

uint64_t dp_rng_u64(dp_rng *r) {
    return dp_hash64(r->key ^ dp_hash64(r->counter++));
}

uint32_t dp_rng_u32(dp_rng *r) {
    return (uint32_t)(dp_rng_u64(r) >> 32);
}

double dp_rng_uniform(dp_rng *r) {
    return (double)(dp_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint32_t dp_rng_below(dp_rng *r, uint32_t n) {
    if (n <= 1) return 0;
    /* rejection sampling on 64 bits keeps the result exactly uniform */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = dp_rng_u64(r);
    while (v >= limit);
    return (uint32_t)(v % n);
}

double dp_rng_normal(dp_rng *r) {
    double u1 = dp_rng_uniform(r), u2 = dp_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void dp_rng_permutation(dp_rng *r, int64_t *perm, int64_t n) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(dp_rng_u64(r) % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
