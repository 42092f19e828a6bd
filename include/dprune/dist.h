/* dprune dist: the only MPI caller. A plain `./dprune conf.cfg` runs as an MPI singleton. */
#ifndef DPRUNE_DIST_H
#define DPRUNE_DIST_H

#include "dprune/core.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, world;
} dp_dist;

dp_status dp_dist_init(int *argc, char ***argv, dp_dist *d, dp_error *err);
void dp_dist_finalize(void);
/* Ends every rank with `code` (collective abort; never returns). */
void dp_dist_abort(int code) __attribute__((noreturn));
/* 1 if flag is non-zero on any rank (collective). */
int dp_dist_any(int flag);
dp_status dp_dist_bcast_bytes(void *buf, size_t n, int root, dp_error *err);
/* Broadcasts a NUL-terminated text: non-root ranks receive a malloc'ed copy. */
dp_status dp_dist_bcast_text(char **text, size_t *len, int root, dp_error *err);
void dp_dist_allreduce_sum_double(double *x, size_t n);
void dp_dist_allreduce_sum_i64(int64_t *x, size_t n);
void dp_dist_barrier(void);
void dp_dist_allreduce_sum_float(float *x, size_t n);
/* Collective error check: if `st` failed on any rank, the lowest failing rank prints its
 * message once ("dprune: error: ..."), and every rank gets a non-OK status back. */
dp_status dp_dist_check(dp_status st, const dp_error *err);
const char *dp_dist_library_version(char *buf, size_t n);

#endif
