#include "dprune/core.h"
#include <stdarg.h>
#include <stdio.h>

dp_status dp_fail(dp_error *err, dp_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *dp_status_name(dp_status code) {
    switch (code) {
    case DP_OK:
        return "ok";
    case DP_ERR_ARG:
        return "invalid argument";
    case DP_ERR_CONFIG:
        return "config error";
    case DP_ERR_IO:
        return "I/O error";
    case DP_ERR_DATA:
        return "data error";
    case DP_ERR_NOMEM:
        return "out of memory";
    case DP_ERR_NUMERIC:
        return "numeric error";
    case DP_ERR_CHECKPOINT:
        return "checkpoint error";
    case DP_ERR_MPI:
        return "MPI error";
    }
    return "unknown error";
}
