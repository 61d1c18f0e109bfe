/*
 * cmd_demo.c - `railgun demo`: the likes job end to end, embedded.
 *
 * Generates like/unlike events from a seed (Zipf-distributed videos,
 * uniform users), each with a fixed (partition, offset): partition =
 * hash(video) % partitions, offsets counting up per partition. They go
 * through the engine and the likes job into the sink (SQLite by default,
 * a temporary file unless --db), then the database is read back and
 * compared with the ground truth computed from the same stream:
 * `verify: exact` or `verify: MISMATCH ...`.
 *
 * Resuming: the demo claims its partitions in the sink and skips every
 * event below the stored next offsets, so a rerun with the same --db and
 * --seed after a crash (--crash-at) must still end exact.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "railgun/railgun.h"
#include "railgun/kafka.h"
#include "railgun/producer.h"
#include "railgun/sinks.h"
#include "zipf.h"
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define BASE_TS 1700000000000ll

/* The generated stream, in generation order. */
struct stream {
    uint64_t n;
    int64_t *video, *user;
    uint8_t *state;
    int32_t *part;
    int64_t *off;
};

/* Ground truth: (video, user) -> final state, and counts per video. */
struct truth {
    struct tpair { int64_t video, user; uint8_t state; } *tab;
    size_t mask, likes;  /* likes: pairs whose final state is 1 */
    int64_t *count;      /* [videos + 1] */
};

struct demo {
    struct stream s;
    struct truth t;
    uint64_t videos, users, seed, events;
    double zipf;
    unsigned partitions;
    int64_t *resume;     /* [partitions]: first offset to push */
    uint64_t crash_epoch;
    rg_epoch_stage_t crash_stage;
    bool kafka;          /* --source kafka (the default) */
    bool verify_only;    /* --verify-only: check the database, run nothing */
    bool stdin_lines;    /* produce --stdin */
};

struct ingest {
    struct demo *demo;
    rg_dispatcher_t *d;
    unsigned idx, ndisp;
    uint64_t pushed;
};

static struct tpair *truth_slot(struct truth *t, int64_t v, int64_t u)
{
    size_t i = (size_t)rg_hash64((uint64_t)v * 0x9E3779B97F4A7C15ull ^
                                 (uint64_t)u) & t->mask;
    while (t->tab[i].video != 0 &&
           !(t->tab[i].video == v && t->tab[i].user == u))
        i = (i + 1) & t->mask;
    return &t->tab[i];
}

static int generate(struct demo *dm)
{
    struct stream *s = &dm->s;
    uint64_t n = dm->events;
    s->n = n;
    s->video = malloc(sizeof(int64_t) * n);
    s->user = malloc(sizeof(int64_t) * n);
    s->state = malloc(n);
    s->part = malloc(sizeof(int32_t) * n);
    s->off = malloc(sizeof(int64_t) * n);
    size_t size = 1024;
    while (size < 2 * n)
        size *= 2;
    dm->t.tab = calloc(size, sizeof(struct tpair));
    dm->t.mask = size - 1;
    dm->t.count = calloc(dm->videos + 1, sizeof(int64_t));
    int64_t *next = calloc(dm->partitions, sizeof(int64_t));
    if (!s->video || !s->user || !s->state || !s->part || !s->off ||
        !dm->t.tab || !dm->t.count || !next) {
        free(next);
        return -1;
    }
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, dm->seed);
    rg_zipf_init(&zipf, dm->videos, dm->zipf);
    for (uint64_t i = 0; i < n; i++) {
        int64_t v = (int64_t)rg_zipf_next(&zipf, &rng);
        int64_t u = 1 + (int64_t)rg_rng_below(&rng, dm->users);
        /* 2 in 3 events are likes, so unlikes find likes to undo */
        uint8_t st = rg_rng_below(&rng, 3) != 0;
        int32_t p = (int32_t)rg_hash_reduce(rg_hash64((uint64_t)v),
                                            dm->partitions);
        s->video[i] = v;
        s->user[i] = u;
        s->state[i] = st;
        s->part[i] = p;
        s->off[i] = next[p]++;
        /* the truth: apply the same transition rule in stream order */
        struct tpair *tp = truth_slot(&dm->t, v, u);
        if (tp->video == 0)
            *tp = (struct tpair){v, u, 0};
        if (tp->state != st) {
            dm->t.count[v] += st ? 1 : -1;
            dm->t.likes += st ? 1 : (size_t)-1;
            tp->state = st;
        }
    }
    free(next);
    return 0;
}

