/* CorrTopo's fold in surgery: removing a dead (constant, nonzero) channel leaves the eval-mode
 * logits unchanged, through a bias, a BN running mean (bias-free consumer), a linear after
 * flatten (column blocks), a linear after global pooling, a consumer that is itself pruned, a
 * max-pool (statistics of the pooled map) and a residual stream read by two consumers; with
 * compensation (ridge 0) a removed channel that is an affine combination of kept ones is
 * reconstructed exactly, and the default ridge stays close. Without the fold the logits move
 * (the checks can fail). Momentum is transformed like the weights; the bytes round-trip and
 * damage is caught. */
#include "dprune/prune.h"
#include "dprune/prune_criteria.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

enum { N_SAMPLES = 48 };

static int node_of(const dp_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return i;
    CHECK_MSG(0, "no node %s", name);
    return 0;
}

static float *param_of(const dp_model *m, const char *node, int which) {
    return dp_param_ptr(m, m->nodes[node_of(m, node)].p[which]);
}

/* Inputs in [0.1, 1]: with positive conv weights every pre-activation is positive, so ReLU is
 * the identity and affine relations between channels survive it. */
static float *inputs(const dp_model *m, int N) {
    size_t n = (size_t)N * m->in_c * m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * n);
    dp_fill_uniform(x, n, 77, 0.45f);
    for (size_t i = 0; i < n; i++) x[i] += 0.55f;
    return x;
}

/* Eval-mode forward of the first N inputs; returns the activations (caller frees). */
static void forward(const dp_model *m, const float *x, int N, dp_activations *a) {
    dp_error err = {0};
    CHECK(dp_activations_alloc(a, m, N, &err) == DP_OK);
    dp_forward_opts o = {0};
    dp_model_forward(m, a, x, N, &o);
}

static void logits(const dp_model *m, const float *x, int N, float *out) {
    dp_activations a;
    forward(m, x, N, &a);
    memcpy(out, a.out[dp_model_output_node(m)], sizeof(float) * (size_t)N * m->num_classes);
    dp_activations_free(&a, m);
}

/* A plan keeping every channel except removed[g][...] (-1 terminated lists per group). */
static void make_plan(const dp_model *m, const dp_groups *gs, const int *const *removed,
                      dp_plan *p) {
    dp_scores sc;
    dp_error err = {0};
    CHECK(dp_scores_alloc(&sc, gs, &err) == DP_OK);
    int *keep = malloc(sizeof(int) * (size_t)gs->n_groups);
    for (int g = 0; g < gs->n_groups; g++) {
        keep[g] = gs->groups[g].channels;
        if (!sc.s[g]) continue;
        for (int c = 0; c < gs->groups[g].channels; c++) sc.s[g][c] = 1;
        for (int j = 0; removed[g] && removed[g][j] >= 0; j++) {
            sc.s[g][removed[g][j]] = 0;
            keep[g]--;
        }
    }
    CHECK_MSG(dp_plan_from_scores(m, gs, &sc, keep, "corr", p, &err) == DP_OK, "%s", err.msg);
    free(keep);
    dp_scores_free(&sc);
}

/* The fold of every cut group from the statistics of each map its consumers read, computed
 * as calibration would (shift from the first samples, one sample at a time); per-position
 * statistics where dp_corr_map_positional says so, unless flat. */
static void make_fold_as(const dp_model *m, const dp_groups *gs, const dp_plan *p, const float *x,
                         bool compensate, double ridge, bool flat, dp_corr_fold *f) {
    dp_activations a;
    forward(m, x, N_SAMPLES, &a);
    dp_error err = {0};
    memset(f, 0, sizeof *f);
    for (int g = 0; g < gs->n_groups; g++) {
        if (p->groups[g].n_keep == p->groups[g].channels) continue;
        int maps[8];
        int n = dp_corr_read_maps(m, &gs->groups[g], maps, 8);
        for (int i = 0; i < n; i++) {
            const dp_node *r = &m->nodes[maps[i]];
            int C = r->c, P = r->h * r->w;
            bool pos = !flat && dp_corr_map_positional(m, &gs->groups[g], maps[i]);
            double *k = malloc(sizeof(double) * (size_t)C);
            double *stats =
                calloc(pos ? dp_corr_pos_stats_len(C, P) : dp_corr_stats_len(C), sizeof(double));
            double *ws = malloc(sizeof(double) * (size_t)C * P);
            const float *y = a.out[maps[i]];
            dp_corr_shift(8, C, P, y, k);
            for (int s = 0; s < N_SAMPLES; s++) {
                if (pos)
                    dp_corr_pos_accumulate_sample(C, P, y + (size_t)s * C * P, k, stats, ws);
                else
                    dp_corr_accumulate_sample(C, P, y + (size_t)s * C * P, k, stats, ws);
            }
            CHECK_MSG(dp_corr_fold_add(f, g, maps[i], C, P, pos, stats, k, &p->groups[g],
                                       compensate, ridge, &err) == DP_OK,
                      "%s", err.msg);
            free(k), free(stats), free(ws);
        }
    }
    dp_activations_free(&a, m);
}

