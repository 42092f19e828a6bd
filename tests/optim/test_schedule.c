/* dp_lr_at: constant, step and multistep (per epoch), cosine (per step, from lr to min_lr over
 * the epochs after warmup) and linear warmup (per step, from lr*warmup_start to lr). */
#include "dprune/optim.h"
#include "testutil.h"
#include <string.h>

#define SPE 10 /* steps per epoch */
#define TOL 1e-12

static void config(dp_train_config *tc, const char *schedule) {
    memset(tc, 0, sizeof *tc);
    tc->epochs = 10;
    tc->lr = 0.2;
    tc->gamma = 0.1;
    tc->step_size = 3;
    tc->warmup_start = 0.1;
    snprintf(tc->schedule, sizeof tc->schedule, "%s", schedule);
}

int main(void) {
    dp_train_config tc;

    /* constant */
    config(&tc, "constant");
    for (int64_t s = 0; s < 200; s += 7) CHECK_CLOSE(dp_lr_at(&tc, s, SPE), 0.2, TOL, 0);

    /* step: lr * gamma^(epoch / step_size), changing at whole epochs */
    config(&tc, "step");
    CHECK_CLOSE(dp_lr_at(&tc, 0, SPE), 0.2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 29, SPE), 0.2, TOL, 0); /* last step of epoch 2 */
    CHECK_CLOSE(dp_lr_at(&tc, 30, SPE), 0.02, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 59, SPE), 0.02, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 60, SPE), 0.002, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 95, SPE), 0.0002, TOL, 0);

    /* multistep: decays by gamma at each milestone epoch */
    config(&tc, "multistep");
    tc.milestones[0] = 2, tc.milestones[1] = 5, tc.n_milestones = 2;
    CHECK_CLOSE(dp_lr_at(&tc, 0, SPE), 0.2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 19, SPE), 0.2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 20, SPE), 0.02, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 49, SPE), 0.02, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 50, SPE), 0.002, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 99, SPE), 0.002, TOL, 0);

    /* cosine: lr at the start, (lr+min_lr)/2 halfway, min_lr at the end (and after), strictly
     * decreasing in between; per step, not per epoch */
    config(&tc, "cosine");
    tc.min_lr = 0.002;
    CHECK_CLOSE(dp_lr_at(&tc, 0, SPE), 0.2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 50, SPE), (0.2 + 0.002) / 2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 100, SPE), 0.002, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 130, SPE), 0.002, TOL, 0);
    /* a quarter of the way: min + (lr-min) (1 + cos(pi/4)) / 2 */
    CHECK_CLOSE(dp_lr_at(&tc, 25, SPE), 0.002 + 0.198 * (1 + sqrt(0.5)) / 2, TOL, 0);
    {
        bool decreasing = true;
        for (int64_t s = 1; s <= 100; s++)
            decreasing = decreasing && dp_lr_at(&tc, s, SPE) < dp_lr_at(&tc, s - 1, SPE);
        CHECK(decreasing);
    }
    tc.min_lr = 0;
    CHECK_CLOSE(dp_lr_at(&tc, 100, SPE), 0.0, TOL, 0);

    /* linear warmup over 2 epochs from lr * 0.1, per step, then the schedule */
    config(&tc, "constant");
    tc.warmup_epochs = 2;
    CHECK_CLOSE(dp_lr_at(&tc, 0, SPE), 0.02, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 1, SPE), 0.2 * (0.1 + 0.9 / 20), TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 10, SPE), 0.2 * 0.55, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 19, SPE), 0.2 * (0.1 + 0.9 * 19 / 20), TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 20, SPE), 0.2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 57, SPE), 0.2, TOL, 0);
    {
        bool increasing = true;
        for (int64_t s = 1; s <= 20; s++)
            increasing = increasing && dp_lr_at(&tc, s, SPE) > dp_lr_at(&tc, s - 1, SPE);
        CHECK(increasing);
    }
    /* fractional warmup: half an epoch */
    tc.warmup_epochs = 0.5;
    CHECK_CLOSE(dp_lr_at(&tc, 0, SPE), 0.02, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 4, SPE), 0.2 * (0.1 + 0.9 * 4 / 5), TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 5, SPE), 0.2, TOL, 0);
    /* warmup_start 0 starts at zero */
    tc.warmup_epochs = 2, tc.warmup_start = 0;
    CHECK_CLOSE(dp_lr_at(&tc, 0, SPE), 0.0, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 10, SPE), 0.1, TOL, 0);

    /* warmup then cosine: the cosine spans the epochs after warmup, continuous at the join */
    config(&tc, "cosine");
    tc.epochs = 12, tc.warmup_epochs = 2, tc.min_lr = 0.002;
    CHECK_CLOSE(dp_lr_at(&tc, 0, SPE), 0.02, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 19, SPE), 0.2 * (0.1 + 0.9 * 19 / 20), TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 20, SPE), 0.2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 70, SPE), (0.2 + 0.002) / 2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 120, SPE), 0.002, TOL, 0);

    /* warmup then step: epochs count from the start of training */
    config(&tc, "step");
    tc.warmup_epochs = 1;
    CHECK_CLOSE(dp_lr_at(&tc, 5, SPE), 0.2 * (0.1 + 0.9 * 0.5), TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 10, SPE), 0.2, TOL, 0);
    CHECK_CLOSE(dp_lr_at(&tc, 30, SPE), 0.02, TOL, 0);

    /* steps_per_epoch < 1 is treated as 1 */
    config(&tc, "step");
    CHECK_CLOSE(dp_lr_at(&tc, 3, 0), 0.02, TOL, 0);
    return dp_test_finish();
}
