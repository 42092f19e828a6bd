/* dprune CIP on a whole network (METHODS.md section 3). The per-layer math (feature term,
 * kernel term, propagation step, residual rule, cubic schedule) is in prune_criteria.h
 * (crit_cip.c); this is what needs the graph:
 *
 *   feature maps  the maps that get the non-linear feature term phi: every ReLU output (the
 *                 post-activation maps); calibration gathers their RMS statistics
 *   scores        importance propagated from the classifier back through every node of the
 *                 graph; a map read by several consumers (a residual block's input) adds their
 *                 normalized contributions, which is exactly the residual rule
 *   soft zero     Soft Filter Pruning: the filters of masked channels set to 0 (weights, bias,
 *                 momentum); BN untouched, gradients not masked, so they may regrow
 *   state         the schedule's position and mask as bytes for checkpoints
 *
 * Like the rest of prune/: no files, no MPI. */
#ifndef DPRUNE_CIP_H
#define DPRUNE_CIP_H

#include "dprune/prune.h"
#include "dprune/prune_criteria.h"

/* The maps that get phi: every ReLU node whose channels are its group's channels (span 1).
 * Writes up to max node indices (ascending) to out; returns the count. */
int dp_cip_feature_nodes(const dp_model *m, const dp_groups *gs, int *out, int max);

/* CIP scores of every prunable group (sc allocated here). rms[node]: the folded RMS statistics
 * [M, sumsq[C]] of a feature map (dp_rms_stats_len), NULL for nodes without a feature term;
 * rms == NULL means none anywhere. Walks the nodes in reverse topological order:
 *   - the logits get importance 1/K each, so the classifier's input gets the seed
 *     sum_k |W_fc[k, j]| (summed over flatten positions), normalized;
 *   - a conv/linear passes A^T r back (A from dp_cip_kernel with the BN that directly follows
 *     it, if any); a zero-padding shortcut passes its input's slice; every other op (BN, ReLU,
 *     pools, flatten, dropout, add) passes r unchanged to each input;
 *   - a node sums the normalized contributions of its consumers, t; a feature map's importance
 *     is normalize(phi(z) * t), any other node's is t.
 * A group's score is the sum over its scored maps (dp_group_scored_nodes) of their importance,
 * so a residual stream sums its blocks' outputs. */
dp_status dp_cip_scores(const dp_model *m, const dp_groups *gs, const double *const *rms,
                        dp_cip_phi phi, dp_scores *sc, dp_error *err);

/* Soft Filter Pruning of every channel the mask does not keep (mask: a plan for gs): each
 * writer's filter row and bias entry set to 0, and the same entries of momentum (may be NULL).
 * BN parameters and statistics are left alone and gradients are not masked, so a zeroed filter
 * regrows if the loss wants it. Returns the number of channels zeroed (summed over groups). */
int64_t dp_cip_soft_zero(dp_model *m, const dp_groups *gs, const dp_plan *mask, float *momentum);

/* Where a CIP schedule is: round, the last step done (0 = none zeroed yet) of `steps`, and the
 * mask of that step (a plan: the channels not kept are the soft-zeroed ones). */
typedef struct {
    int round, step, steps;
    dp_plan mask;
} dp_cip_state;

void dp_cip_state_free(dp_cip_state *s);
/* Bytes for checkpoints: "DPCIP001", i32 round, step, steps, u64 length and the mask's plan
 * bytes (dp_plan_serialize), then the FNV-1a of everything before it. */
dp_status dp_cip_state_serialize(const dp_cip_state *s, uint8_t **buf, size_t *len, dp_error *err);
dp_status dp_cip_state_deserialize(const uint8_t *buf, size_t len, dp_cip_state *s, dp_error *err);

#endif
