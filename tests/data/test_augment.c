/* dp_make_sample: determinism per (seed, epoch, index), the exact geometry of crop-with-padding
 * and flip, bilinear resize + center crop, RandomResizedCrop's box constraints, channel
 * conversion and normalisation, and JPEG decoding at reduced scale against an analytic image. */
#include "data_testutil.h"
#include "dprune/data.h"
#include <math.h>

/* An in-memory dataset of n samples, c x h x w, pixel value from fn(i, c, y, x). */
typedef int (*pixel_fn)(int i, int c, int y, int x);
static dp_dataset make_ds(int n, int c, int h, int w, pixel_fn fn) {
    dp_dataset ds = {.n = n, .c = c, .h = h, .w = w, .num_classes = 10};
    ds.pixels = dp_alloc((size_t)n * c * h * w);
    ds.labels = dp_alloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        ds.labels[i] = i % 10;
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    ds.pixels[(((size_t)i * c + ch) * h + y) * w + x] = (uint8_t)fn(i, ch, y, x);
    }
    snprintf(ds.source, sizeof ds.source, "synthetic");
    return ds;
}

static int px_unique(int i, int c, int y, int x) {
    return 1 + (i * 37 + c * 80 + y * 9 + x) % 250; /* never 0, so padding is recognisable */
}
static int px_ramp(int i, int c, int y, int x) {
    (void)i;
    return c == 0 ? 2 * x : c == 1 ? 2 * y : 100; /* R ramps with x, G with y */
}
static int px_const(int i, int c, int y, int x) {
    (void)y, (void)x;
    return 40 + 10 * c + i;
}
static int px_hramp(int i, int c, int y, int x) {
    (void)i, (void)c, (void)y;
    return 10 * x;
}

static const dp_augment IDENT = {
    .out_c = 3, .out_h = 8, .out_w = 8, .mean = {0, 0, 0}, .std = {1, 1, 1}};

/* Crop offsets and flip recovered from the output: which (dy, dx, flip) reproduces it. */
static int find_jitter(const dp_dataset *ds, int idx, const float *out, int pad, int *dy, int *dx,
                       int *flip) {
    int h = ds->h, w = ds->w, c = ds->c;
    for (int f = 0; f < 2; f++)
        for (int oy = 0; oy <= 2 * pad; oy++)
            for (int ox = 0; ox <= 2 * pad; ox++) {
                int match = 1;
                for (int ch = 0; match && ch < c; ch++)
                    for (int y = 0; match && y < h; y++)
                        for (int x = 0; match && x < w; x++) {
                            int sy = y + oy - pad, sx = (f ? w - 1 - x : x) + ox - pad;
                            float v = 0;
                            if (sy >= 0 && sy < h && sx >= 0 && sx < w)
                                v = ds->pixels[(((size_t)idx * c + ch) * h + sy) * w + sx] / 255.0f;
                            match = out[((size_t)ch * h + y) * w + x] == v;
                        }
                if (match) {
                    *dy = oy, *dx = ox, *flip = f;
                    return 1;
                }
            }
    return 0;
}

static void test_crop_flip(void) {
    dp_dataset ds = make_ds(40, 3, 8, 8, px_unique);
    dp_augment aug = IDENT;
    aug.crop_pad = 2;
    aug.flip = true;
    float a[192], b[192];
    dp_error err = {0};
    int hist[5][5] = {{0}}, flips = 0, explained = 1, draws = 0, same = 1, changed = 0;
    for (int e = 0; e < 25; e++)
        for (int i = 0; i < ds.n; i++) {
            CHECK(dp_make_sample(&ds, i, &aug, true, 7, e, a, &err) == DP_OK);
            int dy, dx, f;
            if (!find_jitter(&ds, i, a, 2, &dy, &dx, &f)) {
                explained = 0;
                continue;
            }
            hist[dy][dx]++, flips += f, draws++;
            /* same key -> bit-identical; another epoch -> usually another jitter */
            dp_make_sample(&ds, i, &aug, true, 7, e, b, &err);
            same &= memcmp(a, b, sizeof a) == 0;
            dp_make_sample(&ds, i, &aug, true, 7, e + 100, b, &err);
            changed += memcmp(a, b, sizeof a) != 0;
        }
    CHECK(explained);
    CHECK(same);
    CHECK_MSG(changed > draws * 8 / 10, "%d of %d changed", changed, draws);
    int all = 1; /* every offset in [0, 2*pad]^2 occurs (1000 draws, 25 cells) */
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) all &= hist[y][x] > 10;
    CHECK(all);
    CHECK_MSG(flips > draws * 0.43 && flips < draws * 0.57, "%d flips of %d", flips, draws);
    /* evaluation ignores crop and flip entirely */
    CHECK(dp_make_sample(&ds, 3, &aug, false, 7, 0, a, &err) == DP_OK);
    int dy, dx, f;
    CHECK(find_jitter(&ds, 3, a, 2, &dy, &dx, &f) && dy == 2 && dx == 2 && f == 0);
    /* the seed matters too */
    dp_make_sample(&ds, 3, &aug, true, 1, 0, a, &err);
    int seeds_differ = 0;
    for (uint64_t s = 2; s < 6; s++) {
        dp_make_sample(&ds, 3, &aug, true, s, 0, b, &err);
        seeds_differ += memcmp(a, b, sizeof a) != 0;
    }
    CHECK(seeds_differ >= 3);
    dp_dataset_free(&ds);
}

