/*
 * test_engine.c - rg_engine: every accepted event processed exactly once,
 * per-key order per dispatcher (single and batch mode), backpressure with a
 * bounded number of events in flight, stop while busy, idle parking, bad
 * processors, undecodable messages, external payload release.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/railgun.h"
#include "zipf.h"

#define NKEYS 50000

/* One event per (dispatcher, seq): partition = dispatcher, offset = seq.
 * seen[] and last[] are written only by the key's owning worker. */
struct order {
    unsigned dispatchers;
    uint64_t per_dispatcher;
    _Atomic uint8_t *seen;        /* [dispatchers * per_dispatcher] */
    int64_t *last;                /* [dispatchers * NKEYS], -1 = none */
    _Atomic uint64_t dup, out_of_order, wrong_worker, bad_batch;
    rg_engine_t *e;
    uint32_t batch_max;
    _Atomic uint64_t pre_do_calls, batch_calls;
    /* pre_do hands its batch to batch_do: per worker */
    rg_event_t *pending[64];
    size_t pending_n[64];
};

static int unpack_key(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    if (m->key_len != 8)
        return RG_EDECODE;
    memcpy(&ev->key, m->key, 8);
    return 0;
}

static void check_one(struct order *o, unsigned worker, const rg_event_t *ev)
{
    size_t idx = (size_t)ev->partition * o->per_dispatcher +
                 (size_t)ev->offset;
    /* relaxed: the counters are read after rg_engine_stop() joined */
    if (atomic_fetch_add_explicit(&o->seen[idx], 1, memory_order_relaxed))
        atomic_fetch_add_explicit(&o->dup, 1, memory_order_relaxed);
    if (rg_engine_worker_of(o->e, ev->key) != worker)
        atomic_fetch_add_explicit(&o->wrong_worker, 1, memory_order_relaxed);
    int64_t *last = &o->last[(size_t)ev->source * NKEYS + ev->key];
    if (ev->offset <= *last)
        atomic_fetch_add_explicit(&o->out_of_order, 1, memory_order_relaxed);
    *last = ev->offset;
}

static void do_check(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    check_one(opaque, rg_ctx_worker(ctx), ev);
}

static void pre_do_check(void *opaque, rg_ctx_t *ctx, rg_event_t *evs,
                         size_t n)
{
    struct order *o = opaque;
    o->pending[rg_ctx_worker(ctx)] = evs;
    o->pending_n[rg_ctx_worker(ctx)] = n;
    atomic_fetch_add_explicit(&o->pre_do_calls, 1, memory_order_relaxed);
}

