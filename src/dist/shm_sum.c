/* The sum over ranks of one float buffer per rank through an MPI-3 shared-memory window.
 *
 * Why: MPI_Iallreduce over shared memory copies every byte through MPI's buffers (vader's
 * single copy, then Rabenseifner's reduce-scatter + allgather); on a node whose cores all
 * compute, that traffic is pure loss. Here every rank's gradient buffer *is* its slot of a
 * shared window, so the sum reads the others' buffers in place:
 *   1. barrier: every slot is final;
 *   2. rank r sums slice r (1/W of the buffer, whole cache lines) over all slots, in rank
 *      order, into its own slot;
 *   3. barrier: every slice is summed;
 *   4. rank r copies every other slice q from slot q into its own slot;
 *   5. barrier: nobody writes its slot (the next backward) while another still reads it.
 * Per rank that is n reads + n/W writes to sum and 2 n (W-1)/W to copy: for vgg16's 60 MB on
 * 2 ranks 6.3 ms against 27 ms for MPI_Iallreduce (bench/bench_shm_sum.c; NOTES.md, issue 3,
 * "Session 5").
 * The sharded step (dp_shm_sum_update) replaces 2-4: rank r hands each summed block of its
 * slice to the optimizer, which updates those parameters (and their momentum) while the sum
 * is in L1, and publishes the new parameters in its slot; then every rank copies the other
 * slices of parameters. Per rank that is n reads of gradients and 4 n/W of parameters and
 * momentum, where the sum followed by a full step on every rank reads and writes about 8 n.
 * Momentum then is current only in the owner's slice (dp_shm_gather makes it whole).
 * With the state shared (dp_shm_sum_share_state: one copy of the parameters in a second
 * window, which every rank computes with), rank r's update writes its slice where every rank
 * reads it, and step 4 with its barrier goes: no copy of (W-1)/W n parameters per rank, and
 * the node's caches hold one copy of the weights instead of W (sum and step of 60 MB on 2
 * ranks: 6.2 ms against 9.8 with the copy; NOTES.md, issue 3, "Session 8").
 * Every element is summed once, by one rank, in one order, so every rank ends with the same
 * bits. Only rank r ever writes slot r, so slices need no care for false sharing. Memory model: the
 * window is locked once (lock_all) and MPI_Win_sync fences every barrier, the MPI-3 idiom for
 * load/store access to shared windows. */
#include "shm_sum.h"
#include "watchdog.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

enum { LINE_FLOATS = 16, BLOCK_FLOATS = 2048 };

struct dp_shm_sum {
    dp_dist *dist;
    MPI_Win win;
    float **slot; /* slot[q]: rank q's buffer, mapped into this process */
    size_t n;
    /* blocks of one copy for every rank (dp_shm_sum_add_block) */
    MPI_Win block_win[DP_SHM_MAX_BLOCKS];
    int n_blocks;
    float *state; /* dp_shm_sum_share_state's block, or NULL */
};

dp_status dp_shm_single_node(dp_dist *d, bool *yes, dp_error *err) {
    MPI_Comm node;
    int size = 0;
    MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &size);
    MPI_Comm_free(&node);
    /* every rank sees its own node; all must see the whole job */
    int64_t apart = size != d->world;
    dp_status st = dp_dist_sum_i64(d, &apart, 1, err);
    *yes = st == DP_OK && apart == 0;
    return st;
}

const char *dp_shm_backing_dir(void) {
    const char *dir = getenv("OMPI_MCA_osc_sm_backing_directory");
    return dir && *dir ? dir : "/dev/shm";
}

bool dp_shm_room(const char *dir, size_t bytes, size_t *free_bytes) {
    struct statvfs fs;
    *free_bytes = 0;
    if (statvfs(dir, &fs) != 0) return false;
    *free_bytes = (size_t)fs.f_bavail * (size_t)fs.f_frsize;
    /* MPI's own shared-memory segments live there too */
    size_t slack = bytes / 16 + ((size_t)32 << 20); /* fits Docker's default 64 MB for 1 MB */
    return *free_bytes >= bytes + slack;
}

void dp_shm_slice(size_t n, int world, int q, size_t *lo, size_t *hi) {
    size_t lines = (n + LINE_FLOATS - 1) / LINE_FLOATS;
    *lo = lines * (size_t)q / (size_t)world * LINE_FLOATS;
    *hi = lines * (size_t)(q + 1) / (size_t)world * LINE_FLOATS;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

size_t dp_shm_sum_bytes(size_t n) {
    return (n + LINE_FLOATS) * sizeof(float); /* one line more: the slot is aligned within */
}

/* A shared window of `bytes` on this rank, locked for load/store access; errors come back as
 * codes (the collective error check reports them), not as an abort. */
static int open_window(dp_dist *d, size_t bytes, MPI_Info info, MPI_Win *win) {
    float *mine = NULL;
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    int rc = MPI_Win_allocate_shared((MPI_Aint)bytes, sizeof(float), info, d->comm, &mine, win);
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_ARE_FATAL);
    if (rc == MPI_SUCCESS) MPI_Win_lock_all(MPI_MODE_NOCHECK, *win);
    return rc;
}

