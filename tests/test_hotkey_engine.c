/*
 * test_hotkey_engine.c - hot-key detection wired into the engine
 * (hotkey.*, rg_engine_hot_keys()): a key taking half of two dispatchers'
 * events is reported hot with its share and since when, merged over the
 * dispatchers, on every push path; it cools when its traffic stops; no
 * cold key is reported; detection off reports nothing; bad settings are
 * refused with a reason naming the property. Every event is still
 * processed once (detection moves nothing).
 *
 * The pushers run until stopped and the test polls the stats until what
 * it waits for holds (up to 30 s), so a slow machine delays the
 * judgements and lengthens the test, it does not change what is judged.
 * Also: a key hot on one of two dispatchers (one change, its share of
 * both windows), and an idle dispatcher in epoch mode judged by the
 * flusher's takeover (its key cools with no push at all).
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/railgun.h"
#include "railgun/sinks.h"

#define HOT_KEY 7u

static _Atomic uint64_t done_events;
static uint64_t next_offset[2]; /* per dispatcher's partition, across runs
                                   of one engine (each pusher its own) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the routing key is the message key's 8 bytes */
static int unpack(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    if (m->key_len != sizeof(uint64_t))
        return RG_EDECODE;
    memcpy(&ev->key, m->key, sizeof(uint64_t));
    return 0;
}

static void do_one(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
    /* relaxed: a counter read after rg_engine_stop() joined the workers */
    atomic_fetch_add_explicit(&done_events, 1, memory_order_relaxed);
}

static rg_engine_t *engine(const char *const *xs)
{
    char err[256];
    rg_conf_t *conf = rg_conf_new();
    cr_assert_not_null(conf);
    cr_assert_eq(rg_conf_set(conf, "workers", "2", err, sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(conf, "dispatchers", "2", err, sizeof(err)), 0);
    for (int i = 0; xs[i] != NULL; i += 2)
        cr_assert_eq(rg_conf_set(conf, xs[i], xs[i + 1], err, sizeof(err)),
                     0, "%s", err);
    rg_processor_t proc = {.unpack = unpack, .do_event = do_one};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    atomic_store_explicit(&done_events, 0, memory_order_relaxed);
    next_offset[0] = next_offset[1] = 0;
    return e;
}

/* a window of 200 ms: slices of 50 ms; no anti-flap delay */
static const char *const detect[] = {
    "hotkey.enable", "true", "hotkey.window.ms", "200", "hotkey.share",
    "0.2", "hotkey.cool.share", "0.1", "hotkey.min.events", "100",
    "hotkey.cool.ms", "0", NULL};

/* Pushers run until stopped; the hot key's share (parts per million) of
 * each one's events can change while they run. */
struct pusher {
    rg_engine_t *e;
    unsigned idx;
    int how;                  /* 0: push_burst, 1: push, 2: push_events */
    _Atomic uint32_t hot_ppm;
    _Atomic bool stop;
    uint64_t pushed;          /* read after the join */
    pthread_t th;
};

static void *push_main(void *arg)
{
    struct pusher *p = arg;
    rg_dispatcher_t *d = rg_engine_dispatcher(p->e, p->idx);
    enum { BURST = 100 };
    uint64_t keys[BURST];
    rg_msg_t m[BURST];
    rg_event_t evs[BURST];
    uint64_t rng = 0x9e3779b97f4a7c15ull * (p->idx + 1),
             off = next_offset[p->idx];
    /* relaxed: a flag and a setting; the join orders the counters */
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        uint32_t ppm = atomic_load_explicit(&p->hot_ppm,
                                            memory_order_relaxed);
        for (int i = 0; i < BURST; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            /* cold keys: 10000 of them, none near the thresholds */
            keys[i] = rng % 1000000 < ppm ? HOT_KEY
                                          : 1000 + (rng >> 20) % 10000;
            m[i] = (rg_msg_t){.partition = (int32_t)p->idx,
                              .offset = (int64_t)(off + (uint64_t)i),
                              .key = &keys[i], .key_len = sizeof(uint64_t)};
            evs[i] = (rg_event_t){.key = keys[i],
                                  .partition = (int32_t)p->idx,
                                  .offset = (int64_t)(off + (uint64_t)i)};
        }
        if (p->how == 1) {
            for (int i = 0; i < BURST; i++)
                cr_assert_eq(rg_dispatcher_push(d, &m[i]), 0);
        } else if (p->how == 2) {
            cr_assert_eq(rg_dispatcher_push_events(d, evs, BURST), BURST);
        } else {
            cr_assert_eq(rg_dispatcher_push_burst(d, m, BURST), BURST);
        }
        off += BURST;
        p->pushed += BURST;
        struct timespec ts = {0, 200 * 1000}; /* at most 0.5M events/s */
        nanosleep(&ts, NULL);
    }
    next_offset[p->idx] = off; /* joined before the next run reads it */
    return NULL;
}

