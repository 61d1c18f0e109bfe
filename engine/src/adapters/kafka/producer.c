/*
 * producer.c - the producer SDK over librdkafka (railgun/producer.h).
 *
 * A thin, strict layer: it refuses what would go wrong later (no key, an
 * oversized value, malformed JSON) at the call with a reason, counts what
 * is in flight, and turns librdkafka's delivery reports into one callback
 * per accepted message.
 *
 * Degraded mode (only with `fallback.spool.dir`; p->fb is NULL otherwise
 * and nothing below "degraded mode" runs): a state machine over the
 * durable spool (spool.h).
 *
 *   DIRECT --(every broker down | a delivery failed as "unavailable" |
 *             messages waiting, none delivered for fallback.after.ms)-->
 *   DEGRADED --(any delivery succeeds)--> DRAINING
 *   DRAINING --(a replayed record fails)--> DEGRADED
 *   DRAINING --(the cursor caught up; under mu: the staged tail synced
 *               and produced too)--> DIRECT, "switching" until every
 *               replayed record is acknowledged, then segments deleted
 *
 * Invariants
 *   F1 While mode != DIRECT every send goes to the spool; the mode changes
 *      only under fb->mu, and a spooled send re-reads it under fb->mu.
 *      The switch back happens under fb->mu after every spooled record is
 *      in librdkafka's queue, so a direct send after it queues behind
 *      them (one key stays in send order across it).
 *   F2 The replay produces records in LSN order, at most REPLAY_WINDOW in
 *      librdkafka at once, into the same queue as the direct sends made
 *      before the outage (which librdkafka delivers first, per
 *      partition). After a replayed record fails, no new cursor starts
 *      until every replayed record in flight has come back, so a record is
 *      never in librdkafka twice.
 *   F3 Every accepted message gets one callback: a direct one from
 *      librdkafka's report, a spooled one from its ticket once the record
 *      is durable (or fails: RG_EIO). A direct message librdkafka gives up
 *      on for unavailability is spooled (rescued) instead of failed.
 *   F4 A record is marked done only on a successful delivery report of its
 *      replay, so the spool deletes nothing Kafka has not acknowledged.
 *   F5 The replay never produces a record RG_MARK_WINDOW or more LSNs past
 *      the oldest record not acknowledged (the spool's done_lsn). Within
 *      one producer id seq - LSN is constant, so a record not yet in Kafka
 *      is never RG_MARK_WINDOW seqs below one that is: what the consumer's
 *      dedup relies on to call anything further below its highest seq a
 *      copy (engine/src/core/dedup.c).
 * Threads: sends on any thread; the replay, detection and tickets run in
 * poll/flush/destroy (the replay on one thread at a time: fb->r_mu,
 * trylock); librdkafka's error callback only sets fb->all_down.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "railgun/error.h"
#include "railgun/producer.h"
#include "railgun/sink.h"
#include "kafka_int.h"
#include "spool.h"

struct fallback;

struct rg_producer_s {
    struct fallback *fb;           /* NULL: no spool, no degraded mode */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    rg_delivery_cb *cb;
    void *opaque;
    size_t max_bytes;              /* message.max.bytes */
    _Atomic size_t in_flight;
    pthread_mutex_t err_lock;      /* broker_err, from librdkafka's threads */
    char broker_err[256];
};

/* librdkafka's error callback (its threads): keep the last one, so a
 * delivery that times out can say why (no broker reachable, ...). */
static void fb_note_error(rg_producer_t *p, int err);

