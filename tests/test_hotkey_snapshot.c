/*
 * test_hotkey_snapshot.c - rg__hk_snapshot() from another thread while the
 * ingest thread ticks as fast as it can: every snapshot must be one
 * tick's publication, whole. A torn read (fields of two ticks) breaks at
 * least one of the cross-field invariants checked below, because every
 * tick changes the window's total, the counts and the hot set. Runs under
 * TSan too (label concurrency).
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include "hotkey.h"
#include "railgun/error.h"
#include "zipf.h"

#define MAX_HOT 16
#define TICKS 20000
#define SLICE_NS 1000000ull   /* window 4 ms: the smallest allowed */

struct shared {
    rg__hk_t *hk;
    pthread_barrier_t start;
    _Atomic bool done;
    /* reader's results, read after the join */
    uint64_t snapshots, distinct_ticks;
    char bad[160];            /* first broken invariant, or "" */
};

static void fail(struct shared *x, const char *what, uint64_t a, uint64_t b)
{
    if (x->bad[0] == '\0')
        snprintf(x->bad, sizeof(x->bad), "%s (%" PRIu64 " vs %" PRIu64 ")",
                 what, a, b);
}

static void check(struct shared *x, const rg__hk_stats_t *st,
                  const rg__hk_hot_t *k, size_t n, uint64_t *last_ticks)
{
    if (st->nhot > MAX_HOT || n != st->nhot)
        fail(x, "nhot", st->nhot, n);
    if (st->turned_hot - st->turned_cold != st->nhot)
        fail(x, "turned_hot - turned_cold != nhot",
             st->turned_hot - st->turned_cold, st->nhot);
    if (st->ticks < *last_ticks)
        fail(x, "ticks went backwards", st->ticks, *last_ticks);
    if (st->ticks != 0 && st->tick_ns != st->ticks * SLICE_NS)
        fail(x, "tick_ns is not this tick's", st->tick_ns, st->ticks);
    if (st->ticks != *last_ticks)
        x->distinct_ticks++;
    *last_ticks = st->ticks;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += k[i].count;
        double share = st->window_events
                           ? (double)k[i].count / (double)st->window_events
                           : 0.0;
        if (k[i].share != share)
            fail(x, "share != count / window_events", k[i].count,
                 st->window_events);
        if (k[i].since_ns > st->tick_ns)
            fail(x, "hot since after the tick", k[i].since_ns, st->tick_ns);
        if (i > 0 && k[i].count > k[i - 1].count)
            fail(x, "not strongest first", k[i].count, k[i - 1].count);
        for (size_t j = 0; j < i; j++)
            if (k[j].key == k[i].key)
                fail(x, "a key twice", k[i].key, i);
    }
    if (sum > st->window_events)
        fail(x, "counts exceed the window", sum, st->window_events);
}

static void *reader(void *arg)
{
    struct shared *x = arg;
    pthread_barrier_wait(&x->start);
    uint64_t last = 0;
    rg__hk_hot_t keys[MAX_HOT];
    rg__hk_stats_t st;
    /* relaxed: only a stop flag; the snapshot brings its own ordering */
    while (!atomic_load_explicit(&x->done, memory_order_relaxed)) {
        size_t n = rg__hk_snapshot(x->hk, &st, keys, MAX_HOT);
        check(x, &st, keys, n, &last);
        x->snapshots++;
    }
    return NULL;
}

Test(hotkey_snapshot, consistent_while_ticking)
{
    rg__hk_conf_t c;
    rg__hk_conf_default(&c);
    c.window_ns = 4 * SLICE_NS;
    c.share = 0.04;
    c.cool_share = 0.03;
    c.cool_ns = 0;
    c.min_events = 1;
    c.capacity = 256;
    c.max_hot = MAX_HOT;
    struct shared x;
    memset(&x, 0, sizeof(x));
    atomic_init(&x.done, false);
    cr_assert_eq(rg__hk_new(&x.hk, &c, 0), 0);
    pthread_barrier_init(&x.start, NULL, 2);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, reader, &x), 0);
    pthread_barrier_wait(&x.start);
    rg_rng_t rng;
    rg_rng_seed(&rng, 8);
    uint64_t changes = 0;
    for (uint64_t t = 1; t <= TICKS; t++) {
        /* a new set of 1..12 heavy keys each slice, of varying weights,
         * over background noise: every tick changes counts, T and the set */
        uint64_t nheavy = 1 + rg_rng_below(&rng, 12);
        for (uint64_t j = 0; j < nheavy; j++)
            rg__hk_add(x.hk, t * 16 + j, 50 + rg_rng_below(&rng, 200));
        for (int j = 0; j < 40; j++)
            rg__hk_add(x.hk, 1u << 30 | rg_rng_below(&rng, 5000), 1);
        const rg__hk_change_t *ch;
        changes += rg__hk_tick(x.hk, t * SLICE_NS, &ch);
    }
    /* relaxed: see the reader */
    atomic_store_explicit(&x.done, true, memory_order_relaxed);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&x.start);
    fprintf(stderr, "hotkey snapshot: %" PRIu64 " snapshots over %" PRIu64
            " distinct ticks, %" PRIu64 " changes\n", x.snapshots,
            x.distinct_ticks, changes);
    cr_assert_str_eq(x.bad, "", "torn snapshot: %s", x.bad);
    cr_assert_gt(changes, TICKS, "the hot set barely changed");
    cr_assert_gt(x.snapshots, 0);
    /* the last publication, read on this thread, is the last tick's */
    rg__hk_stats_t st;
    rg__hk_hot_t keys[MAX_HOT];
    size_t n = rg__hk_snapshot(x.hk, &st, keys, MAX_HOT);
    cr_assert_eq(st.ticks, TICKS);
    cr_assert_eq(n, st.nhot);
    for (size_t i = 0; i < n; i++)
        cr_assert(rg__hk_is_hot(x.hk, keys[i].key));
    rg__hk_destroy(x.hk);
}
