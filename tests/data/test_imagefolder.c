/* ImageFolder: listing of the real sample (class order, counts, file order), decoding of real
 * ImageNet JPEGs including the greyscale ones and the variable-size set, and damaged trees. */
#include "data_testutil.h"
#include "dprune/data.h"
#include <math.h>

static const char *WNIDS[10] = {"n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                                "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"};

static void check_listing(const dp_dataset *ds, int per_class) {
    CHECK(ds->num_classes == 10 && ds->n == 10 * per_class);
    CHECK(ds->pixels == NULL && ds->paths != NULL && ds->c == 0);
    for (int k = 0; k < 10 && ds->class_names; k++)
        CHECK(strcmp(ds->class_names[k], WNIDS[k]) == 0);
    int hist[10] = {0}, ordered = 1, named = 1;
    for (int64_t i = 0; i < ds->n; i++) {
        int l = ds->labels[i];
        if (l >= 0 && l < 10) hist[l]++;
        named &= strstr(ds->paths[i], WNIDS[l]) != NULL && strstr(ds->paths[i], ".JPEG") != NULL;
        /* classes in order; files in strcmp order within a class */
        if (i > 0)
            ordered &= ds->labels[i - 1] < l ||
                       (ds->labels[i - 1] == l && strcmp(ds->paths[i - 1], ds->paths[i]) < 0);
    }
    for (int k = 0; k < 10; k++) CHECK(hist[k] == per_class);
    CHECK(ordered);
    CHECK(named);
}

/* Decodes every sample at out x out; counts greyscale sources (three identical channels). */
static int decode_all(const dp_dataset *ds, int out, int resize, double *mean) {
    dp_augment aug = {.out_c = 3,
                      .out_h = out,
                      .out_w = out,
                      .resize = resize,
                      .mean = {0, 0, 0},
                      .std = {1, 1, 1}};
    size_t plane = (size_t)out * out;
    float *x = malloc(sizeof(float) * 3 * plane);
    int grey = 0, ok = 1, in_range = 1;
    double s = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        dp_error err = {0};
        dp_status st = dp_make_sample(ds, i, &aug, false, 1, 0, x, &err);
        if (st != DP_OK) {
            CHECK_MSG(0, "%s", err.msg);
            ok = 0;
            continue;
        }
        int same = 1;
        for (size_t p = 0; p < plane; p++) same &= x[p] == x[plane + p] && x[p] == x[2 * plane + p];
        grey += same;
        for (size_t p = 0; p < 3 * plane; p++) {
            in_range &= x[p] >= 0 && x[p] <= 1;
            s += x[p];
        }
    }
    CHECK(ok);
    CHECK(in_range);
    *mean = s / (3.0 * plane * ds->n);
    free(x);
    return grey;
}

