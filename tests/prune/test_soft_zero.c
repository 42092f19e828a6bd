/* Soft zeroing (Soft Filter Pruning semantics): the masked channels' filter rows and biases of
 * every writer (conv and linear) are 0 and so is their momentum; everything else -- the other
 * filters, the consumers' weights, BN parameters and running statistics -- is bitwise
 * unchanged; and gradients are not masked: after one SGD step a zeroed conv filter whose BN
 * passes a gradient has grown back. */
#include "dprune/cip.h"
#include "dprune/nn.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

static int find_param(const dp_model *m, const char *name) {
    for (int p = 0; p < m->n_params; p++)
        if (!strcmp(m->params[p].name, name)) return p;
    CHECK_MSG(0, "no parameter %s", name);
    return 0;
}

/* conv1 (bias) bn1 relu1 conv2 bn2 relu2 flatten fc1 (bias) relu3 fc2, input 3 x 4 x 4 */
static bool build(dp_model *m) {
    dp_error err = {0};
    dp_model_begin(m, 3, 4, 4);
    m->num_classes = 4;
    int x = dp_add_conv(m, 0, "conv1", 6, 3, 1, 1, true, &err);
    x = dp_add_bn(m, x, "bn1", &err);
    x = dp_add_relu(m, x, "relu1", &err);
    x = dp_add_conv(m, x, "conv2", 8, 3, 1, 1, false, &err);
    x = dp_add_bn(m, x, "bn2", &err);
    x = dp_add_relu(m, x, "relu2", &err);
    x = dp_add_flatten(m, x, "flatten", &err);
    x = dp_add_linear(m, x, "fc1", 10, true, &err);
    x = dp_add_relu(m, x, "relu3", &err);
    x = dp_add_linear(m, x, "fc2", 4, true, &err);
    CHECK_MSG(x > 0, "%s", err.msg);
    return x > 0 && dp_model_finish(m, &err) == DP_OK;
}

static void remove_channels(dp_plan *p, int g, const int *drop, int n) {
    dp_group_plan *gp = &p->groups[g];
    int k = 0;
    for (int c = 0; c < gp->channels; c++) {
        bool dropped = false;
        for (int j = 0; j < n; j++) dropped |= drop[j] == c;
        if (!dropped) gp->keep[k++] = c;
    }
    gp->n_keep = k;
}

/* row `row` of parameter view v (dims[0] rows) in the buffer base: all zero? */
static bool row_zero(const float *base, const dp_tensor_view *v, int row) {
    size_t len = v->numel / (size_t)v->dims[0];
    for (size_t i = 0; i < len; i++)
        if (base[v->offset + (size_t)row * len + i] != 0) return false;
    return true;
}

