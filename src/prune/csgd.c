/* C-SGD's training side (METHODS.md section 6): clusters, the centripetal gradient transform,
 * the deviation that says how close members are, and its predicted decay.
 *
 * Why the decay is predictable: for two members j, k of one cluster the transformed gradients
 * differ by (eta + eps)(x_j - x_k) -- the loss gradient enters only through the cluster mean,
 * which both receive. So with the momentum of clustered tensors started at zero, every
 * difference follows the same scalar linear recurrence whatever the data, and the deviation
 * (a sum of squared differences) shrinks by the square of its factor. */
#include "csgd_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int csgd_group_tensors(const dp_model *m, const dp_channel_group *g, bool buffers, csgd_tensor *out,
                       int max) {
    int n = 0;
    for (int w = 0; w < g->n_writers; w++) {
        const dp_node *nd = &m->nodes[g->writers[w]];
        for (int k = 0; k < 2 && n < max; k++)
            if (nd->p[k] >= 0)
                out[n++] = (csgd_tensor){.param = nd->p[k],
                                         .buffer = -1,
                                         .kernel = k == 0,
                                         .row = m->params[nd->p[k]].numel / (size_t)g->channels};
    }
    for (int b = 0; b < g->n_bns; b++) {
        const dp_node *nd = &m->nodes[g->bns[b]];
        for (int k = 0; k < 2 && n < max; k++)
            if (nd->p[k] >= 0) out[n++] = (csgd_tensor){.param = nd->p[k], .buffer = -1, .row = 1};
        for (int k = 0; k < 2 && buffers && n < max; k++)
            if (nd->buf[k] >= 0)
                out[n++] = (csgd_tensor){.param = -1, .buffer = nd->buf[k], .row = 1};
    }
    return n;
}

/* ---- clusters ---- */

void dp_csgd_clusters_free(dp_csgd_clusters *cl) {
    for (int g = 0; g < cl->n_groups; g++) {
        if (cl->assign) free(cl->assign[g]);
        if (cl->members) free(cl->members[g]);
        if (cl->first) free(cl->first[g]);
    }
    free(cl->assign);
    free(cl->members);
    free(cl->first);
    free(cl->channels);
    free(cl->n_clusters);
    memset(cl, 0, sizeof *cl);
}

dp_status csgd_clusters_alloc(dp_csgd_clusters *cl, int n, dp_error *err) {
    memset(cl, 0, sizeof *cl);
    cl->n_groups = n;
    cl->channels = calloc((size_t)n + 1, sizeof(int));
    cl->n_clusters = calloc((size_t)n + 1, sizeof(int));
    cl->assign = calloc((size_t)n + 1, sizeof(int *));
    cl->members = calloc((size_t)n + 1, sizeof(int *));
    cl->first = calloc((size_t)n + 1, sizeof(int *));
    if (!cl->channels || !cl->n_clusters || !cl->assign || !cl->members || !cl->first) {
        dp_csgd_clusters_free(cl);
        return dp_fail(err, DP_ERR_NOMEM, "C-SGD clusters: out of memory");
    }
    return DP_OK;
}

dp_status dp_csgd_clusters_init(dp_csgd_clusters *cl, const dp_groups *gs, dp_error *err) {
    dp_status st = csgd_clusters_alloc(cl, gs->n_groups, err);
    for (int g = 0; g < gs->n_groups && st == DP_OK; g++) cl->channels[g] = gs->groups[g].channels;
    return st;
}

