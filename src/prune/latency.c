/* The latency a plan would give: keep counts per group become channel counts per node (as for
 * the analytic FLOPs in counts.c: node i has keep[group(i)] * span(i) channels), which the
 * latency table matched to the model turns into an estimated time. */
#include "dprune/prune.h"
#include <math.h>
#include <stdlib.h>

double dp_groups_latency_ms(const dp_model *m, const dp_groups *gs, const dp_latency_map *map,
                            const int *keep_counts) {
    if (!keep_counts) return dp_latency_model_ms(map, m, NULL);
    int *node_c = malloc(sizeof(int) * (size_t)m->n_nodes);
    if (!node_c) return NAN;
    for (int i = 0; i < m->n_nodes; i++)
        node_c[i] = keep_counts[gs->node_group[i]] * gs->node_span[i];
    double ms = dp_latency_model_ms(map, m, node_c);
    free(node_c);
    return ms;
}
