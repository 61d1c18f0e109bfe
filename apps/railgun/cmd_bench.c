/*
 * cmd_bench.c - `railgun bench likes`: the same like events through the
 * reference's first design (one transaction per event, naive.h) and
 * through railgun (engine + likes job + epoch flushes), into the same kind
 * of database, each into a fresh database it drops afterwards. Prints both
 * rates and their ratio. Starts no server: point it at one with -X.
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
#include "naive.h"
#include "railgun/railgun.h"
#include "railgun/sinks.h"
#include "zipf.h"

#define PARTS 8

struct ev {
    int64_t video, user;
    uint8_t state;
};

static void usage(void)
{
    printf("usage: railgun bench likes [--events N] [--naive-events N]\n"
           "                           [--seed N] [--json] [--config FILE]"
           " [-X name=value]\n\n"
           "Runs the same N like events (default 200000) through one "
           "database\ntransaction per event and through railgun, into "
           "-X sink=mysql (with\nthe mysql.* properties) or sink=sqlite, "
           "and prints both rates and\nthe ratio. --naive-events times the "
           "per-event path on the first M\nevents only (it is slow). Each "
           "path gets a fresh database, dropped\nafterwards.\n");
}

/* A copy of conf pointing at a fresh database named after `tag`. */
static rg_conf_t *conf_for(const rg_conf_t *base, const char *tag,
                           char *errstr, size_t size)
{
    rg_conf_t *c = rg_conf_dup(base);
    char v[512];
    if (c == NULL) {
        snprintf(errstr, size, "out of memory");
        return NULL;
    }
    if (strcmp(rg_conf_get_str(c, "sink"), "mysql") == 0) {
        snprintf(v, sizeof(v), "%.40s_bench_%s_%d",
                 rg_conf_get_str(c, "mysql.database"), tag, (int)getpid());
        rg_conf_set(c, "mysql.database", v, errstr, size);
    } else {
        const char *p = rg_conf_get_str(c, "sqlite.path");
        if (p[0])
            snprintf(v, sizeof(v), "%.400s-%s", p, tag);
        else
            snprintf(v, sizeof(v), "%.400s/railgun-bench-%s-%d.db",
                     getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tag,
                     (int)getpid());
        rg_conf_set(c, "sqlite.path", v, errstr, size);
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

static double run_railgun(rg_conf_t *c, const struct ev *evs, uint64_t n,
                          char *errstr, size_t size)
{
    rg_sink_t sink;
    if (rg_likes_open_sink(c, RG_SINK_INIT_SCHEMA, &sink, errstr, size) != 0)
        return -1;
    int32_t parts[PARTS];
    int64_t next[PARTS];
    for (int p = 0; p < PARTS; p++)
        parts[p] = p;
    if (sink.claim(sink.self, parts, PARTS, next, errstr, size) != 0) {
        sink.close(sink.self);
        return -1;
    }
    rg_conf_t *ec = rg_conf_dup(c);
    rg_likes_job_t *job = rg_likes_job_new(
        (unsigned)rg_conf_get_int(c, "workers"), &sink, 0, 0);
    rg_processor_t proc;
    rg_engine_t *e = NULL;
    if (ec != NULL && job != NULL) {
        rg_likes_job_processor(job, &proc);
        e = rg_engine_new(ec, &proc, errstr, size);
    }
    if (e == NULL || rg_engine_set_sink(e, &sink, errstr, size) != 0) {
        if (e == NULL)
            rg_conf_destroy(ec);
        rg_likes_job_destroy(job);
        rg_engine_destroy(e);
        sink.close(sink.self);
        return -1;
    }
    rg_likes_job_bind(job, e);
    if (rg_engine_start(e, errstr, size) != 0) {
        rg_likes_job_destroy(job);
        rg_engine_destroy(e);
        return -1;
    }
    enum { BURST = 256 };
    static char keys[BURST][24], vals[BURST][RG_LIKE_JSON_MAX];
    rg_msg_t msgs[BURST];
    int64_t off[PARTS] = {0};
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
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
    rg_engine_stop(e); /* the last epoch is committed before it returns */
    double secs = rg_now() - t0;
    rg_progress_finish(&prog);
    rg_likes_job_destroy(job);
    double rate = (double)n / secs;
    if (rg_engine_error(e) != NULL) {
        snprintf(errstr, size, "%s", rg_engine_error(e));
        rate = -1;
    }
    rg_engine_destroy(e);
    return rate;
}

int rg_cmd_bench(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "bench", .conf = rg_conf_new()};
    uint64_t events = 200000, naive_events = 0, seed = 1;
    char err[512];
    int rc = 0;
    if (cli.conf == NULL)
        return rg_cli_fail(&cli, "out of memory");
    const char *suite = NULL;
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v;
        int c = rg_cli_common(&cli, argc, argv, &i);
        if (c < 0) {
            rc = 2;
        } else if (c > 0) {
            continue;
        } else if (rg_cli_is(a, "--events")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--events");
            rc = !v || rg_cli_u64(&cli, "--events", v, 1, 100000000ull,
                                  &events) ? 2 : 0;
        } else if (rg_cli_is(a, "--naive-events")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--naive-events");
            rc = !v || rg_cli_u64(&cli, "--naive-events", v, 1,
                                  100000000ull, &naive_events) ? 2 : 0;
        } else if (rg_cli_is(a, "--seed")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--seed");
            rc = !v || rg_cli_u64(&cli, "--seed", v, 0, UINT64_MAX, &seed)
                     ? 2 : 0;
        } else if (a[0] != '-' && suite == NULL) {
            suite = a;
        } else {
            rc = rg_cli_fail(&cli, "unknown option \"%s\"", a);
        }
    }
    if (rc == 0 && cli.help) {
        usage();
        rg_conf_destroy(cli.conf);
        return 0;
    }
    if (rc == 0 && (suite == NULL || strcmp(suite, "likes") != 0))
        rc = rg_cli_fail(&cli, "unknown suite \"%s\" (this build has: "
                         "likes; the micro suites are build/bin/"
                         "railgun-bench)", suite ? suite : "");
    if (rc == 0 && strcmp(rg_conf_get_str(cli.conf, "sink"), "null") == 0)
        rc = rg_cli_fail(&cli, "sink=null writes nothing: compare with "
                         "sqlite or mysql");
    if (naive_events == 0 || naive_events > events)
        naive_events = events;
    if (rc != 0) {
        rg_conf_destroy(cli.conf);
        return rc;
    }

    struct ev *evs = malloc(sizeof(*evs) * events);
    if (evs == NULL) {
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "out of memory");
    }
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, seed);
    rg_zipf_init(&zipf, 10000, 0.99);
    for (uint64_t i = 0; i < events; i++) {
        evs[i].video = (int64_t)rg_zipf_next(&zipf, &rng);
        evs[i].user = 1 + (int64_t)rg_rng_below(&rng, 100000);
        evs[i].state = rg_rng_below(&rng, 3) != 0;
    }

    rg_conf_t *cn = conf_for(cli.conf, "naive", err, sizeof(err));
    rg_conf_t *cr = conf_for(cli.conf, "railgun", err, sizeof(err));
    double naive = -1, fast = -1;
    if (cn && cr) {
        naive = run_naive(cn, evs, naive_events, err, sizeof(err));
        if (naive > 0)
            fast = run_railgun(cr, evs, events, err, sizeof(err));
    }
    char derr[512];
    if (cn)
        rg_likes_drop_db(cn, derr, sizeof(derr));
    if (cr)
        rg_likes_drop_db(cr, derr, sizeof(derr));
    rg_conf_destroy(cn);
    rg_conf_destroy(cr);
    free(evs);
    if (naive <= 0 || fast <= 0) {
        rg_conf_destroy(cli.conf);
        fprintf(stderr, "railgun bench: %s\n", err);
        return 1;
    }
    double ratio = fast / naive;
    const char *kind = rg_conf_get_str(cli.conf, "sink");
    if (cli.json) {
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
    rg_conf_destroy(cli.conf);
    return 0;
}
