/* The before/after report of the pruning phase: what the models are (per-layer widths,
 * params, FLOPs), how accurate and how fast, printed side by side and kept in checkpoints. */
#include "prune_report.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Inference images/s of the model on this rank (eval mode, random input), median of runs. */
double measure_inference(const dp_model *m, int batch) {
    dp_activations a;
    dp_error err = {0};
    if (dp_activations_alloc(&a, m, batch, &err) != DP_OK) return 0;
    size_t n = (size_t)batch * m->in_c * m->in_h * m->in_w;
    float *x = dp_alloc_floats(n);
    if (!x) {
        dp_activations_free(&a, m);
        return 0;
    }
    dp_rng r;
    dp_rng_init(&r, 1, 2, 3, 4);
    for (size_t i = 0; i < n; i++) x[i] = (float)dp_rng_normal(&r);
    dp_forward_opts fo = {.train = false};
    dp_model_forward(m, &a, x, batch, &fo); /* warm-up */
    double times[7];
    for (int k = 0; k < 7; k++) {
        double t0 = dp_now_seconds();
        dp_model_forward(m, &a, x, batch, &fo);
        times[k] = dp_now_seconds() - t0;
    }
    for (int i = 1; i < 7; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
            double tmp = times[j];
            times[j] = times[j - 1], times[j - 1] = tmp;
        }
    dp_free(x);
    dp_activations_free(&a, m);
    return batch / times[3];
}

void facts_take(const dp_model *m, model_facts *f) {
    f->width = calloc((size_t)m->n_nodes, sizeof(int));
    f->params = calloc((size_t)m->n_nodes, sizeof(int64_t));
    f->flops = calloc((size_t)m->n_nodes, sizeof(int64_t));
    for (int i = 0; i < m->n_nodes && f->width && f->params && f->flops; i++) {
        f->width[i] = m->nodes[i].c;
        f->params[i] = dp_node_params(m, i);
        f->flops[i] = dp_node_flops(m, i);
    }
    f->total_params = dp_model_params(m);
    f->total_flops = dp_model_flops(m);
}

/* The baseline survives a resume inside the checkpoint's metrics summary:
 * "baseline":"params flops top1 top5 img/s","layers":"node width params flops;..." */
void facts_to_summary(const model_facts *f, const dp_model *m, char *out, size_t n) {
    int w = snprintf(out, n, "\"baseline\":\"%lld %lld %.9g %.9g %.6g\",\"layers\":\"",
                     (long long)f->total_params, (long long)f->total_flops, f->top1, f->top5,
                     f->images_per_s);
    for (int i = 0; i < m->n_nodes && w > 0 && (size_t)w + 64 < n; i++)
        if (m->nodes[i].op == DP_OP_CONV || m->nodes[i].op == DP_OP_LINEAR)
            w += snprintf(out + w, n - (size_t)w, "%d %d %lld %lld;", i, f->width[i],
                          (long long)f->params[i], (long long)f->flops[i]);
    if (w > 0 && (size_t)w + 2 < n) snprintf(out + w, n - (size_t)w, "\"");
}

bool facts_from_summary(const char *s, const dp_model *m, model_facts *f) {
    const char *b = strstr(s, "\"baseline\":\""), *l = strstr(s, "\"layers\":\"");
    if (!b || !l) return false;
    long long p, fl;
    if (sscanf(b + 12, "%lld %lld %lf %lf %lf", &p, &fl, &f->top1, &f->top5, &f->images_per_s) != 5)
        return false;
    f->total_params = p, f->total_flops = fl;
    f->width = calloc((size_t)m->n_nodes, sizeof(int));
    f->params = calloc((size_t)m->n_nodes, sizeof(int64_t));
    f->flops = calloc((size_t)m->n_nodes, sizeof(int64_t));
    if (!f->width || !f->params || !f->flops) return false;
    for (const char *q = l + 10; *q && *q != '"';) {
        int node, width, used = 0;
        long long np, nf;
        if (sscanf(q, "%d %d %lld %lld;%n", &node, &width, &np, &nf, &used) != 4 || used == 0)
            break;
        if (node >= 0 && node < m->n_nodes)
            f->width[node] = width, f->params[node] = np, f->flops[node] = nf;
        q += used;
    }
    return true;
}

void facts_free(model_facts *f) {
    free(f->width);
    free(f->params);
    free(f->flops);
}

void print_summary(trainer *t, const dp_model *m, const model_facts *before,
                   const model_facts *after) {
    if (t->app->dist.rank != 0) return;
    FILE *o = stdout;
    fprintf(o, "\n%-26s %9s %9s %12s %12s %14s %14s\n", "layer", "ch.before", "ch.after",
            "params.bef", "params.aft", "FLOPs.before", "FLOPs.after");
    for (int i = 0; i < m->n_nodes && before->width && after->width; i++) {
        dp_op op = m->nodes[i].op;
        if (op != DP_OP_CONV && op != DP_OP_LINEAR) continue;
        fprintf(o, "%-26s %9d %9d %12lld %12lld %14lld %14lld\n", m->nodes[i].name,
                before->width[i], after->width[i], (long long)before->params[i],
                (long long)after->params[i], (long long)before->flops[i],
                (long long)after->flops[i]);
    }
    fprintf(o, "\n%-12s %14s %14s %9s %9s %12s\n", "model", "params", "FLOPs", "top1 %", "top5 %",
            "infer img/s");
    fprintf(o, "%-12s %14lld %14lld %9.2f %9.2f %12.0f\n", "baseline",
            (long long)before->total_params, (long long)before->total_flops, 100 * before->top1,
            100 * before->top5, before->images_per_s);
    fprintf(o, "%-12s %14lld %14lld %9.2f %9.2f %12.0f\n", "pruned", (long long)after->total_params,
            (long long)after->total_flops, 100 * after->top1, 100 * after->top5,
            after->images_per_s);
    fprintf(o, "params -%.2f%%  FLOPs -%.2f%%  accuracy kept %.2f%% of baseline  inference %.2fx\n",
            100.0 * (1 - (double)after->total_params / before->total_params),
            100.0 * (1 - (double)after->total_flops / before->total_flops),
            before->top1 > 0 ? 100.0 * after->top1 / before->top1 : 0,
            before->images_per_s > 0 ? after->images_per_s / before->images_per_s : 0);
    dp_metrics_write(t->metrics,
                     "\"type\":\"prune_summary\",\"params_before\":%lld,\"params_after\":%lld,"
                     "\"flops_before\":%lld,\"flops_after\":%lld,\"top1_before\":%.6f,"
                     "\"top1_after\":%.6f,\"top5_before\":%.6f,\"top5_after\":%.6f,"
                     "\"infer_img_s_before\":%.1f,\"infer_img_s_after\":%.1f",
                     (long long)before->total_params, (long long)after->total_params,
                     (long long)before->total_flops, (long long)after->total_flops, before->top1,
                     after->top1, before->top5, after->top5, before->images_per_s,
                     after->images_per_s);
}
