/*
 * source.c - the Kafka ingest adapter (railgun/kafka.h): a high-level
 * consumer whose poll loop is an engine dispatcher.
 *
 * Invariants
 *   - Offsets reach Kafka only through the engine's commit callback (what
 *     the sink stored), and synchronously on revoke after
 *     rg_dispatcher_flush(): the group's committed offset never passes an
 *     event that is not stored.
 *   - On assign the sink's stored offsets win over the group's: the sink
 *     is the truth, Kafka's offsets are a hint.
 *   - The commit callback (committer thread) uses rk only while `alive`,
 *     under `lock`; destroy clears it before the handle goes away.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/error.h"
#include "railgun/flush.h"
#include "railgun/kafka.h"
#include "railgun/retry.h"
#include "kafka_int.h"
#include "../../common/util.h"

/* Messages one push_burst() carries. */
#define BURST 256
/* Our default for librdkafka's queued.min.messages (see source_new). */
#define KAFKA_QUEUED_MIN "1000000"
/* How long an assign may wait for the group's committed offsets, and for
 * the partitions' watermarks all together (the start-position log, the
 * check that the log did not go backwards). */
#define QUERY_TIMEOUT_MS 5000
/* A warning that keeps being true is repeated this many times slower. */
#define WARN_REPEAT 3
/* closing: after the revoke (whose flush may use all of
 * shutdown.timeout.ms) leaving the group takes one round trip; this long
 * more is allowed for it, and as long again for librdkafka to stop */
#define CLOSE_GRACE_MS 1000
/* how long a claim failing retriably (a deadlock with another member's
 * claim, a database away for a moment) is retried on assign */
#define CLAIM_RETRY_MS 30000

struct rg_kafka_source_s {
    rg_engine_t *e;
    rg_dispatcher_t *d;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q; /* the consumer queue, batch-consumed by run() */
    rg_conf_t *conf;            /* ours: the Kafka table added; the log */
    char *topic;
    char reset[16];             /* auto.offset.reset in effect */
    rg_sink_t sink;
    bool has_sink;
    bool dedup;                 /* source.identity, and the sink keeps
                                   producer marks: messages with
                                   rg-producer-id / rg-seq headers are
                                   applied once (railgun/engine.h) */
    bool warned_id;             /* a malformed identity header, logged */
    _Atomic int stop;
    int failed;
    char errmsg[512];
    pthread_mutex_t lock;       /* alive and held, for the commit cb */
    bool alive;
    bool closed;
    bool *held;                 /* [max partitions]: assigned to us now */
    int32_t max_partitions;
    _Atomic uint64_t consumed, errors, assigned, revoked, commits,
        commit_errors, pauses, resumes;
    _Atomic uint32_t npart;
    _Atomic uint32_t paused;    /* our partitions are paused (poll loop) */
    int pause_after_ms;         /* source.pause.after.ms */
    int64_t warn_after_ns;      /* source.warn.after.ms */
    int64_t shutdown_ms;        /* shutdown.timeout.ms (0: for ever) */
    int64_t revoked_ns;         /* when the last revoke returned */
    char *reset_offsets;        /* source.reset.offsets: "", "all", list */
    int64_t *expect;            /* [max partitions]: the next offset the
                                   poll loop may see, -1 unknown (poll
                                   thread and the rebalance callback, which
                                   runs on it) */
    /* trouble, from librdkafka's threads (error and log callbacks) */
    _Atomic int64_t down_since;   /* all brokers down since (ns), or 0 */
    _Atomic int64_t nopart_since; /* assigned nothing since (ns), or 0 */
    _Atomic uint64_t log_lines;
    pthread_mutex_t err_lock;
    char last_err[256];
    int64_t last_err_ns;        /* when an error line was last logged */
    uint64_t errs_unlogged;     /* errors since then */
    int64_t down_warned, nopart_warned; /* poll thread: last warning */
};

static void fail(rg_kafka_source_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail(rg_kafka_source_t *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
    s->failed = 1;
    /* relaxed: run() checks it on the same thread, or soon after */
    atomic_store_explicit(&s->stop, 1, memory_order_relaxed);
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: a counter */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* A librdkafka error (from the error callback, on its threads, or handed
 * to the poll loop as a message): counted, logged with the reason at most
 * every source.warn.after.ms with the count since, and "all brokers
 * down" tracked so the poll loop can say for how long. */
static void note_error(rg_kafka_source_t *s, int err, const char *reason)
{
    count(&s->errors, 1);
    int64_t now = rg__now_ns();
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        int64_t zero = 0;
        /* relaxed: a timestamp for warnings and stats */
        atomic_compare_exchange_strong_explicit(&s->down_since, &zero, now,
                                                memory_order_relaxed,
                                                memory_order_relaxed);
    }
    pthread_mutex_lock(&s->err_lock);
    snprintf(s->last_err, sizeof(s->last_err), "%s: %s",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    s->errs_unlogged++;
    bool log = s->last_err_ns == 0 || now - s->last_err_ns >= s->warn_after_ns;
    uint64_t n = s->errs_unlogged;
    if (log) {
        s->last_err_ns = now;
        s->errs_unlogged = 0;
    }
    pthread_mutex_unlock(&s->err_lock);
    if (log)
        rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "%s: %s (%llu error%s "
                    "since the last line)",
                    rd_kafka_err2name((rd_kafka_resp_err_t)err), reason,
                    (unsigned long long)n, n == 1 ? "" : "s");
}

static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque)
{
    (void)rk;
    note_error(opaque, err, reason);
}

/* librdkafka's own log lines (its threads), warnings and worse only. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    rg_kafka_source_t *s = rd_kafka_opaque(rk);
    if (s == NULL || level > 4)
        return;
    count(&s->log_lines, 1);
    rg_conf_log(s->conf, level <= 3 ? RG_LOG_ERR : RG_LOG_WARN, "kafka",
                "librdkafka %s: %s", fac, buf);
}

/* Brokers answer again: the outage is over. */
static void brokers_up(rg_kafka_source_t *s)
{
    /* relaxed: see on_error() */
    int64_t since = atomic_exchange_explicit(&s->down_since, 0,
                                             memory_order_relaxed);
    if (since != 0 && s->down_warned != 0)
        rg_conf_log(s->conf, RG_LOG_INFO, "kafka", "brokers reachable again "
                    "after %.1f s", (double)(rg__now_ns() - since) / 1e9);
    s->down_warned = 0;
}

