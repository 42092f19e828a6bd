/* dprune C-SGD (METHODS.md section 6): centripetal SGD makes the filters of each cluster
 * identical during training, then a merge removes the duplicates without changing the
 * function the network computes.
 *
 *   clusters   per channel group: which channels become one (k-means++ on the pacesetter's
 *              filters, or even blocks); decided on rank 0, broadcast as bytes, checkpointed
 *   transform  the centripetal gradient, applied after the gradient allreduce (identically on
 *              every rank) to every writer's kernel rows, biases and the group's BN gamma/beta
 *   deviation  sum over clusters of ||x_j - mean_H||^2: how far members still are apart
 *   predict    the deviation after s steps: differences between members follow a linear
 *              recurrence that does not depend on the loss, so the decay is known in advance
 *   merge      members' BN statistics equalised, one member kept per cluster, the consumers'
 *              input slices of the others summed into it, the rest deleted (surgery)
 *
 * Like the rest of prune/: no files, no MPI. */
#ifndef DPRUNE_CSGD_H
#define DPRUNE_CSGD_H

#include "dprune/prune.h"

/* The clusters of every group. Cluster ids are canonical: numbered in the order of their
 * lowest member, so cluster 0 holds channel 0 and the first members ascend. */
typedef struct {
    int n_groups;
    int *channels;   /* [n_groups] channels of the group when clustered */
    int *n_clusters; /* [n_groups] 0 = group not clustered (keeps every channel) */
    int **assign;    /* [n_groups][channels] cluster of each channel; NULL where not clustered */
    /* derived by dp_csgd_index (CSR): members of cluster k are
     * members[g][first[g][k] .. first[g][k+1]), ascending */
    int **members;
    int **first;
} dp_csgd_clusters;

void dp_csgd_clusters_free(dp_csgd_clusters *cl);
/* Allocates an empty set for gs (no group clustered). */
dp_status dp_csgd_clusters_init(dp_csgd_clusters *cl, const dp_groups *gs, dp_error *err);
/* Renumbers clusters canonically and builds the member lists; DP_ERR_ARG when an assignment is
 * out of range or a cluster is empty. */
dp_status dp_csgd_index(dp_csgd_clusters *cl, int g, dp_error *err);

/* k-means++ on n points of dimension d (row-major floats), k clusters, n_init restarts from the
 * stream (seed), Lloyd iterations until no point moves (at most max_iter); the run with the
 * lowest inertia wins. An empty cluster is refilled by the point of the largest cluster that is
 * farthest from its centre. assign[n] gets cluster ids (not canonical). Returns the inertia. */
double dp_kmeans(const float *x, int n, int d, int k, uint64_t seed, int n_init, int max_iter,
                 int *assign);

typedef enum { DP_CSGD_KMEANS, DP_CSGD_EVEN } dp_csgd_method;

/* Clusters group g into k clusters: kmeans on the flattened filters of the group's pacesetter
 * (its first writer; every other writer into the stream uses the same clusters by index), or
 * even contiguous blocks. k >= C leaves the group unclustered. */
dp_status dp_csgd_cluster_group(const dp_model *m, const dp_groups *gs, int g, int k,
                                dp_csgd_method method, uint64_t seed, int n_init,
                                dp_csgd_clusters *cl, dp_error *err);

/* Strengths: kernels get eta = weight_decay and eps = centripetal; BN gamma/beta and biases
 * eta = 0, eps = vector_ratio * centripetal. */
typedef struct {
    double centripetal;
    double weight_decay;
    double vector_ratio;
} dp_csgd_strength;

/* g'_j = mean_{k in H} g_k + eta x_j + eps (x_j - mean_{k in H} x_k) on every clustered tensor
 * (in place on m->grad_data). The optimizer's own weight decay must be off for these tensors
 * (dp_csgd_set_decay). */
void dp_csgd_transform(dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                       const dp_csgd_strength *s);
/* Sets the optimizer's weight decay of every clustered tensor to 0 (on = false) or back to
 * `decay` (on = true). */
void dp_csgd_set_decay(dp_sgd *opt, const dp_model *m, const dp_groups *gs,
                       const dp_csgd_clusters *cl, bool on, double decay);
/* Zeroes the momentum of every clustered tensor, so member differences start the recurrence of
 * dp_csgd_predict from rest. */
void dp_csgd_reset_momentum(dp_sgd *opt, const dp_model *m, const dp_groups *gs,
                            const dp_csgd_clusters *cl);

typedef struct {
    double kernel, kernel_norm2; /* writers' weights */
    double vector, vector_norm2; /* biases, BN gamma/beta */
} dp_csgd_deviation;
void dp_csgd_measure(const dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                     dp_csgd_deviation *d);
/* The larger of the two relative deviations (what the end threshold is compared with). */
double dp_csgd_relative(const dp_csgd_deviation *d);

/* Factor by which a member difference shrinks after `steps` SGD steps with learning rates
 * lr[0..steps), momentum mu (Nesterov or not, torch semantics, buffer starting at 0) and
 * centripetal coefficient c (eta + eps). The deviation shrinks by its square. */
double dp_csgd_decay_factor(const double *lr, int64_t steps, double mu, bool nesterov, double c);

/* ---- the merge ---- */
/* Makes every cluster's members equal before the merge: BN running mean/var averaged over the
 * members (always), and with mean_params also the parameters (kernel rows, biases, gamma,
 * beta) set to the cluster mean, so that keeping the first member keeps the mean. */
void dp_csgd_equalize(dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                      bool mean_params);
/* The plan that keeps the first member of every cluster (scores: cluster sizes). */
dp_status dp_csgd_merge_plan(const dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                             dp_plan *p, dp_error *err);
/* Surgery options whose fold adds the removed members' consumer input slices (and their
 * momentum) into the kept member's: W_next[:, h] = sum_{k in H} W_next[:, k]. cl is borrowed. */
dp_surgery_opts dp_csgd_surgery_opts(const dp_csgd_clusters *cl);

/* ---- bytes (broadcast and checkpoint section; versioned) ---- */
dp_status dp_csgd_serialize(const dp_csgd_clusters *cl, int round, uint8_t **buf, size_t *len,
                            dp_error *err);
/* Checks everything (lengths, ranges, non-empty clusters) and builds the index. */
dp_status dp_csgd_deserialize(const uint8_t *buf, size_t len, dp_csgd_clusters *cl, int *round,
                              dp_error *err);
/* The clusters fit these groups (same number of groups and channels). */
dp_status dp_csgd_check(const dp_csgd_clusters *cl, const dp_groups *gs, dp_error *err);

#endif
