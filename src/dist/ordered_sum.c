/* Sums of per-block partial statistics, combined on rank 0 in block order, so the result is
 * bitwise the same whatever the number of ranks: block b (a fixed run of global sample
 * indices) is computed by rank b % W, and rank 0 folds p0, p1, p2, ... strictly in order.
 * Owners keep their partials until rank 0 asks for them (point-to-point, tag = block). */
#include "dprune/dist.h"
#include "watchdog.h"
#include <stdlib.h>
#include <string.h>

enum { TAG_BLOCK_BASE = 9000 };

struct dp_ordered_sum {
    dp_dist *dist;
    size_t n; /* doubles per partial */
    int n_blocks;
    int next;      /* rank 0: the next block to fold */
    double *total; /* rank 0: the running sum */
    double **held; /* [n_blocks] partials not yet folded (owner side) */
};

dp_status dp_ordered_sum_begin(dp_ordered_sum **out, dp_dist *d, size_t n, int n_blocks,
                               dp_error *err) {
    dp_ordered_sum *o = calloc(1, sizeof *o);
    if (!o) return dp_fail(err, DP_ERR_NOMEM, "ordered sum: out of memory");
    o->dist = d, o->n = n, o->n_blocks = n_blocks;
    o->held = calloc((size_t)n_blocks + 1, sizeof(double *));
    o->total = d->rank == 0 ? calloc(n + 1, sizeof(double)) : NULL;
    if (!o->held || (d->rank == 0 && !o->total)) {
        dp_ordered_sum_free(o);
        return dp_fail(err, DP_ERR_NOMEM, "ordered sum: cannot hold %zu statistics", n);
    }
    *out = o;
    return DP_OK;
}

void dp_ordered_sum_free(dp_ordered_sum *o) {
    if (!o) return;
    for (int b = 0; b < o->n_blocks; b++) free(o->held[b]);
    free(o->held);
    free(o->total);
    free(o);
}

int dp_ordered_sum_owner(const dp_ordered_sum *o, int block) {
    return block % o->dist->world;
}

static void fold(dp_ordered_sum *o, const double *p) {
    for (size_t i = 0; i < o->n; i++) o->total[i] += p[i];
    o->next++;
}

dp_status dp_ordered_sum_add(dp_ordered_sum *o, int block, const double *partial, dp_error *err) {
    if (block < 0 || block >= o->n_blocks || dp_ordered_sum_owner(o, block) != o->dist->rank)
        return dp_fail(err, DP_ERR_ARG, "ordered sum: block %d is not this rank's", block);
    /* on one rank blocks arrive in order and fold at once: no copies */
    if (o->dist->rank == 0 && block == o->next) {
        fold(o, partial);
        return DP_OK;
    }
    o->held[block] = malloc(sizeof(double) * (o->n + 1));
    if (!o->held[block]) return dp_fail(err, DP_ERR_NOMEM, "ordered sum: out of memory");
    memcpy(o->held[block], partial, sizeof(double) * o->n);
    return DP_OK;
}

dp_status dp_ordered_sum_finish(dp_ordered_sum *o, double *total, dp_error *err) {
    dp_dist *d = o->dist;
    if (d->rank != 0) {
        for (int b = 0; b < o->n_blocks; b++) {
            if (dp_ordered_sum_owner(o, b) != d->rank) continue;
            if (!o->held[b]) return dp_fail(err, DP_ERR_ARG, "ordered sum: block %d missing", b);
            MPI_Request req;
            MPI_Isend(o->held[b], (int)o->n, MPI_DOUBLE, 0, TAG_BLOCK_BASE, d->comm, &req);
            dp_status st = dp_watchdog_wait(d, &req, "statistics to rank 0", err);
            if (st != DP_OK) return st;
        }
        return DP_OK;
    }
    double *buf = malloc(sizeof(double) * (o->n + 1));
    if (!buf) return dp_fail(err, DP_ERR_NOMEM, "ordered sum: out of memory");
    while (o->next < o->n_blocks) {
        int b = o->next, owner = dp_ordered_sum_owner(o, b);
        if (owner == 0) {
            if (!o->held[b]) {
                free(buf);
                return dp_fail(err, DP_ERR_ARG, "ordered sum: block %d missing", b);
            }
            fold(o, o->held[b]);
            continue;
        }
        /* each owner sends its blocks in increasing order, and MPI keeps the order of
         * messages between a pair of ranks with the same tag */
        MPI_Request req;
        MPI_Irecv(buf, (int)o->n, MPI_DOUBLE, owner, TAG_BLOCK_BASE, d->comm, &req);
        dp_status st = dp_watchdog_wait(d, &req, "statistics from a rank", err);
        if (st != DP_OK) {
            free(buf);
            return st;
        }
        fold(o, buf);
    }
    free(buf);
    memcpy(total, o->total, sizeof(double) * o->n);
    return DP_OK;
}