static void *ingest_main(void *arg)
{
    struct ingest *in = arg;
    struct demo *dm = in->demo;
    enum { BURST = 256 };
    rg_msg_t msgs[BURST];
    static __thread char keys[BURST][24];
    static __thread char vals[BURST][RG_LIKE_JSON_MAX];
    size_t n = 0;
    for (uint64_t i = 0; i < dm->s.n; i++) {
        int32_t p = dm->s.part[i];
        if ((unsigned)p % in->ndisp != in->idx || dm->s.off[i] < dm->resume[p])
            continue;
        rg_like_t like = {(uint64_t)dm->s.video[i], (uint64_t)dm->s.user[i],
                          BASE_TS + (int64_t)i, dm->s.state[i]};
        size_t kl = rg_like_encode_key(like.video_id, keys[n]);
        size_t vl = rg_like_encode_json(&like, vals[n]);
        msgs[n] = (rg_msg_t){p, dm->s.off[i], keys[n], kl, vals[n], vl};
        if (++n == BURST || i + 1 == dm->s.n) {
            if (rg_dispatcher_push_burst(in->d, msgs, n) < n)
                return NULL; /* the engine stopped on its own */
            in->pushed += n;
            n = 0;
        }
    }
    if (n > 0 && rg_dispatcher_push_burst(in->d, msgs, n) == n)
        in->pushed += n;
    return NULL;
}

static void crash_hook(void *opaque, uint64_t epoch, rg_epoch_stage_t stage)
{
    struct demo *dm = opaque;
    if (epoch >= dm->crash_epoch && stage == dm->crash_stage) {
        fprintf(stderr, "railgun demo: --crash-at: killing myself in epoch "
                "%" PRIu64 " (%s)\n", epoch,
                stage == RG_EPOCH_BEFORE_COMMIT ? "before commit"
                                                : "after commit, before "
                                                  "the offset hand-off");
        fflush(stderr);
        kill(getpid(), SIGKILL);
    }
}

/* ---- verification ------------------------------------------------------ */

struct check {
    struct demo *dm;
    char msg[256];
    bool bad;
    uint64_t rows, liked_rows, videos_seen;
};

static void check_count(void *arg, const rg_row_t *row)
{
    struct check *c = arg;
    c->rows++;
    if (c->bad)
        return;
    int64_t want = row->key >= 1 && (uint64_t)row->key <= c->dm->videos
                       ? c->dm->t.count[row->key]
                       : -1;
    if (row->value != want) {
        snprintf(c->msg, sizeof(c->msg), "video %" PRId64 ": count %"
                 PRId64 " in the database, %" PRId64 " expected", row->key,
                 row->value, want);
        c->bad = true;
    }
    if (want > 0)
        c->videos_seen++;
}

static void check_action(void *arg, const rg_row_t *row)
{
    struct check *c = arg;
    c->rows++;
    if (c->bad)
        return;
    struct tpair *tp = truth_slot(&c->dm->t, row->key, row->key2);
    if (tp->video == 0 || tp->state != row->value) {
        snprintf(c->msg, sizeof(c->msg), "action (video %" PRId64 ", user %"
                 PRId64 "): state %" PRId64 " in the database, %d expected",
                 row->key, row->key2, row->value,
                 tp->video ? tp->state : 0);
        c->bad = true;
    }
    if (row->value == 1)
        c->liked_rows++;
}

/* Compares the sink with the truth; 0 or 1 with msg filled. */
static int verify(struct demo *dm, const rg_sink_t *sink, char *msg,
                  size_t size, uint64_t *count_rows, uint64_t *action_rows)
{
    char err[512];
    struct check c = {.dm = dm};
    int rc = sink->scan(sink->self, RG_SINK_MERGED, check_count, &c, err,
                        sizeof(err));
    if (rc != 0) {
        snprintf(msg, size, "cannot read counts: %.200s", err);
        return 1;
    }
    *count_rows = c.rows;
    uint64_t want_videos = 0;
    for (uint64_t v = 1; v <= dm->videos; v++)
        want_videos += dm->t.count[v] > 0;
    if (!c.bad && c.videos_seen != want_videos) {
        snprintf(c.msg, sizeof(c.msg), "%" PRIu64 " videos with likes in "
                 "the database, %" PRIu64 " expected", c.videos_seen,
                 want_videos);
        c.bad = true;
    }
    if (!c.bad) {
        c.rows = 0;
        rc = sink->scan(sink->self, RG_SINK_STAGED, check_action, &c, err,
                        sizeof(err));
        if (rc != 0) {
            snprintf(msg, size, "cannot read actions: %.200s", err);
            return 1;
        }
        *action_rows = c.rows;
        if (!c.bad && c.liked_rows != dm->t.likes) {
            snprintf(c.msg, sizeof(c.msg), "%" PRIu64 " liked actions in "
                     "the database, %zu expected", c.liked_rows,
                     dm->t.likes);
            c.bad = true;
        }
    }
    snprintf(msg, size, "%s", c.msg);
    return c.bad ? 1 : 0;
}

/* ---- over Kafka ----------------------------------------------------------- */

struct mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