static void batch_check(void *opaque, rg_ctx_t *ctx, rg_event_t *evs,
                        size_t n)
{
    struct order *o = opaque;
    unsigned worker = rg_ctx_worker(ctx);
    if (n == 0 || n > o->batch_max || o->pending[worker] != evs ||
        o->pending_n[worker] != n)
        atomic_fetch_add_explicit(&o->bad_batch, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->batch_calls, 1, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        check_one(o, worker, &evs[i]);
}

struct pusher {
    struct order *o;
    unsigned idx;
    uint64_t *keys;
};

static void *push_main(void *arg)
{
    struct pusher *p = arg;
    rg_dispatcher_t *d = rg_engine_dispatcher(p->o->e, p->idx);
    rg_rng_t rng;
    rg_rng_seed(&rng, 1000 + p->idx);
    enum { B = 100 };
    rg_msg_t msgs[B];
    uint64_t n = p->o->per_dispatcher;
    for (uint64_t i = 0; i < n; i++)
        p->keys[i] = rg_rng_below(&rng, NKEYS);
    for (uint64_t i = 0; i < n;) {
        /* mix single pushes and bursts of varying size */
        size_t want = 1 + (size_t)rg_rng_below(&rng, B);
        if (want > n - i)
            want = (size_t)(n - i);
        for (size_t k = 0; k < want; k++)
            msgs[k] = (rg_msg_t){.partition = (int32_t)p->idx,
                                 .offset = (int64_t)(i + k),
                                 .key = &p->keys[i + k], .key_len = 8};
        if (want == 1)
            cr_assert_eq(rg_dispatcher_push(d, &msgs[0]), 0);
        else
            cr_assert_eq(rg_dispatcher_push_burst(d, msgs, want), want);
        i += want;
    }
    return NULL;
}

static void run_order(bool batch)
{
    struct order o = {.dispatchers = 2, .per_dispatcher = 1000000};
    size_t total = o.dispatchers * o.per_dispatcher;
    o.seen = calloc(total, 1);
    o.last = malloc(sizeof(int64_t) * o.dispatchers * NKEYS);
    for (size_t i = 0; i < o.dispatchers * NKEYS; i++)
        o.last[i] = -1;
    rg_conf_t *conf = rg_conf_new();
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "workers", "4", err, sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(conf, "dispatchers", "2", err, sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(conf, "ring.capacity", "256", err,
                             sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(conf, "batch.max.events", "16", err,
                             sizeof(err)), 0);
    o.batch_max = 16;
    rg_processor_t proc = {.unpack = unpack_key, .opaque = &o};
    if (batch) {
        proc.pre_do = pre_do_check;
        proc.batch_do = batch_check;
    } else {
        proc.do_event = do_check;
    }
    o.e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(o.e, "%s", err);
    cr_assert_eq(rg_engine_start(o.e, err, sizeof(err)), 0, "%s", err);
    struct pusher ps[2];
    pthread_t th[2];
    for (unsigned d = 0; d < 2; d++) {
        ps[d] = (struct pusher){&o, d,
                                malloc(sizeof(uint64_t) * o.per_dispatcher)};
        pthread_create(&th[d], NULL, push_main, &ps[d]);
    }
    for (unsigned d = 0; d < 2; d++)
        pthread_join(th[d], NULL);
    cr_assert_eq(rg_engine_stop(o.e), 0);

    size_t missing = 0;
    for (size_t i = 0; i < total; i++)
        missing += o.seen[i] == 0;
    rg_engine_stats_t st;
    rg_engine_stats(o.e, &st);
    cr_assert_eq(missing, 0, "%zu events never processed", missing);
    cr_assert_eq(o.dup, 0, "%llu events processed twice",
                 (unsigned long long)o.dup);
    cr_assert_eq(o.out_of_order, 0, "%llu events out of per-key order",
                 (unsigned long long)o.out_of_order);
    cr_assert_eq(o.wrong_worker, 0, "%llu events on a non-owner worker",
                 (unsigned long long)o.wrong_worker);
    cr_assert_eq(st.accepted, total);
    cr_assert_eq(st.processed, total);
    uint64_t sum = 0;
    for (unsigned w = 0; w < 4; w++) {
        uint64_t n = rg_engine_worker_processed(o.e, w);
        cr_assert_gt(n, 0, "worker %u got no event", w);
        sum += n;
    }
    cr_assert_eq(sum, total);
    if (batch) {
        cr_assert_eq(o.bad_batch, 0, "batch_do saw a bad batch");
        cr_assert_eq(o.pre_do_calls, o.batch_calls);
        cr_assert_lt(o.batch_calls, total, "batches of one only");
    }
    rg_engine_destroy(o.e);
    for (unsigned d = 0; d < 2; d++)
        free(ps[d].keys);
    free((void *)o.seen);
    free(o.last);
}

Test(engine, single_mode_exactly_once_and_per_key_order, .timeout = 300)
{
    run_order(false);
}

Test(engine, batch_mode_exactly_once_and_per_key_order, .timeout = 300)
{
    run_order(true);
}

/* ---- backpressure ---------------------------------------------------- */

struct slow {
    rg_engine_t *e;
    _Atomic uint64_t done;
    _Atomic uint64_t max_in_flight;
    _Atomic uint64_t pushed;   /* returned from push */
};

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void slow_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)ctx;
    (void)ev;
    struct slow *s = opaque;
    sleep_us(200);
    atomic_fetch_add(&s->done, 1);
}

static int unpack_any(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    ev->key = (uint64_t)m->offset;
    return 0;
}

