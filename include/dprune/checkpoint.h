/* dprune checkpoint (model/): a network, its optimizer state and the run's state to and from
 * one checkpoint file (container and codecs: dprune/ckpt_file.h; layout:
 * docs/checkpoint-format.md).
 *
 * The architecture is stored as it is now -- every node's op, name, inputs, attributes and
 * output shape -- so a pruned model loads with nothing else: loading replays dp_add_* in node
 * order, checks each shape against the stored one, then fills parameters and buffers by name.
 *
 * Save (trainer, rank 0):  dp_checkpoint_submit(writer, step, &src, NULL, &err) at a step
 *                          boundary (copies, then a background thread compresses and writes);
 *                          dp_ckpt_writer_take_error() after later steps to report failures.
 * Resume:                  dp_checkpoint_load() or, for resume = auto,
 *                          dp_checkpoint_load_newest() (falls back past damaged files).
 * Inspect:                 dp_checkpoint_inspect(path, stdout, false, &err). */
#ifndef DPRUNE_CHECKPOINT_H
#define DPRUNE_CHECKPOINT_H

#include "dprune/ckpt_file.h"
#include "dprune/model.h"
#include <stdio.h>

/* Where the run is. The RNG streams are counter-based, keyed by (seed, epoch, global sample
 * index, purpose), so seed + epoch + position are the complete RNG and sampler state. */
typedef struct {
    int phase;                /* index of the phase in the run's phase list */
    char phase_name[32];      /* "train" | "prune" | "finetune" | ... */
    int round;                /* prune round within the phase (0 outside pruning) */
    int64_t epoch;            /* epoch within the phase */
    int64_t step_in_epoch;    /* optimizer steps done in that epoch */
    int64_t global_step;      /* optimizer steps since the run began */
    int64_t samples_in_epoch; /* global samples consumed in the epoch: the sampler position */
    double lr;                /* learning rate of the last step */
    uint64_t seed;            /* run.seed */
    int ranks, threads;       /* the run's shape when it was saved */
} dp_train_state;

#define DP_CKPT_MAX_KV 64
typedef struct {
    char key[64];
    char value[256];
} dp_ckpt_kv;

/* What to save; everything is borrowed. NULL / 0 members are left out of the file. */
typedef struct {
    const dp_model *model; /* required */
    const float *momentum; /* SGD momentum, model->n_param_floats in the param layout */
    bool momentum_started; /* dp_sgd.started */
    const dp_train_state *state;
    const char *config_text;
    const dp_ckpt_kv *provenance;
    int n_provenance;
    const void *prune_history; /* opaque bytes from prune/ */
    size_t prune_history_len;
    const char *metrics_json; /* metrics summary */
    const void *csgd_state;   /* opaque bytes from prune/ (C-SGD clusters), saved mid-phase */
    size_t csgd_state_len;
    const void *cip_state; /* opaque bytes from prune/ (CIP schedule step and mask), mid-phase */
    size_t cip_state_len;
} dp_checkpoint_src;

/* A checkpoint in memory: a loaded file, or a snapshot owning copies of everything. */
typedef struct {
    dp_model model;  /* loaded: rebuilt, with a gradient buffer; snapshot: no gradient buffer */
    float *momentum; /* NULL when absent; else model.n_param_floats in the param layout */
    bool momentum_started;
    bool has_state;
    dp_train_state state;
    char *config_text; /* NUL-terminated, NULL when absent */
    dp_ckpt_kv provenance[DP_CKPT_MAX_KV];
    int n_provenance;
    uint8_t *prune_history; /* NULL when absent */
    size_t prune_history_len;
    char *metrics_json;  /* NULL when absent */
    uint8_t *csgd_state; /* NULL when absent */
    size_t csgd_state_len;
    uint8_t *cip_state; /* NULL when absent */
    size_t cip_state_len;
    /* filled on load */
    uint16_t format_major, format_minor;
    dp_dtype param_dtype; /* stored precision of the parameters */
} dp_checkpoint;

