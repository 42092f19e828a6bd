/* dprune prune: structural pruning of whole channels.
 *
 *   groups   channel groups derived from ANY graph by union-find (never per model)
 *   scores   one double per channel of a group, higher = more important (weight criteria here;
 *            the data-driven ones are in prune_criteria.h)
 *   planner  scores + budget -> plan (a sorted keep-list per group), deterministic
 *   plan io  serialize / deserialize (for MPI_Bcast through dist/) and a text rendering
 *   surgery  model (+ SGD momentum) -> a genuinely smaller model per the plan
 *
 * Touches no files and no MPI (DESIGN.md): buffers and strings go through dist/ and io/. */
#ifndef DPRUNE_PRUNE_H
#define DPRUNE_PRUNE_H

#include "dprune/core.h"
#include "dprune/model.h"
#include "dprune/optim.h"
#include "dprune/profile.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ======================= channel groups ======================= */

/* A conv or linear node that reads the group's channels. Group channel j occupies input
 * columns [j*span, (j+1)*span) of the consumer (a conv's input channels, span 1; a linear's
 * input features, span H*W after flatten of an H x W map, 1 after global pooling). */
typedef struct {
    int node;
    int span;
} dp_group_consumer;

typedef struct {
    char name[48]; /* the first writer's name ("input" for the network input) */
    int channels;
    int *writers; /* conv/linear nodes producing these channels (all lose the same indices) */
    int n_writers;
    int *bns; /* BN nodes normalising these channels */
    int n_bns;
    dp_group_consumer *consumers;
    int n_consumers;
    int *members; /* every node whose output channel dimension is this group */
    int n_members;
    bool residual; /* joined by an element-wise add */
    bool prunable;
    char why_not[160]; /* when !prunable: the reason, naming the layer */
} dp_channel_group;

typedef struct {
    dp_channel_group *groups;
    int n_groups;
    int n_nodes;
    int *node_group; /* [n_nodes] group of each node's output channels */
    int *node_span;  /* [n_nodes] values per group channel in the node's channel dimension: 1,
                        or H*W for a flatten of an H x W map (and ops after it) */
} dp_groups;

typedef struct {
    bool residual;              /* prune residual-stream groups too (default false) */
    bool protect_first_conv;    /* default true */
    const char *const *protect; /* extra layer names whose output channels are kept */
    int n_protect;
} dp_group_opts;

void dp_group_opts_default(dp_group_opts *o);
/* Derives the groups of `m`. Group order = order of first appearance in the graph. A name in
 * o->protect that no layer has is an error (DP_ERR_CONFIG). */
dp_status dp_groups_build(const dp_model *m, const dp_group_opts *o, dp_groups *gs, dp_error *err);
void dp_groups_free(dp_groups *gs);
int dp_groups_prunable_count(const dp_groups *gs);
/* The maps a group's channels are judged on (calibration statistics, the PCC training term):
 * its post-ReLU outputs (for a residual stream, the ReLU after each block's add), or its last
 * member when no ReLU follows. Writes up to max node indices to out; returns the count. */
int dp_group_scored_nodes(const dp_model *m, const dp_channel_group *g, int *out, int max);

/* Exact analytic FLOPs (MACs of conv + linear) and params (incl. BN and biases) of the model
 * that keeping keep_counts[g] channels of every group g would give (dp_node_flops /
 * dp_node_params semantics). keep_counts NULL = the model as it is. */
void dp_groups_count(const dp_model *m, const dp_groups *gs, const int *keep_counts, int64_t *flops,
                     int64_t *params);

/* Estimated time (ms per batch of the table) of the model that keeping keep_counts[g] channels
 * of every group would give, from a latency table matched to m (keep_counts NULL = the model
 * as it is). NAN if out of memory. */
double dp_groups_latency_ms(const dp_model *m, const dp_groups *gs, const dp_latency_map *map,
                            const int *keep_counts);

/* ======================= scores ======================= */

/* One array of scores per group ([channels] doubles), NULL where not computed. */
typedef struct {
    int n_groups;
    double **s;
    char note[512]; /* what a criterion wants said (e.g. a fallback), "" when nothing */
} dp_scores;

