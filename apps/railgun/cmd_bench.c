/*
 * cmd_bench.c - the end-to-end suites of `railgun bench`, each a ratio
 * against the peer a user would otherwise pick, measured in one run:
 *   likes    the same like events through the reference's first design
 *            (one transaction per event, naive.h) and through railgun
 *            (engine + likes job + epoch flushes), each into a fresh
 *            database it drops afterwards. Starts no server: point it at
 *            one with -X.
 *   kafka    the same messages in a mock cluster consumed by a bare
 *            librdkafka loop and by railgun (source + likes job + null
 *            sink).
 *   produce  a bare rd_kafka_producev loop against the producer SDK.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "mock.h"
#include "naive.h"
#include "pipeline.h"
#include "railgun/railgun.h"
#include "railgun/kafka.h"
#include "railgun/producer.h"
#include "railgun/sinks.h"
#include "zipf.h"
#include <librdkafka/rdkafka.h>
#include <time.h>

#define PARTS 8

struct ev {
    int64_t video, user;
    uint8_t state;
};

static void usage(void)
{
    printf("usage: railgun bench likes [--events N] [--naive-events N]\n"
           "                           [--seed N] [--json] [--config FILE]"
           " [-X name=value]\n"
           "       railgun bench kafka|produce [--events N] [--seed N] "
           "[--json]\n"
           "                                   [-X kafka.NAME=value]\n\n"
           "likes: runs the same N like events (default 200000) through one "
           "database\ntransaction per event and through railgun, into "
           "-X sink=mysql (with\nthe mysql.* properties) or sink=sqlite, "
           "and prints both rates and\nthe ratio. --naive-events times the "
           "per-event path on the first M\nevents only (it is slow). Each "
           "path gets a fresh database, dropped\nafterwards.\n\n"
           "kafka: N like events (default 2000000) produced once into an "
           "in-process\nmock cluster (3 brokers, 64 partitions), then "
           "consumed by a bare\nlibrdkafka loop that does nothing and by "
           "railgun (Kafka source, likes\njob, null sink).\n"
           "produce: the same N events sent by a bare rd_kafka_producev "
           "loop and by\nthe producer SDK.\n"
           "Both print both rates and the ratio; -X kafka.NAME=value "
           "applies to both\nsides alike.\n");
}

/* A copy of conf pointing at a fresh database named after `tag`, or NULL
 * with errstr (never the caller's database: it is dropped afterwards). */
static rg_conf_t *conf_for(const rg_conf_t *base, const char *tag,
                           char *errstr, size_t size)
{
    rg_conf_t *c = rg_conf_dup(base);
    char v[512];
    int rc;
    if (c == NULL) {
        snprintf(errstr, size, "out of memory");
        return NULL;
    }
    if (strcmp(rg_conf_get_str(c, "sink"), "mysql") == 0) {
        snprintf(v, sizeof(v), "%.40s_bench_%s_%d",
                 rg_conf_get_str(c, "mysql.database"), tag, (int)getpid());
        rc = rg_conf_set(c, "mysql.database", v, errstr, size);
    } else {
        const char *p = rg_conf_get_str(c, "sqlite.path");
        if (p[0])
            snprintf(v, sizeof(v), "%.400s-%s", p, tag);
        else
            snprintf(v, sizeof(v), "%.400s/railgun-bench-%s-%d.db",
                     getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tag,
                     (int)getpid());
        rc = rg_conf_set(c, "sqlite.path", v, errstr, size);
    }
    if (rc != 0) {
        rg_conf_destroy(c);
        return NULL;
    }
    return c;
}

static int create_schema(const rg_conf_t *c, char *errstr, size_t size)
{
    rg_sink_t s;
    int rc = rg_likes_open_sink(c, RG_SINK_INIT_SCHEMA, &s, errstr, size);
    if (rc == 0)
        s.close(s.self);
    return rc;
}

