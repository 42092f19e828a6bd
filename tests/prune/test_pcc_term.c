/* The PCC training term on a network: which maps it covers (the post-ReLU map of every prunable
 * group, one-pixel maps left out), the full training loss CE - lambda * mean pcc against central
 * finite differences w.r.t. every parameter tensor (BN in train mode, so the term's gradient
 * also goes through the batch statistics), the PCC part alone the same way, the term within
 * [-lambda, 0] (and [0, -lambda] for a negative lambda, with the gradient negated), the value
 * without gradient, independence of the thread count, and the error for a model without maps. */
#include "dprune/model.h"
#include "dprune/nn.h"
#include "dprune/prune.h"
#include "testutil.h"
#include <omp.h>
#include <string.h>

#define N 3
#define K 3

typedef struct {
    dp_model m;
    dp_groups gs;
    dp_activations a;
    float x[N * 2 * 8 * 8];
    int32_t y[N];
    dp_forward_opts o;
    int maps[4]; /* r1, r2, r3 (12 channels on 2x2 pixels: the P < C route), r4 (1x1) */
} net;

static void build(net *t) {
    dp_error err = {0};
    dp_model *m = &t->m;
    dp_model_begin(m, 2, 8, 8);
    m->num_classes = K;
    int x = dp_add_conv(m, 0, "c1", 4, 3, 1, 1, false, &err);
    x = dp_add_bn(m, x, "bn1", &err);
    x = t->maps[0] = dp_add_relu(m, x, "r1", &err);
    x = dp_add_conv(m, x, "c2", 6, 3, 1, 1, true, &err);
    x = t->maps[1] = dp_add_relu(m, x, "r2", &err);
    x = dp_add_pool(m, DP_OP_MAXPOOL, x, "mp", 2, 2, 0, &err);
    x = dp_add_conv(m, x, "c3", 12, 3, 2, 1, false, &err);
    x = dp_add_bn(m, x, "bn3", &err);
    x = t->maps[2] = dp_add_relu(m, x, "r3", &err);
    x = dp_add_gap(m, x, "gap", &err);
    x = dp_add_linear(m, x, "fc1", 8, true, &err);
    x = t->maps[3] = dp_add_relu(m, x, "r4", &err);
    x = dp_add_linear(m, x, "fc", K, true, &err);
    CHECK_MSG(x > 0, "%s", err.msg);
    CHECK(dp_model_finish(m, &err) == DP_OK);
    dp_model_init_weights(m, 5);
    for (int p = 0; p < m->n_params; p++) /* non-trivial BN */
        if (strstr(m->params[p].name, "bn")) {
            float *w = dp_param_ptr(m, p);
            dp_fill_uniform(w, m->params[p].numel, 100 + p, 0.5f);
            if (strstr(m->params[p].name, "weight"))
                for (size_t j = 0; j < m->params[p].numel; j++) w[j] += 1.0f;
        }
    dp_group_opts go;
    dp_group_opts_default(&go);
    go.protect_first_conv = false;
    CHECK_MSG(dp_groups_build(m, &go, &t->gs, &err) == DP_OK, "%s", err.msg);
    CHECK(dp_activations_alloc(&t->a, m, N, &err) == DP_OK);
    dp_fill_uniform(t->x, sizeof t->x / sizeof t->x[0], 3, 1.0f);
    for (int i = 0; i < N; i++) t->y[i] = (int32_t)((2 * i + 1) % K);
    t->o = (dp_forward_opts){.train = true, .seed = 9};
}

static void drop(net *t) {
    dp_activations_free(&t->a, &t->m);
    dp_groups_free(&t->gs);
    dp_model_free(&t->m);
}

/* The training loss (with_ce: CE + term, else the term alone), as the trainer computes it with
 * one rank and global batch N; with backward, its gradient accumulates into grad_data. */
static double loss_of(net *t, dp_pcc_term *term, bool with_ce, bool backward) {
    dp_model *m = &t->m;
    dp_model_forward(m, &t->a, t->x, N, &t->o);
    int last = dp_model_output_node(m);
    double scale = 1.0 / N, ce = 0;
    memset(t->a.dout[last], 0, sizeof(float) * N * K);
    if (with_ce)
        ce = softmax_xent_forward_backward(N, K, t->a.out[last], t->y, 0.0f, (float)scale,
                                           t->a.dout[last]) /
             N;
    double sum = backward ? dp_pcc_term_apply(term, m, &t->a, N, scale)
                          : dp_pcc_term_value(term, m, &t->a, N);
    if (backward) dp_model_backward(m, &t->a, N, &t->o);
    return ce - term->lambda * scale * sum;
}

/* every parameter tensor, a few entries each; ReLU and max-pool have kinks, so an entry fails
 * only if two step sizes both disagree (as test_model_grad) */