/*
 * librdkafka's statistics (the poll thread: served from the consumer
 * queue): counts the brokers (those the client was configured with or
 * learned, not its internal one) and those in state UP. This is what
 * names a dead cluster when ALL_BROKERS_DOWN never comes: librdkafka
 * raises it only when every broker object it knows is down, and a
 * broker object that never tried to connect (sparse connections) keeps
 * that count short, under load about one time in two in loud_test.
 */
static void count_brokers(const char *json, int *all, int *up)
{
    *all = *up = 0;
    const char *b = strstr(json, "\"brokers\":{");
    const char *t = b ? strstr(b, "\"topics\":") : NULL;
    for (const char *p = b; p != NULL;) {
        p = strstr(p, "\"source\":\"");
        if (p == NULL || (t != NULL && p > t))
            break;
        p += strlen("\"source\":\"");
        bool internal = strncmp(p, "internal\"", 9) == 0;
        const char *st = strstr(p, "\"state\":\"");
        if (st == NULL || (t != NULL && st > t))
            break;
        st += strlen("\"state\":\"");
        if (!internal) {
            (*all)++;
            *up += strncmp(st, "UP\"", 3) == 0;
        }
        p = st;
    }
}

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    (void)len;
    rg_kafka_source_t *s = opaque;
    int all, up;
    count_brokers(json, &all, &up);
    if (all > 0 && up == 0) {
        int64_t zero = 0;
        /* relaxed: a timestamp for warnings and stats */
        if (atomic_compare_exchange_strong_explicit(
                &s->down_since, &zero, rg__now_ns(), memory_order_relaxed,
                memory_order_relaxed)) {
            pthread_mutex_lock(&s->err_lock);
            if (s->last_err[0] == '\0')
                snprintf(s->last_err, sizeof(s->last_err), "none of %d "
                         "brokers is up", all);
            pthread_mutex_unlock(&s->err_lock);
        }
    } else if (up > 0) {
        brokers_up(s);
    }
    return 0; /* librdkafka frees json */
}

/* Poll loop, about once a second: what has been wrong for long. */
static void warn_if_stuck(rg_kafka_source_t *s, int64_t now)
{
    /* relaxed: timestamps written by callbacks and this thread */
    int64_t down = atomic_load_explicit(&s->down_since, memory_order_relaxed);
    if (down != 0 && now - down >= s->warn_after_ns &&
        (s->down_warned == 0 ||
         now - s->down_warned >= WARN_REPEAT * s->warn_after_ns)) {
        char why[256];
        pthread_mutex_lock(&s->err_lock);
        snprintf(why, sizeof(why), "%s", s->last_err);
        pthread_mutex_unlock(&s->err_lock);
        rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "all brokers down for "
                    "%.0f s (%s): nothing is consumed; railgun keeps "
                    "retrying", (double)(now - down) / 1e9, why);
        s->down_warned = now;
    }
    uint32_t np = atomic_load_explicit(&s->npart, memory_order_relaxed);
    int64_t nop = atomic_load_explicit(&s->nopart_since,
                                       memory_order_relaxed);
    if (np > 0) {
        if (nop != 0)
            atomic_store_explicit(&s->nopart_since, 0, memory_order_relaxed);
        s->nopart_warned = 0;
    } else if (nop == 0) {
        atomic_store_explicit(&s->nopart_since, now, memory_order_relaxed);
    } else if (now - nop >= s->warn_after_ns &&
               (s->nopart_warned == 0 ||
                now - s->nopart_warned >= WARN_REPEAT * s->warn_after_ns)) {
        rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "no partitions of %s "
                    "assigned for %.0f s: the group has more consumers than "
                    "partitions, the topic does not exist, or the group "
                    "coordinator cannot be reached", s->topic,
                    (double)(now - nop) / 1e9);
        s->nopart_warned = now;
    }
}

/* Whether source.reset.offsets accepts a reset of partition p. */
static bool reset_accepted(const rg_kafka_source_t *s, int32_t p)
{
    const char *r = s->reset_offsets;
    if (strcmp(r, "all") == 0)
        return true;
    while (*r) {
        char *end;
        long v = strtol(r, &end, 10);
        if (end == r)
            return false;
        if (v == p)
            return true;
        r = *end == ',' ? end + 1 : end;
    }
    return false;
}

/* Stores `next` as partition p's position in its own transaction: an
 * accepted reset (the sink is idle in a rebalance callback). */
static int store_reset(rg_kafka_source_t *s, int32_t p, int64_t next,
                       char *err, size_t size)
{
    rg_offset_t o = {p, next};
    int rc = s->sink.begin(s->sink.self, 0, err, size);
    if (rc == 0)
        rc = s->sink.write_offsets(s->sink.self, &o, 1, err, size);
    if (rc == RG_EEXIST)
        rc = 0; /* already there */
    if (rc == 0)
        rc = s->sink.commit(s->sink.self, err, size);
    if (rc != 0)
        s->sink.rollback(s->sink.self);
    return rc;
}

