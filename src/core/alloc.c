#include "dprune/core.h"
#include <stdlib.h>
#include <string.h>

/* 64-byte alignment: one cache line, and the widest AVX-512 load. */
void *dp_alloc(size_t bytes) {
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL; /* overflow */
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

float *dp_alloc_floats(size_t n) {
    if (n > SIZE_MAX / sizeof(float)) return NULL;
    return dp_alloc(n * sizeof(float));
}

void dp_free(void *p) {
    free(p);
}
