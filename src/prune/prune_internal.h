/* Helpers shared inside prune/ (not part of the public API). */
#ifndef DPRUNE_PRUNE_INTERNAL_H
#define DPRUNE_PRUNE_INTERNAL_H

#include "dprune/prune.h"

/* order[0..C) = channel indices from most to least important: score descending, equal scores
 * by ascending index (so the lower index is kept). Non-finite scores are an error. */
dp_status prune_rank_channels(const double *scores, int C, int *order, dp_error *err);

/* The weight of a conv/linear writer seen as `n_filters` rows of `len` floats, and the number
 * of input channels of its input group (each owning len / in_channels consecutive floats). */
typedef struct {
    const float *w;
    int n_filters;
    size_t len;
    int in_channels;
} prune_filters;
void prune_writer_filters(const dp_model *m, const dp_groups *gs, int node, prune_filters *f);

/* The reduction (fraction removed) keep counts give: FLOPs, params, or (GLOBAL) prunable
 * channels. */
double prune_reduction(const dp_model *m, const dp_groups *gs, dp_budget_kind kind,
                       const int *counts);

#endif