Test(engine, backpressure_blocks_dispatcher_and_bounds_in_flight,
     .timeout = 120)
{
    struct slow s = {0};
    rg_conf_t *conf = rg_conf_new();
    char err[256];
    rg_conf_set(conf, "workers", "1", err, sizeof(err));
    rg_conf_set(conf, "ring.capacity", "8", err, sizeof(err));
    rg_conf_set(conf, "batch.max.events", "4", err, sizeof(err));
    rg_conf_set(conf, "dispatcher.wait.spins", "10", err, sizeof(err));
    rg_conf_set(conf, "dispatcher.wait.yields", "2", err, sizeof(err));
    rg_processor_t proc = {.unpack = unpack_any, .do_event = slow_do,
                           .opaque = &s};
    s.e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(s.e, "%s", err);
    cr_assert_eq(rg_engine_start(s.e, err, sizeof(err)), 0);
    rg_dispatcher_t *d = rg_engine_dispatcher(s.e, 0);
    const uint64_t n = 1000;
    for (uint64_t i = 0; i < n; i++) {
        rg_msg_t m = {.offset = (int64_t)i};
        cr_assert_eq(rg_dispatcher_push(d, &m), 0);
        /* accepted but not done: at most the ring plus the batch the
         * worker holds */
        uint64_t in_flight = (i + 1) - atomic_load(&s.done);
        if (in_flight > s.max_in_flight)
            s.max_in_flight = in_flight;
    }
    rg_engine_stop(s.e);
    rg_engine_stats_t st;
    rg_engine_stats(s.e, &st);
    cr_assert_eq(atomic_load(&s.done), n, "events were dropped");
    cr_assert_leq(s.max_in_flight, 8 + 4, "in flight %llu > ring + batch",
                  (unsigned long long)s.max_in_flight);
    cr_assert_gt(st.dispatcher_waits, 0, "dispatcher never waited");
    cr_assert_gt(st.dispatcher_parks, 0, "dispatcher never parked");
    rg_engine_destroy(s.e);
}

/* ---- stop while busy ------------------------------------------------- */

struct busy {
    rg_engine_t *e;
    unsigned idx;
    uint64_t accepted;        /* pushes that returned 0 */
    uint64_t rejected_at;     /* first offset refused with RG_ESTOPPED */
    _Atomic uint8_t *seen;    /* [2][1 << 22] */
};

#define BUSY_MAX (1u << 22)

static void busy_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)ctx;
    struct busy *b = opaque;
    atomic_fetch_add(&b->seen[(size_t)ev->partition * BUSY_MAX +
                              (size_t)ev->offset], 1);
    for (volatile int i = 0; i < 50; i++)
        ;
}

static void *busy_push(void *arg)
{
    struct busy *b = arg;
    rg_dispatcher_t *d = rg_engine_dispatcher(b->e, b->idx);
    for (uint64_t i = 0; i < BUSY_MAX; i++) {
        rg_msg_t m = {.partition = (int32_t)b->idx, .offset = (int64_t)i};
        int rc = rg_dispatcher_push(d, &m);
        if (rc == RG_ESTOPPED) {
            b->rejected_at = i;
            return NULL;
        }
        cr_assert_eq(rc, 0);
        b->accepted++;
    }
    return NULL;
}

Test(engine, stop_while_busy_processes_every_accepted_event, .timeout = 120)
{
    struct busy b[2];
    _Atomic uint8_t *seen = calloc(2 * (size_t)BUSY_MAX, 1);
    rg_conf_t *conf = rg_conf_new();
    char err[256];
    rg_conf_set(conf, "workers", "2", err, sizeof(err));
    rg_conf_set(conf, "dispatchers", "2", err, sizeof(err));
    rg_conf_set(conf, "ring.capacity", "1024", err, sizeof(err));
    rg_processor_t proc = {.unpack = unpack_any, .do_event = busy_do,
                           .opaque = &b[0]};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0);
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++) {
        b[i] = (struct busy){.e = e, .idx = i, .seen = seen,
                             .rejected_at = UINT64_MAX};
        pthread_create(&th[i], NULL, busy_push, &b[i]);
    }
    sleep_us(100 * 1000);
    cr_assert_eq(rg_engine_stop(e), 0);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(rg_engine_stop(e), 0, "second stop");
    rg_msg_t m = {0};
    cr_assert_eq(rg_dispatcher_push(rg_engine_dispatcher(e, 0), &m),
                 RG_ESTOPPED);
    cr_assert_eq(rg_dispatcher_push_burst(rg_engine_dispatcher(e, 1), &m, 1),
                 0);
    for (unsigned i = 0; i < 2; i++) {
        cr_assert_lt(b[i].rejected_at, BUSY_MAX, "stop came too late");
        cr_assert_eq(b[i].accepted, b[i].rejected_at);
        for (uint64_t k = 0; k < BUSY_MAX; k++) {
            uint8_t c = seen[(size_t)i * BUSY_MAX + k];
            uint8_t want = k < b[i].accepted ? 1 : 0;
            if (c != want)
                cr_assert_fail("dispatcher %u offset %llu processed %u "
                               "times, want %u", i, (unsigned long long)k,
                               c, want);
        }
    }
    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    cr_assert_eq(st.processed, b[0].accepted + b[1].accepted);
    rg_engine_destroy(e);
    rg_engine_destroy(e = NULL);
    free((void *)seen);
}

