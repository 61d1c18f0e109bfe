/*
 * peers_pipeline.c - in-memory source -> one worker counting per key:
 * railgun's engine (dispatcher -> SPSC ring -> pinned worker, bursts of
 * 256 from the source) against the same work over a mutex + condvar
 * blocking queue (one event per put/take, as a plain blocking queue does).
 * Both carry the same 64-byte rg_event_t and the same counting loop.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "park.h"
#include "peers.h"
#include "railgun/railgun.h"

#define SRC_BURST 256
#define MQ_CAP 4096

struct rgb_pipe {
    int impl;
    const uint64_t *keys;
    size_t nkeys, pos;
    uint64_t keyspace;
    uint32_t *counts;      /* written by the one worker */
    uint64_t pushed;
    int cpu_worker;
    cpu_set_t saved;
    rg_engine_t *e;
    rg_dispatcher_t *d;
    rgb_scraper *scraper;  /* RGB_PIPE_RAILGUN_SCRAPED_10HZ */
    /* mutex queue */
    pthread_t consumer;
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    rg_event_t *mq;
    uint64_t mq_head, mq_tail;
    bool closing;
    alignas(64) _Atomic uint64_t done;
};

static int unpack_unused(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque, (void)m, (void)ev;
    return RG_EDECODE;
}

static inline void count(struct rgb_pipe *p, const rg_event_t *ev)
{
    p->counts[ev->key]++;
}

static void count_event(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)ctx;
    count(opaque, ev);
}

static void *mq_consume(void *arg)
{
    struct rgb_pipe *p = arg;
    rgb_pin(p->cpu_worker);
    uint64_t done = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->mq_head == p->mq_tail && !p->closing)
            pthread_cond_wait(&p->not_empty, &p->mu);
        if (p->mq_head == p->mq_tail) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        rg_event_t ev = p->mq[p->mq_head % MQ_CAP];
        bool was_full = p->mq_tail - p->mq_head == MQ_CAP;
        p->mq_head++;
        if (was_full)
            pthread_cond_signal(&p->not_full);
        pthread_mutex_unlock(&p->mu);
        count(p, &ev);
        /* relaxed: progress counter; the source spins on it and then
         * joins or uses the counts only after stop/join */
        atomic_store_explicit(&p->done, ++done, memory_order_relaxed);
    }
    return NULL;
}

rgb_pipe *rgb_pipe_open(int impl, const uint64_t *keys, size_t nkeys,
                        uint64_t keyspace, int cpu_src, int cpu_worker)
{
    struct rgb_pipe *p = aligned_alloc(64, (sizeof(*p) + 63) & ~63ul);
    memset(p, 0, sizeof(*p));
    bool scraped = impl == RGB_PIPE_RAILGUN_SCRAPED_10HZ;
    bool limited = impl == RGB_PIPE_RAILGUN_FLOW;
    bool hot = impl == RGB_PIPE_RAILGUN_HOTKEY;
    if (scraped || limited || hot)
        impl = RGB_PIPE_RAILGUN; /* the same pipeline, plus a scraper or
                                    a token bucket, or a hot-key sketch */
    p->impl = impl;
    p->keys = keys;
    p->nkeys = nkeys;
    p->keyspace = keyspace;
    p->cpu_worker = cpu_worker;
    p->counts = calloc(keyspace, sizeof(uint32_t));
    pthread_getaffinity_np(pthread_self(), sizeof(p->saved), &p->saved);
    rgb_pin(cpu_src);
    if (impl == RGB_PIPE_RAILGUN) {
        char err[256], cpu[16];
        rg_conf_t *conf = rg_conf_new();
        snprintf(cpu, sizeof(cpu), "%d", cpu_worker < 0 ? 0 : cpu_worker);
        rg_processor_t proc = {.unpack = unpack_unused,
                               .do_event = count_event, .opaque = p};
        /* a refused setting must stop the run: a worker left on the
         * source's CPU once made every figure here a one-CPU figure */
        if (rg_conf_set(conf, "workers", "1", err, sizeof(err)) != 0 ||
            rg_conf_set(conf, "workers.cpus", cpu, err, sizeof(err)) != 0 ||
            (limited && rg_conf_set(conf, "flow.rate.events.per.s",
                                    "10000000000", err, sizeof(err)) != 0) ||
            (hot && rg_conf_set(conf, "hotkey.enable", "true", err,
                                sizeof(err)) != 0) ||
            (p->e = rg_engine_new(conf, &proc, err, sizeof(err))) == NULL) {
            fprintf(stderr, "railgun-bench: %s\n", err);
            abort();
        }
        if (rg_engine_start(p->e, err, sizeof(err)) != 0) {
            fprintf(stderr, "railgun-bench: %s\n", err);
            abort();
        }
        p->d = rg_engine_dispatcher(p->e, 0);
        if (scraped)
            p->scraper = rgb_scraper_start(p->e, 10);
    } else {
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->not_empty, NULL);
        pthread_cond_init(&p->not_full, NULL);
        p->mq = malloc(sizeof(rg_event_t) * MQ_CAP);
        pthread_create(&p->consumer, NULL, mq_consume, p);
    }
    return p;
}