static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque)
{
    (void)rk;
    rg_producer_t *p = opaque;
    if (p->fb != NULL)
        fb_note_error(p, err);
    pthread_mutex_lock(&p->err_lock);
    snprintf(p->broker_err, sizeof(p->broker_err), "%s: %s",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    pthread_mutex_unlock(&p->err_lock);
}

int rg_producer_broker_error(rg_producer_t *p, char *buf, size_t size)
{
    pthread_mutex_lock(&p->err_lock);
    int has = p->broker_err[0] != '\0';
    snprintf(buf, size, "%s", p->broker_err);
    pthread_mutex_unlock(&p->err_lock);
    return has;
}

static _Thread_local char last_error[256];

static int refuse(int rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int refuse(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return rc;
}

const char *rg_producer_last_error(void)
{
    return last_error;
}

/* ---- a strict JSON checker (RFC 8259), no allocation ------------------- */

#define JSON_MAX_DEPTH 64

struct jp {
    const char *s, *end;
};

static void ws(struct jp *p)
{
    while (p->s < p->end &&
           (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static bool lit(struct jp *p, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n) != 0)
        return false;
    p->s += n;
    return true;
}

static bool hex4(struct jp *p)
{
    for (int i = 0; i < 4; i++, p->s++)
        if (p->s >= p->end ||
            !((*p->s >= '0' && *p->s <= '9') ||
              ((*p->s | 0x20) >= 'a' && (*p->s | 0x20) <= 'f')))
            return false;
    return true;
}

/* A string, with UTF-8 checked (no overlongs, surrogates, > U+10FFFF). */
static bool string(struct jp *p)
{
    p->s++; /* the opening quote */
    while (p->s < p->end) {
        unsigned char c = (unsigned char)*p->s;
        if (c == '"') {
            p->s++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (++p->s >= p->end)
                return false;
            char e = *p->s++;
            if (e == 'u') {
                if (!hex4(p))
                    return false;
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return false;
            }
            continue;
        }
        if (c < 0x80) {
            p->s++;
            continue;
        }
        int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : -1;
        if (n < 0 || c > 0xF4 || p->end - p->s <= n)
            return false;
        unsigned char c1 = (unsigned char)p->s[1];
        if ((c1 & 0xC0) != 0x80 || (c == 0xE0 && c1 < 0xA0) ||
            (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
            (c == 0xF4 && c1 > 0x8F))
            return false;
        for (int i = 2; i <= n; i++)
            if (((unsigned char)p->s[i] & 0xC0) != 0x80)
                return false;
        p->s += n + 1;
    }
    return false;
}

static bool digits(struct jp *p)
{
    const char *b = p->s;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9')
        p->s++;
    return p->s > b;
}

static bool number(struct jp *p)
{
    if (*p->s == '-')
        p->s++;
    if (p->s < p->end && *p->s == '0')
        p->s++;
    else if (!digits(p))
        return false;
    if (p->s < p->end && *p->s == '.') {
        p->s++;
        if (!digits(p))
            return false;
    }
    if (p->s < p->end && (*p->s == 'e' || *p->s == 'E')) {
        p->s++;
        if (p->s < p->end && (*p->s == '+' || *p->s == '-'))
            p->s++;
        if (!digits(p))
            return false;
    }
    return true;
}

static bool value(struct jp *p, int depth)
{
    ws(p);
    if (p->s >= p->end || depth > JSON_MAX_DEPTH)
        return false;
    char c = *p->s;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p->s++;
        ws(p);
        if (p->s < p->end && *p->s == close) {
            p->s++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                ws(p);
                if (p->s >= p->end || *p->s != '"' || !string(p))
                    return false;
                ws(p);
                if (p->s >= p->end || *p->s++ != ':')
                    return false;
            }
            if (!value(p, depth + 1))
                return false;
            ws(p);
            if (p->s >= p->end)
                return false;
            if (*p->s == close) {
                p->s++;
                return true;
            }
            if (*p->s++ != ',')
                return false;
        }
    }
    if (c == '"')
        return string(p);
    if (c == '-' || (c >= '0' && c <= '9'))
        return number(p);
    return lit(p, "true") || lit(p, "false") || lit(p, "null");
}

/* True when text[0..len) is exactly one JSON value (whitespace around). */
static bool json_ok(const char *text, size_t len)
{
    struct jp p = {text, text + len};
    if (!value(&p, 0))
        return false;
    ws(&p);
    return p.s == p.end;
}

/* ---- degraded mode: the durable spool ---------------------------------- */

/* Replayed records in librdkafka at once (F2): enough to keep a partition
 * busy, few enough to leave the queue to the direct sends after the
 * switch back. */
#define REPLAY_WINDOW 4096

/* A spooled message waiting for its "spooled" callback. */
struct ticket {
    uint64_t lsn;
    void *msg_opaque;
    void *key;                     /* a copy, for the delivery report */
    size_t key_len;
};

struct fallback {
    rg_spool_t *sp;
    int64_t after_ms, block_ms;
    char *dir;
    rg_log_cb *log;
    void *log_opaque;

    pthread_mutex_t mu;            /* M: spool appends, mode changes, seq */
    _Atomic int mode;              /* stored under mu (F1) */
    uint64_t producer_id, seq;     /* under mu */
    int64_t entered_ms;            /* under mu: when DIRECT was left */

    _Atomic int all_down;          /* error callback: every broker down */
    _Atomic int64_t last_ok_ms;    /* the last successful delivery */
    _Atomic int64_t idle_ms;       /* the last step with nothing queued */

    pthread_mutex_t q_mu;          /* Q: the tickets, in LSN order */
    struct ticket *q;
    size_t q_head, q_len, q_cap;

    pthread_mutex_t r_mu;          /* R: the replay (one poller at a time) */
    rg_spool_cursor_t *cur;        /* under r_mu */
    rg_spool_rec_t held;           /* under r_mu: refused with QUEUE_FULL */
    void *held_buf;
    bool has_held;
    bool read_failed;              /* under r_mu: logged once */
    _Atomic bool switching;        /* DIRECT, replayed records unacked */
    _Atomic uint64_t replay_in_flight;
    _Atomic int replay_failed;     /* a replayed record came back failed */

    _Atomic uint64_t n_degraded, n_spooled, n_rescued, n_replayed;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fb_log(struct fallback *fb, rg_log_level_t level,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fb_log(struct fallback *fb, rg_log_level_t level,
                   const char *fmt, ...)
{
    if (fb->log == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fb->log(fb->log_opaque, level, "producer", line);
}

/* Locks m within ms milliseconds (0: try once). 0 or ETIMEDOUT. */
static int lock_within(pthread_mutex_t *m, int64_t ms)
{
    if (pthread_mutex_trylock(m) == 0)
        return 0;
    if (ms <= 0)
        return ETIMEDOUT;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return pthread_mutex_timedlock(m, &ts);
}

static int fb_mode(const struct fallback *fb)
{
    /* acquire: pairs with the release stores in set_mode() (under mu) */
    return atomic_load_explicit(&fb->mode, memory_order_acquire);
}

/* Under mu. */
static void set_mode(struct fallback *fb, int mode)
{
    atomic_store_explicit(&fb->mode, mode, memory_order_release);
}

/* Kafka is unavailable: DIRECT or DRAINING -> DEGRADED, logged with why.
 * Blocks on mu (not from a send: see send_spooled()). */
static void fb_degrade_locked(struct fallback *fb, const char *why)
{
    int m = fb_mode(fb);
    if (m == RG_PRODUCER_DEGRADED)
        return;
    set_mode(fb, RG_PRODUCER_DEGRADED);
    if (m == RG_PRODUCER_DIRECT) {
        fb->entered_ms = now_ms();
        /* relaxed: a statistic */
        atomic_fetch_add_explicit(&fb->n_degraded, 1, memory_order_relaxed);
        fb_log(fb, RG_LOG_WARN, "Kafka unavailable (%s): degraded mode, "
               "sends go to the spool in %s", why, fb->dir);
    } else {
        fb_log(fb, RG_LOG_WARN, "Kafka unavailable again while replaying "
               "the spool (%s): degraded mode", why);
    }
}

static void fb_degrade(struct fallback *fb, const char *why)
{
    pthread_mutex_lock(&fb->mu);
    fb_degrade_locked(fb, why);
    pthread_mutex_unlock(&fb->mu);
}

/* A delivery succeeded: Kafka takes messages again. */
static void fb_kafka_ok(struct fallback *fb)
{
    /* relaxed: hints for the detection in fb_step(), no data behind them */
    atomic_store_explicit(&fb->last_ok_ms, now_ms(), memory_order_relaxed);
    atomic_store_explicit(&fb->all_down, 0, memory_order_relaxed);
    if (fb_mode(fb) != RG_PRODUCER_DEGRADED)
        return;
    pthread_mutex_lock(&fb->mu);
    if (fb_mode(fb) == RG_PRODUCER_DEGRADED) {
        set_mode(fb, RG_PRODUCER_DRAINING);
        rg_spool_stats_t st;
        rg__spool_stats(fb->sp, &st);
        fb_log(fb, RG_LOG_INFO, "Kafka delivers again: replaying the "
               "spool (%" PRIu64 " records, %" PRIu64 " bytes)",
               st.pending, st.bytes);
    }
    pthread_mutex_unlock(&fb->mu);
}

static void fb_note_error(rg_producer_t *p, int err)
{
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        /* relaxed: a hint, read by the next send or poll */
        atomic_store_explicit(&p->fb->all_down, 1, memory_order_relaxed);
}

/* Errors that say Kafka is unavailable (the message itself is fine). */
static bool unavailable(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        return true;
    default:
        return false;
    }
}

/* Room for one more ticket (under mu, so LSN order holds). */
static int ticket_reserve(struct fallback *fb)
{
    pthread_mutex_lock(&fb->q_mu);
    int rc = 0;
    if (fb->q_len == fb->q_cap) {
        size_t cap = fb->q_cap ? fb->q_cap * 2 : 256;
        struct ticket *q = malloc(cap * sizeof(*q));
        if (q == NULL) {
            rc = RG_ENOMEM;
        } else {
            for (size_t i = 0; i < fb->q_len; i++)
                q[i] = fb->q[(fb->q_head + i) % fb->q_cap];
            free(fb->q);
            fb->q = q;
            fb->q_cap = cap;
            fb->q_head = 0;
        }
    }
    pthread_mutex_unlock(&fb->q_mu);
    return rc;
}

static void ticket_push(struct fallback *fb, const struct ticket *t)
{
    pthread_mutex_lock(&fb->q_mu);
    fb->q[(fb->q_head + fb->q_len) % fb->q_cap] = *t;
    fb->q_len++;
    pthread_mutex_unlock(&fb->q_mu);
}

/*
 * Appends one message to the spool and queues its ticket, within budget_ms
 * (mu and the spool's staging both count). Under mu when mode_check is set
 * it re-reads the mode first: 1 means "DIRECT now: send it directly".
 * 0 or a refusal (RG_EFULL, RG_ETIMEDOUT, RG_EIO, RG_EINVAL, RG_ENOMEM).
 */
static int spool_put(rg_producer_t *p, const void *key, size_t key_len,
                     const void *value, size_t value_len, void *msg_opaque,
                     int64_t budget_ms, bool mode_check)
{
    struct fallback *fb = p->fb;
    if (key_len > UINT32_MAX || value_len > UINT32_MAX)
        return refuse(RG_EINVAL, "degraded mode: a key or value over 4 GiB "
                      "cannot be spooled");
    int64_t t0 = now_ms();
    if (lock_within(&fb->mu, budget_ms) != 0)
        return refuse(RG_ETIMEDOUT, "degraded mode: the spool stayed busy "
                      "for fallback.block.max.ms (%" PRId64 " ms); nothing "
                      "was sent", budget_ms);
    int rc;
    if (mode_check && fb_mode(fb) == RG_PRODUCER_DIRECT) {
        rc = 1;
        goto out;
    }
    struct ticket t = {.msg_opaque = msg_opaque, .key_len = key_len};
    t.key = malloc(key_len);
    if (t.key == NULL || ticket_reserve(fb) != 0) {
        free(t.key);
        rc = refuse(RG_ENOMEM, "degraded mode: out of memory");
        goto out;
    }
    memcpy(t.key, key, key_len);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    rg_spool_msg_t m = {
        .key = key, .key_len = (uint32_t)key_len,
        .value = value, .value_len = (uint32_t)value_len,
        .producer_id = fb->producer_id, .seq = fb->seq,
        .ts_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
        .partition = -1,
    };
    int64_t left = budget_ms - (now_ms() - t0);
    rc = rg__spool_append(fb->sp, &m, &t.lsn,
                          left > 0 ? (int)(left < INT32_MAX ? left : INT32_MAX)
                                   : 0);
    if (rc != 0) {
        free(t.key);
        if (rc == RG_EFULL || rc == RG_EIO || rc == RG_EINVAL)
            rc = refuse(rc, "degraded mode (Kafka unavailable): %s",
                        rg__spool_last_error());
        else if (rc == RG_ETIMEDOUT)
            rc = refuse(rc, "degraded mode: the spool's disk is behind "
                        "(%s); nothing was sent", rg__spool_last_error());
        else
            rc = refuse(rc, "degraded mode: %s", rg__spool_last_error());
        goto out;
    }
    fb->seq++;
    /* relaxed: counters (in_flight before the ticket is visible, so the
     * poller's decrement never comes first) */
    atomic_fetch_add_explicit(&p->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&fb->n_spooled, 1, memory_order_relaxed);
    ticket_push(fb, &t);
out:
    pthread_mutex_unlock(&fb->mu);
    return rc;
}

/* The "spooled" callbacks of every durable ticket (poll path). */
static int fb_tickets(rg_producer_t *p)
{
    struct fallback *fb = p->fb;
    int n = 0;
    for (;;) {
        uint64_t durable = rg__spool_durable_lsn(fb->sp);
        pthread_mutex_lock(&fb->q_mu);
        if (fb->q_len == 0) {
            pthread_mutex_unlock(&fb->q_mu);
            break;
        }
        struct ticket t = fb->q[fb->q_head];
        int err = 0;
        if (t.lsn >= durable &&
            (err = rg__spool_wait(fb->sp, t.lsn, 0)) != RG_EIO) {
            pthread_mutex_unlock(&fb->q_mu);
            break;
        }
        fb->q_head = (fb->q_head + 1) % fb->q_cap;
        fb->q_len--;
        pthread_mutex_unlock(&fb->q_mu);
        if (p->cb != NULL) {
            rg_delivery_t d = {
                .err = err == RG_EIO ? RG_EIO : 0,
                .errstr = err == RG_EIO ? "the spool failed to write the "
                                          "message (see the log)" : NULL,
                .partition = -1,
                .offset = -1,
                .key = t.key,
                .key_len = t.key_len,
                .msg_opaque = t.msg_opaque,
            };
            p->cb(p->opaque, &d);
        }
        free(t.key);
        /* relaxed: a counter */
        atomic_fetch_sub_explicit(&p->in_flight, 1, memory_order_relaxed);
        n++;
    }
    return n;
}

/* A delivery report while a spool exists. true: handled here (a replayed
 * record, or a direct message rescued into the spool). */
static bool fb_on_delivery(rg_producer_t *p, const rd_kafka_message_t *m)
{
    struct fallback *fb = p->fb;
    rd_kafka_headers_t *h;
    const void *v;
    size_t vs;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, "rg-seq", &v, &vs) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rg__spool_mark_done(fb->sp, (uint64_t)(uintptr_t)m->_private);
            /* relaxed: a statistic */
            atomic_fetch_add_explicit(&fb->n_replayed, 1,
                                      memory_order_relaxed);
            fb_kafka_ok(fb);
        } else {
            /* relaxed: read with replay_in_flight (acquire) below */
            atomic_store_explicit(&fb->replay_failed, 1,
                                  memory_order_relaxed);
            char why[160];
            snprintf(why, sizeof(why), "a replayed message failed: %s",
                     rd_kafka_err2str(m->err));
            /* purged: destroy() is taking it back, not an outage */
            if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
                m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
                fb_degrade(fb, why);
        }
        /* release: the mark_done and replay_failed above happen before a
         * poller sees the count reach 0 (the acquire in fb_replay()) */
        atomic_fetch_sub_explicit(&fb->replay_in_flight, 1,
                                  memory_order_release);
        return true;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        fb_kafka_ok(fb);
        return false;
    }
    if (!unavailable(m->err))
        return false;
    char why[160];
    snprintf(why, sizeof(why), "a delivery failed: %s",
             rd_kafka_err2str(m->err));
    fb_degrade(fb, why);
    if (spool_put(p, m->key, m->key_len, m->payload, m->len, m->_private,
                  fb->block_ms, false) != 0) {
        fb_log(fb, RG_LOG_ERR, "a message librdkafka gave up on could not "
               "be spooled (%s): its delivery fails", last_error);
        return false;
    }
    /* relaxed: a statistic; in_flight moves from the direct message to its
     * ticket (spool_put() added one) */
    atomic_fetch_add_explicit(&fb->n_rescued, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&p->in_flight, 1, memory_order_relaxed);
    return true;
}

/* One replayed record into librdkafka. 0 or librdkafka's error. */
static rd_kafka_resp_err_t replay_one(rg_producer_t *p,
                                      const rg_spool_rec_t *r)
{
    char id[24], seq[24];
    snprintf(id, sizeof(id), "%016" PRIx64, r->msg.producer_id);
    int sl = snprintf(seq, sizeof(seq), "%" PRIu64, r->msg.seq);
    struct fallback *fb = p->fb;
    /* release: pairs with the acquire in fb_replay() (the count is only
     * compared; counted before the report can come back) */
    atomic_fetch_add_explicit(&fb->replay_in_flight, 1,
                              memory_order_release);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_RKT(p->rkt),
        RD_KAFKA_V_PARTITION(r->msg.partition >= 0 ? r->msg.partition
                                                   : RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_KEY((void *)r->msg.key, r->msg.key_len),
        RD_KAFKA_V_VALUE((void *)r->msg.value, r->msg.value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_TIMESTAMP(r->msg.ts_ms),
        RD_KAFKA_V_HEADER("rg-producer-id", id, 16),
        RD_KAFKA_V_HEADER("rg-seq", seq, sl),
        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)r->lsn), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        atomic_fetch_sub_explicit(&fb->replay_in_flight, 1,
                                  memory_order_relaxed);
    return err;
}

/* Keeps a record librdkafka refused for now (the cursor's buffer goes). */
static int hold(struct fallback *fb, const rg_spool_rec_t *r)
{
    void *b = malloc(r->msg.key_len + r->msg.value_len + 1);
    if (b == NULL)
        return RG_ENOMEM;
    memcpy(b, r->msg.key, r->msg.key_len);
    memcpy((char *)b + r->msg.key_len, r->msg.value, r->msg.value_len);
    fb->held = *r;
    fb->held.msg.key = b;
    fb->held.msg.value = (char *)b + r->msg.key_len;
    fb->held_buf = b;
    fb->has_held = true;
    return 0;
}

static void unhold(struct fallback *fb)
{
    free(fb->held_buf);
    fb->held_buf = NULL;
    fb->has_held = false;
}

/* Replays records from the cursor until *in_flight reaches limit. 1: the
 * cursor caught up (every durable record not done is in librdkafka), 0:
 * the window is full, -1: stopped (librdkafka's queue is full, or the
 * spool cannot be read). Under r_mu. */
static int replay_some(rg_producer_t *p, uint64_t *in_flight, uint64_t limit)
{
    struct fallback *fb = p->fb;
    uint64_t span_end = 0; /* F5: no record at or past this LSN yet */
    while (*in_flight < limit) {
        rg_spool_rec_t r;
        if (fb->has_held) {
            r = fb->held;
        } else {
            int rc = rg__spool_cursor_next(fb->cur, &r);
            if (rc == 0)
                return 1;
            if (rc < 0) {
                if (!fb->read_failed)
                    fb_log(fb, RG_LOG_ERR, "the spool cannot be read (%s): "
                           "replay stopped, the producer stays degraded",
                           rg__spool_last_error());
                fb->read_failed = true;
                return -1;
            }
        }
        if (r.lsn >= span_end) {
            rg_spool_stats_t st;
            rg__spool_stats(fb->sp, &st);
            span_end = st.done_lsn + RG_MARK_WINDOW;
            if (r.lsn >= span_end) {
                /* F5: the oldest record not acknowledged holds us back;
                 * this one waits (a new cursor would find it too) */
                if (!fb->has_held && hold(fb, &r) != 0) {
                    rg__spool_cursor_destroy(fb->cur);
                    fb->cur = NULL;
                }
                return 0;
            }
        }
        rd_kafka_resp_err_t err = replay_one(p, &r);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (!fb->has_held && hold(fb, &r) != 0) {
                /* the record stays in the spool: a new cursor finds it */
                rg__spool_cursor_destroy(fb->cur);
                fb->cur = NULL;
            }
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                fb_log(fb, RG_LOG_WARN, "replay: %s", rd_kafka_err2str(err));
            return -1;
        }
        unhold(fb);
        (*in_flight)++;
    }
    return 0;
}

