/* Helpers for damaging checkpoint files in tests: read/write whole files, and recompute
 * every CRC after an edit so that deeper checks (sizes, shapes) are reached. */
#ifndef DPRUNE_CKPT_TESTUTIL_H
#define DPRUNE_CKPT_TESTUTIL_H

#include "dprune/ckpt_file.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static inline uint32_t ct_get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ct_get64(const uint8_t *p) {
    return (uint64_t)ct_get32(p) | (uint64_t)ct_get32(p + 4) << 32;
}
static inline void ct_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ct_put64(uint8_t *p, uint64_t v) {
    ct_put32(p, (uint32_t)v);
    ct_put32(p + 4, (uint32_t)(v >> 32));
}

/* Recomputes section CRCs (trusting the table's offsets where they fit), the table CRC and
 * the header CRC, as a forger would. */
static inline void ct_refresh_crcs(uint8_t *buf, size_t size) {
    uint32_t n = ct_get32(buf + 12);
    if (n > DP_CKPT_MAX_SECTIONS || 32 + 32 * (uint64_t)n > size) n = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = buf + 32 + 32 * i;
        uint64_t off = ct_get64(e + 8), len = ct_get64(e + 16);
        if (off <= size && len <= size - off)
            ct_put32(e + 24, (uint32_t)crc32(0, buf + off, (uInt)len));
    }
    ct_put32(buf + 24, (uint32_t)crc32(0, buf + 32, 32 * n));
    ct_put32(buf + 28, (uint32_t)crc32(0, buf, 28));
}

/* Offset of the first section of a type in a well-formed image (0 if none). */
static inline uint64_t ct_section_offset(const uint8_t *buf, uint32_t type, uint64_t *len) {
    uint32_t n = ct_get32(buf + 12);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = buf + 32 + 32 * i;
        if (ct_get32(e) == type) {
            if (len) *len = ct_get64(e + 16);
            return ct_get64(e + 8);
        }
    }
    return 0;
}

static inline uint8_t *ct_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static inline int ct_write_file(const char *path, const uint8_t *buf, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(buf, 1, size, f);
    return fclose(f) == 0 && w == size ? 0 : -1;
}

#endif
