/*
 * test_lanes.c - hot lanes (hotkey.lanes): keys moved to and from the
 * lanes at epoch barriers keep their order and are processed once.
 *
 * Two dispatchers push 2M events (1M each; half of each one's events on
 * one key, the rest over 31 others) while each pusher forces one of its
 * keys hot or back to cold every 10,000 events (rg_dispatcher_force_hot,
 * the same move as a detected one, made at once by a flush): 200 moves
 * in all. Each
 * event carries its sequence number per (key, subkey) and per key; the
 * processor checks, on whichever worker or lane it runs, that each is
 * the one after the last it saw, so an event processed on its new route
 * before the old route finished, twice, or never fails the test. The
 * bookkeeping arrays are plain memory: without invariant M (the new
 * route waits for the move's commit, ordered by the epoch's release and
 * acquire) two threads would touch them unordered, which TSan reports.
 * One event in 997 fails its first attempt (a retry): those waiting when
 * their key moves are handed to the new route and still come first.
 * And forget: a route that gets a key back has been told to forget it.
 *
 * Both ways of spreading: split (by (key, subkey), over every lane) and
 * whole keys (one lane per key). And flapping: with detection moving
 * the keys (no forcing), a key whose share swings across the threshold
 * every 60 ms moves at most once per hotkey.cool.ms (250 ms here; 42
 * moves in 1.6 s with 0), its events still in order and once.
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

enum {
    KEYS = 65,      /* key k < 64 belongs to dispatcher k % 2 */
    SHARED = 64,    /* ... and this one to both (moved by d0 only) */
    SUBS = 8,
    ROUTES = 4,     /* 2 workers + 2 lanes */
    PER_D = 1000000,
    BURST = 100,
    FORCE_EVERY = 10000,
};
#define FLAP_S 1.5

struct payload {
    uint64_t seq;   /* per (key, sub), from 1 */
    uint64_t kseq;  /* per key, from 1 */
    uint32_t sub;
};

/* plain memory: see the top of the file */
/* per source dispatcher: a key's order is its dispatcher's (two
 * dispatchers' events of one key are not ordered among each other) */
static uint64_t last_seq[2][KEYS][SUBS], last_kseq[2][KEYS];
static uint64_t fgen[ROUTES][KEYS];            /* forgets, per route */
static uint64_t seen[ROUTES][KEYS][SUBS];      /* fgen when last there, +1 */
static int last_route[KEYS][SUBS];
static _Atomic uint64_t done, failures_made, forgets;
static int split_mode;

static int unpack(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque, (void)m, (void)ev;
    return RG_EDECODE; /* push_events only */
}

static uint64_t order_key(void *opaque, const rg_event_t *ev)
{
    (void)opaque;
    struct payload p;
    memcpy(&p, ev->data.bytes, sizeof(p));
    return ev->key * SUBS + p.sub;
}

static void forget(void *opaque, rg_ctx_t *ctx, uint64_t key)
{
    (void)opaque;
    cr_assert_lt(key, KEYS);
    fgen[rg_ctx_worker(ctx)][key]++;
    /* relaxed: a counter read after the join */
    atomic_fetch_add_explicit(&forgets, 1, memory_order_relaxed);
}

