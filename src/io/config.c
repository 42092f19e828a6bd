/* Config parsing and validation driven by the schema table (config_schema.c), plus the
 * generated reference. libconfig does the syntax; everything else is checked here so that
 * every error names origin:line, the setting, what is wrong and what would be right. */
#include "dprune/io.h"
#include <ctype.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dp_config *cfg;
    const char *origin; /* file name used in messages */
    const char *text;   /* the parsed text (to look at a number's literal) */
    dp_error *err;
} parse_ctx;

/* ---------------------------------------------------------------- small helpers */

/* Is `word` one of the '|'-separated entries of `list`? */
static bool list_has(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0) return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Copies the i-th '|'-separated entry of list into buf; false past the end. */
static bool list_item(const char *list, int i, char *buf, size_t bufsz) {
    const char *p = list;
    for (; p && i > 0; i--) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p || !*p) return false;
    const char *end = strchr(p, '|');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    snprintf(buf, bufsz, "%.*s", (int)len, p);
    return true;
}

/* Joins list entries as `a, b, c` (with optional quotes or backticks around each). */
static void list_join(const char *list, const char *quote, char *buf, size_t bufsz) {
    char item[DP_NAME_MAX];
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; list_item(list, i, item, sizeof item); i++) {
        int n = snprintf(buf + used, bufsz - used, "%s%s%s%s", i ? ", " : "", quote, item, quote);
        if (n < 0 || (size_t)n >= bufsz - used) break;
        used += (size_t)n;
    }
}

/* Levenshtein distance, capped for long strings (which are never close anyway). */
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 1000;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* How far a typo may be from a name to still be suggested: short names allow little. */
static bool close_enough(int distance, const char *typed) {
    size_t n = strlen(typed);
    int limit = n <= 2 ? 1 : n <= 5 ? 2 : 3;
    return distance <= limit && (size_t)distance < n;
}

