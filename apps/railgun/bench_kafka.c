/*
 * bench_kafka.c - `railgun bench kafka` and `railgun bench produce`:
 * railgun's Kafka paths against bare librdkafka clients on one in-process
 * mock cluster.
 *
 *   kafka    N like events produced once, then consumed by a loop that
 *            does nothing with them and by railgun (Kafka source, likes
 *            job, null sink), each in a fresh consumer group;
 *   produce  the same N events sent by a bare rd_kafka_producev loop and
 *            by the producer SDK.
 *
 * The bare consume loop is bimodal on a small machine (1.9M/s or 2.8M/s
 * at the same CPU per event: a wait inside librdkafka's fetching), so one
 * run of each side gives ratios anywhere from 0.47 to 0.79 for the same
 * binary. Each suite therefore runs --rounds rounds, alternating which
 * side goes first, and reports medians; the ratio is the ratio of the
 * medians. Beside each rate it reports the CPU each thread group spent
 * per event over exactly that side's clock window, read from
 * /proc/self/task/TID/schedstat (nanoseconds on the CPU), so a change can
 * be placed: the ingest thread (the bare loop, or rg:poll), railgun's
 * workers (rg:wN), the rest of the engine (rg:flush, rg:commit), the
 * client's librdkafka threads, the mock cluster's threads, other.
 *
 * Invariants: both sides read the same messages from the same cluster;
 * a round's two sides run back to back; the clock of a consume side runs
 * from its first message to its N-th (the group join is left out), of a
 * produce side from the first send to the flush.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "bench_kafka.h"
#include "like_codec.h"
#include "mock.h"
#include "pipeline.h"
#include "railgun/kafka.h"
#include "railgun/producer.h"
#include "zipf.h"

/* The mock cluster keeps at most 5 MB (or 100000 batches) per partition
 * and silently drops older ones, so the data produced up front spreads
 * evenly: uniform videos over many partitions, not the Zipf of the demo. */
#define KPARTS 64
#define KVIDEOS 100000
#define MAX_ROUNDS 99

/* ---- CPU by thread group ---------------------------------------------- */

enum { G_INGEST, G_WORKERS, G_ENGINE, G_CLIENT, G_MOCK, G_OTHER, G__COUNT };
static const char *const gname[G__COUNT] = {
    "ingest", "workers", "engine", "librdkafka", "mock", "other"};

#define MAX_THREADS 512

struct tsnap {
    int n;
    pid_t tid[MAX_THREADS];
    uint64_t ns[MAX_THREADS];
    char comm[MAX_THREADS][16];
};

/* The threads that existed before the clients: the mock cluster's. */
struct tset {
    int n;
    pid_t tid[MAX_THREADS];
};

static bool tset_has(const struct tset *s, pid_t t)
{
    for (int i = 0; i < s->n; i++)
        if (s->tid[i] == t)
            return true;
    return false;
}

static void read_line(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(buf, (int)size, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

/* Every thread of this process with its CPU time so far. */
static void tsnap_take(struct tsnap *s)
{
    s->n = 0;
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && s->n < MAX_THREADS) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[64], line[128];
        long tid = strtol(de->d_name, NULL, 10);
        snprintf(path, sizeof(path), "/proc/self/task/%ld/schedstat", tid);
        read_line(path, line, sizeof(line));
        if (line[0] == '\0')
            continue; /* gone meanwhile */
        int i = s->n++;
        s->tid[i] = (pid_t)tid;
        s->ns[i] = strtoull(line, NULL, 10);
        snprintf(path, sizeof(path), "/proc/self/task/%ld/comm", tid);
        read_line(path, s->comm[i], sizeof(s->comm[i]));
    }
    closedir(d);
}

static void tset_take(struct tset *set)
{
    struct tsnap *s = malloc(sizeof(*s));
    set->n = 0;
    if (s == NULL)
        return;
    tsnap_take(s);
    for (int i = 0; i < s->n; i++)
        set->tid[set->n++] = s->tid[i];
    free(s);
}

