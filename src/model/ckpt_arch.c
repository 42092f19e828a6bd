/* The architecture section: the graph as it is now (pruned widths included), stored node by
 * node so loading can replay the builders' dp_add_* calls and get the same model. */
#include "ckpt_internal.h"
#include <inttypes.h>
#include <math.h>
#include <string.h>

/* Sane limits for stored values, checked before they reach dp_add_* (which would otherwise
 * accept, say, a billion channels and try to allocate them). */
#define MAX_NODES 100000
#define MAX_CHANNELS (1 << 20)
#define MAX_SPATIAL 65536
#define MAX_KERNEL 1024

void ckpt_arch_encode(dp_bytes *b, const dp_model *m) {
    dp_bytes_str(b, m->arch);
    dp_bytes_i32(b, m->in_c);
    dp_bytes_i32(b, m->in_h);
    dp_bytes_i32(b, m->in_w);
    dp_bytes_i32(b, m->num_classes);
    dp_bytes_u32(b, (uint32_t)m->n_nodes);
    for (int i = 0; i < m->n_nodes; i++) {
        const dp_node *n = &m->nodes[i];
        dp_bytes rec = {0};
        dp_bytes_u8(&rec, (uint8_t)n->op);
        dp_bytes_u8(&rec, (uint8_t)n->n_in);
        dp_bytes_str(&rec, n->name);
        dp_bytes_i32(&rec, n->in[0]);
        dp_bytes_i32(&rec, n->in[1]);
        dp_bytes_i32(&rec, n->c);
        dp_bytes_i32(&rec, n->h);
        dp_bytes_i32(&rec, n->w);
        switch (n->op) {
        case DP_OP_CONV:
            dp_bytes_i32(&rec, n->a.conv.out);
            dp_bytes_i32(&rec, n->a.conv.k);
            dp_bytes_i32(&rec, n->a.conv.stride);
            dp_bytes_i32(&rec, n->a.conv.pad);
            dp_bytes_u8(&rec, n->a.conv.bias);
            break;
        case DP_OP_BN:
            dp_bytes_f32(&rec, n->a.bn.eps);
            dp_bytes_f32(&rec, n->a.bn.momentum);
            break;
        case DP_OP_MAXPOOL:
        case DP_OP_AVGPOOL:
            dp_bytes_i32(&rec, n->a.pool.k);
            dp_bytes_i32(&rec, n->a.pool.stride);
            dp_bytes_i32(&rec, n->a.pool.pad);
            break;
        case DP_OP_LINEAR:
            dp_bytes_i32(&rec, n->a.linear.out);
            dp_bytes_u8(&rec, n->a.linear.bias);
            break;
        case DP_OP_DROPOUT:
            dp_bytes_f32(&rec, n->a.dropout.p);
            break;
        case DP_OP_SHORTCUT_PAD:
            dp_bytes_i32(&rec, n->a.shortcut.stride);
            dp_bytes_i32(&rec, n->a.shortcut.out);
            dp_bytes_i32(&rec, n->a.shortcut.pad_before);
            break;
        default:
            break;
        }
        /* A record's length lets a newer minor version append fields that older readers skip. */
        dp_bytes_u32(b, (uint32_t)rec.len);
        dp_bytes_put(b, rec.data, rec.len);
        if (rec.failed) b->failed = true;
        dp_bytes_free(&rec);
    }
}

static bool in_range(int64_t v, int64_t lo, int64_t hi) {
    return v >= lo && v <= hi;
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        char what_[512];                                                                           \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                                \
        return dp_fail(err, DP_ERR_CHECKPOINT, "%s: node %d '%s': %s", where, i, name, what_);     \
    } while (0)

