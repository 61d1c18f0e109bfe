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
 *            sink), and
 *   produce  a bare rd_kafka_producev loop against the producer SDK:
 *            both in bench_kafka.c.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench_kafka.h"
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
           "                           [--fail-ratio R] [--seed N] [--json]\n"
           "                           [--config FILE] [-X name=value]\n"
           "       railgun bench kafka|produce [--events N] [--rounds R] "
           "[--seed N]\n"
           "                                   [--format json|binary] "
           "[--bare poll|batch]\n"
           "                                   [--json]"
           "\n"
           "                                   [-X kafka.NAME=value]\n"
           "       railgun bench serve ...  (railgun bench serve --help)\n"
           "       railgun bench e2e ...    (railgun bench e2e --help)\n\n"
           "likes: runs the same N like events (default 200000) through one "
           "database\ntransaction per event and through railgun, into "
           "-X sink=mysql (with\nthe mysql.* properties) or sink=sqlite, "
           "and prints both rates and\nthe ratio. --naive-events times the "
           "per-event path on the first M\nevents only (it is slow). Each "
           "path gets a fresh database, dropped\nafterwards. --fail-ratio R "
           "also runs railgun 5 times with and 5 times\nwithout a share R of "
           "transient failures (likes.fault.fail.ratio),\nalternating, and "
           "prints the medians and their ratio; a run ends when\nevery event "
           "is applied, dead, or stored waiting for its retry.\n\n"
           "kafka: N like events (default 2000000; values as JSON or "
           "--format binary)\nproduced once into an in-process mock "
           "cluster (3 brokers, 64 partitions),\nthen consumed by a bare "
           "librdkafka loop that does nothing and by\nrailgun (Kafka "
           "source, likes job, null sink), each in a fresh group.\n"
           "The bare loop calls rd_kafka_consumer_poll() once per message, "
           "or with\n--bare batch rd_kafka_consume_batch_queue() once per "
           "256, as railgun's\nsource does.\n"
           "produce: the same N events sent by a bare rd_kafka_producev "
           "loop and by\nthe producer SDK.\n"
           "Both run R rounds (default 5), alternating which side goes "
           "first, and\nprint the median rates, their ratio, and the CPU "
           "per event of each\nthread group (ingest, workers, engine, "
           "librdkafka, mock, other);\n-X kafka.NAME=value applies to both "
           "sides alike.\n");
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
    int rc = rg_likes_open_sink(c, RG_SINK_INIT_SCHEMA |
                                        RG_SINK_CREATE_DATABASE,
                                &s, errstr, size);
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
                          uint64_t n, rg_retry_stats_t *rs, char *errstr,
                          size_t size)
{
    rg_pipeline_t pl = {0};
    rg_pipeline_opts_t po = {.sink_flags = RG_SINK_INIT_SCHEMA |
                                        RG_SINK_CREATE_DATABASE};
    int64_t off[PARTS];
    double rate = -1;
    if (rg_pipeline_open(&pl, c, &po, errstr, size) != 0 ||
        rg_likes_job_set_faults(pl.job, c, errstr, size) != 0 ||
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
        msgs[k] = (rg_msg_t){p, off[p]++, keys[k], kl, vals[k], vl, 0, 0};
        if (++k == BURST || i + 1 == n) {
            if (rg_dispatcher_push_burst(d, msgs, k) < k)
                break;
            k = 0;
            rg_progress_update(&prog, i);
        }
    }
    /* the last epoch is committed before it returns: every event is
     * applied, dead, or waiting for its retry in the failures table */
    rg_pipeline_stop(&pl);
    double secs = rg_now() - t0;
    rg_progress_finish(&prog);
    rg_engine_retry_stats(pl.engine, rs);
    if (getenv("RG_BENCH_DEBUG")) {
        rg_flush_stats_t fs;
        rg_engine_flush_stats(pl.engine, &fs);
        fprintf(stderr, "bench: %.3f s, %llu epochs, %llu transactions\n",
                secs, (unsigned long long)fs.epochs,
                (unsigned long long)fs.transactions);
    }
    if (rg_engine_error(pl.engine) != NULL)
        snprintf(errstr, size, "%s", rg_engine_error(pl.engine));
    else
        rate = (double)n / secs;
out:
    rg_pipeline_close(&pl);
    return rate;
}