static void do_one(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque;
    struct payload p;
    memcpy(&p, ev->data.bytes, sizeof(p));
    uint64_t k = ev->key;
    unsigned src = ev->source;
    cr_assert_lt(src, 2);
    if (p.seq % 997 == 0 && rg_ctx_attempt(ctx, ev) == 1) {
        cr_assert_eq(rg_ctx_retry(ctx, ev, "test: first attempt"), 0);
        /* relaxed: a counter */
        atomic_fetch_add_explicit(&failures_made, 1, memory_order_relaxed);
        return;
    }
    cr_assert_eq(p.seq, last_seq[src][k][p.sub] + 1,
                 "key %llu sub %u from d%u: event %llu after %llu",
                 (unsigned long long)k, p.sub, src, (unsigned long long)p.seq,
                 (unsigned long long)last_seq[src][k][p.sub]);
    last_seq[src][k][p.sub] = p.seq;
    if (!split_mode) {
        cr_assert_eq(p.kseq, last_kseq[src][k] + 1,
                     "key %llu from d%u: event %llu after %llu",
                     (unsigned long long)k, src, (unsigned long long)p.kseq,
                     (unsigned long long)last_kseq[src][k]);
        last_kseq[src][k] = p.kseq;
    }
    if (k == SHARED) {
        /* relaxed: a counter read after the join */
        atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
        return; /* its route flips with its dispatcher: no forget check */
    }
    unsigned r = rg_ctx_worker(ctx);
    cr_assert_lt(r, ROUTES);
    if (last_route[k][p.sub] != (int)r && seen[r][k][p.sub] != 0)
        cr_assert_gt(fgen[r][k] + 1, seen[r][k][p.sub],
                     "key %llu came back to route %u without a forget "
                     "(from %d, seq %llu, forgets %llu, seen %llu)",
                     (unsigned long long)k, r, last_route[k][p.sub],
                     (unsigned long long)p.seq,
                     (unsigned long long)fgen[r][k],
                     (unsigned long long)seen[r][k][p.sub]);
    /* back here again: the route must have forgotten since this */
    seen[r][k][p.sub] = fgen[r][k] + 1;
    last_route[k][p.sub] = (int)r;
    /* relaxed: a counter read after rg_engine_stop() joined the workers */
    atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
}