/* Numbers in messages and the reference: integers without exponent, others %g. */
static void fmt_num(double v, char *buf, size_t bufsz) {
    if (v == HUGE_VAL || v == -HUGE_VAL)
        snprintf(buf, bufsz, "%s", v > 0 ? "inf" : "-inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, bufsz, "%.0f", v);
    else
        snprintf(buf, bufsz, "%g", v);
}

static bool is_integral(dp_setting_type t) {
    return t == DP_SET_INT || t == DP_SET_INT64 || t == DP_SET_INT_LIST;
}

/* The bounds actually enforced: an int setting also has to fit an int. */
static void effective_range(const dp_setting *row, double *lo, double *hi) {
    *lo = row->min;
    *hi = row->max;
    if (row->type == DP_SET_INT || row->type == DP_SET_INT_LIST) {
        if (*lo < INT_MIN) *lo = INT_MIN;
        if (*hi > INT_MAX) *hi = INT_MAX;
    }
}

/* "[0, 100]", ">= 0", "<= 5" or "any value". */
static void fmt_range(const dp_setting *row, char *buf, size_t bufsz) {
    double lo, hi;
    effective_range(row, &lo, &hi);
    char a[32], b[32];
    fmt_num(lo, a, sizeof a);
    fmt_num(hi, b, sizeof b);
    bool has_lo = lo != -HUGE_VAL, has_hi = hi != HUGE_VAL;
    if (row->type == DP_SET_INT64) has_lo = lo > -9e18, has_hi = hi < 9e18;
    if (has_lo && has_hi)
        snprintf(buf, bufsz, "[%s, %s]", a, b);
    else if (has_lo)
        snprintf(buf, bufsz, ">= %s", a);
    else if (has_hi)
        snprintf(buf, bufsz, "<= %s", b);
    else
        snprintf(buf, bufsz, "any value");
}

/* The name after the last '.', e.g. "lr" for "train.lr". */
static const char *leaf(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* "name = value;" with a plausible value, for hints. */
static void fmt_example(const dp_setting *row, char *buf, size_t bufsz) {
    char v[128];
    double d = row->def;
    if (row->flags & DP_SET_REQUIRED || row->required_for) d = fmax(row->min, fmin(1, row->max));
    switch (row->type) {
    case DP_SET_INT:
    case DP_SET_INT64:
    case DP_SET_FLOAT:
        fmt_num(d, v, sizeof v);
        if (row->type == DP_SET_FLOAT && !strchr(v, '.') && !strchr(v, 'e'))
            strcat(v, ".0"); /* show that fractions are allowed */
        break;
    case DP_SET_BOOL:
        snprintf(v, sizeof v, "%s", d != 0 ? "true" : "false");
        break;
    case DP_SET_STRING:
        snprintf(v, sizeof v, "\"%s\"", row->def_str);
        break;
    case DP_SET_ENUM: {
        char first[DP_NAME_MAX];
        list_item(row->choices, 0, first, sizeof first);
        snprintf(v, sizeof v, "\"%s\"", row->def_str && row->def_str[0] ? row->def_str : first);
        break;
    }
    case DP_SET_FLOAT_LIST:
        snprintf(v, sizeof v, "[0.5, 0.5, 0.5]");
        break;
    case DP_SET_INT_LIST:
        snprintf(v, sizeof v, "[100, 150]");
        break;
    case DP_SET_LAYERS:
        snprintf(v, sizeof v, "( { type = \"conv\"; out = 32; k = 3; }, { type = \"relu\"; } )");
        break;
    }
    snprintf(buf, bufsz, "%s = %s;", leaf(row->path), v);
}

static const char *expected_kind(dp_setting_type t) {
    switch (t) {
    case DP_SET_INT:
    case DP_SET_INT64:
        return "an integer";
    case DP_SET_FLOAT:
        return "a number";
    case DP_SET_BOOL:
        return "true or false";
    case DP_SET_STRING:
        return "a string in double quotes";
    case DP_SET_ENUM:
        return "a string in double quotes";
    case DP_SET_FLOAT_LIST:
        return "a list of numbers";
    case DP_SET_INT_LIST:
        return "a list of integers";
    case DP_SET_LAYERS:
        return "a list of layer groups";
    }
    return "?";
}

/* Describes what the user wrote, e.g. `the string "fast"`. */
static void describe_value(const config_setting_t *s, char *buf, size_t bufsz) {
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(buf, bufsz, "the integer %lld", config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        snprintf(buf, bufsz, "the number %g", config_setting_get_float(s));
        break;
    case CONFIG_TYPE_STRING:
        snprintf(buf, bufsz, "the string \"%.40s\"", config_setting_get_string(s));
        break;
    case CONFIG_TYPE_BOOL:
        snprintf(buf, bufsz, "the boolean %s", config_setting_get_bool(s) ? "true" : "false");
        break;
    case CONFIG_TYPE_GROUP:
        snprintf(buf, bufsz, "a group { ... }");
        break;
    case CONFIG_TYPE_ARRAY:
        snprintf(buf, bufsz, "an array [ ... ]");
        break;
    case CONFIG_TYPE_LIST:
        snprintf(buf, bufsz, "a list ( ... )");
        break;
    default:
        snprintf(buf, bufsz, "an unknown value");
        break;
    }
}

/* Formats "<origin>:<line>: setting '<name>': <message>" as a DP_ERR_CONFIG. s may be NULL
 * (a missing setting), in which case near (if any) provides the line. */
static dp_status fail_at(const parse_ctx *c, const config_setting_t *s, const char *name,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static dp_status fail_at(const parse_ctx *c, const config_setting_t *s, const char *name,
                         const char *fmt, ...) {
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *file =
        s && config_setting_source_file(s) ? config_setting_source_file(s) : c->origin;
    int line = s ? (int)config_setting_source_line(s) : 0;
    if (line > 0)
        return dp_fail(c->err, DP_ERR_CONFIG, "%s:%d: setting '%s': %s", file, line, name, what);
    return dp_fail(c->err, DP_ERR_CONFIG, "%s: setting '%s': %s", file, name, what);
}

static dp_status fail_type(const parse_ctx *c, const dp_setting *row, const char *name,
                           const config_setting_t *s) {
    char got[96], example[160];
    describe_value(s, got, sizeof got);
    fmt_example(row, example, sizeof example);
    return fail_at(c, s, name, "expected %s but got %s; write e.g. %s", expected_kind(row->type),
                   got, example);
}

/* libconfig 1.5 silently wraps integer literals beyond 32 bits unless they carry an L suffix
 * (a seed of 10000000000 would become 1410065408). Re-read the literal from the source line and
 * report a mismatch instead of training with a different value than written. Only settings
 * written as `name = <number>` on one line of the main text are checked. */
static bool literal_wrapped(const parse_ctx *c, const config_setting_t *s, long long value,
                            long long *written) {
    const char *name = config_setting_name(s);
    if (!name || config_setting_source_file(s) || config_setting_type(s) != CONFIG_TYPE_INT)
        return false;
    const char *p = c->text;
    for (int line = 1; p && line < (int)config_setting_source_line(s); line++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p) return false;
    const char *eol = strchr(p, '\n');
    size_t n = strlen(name);
    /* one line may hold several settings of this name (model.layers entries): the value was
     * read as written if any of them matches it */
    bool mismatch = false;
    for (const char *q = p; (q = strstr(q, name)) && (!eol || q < eol); q += n) {
        bool word_start = q == c->text || !(isalnum((unsigned char)q[-1]) || q[-1] == '_');
        const char *r = q + n;
        while (*r == ' ' || *r == '\t') r++;
        if (!word_start || (*r != '=' && *r != ':')) continue;
        r++;
        while (*r == ' ' || *r == '\t') r++;
        char *end;
        long long v = strtoll(r, &end, 0);
        if (end == r) continue;
        if (v == value) return false;
        if (!mismatch || v != (int32_t)v) *written = v; /* prefer the literal that wraps */
        mismatch = true;
    }
    return mismatch;
}

/* ---------------------------------------------------------------- values */

/* Reads a number into *out after type and range checks (also used for list entries). */
static dp_status parse_number(const parse_ctx *c, const dp_setting *row, const char *name,
                              const config_setting_t *s, double *out) {
    int t = config_setting_type(s);
    bool integral = is_integral(row->type);
    double v;
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        long long iv = config_setting_get_int64(s), written;
        if (literal_wrapped(c, s, iv, &written))
            return fail_at(c, s, name,
                           "%lld does not fit a 32-bit integer literal; write it with an L "
                           "suffix, e.g. %lldL",
                           written, written);
        v = (double)iv;
    } else if (t == CONFIG_TYPE_FLOAT && !integral) {
        v = config_setting_get_float(s);
    } else if (t == CONFIG_TYPE_FLOAT) {
        char example[160];
        fmt_example(row, example, sizeof example);
        return fail_at(c, s, name,
                       "expected an integer but got the number %g; write a whole number "
                       "without a decimal point, e.g. %s",
                       config_setting_get_float(s), example);
    } else if (row->type == DP_SET_INT_LIST || row->type == DP_SET_FLOAT_LIST) {
        char got[96];
        describe_value(s, got, sizeof got);
        return fail_at(c, s, name, "expected %s but got %s", integral ? "an integer" : "a number",
                       got);
    } else {
        return fail_type(c, row, name, s);
    }
    double lo, hi;
    effective_range(row, &lo, &hi);
    if (!isfinite(v) || v < lo || v > hi) {
        char num[32], range[96];
        fmt_num(v, num, sizeof num);
        fmt_range(row, range, sizeof range);
        return fail_at(c, s, name, "%s is out of range; allowed range is %s", num, range);
    }
    *out = v;
    return DP_OK;
}

static dp_status parse_list(const parse_ctx *c, const dp_setting *row, const char *name,
                            const config_setting_t *s, char *base) {
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) return fail_type(c, row, name, s);
    int n = config_setting_length(s);
    if (n > (int)row->size)
        return fail_at(c, s, name, "has %d entries; at most %zu are allowed", n, row->size);
    for (int i = 0; i < n; i++) {
        char ename[DP_NAME_MAX + 16];
        snprintf(ename, sizeof ename, "%s[%d]", name, i);
        double v;
        dp_status st = parse_number(c, row, ename, config_setting_get_elem(s, (unsigned)i), &v);
        if (st) return st;
        if (row->type == DP_SET_FLOAT_LIST)
            ((double *)(base + row->offset))[i] = v;
        else
            ((int *)(base + row->offset))[i] = (int)v;
    }
    *(int *)(base + row->count_offset) = n;
    return DP_OK;
}

static dp_status parse_layers(const parse_ctx *c, const dp_setting *row, const char *name,
                              const config_setting_t *s, char *base);

/* Parses one setting s described by row into the struct at base; name is the display path. */
static dp_status parse_value(const parse_ctx *c, const dp_setting *row, const char *name,
                             const config_setting_t *s, char *base) {
    void *dst = base + row->offset;
    double v;
    dp_status st;
    switch (row->type) {
    case DP_SET_INT:
    case DP_SET_INT64:
    case DP_SET_FLOAT:
        if ((st = parse_number(c, row, name, s, &v))) return st;
        if (row->type == DP_SET_INT) *(int *)dst = (int)v;
        if (row->type == DP_SET_INT64) *(int64_t *)dst = config_setting_get_int64(s);
        if (row->type == DP_SET_FLOAT) *(double *)dst = v;
        return DP_OK;
    case DP_SET_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) return fail_type(c, row, name, s);
        *(bool *)dst = config_setting_get_bool(s);
        return DP_OK;
    case DP_SET_STRING:
    case DP_SET_ENUM: {
        if (config_setting_type(s) != CONFIG_TYPE_STRING) return fail_type(c, row, name, s);
        const char *str = config_setting_get_string(s);
        if (row->type == DP_SET_ENUM && !list_has(row->choices, str)) {
            char allowed[512], item[DP_NAME_MAX], hint[DP_NAME_MAX + 32] = "";
            list_join(row->choices, "\"", allowed, sizeof allowed);
            int best = 1000;
            for (int i = 0; list_item(row->choices, i, item, sizeof item); i++) {
                int d = edit_distance(str, item);
                if (d < best && close_enough(d, str)) {
                    best = d;
                    snprintf(hint, sizeof hint, "did you mean \"%s\"? ", item);
                }
            }
            return fail_at(c, s, name, "\"%.64s\" is not a valid choice; %sallowed: %s", str, hint,
                           allowed);
        }
        if (strlen(str) >= row->size)
            return fail_at(c, s, name, "the value is %zu characters long; at most %zu are allowed",
                           strlen(str), row->size - 1);
        memcpy(dst, str, strlen(str) + 1);
        return DP_OK;
    }
    case DP_SET_FLOAT_LIST:
    case DP_SET_INT_LIST:
        return parse_list(c, row, name, s, base);
    case DP_SET_LAYERS:
        return parse_layers(c, row, name, s, base);
    }
    return DP_OK;
}