static void test_normalise_channels(void) {
    dp_dataset rgb = make_ds(3, 3, 4, 4, px_unique), grey = make_ds(3, 1, 4, 4, px_unique);
    dp_augment aug = {
        .out_c = 3, .out_h = 4, .out_w = 4, .mean = {0.5f, 0.4f, 0.3f}, .std = {0.2f, 0.25f, 0.3f}};
    float o[48], g[16];
    dp_error err = {0};
    CHECK(dp_make_sample(&rgb, 2, &aug, false, 0, 0, o, &err) == DP_OK);
    int exact = 1;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 16; p++)
            exact &= o[c * 16 + p] ==
                     (rgb.pixels[(2 * 3 + c) * 16 + p] / 255.0f - aug.mean[c]) / aug.std[c];
    CHECK(exact);
    /* grey -> RGB: the one channel replicated, each normalised with its own mean/std */
    CHECK(dp_make_sample(&grey, 1, &aug, false, 0, 0, o, &err) == DP_OK);
    exact = 1;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 16; p++)
            exact &= o[c * 16 + p] == (grey.pixels[16 + p] / 255.0f - aug.mean[c]) / aug.std[c];
    CHECK(exact);
    /* RGB -> grey: 0.299 R + 0.587 G + 0.114 B */
    dp_augment ga = aug;
    ga.out_c = 1;
    CHECK(dp_make_sample(&rgb, 2, &ga, false, 0, 0, g, &err) == DP_OK);
    double maxd = 0;
    for (int p = 0; p < 16; p++) {
        const uint8_t *s = rgb.pixels + 2 * 48;
        double y = 0.299 * s[p] + 0.587 * s[16 + p] + 0.114 * s[32 + p];
        maxd = fmax(maxd, fabs((y / 255 - 0.5) / 0.2 - g[p]));
    }
    CHECK_MSG(maxd < 1e-5, "%g", maxd);
    /* bad specs and indices are errors, not crashes */
    dp_augment bad = aug;
    bad.std[1] = 0;
    CHECK(dp_make_sample(&rgb, 0, &bad, false, 0, 0, o, &err) == DP_ERR_CONFIG);
    bad = aug;
    bad.out_c = 2;
    CHECK(dp_make_sample(&rgb, 0, &bad, false, 0, 0, o, &err) == DP_ERR_CONFIG);
    CHECK(dp_make_sample(&rgb, 3, &aug, false, 0, 0, o, &err) == DP_ERR_ARG);
    CHECK(dp_make_sample(&rgb, -1, &aug, false, 0, 0, o, &err) == DP_ERR_ARG);
    dp_dataset_free(&rgb);
    dp_dataset_free(&grey);
}

