/* A model, its optimizer state and the run's state to and from checkpoint sections. Saving
 * encodes borrowed data (or a snapshot copy, for the background writer); loading rebuilds
 * the model from the stored architecture and fills its tensors by name, checking shapes. */
#include "ckpt_internal.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A length-field-checked section into a malloc'ed NUL-terminated string. */
static char *dup_text(const uint8_t *p, uint64_t n) {
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, p, (size_t)n);
    s[n] = 0;
    return s;
}

/* A malloc'ed copy of n opaque bytes (at least one byte allocated, so it is never NULL). */
static bool dup_blob(const void *src, size_t n, uint8_t **out, size_t *out_len) {
    *out = malloc(n ? n : 1);
    if (!*out) return false;
    if (n) memcpy(*out, src, n);
    *out_len = n;
    return true;
}

void dp_checkpoint_free(dp_checkpoint *c) {
    dp_model_free(&c->model);
    dp_free(c->momentum);
    free(c->config_text);
    free(c->prune_history);
    free(c->metrics_json);
    free(c->csgd_state);
    free(c->cip_state);
    memset(c, 0, sizeof *c);
}

dp_checkpoint_src dp_checkpoint_as_src(const dp_checkpoint *c) {
    return (dp_checkpoint_src){
        .model = &c->model,
        .momentum = c->momentum,
        .momentum_started = c->momentum_started,
        .state = c->has_state ? &c->state : NULL,
        .config_text = c->config_text,
        .provenance = c->provenance,
        .n_provenance = c->n_provenance,
        .prune_history = c->prune_history,
        .prune_history_len = c->prune_history_len,
        .metrics_json = c->metrics_json,
        .csgd_state = c->csgd_state,
        .csgd_state_len = c->csgd_state_len,
        .cip_state = c->cip_state,
        .cip_state_len = c->cip_state_len,
    };
}

/* ---- key/values ---- */

int dp_ckpt_kv_add(dp_ckpt_kv *kv, int n, int max, const char *key, const char *fmt, ...) {
    if (n >= max) return n;
    snprintf(kv[n].key, sizeof kv[n].key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kv[n].value, sizeof kv[n].value, fmt, ap);
    va_end(ap);
    return n + 1;
}

const char *dp_ckpt_kv_get(const dp_ckpt_kv *kv, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(kv[i].key, key)) return kv[i].value;
    return NULL;
}

/* ---- training state: typed key/values, so fields can be added without a format change ---- */
enum { KV_I64 = 1, KV_F64 = 2, KV_STR = 3 };

static void kv_i64(dp_bytes *b, const char *key, int64_t v) {
    dp_bytes_str(b, key);
    dp_bytes_u8(b, KV_I64);
    dp_bytes_i64(b, v);
}
static void kv_f64(dp_bytes *b, const char *key, double v) {
    dp_bytes_str(b, key);
    dp_bytes_u8(b, KV_F64);
    dp_bytes_f64(b, v);
}
static void kv_str(dp_bytes *b, const char *key, const char *v) {
    dp_bytes_str(b, key);
    dp_bytes_u8(b, KV_STR);
    dp_bytes_str(b, v);
}

static void encode_state(dp_bytes *b, const dp_train_state *s) {
    dp_bytes_u32(b, 11);
    kv_i64(b, "phase", s->phase);
    kv_str(b, "phase_name", s->phase_name);
    kv_i64(b, "round", s->round);
    kv_i64(b, "epoch", s->epoch);
    kv_i64(b, "step_in_epoch", s->step_in_epoch);
    kv_i64(b, "global_step", s->global_step);
    kv_i64(b, "samples_in_epoch", s->samples_in_epoch);
    kv_f64(b, "lr", s->lr);
    kv_i64(b, "seed", (int64_t)s->seed);
    kv_i64(b, "ranks", s->ranks);
    kv_i64(b, "threads", s->threads);
}

