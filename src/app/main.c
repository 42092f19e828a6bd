/* dprune command line: `dprune [train] CONF`, `dprune summary CONF`, `dprune config-help`. */
#include "app.h"
#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: dprune [train] CONF        train (and prune) as the config says\n"
            "       dprune summary CONF        per-layer output shape, params, FLOPs\n"
            "       dprune plan CONF           the prune plan the config would make (dry run)\n"
            "       dprune config-help         reference of every config setting\n"
            "       dprune --version\n"
            "Run on many ranks with: mpirun -n N dprune CONF\n");
}

int main(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("dprune %s (commit %s)\n", DPRUNE_VERSION, DPRUNE_GIT_COMMIT);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "config-help")) {
        dp_config_write_reference(stdout);
        return 0;
    }
    const char *cmd = "train", *conf = NULL;
    if (argc == 2)
        conf = argv[1];
    else if (argc == 3)
        cmd = argv[1], conf = argv[2];
    if (!conf || (strcmp(cmd, "train") && strcmp(cmd, "summary") && strcmp(cmd, "plan"))) {
        usage(stderr);
        return 2;
    }

    dp_app app;
    memset(&app, 0, sizeof app);
    dp_error err = {0};
    if (dp_dist_init(&argc, &argv, &app.dist, &err) != DP_OK) {
        fprintf(stderr, "dprune: error: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    if (dp_dist_check(&app.dist, app_load_config(&app, conf, &err), &err) == DP_OK) {
        app.threads = dp_threads_setup(app.cfg.run.threads);
        app.dist.watchdog_seconds = app.cfg.dist.watchdog_seconds;
        rc = !strcmp(cmd, "summary") ? app_cmd_summary(&app)
             : !strcmp(cmd, "plan")  ? app_cmd_plan(&app)
                                     : app_cmd_train(&app);
    }
    dp_dist_finalize();
    return rc;
}