struct opts {
    const char *suite;
    const char *fail_ratio;  /* likes: --fail-ratio R, NULL without */
    uint64_t events, naive_events, seed, rounds;
    bool events_given, binary, bare_batch;
    const char *kafka_only;  /* an option only kafka and produce take */
};

static int parse_args(rg_cli_t *cli, struct opts *o, int argc, char **argv)
{
    static const char *const names[] = {"--events", "--naive-events",
                                        "--seed", "--rounds"};
    uint64_t *const dest[] = {&o->events, &o->naive_events, &o->seed,
                              &o->rounds};
    const uint64_t min[] = {1, 1, 0, 1};
    const uint64_t max[] = {100000000ull, 100000000ull, UINT64_MAX, 99};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        size_t k = 0;
        while (k < 4 && !rg_cli_is(a, names[k]))
            k++;
        if (rg_cli_is(a, "--fail-ratio")) {
            double r;
            const char *v = rg_cli_value(cli, argc, argv, &i, "--fail-ratio");
            if (v == NULL || rg_cli_double(cli, "--fail-ratio", v, 0, 1, &r))
                return 2;
            o->fail_ratio = v;
        } else if (rg_cli_is(a, "--format")) {
            const char *v = rg_cli_value(cli, argc, argv, &i, "--format");
            if (v == NULL)
                return 2;
            if (strcmp(v, "json") != 0 && strcmp(v, "binary") != 0)
                return rg_cli_fail(cli, "--format: \"%s\": json or binary",
                                   v);
            o->binary = strcmp(v, "binary") == 0;
            o->kafka_only = "--format";
        } else if (rg_cli_is(a, "--bare")) {
            const char *v = rg_cli_value(cli, argc, argv, &i, "--bare");
            if (v == NULL)
                return 2;
            if (strcmp(v, "poll") != 0 && strcmp(v, "batch") != 0)
                return rg_cli_fail(cli, "--bare: \"%s\": poll or batch", v);
            o->bare_batch = strcmp(v, "batch") == 0;
            o->kafka_only = "--bare";
        } else if (k < 4) {
            const char *v = rg_cli_value(cli, argc, argv, &i, names[k]);
            if (!v || rg_cli_u64(cli, names[k], v, min[k], max[k], dest[k]))
                return 2;
            o->events_given |= k == 0;
            if (k == 3)
                o->kafka_only = "--rounds";
        } else if (a[0] != '-' && o->suite == NULL) {
            o->suite = a;
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", a);
        }
    }
    return cli->help ? 0 : rg_cli_finish(cli);
}

