/* The calibration pass of a pruning round: training images without augmentation, BN in eval
 * mode, each prunable group's post-ReLU maps accumulated into per-block partial statistics
 * (prune/calib_stats), then folded in block order through the ranks (dist chain), so rank 0
 * gets statistics that are bitwise the same on any rank count. */
#include "calibrate.h"
#include "dprune/nn.h"
#include <stdlib.h>
#include <string.h>

static size_t stats_len(calib_kind kind, int C) {
    switch (kind) {
    case CALIB_CORR:
        return dp_corr_stats_len(C);
    case CALIB_HRANK:
        return dp_hrank_stats_len(C);
    case CALIB_CI:
        return dp_ci_stats_len(C);
    case CALIB_RMS:
        return dp_rms_stats_len(C);
    }
    return 0;
}

/* One accumulator: one scored node of one group, and/or an extra map asked for. */
typedef struct {
    int group, node;
    int C, H, W;
    bool scored; /* summed into the group's total */
    bool pos;    /* corr with per-position sums */
    int map;     /* index in calib_result.maps, -1 if not asked for */
    dp_calib_partials parts;
    double *shift; /* corr: k [C] */
} accumulator;

static void fold_own_blocks(void *ctx, double *total) {
    const accumulator *a = ctx;
    dp_calib_fold(&a->parts, total);
}

static dp_status add_block(const dp_app_data *d, const calib_set *set, int64_t first, int n,
                           uint64_t seed, float *x, dp_error *err) {
    size_t per = (size_t)d->aug.out_c * d->aug.out_h * d->aug.out_w;
    for (int i = 0; i < n; i++) {
        int64_t index = set->split->index[set->order[first + i]];
        dp_status st =
            dp_make_sample(set->split->ds, index, &d->aug, false, seed, 0, x + per * i, err);
        if (st != DP_OK) return st;
    }
    return DP_OK;
}

dp_status calib_set_init(calib_set *set, const dp_split *split, int images, uint64_t seed,
                         dp_error *err) {
    set->split = split;
    set->n = images < split->n ? images : split->n;
    set->order = malloc(sizeof(int64_t) * (size_t)(split->n > 0 ? split->n : 1));
    if (!set->order) return dp_fail(err, DP_ERR_NOMEM, "calibration: out of memory");
    /* a fixed "epoch" key distinct from training epochs: the same images every round */
    dp_sampler_order(split->n, true, seed, 1 << 30, set->order);
    return DP_OK;
}

void calib_set_free(calib_set *set) {
    free(set->order);
    set->order = NULL;
}

static dp_status accumulate(accumulator *a, calib_kind kind, const float *map, int64_t first, int n,
                            double *ws, size_t ws_len, dp_error *err) {
    int P = a->H * a->W;
    switch (kind) {
    case CALIB_CORR:
        if (a->pos)
            return dp_corr_pos_accumulate(&a->parts, first, n, a->C, P, map, a->shift, ws, err);
        return dp_corr_accumulate(&a->parts, first, n, a->C, P, map, a->shift, ws, err);
    case CALIB_HRANK:
        return dp_hrank_accumulate(&a->parts, first, n, a->C, a->H, a->W, map, ws, ws_len, err);
    case CALIB_CI:
        return dp_ci_accumulate(&a->parts, first, n, a->C, P, map, ws, ws_len, err);
    case CALIB_RMS:
        return dp_rms_accumulate(&a->parts, first, n, a->C, P, map, err);
    }
    return DP_OK;
}

static size_t workspace_len(calib_kind kind, const accumulator *a) {
    int P = a->H * a->W;
    switch (kind) {
    case CALIB_CORR:
        return (size_t)a->C * P;
    case CALIB_HRANK:
        return dp_hrank_workspace_doubles(a->H, a->W);
    case CALIB_CI:
        return dp_ci_workspace_doubles(a->C, P);
    case CALIB_RMS:
        return 1;
    }
    return 1;
}

/* The results of n_slots slots (groups, or listed maps) and n_maps extra maps, and room for an
 * accumulator per node and per extra map. */