/* Stored size != output size: bilinear resize of the shorter side, then center crop. */
static void test_resize_center(void) {
    dp_dataset c = make_ds(2, 3, 10, 12, px_const);
    dp_augment aug = IDENT; /* 8x8 */
    aug.out_h = aug.out_w = 4;
    float o[48];
    dp_error err = {0};
    CHECK(dp_make_sample(&c, 1, &aug, false, 0, 0, o, &err) == DP_OK);
    int flat = 1;
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 16; p++)
            flat &= fabsf(o[ch * 16 + p] - (41 + 10 * ch) / 255.0f) < 1e-6f;
    CHECK(flat);
    dp_dataset_free(&c);
    /* 16 wide ramp 10*x, 16x16 -> 8x8: output x samples source 2x + 0.5 -> 20x + 5 */
    dp_dataset r = make_ds(1, 1, 16, 16, px_hramp);
    dp_augment ga = {.out_c = 1, .out_h = 8, .out_w = 8, .mean = {0}, .std = {1}};
    float g[64];
    CHECK(dp_make_sample(&r, 0, &ga, false, 0, 0, g, &err) == DP_OK);
    double maxd = 0;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) maxd = fmax(maxd, fabs(g[y * 8 + x] * 255 - (20 * x + 5)));
    CHECK_MSG(maxd < 1e-3, "%g", maxd);
    /* resize 16 -> 12 wide, then center crop 8: crop starts at 2 of 12, scale 4/3:
     * output x samples source (2 + x + 0.5) * 4/3 - 0.5 */
    ga.resize = 12;
    CHECK(dp_make_sample(&r, 0, &ga, false, 0, 0, g, &err) == DP_OK);
    maxd = 0;
    for (int x = 0; x < 8; x++)
        maxd = fmax(maxd, fabs(g[x] * 255 - 10 * ((2.5 + x) * 4 / 3 - 0.5)));
    CHECK_MSG(maxd < 1e-3, "%g", maxd);
    dp_dataset_free(&r);
}

/* RRC on ramps: R = 2x, G = 2y, so the output's slopes reveal the box (width, height). */
static void test_rrc_box(void) {
    const int S = 128, O = 32;
    dp_dataset ds = make_ds(50, 3, S, S, px_ramp);
    dp_augment aug = {.out_c = 3,
                      .out_h = O,
                      .out_w = O,
                      .random_resized_crop = true,
                      .rrc_min_scale = 0.08f,
                      .flip = true,
                      .mean = {0, 0, 0},
                      .std = {1, 1, 1}};
    float *o = malloc(sizeof(float) * 3 * O * O);
    dp_error err = {0};
    int valid = 1, n = 0;
    double amin = 1, amax = 0;
    for (int e = 0; e < 4; e++)
        for (int i = 0; i < ds.n; i++, n++) {
            CHECK(dp_make_sample(&ds, i, &aug, true, 3, e, o, &err) == DP_OK);
            /* slope per output pixel = 2 * box / O (in 0..255 units), away from edges */
            double sx = fabs(o[16 * O + 20] - o[16 * O + 12]) * 255 / 8;
            double sy = fabs(o[O * O + 20 * O + 16] - o[O * O + 12 * O + 16]) * 255 / 8;
            double bw = sx * O / 2, bh = sy * O / 2, area = bw * bh / (S * S), ratio = bw / bh;
            valid &= area > 0.08 - 0.01 && area <= 1.01 && ratio > 0.75 - 0.03 &&
                     ratio < 4.0 / 3 + 0.03 && bw <= S + 0.5 && bh <= S + 0.5;
            amin = fmin(amin, area), amax = fmax(amax, area);
            /* B is constant 100 everywhere, whatever the box */
            valid &= fabsf(o[2 * O * O + 5] - 100 / 255.0f) < 1e-6f;
        }
    CHECK_MSG(valid, "a box broke the scale/ratio constraints");
    CHECK_MSG(amin < 0.3 && amax > 0.8, "areas %g..%g", amin, amax);
    /* a constant image stays constant under any box */
    dp_dataset c = make_ds(5, 3, 40, 60, px_const);
    int flat = 1;
    for (int i = 0; i < 5; i++) {
        dp_make_sample(&c, i, &aug, true, 3, 0, o, &err);
        for (int p = 0; p < O * O; p++) flat &= fabsf(o[p] - (40 + i) / 255.0f) < 1e-6f;
    }
    CHECK(flat);
    free(o);
    dp_dataset_free(&ds);
    dp_dataset_free(&c);
}

/* A smooth 800x600 JPEG (R = 255 x / W, G = 255 y / H, B = 128) and its grey twin, decoded
 * at 1/8 for a 32x32 output (resize 32 + center crop), compared with the analytic image. */
