/* dprune data-driven pruning criteria (METHODS.md sections 1-4): pure math on feature maps
 * and their statistics. No MPI, no graph: the caller (calibration, planner, surgery) walks
 * the network, moves partial sums between ranks and applies the results.
 *
 * Conventions
 * - A layer's feature maps arrive as post-ReLU float activations x [N, C, P] (NCHW with
 *   P = H*W) for N consecutive samples of global indices first_index .. first_index+N-1.
 * - Everything is accumulated and computed in double.
 * - Scores: higher = more important.
 * - Statistics are plain sums kept per fixed block of global sample indices (see
 *   "calibration partials"), so that 1, 2 or 4 ranks produce bitwise-identical totals.
 */
#ifndef DPRUNE_PRUNE_CRITERIA_H
#define DPRUNE_PRUNE_CRITERIA_H

#include "dprune/core.h"
#include <stddef.h>
#include <stdint.h>

/* ======================= calibration partials (calib_stats.c) =======================
 * Floating-point sums depend on their order, so statistics are never summed "per rank".
 * Instead every block of DP_CALIB_BLOCK consecutive global sample indices has its own
 * partial buffer of len doubles; a block's samples are added to it one sample at a time in
 * increasing global index order (whoever holds the block, however it is batched), and the
 * totals are the partials folded in increasing block order: acc = ((0 + p0) + p1) + ...
 * A rank holds a contiguous range of blocks (dp_calib_block_range). Two ways for the lead
 * to reduce, both giving the 1-rank result bit for bit:
 *   - gather: rank 0 receives every rank's block range into one container covering all
 *     blocks (dp_calib_partials_put) and folds it (dp_calib_fold);
 *   - chain: rank r receives acc from rank r-1, folds its own blocks into it
 *     (dp_calib_fold), passes it on; the last rank holds the total.
 * (An MPI_Reduce(SUM) of zero-padded all-block buffers is also exact: x + 0 == x.) */
enum { DP_CALIB_BLOCK = 32 };

typedef struct {
    int64_t first_block; /* global index of the first block held */
    int64_t nblocks;     /* blocks held: [first_block, first_block + nblocks) */
    int block_size;      /* samples per block (DP_CALIB_BLOCK unless testing) */
    size_t len;          /* doubles per partial */
    double *part;        /* [nblocks][len], zero-initialised */
    uint8_t *touched;    /* [nblocks]: 1 once any sample was added (for checks) */
    int64_t *next_index; /* [nblocks]: next global sample index expected in the block */
} dp_calib_partials;

/* Blocks of a calibration set of nsamples split over nranks: rank gets the contiguous range
 * [*first_block, *first_block + *nblocks) (balanced, lower ranks take the remainder), i.e.
 * samples [first_block*block_size, min(nsamples, (first_block+nblocks)*block_size)). */
void dp_calib_block_range(int64_t nsamples, int block_size, int rank, int nranks,
                          int64_t *first_block, int64_t *nblocks);
int64_t dp_calib_nblocks(int64_t nsamples, int block_size);
dp_status dp_calib_partials_init(dp_calib_partials *p, int64_t first_block, int64_t nblocks,
                                 int block_size, size_t len, dp_error *err);
void dp_calib_partials_free(dp_calib_partials *p);
/* Partial buffer [len] of the block holding global sample index; NULL if not held here.
 * Also checks (and advances) the in-order rule: samples of a block must arrive in
 * increasing global index order, without gaps; returns NULL (and sets err) otherwise. */
double *dp_calib_partial_for_sample(dp_calib_partials *p, int64_t global_index, dp_error *err);
/* Copy the blocks held by src into dst (dst must cover them, same len/block_size): the
 * receiving side of a gather. */
dp_status dp_calib_partials_put(dp_calib_partials *dst, const dp_calib_partials *src,
                                dp_error *err);
/* acc [len] += partials in increasing block order, one block at a time. */
void dp_calib_fold(const dp_calib_partials *p, double *acc);

/* ---- per-sample accumulators (one sample's map x [C, P] into one block partial) ---- */
/* RMS / CIP / NISP feature statistics: partial layout [M, sumsq[C]] (len = 1 + C);
 * M counts (sample, pixel) pairs. */
