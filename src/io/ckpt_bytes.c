/* Byte buffers that serialise little-endian values, and cursors that read them back with a
 * bounds check on every read: the payload parsers of the checkpoint never index raw bytes. */
#include "dprune/ckpt_file.h"
#include <stdlib.h>
#include <string.h>

void dp_bytes_free(dp_bytes *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

uint8_t *dp_bytes_reserve(dp_bytes *b, size_t n) {
    if (b->failed) return NULL;
    if (n > SIZE_MAX - b->len) {
        b->failed = true;
        return NULL;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return NULL;
        }
        b->data = grown;
        b->cap = cap;
    }
    return b->data + b->len;
}

void dp_bytes_put(dp_bytes *b, const void *p, size_t n) {
    uint8_t *dst = dp_bytes_reserve(b, n);
    if (!dst) return;
    if (n) memcpy(dst, p, n);
    b->len += n;
}

/* Little-endian regardless of the host, so files move between machines. */
static void put_le(dp_bytes *b, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    dp_bytes_put(b, tmp, (size_t)n);
}

void dp_bytes_u8(dp_bytes *b, uint8_t v) {
    put_le(b, v, 1);
}
void dp_bytes_u32(dp_bytes *b, uint32_t v) {
    put_le(b, v, 4);
}
void dp_bytes_i32(dp_bytes *b, int32_t v) {
    put_le(b, (uint32_t)v, 4);
}
void dp_bytes_u64(dp_bytes *b, uint64_t v) {
    put_le(b, v, 8);
}
void dp_bytes_i64(dp_bytes *b, int64_t v) {
    put_le(b, (uint64_t)v, 8);
}
void dp_bytes_f32(dp_bytes *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_le(b, u, 4);
}
void dp_bytes_f64(dp_bytes *b, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_le(b, u, 8);
}
void dp_bytes_str(dp_bytes *b, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n > UINT32_MAX) {
        b->failed = true;
        return;
    }
    dp_bytes_u32(b, (uint32_t)n);
    dp_bytes_put(b, s, n);
}

/* ---- cursors ---- */

dp_cursor dp_cursor_of(const void *p, size_t len) {
    return (dp_cursor){p, len, 0, false};
}

size_t dp_cursor_left(const dp_cursor *c) {
    return c->bad ? 0 : c->len - c->pos;
}

const uint8_t *dp_cursor_take(dp_cursor *c, size_t n) {
    if (c->bad || n > c->len - c->pos) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *p = c->p + c->pos;
    c->pos += n;
    return p;
}

static uint64_t get_le(dp_cursor *c, int n) {
    const uint8_t *p = dp_cursor_take(c, (size_t)n);
    uint64_t v = 0;
    if (p)
        for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint8_t dp_cursor_u8(dp_cursor *c) {
    return (uint8_t)get_le(c, 1);
}
uint32_t dp_cursor_u32(dp_cursor *c) {
    return (uint32_t)get_le(c, 4);
}
int32_t dp_cursor_i32(dp_cursor *c) {
    return (int32_t)(uint32_t)get_le(c, 4);
}
uint64_t dp_cursor_u64(dp_cursor *c) {
    return get_le(c, 8);
}
int64_t dp_cursor_i64(dp_cursor *c) {
    return (int64_t)get_le(c, 8);
}
float dp_cursor_f32(dp_cursor *c) {
    uint32_t u = (uint32_t)get_le(c, 4);
    float v;
    memcpy(&v, &u, 4);
    return v;
}
double dp_cursor_f64(dp_cursor *c) {
    uint64_t u = get_le(c, 8);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

bool dp_cursor_str(dp_cursor *c, char *out, size_t outsz) {
    if (outsz) out[0] = 0;
    uint32_t n = dp_cursor_u32(c);
    if (c->bad || (size_t)n >= outsz) {
        c->bad = true;
        return false;
    }
    const uint8_t *p = dp_cursor_take(c, n);
    if (!p || memchr(p, 0, n)) {
        c->bad = true;
        return false;
    }
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}
