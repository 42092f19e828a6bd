/* Does pruning make a network faster in proportion to the FLOPs it removes? A CIFAR network
 * (default vgg16, 32x32, random weights, l1 scores) is pruned with a uniform ratio bisected to
 * remove TARGET of its FLOPs (keep counts multiples of ROUND_TO), then the original and the
 * pruned model are timed, interleaved round by round (the order alternating), in inference
 * (eval forward) and in training steps (forward, loss, backward, SGD step, as the trainer).
 *
 *   bench_prune_speedup [MODEL=vgg16] [BATCH=64] [THREADS=2] [ROUNDS=5] [ITERS=3]
 *                       [TARGET=0.5] [ROUND_TO=8]
 *
 * Prints the FLOPs ratio F = FLOPs before / after, the inference and training speed-ups
 * (medians over ROUNDS x ITERS timed calls) and each as a fraction of F (the pruning-engine
 * issue asks >= 0.8 for inference and >= 0.7 for training on vgg16, half its FLOPs,
 * round_to 8), and per-layer time tables before and after (per-node medians from the
 * executor's per-node clock, the bn/relu/pool after a layer counted with it), then a RESULT
 * line. */
#include "dprune/nn.h"
#include "dprune/profile.h"
#include "dprune/prune.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_util.h"

/* One model under test: its buffers, and every timed call's total and per-node seconds. */
typedef struct {
    const char *label;
    dp_model *m;
    dp_activations act;
    dp_sgd opt;
    int calls, cap;
    double *infer_s, *train_s;           /* [cap] totals */
    double *infer_node_s, *train_node_s; /* [cap][n_nodes] */
} subject;

static dp_status subject_init(subject *s, const char *label, dp_model *m, int N, int cap,
                              dp_error *err) {
    memset(s, 0, sizeof *s);
    s->label = label, s->m = m, s->cap = cap;
    dp_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.momentum = 0.9, tc.weight_decay = 5e-4;
    dp_status st = dp_activations_alloc(&s->act, m, N, err);
    if (st == DP_OK) st = dp_sgd_init(&s->opt, m, &tc, err);
    size_t nn = (size_t)cap * (size_t)m->n_nodes;
    s->infer_s = calloc((size_t)cap, sizeof(double));
    s->train_s = calloc((size_t)cap, sizeof(double));
    s->infer_node_s = calloc(nn, sizeof(double));
    s->train_node_s = calloc(nn, sizeof(double));
    if (st == DP_OK && (!s->infer_s || !s->train_s || !s->infer_node_s || !s->train_node_s))
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
    return st;
}

static void subject_free(subject *s) {
    free(s->infer_s), free(s->train_s), free(s->infer_node_s), free(s->train_node_s);
    dp_sgd_free(&s->opt);
    dp_activations_free(&s->act, s->m);
}

typedef struct {
    const float *x;
    const int32_t *y;
    const uint64_t *keys;
    int N;
} batch;

/* Eval forward; returns seconds, per-node seconds into node_s (zeroed here) if given. */
static double infer_once(subject *s, const batch *b, double *node_s) {
    if (node_s) memset(node_s, 0, sizeof(double) * (size_t)s->m->n_nodes);
    dp_forward_opts fo = {.train = false, .node_seconds = node_s};
    double t0 = dp_now_seconds();
    dp_model_forward(s->m, &s->act, b->x, b->N, &fo);
    return dp_now_seconds() - t0;
}

