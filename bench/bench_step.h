/* The training step the step benchmarks time (bench_train_step, bench_pcc_step), split where
 * bench_pcc_step adds its term: as train_step in src/app/trainer.c runs it on one rank without
 * accumulation, on one random batch. */
#ifndef DPRUNE_BENCH_STEP_H
#define DPRUNE_BENCH_STEP_H

#include "dprune/model.h"
#include "dprune/nn.h"
#include "dprune/optim.h"
#include <stdlib.h>
#include <string.h>
#include "bench_util.h"

typedef struct {
    dp_model *m;
    dp_activations *act;
    dp_sgd *opt;
    float *x;
    int32_t *y;
    uint64_t *keys;
    int N;
} bench_step;

/* The batch: inputs uniform in [-1, 1), labels spread over the classes, sample keys 0..N-1. */
static inline void bench_step_batch(bench_step *s, int N, size_t sample_floats, int classes) {
    size_t nx = (size_t)N * sample_floats;
    s->x = dp_alloc_floats(nx);
    fill_uniform(s->x, nx, 7, 1.0f);
    s->y = calloc((size_t)N, sizeof(int32_t));
    s->keys = calloc((size_t)N, sizeof(uint64_t));
    for (int i = 0; i < N; i++)
        s->y[i] = (int32_t)((i * 7919u) % (unsigned)classes), s->keys[i] = i;
    s->N = N;
}

static inline void bench_step_batch_free(bench_step *s) {
    free(s->y), free(s->keys), dp_free(s->x);
}

/* The step up to the loss: zero grads, forward (train mode), softmax cross-entropy forward and
 * backward, top-k. Returns the loss. */
static inline double bench_step_forward(const bench_step *s) {
    dp_model *m = s->m;
    int last = dp_model_output_node(m), K = m->num_classes;
    memset(m->grad_data, 0, sizeof(float) * m->n_param_floats);
    dp_forward_opts fo = {.train = true, .seed = 1, .sample_keys = s->keys};
    dp_model_forward(m, s->act, s->x, s->N, &fo);
    float *dlogits = s->act->dout[last];
    memset(dlogits, 0, sizeof(float) * (size_t)s->N * K);
    double loss =
        softmax_xent_forward_backward(s->N, K, s->act->out[last], s->y, 0.0f, 1.0f / s->N, dlogits);
    int64_t t1, t5;
    topk_correct(s->N, K, s->act->out[last], s->y, &t1, &t5);
    return loss;
}

/* The rest of the step: backward and the SGD step. */
static inline void bench_step_finish(const bench_step *s) {
    dp_forward_opts fo = {.train = true, .seed = 1, .sample_keys = s->keys};
    dp_model_backward(s->m, s->act, s->N, &fo);
    dp_sgd_step(s->opt, s->m, 0.01);
}

#endif
