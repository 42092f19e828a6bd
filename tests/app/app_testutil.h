/* The dp_app every MPI test of app/ runs in. */
#ifndef DPRUNE_APP_TESTUTIL_H
#define DPRUNE_APP_TESTUTIL_H

#include "app.h"
#include <stdbool.h>
#include <string.h>

/* MPI up (dp_dist_init) and one thread per rank; false when MPI could not start. */
static inline bool app_test_init(int *argc, char ***argv, dp_app *app) {
    memset(app, 0, sizeof *app);
    dp_error err = {0};
    if (dp_dist_init(argc, argv, &app->dist, &err) != DP_OK) return false;
    app->threads = dp_threads_setup(1);
    return true;
}

#endif
