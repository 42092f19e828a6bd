/* dprune checkpoint container (io/): one self-describing file of typed sections, each with its
 * length and CRC32; byte buffers and checked cursors to fill and parse section payloads; the
 * tensor codec (byte-shuffle + zlib, fp32/fp16/bf16); atomic writing; the background writer
 * that keeps the last K files and the `latest` pointer. Knows nothing about models: model/
 * (dprune/checkpoint.h) maps a network onto sections. The layout is in docs/checkpoint-format.md.
 */
#ifndef DPRUNE_CKPT_FILE_H
#define DPRUNE_CKPT_FILE_H

#include "dprune/core.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_CKPT_MAGIC "DPRUNECK"
/* Major: a reader refuses a file of another major version. Minor: sections or trailing fields
 * were added; older readers skip what they do not know (see the versioning rules in the doc). */
#define DP_CKPT_VERSION_MAJOR 1
#define DP_CKPT_VERSION_MINOR 2 /* 1: optional section 10, csgd; 2: optional section 11, cip */
#define DP_CKPT_HEADER_BYTES 32
#define DP_CKPT_ENTRY_BYTES 32

/* Sane limits checked before anything is allocated from a size read out of a file. */
#define DP_CKPT_MAX_SECTIONS 4096
#define DP_CKPT_MAX_FILE_BYTES ((uint64_t)1 << 40)
#define DP_CKPT_MAX_TENSOR_ELEMS ((uint64_t)1 << 34)
#define DP_CKPT_MAX_NAME 4096

/* Section types. Numbers are forever: a retired type is never reused. */
enum {
    DP_SEC_CONFIG = 1,        /* the config text, as given */
    DP_SEC_PROVENANCE = 2,    /* key/value strings: versions, commit, hash, ranks x threads... */
    DP_SEC_ARCH = 3,          /* the architecture as it is now */
    DP_SEC_PARAMS = 4,        /* parameter tensors by name */
    DP_SEC_BUFFERS = 5,       /* non-trainable tensors (BN running statistics) by name */
    DP_SEC_OPTIMIZER = 6,     /* SGD momentum by parameter name + started flag */
    DP_SEC_TRAIN_STATE = 7,   /* typed key/values: phase, round, epoch, step, lr, seed... */
    DP_SEC_PRUNE_HISTORY = 8, /* opaque bytes owned by prune/ */
    DP_SEC_METRICS = 9,       /* metrics summary, JSON text */
    DP_SEC_CSGD = 10,         /* opaque bytes owned by prune/: C-SGD clusters mid-phase */
    DP_SEC_CIP = 11,          /* opaque bytes owned by prune/: CIP schedule step and mask */
};
/* Section flags. */
enum {
    /* A reader that does not know the section's type must refuse the file instead of skipping
     * it (for a later section without which the rest would be misread). */
    DP_SECF_REQUIRED = 1u << 0,
};
const char *dp_ckpt_section_name(uint32_t type); /* "params", or "unknown" */

/* ---- growable byte buffer (little-endian writers); a failed allocation is sticky ---- */
typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} dp_bytes;

void dp_bytes_free(dp_bytes *b);
/* Makes room for n more bytes; returns a pointer to them (len is not advanced) or NULL. */
uint8_t *dp_bytes_reserve(dp_bytes *b, size_t n);
void dp_bytes_put(dp_bytes *b, const void *p, size_t n);
void dp_bytes_u8(dp_bytes *b, uint8_t v);
void dp_bytes_u32(dp_bytes *b, uint32_t v);
void dp_bytes_i32(dp_bytes *b, int32_t v);
void dp_bytes_u64(dp_bytes *b, uint64_t v);
void dp_bytes_i64(dp_bytes *b, int64_t v);
void dp_bytes_f32(dp_bytes *b, float v);
void dp_bytes_f64(dp_bytes *b, double v);
void dp_bytes_str(dp_bytes *b, const char *s); /* u32 length + bytes (no NUL) */

/* ---- checked reader over a payload: any read past the end fails (sticky) and yields 0 ---- */
typedef struct {
    const uint8_t *p;
    size_t len, pos;
    bool bad;
} dp_cursor;

dp_cursor dp_cursor_of(const void *p, size_t len);
size_t dp_cursor_left(const dp_cursor *c);
const uint8_t *dp_cursor_take(dp_cursor *c, size_t n); /* NULL (and bad) if fewer than n left */
uint8_t dp_cursor_u8(dp_cursor *c);
uint32_t dp_cursor_u32(dp_cursor *c);
int32_t dp_cursor_i32(dp_cursor *c);
uint64_t dp_cursor_u64(dp_cursor *c);
int64_t dp_cursor_i64(dp_cursor *c);
float dp_cursor_f32(dp_cursor *c);
double dp_cursor_f64(dp_cursor *c);
/* A length-prefixed string copied into out (NUL-terminated); fails if it does not fit in
 * outsz or the payload, or holds a NUL byte. */
