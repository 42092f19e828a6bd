/* CorrTopo's fold in a pruning round (app-internal): the maps calibration must also see, the
 * fold rank 0 computes from their statistics and the plan, and its broadcast. The math and
 * the surgery side are prune/corr_fold.c. */
#ifndef DPRUNE_APP_CORR_FOLD_H
#define DPRUNE_APP_CORR_FOLD_H

#include "calibrate.h"

/* criterion corr with prune.corr_fold or prune.corr_compensate. */
bool app_corr_fold_wanted(const dp_prune_config *pc);
/* Collective: CorrTopo calibration plus the statistics of every map a prunable group's
 * consumers read (dp_corr_read_maps). */
dp_status app_corr_fold_calibrate(dp_dist *dist, const dp_model *m, const dp_app_data *d,
                                  const calib_set *set, const dp_groups *gs, uint64_t seed,
                                  calib_result *r, dp_error *err);
/* Rank 0: the fold of the plan's cuts from those statistics (B only with corr_compensate);
 * says which consumers have no place for the constant. */
dp_status app_corr_fold_decide(const dp_prune_config *pc, const dp_model *m, const dp_groups *gs,
                               const calib_result *cr, const dp_plan *plan, dp_corr_fold *f,
                               dp_error *err);
/* Collective: rank 0's fold to every rank. */
dp_status app_corr_fold_bcast(dp_dist *d, dp_corr_fold *f, dp_error *err);

#endif
