/*
 * cache_job.c - the job's cache updater (cache_job.h): a bounded FIFO of
 * committed epochs, filled by the flusher, drained by one thread.
 *
 * Synchronization: j->mu guards the queue, its row count, `busy`,
 * `resync_wanted` and `stopping`; the updater takes an epoch off the queue
 * under the mutex and writes it outside, so the flusher never waits for
 * Redis. The rg_cache_redis_t and rg_serve_db_t belong to the updater
 * thread alone (rg_cache_redis_stats() is safe from any thread).
 */
#define _GNU_SOURCE
#include "cache_job.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/error.h"
#include "serve.h"
#include "serve_db.h"

#define TICK_MS 1000

struct epoch {
    struct epoch *next;
    int64_t version;
    size_t n, m;
    int64_t *videos; /* point into the same allocation */
    rg_row_t *rows;
};

struct rg_cache_job_s {
    rg_cache_redis_t *cache;
    rg_serve_db_t *db;
    size_t max_rows;
    pthread_t th;
    bool started;

    pthread_mutex_t mu;
    pthread_cond_t wake, idle;
    struct epoch *head, *tail;
    size_t rows;          /* n + m of the queued epochs */
    bool busy;            /* the updater is writing an epoch */
    bool resync_wanted;   /* an epoch was dropped, or resync() called */
    bool stopping;
    uint64_t epochs, dropped, dropped_rows, queued;
    /* the updater's own: what it last said about Redis */
    rg_log_cb *log;
    void *log_opaque;
    uint64_t seen_errors;
    struct timespec warned; /* 0: nothing said (or said it is back) */
};

static void deadline_in(struct timespec *at, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, at);
    at->tv_sec += ms / 1000;
    at->tv_nsec += (long)(ms % 1000) * 1000000;
    if (at->tv_nsec >= 1000000000) {
        at->tv_sec++;
        at->tv_nsec -= 1000000000;
    }
}

/* Updater thread, after each call into Redis: a failing Redis is said
 * (at most every WARN_EVERY_S, with the cause and what was skipped), and
 * so is its return; counting alone left an operator with numbers only. */
#define WARN_EVERY_S 5
static void watch_redis(rg_cache_job_t *j)
{
    if (j->log == NULL)
        return;
    rg_cache_redis_stats_t st;
    rg_cache_redis_stats(j->cache, &st);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char line[400];
    if (st.errors > j->seen_errors) {
        if (j->warned.tv_sec == 0 ||
            now.tv_sec - j->warned.tv_sec >= WARN_EVERY_S) {
            snprintf(line, sizeof(line), "Redis failing (%s): %llu cache "
                     "updates skipped so far; the database is written as "
                     "usual, reads fall back to it, and the cache resyncs "
                     "when Redis answers again",
                     st.last_error[0] ? st.last_error : "no message",
                     (unsigned long long)st.skipped);
            j->log(j->log_opaque, RG_LOG_WARN, "cache", line);
            j->warned = now;
        }
        j->seen_errors = st.errors;
    } else if (j->warned.tv_sec != 0 && st.connected) {
        j->log(j->log_opaque, RG_LOG_INFO, "cache",
               "Redis answers again: the cache is resynced");
        j->warned.tv_sec = 0;
    }
}

static void *updater_main(void *arg)
{
    rg_cache_job_t *j = arg;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (j->head == NULL && !j->stopping && !j->resync_wanted) {
            struct timespec at;
            deadline_in(&at, TICK_MS);
            int rc = pthread_cond_timedwait(&j->wake, &j->mu, &at);
            if (rc == ETIMEDOUT && j->head == NULL && !j->stopping) {
                j->busy = true;
                pthread_mutex_unlock(&j->mu);
                rg_cache_redis_tick(j->cache, rg_serve_db_read_cb, j->db);
                watch_redis(j);
                pthread_mutex_lock(&j->mu);
                j->busy = false;
            }
        }
        if (j->head == NULL && j->resync_wanted && !j->stopping) {
            /* a dropped epoch and nothing after it: resync now */
            j->resync_wanted = false;
            j->busy = true;
            pthread_mutex_unlock(&j->mu);
            rg_cache_redis_invalidate(j->cache);
            rg_cache_redis_tick(j->cache, rg_serve_db_read_cb, j->db);
            pthread_mutex_lock(&j->mu);
            j->busy = false;
            pthread_cond_broadcast(&j->idle);
            continue;
        }
        if (j->head == NULL) /* stopping, and nothing left */
            break;
        struct epoch *e = j->head;
        j->head = e->next;
        if (j->head == NULL)
            j->tail = NULL;
        j->rows -= e->n + e->m;
        j->queued--;
        bool dropped = j->resync_wanted;
        j->resync_wanted = false;
        j->busy = true;
        pthread_mutex_unlock(&j->mu);

        if (dropped) /* an epoch before this one was never handed over */
            rg_cache_redis_invalidate(j->cache);
        rg_cache_redis_apply(j->cache, e->version, e->videos, e->n, e->rows,
                             e->m, rg_serve_db_read_cb, j->db);
        watch_redis(j);
        free(e);

        pthread_mutex_lock(&j->mu);
        j->busy = false;
        if (j->head == NULL)
            pthread_cond_broadcast(&j->idle);
    }
    j->busy = false;
    pthread_cond_broadcast(&j->idle);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

