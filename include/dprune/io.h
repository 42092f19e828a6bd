/* dprune io: config parsing and validation (libconfig), metrics log.
 *
 * The config schema (src/io/config_schema.c) is the single source for parsing, defaults,
 * validation and the generated reference (`dprune config-help`, docs/config-reference.md). */
#ifndef DPRUNE_IO_H
#define DPRUNE_IO_H

#include "dprune/core.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define DP_PATH_MAX 512
#define DP_NAME_MAX 64
#define DP_MAX_LIST 32
#define DP_MAX_CUSTOM_LAYERS 128

typedef struct {
    char dir[DP_PATH_MAX]; /* run directory (metrics, checkpoints); relative to the config file */
    int64_t seed;
    int threads;   /* per rank; 0 = OMP_NUM_THREADS or all cores */
    int log_every; /* steps between progress lines */
} dp_run_config;

typedef struct {
    char dataset[DP_NAME_MAX]; /* fashion-mnist | mnist | idx | cifar10 | cifar100 | imagefolder */
    char path[DP_PATH_MAX];    /* directory holding the files (default per dataset) */
    double val_split;          /* fraction of train carved out as validation */
    bool prefetch;
    bool drop_last;
    /* augmentation */
    int crop_pad;
    bool flip;
    bool random_resized_crop;
    double rrc_min_scale;
    int image_size; /* network input side (file datasets); 0 = native size */
    int resize;     /* eval resize of the shorter side (file datasets) */
    double mean[3], std[3];
    int n_mean, n_std;
    int64_t limit_train, limit_test; /* use only the first N samples (0 = all) */
} dp_data_config;

typedef struct {
    char type[DP_NAME_MAX]; /* conv | bn | relu | maxpool | avgpool | gap | linear | flatten |
                               dropout */
    int out;                /* conv/linear output channels/features */
    int k, stride, pad;
    bool bias;
    double p; /* dropout */
} dp_layer_spec;

typedef struct {
    char arch[DP_NAME_MAX]; /* fmnist_cnn | lenet5 | vgg11/13/16/19 | resnet20/32/56/110 |
                               resnet18/34/50 | custom */
    double width;           /* channel multiplier */
    char shortcut[8];       /* "A" (zero-padding) or "B" (1x1 projection + BN), CIFAR ResNets */
    int num_classes;        /* 0 = from the dataset */
    dp_layer_spec layers[DP_MAX_CUSTOM_LAYERS]; /* arch = custom */
    int n_layers;
} dp_model_config;

typedef struct {
    int epochs;
    int batch;        /* GLOBAL batch per optimizer step */
    int accumulation; /* micro-steps per optimizer step */
    double lr;
    double momentum;
    bool nesterov;
    double weight_decay;
    bool no_decay_bn_bias;
    double label_smoothing;
    char schedule[DP_NAME_MAX]; /* constant | step | multistep | cosine */
    double warmup_epochs;       /* linear warmup from lr*warmup_start */
    double warmup_start;
    int step_size;               /* step: epochs between decays */
    int milestones[DP_MAX_LIST]; /* multistep: epochs */
    int n_milestones;
    double gamma;   /* decay factor for step/multistep */
    double min_lr;  /* cosine floor */
    int eval_every; /* epochs between evaluations (0 = only at the end) */
    /* PCC term (METHODS.md 4): L = CE - pcc_lambda * mean pcc; 0 = off */
    double pcc_lambda;
} dp_train_config;

typedef struct {
    char allreduce[8];       /* gradient sum: "auto" | "mpi" | "shm" (dp_sum_route) */
    bool overlap;            /* bucketed non-blocking allreduce during backward */
    double bucket_mb;        /* bucket size after the first */
    double first_bucket_mb;  /* the first bucket is small so communication starts early */
    bool sync_bn;            /* batch-norm statistics summed across ranks */
    int check_every;         /* debug: steps between identical-parameter checks (0 = off) */
    double watchdog_seconds; /* a collective not done within this ends the job (0 = off) */
    /* fault injection for tests */
    int debug_stall_rank, debug_stall_step;
    double debug_stall_seconds;
    int debug_nan_step;
    int debug_perturb_rank, debug_perturb_step;
} dp_dist_config;

