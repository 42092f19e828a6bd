/* The latency table's text format (docs/latency-table.md): a header of key-value lines, then
 * one block per timed node with its shape, its two channel axes and one row of times per
 * input-axis point. Plain text so that a table can be read, diffed and edited by hand; every
 * reading error names the file, the line and what was expected. */
#include "dprune/latency_table.h"
#include "dprune/ckpt_file.h"
#include "dprune/io.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dp_status dp_latency_table_alloc(dp_latency_table *t, int n_entries, dp_error *err) {
    memset(t, 0, sizeof *t);
    t->entries = calloc((size_t)(n_entries > 0 ? n_entries : 1), sizeof(dp_latency_entry));
    if (!t->entries) return dp_fail(err, DP_ERR_NOMEM, "latency table: out of memory");
    t->n_entries = n_entries;
    return DP_OK;
}

dp_status dp_latency_entry_alloc(dp_latency_entry *e, bool train, dp_error *err) {
    size_t n = (size_t)e->n_in * (size_t)e->n_out;
    free(e->infer_ms), free(e->train_ms);
    e->infer_ms = calloc(n, sizeof(double));
    e->train_ms = train ? calloc(n, sizeof(double)) : NULL;
    if (!e->infer_ms || (train && !e->train_ms))
        return dp_fail(err, DP_ERR_NOMEM, "latency table: out of memory");
    return DP_OK;
}

void dp_latency_table_free(dp_latency_table *t) {
    for (int i = 0; i < t->n_entries && t->entries; i++)
        free(t->entries[i].infer_ms), free(t->entries[i].train_ms);
    free(t->entries);
    memset(t, 0, sizeof *t);
}

bool dp_latency_table_has_train(const dp_latency_table *t) {
    for (int i = 0; i < t->n_entries; i++)
        if (!t->entries[i].train_ms) return false;
    return t->n_entries > 0;
}

/* ---------------------------------------------------------------- writing */

static void print_rows(FILE *f, const char *what, const dp_latency_entry *e, const double *v) {
    for (int a = 0; a < e->n_in; a++) {
        fprintf(f, "%s %d:", what, e->in_axis[a]);
        for (int b = 0; b < e->n_out; b++) fprintf(f, " %.6g", v[a * e->n_out + b]);
        fputc('\n', f);
    }
}

dp_status dp_latency_table_print(const dp_latency_table *t, FILE *f, dp_error *err) {
    bool train = dp_latency_table_has_train(t);
    fprintf(f, "# dprune latency table: milliseconds per batch of each node by kept input x "
               "output channels\n# (format: docs/latency-table.md; written by `dprune profile`)\n");
    fprintf(f, "dprune-latency-table %d\n", DP_LATENCY_FORMAT_VERSION);
    fprintf(f, "model %s\ninput %d %d %d\nbatch %d\nthreads %d\nreps %d\n", t->model, t->in_c,
            t->in_h, t->in_w, t->batch, t->threads, t->reps);
    fprintf(f, "machine %s\nblas_core %s\nversion %s\n", t->machine[0] ? t->machine : "unknown",
            t->blas_core[0] ? t->blas_core : "unknown", t->version[0] ? t->version : "unknown");
    fprintf(f, "times %s\nentries %d\n", train ? "infer train" : "infer", t->n_entries);
    for (int i = 0; i < t->n_entries; i++) {
        const dp_latency_entry *e = &t->entries[i];
        fprintf(f, "\nentry %s %s\n", e->name, e->op);
        fprintf(f, "shape %d %d %d -> %d %d %d\nattr %d %d\n", e->in_c, e->in_h, e->in_w, e->out_c,
                e->out_h, e->out_w, e->k, e->stride);
        fprintf(f, "in_axis");
        for (int a = 0; a < e->n_in; a++) fprintf(f, " %d", e->in_axis[a]);
        fprintf(f, "\nout_axis");
        for (int b = 0; b < e->n_out; b++) fprintf(f, " %d", e->out_axis[b]);
        fputc('\n', f);
        print_rows(f, "infer", e, e->infer_ms);
        if (train) print_rows(f, "train", e, e->train_ms);
        fprintf(f, "end\n");
    }
    if (ferror(f)) return dp_fail(err, DP_ERR_IO, "latency table: write error");
    return DP_OK;
}

