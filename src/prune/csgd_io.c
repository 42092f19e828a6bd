/* C-SGD clusters as bytes: rank 0 broadcasts them through dist/, and checkpoints keep them in
 * their own section, so a run resumed in the middle of a C-SGD phase pulls the same filters
 * together. Format: "DPCSGD01", i32 round, i32 groups, per group i32 channels, i32 clusters and
 * (when clustered) i32 cluster of every channel, then the FNV-1a of everything before it. */
#include "csgd_internal.h"
#include "framed_bytes.h"
#include <stdlib.h>
#include <string.h>

static const char csgd_magic[FRAMED_MAGIC_BYTES] = {'D', 'P', 'C', 'S', 'G', 'D', '0', '1'};
#define CSGD_MAX_CHANNELS (1 << 24)

dp_status dp_csgd_serialize(const dp_csgd_clusters *cl, int round, uint8_t **buf, size_t *len,
                            dp_error *err) {
    dp_bytes b = {0};
    dp_bytes_put(&b, csgd_magic, sizeof csgd_magic);
    dp_bytes_i32(&b, round);
    dp_bytes_i32(&b, cl->n_groups);
    for (int g = 0; g < cl->n_groups; g++) {
        dp_bytes_i32(&b, cl->channels[g]);
        dp_bytes_i32(&b, cl->n_clusters[g]);
        for (int c = 0; c < cl->channels[g] && cl->n_clusters[g]; c++)
            dp_bytes_i32(&b, cl->assign[g][c]);
    }
    return framed_seal(&b, "C-SGD clusters", buf, len, err);
}

dp_status dp_csgd_deserialize(const uint8_t *buf, size_t len, dp_csgd_clusters *cl, int *round,
                              dp_error *err) {
    memset(cl, 0, sizeof *cl);
    dp_cursor c; /* round and group count (i32) come first */
    dp_status st = framed_open(buf, len, csgd_magic, 8, "C-SGD state", "C-SGD clusters", &c, err);
    if (st != DP_OK) return st;
    *round = dp_cursor_i32(&c);
    int n = dp_cursor_i32(&c);
    if (c.bad || n < 0 || n > 1000000)
        return dp_fail(err, DP_ERR_CHECKPOINT, "C-SGD state: absurd group count %d", n);
    st = csgd_clusters_alloc(cl, n, err);
    for (int g = 0; g < n && st == DP_OK; g++) {
        int C = dp_cursor_i32(&c), k = dp_cursor_i32(&c);
        if (c.bad || C < 0 || C > CSGD_MAX_CHANNELS || k < 0 || k > C) {
            st = dp_fail(err, DP_ERR_CHECKPOINT,
                         "C-SGD state: group %d has %d clusters of %d channels", g, k, C);
            break;
        }
        cl->channels[g] = C, cl->n_clusters[g] = k;
        if (!k) continue;
        if (!(cl->assign[g] = malloc(sizeof(int) * (size_t)(C ? C : 1)))) {
            st = dp_fail(err, DP_ERR_NOMEM, "C-SGD state: out of memory");
            break;
        }
        for (int i = 0; i < C; i++) cl->assign[g][i] = dp_cursor_i32(&c);
        if (c.bad)
            st = dp_fail(err, DP_ERR_CHECKPOINT, "C-SGD state: cut short in group %d", g);
        else {
            dp_error why = {0};
            if (dp_csgd_index(cl, g, &why) != DP_OK)
                st = dp_fail(err, DP_ERR_CHECKPOINT, "C-SGD state: %s", why.msg);
        }
    }
    if (st == DP_OK && dp_cursor_left(&c) != 0)
        st = dp_fail(err, DP_ERR_CHECKPOINT, "C-SGD state: %zu stray bytes at the end",
                     dp_cursor_left(&c));
    if (st != DP_OK) dp_csgd_clusters_free(cl);
    return st;
}

dp_status dp_csgd_check(const dp_csgd_clusters *cl, const dp_groups *gs, dp_error *err) {
    if (cl->n_groups != gs->n_groups)
        return dp_fail(err, DP_ERR_ARG, "C-SGD clusters for %d groups, the model has %d",
                       cl->n_groups, gs->n_groups);
    for (int g = 0; g < gs->n_groups; g++) {
        if (!cl->n_clusters[g]) continue;
        if (cl->channels[g] != gs->groups[g].channels || !cl->members[g])
            return dp_fail(err, DP_ERR_ARG,
                           "C-SGD clusters of group %s: made for %d channels, it has %d",
                           gs->groups[g].name, cl->channels[g], gs->groups[g].channels);
        if (!gs->groups[g].prunable)
            return dp_fail(err, DP_ERR_ARG, "C-SGD clusters on group %s, which is not prunable",
                           gs->groups[g].name);
    }
    return DP_OK;
}