/* ---- idle, lifecycle, bad input --------------------------------------- */

static _Atomic uint64_t idle_done;

static void idle_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
    atomic_fetch_add(&idle_done, 1);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

Test(engine, idle_workers_park_and_wake_on_push, .timeout = 60)
{
    rg_conf_t *conf = rg_conf_new();
    char err[256];
    rg_conf_set(conf, "workers", "2", err, sizeof(err));
    rg_processor_t proc = {.unpack = unpack_any, .do_event = idle_do};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0);
    sleep_us(200 * 1000);
    rg_engine_stats_t st;
    /* idle: the workers must be asleep, not spinning */
    double c0 = cpu_seconds();
    sleep_us(500 * 1000);
    double used = cpu_seconds() - c0;
    cr_assert_lt(used, 0.05, "idle engine used %.3f s of CPU in 0.5 s",
                 used);
    /* a push wakes the owning worker */
    for (int i = 0; i < 100; i++) {
        rg_msg_t m = {.offset = i};
        cr_assert_eq(rg_dispatcher_push(rg_engine_dispatcher(e, 0), &m), 0);
    }
    for (int i = 0; i < 2000 && atomic_load(&idle_done) < 100; i++)
        sleep_us(1000);
    cr_assert_eq(atomic_load(&idle_done), 100, "parked worker never woke");
    rg_engine_stats(e, &st);
    cr_assert_geq(st.worker_parks, 1);
    rg_engine_destroy(e);
}

/* busy_ns grows while a processor works (a sleep counts: the worker is
 * not idle) and stands still while the worker has nothing to do; the
 * rings' fill is read from another thread. */
static void ms_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)ctx, (void)ev;
    sleep_us(1000);
    atomic_fetch_add((_Atomic uint64_t *)opaque, 1);
}

