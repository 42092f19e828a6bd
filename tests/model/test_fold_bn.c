/* Export with BN folded: the folded model computes the same eval-mode logits (1e-5), has no
 * BN left where a BN follows a conv/linear alone, and keeps a BN whose input has other
 * readers. Covered: conv without and with bias, a residual add, a projection shortcut, a
 * linear followed by BatchNorm1d (the VGG classifier), and a whole vgg11 and resnet20-B. */
#include "dprune/model.h"
#include "testutil.h"
#include <string.h>

static void randomize(dp_model *m, unsigned seed) {
    dp_model_init_weights(m, seed);
    for (int p = 0; p < m->n_params; p++)
        dp_fill_uniform(dp_param_ptr(m, p), m->params[p].numel, seed + 10 + p, 0.5f);
    for (int b = 0; b < m->n_buffers; b++) { /* non-trivial statistics: mean any, var > 0 */
        float *x = dp_buffer_ptr(m, b);
        dp_fill_uniform(x, m->buffers[b].numel, seed + 100 + b, 0.5f);
        if (strstr(m->buffers[b].name, "running_var"))
            for (size_t j = 0; j < m->buffers[b].numel; j++) x[j] = 0.5f + x[j] * x[j];
    }
}

static int count_bn(const dp_model *m) {
    int n = 0;
    for (int i = 0; i < m->n_nodes; i++) n += m->nodes[i].op == DP_OP_BN;
    return n;
}

static void check_same_logits(const dp_model *a, const dp_model *b, int N, const char *what) {
    dp_activations aa, ab;
    dp_error err = {0};
    CHECK(dp_activations_alloc(&aa, a, N, &err) == DP_OK);
    CHECK(dp_activations_alloc(&ab, b, N, &err) == DP_OK);
    size_t n = (size_t)N * a->in_c * a->in_h * a->in_w;
    float *x = dp_alloc_floats(n);
    dp_fill_uniform(x, n, 77, 1.0f);
    dp_forward_opts eval = {.train = false};
    dp_model_forward(a, &aa, x, N, &eval);
    dp_model_forward(b, &ab, x, N, &eval);
    const float *la = aa.out[dp_model_output_node(a)], *lb = ab.out[dp_model_output_node(b)];
    double d = dp_max_rel_diff(lb, la, (size_t)N * a->num_classes);
    CHECK_MSG(d <= 1e-5, "%s: folded logits differ by %.3g", what, d);
    dp_free(x);
    dp_activations_free(&aa, a);
    dp_activations_free(&ab, b);
}

static void check_arch(const char *arch, const char *shortcut) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    snprintf(mc.shortcut, sizeof mc.shortcut, "%s", shortcut);
    mc.width = 0.25;
    dp_model m, f;
    dp_error err = {0};
    CHECK_MSG(dp_model_build(&m, &mc, 3, 32, 32, 10, &err) == DP_OK, "%s", err.msg);
    randomize(&m, 3);
    CHECK_MSG(dp_model_fold_bn(&m, &f, &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(count_bn(&f) == 0, "%s: %d BN left", arch, count_bn(&f));
    check_same_logits(&m, &f, 3, arch);
    dp_model_free(&m);
    dp_model_free(&f);
}

int main(void) {
    dp_error err = {0};
    dp_model m, f;
    dp_model_begin(&m, 2, 6, 6);
    m.num_classes = 4;
    int x = dp_add_conv(&m, 0, "c1", 5, 3, 1, 1, false, &err);
    x = dp_add_bn(&m, x, "bn1", &err);
    x = dp_add_relu(&m, x, "r1", &err);
    int y = dp_add_conv(&m, x, "c2", 5, 3, 1, 1, true, &err);
    y = dp_add_bn(&m, y, "bn2", &err);
    int s = dp_add_conv(&m, x, "proj", 5, 1, 1, 0, false, &err);
    s = dp_add_bn(&m, s, "proj_bn", &err);
    x = dp_add_add(&m, y, s, "add", &err);
    int keep = dp_add_bn(&m, x, "bn_after_add", &err); /* input is an add: stays */
    x = dp_add_relu(&m, keep, "r2", &err);
    x = dp_add_flatten(&m, x, "flat", &err);
    x = dp_add_linear(&m, x, "fc1", 7, true, &err);
    x = dp_add_bn(&m, x, "fc1_bn", &err);
    x = dp_add_relu(&m, x, "r3", &err);
    x = dp_add_linear(&m, x, "fc2", 4, true, &err);
    CHECK_MSG(x > 0 && dp_model_finish(&m, &err) == DP_OK, "%s", err.msg);
    randomize(&m, 5);
    CHECK_MSG(dp_model_fold_bn(&m, &f, &err) == DP_OK, "%s", err.msg);
    CHECK(count_bn(&f) == 1); /* only the BN after the add remains */
    /* BN parameters are gone, biases appear: 4 BNs of 2x5, 2x5, 2x5, 2x7 values, 3 new biases */
    CHECK(dp_model_params(&f) == dp_model_params(&m) - (10 + 10 + 10 + 14) + (5 + 5));
    check_same_logits(&m, &f, 4, "hand-built");
    dp_model_free(&m);
    dp_model_free(&f);
    check_arch("vgg11", "A");
    check_arch("resnet20", "B");
    return dp_test_finish();
}
