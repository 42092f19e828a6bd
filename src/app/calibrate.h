/* The calibration pass of a pruning round (app-internal). */
#ifndef DPRUNE_APP_CALIBRATE_H
#define DPRUNE_APP_CALIBRATE_H

#include "app.h"
#include "dprune/prune.h"
#include "dprune/prune_criteria.h"

typedef enum { CALIB_CORR, CALIB_HRANK, CALIB_CI, CALIB_RMS } calib_kind;

/* The calibration images: the first n of a seeded permutation of a split (the same every
 * round). Global sample index i = position i of this list. */
typedef struct {
    const dp_split *split;
    int64_t *order;
    int64_t n;
} calib_set;

dp_status calib_set_init(calib_set *set, const dp_split *split, int images, uint64_t seed,
                         dp_error *err);
void calib_set_free(calib_set *set);

/* Statistics of one extra map (any node of a prunable group), on rank 0. */
typedef struct {
    int node, group;
    bool pos;      /* CorrTopo with per-position sums (dp_corr_pos_stats_len layout) */
    double *total; /* folded, layout of the kind; NULL on other ranks */
    size_t len;
    double *shift; /* CorrTopo shift of this map */
} calib_map;

/* Per group (NULL where not prunable), on rank 0: the folded statistics (layout of the kind,
 * see prune_criteria.h) summed over the group's scored maps, and the CorrTopo shift; then the
 * extra maps asked for, in the order asked. */
typedef struct {
    int n_groups;
    double **total;
    size_t *len;
    double **shift;
    int n_maps;
    calib_map *maps;
} calib_result;

/* Collective. The model runs in eval mode on blocks of DP_CALIB_BLOCK images. */
dp_status calibrate(dp_dist *dist, const dp_model *m, const dp_app_data *d, const calib_set *set,
                    const dp_groups *gs, calib_kind kind, uint64_t seed, calib_result *r,
                    dp_error *err);
/* The same, also accumulating the statistics of maps[i] (node map_nodes[i] of group
 * map_groups[i]) on their own into r->maps[i] (CorrTopo's fold needs the maps the consumers
 * read); with map_pos[i] (kind CALIB_CORR only) with per-position sums. A map that is also a
 * scored one is accumulated once unless it needs per-position sums. */
dp_status calibrate_with_maps(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                              const calib_set *set, const dp_groups *gs, calib_kind kind,
                              uint64_t seed, const int *map_nodes, const int *map_groups,
                              const bool *map_pos, int n_maps, calib_result *r, dp_error *err);
/* The same pass for a list of maps (CIP's feature term): on rank 0, r->total[i] holds the
 * statistics of map nodes[i] alone (r->n_groups = n_nodes). Collective. */
dp_status calibrate_nodes(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                          const calib_set *set, const int *nodes, int n_nodes, calib_kind kind,
                          uint64_t seed, calib_result *r, dp_error *err);
void calib_result_free(calib_result *r);

#endif