static void make_fold(const dp_model *m, const dp_groups *gs, const dp_plan *p, const float *x,
                      bool compensate, double ridge, dp_corr_fold *f) {
    make_fold_as(m, gs, p, x, compensate, ridge, false, f);
}

/* Surgery with (fold) or without the fold; returns max relative change of the logits. */
static double logits_change(const dp_model *m, const dp_groups *gs, const dp_plan *p,
                            const dp_corr_fold *fold, dp_model *out) {
    dp_error err = {0};
    dp_surgery_opts o = fold ? dp_corr_surgery_opts(fold) : (dp_surgery_opts){0};
    CHECK_MSG(dp_surgery(m, gs, p, NULL, &o, out, &err) == DP_OK, "%s", err.msg);
    int N = 6;
    float *x = inputs(m, N);
    float *want = malloc(sizeof(float) * (size_t)N * m->num_classes);
    float *got = malloc(sizeof(float) * (size_t)N * m->num_classes);
    logits(m, x, N, want);
    logits(out, x, N, got);
    double d = dp_max_rel_diff(got, want, (size_t)N * m->num_classes);
    free(x), free(want), free(got);
    return d;
}

/* The end of a hand-built model: the last node add succeeded (last > 0) and the model
 * finishes; a failure is a failed check. */
static bool finish_model(dp_model *m, int last, dp_error *err) {
    CHECK_MSG(last > 0, "%s", err->msg);
    if (last <= 0) return false;
    dp_status st = dp_model_finish(m, err);
    CHECK_MSG(st == DP_OK, "%s", err->msg);
    return st == DP_OK;
}

/* Everything a test case allocated (f may be zeroed, in NULL). */
static void free_case(dp_corr_fold *f, float *in, dp_plan *p, dp_groups *gs, dp_model *m) {
    dp_corr_fold_free(f);
    free(in);
    dp_plan_free(p);
    dp_groups_free(gs);
    dp_model_free(m);
}

/* conv1 1x1 (bias) -> relu1 -> conv2 3x3 pad 0 (no bias) -> bn2 -> relu2 -> flatten -> fc.
 * conv1 channel 2 is dead at 0.8, channel 4 = 0.7 ch0 + 0.3 ch1 + 0.2; relu2 channel 3 is
 * dead at 0.6 (gamma 0, beta 0.6). */