typedef struct {
    int every_epochs;         /* checkpoint after every N epochs of a phase (0 = never) */
    int keep_last;            /* checkpoints kept in run.dir */
    char resume[DP_PATH_MAX]; /* "none", "auto" (newest valid in run.dir) or a file */
} dp_checkpoint_config;

typedef struct {
    char criterion[DP_NAME_MAX]; /* none | l1 | l2 | slim | fpgm | fec | random | hrank | corr |
                                    ci | cip | csgd */
    char budget[DP_NAME_MAX];    /* uniform | ratios | global | flops | params | latency |
                                    threshold */
    double ratio;                /* uniform/global: fraction of channels removed */
    double ratios[DP_MAX_LIST];  /* ratios: per prunable group, in graph order */
    int n_ratios;
    double target; /* flops/params/latency: fraction removed */
    double tau;    /* threshold: CorrTopo tau / CI cumulative fraction */
    int min_channels;
    double min_keep;
    int round_to;
    char protect[DP_PATH_MAX]; /* comma-separated layer names */
    bool protect_first;
    bool residual;
    int rounds;
    int finetune_epochs;
    double finetune_lr;
    int calib_images;
    int bn_recalib_batches;
    double bn_l1; /* slim: lambda of the BN-L1 training term */
    bool corr_topology;
    char corr_remove[12]; /* "redundancy" (METHODS) or "weaker" (NOTES.md) */
    bool corr_fold;       /* removed channels' means into the consumers (surgery) */
    bool corr_compensate;
    bool fec_abs_mean;
    bool fec_layerwise;   /* one group per round, last layer first */
    int fec_layer_epochs; /* fine-tune epochs between groups */
    int cip_steps;
    bool cip_phi_tanh;
    int cip_epochs; /* cip: length of the soft-pruning schedule (a multiple of cip_steps) */
    double cip_lr;  /* cip: its constant learning rate */
    char latency_table[DP_PATH_MAX]; /* latency: table written by `dprune profile` */
    char latency_of[DP_NAME_MAX];    /* latency: inference | train */
} dp_prune_config;

/* C-SGD (prune.criterion = "csgd"): METHODS.md section 6. */
typedef struct {
    char clusters[DP_NAME_MAX]; /* kmeans | even */
    int kmeans_inits;
    double centripetal; /* eps of kernels; BN gamma/beta and biases get vector_ratio * it */
    double vector_ratio;
    int epochs;                   /* limit of each C-SGD phase */
    double lr;                    /* peak learning rate of a C-SGD phase */
    char schedule[DP_NAME_MAX];   /* constant | cosine */
    double threshold;             /* the phase ends once the relative deviation is below this */
    char merge_keep[DP_NAME_MAX]; /* first | mean */
    char merge_bn[DP_NAME_MAX];   /* average | reestimate */
    char target[DP_NAME_MAX];     /* budget | base_width */
} dp_csgd_config;

typedef struct {
    char path[DP_PATH_MAX];     /* the file the config came from ("" = a string) */
    char base_dir[DP_PATH_MAX]; /* directory for relative paths */
    uint64_t hash;              /* FNV-1a of the config text */
    dp_run_config run;
    dp_data_config data;
    dp_model_config model;
    dp_train_config train;
    dp_dist_config dist;
    dp_prune_config prune;
    dp_csgd_config csgd;
    dp_checkpoint_config checkpoint;
} dp_config;

/* ---- schema: one row per setting; drives defaults, parsing, validation and the reference ----
 * Rows of dp_config_schema() address dp_config; rows of dp_config_layer_schema() address one
 * dp_layer_spec (the fields of a model.layers entry). */