/* ---------------------------------------------------------------- model.layers */

/* "out, k" for the layer fields required by (or merely used by) a layer type. */
static void layer_fields(const char *type, bool required, char *buf, size_t bufsz) {
    size_t n, used = 0;
    const dp_setting *rows = dp_config_layer_schema(&n);
    buf[0] = '\0';
    for (size_t i = 1; i < n; i++) { /* row 0 is `type` itself */
        const char *set = required ? rows[i].required_for : rows[i].used_by;
        if (!set || !list_has(set, type)) continue;
        int w = snprintf(buf + used, bufsz - used, "%s%s", used ? ", " : "", rows[i].path);
        if (w < 0 || (size_t)w >= bufsz - used) break;
        used += (size_t)w;
    }
}

static dp_status parse_layer(const parse_ctx *c, const char *name, const config_setting_t *e,
                             dp_layer_spec *spec) {
    size_t nrows;
    const dp_setting *rows = dp_config_layer_schema(&nrows);
    char fname[DP_NAME_MAX + 48], fields[256];
    dp_status st;
    if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
        char got[96];
        describe_value(e, got, sizeof got);
        return fail_at(c, e, name, "expected a layer group { type = \"...\"; ... } but got %s",
                       got);
    }
    /* The type decides which fields are allowed and required, so read it first. */
    const config_setting_t *ts = config_setting_get_member(e, "type");
    snprintf(fname, sizeof fname, "%s.type", name);
    if (!ts) {
        char allowed[256];
        list_join(rows[0].choices, "\"", allowed, sizeof allowed);
        return fail_at(c, e, fname, "missing; every layer needs a type, one of: %s", allowed);
    }
    if ((st = parse_value(c, &rows[0], fname, ts, (char *)spec))) return st;

    for (size_t i = 1; i < nrows; i++)
        if (!rows[i].used_by || list_has(rows[i].used_by, spec->type)) {
            if (rows[i].type == DP_SET_FLOAT)
                *(double *)((char *)spec + rows[i].offset) = rows[i].def;
            else if (rows[i].type == DP_SET_BOOL)
                *(bool *)((char *)spec + rows[i].offset) = rows[i].def != 0;
            else
                *(int *)((char *)spec + rows[i].offset) = (int)rows[i].def;
        }

    for (int j = 0; j < config_setting_length(e); j++) {
        const config_setting_t *f = config_setting_get_elem(e, (unsigned)j);
        const char *key = config_setting_name(f);
        if (f == ts) continue;
        snprintf(fname, sizeof fname, "%s.%s", name, key);
        const dp_setting *row = NULL;
        for (size_t i = 1; i < nrows && !row; i++)
            if (strcmp(rows[i].path, key) == 0) row = &rows[i];
        layer_fields(spec->type, false, fields, sizeof fields);
        if (!row) {
            const char *best = NULL;
            int bestd = 1000;
            for (size_t i = 1; i < nrows; i++) {
                int d = edit_distance(key, rows[i].path);
                if (d < bestd && close_enough(d, key)) bestd = d, best = rows[i].path;
            }
            if (best) return fail_at(c, f, fname, "unknown layer field; did you mean '%s'?", best);
            return fail_at(c, f, fname, "unknown layer field; %s layers take: type%s%s", spec->type,
                           fields[0] ? ", " : "", fields);
        }
        if (row->used_by && !list_has(row->used_by, spec->type))
            return fail_at(c, f, fname,
                           "not used by %s layers; remove it (%s layers take: type%s%s)",
                           spec->type, spec->type, fields[0] ? ", " : "", fields);
        if ((st = parse_value(c, row, fname, f, (char *)spec))) return st;
    }

    for (size_t i = 1; i < nrows; i++)
        if (rows[i].required_for && list_has(rows[i].required_for, spec->type) &&
            !config_setting_get_member(e, rows[i].path)) {
            layer_fields(spec->type, true, fields, sizeof fields);
            snprintf(fname, sizeof fname, "%s.%s", name, rows[i].path);
            return fail_at(c, e, fname, "missing; %s layers require: %s", spec->type, fields);
        }
    /* Pools default to non-overlapping windows (stride = k), as in the usual frameworks. */
    if ((strcmp(spec->type, "maxpool") == 0 || strcmp(spec->type, "avgpool") == 0) &&
        !config_setting_get_member(e, "stride"))
        spec->stride = spec->k;
    return DP_OK;
}