struct pusher {
    rg_engine_t *e;
    unsigned idx;
    bool flap;      /* no forcing: the hot key's share swings by time */
    uint64_t pushed;
    uint64_t seq[KEYS][SUBS], kseq[KEYS];
    int forced;
    pthread_t th;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *push_main(void *arg)
{
    struct pusher *p = arg;
    rg_dispatcher_t *d = rg_engine_dispatcher(p->e, p->idx);
    rg_event_t evs[BURST];
    uint64_t rng = 0x9e3779b97f4a7c15ull * (p->idx + 1), off = 0;
    unsigned turn = 0;
    double t0 = now_s();
    for (uint64_t n = 0; p->flap ? now_s() - t0 < FLAP_S : n < PER_D;
         n += BURST) {
        /* flap: 80% for 60 ms, 10% for 60 ms, around a 50% threshold */
        uint64_t ppm = 500000;
        if (p->flap)
            ppm = (uint64_t)((now_s() - t0) / 0.06) % 2 ? 100000 : 800000;
        for (int i = 0; i < BURST; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            /* key idx (half, or as flap says), the rest over the
             * dispatcher's others */
            uint64_t k = (rng >> 44) % 1000000 < ppm ? p->idx
                         : (rng >> 30) % 10 == 0 ? SHARED
                         : p->idx + 2 * (1 + (rng >> 8) % 31);
            struct payload pl = {.sub = (uint32_t)((rng >> 40) % SUBS)};
            pl.seq = ++p->seq[k][pl.sub];
            pl.kseq = ++p->kseq[k];
            memset(&evs[i], 0, sizeof(evs[i]));
            evs[i].key = k;
            evs[i].partition = (int32_t)p->idx;
            evs[i].offset = (int64_t)off++;
            evs[i].len = sizeof(pl);
            memcpy(evs[i].data.bytes, &pl, sizeof(pl));
        }
        cr_assert_eq(rg_dispatcher_push_events(d, evs, BURST), BURST);
        p->pushed += BURST;
        if (!p->flap && (n + BURST) % FORCE_EVERY == 0) {
            /* the hot key, then two cold ones (and for d0 the shared
             * one), in turn: on, then off */
            unsigned ring = p->idx == 0 ? 4 : 3;
            uint64_t k = (turn / 2) % ring == 3 ? SHARED
                                                : p->idx + 2 * ((turn / 2) % ring);
            int state = turn % 2 == 0 ? 1 : 0;
            cr_assert_eq(rg_dispatcher_force_hot(d, k, state), 0);
            /* the move's barrier now (one move a toggle), not waited
             * for: the key's next events go to its new route at once,
             * while the old one may still be busy with its earlier ones */
            int rc = rg_dispatcher_flush(d, 0);
            cr_assert(rc == 0 || rc == RG_ETIMEDOUT, "flush: %d", rc);
            turn++;
        }
    }
    return NULL;
}

/* split: the processor's way; flap: detection moves the keys (anti-flap
 * at hotkey.cool.ms = 250), not the pushers' forcing */
static void run(int split, bool flap)
{
    /* one process may run both tests (the TSan build's runner) */
    memset(last_seq, 0, sizeof(last_seq));
    memset(last_kseq, 0, sizeof(last_kseq));
    memset(fgen, 0, sizeof(fgen));
    memset(seen, 0, sizeof(seen));
    memset(last_route, 0, sizeof(last_route));
    /* relaxed: no thread of the engine runs yet */
    atomic_store_explicit(&done, 0, memory_order_relaxed);
    atomic_store_explicit(&failures_made, 0, memory_order_relaxed);
    atomic_store_explicit(&forgets, 0, memory_order_relaxed);
    split_mode = split;
    char err[256];
    rg_conf_t *conf = rg_conf_new();
    cr_assert_not_null(conf);
    static const char *const xs[] = {
        "workers", "2", "dispatchers", "2", "hotkey.enable", "true",
        "hotkey.lanes", "2", "hotkey.min.events", "1099511627776",
        "flush.interval.ms", "2", "retry.backoff.ms", "1",
        "retry.backoff.max.ms", "4", NULL};
    for (int i = 0; xs[i] != NULL; i += 2)
        cr_assert_eq(rg_conf_set(conf, xs[i], xs[i + 1], err, sizeof(err)),
                     0, "%s", err);
    /* a window of 40 ms (slices of 10), hot above 50%, cold below 30% */
    static const char *const flaps[] = {
        "hotkey.min.events", "100", "hotkey.window.ms", "40",
        "hotkey.share", "0.5", "hotkey.cool.share", "0.3",
        "hotkey.cool.ms", "250", NULL};
    for (int i = 0; flap && flaps[i] != NULL; i += 2)
        cr_assert_eq(rg_conf_set(conf, flaps[i], flaps[i + 1], err,
                                 sizeof(err)), 0, "%s", err);
    rg_processor_t proc = {.unpack = unpack, .do_event = do_one,
                           .forget = forget, .split = split,
                           .order_key = split ? order_key : NULL};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    rg_sink_t sink;
    cr_assert_eq(rg_sink_null_open(&sink), 0);
    cr_assert_eq(rg_engine_set_sink(e, &sink, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    static struct pusher p[2]; /* static: see test_hotkey_engine.c */
    for (unsigned i = 0; i < 2; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].e = e;
        p[i].idx = i;
        p[i].flap = flap;
        cr_assert_eq(pthread_create(&p[i].th, NULL, push_main, &p[i]), 0);
    }
    double t0 = now_s();
    for (unsigned i = 0; i < 2; i++)
        pthread_join(p[i].th, NULL);
    double secs = now_s() - t0;
    uint64_t total = p[0].pushed + p[1].pushed;
    /* the null sink keeps no failures, so events still waiting for a
     * retry when the engine stops are not applied (retry.h): wait for
     * the retry tail first (a few ms; at most a minute) */
    for (int i = 0; i < 60000; i++) {
        /* relaxed: a counter; the stop's join orders the rest */
        if (atomic_load_explicit(&done, memory_order_relaxed) == total)
            break;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(rg_engine_stop(e), 0);
    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    cr_assert_eq(st.lanes, 2);
    if (flap) {
        /* each dispatcher's key may change state once per 250 ms */
        uint64_t most = 2 * ((uint64_t)(secs / 0.25) + 1);
        printf("lanes (flapping): %llu moves in %.2f s, at most %llu\n",
               (unsigned long long)st.moves, secs, (unsigned long long)most);
        cr_assert_leq(st.moves, most, "%llu moves in %.2f s",
                      (unsigned long long)st.moves, secs);
        cr_assert_geq(st.moves, 2, "the swinging key never moved");
    } else {
        cr_assert_eq(st.moves, 2 * PER_D / FORCE_EVERY, "moves: %llu",
                     (unsigned long long)st.moves);
        cr_assert_eq(st.moves_to_lanes, st.moves / 2, "to the lanes: %llu",
                     (unsigned long long)st.moves_to_lanes);
    }
    /* relaxed: the workers are joined */
    uint64_t n = atomic_load_explicit(&done, memory_order_relaxed);
    cr_assert_eq(n, total, "processed %llu of %llu",
                 (unsigned long long)n, (unsigned long long)total);
    for (unsigned src = 0; src < 2; src++)
        for (unsigned k = 0; k < KEYS; k++)
            for (unsigned s = 0; s < SUBS; s++)
                cr_assert_eq(last_seq[src][k][s], p[src].seq[k][s],
                             "key %u sub %u from d%u: last %llu of %llu", k,
                             s, src, (unsigned long long)last_seq[src][k][s],
                             (unsigned long long)p[src].seq[k][s]);
    uint64_t lane_events = 0;
    for (unsigned r = 2; r < ROUTES; r++) {
        rg_worker_stats_t ws;
        cr_assert_eq(rg_engine_worker_stats(e, r, &ws), 0);
        lane_events += ws.processed;
    }
    rg_worker_stats_t ws;
    cr_assert_eq(rg_engine_worker_stats(e, ROUTES, &ws), RG_EINVAL);
    cr_assert_gt(lane_events, 0);
    /* relaxed: joined */
    cr_assert_gt(atomic_load_explicit(&failures_made, memory_order_relaxed),
                 flap ? 0 : 1000);
    cr_assert_gt(atomic_load_explicit(&forgets, memory_order_relaxed),
                 flap ? 0 : 50);
    printf("lanes (%s): %llu moves, %llu events on the lanes, %llu "
           "retried, %llu forgets\n", split ? "split" : "whole keys",
           (unsigned long long)st.moves, (unsigned long long)lane_events,
           (unsigned long long)atomic_load_explicit(&failures_made,
                                                    memory_order_relaxed),
           (unsigned long long)atomic_load_explicit(&forgets,
                                                    memory_order_relaxed));
    rg_engine_destroy(e);
}

Test(lanes, forced_moves_keep_order_split, .timeout = 300)
{
    run(1, false);
}

Test(lanes, forced_moves_keep_order_whole_keys, .timeout = 300)
{
    run(0, false);
}

/* A key swinging across the threshold every 60 ms for 1.5 s moves at
 * most once per hotkey.cool.ms (and in order, once, as above). */
Test(lanes, flapping_key_moves_at_most_once_per_cool_period, .timeout = 300)
{
    run(1, true);
}

/* ---- a delayed event handed back while its key is on the lanes ---- */

/* A sink that keeps failures (the null sink's other calls) and holds one
 * stored delayed event: key 0, sub 3, the first of its pair (seq 1). */
static int fs_write(void *self, const rg_failure_t *rows, size_t n,
                    char *errstr, size_t size)
{
    (void)self, (void)rows, (void)n, (void)errstr, (void)size;
    return 0;
}

enum { RQ_OFFSET = 5 };

static int fs_scan(void *self, int state, const int32_t *parts, size_t np,
                   void (*cb)(void *arg, const rg_failure_t *row), void *arg,
                   char *errstr, size_t size)
{
    (void)self, (void)parts, (void)np, (void)errstr, (void)size;
    if (state != RG_FAILURE_DELAYED)
        return 0;
    struct payload pl = {.seq = 1, .kseq = 1, .sub = 3};
    rg_failure_t row = {.state = RG_FAILURE_DELAYED, .partition = 0,
                        .offset = RQ_OFFSET, .key = 0, .attempts = 1,
                        .reasons = "test", .payload = &pl,
                        .payload_len = sizeof(pl),
                        .event_len = sizeof(pl)};
    cb(arg, &row);
    return 0;
}

static _Atomic int requeued_on; /* the route that ran it, + 1 */

static void rq_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    if (ev->key == 0 && ev->offset == RQ_OFFSET)
        /* relaxed: read after the stop's join */
        atomic_store_explicit(&requeued_on, (int)rg_ctx_worker(ctx) + 1,
                              memory_order_relaxed);
    do_one(opaque, ctx, ev);
}

/* Key 0 is on the lanes when a restart hands back its stored delayed
 * event: the event goes to the key's lane (where its later events go),
 * not to the worker key 0 hashes to, and runs before them. */
Test(lanes, requeue_goes_to_the_keys_current_route)
{
    memset(last_seq, 0, sizeof(last_seq));
    memset(last_route, 0, sizeof(last_route));
    memset(seen, 0, sizeof(seen));
    memset(fgen, 0, sizeof(fgen));
    split_mode = 1;
    char err[256];
    rg_conf_t *conf = rg_conf_new();
    static const char *const xs[] = {
        "workers", "2", "dispatchers", "1", "hotkey.enable", "true",
        "hotkey.lanes", "2", "hotkey.min.events", "1099511627776", NULL};
    for (int i = 0; xs[i] != NULL; i += 2)
        cr_assert_eq(rg_conf_set(conf, xs[i], xs[i + 1], err, sizeof(err)),
                     0, "%s", err);
    rg_processor_t proc = {.unpack = unpack, .do_event = rq_do,
                           .forget = forget, .split = 1,
                           .order_key = order_key};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    rg_sink_t sink;
    cr_assert_eq(rg_sink_null_open(&sink), 0);
    sink.write_failures = fs_write;
    sink.scan_failures = fs_scan;
    cr_assert_eq(rg_engine_set_sink(e, &sink, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    /* the partition resumes after the stored event; key 0 moves to the
     * lanes before the hand-back */
    cr_assert_eq(rg_dispatcher_reset(d, 0, RQ_OFFSET + 1), 0);
    cr_assert_eq(rg_dispatcher_force_hot(d, 0, 1), 0);
    cr_assert_eq(rg_dispatcher_flush(d, 30000), 0);
    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    cr_assert_eq(st.moves, 1);
    cr_assert_eq(rg_engine_requeue(e, (int32_t[]){0}, 1, err, sizeof(err)),
                 1, "%s", err);
    /* its pair's later events, on the lane */
    rg_event_t evs[50];
    for (int i = 0; i < 50; i++) {
        struct payload pl = {.seq = (uint64_t)i + 2, .kseq = (uint64_t)i + 2,
                             .sub = 3};
        memset(&evs[i], 0, sizeof(evs[i]));
        evs[i].key = 0;
        evs[i].partition = 0;
        evs[i].offset = RQ_OFFSET + 1 + i;
        evs[i].len = sizeof(pl);
        memcpy(evs[i].data.bytes, &pl, sizeof(pl));
    }
    cr_assert_eq(rg_dispatcher_push_events(d, evs, 50), 50);
    cr_assert_eq(rg_dispatcher_flush(d, 30000), 0);
    cr_assert_eq(rg_engine_stop(e), 0);
    /* relaxed: joined */
    int on = atomic_load_explicit(&requeued_on, memory_order_relaxed);
    cr_assert_geq(on - 1, 2, "the handed-back event ran on worker %d, not "
                  "on its key's lane", on - 1);
    cr_assert_eq(last_seq[0][0][3], 51, "the pair's events: last %llu of 51",
                 (unsigned long long)last_seq[0][0][3]);
    rg_engine_destroy(e);
}

/* Lanes need the detection and a sink; split needs an order unit. */
Test(lanes, refusals)
{
    char err[256];
    rg_conf_t *conf = rg_conf_new();
    cr_assert_eq(rg_conf_set(conf, "hotkey.lanes", "2", err, sizeof(err)), 0);
    rg_processor_t proc = {.unpack = unpack, .do_event = do_one};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_null(e);
    cr_assert(strstr(err, "hotkey.enable") != NULL, "%s", err);
    cr_assert_eq(rg_conf_set(conf, "hotkey.enable", "true", err,
                             sizeof(err)), 0);
    proc.split = 1;
    cr_assert_null(rg_engine_new(conf, &proc, err, sizeof(err)));
    cr_assert(strstr(err, "order_key") != NULL, "%s", err);
    proc.split = 0;
    e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), RG_ESTATE);
    cr_assert(strstr(err, "sink") != NULL, "%s", err);
    /* no lanes: nothing to force */
    rg_engine_destroy(e);
    conf = rg_conf_new();
    e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_dispatcher_force_hot(rg_engine_dispatcher(e, 0), 1, 1),
                 RG_EINVAL);
    cr_assert_eq(rg_engine_stop(e), 0);
    rg_engine_destroy(e);
}
