/* dp_make_sample: one stored sample -> normalised float [out_c, out_h, out_w].
 *
 * Pipeline (same for in-memory and JPEG samples):
 *   1. choose a box in source pixels: RandomResizedCrop (train), identity (in-memory sample
 *      already at the output size) or "resize shorter side, then center crop";
 *   2. bilinear-resample the box to out_h x out_w (a resize followed by a crop is the same as
 *      sampling the crop's box of the original, so it is done in one pass);
 *   3. train: random crop from the zero-padded result, random horizontal flip;
 *   4. channel conversion (grey <-> RGB) and (x/255 - mean) / std.
 * Random draws come in that order from the stream (seed, epoch, index, DP_RNG_AUGMENT), so a
 * sample is identical whichever thread, rank or batch computes it. */
#include "data_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_OUT_SIDE = 8192 };
#define MAX_JPEG_FILE_BYTES ((size_t)1 << 28)

/* A uint8 source with explicit strides: in-memory samples are CHW, decoded JPEGs HWC. */
typedef struct {
    const uint8_t *pix;
    int w, h, c;
    ptrdiff_t sc, sy, sx; /* strides of channel, row, column */
} src_view;

/* A region of the source in pixel units (x0, y0 = top-left corner). */
typedef struct {
    double x0, y0, w, h;
} box;

dp_status dp_augment_check(const dp_augment *aug, dp_error *err) {
    if (!aug) return dp_fail(err, DP_ERR_ARG, "augment spec is NULL");
    if (aug->out_c != 1 && aug->out_c != 3)
        return dp_fail(err, DP_ERR_CONFIG, "augment: out_c = %d, expected 1 or 3", aug->out_c);
    if (aug->out_h <= 0 || aug->out_w <= 0 || aug->out_h > MAX_OUT_SIDE ||
        aug->out_w > MAX_OUT_SIDE)
        return dp_fail(err, DP_ERR_CONFIG, "augment: output %dx%d, expected sides 1..%d",
                       aug->out_h, aug->out_w, MAX_OUT_SIDE);
    if (aug->crop_pad < 0 || aug->crop_pad > MAX_OUT_SIDE)
        return dp_fail(err, DP_ERR_CONFIG, "augment: crop_pad = %d, expected 0..%d", aug->crop_pad,
                       MAX_OUT_SIDE);
    if (aug->resize < 0 || aug->resize > 4 * MAX_OUT_SIDE)
        return dp_fail(err, DP_ERR_CONFIG, "augment: resize = %d, expected 0..%d", aug->resize,
                       4 * MAX_OUT_SIDE);
    for (int c = 0; c < aug->out_c; c++)
        if (!(aug->std[c] > 0) || !isfinite(aug->mean[c]) || !isfinite(aug->std[c]))
            return dp_fail(err, DP_ERR_CONFIG,
                           "augment: channel %d has mean %g, std %g; expected std > 0", c,
                           (double)aug->mean[c], (double)aug->std[c]);
    return DP_OK;
}

/* torchvision RandomResizedCrop.get_params: area fraction uniform in [min_scale, 1], aspect
 * ratio log-uniform in [3/4, 4/3], 10 tries, then a center crop clamped to the ratio range. */
static box rrc_box(dp_rng *r, int w, int h, float min_scale) {
    double lo = min_scale > 0 && min_scale <= 1 ? min_scale : 0.08;
    const double rmin = 3.0 / 4.0, rmax = 4.0 / 3.0;
    double area = (double)w * h;
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (lo + (1.0 - lo) * dp_rng_uniform(r));
        double logr = log(rmin) + (log(rmax) - log(rmin)) * dp_rng_uniform(r);
        double ratio = exp(logr);
        int cw = (int)nearbyint(sqrt(target * ratio));
        int ch = (int)nearbyint(sqrt(target / ratio));
        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            int top = (int)dp_rng_below(r, (uint32_t)(h - ch + 1));
            int left = (int)dp_rng_below(r, (uint32_t)(w - cw + 1));
            return (box){left, top, cw, ch};
        }
    }
    double in_ratio = (double)w / h;
    int cw = w, ch = h;
    if (in_ratio < rmin)
        ch = (int)nearbyint(w / rmin);
    else if (in_ratio > rmax)
        cw = (int)nearbyint(h * rmax);
    return (box){(w - cw) / 2, (h - ch) / 2, cw, ch};
}

/* Resize so the shorter side is `side` (the longer becomes int(side * long / short), as in
 * torchvision), then center crop out_w x out_h; returned as a box in source pixels. Rounding
 * is half-to-even (nearbyint) like Python's round(). */
static box center_box(int w, int h, int side, int out_w, int out_h) {
    int rw, rh;
    if (w <= h) {
        rw = side;
        rh = (int)((long long)side * h / w);
    } else {
        rh = side;
        rw = (int)((long long)side * w / h);
    }
    double fx = (double)w / rw, fy = (double)h / rh;
    double left = nearbyint((rw - out_w) / 2.0), top = nearbyint((rh - out_h) / 2.0);
    return (box){left * fx, top * fy, out_w * fx, out_h * fy};
}

