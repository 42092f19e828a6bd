/* ImageFolder listing (torchvision layout): root/<class>/<image>.jpg. Classes are the
 * subdirectories sorted by name (strcmp, the order torchvision assigns); files are sorted by
 * name within a class. Only names are read here; dp_make_sample decodes on demand.
 * Also home of dp_dataset_free, since the file lists are the most involved part to free. */
#include "dprune/data.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

static int push(strvec *s, const char *str) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    char *copy = strdup(str);
    if (!copy) return -1;
    s->v[s->n++] = copy;
    return 0;
}

/* Adds a NULL after the last entry (not counted in n). dp_dataset_free walks to the NULL, so
 * it frees every path even when a caller has lowered ds->n to use a prefix of the data. */
static int terminate(strvec *s) {
    if (push(s, "") != 0) return -1;
    free(s->v[--s->n]);
    s->v[s->n] = NULL;
    return 0;
}

static void strvec_free(strvec *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Extensions are matched case-insensitively: .jpg .jpeg .JPG .JPEG (and mixed case). */
static bool is_jpeg_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && dot != name && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

static char *join_path(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

/* stat() rather than d_type: d_type is DT_UNKNOWN on some filesystems, and symlinks to class
 * directories or images should be followed like torchvision does. */
static bool has_mode(const char *dir, const char *name, mode_t kind) {
    char *p = join_path(dir, name);
    struct stat st;
    bool ok = p && stat(p, &st) == 0 && (st.st_mode & S_IFMT) == kind;
    free(p);
    return ok;
}

/* Sorted names in `dir`: subdirectories (want_dirs) or JPEG files. Hidden entries skipped. */
static dp_status list_dir(const char *dir, bool want_dirs, strvec *out, dp_error *err) {
    DIR *d = opendir(dir);
    if (!d)
        return dp_fail(err, DP_ERR_IO, "%s: cannot open ImageFolder directory: %s", dir,
                       strerror(errno));
    dp_status st = DP_OK;
    struct dirent *e;
    while (st == DP_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        bool keep = want_dirs ? has_mode(dir, e->d_name, S_IFDIR)
                              : is_jpeg_name(e->d_name) && has_mode(dir, e->d_name, S_IFREG);
        if (keep && push(out, e->d_name) != 0)
            st = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory listing directory", dir);
    }
    closedir(d);
    if (out->n > 1) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return st;
}

/* Lists every class into `paths` (full paths) and `labels` (growing int32 array). */
static dp_status list_classes(const char *root, const strvec *classes, strvec *paths,
                              int32_t **labels, dp_error *err) {
    size_t labels_cap = 0;
    for (size_t c = 0; c < classes->n; c++) {
        char *dir = join_path(root, classes->v[c]);
        if (!dir) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", root);
        strvec files = {0};
        dp_status st = list_dir(dir, false, &files, err);
        if (st == DP_OK && files.n == 0)
            st = dp_fail(err, DP_ERR_DATA,
                         "%s: class directory '%s' has no images (expected *.jpg or *.jpeg)", dir,
                         classes->v[c]);
        for (size_t i = 0; st == DP_OK && i < files.n; i++) {
            char *p = join_path(dir, files.v[i]);
            if (!p || push(paths, p) != 0) st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            free(p);
            if (st == DP_OK && paths->n > labels_cap) {
                labels_cap = paths->cap;
                int32_t *l = realloc(*labels, labels_cap * sizeof *l);
                if (!l)
                    st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
                else
                    *labels = l;
            }
            if (st == DP_OK) (*labels)[paths->n - 1] = (int32_t)c;
        }
        strvec_free(&files);
        free(dir);
        if (st != DP_OK) return st;
    }
    return DP_OK;
}

dp_status dp_dataset_load_imagefolder(dp_dataset *ds, const char *root, dp_error *err) {
    if (!ds || !root) return dp_fail(err, DP_ERR_ARG, "dp_dataset_load_imagefolder: NULL argument");
    memset(ds, 0, sizeof *ds);
    strvec classes = {0}, paths = {0};
    int32_t *labels = NULL;
    dp_status st = list_dir(root, true, &classes, err);
    if (st == DP_OK && classes.n == 0)
        st = dp_fail(err, DP_ERR_DATA,
                     "%s: empty ImageFolder: no class subdirectories (expected root/<class>/*.jpg)",
                     root);
    if (st == DP_OK && classes.n > INT32_MAX)
        st = dp_fail(err, DP_ERR_DATA, "%s: too many class directories", root);
    if (st == DP_OK) st = list_classes(root, &classes, &paths, &labels, err);
    if (st == DP_OK && (terminate(&paths) != 0 || terminate(&classes) != 0))
        st = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", root);
    if (st == DP_OK) {
        /* Labels go to dp_alloc'd storage so dp_dataset_free treats every kind alike. */
        ds->labels = dp_alloc(paths.n * sizeof(int32_t));
        if (!ds->labels)
            st = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", root);
        else
            memcpy(ds->labels, labels, paths.n * sizeof(int32_t));
    }
    free(labels);
    if (st != DP_OK) {
        strvec_free(&classes);
        strvec_free(&paths);
        dp_dataset_free(ds);
        return st;
    }
    ds->n = (int64_t)paths.n;
    ds->paths = paths.v;
    ds->num_classes = (int)classes.n;
    ds->class_names = classes.v;
    snprintf(ds->source, sizeof ds->source, "ImageFolder %s", root);
    return DP_OK;
}

void dp_dataset_free(dp_dataset *ds) {
    if (!ds) return;
    dp_free(ds->pixels);
    dp_free(ds->labels);
    /* both lists are NULL-terminated (see terminate): independent of n and num_classes */
    for (char **p = ds->paths; p && *p; p++) free(*p);
    free(ds->paths);
    for (char **p = ds->class_names; p && *p; p++) free(*p);
    free(ds->class_names);
    memset(ds, 0, sizeof *ds);
}