static void start(struct pusher *p, rg_engine_t *e, unsigned idx, int how,
                  double hot)
{
    memset(p, 0, sizeof(*p));
    p->e = e;
    p->idx = idx;
    p->how = how;
    atomic_store_explicit(&p->hot_ppm, (uint32_t)(hot * 1e6),
                          memory_order_relaxed);
    cr_assert_eq(pthread_create(&p->th, NULL, push_main, p), 0);
}

static uint64_t finish(struct pusher *p)
{
    /* relaxed: the join orders the rest */
    atomic_store_explicit(&p->stop, true, memory_order_relaxed);
    pthread_join(p->th, NULL);
    return p->pushed;
}

/* What rg_engine_hot_keys() says, polled every 20 ms until want() holds
 * or `seconds` passed (a loaded machine delays the judgements, never
 * changes them); the last reading stays in *st and keys. */
typedef bool want_fn(const rg_hotkey_stats_t *st, const rg_hot_key_t *keys,
                     size_t n);

static size_t wait_for(rg_engine_t *e, want_fn *want, double seconds,
                       rg_hotkey_stats_t *st, rg_hot_key_t *keys)
{
    double end = now_s() + seconds;
    for (;;) {
        size_t n = rg_engine_hot_keys(e, st, keys, 8);
        if (want(st, keys, n) || now_s() > end)
            return n;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static bool hot_on_both(const rg_hotkey_stats_t *st, const rg_hot_key_t *k,
                        size_t n)
{
    return n == 1 && k[0].key == HOT_KEY && st->turned_hot >= 2 &&
           k[0].hot_ms >= 300;
}

static bool hot_once(const rg_hotkey_stats_t *st, const rg_hot_key_t *k,
                     size_t n)
{
    return n == 1 && k[0].key == HOT_KEY && st->turned_hot >= 1;
}

/* Hot on one dispatcher, its share of both dispatchers' windows: the
 * other dispatcher's window may be judged a tick later (a loaded
 * machine), so the merged share is waited for, not read once; a share
 * of its own dispatcher only (0.5) never satisfies it. */
static bool hot_once_merged(const rg_hotkey_stats_t *st,
                            const rg_hot_key_t *k, size_t n)
{
    return hot_once(st, k, n) && k[0].share > 0.05 && k[0].share < 0.45;
}

static bool cooled_on_both(const rg_hotkey_stats_t *st,
                           const rg_hot_key_t *k, size_t n)
{
    (void)k;
    return n == 0 && st->turned_cold >= 2;
}

static bool cooled(const rg_hotkey_stats_t *st, const rg_hot_key_t *k,
                   size_t n)
{
    (void)k;
    return n == 0 && st->turned_cold >= 1;
}

static bool never(const rg_hotkey_stats_t *st, const rg_hot_key_t *k,
                  size_t n)
{
    (void)st, (void)k, (void)n;
    return false;
}

static void hot_key_reported(int how)
{
    rg_engine_t *e = engine(detect);
    /* static: a failed assertion ends the test while the pushers still
     * run, and they must not write into a stack frame that is gone */
    static struct pusher p[2];
    for (unsigned i = 0; i < 2; i++)
        start(&p[i], e, i, how, 0.5);
    rg_hotkey_stats_t st;
    rg_hot_key_t keys[8];
    size_t n = wait_for(e, hot_on_both, 30, &st, keys);
    cr_assert(st.enabled);
    cr_assert_eq(n, 1, "hot keys reported: %zu (nhot %u)", n, st.nhot);
    cr_assert_eq(st.nhot, 1);
    cr_assert_eq(keys[0].key, HOT_KEY, "reported key %llu",
                 (unsigned long long)keys[0].key);
    cr_assert(keys[0].share > 0.4 && keys[0].share < 0.6, "share %.3f",
              keys[0].share);
    cr_assert(keys[0].events > 0 && keys[0].events <= st.window_events);
    /* both dispatchers saw it turn hot, and it stayed hot */
    cr_assert_geq(st.turned_hot, 2, "turned hot %llu times",
                  (unsigned long long)st.turned_hot);
    cr_assert_geq(keys[0].hot_ms, 300, "hot for %llu ms",
                  (unsigned long long)keys[0].hot_ms);
    cr_assert_lt(st.age_ms, 5000, "last judged %llu ms ago",
                 (unsigned long long)st.age_ms);
    /* no keys asked for: the count is still whole */
    cr_assert_eq(rg_engine_hot_keys(e, &st, NULL, 0), 0);
    cr_assert_eq(st.nhot, 1);

    /* the hot key's traffic stops: it cools on both dispatchers while
     * the cold traffic goes on */
    for (unsigned i = 0; i < 2; i++)
        atomic_store_explicit(&p[i].hot_ppm, 0, memory_order_relaxed);
    n = wait_for(e, cooled_on_both, 30, &st, keys);
    cr_assert_eq(n, 0, "still hot: key %llu share %.3f",
                 n ? (unsigned long long)keys[0].key : 0ull,
                 n ? keys[0].share : 0.0);
    cr_assert_geq(st.turned_cold, 2);
    cr_assert_eq(st.turned_hot, st.turned_cold);

    uint64_t pushed = finish(&p[0]) + finish(&p[1]);
    cr_assert_eq(rg_engine_stop(e), 0);
    /* relaxed: the workers are joined */
    cr_assert_eq(atomic_load_explicit(&done_events, memory_order_relaxed),
                 pushed, "detection moves nothing: every event once");
    rg_engine_destroy(e);
}

Test(hotkey_engine, hot_key_reported_and_cools_push_burst)
{
    hot_key_reported(0);
}

Test(hotkey_engine, hot_key_reported_and_cools_push)
{
    hot_key_reported(1);
}

Test(hotkey_engine, hot_key_reported_and_cools_push_events)
{
    hot_key_reported(2);
}

/* Hot on one dispatcher only: one change, and its share is of both
 * dispatchers' window events (half of its own dispatcher's 50%). */
Test(hotkey_engine, hot_on_one_dispatcher_merges_over_both)
{
    rg_engine_t *e = engine(detect);
    /* static: a failed assertion ends the test while the pushers still
     * run, and they must not write into a stack frame that is gone */
    static struct pusher p[2];
    start(&p[0], e, 0, 0, 0.5);
    start(&p[1], e, 1, 0, 0.0);
    rg_hotkey_stats_t st;
    rg_hot_key_t keys[8];
    size_t n = wait_for(e, hot_once_merged, 30, &st, keys);
    cr_assert_eq(n, 1, "hot keys: %zu", n);
    cr_assert_eq(keys[0].key, HOT_KEY);
    cr_assert_eq(st.turned_hot, 1, "turned hot %llu times",
                 (unsigned long long)st.turned_hot);
    cr_assert(keys[0].share > 0.05 && keys[0].share < 0.45,
              "merged share %.3f (50%% of one of two pushers)",
              keys[0].share);
    finish(&p[0]);
    finish(&p[1]);
    cr_assert_eq(rg_engine_stop(e), 0);
    rg_engine_destroy(e);
}

/* In epoch mode an idle dispatcher is judged by the flusher's takeover:
 * a key hot when its traffic stopped cools with no push at all. */
Test(hotkey_engine, idle_dispatcher_cools_in_epoch_mode)
{
    static const char *const xs[] = {
        "hotkey.enable", "true", "hotkey.window.ms", "200", "hotkey.share",
        "0.2", "hotkey.cool.share", "0.1", "hotkey.min.events", "100",
        "hotkey.cool.ms", "0", "flush.interval.ms", "20", NULL};
    char err[256];
    rg_conf_t *conf = rg_conf_new();
    cr_assert_eq(rg_conf_set(conf, "dispatchers", "2", err, sizeof(err)), 0);
    for (int i = 0; xs[i] != NULL; i += 2)
        cr_assert_eq(rg_conf_set(conf, xs[i], xs[i + 1], err, sizeof(err)),
                     0, "%s", err);
    rg_processor_t proc = {.unpack = unpack, .do_event = do_one};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    rg_sink_t sink;
    cr_assert_eq(rg_sink_null_open(&sink), 0);
    cr_assert_eq(rg_engine_set_sink(e, &sink, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    next_offset[0] = next_offset[1] = 0;
    struct pusher p;
    start(&p, e, 0, 0, 0.5);
    rg_hotkey_stats_t st;
    rg_hot_key_t keys[8];
    size_t n = wait_for(e, hot_once, 30, &st, keys);
    cr_assert_eq(n, 1, "never hot: %zu", n);
    finish(&p); /* nothing is pushed from here on */
    n = wait_for(e, cooled, 30, &st, keys);
    cr_assert_eq(n, 0, "an idle dispatcher's key stayed hot");
    cr_assert_eq(st.turned_cold, 1);
    cr_assert_eq(rg_engine_stop(e), 0);
    rg_engine_destroy(e);
}

Test(hotkey_engine, uniform_stream_has_no_hot_key)
{
    rg_engine_t *e = engine(detect);
    rg_hotkey_stats_t st;
    rg_hot_key_t keys[8];
    /* before any judgement: as old as the engine, nothing hot */
    cr_assert_eq(rg_engine_hot_keys(e, &st, keys, 8), 0);
    cr_assert(st.enabled);
    cr_assert_lt(st.age_ms, 5000, "age %llu ms before the first judgement",
                 (unsigned long long)st.age_ms);
    /* static: a failed assertion ends the test while the pushers still
     * run, and they must not write into a stack frame that is gone */
    static struct pusher p[2];
    for (unsigned i = 0; i < 2; i++)
        start(&p[i], e, i, 0, 0.0);
    /* a second of pushing: about 20 judgements per dispatcher */
    size_t n = wait_for(e, never, 1.0, &st, keys);
    cr_assert_eq(n, 0);
    cr_assert_eq(st.turned_hot, 0);
    cr_assert_gt(st.window_events, 0, "the window counted events");
    finish(&p[0]);
    finish(&p[1]);
    cr_assert_eq(rg_engine_stop(e), 0);
    rg_engine_destroy(e);
}

Test(hotkey_engine, off_by_default_reports_nothing)
{
    static const char *const none[] = {NULL};
    rg_engine_t *e = engine(none);
    struct pusher p;
    start(&p, e, 0, 0, 0.5);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    rg_hotkey_stats_t st;
    st.enabled = true;
    rg_hot_key_t keys[8];
    cr_assert_eq(rg_engine_hot_keys(e, &st, keys, 8), 0);
    cr_assert(!st.enabled);
    cr_assert_eq(st.window_events, 0);
    finish(&p);
    cr_assert_eq(rg_engine_stop(e), 0);
    rg_engine_destroy(e);
}

static void refused(const char *name, const char *value, const char *why)
{
    char err[256] = "";
    rg_conf_t *conf = rg_conf_new();
    cr_assert_eq(rg_conf_set(conf, "hotkey.enable", "true", err,
                             sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(conf, name, value, err, sizeof(err)), 0, "%s",
                 err);
    rg_processor_t proc = {.unpack = unpack, .do_event = do_one};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_null(e, "%s=%s accepted", name, value);
    cr_assert(strstr(err, why) != NULL, "reason: %s", err);
    rg_conf_destroy(conf);
}

Test(hotkey_engine, bad_settings_refused_with_a_reason)
{
    refused("hotkey.cool.share", "0.06", "hotkey.cool.share");
    refused("hotkey.share", "0", "hotkey.share");
    refused("hotkey.max.keys", "2048", "hotkey.max.keys");
    char err[256] = "";
    rg_conf_t *conf = rg_conf_new();
    cr_assert_neq(rg_conf_set(conf, "hotkey.share", "1.5", err, sizeof(err)),
                  0);
    cr_assert(strstr(err, "hotkey.share") != NULL, "%s", err);
    cr_assert_neq(rg_conf_set(conf, "hotkey.capacity", "1000", err,
                              sizeof(err)), 0);
    cr_assert(strstr(err, "hotkey.capacity") != NULL, "%s", err);
    rg_conf_destroy(conf);
}
