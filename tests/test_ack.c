/*
 * test_ack.c - the ACK tracker: the watermark equals a reference at every
 * step of random completion orders; with 2 and 4 completing threads it
 * never passes an offset that is not done and reaches the end exactly;
 * a full window refuses without allocating; gaps, resets, offset 0 and
 * offsets near INT64_MAX; bad dones are rejected without corruption; and,
 * wired into the engine, the commit callback gets the right offsets, not
 * once per message, never moving backwards.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "railgun/railgun.h"
#include "workload.h"
#include "zipf.h"

Test(ack, random_order_watermark_equals_reference_every_step,
     .timeout = 300)
{
    const uint64_t n = 1000000;
    const uint32_t window = 4096;
    int64_t *order = rg_completion_order(n, window, 11);
    bool *done = calloc(n, 1);
    rg_ack_t *a = rg_ack_new(window, 0, NULL, 0);
    cr_assert_not_null(a);
    uint64_t begun = 0, ref = 0, bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        int64_t o = order[i];
        while (begun <= (uint64_t)o) {
            int rc = rg_ack_begin(a, (int64_t)begun);
            cr_assert_eq(rc, 0, "begin(%llu) = %d", (unsigned long long)begun,
                         rc);
            begun++;
        }
        cr_assert_eq(rg_ack_done(a, 0, o), 0, "done(%lld)", (long long)o);
        done[o] = true;
        while (ref < begun && done[ref])
            ref++;
        bad += rg_ack_watermark(a) != (int64_t)ref;
    }
    cr_assert_eq(bad, 0, "%llu steps where the watermark was wrong",
                 (unsigned long long)bad);
    cr_assert_eq(rg_ack_watermark(a), (int64_t)n);
    rg_ack_destroy(a);
    free(done);
    free(order);
}

/* ---- concurrent completion --------------------------------------------- */

RG_RING_PROTOTYPE(off, int64_t)

struct mt {
    rg_ack_t *a;
    rg_ring_t *ring;
    _Atomic uint8_t *shadow;   /* 1 once the offset's work is done */
    uint64_t n;
    _Atomic uint64_t finished; /* completers that saw their end marker */
    uint64_t errors;
};

struct completer {
    struct mt *m;
    rg_ring_t *ring;
};

static void *complete_main(void *arg)
{
    struct completer *c = arg;
    int64_t batch[64];
    for (;;) {
        uint32_t k = rg_ring_pop_burst_spsc_off(c->ring, batch, 64);
        for (uint32_t i = 0; i < k; i++) {
            if (batch[i] < 0) {
                atomic_fetch_add(&c->m->finished, 1);
                return NULL;
            }
            /* the "work", then the ACK */
            atomic_store_explicit(&c->m->shadow[batch[i]], 1,
                                  memory_order_relaxed);
            if (rg_ack_done(c->m->a, 0, batch[i]) != 0)
                c->m->errors++;
        }
    }
}

