/* Threads per rank when the user did not say: this rank's fair share of the cores it may run
 * on. `mpirun -n 16 dprune` on a 32-core node starts every rank with an affinity mask that
 * may be one core (--bind-to core), a socket (Open MPI's default above 2 ranks) or the whole
 * node (--bind-to none, many Slurm setups); "all cores" per rank would then run 16 x 32
 * threads on 32 cores, and OpenMP's spinning barriers make oversubscription very costly
 * (NOTES: a 1x2 run with one core taken lost 4x). Each core of my mask counts 1/m, m = how
 * many ranks of this node may run on it; the sum, rounded, at least 1, is my share. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_SET */
#endif
#include "dprune/dist.h"
#include <sched.h>
#include <stdlib.h>

int dp_dist_fair_threads(dp_dist *d) {
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0) return 1;
    MPI_Comm node;
    int local = 1;
    MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    cpu_set_t *all = malloc(sizeof(cpu_set_t) * (size_t)local);
    double share = 0;
    if (all) {
        MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, node);
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
            if (!CPU_ISSET(cpu, &mine)) continue;
            int sharing = 0;
            for (int q = 0; q < local; q++) sharing += CPU_ISSET(cpu, &all[q]) != 0;
            share += 1.0 / sharing; /* sharing >= 1: my own mask has it */
        }
    }
    free(all);
    MPI_Comm_free(&node);
    int n = (int)(share + 0.5);
    return n < 1 ? 1 : n;
}
