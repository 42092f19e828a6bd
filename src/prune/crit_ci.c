/* CI, channel independence (METHODS section 4, from CHIP): CI(c) = ||A||_* - ||A with row c
 * zeroed||_* for one image's map A [C, P]. The Gram route needs one small symmetric
 * eigenproblem per channel instead of one SVD of the whole map per channel:
 *   C <= P: singular values of A are sqrt(eig(A A^T)); zeroing row c deletes row and column
 *           c of A A^T, so ||A without c||_* = sum sqrt(eig(G without row/col c)).
 *   P <  C: A^T A is only P x P; zeroing row c gives A^T A - a_c a_c^T (rank-1 downdate).
 * The direct route (one dgesdd per channel) is kept as the reference. */
#include "dprune/prune_criteria.h"
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// LAPACK (Fortran ABI, shipped inside OpenBLAS); trailing size_t = hidden string lengths
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                    double *w, double *work, const int *lwork, int *iwork, const int *liwork,
                    int *info, size_t jobz_len, size_t uplo_len);
extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt, double *work,
                    const int *lwork, int *iwork, int *info, size_t jobz_len);

static int imin(int a, int b) {
    return a < b ? a : b;
}
static int imax(int a, int b) {
    return a > b ? a : b;
}

// doubles for dsyevd('N') on order m: the minimum 2m+1 plus room for blocked tridiagonalisation
static size_t eig_lwork(int m) {
    return (size_t)2 * m + 1 + (size_t)64 * m;
}
// doubles for dgesdd('N') on m x n: LAPACK's minimum plus room for blocked QR/bidiagonalisation
static size_t svd_lwork(int m, int n) {
    size_t mn = (size_t)imin(m, n), mx = (size_t)imax(m, n);
    return 3 * mn + (mx > 7 * mn ? mx : 7 * mn) + 128 * (mx + mn);
}

size_t dp_ci_workspace_doubles(int C, int P) {
    int m = imin(C, P), mg = C <= P ? C : P; // Gram order
    size_t CP = (size_t)C * P, mm = (size_t)mg * mg;
    // per-channel eigen route: A [C, P], G and its submatrix [mg, mg], eigenvalues, work
    size_t eig = CP + 2 * mm + mg + eig_lwork(mg) + 8;
    // secular route: A, V [mg, mg], eigenvalues, dsyevd('V') work + iwork, W = A V [C, mg],
    // per-channel D, z, compacted D and z, delta, mu, roots, z^2 [mg] each
    size_t sec = CP + mm + mg + (1 + 6 * (size_t)mg + 2 * mm) + (3 + 5 * (size_t)mg) / 2 + 2 +
                 (size_t)C * mg + 8 * (size_t)mg;
    // direct route: A, a copy without one row, singular values, work, iwork (8 m ints)
    size_t direct = 2 * CP + m + svd_lwork(P, C) + 4 * (size_t)m + 8;
    size_t best = eig > sec ? eig : sec;
    return best > direct ? best : direct;
}

