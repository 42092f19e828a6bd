/* Tensor records: name, dtype, filter, dims, raw and compressed lengths, then zlib of the
 * (byte-shuffled) element bytes. Decoding checks every length against the payload and the
 * tensor's own shape before anything is allocated or written. */
#include "dprune/ckpt_file.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Element bytes are little-endian in the file; fp32 data is copied as is. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the checkpoint codec assumes a little-endian host"
#endif

enum { FILTER_NONE = 0, FILTER_SHUFFLE = 1 };
#define MAX_NDIM 8
/* deflate cannot compress better than about 1032:1, so a record claiming more raw bytes than
 * that per compressed byte is damaged (and would make us allocate for nothing). */
#define MAX_DEFLATE_RATIO 1100

const char *dp_dtype_name(dp_dtype t) {
    return t == DP_DTYPE_F32    ? "f32"
           : t == DP_DTYPE_F16  ? "f16"
           : t == DP_DTYPE_BF16 ? "bf16"
                                : "?";
}

size_t dp_dtype_size(dp_dtype t) {
    return t == DP_DTYPE_F32 ? 4 : (t == DP_DTYPE_F16 || t == DP_DTYPE_BF16) ? 2 : 0;
}

/* malloc that does not return NULL for an empty tensor */
static void *alloc_bytes(size_t n) {
    return malloc(n > 0 ? n : 1);
}

/* Element bytes of `data` in the stored dtype (little-endian), malloc'ed. */
static uint8_t *convert_out(const float *data, size_t numel, dp_dtype t) {
    size_t es = dp_dtype_size(t);
    uint8_t *out = alloc_bytes(numel * es);
    if (!out) return NULL;
    if (t == DP_DTYPE_F32) {
        memcpy(out, data, numel * 4);
        return out;
    }
    for (size_t i = 0; i < numel; i++) {
        uint16_t v = t == DP_DTYPE_F16 ? dp_f32_to_f16(data[i]) : dp_f32_to_bf16(data[i]);
        memcpy(out + 2 * i, &v, 2);
    }
    return out;
}

dp_status dp_tensor_record_put(dp_bytes *out, const char *name, const int *dims, int ndim,
                               const float *data, size_t numel, const dp_tensor_codec *c,
                               dp_error *err) {
    dp_tensor_codec def = {0};
    if (!c) c = &def;
    size_t es = dp_dtype_size(c->dtype);
    size_t check = 1;
    for (int i = 0; i < ndim; i++) check *= (size_t)dims[i];
    if (es == 0 || ndim < 0 || ndim > MAX_NDIM || check != numel || strlen(name) >= 256)
        return dp_fail(err, DP_ERR_ARG, "tensor '%s': bad dtype, shape or name", name);
    uint8_t *elems = convert_out(data, numel, c->dtype);
    uint8_t *shuffled = c->no_shuffle ? NULL : alloc_bytes(numel * es);
    if (!elems || (!c->no_shuffle && !shuffled)) {
        free(elems);
        free(shuffled);
        return dp_fail(err, DP_ERR_NOMEM, "tensor '%s': out of memory", name);
    }
    if (shuffled) dp_byte_shuffle(elems, shuffled, numel, es);
    uint8_t *comp = NULL;
    size_t comp_len = 0;
    dp_status st = dp_zlib_compress(shuffled ? shuffled : elems, numel * es, c->level,
                                    shuffled && !c->lz_search, &comp, &comp_len, err);
    free(elems);
    free(shuffled);
    if (st != DP_OK) return st;
    dp_bytes_str(out, name);
    dp_bytes_u8(out, (uint8_t)c->dtype);
    dp_bytes_u8(out, (uint8_t)ndim);
    dp_bytes_u8(out, c->no_shuffle ? FILTER_NONE : FILTER_SHUFFLE);
    dp_bytes_u8(out, 0);
    for (int i = 0; i < ndim; i++) dp_bytes_i64(out, dims[i]);
    dp_bytes_u64(out, (uint64_t)(numel * es));
    dp_bytes_u64(out, (uint64_t)comp_len);
    dp_bytes_put(out, comp, comp_len);
    free(comp);
    if (out->failed) return dp_fail(err, DP_ERR_NOMEM, "tensor '%s': out of memory", name);
    return DP_OK;
}

