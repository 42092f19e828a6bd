/* CorrTopo's fold applied in surgery (METHODS section 2): the removed channels of a group are
 * replaced, inside every consumer, by their reconstruction from the kept channels of the map
 * that consumer reads, so what the consumer computes changes as little as the statistics
 * allow (not at all for dead channels and exact affine combinations). The per-consumer math
 * is dp_corr_fold_consumer (crit_corr.c); this file finds the consumers, their rows after
 * the surgery and where each one's constant goes. */
#include "dprune/prune_criteria.h"
#include "prune_internal.h"
#include <stdlib.h>
#include <string.h>

int dp_corr_read_map(const dp_model *m, int consumer) {
    int x = m->nodes[consumer].in[0];
    while (m->nodes[x].op == DP_OP_FLATTEN || m->nodes[x].op == DP_OP_DROPOUT)
        x = m->nodes[x].in[0];
    return x;
}

int dp_corr_read_maps(const dp_model *m, const dp_channel_group *g, int *out, int max) {
    int n = 0;
    for (int i = 0; i < g->n_consumers; i++) {
        int r = dp_corr_read_map(m, g->consumers[i].node), seen = 0;
        for (int j = 0; j < n && !seen; j++) seen = out[j] == r;
        if (!seen && n < max) out[n++] = r;
    }
    return n;
}

bool dp_corr_map_positional(const dp_model *m, const dp_channel_group *g, int map) {
    if (m->nodes[map].h * m->nodes[map].w <= 1) return false;
    for (int i = 0; i < g->n_consumers; i++) {
        int c = g->consumers[i].node;
        if (dp_corr_read_map(m, c) == map && m->nodes[c].op != DP_OP_LINEAR) return false;
    }
    return true;
}

dp_corr_offset_target dp_corr_offset_of(const dp_model *m, int consumer, int *bn) {
    if (m->nodes[consumer].p[1] >= 0) return DP_CORR_OFFSET_BIAS;
    /* a running mean stands in for a bias only if the BN is the consumer's one reader */
    int readers = 0, found = -1;
    for (int i = consumer + 1; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] == consumer) {
                readers++;
                if (m->nodes[i].op == DP_OP_BN) found = i;
            }
    if (readers == 1 && found >= 0) {
        *bn = found;
        return DP_CORR_OFFSET_BN_MEAN;
    }
    return DP_CORR_OFFSET_NONE;
}

void dp_corr_fold_free(dp_corr_fold *f) {
    for (int i = 0; i < f->n_maps; i++) {
        free(f->maps[i].B);
        free(f->maps[i].a);
        free(f->maps[i].a_pos);
    }
    free(f->maps);
    memset(f, 0, sizeof *f);
}

/* removed [channels - n_keep]: the complement of the keep-list, ascending. */
static void removed_of(const dp_group_plan *gp, int *removed) {
    int nd = 0, j = 0;
    for (int c = 0; c < gp->channels; c++) {
        if (j < gp->n_keep && gp->keep[j] == c)
            j++;
        else
            removed[nd++] = c;
    }
}

/* Positional offsets a_pos [nd, P] = mpos[D_d, p] - sum_k B[k, d] mpos[K_k, p] (B NULL: 0). */
static void positional_offsets(int P, const double *mpos, int nk, const int *kept, int nd,
                               const int *removed, const double *B, double *a_pos) {
    for (int d = 0; d < nd; d++)
        for (int p = 0; p < P; p++) {
            double v = mpos[(size_t)removed[d] * P + p];
            for (int k = 0; k < nk && B; k++)
                v -= B[(size_t)k * nd + d] * mpos[(size_t)kept[k] * P + p];
            a_pos[(size_t)d * P + p] = v;
        }
}

