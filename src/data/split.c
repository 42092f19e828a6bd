/* Splits are index views into a dataset. The validation carve is a seeded permutation, so the
 * same (dataset size, fraction, seed) gives the same split on every rank and every run. */
#include "dprune/data.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static dp_status alloc_index(dp_split *sp, const dp_dataset *ds, int64_t n, dp_error *err) {
    sp->ds = ds;
    sp->n = n;
    sp->index = NULL;
    if (n == 0) return DP_OK;
    sp->index = malloc((size_t)n * sizeof *sp->index);
    if (!sp->index)
        return dp_fail(err, DP_ERR_NOMEM, "split: cannot allocate %lld indices", (long long)n);
    return DP_OK;
}

dp_status dp_split_all(dp_split *sp, const dp_dataset *ds, dp_error *err) {
    if (!sp || !ds) return dp_fail(err, DP_ERR_ARG, "dp_split_all: NULL argument");
    memset(sp, 0, sizeof *sp);
    dp_status st = alloc_index(sp, ds, ds->n, err);
    if (st != DP_OK) return st;
    for (int64_t i = 0; i < ds->n; i++) sp->index[i] = i;
    return DP_OK;
}

dp_status dp_split_val(const dp_dataset *ds, double fraction, uint64_t seed, dp_split *train,
                       dp_split *val, dp_error *err) {
    if (!ds || !train || !val) return dp_fail(err, DP_ERR_ARG, "dp_split_val: NULL argument");
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (!(fraction >= 0 && fraction <= 1))
        return dp_fail(err, DP_ERR_CONFIG, "validation fraction %g of %s, expected 0..1", fraction,
                       ds->source);
    int64_t n = ds->n, nval = (int64_t)llround(fraction * (double)n);
    if (nval > n) nval = n;
    /* in_val marks the first nval entries of the permutation; walking 0..n-1 then yields both
     * lists already in ascending order, with no sort. */
    int64_t *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *perm);
    unsigned char *in_val = calloc((size_t)(n > 0 ? n : 1), 1);
    dp_status st = DP_OK;
    if (!perm || !in_val) st = dp_fail(err, DP_ERR_NOMEM, "split: out of memory");
    if (st == DP_OK) {
        dp_rng r;
        dp_rng_init(&r, seed, 0, 0, DP_RNG_SPLIT);
        dp_rng_permutation(&r, perm, n);
        for (int64_t i = 0; i < nval; i++) in_val[perm[i]] = 1;
        st = alloc_index(train, ds, n - nval, err);
    }
    if (st == DP_OK) st = alloc_index(val, ds, nval, err);
    if (st == DP_OK) {
        int64_t t = 0, v = 0;
        for (int64_t i = 0; i < n; i++) {
            if (in_val[i])
                val->index[v++] = i;
            else
                train->index[t++] = i;
        }
    }
    free(perm);
    free(in_val);
    if (st != DP_OK) {
        dp_split_free(train);
        dp_split_free(val);
    }
    return st;
}

void dp_split_free(dp_split *sp) {
    if (!sp) return;
    free(sp->index);
    memset(sp, 0, sizeof *sp);
}
