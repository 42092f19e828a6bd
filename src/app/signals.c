/* SIGUSR1 (what Slurm sends with --signal and mpirun forwards) and SIGTERM ask the run to
 * stop at the next step boundary with a checkpoint. A handler can only set a flag: this
 * file-level flag is the one piece of global state, as the signal itself is process-wide. The
 * trainer ORs it into the step's allreduce, so a signal that reaches some ranks stops all. */
#include "app.h"
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig) {
    stop_requested = sig;
}

void app_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int app_signal_pending(void) {
    return stop_requested;
}