dp_status dp_tensor_record_next(dp_cursor *c, dp_tensor_record *r, const char *where,
                                dp_error *err) {
    memset(r, 0, sizeof *r);
    if (!dp_cursor_str(c, r->name, sizeof r->name))
        return dp_fail(err, DP_ERR_CHECKPOINT, "%s: tensor record has a bad name", where);
    uint8_t dtype = dp_cursor_u8(c), ndim = dp_cursor_u8(c), filter = dp_cursor_u8(c);
    dp_cursor_u8(c);
    if (c->bad) goto short_payload;
    if (dtype > DP_DTYPE_BF16 || ndim > MAX_NDIM || filter > FILTER_SHUFFLE)
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "%s: tensor '%s' has dtype %u, %u dims, filter %u (unknown or absurd)",
                       where, r->name, dtype, ndim, filter);
    r->dtype = (dp_dtype)dtype;
    r->ndim = ndim;
    r->shuffled = filter == FILTER_SHUFFLE;
    r->numel = 1;
    for (int i = 0; i < ndim; i++) {
        r->dims[i] = dp_cursor_i64(c);
        /* each factor <= 2^31 and the running product <= 2^34: no overflow */
        if (r->dims[i] < 0 || r->dims[i] > INT32_MAX ||
            (r->numel *= (uint64_t)r->dims[i]) > DP_CKPT_MAX_TENSOR_ELEMS)
            return dp_fail(err, DP_ERR_CHECKPOINT, "%s: tensor '%s' has absurd dims", where,
                           r->name);
    }
    r->raw_len = dp_cursor_u64(c);
    r->comp_len = dp_cursor_u64(c);
    if (c->bad) goto short_payload;
    if (r->raw_len != r->numel * dp_dtype_size(r->dtype))
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "%s: tensor '%s' claims %" PRIu64 " bytes for %" PRIu64 " %s elements",
                       where, r->name, r->raw_len, r->numel, dp_dtype_name(r->dtype));
    if (r->comp_len > dp_cursor_left(c) || r->raw_len > r->comp_len * MAX_DEFLATE_RATIO + 64)
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "%s: tensor '%s' claims %" PRIu64 " compressed bytes, %zu left in the "
                       "section",
                       where, r->name, r->comp_len, dp_cursor_left(c));
    r->comp = dp_cursor_take(c, r->comp_len);
    return DP_OK;
short_payload:
    return dp_fail(err, DP_ERR_CHECKPOINT, "%s: tensor record '%s' is cut short", where, r->name);
}

dp_status dp_tensor_record_decode(const dp_tensor_record *r, float *out, const char *where,
                                  dp_error *err) {
    char ctx[600];
    snprintf(ctx, sizeof ctx, "%s: tensor '%s'", where, r->name);
    size_t es = dp_dtype_size(r->dtype), n = (size_t)r->numel;
    /* fp32 without shuffle inflates straight into place */
    bool direct = r->dtype == DP_DTYPE_F32 && !r->shuffled;
    uint8_t *raw = direct ? (uint8_t *)out : alloc_bytes(r->raw_len);
    uint8_t *plain = r->shuffled && r->dtype != DP_DTYPE_F32 ? alloc_bytes(r->raw_len) : NULL;
    if (!raw || (r->shuffled && r->dtype != DP_DTYPE_F32 && !plain)) {
        if (!direct) free(raw);
        free(plain);
        return dp_fail(err, DP_ERR_NOMEM, "%s: cannot allocate %" PRIu64 " bytes", ctx, r->raw_len);
    }
    dp_status st = dp_zlib_decompress(r->comp, r->comp_len, raw, r->raw_len, ctx, err);
    if (st == DP_OK && !direct) {
        const uint8_t *elems = raw;
        if (r->shuffled && r->dtype == DP_DTYPE_F32) {
            dp_byte_unshuffle(raw, (uint8_t *)out, n, es);
            elems = NULL;
        } else if (r->shuffled) {
            dp_byte_unshuffle(raw, plain, n, es);
            elems = plain;
        }
        if (elems) /* element bytes -> float */
            for (size_t i = 0; i < n; i++) {
                if (es == 4) {
                    memcpy(&out[i], elems + 4 * i, 4);
                } else {
                    uint16_t h;
                    memcpy(&h, elems + 2 * i, 2);
                    out[i] = r->dtype == DP_DTYPE_F16 ? dp_f16_to_f32(h) : dp_bf16_to_f32(h);
                }
            }
    }
    if (!direct) free(raw);
    free(plain);
    return st;
}