/* Allocates arrays for the prunable groups (zeroed) and NULL for the others. */
dp_status dp_scores_alloc(dp_scores *sc, const dp_groups *gs, dp_error *err);
void dp_scores_free(dp_scores *sc);

/* ---- weight-only criteria: score the channels of one group. A group with several writers
 * sums the writers' per-filter scores. ---- */
dp_status dp_score_l1(const dp_model *m, const dp_channel_group *g, double *scores, dp_error *err);
dp_status dp_score_l2(const dp_model *m, const dp_channel_group *g, double *scores, dp_error *err);
/* |gamma| of the group's BNs, summed; a group without BN is an error. */
dp_status dp_score_slim(const dp_model *m, const dp_channel_group *g, double *scores,
                        dp_error *err);
/* FPGM: s_j = sum_j' ||F_j - F_j'||_2 (per writer, summed). */
dp_status dp_score_fpgm(const dp_model *m, const dp_channel_group *g, double *scores,
                        dp_error *err);
/* random: uniform [0,1) from the stream (seed, round, group index, DP_RNG_PRUNE). */
void dp_score_random(uint64_t seed, int round, int group_index, int channels, double *scores);

/* FEC (METHODS.md section 5). Per writer: m[j,c] = mean over the filter's block for input
 * channel c (mean |W| with abs_mean), d = |m[j,c]-m[j,c']|, h = median of d over all filters
 * and pairs c < c' (1e-12 if 0), Z = exp(-d^2/(2h^2)),
 * H_j = -(1/c) sum_c ln((1/c) sum_c' Z[j,c,c']). s_j = H_j summed over writers. */
typedef struct {
    bool abs_mean;
} dp_fec_opts;
typedef struct {
    double norm_entropy;   /* mean over writers of mean_j H_j / ln c (in [0,1]); the ratio rule's
                              input */
    int n_entropy_writers; /* writers with c > 1 */
    bool fell_back_to_l1;  /* some writer had c = 1: it contributed l1 scores instead */
} dp_fec_group_info;
dp_status dp_score_fec(const dp_model *m, const dp_groups *gs, int group, const dp_fec_opts *o,
                       double *scores, dp_fec_group_info *info, dp_error *err);
/* The entropy of one filter given its channel means m[0..c) and bandwidth h (for tests and
 * for tools). */
double dp_fec_filter_entropy(const double *means, int c, double h);

/* Scores every prunable group with the named weight criterion: l1 | l2 | slim | fpgm | fec |
 * random (seed, round used by random only; fec with default options). Fills sc (allocated
 * here) and sc->note. DP_ERR_CONFIG for an unknown name. */
dp_status dp_weight_scores(const char *criterion, const dp_model *m, const dp_groups *gs,
                           uint64_t seed, int round, dp_scores *sc, dp_error *err);
bool dp_is_weight_criterion(const char *criterion);

/* Network Slimming's training term: grad(gamma) += lambda * sign(gamma) for every BN of the
 * model (gs NULL) or only the BNs of prunable groups. */
void dp_slim_add_bn_l1_grad(dp_model *m, const dp_groups *gs, double lambda);

/* The PCC training term (METHODS.md section 4; the per-map math is dp_pcc_sample in
 * prune_criteria.h): L = CE - lambda * mean over samples and maps of pcc, on the scored
 * post-ReLU map of every prunable group (dp_group_scored_nodes; maps of one pixel or channel are
 * left out). pcc is in [0, 1], so the term is in [-lambda, 0]; a negative lambda penalizes
 * correlation instead. */
typedef struct {
    double lambda;
    int n_maps;
    int *nodes;     /* [n_maps] the maps' nodes */
    int cap;        /* samples per batch at most */
    int threads;    /* one workspace each */
    size_t ws_len;  /* doubles per workspace */
    double *ws;     /* [threads * ws_len] */
    double *values; /* [n_maps * N] each (map, sample) pcc of the last call */
} dp_pcc_term;

/* DP_ERR_CONFIG when the model has no such map. cap: the activations' batch capacity. */
dp_status dp_pcc_term_init(dp_pcc_term *t, const dp_model *m, const dp_groups *gs, double lambda,
                           int cap, dp_error *err);
