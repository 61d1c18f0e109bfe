/*
 * test_flush.c - epoch mode: every epoch lands as one transaction whose
 * rows match its offsets exactly (also with two dispatchers aligned at
 * barriers), retriable sink errors are retried with backoff, fatal ones
 * stop the engine with the message, a slow sink bounds the pending epochs,
 * an idle ingest thread still flushes through rg_dispatcher_poll(), the
 * commit callback never runs ahead of the sink, and staged rows keep the
 * last row of a pair.
 *
 * The sink here is an in-memory table that checks, at every commit, the
 * property the design rests on: for each partition, the events counted in
 * the stored rows equal the stored next offset.
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

#define NPART 8
#define KEYS_PER_PART 500
#define NKEYS (NPART * KEYS_PER_PART)

struct msink {
    pthread_mutex_t lock;
    /* stored */
    int64_t count[NKEYS];
    int64_t next[NPART];
    int64_t staged_value[NKEYS]; /* last staged value of (key, key2 = 0) */
    /* the open transaction */
    int64_t tx_count[NKEYS];
    int64_t tx_next[NPART];
    int64_t tx_staged[NKEYS];
    bool in_tx;
    /* checks and counters */
    uint64_t commits, begins, mismatches, rows_after_offsets, exists;
    bool ambiguous;         /* commit applies, then reports failure */
    bool offsets_written;
    _Atomic int64_t committed_next[NPART]; /* read by the commit cb */
    _Atomic uint64_t cb_ahead;             /* callback saw more than stored */
    _Atomic uint64_t cb_calls;
    /* fault injection */
    int fail_rc;            /* error returned by commit while armed */
    uint64_t fail_from;     /* first begin (1-based) that fails */
    uint64_t fail_count;    /* how many consecutive transactions fail */
    uint64_t failed;
    unsigned commit_sleep_us;
};

static void msink_init(struct msink *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    for (int p = 0; p < NPART; p++) {
        s->next[p] = -1;
        atomic_init(&s->committed_next[p], -1);
    }
    for (int k = 0; k < NKEYS; k++)
        s->staged_value[k] = -1;
}

