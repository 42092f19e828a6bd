/* C-SGD: k-means and canonical clusters; the centripetal transform's formula; the deviation
 * shrinking at exactly the predicted rate while a small ResNet trains on random data; the
 * merge exact on hand-made identical members (ResNet-20 option B with residual-coupled
 * groups, and a VGG-style net whose last conv feeds a linear through a flatten); the merge
 * after C-SGD changing logits by less than 1e-4; momentum folded like the weights; the
 * clusters' bytes round trip and damaged bytes refused. */
#include "dprune/csgd.h"
#include "dprune/nn.h"
#include "prune_testutil.h"
#include <stdlib.h>
#include <string.h>

static void test_kmeans(void) {
    /* three tight blobs far apart in 4-D, points interleaved */
    enum { N = 15, D = 4 };
    float x[N * D];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = (float)(10 * (i % 3) + 0.01 * ((i * 7 + j) % 5));
    int a[N], b[N];
    dp_kmeans(x, N, D, 3, 1, 10, 100, a);
    dp_kmeans(x, N, D, 3, 1, 10, 100, b);
    int same = 0, split = 0;
    for (int i = 0; i < N; i++) {
        same += a[i] == b[i];
        split += a[i] != a[i % 3]; /* every point with its blob's first point */
    }
    CHECK(same == N);
    CHECK(split == 0);
    CHECK(a[0] != a[1] && a[1] != a[2] && a[0] != a[2]);
    /* identical points: clusters still non-empty (refilled) */
    float z[6 * 2] = {0};
    int c[6], count[3] = {0};
    dp_kmeans(z, 6, 2, 3, 5, 3, 100, c);
    for (int i = 0; i < 6; i++) count[c[i] >= 0 && c[i] < 3 ? c[i] : 0]++;
    CHECK(count[0] > 0 && count[1] > 0 && count[2] > 0);
}

static void test_index(void) {
    dp_csgd_clusters cl;
    dp_error err = {0};
    dp_channel_group grp = {.channels = 5};
    dp_groups gs = {.groups = &grp, .n_groups = 1};
    CHECK(dp_csgd_clusters_init(&cl, &gs, &err) == DP_OK);
    cl.assign[0] = malloc(5 * sizeof(int));
    int a[5] = {2, 2, 0, 1, 0};
    memcpy(cl.assign[0], a, sizeof a);
    cl.n_clusters[0] = 3;
    CHECK(dp_csgd_index(&cl, 0, &err) == DP_OK);
    int want[5] = {0, 0, 1, 2, 1}, members[5] = {0, 1, 2, 4, 3}, first[4] = {0, 2, 4, 5};
    CHECK(!memcmp(cl.assign[0], want, sizeof want));
    CHECK(!memcmp(cl.members[0], members, sizeof members));
    CHECK(!memcmp(cl.first[0], first, sizeof first));
    cl.assign[0][4] = 0, cl.assign[0][2] = 0; /* cluster 1 now empty */
    CHECK(dp_csgd_index(&cl, 0, &err) == DP_ERR_ARG);
    dp_csgd_clusters_free(&cl);
}

static bool build_vgg_style(dp_model *m) {
    dp_error err = {0};
    dp_model_begin(m, 3, 8, 8);
    m->num_classes = 5;
    int x = dp_add_conv(m, 0, "conv1", 8, 3, 1, 1, true, &err);
    x = dp_add_bn(m, x, "bn1", &err);
    x = dp_add_relu(m, x, "relu1", &err);
    x = dp_add_pool(m, DP_OP_MAXPOOL, x, "pool1", 2, 2, 0, &err);
    x = dp_add_conv(m, x, "conv2", 12, 3, 1, 1, true, &err);
    x = dp_add_bn(m, x, "bn2", &err);
    x = dp_add_relu(m, x, "relu2", &err);
    x = dp_add_flatten(m, x, "flatten", &err);
    x = dp_add_linear(m, x, "fc1", 16, true, &err);
    x = dp_add_relu(m, x, "fc1_relu", &err);
    x = dp_add_linear(m, x, "fc2", 5, true, &err);
    CHECK_MSG(x > 0, "%s", err.msg);
    return x > 0 && dp_model_finish(m, &err) == DP_OK;
}

