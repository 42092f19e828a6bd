/* The secular-equation solver against LAPACK's dlaed4, root by root, on random, clustered,
 * nearly deflated and lopsided cases: every root within a few ulps of the problem's scale
 * and within a few ulps of itself plus 1e-10 of its distance to the nearer pole (what keeps
 * the small eigenvalues of a downdate accurate); roots interlace the poles; their sum is the trace
 * sum(d) + rho; and the solver settles every root itself (no dlaed4 fallback). */
#include "dprune/prune_criteria.h"
#include "testutil.h"
#include <float.h>
#include <stdlib.h>

extern void dlaed4_(const int *n, const int *i, const double *d, const double *z, double *delta,
                    const double *rho, double *dlam, int *info);

static double uniform(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (*s >> 8) / 16777216.0;
}

typedef enum { SPREAD, CLUSTERED, TINY_WEIGHTS, BIG_RHO } case_kind;

static void make_case(int K, case_kind kind, unsigned seed, double *d, double *z, double *rho) {
    unsigned s = seed;
    double x = -1.0, nrm = 0;
    for (int j = 0; j < K; j++) {
        // clustered: most gaps 1e-9, a few large ones
        double gap = kind == CLUSTERED && uniform(&s) < 0.8 ? 1e-9 : 0.01 + uniform(&s);
        x += gap;
        d[j] = x;
        z[j] = (uniform(&s) + 0.05) * (uniform(&s) < 0.5 ? -1 : 1);
        if (kind == TINY_WEIGHTS && j % 3 == 1) z[j] *= 1e-7;
        nrm += z[j] * z[j];
    }
    for (int j = 0; j < K; j++) z[j] /= sqrt(nrm);
    *rho = kind == BIG_RHO ? 1e4 : 0.1 + uniform(&s);
}

static void check_case(int K, case_kind kind, unsigned seed) {
    double *d = malloc(sizeof(double) * K), *z = malloc(sizeof(double) * K);
    double *r = malloc(sizeof(double) * K), *zz = malloc(sizeof(double) * K);
    double *delta = malloc(sizeof(double) * K), rho;
    make_case(K, kind, seed, d, z, &rho);
    int fallbacks = 0;
    CHECK(dp_secular_roots(K, d, z, rho, r, zz, delta, &fallbacks) == 0);
    CHECK_MSG(fallbacks == 0, "K %d kind %d: %d roots needed dlaed4", K, kind, fallbacks);
    double scale = fabs(d[0]) + fabs(d[K - 1]) + rho, worst_abs = 0, worst_rel = 0;
    double trace = rho, sum = 0;
    int interlaced = 1;
    for (int i = 0; i < K; i++) {
        int n = K, i1 = i + 1, info = 0;
        double ref = 0;
        dlaed4_(&n, &i1, d, z, delta, &rho, &ref, &info);
        CHECK(info == 0);
        worst_abs = fmax(worst_abs, fabs(r[i] - ref) / scale);
        // distance to the nearer pole, in both solvers
        double lo = d[i], hi = i + 1 < K ? d[i + 1] : d[i] + rho;
        double pole = ref - lo < hi - ref ? lo : hi;
        double dist = fabs(ref - pole);
        double tol = 8 * DBL_EPSILON * fabs(ref) + 1e-10 * dist;
        worst_rel = fmax(worst_rel, tol > 0 ? fabs(r[i] - ref) / tol : fabs(r[i] - ref));
        // a root within an ulp of its pole may round onto it, in dlaed4 as here
        interlaced &= r[i] >= lo && r[i] <= hi && (i == 0 || r[i] >= r[i - 1]);
        trace += d[i], sum += r[i];
    }
    CHECK_MSG(worst_abs <= 16 * DBL_EPSILON, "K %d kind %d: |root - dlaed4| / scale %.3g", K, kind,
              worst_abs);
    CHECK_MSG(worst_rel <= 1, "K %d kind %d: |root - dlaed4| / tolerance %.3g", K, kind, worst_rel);
    CHECK_MSG(interlaced, "K %d kind %d: roots do not interlace the poles", K, kind);
    CHECK_CLOSE(sum, trace, 1e-12 * scale * K, 0);
    free(d), free(z), free(r), free(zz), free(delta);
}

int main(void) {
    static const int sizes[] = {1, 2, 3, 7, 64, 128, 300};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (int kind = SPREAD; kind <= BIG_RHO; kind++)
            for (unsigned seed = 1; seed <= 3; seed++) check_case(sizes[k], kind, seed * 97 + k);
    return dp_test_finish();
}
