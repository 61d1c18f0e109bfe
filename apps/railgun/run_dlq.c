/*
 * run_dlq.c - the dlq.topic forwarder of `railgun run` (see run_dlq.h).
 * One thread role: the forwarder thread runs every look, every database
 * call and every producer call; the main thread only starts and stops
 * it. The counters are read by the stats thread and the metrics
 * listener under `lock`.
 *
 * Invariant: a row is marked forwarded only after its delivery report
 * said Kafka has it; every message of a look has its report (or was
 * purged with the producer) before the next look sends anything, so a
 * look never sends a row the previous one still has in flight.
 */
#define _GNU_SOURCE
#include "run_dlq.h"
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dlq_json.h"
#include "dlq_store.h"
#include "likes_job.h"
#include "railgun/error.h"
#include "railgun/producer.h"
#include "railgun/sink.h"

/* Partitions one look asks for at most (the source's ack.max.partitions
 * bounds what it holds). */
#define MAX_PARTS 4096

/* Letters one look sends at most; a full look is followed by the next at
 * once. Bounds the items array and how long a look keeps a stop waiting. */
#define LOOK_MAX 1000

/* One letter of a look: where it is, and what its delivery said. */
struct item {
    int32_t partition;
    int64_t offset;
    int state; /* 0 in flight, 1 delivered, -1 failed */
};

struct rg_run_dlq_s {
    rg_kafka_source_t *src;
    rg_sink_t sink;          /* a second instance: the scans */
    bool sink_open;
    rg_dlq_store_t *store;   /* the marks */
    rg_producer_t *prod;
    char topic[256];         /* the source's */
    int64_t poll_ms, timeout_ms;

    /* forwarder thread only */
    int32_t held[MAX_PARTS]; /* the partitions held now */
    size_t nheld;
    int32_t last[MAX_PARTS]; /* the last set that was not empty: the stop's
                                look (the source holds none after close) */
    size_t nlast;
    struct item *items;
    size_t nitems, cap;
    bool full;               /* the look reached LOOK_MAX */
    bool final_look;         /* the stop's look: cut at deadline_ms */
    int64_t deadline_ms;     /* mono_ms() */
    bool broken;             /* the look cannot go on (out of memory) */
    char *buf;               /* the value being built */
    size_t buf_size;
    char why[256];           /* the look's first delivery error */