static double run_naive(const rg_conf_t *c, const struct ev *evs, uint64_t n,
                        char *errstr, size_t size)
{
    if (create_schema(c, errstr, size) != 0)
        return -1;
    rg_naive_t *nv = rg_naive_open(c, errstr, size);
    if (nv == NULL)
        return -1;
    rg_progress_t prog;
    rg_progress_init(&prog, "naive", n, false);
    double t0 = rg_now();
    for (uint64_t i = 0; i < n; i++) {
        if (rg_naive_apply(nv, evs[i].video, evs[i].user, evs[i].state,
                           1700000000000 + (int64_t)i, errstr, size) != 0) {
            rg_naive_close(nv);
            return -1;
        }
        if ((i & 1023) == 0)
            rg_progress_update(&prog, i);
    }
    double secs = rg_now() - t0;
    rg_progress_finish(&prog);
    rg_naive_close(nv);
    return (double)n / secs;
}

/* railgun: the pipeline (likes job, epoch flushes) on c's sink, fed from
 * this thread; events per second, or -1 with errstr. */
static double run_railgun(const rg_conf_t *c, const struct ev *evs,
                          uint64_t n, char *errstr, size_t size)
{
    rg_pipeline_t pl = {0};
    rg_pipeline_opts_t po = {.sink_flags = RG_SINK_INIT_SCHEMA};
    int64_t off[PARTS];
    double rate = -1;
    if (rg_pipeline_open(&pl, c, &po, errstr, size) != 0 ||
        rg_pipeline_claim(&pl, PARTS, off, errstr, size) != 0 ||
        rg_pipeline_start(&pl, errstr, size) != 0)
        goto out;
    enum { BURST = 256 };
    static char keys[BURST][24], vals[BURST][RG_LIKE_JSON_MAX];
    rg_msg_t msgs[BURST];
    rg_dispatcher_t *d = rg_engine_dispatcher(pl.engine, 0);
    rg_progress_t prog;
    rg_progress_init(&prog, "railgun", n, false);
    double t0 = rg_now();
    size_t k = 0;
    for (uint64_t i = 0; i < n; i++) {
        rg_like_t like = {(uint64_t)evs[i].video, (uint64_t)evs[i].user,
                          1700000000000 + (int64_t)i, evs[i].state};
        int32_t p = (int32_t)(like.video_id % PARTS);
        size_t kl = rg_like_encode_key(like.video_id, keys[k]);
        size_t vl = rg_like_encode_json(&like, vals[k]);
        msgs[k] = (rg_msg_t){p, off[p]++, keys[k], kl, vals[k], vl};
        if (++k == BURST || i + 1 == n) {
            if (rg_dispatcher_push_burst(d, msgs, k) < k)
                break;
            k = 0;
            rg_progress_update(&prog, i);
        }
    }
    rg_pipeline_stop(&pl); /* the last epoch is committed before it returns */
    double secs = rg_now() - t0;
    rg_progress_finish(&prog);
    if (rg_engine_error(pl.engine) != NULL)
        snprintf(errstr, size, "%s", rg_engine_error(pl.engine));
    else
        rate = (double)n / secs;
out:
    rg_pipeline_close(&pl);
    return rate;
}

/* ---- kafka and produce ------------------------------------------------- */

/* The mock cluster keeps at most 5 MB (or 100000 batches) per partition
 * and silently drops older ones, so the data produced up front spreads
 * evenly: uniform videos over many partitions, not the Zipf of the demo. */
#define KPARTS 64
#define KVIDEOS 100000

struct kmsgs {
    char (*key)[24];
    char (*val)[RG_LIKE_JSON_MAX];
    size_t *klen, *vlen;
};

static int kmsgs_make(struct kmsgs *m, uint64_t n, uint64_t seed)
{
    m->key = malloc(sizeof(*m->key) * n);
    m->val = malloc(sizeof(*m->val) * n);
    m->klen = malloc(sizeof(size_t) * n);
    m->vlen = malloc(sizeof(size_t) * n);
    if (!m->key || !m->val || !m->klen || !m->vlen)
        return -1;
    rg_rng_t rng;
    rg_rng_seed(&rng, seed);
    for (uint64_t i = 0; i < n; i++) {
        rg_like_t like = {1 + rg_rng_below(&rng, KVIDEOS),
                          1 + rg_rng_below(&rng, 100000),
                          1700000000000 + (int64_t)i,
                          rg_rng_below(&rng, 3) != 0};
        m->klen[i] = rg_like_encode_key(like.video_id, m->key[i]);
        m->vlen[i] = rg_like_encode_json(&like, m->val[i]);
    }
    return 0;
}

