/* Training with the PCC term (train.pcc_lambda) gives the single-rank answer. Run with 1, 2 and
 * 4 ranks.
 * - W ranks with global batch B == 1 rank with batch B (sync-BN model, augmentation, dropout),
 *   to the tolerance of mpi_trainer; all ranks hold bitwise-identical parameters
 * - 1 rank with gradient accumulation == W ranks without (model without BN): the term is
 *   normalised by the global batch, like the cross-entropy
 * - the term changes the training (the same run with lambda 0 ends elsewhere), and a negative
 *   lambda trains differently from a positive one */
#include "app.h"
#include "mpi_testutil.h"
#include "trainer_testutil.h"
#include "app_testutil.h"

#define DIR "/tmp/dprune-test-mpi-trainer-pcc"

/* two convs with post-ReLU maps of 14x14 and 7x7 pixels; the first conv is not protected, so
 * both groups are prunable and both maps carry the term */
static const char *conf_bn =
    "run = { dir = \"" DIR "\"; seed = 7; threads = 1; log_every = 0; };\n"
    "data = { dataset = \"fashion-mnist\"; limit_train = 512; limit_test = 100; crop_pad = 2;"
    "  flip = true; };\n"
    "model = { arch = \"custom\"; layers = (\n"
    "  { type = \"conv\"; out = 8; k = 3; pad = 1; bias = false; }, { type = \"bn\"; },\n"
    "  { type = \"relu\"; }, { type = \"maxpool\"; k = 2; },\n"
    "  { type = \"conv\"; out = 8; k = 3; stride = 2; pad = 1; bias = false; },\n"
    "  { type = \"bn\"; },\n"
    "  { type = \"relu\"; }, { type = \"dropout\"; p = 0.3; }, { type = \"flatten\"; },\n"
    "  { type = \"linear\"; out = 10; } ); };\n"
    "train = { epochs = 1; batch = 64; lr = 0.05; momentum = 0.9; nesterov = true;"
    "  eval_every = 0; pcc_lambda = %g; };\n"
    "dist = { sync_bn = true; bucket_mb = 0.002; first_bucket_mb = 0.001; };\n"
    "prune = { protect_first = false; };\n";

/* no BN: accumulation and sharding then compute the same function of the same samples */
static const char *conf_nobn =
    "run = { dir = \"" DIR "\"; seed = 11; threads = 1; log_every = 0; };\n"
    "data = { dataset = \"fashion-mnist\"; limit_train = 512; limit_test = 100; crop_pad = 2;"
    "  flip = true; };\n"
    "model = { arch = \"custom\"; layers = (\n"
    "  { type = \"conv\"; out = 6; k = 5; stride = 2; }, { type = \"relu\"; },\n"
    "  { type = \"conv\"; out = 8; k = 3; pad = 1; }, { type = \"relu\"; },\n"
    "  { type = \"linear\"; out = 10; } ); };\n"
    "train = { epochs = 1; batch = 64; accumulation = %d; lr = 0.05; momentum = 0.9;"
    "  eval_every = 0; pcc_lambda = 2.0; };\n"
    "prune = { protect_first = false; };\n";

/* the one-rank view with another config; its own run directory per world rank */
static void reconfigure(dp_app *self, const dp_app *world, const char *text) {
    dp_error err = {0};
    CHECK_MSG(dp_config_parse(&self->cfg, text, "test.cfg", ".", &err) == DP_OK, "%s", err.msg);
    snprintf(self->cfg.run.dir, sizeof self->cfg.run.dir, DIR "/self%d", world->dist.rank);
}

static void test_ranks_match_one_rank(dp_app *world) {
    char text[2048];
    snprintf(text, sizeof text, conf_bn, 2.0);
    dp_app_data d;
    dp_model m;
    snapshot init, pw;
    setup_and_train(world, text, &d, &m, &init, &pw);
    dp_error err = {0};
    CHECK_MSG(dp_dist_check_identical(&world->dist, &m, &err) == DP_OK, "%s", err.msg);

    /* the one-rank reference, computed by every rank alone */
    dp_app self = self_view(world, DIR);
    restore(&m, &init);
    CHECK(train(&self, &d, &m) == DP_OK);
    double rel = worst_rel(&m, pw.params, m.param_data);
    if (world->dist.rank == 0)
        printf("PCC: W=%d ranks vs 1 rank (sync-BN): worst per-tensor relative difference %.3g\n",
               world->dist.world, rel);
    CHECK_MSG(rel <= 1e-5, "PCC: W=%d vs 1 rank: worst relative parameter difference %.3g",
              world->dist.world, rel);

    /* the term matters: lambda 0 and lambda -2 end elsewhere */
    for (int k = 0; k < 2; k++) {
        double lambda = k == 0 ? 0.0 : -2.0;
        snprintf(text, sizeof text, conf_bn, lambda);
        reconfigure(&self, world, text);
        restore(&m, &init);
        CHECK(train(&self, &d, &m) == DP_OK);
        double apart = worst_rel(&m, pw.params, m.param_data);
        if (world->dist.rank == 0)
            printf("PCC: lambda 2 vs %g: worst per-tensor relative difference %.3g\n", lambda,
                   apart);
        CHECK_MSG(apart > 1e-3, "lambda 2 and %g train alike (%.3g)", lambda, apart);
    }
    drop(&init), drop(&pw);
    dp_model_free(&m);
    app_close_data(&d);
}

static void test_accumulation_matches_ranks(dp_app *world) {
    int W = world->dist.world;
    char text[2048];
    snprintf(text, sizeof text, conf_nobn, 1);
    dp_app_data d;
    dp_model m;
    snapshot init, pw;
    setup_and_train(world, text, &d, &m, &init, &pw);
    dp_model_free(&m);
    app_close_data(&d);

    /* 1 rank accumulating W micro-batches (each as large as one rank's share) */
    dp_app self = self_view(world, DIR);
    snprintf(text, sizeof text, conf_nobn, W);
    setup(&self, text, &d, &m);
    reconfigure(&self, world, text);
    restore(&m, &init);
    CHECK(train(&self, &d, &m) == DP_OK);
    double rel = worst_rel(&m, pw.params, m.param_data);
    if (world->dist.rank == 0)
        printf("PCC: W=%d ranks vs 1 rank x %d accumulation: worst relative difference %.3g\n", W,
               W, rel);
    CHECK_MSG(rel <= 1e-5, "PCC: W=%d vs 1 rank x %d accumulation: worst relative difference %.3g",
              W, W, rel);
    drop(&init), drop(&pw);
    dp_model_free(&m);
    app_close_data(&d);
}

int main(int argc, char **argv) {
    dp_app app;
    if (!app_test_init(&argc, &argv, &app)) return 1;
    test_ranks_match_one_rank(&app);
    test_accumulation_matches_ranks(&app);
    return dp_test_finish_mpi(&app.dist);
}
