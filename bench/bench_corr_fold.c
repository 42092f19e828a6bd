/* What CorrTopo's fold does to the network right after surgery: the checkpoint's model is cut
 * by the config's corr round three times (no fold, mean fold, mean + compensation; BN not
 * re-estimated), and on the first N test images every conv/linear whose width the cut leaves
 * alone is compared with the uncut model (relative squared error and mean error of its
 * outputs), with the logits and the top-1 of the cut model.
 *
 *   bench_corr_fold CONF CHECKPOINT [N]      (one process; CONF's prune section is used) */
#include "app.h"
#include <stdlib.h>
#include <string.h>

static void forward(dp_model *m, dp_activations *a, const float *x, int N) {
    dp_forward_opts o = {0};
    dp_model_forward(m, a, x, N, &o);
}

/* Rows of node i compared: every node with the same width before and after. */
static void compare(const dp_model *m0, const dp_activations *a0, const dp_model *m1,
                    const dp_activations *a1, int N, const dp_app_data *d) {
    for (int i = 1; i < m0->n_nodes; i++) {
        const dp_node *n = &m0->nodes[i];
        if ((n->op != DP_OP_CONV && n->op != DP_OP_LINEAR) || m1->nodes[i].c != n->c) continue;
        size_t len = (size_t)N * n->c * n->h * n->w;
        double err = 0, ref = 0, mean = 0;
        for (size_t j = 0; j < len; j++) {
            double e = (double)a1->out[i][j] - a0->out[i][j];
            err += e * e, ref += (double)a0->out[i][j] * a0->out[i][j], mean += e;
        }
        printf("  %-12s relative squared error %.4f  mean error %+.4f\n", n->name, err / ref,
               mean / (double)len);
    }
    int K = m0->num_classes, out = dp_model_output_node(m0), correct = 0;
    for (int s = 0; s < N; s++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (a1->out[out][s * K + k] > a1->out[out][s * K + best]) best = k;
        correct += best == d->test.ds->labels[d->test.index[s]];
    }
    printf("  top-1 of the cut model on these %d images: %.2f%%\n", N, 100.0 * correct / N);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_corr_fold CONF CHECKPOINT [N]\n");
        return 2;
    }
    dp_app app;
    memset(&app, 0, sizeof app);
    dp_error err = {0};
    if (dp_dist_init(&argc, &argv, &app.dist, &err) != DP_OK) return 1;
    app.threads = dp_threads_setup(1);
    dp_app_data d;
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    if (app_load_config(&app, argv[1], &err) || app_open_data(&app.cfg, &d, &err) ||
        dp_checkpoint_load(&ck, argv[2], &err)) {
        fprintf(stderr, "bench_corr_fold: %s\n", err.msg);
        return 1;
    }
    int N = argc > 3 ? atoi(argv[3]) : 500;
    if (N > d.test.n) N = (int)d.test.n;
    size_t per = (size_t)d.aug.out_c * d.aug.out_h * d.aug.out_w;
    float *x = malloc(sizeof(float) * per * (size_t)N);
    for (int i = 0; i < N; i++)
        if (dp_make_sample(d.test.ds, d.test.index[i], &d.aug, false, 1, 0, x + per * i, &err)) {
            fprintf(stderr, "bench_corr_fold: %s\n", err.msg);
            return 1;
        }
    dp_activations a0;
    if (dp_activations_alloc(&a0, &ck.model, N, &err)) return 1;
    forward(&ck.model, &a0, x, N);
    static const char *names[3] = {"no fold", "mean fold", "mean fold + compensation"};
    char dir[DP_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", app.cfg.run.dir);
    for (int v = 0; v < 3; v++) {
        app.cfg.prune.corr_fold = v >= 1;
        app.cfg.prune.corr_compensate = v == 2;
        app.cfg.prune.bn_recalib_batches = 0;
        snprintf(app.cfg.run.dir, sizeof app.cfg.run.dir, "%.400s/bench_corr_fold%d", dir, v);
        dp_model copy;
        trainer t;
        dp_activations a1;
        if (dp_model_copy(&copy, &ck.model, true, &err) ||
            trainer_init(&t, &app, &d, &copy, &err) || app_plan_and_cut(&t, 1, &err) ||
            dp_activations_alloc(&a1, t.m, N, &err)) {
            fprintf(stderr, "bench_corr_fold: %s\n", err.msg);
            return 1;
        }
        forward(t.m, &a1, x, N);
        printf("%s:\n", names[v]);
        compare(&ck.model, &a0, t.m, &a1, N, &d);
        dp_activations_free(&a1, t.m);
        trainer_free(&t);
        dp_model_free(&copy);
    }
    dp_activations_free(&a0, &ck.model);
    dp_checkpoint_free(&ck);
    free(x);
    app_close_data(&d);
    dp_dist_finalize();
    return 0;
}