dp_status dp_csgd_index(dp_csgd_clusters *cl, int g, dp_error *err) {
    int C = cl->channels[g], k = cl->n_clusters[g];
    int *a = cl->assign[g];
    free(cl->members[g]);
    free(cl->first[g]);
    cl->members[g] = cl->first[g] = NULL;
    if (k == 0) return DP_OK;
    if (!a || k < 1 || k > C)
        return dp_fail(err, DP_ERR_ARG, "C-SGD clusters of group %d: %d clusters of %d channels", g,
                       k, C);
    int *rename = malloc(sizeof(int) * (size_t)k);
    int *members = malloc(sizeof(int) * (size_t)C), *first = calloc((size_t)k + 1, sizeof(int));
    if (!rename || !members || !first) {
        free(rename), free(members), free(first);
        return dp_fail(err, DP_ERR_NOMEM, "C-SGD clusters: out of memory");
    }
    for (int c = 0; c < k; c++) rename[c] = -1;
    int next = 0;
    dp_status st = DP_OK;
    for (int c = 0; c < C && st == DP_OK; c++) { /* canonical ids: by lowest member */
        if (a[c] < 0 || a[c] >= k)
            st = dp_fail(err, DP_ERR_ARG,
                         "C-SGD clusters of group %d: channel %d in cluster %d "
                         "(of %d)",
                         g, c, a[c], k);
        else if (rename[a[c]] < 0)
            rename[a[c]] = next++;
    }
    if (st == DP_OK && next != k)
        st = dp_fail(err, DP_ERR_ARG, "C-SGD clusters of group %d: %d of %d clusters are empty", g,
                     k - next, k);
    if (st == DP_OK) {
        for (int c = 0; c < C; c++) a[c] = rename[a[c]], first[a[c] + 1]++;
        for (int c = 0; c < k; c++) first[c + 1] += first[c];
        int *fill = rename; /* reused as the insertion cursor of each cluster */
        memcpy(fill, first, sizeof(int) * (size_t)k);
        for (int c = 0; c < C; c++) members[fill[a[c]]++] = c; /* ascending within a cluster */
        cl->members[g] = members, cl->first[g] = first;
        members = first = NULL;
    }
    free(rename), free(members), free(first);
    return st;
}

dp_status dp_csgd_cluster_group(const dp_model *m, const dp_groups *gs, int g, int k,
                                dp_csgd_method method, uint64_t seed, int n_init,
                                dp_csgd_clusters *cl, dp_error *err) {
    const dp_channel_group *grp = &gs->groups[g];
    int C = grp->channels;
    free(cl->assign[g]);
    cl->assign[g] = NULL;
    cl->n_clusters[g] = 0;
    cl->channels[g] = C;
    if (k >= C || k < 1) return dp_csgd_index(cl, g, err);
    if (grp->n_writers < 1)
        return dp_fail(err, DP_ERR_ARG, "C-SGD: group %s has no conv or linear writer", grp->name);
    int *a = malloc(sizeof(int) * (size_t)C);
    if (!a) return dp_fail(err, DP_ERR_NOMEM, "C-SGD clusters: out of memory");
    if (method == DP_CSGD_EVEN) {
        for (int c = 0; c < C; c++) a[c] = (int)((int64_t)c * k / C);
    } else { /* the pacesetter's filters, as the papers cluster them */
        const dp_node *w = &m->nodes[grp->writers[0]];
        size_t d = m->params[w->p[0]].numel / (size_t)C;
        dp_kmeans(dp_param_ptr(m, w->p[0]), C, (int)d, k,
                  seed ^ (uint64_t)g * 0x9E3779B97F4A7C15ull, n_init, 100, a);
    }
    cl->assign[g] = a;
    cl->n_clusters[g] = k;
    return dp_csgd_index(cl, g, err);
}

/* ---- the transform ---- */

/* One tensor of one group: rows [C][row] of x (params) and gx (grads). Column by column, so
 * the means are two scalars and the training step allocates nothing. */
static void centripetal_rows(float *x, float *gx, size_t row, const int *members, const int *first,
                             int k, double eta, double eps) {
#pragma omp parallel for schedule(static) if ((size_t)k * row > 16384)
    for (int h = 0; h < k; h++) {
        int a = first[h], b = first[h + 1];
        double inv = 1.0 / (b - a);
        for (size_t j = 0; j < row; j++) {
            double mg = 0, mx = 0;
            for (int i = a; i < b; i++) {
                size_t at = (size_t)members[i] * row + j;
                mg += gx[at], mx += x[at];
            }
            mg *= inv, mx *= inv;
            for (int i = a; i < b; i++) {
                size_t at = (size_t)members[i] * row + j;
                gx[at] = (float)(mg + eta * x[at] + eps * (x[at] - mx));
            }
        }
    }
}

