/* `dprune profile CONF [OUT] [--batch N] [--grid G] [--reps R] [--infer-only]`: measures the
 * per-layer time table of the configured model on this machine (model/profile.c), writes it
 * (default run.dir/latency.txt) and prints a per-layer summary. One process measures: with
 * several ranks, rank 0 does and the others wait (napping), since ranks sharing the machine
 * would disturb the timings. */
#include "latency.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *conf, *out;
    dp_profile_opts o;
    bool batch_given;
} profile_args;

static bool parse_int(const char *s, int lo, int hi, int *v) {
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || *end || x < lo || x > hi) return false;
    *v = (int)x;
    return true;
}

static bool parse_args(int argc, char **argv, profile_args *a) {
    memset(a, 0, sizeof *a);
    dp_profile_opts_default(&a->o);
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(s, "--batch") && has_value) {
            if (!parse_int(argv[++i], 1, 1 << 20, &a->o.batch)) return false;
            a->batch_given = true;
        } else if (!strcmp(s, "--grid") && has_value) {
            if (!parse_int(argv[++i], 1, DP_LATENCY_MAX_AXIS, &a->o.grid)) return false;
        } else if (!strcmp(s, "--reps") && has_value) {
            if (!parse_int(argv[++i], 1, 100000, &a->o.reps)) return false;
        } else if (!strcmp(s, "--infer-only")) {
            a->o.train = false;
        } else if (s[0] == '-') {
            return false;
        } else if (!a->conf) {
            a->conf = s;
        } else if (!a->out) {
            a->out = s;
        } else {
            return false;
        }
    }
    return a->conf != NULL;
}

/* The CPU model from /proc/cpuinfo ("unknown" elsewhere). */
static void machine_name(char *out, size_t n) {
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon) continue;
        colon += 1 + (colon[1] == ' ');
        colon[strcspn(colon, "\n")] = 0;
        snprintf(out, n, "%s", colon);
        break;
    }
    fclose(f);
}

static void on_progress(void *ctx, const dp_model *m, int node, int done, int total) {
    (void)ctx;
    fprintf(stderr, "profile: [%d/%d] %s (%s)\n", done + 1, total, m->nodes[node].name,
            dp_op_name(m->nodes[node].op));
}

/* Per-node times at the model's own widths (the grid's full-width corner) and the summary. */
static dp_status print_summary(const dp_latency_table *t, const dp_model *m, const char *path,
                               const double whole[2], dp_error *err) {
    dp_latency_map infer, train = {0};
    bool has_train = dp_latency_table_has_train(t);
    dp_status st = dp_latency_map_build(t, m, false, &infer, err);
    if (st == DP_OK && has_train) st = dp_latency_map_build(t, m, true, &train, err);
    double *ims = calloc((size_t)m->n_nodes, sizeof(double));
    double *tms = calloc((size_t)m->n_nodes, sizeof(double));
    if (st == DP_OK && (!ims || !tms)) st = dp_fail(err, DP_ERR_NOMEM, "profile: out of memory");
    if (st == DP_OK) {
        for (int i = 1; i < m->n_nodes; i++) {
            ims[i] = dp_latency_node_ms(&infer, m, i, NULL);
            if (has_train) tms[i] = dp_latency_node_ms(&train, m, i, NULL);
        }
        printf("%s: per-layer times of %s, batch %d, %d threads, %s, OpenBLAS core %s "
               "(median of %d; a layer's +ops are the bn/relu/pool/add after it)\n",
               path, t->model, t->batch, t->threads, t->machine, t->blas_core, t->reps);
        dp_profile_print_layers(m, ims, has_train ? tms : NULL, stdout);
        double sum = dp_latency_model_ms(&infer, m, NULL);
        printf("inference: %.3f ms per batch as the sum of layers timed alone (%.1f images/s), "
               "%.3f ms timed as one network\n",
               sum, t->batch * 1e3 / sum, whole[0]);
        if (has_train)
            printf("training (forward + backward): %.3f ms per batch as the sum of layers, %.3f ms "
                   "as one network\n",
                   dp_latency_model_ms(&train, m, NULL), whole[1]);
    }
    free(ims), free(tms);
    dp_latency_map_free(&infer);
    dp_latency_map_free(&train);
    return st;
}

static dp_status profile_rank0(dp_app *app, profile_args *a, dp_error *err) {
    const dp_config *c = &app->cfg;
    dp_app_data data;
    dp_model m = {0};
    dp_latency_table t = {0};
    char out[DP_PATH_MAX + 32];
    if (a->out)
        snprintf(out, sizeof out, "%s", a->out);
    else
        snprintf(out, sizeof out, "%s/latency.txt", c->run.dir);
    dp_status st = app_open_data(c, &data, err);
    if (st == DP_OK)
        st = dp_model_build(&m, &c->model, data.in_c, data.in_h, data.in_w, data.num_classes, err);
    if (st == DP_OK && !a->out) st = app_make_run_dir(c->run.dir, err);
    if (st == DP_OK) {
        if (!a->batch_given) a->o.batch = c->train.batch;
        a->o.seed = (uint64_t)c->run.seed;
        a->o.progress = on_progress;
        fprintf(stderr, "dprune profile: %s, batch %d, %d threads, grid 1/%d..%d/%d, %d reps, %s\n",
                m.arch, a->o.batch, app->threads, a->o.grid, a->o.grid, a->o.grid, a->o.reps,
                a->o.train ? "inference and training" : "inference only");
        st = dp_profile_measure(&m, &a->o, &t, err);
    }
    double whole[2] = {0, 0};
    if (st == DP_OK) st = dp_profile_whole(&m, &a->o, &whole[0], &whole[1], err);
    if (st == DP_OK) {
        machine_name(t.machine, sizeof t.machine);
        st = dp_latency_table_write(&t, out, err);
    }
    if (st == DP_OK) snprintf(t.path, sizeof t.path, "%s", out);
    if (st == DP_OK) st = print_summary(&t, &m, out, whole, err);
    dp_latency_table_free(&t);
    dp_model_free(&m);
    app_close_data(&data);
    return st;
}

int app_main_profile(int argc, char **argv) {
    dp_app app;
    if (!app_start(&app, &argc, &argv)) return 1;
    dp_error err = {0};
    profile_args a;
    if (!parse_args(argc, argv, &a)) {
        if (app.dist.rank == 0)
            fprintf(stderr, "usage: dprune profile CONF [OUT] [--batch N] [--grid G] [--reps R] "
                            "[--infer-only]\n");
        dp_dist_finalize();
        return 2;
    }
    int rc = 1;
    if (dp_dist_check(&app.dist, app_load_config(&app, a.conf, &err), &err) == DP_OK) {
        app_setup_threads(&app);
        /* the other ranks wait as long as rank 0 measures, napping (not spinning) */
        app.dist.watchdog_seconds = 1e9;
        if (app.dist.rank == 0 && app.dist.world > 1)
            fprintf(stderr,
                    "dprune profile: %d ranks: rank 0 measures alone, the others wait; run it "
                    "as one process for undisturbed timings\n",
                    app.dist.world);
        dp_status st = app.dist.rank == 0 ? profile_rank0(&app, &a, &err) : DP_OK;
        rc = dp_dist_check(&app.dist, st, &err) == DP_OK ? 0 : 1;
    }
    free(app.cfg_text);
    dp_dist_finalize();
    return rc;
}
