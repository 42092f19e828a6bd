/* The CIP schedule state as checkpoint bytes: round trip (round, step, steps, the mask with its
 * scores), and every damaged byte, every truncation, a foreign buffer and an impossible step
 * are refused with a message. */
#include "dprune/cip.h"
#include "dprune/core.h"
#include "prune_testutil.h"
#include <stdlib.h>
#include <string.h>

int main(void) {
    dp_model m = {0};
    if (!build_quarter_fmnist_cnn(&m)) return dp_test_finish();
    dp_error err = {0};
    dp_groups gs;
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    dp_cip_state s = {.round = 2, .step = 3, .steps = 5};
    CHECK(dp_plan_init(&s.mask, &gs, &err) == DP_OK);
    int g = gs.node_group[5]; /* conv2's group: drop channels 2 and 9 */
    dp_group_plan *gp = &s.mask.groups[g];
    for (int c = 0, k = 0; c < gp->channels; c++)
        if (c != 2 && c != 9) gp->keep[k++] = c;
    gp->n_keep = gp->channels - 2;
    gp->scores = calloc((size_t)gp->channels, sizeof(double));
    gp->scores[4] = 0.25;

    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK(dp_cip_state_serialize(&s, &buf, &len, &err) == DP_OK);
    dp_cip_state r;
    CHECK_MSG(dp_cip_state_deserialize(buf, len, &r, &err) == DP_OK, "%s", err.msg);
    CHECK(r.round == 2 && r.step == 3 && r.steps == 5 && r.mask.n_groups == gs.n_groups);
    CHECK(dp_plan_check(&r.mask, &gs, &err) == DP_OK);
    CHECK(r.mask.groups[g].n_keep == gp->n_keep && r.mask.groups[g].keep[2] == 3 &&
          r.mask.groups[g].keep[8] == 10 && r.mask.groups[g].scores[4] == 0.25);
    dp_cip_state_free(&r);

    int refused = 0;
    for (size_t i = 0; i < len; i++) { /* every byte damaged */
        buf[i] ^= 0x20;
        refused += dp_cip_state_deserialize(buf, len, &r, &err) == DP_ERR_CHECKPOINT;
        buf[i] ^= 0x20;
    }
    CHECK_MSG(refused == (int)len, "%d of %zu damaged bytes refused", refused, len);
    refused = 0;
    for (size_t n = 0; n < len; n++) /* every truncation */
        refused += dp_cip_state_deserialize(buf, n, &r, &err) == DP_ERR_CHECKPOINT;
    CHECK_MSG(refused == (int)len, "%d of %zu truncations refused", refused, len);
    CHECK(dp_cip_state_deserialize((const uint8_t *)"DPCSGD01 and more bytes....", 27, &r, &err) ==
              DP_ERR_CHECKPOINT &&
          strstr(err.msg, "DPCIP001"));
    free(buf);

    s.step = 6; /* beyond steps: refused even with a valid checksum */
    CHECK(dp_cip_state_serialize(&s, &buf, &len, &err) == DP_OK);
    CHECK(dp_cip_state_deserialize(buf, len, &r, &err) == DP_ERR_CHECKPOINT);
    free(buf);

    dp_cip_state_free(&s);
    dp_groups_free(&gs);
    dp_model_free(&m);
    return dp_test_finish();
}
