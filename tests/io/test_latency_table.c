/* Latency tables: write/read round trip (every field and value), bilinear interpolation exact
 * on grid points, monotone between them and clamped outside, and one clear error naming the
 * file (and line) for every kind of damaged or foreign file. */
#include "dprune/io.h"
#include "dprune/latency_table.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Two entries: a conv over both axes, a bn over its output axis; times exact in %.6g. */
static void make_table(dp_latency_table *t, bool train) {
    dp_error err = {0};
    CHECK(dp_latency_table_alloc(t, 2, &err) == DP_OK);
    snprintf(t->model, sizeof t->model, "tiny");
    t->in_c = 3, t->in_h = 8, t->in_w = 8;
    t->batch = 16, t->threads = 2, t->reps = 3;
    snprintf(t->machine, sizeof t->machine, "Test CPU @ 1.00GHz");
    snprintf(t->blas_core, sizeof t->blas_core, "Haswell");
    snprintf(t->version, sizeof t->version, "dprune 0.1.0 (commit abc)");
    dp_latency_entry *c = &t->entries[0], *b = &t->entries[1];
    snprintf(c->name, sizeof c->name, "conv2");
    snprintf(c->op, sizeof c->op, "conv");
    c->in_c = 16, c->in_h = 8, c->in_w = 8, c->out_c = 32, c->out_h = 8, c->out_w = 8;
    c->k = 3, c->stride = 1;
    c->n_in = 2, c->in_axis[0] = 8, c->in_axis[1] = 16;
    c->n_out = 4;
    for (int j = 0; j < 4; j++) c->out_axis[j] = 8 * (j + 1);
    CHECK(dp_latency_entry_alloc(c, train, &err) == DP_OK);
    for (int a = 0; a < 2; a++)
        for (int j = 0; j < 4; j++) {
            c->infer_ms[a * 4 + j] = 0.25 + 0.5 * a + 0.125 * j * (a + 1);
            if (train) c->train_ms[a * 4 + j] = 3 * c->infer_ms[a * 4 + j];
        }
    snprintf(b->name, sizeof b->name, "bn2");
    snprintf(b->op, sizeof b->op, "bn");
    b->in_c = b->out_c = 32, b->in_h = b->out_h = 8, b->in_w = b->out_w = 8;
    b->n_in = 1, b->in_axis[0] = 32;
    b->n_out = 2, b->out_axis[0] = 16, b->out_axis[1] = 32;
    CHECK(dp_latency_entry_alloc(b, train, &err) == DP_OK);
    b->infer_ms[0] = 0.015625, b->infer_ms[1] = 0.03125;
    if (train) b->train_ms[0] = 0.0625, b->train_ms[1] = 0.125;
}

static bool same_table(const dp_latency_table *a, const dp_latency_table *b) {
    if (strcmp(a->model, b->model) || a->in_c != b->in_c || a->in_h != b->in_h ||
        a->in_w != b->in_w || a->batch != b->batch || a->threads != b->threads ||
        a->reps != b->reps || strcmp(a->machine, b->machine) ||
        strcmp(a->blas_core, b->blas_core) || strcmp(a->version, b->version) ||
        a->n_entries != b->n_entries)
        return false;
    for (int i = 0; i < a->n_entries; i++) {
        const dp_latency_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->name, y->name) || strcmp(x->op, y->op) || x->in_c != y->in_c ||
            x->in_h != y->in_h || x->in_w != y->in_w || x->out_c != y->out_c ||
            x->out_h != y->out_h || x->out_w != y->out_w || x->k != y->k ||
            x->stride != y->stride || x->n_in != y->n_in || x->n_out != y->n_out ||
            memcmp(x->in_axis, y->in_axis, sizeof(int) * (size_t)x->n_in) ||
            memcmp(x->out_axis, y->out_axis, sizeof(int) * (size_t)x->n_out) ||
            !x->train_ms != !y->train_ms)
            return false;
        for (int k = 0; k < x->n_in * x->n_out; k++)
            if (x->infer_ms[k] != y->infer_ms[k] ||
                (x->train_ms && x->train_ms[k] != y->train_ms[k]))
                return false;
    }
    return true;
}

