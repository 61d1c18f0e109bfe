/*
 * pipeline.c - assembles and tears down the likes pipeline (see
 * pipeline.h).
 *
 * Build order: sink, job (reads through the sink), engine (takes a copy
 * of the conf, then the sink), epoch hook, Kafka source (installs the
 * engine's commit callback, so before start). Teardown runs the other
 * way, with one exception the components' contracts impose: the job goes
 * before the engine, because rg_engine_destroy() closes the sink that the
 * job's readers belong to (likes_job.h); the source goes after
 * rg_engine_stop(), because the engine's commit callback points into it
 * until then (railgun/kafka.h).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "pipeline.h"
#include "railgun/sinks.h"

/* The sink as the Kafka source sees it, when opts.on_claim is set: the
 * calls the source makes go through to the sink, and a claim that
 * succeeded is told to on_claim. */
struct rg_claim_tap {
    rg_sink_t sink;
    void (*on_claim)(void *opaque);
    void *opaque;
};

static int tap_begin(void *self, uint64_t epoch, char *e, size_t n)
{
    struct rg_claim_tap *t = self;
    return t->sink.begin(t->sink.self, epoch, e, n);
}

static int tap_write_offsets(void *self, const rg_offset_t *o, size_t k,
                             char *e, size_t n)
{
    struct rg_claim_tap *t = self;
    return t->sink.write_offsets(t->sink.self, o, k, e, n);
}

static int tap_commit(void *self, char *e, size_t n)
{
    struct rg_claim_tap *t = self;
    return t->sink.commit(t->sink.self, e, n);
}

static void tap_rollback(void *self)
{
    struct rg_claim_tap *t = self;
    t->sink.rollback(t->sink.self);
}

static int tap_claim(void *self, const int32_t *parts, size_t k,
                     int64_t *next, char *e, size_t n)
{
    struct rg_claim_tap *t = self;
    int rc = t->sink.claim(t->sink.self, parts, k, next, e, n);
    if (rc == 0)
        t->on_claim(t->opaque);
    return rc;
}

int rg_pipeline_open(rg_pipeline_t *pl, const rg_conf_t *conf,
                     const rg_pipeline_opts_t *opts, char *errstr,
                     size_t size)
{
    rg_sink_t sink;
    bool sink_open = false;   /* ours to close until the engine takes it */
    rg_likes_job_t *job = NULL;
    rg_conf_t *ec = NULL;     /* the engine's copy, until it takes it */
    rg_engine_t *e = NULL;
    rg_kafka_source_t *src = NULL;
    struct rg_claim_tap *tap = NULL;
    /* the job keeps state per thread: workers and hot lanes */
    unsigned workers = (unsigned)(rg_conf_get_int(conf, "workers") +
                                  rg_conf_get_int(conf, "hotkey.lanes"));
    int rc;

    /* a mistyped Kafka setting is refused before a database is opened */
    if (opts->kafka && (rc = rg_kafka_source_check(conf, errstr, size)) != 0)
        return rc;
    if ((rc = rg_likes_open_sink(conf, opts->sink_flags, &sink, errstr,
                                 size)) != 0)
        goto fail;
    sink_open = true;
    rc = RG_ENOMEM;
    if ((job = rg_likes_job_new(workers, &sink, 0, 0)) == NULL ||
        (ec = rg_conf_dup(conf)) == NULL) {
        snprintf(errstr, size, "out of memory");
        goto fail;
    }
    rg_processor_t proc;
    rg_likes_job_processor(job, &proc);
    if ((e = rg_engine_new(ec, &proc, errstr, size)) == NULL) {
        rc = RG_EINVAL; /* see pipeline.h, Errors */
        goto fail;
    }
    ec = NULL;
    /* the engine's conf lives until the engine goes, after the job */
    rg_likes_job_set_log(job, rg_engine_conf(e));
    if ((rc = rg_engine_set_sink(e, &sink, errstr, size)) != 0)
        goto fail;
    sink_open = false;
    if (opts->epoch_hook != NULL &&
        (rc = rg_engine_set_epoch_hook(e, opts->epoch_hook,
                                       opts->epoch_hook_opaque)) != 0) {
        snprintf(errstr, size, "epoch hook: %s", rg_strerror(rc));
        goto fail;
    }
    if (opts->commit_hook != NULL &&
        (rc = rg_engine_set_commit_hook(e, opts->commit_hook,
                                        opts->commit_hook_opaque)) != 0) {
        snprintf(errstr, size, "commit hook: %s", rg_strerror(rc));
        goto fail;
    }
    rg_sink_t src_sink = sink;
    if (opts->kafka && opts->on_claim != NULL && sink.claim != NULL) {
        if ((tap = malloc(sizeof(*tap))) == NULL) {
            snprintf(errstr, size, "out of memory");
            rc = RG_ENOMEM;
            goto fail;
        }
        *tap = (struct rg_claim_tap){sink, opts->on_claim,
                                     opts->on_claim_opaque};
        src_sink = (rg_sink_t){.begin = tap_begin,
                               .write_offsets = tap_write_offsets,
                               .commit = tap_commit,
                               .rollback = tap_rollback,
                               .claim = tap_claim, .self = tap};
    }
    if (opts->kafka &&
        (src = rg_kafka_source_new(e, 0, conf, &src_sink, errstr, size)) ==
            NULL) {
        rc = RG_EINVAL; /* see pipeline.h, Errors */
        goto fail;
    }
    *pl = (rg_pipeline_t){.engine = e, .job = job, .source = src,
                          .sink = sink, .workers = workers, .tap = tap};
    return 0;

fail:
    /* nothing started: the job's readers are not open yet, and the
     * engine, when there is one, has no source pointing into it */
    rg_likes_job_destroy(job);
    rg_engine_destroy(e); /* closes the sink once it took it */
    rg_conf_destroy(ec);
    free(tap);
    if (sink_open)
        sink.close(sink.self);
    return rc;
}

