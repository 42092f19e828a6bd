/* Channel groups from any graph, by union-find over "channel spaces".
 *
 * Every node's output has a channel dimension. Input, conv, linear and shortcut_pad nodes
 * create a new channel space; channel-preserving ops (bn, relu, pools, gap, dropout, flatten)
 * reuse their input's; an add unites its two inputs' spaces (a residual stream: every writer
 * into it must lose the same indices). Flatten keeps the space but each channel then spans
 * H*W consecutive values, which is how a linear after flatten maps channels to columns.
 * A group is the set of nodes sharing one root; it is prunable unless it touches the network
 * input or the logits, passes through a zero-padding shortcut (option A maps channel j of the
 * narrow stream to channel j+pad of the wide one, so neither side can drop indices alone), is
 * written by the first conv or a protected layer, or is a residual stream (unless residual). */
#include "dprune/prune.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int uf_find(int *parent, int x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]]; /* path halving */
        x = parent[x];
    }
    return x;
}

/* Unites so that the smaller index stays the root: group order = first appearance. */
static void uf_union(int *parent, int a, int b) {
    a = uf_find(parent, a), b = uf_find(parent, b);
    if (a == b) return;
    if (a < b)
        parent[b] = a;
    else
        parent[a] = b;
}

void dp_group_opts_default(dp_group_opts *o) {
    memset(o, 0, sizeof *o);
    o->residual = false;
    o->protect_first_conv = true;
}

static bool creates_space(dp_op op) {
    return op == DP_OP_INPUT || op == DP_OP_CONV || op == DP_OP_LINEAR || op == DP_OP_SHORTCUT_PAD;
}

/* Grows an int list by one (capacity doubling hidden behind count being a power of two). */
static bool push_int(int **list, int *n, int v) {
    if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: full */
        int cap = *n ? 2 * *n : 1;
        int *grown = realloc(*list, sizeof(int) * (size_t)cap);
        if (!grown) return false;
        *list = grown;
    }
    (*list)[(*n)++] = v;
    return true;
}

static bool push_consumer(dp_channel_group *g, int node, int span) {
    int n = g->n_consumers;
    if ((n & (n - 1)) == 0) {
        int cap = n ? 2 * n : 1;
        dp_group_consumer *grown = realloc(g->consumers, sizeof *grown * (size_t)cap);
        if (!grown) return false;
        g->consumers = grown;
    }
    g->consumers[g->n_consumers++] = (dp_group_consumer){node, span};
    return true;
}

/* Marks a group unprunable with the first reason given (later reasons are weaker). */
static void forbid(dp_channel_group *g, const char *fmt, const char *what) {
    if (!g->prunable) return;
    g->prunable = false;
    snprintf(g->why_not, sizeof g->why_not, fmt, what);
}

void dp_groups_free(dp_groups *gs) {
    for (int i = 0; i < gs->n_groups; i++) {
        dp_channel_group *g = &gs->groups[i];
        free(g->writers);
        free(g->bns);
        free(g->consumers);
        free(g->members);
    }
    free(gs->groups);
    free(gs->node_group);
    free(gs->node_span);
    memset(gs, 0, sizeof *gs);
}

int dp_groups_prunable_count(const dp_groups *gs) {
    int n = 0;
    for (int i = 0; i < gs->n_groups; i++) n += gs->groups[i].prunable;
    return n;
}

int dp_group_scored_nodes(const dp_model *m, const dp_channel_group *g, int *out, int max) {
    int n = 0;
    for (int i = 0; i < g->n_members && n < max; i++)
        if (m->nodes[g->members[i]].op == DP_OP_RELU) out[n++] = g->members[i];
    if (n == 0 && g->n_members > 0 && max > 0) out[n++] = g->members[g->n_members - 1];
    return n;
}

static int find_node(const dp_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return i;
    return -1;
}

/* Fills members, writers, BNs and consumers of every group. */
static bool collect_members(const dp_model *m, dp_groups *gs) {
    for (int i = 0; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        dp_channel_group *g = &gs->groups[gs->node_group[i]];
        if (!push_int(&g->members, &g->n_members, i)) return false;
        if ((n->op == DP_OP_CONV || n->op == DP_OP_LINEAR) &&
            !push_int(&g->writers, &g->n_writers, i))
            return false;
        if (n->op == DP_OP_BN && !push_int(&g->bns, &g->n_bns, i)) return false;
        if (n->op == DP_OP_CONV || n->op == DP_OP_LINEAR) {
            const dp_node *src = &m->nodes[n->in[0]];
            int span = gs->node_span[n->in[0]];
            if (n->op == DP_OP_LINEAR) span *= src->h * src->w; /* implicit flatten */
            if (!push_consumer(&gs->groups[gs->node_group[n->in[0]]], i, span)) return false;
        }
    }
    return true;
}

