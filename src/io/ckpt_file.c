/* The checkpoint container: a 32-byte header (magic, version, section count, file length,
 * CRCs of the table and of the header), a table of 32-byte section entries, then the
 * payloads back to back. Every byte of a file is covered by one CRC32, so any single damaged
 * byte is found before a payload is used. Layout: docs/checkpoint-format.md. */
#include "dprune/ckpt_file.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

const char *dp_ckpt_section_name(uint32_t type) {
    static const char *names[] = {"?",       "config",    "provenance",  "arch",          "params",
                                  "buffers", "optimizer", "train_state", "prune_history", "metrics",
                                  "csgd",    "cip"};
    return type > 0 && type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* zlib's crc32 takes uInt lengths; feed large payloads in pieces. */
static uint32_t crc32_of(const uint8_t *p, uint64_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt piece = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, p, piece);
        p += piece, n -= piece;
    }
    return (uint32_t)crc;
}

/* ---- building ---- */

void dp_ckpt_builder_free(dp_ckpt_builder *b) {
    for (int i = 0; i < b->n; i++) dp_bytes_free(&b->sec[i].data);
    free(b->sec);
    memset(b, 0, sizeof *b);
}

dp_bytes *dp_ckpt_builder_add(dp_ckpt_builder *b, uint32_t type, uint32_t flags) {
    if (b->n >= DP_CKPT_MAX_SECTIONS) return NULL;
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 16;
        dp_ckpt_section_buf *grown = realloc(b->sec, sizeof *grown * (size_t)cap);
        if (!grown) return NULL;
        b->sec = grown;
        b->cap = cap;
    }
    dp_ckpt_section_buf *s = &b->sec[b->n++];
    memset(s, 0, sizeof *s);
    s->type = type;
    s->flags = flags;
    return &s->data;
}

uint64_t dp_ckpt_builder_size(const dp_ckpt_builder *b) {
    uint64_t size = DP_CKPT_HEADER_BYTES + (uint64_t)DP_CKPT_ENTRY_BYTES * (uint64_t)b->n;
    for (int i = 0; i < b->n; i++) size += b->sec[i].data.len;
    return size;
}

/* Header and table (the part before the payloads) into `head`. */
static dp_status build_head(const dp_ckpt_builder *b, dp_bytes *head, dp_error *err) {
    for (int i = 0; i < b->n; i++)
        if (b->sec[i].data.failed)
            return dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory encoding section '%s'",
                           dp_ckpt_section_name(b->sec[i].type));
    dp_bytes table = {0};
    uint64_t offset = DP_CKPT_HEADER_BYTES + (uint64_t)DP_CKPT_ENTRY_BYTES * (uint64_t)b->n;
    for (int i = 0; i < b->n; i++) {
        const dp_ckpt_section_buf *s = &b->sec[i];
        dp_bytes_u32(&table, s->type);
        dp_bytes_u32(&table, s->flags);
        dp_bytes_u64(&table, offset);
        dp_bytes_u64(&table, s->data.len);
        dp_bytes_u32(&table, crc32_of(s->data.data, s->data.len));
        dp_bytes_u32(&table, 0);
        offset += s->data.len;
    }
    dp_bytes_put(head, DP_CKPT_MAGIC, 8);
    dp_bytes_u32(head, DP_CKPT_VERSION_MAJOR | (uint32_t)DP_CKPT_VERSION_MINOR << 16);
    dp_bytes_u32(head, (uint32_t)b->n);
    dp_bytes_u64(head, offset); /* the file length */
    dp_bytes_u32(head, crc32_of(table.data, table.len));
    if (!head->failed) dp_bytes_u32(head, crc32_of(head->data, head->len));
    dp_bytes_put(head, table.data, table.len);
    bool failed = head->failed || table.failed;
    dp_bytes_free(&table);
    if (failed) return dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory");
    return DP_OK;
}

dp_status dp_ckpt_builder_to_memory(const dp_ckpt_builder *b, uint8_t **out, size_t *len,
                                    dp_error *err) {
    dp_bytes file = {0};
    dp_status st = build_head(b, &file, err);
    if (st != DP_OK) {
        dp_bytes_free(&file);
        return st;
    }
    for (int i = 0; i < b->n; i++) dp_bytes_put(&file, b->sec[i].data.data, b->sec[i].data.len);
    if (file.failed) {
        dp_bytes_free(&file);
        return dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory");
    }
    *out = file.data;
    *len = file.len;
    return DP_OK;
}

