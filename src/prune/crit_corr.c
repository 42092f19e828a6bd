/* CorrTopo (METHODS section 2): Pearson correlation of feature maps from shifted sums,
 * redundancy |rho| or the correlation-topology cosine, dead channels first, greedy
 * elimination to a base set, and the least-squares compensation folded into the consumer. */
#include "dprune/prune_criteria.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

// LAPACK (Fortran ABI, shipped inside OpenBLAS): Cholesky solve of a SPD system
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
                   double *b, const int *ldb, int *info, size_t uplo_len);

size_t dp_corr_stats_len(int C) {
    return 1 + (size_t)C + (size_t)C * C;
}

size_t dp_corr_pos_stats_len(int C, int P) {
    return dp_corr_stats_len(C) + (size_t)C * P;
}

// x [N, C, P] -> k [C] channel means over samples and pixels
void dp_corr_shift(int N, int C, int P, const float *x, double *k) {
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int n = 0; n < N; n++) {
            const float *xc = x + ((size_t)n * C + c) * P;
            for (int p = 0; p < P; p++) acc += xc[p];
        }
        k[c] = N > 0 && P > 0 ? acc / ((double)N * P) : 0.0;
    }
}

// x [C, P], k [C] -> partial [M, S[C], Q[C, C] upper] += this sample; ws [C, P]
void dp_corr_accumulate_sample(int C, int P, const float *x, const double *k, double *partial,
                               double *ws) {
    double *S = partial + 1, *Q = partial + 1 + C;
    partial[0] += P;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * P;
        double *X = ws + (size_t)c * P, acc = 0;
        for (int p = 0; p < P; p++) {
            X[p] = (double)xc[p] - k[c]; // the shift keeps Q/M - m m^T free of cancellation
            acc += X[p];
        }
        S[c] += acc;
    }
    // Q [C, C] += X X^T, upper triangle; beta = 1 accumulates in the same order every time
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, C, P, 1.0, ws, P, 1.0, Q, C);
}

dp_status dp_corr_moments(int C, const double *stats, const double *k, double *mu, double *Sigma,
                          dp_error *err) {
    double M = stats[0];
    const double *S = stats + 1, *Q = stats + 1 + C;
    if (!(M > 0)) return dp_fail(err, DP_ERR_ARG, "corrtopo: no calibration samples (M = 0)");
    for (int c = 0; c < C; c++) mu[c] = k[c] + S[c] / M;
    for (int c = 0; c < C; c++)
        for (int d = c; d < C; d++) {
            // the shift cancels: Sigma = Q/M - m m^T with m = S/M the shifted mean
            double v = Q[(size_t)c * C + d] / M - (S[c] / M) * (S[d] / M);
            Sigma[(size_t)c * C + d] = v;
            Sigma[(size_t)d * C + c] = v;
        }
    return DP_OK;
}

void dp_corr_pos_accumulate_sample(int C, int P, const float *x, const double *k, double *partial,
                                   double *ws) {
    dp_corr_accumulate_sample(C, P, x, k, partial, ws);
    double *Spos = partial + dp_corr_stats_len(C);
    for (int c = 0; c < C; c++)
        for (int p = 0; p < P; p++) Spos[(size_t)c * P + p] += (double)x[(size_t)c * P + p] - k[c];
}

dp_status dp_corr_pos_moments(int C, int P, const double *stats, const double *k, double *mu,
                              double *Sigma, double *mpos, double *Sigma_w, dp_error *err) {
    dp_status st = dp_corr_moments(C, stats, k, mu, Sigma, err);
    if (st != DP_OK) return st;
    double samples = stats[0] / P; /* every sample adds P to M */
    const double *Spos = stats + dp_corr_stats_len(C);
    for (size_t i = 0; i < (size_t)C * P; i++) mpos[i] = k[i / (size_t)P] + Spos[i] / samples;
    // Sigma_w = Sigma - (1/P) sum_p (mpos_p - mu)(mpos_p - mu)^T: each position weighs 1/P
    for (int c = 0; c < C; c++)
        for (int d = c; d < C; d++) {
            double acc = 0;
            for (int p = 0; p < P; p++)
                acc += (mpos[(size_t)c * P + p] - mu[c]) * (mpos[(size_t)d * P + p] - mu[d]);
            double v = Sigma[(size_t)c * C + d] - acc / P;
            Sigma_w[(size_t)c * C + d] = Sigma_w[(size_t)d * C + c] = v;
        }
    return DP_OK;
}

