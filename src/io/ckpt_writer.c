/* The background checkpoint writer: one pthread encodes (compresses) a snapshot the training
 * thread handed over and writes it atomically, then points `latest` at it and removes old
 * files. Training continues meanwhile; its only stall is taking the snapshot. */
#include "dprune/ckpt_file.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dp_ckpt_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a job arrives, finishes, or stop is asked */
    char dir[DP_CKPT_MAX_NAME];
    int keep_last;
    /* guarded by mu */
    bool has_job, busy, stop;
    dp_ckpt_job job;
    int64_t step;
    bool last_ok;       /* the last finished job succeeded */
    bool error_pending; /* a failure not yet taken by dp_ckpt_writer_take_error */
    dp_error last_err;
    char last_path[DP_CKPT_MAX_NAME];
};

/* Encodes, writes, updates `latest`, prunes; runs on the writer thread without the lock.
 * Releases the job in every case. */
static dp_status run_job(dp_ckpt_writer *w, dp_ckpt_job job, int64_t step, char *path,
                         dp_error *err) {
    char file[64];
    dp_ckpt_file_name(step, file, sizeof file);
    dp_ckpt_builder b = {0};
    dp_status st = DP_OK;
    if (snprintf(path, DP_CKPT_MAX_NAME, "%s/%s", w->dir, file) >= DP_CKPT_MAX_NAME)
        st = dp_fail(err, DP_ERR_ARG, "checkpoint path too long in %s", w->dir);
    if (st == DP_OK) st = job.encode(job.ctx, &b, err);
    job.release(job.ctx); /* the snapshot is not needed once encoded: free it before writing */
    if (st == DP_OK) st = dp_ckpt_builder_write(&b, path, err);
    dp_ckpt_builder_free(&b);
    if (st == DP_OK) st = dp_ckpt_write_latest(w->dir, file, err);
    if (st == DP_OK) dp_ckpt_prune_old(w->dir, step, w->keep_last);
    return st;
}

static void *writer_main(void *arg) {
    dp_ckpt_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->has_job && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        if (!w->has_job) break; /* stop, nothing left to do */
        dp_ckpt_job job = w->job;
        int64_t step = w->step;
        w->has_job = false;
        w->busy = true;
        pthread_mutex_unlock(&w->mu);

        dp_error e = {0};
        char path[DP_CKPT_MAX_NAME];
        dp_status st = run_job(w, job, step, path, &e);

        pthread_mutex_lock(&w->mu);
        w->busy = false;
        w->last_ok = st == DP_OK;
        if (st == DP_OK) {
            snprintf(w->last_path, sizeof w->last_path, "%s", path);
        } else {
            w->error_pending = true;
            dp_fail(&w->last_err, e.code, "checkpoint of step %lld not saved: %s", (long long)step,
                    e.msg);
        }
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

dp_status dp_ckpt_writer_start(dp_ckpt_writer **out, const char *dir, int keep_last,
                               dp_error *err) {
    *out = NULL;
    if (strlen(dir) >= DP_CKPT_MAX_NAME - 64)
        return dp_fail(err, DP_ERR_ARG, "checkpoint directory name too long: %s", dir);
    dp_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return dp_fail(err, DP_ERR_NOMEM, "checkpoint writer: out of memory");
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    dp_ckpt_remove_stale_tmp(dir);
    w->keep_last = keep_last;
    w->last_ok = true;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return dp_fail(err, DP_ERR_NOMEM, "checkpoint writer: cannot start its thread");
    }
    *out = w;
    return DP_OK;
}

dp_status dp_ckpt_writer_submit(dp_ckpt_writer *w, int64_t step, dp_ckpt_job job, dp_error *err) {
    if (!w || step < 0) {
        job.release(job.ctx);
        return dp_fail(err, DP_ERR_ARG, "checkpoint writer: no writer or negative step");
    }
    pthread_mutex_lock(&w->mu);
    while (w->has_job || w->busy) pthread_cond_wait(&w->cv, &w->mu);
    w->job = job;
    w->step = step;
    w->has_job = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return DP_OK;
}

bool dp_ckpt_writer_busy(dp_ckpt_writer *w) {
    pthread_mutex_lock(&w->mu);
    bool busy = w->has_job || w->busy;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

bool dp_ckpt_writer_wait(dp_ckpt_writer *w, dp_error *err) {
    pthread_mutex_lock(&w->mu);
    while (w->has_job || w->busy) pthread_cond_wait(&w->cv, &w->mu);
    bool ok = w->last_ok;
    if (!ok && err) *err = w->last_err;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

bool dp_ckpt_writer_take_error(dp_ckpt_writer *w, dp_error *err) {
    pthread_mutex_lock(&w->mu);
    bool pending = w->error_pending;
    if (pending && err) *err = w->last_err;
    w->error_pending = false;
    pthread_mutex_unlock(&w->mu);
    return pending;
}

void dp_ckpt_writer_last_path(dp_ckpt_writer *w, char *out, size_t outsz) {
    pthread_mutex_lock(&w->mu);
    snprintf(out, outsz, "%s", w->last_path);
    pthread_mutex_unlock(&w->mu);
}

void dp_ckpt_writer_stop(dp_ckpt_writer *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
