/* Weight-only criteria on hand-made cases: l1 / l2 values (summed over a residual group's
 * writers), slim and its BN-L1 gradient term, FPGM against a naive O(n^2) double loop, FEC
 * entropy (0 for identical channels, ln 2 for two far clusters, a naive reference with a
 * sorted median, the c = 1 fallback to l1 that says so, the beta-bisected ratio rule), and
 * the seeded random criterion. */
#include "dprune/prune.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int node_named(const dp_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return i;
    CHECK_MSG(0, "no node %s", name);
    return 0;
}

static float *weight_of(const dp_model *m, const char *node) {
    return dp_param_ptr(m, m->nodes[node_named(m, node)].p[0]);
}

static bool build_arch(dp_model *m, const char *arch, const char *shortcut, int c, int hw,
                       double width) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    snprintf(mc.shortcut, sizeof mc.shortcut, "%s", shortcut);
    mc.width = width;
    dp_error err = {0};
    dp_status st = dp_model_build(m, &mc, c, hw, hw, 10, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    return st == DP_OK;
}

/* input [cin,2,2] -> c1 (n filters, k x k, pad k/2) -> bn1 -> relu -> c2 (4) -> gap -> fc */
static bool build_small(dp_model *m, int cin, int n, int k) {
    dp_error err = {0};
    dp_model_begin(m, cin, 2, 2);
    m->num_classes = 2;
    int x = dp_add_conv(m, 0, "c1", n, k, 1, k / 2, false, &err);
    x = dp_add_bn(m, x, "bn1", &err);
    x = dp_add_relu(m, x, "relu1", &err);
    x = dp_add_conv(m, x, "c2", 4, 1, 1, 0, false, &err);
    x = dp_add_gap(m, x, "gap", &err);
    x = dp_add_linear(m, x, "fc", 2, true, &err);
    return x > 0 && dp_model_finish(m, &err) == DP_OK;
}

static void groups_unprotected(const dp_model *m, bool residual, dp_groups *gs) {
    dp_group_opts o;
    dp_group_opts_default(&o);
    o.protect_first_conv = false;
    o.residual = residual;
    dp_error err = {0};
    CHECK_MSG(dp_groups_build(m, &o, gs, &err) == DP_OK, "%s", err.msg);
}