// Sigma [C, C] -> rho [C, C]
void dp_corr_pearson(int C, const double *Sigma, double *rho) {
    for (int c = 0; c < C; c++)
        for (int d = 0; d < C; d++) {
            double vc = Sigma[(size_t)c * C + c], vd = Sigma[(size_t)d * C + d];
            double r = 0;
            if (vc > 0 && vd > 0) {
                r = c == d ? 1.0 : Sigma[(size_t)c * C + d] / sqrt(vc * vd);
                if (r > 1) r = 1; // rounding
                if (r < -1) r = -1;
            }
            rho[(size_t)c * C + d] = r;
        }
}

// rho [C, C], dead [C] (or NULL) -> r [C, C]
dp_status dp_corr_redundancy(int C, const double *rho, const uint8_t *dead, int topology, double *r,
                             dp_error *err) {
    size_t CC = (size_t)C * C;
    // u_c = profile of |rho_ce| over live e != c (zero entries elsewhere)
    for (int c = 0; c < C; c++)
        for (int e = 0; e < C; e++) {
            int skip = c == e || (dead && (dead[c] || dead[e]));
            r[(size_t)c * C + e] = skip ? 0.0 : fabs(rho[(size_t)c * C + e]);
        }
    if (!topology) return DP_OK;
    double *U = dp_alloc(sizeof(double) * CC), *G = dp_alloc(sizeof(double) * CC);
    if (!U || !G) {
        dp_free(U), dp_free(G);
        return dp_fail(err, DP_ERR_NOMEM, "corrtopo: topology of %d channels", C);
    }
    memcpy(U, r, sizeof(double) * CC);
    // G = U U^T: all profile dot products at once
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, C, C, 1.0, U, C, U, C, 0.0, G, C);
    for (int c = 0; c < C; c++)
        for (int d = 0; d < C; d++) {
            double v = 0;
            if (c != d && !(dead && (dead[c] || dead[d]))) {
                // compare over the common set e not in {c, d}: U[c][c] = U[d][d] = 0 already,
                // so only the norms lose the entries U[c][d] and U[d][c]
                double ucd = U[(size_t)c * C + d], udc = U[(size_t)d * C + c];
                double nc = G[(size_t)c * C + c] - ucd * ucd;
                double nd = G[(size_t)d * C + d] - udc * udc;
                if (nc > 0 && nd > 0) v = G[(size_t)c * C + d] / sqrt(nc * nd);
                if (v > 1) v = 1;
                if (v < 0) v = 0;
            }
            r[(size_t)c * C + d] = v;
        }
    // exact symmetry (the GEMM need not give G[c][d] == G[d][c] bit for bit)
    for (int c = 0; c < C; c++)
        for (int d = c + 1; d < C; d++) r[(size_t)d * C + c] = r[(size_t)c * C + d];
    dp_free(U), dp_free(G);
    return DP_OK;
}

// mean redundancy of c to the other kept live channels (sum; same denominator for both)
static double kept_sum(int C, const double *r, const uint8_t *kept, int c) {
    double acc = 0;
    for (int e = 0; e < C; e++)
        if (kept[e] && e != c) acc += r[(size_t)c * C + e];
    return acc;
}

