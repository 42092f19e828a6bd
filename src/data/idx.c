/* IDX reader (MNIST, Fashion-MNIST): raw or gzip, told apart by the gzip magic 1f 8b, not by
 * the file name. zlib's gzread reads raw files transparently, so one code path serves both.
 * Every size in the header is checked against what the file can hold before allocating. */
#include "dprune/data.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

enum {
    IDX_MAGIC_IMAGES = 0x00000803, /* unsigned byte, 3 dims */
    IDX_MAGIC_LABELS = 0x00000801, /* unsigned byte, 1 dim */
    IDX_MAX_SIDE = 1 << 16,        /* anything larger is a corrupt header, not an image */
};

/* Deflate cannot compress better than about 1032:1, so a gzip file of S bytes holds at most
 * ~1032*S bytes: a sound bound for rejecting absurd headers before allocating. */
#define GZIP_MAX_RATIO 1100ULL

typedef struct {
    gzFile gz;
    const char *path;
    const char *what; /* "images" / "labels", for messages */
    int gzip;
    unsigned long long file_bytes; /* on-disk size */
} idx_file;

static dp_status idx_open(idx_file *f, const char *path, const char *what, dp_error *err) {
    memset(f, 0, sizeof *f);
    f->path = path;
    f->what = what;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dp_fail(err, DP_ERR_IO, "%s: cannot open IDX %s file: %s", path, what,
                       strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return dp_fail(err, DP_ERR_IO, "%s: not a regular file (expected an IDX %s file)", path,
                       what);
    }
    unsigned char m[2] = {0, 0};
    size_t got = fread(m, 1, 2, fp);
    fclose(fp);
    f->file_bytes = (unsigned long long)st.st_size;
    f->gzip = got == 2 && m[0] == 0x1f && m[1] == 0x8b;
    f->gz = gzopen(path, "rb");
    if (!f->gz) return dp_fail(err, DP_ERR_IO, "%s: cannot open IDX %s file", path, what);
    gzbuffer(f->gz, 1 << 17);
    return DP_OK;
}

static void idx_close(idx_file *f) {
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

/* Reads exactly `len` bytes or fails with a message saying how far it got. */
static dp_status idx_read(idx_file *f, void *dst, unsigned long long len, const char *part,
                          dp_error *err) {
    unsigned char *p = dst;
    unsigned long long done = 0;
    while (done < len) {
        unsigned long long left = len - done;
        unsigned chunk = left > (1u << 30) ? (1u << 30) : (unsigned)left;
        int got = gzread(f->gz, p + done, chunk);
        if (got <= 0) {
            int zerr = Z_OK;
            const char *zmsg = got < 0 ? gzerror(f->gz, &zerr) : "end of file";
            return dp_fail(err, DP_ERR_DATA,
                           "%s: truncated IDX %s file: expected %llu bytes of %s, got %llu (%s)",
                           f->path, f->what, len, part, done, zmsg);
        }
        done += (unsigned long long)got;
    }
    return DP_OK;
}

static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads magic + dims and checks them: the magic, no zero or absurd dims, and that the payload
 * fits the file (raw: exactly; gzip: within the deflate ratio bound). */
static dp_status idx_header(idx_file *f, uint32_t magic, int ndim, uint32_t *dims,
                            unsigned long long *payload, dp_error *err) {
    unsigned char hdr[16];
    size_t hbytes = 4 + 4 * (size_t)ndim;
    /* magic first: a wrong kind of file is reported as such, not as a short header */
    dp_status st = idx_read(f, hdr, 4, "magic number", err);
    if (st != DP_OK) return st;
    uint32_t got = be32(hdr);
    if (got != magic)
        return dp_fail(err, DP_ERR_DATA,
                       "%s: wrong magic 0x%08x, expected 0x%08x (IDX unsigned-byte %s, %d dim%s)",
                       f->path, got, magic, f->what, ndim, ndim > 1 ? "s" : "");
    st = idx_read(f, hdr + 4, hbytes - 4, "header dims", err);
    if (st != DP_OK) return st;
    unsigned long long total = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        uint32_t limit = i == 0 ? INT32_MAX : IDX_MAX_SIDE;
        if (dims[i] == 0 || dims[i] > limit)
            return dp_fail(err, DP_ERR_DATA, "%s: dimension %d is %u, expected 1..%u", f->path, i,
                           dims[i], limit);
        total *= dims[i]; /* <= 2^31 * 2^16 * 2^16: no overflow */
    }
    *payload = total;
    unsigned long long need = hbytes + total;
    if (!f->gzip && need != f->file_bytes) {
        const char *what = need > f->file_bytes ? "truncated" : "has trailing bytes";
        return dp_fail(err, DP_ERR_DATA,
                       "%s: %s: file is %llu bytes but its header promises %llu "
                       "(%zu header + %llu data)",
                       f->path, what, f->file_bytes, need, hbytes, total);
    }
    if (f->gzip && need > f->file_bytes * GZIP_MAX_RATIO)
        return dp_fail(err, DP_ERR_DATA,
                       "%s: header promises %llu bytes, more than a %llu-byte gzip file can "
                       "hold: corrupt header",
                       f->path, need, f->file_bytes);
    return DP_OK;
}

