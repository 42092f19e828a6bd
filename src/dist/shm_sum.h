/* Internal: the sum over ranks of one float buffer per rank, through an MPI-3 shared-memory
 * window, for jobs whose ranks all share one node. */
#ifndef DPRUNE_DIST_SHM_SUM_H
#define DPRUNE_DIST_SHM_SUM_H

#include "dprune/dist.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct dp_shm_sum dp_shm_sum;

/* *yes: whether every rank of d->comm runs on this node. Collective. */
dp_status dp_shm_single_node(dp_dist *d, bool *yes, dp_error *err);

/* Whether `dir` has room for `bytes` more (with some slack for MPI's own segments). On no,
 * *free_bytes says what it has (0 if it cannot be read). */
bool dp_shm_room(const char *dir, size_t bytes, size_t *free_bytes);

/* The directory Open MPI places shared-memory windows in. */
const char *dp_shm_backing_dir(void);

/* Bytes of one rank's part of the window for n floats (what the room check counts). */
size_t dp_shm_sum_bytes(size_t n);

/* Collective. Allocates a window of n floats per rank; *slot is this rank's buffer (64-byte
 * aligned). Every rank must be on one node (dp_shm_single_node). */
dp_status dp_shm_sum_create(dp_shm_sum **out, dp_dist *d, size_t n, float **slot, dp_error *err);

/* Collective: afterwards every rank's slot holds the elementwise sum over ranks, added in rank
 * order (bitwise the same on every rank). Waits go through the watchdog. */
dp_status dp_shm_sum_run(dp_shm_sum *s, dp_error *err);

/* Collective: the sum with an update folded in. Rank r sums its slice block by block and
 * calls update(ctx, sum, lo, hi) for each block, which must change only state[lo, hi);
 * that range is published, and afterwards every rank's state (n floats) is whole, each slice
 * as its owner updated it. The slots then hold no sum. Blocks may run on several threads. */
dp_status dp_shm_sum_update(dp_shm_sum *s, dp_range_update_fn update, void *ctx, float *state,
                            dp_error *err);

/* Collective: a block of `floats` floats, one copy for all ranks of the node (64-byte aligned),
 * until dp_shm_sum_free; fenced_barrier (dp_shm_sum_barrier and every collective here) makes
 * stores to it visible. `what` names it in the error when there is no room. */
enum { DP_SHM_MAX_BLOCKS = 4 };
dp_status dp_shm_sum_add_block(dp_shm_sum *s, size_t floats, const char *what, float **block,
                               dp_error *err);

/* Collective: a barrier after which every rank sees the others' stores to the slots and the
 * blocks. Through the watchdog. */
dp_status dp_shm_sum_barrier(dp_shm_sum *s, dp_error *err);

/* Collective: a block of n floats, one copy for all ranks, filled from `own` (which
 * every rank holds the same); *shared points at it until dp_shm_sum_free. Passed as `state` to
 * dp_shm_sum_update, each rank's update writes its slice there and nothing is copied. */
dp_status dp_shm_sum_share_state(dp_shm_sum *s, const float *own, float **shared, dp_error *err);

/* Collective, with the state shared, after dp_shm_sum_run: rank r applies update to its slice
 * with the summed gradient in its slot, between two barriers (nobody still reads the state
 * before, everybody sees the whole new state after). */
dp_status dp_shm_step_shared(dp_shm_sum *s, dp_range_update_fn update, void *ctx, dp_error *err);

/* Collective: buf (n floats) gets slice q from rank q's buf, for every q. Uses the slots
 * (their contents are lost). */
dp_status dp_shm_gather(dp_shm_sum *s, float *buf, dp_error *err);

/* Rank q's slice [lo, hi) of n floats: whole cache lines (16 floats), in rank order. */
void dp_shm_slice(size_t n, int world, int q, size_t *lo, size_t *hi);

/* Collective (a watchdog-guarded barrier first, so a lost rank cannot hang it). */
void dp_shm_sum_free(dp_shm_sum *s);

#endif