static void kmsgs_free(struct kmsgs *m)
{
    free(m->key);
    free(m->val);
    free(m->klen);
    free(m->vlen);
}

/* The user's -X kafka.* settings, for the bare clients: railgun's side
 * gets them through its configuration, so both sides run alike. */
static int user_props(const rg_conf_t *c, rd_kafka_conf_t *kc, char *errstr,
                      size_t size)
{
    size_t cur = 0;
    const char *name, *val;
    char rkerr[256];
    while (rg_conf_next_passthrough(c, "kafka.", &cur, &name, &val))
        if (rd_kafka_conf_set(kc, name, val, rkerr, sizeof(rkerr)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "kafka.%s: %.200s", name, rkerr);
            return -1;
        }
    return 0;
}

/* A bare librdkafka client of `type` from kc (taken) plus the user's
 * -X kafka.* settings; NULL after saying why. */
static rd_kafka_t *bare_client(rg_cli_t *cli, rd_kafka_type_t type,
                               rd_kafka_conf_t *kc)
{
    char err[256];
    if (user_props(cli->conf, kc, err, sizeof(err)) != 0) {
        rd_kafka_conf_destroy(kc);
        rg_cli_fail(cli, "%s", err);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(type, kc, err, sizeof(err));
    if (rk == NULL) {
        rd_kafka_conf_destroy(kc);
        rg_cli_fail(cli, "%s", err);
    }
    return rk;
}

/* Producer settings both sides of both suites share. */
static void producer_props(rd_kafka_conf_t *kc, const char *servers)
{
    rd_kafka_conf_set(kc, "bootstrap.servers", servers, NULL, 0);
    rd_kafka_conf_set(kc, "linger.ms", "5", NULL, 0);
    rd_kafka_conf_set(kc, "partitioner", "murmur2_random", NULL, 0);
    rd_kafka_conf_set(kc, "log_level", "0", NULL, 0);
}

/* The bare loop at its best: a topic handle resolved once, then
 * rd_kafka_producev per message, then flush. Events per second. */
static double produce_bare(rg_cli_t *cli, const char *servers,
                           const struct kmsgs *m, uint64_t n)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    producer_props(kc, servers);
    rd_kafka_t *rk = bare_client(cli, RD_KAFKA_PRODUCER, kc);
    if (rk == NULL)
        return -1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "likes", NULL);
    if (rkt == NULL) {
        rd_kafka_destroy(rk);
        rg_cli_fail(cli, "topic likes: %s",
                    rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    double t0 = rg_now();
    for (uint64_t i = 0; i < n; i++) {
        while (rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt),
                                 RD_KAFKA_V_KEY(m->key[i], m->klen[i]),
                                 RD_KAFKA_V_VALUE(m->val[i], m->vlen[i]),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 120000);
    double secs = rg_now() - t0;
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return (double)n / secs;
}

/* The user's conf for railgun's side of a Kafka suite: pointed at the
 * mock cluster, librdkafka's log off. NULL with errstr. */
static rg_conf_t *kafka_conf(const rg_cli_t *cli, const char *servers,
                             char *errstr, size_t size)
{
    rg_conf_t *c = rg_conf_dup(cli->conf);
    if (c == NULL) {
        snprintf(errstr, size, "out of memory");
        return NULL;
    }
    if (rg_conf_set(c, "kafka.bootstrap.servers", servers, errstr, size) !=
            0 ||
        rg_conf_set(c, "kafka.log_level", "0", errstr, size) != 0) {
        rg_conf_destroy(c);
        return NULL;
    }
    return c;
}

/* The same through the producer SDK. */
static double produce_sdk(rg_cli_t *cli, const char *servers,
                          const struct kmsgs *m, uint64_t n)
{
    char err[512];
    rg_producer_t *p = NULL;
    rg_conf_t *c = kafka_conf(cli, servers, err, sizeof(err));
    if (c != NULL &&
        rg_conf_set(c, "kafka.linger.ms", "5", err, sizeof(err)) == 0)
        p = rg_producer_new(c, NULL, NULL, err, sizeof(err));
    rg_conf_destroy(c);
    if (p == NULL) {
        rg_cli_error(cli, "%s", err);
        return -1;
    }
    double t0 = rg_now();
    for (uint64_t i = 0; i < n; i++) {
        while (rg_producer_send_bytes(p, m->key[i], m->klen[i], m->val[i],
                                      m->vlen[i], NULL) == RG_EFULL)
            rg_producer_poll(p, 10);
        if ((i & 1023) == 0)
            rg_producer_poll(p, 0);
    }
    rg_producer_flush(p, 120000);
    double secs = rg_now() - t0;
    rg_producer_destroy(p);
    return (double)n / secs;
}

/* Consumer settings both sides share (librdkafka defaults otherwise). */
static void consumer_props(rd_kafka_conf_t *kc, const char *servers,
                           const char *group)
{
    rd_kafka_conf_set(kc, "bootstrap.servers", servers, NULL, 0);
    rd_kafka_conf_set(kc, "group.id", group, NULL, 0);
    rd_kafka_conf_set(kc, "auto.offset.reset", "earliest", NULL, 0);
    rd_kafka_conf_set(kc, "enable.auto.commit", "false", NULL, 0);
    /* what the Kafka source defaults to (railgun/kafka.h): with
     * librdkafka's 100000 a consumer that falls behind fetches in
     * one-second bursts */
    rd_kafka_conf_set(kc, "queued.min.messages", "1000000", NULL, 0);
    rd_kafka_conf_set(kc, "log_level", "0", NULL, 0);
}

/* A consume loop that does nothing with the messages; the clock runs from
 * the first message to the n-th (the group join is left out). */
static double consume_bare(rg_cli_t *cli, const char *servers, uint64_t n)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    consumer_props(kc, servers, "bench-bare");
    rd_kafka_t *rk = bare_client(cli, RD_KAFKA_CONSUMER, kc);
    if (rk == NULL)
        return -1;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, "likes", RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    uint64_t got = 0;
    double t0 = 0, deadline = rg_now() + 300;
    while (got < n) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 100);
        if (msg == NULL) {
            if (rg_now() > deadline)
                break;
            continue;
        }
        if (!msg->err) {
            if (got++ == 0)
                t0 = rg_now();
        }
        rd_kafka_message_destroy(msg);
    }
    double secs = rg_now() - t0;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got == n ? (double)(n - 1) / secs : -1;
}

