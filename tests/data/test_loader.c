/* Batch loader: epoch coverage and batch counts, the strided rank share (world 2 and 3 ranks
 * together reproduce the world-1 batches: same keys, same pixels), prefetch on/off and decode
 * threads 1/2 give identical batches, closing and restarting mid-epoch, worker errors, and a
 * real CIFAR epoch. */
#include "data_testutil.h"
#include "dprune/data.h"

enum { C = 3, H = 8, W = 8, SAMPLE = C * H * W };

static dp_dataset make_ds(int n) {
    dp_dataset ds = {.n = n, .c = C, .h = H, .w = W, .num_classes = 10};
    ds.pixels = dp_alloc((size_t)n * SAMPLE);
    ds.labels = dp_alloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        ds.labels[i] = (i * 3) % 10;
        for (int p = 0; p < SAMPLE; p++) ds.pixels[(size_t)i * SAMPLE + p] = (uint8_t)(i * 13 + p);
    }
    snprintf(ds.source, sizeof ds.source, "synthetic");
    return ds;
}

static const dp_augment AUG = {.out_c = C,
                               .out_h = H,
                               .out_w = W,
                               .crop_pad = 2,
                               .flip = true,
                               .mean = {0.5f, 0.5f, 0.5f},
                               .std = {0.25f, 0.25f, 0.25f}};

/* One epoch's batches, copied out of the loader. */
typedef struct {
    int64_t nb;
    int n[64];
    int64_t step[64];
    uint64_t keys[64][64];
    int32_t y[64][64];
    float *x[64];
} epoch_rec;

