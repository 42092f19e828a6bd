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
#include <stdbool.h>
#include <string.h>

#define PCC_EPS_PER_PIXEL 1e-5

size_t dp_pcc_workspace_doubles(int C, int P) {
    size_t CP = (size_t)C * P, m = (size_t)(C < P ? C : P);
    return 2 * CP + m * m + C;
}

/* pcc of A [C, P]; with grad, also leaves in ws the unscaled gradient rows
 * d_c = d pcc / d a_c (layout: Z [C, P], then D [C, P]). Two routes to the same numbers, by
 * the smaller Gram matrix (m = min(C, P)):
 *   C <= P: R = Z Z^T [C, C]; sum_{i != j} R_ij^2 directly; G = R0 Z (R0: R without diagonal).
 *   P <  C: H = Z^T Z [P, P]; ||R||_F = ||H||_F, so sum_{i != j} R_ij^2 = ||H||_F^2 - sum_c
 *           n_c^2 with n_c = R_cc = ||z_c||^2; G = Z H - diag(n) Z.
 * The second route costs C P^2 instead of C^2 P: VGG's deep layers have 512 channels on 4 or 16
 * pixels. */
static double pcc_core(int C, int P, const float *A, bool grad, double *ws) {
    size_t CP = (size_t)C * P;
    int m = C < P ? C : P;
    double *Z = ws, *D = Z + CP, *Gm = D + CP, *s = Gm + (size_t)m * m;
    double e = PCC_EPS_PER_PIXEL * P; // keeps near-constant maps from exploding z
    double diag2 = 0;                 // sum_c n_c^2
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
        double inv = 1.0 / s[c], n = ss / (ss + e);
        for (int p = 0; p < P; p++) zc[p] *= inv;
        diag2 += n * n;
    }
    double kappa = 1.0 / ((double)C * (C - 1)), off2 = 0;
    if (C <= P) {
        // Gm [C, C] = Z Z^T (upper), mirrored, diagonal excluded from pcc and gradient
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, C, P, 1.0, Z, P, 0.0, Gm, C);
        for (int i = 0; i < C; i++) {
            Gm[(size_t)i * C + i] = 0;
            for (int j = i + 1; j < C; j++) {
                double r = Gm[(size_t)i * C + j];
                Gm[(size_t)j * C + i] = r;
                off2 += 2 * r * r;
            }
        }
        if (grad) // D [C, P] = R0 Z: row c = sum_{j != c} R_cj z_j
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, P, C, 1.0, Gm, C, Z, P, 0.0,
                        D, P);
    } else {
        // Gm [P, P] = Z^T Z (upper), mirrored
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, P, C, 1.0, Z, P, 0.0, Gm, P);
        double h2 = 0;
        for (int i = 0; i < P; i++) {
            double d = Gm[(size_t)i * P + i];
            h2 += d * d;
            for (int j = i + 1; j < P; j++) {
                double h = Gm[(size_t)i * P + j];
                Gm[(size_t)j * P + i] = h;
                h2 += 2 * h * h;
            }
        }
        off2 = h2 - diag2;
        if (off2 < 0) off2 = 0; // rounding of a (near) zero
        if (grad) {             // D [C, P] = Z H - diag(n) Z
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, P, P, 1.0, Z, P, Gm, P, 0.0,
                        D, P);
            for (int c = 0; c < C; c++) {
                const double *zc = Z + (size_t)c * P;
                double *dc = D + (size_t)c * P, n = 0;
                for (int p = 0; p < P; p++) n += zc[p] * zc[p];
                for (int p = 0; p < P; p++) dc[p] -= n * zc[p];
            }
        }
    }
    if (grad) {
        /* d pcc / d z_c = 4 kappa g_c; through z_c = x_c / s_c and the centering:
         * d_c = 4 kappa (g_c - (g_c . z_c) z_c) / s_c, minus its mean (zero up to rounding) */
        for (int c = 0; c < C; c++) {
            const double *zc = Z + (size_t)c * P;
            double *dc = D + (size_t)c * P, gz = 0, mean = 0;
            for (int p = 0; p < P; p++) gz += dc[p] * zc[p];
            double f = 4 * kappa / s[c];
            for (int p = 0; p < P; p++) {
                dc[p] = f * (dc[p] - gz * zc[p]);
                mean += dc[p];
            }
            mean /= P;
            for (int p = 0; p < P; p++) dc[p] -= mean;
        }
    }
    return kappa * off2;
}

static bool pcc_args_ok(int C, int P, size_t ws_len) {
    return C >= 2 && P > 0 && ws_len >= dp_pcc_workspace_doubles(C, P);
}

// A [C, P] -> pcc; dpcc [C, P] = d pcc / dA if not NULL
double dp_pcc_sample(int C, int P, const float *A, double *dpcc, double *ws, size_t ws_len) {
    size_t CP = (size_t)(C > 0 ? C : 0) * (P > 0 ? P : 0);
    if (!pcc_args_ok(C, P, ws_len)) {
        if (dpcc) memset(dpcc, 0, sizeof(double) * CP);
        return 0.0;
    }
    double v = pcc_core(C, P, A, dpcc != NULL, ws);
    if (dpcc) memcpy(dpcc, ws + CP, sizeof(double) * CP);
    return v;
}

// A [C, P] -> pcc; dA [C, P] = scale * d pcc / dA (overwritten)
double dp_pcc_sample_grad(int C, int P, const float *A, double scale, float *dA, double *ws,
                          size_t ws_len) {
    size_t CP = (size_t)(C > 0 ? C : 0) * (P > 0 ? P : 0);
    if (!pcc_args_ok(C, P, ws_len)) {
        memset(dA, 0, sizeof(float) * CP);
        return 0.0;
    }
    double v = pcc_core(C, P, A, true, ws);
    const double *D = ws + CP;
    for (size_t i = 0; i < CP; i++) dA[i] = (float)(scale * D[i]);
    return v;
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