static void groups_of(const dp_model *m, dp_groups *gs) {
    dp_group_opts go;
    dp_group_opts_default(&go);
    go.residual = true;
    go.protect_first_conv = false;
    dp_error err = {0};
    CHECK_MSG(dp_groups_build(m, &go, gs, &err) == DP_OK, "%s", err.msg);
}

/* Every prunable group into ceil(C/2) clusters. */
static void cluster_half(const dp_model *m, const dp_groups *gs, dp_csgd_method method,
                         dp_csgd_clusters *cl) {
    dp_error err = {0};
    CHECK(dp_csgd_clusters_init(cl, gs, &err) == DP_OK);
    for (int g = 0; g < gs->n_groups; g++)
        if (gs->groups[g].prunable)
            CHECK_MSG(dp_csgd_cluster_group(m, gs, g, (gs->groups[g].channels + 1) / 2, method, 7,
                                            4, cl, &err) == DP_OK,
                      "%s", err.msg);
}

static void logits_of(const dp_model *m, const float *x, int N, float *out) {
    dp_activations a;
    dp_error err = {0};
    CHECK(dp_activations_alloc(&a, m, N, &err) == DP_OK);
    dp_forward_opts o = {0};
    dp_model_forward(m, &a, x, N, &o);
    memcpy(out, a.out[dp_model_output_node(m)], sizeof(float) * (size_t)N * m->num_classes);
    dp_activations_free(&a, m);
}

static void test_transform_formula(void) {
    dp_model m = {0};
    dp_groups gs = {0};
    dp_csgd_clusters cl;
    if (!build_vgg_style(&m)) return;
    randomize(&m, 3);
    groups_of(&m, &gs);
    cluster_half(&m, &gs, DP_CSGD_EVEN, &cl);
    dp_fill_uniform(m.grad_data, m.n_param_floats, 11, 1.0f);
    float *g0 = malloc(sizeof(float) * m.n_param_floats);
    memcpy(g0, m.grad_data, sizeof(float) * m.n_param_floats);
    dp_csgd_strength s = {.centripetal = 0.3, .weight_decay = 0.01, .vector_ratio = 0.1};
    dp_csgd_transform(&m, &gs, &cl, &s);
    /* conv2 (12 channels, even: clusters {0,1}, {2,3}, ...): weight element 5 of channel 3 */
    int conv2 = -1, bn2 = -1;
    for (int i = 0; i < m.n_nodes; i++) {
        if (!strcmp(m.nodes[i].name, "conv2")) conv2 = i;
        if (!strcmp(m.nodes[i].name, "bn2")) bn2 = i;
    }
    const dp_tensor_view *w = &m.params[m.nodes[conv2].p[0]];
    size_t row = w->numel / 12, j2 = w->offset + 2 * row + 5, j3 = w->offset + 3 * row + 5;
    double x2 = m.param_data[j2], x3 = m.param_data[j3];
    double want = 0.5 * (g0[j2] + g0[j3]) + 0.01 * x3 + 0.3 * (x3 - 0.5 * (x2 + x3));
    CHECK_CLOSE(m.grad_data[j3], want, 1e-6, 1e-5);
    /* BN gamma of channel 2: eta 0, eps 0.03 */
    size_t b = m.params[m.nodes[bn2].p[0]].offset;
    double y2 = m.param_data[b + 2], y3 = m.param_data[b + 3];
    want = 0.5 * (g0[b + 2] + g0[b + 3]) + 0.03 * (y2 - 0.5 * (y2 + y3));
    CHECK_CLOSE(m.grad_data[b + 2], want, 1e-6, 1e-5);
    /* fc2 (the classifier's output) is not clustered: its gradient is untouched */
    int fc2 = dp_model_output_node(&m);
    size_t f = m.params[m.nodes[fc2].p[0]].offset;
    CHECK(m.grad_data[f + 3] == g0[f + 3]);
    free(g0);
    dp_csgd_clusters_free(&cl);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* The merge of members made exactly identical gives the same logits. */
static void check_exact_merge(dp_model *m, const char *what) {
    dp_groups gs = {0};
    dp_csgd_clusters cl;
    dp_error err = {0};
    groups_of(m, &gs);
    cluster_half(m, &gs, DP_CSGD_KMEANS, &cl);
    dp_csgd_equalize(m, &gs, &cl, true);
    enum { N = 3 };
    size_t in = (size_t)m->in_c * m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * N * in), before[N * 10], after[N * 10];
    dp_fill_uniform(x, N * in, 5, 1.0f);
    logits_of(m, x, N, before);
    dp_plan plan = {0};
    dp_model small = {0};
    CHECK_MSG(dp_csgd_merge_plan(m, &gs, &cl, &plan, &err) == DP_OK, "%s", err.msg);
    dp_surgery_opts so = dp_csgd_surgery_opts(&cl);
    CHECK_MSG(dp_surgery(m, &gs, &plan, NULL, &so, &small, &err) == DP_OK, "%s", err.msg);
    CHECK(dp_model_params(&small) == plan.params_after);
    CHECK(dp_model_params(&small) < dp_model_params(m));
    logits_of(&small, x, N, after);
    double d = dp_max_rel_diff(after, before, (size_t)N * m->num_classes);
    CHECK_MSG(d < 1e-5, "%s: logits differ by %g after merging identical members", what, d);
    free(x);
    dp_model_free(&small);
    dp_plan_free(&plan);
    dp_csgd_clusters_free(&cl);
    dp_groups_free(&gs);
}

