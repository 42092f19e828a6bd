/* The PCC term's place in the training phase: built when a phase that uses it starts (on the
 * model as it is then, with the groups the prune config makes), dropped when a phase without it
 * starts (fine-tuning) or the model is replaced by surgery. The math is in prune/pcc_term.c;
 * train_step calls dp_pcc_term_apply between forward and backward. */
#include "app.h"
#include <stdio.h>
#include <string.h>

void trainer_pcc_drop(trainer *t) {
    dp_pcc_term_free(&t->pcc);
}

/* "conv1.relu, conv2.relu, ..." on rank 0's stderr: what the term covers */
static void announce(const trainer *t) {
    char names[512] = "";
    size_t used = 0;
    for (int j = 0; j < t->pcc.n_maps && used + 64 < sizeof names; j++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", j ? ", " : "",
                                 t->m->nodes[t->pcc.nodes[j]].name);
    if (used + 64 >= sizeof names) snprintf(names + used, sizeof names - used, ", ...");
    fprintf(stderr, "%s: PCC term, lambda %g, on %d post-ReLU maps: %s\n", t->phase, t->pcc.lambda,
            t->pcc.n_maps, names);
}

dp_status trainer_pcc_prepare(trainer *t, dp_error *err) {
    const dp_config *c = &t->app->cfg;
    double lambda = t->tc->pcc_lambda;
    if (t->pcc.n_maps > 0 && t->pcc.lambda == lambda) return DP_OK; /* the model is the same */
    trainer_pcc_drop(t);
    if (lambda == 0) return DP_OK;
    dp_groups gs = {0};
    dp_status st = app_build_groups(&c->prune, t->m, &gs, err);
    if (st == DP_OK) st = dp_pcc_term_init(&t->pcc, t->m, &gs, lambda, t->act.cap, err);
    dp_groups_free(&gs);
    if (st == DP_ERR_CONFIG) { /* name the setting that asked for it */
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        dp_fail(err, st, "%s: train.pcc_lambda = %g: %s", c->path, lambda, why);
    }
    if ((st = dp_dist_check(&t->app->dist, st, err)) != DP_OK) return st;
    if (t->app->dist.rank == 0) announce(t);
    return DP_OK;
}

void trainer_pcc_format(const trainer *t, double pcc_sum, double count, char *text, size_t tn,
                        char *json, size_t jn) {
    text[0] = json[0] = '\0';
    if (t->pcc.n_maps == 0 || count <= 0) return;
    double pcc = pcc_sum / count; /* mean over samples of the mean over maps, in [0, 1] */
    snprintf(text, tn, "  pcc %.4f", pcc);
    snprintf(json, jn, ",\"pcc\":%.6f,\"pcc_term\":%.6f", pcc, -t->pcc.lambda * pcc);
}
