/* dprune dist: the only MPI caller. A plain `./dprune conf.cfg` runs as an MPI singleton.
 *
 * Every collective goes through a watchdog: it is posted non-blocking and waited on with a
 * deadline; past it, the rank announces where it waits, collects the announcements of the
 * others for a moment, reports which ranks have not arrived, and aborts the job. */
#ifndef DPRUNE_DIST_H
#define DPRUNE_DIST_H

#include "dprune/core.h"
#include "dprune/model.h"
#include <mpi.h> /* for MPI_Comm only: no other module calls MPI */
#include <stddef.h>
#include <stdint.h>

typedef struct {
    MPI_Comm comm; /* MPI_COMM_WORLD, or MPI_COMM_SELF for a rank-local replica */
    int rank, world;
    double watchdog_seconds; /* 0 = wait forever */
    uint64_t seq;            /* collectives completed so far (the same on every rank) */
} dp_dist;

dp_status dp_dist_init(int *argc, char ***argv, dp_dist *d, dp_error *err);
void dp_dist_finalize(void);
/* A one-rank view (MPI_COMM_SELF): the same code run as if alone, e.g. a reference in tests. */
void dp_dist_self(dp_dist *d);
/* Ends every rank with `code` (collective abort; never returns). */
void dp_dist_abort(int code) __attribute__((noreturn));

/* Collective error check: if `st` failed on any rank, the lowest failing rank prints its
 * message once ("dprune: error: ..."), and every rank gets a non-OK status back. */
dp_status dp_dist_check(dp_dist *d, dp_status st, const dp_error *err);
dp_status dp_dist_bcast_bytes(dp_dist *d, void *buf, size_t n, int root, dp_error *err);
/* Broadcasts a NUL-terminated text: non-root ranks receive a malloc'ed copy. */
dp_status dp_dist_bcast_text(dp_dist *d, char **text, size_t *len, int root, dp_error *err);
dp_status dp_dist_sum_double(dp_dist *d, double *x, size_t n, dp_error *err);
dp_status dp_dist_sum_i64(dp_dist *d, int64_t *x, size_t n, dp_error *err);
dp_status dp_dist_sum_float(dp_dist *d, float *x, size_t n, dp_error *err);
dp_status dp_dist_barrier(dp_dist *d, dp_error *err);
const char *dp_dist_library_version(char *buf, size_t n);
/* This rank's fair share of the cores it may run on: each core of its affinity mask counts
 * 1 / (ranks of this node whose masks hold it); rounded, at least 1. Collective. */
int dp_dist_fair_threads(dp_dist *d);

/* Debug check that every rank holds bitwise-identical parameters and buffers: a hash per
 * tensor, min and max allreduced; names the first tensor that differs. */
dp_status dp_dist_check_identical(dp_dist *d, const dp_model *m, dp_error *err);

/* ---- gradient allreduce in buckets, overlapped with backward ----
 * Two routes to the same sum:
 *   mpi  buckets posted with MPI_Iallreduce while backward runs (overlap), or one blocking
 *        allreduce after it (overlap = false, for comparison);
 *   shm  for jobs on one node: the model's gradient buffer is replaced by this rank's slot
 *        of an MPI-3 shared-memory window, and its parameter buffer by one copy in shared
 *        memory that every rank computes with, until dp_grad_sync_free (which puts the
 *        model's own buffers back, holding the current values); finish() sums the slots in place
 *        after backward (src/dist/shm_sum.c): no copies through MPI (60 MB on 2 ranks:
 *        6.3 ms against 27 ms for MPI_Iallreduce, bench_shm_sum). Buckets and overlap do not
 *        apply. finish_update folds the optimizer step into the sum, each rank stepping its
 *        slice (sum and step of 60 MB on 2 ranks: 6.2 ms on the shared parameters, 9.8 when each
 *        rank copied the others' slices, 15.2 for a sum then a full step; bench_shm_sum).
 *   auto shm when every rank is on one node and the window fits in the backing directory
 *        (/dev/shm), else mpi; rank 0 says why when it falls back. */
typedef enum { DP_SUM_AUTO, DP_SUM_MPI, DP_SUM_SHM } dp_sum_route;
/* An update of the floats [lo, hi) of the parameter buffer, given their gradient summed over
 * ranks in sum[0, hi - lo): the optimizer's step restricted to a range. */
typedef void (*dp_range_update_fn)(void *ctx, const float *sum, size_t lo, size_t hi);
typedef struct {
    size_t first_bytes, bucket_bytes; /* the first bucket, the ones after it */
    bool overlap;
    dp_sum_route route;
} dp_grad_sync_opts;

typedef struct dp_grad_sync dp_grad_sync;
/* Collective when d has more than one rank (d may be NULL: the bucket layout only). */
dp_status dp_grad_sync_create(dp_grad_sync **out, dp_dist *d, dp_model *m,
                              const dp_grad_sync_opts *o, dp_error *err);
/* Collective on the shm route. */
void dp_grad_sync_free(dp_grad_sync *g);
/* "shared memory" or "MPI buckets" (or "MPI, blocking"), for the start-up line. */
const char *dp_grad_sync_route(const dp_grad_sync *g);
int dp_grad_sync_buckets(const dp_grad_sync *g);
/* Bucket b (0 = posted first): its first float in the gradient buffer, its size in floats,
 * and the earliest node whose gradients it holds (it is posted when that node is done). */
