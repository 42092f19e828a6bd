/* l1 and l2 (Li et al., ICLR 2017): the norm of each output filter, summed over the group's
 * writers (every writer loses the same channel). Accumulated in double. */
#include "prune_internal.h"
#include <math.h>
#include <string.h>

static void filter_norms(const dp_model *m, const dp_channel_group *g, bool squared_l2,
                         double *scores) {
    memset(scores, 0, sizeof(double) * (size_t)g->channels);
    for (int k = 0; k < g->n_writers; k++) {
        const dp_node *n = &m->nodes[g->writers[k]];
        const dp_tensor_view *v = &m->params[n->p[0]];
        const float *w = dp_param_ptr(m, n->p[0]);
        size_t len = v->numel / (size_t)v->dims[0];
        for (int j = 0; j < g->channels; j++) {
            double acc = 0;
            const float *f = w + (size_t)j * len;
            if (squared_l2)
                for (size_t i = 0; i < len; i++) acc += (double)f[i] * f[i];
            else
                for (size_t i = 0; i < len; i++) acc += fabs((double)f[i]);
            scores[j] += squared_l2 ? sqrt(acc) : acc;
        }
    }
}

dp_status dp_score_l1(const dp_model *m, const dp_channel_group *g, double *scores, dp_error *err) {
    (void)err;
    filter_norms(m, g, false, scores);
    return DP_OK;
}

dp_status dp_score_l2(const dp_model *m, const dp_channel_group *g, double *scores, dp_error *err) {
    (void)err;
    filter_norms(m, g, true, scores);
    return DP_OK;
}