static int ms_begin(void *self, uint64_t epoch, char *e, size_t n)
{
    (void)epoch, (void)e, (void)n;
    struct msink *s = self;
    pthread_mutex_lock(&s->lock);
    memcpy(s->tx_count, s->count, sizeof(s->count));
    memcpy(s->tx_next, s->next, sizeof(s->next));
    memcpy(s->tx_staged, s->staged_value, sizeof(s->staged_value));
    s->in_tx = true;
    s->offsets_written = false;
    s->begins++;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int ms_merged(void *self, const rg_row_t *rows, size_t n, char *e,
                     size_t sz)
{
    (void)e, (void)sz;
    struct msink *s = self;
    pthread_mutex_lock(&s->lock);
    if (!s->offsets_written)
        s->rows_after_offsets++; /* rows must follow the offsets check */
    for (size_t i = 0; i < n; i++)
        s->tx_count[rows[i].key] += rows[i].value;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int ms_staged(void *self, const rg_row_t *rows, size_t n, char *e,
                     size_t sz)
{
    (void)e, (void)sz;
    struct msink *s = self;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++)
        s->tx_staged[rows[i].key] = rows[i].value;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int ms_offsets(void *self, const rg_offset_t *o, size_t n, char *e,
                      size_t sz)
{
    (void)e, (void)sz;
    struct msink *s = self;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        if (s->tx_next[o[i].partition] == o[i].next_offset) {
            /* the sink contract: stored already (a lost commit reply) */
            s->exists++;
            pthread_mutex_unlock(&s->lock);
            return RG_EEXIST;
        }
        s->tx_next[o[i].partition] = o[i].next_offset;
    }
    s->offsets_written = true;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int ms_commit(void *self, char *e, size_t sz)
{
    struct msink *s = self;
    if (s->commit_sleep_us) {
        struct timespec ts = {0, (long)s->commit_sleep_us * 1000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&s->lock);
    if (s->fail_rc && s->begins >= s->fail_from &&
        s->failed < s->fail_count && !s->ambiguous) {
        s->failed++;
        pthread_mutex_unlock(&s->lock);
        snprintf(e, sz, "injected failure %d", s->fail_rc);
        return s->fail_rc;
    }
    /* the property: per partition, counted events == stored next offset */
    for (int p = 0; p < NPART; p++) {
        int64_t sum = 0;
        for (int k = 0; k < KEYS_PER_PART; k++)
            sum += s->tx_count[p * KEYS_PER_PART + k];
        int64_t want = s->tx_next[p] < 0 ? 0 : s->tx_next[p];
        if (sum != want)
            s->mismatches++;
    }
    memcpy(s->count, s->tx_count, sizeof(s->count));
    memcpy(s->next, s->tx_next, sizeof(s->next));
    memcpy(s->staged_value, s->tx_staged, sizeof(s->staged_value));
    s->in_tx = false;
    s->commits++;
    if (s->ambiguous && s->begins >= s->fail_from &&
        s->failed < s->fail_count) {
        /* the commit landed, but its reply is "lost" */
        s->failed++;
        for (int p = 0; p < NPART; p++)
            atomic_store_explicit(&s->committed_next[p], s->next[p],
                                  memory_order_release);
        pthread_mutex_unlock(&s->lock);
        snprintf(e, sz, "injected lost commit reply");
        return RG_EIO;
    }
    for (int p = 0; p < NPART; p++)
        /* release: the callback's acquire compares against it */
        atomic_store_explicit(&s->committed_next[p], s->next[p],
                              memory_order_release);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void ms_rollback(void *self)
{
    struct msink *s = self;
    pthread_mutex_lock(&s->lock);
    s->in_tx = false;
    pthread_mutex_unlock(&s->lock);
}

static void ms_close(void *self)
{
    (void)self; /* owned by the test */
}

static rg_sink_t msink_iface(struct msink *s)
{
    return (rg_sink_t){.begin = ms_begin, .write_merged = ms_merged,
                       .write_staged = ms_staged, .write_offsets = ms_offsets,
                       .commit = ms_commit, .rollback = ms_rollback,
                       .close = ms_close, .self = s};
}

static void commit_cb(void *opaque, const rg_commit_t *c, size_t n)
{
    struct msink *s = opaque;
    atomic_fetch_add_explicit(&s->cb_calls, 1, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        /* acquire: pairs with the release in ms_commit() */
        int64_t stored = atomic_load_explicit(
            &s->committed_next[c[i].partition], memory_order_acquire);
        if (c[i].offset > (stored < 0 ? 0 : stored))
            atomic_fetch_add_explicit(&s->cb_ahead, 1, memory_order_relaxed);
    }
}

/* The processor: key = partition * KEYS_PER_PART + k; each event adds 1
 * to its key and stages (key, value = offset). */
struct proc {
    rg_engine_t *e;
};

static int unpack(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    uint32_t k;
    memcpy(&k, m->key, sizeof(k));
    ev->key = (uint64_t)m->partition * KEYS_PER_PART + k;
    return 0;
}

static void batch_do(void *opaque, rg_ctx_t *ctx, rg_event_t *evs,
                     size_t n)
{
    struct proc *pr = opaque;
    rg_delta_t *d = rg_ctx_delta(ctx);
    cr_assert_eq(rg_ctx_engine(ctx), pr->e, "the context's engine");
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(rg_delta_merge(d, (int64_t)evs[i].key, 1), 0);
        rg_row_t row = {(int64_t)evs[i].key, 0, evs[i].offset, 0};
        cr_assert_eq(rg_delta_stage(d, &row), 0);
    }
}

/* The commit hook make_engine() installs when set (and then the sink
 * reports its commits as its version). */
static rg_epoch_commit_cb *g_commit_hook;
static void *g_commit_hook_opaque;

static int64_t ms_version(void *self)
{
    struct msink *s = self;
    pthread_mutex_lock(&s->lock);
    int64_t v = (int64_t)s->commits;
    pthread_mutex_unlock(&s->lock);
    return v;
}

static rg_engine_t *make_engine(struct msink *s, struct proc *pr,
                                unsigned workers, unsigned dispatchers,
                                const char *extra)
{
    rg_conf_t *c = rg_conf_new();
    char v[16], err[256];
    snprintf(v, sizeof(v), "%u", workers);
    rg_conf_set(c, "workers", v, err, sizeof(err));
    snprintf(v, sizeof(v), "%u", dispatchers);
    rg_conf_set(c, "dispatchers", v, err, sizeof(err));
    rg_conf_set(c, "flush.interval.ms", "2", err, sizeof(err));
    rg_conf_set(c, "ack.commit.interval.ms", "1", err, sizeof(err));
    rg_conf_set(c, "ring.capacity", "256", err, sizeof(err));
    rg_conf_set(c, "sink.retry.backoff.ms", "1", err, sizeof(err));
    rg_conf_set(c, "sink.retry.backoff.max.ms", "4", err, sizeof(err));
    if (extra != NULL)
        cr_assert_eq(rg_conf_set_line(c, extra, err, sizeof(err)), 0, "%s",
                     err);
    rg_processor_t p = {.unpack = unpack, .batch_do = batch_do, .opaque = pr};
    rg_engine_t *e = rg_engine_new(c, &p, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    pr->e = e;
    rg_sink_t sk = msink_iface(s);
    if (g_commit_hook != NULL) {
        sk.version = ms_version;
        cr_assert_eq(rg_engine_set_commit_hook(e, g_commit_hook,
                                               g_commit_hook_opaque), 0);
    }
    cr_assert_eq(rg_engine_set_sink(e, &sk, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_engine_set_commit_cb(e, commit_cb, s), 0);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    return e;
}

struct feeder {
    rg_engine_t *e;
    unsigned idx, ndisp;
    uint64_t per_part;
    uint64_t accepted;
    uint64_t seed;
};

/* Pushes per_part events into each partition p with p % ndisp == idx. */
static void *feed(void *arg)
{
    struct feeder *f = arg;
    rg_dispatcher_t *d = rg_engine_dispatcher(f->e, f->idx);
    uint64_t x = f->seed * 0x9E3779B97F4A7C15ull + 1;
    enum { B = 64 };
    uint32_t keys[B];
    rg_msg_t msgs[B];
    int64_t next[NPART] = {0};
    for (uint64_t done = 0; done < f->per_part;) {
        for (int p = (int)f->idx; p < NPART; p += (int)f->ndisp) {
            size_t n = 0;
            for (; n < B && next[p] < (int64_t)f->per_part; n++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                keys[n] = (uint32_t)(x % KEYS_PER_PART);
                msgs[n] = (rg_msg_t){p, next[p]++, &keys[n], 4, NULL, 0, 0, 0};
            }
            size_t got = rg_dispatcher_push_burst(d, msgs, n);
            f->accepted += got;
            if (got < n)
                return NULL;
        }
        done = (uint64_t)next[f->idx];
    }
    return NULL;
}

static void run_feeders(rg_engine_t *e, unsigned ndisp, uint64_t per_part,
                        uint64_t *accepted)
{
    pthread_t th[4];
    struct feeder f[4];
    for (unsigned d = 0; d < ndisp; d++) {
        f[d] = (struct feeder){e, d, ndisp, per_part, 0, d + 7};
        pthread_create(&th[d], NULL, feed, &f[d]);
    }
    *accepted = 0;
    for (unsigned d = 0; d < ndisp; d++) {
        pthread_join(th[d], NULL);
        *accepted += f[d].accepted;
    }
}

static void check_exact(struct msink *s, uint64_t per_part)
{
    cr_assert_eq(s->mismatches, 0, "a commit stored rows and offsets that "
                 "disagree");
    cr_assert_eq(s->rows_after_offsets, 0, "rows written before the "
                 "offsets check");
    for (int p = 0; p < NPART; p++) {
        cr_assert_eq(s->next[p], (int64_t)per_part, "partition %d stored "
                     "next %lld", p, (long long)s->next[p]);
        int64_t sum = 0;
        for (int k = 0; k < KEYS_PER_PART; k++)
            sum += s->count[p * KEYS_PER_PART + k];
        cr_assert_eq(sum, (int64_t)per_part);
    }
    cr_assert_eq(atomic_load(&s->cb_ahead), 0, "the commit callback ran "
                 "ahead of the sink");
}

/* Pushes per_round events into every partition, `rounds` times, from
 * dispatcher 0 (offsets continue), waiting after each round until the
 * sink committed once more: at least `rounds` transactions however fast
 * the pushes run (tests that count failed or hooked transactions need
 * them). */
static void feed_in_rounds(rg_engine_t *e, struct msink *s, int rounds,
                           int64_t per_round)
{
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    uint32_t keys[NPART];
    for (int64_t round = 0, o = 0; round < rounds; round++) {
        pthread_mutex_lock(&s->lock);
        uint64_t before = s->commits;
        pthread_mutex_unlock(&s->lock);
        for (int64_t end = o + per_round; o < end; o++)
            for (int p = 0; p < NPART; p++) {
                keys[p] = (uint32_t)((o * 7 + p) % KEYS_PER_PART);
                rg_msg_t m = {p, o, &keys[p], 4, NULL, 0, 0, 0};
                cr_assert_eq(rg_dispatcher_push(d, &m), 0);
            }
        for (int t = 0; t < 5000; t++) {
            pthread_mutex_lock(&s->lock);
            bool moved = s->commits > before;
            pthread_mutex_unlock(&s->lock);
            if (moved)
                break;
            rg_dispatcher_poll(d);
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

Test(flush, one_dispatcher_every_epoch_matches_its_offsets)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    rg_engine_t *e = make_engine(&s, &pr, 3, 1, NULL);
    uint64_t accepted;
    run_feeders(e, 1, 20000, &accepted);
    cr_assert_eq(accepted, 20000u * NPART);
    rg_engine_stop(e);
    rg_flush_stats_t fs;
    rg_engine_flush_stats(e, &fs);
    cr_assert_null(rg_engine_error(e));
    check_exact(&s, 20000);
    cr_assert_gt(s.commits, 1, "one epoch only: the interval never fired");
    cr_assert_eq(fs.transactions, s.commits);
    cr_assert_eq(rg_engine_committed_epoch(e), fs.epochs);
    /* the histograms count every transaction once, and their rows */
    rg_flush_hist_t h;
    rg_engine_flush_hist(e, &h);
    uint64_t nt = 0, nr = 0;
    for (int i = 0; i <= RG_FLUSH_TXN_BUCKETS; i++)
        nt += h.txn_counts[i];
    for (int i = 0; i <= RG_FLUSH_ROWS_BUCKETS; i++)
        nr += h.rows_counts[i];
    cr_assert_eq(nt, fs.transactions);
    cr_assert_eq(nr, fs.transactions);
    cr_assert_eq(h.rows_sum, fs.merged_rows + fs.staged_rows);
    cr_assert_gt(h.txn_seconds_sum, 0.0);
    for (int i = 1; i < RG_FLUSH_TXN_BUCKETS; i++)
        cr_assert_lt(rg_flush_txn_bounds()[i - 1], rg_flush_txn_bounds()[i]);
    for (int i = 1; i < RG_FLUSH_ROWS_BUCKETS; i++)
        cr_assert_lt(rg_flush_rows_bounds()[i - 1], rg_flush_rows_bounds()[i]);
    /* the last commit callback reported the final stored offsets */
    rg_partition_stats_t ps;
    cr_assert_eq(rg_engine_partition_stats(e, 3, &ps), 0);
    cr_assert_eq(ps.committable, 20000);
    cr_assert_eq(ps.pending, 0u);
    rg_engine_destroy(e);
}

Test(flush, two_dispatchers_align_at_barriers)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    rg_engine_t *e = make_engine(&s, &pr, 2, 2, NULL);
    uint64_t accepted;
    run_feeders(e, 2, 15000, &accepted);
    cr_assert_eq(accepted, 15000u * NPART);
    rg_engine_stop(e);
    check_exact(&s, 15000);
    cr_assert_gt(s.commits, 1);
    rg_engine_destroy(e);
}

Test(flush, staged_rows_keep_the_last_of_a_pair)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    rg_engine_t *e = make_engine(&s, &pr, 2, 1, "flush.interval.ms=1000");
    uint64_t accepted;
    run_feeders(e, 1, 3000, &accepted);
    rg_engine_stop(e);
    check_exact(&s, 3000);
    /* every key's staged value is the offset of its last event: rows of
     * one pair within an epoch collapse to the last, across epochs the
     * later epoch wins */
    uint64_t x = 7 * 0x9E3779B97F4A7C15ull + 1;
    int64_t last[NKEYS];
    for (int k = 0; k < NKEYS; k++)
        last[k] = -1;
    int64_t next[NPART] = {0};
    for (uint64_t done = 0; done < 3000;) {
        for (int p = 0; p < NPART; p++)
            for (int n = 0; n < 64 && next[p] < 3000; n++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                last[p * KEYS_PER_PART + (int)(x % KEYS_PER_PART)] =
                    next[p]++;
            }
        done = (uint64_t)next[0];
    }
    for (int k = 0; k < NKEYS; k++)
        cr_assert_eq(s.staged_value[k], last[k], "key %d", k);
    rg_engine_destroy(e);
}

Test(flush, retriable_sink_errors_are_retried_then_exact)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    s.fail_rc = RG_EIO;
    s.fail_from = 2;
    s.fail_count = 5;
    rg_engine_t *e = make_engine(&s, &pr, 2, 1, NULL);
    /* the failures start at the second transaction: make sure there is
     * one */
    feed_in_rounds(e, &s, 4, 2500);
    rg_engine_stop(e);
    rg_flush_stats_t fs;
    rg_engine_flush_stats(e, &fs);
    cr_assert_null(rg_engine_error(e));
    cr_assert_eq(s.failed, 5u);
    cr_assert_eq(fs.retries, 5u);
    check_exact(&s, 10000);
    rg_engine_destroy(e);
}

/* What the commit hook saw (flusher thread only; read after stop). */
struct hooked {
    uint64_t calls, merged, staged, bad_keys, order;
    int64_t last_version;
};

static void on_epoch_commit(void *opaque, const rg_epoch_commit_t *c)
{
    struct hooked *h = opaque;
    h->calls++;
    if (c->version != h->last_version + 1)
        h->order++; /* a version skipped or repeated */
    h->last_version = c->version;
    h->merged += c->nmerged;
    h->staged += c->nstaged;
    for (size_t i = 0; i < c->nmerged; i++)
        if (c->merged[i] < 0 || c->merged[i] >= NKEYS)
            h->bad_keys++;
    for (size_t i = 0; i < c->nstaged; i++)
        if (c->staged[i].key < 0 || c->staged[i].key >= NKEYS)
            h->bad_keys++;
}

Test(flush, commit_hook_sees_every_committed_epoch_and_no_rolled_back_one)
{
    static struct msink s;
    static struct hooked h;
    struct proc pr;
    msink_init(&s);
    memset(&h, 0, sizeof(h));
    /* transactions 2..4 fail at commit and are rolled back, then retried */
    s.fail_rc = RG_EIO;
    s.fail_from = 2;
    s.fail_count = 3;
    g_commit_hook = on_epoch_commit;
    g_commit_hook_opaque = &h;
    rg_engine_t *e = make_engine(&s, &pr, 2, 1, NULL);
    g_commit_hook = NULL;
    feed_in_rounds(e, &s, 8, 1250);
    rg_engine_stop(e);
    cr_assert_null(rg_engine_error(e));
    rg_flush_stats_t fs;
    rg_engine_flush_stats(e, &fs);
    check_exact(&s, 10000);
    cr_assert_eq(s.failed, 3u);
    cr_assert_gt(h.calls, 1u);
    cr_assert_eq(h.calls, fs.transactions, "one call per committed "
                 "transaction: %llu calls, %llu transactions",
                 (unsigned long long)h.calls,
                 (unsigned long long)fs.transactions);
    cr_assert_eq(h.order, 0u, "versions in commit order, none skipped");
    cr_assert_eq(h.last_version, (int64_t)s.commits);
    cr_assert_eq(h.merged, fs.merged_rows, "every merged key, once per "
                 "committed epoch");
    cr_assert_eq(h.staged, fs.staged_rows, "every staged row, once");
    cr_assert_eq(h.bad_keys, 0u);
    rg_engine_destroy(e);
}

Test(flush, a_commit_whose_reply_was_lost_is_not_applied_twice)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    s.ambiguous = true;
    s.fail_from = 2;
    s.fail_count = 4;
    rg_engine_t *e = make_engine(&s, &pr, 2, 1, NULL);
    /* one epoch at most fails per transaction, so the test needs six or
     * more */
    feed_in_rounds(e, &s, 8, 1250);
    rg_engine_stop(e);
    cr_assert_null(rg_engine_error(e));
    cr_assert_eq(s.failed, 4u);
    cr_assert_eq(s.exists, 4u, "each retry found its epoch stored");
    check_exact(&s, 10000);
    rg_engine_destroy(e);
}

Test(flush, fatal_sink_error_stops_the_engine_with_its_message)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    s.fail_rc = RG_ESTATE;
    s.fail_from = 3;
    s.fail_count = 1;
    rg_engine_t *e = make_engine(&s, &pr, 2, 1, NULL);
    uint64_t accepted;
    run_feeders(e, 1, 200000, &accepted);
    /* the feeder returns once pushes fail with RG_ESTOPPED */
    cr_assert_lt(accepted, 200000u * NPART);
    const char *why = rg_engine_error(e);
    cr_assert_not_null(why);
    cr_assert(strstr(why, "injected failure") != NULL, "%s", why);
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    uint32_t k = 1;
    rg_msg_t m = {0, 1 << 30, &k, 4, NULL, 0, 0, 0};
    cr_assert_eq(rg_dispatcher_push(d, &m), RG_ESTOPPED);
    rg_engine_stop(e);
    /* what was stored is still consistent: rows match offsets */
    cr_assert_eq(s.mismatches, 0);
    cr_assert_eq(s.commits, 2u);
    cr_assert_eq(atomic_load(&s.cb_ahead), 0);
    rg_engine_destroy(e);
}

struct sampler {
    rg_engine_t *e;
    _Atomic int stop;
    uint64_t max_pending;
};

static void *sample(void *arg)
{
    struct sampler *sm = arg;
    while (!atomic_load_explicit(&sm->stop, memory_order_acquire)) {
        rg_flush_stats_t fs;
        rg_engine_flush_stats(sm->e, &fs);
        if (fs.pending_epochs > sm->max_pending)
            sm->max_pending = fs.pending_epochs;
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

Test(flush, slow_sink_bounds_pending_epochs_and_loses_nothing)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    s.commit_sleep_us = 5000;
    /* a barrier every 300 keys: far more epochs than the sink keeps up
     * with, so the bound is what holds intake back */
    rg_engine_t *e = make_engine(&s, &pr, 2, 1,
                                 "flush.max.keys=300");
    struct sampler sm = {.e = e};
    pthread_t th;
    pthread_create(&th, NULL, sample, &sm);
    uint64_t accepted;
    run_feeders(e, 1, 8000, &accepted);
    rg_engine_stop(e);
    atomic_store_explicit(&sm.stop, 1, memory_order_release);
    pthread_join(th, NULL);
    check_exact(&s, 8000);
    /* flush.max.pending.epochs (4) sealed + the open one */
    cr_assert_leq(sm.max_pending, 5u, "pending epochs reached %llu",
                  (unsigned long long)sm.max_pending);
    cr_assert_gt(s.commits, 5u);
    rg_engine_destroy(e);
}

Test(flush, idle_ingest_flushes_through_poll)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    rg_engine_t *e = make_engine(&s, &pr, 2, 1, NULL);
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    uint32_t k = 5;
    for (int p = 0; p < NPART; p++) {
        rg_msg_t m = {p, 0, &k, 4, NULL, 0, 0, 0};
        cr_assert_eq(rg_dispatcher_push(d, &m), 0);
    }
    /* no more events: polling alone must get them stored */
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&s.lock);
        bool stored = s.next[NPART - 1] == 1;
        pthread_mutex_unlock(&s.lock);
        if (stored)
            break;
        cr_assert_eq(rg_dispatcher_poll(d), 0);
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&s.lock);
    for (int p = 0; p < NPART; p++)
        cr_assert_eq(s.next[p], 1, "partition %d not flushed while idle", p);
    pthread_mutex_unlock(&s.lock);
    rg_engine_stop(e);
    cr_assert_eq(rg_dispatcher_poll(d), RG_ESTOPPED);
    rg_engine_destroy(e);
}

