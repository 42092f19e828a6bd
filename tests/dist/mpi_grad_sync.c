/* Both routes of the gradient sum (src/dist/grad_sync.c) give every rank the exact sum over
 * ranks: MPI buckets posted during a simulated backward, one blocking allreduce, and the
 * shared-memory window (which lends the model its gradient buffer and gives it back, holding
 * the sum, on free, and lends it one copy of the parameters for all ranks, stepped slice by
 * slice, giving back the model's own buffer holding the stepped values); the activations'
 * kept Winograd weights as one copy, each rank transforming its part, the bits of one rank's. auto
 * picks the window on one node; shm without room in the backing directory is a config error on
 * every rank, auto then falls back to MPI. Run with 1, 2, 4. */
#include "dprune/dist.h"
#include "dprune/model.h"
#include "mpi_testutil.h"
#include "shm_sum.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float value(int rank, size_t i) {
    return (float)((int)((i * 13 + (size_t)rank * 101) % 2000) - 1000);
}

static void build(dp_model *m) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "resnet20");
    snprintf(mc.shortcut, sizeof mc.shortcut, "A");
    mc.width = 1.0;
    dp_error err = {0};
    CHECK_MSG(dp_model_build(m, &mc, 3, 32, 32, 10, &err) == DP_OK, "%s", err.msg);
}

/* the gradient holds exactly sum_q value(q, i) */
static size_t wrong_sums(const dp_model *m, int world) {
    size_t wrong = 0;
    for (size_t i = 0; i < m->n_param_floats; i++) {
        float expect = 0;
        for (int q = 0; q < world; q++) expect += value(q, i);
        wrong += m->grad_data[i] != expect;
    }
    return wrong;
}

/* the test's step: params -= summed gradient over [lo, hi) */
static void subtract(void *ctx, const float *sum, size_t lo, size_t hi) {
    dp_model *m = ctx;
    for (size_t i = lo; i < hi; i++) m->param_data[i] -= sum[i - lo];
}

static void test_route(dp_dist *d, dp_sum_route route, bool overlap, const char *want_name) {
    dp_model m;
    build(&m);
    float *own = m.grad_data, *own_params = m.param_data;
    for (size_t i = 0; i < m.n_param_floats; i++) m.param_data[i] = (float)(i % 301);
    dp_grad_sync_opts o = {
        .first_bytes = 20000, .bucket_bytes = 200000, .overlap = overlap, .route = route};
    dp_grad_sync *g = NULL;
    dp_error err = {0};
    CHECK_MSG(dp_grad_sync_create(&g, d, &m, &o, &err) == DP_OK, "%s", err.msg);
    if (!g) return;
    CHECK_MSG(strcmp(dp_grad_sync_route(g), want_name) == 0, "route %s, expected %s",
              dp_grad_sync_route(g), want_name);
    bool lent = strcmp(want_name, "shared memory") == 0;
    CHECK_MSG(lent == (m.grad_data != own), "%s: the gradient buffer %s lent", want_name,
              lent ? "was not" : "was");
    CHECK_MSG(lent == dp_grad_sync_shares_params(g) && lent == (m.param_data != own_params),
              "%s: the parameters %s shared", want_name, lent ? "are not" : "are");
    for (int step = 0; step < 2; step++) {
        for (size_t i = 0; i < m.n_param_floats; i++) m.grad_data[i] = value(d->rank, i);
        dp_grad_sync_begin(g);
        for (int node = m.n_nodes - 1; node >= 0; node--) dp_grad_sync_node_done(g, node);
        CHECK(dp_grad_sync_finish(g, &err) == DP_OK);
        size_t wrong = wrong_sums(&m, d->world);
        CHECK_MSG(wrong == 0, "%s step %d: %zu of %zu sums wrong", want_name, step, wrong,
                  m.n_param_floats);
        /* one step of params -= sum: on every rank alike, or slice by slice when shared */
        if (lent)
            CHECK(dp_grad_sync_step_shared(g, subtract, &m, &err) == DP_OK);
        else
            subtract(&m, m.grad_data, 0, m.n_param_floats);
    }
    dp_grad_sync_free(g);
    CHECK_MSG(m.grad_data == own && m.param_data == own_params,
              "%s: the model's own buffers are back", want_name);
    CHECK_MSG(wrong_sums(&m, d->world) == 0, "%s: the returned buffer holds the sum", want_name);
    size_t wrong = 0; /* every rank's own parameters hold both steps */
    for (size_t i = 0; i < m.n_param_floats; i++) {
        float expect = (float)(i % 301);
        for (int q = 0; q < d->world; q++) expect -= 2 * value(q, i);
        wrong += m.param_data[i] != expect;
    }
    CHECK_MSG(wrong == 0, "%s: %zu returned parameters wrong", want_name, wrong);
    dp_model_free(&m);
}

/* The kept Winograd weights as one copy for the node: each rank transforms its part, and
 * every rank then sees all of them, the bits one rank transforming alone gets. */
