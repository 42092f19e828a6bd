/* Helpers of the MPI trainer tests: parameter snapshots, training a model from its current
 * weights, the per-tensor relative difference of two parameter sets, and the one-rank view
 * every rank uses to compute the single-rank reference on its own. */
#ifndef DPRUNE_TRAINER_TESTUTIL_H
#define DPRUNE_TRAINER_TESTUTIL_H

#include "app.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *params, *buffers;
} snapshot;

static inline void take(const dp_model *m, snapshot *s) {
    s->params = malloc(sizeof(float) * m->n_param_floats);
    s->buffers = malloc(sizeof(float) * (m->n_buffer_floats + 1));
    memcpy(s->params, m->param_data, sizeof(float) * m->n_param_floats);
    memcpy(s->buffers, m->buffer_data, sizeof(float) * m->n_buffer_floats);
}

static inline void restore(dp_model *m, const snapshot *s) {
    memcpy(m->param_data, s->params, sizeof(float) * m->n_param_floats);
    memcpy(m->buffer_data, s->buffers, sizeof(float) * m->n_buffer_floats);
}

static inline void drop(snapshot *s) {
    free(s->params);
    free(s->buffers);
}

/* Trains from the current weights with `app`'s view of the ranks; momentum (NULL or
 * n_param_floats) receives the optimizer's momentum as the run leaves it. */
static inline dp_status train_momentum(dp_app *app, dp_app_data *d, dp_model *m, float *momentum) {
    trainer t;
    dp_error err = {0};
    dp_status st = trainer_init(&t, app, d, m, &err);
    if (st == DP_OK) st = trainer_run(&t, &err);
    if (st != DP_OK) fprintf(stderr, "train: %s\n", err.msg);
    if (st == DP_OK && momentum)
        memcpy(momentum, t.opt.momentum, sizeof(float) * m->n_param_floats);
    trainer_free(&t);
    return st;
}

static inline dp_status train(dp_app *app, dp_app_data *d, dp_model *m) {
    return train_momentum(app, d, m, NULL);
}

/* max over tensors of ||a - b|| / ||b|| */
static inline double worst_rel(const dp_model *m, const float *a, const float *b) {
    double worst = 0;
    for (int p = 0; p < m->n_params; p++) {
        const dp_tensor_view *v = &m->params[p];
        double num = 0, den = 0;
        for (size_t j = 0; j < v->numel; j++) {
            double x = a[v->offset + j], y = b[v->offset + j];
            num += (x - y) * (x - y), den += y * y;
        }
        double r = sqrt(num) / (sqrt(den) + 1e-30);
        if (r > worst) worst = r;
    }
    return worst;
}

static inline void setup(dp_app *app, const char *text, dp_app_data *d, dp_model *m) {
    dp_error err = {0};
    CHECK_MSG(dp_config_parse(&app->cfg, text, "test.cfg", ".", &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(app_open_data(&app->cfg, d, &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(app_build_model(app, d, m, &err) == DP_OK, "%s", err.msg);
    app->dist.watchdog_seconds = 120; /* a hang fails the test instead of stalling CTest */
}

/* Sets up from `text` and trains on the world's ranks; init keeps the starting weights and
 * trained the weights training ended with (the model keeps them too). */
static inline void setup_and_train(dp_app *world, const char *text, dp_app_data *d, dp_model *m,
                                   snapshot *init, snapshot *trained) {
    setup(world, text, d, m);
    take(m, init);
    CHECK(train(world, d, m) == DP_OK);
    take(m, trained);
}

/* every rank runs the one-rank reference on its own: separate run directories under base */
static inline dp_app self_view(const dp_app *world, const char *base) {
    dp_app self = *world;
    snprintf(self.cfg.run.dir, sizeof self.cfg.run.dir, "%s/self%d", base, world->dist.rank);
    dp_dist_self(&self.dist);
    self.dist.watchdog_seconds = 120;
    return self;
}

#endif