Test(engine, worker_stats_count_busy_time_and_ring_fill, .timeout = 60)
{
    static _Atomic uint64_t done;
    rg_conf_t *conf = rg_conf_new();
    char err[256];
    rg_conf_set(conf, "workers", "1", err, sizeof(err));
    rg_conf_set(conf, "ring.capacity", "1024", err, sizeof(err));
    rg_processor_t proc = {.unpack = unpack_any, .do_event = ms_do,
                           .opaque = &done};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    rg_worker_stats_t ws;
    cr_assert_eq(rg_engine_worker_stats(e, 1, &ws), RG_EINVAL);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    sleep_us(300 * 1000);
    cr_assert_eq(rg_engine_worker_stats(e, 0, &ws), 0);
    cr_assert_lt(ws.busy_ns, 100000000u, "idle worker busy %.3f s",
                 (double)ws.busy_ns / 1e9);
    cr_assert_eq(ws.ring_capacity, 1024u);
    uint64_t idle_busy = ws.busy_ns;
    /* 400 events of 1 ms each: at least 0.4 s busy, the ring filled */
    for (int i = 0; i < 400; i++) {
        rg_msg_t m = {.offset = i};
        cr_assert_eq(rg_dispatcher_push(rg_engine_dispatcher(e, 0), &m), 0);
    }
    /* read at once: the worker takes one event a millisecond, so events
     * still wait unless this thread was off the CPU for ~0.3 s */
    cr_assert_eq(rg_engine_worker_stats(e, 0, &ws), 0);
    cr_assert_gt(ws.ring_used, 0u, "%" PRIu64 " events in the ring",
                 ws.ring_used);
    cr_assert_leq(ws.ring_used, 400u);
    for (int i = 0; i < 5000 && atomic_load(&done) < 400; i++)
        sleep_us(1000);
    cr_assert_eq(atomic_load(&done), 400u);
    sleep_us(20 * 1000);
    cr_assert_eq(rg_engine_worker_stats(e, 0, &ws), 0);
    uint64_t worked = ws.busy_ns - idle_busy;
    cr_assert_geq(worked, 400000000u, "busy %.3f s for 400 x 1 ms",
                  (double)worked / 1e9);
    cr_assert_eq(ws.processed, 400u);
    cr_assert_eq(ws.ring_used, 0u);
    /* idle again: busy stands still */
    sleep_us(300 * 1000);
    rg_worker_stats_t later;
    cr_assert_eq(rg_engine_worker_stats(e, 0, &later), 0);
    cr_assert_lt(later.busy_ns - ws.busy_ns, 50000000u,
                 "busy grew %.3f s while idle",
                 (double)(later.busy_ns - ws.busy_ns) / 1e9);
    rg_engine_destroy(e);
}

static _Atomic int ran_on = -1;

static void cpu_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
    atomic_store(&ran_on, sched_getcpu());
}

/* A thread pinned to one CPU creates an engine whose worker is listed on
 * another: the list is checked against the online CPUs, not against the
 * creator's affinity, and the worker runs where it was listed. (The
 * pipeline benchmark pins its source before creating its engine; its
 * worker once ended up on the source's CPU.) */
Test(engine, workers_run_on_their_cpu_whatever_the_creator_is_pinned_to,
     .timeout = 60)
{
    cpu_set_t saved, one;
    cr_assert_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
    int first = -1, other = -1;
    for (int c = 0; c < CPU_SETSIZE && other < 0; c++)
        if (CPU_ISSET(c, &saved)) {
            if (first < 0)
                first = c;
            else
                other = c;
        }
    if (other < 0)
        other = first; /* one CPU: the worker still goes where listed */
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
    rg_conf_t *conf = rg_conf_new();
    char err[256] = "", cpu[16];
    snprintf(cpu, sizeof(cpu), "%d", other);
    rg_conf_set(conf, "workers", "1", err, sizeof(err));
    int rc = rg_conf_set(conf, "workers.cpus", cpu, err, sizeof(err));
    rg_processor_t proc = {.unpack = unpack_any, .do_event = cpu_do};
    rg_engine_t *e = rc == 0 ? rg_engine_new(conf, &proc, err, sizeof(err))
                             : NULL;
    int started = e != NULL ? rg_engine_start(e, err, sizeof(err)) : -1;
    sched_setaffinity(0, sizeof(saved), &saved);
    cr_assert_eq(rc, 0, "workers.cpus=%s refused: %s", cpu, err);
    cr_assert_eq(started, 0, "%s", err);
    rg_msg_t m = {.offset = 0};
    cr_assert_eq(rg_dispatcher_push(rg_engine_dispatcher(e, 0), &m), 0);
    for (int i = 0; i < 2000 && atomic_load(&ran_on) < 0; i++)
        sleep_us(1000);
    cr_assert_eq(atomic_load(&ran_on), other,
                 "worker listed on CPU %d ran on CPU %d (creator on %d)",
                 other, atomic_load(&ran_on), first);
    rg_engine_destroy(e);
}