int main(void) {
    dp_model m = {0};
    if (!build(&m)) return dp_test_finish();
    dp_error err = {0};
    dp_fill_uniform(m.param_data, m.n_param_floats, 3, 0.5f);
    dp_fill_uniform(m.buffer_data, m.n_buffer_floats, 4, 0.3f);
    for (int b = 0; b < m.n_buffers; b++)
        if (strstr(m.buffers[b].name, "running_var"))
            for (size_t j = 0; j < m.buffers[b].numel; j++) dp_buffer_ptr(&m, b)[j] += 1.0f;
    /* zeroed channels with a positive BN beta pass a gradient (relu(beta) > 0); with a negative
     * one, or without BN before the ReLU (fc1: its output is exactly 0 and relu'(0) = 0), a
     * zeroed filter gets none: that is SFP, not a mask */
    float *beta1 = dp_param_ptr(&m, find_param(&m, "bn1.bias")),
          *beta2 = dp_param_ptr(&m, find_param(&m, "bn2.bias"));
    beta1[1] = beta1[4] = beta2[0] = beta2[7] = 0.3f;
    dp_train_config tc = {.momentum = 0.9};
    dp_sgd opt;
    CHECK(dp_sgd_init(&opt, &m, &tc, &err) == DP_OK);
    dp_fill_uniform(opt.momentum, m.n_param_floats, 5, 1.0f);
    opt.started = true;

    dp_group_opts go;
    dp_group_opts_default(&go);
    go.protect_first_conv = false;
    dp_groups gs;
    CHECK(dp_groups_build(&m, &go, &gs, &err) == DP_OK);
    CHECK(dp_groups_prunable_count(&gs) == 3);
    dp_plan mask;
    CHECK(dp_plan_init(&mask, &gs, &err) == DP_OK);
    int g1 = gs.node_group[1], g2 = gs.node_group[4], g3 = gs.node_group[8];
    remove_channels(&mask, g1, (int[]){1, 4}, 2);
    remove_channels(&mask, g2, (int[]){0, 7}, 2);
    remove_channels(&mask, g3, (int[]){3}, 1);

    float *p0 = malloc(sizeof(float) * m.n_param_floats),
          *m0 = malloc(sizeof(float) * m.n_param_floats);
    float *b0 = malloc(sizeof(float) * m.n_buffer_floats);
    memcpy(p0, m.param_data, sizeof(float) * m.n_param_floats);
    memcpy(m0, opt.momentum, sizeof(float) * m.n_param_floats);
    memcpy(b0, m.buffer_data, sizeof(float) * m.n_buffer_floats);
    CHECK(dp_cip_soft_zero(&m, &gs, &mask, opt.momentum) == 5);

    /* the masked rows are zero in parameters and momentum */
    struct {
        const char *name;
        int row;
    } zeroed[] = {{"conv1.weight", 1}, {"conv1.weight", 4}, {"conv1.bias", 1}, {"conv1.bias", 4},
                  {"conv2.weight", 0}, {"conv2.weight", 7}, {"fc1.weight", 3}, {"fc1.bias", 3}};
    char *is_zeroed = calloc(m.n_param_floats, 1);
    for (size_t k = 0; k < sizeof zeroed / sizeof zeroed[0]; k++) {
        const dp_tensor_view *v = &m.params[find_param(&m, zeroed[k].name)];
        CHECK_MSG(row_zero(m.param_data, v, zeroed[k].row) &&
                      row_zero(opt.momentum, v, zeroed[k].row),
                  "%s row %d", zeroed[k].name, zeroed[k].row);
        size_t len = v->numel / (size_t)v->dims[0];
        memset(is_zeroed + v->offset + (size_t)zeroed[k].row * len, 1, len);
    }
    /* everything else is untouched: other filters, consumers, BN gamma/beta, statistics */
    size_t changed = 0;
    for (size_t i = 0; i < m.n_param_floats; i++)
        if (!is_zeroed[i]) changed += m.param_data[i] != p0[i] || opt.momentum[i] != m0[i];
    CHECK_MSG(changed == 0, "%zu other parameters or momenta changed", changed);
    CHECK(memcmp(m.buffer_data, b0, sizeof(float) * m.n_buffer_floats) == 0);
    const dp_tensor_view *g_bn1 = &m.params[find_param(&m, "bn1.weight")];
    CHECK(m.param_data[g_bn1->offset + 1] == p0[g_bn1->offset + 1]); /* gamma of a zeroed channel */

    /* one training step: gradients are not masked, so the zeroed filters grow back */
    dp_activations a;
    CHECK(dp_activations_alloc(&a, &m, 8, &err) == DP_OK);
    float x[8 * 3 * 16];
    dp_fill_uniform(x, sizeof x / sizeof x[0], 6, 1.0f);
    int32_t y[8] = {0, 1, 2, 3, 0, 1, 2, 3};
    uint64_t keys[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    dp_forward_opts fo = {.train = true, .seed = 1, .sample_keys = keys};
    memset(m.grad_data, 0, sizeof(float) * m.n_param_floats);
    dp_model_forward(&m, &a, x, 8, &fo);
    int out = dp_model_output_node(&m);
    softmax_xent_forward_backward(8, 4, a.out[out], y, 0.0f, 1.0f / 8, a.dout[out]);
    dp_model_backward(&m, &a, 8, &fo);
    dp_sgd_step(&opt, &m, 0.1);
    const dp_tensor_view *w1 = &m.params[find_param(&m, "conv1.weight")],
                         *w2 = &m.params[find_param(&m, "conv2.weight")],
                         *f1 = &m.params[find_param(&m, "fc1.weight")];
    CHECK(!row_zero(m.param_data, w1, 1) && !row_zero(m.param_data, w1, 4));
    CHECK(!row_zero(m.param_data, w2, 0) && !row_zero(m.param_data, w2, 7));
    CHECK(!row_zero(m.grad_data, w1, 1) && !row_zero(opt.momentum, w1, 1));
    CHECK(row_zero(m.param_data, f1, 3)); /* see above: dead without BN */

    dp_activations_free(&a, &m);
    free(is_zeroed), free(p0), free(m0), free(b0);
    dp_plan_free(&mask);
    dp_groups_free(&gs);
    dp_sgd_free(&opt);
    dp_model_free(&m);
    return dp_test_finish();
}
