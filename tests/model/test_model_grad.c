/* The whole graph's backward (conv, BN, ReLU, max-pool, residual add, option-A shortcut,
 * projection shortcut, dropout, global pool, linear, cross-entropy) against central finite
 * differences of the loss, computed in double; gradients accumulate over backward calls, and
 * with write_grads backward writes them (old contents never read) with the same bits as
 * clearing and adding, on the im2col and the Winograd paths; the kept Winograd weights, lent
 * to an outside buffer and prepared in parts ahead of the forward, give the same bits. */
#include "dprune/model.h"
#include "dprune/nn.h"
#include "testutil.h"
#include <string.h>

#define N 3
#define K 3

static double loss_of(const dp_model *m, dp_activations *a, const float *x, const int32_t *y,
                      const dp_forward_opts *o, bool backward) {
    dp_model_forward(m, a, x, N, o);
    int last = dp_model_output_node(m);
    memset(a->dout[last], 0, sizeof(float) * N * K);
    double loss =
        softmax_xent_forward_backward(N, K, a->out[last], y, 0.1f, 1.0f / N, a->dout[last]);
    if (backward) dp_model_backward(m, a, N, o);
    return loss / N;
}

static size_t out_floats(const dp_model *m) {
    return (size_t)N * m->num_classes;
}

/* The kept Winograd weights lent to an outside buffer and prepared in parts ahead of the
 * forward (as the ranks of a node do with one shared copy): the same bits as the forward
 * transforming them itself; the prepared weights are what the forward uses, for as many
 * forwards as they stay ready; an evaluation forward leaves them alone. */
static void check_prepared_kept(dp_model *m, const float *xin, const int32_t *labels,
                                const dp_forward_opts *o) {
    conv2d_set_algo(CONV2D_ALGO_WINOGRAD); /* every 3x3 stride-1 conv keeps its weights */
    dp_error err = {0};
    dp_activations a;
    CHECK(dp_activations_alloc(&a, m, N, &err) == DP_OK);
    size_t nk = dp_activations_kept_floats(&a, m), nout = out_floats(m);
    CHECK_MSG(nk >= (size_t)16 * (4 * 2 + 4 * 4 + 6 * 8), "kept floats %zu", nk);
    int last = dp_model_output_node(m);
    float *grad_ref = dp_alloc_floats(m->n_param_floats), *out_ref = dp_alloc_floats(nout);
    memset(m->grad_data, 0, sizeof(float) * m->n_param_floats);
    loss_of(m, &a, xin, labels, o, true);
    memcpy(grad_ref, m->grad_data, sizeof(float) * m->n_param_floats);
    memcpy(out_ref, a.out[last], sizeof(float) * nout);

    float *shared = dp_alloc_floats(nk);
    for (size_t i = 0; i < nk; i++) shared[i] = NAN; /* a part left out would show */
    dp_activations_lend_kept(&a, m, shared);
    for (int part = 0; part < 3; part++) dp_model_prepare_kept(m, &a, part, 3);
    for (int pass = 0; pass < 2; pass++) { /* two micro-batches on one preparation */
        memset(m->grad_data, 0, sizeof(float) * m->n_param_floats);
        loss_of(m, &a, xin, labels, o, true);
        CHECK_MSG(memcmp(m->grad_data, grad_ref, sizeof(float) * m->n_param_floats) == 0 &&
                      memcmp(a.out[last], out_ref, sizeof(float) * nout) == 0,
                  "pass %d on prepared weights differs from the forward's own transform", pass);
    }
    /* an evaluation forward neither reads nor writes them */
    dp_forward_opts eval = {.train = false};
    float first = shared[0];
    shared[0] = 12345.0f;
    dp_model_forward(m, &a, xin, N, &eval);
    CHECK(shared[0] == 12345.0f);
    shared[0] = first;
    /* while ready, the forward uses them as they are ... */
    for (size_t i = 0; i < nk; i++) shared[i] *= 2;
    loss_of(m, &a, xin, labels, o, false);
    CHECK_MSG(dp_max_rel_diff(a.out[last], out_ref, nout) > 1e-3,
              "the forward should use the prepared weights");
    /* ... and once forgotten, it transforms again */
    dp_activations_forget_kept(&a, m);
    loss_of(m, &a, xin, labels, o, false);
    CHECK(memcmp(a.out[last], out_ref, sizeof(float) * nout) == 0);
    dp_activations_free(&a, m);
    dp_free(shared), dp_free(grad_ref), dp_free(out_ref);
}