bool dp_cursor_str(dp_cursor *c, char *out, size_t outsz);

/* ---- building a file ---- */
typedef struct {
    uint32_t type, flags;
    dp_bytes data;
} dp_ckpt_section_buf;

typedef struct {
    dp_ckpt_section_buf *sec;
    int n, cap;
} dp_ckpt_builder;

void dp_ckpt_builder_free(dp_ckpt_builder *b);
/* Appends an empty section and returns its payload buffer to fill (NULL when out of memory). */
dp_bytes *dp_ckpt_builder_add(dp_ckpt_builder *b, uint32_t type, uint32_t flags);
/* Total file size the builder would produce. */
uint64_t dp_ckpt_builder_size(const dp_ckpt_builder *b);
/* The whole file in one malloc'ed buffer (tests, in-memory use). */
dp_status dp_ckpt_builder_to_memory(const dp_ckpt_builder *b, uint8_t **out, size_t *len,
                                    dp_error *err);
/* Writes the file atomically (see dp_write_file_atomic). */
dp_status dp_ckpt_builder_write(const dp_ckpt_builder *b, const char *path, dp_error *err);

/* ---- atomic file writes ----
 * Writes `n_parts` buffers to "<path>.tmp-<pid>" in the same directory, fsyncs it, renames it
 * over `path` and fsyncs the directory, so `path` is either the old file or the complete new
 * one. On failure the temporary file is removed, `path` is untouched and err names the path
 * and the reason (ENOSPC "No space left on device", EFBIG "File too large" under ulimit -f
 * -- SIGXFSZ is ignored process-wide so that limit reports instead of killing -- EACCES,
 * ENOTDIR, ...). */
typedef struct {
    const void *p;
    size_t n;
} dp_iovec;
dp_status dp_write_file_atomic(const char *path, const dp_iovec *parts, int n_parts, dp_error *err);

/* ---- reading and validating a file ----
 * Every check happens before the payload is used: magic, major version, header CRC, table
 * CRC, the stored file length against the real one, each section inside the file and each
 * section's CRC32. Any failure is one DP_ERR_CHECKPOINT message naming the file and the
 * problem; nothing is allocated from an unchecked size. */
typedef struct {
    uint32_t type, flags;
    uint64_t offset, length;
    uint32_t crc;
    const uint8_t *data; /* into dp_ckpt_file.bytes */
} dp_ckpt_section;

typedef struct {
    char path[512];
    uint8_t *bytes;
    size_t size;
    uint16_t major, minor;
    dp_ckpt_section *sec;
    int n_sec;
} dp_ckpt_file;

dp_status dp_ckpt_file_read(dp_ckpt_file *f, const char *path, dp_error *err);
/* Parses a file image in memory (takes ownership of `bytes`, freed by dp_ckpt_file_free even
 * on failure); `name` is used in messages. */
dp_status dp_ckpt_file_parse(dp_ckpt_file *f, uint8_t *bytes, size_t size, const char *name,
                             dp_error *err);
void dp_ckpt_file_free(dp_ckpt_file *f);
/* The first section of a type, or NULL. */
const dp_ckpt_section *dp_ckpt_file_find(const dp_ckpt_file *f, uint32_t type);

/* ---- tensor records: name, dtype, dims, then zlib(byte-shuffled bytes) ---- */
typedef enum { DP_DTYPE_F32 = 0, DP_DTYPE_F16 = 1, DP_DTYPE_BF16 = 2 } dp_dtype;
const char *dp_dtype_name(dp_dtype t);
size_t dp_dtype_size(dp_dtype t);

/* How a tensor is stored. Shuffled bytes are deflated with zlib's run-length strategy
 * (Z_RLE: runs + Huffman coding): the mantissa planes are noise where LZ77 match search only
 * costs time, and on weight-like data RLE is both smaller and ~8x faster than level 6 (see
 * NOTES.md). Unshuffled bytes ("plain zlib") use the default strategy. A zero-initialised
 * codec is fp32, shuffled, Z_RLE. */
typedef struct {
    dp_dtype dtype;  /* stored precision (the data is always fp32 in memory) */
    int level;       /* zlib level 1..9; <= 0 = default (6) */
    bool no_shuffle; /* benchmarks: plain zlib on the element bytes */
    bool lz_search;  /* benchmarks: zlib's default strategy on shuffled bytes too */
} dp_tensor_codec;

/* Appends one record holding `numel` floats converted to c->dtype. */
dp_status dp_tensor_record_put(dp_bytes *out, const char *name, const int *dims, int ndim,
                               const float *data, size_t numel, const dp_tensor_codec *c,
                               dp_error *err);