/* One optimizer step exactly as the trainer's (one rank, no accumulation). */
static double train_once(subject *s, const batch *b, double *node_s) {
    dp_model *m = s->m;
    int last = dp_model_output_node(m), K = m->num_classes;
    if (node_s) memset(node_s, 0, sizeof(double) * (size_t)m->n_nodes);
    dp_forward_opts fo = {.train = true, .seed = 1, .sample_keys = b->keys, .node_seconds = node_s};
    double t0 = dp_now_seconds();
    memset(m->grad_data, 0, sizeof(float) * m->n_param_floats);
    dp_model_forward(m, &s->act, b->x, b->N, &fo);
    float *dlogits = s->act.dout[last];
    memset(dlogits, 0, sizeof(float) * (size_t)b->N * K);
    volatile double loss =
        softmax_xent_forward_backward(b->N, K, s->act.out[last], b->y, 0.0f, 1.0f / b->N, dlogits);
    (void)loss;
    dp_model_backward(m, &s->act, b->N, &fo);
    dp_sgd_step(&s->opt, m, 0.01);
    return dp_now_seconds() - t0;
}

static void measure_round(subject *s, const batch *b, int iters) {
    int n = s->m->n_nodes;
    for (int i = 0; i < iters && s->calls < s->cap; i++, s->calls++) {
        s->infer_s[s->calls] = infer_once(s, b, s->infer_node_s + (size_t)s->calls * n);
        s->train_s[s->calls] = train_once(s, b, s->train_node_s + (size_t)s->calls * n);
    }
}

/* Per-node medians in ms over the timed calls. */
static void node_medians(const subject *s, const double *all, double *out_ms) {
    int n = s->m->n_nodes;
    double *v = malloc(sizeof(double) * (size_t)(s->calls > 0 ? s->calls : 1));
    for (int i = 0; i < n && v; i++) {
        for (int c = 0; c < s->calls; c++) v[c] = all[(size_t)c * n + i];
        out_ms[i] = s->calls > 0 ? 1e3 * median(v, s->calls) : 0;
    }
    free(v);
}

/* The uniform ratio whose plan (floors, round_to) removes the fraction of FLOPs closest to
 * `target`: the reduction is a non-decreasing step function of the ratio, so bisect. */
static dp_status uniform_plan(const dp_model *m, const dp_groups *gs, const dp_scores *sc,
                              double target, int round_to, dp_plan *best, double *ratio,
                              dp_error *err) {
    dp_budget b;
    dp_budget_default(&b);
    b.round_to = round_to;
    double lo = 0, hi = 0.99, best_gap = INFINITY;
    memset(best, 0, sizeof *best);
    for (int it = 0; it < 40; it++) {
        b.ratio = 0.5 * (lo + hi);
        dp_plan p;
        dp_status st = dp_plan_make(m, gs, sc, &b, "l1", &p, err);
        if (st != DP_OK) return st;
        double red = 1.0 - (double)p.flops_after / (double)p.flops_before;
        if (fabs(red - target) < best_gap) {
            best_gap = fabs(red - target), *ratio = b.ratio;
            dp_plan_free(best);
            *best = p;
        } else {
            dp_plan_free(&p);
        }
        if (red < target)
            lo = b.ratio;
        else
            hi = b.ratio;
    }
    return DP_OK;
}

static void print_compare(const dp_model *a, const double *ai, const double *at, const dp_model *b,
                          const double *bi, const double *bt) {
    printf("\n%-12s %13s %9s | %9s %9s %7s | %9s %9s %7s\n", "layer", "channels", "FLOPs x",
           "infer bef", "infer aft", "speedup", "train bef", "train aft", "speedup");
    double sa[4] = {0}, sb[4] = {0};
    for (int L = 1; L < a->n_nodes; L++) {
        const dp_node *n = &a->nodes[L];
        if (n->op != DP_OP_CONV && n->op != DP_OP_LINEAR) continue;
        double ti[2] = {0}, tt[2] = {0};
        for (int i = 1; i < a->n_nodes; i++)
            if (dp_profile_owner(a, i) == L)
                ti[0] += ai[i], ti[1] += bi[i], tt[0] += at[i], tt[1] += bt[i];
        sa[0] += ti[0], sb[0] += ti[1], sa[1] += tt[0], sb[1] += tt[1];
        char ch[32];
        snprintf(ch, sizeof ch, "%d>%d -> %d", a->nodes[n->in[0]].c, b->nodes[n->in[0]].c,
                 b->nodes[L].c);
        double fa = (double)dp_node_flops(a, L), fb = (double)dp_node_flops(b, L);
        printf("%-12s %13s %9.2f | %9.3f %9.3f %7.2f | %9.3f %9.3f %7.2f\n", n->name, ch,
               fb > 0 ? fa / fb : 0, ti[0], ti[1], ti[1] > 0 ? ti[0] / ti[1] : 0, tt[0], tt[1],
               tt[1] > 0 ? tt[0] / tt[1] : 0);
    }
    printf("%-12s %13s %9s | %9.3f %9.3f %7.2f | %9.3f %9.3f %7.2f\n", "sum", "", "", sa[0], sb[0],
           sb[0] > 0 ? sa[0] / sb[0] : 0, sa[1], sb[1], sb[1] > 0 ? sa[1] / sb[1] : 0);
}