static box plan_box(dp_rng *r, const dp_augment *aug, bool train, bool is_file, int w, int h) {
    if (train && aug->random_resized_crop) return rrc_box(r, w, h, aug->rrc_min_scale);
    if (!is_file && w == aug->out_w && h == aug->out_h) return (box){0, 0, w, h};
    return center_box(w, h, aug->resize > 0 ? aug->resize : aug->out_h, aug->out_w, aug->out_h);
}

/* One axis of bilinear sampling (align_corners = false): output i samples source coordinate
 * x0 + (i + 0.5) * len / n - 0.5, clamped to the image (edge pixels repeat). */
static void axis_weights(double x0, double len, int n, int size, int *lo, int *hi, float *t) {
    for (int i = 0; i < n; i++) {
        double s = x0 + (i + 0.5) * len / n - 0.5;
        if (s < 0) s = 0;
        if (s > size - 1) s = size - 1;
        int l = (int)s;
        lo[i] = l;
        hi[i] = l + 1 < size ? l + 1 : l;
        t[i] = (float)(s - l);
    }
}

/* Resamples box b of the source to tmp [src.c, oh, ow], values in 0..255. */
static dp_status resample(const src_view *s, box b, int oh, int ow, float *tmp, dp_error *err) {
    int *idx = malloc(sizeof(int) * 2 * (size_t)(oh + ow));
    float *t = malloc(sizeof(float) * (size_t)(oh + ow));
    if (!idx || !t) {
        free(idx);
        free(t);
        return dp_fail(err, DP_ERR_NOMEM, "augment: out of memory");
    }
    int *ylo = idx, *yhi = idx + oh, *xlo = idx + 2 * oh, *xhi = xlo + ow;
    float *ty = t, *tx = t + oh;
    axis_weights(b.y0, b.h, oh, s->h, ylo, yhi, ty);
    axis_weights(b.x0, b.w, ow, s->w, xlo, xhi, tx);
    for (int c = 0; c < s->c; c++) {
        const uint8_t *p = s->pix + c * s->sc;
        for (int y = 0; y < oh; y++) {
            const uint8_t *r0 = p + ylo[y] * s->sy, *r1 = p + yhi[y] * s->sy;
            float *o = tmp + ((size_t)c * oh + y) * ow;
            for (int x = 0; x < ow; x++) {
                ptrdiff_t a = xlo[x] * s->sx, d = xhi[x] * s->sx;
                float top = r0[a] + tx[x] * (r0[d] - r0[a]);
                float bot = r1[a] + tx[x] * (r1[d] - r1[a]);
                o[x] = top + ty[y] * (bot - top);
            }
        }
    }
    free(idx);
    free(t);
    return DP_OK;
}

/* Copies the source when no resampling is needed (exact pixels, and cheap for CIFAR). */
static void copy_exact(const src_view *s, float *tmp) {
    for (int c = 0; c < s->c; c++)
        for (int y = 0; y < s->h; y++)
            for (int x = 0; x < s->w; x++)
                tmp[((size_t)c * s->h + y) * s->w + x] = s->pix[c * s->sc + y * s->sy + x * s->sx];
}

/* Random crop offsets and flip, drawn after the box so streams stay aligned. */
typedef struct {
    int pad, dy, dx;
    bool flip;
} jitter;

static jitter draw_jitter(dp_rng *r, const dp_augment *aug, bool train) {
    jitter j = {0, 0, 0, false};
    if (train && aug->crop_pad > 0) {
        j.pad = aug->crop_pad;
        j.dy = (int)dp_rng_below(r, (uint32_t)(2 * j.pad + 1));
        j.dx = (int)dp_rng_below(r, (uint32_t)(2 * j.pad + 1));
    }
    if (train && aug->flip) j.flip = dp_rng_uniform(r) < 0.5;
    return j;
}

/* Value of output channel oc at tmp pixel p (plane = oh*ow): grey <-> RGB conversion. */
static inline float channel_value(const float *tmp, size_t plane, size_t p, int src_c, int oc) {
    if (src_c == 3 && oc < 0) /* RGB -> grey, ITU-R 601 luma like PIL's convert("L") */
        return 0.299f * tmp[p] + 0.587f * tmp[plane + p] + 0.114f * tmp[2 * plane + p];
    return tmp[(src_c == 1 ? 0 : (size_t)oc) * plane + p];
}

/* tmp [src_c, oh, ow] in 0..255 -> out, applying crop-with-padding, flip and normalisation. */
static void finish(const float *tmp, int src_c, const dp_augment *aug, jitter j, float *out) {
    int oh = aug->out_h, ow = aug->out_w;
    size_t plane = (size_t)oh * ow;
    for (int c = 0; c < aug->out_c; c++) {
        int sel = aug->out_c == 1 && src_c == 3 ? -1 : c;
        float mean = aug->mean[c], std = aug->std[c];
        for (int y = 0; y < oh; y++) {
            int sy = y + j.dy - j.pad;
            float *o = out + (size_t)c * plane + (size_t)y * ow;
            for (int x = 0; x < ow; x++) {
                int sx = (j.flip ? ow - 1 - x : x) + j.dx - j.pad;
                float v = 0; /* zero padding, as torchvision pads the uint8 image with 0 */
                if (sy >= 0 && sy < oh && sx >= 0 && sx < ow)
                    v = channel_value(tmp, plane, (size_t)sy * ow + sx, src_c, sel);
                o[x] = (v / 255.0f - mean) / std;
            }
        }
    }
}