/* Unknown keys are skipped (written by a newer dprune); missing ones stay 0. */
static dp_status decode_state(dp_train_state *s, const dp_ckpt_section *sec, const char *where,
                              dp_error *err) {
    memset(s, 0, sizeof *s);
    dp_cursor c = dp_cursor_of(sec->data, sec->length);
    uint32_t n = dp_cursor_u32(&c);
    for (uint32_t i = 0; i < n && !c.bad; i++) {
        char key[64], str[256] = "";
        int64_t iv = 0;
        double fv = 0;
        if (!dp_cursor_str(&c, key, sizeof key)) break;
        uint8_t type = dp_cursor_u8(&c);
        if (type == KV_I64)
            iv = dp_cursor_i64(&c);
        else if (type == KV_F64)
            fv = dp_cursor_f64(&c);
        else if (type == KV_STR)
            dp_cursor_str(&c, str, sizeof str);
        else
            return dp_fail(err, DP_ERR_CHECKPOINT, "%s: key '%s' has unknown value type %u", where,
                           key, type);
        if (c.bad) break;
        if (!strcmp(key, "phase"))
            s->phase = (int)iv;
        else if (!strcmp(key, "phase_name"))
            snprintf(s->phase_name, sizeof s->phase_name, "%.31s", str);
        else if (!strcmp(key, "round"))
            s->round = (int)iv;
        else if (!strcmp(key, "epoch"))
            s->epoch = iv;
        else if (!strcmp(key, "step_in_epoch"))
            s->step_in_epoch = iv;
        else if (!strcmp(key, "global_step"))
            s->global_step = iv;
        else if (!strcmp(key, "samples_in_epoch"))
            s->samples_in_epoch = iv;
        else if (!strcmp(key, "lr"))
            s->lr = fv;
        else if (!strcmp(key, "seed"))
            s->seed = (uint64_t)iv;
        else if (!strcmp(key, "ranks"))
            s->ranks = (int)iv;
        else if (!strcmp(key, "threads"))
            s->threads = (int)iv;
    }
    if (c.bad) return dp_fail(err, DP_ERR_CHECKPOINT, "%s: cut short", where);
    return DP_OK;
}

/* ---- encoding ---- */

static dp_status check_unique_names(const dp_tensor_view *v, int n, dp_error *err) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(v[i].name, v[j].name))
                return dp_fail(err, DP_ERR_ARG,
                               "checkpoint: two tensors are named '%s' (layer names must be "
                               "unique to be saved)",
                               v[i].name);
    return DP_OK;
}

static dp_status put_tensors(dp_bytes *b, const dp_tensor_view *v, int n, const float *base,
                             const dp_tensor_codec *codec, dp_error *err) {
    dp_bytes_u32(b, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        dp_status st = dp_tensor_record_put(b, v[i].name, v[i].dims, v[i].ndim, base + v[i].offset,
                                            v[i].numel, codec, err);
        if (st != DP_OK) return st;
    }
    return DP_OK;
}

#define ADD_SECTION(var, type)                                                                     \
    dp_bytes *var = dp_ckpt_builder_add(b, type, 0);                                               \
    if (!var) return dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory");

dp_status dp_checkpoint_encode(const dp_checkpoint_src *src, const dp_tensor_codec *codec,
                               dp_ckpt_builder *b, dp_error *err) {
    dp_tensor_codec def = {0};
    if (!codec) codec = &def;
    const dp_model *m = src->model;
    if (!m || !m->nodes || !m->param_data)
        return dp_fail(err, DP_ERR_ARG, "checkpoint: no model to save");
    dp_status st = check_unique_names(m->params, m->n_params, err);
    if (st == DP_OK) st = check_unique_names(m->buffers, m->n_buffers, err);
    if (st != DP_OK) return st;
    if (src->config_text) {
        ADD_SECTION(s, DP_SEC_CONFIG);
        dp_bytes_put(s, src->config_text, strlen(src->config_text));
    }
    if (src->n_provenance > 0) {
        ADD_SECTION(s, DP_SEC_PROVENANCE);
        dp_bytes_u32(s, (uint32_t)src->n_provenance);
        for (int i = 0; i < src->n_provenance; i++) {
            dp_bytes_str(s, src->provenance[i].key);
            dp_bytes_str(s, src->provenance[i].value);
        }
    }
    if (src->state) {
        ADD_SECTION(s, DP_SEC_TRAIN_STATE);
        encode_state(s, src->state);
    }
    {
        ADD_SECTION(s, DP_SEC_ARCH);
        ckpt_arch_encode(s, m);
    }
    {
        ADD_SECTION(s, DP_SEC_PARAMS);
        if ((st = put_tensors(s, m->params, m->n_params, m->param_data, codec, err))) return st;
    }
    {
        ADD_SECTION(s, DP_SEC_BUFFERS);
        if ((st = put_tensors(s, m->buffers, m->n_buffers, m->buffer_data, codec, err))) return st;
    }
    if (src->momentum) {
        /* optimizer state stays fp32 whatever the export precision */
        dp_tensor_codec mc = *codec;
        mc.dtype = DP_DTYPE_F32;
        ADD_SECTION(s, DP_SEC_OPTIMIZER);
        dp_bytes_u8(s, src->momentum_started);
        if ((st = put_tensors(s, m->params, m->n_params, src->momentum, &mc, err))) return st;
    }
    if (src->prune_history) {
        ADD_SECTION(s, DP_SEC_PRUNE_HISTORY);
        dp_bytes_put(s, src->prune_history, src->prune_history_len);
    }
    if (src->metrics_json) {
        ADD_SECTION(s, DP_SEC_METRICS);
        dp_bytes_put(s, src->metrics_json, strlen(src->metrics_json));
    }
    if (src->csgd_state) {
        ADD_SECTION(s, DP_SEC_CSGD);
        dp_bytes_put(s, src->csgd_state, src->csgd_state_len);
    }
    if (src->cip_state) {
        ADD_SECTION(s, DP_SEC_CIP);
        dp_bytes_put(s, src->cip_state, src->cip_state_len);
    }
    return DP_OK;
}