static inline void next_event(struct rgb_pipe *p, rg_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->key = p->keys[p->pos];
    ev->offset = (int64_t)p->pushed;
    p->pushed++;
    if (++p->pos == p->nkeys)
        p->pos = 0;
}

static uint64_t done_count(struct rgb_pipe *p)
{
    if (p->impl == RGB_PIPE_RAILGUN)
        return rg_engine_worker_processed(p->e, 0);
    return atomic_load_explicit(&p->done, memory_order_relaxed);
}

void rgb_pipe_run(rgb_pipe *p, uint64_t n)
{
    uint64_t target = p->pushed + n;
    if (p->impl == RGB_PIPE_RAILGUN) {
        rg_event_t evs[SRC_BURST];
        while (p->pushed < target) {
            size_t k = 0;
            for (; k < SRC_BURST && p->pushed < target; k++)
                next_event(p, &evs[k]);
            rg_dispatcher_push_events(p->d, evs, k);
        }
    } else {
        while (p->pushed < target) {
            rg_event_t ev;
            next_event(p, &ev);
            pthread_mutex_lock(&p->mu);
            while (p->mq_tail - p->mq_head == MQ_CAP)
                pthread_cond_wait(&p->not_full, &p->mu);
            bool was_empty = p->mq_tail == p->mq_head;
            p->mq[p->mq_tail % MQ_CAP] = ev;
            p->mq_tail++;
            if (was_empty)
                pthread_cond_signal(&p->not_empty);
            pthread_mutex_unlock(&p->mu);
        }
    }
    while (done_count(p) < target)
        rg__cpu_relax();
}

int rgb_pipe_close(rgb_pipe *p)
{
    if (p->impl == RGB_PIPE_RAILGUN) {
        rgb_scraper_stop(p->scraper);
        rg_engine_destroy(p->e);
    } else {
        pthread_mutex_lock(&p->mu);
        p->closing = true;
        pthread_cond_signal(&p->not_empty);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->consumer, NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->not_empty);
        pthread_cond_destroy(&p->not_full);
        free(p->mq);
    }
    pthread_setaffinity_np(pthread_self(), sizeof(p->saved), &p->saved);
    /* the truth, from the stream: full passes plus the partial last one
     * (computed here so the timed source does no bookkeeping) */
    uint64_t *truth = calloc(p->keyspace, sizeof(uint64_t));
    uint64_t passes = p->pushed / p->nkeys, rest = p->pushed % p->nkeys;
    for (size_t i = 0; i < p->nkeys; i++)
        truth[p->keys[i]] += passes + (i < rest ? 1 : 0);
    int bad = 0;
    for (uint64_t k = 0; k < p->keyspace; k++)
        bad |= p->counts[k] != truth[k];
    free(truth);
    free(p->counts);
    free(p);
    return bad ? -1 : 0;
}
