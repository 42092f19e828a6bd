/* Config parsing, validation messages, path resolution, hash and the generated reference.
 *
 * DPRUNE_UPDATE_REFERENCE=1 ./test_config rewrites docs/config-reference.md (under
 * DPRUNE_SOURCE_DIR) from the schema; otherwise the test checks that the file is current.
 * DPRUNE_SHOW_ERRORS=1 prints every expected error message. */
#include "dprune/io.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *MINIMAL = "data = { dataset = \"mnist\"; };\n"
                             "model = { arch = \"lenet5\"; };\n"
                             "train = { epochs = 3; };\n";

/* Parses text as "test.cfg" from directory /cfgdir. */
static dp_status parse(const char *text, dp_config *cfg, dp_error *err) {
    memset(err, 0, sizeof *err);
    return dp_config_parse(cfg, text, "test.cfg", "/cfgdir", err);
}

/* The text must fail with DP_ERR_CONFIG and a message containing every given fragment. */
static void expect_error(int line, const char *text, const char *const *fragments) {
    static dp_config cfg; /* large; keep it off the stack */
    dp_error err;
    dp_status st = parse(text, &cfg, &err);
    CHECK_MSG(st == DP_ERR_CONFIG && err.code == DP_ERR_CONFIG,
              "case at line %d: status %d, message: %s", line, st, err.msg);
    if (getenv("DPRUNE_SHOW_ERRORS")) printf("%s\n", err.msg); /* to review the wording */
    for (const char *const *f = fragments; *f; f++)
        CHECK_MSG(strstr(err.msg, *f), "case at line %d: '%s' not in: %s", line, *f, err.msg);
}
#define EXPECT_ERROR(text, ...)                                                                    \
    expect_error(__LINE__, text, (const char *const[]){__VA_ARGS__, NULL})

static void test_full_config(void) {
    const char *text = "# a full config\n"
                       "run = {\n"
                       "  dir = \"runs/full\";\n"
                       "  seed = 7;\n"
                       "  threads = 2;\n"
                       "};\n"
                       "data = {\n"
                       "  dataset = \"cifar10\";\n"
                       "  path = \"/data/cifar\";\n"
                       "  val_split = 0.1;\n"
                       "  crop_pad = 4;\n"
                       "  flip = true;\n"
                       "  mean = [0.49, 0.48, 0.45];\n"
                       "  std = [0.25];\n"
                       "  limit_train = 5000000000L;\n"
                       "};\n"
                       "model = { arch = \"resnet20\"; width = 2; shortcut = \"B\"; };\n"
                       "train = {\n"
                       "  epochs = 160;\n"
                       "  batch = 256;\n"
                       "  lr = 1;\n" /* an integer where a float is expected */
                       "  nesterov = true;\n"
                       "  schedule = \"multistep\";\n"
                       "  milestones = [80, 120];\n"
                       "  gamma = 0.2;\n"
                       "  warmup_epochs = 0.5;\n"
                       "};\n";
    static dp_config cfg;
    dp_error err;
    dp_status st = parse(text, &cfg, &err);
    CHECK_MSG(st == DP_OK, "%s", err.msg);
    CHECK(strcmp(cfg.path, "test.cfg") == 0);
    CHECK(strcmp(cfg.base_dir, "/cfgdir") == 0);
    CHECK(strcmp(cfg.run.dir, "/cfgdir/runs/full") == 0);
    CHECK(cfg.run.seed == 7);
    CHECK(cfg.run.threads == 2);
    CHECK(cfg.run.log_every == 50); /* default */
    CHECK(strcmp(cfg.data.dataset, "cifar10") == 0);
    CHECK(strcmp(cfg.data.path, "/data/cifar") == 0);
    CHECK_CLOSE(cfg.data.val_split, 0.1, 0, 0);
    CHECK(cfg.data.crop_pad == 4 && cfg.data.flip);
    CHECK(cfg.data.prefetch && cfg.data.drop_last && !cfg.data.random_resized_crop);
    CHECK_CLOSE(cfg.data.rrc_min_scale, 0.08, 0, 0);
    CHECK(cfg.data.n_mean == 3 && cfg.data.n_std == 1);
    CHECK_CLOSE(cfg.data.mean[1], 0.48, 0, 0);
    CHECK_CLOSE(cfg.data.std[0], 0.25, 0, 0);
    CHECK(cfg.data.limit_train == 5000000000LL && cfg.data.limit_test == 0);
    CHECK(strcmp(cfg.model.arch, "resnet20") == 0);
    CHECK_CLOSE(cfg.model.width, 2.0, 0, 0);
    CHECK(strcmp(cfg.model.shortcut, "B") == 0);
    CHECK(cfg.model.num_classes == 0 && cfg.model.n_layers == 0);
    CHECK(cfg.train.epochs == 160 && cfg.train.batch == 256 && cfg.train.accumulation == 1);
    CHECK_CLOSE(cfg.train.lr, 1.0, 0, 0);
    CHECK_CLOSE(cfg.train.momentum, 0.9, 0, 0);
    CHECK(cfg.train.nesterov && !cfg.train.no_decay_bn_bias);
    CHECK_CLOSE(cfg.train.weight_decay, 5e-4, 0, 0);
    CHECK(strcmp(cfg.train.schedule, "multistep") == 0);
    CHECK(cfg.train.n_milestones == 2 && cfg.train.milestones[0] == 80 &&
          cfg.train.milestones[1] == 120);
    CHECK_CLOSE(cfg.train.gamma, 0.2, 0, 0);
    CHECK_CLOSE(cfg.train.warmup_epochs, 0.5, 0, 0);
    CHECK_CLOSE(cfg.train.warmup_start, 0.1, 0, 0);
    CHECK(cfg.train.step_size == 30 && cfg.train.eval_every == 1);
    CHECK(cfg.train.min_lr == 0 && cfg.train.label_smoothing == 0);
}

