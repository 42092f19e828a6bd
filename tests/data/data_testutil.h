/* Helpers shared by the data tests: a private temp directory, writing damaged copies of files,
 * and checking that an error message names the file. Header-only (static) so every test
 * executable stays a single .c file. */
#ifndef DPRUNE_DATA_TESTUTIL_H
#define DPRUNE_DATA_TESTUTIL_H

#include "dprune/core.h"
#include "testutil.h"
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jpeglib.h>

/* mkdtemp under $TMPDIR (or /tmp); aborts the test if it cannot (nothing else would work). */
static inline const char *dt_mktemp(char *buf, size_t bufsz) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, bufsz, "%s/dprune_data_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        exit(2);
    }
    return buf;
}

static int dt_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* rm -r, only ever called on a directory this test created with dt_mktemp. */
static inline void dt_rmtree(const char *dir) {
    nftw(dir, dt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline const char *dt_join(char *buf, size_t bufsz, const char *dir, const char *name) {
    int n = snprintf(buf, bufsz, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= bufsz) {
        fprintf(stderr, "path too long: %s/%s\n", dir, name);
        exit(2);
    }
    return buf;
}

static inline int dt_write(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Whole file into a malloc'd buffer (NULL if unreadable). */
static inline unsigned char *dt_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) *len = (size_t)n;
    return b;
}

static inline int dt_mkdir(const char *path) {
    return mkdir(path, 0700);
}

/* Writes an interleaved [h, w, c] uint8 image (c = 1 grey, 3 RGB, 4 CMYK) as a baseline JPEG. */
static inline int dt_write_jpeg(const char *path, const unsigned char *pix, int w, int h, int c,
                                int quality) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : c == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)ci.next_scanline * w * c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f);
}

/* An expected failure: non-OK status, and the message names `needle` (usually the file). */
#define CHECK_FAILS_NAMING(status, err, needle)                                                    \
    do {                                                                                           \
        dp_status st_ = (status);                                                                  \
        if (getenv("DPRUNE_TEST_VERBOSE")) printf("  error: %s\n", (err).msg);                     \
        CHECK_MSG(st_ != DP_OK, "expected an error naming %s", (needle));                          \
        CHECK_MSG(st_ == DP_OK || strstr((err).msg, (needle)) != NULL,                             \
                  "message '%s' does not name '%s'", (err).msg, (needle));                         \
    } while (0)

#endif
