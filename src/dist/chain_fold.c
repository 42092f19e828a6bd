/* Rank-count-independent sums of statistics: a chain. Statistics are partial sums per block
 * of global sample indices, and a rank holds a contiguous range of blocks (lower ranks the
 * earlier ones). Rank 0 folds its blocks into a zeroed accumulator and passes it to rank 1,
 * which folds its blocks, and so on; the last rank sends the total to rank 0. The additions
 * thus happen strictly in block order, as on one rank: bitwise the same result on any rank
 * count. W-1 sequential hops of one buffer: fine for statistics gathered once per round. */
#include "dprune/dist.h"
#include "watchdog.h"

enum { TAG_CHAIN = 9100 };

static dp_status transfer(dp_dist *d, double *acc, size_t n, int peer, bool send, dp_error *err) {
    for (size_t off = 0; off < n;) { /* MPI counts are int */
        int chunk = n - off > (1u << 30) ? (1 << 30) : (int)(n - off);
        MPI_Request req;
        if (send)
            MPI_Isend(acc + off, chunk, MPI_DOUBLE, peer, TAG_CHAIN, d->comm, &req);
        else
            MPI_Irecv(acc + off, chunk, MPI_DOUBLE, peer, TAG_CHAIN, d->comm, &req);
        dp_status st = dp_watchdog_wait(d, &req, "statistics chain", err);
        if (st != DP_OK) return st;
        off += (size_t)chunk;
    }
    return DP_OK;
}

dp_status dp_dist_chain_fold(dp_dist *d, double *acc, size_t n,
                             void (*fold)(void *ctx, double *acc), void *ctx, dp_error *err) {
    dp_status st = DP_OK;
    if (d->rank == 0) {
        for (size_t i = 0; i < n; i++) acc[i] = 0.0;
    } else {
        st = transfer(d, acc, n, d->rank - 1, false, err);
    }
    if (st != DP_OK) return st;
    fold(ctx, acc);
    if (d->world == 1) return DP_OK;
    if (d->rank < d->world - 1) return transfer(d, acc, n, d->rank + 1, true, err);
    return transfer(d, acc, n, 0, true, err); /* the last rank: the total goes to rank 0 */
}

dp_status dp_dist_chain_fold_finish(dp_dist *d, double *acc, size_t n, dp_error *err) {
    if (d->world == 1 || d->rank != 0) return DP_OK;
    return transfer(d, acc, n, d->world - 1, false, err);
}