size_t dp_rms_stats_len(int C);
void dp_rms_accumulate_sample(int C, int P, const float *x, double *partial);
/* HRank: partial layout [images, rank_sum[C]] (len = 1 + C). */
size_t dp_hrank_stats_len(int C);
/* CI: partial layout [images, ci_sum[C]] (len = 1 + C). */
size_t dp_ci_stats_len(int C);
/* CorrTopo: partial layout [M, S[C], Q[C*C] (upper triangle used)] (len = 1 + C + C*C). */
size_t dp_corr_stats_len(int C);
/* CorrTopo plus per-position sums (a map a linear layer reads column by column): layout
 * [M, S[C], Q[C*C], Spos[C*P]] with Spos[c*P + p] = sum over samples of (x[c, p] - k_c). */
size_t dp_corr_pos_stats_len(int C, int P);

/* Batch drivers: split x [N, C, P] (global indices first_index..) into their blocks and
 * add each sample to its block's partial. ws: see each function. */
dp_status dp_rms_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int P,
                            const float *x, dp_error *err);
/* k [C]: the shift (dp_corr_shift); ws: C*P doubles. */
dp_status dp_corr_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int P,
                             const float *x, const double *k, double *ws, dp_error *err);
/* The same with per-position sums (dp_corr_pos_stats_len layout). */
dp_status dp_corr_pos_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int P,
                                 const float *x, const double *k, double *ws, dp_error *err);
/* H*W = P; ws: dp_hrank_workspace_doubles(H, W) doubles. */
dp_status dp_hrank_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int H, int W,
                              const float *x, double *ws, size_t ws_len, dp_error *err);
/* ws: dp_ci_workspace_doubles(C, P) doubles. */
dp_status dp_ci_accumulate(dp_calib_partials *p, int64_t first_index, int N, int C, int P,
                           const float *x, double *ws, size_t ws_len, dp_error *err);

/* ======================= CorrTopo (crit_corr.c), METHODS section 2 ======================= */
#define DP_CORR_TAU_DEFAULT 0.9
#define DP_CORR_RIDGE_DEFAULT 1e-4 /* lam = ridge * trace(Sigma_KK) / |K| */
#define DP_CORR_DEAD_REL 1e-6      /* dead: Sigma_cc <= 1e-6 * max_c Sigma_cc */
#define DP_CORR_DEAD_VALUE 2.0     /* removal value of a dead channel: above any |rho| */

/* Shift k [C] = channel means of x [N, C, P] (use the first calibration block, global
 * samples 0..DP_CALIB_BLOCK-1: rank 0 holds it for any rank count; then broadcast). */
void dp_corr_shift(int N, int C, int P, const float *x, double *k);
/* Add one sample x [C, P] to a CorrTopo partial: M += P, S_c += sum_p (x - k_c),
 * Q += X X^T (upper triangle, one DSYRK) with X [C, P] the shifted map. ws: C*P doubles. */
void dp_corr_accumulate_sample(int C, int P, const float *x, const double *k, double *partial,
                               double *ws);
/* From folded stats [dp_corr_stats_len(C)] and k: true means mu [C], covariance Sigma [C, C]
 * (full, symmetric): m = S/M, Sigma = Q/M - m m^T, mu = k + m. M == 0 is an error. */
dp_status dp_corr_moments(int C, const double *stats, const double *k, double *mu, double *Sigma,
                          dp_error *err);
/* Per-position sample x [C, P] into a dp_corr_pos_stats_len partial. ws: C*P doubles. */
void dp_corr_pos_accumulate_sample(int C, int P, const float *x, const double *k, double *partial,
                                   double *ws);
/* From per-position stats: mu [C] and Sigma [C, C] as dp_corr_moments, the per-position means
 * mpos [C*P], and Sigma_w [C, C], the covariance around the per-position means (the pooled
 * Sigma minus the spread of mpos around mu): what a reconstruction with one offset per position
 * leaves to explain. */
dp_status dp_corr_pos_moments(int C, int P, const double *stats, const double *k, double *mu,
                              double *Sigma, double *mpos, double *Sigma_w, dp_error *err);

typedef struct {
    int C;
    int ndead;
    int *order;    /* [C] removal order; order[C-1] is the last survivor (never removed) */
    double *value; /* [C] m_t of each removal step (non-increasing); DP_CORR_DEAD_VALUE for
                      dead channels (they come first); value[C-1] = -1 (survivor) */
    uint8_t *dead; /* [C] 1 if dead */
    double *mu;    /* [C] true means (dead channels: the constant to fold) */
    double *var;   /* [C] Sigma_cc */
    double *Sigma; /* [C, C] covariance (for compensation) */
} dp_corr_result;

/* Pearson rho [C, C] from Sigma: rho_cd = Sigma_cd / sqrt(Sigma_cc Sigma_dd), 0 where
 * either variance is 0; rho_cc = 1 for live channels. */
