/* The latency budget on synthetic tables (deterministic, nothing is timed): with times
 * proportional to each layer's MACs it makes exactly the FLOPs budget's plan; with fixed
 * per-layer overheads and per-channel op costs it reaches its target within a channel's
 * granularity (round_to 8 too), reports the estimate the table gives for the plan's widths, and
 * cuts more for a larger target; without a table or with a target of 1 it is an error. */
#include "dprune/prune.h"
#include "prune_testutil.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool build_vgg11(dp_model *m) {
    bool ok = build_arch(m, "vgg11", NULL, 1.0, 3, 32, 32);
    if (ok) dp_model_init_weights(m, 7);
    return ok;
}

/* Table of every timed node on a grid of 8: layers cost mac_ms per MAC at (cin, cout) (exactly
 * bilinear) plus `overhead` ms; other ops cost op_ms per output channel. */
static void synthetic_table(const dp_model *m, double mac_ms, double overhead, double op_ms,
                            dp_latency_table *t) {
    int n = 0;
    for (int i = 1; i < m->n_nodes; i++) n += dp_profile_is_timed(m, i);
    dp_error err = {0};
    CHECK(dp_latency_table_alloc(t, n, &err) == DP_OK);
    snprintf(t->model, sizeof t->model, "%s", m->arch);
    t->in_c = m->in_c, t->in_h = m->in_h, t->in_w = m->in_w;
    t->batch = 64, t->threads = 2, t->reps = 1;
    snprintf(t->path, sizeof t->path, "synthetic");
    for (int i = 1, k = 0; i < m->n_nodes; i++) {
        if (!dp_profile_is_timed(m, i)) continue;
        dp_latency_entry *e = &t->entries[k++];
        dp_profile_axes(m, i, 8, e);
        CHECK(dp_latency_entry_alloc(e, false, &err) == DP_OK);
        const dp_node *nd = &m->nodes[i];
        double per_pair = nd->op == DP_OP_CONV ? (double)nd->a.conv.k * nd->a.conv.k * nd->h * nd->w
                          : nd->op == DP_OP_LINEAR ? 1.0
                                                   : 0.0;
        for (int a = 0; a < e->n_in; a++)
            for (int b = 0; b < e->n_out; b++)
                e->infer_ms[a * e->n_out + b] =
                    per_pair > 0 ? overhead + mac_ms * per_pair * e->in_axis[a] * e->out_axis[b]
                                 : op_ms * e->out_axis[b];
    }
}

/* The table's estimate of the plan's model, recomputed here entry by entry. */
static double estimate(const dp_model *m, const dp_groups *gs, const dp_latency_table *t,
                       const dp_plan *p) {
    double ms = 0;
    for (int i = 1, k = 0; i < m->n_nodes; i++) {
        if (!dp_profile_is_timed(m, i)) continue;
        int in = m->nodes[i].in[0];
        double cin = (double)p->groups[gs->node_group[in]].n_keep * gs->node_span[in];
        double cout = (double)p->groups[gs->node_group[i]].n_keep * gs->node_span[i];
        ms += dp_latency_entry_ms(&t->entries[k++], false, cin, cout);
    }
    return ms;
}

static void test_proportional_equals_flops(void) {
    dp_model m;
    if (!build_vgg11(&m)) return;
    dp_groups gs;
    dp_scores sc;
    dp_error err = {0};
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    CHECK(dp_weight_scores("l1", &m, &gs, 1, 1, &sc, &err) == DP_OK);
    dp_latency_table t;
    synthetic_table(&m, 1e-6, 0, 0, &t);
    dp_latency_map map;
    CHECK_MSG(dp_latency_map_build(&t, &m, false, &map, &err) == DP_OK, "%s", err.msg);
    for (double target = 0.3; target < 0.8; target += 0.2) {
        dp_budget b;
        dp_budget_default(&b);
        b.min_keep = 0.25; /* keeps every width on the grid, where the table is exact */
        b.target = target;
        b.kind = DP_BUDGET_FLOPS;
        dp_plan pf, pl;
        CHECK(dp_plan_make(&m, &gs, &sc, &b, "l1", &pf, &err) == DP_OK);
        b.kind = DP_BUDGET_LATENCY;
        b.latency = &map;
        CHECK_MSG(dp_plan_make(&m, &gs, &sc, &b, "l1", &pl, &err) == DP_OK, "%s", err.msg);
        bool same = true;
        for (int g = 0; g < gs.n_groups; g++)
            same = same && pf.groups[g].n_keep == pl.groups[g].n_keep;
        CHECK_MSG(same, "target %g: latency plan differs from the FLOPs plan", target);
        CHECK_CLOSE(pl.achieved, pf.achieved, 1e-9, 0);
        CHECK(!strncmp(pl.budget, "latency", 7));
        dp_plan_free(&pf);
        dp_plan_free(&pl);
    }
    dp_latency_map_free(&map);
    dp_latency_table_free(&t);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

static void test_overheads_hit_target(void) {
    dp_model m;
    if (!build_vgg11(&m)) return;
    dp_groups gs;
    dp_scores sc;
    dp_error err = {0};
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    CHECK(dp_weight_scores("l1", &m, &gs, 1, 1, &sc, &err) == DP_OK);
    dp_latency_table t;
    synthetic_table(&m, 2e-6, 0.5, 1e-3, &t);
    dp_latency_map map;
    CHECK(dp_latency_map_build(&t, &m, false, &map, &err) == DP_OK);
    double full = dp_groups_latency_ms(&m, &gs, &map, NULL);
    CHECK_CLOSE(full, dp_latency_model_ms(&map, &m, NULL), 0, 0);
    for (int round_to = 1; round_to <= 8; round_to += 7) {
        double last = -1;
        for (double target = 0.2; target < 0.65; target += 0.2) {
            dp_budget b;
            dp_budget_default(&b);
            b.kind = DP_BUDGET_LATENCY, b.latency = &map, b.target = target, b.round_to = round_to;
            dp_plan p;
            CHECK_MSG(dp_plan_make(&m, &gs, &sc, &b, "l1", &p, &err) == DP_OK, "%s", err.msg);
            double after = estimate(&m, &gs, &t, &p);
            CHECK_CLOSE(p.achieved, 1 - after / full, 1e-12, 0);
            CHECK_MSG(fabs(p.achieved - target) < 0.02, "round_to %d target %g achieved %g",
                      round_to, target, p.achieved);
            CHECK(p.target == target && p.achieved > last);
            last = p.achieved;
            for (int g = 0; g < gs.n_groups; g++)
                if (gs.groups[g].prunable && p.groups[g].n_keep < p.groups[g].channels)
                    CHECK(round_to == 1 || p.groups[g].n_keep % round_to == 0);
            dp_plan_free(&p);
        }
    }
    /* no table, or a target of 1: configuration errors */
    dp_budget b;
    dp_budget_default(&b);
    b.kind = DP_BUDGET_LATENCY, b.target = 0.5;
    dp_plan p;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "l1", &p, &err) == DP_ERR_CONFIG);
    CHECK(strstr(err.msg, "latency table") != NULL);
    b.latency = &map, b.target = 1.0;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "l1", &p, &err) == DP_ERR_CONFIG);
    dp_latency_map_free(&map);
    dp_latency_table_free(&t);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

int main(void) {
    test_proportional_equals_flops();
    test_overheads_hit_target();
    return dp_test_finish();
}
