/* A latency table matched against a model, and the estimate it gives for other channel counts.
 * The match is strict about everything pruning cannot change (layer names, ops, spatial sizes,
 * kernels, the input) so that a table of another model, or of an older version of the model,
 * is an error rather than a silently wrong estimate; channel counts may be smaller than the
 * table's (a model pruned in an earlier round is estimated from the same table). */
#include "dprune/profile.h"
#include <stdlib.h>
#include <string.h>

static int find_entry(const dp_latency_table *t, const char *name) {
    for (int i = 0; i < t->n_entries; i++)
        if (!strcmp(t->entries[i].name, name)) return i;
    return -1;
}

static dp_status check_node(const dp_latency_table *t, const dp_model *m, int i,
                            const dp_latency_entry *e, bool train, dp_error *err) {
    const dp_node *n = &m->nodes[i], *src = &m->nodes[n->in[0]];
    dp_latency_entry want;
    memset(&want, 0, sizeof want);
    dp_profile_axes(m, i, 1, &want);
    if (strcmp(e->op, want.op))
        return dp_fail(err, DP_ERR_CONFIG,
                       "latency table %s: layer '%s' is a %s there but a %s in model %s; the "
                       "table is of another model: re-run `dprune profile`",
                       t->path, n->name, e->op, want.op, m->arch);
    if (e->in_h != src->h || e->in_w != src->w || e->out_h != n->h || e->out_w != n->w ||
        e->k != want.k || e->stride != want.stride)
        return dp_fail(err, DP_ERR_CONFIG,
                       "latency table %s: layer '%s' was measured as %dx%d -> %dx%d (k %d, stride "
                       "%d), the model has %dx%d -> %dx%d (k %d, stride %d): re-run `dprune "
                       "profile`",
                       t->path, n->name, e->in_h, e->in_w, e->out_h, e->out_w, e->k, e->stride,
                       src->h, src->w, n->h, n->w, want.k, want.stride);
    if (src->c > e->in_c || n->c > e->out_c)
        return dp_fail(err, DP_ERR_CONFIG,
                       "latency table %s: layer '%s' has %d -> %d channels, the table covers at "
                       "most %d -> %d: re-run `dprune profile` on this model",
                       t->path, n->name, src->c, n->c, e->in_c, e->out_c);
    if (train && !e->train_ms)
        return dp_fail(err, DP_ERR_CONFIG,
                       "latency table %s holds inference times only; a training latency target "
                       "needs `dprune profile` without --infer-only",
                       t->path);
    return DP_OK;
}

dp_status dp_latency_map_build(const dp_latency_table *t, const dp_model *m, bool train,
                               dp_latency_map *map, dp_error *err) {
    memset(map, 0, sizeof *map);
    if (strcmp(t->model, m->arch))
        return dp_fail(err, DP_ERR_CONFIG,
                       "latency table %s was measured on model '%s', this model is '%s': write "
                       "one for it with `dprune profile CONF`",
                       t->path, t->model, m->arch);
    if (t->in_c != m->in_c || t->in_h != m->in_h || t->in_w != m->in_w)
        return dp_fail(err, DP_ERR_CONFIG,
                       "latency table %s was measured for %dx%dx%d inputs, this model takes "
                       "%dx%dx%d: re-run `dprune profile`",
                       t->path, t->in_c, t->in_h, t->in_w, m->in_c, m->in_h, m->in_w);
    map->entry = malloc(sizeof(int) * (size_t)m->n_nodes);
    bool *used = calloc((size_t)t->n_entries + 1, sizeof(bool));
    if (!map->entry || !used) {
        free(used);
        dp_latency_map_free(map);
        return dp_fail(err, DP_ERR_NOMEM, "latency table: out of memory");
    }
    map->table = t, map->n_nodes = m->n_nodes, map->train = train;
    dp_status st = DP_OK;
    for (int i = 0; i < m->n_nodes && st == DP_OK; i++) {
        map->entry[i] = -1;
        if (!dp_profile_is_timed(m, i)) continue;
        int e = find_entry(t, m->nodes[i].name);
        if (e < 0)
            st = dp_fail(err, DP_ERR_CONFIG,
                         "latency table %s has no entry for layer '%s' (%s) of model %s: it was "
                         "measured on another model or version; re-run `dprune profile`",
                         t->path, m->nodes[i].name, dp_op_name(m->nodes[i].op), m->arch);
        else
            st = check_node(t, m, i, &t->entries[e], train, err);
        map->entry[i] = e;
        if (e >= 0) used[e] = true;
    }
    for (int e = 0; e < t->n_entries && st == DP_OK; e++)
        if (!used[e])
            st = dp_fail(err, DP_ERR_CONFIG,
                         "latency table %s: entry '%s' matches no layer of model %s: it was "
                         "measured on another model; re-run `dprune profile`",
                         t->path, t->entries[e].name, m->arch);
    free(used);
    if (st != DP_OK) dp_latency_map_free(map);
    return st;
}

void dp_latency_map_free(dp_latency_map *map) {
    free(map->entry);
    memset(map, 0, sizeof *map);
}

double dp_latency_node_ms(const dp_latency_map *map, const dp_model *m, int node,
                          const int *node_c) {
    int e = map->entry[node];
    if (e < 0) return 0;
    const dp_node *n = &m->nodes[node];
    double cin = node_c ? node_c[n->in[0]] : m->nodes[n->in[0]].c;
    double cout = node_c ? node_c[node] : n->c;
    return dp_latency_entry_ms(&map->table->entries[e], map->train, cin, cout);
}

double dp_latency_model_ms(const dp_latency_map *map, const dp_model *m, const int *node_c) {
    double sum = 0;
    for (int i = 1; i < m->n_nodes; i++) sum += dp_latency_node_ms(map, m, i, node_c);
    return sum;
}