static void run_threads(unsigned nthreads)
{
    struct mt m = {.n = 1000000};
    const uint32_t window = 4096;
    m.a = rg_ack_new(window, 0, NULL, 0);
    m.shadow = calloc(m.n, 1);
    rg_ring_t *rings[4];
    struct completer cs[4];
    pthread_t th[4];
    for (unsigned t = 0; t < nthreads; t++) {
        rings[t] = rg_ring_new(1024, sizeof(int64_t), NULL, 0);
        cs[t] = (struct completer){&m, rings[t]};
        pthread_create(&th[t], NULL, complete_main, &cs[t]);
    }
    rg_rng_t rng;
    rg_rng_seed(&rng, nthreads);
    int64_t checked = 0, last = 0;
    uint64_t violations = 0, backwards = 0;
    for (uint64_t o = 0; o < m.n; o++) {
        int rc;
        while ((rc = rg_ack_begin(m.a, (int64_t)o)) == RG_EFULL)
            ;
        cr_assert_eq(rc, 0);
        /* a random completer: completions interleave out of order */
        rg_ring_t *r = rings[rg_rng_below(&rng, nthreads)];
        int64_t v = (int64_t)o;
        while (!rg_ring_push_spsc_off(r, &v))
            ;
        if ((o & 255) == 0) {
            int64_t wm = rg_ack_watermark(m.a);
            backwards += wm < last;
            last = wm;
            /* everything below the watermark must have been worked */
            for (; checked < wm; checked++)
                violations += atomic_load_explicit(&m.shadow[checked],
                                                   memory_order_relaxed) != 1;
        }
    }
    for (unsigned t = 0; t < nthreads; t++) {
        int64_t end = -1;
        while (!rg_ring_push_spsc_off(rings[t], &end))
            ;
        pthread_join(th[t], NULL);
        rg_ring_destroy(rings[t]);
    }
    cr_assert_eq(violations, 0, "watermark passed %llu offsets not done",
                 (unsigned long long)violations);
    cr_assert_eq(backwards, 0, "watermark moved backwards");
    cr_assert_eq(m.errors, 0, "done() failed %llu times",
                 (unsigned long long)m.errors);
    cr_assert_eq(rg_ack_watermark(m.a), (int64_t)m.n, "did not reach the "
                 "end exactly");
    rg_ack_stats_t st;
    rg_ack_stats(m.a, &st);
    cr_assert_eq(st.pending, 0);
    rg_ack_destroy(m.a);
    free((void *)m.shadow);
}

Test(ack, two_threads_completing, .timeout = 300)
{
    run_threads(2);
}

Test(ack, four_threads_completing, .timeout = 300)
{
    run_threads(4);
}

/* ---- window, gaps, resets, edges ---------------------------------------- */

Test(ack, full_window_refuses_without_growing)
{
    rg_ack_t *a = rg_ack_new(64, 100, NULL, 0);
    for (int64_t o = 100; o < 164; o++)
        cr_assert_eq(rg_ack_begin(a, o), 0);
    /* offset 100 is stuck: 164 would be a window away */
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 100000; i++)
        cr_assert_eq(rg_ack_begin(a, 164), RG_EFULL);
    struct mallinfo2 after = mallinfo2();
    cr_assert_eq(before.uordblks, after.uordblks, "begin allocated");
    /* completing others does not help while 100 is stuck */
    for (int64_t o = 101; o < 164; o++)
        cr_assert_eq(rg_ack_done(a, 0, o), 0);
    cr_assert_eq(rg_ack_begin(a, 164), RG_EFULL);
    cr_assert_eq(rg_ack_watermark(a), 100);
    cr_assert_eq(rg_ack_done(a, 0, 100), 0);
    cr_assert_eq(rg_ack_begin(a, 164), 0, "window freed");
    cr_assert_eq(rg_ack_watermark(a), 164);
    rg_ack_destroy(a);
}

Test(ack, gaps_never_stall_the_watermark)
{
    rg_ack_t *a = rg_ack_new(64, 0, NULL, 0);
    cr_assert_eq(rg_ack_begin(a, 0), 0);
    cr_assert_eq(rg_ack_begin(a, 5), 0);     /* 1..4 skipped */
    cr_assert_eq(rg_ack_begin(a, 40), 0);    /* 6..39 skipped */
    cr_assert_eq(rg_ack_watermark(a), 0);
    cr_assert_eq(rg_ack_done(a, 0, 0), 0);
    cr_assert_eq(rg_ack_watermark(a), 5, "gap 1..4 must count as done");
    cr_assert_eq(rg_ack_done(a, 0, 3), RG_ENOENT, "a gap is not pending");
    cr_assert_eq(rg_ack_done(a, 0, 40), 0);
    cr_assert_eq(rg_ack_done(a, 0, 5), 0);
    cr_assert_eq(rg_ack_watermark(a), 41);
    /* a gap far larger than the window, with nothing pending */
    cr_assert_eq(rg_ack_begin(a, 1000000), 0);
    cr_assert_eq(rg_ack_watermark(a), 1000000);
    cr_assert_eq(rg_ack_done(a, 0, 1000000), 0);
    cr_assert_eq(rg_ack_watermark(a), 1000001);
    /* ... but not while something below is pending */
    cr_assert_eq(rg_ack_begin(a, 1000001), 0);
    cr_assert_eq(rg_ack_begin(a, 2000000), RG_EFULL);
    rg_ack_destroy(a);
}