/* railgun: the Kafka source, the likes job, a null sink; the clock runs
 * from the first message consumed to the n-th processed. */
static double consume_railgun(rg_cli_t *cli, const char *servers,
                              uint64_t n)
{
    char err[512];
    double rate = -1;
    rg_pipeline_t pl = {0};
    rg_pipeline_opts_t po = {.kafka = true};
    rg_conf_t *c = kafka_conf(cli, servers, err, sizeof(err));
    if (c == NULL ||
        rg_conf_set(c, "group.id", "bench-railgun", err, sizeof(err)) != 0 ||
        rg_conf_set(c, "sink", "null", err, sizeof(err)) != 0 ||
        rg_pipeline_open(&pl, c, &po, err, sizeof(err)) != 0 ||
        rg_pipeline_start(&pl, err, sizeof(err)) != 0 ||
        rg_pipeline_spawn_source(&pl, err, sizeof(err)) != 0)
        goto out;
    double t0 = 0, deadline = rg_now() + 300;
    rg_engine_stats_t st = {0};
    for (;;) {
        rg_engine_stats(pl.engine, &st);
        if (t0 == 0 && st.accepted > 0)
            t0 = rg_now();
        if (st.processed >= n || rg_now() > deadline ||
            rg_pipeline_source_done(&pl))
            break;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    double secs = rg_now() - t0;
    rg_pipeline_stop(&pl);
    if (st.processed >= n)
        rate = (double)n / secs;
    else if (rg_kafka_source_error(pl.source) != NULL)
        snprintf(err, sizeof(err), "%s", rg_kafka_source_error(pl.source));
    else
        snprintf(err, sizeof(err), "%" PRIu64 " of %" PRIu64 " events "
                 "processed in 300 s", st.processed, n);
out:
    if (rate < 0)
        rg_cli_error(cli, "%s", err);
    rg_pipeline_close(&pl);
    rg_conf_destroy(c);
    return rate;
}

static int bench_kafka(rg_cli_t *cli, bool consume, uint64_t n,
                       uint64_t seed)
{
    struct kmsgs m = {0};
    rg_mock_t mock = {0};
    char err[512];
    double a = -1, b = -1;
    int rc = 1;
    if (kmsgs_make(&m, n, seed) != 0) {
        rg_cli_error(cli, "out of memory");
        goto out;
    }
    if (rg_mock_open(&mock, 3, err, sizeof(err)) != 0 ||
        rg_mock_topic(&mock, "likes", KPARTS, 1, err, sizeof(err)) != 0) {
        rg_cli_error(cli, "%s", err);
        goto out;
    }
    const char *servers = rg_mock_servers(&mock);
    if (!consume) {
        a = produce_bare(cli, servers, &m, n);
        b = produce_sdk(cli, servers, &m, n);
    } else if (produce_bare(cli, servers, &m, n) > 0) {
        /* the same data for both: produced once */
        a = consume_bare(cli, servers, n);
        b = consume_railgun(cli, servers, n);
    }
    if (a <= 0 || b <= 0) {
        rg_cli_error(cli, "a run did not finish");
        goto out;
    }
    if (cli->json) {
        printf("{\"suite\":\"%s\",\"events\":%" PRIu64 ",\"partitions\":%d,"
               "\"bare_events_per_s\":%.0f,\"railgun_events_per_s\":%.0f,"
               "\"ratio\":%.2f}\n", consume ? "kafka" : "produce", n, KPARTS,
               a, b, b / a);
    } else {
        char h1[16], h2[16];
        printf("railgun bench %s: %" PRIu64 " like events, mock cluster (3 "
               "brokers, %d partitions)\n", consume ? "kafka" : "produce", n,
               KPARTS);
        printf("  %-30s %s events/s\n", consume ? "bare librdkafka consume "
               "loop" : "bare rd_kafka_producev loop",
               rg_human(a, h1, sizeof(h1)));
        printf("  %-30s %s events/s\n", consume ? "railgun (likes job, null "
               "sink)" : "railgun producer SDK", rg_human(b, h2, sizeof(h2)));
        printf("  ratio                          %.2fx\n", b / a);
    }
    rc = 0;
out:
    rg_mock_close(&mock);
    kmsgs_free(&m);
    return rc;
}

struct opts {
    const char *suite;
    uint64_t events, naive_events, seed;
    bool events_given;
};

static int parse_args(rg_cli_t *cli, struct opts *o, int argc, char **argv)
{
    static const char *const names[] = {"--events", "--naive-events",
                                        "--seed"};
    uint64_t *const dest[] = {&o->events, &o->naive_events, &o->seed};
    const uint64_t min[] = {1, 1, 0};
    const uint64_t max[] = {100000000ull, 100000000ull, UINT64_MAX};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        size_t k = 0;
        while (k < 3 && !rg_cli_is(a, names[k]))
            k++;
        if (k < 3) {
            const char *v = rg_cli_value(cli, argc, argv, &i, names[k]);
            if (!v || rg_cli_u64(cli, names[k], v, min[k], max[k], dest[k]))
                return 2;
            o->events_given |= k == 0;
        } else if (a[0] != '-' && o->suite == NULL) {
            o->suite = a;
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", a);
        }
    }
    return cli->help ? 0 : rg_cli_finish(cli);
}

