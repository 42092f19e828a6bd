/* Checkpoints of models: every section round-trips, a pruned model (odd widths everywhere,
 * a moved shortcut padding) reloads bitwise and computes the same outputs, fp16 export, the
 * background writer (keep-last-K, `latest`, failed writes that leave the previous checkpoint
 * loadable), resume = auto skipping damaged files, damaged and forged model sections, and
 * `inspect`. */
#include "../io/ckpt_testutil.h"
#include "dprune/checkpoint.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

#define TRYB(expr)                                                                                 \
    do {                                                                                           \
        if ((x = (expr)) < 0) {                                                                    \
            fprintf(stderr, "build: %s\n", err.msg);                                               \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

/* A CIFAR-ResNet-like network after structured pruning: every width odd and different, a
 * projection and a zero-padding shortcut whose padding is no longer centred, dropout, BN with
 * non-default eps, a linear head. */
static bool build_pruned(dp_model *m) {
    dp_error err = {0};
    int x = 0, s;
    dp_model_begin(m, 3, 16, 16);
    m->num_classes = 10;
    snprintf(m->arch, sizeof m->arch, "resnet20");
    TRYB(dp_add_conv(m, x, "conv1", 13, 3, 1, 1, false, &err));
    TRYB(dp_add_bn(m, x, "bn1", &err));
    m->nodes[x].a.bn.eps = 1e-3f;
    TRYB(dp_add_relu(m, x, "relu1", &err));
    s = x;
    TRYB(dp_add_conv(m, x, "layer1.0.conv1", 5, 3, 1, 1, false, &err));
    TRYB(dp_add_bn(m, x, "layer1.0.bn1", &err));
    TRYB(dp_add_relu(m, x, "layer1.0.relu1", &err));
    TRYB(dp_add_conv(m, x, "layer1.0.conv2", 13, 3, 1, 1, false, &err));
    TRYB(dp_add_bn(m, x, "layer1.0.bn2", &err));
    TRYB(dp_add_add(m, x, s, "layer1.0.add", &err));
    TRYB(dp_add_relu(m, x, "layer1.0.relu", &err));
    s = x;
    TRYB(dp_add_conv(m, x, "layer2.0.conv1", 7, 3, 2, 1, false, &err));
    TRYB(dp_add_bn(m, x, "layer2.0.bn1", &err));
    TRYB(dp_add_relu(m, x, "layer2.0.relu1", &err));
    TRYB(dp_add_conv(m, x, "layer2.0.conv2", 19, 3, 1, 1, false, &err));
    TRYB(dp_add_bn(m, x, "layer2.0.bn2", &err));
    int y = x;
    TRYB(dp_add_shortcut_pad(m, s, "layer2.0.shortcut", 19, 2, &err));
    m->nodes[x].a.shortcut.pad_before = 1; /* surgery moved it: (19 - 13) / 2 would be 3 */
    TRYB(dp_add_add(m, y, x, "layer2.0.add", &err));
    TRYB(dp_add_relu(m, x, "layer2.0.relu", &err));
    s = x;
    TRYB(dp_add_conv(m, x, "layer3.0.conv1", 3, 1, 1, 0, true, &err));
    TRYB(dp_add_conv(m, x, "layer3.0.conv2", 11, 3, 2, 1, true, &err));
    TRYB(dp_add_bn(m, x, "layer3.0.bn2", &err));
    y = x;
    TRYB(dp_add_conv(m, s, "layer3.0.downsample.0", 11, 1, 2, 0, false, &err));
    TRYB(dp_add_bn(m, x, "layer3.0.downsample.1", &err));
    TRYB(dp_add_add(m, y, x, "layer3.0.add", &err));
    TRYB(dp_add_relu(m, x, "layer3.0.relu", &err));
    TRYB(dp_add_pool(m, DP_OP_MAXPOOL, x, "pool", 3, 2, 1, &err));
    TRYB(dp_add_pool(m, DP_OP_AVGPOOL, x, "avg", 2, 1, 0, &err));
    TRYB(dp_add_dropout(m, x, "drop", 0.25f, &err));
    TRYB(dp_add_flatten(m, x, "flatten", &err));
    TRYB(dp_add_linear(m, x, "fc1", 9, true, &err));
    TRYB(dp_add_relu(m, x, "fc1_relu", &err));
    TRYB(dp_add_gap(m, x, "gap", &err));
    TRYB(dp_add_linear(m, x, "fc", 10, false, &err));
    if (dp_model_finish(m, &err) != DP_OK) return false;
    dp_model_init_weights(m, 42);
    /* non-trivial values everywhere: biases, BN affine and running statistics */
    dp_fill_uniform(m->buffer_data, m->n_buffer_floats, 3, 0.5f);
    for (int b = 0; b < m->n_buffers; b++)
        if (strstr(m->buffers[b].name, "running_var"))
            for (size_t j = 0; j < m->buffers[b].numel; j++) dp_buffer_ptr(m, b)[j] += 1.0f;
    for (int p = 0; p < m->n_params; p++)
        if (m->params[p].ndim == 1)
            dp_fill_uniform(dp_param_ptr(m, p), m->params[p].numel, 100 + (unsigned)p, 0.3f);
    dp_param_ptr(m, 0)[0] = -0.0f;  /* sign of zero */
    dp_param_ptr(m, 0)[1] = 1e-40f; /* subnormal */
    return true;
}

static const dp_ckpt_kv *provenance(int *n) {
    static dp_ckpt_kv kv[DP_CKPT_MAX_KV];
    *n = dp_checkpoint_provenance(kv, 0, DP_CKPT_MAX_KV, 0x1234abcdULL, 4, 8, 17);
    *n = dp_ckpt_kv_add(kv, *n, DP_CKPT_MAX_KV, "mpi", "%s", "Open MPI v4.1.4");
    return kv;
}

static dp_train_state sample_state(int64_t step) {
    dp_train_state s = {.phase = 2,
                        .round = 3,
                        .epoch = 7,
                        .step_in_epoch = 11,
                        .global_step = step,
                        .samples_in_epoch = 11 * 256,
                        .lr = 0.0123456789,
                        .seed = 0xfedcba9876543210ULL,
                        .ranks = 4,
                        .threads = 8};
    snprintf(s.phase_name, sizeof s.phase_name, "finetune");
    return s;
}

static bool same_graph(const dp_model *a, const dp_model *b) {
    if (a->n_nodes != b->n_nodes || a->n_params != b->n_params || a->n_buffers != b->n_buffers ||
        a->in_c != b->in_c || a->in_h != b->in_h || a->in_w != b->in_w ||
        a->num_classes != b->num_classes || strcmp(a->arch, b->arch) ||
        a->n_param_floats != b->n_param_floats)
        return false;
    for (int i = 0; i < a->n_nodes; i++) {
        const dp_node *x = &a->nodes[i], *y = &b->nodes[i];
        if (x->op != y->op || strcmp(x->name, y->name) || x->n_in != y->n_in ||
            x->in[0] != y->in[0] || (x->n_in == 2 && x->in[1] != y->in[1]) || x->c != y->c ||
            x->h != y->h || x->w != y->w)
            return false;
        bool attrs = true;
        switch (x->op) {
        case DP_OP_CONV:
            attrs = !memcmp(&x->a.conv, &y->a.conv, sizeof x->a.conv);
            break;
        case DP_OP_BN:
            attrs = x->a.bn.eps == y->a.bn.eps && x->a.bn.momentum == y->a.bn.momentum;
            break;
        case DP_OP_MAXPOOL:
        case DP_OP_AVGPOOL:
            attrs = !memcmp(&x->a.pool, &y->a.pool, sizeof x->a.pool);
            break;
        case DP_OP_LINEAR:
            attrs = x->a.linear.out == y->a.linear.out && x->a.linear.bias == y->a.linear.bias;
            break;
        case DP_OP_DROPOUT:
            attrs = x->a.dropout.p == y->a.dropout.p;
            break;
        case DP_OP_SHORTCUT_PAD:
            attrs = !memcmp(&x->a.shortcut, &y->a.shortcut, sizeof x->a.shortcut);
            break;
        default:
            break;
        }
        if (!attrs) return false;
    }
    return true;
}

/* Tensors equal bit for bit, matched by name. */
static bool same_tensors(const dp_tensor_view *va, int na, const float *a, const dp_tensor_view *vb,
                         int nb, const float *b) {
    if (na != nb) return false;
    for (int i = 0; i < na; i++) {
        int j = 0;
        while (j < nb && strcmp(va[i].name, vb[j].name)) j++;
        if (j == nb || va[i].numel != vb[j].numel ||
            memcmp(a + va[i].offset, b + vb[j].offset, va[i].numel * sizeof(float)))
            return false;
    }
    return true;
}

static void fill_src(dp_checkpoint_src *src, const dp_model *m, const float *mom,
                     const dp_train_state *st) {
    static const uint8_t history[] = {1, 2, 3, 0, 255, 'p', 'l', 'a', 'n'};
    static const uint8_t csgd[] = {'D', 'P', 'C', 'S', 'G', 'D', 0, 7};
    static const uint8_t cip[] = {'D', 'P', 'C', 'I', 'P', 1, 2, 3, 0, 9};
    int n_prov;
    const dp_ckpt_kv *kv = provenance(&n_prov);
    *src = (dp_checkpoint_src){.model = m,
                               .momentum = mom,
                               .momentum_started = true,
                               .state = st,
                               .config_text =
                                   "model: { arch = \"resnet20\"; };\nrun: { seed = 17; };\n",
                               .provenance = kv,
                               .n_provenance = n_prov,
                               .prune_history = history,
                               .prune_history_len = sizeof history,
                               .metrics_json = "{\"top1\":0.9123,\"params\":12345}",
                               .csgd_state = csgd,
                               .csgd_state_len = sizeof csgd,
                               .cip_state = cip,
                               .cip_state_len = sizeof cip};
}

static void check_loaded(const dp_checkpoint *c, const dp_checkpoint_src *src) {
    const dp_model *m = src->model;
    CHECK(same_graph(&c->model, m));
    CHECK(same_tensors(c->model.params, c->model.n_params, c->model.param_data, m->params,
                       m->n_params, m->param_data));
    CHECK(same_tensors(c->model.buffers, c->model.n_buffers, c->model.buffer_data, m->buffers,
                       m->n_buffers, m->buffer_data));
    CHECK(c->momentum && c->momentum_started);
    CHECK(c->momentum && same_tensors(c->model.params, c->model.n_params, c->momentum, m->params,
                                      m->n_params, src->momentum));
    CHECK(c->model.grad_data != NULL); /* ready to train */
    CHECK(c->has_state && !memcmp(&c->state, src->state, sizeof c->state));
    CHECK(c->config_text && !strcmp(c->config_text, src->config_text));
    CHECK(c->metrics_json && !strcmp(c->metrics_json, src->metrics_json));
    CHECK(c->prune_history_len == src->prune_history_len &&
          !memcmp(c->prune_history, src->prune_history, src->prune_history_len));
    CHECK(c->csgd_state_len == src->csgd_state_len &&
          !memcmp(c->csgd_state, src->csgd_state, src->csgd_state_len));
    CHECK(c->cip_state_len == src->cip_state_len &&
          !memcmp(c->cip_state, src->cip_state, src->cip_state_len));
    CHECK(c->n_provenance == src->n_provenance);
    CHECK(
        !strcmp(dp_ckpt_kv_get(c->provenance, c->n_provenance, "config_hash"), "000000001234abcd"));
    CHECK(!strcmp(dp_ckpt_kv_get(c->provenance, c->n_provenance, "ranks_x_threads"), "4x8"));
    CHECK(
        !strcmp(dp_ckpt_kv_get(c->provenance, c->n_provenance, "dprune_version"), DPRUNE_VERSION));
    CHECK(dp_ckpt_kv_get(c->provenance, c->n_provenance, "mpi") != NULL);
    CHECK(c->format_major == DP_CKPT_VERSION_MAJOR && c->param_dtype == DP_DTYPE_F32);
}

/* Forward pass outputs of the two models are bitwise equal. */
static bool same_outputs(const dp_model *a, const dp_model *b) {
    enum { N = 2 };
    size_t in = (size_t)a->in_c * a->in_h * a->in_w;
    float *x = malloc(sizeof(float) * N * in);
    dp_fill_uniform(x, N * in, 9, 1.0f);
    dp_activations aa, ab;
    dp_error err;
    if (dp_activations_alloc(&aa, a, N, &err) || dp_activations_alloc(&ab, b, N, &err))
        return false;
    dp_forward_opts o = {.train = false};
    dp_model_forward(a, &aa, x, N, &o);
    dp_model_forward(b, &ab, x, N, &o);
    int out = dp_model_output_node(a);
    bool same = !memcmp(aa.out[out], ab.out[out], sizeof(float) * N * a->num_classes);
    dp_activations_free(&aa, a);
    dp_activations_free(&ab, b);
    free(x);
    return same;
}

static void test_round_trip(const dp_model *m, const float *mom) {
    dp_train_state st = sample_state(1234);
    dp_checkpoint_src src;
    fill_src(&src, m, mom, &st);
    char path[512];
    snprintf(path, sizeof path, "%s/rt.dpck", tmpdir);
    dp_error err = {0};
    CHECK_MSG(dp_checkpoint_save(&src, path, NULL, &err) == DP_OK, "%s", err.msg);
    dp_checkpoint c;
    CHECK_MSG(dp_checkpoint_load(&c, path, &err) == DP_OK, "%s", err.msg);
    check_loaded(&c, &src);
    CHECK(same_outputs(m, &c.model));
    /* saving the loaded checkpoint again gives the same bytes except provenance time */
    dp_checkpoint_free(&c);

    /* a snapshot is independent of later changes to the original */
    dp_checkpoint snap;
    CHECK(dp_checkpoint_snapshot(&snap, &src, &err) == DP_OK);
    CHECK(snap.model.grad_data == NULL);
    dp_checkpoint_src again = dp_checkpoint_as_src(&snap);
    CHECK(dp_checkpoint_save(&again, path, NULL, &err) == DP_OK);
    dp_checkpoint_free(&snap);
    CHECK(dp_checkpoint_load(&c, path, &err) == DP_OK);
    check_loaded(&c, &src);
    dp_checkpoint_free(&c);

    /* a checkpoint with only a model (an export) */
    dp_checkpoint_src bare = {.model = m};
    CHECK(dp_checkpoint_save(&bare, path, NULL, &err) == DP_OK);
    CHECK(dp_checkpoint_load(&c, path, &err) == DP_OK);
    CHECK(same_graph(&c.model, m) && !c.momentum && !c.has_state && !c.config_text &&
          !c.prune_history && !c.metrics_json && c.n_provenance == 0 && !c.csgd_state &&
          !c.cip_state);
    dp_checkpoint_free(&c);

    /* fp16 / bf16 export: parameters within rounding, momentum stays exact fp32 */
    dp_dtype types[2] = {DP_DTYPE_F16, DP_DTYPE_BF16};
    for (int t = 0; t < 2; t++) {
        dp_tensor_codec codec = {.dtype = types[t]};
        CHECK(dp_checkpoint_save(&src, path, &codec, &err) == DP_OK);
        CHECK_MSG(dp_checkpoint_load(&c, path, &err) == DP_OK, "%s", err.msg);
        CHECK(c.param_dtype == types[t]);
        double tol = t == 0 ? 1.0 / 2048 : 1.0 / 256;
        bool close = true;
        for (size_t i = 0; i < m->n_param_floats; i++) {
            double a = m->param_data[i], b = c.model.param_data[i];
            if (fabs(a - b) > tol * fabs(a) + 6e-8) close = false;
        }
        CHECK_MSG(close, "%s parameters beyond rounding", dp_dtype_name(types[t]));
        CHECK(same_tensors(c.model.params, c.model.n_params, c.momentum, m->params, m->n_params,
                           mom));
        dp_checkpoint_free(&c);
    }

    /* an unknown section from a newer dprune is skipped */
    dp_ckpt_builder b = {0};
    CHECK(dp_checkpoint_encode(&src, NULL, &b, &err) == DP_OK);
    dp_bytes_str(dp_ckpt_builder_add(&b, 77, 0), "future");
    CHECK(dp_ckpt_builder_write(&b, path, &err) == DP_OK);
    dp_ckpt_builder_free(&b);
    CHECK_MSG(dp_checkpoint_load(&c, path, &err) == DP_OK, "%s", err.msg);
    check_loaded(&c, &src);
    dp_checkpoint_free(&c);
}

/* Every damage to a model checkpoint gives one clear error, never a crash. */
static int load_fails(const char *path, const uint8_t *img, size_t size, const char *needle) {
    ct_write_file(path, img, size);
    dp_checkpoint c;
    dp_error err = {0};
    dp_status st = dp_checkpoint_load(&c, path, &err);
    int ok =
        st == DP_ERR_CHECKPOINT && strstr(err.msg, path) && (!needle || strstr(err.msg, needle));
    if (!ok) fprintf(stderr, "  unexpected: status %d: %s\n", st, err.msg);
    if (st == DP_OK) dp_checkpoint_free(&c);
    return ok;
}

static void test_damaged(const dp_model *m, const float *mom) {
    dp_train_state st = sample_state(5);
    dp_checkpoint_src src;
    fill_src(&src, m, mom, &st);
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/good.dpck", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.dpck", tmpdir);
    dp_error err;
    CHECK(dp_checkpoint_save(&src, good, NULL, &err) == DP_OK);
    size_t size;
    uint8_t *img = ct_read_file(good, &size), *copy = malloc(size);
    printf("damaged-model matrix over a %zu-byte checkpoint\n", size);
    int fails = 0, cases = 0;
    for (size_t n = 0; n < size; n += 1 + n / 16, cases++) fails += !load_fails(bad, img, n, NULL);
    for (size_t i = 0; i < size; i += 1 + i / 64, cases++) {
        memcpy(copy, img, size);
        copy[i] ^= (uint8_t)(0x80u >> (i % 8));
        fails += !load_fails(bad, copy, size, NULL);
    }
    CHECK_MSG(fails == 0, "%d of %d damaged files loaded or failed unclearly", fails, cases);

    /* forged (CRC recomputed) absurd architectures are refused before allocation */
    uint64_t alen, aoff = ct_section_offset(img, DP_SEC_ARCH, &alen);
    size_t head = aoff + 4 + strlen("resnet20");
    memcpy(copy, img, size);
    ct_put32(copy + head + 16, 50000000); /* node count */
    ct_refresh_crcs(copy, size);
    CHECK(load_fails(bad, copy, size, "absurd architecture"));
    memcpy(copy, img, size);
    ct_put32(copy + head, 1 << 30); /* input channels */
    ct_refresh_crcs(copy, size);
    CHECK(load_fails(bad, copy, size, "absurd architecture"));
    /* conv1's out: record of node 1 = after node 0's record */
    size_t node0 = head + 20, node1 = node0 + 4 + ct_get32(copy + node0);
    size_t conv_out = node1 + 4 + 2 + 4 + strlen("conv1") + 5 * 4;
    memcpy(copy, img, size);
    CHECK(ct_get32(copy + conv_out) == 13);
    ct_put32(copy + conv_out, 1 << 20); /* in range, but far more than the file holds */
    ct_refresh_crcs(copy, size);
    CHECK(load_fails(bad, copy, size, "larger than the stored tensors"));
    memcpy(copy, img, size);
    ct_put32(copy + conv_out, 12); /* plausible, but the stored output shape disagrees */
    ct_refresh_crcs(copy, size);
    CHECK(load_fails(bad, copy, size, "differs from the stored"));
    memcpy(copy, img, size);
    copy[node1 + 4] = 99; /* op */
    ct_refresh_crcs(copy, size);
    CHECK(load_fails(bad, copy, size, "op 99"));
    memcpy(copy, img, size);
    ct_put32(copy + node1 + 4 + 2 + 4 + 5, 7); /* input of node 1 is a later node */
    ct_refresh_crcs(copy, size);
    CHECK(load_fails(bad, copy, size, "not earlier nodes"));
    free(img);
    free(copy);
}

static int64_t loaded_step(const char *path) {
    dp_checkpoint c;
    if (dp_checkpoint_load(&c, path, NULL) != DP_OK) return -1;
    int64_t s = c.state.global_step;
    dp_checkpoint_free(&c);
    return s;
}

static bool file_exists(const char *dir, const char *name) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void test_writer_and_resume(const dp_model *m, float *mom) {
    char dir[400];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    dp_error err = {0};
    dp_checkpoint c;
    char path[512], warn[4096];
    /* an empty directory: a fresh start */
    CHECK(dp_checkpoint_load_newest(&c, dir, path, sizeof path, warn, sizeof warn, &err) == DP_OK);
    CHECK(path[0] == 0);

    /* a write interrupted by a crash left its temporary file: the writer removes it */
    char stale[512];
    snprintf(stale, sizeof stale, "%s/ckpt-000000000007.dpck.tmp-4242", dir);
    FILE *sf = fopen(stale, "w");
    CHECK(sf != NULL);
    if (sf) fclose(sf);
    dp_ckpt_writer *w;
    CHECK(dp_ckpt_writer_start(&w, dir, 2, &err) == DP_OK);
    CHECK(access(stale, F_OK) != 0);
    for (int64_t step = 10; step <= 40; step += 10) {
        dp_train_state st = sample_state(step);
        dp_checkpoint_src src;
        fill_src(&src, m, mom, &st);
        double t0 = dp_now_seconds();
        CHECK(dp_checkpoint_submit(w, step, &src, NULL, &err) == DP_OK);
        double stall = dp_now_seconds() - t0;
        mom[0] = (float)step; /* training goes on: the snapshot must not see this */
        if (step == 10) printf("submit stall (snapshot copy): %.3f ms\n", 1e3 * stall);
    }
    CHECK(dp_ckpt_writer_wait(w, &err));
    CHECK(!dp_ckpt_writer_take_error(w, &err));
    dp_ckpt_writer_last_path(w, path, sizeof path);
    CHECK(strstr(path, "ckpt-000040.dpck") != NULL);
    /* keep the last 2 */
    CHECK(!file_exists(dir, "ckpt-000010.dpck") && !file_exists(dir, "ckpt-000020.dpck"));
    CHECK(file_exists(dir, "ckpt-000030.dpck") && file_exists(dir, "ckpt-000040.dpck"));
    char latest[700];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    size_t n;
    uint8_t *txt = ct_read_file(latest, &n);
    CHECK(txt && n == 17 && !memcmp(txt, "ckpt-000040.dpck\n", 17));
    free(txt);
    /* the snapshot of step 30 was taken before mom[0] became 30 */
    snprintf(path, sizeof path, "%s/ckpt-000030.dpck", dir);
    CHECK(dp_checkpoint_load(&c, path, &err) == DP_OK);
    CHECK(c.momentum && c.momentum[m->params[0].offset] == 20.0f);
    dp_checkpoint_free(&c);

    dp_ckpt_writer_stop(w);

    /* a write that fails (file size limit, in a child) reports it, training goes on, and the
     * previous checkpoint stays the newest loadable one */
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        if (dp_ckpt_writer_start(&w, dir, 2, NULL) != DP_OK) _exit(2);
        dp_train_state st = sample_state(50);
        dp_checkpoint_src src;
        fill_src(&src, m, mom, &st);
        dp_error e = {0};
        int ok = dp_checkpoint_submit(w, 50, &src, NULL, &e) == DP_OK;
        ok = ok && !dp_ckpt_writer_wait(w, &e);
        ok = ok && strstr(e.msg, "step 50 not saved") && strstr(e.msg, "File too large");
        dp_error taken = {0};
        ok = ok && dp_ckpt_writer_take_error(w, &taken) && !strcmp(taken.msg, e.msg);
        ok = ok && !dp_ckpt_writer_take_error(w, &taken); /* reported once */
        dp_ckpt_writer_stop(w);
        if (!ok) fprintf(stderr, "child: %s\n", e.msg);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    CHECK(!file_exists(dir, "ckpt-000050.dpck"));
    CHECK(dp_checkpoint_load_newest(&c, dir, path, sizeof path, warn, sizeof warn, &err) == DP_OK);
    CHECK(c.state.global_step == 40 && warn[0] == 0);
    dp_checkpoint_free(&c);

    /* a directory that cannot be written (its parent is a regular file; chmod does not stop
     * root): the error names the path, nothing else changes */
    char blocked[700];
    snprintf(blocked, sizeof blocked, "%s/ckpt-000030.dpck/sub", dir);
    CHECK(dp_ckpt_writer_start(&w, blocked, 2, &err) == DP_OK);
    {
        dp_train_state st = sample_state(60);
        dp_checkpoint_src src;
        fill_src(&src, m, mom, &st);
        CHECK(dp_checkpoint_submit(w, 60, &src, NULL, &err) == DP_OK);
    }
    CHECK(!dp_ckpt_writer_wait(w, &err));
    CHECK_MSG(strstr(err.msg, "step 60 not saved") && strstr(err.msg, blocked) &&
                  strstr(err.msg, "Not a directory"),
              "%s", err.msg);
    CHECK(dp_ckpt_writer_take_error(w, NULL));
    dp_ckpt_writer_stop(w);
    CHECK(loaded_step(path) == 40);

    /* resume = auto: the newest file is damaged -> the previous one, with a warning naming it */
    snprintf(path, sizeof path, "%s/ckpt-000040.dpck", dir);
    uint8_t *img = ct_read_file(path, &n);
    img[n / 2] ^= 0x20;
    ct_write_file(path, img, n);
    free(img);
    CHECK(dp_checkpoint_load_newest(&c, dir, path, sizeof path, warn, sizeof warn, &err) == DP_OK);
    CHECK(c.state.global_step == 30 && strstr(path, "ckpt-000030.dpck"));
    CHECK_MSG(strstr(warn, "skipping checkpoint") && strstr(warn, "ckpt-000040.dpck") &&
                  strstr(warn, "CRC32"),
              "%s", warn);
    dp_checkpoint_free(&c);
    /* `latest` naming a file that is gone, and a newer stray file that is not a checkpoint */
    snprintf(path, sizeof path, "%s/ckpt-000040.dpck", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/ckpt-000099.dpck", dir);
    ct_write_file(path, (const uint8_t *)"garbage", 7);
    CHECK(dp_checkpoint_load_newest(&c, dir, path, sizeof path, warn, sizeof warn, &err) == DP_OK);
    CHECK(c.state.global_step == 30);
    CHECK(strstr(warn, "ckpt-000040.dpck") && strstr(warn, "ckpt-000099.dpck") &&
          strstr(warn, "not a dprune checkpoint"));
    dp_checkpoint_free(&c);
    /* nothing usable at all */
    snprintf(path, sizeof path, "%s/ckpt-000030.dpck", dir);
    ct_write_file(path, (const uint8_t *)"DPRUNECK", 8);
    CHECK(dp_checkpoint_load_newest(&c, dir, path, sizeof path, warn, sizeof warn, &err) ==
          DP_ERR_CHECKPOINT);
    CHECK_MSG(strstr(err.msg, "no usable checkpoint") && strstr(err.msg, "all 3"), "%s", err.msg);
}

static void test_inspect(const dp_model *m, const float *mom) {
    dp_train_state st = sample_state(77);
    dp_checkpoint_src src;
    fill_src(&src, m, mom, &st);
    char path[512];
    snprintf(path, sizeof path, "%s/inspect.dpck", tmpdir);
    dp_error err;
    CHECK(dp_checkpoint_save(&src, path, NULL, &err) == DP_OK);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK_MSG(dp_checkpoint_inspect(path, out, true, &err) == DP_OK, "%s", err.msg);
    fclose(out);
    char format[32];
    snprintf(format, sizeof format, "format %d.%d", DP_CKPT_VERSION_MAJOR, DP_CKPT_VERSION_MINOR);
    const char *want[] = {format,
                          "params",
                          "optimizer",
                          "train_state",
                          "prune_history",
                          "git_commit",
                          "config_hash",
                          "ranks_x_threads",
                          "finetune",
                          "global step 77",
                          "layer2.0.shortcut",
                          "total:",
                          "prune history: 9 bytes",
                          "C-SGD state: 8 bytes",
                          "CIP state: 10 bytes",
                          "cip",
                          "top1",
                          "arch = \"resnet20\"",
                          "SGD momentum (started)"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        CHECK_MSG(strstr(text, want[i]), "inspect output lacks '%s'", want[i]);
    if (getenv("DPRUNE_SHOW_INSPECT")) fputs(text, stdout);
    free(text);
    /* a damaged file: the sections are listed, then the error */
    size_t n;
    uint8_t *img = ct_read_file(path, &n);
    uint64_t plen, poff = ct_section_offset(img, DP_SEC_PARAMS, &plen);
    img[poff + 3] ^= 1;
    ct_refresh_crcs(img, n); /* damage that only decoding can find */
    ct_write_file(path, img, n);
    free(img);
    text = NULL;
    out = open_memstream(&text, &len);
    CHECK(dp_checkpoint_inspect(path, out, false, &err) == DP_ERR_CHECKPOINT);
    fclose(out);
    CHECK(strstr(text, "sections:") != NULL);
    free(text);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dprune_ckpt_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    dp_model m;
    CHECK(build_pruned(&m));
    float *mom = dp_alloc_floats(m.n_param_floats);
    dp_fill_uniform(mom, m.n_param_floats, 5, 0.01f);
    test_round_trip(&m, mom);
    test_damaged(&m, mom);
    test_inspect(&m, mom);
    test_writer_and_resume(&m, mom);
    dp_free(mom);
    dp_model_free(&m);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return dp_test_finish();
}