Test(ack, offsets_zero_and_near_int64_max)
{
    rg_ack_t *a = rg_ack_new(64, 0, NULL, 0);
    cr_assert_eq(rg_ack_watermark(a), 0);
    cr_assert_eq(rg_ack_begin(a, -1), RG_EINVAL);
    cr_assert_eq(rg_ack_begin(a, 0), 0);
    cr_assert_eq(rg_ack_begin(a, 0), RG_EINVAL, "offsets must increase");
    cr_assert_eq(rg_ack_done(a, 0, 0), 0);
    cr_assert_eq(rg_ack_watermark(a), 1);
    rg_ack_destroy(a);

    int64_t top = RG_ACK_OFFSET_MAX;
    a = rg_ack_new(64, top - 10, NULL, 0);
    for (int64_t o = top - 10; o <= top; o++)
        cr_assert_eq(rg_ack_begin(a, o), 0, "begin(max - %lld)",
                     (long long)(top - o));
    cr_assert_eq(rg_ack_begin(a, INT64_MAX), RG_ERANGE);
    for (int64_t o = top; o >= top - 10; o--)
        cr_assert_eq(rg_ack_done(a, 0, o), 0);
    cr_assert_eq(rg_ack_watermark(a), INT64_MAX);
    rg_ack_destroy(a);
    cr_assert_null(rg_ack_new(64, -5, NULL, 0));
    cr_assert_null(rg_ack_new(100, 0, NULL, 0), "window must be a power of two");
    cr_assert_null(rg_ack_new(32, 0, NULL, 0));
    rg_ack_destroy(NULL);
}

Test(ack, bad_dones_are_rejected_without_corruption)
{
    rg_ack_t *a = rg_ack_new(64, 0, NULL, 0);
    for (int64_t o = 0; o < 10; o++)
        cr_assert_eq(rg_ack_begin(a, o), 0);
    cr_assert_eq(rg_ack_done(a, 0, 10), RG_ENOENT, "never begun");
    cr_assert_eq(rg_ack_done(a, 0, 64), RG_ENOENT, "same slot as 0, a lap "
                 "later");
    cr_assert_eq(rg_ack_done(a, 0, -3), RG_ENOENT);
    cr_assert_eq(rg_ack_done(a, 7, 3), RG_ESTALE, "no such generation");
    cr_assert_eq(rg_ack_done(a, UINT32_MAX, 3), RG_ESTALE);
    cr_assert_eq(rg_ack_watermark(a), 0, "nothing was completed");
    cr_assert_eq(rg_ack_done(a, 0, 0), 0);
    cr_assert_eq(rg_ack_done(a, 0, 0), RG_ENOENT, "duplicate");
    cr_assert_eq(rg_ack_watermark(a), 1);
    rg_ack_stats_t st;
    rg_ack_stats(a, &st);
    cr_assert_eq(st.pending, 9);
    rg_ack_destroy(a);
}