/* Rank q's segment of win. Open MPI starts segments 8-byte aligned; the model's tensors
 * expect 64 (hence the extra line dp_shm_sum_bytes counts). */
static float *segment(MPI_Win win, int q) {
    MPI_Aint size;
    int unit;
    float *base;
    MPI_Win_shared_query(win, q, &size, &unit, &base);
    return (float *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
}

dp_status dp_shm_sum_create(dp_shm_sum **out, dp_dist *d, size_t n, float **slot, dp_error *err) {
    *out = NULL;
    dp_shm_sum *s = calloc(1, sizeof *s);
    if (s) s->slot = calloc((size_t)d->world, sizeof(float *));
    if (!s || !s->slot) {
        if (s) free(s->slot);
        free(s);
        return dp_fail(err, DP_ERR_NOMEM, "shared-memory gradient sum: out of memory");
    }
    s->dist = d;
    s->n = n;
    MPI_Info info;
    MPI_Info_create(&info);
    /* each rank's slot in its own pages, first touched by that rank (NUMA-local) */
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    size_t bytes = dp_shm_sum_bytes(n);
    int rc = open_window(d, bytes, info, &s->win);
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS) {
        free(s->slot);
        free(s);
        return dp_fail(err, DP_ERR_MPI,
                       "cannot allocate a shared-memory window of %zu MB per rank in %s for the "
                       "gradient sum; set dist.allreduce = \"mpi\"",
                       bytes >> 20, dp_shm_backing_dir());
    }
    for (int q = 0; q < d->world; q++) s->slot[q] = segment(s->win, q);
    *slot = s->slot[d->rank];
    *out = s;
    return DP_OK;
}

static void sync_windows(dp_shm_sum *s) {
    MPI_Win_sync(s->win);
    for (int b = 0; b < s->n_blocks; b++) MPI_Win_sync(s->block_win[b]);
}

/* a barrier whose stores before it are visible to every rank's loads after it */
static dp_status fenced_barrier(dp_shm_sum *s, dp_error *err) {
    sync_windows(s);
    dp_status st = dp_dist_barrier(s->dist, err);
    sync_windows(s);
    return st;
}

dp_status dp_shm_sum_barrier(dp_shm_sum *s, dp_error *err) {
    return fenced_barrier(s, err);
}

/* acc[0, len) = slot[0][b..] + slot[1][b..] + ... + slot[W-1][b..], in that order */
static void sum_block(float *acc, float *const *slot, int world, size_t b, size_t len) {
    const float *s0 = slot[0] + b;
#pragma omp simd
    for (size_t i = 0; i < len; i++) acc[i] = s0[i];
    for (int q = 1; q < world; q++) {
        const float *sq = slot[q] + b;
#pragma omp simd
        for (size_t i = 0; i < len; i++) acc[i] += sq[i];
    }
}

/* out[lo, hi) = the sum over slots. out is one of the slots, so each block is summed in a
 * buffer (in L1) and written once all slots are read. */
static void sum_slice(float *out, float *const *slot, int world, size_t lo, size_t hi) {
#pragma omp parallel for schedule(static)
    for (size_t b = lo; b < hi; b += BLOCK_FLOATS) {
        float acc[BLOCK_FLOATS];
        size_t len = b + BLOCK_FLOATS < hi ? BLOCK_FLOATS : hi - b;
        sum_block(acc, slot, world, b, len);
        memcpy(out + b, acc, len * sizeof(float));
    }
}

/* each block's sum goes to `update`, which changes state[b, b + len); unless the state is
 * shared, that range of state is then published in this rank's slot (still in cache) */
static void sum_update_slice(float *const *slot, int world, int rank, size_t lo, size_t hi,
                             dp_range_update_fn update, void *ctx, const float *state,
                             bool publish) {
#pragma omp parallel for schedule(static)
    for (size_t b = lo; b < hi; b += BLOCK_FLOATS) {
        float acc[BLOCK_FLOATS];
        size_t len = b + BLOCK_FLOATS < hi ? BLOCK_FLOATS : hi - b;
        sum_block(acc, slot, world, b, len);
        update(ctx, acc, b, b + len);
        if (publish) memcpy(slot[rank] + b, state + b, len * sizeof(float));
    }
}

static void copy_slice(float *out, const float *from, size_t lo, size_t hi) {
#pragma omp parallel for schedule(static)
    for (size_t b = lo; b < hi; b += BLOCK_FLOATS) {
        size_t e = b + BLOCK_FLOATS < hi ? b + BLOCK_FLOATS : hi;
        memcpy(out + b, from + b, (e - b) * sizeof(float));
    }
}

/* into[slice q] = slot q's slice q for every q != this rank, then the closing barrier (nobody
 * writes its slot again while another rank still reads it) */
