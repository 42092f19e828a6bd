/* Times training steps of a built-in network exactly as the trainer runs them:
 * zero grads, forward (train mode), softmax cross-entropy forward+backward, top-k, backward,
 * SGD step (momentum 0.9, weight decay 5e-4). Random input and labels.
 *
 *   bench_train_step MODEL BATCH THREADS [WARMUP=2] [ITERS=5] [profile]
 *
 * Prints one line per timed step, then a machine-readable line
 *   RESULT impl=dprune model=.. batch=.. threads=.. median_s=.. ips=.. gflops=.. cpu_s=.. core=..
 * with the median step time and images/s = BATCH / median. gflops counts 2 FLOPs per MAC of
 * conv+linear, forward + both backward GEMMs (3x the forward MACs), as is usual.
 * With "profile" it then times every conv layer's forward and backward alone (median of ITERS)
 * and prints a per-layer table: the place to look for what is slow; before it, a per-node table of
 * the whole step's forward and backward (mean over ITERS steps, node clocks of forward.c).
 * DPRUNE_CONV_ALGO=im2col|winograd|direct|taps in the environment forces a conv path
 * (conv2d_set_algo), to measure what each one buys. */
#include "dprune/model.h"
#include "dprune/nn.h"
#include "dprune/optim.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_step.h"

/* input shape and classes of the benchmark models (MNIST-like, CIFAR, ImageNet) */
static void input_of(const char *arch, int *c, int *h, int *classes) {
    if (!strcmp(arch, "fmnist_cnn") || !strcmp(arch, "lenet5"))
        *c = 1, *h = 28, *classes = 10;
    else if (!strcmp(arch, "resnet18") || !strcmp(arch, "resnet34") || !strcmp(arch, "resnet50"))
        *c = 3, *h = 224, *classes = 1000;
    else
        *c = 3, *h = 32, *classes = 10;
}

/* one optimizer step, as train_step in src/app/trainer.c (one rank, no accumulation) */
static void train_step(const bench_step *s) {
    volatile double loss = bench_step_forward(s);
    (void)loss;
    bench_step_finish(s);
}

/* per-conv-layer forward/backward times on random data of the layer's shape */
static void profile_convs(const dp_model *m, int N, int iters) {
    printf("%-24s %5s %5s %4s %4s %2s %2s %9s %9s %7s %7s\n", "layer", "C", "K", "H", "P", "k",
           "st", "fwd_ms", "bwd_ms", "fwdGF/s", "bwdGF/s");
    double tot_f = 0, tot_b = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        if (n->op != DP_OP_CONV) continue;
        const dp_node *src = &m->nodes[n->in[0]];
        conv2d_shape s;
        conv2d_shape_init(&s, N, src->c, src->h, src->w, n->c, n->a.conv.k, n->a.conv.k,
                          n->a.conv.stride, n->a.conv.pad);
        size_t nx = (size_t)N * s.C * s.H * s.W, ny = (size_t)N * s.K * s.P * s.Q;
        size_t nw = (size_t)s.K * s.C * s.R * s.S;
        size_t nws = conv2d_workspace_floats(&s, dp_threads_count());
        float *x = dp_alloc_floats(nx), *y = dp_alloc_floats(ny), *dy = dp_alloc_floats(ny);
        float *dx = dp_alloc_floats(nx), *w = dp_alloc_floats(nw), *dw = dp_alloc_floats(nw);
        float *ws = dp_alloc_floats(nws);
        fill_uniform(x, nx, 1, 1.0f), fill_uniform(w, nw, 2, 0.1f);
        fill_uniform(dy, ny, 3, 1.0f);
        double tf[64], tb[64];
        int it = iters > 64 ? 64 : iters;
        conv2d_forward(&s, x, w, NULL, y, ws, nws); // warm-up
        for (int k = 0; k < it; k++) {
            double t0 = dp_now_seconds();
            conv2d_forward(&s, x, w, NULL, y, ws, nws);
            tf[k] = dp_now_seconds() - t0;
            t0 = dp_now_seconds();
            conv2d_backward(&s, x, w, dy, n->in[0] == 0 ? NULL : dx, dw, NULL, ws, nws);
            tb[k] = dp_now_seconds() - t0;
        }
        double mf = median(tf, it), mb = median(tb, it);
        double fl = 2.0 * (double)conv2d_flops(&s), flb = n->in[0] == 0 ? fl : 2 * fl;
        tot_f += mf, tot_b += mb;
        printf("%-24s %5d %5d %4d %4d %2d %2d %9.3f %9.3f %7.1f %7.1f\n", n->name, s.C, s.K, s.H,
               s.P, s.R, s.stride, 1e3 * mf, 1e3 * mb, fl / mf * 1e-9, flb / mb * 1e-9);
        dp_free(x), dp_free(y), dp_free(dy), dp_free(dx), dp_free(w), dp_free(dw), dp_free(ws);
    }
    printf("conv total: fwd %.2f ms, bwd %.2f ms\n", 1e3 * tot_f, 1e3 * tot_b);
}

/* mean forward/backward milliseconds per node over iters steps of the real step (loss and SGD
 * outside); small layers are where the step's time is spread over many short passes */
