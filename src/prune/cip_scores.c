/* CIP scores on any graph (METHODS.md section 3): importance flows from the logits back through
 * every node. Working per node instead of per "layer" or per "block" is what makes the residual
 * rule fall out without pattern matching: a block's input map is read by conv1 and by the
 * shortcut (identity through the add, zero-padding, or a projection conv), so it sums the two
 * normalized contributions, exactly t_in = normalize(A_short^T s_out) + normalize(A1^T s_mid).
 * A single consumer's contribution, normalized, then phi, then normalized again, is the plain
 * step dp_cip_propagate. */
#include "dprune/cip.h"
#include <stdlib.h>
#include <string.h>

int dp_cip_feature_nodes(const dp_model *m, const dp_groups *gs, int *out, int max) {
    int n = 0;
    for (int i = 1; i < m->n_nodes && n < max; i++)
        if (m->nodes[i].op == DP_OP_RELU && gs->node_span[i] == 1) out[n++] = i;
    return n;
}

/* Channels of node i's output as its group counts them (a flatten's span folded back). */
static int node_channels(const dp_groups *gs, int i) {
    return gs->groups[gs->node_group[i]].channels;
}

/* The BN reading a conv/linear's output directly, or -1: its scale enters the kernel term. */
static int bn_after(const dp_model *m, int node) {
    for (int i = node + 1; i < m->n_nodes; i++)
        if (m->nodes[i].op == DP_OP_BN && m->nodes[i].in[0] == node) return i;
    return -1;
}

typedef struct {
    double **r;  /* [n_nodes] importance of each node's output channels (NULL: none yet) */
    int *got;    /* [n_nodes] contributions received */
    double *tmp; /* scratch: a contribution */
    double *phi; /* scratch: a map's feature term */
    double *A;   /* scratch: a kernel term */
} walk;

/* t[p] += normalize(c): every consumer's say counts the same, whatever its weight scale. */
static void receive(walk *w, int p, int C, double *c) {
    dp_cip_normalize(C, c);
    for (int i = 0; i < C; i++) w->r[p][i] += c[i];
    w->got[p]++;
}

/* What node n (importance r) passes back to its input k. */
static void contribution(const dp_model *m, const dp_groups *gs, int n, int k, const double *r,
                         walk *w) {
    const dp_node *nd = &m->nodes[n];
    int in = nd->in[k], I = node_channels(gs, in), O = node_channels(gs, n);
    double *c = w->tmp;
    switch (nd->op) {
    case DP_OP_CONV:
    case DP_OP_LINEAR: {
        const dp_tensor_view *v = &m->params[nd->p[0]];
        int kk = (int)(v->numel / ((size_t)O * (size_t)I)); /* k*k, or a flatten's H*W */
        int b = bn_after(m, n);
        const float *gamma = b >= 0 ? dp_param_ptr(m, m->nodes[b].p[0]) : NULL;
        const float *var = b >= 0 ? dp_buffer_ptr(m, m->nodes[b].buf[1]) : NULL;
        float eps = b >= 0 ? m->nodes[b].a.bn.eps : 0.0f;
        dp_cip_kernel(O, I, kk, dp_param_ptr(m, nd->p[0]), gamma, var, eps, w->A);
        for (int i = 0; i < I; i++) c[i] = 0;
        for (int o = 0; o < O; o++) {
            const double *Ao = w->A + (size_t)o * I;
            for (int i = 0; i < I; i++) c[i] += Ao[i] * r[o];
        }
        break;
    }
    case DP_OP_SHORTCUT_PAD: /* input channel i became output channel pad_before + i */
        for (int i = 0; i < I; i++) c[i] = r[nd->a.shortcut.pad_before + i];
        break;
    default: /* channel-preserving ops and add: the same channels, the same importance */
        memcpy(c, r, sizeof(double) * (size_t)I);
        break;
    }
}

