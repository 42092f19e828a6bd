/* FEC's plans (app-internal): the one-shot plan (per-layer ratio rule for a flops, params or
 * global target; the common planner for uniform, ratios and latency) and the layer-by-layer
 * mode, which cuts one group per round, last layer first, to the width the one-shot plan of
 * the model before pruning gives it. The schedule (groups in cut order and their widths) is
 * decided once and kept in the run summary that checkpoints carry, so a resumed run cuts the
 * same widths. */
#ifndef DPRUNE_APP_FEC_PLAN_H
#define DPRUNE_APP_FEC_PLAN_H

#include "app.h"

/* Rank 0: the plan of round `round` for criterion fec (layer by layer when the summary holds
 * a schedule, the one-shot plan otherwise, e.g. for `dprune plan`). */
dp_status app_fec_plan(trainer *t, int round, const dp_groups *gs, dp_plan *plan, dp_error *err);
/* Collective, before the first round of prune.fec_layerwise: takes the schedule from the
 * summary of a resumed run or (not resumed_pruned) decides it on rank 0 from the current model
 * and appends it to every rank's summary. *rounds = groups to cut. */
dp_status app_fec_layer_schedule(trainer *t, bool resumed_pruned, int *rounds, dp_error *err);

#endif
