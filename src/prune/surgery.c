/* Surgery: the model genuinely shrinks. A new graph with the kept widths is built
 * (dp_model_reshape lays out fresh contiguous parameter / gradient / buffer storage, so
 * gradient buckets stay slices), then every tensor copies its kept slices: a conv's filters
 * (rows) and input channels (columns), a linear's rows and its column blocks (H*W per channel
 * after flatten), BN vectors and running statistics, the gradients, and the SGD momentum.
 *
 * Every tensor is seen as [rows][cols][inner] with a row map and a column map (new index ->
 * old index, NULL = identity). The map of a node's channel dimension comes from its group's
 * keep-list, widened by the node's span (a flatten's channel j covers j*span ... +span). */
#include "prune_internal.h"
#include <stdlib.h>
#include <string.h>

/* new index -> old index for node i's channel dimension; NULL when the group is untouched. */
static int *channel_map(const dp_groups *gs, const dp_plan *p, int i, bool *nomem) {
    const dp_group_plan *gp = &p->groups[gs->node_group[i]];
    if (gp->n_keep == gp->channels) return NULL;
    int span = gs->node_span[i];
    int *map = malloc(sizeof(int) * (size_t)gp->n_keep * (size_t)span);
    if (!map) {
        *nomem = true;
        return NULL;
    }
    for (int a = 0; a < gp->n_keep; a++)
        for (int s = 0; s < span; s++) map[a * span + s] = gp->keep[a] * span + s;
    return map;
}

typedef struct {
    int rows, old_cols, new_cols;
    size_t inner;
    const int *row_map, *col_map;
} slice_shape;

static void copy_slices(const slice_shape *s, const float *src, float *dst) {
    for (int r = 0; r < s->rows; r++) {
        int ro = s->row_map ? s->row_map[r] : r;
        for (int c = 0; c < s->new_cols; c++) {
            int co = s->col_map ? s->col_map[c] : c;
            memcpy(dst + ((size_t)r * s->new_cols + c) * s->inner,
                   src + ((size_t)ro * s->old_cols + co) * s->inner, sizeof(float) * s->inner);
        }
    }
}

/* How parameter tensor t of node `node` is sliced. */
static void param_shape(const dp_model *old_m, const dp_model *new_m, int t, int *const *maps,
                        slice_shape *s) {
    const dp_tensor_view *v = &new_m->params[t];
    const dp_node *n = &old_m->nodes[v->node];
    const dp_node *nn = &new_m->nodes[v->node];
    memset(s, 0, sizeof *s);
    s->rows = v->dims[0];
    s->row_map = maps[v->node];
    s->old_cols = s->new_cols = 1;
    s->inner = 1;
    bool weight = t == n->p[0];
    if (weight && n->op == DP_OP_CONV) {
        s->old_cols = old_m->nodes[n->in[0]].c;
        s->new_cols = new_m->nodes[nn->in[0]].c;
        s->col_map = maps[n->in[0]];
        s->inner = (size_t)n->a.conv.k * n->a.conv.k;
    } else if (weight && n->op == DP_OP_LINEAR) {
        const dp_node *src = &old_m->nodes[n->in[0]];
        s->old_cols = src->c;
        s->new_cols = new_m->nodes[nn->in[0]].c;
        s->col_map = maps[n->in[0]];
        s->inner = (size_t)src->h * src->w; /* the implicit flatten's block per channel */
    }
}

static dp_status check_inputs(const dp_model *m, const dp_groups *gs, const dp_plan *p,
                              const dp_sgd *opt, dp_error *err) {
    if (gs->n_nodes != m->n_nodes)
        return dp_fail(err, DP_ERR_ARG, "surgery: groups of a %d-node graph for a %d-node model",
                       gs->n_nodes, m->n_nodes);
    dp_status st = dp_plan_check(p, gs, err);
    if (st != DP_OK) return st;
    if (opt && opt->momentum && opt->n != m->n_param_floats)
        return dp_fail(err, DP_ERR_ARG, "surgery: momentum has %zu floats, the model %zu", opt->n,
                       m->n_param_floats);
    return DP_OK;
}

