/* Splits (all, seeded validation carve) and the epoch sampler. */
#include "data_testutil.h"
#include "dprune/data.h"
#include <math.h>

static int ascending(const dp_split *s) {
    for (int64_t i = 1; i < s->n; i++)
        if (s->index[i - 1] >= s->index[i]) return 0;
    return 1;
}

static int is_permutation(const int64_t *p, int64_t n) {
    unsigned char *seen = calloc((size_t)n + 1, 1);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        ok &= p[i] >= 0 && p[i] < n && !seen[p[i]];
        if (p[i] >= 0 && p[i] < n) seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_split_all(void) {
    dp_dataset ds = {.n = 37};
    dp_split s;
    dp_error err = {0};
    CHECK(dp_split_all(&s, &ds, &err) == DP_OK);
    CHECK(s.n == 37 && s.ds == &ds);
    int ident = 1;
    for (int64_t i = 0; i < s.n; i++) ident &= s.index[i] == i;
    CHECK(ident);
    dp_split_free(&s);
    CHECK(s.index == NULL && s.n == 0);
}

/* The val set is exactly the first round(f*n) entries of the (seed, SPLIT) permutation. */
static void check_val(int64_t n, double frac, uint64_t seed) {
    dp_dataset ds = {.n = n};
    dp_split tr, va;
    dp_error err = {0};
    CHECK_MSG(dp_split_val(&ds, frac, seed, &tr, &va, &err) == DP_OK, "%s", err.msg);
    int64_t nv = llround(frac * (double)n);
    CHECK_MSG(va.n == nv && tr.n == n - nv, "n %lld frac %g: val %lld train %lld", (long long)n,
              frac, (long long)va.n, (long long)tr.n);
    CHECK(tr.ds == &ds && va.ds == &ds);
    CHECK(ascending(&tr) && ascending(&va));
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)(n + 1));
    dp_rng r;
    dp_rng_init(&r, seed, 0, 0, DP_RNG_SPLIT);
    dp_rng_permutation(&r, perm, n);
    unsigned char *in_val = calloc((size_t)n + 1, 1);
    for (int64_t i = 0; i < nv; i++) in_val[perm[i]] = 1;
    int match = 1;
    for (int64_t i = 0; i < va.n; i++) match &= in_val[va.index[i]] == 1;
    for (int64_t i = 0; i < tr.n; i++) match &= in_val[tr.index[i]] == 0; /* disjoint, covering */
    CHECK(match);
    free(perm);
    free(in_val);
    dp_split_free(&tr);
    dp_split_free(&va);
}

static void test_split_val(void) {
    check_val(1000, 0.1, 42);
    check_val(1000, 0.1, 43);
    check_val(10, 0.25, 1); /* 2.5 rounds to 3 */
    check_val(60000, 1.0 / 12, 7);
    check_val(5, 1.0, 3);
    check_val(0, 0.5, 3);
    /* fraction 0: empty val with a NULL index, train = everything */
    dp_dataset ds = {.n = 50};
    dp_split tr, va, tr2, va2;
    dp_error err = {0};
    CHECK(dp_split_val(&ds, 0.0, 9, &tr, &va, &err) == DP_OK);
    CHECK(va.n == 0 && va.index == NULL && tr.n == 50);
    dp_split_free(&tr);
    dp_split_free(&va);
    /* same seed -> same split; another seed -> another val set */
    dp_split_val(&ds, 0.2, 9, &tr, &va, &err);
    dp_split_val(&ds, 0.2, 9, &tr2, &va2, &err);
    CHECK(va.n == va2.n && memcmp(va.index, va2.index, sizeof(int64_t) * (size_t)va.n) == 0);
    dp_split_free(&tr2);
    dp_split_free(&va2);
    dp_split_val(&ds, 0.2, 10, &tr2, &va2, &err);
    CHECK(va.n == va2.n && memcmp(va.index, va2.index, sizeof(int64_t) * (size_t)va.n) != 0);
    dp_split_free(&tr);
    dp_split_free(&va);
    dp_split_free(&tr2);
    dp_split_free(&va2);
    /* fractions outside [0, 1] are config errors */
    const double bad[] = {-0.1, 1.5, NAN};
    for (int i = 0; i < 3; i++) {
        CHECK(dp_split_val(&ds, bad[i], 1, &tr, &va, &err) == DP_ERR_CONFIG);
        CHECK(tr.index == NULL && va.index == NULL);
    }
}

static void test_sampler(void) {
    enum { N = 1000 };
    int64_t a[N], b[N];
    dp_sampler_order(N, false, 5, 3, a);
    int ident = 1;
    for (int i = 0; i < N; i++) ident &= a[i] == i;
    CHECK(ident);
    dp_sampler_order(N, true, 5, 3, a);
    CHECK(is_permutation(a, N));
    dp_rng r;
    dp_rng_init(&r, 5, 3, 0, DP_RNG_SHUFFLE);
    dp_rng_permutation(&r, b, N);
    CHECK(memcmp(a, b, sizeof a) == 0);
    int moved = 0;
    for (int i = 0; i < N; i++) moved += a[i] != i;
    CHECK(moved > N * 9 / 10);
    dp_sampler_order(N, true, 5, 4, b); /* another epoch, another order */
    CHECK(memcmp(a, b, sizeof a) != 0);
    dp_sampler_order(N, true, 6, 3, b); /* another seed, another order */
    CHECK(memcmp(a, b, sizeof a) != 0);
    dp_sampler_order(N, true, 5, 3, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    dp_sampler_order(0, true, 5, 3, b); /* nothing to do, must not crash */
    dp_sampler_order(1, true, 5, 3, b);
    CHECK(b[0] == 0);
}

int main(void) {
    test_split_all();
    test_split_val();
    test_sampler();
    return dp_test_finish();
}
