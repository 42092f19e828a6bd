/* dprune command line: `dprune [train] CONF`, `dprune summary CONF`, `dprune config-help`. */
#include "app.h"
#include "latency.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: dprune [train] CONF        train (and prune) as the config says\n"
            "       dprune --resume CONF       continue from the newest valid checkpoint\n"
            "       dprune summary CONF        per-layer output shape, params, FLOPs\n"
            "       dprune plan CONF           the prune plan the config would make (dry run)\n"
            "       dprune profile CONF [OUT] [--batch N] [--grid G] [--reps R] [--infer-only]\n"
            "                                  per-layer time table (latency budget)\n"
            "       dprune inspect FILE        sections, provenance, state, architecture\n"
            "       dprune eval FILE           a checkpoint on its config's test set\n"
            "       dprune export FILE [OUT] [--fp16|--bf16]   deployable copy, BN folded\n"
            "       dprune init CONF OUT       the configured model, freshly initialised\n"
            "       dprune dump FILE DIR       arch.json + raw float32 tensors (PyTorch bridge)\n"
            "       dprune import CONF DIR OUT tensors of DIR into CONF's model, saved as OUT\n"
            "       dprune logits FILE IN N OUT  eval logits of N raw float32 inputs\n"
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
    if (argc >= 3 && !strcmp(argv[1], "export")) {
        dp_dtype dtype = DP_DTYPE_F32;
        const char *out = NULL;
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--fp16"))
                dtype = DP_DTYPE_F16;
            else if (!strcmp(argv[i], "--bf16"))
                dtype = DP_DTYPE_BF16;
            else
                out = argv[i];
        }
        return app_cmd_export(argv[2], out, dtype);
    }
    if (argc >= 2 && !strcmp(argv[1], "profile")) return app_main_profile(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "dump")) return app_cmd_dump(argv[2], argv[3]);
    if (argc == 6 && !strcmp(argv[1], "logits"))
        return app_cmd_logits(argv[2], argv[3], atoi(argv[4]), argv[5]);
    if (argc == 3 && !strcmp(argv[1], "inspect")) {
        dp_error ierr = {0};
        if (dp_checkpoint_inspect(argv[2], stdout, true, &ierr) != DP_OK) {
            fprintf(stderr, "dprune: error: %s\n", ierr.msg);
            return 1;
        }
        return 0;
    }
    /* dprune [--resume] [train|summary|plan|eval] CONF|FILE */
    const char *cmd = "train", *conf = NULL;
    bool resume = false;
    int first = 1;
    if (argc > 1 && !strcmp(argv[1], "--resume")) resume = true, first = 2;
    if (argc == first + 4 && !strcmp(argv[first], "import"))
        cmd = "import", conf = argv[first + 1];
    else if (argc == first + 3 && !strcmp(argv[first], "init"))
        cmd = "init", conf = argv[first + 1];
    else if (argc == first + 1)
        conf = argv[first];
    else if (argc == first + 2)
        cmd = argv[first], conf = argv[first + 1];
    if (!conf || (strcmp(cmd, "train") && strcmp(cmd, "summary") && strcmp(cmd, "plan") &&
                  strcmp(cmd, "import") && strcmp(cmd, "init") && strcmp(cmd, "eval"))) {
        usage(stderr);
        return 2;
    }

    dp_app app;
    if (!app_start(&app, &argc, &argv)) return 1;
    dp_error err = {0};
    int rc = 1;
    app.resume_flag = resume;
    if (!strcmp(cmd, "import") || !strcmp(cmd, "init")) { /* single-process file tools */
        if (dp_dist_check(&app.dist, app_load_config(&app, conf, &err), &err) == DP_OK) {
            app_setup_threads(&app);
            rc = !strcmp(cmd, "init") ? app_cmd_init(&app, argv[first + 2])
                                      : app_cmd_import(&app, argv[first + 2], argv[first + 3]);
        }
        free(app.cfg_text);
        dp_dist_finalize();
        return rc;
    }
    app_signals_install();
    if (!strcmp(cmd, "eval")) {
        rc = app_cmd_eval(&app, conf);
    } else if (dp_dist_check(&app.dist, app_load_config(&app, conf, &err), &err) == DP_OK) {
        app_setup_threads(&app);
        app.dist.watchdog_seconds = app.cfg.dist.watchdog_seconds;
        rc = !strcmp(cmd, "summary") ? app_cmd_summary(&app)
             : !strcmp(cmd, "plan")  ? app_cmd_plan(&app)
                                     : app_cmd_train(&app);
    }
    free(app.cfg_text);
    dp_dist_finalize();
    return rc;
}