/* The likes suite: the same events through one transaction per event and
 * through railgun, each into a fresh database dropped afterwards. */
static int bench_likes(rg_cli_t *cli, const struct opts *o)
{
    uint64_t events = o->events, naive_events = o->naive_events;
    rg_conf_t *cn = NULL, *cr = NULL;
    char err[512], derr[512];
    double naive = -1, fast = -1;
    int rc = 1;
    if (naive_events == 0 || naive_events > events)
        naive_events = events;
    struct ev *evs = malloc(sizeof(*evs) * events);
    if (evs == NULL) {
        rg_cli_error(cli, "out of memory for %" PRIu64 " events", events);
        goto out;
    }
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, o->seed);
    rg_zipf_init(&zipf, 10000, 0.99);
    for (uint64_t i = 0; i < events; i++) {
        evs[i].video = (int64_t)rg_zipf_next(&zipf, &rng);
        evs[i].user = 1 + (int64_t)rg_rng_below(&rng, 100000);
        evs[i].state = rg_rng_below(&rng, 3) != 0;
    }
    if ((cn = conf_for(cli->conf, "naive", err, sizeof(err))) == NULL ||
        (cr = conf_for(cli->conf, "railgun", err, sizeof(err))) == NULL ||
        (naive = run_naive(cn, evs, naive_events, err, sizeof(err))) <= 0 ||
        (fast = run_railgun(cr, evs, events, err, sizeof(err))) <= 0) {
        rg_cli_error(cli, "%s", err);
        goto out;
    }
    double ratio = fast / naive;
    const char *kind = rg_conf_get_str(cli->conf, "sink");
    if (cli->json) {
        printf("{\"suite\":\"likes\",\"sink\":\"%s\",\"events\":%" PRIu64
               ",\"naive_events\":%" PRIu64 ",\"naive_events_per_s\":%.0f,"
               "\"railgun_events_per_s\":%.0f,\"ratio\":%.1f}\n", kind,
               events, naive_events, naive, fast, ratio);
    } else {
        char h1[16], h2[16];
        printf("railgun bench likes: %" PRIu64 " like events into %s\n",
               events, kind);
        printf("  one transaction per event  %s events/s (%" PRIu64
               " events)\n", rg_human(naive, h1, sizeof(h1)), naive_events);
        printf("  railgun                    %s events/s\n",
               rg_human(fast, h2, sizeof(h2)));
        printf("  ratio                      %.1fx\n", ratio);
    }
    rc = 0;