static bool build_chain(dp_model *m) {
    dp_error err = {0};
    dp_model_begin(m, 4, 5, 5); /* 4 inputs: the 4 kept conv1 maps are independent */
    m->num_classes = 4;
    int x = dp_add_conv(m, 0, "conv1", 6, 1, 1, 0, true, &err);
    x = dp_add_relu(m, x, "relu1", &err);
    x = dp_add_conv(m, x, "conv2", 5, 3, 1, 0, false, &err);
    x = dp_add_bn(m, x, "bn2", &err);
    x = dp_add_relu(m, x, "relu2", &err);
    x = dp_add_flatten(m, x, "flatten", &err);
    x = dp_add_linear(m, x, "fc", 4, true, &err);
    if (!finish_model(m, x, &err)) return false;
    dp_model_init_weights(m, 5);
    float *w1 = param_of(m, "conv1", 0), *b1 = param_of(m, "conv1", 1);
    dp_fill_uniform(w1, 24, 3, 0.2f);
    for (int i = 0; i < 24; i++) w1[i] += 0.3f; /* positive: ReLU stays the identity */
    for (int c = 0; c < 6; c++) b1[c] = 0.1f * (float)(c + 1);
    for (int i = 0; i < 4; i++) w1[2 * 4 + i] = 0;
    b1[2] = 0.8f;
    for (int i = 0; i < 4; i++) w1[4 * 4 + i] = 0.7f * w1[i] + 0.3f * w1[4 + i];
    b1[4] = 0.7f * b1[0] + 0.3f * b1[1] + 0.2f;
    float *gamma = param_of(m, "bn2", 0), *beta = param_of(m, "bn2", 1);
    /* a large beta keeps relu2 mostly the identity: no kept map is all zero */
    for (int c = 0; c < 5; c++)
        gamma[c] = 0.8f + 0.1f * (float)c, beta[c] = 2.0f + 0.05f * (float)c;
    gamma[3] = 0, beta[3] = 0.6f;
    float *rm = dp_buffer_ptr(m, m->nodes[node_of(m, "bn2")].buf[0]);
    float *rv = dp_buffer_ptr(m, m->nodes[node_of(m, "bn2")].buf[1]);
    for (int c = 0; c < 5; c++) rm[c] = 0.2f * (float)c, rv[c] = 0.5f + 0.1f * (float)c;
    dp_fill_uniform(param_of(m, "fc", 1), 4, 9, 0.5f);
    return true;
}

static void build_groups(const dp_model *m, bool residual, dp_groups *gs) {
    dp_group_opts go;
    dp_group_opts_default(&go);
    go.protect_first_conv = false;
    go.residual = residual;
    dp_error err = {0};
    CHECK(dp_groups_build(m, &go, gs, &err) == DP_OK);
}