dp_status dp_latency_table_write(const dp_latency_table *t, const char *path, dp_error *err) {
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) return dp_fail(err, DP_ERR_NOMEM, "latency table: out of memory");
    dp_status st = dp_latency_table_print(t, mem, err);
    fclose(mem);
    if (st == DP_OK) {
        dp_iovec part = {buf, len};
        st = dp_write_file_atomic(path, &part, 1, err);
    }
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- reading */

typedef struct {
    const char *origin;
    char *text; /* a private copy, cut into lines */
    char *next; /* start of the next unread line */
    char *line; /* the current line (no newline) */
    int lineno;
    dp_error *err;
} reader;

static dp_status bad(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static dp_status bad(reader *r, const char *fmt, ...) {
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (r->lineno > 0)
        return dp_fail(r->err, DP_ERR_IO, "latency table %s line %d: %s", r->origin, r->lineno,
                       what);
    return dp_fail(r->err, DP_ERR_IO, "latency table %s: %s", r->origin, what);
}

/* The next line that is neither blank nor a comment; false at the end of the text. */
static bool next_line(reader *r) {
    while (r->next && *r->next) {
        char *s = r->next, *nl = strchr(s, '\n');
        r->next = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        size_t n = strlen(s);
        if (n && s[n - 1] == '\r') s[n - 1] = 0;
        r->lineno++;
        while (*s == ' ' || *s == '\t') s++;
        if (*s && *s != '#') {
            r->line = s;
            return true;
        }
    }
    r->line = NULL;
    return false;
}

/* The current line starts with word `key` followed by a space or its end; *rest = after it. */
static bool starts(const reader *r, const char *key, const char **rest) {
    size_t n = strlen(key);
    if (!r->line || strncmp(r->line, key, n) || (r->line[n] && r->line[n] != ' ')) return false;
    *rest = r->line + n + (r->line[n] ? 1 : 0);
    return true;
}

static dp_status expect(reader *r, const char *key, const char **rest) {
    if (!next_line(r)) return bad(r, "ends early: '%s' expected after line %d", key, r->lineno);
    if (!starts(r, key, rest)) return bad(r, "'%s' expected, found '%.60s'", key, r->line);
    return DP_OK;
}

/* Exactly n ints (each within [lo, hi]) and nothing else. */
static dp_status read_ints(reader *r, const char *s, int *v, int n, int lo, int hi,
                           const char *what) {
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < lo || x > hi)
            return bad(r, "%s: %d integers in [%d, %d] expected, found '%.60s'", what, n, lo, hi,
                       s);
        v[i] = (int)x;
        s = end;
    }
    while (*s == ' ' || *s == '\t') s++;
    if (*s) return bad(r, "%s: unexpected '%.40s' after %d values", what, s, n);
    return DP_OK;
}

static dp_status read_string(reader *r, const char *key, char *out, size_t n) {
    const char *rest = "";
    dp_status st = expect(r, key, &rest);
    if (st != DP_OK) return st;
    if (!*rest) return bad(r, "'%s' has no value", key);
    if (strlen(rest) >= n) return bad(r, "'%s' value longer than %zu characters", key, n - 1);
    snprintf(out, n, "%s", rest);
    return DP_OK;
}

static dp_status read_int_key(reader *r, const char *key, int *v, int n, int lo, int hi) {
    const char *rest = "";
    dp_status st = expect(r, key, &rest);
    return st != DP_OK ? st : read_ints(r, rest, v, n, lo, hi, key);
}

