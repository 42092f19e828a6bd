/* Internal: every collective of dist/ is posted non-blocking and waited on here. */
#ifndef DPRUNE_DIST_WATCHDOG_H
#define DPRUNE_DIST_WATCHDOG_H

#include "dprune/dist.h"
#include <mpi.h>

/* Waits for *req with d->watchdog_seconds as deadline; on timeout reports and aborts. */
dp_status dp_watchdog_wait(dp_dist *d, MPI_Request *req, const char *what, dp_error *err);

#endif