dp_status dp_checkpoint_save(const dp_checkpoint_src *src, const char *path,
                             const dp_tensor_codec *codec, dp_error *err) {
    dp_ckpt_builder b = {0};
    dp_status st = dp_checkpoint_encode(src, codec, &b, err);
    if (st == DP_OK) st = dp_ckpt_builder_write(&b, path, err);
    dp_ckpt_builder_free(&b);
    return st;
}

/* ---- snapshots and the background writer ---- */

dp_status dp_checkpoint_snapshot(dp_checkpoint *out, const dp_checkpoint_src *src, dp_error *err) {
    memset(out, 0, sizeof *out);
    if (!src->model) return dp_fail(err, DP_ERR_ARG, "checkpoint: no model to snapshot");
    dp_status st = dp_model_copy(&out->model, src->model, false, err);
    if (st != DP_OK) return st;
    size_t n = src->model->n_param_floats;
    bool ok = true;
    if (src->momentum) {
        out->momentum = aligned_alloc(64, ((n ? n : 16) * sizeof(float) + 63) & ~(size_t)63);
        if ((ok = out->momentum != NULL)) memcpy(out->momentum, src->momentum, n * sizeof(float));
    }
    out->momentum_started = src->momentum_started;
    if (src->state) out->has_state = true, out->state = *src->state;
    if (ok && src->config_text)
        ok = (out->config_text =
                  dup_text((const uint8_t *)src->config_text, strlen(src->config_text))) != NULL;
    out->n_provenance = src->n_provenance < DP_CKPT_MAX_KV ? src->n_provenance : DP_CKPT_MAX_KV;
    if (out->n_provenance > 0)
        memcpy(out->provenance, src->provenance, sizeof(dp_ckpt_kv) * (size_t)out->n_provenance);
    if (ok && src->prune_history)
        ok = dup_blob(src->prune_history, src->prune_history_len, &out->prune_history,
                      &out->prune_history_len);
    if (ok && src->csgd_state)
        ok = dup_blob(src->csgd_state, src->csgd_state_len, &out->csgd_state, &out->csgd_state_len);
    if (ok && src->cip_state)
        ok = dup_blob(src->cip_state, src->cip_state_len, &out->cip_state, &out->cip_state_len);
    if (ok && src->metrics_json)
        ok = (out->metrics_json =
                  dup_text((const uint8_t *)src->metrics_json, strlen(src->metrics_json))) != NULL;
    if (!ok) {
        dp_checkpoint_free(out);
        return dp_fail(err, DP_ERR_NOMEM, "checkpoint snapshot: out of memory");
    }
    return DP_OK;
}

typedef struct {
    dp_checkpoint snap;
    dp_tensor_codec codec;
} snapshot_job;

static dp_status job_encode(void *ctx, dp_ckpt_builder *b, dp_error *err) {
    snapshot_job *j = ctx;
    dp_checkpoint_src src = dp_checkpoint_as_src(&j->snap);
    return dp_checkpoint_encode(&src, &j->codec, b, err);
}

static void job_release(void *ctx) {
    snapshot_job *j = ctx;
    dp_checkpoint_free(&j->snap);
    free(j);
}

dp_status dp_checkpoint_submit(dp_ckpt_writer *w, int64_t step, const dp_checkpoint_src *src,
                               const dp_tensor_codec *codec, dp_error *err) {
    if (!w) return dp_fail(err, DP_ERR_ARG, "checkpoint: no writer");
    dp_ckpt_writer_wait(w, NULL); /* one snapshot in memory at a time; errors stay pending */
    snapshot_job *j = calloc(1, sizeof *j);
    if (!j) return dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory");
    j->codec = codec ? *codec : (dp_tensor_codec){0};
    dp_status st = dp_checkpoint_snapshot(&j->snap, src, err);
    if (st != DP_OK) {
        free(j);
        return st;
    }
    return dp_ckpt_writer_submit(w, step, (dp_ckpt_job){j, job_encode, job_release}, err);
}