static void test_jpeg_scaled(void) {
    enum { W = 800, H = 600, O = 32 };
    char dir[512], root[1024], p[1024];
    dt_mktemp(dir, sizeof dir);
    dt_join(root, sizeof root, dir, "if");
    dt_mkdir(root);
    dt_mkdir(dt_join(p, sizeof p, root, "a"));
    unsigned char *pix = malloc((size_t)W * H * 3), *gp = malloc((size_t)W * H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned char *q = pix + ((size_t)y * W + x) * 3;
            q[0] = (unsigned char)lround(255.0 * (x + 0.5) / W);
            q[1] = (unsigned char)lround(255.0 * (y + 0.5) / H);
            q[2] = 128;
            gp[(size_t)y * W + x] = q[0];
        }
    dt_write_jpeg(dt_join(p, sizeof p, root, "a/rgb.jpg"), pix, W, H, 3, 95);
    dt_write_jpeg(dt_join(p, sizeof p, root, "a/zgrey.jpg"), gp, W, H, 1, 95);
    /* Adobe-style CMYK (stored inverted: 255 = no ink): R = C*K/255, G = M*K/255, ... */
    unsigned char *cmyk = malloc(64 * 64 * 4);
    for (int i = 0; i < 64 * 64; i++)
        cmyk[4 * i] = 255, cmyk[4 * i + 1] = 128, cmyk[4 * i + 2] = 255, cmyk[4 * i + 3] = 200;
    dt_write_jpeg(dt_join(p, sizeof p, root, "a/zz_cmyk.jpg"), cmyk, 64, 64, 4, 95);
    free(cmyk);
    free(pix);
    free(gp);
    dp_dataset ds;
    dp_error err = {0};
    dp_status st = dp_dataset_load_imagefolder(&ds, root, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st == DP_OK) {
        dp_augment aug = {.out_c = 3, .out_h = O, .out_w = O, .mean = {0, 0, 0}, .std = {1, 1, 1}};
        float o[3 * O * O];
        st = dp_make_sample(&ds, 0, &aug, false, 0, 0, o, &err);
        CHECK_MSG(st == DP_OK, "%s", err.msg);
        /* shorter side 600 -> 32, width 800 -> 42; crop starts at 5 (of 42): the box is
         * x in [5 * 800/42, ...), width 32 * 800/42; y covers all 600 */
        double fx = 800.0 / 42, maxd = 0;
        for (int y = 0; y < O; y++)
            for (int x = 0; x < O; x++) {
                double sx = (5 + x + 0.5) * fx, sy = (y + 0.5) * 600.0 / 32;
                maxd = fmax(maxd, fabs(o[y * O + x] - sx / W));
                maxd = fmax(maxd, fabs(o[O * O + y * O + x] - sy / H));
                maxd = fmax(maxd, fabs(o[2 * O * O + y * O + x] - 128 / 255.0));
            }
        CHECK_MSG(maxd < 0.02, "max deviation %g from the analytic image", maxd);
        /* the grey file: replicated channels equal to the RGB file's red ramp */
        float g[3 * O * O];
        st = dp_make_sample(&ds, 1, &aug, false, 0, 0, g, &err);
        CHECK_MSG(st == DP_OK, "%s", err.msg);
        int rep = 1;
        maxd = 0;
        for (int q = 0; q < O * O; q++) {
            rep &= g[q] == g[O * O + q] && g[q] == g[2 * O * O + q];
            maxd = fmax(maxd, fabs(g[q] - o[q]));
        }
        CHECK(rep);
        CHECK_MSG(maxd < 0.02, "%g", maxd);
        st = dp_make_sample(&ds, 2, &aug, false, 0, 0, g, &err);
        CHECK_MSG(st == DP_OK, "%s", err.msg);
        maxd = 0;
        for (int q = 0; q < O * O; q++) {
            maxd = fmax(maxd, fabs(g[q] * 255 - 200));
            maxd = fmax(maxd, fabs(g[O * O + q] * 255 - 128 * 200 / 255.0));
            maxd = fmax(maxd, fabs(g[2 * O * O + q] * 255 - 200));
        }
        CHECK_MSG(maxd < 3, "CMYK: %g", maxd);
        /* RRC on a big JPEG: valid, deterministic */
        aug.random_resized_crop = true;
        float a[3 * O * O], b[3 * O * O];
        int same = 1, in_range = 1;
        for (int e = 0; e < 10; e++) {
            dp_make_sample(&ds, 0, &aug, true, 9, e, a, &err);
            dp_make_sample(&ds, 0, &aug, true, 9, e, b, &err);
            same &= memcmp(a, b, sizeof a) == 0;
            for (int q = 0; q < 3 * O * O; q++) in_range &= a[q] >= -0.01f && a[q] <= 1.01f;
        }
        CHECK(same);
        CHECK(in_range);
        dp_dataset_free(&ds);
    }
    dt_rmtree(dir);
}

int main(void) {
    double t0 = dp_now_seconds();
    test_crop_flip();
    test_normalise_channels();
    test_resize_center();
    test_rrc_box();
    test_jpeg_scaled();
    printf("test_augment: %.2f s\n", dp_now_seconds() - t0);
    return dp_test_finish();
}
