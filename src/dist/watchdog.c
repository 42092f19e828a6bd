/* The collective watchdog. A collective that does not complete within the deadline means
 * some rank is stuck (or dead, or in a different collective). Waiting forever would burn the
 * allocation until the Slurm limit, so: announce "rank r waits in collective #seq (what)" to
 * every other rank, listen for the others' announcements for a grace period, report who has
 * not arrived, and abort the job. Costs nothing on the normal path. */
#include "watchdog.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_WATCHDOG = 7701 };

typedef struct {
    unsigned long long seq;
    char what[56];
} announcement;

static void pause_briefly(double waited) {
    /* spin for the first 100 us (the common, fast case), then yield the core in 50 us naps:
     * ranks may share cores with compute threads */
    if (waited < 1e-4) return;
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
}

static void report_and_abort(dp_dist *d, const char *what) {
    announcement mine = {.seq = (unsigned long long)d->seq};
    snprintf(mine.what, sizeof mine.what, "%s", what);
    MPI_Request *sends = calloc((size_t)d->world, sizeof(MPI_Request));
    for (int r = 0; r < d->world && sends; r++)
        if (r != d->rank)
            MPI_Isend(&mine, (int)sizeof mine, MPI_BYTE, r, TAG_WATCHDOG, d->comm, &sends[r]);

    /* collect the others' announcements for a grace period */
    int *state = calloc((size_t)d->world, sizeof(int)); /* 0 silent, 1 same place, 2 elsewhere */
    announcement *heard = calloc((size_t)d->world, sizeof(announcement));
    double grace = d->watchdog_seconds < 4        ? 2.0
                   : d->watchdog_seconds / 2 > 10 ? 10
                                                  : d->watchdog_seconds / 2;
    double t0 = dp_now_seconds();
    while (state && heard && dp_now_seconds() - t0 < grace) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_WATCHDOG, d->comm, &flag, &st);
        if (!flag) {
            pause_briefly(1);
            continue;
        }
        announcement a;
        MPI_Recv(&a, (int)sizeof a, MPI_BYTE, st.MPI_SOURCE, TAG_WATCHDOG, d->comm,
                 MPI_STATUS_IGNORE);
        heard[st.MPI_SOURCE] = a;
        state[st.MPI_SOURCE] = a.seq == mine.seq ? 1 : 2;
    }
    char missing[1024] = "", elsewhere[1024] = "";
    size_t lm = 0, le = 0;
    for (int r = 0; r < d->world && state; r++) {
        if (r == d->rank || state[r] == 1) continue;
        if (state[r] == 0 && lm < sizeof missing - 16)
            lm += (size_t)snprintf(missing + lm, sizeof missing - lm, "%s%d", lm ? " " : "", r);
        if (state[r] == 2 && le < sizeof elsewhere - 80)
            le += (size_t)snprintf(elsewhere + le, sizeof elsewhere - le, "%srank %d in #%llu (%s)",
                                   le ? ", " : "", r, heard[r].seq, heard[r].what);
    }
    fprintf(stderr,
            "dprune: error (rank %d): collective #%llu (%s) did not complete within %.0f s "
            "(dist.watchdog_seconds); ranks that have not arrived: %s%s%s; ending the job\n",
            d->rank, mine.seq, what, d->watchdog_seconds, lm ? missing : "none identified",
            le ? "; waiting elsewhere: " : "", elsewhere);
    fflush(stderr);
    free(state);
    free(heard);
    MPI_Abort(MPI_COMM_WORLD, 3);
    exit(3);
}

dp_status dp_watchdog_wait(dp_dist *d, MPI_Request *req, const char *what, dp_error *err) {
    (void)err;
    if (*req == MPI_REQUEST_NULL) return DP_OK;
    d->seq++;
    if (d->watchdog_seconds <= 0) {
        MPI_Wait(req, MPI_STATUS_IGNORE);
        return DP_OK;
    }
    double t0 = dp_now_seconds();
    for (;;) {
        int done = 0;
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return DP_OK;
        double waited = dp_now_seconds() - t0;
        if (waited > d->watchdog_seconds) report_and_abort(d, what);
        pause_briefly(waited);
    }
}