static dp_status parse_layers(const parse_ctx *c, const dp_setting *row, const char *name,
                              const config_setting_t *s, char *base) {
    int t = config_setting_type(s);
    /* An empty `[]` is an array; anything else non-list cannot hold groups. */
    if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
        return fail_type(c, row, name, s);
    int n = config_setting_length(s);
    if (n > (int)row->size)
        return fail_at(c, s, name, "has %d layers; at most %zu are allowed", n, row->size);
    dp_layer_spec *layers = (dp_layer_spec *)(base + row->offset);
    for (int i = 0; i < n; i++) {
        char ename[DP_NAME_MAX];
        snprintf(ename, sizeof ename, "%s[%d]", name, i);
        memset(&layers[i], 0, sizeof layers[i]);
        dp_status st = parse_layer(c, ename, config_setting_get_elem(s, (unsigned)i), &layers[i]);
        if (st) return st;
    }
    *(int *)(base + row->count_offset) = n;
    return DP_OK;
}

/* ---------------------------------------------------------------- the tree */

static const dp_setting *find_row(const char *path) {
    size_t n;
    const dp_setting *rows = dp_config_schema(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].path, path) == 0) return &rows[i];
    return NULL;
}

static bool is_section(const char *name) {
    size_t n, len = strlen(name);
    const dp_setting *rows = dp_config_schema(&n);
    for (size_t i = 0; i < n; i++)
        if (strncmp(rows[i].path, name, len) == 0 && rows[i].path[len] == '.') return true;
    return false;
}

/* The i-th section name in table order (sections are the first parts of the paths); false
 * past the last one. */
static bool section_at(int i, char *buf, size_t bufsz) {
    size_t n;
    const dp_setting *rows = dp_config_schema(&n);
    for (size_t r = 0; r < n; r++) {
        size_t len = (size_t)(leaf(rows[r].path) - rows[r].path - 1);
        if (r > 0 && strncmp(rows[r - 1].path, rows[r].path, len + 1) == 0) continue;
        if (i-- == 0) {
            snprintf(buf, bufsz, "%.*s", (int)len, rows[r].path);
            return true;
        }
    }
    return false;
}

