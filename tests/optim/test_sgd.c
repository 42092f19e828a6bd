/* dp_sgd_step against hand-computed torch.optim.SGD updates (dampening 0) on 3-element tensors:
 * plain SGD, momentum (the first step initialises the buffer with the gradient), Nesterov,
 * weight decay, both together over two steps, and no_decay_bn_bias exempting BN parameters and
 * biases (params[].no_decay_candidate) from weight decay; a step made of ranges
 * (dp_sgd_step_range, the sharded route's step) gives the full step's bits. */
#include "dprune/optim.h"
#include "testutil.h"
#include <string.h>

#define TOL 1e-6

static const float P0[3] = {1.0f, -2.0f, 0.5f};
static const float G1[3] = {0.1f, 0.2f, -0.3f};
static const float G2[3] = {0.2f, -0.1f, 0.0f};

/* input 1x1x1 -> fc (3 outputs, bias) -> bn: four 3-element tensors, fc.weight [3,1] the only
 * one that is not a no-decay candidate. */
static void build(dp_model *m) {
    dp_error err = {0};
    dp_model_begin(m, 1, 1, 1);
    m->num_classes = 3;
    int x = dp_add_linear(m, 0, "fc", 3, true, &err);
    x = dp_add_bn(m, x, "bn", &err);
    CHECK_MSG(x > 0, "%s", err.msg);
    CHECK(dp_model_finish(m, &err) == DP_OK);
    CHECK(m->n_params == 4);
    for (int p = 0; p < m->n_params; p++) CHECK(m->params[p].numel == 3);
}

static int find_param(const dp_model *m, const char *name) {
    for (int p = 0; p < m->n_params; p++)
        if (!strcmp(m->params[p].name, name)) return p;
    CHECK_MSG(0, "no parameter %s", name);
    return 0;
}

/* every parameter tensor = P0, every gradient = g */
static void set_all(dp_model *m, const float *p0, const float *g) {
    for (int p = 0; p < m->n_params; p++) {
        if (p0) memcpy(dp_param_ptr(m, p), p0, sizeof(float) * 3);
        memcpy(dp_grad_ptr(m, p), g, sizeof(float) * 3);
    }
}

static void config(dp_train_config *tc, double momentum, bool nesterov, double wd, bool no_decay) {
    memset(tc, 0, sizeof *tc);
    tc->lr = 0.1;
    tc->momentum = momentum;
    tc->nesterov = nesterov;
    tc->weight_decay = wd;
    tc->no_decay_bn_bias = no_decay;
    snprintf(tc->schedule, sizeof tc->schedule, "constant");
}

static void expect(const dp_model *m, int p, const float *want, const char *what) {
    const float *got = dp_param_ptr(m, p);
    for (int j = 0; j < 3; j++)
        CHECK_MSG(fabs((double)got[j] - want[j]) <= TOL, "%s: %s[%d] = %.9g, want %.9g", what,
                  m->params[p].name, j, (double)got[j], (double)want[j]);
}

/* Two steps with gradients G1 then G2 from P0 (every tensor), lr 0.1; checks every tensor
 * against want1 after the first step and want2 after the second. */
static void two_steps(double momentum, bool nesterov, double wd, const float *want1,
                      const float *want2, const char *what) {
    dp_model m;
    dp_train_config tc;
    dp_sgd o;
    dp_error err = {0};
    build(&m);
    config(&tc, momentum, nesterov, wd, false);
    CHECK(dp_sgd_init(&o, &m, &tc, &err) == DP_OK);
    set_all(&m, P0, G1);
    dp_sgd_step(&o, &m, tc.lr);
    for (int p = 0; p < m.n_params; p++) {
        expect(&m, p, want1, what);
        /* the gradient is read, not modified */
        for (int j = 0; j < 3; j++) CHECK(dp_grad_ptr(&m, p)[j] == G1[j]);
    }
    set_all(&m, NULL, G2);
    dp_sgd_step(&o, &m, tc.lr);
    for (int p = 0; p < m.n_params; p++) expect(&m, p, want2, what);
    dp_sgd_free(&o);
    dp_model_free(&m);
}

/* three steps, once whole and once as ranges of 1..7 floats that cut across tensors and the
 * padding between them: the same bits in parameters and momentum */
static void test_ranges_match_full_step(void) {
    dp_model a, b;
    dp_train_config tc;
    dp_sgd oa, ob;
    dp_error err = {0};
    build(&a), build(&b);
    config(&tc, 0.9, true, 0.01, true);
    CHECK(dp_sgd_init(&oa, &a, &tc, &err) == DP_OK && dp_sgd_init(&ob, &b, &tc, &err) == DP_OK);
    set_all(&a, P0, G1);
    set_all(&b, P0, G1);
    const size_t n = a.n_param_floats;
    CHECK(n > 12); /* there is padding between the 3-float tensors */
    for (int step = 0; step < 3; step++) {
        for (int p = 0; p < a.n_params; p++) {
            memcpy(dp_grad_ptr(&a, p), step % 2 ? G2 : G1, sizeof(float) * 3);
            memcpy(dp_grad_ptr(&b, p), step % 2 ? G2 : G1, sizeof(float) * 3);
        }
        dp_sgd_step(&oa, &a, tc.lr);
        for (size_t lo = 0, len = 1; lo < n; lo += len, len = len % 7 + 1) {
            size_t hi = lo + len < n ? lo + len : n;
            dp_sgd_step_range(&ob, &b, tc.lr, b.grad_data + lo, lo, hi);
        }
        dp_sgd_end_step(&ob);
        CHECK(memcmp(a.param_data, b.param_data, sizeof(float) * n) == 0);
        for (int p = 0; p < a.n_params; p++)
            CHECK(memcmp(oa.momentum + a.params[p].offset, ob.momentum + b.params[p].offset,
                         sizeof(float) * 3) == 0);
    }
    CHECK(ob.started);
    dp_sgd_free(&oa), dp_sgd_free(&ob);
    dp_model_free(&a), dp_model_free(&b);
}

