/* CIFAR reader: the real CIFAR-10 subset against its manifests and known channel means,
 * concatenation of files, a synthetic CIFAR-100 file, and damaged files. */
#include "data_testutil.h"
#include "dprune/data.h"

enum { REC10 = 3073, REC100 = 3074, PIX = 3072 };

/* Labels from a manifest (index<TAB>label<TAB>class<TAB>path); returns how many were read. */
static int read_manifest(const char *path, int *labels, int max) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, idx, lab;
    char line[512];
    while (n < max && fgets(line, sizeof line, f))
        if (sscanf(line, "%d\t%d", &idx, &lab) == 2 && idx == n) labels[n++] = lab;
    fclose(f);
    return n;
}

static void check_manifest(const dp_dataset *ds, int64_t offset, const char *rel, int n) {
    char path[1024];
    int *lab = malloc(sizeof(int) * (size_t)n);
    int got = read_manifest(dp_test_shared_path(rel, path, sizeof path), lab, n);
    CHECK_MSG(got == n, "%s: read %d manifest lines", path, got);
    int same = got == n;
    for (int i = 0; same && i < n; i++) same &= ds->labels[offset + i] == lab[i];
    CHECK_MSG(same, "labels differ from %s", rel);
    free(lab);
}

static void test_real(void) {
    char train[1024], test[1024];
    dp_test_shared_path("data/cifar10-subset/data_batch_1.bin", train, sizeof train);
    dp_test_shared_path("data/cifar10-subset/test_batch.bin", test, sizeof test);
    const char *one[] = {train};
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_cifar(&ds, one, 1, false, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return;
    CHECK(ds.n == 10000 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.num_classes == 10);
    check_manifest(&ds, 0, "data/cifar10-subset/data_batch_1.manifest.tsv", 10000);
    int hist[10] = {0}, balanced = 1;
    for (int64_t i = 0; i < ds.n; i++) hist[ds.labels[i]]++;
    for (int k = 0; k < 10; k++) balanced &= hist[k] == 1000;
    CHECK(balanced);
    /* per-channel means (README: R 125.2, G 122.9, B 113.4; exact values computed apart) */
    const double expect[3] = {125.15927, 122.94584, 113.37622};
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int64_t i = 0; i < ds.n; i++)
            for (int p = 0; p < 1024; p++) s += ds.pixels[i * PIX + c * 1024 + p];
        CHECK_CLOSE(s / (ds.n * 1024.0), expect[c], 1e-4, 0);
    }
    long first = 0;
    for (int p = 0; p < PIX; p++) first += ds.pixels[p];
    CHECK(first == 424975);
    dp_dataset_free(&ds);

    /* two files concatenated in order */
    const char *two[] = {train, test};
    st = dp_dataset_load_cifar(&ds, two, 2, false, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return;
    CHECK(ds.n == 12000);
    check_manifest(&ds, 10000, "data/cifar10-subset/test_batch.manifest.tsv", 2000);
    CHECK(ds.labels[0] == 2 && ds.labels[10000] == 3); /* bird, then the test file's cat */
    dp_dataset_free(&ds);
}

/* Record i: coarse = i % 20, fine = (i * 7) % 100, pixels (i + p) & 255. */
static unsigned char *make_cifar100(int n) {
    unsigned char *b = malloc((size_t)n * REC100);
    for (int i = 0; i < n; i++) {
        unsigned char *r = b + (size_t)i * REC100;
        r[0] = (unsigned char)(i % 20);
        r[1] = (unsigned char)((i * 7) % 100);
        for (int p = 0; p < PIX; p++) r[2 + p] = (unsigned char)((i + p) & 255);
    }
    return b;
}

static void expect_fail(const char *const *paths, int n, bool c100, const char *bad,
                        const char *also) {
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_cifar(&ds, paths, n, c100, &err);
    CHECK_FAILS_NAMING(st, err, bad);
    if (also) CHECK_MSG(strstr(err.msg, also) != NULL, "'%s' lacks '%s'", err.msg, also);
    CHECK(ds.pixels == NULL && ds.labels == NULL && ds.n == 0);
    if (st == DP_OK) dp_dataset_free(&ds);
}