/* "run, data, model, train" */
static void section_list(char *buf, size_t bufsz) {
    char name[DP_NAME_MAX];
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; section_at(i, name, sizeof name); i++) {
        int w = snprintf(buf + used, bufsz - used, "%s%s", i ? ", " : "", name);
        if (w < 0 || (size_t)w >= bufsz - used) break;
        used += (size_t)w;
    }
}

/* An unknown key: suggest the closest known setting, also across sections (a setting put in
 * the wrong group, or at top level, is a common slip). section is NULL at top level. */
static dp_status fail_unknown(const parse_ctx *c, const config_setting_t *s, const char *section,
                              const char *key) {
    char path[2 * DP_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s%s%s", section ? section : "", section ? "." : "", key);
    size_t n;
    const dp_setting *rows = dp_config_schema(&n);
    const char *best = NULL;
    int bestd = 1000;
    for (size_t i = 0; i < n; i++) {
        size_t seclen = (size_t)(leaf(rows[i].path) - rows[i].path - 1);
        bool same_section =
            section && strlen(section) == seclen && strncmp(section, rows[i].path, seclen) == 0;
        int d = edit_distance(key, leaf(rows[i].path)) + (same_section ? 0 : 1);
        int dfull = edit_distance(path, rows[i].path);
        if (dfull < d) d = dfull;
        if (d < bestd && close_enough(d, key)) bestd = d, best = rows[i].path;
    }
    if (best) return fail_at(c, s, path, "unknown setting; did you mean '%s'?", best);
    if (section) {
        char known[1024];
        size_t used = 0;
        known[0] = '\0';
        for (size_t i = 0; i < n; i++) {
            if (strncmp(rows[i].path, section, strlen(section)) != 0 ||
                rows[i].path[strlen(section)] != '.')
                continue;
            int w = snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "",
                             leaf(rows[i].path));
            if (w < 0 || (size_t)w >= sizeof known - used) break;
            used += (size_t)w;
        }
        return fail_at(c, s, path, "unknown setting; the %s section has: %s", section, known);
    }
    char sections[256];
    section_list(sections, sizeof sections);
    return fail_at(c, s, path, "unknown setting; settings belong in one of the sections %s",
                   sections);
}

static dp_status fail_unknown_section(const parse_ctx *c, const config_setting_t *s,
                                      const char *name) {
    char sections[256], item[DP_NAME_MAX];
    for (int i = 0; section_at(i, item, sizeof item); i++)
        if (close_enough(edit_distance(name, item), name))
            return fail_at(c, s, name, "unknown section; did you mean '%s'?", item);
    section_list(sections, sizeof sections);
    return fail_at(c, s, name, "unknown section; known sections: %s", sections);
}

static dp_status walk_tree(const parse_ctx *c, config_setting_t *root) {
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *sec = config_setting_get_elem(root, (unsigned)i);
        const char *sname = config_setting_name(sec);
        bool group = config_setting_type(sec) == CONFIG_TYPE_GROUP;
        if (!is_section(sname))
            return group ? fail_unknown_section(c, sec, sname) : fail_unknown(c, sec, NULL, sname);
        if (!group) {
            char got[96];
            describe_value(sec, got, sizeof got);
            return fail_at(c, sec, sname, "expected a section group %s = { ... }; but got %s",
                           sname, got);
        }
        for (int j = 0; j < config_setting_length(sec); j++) {
            const config_setting_t *s = config_setting_get_elem(sec, (unsigned)j);
            char path[2 * DP_NAME_MAX + 2];
            snprintf(path, sizeof path, "%s.%s", sname, config_setting_name(s));
            const dp_setting *row = find_row(path);
            if (!row) return fail_unknown(c, s, sname, config_setting_name(s));
            dp_status st = parse_value(c, row, path, s, (char *)c->cfg);
            if (st) return st;
        }
    }
    return DP_OK;
}

static void apply_defaults(dp_config *cfg) {
    size_t n;
    const dp_setting *rows = dp_config_schema(&n);
    char *base = (char *)cfg;
    for (size_t i = 0; i < n; i++) {
        const dp_setting *r = &rows[i];
        void *dst = base + r->offset;
        switch (r->type) {
        case DP_SET_INT:
            *(int *)dst = (int)r->def;
            break;
        case DP_SET_INT64:
            *(int64_t *)dst = (int64_t)r->def;
            break;
        case DP_SET_FLOAT:
            *(double *)dst = r->def;
            break;
        case DP_SET_BOOL:
            *(bool *)dst = r->def != 0;
            break;
        case DP_SET_STRING:
        case DP_SET_ENUM:
            snprintf(dst, r->size, "%s", r->def_str ? r->def_str : "");
            break;
        case DP_SET_FLOAT_LIST:
        case DP_SET_INT_LIST:
        case DP_SET_LAYERS:
            *(int *)(base + r->count_offset) = 0;
            break;
        }
    }
}

