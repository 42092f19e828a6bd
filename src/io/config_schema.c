/* The config schema: one row per setting. config.c applies the defaults, parses, validates and
 * generates the reference (docs/config-reference.md, `dprune config-help`) from these rows only.
 *
 * Adding a setting = adding its field to the struct in io.h and one row here. Adding a section
 * (e.g. prune) = a member of dp_config, its rows, and a line in dp_sections. Cross-field rules
 * that one row cannot express live in check_cross_fields() in config.c. */
#include "dprune/io.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

/* offsetof guarded by the field's C type: a row whose macro does not match the struct field
 * (say INT on a double) fails to compile instead of writing the wrong bytes. */
#define OFF(ctype, field) _Generic(((dp_config *)0)->field, ctype : offsetof(dp_config, field))
#define LOFF(ctype, field)                                                                         \
    _Generic(((dp_layer_spec *)0)->field, ctype : offsetof(dp_layer_spec, field))
#define FIELD_SIZE(T, field) sizeof(((T *)0)->field)
#define UNBOUNDED HUGE_VAL

/* Row macros; the last arguments are the help text and optionally more designated initializers,
 * e.g. .flags = REQ. */
#define ROW(sec, name, t, ctype, ...)                                                              \
    { .path = #sec "." #name, .type = t, .offset = OFF(ctype, sec.name), __VA_ARGS__ }
#define INT(sec, name, d, lo, hi, ...)                                                             \
    ROW(sec, name, DP_SET_INT, int, .def = d, .min = lo, .max = hi, .help = __VA_ARGS__)
#define INT64(sec, name, d, lo, hi, ...)                                                           \
    ROW(sec, name, DP_SET_INT64, int64_t, .def = d, .min = lo, .max = hi, .help = __VA_ARGS__)
#define FLOAT(sec, name, d, lo, hi, ...)                                                           \
    ROW(sec, name, DP_SET_FLOAT, double, .def = d, .min = lo, .max = hi, .help = __VA_ARGS__)
#define BOOL(sec, name, d, ...)                                                                    \
    ROW(sec, name, DP_SET_BOOL, bool, .def = d, .min = 0, .max = 1, .help = __VA_ARGS__)
#define STR(sec, name, d, ...)                                                                     \
    ROW(sec, name, DP_SET_STRING, char *, .size = FIELD_SIZE(dp_config, sec.name), .def_str = d,   \
        .help = __VA_ARGS__)
#define ENUM(sec, name, d, ch, ...)                                                                \
    ROW(sec, name, DP_SET_ENUM, char *, .size = FIELD_SIZE(dp_config, sec.name), .def_str = d,     \
        .choices = ch, .help = __VA_ARGS__)
#define FLIST(sec, name, count, lo, hi, ...)                                                       \
    ROW(sec, name, DP_SET_FLOAT_LIST, double *,                                                    \
        .size = FIELD_SIZE(dp_config, sec.name) / sizeof(double),                                  \
        .count_offset = OFF(int, sec.count), .min = lo, .max = hi, .help = __VA_ARGS__)
#define ILIST(sec, name, count, lo, hi, ...)                                                       \
    ROW(sec, name, DP_SET_INT_LIST, int *, .size = FIELD_SIZE(dp_config, sec.name) / sizeof(int),  \
        .count_offset = OFF(int, sec.count), .min = lo, .max = hi, .help = __VA_ARGS__)

#define REQ DP_SET_REQUIRED
#define PATH DP_SET_PATH

static const dp_setting dp_schema[] = {
    /* ---- run ---- */
    STR(run, dir, "runs/default",
        "Run directory for metrics and checkpoints; relative to the config file.", .flags = PATH),
    INT64(run, seed, 42, 0, UNBOUNDED,
          "Seed of every random stream (init, shuffle, augmentation, dropout, split)."),
    INT(run, threads, 0, 0, 1024,
        "OpenMP threads per rank; 0 = OMP_NUM_THREADS, else the rank's fair share of the cores it "
        "may run on (each core of its affinity mask divided among the ranks of the node that may "
        "use it: all cores for one rank, no oversubscription for several)."),
    INT(run, log_every, 50, 0, 1000000000, "Optimizer steps between progress lines; 0 = none."),

    /* ---- data ---- */
    ENUM(data, dataset, "", "fashion-mnist|mnist|idx|cifar10|cifar100|imagefolder",
         "Dataset format.", .flags = REQ),
    STR(data, path, "",
        "Directory holding the dataset files; relative to the config file. "
        "Empty = the dataset's default location.",
        .flags = PATH),
    FLOAT(data, val_split, 0, 0, 0.5,
          "Fraction of the training set held out for validation (0 = none)."),
    BOOL(data, prefetch, true, "Load the next batch in the background while training."),
    BOOL(data, drop_last, true,
         "Drop the last incomplete global training batch of an epoch; false = keep it "
         "(ranks take what is left of it and the gradient is the mean over those samples)."),
    INT(data, crop_pad, 0, 0, 64, "Random crop after zero-padding by this many pixels; 0 = off."),
    BOOL(data, flip, false, "Random horizontal flip."),
    BOOL(data, random_resized_crop, false,
         "Random resized crop to image_size (file datasets, ImageNet style)."),
    FLOAT(data, rrc_min_scale, 0.08, 0.01, 1, "Smallest area fraction of a random resized crop."),
    INT(data, image_size, 0, 0, 1024,
        "Network input side in pixels (file datasets); 0 = native size."),
    INT(data, resize, 0, 0, 2048,
        "Evaluation: resize the shorter side to this, then center-crop image_size; 0 = off."),
    FLIST(data, mean, n_mean, -UNBOUNDED, UNBOUNDED,
          "Per-channel mean subtracted from inputs in [0,1]; 1 or 3 entries. "
          "Empty = the dataset's default."),
    FLIST(data, std, n_std, 1e-6, UNBOUNDED,
          "Per-channel standard deviation inputs are divided by; 1 or 3 entries. "
          "Empty = the dataset's default."),
    INT64(data, limit_train, 0, 0, UNBOUNDED, "Use only the first N training samples; 0 = all."),
    INT64(data, limit_test, 0, 0, UNBOUNDED, "Use only the first N test samples; 0 = all."),

    /* ---- model ---- */
    ENUM(model, arch, "",
         "fmnist_cnn|lenet5|vgg11|vgg13|vgg16|vgg19|resnet20|resnet32|resnet56|resnet110|"
         "resnet18|resnet34|resnet50|custom",
         "Network architecture; custom = the layers list below.", .flags = REQ),
    FLOAT(model, width, 1.0, 0.05, 8, "Channel width multiplier."),
    ENUM(model, shortcut, "A", "A|B",
         "CIFAR ResNet shortcut on downsampling: A = zero-padding identity, "
         "B = 1x1 convolution + batch norm."),
    INT(model, num_classes, 0, 0, 100000, "Number of classes; 0 = from the dataset."),
    {.path = "model.layers",
     .type = DP_SET_LAYERS,
     .offset = OFF(dp_layer_spec *, model.layers),
     .size = DP_MAX_CUSTOM_LAYERS,
     .count_offset = OFF(int, model.n_layers),
     .help = "Layers of a custom network, in order: a list of groups (fields below). "
             "Required with arch = \"custom\", not allowed otherwise."},

    /* ---- train ---- */
    INT(train, epochs, 0, 0, 100000, "Number of training epochs.", .flags = REQ),
    INT(train, batch, 128, 1, 1048576,
        "Global batch size per optimizer step (summed over ranks and accumulation)."),
    INT(train, accumulation, 1, 1, 4096, "Micro-batches accumulated per optimizer step."),
    FLOAT(train, lr, 0.1, 0, 100, "Peak learning rate (SGD)."),
    FLOAT(train, momentum, 0.9, 0, 0.9999, "SGD momentum."),
    BOOL(train, nesterov, false, "Nesterov momentum."),
    FLOAT(train, weight_decay, 5e-4, 0, 1, "L2 weight decay."),
    BOOL(train, no_decay_bn_bias, false, "Exclude batch-norm parameters and biases from decay."),
    FLOAT(train, label_smoothing, 0, 0, 0.99, "Label smoothing of the cross-entropy loss."),
    ENUM(train, schedule, "cosine", "constant|step|multistep|cosine", "Learning-rate schedule."),
    FLOAT(train, warmup_epochs, 0, 0, 1000,
          "Epochs of linear warmup from lr * warmup_start to lr (fractions allowed)."),
    FLOAT(train, warmup_start, 0.1, 0, 1, "Warmup starting factor of lr."),
    INT(train, step_size, 30, 1, 100000, "step schedule: epochs between decays by gamma."),
    ILIST(train, milestones, n_milestones, 1, 100000,
          "multistep schedule: epochs at which lr decays by gamma; strictly increasing. "
          "Required with schedule = \"multistep\"."),
    FLOAT(train, gamma, 0.1, 0, 1, "Decay factor of the step and multistep schedules."),
    FLOAT(train, min_lr, 0, 0, UNBOUNDED, "Floor of the cosine schedule."),
    INT(train, eval_every, 1, 0, 100000, "Epochs between evaluations; 0 = only at the end."),
    FLOAT(train, pcc_lambda, 0, -100, 100,
          "PCC loss (METHODS.md section 4): training minimises CE - pcc_lambda * mean pcc, the "
          "pixel-level cross-correlation of the channels of every prunable group's post-ReLU map "
          "(in [0, 1], averaged over samples and maps), so a positive value rewards correlated "
          "maps for ci to find (1.0 in the paper) and a negative one penalizes them; 0 = off. "
          "Fine-tuning after pruning always trains with CE only."),

    /* ---- dist ---- */
    ENUM(dist, allreduce, "auto", "auto|mpi|shm",
         "How gradients are summed over ranks. mpi = MPI_Iallreduce in buckets (overlap, "
         "bucket_mb); shm = every rank's gradient buffer is its slot of a shared-memory window "
         "and the ranks sum it in place after backward, each rank also taking the optimizer "
         "step for its slice of the parameters, which the ranks hold as one shared copy, as "
         "they do the Winograd layers' transformed weights (ranks on one node only; sum and "
         "step of 60 MB on 2 ranks in a quarter of MPI_Iallreduce's time for the sum alone); "
         "auto = shm when all ranks share one node and /dev/shm has room, else mpi."),
    BOOL(dist, overlap, true,
         "Allreduce gradients in buckets posted during backward (overlapping compute); "
         "false = one blocking allreduce after backward, for comparison. The mpi route only "
         "(dist.allreduce): the shared-memory route sums after backward."),
    FLOAT(dist, bucket_mb, 25, 0.001, 4096, "Gradient bucket size in MB (after the first)."),
    FLOAT(dist, first_bucket_mb, 1, 0.001, 4096,
          "Size of the first gradient bucket in MB (small, so communication starts early)."),
    BOOL(dist, sync_bn, false,
         "Sum batch-norm batch statistics across ranks in forward and backward "
         "(default: per-rank statistics, as PyTorch DDP)."),
    INT(dist, check_every, 0, 0, 1000000000,
        "Debug: every N steps check that all ranks hold bitwise-identical parameters and "
        "batch-norm buffers; 0 = off."),
    FLOAT(dist, watchdog_seconds, 600, 0, 1e7,
          "A collective that does not complete within this many seconds ends the job with a "
          "report of the ranks that have not arrived; 0 = off."),
    INT(dist, debug_stall_rank, -1, -1, 1000000, "Testing aid: the rank that stalls (-1 = none)."),
    INT(dist, debug_stall_step, 0, 0, 1000000000, "Testing aid: the step before which it stalls."),
    FLOAT(dist, debug_stall_seconds, 0, 0, 1e6, "Testing aid: how long it stalls."),
    INT(dist, debug_nan_step, -1, -1, 1000000000,
        "Testing aid: rank 0 poisons its input at this step to make the loss NaN (-1 = never)."),
    INT(dist, debug_perturb_rank, -1, -1, 1000000,
        "Testing aid: this rank perturbs one parameter after debug_perturb_step (-1 = none); "
        "needs allreduce = \"mpi\" (on the shared-memory route ranks share one copy)."),
    INT(dist, debug_perturb_step, 0, 0, 1000000000, "Testing aid: the step of the perturbation."),

    /* ---- prune ---- */
    ENUM(prune, criterion, "none", "none|l1|l2|slim|fpgm|fec|random|hrank|corr|ci|cip|csgd",
         "Channel-importance criterion (METHODS.md); none = train only; csgd = C-SGD (train "
         "clusters of filters to be identical, then merge them; settings in csgd)."),
    ENUM(prune, budget, "uniform", "uniform|ratios|global|flops|params|latency|threshold",
         "How much to cut: the same ratio in every group, a ratio per group, one global "
         "ranking (scores divided by their group's mean), a FLOPs, parameter or latency "
         "reduction target (bisection; latency is estimated from latency_table), or the "
         "criterion's own threshold (corr: tau, ci: cumulative tau)."),
    FLOAT(prune, ratio, 0.5, 0, 0.99, "uniform/global: fraction of channels removed."),
    FLIST(prune, ratios, n_ratios, 0, 0.99,
          "ratios: fraction removed per prunable group, in graph order (`dprune plan` lists "
          "the groups)."),
    FLOAT(prune, target, 0.5, 0, 0.99,
          "flops/params/latency: fraction of FLOPs, parameters or estimated latency removed."),
    FLOAT(prune, tau, 0.9, 0, 1,
          "threshold: corr removes while the largest kept correlation >= tau; ci keeps the "
          "highest-CI channels up to this fraction of the total CI."),
    INT(prune, min_channels, 4, 1, 1000000, "Every group keeps at least this many channels."),
    FLOAT(prune, min_keep, 0.1, 0, 1, "Every group keeps at least this fraction."),
    INT(prune, round_to, 1, 1, 1024, "Keep counts are multiples of this (8 helps speed)."),
    STR(prune, protect, "", "Comma-separated layer names whose output channels are never cut."),
    BOOL(prune, protect_first, true, "Never cut the first conv's output channels."),
    BOOL(prune, residual, false,
         "Also cut residual-stream groups (projection shortcuts only; every writer into the "
         "stream loses the same channels)."),
    INT(prune, rounds, 1, 1, 100, "Rounds of calibrate, plan, surgery, fine-tune."),
    INT(prune, finetune_epochs, 2, 0, 100000, "Fine-tune epochs after each round's surgery."),
    FLOAT(prune, finetune_lr, 0.01, 0, 100, "Peak learning rate of fine-tuning (cosine)."),
    INT(prune, calib_images, 512, 1, 10000000,
        "Training images (no augmentation, BN in eval mode) for data-driven statistics."),
    INT(prune, bn_recalib_batches, 20, 0, 100000,
        "Batches to re-estimate BN running statistics after surgery; 0 = off."),
    FLOAT(prune, bn_l1, 0, 0, 1,
          "slim: lambda of the sparsity term added to BN gamma gradients while training "
          "(1e-4 for VGG, 1e-5 for ResNet)."),
    BOOL(prune, corr_topology, false,
         "corr: redundancy = cosine of the absolute-correlation profiles instead of the absolute "
         "correlation."),
    ENUM(prune, corr_remove, "redundancy", "redundancy|weaker",
         "corr: which channel of the most redundant pair is removed: redundancy = the one more "
         "redundant with the other kept channels (METHODS.md section 2); weaker = the one with "
         "the smaller variance (NOTES.md: keeps the strong maps; better on Fashion-MNIST)."),
    BOOL(prune, corr_fold, true,
         "corr: in surgery, every consumer of a cut group gets the removed channels' means "
         "(measured on the map it reads; one per position for a linear after flatten) folded "
         "into its bias, or into the running mean of the BN that alone follows a bias-free "
         "consumer: exact for dead channels. false = off."),
    BOOL(prune, corr_compensate, false,
         "corr: also fold a least-squares reconstruction of every removed map from the kept ones "
         "into the consumers' weights (METHODS.md section 2); works with corr_fold off too."),
    BOOL(prune, fec_abs_mean, false,
         "fec: compress each kernel by its mean absolute weight instead of its mean."),
    BOOL(prune, fec_layerwise, false,
         "fec: cut one group per round in backward order (last layer first), fine-tuning "
         "fec_layer_epochs between groups; every group gets the width the one-shot plan gives "
         "it (decided once, on the model before pruning). Needs rounds = 1."),
    INT(prune, fec_layer_epochs, 1, 0, 100000,
        "fec_layerwise: fine-tune epochs after every group but the last (the last gets "
        "finetune_epochs)."),
    INT(prune, cip_steps, 4, 1, 1000,
        "cip: steps n of the cubic schedule: step t soft-zeroes the lowest-scored channels of "
        "the budget's fraction (1 - (1 - t/n)^3), after epoch t * cip_epochs / n; step n is the "
        "final plan and is cut physically."),
    BOOL(prune, cip_phi_tanh, true, "cip: tanh feature map (false = plain NISP, phi = 1)."),
    INT(prune, cip_epochs, 8, 0, 100000,
        "cip: epochs of the soft-pruning schedule before the cut, a multiple of cip_steps (0 = "
        "one shot). They count toward the epochs after the common checkpoint: to match a "
        "criterion fine-tuned F epochs give cip finetune_epochs = F - cip_epochs."),
    FLOAT(prune, cip_lr, 0.01, 0, 100, "cip: learning rate (constant) of the schedule's epochs."),
    STR(prune, latency_table, "",
        "latency: the per-layer time table of this model written by `dprune profile CONF` "
        "(docs/latency-table.md); relative to the config file.",
        .flags = PATH),
    ENUM(prune, latency_of, "inference", "inference|train",
         "latency: the time the target reduces: inference (forward, eval mode) or train "
         "(forward and backward; the table must hold training times)."),

    /* ---- csgd ---- */
    ENUM(csgd, clusters, "kmeans", "kmeans|even",
         "How a group's channels are clustered: k-means++ on the pacesetter's filters (rank 0, "
         "fixed seed) or even contiguous blocks."),
    INT(csgd, kmeans_inits, 10, 1, 1000, "k-means restarts; the lowest inertia wins."),
    FLOAT(csgd, centripetal, 3e-3, 0, 10,
          "Centripetal strength eps of kernels (CIFAR 3e-3, ImageNet 0.05). Member differences "
          "shrink by about lr (eps + weight_decay) / (1 - momentum) per step; the phase start "
          "prints when the threshold will be reached."),
    FLOAT(csgd, vector_ratio, 0.1, 0, 100,
          "Strength of BN gamma/beta and conv biases relative to centripetal."),
    INT(csgd, epochs, 10, 0, 100000,
        "Epoch limit of each C-SGD phase (it ends earlier once the deviation is below "
        "threshold)."),
    FLOAT(csgd, lr, 0.01, 0, 100, "Peak learning rate of a C-SGD phase."),
    ENUM(csgd, schedule, "constant", "constant|cosine", "Learning-rate schedule of a C-SGD phase."),
    FLOAT(csgd, threshold, 1e-6, 0, 1,
          "A C-SGD phase ends at the first epoch end where the relative within-cluster deviation "
          "(kernels and vectors, each relative to its squared norm) is below this."),
    ENUM(csgd, merge_keep, "first", "first|mean",
         "The merge keeps each cluster's first member, or sets it to the cluster mean first."),
    ENUM(csgd, merge_bn, "average", "average|reestimate",
         "Members' BN running statistics before the merge: averaged, or re-estimated on "
         "prune.bn_recalib_batches batches and then averaged."),
    ENUM(csgd, target, "budget", "budget|base_width",
         "Final widths: from prune.budget (uniform, ratios, flops or params), or the widths "
         "of the same model at model.width = 1 (train wider, then squeeze)."),

    /* ---- checkpoint ---- */
    INT(checkpoint, every_epochs, 1, 0, 100000,
        "Write a checkpoint after every N epochs of training and fine-tuning; 0 = only on "
        "SIGUSR1/SIGTERM."),
    INT(checkpoint, keep_last, 3, 1, 100000,
        "Checkpoints kept in run.dir (older ones are deleted)."),
    STR(checkpoint, resume, "none",
        "\"none\" = start fresh, \"auto\" = continue from the newest valid checkpoint in "
        "run.dir (damaged ones are skipped with a warning), or a checkpoint file to continue "
        "from. `dprune --resume CONF` is the same as \"auto\"."),
};

/* Fields of one model.layers entry. `used_by` lists the layer types taking a field; a field
 * given to another type is an error, since it is almost surely a mistake. */
#define LROW(name, t, ctype, ...)                                                                  \
    { .path = #name, .type = t, .offset = LOFF(ctype, name), __VA_ARGS__ }

static const dp_setting dp_layer_schema[] = {
    LROW(type, DP_SET_ENUM, char *, .size = FIELD_SIZE(dp_layer_spec, type), .def_str = "",
         .choices = "conv|bn|relu|maxpool|avgpool|gap|linear|flatten|dropout", .flags = REQ,
         .help = "Layer type."),
    LROW(out, DP_SET_INT, int, .min = 1, .max = 1048576, .used_by = "conv|linear",
         .required_for = "conv|linear", .help = "Output channels (conv) or features (linear)."),
    LROW(k, DP_SET_INT, int, .min = 1, .max = 64, .used_by = "conv|maxpool|avgpool",
         .required_for = "conv|maxpool|avgpool", .help = "Kernel size."),
    LROW(stride, DP_SET_INT, int, .def = 1, .min = 1, .max = 64, .used_by = "conv|maxpool|avgpool",
         .help = "Stride; pools default to k."),
    LROW(pad, DP_SET_INT, int, .def = 0, .min = 0, .max = 64, .used_by = "conv|maxpool|avgpool",
         .help = "Zero padding on each side."),
    LROW(bias, DP_SET_BOOL, bool, .def = 1, .min = 0, .max = 1, .used_by = "conv|linear",
         .help = "Learnable bias."),
    LROW(p, DP_SET_FLOAT, double, .def = 0.5, .min = 0, .max = 0.99, .used_by = "dropout",
         .help = "Drop probability."),
};

static const struct {
    const char *name, *help;
} dp_sections[] = {
    {"run", "Where results go, seeding and threads."},
    {"data", "Dataset, split and augmentation."},
    {"model", "Network architecture."},
    {"train", "Optimizer, batch and learning-rate schedule."},
    {"dist", "Data-parallel training over MPI: gradient buckets, sync-BN, checks, watchdog."},
    {"prune", "Structural pruning: criterion, budget, rounds, fine-tuning (METHODS.md)."},
    {"csgd", "Centripetal SGD: clusters, strengths, phase end and merge (METHODS.md section 6)."},
    {"checkpoint", "Crash-safe checkpoints and resuming (docs/checkpoint-format.md)."},
};

const dp_setting *dp_config_schema(size_t *count) {
    *count = sizeof dp_schema / sizeof dp_schema[0];
    return dp_schema;
}

const dp_setting *dp_config_layer_schema(size_t *count) {
    *count = sizeof dp_layer_schema / sizeof dp_layer_schema[0];
    return dp_layer_schema;
}

const char *dp_config_section_help(const char *section) {
    for (size_t i = 0; i < sizeof dp_sections / sizeof dp_sections[0]; i++) {
        if (strcmp(dp_sections[i].name, section) == 0) return dp_sections[i].help;
    }
    return NULL;
}