static void gradcheck(net *t, dp_pcc_term *term, bool with_ce, const char *what) {
    dp_model *m = &t->m;
    memset(m->grad_data, 0, sizeof(float) * m->n_param_floats);
    loss_of(t, term, with_ce, true);
    float *analytic = dp_alloc_floats(m->n_param_floats);
    memcpy(analytic, m->grad_data, sizeof(float) * m->n_param_floats);
    int bad = 0, checked = 0;
    double gmax = 0;
    const float steps[2] = {1e-3f, 3e-4f};
    for (int p = 0; p < m->n_params; p++)
        for (size_t j = 0; j < m->params[p].numel; j += 1 + m->params[p].numel / 6) {
            float *w = dp_param_ptr(m, p) + j, keep = *w;
            double g = analytic[m->params[p].offset + j], fd[2];
            int agree = 0;
            for (int k = 0; k < 2; k++) {
                *w = keep + steps[k];
                double lp = loss_of(t, term, with_ce, false);
                *w = keep - steps[k];
                double lm = loss_of(t, term, with_ce, false);
                *w = keep;
                fd[k] = (lp - lm) / (2.0 * steps[k]);
                agree |= fabs(fd[k] - g) <= 1e-3 + 3e-2 * fabs(fd[k]);
            }
            if (fabs(g) > gmax) gmax = fabs(g);
            checked++;
            if (!agree) {
                bad++;
                fprintf(stderr, "  %s: %s[%zu]: analytic %.6g fd %.6g / %.6g\n", what,
                        m->params[p].name, j, g, fd[0], fd[1]);
            }
        }
    CHECK_MSG(bad == 0, "%s: %d of %d gradient entries disagree with finite differences", what, bad,
              checked);
    CHECK(checked > 40);
    CHECK_MSG(gmax > 1e-2, "%s: gradient too small to test anything (%.3g)", what, gmax);
    dp_free(analytic);
}

static void test_maps_and_gradients(void) {
    net t;
    build(&t);
    dp_error err = {0};
    dp_pcc_term term;
    CHECK_MSG(dp_pcc_term_init(&term, &t.m, &t.gs, 4.0, N, &err) == DP_OK, "%s", err.msg);
    CHECK(term.n_maps == 3);
    for (int j = 0; j < 3 && j < term.n_maps; j++) CHECK(term.nodes[j] == t.maps[j]);

    gradcheck(&t, &term, false, "PCC term alone");
    gradcheck(&t, &term, true, "CE + PCC");

    /* the term lies in [-lambda, 0]: mean pcc in [0, 1], and not trivially 0 here */
    dp_model_forward(&t.m, &t.a, t.x, N, &t.o);
    double sum = dp_pcc_term_value(&term, &t.m, &t.a, N);
    double value = -term.lambda * sum / N;
    CHECK_MSG(value <= 0 && value >= -term.lambda && value < -1e-3, "term %.6g", value);
    for (int i = 0; i < term.n_maps * N; i++) CHECK(term.values[i] >= 0 && term.values[i] <= 1);

    /* apply returns what value returns; a negative lambda flips the gradient and the sign */
    dp_model_forward(&t.m, &t.a, t.x, N, &t.o);
    CHECK(dp_pcc_term_apply(&term, &t.m, &t.a, N, 1.0 / N) == sum);
    size_t n1 = (size_t)N * 4 * 64;
    float *d1 = dp_alloc_floats(n1);
    memcpy(d1, t.a.dout[t.maps[0]], sizeof(float) * n1);
    dp_pcc_term neg;
    CHECK(dp_pcc_term_init(&neg, &t.m, &t.gs, -4.0, N, &err) == DP_OK);
    dp_model_forward(&t.m, &t.a, t.x, N, &t.o);
    double nsum = dp_pcc_term_apply(&neg, &t.m, &t.a, N, 1.0 / N);
    CHECK(nsum == sum && -neg.lambda * nsum / N >= 0 && -neg.lambda * nsum / N <= -neg.lambda);
    int flipped = 1;
    for (size_t i = 0; i < n1; i++) flipped &= t.a.dout[t.maps[0]][i] == -d1[i];
    CHECK(flipped);
    dp_pcc_term_free(&neg);

    /* the thread count changes nothing: every (map, sample) pair is computed alone */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dp_pcc_term one;
    CHECK(dp_pcc_term_init(&one, &t.m, &t.gs, 4.0, N, &err) == DP_OK);
    omp_set_num_threads(threads);
    dp_model_forward(&t.m, &t.a, t.x, N, &t.o);
    CHECK(dp_pcc_term_apply(&one, &t.m, &t.a, N, 1.0 / N) == sum);
    CHECK(memcmp(d1, t.a.dout[t.maps[0]], sizeof(float) * n1) == 0);
    dp_pcc_term_free(&one);

    dp_free(d1);
    dp_pcc_term_free(&term);
    drop(&t);
}

static void test_no_maps(void) {
    dp_error err = {0};
    dp_model m;
    dp_model_begin(&m, 1, 4, 4);
    m.num_classes = K;
    int x = dp_add_linear(&m, 0, "fc1", 8, true, &err);
    x = dp_add_relu(&m, x, "r1", &err);
    x = dp_add_linear(&m, x, "fc", K, true, &err);
    CHECK(x > 0 && dp_model_finish(&m, &err) == DP_OK);
    dp_groups gs;
    dp_group_opts go;
    dp_group_opts_default(&go);
    CHECK(dp_groups_build(&m, &go, &gs, &err) == DP_OK);
    dp_pcc_term term;
    CHECK(dp_pcc_term_init(&term, &m, &gs, 1.0, 4, &err) == DP_ERR_CONFIG);
    CHECK(strstr(err.msg, "post-ReLU map") != NULL);
    CHECK(term.nodes == NULL && term.n_maps == 0);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

int main(void) {
    test_maps_and_gradients();
    test_no_maps();
    return dp_test_finish();
}
