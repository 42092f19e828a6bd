/* Provenance of a checkpoint: which program, commit, libraries and run shape produced it. */
#include "dprune/checkpoint.h"
#include <libconfig.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifdef __clang__
#define COMPILER_NAME "clang"
#else
#define COMPILER_NAME "gcc"
#endif

int dp_checkpoint_provenance(dp_ckpt_kv *kv, int n, int max, uint64_t config_hash, int ranks,
                             int threads, uint64_t seed) {
    char host[128] = "?", when[32] = "?";
    if (gethostname(host, sizeof host) != 0) host[0] = '?', host[1] = 0;
    host[sizeof host - 1] = 0;
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    n = dp_ckpt_kv_add(kv, n, max, "dprune_version", "%s", DPRUNE_VERSION);
    n = dp_ckpt_kv_add(kv, n, max, "git_commit", "%s", DPRUNE_GIT_COMMIT);
    n = dp_ckpt_kv_add(kv, n, max, "config_hash", "%016llx", (unsigned long long)config_hash);
    n = dp_ckpt_kv_add(kv, n, max, "zlib", "%s", zlibVersion());
    n = dp_ckpt_kv_add(kv, n, max, "libconfig", "%d.%d.%d", LIBCONFIG_VER_MAJOR,
                       LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
    n = dp_ckpt_kv_add(kv, n, max, "openblas_core", "%s", dp_blas_corename());
    n = dp_ckpt_kv_add(kv, n, max, "compiler", "%s %s", COMPILER_NAME, __VERSION__);
    n = dp_ckpt_kv_add(kv, n, max, "ranks_x_threads", "%dx%d", ranks, threads);
    n = dp_ckpt_kv_add(kv, n, max, "seed", "%llu", (unsigned long long)seed);
    n = dp_ckpt_kv_add(kv, n, max, "host", "%s", host);
    n = dp_ckpt_kv_add(kv, n, max, "created_utc", "%s", when);
    return n;
}
