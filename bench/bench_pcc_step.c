/* What the PCC training term (train.pcc_lambda) adds to a training step: steps of a built-in
 * network with the term off and on, interleaved, on random data.
 *
 *   bench_pcc_step MODEL BATCH THREADS [ROUNDS=5] [ITERS=3] [LAMBDA=1]
 *
 * A step is the trainer's (one rank, no accumulation): zero grads, forward (train mode), softmax
 * cross-entropy, with the term on dp_pcc_term_apply (every prunable group's post-ReLU map, groups
 * with the config defaults: first conv protected), backward, SGD step. Each round runs ITERS
 * steps off and ITERS steps on, the order alternating between rounds so that a noisy neighbour
 * hits both alike; a round's figure is the median of its steps. Prints one line per round and
 *   RESULT impl=dprune-pcc model=.. batch=.. threads=.. off_s=.. on_s=.. ratio=.. pcc_s=.. maps=..
 * with the medians over rounds of the off and on step times, the median of the per-round ratios
 * on/off (target: < 1.3 on vgg16) and the median time of the term alone. */
#include "dprune/model.h"
#include "dprune/nn.h"
#include "dprune/optim.h"
#include "dprune/prune.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_step.h"

typedef struct {
    bench_step step;
    dp_pcc_term *term;
    double pcc_seconds; /* the term's share of the last step */
} step_ctx;

static void train_step(step_ctx *s, bool pcc) {
    const bench_step *b = &s->step;
    volatile double loss = bench_step_forward(b);
    if (pcc) {
        double t0 = dp_now_seconds();
        loss += dp_pcc_term_apply(s->term, b->m, b->act, b->N, 1.0 / b->N);
        s->pcc_seconds = dp_now_seconds() - t0;
    }
    (void)loss;
    bench_step_finish(b);
}

/* median step time of iters steps */
static double run_block(step_ctx *s, bool pcc, int iters, double *pcc_median) {
    double t[64], tp[64];
    int n = iters > 64 ? 64 : iters;
    for (int i = 0; i < n; i++) {
        double t0 = dp_now_seconds();
        train_step(s, pcc);
        t[i] = dp_now_seconds() - t0;
        tp[i] = s->pcc_seconds;
    }
    if (pcc_median) *pcc_median = median(tp, n);
    return median(t, n);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL BATCH THREADS [ROUNDS=5] [ITERS=3] [LAMBDA=1]\n", argv[0]);
        return 2;
    }
    const char *arch = argv[1];
    int N = atoi(argv[2]), threads = atoi(argv[3]);
    int rounds = argc > 4 ? atoi(argv[4]) : 5, iters = argc > 5 ? atoi(argv[5]) : 3;
    double lambda = argc > 6 ? atof(argv[6]) : 1.0;
    if (N < 1 || threads < 1 || rounds < 1 || rounds > 1000 || iters < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    threads = dp_threads_setup(threads);
    bool mnist = !strcmp(arch, "fmnist_cnn") || !strcmp(arch, "lenet5");
    int c = mnist ? 1 : 3, h = mnist ? 28 : 32, classes = 10;
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    mc.width = 1.0;
    snprintf(mc.shortcut, sizeof mc.shortcut, "A");
    dp_model m;
    dp_activations act;
    dp_groups gs;
    dp_group_opts go;
    dp_group_opts_default(&go);
    dp_pcc_term term;
    dp_sgd opt;
    dp_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.momentum = 0.9, tc.weight_decay = 5e-4;
    dp_error err = {0};
    if (dp_model_build(&m, &mc, c, h, h, classes, &err) != DP_OK ||
        dp_activations_alloc(&act, &m, N, &err) != DP_OK ||
        dp_groups_build(&m, &go, &gs, &err) != DP_OK ||
        dp_pcc_term_init(&term, &m, &gs, lambda, N, &err) != DP_OK ||
        dp_sgd_init(&opt, &m, &tc, &err) != DP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dp_model_init_weights(&m, 42);
    step_ctx s = {.step = {.m = &m, .act = &act, .opt = &opt}, .term = &term};
    bench_step_batch(&s.step, N, (size_t)c * h * h, classes);

    printf("%s batch %d, %d threads, lambda %g: PCC on %d maps, OpenBLAS core %s\n", arch, N,
           threads, lambda, term.n_maps, dp_blas_corename());
    train_step(&s, false), train_step(&s, true); /* warm-up: page in every buffer */
    double *off = calloc((size_t)rounds, sizeof(double)),
           *on = calloc((size_t)rounds, sizeof(double));
    double *ratio = calloc((size_t)rounds, sizeof(double)),
           *pcc = calloc((size_t)rounds, sizeof(double));
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            off[r] = run_block(&s, false, iters, NULL);
            on[r] = run_block(&s, true, iters, &pcc[r]);
        } else {
            on[r] = run_block(&s, true, iters, &pcc[r]);
            off[r] = run_block(&s, false, iters, NULL);
        }
        ratio[r] = on[r] / off[r];
        printf("round %d: off %.4f s  on %.4f s  (term %.4f s)  on/off %.3f\n", r + 1, off[r],
               on[r], pcc[r], ratio[r]);
    }
    printf("RESULT impl=dprune-pcc model=%s batch=%d threads=%d off_s=%.5f on_s=%.5f ratio=%.4f "
           "pcc_s=%.5f maps=%d rounds=%d iters=%d core=%s\n",
           arch, N, threads, median(off, rounds), median(on, rounds), median(ratio, rounds),
           median(pcc, rounds), term.n_maps, rounds, iters, dp_blas_corename());

    free(off), free(on), free(ratio), free(pcc);
    bench_step_batch_free(&s.step);
    dp_sgd_free(&opt);
    dp_pcc_term_free(&term);
    dp_groups_free(&gs);
    dp_activations_free(&act, &m);
    dp_model_free(&m);
    return 0;
}