static int mock_start(rg_cli_t *cli, struct mock *m, struct demo *dm)
{
    char err[512];
    if (rg_conf_get_str(cli->conf, "kafka.bootstrap.servers") != NULL)
        return rg_cli_fail(cli, "the demo runs its own mock cluster, and "
                           "re-produces its topic on every run; point "
                           "railgun run at a real one");
    if (rg_conf_get_int(cli->conf, "dispatchers") != 1)
        return rg_cli_fail(cli, "dispatchers: the Kafka source is one "
                           "dispatcher (--source memory takes more)");
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
    if ((m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err))) ==
            NULL ||
        (m->mc = rd_kafka_mock_cluster_new(m->rk, 3)) == NULL) {
        if (m->rk)
            rd_kafka_destroy(m->rk);
        m->rk = NULL;
        return rg_cli_fail(cli, "cannot start the mock cluster: %s", err);
    }
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
        m->mc, rg_conf_get_str(cli->conf, "topic"), (int)dm->partitions, 1);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return rg_cli_fail(cli, "topic: %s", rd_kafka_err2str(e));
    if (rg_conf_set(cli->conf, "kafka.bootstrap.servers",
                    rd_kafka_mock_cluster_bootstraps(m->mc), err,
                    sizeof(err)) != 0)
        return rg_cli_fail(cli, "%s", err);
    return 0;
}

static void mock_stop(struct mock *m)
{
    if (m->mc)
        rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk)
        rd_kafka_destroy(m->rk);
}

static void on_delivered(void *opaque, const rg_delivery_t *d)
{
    uint64_t *failed = opaque;
    if (d->err)
        (*failed)++;
}

/* The producer thread: the whole stream through the SDK, keyed by video,
 * in generation order; idempotent, so every run lays out the same offsets.
 * It stays at most PRODUCE_LAG events ahead of the engine: librdkafka's
 * mock cluster keeps only the newest few MB of each partition and drops
 * older messages silently, so a consumer left far behind would miss some
 * (measured: 14k of 600k when everything was produced first). */
#define PRODUCE_LAG 100000

struct prod {
    struct demo *dm;
    rg_producer_t *p;
    rg_engine_t *e;
    uint64_t skipped;      /* events below the stored offsets */
    _Atomic int stop;
    uint64_t failed;
    char err[256];
};

static rg_producer_t *producer_open(rg_cli_t *cli, struct prod *pr)
{
    char err[512];
    rg_conf_t *pc = rg_conf_dup(cli->conf);
    if (pc == NULL || rg_conf_set(pc, "kafka.enable.idempotence", "true",
                                  err, sizeof(err)) != 0 ||
        rg_conf_set(pc, "kafka.linger.ms", "5", err, sizeof(err)) != 0) {
        rg_conf_destroy(pc);
        rg_cli_fail(cli, "out of memory");
        return NULL;
    }
    pr->p = rg_producer_new(pc, on_delivered, &pr->failed, err, sizeof(err));
    rg_conf_destroy(pc);
    if (pr->p == NULL)
        rg_cli_fail(cli, "%s", err);
    return pr->p;
}

static void *producer_main(void *arg)
{
    struct prod *pr = arg;
    struct demo *dm = pr->dm;
    for (uint64_t i = 0; i < dm->s.n; i++) {
        /* relaxed: a flag */
        if (atomic_load_explicit(&pr->stop, memory_order_relaxed))
            break;
        while ((i & 1023) == 0 && pr->e != NULL) {
            rg_engine_stats_t st;
            rg_engine_stats(pr->e, &st);
            if (i < pr->skipped + st.accepted + st.undecodable + PRODUCE_LAG ||
                atomic_load_explicit(&pr->stop, memory_order_relaxed))
                break;
            rg_producer_poll(pr->p, 5);
        }
        char key[24], val[RG_LIKE_JSON_MAX];
        rg_like_t like = {(uint64_t)dm->s.video[i], (uint64_t)dm->s.user[i],
                          BASE_TS + (int64_t)i, dm->s.state[i]};
        size_t kl = rg_like_encode_key(like.video_id, key);
        size_t vl = rg_like_encode_json(&like, val);
        int rc;
        while ((rc = rg_producer_send_bytes(pr->p, key, kl, val, vl, NULL)) ==
               RG_EFULL)
            rg_producer_poll(pr->p, 10);
        if (rc != 0) {
            snprintf(pr->err, sizeof(pr->err), "produce: %s",
                     rg_producer_last_error());
            return NULL;
        }
        if ((i & 1023) == 0)
            rg_producer_poll(pr->p, 0);
    }
    if (rg_producer_flush(pr->p, 120000) != 0)
        snprintf(pr->err, sizeof(pr->err), "produce: %s",
                 rg_producer_last_error());
    else if (pr->failed)
        snprintf(pr->err, sizeof(pr->err), "produce: %" PRIu64 " messages "
                 "not delivered", pr->failed);
    return NULL;
}

struct source {
    rg_kafka_source_t *src;
    _Atomic int done;
};