dp_status dp_corr_eliminate(int C, const double *r, const uint8_t *dead, const double *var,
                            dp_corr_remove remove, int *order, double *value, dp_error *err) {
    if (C <= 0) return dp_fail(err, DP_ERR_ARG, "corrtopo: no channels");
    uint8_t *kept = dp_alloc((size_t)C);
    if (!kept) return dp_fail(err, DP_ERR_NOMEM, "corrtopo: elimination of %d channels", C);
    int t = 0, nlive = 0;
    for (int c = 0; c < C; c++) {
        if (dead && dead[c]) {
            order[t] = c, value[t] = DP_CORR_DEAD_VALUE, t++;
        } else {
            kept[c] = 1, nlive++;
        }
    }
    if (nlive == 0) { // all dead: the last one stands as the survivor
        value[C - 1] = -1;
        dp_free(kept);
        return DP_OK;
    }
    while (nlive > 1) {
        // largest r over kept pairs; strict > keeps the lowest (c, d) among ties
        int bc = -1, bd = -1;
        double best = -1;
        for (int c = 0; c < C; c++) {
            if (!kept[c]) continue;
            const double *rc = r + (size_t)c * C;
            for (int d = c + 1; d < C; d++)
                if (kept[d] && rc[d] > best) best = rc[d], bc = c, bd = d;
        }
        double sc = kept_sum(C, r, kept, bc), sd = kept_sum(C, r, kept, bd);
        int x;
        if (remove == DP_CORR_REMOVE_WEAKER && var[bc] != var[bd]) {
            x = var[bc] < var[bd] ? bc : bd; // either rebuilds the other: keep the strong map
        } else if (sc != sd) {
            x = sc > sd ? bc : bd;
        } else if (var[bc] != var[bd]) {
            x = var[bc] < var[bd] ? bc : bd; // the weaker map goes
        } else {
            x = bd; // larger index
        }
        kept[x] = 0, nlive--;
        order[t] = x, value[t] = best, t++;
    }
    for (int c = 0; c < C; c++)
        if (kept[c]) order[t] = c, value[t] = -1, t++;
    dp_free(kept);
    return DP_OK;
}

void dp_corr_result_free(dp_corr_result *res) {
    dp_free(res->order), dp_free(res->value), dp_free(res->dead);
    dp_free(res->mu), dp_free(res->var), dp_free(res->Sigma);
    memset(res, 0, sizeof *res);
}

dp_status dp_corr_run(int C, const double *stats, const double *k, int topology,
                      dp_corr_remove remove, dp_corr_result *res, dp_error *err) {
    memset(res, 0, sizeof *res);
    if (C <= 0) return dp_fail(err, DP_ERR_ARG, "corrtopo: no channels");
    size_t CC = (size_t)C * C;
    res->C = C;
    res->order = dp_alloc(sizeof(int) * C);
    res->value = dp_alloc(sizeof(double) * C);
    res->dead = dp_alloc((size_t)C);
    res->mu = dp_alloc(sizeof(double) * C);
    res->var = dp_alloc(sizeof(double) * C);
    res->Sigma = dp_alloc(sizeof(double) * CC);
    double *rho = dp_alloc(sizeof(double) * CC), *r = dp_alloc(sizeof(double) * CC);
    dp_status st = DP_OK;
    if (!res->order || !res->value || !res->dead || !res->mu || !res->var || !res->Sigma || !rho ||
        !r) {
        st = dp_fail(err, DP_ERR_NOMEM, "corrtopo: %d channels", C);
        goto done;
    }
    if ((st = dp_corr_moments(C, stats, k, res->mu, res->Sigma, err))) goto done;
    double maxvar = 0;
    for (int c = 0; c < C; c++) {
        res->var[c] = res->Sigma[(size_t)c * C + c];
        if (res->var[c] > maxvar) maxvar = res->var[c];
    }
    for (int c = 0; c < C; c++) {
        res->dead[c] = res->var[c] <= DP_CORR_DEAD_REL * maxvar;
        res->ndead += res->dead[c];
    }
    dp_corr_pearson(C, res->Sigma, rho);
    if ((st = dp_corr_redundancy(C, rho, res->dead, topology, r, err))) goto done;
    st = dp_corr_eliminate(C, r, res->dead, res->var, remove, res->order, res->value, err);
done:
    dp_free(rho), dp_free(r);
    if (st) dp_corr_result_free(res);
    return st;
}

int dp_corr_kept_count(const dp_corr_result *res, double tau) {
    int removed = 0;
    // values are non-increasing, so the removed steps are a prefix of the order
    while (removed < res->C - 1 && res->value[removed] >= tau) removed++;
    return res->C - removed;
}

void dp_corr_keep_mask(const dp_corr_result *res, int nkeep, uint8_t *keep) {
    if (nkeep < 1) nkeep = 1;
    if (nkeep > res->C) nkeep = res->C;
    for (int t = 0; t < res->C; t++) keep[res->order[t]] = t >= res->C - nkeep;
}

