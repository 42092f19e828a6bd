/* Plans survive serialization bit for bit (what rank 0 broadcasts), damaged or truncated
 * buffers are refused, and the text rendering lists every group's channels before/after,
 * kept indices and scores. */
#include "dprune/prune.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

static bool same_plan(const dp_plan *a, const dp_plan *b) {
    if (a->n_groups != b->n_groups || strcmp(a->criterion, b->criterion) ||
        strcmp(a->budget, b->budget) || a->target != b->target || a->achieved != b->achieved ||
        a->flops_before != b->flops_before || a->flops_after != b->flops_after ||
        a->params_before != b->params_before || a->params_after != b->params_after)
        return false;
    for (int g = 0; g < a->n_groups; g++) {
        const dp_group_plan *x = &a->groups[g], *y = &b->groups[g];
        if (strcmp(x->name, y->name) || x->channels != y->channels || x->n_keep != y->n_keep ||
            memcmp(x->keep, y->keep, sizeof(int) * x->n_keep) || !x->scores != !y->scores)
            return false;
        if (x->scores && memcmp(x->scores, y->scores, sizeof(double) * x->channels)) return false;
    }
    return true;
}

int main(void) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "vgg11");
    mc.width = 0.25;
    dp_model m;
    dp_error err = {0};
    CHECK(dp_model_build(&m, &mc, 3, 32, 32, 10, &err) == DP_OK);
    dp_model_init_weights(&m, 1);
    dp_groups gs;
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    dp_scores sc;
    CHECK(dp_weight_scores("l1", &m, &gs, 0, 0, &sc, &err) == DP_OK);
    dp_budget b;
    dp_budget_default(&b);
    b.kind = DP_BUDGET_FLOPS, b.target = 0.4;
    dp_plan p, q;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "l1", &p, &err) == DP_OK);

    uint8_t *buf;
    size_t len;
    CHECK(dp_plan_serialize(&p, &buf, &len, &err) == DP_OK);
    CHECK(dp_plan_deserialize(buf, len, &q, &err) == DP_OK);
    CHECK(same_plan(&p, &q));
    CHECK(dp_plan_check(&q, &gs, &err) == DP_OK);
    dp_plan_free(&q);
    /* one flipped byte, a truncation, a foreign buffer */
    buf[len / 2] ^= 0x40;
    CHECK(dp_plan_deserialize(buf, len, &q, &err) == DP_ERR_DATA);
    buf[len / 2] ^= 0x40;
    CHECK(dp_plan_deserialize(buf, len - 5, &q, &err) == DP_ERR_DATA);
    CHECK(dp_plan_deserialize((const uint8_t *)"hello world, not a plan", 23, &q, &err) ==
          DP_ERR_DATA);
    free(buf);

    char *text;
    CHECK(dp_plan_render(&p, &m, &gs, &text, &err) == DP_OK);
    CHECK(strstr(text, "criterion: l1") != NULL);
    CHECK(strstr(text, "flops 0.4") != NULL);
    CHECK(strstr(text, "not prunable: first conv 'conv1'") != NULL);
    /* every pruned group's line, keep-list and scores */
    int listed = 0;
    for (int g = 0; g < p.n_groups; g++) {
        const dp_group_plan *gp = &p.groups[g];
        char line[160];
        snprintf(line, sizeof line, "group %d '%s': %d -> %d channels", g, gp->name, gp->channels,
                 gp->n_keep);
        const char *at = strstr(text, line);
        CHECK_MSG(at != NULL, "missing: %s", line);
        if (!at || gp->n_keep == gp->channels) continue;
        listed++;
        const char *keep = strstr(at, "  keep:");
        char first[32];
        snprintf(first, sizeof first, "  keep: %d %d", gp->keep[0], gp->keep[1]);
        CHECK(keep && !strncmp(keep, first, strlen(first)));
        char score[64];
        snprintf(score, sizeof score, " 0:%.6g", gp->scores[0]);
        CHECK(strstr(at, score) != NULL);
    }
    CHECK(listed > 0);
    free(text);
    dp_plan_free(&p);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&m);
    return dp_test_finish();
}