void dp_corr_pearson(int C, const double *Sigma, double *rho);
/* Redundancy r [C, C] from rho: |rho| (topology = 0), or (topology = 1) the cosine of the
 * |rho| profiles u_c = (|rho_ce|)_e of two channels over the channels e != c, d (so exact
 * duplicates get 1); 0 if a profile is all zero. Diagonal set to 0. Dead channels (dead[c])
 * get zero rows/columns and are left out of every profile. */
dp_status dp_corr_redundancy(int C, const double *rho, const uint8_t *dead, int topology, double *r,
                             dp_error *err);
/* Which member of the most redundant kept pair an elimination step removes. */
typedef enum {
    DP_CORR_REMOVE_REDUNDANCY, /* the larger mean redundancy to the other kept channels (METHODS) */
    DP_CORR_REMOVE_WEAKER,     /* the smaller variance (ties: as REDUNDANCY); NOTES.md */
} dp_corr_remove;
/* Whole criterion from folded stats: moments, dead detection, redundancy, greedy
 * elimination. res is allocated here (dp_corr_result_free). */
dp_status dp_corr_run(int C, const double *stats, const double *k, int topology,
                      dp_corr_remove remove, dp_corr_result *res, dp_error *err);
/* Greedy elimination on a given redundancy r [C, C] (diagonal ignored), dead [C], var [C]:
 * fills order [C] and value [C] as in dp_corr_result. While more than one live channel is
 * kept: take the kept pair with the largest r (ties: lower indices), record it, remove the
 * member with the larger mean redundancy to the other kept channels (ties: smaller
 * variance, then larger index); with DP_CORR_REMOVE_WEAKER the member with the smaller
 * variance (ties: as before). ws: 2*C doubles + C bytes, allocated inside. */
dp_status dp_corr_eliminate(int C, const double *r, const uint8_t *dead, const double *var,
                            dp_corr_remove remove, int *order, double *value, dp_error *err);
void dp_corr_result_free(dp_corr_result *res);
/* Threshold mode: channels kept for tau = C - #{removal steps with m_t >= tau}. Dead
 * channels always go. The count is non-decreasing in tau, so the planner can bisect one
 * global tau for a channel/FLOPs budget (budget mode). */
int dp_corr_kept_count(const dp_corr_result *res, double tau);
/* keep [C] = 1 for the channels kept when the first C - nkeep of the order are removed. */
void dp_corr_keep_mask(const dp_corr_result *res, int nkeep, uint8_t *keep);
/* Scores for global rankings: channel removed at step t gets t + 1 (survivor gets C). */
void dp_corr_scores(const dp_corr_result *res, double *scores);

/* Compensation (compensate = true): for kept K [nk] and removed D [nd] (ascending indices),
 * B [nk, nd] = (Sigma_KK + lam I)^-1 Sigma_KD with lam = ridge * trace(Sigma_KK) / nk, and
 * a [nd] = mu_D - B^T mu_K. ridge = DP_CORR_RIDGE_DEFAULT normally (0 only for tests).
 * Dead removed channels get B column ~0 and a = mu. */
dp_status dp_corr_compensation(int C, const double *Sigma, const double *mu, int nk,
                               const int *kept, int nd, const int *removed, double ridge, double *B,
                               double *a, dp_error *err);
/* Fold removed input channels into a consumer with weights W [O, C, kk] (conv: kk = kh*kw;
 * linear after flatten: kk = H*W columns per channel):
 *   Wout [O, nk, kk] = W[:, K, :] + sum_d B[k, d] W[:, D_d, :]   (B NULL: no compensation),
 *   delta [O] = sum_d a_d * sum_kk W[o, D_d, :]                   (a NULL: 0),
 * or, with a_pos [nd, kk] (one offset per column: a linear reading a map position by
 * position), delta [O] = sum_d sum_j a_pos[d, j] W[o, D_d, j]; use a = NULL then and
 * dp_corr_fold_offset_pos for delta.
 * The caller adds delta to the consumer's bias, or subtracts it from the running mean of
 * the BN that follows a bias-free conv. Exact away from zero-padded borders. */
void dp_corr_fold_consumer(int O, int C, int kk, const float *W, int nk, const int *kept, int nd,
                           const int *removed, const double *B, const double *a, float *Wout,
                           double *delta);
