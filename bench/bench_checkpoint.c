/* Checkpoint size and speed for a built-in network (default resnet50, ImageNet shape):
 *
 *   bench_checkpoint [MODEL=resnet50] [LEVEL=6] [FROM=file.dpck] [DIR=/tmp]
 *
 * Weights are the seeded initialisation (Kaiming normal), or those of a checkpoint FROM (e.g.
 * a trained run): random-init weights have close to full-entropy mantissas, trained weights
 * are similar but BN/bias tensors differ, so ratios on a trained model can be a little
 * better. Prints, for the model tensors alone (what torch.save(model.state_dict()) holds):
 * raw fp32 bytes, plain zlib, byte-shuffle + zlib (default LZ77 strategy, and Z_RLE which the
 * checkpoints use), fp16 and bf16 (shuffle + Z_RLE), each
 * with encode (compress), write (encode + atomic write + fsync) and read (read + CRC + decode
 * + rebuild) times; then a full training checkpoint (with SGD momentum) and the training
 * thread's stall (the snapshot copy). One RESULT line per variant. */
#include "dprune/checkpoint.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void input_of(const char *arch, int *c, int *h, int *classes) {
    if (!strcmp(arch, "fmnist_cnn") || !strcmp(arch, "lenet5"))
        *c = 1, *h = 28, *classes = 10;
    else if (!strncmp(arch, "vgg", 3) || (!strncmp(arch, "resnet", 6) && strcmp(arch, "resnet18") &&
                                          strcmp(arch, "resnet34") && strcmp(arch, "resnet50")))
        *c = 3, *h = 32, *classes = 10;
    else
        *c = 3, *h = 224, *classes = 1000;
}

static double file_bytes(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    double n = (double)ftell(f);
    fclose(f);
    return n;
}

static void die(const dp_error *err) {
    fprintf(stderr, "bench_checkpoint: %s\n", err->msg);
    exit(1);
}

/* Encodes, writes and reads back one variant; prints its line. */
static void run_variant(const char *label, const dp_checkpoint_src *src, dp_tensor_codec codec,
                        const char *path, double raw_bytes) {
    dp_error err;
    dp_ckpt_builder b = {0};
    double t0 = dp_now_seconds();
    if (dp_checkpoint_encode(src, &codec, &b, &err) != DP_OK) die(&err);
    double t_enc = dp_now_seconds() - t0;
    if (dp_ckpt_builder_write(&b, path, &err) != DP_OK) die(&err);
    double t_write = dp_now_seconds() - t0;
    dp_ckpt_builder_free(&b);
    double bytes = file_bytes(path);
    t0 = dp_now_seconds();
    dp_checkpoint c;
    if (dp_checkpoint_load(&c, path, &err) != DP_OK) die(&err);
    double t_read = dp_now_seconds() - t0;
    dp_checkpoint_free(&c);
    printf("%-26s %14.0f bytes  %6.3f of raw fp32  encode %6.2f s  write %6.2f s  read %6.2f s\n",
           label, bytes, bytes / raw_bytes, t_enc, t_write, t_read);
    printf("RESULT variant=%s level=%d bytes=%.0f ratio_raw=%.4f encode_s=%.3f write_s=%.3f "
           "read_s=%.3f\n",
           label, codec.level, bytes, bytes / raw_bytes, t_enc, t_write, t_read);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *arch = argc > 1 ? argv[1] : "resnet50";
    int level = argc > 2 ? atoi(argv[2]) : 6;
    const char *from = argc > 3 && strcmp(argv[3], "-") ? argv[3] : NULL;
    const char *dir = argc > 4 ? argv[4] : "/tmp";
    dp_error err;
    dp_model m;
    dp_checkpoint loaded = {0};
    if (from) {
        if (dp_checkpoint_load(&loaded, from, &err) != DP_OK) die(&err);
        m = loaded.model;
    } else {
        int c, h, classes;
        input_of(arch, &c, &h, &classes);
        dp_model_config mc = {.width = 1.0};
        snprintf(mc.arch, sizeof mc.arch, "%s", arch);
        snprintf(mc.shortcut, sizeof mc.shortcut, "A");
        if (dp_model_build(&m, &mc, c, h, h, classes, &err) != DP_OK) die(&err);
        dp_model_init_weights(&m, 1);
    }
    int64_t params = dp_model_params(&m);
    size_t n_buf = 0;
    for (int b = 0; b < m.n_buffers; b++) n_buf += m.buffers[b].numel;
    double raw = 4.0 * ((double)params + (double)n_buf);
    printf("%s: %lld parameters + %zu buffer floats = %.0f raw fp32 bytes (%s weights)\n", m.arch,
           (long long)params, n_buf, raw, from ? from : "seeded random-init");

    char path[600];
    snprintf(path, sizeof path, "%s/bench_ckpt_%d.dpck", dir, (int)getpid());
    dp_checkpoint_src model_only = {.model = &m};
    run_variant("zlib_plain_fp32", &model_only, (dp_tensor_codec){DP_DTYPE_F32, level, true, false},
                path, raw);
    run_variant("shuffle_zlib_lz_fp32", &model_only,
                (dp_tensor_codec){DP_DTYPE_F32, level, false, true}, path, raw);
    run_variant("shuffle_zlib_rle_fp32", &model_only,
                (dp_tensor_codec){DP_DTYPE_F32, level, false, false}, path, raw);
    run_variant("shuffle_zlib_rle_fp16", &model_only,
                (dp_tensor_codec){DP_DTYPE_F16, level, false, false}, path, raw);
    run_variant("shuffle_zlib_rle_bf16", &model_only,
                (dp_tensor_codec){DP_DTYPE_BF16, level, false, false}, path, raw);

    /* a full training checkpoint: momentum holds gradient-like noise */
    float *mom = dp_alloc_floats(m.n_param_floats);
    dp_rng r;
    dp_rng_init(&r, 3, 0, 0, 0);
    for (size_t i = 0; i < m.n_param_floats; i++) mom[i] = (float)(1e-3 * dp_rng_normal(&r));
    dp_train_state st = {.epoch = 3, .global_step = 1000, .lr = 0.1, .seed = 1, .ranks = 1};
    dp_ckpt_kv kv[DP_CKPT_MAX_KV];
    int n_kv = dp_checkpoint_provenance(kv, 0, DP_CKPT_MAX_KV, 0, 1, 1, 1);
    dp_checkpoint_src full = {.model = &m,
                              .momentum = mom,
                              .momentum_started = true,
                              .state = &st,
                              .config_text = "run: {};\n",
                              .provenance = kv,
                              .n_provenance = n_kv,
                              .metrics_json = "{}"};
    run_variant("training_ckpt_fp32", &full, (dp_tensor_codec){DP_DTYPE_F32, level, false, false},
                path, raw);
    double t0 = dp_now_seconds();
    dp_checkpoint snap;
    if (dp_checkpoint_snapshot(&snap, &full, &err) != DP_OK) die(&err);
    double stall = dp_now_seconds() - t0;
    dp_checkpoint_free(&snap);
    printf("snapshot (training-thread stall of an asynchronous save): %.3f s\n", stall);
    printf("RESULT variant=snapshot_stall seconds=%.4f\n", stall);
    unlink(path);
    dp_free(mom);
    if (from)
        dp_checkpoint_free(&loaded);
    else
        dp_model_free(&m);
    return 0;
}