static void profile_nodes(const bench_step *s, int iters) {
    const dp_model *m = s->m;
    double *fs = calloc((size_t)m->n_nodes, sizeof(double));
    double *bs = calloc((size_t)m->n_nodes, sizeof(double));
    dp_forward_opts ff = {.train = true, .seed = 1, .sample_keys = s->keys, .node_seconds = fs};
    dp_forward_opts fb = {.train = true, .seed = 1, .sample_keys = s->keys, .node_seconds = bs};
    double t_loss = 0, t_sgd = 0;
    const int last = dp_model_output_node(m), K = m->num_classes;
    for (int it = 0; it < iters; it++) {
        memset(m->grad_data, 0, sizeof(float) * m->n_param_floats);
        dp_model_forward(m, s->act, s->x, s->N, &ff);
        double t0 = dp_now_seconds();
        float *dlogits = s->act->dout[last];
        memset(dlogits, 0, sizeof(float) * (size_t)s->N * K);
        softmax_xent_forward_backward(s->N, K, s->act->out[last], s->y, 0.0f, 1.0f / s->N, dlogits);
        t_loss += dp_now_seconds() - t0;
        dp_model_backward(m, s->act, s->N, &fb);
        t0 = dp_now_seconds();
        dp_sgd_step(s->opt, s->m, 0.01);
        t_sgd += dp_now_seconds() - t0;
    }
    double tf = 0, tb = 0;
    printf("%-24s %-8s %9s %9s\n", "node", "op", "fwd_ms", "bwd_ms");
    for (int i = 1; i < m->n_nodes; i++) {
        printf("%-24s %-8s %9.3f %9.3f\n", m->nodes[i].name, dp_op_name(m->nodes[i].op),
               1e3 * fs[i] / iters, 1e3 * bs[i] / iters);
        tf += fs[i], tb += bs[i];
    }
    printf("nodes total: fwd %.3f ms, bwd %.3f ms; loss %.3f ms, sgd %.3f ms\n", 1e3 * tf / iters,
           1e3 * tb / iters, 1e3 * t_loss / iters, 1e3 * t_sgd / iters);
    free(fs), free(bs);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL BATCH THREADS [WARMUP=2] [ITERS=5] [profile]\n", argv[0]);
        return 2;
    }
    const char *arch = argv[1];
    int N = atoi(argv[2]), threads = atoi(argv[3]);
    int warmup = argc > 4 ? atoi(argv[4]) : 2, iters = argc > 5 ? atoi(argv[5]) : 5;
    bool profile = argc > 6 && !strcmp(argv[6], "profile");
    if (N < 1 || threads < 1 || iters < 1 || warmup < 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    threads = dp_threads_setup(threads);
    const char *algo = getenv("DPRUNE_CONV_ALGO");
    if (algo && !strcmp(algo, "im2col")) conv2d_set_algo(CONV2D_ALGO_IM2COL);
    if (algo && !strcmp(algo, "winograd")) conv2d_set_algo(CONV2D_ALGO_WINOGRAD);
    if (algo && !strcmp(algo, "direct")) conv2d_set_algo(CONV2D_ALGO_DIRECT);
    if (algo && !strcmp(algo, "taps")) conv2d_set_algo(CONV2D_ALGO_TAPS);

    int c, h, classes;
    input_of(arch, &c, &h, &classes);
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    mc.width = 1.0;
    snprintf(mc.shortcut, sizeof mc.shortcut, "A");
    dp_model m;
    dp_error err = {0};
    if (dp_model_build(&m, &mc, c, h, h, classes, &err) != DP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dp_model_init_weights(&m, 42);
    dp_activations act;
    if (dp_activations_alloc(&act, &m, N, &err) != DP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dp_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.momentum = 0.9, tc.weight_decay = 5e-4;
    dp_sgd opt;
    if (dp_sgd_init(&opt, &m, &tc, &err) != DP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    bench_step s = {.m = &m, .act = &act, .opt = &opt};
    bench_step_batch(&s, N, (size_t)c * h * h, classes);

    for (int i = 0; i < warmup; i++) train_step(&s);
    double *t = calloc((size_t)iters, sizeof(double)),
           *tcpu = calloc((size_t)iters, sizeof(double));
    for (int i = 0; i < iters; i++) {
        double t0 = dp_now_seconds(), c0 = cpu_seconds();
        train_step(&s);
        t[i] = dp_now_seconds() - t0, tcpu[i] = cpu_seconds() - c0;
        printf("step %d: %.4f s (%.1f img/s), cpu %.4f s\n", i, t[i], N / t[i], tcpu[i]);
    }
    double med = median(t, iters), medc = median(tcpu, iters);
    double gflop = 2.0 * 3.0 * (double)dp_model_flops(&m) * N * 1e-9;
    printf("RESULT impl=dprune model=%s batch=%d threads=%d median_s=%.5f ips=%.2f gflops=%.2f "
           "cpu_s=%.5f params=%lld core=%s\n",
           arch, N, threads, med, N / med, gflop / med, medc, (long long)dp_model_params(&m),
           dp_blas_corename());
    if (profile) profile_nodes(&s, iters), profile_convs(&m, N, iters);

    free(t), free(tcpu);
    bench_step_batch_free(&s);
    dp_sgd_free(&opt);
    dp_activations_free(&act, &m);
    dp_model_free(&m);
    return 0;
}