static void test_defaults(void) {
    static dp_config cfg;
    dp_error err;
    CHECK_MSG(parse(MINIMAL, &cfg, &err) == DP_OK, "%s", err.msg);
    /* every non-required scalar row holds its table default */
    size_t n;
    const dp_setting *rows = dp_config_schema(&n);
    for (size_t i = 0; i < n; i++) {
        const dp_setting *r = &rows[i];
        const char *p = (const char *)&cfg + r->offset;
        if (r->flags & DP_SET_REQUIRED) continue;
        bool ok = true;
        switch (r->type) {
        case DP_SET_INT:
            ok = *(const int *)p == (int)r->def;
            break;
        case DP_SET_INT64:
            ok = *(const int64_t *)p == (int64_t)r->def;
            break;
        case DP_SET_FLOAT:
            ok = *(const double *)p == r->def;
            break;
        case DP_SET_BOOL:
            ok = *(const bool *)p == (r->def != 0);
            break;
        case DP_SET_ENUM:
            ok = strcmp(p, r->def_str) == 0;
            break;
        case DP_SET_STRING:
            ok = r->flags & DP_SET_PATH && r->def_str[0]
                     ? strncmp(p, "/cfgdir/", 8) == 0 && strcmp(p + 8, r->def_str) == 0
                     : strcmp(p, r->def_str) == 0;
            break;
        default:
            ok = *(const int *)((const char *)&cfg + r->count_offset) == 0;
            break;
        }
        CHECK_MSG(ok, "default of %s", r->path);
    }
    CHECK(strcmp(cfg.run.dir, "/cfgdir/runs/default") == 0);
    CHECK(cfg.run.seed == 42 && cfg.run.threads == 0);
    CHECK(strcmp(cfg.data.path, "") == 0); /* "" = dataset default, left unresolved */
    CHECK(strcmp(cfg.model.shortcut, "A") == 0);
    CHECK_CLOSE(cfg.model.width, 1.0, 0, 0);
    CHECK(strcmp(cfg.train.schedule, "cosine") == 0 && cfg.train.batch == 128);
    CHECK_CLOSE(cfg.train.lr, 0.1, 0, 0);
    CHECK(cfg.data.n_mean == 0 && cfg.data.n_std == 0 && cfg.train.n_milestones == 0);
}

