/* The gradient buckets (src/dist/grad_sync.c): they tile the gradient buffer in posting order
 * on tensor boundaries, lowest nodes last; the head is about first_bytes, the tail doubles
 * from about first_bytes up, the middle is about bucket_bytes. No MPI: the layout is computed
 * from the model alone (it must be the same on every rank), and nothing is posted. */
#include "dprune/dist.h"
#include "dprune/model.h"
#include "testutil.h"
#include <stdio.h>
#include <string.h>

enum { MB = 1000 * 1000 };

static dp_status build(dp_model *m, const char *arch, dp_error *err) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    snprintf(mc.shortcut, sizeof mc.shortcut, "A");
    mc.width = 1.0;
    return dp_model_build(m, &mc, 3, 32, 32, 10, err);
}

static bool at_tensor_start(const dp_model *m, size_t offset) {
    for (int p = 0; p < m->n_params; p++)
        if (m->params[p].offset == offset) return true;
    return false;
}

/* Builds the buckets of arch for (first, bucket) MB, checks what holds for every layout and
 * returns the count; bytes[b] gets each bucket's size (up to max). */
static int layout_of(const char *arch, double first_mb, double bucket_mb, double *bytes, int max) {
    dp_model m;
    dp_error err = {0};
    dp_grad_sync *g = NULL;
    dp_grad_sync_opts o = {.first_bytes = (size_t)(first_mb * MB),
                           .bucket_bytes = (size_t)(bucket_mb * MB),
                           .overlap = true};
    if (build(&m, arch, &err) != DP_OK || dp_grad_sync_create(&g, NULL, &m, &o, &err) != DP_OK) {
        CHECK_MSG(false, "%s: %s", arch, err.msg);
        return 0;
    }
    const int n = dp_grad_sync_buckets(g);
    size_t next = 0;
    int prev_node = m.n_nodes, tiled = 1, starts = 1, ordered = 1;
    printf("%s (%.1f / %.1f MB):", arch, first_mb, bucket_mb);
    for (int b = 0; b < n; b++) {
        size_t off, floats;
        int low;
        dp_grad_sync_bucket(g, b, &off, &floats, &low);
        tiled &= off == next && floats > 0;
        starts &= at_tensor_start(&m, off);
        ordered &= low <= prev_node; // posted as backward reaches lower nodes
        next = off + floats, prev_node = low;
        if (b < max) bytes[b] = 4.0 * (double)floats;
        printf(" %.2f", 4.0 * (double)floats / MB);
    }
    printf(" MB\n");
    CHECK_MSG(tiled && next == m.n_param_floats, "%s: buckets do not tile the buffer", arch);
    CHECK_MSG(starts, "%s: a bucket starts inside a tensor", arch);
    CHECK_MSG(ordered, "%s: buckets not in reverse node order", arch);
    dp_grad_sync_free(g);
    dp_model_free(&m);
    return n;
}

int main(void) {
    double mb[64];
    /* vgg16 at the defaults: head 1.1, middle 18.9 x 2, tail 9.4 7.1 3.5 1.0 (conv1-4) */
    int n = layout_of("vgg16", 1.0, 25.0, mb, 64);
    CHECK_MSG(n == 7, "vgg16: %d buckets", n);
    if (n == 7) {
        CHECK(mb[0] >= 1.0 * MB && mb[0] < 1.2 * MB);
        CHECK_MSG(mb[n - 1] >= 1.0 * MB && mb[n - 1] < 1.5 * MB, "vgg16 last bucket %.0f B",
                  mb[n - 1]);
        // the tail grows at most about 2x per bucket (plus one tensor), the middle stays < 2x
        for (int b = 2; b < n; b++) CHECK(mb[b] < 2.0 * MB + 2.0 * mb[b + 1 < n ? b + 1 : b]);
        for (int b = 1; b < n; b++) CHECK(mb[b] < 2 * 25.0 * MB);
    }
    /* a small model: the head takes almost everything, one small tail bucket remains */
    n = layout_of("resnet20", 1.0, 25.0, mb, 64);
    CHECK_MSG(n == 2, "resnet20: %d buckets", n);
    if (n == 2) CHECK(mb[1] < 0.2 * MB);
    /* first_bytes >= bucket_bytes: no tail, the head then greedy buckets of bucket_bytes */
    n = layout_of("vgg16", 25.0, 25.0, mb, 64);
    CHECK_MSG(n == 3, "vgg16 25/25: %d buckets", n);
    /* tiny limits: one bucket per tensor at most, still a tiling */
    n = layout_of("lenet5", 0.0, 0.0, mb, 64);
    CHECK(n >= 1);
    return dp_test_finish();
}
