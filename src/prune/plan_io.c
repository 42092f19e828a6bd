/* A plan as bytes (rank 0 broadcasts it through dist/, so every rank cuts the same channels)
 * and as text (written next to the checkpoints through io/). No files, no MPI here.
 *
 * Bytes: "DPPLAN01", the header fields, then per group name, channel count, keep-list and
 * optional scores, then an FNV-1a checksum of everything before it. Native byte order: the
 * ranks of one job share an architecture. */
#include "dprune/prune.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(int) == sizeof(int32_t), "keep-lists are sent as int32");

static const char plan_magic[8] = {'D', 'P', 'P', 'L', 'A', 'N', '0', '1'};

typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} byte_writer;

static void put(byte_writer *w, const void *src, size_t n) {
    if (w->failed) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        uint8_t *grown = realloc(w->data, cap);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->data = grown, w->cap = cap;
    }
    memcpy(w->data + w->len, src, n);
    w->len += n;
}

static void put_i32(byte_writer *w, int32_t v) {
    put(w, &v, sizeof v);
}
static void put_i64(byte_writer *w, int64_t v) {
    put(w, &v, sizeof v);
}
static void put_f64(byte_writer *w, double v) {
    put(w, &v, sizeof v);
}
static void put_str(byte_writer *w, const char *s) {
    int32_t n = (int32_t)strlen(s);
    put_i32(w, n);
    put(w, s, (size_t)n);
}

static uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

dp_status dp_plan_serialize(const dp_plan *p, uint8_t **buf, size_t *len, dp_error *err) {
    byte_writer w = {0};
    put(&w, plan_magic, sizeof plan_magic);
    put_i32(&w, p->n_groups);
    put_str(&w, p->criterion);
    put_str(&w, p->budget);
    put_f64(&w, p->target);
    put_f64(&w, p->achieved);
    put_i64(&w, p->flops_before);
    put_i64(&w, p->flops_after);
    put_i64(&w, p->params_before);
    put_i64(&w, p->params_after);
    for (int g = 0; g < p->n_groups; g++) {
        const dp_group_plan *gp = &p->groups[g];
        put_str(&w, gp->name);
        put_i32(&w, gp->channels);
        put_i32(&w, gp->n_keep);
        put(&w, gp->keep, sizeof(int32_t) * (size_t)gp->n_keep);
        put_i32(&w, gp->scores != NULL);
        if (gp->scores) put(&w, gp->scores, sizeof(double) * (size_t)gp->channels);
    }
    uint32_t sum = w.failed ? 0 : fnv1a(w.data, w.len);
    put(&w, &sum, sizeof sum);
    if (w.failed) {
        free(w.data);
        return dp_fail(err, DP_ERR_NOMEM, "plan: out of memory serializing");
    }
    *buf = w.data;
    *len = w.len;
    return DP_OK;
}

typedef struct {
    const uint8_t *p;
    size_t left;
    bool bad;
} byte_reader;

static void get(byte_reader *r, void *dst, size_t n) {
    if (r->bad || n > r->left) {
        r->bad = true;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n, r->left -= n;
}

static int32_t get_i32(byte_reader *r) {
    int32_t v;
    get(r, &v, sizeof v);
    return v;
}
static int64_t get_i64(byte_reader *r) {
    int64_t v;
    get(r, &v, sizeof v);
    return v;
}
static double get_f64(byte_reader *r) {
    double v;
    get(r, &v, sizeof v);
    return v;
}
static void get_str(byte_reader *r, char *dst, size_t cap) {
    int32_t n = get_i32(r);
    if (n < 0 || (size_t)n >= cap) {
        r->bad = true;
        dst[0] = 0;
        return;
    }
    get(r, dst, (size_t)n);
    dst[r->bad ? 0 : n] = 0;
}

dp_status dp_plan_deserialize(const uint8_t *buf, size_t len, dp_plan *p, dp_error *err) {
    memset(p, 0, sizeof *p);
    if (len < sizeof plan_magic + sizeof(uint32_t) || memcmp(buf, plan_magic, sizeof plan_magic))
        return dp_fail(err, DP_ERR_DATA, "plan: not a serialized plan (%zu bytes)", len);
    uint32_t sum;
    memcpy(&sum, buf + len - sizeof sum, sizeof sum);
    if (sum != fnv1a(buf, len - sizeof sum))
        return dp_fail(err, DP_ERR_DATA, "plan: checksum mismatch (damaged buffer)");
    byte_reader r = {buf + sizeof plan_magic, len - sizeof plan_magic - sizeof sum, false};
    int32_t n = get_i32(&r);
    /* every group takes at least 16 bytes: reject counts the buffer cannot hold */
    if (r.bad || n < 0 || (size_t)n > r.left / 16)
        return dp_fail(err, DP_ERR_DATA, "plan: bad group count %d", n);
    p->groups = calloc((size_t)(n > 0 ? n : 1), sizeof(dp_group_plan));
    if (!p->groups) return dp_fail(err, DP_ERR_NOMEM, "plan: out of memory");
    p->n_groups = n;
    get_str(&r, p->criterion, sizeof p->criterion);
    get_str(&r, p->budget, sizeof p->budget);
    p->target = get_f64(&r);
    p->achieved = get_f64(&r);
    p->flops_before = get_i64(&r);
    p->flops_after = get_i64(&r);
    p->params_before = get_i64(&r);
    p->params_after = get_i64(&r);
    for (int g = 0; g < n && !r.bad; g++) {
        dp_group_plan *gp = &p->groups[g];
        get_str(&r, gp->name, sizeof gp->name);
        gp->channels = get_i32(&r);
        gp->n_keep = get_i32(&r);
        if (r.bad || gp->channels < 1 || gp->n_keep < 0 || gp->n_keep > gp->channels ||
            (size_t)gp->n_keep * sizeof(int32_t) > r.left) {
            r.bad = true;
            break;
        }
        gp->keep = malloc(sizeof(int) * (size_t)(gp->n_keep > 0 ? gp->n_keep : 1));
        if (!gp->keep) goto nomem;
        get(&r, gp->keep, sizeof(int32_t) * (size_t)gp->n_keep);
        if (get_i32(&r)) {
            if ((size_t)gp->channels * sizeof(double) > r.left) {
                r.bad = true;
                break;
            }
            gp->scores = malloc(sizeof(double) * (size_t)gp->channels);
            if (!gp->scores) goto nomem;
            get(&r, gp->scores, sizeof(double) * (size_t)gp->channels);
        }
    }
    if (r.bad || r.left != 0) {
        dp_plan_free(p);
        return dp_fail(err, DP_ERR_DATA, "plan: truncated or malformed buffer");
    }
    return DP_OK;
nomem:
    dp_plan_free(p);
    return dp_fail(err, DP_ERR_NOMEM, "plan: out of memory");
}

/* ---- text ---- */

typedef struct {
    char *s;
    size_t len, cap;
    bool failed;
} text_builder;

static void __attribute__((format(printf, 2, 3))) say(text_builder *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->s ? t->s + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? 2 * t->cap : 4096;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *grown = realloc(t->s, cap);
        if (!grown) {
            t->failed = true;
            return;
        }
        t->s = grown, t->cap = cap;
    }
}