/*
 * The replay (F2), and the switch back (F1). Poll path; one thread at a
 * time (r_mu, trylock). The switch: once the cursor has caught up while
 * DRAINING, under mu (no send can append meanwhile) the staged tail is
 * committed and handed to librdkafka too, then sends go direct again:
 * they enter librdkafka's queue behind every replayed record, which it
 * delivers in order per partition. The spool's segments are deleted once
 * every replayed record is acknowledged (fb->switching until then).
 */
static void fb_replay(rg_producer_t *p)
{
    struct fallback *fb = p->fb;
    if (pthread_mutex_trylock(&fb->r_mu) != 0)
        return;
    /* acquire: pairs with the release decrement in fb_on_delivery() */
    uint64_t in_flight = atomic_load_explicit(&fb->replay_in_flight,
                                              memory_order_acquire);
    if (fb_mode(fb) == RG_PRODUCER_DIRECT) {
        /* relaxed: switching is written only under r_mu */
        if (!atomic_load_explicit(&fb->switching, memory_order_relaxed) ||
            in_flight > 0)
            goto out;
        atomic_store_explicit(&fb->switching, false, memory_order_relaxed);
        rg__spool_cursor_destroy(fb->cur);
        fb->cur = NULL;
        /* the last segments go now ("replayed, then removed") */
        int rc = rg__spool_flush(fb->sp, 10000);
        fb_log(fb, RG_LOG_INFO, "Kafka delivers again and the spool is "
               "replayed (%" PRIu64 " messages in all)%s: back to direct "
               "sends after %.1f s degraded",
               atomic_load_explicit(&fb->n_replayed, memory_order_relaxed),
               rc == 0 ? " and removed" : "", (now_ms() - fb->entered_ms) /
               1000.0);
        goto out;
    }
    /* degraded again before the last ack (relaxed: under r_mu) */
    atomic_store_explicit(&fb->switching, false, memory_order_relaxed);
    if (atomic_load_explicit(&fb->replay_failed, memory_order_relaxed)) {
        if (in_flight > 0)
            goto out; /* F2: wait for every replayed record to come back */
        rg__spool_cursor_destroy(fb->cur);
        fb->cur = NULL;
        unhold(fb);
        /* relaxed: under r_mu, after the acquire above */
        atomic_store_explicit(&fb->replay_failed, 0, memory_order_relaxed);
    }
    if (fb->cur == NULL && (fb->cur = rg__spool_cursor_new(fb->sp)) == NULL)
        goto out;
    if (replay_some(p, &in_flight, REPLAY_WINDOW) != 1 ||
        fb_mode(fb) != RG_PRODUCER_DRAINING)
        goto out;
    pthread_mutex_lock(&fb->mu);
    if (fb_mode(fb) == RG_PRODUCER_DRAINING &&
        !atomic_load_explicit(&fb->replay_failed, memory_order_relaxed) &&
        rg__spool_sync(fb->sp, 1000) == 0 &&
        replay_some(p, &in_flight, UINT64_MAX) == 1) {
        set_mode(fb, RG_PRODUCER_DIRECT);
        atomic_store_explicit(&fb->switching, true, memory_order_relaxed);
    }
    pthread_mutex_unlock(&fb->mu);
out:
    pthread_mutex_unlock(&fb->r_mu);
}

