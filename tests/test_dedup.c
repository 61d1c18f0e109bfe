/*
 * test_dedup.c - exactly once across redelivery (engine/src/core/dedup.c,
 * the SQL sinks' producer marks, the Kafka source's identity headers)
 * against a real database.
 *
 * A counting processor adds 1 per event to its key, so a copy applied
 * twice shows in the counts. Messages carry (producer_id, seq) as a
 * replayed spool's do (railgun/producer.h): every copy of one is skipped
 * (counted in deduplicated), across a restart (marks loaded from the
 * sink), across SIGKILL at random points (marks and offsets from one
 * transaction), and through the Kafka source reading the headers. The
 * window rule is checked at its edges. Without a marks table a copy
 * counts twice, as documented.
 *
 * The sink comes from the environment like test_likes.c: RG_TEST_SINK=
 * mysql with RG_MYSQL_SOCKET (tests/support/with_mariadb.sh), otherwise
 * SQLite in a temporary file.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "likes_job.h"
#include "support/test_db.h"
#include "railgun/kafka.h"
#include "railgun/railgun.h"
#include "railgun/sinks.h"

#define NPART 4
#define NKEYS 64

/* A configuration for a fresh, empty database named after `tag`. */
static rg_conf_t *db_conf(const char *tag)
{
    rg_conf_t *c = test_db_conf("dedup", tag);
    char err[256];
    rg_conf_set(c, "flush.interval.ms", "10", err, sizeof(err));
    rg_conf_set(c, "workers", "2", err, sizeof(err));
    return c;
}

/* ---- the counting processor: the value is the key (8 bytes) ---------- */

static int unpack(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    if (m->value_len != sizeof(int64_t))
        return RG_EDECODE;
    int64_t k;
    memcpy(&k, m->value, sizeof(k));
    ev->key = (uint64_t)k;
    return 0;
}

static void batch_do(void *opaque, rg_ctx_t *ctx, rg_event_t *evs, size_t n)
{
    (void)opaque;
    rg_delta_t *d = rg_ctx_delta(ctx);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(rg_delta_merge(d, (int64_t)evs[i].key, 1), 0);
}

struct run {
    rg_engine_t *e;
    rg_sink_t sink;
    int64_t next[NPART];
};

static void add_mark(void *arg, const rg_mark_t *m)
{
    struct { rg_mark_t *rows; size_t n; } *b = arg;
    b->rows = realloc(b->rows, sizeof(rg_mark_t) * (b->n + 1));
    cr_assert_not_null(b->rows);
    b->rows[b->n++] = *m;
}

/* Opens the sink, claims the partitions, starts the engine and loads the
 * stored marks: what the Kafka source does at an assignment. */