static dp_status take_other_slices(dp_shm_sum *s, float *into, dp_error *err) {
    const int W = s->dist->world, r = s->dist->rank;
    for (int q = 0; q < W; q++) {
        if (q == r) continue;
        size_t lo, hi;
        dp_shm_slice(s->n, W, q, &lo, &hi);
        copy_slice(into, s->slot[q], lo, hi);
    }
    return fenced_barrier(s, err);
}

dp_status dp_shm_sum_run(dp_shm_sum *s, dp_error *err) {
    const int W = s->dist->world, r = s->dist->rank;
    if (W == 1) return DP_OK;
    dp_status st = fenced_barrier(s, err);
    if (st != DP_OK) return st;
    size_t lo, hi;
    dp_shm_slice(s->n, W, r, &lo, &hi);
    sum_slice(s->slot[r], s->slot, W, lo, hi);
    if ((st = fenced_barrier(s, err)) != DP_OK) return st;
    return take_other_slices(s, s->slot[r], err);
}

dp_status dp_shm_sum_update(dp_shm_sum *s, dp_range_update_fn update, void *ctx, float *state,
                            dp_error *err) {
    const int W = s->dist->world, r = s->dist->rank;
    dp_status st = fenced_barrier(s, err);
    if (st != DP_OK) return st;
    size_t lo, hi;
    dp_shm_slice(s->n, W, r, &lo, &hi);
    bool shared = state == s->state;
    sum_update_slice(s->slot, W, r, lo, hi, update, ctx, state, !shared);
    if ((st = fenced_barrier(s, err)) != DP_OK) return st;
    /* shared state: every slice is already where every rank reads it */
    return shared ? DP_OK : take_other_slices(s, state, err);
}

dp_status dp_shm_step_shared(dp_shm_sum *s, dp_range_update_fn update, void *ctx, dp_error *err) {
    const int W = s->dist->world, r = s->dist->rank;
    /* nobody reads the state any more (the summed gradient may have been transformed with it) */
    dp_status st = fenced_barrier(s, err);
    if (st != DP_OK) return st;
    size_t lo, hi;
    dp_shm_slice(s->n, W, r, &lo, &hi);
    const float *grad = s->slot[r];
#pragma omp parallel for schedule(static)
    for (size_t b = lo; b < hi; b += BLOCK_FLOATS) {
        size_t e = b + BLOCK_FLOATS < hi ? b + BLOCK_FLOATS : hi;
        update(ctx, grad + b, b, e);
    }
    return fenced_barrier(s, err);
}

dp_status dp_shm_sum_add_block(dp_shm_sum *s, size_t floats, const char *what, float **block,
                               dp_error *err) {
    dp_dist *d = s->dist;
    *block = NULL;
    if (s->n_blocks == DP_SHM_MAX_BLOCKS)
        return dp_fail(err, DP_ERR_ARG, "shared-memory sum: more than %d blocks",
                       DP_SHM_MAX_BLOCKS);
    /* one segment, on rank 0 (first touches decide where its pages lie) */
    size_t bytes = dp_shm_sum_bytes(floats);
    MPI_Win win;
    if (open_window(d, d->rank == 0 ? bytes : 0, MPI_INFO_NULL, &win) != MPI_SUCCESS)
        return dp_fail(err, DP_ERR_MPI,
                       "cannot allocate a shared-memory window of %zu MB in %s for %s; set "
                       "dist.allreduce = \"mpi\"",
                       bytes >> 20, dp_shm_backing_dir(), what);
    s->block_win[s->n_blocks++] = win;
    *block = segment(win, 0);
    return DP_OK;
}

dp_status dp_shm_sum_share_state(dp_shm_sum *s, const float *own, float **shared, dp_error *err) {
    dp_status st = dp_shm_sum_add_block(s, s->n, "the parameters", shared, err);
    if (st != DP_OK) return st;
    s->state = *shared;
    /* each rank writes its own slice first, so on a NUMA node the pages of slice q (but for
     * the ones slices share) lie near rank q, which updates them */
    size_t lo, hi;
    dp_shm_slice(s->n, s->dist->world, s->dist->rank, &lo, &hi);
    copy_slice(s->state, own, lo, hi);
    return fenced_barrier(s, err);
}

dp_status dp_shm_gather(dp_shm_sum *s, float *buf, dp_error *err) {
    const int W = s->dist->world, r = s->dist->rank;
    size_t lo, hi;
    dp_shm_slice(s->n, W, r, &lo, &hi);
    /* the slot is free: every collective here ends with a barrier after the last read */
    copy_slice(s->slot[r], buf, lo, hi);
    dp_status st = fenced_barrier(s, err);
    return st == DP_OK ? take_other_slices(s, buf, err) : st;
}

void dp_shm_sum_free(dp_shm_sum *s) {
    if (!s) return;
    dp_error err = {0};
    fenced_barrier(s, &err); /* a lost rank ends the job here (watchdog), not in MPI_Win_free */
    for (int b = 0; b < s->n_blocks; b++) {
        MPI_Win_unlock_all(s->block_win[b]);
        MPI_Win_free(&s->block_win[b]);
    }
    MPI_Win_unlock_all(s->win);
    MPI_Win_free(&s->win);
    free(s->slot);
    free(s);
}
