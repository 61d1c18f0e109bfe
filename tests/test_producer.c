/*
 * test_producer.c - the producer SDK against librdkafka's mock cluster
 * (the real Kafka protocol, in process): a batch is delivered with one
 * callback per message, one key always lands on one partition in send
 * order, and bad input (no key, an oversized value, malformed JSON, an
 * unknown kafka.* property, no bootstrap servers) is refused at the call
 * with a reason and nothing sent.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/railgun.h"
#include "railgun/kafka.h"
#include "railgun/producer.h"

#define NPART 8
#define NKEYS 50

struct cluster {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

static void cluster_start(struct cluster *c)
{
    char err[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    cr_assert_not_null(c->rk, "%s", err);
    c->mc = rd_kafka_mock_cluster_new(c->rk, 3);
    cr_assert_not_null(c->mc);
    cr_assert_eq(rd_kafka_mock_topic_create(c->mc, "likes", NPART, 1),
                 RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void cluster_stop(struct cluster *c)
{
    rd_kafka_mock_cluster_destroy(c->mc);
    rd_kafka_destroy(c->rk);
}

static rg_conf_t *producer_conf(struct cluster *c)
{
    rg_conf_t *conf = rg_conf_new();
    rg_conf_add_table(conf, rg_kafka_conf_table(), NULL, 0);
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "kafka.bootstrap.servers",
                             rd_kafka_mock_cluster_bootstraps(c->mc), err,
                             sizeof(err)), 0, "%s", err);
    rg_conf_set(conf, "kafka.log_level", "0", err, sizeof(err));
    return conf;
}

struct seen {
    size_t calls, errors;
    int32_t part_of[NKEYS];
    int64_t last_off[NKEYS];
    size_t misplaced, out_of_order;
};

static void on_delivery(void *opaque, const rg_delivery_t *d)
{
    struct seen *s = opaque;
    s->calls++;
    if (d->err) {
        s->errors++;
        return;
    }
    int k = (int)(intptr_t)d->msg_opaque;
    if (s->part_of[k] < 0)
        s->part_of[k] = d->partition;
    else if (s->part_of[k] != d->partition)
        s->misplaced++;
    if (d->offset <= s->last_off[k])
        s->out_of_order++;
    s->last_off[k] = d->offset;
}

Test(producer, batch_delivered_once_each_key_on_one_partition_in_order)
{
    struct cluster c;
    cluster_start(&c);
    rg_conf_t *conf = producer_conf(&c);
    struct seen s = {0};
    for (int k = 0; k < NKEYS; k++) {
        s.part_of[k] = -1;
        s.last_off[k] = -1;
    }
    char err[256];
    rg_producer_t *p = rg_producer_new(conf, on_delivery, &s, err,
                                       sizeof(err));
    cr_assert_not_null(p, "%s", err);
    enum { N = 5000 };
    static char keys[N][8], vals[N][64];
    static rg_produce_msg_t msgs[N];
    for (int i = 0; i < N; i++) {
        int k = i % NKEYS;
        int kl = snprintf(keys[i], sizeof(keys[i]), "%d", k + 1);
        int vl = snprintf(vals[i], sizeof(vals[i]), "{\"video_id\": %d, "
                          "\"user_id\": %d, \"state\": 1}", k + 1, i + 1);
        msgs[i] = (rg_produce_msg_t){keys[i], (size_t)kl, vals[i],
                                     (size_t)vl, (void *)(intptr_t)k};
    }
    cr_assert_eq(rg_producer_send_batch(p, msgs, N), (size_t)N, "%s",
                 rg_producer_last_error());
    cr_assert_eq(rg_producer_flush(p, 30000), 0, "%s",
                 rg_producer_last_error());
    cr_assert_eq(s.calls, (size_t)N, "one delivery callback per message");
    cr_assert_eq(s.errors, 0u);
    cr_assert_eq(s.misplaced, 0u, "a key moved between partitions");
    cr_assert_eq(s.out_of_order, 0u, "a key's messages out of send order");
    cr_assert_eq(rg_producer_in_flight(p), 0u);
    /* several partitions are in use: the key decides, not one default */
    int used[NPART] = {0}, nused = 0;
    for (int k = 0; k < NKEYS; k++)
        if (!used[s.part_of[k]]++)
            nused++;
    cr_assert_gt(nused, 4);
    /* no fallback.spool.dir: no degraded mode, nothing counted */
    rg_producer_stats_t st;
    memset(&st, 0xff, sizeof(st));
    rg_producer_stats(p, &st);
    cr_assert_eq(st.mode, RG_PRODUCER_DIRECT);
    cr_assert(st.degraded == 0 && st.spooled == 0 && st.replayed == 0 &&
              st.spool_bytes == 0 && st.spool_pending == 0);
    rg_producer_destroy(p);
    rg_conf_destroy(conf);
    cluster_stop(&c);
}