out:
    if (cr != NULL)
        rg_likes_drop_db(cr, derr, sizeof(derr));
    if (cn != NULL)
        rg_likes_drop_db(cn, derr, sizeof(derr));
    rg_conf_destroy(cr);
    rg_conf_destroy(cn);
    free(evs);
    return rc;
}

int rg_bench_e2e(int argc, char **argv); /* bench_e2e.c */
int rg_cmd_bench(int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "e2e") == 0)
        return rg_bench_e2e(argc - 1, argv + 1);
    rg_cli_t cli = {.cmd = "bench", .conf = rg_likes_conf_new()};
    struct opts o = {.events = 200000, .seed = 1};
    int rc;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");

    /* the command line */
    if ((rc = parse_args(&cli, &o, argc, argv)) != 0 || cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    bool kafka = o.suite != NULL && !strcmp(o.suite, "kafka");
    if (kafka || (o.suite != NULL && !strcmp(o.suite, "produce"))) {
        rc = bench_kafka(&cli, kafka, o.events_given ? o.events : 2000000,
                         o.seed);
        goto out;
    }
    if (o.suite == NULL || strcmp(o.suite, "likes") != 0) {
        rc = rg_cli_fail(&cli, "unknown suite \"%s\" (this build has: "
                         "likes, kafka, produce; the micro suites are "
                         "build/bin/railgun-bench)", o.suite ? o.suite : "");
        goto out;
    }
    if (strcmp(rg_conf_get_str(cli.conf, "sink"), "null") == 0) {
        rc = rg_cli_fail(&cli, "sink=null writes nothing: compare with "
                         "sqlite or mysql");
        goto out;
    }

    /* the suite */
    rc = bench_likes(&cli, &o);
out:
    rg_conf_destroy(cli.conf);
    return rc;
}