/* Detection, tickets and replay: the poll path's share of degraded mode. */
static int fb_step(rg_producer_t *p)
{
    struct fallback *fb = p->fb;
    int n = fb_tickets(p);
    if (fb_mode(fb) == RG_PRODUCER_DIRECT) {
        int64_t now = now_ms();
        /* relaxed: hints (see fb_kafka_ok()) */
        int64_t ok = atomic_load_explicit(&fb->last_ok_ms,
                                          memory_order_relaxed);
        int64_t idle = atomic_load_explicit(&fb->idle_ms,
                                            memory_order_relaxed);
        int queued = rd_kafka_outq_len(p->rk);
        char why[320];
        if (atomic_load_explicit(&fb->all_down, memory_order_relaxed)) {
            char be[256];
            rg_producer_broker_error(p, be, sizeof(be));
            snprintf(why, sizeof(why), "every broker is down: %s", be);
            fb_degrade(fb, why);
        } else if (queued == 0) {
            atomic_store_explicit(&fb->idle_ms, now, memory_order_relaxed);
        } else if (now - (ok > idle ? ok : idle) >= fb->after_ms) {
            snprintf(why, sizeof(why), "no delivery for %" PRId64 " ms "
                     "(fallback.after.ms) with %d messages waiting",
                     now - (ok > idle ? ok : idle), queued);
            fb_degrade(fb, why);
        }
    }
    /* relaxed: a hint; fb_replay() rechecks under r_mu */
    if (fb_mode(fb) != RG_PRODUCER_DIRECT ||
        atomic_load_explicit(&fb->switching, memory_order_relaxed))
        fb_replay(p);
    return n;
}