static void *source_main(void *arg)
{
    struct source *s = arg;
    rg_kafka_source_run(s->src);
    /* relaxed: the main loop polls it */
    atomic_store_explicit(&s->done, 1, memory_order_relaxed);
    return NULL;
}

/* ---- command ------------------------------------------------------------ */

static void usage(void)
{
    printf(
        "usage: railgun demo [--source kafka|memory] [--events N] "
        "[--videos V]\n"
        "                    [--users U] [--zipf S] [--seed N]\n"
        "                    [--partitions P] [--workers W] [--db FILE]\n"
        "                    [--crash-at N[:before|:after]] [--verify-only]\n"
        "                    [--json]\n"
        "                    [--config FILE] [-X name=value]\n\n"
        "Generates N like/unlike events (Zipf(S) over V videos, U users),\n"
        "produces them into Kafka (an in-process mock cluster, or the one\n"
        "-X kafka.bootstrap.servers names) with the producer SDK and\n"
        "consumes them with the Kafka source (--source memory: pushes them\n"
        "straight into the engine instead), through the likes job into the\n"
        "sink\n"
        "(-X sink=sqlite, the default, into --db or a temporary file;\n"
        "-X sink=mysql with the mysql.* properties), then compares the\n"
        "database with the ground truth. Ends with `verify: exact` (exit 0)\n"
        "or `verify: MISMATCH ...` (exit 1).\n\n"
        "--verify-only compares the database (--db, or -X sink=mysql ...)\n"
        "with the stream of these options and runs nothing: to check what\n"
        "`railgun produce` + `railgun run` stored.\n\n"
        "--crash-at N kills the process (SIGKILL) in the N-th epoch's flush,\n"
        "before its commit (default) or after it, before the offset\n"
        "hand-off. Rerun with the same --db and --seed to resume from the\n"
        "stored offsets.\n");
}

static int parse_crash(rg_cli_t *cli, const char *v, struct demo *dm)
{
    char num[32];
    const char *colon = strchr(v, ':');
    size_t len = colon ? (size_t)(colon - v) : strlen(v);
    if (len == 0 || len >= sizeof(num))
        return rg_cli_fail(cli, "--crash-at: \"%s\" is not N[:before|:after]",
                           v);
    memcpy(num, v, len);
    num[len] = '\0';
    if (rg_cli_u64(cli, "--crash-at", num, 1, UINT64_MAX, &dm->crash_epoch))
        return 2;
    dm->crash_stage = RG_EPOCH_BEFORE_COMMIT;
    if (colon != NULL) {
        if (strcmp(colon + 1, "after") == 0)
            dm->crash_stage = RG_EPOCH_COMMITTED;
        else if (strcmp(colon + 1, "before") != 0)
            return rg_cli_fail(cli, "--crash-at: stage \"%s\" is not before "
                               "or after", colon + 1);
    }
    return 0;
}

static int parse_args(rg_cli_t *cli, struct demo *dm, int argc, char **argv,
                      const char **db)
{
    char err[512];
    const char *source = "kafka";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        uint64_t u;
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        if (rg_cli_is(a, "--source")) {
            if (!(source = rg_cli_value(cli, argc, argv, &i, "--source")))
                return 2;
        } else if (rg_cli_is(a, "--events")) {
            v = rg_cli_value(cli, argc, argv, &i, "--events");
            if (!v || rg_cli_u64(cli, "--events", v, 1, 1000000000ull,
                                 &dm->events))
                return 2;
        } else if (rg_cli_is(a, "--videos")) {
            v = rg_cli_value(cli, argc, argv, &i, "--videos");
            if (!v || rg_cli_u64(cli, "--videos", v, 1, 100000000ull,
                                 &dm->videos))
                return 2;
        } else if (rg_cli_is(a, "--users")) {
            v = rg_cli_value(cli, argc, argv, &i, "--users");
            if (!v || rg_cli_u64(cli, "--users", v, 1, 1000000000000ull,
                                 &dm->users))
                return 2;
        } else if (rg_cli_is(a, "--seed")) {
            v = rg_cli_value(cli, argc, argv, &i, "--seed");
            if (!v || rg_cli_u64(cli, "--seed", v, 0, UINT64_MAX, &dm->seed))
                return 2;
        } else if (rg_cli_is(a, "--zipf")) {
            v = rg_cli_value(cli, argc, argv, &i, "--zipf");
            if (!v || rg_cli_double(cli, "--zipf", v, 0, 10, &dm->zipf))
                return 2;
        } else if (rg_cli_is(a, "--partitions")) {
            v = rg_cli_value(cli, argc, argv, &i, "--partitions");
            if (!v || rg_cli_u64(cli, "--partitions", v, 1, 1024, &u))
                return 2;
            dm->partitions = (unsigned)u;
        } else if (rg_cli_is(a, "--db")) {
            if (!(*db = rg_cli_value(cli, argc, argv, &i, "--db")))
                return 2;
        } else if (!strcmp(a, "--stdin") && !strcmp(cli->cmd, "produce")) {
            dm->stdin_lines = true;
        } else if (!strcmp(a, "--verify-only")) {
            dm->verify_only = true;
        } else if (rg_cli_is(a, "--crash-at")) {
            v = rg_cli_value(cli, argc, argv, &i, "--crash-at");
            if (!v || parse_crash(cli, v, dm))
                return 2;
        } else if (rg_cli_is(a, "--workers") ||
                   rg_cli_is(a, "--dispatchers")) {
            /* shorthands for -X workers=W and -X dispatchers=D */
            bool wk = rg_cli_is(a, "--workers");
            v = rg_cli_value(cli, argc, argv, &i,
                             wk ? "--workers" : "--dispatchers");
            if (v == NULL)
                return 2;
            if (rg_conf_set(cli->conf, wk ? "workers" : "dispatchers", v,
                            err, sizeof(err)) != 0)
                return rg_cli_fail(cli, "%s", err);
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", a);
        }
    }
    if (!cli->help && strcmp(source, "memory") != 0 &&
        strcmp(source, "kafka") != 0)
        return rg_cli_fail(cli, "--source: \"%s\" is not a source (kafka "
                           "or memory)", source);
    dm->kafka = strcmp(source, "kafka") == 0;
    return 0;
}