static accumulator *calib_begin(const dp_model *m, int n_slots, int n_maps, calib_result *r,
                                dp_error *err) {
    memset(r, 0, sizeof *r);
    r->n_groups = n_slots;
    r->total = calloc((size_t)n_slots + 1, sizeof(double *));
    r->len = calloc((size_t)n_slots + 1, sizeof(size_t));
    r->shift = calloc((size_t)n_slots + 1, sizeof(double *));
    r->maps = calloc((size_t)n_maps + 1, sizeof(calib_map));
    r->n_maps = r->maps ? n_maps : 0;
    size_t cap = (size_t)(m->n_nodes > n_slots ? m->n_nodes : n_slots) + (size_t)n_maps + 1;
    accumulator *acc = calloc(cap, sizeof(accumulator));
    if (r->total && r->len && r->shift && r->maps && acc) return acc;
    free(acc);
    dp_fail(err, DP_ERR_NOMEM, "calibration: out of memory");
    return NULL;
}

/* A new accumulator for map `node` with partials of len doubles per block. */
static dp_status new_accumulator(accumulator *acc, int *n_acc, const dp_model *m, int node,
                                 size_t len, const dp_dist *dist, const calib_set *set,
                                 accumulator **out, dp_error *err) {
    int64_t first_block, nblocks;
    dp_calib_block_range(set->n, DP_CALIB_BLOCK, dist->rank, dist->world, &first_block, &nblocks);
    accumulator *a = &acc[(*n_acc)++];
    const dp_node *n = &m->nodes[node];
    *a = (accumulator){.group = -1, .node = node, .C = n->c, .H = n->h, .W = n->w, .map = -1};
    *out = a;
    return dp_calib_partials_init(&a->parts, first_block, nblocks, DP_CALIB_BLOCK, len, err);
}

/* One accumulator for map `node`, summed into slot `slot` on rank 0. */
static dp_status add_accumulator(accumulator *acc, int *n_acc, const dp_model *m, int slot,
                                 int node, calib_kind kind, const dp_dist *dist,
                                 const calib_set *set, dp_error *err) {
    accumulator *a;
    dp_status st =
        new_accumulator(acc, n_acc, m, node, stats_len(kind, m->nodes[node].c), dist, set, &a, err);
    a->group = slot;
    a->scored = true;
    return st;
}

/* The accumulator of node in acc[0..n), or NULL. */
static accumulator *find_acc(accumulator *acc, int n, int node) {
    for (int i = 0; i < n; i++)
        if (acc[i].node == node) return &acc[i];
    return NULL;
}

/* Extra map i (node of group), kept on its own in r->maps[i] on rank 0: after the scored
 * accumulators (a scored map asked for again is the same numbers, unless it needs per-position
 * sums). */
static dp_status add_map(accumulator *acc, int *n_acc, const dp_model *m, int i, int node,
                         int group, bool pos, calib_kind kind, const dp_dist *dist,
                         const calib_set *set, calib_result *r, dp_error *err) {
    r->maps[i] = (calib_map){.node = node, .group = group, .pos = pos};
    accumulator *a = find_acc(acc, *n_acc, node);
    if (a && !pos) {
        a->map = i;
        return DP_OK;
    }
    const dp_node *n = &m->nodes[node];
    size_t len = pos ? dp_corr_pos_stats_len(n->c, n->h * n->w) : stats_len(kind, n->c);
    dp_status st = new_accumulator(acc, n_acc, m, node, len, dist, set, &a, err);
    a->group = group;
    a->pos = pos;
    a->map = i;
    return st;
}

static dp_status calib_run(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                           const calib_set *set, calib_kind kind, uint64_t seed, accumulator *acc,
                           int n_acc, dp_status st, calib_result *r, dp_error *err);

dp_status calibrate(dp_dist *dist, const dp_model *m, const dp_app_data *d, const calib_set *set,
                    const dp_groups *gs, calib_kind kind, uint64_t seed, calib_result *r,
                    dp_error *err) {
    return calibrate_with_maps(dist, m, d, set, gs, kind, seed, NULL, NULL, NULL, 0, r, err);
}