static void run_start(struct run *r, rg_conf_t *conf, bool marks)
{
    char err[512];
    cr_assert_eq(rg_likes_open_sink(conf, INIT_FLAGS, &r->sink, err,
                                    sizeof(err)), 0, "%s", err);
    cr_assert_eq(r->sink.write_marks != NULL, marks);
    int32_t parts[NPART];
    for (int p = 0; p < NPART; p++)
        parts[p] = p;
    cr_assert_eq(r->sink.claim(r->sink.self, parts, NPART, r->next, err,
                               sizeof(err)), 0, "%s", err);
    rg_processor_t p = {.unpack = unpack, .batch_do = batch_do};
    r->e = rg_engine_new(rg_conf_dup(conf), &p, err, sizeof(err));
    cr_assert_not_null(r->e, "%s", err);
    cr_assert_eq(rg_engine_set_sink(r->e, &r->sink, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(rg_engine_start(r->e, err, sizeof(err)), 0, "%s", err);
    rg_dispatcher_t *d = rg_engine_dispatcher(r->e, 0);
    for (int i = 0; i < NPART; i++) {
        if (r->next[i] < 0)
            r->next[i] = 0;
        cr_assert_eq(rg_dispatcher_reset(d, i, r->next[i]), 0);
    }
    if (!marks) {
        cr_assert_eq(rg_dispatcher_load_marks(d, parts, NPART, NULL, 0),
                     RG_ESTATE);
        return;
    }
    struct { rg_mark_t *rows; size_t n; } b = {NULL, 0};
    cr_assert_eq(r->sink.scan_marks(r->sink.self, parts, NPART, add_mark, &b,
                                    err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_dispatcher_load_marks(d, parts, NPART, b.rows, b.n), 0);
    free(b.rows);
}

static uint64_t run_stop(struct run *r)
{
    rg_engine_stop(r->e);
    cr_assert_null(rg_engine_error(r->e), "%s", rg_engine_error(r->e));
    rg_engine_stats_t st;
    rg_engine_stats(r->e, &st);
    rg_engine_destroy(r->e);
    return st.deduplicated;
}

/* One message: key k, identity (pid, seq), into partition p at its next
 * offset. */
static void push(struct run *r, int32_t p, int64_t k, uint64_t pid,
                 uint64_t seq)
{
    rg_msg_t m = {.partition = p, .offset = r->next[p]++, .value = &k,
                  .value_len = sizeof(k), .producer_id = pid, .seq = seq};
    cr_assert_eq(rg_dispatcher_push(rg_engine_dispatcher(r->e, 0), &m), 0);
}

static void count_row(void *arg, const rg_row_t *row)
{
    int64_t *c = arg;
    cr_assert(row->key >= 0 && row->key < NKEYS, "key %lld",
              (long long)row->key);
    c[row->key] = row->value;
}

static void read_counts(const rg_conf_t *conf, int64_t *c)
{
    char err[512];
    rg_sink_t s;
    cr_assert_eq(rg_likes_open_sink(conf, 0, &s, err, sizeof(err)), 0, "%s",
                 err);
    memset(c, 0, sizeof(int64_t) * NKEYS);
    cr_assert_eq(s.scan(s.self, RG_SINK_MERGED, count_row, c, err,
                        sizeof(err)), 0, "%s", err);
    s.close(s.self);
}

static void assert_counts(const rg_conf_t *conf, const int64_t *want)
{
    int64_t got[NKEYS];
    read_counts(conf, got);
    for (int k = 0; k < NKEYS; k++)
        cr_assert_eq(got[k], want[k], "key %d: %lld in the sink, %lld sent "
                     "once", k, (long long)got[k], (long long)want[k]);
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The key and partition of producer A's seq s: a producer's messages of
 * one key go to one partition, as the partitioner sends them. */
static int64_t key_of(uint64_t s) { return (int64_t)(s * 7 % NKEYS); }
static int32_t part_of(uint64_t s) { return (int32_t)(key_of(s) % NPART); }

#define PID_A 0xa1a1a1a1a1a1a1a1ull
#define PID_B 0x0000000000000b0bull

Test(dedup, copies_apply_once_and_the_marks_survive_a_restart)
{
    rg_conf_t *conf = db_conf("restart");
    struct run r;
    run_start(&r, conf, true);
    enum { N = 20000 };
    int64_t want[NKEYS] = {0};
    uint64_t x = 42, copies = 0;
    for (uint64_t s = 0; s < N; s++) {
        push(&r, part_of(s), key_of(s), PID_A, s);
        want[key_of(s)]++;
        if (s % 500 == 499) {
            /* a replay's copies: the last 400, in a scrambled order (a
             * partition keeps its own order, but which partition comes
             * first does not matter), and a few from far behind */
            for (int i = 0; i < 400; i++) {
                uint64_t c = s - rng(&x) % 400;
                push(&r, part_of(c), key_of(c), PID_A, c);
                copies++;
            }
            for (int i = 0; i < 10; i++) {
                uint64_t c = rng(&x) % (s + 1);
                push(&r, part_of(c), key_of(c), PID_A, c);
                copies++;
            }
        }
    }
    /* another producer with the same seqs is another identity */
    for (uint64_t s = 0; s < 1000; s++) {
        push(&r, part_of(s), key_of(s), PID_B, s);
        want[key_of(s)]++;
    }
    /* no identity: applied as it comes, twice if sent twice */
    for (int i = 0; i < 500; i++) {
        push(&r, i % NPART, i % NKEYS, 0, 7);
        push(&r, i % NPART, i % NKEYS, 0, 7);
        want[i % NKEYS] += 2;
    }
    cr_assert_eq(run_stop(&r), copies);
    assert_counts(conf, want);

    /* a restarted job: the marks come back from the sink. Every one of
     * A's and B's messages again (a producer replaying its whole spool),
     * then new ones */
    run_start(&r, conf, true);
    for (uint64_t s = 0; s < N; s++)
        push(&r, part_of(s), key_of(s), PID_A, s);
    for (uint64_t s = 0; s < 1000; s++)
        push(&r, part_of(s), key_of(s), PID_B, s);
    for (uint64_t s = N; s < N + 3000; s++) {
        push(&r, part_of(s), key_of(s), PID_A, s);
        want[key_of(s)]++;
    }
    cr_assert_eq(run_stop(&r), (uint64_t)N + 1000);
    assert_counts(conf, want);
    rg_conf_destroy(conf);
}

Test(dedup, the_window_edges)
{
    rg_conf_t *conf = db_conf("window");
    struct run r;
    run_start(&r, conf, true);
    const uint64_t W = RG_MARK_WINDOW, h = 3 * W;
    struct { uint64_t seq; bool applied; } steps[] = {
        {h, true},
        {h - (W - 1), true},  /* the window's lowest seq: new */
        {h - (W - 1), false}, /* ... once */
        {h - W, false},       /* below the window: a copy by rule */
        {h - 1, true},
        {h - 1, false},
        {h, false},
        {h + 5, true},        /* above: new, h+1 .. h+4 still open */
        {h + 3, true},
        {h + 3, false},
        {h + 2 * W, true},    /* a jump past the window clears it */
        {h + 5, false},       /* now far below */
        {h + 2 * W - 1, true},
        {h + 2 * W - (W - 1), true},
    };
    int64_t want[NKEYS] = {0};
    uint64_t dups = 0;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        push(&r, 1, 5, PID_A, steps[i].seq);
        if (steps[i].applied)
            want[5]++;
        else
            dups++;
        /* the same seq in another partition is another mark */
        push(&r, 2, 6, PID_A, steps[i].seq);
        if (steps[i].applied)
            want[6]++;
        else
            dups++;
    }
    cr_assert_eq(run_stop(&r), dups);
    assert_counts(conf, want);
    /* the same steps after a restart: every one is a copy now */
    run_start(&r, conf, true);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        push(&r, 1, 5, PID_A, steps[i].seq);
    cr_assert_eq(run_stop(&r), sizeof(steps) / sizeof(steps[0]));
    assert_counts(conf, want);
    rg_conf_destroy(conf);
}

Test(dedup, more_producers_than_the_bound_in_one_epoch)
{
    /* 40 producers changed in one epoch with dedup.producers.max 16: the
     * dirty marks may not be dropped, so the table grows past the bound
     * until the barrier; later, new producers evict clean ones */
    rg_conf_t *conf = db_conf("bound");
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "dedup.producers.max", "16", err,
                             sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_set(conf, "flush.interval.ms", "60000", err,
                             sizeof(err)), 0, "%s", err);
    struct run r;
    run_start(&r, conf, true);
    int64_t want[NKEYS] = {0};
    uint64_t dups = 0;
    for (uint64_t pid = 1; pid <= 40; pid++)
        for (uint64_t s = 0; s < 3; s++) {
            push(&r, part_of(s), key_of(s), pid, s);
            want[key_of(s)]++;
            push(&r, part_of(s), key_of(s), pid, s); /* its copy */
            dups++;
        }
    rg_engine_stats_t st;
    rg_engine_stats(r.e, &st);
    cr_assert_eq(st.marks_evicted, 0u, "a dirty mark was evicted");
    cr_assert_eq(run_stop(&r), dups);
    assert_counts(conf, want);
    /* every one of the 120 marks (40 producers x 3 partitions) reached
     * the sink: a restart with room for them skips every copy */
    cr_assert_eq(rg_conf_set(conf, "dedup.producers.max", "4096", err,
                             sizeof(err)), 0, "%s", err);
    run_start(&r, conf, true);
    for (uint64_t pid = 1; pid <= 40; pid++)
        for (uint64_t s = 0; s < 3; s++)
            push(&r, part_of(s), key_of(s), pid, s);
    cr_assert_eq(run_stop(&r), 120u);
    assert_counts(conf, want);
    rg_conf_destroy(conf);
}

/* The stream the crash test replays: message i of the stream, as a
 * broker would redeliver it (same partition, same offset, same bytes):
 * originals of A with copies of recent ones mixed in. */
#define CRASH_N 60000
static bool crash_is_copy(uint64_t i) { return i % 4 == 3; }

static void crash_msg(uint64_t i, uint64_t *seq)
{
    /* the originals before message i have seqs 0 .. before - 1; every
     * 4th message is a copy of one of the last 200 of them */
    uint64_t before = i - i / 4;
    if (crash_is_copy(i))
        *seq = before - 1 - (i * 2654435761u) % (before < 200 ? before : 200);
    else
        *seq = before;
}

static void crash_feed(struct run *r, const int64_t *start)
{
    /* regenerate the stream; push only what lies at or past the stored
     * offsets (what a consumer resuming there reads) */
    int64_t off[NPART] = {0};
    for (uint64_t i = 0; i < CRASH_N; i++) {
        uint64_t s;
        crash_msg(i, &s);
        int32_t p = part_of(s);
        int64_t o = off[p]++;
        if (o < start[p])
            continue;
        cr_assert_eq(r->next[p], o);
        push(r, p, key_of(s), PID_A, s);
        if (i % 500 == 499) /* a stream of ~600 ms: the kills land in it */
            usleep(5000);
    }
}

Test(dedup, killed_at_random_points_exact_after_redelivery)
{
    int64_t want[NKEYS] = {0};
    for (uint64_t i = 0; i < CRASH_N; i++) {
        uint64_t s;
        crash_msg(i, &s);
        if (!crash_is_copy(i))
            want[key_of(s)]++;
    }
    int killed = 0;
    for (int round = 0; round < 3; round++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "crash%d", round);
        rg_conf_t *conf = db_conf(tag);
        /* each round: a child runs the stream and is killed part way;
         * the next child resumes from what it stored, and is killed too */
        for (int kill_i = 0; kill_i < 3; kill_i++) {
            fflush(NULL);
            pid_t pid = fork();
            cr_assert_neq(pid, -1);
            if (pid == 0) {
                struct run r;
                run_start(&r, conf, true);
                int64_t start[NPART];
                memcpy(start, r.next, sizeof(start));
                crash_feed(&r, start);
                rg_engine_stop(r.e);
                _exit(0);
            }
            struct timespec ts = {0, (long)(50 + 70 * kill_i + 30 * round) *
                                     1000000};
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
            int st;
            waitpid(pid, &st, 0);
            killed += WIFSIGNALED(st);
        }
        struct run r;
        run_start(&r, conf, true);
        int64_t start[NPART];
        memcpy(start, r.next, sizeof(start));
        crash_feed(&r, start);
        run_stop(&r);
        assert_counts(conf, want);
        rg_conf_destroy(conf);
    }
    /* the kills must land inside the streams, not after them */
    cr_assert_geq(killed, 6, "only %d of 9 children were killed mid-run",
                  killed);
}

Test(dedup, without_a_marks_table_a_copy_counts_twice)
{
    rg_conf_t *conf = db_conf("nomarks");
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "sink.table.producers", "", err,
                             sizeof(err)), 0, "%s", err);
    struct run r;
    run_start(&r, conf, false);
    int64_t want[NKEYS] = {0};
    for (uint64_t s = 0; s < 100; s++) {
        push(&r, part_of(s), key_of(s), PID_A, s);
        push(&r, part_of(s), key_of(s), PID_A, s);
        want[key_of(s)] += 2;
    }
    cr_assert_eq(run_stop(&r), 0u);
    assert_counts(conf, want);
    rg_conf_destroy(conf);
}

