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

/* Per group (NULL where not prunable), on rank 0: the folded statistics (layout of the kind,
 * see prune_criteria.h) summed over the group's scored maps, and the CorrTopo shift. */
typedef struct {
    int n_groups;
    double **total;
    size_t *len;
    double **shift;
} calib_result;

/* Collective. The model runs in eval mode on blocks of DP_CALIB_BLOCK images. */
dp_status calibrate(dp_dist *dist, const dp_model *m, const dp_app_data *d, const calib_set *set,
                    const dp_groups *gs, calib_kind kind, uint64_t seed, calib_result *r,
                    dp_error *err);
/* The same pass for a list of maps (CIP's feature term): on rank 0, r->total[i] holds the
 * statistics of map nodes[i] alone (r->n_groups = n_nodes). Collective. */
dp_status calibrate_maps(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                         const calib_set *set, const int *nodes, int n_nodes, calib_kind kind,
                         uint64_t seed, calib_result *r, dp_error *err);
void calib_result_free(calib_result *r);

#endif