static void test_real(void) {
    char root[1024];
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_imagefolder(
        &ds, dp_test_shared_path("data/imagefolder-sample/train", root, sizeof root), &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return;
    check_listing(&ds, 60);
    CHECK(strstr(ds.source, "imagefolder-sample/train") != NULL);
    /* the first file of the first class (sorted: upper-case ILSVRC2012_ before n0...) */
    CHECK(strstr(ds.paths[0], "n01440764/ILSVRC2012_val_00012503.JPEG") != NULL);
    double mean = 0;
    /* 224 -> 32: decoded at 1/4 or 1/8 by libjpeg; README: 9 greyscale files in train */
    int grey = decode_all(&ds, 32, 0, &mean);
    CHECK_MSG(grey == 9, "%d greyscale", grey);
    CHECK_MSG(mean > 0.3 && mean < 0.6, "mean %g", mean);
    dp_dataset_free(&ds);

    st = dp_dataset_load_imagefolder(
        &ds, dp_test_shared_path("data/imagefolder-sample/val", root, sizeof root), &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return;
    check_listing(&ds, 20);
    grey = decode_all(&ds, 224, 0, &mean); /* full size, no resampling */
    CHECK_MSG(grey == 2, "%d greyscale", grey);
    CHECK_MSG(mean > 0.3 && mean < 0.6, "mean %g", mean);
    CHECK(ds.paths[ds.n] == NULL && ds.class_names[ds.num_classes] == NULL);
    ds.n = 7; /* the app may keep a prefix (limit_train): free must still free every path */
    dp_dataset_free(&ds);
}

/* varsize: original ImageNet sizes; eval (resize 256, crop 224), RRC, and grey output. */
static void test_varsize(void) {
    char root[1024];
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_imagefolder(
        &ds, dp_test_shared_path("data/imagefolder-sample/varsize", root, sizeof root), &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return;
    check_listing(&ds, 1);
    double mean = 0;
    int grey = decode_all(&ds, 224, 256, &mean);
    CHECK_MSG(grey == 1, "%d greyscale", grey); /* the garbage truck */
    dp_augment aug = {
        .out_c = 3, .out_h = 224, .out_w = 224, .resize = 256, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    size_t plane = 224 * 224;
    float *rgb = malloc(sizeof(float) * 3 * plane), *g = malloc(sizeof(float) * plane);
    /* the greyscale file replicates its channel; RGB -> grey is ITU-R 601 luma */
    st = dp_make_sample(&ds, 6, &aug, false, 0, 0, rgb, &err);
    int replicated = st == DP_OK;
    for (size_t p = 0; replicated && p < plane; p++)
        replicated &= rgb[p] == rgb[plane + p] && rgb[p] == rgb[2 * plane + p];
    CHECK(replicated);
    dp_augment grey_aug = aug;
    grey_aug.out_c = 1;
    for (int64_t i = 0; i < ds.n; i++) {
        int ok = dp_make_sample(&ds, i, &aug, false, 0, 0, rgb, &err) == DP_OK &&
                 dp_make_sample(&ds, i, &grey_aug, false, 0, 0, g, &err) == DP_OK;
        double maxd = 0;
        for (size_t p = 0; ok && p < plane; p++) {
            double y = 0.299 * rgb[p] + 0.587 * rgb[plane + p] + 0.114 * rgb[2 * plane + p];
            maxd = fmax(maxd, fabs(y - g[p]));
        }
        CHECK_MSG(ok && maxd < 1e-5, "sample %lld: %s max diff %g", (long long)i, err.msg, maxd);
    }
    /* RandomResizedCrop + flip: deterministic per (seed, epoch, index), varies with epoch */
    dp_augment tr = aug;
    tr.random_resized_crop = true;
    tr.rrc_min_scale = 0.08f;
    tr.flip = true;
    float *a = malloc(sizeof(float) * 3 * plane), *b = malloc(sizeof(float) * 3 * plane);
    int same = 1, differ = 0;
    for (int64_t i = 0; i < ds.n; i++) {
        dp_make_sample(&ds, i, &tr, true, 5, 1, a, &err);
        dp_make_sample(&ds, i, &tr, true, 5, 1, b, &err);
        same &= memcmp(a, b, sizeof(float) * 3 * plane) == 0;
        dp_make_sample(&ds, i, &tr, true, 5, 2, b, &err);
        differ += memcmp(a, b, sizeof(float) * 3 * plane) != 0;
    }
    CHECK(same);
    CHECK(differ >= 9);
    free(a);
    free(b);
    free(rgb);
    free(g);
    dp_dataset_free(&ds);
}

static void make_dir(char *buf, size_t n, const char *root, const char *rel) {
    dt_join(buf, n, root, rel);
    dt_mkdir(buf);
}

static void put(const char *root, const char *rel, const void *data, size_t len) {
    char p[1024];
    dt_write(dt_join(p, sizeof p, root, rel), data, len);
}

static void expect_listing_fails(const char *root, const char *needle, const char *also) {
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_imagefolder(&ds, root, &err);
    CHECK_FAILS_NAMING(st, err, needle);
    if (also) CHECK_MSG(strstr(err.msg, also) != NULL, "'%s' lacks '%s'", err.msg, also);
    CHECK(ds.paths == NULL && ds.labels == NULL && ds.n == 0);
    if (st == DP_OK) dp_dataset_free(&ds);
}

static void test_damaged(void) {
    char tmp[512], root[1024], p[1024];
    dt_mktemp(tmp, sizeof tmp);
    /* missing root; a root without class directories */
    expect_listing_fails(dt_join(root, sizeof root, tmp, "missing"), "missing", "cannot open");
    make_dir(root, sizeof root, tmp, "empty");
    put(root, "stray.jpg", "x", 1); /* files directly under root are not classes */
    expect_listing_fails(root, "empty", "no class");

    /* a tree with other files to ignore, every accepted extension, and a hidden dir */
    make_dir(root, sizeof root, tmp, "tree");
    make_dir(p, sizeof p, root, "b_class");
    make_dir(p, sizeof p, root, "a_class");
    make_dir(p, sizeof p, root, ".hidden");
    unsigned char pix[16 * 12 * 3];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (unsigned char)(i * 5);
    const char *good[] = {"a_class/z.jpg", "a_class/b.JPEG", "a_class/c.jpeg", "b_class/a.JPG"};
    for (int i = 0; i < 4; i++)
        dt_write_jpeg(dt_join(p, sizeof p, root, good[i]), pix, 16, 12, 3, 90);
    put(root, "a_class/notes.txt", "hi", 2);
    put(root, "a_class/image.png", "png", 3);
    put(root, ".hidden/x.jpg", "x", 1);
    /* a garbage .jpg, a truncated real JPEG and an empty .jpeg in b_class */
    put(root, "b_class/garbage.jpg", "this is not a JPEG at all", 25);
    char real[1024];
    size_t len = 0;
    unsigned char *jpg =
        dt_read(dp_test_shared_path("data/imagefolder-sample/val/n01440764/n01440764_10040.JPEG",
                                    real, sizeof real),
                &len);
    if (!jpg) jpg = dt_read(dt_join(p, sizeof p, root, "a_class/z.jpg"), &len);
    put(root, "b_class/half.jpg", jpg, len / 2);
    put(root, "b_class/zero.jpeg", "", 0);
    free(jpg);
    /* cut inside the entropy-coded data: libjpeg would only warn and fill with grey */
    jpg = dt_read(dt_join(p, sizeof p, root, "a_class/z.jpg"), &len);
    put(root, "b_class/short.jpg", jpg, len - 20);
    free(jpg);
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_imagefolder(&ds, root, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st == DP_OK) {
        CHECK(ds.num_classes == 2 && ds.n == 8);
        CHECK(strcmp(ds.class_names[0], "a_class") == 0 &&
              strcmp(ds.class_names[1], "b_class") == 0);
        const char *order[] = {"a_class/b.JPEG",    "a_class/c.jpeg",      "a_class/z.jpg",
                               "b_class/a.JPG",     "b_class/garbage.jpg", "b_class/half.jpg",
                               "b_class/short.jpg", "b_class/zero.jpeg"};
        const int labels[] = {0, 0, 0, 1, 1, 1, 1, 1};
        for (int i = 0; i < 8 && i < ds.n; i++) {
            dt_join(p, sizeof p, root, order[i]);
            CHECK_MSG(strcmp(ds.paths[i], p) == 0, "%s vs %s", ds.paths[i], p);
            CHECK(ds.labels[i] == labels[i]);
        }
        dp_augment aug = {.out_c = 3, .out_h = 8, .out_w = 8, .mean = {0, 0, 0}, .std = {1, 1, 1}};
        float x[3 * 8 * 8];
        for (int i = 0; i < 4; i++) {
            st = dp_make_sample(&ds, i, &aug, true, 0, 0, x, &err);
            CHECK_MSG(st == DP_OK, "%s", err.msg);
        }
        CHECK_FAILS_NAMING(dp_make_sample(&ds, 4, &aug, false, 0, 0, x, &err), err, "garbage.jpg");
        CHECK_FAILS_NAMING(dp_make_sample(&ds, 5, &aug, false, 0, 0, x, &err), err, "half.jpg");
        CHECK_FAILS_NAMING(dp_make_sample(&ds, 6, &aug, false, 0, 0, x, &err), err, "short.jpg");
        CHECK_FAILS_NAMING(dp_make_sample(&ds, 7, &aug, false, 0, 0, x, &err), err, "zero.jpeg");
        dp_dataset_free(&ds);
    }
    /* a class directory with no images */
    make_dir(p, sizeof p, root, "c_class");
    put(root, "c_class/readme.txt", "no images here", 14);
    expect_listing_fails(root, "c_class", "no images");
    dt_rmtree(tmp);
    CHECK(access(tmp, F_OK) != 0);
}

int main(void) {
    double t0 = dp_now_seconds();
    test_real();
    test_varsize();
    test_damaged();
    printf("test_imagefolder: %.2f s\n", dp_now_seconds() - t0);
    return dp_test_finish();
}