// eigenvalues of the symmetric S [m, m] (destroyed) into w [m]; 0 on success
static int sym_eigvals(int m, double *S, double *w, double *work, int lwork) {
    int iwork[8], liwork = 8, info = 0;
    if (m == 0) return 0;
    dsyevd_("N", "U", &m, S, &m, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    return info;
}

// the arguments every CI route checks first
static dp_status check_ci_args(int C, int P, size_t ws_len, dp_error *err) {
    if (C <= 0 || P <= 0) return dp_fail(err, DP_ERR_ARG, "ci: empty map %d x %d", C, P);
    if (ws_len < dp_ci_workspace_doubles(C, P))
        return dp_fail(err, DP_ERR_ARG, "ci: workspace of %zu doubles, need %zu", ws_len,
                       dp_ci_workspace_doubles(C, P));
    return DP_OK;
}

// sum sqrt(eig), eigenvalues below tol are rounding noise of a zero singular value
static double nuclear_from_eig(int m, const double *w, double tol) {
    double acc = 0;
    for (int i = 0; i < m; i++) acc += w[i] > tol ? sqrt(w[i]) : 0.0;
    return acc;
}

dp_status dp_ci_image_eig(int C, int P, const float *A, double *ci, double *ws, size_t ws_len,
                          dp_error *err) {
    dp_status arg_st = check_ci_args(C, P, ws_len, err);
    if (arg_st != DP_OK) return arg_st;
    int gram_rows = C <= P; // G = A A^T (C x C), else A^T A (P x P)
    int m = gram_rows ? C : P;
    size_t CP = (size_t)C * P, mm = (size_t)m * m;
    double *Ad = ws, *G = Ad + CP, *S = G + mm, *w = S + mm, *work = w + m;
    int lwork = (int)eig_lwork(m);
    for (size_t i = 0; i < CP; i++) Ad[i] = A[i];
    if (gram_rows) // G [C, C] = A A^T (upper)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, C, P, 1.0, Ad, P, 0.0, G, C);
    else // G [P, P] = A^T A (upper)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, P, C, 1.0, Ad, P, 0.0, G, P);
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++) G[(size_t)j * m + i] = G[(size_t)i * m + j];

    memcpy(S, G, sizeof(double) * mm);
    int info = sym_eigvals(m, S, w, work, lwork);
    if (info) return dp_fail(err, DP_ERR_NUMERIC, "ci: dsyevd failed (info %d)", info);
    double lmax = m > 0 ? w[m - 1] : 0; // ascending order
    double tol = lmax > 0 ? m * DBL_EPSILON * lmax : 0;
    double full = nuclear_from_eig(m, w, tol);

    for (int c = 0; c < C; c++) {
        const double *ac = Ad + (size_t)c * P;
        int zero = 1;
        for (int p = 0; p < P && zero; p++) zero = ac[p] == 0;
        if (zero) continue; // a dead row changes nothing: CI = 0 exactly
        int n;
        if (gram_rows) {
            // S [C-1, C-1] = G without row and column c
            n = C - 1;
            for (int i = 0, si = 0; i < C; i++) {
                if (i == c) continue;
                double *dst = S + (size_t)si * n;
                const double *src = G + (size_t)i * C;
                memcpy(dst, src, sizeof(double) * c);
                memcpy(dst + c, src + c + 1, sizeof(double) * (C - 1 - c));
                si++;
            }
        } else {
            // S [P, P] = G - a_c a_c^T (upper triangle is all dsyevd reads)
            n = P;
            for (int i = 0; i < P; i++)
                for (int j = i; j < P; j++)
                    S[(size_t)i * P + j] = G[(size_t)i * P + j] - ac[i] * ac[j];
        }
        // dsyevd reads the upper triangle of a column-major matrix = our lower one; both
        // triangles are filled for the C <= P case and symmetric, for the downdate only the
        // row-major upper is set, which is the column-major lower: ask for "L" there
        int iwork[8], liwork = 8;
        const char *uplo = gram_rows ? "U" : "L";
        if (n > 0) dsyevd_("N", uplo, &n, S, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
        if (info) return dp_fail(err, DP_ERR_NUMERIC, "ci: dsyevd failed (info %d)", info);
        double part = n > 0 ? nuclear_from_eig(n, w, tol) : 0.0;
        double v = full - part;
        ci[c] += v > 0 ? v : 0.0; // CI >= 0 exactly (interlacing); clip rounding
    }
    return DP_OK;
}

/* Eigenvalues mu [m] (any order) of diag(lam) - w w^T, lam [m] ascending: the rank-1
 * downdate as the secular equation of LAPACK's divide and conquer. Negated, it is the update
 * diag(D) + rho z z^T with D = -lam reversed (ascending), rho = ||w||^2, z = w / ||w||,
 * whose roots dp_secular_roots finds (secular.c). Deflation as in dlaed2: a component
 * with rho |z_j| <= tol keeps its pole as an eigenvalue; two poles closer than the rotation
 * can resolve are merged by a Givens rotation, one of them keeping its (rotated) pole.
 * Scratch: D, z, dl, zk, delta, nu, zz [m] each. Returns dlaed4's info (0 = fine). */
static int downdate_eigs(int m, const double *lam, const double *w, double *mu, double *D,
                         double *z, double *dl, double *zk, double *delta, double *nu, double *zz) {
    double rho = 0, dmax = 0;
    for (int i = 0; i < m; i++) rho += w[i] * w[i];
    if (rho == 0) {
        for (int i = 0; i < m; i++) mu[i] = lam[i];
        return 0;
    }
    double nrm = sqrt(rho);
    for (int j = 0; j < m; j++) {
        D[j] = -lam[m - 1 - j];
        z[j] = w[m - 1 - j] / nrm;
        if (fabs(D[j]) > dmax) dmax = fabs(D[j]);
    }
    double tol = 8 * DBL_EPSILON * (dmax > rho ? dmax : rho);
    int K = 0, nd = 0, pj = -1;
    for (int j = 0; j < m; j++) {
        if (rho * fabs(z[j]) <= tol) { // no weight on this pole: it stays an eigenvalue
            mu[nd++] = -D[j];
            continue;
        }
        if (pj < 0) {
            pj = j;
            continue;
        }
        double s = z[pj], c = z[j], tau = hypot(c, s), t = D[j] - D[pj];
        c /= tau, s = -s / tau;
        if (fabs(t * c * s) <= tol) { // (nearly) equal poles: rotate the weight onto j
            z[j] = tau, z[pj] = 0;
            double dp = D[pj] * c * c + D[j] * s * s;
            D[j] = D[pj] * s * s + D[j] * c * c;
            mu[nd++] = -dp;
        } else {
            dl[K] = D[pj], zk[K] = z[pj], K++;
        }
        pj = j;
    }
    if (pj >= 0) dl[K] = D[pj], zk[K] = z[pj], K++;
    int info = dp_secular_roots(K, dl, zk, rho, nu, zz, delta, NULL);
    for (int i = 0; i < K; i++) mu[nd++] = -nu[i];
    return info;
}

dp_status dp_ci_image(int C, int P, const float *A, double *ci, double *ws, size_t ws_len,
                      dp_error *err) {
    dp_status arg_st = check_ci_args(C, P, ws_len, err);
    if (arg_st != DP_OK) return arg_st;
    int gram_rows = C <= P; // G = A A^T (C x C), else A^T A (P x P)
    int m = gram_rows ? C : P;
    size_t CP = (size_t)C * P, mm = (size_t)m * m;
    int lwork = 1 + 6 * m + 2 * m * m, liwork = 3 + 5 * m;
    double *Ad = ws, *V = Ad + CP, *lam = V + mm, *work = lam + m;
    int *iwork = (int *)(work + lwork);
    double *Wm = work + lwork + (liwork + 1) / 2 + 2; // [C, m]
    double *D = Wm + (size_t)C * m, *z = D + m, *dl = z + m, *zk = dl + m, *delta = zk + m;
    double *mu = delta + m, *nu = mu + m, *zz = nu + m;
    for (size_t i = 0; i < CP; i++) Ad[i] = A[i];
    if (gram_rows)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, C, P, 1.0, Ad, P, 0.0, V, C);
    else
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, P, C, 1.0, Ad, P, 0.0, V, P);
    // row-major upper = column-major lower; dsyevd returns column-major eigenvectors
    int info = 0;
    dsyevd_("V", "L", &m, V, &m, lam, work, &lwork, iwork, &liwork, &info, 1, 1);
    if (info) return dp_fail(err, DP_ERR_NUMERIC, "ci: dsyevd failed (info %d)", info);
    for (int i = 0; i < m; i++) lam[i] = lam[i] > 0 ? lam[i] : 0.0;
    double lmax = lam[m - 1];
    double tol = lmax > 0 ? m * DBL_EPSILON * lmax : 0;
    double full = nuclear_from_eig(m, lam, tol);
    // w for channel c in the eigenbasis: zeroing row c of A subtracts w w^T from diag(lam)
    if (gram_rows) {
        // A = V S U^T, row c of A = U S V[c, :]^T: w_i = sqrt(lam_i) V[c, i]
        for (int c = 0; c < C; c++)
            for (int i = 0; i < m; i++) Wm[(size_t)c * m + i] = V[(size_t)i * m + c] * sqrt(lam[i]);
    } else {
        // w = V^T a_c for every c at once: Wm [C, P] = A [C, P] V (V column-major = V^T rows)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, P, P, 1.0, Ad, P, V, P, 0.0, Wm, P);
    }
    for (int c = 0; c < C; c++) {
        const double *ac = Ad + (size_t)c * P;
        int zero = 1;
        for (int p = 0; p < P && zero; p++) zero = ac[p] == 0;
        if (zero) continue; // a dead row changes nothing: CI = 0 exactly
        info = downdate_eigs(m, lam, Wm + (size_t)c * m, mu, D, z, dl, zk, delta, nu, zz);
        if (info) return dp_fail(err, DP_ERR_NUMERIC, "ci: dlaed4 failed (info %d)", info);
        double v = full - nuclear_from_eig(m, mu, tol);
        ci[c] += v > 0 ? v : 0.0;
    }
    return DP_OK;
}