void dp_csgd_transform(dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                       const dp_csgd_strength *s) {
    csgd_tensor ts[CSGD_MAX_TENSORS];
    for (int g = 0; g < cl->n_groups; g++) {
        if (!cl->n_clusters[g]) continue;
        int n = csgd_group_tensors(m, &gs->groups[g], false, ts, CSGD_MAX_TENSORS);
        for (int i = 0; i < n; i++) {
            double eta = ts[i].kernel ? s->weight_decay : 0.0;
            double eps = ts[i].kernel ? s->centripetal : s->vector_ratio * s->centripetal;
            centripetal_rows(dp_param_ptr(m, ts[i].param), dp_grad_ptr(m, ts[i].param), ts[i].row,
                             cl->members[g], cl->first[g], cl->n_clusters[g], eta, eps);
        }
    }
}

void dp_csgd_set_decay(dp_sgd *opt, const dp_model *m, const dp_groups *gs,
                       const dp_csgd_clusters *cl, bool on, double decay) {
    csgd_tensor ts[CSGD_MAX_TENSORS];
    for (int g = 0; g < cl->n_groups; g++) {
        if (!cl->n_clusters[g]) continue;
        int n = csgd_group_tensors(m, &gs->groups[g], false, ts, CSGD_MAX_TENSORS);
        for (int i = 0; i < n; i++) opt->decay[ts[i].param] = on ? decay : 0.0;
    }
}

void dp_csgd_reset_momentum(dp_sgd *opt, const dp_model *m, const dp_groups *gs,
                            const dp_csgd_clusters *cl) {
    csgd_tensor ts[CSGD_MAX_TENSORS];
    for (int g = 0; g < cl->n_groups && opt->momentum; g++) {
        if (!cl->n_clusters[g]) continue;
        int n = csgd_group_tensors(m, &gs->groups[g], false, ts, CSGD_MAX_TENSORS);
        for (int i = 0; i < n; i++)
            memset(opt->momentum + m->params[ts[i].param].offset, 0,
                   sizeof(float) * m->params[ts[i].param].numel);
    }
}

/* ---- deviation ---- */

static void deviation_rows(const float *x, size_t row, const int *members, const int *first, int k,
                           double *dev, double *norm2) {
    double d = 0, nn = 0;
#pragma omp parallel for reduction(+ : d, nn) schedule(static) if ((size_t)k * row > 16384)
    for (int h = 0; h < k; h++) {
        int a = first[h], b = first[h + 1];
        for (size_t j = 0; j < row; j++) {
            double mean = 0;
            for (int i = a; i < b; i++) mean += x[(size_t)members[i] * row + j];
            mean /= (b - a);
            for (int i = a; i < b; i++) {
                double v = x[(size_t)members[i] * row + j];
                d += (v - mean) * (v - mean);
                nn += v * v;
            }
        }
    }
    *dev += d, *norm2 += nn;
}

void dp_csgd_measure(const dp_model *m, const dp_groups *gs, const dp_csgd_clusters *cl,
                     dp_csgd_deviation *d) {
    memset(d, 0, sizeof *d);
    csgd_tensor ts[CSGD_MAX_TENSORS];
    for (int g = 0; g < cl->n_groups; g++) {
        if (!cl->n_clusters[g]) continue;
        int n = csgd_group_tensors(m, &gs->groups[g], false, ts, CSGD_MAX_TENSORS);
        for (int i = 0; i < n; i++)
            deviation_rows(dp_param_ptr(m, ts[i].param), ts[i].row, cl->members[g], cl->first[g],
                           cl->n_clusters[g], ts[i].kernel ? &d->kernel : &d->vector,
                           ts[i].kernel ? &d->kernel_norm2 : &d->vector_norm2);
    }
}

double dp_csgd_relative(const dp_csgd_deviation *d) {
    double k = d->kernel_norm2 > 0 ? d->kernel / d->kernel_norm2 : 0;
    double v = d->vector_norm2 > 0 ? d->vector / d->vector_norm2 : 0;
    return k > v ? k : v;
}

double dp_csgd_decay_factor(const double *lr, int64_t steps, double mu, bool nesterov, double c) {
    /* one member difference x and its momentum difference b, as dp_sgd_step moves them */
    double x = 1, b = 0;
    for (int64_t s = 0; s < steps; s++) {
        double g = c * x;
        b = mu * b + g;
        x -= lr[s] * (nesterov ? g + mu * b : b);
    }
    return fabs(x);
}