dp_status calibrate_with_maps(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                              const calib_set *set, const dp_groups *gs, calib_kind kind,
                              uint64_t seed, const int *map_nodes, const int *map_groups,
                              const bool *map_pos, int n_maps, calib_result *r, dp_error *err) {
    accumulator *acc = calib_begin(m, gs->n_groups, n_maps, r, err);
    int n_acc = 0;
    dp_status st = acc ? DP_OK : DP_ERR_NOMEM;
    for (int g = 0; g < gs->n_groups && st == DP_OK; g++) {
        if (!gs->groups[g].prunable) continue;
        int nodes[64];
        int k = dp_group_scored_nodes(m, &gs->groups[g], nodes, 64);
        for (int j = 0; j < k && st == DP_OK; j++)
            st = add_accumulator(acc, &n_acc, m, g, nodes[j], kind, dist, set, err);
    }
    for (int i = 0; i < n_maps && st == DP_OK; i++) {
        bool pos = kind == CALIB_CORR && map_pos && map_pos[i];
        st = add_map(acc, &n_acc, m, i, map_nodes[i], map_groups[i], pos, kind, dist, set, r, err);
    }
    return calib_run(dist, m, d, set, kind, seed, acc, n_acc, st, r, err);
}

dp_status calibrate_nodes(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                          const calib_set *set, const int *nodes, int n_nodes, calib_kind kind,
                          uint64_t seed, calib_result *r, dp_error *err) {
    accumulator *acc = calib_begin(m, n_nodes, 0, r, err);
    int n_acc = 0;
    dp_status st = acc ? DP_OK : DP_ERR_NOMEM;
    for (int i = 0; i < n_nodes && st == DP_OK; i++)
        st = add_accumulator(acc, &n_acc, m, i, nodes[i], kind, dist, set, err);
    return calib_run(dist, m, d, set, kind, seed, acc, n_acc, st, r, err);
}

/* Rank 0: a copy of a map's folded total and shift into the result. */
static dp_status keep_map(calib_result *r, const accumulator *a, const double *total, size_t len,
                          dp_error *err) {
    calib_map *cm = &r->maps[a->map];
    cm->total = malloc(sizeof(double) * len);
    cm->len = len;
    if (a->shift) cm->shift = malloc(sizeof(double) * (size_t)a->C);
    if (!cm->total || (a->shift && !cm->shift))
        return dp_fail(err, DP_ERR_NOMEM, "calibration: out of memory");
    memcpy(cm->total, total, sizeof(double) * len);
    if (a->shift) memcpy(cm->shift, a->shift, sizeof(double) * (size_t)a->C);
    return DP_OK;
}

/* The pass itself: forwards of this rank's blocks into the accumulators, then the fold through
 * the ranks; rank 0 sums each scored accumulator into its slot and copies each extra map into
 * r->maps. Frees acc. */