Test(engine, rejects_bad_processors_and_combinations)
{
    char err[256] = "";
    rg_conf_t *conf = rg_conf_new();
    rg_processor_t none = {0};
    cr_assert_null(rg_engine_new(conf, &none, err, sizeof(err)));
    cr_assert(strstr(err, "unpack") != NULL, "%s", err);
    rg_processor_t both = {.unpack = unpack_any, .do_event = idle_do,
                           .batch_do = batch_check};
    cr_assert_null(rg_engine_new(conf, &both, err, sizeof(err)));
    cr_assert(strstr(err, "exactly one") != NULL, "%s", err);
    rg_processor_t pre_only = {.unpack = unpack_any, .do_event = idle_do,
                               .pre_do = pre_do_check};
    cr_assert_null(rg_engine_new(conf, &pre_only, err, sizeof(err)));
    rg_processor_t ok = {.unpack = unpack_any, .do_event = idle_do};
    rg_conf_set(conf, "ring.capacity", "8", err, sizeof(err));
    rg_conf_set(conf, "batch.max.events", "16", err, sizeof(err));
    cr_assert_null(rg_engine_new(conf, &ok, err, sizeof(err)));
    cr_assert(strstr(err, "batch.max.events") != NULL, "%s", err);
    cr_assert_null(rg_engine_new(NULL, &ok, err, sizeof(err)));
    /* conf still ours after every failure */
    rg_conf_set(conf, "batch.max.events", "8", err, sizeof(err));
    rg_engine_t *e = rg_engine_new(conf, &ok, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    cr_assert_eq(rg_conf_get_int(rg_engine_conf(e), "batch.max.events"), 8,
                 "the engine owns the conf it was given");
    rg_msg_t m = {0};
    cr_assert_eq(rg_dispatcher_push(rg_engine_dispatcher(e, 0), &m),
                 RG_ESTATE, "push before start");
    cr_assert_null(rg_engine_dispatcher(e, 1));
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), RG_ESTATE);
    rg_engine_destroy(e);
    rg_engine_destroy(NULL);
}

static _Atomic uint64_t released, decoded_ok;

static void release_cb(void *ptr, void *opaque)
{
    (void)opaque;
    free(ptr);
    atomic_fetch_add(&released, 1);
}

/* even offsets carry an external payload, multiples of 5 are undecodable */
static int unpack_mixed(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    ev->key = (uint64_t)m->offset;
    if (m->offset % 2 == 0) {
        ev->flags |= RG_EVENT_F_EXTERNAL;
        ev->data.ext.ptr = malloc(16);
        ev->data.ext.release = release_cb;
        ev->len = 16;
    }
    return m->offset % 5 == 0 ? RG_EDECODE : 0;
}

static void count_ok(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
    atomic_fetch_add(&decoded_ok, 1);
}

Test(engine, undecodable_counted_and_payloads_released_once)
{
    char err[256];
    rg_processor_t proc = {.unpack = unpack_mixed, .do_event = count_ok};
    rg_engine_t *e = rg_engine_new(rg_conf_new(), &proc, err, sizeof(err));
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0);
    rg_msg_t msgs[100];
    for (int i = 0; i < 100; i++)
        msgs[i] = (rg_msg_t){.offset = i};
    cr_assert_eq(rg_dispatcher_push_burst(rg_engine_dispatcher(e, 0), msgs,
                                          50), 50);
    for (int i = 50; i < 100; i++) {
        int rc = rg_dispatcher_push(rg_engine_dispatcher(e, 0), &msgs[i]);
        cr_assert_eq(rc, i % 5 == 0 ? RG_EDECODE : 0, "offset %d", i);
    }
    rg_engine_stop(e);
    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    cr_assert_eq(st.undecodable, 20);
    cr_assert_eq(st.accepted, 80);
    cr_assert_eq(atomic_load(&decoded_ok), 80);
    cr_assert_eq(atomic_load(&released), 50, "each payload released once");
    rg_engine_destroy(e);
}

/* push_burst_for: a worker that is held makes the push give up after its
 * timeout with a prefix consumed and the rest never unpacked; ready()
 * says so until the worker drains; pushing the rest then loses nothing
 * and doubles nothing. */
static _Atomic int hold_worker;
static _Atomic uint64_t unpacked, held_done;

static int unpack_counted(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    /* relaxed: counters read after the dispatcher returns */
    atomic_fetch_add_explicit(&unpacked, 1, memory_order_relaxed);
    ev->key = (uint64_t)m->offset;
    return 0;
}