int main(int argc, char **argv) {
    const char *arch = argc > 1 ? argv[1] : "vgg16";
    int N = argc > 2 ? atoi(argv[2]) : 64, threads = argc > 3 ? atoi(argv[3]) : 2;
    int rounds = argc > 4 ? atoi(argv[4]) : 5, iters = argc > 5 ? atoi(argv[5]) : 3;
    double target = argc > 6 ? atof(argv[6]) : 0.5;
    int round_to = argc > 7 ? atoi(argv[7]) : 8;
    if (N < 1 || threads < 1 || rounds < 1 || iters < 1 || !(target > 0 && target < 1) ||
        round_to < 1) {
        fprintf(stderr,
                "usage: %s [MODEL=vgg16] [BATCH=64] [THREADS=2] [ROUNDS=5] [ITERS=3] "
                "[TARGET=0.5] [ROUND_TO=8]\n",
                argv[0]);
        return 2;
    }
    threads = dp_threads_setup(threads);
    dp_error err = {0};
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    snprintf(mc.shortcut, sizeof mc.shortcut, "B");
    mc.width = 1.0;
    dp_model before = {0}, after = {0};
    dp_groups gs = {0};
    dp_scores sc = {0};
    dp_plan plan = {0};
    double ratio = 0;
    dp_status st = dp_model_build(&before, &mc, 3, 32, 32, 10, &err);
    if (st == DP_OK) dp_model_init_weights(&before, 42);
    if (st == DP_OK) st = dp_groups_build(&before, NULL, &gs, &err);
    if (st == DP_OK) st = dp_weight_scores("l1", &before, &gs, 42, 1, &sc, &err);
    if (st == DP_OK) st = uniform_plan(&before, &gs, &sc, target, round_to, &plan, &ratio, &err);
    if (st == DP_OK) st = dp_surgery(&before, &gs, &plan, NULL, NULL, &after, &err);
    if (st != DP_OK) {
        fprintf(stderr, "bench_prune_speedup: %s\n", err.msg);
        return 1;
    }
    double F = (double)dp_model_flops(&before) / (double)dp_model_flops(&after);
    printf("%s (CIFAR 32x32, random weights, l1), batch %d, %d threads, OpenBLAS core %s, %d "
           "rounds x %d calls, interleaved\n",
           arch, N, threads, dp_blas_corename(), rounds, iters);
    printf("uniform plan: ratio %.4f, round_to %d -> FLOPs %lld -> %lld (-%.2f%%, F = %.3f), "
           "params %lld -> %lld\nwidths:",
           ratio, round_to, (long long)dp_model_flops(&before), (long long)dp_model_flops(&after),
           100 * (1 - 1 / F), F, (long long)dp_model_params(&before),
           (long long)dp_model_params(&after));
    for (int i = 1; i < after.n_nodes; i++)
        if (after.nodes[i].op == DP_OP_CONV) printf(" %d", after.nodes[i].c);
    printf("\n");

    int cap = rounds * iters;
    subject s[2];
    st = subject_init(&s[0], "before", &before, N, cap, &err);
    if (st == DP_OK) st = subject_init(&s[1], "after", &after, N, cap, &err);
    size_t nx = (size_t)N * 3 * 32 * 32;
    float *x = dp_alloc_floats(nx);
    int32_t *y = calloc((size_t)N, sizeof(int32_t));
    uint64_t *keys = calloc((size_t)N, sizeof(uint64_t));
    if (st != DP_OK || !x || !y || !keys) {
        fprintf(stderr, "bench_prune_speedup: %s\n", st != DP_OK ? err.msg : "out of memory");
        return 1;
    }
    dp_rng r;
    dp_rng_init(&r, 7, 0, 0, 0);
    for (size_t i = 0; i < nx; i++) x[i] = (float)dp_rng_normal(&r);
    for (int i = 0; i < N; i++) y[i] = (int32_t)((i * 7919u) % 10u), keys[i] = (uint64_t)i;
    batch b = {x, y, keys, N};
    for (int k = 0; k < 2; k++) infer_once(&s[k], &b, NULL), train_once(&s[k], &b, NULL);
    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < 2; k++) measure_round(&s[(k + round) % 2], &b, iters);

    double ti[2], tt[2];
    for (int k = 0; k < 2; k++) {
        ti[k] = median(s[k].infer_s, s[k].calls), tt[k] = median(s[k].train_s, s[k].calls);
    }
    double Si = ti[0] / ti[1], St = tt[0] / tt[1];
    printf("\n%-8s %14s %14s %14s %14s\n", "model", "infer img/s", "infer ms", "train img/s",
           "train step ms");
    for (int k = 0; k < 2; k++)
        printf("%-8s %14.1f %14.3f %14.1f %14.3f\n", s[k].label, N / ti[k], 1e3 * ti[k], N / tt[k],
               1e3 * tt[k]);
    printf("FLOPs ratio F = %.3f\n", F);
    printf("inference speed-up %.3f = %.3f of F (target >= 0.8: %s)\n", Si, Si / F,
           Si / F >= 0.8 ? "met" : "not met");
    printf("training speed-up  %.3f = %.3f of F (target >= 0.7: %s)\n", St, St / F,
           St / F >= 0.7 ? "met" : "not met");

    double *ms[2][2];
    for (int k = 0; k < 2; k++) {
        ms[k][0] = calloc((size_t)s[k].m->n_nodes, sizeof(double));
        ms[k][1] = calloc((size_t)s[k].m->n_nodes, sizeof(double));
        node_medians(&s[k], s[k].infer_node_s, ms[k][0]);
        node_medians(&s[k], s[k].train_node_s, ms[k][1]);
        printf("\nper-layer times %s pruning (median ms per batch of %d; train = forward + "
               "backward, without loss and SGD step)\n",
               k == 0 ? "before" : "after", N);
        dp_profile_print_layers(s[k].m, ms[k][0], ms[k][1], stdout);
    }
    print_compare(&before, ms[0][0], ms[0][1], &after, ms[1][0], ms[1][1]);
    printf("\nRESULT model=%s batch=%d threads=%d core=%s flops_ratio=%.4f infer_speedup=%.4f "
           "infer_frac=%.4f train_speedup=%.4f train_frac=%.4f infer_ips_before=%.2f "
           "infer_ips_after=%.2f train_ms_before=%.3f train_ms_after=%.3f\n",
           arch, N, threads, dp_blas_corename(), F, Si, Si / F, St, St / F, N / ti[0], N / ti[1],
           1e3 * tt[0], 1e3 * tt[1]);

    for (int k = 0; k < 2; k++) free(ms[k][0]), free(ms[k][1]), subject_free(&s[k]);
    dp_free(x), free(y), free(keys);
    dp_plan_free(&plan);
    dp_scores_free(&sc);
    dp_groups_free(&gs);
    dp_model_free(&after);
    dp_model_free(&before);
    return 0;
}