dp_status dp_corr_fold_add(dp_corr_fold *f, int group, int node, int C, int P, bool positional,
                           const double *stats, const double *k, const dp_group_plan *gp,
                           bool compensate, double ridge, dp_error *err) {
    if (gp->channels != C || P < 1)
        return dp_fail(err, DP_ERR_ARG, "corr fold: map of %d channels x %d for group %s of %d", C,
                       P, gp->name, gp->channels);
    int nk = gp->n_keep, nd = C - nk;
    if (nd == 0) return DP_OK;
    dp_corr_fold_map *grown = realloc(f->maps, sizeof *grown * (size_t)(f->n_maps + 1));
    if (!grown) return dp_fail(err, DP_ERR_NOMEM, "corr fold: out of memory");
    f->maps = grown;
    dp_corr_fold_map *e = &f->maps[f->n_maps];
    *e = (dp_corr_fold_map){.group = group, .node = node, .nk = nk, .nd = nd, .P = P};
    size_t CC = (size_t)C * C;
    double *mu = malloc(sizeof(double) * (size_t)C), *Sigma = malloc(sizeof(double) * CC);
    double *mpos = positional ? malloc(sizeof(double) * (size_t)C * P) : NULL;
    double *Sigma_w = positional ? malloc(sizeof(double) * CC) : NULL;
    int *removed = malloc(sizeof(int) * (size_t)nd);
    e->a = malloc(sizeof(double) * (size_t)nd);
    if (compensate) e->B = malloc(sizeof(double) * (size_t)nk * nd);
    if (positional) e->a_pos = malloc(sizeof(double) * (size_t)nd * P);
    dp_status st = DP_OK;
    if (!mu || !Sigma || !removed || !e->a || (compensate && !e->B) ||
        (positional && (!mpos || !Sigma_w || !e->a_pos)))
        st = dp_fail(err, DP_ERR_NOMEM, "corr fold: out of memory for group %s", gp->name);
    if (st == DP_OK)
        st = positional ? dp_corr_pos_moments(C, P, stats, k, mu, Sigma, mpos, Sigma_w, err)
                        : dp_corr_moments(C, stats, k, mu, Sigma, err);
    if (st == DP_OK) {
        removed_of(gp, removed);
        /* with one offset per position, B explains what varies around the positions' means */
        if (compensate)
            st = dp_corr_compensation(C, positional ? Sigma_w : Sigma, mu, nk, gp->keep, nd,
                                      removed, ridge, e->B, e->a, err);
        else
            for (int d = 0; d < nd; d++) e->a[d] = mu[removed[d]];
        if (st == DP_OK && positional)
            positional_offsets(P, mpos, nk, gp->keep, nd, removed, e->B, e->a_pos);
    }
    free(mu), free(Sigma), free(mpos), free(Sigma_w), free(removed);
    if (st != DP_OK) {
        free(e->B), free(e->a), free(e->a_pos);
        return st;
    }
    f->n_maps++;
    return DP_OK;
}

/* Everything one entry's fold needs about the plan of its group. */
typedef struct {
    const dp_corr_fold_map *e;
    int C;
    const int *kept;
    int *removed;
} fold_group;

/* One consumer: rewrites its rows in the new model (row r of the new model is row rows[r] of
 * the old one, rows NULL = all kept) and puts the constant where dp_corr_offset_of says.
 * False if the new rows are not nk channels of the old rows' width. */
static bool fold_consumer_node(const dp_model *old_m, const dp_groups *gs, const dp_plan *p,
                               const fold_group *fg, int node, const float *old_mom,
                               dp_model *new_m, float *new_mom, double *delta, double *dmom) {
    const dp_corr_fold_map *e = fg->e;
    const dp_node *n = &old_m->nodes[node];
    const dp_tensor_view *vo = &old_m->params[n->p[0]], *vn = &new_m->params[n->p[0]];
    size_t row_old = vo->numel / (size_t)vo->dims[0], row_new = vn->numel / (size_t)vn->dims[0];
    size_t kk = row_old / (size_t)fg->C; /* floats of one channel in a row: k*k, or H*W */
    const dp_group_plan *own = &p->groups[gs->node_group[node]];
    const int *rows = own->n_keep == own->channels ? NULL : own->keep;
    int R = vn->dims[0];
    if (row_old % (size_t)fg->C != 0 || row_new != (size_t)e->nk * kk) return false;
    /* positional offsets: one per column, so only for a linear reading the map position-wise */
    if (e->a_pos && (n->op != DP_OP_LINEAR || kk != (size_t)e->P)) return false;
    const double *a = e->a_pos ? NULL : e->a;
    for (int r = 0; r < R; r++) {
        size_t ro = (size_t)(rows ? rows[r] : r);
        const float *w = old_m->param_data + vo->offset + ro * row_old;
        dp_corr_fold_consumer(1, fg->C, (int)kk, w, e->nk, fg->kept, e->nd, fg->removed, e->B, a,
                              new_m->param_data + vn->offset + (size_t)r * row_new, &delta[r]);
        if (e->a_pos)
            dp_corr_fold_offset_pos(1, fg->C, (int)kk, w, e->nd, fg->removed, e->a_pos, &delta[r]);
        dmom[r] = 0;
        if (!old_mom || !new_mom) continue;
        const float *v = old_mom + vo->offset + ro * row_old;
        dp_corr_fold_consumer(1, fg->C, (int)kk, v, e->nk, fg->kept, e->nd, fg->removed, e->B, a,
                              new_mom + vn->offset + (size_t)r * row_new, &dmom[r]);
        if (e->a_pos)
            dp_corr_fold_offset_pos(1, fg->C, (int)kk, v, e->nd, fg->removed, e->a_pos, &dmom[r]);
    }
    int bn = -1;
    switch (dp_corr_offset_of(old_m, node, &bn)) {
    case DP_CORR_OFFSET_BIAS: {
        size_t off = new_m->params[n->p[1]].offset;
        for (int r = 0; r < R; r++) {
            new_m->param_data[off + r] = (float)(new_m->param_data[off + r] + delta[r]);
            if (new_mom) new_mom[off + r] = (float)(new_mom[off + r] + dmom[r]);
        }
        break;
    }
    case DP_CORR_OFFSET_BN_MEAN: {
        /* eval: gamma (z + delta - rm) / s + beta = gamma (z - (rm - delta)) / s + beta */
        float *rm = dp_buffer_ptr(new_m, new_m->nodes[bn].buf[0]);
        for (int r = 0; r < R; r++) rm[r] = (float)(rm[r] - delta[r]);
        break;
    }
    case DP_CORR_OFFSET_NONE:
        break; /* nowhere to put it (the app says so when it plans the fold) */
    }
    return true;
}