/* delta [O] += sum_d sum_j a_pos[d * kk + j] W[o, D_d, j]. */
void dp_corr_fold_offset_pos(int O, int C, int kk, const float *W, int nd, const int *removed,
                             const double *a_pos, double *delta);

/* ===================== CI: channel independence (crit_ci.c), section 4 ===================== */
/* Doubles of workspace for one image of C channels x P pixels (either route). */
size_t dp_ci_workspace_doubles(int C, int P);
/* ci [C] += CI of one image A [C, P]: CI(c) = ||A||_* - ||A with row c zeroed||_*.
 * Gram route, m = min(C, P): one eigendecomposition (dsyevd) of the m x m Gram matrix
 * G = A A^T (C <= P) or A^T A (P < C), G = V diag(lam) V^T. Zeroing row c leaves the
 * nonzero eigenvalues of diag(lam) - w w^T (w = sqrt(lam) * V[c, :] for C <= P, which are
 * exactly those of G with row/column c deleted; w = V^T a_c for P < C, the rank-1 downdate
 * A^T A - a_c a_c^T), found by the secular equation (LAPACK dlaed4) in O(m^2) per channel.
 * Eigenvalues below m * eps * lambda_max are rounding noise of a zero and count as 0.
 * An all-zero row gets exactly 0. Returns DP_ERR_NUMERIC if LAPACK fails. */
dp_status dp_ci_image(int C, int P, const float *A, double *ci, double *ws, size_t ws_len,
                      dp_error *err);
/* The same through one dsyevd per channel on the deleted/downdated Gram matrix (the
 * literal METHODS recipe; slower than dp_ci_image, kept as a second check). */
dp_status dp_ci_image_eig(int C, int P, const float *A, double *ci, double *ws, size_t ws_len,
                          dp_error *err);
/* Naive reference: one SVD (dgesdd) of A and one per channel with row c deleted. */
dp_status dp_ci_image_direct(int C, int P, const float *A, double *ci, double *ws, size_t ws_len,
                             dp_error *err);
/* Nuclear norm of A [C, P] by SVD (for checks). */
dp_status dp_nuclear_norm(int C, int P, const float *A, double *out, dp_error *err);

/* All K roots (ascending) of 1/rho + sum_j z_j^2 / (d_j - x) = 0: the eigenvalues of
 * diag(d) + rho z z^T, for d strictly ascending, ||z|| = 1, no z_j = 0, rho > 0 (deflate
 * first, as dlaed2 does). Scratch zz, delta [K]. A root the iteration does not settle is
 * found by LAPACK's dlaed4 instead, counted in *fallbacks (may be NULL). Returns dlaed4's
 * info (0 = fine). See secular.c. */
int dp_secular_roots(int K, const double *d, const double *z, double rho, double *roots, double *zz,
                     double *delta, int *fallbacks);
/* Width rule (CCM-LRR): the smallest number of highest-CI channels whose cumulative CI
 * exceeds tau * total (ties: lower index first; at least 1, at most C). order [C] (may be
 * NULL) receives the channel indices by decreasing CI. */
int dp_ci_keep_count(int C, const double *ci, double tau, int *order);

/* ===================== HRank (crit_hrank.c), section 1 ===================== */
size_t dp_hrank_workspace_doubles(int H, int W);
/* Rank of one H x W map: number of singular values > sigma_max * max(H, W) * FLT_EPSILON
 * (0 for an all-zero map). -1 if LAPACK fails. */
int dp_hrank_map_rank(int H, int W, const float *map, double *ws, size_t ws_len);
/* ranks [C] += rank of each channel's map of one image x [C, H*W]. */
dp_status dp_hrank_image(int C, int H, int W, const float *x, double *ranks, double *ws,
                         size_t ws_len, dp_error *err);

/* ===================== CIP (crit_cip.c), section 3 ===================== */
typedef enum { DP_CIP_PHI_TANH = 0, DP_CIP_PHI_ONE = 1 /* plain NISP */ } dp_cip_phi;
/* phi [C] from folded RMS stats [1 + C]: a_c = sqrt(sumsq_c / M), z = a / mean(a),
 * phi(z) = tanh(z) (or 1). A layer with mean(a) == 0 gets phi = 0 (tanh) / 1 (NISP). */
dp_status dp_cip_feature(int C, const double *stats, dp_cip_phi kind, double *phi, dp_error *err);
/* Kernel term A [O, I] of a consumer conv W [O, I, kk] followed by BN (gamma, var [O],
 * eps): A[o, i] = |g_o| / sqrt(v_o + eps) * sum_kk |W[o, i, :]|. gamma == NULL: no BN
 * (factor 1). Also serves a projection shortcut. */