/* After a train-mode forward of N <= cap local samples: writes the term's gradient
 * -lambda * scale / n_maps * d pcc / d map into a->dout of every map and marks it
 * (dp_activations_grad_written), so backward adds the consumers' gradients onto it and the ReLU
 * mask applies. scale = 1 / global batch, the cross-entropy's. Returns the sum over the N
 * samples of their mean pcc over the maps: the term's value is -lambda * scale * that. */
double dp_pcc_term_apply(dp_pcc_term *t, const dp_model *m, dp_activations *a, int N, double scale);
/* The same sum without touching any gradient. */
double dp_pcc_term_value(dp_pcc_term *t, const dp_model *m, dp_activations *a, int N);
void dp_pcc_term_free(dp_pcc_term *t);

/* ======================= plans ======================= */

typedef struct {
    char name[48]; /* the group's name when planned, checked by surgery */
    int channels;  /* before */
    int n_keep;
    int *keep;      /* [n_keep] ascending */
    double *scores; /* [channels] or NULL */
} dp_group_plan;

typedef struct {
    int n_groups;
    dp_group_plan *groups; /* one per group of the dp_groups it was made for, same order */
    char criterion[32];
    char budget[96]; /* human-readable budget, e.g. "flops 0.5" */
    double target;   /* the budget's target reduction (fraction), or -1 */
    double achieved; /* the reduction reached in the budget's own measure */
    int64_t flops_before, flops_after, params_before, params_after;
} dp_plan;

typedef enum {
    DP_BUDGET_UNIFORM,   /* remove floor(ratio * C) channels of every prunable group */
    DP_BUDGET_PER_GROUP, /* ratios[i] for the i-th prunable group */
    DP_BUDGET_GLOBAL,    /* one global ranking of score / group mean; remove `ratio` of all
                            prunable channels */
    DP_BUDGET_FLOPS,     /* global ranking; remove `target` of the model's FLOPs */
    DP_BUDGET_PARAMS,    /* global ranking; remove `target` of the model's params */
    DP_BUDGET_LATENCY,   /* global ranking; remove `target` of the latency estimated from a
                            measured per-layer time table (`latency`) */
} dp_budget_kind;

typedef struct {
    dp_budget_kind kind;
    double ratio;
    const double *ratios;
    int n_ratios;
    double target;
    int min_channels; /* floor: keep >= min(C, max(min_channels, ceil(min_keep * C))) */
    double min_keep;
    int round_to;                  /* > 1: keep counts rounded UP to a multiple (never above C) */
    const dp_latency_map *latency; /* LATENCY: the time table matched to the model */
} dp_budget;

void dp_budget_default(dp_budget *b); /* uniform 0, floors 4 and 0.1, no rounding */
/* The floor and rounding of a keep count n for a group of C channels. */
int dp_keep_floor(int C, const dp_budget *b);
int dp_keep_finalize(int n, int C, const dp_budget *b);
/* C minus floor(r*C), then floors and rounding. */
int dp_keep_from_ratio(int C, double r, const dp_budget *b);

/* A plan keeping every channel (scores NULL). */
dp_status dp_plan_init(dp_plan *p, const dp_groups *gs, dp_error *err);
void dp_plan_free(dp_plan *p);
/* Keeps the keep_counts[g] best channels of every group (score descending, equal scores keep
 * the lower index); counts are taken as given (no floors). Unprunable groups must keep all.
 * Copies the scores into the plan and fills the before/after counts. */
dp_status dp_plan_from_scores(const dp_model *m, const dp_groups *gs, const dp_scores *sc,
                              const int *keep_counts, const char *criterion, dp_plan *p,
                              dp_error *err);
/* The planner: scores + budget -> plan. FLOPS/PARAMS/LATENCY/GLOBAL bisect one global
 * threshold on the ranking of score / group mean and return the plan closest to the target;
 * the value reached is in p->achieved (for LATENCY the estimated reduction). */
dp_status dp_plan_make(const dp_model *m, const dp_groups *gs, const dp_scores *sc,
                       const dp_budget *b, const char *criterion, dp_plan *p, dp_error *err);
