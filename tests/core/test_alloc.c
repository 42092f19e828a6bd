#include "dprune/core.h"
#include "testutil.h"
#include <stdint.h>
#include <string.h>

int main(void) {
    for (size_t n = 1; n < 5000; n = n * 3 + 1) {
        float *p = dp_alloc_floats(n);
        CHECK(p != NULL);
        CHECK(((uintptr_t)p & 63) == 0);
        int zero = 1;
        for (size_t i = 0; i < n; i++) zero &= p[i] == 0.0f;
        CHECK(zero);
        dp_free(p);
    }
    CHECK(dp_alloc_floats(SIZE_MAX / 2) == NULL);
    dp_error err;
    CHECK(dp_fail(&err, DP_ERR_DATA, "file %s: bad magic %d", "x.idx", 7) == DP_ERR_DATA);
    CHECK(strcmp(err.msg, "file x.idx: bad magic 7") == 0);
    CHECK(err.code == DP_ERR_DATA);
    return dp_test_finish();
}