/* Engine commit callback (committer thread): stored offsets -> Kafka. */
static void on_commit(void *opaque, const rg_commit_t *c, size_t n)
{
    rg_kafka_source_t *s = opaque;
    pthread_mutex_lock(&s->lock);
    if (s->alive) {
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
            if (c[i].partition < s->max_partitions && s->held[c[i].partition])
                rd_kafka_topic_partition_list_add(l, s->topic,
                                                  c[i].partition)
                    ->offset = c[i].offset;
        if (l->cnt > 0) {
            rd_kafka_resp_err_t err = rd_kafka_commit(s->rk, l, 1);
            count(err ? &s->commit_errors : &s->commits, 1);
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    pthread_mutex_unlock(&s->lock);
}

static void set_held(rg_kafka_source_t *s,
                     const rd_kafka_topic_partition_list_t *parts, bool on)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p >= 0 && p < s->max_partitions && s->held[p] != on) {
            s->held[p] = on;
            /* relaxed: a gauge */
            atomic_fetch_add_explicit(&s->npart, on ? 1u : (uint32_t)-1,
                                      memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

/*
 * Backpressure: the engine held a push past source.pause.after.ms. Pause
 * every assigned partition, so librdkafka stops fetching and drops what it
 * has queued, then seek each partition of the messages not taken
 * (rest[0..n), in offset order per partition) back to the first of them:
 * on resume they are fetched again, none lost, none twice. Poll loop only.
 */
static void pause_and_rewind(rg_kafka_source_t *s, const rg_msg_t *rest,
                             size_t n)
{
    rd_kafka_topic_partition_list_t *a = NULL, *back = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(s->rk, &a);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = rd_kafka_pause_partitions(s->rk, a);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fail(s, "kafka: pause: %s", rd_kafka_err2str(e));
        goto out;
    }
    /* relaxed: a gauge and counters */
    if (!atomic_exchange_explicit(&s->paused, 1, memory_order_relaxed))
        count(&s->pauses, 1);
    back = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
    for (size_t i = 0; i < n; i++)
        if (rd_kafka_topic_partition_list_find(back, s->topic,
                                               rest[i].partition) == NULL) {
            rd_kafka_topic_partition_list_add(back, s->topic,
                                              rest[i].partition)
                ->offset = rest[i].offset;
            /* fetched again from here */
            if (rest[i].partition >= 0 &&
                rest[i].partition < s->max_partitions)
                s->expect[rest[i].partition] = rest[i].offset;
        }
    if (back->cnt > 0) {
        rd_kafka_error_t *err = rd_kafka_seek_partitions(s->rk, back, 10000);
        if (err != NULL) {
            fail(s, "kafka: seek back after pause: %s",
                 rd_kafka_error_string(err));
            rd_kafka_error_destroy(err);
            goto out;
        }
        for (int i = 0; i < back->cnt; i++)
            if (back->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                fail(s, "kafka: seek partition %d back to %lld after pause: "
                     "%s", (int)back->elems[i].partition,
                     (long long)back->elems[i].offset,
                     rd_kafka_err2str(back->elems[i].err));
                goto out;
            }
    }
out:
    if (a != NULL)
        rd_kafka_topic_partition_list_destroy(a);
    if (back != NULL)
        rd_kafka_topic_partition_list_destroy(back);
}

/*
 * Resumes what pause_and_rewind() paused (the whole assignment), then
 * seeks every partition that has a position to that position. The seek
 * moves nothing; it is there because librdkafka 2.0.2 does not wake the
 * broker thread on resume: a resumed partition stays off the fetch list
 * until the thread's next periodic pass, up to about a second later. A
 * seek starts a fetch at once (measured with tests/test_kafka_batch.c's
 * harness: 7 ms instead of 149 ms on average from resume to the first
 * message).
 */
static void resume(rg_kafka_source_t *s)
{
    /* relaxed: a gauge; only the poll thread changes it */
    if (!atomic_load_explicit(&s->paused, memory_order_relaxed))
        return;
    rd_kafka_topic_partition_list_t *a = NULL, *at = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(s->rk, &a);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = rd_kafka_resume_partitions(s->rk, a);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = rd_kafka_position(s->rk, a);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        at = rd_kafka_topic_partition_list_new(a->cnt > 0 ? a->cnt : 1);
        for (int i = 0; i < a->cnt; i++)
            if (a->elems[i].offset >= 0) /* fetched from before */
                rd_kafka_topic_partition_list_add(at, a->elems[i].topic,
                                                  a->elems[i].partition)
                    ->offset = a->elems[i].offset;
        if (at->cnt > 0) {
            rd_kafka_error_t *err = rd_kafka_seek_partitions(s->rk, at,
                                                             10000);
            if (err != NULL) {
                /* only a wake-up (nothing moves): the partitions are
                 * resumed and fetch at the next pass anyway */
                rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "seek to the "
                            "position after resume: %s (fetching resumes "
                            "within a second)", rd_kafka_error_string(err));
                rd_kafka_error_destroy(err);
            }
        }
    }
    if (a != NULL)
        rd_kafka_topic_partition_list_destroy(a);
    if (at != NULL)
        rd_kafka_topic_partition_list_destroy(at);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fail(s, "kafka: resume: %s", rd_kafka_err2str(e));
        return;
    }
    atomic_store_explicit(&s->paused, 0, memory_order_relaxed);
    count(&s->resumes, 1);
}

struct marks_buf {
    rg_mark_t *rows;
    size_t n, cap;
    bool nomem;
};

static void mark_row(void *arg, const rg_mark_t *m)
{
    struct marks_buf *b = arg;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        rg_mark_t *r = realloc(b->rows, sizeof(*r) * cap);
        if (r == NULL) {
            b->nomem = true;
            return;
        }
        b->rows = r;
        b->cap = cap;
    }
    b->rows[b->n++] = *m;
}

/* The stored producer marks of the assigned partitions into the
 * dispatcher (after claim: they match the offsets it returned). */
static int load_marks(rg_kafka_source_t *s, const int32_t *ps, size_t n,
                      char *err, size_t errsz)
{
    struct marks_buf b = {0};
    int rc = s->sink.scan_marks(s->sink.self, ps, n, mark_row, &b, err,
                                errsz);
    if (rc == 0 && b.nomem) {
        snprintf(err, errsz, "out of memory");
        rc = RG_ENOMEM;
    }
    if (rc == 0 &&
        (rc = rg_dispatcher_load_marks(s->d, ps, n, b.rows, b.n)) != 0 &&
        rc != RG_ESTOPPED)
        snprintf(err, errsz, "%s", rg_strerror(rc));
    if (rc == 0 && b.n > 0)
        rg_conf_log(s->conf, RG_LOG_INFO, "kafka", "%s: %zu producer marks "
                    "loaded for %zu partitions (exactly once across "
                    "replays)", s->topic, b.n, n);
    free(b.rows);
    return rc == RG_ESTOPPED ? 0 : rc;
}

/* The message's identity from its headers rg-producer-id (16 hex digits)
 * and rg-seq (decimal), which the producer's spool replay sets. false:
 * none (or malformed: logged once, the message is applied as it comes). */