static int group_of(pid_t tid, const char *comm, const struct tset *mock,
                    pid_t self, bool self_ingests)
{
    if (tid == self)
        return self_ingests ? G_INGEST : G_OTHER;
    if (tset_has(mock, tid))
        return G_MOCK;
    if (strcmp(comm, "rg:poll") == 0)
        return G_INGEST;
    if (strncmp(comm, "rg:w", 4) == 0)
        return G_WORKERS;
    if (strncmp(comm, "rg:", 3) == 0)
        return G_ENGINE;
    if (strncmp(comm, "rdk:", 4) == 0)
        return G_CLIENT;
    return G_OTHER;
}

/* CPU nanoseconds per group between two snapshots (a thread born in
 * between counts from zero; one that ended in between is not seen). */
static void tsnap_diff(const struct tsnap *a, const struct tsnap *b,
                       const struct tset *mock, bool self_ingests,
                       double out[G__COUNT])
{
    pid_t self = (pid_t)syscall(SYS_gettid);
    for (int g = 0; g < G__COUNT; g++)
        out[g] = 0;
    for (int i = 0; i < b->n; i++) {
        uint64_t before = 0;
        for (int j = 0; j < a->n; j++)
            if (a->tid[j] == b->tid[i]) {
                before = a->ns[j];
                break;
            }
        out[group_of(b->tid[i], b->comm[i], mock, self, self_ingests)] +=
            (double)(b->ns[i] - before);
    }
}

/* ---- the data --------------------------------------------------------- */

struct kmsgs {
    char (*key)[24];
    char (*val)[RG_LIKE_JSON_MAX];
    size_t *klen, *vlen;
};

static int kmsgs_make(struct kmsgs *m, uint64_t n, uint64_t seed,
                      bool binary)
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
        m->vlen[i] = binary ? rg_like_encode_binary(&like,
                                                    (uint8_t *)m->val[i])
                            : rg_like_encode_json(&like, m->val[i]);
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

/* ---- one side of a round ---------------------------------------------- */

/* What one side of one round measured: events/s (-1: failed) and CPU
 * nanoseconds by group over its window. */
struct side {
    double rate;
    double cpu[G__COUNT];
};

struct run {
    rg_cli_t *cli;
    bool bare_batch;
    const char *servers;
    const struct kmsgs *m;
    uint64_t n;
    struct tset mock;
    struct tsnap *t0, *t1;  /* scratch snapshots */
};

/* The user's -X kafka.* settings, for the bare clients: railgun's side
 * gets them through its conf. */
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
    char err[512];
    if (user_props(cli->conf, kc, err, sizeof(err)) != 0) {
        rd_kafka_conf_destroy(kc);
        rg_cli_error(cli, "%s", err);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(type, kc, err, sizeof(err));
    if (rk == NULL) {
        rd_kafka_conf_destroy(kc);
        rg_cli_error(cli, "%s", err);
    }
    return rk;
}

static void producer_props(rd_kafka_conf_t *kc, const char *servers)
{
    rd_kafka_conf_set(kc, "bootstrap.servers", servers, NULL, 0);
    rd_kafka_conf_set(kc, "linger.ms", "5", NULL, 0);
    rd_kafka_conf_set(kc, "partitioner", "murmur2_random", NULL, 0);
    rd_kafka_conf_set(kc, "log_level", "0", NULL, 0);
}

/* The bare producer: rd_kafka_producev per message, then flush. */
static struct side produce_bare(struct run *r)
{
    struct side out = {.rate = -1};
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    producer_props(kc, r->servers);
    rd_kafka_t *rk = bare_client(r->cli, RD_KAFKA_PRODUCER, kc);
    if (rk == NULL)
        return out;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "likes", NULL);
    if (rkt == NULL) {
        rd_kafka_destroy(rk);
        rg_cli_error(r->cli, "topic: %s",
                     rd_kafka_err2str(rd_kafka_last_error()));
        return out;
    }
    const struct kmsgs *m = r->m;
    tsnap_take(r->t0);
    double t0 = rg_now();
    for (uint64_t i = 0; i < r->n; i++) {
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
    tsnap_take(r->t1);
    tsnap_diff(r->t0, r->t1, &r->mock, true, out.cpu);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    out.rate = (double)r->n / secs;
    return out;
}

