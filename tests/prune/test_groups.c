/* Channel groups derived from the graph: counts of prunable groups on the standard networks,
 * residual streams coupling all their writers, consumers with their column spans, the
 * protection rules, and the analytic counts of the unchanged model. */
#include "dprune/prune.h"
#include "testutil.h"
#include <string.h>

static bool build(dp_model *m, const char *arch, const char *shortcut, int c, int hw, int classes) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    snprintf(mc.shortcut, sizeof mc.shortcut, "%s", shortcut);
    mc.width = 1.0;
    dp_error err = {0};
    dp_status st = dp_model_build(m, &mc, c, hw, hw, classes, &err);
    CHECK_MSG(st == DP_OK, "%s: %s", arch, err.msg);
    return st == DP_OK;
}

static bool groups(const dp_model *m, bool residual, dp_groups *gs) {
    dp_group_opts o;
    dp_group_opts_default(&o);
    o.residual = residual;
    dp_error err = {0};
    dp_status st = dp_groups_build(m, &o, gs, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    return st == DP_OK;
}

static int node_named(const dp_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return i;
    CHECK_MSG(0, "no node %s", name);
    return 0;
}

static const dp_channel_group *group_of(const dp_model *m, const dp_groups *gs, const char *name) {
    return &gs->groups[gs->node_group[node_named(m, name)]];
}

static bool has_writer(const dp_model *m, const dp_channel_group *g, const char *name) {
    for (int k = 0; k < g->n_writers; k++)
        if (!strcmp(m->nodes[g->writers[k]].name, name)) return true;
    return false;
}

static int consumer_span(const dp_model *m, const dp_channel_group *g, const char *name) {
    for (int k = 0; k < g->n_consumers; k++)
        if (!strcmp(m->nodes[g->consumers[k].node].name, name)) return g->consumers[k].span;
    return -1;
}

static void check_counts_unchanged(const dp_model *m, const dp_groups *gs) {
    int64_t f, p;
    dp_groups_count(m, gs, NULL, &f, &p);
    CHECK(f == dp_model_flops(m));
    CHECK(p == dp_model_params(m));
    int keep[512];
    CHECK(gs->n_groups <= 512);
    for (int g = 0; g < gs->n_groups; g++) keep[g] = gs->groups[g].channels;
    dp_groups_count(m, gs, keep, &f, &p);
    CHECK(f == dp_model_flops(m) && p == dp_model_params(m));
}

static void test_resnet56_option_a(void) {
    dp_model m;
    if (!build(&m, "resnet56", "A", 3, 32, 10)) return;
    for (int residual = 0; residual <= 1; residual++) {
        dp_groups gs;
        if (!groups(&m, residual, &gs)) continue;
        /* only the 27 block-internal groups: option-A streams are never prunable */
        CHECK_MSG(dp_groups_prunable_count(&gs) == 27, "resnet56 A residual=%d: %d prunable",
                  residual, dp_groups_prunable_count(&gs));
        for (int g = 0; g < gs.n_groups; g++) {
            const dp_channel_group *G = &gs.groups[g];
            if (!G->prunable) {
                CHECK(G->why_not[0] != 0);
                continue;
            }
            CHECK(G->n_writers == 1 && G->n_bns == 1 && G->n_consumers == 1 && !G->residual);
            CHECK(strstr(m.nodes[G->writers[0]].name, ".conv1") != NULL);
            CHECK(G->consumers[0].span == 1);
        }
        const dp_channel_group *s3 = group_of(&m, &gs, "layer3.0.shortcut");
        CHECK(!s3->prunable && s3->residual && strstr(s3->why_not, "zero-padding"));
        CHECK(has_writer(&m, s3, "layer3.4.conv2"));
        check_counts_unchanged(&m, &gs);
        dp_groups_free(&gs);
    }
    dp_model_free(&m);
}

static void test_resnet20_option_b(void) {
    dp_model m;
    if (!build(&m, "resnet20", "B", 3, 32, 10)) return;
    dp_groups gs;
    if (groups(&m, true, &gs)) {
        /* 9 internal groups + the stage-2 and stage-3 streams; the stage-1 stream is written
         * by the first conv, hence protected */
        CHECK_MSG(dp_groups_prunable_count(&gs) == 11, "%d", dp_groups_prunable_count(&gs));
        const dp_channel_group *s2 = group_of(&m, &gs, "layer2.0.downsample.1");
        CHECK(s2->prunable && s2->residual && s2->channels == 32);
        CHECK(s2->n_writers == 4 && s2->n_bns == 4 && s2->n_consumers == 4);
        CHECK(has_writer(&m, s2, "layer2.0.conv2") && has_writer(&m, s2, "layer2.0.downsample.0"));
        CHECK(has_writer(&m, s2, "layer2.1.conv2") && has_writer(&m, s2, "layer2.2.conv2"));
        CHECK(consumer_span(&m, s2, "layer3.0.conv1") == 1);
        CHECK(consumer_span(&m, s2, "layer3.0.downsample.0") == 1);
        CHECK(group_of(&m, &gs, "layer2.2.add") == s2 && group_of(&m, &gs, "layer2.1.relu") == s2);
        const dp_channel_group *s3 = group_of(&m, &gs, "layer3.2.add");
        CHECK(s3->prunable && s3->n_writers == 4 && s3->n_consumers == 3);
        CHECK(consumer_span(&m, s3, "fc") == 1); /* after global pooling */
        const dp_channel_group *s1 = group_of(&m, &gs, "layer1.0.add");
        CHECK(!s1->prunable && strstr(s1->why_not, "first conv") && s1->n_writers == 4);
        check_counts_unchanged(&m, &gs);
        dp_groups_free(&gs);
    }
    if (groups(&m, false, &gs)) {
        CHECK(dp_groups_prunable_count(&gs) == 9);
        CHECK(strstr(group_of(&m, &gs, "layer2.0.add")->why_not, "residual"));
        dp_groups_free(&gs);
    }
    dp_model_free(&m);
}

static void test_resnet50(void) {
    dp_model m;
    if (!build(&m, "resnet50", "B", 3, 64, 10)) return;
    dp_groups gs;
    if (groups(&m, false, &gs)) {
        /* 16 bottlenecks x (conv1, conv2) */
        CHECK_MSG(dp_groups_prunable_count(&gs) == 32, "%d", dp_groups_prunable_count(&gs));
        /* input, stem, 32 internal, 4 streams, logits */
        CHECK(gs.n_groups == 39);
        /* the stem (conv1 -> maxpool) is no stream: it feeds layer1.0 conv1 and downsample */
        const dp_channel_group *stem = group_of(&m, &gs, "maxpool");
        CHECK(!stem->residual && stem->n_consumers == 2 && strstr(stem->why_not, "first conv"));
        dp_groups_free(&gs);
    }
    if (groups(&m, true, &gs)) {
        CHECK_MSG(dp_groups_prunable_count(&gs) == 36, "%d", dp_groups_prunable_count(&gs));
        static const char *adds[4] = {"layer1.0.add", "layer2.0.add", "layer3.0.add",
                                      "layer4.0.add"};
        static const int writers[4] = {4, 5, 7, 4}; /* blocks + the projection */
        for (int s = 0; s < 4; s++) {
            const dp_channel_group *g = group_of(&m, &gs, adds[s]);
            CHECK(g->prunable && g->residual && g->n_writers == writers[s]);
            CHECK(g->channels == 256 << s);
        }
        check_counts_unchanged(&m, &gs);
        dp_groups_free(&gs);
    }
    dp_model_free(&m);
}

static void test_vgg16(void) {
    dp_model m;
    if (!build(&m, "vgg16", "A", 3, 32, 10)) return;
    dp_groups gs;
    if (groups(&m, false, &gs)) {
        CHECK(gs.n_groups == 16); /* input, 13 convs, fc1, fc2 */
        CHECK(dp_groups_prunable_count(&gs) == 13);
        CHECK(strstr(group_of(&m, &gs, "conv1")->why_not, "first conv"));
        CHECK(strstr(group_of(&m, &gs, "fc2")->why_not, "logits"));
        CHECK(strstr(group_of(&m, &gs, "input")->why_not, "input"));
        const dp_channel_group *c13 = group_of(&m, &gs, "conv13");
        CHECK(c13->prunable && c13->n_bns == 1 && consumer_span(&m, c13, "fc1") == 1);
        const dp_channel_group *fc1 = group_of(&m, &gs, "fc1");
        CHECK(fc1->prunable && fc1->n_bns == 1 && consumer_span(&m, fc1, "fc2") == 1);
        CHECK(group_of(&m, &gs, "pool2") == group_of(&m, &gs, "conv4"));
        check_counts_unchanged(&m, &gs);
        dp_groups_free(&gs);
    }
    /* user protection adds to the defaults; a misspelt layer is an error */
    dp_group_opts o;
    dp_group_opts_default(&o);
    const char *names[] = {"conv5"};
    o.protect = names, o.n_protect = 1;
    dp_error err = {0};
    if (dp_groups_build(&m, &o, &gs, &err) == DP_OK) {
        CHECK(dp_groups_prunable_count(&gs) == 12);
        CHECK(strstr(group_of(&m, &gs, "relu5")->why_not, "protected"));
        dp_groups_free(&gs);
    }
    const char *typo[] = {"conv55"};
    o.protect = typo;
    CHECK(dp_groups_build(&m, &o, &gs, &err) == DP_ERR_CONFIG && strstr(err.msg, "conv55"));
    /* without first-conv protection conv1 becomes prunable */
    dp_group_opts_default(&o);
    o.protect_first_conv = false;
    if (dp_groups_build(&m, &o, &gs, &err) == DP_OK) {
        CHECK(dp_groups_prunable_count(&gs) == 14);
        dp_groups_free(&gs);
    }
    dp_model_free(&m);
}

static void test_fmnist_cnn(void) {
    dp_model m;
    if (!build(&m, "fmnist_cnn", "A", 1, 28, 10)) return;
    dp_groups gs;
    if (groups(&m, false, &gs)) {
        CHECK(gs.n_groups == 5);
        CHECK(dp_groups_prunable_count(&gs) == 2);
        const dp_channel_group *c2 = group_of(&m, &gs, "conv2");
        CHECK(c2->prunable && c2->channels == 64);
        CHECK(consumer_span(&m, c2, "fc1") == 49); /* 7x7 block per channel after flatten */
        CHECK(gs.node_span[node_named(&m, "flatten")] == 49);
        CHECK(group_of(&m, &gs, "flatten") == c2);
        CHECK(group_of(&m, &gs, "fc1")->prunable);
        CHECK(!group_of(&m, &gs, "conv1")->prunable);
        check_counts_unchanged(&m, &gs);
        dp_groups_free(&gs);
    }
    dp_model_free(&m);
}

int main(void) {
    test_resnet56_option_a();
    test_resnet20_option_b();
    test_resnet50();
    test_vgg16();
    test_fmnist_cnn();
    return dp_test_finish();
}