Test(producer, bad_input_is_refused_with_a_reason_and_nothing_sent)
{
    struct cluster c;
    cluster_start(&c);
    rg_conf_t *conf = producer_conf(&c);
    char err[256];
    rg_conf_set(conf, "kafka.message.max.bytes", "10000", err, sizeof(err));
    struct seen s = {0};
    for (int k = 0; k < NKEYS; k++)
        s.part_of[k] = -1, s.last_off[k] = -1;
    rg_producer_t *p = rg_producer_new(conf, on_delivery, &s, err,
                                       sizeof(err));
    cr_assert_not_null(p, "%s", err);

    cr_assert_eq(rg_producer_send_string(p, NULL, "{}", NULL), RG_EINVAL);
    cr_assert(strstr(rg_producer_last_error(), "key") != NULL);
    cr_assert_eq(rg_producer_send_bytes(p, "", 0, "{}", 2, NULL), RG_EINVAL);
    static char big[20000];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(rg_producer_send_bytes(p, "1", 1, big, sizeof(big), NULL),
                 RG_EINVAL);
    cr_assert(strstr(rg_producer_last_error(), "message.max.bytes") != NULL,
              "%s", rg_producer_last_error());
    static const char *const bad_json[] = {
        "", "{", "{\"a\": 1,}", "[1 2]", "{\"a\" 1}", "01", "1.", "-",
        "\"unterminated", "\"bad \\x escape\"", "{\"a\": 1} trailing",
        "\"\xff\"", "\"\xed\xa0\x80\"", "nul", "{'a': 1}", "[1,]",
        "\"ctl \x01\"",
    };
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        cr_assert_eq(rg_producer_send_json(p, "1", bad_json[i], NULL),
                     RG_EINVAL, "accepted bad JSON #%zu: %s", i,
                     bad_json[i]);
        cr_assert(strstr(rg_producer_last_error(), "JSON") != NULL);
    }
    char deep[201];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    cr_assert_eq(rg_producer_send_json(p, "1", deep, NULL), RG_EINVAL,
                 "nesting past 64 levels");
    cr_assert_eq(rg_producer_in_flight(p), 0u, "a refusal sent something");
    static const char *const good_json[] = {
        "{\"video_id\": 1, \"user_id\": 2, \"state\": 1}", " [1, -2.5e+3, "
        "true, false, null, \"\\u00e9\\n\", {}] ", "\"caf\xc3\xa9\"", "0",
    };
    for (size_t i = 0; i < sizeof(good_json) / sizeof(good_json[0]); i++)
        cr_assert_eq(rg_producer_send_json(p, "1", good_json[i],
                                           (void *)(intptr_t)0),
                     0, "refused good JSON #%zu: %s", i,
                     rg_producer_last_error());
    cr_assert_eq(rg_producer_flush(p, 30000), 0);
    cr_assert_eq(s.calls, sizeof(good_json) / sizeof(good_json[0]),
                 "only the accepted messages were delivered");
    rg_producer_destroy(p);

    /* configuration errors name the property */
    rg_conf_set(conf, "kafka.no.such.property", "1", err, sizeof(err));
    cr_assert_null(rg_producer_new(conf, NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "kafka.no.such.property") != NULL, "%s", err);
    rg_conf_destroy(conf);
    /* a spool directory that cannot be made: refused, named */
    conf = producer_conf(&c);
    cr_assert_eq(rg_conf_set(conf, "fallback.spool.dir", "/dev/null/spool",
                             err, sizeof(err)), 0, "%s", err);
    cr_assert_null(rg_producer_new(conf, NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "fallback.spool.dir") != NULL, "%s", err);
    rg_conf_destroy(conf);
    rg_conf_t *empty = rg_conf_new();
    rg_conf_add_table(empty, rg_kafka_conf_table(), NULL, 0);
    cr_assert_null(rg_producer_new(empty, NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "kafka.bootstrap.servers") != NULL, "%s", err);
    rg_conf_destroy(empty);
    cluster_stop(&c);
}

