/* Per-layer time tables on the model side: grid axes (which axes are fixed), the one-node
 * models used for timing, a measured table of a tiny network (shape only: no timing
 * assertions), matching a table to a model (a narrower model is covered; another model,
 * another shape or a missing layer are errors naming the file), and the estimate at the
 * model's own widths equal to the full-width corners. */
#include "dprune/profile.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* input 2x6x6 -> conv_a 8 -> bn -> relu -> pool -> conv_b 8 -> add(conv_b, conv_c) -> relu ->
 * dropout -> flatten -> fc 3 (conv_c: 1x1 from the pool). */
static bool build_tiny(dp_model *m, int width_b) {
    dp_error err = {0};
    dp_model_begin(m, 2, 6, 6);
    snprintf(m->arch, sizeof m->arch, "tiny");
    m->num_classes = 3;
    int x = dp_add_conv(m, 0, "conv_a", 8, 3, 1, 1, false, &err);
    x = dp_add_bn(m, x, "bn_a", &err);
    x = dp_add_relu(m, x, "relu_a", &err);
    int p = dp_add_pool(m, DP_OP_MAXPOOL, x, "pool", 2, 2, 0, &err);
    int b = dp_add_conv(m, p, "conv_b", width_b, 3, 1, 1, true, &err);
    int c = dp_add_conv(m, p, "conv_c", width_b, 1, 1, 0, false, &err);
    x = dp_add_add(m, b, c, "add", &err);
    x = dp_add_relu(m, x, "relu_b", &err);
    x = dp_add_dropout(m, x, "drop", 0.5f, &err);
    x = dp_add_flatten(m, x, "flat", &err);
    x = dp_add_linear(m, x, "fc", 3, true, &err);
    bool ok = x > 0 && dp_model_finish(m, &err) == DP_OK;
    CHECK_MSG(ok, "%s", err.msg);
    return ok;
}

static int node_named(const dp_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return i;
    CHECK_MSG(0, "no node %s", name);
    return 0;
}

static void test_axis(void) {
    int axis[DP_LATENCY_MAX_AXIS];
    int n = dp_profile_axis(64, 8, axis);
    CHECK(n == 8 && axis[0] == 8 && axis[7] == 64);
    n = dp_profile_axis(3, 8, axis); /* tiny widths: duplicates dropped */
    CHECK(n == 3 && axis[0] == 1 && axis[1] == 2 && axis[2] == 3);
    n = dp_profile_axis(100, 1, axis);
    CHECK(n == 1 && axis[0] == 100);
    n = dp_profile_axis(10, 4, axis);
    bool ascending = true;
    for (int i = 1; i < n; i++) ascending = ascending && axis[i] > axis[i - 1];
    CHECK(ascending && axis[n - 1] == 10);
}

