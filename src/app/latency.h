/* app/ glue of latency tables: the latency budget's table, its startup check, the estimate
 * printed by `dprune plan`, and `dprune profile` (app/profile_cmd.c). */
#ifndef DPRUNE_APP_LATENCY_H
#define DPRUNE_APP_LATENCY_H

#include "app.h"
#include "dprune/profile.h"

typedef struct {
    dp_latency_table table;
    dp_latency_map map; /* matched to the model it was opened for */
} app_latency;

/* Reads prune.latency_table and matches it to m (inference or train times per
 * prune.latency_of). Rank-local (rank 0 plans). */
dp_status app_latency_open(const dp_prune_config *pc, const dp_model *m, app_latency *l,
                           dp_error *err);
void app_latency_close(app_latency *l);
/* Collective: with budget "latency", rank 0 opens the table now so that a missing or
 * mismatched table stops the run before training. */
dp_status app_latency_precheck(dp_app *app, const dp_model *m, dp_error *err);
/* "estimated ... latency A -> B ms" of a plan when prune.latency_table is set (any budget). */
void app_latency_print_plan(const dp_prune_config *pc, const dp_model *m, const dp_groups *gs,
                            const dp_plan *p, FILE *out);

/* `dprune profile CONF [OUT] [--batch N] [--grid G] [--reps R] [--infer-only]`: the whole
 * command from argv (MPI init to finalize). Returns the exit status. */
int app_main_profile(int argc, char **argv);

#endif
