/*
 * engine.c - dispatchers, per-(dispatcher, worker) SPSC rings and pinned
 * worker threads (see railgun/engine.h for the model and the contract).
 *
 * Invariants
 *   - ring[d][w] has exactly one producer (the thread holding dispatcher d)
 *     and one consumer (worker w).
 *   - An event is "accepted" once its push returned; from then on exactly
 *     one worker processes it exactly once, even across rg_engine_stop().
 *   - Stop protocol: state := STOPPING, heavy fence, wait until no
 *     dispatcher is inside a push (in_call == 0), then drain := 1 and wake
 *     the workers; a worker exits only when drain is set and all its rings
 *     are empty. A push that starts after STOPPING fails with RG_ESTOPPED.
 *   - Hot paths take no lock, make no syscall and allocate nothing; the
 *     only syscalls are futex waits/wakes and membarrier when a thread
 *     parks (see park.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/engine.h"
#include "railgun/error.h"
#include "railgun/hash.h"
#include "railgun/ring.h"
#include "conf_props.h"
#include "park.h"

RG_RING_PROTOTYPE(ev, rg_event_t)

/* Events staged per worker by a burst push before they go to the ring. */
#define STAGE_MAX 32

enum { ST_NEW = 0, ST_RUNNING, ST_STOPPING, ST_STOPPED };

/* A parking spot on its own cache line. */
struct spot {
    alignas(RG_CACHELINE) struct rg__park park;
};

struct worker {
    rg_engine_t *e;
    unsigned idx;
    int cpu;
    pthread_t thread;
    bool joinable;
    rg_ring_t **in;          /* [dispatchers]: ring[d][idx] */
    rg_event_t *buf;         /* batch.max.events */
    uint64_t processed_local;
    uint64_t parks_local;
    /* stats, read by other threads; single writer (this worker) */
    alignas(RG_CACHELINE) _Atomic uint64_t processed;
    _Atomic uint64_t parks;
    /* where this worker sleeps when idle */
    struct spot wake;
};

struct rg_dispatcher_s {
    alignas(RG_CACHELINE) rg_engine_t *e;
    unsigned idx;
    _Atomic uint32_t in_call;   /* 1 while inside a push call */
    rg_ring_t **out;            /* [workers]: ring[idx][w] */
    struct spot *space;         /* [workers]: where this d waits for w */
    uint32_t *nstage;           /* [workers] */
    rg_event_t *stage;          /* [workers][STAGE_MAX] */
    /* stats; single writer (the ingest thread holding this handle) */
    uint64_t accepted_local, undecodable_local, waits_local, parks_local;
    _Atomic uint64_t accepted, undecodable, waits, parks;
};