/* The user's conf for railgun's side: pointed at the mock cluster,
 * librdkafka's log off. NULL with errstr. */
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
static struct side produce_sdk(struct run *r)
{
    struct side out = {.rate = -1};
    char err[512];
    rg_producer_t *p = NULL;
    rg_conf_t *c = kafka_conf(r->cli, r->servers, err, sizeof(err));
    if (c != NULL &&
        rg_conf_set(c, "kafka.linger.ms", "5", err, sizeof(err)) == 0)
        p = rg_producer_new(c, NULL, NULL, err, sizeof(err));
    rg_conf_destroy(c);
    if (p == NULL) {
        rg_cli_error(r->cli, "%s", err);
        return out;
    }
    const struct kmsgs *m = r->m;
    tsnap_take(r->t0);
    double t0 = rg_now();
    for (uint64_t i = 0; i < r->n; i++) {
        while (rg_producer_send_bytes(p, m->key[i], m->klen[i], m->val[i],
                                      m->vlen[i], NULL) == RG_EFULL)
            rg_producer_poll(p, 10);
        if ((i & 1023) == 0)
            rg_producer_poll(p, 0);
    }
    rg_producer_flush(p, 120000);
    double secs = rg_now() - t0;
    tsnap_take(r->t1);
    tsnap_diff(r->t0, r->t1, &r->mock, true, out.cpu);
    rg_producer_destroy(p);
    out.rate = (double)r->n / secs;
    return out;
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

/* A consume loop that does nothing with the messages. */
static struct side consume_bare(struct run *r, unsigned round)
{
    struct side out = {.rate = -1};
    char group[32];
    snprintf(group, sizeof(group), "bench-bare-%u", round);
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    consumer_props(kc, r->servers, group);
    rd_kafka_t *rk = bare_client(r->cli, RD_KAFKA_CONSUMER, kc);
    if (rk == NULL)
        return out;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, "likes", RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    uint64_t got = 0;
    double t0 = 0, deadline = rg_now() + 300;
    rd_kafka_message_t *ms[256];
    while (got < r->n) {
        ssize_t n = 0;
        if (r->bare_batch) {
            n = rd_kafka_consume_batch_queue(q, 100, ms, 256);
        } else if ((ms[0] = rd_kafka_consumer_poll(rk, 100)) != NULL) {
            n = 1;
        }
        if (n <= 0) {
            if (rg_now() > deadline)
                break;
            continue;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (!ms[i]->err && got++ == 0) {
                tsnap_take(r->t0);
                t0 = rg_now();
            }
            rd_kafka_message_destroy(ms[i]);
        }
    }
    rd_kafka_queue_destroy(q);
    double secs = rg_now() - t0;
    tsnap_take(r->t1);
    tsnap_diff(r->t0, r->t1, &r->mock, true, out.cpu);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (got == r->n)
        out.rate = (double)(r->n - 1) / secs;
    else
        rg_cli_error(r->cli, "bare consumer: %" PRIu64 " of %" PRIu64
                     " messages in 300 s", got, r->n);
    return out;
}

/* railgun: the Kafka source, the likes job, a null sink; the clock runs
 * from the first message taken to the n-th processed. */
static struct side consume_railgun(struct run *r, unsigned round)
{
    struct side out = {.rate = -1};
    char err[512], group[32];
    rg_pipeline_t pl = {0};
    rg_pipeline_opts_t po = {.kafka = true};
    snprintf(group, sizeof(group), "bench-railgun-%u", round);
    rg_conf_t *c = kafka_conf(r->cli, r->servers, err, sizeof(err));
    if (c == NULL ||
        rg_conf_set(c, "group.id", group, err, sizeof(err)) != 0 ||
        rg_conf_set(c, "sink", "null", err, sizeof(err)) != 0 ||
        rg_pipeline_open(&pl, c, &po, err, sizeof(err)) != 0 ||
        rg_pipeline_start(&pl, err, sizeof(err)) != 0 ||
        rg_pipeline_spawn_source(&pl, err, sizeof(err)) != 0)
        goto out;
    double t0 = 0, deadline = rg_now() + 300;
    rg_engine_stats_t st = {0};
    for (;;) {
        rg_engine_stats(pl.engine, &st);
        if (t0 == 0 && st.accepted > 0) {
            tsnap_take(r->t0);
            t0 = rg_now();
        }
        if (st.processed >= r->n || rg_now() > deadline ||
            rg_pipeline_source_done(&pl))
            break;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    double secs = rg_now() - t0;
    tsnap_take(r->t1);
    tsnap_diff(r->t0, r->t1, &r->mock, false, out.cpu);
    rg_pipeline_stop(&pl);
    if (st.processed >= r->n)
        out.rate = (double)r->n / secs;
    else if (rg_kafka_source_error(pl.source) != NULL)
        snprintf(err, sizeof(err), "%s", rg_kafka_source_error(pl.source));
    else
        snprintf(err, sizeof(err), "%" PRIu64 " of %" PRIu64 " events "
                 "processed in 300 s", st.processed, r->n);
out:
    if (out.rate < 0)
        rg_cli_error(r->cli, "%s", err);
    rg_pipeline_close(&pl);
    rg_conf_destroy(c);
    return out;
}

/* ---- rounds and the report -------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, unsigned n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, sizeof(double) * n);
    qsort(s, n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* Per side: the median rate and, per group, the median over the rounds
 * of microseconds of CPU per event. */
struct summary {
    double rate;
    double us[G__COUNT + 1];  /* + total */
};

static void summarize(const struct side *sides, unsigned rounds, uint64_t n,
                      struct summary *out)
{
    double v[MAX_ROUNDS];
    for (unsigned i = 0; i < rounds; i++)
        v[i] = sides[i].rate;
    out->rate = median(v, rounds);
    for (int g = 0; g <= G__COUNT; g++) {
        for (unsigned i = 0; i < rounds; i++) {
            double ns = 0;
            if (g == G__COUNT)
                for (int k = 0; k < G__COUNT; k++)
                    ns += sides[i].cpu[k];
            else
                ns = sides[i].cpu[g];
            v[i] = ns / (double)n / 1000.0;
        }
        out->us[g] = median(v, rounds);
    }
}

static void print_json_side(const char *name, const struct side *sides,
                            unsigned rounds, const struct summary *s)
{
    printf("\"%s\":{\"events_per_s\":%.0f,\"rounds\":[", name, s->rate);
    for (unsigned i = 0; i < rounds; i++)
        printf("%s%.0f", i ? "," : "", sides[i].rate);
    printf("],\"cpu_us_per_event\":{");
    for (int g = 0; g < G__COUNT; g++)
        printf("\"%s\":%.3f,", gname[g], s->us[g]);
    printf("\"total\":%.3f}}", s->us[G__COUNT]);
}

static void print_text_cpu(const char *name, const struct summary *s)
{
    printf("    %-22s", name);
    for (int g = 0; g <= G__COUNT; g++)
        printf(" %9.3f", s->us[g]);
    printf("\n");
}

int rg_bench_kafka(rg_cli_t *cli, const rg_bench_kafka_opts_t *o)
{
    struct kmsgs m = {0};
    rg_mock_t mock = {0};
    char err[512];
    int rc = 1;
    unsigned rounds = o->rounds;
    struct side *a = calloc(MAX_ROUNDS, sizeof(*a)); /* bare */
    struct side *b = calloc(MAX_ROUNDS, sizeof(*b)); /* railgun */
    struct run r = {.cli = cli, .bare_batch = o->bare_batch, .n = o->events};
    r.t0 = malloc(sizeof(*r.t0));
    r.t1 = malloc(sizeof(*r.t1));
    if (a == NULL || b == NULL || r.t0 == NULL || r.t1 == NULL ||
        kmsgs_make(&m, o->events, o->seed, o->binary) != 0) {
        rg_cli_error(cli, "out of memory");
        goto out;
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        rc = rg_cli_fail(cli, "--rounds: 1 .. %d", MAX_ROUNDS);
        goto out;
    }
    if (rg_mock_open(&mock, 3, err, sizeof(err)) != 0 ||
        rg_mock_topic(&mock, "likes", KPARTS, 1, err, sizeof(err)) != 0) {
        rg_cli_error(cli, "%s", err);
        goto out;
    }
    tset_take(&r.mock); /* every thread so far is the mock cluster's */
    r.servers = rg_mock_servers(&mock);
    r.m = &m;
    if (o->consume && produce_bare(&r).rate <= 0) /* the data, once */
        goto out;
    for (unsigned i = 0; i < rounds; i++) {
        /* alternate which side goes first: a drift of the machine over the
         * run then falls on both */
        for (int k = 0; k < 2; k++) {
            bool bare = (k == 0) == (i % 2 == 0);
            struct side s = o->consume
                                ? (bare ? consume_bare(&r, i)
                                        : consume_railgun(&r, i))
                                : (bare ? produce_bare(&r) : produce_sdk(&r));
            if (s.rate <= 0)
                goto out;
            (bare ? a : b)[i] = s;
        }
        if (!cli->json)
            fprintf(stderr, "round %u of %u: bare %.0f/s, railgun %.0f/s\n",
                    i + 1, rounds, a[i].rate, b[i].rate);
    }
    struct summary sa, sb;
    summarize(a, rounds, o->events, &sa);
    summarize(b, rounds, o->events, &sb);
    const char *suite = o->consume ? "kafka" : "produce";
    const char *fmt = o->binary ? "binary" : "json";
    if (cli->json) {
        printf("{\"suite\":\"%s\",\"events\":%" PRIu64 ",\"format\":\"%s\","
               "\"partitions\":%d,\"rounds\":%u,\"bare_events_per_s\":%.0f,"
               "\"railgun_events_per_s\":%.0f,\"ratio\":%.3f,", suite,
               o->events, fmt, KPARTS, rounds, sa.rate, sb.rate,
               sb.rate / sa.rate);
        if (o->consume)
            printf("\"bare_loop\":\"%s\",", o->bare_batch ? "batch" : "poll");
        print_json_side("bare", a, rounds, &sa);
        printf(",");
        print_json_side("railgun", b, rounds, &sb);
        printf("}\n");
    } else {
        char h1[16], h2[16];
        printf("railgun bench %s: %" PRIu64 " like events (%s), mock cluster "
               "(3 brokers, %d partitions), %u interleaved rounds\n", suite,
               o->events, fmt, KPARTS, rounds);
        printf("  %-30s %s events/s (median)\n",
               !o->consume     ? "bare rd_kafka_producev loop"
               : o->bare_batch ? "bare consume loop (batch)"
                               : "bare consume loop (poll)",
               rg_human(sa.rate, h1, sizeof(h1)));
        printf("  %-30s %s events/s (median)\n",
               o->consume ? "railgun (likes job, null sink)"
                          : "railgun producer SDK",
               rg_human(sb.rate, h2, sizeof(h2)));
        printf("  ratio                          %.2fx\n", sb.rate / sa.rate);
        printf("  CPU per event, us (medians):");
        for (int g = 0; g < G__COUNT; g++)
            printf(" %9s", gname[g]);
        printf(" %9s\n", "total");
        print_text_cpu("bare", &sa);
        print_text_cpu("railgun", &sb);
    }
    rc = 0;
out:
    rg_mock_close(&mock);
    kmsgs_free(&m);
    free(r.t0);
    free(r.t1);
    free(a);
    free(b);
    return rc;
}
