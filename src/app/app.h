/* app/: the command line, the phase driver and glue between config and modules.
 * Contains no algorithms; only app/ exits. */
#ifndef DPRUNE_APP_H
#define DPRUNE_APP_H

#include "dprune/data.h"
#include "dprune/dist.h"
#include "dprune/io.h"
#include "dprune/model.h"

typedef struct {
    dp_dist dist;
    dp_config cfg;
    int threads;
} dp_app;

/* Datasets and how samples become inputs, from the config. */
typedef struct {
    dp_dataset train_ds, test_ds;
    dp_split train, val, test;
    dp_augment aug;
    int in_c, in_h, in_w, num_classes;
} dp_app_data;

/* Rank 0 reads the file, broadcasts its text; every rank parses the same bytes. Collective. */
dp_status app_load_config(dp_app *app, const char *path, dp_error *err);
dp_status app_open_data(const dp_config *cfg, dp_app_data *d, dp_error *err);
void app_close_data(dp_app_data *d);
/* Builds the configured model for the data's input shape and initialises it on rank 0 (seeded),
 * then broadcasts parameters and buffers so every rank starts identical. */
dp_status app_build_model(const dp_app *app, const dp_app_data *d, dp_model *m, dp_error *err);

int app_cmd_train(dp_app *app);
int app_cmd_summary(dp_app *app);

#endif