struct rg_engine_s {
    rg_conf_t *conf;
    rg_processor_t proc;
    unsigned nworkers, ndispatchers;
    uint32_t batch_max;
    uint32_t worker_spins, worker_yields;
    uint32_t disp_spins, disp_yields;
    /* ST_*: read by every push (acquire) */
    alignas(RG_CACHELINE) _Atomic int state;
    _Atomic int drain;
    pthread_mutex_t stop_lock;
    struct worker *workers;
    rg_dispatcher_t *dispatchers;
    rg_ring_t **rings;          /* [dispatchers * workers] */
    struct spot *spaces;        /* [dispatchers * workers] */
};

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...)
{
    if (errstr == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

static inline unsigned route(const rg_engine_t *e, uint64_t key)
{
    return rg_hash_reduce(rg_hash64(key), e->nworkers);
}

unsigned rg_engine_worker_of(const rg_engine_t *e, uint64_t key)
{
    return route(e, key);
}

/* The spot where dispatcher d waits for space in ring (d, w). */
static inline struct spot *space_of(rg_engine_t *e, unsigned d, unsigned w)
{
    return &e->spaces[(size_t)d * e->nworkers + w];
}

/* ------------------------------------------------------------------ */
/* workers                                                              */

static void release_payloads(rg_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((evs[i].flags & RG_EVENT_F_EXTERNAL) &&
            evs[i].data.ext.release != NULL)
            evs[i].data.ext.release(evs[i].data.ext.ptr,
                                    evs[i].data.ext.opaque);
}

static void process(struct worker *w, rg_event_t *evs, size_t n)
{
    const rg_processor_t *p = &w->e->proc;
    if (p->batch_do != NULL) {
        if (p->pre_do != NULL)
            p->pre_do(p->opaque, w->idx, evs, n);
        p->batch_do(p->opaque, w->idx, evs, n);
    } else {
        for (size_t i = 0; i < n; i++)
            p->do_event(p->opaque, w->idx, &evs[i]);
    }
    release_payloads(evs, n);
    w->processed_local += n;
    /* relaxed: a statistic; single writer, readers only need a value
     * that was true at some point */
    atomic_store_explicit(&w->processed, w->processed_local,
                          memory_order_relaxed);
}

/* One pass over every input ring; returns how many events it processed. */
static size_t poll_once(struct worker *w)
{
    size_t got = 0;
    for (unsigned d = 0; d < w->e->ndispatchers; d++) {
        uint32_t n = rg_ring_pop_burst_spsc_ev(w->in[d], w->buf,
                                               w->e->batch_max);
        if (n == 0)
            continue;
        /* the slots are free now: let a dispatcher waiting for space go
         * on while we process */
        rg__park_wake_if_sleeping(&space_of(w->e, d, w->idx)->park);
        process(w, w->buf, n);
        got += n;
    }
    return got;
}

static bool inputs_empty(struct worker *w)
{
    for (unsigned d = 0; d < w->e->ndispatchers; d++)
        if (!rg__ring_is_empty(w->in[d]))
            return false;
    return true;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    rg_engine_t *e = w->e;
    uint32_t idle = 0;
    for (;;) {
        if (poll_once(w) > 0) {
            idle = 0;
            continue;
        }
        /* acquire: pairs with the release store in rg_engine_stop(); every
         * push that was accepted before is visible in the rings now */
        if (atomic_load_explicit(&e->drain, memory_order_acquire)) {
            if (inputs_empty(w))
                break;
            continue;
        }
        idle++;
        if (idle <= e->worker_spins) {
            rg__cpu_relax();
        } else if (idle <= e->worker_spins + e->worker_yields) {
            sched_yield();
        } else {
            uint32_t seq = rg__park_prepare(&w->wake.park);
            if (!inputs_empty(w) ||
                atomic_load_explicit(&e->drain, memory_order_acquire)) {
                rg__park_cancel(&w->wake.park);
            } else {
                rg__park_commit(&w->wake.park, seq);
                w->parks_local++;
                /* relaxed: statistic, single writer */
                atomic_store_explicit(&w->parks, w->parks_local,
                                      memory_order_relaxed);
            }
            idle = 0;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* dispatchers                                                          */

static inline int dispatcher_enter(rg_dispatcher_t *d)
{
    /* relaxed: ordered against the state load by the fence pair below */
    atomic_store_explicit(&d->in_call, 1, memory_order_relaxed);
    /* pairs with rg__fence_heavy() in rg_engine_stop(): either stop sees
     * in_call == 1 and waits for us, or we see ST_STOPPING */
    rg__fence_light();
    /* acquire: pairs with the release store in rg_engine_start(), which
     * published the started workers */
    int st = atomic_load_explicit(&d->e->state, memory_order_acquire);
    if (st != ST_RUNNING) {
        atomic_store_explicit(&d->in_call, 0, memory_order_release);
        return st == ST_NEW ? RG_ESTATE : RG_ESTOPPED;
    }
    return 0;
}

static inline void dispatcher_exit(rg_dispatcher_t *d)
{
    /* release: our ring writes happen before stop's acquire load of
     * in_call == 0 */
    atomic_store_explicit(&d->in_call, 0, memory_order_release);
}

/* Moves all n events into worker w's ring, waiting while it is full. */
static void push_all(rg_dispatcher_t *d, unsigned w, const rg_event_t *evs,
                     uint32_t n)
{
    rg_engine_t *e = d->e;
    rg_ring_t *r = d->out[w];
    struct rg__park *wk = &e->workers[w].wake.park;
    uint32_t done = rg_ring_push_burst_spsc_ev(r, evs, n);
    uint32_t tries = 0;
    bool waited = false;
    while (done < n) {
        if (!waited) {
            waited = true;
            d->waits_local++;
        }
        /* make sure the worker is awake to drain what we already put in */
        rg__park_wake_if_sleeping(wk);
        tries++;
        if (tries <= e->disp_spins) {
            rg__cpu_relax();
        } else if (tries <= e->disp_spins + e->disp_yields) {
            sched_yield();
        } else {
            struct rg__park *sp = &d->space[w].park;
            uint32_t seq = rg__park_prepare(sp);
            if (rg__ring_has_space(r, 1)) {
                rg__park_cancel(sp);
            } else {
                rg__park_commit(sp, seq);
                d->parks_local++;
            }
            tries = 0;
        }
        done += rg_ring_push_burst_spsc_ev(r, evs + done, n - done);
    }
    rg__park_wake_if_sleeping(wk);
}

static void flush_stage(rg_dispatcher_t *d, unsigned w)
{
    uint32_t n = d->nstage[w];
    if (n == 0)
        return;
    push_all(d, w, d->stage + (size_t)w * STAGE_MAX, n);
    d->nstage[w] = 0;
}

static inline void stage_event(rg_dispatcher_t *d, const rg_event_t *ev)
{
    unsigned w = route(d->e, ev->key);
    rg_event_t *slot = d->stage + (size_t)w * STAGE_MAX + d->nstage[w];
    *slot = *ev;
    slot->source = (uint16_t)d->idx;
    if (++d->nstage[w] == STAGE_MAX)
        flush_stage(d, w);
}

static void flush_all(rg_dispatcher_t *d)
{
    for (unsigned w = 0; w < d->e->nworkers; w++)
        flush_stage(d, w);
}

static void publish_stats(rg_dispatcher_t *d)
{
    /* relaxed: statistics; single writer (this dispatcher's thread) */
    atomic_store_explicit(&d->accepted, d->accepted_local,
                          memory_order_relaxed);
    atomic_store_explicit(&d->undecodable, d->undecodable_local,
                          memory_order_relaxed);
    atomic_store_explicit(&d->waits, d->waits_local, memory_order_relaxed);
    atomic_store_explicit(&d->parks, d->parks_local, memory_order_relaxed);
}

static inline int unpack(rg_dispatcher_t *d, const rg_msg_t *msg,
                         rg_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->partition = msg->partition;
    ev->offset = msg->offset;
    int rc = d->e->proc.unpack(d->e->proc.opaque, msg, ev);
    if (rc != 0) {
        if ((ev->flags & RG_EVENT_F_EXTERNAL) && ev->data.ext.release)
            ev->data.ext.release(ev->data.ext.ptr, ev->data.ext.opaque);
        d->undecodable_local++;
        return rc < 0 ? rc : RG_EDECODE;
    }
    return 0;
}

int rg_dispatcher_push(rg_dispatcher_t *d, const rg_msg_t *msg)
{
    int rc = dispatcher_enter(d);
    if (rc != 0)
        return rc;
    rg_event_t ev;
    rc = unpack(d, msg, &ev);
    if (rc == 0) {
        ev.source = (uint16_t)d->idx;
        push_all(d, route(d->e, ev.key), &ev, 1);
        d->accepted_local++;
    }
    publish_stats(d);
    dispatcher_exit(d);
    return rc;
}

size_t rg_dispatcher_push_burst(rg_dispatcher_t *d, const rg_msg_t *msgs,
                                size_t n)
{
    if (dispatcher_enter(d) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        rg_event_t ev;
        if (unpack(d, &msgs[i], &ev) == 0) {
            stage_event(d, &ev);
            d->accepted_local++;
        }
    }
    flush_all(d);
    publish_stats(d);
    dispatcher_exit(d);
    return n;
}

size_t rg_dispatcher_push_events(rg_dispatcher_t *d, const rg_event_t *evs,
                                 size_t n)
{
    if (dispatcher_enter(d) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        stage_event(d, &evs[i]);
    flush_all(d);
    d->accepted_local += n;
    publish_stats(d);
    dispatcher_exit(d);
    return n;
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                            */

static void free_engine(rg_engine_t *e)
{
    if (e->rings != NULL)
        for (size_t i = 0; i < (size_t)e->ndispatchers * e->nworkers; i++)
            rg_ring_destroy(e->rings[i]);
    if (e->workers != NULL)
        for (unsigned w = 0; w < e->nworkers; w++) {
            free(e->workers[w].in);
            free(e->workers[w].buf);
        }
    if (e->dispatchers != NULL)
        for (unsigned d = 0; d < e->ndispatchers; d++) {
            free(e->dispatchers[d].out);
            free(e->dispatchers[d].nstage);
            free(e->dispatchers[d].stage);
        }
    free(e->rings);
    free(e->spaces);
    free(e->workers);
    free(e->dispatchers);
    pthread_mutex_destroy(&e->stop_lock);
    free(e);
}

static int assign_cpus(rg_engine_t *e, char *errstr, size_t errstr_size)
{
    int *cpus = malloc(sizeof(int) * CPU_SETSIZE);
    if (cpus == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        return RG_ENOMEM;
    }
    const char *list = rg__conf_str(e->conf, RG_P_WORKERS_CPUS);
    int n = (list[0] == '\0')
                ? rg__cpus_allowed(cpus, CPU_SETSIZE)
                : rg__cpulist_parse(list, cpus, CPU_SETSIZE, errstr,
                                    errstr_size);
    if (n > 0)
        for (unsigned w = 0; w < e->nworkers; w++)
            e->workers[w].cpu = cpus[w % (unsigned)n];
    free(cpus);
    return n > 0 ? 0 : (n < 0 ? n : RG_EINVAL);
}

rg_engine_t *rg_engine_new(rg_conf_t *conf, const rg_processor_t *proc,
                           char *errstr, size_t errstr_size)
{
    if (conf == NULL || proc == NULL) {
        seterr(errstr, errstr_size, "rg_engine_new: NULL conf or processor");
        return NULL;
    }
    if (proc->unpack == NULL) {
        seterr(errstr, errstr_size, "processor: unpack is required");
        return NULL;
    }
    if ((proc->do_event == NULL) == (proc->batch_do == NULL)) {
        seterr(errstr, errstr_size, "processor: set exactly one of do_event "
               "(single mode) and batch_do (batch mode)");
        return NULL;
    }
    if (proc->pre_do != NULL && proc->batch_do == NULL) {
        seterr(errstr, errstr_size, "processor: pre_do needs batch_do");
        return NULL;
    }
    int64_t cap = rg__conf_int(conf, RG_P_RING_CAPACITY);
    int64_t batch = rg__conf_int(conf, RG_P_BATCH_MAX_EVENTS);
    if (batch > cap) {
        seterr(errstr, errstr_size, "batch.max.events: %lld exceeds "
               "ring.capacity %lld", (long long)batch, (long long)cap);
        return NULL;
    }

    rg__fence_init();
    rg_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->stop_lock, NULL);
    e->proc = *proc;
    e->nworkers = (unsigned)rg__conf_int(conf, RG_P_WORKERS);
    e->ndispatchers = (unsigned)rg__conf_int(conf, RG_P_DISPATCHERS);
    e->batch_max = (uint32_t)batch;
    e->worker_spins = (uint32_t)rg__conf_int(conf, RG_P_WORKER_IDLE_SPINS);
    e->worker_yields = (uint32_t)rg__conf_int(conf, RG_P_WORKER_IDLE_YIELDS);
    e->disp_spins = (uint32_t)rg__conf_int(conf, RG_P_DISPATCHER_WAIT_SPINS);
    e->disp_yields =
        (uint32_t)rg__conf_int(conf, RG_P_DISPATCHER_WAIT_YIELDS);
    e->conf = conf;
    atomic_init(&e->state, ST_NEW);
    atomic_init(&e->drain, 0);

    size_t nrings = (size_t)e->ndispatchers * e->nworkers;
    e->workers = aligned_alloc(RG_CACHELINE,
                               sizeof(struct worker) * e->nworkers);
    e->dispatchers = aligned_alloc(RG_CACHELINE,
                                   sizeof(rg_dispatcher_t) * e->ndispatchers);
    e->rings = calloc(nrings, sizeof(rg_ring_t *));
    e->spaces = aligned_alloc(RG_CACHELINE, sizeof(struct spot) * nrings);
    if (!e->workers || !e->dispatchers || !e->rings || !e->spaces)
        goto nomem;
    memset(e->workers, 0, sizeof(struct worker) * e->nworkers);
    memset(e->dispatchers, 0, sizeof(rg_dispatcher_t) * e->ndispatchers);
    memset(e->spaces, 0, sizeof(struct spot) * nrings);
    for (size_t i = 0; i < nrings; i++)
        if ((e->rings[i] = rg_ring_new((uint32_t)cap,
                                       sizeof(rg_event_t))) == NULL)
            goto nomem;

    /* ring (d, w) and its space spot live at index d * workers + w */
    for (unsigned w = 0; w < e->nworkers; w++) {
        struct worker *wk = &e->workers[w];
        wk->e = e;
        wk->idx = w;
        wk->in = calloc(e->ndispatchers, sizeof(rg_ring_t *));
        wk->buf = malloc(sizeof(rg_event_t) * (size_t)batch);
        if (!wk->in || !wk->buf)
            goto nomem;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            wk->in[d] = e->rings[(size_t)d * e->nworkers + w];
    }
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        dp->e = e;
        dp->idx = d;
        dp->out = calloc(e->nworkers, sizeof(rg_ring_t *));
        dp->nstage = calloc(e->nworkers, sizeof(uint32_t));
        dp->stage = malloc(sizeof(rg_event_t) * STAGE_MAX * e->nworkers);
        if (!dp->out || !dp->nstage || !dp->stage)
            goto nomem;
        dp->space = space_of(e, d, 0);
        for (unsigned w = 0; w < e->nworkers; w++)
            dp->out[w] = e->rings[(size_t)d * e->nworkers + w];
    }
    if (assign_cpus(e, errstr, errstr_size) != 0) {
        e->conf = NULL; /* still the caller's */
        free_engine(e);
        return NULL;
    }
    return e;
nomem:
    seterr(errstr, errstr_size, "out of memory (workers=%u dispatchers=%u "
           "ring.capacity=%lld)", e->nworkers, e->ndispatchers,
           (long long)cap);
    e->conf = NULL;
    free_engine(e);
    return NULL;
}

static void join_workers(rg_engine_t *e)
{
    for (unsigned w = 0; w < e->nworkers; w++) {
        if (e->workers[w].joinable) {
            pthread_join(e->workers[w].thread, NULL);
            e->workers[w].joinable = false;
        }
    }
}

int rg_engine_start(rg_engine_t *e, char *errstr, size_t errstr_size)
{
    if (e == NULL)
        return RG_EINVAL;
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock, which we hold */
    if (atomic_load_explicit(&e->state, memory_order_relaxed) != ST_NEW) {
        pthread_mutex_unlock(&e->stop_lock);
        seterr(errstr, errstr_size, "engine already started");
        return RG_ESTATE;
    }
    for (unsigned w = 0; w < e->nworkers; w++) {
        struct worker *wk = &e->workers[w];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(wk->cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        int rc = pthread_create(&wk->thread, &attr, worker_main, wk);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            seterr(errstr, errstr_size, "worker %u on CPU %d: cannot start "
                   "thread: %s", w, wk->cpu, strerror(rc));
            /* the started workers have nothing to do: drain them out */
            atomic_store_explicit(&e->drain, 1, memory_order_release);
            for (unsigned i = 0; i < w; i++)
                rg__park_wake(&e->workers[i].wake.park);
            join_workers(e);
            atomic_store_explicit(&e->drain, 0, memory_order_relaxed);
            pthread_mutex_unlock(&e->stop_lock);
            return RG_ESYS;
        }
        wk->joinable = true;
    }
    /* release: pairs with the acquire load in dispatcher_enter() */
    atomic_store_explicit(&e->state, ST_RUNNING, memory_order_release);
    pthread_mutex_unlock(&e->stop_lock);
    return 0;
}

rg_dispatcher_t *rg_engine_dispatcher(rg_engine_t *e, unsigned idx)
{
    if (e == NULL || idx >= e->ndispatchers)
        return NULL;
    return &e->dispatchers[idx];
}

int rg_engine_stop(rg_engine_t *e)
{
    if (e == NULL)
        return RG_EINVAL;
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock, which we hold */
    int st = atomic_load_explicit(&e->state, memory_order_relaxed);
    if (st == ST_STOPPED || st == ST_NEW) {
        atomic_store_explicit(&e->state, ST_STOPPED, memory_order_relaxed);
        pthread_mutex_unlock(&e->stop_lock);
        return 0;
    }
    atomic_store_explicit(&e->state, ST_STOPPING, memory_order_relaxed);
    /* pairs with rg__fence_light() in dispatcher_enter() */
    rg__fence_heavy();
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        /* acquire: pairs with the release in dispatcher_exit(); that
         * push's events are in the rings before we set drain */
        while (atomic_load_explicit(&e->dispatchers[d].in_call,
                                    memory_order_acquire)) {
            struct timespec ts = {0, 50 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    /* release: pairs with the acquire loads of drain in worker_main() */
    atomic_store_explicit(&e->drain, 1, memory_order_release);
    for (unsigned w = 0; w < e->nworkers; w++)
        rg__park_wake(&e->workers[w].wake.park);
    join_workers(e);
    atomic_store_explicit(&e->state, ST_STOPPED, memory_order_relaxed);
    pthread_mutex_unlock(&e->stop_lock);
    return 0;
}

void rg_engine_destroy(rg_engine_t *e)
{
    if (e == NULL)
        return;
    rg_engine_stop(e);
    rg_conf_destroy(e->conf);
    free_engine(e);
}

void rg_engine_stats(rg_engine_t *e, rg_engine_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->workers = e->nworkers;
    out->dispatchers = e->ndispatchers;
    /* relaxed everywhere: counters, each a value that was true once */
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        out->accepted += atomic_load_explicit(&dp->accepted,
                                              memory_order_relaxed);
        out->undecodable += atomic_load_explicit(&dp->undecodable,
                                                 memory_order_relaxed);
        out->dispatcher_waits += atomic_load_explicit(&dp->waits,
                                                      memory_order_relaxed);
        out->dispatcher_parks += atomic_load_explicit(&dp->parks,
                                                      memory_order_relaxed);
    }
    for (unsigned w = 0; w < e->nworkers; w++) {
        out->processed += atomic_load_explicit(&e->workers[w].processed,
                                               memory_order_relaxed);
        out->worker_parks += atomic_load_explicit(&e->workers[w].parks,
                                                  memory_order_relaxed);
    }
}

uint64_t rg_engine_worker_processed(const rg_engine_t *e, unsigned w)
{
    if (e == NULL || w >= e->nworkers)
        return 0;
    /* relaxed: a counter */
    return atomic_load_explicit(&e->workers[w].processed,
                                memory_order_relaxed);
}

const rg_conf_t *rg_engine_conf(const rg_engine_t *e)
{
    return e->conf;
}
