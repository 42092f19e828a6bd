/* Shared inside prune/: the framing of the states prune/ keeps in checkpoint sections (C-SGD
 * clusters, the CIP schedule). A payload is an 8-byte magic, the body, then the FNV-1a of
 * everything before it, so a section written by another dprune version or damaged on disk is
 * refused before any of its sizes is trusted. */
#ifndef DPRUNE_FRAMED_BYTES_H
#define DPRUNE_FRAMED_BYTES_H

#include "dprune/ckpt_file.h"
#include <string.h>

#define FRAMED_MAGIC_BYTES 8

/* Appends the checksum to b (magic and body already in it) and hands its bytes over. Out of
 * memory frees b and fails with "<what>: out of memory". */
static inline dp_status framed_seal(dp_bytes *b, const char *what, uint8_t **buf, size_t *len,
                                    dp_error *err) {
    dp_bytes_u64(b, b->failed ? 0 : dp_fnv1a(b->data, b->len));
    if (b->failed) {
        dp_bytes_free(b);
        return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", what);
    }
    *buf = b->data, *len = b->len;
    return DP_OK;
}

/* Checks the magic (with at least min_body bytes after it) and the checksum, and points body
 * at what lies between them. `what` starts the messages ("CIP state"), `kind` names what the
 * magic stands for ("a CIP schedule"). */
static inline dp_status framed_open(const uint8_t *buf, size_t len,
                                    const char magic[FRAMED_MAGIC_BYTES], size_t min_body,
                                    const char *what, const char *kind, dp_cursor *body,
                                    dp_error *err) {
    if (len < FRAMED_MAGIC_BYTES + min_body + 8 || memcmp(buf, magic, FRAMED_MAGIC_BYTES) != 0)
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "%s: not %s (no %.8s header); written by another dprune version?", what,
                       kind, magic);
    uint64_t sum;
    memcpy(&sum, buf + len - 8, 8);
    if (dp_fnv1a(buf, len - 8) != sum)
        return dp_fail(err, DP_ERR_CHECKPOINT, "%s: checksum mismatch (damaged)", what);
    *body = dp_cursor_of(buf + FRAMED_MAGIC_BYTES, len - 8 - FRAMED_MAGIC_BYTES);
    return DP_OK;
}

#endif
