/* Element codecs of the checkpoint: the byte-shuffle filter, fp16/bf16 conversion and zlib.
 *
 * Why shuffle: the bytes of a float array interleave a slowly varying sign/exponent byte with
 * nearly random mantissa bytes, which defeats deflate's matching. Grouping byte 0 of every
 * element, then byte 1, ... gives deflate long runs of similar exponent bytes. */
#include "dprune/ckpt_file.h"
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void dp_byte_shuffle(const uint8_t *src, uint8_t *dst, size_t n_elems, size_t elem_size) {
    for (size_t b = 0; b < elem_size; b++) {
        uint8_t *out = dst + b * n_elems;
        const uint8_t *in = src + b;
        for (size_t i = 0; i < n_elems; i++) out[i] = in[i * elem_size];
    }
}

void dp_byte_unshuffle(const uint8_t *src, uint8_t *dst, size_t n_elems, size_t elem_size) {
    for (size_t b = 0; b < elem_size; b++) {
        const uint8_t *in = src + b * n_elems;
        uint8_t *out = dst + b;
        for (size_t i = 0; i < n_elems; i++) out[i * elem_size] = in[i];
    }
}

/* ---- half precision ---- */

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t dp_f32_to_f16(float f) {
    uint32_t x = bits_of(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000u) /* >= 65520 (and inf): rounds to inf */
        return (uint16_t)(sign | 0x7c00);
    if (ax >= 0x38800000u) { /* normal in fp16: rebias the exponent, round the mantissa */
        uint32_t r = ax - 0x38000000u;
        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    /* subnormal (or zero) in fp16: units of 2^-24 */
    uint32_t e = ax >> 23;
    if (e < 102) return sign; /* below 2^-25: rounds to zero */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t n = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (n & 1u))) n++;
    return (uint16_t)(sign | n); /* n == 0x400 is the smallest normal: still correct */
}

float dp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f) return float_of(sign | 0x7f800000u | (m << 13));
    if (e != 0) return float_of(sign | ((e + 112) << 23) | (m << 13));
    if (m == 0) return float_of(sign);
    /* subnormal: normalise */
    int shift = 0;
    while (!(m & 0x400)) m <<= 1, shift++;
    return float_of(sign | ((uint32_t)(113 - shift) << 23) | ((m & 0x3ff) << 13));
}

uint16_t dp_f32_to_bf16(float f) {
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u); /* overflow past the largest finite carries into inf */
    return (uint16_t)(x >> 16);
}

float dp_bf16_to_f32(uint16_t h) {
    return float_of((uint32_t)h << 16);
}

/* ---- zlib, in pieces because its lengths are 32-bit ---- */

#define ZCHUNK ((size_t)1 << 30)

dp_status dp_zlib_compress(const void *src, size_t n, int level, bool rle, uint8_t **out,
                           size_t *out_len, dp_error *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    level = level <= 0 ? 6 : level > 9 ? 9 : level;
    if (deflateInit2(&z, level, Z_DEFLATED, 15, 8, rle ? Z_RLE : Z_DEFAULT_STRATEGY) != Z_OK)
        return dp_fail(err, DP_ERR_NOMEM, "zlib: deflateInit failed");
    /* deflateBound of the whole input, plus a margin per piece for the stored-block headers */
    size_t cap = (size_t)deflateBound(&z, (uLong)n) + 64 * (n / ZCHUNK + 1);
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        deflateEnd(&z);
        return dp_fail(err, DP_ERR_NOMEM, "zlib: cannot allocate %zu bytes", cap);
    }
    const uint8_t *in = src;
    size_t in_left = n, produced = 0;
    int rc;
    do {
        if (z.avail_in == 0 && in_left > 0) {
            size_t piece = in_left < ZCHUNK ? in_left : ZCHUNK;
            z.next_in = (Bytef *)in, z.avail_in = (uInt)piece;
            in += piece, in_left -= piece;
        }
        size_t room = cap - produced;
        z.next_out = buf + produced;
        z.avail_out = (uInt)(room < ZCHUNK ? room : ZCHUNK);
        uInt before = z.avail_out;
        rc = deflate(&z, in_left == 0 ? Z_FINISH : Z_NO_FLUSH);
        produced += before - z.avail_out;
        if (rc == Z_STREAM_ERROR || (rc == Z_BUF_ERROR && produced == cap)) {
            deflateEnd(&z);
            free(buf);
            return dp_fail(err, DP_ERR_NOMEM, "zlib: deflate failed");
        }
    } while (rc != Z_STREAM_END);
    deflateEnd(&z);
    *out = buf;
    *out_len = produced;
    return DP_OK;
}

dp_status dp_zlib_decompress(const void *src, size_t n, void *dst, size_t raw_len,
                             const char *where, dp_error *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return dp_fail(err, DP_ERR_NOMEM, "zlib: inflateInit failed");
    const uint8_t *in = src;
    uint8_t spare; /* an empty tensor still needs somewhere for inflate to (not) write */
    uint8_t *out = raw_len ? dst : &spare;
    size_t in_left = n, out_left = raw_len ? raw_len : 1;
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (z.avail_in == 0 && in_left > 0) {
            size_t piece = in_left < ZCHUNK ? in_left : ZCHUNK;
            z.next_in = (Bytef *)in, z.avail_in = (uInt)piece;
            in += piece, in_left -= piece;
        }
        if (z.avail_out == 0 && out_left > 0) {
            size_t piece = out_left < ZCHUNK ? out_left : ZCHUNK;
            z.next_out = out, z.avail_out = (uInt)piece;
            out += piece, out_left -= piece;
        }
        uInt in_before = z.avail_in, out_before = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        /* no progress possible: input exhausted or output full before the stream ended */
        if (rc == Z_BUF_ERROR ||
            (rc == Z_OK && in_before == z.avail_in && out_before == z.avail_out))
            break;
    }
    bool complete = rc == Z_STREAM_END && z.avail_in == 0 && in_left == 0 &&
                    (uint64_t)z.total_out == (uint64_t)raw_len;
    const char *why = rc == Z_DATA_ERROR      ? "invalid compressed data"
                      : rc == Z_MEM_ERROR     ? "out of memory"
                      : rc != Z_STREAM_END    ? "compressed data ends early or holds too much"
                      : z.avail_in || in_left ? "bytes follow the compressed data"
                                              : "decoded length differs from the stored one";
    inflateEnd(&z);
    if (!complete)
        return dp_fail(err, rc == Z_MEM_ERROR ? DP_ERR_NOMEM : DP_ERR_CHECKPOINT, "%s: %s", where,
                       why);
    return DP_OK;
}