static void test_exact_merge(void) {
    dp_model m = {0};
    if (build_resnet20(&m)) {
        randomize(&m, 9);
        check_exact_merge(&m, "resnet20 option B (residual groups)");
        dp_model_free(&m);
    }
    if (build_vgg_style(&m)) {
        randomize(&m, 4);
        check_exact_merge(&m, "vgg-style (flatten into a linear)");
        dp_model_free(&m);
    }
}

/* Momentum of a merged consumer column is the members' sum. */
static void test_momentum_fold(void) {
    dp_model m = {0}, small = {0};
    dp_groups gs = {0};
    dp_csgd_clusters cl;
    dp_plan plan = {0};
    dp_error err = {0};
    if (!build_vgg_style(&m)) return;
    randomize(&m, 2);
    groups_of(&m, &gs);
    cluster_half(&m, &gs, DP_CSGD_EVEN, &cl);
    dp_train_config tc = {.momentum = 0.9};
    dp_sgd opt;
    CHECK(dp_sgd_init(&opt, &m, &tc, &err) == DP_OK);
    dp_fill_uniform(opt.momentum, m.n_param_floats, 8, 1.0f);
    int conv2 = -1;
    for (int i = 0; i < m.n_nodes; i++)
        if (!strcmp(m.nodes[i].name, "conv2")) conv2 = i;
    /* conv2 reads conv1's 8 channels, clusters {0,1},{2,3},..; conv2 keeps 6 of 12 rows
     * (first members 0, 2, ...): new [row 1][col 1] = old [row 2][col 2] + old [row 2][col 3] */
    const dp_tensor_view *w = &m.params[m.nodes[conv2].p[0]];
    float want = opt.momentum[w->offset + (2 * 8 + 2) * 9 + 4] +
                 opt.momentum[w->offset + (2 * 8 + 3) * 9 + 4];
    CHECK(dp_csgd_merge_plan(&m, &gs, &cl, &plan, &err) == DP_OK);
    dp_surgery_opts so = dp_csgd_surgery_opts(&cl);
    CHECK_MSG(dp_surgery(&m, &gs, &plan, &opt, &so, &small, &err) == DP_OK, "%s", err.msg);
    const dp_tensor_view *nw = &small.params[small.nodes[conv2].p[0]];
    CHECK(nw->dims[0] == 6 && nw->dims[1] == 4);
    CHECK_CLOSE(opt.momentum[nw->offset + (1 * 4 + 1) * 9 + 4], want, 1e-6, 1e-6);
    dp_sgd_free(&opt);
    dp_model_free(&small);
    dp_plan_free(&plan);
    dp_csgd_clusters_free(&cl);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* SGD steps with the transform on random data; returns the deviation after each step. */
static void train_csgd(dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                       const dp_csgd_strength *s, dp_sgd *opt, double lr, int steps,
                       dp_csgd_deviation *dev) {
    enum { N = 4 };
    dp_activations a;
    dp_error err = {0};
    CHECK(dp_activations_alloc(&a, m, N, &err) == DP_OK);
    size_t in = (size_t)m->in_c * m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * N * in);
    int32_t y[N];
    uint64_t keys[N] = {1, 2, 3, 4};
    int out = dp_model_output_node(m), K = m->num_classes;
    for (int t = 0; t < steps; t++) {
        dp_fill_uniform(x, N * in, 100u + (unsigned)t, 1.0f);
        for (int i = 0; i < N; i++) y[i] = (t * 3 + i) % K;
        dp_forward_opts o = {.train = true, .seed = 1, .sample_keys = keys};
        memset(m->grad_data, 0, sizeof(float) * m->n_param_floats);
        dp_model_forward(m, &a, x, N, &o);
        memset(a.dout[out], 0, sizeof(float) * N * K);
        softmax_xent_forward_backward(N, K, a.out[out], y, 0.0f, 1.0f / N, a.dout[out]);
        dp_model_backward(m, &a, N, &o);
        dp_csgd_transform(m, gs, cl, s);
        dp_sgd_step(opt, m, lr);
        dp_csgd_measure(m, gs, cl, &dev[t]);
    }
    free(x);
    dp_activations_free(&a, m);
}

