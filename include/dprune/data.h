/* dprune data: readers (IDX raw/.gz, CIFAR-10/100 binary, ImageFolder JPEG), augmentation,
 * the seeded sampler and a prefetching batch loader.
 *
 * Randomness: every per-sample random choice (crop, flip, resized-crop box) comes from the
 * stream (seed, epoch, sample index in its dataset, DP_RNG_AUGMENT), never from rank or thread,
 * so results do not depend on how work is split. */
#ifndef DPRUNE_DATA_H
#define DPRUNE_DATA_H

#include "dprune/core.h"
#include <stdbool.h>
#include <stdint.h>

/* A dataset: either fully in memory as uint8 (IDX, CIFAR) or a list of JPEG files decoded on
 * demand (ImageFolder). Labels are always in memory. */
typedef struct {
    int64_t n;
    int c, h, w; /* stored per-sample shape (in-memory kinds); 0 for ImageFolder */
    int num_classes;
    uint8_t *pixels;    /* [n, c, h, w] (CHW, like the network) or NULL */
    int32_t *labels;    /* [n] */
    char **paths;       /* [n] file paths (ImageFolder) or NULL */
    char **class_names; /* [num_classes] (ImageFolder) or NULL */
    char source[512];   /* what was loaded, for messages */
} dp_dataset;

/* images/labels: IDX files, raw or gzip (detected by magic, not by name). Checks magic,
 * dimension counts, that the two counts agree, file sizes, labels < num_classes (10 unless a
 * label is larger -> error naming it). */
dp_status dp_dataset_load_idx(dp_dataset *ds, const char *images_path, const char *labels_path,
                              int num_classes, dp_error *err);
/* CIFAR binary: cifar100 = false -> 1 label byte + 3072; true -> coarse + fine label + 3072
 * (fine label used). Several files are concatenated in order. */
dp_status dp_dataset_load_cifar(dp_dataset *ds, const char *const *paths, int npaths, bool cifar100,
                                dp_error *err);
/* root/<class>/<image>.jpg|.jpeg|.JPEG|.png-not-supported; classes sorted by name, files sorted
 * by name within a class. Files are only listed here; decoding happens in dp_make_sample. */
dp_status dp_dataset_load_imagefolder(dp_dataset *ds, const char *root, dp_error *err);
void dp_dataset_free(dp_dataset *ds);

/* A split is a view: a list of indices into a dataset. */
typedef struct {
    const dp_dataset *ds;
    int64_t *index; /* [n] */
    int64_t n;
} dp_split;

dp_status dp_split_all(dp_split *sp, const dp_dataset *ds, dp_error *err);
/* Seeded carve of a validation split: val gets round(fraction * n) samples chosen by a
 * permutation from (seed, DP_RNG_SPLIT); both splits keep ascending index order. */
dp_status dp_split_val(const dp_dataset *ds, double fraction, uint64_t seed, dp_split *train,
                       dp_split *val, dp_error *err);
void dp_split_free(dp_split *sp);

/* How one sample becomes a network input. */
typedef struct {
    int out_c, out_h, out_w; /* network input shape */
    /* training-time augmentation */
    int crop_pad;             /* random crop of out_h x out_w after zero-padding by crop_pad */
    bool flip;                /* random horizontal flip, p = 0.5 */
    bool random_resized_crop; /* ImageNet-style: scale [rrc_min_scale, 1], ratio [3/4, 4/3] */
    float rrc_min_scale;
    /* evaluation (and training without RRC) for file datasets: resize the shorter side to
     * `resize`, then center crop out_h x out_w */
    int resize;
    float mean[3], std[3]; /* per-channel normalisation of x/255 */
} dp_augment;

/* Writes sample `index` of ds as float [out_c, out_h, out_w]. train = apply random parts.
 * Greyscale JPEGs are replicated to 3 channels when out_c = 3; RGB is converted when out_c = 1. */
dp_status dp_make_sample(const dp_dataset *ds, int64_t index, const dp_augment *aug, bool train,
                         uint64_t seed, int64_t epoch, float *out, dp_error *err);

/* Sampler: the order of split positions for an epoch: identity, or a permutation from
 * (seed, epoch, DP_RNG_SHUFFLE). */
void dp_sampler_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int64_t *order);

/* A batch as the trainer sees it. keys[i] = the dataset index of sample i (used to key dropout
 * and other per-sample randomness). */
typedef struct {
    int n;      /* samples in this batch on this rank */
    float *x;   /* [n, c, h, w] */
    int32_t *y; /* [n] */
    uint64_t *keys;
    int64_t step; /* global step index within the epoch */
} dp_batch;

/* Loader: walks an epoch of a split in global batches of `global_batch`; this rank takes
 * positions rank, rank+world, ... of each global batch (strided share). The last partial
 * global batch is dropped (drop_last) or kept. A background thread prepares the next batch
 * while the trainer works on the current one (prefetch = true). */
typedef struct dp_loader dp_loader;
typedef struct {
    const dp_split *split;
    const dp_augment *aug;
    bool train; /* augment */
    bool shuffle;
    bool drop_last;
    bool prefetch;
    int global_batch;
    int rank, world;
    uint64_t seed;
    int threads; /* decode threads inside the loader's worker (0 = 1) */
} dp_loader_config;

dp_status dp_loader_open(dp_loader **out, const dp_loader_config *cfg, dp_error *err);
/* Starts an epoch; the first batch starts preparing immediately. */
dp_status dp_loader_start_epoch(dp_loader *ld, int64_t epoch, dp_error *err);
/* The same, continuing at global batch first_batch (a resume in the middle of an epoch): the
 * batches are exactly those an uninterrupted epoch gives from there on. */
dp_status dp_loader_start_epoch_at(dp_loader *ld, int64_t epoch, int64_t first_batch,
                                   dp_error *err);
/* Fills *b (pointers valid until the next call). Returns DP_OK with b->n = 0 at the end of the
 * epoch (b->n may also be 0 on a rank whose strided share of a short last batch is empty; use
 * dp_loader_batches_per_epoch to know the count). */
dp_status dp_loader_next(dp_loader *ld, dp_batch *b, dp_error *err);
int64_t dp_loader_batches_per_epoch(const dp_loader *ld);
void dp_loader_close(dp_loader *ld);

#endif
