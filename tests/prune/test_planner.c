/* The planner: floors, round_to, ties keep the lower index, global ranking normalised by the
 * group mean, FLOPs / params targets reached within one channel's granularity with the
 * achieved value reported (and equal to the surgically pruned model's), ratio 0 keeps all,
 * per-group ratios, unreachable targets, bad inputs. */
#include "dprune/prune.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool build_arch(dp_model *m, const char *arch, int c, int hw) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    snprintf(mc.shortcut, sizeof mc.shortcut, "A");
    mc.width = 1.0;
    dp_error err = {0};
    dp_status st = dp_model_build(m, &mc, c, hw, hw, 10, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    return st == DP_OK;
}

/* conv1 (protected) -> conv2 (16) -> conv3 (16) -> gap -> fc: two prunable groups of 16 */
static bool build_two_groups(dp_model *m) {
    dp_error err = {0};
    dp_model_begin(m, 1, 4, 4);
    m->num_classes = 3;
    int x = dp_add_conv(m, 0, "conv1", 8, 3, 1, 1, false, &err);
    x = dp_add_conv(m, x, "conv2", 16, 3, 1, 1, false, &err);
    x = dp_add_bn(m, x, "bn2", &err);
    x = dp_add_relu(m, x, "relu2", &err);
    x = dp_add_conv(m, x, "conv3", 16, 3, 1, 1, false, &err);
    x = dp_add_relu(m, x, "relu3", &err);
    x = dp_add_gap(m, x, "gap", &err);
    x = dp_add_linear(m, x, "fc", 3, true, &err);
    return x > 0 && dp_model_finish(m, &err) == DP_OK;
}

static int group_named(const dp_model *m, const dp_groups *gs, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return gs->node_group[i];
    CHECK_MSG(0, "no node %s", name);
    return 0;
}

static void test_floors_and_rounding(void) {
    dp_budget b;
    dp_budget_default(&b);
    CHECK(dp_keep_floor(10, &b) == 4);
    CHECK(dp_keep_floor(100, &b) == 10);
    CHECK(dp_keep_floor(101, &b) == 11);
    CHECK(dp_keep_floor(3, &b) == 3); /* never above C */
    b.min_channels = 0;
    CHECK(dp_keep_floor(30, &b) == 3); /* ceil(0.1 * 30) despite 0.1*30 = 3.0000000000000004 */
    CHECK(dp_keep_floor(5, &b) == 1);
    dp_budget_default(&b);
    CHECK(dp_keep_from_ratio(64, 0.0, &b) == 64);
    CHECK(dp_keep_from_ratio(64, 0.5, &b) == 32);
    CHECK(dp_keep_from_ratio(64, 0.99, &b) == 7); /* floor ceil(6.4) */
    CHECK(dp_keep_from_ratio(10, 0.95, &b) == 4);
    CHECK(dp_keep_from_ratio(10, 0.35, &b) == 7); /* removes floor(3.5) */
    b.round_to = 8;
    CHECK(dp_keep_finalize(9, 64, &b) == 16);
    CHECK(dp_keep_finalize(16, 64, &b) == 16);
    CHECK(dp_keep_finalize(61, 62, &b) == 62); /* rounded up, but not above C */
    CHECK(dp_keep_finalize(1, 64, &b) == 8);
}