static void held_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
    /* acquire: pairs with the test's release store of 0 */
    while (atomic_load_explicit(&hold_worker, memory_order_acquire))
        sleep_us(1000);
    atomic_fetch_add_explicit(&held_done, 1, memory_order_relaxed);
}

Test(engine, push_burst_for_times_out_without_unpacking_the_rest,
     .timeout = 60)
{
    char err[256];
    rg_conf_t *conf = rg_conf_new();
    cr_assert_eq(rg_conf_set(conf, "workers", "1", err, sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(conf, "ring.capacity", "64", err,
                             sizeof(err)), 0);
    rg_processor_t proc = {.unpack = unpack_counted, .do_event = held_do};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    enum { N = 1000 };
    static rg_msg_t msgs[N];
    for (int i = 0; i < N; i++)
        msgs[i] = (rg_msg_t){0, i, "k", 1, "v", 1, 0, 0};
    atomic_store_explicit(&hold_worker, 1, memory_order_release);
    size_t got = N;
    cr_assert_eq(rg_dispatcher_push_burst_for(d, msgs, N, 50, &got),
                 RG_ETIMEDOUT);
    /* the ring (64) and the burst the worker took out of it (64), at
     * most */
    cr_assert_leq(got, 128u, "consumed %zu with the worker held", got);
    cr_assert_gt(got, 0u);
    cr_assert_eq(atomic_load_explicit(&unpacked, memory_order_relaxed), got,
                 "unpack ran for messages not consumed");
    cr_assert_not(rg_dispatcher_ready(d), "ready with a full ring");
    size_t none = 1;
    cr_assert_eq(rg_dispatcher_push_burst_for(d, msgs, 1, -1, &none),
                 RG_EINVAL);
    cr_assert_eq(none, 0u);
    atomic_store_explicit(&hold_worker, 0, memory_order_release);
    size_t done = 0;
    for (size_t i = got; i < N; i += done)
        cr_assert_eq(rg_dispatcher_push_burst_for(d, msgs + i, N - i, 10000,
                                                  &done), 0);
    rg_engine_stop(e);
    cr_assert_eq(atomic_load_explicit(&unpacked, memory_order_relaxed),
                 (uint64_t)N);
    cr_assert_eq(atomic_load_explicit(&held_done, memory_order_relaxed),
                 (uint64_t)N, "each event once");
    rg_engine_destroy(e); /* and conf, which it took */
}

/* ---- issue 11: the context, default routing, bad input ---------------- */

struct routed {
    rg_engine_t *e;
    _Atomic uint64_t wrong, seen, bad_ctx;
};

/* leaves ev->key alone: the engine routes by the message key's hash */
static int unpack_keyless(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    memcpy(ev->data.bytes, m->key, m->key_len);
    ev->len = (uint32_t)m->key_len;
    return 0;
}

static void check_route(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    struct routed *r = opaque;
    uint64_t want = rg_hash_bytes(ev->data.bytes, ev->len);
    /* relaxed: counters read after stop */
    if (ev->key != want ||
        rg_engine_worker_of(r->e, want) != rg_ctx_worker(ctx))
        atomic_fetch_add_explicit(&r->wrong, 1, memory_order_relaxed);
    if (rg_ctx_engine(ctx) != r->e || rg_ctx_delta(ctx) != NULL)
        atomic_fetch_add_explicit(&r->bad_ctx, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->seen, 1, memory_order_relaxed);
}

Test(engine, an_unset_routing_key_routes_by_the_message_key)
{
    char err[256];
    rg_conf_t *conf = rg_conf_new();
    cr_assert_eq(rg_conf_set(conf, "workers", "2", err, sizeof(err)), 0);
    static struct routed r;
    rg_processor_t proc = {.unpack = unpack_keyless,
                           .do_event = check_route, .opaque = &r};
    r.e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(r.e, "%s", err);
    cr_assert_eq(rg_engine_start(r.e, err, sizeof(err)), 0, "%s", err);
    rg_dispatcher_t *d = rg_engine_dispatcher(r.e, 0);
    unsigned per_worker[2] = {0, 0};
    for (int i = 0; i < 2000; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "user-%d", i % 97);
        rg_msg_t m = {.offset = i, .key = key, .key_len = (size_t)n};
        cr_assert_eq(rg_dispatcher_push(d, &m), 0);
        per_worker[rg_engine_worker_of(r.e, rg_hash_bytes(key, (size_t)n))]++;
    }
    rg_engine_stop(r.e);
    cr_assert_eq(atomic_load(&r.seen), 2000);
    cr_assert_eq(atomic_load(&r.wrong), 0, "events not routed by their "
                 "message key");
    cr_assert_eq(atomic_load(&r.bad_ctx), 0);
    cr_assert(per_worker[0] > 0 && per_worker[1] > 0,
              "97 keys spread over both workers (%u, %u)", per_worker[0],
              per_worker[1]);
    rg_engine_destroy(r.e);
}

