/* Whole-file reads for small text files (configs). */
#include "dprune/io.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

dp_status dp_read_text_file(const char *path, char **text, size_t *len, dp_error *err) {
    *text = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return dp_fail(err, DP_ERR_IO, "cannot open '%s' for reading: %s", path, strerror(errno));
    /* Read in growing chunks rather than trusting the size from fseek/ftell, which is
     * meaningless for pipes and /proc files. */
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break; /* end of file or an error, told apart below */
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!buf) {
        fclose(f);
        return dp_fail(err, DP_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    if (ferror(f)) { /* e.g. EISDIR: fopen succeeds on a directory, reading fails */
        int e = errno;
        fclose(f);
        free(buf);
        return dp_fail(err, DP_ERR_IO, "cannot read '%s': %s", path, strerror(e));
    }
    fclose(f);
    buf[n] = '\0';
    *text = buf;
    if (len) *len = n;
    return DP_OK;
}