/* ---- degraded mode: the durable spool (fallback.*) --------------------- */

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXID 20000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The test's spool directory, also removed by .fini when a test fails. */
static char spool_dir[64];

static void rm_dir(const char *dir);

static void cleanup(void)
{
    if (spool_dir[0] != '\0')
        rm_dir(spool_dir);
}

/* A fresh spool directory under /tmp (removed by rm_dir()). */
static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/rg-fallback-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(spool_dir, sizeof(spool_dir), "%s", dir);
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".seg") != NULL)
            n++;
    closedir(d);
    return n;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    bool gone = rmdir(dir) == 0;
    if (strcmp(dir, spool_dir) == 0)
        spool_dir[0] = '\0';
    cr_assert(gone, "%s left behind", dir);
}

/* The log lines of the producer (sends and pollers log: a lock). */
struct logbuf {
    pthread_mutex_t mu;
    char text[16384];
};

static void on_log(void *opaque, rg_log_level_t level, const char *who,
                   const char *line)
{
    (void)level;
    struct logbuf *l = opaque;
    pthread_mutex_lock(&l->mu);
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof(l->text) - n, "%s: %s\n", who, line);
    pthread_mutex_unlock(&l->mu);
}

static rg_conf_t *fallback_conf(const char *servers, const char *dir,
                                struct logbuf *log)
{
    rg_conf_t *conf = rg_conf_new();
    char err[256];
    cr_assert_eq(rg_conf_add_table(conf, rg_kafka_conf_table(), err,
                                   sizeof(err)), 0, "%s", err);
    static const char *const props[][2] = {
        {"kafka.log_level", "0"},
        {"kafka.message.timeout.ms", "120000"},
        {"kafka.reconnect.backoff.max.ms", "100"},
        {"fallback.after.ms", "500"},
        {"fallback.block.max.ms", "100"},
    };
    cr_assert_eq(rg_conf_set(conf, "kafka.bootstrap.servers", servers, err,
                             sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
        cr_assert_eq(rg_conf_set(conf, props[i][0], props[i][1], err,
                                 sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_set(conf, "fallback.spool.dir", dir, err,
                             sizeof(err)), 0, "%s", err);
    if (log != NULL)
        rg_conf_set_log_cb(conf, on_log, log);
    return conf;
}

/* What the delivery callbacks said, per message id (the msg_opaque). */
struct reports {
    size_t delivered, spooled, errors;
    unsigned char calls[MAXID];
    char last_err[256];
};

static void on_report(void *opaque, const rg_delivery_t *d)
{
    struct reports *r = opaque;
    int id = (int)(intptr_t)d->msg_opaque;
    if (id >= 0 && id < MAXID)
        r->calls[id]++;
    if (d->err) {
        r->errors++;
        snprintf(r->last_err, sizeof(r->last_err), "%s", d->errstr);
    } else if (d->partition < 0 && d->offset < 0) {
        r->spooled++;
    } else {
        r->delivered++;
    }
}

/* Sends message `id` (key = id % NKEYS). */
static int send_id(rg_producer_t *p, int id, size_t pad)
{
    char key[16], val[512];
    int kl = snprintf(key, sizeof(key), "%d", id % NKEYS + 1);
    int vl = snprintf(val, sizeof(val), "{\"id\": %d, \"pad\": \"%.*s\"}",
                      id, (int)pad, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    return rg_producer_send_bytes(p, key, (size_t)kl, val, (size_t)vl,
                                  (void *)(intptr_t)id);
}

/* Polls until n messages were reported spooled (durable). */
static void wait_spooled(rg_producer_t *p, const struct reports *r, size_t n)
{
    double end = now_s() + 30;
    while (r->spooled < n) {
        cr_assert_lt(now_s(), end, "%zu of %zu reported spooled",
                     r->spooled, n);
        rg_producer_poll(p, 20);
    }
}

static rg_producer_mode_t mode_of(rg_producer_t *p)
{
    rg_producer_stats_t st;
    rg_producer_stats(p, &st);
    return st.mode;
}

/* Sets every broker down and polls until the producer says it is
 * degraded; with `probe`, sends (ids from *next) meanwhile, so the
 * detection sees messages wait. */
static void go_down(struct cluster *c, rg_producer_t *p, int *next,
                    bool probe)
{
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_down(c->mc, b);
    double end = now_s() + 30;
    while (mode_of(p) == RG_PRODUCER_DIRECT) {
        cr_assert_lt(now_s(), end, "not degraded 30 s after every broker "
                     "went down");
        if (probe)
            cr_assert_eq(send_id(p, (*next)++, 0), 0, "%s",
                         rg_producer_last_error());
        rg_producer_poll(p, 20);
    }
}

/* Sets every broker up and polls until the producer sends directly
 * again; with next, sends (ids from *next) meanwhile: they go to the spool
 * until it is drained, and must not overtake it. */
static void go_up(struct cluster *c, rg_producer_t *p, int *next)
{
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_up(c->mc, b);
    double end = now_s() + 60;
    rg_producer_stats_t st;
    for (;;) {
        rg_producer_stats(p, &st);
        if (st.mode == RG_PRODUCER_DIRECT && st.spool_pending == 0)
            break;
        cr_assert_lt(now_s(), end, "still %s (%" PRIu64 " spooled messages "
                     "not replayed) 60 s after the brokers came back",
                     rg_producer_mode_name(st.mode), st.spool_pending);
        if (next != NULL)
            cr_assert_eq(send_id(p, (*next)++, 0), 0, "%s",
                         rg_producer_last_error());
        rg_producer_poll(p, next != NULL ? 1 : 20);
    }
}

/*
 * Consumes the whole topic and checks: every id in [0, n) except those in
 * `refused` is there exactly once, nothing else, and one key's ids from
 * order_from on come in increasing (send) order.
 */
static void check_topic(const char *servers, int n, const bool *refused,
                        int order_from)
{
    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", servers, NULL, 0);
    rd_kafka_conf_set(kc, "group.id", "fallback-check", NULL, 0);
    rd_kafka_conf_set(kc, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(kc, "log_level", "0", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
    cr_assert_not_null(rk, "%s", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *a =
        rd_kafka_topic_partition_list_new(NPART);
    for (int32_t i = 0; i < NPART; i++)
        rd_kafka_topic_partition_list_add(a, "likes", i)->offset = 0;
    cr_assert_eq(rd_kafka_assign(rk, a), 0);
    rd_kafka_topic_partition_list_destroy(a);
    int expect = 0;
    for (int i = 0; i < n; i++)
        expect += refused == NULL || !refused[i];
    static int times[MAXID];
    memset(times, 0, sizeof(times));
    int last[NKEYS + 1];
    for (int k = 0; k <= NKEYS; k++)
        last[k] = -1;
    int got = 0, out_of_order = 0, stray = 0;
    double end = now_s() + 60, quiet = 0;
    while (now_s() < end && (got < expect || now_s() < quiet)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int id = -1, key = -1;
            char v[64], k[16];
            snprintf(v, sizeof(v), "%.*s", (int)(m->len < 63 ? m->len : 63),
                     (const char *)m->payload);
            snprintf(k, sizeof(k), "%.*s", (int)m->key_len,
                     (const char *)m->key);
            sscanf(v, "{\"id\": %d", &id);
            key = atoi(k);
            if (id < 0 || id >= n || key < 1 || key > NKEYS) {
                stray++;
            } else {
                times[id]++;
                if (id >= order_from) {
                    if (id < last[key])
                        out_of_order++;
                    last[key] = id;
                }
            }
            if (++got == expect)
                quiet = now_s() + 0.5; /* duplicates would come now */
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_destroy(rk);
    cr_assert_eq(stray, 0, "messages that were never sent");
    for (int i = 0; i < n; i++) {
        int want = refused != NULL && refused[i] ? 0 : 1;
        cr_assert_eq(times[i], want, "message %d is in the topic %d times "
                     "(want %d)", i, times[i], want);
    }
    cr_assert_eq(got, expect);
    cr_assert_eq(out_of_order, 0, "a key's messages out of send order");
}

Test(producer, brokers_down_sends_spooled_then_replayed_once_in_key_order,
     .timeout = 300, .fini = cleanup)
{
    struct cluster c;
    cluster_start(&c);
    char dir[64];
    make_dir(dir, sizeof(dir));
    struct logbuf log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    const char *servers = rd_kafka_mock_cluster_bootstraps(c.mc);
    rg_conf_t *conf = fallback_conf(servers, dir, &log);
    static struct reports r;
    memset(&r, 0, sizeof(r));
    char err[256];
    rg_producer_t *p = rg_producer_new(conf, on_report, &r, err,
                                       sizeof(err));
    cr_assert_not_null(p, "%s", err);
    int next = 0;
    for (; next < 1000; next++)
        cr_assert_eq(send_id(p, next, 0), 0);
    cr_assert_eq(rg_producer_flush(p, 30000), 0, "%s",
                 rg_producer_last_error());
    cr_assert_eq(r.delivered, 1000u);
    cr_assert_eq(mode_of(p), RG_PRODUCER_DIRECT);

    go_down(&c, p, &next, true);
    int first_spooled = next;
    for (int i = 0; i < 5000; i++, next++) {
        cr_assert_eq(send_id(p, next, 0), 0, "%s", rg_producer_last_error());
        if (i % 100 == 0)
            rg_producer_poll(p, 0);
    }
    wait_spooled(p, &r, 5000);
    /* the messages sent before the producer noticed wait in librdkafka:
     * flush says so rather than pretend they are safe */
    if (rg_producer_in_flight(p) > 0) {
        cr_assert_eq(rg_producer_flush(p, 100), RG_ETIMEDOUT);
        cr_assert(strstr(rg_producer_last_error(), "waiting in librdkafka")
                  != NULL, "%s", rg_producer_last_error());
    }
    rg_producer_stats_t st;
    rg_producer_stats(p, &st);
    cr_assert_neq(st.mode, RG_PRODUCER_DIRECT);
    cr_assert_geq(r.spooled, 5000u, "every degraded send reported spooled");
    cr_assert_geq(st.spooled, 5000u);
    cr_assert_gt(st.spool_pending, 0u);
    cr_assert_gt(st.spool_bytes, 0u);
    for (int i = first_spooled; i < next; i++)
        cr_assert_eq(r.calls[i], 1, "message %d: %d callbacks", i,
                     r.calls[i]);
    cr_assert_gt(count_segments(dir), 0);

    go_up(&c, p, &next);
    for (int i = 0; i < 1000; i++, next++)
        cr_assert_eq(send_id(p, next, 0), 0);
    cr_assert_eq(rg_producer_flush(p, 30000), 0, "%s",
                 rg_producer_last_error());
    rg_producer_stats(p, &st);
    cr_assert_eq(st.mode, RG_PRODUCER_DIRECT);
    cr_assert_eq(st.replayed, st.spooled, "replayed %" PRIu64 " of %" PRIu64,
                 st.replayed, st.spooled);
    cr_assert_eq(st.spool_pending, 0u);
    cr_assert_eq(st.degraded, 1u);
    cr_assert_eq(r.errors, 0u, "%s", r.last_err);
    for (int i = 0; i < next; i++)
        cr_assert_eq(r.calls[i], 1, "message %d: %d callbacks", i,
                     r.calls[i]);
    for (double end = now_s() + 10; count_segments(dir) > 0 &&
                                    now_s() < end;)
        rg_producer_poll(p, 20);
    cr_assert_eq(count_segments(dir), 0, "the replayed spool is removed");
    cr_assert(strstr(log.text, "degraded mode") != NULL, "%s", log.text);
    cr_assert(strstr(log.text, "every broker is down") != NULL ||
              strstr(log.text, "no delivery for") != NULL, "%s", log.text);
    cr_assert(strstr(log.text, "back to direct sends") != NULL, "%s",
              log.text);
    check_topic(servers, next, NULL, 0);
    rg_producer_destroy(p);
    rg_conf_destroy(conf);
    rm_dir(dir);
    cluster_stop(&c);
}

Test(producer, full_spool_refuses_with_efull_and_drops_nothing,
     .timeout = 300, .fini = cleanup)
{
    struct cluster c;
    cluster_start(&c);
    char dir[64];
    make_dir(dir, sizeof(dir));
    const char *servers = rd_kafka_mock_cluster_bootstraps(c.mc);
    rg_conf_t *conf = fallback_conf(servers, dir, NULL);
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "fallback.spool.segment.bytes", "65536",
                             err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_set(conf, "fallback.spool.max.bytes", "131072",
                             err, sizeof(err)), 0, "%s", err);
    static struct reports r;
    memset(&r, 0, sizeof(r));
    rg_producer_t *p = rg_producer_new(conf, on_report, &r, err,
                                       sizeof(err));
    cr_assert_not_null(p, "%s", err);
    int next = 0;
    go_down(&c, p, &next, true);
    static bool refused[MAXID];
    memset(refused, 0, sizeof(refused));
    int full = 0, accepted = 0;
    while (full < 20 && next < MAXID) {
        int rc = send_id(p, next, 200);
        if (rc == RG_EFULL) {
            full++;
            refused[next] = true;
            cr_assert(strstr(rg_producer_last_error(), "full") != NULL &&
                      strstr(rg_producer_last_error(), "nothing was "
                             "dropped") != NULL, "%s",
                      rg_producer_last_error());
        } else {
            cr_assert_eq(rc, 0, "%s", rg_producer_last_error());
            cr_assert_eq(full, 0, "accepted after the spool was full");
            accepted++;
        }
        next++;
    }
    cr_assert_eq(full, 20, "the spool never filled");
    cr_assert_gt(accepted, 300);
    wait_spooled(p, &r, (size_t)accepted);
    cr_assert_eq(r.errors, 0u, "%s", r.last_err);
    for (int i = 0; i < next; i++)
        if (refused[i])
            cr_assert_eq(r.calls[i], 0, "refused message %d: %d callbacks",
                         i, r.calls[i]);
    go_up(&c, p, NULL);
    cr_assert_eq(rg_producer_flush(p, 30000), 0, "%s",
                 rg_producer_last_error());
    for (int i = 0; i < next; i++)
        cr_assert_eq(r.calls[i], refused[i] ? 0 : 1,
                     "message %d: %d callbacks", i, r.calls[i]);
    rg_producer_stats_t st;
    rg_producer_stats(p, &st);
    cr_assert_eq(st.replayed, st.spooled);
    check_topic(servers, next, refused, 0);
    rg_producer_destroy(p);
    rg_conf_destroy(conf);
    rm_dir(dir);
    cluster_stop(&c);
}

Test(producer, destroyed_while_degraded_next_producer_replays_all,
     .timeout = 300, .fini = cleanup)
{
    struct cluster c;
    cluster_start(&c);
    char dir[64];
    make_dir(dir, sizeof(dir));
    struct logbuf log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    const char *servers = rd_kafka_mock_cluster_bootstraps(c.mc);
    rg_conf_t *conf = fallback_conf(servers, dir, &log);
    static struct reports r;
    memset(&r, 0, sizeof(r));
    char err[256];
    rg_producer_t *p = rg_producer_new(conf, on_report, &r, err,
                                       sizeof(err));
    cr_assert_not_null(p, "%s", err);
    int next = 0;
    /* the probes sent until it noticed wait in librdkafka: destroy must
     * spool them too (after the others: their order is not kept) */
    go_down(&c, p, &next, true);
    int first_spooled = next;
    for (int i = 0; i < 3000; i++, next++)
        cr_assert_eq(send_id(p, next, 0), 0, "%s", rg_producer_last_error());
    rg_producer_destroy(p); /* degraded: what librdkafka held is spooled */
    cr_assert_eq(r.errors, 0u, "%s", r.last_err);
    for (int i = 0; i < next; i++)
        cr_assert_eq(r.calls[i], 1, "message %d: %d callbacks", i,
                     r.calls[i]);

    memset(&r, 0, sizeof(r));
    p = rg_producer_new(conf, on_report, &r, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    rg_producer_stats_t st;
    rg_producer_stats(p, &st);
    cr_assert_eq(st.mode, RG_PRODUCER_DEGRADED, "a spool with records "
                 "starts degraded");
    cr_assert_eq(st.spool_pending, (uint64_t)next, "every message of the "
                 "first producer is in the spool");
    cr_assert(strstr(log.text, "not yet in Kafka") != NULL, "%s", log.text);
    go_up(&c, p, NULL);
    rg_producer_stats(p, &st);
    cr_assert_eq(st.replayed, (uint64_t)next);
    check_topic(servers, next, NULL, first_spooled);
    rg_producer_destroy(p);
    rg_conf_destroy(conf);
    rm_dir(dir);
    cluster_stop(&c);
}

/* The child of the kill test: degraded from the start (nothing listens on
 * `servers`), sends n, waits until all are reported spooled (durable),
 * says so on fd, and waits to be killed. */
static void child_spools(const char *servers, const char *dir, int n,
                         int fd)
{
    rg_conf_t *conf = fallback_conf(servers, dir, NULL);
    static struct reports r;
    char err[256];
    rg_producer_t *p = rg_producer_new(conf, on_report, &r, err,
                                       sizeof(err));
    if (p == NULL)
        _exit(2);
    double end = now_s() + 30;
    while (mode_of(p) == RG_PRODUCER_DIRECT && now_s() < end)
        rg_producer_poll(p, 20);
    if (mode_of(p) == RG_PRODUCER_DIRECT)
        _exit(3);
    for (int i = 0; i < n; i++)
        if (send_id(p, i, 0) != 0)
            _exit(4);
    if (rg_producer_flush(p, 30000) != 0 || r.spooled != (size_t)n)
        _exit(5);
    char ok = 'k';
    if (write(fd, &ok, 1) != 1)
        _exit(6);
    for (;;)
        pause();
}

Test(producer, killed_while_degraded_next_producer_replays_all,
     .timeout = 300, .fini = cleanup)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    enum { N = 4000 };
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    /* no librdkafka in this process yet: the child starts its own */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_spools("127.0.0.1:1", dir, N, fds[1]);
    }
    close(fds[1]);
    char ok = 0;
    ssize_t rd = read(fds[0], &ok, 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(rd == 1 && ok == 'k', "the child failed (status %d)",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    struct cluster c;
    cluster_start(&c);
    const char *servers = rd_kafka_mock_cluster_bootstraps(c.mc);
    rg_conf_t *conf = fallback_conf(servers, dir, NULL);
    static struct reports r;
    memset(&r, 0, sizeof(r));
    char err[256];
    rg_producer_t *p = rg_producer_new(conf, on_report, &r, err,
                                       sizeof(err));
    cr_assert_not_null(p, "%s", err);
    rg_producer_stats_t st;
    rg_producer_stats(p, &st);
    cr_assert_eq(st.mode, RG_PRODUCER_DEGRADED);
    cr_assert_eq(st.spool_pending, (uint64_t)N);
    go_up(&c, p, NULL); /* they are up: waits for the replay */
    rg_producer_stats(p, &st);
    cr_assert_eq(st.replayed, (uint64_t)N);
    check_topic(servers, N, NULL, 0);
    rg_producer_destroy(p);
    rg_conf_destroy(conf);
    rm_dir(dir);
    cluster_stop(&c);
}

/* Four threads send while degraded, against a spool that commits every
 * record on its own (the disk is always behind): no call takes longer
 * than fallback.block.max.ms, plus a generous margin for the scheduler. */
struct sender {
    rg_producer_t *p;
    int base, n;
    double worst_s;
    int ok, timed_out, other;
};

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < s->n; i++) {
        double t0 = now_s();
        int rc = send_id(s->p, s->base + i, 100);
        double dt = now_s() - t0;
        if (dt > s->worst_s)
            s->worst_s = dt;
        if (rc == 0)
            s->ok++;
        else if (rc == RG_ETIMEDOUT &&
                 strstr(rg_producer_last_error(), "nothing was sent"))
            s->timed_out++;
        else
            s->other++;
    }
    return NULL;
}

Test(producer, degraded_sends_never_block_past_block_max_ms, .timeout = 300, .fini = cleanup)
{
    struct cluster c;
    cluster_start(&c);
    char dir[64];
    make_dir(dir, sizeof(dir));
    const char *servers = rd_kafka_mock_cluster_bootstraps(c.mc);
    rg_conf_t *conf = fallback_conf(servers, dir, NULL);
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "fallback.block.max.ms", "20", err,
                             sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_set(conf, "fallback.spool.sync.bytes", "1", err,
                             sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_set(conf, "fallback.spool.sync.ms", "0", err,
                             sizeof(err)), 0, "%s", err);
    static struct reports r;
    memset(&r, 0, sizeof(r));
    rg_producer_t *p = rg_producer_new(conf, NULL, NULL, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    int next = 0;
    go_down(&c, p, &next, true);
    struct sender s[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct sender){.p = p, .base = 1000 + i * 2000, .n = 2000};
        cr_assert_eq(pthread_create(&th[i], NULL, sender_main, &s[i]), 0);
    }
    double worst = 0;
    int ok = 0, other = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        worst = s[i].worst_s > worst ? s[i].worst_s : worst;
        ok += s[i].ok;
        other += s[i].other;
    }
    cr_assert_eq(other, 0, "a refusal other than RG_ETIMEDOUT");
    cr_assert_gt(ok, 0);
    cr_assert_lt(worst, 0.020 + 0.5, "a send blocked %.3f s (bound 0.020 s)",
                 worst);
    rg_producer_stats_t st;
    rg_producer_stats(p, &st);
    cr_assert_geq(st.spooled, (uint64_t)ok);
    rg_producer_destroy(p);
    rg_conf_destroy(conf);
    rm_dir(dir);
    cluster_stop(&c);
}