static void test_ties_keep_lower_index(void) {
    dp_model m;
    if (!build_two_groups(&m)) return;
    dp_groups gs;
    dp_error err = {0};
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    dp_scores sc;
    CHECK(dp_scores_alloc(&sc, &gs, &err) == DP_OK);
    int g2 = group_named(&m, &gs, "conv2"), g3 = group_named(&m, &gs, "conv3");
    for (int j = 0; j < 16; j++) sc.s[g2][j] = 1.0;                          /* all equal */
    for (int j = 0; j < 16; j++) sc.s[g3][j] = j == 5 || j == 9 ? 2.0 : 1.0; /* two best */
    dp_budget b;
    dp_budget_default(&b);
    b.ratio = 0.75;
    dp_plan p;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "test", &p, &err) == DP_OK);
    CHECK(p.groups[g2].n_keep == 4 && p.groups[g3].n_keep == 4);
    int want2[4] = {0, 1, 2, 3}, want3[4] = {0, 1, 5, 9};
    CHECK(!memcmp(p.groups[g2].keep, want2, sizeof want2));
    CHECK(!memcmp(p.groups[g3].keep, want3, sizeof want3));
    CHECK(p.groups[g2].scores && p.groups[g2].scores[3] == 1.0);
    CHECK(fabs(p.achieved - 0.75) < 1e-12);
    dp_plan_free(&p);
    /* ratio 0 keeps everything, the counts unchanged */
    b.ratio = 0;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "test", &p, &err) == DP_OK);
    for (int g = 0; g < gs.n_groups; g++) CHECK(p.groups[g].n_keep == p.groups[g].channels);
    CHECK(p.flops_after == p.flops_before && p.params_after == dp_model_params(&m));
    dp_plan_free(&p);
    /* per-group ratios, in prunable-group order */
    double ratios[2] = {0.5, 0.25};
    b.kind = DP_BUDGET_PER_GROUP, b.ratios = ratios, b.n_ratios = 2;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "test", &p, &err) == DP_OK);
    CHECK(p.groups[g2].n_keep == 8 && p.groups[g3].n_keep == 12);
    dp_plan_free(&p);
    b.n_ratios = 1;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "test", &p, &err) == DP_ERR_CONFIG);
    /* a NaN score is an error naming the group */
    b.kind = DP_BUDGET_UNIFORM, b.ratio = 0.5;
    sc.s[g3][7] = NAN;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "test", &p, &err) == DP_ERR_NUMERIC);
    CHECK(strstr(err.msg, "conv3") != NULL);
    /* keeping fewer channels of a protected group is refused */
    sc.s[g3][7] = 1.0;
    int counts[16];
    for (int g = 0; g < gs.n_groups; g++) counts[g] = gs.groups[g].channels;
    counts[group_named(&m, &gs, "conv1")] = 4;
    CHECK(dp_plan_from_scores(&m, &gs, &sc, counts, "x", &p, &err) == DP_ERR_ARG);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* Scores of very different scales: divided by the group mean they rank the same, so a global
 * budget takes the same number from both groups (without normalisation the small-scale group
 * would lose everything first). */
static void test_global_normalization(void) {
    dp_model m;
    if (!build_two_groups(&m)) return;
    dp_groups gs;
    dp_error err = {0};
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    dp_scores sc;
    CHECK(dp_scores_alloc(&sc, &gs, &err) == DP_OK);
    int g2 = group_named(&m, &gs, "conv2"), g3 = group_named(&m, &gs, "conv3");
    for (int j = 0; j < 16; j++) {
        int v = (j * 7) % 16 + 1; /* a permutation of 1..16 */
        sc.s[g2][j] = 1024.0 * v; /* powers of two: the normalised scores are equal */
        sc.s[g3][j] = v / 1024.0;
    }
    dp_budget b;
    dp_budget_default(&b);
    b.kind = DP_BUDGET_GLOBAL, b.ratio = 0.5, b.min_channels = 1, b.min_keep = 0;
    dp_plan p;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "test", &p, &err) == DP_OK);
    CHECK_MSG(p.groups[g2].n_keep == 8 && p.groups[g3].n_keep == 8, "%d %d", p.groups[g2].n_keep,
              p.groups[g3].n_keep);
    for (int a = 0; a < 8; a++) { /* the kept channels are those with v > 8 */
        CHECK((p.groups[g2].keep[a] * 7) % 16 + 1 > 8);
        CHECK(p.groups[g2].keep[a] == p.groups[g3].keep[a]);
    }
    CHECK(fabs(p.achieved - 0.5) < 1e-12 && p.target == 0.5);
    dp_plan_free(&p);
    /* an odd count: the tie between equal normalised scores goes to the earlier group */
    b.ratio = 3.0 / 32;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "test", &p, &err) == DP_OK);
    CHECK(p.groups[g2].n_keep == 14 && p.groups[g3].n_keep == 15);
    dp_plan_free(&p);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* The largest FLOPs / params change of removing one channel from any prunable group of the
 * unpruned model: an upper bound on one bisection step. */