// singular values of the row-major R [rows, P] (destroyed) = column-major P x rows
static int svd_vals(int rows, int P, double *R, double *s, double *work, int lwork, int *iwork) {
    int m = P, n = rows, info = 0, one = 1;
    double dummy = 0;
    if (rows == 0) return 0;
    dgesdd_("N", &m, &n, R, &m, s, &dummy, &one, &dummy, &one, work, &lwork, iwork, &info, 1);
    return info;
}

dp_status dp_ci_image_direct(int C, int P, const float *A, double *ci, double *ws, size_t ws_len,
                             dp_error *err) {
    dp_status arg_st = check_ci_args(C, P, ws_len, err);
    if (arg_st != DP_OK) return arg_st;
    size_t CP = (size_t)C * P;
    int m = imin(C, P);
    double *Ad = ws, *R = Ad + CP, *s = R + CP, *work = s + m;
    int lwork = (int)svd_lwork(P, C);
    int *iwork = (int *)(work + lwork); // 8 m ints in the 4 m + 8 doubles reserved
    for (size_t i = 0; i < CP; i++) Ad[i] = A[i];
    memcpy(R, Ad, sizeof(double) * CP);
    int info = svd_vals(C, P, R, s, work, lwork, iwork);
    if (info) return dp_fail(err, DP_ERR_NUMERIC, "ci: dgesdd failed (info %d)", info);
    double full = 0;
    for (int i = 0; i < m; i++) full += s[i];
    for (int c = 0; c < C; c++) {
        // A with row c deleted (same singular values as with row c zeroed, minus a zero)
        memcpy(R, Ad, sizeof(double) * (size_t)c * P);
        memcpy(R + (size_t)c * P, Ad + (size_t)(c + 1) * P, sizeof(double) * (C - 1 - c) * P);
        info = svd_vals(C - 1, P, R, s, work, lwork, iwork);
        if (info) return dp_fail(err, DP_ERR_NUMERIC, "ci: dgesdd failed (info %d)", info);
        double part = 0;
        for (int i = 0; i < imin(C - 1, P); i++) part += s[i];
        ci[c] += full - part;
    }
    return DP_OK;
}