static void fb_free(struct fallback *fb)
{
    if (fb == NULL)
        return;
    rg__spool_cursor_destroy(fb->cur);
    unhold(fb);
    rg__spool_close(fb->sp);
    for (size_t i = 0; i < fb->q_len; i++)
        free(fb->q[(fb->q_head + i) % fb->q_cap].key);
    free(fb->q);
    free(fb->dir);
    pthread_mutex_destroy(&fb->mu);
    pthread_mutex_destroy(&fb->q_mu);
    pthread_mutex_destroy(&fb->r_mu);
    free(fb);
}

/* The spool for conf's fallback.spool.dir (opts given), recovered: a spool
 * that holds records starts DEGRADED (F1: they go first). NULL + errstr. */
static struct fallback *fb_new(const rg_conf_t *conf,
                               const rg_spool_opts_t *so, char *errstr,
                               size_t size)
{
    struct fallback *fb = calloc(1, sizeof(*fb));
    if (fb == NULL) {
        snprintf(errstr, size, "producer: out of memory");
        return NULL;
    }
    pthread_mutex_init(&fb->mu, NULL);
    pthread_mutex_init(&fb->q_mu, NULL);
    pthread_mutex_init(&fb->r_mu, NULL);
    fb->log = rg_conf_log_cb(conf, &fb->log_opaque);
    fb->after_ms = rg_conf_get_int(conf, "fallback.after.ms");
    fb->block_ms = rg_conf_get_int(conf, "fallback.block.max.ms");
    fb->dir = strdup(so->dir);
    char err[512];
    fb->sp = fb->dir ? rg__spool_open(so, err, sizeof(err)) : NULL;
    if (fb->sp == NULL) {
        snprintf(errstr, size, "fallback.spool.dir: %s",
                 fb->dir ? err : "out of memory");
        fb_free(fb);
        return NULL;
    }
    rg_spool_stats_t st;
    rg__spool_stats(fb->sp, &st);
    if (st.has_last) {
        fb->producer_id = st.last_producer_id;
        fb->seq = st.last_seq + 1;
    } else if (getrandom(&fb->producer_id, sizeof(fb->producer_id), 0) !=
               (ssize_t)sizeof(fb->producer_id)) {
        fb->producer_id = (uint64_t)now_ms() * 0x9E3779B97F4A7C15ull ^
                          (uint64_t)getpid();
    }
    if (fb->producer_id == 0)
        fb->producer_id = 1; /* 0 means "no identity" to the consumer */
    int64_t now = now_ms();
    atomic_init(&fb->last_ok_ms, now);
    atomic_init(&fb->idle_ms, now);
    atomic_init(&fb->mode, RG_PRODUCER_DIRECT);
    if (st.pending > 0) {
        atomic_init(&fb->mode, RG_PRODUCER_DEGRADED);
        atomic_init(&fb->n_degraded, 1);
        fb->entered_ms = now;
        fb_log(fb, RG_LOG_WARN, "the spool in %s holds %" PRIu64 " messages "
               "not yet in Kafka (a producer stopped in degraded mode): "
               "degraded mode until they are replayed", fb->dir,
               st.pending);
    }
    return fb;
}