/* Data-free widths (C-SGD decides widths before it has scores): keep counts of every group
 * for a UNIFORM / GLOBAL ratio, PER_GROUP ratios, or a FLOPS / PARAMS / LATENCY target met by
 * one uniform ratio (bisection; the closest wins). *achieved (may be NULL): the reduction
 * reached in the target's measure (FLOPs for ratio budgets). */
dp_status dp_budget_widths(const dp_model *m, const dp_groups *gs, const dp_budget *b, int *keep,
                           double *achieved, dp_error *err);
/* FEC's per-layer ratio rule r_g = clip(beta (1 - info[g].norm_entropy), 0, 0.9) with beta
 * bisected to the budget's target (kind FLOPS, PARAMS or GLOBAL: fraction of channels). */
dp_status dp_plan_fec_ratio_rule(const dp_model *m, const dp_groups *gs, const dp_scores *sc,
                                 const dp_fec_group_info *info, const dp_budget *b, dp_plan *p,
                                 double *beta_out, dp_error *err);
/* The reduction (fraction removed) that keep counts give in the measure of b's kind: FLOPs,
 * params, estimated latency, or (other kinds) prunable channels. */
double dp_budget_reduction(const dp_model *m, const dp_groups *gs, const dp_budget *b,
                           const int *counts);
/* Checks a plan against groups (counts, names, sorted unique in-range indices, unprunable
 * groups untouched). */
dp_status dp_plan_check(const dp_plan *p, const dp_groups *gs, dp_error *err);

/* Byte buffer for MPI_Bcast (malloc'ed; free with free()). Same-architecture ranks. */
dp_status dp_plan_serialize(const dp_plan *p, uint8_t **buf, size_t *len, dp_error *err);
dp_status dp_plan_deserialize(const uint8_t *buf, size_t len, dp_plan *p, dp_error *err);
/* Human-readable text (malloc'ed, NUL-terminated): per group channels before -> after, kept
 * indices, scores. gs may be NULL (then writers are not listed). */
dp_status dp_plan_render(const dp_plan *p, const dp_model *m, const dp_groups *gs, char **text,
                         dp_error *err);

/* ======================= surgery ======================= */

typedef struct {
    /* Called after the kept slices are copied, to fold what the removed channels contributed
     * into the new model (C-SGD's merge adds removed members' consumer slices into the kept
     * member's). Momentum pointers are NULL without an optimizer. NULL = nothing. */
    dp_status (*fold_removed)(void *ctx, const dp_model *old_m, const dp_groups *gs,
                              const dp_plan *p, const float *old_momentum, dp_model *new_m,
                              float *new_momentum, dp_error *err);
    void *fold_ctx;
} dp_surgery_opts;

/* Builds `out`, the model with only the kept channels (conv filters and biases, the 4 BN
 * vectors, consumers' input channels and linear columns; gradients too), re-laid-out in new
 * contiguous buffers. If opt is given its momentum buffer is replaced by the sliced one (same
 * layout as out's parameters). `m` is left untouched; callers free it and reallocate
 * activations and gradient buckets. o may be NULL. */
dp_status dp_surgery(const dp_model *m, const dp_groups *gs, const dp_plan *p, dp_sgd *opt,
                     const dp_surgery_opts *o, dp_model *out, dp_error *err);

/* ======================= CorrTopo's fold in surgery (corr_fold.c) =======================
 * METHODS section 2: every channel d a plan removes from a group is replaced, inside each
 * consumer, by its reconstruction from the kept channels K of the map that consumer reads:
 *   x_d ~ a_d + sum_k B[k, d] x_k      (no compensation: B = 0, a_d = mu_d, the mean)
 * so the consumer's weights become W[:, K] + sum_d B[k, d] W[:, D_d] and the constant
 * delta[o] = sum_d a_d sum W[o, D_d, :] goes into its bias, or, for a bias-free consumer whose
 * only reader is a BN, is subtracted from that BN's running mean (eval mode; in train mode
 * the batch mean absorbs any constant by itself). Exact for dead (constant) channels and for
 * channels that are affine combinations of kept ones, except where zero padding reads a 0
 * that the reconstruction would have replaced by a_d (the borders of a padded conv).
 *
 * The statistics (mu, Sigma) are those of the map the consumer *reads*, not of the scored
 * post-ReLU map: a conv after a max-pool reads the pooled map, and an affine reconstruction
 * passes through the consumer (linear) but not through the max (its mean is not the pooled
 * map's mean either, except for a constant map). Calibration therefore also accumulates the
 * statistics of every read map that is not a scored one. Consumers reading the same map share
 * one entry; a residual stream read after several adds has one entry per map.
 *
 * A map of several positions read only by linear layers (after a flatten) is *positional*:
 * every (channel, position) is a column with its own weight, so the constant can be one per
 * position, a[d, p] = m[d, p] - sum_k B[k, d] m[k, p] with m the per-position means, and B
 * comes from the covariance around those means. One mean per channel would replace a map by a
 * flat one, which for centred objects on a plain background (the mean differs a lot between
 * border and centre) moves a linear layer's output more than dropping the channel does. */