static void free_demo(struct demo *dm)
{
    free(dm->s.video);
    free(dm->s.user);
    free(dm->s.state);
    free(dm->s.part);
    free(dm->s.off);
    free(dm->t.tab);
    free(dm->t.count);
    free(dm->resume);
}

int rg_cmd_demo(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "demo", .conf = rg_conf_new()};
    struct demo dm = {.events = 2000000, .videos = 10000, .users = 100000,
                      .seed = 1, .zipf = 0.99, .partitions = 32};
    const char *db = NULL;
    char err[512], tmp_db[64] = "";
    if (cli.conf == NULL)
        return rg_cli_fail(&cli, "out of memory");
    int rc = parse_args(&cli, &dm, argc, argv, &db);
    if (rc != 0 || cli.help) {
        if (rc == 0)
            usage();
        rg_conf_destroy(cli.conf);
        return rc;
    }
    const char *kind = rg_conf_get_str(cli.conf, "sink");
    if (strcmp(kind, "null") == 0) {
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "sink=null stores nothing, so there is "
                           "nothing to verify: use sqlite or mysql");
    }
    if (strcmp(kind, "sqlite") == 0) {
        if (db == NULL && rg_conf_get_str(cli.conf, "sqlite.path")[0])
            db = rg_conf_get_str(cli.conf, "sqlite.path");
        if (db == NULL) {
            const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
            snprintf(tmp_db, sizeof(tmp_db), "%.40s/railgun-demo-XXXXXX",
                     dir);
            int fd = mkstemp(tmp_db);
            if (fd < 0) {
                rg_conf_destroy(cli.conf);
                return rg_cli_fail(&cli, "cannot create a temporary "
                                   "database in %s", dir);
            }
            close(fd);
            db = tmp_db;
        }
        if (rg_conf_set(cli.conf, "sqlite.path", db, err, sizeof(err)) != 0) {
            rg_conf_destroy(cli.conf);
            return rg_cli_fail(&cli, "%s", err);
        }
    }
    if (rg_conf_get_int(cli.conf, "dispatchers") > dm.partitions) {
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "dispatchers: more than --partitions (%u) "
                           "would leave one without a partition",
                           dm.partitions);
    }

    struct mock mock = {0};
    if (dm.kafka && !dm.verify_only &&
        (rc = mock_start(&cli, &mock, &dm)) != 0) {
        mock_stop(&mock);
        rg_conf_destroy(cli.conf);
        return rc;
    }

    /* the stream and its truth, before the clock starts */
    if (generate(&dm) != 0 ||
        !(dm.resume = calloc(dm.partitions, sizeof(int64_t)))) {
        free_demo(&dm);
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "out of memory for %" PRIu64 " events",
                           dm.events);
    }

    rg_sink_t sink;
    if ((rc = rg_likes_open_sink(cli.conf, dm.verify_only ? 0
                                                          : RG_SINK_INIT_SCHEMA,
                                 &sink, err, sizeof(err))) != 0) {
        free_demo(&dm);
        mock_stop(&mock);
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "%s", err);
    }
    if (dm.verify_only) {
        /* the same stream's truth against a database something else
         * filled (railgun produce + railgun run) */
        char why[320] = "";
        uint64_t crows = 0, arows = 0;
        int bad = verify(&dm, &sink, why, sizeof(why), &crows, &arows);
        if (cli.json)
            printf("{\"count_rows\":%" PRIu64 ",\"action_rows\":%" PRIu64
                   ",\"verify\":\"%s\"}\n", crows, arows,
                   bad ? "MISMATCH" : "exact");
        else if (bad)
            printf("verify: MISMATCH %s\n", why);
        else
            printf("verify: exact\n");
        sink.close(sink.self);
        free_demo(&dm);
        rg_conf_destroy(cli.conf);
        return bad ? 1 : 0;
    }
    /* claim every partition; resume after what is stored */
    int32_t *parts = malloc(sizeof(int32_t) * dm.partitions);
    for (unsigned p = 0; parts && p < dm.partitions; p++)
        parts[p] = (int32_t)p;
    if (parts == NULL ||
        (rc = sink.claim(sink.self, parts, dm.partitions, dm.resume, err,
                         sizeof(err))) != 0) {
        free(parts);
        sink.close(sink.self);
        free_demo(&dm);
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "%s", parts ? err : "out of memory");
    }
    free(parts);
    uint64_t skipped = 0;
    struct prod prod = {.dm = &dm};
    for (unsigned p = 0; p < dm.partitions; p++)
        if (dm.resume[p] < 0)
            dm.resume[p] = 0;
    if (dm.kafka) {
        /* a fresh topic from the same seed: the same offsets again, so
         * the stored ones say how many events are done */
        for (unsigned p = 0; p < dm.partitions; p++)
            skipped += (uint64_t)dm.resume[p];
        if (producer_open(&cli, &prod) == NULL) {
            sink.close(sink.self);
            free_demo(&dm);
            mock_stop(&mock);
            rg_conf_destroy(cli.conf);
            return 2;
        }
    } else {
        for (uint64_t i = 0; i < dm.s.n; i++)
            skipped += dm.s.off[i] < dm.resume[dm.s.part[i]];
    }

    unsigned workers = (unsigned)rg_conf_get_int(cli.conf, "workers");
    unsigned ndisp = (unsigned)rg_conf_get_int(cli.conf, "dispatchers");
    rg_likes_job_t *job = rg_likes_job_new(workers, &sink, 0, 0);
    rg_processor_t proc;
    rg_engine_t *e = NULL;
    if (job != NULL) {
        rg_likes_job_processor(job, &proc);
        e = rg_engine_new(cli.conf, &proc, err, sizeof(err));
    } else {
        snprintf(err, sizeof(err), "out of memory");
    }
    if (e == NULL || rg_engine_set_sink(e, &sink, err, sizeof(err)) != 0) {
        if (e == NULL)
            rg_conf_destroy(cli.conf);
        rg_producer_destroy(prod.p);
        rg_likes_job_destroy(job);
        rg_engine_destroy(e);
        sink.close(sink.self);
        free_demo(&dm);
        return rg_cli_fail(&cli, "%s", err);
    }
    rg_likes_job_bind(job, e);
    if (dm.crash_epoch)
        rg_engine_set_epoch_hook(e, crash_hook, &dm);
    struct source src = {0};
    /* a fresh group on a fresh topic: from the start, unless told */
    if (dm.kafka && rg_conf_get_str(cli.conf, "kafka.auto.offset.reset") ==
                        NULL)
        rg_conf_set(cli.conf, "kafka.auto.offset.reset", "earliest", err,
                    sizeof(err));
    if (dm.kafka && (src.src = rg_kafka_source_new(e, 0, cli.conf, &sink,
                                                   err, sizeof(err))) ==
                        NULL) {
        rg_producer_destroy(prod.p);
        rg_likes_job_destroy(job);
        rg_engine_destroy(e);
        free_demo(&dm);
        mock_stop(&mock);
        return rg_cli_fail(&cli, "%s", err);
    }
    if (rg_engine_start(e, err, sizeof(err)) != 0) {
        rg_producer_destroy(prod.p);
        rg_kafka_source_destroy(src.src);
        rg_likes_job_destroy(job);
        rg_engine_destroy(e);
        free_demo(&dm);
        return rg_cli_fail(&cli, "%s", err);
    }

    struct ingest *ins = calloc(ndisp, sizeof(*ins));
    pthread_t *th = calloc(ndisp, sizeof(*th));
    rg_progress_t prog;
    uint64_t todo = dm.s.n - skipped;
    rg_progress_init(&prog, "demo", todo, cli.json);
    double t0 = rg_now();
    pthread_t prod_th;
    if (dm.kafka) {
        prod.e = e;
        prod.skipped = skipped;
        pthread_create(&prod_th, NULL, producer_main, &prod);
        pthread_create(&th[0], NULL, source_main, &src);
    } else
        for (unsigned d = 0; d < ndisp; d++) {
            ins[d] = (struct ingest){&dm, rg_engine_dispatcher(e, d), d,
                                     ndisp, 0};
            pthread_create(&th[d], NULL, ingest_main, &ins[d]);
        }
    rg_engine_stats_t st;
    for (;;) {
        rg_engine_stats(e, &st);
        rg_progress_update(&prog, st.processed);
        if (st.processed + st.undecodable >= todo || rg_engine_error(e) ||
            (src.src && src.done))
            break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    char srcerr[512] = "";
    if (dm.kafka) {
        /* relaxed: a flag */
        atomic_store_explicit(&prod.stop, 1, memory_order_relaxed);
        pthread_join(prod_th, NULL);
        rg_producer_destroy(prod.p);
        rg_kafka_source_stop(src.src);
        pthread_join(th[0], NULL);
        if (prod.err[0])
            snprintf(srcerr, sizeof(srcerr), "%s", prod.err);
        else if (rg_kafka_source_error(src.src) != NULL)
            snprintf(srcerr, sizeof(srcerr), "%s",
                     rg_kafka_source_error(src.src));
        rg_kafka_source_close(src.src); /* leaves the group: flush */
    } else {
        for (unsigned d = 0; d < ndisp; d++)
            pthread_join(th[d], NULL);
    }
    rg_engine_stop(e);   /* the final epoch is flushed here */
    rg_kafka_source_destroy(src.src);
    double secs = rg_now() - t0;
    rg_progress_finish(&prog);
    rg_engine_stats(e, &st);
    rg_flush_stats_t fs;
    rg_engine_flush_stats(e, &fs);
    rg_likes_stats_t ls;
    rg_likes_job_stats(job, &ls);
    rg_likes_job_destroy(job);

    char mismatch[320] = "";
    uint64_t count_rows = 0, action_rows = 0;
    int bad = 0;
    if (rg_engine_error(e) != NULL) {
        snprintf(mismatch, sizeof(mismatch), "the engine stopped: %s",
                 rg_engine_error(e));
        bad = 1;
    } else if (srcerr[0]) {
        snprintf(mismatch, sizeof(mismatch), "the source stopped: %.250s",
                 srcerr);
        bad = 1;
    } else {
        bad = verify(&dm, &sink, mismatch, sizeof(mismatch), &count_rows,
                     &action_rows);
    }
    double rate = secs > 0 ? (double)todo / secs : 0;
    double txn_cut = fs.transactions ? (double)todo / (double)fs.transactions
                                     : 0;
    uint64_t rows = fs.merged_rows + fs.staged_rows;
    double row_cut = rows ? 2.0 * (double)todo / (double)rows : 0;

    if (cli.json) {
        printf("{\"source\":\"%s\",\"sink\":\"%s\",\"events\":%" PRIu64
               ",\"resumed_after\":%" PRIu64 ",\"videos\":%" PRIu64
               ",\"users\":%" PRIu64 ",\"zipf\":%g,\"seed\":%" PRIu64
               ",\"partitions\":%u,\"workers\":%u,\"seconds\":%.6f,"
               "\"events_per_s\":%.0f,\"epochs\":%" PRIu64
               ",\"transactions\":%" PRIu64 ",\"count_rows_written\":%"
               PRIu64 ",\"action_rows_written\":%" PRIu64
               ",\"transaction_reduction\":%.1f,\"row_reduction\":%.2f,"
               "\"sink_retries\":%" PRIu64 ",\"undecodable\":%" PRIu64
               ",\"verify\":\"%s\"",
               dm.kafka ? "kafka" : "memory", kind, dm.s.n, skipped,
               dm.videos, dm.users, dm.zipf, dm.seed,
               dm.partitions, workers, secs, rate, fs.epochs,
               fs.transactions, fs.merged_rows, fs.staged_rows, txn_cut,
               row_cut, fs.retries, st.undecodable,
               bad ? "MISMATCH" : "exact");
        if (bad) {
            printf(",\"mismatch\":\"");
            for (const char *p = mismatch; *p; p++)
                putchar(*p == '"' || *p == '\\' ? '\'' : *p);
            putchar('"');
        }
        printf("}\n");
    } else {
        char h[16];
        printf("railgun demo: %s -> likes -> %u worker(s) -> %s%s%s\n",
               dm.kafka ? "kafka (mock cluster, 3 brokers)" : "memory",
               workers, kind, db ? " " : "", db ? db : "");
        printf("  events        %" PRIu64 " (%" PRIu64 " videos, zipf %.2f, "
               "%" PRIu64 " users, seed %" PRIu64 ")\n", dm.s.n, dm.videos,
               dm.zipf, dm.users, dm.seed);
        if (skipped)
            printf("  resumed       %" PRIu64 " events already stored, "
                   "%" PRIu64 " to go\n", skipped, todo);
        printf("  events/s      %s (%.3f s)\n", rg_human(rate, h, sizeof(h)),
               secs);
        if (fs.transactions)
            printf("  transactions  %" PRIu64 " (%" PRIu64 " epochs; %.0fx "
                   "fewer than one per event)\n", fs.transactions, fs.epochs,
                   txn_cut);
        else
            printf("  transactions  0 (nothing left to write)\n");
        printf("  rows written  %" PRIu64 " counts + %" PRIu64 " actions",
               fs.merged_rows, fs.staged_rows);
        if (rows)
            printf(" (%.1fx fewer than 2 per event)", row_cut);
        printf("\n");
        if (fs.retries)
            printf("  sink retries  %" PRIu64 "\n", fs.retries);
        printf("  database      %" PRIu64 " count rows, %" PRIu64 " action "
               "rows\n", count_rows, action_rows);
        if (bad)
            printf("verify: MISMATCH %s\n", mismatch);
        else
            printf("verify: exact\n");
    }
    rg_engine_destroy(e);  /* closes the sink (and so the file) */
    if (tmp_db[0]) {
        rg_conf_t *c = rg_conf_new();
        if (c != NULL && rg_conf_set(c, "sqlite.path", tmp_db, err,
                                     sizeof(err)) == 0)
            rg_likes_drop_db(c, err, sizeof(err));
        rg_conf_destroy(c);
    }
    free(ins);
    free(th);
    free_demo(&dm);
    mock_stop(&mock);
    return bad ? 1 : 0;
}