dp_status dp_ckpt_builder_write(const dp_ckpt_builder *b, const char *path, dp_error *err) {
    dp_bytes head = {0};
    dp_status st = build_head(b, &head, err);
    dp_iovec *parts = st == DP_OK ? malloc(sizeof *parts * (size_t)(b->n + 1)) : NULL;
    if (st == DP_OK && !parts) st = dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory");
    if (st == DP_OK) {
        parts[0] = (dp_iovec){head.data, head.len};
        for (int i = 0; i < b->n; i++)
            parts[i + 1] = (dp_iovec){b->sec[i].data.data, b->sec[i].data.len};
        st = dp_write_file_atomic(path, parts, b->n + 1, err);
    }
    free(parts);
    dp_bytes_free(&head);
    return st;
}

/* ---- reading ---- */

void dp_ckpt_file_free(dp_ckpt_file *f) {
    free(f->bytes);
    free(f->sec);
    memset(f, 0, sizeof *f);
}

const dp_ckpt_section *dp_ckpt_file_find(const dp_ckpt_file *f, uint32_t type) {
    for (int i = 0; i < f->n_sec; i++)
        if (f->sec[i].type == type) return &f->sec[i];
    return NULL;
}

/* Section types this reader understands (a REQUIRED section of another type is refused). */
static bool known_type(uint32_t type) {
    return type >= DP_SEC_CONFIG && type <= DP_SEC_CSGD;
}

#define CK_FAIL(err, name, fmt, ...)                                                               \
    dp_fail(err, DP_ERR_CHECKPOINT, "checkpoint %s: " fmt, name, __VA_ARGS__)