static void test_chain_dead(void) {
    dp_model m, out;
    if (!build_chain(&m)) return;
    dp_groups gs;
    build_groups(&m, false, &gs);
    int g1 = gs.node_group[node_of(&m, "conv1")], g2 = gs.node_group[node_of(&m, "conv2")];
    CHECK(dp_corr_read_map(&m, node_of(&m, "fc")) == node_of(&m, "relu2"));
    int bn = -1;
    CHECK(dp_corr_offset_of(&m, node_of(&m, "conv2"), &bn) == DP_CORR_OFFSET_BN_MEAN &&
          bn == node_of(&m, "bn2"));
    CHECK(dp_corr_offset_of(&m, node_of(&m, "fc"), &bn) == DP_CORR_OFFSET_BIAS);
    static const int r1[] = {2, -1}, r2[] = {3, -1};
    const int *removed[8] = {0};
    removed[g1] = r1, removed[g2] = r2;
    dp_plan p;
    make_plan(&m, &gs, removed, &p);
    float *x = inputs(&m, N_SAMPLES);
    dp_corr_fold f;
    make_fold(&m, &gs, &p, x, false, 0, &f);
    CHECK(f.n_maps == 2 && f.maps[0].B == NULL);
    /* conv2 reads relu1 with a 3x3 kernel: one offset per channel; fc reads relu2 column by
     * column: one per position */
    CHECK(f.n_maps == 2 && !f.maps[0].a_pos && f.maps[1].a_pos && f.maps[1].P == 9);
    CHECK_CLOSE(f.maps[0].a[0], 0.8, 1e-6, 0);
    CHECK_CLOSE(f.maps[1].a[0], 0.6, 1e-6, 0);
    for (int j = 0; j < 9 && f.n_maps == 2 && f.maps[1].a_pos; j++)
        CHECK_CLOSE(f.maps[1].a_pos[j], 0.6, 1e-6, 0);
    double d = logits_change(&m, &gs, &p, &f, &out);
    CHECK_MSG(d < 1e-5, "dead channels folded: logits moved by %g", d);
    dp_model_free(&out);
    d = logits_change(&m, &gs, &p, NULL, &out);
    CHECK_MSG(d > 1e-2, "without the fold the logits should move (%g)", d);
    dp_model_free(&out);
    dp_corr_fold_free(&f);

    /* compensation, ridge 0: the affine channel 4 and the dead channel are rebuilt exactly */
    static const int r1c[] = {2, 4, -1};
    removed[g1] = r1c;
    dp_plan_free(&p);
    make_plan(&m, &gs, removed, &p);
    make_fold(&m, &gs, &p, x, true, 0.0, &f);
    CHECK(f.n_maps == 2 && f.maps[0].B != NULL && f.maps[0].nd == 2);
    d = logits_change(&m, &gs, &p, &f, &out);
    CHECK_MSG(d < 2e-5, "compensation (ridge 0): logits moved by %g", d);
    dp_model_free(&out);
    dp_corr_fold_free(&f);
    make_fold(&m, &gs, &p, x, false, 0, &f);
    d = logits_change(&m, &gs, &p, &f, &out);
    CHECK_MSG(d > 1e-3, "the mean alone cannot rebuild a live channel (%g)", d);
    dp_model_free(&out);
    dp_corr_fold_free(&f);
    make_fold(&m, &gs, &p, x, true, DP_CORR_RIDGE_DEFAULT, &f);
    d = logits_change(&m, &gs, &p, &f, &out);
    CHECK_MSG(d < 1e-2, "compensation (default ridge): logits moved by %g", d);
    dp_model_free(&out);

    /* momentum follows the same affine map: tagged momentum == parameters stays so */
    dp_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.momentum = 0.9;
    dp_sgd opt;
    dp_error err = {0};
    CHECK(dp_sgd_init(&opt, &m, &tc, &err) == DP_OK);
    memcpy(opt.momentum, m.param_data, sizeof(float) * m.n_param_floats);
    dp_surgery_opts o = dp_corr_surgery_opts(&f);
    CHECK(dp_surgery(&m, &gs, &p, &opt, &o, &out, &err) == DP_OK);
    CHECK(memcmp(opt.momentum, out.param_data, sizeof(float) * out.n_param_floats) == 0);
    dp_sgd_free(&opt);
    dp_model_free(&out);

    /* bytes: round trip, then damage */
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK(dp_corr_fold_serialize(&f, &buf, &len, &err) == DP_OK);
    dp_corr_fold back;
    CHECK(dp_corr_fold_deserialize(buf, len, &back, &err) == DP_OK);
    CHECK(back.n_maps == f.n_maps);
    for (int i = 0; i < back.n_maps && i < f.n_maps; i++) {
        const dp_corr_fold_map *a = &f.maps[i], *b = &back.maps[i];
        CHECK(a->group == b->group && a->node == b->node && a->nk == b->nk && a->nd == b->nd);
        CHECK(!memcmp(a->a, b->a, sizeof(double) * (size_t)a->nd));
        CHECK(a->P == b->P && (a->a_pos == NULL) == (b->a_pos == NULL));
        if (a->a_pos && b->a_pos)
            CHECK(!memcmp(a->a_pos, b->a_pos, sizeof(double) * (size_t)a->nd * (size_t)a->P));
        CHECK((a->B == NULL) == (b->B == NULL));
        if (a->B && b->B)
            CHECK(!memcmp(a->B, b->B, sizeof(double) * (size_t)a->nk * (size_t)a->nd));
    }
    dp_corr_fold_free(&back);
    buf[len / 2] ^= 0x10;
    CHECK(dp_corr_fold_deserialize(buf, len, &back, &err) != DP_OK);
    CHECK(dp_corr_fold_deserialize(buf, len - 9, &back, &err) != DP_OK);
    free(buf);
    free_case(&f, x, &p, &gs, &m);
}

/* conv1 1x1 (bias) -> relu1 -> maxpool 2 -> conv2 1x1 (bias) -> gap -> fc. conv1 channel 1 is
 * dead at 0.5 and channel 3 = 2 x channel 0 (a positive scale commutes with max, so it is
 * still 2 x channel 0 after the pool); conv2 channel 2 is dead at 0.4 (zero weights). */
