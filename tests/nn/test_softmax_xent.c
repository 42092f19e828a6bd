/* softmax cross-entropy: uniform logits give ln K, label smoothing by hand, stability on huge
 * logits, gradient vs finite differences (with and without smoothing), grad_scale and
 * accumulation, top-1/top-5 on hand-made cases including ties and K < 5. */
#include "dprune/nn.h"
#include "gradcheck.h"

typedef struct {
    int N, K;
    float eps;
    float *z;
    const int32_t *labels;
} sx_ctx;

static double sx_loss(void *p) {
    sx_ctx *c = p;
    return softmax_xent_loss(c->N, c->K, c->z, c->labels, c->eps);
}

static void check_fd(int N, int K, float eps, unsigned seed) {
    int32_t labels[16];
    dp_rng r;
    dp_rng_init(&r, seed, 0, 0, 0);
    for (int i = 0; i < N; i++) labels[i] = (int32_t)dp_rng_below(&r, (uint32_t)K);
    sx_ctx c = {N, K, eps, gc_alloc_uniform((size_t)N * K, seed, 3.0f), labels};
    float *g = dp_alloc_floats((size_t)N * K);
    double l1 = softmax_xent_forward_backward(N, K, c.z, labels, eps, 1.0f, g);
    CHECK_CLOSE(l1, sx_loss(&c), 1e-12, 1e-12);
    char name[64];
    snprintf(name, sizeof name, "softmax-xent N%d K%d eps%g", N, K, eps);
    gc_check(name, c.z, g, (size_t)N * K, sx_loss, &c, 1e-2f, 2e-4, 2e-3, 100);
    // each row of (softmax - target) sums to zero
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < K; j++) s += g[i * K + j];
        worst = fmax(worst, fabs(s));
    }
    CHECK_MSG(worst < 1e-5, "row sum %g", worst);
    // grad_scale scales, and a second call accumulates
    float *g2 = dp_alloc_floats((size_t)N * K);
    softmax_xent_forward_backward(N, K, c.z, labels, eps, 0.25f, g2);
    softmax_xent_forward_backward(N, K, c.z, labels, eps, 0.25f, g2);
    for (int i = 0; i < N * K; i++) g[i] *= 0.5f;
    gc_close(name, g2, g, (size_t)N * K, 1e-6);
    dp_free(c.z), dp_free(g), dp_free(g2);
}

int main(void) {
    // uniform logits: loss = ln K per sample, with or without smoothing
    {
        float z[2 * 10] = {0};
        for (int i = 10; i < 20; i++) z[i] = 3.5f;
        int32_t lab[2] = {3, 9};
        CHECK_CLOSE(softmax_xent_loss(2, 10, z, lab, 0.0f), 2 * log(10.0), 1e-9, 1e-9);
        CHECK_CLOSE(softmax_xent_loss(2, 10, z, lab, 0.1f), 2 * log(10.0), 1e-9, 1e-9);
        float g[20] = {0};
        softmax_xent_forward_backward(2, 10, z, lab, 0.0f, 1.0f, g);
        CHECK_CLOSE(g[3], 0.1 - 1.0, 1e-6, 0);
        CHECK_CLOSE(g[0], 0.1, 1e-6, 0);
    }
    // label smoothing by hand: K=3, z=(1,2,3), label 0, eps 0.1
    // target = (0.9+0.1/3, 0.1/3, 0.1/3); loss = -sum t_j log p_j
    {
        float z[3] = {1, 2, 3};
        int32_t lab[1] = {0};
        double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
        double lp[3] = {1 - lse, 2 - lse, 3 - lse};
        double t0 = 0.9 + 0.1 / 3, t = 0.1 / 3;
        double want = -(t0 * lp[0] + t * lp[1] + t * lp[2]);
        CHECK_CLOSE(softmax_xent_loss(1, 3, z, lab, 0.1f), want, 1e-6, 1e-6);
        CHECK_CLOSE(softmax_xent_loss(1, 3, z, lab, 0.0f), -lp[0], 1e-6, 1e-6);
        float g[3] = {0};
        softmax_xent_forward_backward(1, 3, z, lab, 0.1f, 1.0f, g);
        CHECK_CLOSE(g[0], exp(lp[0]) - t0, 1e-6, 1e-5);
        CHECK_CLOSE(g[2], exp(lp[2]) - t, 1e-6, 1e-5);
    }
    // numerically stable on huge logits
    {
        float z[3] = {1000, 0, -1000};
        int32_t a[1] = {0}, b[1] = {1};
        double la = softmax_xent_loss(1, 3, z, a, 0.0f), lb = softmax_xent_loss(1, 3, z, b, 0.0f);
        CHECK(isfinite(la) && isfinite(lb));
        CHECK_CLOSE(la, 0.0, 1e-9, 0);
        CHECK_CLOSE(lb, 1000.0, 1e-6, 1e-9);
        float g[3] = {0};
        softmax_xent_forward_backward(1, 3, z, b, 0.0f, 1.0f, g);
        CHECK(g[0] == 1.0f && g[1] == -1.0f && g[2] == 0.0f);
    }
    check_fd(4, 10, 0.0f, 1);
    check_fd(3, 7, 0.1f, 2);
    check_fd(5, 2, 0.2f, 3);

    // top-k by hand
    {
        // K = 6; sample 0 label is the max; sample 1 label 3rd; sample 2 label 6th;
        // sample 3 ties with 5 others at the top (0 strictly greater -> top-1 counts)
        float z[4 * 6] = {
            5, 1, 2, 3, 4, 0, //
            5, 1, 2, 3, 4, 0, //
            5, 1, 2, 3, 4, 0, //
            2, 2, 2, 2, 2, 2,
        };
        int32_t lab[4] = {0, 3, 5, 4};
        int64_t t1 = -1, t5 = -1;
        topk_correct(4, 6, z, lab, &t1, &t5);
        CHECK(t1 == 2 && t5 == 3);
        // sample 1 (label 3) is 3rd; sample 1 with label 1 is 5th: still top-5
        int32_t lab2[2] = {1, 5};
        topk_correct(2, 6, z, lab2, &t1, &t5);
        CHECK(t1 == 0 && t5 == 1);
    }
    // K < 5: top-5 is top-K, always correct
    {
        float z[2 * 3] = {0, 1, 2, 9, -1, 3};
        int32_t lab[2] = {0, 1};
        int64_t t1, t5;
        topk_correct(2, 3, z, lab, &t1, &t5);
        CHECK(t1 == 0 && t5 == 2);
    }
    return dp_test_finish();
}
