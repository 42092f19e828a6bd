/* CorrTopo's fold as bytes: rank 0 computes it from the calibration statistics and broadcasts
 * it with the plan, so every rank folds the same numbers. Format: "DPFOLD01", i32 entries, per
 * entry i32 group, node, nk, nd, P, u8 has_B, u8 has_a_pos, [nk * nd] f64 B, [nd] f64 a,
 * [nd * P] f64 a_pos; then the FNV-1a (u64) of everything before it. */
#include "dprune/ckpt_file.h"
#include "dprune/prune.h"
#include <stdlib.h>
#include <string.h>

static const char fold_magic[8] = {'D', 'P', 'F', 'O', 'L', 'D', '0', '1'};
#define FOLD_MAX_CHANNELS (1 << 24)

dp_status dp_corr_fold_serialize(const dp_corr_fold *f, uint8_t **buf, size_t *len, dp_error *err) {
    dp_bytes b = {0};
    dp_bytes_put(&b, fold_magic, sizeof fold_magic);
    dp_bytes_i32(&b, f->n_maps);
    for (int i = 0; i < f->n_maps; i++) {
        const dp_corr_fold_map *e = &f->maps[i];
        dp_bytes_i32(&b, e->group);
        dp_bytes_i32(&b, e->node);
        dp_bytes_i32(&b, e->nk);
        dp_bytes_i32(&b, e->nd);
        dp_bytes_i32(&b, e->P);
        dp_bytes_u8(&b, e->B != NULL);
        dp_bytes_u8(&b, e->a_pos != NULL);
        for (size_t j = 0; e->B && j < (size_t)e->nk * e->nd; j++) dp_bytes_f64(&b, e->B[j]);
        for (int d = 0; d < e->nd; d++) dp_bytes_f64(&b, e->a[d]);
        for (size_t j = 0; e->a_pos && j < (size_t)e->nd * e->P; j++) dp_bytes_f64(&b, e->a_pos[j]);
    }
    dp_bytes_u64(&b, b.failed ? 0 : dp_fnv1a(b.data, b.len));
    if (b.failed) {
        dp_bytes_free(&b);
        return dp_fail(err, DP_ERR_NOMEM, "corr fold: out of memory serializing");
    }
    *buf = b.data, *len = b.len;
    return DP_OK;
}

/* One entry from the cursor; false (entry freed) when the bytes do not hold it. */
static bool read_entry(dp_cursor *c, dp_corr_fold_map *e) {
    e->group = dp_cursor_i32(c), e->node = dp_cursor_i32(c);
    e->nk = dp_cursor_i32(c), e->nd = dp_cursor_i32(c), e->P = dp_cursor_i32(c);
    bool has_B = dp_cursor_u8(c) != 0, has_pos = dp_cursor_u8(c) != 0;
    if (c->bad || e->group < 0 || e->node < 0 || e->nk < 1 || e->nd < 1 || e->P < 1 ||
        e->nk > FOLD_MAX_CHANNELS || e->nd > FOLD_MAX_CHANNELS || e->P > FOLD_MAX_CHANNELS)
        return false;
    size_t nb = has_B ? (size_t)e->nk * e->nd : 0, np = has_pos ? (size_t)e->nd * e->P : 0;
    if ((nb + (size_t)e->nd + np) * 8 > dp_cursor_left(c)) return false;
    e->a = malloc(sizeof(double) * (size_t)e->nd);
    e->B = has_B ? malloc(sizeof(double) * nb) : NULL;
    e->a_pos = has_pos ? malloc(sizeof(double) * np) : NULL;
    if (!e->a || (has_B && !e->B) || (has_pos && !e->a_pos)) return false;
    for (size_t j = 0; j < nb; j++) e->B[j] = dp_cursor_f64(c);
    for (int d = 0; d < e->nd; d++) e->a[d] = dp_cursor_f64(c);
    for (size_t j = 0; j < np; j++) e->a_pos[j] = dp_cursor_f64(c);
    return !c->bad;
}

dp_status dp_corr_fold_deserialize(const uint8_t *buf, size_t len, dp_corr_fold *f, dp_error *err) {
    memset(f, 0, sizeof *f);
    if (len < sizeof fold_magic + 12 || memcmp(buf, fold_magic, sizeof fold_magic) != 0)
        return dp_fail(err, DP_ERR_DATA, "corr fold: not a serialized fold (%zu bytes)", len);
    uint64_t sum;
    memcpy(&sum, buf + len - 8, 8);
    if (dp_fnv1a(buf, len - 8) != sum)
        return dp_fail(err, DP_ERR_DATA, "corr fold: checksum mismatch (damaged buffer)");
    dp_cursor c = dp_cursor_of(buf + sizeof fold_magic, len - 8 - sizeof fold_magic);
    int n = dp_cursor_i32(&c);
    /* an entry takes at least 30 bytes */
    if (c.bad || n < 0 || (size_t)n > dp_cursor_left(&c) / 30)
        return dp_fail(err, DP_ERR_DATA, "corr fold: bad entry count %d", n);
    f->maps = calloc((size_t)(n > 0 ? n : 1), sizeof *f->maps);
    if (!f->maps) return dp_fail(err, DP_ERR_NOMEM, "corr fold: out of memory");
    for (int i = 0; i < n; i++) {
        f->n_maps = i + 1; /* so that dp_corr_fold_free releases a partial entry */
        if (!read_entry(&c, &f->maps[i])) {
            dp_corr_fold_free(f);
            return dp_fail(err, DP_ERR_DATA, "corr fold: entry %d damaged or cut short", i);
        }
    }
    if (dp_cursor_left(&c) != 0) {
        dp_corr_fold_free(f);
        return dp_fail(err, DP_ERR_DATA, "corr fold: %zu stray bytes", dp_cursor_left(&c));
    }
    return DP_OK;
}