/* Every row is well formed: unique paths in a section, defaults inside their range. */
static void test_schema_consistency(void) {
    size_t n, nl;
    const dp_setting *rows = dp_config_schema(&n);
    const dp_setting *lrows = dp_config_layer_schema(&nl);
    CHECK(n > 40 && nl >= 7);
    for (size_t i = 0; i < n; i++) {
        const dp_setting *r = &rows[i];
        CHECK_MSG(strchr(r->path, '.') && r->help && r->help[0], "row %s", r->path);
        for (size_t j = 0; j < i; j++) CHECK_MSG(strcmp(rows[j].path, r->path), "dup %s", r->path);
        bool number = r->type == DP_SET_INT || r->type == DP_SET_INT64 || r->type == DP_SET_FLOAT;
        if (number && !(r->flags & DP_SET_REQUIRED))
            CHECK_MSG(r->def >= r->min && r->def <= r->max, "default of %s out of range", r->path);
        if (number) CHECK_MSG(r->min <= r->max, "range of %s", r->path);
        if (r->type == DP_SET_ENUM && r->def_str[0]) {
            char pat[80];
            snprintf(pat, sizeof pat, "|%s|", r->def_str);
            char all[600];
            snprintf(all, sizeof all, "|%s|", r->choices);
            CHECK_MSG(strstr(all, pat), "default of %s not a choice", r->path);
        }
        if (r->type == DP_SET_STRING || r->type == DP_SET_ENUM)
            CHECK_MSG(strlen(r->def_str) < r->size, "default of %s too long", r->path);
    }
    CHECK(strcmp(lrows[0].path, "type") == 0 && lrows[0].type == DP_SET_ENUM);
    CHECK(dp_config_section_help("train") != NULL && dp_config_section_help("nope") == NULL);
}

static void test_layers(void) {
    const char *text = "data = { dataset = \"fashion-mnist\"; };\n"
                       "model = {\n"
                       "  arch = \"custom\";\n"
                       "  layers = (\n"
                       "    { type = \"conv\"; out = 32; k = 3; pad = 1; bias = false; },\n"
                       "    { type = \"bn\"; },\n"
                       "    { type = \"relu\"; },\n"
                       "    { type = \"maxpool\"; k = 2; },\n"
                       "    { type = \"avgpool\"; k = 3; stride = 1; pad = 1; },\n"
                       "    { type = \"dropout\"; },\n"
                       "    { type = \"dropout\"; p = 0.25; },\n"
                       "    { type = \"flatten\"; },\n"
                       "    { type = \"linear\"; out = 10; }\n"
                       "  );\n"
                       "};\n"
                       "train = { epochs = 1; };\n";
    static dp_config cfg;
    dp_error err;
    CHECK_MSG(parse(text, &cfg, &err) == DP_OK, "%s", err.msg);
    const dp_layer_spec *L = cfg.model.layers;
    CHECK(cfg.model.n_layers == 9);
    CHECK(strcmp(L[0].type, "conv") == 0 && L[0].out == 32 && L[0].k == 3 && L[0].stride == 1 &&
          L[0].pad == 1 && !L[0].bias);
    CHECK(strcmp(L[1].type, "bn") == 0 && L[1].out == 0 && L[1].k == 0);
    CHECK(strcmp(L[3].type, "maxpool") == 0 && L[3].k == 2 && L[3].stride == 2 && L[3].pad == 0);
    CHECK(L[4].k == 3 && L[4].stride == 1 && L[4].pad == 1);
    CHECK_CLOSE(L[5].p, 0.5, 0, 0);
    CHECK_CLOSE(L[6].p, 0.25, 0, 0);
    CHECK(strcmp(L[8].type, "linear") == 0 && L[8].out == 10 && L[8].bias);

    /* several layers on one line: each field keeps its own value (the wrapped-literal check
     * reads the line and must not take another layer's `out` for this one's) */
    const char *one_line =
        "data = { dataset = \"mnist\"; };\ntrain = { epochs = 1; };\n"
        "model = { arch = \"custom\"; layers = ( { type = \"conv\"; out = 4; "
        "k = 3; }, { type = \"relu\"; }, { type = \"linear\"; out = 10; } ); };\n";
    CHECK_MSG(parse(one_line, &cfg, &err) == DP_OK, "%s", err.msg);
    CHECK(cfg.model.n_layers == 3 && L[0].out == 4 && L[2].out == 10);
    EXPECT_ERROR("data = { dataset = \"mnist\"; };\ntrain = { epochs = 1; };\n"
                 "model = { arch = \"custom\"; layers = ( { type = \"conv\"; out = 4; k = 3; }, "
                 "{ type = \"linear\"; out = 10000000000; } ); };\n",
                 "test.cfg:3:", "'model.layers[1].out'", "10000000000 does not fit");

    /* more than DP_MAX_CUSTOM_LAYERS entries */
    size_t cap = 64 * (DP_MAX_CUSTOM_LAYERS + 2) + 256;
    char *big = malloc(cap);
    int used = snprintf(big, cap,
                        "data = { dataset = \"mnist\"; };\ntrain = { epochs = 1; };\n"
                        "model = { arch = \"custom\"; layers = (");
    for (int i = 0; i <= DP_MAX_CUSTOM_LAYERS; i++)
        used += snprintf(big + used, cap - (size_t)used, "%s{ type = \"relu\"; }", i ? "," : "");
    snprintf(big + used, cap - (size_t)used, "); };\n");
    EXPECT_ERROR(big, "test.cfg:3:", "'model.layers'", "129 layers", "at most 128");
    free(big);
}