static void test_axes_and_isolate(void) {
    dp_model m;
    if (!build_tiny(&m, 8)) return;
    dp_latency_entry e;
    memset(&e, 0, sizeof e);
    dp_profile_axes(&m, node_named(&m, "conv_a"), 2, &e); /* reads the network input */
    CHECK(e.n_in == 1 && e.in_axis[0] == 2 && e.n_out == 2 && e.out_axis[0] == 4);
    CHECK(e.k == 3 && e.stride == 1 && !strcmp(e.op, "conv"));
    dp_profile_axes(&m, node_named(&m, "bn_a"), 2, &e); /* channel-preserving */
    CHECK(e.n_in == 1 && e.n_out == 2);
    dp_profile_axes(&m, node_named(&m, "conv_b"), 2, &e);
    CHECK(e.n_in == 2 && e.n_out == 2 && e.in_h == 3 && e.out_h == 3);
    dp_profile_axes(&m, node_named(&m, "fc"), 2, &e); /* writes the logits */
    CHECK(e.n_out == 1 && e.out_axis[0] == 3 && e.n_in == 2 && e.in_axis[1] == 72);
    dp_profile_axes(&m, node_named(&m, "pool"), 2, &e);
    CHECK(e.k == 2 && e.stride == 2);
    CHECK(!dp_profile_is_timed(&m, 0) && !dp_profile_is_timed(&m, node_named(&m, "flat")));

    dp_model mini;
    dp_error err = {0};
    CHECK(dp_model_isolate(&m, node_named(&m, "conv_a"), 2, 4, &mini, &err) == DP_OK);
    CHECK(mini.n_nodes == 2 && mini.in_c == 2 && mini.nodes[1].c == 4); /* no feeding relu */
    dp_model_free(&mini);
    CHECK(dp_model_isolate(&m, node_named(&m, "conv_b"), 4, 6, &mini, &err) == DP_OK);
    CHECK(mini.n_nodes == 3 && mini.in_c == 4 && mini.nodes[1].op == DP_OP_RELU);
    CHECK(mini.nodes[2].c == 6 && mini.nodes[2].h == 3 && mini.params[0].numel == 6 * 4 * 9);
    dp_model_free(&mini);
    CHECK(dp_model_isolate(&m, node_named(&m, "add"), 8, 4, &mini, &err) == DP_OK);
    CHECK(mini.in_c == 4 && mini.nodes[2].op == DP_OP_ADD && mini.nodes[2].c == 4);
    dp_model_free(&mini);
    CHECK(dp_model_isolate(&m, node_named(&m, "fc"), 36, 3, &mini, &err) == DP_OK);
    CHECK(mini.in_c == 36 && mini.nodes[2].c == 3);
    dp_model_free(&mini);
    CHECK(dp_model_isolate(&m, node_named(&m, "flat"), 8, 8, &mini, &err) == DP_ERR_ARG);

    /* option-A shortcuts vary their input only; the stem conv its output only */
    dp_model r;
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "resnet20");
    snprintf(mc.shortcut, sizeof mc.shortcut, "A");
    mc.width = 1;
    CHECK(dp_model_build(&r, &mc, 3, 32, 32, 10, &err) == DP_OK);
    int pads = 0;
    for (int i = 1; i < r.n_nodes; i++)
        if (r.nodes[i].op == DP_OP_SHORTCUT_PAD) {
            dp_profile_axes(&r, i, 8, &e);
            CHECK(e.n_out == 1 && e.n_in == 8);
            pads++;
        }
    CHECK(pads == 2);
    dp_model_free(&r);
    dp_model_free(&m);
}

