/* PCC loss (METHODS section 4): pixel-level cross-correlation of one sample's post-ReLU
 * channels, rewarded during pre-training (loss term -lambda * mean pcc) so that feature maps
 * become linearly redundant and CI can screen them. Per sample: no cross-rank statistics.
 *
 * Gradient. With R = Z Z^T and kappa = 1/(C(C-1)):
 *   d pcc / d z_c = 4 kappa sum_{j != c} R_cj z_j        (R_cj appears twice, as R_cj, R_jc)
 *   z_c = x_c / s_c, s_c = sqrt(||x_c||^2 + e): d z_c = (I - z_c z_c^T) d x_c / s_c
 *   x_c = a_c - mean(a_c): the centering projection is the identity here, because every
 *   z_j has zero mean, so the gradient already has zero mean (we subtract it anyway).
 * The spec's g_c = -4 kappa sum R_cj z_j is d(-pcc)/dz_c, so its
 * dL/da_c = (lambda/(N|S|)) (g_c - (g_c.z_c) z_c)/s_c is exactly the gradient of
 * L = CE - lambda * mean pcc: signs agree (checked against finite differences in tests). */
#include "dprune/prune_criteria.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

#define PCC_EPS_PER_PIXEL 1e-5

size_t dp_pcc_workspace_doubles(int C, int P) {
    size_t CP = (size_t)C * P;
    return 2 * CP + (size_t)C * C + C;
}

// A [C, P] -> pcc; dpcc [C, P] = d pcc / dA if not NULL
double dp_pcc_sample(int C, int P, const float *A, double *dpcc, double *ws, size_t ws_len) {
    if (C < 2 || P <= 0 || ws_len < dp_pcc_workspace_doubles(C, P)) {
        if (dpcc) memset(dpcc, 0, sizeof(double) * (size_t)(C > 0 ? C : 0) * (P > 0 ? P : 0));
        return 0.0;
    }
    size_t CP = (size_t)C * P;
    double *Z = ws, *R = Z + CP, *Gz = R + (size_t)C * C, *s = Gz + CP;
    double e = PCC_EPS_PER_PIXEL * P; // keeps near-constant maps from exploding z
    for (int c = 0; c < C; c++) {
        const float *ac = A + (size_t)c * P;
        double *zc = Z + (size_t)c * P, mean = 0, ss = 0;
        for (int p = 0; p < P; p++) mean += ac[p];
        mean /= P;
        for (int p = 0; p < P; p++) {
            zc[p] = ac[p] - mean;
            ss += zc[p] * zc[p];
        }
        s[c] = sqrt(ss + e);
        for (int p = 0; p < P; p++) zc[p] /= s[c];
    }
    // R [C, C] = Z Z^T (upper), mirrored; the diagonal is excluded from pcc and gradient
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, C, P, 1.0, Z, P, 0.0, R, C);
    double kappa = 1.0 / ((double)C * (C - 1)), acc = 0;
    for (int i = 0; i < C; i++) {
        R[(size_t)i * C + i] = 0;
        for (int j = i + 1; j < C; j++) {
            double r = R[(size_t)i * C + j];
            R[(size_t)j * C + i] = r;
            acc += 2 * r * r;
        }
    }
    double pcc = kappa * acc;
    if (!dpcc) return pcc;
    // Gz [C, P] = R0 Z: row c = sum_{j != c} R_cj z_j
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, P, C, 1.0, R, C, Z, P, 0.0, Gz, P);
    for (int c = 0; c < C; c++) {
        const double *zc = Z + (size_t)c * P;
        double *gc = Gz + (size_t)c * P, *dc = dpcc + (size_t)c * P;
        double gz = 0;
        for (int p = 0; p < P; p++) gz += gc[p] * zc[p];
        double f = 4 * kappa / s[c], mean = 0;
        for (int p = 0; p < P; p++) {
            dc[p] = f * (gc[p] - gz * zc[p]);
            mean += dc[p];
        }
        mean /= P;
        for (int p = 0; p < P; p++) dc[p] -= mean; // d x / d a: remove the mean
    }
    return pcc;
}

// A [N, C, P] -> loss term; dA [N, C, P] += gradient
double dp_pcc_loss(int N, int C, int P, const float *A, double lambda, int64_t N_global,
                   int n_layers, float *dA, double *ws, size_t ws_len) {
    if (N <= 0 || C < 2 || P <= 0 || N_global <= 0 || n_layers <= 0) return 0.0;
    size_t CP = (size_t)C * P;
    size_t need = dp_pcc_workspace_doubles(C, P);
    if (ws_len < need + (dA ? CP : 0)) return NAN; // caller bug: make it loud
    double *dpcc = dA ? ws + need : NULL;
    double coef = -lambda / ((double)N_global * n_layers), sum = 0;
    for (int n = 0; n < N; n++) {
        sum += dp_pcc_sample(C, P, A + (size_t)n * CP, dpcc, ws, need);
        if (dA) {
            float *g = dA + (size_t)n * CP;
            for (size_t i = 0; i < CP; i++) g[i] += (float)(coef * dpcc[i]);
        }
    }
    return coef * sum;
}