static dp_status check_required(const parse_ctx *c, const config_t *lc) {
    size_t n;
    const dp_setting *rows = dp_config_schema(&n);
    for (size_t i = 0; i < n; i++) {
        if (!(rows[i].flags & DP_SET_REQUIRED) || config_lookup(lc, rows[i].path)) continue;
        char example[160], section[DP_NAME_MAX], allowed[512] = "";
        fmt_example(&rows[i], example, sizeof example);
        snprintf(section, sizeof section, "%.*s", (int)(leaf(rows[i].path) - rows[i].path - 1),
                 rows[i].path);
        if (rows[i].type == DP_SET_ENUM) {
            char choices[480];
            list_join(rows[i].choices, "\"", choices, sizeof choices);
            snprintf(allowed, sizeof allowed, "; allowed: %s", choices);
        }
        return fail_at(c, NULL, rows[i].path, "missing; it is required: add e.g. %s = { %s };%s",
                       section, example, allowed);
    }
    return DP_OK;
}

/* Rules spanning settings, which one schema row cannot express. */
static dp_status check_cross_fields(const parse_ctx *c, const config_t *lc) {
    dp_config *cfg = c->cfg;
    const config_setting_t *s;

    /* custom networks and only they are described by model.layers */
    bool custom = strcmp(cfg->model.arch, "custom") == 0;
    if ((s = config_lookup(lc, "model.layers")) && !custom)
        return fail_at(c, s, "model.layers",
                       "only allowed with arch = \"custom\" (arch is \"%s\"); remove the layers "
                       "or set arch = \"custom\"",
                       cfg->model.arch);
    if (custom && cfg->model.n_layers == 0)
        return fail_at(c, s ? s : config_lookup(lc, "model.arch"), "model.layers",
                       "%s; arch = \"custom\" needs at least one layer, e.g. layers = ( { type = "
                       "\"conv\"; out = 32; k = 3; }, { type = \"relu\"; } );",
                       s ? "is empty" : "missing");

    /* one entry for gray, three for RGB (an empty list means "dataset default") */
    const char *stat_names[2] = {"data.mean", "data.std"};
    int counts[2] = {cfg->data.n_mean, cfg->data.n_std};
    for (int i = 0; i < 2; i++)
        if ((s = config_lookup(lc, stat_names[i])) && counts[i] != 1 && counts[i] != 3)
            return fail_at(c, s, stat_names[i],
                           "has %d entries; give 1 (all channels) or 3 (R, G, B) entries, "
                           "e.g. %s = [0.5, 0.5, 0.5];",
                           counts[i], leaf(stat_names[i]));

    if (!strcmp(cfg->prune.budget, "latency") && !cfg->prune.latency_table[0])
        return fail_at(c, config_lookup(lc, "prune.budget"), "prune.latency_table",
                       "missing; budget = \"latency\" needs a per-layer time table: write one "
                       "with `dprune profile CONF` and add e.g. latency_table = "
                       "\"runs/x/latency.txt\";");

    /* cip: steps on whole epochs, and a budget the cubic schedule can scale */
    const dp_prune_config *pc = &cfg->prune;
    if (!strcmp(pc->criterion, "cip") && pc->cip_epochs % pc->cip_steps != 0)
        return fail_at(c,
                       config_lookup(lc, "prune.cip_epochs") ? config_lookup(lc, "prune.cip_epochs")
                                                             : config_lookup(lc, "prune.cip_steps"),
                       "prune.cip_epochs",
                       "%d is not a multiple of cip_steps = %d; the schedule's steps fall on "
                       "epoch ends every cip_epochs / cip_steps epochs, e.g. cip_epochs = %d;",
                       pc->cip_epochs, pc->cip_steps,
                       pc->cip_steps * (pc->cip_epochs / pc->cip_steps + 1));
    if (!strcmp(pc->criterion, "cip") && !strcmp(pc->budget, "threshold"))
        return fail_at(c, config_lookup(lc, "prune.budget"), "prune.budget",
                       "\"threshold\" is a corr/ci budget; cip needs a ratio or a target "
                       "(uniform, ratios, global, flops, params or latency)");
    if (pc->fec_layerwise && strcmp(pc->criterion, "fec") != 0)
        return fail_at(c, config_lookup(lc, "prune.fec_layerwise"), "prune.fec_layerwise",
                       "needs criterion = \"fec\" (criterion is \"%s\")", pc->criterion);
    if (pc->fec_layerwise && pc->rounds != 1)
        return fail_at(c, config_lookup(lc, "prune.rounds"), "prune.rounds",
                       "is %d; fec_layerwise makes one round per group by itself: leave rounds "
                       "at 1",
                       pc->rounds);

    const dp_train_config *t = &cfg->train;
    for (int i = 1; i < t->n_milestones; i++)
        if (t->milestones[i] <= t->milestones[i - 1]) {
            s = config_lookup(lc, "train.milestones");
            return fail_at(c, config_setting_get_elem(s, (unsigned)i), "train.milestones",
                           "%d follows %d; milestones must be strictly increasing, e.g. "
                           "milestones = [100, 150];",
                           t->milestones[i], t->milestones[i - 1]);
        }
    if (strcmp(t->schedule, "multistep") == 0 && t->n_milestones == 0)
        return fail_at(c, config_lookup(lc, "train.schedule"), "train.milestones",
                       "missing; schedule = \"multistep\" needs the epochs at which to decay, "
                       "e.g. milestones = [100, 150];");
    return DP_OK;
}

/* ---------------------------------------------------------------- paths */

