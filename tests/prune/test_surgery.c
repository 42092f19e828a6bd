/* Surgery is exact on the live channels: the pruned model's logits equal those of the
 * original with the removed channels' consumer weights zeroed (eval mode, non-trivial BN
 * statistics), on a VGG-style net (conv bias, BN, max-pool, dropout, flatten of a 4x4 map
 * into a linear, BN1d) and on ResNet-20 option B with residual streams pruned. After surgery
 * the parameter count equals the planner's analytic prediction, and gradients and SGD
 * momentum are sliced like the parameters. */
#include "dprune/prune.h"
#include "prune_testutil.h"
#include <stdlib.h>
#include <string.h>

static int find_param(const dp_model *m, const char *name) {
    for (int p = 0; p < m->n_params; p++)
        if (!strcmp(m->params[p].name, name)) return p;
    CHECK_MSG(0, "no parameter %s", name);
    return 0;
}

static int find_buffer(const dp_model *m, const char *name) {
    for (int b = 0; b < m->n_buffers; b++)
        if (!strcmp(m->buffers[b].name, name)) return b;
    CHECK_MSG(0, "no buffer %s", name);
    return 0;
}

static int find_node(const dp_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return i;
    CHECK_MSG(0, "no node %s", name);
    return 0;
}

/* explicit_flatten = false: fc1 reads the 10 x 4 x 4 map directly (implicit flatten) */
static bool build_vgg_style(dp_model *m, bool explicit_flatten) {
    dp_error err = {0};
    dp_model_begin(m, 3, 8, 8);
    m->num_classes = 5;
    int x = dp_add_conv(m, 0, "conv1", 8, 3, 1, 1, true, &err);
    x = dp_add_bn(m, x, "bn1", &err);
    x = dp_add_relu(m, x, "relu1", &err);
    x = dp_add_conv(m, x, "conv2", 12, 3, 1, 1, true, &err);
    x = dp_add_bn(m, x, "bn2", &err);
    x = dp_add_relu(m, x, "relu2", &err);
    x = dp_add_pool(m, DP_OP_MAXPOOL, x, "pool2", 2, 2, 0, &err);
    x = dp_add_conv(m, x, "conv3", 10, 3, 1, 1, false, &err);
    x = dp_add_bn(m, x, "bn3", &err);
    x = dp_add_relu(m, x, "relu3", &err);
    x = dp_add_dropout(m, x, "drop3", 0.3f, &err);
    if (explicit_flatten) x = dp_add_flatten(m, x, "flatten", &err);
    x = dp_add_linear(m, x, "fc1", 16, true, &err);
    x = dp_add_bn(m, x, "fc1_bn", &err);
    x = dp_add_relu(m, x, "fc1_relu", &err);
    x = dp_add_linear(m, x, "fc2", 5, true, &err);
    CHECK_MSG(x > 0, "%s", err.msg);
    return x > 0 && dp_model_finish(m, &err) == DP_OK;
}

static bool copy_model(const dp_model *m, dp_model *c) {
    dp_error err = {0};
    if (dp_model_reshape(m, NULL, c, &err) != DP_OK) return false;
    memcpy(c->param_data, m->param_data, sizeof(float) * m->n_param_floats);
    memcpy(c->buffer_data, m->buffer_data, sizeof(float) * m->n_buffer_floats);
    return true;
}

