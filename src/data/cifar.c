/* CIFAR-10/100 binary reader. A record is the label byte(s) followed by 3072 pixel bytes laid
 * out as R, G, B planes of 32x32, row-major: already the CHW layout the network wants, so the
 * pixels are copied as they are. Files are concatenated in the order given. */
#include "dprune/data.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CIFAR_PIXELS = 3 * 32 * 32, CIFAR_CHUNK = 1024 /* records per fread */ };

typedef struct {
    bool cifar100;
    int label_bytes; /* 1 (CIFAR-10) or 2 (coarse + fine) */
    int record;      /* label_bytes + 3072 */
    int classes;     /* 10 or 100 (fine) */
} cifar_format;

static cifar_format format_of(bool cifar100) {
    cifar_format f = {cifar100, cifar100 ? 2 : 1, 0, cifar100 ? 100 : 10};
    f.record = f.label_bytes + CIFAR_PIXELS;
    return f;
}

/* Records in one file, from its size, which must be a nonzero multiple of the record size. */
static dp_status count_records(const char *path, const cifar_format *f, int64_t *n, dp_error *err) {
    struct stat st;
    if (stat(path, &st) != 0)
        return dp_fail(err, DP_ERR_IO, "%s: cannot open CIFAR file: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dp_fail(err, DP_ERR_IO, "%s: not a regular file (expected a CIFAR .bin)", path);
    long long size = (long long)st.st_size;
    if (size == 0)
        return dp_fail(err, DP_ERR_DATA, "%s: empty file (expected CIFAR records)", path);
    if (size % f->record != 0)
        return dp_fail(err, DP_ERR_DATA,
                       "%s: size %lld is not a multiple of the %d-byte CIFAR-%d record "
                       "(%d label byte%s + 3072 pixels): truncated or not CIFAR-%d",
                       path, size, f->record, f->classes, f->label_bytes,
                       f->label_bytes > 1 ? "s" : "", f->classes);
    *n = size / f->record;
    return DP_OK;
}

/* Copies `count` records from buf into the dataset at position `at`, checking labels. */
static dp_status unpack(const uint8_t *buf, int64_t count, const cifar_format *f, const char *path,
                        int64_t first_in_file, dp_dataset *ds, int64_t at, dp_error *err) {
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *rec = buf + i * f->record;
        int coarse = f->cifar100 ? rec[0] : 0;
        int label = rec[f->label_bytes - 1];
        if (label >= f->classes || coarse >= 20)
            return dp_fail(err, DP_ERR_DATA,
                           "%s: record %lld has label %d%s, expected 0..%d for CIFAR-%d "
                           "(wrong format or corrupt file?)",
                           path, (long long)(first_in_file + i), label,
                           coarse >= 20 ? " with coarse label >= 20" : "", f->classes - 1,
                           f->classes);
        ds->labels[at + i] = label;
        memcpy(ds->pixels + (size_t)(at + i) * CIFAR_PIXELS, rec + f->label_bytes, CIFAR_PIXELS);
    }
    return DP_OK;
}

static dp_status read_file(const char *path, int64_t nrec, const cifar_format *f, dp_dataset *ds,
                           int64_t at, uint8_t *buf, dp_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dp_fail(err, DP_ERR_IO, "%s: cannot open CIFAR file: %s", path, strerror(errno));
    dp_status st = DP_OK;
    for (int64_t done = 0; st == DP_OK && done < nrec;) {
        int64_t count = nrec - done < CIFAR_CHUNK ? nrec - done : CIFAR_CHUNK;
        size_t want = (size_t)count * (size_t)f->record;
        if (fread(buf, 1, want, fp) != want) {
            st = dp_fail(err, DP_ERR_DATA, "%s: truncated while reading record %lld of %lld", path,
                         (long long)done, (long long)nrec);
            break;
        }
        st = unpack(buf, count, f, path, done, ds, at + done, err);
        done += count;
    }
    fclose(fp);
    return st;
}

dp_status dp_dataset_load_cifar(dp_dataset *ds, const char *const *paths, int npaths, bool cifar100,
                                dp_error *err) {
    if (!ds || !paths || npaths <= 0)
        return dp_fail(err, DP_ERR_ARG, "dp_dataset_load_cifar: no files given");
    memset(ds, 0, sizeof *ds);
    cifar_format f = format_of(cifar100);
    /* First pass: sizes only, so a bad file is reported before anything is allocated. The
     * counts are kept: a file that changes size meanwhile reads short, never overflows. */
    int64_t *counts = calloc((size_t)npaths, sizeof *counts);
    if (!counts) return dp_fail(err, DP_ERR_NOMEM, "dp_dataset_load_cifar: out of memory");
    int64_t total = 0;
    dp_status st = DP_OK;
    for (int i = 0; st == DP_OK && i < npaths; i++) {
        st = count_records(paths[i], &f, &counts[i], err);
        total += counts[i];
    }
    uint8_t *buf = NULL;
    if (st == DP_OK) {
        ds->pixels = dp_alloc((size_t)total * CIFAR_PIXELS);
        ds->labels = dp_alloc((size_t)total * sizeof(int32_t));
        buf = malloc((size_t)CIFAR_CHUNK * (size_t)f.record);
        if (!ds->pixels || !ds->labels || !buf)
            st = dp_fail(err, DP_ERR_NOMEM, "cannot allocate %lld CIFAR records", (long long)total);
    }
    int64_t at = 0;
    for (int i = 0; st == DP_OK && i < npaths; i++) {
        st = read_file(paths[i], counts[i], &f, ds, at, buf, err);
        at += counts[i];
    }
    free(counts);
    free(buf);
    if (st != DP_OK) {
        dp_dataset_free(ds);
        return st;
    }
    ds->n = total;
    ds->c = 3;
    ds->h = ds->w = 32;
    ds->num_classes = f.classes;
    snprintf(ds->source, sizeof ds->source, "CIFAR-%d %s%s", f.classes, paths[0],
             npaths > 1 ? " (+ more files)" : "");
    return DP_OK;
}
