/* Glue from the config to data and model: which files, which input shape, which defaults. */
#include "app.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool app_start(dp_app *app, int *argc, char ***argv) {
    memset(app, 0, sizeof *app);
    dp_error err = {0};
    if (dp_dist_init(argc, argv, &app->dist, &err) != DP_OK) {
        fprintf(stderr, "dprune: error: %s\n", err.msg);
        return false;
    }
    return true;
}

void app_setup_threads(dp_app *app) {
    int fair = dp_dist_fair_threads(&app->dist); /* collective: every rank asks */
    const char *env = getenv("OMP_NUM_THREADS");
    int n = app->cfg.run.threads;
    if (n <= 0) n = env && atoi(env) > 0 ? atoi(env) : fair;
    app->threads = dp_threads_setup(n);
}

dp_status app_make_run_dir(const char *dir, dp_error *err) {
    char buf[DP_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return dp_fail(err, DP_ERR_IO, "cannot create directory '%s': %s", buf,
                           strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return dp_fail(err, DP_ERR_IO, "cannot create run directory '%s' (run.dir): %s", buf,
                       strerror(errno));
    return DP_OK;
}

dp_status app_load_config(dp_app *app, const char *path, dp_error *err) {
    char *text = NULL;
    size_t len = 0;
    dp_status st = DP_OK;
    if (app->dist.rank == 0) st = dp_read_text_file(path, &text, &len, err);
    if ((st = dp_dist_check(&app->dist, st, err)) != DP_OK) return st;
    if ((st = dp_dist_bcast_text(&app->dist, &text, &len, 0, err)) != DP_OK) return st;
    /* relative paths resolve against the config file's directory */
    char dir[DP_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    st = dp_config_parse(&app->cfg, text, path, dir, err);
    app->cfg_text = text; /* kept: checkpoints carry the config */
    return st;
}

static bool file_exists(const char *p) {
    struct stat s;
    return stat(p, &s) == 0;
}

static void set_norm(dp_augment *a, const dp_data_config *dc, const float *mean, const float *std) {
    for (int c = 0; c < 3; c++) {
        a->mean[c] = dc->n_mean == 3   ? (float)dc->mean[c]
                     : dc->n_mean == 1 ? (float)dc->mean[0]
                                       : mean[c];
        a->std[c] = dc->n_std == 3   ? (float)dc->std[c]
                    : dc->n_std == 1 ? (float)dc->std[0]
                                     : std[c];
    }
}

static dp_status open_idx_pair(const char *dir, dp_app_data *d, dp_error *err) {
    char ti[DP_PATH_MAX + 64], tl[DP_PATH_MAX + 64], vi[DP_PATH_MAX + 64], vl[DP_PATH_MAX + 64];
    snprintf(ti, sizeof ti, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(tl, sizeof tl, "%s/train-labels-idx1-ubyte.gz", dir);
    snprintf(vi, sizeof vi, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(vl, sizeof vl, "%s/t10k-labels-idx1-ubyte.gz", dir);
    /* uncompressed copies are accepted too */
    if (!file_exists(ti)) ti[strlen(ti) - 3] = 0, tl[strlen(tl) - 3] = 0;
    if (!file_exists(vi)) vi[strlen(vi) - 3] = 0, vl[strlen(vl) - 3] = 0;
    dp_status st = dp_dataset_load_idx(&d->train_ds, ti, tl, 10, err);
    if (st == DP_OK) st = dp_dataset_load_idx(&d->test_ds, vi, vl, 10, err);
    return st;
}

static dp_status open_cifar(const char *dir, bool c100, dp_app_data *d, dp_error *err) {
    char paths[6][DP_PATH_MAX + 32];
    const char *train[5];
    int n = 0;
    if (c100) {
        snprintf(paths[0], sizeof paths[0], "%s/train.bin", dir);
        train[n++] = paths[0];
    } else {
        for (int i = 1; i <= 5; i++) {
            snprintf(paths[n], sizeof paths[n], "%s/data_batch_%d.bin", dir, i);
            if (file_exists(paths[n])) train[n] = paths[n], n++;
        }
        if (n == 0)
            return dp_fail(
                err, DP_ERR_IO,
                "data.path '%s': no data_batch_1..5.bin found (CIFAR-10 binary version expected)",
                dir);
    }
    snprintf(paths[5], sizeof paths[5], "%s/%s", dir, c100 ? "test.bin" : "test_batch.bin");
    const char *test[1] = {paths[5]};
    dp_status st = dp_dataset_load_cifar(&d->train_ds, train, n, c100, err);
    if (st == DP_OK) st = dp_dataset_load_cifar(&d->test_ds, test, 1, c100, err);
    return st;
}

dp_status app_open_data(const dp_config *cfg, dp_app_data *d, dp_error *err) {
    memset(d, 0, sizeof *d);
    const dp_data_config *dc = &cfg->data;
    const char *ds = dc->dataset;
    dp_augment *a = &d->aug;
    dp_status st;
    char dir[DP_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", dc->path);
    if (!strcmp(ds, "fashion-mnist") && !dir[0])
        snprintf(dir, sizeof dir, "/usr/share/datasets/fashion-mnist");
    if (!dir[0])
        return dp_fail(err, DP_ERR_CONFIG, "%s: setting 'data.path' is required for dataset '%s'",
                       cfg->path, ds);

    if (!strcmp(ds, "fashion-mnist") || !strcmp(ds, "mnist") || !strcmp(ds, "idx")) {
        static const float fm[3] = {0.2860f, 0.2860f, 0.2860f}, fs[3] = {0.3530f, 0.3530f, 0.3530f};
        static const float mm[3] = {0.1307f, 0.1307f, 0.1307f}, ms[3] = {0.3081f, 0.3081f, 0.3081f};
        st = open_idx_pair(dir, d, err);
        bool fashion = !strcmp(ds, "fashion-mnist");
        set_norm(a, dc, fashion ? fm : mm, fashion ? fs : ms);
    } else if (!strcmp(ds, "cifar10") || !strcmp(ds, "cifar100")) {
        static const float cm[3] = {0.4914f, 0.4822f, 0.4465f}, cs[3] = {0.2470f, 0.2435f, 0.2616f};
        st = open_cifar(dir, !strcmp(ds, "cifar100"), d, err);
        set_norm(a, dc, cm, cs);
    } else { /* imagefolder */
        static const float im[3] = {0.485f, 0.456f, 0.406f}, is[3] = {0.229f, 0.224f, 0.225f};
        char tr[DP_PATH_MAX + 16], va[DP_PATH_MAX + 16];
        snprintf(tr, sizeof tr, "%s/train", dir);
        snprintf(va, sizeof va, "%s/val", dir);
        st = dp_dataset_load_imagefolder(&d->train_ds, tr, err);
        if (st == DP_OK) st = dp_dataset_load_imagefolder(&d->test_ds, va, err);
        if (st == DP_OK && d->test_ds.num_classes != d->train_ds.num_classes)
            st = dp_fail(err, DP_ERR_DATA, "%s: %d classes in train/ but %d in val/", dir,
                         d->train_ds.num_classes, d->test_ds.num_classes);
        set_norm(a, dc, im, is);
    }
    if (st != DP_OK) return st;

    const dp_dataset *t = &d->train_ds;
    bool files = t->paths != NULL;
    d->in_c = files ? 3 : t->c;
    int side = dc->image_size > 0 ? dc->image_size : files ? 224 : t->h;
    d->in_h = files || dc->image_size > 0 ? side : t->h;
    d->in_w = files || dc->image_size > 0 ? side : t->w;
    d->num_classes = cfg->model.num_classes > 0 ? cfg->model.num_classes : t->num_classes;
    if (d->num_classes < t->num_classes || d->num_classes < d->test_ds.num_classes)
        return dp_fail(err, DP_ERR_CONFIG, "%s: model.num_classes = %d but the data has %d classes",
                       cfg->path, d->num_classes, t->num_classes);
    a->out_c = d->in_c, a->out_h = d->in_h, a->out_w = d->in_w;
    a->crop_pad = dc->crop_pad;
    a->flip = dc->flip;
    a->random_resized_crop = dc->random_resized_crop;
    a->rrc_min_scale = (float)dc->rrc_min_scale;
    a->resize = dc->resize > 0 ? dc->resize : files ? (side * 8 + 6) / 7 : 0;

    if (dc->limit_train > 0 && dc->limit_train < d->train_ds.n) d->train_ds.n = dc->limit_train;
    if (dc->limit_test > 0 && dc->limit_test < d->test_ds.n) d->test_ds.n = dc->limit_test;
    if (dc->val_split > 0)
        st = dp_split_val(&d->train_ds, dc->val_split, (uint64_t)cfg->run.seed, &d->train, &d->val,
                          err);
    else
        st = dp_split_all(&d->train, &d->train_ds, err);
    if (st == DP_OK) st = dp_split_all(&d->test, &d->test_ds, err);
    return st;
}

void app_close_data(dp_app_data *d) {
    dp_split_free(&d->train);
    dp_split_free(&d->val);
    dp_split_free(&d->test);
    dp_dataset_free(&d->train_ds);
    dp_dataset_free(&d->test_ds);
}

dp_status app_build_model(dp_app *app, const dp_app_data *d, dp_model *m, dp_error *err) {
    dp_status st =
        dp_model_build(m, &app->cfg.model, d->in_c, d->in_h, d->in_w, d->num_classes, err);
    if (st != DP_OK) return st;
    if (app->dist.rank == 0) dp_model_init_weights(m, (uint64_t)app->cfg.run.seed);
    st = dp_dist_bcast_bytes(&app->dist, m->param_data, m->n_param_floats * sizeof(float), 0, err);
    if (st == DP_OK)
        st = dp_dist_bcast_bytes(&app->dist, m->buffer_data, m->n_buffer_floats * sizeof(float), 0,
                                 err);
    return st;
}
