/* dprune core: status codes and error messages, aligned float storage, counter-based RNG,
 * thread setup. Knows nothing about layers. */
#ifndef DPRUNE_CORE_H
#define DPRUNE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DPRUNE_VERSION "0.1.0"

/* ---- errors: library code returns a status and fills a message; only app/ exits ---- */
typedef enum {
    DP_OK = 0,
    DP_ERR_ARG,        /* a caller passed something invalid */
    DP_ERR_CONFIG,     /* a setting is missing, mistyped or out of range */
    DP_ERR_IO,         /* a file could not be opened, read or written */
    DP_ERR_DATA,       /* a data file is malformed */
    DP_ERR_NOMEM,      /* an allocation failed */
    DP_ERR_NUMERIC,    /* NaN/Inf loss or similar */
    DP_ERR_CHECKPOINT, /* a checkpoint is damaged or foreign */
    DP_ERR_MPI,        /* a collective failed or timed out */
} dp_status;

typedef struct {
    dp_status code;
    char msg[1024];
} dp_error;

/* Sets err (if not NULL) to code + printf-style message and returns code. */
dp_status dp_fail(dp_error *err, dp_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *dp_status_name(dp_status code);

/* ---- storage: 64-byte aligned, zero-initialised; NULL on failure ---- */
void *dp_alloc(size_t bytes);
float *dp_alloc_floats(size_t n);
void dp_free(void *p);

/* ---- counter-based RNG: a stream is keyed by (seed, a, b, c), never by rank or thread.
 * Typical keys: (seed, epoch, global sample index, purpose). ---- */
typedef struct {
    uint64_t key;
    uint64_t counter;
} dp_rng;

enum { /* purposes: distinct streams for the same sample */
       DP_RNG_INIT = 1,
       DP_RNG_SHUFFLE = 2,
       DP_RNG_AUGMENT = 3,
       DP_RNG_DROPOUT = 4,
       DP_RNG_SPLIT = 5,
       DP_RNG_PRUNE = 6,
       DP_RNG_CLUSTER = 7,
};

uint64_t dp_hash64(uint64_t x);
/* FNV-1a (64-bit) of n bytes: fingerprints of configs, tensors, checkpoints. */
uint64_t dp_fnv1a(const void *data, size_t n);
void dp_rng_init(dp_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint64_t dp_rng_u64(dp_rng *r);
uint32_t dp_rng_u32(dp_rng *r);
double dp_rng_uniform(dp_rng *r);             /* [0, 1) with 53 bits */
uint32_t dp_rng_below(dp_rng *r, uint32_t n); /* uniform in [0, n), unbiased */
double dp_rng_normal(dp_rng *r);              /* standard normal (Box-Muller) */
/* Fisher-Yates permutation of 0..n-1 from one stream. */
void dp_rng_permutation(dp_rng *r, int64_t *perm, int64_t n);

/* ---- threads: OpenMP threads per rank; OpenBLAS stays single-threaded inside OpenMP
 * regions. requested <= 0 means OMP_NUM_THREADS or all cores. Returns the count used. ---- */
int dp_threads_setup(int requested);
int dp_threads_count(void);
const char *dp_blas_corename(void);
double dp_now_seconds(void); /* monotonic clock */

#endif
