/* The file side of the PyTorch bridge (tools/dprune_torch.py): a checkpoint is dumped as an
 * architecture description (JSON) plus one raw little-endian float32 file per tensor, and a
 * directory of such tensors is imported into a configured model. dprune keeps the checkpoint
 * format to itself; the Python side only reads JSON and raw floats. */
#include "app.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static dp_status write_floats(const char *dir, const char *name, const float *x, size_t n,
                              dp_error *err) {
    char path[DP_PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return dp_fail(err, DP_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    size_t w = fwrite(x, sizeof(float), n, f);
    int bad = fclose(f) != 0 || w != n;
    return bad ? dp_fail(err, DP_ERR_IO, "cannot write %s (disk full?)", path) : DP_OK;
}

static dp_status read_floats(const char *dir, const char *name, float *x, size_t n, dp_error *err) {
    char path[DP_PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return dp_fail(err, DP_ERR_IO, "import: missing tensor file %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    dp_status st = DP_OK;
    if (size != (long)(n * sizeof(float)))
        st = dp_fail(err, DP_ERR_DATA, "import: %s holds %ld bytes, the model's '%s' needs %zu",
                     path, size, name, n * sizeof(float));
    else if (fread(x, sizeof(float), n, f) != n)
        st = dp_fail(err, DP_ERR_IO, "import: cannot read %s", path);
    fclose(f);
    return st;
}

static void write_views(FILE *j, const dp_tensor_view *v, int n) {
    for (int i = 0; i < n; i++) {
        fprintf(j, "%s\n    {\"name\": \"%s\", \"dims\": [", i ? "," : "", v[i].name);
        for (int d = 0; d < v[i].ndim; d++) fprintf(j, "%s%d", d ? ", " : "", v[i].dims[d]);
        fprintf(j, "]}");
    }
}

int app_cmd_dump(const char *path, const char *dir) {
    dp_error err = {0};
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    dp_status st = dp_checkpoint_load(&ck, path, &err);
    if (st == DP_OK && mkdir(dir, 0777) != 0 && errno != EEXIST)
        st = dp_fail(&err, DP_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    const dp_model *m = &ck.model;
    for (int p = 0; p < m->n_params && st == DP_OK; p++)
        st = write_floats(dir, m->params[p].name, dp_param_ptr(m, p), m->params[p].numel, &err);
    for (int b = 0; b < m->n_buffers && st == DP_OK; b++)
        st = write_floats(dir, m->buffers[b].name, dp_buffer_ptr(m, b), m->buffers[b].numel, &err);
    char jpath[DP_PATH_MAX + 32];
    snprintf(jpath, sizeof jpath, "%s/arch.json", dir);
    FILE *j = st == DP_OK ? fopen(jpath, "w") : NULL;
    if (st == DP_OK && !j) st = dp_fail(&err, DP_ERR_IO, "cannot write %s", jpath);
    if (st == DP_OK) {
        fprintf(j, "{\n  \"arch\": \"%s\", \"input\": [%d, %d, %d], \"classes\": %d,\n", m->arch,
                m->in_c, m->in_h, m->in_w, m->num_classes);
        fprintf(j, "  \"nodes\": [");
        for (int i = 0; i < m->n_nodes; i++) {
            const dp_node *n = &m->nodes[i];
            fprintf(j, "%s\n    {\"name\": \"%s\", \"op\": \"%s\", \"in\": [", i ? "," : "",
                    n->name, dp_op_name(n->op));
            for (int k = 0; k < n->n_in; k++) fprintf(j, "%s%d", k ? ", " : "", n->in[k]);
            fprintf(j, "], \"shape\": [%d, %d, %d]", n->c, n->h, n->w);
            if (n->op == DP_OP_CONV)
                fprintf(j, ", \"k\": %d, \"stride\": %d, \"pad\": %d, \"bias\": %s", n->a.conv.k,
                        n->a.conv.stride, n->a.conv.pad, n->a.conv.bias ? "true" : "false");
            else if (n->op == DP_OP_MAXPOOL || n->op == DP_OP_AVGPOOL)
                fprintf(j, ", \"k\": %d, \"stride\": %d, \"pad\": %d", n->a.pool.k,
                        n->a.pool.stride, n->a.pool.pad);
            else if (n->op == DP_OP_LINEAR)
                fprintf(j, ", \"bias\": %s", n->a.linear.bias ? "true" : "false");
            else if (n->op == DP_OP_BN)
                fprintf(j, ", \"eps\": %.9g, \"momentum\": %.9g", n->a.bn.eps, n->a.bn.momentum);
            else if (n->op == DP_OP_DROPOUT)
                fprintf(j, ", \"p\": %.9g", n->a.dropout.p);
            else if (n->op == DP_OP_SHORTCUT_PAD)
                fprintf(j, ", \"stride\": %d, \"pad_before\": %d", n->a.shortcut.stride,
                        n->a.shortcut.pad_before);
            fprintf(j, "}");
        }
        fprintf(j, "\n  ],\n  \"params\": [");
        write_views(j, m->params, m->n_params);
        fprintf(j, "\n  ],\n  \"buffers\": [");
        write_views(j, m->buffers, m->n_buffers);
        fprintf(j, "\n  ]\n}\n");
        if (fclose(j) != 0) st = dp_fail(&err, DP_ERR_IO, "cannot write %s", jpath);
    }
    if (st == DP_OK)
        printf("%s -> %s (arch.json + %d tensors)\n", path, dir, m->n_params + m->n_buffers);
    else
        fprintf(stderr, "dprune: error: %s\n", err.msg);
    dp_checkpoint_free(&ck);
    return st == DP_OK ? 0 : 1;
}

int app_cmd_import(dp_app *app, const char *dir, const char *out) {
    dp_error err = {0};
    dp_app_data data;
    dp_model m;
    memset(&m, 0, sizeof m);
    dp_status st = app_open_data(&app->cfg, &data, &err);
    if (st == DP_OK)
        st = dp_model_build(&m, &app->cfg.model, data.in_c, data.in_h, data.in_w, data.num_classes,
                            &err);
    for (int p = 0; p < m.n_params && st == DP_OK; p++)
        st = read_floats(dir, m.params[p].name, dp_param_ptr(&m, p), m.params[p].numel, &err);
    for (int b = 0; b < m.n_buffers && st == DP_OK; b++)
        st = read_floats(dir, m.buffers[b].name, dp_buffer_ptr(&m, b), m.buffers[b].numel, &err);
    if (st == DP_OK) {
        dp_ckpt_kv kv[DP_CKPT_MAX_KV];
        int n = dp_checkpoint_provenance(kv, 0, DP_CKPT_MAX_KV, app->cfg.hash, 1, app->threads,
                                         (uint64_t)app->cfg.run.seed);
        n = dp_ckpt_kv_add(kv, n, DP_CKPT_MAX_KV, "imported_from", "%s", dir);
        n = dp_ckpt_kv_add(kv, n, DP_CKPT_MAX_KV, "config_dir", "%s", app->cfg.base_dir);
        dp_checkpoint_src src = {
            .model = &m, .config_text = app->cfg_text, .provenance = kv, .n_provenance = n};
        st = dp_checkpoint_save(&src, out, NULL, &err);
    }
    if (st == DP_OK)
        printf("%s: %s with %lld params -> %s\n", dir, m.arch, (long long)dp_model_params(&m), out);
    else
        fprintf(stderr, "dprune: error: %s\n", err.msg);
    dp_model_free(&m);
    app_close_data(&data);
    return st == DP_OK ? 0 : 1;
}

int app_cmd_logits(const char *path, const char *in_path, int N, const char *out_path) {
    dp_error err = {0};
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    dp_status st = dp_checkpoint_load(&ck, path, &err);
    const dp_model *m = &ck.model;
    size_t per = (size_t)m->in_c * m->in_h * m->in_w;
    float *x = st == DP_OK ? malloc(sizeof(float) * per * (size_t)(N > 0 ? N : 1)) : NULL;
    if (st == DP_OK && (!x || N <= 0)) st = dp_fail(&err, DP_ERR_ARG, "logits: need N >= 1 inputs");
    if (st == DP_OK) {
        FILE *f = fopen(in_path, "rb");
        if (!f || fread(x, sizeof(float) * per, (size_t)N, f) != (size_t)N)
            st = dp_fail(&err, DP_ERR_IO, "logits: %s must hold %d x %zu float32 values", in_path,
                         N, per);
        if (f) fclose(f);
    }
    dp_activations a = {0};
    if (st == DP_OK) st = dp_activations_alloc(&a, m, N, &err);
    if (st == DP_OK) {
        dp_forward_opts fo = {.train = false};
        dp_model_forward(m, &a, x, N, &fo);
        FILE *f = fopen(out_path, "wb");
        size_t k = (size_t)N * m->num_classes;
        if (!f || fwrite(a.out[dp_model_output_node(m)], sizeof(float), k, f) != k)
            st = dp_fail(&err, DP_ERR_IO, "logits: cannot write %s", out_path);
        if (f) fclose(f);
    }
    if (st != DP_OK) fprintf(stderr, "dprune: error: %s\n", err.msg);
    if (a.out) dp_activations_free(&a, m);
    free(x);
    dp_checkpoint_free(&ck);
    return st == DP_OK ? 0 : 1;
}

int app_cmd_init(dp_app *app, const char *out) {
    dp_error err = {0};
    dp_app_data data;
    dp_model m;
    memset(&m, 0, sizeof m);
    dp_status st = app_open_data(&app->cfg, &data, &err);
    if (st == DP_OK) st = app_build_model(app, &data, &m, &err);
    if (st == DP_OK) {
        dp_ckpt_kv kv[DP_CKPT_MAX_KV];
        int n = dp_checkpoint_provenance(kv, 0, DP_CKPT_MAX_KV, app->cfg.hash, 1, app->threads,
                                         (uint64_t)app->cfg.run.seed);
        n = dp_ckpt_kv_add(kv, n, DP_CKPT_MAX_KV, "config_dir", "%s", app->cfg.base_dir);
        dp_checkpoint_src src = {
            .model = &m, .config_text = app->cfg_text, .provenance = kv, .n_provenance = n};
        st = dp_checkpoint_save(&src, out, NULL, &err);
    }
    if (st == DP_OK)
        printf("%s: freshly initialised %s (seed %lld) -> %s\n", app->cfg.path, m.arch,
               (long long)app->cfg.run.seed, out);
    else
        fprintf(stderr, "dprune: error: %s\n", err.msg);
    dp_model_free(&m);
    app_close_data(&data);
    return st == DP_OK ? 0 : 1;
}