/* An axis: 1..DP_LATENCY_MAX_AXIS strictly ascending channel counts ending at `full`. */
static dp_status read_axis(reader *r, const char *key, int full, int *axis, int *n) {
    const char *rest = "";
    dp_status st = expect(r, key, &rest);
    if (st != DP_OK) return st;
    *n = 0;
    for (const char *s = rest; *s;) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s) {
            while (*s == ' ' || *s == '\t') s++;
            if (!*s) break;
            return bad(r, "%s: channel count expected, found '%.40s'", key, s);
        }
        if (errno || x < 1 || x > full)
            return bad(r, "%s: %ld is not a channel count in [1, %d]", key, x, full);
        if (*n == DP_LATENCY_MAX_AXIS)
            return bad(r, "%s: more than %d points", key, DP_LATENCY_MAX_AXIS);
        if (*n > 0 && x <= axis[*n - 1])
            return bad(r, "%s: counts must be strictly ascending (%ld after %d)", key, x,
                       axis[*n - 1]);
        axis[(*n)++] = (int)x;
        s = end;
    }
    if (*n == 0) return bad(r, "%s: no channel counts", key);
    if (axis[*n - 1] != full)
        return bad(r, "%s: the last count %d is not the full width %d", key, axis[*n - 1], full);
    return DP_OK;
}

/* n_in rows "KEY CIN: v v v" of n_out finite non-negative times. */
static dp_status read_rows(reader *r, const char *key, const dp_latency_entry *e, double *v) {
    for (int a = 0; a < e->n_in; a++) {
        const char *s = "";
        dp_status st = expect(r, key, &s);
        if (st != DP_OK) return st;
        char *end;
        long cin = strtol(s, &end, 10);
        if (end == s || *end != ':' || cin != e->in_axis[a])
            return bad(r, "%s row %d of '%s' must start with '%d:'", key, a + 1, e->name,
                       e->in_axis[a]);
        s = end + 1;
        for (int b = 0; b < e->n_out; b++) {
            errno = 0;
            double x = strtod(s, &end);
            if (end == s || errno || !isfinite(x) || x < 0)
                return bad(r,
                           "%s row %d of '%s': %d non-negative times expected, value %d is "
                           "'%.30s'",
                           key, a + 1, e->name, e->n_out, b + 1, s);
            v[a * e->n_out + b] = x;
            s = end;
        }
        while (*s == ' ' || *s == '\t') s++;
        if (*s)
            return bad(r, "%s row %d of '%s': more than %d values", key, a + 1, e->name, e->n_out);
    }
    return DP_OK;
}

static dp_status read_entry(reader *r, dp_latency_entry *e, bool train) {
    const char *rest = "";
    dp_status st = expect(r, "entry", &rest);
    if (st != DP_OK) return st;
    char name[64], op[32], extra[8];
    if (sscanf(rest, "%63s %31s %7s", name, op, extra) != 2 || strlen(name) >= sizeof e->name ||
        strlen(op) >= sizeof e->op)
        return bad(r, "'entry NAME OP' expected, found '%.60s'", r->line);
    memcpy(e->name, name, strlen(name) + 1); // lengths checked above
    memcpy(e->op, op, strlen(op) + 1);
    if ((st = expect(r, "shape", &rest)) != DP_OK) return st;
    int in[3], out[3];
    if (sscanf(rest, "%d %d %d -> %d %d %d %7s", &in[0], &in[1], &in[2], &out[0], &out[1], &out[2],
               extra) != 6 ||
        in[0] < 1 || in[1] < 1 || in[2] < 1 || out[0] < 1 || out[1] < 1 || out[2] < 1)
        return bad(r, "'shape C H W -> C H W' with positive sizes expected for '%s'", e->name);
    e->in_c = in[0], e->in_h = in[1], e->in_w = in[2];
    e->out_c = out[0], e->out_h = out[1], e->out_w = out[2];
    int attr[2];
    if ((st = read_int_key(r, "attr", attr, 2, 0, 1 << 20)) != DP_OK) return st;
    e->k = attr[0], e->stride = attr[1];
    if ((st = read_axis(r, "in_axis", e->in_c, e->in_axis, &e->n_in)) != DP_OK) return st;
    if ((st = read_axis(r, "out_axis", e->out_c, e->out_axis, &e->n_out)) != DP_OK) return st;
    if ((st = dp_latency_entry_alloc(e, train, r->err)) != DP_OK) return st;
    if ((st = read_rows(r, "infer", e, e->infer_ms)) != DP_OK) return st;
    if (train && (st = read_rows(r, "train", e, e->train_ms)) != DP_OK) return st;
    if ((st = expect(r, "end", &rest)) != DP_OK) return st;
    if (*rest) return bad(r, "'end' expected, found '%.60s'", r->line);
    return DP_OK;
}