void dp_cip_kernel(int O, int I, int kk, const float *W, const float *gamma, const float *var,
                   float eps, double *A);
/* s [n] /= sum(s); an all-zero (or non-positive sum) vector becomes uniform 1/n. */
void dp_cip_normalize(int n, double *s);
/* Seed at the last feature layer from the classifier Wfc [K, C*HW] (flatten order c*HW+p):
 * s_c = sum_k sum_p |Wfc[k, c*HW + p]|, normalized. */
void dp_cip_seed_fc(int K, int C, int HW, const float *Wfc, double *s);
/* One plain step: t = A^T s_next (A [O, I]), s [I] = normalize(phi * t). */
void dp_cip_propagate(int O, int I, const double *A, const double *s_next, const double *phi,
                      double *s);

typedef enum {
    DP_CIP_SHORT_IDENTITY = 0, /* C_out == C_in */
    DP_CIP_SHORT_PAD = 1,      /* zero-padding (option A): out channel pad_before + i <- in i */
    DP_CIP_SHORT_PROJ = 2,     /* 1x1 conv + BN: A_short [C_out, C_in] from dp_cip_kernel */
} dp_cip_shortcut;

/* Residual block: x_in [C_in] -> conv1 -> x_mid [C_mid] -> conv2 -> (+ shortcut) -> s_out.
 *   s_mid = normalize(phi_mid * A2^T s_out)                    (A2 [C_out, C_mid])
 *   t_in  = normalize(A_short^T s_out) + normalize(A1^T s_mid)  (A1 [C_mid, C_in])
 *   s_in  = normalize(phi_in * t_in)
 * A_short: [C_out, C_in] for PROJ, else ignored; pad_before for PAD. ws: C_in doubles. */
void dp_cip_residual_block(int C_in, int C_mid, int C_out, const double *A1, const double *A2,
                           dp_cip_shortcut kind, const double *A_short, int pad_before,
                           const double *phi_mid, const double *phi_in, const double *s_out,
                           double *s_mid, double *s_in, double *ws);
/* Cubic schedule (Zhu & Gupta): p_t = p_final * (1 - (1 - t/n)^3), t = 0..n (clamped);
 * n <= 0 gives p_final. */
double dp_cip_schedule(double p_final, int t, int n);
/* Channels soft-zeroed at step t of C: floor(p_t * C) (never above the final target). */
int dp_cip_schedule_count(int C, double p_final, int t, int n);
/* The step done at the end of epoch e (1-based) of a schedule of n steps over E epochs: steps
 * t = 1..n fall on the ends of epochs t * E / n (E a multiple of n; step 0, which zeroes
 * nothing, is the schedule's start). -1 when e ends no step. */
int dp_cip_step_at_epoch(int e, int E, int n);

/* ===================== PCC loss (pcc_loss.c), section 4 ===================== */
/* Doubles of workspace for one sample of C x P. */
size_t dp_pcc_workspace_doubles(int C, int P);
/* pcc of one post-ReLU map A [C, P] (in [0, 1]; 0 when C < 2):
 *   x_c = a_c - mean_p a_c, s_c = sqrt(||x_c||^2 + 1e-5 P), z_c = x_c / s_c, R = Z Z^T,
 *   pcc = 1/(C(C-1)) sum_{i != j} R_ij^2.
 * If dpcc != NULL: dpcc [C, P] = d pcc / d A (overwritten). */
double dp_pcc_sample(int C, int P, const float *A, double *dpcc, double *ws, size_t ws_len);
/* The same, for training: dA [C, P] = scale * d pcc / d A as float (overwritten; zeros when
 * C < 2 or the workspace is too small). */
double dp_pcc_sample_grad(int C, int P, const float *A, double scale, float *dA, double *ws,
                          size_t ws_len);
/* Loss term of one layer for a local batch A [N, C, P] (ws: dp_pcc_workspace_doubles(C, P)
 * doubles, plus C*P more when dA != NULL; NaN if too small): returns
 * -lambda / (N_global * n_layers) * sum_n pcc_n (so summing over layers and ranks gives
 * -lambda * mean pcc), and if dA != NULL adds the matching gradient to dA [N, C, P] (the
 * gradient w.r.t. the post-ReLU output; the ReLU backward then applies the mask). */
double dp_pcc_loss(int N, int C, int P, const float *A, double lambda, int64_t N_global,
                   int n_layers, float *dA, double *ws, size_t ws_len);

#endif