typedef struct {
    char name[256];
    dp_dtype dtype;
    int ndim;
    int64_t dims[8];
    uint64_t numel;
    bool shuffled;
    uint64_t raw_len, comp_len;
    const uint8_t *comp; /* the compressed bytes, inside the payload */
} dp_tensor_record;

/* Reads a record's header (all sizes checked against the payload and limits; nothing is
 * decoded yet). `where` names the file and section in messages. */
dp_status dp_tensor_record_next(dp_cursor *c, dp_tensor_record *r, const char *where,
                                dp_error *err);
/* Decodes the record into `out` (r->numel floats), converting to fp32. */
dp_status dp_tensor_record_decode(const dp_tensor_record *r, float *out, const char *where,
                                  dp_error *err);

/* ---- codecs (also used directly by the tests and the benchmark) ---- */
void dp_byte_shuffle(const uint8_t *src, uint8_t *dst, size_t n_elems, size_t elem_size);
void dp_byte_unshuffle(const uint8_t *src, uint8_t *dst, size_t n_elems, size_t elem_size);
/* Round to nearest, ties to even; NaN stays NaN (quiet), overflow becomes +-inf. */
uint16_t dp_f32_to_f16(float f);
float dp_f16_to_f32(uint16_t h);
uint16_t dp_f32_to_bf16(float f);
float dp_bf16_to_f32(uint16_t h);
/* zlib deflate of n bytes into a malloc'ed buffer; rle selects the Z_RLE strategy. */
dp_status dp_zlib_compress(const void *src, size_t n, int level, bool rle, uint8_t **out,
                           size_t *out_len, dp_error *err);
/* Inflates exactly `raw_len` bytes into dst; fails unless the stream is complete, valid (its
 * Adler-32 matches) and uses all `n` input bytes. */
dp_status dp_zlib_decompress(const void *src, size_t n, void *dst, size_t raw_len,
                             const char *where, dp_error *err);

/* ---- checkpoint files in a run directory ---- */
/* "ckpt-000123.dpck" for a step. */
void dp_ckpt_file_name(int64_t step, char *out, size_t outsz);
/* Candidate files for resume, best first: the file `latest` names (when it exists), then
 * every ckpt-*.dpck by step, newest first, without repeats. Returns the count (<= max). */
int dp_ckpt_candidates(const char *dir, char (*paths)[512], int max);
/* Writes `latest` (atomically) naming `file_name`. */
dp_status dp_ckpt_write_latest(const char *dir, const char *file_name, dp_error *err);
/* Deletes ckpt-*.dpck files of steps below `current_step` beyond the newest keep_last - 1
 * of them (the current one counts as one kept file). Files of later steps (an abandoned
 * timeline) are left alone. keep_last <= 0 keeps everything. */
void dp_ckpt_prune_old(const char *dir, int64_t current_step, int keep_last);
/* Removes "ckpt-*.dpck.tmp-*" left by a crash during a write (never read by loading, but they
 * take space). One writer per run directory makes this safe at writer start. Returns the count. */
int dp_ckpt_remove_stale_tmp(const char *dir);

/* ---- background writer ----
 * The training thread hands over a job (a snapshot it already copied); one pthread encodes
 * and writes it, then updates `latest` and removes old files. One job in flight: submitting
 * while a write runs waits for it first (dp_ckpt_writer_busy lets the caller skip instead). */
typedef struct {
    void *ctx;
    /* fills the sections of the file (runs on the writer thread) */
    dp_status (*encode)(void *ctx, dp_ckpt_builder *b, dp_error *err);
    /* frees ctx (always called once, on success or failure) */
    void (*release)(void *ctx);
} dp_ckpt_job;

typedef struct dp_ckpt_writer dp_ckpt_writer;

dp_status dp_ckpt_writer_start(dp_ckpt_writer **out, const char *dir, int keep_last, dp_error *err);
/* Takes ownership of the job (released even when this fails). */
dp_status dp_ckpt_writer_submit(dp_ckpt_writer *w, int64_t step, dp_ckpt_job job, dp_error *err);
bool dp_ckpt_writer_busy(dp_ckpt_writer *w);
/* Waits for the job in flight; returns false when the last finished job failed (its error
 * in err, if given). */
bool dp_ckpt_writer_wait(dp_ckpt_writer *w, dp_error *err);
/* Returns (and clears) the error of a failed write not yet reported, for the trainer to
 * report and continue; false when there is none. Does not wait. */
bool dp_ckpt_writer_take_error(dp_ckpt_writer *w, dp_error *err);
/* Path of the last file written successfully ("" if none). */
void dp_ckpt_writer_last_path(dp_ckpt_writer *w, char *out, size_t outsz);
/* Waits for the job in flight, stops the thread and frees the writer (NULL is a no-op). */
void dp_ckpt_writer_stop(dp_ckpt_writer *w);

#endif
