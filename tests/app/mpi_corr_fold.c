/* CorrTopo's fold is the same on 1, 2 and 4 ranks: every rank cuts the model through the real
 * round (calibration with the consumers' maps, plan and fold on rank 0, broadcast, surgery)
 * once with all ranks and once alone (MPI_COMM_SELF); the pruned parameters, BN buffers and
 * momentum agree bit for bit. The fold changes the result (a run without it differs), and
 * the compensated model's fc1 (a linear reading a flattened max-pooled map) differs from the
 * mean-only one. */
#include "app.h"
#include "mpi_testutil.h"
#include "app_testutil.h"
#include <stdlib.h>
#include <string.h>

static const char *conf =
    "run = { dir = \"/tmp/dprune-test-mpi-corr-fold\"; seed = 7; threads = 1; log_every = 0; };\n"
    "data = { dataset = \"fashion-mnist\"; limit_train = 300; limit_test = 64; };\n"
    "model = { arch = \"fmnist_cnn\"; width = 0.5; };\n"
    "train = { epochs = 1; batch = 32; momentum = 0.9; };\n"
    "prune = { criterion = \"corr\"; budget = \"ratios\"; ratios = [0.5, 0.6, 0.0];"
    "  protect_first = false; calib_images = 300; corr_fold = %s; corr_compensate = %s; };\n";

typedef struct {
    float *params, *buffers, *momentum;
    size_t np, nb;
} pruned;

/* The model after one cut round with app's view of the ranks. */
static void cut(dp_app *app, dp_app_data *d, const dp_model *m, const char *dir, pruned *out) {
    dp_error err = {0};
    dp_model copy;
    CHECK(dp_model_copy(&copy, m, true, &err) == DP_OK);
    dp_app local = *app;
    snprintf(local.cfg.run.dir, sizeof local.cfg.run.dir, "%s", dir);
    trainer t;
    CHECK_MSG(trainer_init(&t, &local, d, &copy, &err) == DP_OK, "%s", err.msg);
    /* a momentum that is not zero, the same on every rank, so its fold is seen too */
    for (size_t i = 0; i < copy.n_param_floats; i++) t.opt.momentum[i] = 0.01f * copy.param_data[i];
    CHECK_MSG(app_plan_and_cut(&t, 1, &err) == DP_OK, "%s", err.msg);
    out->np = t.m->n_param_floats, out->nb = t.m->n_buffer_floats;
    out->params = malloc(sizeof(float) * out->np);
    out->buffers = malloc(sizeof(float) * (out->nb + 1));
    out->momentum = malloc(sizeof(float) * out->np);
    memcpy(out->params, t.m->param_data, sizeof(float) * out->np);
    memcpy(out->buffers, t.m->buffer_data, sizeof(float) * out->nb);
    memcpy(out->momentum, t.opt.momentum, sizeof(float) * out->np);
    trainer_free(&t);
    dp_model_free(&copy);
}

static bool same(const pruned *a, const pruned *b) {
    return a->np == b->np && a->nb == b->nb &&
           !memcmp(a->params, b->params, sizeof(float) * a->np) &&
           !memcmp(a->buffers, b->buffers, sizeof(float) * a->nb) &&
           !memcmp(a->momentum, b->momentum, sizeof(float) * a->np);
}

static void drop(pruned *p) {
    free(p->params), free(p->buffers), free(p->momentum);
}

static void run(dp_app *world, const char *fold, const char *compensate, dp_app_data *d,
                dp_model *m, pruned *out) {
    char text[1024], dir[128];
    snprintf(text, sizeof text, conf, fold, compensate);
    dp_error err = {0};
    CHECK_MSG(dp_config_parse(&world->cfg, text, "test.cfg", ".", &err) == DP_OK, "%s", err.msg);
    if (!m->nodes) {
        CHECK_MSG(app_open_data(&world->cfg, d, &err) == DP_OK, "%s", err.msg);
        CHECK_MSG(app_build_model(world, d, m, &err) == DP_OK, "%s", err.msg);
    }
    snprintf(dir, sizeof dir, "/tmp/dprune-test-mpi-corr-fold/world%d", world->dist.world);
    cut(world, d, m, dir, out);
    dp_app self = *world;
    dp_dist_self(&self.dist);
    snprintf(dir, sizeof dir, "/tmp/dprune-test-mpi-corr-fold/self%d-%d", world->dist.world,
             world->dist.rank);
    pruned alone;
    cut(&self, d, m, dir, &alone);
    CHECK_MSG(same(out, &alone), "fold %s, compensate %s: %d ranks differ from 1 rank", fold,
              compensate, world->dist.world);
    drop(&alone);
}

int main(int argc, char **argv) {
    dp_app app;
    if (!app_test_init(&argc, &argv, &app)) return 1;
    app.dist.watchdog_seconds = 120;
    dp_app_data d;
    dp_model m = {0};
    pruned plain, mean, comp;
    run(&app, "false", "false", &d, &m, &plain);
    run(&app, "true", "false", &d, &m, &mean);
    run(&app, "true", "true", &d, &m, &comp);
    CHECK(plain.np == mean.np && mean.np == comp.np);
    if (plain.np == mean.np && mean.np == comp.np) {
        CHECK_MSG(memcmp(plain.buffers, mean.buffers, sizeof(float) * plain.nb) ||
                      memcmp(plain.params, mean.params, sizeof(float) * plain.np),
                  "the mean fold changed nothing");
        CHECK_MSG(memcmp(mean.params, comp.params, sizeof(float) * mean.np),
                  "compensation changed no weight");
    }
    drop(&plain), drop(&mean), drop(&comp);
    dp_model_free(&m);
    app_close_data(&d);
    return dp_test_finish_mpi(&app.dist);
}
