/* Batch loader with double buffering. Two slots: the caller reads batch b from slot b % 2 while
 * a background pthread fills batch b + 1 into the other slot. The caller's pointers stay valid
 * until its next dp_loader_next, which is exactly when batch b + 2 may start overwriting them.
 *
 * Protocol (all under `mu`): the caller queues one job at a time (job_state QUEUED); the
 * worker runs it (RUNNING) and reports DONE. start_epoch and close cancel a job in flight:
 * the worker checks `cancel` between samples, so shutting down mid-epoch is quick. Errors are
 * stored in the slot and returned by the dp_loader_next that would have returned the batch. */
#include "data_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *x;
    int32_t *y;
    uint64_t *keys;
    int n;
    int64_t step;
    dp_status status;
    dp_error err;
} slot;

enum { JOB_NONE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };
enum { MAX_HELPERS = 64 }; /* decode threads besides the one filling the batch */

struct dp_loader {
    dp_loader_config cfg;
    int64_t n;            /* split size */
    int64_t nbatches;     /* global batches per epoch */
    int local_max;        /* most samples this rank takes from one global batch */
    size_t sample_floats; /* out_c * out_h * out_w */
    int64_t *order;       /* epoch order of split positions */
    int64_t epoch;
    bool epoch_started;
    int64_t next_batch; /* the batch the next dp_loader_next returns */
    dp_status sticky;   /* an error stays until the next start_epoch */
    dp_error sticky_err;
    slot slots[2];
    /* worker */
    bool have_thread;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int job_state;
    int64_t job_batch;
    bool quit;
    atomic_bool cancel;
};

/* Decoding one batch with `threads` threads: the calling thread plus helpers, all taking the
 * next sample from a shared counter. Plain pthreads rather than OpenMP: an idle OpenMP team
 * spins, which would steal cores from the trainer's own compute threads. */
typedef struct {
    dp_loader *ld;
    slot *s;
    atomic_int next;
    pthread_mutex_t mu;
    int first_bad; /* the lowest failing sample wins, so the message is deterministic */
} decode_job;