/* gzip only (raw sizes were checked exactly): data after the payload means a wrong header. */
static dp_status idx_expect_end(idx_file *f, dp_error *err) {
    unsigned char extra;
    if (f->gzip && gzread(f->gz, &extra, 1) > 0)
        return dp_fail(err, DP_ERR_DATA,
                       "%s: has more data than its header promises (wrong dims in header?)",
                       f->path);
    return DP_OK;
}

static dp_status read_images(const char *path, dp_dataset *ds, dp_error *err) {
    idx_file f;
    dp_status st = idx_open(&f, path, "images", err);
    uint32_t dims[3];
    unsigned long long payload = 0;
    if (st == DP_OK) st = idx_header(&f, IDX_MAGIC_IMAGES, 3, dims, &payload, err);
    if (st == DP_OK) {
        ds->pixels = dp_alloc(payload);
        if (!ds->pixels)
            st = dp_fail(err, DP_ERR_NOMEM, "%s: cannot allocate %llu bytes for images", path,
                         payload);
    }
    if (st == DP_OK) st = idx_read(&f, ds->pixels, payload, "pixel data", err);
    if (st == DP_OK) st = idx_expect_end(&f, err);
    if (st == DP_OK) {
        ds->n = dims[0];
        ds->c = 1;
        ds->h = (int)dims[1];
        ds->w = (int)dims[2];
    }
    idx_close(&f);
    return st;
}

/* Labels arrive as bytes; stored widened to int32 in ds->labels. */
static dp_status read_labels(const char *path, dp_dataset *ds, int64_t *n, dp_error *err) {
    idx_file f;
    dp_status st = idx_open(&f, path, "labels", err);
    uint32_t dims[1];
    unsigned long long payload = 0;
    uint8_t *raw = NULL;
    if (st == DP_OK) st = idx_header(&f, IDX_MAGIC_LABELS, 1, dims, &payload, err);
    if (st == DP_OK) {
        raw = malloc(payload);
        ds->labels = dp_alloc(payload * sizeof(int32_t));
        if (!raw || !ds->labels)
            st = dp_fail(err, DP_ERR_NOMEM, "%s: cannot allocate %llu labels", path, payload);
    }
    if (st == DP_OK) st = idx_read(&f, raw, payload, "labels", err);
    if (st == DP_OK) st = idx_expect_end(&f, err);
    if (st == DP_OK) {
        for (unsigned long long i = 0; i < payload; i++) ds->labels[i] = raw[i];
        *n = (int64_t)payload;
    }
    free(raw);
    idx_close(&f);
    return st;
}

dp_status dp_dataset_load_idx(dp_dataset *ds, const char *images_path, const char *labels_path,
                              int num_classes, dp_error *err) {
    if (!ds || !images_path || !labels_path)
        return dp_fail(err, DP_ERR_ARG, "dp_dataset_load_idx: NULL argument");
    memset(ds, 0, sizeof *ds);
    if (num_classes <= 0) num_classes = 10;
    int64_t nlabels = 0;
    dp_status st = read_images(images_path, ds, err);
    if (st == DP_OK) st = read_labels(labels_path, ds, &nlabels, err);
    if (st == DP_OK && nlabels != ds->n)
        st = dp_fail(err, DP_ERR_DATA, "%s has %lld images but %s has %lld labels (must match)",
                     images_path, (long long)ds->n, labels_path, (long long)nlabels);
    for (int64_t i = 0; st == DP_OK && i < ds->n; i++)
        if (ds->labels[i] >= num_classes)
            st = dp_fail(err, DP_ERR_DATA,
                         "%s: label %d at index %lld is out of range, expected 0..%d "
                         "(num_classes = %d)",
                         labels_path, ds->labels[i], (long long)i, num_classes - 1, num_classes);
    if (st != DP_OK) {
        dp_dataset_free(ds);
        return st;
    }
    ds->num_classes = num_classes;
    snprintf(ds->source, sizeof ds->source, "IDX %s + %s", images_path, labels_path);
    return DP_OK;
}