static dp_status record_epoch(dp_loader_config cfg, int64_t epoch, epoch_rec *r) {
    dp_loader *ld;
    dp_error err = {0};
    memset(r, 0, sizeof *r);
    dp_status st = dp_loader_open(&ld, &cfg, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    if (st != DP_OK) return st;
    r->nb = dp_loader_batches_per_epoch(ld);
    CHECK(dp_loader_start_epoch(ld, epoch, &err) == DP_OK);
    for (int64_t b = 0;; b++) {
        dp_batch bt;
        st = dp_loader_next(ld, &bt, &err);
        CHECK_MSG(st == DP_OK, "%s", err.msg);
        if (st != DP_OK || b >= r->nb) {
            CHECK(st != DP_OK || bt.n == 0); /* n = 0 marks the end */
            break;
        }
        r->n[b] = bt.n;
        r->step[b] = bt.step;
        memcpy(r->keys[b], bt.keys, sizeof(uint64_t) * (size_t)bt.n);
        memcpy(r->y[b], bt.y, sizeof(int32_t) * (size_t)bt.n);
        r->x[b] = malloc(sizeof(float) * SAMPLE * (size_t)(bt.n > 0 ? bt.n : 1));
        memcpy(r->x[b], bt.x, sizeof(float) * SAMPLE * (size_t)bt.n);
    }
    dp_loader_close(ld);
    return st;
}

static void free_rec(epoch_rec *r) {
    for (int b = 0; b < 64; b++) free(r->x[b]);
}

static int same_rec(const epoch_rec *a, const epoch_rec *b) {
    if (a->nb != b->nb) return 0;
    for (int64_t i = 0; i < a->nb; i++) {
        if (a->n[i] != b->n[i] || a->step[i] != b->step[i]) return 0;
        if (memcmp(a->keys[i], b->keys[i], sizeof(uint64_t) * (size_t)a->n[i]) ||
            memcmp(a->y[i], b->y[i], sizeof(int32_t) * (size_t)a->n[i]) ||
            memcmp(a->x[i], b->x[i], sizeof(float) * SAMPLE * (size_t)a->n[i]))
            return 0;
    }
    return 1;
}

/* world = 1: covers the split once in sampler order, labels and pixels match make_sample. */
static void test_single(const dp_split *sp) {
    dp_loader_config cfg = {.split = sp,
                            .aug = &AUG,
                            .train = true,
                            .shuffle = true,
                            .prefetch = true,
                            .global_batch = 16,
                            .rank = 0,
                            .world = 1,
                            .seed = 11,
                            .threads = 2};
    epoch_rec r;
    record_epoch(cfg, 3, &r);
    int64_t n = sp->n;
    CHECK(r.nb == (n + 15) / 16);
    int64_t order[256];
    dp_sampler_order(n, true, 11, 3, order);
    int ok = 1, pos = 0;
    float x[SAMPLE];
    dp_error err = {0};
    for (int64_t b = 0; b < r.nb; b++) {
        ok &= r.step[b] == b && r.n[b] == (b + 1 < r.nb ? 16 : (int)(n - 16 * b));
        for (int i = 0; i < r.n[b]; i++, pos++) {
            int64_t key = sp->index[order[pos]];
            ok &= r.keys[b][i] == (uint64_t)key && r.y[b][i] == sp->ds->labels[key];
            dp_make_sample(sp->ds, key, &AUG, true, 11, 3, x, &err);
            ok &= memcmp(x, r.x[b] + (size_t)i * SAMPLE, sizeof x) == 0;
        }
    }
    CHECK(ok);
    CHECK(pos == n);
    free_rec(&r);
    /* drop_last: only full batches */
    cfg.drop_last = true;
    record_epoch(cfg, 3, &r);
    CHECK(r.nb == n / 16);
    int full = 1;
    for (int64_t b = 0; b < r.nb; b++) full &= r.n[b] == 16;
    CHECK(full);
    free_rec(&r);
}

/* Ranks of world w, interleaved, reproduce each world-1 global batch exactly. */
static void test_world(const dp_split *sp, int world, int B, bool drop_last) {
    dp_loader_config cfg = {.split = sp,
                            .aug = &AUG,
                            .train = true,
                            .shuffle = true,
                            .drop_last = drop_last,
                            .prefetch = true,
                            .global_batch = B,
                            .rank = 0,
                            .world = 1,
                            .seed = 5,
                            .threads = 1};
    epoch_rec all, part[4];
    record_epoch(cfg, 1, &all);
    for (int r = 0; r < world; r++) {
        cfg.rank = r;
        cfg.world = world;
        cfg.prefetch = r % 2 == 0; /* mix modes: they must not matter */
        record_epoch(cfg, 1, &part[r]);
    }
    int ok = 1;
    for (int r = 0; r < world; r++) ok &= part[r].nb == all.nb;
    for (int64_t b = 0; ok && b < all.nb; b++) {
        int total = 0;
        for (int r = 0; r < world; r++) {
            total += part[r].n[b];
            ok &= part[r].step[b] == b;
            for (int i = 0; i < part[r].n[b]; i++) {
                int g = r + i * world; /* position inside the global batch */
                ok &= g < all.n[b] && part[r].keys[b][i] == all.keys[b][g] &&
                      part[r].y[b][i] == all.y[b][g] &&
                      memcmp(part[r].x[b] + (size_t)i * SAMPLE, all.x[b] + (size_t)g * SAMPLE,
                             sizeof(float) * SAMPLE) == 0;
            }
        }
        ok &= total == all.n[b];
    }
    CHECK_MSG(ok, "world %d, batch %d, drop_last %d", world, B, drop_last);
    free_rec(&all);
    for (int r = 0; r < world; r++) free_rec(&part[r]);
}

static void test_prefetch_threads(const dp_split *sp) {
    dp_loader_config cfg = {.split = sp,
                            .aug = &AUG,
                            .train = true,
                            .shuffle = true,
                            .prefetch = false,
                            .global_batch = 10,
                            .rank = 1,
                            .world = 2,
                            .seed = 2,
                            .threads = 1};
    for (int64_t e = 0; e < 2; e++) {
        epoch_rec a, b, c;
        record_epoch(cfg, e, &a);
        cfg.prefetch = true;
        record_epoch(cfg, e, &b);
        cfg.threads = 2;
        record_epoch(cfg, e, &c);
        CHECK(same_rec(&a, &b));
        CHECK(same_rec(&a, &c));
        cfg.prefetch = false;
        cfg.threads = 1;
        free_rec(&a);
        free_rec(&b);
        free_rec(&c);
    }
}

/* Closing mid-epoch (with a prefetch in flight), restarting an epoch mid-way, misuse. */
static void test_lifecycle(const dp_split *sp) {
    dp_loader_config cfg = {.split = sp,
                            .aug = &AUG,
                            .train = true,
                            .shuffle = true,
                            .prefetch = true,
                            .global_batch = 4,
                            .rank = 0,
                            .world = 1,
                            .seed = 3,
                            .threads = 2};
    dp_loader *ld;
    dp_error err = {0};
    dp_batch b;
    CHECK(dp_loader_open(&ld, &cfg, &err) == DP_OK);
    CHECK(dp_loader_next(ld, &b, &err) == DP_ERR_ARG); /* before start_epoch */
    dp_loader_close(ld);                               /* never started */
    for (int k = 0; k < 3; k++) {
        CHECK(dp_loader_open(&ld, &cfg, &err) == DP_OK);
        dp_loader_start_epoch(ld, 0, &err);
        for (int i = 0; i < k; i++) CHECK(dp_loader_next(ld, &b, &err) == DP_OK && b.n == 4);
        dp_loader_close(ld); /* right after start, or after 1-2 batches: must join cleanly */
    }
    /* restart mid-epoch: the same epoch again gives the same batches as a fresh loader */
    epoch_rec fresh;
    record_epoch(cfg, 4, &fresh);
    CHECK(dp_loader_open(&ld, &cfg, &err) == DP_OK);
    dp_loader_start_epoch(ld, 7, &err);
    dp_loader_next(ld, &b, &err);
    dp_loader_next(ld, &b, &err);
    dp_loader_start_epoch(ld, 4, &err);
    int ok = 1;
    for (int64_t i = 0; i < fresh.nb; i++) {
        ok &= dp_loader_next(ld, &b, &err) == DP_OK && b.n == fresh.n[i] && b.step == i;
        ok &= memcmp(b.keys, fresh.keys[i], sizeof(uint64_t) * (size_t)b.n) == 0;
        ok &= memcmp(b.x, fresh.x[i], sizeof(float) * SAMPLE * (size_t)b.n) == 0;
    }
    CHECK(ok);
    CHECK(dp_loader_next(ld, &b, &err) == DP_OK && b.n == 0);
    CHECK(dp_loader_next(ld, &b, &err) == DP_OK && b.n == 0); /* stays at the end */
    dp_loader_close(ld);
    free_rec(&fresh);
    /* bad configs */
    dp_loader_config bad = cfg;
    bad.rank = 1;
    CHECK(dp_loader_open(&ld, &bad, &err) == DP_ERR_CONFIG && ld == NULL);
    bad = cfg;
    bad.global_batch = 0;
    CHECK(dp_loader_open(&ld, &bad, &err) == DP_ERR_CONFIG);
    bad = cfg;
    bad.aug = NULL;
    CHECK(dp_loader_open(&ld, &bad, &err) == DP_ERR_ARG);
}

/* A worker error surfaces in the dp_loader_next of the failing batch, with the file name. */
static void test_worker_error(void) {
    char dir[512], root[1024], p[1024];
    dt_mktemp(dir, sizeof dir);
    dt_mkdir(dt_join(root, sizeof root, dir, "if"));
    dt_mkdir(dt_join(p, sizeof p, root, "a"));
    unsigned char pix[8 * 8 * 3];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (unsigned char)(i * 7);
    const char *names[] = {"a/0.jpg", "a/1.jpg", "a/2.jpg", "a/3.jpg", "a/5.jpg"};
    for (int i = 0; i < 5; i++)
        dt_write_jpeg(dt_join(p, sizeof p, root, names[i]), pix, 8, 8, 3, 90);
    dt_write(dt_join(p, sizeof p, root, "a/4_broken.jpg"), "garbage!", 8); /* index 4 */
    dp_dataset ds;
    dp_error err = {0};
    CHECK(dp_dataset_load_imagefolder(&ds, root, &err) == DP_OK && ds.n == 6);
    dp_split sp;
    dp_split_all(&sp, &ds, &err);
    dp_augment aug = AUG;
    aug.crop_pad = 0;
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        dp_loader_config cfg = {.split = &sp,
                                .aug = &aug,
                                .prefetch = prefetch,
                                .global_batch = 2,
                                .world = 1,
                                .threads = 2};
        dp_loader *ld;
        CHECK(dp_loader_open(&ld, &cfg, &err) == DP_OK);
        dp_loader_start_epoch(ld, 0, &err);
        dp_batch b;
        CHECK(dp_loader_next(ld, &b, &err) == DP_OK && b.n == 2);
        CHECK(dp_loader_next(ld, &b, &err) == DP_OK && b.n == 2);
        CHECK_FAILS_NAMING(dp_loader_next(ld, &b, &err), err, "4_broken.jpg");
        CHECK_FAILS_NAMING(dp_loader_next(ld, &b, &err), err, "4_broken.jpg"); /* sticky */
        dp_loader_start_epoch(ld, 1, &err); /* a new epoch clears it */
        CHECK(dp_loader_next(ld, &b, &err) == DP_OK && b.n == 2);
        dp_loader_close(ld);
    }
    dp_split_free(&sp);
    dp_dataset_free(&ds);
    dt_rmtree(dir);
}

