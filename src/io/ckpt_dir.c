/* Checkpoint files in a run directory: their names, the `latest` pointer, the order in which
 * resume tries them, and removal of all but the last K. */
#include "dprune/ckpt_file.h"
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void dp_ckpt_file_name(int64_t step, char *out, size_t outsz) {
    snprintf(out, outsz, "ckpt-%06" PRId64 ".dpck", step);
}

/* The step of a checkpoint file name, or -1 when the name is not one ("ckpt-<digits>.dpck"). */
static int64_t step_of(const char *name) {
    if (strncmp(name, "ckpt-", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 18) v = v * 10 + (*p++ - '0'), digits++;
    return digits > 0 && strcmp(p, ".dpck") == 0 ? v : -1;
}

static int by_step_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Steps of the checkpoint files in dir, newest first (malloc'ed; count in *n). */
static int64_t *list_steps(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int cap = 16;
    int64_t *steps = malloc(sizeof *steps * (size_t)cap);
    struct dirent *e;
    while (steps && (e = readdir(d)) != NULL) {
        int64_t s = step_of(e->d_name);
        if (s < 0) continue;
        if (*n == cap) {
            int64_t *grown = realloc(steps, sizeof *steps * (size_t)(cap *= 2));
            if (!grown) break;
            steps = grown;
        }
        steps[(*n)++] = s;
    }
    closedir(d);
    if (steps) qsort(steps, (size_t)*n, sizeof *steps, by_step_desc);
    return steps;
}

int dp_ckpt_candidates(const char *dir, char (*paths)[512], int max) {
    int count = 0;
    char latest_path[600], name[256] = "";
    snprintf(latest_path, sizeof latest_path, "%s/latest", dir);
    FILE *f = fopen(latest_path, "r");
    if (f) {
        if (fgets(name, sizeof name, f)) name[strcspn(name, "\r\n")] = 0;
        fclose(f);
    }
    /* `latest` may only name a checkpoint file in this directory */
    if (step_of(name) >= 0 && count < max) snprintf(paths[count++], 512, "%s/%s", dir, name);
    int n = 0;
    int64_t *steps = list_steps(dir, &n);
    for (int i = 0; i < n && count < max; i++) {
        char file[64], path[512];
        dp_ckpt_file_name(steps[i], file, sizeof file);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        if (count > 0 && strcmp(paths[0], path) == 0) continue;
        if (access(path, F_OK) != 0) continue; /* a zero-padding variant of another name */
        snprintf(paths[count++], 512, "%s", path);
    }
    free(steps);
    return count;
}

dp_status dp_ckpt_write_latest(const char *dir, const char *file_name, dp_error *err) {
    char path[DP_CKPT_MAX_NAME], text[300];
    snprintf(path, sizeof path, "%s/latest", dir);
    int n = snprintf(text, sizeof text, "%s\n", file_name);
    dp_iovec part = {text, (size_t)n};
    return dp_write_file_atomic(path, &part, 1, err);
}

void dp_ckpt_prune_old(const char *dir, int64_t current_step, int keep_last) {
    if (keep_last <= 0) return;
    int n = 0;
    int64_t *steps = list_steps(dir, &n);
    int kept = 1; /* the current file */
    for (int i = 0; i < n; i++) {
        if (steps[i] >= current_step) continue;
        if (kept < keep_last) {
            kept++;
            continue;
        }
        char file[64], path[DP_CKPT_MAX_NAME];
        dp_ckpt_file_name(steps[i], file, sizeof file);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        unlink(path);
    }
    free(steps);
}

int dp_ckpt_remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        /* "ckpt-<step>.dpck.tmp-<pid>": a write that a crash interrupted before its rename */
        if (strncmp(e->d_name, "ckpt-", 5) != 0 || !strstr(e->d_name, ".dpck.tmp-")) continue;
        char path[DP_CKPT_MAX_NAME + 300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) removed++;
    }
    closedir(d);
    return removed;
}
