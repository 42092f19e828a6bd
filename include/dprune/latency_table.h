/* dprune latency tables: measured per-layer times as a function of kept channels.
 *
 * `dprune profile` times every layer of a model (model/profile.c) on a grid of input and output
 * channel counts, at a stated batch and thread count, and writes the table as plain text
 * (docs/latency-table.md). The pruning planner's "latency" budget interpolates it (bilinear in
 * the kept input and output channels) to estimate what a plan's model would take, since FLOPs
 * do not predict speed.
 *
 * This header is the io/ part: the table as data, its reader and writer, the interpolation.
 * Matching a table against a model is in dprune/profile.h. */
#ifndef DPRUNE_LATENCY_TABLE_H
#define DPRUNE_LATENCY_TABLE_H

#include "dprune/core.h"
#include <stdbool.h>
#include <stdio.h>

#define DP_LATENCY_MAX_AXIS 64
#define DP_LATENCY_FORMAT_VERSION 1

/* One timed graph node (a conv or linear layer, or a cheap op: bn, relu, pool, add, ...). */
typedef struct {
    char name[48];
    char op[16];                      /* dp_op_name of the node */
    int in_c, in_h, in_w;             /* full input shape per sample (channels of its input node) */
    int out_c, out_h, out_w;          /* full output shape */
    int k, stride;                    /* conv and pool attributes, 0 for other ops */
    int n_in, n_out;                  /* grid points of each axis (>= 1) */
    int in_axis[DP_LATENCY_MAX_AXIS]; /* input channel counts, strictly ascending */
    int out_axis[DP_LATENCY_MAX_AXIS]; /* output channel counts, strictly ascending */
    double *infer_ms;                  /* [n_in * n_out], index a * n_out + b: forward, eval mode */
    double *train_ms; /* same layout: forward in train mode + backward; NULL if not measured */
} dp_latency_entry;

typedef struct {
    char path[600];       /* the file it was read from ("" when measured): named in errors */
    char model[64];       /* model.arch */
    int in_c, in_h, in_w; /* network input per sample */
    int batch;            /* samples per timed call */
    int threads;          /* OpenMP threads */
    int reps;             /* timed repetitions per grid point (median) */
    char machine[128];    /* CPU model */
    char blas_core[64];   /* OpenBLAS core in use */
    char version[96];     /* dprune version and commit that measured it */
    int n_entries;
    dp_latency_entry *entries;
} dp_latency_table;

/* Allocates n zeroed entries (each entry's value arrays are allocated by
 * dp_latency_entry_alloc). */
dp_status dp_latency_table_alloc(dp_latency_table *t, int n_entries, dp_error *err);
/* Allocates the value arrays of e for its n_in x n_out grid (train_ms only if `train`). */
dp_status dp_latency_entry_alloc(dp_latency_entry *e, bool train, dp_error *err);
void dp_latency_table_free(dp_latency_table *t);
bool dp_latency_table_has_train(const dp_latency_table *t);

/* Writes the table as text (atomically: a temporary file renamed over `path`). */
dp_status dp_latency_table_write(const dp_latency_table *t, const char *path, dp_error *err);
dp_status dp_latency_table_print(const dp_latency_table *t, FILE *out, dp_error *err);
/* Reads and validates a table (header, every entry's shape, axes ascending and ending at the
 * full width, finite non-negative times). Errors name the file and line and what is wrong. */
dp_status dp_latency_table_read(const char *path, dp_latency_table *t, dp_error *err);
/* The same from text already in memory (origin names it in errors). */
dp_status dp_latency_table_parse(const char *text, const char *origin, dp_latency_table *t,
                                 dp_error *err);

/* Time of entry e (ms per batch) with cin input and cout output channels: bilinear between
 * the surrounding grid points, clamped to the grid outside it (a one-point axis is constant).
 * Equal to the measured value on grid points; monotone between them when the four corners
 * are. train selects train_ms (which must exist). */
double dp_latency_entry_ms(const dp_latency_entry *e, bool train, double cin, double cout);

#endif