static bool message_identity(rg_kafka_source_t *s, rd_kafka_message_t *m,
                             uint64_t *pid, uint64_t *seq)
{
    rd_kafka_headers_t *h;
    const void *v, *w;
    size_t vs, ws;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "rg-producer-id", &v, &vs) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "rg-seq", &w, &ws) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    uint64_t id = 0, sq = 0;
    bool ok = vs == 16 && ws >= 1 && ws <= 20;
    for (size_t i = 0; ok && i < vs; i++) {
        char c = ((const char *)v)[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        ok = d >= 0;
        id = id << 4 | (uint64_t)(d & 15);
    }
    for (size_t i = 0; ok && i < ws; i++) {
        char c = ((const char *)w)[i];
        ok = c >= '0' && c <= '9' && sq <= (UINT64_MAX - 9) / 10;
        sq = sq * 10 + (uint64_t)(c - '0');
    }
    if (!ok || id == 0) {
        if (!s->warned_id) {
            s->warned_id = true;
            rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "%s [%d] offset "
                        "%lld: malformed rg-producer-id / rg-seq headers: "
                        "applied without the exactly-once check; logged "
                        "once", s->topic, (int)m->partition,
                        (long long)m->offset);
        }
        return false;
    }
    *pid = id;
    *seq = sq;
    return true;
}

static void on_assign(rg_kafka_source_t *s, rd_kafka_t *rk,
                      rd_kafka_topic_partition_list_t *parts)
{
    int n = parts->cnt;
    int32_t *ps = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    int64_t *next = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    char err[512] = "";
    if (ps == NULL || next == NULL) {
        fail(s, "kafka: out of memory on assign");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        ps[i] = parts->elems[i].partition;
        next[i] = -1;
        if (ps[i] >= s->max_partitions) {
            fail(s, "kafka: partition %d of %s is past ack.max.partitions",
                 (int)ps[i], s->topic);
            goto out;
        }
    }
    /* claim: fences the previous owner, and the sink's offsets win. Two
     * members claiming at once may deadlock in the database (MariaDB's
     * answer: restart the transaction), and a database may be away for a
     * moment: retriable errors are retried for up to CLAIM_RETRY_MS */
    if (s->has_sink) {
        int64_t until = rg__now_ns() + (int64_t)CLAIM_RETRY_MS * 1000000;
        unsigned nap_ms = 20, tries = 0;
        int rc;
        while ((rc = s->sink.claim(s->sink.self, ps, (size_t)n, next, err,
                                   sizeof(err))) != 0 &&
               rg_err_is_retriable(rc) && rg__now_ns() < until &&
               /* relaxed: a flag */
               !atomic_load_explicit(&s->stop, memory_order_relaxed)) {
            if (tries++ % 10 == 0)
                rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "assign: claim "
                            "failed, retrying: %s", err);
            struct timespec ts = {0, (long)nap_ms * 1000000};
            nanosleep(&ts, NULL);
            nap_ms = nap_ms * 2 > 1000 ? 1000 : nap_ms * 2;
        }
        if (rc != 0) {
            fail(s, "kafka: assign: %s", err);
            goto out;
        }
    }
    /* where the group stands, for what the sink does not store */
    rd_kafka_topic_partition_list_t *committed =
        rd_kafka_topic_partition_list_copy(parts);
    for (int i = 0; i < n; i++)
        committed->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    /* one budget for every query of this callback: a slow or gone
     * broker must not hold the rebalance for a query per partition */
    int64_t qend = rg__now_ns() + (int64_t)QUERY_TIMEOUT_MS * 1000000;
    rd_kafka_resp_err_t cerr = rd_kafka_committed(rk, committed,
                                                  QUERY_TIMEOUT_MS);
    for (int i = 0; i < n; i++) {
        int64_t lo = -1, hi = -1;
        int64_t left_ms = (qend - rg__now_ns()) / 1000000;
        if (left_ms > 0 &&
            rd_kafka_query_watermark_offsets(rk, s->topic, ps[i], &lo, &hi,
                                             (int)left_ms) !=
                RD_KAFKA_RESP_ERR_NO_ERROR)
            lo = hi = -1; /* unknown: the poll loop still catches a log
                             that went backwards */
        int64_t c = cerr ? -1 : committed->elems[i].offset;
        if (next[i] >= 0 && hi >= 0 && next[i] > hi) {
            /* the sink stores more than the log holds: the topic was
             * deleted and recreated, truncated or restored. Going on
             * would drop every event below the stored offset */
            if (!reset_accepted(s, ps[i])) {
                fail(s, "kafka: %s [%d]: the sink stores next offset %lld "
                     "but the log ends at %lld (starts at %lld): the topic "
                     "was deleted and recreated, truncated, or restored. "
                     "Refusing to go on: every event below %lld would be "
                     "dropped. If the reset is deliberate, run again with "
                     "--reset-offsets %d (or all): the stored position "
                     "moves to the start of the log and the log is counted "
                     "from there (docs/OPERATIONS.md)", s->topic, (int)ps[i],
                     (long long)next[i], (long long)hi, (long long)lo,
                     (long long)next[i], (int)ps[i]);
                rd_kafka_topic_partition_list_destroy(committed);
                goto out;
            }
            int64_t to = lo < 0 ? 0 : lo;
            if (store_reset(s, ps[i], to, err, sizeof(err)) != 0) {
                fail(s, "kafka: %s [%d]: cannot store the reset: %s",
                     s->topic, (int)ps[i], err);
                rd_kafka_topic_partition_list_destroy(committed);
                goto out;
            }
            rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "%s [%d]: reset "
                        "accepted (--reset-offsets): the sink stored next "
                        "offset %lld, the log is %lld .. %lld; the stored "
                        "position is now %lld", s->topic, (int)ps[i],
                        (long long)next[i], (long long)lo, (long long)hi,
                        (long long)to);
            next[i] = to;
        } else if (next[i] >= 0 && lo > next[i]) {
            rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "%s [%d]: the log "
                        "starts at %lld but the sink stores next offset "
                        "%lld: events %lld .. %lld were deleted (retention?) "
                        "before they were consumed and are not counted",
                        s->topic, (int)ps[i], (long long)lo,
                        (long long)next[i], (long long)next[i],
                        (long long)lo - 1);
        }
        s->expect[ps[i]] = next[i] >= 0 ? next[i] : -1;
        if (next[i] >= 0) {
            parts->elems[i].offset = next[i];
            int rc = rg_dispatcher_reset(s->d, ps[i], next[i]);
            if (rc != 0 && rc != RG_ESTOPPED) {
                fail(s, "kafka: assign: partition %d at %lld: %s",
                     (int)ps[i], (long long)next[i], rg_strerror(rc));
                rd_kafka_topic_partition_list_destroy(committed);
                goto out;
            }
            rg_conf_log(s->conf, RG_LOG_INFO, "kafka", "%s [%d]: starts at "
                        "offset %lld, stored in the sink (log %lld .. %lld)",
                        s->topic, (int)ps[i], (long long)next[i],
                        (long long)lo, (long long)hi);
        } else if (c >= 0) {
            parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
            rg_conf_log(s->conf, RG_LOG_INFO, "kafka", "%s [%d]: starts at "
                        "offset %lld, the group's committed offset (nothing "
                        "stored in the sink; log %lld .. %lld)", s->topic,
                        (int)ps[i], (long long)c, (long long)lo,
                        (long long)hi);
        } else {
            /* nothing stored or committed: auto.offset.reset decides */
            parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
            bool latest = strcmp(s->reset, "latest") == 0;
            rg_conf_log(s->conf, RG_LOG_INFO, "kafka", "%s [%d]: starts at "
                        "offset %lld, the %s of the log: nothing stored in "
                        "the sink and no committed offset "
                        "(auto.offset.reset=%s)", s->topic, (int)ps[i],
                        (long long)(latest ? hi : lo),
                        latest ? "end" : "start", s->reset);
        }
    }
    rd_kafka_topic_partition_list_destroy(committed);
    if (s->has_sink) {
        /* the delayed retries stored for these partitions go back to
         * their workers before anything new of them is pushed */
        int64_t rq = rg_engine_requeue(s->e, ps, (size_t)n, err, sizeof(err));
        if (rq < 0) {
            fail(s, "kafka: assign: loading the delayed retries: %s", err);
            goto out;
        }
    }
    if (s->dedup && load_marks(s, ps, (size_t)n, err, sizeof(err)) != 0) {
        fail(s, "kafka: assign: loading the producer marks: %s", err);
        goto out;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fail(s, "kafka: assign: %s", rd_kafka_err2str(e));
        goto out;
    }
    set_held(s, parts, true);
    count(&s->assigned, (uint64_t)n);
    brokers_up(s);
    /* a new assignment starts unpaused; the next push that times out
     * pauses it again */
    resume(s);
