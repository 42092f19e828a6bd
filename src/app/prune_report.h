/* The before/after report of the pruning phase (app-internal). */
#ifndef DPRUNE_APP_PRUNE_REPORT_H
#define DPRUNE_APP_PRUNE_REPORT_H

#include "app.h"

/* What the summary compares: per conv/linear node its width, params and FLOPs. */
typedef struct {
    int *width;
    int64_t *params, *flops;
    int64_t total_params, total_flops;
    double top1, top5, images_per_s;
} model_facts;

/* Inference images/s of the model on this rank (eval mode, random input), median of runs. */
double measure_inference(const dp_model *m, int batch);
void facts_take(const dp_model *m, model_facts *f);
void facts_free(model_facts *f);
/* The baseline survives a resume inside the checkpoint's metrics summary. */
void facts_to_summary(const model_facts *f, const dp_model *m, char *out, size_t n);
bool facts_from_summary(const char *s, const dp_model *m, model_facts *f);
/* Rank 0: the per-layer table, totals, accuracy and speed of both models; a metrics line. */
void print_summary(trainer *t, const dp_model *m, const model_facts *before,
                   const model_facts *after);

#endif