static void test_synthetic_and_damaged(void) {
    char dir[512], c100[600], bad[600], good10[600];
    dt_mktemp(dir, sizeof dir);
    const int n = 7;
    unsigned char *b = make_cifar100(n);
    dt_write(dt_join(c100, sizeof c100, dir, "c100.bin"), b, (size_t)n * REC100);
    const char *p100[] = {c100};
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_cifar(&ds, p100, 1, true, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st == DP_OK) {
        CHECK(ds.n == n && ds.num_classes == 100);
        int exact = 1;
        for (int i = 0; i < n; i++) {
            exact &= ds.labels[i] == (i * 7) % 100;
            for (int p = 0; p < PIX; p++) exact &= ds.pixels[i * PIX + p] == ((i + p) & 255);
        }
        CHECK(exact);
        dp_dataset_free(&ds);
    }
    /* the CIFAR-100 file read as CIFAR-10: 7 * 3074 is not a multiple of 3073 */
    expect_fail(p100, 1, false, "c100.bin", "multiple");

    /* a valid CIFAR-10 file from the first records of the CIFAR-100 one, relabelled */
    unsigned char *g = malloc((size_t)n * REC10);
    for (int i = 0; i < n; i++) {
        g[(size_t)i * REC10] = (unsigned char)(i % 10);
        memcpy(g + (size_t)i * REC10 + 1, b + (size_t)i * REC100 + 2, PIX);
    }
    dt_write(dt_join(good10, sizeof good10, dir, "good10.bin"), g, (size_t)n * REC10);
    const char *pg[] = {good10};
    st = dp_dataset_load_cifar(&ds, pg, 1, false, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st == DP_OK) dp_dataset_free(&ds);

    /* truncated at several offsets (a partial record), and empty */
    const size_t cuts[] = {1, REC10 - 1, 2 * REC10 + 100, (size_t)n * REC10 - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        dt_write(dt_join(bad, sizeof bad, dir, "cut.bin"), g, cuts[i]);
        const char *pb[] = {bad};
        expect_fail(pb, 1, false, "cut.bin", "3073");
    }
    dt_write(dt_join(bad, sizeof bad, dir, "empty.bin"), g, 0);
    const char *pe[] = {bad};
    expect_fail(pe, 1, false, "empty.bin", "empty");
    /* label out of range: 10 in CIFAR-10 (record 3), fine label 100 in CIFAR-100 */
    g[3 * REC10] = 10;
    dt_write(dt_join(bad, sizeof bad, dir, "label10.bin"), g, (size_t)n * REC10);
    const char *pl[] = {good10, bad}; /* the good file first: the message names the bad one */
    expect_fail(pl, 2, false, "label10.bin", "record 3 has label 10");
    b[1 * REC100 + 1] = 100;
    dt_write(dt_join(bad, sizeof bad, dir, "fine100.bin"), b, (size_t)n * REC100);
    const char *pf[] = {bad};
    expect_fail(pf, 1, true, "fine100.bin", "label 100");
    /* missing file */
    const char *pm[] = {good10, dt_join(bad, sizeof bad, dir, "missing.bin")};
    expect_fail(pm, 2, false, "missing.bin", "cannot open");
    free(b);
    free(g);
    dt_rmtree(dir);
    CHECK(access(dir, F_OK) != 0);
}

/* Evaluation path on stored-size data: exactly (x/255 - mean) / std, channel by channel. */
static void test_eval_sample(void) {
    char train[1024];
    dp_test_shared_path("data/cifar10-subset/test_batch.bin", train, sizeof train);
    const char *one[] = {train};
    dp_dataset ds;
    dp_error err = {0};
    if (dp_dataset_load_cifar(&ds, one, 1, false, &err) != DP_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    dp_augment aug = {.out_c = 3,
                      .out_h = 32,
                      .out_w = 32,
                      .crop_pad = 4,
                      .flip = true,
                      .mean = {0.4914f, 0.4822f, 0.4465f},
                      .std = {0.247f, 0.243f, 0.261f}};
    float out[PIX];
    dp_status st = dp_make_sample(&ds, 17, &aug, false, 1, 0, out, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    int exact = 1;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 1024; p++) {
            float x = ds.pixels[17 * PIX + c * 1024 + p];
            exact &= out[c * 1024 + p] == (x / 255.0f - aug.mean[c]) / aug.std[c];
        }
    CHECK(exact);
    dp_dataset_free(&ds);
}

int main(void) {
    double t0 = dp_now_seconds();
    test_real();
    test_synthetic_and_damaged();
    test_eval_sample();
    printf("test_cifar: %.2f s\n", dp_now_seconds() - t0);
    return dp_test_finish();
}