/* Real JPEGs with RandomResizedCrop: 2 decode threads + prefetch and 1 thread without give
 * identical batches (two loaders running side by side). */
static void test_imagefolder_threads(void) {
    char root[1024];
    dp_dataset ds;
    dp_error err = {0};
    dp_test_shared_path("data/imagefolder-sample/val", root, sizeof root);
    if (dp_dataset_load_imagefolder(&ds, root, &err) != DP_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    dp_split sp;
    dp_split_all(&sp, &ds, &err);
    dp_augment aug = {.out_c = 3,
                      .out_h = 64,
                      .out_w = 64,
                      .flip = true,
                      .random_resized_crop = true,
                      .rrc_min_scale = 0.08f,
                      .mean = {0.485f, 0.456f, 0.406f},
                      .std = {0.229f, 0.224f, 0.225f}};
    dp_loader_config cfg = {.split = &sp,
                            .aug = &aug,
                            .train = true,
                            .shuffle = true,
                            .prefetch = true,
                            .global_batch = 32,
                            .world = 1,
                            .seed = 8,
                            .threads = 2};
    dp_loader *a, *b;
    CHECK(dp_loader_open(&a, &cfg, &err) == DP_OK);
    cfg.prefetch = false;
    cfg.threads = 1;
    CHECK(dp_loader_open(&b, &cfg, &err) == DP_OK);
    double t0 = dp_now_seconds();
    dp_loader_start_epoch(a, 2, &err);
    dp_loader_start_epoch(b, 2, &err);
    int same = 1, total = 0;
    for (;;) {
        dp_batch ba, bb;
        dp_status sa = dp_loader_next(a, &ba, &err), sb = dp_loader_next(b, &bb, &err);
        same &= sa == DP_OK && sb == DP_OK && ba.n == bb.n;
        if (!same || ba.n == 0) break;
        same &= memcmp(ba.keys, bb.keys, sizeof(uint64_t) * (size_t)ba.n) == 0 &&
                memcmp(ba.x, bb.x, sizeof(float) * 3 * 64 * 64 * (size_t)ba.n) == 0;
        total += ba.n;
    }
    printf("  2 x 200 JPEG samples (RRC 64x64): %.3f s\n", dp_now_seconds() - t0);
    CHECK(same && total == 200);
    dp_loader_close(a);
    dp_loader_close(b);
    dp_split_free(&sp);
    dp_dataset_free(&ds);
}

/* A resume in the middle of an epoch sees exactly the batches an uninterrupted epoch gives
 * from there on, with prefetch on and off; a start past the end is refused. */
static void test_start_at(const dp_split *sp) {
    for (int pf = 0; pf < 2; pf++) {
        dp_loader_config cfg = {.split = sp,
                                .aug = &AUG,
                                .train = true,
                                .shuffle = true,
                                .prefetch = pf,
                                .global_batch = 16,
                                .world = 1,
                                .seed = 5};
        epoch_rec full;
        record_epoch(cfg, 2, &full);
        dp_loader *ld = NULL;
        dp_error err = {0};
        CHECK(dp_loader_open(&ld, &cfg, &err) == DP_OK);
        CHECK(dp_loader_start_epoch_at(ld, 2, 3, &err) == DP_OK);
        int same = 1;
        for (int64_t b = 3; b < full.nb; b++) {
            dp_batch batch;
            CHECK(dp_loader_next(ld, &batch, &err) == DP_OK);
            same &= batch.step == b && batch.n == full.n[b] &&
                    memcmp(batch.keys, full.keys[b], sizeof(uint64_t) * (size_t)batch.n) == 0 &&
                    memcmp(batch.x, full.x[b], sizeof(float) * SAMPLE * (size_t)batch.n) == 0;
        }
        CHECK(same);
        CHECK(dp_loader_start_epoch_at(ld, 2, full.nb + 1, &err) == DP_ERR_ARG);
        dp_loader_close(ld);
        free_rec(&full);
    }
}

/* A real CIFAR epoch: each of the 2000 test images once, 200 per class. */
static void test_cifar_epoch(void) {
    char path[1024];
    const char *files[] = {
        dp_test_shared_path("data/cifar10-subset/test_batch.bin", path, sizeof path)};
    dp_dataset ds;
    dp_error err = {0};
    if (dp_dataset_load_cifar(&ds, files, 1, false, &err) != DP_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    dp_split sp;
    dp_split_all(&sp, &ds, &err);
    dp_augment aug = {.out_c = 3,
                      .out_h = 32,
                      .out_w = 32,
                      .crop_pad = 4,
                      .flip = true,
                      .mean = {0.49f, 0.48f, 0.45f},
                      .std = {0.25f, 0.24f, 0.26f}};
    dp_loader_config cfg = {.split = &sp,
                            .aug = &aug,
                            .train = true,
                            .shuffle = true,
                            .prefetch = true,
                            .global_batch = 128,
                            .world = 1,
                            .seed = 1,
                            .threads = 2};
    dp_loader *ld;
    CHECK(dp_loader_open(&ld, &cfg, &err) == DP_OK);
    CHECK(dp_loader_batches_per_epoch(ld) == 16);
    double t0 = dp_now_seconds();
    dp_loader_start_epoch(ld, 0, &err);
    unsigned char *seen = calloc(2000, 1);
    int hist[10] = {0}, total = 0, once = 1;
    dp_batch b;
    while (dp_loader_next(ld, &b, &err) == DP_OK && b.n > 0) {
        for (int i = 0; i < b.n; i++) {
            once &= !seen[b.keys[i]];
            seen[b.keys[i]] = 1;
            hist[b.y[i]]++;
        }
        total += b.n;
    }
    printf("  CIFAR epoch of 2000 samples: %.3f s\n", dp_now_seconds() - t0);
    CHECK(total == 2000 && once);
    int balanced = 1;
    for (int k = 0; k < 10; k++) balanced &= hist[k] == 200;
    CHECK(balanced);
    free(seen);
    dp_loader_close(ld);
    dp_split_free(&sp);
    dp_dataset_free(&ds);
}

int main(void) {
    double t0 = dp_now_seconds();
    dp_dataset ds = make_ds(150);
    dp_split all, tr, va;
    dp_error err = {0};
    dp_split_all(&all, &ds, &err);
    dp_split_val(&ds, 0.2, 4, &tr, &va, &err); /* 120 train: keys must map through index */
    test_single(&all);
    test_single(&tr);
    test_world(&tr, 2, 16, false);
    test_world(&tr, 3, 16, false);  /* 16 = 6 + 5 + 5 */
    test_world(&all, 4, 16, false); /* last batch of 6: ranks get 2, 2, 1, 1 */
    test_world(&va, 4, 7, true);
    test_world(&va, 4, 2, false); /* ranks 2 and 3 always get 0 samples */
    test_prefetch_threads(&tr);
    test_lifecycle(&tr);
    test_start_at(&tr);
    test_worker_error();
    test_imagefolder_threads();
    test_cifar_epoch();
    dp_split_free(&all);
    dp_split_free(&tr);
    dp_split_free(&va);
    dp_dataset_free(&ds);
    printf("test_loader: %.2f s\n", dp_now_seconds() - t0);
    return dp_test_finish();
}