static void test_errors(void) {
    /* syntax, from libconfig, with origin:line */
    EXPECT_ERROR("data = { dataset = \"mnist\"; };\nmodel = { arch = ; };\n",
                 "test.cfg:2:", "syntax error", "missing ';'");
    EXPECT_ERROR("data = { dataset = \"mnist\";\n dataset = \"idx\"; };\n",
                 "test.cfg:2:", "duplicate setting");
    EXPECT_ERROR("data = { dataset = \"mnist\";\n mean = [0.5, 1]; };\n",
                 "test.cfg:2:", "mismatched element type", "1.0");

    /* unknown keys, at every level, with did-you-mean */
    EXPECT_ERROR("data = { dataset = \"mnist\"; };\nmodel = { arch = \"lenet5\"; };\n"
                 "train = {\n  epochs = 1;\n  lrr = 0.1;\n};\n",
                 "test.cfg:5:", "setting 'train.lrr'", "unknown setting",
                 "did you mean 'train.lr'?");
    EXPECT_ERROR("lr = 0.1;\n", "test.cfg:1:", "setting 'lr'", "did you mean 'train.lr'?");
    EXPECT_ERROR("data = { dataset = \"mnist\";\n  epochs = 3; };\n",
                 "test.cfg:2:", "setting 'data.epochs'", "did you mean 'train.epochs'?");
    EXPECT_ERROR("data = { dataset = \"mnist\"; };\ntrian = { epochs = 1; };\n",
                 "test.cfg:2:", "setting 'trian'", "unknown section", "did you mean 'train'?");
    EXPECT_ERROR("optimizer = { kind = \"sgd\"; };\n", "test.cfg:1:", "unknown section",
                 "known sections: run, data, model, train");
    EXPECT_ERROR("train = { epochs = 1; xyzzy_plugh = 3; };\n",
                 "test.cfg:1:", "setting 'train.xyzzy_plugh'",
                 "the train section has: epochs, batch");
    EXPECT_ERROR("train = 5;\n", "test.cfg:1:", "setting 'train'", "expected a section group");

    /* wrong types */
    EXPECT_ERROR("train = {\n  epochs = 1;\n  lr = \"fast\";\n};\n",
                 "test.cfg:3:", "setting 'train.lr'", "expected a number", "the string \"fast\"",
                 "e.g. lr = 0.1;");
    EXPECT_ERROR("train = {\n  epochs = 10.5;\n};\n", "test.cfg:2:", "setting 'train.epochs'",
                 "expected an integer", "10.5", "whole number");
    EXPECT_ERROR("data = {\n  flip = 1;\n};\n", "test.cfg:2:", "setting 'data.flip'",
                 "expected true or false", "the integer 1");
    EXPECT_ERROR("data = {\n  dataset = mnist;\n};\n", "test.cfg:2:"); /* bare word: syntax */
    EXPECT_ERROR("data = {\n  dataset = 3;\n};\n", "test.cfg:2:", "'data.dataset'",
                 "expected a string in double quotes");
    EXPECT_ERROR("train = { epochs = 1;\n milestones = 30; };\n",
                 "test.cfg:2:", "'train.milestones'", "expected a list of integers", "[100, 150]");
    EXPECT_ERROR("train = { epochs = 1;\n milestones = [30.5]; };\n",
                 "test.cfg:2:", "'train.milestones[0]'", "expected an integer");
    EXPECT_ERROR("run = {\n seed = 10000000000; };\n", "test.cfg:2:", "'run.seed'",
                 "10000000000 does not fit", "L suffix");

    /* out of range, enums */
    EXPECT_ERROR("train = {\n  epochs = 1;\n\n  lr = 500;\n};\n",
                 "test.cfg:4:", "setting 'train.lr'", "500 is out of range",
                 "allowed range is [0, 100]");
    EXPECT_ERROR("data = {\n  limit_test = -1;\n};\n", "test.cfg:2:", "'data.limit_test'",
                 "allowed range is >= 0");
    EXPECT_ERROR("data = { val_split = 0.6; };\n", "test.cfg:1:", "'data.val_split'",
                 "allowed range is [0, 0.5]");
    EXPECT_ERROR("train = { epochs = 1; batch = 0; };\n", "'train.batch'", "[1, 1048576]");
    EXPECT_ERROR("train = { epochs = 1; accumulation = 0; };\n", "'train.accumulation'",
                 "[1, 4096]");
    EXPECT_ERROR("train = { epochs = 1;\n pcc_lambda = 1000; };\n",
                 "test.cfg:2:", "'train.pcc_lambda'", "1000 is out of range", "[-100, 100]");
    EXPECT_ERROR("train = { epochs = 1; pcc_lambda = true; };\n", "'train.pcc_lambda'",
                 "expected a number");
    EXPECT_ERROR("data = { std = [0.5, 0.0, 0.5]; };\n", "test.cfg:1:", "'data.std[1]'",
                 "out of range");
    EXPECT_ERROR("model = {\n  arch = \"resnet21\";\n};\n", "test.cfg:2:", "'model.arch'",
                 "\"resnet21\" is not a valid choice", "did you mean \"resnet20\"?",
                 "allowed: \"fmnist_cnn\", \"lenet5\"", "\"custom\"");
    EXPECT_ERROR("train = { epochs = 1; schedule = \"linear\"; };\n", "'train.schedule'",
                 "allowed: \"constant\", \"step\", \"multistep\", \"cosine\"");

    /* missing required settings */
    EXPECT_ERROR("model = { arch = \"lenet5\"; };\ntrain = { epochs = 1; };\n",
                 "test.cfg: setting 'data.dataset': missing", "required",
                 "data = { dataset = \"fashion-mnist\"; }");
    EXPECT_ERROR("data = { dataset = \"mnist\"; };\ntrain = { epochs = 1; };\n",
                 "setting 'model.arch': missing");
    EXPECT_ERROR("data = { dataset = \"mnist\"; };\nmodel = { arch = \"vgg11\"; };\n",
                 "setting 'train.epochs': missing", "train = { epochs = 1; }");

    /* layers */
    const char *head = "data = { dataset = \"mnist\"; };\ntrain = { epochs = 1; };\n";
    char text[1024];
    snprintf(text, sizeof text,
             "%smodel = { arch = \"custom\"; layers = (\n  { type = \"conv\"; out = 8; },\n"
             "  { type = \"relu\"; } ); };\n",
             head);
    EXPECT_ERROR(text, "test.cfg:4:", "'model.layers[0].k'", "missing",
                 "conv layers require: out, k");
    snprintf(text, sizeof text,
             "%smodel = { arch = \"custom\"; layers = (\n  { type = \"conv\"; out = 8; k = 3;\n"
             "    strid = 2; } ); };\n",
             head);
    EXPECT_ERROR(text, "test.cfg:5:", "'model.layers[0].strid'", "unknown layer field",
                 "did you mean 'stride'?");
    snprintf(text, sizeof text,
             "%smodel = { arch = \"custom\"; layers = (\n  { type = \"linear\"; out = 8;\n"
             "    kernel_size = 2; } ); };\n",
             head);
    EXPECT_ERROR(text, "test.cfg:5:", "'model.layers[0].kernel_size'",
                 "linear layers take: type, out, bias");
    snprintf(text, sizeof text,
             "%smodel = { arch = \"custom\"; layers = (\n  { type = \"relu\"; },\n"
             "  { type = \"relu\"; out = 3; } ); };\n",
             head);
    EXPECT_ERROR(text, "test.cfg:5:", "'model.layers[1].out'", "not used by relu layers");
    snprintf(text, sizeof text,
             "%smodel = { arch = \"custom\"; layers = (\n  { type = \"conv2d\"; } ); };\n", head);
    EXPECT_ERROR(text, "test.cfg:4:", "'model.layers[0].type'", "did you mean \"conv\"?");
    snprintf(text, sizeof text, "%smodel = { arch = \"custom\"; layers = (\n  { out = 3; } ); };\n",
             head);
    EXPECT_ERROR(text, "test.cfg:4:", "'model.layers[0].type'", "missing",
                 "every layer needs a type");
    snprintf(text, sizeof text, "%smodel = { arch = \"custom\"; layers = (\n  \"conv\" ); };\n",
             head);
    EXPECT_ERROR(text, "test.cfg:4:", "'model.layers[0]'", "expected a layer group");
    snprintf(text, sizeof text,
             "%smodel = { arch = \"custom\"; layers = (\n  { type = \"dropout\"; p = 1.5; } ); "
             "};\n",
             head);
    EXPECT_ERROR(text, "test.cfg:4:", "'model.layers[0].p'", "[0, 0.99]");
    snprintf(text, sizeof text,
             "%smodel = {\n  arch = \"vgg11\";\n  layers = ( { type = \"relu\"; } );\n};\n", head);
    EXPECT_ERROR(text, "test.cfg:5:", "'model.layers'", "only allowed with arch = \"custom\"",
                 "arch is \"vgg11\"");
    snprintf(text, sizeof text, "%smodel = {\n  arch = \"custom\";\n};\n", head);
    EXPECT_ERROR(text, "test.cfg:4:", "'model.layers'", "missing", "at least one layer");

    /* cross-field */
    const char *mt = "model = { arch = \"lenet5\"; };\ntrain = { epochs = 1; };\n";
    snprintf(text, sizeof text, "data = { dataset = \"mnist\";\n  mean = [0.5, 0.5];\n};\n%s", mt);
    EXPECT_ERROR(text, "test.cfg:2:", "'data.mean'", "has 2 entries", "1 (all channels) or 3");
    snprintf(text, sizeof text, "data = { dataset = \"mnist\"; std = []; };\n%s", mt);
    EXPECT_ERROR(text, "test.cfg:1:", "'data.std'", "has 0 entries");
    EXPECT_ERROR("data = { dataset = \"mnist\"; };\nmodel = { arch = \"lenet5\"; };\n"
                 "train = { epochs = 1; milestones = [10,\n 30,\n 20]; };\n",
                 "test.cfg:5:", "'train.milestones'", "20 follows 30", "strictly increasing");
    snprintf(text, sizeof text, "%s", MINIMAL);
    strcat(text, "train = { epochs = 1; };\n"); /* duplicate section: libconfig syntax error */
    EXPECT_ERROR(text, "test.cfg:4:", "duplicate");
    EXPECT_ERROR("data = { dataset = \"mnist\"; };\nmodel = { arch = \"lenet5\"; };\n"
                 "train = { epochs = 1;\n schedule = \"multistep\"; };\n",
                 "test.cfg:4:", "'train.milestones'", "missing", "milestones = [100, 150]");
    /* cip: steps on whole epochs; no threshold budget */
    snprintf(text, sizeof text,
             "%sprune = { criterion = \"cip\"; cip_steps = 3;\n cip_epochs = 7; };\n", MINIMAL);
    EXPECT_ERROR(text, "test.cfg:5:", "'prune.cip_epochs'", "7 is not a multiple of cip_steps = 3",
                 "cip_epochs = 9;");
    snprintf(text, sizeof text, "%sprune = { criterion = \"cip\";\n cip_steps = 3; };\n", MINIMAL);
    EXPECT_ERROR(text, "test.cfg:5:", "'prune.cip_epochs'", "8 is not a multiple");
    snprintf(text, sizeof text, "%sprune = { criterion = \"cip\";\n budget = \"threshold\"; };\n",
             MINIMAL);
    EXPECT_ERROR(text, "test.cfg:5:", "'prune.budget'", "cip needs a ratio or a target");
    {
        static dp_config ok;
        dp_error e = {0};
        snprintf(text, sizeof text,
                 "%sprune = { criterion = \"cip\"; cip_steps = 3; cip_epochs = 0; };\n", MINIMAL);
        CHECK_MSG(parse(text, &ok, &e) == DP_OK, "%s", e.msg);
        CHECK(ok.prune.cip_epochs == 0 && ok.prune.cip_lr == 0.01);
    }

    /* a path that does not fit once resolved */
    char longdir[700];
    memset(longdir, 'x', 506); /* fits alone, not after "/cfgdir/" */
    longdir[506] = '\0';
    snprintf(text, sizeof text, "%srun = { dir = \"%s\"; };\n", MINIMAL, longdir);
    EXPECT_ERROR(text, "'run.dir'", "longer than 511 characters");
    memset(longdir, 'x', 600);
    longdir[600] = '\0';
    snprintf(text, sizeof text, "%srun = { dir = \"%s\"; };\n", MINIMAL, longdir);
    EXPECT_ERROR(text, "test.cfg:4:", "'run.dir'", "600 characters long", "at most 511");

    /* NULL origin: messages still carry a name */
    static dp_config cfg;
    dp_error err;
    CHECK(dp_config_parse(&cfg, "train = { lr = \"x\"; };", NULL, NULL, &err) == DP_ERR_CONFIG);
    CHECK_MSG(strstr(err.msg, "<config>:1:"), "%s", err.msg);
}