/* Copies the kept slices of parameters, gradients, momentum and BN buffers. */
static void copy_model(const dp_model *m, int *const *maps, const float *momentum, dp_model *out,
                       float *new_momentum) {
    for (int t = 0; t < out->n_params; t++) {
        slice_shape s;
        param_shape(m, out, t, maps, &s);
        size_t from = m->params[t].offset, to = out->params[t].offset;
        copy_slices(&s, m->param_data + from, out->param_data + to);
        copy_slices(&s, m->grad_data + from, out->grad_data + to);
        if (momentum) copy_slices(&s, momentum + from, new_momentum + to);
    }
    for (int b = 0; b < out->n_buffers; b++) {
        slice_shape s = {out->buffers[b].dims[0], 1, 1, 1, maps[out->buffers[b].node], NULL};
        copy_slices(&s, m->buffer_data + m->buffers[b].offset,
                    out->buffer_data + out->buffers[b].offset);
    }
}

/* The reshaped model must have the same tensors in the same order as the original. */
static dp_status check_same_tensors(const dp_model *m, const dp_model *out, dp_error *err) {
    if (out->n_params != m->n_params || out->n_buffers != m->n_buffers)
        return dp_fail(err, DP_ERR_ARG, "surgery: the rebuilt model has other tensors");
    for (int t = 0; t < m->n_params; t++)
        if (strcmp(m->params[t].name, out->params[t].name) ||
            m->params[t].node != out->params[t].node)
            return dp_fail(err, DP_ERR_ARG, "surgery: tensor %d is '%s', was '%s'", t,
                           out->params[t].name, m->params[t].name);
    return DP_OK;
}

dp_status dp_surgery(const dp_model *m, const dp_groups *gs, const dp_plan *p, dp_sgd *opt,
                     const dp_surgery_opts *o, dp_model *out, dp_error *err) {
    memset(out, 0, sizeof *out);
    dp_status st = check_inputs(m, gs, p, opt, err);
    if (st != DP_OK) return st;
    int nn = m->n_nodes;
    int *widths = calloc((size_t)nn, sizeof(int));
    int **maps = calloc((size_t)nn, sizeof(int *));
    float *momentum = NULL;
    bool nomem = !widths || !maps;
    for (int i = 0; i < nn && !nomem; i++) {
        widths[i] = p->groups[gs->node_group[i]].n_keep * gs->node_span[i];
        maps[i] = channel_map(gs, p, i, &nomem);
    }
    if (nomem) {
        st = dp_fail(err, DP_ERR_NOMEM, "surgery: out of memory");
        goto done;
    }
    if ((st = dp_model_reshape(m, widths, out, err)) != DP_OK) goto done;
    if ((st = check_same_tensors(m, out, err)) != DP_OK) goto done;
    if (opt && opt->momentum) {
        momentum = dp_alloc_floats(out->n_param_floats);
        if (!momentum) {
            st = dp_fail(err, DP_ERR_NOMEM, "surgery: out of memory for the momentum buffer");
            goto done;
        }
    }
    copy_model(m, maps, opt ? opt->momentum : NULL, out, momentum);
    if (o && o->fold_removed &&
        (st = o->fold_removed(o->fold_ctx, m, gs, p, opt ? opt->momentum : NULL, out, momentum,
                              err)) != DP_OK)
        goto done;
    if (momentum) {
        dp_free(opt->momentum);
        opt->momentum = momentum;
        opt->n = out->n_param_floats;
        momentum = NULL;
    }
done:
    if (st != DP_OK && out->nodes) dp_model_free(out);
    dp_free(momentum);
    if (maps)
        for (int i = 0; i < nn; i++) free(maps[i]);
    free(maps);
    free(widths);
    return st;
}