/* Replays one stored node (record cursor r) onto m; i is its index. */
static dp_status replay_node(dp_model *m, dp_cursor *r, int i, uint64_t *floats,
                             uint64_t max_floats, const char *where, dp_error *err) {
    char name[48] = "?";
    int op = dp_cursor_u8(r), n_in = dp_cursor_u8(r);
    if (!dp_cursor_str(r, name, sizeof name)) BAD("bad name (longer than 47 bytes or cut short)");
    int in0 = dp_cursor_i32(r), in1 = dp_cursor_i32(r);
    int c = dp_cursor_i32(r), h = dp_cursor_i32(r), w = dp_cursor_i32(r);
    if (r->bad) BAD("record cut short");
    if (i == 0) {
        if (op != DP_OP_INPUT || c != m->in_c || h != m->in_h || w != m->in_w)
            BAD("the first node must be the %dx%dx%d input", m->in_c, m->in_h, m->in_w);
        snprintf(m->nodes[0].name, sizeof m->nodes[0].name, "%s", name);
        return DP_OK;
    }
    if (op == DP_OP_INPUT || op > DP_OP_SHORTCUT_PAD)
        BAD("op %d is not a layer this dprune knows", op);
    if (n_in != (op == DP_OP_ADD ? 2 : 1) || !in_range(in0, 0, i - 1) ||
        (op == DP_OP_ADD && !in_range(in1, 0, i - 1)))
        BAD("inputs %d, %d (%d of them) are not earlier nodes", in0, in1, n_in);
    const dp_node *src = &m->nodes[in0];
    int64_t in_feat = (int64_t)src->c * src->h * src->w;
    int idx = -1;
    dp_error e = {0};  /* from dp_add_*, wrapped into this file's message below */
    uint64_t need = 0; /* parameter + buffer floats of this node */
    switch ((dp_op)op) {
    case DP_OP_CONV: {
        int out = dp_cursor_i32(r), k = dp_cursor_i32(r), s = dp_cursor_i32(r),
            pad = dp_cursor_i32(r);
        bool bias = dp_cursor_u8(r) != 0;
        if (r->bad || !in_range(out, 1, MAX_CHANNELS) || !in_range(k, 1, MAX_KERNEL) ||
            !in_range(s, 1, MAX_KERNEL) || !in_range(pad, 0, MAX_KERNEL))
            BAD("conv out=%d k=%d stride=%d pad=%d out of range", out, k, s, pad);
        need = (uint64_t)out * (uint64_t)src->c * (uint64_t)k * (uint64_t)k + (uint64_t)out;
        if (need > max_floats)
            BAD("conv %d->%d k=%d is larger than the stored tensors", src->c, out, k);
        idx = dp_add_conv(m, in0, name, out, k, s, pad, bias, &e);
        break;
    }
    case DP_OP_BN: {
        float eps = dp_cursor_f32(r), mom = dp_cursor_f32(r);
        if (r->bad || !(eps > 0 && eps < 1) || !(mom >= 0 && mom <= 1))
            BAD("batch norm eps=%g momentum=%g out of range", eps, mom);
        need = 4 * (uint64_t)src->c;
        idx = dp_add_bn(m, in0, name, &e);
        if (idx >= 0) m->nodes[idx].a.bn = (dp_bn_attr){eps, mom};
        break;
    }
    case DP_OP_MAXPOOL:
    case DP_OP_AVGPOOL: {
        int k = dp_cursor_i32(r), s = dp_cursor_i32(r), pad = dp_cursor_i32(r);
        if (r->bad || !in_range(k, 1, MAX_KERNEL) || !in_range(s, 1, MAX_KERNEL) ||
            !in_range(pad, 0, MAX_KERNEL))
            BAD("pool k=%d stride=%d pad=%d out of range", k, s, pad);
        idx = dp_add_pool(m, (dp_op)op, in0, name, k, s, pad, &e);
        break;
    }
    case DP_OP_LINEAR: {
        int out = dp_cursor_i32(r);
        bool bias = dp_cursor_u8(r) != 0;
        if (r->bad || !in_range(out, 1, MAX_CHANNELS)) BAD("linear out=%d out of range", out);
        need = (uint64_t)out * (uint64_t)in_feat + (uint64_t)out;
        if (need > max_floats)
            BAD("linear %" PRId64 "->%d is larger than the stored tensors", in_feat, out);
        idx = dp_add_linear(m, in0, name, out, bias, &e);
        break;
    }
    case DP_OP_DROPOUT: {
        float p = dp_cursor_f32(r);
        if (r->bad) BAD("record cut short");
        idx = dp_add_dropout(m, in0, name, p, &e);
        break;
    }
    case DP_OP_SHORTCUT_PAD: {
        int s = dp_cursor_i32(r), out = dp_cursor_i32(r), before = dp_cursor_i32(r);
        if (r->bad || !in_range(s, 1, MAX_KERNEL) || !in_range(out, src->c, MAX_CHANNELS) ||
            !in_range(before, 0, out - src->c))
            BAD("shortcut stride=%d out=%d pad_before=%d (input %d channels) out of range", s, out,
                before, src->c);
        idx = dp_add_shortcut_pad(m, in0, name, out, s, &e);
        /* pruning may have moved the input inside the padded channels */
        if (idx >= 0) m->nodes[idx].a.shortcut.pad_before = before;
        break;
    }
    case DP_OP_RELU:
        idx = dp_add_relu(m, in0, name, &e);
        break;
    case DP_OP_GAP:
        idx = dp_add_gap(m, in0, name, &e);
        break;
    case DP_OP_FLATTEN:
        idx = dp_add_flatten(m, in0, name, &e);
        break;
    case DP_OP_ADD:
        idx = dp_add_add(m, in0, in1, name, &e);
        break;
    default:
        BAD("op %d is not a layer this dprune knows", op);
    }
    if (idx < 0) return dp_fail(err, DP_ERR_CHECKPOINT, "%s: node %d: %s", where, i, e.msg);
    if (idx != i) BAD("rebuilt at index %d", idx);
    const dp_node *n = &m->nodes[idx];
    if (n->c != c || n->h != h || n->w != w)
        BAD("rebuilt output %dx%dx%d differs from the stored %dx%dx%d", n->c, n->h, n->w, c, h, w);
    if ((int64_t)n->c * n->h * n->w > INT32_MAX) BAD("output %dx%dx%d is absurd", c, h, w);
    *floats += need;
    if (*floats > max_floats)
        BAD("the architecture needs more than the %" PRIu64 " floats the tensor sections can hold",
            max_floats);
    return DP_OK;
}
#undef BAD