static void test_round_trip(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/table.txt", dir);
    for (int train = 0; train <= 1; train++) {
        dp_latency_table t, r;
        dp_error err = {0};
        make_table(&t, train);
        CHECK_MSG(dp_latency_table_write(&t, path, &err) == DP_OK, "%s", err.msg);
        CHECK_MSG(dp_latency_table_read(path, &r, &err) == DP_OK, "%s", err.msg);
        CHECK(same_table(&t, &r));
        CHECK(dp_latency_table_has_train(&r) == (bool)train);
        CHECK(!strcmp(r.path, path));
        dp_latency_table_free(&r);
        dp_latency_table_free(&t);
    }
}

static void test_interpolation(void) {
    dp_latency_table t;
    make_table(&t, true);
    const dp_latency_entry *c = &t.entries[0], *b = &t.entries[1];
    /* exact on every grid point */
    for (int a = 0; a < c->n_in; a++)
        for (int j = 0; j < c->n_out; j++) {
            CHECK(dp_latency_entry_ms(c, false, c->in_axis[a], c->out_axis[j]) ==
                  c->infer_ms[a * c->n_out + j]);
            CHECK(dp_latency_entry_ms(c, true, c->in_axis[a], c->out_axis[j]) ==
                  c->train_ms[a * c->n_out + j]);
        }
    /* bilinear: the middle of a cell is the mean of its corners */
    double mid = dp_latency_entry_ms(c, false, 12, 12);
    CHECK_CLOSE(mid, 0.25 * (c->infer_ms[0] + c->infer_ms[1] + c->infer_ms[4] + c->infer_ms[5]),
                1e-15, 0);
    /* monotone in each axis on a fine sweep (the corners are monotone) */
    bool mono = true;
    for (double cin = 4; cin <= 20; cin += 0.25) {
        double prev = -1;
        for (double cout = 4; cout <= 36; cout += 0.25) {
            double v = dp_latency_entry_ms(c, false, cin, cout);
            if (v < prev) mono = false;
            prev = v;
        }
    }
    for (double cout = 4; cout <= 36; cout += 0.25) {
        double prev = -1;
        for (double cin = 4; cin <= 20; cin += 0.25) {
            double v = dp_latency_entry_ms(c, false, cin, cout);
            if (v < prev) mono = false;
            prev = v;
        }
    }
    CHECK(mono);
    /* clamped outside the grid */
    CHECK(dp_latency_entry_ms(c, false, 1, 1) == c->infer_ms[0]);
    CHECK(dp_latency_entry_ms(c, false, 100, 100) == c->infer_ms[7]);
    /* a one-point axis is constant; the other axis still interpolates */
    CHECK(dp_latency_entry_ms(b, false, 5, 32) == b->infer_ms[1]);
    CHECK_CLOSE(dp_latency_entry_ms(b, false, 32, 24), 0.5 * (b->infer_ms[0] + b->infer_ms[1]),
                1e-15, 0);
    dp_latency_table_free(&t);
}

/* Writes text to dir/name, reads it, expects an error mentioning the file and `want`. */
static void expect_bad(const char *dir, const char *name, const char *text, size_t len,
                       const char *want) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fwrite(text, 1, len, f);
    fclose(f);
    dp_latency_table t;
    dp_error err = {0};
    dp_status st = dp_latency_table_read(path, &t, &err);
    CHECK_MSG(st != DP_OK, "%s: accepted", name);
    CHECK_MSG(strstr(err.msg, path) != NULL, "%s: error does not name the file: %s", name, err.msg);
    CHECK_MSG(strstr(err.msg, want) != NULL, "%s: '%s' not in: %s", name, want, err.msg);
    CHECK(t.entries == NULL && t.n_entries == 0);
}

/* The good table's text with `from` replaced by `to` (first occurrence). */
static char *edited(const char *good, const char *from, const char *to) {
    const char *at = strstr(good, from);
    CHECK_MSG(at != NULL, "'%s' not in the table", from);
    if (!at) return strdup(good);
    size_t n = strlen(good) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
    return s;
}