static double percent_change(int64_t before, int64_t after) {
    return before > 0 ? 100.0 * ((double)after - (double)before) / (double)before : 0.0;
}

static void render_group(text_builder *t, const dp_plan *p, const dp_model *m, const dp_groups *gs,
                         int g) {
    const dp_group_plan *gp = &p->groups[g];
    const dp_channel_group *grp = gs && g < gs->n_groups ? &gs->groups[g] : NULL;
    say(t, "group %d '%s': %d -> %d channels", g, gp->name, gp->channels, gp->n_keep);
    if (grp && !grp->prunable) say(t, " (not prunable: %s)", grp->why_not);
    say(t, "\n");
    if (grp && m && grp->n_writers > 0) {
        say(t, "  writers:");
        for (int k = 0; k < grp->n_writers; k++) say(t, " %s", m->nodes[grp->writers[k]].name);
        say(t, "\n");
    }
    if (gp->n_keep < gp->channels) {
        say(t, "  keep:");
        for (int j = 0; j < gp->n_keep; j++) say(t, " %d", gp->keep[j]);
        say(t, "\n");
    }
    if (gp->scores) {
        say(t, "  scores:");
        for (int j = 0; j < gp->channels; j++) say(t, " %d:%.6g", j, gp->scores[j]);
        say(t, "\n");
    }
}

dp_status dp_plan_render(const dp_plan *p, const dp_model *m, const dp_groups *gs, char **text,
                         dp_error *err) {
    text_builder t = {0};
    int64_t ch_before = 0, ch_after = 0;
    int changed = 0;
    for (int g = 0; g < p->n_groups; g++)
        if (p->groups[g].n_keep < p->groups[g].channels)
            changed++, ch_before += p->groups[g].channels, ch_after += p->groups[g].n_keep;
    say(&t, "# dprune pruning plan\n");
    say(&t, "criterion: %s\n", p->criterion[0] ? p->criterion : "-");
    say(&t, "budget: %s\n", p->budget);
    if (p->target >= 0)
        say(&t, "target reduction: %.6g  achieved: %.6g\n", p->target, p->achieved);
    else
        say(&t, "achieved reduction: %.6g\n", p->achieved);
    say(&t, "flops: %lld -> %lld (%+.2f%%)\n", (long long)p->flops_before,
        (long long)p->flops_after, percent_change(p->flops_before, p->flops_after));
    say(&t, "params: %lld -> %lld (%+.2f%%)\n", (long long)p->params_before,
        (long long)p->params_after, percent_change(p->params_before, p->params_after));
    say(&t, "groups: %d, %d pruned (%lld -> %lld channels)\n\n", p->n_groups, changed,
        (long long)ch_before, (long long)ch_after);
    for (int g = 0; g < p->n_groups; g++) render_group(&t, p, m, gs, g);
    if (t.failed || !t.s) {
        free(t.s);
        return dp_fail(err, DP_ERR_NOMEM, "plan: out of memory rendering");
    }
    *text = t.s;
    return DP_OK;
}
