/* IDX reader: real MNIST t10k (gzip) and Fashion-MNIST, exact pixels of a synthetic file in
 * raw and gzip form, and one clear error per kind of damaged file. */
#include "data_testutil.h"
#include "dprune/data.h"
#include <zlib.h>

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static double mean_pixel(const dp_dataset *ds) {
    size_t n = (size_t)ds->n * ds->c * ds->h * ds->w;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ds->pixels[i];
    return s / (double)n;
}

/* Label histogram must sum to n and match `expect` (NULL: only the sum and range). */
static void check_labels(const dp_dataset *ds, const int *expect) {
    int hist[10] = {0};
    int64_t sum = 0;
    int in_range = 1;
    for (int64_t i = 0; i < ds->n; i++) {
        in_range &= ds->labels[i] >= 0 && ds->labels[i] < 10;
        if (ds->labels[i] >= 0 && ds->labels[i] < 10) hist[ds->labels[i]]++;
    }
    CHECK(in_range);
    for (int k = 0; k < 10; k++) sum += hist[k];
    CHECK(sum == ds->n);
    for (int k = 0; expect && k < 10; k++)
        CHECK_MSG(hist[k] == expect[k], "class %d: %d", k, hist[k]);
}

static void test_mnist(void) {
    char img[1024], lab[1024];
    dp_test_shared_path("data/mnist-t10k/t10k-images-idx3-ubyte.gz", img, sizeof img);
    dp_test_shared_path("data/mnist-t10k/t10k-labels-idx1-ubyte.gz", lab, sizeof lab);
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_idx(&ds, img, lab, 10, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return;
    CHECK(ds.n == 10000 && ds.c == 1 && ds.h == 28 && ds.w == 28 && ds.num_classes == 10);
    CHECK(ds.paths == NULL && ds.class_names == NULL);
    /* counts and first labels from the README; mean pixel computed independently */
    const int counts[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
    check_labels(&ds, counts);
    const int first[10] = {7, 2, 1, 0, 4, 1, 4, 9, 5, 9};
    for (int i = 0; i < 10; i++) CHECK(ds.labels[i] == first[i]);
    CHECK_CLOSE(mean_pixel(&ds), 33.7912, 0.001, 0);
    long first_sum = 0;
    for (int i = 0; i < 784; i++) first_sum += ds.pixels[i];
    CHECK(first_sum == 18454);
    dp_dataset_free(&ds);
    CHECK(ds.pixels == NULL && ds.labels == NULL && ds.n == 0);
}

static void test_fashion(const char *split, int64_t n, double mean, long first_sum) {
    char img[256], lab[256];
    snprintf(img, sizeof img, "/usr/share/datasets/fashion-mnist/%s-images-idx3-ubyte.gz", split);
    snprintf(lab, sizeof lab, "/usr/share/datasets/fashion-mnist/%s-labels-idx1-ubyte.gz", split);
    if (access(img, R_OK) != 0) {
        printf("SKIP Fashion-MNIST %s: %s not installed\n", split, img);
        return;
    }
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_idx(&ds, img, lab, 0 /* default 10 */, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return;
    CHECK(ds.n == n && ds.h == 28 && ds.w == 28 && ds.num_classes == 10);
    int counts[10];
    for (int k = 0; k < 10; k++) counts[k] = (int)(n / 10); /* Fashion-MNIST is balanced */
    check_labels(&ds, counts);
    CHECK_CLOSE(mean_pixel(&ds), mean, 0.001, 0);
    long s = 0;
    for (int i = 0; i < 784; i++) s += ds.pixels[i];
    CHECK(s == first_sum);
    dp_dataset_free(&ds);
}

/* A small synthetic IDX pair: n images of h x w with pixel (i, y, x) = i*31 + y*7 + x. */
enum { SN = 5, SH = 3, SW = 4 };
static size_t make_images(unsigned char *buf, uint32_t magic, uint32_t n, uint32_t h, uint32_t w) {
    put_be32(buf, magic);
    put_be32(buf + 4, n), put_be32(buf + 8, h), put_be32(buf + 12, w);
    size_t k = 16;
    for (uint32_t i = 0; i < SN; i++)
        for (uint32_t y = 0; y < SH; y++)
            for (uint32_t x = 0; x < SW; x++) buf[k++] = (unsigned char)(i * 31 + y * 7 + x);
    return k;
}

static size_t make_labels(unsigned char *buf, uint32_t n, int bad_label) {
    put_be32(buf, 0x00000801);
    put_be32(buf + 4, n);
    for (uint32_t i = 0; i < n; i++) buf[8 + i] = (unsigned char)(i % 10);
    if (bad_label >= 0) buf[8 + 2] = (unsigned char)bad_label;
    return 8 + n;
}

static int write_gz(const char *path, const void *data, size_t len) {
    gzFile g = gzopen(path, "wb");
    if (!g) return -1;
    int ok = gzwrite(g, data, (unsigned)len) == (int)len;
    return gzclose(g) == Z_OK && ok ? 0 : -1;
}

static void check_synthetic(const char *img, const char *lab) {
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_idx(&ds, img, lab, 10, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return;
    CHECK(ds.n == SN && ds.c == 1 && ds.h == SH && ds.w == SW);
    int exact = 1;
    for (int i = 0; i < SN; i++) {
        exact &= ds.labels[i] == i % 10;
        for (int y = 0; y < SH; y++)
            for (int x = 0; x < SW; x++)
                exact &= ds.pixels[(i * SH + y) * SW + x] == (uint8_t)(i * 31 + y * 7 + x);
    }
    CHECK(exact);
    dp_dataset_free(&ds);
}

/* Loads (img, lab) expecting an error whose message names `bad`, and a zeroed dataset. */
static void expect_fail(const char *img, const char *lab, int num_classes, const char *bad,
                        const char *also) {
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_idx(&ds, img, lab, num_classes, &err);
    CHECK_FAILS_NAMING(st, err, bad);
    if (also) CHECK_MSG(strstr(err.msg, also) != NULL, "'%s' lacks '%s'", err.msg, also);
    CHECK(ds.pixels == NULL && ds.labels == NULL && ds.n == 0);
    if (st == DP_OK) dp_dataset_free(&ds);
}

static void test_synthetic_and_damaged(void) {
    char dir[512], img[600], lab[600], bad[600], gimg[600], glab[600];
    dt_mktemp(dir, sizeof dir);
    unsigned char ib[16 + SN * SH * SW], lb[8 + SN + 1];
    size_t il = make_images(ib, 0x803, SN, SH, SW), ll = make_labels(lb, SN, -1);
    dt_write(dt_join(img, sizeof img, dir, "img.idx"), ib, il);
    dt_write(dt_join(lab, sizeof lab, dir, "lab.idx"), lb, ll);
    write_gz(dt_join(gimg, sizeof gimg, dir, "img.idx.gz"), ib, il);
    write_gz(dt_join(glab, sizeof glab, dir, "lab.idx.gz"), lb, ll);
    check_synthetic(img, lab);
    check_synthetic(gimg, glab);
    check_synthetic(gimg, lab); /* gzip is told by magic, so mixing works */

    /* truncated at several offsets (inside magic, dims, pixels, last byte), raw and gzip */
    const size_t cuts[] = {0, 2, 10, 16 + 5, il - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        dt_write(dt_join(bad, sizeof bad, dir, "cut.idx"), ib, cuts[i]);
        expect_fail(bad, lab, 10, "cut.idx", NULL);
        write_gz(dt_join(bad, sizeof bad, dir, "cut.idx.gz"), ib, cuts[i]);
        expect_fail(bad, lab, 10, "cut.idx.gz", "truncated");
    }
    /* a gzip stream cut in half (corrupt compressed data, not just short content) */
    size_t glen = 0;
    unsigned char *gz = dt_read(gimg, &glen);
    dt_write(dt_join(bad, sizeof bad, dir, "halfgz.idx.gz"), gz, glen / 2);
    expect_fail(bad, lab, 10, "halfgz.idx.gz", NULL);
    free(gz);
    /* wrong magic: the label file given as images, and vice versa */
    expect_fail(lab, lab, 10, "lab.idx", "magic");
    expect_fail(img, img, 10, "img.idx", "magic");
    /* count mismatch: SN images, SN - 1 labels */
    unsigned char lb2[8 + SN];
    size_t l2 = make_labels(lb2, SN - 1, -1);
    dt_write(dt_join(bad, sizeof bad, dir, "short_labels.idx"), lb2, l2);
    expect_fail(img, bad, 10, "short_labels.idx", NULL);
    /* a label >= num_classes: 10 with 10 classes, and 7 with num_classes 5 */
    l2 = make_labels(lb2, SN, 10);
    dt_write(dt_join(bad, sizeof bad, dir, "label10.idx"), lb2, l2);
    expect_fail(img, bad, 10, "label10.idx", "label 10");
    expect_fail(img, lab, 3, "lab.idx", "out of range");
    /* zero and absurd dims (checked against the file size before allocating) */
    unsigned char zb[sizeof ib];
    make_images(zb, 0x803, SN, 0, SW);
    dt_write(dt_join(bad, sizeof bad, dir, "zero_dim.idx"), zb, il);
    expect_fail(bad, lab, 10, "zero_dim.idx", "dimension");
    make_images(zb, 0x803, 0x7fffffff, 60000, 60000);
    dt_write(dt_join(bad, sizeof bad, dir, "huge.idx"), zb, il);
    expect_fail(bad, lab, 10, "huge.idx", NULL);
    write_gz(dt_join(bad, sizeof bad, dir, "huge.idx.gz"), zb, il);
    expect_fail(bad, lab, 10, "huge.idx.gz", "corrupt header");
    /* trailing bytes: header says fewer images than the file holds */
    make_images(zb, 0x803, SN - 1, SH, SW);
    dt_write(dt_join(bad, sizeof bad, dir, "trailing.idx"), zb, il);
    expect_fail(bad, lab, 10, "trailing.idx", "trailing");
    write_gz(dt_join(bad, sizeof bad, dir, "trailing.idx.gz"), zb, il);
    expect_fail(bad, lab, 10, "trailing.idx.gz", "more data");
    /* missing file */
    dt_join(bad, sizeof bad, dir, "missing.idx");
    expect_fail(bad, lab, 10, "missing.idx", "cannot open");
    dt_rmtree(dir);
    CHECK(access(dir, F_OK) != 0);
}

int main(void) {
    double t0 = dp_now_seconds();
    test_mnist();
    test_fashion("train", 60000, 72.9404, 76247);
    test_fashion("t10k", 10000, 73.1466, 33456);
    test_synthetic_and_damaged();
    printf("test_idx: %.2f s\n", dp_now_seconds() - t0);
    return dp_test_finish();
}