void rg_producer_stats(rg_producer_t *p, rg_producer_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    struct fallback *fb = p->fb;
    if (fb == NULL)
        return;
    out->mode = (rg_producer_mode_t)fb_mode(fb);
    /* relaxed: statistics */
    out->degraded = atomic_load_explicit(&fb->n_degraded,
                                         memory_order_relaxed);
    out->spooled = atomic_load_explicit(&fb->n_spooled, memory_order_relaxed);
    out->rescued = atomic_load_explicit(&fb->n_rescued, memory_order_relaxed);
    out->replayed = atomic_load_explicit(&fb->n_replayed,
                                         memory_order_relaxed);
    rg_spool_stats_t st;
    rg__spool_stats(fb->sp, &st);
    out->spool_bytes = st.bytes;
    out->spool_pending = st.pending;
}

const char *rg_producer_mode_name(rg_producer_mode_t mode)
{
    switch (mode) {
    case RG_PRODUCER_DIRECT:
        return "direct";
    case RG_PRODUCER_DEGRADED:
        return "degraded";
    case RG_PRODUCER_DRAINING:
        return "draining";
    }
    return "unknown";
}

/* ---- the producer ------------------------------------------------------ */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    (void)rk;
    rg_producer_t *p = opaque;
    if (p->fb != NULL && fb_on_delivery(p, m))
        return;
    if (p->cb != NULL) {
        rg_delivery_t d = {
            .err = m->err ? RG_EIO : 0,
            .errstr = m->err ? rd_kafka_err2str(m->err) : NULL,
            .partition = m->partition,
            .offset = m->err ? -1 : m->offset,
            .key = m->key,
            .key_len = m->key_len,
            .msg_opaque = m->_private,
        };
        p->cb(p->opaque, &d);
    }
    /* relaxed: a counter; flush() waits on librdkafka, not on this */
    atomic_fetch_sub_explicit(&p->in_flight, 1, memory_order_relaxed);
}