static void test_bad_files(const char *dir) {
    char path[256], *good;
    snprintf(path, sizeof path, "%s/good.txt", dir);
    dp_latency_table t;
    dp_error err = {0};
    make_table(&t, true);
    CHECK(dp_latency_table_write(&t, path, &err) == DP_OK);
    dp_latency_table_free(&t);
    CHECK(dp_read_text_file(path, &good, NULL, &err) == DP_OK);

    expect_bad(dir, "empty.txt", "", 0, "is empty");
    expect_bad(dir, "garbage.txt", "hello world\n", 12, "not a dprune latency table");
    expect_bad(dir, "binary.txt", "dprune-latency-table 1\n\0\x01\x02", 26, "not a text file");
    struct {
        const char *name, *from, *to, *want;
    } cases[] = {
        {"version.txt", "dprune-latency-table 1", "dprune-latency-table 7", "format version 7"},
        {"nomodel.txt", "model tiny\n", "", "'model' expected"},
        {"batch.txt", "batch 16", "batch -4", "batch"},
        {"times.txt", "times infer train", "times sometimes", "'times infer'"},
        {"axis_order.txt", "out_axis 8 16 24 32", "out_axis 8 24 16 32", "strictly ascending"},
        {"axis_full.txt", "out_axis 8 16 24 32", "out_axis 8 16 24", "not the full width 32"},
        {"axis_text.txt", "in_axis 8 16", "in_axis 8 x16", "channel count expected"},
        {"negative.txt", "infer 8: 0.25", "infer 8: -0.25", "non-negative times"},
        {"nan.txt", "infer 8: 0.25", "infer 8: nan", "non-negative times"},
        {"short_row.txt", "infer 8: 0.25 ", "infer 8: ", "non-negative times"},
        {"long_row.txt", "infer 8: 0.25", "infer 8: 0.1 0.25", "more than 4 values"},
        {"row_label.txt", "infer 16:", "infer 12:", "must start with '16:'"},
        {"shape.txt", "shape 16 8 8 -> 32 8 8", "shape 16 8 8 32 8 8", "'shape C H W -> C H W'"},
        {"dup.txt", "entry bn2 bn", "entry conv2 bn", "appears twice"},
        {"count.txt", "entries 2", "entries 3", "ends early"},
        {"trailing.txt", "end\n\nentry bn2", "end\nextra line\nentry bn2", "'entry' expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = edited(good, cases[i].from, cases[i].to);
        expect_bad(dir, cases[i].name, s, strlen(s), cases[i].want);
        free(s);
    }
    /* junk after the last entry, and truncations anywhere are errors, never a crash */
    size_t n = strlen(good);
    char *s = malloc(n + 16);
    snprintf(s, n + 16, "%sjunk\n", good);
    expect_bad(dir, "after.txt", s, strlen(s), "after the 2 entries");
    free(s);
    for (size_t cut = 0; cut < n; cut += cut + 8 < n ? 7 : 1) {
        char *head = strndup(good, cut);
        dp_latency_table r;
        snprintf(path, sizeof path, "%s/cut.txt", dir);
        FILE *f = fopen(path, "w");
        fputs(head, f);
        fclose(f);
        bool only_newline_lost = cut + 1 == n; /* "end" without its newline is complete */
        dp_status st = dp_latency_table_read(path, &r, &err);
        CHECK_MSG(st != DP_OK || only_newline_lost, "truncated at %zu accepted", cut);
        if (st != DP_OK) CHECK(strstr(err.msg, path) != NULL);
        if (st == DP_OK) dp_latency_table_free(&r);
        free(head);
    }
    /* a file that does not exist */
    snprintf(path, sizeof path, "%s/missing.txt", dir);
    CHECK(dp_latency_table_read(path, &t, &err) != DP_OK);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "dprune profile"));
    free(good);
}

int main(void) {
    char dir[] = "/tmp/dprune-latency-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_round_trip(dir);
    test_interpolation();
    test_bad_files(dir);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return dp_test_finish();
}