rg_cache_job_t *rg_cache_job_new(const rg_conf_t *conf, char *errstr,
                                 size_t size)
{
    rg_cache_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        snprintf(errstr, size, "cache: out of memory");
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->wake, &ca);
    pthread_cond_init(&j->idle, &ca);
    pthread_condattr_destroy(&ca);
    j->max_rows = (size_t)rg_conf_get_int(conf, "cache.update.queue.rows");
    j->log = rg_conf_log_cb(conf, &j->log_opaque);
    rg_cache_redis_options_t o;
    rg_serve_cache_options(conf, &o);
    char err[512];
    if ((j->cache = rg_cache_redis_new(&o, errstr, size)) == NULL)
        goto fail;
    if ((j->db = rg_serve_db_open(conf, true, NULL, err, sizeof(err))) ==
        NULL) {
        snprintf(errstr, size, "cache updater: %s", err);
        goto fail;
    }
    int rc = pthread_create(&j->th, NULL, updater_main, j);
    if (rc != 0) {
        snprintf(errstr, size, "cache updater: no thread: %s",
                 strerror(rc));
        goto fail;
    }
    j->started = true;
    return j;
fail:
    rg_cache_job_destroy(j);
    return NULL;
}

void rg_cache_job_commit(rg_cache_job_t *j, int64_t version,
                         const int64_t *videos, size_t n,
                         const rg_row_t *staged, size_t m)
{
    pthread_mutex_lock(&j->mu);
    j->epochs++;
    bool fits = j->rows + n + m <= j->max_rows;
    pthread_mutex_unlock(&j->mu);
    struct epoch *e = NULL;
    if (fits) {
        /* one block: header, then the rows (8-aligned), then the videos */
        e = malloc(sizeof(*e) + m * sizeof(rg_row_t) + n * sizeof(int64_t));
        if (e != NULL) {
            e->next = NULL;
            e->version = version;
            e->n = n;
            e->m = m;
            e->rows = (rg_row_t *)(e + 1);
            e->videos = (int64_t *)(e->rows + m);
            if (m > 0)
                memcpy(e->rows, staged, m * sizeof(rg_row_t));
            if (n > 0)
                memcpy(e->videos, videos, n * sizeof(int64_t));
        }
    }
    pthread_mutex_lock(&j->mu);
    if (e != NULL && j->rows + n + m <= j->max_rows) {
        if (j->tail)
            j->tail->next = e;
        else
            j->head = e;
        j->tail = e;
        j->rows += n + m;
        j->queued++;
        e = NULL;
    } else {
        j->dropped++;
        j->dropped_rows += n + m;
        j->resync_wanted = true; /* the updater resyncs before what follows */
    }
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->mu);
    free(e);
}

void rg_cache_job_resync(rg_cache_job_t *j)
{
    pthread_mutex_lock(&j->mu);
    j->resync_wanted = true; /* the same path as a dropped epoch */
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->mu);
}

int rg_cache_job_flush(rg_cache_job_t *j, int timeout_ms)
{
    struct timespec at;
    deadline_in(&at, timeout_ms);
    pthread_mutex_lock(&j->mu);
    int rc = 0;
    while ((j->head != NULL || j->busy || j->resync_wanted) && rc == 0)
        rc = pthread_cond_timedwait(&j->idle, &j->mu, &at);
    bool done = j->head == NULL && !j->busy && !j->resync_wanted;
    pthread_mutex_unlock(&j->mu);
    return done ? 0 : RG_ETIMEDOUT;
}

void rg_cache_job_stats(rg_cache_job_t *j, rg_cache_job_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&j->mu);
    out->epochs = j->epochs;
    out->dropped = j->dropped;
    out->dropped_rows = j->dropped_rows;
    out->queued = j->queued;
    pthread_mutex_unlock(&j->mu);
    rg_cache_redis_stats(j->cache, &out->redis);
}

void rg_cache_job_destroy(rg_cache_job_t *j)
{
    if (j == NULL)
        return;
    if (j->started) {
        rg_cache_job_flush(j, 5000);
        pthread_mutex_lock(&j->mu);
        j->stopping = true;
        pthread_cond_signal(&j->wake);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->th, NULL);
    }
    while (j->head != NULL) { /* left after the 5 s */
        struct epoch *e = j->head;
        j->head = e->next;
        free(e);
    }
    rg_serve_db_close(j->db);
    rg_cache_redis_destroy(j->cache);
    pthread_cond_destroy(&j->wake);
    pthread_cond_destroy(&j->idle);
    pthread_mutex_destroy(&j->mu);
    free(j);
}