void dp_corr_scores(const dp_corr_result *res, double *scores) {
    for (int t = 0; t < res->C; t++) scores[res->order[t]] = t + 1;
}

dp_status dp_corr_compensation(int C, const double *Sigma, const double *mu, int nk,
                               const int *kept, int nd, const int *removed, double ridge, double *B,
                               double *a, dp_error *err) {
    if (nk <= 0 || nd < 0 || nk + nd > C)
        return dp_fail(err, DP_ERR_ARG, "corrtopo compensation: %d kept + %d removed of %d", nk, nd,
                       C);
    if (nd == 0) return DP_OK;
    double *Mkk = dp_alloc(sizeof(double) * nk * nk), *X = dp_alloc(sizeof(double) * nk * nd);
    if (!Mkk || !X) {
        dp_free(Mkk), dp_free(X);
        return dp_fail(err, DP_ERR_NOMEM, "corrtopo compensation: %d x %d", nk, nd);
    }
    double trace = 0;
    for (int i = 0; i < nk; i++) trace += Sigma[(size_t)kept[i] * C + kept[i]];
    double lam = ridge * trace / nk;
    // symmetric, so row/column major do not matter for Mkk; X is column-major nk x nd
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < nk; j++)
            Mkk[(size_t)i * nk + j] = Sigma[(size_t)kept[i] * C + kept[j]] + (i == j ? lam : 0);
    for (int d = 0; d < nd; d++)
        for (int i = 0; i < nk; i++)
            X[(size_t)d * nk + i] = Sigma[(size_t)kept[i] * C + removed[d]];
    int info = 0;
    if (trace > 0) {
        dposv_("U", &nk, &nd, Mkk, &nk, X, &nk, &info, 1);
    } else {
        // every kept map is constant: nothing to regress on, only the offsets remain
        memset(X, 0, sizeof(double) * nk * nd);
    }
    if (info != 0) {
        dp_free(Mkk), dp_free(X);
        return dp_fail(err, DP_ERR_NUMERIC,
                       "corrtopo compensation: Sigma_KK + lam I not positive definite "
                       "(dposv info %d, lam %g)",
                       info, lam);
    }
    for (int i = 0; i < nk; i++)
        for (int d = 0; d < nd; d++) B[(size_t)i * nd + d] = X[(size_t)d * nk + i];
    for (int d = 0; d < nd; d++) {
        double acc = mu[removed[d]];
        for (int i = 0; i < nk; i++) acc -= B[(size_t)i * nd + d] * mu[kept[i]];
        a[d] = acc;
    }
    dp_free(Mkk), dp_free(X);
    return DP_OK;
}

// W [O, C, kk] -> Wout [O, nk, kk], delta [O]
void dp_corr_fold_consumer(int O, int C, int kk, const float *W, int nk, const int *kept, int nd,
                           const int *removed, const double *B, const double *a, float *Wout,
                           double *delta) {
    for (int o = 0; o < O; o++) {
        const float *Wo = W + (size_t)o * C * kk;
        for (int i = 0; i < nk; i++) {
            const float *wk = Wo + (size_t)kept[i] * kk;
            float *out = Wout + ((size_t)o * nk + i) * kk;
            for (int j = 0; j < kk; j++) {
                double acc = wk[j];
                if (B)
                    for (int d = 0; d < nd; d++)
                        acc += B[(size_t)i * nd + d] * Wo[(size_t)removed[d] * kk + j];
                out[j] = (float)acc;
            }
        }
        double acc = 0;
        for (int d = 0; d < nd && a; d++) {
            const float *wd = Wo + (size_t)removed[d] * kk;
            double sum = 0;
            for (int j = 0; j < kk; j++) sum += wd[j];
            acc += a[d] * sum;
        }
        delta[o] = acc;
    }
}

void dp_corr_fold_offset_pos(int O, int C, int kk, const float *W, int nd, const int *removed,
                             const double *a_pos, double *delta) {
    for (int o = 0; o < O; o++) {
        double acc = 0;
        for (int d = 0; d < nd; d++) {
            const float *wd = W + ((size_t)o * C + (size_t)removed[d]) * kk;
            const double *ad = a_pos + (size_t)d * kk;
            for (int j = 0; j < kk; j++) acc += ad[j] * wd[j];
        }
        delta[o] += acc;
    }
}