/* In `ref`, zero every consumer input column of the channels the plan removes. */
static void zero_removed_consumers(dp_model *ref, const dp_groups *gs, const dp_plan *p) {
    for (int g = 0; g < gs->n_groups; g++) {
        const dp_group_plan *gp = &p->groups[g];
        if (gp->n_keep == gp->channels) continue;
        char *kept = calloc((size_t)gp->channels, 1);
        for (int j = 0; j < gp->n_keep; j++) kept[gp->keep[j]] = 1;
        for (int k = 0; k < gs->groups[g].n_consumers; k++) {
            const dp_group_consumer *c = &gs->groups[g].consumers[k];
            const dp_node *n = &ref->nodes[c->node];
            const dp_tensor_view *v = &ref->params[n->p[0]];
            float *w = dp_param_ptr(ref, n->p[0]);
            size_t row = v->numel / (size_t)v->dims[0];
            size_t inner = n->op == DP_OP_CONV ? (size_t)n->a.conv.k * n->a.conv.k : 1;
            for (int o = 0; o < v->dims[0]; o++)
                for (int j = 0; j < gp->channels; j++)
                    if (!kept[j])
                        memset(w + o * row + (size_t)j * c->span * inner, 0,
                               sizeof(float) * c->span * inner);
        }
        free(kept);
    }
}