/* base/path into out; false if it does not fit. */
static bool resolve_into(const char *base, const char *path, char *out, size_t outsz) {
    int n;
    if (!path[0] || path[0] == '/' || !base || !base[0] || strcmp(base, ".") == 0)
        n = snprintf(out, outsz, "%s", path);
    else {
        size_t blen = strlen(base);
        while (blen > 1 && base[blen - 1] == '/') blen--;
        n = snprintf(out, outsz, "%.*s/%s", (int)blen, base, path);
    }
    return n >= 0 && (size_t)n < outsz;
}

void dp_config_resolve_path(const dp_config *cfg, const char *path, char *out, size_t outsz) {
    if (!resolve_into(cfg->base_dir, path, out, outsz) && outsz > 0) out[outsz - 1] = '\0';
}

static dp_status resolve_paths(const parse_ctx *c, const config_t *lc) {
    size_t n;
    const dp_setting *rows = dp_config_schema(&n);
    for (size_t i = 0; i < n; i++) {
        if (!(rows[i].flags & DP_SET_PATH)) continue;
        char *dst = (char *)c->cfg + rows[i].offset, tmp[DP_PATH_MAX];
        if (!resolve_into(c->cfg->base_dir, dst, tmp, sizeof tmp) || strlen(tmp) >= rows[i].size)
            return fail_at(c, config_lookup(lc, rows[i].path), rows[i].path,
                           "resolved against '%s' it is longer than %zu characters; use a "
                           "shorter path",
                           c->cfg->base_dir, rows[i].size - 1);
        memcpy(dst, tmp, strlen(tmp) + 1);
    }
    return DP_OK;
}

/* ---------------------------------------------------------------- entry points */

/* Adds a hint to libconfig's terse syntax messages. */
static const char *syntax_hint(const char *text) {
    if (strstr(text, "mismatched element type"))
        return "; all entries of an array [...] need the same type: write 1.0 rather than 1 "
               "next to fractions";
    if (strstr(text, "duplicate setting")) return "; each setting may appear only once";
    if (strstr(text, "syntax error"))
        return "; check this line and the one before for a missing ';', '=', quote or brace";
    return "";
}

dp_status dp_config_parse(dp_config *cfg, const char *text, const char *origin,
                          const char *base_dir, dp_error *err) {
    if (!cfg || !text) return dp_fail(err, DP_ERR_ARG, "dp_config_parse: NULL config or text");
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", origin ? origin : "");
    snprintf(cfg->base_dir, sizeof cfg->base_dir, "%s", base_dir ? base_dir : "");
    cfg->hash = dp_fnv1a(text, strlen(text));
    apply_defaults(cfg);

    parse_ctx c = {cfg, origin && origin[0] ? origin : "<config>", text, err};
    config_t lc;
    config_init(&lc);
    /* @include "x.cfg" is resolved next to the config, like every other relative path */
    if (cfg->base_dir[0]) config_set_include_dir(&lc, cfg->base_dir);
    dp_status st = DP_OK;
    if (!config_read_string(&lc, text)) {
        const char *file = config_error_file(&lc) ? config_error_file(&lc) : c.origin;
        st = dp_fail(err, DP_ERR_CONFIG, "%s:%d: %s%s", file, config_error_line(&lc),
                     config_error_text(&lc), syntax_hint(config_error_text(&lc)));
    }
    if (!st) st = walk_tree(&c, config_root_setting(&lc));
    if (!st) st = check_required(&c, &lc);
    if (!st) st = check_cross_fields(&c, &lc);
    if (!st) st = resolve_paths(&c, &lc);
    config_destroy(&lc);
    return st;
}

