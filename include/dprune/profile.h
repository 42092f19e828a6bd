/* dprune profile: per-layer time tables of a model (the model/ side of latency tables).
 *
 *   measure  every graph node is timed alone (a small model of that one node fed by a ReLU, so
 *            its backward computes the input gradient exactly as inside the network) on a grid
 *            of kept input x output channel counts: conv and linear layers over both axes, the
 *            cheap per-channel ops (bn, relu, pools, add, dropout) over their channel count.
 *            Batch, threads and repetitions are stated in the table.
 *   map      a table matched against a model by layer name, op and shape; a model narrower
 *            than the one profiled (an earlier pruning round) is covered by the same table.
 *   estimate the sum over nodes of each node's interpolated time at the channel counts of a
 *            hypothetical model (prune/ turns keep counts per group into node channel counts).
 *
 * No MPI and no files here: the table is read and written by io/ (dprune/latency_table.h). */
#ifndef DPRUNE_PROFILE_H
#define DPRUNE_PROFILE_H

#include "dprune/latency_table.h"
#include "dprune/model.h"

typedef struct {
    int batch;  /* samples per timed call */
    int grid;   /* an axis is round(i * C / grid), i = 1..grid (duplicates dropped) */
    int reps;   /* timed repetitions per grid point; the median is kept */
    bool train; /* also time forward (train mode) + backward */
    uint64_t seed;
    /* called before each node is measured (may be NULL) */
    void (*progress)(void *ctx, const dp_model *m, int node, int done, int total);
    void *progress_ctx;
} dp_profile_opts;

void dp_profile_opts_default(dp_profile_opts *o); /* batch 64, grid 8, reps 5, train, seed 1 */

/* Nodes with a time of their own: all but the input and views (flatten). */
bool dp_profile_is_timed(const dp_model *m, int node);
/* The grid points of one axis of full width C: round(i*C/grid) for i = 1..grid, at least 1,
 * strictly ascending (duplicates dropped), the last = C. Returns the count. */
int dp_profile_axis(int C, int grid, int *axis);
/* The axes of node `node`: a layer's input axis is a single point when its input cannot be
 * pruned (the network input), its output axis when it writes the logits; channel-preserving
 * ops vary only their output axis, a zero-padding shortcut only its input axis. */
void dp_profile_axes(const dp_model *m, int node, int grid, dp_latency_entry *e);
/* The one-node model used for timing: input [c, h, w] of the node's input shape -> relu (only
 * when the node's input is not the network input, so that backward computes dx) -> the node
 * with `out_c` outputs (conv/linear; other ops keep their channels). c = in_c for conv, linear
 * and shortcuts, out_c for channel-preserving ops. */
dp_status dp_model_isolate(const dp_model *m, int node, int in_c, int out_c, dp_model *out,
                           dp_error *err);
/* Times every timed node of m on its grid and fills t (model, input, batch, threads, reps,
 * BLAS core, version; the caller may add the machine). t is allocated here. */
dp_status dp_profile_measure(const dp_model *m, const dp_profile_opts *o, dp_latency_table *t,
                             dp_error *err);

/* The whole network timed in one piece the same way (median of o->reps; train_ms only with
 * o->train; forward + backward, no loss or optimizer step): what the sum of the layers timed
 * alone should come close to. */
dp_status dp_profile_whole(const dp_model *m, const dp_profile_opts *o, double *infer_ms,
                           double *train_ms, dp_error *err);

/* ---- a table matched against a model ---- */
typedef struct {
    const dp_latency_table *table;
    int *entry; /* [n_nodes] the table entry of each node, -1 where the node is not timed */
    int n_nodes;
    bool train; /* estimates use train_ms (forward + backward) instead of infer_ms */
} dp_latency_map;

/* Matches every timed node of m to the table entry of the same name and checks op, spatial
 * shapes, kernel/stride and that the node's channels do not exceed the table's; the table
 * must be of m's arch and input size and hold no entry m lacks. One error naming the table
 * file and what does not match. */
dp_status dp_latency_map_build(const dp_latency_table *t, const dp_model *m, bool train,
                               dp_latency_map *map, dp_error *err);
void dp_latency_map_free(dp_latency_map *map);
/* Estimated ms of node i, and of the whole model, with node_c[j] channels at node j
 * (node_c NULL = the model as it is). */
double dp_latency_node_ms(const dp_latency_map *map, const dp_model *m, int node,
                          const int *node_c);
double dp_latency_model_ms(const dp_latency_map *map, const dp_model *m, const int *node_c);

/* ---- per-layer reports ---- */
/* The conv/linear layer a node's time is reported under: the layer itself, or for a cheap op
 * the layer it follows (through its first input); -1 before any layer. */
int dp_profile_owner(const dp_model *m, int node);
/* A per-layer table (layer, shape, the layer's own ms, its following ops' ms, total, share of
 * the model's total, and the same for train_ms when given) from per-node times. */
void dp_profile_print_layers(const dp_model *m, const double *infer_ms, const double *train_ms,
                             FILE *out);

#endif