static void *decode_loop(void *arg) {
    decode_job *j = arg;
    const dp_loader_config *c = &j->ld->cfg;
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->s->n || atomic_load_explicit(&j->ld->cancel, memory_order_relaxed)) break;
        dp_error e;
        dp_status st =
            dp_make_sample(c->split->ds, (int64_t)j->s->keys[i], c->aug, c->train, c->seed,
                           j->ld->epoch, j->s->x + (size_t)i * j->ld->sample_floats, &e);
        if (st != DP_OK) {
            pthread_mutex_lock(&j->mu);
            if (i < j->first_bad) {
                j->first_bad = i;
                j->s->status = st;
                j->s->err = e;
            }
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

static void decode_batch(dp_loader *ld, slot *s) {
    decode_job j = {.ld = ld, .s = s, .first_bad = s->n};
    atomic_init(&j.next, 0);
    pthread_mutex_init(&j.mu, NULL);
    int want = ld->cfg.threads > 1 ? ld->cfg.threads - 1 : 0; /* the caller decodes too */
    if (want > MAX_HELPERS) want = MAX_HELPERS;
    if (want > s->n - 1) want = s->n > 0 ? s->n - 1 : 0;
    pthread_t helpers[MAX_HELPERS];
    int started = 0;
    /* a helper that fails to start only means fewer threads, not an error */
    while (started < want && pthread_create(&helpers[started], NULL, decode_loop, &j) == 0)
        started++;
    decode_loop(&j);
    for (int t = 0; t < started; t++) pthread_join(helpers[t], NULL);
    pthread_mutex_destroy(&j.mu);
}

/* Fills `s` with global batch b: this rank's strided share of positions [b*B, (b+1)*B). */
static void fill_batch(dp_loader *ld, int64_t b, slot *s) {
    const dp_loader_config *c = &ld->cfg;
    const dp_dataset *ds = c->split->ds;
    int64_t start = b * c->global_batch, end = start + c->global_batch;
    if (end > ld->n) end = ld->n;
    int cnt = 0;
    for (int64_t pos = start + c->rank; pos < end; pos += c->world) {
        int64_t key = c->split->index[ld->order[pos]];
        s->keys[cnt] = (uint64_t)key;
        s->y[cnt] = ds->labels[key];
        cnt++;
    }
    s->n = cnt;
    s->step = b;
    s->status = DP_OK;
    decode_batch(ld, s);
}

static void *worker_main(void *arg) {
    dp_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->quit && ld->job_state != JOB_QUEUED) pthread_cond_wait(&ld->cv, &ld->mu);
        if (ld->quit) break;
        ld->job_state = JOB_RUNNING;
        int64_t b = ld->job_batch;
        pthread_mutex_unlock(&ld->mu);
        fill_batch(ld, b, &ld->slots[b % 2]);
        pthread_mutex_lock(&ld->mu);
        ld->job_state = JOB_DONE;
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

static void submit(dp_loader *ld, int64_t b) {
    pthread_mutex_lock(&ld->mu);
    ld->job_batch = b;
    ld->job_state = JOB_QUEUED;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
}

static void wait_job(dp_loader *ld) {
    pthread_mutex_lock(&ld->mu);
    while (ld->job_state == JOB_QUEUED || ld->job_state == JOB_RUNNING)
        pthread_cond_wait(&ld->cv, &ld->mu);
    pthread_mutex_unlock(&ld->mu);
}

/* Drops a queued job and waits for a running one to stop (it skips its remaining samples). */
static void cancel_job(dp_loader *ld) {
    atomic_store(&ld->cancel, true);
    pthread_mutex_lock(&ld->mu);
    if (ld->job_state == JOB_QUEUED) ld->job_state = JOB_NONE;
    while (ld->job_state == JOB_RUNNING) pthread_cond_wait(&ld->cv, &ld->mu);
    ld->job_state = JOB_NONE;
    pthread_mutex_unlock(&ld->mu);
    atomic_store(&ld->cancel, false);
}

static dp_status check_config(const dp_loader_config *c, dp_error *err) {
    if (!c || !c->split || !c->split->ds || !c->aug)
        return dp_fail(err, DP_ERR_ARG, "loader: config, split, dataset and augment are required");
    if (c->split->n < 0 || (c->split->n > 0 && !c->split->index))
        return dp_fail(err, DP_ERR_ARG, "loader: split has %lld entries but no index",
                       (long long)c->split->n);
    if (c->global_batch <= 0)
        return dp_fail(err, DP_ERR_CONFIG, "loader: global_batch = %d, expected > 0",
                       c->global_batch);
    if (c->world <= 0 || c->rank < 0 || c->rank >= c->world)
        return dp_fail(err, DP_ERR_CONFIG, "loader: rank %d of world %d is invalid", c->rank,
                       c->world);
    if (c->threads < 0 || c->threads > MAX_HELPERS + 1)
        return dp_fail(err, DP_ERR_CONFIG, "loader: threads = %d, expected 0..%d", c->threads,
                       MAX_HELPERS + 1);
    return dp_augment_check(c->aug, err);
}

static dp_status alloc_slots(dp_loader *ld, dp_error *err) {
    size_t m = (size_t)(ld->local_max > 0 ? ld->local_max : 1);
    for (int i = 0; i < 2; i++) {
        slot *s = &ld->slots[i];
        s->x = dp_alloc_floats(m * ld->sample_floats);
        s->y = dp_alloc(m * sizeof *s->y);
        s->keys = dp_alloc(m * sizeof *s->keys);
        if (!s->x || !s->y || !s->keys)
            return dp_fail(err, DP_ERR_NOMEM, "loader: cannot allocate a batch of %zu samples", m);
    }
    ld->order = malloc((size_t)(ld->n > 0 ? ld->n : 1) * sizeof *ld->order);
    if (!ld->order) return dp_fail(err, DP_ERR_NOMEM, "loader: out of memory");
    return DP_OK;
}

dp_status dp_loader_open(dp_loader **out, const dp_loader_config *cfg, dp_error *err) {
    if (!out) return dp_fail(err, DP_ERR_ARG, "dp_loader_open: NULL output");
    *out = NULL;
    dp_status st = check_config(cfg, err);
    if (st != DP_OK) return st;
    dp_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return dp_fail(err, DP_ERR_NOMEM, "loader: out of memory");
    ld->cfg = *cfg;
    ld->n = cfg->split->n;
    int64_t B = cfg->global_batch;
    ld->nbatches = cfg->drop_last ? ld->n / B : (ld->n + B - 1) / B;
    ld->local_max = (int)((B - cfg->rank + cfg->world - 1) / cfg->world);
    ld->sample_floats = (size_t)cfg->aug->out_c * cfg->aug->out_h * cfg->aug->out_w;
    atomic_init(&ld->cancel, false);
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    st = alloc_slots(ld, err);
    if (st == DP_OK && cfg->prefetch) {
        if (pthread_create(&ld->thread, NULL, worker_main, ld) != 0)
            st = dp_fail(err, DP_ERR_NOMEM, "loader: cannot start the prefetch thread");
        else
            ld->have_thread = true;
    }
    if (st != DP_OK) {
        dp_loader_close(ld);
        return st;
    }
    *out = ld;
    return DP_OK;
}

dp_status dp_loader_start_epoch(dp_loader *ld, int64_t epoch, dp_error *err) {
    return dp_loader_start_epoch_at(ld, epoch, 0, err);
}

dp_status dp_loader_start_epoch_at(dp_loader *ld, int64_t epoch, int64_t first_batch,
                                   dp_error *err) {
    if (!ld) return dp_fail(err, DP_ERR_ARG, "dp_loader_start_epoch: NULL loader");
    if (first_batch < 0 || first_batch > ld->nbatches)
        return dp_fail(err, DP_ERR_ARG, "loader: batch %lld of an epoch of %lld batches",
                       (long long)first_batch, (long long)ld->nbatches);
    if (ld->have_thread) cancel_job(ld); /* a restart mid-epoch abandons the old prefetch */
    ld->epoch = epoch;
    dp_sampler_order(ld->n, ld->cfg.shuffle, ld->cfg.seed, epoch, ld->order);
    ld->next_batch = first_batch;
    ld->sticky = DP_OK;
    ld->epoch_started = true;
    if (ld->have_thread && first_batch < ld->nbatches) submit(ld, first_batch);
    return DP_OK;
}

dp_status dp_loader_next(dp_loader *ld, dp_batch *b, dp_error *err) {
    if (!ld || !b) return dp_fail(err, DP_ERR_ARG, "dp_loader_next: NULL argument");
    memset(b, 0, sizeof *b);
    if (!ld->epoch_started)
        return dp_fail(err, DP_ERR_ARG, "dp_loader_next: call dp_loader_start_epoch first");
    if (ld->sticky != DP_OK) return dp_fail(err, ld->sticky, "%s", ld->sticky_err.msg);
    int64_t bi = ld->next_batch;
    if (bi >= ld->nbatches) {
        b->step = bi;
        return DP_OK; /* end of epoch: n = 0 */
    }
    slot *s = &ld->slots[bi % 2];
    if (ld->have_thread)
        wait_job(ld);
    else
        fill_batch(ld, bi, s);
    if (s->status != DP_OK) {
        ld->sticky = s->status;
        ld->sticky_err = s->err;
        return dp_fail(err, s->status, "%s", s->err.msg);
    }
    ld->next_batch = bi + 1;
    /* The other slot held the batch returned last time; the caller is done with it now. */
    if (ld->have_thread && bi + 1 < ld->nbatches) submit(ld, bi + 1);
    b->n = s->n;
    b->x = s->x;
    b->y = s->y;
    b->keys = s->keys;
    b->step = s->step;
    return DP_OK;
}

int64_t dp_loader_batches_per_epoch(const dp_loader *ld) {
    return ld ? ld->nbatches : 0;
}

void dp_loader_close(dp_loader *ld) {
    if (!ld) return;
    if (ld->have_thread) {
        atomic_store(&ld->cancel, true);
        pthread_mutex_lock(&ld->mu);
        ld->quit = true;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
    }
    for (int i = 0; i < 2; i++) {
        dp_free(ld->slots[i].x);
        dp_free(ld->slots[i].y);
        dp_free(ld->slots[i].keys);
    }
    free(ld->order);
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->cv);
    free(ld);
}