dp_status dp_config_load_file(dp_config *cfg, const char *path, dp_error *err) {
    char *text;
    dp_status st = dp_read_text_file(path, &text, NULL, err);
    if (st) return st;
    /* relative paths in the file are relative to the file's directory */
    char dir[DP_PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    st = dp_config_parse(cfg, text, path, dir, err);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- reference */

/* A markdown table cell: '|' would end the cell. */
static void md_cell(FILE *out, const char *s) {
    fputc(' ', out);
    for (; *s; s++) {
        if (*s == '|') fputc('\\', out);
        fputc(*s, out);
    }
    fputs(" |", out);
}

static const char *type_name(const dp_setting *r) {
    switch (r->type) {
    case DP_SET_INT:
        return "integer";
    case DP_SET_INT64:
        return "integer (64-bit)";
    case DP_SET_FLOAT:
        return "number";
    case DP_SET_BOOL:
        return "bool";
    case DP_SET_STRING:
        return r->flags & DP_SET_PATH ? "path" : "string";
    case DP_SET_ENUM:
        return "string";
    case DP_SET_FLOAT_LIST:
        return "list of numbers";
    case DP_SET_INT_LIST:
        return "list of integers";
    case DP_SET_LAYERS:
        return "list of layer groups";
    }
    return "?";
}

static void write_row(FILE *out, const dp_setting *r, bool layer_field) {
    char buf[640], num[32];
    fputc('|', out);
    snprintf(buf, sizeof buf, "`%s`", r->path);
    md_cell(out, buf);
    md_cell(out, type_name(r));
    /* default */
    if (r->flags & DP_SET_REQUIRED)
        snprintf(buf, sizeof buf, "**required**");
    else if (r->required_for) {
        char req[256];
        list_join(r->required_for, "", req, sizeof req);
        snprintf(buf, sizeof buf, "required (%s)", req);
    } else {
        switch (r->type) {
        case DP_SET_INT:
        case DP_SET_INT64:
        case DP_SET_FLOAT:
            fmt_num(r->def, num, sizeof num);
            snprintf(buf, sizeof buf, "`%s`", num);
            break;
        case DP_SET_BOOL:
            snprintf(buf, sizeof buf, "`%s`", r->def != 0 ? "true" : "false");
            break;
        case DP_SET_STRING:
        case DP_SET_ENUM:
            snprintf(buf, sizeof buf, "`\"%s\"`", r->def_str);
            break;
        default:
            snprintf(buf, sizeof buf, "empty");
            break;
        }
    }
    md_cell(out, buf);
    /* allowed */
    switch (r->type) {
    case DP_SET_INT:
    case DP_SET_INT64:
    case DP_SET_FLOAT:
        fmt_range(r, buf, sizeof buf);
        break;
    case DP_SET_BOOL:
        snprintf(buf, sizeof buf, "true, false");
        break;
    case DP_SET_ENUM:
        list_join(r->choices, "`", buf, sizeof buf);
        break;
    case DP_SET_FLOAT_LIST:
    case DP_SET_INT_LIST: {
        char range[96];
        fmt_range(r, range, sizeof range);
        snprintf(buf, sizeof buf, "up to %zu entries, each %s", r->size, range);
        break;
    }
    case DP_SET_LAYERS:
        snprintf(buf, sizeof buf, "up to %zu layers", r->size);
        break;
    default:
        snprintf(buf, sizeof buf, "up to %zu characters", r->size - 1);
        break;
    }
    md_cell(out, buf);
    if (layer_field) {
        if (r->used_by)
            list_join(r->used_by, "", buf, sizeof buf);
        else
            snprintf(buf, sizeof buf, "all");
        md_cell(out, buf);
    }
    md_cell(out, r->help);
    fputc('\n', out);
}

void dp_config_write_reference(FILE *out) {
    size_t n, nl;
    const dp_setting *rows = dp_config_schema(&n);
    const dp_setting *lrows = dp_config_layer_schema(&nl);
    fputs("# dprune configuration reference\n\n"
          "<!-- Generated from src/io/config_schema.c by `dprune config-help`; do not edit. -->\n\n"
          "A config is a [libconfig](https://hyperrealm.github.io/libconfig/) file with one group "
          "per section, e.g. `train = { epochs = 200; lr = 0.1; };`. Numbers may be written as "
          "integers where a number is expected, but not the other way round; 64-bit integers "
          "beyond 2147483647 need an `L` suffix. Unknown settings are errors. Relative paths are "
          "relative to the config file's directory.\n\n"
          "Minimal config:\n\n```\n",
          out);
    /* the minimal config lists the required settings, grouped by section */
    for (size_t i = 0; i < n; i++) {
        if (!(rows[i].flags & DP_SET_REQUIRED)) continue;
        char example[160];
        fmt_example(&rows[i], example, sizeof example);
        fprintf(out, "%.*s = { %s };\n", (int)(leaf(rows[i].path) - rows[i].path - 1), rows[i].path,
                example);
    }
    fputs("```\n", out);

    for (size_t i = 0; i < n; i++) {
        size_t seclen = (size_t)(leaf(rows[i].path) - rows[i].path - 1);
        if (i == 0 || strncmp(rows[i - 1].path, rows[i].path, seclen + 1) != 0) {
            char section[DP_NAME_MAX];
            snprintf(section, sizeof section, "%.*s", (int)seclen, rows[i].path);
            const char *help = dp_config_section_help(section);
            fprintf(out,
                    "\n## %s\n\n%s%s| Setting | Type | Default | Allowed | Description |\n"
                    "|---|---|---|---|---|\n",
                    section, help ? help : "", help ? "\n\n" : "");
        }
        write_row(out, &rows[i], false);
    }

    fputs("\n## model.layers entries\n\n"
          "Each entry of `model.layers` is a group such as "
          "`{ type = \"conv\"; out = 32; k = 3; pad = 1; }`. A field not used by the entry's "
          "type is an error.\n\n"
          "| Field | Type | Default | Allowed | Used by | Description |\n"
          "|---|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < nl; i++) write_row(out, &lrows[i], true);

    fputs("\n| Layer type | Required fields | Optional fields |\n|---|---|---|\n", out);
    char type[DP_NAME_MAX], req[256], opt[256];
    for (int i = 0; list_item(lrows[0].choices, i, type, sizeof type); i++) {
        layer_fields(type, true, req, sizeof req);
        /* optional = used by the type but not required */
        size_t used = 0;
        opt[0] = '\0';
        for (size_t j = 1; j < nl; j++) {
            if (lrows[j].used_by && !list_has(lrows[j].used_by, type)) continue;
            if (lrows[j].required_for && list_has(lrows[j].required_for, type)) continue;
            int w =
                snprintf(opt + used, sizeof opt - used, "%s%s", used ? ", " : "", lrows[j].path);
            if (w > 0 && (size_t)w < sizeof opt - used) used += (size_t)w;
        }
        fprintf(out, "| `%s` | %s | %s |\n", type, req[0] ? req : "-", opt[0] ? opt : "-");
    }
}
