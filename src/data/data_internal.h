/* Private to src/data: the JPEG decoder and helpers shared by the readers, augmentation and
 * the loader. Not part of the public API. */
#ifndef DPRUNE_DATA_INTERNAL_H
#define DPRUNE_DATA_INTERNAL_H

#include "dprune/data.h"
#include <stddef.h>
#include <stdint.h>

/* A decoded image, interleaved [h, w, c] uint8, c = 1 (greyscale JPEG) or 3 (RGB). */
typedef struct {
    uint8_t *pix;
    int w, h, c;
} dp_image8;

/* Reads a whole file into a malloc'd buffer (refuses files larger than max_bytes). */
dp_status dp_read_whole_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len,
                             dp_error *err);

/* Reads only the JPEG header: full-resolution width and height. `path` is for messages. */
dp_status dp_jpeg_probe(const uint8_t *buf, size_t len, const char *path, int *w, int *h,
                        dp_error *err);

/* Decodes at 1/denom of the full size (denom 1, 2, 4 or 8: libjpeg's DCT scaling, much cheaper
 * than decoding everything and then shrinking). Greyscale stays 1 channel, everything else
 * becomes RGB. A truncated or corrupt file is an error, not a grey-filled image. Free
 * img->pix with free(). */
dp_status dp_jpeg_decode(const uint8_t *buf, size_t len, const char *path, int denom,
                         dp_image8 *img, dp_error *err);

/* Validates an augmentation spec (shape, normalisation) once, for the loader and samples. */
dp_status dp_augment_check(const dp_augment *aug, dp_error *err);

#endif
