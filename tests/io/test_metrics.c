/* Metrics log: JSON lines appended and flushed; escaping; non-finite numbers. */
#include "dprune/io.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a strict little JSON validator (RFC 8259 grammar, no semantics) ---- */
static const char *json_value(const char *p);

static const char *ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static const char *json_string(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p != '"') {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20) return NULL; /* raw control characters are not allowed */
        if (ch == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *json_number(const char *p) {
    if (*p == '-') p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9') p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return NULL;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return NULL;
        while (*p >= '0' && *p <= '9') p++;
    }
    return p;
}

static const char *json_container(const char *p, char open, char close, bool object) {
    if (*p++ != open) return NULL;
    p = ws(p);
    if (*p == close) return p + 1;
    for (;;) {
        if (object) {
            if (!(p = json_string(ws(p)))) return NULL;
            p = ws(p);
            if (*p++ != ':') return NULL;
        }
        if (!(p = json_value(p))) return NULL;
        p = ws(p);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *json_value(const char *p) {
    p = ws(p);
    switch (*p) {
    case '{':
        return json_container(p, '{', '}', true);
    case '[':
        return json_container(p, '[', ']', false);
    case '"':
        return json_string(p);
    case 't':
        return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return json_number(p);
    }
}

/* A whole line is exactly one JSON object. */
static bool valid_json_object(const char *line) {
    if (ws(line)[0] != '{') return false;
    const char *end = json_value(line);
    return end && *ws(end) == '\0';
}

static void test_validator(void) {
    CHECK(valid_json_object("{\"a\":1,\"b\":[1,2.5e-3,\"x\"],\"c\":{\"d\":null}}"));
    CHECK(!valid_json_object("{\"a\":nan}"));
    CHECK(!valid_json_object("{\"a\":1,}"));
    CHECK(!valid_json_object("{\"a\":\"x\ny\"}"));
    CHECK(!valid_json_object("{\"a\":01}"));
}

static void test_escape(void) {
    char out[256];
    dp_json_escape("plain", out, sizeof out);
    CHECK(strcmp(out, "plain") == 0);
    dp_json_escape("say \"hi\"\\ \n\t\r\b\f\x01\x1f end", out, sizeof out);
    CHECK_MSG(strcmp(out, "say \\\"hi\\\"\\\\ \\n\\t\\r\\b\\f\\u0001\\u001f end") == 0, "%s", out);
    dp_json_escape("caf\xc3\xa9 \xe2\x82\xac", out, sizeof out); /* UTF-8 passes through */
    CHECK(strcmp(out, "caf\xc3\xa9 \xe2\x82\xac") == 0);
    dp_json_escape("", out, sizeof out);
    CHECK(out[0] == '\0');

    /* truncation keeps whole escapes and whole characters, and terminates */
    char small[6];
    dp_json_escape("abcd\"e", small, sizeof small); /* "abcd\"" needs 7 bytes */
    CHECK_MSG(strcmp(small, "abcd") == 0, "%s", small);
    dp_json_escape("ab\x01", small, sizeof small); /* \u0001 does not fit after ab */
    CHECK_MSG(strcmp(small, "ab") == 0, "%s", small);
    dp_json_escape("abc\xe2\x82\xac", small, sizeof small); /* the euro sign needs 3 bytes */
    CHECK_MSG(strcmp(small, "abc") == 0, "%s", small);
    dp_json_escape("ab\xc3\xa9", small, sizeof small); /* fits exactly */
    CHECK(strcmp(small, "ab\xc3\xa9") == 0);
    char one[1] = {'x'};
    dp_json_escape("abc", one, sizeof one);
    CHECK(one[0] == '\0');
}

static int read_lines(const char *path, char lines[][512], int max) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    while (n < max && fgets(lines[n], 512, f)) n++;
    fclose(f);
    return n;
}

static void test_log(void) {
    char dir[] = "/tmp/dp_test_metrics_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);

    dp_metrics *m = NULL;
    dp_error err;
    CHECK_MSG(dp_metrics_open(&m, path, &err) == DP_OK, "%s", err.msg);
    char name[128];
    dp_json_escape("run \"a\"\\b\nc\td", name, sizeof name);
    dp_metrics_write(m, "\"event\":\"start\",\"name\":\"%s\"", name);
    dp_metrics_write(m, "\"epoch\":%d,\"loss\":%.6f,\"acc\":%.4f", 1, 0.693147, 0.5);

    /* flushed per line: visible before close */
    char lines[8][512];
    CHECK(read_lines(path, lines, 8) == 2);

    /* a diverged run: non-finite numbers become null, strings are left alone */
    dp_metrics_write(m, "\"epoch\":%d,\"loss\":%f,\"grad\":%g,\"neg\":%f,\"note\":\"nan inf\"", 2,
                     NAN, INFINITY, -INFINITY);
    dp_metrics_write(m, "%s", "");           /* empty object */
    dp_metrics_write(NULL, "\"ignored\":1"); /* no-op, e.g. on non-root ranks */
    /* a line longer than the internal first buffer */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    dp_metrics_write(m, "\"big\":\"%s\"", big);
    dp_metrics_close(m);
    dp_metrics_close(NULL);

    /* reopening appends */
    CHECK(dp_metrics_open(&m, path, &err) == DP_OK);
    dp_metrics_write(m, "\"event\":\"resume\",\"step\":%lld", 123456789012LL);
    dp_metrics_close(m);

    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    bool all_valid = true, newline_terminated = true;
    const char *want[] = {
        "{\"event\":\"start\",\"name\":\"run \\\"a\\\"\\\\b\\nc\\td\"}\n",
        "{\"epoch\":1,\"loss\":0.693147,\"acc\":0.5000}\n",
        "{\"epoch\":2,\"loss\":null,\"grad\":null,\"neg\":null,\"note\":\"nan inf\"}\n",
        "{}\n",
        NULL, /* the long line, checked by length */
        "{\"event\":\"resume\",\"step\":123456789012}\n",
    };
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        newline_terminated &= line[len - 1] == '\n';
        line[len - 1] = '\0';
        bool ok = valid_json_object(line);
        CHECK_MSG(ok, "line %d is not a JSON object: %s", n + 1, line);
        all_valid &= ok;
        line[len - 1] = '\n';
        if (n < 6 && want[n]) CHECK_MSG(strcmp(line, want[n]) == 0, "line %d: %s", n + 1, line);
        if (n == 4) CHECK(len == (ssize_t)(sizeof big - 1) + 11); /* {"big":"..."}\n */
        n++;
    }
    free(line);
    fclose(f);
    CHECK(n == 6 && all_valid && newline_terminated);
    unlink(path);

    /* the caller must create the run directory: a clear error otherwise */
    snprintf(path, sizeof path, "%s/missing/metrics.jsonl", dir);
    m = (dp_metrics *)&err; /* must be reset on failure */
    CHECK(dp_metrics_open(&m, path, &err) == DP_ERR_IO && m == NULL);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "No such file"), "%s", err.msg);
    rmdir(dir);
}

int main(void) {
    test_validator();
    test_escape();
    test_log();
    return dp_test_finish();
}
