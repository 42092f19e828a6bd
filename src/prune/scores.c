/* Score storage and the dispatcher that scores every prunable group with a weight-only
 * criterion (no calibration pass needed). */
#include "prune_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dp_status dp_scores_alloc(dp_scores *sc, const dp_groups *gs, dp_error *err) {
    memset(sc, 0, sizeof *sc);
    sc->s = calloc((size_t)(gs->n_groups > 0 ? gs->n_groups : 1), sizeof(double *));
    if (!sc->s) return dp_fail(err, DP_ERR_NOMEM, "prune: out of memory for scores");
    sc->n_groups = gs->n_groups;
    for (int g = 0; g < gs->n_groups; g++) {
        if (!gs->groups[g].prunable) continue;
        sc->s[g] = calloc((size_t)gs->groups[g].channels, sizeof(double));
        if (!sc->s[g]) {
            dp_scores_free(sc);
            return dp_fail(err, DP_ERR_NOMEM, "prune: out of memory for scores");
        }
    }
    return DP_OK;
}

void dp_scores_free(dp_scores *sc) {
    for (int g = 0; g < sc->n_groups; g++) free(sc->s[g]);
    free(sc->s);
    memset(sc, 0, sizeof *sc);
}

void prune_writer_filters(const dp_model *m, const dp_groups *gs, int node, prune_filters *f) {
    const dp_node *n = &m->nodes[node];
    const dp_tensor_view *v = &m->params[n->p[0]];
    f->w = dp_param_ptr(m, n->p[0]);
    f->n_filters = v->dims[0];
    f->len = v->numel / (size_t)v->dims[0];
    f->in_channels = gs->groups[gs->node_group[n->in[0]]].channels;
}

static const char *const weight_criteria[] = {"l1", "l2", "slim", "fpgm", "fec", "random"};

bool dp_is_weight_criterion(const char *criterion) {
    for (size_t i = 0; i < sizeof weight_criteria / sizeof weight_criteria[0]; i++)
        if (!strcmp(criterion, weight_criteria[i])) return true;
    return false;
}

/* Appends to the scores' note, keeping it NUL-terminated. */
static void add_note(dp_scores *sc, const char *text) {
    size_t used = strlen(sc->note);
    if (used + 1 < sizeof sc->note) snprintf(sc->note + used, sizeof sc->note - used, "%s", text);
}

dp_status dp_weight_scores(const char *criterion, const dp_model *m, const dp_groups *gs,
                           uint64_t seed, int round, dp_scores *sc, dp_error *err) {
    if (!dp_is_weight_criterion(criterion))
        return dp_fail(err, DP_ERR_CONFIG,
                       "prune.criterion: '%s' is not a weight criterion (l1, l2, slim, fpgm, fec, "
                       "random)",
                       criterion);
    dp_status st = dp_scores_alloc(sc, gs, err);
    if (st != DP_OK) return st;
    dp_fec_opts fec = {false};
    for (int g = 0; g < gs->n_groups && st == DP_OK; g++) {
        const dp_channel_group *grp = &gs->groups[g];
        if (!grp->prunable) continue;
        double *s = sc->s[g];
        if (!strcmp(criterion, "l1"))
            st = dp_score_l1(m, grp, s, err);
        else if (!strcmp(criterion, "l2"))
            st = dp_score_l2(m, grp, s, err);
        else if (!strcmp(criterion, "slim"))
            st = dp_score_slim(m, grp, s, err);
        else if (!strcmp(criterion, "fpgm"))
            st = dp_score_fpgm(m, grp, s, err);
        else if (!strcmp(criterion, "random"))
            dp_score_random(seed, round, g, grp->channels, s);
        else {
            dp_fec_group_info info;
            st = dp_score_fec(m, gs, g, &fec, s, &info, err);
            if (st == DP_OK && info.fell_back_to_l1) {
                char line[128];
                snprintf(line, sizeof line,
                         "fec: group '%s' has a writer with one input channel: l1 used there\n",
                         grp->name);
                add_note(sc, line);
            }
        }
    }
    if (st != DP_OK) dp_scores_free(sc);
    return st;
}