static double median5(const double *v)
{
    double t[5];
    memcpy(t, v, sizeof(t));
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return t[2];
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
    /* with --fail-ratio: railgun with and without the failures, in
     * alternating rounds, each into a fresh database */
    double with[5] = {0}, without[5] = {0};
    unsigned nr = o->fail_ratio != NULL ? 5 : 0;
    rg_retry_stats_t rs = {0}, rsf = {0};
    if ((cn = conf_for(cli->conf, "naive", err, sizeof(err))) == NULL ||
        (cr = conf_for(cli->conf, "railgun", err, sizeof(err))) == NULL ||
        (naive = run_naive(cn, evs, naive_events, err, sizeof(err))) <= 0 ||
        (fast = run_railgun(cr, evs, events, &rs, err, sizeof(err))) <= 0) {
        rg_cli_error(cli, "%s", err);
        goto out;
    }
    for (unsigned k = 0; k < nr; k++) {
        for (int side = 0; side < 2; side++) {
            bool faults = (side == 0) == (k % 2 == 0);
            char tag[32];
            snprintf(tag, sizeof(tag), "r%u%s", k, faults ? "f" : "");
            rg_conf_t *c = conf_for(cli->conf, tag, err, sizeof(err));
            if (c == NULL || (faults && rg_conf_set(c, "likes.fault.fail.ratio",
                                                    o->fail_ratio, err,
                                                    sizeof(err)) != 0)) {
                rg_conf_destroy(c);
                rg_cli_error(cli, "%s", err);
                goto out;
            }
            double *slot = faults ? &with[k] : &without[k];
            *slot = run_railgun(c, evs, events, faults ? &rsf : &rs, err,
                                sizeof(err));
            rg_likes_drop_db(c, derr, sizeof(derr));
            rg_conf_destroy(c);
            if (*slot <= 0) {
                rg_cli_error(cli, "%s", err);
                goto out;
            }
        }
    }
    double mw = nr ? median5(with) : 0, mo = nr ? median5(without) : 0;
    double ratio = fast / naive;
    const char *kind = rg_conf_get_str(cli->conf, "sink");
    if (cli->json) {
        printf("{\"suite\":\"likes\",\"sink\":\"%s\",\"events\":%" PRIu64
               ",\"naive_events\":%" PRIu64 ",\"naive_events_per_s\":%.0f,"
               "\"railgun_events_per_s\":%.0f,\"ratio\":%.1f", kind,
               events, naive_events, naive, fast, ratio);
        if (nr)
            printf(",\"fail_ratio\":%s,\"rounds\":%u,"
                   "\"without_failures_events_per_s\":%.0f,"
                   "\"with_failures_events_per_s\":%.0f,"
                   "\"failures_ratio\":%.3f,\"retried\":%" PRIu64
                   ",\"waiting_at_stop\":%" PRIu64, o->fail_ratio, nr, mo, mw,
                   mo > 0 ? mw / mo : 0, rsf.retried, rsf.parked_now);
        printf("}\n");
    } else {
        char h1[16], h2[16];
        printf("railgun bench likes: %" PRIu64 " like events into %s\n",
               events, kind);
        printf("  one transaction per event  %s events/s (%" PRIu64
               " events)\n", rg_human(naive, h1, sizeof(h1)), naive_events);
        printf("  railgun                    %s events/s\n",
               rg_human(fast, h2, sizeof(h2)));
        printf("  ratio                      %.1fx\n", ratio);
        if (nr) {
            printf("  failures %s (%u rounds, medians): without %s, with "
                   "%s events/s: %.3fx\n", o->fail_ratio, nr,
                   rg_human(mo, h1, sizeof(h1)), rg_human(mw, h2, sizeof(h2)),
                   mo > 0 ? mw / mo : 0);
            printf("  in the last run with failures: %" PRIu64 " attempts "
                   "retried, %" PRIu64 " waiting at the stop (stored as "
                   "delayed)\n", rsf.retried, rsf.parked_now);
        }
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
    if (argc > 0 && strcmp(argv[0], "serve") == 0) /* bench_serve.c */
        return rg_bench_serve(argc - 1, argv + 1);
    if (argc > 0 && strcmp(argv[0], "e2e") == 0) /* bench_e2e.c */
        return rg_bench_e2e(argc - 1, argv + 1);
    rg_cli_t cli = {.cmd = "bench", .conf = rg_likes_conf_new(),
                    .no_info = true};
    struct opts o = {.events = 200000, .seed = 1, .rounds = 5};
    int rc;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");

    /* the command line */
    if ((rc = parse_args(&cli, &o, argc, argv)) != 0 || cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    if (o.fail_ratio != NULL && o.suite != NULL &&
        strcmp(o.suite, "likes") != 0) {
        rc = rg_cli_fail(&cli, "--fail-ratio: an option of the likes suite "
                         "only");
        goto out;
    }
    bool kafka = o.suite != NULL && !strcmp(o.suite, "kafka");
    if (kafka || (o.suite != NULL && !strcmp(o.suite, "produce"))) {
        rg_bench_kafka_opts_t ko = {
            .consume = kafka, .binary = o.binary, .bare_batch = o.bare_batch,
            .events = o.events_given ? o.events : 2000000, .seed = o.seed,
            .rounds = (unsigned)o.rounds};
        rc = rg_bench_kafka(&cli, &ko);
        goto out;
    }
    if (o.kafka_only != NULL && o.suite != NULL &&
        strcmp(o.suite, "likes") == 0) {
        rc = rg_cli_fail(&cli, "%s: not an option of the likes suite "
                         "(only kafka and produce take it)", o.kafka_only);
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