static dp_status calib_run(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                           const calib_set *set, calib_kind kind, uint64_t seed, accumulator *acc,
                           int n_acc, dp_status st, calib_result *r, dp_error *err) {
    dp_activations act = {0};
    float *x = NULL;
    double *ws = NULL;
    size_t ws_len = 1;
    for (int i = 0; i < n_acc; i++) {
        size_t need = workspace_len(kind, &acc[i]);
        if (need > ws_len) ws_len = need;
    }
    int64_t first_block, nblocks;
    dp_calib_block_range(set->n, DP_CALIB_BLOCK, dist->rank, dist->world, &first_block, &nblocks);
    /* a failure so far still reaches the collective check below, with every other rank */
    if (st == DP_OK) st = dp_activations_alloc(&act, m, DP_CALIB_BLOCK, err);
    size_t per = (size_t)d->aug.out_c * d->aug.out_h * d->aug.out_w;
    x = malloc(sizeof(float) * per * DP_CALIB_BLOCK);
    ws = malloc(sizeof(double) * ws_len);
    if (st == DP_OK && (!x || !ws)) st = dp_fail(err, DP_ERR_NOMEM, "calibration: out of memory");
    dp_forward_opts eval = {.train = false};

    /* CorrTopo's shift: the channel means of block 0 (global samples 0..31). Every rank
     * computes it itself, identically, instead of waiting for a broadcast. */
    if (st == DP_OK && kind == CALIB_CORR && set->n > 0) {
        int n0 = set->n < DP_CALIB_BLOCK ? (int)set->n : DP_CALIB_BLOCK;
        st = add_block(d, set, 0, n0, seed, x, err);
        if (st == DP_OK) dp_model_forward(m, &act, x, n0, &eval);
        for (int i = 0; i < n_acc && st == DP_OK; i++) {
            accumulator *a = &acc[i];
            a->shift = malloc(sizeof(double) * (size_t)a->C);
            if (!a->shift)
                st = dp_fail(err, DP_ERR_NOMEM, "calibration: out of memory");
            else
                dp_corr_shift(n0, a->C, a->H * a->W, act.out[a->node], a->shift);
        }
        /* a residual group sums the statistics of several maps: they share one shift (the
         * scored accumulators of a group are consecutive; an extra map keeps its own) */
        for (int i = 1; i < n_acc && st == DP_OK; i++)
            if (acc[i].scored && acc[i - 1].scored && acc[i].group == acc[i - 1].group)
                memcpy(acc[i].shift, acc[i - 1].shift, sizeof(double) * (size_t)acc[i].C);
    }

    /* this rank's blocks, one forward per block: a block's numbers do not depend on batching */
    for (int64_t b = first_block; b < first_block + nblocks && st == DP_OK; b++) {
        int64_t first = b * DP_CALIB_BLOCK;
        int n = (int)(set->n - first < DP_CALIB_BLOCK ? set->n - first : DP_CALIB_BLOCK);
        st = add_block(d, set, first, n, seed, x, err);
        if (st != DP_OK) break;
        dp_model_forward(m, &act, x, n, &eval);
        for (int i = 0; i < n_acc && st == DP_OK; i++)
            st = accumulate(&acc[i], kind, act.out[acc[i].node], first, n, ws, ws_len, err);
    }
    if ((st = dp_dist_check(dist, st, err)) != DP_OK) goto done;

    /* fold through the ranks in block order; rank 0 sums the maps of each group */
    for (int i = 0; i < n_acc && st == DP_OK; i++) {
        accumulator *a = &acc[i];
        size_t len = a->parts.len;
        double *total = malloc(sizeof(double) * len);
        if (!total) {
            st = dp_fail(err, DP_ERR_NOMEM, "calibration: out of memory");
            break;
        }
        st = dp_dist_chain_fold(dist, total, len, fold_own_blocks, a, err);
        if (st == DP_OK) st = dp_dist_chain_fold_finish(dist, total, len, err);
        if (st == DP_OK && dist->rank == 0 && a->map >= 0) st = keep_map(r, a, total, len, err);
        if (st == DP_OK && dist->rank == 0 && a->scored) {
            if (!r->total[a->group]) {
                r->total[a->group] = total;
                r->len[a->group] = len;
                r->shift[a->group] = a->shift;
                a->shift = NULL;
                total = NULL;
            } else {
                for (size_t j = 0; j < len; j++) r->total[a->group][j] += total[j];
            }
        }
        free(total);
    }
done:
    for (int i = 0; acc && i < n_acc; i++) {
        dp_calib_partials_free(&acc[i].parts);
        free(acc[i].shift);
    }
    free(acc);
    free(x);
    free(ws);
    if (act.out) dp_activations_free(&act, m);
    return st;
}

void calib_result_free(calib_result *r) {
    for (int g = 0; g < r->n_groups; g++) {
        if (r->total) free(r->total[g]);
        if (r->shift) free(r->shift[g]);
    }
    for (int i = 0; i < r->n_maps && r->maps; i++) {
        free(r->maps[i].total);
        free(r->maps[i].shift);
    }
    free(r->maps);
    free(r->total);
    free(r->len);
    free(r->shift);
    memset(r, 0, sizeof *r);
}