static void eval_logits(dp_model *m, const float *x, int N, float *logits) {
    dp_activations a;
    dp_error err = {0};
    if (dp_activations_alloc(&a, m, N, &err) != DP_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    dp_forward_opts o = {0};
    dp_model_forward(m, &a, x, N, &o);
    memcpy(logits, a.out[dp_model_output_node(m)], sizeof(float) * (size_t)N * m->num_classes);
    /* a training step runs on the new shapes too (ASan checks the buffers); it updates the
     * BN running statistics, which are put back afterwards */
    float *saved = malloc(sizeof(float) * m->n_buffer_floats);
    memcpy(saved, m->buffer_data, sizeof(float) * m->n_buffer_floats);
    uint64_t keys[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    o.train = true, o.seed = 3, o.sample_keys = keys;
    dp_model_forward(m, &a, x, N, &o);
    dp_fill_uniform(a.dout[dp_model_output_node(m)], (size_t)N * m->num_classes, 9, 1.0f);
    dp_model_backward(m, &a, N, &o);
    memcpy(m->buffer_data, saved, sizeof(float) * m->n_buffer_floats);
    free(saved);
    dp_activations_free(&a, m);
}

/* momentum = 2 p + 1 and grad = 3 p - 1 on every real entry */
static void tag_state(dp_model *m, dp_sgd *opt) {
    for (int t = 0; t < m->n_params; t++) {
        const dp_tensor_view *v = &m->params[t];
        for (size_t j = 0; j < v->numel; j++) {
            float p = m->param_data[v->offset + j];
            opt->momentum[v->offset + j] = 2 * p + 1;
            m->grad_data[v->offset + j] = 3 * p - 1;
        }
    }
}

static void check_state_tags(const dp_model *m, const dp_sgd *opt) {
    int bad = 0;
    for (int t = 0; t < m->n_params; t++) {
        const dp_tensor_view *v = &m->params[t];
        for (size_t j = 0; j < v->numel; j++) {
            float p = m->param_data[v->offset + j];
            bad += opt->momentum[v->offset + j] != 2 * p + 1;
            bad += m->grad_data[v->offset + j] != 3 * p - 1;
        }
    }
    CHECK_MSG(bad == 0, "%d momentum/grad entries not sliced like their parameters", bad);
    CHECK(opt->n == m->n_param_floats);
}

/* Prunes with random scores to the given keep fraction and checks logits, counts and state.
 * Returns the pruned model in `out` and the plan in `plan` for further checks. */
static void prune_and_compare(dp_model *m, bool residual, bool protect_first, double ratio,
                              dp_model *out, dp_groups *gs, dp_plan *plan) {
    dp_error err = {0};
    dp_group_opts go;
    dp_group_opts_default(&go);
    go.residual = residual;
    go.protect_first_conv = protect_first;
    CHECK(dp_groups_build(m, &go, gs, &err) == DP_OK);
    dp_scores sc;
    CHECK(dp_weight_scores("random", m, gs, 42, 0, &sc, &err) == DP_OK);
    dp_budget b;
    dp_budget_default(&b);
    b.ratio = ratio, b.min_channels = 1, b.min_keep = 0;
    CHECK_MSG(dp_plan_make(m, gs, &sc, &b, "random", plan, &err) == DP_OK, "%s", err.msg);
    dp_scores_free(&sc);

    dp_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.momentum = 0.9;
    dp_sgd opt;
    CHECK(dp_sgd_init(&opt, m, &tc, &err) == DP_OK);
    tag_state(m, &opt);

    dp_model ref;
    CHECK(copy_model(m, &ref));
    zero_removed_consumers(&ref, gs, plan);
    CHECK_MSG(dp_surgery(m, gs, plan, &opt, NULL, out, &err) == DP_OK, "%s", err.msg);
    CHECK(dp_model_params(out) == plan->params_after);
    CHECK(dp_model_flops(out) == plan->flops_after);
    CHECK(dp_model_params(out) < dp_model_params(m));
    check_state_tags(out, &opt);

    int N = 3;
    size_t in = (size_t)N * m->in_c * m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * in), *want = malloc(sizeof(float) * N * m->num_classes),
          *got = malloc(sizeof(float) * N * m->num_classes),
          *full = malloc(sizeof(float) * N * m->num_classes);
    dp_fill_uniform(x, in, 5, 1.0f);
    eval_logits(&ref, x, N, want);
    eval_logits(out, x, N, got);
    eval_logits(m, x, N, full);
    double diff = dp_max_rel_diff(got, want, (size_t)N * m->num_classes);
    CHECK_MSG(diff <= 1e-5, "logits differ by %g", diff);
    /* the comparison is not vacuous: removing channels changes the unmasked model's output */
    CHECK(dp_max_rel_diff(full, want, (size_t)N * m->num_classes) > 1e-3);
    free(x), free(want), free(got), free(full);

    /* the new model's groups have the kept widths */
    dp_groups gs2;
    CHECK(dp_groups_build(out, &go, &gs2, &err) == DP_OK);
    CHECK(gs2.n_groups == gs->n_groups);
    for (int g = 0; g < gs2.n_groups && g < gs->n_groups; g++)
        CHECK(gs2.groups[g].channels == plan->groups[g].n_keep);
    dp_groups_free(&gs2);
    dp_model_free(&ref);
    dp_sgd_free(&opt);
}

static void test_vgg_style(bool explicit_flatten) {
    dp_model m, out;
    if (!build_vgg_style(&m, explicit_flatten)) return;
    randomize(&m, 11);
    dp_groups gs;
    dp_plan plan;
    prune_and_compare(&m, false, false, 0.5, &out, &gs, &plan);
    /* a few entries by name: new index -> old index through the keep-lists */
    const int *k1 = plan.groups[gs.node_group[find_node(&m, "conv1")]].keep;
    const int *k2 = plan.groups[gs.node_group[find_node(&m, "conv2")]].keep;
    const int *k3 = plan.groups[gs.node_group[find_node(&m, "conv3")]].keep;
    const int *kf = plan.groups[gs.node_group[find_node(&m, "fc1")]].keep;
    CHECK(plan.groups[gs.node_group[find_node(&m, "conv3")]].n_keep == 5);
    int p = find_param(&m, "conv2.weight"), q = find_param(&out, "conv2.weight");
    /* conv2.weight[1][2][1][0] (3x3 kernel, new input 2 = old k1[2]) */
    CHECK(dp_param_ptr(&out, q)[((1 * 4) + 2) * 9 + 3] ==
          dp_param_ptr(&m, p)[((k2[1] * 8) + k1[2]) * 9 + 3]);
    p = find_param(&m, "fc1.weight"), q = find_param(&out, "fc1.weight");
    /* fc1 reads 10 (now 5) channels of 4x4: column 1*16+5 is old k3[1]*16+5 */
    CHECK(out.params[q].dims[1] == 5 * 16);
    CHECK(dp_param_ptr(&out, q)[2 * 80 + 1 * 16 + 5] ==
          dp_param_ptr(&m, p)[kf[2] * 160 + k3[1] * 16 + 5]);
    p = find_param(&m, "fc2.weight"), q = find_param(&out, "fc2.weight");
    CHECK(dp_param_ptr(&out, q)[4 * 8 + 7] == dp_param_ptr(&m, p)[4 * 16 + kf[7]]);
    int b = find_buffer(&m, "bn2.running_var"), c = find_buffer(&out, "bn2.running_var");
    CHECK(dp_buffer_ptr(&out, c)[3] == dp_buffer_ptr(&m, b)[k2[3]]);
    p = find_param(&m, "conv2.bias"), q = find_param(&out, "conv2.bias");
    CHECK(dp_param_ptr(&out, q)[5] == dp_param_ptr(&m, p)[k2[5]]);
    dp_plan_free(&plan);
    dp_groups_free(&gs);
    dp_model_free(&out);
    dp_model_free(&m);
}

static void test_resnet_residual(void) {
    dp_model m, out;
    if (!build_resnet20(&m)) return;
    randomize(&m, 23);
    dp_groups gs;
    dp_plan plan;
    prune_and_compare(&m, true, true, 0.4, &out, &gs, &plan);
    /* the stage-2 stream lost channels in all four writers and in the next stage's readers */
    const dp_group_plan *s2 = &plan.groups[gs.node_group[find_node(&m, "layer2.0.add")]];
    CHECK(s2->n_keep < s2->channels);
    static const char *writers[] = {"layer2.0.conv2.weight", "layer2.0.downsample.0.weight",
                                    "layer2.1.conv2.weight", "layer2.2.conv2.weight"};
    for (int w = 0; w < 4; w++)
        CHECK(out.params[find_param(&out, writers[w])].dims[0] == s2->n_keep);
    CHECK(out.params[find_param(&out, "layer3.0.downsample.0.weight")].dims[1] == s2->n_keep);
    CHECK(out.params[find_param(&out, "layer2.1.conv1.weight")].dims[1] == s2->n_keep);
    int b = find_buffer(&m, "layer2.1.bn2.running_mean"),
        c = find_buffer(&out, "layer2.1.bn2.running_mean");
    CHECK(dp_buffer_ptr(&out, c)[2] == dp_buffer_ptr(&m, b)[s2->keep[2]]);
    dp_plan_free(&plan);
    dp_groups_free(&gs);
    dp_model_free(&out);
    dp_model_free(&m);
}

/* A plan that does not fit the groups is refused before anything is built. */
static void test_refuses_bad_plans(void) {
    dp_model m, out;
    if (!build_vgg_style(&m, true)) return;
    dp_groups gs;
    dp_error err = {0};
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    dp_plan plan;
    CHECK(dp_plan_init(&plan, &gs, &err) == DP_OK);
    int g1 = gs.node_group[find_node(&m, "conv1")]; /* protected */
    plan.groups[g1].n_keep = 4;
    CHECK(dp_surgery(&m, &gs, &plan, NULL, NULL, &out, &err) == DP_ERR_ARG);
    CHECK(strstr(err.msg, "conv1") != NULL);
    plan.groups[g1].n_keep = plan.groups[g1].channels;
    int g2 = gs.node_group[find_node(&m, "conv2")];
    plan.groups[g2].n_keep = 2;
    plan.groups[g2].keep[0] = 3, plan.groups[g2].keep[1] = 1; /* not ascending */
    CHECK(dp_surgery(&m, &gs, &plan, NULL, NULL, &out, &err) == DP_ERR_ARG);
    plan.groups[g2].keep[0] = 1, plan.groups[g2].keep[1] = 3;
    CHECK(dp_surgery(&m, &gs, &plan, NULL, NULL, &out, &err) == DP_OK);
    CHECK(out.nodes[find_node(&out, "conv2")].c == 2);
    dp_model_free(&out);
    dp_plan_free(&plan);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

int main(void) {
    test_vgg_style(true);
    test_vgg_style(false);
    test_resnet_residual();
    test_refuses_bad_plans();
    return dp_test_finish();
}