out:
    free(ps);
    free(next);
}

static void on_revoke(rg_kafka_source_t *s, rd_kafka_t *rk,
                      rd_kafka_topic_partition_list_t *parts)
{
    /* everything accepted from these partitions is stored before we let
     * them go; then the stored offsets go to the group, synchronously.
     * Bounded by shutdown.timeout.ms: what is not stored then is
     * reprocessed by the next owner */
    /* closing (not a rebalance): the events waiting for a retry get
     * their last attempts first, as rg_engine_stop() gives them */
    /* relaxed: a flag */
    if (atomic_load_explicit(&s->stop, memory_order_relaxed))
        rg_engine_retry_finish(s->e, s->shutdown_ms > 0 ? (int)s->shutdown_ms
                                                        : 0);
    /* their waiting retries are stored with the flush's epoch and then
     * left to the next owner */
    int32_t *rel = malloc(sizeof(int32_t) * (size_t)(parts->cnt ? parts->cnt : 1));
    if (rel != NULL) {
        for (int i = 0; i < parts->cnt; i++)
            rel[i] = parts->elems[i].partition;
        if (rg_engine_release(s->e, rel, (size_t)parts->cnt) != 0)
            rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "revoke: out of "
                        "memory releasing the waiting retries");
        free(rel);
    }
    int rc = rg_dispatcher_flush(s->d, s->shutdown_ms > 0 ? (int)s->shutdown_ms
                                                          : 3600000);
    if (rc != 0 && rc != RG_ESTOPPED)
        rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "revoke: the open epoch "
                    "was not stored within %lld ms (%s): the next owner of "
                    "these partitions reprocesses it",
                    (long long)s->shutdown_ms, rg_strerror(rc));
    if (rc == 0) {
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++) {
            rg_partition_stats_t ps;
            if (rg_engine_partition_stats(s->e, parts->elems[i].partition,
                                          &ps) == 0)
                rd_kafka_topic_partition_list_add(
                    l, s->topic, parts->elems[i].partition)
                    ->offset = ps.committable;
        }
        if (l->cnt > 0) {
            rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
            count(e ? &s->commit_errors : &s->commits, 1);
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    set_held(s, parts, false);
    count(&s->revoked, (uint64_t)parts->cnt);
    rd_kafka_assign(rk, NULL);
    s->revoked_ns = rg__now_ns();
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    rg_kafka_source_t *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        on_assign(s, rk, parts);
    else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        on_revoke(s, rk, parts);
    else
        rd_kafka_assign(rk, NULL);
}

/* The consumer's librdkafka configuration from conf: railgun's settings
 * first, then the user's kafka.* over them, refusing what railgun cannot
 * honour. Shared by rg_kafka_source_check() and rg_kafka_source_new(). */
static int build_conf(const rg_conf_t *conf, rd_kafka_conf_t *kc,
                      char *errstr, size_t size)
{
    char rkerr[512];
    /* ours first; the user's kafka.* may override what is not ours */
    rd_kafka_conf_set(kc, "group.id", rg_conf_get_str(conf, "group.id"),
                      NULL, 0);
    rd_kafka_conf_set(kc, "enable.partition.eof", "false", NULL, 0);
    /* librdkafka 2.0 counts the consumer's whole queue against each
     * partition's queued.min.messages (default 100000) and, once over it,
     * looks again only up to a second later: an engine slower than the
     * fetcher then ran in one-second bursts of 100k. The prefetch stays
     * bounded by queued.max.messages.kbytes (64 MB by default). */
    rd_kafka_conf_set(kc, "queued.min.messages", KAFKA_QUEUED_MIN, NULL, 0);
    /* a new group starts at the start of the log: a counting job must
     * not skip the backlog (kafka.auto.offset.reset overrides) */
    rd_kafka_conf_set(kc, "auto.offset.reset", "earliest", NULL, 0);
    size_t cur = 0;
    const char *name, *val;
    bool servers = false;
    while (rg_conf_next_passthrough(conf, "kafka.", &cur, &name, &val)) {
        if (strcmp(name, "enable.auto.commit") == 0 ||
            strcmp(name, "enable.auto.offset.store") == 0) {
            int64_t on = strcmp(val, "false") != 0 && strcmp(val, "0") != 0;
            if (on) {
                snprintf(errstr, size, "kafka.%s=%s: refused: railgun "
                         "commits offsets itself, only up to what the sink "
                         "stored; librdkafka committing on its own would "
                         "pass events that are not stored", name, val);
                return -1;
            }
        }
        if (rd_kafka_conf_set(kc, name, val, rkerr, sizeof(rkerr)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "kafka.%s: %s", name, rkerr);
            return -1;
        }
        if (strcmp(name, "bootstrap.servers") == 0)
            servers = val[strspn(val, " \t,")] != '\0';
    }
    if (!servers) {
        snprintf(errstr, size, "kafka.bootstrap.servers: not set or empty "
                 "(where is the cluster?)");
        return -1;
    }
    return 0;
}