static int unpack_too_long(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    ev->key = 1;
    ev->len = m->offset == 3 ? RG_EVENT_INLINE_MAX + 1 : 4;
    return 0;
}

static _Atomic uint64_t bad_input_done;

static void count_bad_input(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
    atomic_fetch_add_explicit(&bad_input_done, 1, memory_order_relaxed);
}

struct warn_log {
    int n;
    char line[512];
};

static void warn_cb(void *opaque, rg_log_level_t level, const char *who,
                    const char *line)
{
    (void)who;
    struct warn_log *l = opaque;
    if (level != RG_LOG_WARN)
        return; /* e.g. the idle policy's choice */
    l->n++;
    snprintf(l->line, sizeof(l->line), "%s", line);
}

/* What the embedding trial found, each now a clear error. */
Test(engine, bad_calls_are_clear_errors)
{
    char err[256] = "";
    static struct warn_log log;
    rg_conf_t *conf = rg_conf_new();
    rg_conf_set_log_cb(conf, warn_cb, &log);
    cr_assert_eq(rg_conf_set(conf, "workers", "1", err, sizeof(err)), 0);
    rg_processor_t proc = {.unpack = unpack_too_long,
                           .do_event = count_bad_input};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    rg_msg_t m = {.offset = 0};
    /* a push before start is refused, not absorbed */
    cr_assert_eq(rg_dispatcher_push(d, &m), RG_ESTATE);
    size_t got = 7;
    cr_assert_eq(rg_dispatcher_push_burst_for(d, &m, 1, 10, &got),
                 RG_ESTATE);
    cr_assert_eq(got, 0u);
    cr_assert_eq(rg_dispatcher_flush(d, 10), RG_ESTATE);
    /* NULL handles and messages */
    cr_assert_eq(rg_dispatcher_push(NULL, &m), RG_EINVAL);
    cr_assert_eq(rg_dispatcher_push(d, NULL), RG_EINVAL);
    cr_assert_eq(rg_dispatcher_push_burst(NULL, &m, 1), 0u);
    cr_assert_eq(rg_dispatcher_push_burst_for(d, NULL, 1, 10, &got),
                 RG_EINVAL);
    cr_assert_eq(rg_dispatcher_reset(NULL, 0, 0), RG_EINVAL);
    cr_assert_null(rg_engine_dispatcher(e, 1));
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), RG_ESTATE);
    cr_assert(strstr(err, "already started"), "%s", err);
    /* an event unpack made too long for inline, without the external
     * flag: rejected with RG_EINVAL, counted, logged once */
    for (int64_t o = 0; o < 6; o++) {
        m.offset = o;
        cr_assert_eq(rg_dispatcher_push(d, &m), o == 3 ? RG_EINVAL : 0,
                     "offset %lld", (long long)o);
    }
    rg_engine_stop(e);
    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    cr_assert_eq(st.rejected, 1);
    cr_assert_eq(st.accepted, 5);
    cr_assert_eq(atomic_load(&bad_input_done), 5);
    cr_assert_eq(log.n, 1, "logged once");
    cr_assert(strstr(log.line, "RG_EVENT_F_EXTERNAL"), "%s", log.line);
    /* a stopped engine says stopped, not "already started" */
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), RG_ESTATE);
    cr_assert(strstr(err, "stopped"), "%s", err);
    cr_assert_eq(rg_dispatcher_push(d, &m), RG_ESTOPPED);
    rg_engine_destroy(e);
    rg_engine_destroy(NULL);
}