rg_producer_t *rg_producer_new(const rg_conf_t *given, rg_delivery_cb *cb,
                               void *opaque, char *errstr, size_t size)
{
    char rkerr[512];
    rg_conf_t *conf = rg__kafka_conf(given, errstr, size);
    if (conf == NULL)
        return NULL;
    rg_producer_t *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (p == NULL || kc == NULL) {
        snprintf(errstr, size, "producer: out of memory");
        goto fail;
    }
    pthread_mutex_init(&p->err_lock, NULL);
    rg_spool_opts_t so;
    if (rg__spool_opts_from_conf(&so, conf, errstr, size) != 0)
        goto fail;
    if (so.dir[0] != '\0' &&
        (p->fb = fb_new(conf, &so, errstr, size)) == NULL)
        goto fail;
    /* Kafka's default partitioner (the Java client's murmur2) unless the
     * configuration names another */
    rd_kafka_conf_set(kc, "partitioner", "murmur2_random", NULL, 0);
    size_t cur = 0;
    const char *name, *val;
    bool servers = false;
    while (rg_conf_next_passthrough(conf, "kafka.", &cur, &name, &val)) {
        if (rd_kafka_conf_set(kc, name, val, rkerr, sizeof(rkerr)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "kafka.%s: %s", name, rkerr);
            goto fail;
        }
        if (strcmp(name, "bootstrap.servers") == 0)
            servers = val[strspn(val, " \t,")] != '\0';
    }
    if (!servers) {
        snprintf(errstr, size, "kafka.bootstrap.servers: not set or empty "
                 "(where is the cluster?)");
        goto fail;
    }
    char mb[32];
    size_t mbs = sizeof(mb);
    if (rd_kafka_conf_get(kc, "message.max.bytes", mb, &mbs) ==
        RD_KAFKA_CONF_OK)
        p->max_bytes = (size_t)strtoull(mb, NULL, 10);
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_error_cb(kc, on_error);
    rd_kafka_conf_set_opaque(kc, p);
    p->cb = cb;
    p->opaque = opaque;
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, rkerr, sizeof(rkerr));
    if (p->rk == NULL) {
        snprintf(errstr, size, "producer: %s", rkerr);
        goto fail;
    }
    kc = NULL; /* owned by rk now */
    const char *topic = rg_conf_get_str(conf, "topic");
    p->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (p->rkt == NULL) {
        snprintf(errstr, size, "topic: \"%s\": %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    rg_conf_destroy(conf);
    return p;
fail:
    if (kc != NULL)
        rd_kafka_conf_destroy(kc);
    if (p != NULL && p->rk != NULL)
        rd_kafka_destroy(p->rk);
    if (p != NULL) {
        fb_free(p->fb);
        pthread_mutex_destroy(&p->err_lock);
    }
    free(p);
    rg_conf_destroy(conf);
    return NULL;
}

/* A send while not DIRECT (or every broker was just reported down):
 * into the spool within what is left of fallback.block.max.ms since t0.
 * 1: DIRECT after all, send it directly. */
static int send_spooled(rg_producer_t *p, const void *key, size_t key_len,
                        const void *value, size_t value_len,
                        void *msg_opaque, int64_t t0)
{
    struct fallback *fb = p->fb;
    if (fb_mode(fb) == RG_PRODUCER_DIRECT) {
        /* every broker is down: degrade now, unless another send holds mu
         * longer than this one's budget (the next send tries again) */
        if (lock_within(&fb->mu, fb->block_ms - (now_ms() - t0)) != 0)
            return 1;
        char be[256], why[320];
        rg_producer_broker_error(p, be, sizeof(be));
        snprintf(why, sizeof(why), "every broker is down: %s", be);
        fb_degrade_locked(fb, why);
        pthread_mutex_unlock(&fb->mu);
    }
    return spool_put(p, key, key_len, value, value_len, msg_opaque,
                     fb->block_ms - (now_ms() - t0), true);
}

static int send_one(rg_producer_t *p, const void *key, size_t key_len,
                    const void *value, size_t value_len, void *msg_opaque,
                    int64_t t0)
{
    if (key == NULL || key_len == 0)
        return refuse(RG_EINVAL, "no key: every message needs one (it keeps "
                      "one key's events in order on one partition)");
    if (p->max_bytes && key_len + value_len > p->max_bytes)
        return refuse(RG_EINVAL, "message of %zu bytes is over "
                      "message.max.bytes (%zu)", key_len + value_len,
                      p->max_bytes);
    if (p->fb != NULL &&
        (fb_mode(p->fb) != RG_PRODUCER_DIRECT ||
         /* relaxed: a hint (fb_note_error()) */
         atomic_load_explicit(&p->fb->all_down, memory_order_relaxed))) {
        int rc = send_spooled(p, key, key_len, value, value_len, msg_opaque,
                              t0 ? t0 : now_ms());
        if (rc <= 0)
            return rc;
    }
    /* relaxed: a counter (see on_delivery) */
    atomic_fetch_add_explicit(&p->in_flight, 1, memory_order_relaxed);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_RKT(p->rkt),
        RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    atomic_fetch_sub_explicit(&p->in_flight, 1, memory_order_relaxed);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return refuse(RG_EFULL, "the producer queue is full (poll or "
                      "flush, then send again)");
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        return refuse(RG_EINVAL, "message over message.max.bytes");
    return refuse(RG_EIO, "produce: %s", rd_kafka_err2str(err));
}

int rg_producer_send_bytes(rg_producer_t *p, const void *key, size_t key_len,
                           const void *value, size_t value_len,
                           void *msg_opaque)
{
    return send_one(p, key, key_len, value, value_len, msg_opaque, 0);
}

int rg_producer_send_string(rg_producer_t *p, const char *key,
                            const char *value, void *msg_opaque)
{
    if (value == NULL)
        return refuse(RG_EINVAL, "NULL value");
    return send_one(p, key, key ? strlen(key) : 0, value, strlen(value),
                    msg_opaque, 0);
}

int rg_producer_send_json(rg_producer_t *p, const char *key,
                          const char *json, void *msg_opaque)
{
    if (json == NULL)
        return refuse(RG_EINVAL, "NULL value");
    size_t len = strlen(json);
    if (!json_ok(json, len))
        return refuse(RG_EINVAL, "value is not one well-formed JSON value");
    return send_one(p, key, key ? strlen(key) : 0, json, len, msg_opaque, 0);
}

size_t rg_producer_send_batch(rg_producer_t *p, const rg_produce_msg_t *msgs,
                              size_t n)
{
    /* one fallback.block.max.ms budget for the whole call */
    int64_t t0 = p->fb != NULL ? now_ms() : 0;
    for (size_t i = 0; i < n; i++)
        if (send_one(p, msgs[i].key, msgs[i].key_len, msgs[i].value,
                     msgs[i].value_len, msgs[i].msg_opaque, t0) != 0)
            return i;
    return n;
}

/* Degraded mode's poll: librdkafka in slices of at most 10 ms, so tickets
 * and the replay move while the caller waits. */
static int fb_poll(rg_producer_t *p, int timeout_ms)
{
    int64_t end = now_ms() + (timeout_ms < 0 ? INT32_MAX : timeout_ms);
    int n = 0;
    for (;;) {
        int64_t left = end - now_ms();
        n += rd_kafka_poll(p->rk, left <= 0 ? 0 : left < 10 ? (int)left : 10);
        n += fb_step(p);
        if (n > 0 || now_ms() >= end)
            return n;
    }
}

/* Degraded mode's flush: until every message accepted has had its
 * callback (a spooled one once durable: the spool is synced now). */
static int fb_flush(rg_producer_t *p, int timeout_ms)
{
    int64_t end = now_ms() + (timeout_ms < 0 ? INT32_MAX : timeout_ms);
    for (;;) {
        fb_step(p);
        if (rg_producer_in_flight(p) == 0)
            return 0;
        pthread_mutex_lock(&p->fb->q_mu);
        size_t tickets = p->fb->q_len;
        pthread_mutex_unlock(&p->fb->q_mu);
        int64_t left = end - now_ms();
        if (left <= 0)
            return refuse(RG_ETIMEDOUT, "flush: timed out (mode %s: %zu "
                          "spooled messages not yet durable, %zu messages "
                          "waiting in librdkafka for Kafka; destroy spools "
                          "those)", rg_producer_mode_name(
                              (rg_producer_mode_t)fb_mode(p->fb)),
                          tickets, rg_producer_in_flight(p) - tickets);
        if (tickets > 0)
            rg__spool_sync(p->fb->sp, (int)(left < 10000 ? left : 10000));
        rd_kafka_poll(p->rk, left < 10 ? (int)left : 10);
    }
}

/* Destroy with a spool: what librdkafka still holds goes to the spool
 * (F3), then the spool is made durable and closed. */
static void fb_shutdown(rg_producer_t *p)
{
    if (fb_mode(p->fb) == RG_PRODUCER_DIRECT)
        fb_flush(p, 10000);
    else
        fb_flush(p, 0);
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    int64_t end = now_ms() + 5000;
    while (rd_kafka_outq_len(p->rk) > 0 && now_ms() < end)
        rd_kafka_poll(p->rk, 10);
    rg__spool_sync(p->fb->sp, 10000);
    fb_tickets(p);
}

int rg_producer_poll(rg_producer_t *p, int timeout_ms)
{
    if (p->fb != NULL)
        return fb_poll(p, timeout_ms);
    return rd_kafka_poll(p->rk, timeout_ms);
}

int rg_producer_flush(rg_producer_t *p, int timeout_ms)
{
    if (p->fb != NULL)
        return fb_flush(p, timeout_ms);
    rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    return refuse(RG_ETIMEDOUT, "flush: %s (%zu messages in flight)",
                  rd_kafka_err2str(err), rg_producer_in_flight(p));
}

size_t rg_producer_in_flight(const rg_producer_t *p)
{
    /* relaxed: a counter */
    return atomic_load_explicit(&p->in_flight, memory_order_relaxed);
}

void rg_producer_destroy(rg_producer_t *p)
{
    if (p == NULL)
        return;
    if (p->fb != NULL)
        fb_shutdown(p);
    else
        rd_kafka_flush(p->rk, 10000);
    rd_kafka_topic_destroy(p->rkt);
    rd_kafka_destroy(p->rk);
    fb_free(p->fb);
    pthread_mutex_destroy(&p->err_lock);
    free(p);
}