void dp_checkpoint_free(dp_checkpoint *c);
/* A borrowed view of c (to save a loaded or snapshot checkpoint). */
dp_checkpoint_src dp_checkpoint_as_src(const dp_checkpoint *c);

/* Provenance every checkpoint should carry: dprune version and commit, config hash, zlib and
 * OpenBLAS versions, compiler, ranks x threads, seed, host and UTC time. Appends to kv
 * (returns the new count, at most max); the caller adds what only it knows (the MPI library
 * version from dist/). */
int dp_checkpoint_provenance(dp_ckpt_kv *kv, int n, int max, uint64_t config_hash, int ranks,
                             int threads, uint64_t seed);
/* Appends one key/value (value printf-style); returns the new count (unchanged when full). */
int dp_ckpt_kv_add(dp_ckpt_kv *kv, int n, int max, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
const char *dp_ckpt_kv_get(const dp_ckpt_kv *kv, int n, const char *key); /* NULL if absent */

/* ---- saving ---- */
/* Sections of the file. codec NULL = fp32, shuffle, zlib Z_RLE; its dtype applies to
 * parameters and buffers (fp16/bf16 for export); momentum is always fp32. */
dp_status dp_checkpoint_encode(const dp_checkpoint_src *src, const dp_tensor_codec *codec,
                               dp_ckpt_builder *b, dp_error *err);
/* Encodes and writes atomically, on the calling thread (export, tests). */
dp_status dp_checkpoint_save(const dp_checkpoint_src *src, const char *path,
                             const dp_tensor_codec *codec, dp_error *err);
/* Deep copy of src (the model without gradients): the stall of an asynchronous save. */
dp_status dp_checkpoint_snapshot(dp_checkpoint *out, const dp_checkpoint_src *src, dp_error *err);
/* Asynchronous save: waits for the write in flight (one snapshot in memory at a time), takes
 * a snapshot of src and hands it to the writer, which writes <dir>/ckpt-<step>.dpck, points
 * `latest` at it and keeps the last K. Errors of the write itself come later from
 * dp_ckpt_writer_take_error / dp_ckpt_writer_wait. codec is copied. */
dp_status dp_checkpoint_submit(dp_ckpt_writer *w, int64_t step, const dp_checkpoint_src *src,
                               const dp_tensor_codec *codec, dp_error *err);

/* ---- loading: never trusts the file; every failure is one clear DP_ERR_CHECKPOINT (or
 * DP_ERR_IO / DP_ERR_NOMEM) message naming the file and the problem ---- */
dp_status dp_checkpoint_load(dp_checkpoint *out, const char *path, dp_error *err);
dp_status dp_checkpoint_decode(dp_checkpoint *out, const dp_ckpt_file *f, dp_error *err);
/* resume = auto: tries the file `latest` names, then every ckpt-*.dpck newest first, and
 * loads the first that is whole. Each file skipped adds a line "skipping PATH: reason" to
 * warnings (for the log). The path loaded goes to path_out; when the directory holds no
 * checkpoint at all, returns DP_OK with path_out "" (a fresh start). When there are files but
 * none loads, returns DP_ERR_CHECKPOINT. */
dp_status dp_checkpoint_load_newest(dp_checkpoint *out, const char *dir, char *path_out,
                                    size_t path_sz, char *warnings, size_t warn_sz, dp_error *err);

/* `dprune inspect FILE`: format version, section table, provenance, training state, the
 * architecture (dp_model_summary), tensors, optimizer, prune-history size, metrics summary
 * and (show_config) the config text. Damage is reported after what could be printed. */
dp_status dp_checkpoint_inspect(const char *path, FILE *out, bool show_config, dp_error *err);

/* ---- model helpers (src/model/model_copy.c) ---- */
/* Deep copy of the graph, views, parameters and buffers; gradients only if with_grads. */
dp_status dp_model_copy(dp_model *dst, const dp_model *src, bool with_grads, dp_error *err);

#endif