Test(flush, bad_setups_are_refused)
{
    rg_conf_t *c = rg_conf_new();
    char err[256];
    rg_conf_set(c, "merge.max.keys", "1000", err, sizeof(err));
    struct proc pr;
    rg_processor_t p = {.unpack = unpack, .batch_do = batch_do, .opaque = &pr};
    rg_engine_t *e = rg_engine_new(c, &p, err, sizeof(err));
    cr_assert_not_null(e);
    static struct msink s;
    msink_init(&s);
    rg_sink_t sk = msink_iface(&s);
    cr_assert_eq(rg_engine_set_sink(e, &sk, err, sizeof(err)), RG_ERANGE);
    cr_assert(strstr(err, "merge.max.keys") != NULL, "%s", err);
    rg_sink_t none = {0};
    cr_assert_eq(rg_engine_set_sink(e, &none, err, sizeof(err)), RG_EINVAL);
    rg_engine_destroy(e);
}

Test(flush, dispatcher_flush_stores_everything_pushed_before_it)
{
    static struct msink s;
    struct proc pr;
    msink_init(&s);
    /* no timed epochs: only the explicit flush can store anything */
    rg_engine_t *e = make_engine(&s, &pr, 2, 2, "flush.interval.ms=3600000");
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    uint32_t k = 3;
    for (int64_t o = 0; o < 100; o++) {
        rg_msg_t m = {0, o, &k, 4, NULL, 0, 0, 0};
        cr_assert_eq(rg_dispatcher_push(d, &m), 0);
    }
    /* dispatcher 1 never pushes: the flusher sends its barrier */
    cr_assert_eq(rg_dispatcher_flush(d, 10000), 0);
    pthread_mutex_lock(&s.lock);
    cr_assert_eq(s.next[0], 100, "flushed, yet partition 0 stores %lld",
                 (long long)s.next[0]);
    cr_assert_eq(s.count[3], 100);
    pthread_mutex_unlock(&s.lock);
    rg_engine_stop(e);
    cr_assert_eq(rg_dispatcher_flush(d, 10), RG_ESTOPPED);
    rg_engine_destroy(e);
}