int rg_kafka_source_check(const rg_conf_t *conf, char *errstr, size_t size)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (kc == NULL) {
        snprintf(errstr, size, "kafka: out of memory");
        return RG_ENOMEM;
    }
    int rc = build_conf(conf, kc, errstr, size);
    rd_kafka_conf_destroy(kc);
    return rc == 0 ? 0 : RG_EINVAL;
}

rg_kafka_source_t *rg_kafka_source_new(rg_engine_t *e, unsigned dispatcher,
                                       const rg_conf_t *given,
                                       const rg_sink_t *sink, char *errstr,
                                       size_t size)
{
    char rkerr[512];
    rd_kafka_conf_t *kc = NULL;
    if (e == NULL || given == NULL) {
        snprintf(errstr, size, "kafka: NULL engine or conf");
        return NULL;
    }
    rg_conf_t *conf = rg__kafka_conf(given, errstr, size);
    if (conf == NULL)
        return NULL;
    rg_kafka_source_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->d = rg_engine_dispatcher(e, dispatcher)) == NULL) {
        snprintf(errstr, size, s ? "kafka: no dispatcher %u" :
                 "kafka: out of memory", dispatcher);
        free(s);
        rg_conf_destroy(conf);
        return NULL;
    }
    s->conf = conf;
    s->e = e;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->err_lock, NULL);
    s->max_partitions = (int32_t)rg_conf_get_int(rg_engine_conf(e),
                                                 "ack.max.partitions");
    s->held = calloc((size_t)s->max_partitions, sizeof(bool));
    s->expect = malloc(sizeof(int64_t) * (size_t)s->max_partitions);
    s->topic = strdup(rg_conf_get_str(conf, "topic"));
    s->reset_offsets = strdup(rg_conf_get_str(conf, "source.reset.offsets"));
    s->pause_after_ms = (int)rg_conf_get_int(conf, "source.pause.after.ms");
    s->warn_after_ns = rg_conf_get_int(conf, "source.warn.after.ms") *
                       1000000;
    s->shutdown_ms = rg_conf_get_int(conf, "shutdown.timeout.ms");
    for (int32_t p = 0; s->expect != NULL && p < s->max_partitions; p++)
        s->expect[p] = -1;
    if (sink != NULL) {
        s->sink = *sink;
        s->has_sink = sink->claim != NULL;
        s->dedup = s->has_sink && sink->scan_marks != NULL &&
                   rg_conf_get_int(conf, "source.identity") != 0;
    }
    kc = rd_kafka_conf_new();
    if (s->held == NULL || s->topic == NULL || kc == NULL ||
        s->expect == NULL || s->reset_offsets == NULL) {
        snprintf(errstr, size, "kafka: out of memory");
        goto fail;
    }
    if (build_conf(conf, kc, errstr, size) != 0)
        goto fail;
    size_t rsz = sizeof(s->reset);
    if (rd_kafka_conf_get(kc, "auto.offset.reset", s->reset, &rsz) !=
        RD_KAFKA_CONF_OK)
        snprintf(s->reset, sizeof(s->reset), "earliest");
    /* librdkafka reads back its own names: say the documented ones */
    if (!strcmp(s->reset, "smallest") || !strcmp(s->reset, "beginning"))
        snprintf(s->reset, sizeof(s->reset), "earliest");
    else if (!strcmp(s->reset, "largest") || !strcmp(s->reset, "end"))
        snprintf(s->reset, sizeof(s->reset), "latest");
    /* offsets are committed from what the sink stored, never by
     * librdkafka on its own */
    rd_kafka_conf_set(kc, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(kc, "enable.auto.offset.store", "false", NULL, 0);
    rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
    rd_kafka_conf_set_error_cb(kc, on_error);
    rd_kafka_conf_set_log_cb(kc, on_log);
    /* broker states once a second (or as often as warnings may come)
     * unless the user asked for another interval: see on_stats() */
    char si[32];
    size_t sisz = sizeof(si);
    if (rd_kafka_conf_get(kc, "statistics.interval.ms", si, &sisz) ==
            RD_KAFKA_CONF_OK &&
        strcmp(si, "0") == 0) {
        int64_t ms = s->warn_after_ns / 1000000;
        snprintf(si, sizeof(si), "%lld",
                 (long long)(ms < 1000 && ms > 0 ? ms : 1000));
        rd_kafka_conf_set(kc, "statistics.interval.ms", si, NULL, 0);
    }
    rd_kafka_conf_set_stats_cb(kc, on_stats);
    rd_kafka_conf_set_opaque(kc, s);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, rkerr, sizeof(rkerr));
    if (s->rk == NULL) {
        snprintf(errstr, size, "kafka: %s", rkerr);
        goto fail;
    }
    kc = NULL;
    s->alive = true;
    rd_kafka_poll_set_consumer(s->rk);
    s->q = rd_kafka_queue_get_consumer(s->rk);
    if (s->q == NULL) {
        snprintf(errstr, size, "kafka: no consumer queue");
        goto fail;
    }
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, s->topic,
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(s->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, size, "kafka: subscribe to %s: %s", s->topic,
                 rd_kafka_err2str(err));
        goto fail;
    }
    if (rg_engine_set_commit_cb(e, on_commit, s) != 0) {
        snprintf(errstr, size, "kafka: create the source before "
                 "rg_engine_start()");
        goto fail;
    }
    return s;