int main(void) {
    dp_error err = {0};
    dp_model m;
    dp_model_begin(&m, 2, 8, 8);
    m.num_classes = K;
    int x = 0, s, y;
    x = dp_add_conv(&m, x, "c1", 4, 3, 1, 1, true, &err);
    x = dp_add_bn(&m, x, "bn1", &err);
    x = dp_add_relu(&m, x, "r1", &err);
    y = dp_add_conv(&m, x, "c2", 4, 3, 1, 1, false, &err);
    y = dp_add_bn(&m, y, "bn2", &err);
    x = dp_add_add(&m, y, x, "add1", &err); /* identity shortcut */
    x = dp_add_relu(&m, x, "r2", &err);
    s = dp_add_shortcut_pad(&m, x, "sc", 8, 2, &err); /* option A */
    y = dp_add_conv(&m, x, "c3", 8, 3, 2, 1, false, &err);
    y = dp_add_bn(&m, y, "bn3", &err);
    x = dp_add_add(&m, y, s, "add2", &err);
    x = dp_add_relu(&m, x, "r3", &err);
    s = dp_add_conv(&m, x, "proj", 6, 1, 1, 0, false, &err); /* option B */
    s = dp_add_bn(&m, s, "proj_bn", &err);
    y = dp_add_conv(&m, x, "c4", 6, 3, 1, 1, false, &err);
    x = dp_add_add(&m, y, s, "add3", &err);
    x = dp_add_pool(&m, DP_OP_MAXPOOL, x, "mp", 2, 2, 0, &err);
    x = dp_add_dropout(&m, x, "drop", 0.25f, &err);
    x = dp_add_gap(&m, x, "gap", &err);
    x = dp_add_linear(&m, x, "fc", K, true, &err);
    CHECK_MSG(x > 0, "%s", err.msg);
    CHECK(dp_model_finish(&m, &err) == DP_OK);
    dp_model_init_weights(&m, 5);
    /* make BN non-trivial */
    for (int p = 0; p < m.n_params; p++)
        if (strstr(m.params[p].name, "bn"))
            dp_fill_uniform(dp_param_ptr(&m, p), m.params[p].numel, 100 + p, 0.5f);
    for (int p = 0; p < m.n_params; p++)
        if (strstr(m.params[p].name, "bn") && strstr(m.params[p].name, "weight"))
            for (size_t j = 0; j < m.params[p].numel; j++) dp_param_ptr(&m, p)[j] += 1.0f;

    dp_activations a;
    CHECK(dp_activations_alloc(&a, &m, N, &err) == DP_OK);
    float xin[N * 2 * 8 * 8];
    dp_fill_uniform(xin, sizeof xin / sizeof xin[0], 3, 1.0f);
    int32_t labels[N] = {0, 2, 1};
    uint64_t keys[N] = {11, 12, 13};
    dp_forward_opts o = {.train = true, .seed = 9, .sample_keys = keys};

    memset(m.grad_data, 0, sizeof(float) * m.n_param_floats);
    loss_of(&m, &a, xin, labels, &o, true);
    float *analytic = dp_alloc_floats(m.n_param_floats);
    memcpy(analytic, m.grad_data, sizeof(float) * m.n_param_floats);

    /* every parameter tensor, a few elements each. ReLU and max-pool have kinks: a step that
     * crosses one spoils that difference, so an entry fails only if two step sizes disagree. */
    int bad = 0, checked = 0;
    const float steps[2] = {1e-3f, 3e-4f};
    for (int p = 0; p < m.n_params; p++) {
        for (size_t j = 0; j < m.params[p].numel; j += 1 + m.params[p].numel / 5) {
            float *w = dp_param_ptr(&m, p) + j;
            float keep = *w;
            double g = analytic[m.params[p].offset + j], fd[2];
            int agree = 0;
            for (int k = 0; k < 2; k++) {
                *w = keep + steps[k];
                double lp = loss_of(&m, &a, xin, labels, &o, false);
                *w = keep - steps[k];
                double lm = loss_of(&m, &a, xin, labels, &o, false);
                *w = keep;
                fd[k] = (lp - lm) / (2.0 * steps[k]);
                agree |= fabs(fd[k] - g) <= 2e-3 + 3e-2 * fabs(fd[k]);
            }
            checked++;
            if (!agree) {
                bad++;
                fprintf(stderr, "  %s[%zu]: analytic %.6g fd %.6g / %.6g\n", m.params[p].name, j, g,
                        fd[0], fd[1]);
            }
        }
    }
    CHECK_MSG(bad == 0, "%d of %d gradient entries disagree with finite differences", bad, checked);
    CHECK(checked > 50);

    /* gradients accumulate: a second backward doubles them */
    loss_of(&m, &a, xin, labels, &o, true);
    int doubled = 1;
    for (size_t i = 0; i < m.n_param_floats; i++)
        doubled &= fabsf(m.grad_data[i] - 2 * analytic[i]) <= 1e-5f + 1e-4f * fabsf(analytic[i]);
    CHECK(doubled);

    /* write_grads over NaN: every tensor written, the bits of a cleared buffer plus one pass */
    const conv2d_algo algos[] = {CONV2D_ALGO_IM2COL, CONV2D_ALGO_WINOGRAD, CONV2D_ALGO_TAPS};
    const char *algo_names[] = {"im2col", "winograd", "taps"};
    for (int algo = 0; algo < 3; algo++) {
        conv2d_set_algo(algos[algo]);
        memset(m.grad_data, 0, sizeof(float) * m.n_param_floats);
        loss_of(&m, &a, xin, labels, &o, true);
        memcpy(analytic, m.grad_data, sizeof(float) * m.n_param_floats);
        for (size_t i = 0; i < m.n_param_floats; i++) m.grad_data[i] = NAN;
        dp_forward_opts ow = o;
        ow.write_grads = true;
        loss_of(&m, &a, xin, labels, &ow, true);
        for (int p = 0; p < m.n_params; p++) {
            const dp_tensor_view *v = &m.params[p];
            CHECK_MSG(memcmp(m.grad_data + v->offset, analytic + v->offset,
                             sizeof(float) * v->numel) == 0,
                      "write_grads (%s): %s differs from clearing and adding", algo_names[algo],
                      v->name);
        }
    }
    check_prepared_kept(&m, xin, labels, &o);
    conv2d_set_algo(CONV2D_ALGO_AUTO);

    dp_free(analytic);
    dp_activations_free(&a, &m);
    dp_model_free(&m);
    return dp_test_finish();
}
