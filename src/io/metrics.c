/* Metrics log: one JSON object per line, appended and flushed per line so that a crashed or
 * killed run keeps everything written so far and `tail -f` works. */
#include "dprune/io.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct dp_metrics {
    FILE *f;
};

dp_status dp_metrics_open(dp_metrics **out, const char *path, dp_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "a");
    if (!f)
        return dp_fail(err, DP_ERR_IO, "cannot open metrics file '%s' for appending: %s", path,
                       strerror(errno));
    dp_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        fclose(f);
        return dp_fail(err, DP_ERR_NOMEM, "out of memory opening metrics file '%s'", path);
    }
    m->f = f;
    *out = m;
    return DP_OK;
}

static bool is_ident(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.';
}

/* printf renders non-finite doubles as nan/inf, which JSON does not have. Writes s to f with
 * such bare words (outside strings, optionally signed) replaced by null. */
static void put_members(FILE *f, const char *s) {
    bool in_string = false;
    for (const char *r = s; *r;) {
        if (in_string) {
            if (*r == '\\' && r[1])
                fputc(*r++, f);
            else if (*r == '"')
                in_string = false;
            fputc(*r++, f);
            continue;
        }
        if (*r == '"') in_string = true;
        if (r == s || !is_ident(r[-1])) {
            const char *p = r + (*r == '-' || *r == '+');
            size_t len = 0;
            if (strncmp(p, "nan", 3) == 0 || strncmp(p, "NAN", 3) == 0) len = 3;
            if (strncmp(p, "inf", 3) == 0 || strncmp(p, "INF", 3) == 0)
                len = strncmp(p, "infinity", 8) == 0 ? 8 : 3;
            if (len && !is_ident(p[len])) {
                fputs("null", f);
                r = p + len;
                continue;
            }
        }
        fputc(*r++, f);
    }
}

void dp_metrics_write(dp_metrics *m, const char *fmt, ...) {
    if (!m || !m->f) return;
    char small[1024], *line = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof small) {
        line = malloc((size_t)n + 1);
        if (!line) return;
        va_start(ap, fmt);
        vsnprintf(line, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    fputc('{', m->f);
    put_members(m->f, line);
    fputs("}\n", m->f);
    fflush(m->f);
    if (line != small) free(line);
}

void dp_metrics_close(dp_metrics *m) {
    if (!m) return;
    if (m->f) fclose(m->f);
    free(m);
}

void dp_json_escape(const char *s, char *out, size_t outsz) {
    if (outsz == 0) return;
    size_t o = 0;
    bool truncated = false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        const char *named = NULL;
        switch (*p) {
        case '"':
            named = "\\\"";
            break;
        case '\\':
            named = "\\\\";
            break;
        case '\n':
            named = "\\n";
            break;
        case '\r':
            named = "\\r";
            break;
        case '\t':
            named = "\\t";
            break;
        case '\b':
            named = "\\b";
            break;
        case '\f':
            named = "\\f";
            break;
        }
        if (named)
            snprintf(esc, sizeof esc, "%s", named);
        else if (*p < 0x20)
            snprintf(esc, sizeof esc, "\\u%04x", *p); /* other control characters */
        else
            esc[0] = (char)*p, esc[1] = '\0';
        size_t k = strlen(esc);
        if (o + k >= outsz) { /* never write half an escape */
            truncated = true;
            break;
        }
        memcpy(out + o, esc, k);
        o += k;
    }
    /* Cut inside a multi-byte UTF-8 character? Drop its partial bytes too. */
    if (truncated) {
        size_t start = o;
        while (start > 0 && ((unsigned char)out[start - 1] & 0xC0) == 0x80) start--;
        if (start > 0 && ((unsigned char)out[start - 1] & 0xC0) == 0xC0) {
            unsigned char lead = (unsigned char)out[start - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
            if (o - (start - 1) < need) o = start - 1;
        }
    }
    out[o] = '\0';
}

/* The file's size, not ftell: the file is append-only, and a resume truncates it by path, after
 * which the stream's position still points past the new end until the next write. A checkpoint
 * taken in that window recorded a stale offset, so a later resume cut back too little and
 * epoch lines appeared twice (e2e_resume, rarely, after two kills). */
long dp_metrics_offset(dp_metrics *m) {
    if (!m) return -1;
    fflush(m->f);
    struct stat st;
    return fstat(fileno(m->f), &st) == 0 ? (long)st.st_size : -1;
}