dp_status ckpt_arch_decode(dp_model *m, const uint8_t *p, size_t len, uint64_t max_floats,
                           const char *where, dp_error *err) {
    memset(m, 0, sizeof *m);
    dp_cursor c = dp_cursor_of(p, len);
    char arch[DP_NAME_MAX];
    bool arch_ok = dp_cursor_str(&c, arch, sizeof arch);
    int in_c = dp_cursor_i32(&c), in_h = dp_cursor_i32(&c), in_w = dp_cursor_i32(&c);
    int classes = dp_cursor_i32(&c);
    uint32_t n_nodes = dp_cursor_u32(&c);
    if (!arch_ok || c.bad)
        return dp_fail(err, DP_ERR_CHECKPOINT, "%s: architecture header cut short", where);
    if (!in_range(in_c, 1, MAX_CHANNELS) || !in_range(in_h, 1, MAX_SPATIAL) ||
        !in_range(in_w, 1, MAX_SPATIAL) || !in_range(classes, 0, MAX_CHANNELS) ||
        !in_range(n_nodes, 1, MAX_NODES) || (int64_t)in_c * in_h * in_w > INT32_MAX)
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "%s: absurd architecture: input %dx%dx%d, %d classes, %u nodes", where, in_c,
                       in_h, in_w, classes, n_nodes);
    dp_model_begin(m, in_c, in_h, in_w);
    if (!m->nodes) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", where);
    m->num_classes = classes;
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    uint64_t floats = 0;
    for (uint32_t i = 0; i < n_nodes; i++) {
        uint32_t rec_len = dp_cursor_u32(&c);
        const uint8_t *rec = dp_cursor_take(&c, rec_len);
        if (!rec) {
            dp_model_free(m);
            return dp_fail(err, DP_ERR_CHECKPOINT, "%s: node %u of %u is cut short", where, i,
                           n_nodes);
        }
        dp_cursor r = dp_cursor_of(rec, rec_len);
        dp_status st = replay_node(m, &r, (int)i, &floats, max_floats, where, err);
        if (st != DP_OK) {
            dp_model_free(m);
            return st;
        }
    }
    dp_status st = dp_model_finish(m, err);
    if (st != DP_OK) dp_model_free(m);
    return st;
}
