/* 1, 2 and 4 ranks compute bitwise-identical calibration statistics and plans: each rank also
 * runs the one-rank computation alone (MPI_COMM_SELF) and the bytes are compared. */
#include "app.h"
#include "calibrate.h"
#include "mpi_testutil.h"
#include "app_testutil.h"
#include <stdlib.h>
#include <string.h>

static const char *conf =
    "run = { dir = \"/tmp/dprune-test-mpi-prune\"; seed = 3; threads = 1; log_every = 0; };\n"
    "data = { dataset = \"fashion-mnist\"; limit_train = 300; limit_test = 64; };\n"
    "model = { arch = \"fmnist_cnn\"; width = 0.5; };\n"
    "train = { epochs = 1; batch = 32; };\n"
    "prune = { criterion = \"%s\"; budget = \"%s\"; ratio = 0.5; target = 0.4; tau = 0.8;"
    "  protect_first = false; calib_images = 300; };\n";

static void plan_bytes(dp_app *app, dp_app_data *d, dp_model *m, uint8_t **buf, size_t *len) {
    trainer t;
    dp_error err = {0};
    dp_groups gs = {0};
    dp_plan plan = {0};
    CHECK_MSG(trainer_init(&t, app, d, m, &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(app_plan_round(&t, 1, &gs, &plan, &err) == DP_OK, "%s", err.msg);
    CHECK(dp_plan_serialize(&plan, buf, len, &err) == DP_OK);
    dp_plan_free(&plan);
    dp_groups_free(&gs);
    trainer_free(&t);
}

static void check_criterion(dp_app *world, const char *crit, const char *budget) {
    char text[1024];
    snprintf(text, sizeof text, conf, crit, budget);
    dp_error err = {0};
    dp_app_data d;
    dp_model m;
    CHECK_MSG(dp_config_parse(&world->cfg, text, "test.cfg", ".", &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(app_open_data(&world->cfg, &d, &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(app_build_model(world, &d, &m, &err) == DP_OK, "%s", err.msg);

    uint8_t *wb = NULL, *sb = NULL;
    size_t wl = 0, sl = 0;
    plan_bytes(world, &d, &m, &wb, &wl);
    dp_app self = *world;
    dp_dist_self(&self.dist);
    snprintf(self.cfg.run.dir, sizeof self.cfg.run.dir, "/tmp/dprune-test-mpi-prune/self%d",
             world->dist.rank);
    plan_bytes(&self, &d, &m, &sb, &sl);
    /* every rank holds the broadcast plan, equal to the one it computed alone */
    CHECK_MSG(wl == sl && memcmp(wb, sb, wl) == 0, "%s/%s: plan on %d ranks differs from 1 rank",
              crit, budget, world->dist.world);

    /* the statistics themselves, bit for bit (rank 0 holds the totals) */
    calib_kind kind = !strcmp(crit, "corr") ? CALIB_CORR
                      : !strcmp(crit, "ci") ? CALIB_CI
                                            : CALIB_HRANK;
    dp_group_opts go;
    dp_group_opts_default(&go);
    go.protect_first_conv = false;
    dp_groups gs;
    CHECK(dp_groups_build(&m, &go, &gs, &err) == DP_OK);
    calib_set set;
    CHECK(calib_set_init(&set, &d.train, 300, 3, &err) == DP_OK);
    calib_result rw, rs;
    CHECK(calibrate(&world->dist, &m, &d, &set, &gs, kind, 3, &rw, &err) == DP_OK);
    CHECK(calibrate(&self.dist, &m, &d, &set, &gs, kind, 3, &rs, &err) == DP_OK);
    if (world->dist.rank == 0) {
        int same = 1, groups = 0;
        for (int g = 0; g < gs.n_groups; g++) {
            if (!rs.total[g]) continue;
            groups++;
            same &= rw.total[g] && rw.len[g] == rs.len[g] &&
                    memcmp(rw.total[g], rs.total[g], sizeof(double) * rs.len[g]) == 0;
        }
        CHECK_MSG(same && groups >= 2, "%s statistics differ between %d ranks and 1", crit,
                  world->dist.world);
    }
    calib_result_free(&rw);
    calib_result_free(&rs);
    calib_set_free(&set);
    dp_groups_free(&gs);
    free(wb);
    free(sb);
    dp_model_free(&m);
    app_close_data(&d);
}

int main(int argc, char **argv) {
    dp_app app;
    if (!app_test_init(&argc, &argv, &app)) return 1;
    app.dist.watchdog_seconds = 120;
    check_criterion(&app, "corr", "threshold");
    check_criterion(&app, "corr", "flops");
    check_criterion(&app, "hrank", "uniform");
    check_criterion(&app, "ci", "flops");
    check_criterion(&app, "l1", "global");
    return dp_test_finish_mpi(&app.dist);
}