typedef enum {
    DP_SET_INT,        /* int */
    DP_SET_INT64,      /* int64_t */
    DP_SET_FLOAT,      /* double; an integer literal is accepted */
    DP_SET_BOOL,       /* bool */
    DP_SET_STRING,     /* char[size] */
    DP_SET_ENUM,       /* char[size] holding one of `choices` */
    DP_SET_FLOAT_LIST, /* double[size] + int count at count_offset */
    DP_SET_INT_LIST,   /* int[size] + int count at count_offset */
    DP_SET_LAYERS,     /* model.layers: list of groups, each checked against the layer schema */
} dp_setting_type;

enum {
    DP_SET_REQUIRED = 1 << 0, /* must be given (layer fields: see required_for) */
    DP_SET_PATH = 1 << 1,     /* a relative value is resolved against the config's directory */
};

typedef struct {
    const char *path; /* "section.name" ("name" for layer fields) */
    dp_setting_type type;
    size_t offset;            /* of the value in dp_config (dp_layer_spec for layer fields) */
    size_t size;              /* strings: buffer bytes; lists: max entries */
    size_t count_offset;      /* lists: offset of the int entry count */
    double def;               /* default of numbers and bools */
    const char *def_str;      /* default of strings and enums */
    double min, max;          /* numbers and list entries; +-HUGE_VAL = unbounded */
    const char *choices;      /* enums: "a|b|c" */
    unsigned flags;           /* DP_SET_* */
    const char *used_by;      /* layer fields: layer types taking it, "a|b" (NULL = all) */
    const char *required_for; /* layer fields: layer types requiring it (NULL = none) */
    const char *help;
} dp_setting;

const dp_setting *dp_config_schema(size_t *count);
const dp_setting *dp_config_layer_schema(size_t *count);
/* One-line description of a section ("train"), or NULL. */
const char *dp_config_section_help(const char *section);

/* Parses and validates config text; `origin` is the file name used in messages and
 * `base_dir` resolves relative paths. Unknown keys, wrong types, out-of-range values and missing
 * required settings are errors naming origin:line, the setting, and what would be right. */
dp_status dp_config_parse(dp_config *cfg, const char *text, const char *origin,
                          const char *base_dir, dp_error *err);
/* Reads the whole file into a malloc'ed, NUL-terminated buffer. */
dp_status dp_read_text_file(const char *path, char **text, size_t *len, dp_error *err);
dp_status dp_config_load_file(dp_config *cfg, const char *path, dp_error *err);
/* Writes the reference of every setting (markdown) generated from the schema. */
void dp_config_write_reference(FILE *out);
/* Resolves a path against the config's base dir into out (absolute paths unchanged). */
void dp_config_resolve_path(const dp_config *cfg, const char *path, char *out, size_t outsz);

/* ---- metrics: JSON lines in the run directory ---- */
typedef struct dp_metrics dp_metrics;
/* Opens (creating or appending) a JSON-lines file; its directory must exist. */
dp_status dp_metrics_open(dp_metrics **out, const char *path, dp_error *err);
/* Writes one JSON object line: fmt is a printf format producing the object's members
 * (without braces), e.g. "\"epoch\":%d,\"loss\":%.6f". Flushed. Bare nan/inf numbers
 * (a diverged run) are written as null so the line stays valid JSON. m == NULL is a no-op
 * (e.g. on non-root ranks). */
void dp_metrics_write(dp_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dp_metrics_close(dp_metrics *m);
/* Bytes written so far (a checkpoint records it; a resume truncates the file back to it, so
 * no line appears twice). -1 for NULL. */
long dp_metrics_offset(dp_metrics *m);
/* JSON-escapes s into out (quotes, backslashes, control characters); always NUL-terminated,
 * truncated at a whole escape / UTF-8 character when out is too small. */
void dp_json_escape(const char *s, char *out, size_t outsz);

#endif