Test(ack, reset_mid_flight_ignores_the_old_generation)
{
    rg_ack_t *a = rg_ack_new(64, 0, NULL, 0);
    for (int64_t o = 0; o < 20; o++)
        cr_assert_eq(rg_ack_begin(a, o), 0);
    cr_assert_eq(rg_ack_done(a, 0, 0), 0);
    /* revoke + re-assign at 5: offsets 5..19 come again */
    cr_assert_eq(rg_ack_reset(a, 5), 0);
    cr_assert_eq(rg_ack_generation(a), 1);
    cr_assert_eq(rg_ack_watermark(a), 5);
    cr_assert_eq(rg_ack_begin(a, 5), 0);
    cr_assert_eq(rg_ack_begin(a, 6), 0);
    /* the old generation's 5 completes late: must not count as the new 5 */
    cr_assert_eq(rg_ack_done(a, 0, 5), 0, "lands in its own window");
    cr_assert_eq(rg_ack_watermark(a), 5);
    cr_assert_eq(rg_ack_done(a, 1, 5), 0);
    cr_assert_eq(rg_ack_watermark(a), 6);
    /* more resets while generation 0 still has pending events */
    cr_assert_eq(rg_ack_reset(a, 100), 0);
    cr_assert_eq(rg_ack_reset(a, 200), 0);
    cr_assert_eq(rg_ack_reset(a, 300), RG_EFULL, "generation 0 still has "
                 "pending events; its window cannot be reused");
    for (int64_t o = 1; o < 20; o++)
        if (o != 5)
            cr_assert_eq(rg_ack_done(a, 0, o), 0);
    cr_assert_eq(rg_ack_reset(a, 300), 0, "generation 0 drained");
    cr_assert_eq(rg_ack_generation(a), 4);
    cr_assert_eq(rg_ack_done(a, 0, 1), RG_ESTALE, "window reused");
    cr_assert_eq(rg_ack_reset(a, -1), RG_EINVAL);
    rg_ack_destroy(a);
}

/* ---- wired into the engine: the commit callback ------------------------- */

#define PARTS 4
#define PER_PART 50000

struct commits {
    _Atomic uint64_t calls, entries;
    int64_t last[PARTS];
    uint32_t last_gen[PARTS];
    uint64_t backwards, beyond;
    _Atomic uint64_t processed[PARTS]; /* events the processor finished */
};

static struct commits cm;

static void on_commit(void *opaque, const rg_commit_t *c, size_t n)
{
    (void)opaque;
    atomic_fetch_add(&cm.calls, 1);
    atomic_fetch_add(&cm.entries, n);
    for (size_t i = 0; i < n; i++) {
        int32_t p = c[i].partition;
        if (c[i].generation == cm.last_gen[p] && c[i].offset < cm.last[p])
            cm.backwards++;
        /* every offset below the committed one was processed */
        if ((uint64_t)c[i].offset > atomic_load(&cm.processed[p]))
            cm.beyond++;
        cm.last[p] = c[i].offset;
        cm.last_gen[p] = c[i].generation;
    }
}

static int unpack_off(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    ev->key = (uint64_t)m->offset * 7 + (uint64_t)m->partition;
    return 0;
}

/* offsets of a partition are processed in order only per key; count the
 * processed ones per partition, then the committed offset may not exceed
 * the number processed (offsets start at 0, no gaps here) */
static void count_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx;
    atomic_fetch_add(&cm.processed[ev->partition], 1);
}