static void test_shared_kept(dp_dist *d) {
    dp_model m;
    build(&m);
    dp_model_init_weights(&m, 3); /* the same on every rank */
    dp_error err = {0};
    dp_activations a, ref;
    CHECK(dp_activations_alloc(&a, &m, 8, &err) == DP_OK);
    CHECK(dp_activations_alloc(&ref, &m, 8, &err) == DP_OK);
    size_t nk = dp_activations_kept_floats(&a, &m);
    CHECK_MSG(nk > 0, "resnet20 at batch 8 keeps Winograd weights");
    /* the reference: one rank transforms all of them, into the same layout */
    float *ref_buf = dp_alloc_floats(nk), *first = NULL;
    memset(ref_buf, 0, sizeof(float) * nk);
    dp_activations_lend_kept(&ref, &m, ref_buf);
    dp_model_prepare_kept(&m, &ref, 0, 1);
    dp_grad_sync_opts o = {.first_bytes = 20000, .bucket_bytes = 200000, .route = DP_SUM_SHM};
    dp_grad_sync *g = NULL;
    CHECK_MSG(dp_grad_sync_create(&g, d, &m, &o, &err) == DP_OK, "%s", err.msg);
    if (!g) return;
    CHECK_MSG(dp_grad_sync_share_kept(g, &a, &m, &err) == DP_OK, "%s", err.msg);
    CHECK(a.kept_lent == (d->world > 1));
    for (int i = 0; i < m.n_nodes && !first; i++) first = a.conv_kept[i].u;
    if (d->rank == 0 && a.kept_lent) memset(first, 0, sizeof(float) * nk); /* padding too */
    CHECK(dp_dist_barrier(d, &err) == DP_OK);
    for (int step = 0; step < 2 && a.kept_lent; step++) { /* the second over the first's */
        CHECK(dp_grad_sync_prepare_kept(g, &m, &a, &err) == DP_OK);
        CHECK_MSG(memcmp(first, ref_buf, sizeof(float) * nk) == 0,
                  "step %d rank %d: the shared kept weights differ from one rank's", step, d->rank);
        dp_activations_forget_kept(&a, &m);
        CHECK(dp_dist_barrier(d, &err) == DP_OK); /* all have read before the next writes */
    }
    dp_grad_sync_free(g);
    dp_activations_free(&a, &m);
    dp_activations_free(&ref, &m);
    dp_free(ref_buf);
    dp_model_free(&m);
}

/* no room for the window: shm is refused on every rank, auto falls back */
static void test_no_room(dp_dist *d) {
    setenv("OMPI_MCA_osc_sm_backing_directory", "/nonexistent-dprune-dir", 1);
    dp_model m;
    build(&m);
    dp_grad_sync_opts o = {.first_bytes = 20000, .bucket_bytes = 200000, .overlap = true};
    dp_grad_sync *g = NULL;
    dp_error err = {0};
    o.route = DP_SUM_SHM;
    dp_status st = dp_grad_sync_create(&g, d, &m, &o, &err);
    if (d->world > 1)
        CHECK_MSG(st == DP_ERR_CONFIG && strstr(err.msg, "dist.allreduce") &&
                      strstr(err.msg, "/nonexistent-dprune-dir"),
                  "status %d: %s", st, err.msg);
    else
        CHECK(st == DP_OK); /* one rank sums nothing */
    dp_grad_sync_free(g);
    o.route = DP_SUM_AUTO;
    CHECK(dp_grad_sync_create(&g, d, &m, &o, &err) == DP_OK);
    if (g) CHECK(strcmp(dp_grad_sync_route(g), "MPI buckets") == 0);
    dp_grad_sync_free(g);
    dp_model_free(&m);
    unsetenv("OMPI_MCA_osc_sm_backing_directory");
}

int main(int argc, char **argv) {
    dp_dist d;
    dp_error err = {0};
    if (dp_dist_init(&argc, &argv, &d, &err) != DP_OK) return 1;
    d.watchdog_seconds = 60;
    const char *window = d.world > 1 ? "shared memory" : "MPI buckets";
    test_route(&d, DP_SUM_MPI, true, "MPI buckets");
    test_route(&d, DP_SUM_MPI, false, "MPI, blocking");
    /* a machine whose /dev/shm cannot hold the window (a small container default) cannot run
     * the window route; test_no_room checks what happens then */
    size_t have = 0;
    if (dp_shm_room(dp_shm_backing_dir(), (size_t)(d.world + 1) * 300000 * sizeof(float), &have)) {
        test_route(&d, DP_SUM_SHM, true, window);
        test_route(&d, DP_SUM_AUTO, true, window);
        test_shared_kept(&d);
    } else if (d.rank == 0) {
        printf("note: %s has %zu MB free: window route not tested here\n", dp_shm_backing_dir(),
               have >> 20);
    }
    test_no_room(&d);
    return dp_test_finish_mpi(&d);
}
