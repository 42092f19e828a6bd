/* `dprune inspect FILE`: what a checkpoint holds, readable by a person. The container is
 * printed first, so a damaged file still shows its sections before the error. */
#include "dprune/checkpoint.h"
#include <inttypes.h>
#include <string.h>

static void print_sections(const dp_ckpt_file *f, FILE *out) {
    fprintf(out, "file:     %s (%zu bytes, format %u.%u)\n", f->path, f->size, f->major, f->minor);
    fprintf(out, "sections:\n  %-3s %-14s %12s %12s  %-10s %s\n", "#", "type", "offset", "bytes",
            "crc32", "flags");
    for (int i = 0; i < f->n_sec; i++) {
        const dp_ckpt_section *s = &f->sec[i];
        fprintf(out, "  %-3d %-14s %12" PRIu64 " %12" PRIu64 "  0x%08x %s\n", i,
                dp_ckpt_section_name(s->type), s->offset, s->length, s->crc,
                s->flags & DP_SECF_REQUIRED ? "required" : "-");
    }
}

/* Tensor count and stored dtype of a tensor section (records are walked, not decoded). */
static void print_tensor_stats(const dp_ckpt_file *f, uint32_t type, bool skip_flag, FILE *out) {
    const dp_ckpt_section *s = dp_ckpt_file_find(f, type);
    if (!s) return;
    dp_cursor c = dp_cursor_of(s->data, s->length);
    if (skip_flag) dp_cursor_u8(&c);
    uint32_t n = dp_cursor_u32(&c);
    uint64_t raw = 0, comp = 0, elems = 0;
    int counts[3] = {0, 0, 0};
    for (uint32_t i = 0; i < n; i++) {
        dp_tensor_record r;
        if (dp_tensor_record_next(&c, &r, "", NULL) != DP_OK) break;
        raw += r.raw_len, comp += r.comp_len, elems += r.numel;
        counts[r.dtype]++;
    }
    fprintf(out,
            "  %-10s %4u tensors, %12" PRIu64 " elements, %12" PRIu64 " -> %12" PRIu64
            " bytes (%.3f of raw; f32 %d, f16 %d, bf16 %d)\n",
            dp_ckpt_section_name(type), n, elems, raw, comp, raw ? (double)comp / (double)raw : 0.0,
            counts[0], counts[1], counts[2]);
}

dp_status dp_checkpoint_inspect(const char *path, FILE *out, bool show_config, dp_error *err) {
    dp_ckpt_file f;
    dp_status st = dp_ckpt_file_read(&f, path, err);
    if (st != DP_OK) return st;
    print_sections(&f, out);
    dp_checkpoint c;
    st = dp_checkpoint_decode(&c, &f, err);
    if (st != DP_OK) {
        dp_ckpt_file_free(&f);
        return st;
    }
    fprintf(out, "\nprovenance:\n");
    for (int i = 0; i < c.n_provenance; i++)
        fprintf(out, "  %-16s %s\n", c.provenance[i].key, c.provenance[i].value);
    if (c.has_state) {
        const dp_train_state *s = &c.state;
        fprintf(out,
                "\ntraining state:\n  phase %d (%s), round %d, epoch %" PRId64 ", step %" PRId64
                " in epoch (%" PRId64 " samples), global step %" PRId64 "\n  lr %.6g, seed %" PRIu64
                ", saved by %d ranks x %d threads\n",
                s->phase, s->phase_name[0] ? s->phase_name : "?", s->round, s->epoch,
                s->step_in_epoch, s->samples_in_epoch, s->global_step, s->lr, s->seed, s->ranks,
                s->threads);
    } else {
        fprintf(out, "\ntraining state: none\n");
    }
    fprintf(out, "\ntensors:\n");
    print_tensor_stats(&f, DP_SEC_PARAMS, false, out);
    print_tensor_stats(&f, DP_SEC_BUFFERS, false, out);
    print_tensor_stats(&f, DP_SEC_OPTIMIZER, true, out);
    fprintf(out, "  state:     %s\n",
            c.momentum
                ? (c.momentum_started ? "SGD momentum (started)" : "SGD momentum (not started)")
                : "none");
    /* fingerprints of the values (FNV-1a over the float bytes): two runs hold the same model
     * and optimizer state exactly when these agree, whatever else the files record */
    fprintf(
        out, "  fingerprint: params %016llx  buffers %016llx  momentum %016llx\n",
        (unsigned long long)dp_fnv1a(c.model.param_data, sizeof(float) * c.model.n_param_floats),
        (unsigned long long)dp_fnv1a(c.model.buffer_data, sizeof(float) * c.model.n_buffer_floats),
        (unsigned long long)(c.momentum
                                 ? dp_fnv1a(c.momentum, sizeof(float) * c.model.n_param_floats)
                                 : 0));
    fprintf(out, "\narchitecture: %s, input %dx%dx%d, %d classes\n", c.model.arch, c.model.in_c,
            c.model.in_h, c.model.in_w, c.model.num_classes);
    dp_model_summary(&c.model, out);
    fprintf(out, "\nprune history: ");
    if (c.prune_history)
        fprintf(out, "%zu bytes\n", c.prune_history_len);
    else
        fprintf(out, "none\n");
    if (c.csgd_state)
        fprintf(out, "C-SGD state: %zu bytes (saved inside a C-SGD phase)\n", c.csgd_state_len);
    if (c.cip_state)
        fprintf(out, "CIP state: %zu bytes (saved inside a CIP schedule)\n", c.cip_state_len);
    fprintf(out, "metrics summary: %s\n", c.metrics_json ? c.metrics_json : "none");
    if (c.config_text) {
        fprintf(out, "config: %zu bytes%s\n", strlen(c.config_text),
                show_config ? ":" : " (show with the config option)");
        if (show_config) fprintf(out, "%s\n", c.config_text);
    } else {
        fprintf(out, "config: none\n");
    }
    dp_checkpoint_free(&c);
    dp_ckpt_file_free(&f);
    return DP_OK;
}
