/* A CIP schedule's position as bytes, kept in checkpoints taken inside the schedule: the round,
 * the last step done and its mask (a plan), so a resumed run knows which channels it zeroed
 * last (it reports the ones that grew back) and can check that the file agrees with its epoch.
 * Format: "DPCIP001", i32 round, i32 step, i32 steps, u64 n, n bytes of dp_plan_serialize,
 * then the FNV-1a of everything before it. */
#include "dprune/cip.h"
#include "framed_bytes.h"
#include <stdlib.h>
#include <string.h>

static const char cip_magic[FRAMED_MAGIC_BYTES] = {'D', 'P', 'C', 'I', 'P', '0', '0', '1'};

void dp_cip_state_free(dp_cip_state *s) {
    dp_plan_free(&s->mask);
    memset(s, 0, sizeof *s);
}

dp_status dp_cip_state_serialize(const dp_cip_state *s, uint8_t **buf, size_t *len, dp_error *err) {
    uint8_t *plan = NULL;
    size_t plan_len = 0;
    dp_status st = dp_plan_serialize(&s->mask, &plan, &plan_len, err);
    if (st != DP_OK) return st;
    dp_bytes b = {0};
    dp_bytes_put(&b, cip_magic, sizeof cip_magic);
    dp_bytes_i32(&b, s->round);
    dp_bytes_i32(&b, s->step);
    dp_bytes_i32(&b, s->steps);
    dp_bytes_u64(&b, plan_len);
    dp_bytes_put(&b, plan, plan_len);
    free(plan);
    return framed_seal(&b, "CIP state", buf, len, err);
}

dp_status dp_cip_state_deserialize(const uint8_t *buf, size_t len, dp_cip_state *s, dp_error *err) {
    memset(s, 0, sizeof *s);
    dp_cursor c; /* round, step, steps (i32) and the mask's length (u64) come first */
    dp_status st = framed_open(buf, len, cip_magic, 20, "CIP state", "a CIP schedule", &c, err);
    if (st != DP_OK) return st;
    s->round = dp_cursor_i32(&c);
    s->step = dp_cursor_i32(&c);
    s->steps = dp_cursor_i32(&c);
    uint64_t n = dp_cursor_u64(&c);
    if (c.bad || s->steps < 1 || s->step < 0 || s->step > s->steps || n != dp_cursor_left(&c))
        return dp_fail(err, DP_ERR_CHECKPOINT,
                       "CIP state: step %d of %d, or a mask of %llu bytes where %zu are left",
                       s->step, s->steps, (unsigned long long)n, dp_cursor_left(&c));
    const uint8_t *plan = dp_cursor_take(&c, (size_t)n);
    dp_error why = {0};
    if (dp_plan_deserialize(plan, (size_t)n, &s->mask, &why) != DP_OK) {
        dp_cip_state_free(s);
        return dp_fail(err, DP_ERR_CHECKPOINT, "CIP state: the mask: %s", why.msg);
    }
    return DP_OK;
}