/* Applies the rules that make a group unprunable, strongest reason first. */
static dp_status mark_unprunable(const dp_model *m, const dp_group_opts *o, dp_groups *gs,
                                 dp_error *err) {
    for (int i = 0; i < gs->n_groups; i++) gs->groups[i].prunable = true;
    dp_channel_group *G = gs->groups;
    const int *ng = gs->node_group;
    forbid(&G[ng[0]], "it is the network input%s", "");
    forbid(&G[ng[dp_model_output_node(m)]], "it is the logits (classifier '%s' output)",
           m->nodes[dp_model_output_node(m)].name);
    for (int i = 1; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        if (n->op == DP_OP_SHORTCUT_PAD) {
            forbid(&G[ng[i]], "zero-padding shortcut '%s' maps channels with an offset", n->name);
            forbid(&G[ng[n->in[0]]], "zero-padding shortcut '%s' maps channels with an offset",
                   n->name);
        }
        if (n->op == DP_OP_ADD && gs->node_span[n->in[0]] != gs->node_span[n->in[1]])
            forbid(&G[ng[i]], "add '%s' joins differently laid out inputs", n->name);
    }
    if (o->protect_first_conv)
        for (int i = 1; i < m->n_nodes; i++)
            if (m->nodes[i].op == DP_OP_CONV) {
                forbid(&G[ng[i]], "first conv '%s' (protected by default)", m->nodes[i].name);
                break;
            }
    for (int k = 0; k < o->n_protect; k++) {
        int i = find_node(m, o->protect[k]);
        if (i < 0)
            return dp_fail(err, DP_ERR_CONFIG, "prune.protect: the model has no layer named '%s'",
                           o->protect[k]);
        forbid(&G[ng[i]], "layer '%s' is protected (prune.protect)", o->protect[k]);
    }
    for (int i = 0; i < gs->n_groups; i++) {
        if (G[i].n_writers == 0) forbid(&G[i], "no conv or linear writes it%s", "");
        if (G[i].residual && !o->residual)
            forbid(&G[i], "residual stream '%s' (prune.residual = false)", G[i].name);
    }
    return DP_OK;
}

dp_status dp_groups_build(const dp_model *m, const dp_group_opts *o, dp_groups *gs, dp_error *err) {
    dp_group_opts defaults;
    if (!o) dp_group_opts_default(&defaults), o = &defaults;
    memset(gs, 0, sizeof *gs);
    int nn = m->n_nodes;
    gs->n_nodes = nn;
    int *parent = malloc(sizeof(int) * (size_t)nn), *root_group = malloc(sizeof(int) * (size_t)nn);
    gs->node_group = malloc(sizeof(int) * (size_t)nn);
    gs->node_span = malloc(sizeof(int) * (size_t)nn);
    gs->groups = calloc((size_t)nn, sizeof(dp_channel_group)); /* at most one per node */
    dp_status st = DP_OK;
    if (!parent || !root_group || !gs->node_group || !gs->node_span || !gs->groups) goto nomem;

    /* 1. channel spaces and spans, unions at adds */
    for (int i = 0; i < nn; i++) {
        const dp_node *n = &m->nodes[i];
        parent[i] = i;
        gs->node_span[i] = 1;
        if (creates_space(n->op)) continue;
        const dp_node *src = &m->nodes[n->in[0]];
        parent[i] = uf_find(parent, n->in[0]);
        gs->node_span[i] = gs->node_span[n->in[0]];
        if (n->op == DP_OP_FLATTEN) gs->node_span[i] *= src->h * src->w;
        if (n->op == DP_OP_ADD) uf_union(parent, i, n->in[1]);
    }
    /* 2. groups numbered by their root's first appearance */
    for (int i = 0; i < nn; i++) root_group[i] = -1;
    for (int i = 0; i < nn; i++) {
        int r = uf_find(parent, i);
        if (root_group[r] < 0) {
            root_group[r] = gs->n_groups++;
            dp_channel_group *g = &gs->groups[root_group[r]];
            const dp_node *rn = &m->nodes[r];
            snprintf(g->name, sizeof g->name, "%s", rn->name);
            g->channels = rn->c / gs->node_span[r];
        }
        gs->node_group[i] = root_group[r];
        if (m->nodes[i].op == DP_OP_ADD) gs->groups[root_group[r]].residual = true;
    }
    if (!collect_members(m, gs)) goto nomem;
    st = mark_unprunable(m, o, gs, err);
    free(parent);
    free(root_group);
    if (st != DP_OK) dp_groups_free(gs);
    return st;
nomem:
    free(parent);
    free(root_group);
    dp_groups_free(gs);
    return dp_fail(err, DP_ERR_NOMEM, "prune: out of memory building channel groups");
}
