/* The latency budget's glue: the configured table is read (io/), matched to the model
 * (model/) and handed to the planner (prune/) on rank 0; a bad table is reported before
 * training starts rather than when the pruning phase needs it, hours later. */
#include "latency.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

dp_status app_latency_open(const dp_prune_config *pc, const dp_model *m, app_latency *l,
                           dp_error *err) {
    memset(l, 0, sizeof *l);
    if (!pc->latency_table[0])
        return dp_fail(err, DP_ERR_CONFIG,
                       "prune.latency_table is not set: write a table with `dprune profile CONF`");
    dp_status st = dp_latency_table_read(pc->latency_table, &l->table, err);
    if (st == DP_OK)
        st = dp_latency_map_build(&l->table, m, !strcmp(pc->latency_of, "train"), &l->map, err);
    if (st != DP_OK) app_latency_close(l);
    return st;
}

void app_latency_close(app_latency *l) {
    dp_latency_map_free(&l->map);
    dp_latency_table_free(&l->table);
}

dp_status app_latency_precheck(dp_app *app, const dp_model *m, dp_error *err) {
    const dp_prune_config *pc = &app->cfg.prune;
    if (strcmp(pc->budget, "latency") || !strcmp(pc->criterion, "none")) return DP_OK;
    dp_status st = DP_OK;
    if (app->dist.rank == 0) {
        app_latency l;
        st = app_latency_open(pc, m, &l, err);
        if (st == DP_OK) app_latency_close(&l);
    }
    return dp_dist_check(&app->dist, st, err);
}

void app_latency_print_plan(const dp_prune_config *pc, const dp_model *m, const dp_groups *gs,
                            const dp_plan *p, FILE *out) {
    if (!pc->latency_table[0]) return;
    app_latency l;
    dp_error err = {0};
    if (app_latency_open(pc, m, &l, &err) != DP_OK) {
        fprintf(out, "estimated latency: not available (%s)\n", err.msg);
        return;
    }
    int *keep = malloc(sizeof(int) * (size_t)(gs->n_groups + 1));
    if (keep) {
        for (int g = 0; g < gs->n_groups; g++) keep[g] = p->groups[g].n_keep;
        double before = dp_groups_latency_ms(m, gs, &l.map, NULL);
        double after = dp_groups_latency_ms(m, gs, &l.map, keep);
        fprintf(out,
                "estimated %s latency %.3f -> %.3f ms per batch of %d at %d threads (-%.2f%%, "
                "%.2fx; table %s)\n",
                l.map.train ? "training (forward + backward)" : "inference", before, after,
                l.table.batch, l.table.threads, before > 0 ? 100.0 * (1 - after / before) : 0,
                after > 0 ? before / after : 0, pc->latency_table);
    }
    free(keep);
    app_latency_close(&l);
}