/* Box -> tmp -> jitter -> out, for any source view. */
static dp_status render(const src_view *s, box b, dp_rng *r, const dp_augment *aug, bool train,
                        float *out, dp_error *err) {
    float *tmp = malloc(sizeof(float) * (size_t)s->c * aug->out_h * aug->out_w);
    if (!tmp) return dp_fail(err, DP_ERR_NOMEM, "augment: out of memory");
    dp_status st = DP_OK;
    if (b.x0 == 0 && b.y0 == 0 && b.w == s->w && b.h == s->h && s->w == aug->out_w &&
        s->h == aug->out_h)
        copy_exact(s, tmp);
    else
        st = resample(s, b, aug->out_h, aug->out_w, tmp, err);
    if (st == DP_OK) finish(tmp, s->c, aug, draw_jitter(r, aug, train), out);
    free(tmp);
    return st;
}

static dp_status sample_in_memory(const dp_dataset *ds, int64_t index, const dp_augment *aug,
                                  bool train, dp_rng *r, float *out, dp_error *err) {
    if (ds->c != 1 && ds->c != 3)
        return dp_fail(err, DP_ERR_DATA, "%s: stored samples have %d channels, expected 1 or 3",
                       ds->source, ds->c);
    size_t plane = (size_t)ds->h * ds->w;
    src_view s = {ds->pixels + (size_t)index * ds->c * plane,
                  ds->w,
                  ds->h,
                  ds->c,
                  (ptrdiff_t)plane,
                  ds->w,
                  1};
    box b = plan_box(r, aug, train, false, ds->w, ds->h);
    return render(&s, b, r, aug, train, out, err);
}

/* Largest libjpeg scale 1/d (d = 8, 4, 2, 1) that still leaves at least the output
 * resolution inside the box, so shrinking in the DCT loses nothing the resize would keep. */
static int choose_denom(box b, int out_w, int out_h) {
    int d = 8;
    while (d > 1 && (b.w / d < out_w || b.h / d < out_h)) d /= 2;
    return d;
}

static dp_status sample_from_file(const dp_dataset *ds, int64_t index, const dp_augment *aug,
                                  bool train, dp_rng *r, float *out, dp_error *err) {
    const char *path = ds->paths[index];
    uint8_t *buf = NULL;
    size_t len = 0;
    int fw = 0, fh = 0;
    dp_image8 img = {0};
    dp_status st = dp_read_whole_file(path, MAX_JPEG_FILE_BYTES, &buf, &len, err);
    if (st == DP_OK) st = dp_jpeg_probe(buf, len, path, &fw, &fh, err);
    box b = {0, 0, 0, 0};
    if (st == DP_OK) {
        /* The box is planned on the full-size header dims so the random draws do not depend
         * on the decode scale. */
        b = plan_box(r, aug, train, true, fw, fh);
        st = dp_jpeg_decode(buf, len, path, choose_denom(b, aug->out_w, aug->out_h), &img, err);
    }
    free(buf);
    if (st != DP_OK) return st;
    double fx = (double)img.w / fw, fy = (double)img.h / fh;
    box scaled = {b.x0 * fx, b.y0 * fy, b.w * fx, b.h * fy};
    src_view s = {img.pix, img.w, img.h, img.c, 1, (ptrdiff_t)img.w * img.c, img.c};
    st = render(&s, scaled, r, aug, train, out, err);
    free(img.pix);
    return st;
}

dp_status dp_make_sample(const dp_dataset *ds, int64_t index, const dp_augment *aug, bool train,
                         uint64_t seed, int64_t epoch, float *out, dp_error *err) {
    if (!ds || !out) return dp_fail(err, DP_ERR_ARG, "dp_make_sample: NULL argument");
    if (index < 0 || index >= ds->n)
        return dp_fail(err, DP_ERR_ARG, "%s: sample index %lld out of range 0..%lld", ds->source,
                       (long long)index, (long long)ds->n - 1);
    dp_status st = dp_augment_check(aug, err);
    if (st != DP_OK) return st;
    dp_rng r;
    dp_rng_init(&r, seed, (uint64_t)epoch, (uint64_t)index, DP_RNG_AUGMENT);
    if (ds->pixels) return sample_in_memory(ds, index, aug, train, &r, out, err);
    if (ds->paths) return sample_from_file(ds, index, aug, train, &r, out, err);
    return dp_fail(err, DP_ERR_ARG, "%s: dataset has neither pixels nor file paths", ds->source);
}