/* ---- issue 11: byte-string keys and optional sink functions ------------ */

#define BKEYS 300

/* A sink that stores byte-string keys only (no staged table): counts per
 * "key-N" name, and offsets. Every call runs on the flusher. */
struct bsink {
    int64_t count[BKEYS], tx[BKEYS];
    int64_t next, tx_next;
    uint64_t rows, bad_rows, commits;
};

static int bs_begin(void *self, uint64_t epoch, char *e, size_t n)
{
    (void)epoch, (void)e, (void)n;
    struct bsink *s = self;
    memcpy(s->tx, s->count, sizeof(s->tx));
    s->tx_next = s->next;
    return 0;
}

static int bs_merged(void *self, const rg_row_t *rows, size_t n, char *e,
                     size_t sz)
{
    (void)rows, (void)e, (void)sz;
    struct bsink *s = self;
    s->bad_rows += n; /* the processor merges byte keys only */
    return 0;
}

static int bs_bytes(void *self, const rg_bytes_row_t *rows, size_t n,
                    char *e, size_t sz)
{
    (void)e, (void)sz;
    struct bsink *s = self;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        int k = -1;
        if (rows[i].len < sizeof(name)) {
            memcpy(name, rows[i].key, rows[i].len);
            name[rows[i].len] = '\0';
            if (sscanf(name, "key-%d", &k) != 1)
                k = -1;
        }
        if (k < 0 || k >= BKEYS)
            s->bad_rows++;
        else
            s->tx[k] += rows[i].value;
        s->rows++;
    }
    return 0;
}