/* ---- decoding ---- */

/* Fills every view from the section's records, matching by name and shape; each tensor must
 * appear exactly once. */
static dp_status fill_tensors(dp_cursor *c, const dp_tensor_view *views, int n_views, float *base,
                              const char *where, dp_dtype *dtype, dp_error *err) {
    bool *filled = calloc((size_t)n_views + 1, sizeof(bool));
    if (!filled) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", where);
    dp_status st = DP_OK;
    uint32_t n = dp_cursor_u32(c);
    if (c->bad) st = dp_fail(err, DP_ERR_CHECKPOINT, "%s: cut short", where);
    for (uint32_t i = 0; i < n && st == DP_OK; i++) {
        dp_tensor_record r;
        if ((st = dp_tensor_record_next(c, &r, where, err)) != DP_OK) break;
        int v = -1;
        for (int k = 0; k < n_views && v < 0; k++)
            if (!strcmp(views[k].name, r.name)) v = k;
        if (v < 0) {
            st = dp_fail(err, DP_ERR_CHECKPOINT,
                         "%s: tensor '%s' belongs to no layer of the stored architecture", where,
                         r.name);
            break;
        }
        bool same = r.ndim == views[v].ndim;
        for (int d = 0; same && d < r.ndim; d++) same = r.dims[d] == views[v].dims[d];
        if (!same || filled[v]) {
            st = dp_fail(err, DP_ERR_CHECKPOINT, "%s: tensor '%s' %s", where, r.name,
                         filled[v] ? "appears twice" : "has a shape its layer does not have");
            break;
        }
        st = dp_tensor_record_decode(&r, base + views[v].offset, where, err);
        filled[v] = true;
        if (dtype) *dtype = r.dtype;
    }
    for (int k = 0; k < n_views && st == DP_OK; k++)
        if (!filled[k])
            st =
                dp_fail(err, DP_ERR_CHECKPOINT, "%s: tensor '%s' is missing", where, views[k].name);
    free(filled);
    return st;
}

static dp_status decode_model(dp_checkpoint *out, const dp_ckpt_file *f, dp_error *err) {
    char where[700];
    const dp_ckpt_section *arch = dp_ckpt_file_find(f, DP_SEC_ARCH);
    const dp_ckpt_section *params = dp_ckpt_file_find(f, DP_SEC_PARAMS);
    const dp_ckpt_section *buffers = dp_ckpt_file_find(f, DP_SEC_BUFFERS);
    if (!arch || !params || !buffers)
        return dp_fail(err, DP_ERR_CHECKPOINT, "checkpoint %s: no %s section (it holds no model)",
                       f->path,
                       !arch     ? "architecture"
                       : !params ? "parameter"
                                 : "buffer");
    /* deflate stores at most ~1032 bytes per byte and elements are >= 2 bytes */
    uint64_t max_floats = 600 * (params->length + buffers->length) + 1024;
    snprintf(where, sizeof where, "checkpoint %s: section 'arch'", f->path);
    dp_status st = ckpt_arch_decode(&out->model, arch->data, arch->length, max_floats, where, err);
    if (st != DP_OK) return st;
    dp_model *m = &out->model;
    snprintf(where, sizeof where, "checkpoint %s: section 'params'", f->path);
    dp_cursor c = dp_cursor_of(params->data, params->length);
    st = fill_tensors(&c, m->params, m->n_params, m->param_data, where, &out->param_dtype, err);
    if (st != DP_OK) return st;
    snprintf(where, sizeof where, "checkpoint %s: section 'buffers'", f->path);
    c = dp_cursor_of(buffers->data, buffers->length);
    st = fill_tensors(&c, m->buffers, m->n_buffers, m->buffer_data, where, NULL, err);
    if (st != DP_OK) return st;
    const dp_ckpt_section *opt = dp_ckpt_file_find(f, DP_SEC_OPTIMIZER);
    if (opt) {
        snprintf(where, sizeof where, "checkpoint %s: section 'optimizer'", f->path);
        out->momentum = dp_alloc_floats(m->n_param_floats);
        if (!out->momentum) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", where);
        c = dp_cursor_of(opt->data, opt->length);
        out->momentum_started = dp_cursor_u8(&c) != 0;
        st = fill_tensors(&c, m->params, m->n_params, out->momentum, where, NULL, err);
    }
    return st;
}

