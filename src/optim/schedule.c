#include "dprune/optim.h"
#include <string.h>
#include <math.h>

double dp_lr_at(const dp_train_config *tc, int64_t step, int64_t steps_per_epoch) {
    if (steps_per_epoch < 1) steps_per_epoch = 1;
    double epoch = (double)step / (double)steps_per_epoch; /* fractional */
    double base = tc->lr;
    if (tc->warmup_epochs > 0 && epoch < tc->warmup_epochs) {
        double t = epoch / tc->warmup_epochs;
        return base * (tc->warmup_start + (1.0 - tc->warmup_start) * t);
    }
    int whole = (int)(step / steps_per_epoch);
    if (!strcmp(tc->schedule, "step")) return base * pow(tc->gamma, whole / tc->step_size);
    if (!strcmp(tc->schedule, "multistep")) {
        int passed = 0;
        for (int i = 0; i < tc->n_milestones; i++) passed += whole >= tc->milestones[i];
        return base * pow(tc->gamma, passed);
    }
    if (!strcmp(tc->schedule, "cosine")) {
        double span = tc->epochs - tc->warmup_epochs;
        double t = span > 0 ? (epoch - tc->warmup_epochs) / span : 1.0;
        if (t > 1) t = 1;
        return tc->min_lr + (base - tc->min_lr) * 0.5 * (1.0 + cos(M_PI * t));
    }
    return base; /* constant */
}