static void test_norms_and_slim(void) {
    dp_model m;
    if (!build_small(&m, 2, 3, 1)) return;
    dp_groups gs;
    groups_unprotected(&m, false, &gs);
    const dp_channel_group *g = &gs.groups[gs.node_group[node_named(&m, "c1")]];
    float w[6] = {1, -2, 0, 0, 3, 4}; /* filters [1,-2], [0,0], [3,4] */
    memcpy(weight_of(&m, "c1"), w, sizeof w);
    double s[3];
    dp_error err = {0};
    CHECK(dp_score_l1(&m, g, s, &err) == DP_OK);
    CHECK(s[0] == 3 && s[1] == 0 && s[2] == 7);
    CHECK(dp_score_l2(&m, g, s, &err) == DP_OK);
    CHECK_CLOSE(s[0], sqrt(5.0), 1e-15, 0);
    CHECK(s[1] == 0 && s[2] == 5);

    float *gamma = weight_of(&m, "bn1");
    gamma[0] = 0.5f, gamma[1] = -2.0f, gamma[2] = 0.0f;
    CHECK(dp_score_slim(&m, g, s, &err) == DP_OK);
    CHECK(s[0] == 0.5 && s[1] == 2.0 && s[2] == 0.0);
    float *ggrad = dp_grad_ptr(&m, m.nodes[node_named(&m, "bn1")].p[0]);
    memset(ggrad, 0, sizeof(float) * 3);
    dp_slim_add_bn_l1_grad(&m, NULL, 0.25);
    CHECK(ggrad[0] == 0.25f && ggrad[1] == -0.25f && ggrad[2] == 0.0f);
    /* a group without BN: slim says which */
    const dp_channel_group *g2 = &gs.groups[gs.node_group[node_named(&m, "c2")]];
    double s2[4];
    CHECK(dp_score_slim(&m, g2, s2, &err) == DP_ERR_CONFIG && strstr(err.msg, "c2"));
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* A residual group's score is the sum over its writers. */
static void test_residual_sum(void) {
    dp_model m;
    if (!build_arch(&m, "resnet20", "B", 3, 8, 1.0)) return;
    dp_model_init_weights(&m, 3);
    dp_groups gs;
    groups_unprotected(&m, true, &gs);
    const dp_channel_group *g = &gs.groups[gs.node_group[node_named(&m, "layer3.0.add")]];
    CHECK(g->n_writers == 4);
    double *s = malloc(sizeof(double) * g->channels);
    dp_error err = {0};
    CHECK(dp_score_l1(&m, g, s, &err) == DP_OK);
    int bad = 0;
    for (int j = 0; j < g->channels; j++) {
        double want = 0;
        for (int k = 0; k < g->n_writers; k++) {
            const dp_tensor_view *v = &m.params[m.nodes[g->writers[k]].p[0]];
            size_t len = v->numel / (size_t)v->dims[0];
            for (size_t i = 0; i < len; i++)
                want += fabs((double)dp_param_ptr(&m, m.nodes[g->writers[k]].p[0])[j * len + i]);
        }
        bad += fabs(s[j] - want) > 1e-9 * want;
    }
    CHECK(bad == 0);
    free(s);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

static void test_fpgm_naive(void) {
    dp_model m;
    if (!build_arch(&m, "resnet20", "B", 3, 8, 1.0)) return;
    dp_model_init_weights(&m, 4);
    dp_groups gs;
    groups_unprotected(&m, true, &gs);
    static const char *probe[] = {"layer2.1.conv1", "layer2.0.add"}; /* 1 and 4 writers */
    for (int t = 0; t < 2; t++) {
        const dp_channel_group *g = &gs.groups[gs.node_group[node_named(&m, probe[t])]];
        int n = g->channels;
        double *s = malloc(sizeof(double) * n), *want = calloc((size_t)n, sizeof(double));
        dp_error err = {0};
        CHECK(dp_score_fpgm(&m, g, s, &err) == DP_OK);
        for (int k = 0; k < g->n_writers; k++) {
            const dp_tensor_view *v = &m.params[m.nodes[g->writers[k]].p[0]];
            const float *w = dp_param_ptr(&m, m.nodes[g->writers[k]].p[0]);
            size_t len = v->numel / (size_t)n;
            for (int a = 0; a < n; a++)
                for (int b = 0; b < n; b++) {
                    double d2 = 0;
                    for (size_t i = 0; i < len; i++) {
                        double d = (double)w[a * len + i] - w[b * len + i];
                        d2 += d * d;
                    }
                    want[a] += sqrt(d2);
                }
        }
        double worst = 0;
        for (int a = 0; a < n; a++) worst = fmax(worst, fabs(s[a] - want[a]) / want[a]);
        CHECK_MSG(worst < 1e-9, "%s: fpgm rel diff %g", probe[t], worst);
        free(s), free(want);
    }
    dp_groups_free(&gs);
    dp_model_free(&m);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* FEC computed the obvious way: store every distance, sort, take the median, full c x c. */
static void fec_naive(const float *w, int n, int c, int kk, bool abs_mean, double *H) {
    double *means = malloc(sizeof(double) * n * c);
    for (int j = 0; j < n; j++)
        for (int a = 0; a < c; a++) {
            double acc = 0;
            for (int i = 0; i < kk; i++) {
                double v = w[(j * c + a) * kk + i];
                acc += abs_mean ? fabs(v) : v;
            }
            means[j * c + a] = acc / kk;
        }
    size_t N = (size_t)n * c * (c - 1) / 2, k = 0;
    double *d = malloc(sizeof(double) * N);
    for (int j = 0; j < n; j++)
        for (int a = 0; a < c; a++)
            for (int b = a + 1; b < c; b++) d[k++] = fabs(means[j * c + a] - means[j * c + b]);
    qsort(d, N, sizeof(double), cmp_double);
    double h = N % 2 ? d[N / 2] : 0.5 * (d[N / 2 - 1] + d[N / 2]);
    if (h == 0) h = 1e-12;
    for (int j = 0; j < n; j++) {
        double sum = 0;
        for (int a = 0; a < c; a++) {
            double row = 0;
            for (int b = 0; b < c; b++) {
                double x = means[j * c + a] - means[j * c + b];
                row += exp(-x * x / (2 * h * h));
            }
            sum += log(row / c);
        }
        H[j] = -sum / c;
    }
    free(means), free(d);
}

static void test_fec_cases(void) {
    /* 3 filters x 4 channels of 3x3 with constant kernels, so the channel means are exact */
    dp_model m;
    if (!build_small(&m, 4, 3, 3)) return;
    dp_groups gs;
    groups_unprotected(&m, false, &gs);
    int gi = gs.node_group[node_named(&m, "c1")];
    const double means[3][4] = {{0.3, 0.3, 0.3, 0.3}, {0, 0, 100, 100}, {0, 0.5, 1.0, 1.5}};
    float *w = weight_of(&m, "c1");
    for (int j = 0; j < 3; j++)
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 9; i++) w[(j * 4 + c) * 9 + i] = (float)means[j][c];
    double s[3];
    dp_fec_group_info info;
    dp_error err = {0};
    dp_fec_opts o = {false};
    CHECK(dp_score_fec(&m, &gs, gi, &o, s, &info, &err) == DP_OK);
    CHECK_CLOSE(s[0], 0.0, 1e-15, 0);     /* identical channels */
    CHECK_CLOSE(s[1], log(2.0), 1e-7, 0); /* two clusters 200 h apart (h = 0.5, float means) */
    CHECK(s[2] > 0 && s[2] < log(4.0));
    CHECK(!info.fell_back_to_l1 && info.n_entropy_writers == 1);
    CHECK_CLOSE(info.norm_entropy, (s[0] + s[1] + s[2]) / 3 / log(4.0), 1e-12, 0);
    double naive[3];
    fec_naive(w, 3, 4, 9, false, naive);
    for (int j = 0; j < 3; j++) CHECK_CLOSE(s[j], naive[j], 1e-12, 1e-12);
    /* ln c only when all pairs are far apart */
    double far[4] = {0, 100, 200, 300};
    CHECK_CLOSE(dp_fec_filter_entropy(far, 4, 1.0), log(4.0), 1e-12, 0);
    dp_groups_free(&gs);
    dp_model_free(&m);

    /* a random layer (even and odd pair counts) against the naive reference, both options */
    for (int cin = 5; cin <= 6; cin++) {
        if (!build_small(&m, cin, 7, 3)) return;
        dp_model_init_weights(&m, (uint64_t)cin);
        groups_unprotected(&m, false, &gs);
        gi = gs.node_group[node_named(&m, "c1")];
        for (int abs_mean = 0; abs_mean <= 1; abs_mean++) {
            double got[7], want[7];
            o.abs_mean = abs_mean;
            CHECK(dp_score_fec(&m, &gs, gi, &o, got, &info, &err) == DP_OK);
            fec_naive(weight_of(&m, "c1"), 7, cin, 9, abs_mean, want);
            double worst = 0;
            for (int j = 0; j < 7; j++) worst = fmax(worst, fabs(got[j] - want[j]));
            CHECK_MSG(worst < 1e-12, "cin %d abs %d: %g", cin, abs_mean, worst);
        }
        dp_groups_free(&gs);
        dp_model_free(&m);
    }
}

/* A conv reading one channel has no channel similarity: l1 is used, and said. */
static void test_fec_fallback(void) {
    dp_model m;
    if (!build_arch(&m, "fmnist_cnn", "A", 1, 28, 1.0)) return;
    dp_model_init_weights(&m, 9);
    dp_groups gs;
    groups_unprotected(&m, false, &gs);
    int gi = gs.node_group[node_named(&m, "conv1")];
    double s[32], l1[32];
    dp_fec_group_info info;
    dp_error err = {0};
    CHECK(dp_score_fec(&m, &gs, gi, NULL, s, &info, &err) == DP_OK);
    CHECK(dp_score_l1(&m, &gs.groups[gi], l1, &err) == DP_OK);
    CHECK(info.fell_back_to_l1 && info.n_entropy_writers == 0);
    CHECK(!memcmp(s, l1, sizeof s));
    dp_scores sc;
    CHECK(dp_weight_scores("fec", &m, &gs, 0, 0, &sc, &err) == DP_OK);
    CHECK(strstr(sc.note, "conv1") && strstr(sc.note, "l1"));
    dp_scores_free(&sc);
    CHECK(dp_weight_scores("l0", &m, &gs, 0, 0, &sc, &err) == DP_ERR_CONFIG);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* r_g = clip(beta (1 - u_g), 0, 0.9), beta bisected to a FLOPs target. */
static void test_fec_ratio_rule(void) {
    dp_model m;
    if (!build_arch(&m, "vgg11", "A", 3, 32, 0.5)) return;
    dp_model_init_weights(&m, 12);
    dp_groups gs;
    dp_error err = {0};
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    dp_scores sc;
    CHECK(dp_scores_alloc(&sc, &gs, &err) == DP_OK);
    dp_fec_group_info *info = calloc((size_t)gs.n_groups, sizeof *info);
    for (int g = 0; g < gs.n_groups; g++)
        if (gs.groups[g].prunable)
            CHECK(dp_score_fec(&m, &gs, g, NULL, sc.s[g], &info[g], &err) == DP_OK);
    dp_budget b;
    dp_budget_default(&b);
    b.kind = DP_BUDGET_FLOPS, b.target = 0.3;
    dp_plan p;
    double beta = 0;
    CHECK_MSG(dp_plan_fec_ratio_rule(&m, &gs, &sc, info, &b, &p, &beta, &err) == DP_OK, "%s",
              err.msg);
    CHECK_MSG(fabs(p.achieved - 0.3) < 0.02, "achieved %g", p.achieved);
    CHECK(beta > 0);
    CHECK_CLOSE(p.achieved, 1.0 - (double)p.flops_after / (double)p.flops_before, 1e-12, 0);
    for (int g = 0; g < gs.n_groups; g++) {
        if (!gs.groups[g].prunable) continue;
        double r = fmin(0.9, fmax(0.0, beta * (1 - info[g].norm_entropy)));
        CHECK(p.groups[g].n_keep == dp_keep_from_ratio(gs.groups[g].channels, r, &b));
    }
    dp_plan_free(&p);
    free(info);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

static void test_random(void) {
    double a[50], b[50], c[50], d[50];
    dp_score_random(7, 0, 3, 50, a);
    dp_score_random(7, 0, 3, 50, b);
    dp_score_random(8, 0, 3, 50, c);
    dp_score_random(7, 0, 4, 50, d);
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a) != 0 && memcmp(a, d, sizeof a) != 0);
    int in_range = 1;
    for (int j = 0; j < 50; j++) in_range &= a[j] >= 0 && a[j] < 1;
    CHECK(in_range);
}

int main(void) {
    test_norms_and_slim();
    test_residual_sum();
    test_fpgm_naive();
    test_fec_cases();
    test_fec_fallback();
    test_fec_ratio_rule();
    test_random();
    return dp_test_finish();
}
