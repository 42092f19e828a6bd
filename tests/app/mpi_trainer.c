/* Data-parallel training gives the single-rank answer.
 * (No conv bias before a BN here: BN cancels its gradient, so it holds only rounding noise,
 * and a relative difference of noise is meaningless.) Run with 1, 2 and 4 ranks.
 * - W ranks with global batch B == 1 rank with batch B (sync-BN model, augmentation, dropout)
 * - 1 rank with gradient accumulation == W ranks without (model without BN, dropout), for
 *   each gradient route: MPI buckets, one blocking MPI allreduce, the shared-memory window
 *   (the first test runs the default, auto: the window on one node, where each rank steps
 *   its slice of the parameters); the momentum the run leaves matches too, on every rank
 * - all ranks hold bitwise-identical parameters; the same seed twice is bitwise identical
 * - sharded evaluation on W ranks gives exactly the single-rank counts */
#include "app.h"
#include "mpi_testutil.h"
#include "trainer_testutil.h"
#include "app_testutil.h"

static const char *conf_bn =
    "run = { dir = \"/tmp/dprune-test-mpi-trainer\"; seed = 7; threads = 1; log_every = 0; };\n"
    "data = { dataset = \"fashion-mnist\"; limit_train = 640; limit_test = 300; crop_pad = 2;"
    "  flip = true; };\n"
    "model = { arch = \"custom\"; layers = (\n"
    "  { type = \"conv\"; out = 8; k = 3; pad = 1; bias = false; }, { type = \"bn\"; },\n"
    "  { type = \"relu\"; }, { type = \"maxpool\"; k = 2; },\n"
    "  { type = \"conv\"; out = 8; k = 3; stride = 2; pad = 1; bias = false; },\n"
    "  { type = \"bn\"; },\n"
    "  { type = \"relu\"; }, { type = \"dropout\"; p = 0.3; }, { type = \"flatten\"; },\n"
    "  { type = \"linear\"; out = 10; } ); };\n"
    "train = { epochs = 1; batch = 64; lr = 0.05; momentum = 0.9; nesterov = true;"
    "  eval_every = 0; };\n"
    "dist = { sync_bn = true; bucket_mb = 0.002; first_bucket_mb = 0.001; };\n";

/* no BN: accumulation and sharding then compute the same function of the same samples. The
 * second conv runs on Winograd, whose transformed weights the ranks of the window route share
 * and transform part by part (dp_grad_sync_prepare_kept), once per step for all micro-batches
 * on 1 rank. */
static const char *conf_nobn =
    "run = { dir = \"/tmp/dprune-test-mpi-trainer\"; seed = 11; threads = 1; log_every = 0; };\n"
    "data = { dataset = \"fashion-mnist\"; limit_train = 512; limit_test = 100; crop_pad = 2;"
    "  flip = true; };\n"
    "model = { arch = \"custom\"; layers = (\n"
    "  { type = \"conv\"; out = 16; k = 5; stride = 2; }, { type = \"relu\"; },\n"
    "  { type = \"conv\"; out = 16; k = 3; pad = 1; }, { type = \"relu\"; },\n"
    "  { type = \"dropout\"; p = 0.2; }, { type = \"linear\"; out = 32; }, { type = \"relu\"; },\n"
    "  { type = \"linear\"; out = 10; } ); };\n"
    "train = { epochs = 1; batch = 64; accumulation = %d; lr = 0.05; momentum = 0.9;"
    "  eval_every = 0; };\n"
    "dist = { allreduce = \"%s\"; overlap = %s; };\n";

#define DIR "/tmp/dprune-test-mpi-trainer"

