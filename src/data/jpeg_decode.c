/* JPEG decoding with libjpeg(-turbo). libjpeg's default error handler calls exit(), so errors
 * longjmp back here and become a dp_status with libjpeg's own message. Warnings are kept
 * quiet, except "premature end of file": libjpeg would fill the rest with grey and carry on,
 * and a half-grey training image is worse than a clear error. */
#include "data_internal.h"
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jpeglib.h>
#include <jerror.h>

/* Decoded images above this are refused: a corrupt header must not ask for gigabytes. */
#define DP_JPEG_MAX_DECODED_BYTES (1ULL << 28)

dp_status dp_read_whole_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len,
                             dp_error *err) {
    *buf = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return dp_fail(err, DP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    dp_status s = DP_OK;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode))
        s = dp_fail(err, DP_ERR_IO, "%s: not a regular file", path);
    else if ((unsigned long long)st.st_size > max_bytes)
        s = dp_fail(err, DP_ERR_DATA, "%s: file is %lld bytes, more than the %zu allowed", path,
                    (long long)st.st_size, max_bytes);
    else if (st.st_size == 0)
        s = dp_fail(err, DP_ERR_DATA, "%s: empty file (expected a JPEG image)", path);
    size_t n = s == DP_OK ? (size_t)st.st_size : 0;
    if (s == DP_OK && !(*buf = malloc(n)))
        s = dp_fail(err, DP_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    if (s == DP_OK && fread(*buf, 1, n, fp) != n)
        s = dp_fail(err, DP_ERR_IO, "%s: read failed (file shrank or I/O error)", path);
    fclose(fp);
    if (s != DP_OK) {
        free(*buf);
        *buf = NULL;
        return s;
    }
    *len = n;
    return DP_OK;
}

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    bool truncated;
} jpeg_err;

static void on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Replaces libjpeg's printing to stderr: note a truncation, drop everything else. */
static void on_message(j_common_ptr cinfo, int level) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level >= 0) return; /* trace messages */
    if (cinfo->err->msg_code == JWRN_JPEG_EOF && !e->truncated) {
        e->truncated = true;
        (*cinfo->err->format_message)(cinfo, e->msg);
    }
    cinfo->err->num_warnings++;
}

static void init_err(struct jpeg_decompress_struct *cinfo, jpeg_err *e) {
    memset(e, 0, sizeof *e);
    cinfo->err = jpeg_std_error(&e->pub);
    e->pub.error_exit = on_error;
    e->pub.emit_message = on_message;
}

dp_status dp_jpeg_probe(const uint8_t *buf, size_t len, const char *path, int *w, int *h,
                        dp_error *err) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err e;
    init_err(&cinfo, &e);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return dp_fail(err, DP_ERR_DATA, "%s: unreadable JPEG: %s", path, e.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    *w = (int)cinfo.image_width;
    *h = (int)cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    if (*w <= 0 || *h <= 0)
        return dp_fail(err, DP_ERR_DATA, "%s: JPEG has zero size %dx%d", path, *w, *h);
    return DP_OK;
}

/* Adobe CMYK JPEGs store inverted values: R = C*K/255 etc. In place, 4 -> 3 bytes a pixel. */
static void cmyk_row_to_rgb(uint8_t *row, int w) {
    for (int x = 0; x < w; x++) {
        const uint8_t *s = row + 4 * x;
        unsigned k = s[3];
        uint8_t r = (uint8_t)(s[0] * k / 255), g = (uint8_t)(s[1] * k / 255),
                b = (uint8_t)(s[2] * k / 255);
        row[3 * x] = r;
        row[3 * x + 1] = g;
        row[3 * x + 2] = b;
    }
}

/* Chooses the output colour space: greyscale stays 1 channel, CMYK is converted by hand
 * (libjpeg cannot produce RGB from it), everything else asks libjpeg for RGB. */
static int set_output_space(struct jpeg_decompress_struct *cinfo) {
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        return 1;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        return 4;
    default:
        cinfo->out_color_space = JCS_RGB;
        return 3;
    }
}

dp_status dp_jpeg_decode(const uint8_t *buf, size_t len, const char *path, int denom,
                         dp_image8 *img, dp_error *err) {
    memset(img, 0, sizeof *img);
    if (denom != 1 && denom != 2 && denom != 4 && denom != 8)
        return dp_fail(err, DP_ERR_ARG, "%s: JPEG scale 1/%d not supported", path, denom);
    struct jpeg_decompress_struct cinfo;
    jpeg_err e;
    uint8_t *volatile pix = NULL; /* volatile: assigned after setjmp, freed after longjmp */
    init_err(&cinfo, &e);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pix);
        return dp_fail(err, DP_ERR_DATA, "%s: unreadable JPEG: %s", path, e.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    int in_c = set_output_space(&cinfo);
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned)denom;
    jpeg_calc_output_dimensions(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    unsigned long long bytes = (unsigned long long)w * (unsigned long long)h * (unsigned)in_c;
    if (w <= 0 || h <= 0 || bytes > DP_JPEG_MAX_DECODED_BYTES) {
        jpeg_destroy_decompress(&cinfo);
        return dp_fail(err, DP_ERR_DATA, "%s: JPEG of %ux%u is too large or empty to decode", path,
                       cinfo.image_width, cinfo.image_height);
    }
    if (!(pix = malloc(bytes))) {
        jpeg_destroy_decompress(&cinfo);
        return dp_fail(err, DP_ERR_NOMEM, "%s: cannot allocate %llu bytes", path, bytes);
    }
    jpeg_start_decompress(&cinfo);
    int out_c = in_c == 4 ? 3 : in_c;
    while (cinfo.output_scanline < cinfo.output_height) {
        /* rows are written at the 4-channel stride for CMYK, then packed to RGB in place:
         * row y (4w bytes at 4wy) is read fully before row y's RGB (at 3wy) is written. */
        JSAMPROW row = pix + (size_t)cinfo.output_scanline * (size_t)w * (size_t)in_c;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    if (in_c == 4)
        for (int y = 0; y < h; y++) {
            uint8_t *src = pix + (size_t)y * w * 4;
            cmyk_row_to_rgb(src, w);
            memmove(pix + (size_t)y * w * 3, src, (size_t)w * 3);
        }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (e.truncated) {
        free(pix);
        return dp_fail(err, DP_ERR_DATA, "%s: truncated JPEG: %s", path, e.msg);
    }
    img->pix = pix;
    img->w = w;
    img->h = h;
    img->c = out_c;
    return DP_OK;
}