static dp_status corr_fold(void *ctx, const dp_model *old_m, const dp_groups *gs, const dp_plan *p,
                           const float *old_mom, dp_model *new_m, float *new_mom, dp_error *err) {
    const dp_corr_fold *f = ctx;
    dp_status st = DP_OK;
    int max_rows = 1;
    for (int i = 0; i < old_m->n_params; i++)
        if (old_m->params[i].dims[0] > max_rows) max_rows = old_m->params[i].dims[0];
    double *delta = malloc(sizeof(double) * (size_t)max_rows);
    double *dmom = malloc(sizeof(double) * (size_t)max_rows);
    if (!delta || !dmom) st = dp_fail(err, DP_ERR_NOMEM, "corr fold: out of memory");
    for (int i = 0; i < f->n_maps && st == DP_OK; i++) {
        const dp_corr_fold_map *e = &f->maps[i];
        if (e->group < 0 || e->group >= gs->n_groups || e->node < 0 || e->node >= gs->n_nodes ||
            gs->node_group[e->node] != e->group) {
            st = dp_fail(err, DP_ERR_ARG,
                         "corr fold: entry %d (group %d, node %d) does not fit "
                         "the model",
                         i, e->group, e->node);
            break;
        }
        const dp_group_plan *gp = &p->groups[e->group];
        if (gp->n_keep != e->nk || gp->channels - gp->n_keep != e->nd) {
            st = dp_fail(err, DP_ERR_ARG, "corr fold: group %s keeps %d of %d, the fold %d of %d",
                         gp->name, gp->n_keep, gp->channels, e->nk, e->nk + e->nd);
            break;
        }
        fold_group fg = {e, gp->channels, gp->keep, malloc(sizeof(int) * (size_t)e->nd)};
        if (!fg.removed) {
            st = dp_fail(err, DP_ERR_NOMEM, "corr fold: out of memory");
            break;
        }
        removed_of(gp, fg.removed);
        const dp_channel_group *g = &gs->groups[e->group];
        for (int c = 0; c < g->n_consumers && st == DP_OK; c++) {
            int node = g->consumers[c].node;
            if (dp_corr_read_map(old_m, node) == e->node &&
                !fold_consumer_node(old_m, gs, p, &fg, node, old_mom, new_m, new_mom, delta, dmom))
                st = dp_fail(err, DP_ERR_ARG,
                             "corr fold: consumer '%s' of group %s has an "
                             "unexpected weight layout",
                             old_m->nodes[node].name, gp->name);
        }
        free(fg.removed);
    }
    free(delta), free(dmom);
    return st;
}

dp_surgery_opts dp_corr_surgery_opts(const dp_corr_fold *f) {
    return (dp_surgery_opts){.fold_removed = corr_fold, .fold_ctx = (void *)f};
}