static void test_decay_and_merge(void) {
    dp_model m = {0}, small = {0};
    dp_groups gs = {0};
    dp_csgd_clusters cl;
    dp_error err = {0};
    if (!build_resnet20(&m)) return;
    randomize(&m, 12);
    groups_of(&m, &gs);
    cluster_half(&m, &gs, DP_CSGD_KMEANS, &cl);
    dp_train_config tc = {.momentum = 0.9, .nesterov = true, .weight_decay = 1e-4};
    dp_sgd opt;
    CHECK(dp_sgd_init(&opt, &m, &tc, &err) == DP_OK);
    dp_csgd_set_decay(&opt, &m, &gs, &cl, false, 0);
    dp_csgd_reset_momentum(&opt, &m, &gs, &cl);
    dp_csgd_strength s = {.centripetal = 0.05, .weight_decay = 1e-4, .vector_ratio = 0.1};
    double lr = 0.05;
    enum { T = 40 };
    dp_csgd_deviation d0, dev[T];
    dp_csgd_measure(&m, &gs, &cl, &d0);
    CHECK(d0.kernel > 0 && d0.vector > 0);
    train_csgd(&m, &gs, &cl, &s, &opt, lr, T, dev);
    double lrs[T];
    for (int t = 0; t < T; t++) lrs[t] = lr;
    int bad = 0;
    for (int t = 0; t < T; t++) {
        double fk = dp_csgd_decay_factor(lrs, t + 1, 0.9, true, 0.05 + 1e-4);
        double fv = dp_csgd_decay_factor(lrs, t + 1, 0.9, true, 0.005);
        double rk = dev[t].kernel / d0.kernel, rv = dev[t].vector / d0.vector;
        if (fabs(rk / (fk * fk) - 1) > 1e-3 || fabs(rv / (fv * fv) - 1) > 1e-3) {
            if (bad++ < 3)
                fprintf(stderr, "step %d: kernel %.6g predicted %.6g, vector %.6g predicted %.6g\n",
                        t + 1, rk, fk * fk, rv, fv * fv);
        }
    }
    CHECK_MSG(bad == 0, "%d of %d steps off the predicted decay", bad, T);
    CHECK(dev[T - 1].kernel < 0.2 * d0.kernel); /* it does shrink, and fast */

    /* drive it far down, then merge: the vector pull as strong as the kernels' (a short test),
     * lr * c near (1 - sqrt(mu))^2, where the momentum recurrence decays fastest */
    s.vector_ratio = 1.0, s.centripetal = 0.05;
    enum { T2 = 300 };
    dp_csgd_deviation *dev2 = malloc(sizeof *dev2 * T2);
    train_csgd(&m, &gs, &cl, &s, &opt, lr, T2, dev2);
    double rel = dp_csgd_relative(&dev2[T2 - 1]);

    CHECK_MSG(rel < 1e-10, "relative deviation %g after %d steps", rel, T + T2);
    free(dev2);
    dp_csgd_equalize(&m, &gs, &cl, false); /* BN statistics only */
    enum { N = 4 };
    float x[N * 3 * 12 * 12], before[N * 10], after[N * 10];
    dp_fill_uniform(x, sizeof x / sizeof x[0], 77, 1.0f);
    logits_of(&m, x, N, before);
    dp_plan plan = {0};
    CHECK(dp_csgd_merge_plan(&m, &gs, &cl, &plan, &err) == DP_OK);
    dp_surgery_opts so = dp_csgd_surgery_opts(&cl);
    CHECK_MSG(dp_surgery(&m, &gs, &plan, &opt, &so, &small, &err) == DP_OK, "%s", err.msg);
    logits_of(&small, x, N, after);
    double diff = dp_max_rel_diff(after, before, N * 10);
    CHECK_MSG(diff < 1e-4, "logits changed by %g in the merge", diff);
    printf("merge after C-SGD: relative deviation %.3g, logits changed by %.3g, params %lld -> "
           "%lld\n",
           rel, diff, (long long)dp_model_params(&m), (long long)dp_model_params(&small));
    dp_plan_free(&plan);
    dp_model_free(&small);
    dp_sgd_free(&opt);
    dp_csgd_clusters_free(&cl);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

static void test_bytes(void) {
    dp_model m = {0};
    dp_groups gs = {0};
    dp_csgd_clusters cl, back;
    dp_error err = {0};
    if (!build_resnet20(&m)) return;
    randomize(&m, 1);
    groups_of(&m, &gs);
    cluster_half(&m, &gs, DP_CSGD_KMEANS, &cl);
    uint8_t *buf = NULL;
    size_t len = 0;
    int round = 0;
    CHECK(dp_csgd_serialize(&cl, 3, &buf, &len, &err) == DP_OK);
    CHECK_MSG(dp_csgd_deserialize(buf, len, &back, &round, &err) == DP_OK, "%s", err.msg);
    CHECK(round == 3);
    CHECK(dp_csgd_check(&back, &gs, &err) == DP_OK);
    int differ = back.n_groups != cl.n_groups;
    for (int g = 0; g < cl.n_groups && !differ; g++) {
        differ |= back.n_clusters[g] != cl.n_clusters[g];
        for (int c = 0; c < cl.channels[g] && cl.n_clusters[g] && !differ; c++)
            differ |= back.assign[g][c] != cl.assign[g][c];
    }
    CHECK(!differ);
    dp_csgd_clusters_free(&back);
    buf[len / 2] ^= 0x10;
    CHECK(dp_csgd_deserialize(buf, len, &back, &round, &err) == DP_ERR_CHECKPOINT);
    buf[len / 2] ^= 0x10;
    CHECK(dp_csgd_deserialize(buf, len - 5, &back, &round, &err) == DP_ERR_CHECKPOINT);
    free(buf);
    dp_csgd_clusters_free(&cl);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

int main(void) {
    test_kmeans();
    test_index();
    test_transform_formula();
    test_exact_merge();
    test_momentum_fold();
    test_decay_and_merge();
    test_bytes();
    return dp_test_finish();
}