/* ---- through the Kafka source: the headers a replayed spool sets ----- */

struct kafka_run {
    rg_kafka_source_t *src;
    pthread_t th;
    int rc;
};

static void *source_main(void *arg)
{
    struct kafka_run *k = arg;
    k->rc = rg_kafka_source_run(k->src);
    return NULL;
}

static void produce_with_id(rd_kafka_t *p, uint64_t s, const char *id)
{
    int64_t k = key_of(s);
    char key[8], seq[24];
    snprintf(key, sizeof(key), "%d", (int)k);
    int sl = snprintf(seq, sizeof(seq), "%" PRIu64, s);
    rd_kafka_resp_err_t err;
    if (id != NULL)
        err = rd_kafka_producev(
            p, RD_KAFKA_V_TOPIC("dd"), RD_KAFKA_V_PARTITION(part_of(s)),
            RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(&k, sizeof(k)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("rg-producer-id", id, (ssize_t)strlen(id)),
            RD_KAFKA_V_HEADER("rg-seq", seq, sl), RD_KAFKA_V_END);
    else
        err = rd_kafka_producev(
            p, RD_KAFKA_V_TOPIC("dd"), RD_KAFKA_V_PARTITION(part_of(s)),
            RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(&k, sizeof(k)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    cr_assert_eq(err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", rd_kafka_err2str(err));
}

Test(dedup, the_kafka_source_reads_the_identity_headers)
{
    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    cr_assert_not_null(mrk, "%s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mrk, 1);
    cr_assert_not_null(mc);
    cr_assert_eq(rd_kafka_mock_topic_create(mc, "dd", NPART, 1), 0);
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);

    kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", bs, err, sizeof(err));
    rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    int64_t want[NKEYS] = {0};
    enum { N = 5000 };
    uint64_t copies = 0;
    for (uint64_t s = 0; s < N; s++) {
        produce_with_id(p, s, "00000000000000a1");
        want[key_of(s)]++;
        if (s % 100 == 99) /* a replay that went out twice */
            for (uint64_t c = s - 99; c <= s; c += 3) {
                produce_with_id(p, c, "00000000000000a1");
                copies++;
            }
    }
    /* without headers, and with malformed ones: applied as they come */
    for (uint64_t s = 0; s < 50; s++) {
        produce_with_id(p, s, NULL);
        produce_with_id(p, s, "not-hex-at-all!!");
        want[key_of(s)] += 2;
    }
    cr_assert_eq(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);

    rg_conf_t *conf = db_conf("kafka");
    const char *kv[][2] = {
        {"kafka.bootstrap.servers", bs}, {"topic", "dd"},
        {"kafka.auto.offset.reset", "earliest"}, {"kafka.log_level", "0"},
        {"kafka.session.timeout.ms", "6000"}, {"source.identity", "true"},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        cr_assert_eq(rg_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)),
                     0, "%s", err);
    for (int round = 0; round < 2; round++) {
        struct run r;
        cr_assert_eq(rg_likes_open_sink(conf, INIT_FLAGS, &r.sink, err,
                                        sizeof(err)), 0, "%s", err);
        rg_processor_t pr = {.unpack = unpack, .batch_do = batch_do};
        r.e = rg_engine_new(rg_conf_dup(conf), &pr, err, sizeof(err));
        cr_assert_not_null(r.e, "%s", err);
        cr_assert_eq(rg_engine_set_sink(r.e, &r.sink, err, sizeof(err)), 0,
                     "%s", err);
        struct kafka_run k;
        k.src = rg_kafka_source_new(r.e, 0, conf, &r.sink, err, sizeof(err));
        cr_assert_not_null(k.src, "%s", err);
        cr_assert_eq(rg_engine_start(r.e, err, sizeof(err)), 0, "%s", err);
        pthread_create(&k.th, NULL, source_main, &k);
        uint64_t total = N + copies + 100;
        rg_engine_stats_t st;
        for (int i = 0; i < 3000; i++) {
            rg_engine_stats(r.e, &st);
            if (round == 1 || st.accepted + st.deduplicated >= total)
                break;
            usleep(10000);
        }
        if (round == 1)
            usleep(500000); /* a second run must find nothing to do */
        rg_kafka_source_stop(k.src);
        pthread_join(k.th, NULL);
        cr_assert_eq(k.rc, 0, "%s", rg_kafka_source_error(k.src));
        rg_kafka_source_close(k.src);
        rg_engine_stop(r.e);
        rg_kafka_source_destroy(k.src);
        rg_engine_stats(r.e, &st);
        if (round == 0) {
            cr_assert_eq(st.deduplicated, copies, "%llu of %llu copies "
                         "skipped", (unsigned long long)st.deduplicated,
                         (unsigned long long)copies);
            cr_assert_eq(st.accepted, N + 100u);
        } else {
            cr_assert_eq(st.accepted + st.deduplicated, 0u);
        }
        rg_engine_destroy(r.e);
        assert_counts(conf, want);
    }
    rg_conf_destroy(conf);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
}
