/* The PCC training term (METHODS.md section 4) on a whole network: which maps it covers, and one
 * pass over them after a train-mode forward that computes every (map, sample) pcc and writes
 * the term's gradient into the maps' activation gradients for backward to carry on.
 *
 * Which maps: the scored map of every prunable group (dp_group_scored_nodes, the maps the
 * calibration of ci/corr/hrank reads), so the term builds redundancy exactly where CI will
 * look for it. Maps of one pixel (after a linear layer or global pooling) have no pixels to
 * correlate: they are left out instead of counting as zeros in the mean.
 *
 * Cost: samples are independent, so the (map, sample) pairs are shared dynamically among the
 * threads, each with its own workspace, and the BLAS calls inside run single-threaded. Each
 * pair's value lands in its own slot and the slots are summed in a fixed order afterwards, so
 * the result does not depend on the thread count. */
#include "dprune/prune.h"
#include "dprune/prune_criteria.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_MAPS_PER_GROUP = 64 };

void dp_pcc_term_free(dp_pcc_term *t) {
    free(t->nodes);
    free(t->ws);
    free(t->values);
    memset(t, 0, sizeof *t);
}

static bool has_pixels(const dp_node *n) {
    return n->h * n->w > 1 && n->c > 1;
}

dp_status dp_pcc_term_init(dp_pcc_term *t, const dp_model *m, const dp_groups *gs, double lambda,
                           int cap, dp_error *err) {
    memset(t, 0, sizeof *t);
    t->lambda = lambda;
    t->cap = cap;
    t->nodes = malloc(sizeof(int) * (size_t)(m->n_nodes > 0 ? m->n_nodes : 1));
    if (!t->nodes) return dp_fail(err, DP_ERR_NOMEM, "PCC term: out of memory");
    size_t ws_len = 1;
    for (int g = 0; g < gs->n_groups; g++) {
        if (!gs->groups[g].prunable) continue;
        int nodes[MAX_MAPS_PER_GROUP];
        int k = dp_group_scored_nodes(m, &gs->groups[g], nodes, MAX_MAPS_PER_GROUP);
        for (int j = 0; j < k; j++) {
            const dp_node *n = &m->nodes[nodes[j]];
            if (!has_pixels(n)) continue;
            t->nodes[t->n_maps++] = nodes[j];
            size_t need = dp_pcc_workspace_doubles(n->c, n->h * n->w);
            if (need > ws_len) ws_len = need;
        }
    }
    if (t->n_maps == 0) {
        dp_pcc_term_free(t);
        return dp_fail(err, DP_ERR_CONFIG,
                       "the PCC term needs a prunable group with a post-ReLU map of more than one "
                       "pixel and channel; this model has none (prune.protect, protect_first and "
                       "residual decide which groups are prunable)");
    }
    t->threads = dp_threads_count();
    t->ws_len = ws_len;
    t->ws = malloc(sizeof(double) * ws_len * (size_t)t->threads);
    t->values = malloc(sizeof(double) * (size_t)t->n_maps * (size_t)(cap > 0 ? cap : 1));
    if (!t->ws || !t->values) {
        dp_pcc_term_free(t);
        return dp_fail(err, DP_ERR_NOMEM, "PCC term: out of memory");
    }
    return DP_OK;
}

/* values[j * N + n] = pcc of map j, sample n; with grad, dout of map j = coef * d pcc / d map. */
static void all_pairs(dp_pcc_term *t, const dp_model *m, dp_activations *a, int N, bool grad,
                      double coef) {
    const long pairs = (long)t->n_maps * N;
#pragma omp parallel num_threads(t->threads)
    {
        double *ws = t->ws + t->ws_len * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (long i = 0; i < pairs; i++) {
            int j = (int)(i / N), n = (int)(i % N);
            const dp_node *node = &m->nodes[t->nodes[j]];
            int C = node->c, P = node->h * node->w;
            size_t at = (size_t)n * C * P;
            const float *A = a->out[t->nodes[j]] + at;
            t->values[i] =
                grad ? dp_pcc_sample_grad(C, P, A, coef, a->dout[t->nodes[j]] + at, ws, t->ws_len)
                     : dp_pcc_sample(C, P, A, NULL, ws, t->ws_len);
        }
    }
}

static double mean_over_maps_summed(const dp_pcc_term *t, int N) {
    double sum = 0;
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int j = 0; j < t->n_maps; j++) s += t->values[(size_t)j * N + n];
        sum += s / t->n_maps;
    }
    return sum;
}

double dp_pcc_term_apply(dp_pcc_term *t, const dp_model *m, dp_activations *a, int N,
                         double scale) {
    if (N <= 0 || N > t->cap) return N <= 0 ? 0.0 : NAN; /* a caller bug: make it loud */
    all_pairs(t, m, a, N, true, -t->lambda * scale / t->n_maps);
    for (int j = 0; j < t->n_maps; j++) dp_activations_grad_written(a, m, t->nodes[j]);
    return mean_over_maps_summed(t, N);
}

double dp_pcc_term_value(dp_pcc_term *t, const dp_model *m, dp_activations *a, int N) {
    if (N <= 0 || N > t->cap) return N <= 0 ? 0.0 : NAN;
    all_pairs(t, m, a, N, false, 0.0);
    return mean_over_maps_summed(t, N);
}