int main(void) {
    /* plain: p -= lr g */
    {
        const float w1[3] = {0.99f, -2.02f, 0.53f};
        const float w2[3] = {0.97f, -2.01f, 0.53f};
        two_steps(0.0, false, 0.0, w1, w2, "plain");
    }
    /* momentum 0.9: buf = g at the first step (no 0.1 g), then buf = 0.9 buf + g2 =
     * {0.29, 0.08, -0.27} */
    {
        const float w1[3] = {0.99f, -2.02f, 0.53f};
        const float w2[3] = {0.961f, -2.028f, 0.557f};
        two_steps(0.9, false, 0.0, w1, w2, "momentum");
    }
    /* Nesterov: step = g + 0.9 buf; first 1.9 g, then G2 + 0.9 {0.29, 0.08, -0.27} =
     * {0.461, -0.028, -0.243} */
    {
        const float w1[3] = {0.981f, -2.038f, 0.557f};
        const float w2[3] = {0.9349f, -2.0352f, 0.5813f};
        two_steps(0.9, true, 0.0, w1, w2, "nesterov");
    }
    /* weight decay 0.01 alone: d = g + 0.01 p = {0.11, 0.18, -0.295}; then
     * G2 + 0.01 p1 = {0.20989, -0.12018, 0.005295} */
    {
        const float w1[3] = {0.989f, -2.018f, 0.5295f};
        const float w2[3] = {0.968011f, -2.005982f, 0.5289705f};
        two_steps(0.0, false, 0.01, w1, w2, "weight decay");
    }
    /* weight decay inside the momentum buffer: buf2 = 0.9 {0.11, 0.18, -0.295} +
     * {0.20989, -0.12018, 0.005295} = {0.30889, 0.04182, -0.260205} */
    {
        const float w1[3] = {0.989f, -2.018f, 0.5295f};
        const float w2[3] = {0.958111f, -2.022182f, 0.5555205f};
        two_steps(0.9, false, 0.01, w1, w2, "momentum + weight decay");
    }
    /* the momentum buffer holds g (+ wd p) after the first step */
    {
        dp_model m;
        dp_train_config tc;
        dp_sgd o;
        dp_error err = {0};
        build(&m);
        config(&tc, 0.9, true, 0.01, false);
        CHECK(dp_sgd_init(&o, &m, &tc, &err) == DP_OK);
        CHECK(!o.started);
        set_all(&m, P0, G1);
        dp_sgd_step(&o, &m, tc.lr);
        CHECK(o.started);
        for (int p = 0; p < m.n_params; p++)
            for (int j = 0; j < 3; j++)
                CHECK_CLOSE(o.momentum[m.params[p].offset + j], G1[j] + 0.01f * P0[j], TOL, 0);
        dp_sgd_free(&o);
        dp_model_free(&m);
    }
    /* no_decay_bn_bias: BN gamma/beta and biases are not decayed, weights are */
    for (int flag = 0; flag < 2; flag++) {
        dp_model m;
        dp_train_config tc;
        dp_sgd o;
        dp_error err = {0};
        build(&m);
        config(&tc, 0.0, false, 0.01, flag == 1);
        CHECK(dp_sgd_init(&o, &m, &tc, &err) == DP_OK);
        const int w = find_param(&m, "fc.weight");
        CHECK(!m.params[w].no_decay_candidate);
        CHECK(m.params[find_param(&m, "fc.bias")].no_decay_candidate);
        CHECK(m.params[find_param(&m, "bn.weight")].no_decay_candidate);
        CHECK(m.params[find_param(&m, "bn.bias")].no_decay_candidate);
        for (int p = 0; p < m.n_params; p++)
            CHECK(o.decay[p] == (flag && m.params[p].no_decay_candidate ? 0.0 : 0.01));
        set_all(&m, P0, G1);
        dp_sgd_step(&o, &m, tc.lr);
        const float decayed[3] = {0.989f, -2.018f, 0.5295f};
        const float plain[3] = {0.99f, -2.02f, 0.53f};
        for (int p = 0; p < m.n_params; p++)
            expect(&m, p, p == w || !flag ? decayed : plain,
                   flag ? "no_decay_bn_bias on" : "no_decay_bn_bias off");
        dp_sgd_free(&o);
        dp_model_free(&m);
    }
    test_ranges_match_full_step();
    return dp_test_finish();
}