static void test_values_and_paths(void) {
    static dp_config cfg;
    dp_error err;
    char text[1024];
    /* 64-bit literals with L, an int where a float goes, relative and absolute paths */
    snprintf(text, sizeof text,
             "%srun = { dir = \"out/r1\"; seed = 10000000000L; };\n"
             "data = { dataset = \"mnist\"; path = \"../data\"; };\n",
             "model = { arch = \"lenet5\"; };\ntrain = { epochs = 1; momentum = 0; };\n");
    CHECK_MSG(parse(text, &cfg, &err) == DP_OK, "%s", err.msg);
    CHECK(cfg.run.seed == 10000000000LL);
    CHECK(strcmp(cfg.run.dir, "/cfgdir/out/r1") == 0);
    CHECK(strcmp(cfg.data.path, "/cfgdir/../data") == 0);
    CHECK(cfg.train.momentum == 0.0);

    CHECK(dp_config_parse(&cfg, text, "x.cfg", "/base/", &err) == DP_OK);
    CHECK(strcmp(cfg.run.dir, "/base/out/r1") == 0);
    CHECK(dp_config_parse(&cfg, text, "x.cfg", ".", &err) == DP_OK);
    CHECK(strcmp(cfg.run.dir, "out/r1") == 0);
    CHECK(dp_config_parse(&cfg, text, "x.cfg", "", &err) == DP_OK);
    CHECK(strcmp(cfg.run.dir, "out/r1") == 0);
    CHECK(strcmp(cfg.path, "x.cfg") == 0);

    snprintf(text, sizeof text, "%srun = { dir = \"/abs/run\"; };\n", MINIMAL);
    CHECK(dp_config_parse(&cfg, text, "x.cfg", "configs", &err) == DP_OK);
    CHECK(strcmp(cfg.run.dir, "/abs/run") == 0);
    char out[DP_PATH_MAX];
    dp_config_resolve_path(&cfg, "ckpt/a.bin", out, sizeof out);
    CHECK(strcmp(out, "configs/ckpt/a.bin") == 0);
    dp_config_resolve_path(&cfg, "/x/y", out, sizeof out);
    CHECK(strcmp(out, "/x/y") == 0);
    dp_config_resolve_path(&cfg, "", out, sizeof out);
    CHECK(strcmp(out, "") == 0);
    char tiny[8];
    dp_config_resolve_path(&cfg, "abcdefgh", tiny, sizeof tiny);
    CHECK(strlen(tiny) == 7); /* truncated, terminated */
}