Test(ack, engine_commit_callback_gets_right_offsets_not_per_message,
     .timeout = 120)
{
    memset(&cm, 0, sizeof(cm));
    rg_conf_t *conf = rg_conf_new();
    char err[256];
    rg_conf_set(conf, "workers", "2", err, sizeof(err));
    rg_conf_set(conf, "ack.commit.interval.ms", "5", err, sizeof(err));
    rg_conf_set(conf, "ack.commit.max.events", "1000", err, sizeof(err));
    rg_conf_set(conf, "ack.window.events", "256", err, sizeof(err));
    rg_processor_t proc = {.unpack = unpack_off, .do_event = count_do};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    cr_assert_eq(rg_engine_set_commit_cb(e, on_commit, NULL), 0);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0);
    cr_assert_eq(rg_engine_set_commit_cb(e, on_commit, NULL), RG_ESTATE);
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    rg_msg_t msgs[PARTS];
    for (int64_t o = 0; o < PER_PART; o++) {
        for (int p = 0; p < PARTS; p++)
            msgs[p] = (rg_msg_t){.partition = p, .offset = o};
        cr_assert_eq(rg_dispatcher_push_burst(d, msgs, PARTS), PARTS);
    }
    /* bad partition and non-increasing offset: rejected, not accepted */
    rg_msg_t bad = {.partition = 5000, .offset = 1};
    cr_assert_eq(rg_dispatcher_push(d, &bad), RG_ERANGE);
    bad = (rg_msg_t){.partition = 0, .offset = 3};
    cr_assert_eq(rg_dispatcher_push(d, &bad), RG_EINVAL);
    rg_engine_stop(e);

    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    cr_assert_eq(st.rejected, 2);
    cr_assert_eq(st.processed, (uint64_t)PARTS * PER_PART);
    cr_assert_eq(cm.backwards, 0, "a commit moved backwards");
    cr_assert_eq(cm.beyond, 0, "a commit passed an unprocessed offset");
    for (int p = 0; p < PARTS; p++) {
        cr_assert_eq(cm.last[p], PER_PART, "partition %d: final commit %lld",
                     p, (long long)cm.last[p]);
        rg_partition_stats_t ps;
        cr_assert_eq(rg_engine_partition_stats(e, p, &ps), 0);
        cr_assert_eq(ps.committable, PER_PART);
        cr_assert_eq(ps.pending, 0);
        cr_assert_eq(ps.oldest_pending, -1);
    }
    rg_partition_stats_t ps;
    cr_assert_eq(rg_engine_partition_stats(e, 9, &ps), RG_ENOENT);
    /* batched: far fewer commit entries than messages */
    cr_assert_gt(cm.calls, 1, "committed only once");
    cr_assert_lt(cm.entries, (uint64_t)PARTS * PER_PART / 50,
                 "%llu commit entries for %d messages: per message",
                 (unsigned long long)cm.entries, PARTS * PER_PART);
    cr_assert_eq(st.commits, cm.calls);
    rg_engine_destroy(e);
}

static void stuck_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)ctx;
    _Atomic int *release = opaque;
    /* offset 0 waits until the test lets it go */
    while (ev->offset == 0 && !atomic_load(release)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static _Atomic int release;

static void *release_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    atomic_store(&release, 1);
    return NULL;
}

Test(ack, engine_reports_stuck_offsets_and_window_backpressure,
     .timeout = 60)
{
    atomic_store(&release, 0);
    rg_conf_t *conf = rg_conf_new();
    char err[256];
    rg_conf_set(conf, "workers", "2", err, sizeof(err));
    rg_conf_set(conf, "ack.window.events", "64", err, sizeof(err));
    rg_conf_set(conf, "ack.commit.interval.ms", "10", err, sizeof(err));
    rg_processor_t proc = {.unpack = unpack_off, .do_event = stuck_do,
                           .opaque = &release};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0);
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    for (int64_t o = 0; o < 63; o++) {
        rg_msg_t m = {.partition = 1, .offset = o};
        cr_assert_eq(rg_dispatcher_push(d, &m), 0);
    }
    struct timespec ts = {0, 150 * 1000000};
    nanosleep(&ts, NULL);
    rg_partition_stats_t ps;
    cr_assert_eq(rg_engine_partition_stats(e, 1, &ps), 0);
    cr_assert_eq(ps.oldest_pending, 0, "offset 0 is the stuck one");
    cr_assert_eq(ps.committable, 0);
    cr_assert_geq(ps.oldest_pending_ms, 50, "stuck for %llu ms",
                  (unsigned long long)ps.oldest_pending_ms);
    /* offset 64 is a window away from the stuck 0: the push must wait
     * until another thread lets offset 0 finish */
    pthread_t t;
    pthread_create(&t, NULL, release_later, NULL);
    rg_msg_t m = {.partition = 1, .offset = 64};
    cr_assert_eq(rg_dispatcher_push(d, &m), 0);
    cr_assert_eq(atomic_load(&release), 1, "push did not wait for the "
                 "window");
    pthread_join(t, NULL);
    rg_engine_stop(e);
    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    cr_assert_eq(st.processed, 64);
    cr_assert_eq(st.ack_waits, 1);
    cr_assert_eq(rg_engine_partition_stats(e, 1, &ps), 0);
    cr_assert_eq(ps.committable, 65);
    rg_engine_destroy(e);
}