dp_status dp_nuclear_norm(int C, int P, const float *A, double *out, dp_error *err) {
    size_t len = dp_ci_workspace_doubles(C, P);
    double *ws = dp_alloc(sizeof(double) * len);
    if (!ws) return dp_fail(err, DP_ERR_NOMEM, "nuclear norm %d x %d", C, P);
    size_t CP = (size_t)C * P;
    int m = imin(C, P), lwork = (int)svd_lwork(P, C);
    double *R = ws, *s = R + CP, *work = s + m;
    for (size_t i = 0; i < CP; i++) R[i] = A[i];
    int info = svd_vals(C, P, R, s, work, lwork, (int *)(work + lwork));
    double acc = 0;
    for (int i = 0; i < m; i++) acc += s[i];
    dp_free(ws);
    if (info) return dp_fail(err, DP_ERR_NUMERIC, "nuclear norm: dgesdd failed (info %d)", info);
    *out = acc;
    return DP_OK;
}

typedef struct {
    double v;
    int i;
} ci_entry;

// decreasing CI, lower index first among equals
static int ci_cmp(const void *pa, const void *pb) {
    const ci_entry *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->i - b->i;
}

int dp_ci_keep_count(int C, const double *ci, double tau, int *order) {
    if (C <= 0) return 0;
    ci_entry *e = malloc(sizeof(ci_entry) * C);
    if (!e) return C; // keep everything rather than cut blindly
    for (int c = 0; c < C; c++) e[c].v = ci[c], e[c].i = c;
    qsort(e, C, sizeof *e, ci_cmp);
    // total summed in the same (sorted) order as the cumulative sum, so cum == total at the end
    double total = 0;
    for (int c = 0; c < C; c++) total += e[c].v;
    double cum = 0, target = tau * total;
    int keep = C;
    for (int c = 0; c < C; c++) {
        cum += e[c].v;
        if (cum > target) {
            keep = c + 1;
            break;
        }
    }
    if (order)
        for (int c = 0; c < C; c++) order[c] = e[c].i;
    free(e);
    return keep < 1 ? 1 : keep;
}