static void test_pool_and_gap(void) {
    dp_error err = {0};
    dp_model m, out;
    dp_model_begin(&m, 4, 6, 6);
    m.num_classes = 3;
    int x = dp_add_conv(&m, 0, "conv1", 5, 1, 1, 0, true, &err);
    x = dp_add_relu(&m, x, "relu1", &err);
    x = dp_add_pool(&m, DP_OP_MAXPOOL, x, "pool1", 2, 2, 0, &err);
    x = dp_add_conv(&m, x, "conv2", 4, 1, 1, 0, true, &err);
    x = dp_add_gap(&m, x, "gap", &err);
    x = dp_add_linear(&m, x, "fc", 3, true, &err);
    if (!finish_model(&m, x, &err)) return;
    dp_model_init_weights(&m, 8);
    float *w1 = param_of(&m, "conv1", 0), *b1 = param_of(&m, "conv1", 1);
    dp_fill_uniform(w1, 20, 4, 0.2f);
    for (int i = 0; i < 20; i++) w1[i] += 0.3f;
    for (int c = 0; c < 5; c++) b1[c] = 0.05f * (float)c;
    for (int i = 0; i < 4; i++) w1[4 + i] = 0, w1[12 + i] = 2 * w1[i];
    b1[1] = 0.5f, b1[3] = 2 * b1[0];
    float *w2 = param_of(&m, "conv2", 0), *b2 = param_of(&m, "conv2", 1);
    dp_fill_uniform(b2, 4, 6, 0.3f);
    memset(w2 + 2 * 5, 0, sizeof(float) * 5), b2[2] = 0.4f;
    dp_groups gs;
    build_groups(&m, false, &gs);
    CHECK(dp_corr_read_map(&m, node_of(&m, "conv2")) == node_of(&m, "pool1"));
    CHECK(dp_corr_read_map(&m, node_of(&m, "fc")) == node_of(&m, "gap"));
    static const int r1[] = {1, 3, -1}, r2[] = {2, -1};
    const int *removed[8] = {0};
    removed[gs.node_group[node_of(&m, "conv1")]] = r1;
    removed[gs.node_group[node_of(&m, "conv2")]] = r2;
    dp_plan p;
    make_plan(&m, &gs, removed, &p);
    float *in = inputs(&m, N_SAMPLES);
    dp_corr_fold f;
    make_fold(&m, &gs, &p, in, true, 0.0, &f);
    double d = logits_change(&m, &gs, &p, &f, &out);
    CHECK_MSG(d < 2e-5, "through max-pool and global pooling: logits moved by %g", d);
    dp_model_free(&out);
    free_case(&f, in, &p, &gs, &m);
}

/* A residual stream read by two consumers at two different maps:
 * conv_a 1x1 -> relu_a -> conv_b 1x1 -> add(relu_a, conv_b) -> relu_c -> conv_d 1x1 -> gap
 * -> fc. Stream channel 1 is 0.5 after relu_a (conv_a) and 0.5 + 0.3 after relu_c (conv_b's
 * row 1 is zero with bias 0.3): conv_b folds 0.5 in, conv_d 0.8. */
static void test_residual(void) {
    dp_error err = {0};
    dp_model m, out;
    dp_model_begin(&m, 2, 4, 4);
    m.num_classes = 3;
    int a = dp_add_conv(&m, 0, "conv_a", 4, 1, 1, 0, true, &err);
    a = dp_add_relu(&m, a, "relu_a", &err);
    int b = dp_add_conv(&m, a, "conv_b", 4, 1, 1, 0, true, &err);
    int x = dp_add_add(&m, a, b, "add", &err);
    x = dp_add_relu(&m, x, "relu_c", &err);
    x = dp_add_conv(&m, x, "conv_d", 3, 1, 1, 0, true, &err);
    x = dp_add_gap(&m, x, "gap", &err);
    x = dp_add_linear(&m, x, "fc", 3, true, &err);
    if (!finish_model(&m, x, &err)) return;
    dp_model_init_weights(&m, 9);
    float *wa = param_of(&m, "conv_a", 0), *ba = param_of(&m, "conv_a", 1);
    float *wb = param_of(&m, "conv_b", 0), *bb = param_of(&m, "conv_b", 1);
    for (int i = 0; i < 8; i++) wa[i] = fabsf(wa[i]) + 0.1f;
    for (int i = 0; i < 16; i++) wb[i] = fabsf(wb[i]) + 0.1f;
    wa[2] = wa[3] = 0, ba[1] = 0.5f;
    for (int i = 0; i < 4; i++) wb[4 + i] = 0;
    bb[1] = 0.3f;
    dp_groups gs;
    build_groups(&m, true, &gs);
    int g = gs.node_group[node_of(&m, "conv_a")];
    CHECK(gs.groups[g].prunable && gs.groups[g].residual);
    int maps[4];
    CHECK(dp_corr_read_maps(&m, &gs.groups[g], maps, 4) == 2);
    static const int r[] = {1, -1};
    const int *removed[8] = {0};
    removed[g] = r;
    dp_plan p;
    make_plan(&m, &gs, removed, &p);
    float *in = inputs(&m, N_SAMPLES);
    dp_corr_fold f;
    make_fold(&m, &gs, &p, in, false, 0, &f);
    CHECK(f.n_maps == 2);
    if (f.n_maps == 2) {
        CHECK_CLOSE(f.maps[0].a[0], 0.5, 1e-6, 0);
        CHECK_CLOSE(f.maps[1].a[0], 0.8, 1e-6, 0);
    }
    double d = logits_change(&m, &gs, &p, &f, &out);
    CHECK_MSG(d < 1e-5, "residual stream: logits moved by %g", d);
    dp_model_free(&out);
    d = logits_change(&m, &gs, &p, NULL, &out);
    CHECK_MSG(d > 1e-2, "residual stream without the fold: logits should move (%g)", d);
    dp_model_free(&out);
    free_case(&f, in, &p, &gs, &m);
}