fail:
    if (kc != NULL)
        rd_kafka_conf_destroy(kc);
    if (s->q != NULL)
        rd_kafka_queue_destroy(s->q);
    if (s->rk != NULL)
        rd_kafka_destroy(s->rk);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->err_lock);
    free(s->held);
    free(s->expect);
    free(s->topic);
    free(s->reset_offsets);
    rg_conf_destroy(s->conf);
    free(s);
    return NULL;
}

int rg_kafka_source_run(rg_kafka_source_t *s)
{
    rd_kafka_message_t *ms[BURST];
    rg_msg_t msgs[BURST];
    pthread_setname_np(pthread_self(), "rg:poll");
    int64_t next_check = 0;
    /* relaxed: a flag; what it stops is this loop only */
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        int64_t now = rg__now_ns();
        if (now >= next_check) {
            warn_if_stuck(s, now);
            next_check = now + 1000000000;
        }
        /* relaxed: only this thread changes it */
        bool paused = atomic_load_explicit(&s->paused, memory_order_relaxed);
        if (paused && rg_dispatcher_ready(s->d))
            resume(s);
        /* one call per burst, not one per message: a lock, an unlock
         * and a clock read saved per message. The batch API kept every
         * offset across our pause, seek and resume in the shipped
         * librdkafka (tests/test_kafka_batch.c); rebalance callbacks run
         * from inside it as from consumer_poll() */
        ssize_t got_n = rd_kafka_consume_batch_queue(s->q, 100, ms, BURST);
        if (got_n < 0) {
            fail(s, "kafka: consume: %s",
                 rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }
        if (got_n == 0) {
            /* idle: let the epoch move on without us (while paused the
             * flusher sends our barriers: that can wait on the sink) */
            if (!paused && rg_dispatcher_poll(s->d) == RG_ESTOPPED)
                fail(s, "kafka: the engine stopped");
            continue;
        }
        size_t n = (size_t)got_n, k = 0;
        for (size_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = ms[i];
            if (m->err) {
                if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                    count(&s->errors, 1);
                    char why[256];
                    rd_kafka_fatal_error(s->rk, why, sizeof(why));
                    fail(s, "kafka: fatal: %s", why);
                } else if (m->partition < 0) {
                    /* a client-wide error handed over as a message (all
                     * brokers down among them): as the error callback */
                    note_error(s, m->err, rd_kafka_message_errstr(m));
                } else {
                    count(&s->errors, 1);
                    rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "%s [%d]: %s",
                                s->topic, (int)m->partition,
                                rd_kafka_message_errstr(m));
                }
                continue;
            }
            int32_t p = m->partition;
            if (p >= 0 && p < s->max_partitions) {
                /* offsets of a partition only grow (our rewinds reset
                 * what we expect): a smaller one means the log went
                 * backwards under us (recreated, truncated, restored) */
                if (s->expect[p] >= 0 && m->offset < s->expect[p]) {
                    fail(s, "kafka: %s [%d]: offset %lld arrived after "
                         "%lld: the log went backwards (the topic was "
                         "deleted and recreated, truncated, or restored). "
                         "Refusing to go on: these events would be "
                         "dropped as already done. If the reset is "
                         "deliberate, run again with --reset-offsets %d (or "
                         "all) (docs/OPERATIONS.md)", s->topic, (int)p,
                         (long long)m->offset, (long long)s->expect[p] - 1,
                         (int)p);
                    break;
                }
                s->expect[p] = m->offset + 1;
            }
            msgs[k] = (rg_msg_t){m->partition, m->offset, m->key,
                                 m->key_len, m->payload, m->len, 0, 0};
            if (s->dedup)
                message_identity(s, m, &msgs[k].producer_id, &msgs[k].seq);
            k++;
        }
        /* relaxed: see on_error() */
        if (k > 0 && atomic_load_explicit(&s->down_since,
                                          memory_order_relaxed) != 0)
            brokers_up(s);
        if (s->failed) {
            for (size_t i = 0; i < n; i++)
                rd_kafka_message_destroy(ms[i]);
            break;
        }
        /* the engine copies what it keeps: release right after */
        size_t got = 0;
        int rc = k ? rg_dispatcher_push_burst_for(s->d, msgs, k,
                                                  s->pause_after_ms, &got)
                   : 0;
        count(&s->consumed, got);
        if (rc == RG_ETIMEDOUT)
            pause_and_rewind(s, msgs + got, k - got);
        else if (rc != 0)
            fail(s, "kafka: the engine stopped");
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(ms[i]);
    }
    return s->failed ? RG_ESTOPPED : 0;
}

void rg_kafka_source_stop(rg_kafka_source_t *s)
{
    /* relaxed: see run() */
    atomic_store_explicit(&s->stop, 1, memory_order_relaxed);
}

