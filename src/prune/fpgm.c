/* FPGM (He et al., CVPR 2019): filters near the geometric median of their layer are
 * replaceable. s_j = sum_j' ||F_j - F_j'||_2; the distance matrix comes from one Gram GEMM in
 * double, ||a-b||^2 = ||a||^2 + ||b||^2 - 2 a.b, clamped at 0 (cancellation can make it
 * slightly negative) before the square root. */
#include "prune_internal.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Adds the FPGM scores of one writer's n filters (rows of len floats) to scores. */
static dp_status add_writer_scores(const float *w, int n, size_t len, double *scores,
                                   dp_error *err) {
    double *F = malloc(sizeof(double) * (size_t)n * len);
    double *G = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (!F || !G) {
        free(F), free(G);
        return dp_fail(err, DP_ERR_NOMEM, "fpgm: out of memory for %d filters of %zu weights", n,
                       len);
    }
    for (size_t i = 0; i < (size_t)n * len; i++) F[i] = w[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, (int)len, 1.0, F, (int)len, F,
                (int)len, 0.0, G, n);
    for (int a = 0; a < n; a++) {
        double sum = 0;
        for (int b = 0; b < n; b++) {
            if (a == b) continue;
            double d2 = G[(size_t)a * n + a] + G[(size_t)b * n + b] - 2.0 * G[(size_t)a * n + b];
            sum += sqrt(d2 > 0 ? d2 : 0);
        }
        scores[a] += sum;
    }
    free(F);
    free(G);
    return DP_OK;
}

dp_status dp_score_fpgm(const dp_model *m, const dp_channel_group *g, double *scores,
                        dp_error *err) {
    memset(scores, 0, sizeof(double) * (size_t)g->channels);
    for (int k = 0; k < g->n_writers; k++) {
        const dp_node *n = &m->nodes[g->writers[k]];
        const dp_tensor_view *v = &m->params[n->p[0]];
        dp_status st = add_writer_scores(dp_param_ptr(m, n->p[0]), v->dims[0],
                                         v->numel / (size_t)v->dims[0], scores, err);
        if (st != DP_OK) return st;
    }
    return DP_OK;
}