/* ---- railgun produce ---------------------------------------------------- */

static void produce_usage(void)
{
    printf("usage: railgun produce [--events N] [--videos V] [--users U] "
           "[--zipf S]\n"
           "                       [--seed N] [--stdin] [--json] "
           "[--config FILE] [-X name=value]\n\n"
           "Produces like events into `topic` at -X kafka.bootstrap.servers "
           "with the\nproducer SDK: the demo's stream for these options "
           "(so `railgun demo\n--verify-only` can check what `railgun run` "
           "stored), or with --stdin one\nmessage per line, KEY<TAB>VALUE. "
           "Every message is delivered or the\ncommand fails.\n");
}

int rg_cmd_produce(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "produce", .conf = rg_conf_new()};
    struct demo dm = {.events = 200000, .videos = 10000, .users = 100000,
                      .seed = 1, .zipf = 0.99, .partitions = 32};
    const char *db = NULL;
    if (cli.conf == NULL)
        return rg_cli_fail(&cli, "out of memory");
    int rc = parse_args(&cli, &dm, argc, argv, &db);
    if (rc != 0 || cli.help) {
        if (rc == 0)
            produce_usage();
        rg_conf_destroy(cli.conf);
        return rc;
    }
    struct prod prod = {.dm = &dm};
    if (!dm.stdin_lines && generate(&dm) != 0) {
        free_demo(&dm);
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "out of memory");
    }
    if (producer_open(&cli, &prod) == NULL) {
        free_demo(&dm);
        rg_conf_destroy(cli.conf);
        return 2;
    }
    double t0 = rg_now();
    uint64_t sent = 0;
    if (dm.stdin_lines) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        uint64_t lineno = 0;
        while (rc == 0 && (len = getline(&line, &cap, stdin)) >= 0) {
            lineno++;
            if (len > 0 && line[len - 1] == '\n')
                line[--len] = '\0';
            char *tab = memchr(line, '\t', (size_t)len);
            if (tab == NULL) {
                rc = rg_cli_fail(&cli, "stdin line %" PRIu64 ": no TAB "
                                 "between key and value", lineno);
                break;
            }
            int r;
            while ((r = rg_producer_send_bytes(
                        prod.p, line, (size_t)(tab - line), tab + 1,
                        (size_t)(line + len - tab - 1), NULL)) == RG_EFULL)
                rg_producer_poll(prod.p, 10);
            if (r != 0)
                rc = rg_cli_fail(&cli, "stdin line %" PRIu64 ": %s", lineno,
                                 rg_producer_last_error());
            else
                sent++;
        }
        free(line);
        if (rg_producer_flush(prod.p, 120000) != 0 && rc == 0)
            rc = rg_cli_fail(&cli, "%s", rg_producer_last_error());
        else if (prod.failed && rc == 0)
            rc = rg_cli_fail(&cli, "%" PRIu64 " messages not delivered",
                             prod.failed);
    } else {
        rg_progress_t prog;
        rg_progress_init(&prog, "produce", dm.s.n, cli.json);
        /* the producer thread's loop, here without an engine to pace */
        producer_main(&prod);
        rg_progress_finish(&prog);
        if (prod.err[0])
            rc = rg_cli_fail(&cli, "%s", prod.err);
        sent = dm.s.n;
    }
    double secs = rg_now() - t0;
    rg_producer_destroy(prod.p);
    if (rc == 0) {
        if (cli.json)
            printf("{\"produced\":%" PRIu64 ",\"seconds\":%.3f,"
                   "\"events_per_s\":%.0f}\n", sent, secs,
                   secs > 0 ? (double)sent / secs : 0);
        else
            printf("produced %" PRIu64 " messages in %.3f s\n", sent, secs);
    }
    free_demo(&dm);
    rg_conf_destroy(cli.conf);
    return rc;
}