void rg_kafka_source_stats(rg_kafka_source_t *s, rg_kafka_stats_t *out)
{
    /* relaxed everywhere: counters */
    out->consumed = atomic_load_explicit(&s->consumed, memory_order_relaxed);
    out->errors = atomic_load_explicit(&s->errors, memory_order_relaxed);
    out->assigned = atomic_load_explicit(&s->assigned, memory_order_relaxed);
    out->revoked = atomic_load_explicit(&s->revoked, memory_order_relaxed);
    out->commits = atomic_load_explicit(&s->commits, memory_order_relaxed);
    out->commit_errors = atomic_load_explicit(&s->commit_errors,
                                              memory_order_relaxed);
    out->partitions = atomic_load_explicit(&s->npart, memory_order_relaxed);
    out->pauses = atomic_load_explicit(&s->pauses, memory_order_relaxed);
    out->resumes = atomic_load_explicit(&s->resumes, memory_order_relaxed);
    out->paused = atomic_load_explicit(&s->paused, memory_order_relaxed);
    int64_t now = rg__now_ns();
    int64_t down = atomic_load_explicit(&s->down_since, memory_order_relaxed);
    int64_t nop = atomic_load_explicit(&s->nopart_since,
                                       memory_order_relaxed);
    out->brokers_down_ms = down ? (uint64_t)(now - down) / 1000000 : 0;
    out->no_partitions_ms = nop ? (uint64_t)(now - nop) / 1000000 : 0;
    out->queued = 0;
    pthread_mutex_lock(&s->lock); /* rk lives while alive */
    if (s->alive) {
        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(s->rk);
        if (q != NULL) {
            out->queued = rd_kafka_queue_length(q);
            rd_kafka_queue_destroy(q);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

size_t rg_kafka_source_partitions(rg_kafka_source_t *s,
                                  rg_kafka_partition_t *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock); /* held[] and rk (while alive) */
    for (int32_t p = 0; s->alive && p < s->max_partitions; p++) {
        if (!s->held[p])
            continue;
        if (n < max) {
            /* cached: the toppar's hi offset from the last fetch */
            int64_t lo = -1, hi = -1;
            if (rd_kafka_get_watermark_offsets(s->rk, s->topic, p, &lo,
                                               &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                hi < 0)
                hi = -1;
            out[n] = (rg_kafka_partition_t){p, hi};
        }
        n++;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

int rg_kafka_source_last_error(rg_kafka_source_t *s, char *buf, size_t size)
{
    pthread_mutex_lock(&s->err_lock);
    int has = s->last_err[0] != '\0';
    snprintf(buf, size, "%s", s->last_err);
    pthread_mutex_unlock(&s->err_lock);
    return has;
}

const char *rg_kafka_source_error(rg_kafka_source_t *s)
{
    return s->failed ? s->errmsg : NULL;
}

/* rd_kafka_destroy() on a thread of its own, so that closing stays
 * bounded: librdkafka 2.0.2's destroy can spin for ever when the group
 * was not left (seen after a revoke that used the whole shutdown budget,
 * its main thread waiting on the group's termination). */
struct destroyer {
    rd_kafka_t *rk;
    int flags;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done, abandoned;
};

static void destroyer_free(struct destroyer *d)
{
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d);
}

static void *destroy_main(void *arg)
{
    struct destroyer *d = arg;
    pthread_setname_np(pthread_self(), "rg:kdestroy");
    rd_kafka_destroy_flags(d->rk, d->flags);
    pthread_mutex_lock(&d->lock);
    d->done = true;
    bool abandoned = d->abandoned;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    if (abandoned)
        destroyer_free(d);
    return NULL;
}

/* Destroys rk within timeout_ms (0: waits for ever); false when
 * librdkafka did not finish in time (its threads are left behind). */
static bool destroy_bounded(rd_kafka_t *rk, int flags, int64_t timeout_ms)
{
    struct destroyer *d = calloc(1, sizeof(*d));
    pthread_t t;
    if (d == NULL) {
        rd_kafka_destroy_flags(rk, flags);
        return true;
    }
    d->rk = rk;
    d->flags = flags;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t, NULL, destroy_main, d) != 0) {
        destroyer_free(d);
        rd_kafka_destroy_flags(rk, flags);
        return true;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&d->lock);
    while (!d->done) {
        if (timeout_ms == 0)
            pthread_cond_wait(&d->cond, &d->lock);
        else if (pthread_cond_timedwait(&d->cond, &d->lock, &until) != 0)
            break;
    }
    bool done = d->done;
    d->abandoned = !done;
    pthread_mutex_unlock(&d->lock);
    if (done) {
        pthread_join(t, NULL);
        destroyer_free(d);
    } else {
        pthread_detach(t); /* it frees d if it ever finishes */
    }
    return done;
}

void rg_kafka_source_close(rg_kafka_source_t *s)
{
    if (s == NULL || s->closed)
        return;
    s->closed = true;
    /* leaving the group revokes: flush + commit, on this thread (the
     * rebalance callback runs from the polls below). Bounded by
     * shutdown.timeout.ms: with every broker down the group cannot be
     * left, and it notices after session.timeout.ms instead. The revoke's
     * flush may take all of it (a failing sink): leaving the group after
     * it gets CLOSE_GRACE_MS more */
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(s->rk);
    rd_kafka_error_t *cerr = q ? rd_kafka_consumer_close_queue(s->rk, q)
                               : NULL;
    bool closed = false;
    if (q != NULL && cerr == NULL) {
        int64_t deadline = rg__now_ns() + s->shutdown_ms * 1000000;
        s->revoked_ns = 0;
        for (;;) {
            if ((closed = rd_kafka_consumer_closed(s->rk)))
                break;
            int64_t now = rg__now_ns(), end = deadline;
            if (s->revoked_ns != 0 &&
                s->revoked_ns + CLOSE_GRACE_MS * 1000000 > end)
                end = s->revoked_ns + CLOSE_GRACE_MS * 1000000;
            if (s->shutdown_ms != 0 && now >= end)
                break;
            rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 100);
            if (m != NULL)
                rd_kafka_message_destroy(m);
        }
    } else {
        rd_kafka_error_destroy(cerr);
        rd_kafka_consumer_close(s->rk);
        closed = true;
    }
    if (q != NULL)
        rd_kafka_queue_destroy(q);
    if (s->q != NULL) {
        rd_kafka_queue_destroy(s->q);
        s->q = NULL;
    }
    const char *group = rg_conf_get_str(s->conf, "group.id");
    if (!closed)
        rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "could not leave group "
                    "%s within shutdown.timeout.ms (%lld ms; brokers "
                    "down?): its other members rebalance after "
                    "session.timeout.ms; nothing is lost", group,
                    (long long)s->shutdown_ms);
    pthread_mutex_lock(&s->lock);
    s->alive = false;
    pthread_mutex_unlock(&s->lock);
    if (!destroy_bounded(s->rk, closed ? 0
                                       : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
                         s->shutdown_ms == 0 ? 0 : CLOSE_GRACE_MS))
        rg_conf_log(s->conf, RG_LOG_WARN, "kafka", "librdkafka did not stop "
                    "within %d ms; its threads are left to the process's "
                    "exit", CLOSE_GRACE_MS);
    s->rk = NULL;
}

void rg_kafka_source_destroy(rg_kafka_source_t *s)
{
    if (s == NULL)
        return;
    rg_kafka_source_close(s);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->err_lock);
    free(s->held);
    free(s->expect);
    free(s->topic);
    free(s->reset_offsets);
    rg_conf_destroy(s->conf);
    free(s);
}