static void test_hash(void) {
    static dp_config a, b;
    dp_error err;
    CHECK(parse(MINIMAL, &a, &err) == DP_OK);
    CHECK(parse(MINIMAL, &b, &err) == DP_OK);
    CHECK(a.hash == b.hash && a.hash != 0);
    char text[512];
    snprintf(text, sizeof text, "%s# comment\n", MINIMAL);
    CHECK(parse(text, &b, &err) == DP_OK);
    CHECK(a.hash != b.hash);
    /* FNV-1a 64 of "" is the offset basis */
    dp_config_parse(&b, "", "e.cfg", NULL, &err);
    CHECK(b.hash == 14695981039346656037ull);
}

static char *reference_text(void) {
    FILE *f = tmpfile();
    dp_config_write_reference(f);
    long len = ftell(f);
    char *buf = malloc((size_t)len + 1);
    rewind(f);
    buf[fread(buf, 1, (size_t)len, f)] = '\0';
    fclose(f);
    return buf;
}

static void test_reference(void) {
    char *ref = reference_text();
    size_t n, nl;
    const dp_setting *rows = dp_config_schema(&n);
    const dp_setting *lrows = dp_config_layer_schema(&nl);
    char key[128];
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "| `%s` |", rows[i].path);
        CHECK_MSG(strstr(ref, key), "reference lacks %s", rows[i].path);
        CHECK_MSG(strstr(ref, rows[i].help), "reference lacks the help of %s", rows[i].path);
    }
    for (size_t i = 0; i < nl; i++) {
        snprintf(key, sizeof key, "| `%s` |", lrows[i].path);
        CHECK_MSG(strstr(ref, key), "reference lacks layer field %s", lrows[i].path);
    }
    CHECK(strstr(ref, "\n## run\n") && strstr(ref, "\n## data\n") && strstr(ref, "\n## model\n") &&
          strstr(ref, "\n## train\n") && strstr(ref, "## model.layers entries"));
    CHECK(strstr(ref, "| `train.lr` | number | `0.1` | [0, 100] |"));
    CHECK(strstr(ref, "| `train.epochs` | integer | **required** |"));
    CHECK(strstr(ref, "| `conv` | out, k | stride, pad, bias |"));
    CHECK(strstr(ref, "| `relu` | - | - |"));
    CHECK(strstr(ref, "`cifar10`"));

    /* The minimal config printed in the reference parses. */
    const char *start = strstr(ref, "```\n"), *end = start ? strstr(start + 4, "```") : NULL;
    CHECK(start && end);
    if (start && end) {
        char minimal[512];
        snprintf(minimal, sizeof minimal, "%.*s", (int)(end - start - 4), start + 4);
        static dp_config cfg;
        dp_error err;
        CHECK_MSG(parse(minimal, &cfg, &err) == DP_OK, "%s", err.msg);
    }

    /* docs/config-reference.md must match the schema */
    if (getenv("DPRUNE_SOURCE_DIR")) {
        char path[1024];
        dp_test_source_path("docs/config-reference.md", path, sizeof path);
        if (getenv("DPRUNE_UPDATE_REFERENCE")) {
            FILE *f = fopen(path, "w");
            CHECK_MSG(f != NULL, "cannot write %s", path);
            if (f) fputs(ref, f), fclose(f);
            printf("wrote %s\n", path);
        }
        char *doc = NULL;
        dp_error err;
        CHECK_MSG(dp_read_text_file(path, &doc, NULL, &err) == DP_OK, "%s", err.msg);
        CHECK_MSG(doc && strcmp(doc, ref) == 0,
                  "%s is stale: rerun with DPRUNE_UPDATE_REFERENCE=1 (or `dprune config-help`)",
                  path);
        free(doc);
    }
    free(ref);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static void test_files(void) {
    char dir[] = "/tmp/dp_test_config_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], sub[256], text[512];
    snprintf(sub, sizeof sub, "%s/exp", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/exp/a.cfg", dir);
    snprintf(text, sizeof text, "%sdata = { dataset = \"idx\"; path = \"data\"; };\n",
             "model = { arch = \"lenet5\"; };\ntrain = { epochs = 2; };\n");
    write_file(path, text);

    static dp_config cfg;
    dp_error err;
    CHECK_MSG(dp_config_load_file(&cfg, path, &err) == DP_OK, "%s", err.msg);
    char want[300];
    snprintf(want, sizeof want, "%s/exp/data", dir);
    CHECK_MSG(strcmp(cfg.data.path, want) == 0, "%s", cfg.data.path);
    snprintf(want, sizeof want, "%s/exp/runs/default", dir);
    CHECK(strcmp(cfg.run.dir, want) == 0);
    CHECK(strcmp(cfg.path, path) == 0);
    snprintf(want, sizeof want, "%s/exp", dir);
    CHECK(strcmp(cfg.base_dir, want) == 0);

    char *buf;
    size_t len;
    CHECK(dp_read_text_file(path, &buf, &len, &err) == DP_OK);
    CHECK(len == strlen(text) && strcmp(buf, text) == 0);
    free(buf);

    /* errors in a file name the file */
    snprintf(path, sizeof path, "%s/exp/bad.cfg", dir);
    write_file(path, "train = {\n  epochs = -1;\n};\n");
    CHECK(dp_config_load_file(&cfg, path, &err) == DP_ERR_CONFIG);
    snprintf(want, sizeof want, "%s:2: setting 'train.epochs'", path);
    CHECK_MSG(strstr(err.msg, want), "%s", err.msg);

    /* missing file and a directory */
    snprintf(path, sizeof path, "%s/nope.cfg", dir);
    CHECK(dp_config_load_file(&cfg, path, &err) == DP_ERR_IO);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "No such file"), "%s", err.msg);
    CHECK(dp_read_text_file(sub, &buf, NULL, &err) == DP_ERR_IO);
    CHECK_MSG(strstr(err.msg, sub), "%s", err.msg);

    /* a file bigger than the first read chunk */
    snprintf(path, sizeof path, "%s/exp/long.cfg", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 2000; i++) fprintf(f, "# padding comment line %d\n", i);
    fputs(MINIMAL, f);
    fclose(f);
    CHECK_MSG(dp_config_load_file(&cfg, path, &err) == DP_OK, "%s", err.msg);
    CHECK(cfg.train.epochs == 3);

    snprintf(path, sizeof path, "%s/exp/a.cfg", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/exp/bad.cfg", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/exp/long.cfg", dir);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

int main(void) {
    test_full_config();
    test_defaults();
    test_schema_consistency();
    test_layers();
    test_errors();
    test_values_and_paths();
    test_hash();
    test_reference();
    test_files();
    return dp_test_finish();
}
