/* The roots of the secular equation of a rank-1 update, all of them, with vectorisable loops.
 *
 * For poles d [K] strictly ascending, weights z [K] with ||z|| = 1 and no z_j = 0, and rho > 0,
 *     g(x) = 1/rho + sum_j z_j^2 / (d_j - x)
 * has exactly one root in each (d_i, d_{i+1}) and one in (d_{K-1}, d_{K-1} + rho): the
 * eigenvalues of diag(d) + rho z z^T. LAPACK's dlaed4 finds the same roots one call at a time
 * with scalar loops (its running error sum is a loop-carried dependence); CI scoring solves
 * K = 128 of these per channel per image, so that loop's divisions were the whole cost. Here
 * each evaluation is one loop the compiler vectorises (one division per term), and the step is
 * Li's "middle way" as in dlaed4: g is modelled near the root by its two nearest poles,
 *     g(tau + eta) ~ c + a / (D_i - eta) + b / (D_{i+1} - eta),
 * matching the value and slope, with a bracket kept and bisection if the step leaves it.
 * Accuracy: every distance d_j - x is formed as (d_j - d_origin) - tau, the origin being the
 * pole the root is nearer to, so a root close to a pole keeps full relative accuracy in its
 * distance to that pole (what makes the small eigenvalues of a downdate accurate). A root that
 * has not converged after MAX_ITER steps is handed to dlaed4. */
#include "dprune/prune_criteria.h"
#include <float.h>
#include <math.h>

extern void dlaed4_(const int *n, const int *i, const double *d, const double *z, double *delta,
                    const double *rho, double *dlam, int *info);

enum { MAX_ITER = 40 };

// g's pieces at x = d_origin + tau: psi sums the poles at or left of `split`, phi the rest
typedef struct {
    double psi, dpsi, phi, dphi;
} secular_sums;

static secular_sums secular_eval(int K, int split, const double *d, const double *zz, double origin,
                                 double tau) {
    double psi = 0, dpsi = 0, phi = 0, dphi = 0;
#pragma omp simd reduction(+ : psi, dpsi)
    for (int j = 0; j <= split; j++) {
        double r = 1.0 / ((d[j] - origin) - tau);
        double t = zz[j] * r;
        psi += t, dpsi += t * r;
    }
#pragma omp simd reduction(+ : phi, dphi)
    for (int j = split + 1; j < K; j++) {
        double r = 1.0 / ((d[j] - origin) - tau);
        double t = zz[j] * r;
        phi += t, dphi += t * r;
    }
    return (secular_sums){psi, dpsi, phi, dphi};
}

/* The step eta in (lo, hi) at which the model c + a / (lo_pole - eta) + b / (hi_pole - eta)
 * vanishes (lo_pole < hi_pole are the distances from x to the model's poles); NAN if no root of
 * the model lies there. Between the poles the model rises from -inf to +inf, so the interval
 * (lo_pole, hi_pole) holds exactly one root; right of both it rises to c, so (hi_pole, +inf)
 * holds one if c > 0. Both roots of the quadratic are formed without cancellation. */
static double model_step(double c, double a, double b, double lo_pole, double hi_pole, double lo,
                         double hi) {
    // c eta^2 - B eta + Cq = 0
    double B = c * (lo_pole + hi_pole) + a + b;
    double Cq = c * lo_pole * hi_pole + a * hi_pole + b * lo_pole;
    double e1, e2;
    if (c == 0) {
        e1 = e2 = Cq / B;
    } else {
        double disc = B * B - 4 * c * Cq;
        double q = B + copysign(sqrt(disc > 0 ? disc : 0), B);
        e1 = q / (2 * c), e2 = q != 0 ? 2 * Cq / q : NAN;
    }
    if (e1 > lo && e1 < hi) return e1;
    return e2 > lo && e2 < hi ? e2 : NAN;
}

/* Root i of g, as origin + tau. Returns 0 when converged, 1 when the caller should fall back. */
static int secular_root(int K, int i, const double *d, const double *zz, double rho, double *root) {
    double rhoinv = 1.0 / rho;
    int last = i == K - 1;
    int origin_idx = i; // the pole the root is nearer to
    double tau, lo, hi;
    secular_sums s;
    if (!last) {
        // which half of (d_i, d_{i+1}): the sign of g at the midpoint
        double gap = d[i + 1] - d[i];
        s = secular_eval(K, i, d, zz, d[i], gap / 2);
        if (rhoinv + s.psi + s.phi >= 0) {
            tau = gap / 2, lo = 0, hi = gap / 2;
        } else {
            // the same point seen from d_{i+1}: its sums are kept, later distances are
            // formed from the new origin
            origin_idx = i + 1, tau = -gap / 2, lo = -gap / 2, hi = 0;
        }
    } else {
        tau = rho / 2, lo = 0, hi = rho; // g(d_{K-1} + rho) >= 0 since ||z|| = 1
        s = secular_eval(K, i, d, zz, d[i], tau);
    }
    double origin = d[origin_idx];
    for (int it = 0; it < MAX_ITER; it++) {
        double g = rhoinv + s.psi + s.phi;
        // rounding error of the computed g: each term and the sums carry a few ulps
        double err =
            DBL_EPSILON * (8 * (s.phi - s.psi) + 2 * rhoinv + fabs(tau) * (s.dpsi + s.dphi));
        if (fabs(g) <= err) break;
        if (g < 0)
            lo = tau;
        else
            hi = tau;
        if (hi - lo <= 4 * DBL_EPSILON * fmax(fabs(lo), fabs(hi))) break;
        // model poles: d_i and d_{i+1}, or for the last root d_{K-2} and d_{K-1} (K >= 2 here)
        const int p = last ? i - 1 : i;
        double dlo = (d[p] - origin) - tau, dhi = (d[p + 1] - origin) - tau;
        double dpsi_lo = s.dpsi, dphi_hi = s.dphi;
        if (last) { // psi holds all poles: give the model's right pole only z_{K-1}'s slope
            double r = 1.0 / dhi;
            dphi_hi = zz[K - 1] * r * r, dpsi_lo = s.dpsi - dphi_hi;
        }
        double a = dlo * dlo * dpsi_lo, b = dhi * dhi * dphi_hi;
        double c = g - dlo * dpsi_lo - dhi * dphi_hi;
        // between the poles, or right of both for the last root
        double eta = last ? model_step(c, a, b, dlo, dhi, dhi, INFINITY)
                          : model_step(c, a, b, dlo, dhi, dlo, dhi);
        double next = tau + eta;
        if (!(next > lo && next < hi)) next = (lo + hi) / 2; // NAN also lands here
        if (next == tau) break;
        tau = next;
        s = secular_eval(K, i, d, zz, origin, tau);
        if (it == MAX_ITER - 1) return 1;
    }
    *root = origin + tau;
    return 0;
}

int dp_secular_roots(int K, const double *d, const double *z, double rho, double *roots, double *zz,
                     double *delta, int *fallbacks) {
    for (int j = 0; j < K; j++) zz[j] = z[j] * z[j];
    if (K == 1) { // diag(d) + rho z z^T is 1 x 1
        roots[0] = d[0] + rho * zz[0];
        return 0;
    }
    for (int i = 0; i < K; i++) {
        if (secular_root(K, i, d, zz, rho, &roots[i]) == 0) continue;
        if (fallbacks) ++*fallbacks;
        int n = K, i1 = i + 1, info = 0;
        dlaed4_(&n, &i1, d, z, delta, &rho, &roots[i], &info);
        if (info) return info;
    }
    return 0;
}