    pthread_t th;
    bool started;
    pthread_mutex_t lock;    /* guards the below */
    pthread_cond_t wake;
    _Atomic bool stopping;   /* also read by the forwarder's sends
                                (relaxed: a flag; the lock orders the
                                rest) */
    int stop_timeout_ms;
    int32_t final[MAX_PARTS]; /* rg_run_dlq_note_held()'s set */
    size_t nfinal;
    rg_run_dlq_stats_t stats;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True when the look must stop sending: a stop was asked (the stop's own
 * look: its deadline passed). Forwarder thread. */
static bool cut(const rg_run_dlq_t *d)
{
    if (d->final_look)
        return mono_ms() > d->deadline_ms;
    /* relaxed: a flag; what was not sent waits in the table */
    return atomic_load_explicit(&d->stopping, memory_order_relaxed);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool rg_run_dlq_wanted(const rg_conf_t *conf)
{
    const char *t = rg_conf_get_str(conf, "dlq.topic");
    return t != NULL && t[0] != '\0';
}

/* Delivery report (forwarder thread, from poll or flush). */
static void on_delivery(void *opaque, const rg_delivery_t *dr)
{
    rg_run_dlq_t *d = opaque;
    size_t i = (size_t)(uintptr_t)dr->msg_opaque;
    /* a look sends only once the one before has every report (look()),
     * so a report is this look's; past nitems: a look that sent nothing */
    if (i >= d->nitems)
        return;
    d->items[i].state = dr->err == 0 && dr->offset >= 0 ? 1 : -1;
    if (d->items[i].state < 0 && d->why[0] == '\0')
        snprintf(d->why, sizeof(d->why), "%s",
                 dr->errstr ? dr->errstr : "not delivered");
}

/* The scan's callback: one letter produced (forwarder thread). */
static void send_row(void *arg, const rg_failure_t *f)
{
    rg_run_dlq_t *d = arg;
    if (d->broken || cut(d))
        return;
    if (d->nitems == LOOK_MAX) {
        d->full = true; /* the rest at the next look, right after */
        return;
    }
    if (d->nitems == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        struct item *it = realloc(d->items, cap * sizeof(*it));
        if (it == NULL) {
            d->broken = true;
            return;
        }
        d->items = it;
        d->cap = cap;
    }
    char key[320];
    int kn = snprintf(key, sizeof(key), "%s/%" PRId32 "/%" PRId64, d->topic,
                      f->partition, f->offset);
    FILE *m = open_memstream(&d->buf, &d->buf_size);
    if (m == NULL) {
        d->broken = true;
        return;
    }
    fputs("{\"topic\":", m);
    rg_dlq_json_bytes(m, d->topic, strlen(d->topic));
    fputc(',', m);
    rg_dlq_json_fields(m, f);
    fputc('}', m);
    if (fclose(m) != 0) {
        free(d->buf);
        d->buf = NULL;
        d->broken = true;
        return;
    }
    size_t i = d->nitems++;
    d->items[i] = (struct item){f->partition, f->offset, 0};
    int rc;
    while ((rc = rg_producer_send_bytes(d->prod, key, (size_t)kn, d->buf,
                                        d->buf_size, (void *)(uintptr_t)i)) ==
               RG_EFULL &&
           !cut(d))
        rg_producer_poll(d->prod, 100);
    free(d->buf);
    d->buf = NULL;
    if (rc != 0) {
        /* this row only (too large for the topic, say): the others go
         * on; it stays unmarked and is tried again at every look */
        d->items[i].state = -1;
        if (d->why[0] == '\0')
            snprintf(d->why, sizeof(d->why), "%" PRId32 ":%" PRId64
                     " refused: %s", f->partition, f->offset,
                     rc == RG_EFULL ? "stopping" : rg_producer_last_error());
    }
}

/* One look at parts[0..n): sends the unforwarded rows, waits for their
 * reports for at most wait_ms, marks the delivered ones. */
static void look(rg_run_dlq_t *d, const int32_t *parts, size_t n,
                 int wait_ms)
{
    char err[512], merr[512];
    /* an earlier look whose flush timed out: its messages get their
     * reports (librdkafka's message timeout) before anything is sent
     * again, so no row is in flight twice and every report below is this
     * look's (a wait cut by a stop sends nothing: cut() holds) */
    while (rg_producer_in_flight(d->prod) > 0 && !cut(d))
        rg_producer_poll(d->prod, 100);
    d->nitems = 0;
    d->full = d->broken = false;
    d->why[0] = '\0';
    int rc = d->sink.scan_failures(d->sink.self, RG_FAILURE_UNFORWARDED,
                                   parts, n, send_row, d, err, sizeof(err));
    if (rc == 0 && d->broken) {
        rc = RG_ENOMEM;
        snprintf(err, sizeof(err), "out of memory");
    }
    rg_producer_flush(d->prod, wait_ms);
    /* what is still in flight stays unmarked: the next look waits for
     * its report, then sends it again (or the next run does) */
    uint64_t delivered = 0, failed = 0;
    rg_dlq_at_t *at = d->nitems ? malloc(d->nitems * sizeof(*at)) : NULL;
    for (size_t i = 0; i < d->nitems; i++) {
        if (d->items[i].state > 0 && at != NULL)
            at[delivered++] = (rg_dlq_at_t){d->items[i].partition,
                                            d->items[i].offset};
        else if (d->items[i].state < 0)
            failed++;
    }
    size_t marked = 0; /* a row no longer dead is not marked: fine */
    int mrc = delivered ? rg_dlq_store_mark(d->store, RG_DLQ_FORWARDED, at,
                                            delivered, now_ms(), &marked,
                                            merr, sizeof(merr))
                        : 0;
    free(at);
    pthread_mutex_lock(&d->lock);
    d->stats.looks++;
    d->stats.forwarded += mrc == 0 ? delivered : 0;
    d->stats.failed += failed;
    /* not counted: rows past LOOK_MAX (the next look, at once, sees them) */
    d->stats.pending = d->nitems - (mrc == 0 ? delivered : 0);
    if (rc != 0 || mrc != 0)
        d->stats.errors++;
    if (rc != 0)
        snprintf(d->stats.last_error, sizeof(d->stats.last_error),
                 "scan: %.200s", err);
    else if (mrc != 0)
        snprintf(d->stats.last_error, sizeof(d->stats.last_error),
                 "mark: %.200s", merr);
    else if (d->why[0] != '\0')
        snprintf(d->stats.last_error, sizeof(d->stats.last_error),
                 "delivery: %.200s", d->why);
    pthread_mutex_unlock(&d->lock);
}

/* The partitions the source holds now into d->held, and into d->last
 * when there are any. True when the set gained a partition. */
static bool refresh_held(rg_run_dlq_t *d)
{
    rg_kafka_partition_t *ps = malloc(MAX_PARTS * sizeof(*ps));
    if (ps == NULL)
        return false; /* the last set stays: a look too many is harmless */
    size_t n = rg_kafka_source_partitions(d->src, ps, MAX_PARTS);
    if (n > MAX_PARTS)
        n = MAX_PARTS;
    bool gained = false;
    for (size_t i = 0; i < n; i++) {
        /* both ascending: a partition not in the old set is new */
        bool had = false;
        for (size_t j = 0; j < d->nheld && !had; j++)
            had = d->held[j] == ps[i].partition;
        gained |= !had;
    }
    for (size_t i = 0; i < n; i++)
        d->held[i] = ps[i].partition;
    d->nheld = n;
    if (n > 0) {
        memcpy(d->last, d->held, n * sizeof(d->held[0]));
        d->nlast = n;
    }
    free(ps);
    return gained;
}

/* The held set is read every HELD_MS (a lock and a scan of flags in the
 * source), so a partition that arrives is looked at at once and the stop's
 * look knows what was held; the table is read every dlq.topic.poll.ms. */
#define HELD_MS 100

static void *forwarder_main(void *arg)
{
    rg_run_dlq_t *d = arg;
    int wait_ms = (int)d->timeout_ms + 5000;
    int64_t next_look = 0;
    for (;;) {
        int64_t now = mono_ms();
        if (refresh_held(d))
            next_look = now; /* a new partition: its letters now */
        if (d->nheld > 0 && now >= next_look) {
            look(d, d->held, d->nheld, wait_ms);
            /* a full look: the rest right away */
            next_look = d->full ? 0 : mono_ms() + d->poll_ms;
        } else if (d->nheld == 0) {
            pthread_mutex_lock(&d->lock);
            d->stats.pending = 0; /* none of this node's now */
            pthread_mutex_unlock(&d->lock);
        }
        int64_t nap = next_look == 0 ? 0
                      : d->poll_ms < HELD_MS ? d->poll_ms : HELD_MS;
        pthread_mutex_lock(&d->lock);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + nap * 1000000;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        /* relaxed: the flag is written under the lock we hold */
        while (nap > 0 &&
               !atomic_load_explicit(&d->stopping, memory_order_relaxed) &&
               pthread_cond_timedwait(&d->wake, &d->lock, &until) != ETIMEDOUT)
            ;
        bool stop = atomic_load_explicit(&d->stopping, memory_order_relaxed);
        int last_ms = d->stop_timeout_ms;
        size_t nfinal = d->nfinal;
        pthread_mutex_unlock(&d->lock);
        if (stop) {
            /* the run's last epochs committed: their letters go now, for
             * the partitions held when the source stopped (or last seen),
             * within last_ms */
            d->final_look = true;
            d->deadline_ms = mono_ms() + last_ms;
            if (nfinal > 0)
                look(d, d->final, nfinal, last_ms);
            else if (d->nlast > 0)
                look(d, d->last, d->nlast, last_ms);
            return NULL;
        }
    }
}

void rg_run_dlq_note_held(rg_run_dlq_t *d)
{
    if (d == NULL)
        return;
    rg_kafka_partition_t *ps = malloc(MAX_PARTS * sizeof(*ps));
    if (ps == NULL)
        return;
    size_t n = rg_kafka_source_partitions(d->src, ps, MAX_PARTS);
    if (n > MAX_PARTS)
        n = MAX_PARTS;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < n; i++)
        d->final[i] = ps[i].partition;
    d->nfinal = n;
    pthread_mutex_unlock(&d->lock);
    free(ps);
}

int rg_run_dlq_new(const rg_conf_t *conf, rg_kafka_source_t *src,
                   rg_run_dlq_t **out, char *errstr, size_t size)
{
    *out = NULL;
    const char *topic = rg_conf_get_str(conf, "topic");
    const char *dlq = rg_conf_get_str(conf, "dlq.topic");
    if (strcmp(topic, dlq) == 0) {
        snprintf(errstr, size, "dlq.topic: \"%s\" is the topic the job "
                 "consumes: dead letters would come back as input", dlq);
        return RG_EINVAL;
    }
    if (strlen(topic) >= sizeof(((rg_run_dlq_t *)0)->topic)) {
        snprintf(errstr, size, "topic: longer than %zu bytes",
                 sizeof(((rg_run_dlq_t *)0)->topic) - 1);
        return RG_EINVAL;
    }
    const char *kind = rg_conf_get_str(conf, "sink");
    const char *table = rg_conf_get_str(conf, "sink.table.failures");
    if (strcmp(kind, "null") == 0 || table[0] == '\0') {
        snprintf(errstr, size, "dlq.topic: sink=%s%s keeps no dead letters "
                 "to forward (use sqlite or mysql with a failures table)",
                 kind, table[0] ? "" : " with sink.table.failures empty");
        return RG_EINVAL;
    }
    rg_run_dlq_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(errstr, size, "dlq.topic: out of memory");
        return RG_ENOMEM;
    }
    d->src = src;
    snprintf(d->topic, sizeof(d->topic), "%s", topic);
    d->poll_ms = rg_conf_get_int(conf, "dlq.topic.poll.ms");
    d->timeout_ms = rg_conf_get_int(conf, "dlq.topic.timeout.ms");
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake, &ca);
    pthread_condattr_destroy(&ca);
    char err[512];
    int rc = rg_likes_open_sink(conf, 0, &d->sink, err, sizeof(err));
    if (rc == 0) {
        d->sink_open = true;
        rc = rg_dlq_store_open(conf, RG_DLQ_WRITE, &d->store, err,
                               sizeof(err));
    }
    if (rc != 0) {
        snprintf(errstr, size, "dlq.topic: %s", err);
        rg_run_dlq_destroy(d);
        return rc;
    }
    /* the producer: the job's cluster, no spool (the rows wait in the
     * table instead), a final report within dlq.topic.timeout.ms */
    rg_conf_t *pc = rg_conf_dup(conf);
    char tms[24];
    snprintf(tms, sizeof(tms), "%" PRId64, d->timeout_ms);
    rc = pc == NULL ? RG_ENOMEM : rg_conf_set(pc, "topic", dlq, err,
                                              sizeof(err));
    if (rc == 0)
        rc = rg_conf_set(pc, "fallback.spool.dir", "", err, sizeof(err));
    if (rc == 0)
        rc = rg_conf_set(pc, "kafka.message.timeout.ms", tms, err,
                         sizeof(err));
    if (rc == 0 && (d->prod = rg_producer_new(pc, on_delivery, d, err,
                                               sizeof(err))) == NULL)
        rc = RG_EINVAL;
    rg_conf_destroy(pc);
    if (rc != 0) {
        snprintf(errstr, size, "dlq.topic: %s",
                 rc == RG_ENOMEM ? "out of memory" : err);
        rg_run_dlq_destroy(d);
        return rc;
    }
    *out = d;
    return 0;
}