typedef struct {
    int group;     /* index in dp_groups */
    int node;      /* the map the consumers read (dp_corr_read_map) */
    int nk, nd;    /* kept channels (the plan's keep-list) and removed ones (its complement) */
    double *B;     /* [nk, nd] row-major; NULL = mean only (no compensation) */
    double *a;     /* [nd] one offset per channel */
    int P;         /* positions of the map */
    double *a_pos; /* [nd, P] one offset per position (positional maps), else NULL */
} dp_corr_fold_map;

typedef struct {
    int n_maps;
    dp_corr_fold_map *maps;
} dp_corr_fold;

/* The map consumer node `consumer` (conv or linear) reads: its input, looking through flatten
 * and dropout (a reshape, and the identity in eval mode). */
int dp_corr_read_map(const dp_model *m, int consumer);
/* The distinct maps read by group g's consumers, in consumer order; returns the count (at
 * most max). */
int dp_corr_read_maps(const dp_model *m, const dp_channel_group *g, int *out, int max);

/* True when map `map` of group g has more than one position and every consumer of g that reads
 * it is a linear layer (its statistics then need per-position sums: dp_corr_pos_stats_len). */
bool dp_corr_map_positional(const dp_model *m, const dp_channel_group *g, int map);

typedef enum {
    DP_CORR_OFFSET_BIAS,    /* the consumer's own bias */
    DP_CORR_OFFSET_BN_MEAN, /* running mean of the BN that alone reads the consumer */
    DP_CORR_OFFSET_NONE,    /* nowhere: the constant is lost (the fold is then inexact) */
} dp_corr_offset_target;
/* Where consumer's constant delta goes; *bn gets the BN node for DP_CORR_OFFSET_BN_MEAN. */
dp_corr_offset_target dp_corr_offset_of(const dp_model *m, int consumer, int *bn);

/* Adds the entry of group `group`'s read map `node` (C channels, P positions) from that map's
 * folded CorrTopo statistics (dp_corr_pos_stats_len(C, P) doubles when positional, else
 * dp_corr_stats_len(C)) and shift k [C], for the plan's keep-list gp: compensate -> B and the
 * offsets from dp_corr_compensation (ridge: DP_CORR_RIDGE_DEFAULT normally), else the offsets
 * are the removed channels' means. A group the plan leaves whole adds nothing. */
dp_status dp_corr_fold_add(dp_corr_fold *f, int group, int node, int C, int P, bool positional,
                           const double *stats, const double *k, const dp_group_plan *gp,
                           bool compensate, double ridge, dp_error *err);
void dp_corr_fold_free(dp_corr_fold *f);
/* Bytes for the broadcast (malloc'ed; free with free()); "DPFOLD01", FNV-1a checked. */
dp_status dp_corr_fold_serialize(const dp_corr_fold *f, uint8_t **buf, size_t *len, dp_error *err);
dp_status dp_corr_fold_deserialize(const uint8_t *buf, size_t len, dp_corr_fold *f, dp_error *err);
/* Surgery options applying f (borrowed until dp_surgery returns). The momentum of a folded
 * weight or bias is transformed like the weight (the same affine map): it is the velocity of
 * the equivalent parameters. */
dp_surgery_opts dp_corr_surgery_opts(const dp_corr_fold *f);

#endif