/* conv1 1x1 (bias) -> relu1 -> flatten -> fc. Input channel 1 is the same pattern in every
 * sample, and conv1 channel 2 copies it (+ 0.1): a map that varies over positions but not over
 * samples. A linear reads it column by column, so its per-position means rebuild it exactly;
 * one mean per channel cannot. */
static void test_positional(void) {
    dp_error err = {0};
    dp_model m, out;
    dp_model_begin(&m, 2, 4, 4);
    m.num_classes = 3;
    int x = dp_add_conv(&m, 0, "conv1", 3, 1, 1, 0, true, &err);
    x = dp_add_relu(&m, x, "relu1", &err);
    x = dp_add_flatten(&m, x, "flatten", &err);
    x = dp_add_linear(&m, x, "fc", 3, true, &err);
    if (!finish_model(&m, x, &err)) return;
    dp_model_init_weights(&m, 4);
    float *w1 = param_of(&m, "conv1", 0), *b1 = param_of(&m, "conv1", 1);
    w1[4] = 0, w1[5] = 1, b1[2] = 0.1f; /* channel 2 = input channel 1 + 0.1 */
    float *in = inputs(&m, N_SAMPLES);
    for (int n = 0; n < N_SAMPLES; n++)
        for (int p = 0; p < 16; p++) in[((size_t)n * 2 + 1) * 16 + p] = 0.2f + 0.05f * (float)p;
    dp_groups gs;
    build_groups(&m, false, &gs);
    int g = gs.node_group[node_of(&m, "conv1")];
    CHECK(dp_corr_map_positional(&m, &gs.groups[g], node_of(&m, "relu1")));
    static const int r[] = {2, -1};
    const int *removed[8] = {0};
    removed[g] = r;
    dp_plan p;
    make_plan(&m, &gs, removed, &p);
    dp_corr_fold f;
    make_fold(&m, &gs, &p, in, false, 0, &f);
    CHECK(f.n_maps == 1 && f.maps[0].a_pos);
    /* compared on the calibration inputs, which carry the pattern */
    dp_surgery_opts o = dp_corr_surgery_opts(&f);
    CHECK(dp_surgery(&m, &gs, &p, NULL, &o, &out, &err) == DP_OK);
    float want[6 * 3], got[6 * 3];
    logits(&m, in, 6, want);
    logits(&out, in, 6, got);
    double d = dp_max_rel_diff(got, want, 18);
    CHECK_MSG(d < 1e-5, "per-position offsets: logits moved by %g", d);
    dp_model_free(&out);
    dp_corr_fold_free(&f);
    make_fold_as(&m, &gs, &p, in, false, 0, true, &f);
    o = dp_corr_surgery_opts(&f);
    CHECK(dp_surgery(&m, &gs, &p, NULL, &o, &out, &err) == DP_OK);
    logits(&out, in, 6, got);
    d = dp_max_rel_diff(got, want, 18);
    CHECK_MSG(d > 1e-3, "one mean per channel should not rebuild the pattern (%g)", d);
    dp_model_free(&out);
    free_case(&f, in, &p, &gs, &m);
}

int main(void) {
    test_chain_dead();
    test_positional();
    test_pool_and_gap();
    test_residual();
    return dp_test_finish();
}