int rg_run_dlq_start(rg_run_dlq_t *d, char *errstr, size_t size)
{
    int rc = pthread_create(&d->th, NULL, forwarder_main, d);
    if (rc != 0) {
        snprintf(errstr, size, "dlq.topic: cannot start the forwarder "
                 "thread: %s", strerror(rc));
        return RG_ESYS;
    }
    d->started = true;
    return 0;
}

void rg_run_dlq_stop(rg_run_dlq_t *d, int timeout_ms)
{
    if (d == NULL || !d->started)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop_timeout_ms = timeout_ms;
    /* relaxed: the lock orders it for the wait; the sends only need to
     * see it eventually */
    atomic_store_explicit(&d->stopping, true, memory_order_relaxed);
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->th, NULL);
    d->started = false;
}

void rg_run_dlq_stats(rg_run_dlq_t *d, rg_run_dlq_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    *out = d->stats;
    pthread_mutex_unlock(&d->lock);
}

void rg_run_dlq_destroy(rg_run_dlq_t *d)
{
    if (d == NULL)
        return;
    rg_run_dlq_stop(d, 0);
    /* purges what is still in flight: unmarked, so sent again later */
    rg_producer_destroy(d->prod);
    rg_dlq_store_close(d->store);
    if (d->sink_open && d->sink.close)
        d->sink.close(d->sink.self);
    free(d->items);
    free(d->buf);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