int rg_pipeline_claim(rg_pipeline_t *pl, unsigned n, int64_t *next,
                      char *errstr, size_t size)
{
    if (pl->engine == NULL || pl->started) {
        snprintf(errstr, size, "claim: before the pipeline starts only");
        return RG_ESTATE;
    }
    for (unsigned p = 0; p < n; p++)
        next[p] = 0;
    if (pl->sink.claim == NULL || n == 0)
        return 0;
    int32_t *parts = malloc(sizeof(int32_t) * n);
    if (parts == NULL) {
        snprintf(errstr, size, "out of memory");
        return RG_ENOMEM;
    }
    for (unsigned p = 0; p < n; p++)
        parts[p] = (int32_t)p;
    int rc = pl->sink.claim(pl->sink.self, parts, n, next, errstr, size);
    /* the delayed retries of these partitions go back to their workers
     * (the Kafka source does that itself, at its own assign) */
    if (rc == 0 && pl->source == NULL) {
        int64_t rq = rg_engine_requeue(pl->engine, parts, n, errstr, size);
        if (rq < 0)
            rc = (int)rq;
        else
            pl->requeued += (uint64_t)rq;
    }
    free(parts);
    for (unsigned p = 0; rc == 0 && p < n; p++)
        if (next[p] < 0)
            next[p] = 0; /* nothing stored: from the start */
    return rc;
}

int rg_pipeline_start(rg_pipeline_t *pl, char *errstr, size_t size)
{
    int rc = rg_engine_start(pl->engine, errstr, size);
    if (rc == 0)
        pl->started = true;
    return rc;
}

static void *source_main(void *arg)
{
    rg_pipeline_t *pl = arg;
    rg_kafka_source_run(pl->source);
    /* relaxed: a flag the main thread polls; what the loop wrote (its
     * error) is read only after pthread_join() in rg_pipeline_stop() */
    atomic_store_explicit(&pl->source_done, 1, memory_order_relaxed);
    return NULL;
}

int rg_pipeline_spawn_source(rg_pipeline_t *pl, char *errstr, size_t size)
{
    if (pl->source == NULL || !pl->started || pl->stopped ||
        pl->source_spawned) {
        snprintf(errstr, size, "source: %s", pl->source == NULL
                 ? "this pipeline has none"
                 : "not started, stopped, or running already");
        return RG_ESTATE;
    }
    int err = pthread_create(&pl->source_thread, NULL, source_main, pl);
    if (err != 0) {
        snprintf(errstr, size, "cannot start the source thread: %s",
                 strerror(err));
        return RG_ESYS;
    }
    pl->source_spawned = true;
    return 0;
}

bool rg_pipeline_source_done(rg_pipeline_t *pl)
{
    /* relaxed: see source_main() */
    return atomic_load_explicit(&pl->source_done, memory_order_relaxed);
}

void rg_pipeline_stop(rg_pipeline_t *pl)
{
    if (pl->engine == NULL || pl->stopped)
        return;
    pl->stopped = true;
    /* one shutdown.timeout.ms for the whole stop: the source's last flush
     * and the engine's */
    rg_engine_shutdown_begin(pl->engine);
    if (pl->source != NULL) {
        rg_kafka_source_stop(pl->source);
        if (pl->source_spawned)
            pthread_join(pl->source_thread, NULL);
        /* leaves the group: the revoke flushes and commits, so before
         * the engine stops */
        rg_kafka_source_close(pl->source);
    }
    rg_engine_stop(pl->engine); /* the last epoch is stored here */
}

void rg_pipeline_close(rg_pipeline_t *pl)
{
    if (pl->engine == NULL)
        return;
    rg_pipeline_stop(pl);
    rg_kafka_source_destroy(pl->source);
    rg_likes_job_destroy(pl->job); /* before the sink its readers use */
    rg_engine_destroy(pl->engine); /* closes the sink */
    free(pl->tap);
    *pl = (rg_pipeline_t){0};
}