static void test_measure_and_map(void) {
    dp_model m, narrow, other;
    if (!build_tiny(&m, 8) || !build_tiny(&narrow, 4)) return;
    dp_profile_opts o;
    dp_profile_opts_default(&o);
    o.batch = 2, o.grid = 2, o.reps = 1;
    dp_latency_table t;
    dp_error err = {0};
    CHECK_MSG(dp_profile_measure(&m, &o, &t, &err) == DP_OK, "%s", err.msg);
    CHECK(t.n_entries == m.n_nodes - 2); /* all but the input and the flatten */
    CHECK(t.batch == 2 && t.reps == 1 && t.threads >= 1 && !strcmp(t.model, "tiny"));
    CHECK(dp_latency_table_has_train(&t));
    bool sane = true;
    for (int i = 0; i < t.n_entries; i++)
        for (int k = 0; k < t.entries[i].n_in * t.entries[i].n_out; k++)
            sane = sane && isfinite(t.entries[i].infer_ms[k]) && t.entries[i].infer_ms[k] >= 0 &&
                   isfinite(t.entries[i].train_ms[k]) && t.entries[i].train_ms[k] >= 0;
    CHECK(sane);
    double whole[2] = {-1, -1};
    CHECK(dp_profile_whole(&m, &o, &whole[0], &whole[1], &err) == DP_OK);
    CHECK(whole[0] >= 0 && whole[1] >= 0 && isfinite(whole[0]) && isfinite(whole[1]));

    /* the estimate at the model's widths is the sum of the full-width corners */
    dp_latency_map map;
    CHECK_MSG(dp_latency_map_build(&t, &m, false, &map, &err) == DP_OK, "%s", err.msg);
    double corners = 0;
    for (int i = 0; i < t.n_entries; i++) {
        const dp_latency_entry *e = &t.entries[i];
        corners += e->infer_ms[e->n_in * e->n_out - 1];
    }
    CHECK_CLOSE(dp_latency_model_ms(&map, &m, NULL), corners, 1e-12, 1e-12);
    dp_latency_map_free(&map);
    /* a narrower model (a pruned one) is covered by the same table */
    snprintf(t.path, sizeof t.path, "/some/table.txt");
    CHECK_MSG(dp_latency_map_build(&t, &narrow, true, &map, &err) == DP_OK, "%s", err.msg);
    dp_latency_map_free(&map);

    /* mismatches: one error naming the table file and the problem */
    struct {
        const char *want;
    } cases[] = {{"measured on model 'other'"},
                 {"has no entry for layer 'conv_b'"},
                 {"covers at most"},
                 {"was measured as"},
                 {"inference times only"}};
    for (int c = 0; c < 5; c++) {
        dp_latency_entry *b = &t.entries[node_named(&m, "conv_b") - 1];
        char keep_name[48];
        snprintf(keep_name, sizeof keep_name, "%s", b->name);
        int keep_c = b->out_c, keep_h = b->out_h;
        double *keep_train = b->train_ms;
        if (c == 0) snprintf(t.model, sizeof t.model, "other");
        if (c == 1) snprintf(b->name, sizeof b->name, "conv_x");
        if (c == 2) b->out_c = 6;
        if (c == 3) b->out_h = 5;
        if (c == 4) b->train_ms = NULL;
        dp_status st = dp_latency_map_build(&t, &m, true, &map, &err);
        CHECK_MSG(st == DP_ERR_CONFIG && strstr(err.msg, "/some/table.txt") &&
                      strstr(err.msg, cases[c].want),
                  "case %d: %s", c, err.msg);
        snprintf(t.model, sizeof t.model, "tiny");
        snprintf(b->name, sizeof b->name, "%s", keep_name);
        b->out_c = keep_c, b->out_h = keep_h, b->train_ms = keep_train;
    }
    CHECK(dp_latency_map_build(&t, &m, true, &map, &err) == DP_OK);
    dp_latency_map_free(&map);

    /* a table with a layer the model lacks is another model's */
    dp_error e2 = {0};
    dp_model_begin(&other, 2, 6, 6);
    snprintf(other.arch, sizeof other.arch, "tiny");
    int x = dp_add_conv(&other, 0, "conv_a", 8, 3, 1, 1, false, &e2);
    CHECK(x > 0 && dp_model_finish(&other, &e2) == DP_OK);
    CHECK(dp_latency_map_build(&t, &other, false, &map, &err) == DP_ERR_CONFIG);
    CHECK_MSG(strstr(err.msg, "matches no layer"), "%s", err.msg);
    dp_model_free(&other);
    dp_latency_table_free(&t);
    dp_model_free(&narrow);
    dp_model_free(&m);
}

/* The executor's per-node clock: every timed node gets a non-negative time, the input none. */
static void test_node_seconds(void) {
    dp_model m;
    if (!build_tiny(&m, 8)) return;
    dp_model_init_weights(&m, 3);
    dp_activations a;
    dp_error err = {0};
    CHECK(dp_activations_alloc(&a, &m, 2, &err) == DP_OK);
    float x[2 * 2 * 6 * 6];
    dp_fill_uniform(x, sizeof x / sizeof x[0], 1, 1.0f);
    double sec[32] = {0};
    uint64_t keys[2] = {0, 1};
    dp_forward_opts o = {.train = true, .seed = 1, .sample_keys = keys, .node_seconds = sec};
    dp_model_forward(&m, &a, x, 2, &o);
    int last = dp_model_output_node(&m);
    dp_fill_uniform(a.dout[last], 6, 2, 1.0f);
    dp_model_backward(&m, &a, 2, &o);
    bool ok = sec[0] == 0;
    for (int i = 1; i < m.n_nodes; i++) ok = ok && sec[i] >= 0 && isfinite(sec[i]);
    CHECK(ok);
    dp_activations_free(&a, &m);
    dp_model_free(&m);
}

int main(void) {
    test_axis();
    test_axes_and_isolate();
    test_measure_and_map();
    test_node_seconds();
    return dp_test_finish();
}