void dp_grad_sync_bucket(const dp_grad_sync *g, int b, size_t *offset, size_t *floats,
                         int *min_node);
/* Arms the sync for the backward that completes this step's gradient. */
void dp_grad_sync_begin(dp_grad_sync *g);
/* Backward hook: node `node` is done; posts every bucket now complete and drives progress. */
void dp_grad_sync_node_done(dp_grad_sync *g, int node);
/* Posts what is left and waits for all buckets; the gradient is then the sum over ranks. */
dp_status dp_grad_sync_finish(dp_grad_sync *g, dp_error *err);
/* Whether the route can shard the optimizer step (the shm route): see finish_update. */
bool dp_grad_sync_shards_step(const dp_grad_sync *g);
/* In place of finish() and a full optimizer step on every rank (shm route only): each rank
 * sums its slice of the gradient and applies `update` to it block by block while the sum is
 * in cache, then every rank copies the other ranks' slices of `params` (n floats, the
 * gradient's layout). Every rank ends with the same parameters, bitwise as finish() and a
 * full step would give them; the gradient buffer no longer holds a sum, and optimizer state
 * the update keeps per float (momentum) is current only in this rank's slice until
 * dp_grad_sync_gather. With shared parameters (`params` is the model's) each rank's update
 * writes its slice in place and nothing is copied. Collective; its time counts as wait time. */
dp_status dp_grad_sync_finish_update(dp_grad_sync *g, dp_range_update_fn update, void *ctx,
                                     float *params, dp_error *err);
/* Whether the ranks' models share one copy of the parameters (the shm route). Then a full
 * optimizer step on every rank would apply the step W times: after finish(), use
 * dp_grad_sync_step_shared. Code that changes parameters outside the step must make the same
 * change on every rank (as all code that keeps replicas equal does) and only overwrite, never
 * add to, a value; adding (or a rank-local change) needs the mpi route. */
bool dp_grad_sync_shares_params(const dp_grad_sync *g);
/* On the shm route, the activations' kept Winograd weights (dp_activations_lend_kept) become
 * one copy for the node too, which the ranks transform part by part in
 * dp_grad_sync_prepare_kept: each rank transforms 1/W of them per step instead of all. Stays
 * per rank (a note on rank 0) when the backing directory has no room; nothing on other
 * routes. The activations must be freed before, or not used after, dp_grad_sync_free.
 * Collective. */
dp_status dp_grad_sync_share_kept(dp_grad_sync *g, dp_activations *a, const dp_model *m,
                                  dp_error *err);
/* Before a step's forwards: the kept weights transformed (dp_model_prepare_kept), by this rank
 * its part and then a barrier when they are shared, else all of them (g may be NULL: one
 * rank). The caller calls dp_activations_forget_kept before the weights next change, and no
 * rank may still be in a backward of the previous step (the sum's barrier sees to that).
 * Collective when shared; the barrier counts as wait time. */
dp_status dp_grad_sync_prepare_kept(dp_grad_sync *g, const dp_model *m, dp_activations *a,
                                    dp_error *err);
/* With shared parameters, after finish(): each rank applies update to its slice of the summed
 * gradient, between barriers, so every rank ends with the whole step; per-float optimizer
 * state is then current only in the rank's slice, as after finish_update. Collective. */
dp_status dp_grad_sync_step_shared(dp_grad_sync *g, dp_range_update_fn update, void *ctx,
                                   dp_error *err);
/* Makes per-float optimizer state whole after sharded steps: buf (the gradient's layout)
 * takes each slice from the rank that owns it. Collective; shm route only. */
dp_status dp_grad_sync_gather(dp_grad_sync *g, float *buf, dp_error *err);
/* Seconds blocked in finish() since the last reset: communication that was not hidden. */
double dp_grad_sync_wait_seconds(const dp_grad_sync *g);
/* Seconds spent posting and progressing buckets between layers (the mpi route's share of
 * the communication work done on the computing thread during backward). */
double dp_grad_sync_progress_seconds(const dp_grad_sync *g);
void dp_grad_sync_reset_timers(dp_grad_sync *g);

/* ---- rank-count-independent sums of statistics ----
 * Partial sums live per block of global sample indices; a rank holds a contiguous range of
 * blocks (lower ranks the earlier ones). dp_dist_chain_fold passes one accumulator through the
 * ranks in order: rank 0 starts from zeros, every rank calls fold(ctx, acc) to add its own
 * blocks in block order, and hands it on. Then dp_dist_chain_fold_finish gives rank 0 the
 * total. Bitwise the same total on 1, 2 or 4 ranks. Collective (both calls). */
dp_status dp_dist_chain_fold(dp_dist *d, double *acc, size_t n,
                             void (*fold)(void *ctx, double *acc), void *ctx, dp_error *err);
dp_status dp_dist_chain_fold_finish(dp_dist *d, double *acc, size_t n, dp_error *err);

/* Sync-BN hook for dp_exec_hooks.bn_allreduce (ctx = dp_dist *). */
void dp_dist_bn_allreduce(void *ctx, double *sums, int n, double *count);

#endif