static int bs_offsets(void *self, const rg_offset_t *o, size_t n, char *e,
                      size_t sz)
{
    (void)e, (void)sz;
    struct bsink *s = self;
    for (size_t i = 0; i < n; i++)
        s->tx_next = o[i].next_offset;
    return 0;
}

static int bs_commit(void *self, char *e, size_t sz)
{
    (void)e, (void)sz;
    struct bsink *s = self;
    memcpy(s->count, s->tx, sizeof(s->count));
    s->next = s->tx_next;
    /* release: the test thread waits for a first commit (atomic builtin:
     * the struct is shared with the other byte-key checks) */
    __atomic_store_n(&s->commits, s->commits + 1, __ATOMIC_RELEASE);
    return 0;
}

static void bs_rollback(void *self)
{
    (void)self;
}

static int bs_lookup(rg_sink_reader_t *r, rg_row_t *rows, size_t n,
                     char *e, size_t sz)
{
    (void)r, (void)rows, (void)n, (void)e, (void)sz;
    return 0;
}

static _Atomic uint64_t stage_refused;

static void bytes_do(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque;
    char name[32];
    int n = snprintf(name, sizeof(name), "key-%u", (unsigned)ev->key);
    rg_delta_t *d = rg_ctx_delta(ctx);
    cr_assert_eq(rg_delta_merge_bytes(d, name, (size_t)n, 1), 0);
    rg_row_t row = {1, 2, 3, 0};
    /* relaxed: a counter read after stop */
    if (rg_delta_stage(d, &row) == RG_EINVAL)
        atomic_fetch_add_explicit(&stage_refused, 1, memory_order_relaxed);
    cr_assert_eq(rg_delta_merge_bytes(d, name, 0, 1), RG_EINVAL);
    cr_assert_eq(rg_delta_merge_bytes(d, name, RG_DELTA_KEY_MAX + 1, 1),
                 RG_EINVAL);
}

