/* Soft Filter Pruning (He et al., IJCAI 2018), as CIP's schedule uses it: a masked channel's
 * filters are set to zero and their momentum reset, and that is all. BN is left alone and no
 * gradient is masked, so the next steps may grow the filter back; zeroing gamma too would
 * freeze the channel for good (its gradient would vanish), which is hard pruning in disguise. */
#include "dprune/cip.h"
#include <string.h>

/* Zeroes row j of parameter p (viewed as dims[0] rows) in the parameters and the momentum. */
static void zero_row(dp_model *m, int p, int j, float *momentum) {
    const dp_tensor_view *v = &m->params[p];
    size_t len = v->numel / (size_t)v->dims[0], at = v->offset + (size_t)j * len;
    memset(m->param_data + at, 0, sizeof(float) * len);
    if (momentum) memset(momentum + at, 0, sizeof(float) * len);
}

int64_t dp_cip_soft_zero(dp_model *m, const dp_groups *gs, const dp_plan *mask, float *momentum) {
    int64_t zeroed = 0;
    for (int g = 0; g < gs->n_groups && g < mask->n_groups; g++) {
        const dp_channel_group *grp = &gs->groups[g];
        const dp_group_plan *gp = &mask->groups[g];
        /* keep lists ascend: walk them alongside the channels */
        for (int c = 0, k = 0; c < grp->channels; c++) {
            if (k < gp->n_keep && gp->keep[k] == c) {
                k++;
                continue;
            }
            for (int w = 0; w < grp->n_writers; w++) {
                const dp_node *n = &m->nodes[grp->writers[w]];
                zero_row(m, n->p[0], c, momentum);
                if (n->p[1] >= 0) zero_row(m, n->p[1], c, momentum);
            }
            zeroed++;
        }
    }
    return zeroed;
}