static dp_status parse(dp_ckpt_file *f, const char *name, dp_error *err) {
    if (f->size < DP_CKPT_HEADER_BYTES || memcmp(f->bytes, DP_CKPT_MAGIC, 8) != 0) {
        if (f->size >= 8 && memcmp(f->bytes, DP_CKPT_MAGIC, 8) == 0)
            return CK_FAIL(err, name, "truncated: %zu bytes, shorter than the %d-byte header",
                           f->size, DP_CKPT_HEADER_BYTES);
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "checkpoint %s: not a dprune checkpoint (no \"%s\" magic at the start)",
                       name, DP_CKPT_MAGIC);
    }
    dp_cursor c = dp_cursor_of(f->bytes, DP_CKPT_HEADER_BYTES);
    dp_cursor_take(&c, 8);
    uint32_t versions = dp_cursor_u32(&c); /* u16 major, u16 minor */
    f->major = (uint16_t)(versions & 0xffff);
    f->minor = (uint16_t)(versions >> 16);
    uint32_t n_sec = dp_cursor_u32(&c);
    uint64_t file_len = dp_cursor_u64(&c);
    uint32_t table_crc = dp_cursor_u32(&c);
    uint32_t header_crc = dp_cursor_u32(&c);
    bool header_ok = crc32_of(f->bytes, 28) == header_crc;
    /* A genuine file of another major version may lay its header out differently, so its
     * version is reported even when this reader's header CRC does not match. */
    if (f->major != DP_CKPT_VERSION_MAJOR)
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "checkpoint %s: format version %u.%u%s; this dprune reads version %d.x "
                       "(a newer dprune wrote it, or the header is damaged)",
                       name, f->major, f->minor, header_ok ? "" : " (header CRC mismatch)",
                       DP_CKPT_VERSION_MAJOR);
    if (!header_ok)
        return CK_FAIL(err, name, "header is damaged (CRC32 0x%08x stored, 0x%08x computed)",
                       header_crc, crc32_of(f->bytes, 28));
    if (file_len != f->size)
        return CK_FAIL(err, name, "%s: the header says %" PRIu64 " bytes, the file has %zu",
                       file_len > f->size ? "truncated" : "trailing data", file_len, f->size);
    if (n_sec > DP_CKPT_MAX_SECTIONS)
        return CK_FAIL(err, name, "absurd section count %u (limit %d)", n_sec,
                       DP_CKPT_MAX_SECTIONS);
    uint64_t table_end = DP_CKPT_HEADER_BYTES + (uint64_t)DP_CKPT_ENTRY_BYTES * n_sec;
    if (table_end > f->size)
        return CK_FAIL(err, name, "truncated: the section table ends at byte %" PRIu64 " of %zu",
                       table_end, f->size);
    const uint8_t *table = f->bytes + DP_CKPT_HEADER_BYTES;
    if (crc32_of(table, table_end - DP_CKPT_HEADER_BYTES) != table_crc)
        return CK_FAIL(err, name, "section table is damaged (CRC32 mismatch over %u entries)",
                       n_sec);
    f->sec = calloc(n_sec ? n_sec : 1, sizeof *f->sec);
    if (!f->sec) return dp_fail(err, DP_ERR_NOMEM, "checkpoint %s: out of memory", name);
    c = dp_cursor_of(table, table_end - DP_CKPT_HEADER_BYTES);
    uint64_t expect = table_end; /* payloads follow each other without gaps */
    for (uint32_t i = 0; i < n_sec; i++) {
        dp_ckpt_section *s = &f->sec[i];
        s->type = dp_cursor_u32(&c);
        s->flags = dp_cursor_u32(&c);
        s->offset = dp_cursor_u64(&c);
        s->length = dp_cursor_u64(&c);
        s->crc = dp_cursor_u32(&c);
        dp_cursor_u32(&c); /* reserved */
        if (s->offset != expect || s->length > f->size - s->offset)
            return CK_FAIL(err, name,
                           "section #%u '%s' at byte %" PRIu64 " with %" PRIu64
                           " bytes does not fit the %zu-byte file",
                           i, dp_ckpt_section_name(s->type), s->offset, s->length, f->size);
        expect = s->offset + s->length;
        s->data = f->bytes + s->offset;
        uint32_t crc = crc32_of(s->data, s->length);
        if (crc != s->crc)
            return CK_FAIL(err, name,
                           "section #%u '%s' (%" PRIu64
                           " bytes) is damaged: CRC32 0x%08x stored, 0x%08x computed",
                           i, dp_ckpt_section_name(s->type), s->length, s->crc, crc);
        if (!known_type(s->type) && (s->flags & DP_SECF_REQUIRED))
            return CK_FAIL(err, name,
                           "section #%u has type %u, which this dprune does not know and the "
                           "file marks as required (written by a newer dprune, format %u.%u)",
                           i, s->type, f->major, f->minor);
    }
    if (expect != f->size)
        return CK_FAIL(err, name, "%" PRIu64 " bytes after the last section (file has %zu)",
                       f->size - expect, f->size);
    f->n_sec = (int)n_sec;
    return DP_OK;
}

dp_status dp_ckpt_file_parse(dp_ckpt_file *f, uint8_t *bytes, size_t size, const char *name,
                             dp_error *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", name);
    f->bytes = bytes;
    f->size = size;
    dp_status st = parse(f, name, err);
    if (st != DP_OK) {
        free(f->sec);
        f->sec = NULL;
        f->n_sec = 0;
    }
    return st;
}

dp_status dp_ckpt_file_read(dp_ckpt_file *f, const char *path, dp_error *err) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dp_fail(err, DP_ERR_IO, "checkpoint %s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return dp_fail(err, DP_ERR_IO, "checkpoint %s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > DP_CKPT_MAX_FILE_BYTES) {
        close(fd);
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "checkpoint %s: %lld bytes is beyond the %" PRIu64 "-byte limit", path,
                       (long long)sb.st_size, DP_CKPT_MAX_FILE_BYTES);
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *bytes = malloc(size ? size : 1);
    if (!bytes) {
        close(fd);
        return dp_fail(err, DP_ERR_NOMEM, "checkpoint %s: cannot allocate %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, bytes + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(bytes);
            return dp_fail(err, DP_ERR_IO, "checkpoint %s: read failed at byte %zu: %s", path, got,
                           e ? strerror(e) : "file shrank while reading");
        }
        got += (size_t)r;
    }
    close(fd);
    return dp_ckpt_file_parse(f, bytes, size, path, err);
}