static int unpack_mod(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    ev->key = (uint64_t)(m->offset * 7919 % BKEYS);
    return 0;
}

Test(flush, byte_string_keys_are_merged_exactly_and_optional_calls_refused)
{
    static struct bsink s;
    memset(&s, 0, sizeof(s));
    char err[256];
    rg_conf_t *c = rg_conf_new();
    rg_conf_set(c, "workers", "2", err, sizeof(err));
    rg_conf_set(c, "flush.interval.ms", "2", err, sizeof(err));
    rg_processor_t p = {.unpack = unpack_mod, .do_event = bytes_do};
    rg_engine_t *e = rg_engine_new(c, &p, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    /* required functions are named when missing */
    rg_sink_t bad = {.begin = bs_begin, .write_merged = bs_merged,
                     .write_offsets = bs_offsets, .commit = bs_commit,
                     .self = &s};
    cr_assert_eq(rg_engine_set_sink(e, &bad, err, sizeof(err)), RG_EINVAL);
    cr_assert(strstr(err, "rollback"), "%s", err);
    bad.rollback = bs_rollback;
    bad.lookup = bs_lookup; /* without reader_open and reader_close */
    cr_assert_eq(rg_engine_set_sink(e, &bad, err, sizeof(err)), RG_EINVAL);
    cr_assert(strstr(err, "all or none"), "%s", err);
    rg_sink_t sk = {.begin = bs_begin, .write_merged = bs_merged,
                    .write_merged_bytes = bs_bytes,
                    .write_offsets = bs_offsets, .commit = bs_commit,
                    .rollback = bs_rollback, .self = &s};
    cr_assert_eq(rg_engine_set_sink(e, &sk, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_engine_start(e, err, sizeof(err)), 0, "%s", err);
    enum { N = 20000 };
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    int64_t want[BKEYS] = {0};
    for (int64_t o = 0; o < N; o++) {
        rg_msg_t m = {.offset = o};
        cr_assert_eq(rg_dispatcher_push(d, &m), 0);
        want[o * 7919 % BKEYS]++;
        /* half way, until an epoch has committed: so that there are two
         * epochs however fast the pushes run */
        for (int t = 0; o == N / 2 && t < 5000 &&
                        __atomic_load_n(&s.commits, __ATOMIC_ACQUIRE) == 0;
             t++) {
            rg_dispatcher_poll(d);
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    rg_engine_stop(e);
    cr_assert_null(rg_engine_error(e), "%s", rg_engine_error(e));
    cr_assert_eq(s.bad_rows, 0u);
    cr_assert_gt(s.commits, 1u, "more than one epoch");
    cr_assert_eq(s.next, N);
    for (int k = 0; k < BKEYS; k++)
        cr_assert_eq(s.count[k], want[k], "key-%d: %lld, want %lld", k,
                     (long long)s.count[k], (long long)want[k]);
    cr_assert_eq(atomic_load(&stage_refused), (uint64_t)N,
                 "no staged table: every stage refused");
    cr_assert_gt(s.rows, (uint64_t)BKEYS, "merged per epoch, not per event");
    cr_assert_lt(s.rows, (uint64_t)N);
    rg_engine_destroy(e);
}
