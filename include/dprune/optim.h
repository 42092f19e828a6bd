/* dprune optim: SGD (momentum, Nesterov, weight decay with per-tensor overrides) and the LR
 * schedules. Semantics match torch.optim.SGD (dampening 0). */
#ifndef DPRUNE_OPTIM_H
#define DPRUNE_OPTIM_H

#include "dprune/io.h"
#include "dprune/model.h"

typedef struct {
    float *momentum; /* same layout as the model's parameter buffer */
    size_t n;
    double *decay; /* [n_params] weight decay per tensor */
    double momentum_coef;
    bool nesterov;
    bool started; /* torch initialises the buffer with the first gradient */
} dp_sgd;

dp_status dp_sgd_init(dp_sgd *o, const dp_model *m, const dp_train_config *tc, dp_error *err);
void dp_sgd_free(dp_sgd *o);
/* p -= lr * (g + wd p) with momentum; uses m->grad_data as the (already averaged) gradient. */
void dp_sgd_step(dp_sgd *o, dp_model *m, double lr);
/* The same step for the parameter floats [lo, hi) only, with their gradient in g[0, hi - lo)
 * (padding between tensors is left alone). A step made of ranges that cover the buffer gives
 * dp_sgd_step's bits; dp_sgd_end_step then closes it. Ranges may run on several threads. */
void dp_sgd_step_range(const dp_sgd *o, dp_model *m, double lr, const float *g, size_t lo,
                       size_t hi);
void dp_sgd_end_step(dp_sgd *o);

/* Learning rate at optimizer step `step` (0-based) given steps per epoch: linear warmup over
 * warmup_epochs (per step), then constant / step / multistep (per epoch) / cosine (per step). */
double dp_lr_at(const dp_train_config *tc, int64_t step, int64_t steps_per_epoch);

#endif