dp_status dp_checkpoint_decode(dp_checkpoint *out, const dp_ckpt_file *f, dp_error *err) {
    memset(out, 0, sizeof *out);
    out->format_major = f->major;
    out->format_minor = f->minor;
    char where[700];
    dp_status st = decode_model(out, f, err);
    const dp_ckpt_section *s;
    if (st == DP_OK && (s = dp_ckpt_file_find(f, DP_SEC_CONFIG)) &&
        !(out->config_text = dup_text(s->data, s->length)))
        st = dp_fail(err, DP_ERR_NOMEM, "checkpoint %s: out of memory", f->path);
    if (st == DP_OK && (s = dp_ckpt_file_find(f, DP_SEC_PROVENANCE))) {
        dp_cursor c = dp_cursor_of(s->data, s->length);
        uint32_t n = dp_cursor_u32(&c);
        for (uint32_t i = 0; i < n && !c.bad; i++) {
            dp_ckpt_kv kv;
            if (dp_cursor_str(&c, kv.key, sizeof kv.key) &&
                dp_cursor_str(&c, kv.value, sizeof kv.value) && out->n_provenance < DP_CKPT_MAX_KV)
                out->provenance[out->n_provenance++] = kv;
        }
        if (c.bad)
            st = dp_fail(err, DP_ERR_CHECKPOINT,
                         "checkpoint %s: section 'provenance' is cut short or holds an absurd "
                         "entry",
                         f->path);
    }
    if (st == DP_OK && (s = dp_ckpt_file_find(f, DP_SEC_TRAIN_STATE))) {
        snprintf(where, sizeof where, "checkpoint %s: section 'train_state'", f->path);
        st = decode_state(&out->state, s, where, err);
        out->has_state = st == DP_OK;
    }
    if (st == DP_OK && (s = dp_ckpt_file_find(f, DP_SEC_PRUNE_HISTORY)) &&
        !dup_blob(s->data, (size_t)s->length, &out->prune_history, &out->prune_history_len))
        st = dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory");
    if (st == DP_OK && (s = dp_ckpt_file_find(f, DP_SEC_CSGD)) &&
        !dup_blob(s->data, (size_t)s->length, &out->csgd_state, &out->csgd_state_len))
        st = dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory");
    if (st == DP_OK && (s = dp_ckpt_file_find(f, DP_SEC_CIP)) &&
        !dup_blob(s->data, (size_t)s->length, &out->cip_state, &out->cip_state_len))
        st = dp_fail(err, DP_ERR_NOMEM, "checkpoint: out of memory");
    if (st == DP_OK && (s = dp_ckpt_file_find(f, DP_SEC_METRICS)) &&
        !(out->metrics_json = dup_text(s->data, s->length)))
        st = dp_fail(err, DP_ERR_NOMEM, "checkpoint %s: out of memory", f->path);
    if (st != DP_OK) dp_checkpoint_free(out);
    return st;
}

dp_status dp_checkpoint_load(dp_checkpoint *out, const char *path, dp_error *err) {
    memset(out, 0, sizeof *out);
    dp_ckpt_file f;
    dp_status st = dp_ckpt_file_read(&f, path, err);
    if (st == DP_OK) st = dp_checkpoint_decode(out, &f, err);
    dp_ckpt_file_free(&f);
    return st;
}

dp_status dp_checkpoint_load_newest(dp_checkpoint *out, const char *dir, char *path_out,
                                    size_t path_sz, char *warnings, size_t warn_sz, dp_error *err) {
    memset(out, 0, sizeof *out);
    if (path_sz) path_out[0] = 0;
    if (warn_sz) warnings[0] = 0;
    enum { MAX_CANDIDATES = 256 };
    char(*paths)[512] = malloc(sizeof *paths * MAX_CANDIDATES);
    if (!paths) return dp_fail(err, DP_ERR_NOMEM, "checkpoint search: out of memory");
    int n = dp_ckpt_candidates(dir, paths, MAX_CANDIDATES);
    dp_status st = DP_OK;
    dp_error first = {0}; /* the newest file's problem, for the message when all fail */
    for (int i = 0; i < n; i++) {
        dp_error e = {0};
        st = dp_checkpoint_load(out, paths[i], &e);
        if (st == DP_OK) {
            snprintf(path_out, path_sz, "%s", paths[i]);
            break;
        }
        if (i == 0) first = e;
        size_t used = warn_sz ? strlen(warnings) : 0;
        if (used < warn_sz) snprintf(warnings + used, warn_sz - used, "skipping %s\n", e.msg);
        if (i == n - 1)
            st = dp_fail(err, DP_ERR_CHECKPOINT,
                         "no usable checkpoint in %s: all %d are damaged or unreadable (the "
                         "newest: %s)",
                         dir, n, first.msg);
    }
    free(paths);
    return st;
}