static void test_ranks_match_one_rank(dp_app *world) {
    dp_app_data d;
    dp_model m;
    snapshot init, pw, pw2;
    setup_and_train(world, conf_bn, &d, &m, &init, &pw);
    dp_error err = {0};
    CHECK_MSG(dp_dist_check_identical(&world->dist, &m, &err) == DP_OK, "%s", err.msg);

    /* same seed again: bitwise identical */
    restore(&m, &init);
    CHECK(train(world, &d, &m) == DP_OK);
    take(&m, &pw2);
    CHECK(memcmp(pw.params, pw2.params, sizeof(float) * m.n_param_floats) == 0);

    /* the one-rank reference, computed by every rank alone */
    dp_app self = self_view(world, DIR);
    restore(&m, &init);
    CHECK(train(&self, &d, &m) == DP_OK);
    double rel = worst_rel(&m, pw.params, m.param_data);
    if (world->dist.rank == 0)
        printf("W=%d ranks vs 1 rank (sync-BN): worst per-tensor relative difference %.3g\n",
               world->dist.world, rel);
    CHECK_MSG(rel <= 1e-5, "W=%d vs 1 rank: worst relative parameter difference %.3g",
              world->dist.world, rel);
    int moved = worst_rel(&m, init.params, m.param_data) > 1e-3;
    CHECK_MSG(moved, "training did not move the parameters");

    /* evaluation of one model: W ranks count exactly what one rank counts */
    restore(&m, &init);
    memcpy(m.param_data, pw.params, sizeof(float) * m.n_param_floats);
    trainer tw, t1;
    eval_result ew, e1;
    CHECK(trainer_init(&tw, world, &d, &m, &err) == DP_OK);
    CHECK(trainer_evaluate(&tw, &d.test, &ew, &err) == DP_OK);
    trainer_free(&tw);
    CHECK(trainer_init(&t1, &self, &d, &m, &err) == DP_OK);
    CHECK(trainer_evaluate(&t1, &d.test, &e1, &err) == DP_OK);
    trainer_free(&t1);
    CHECK(ew.count == d.test.n && e1.count == d.test.n);
    CHECK_MSG(ew.top1 == e1.top1 && ew.top5 == e1.top5, "top1 %lld vs %lld, top5 %lld vs %lld",
              (long long)ew.top1, (long long)e1.top1, (long long)ew.top5, (long long)e1.top5);
    CHECK_CLOSE(ew.loss_sum, e1.loss_sum, 1e-6, 1e-6);

    drop(&init), drop(&pw), drop(&pw2);
    dp_model_free(&m);
    app_close_data(&d);
}

static void test_accumulation_matches_ranks(dp_app *world, const char *route, bool overlap) {
    int W = world->dist.world;
    char text[2048];
    /* W ranks, no accumulation */
    snprintf(text, sizeof text, conf_nobn, 1, route, overlap ? "true" : "false");
    dp_app_data d;
    dp_model m;
    snapshot init, pw;
    setup(world, text, &d, &m);
    take(&m, &init);
    float *mom_w = malloc(sizeof(float) * m.n_param_floats),
          *mom_1 = malloc(sizeof(float) * m.n_param_floats);
    CHECK(train_momentum(world, &d, &m, mom_w) == DP_OK);
    take(&m, &pw);
    /* every rank holds all of the momentum (the sharded route gathers it at the epoch's end) */
    uint64_t h[2] = {dp_fnv1a(mom_w, sizeof(float) * m.n_param_floats), 0};
    h[1] = h[0];
    MPI_Allreduce(MPI_IN_PLACE, &h[0], 1, MPI_UINT64_T, MPI_MIN, world->dist.comm);
    MPI_Allreduce(MPI_IN_PLACE, &h[1], 1, MPI_UINT64_T, MPI_MAX, world->dist.comm);
    CHECK_MSG(h[0] == h[1], "%s: the ranks' momentum differs after training", route);
    dp_model_free(&m);
    app_close_data(&d);

    /* 1 rank accumulating W micro-batches (each as large as one rank's share) */
    dp_app self = self_view(world, DIR);
    snprintf(text, sizeof text, conf_nobn, W, "auto", "true");
    setup(&self, text, &d, &m);
    snprintf(self.cfg.run.dir, sizeof self.cfg.run.dir, DIR "/self%d", world->dist.rank);
    restore(&m, &init);
    CHECK(train_momentum(&self, &d, &m, mom_1) == DP_OK);
    double rel = worst_rel(&m, pw.params, m.param_data);
    double rel_mom = worst_rel(&m, mom_w, mom_1);
    CHECK_MSG(rel_mom <= 1e-5, "W=%d (%s) vs 1 rank: worst relative momentum difference %.3g", W,
              route, rel_mom);
    free(mom_w), free(mom_1);
    if (world->dist.rank == 0)
        printf("W=%d ranks (%s, overlap %d) vs 1 rank x %d accumulation: worst relative "
               "difference %.3g\n",
               W, route, overlap, W, rel);
    CHECK_MSG(rel <= 1e-5,
              "W=%d (%s, overlap %d) vs 1 rank x %d accumulation: worst relative "
              "difference %.3g",
              W, route, overlap, W, rel);
    drop(&init), drop(&pw);
    dp_model_free(&m);
    app_close_data(&d);
}

int main(int argc, char **argv) {
    dp_app app;
    if (!app_test_init(&argc, &argv, &app)) return 1;
    test_ranks_match_one_rank(&app);
    test_accumulation_matches_ranks(&app, "mpi", true);
    test_accumulation_matches_ranks(&app, "mpi", false);
    test_accumulation_matches_ranks(&app, "shm", true);
    return dp_test_finish_mpi(&app.dist);
}
