/* CIP across ranks. Run with 1, 2 and 4 ranks.
 * - a schedule step's mask (calibration of every feature map, scores, plan at a fraction of
 *   the budget) is bitwise the same on W ranks as on one rank (each rank also computes it
 *   alone on MPI_COMM_SELF), scores included, for uniform, ratios and FLOPs budgets
 * - after soft-zeroing that mask every rank holds bitwise-identical parameters
 * - the fractions: uniform removes floor(f * ratio * C) per group; a FLOPs target reaches
 *   about f * target */
#include "app.h"
#include "dprune/cip.h"
#include "mpi_testutil.h"
#include "app_testutil.h"
#include <stdlib.h>
#include <string.h>

static const char *conf =
    "run = { dir = \"/tmp/dprune-test-mpi-cip\"; seed = 3; threads = 1; log_every = 0; };\n"
    "data = { dataset = \"fashion-mnist\"; limit_train = 300; limit_test = 64; };\n"
    "model = { arch = \"fmnist_cnn\"; width = 0.5; };\n"
    "train = { epochs = 1; batch = 32; };\n"
    "prune = { criterion = \"cip\"; budget = \"%s\"; ratio = 0.5; ratios = [0.25, 0.5, 0.75];"
    "  target = 0.4; protect_first = false; min_channels = 1; min_keep = 0.0;"
    "  calib_images = 300; };\n";

static void mask_bytes(dp_app *app, dp_app_data *d, dp_model *m, double fraction, uint8_t **buf,
                       size_t *len, dp_plan *keep) {
    trainer t;
    dp_error err = {0};
    dp_groups gs = {0};
    dp_plan plan = {0};
    CHECK_MSG(trainer_init(&t, app, d, m, &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(app_plan_round_at(&t, 1, fraction, &gs, &plan, &err) == DP_OK, "%s", err.msg);
    CHECK(dp_plan_serialize(&plan, buf, len, &err) == DP_OK);
    if (keep) *keep = plan, memset(&plan, 0, sizeof plan);
    dp_plan_free(&plan);
    dp_groups_free(&gs);
    trainer_free(&t);
}

static void check_budget(dp_app *world, const char *budget) {
    char text[1024];
    snprintf(text, sizeof text, conf, budget);
    dp_error err = {0};
    dp_app_data d;
    dp_model m;
    CHECK_MSG(dp_config_parse(&world->cfg, text, "test.cfg", ".", &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(app_open_data(&world->cfg, &d, &err) == DP_OK, "%s", err.msg);
    CHECK_MSG(app_build_model(world, &d, &m, &err) == DP_OK, "%s", err.msg);
    dp_app self = *world;
    dp_dist_self(&self.dist);
    snprintf(self.cfg.run.dir, sizeof self.cfg.run.dir, "/tmp/dprune-test-mpi-cip/self%d",
             world->dist.rank);
    dp_group_opts go;
    dp_group_opts_default(&go);
    go.protect_first_conv = false;
    dp_groups gs;
    CHECK(dp_groups_build(&m, &go, &gs, &err) == DP_OK);

    double fractions[2] = {dp_cip_schedule(1.0, 1, 3), 1.0};
    for (int f = 0; f < 2; f++) {
        uint8_t *wb = NULL, *sb = NULL;
        size_t wl = 0, sl = 0;
        dp_plan plan = {0};
        mask_bytes(world, &d, &m, fractions[f], &wb, &wl, &plan);
        mask_bytes(&self, &d, &m, fractions[f], &sb, &sl, NULL);
        CHECK_MSG(wl == sl && memcmp(wb, sb, wl) == 0,
                  "%s at %.3f of the budget: the mask on %d ranks differs from 1 rank", budget,
                  fractions[f], world->dist.world);
        bool scored = true;
        for (int g = 0; g < plan.n_groups; g++)
            scored &= !gs.groups[g].prunable || plan.groups[g].scores != NULL;
        CHECK(scored);
        if (!strcmp(budget, "uniform") || !strcmp(budget, "ratios")) {
            int i = 0, right = 1;
            for (int g = 0; g < gs.n_groups; g++) {
                if (!gs.groups[g].prunable) continue;
                double r = !strcmp(budget, "uniform") ? 0.5 : world->cfg.prune.ratios[i++];
                int C = gs.groups[g].channels;
                right &= C - plan.groups[g].n_keep == (int)floor(fractions[f] * r * C + 1e-9);
            }
            CHECK_MSG(right, "%s at %.3f: wrong counts", budget, fractions[f]);
        } else {
            CHECK_MSG(fabs(plan.achieved - fractions[f] * 0.4) < 0.03,
                      "flops at %.3f: reached %.4f for %.4f", fractions[f], plan.achieved,
                      fractions[f] * 0.4);
        }
        if (f == 0) { /* the step's soft zeroing leaves every rank with the same model */
            dp_model z;
            CHECK(dp_model_copy(&z, &m, true, &err) == DP_OK);
            CHECK(dp_cip_soft_zero(&z, &gs, &plan, NULL) > 0);
            CHECK_MSG(dp_dist_check_identical(&world->dist, &z, &err) == DP_OK, "%s", err.msg);
            dp_model_free(&z);
        }
        dp_plan_free(&plan);
        free(wb);
        free(sb);
    }
    dp_groups_free(&gs);
    dp_model_free(&m);
    app_close_data(&d);
}

int main(int argc, char **argv) {
    dp_app app;
    if (!app_test_init(&argc, &argv, &app)) return 1;
    app.dist.watchdog_seconds = 120;
    check_budget(&app, "uniform");
    check_budget(&app, "ratios");
    check_budget(&app, "flops");
    return dp_test_finish_mpi(&app.dist);
}
