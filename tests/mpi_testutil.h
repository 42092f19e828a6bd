/* For tests run under mpiexec: every rank counts its own checks; the job fails if any rank
 * failed one, rank 0 prints the "N passed, N failed" line, and MPI is finalised. */
#ifndef DPRUNE_MPI_TESTUTIL_H
#define DPRUNE_MPI_TESTUTIL_H

#include "dprune/dist.h"
#include "testutil.h"

static inline int dp_test_finish_mpi(dp_dist *d) {
    dp_error err = {0};
    int64_t failed = dp_test_failed;
    dp_dist_sum_i64(d, &failed, 1, &err);
    int rc = d->rank == 0 ? dp_test_finish() : 0;
    if (failed > 0) rc = 1;
    dp_dist_finalize();
    return rc;
}

#endif