static dp_status read_table(reader *r, dp_latency_table *t) {
    const char *rest = "";
    if (!next_line(r)) return bad(r, "is empty; write one with `dprune profile CONF`");
    if (!starts(r, "dprune-latency-table", &rest))
        return bad(r,
                   "not a dprune latency table (first line '%.40s'); write one with `dprune "
                   "profile CONF`",
                   r->line);
    int version = 0;
    dp_status st = read_ints(r, rest, &version, 1, 0, 1 << 30, "dprune-latency-table");
    if (st != DP_OK) return st;
    if (version != DP_LATENCY_FORMAT_VERSION)
        return bad(r, "format version %d, this dprune reads version %d", version,
                   DP_LATENCY_FORMAT_VERSION);
    int in[3], n;
    if ((st = read_string(r, "model", t->model, sizeof t->model)) != DP_OK) return st;
    if ((st = read_int_key(r, "input", in, 3, 1, 1 << 20)) != DP_OK) return st;
    t->in_c = in[0], t->in_h = in[1], t->in_w = in[2];
    if ((st = read_int_key(r, "batch", &t->batch, 1, 1, 1 << 24)) != DP_OK) return st;
    if ((st = read_int_key(r, "threads", &t->threads, 1, 1, 1 << 16)) != DP_OK) return st;
    if ((st = read_int_key(r, "reps", &t->reps, 1, 1, 1 << 24)) != DP_OK) return st;
    if ((st = read_string(r, "machine", t->machine, sizeof t->machine)) != DP_OK) return st;
    if ((st = read_string(r, "blas_core", t->blas_core, sizeof t->blas_core)) != DP_OK) return st;
    if ((st = read_string(r, "version", t->version, sizeof t->version)) != DP_OK) return st;
    if ((st = expect(r, "times", &rest)) != DP_OK) return st;
    bool train = !strcmp(rest, "infer train");
    if (!train && strcmp(rest, "infer"))
        return bad(r, "'times infer' or 'times infer train' expected, found '%.40s'", r->line);
    if ((st = read_int_key(r, "entries", &n, 1, 1, 1 << 20)) != DP_OK) return st;
    dp_latency_entry *entries = calloc((size_t)n, sizeof *entries);
    if (!entries) return bad(r, "out of memory for %d entries", n);
    t->entries = entries, t->n_entries = n;
    for (int i = 0; i < n; i++) {
        if ((st = read_entry(r, &t->entries[i], train)) != DP_OK) return st;
        for (int j = 0; j < i; j++)
            if (!strcmp(t->entries[j].name, t->entries[i].name))
                return bad(r, "entry '%s' appears twice", t->entries[i].name);
    }
    if (next_line(r)) return bad(r, "unexpected '%.40s' after the %d entries", r->line, n);
    return DP_OK;
}

dp_status dp_latency_table_parse(const char *text, const char *origin, dp_latency_table *t,
                                 dp_error *err) {
    memset(t, 0, sizeof *t);
    reader r = {.origin = origin, .err = err};
    r.text = strdup(text);
    if (!r.text) return dp_fail(err, DP_ERR_NOMEM, "latency table: out of memory");
    r.next = r.text;
    dp_status st = read_table(&r, t);
    free(r.text);
    if (st != DP_OK) {
        dp_latency_table_free(t);
        return st;
    }
    snprintf(t->path, sizeof t->path, "%s", origin);
    return DP_OK;
}

dp_status dp_latency_table_read(const char *path, dp_latency_table *t, dp_error *err) {
    memset(t, 0, sizeof *t);
    char *text;
    size_t len;
    dp_error why = {0};
    dp_status st = dp_read_text_file(path, &text, &len, &why);
    if (st != DP_OK)
        return dp_fail(err, st, "latency table: %s (write one with `dprune profile CONF`)",
                       why.msg);
    if (strlen(text) != len) { /* a NUL inside: binary garbage */
        free(text);
        return dp_fail(err, DP_ERR_IO, "latency table %s: not a text file", path);
    }
    st = dp_latency_table_parse(text, path, t, err);
    free(text);
    return st;
}