static double one_channel_step(const dp_model *m, const dp_groups *gs, bool flops) {
    int64_t f0, p0, f, p;
    int counts[256];
    dp_groups_count(m, gs, NULL, &f0, &p0);
    double step = 0;
    for (int g = 0; g < gs->n_groups; g++) {
        if (!gs->groups[g].prunable) continue;
        for (int h = 0; h < gs->n_groups; h++) counts[h] = gs->groups[h].channels;
        counts[g]--;
        dp_groups_count(m, gs, counts, &f, &p);
        double d = flops ? (double)(f0 - f) / (double)f0 : (double)(p0 - p) / (double)p0;
        if (d > step) step = d;
    }
    return step;
}

static void check_target(const char *arch, dp_budget_kind kind, double target, int round_to) {
    dp_model m;
    if (!build_arch(&m, arch, 3, 32)) return;
    dp_model_init_weights(&m, 5);
    dp_groups gs;
    dp_error err = {0};
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK && gs.n_groups < 256);
    dp_scores sc;
    CHECK(dp_weight_scores("l1", &m, &gs, 0, 0, &sc, &err) == DP_OK);
    dp_budget b;
    dp_budget_default(&b);
    b.kind = kind, b.target = target, b.round_to = round_to;
    dp_plan p, p2;
    CHECK_MSG(dp_plan_make(&m, &gs, &sc, &b, "l1", &p, &err) == DP_OK, "%s", err.msg);
    bool flops = kind == DP_BUDGET_FLOPS;
    double step = one_channel_step(&m, &gs, flops) * (round_to > 1 ? round_to : 1);
    CHECK_MSG(fabs(p.achieved - target) <= step, "%s: achieved %g for target %g (step %g)", arch,
              p.achieved, target, step);
    /* the reported value is the real one: prune and count */
    dp_model out;
    CHECK(dp_surgery(&m, &gs, &p, NULL, NULL, &out, &err) == DP_OK);
    double real = flops ? 1.0 - (double)dp_model_flops(&out) / (double)dp_model_flops(&m)
                        : 1.0 - (double)dp_model_params(&out) / (double)dp_model_params(&m);
    CHECK_CLOSE(p.achieved, real, 1e-12, 0);
    CHECK(dp_model_params(&out) == p.params_after && dp_model_flops(&out) == p.flops_after);
    for (int g = 0; g < gs.n_groups; g++) {
        int C = p.groups[g].channels, k = p.groups[g].n_keep;
        CHECK(k >= dp_keep_floor(C, &b));
        if (round_to > 1) CHECK(k == C || k % round_to == 0);
    }
    /* deterministic */
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "l1", &p2, &err) == DP_OK);
    for (int g = 0; g < gs.n_groups; g++)
        CHECK(p2.groups[g].n_keep == p.groups[g].n_keep &&
              !memcmp(p2.groups[g].keep, p.groups[g].keep, sizeof(int) * p.groups[g].n_keep));
    dp_plan_free(&p2);
    dp_model_free(&out);
    dp_plan_free(&p);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* Floors stop the pruning: an unreachable target gives every group its floor and says what
 * it reached. */
static void test_unreachable_target(void) {
    dp_model m;
    if (!build_arch(&m, "vgg11", 3, 32)) return;
    dp_model_init_weights(&m, 5);
    dp_groups gs;
    dp_error err = {0};
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    dp_scores sc;
    CHECK(dp_weight_scores("l2", &m, &gs, 0, 0, &sc, &err) == DP_OK);
    dp_budget b;
    dp_budget_default(&b);
    b.kind = DP_BUDGET_FLOPS, b.target = 0.999;
    dp_plan p;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "l2", &p, &err) == DP_OK);
    CHECK(p.achieved < 0.999 && p.achieved > 0.9);
    for (int g = 0; g < gs.n_groups; g++)
        if (gs.groups[g].prunable)
            CHECK(p.groups[g].n_keep == dp_keep_floor(gs.groups[g].channels, &b));
    dp_plan_free(&p);
    b.target = 1.5;
    CHECK(dp_plan_make(&m, &gs, &sc, &b, "l2", &p, &err) == DP_ERR_CONFIG);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

int main(void) {
    test_floors_and_rounding();
    test_ties_keep_lower_index();
    test_global_normalization();
    check_target("vgg16", DP_BUDGET_FLOPS, 0.5, 1);
    check_target("vgg16", DP_BUDGET_PARAMS, 0.7, 1);
    check_target("resnet56", DP_BUDGET_FLOPS, 0.3, 1);
    check_target("vgg16", DP_BUDGET_FLOPS, 0.4, 8);
    test_unreachable_target();
    return dp_test_finish();
}