static dp_status walk_alloc(const dp_model *m, const dp_groups *gs, walk *w, dp_error *err) {
    size_t maxc = 1, maxa = 1;
    for (int i = 0; i < m->n_nodes; i++) {
        size_t C = (size_t)node_channels(gs, i);
        if (C > maxc) maxc = C;
        const dp_node *nd = &m->nodes[i];
        if (nd->op == DP_OP_CONV || nd->op == DP_OP_LINEAR) {
            size_t a = C * (size_t)node_channels(gs, nd->in[0]);
            if (a > maxa) maxa = a;
        }
    }
    size_t nn = m->n_nodes > 0 ? (size_t)m->n_nodes : 1;
    w->r = calloc(nn, sizeof(double *));
    w->got = calloc(nn, sizeof(int));
    w->tmp = malloc(sizeof(double) * maxc);
    w->phi = malloc(sizeof(double) * maxc);
    w->A = malloc(sizeof(double) * maxa);
    bool ok = w->r && w->got && w->tmp && w->phi && w->A;
    for (int i = 0; i < m->n_nodes && ok; i++)
        ok = (w->r[i] = calloc((size_t)node_channels(gs, i), sizeof(double))) != NULL;
    return ok ? DP_OK : dp_fail(err, DP_ERR_NOMEM, "cip: out of memory");
}

static void walk_free(const dp_model *m, walk *w) {
    for (int i = 0; w->r && i < m->n_nodes; i++) free(w->r[i]);
    free(w->r);
    free(w->got);
    free(w->tmp);
    free(w->phi);
    free(w->A);
}

dp_status dp_cip_scores(const dp_model *m, const dp_groups *gs, const double *const *rms,
                        dp_cip_phi phi, dp_scores *sc, dp_error *err) {
    walk w = {0};
    dp_status st = dp_scores_alloc(sc, gs, err);
    if (st == DP_OK) st = walk_alloc(m, gs, &w, err);
    int out = dp_model_output_node(m);
    if (st == DP_OK) { /* the seed: every logit matters the same */
        int K = node_channels(gs, out);
        for (int k = 0; k < K; k++) w.r[out][k] = 1.0 / K;
        w.got[out] = 1;
    }
    for (int n = m->n_nodes - 1; n >= 1 && st == DP_OK; n--) {
        int C = node_channels(gs, n);
        if (!w.got[n]) continue;         /* nothing downstream reads it */
        if (rms && rms[n] && n != out) { /* a feature map: s = normalize(phi(z) * t) */
            dp_error why = {0};
            if (dp_cip_feature(C, rms[n], phi, w.phi, &why) != DP_OK) {
                st = dp_fail(err, why.code, "map '%s': %s", m->nodes[n].name, why.msg);
                break;
            }
            for (int c = 0; c < C; c++) w.r[n][c] *= w.phi[c];
            dp_cip_normalize(C, w.r[n]);
        }
        for (int k = 0; k < m->nodes[n].n_in; k++) {
            int in = m->nodes[n].in[k];
            if (m->nodes[in].op == DP_OP_INPUT) continue;
            contribution(m, gs, n, k, w.r[n], &w);
            receive(&w, in, node_channels(gs, in), w.tmp);
        }
    }
    for (int g = 0; g < gs->n_groups && st == DP_OK; g++) {
        if (!sc->s[g]) continue;
        int nodes[256];
        int k = dp_group_scored_nodes(m, &gs->groups[g], nodes, 256);
        for (int j = 0; j < k; j++) {
            if (!w.got[nodes[j]])
                st = dp_fail(err, DP_ERR_ARG, "cip: map '%s' does not reach the logits",
                             m->nodes[nodes[j]].name);
            for (int c = 0; c < gs->groups[g].channels && st == DP_OK; c++)
                sc->s[g][c] += w.r[nodes[j]][c];
        }
    }
    walk_free(m, &w);
    if (st != DP_OK) dp_scores_free(sc);
    return st;
}
