/* C-SGD across ranks. Run with 1, 2 and 4 ranks.
 * - every rank receives the same clusters (rank 0 decides and broadcasts)
 * - a C-SGD phase and its merge on W ranks give the single-rank parameters (sync-BN, so the
 *   global batch is the same computation) to the tolerance of mpi_trainer, and all ranks hold
 *   bitwise-identical parameters afterwards
 * - the merged model is smaller
 * The comparison uses even clusters: W ranks match one rank only to ~1e-7, and k-means, a
 * discontinuous function of the weights, may group near-ties differently on other weights. */
#include "app.h"
#include "mpi_testutil.h"
#include "trainer_testutil.h"
#include "app_testutil.h"

#define DIR "/tmp/dprune-test-mpi-csgd"

static const char *conf =
    "run = { dir = \"" DIR "\"; seed = 5; threads = 1; log_every = 0; };\n"
    "data = { dataset = \"fashion-mnist\"; limit_train = 512; limit_test = 64; drop_last = true; "
    "};\n"
    "model = { arch = \"custom\"; layers = (\n"
    "  { type = \"conv\"; out = 8; k = 3; pad = 1; bias = false; }, { type = \"bn\"; },\n"
    "  { type = \"relu\"; }, { type = \"maxpool\"; k = 2; },\n"
    "  { type = \"conv\"; out = 12; k = 3; stride = 2; pad = 1; bias = false; }, { type = \"bn\"; "
    "},\n"
    "  { type = \"relu\"; }, { type = \"flatten\"; },\n"
    "  { type = \"linear\"; out = 10; } ); };\n"
    "train = { epochs = 1; batch = 64; lr = 0.05; momentum = 0.9; nesterov = true;"
    "  eval_every = 0; weight_decay = 1e-4; };\n"
    "dist = { sync_bn = true; };\n"
    "prune = { criterion = \"csgd\"; ratio = 0.5; protect_first = false; min_channels = 1;"
    "  min_keep = 0.0; finetune_epochs = 0; };\n"
    "csgd = { clusters = \"even\"; centripetal = 0.05; vector_ratio = 1.0; epochs = 2; lr = 0.05; "
    "threshold = 0; };\n"
    "checkpoint = { every_epochs = 0; };\n";

/* training, then C-SGD round 1 (phase and merge) with `app`'s view of the ranks */
static dp_status train_and_merge(dp_app *app, dp_app_data *d, dp_model *m) {
    trainer t;
    dp_error err = {0};
    dp_status st = trainer_init(&t, app, d, m, &err);
    if (st == DP_OK) st = trainer_run(&t, &err);
    if (st == DP_OK) st = app_csgd_round(&t, 1, &err);
    if (st != DP_OK) fprintf(stderr, "csgd: %s\n", err.msg);
    trainer_free(&t);
    return st;
}

static void test_clusters_identical(dp_app *world, dp_app_data *d, dp_model *m) {
    trainer t;
    dp_error err = {0};
    dp_groups gs = {0};
    dp_csgd_clusters cl = {0};
    CHECK(trainer_init(&t, world, d, m, &err) == DP_OK);
    CHECK(app_build_groups(&world->cfg.prune, m, &gs, &err) == DP_OK);
    CHECK_MSG(app_csgd_decide(&t, 1, &gs, &cl, &err) == DP_OK, "%s", err.msg);
    int clustered = 0;
    for (int g = 0; g < cl.n_groups; g++) clustered += cl.n_clusters[g] > 0;
    CHECK(clustered == 2); /* both convs; the classifier is protected */
    uint64_t mine = t.csgd_state ? dp_fnv1a(t.csgd_state, t.csgd_state_len) : 0, root = mine;
    CHECK(dp_dist_bcast_bytes(&world->dist, &root, sizeof root, 0, &err) == DP_OK);
    int differ = mine != root;
    CHECK(dp_dist_sum_i64(&world->dist, (int64_t[]){differ}, 1, &err) == DP_OK);
    CHECK_MSG(mine == root, "rank %d holds other clusters than rank 0", world->dist.rank);
    dp_csgd_clusters_free(&cl);
    dp_groups_free(&gs);
    trainer_free(&t);
}

int main(int argc, char **argv) {
    dp_app world;
    if (!app_test_init(&argc, &argv, &world)) return 1;
    dp_error err = {0};
    dp_app_data d;
    dp_model m;
    setup(&world, conf, &d, &m);
    test_clusters_identical(&world, &d, &m);

    snapshot init;
    take(&m, &init);
    int64_t params_before = dp_model_params(&m);
    CHECK(train_and_merge(&world, &d, &m) == DP_OK);
    CHECK(dp_model_params(&m) < params_before);
    CHECK_MSG(dp_dist_check_identical(&world.dist, &m, &err) == DP_OK, "%s", err.msg);
    snapshot pw;
    take(&m, &pw);
    size_t n = m.n_param_floats;

    /* the one-rank reference, computed by every rank alone from the same start */
    dp_model ref;
    dp_app self = self_view(&world, DIR);
    CHECK(app_build_model(&self, &d, &ref, &err) == DP_OK);
    restore(&ref, &init);
    CHECK(train_and_merge(&self, &d, &ref) == DP_OK);
    CHECK(ref.n_param_floats == n);
    if (ref.n_param_floats == n) {
        double rel = worst_rel(&m, pw.params, ref.param_data);
        if (world.dist.rank == 0)
            printf("C-SGD + merge: W=%d ranks vs 1 rank: worst per-tensor relative difference "
                   "%.3g\n",
                   world.dist.world, rel);
        /* three epochs of steps (mpi_trainer: one), so float differences grow a little further */
        CHECK_MSG(rel <= 5e-5, "W=%d vs 1 rank: %.3g", world.dist.world, rel);
    }
    drop(&init), drop(&pw);
    dp_model_free(&ref);
    dp_model_free(&m);
    app_close_data(&d);
    return dp_test_finish_mpi(&world.dist);
}
