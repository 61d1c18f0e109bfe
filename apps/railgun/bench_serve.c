/*
 * bench_serve.c - `railgun bench serve`: the like service end to end, on
 * one MariaDB, against its synchronous design (railgun/serve.h).
 *
 *   write   likes/s that `railgun serve` accepts (202: produced to Kafka
 *           for a `railgun run` child that consumes them at the same
 *           time), against serve.mode=sync (each like its own
 *           transaction), same load: closed-loop connections POSTing one
 *           like each, a hot video taking --hot of them. The sync side's
 *           InnoDB row-lock waits, their time, deadlocks and serve's
 *           retries are shown.
 *   fresh   time from a POST's 202 to the new count through GET (p50,
 *           p99): through Redis when the job keeps the cache, else through
 *           the database (serve.cache=false), as the line says.
 *   read    GETs/s and latency of counts (Zipf over the videos): every
 *           read a cache hit, against the database only.
 *
 * The load generator is apps/serve/loadgen.h (why not wrk: see there).
 * Kafka is librdkafka's mock cluster in this process; the job is a child
 * `railgun run` (this binary), so its cache update is whatever `run` does.
 * Databases <mysql.database>_bench_serve_{async,sync}_PID are created and
 * dropped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "loadgen.h"
#include "mock.h"
#include "naive.h"
#include "railgun/sinks.h"
#include "serve.h"
#include "zipf.h"

extern char **environ;

struct opts {
    uint64_t seconds, conns, videos, users, probes, seed, batch, depth;
    double hot;
};

static void usage(void)
{
    printf("usage: railgun bench serve [--seconds S] [--connections C] "
           "[--hot SHARE]\n"
           "                           [--batch N] [--pipeline D] [--videos N] "
           "[--users N]\n"
           "                           [--probes N] [--json]\n"
           "                           -X sink=mysql -X mysql.socket=... "
           "[-X cache.redis.*]\n\n"
           "The like service on one MariaDB: likes/s accepted by railgun "
           "serve (async,\nthrough Kafka to a railgun run child) against "
           "serve.mode=sync, C connections\n(default 8) POSTing N likes "
           "each (default 1; both sides take the batch form,\nthe sync one "
           "a transaction per like), D requests in flight per\nconnection "
           "(HTTP/1.1 pipelining, default 1), for S seconds (default 10), "
           "a hot\n"
           "video taking SHARE of them (0.3); the sync side's lock waits; "
           "POST-to-visible\nfreshness (p50/p99 of N probes, default 50); "
           "GETs/s and p99 of counts, cache\nhits against the database "
           "only.\n");
}

/* ---- SQL on the side: schema, version row, lock statistics ------------- */

static int exec_sql(MYSQL *db, const char *sql, char *err, size_t n)
{
    if (mysql_query(db, sql) == 0) {
        MYSQL_RES *r = mysql_store_result(db);
        if (r)
            mysql_free_result(r);
        return 0;
    }
    snprintf(err, n, "mysql: %.200s: %.200s", sql, mysql_error(db));
    return -1;
}

/* SUM or a single number from a query; -1 on failure. */
static int64_t query_i64(MYSQL *db, const char *sql)
{
    if (mysql_query(db, sql) != 0)
        return -1;
    MYSQL_RES *r = mysql_store_result(db);
    int64_t v = -1;
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    if (row != NULL) {
        unsigned n = mysql_num_fields(r);
        const char *cell = row[n - 1];
        v = cell ? strtoll(cell, NULL, 10) : 0;
    }
    if (r)
        mysql_free_result(r);
    return v;
}

struct locks {
    int64_t waits, time_ms, deadlocks;
};

static void lock_stats(MYSQL *db, struct locks *l)
{
    l->waits = query_i64(db, "SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_waits'");
    l->time_ms = query_i64(db, "SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_time'");
    l->deadlocks = query_i64(db, "SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'");
}

/* Samples how many transactions wait for a row lock, every 5 ms, while
 * the sync load runs (information_schema.INNODB_TRX, trx_state LOCK
 * WAIT): the contention itself, not only its count. */
struct sampler {
    MYSQL *db;
    pthread_t th;
    _Atomic bool stop;
    uint64_t samples, waiting, max;
};

static void *sampler_main(void *arg)
{
    struct sampler *s = arg;
    /* relaxed: a stop flag; the join orders what the caller reads */
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        int64_t n = query_i64(s->db, "SELECT COUNT(*) FROM "
                              "information_schema.INNODB_TRX WHERE trx_state "
                              "= 'LOCK WAIT'");
        if (n >= 0) {
            s->samples++;
            s->waiting += (uint64_t)n;
            if ((uint64_t)n > s->max)
                s->max = (uint64_t)n;
        }
        usleep(5000);
    }
    return NULL;
}

/* A copy of base on database <db>_bench_serve_<tag>_<pid>, its tables
 * and version row made. */
static rg_conf_t *bench_db(const rg_conf_t *base, const char *tag,
                           char *err, size_t n)
{
    rg_conf_t *c = rg_conf_dup(base);
    char name[200];
    snprintf(name, sizeof(name), "%.40s_bench_serve_%s_%d",
             rg_conf_get_str(base, "mysql.database"), tag, (int)getpid());
    if (c == NULL || rg_conf_set(c, "mysql.database", name, err, n) != 0) {
        rg_conf_destroy(c);
        return NULL;
    }
    rg_sink_t s;
    if (rg_likes_open_sink(c, RG_SINK_INIT_SCHEMA | RG_SINK_CREATE_DATABASE,
                           &s, err, n) != 0) {
        rg_conf_destroy(c);
        return NULL;
    }
    s.close(s.self);
    /* the version row the cache's rules read, in the sink's own meta
     * table (made above: k, v, n, mtime); the job bumps it per epoch */
    MYSQL *db = rg_naive_connect(c, true, err, n);
    char sql[512];
    snprintf(sql, sizeof(sql), "INSERT IGNORE INTO `%s` (k, v, n, mtime) "
             "VALUES ('version', '0', 0, 0)",
             rg_conf_get_str(c, "cache.version.table"));
    int rc = db ? exec_sql(db, sql, err, n) : -1;
    if (db)
        mysql_close(db);
    if (rc != 0) {
        rg_conf_destroy(c);
        return NULL;
    }
    return c;
}

/* ---- the job: a `railgun run` child --------------------------------------- */

static pid_t start_job(const rg_conf_t *c, const char *dir, bool cache,
                       char *err, size_t n)
{
    char path[600], log[600];
    snprintf(path, sizeof(path), "%s/run.conf", dir);
    snprintf(log, sizeof(log), "%s/run.log", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(err, n, "%.300s: %s", path, strerror(errno));
        return -1;
    }
    const char *names[] = {"mysql.host", "mysql.port", "mysql.socket",
                           "mysql.user", "mysql.password", "mysql.database",
                           "topic", "cache.redis.host", "cache.redis.port",
                           "cache.redis.socket", "cache.redis.password",
                           "cache.redis.prefix"};
    /* 100 ms epochs, and fetches that do not wait for more data: the
     * freshness probe measures the pipeline, not librdkafka's default
     * 500 ms fetch.wait.max.ms on an idle partition */
    fprintf(f, "sink=mysql\ngroup.id=bench-serve\nflush.interval.ms=100\n"
               "kafka.fetch.wait.max.ms=10\nkafka.bootstrap.servers=%s\n",
            rg_conf_get_str(c, "kafka.bootstrap.servers"));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strncmp(names[i], "cache.", 6) == 0 && !cache)
            continue;
        char v[512];
        size_t vs = sizeof(v);
        if (rg_conf_get(c, names[i], v, &vs) == 0)
            fprintf(f, "%s=%s\n", names[i], v);
    }
    fclose(f);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT |
                                     O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"railgun", "run", "--config", path, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        snprintf(err, n, "cannot start railgun run: %s", strerror(rc));
        return -1;
    }
    return pid;
}

static int stop_job(pid_t pid)
{
    int st = 0;
    if (pid <= 0)
        return 0;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- the loads ---------------------------------------------------------- */

struct load_ctx {
    const struct opts *o;
    rg_rng_t rng[256];
    rg_zipf_t zipf;
    int want;                 /* the status that counts as success */
    _Atomic uint64_t hits;
};

static bool next_like(void *opaque, unsigned t, uint64_t i,
                      const char **method, char *path, size_t ps, char *body,
                      size_t bs, size_t *blen)
{
    (void)i;
    struct load_ctx *x = opaque;
    rg_rng_t *r = &x->rng[t];
    size_t len = 0;
    *method = "POST";
    snprintf(path, ps, "/v1/likes");
    if (x->o->batch > 1)
        body[len++] = '[';
    for (uint64_t k = 0; k < x->o->batch && len + 100 < bs; k++) {
        uint64_t v = (double)rg_rng_below(r, 1000000) < x->o->hot * 1e6
                         ? 1
                         : 2 + rg_rng_below(r, x->o->videos - 1);
        uint64_t u = 1 + rg_rng_below(r, x->o->users);
        len += (size_t)snprintf(body + len, bs - len, "%s{\"video_id\":%"
                                PRIu64 ",\"user_id\":%" PRIu64
                                ",\"state\":%d}", k ? "," : "", v, u,
                                rg_rng_below(r, 3) != 0);
    }
    if (x->o->batch > 1)
        body[len++] = ']';
    *blen = len;
    return true;
}

static bool next_read(void *opaque, unsigned t, uint64_t i,
                      const char **method, char *path, size_t ps, char *body,
                      size_t bs, size_t *blen)
{
    (void)i, (void)body, (void)bs;
    struct load_ctx *x = opaque;
    *method = "GET";
    *blen = 0;
    snprintf(path, ps, "/v1/videos/%" PRIu64 "/likes",
             rg_zipf_next(&x->zipf, &x->rng[t]));
    return true;
}

static bool done_status(void *opaque, unsigned t, const rg_hc_t *c)
{
    (void)t;
    struct load_ctx *x = opaque;
    if (strcmp(c->xcache, "hit") == 0)
        atomic_fetch_add_explicit(&x->hits, 1, memory_order_relaxed);
    return c->status == x->want;
}

static rg_serve_t *serve_up(const rg_conf_t *c, const char *const *xs,
                            char *err, size_t n)
{
    rg_conf_t *sc = rg_conf_dup(c);
    for (int i = 0; sc != NULL && xs[i] != NULL; i += 2)
        if (rg_conf_set(sc, xs[i], xs[i + 1], err, n) != 0) {
            rg_conf_destroy(sc);
            return NULL;
        }
    int e;
    rg_serve_t *s = sc ? rg_serve_new(sc, &e, err, n) : NULL;
    rg_conf_destroy(sc);
    if (s != NULL && rg_serve_start(s, err, n) != 0) {
        rg_serve_destroy(s);
        s = NULL;
    }
    return s;
}

struct result {
    double rate, p50, p99;
    uint64_t ok, failed, hits;
};

static void run_load(rg_serve_t *s, struct load_ctx *x, bool reads,
                     double seconds, struct result *out)
{
    rg_load_t l = {.port = rg_serve_port(s),
                   .threads = (unsigned)x->o->conns,
                   .seconds = seconds,
                   .depth = (unsigned)x->o->depth,
                   .next = reads ? next_read : next_like,
                   .done = done_status,
                   .opaque = x};
    x->hits = 0;
    rg_load_run(&l);
    out->ok = l.ok;
    out->failed = l.failed;
    out->rate = (double)l.ok / l.elapsed;
    out->p50 = rg_lat_quantile(&l.lat, 0.5);
    out->p99 = rg_lat_quantile(&l.lat, 0.99);
    out->hits = x->hits;
}

/* Freshness: for each probe, a fresh user likes a cold video; the time
 * from the 202 to the count read through `read_port` being one higher. */
static int freshness(uint16_t write_port, uint16_t read_port,
                     const struct opts *o, double *p50, double *p99,
                     char *err, size_t n)
{
    rg_hc_t w, r;
    rg_hc_init(&w, write_port);
    rg_hc_init(&r, read_port);
    rg_lat_t lat = {0};
    int rc = 0;
    for (uint64_t k = 0; k < o->probes && rc == 0; k++) {
        uint64_t video = o->videos + 1 + k; /* nobody else likes it */
        char path[64], body[128];
        snprintf(path, sizeof(path), "/v1/videos/%" PRIu64 "/likes", video);
        int len = snprintf(body, sizeof(body), "{\"video_id\":%" PRIu64
                           ",\"user_id\":%" PRIu64 ",\"state\":1}", video,
                           o->users + 1 + k);
        if (rg_hc_request(&r, "GET", path, NULL, 0) != 0 ||
            r.status != 200) {
            snprintf(err, n, "freshness: GET %s failed", path);
            rc = -1;
            break;
        }
        const char *c = strstr(r.body, "\"count\":");
        int64_t before = c ? strtoll(c + 8, NULL, 10) : -1;
        if (rg_hc_request(&w, "POST", "/v1/likes", body, (size_t)len) != 0 ||
            w.status != 202) {
            snprintf(err, n, "freshness: POST got %d", w.status);
            rc = -1;
            break;
        }
        double t0 = rg_now();
        for (;;) {
            if (rg_now() - t0 > 30) {
                snprintf(err, n, "freshness: a like stayed invisible 30 s");
                rc = -1;
                break;
            }
            if (rg_hc_request(&r, "GET", path, NULL, 0) == 0 &&
                r.status == 200 && (c = strstr(r.body, "\"count\":")) &&
                strtoll(c + 8, NULL, 10) == before + 1) {
                rg_lat_add(&lat, rg_now() - t0);
                break;
            }
            usleep(2000);
        }
    }
    *p50 = rg_lat_quantile(&lat, 0.5);
    *p99 = rg_lat_quantile(&lat, 0.99);
    rg_hc_fini(&w);
    rg_hc_fini(&r);
    return rc;
}

/* Waits until the job stored everything serve delivered (sum of the
 * stored next offsets of the fresh topic == delivered). */
static int drain(MYSQL *db, rg_serve_t *s, double timeout_s)
{
    double until = rg_now() + timeout_s;
    while (rg_now() < until) {
        rg_serve_stats_t st;
        rg_serve_stats(s, &st);
        int64_t stored = query_i64(db, "SELECT SUM(next_offset) FROM offsets "
                                       "WHERE consumer_group = 'bench-serve'");
        if (st.delivered == st.likes_accepted &&
            stored == (int64_t)st.delivered)
            return 0;
        usleep(100000);
    }
    return -1;
}

static int parse_args(rg_cli_t *cli, struct opts *o, int argc, char **argv)
{
    static const char *const names[] = {"--seconds", "--connections",
                                        "--videos", "--users", "--probes",
                                        "--seed", "--batch", "--pipeline"};
    uint64_t *dest[] = {&o->seconds, &o->conns, &o->videos, &o->users,
                        &o->probes, &o->seed, &o->batch, &o->depth};
    const uint64_t lo[] = {1, 1, 2, 1, 1, 0, 1, 1};
    const uint64_t hi[] = {3600, 256, 100000000, 1000000000, 100000,
                           UINT64_MAX, 1000, 64};
    enum { NAMES = sizeof(names) / sizeof(names[0]) };
    for (int i = 0; i < argc; i++) {
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        size_t k = 0;
        while (k < NAMES && !rg_cli_is(argv[i], names[k]))
            k++;
        const char *v;
        if (k < NAMES) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, names[k])) ||
                rg_cli_u64(cli, names[k], v, lo[k], hi[k], dest[k]))
                return 2;
        } else if (rg_cli_is(argv[i], "--hot")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--hot")) ||
                rg_cli_double(cli, "--hot", v, 0, 1, &o->hot))
                return 2;
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", argv[i]);
        }
    }
    return cli->help ? 0 : rg_cli_finish(cli);
}

int rg_bench_serve(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "bench serve", .conf = rg_likes_conf_new()};
    struct opts o = {.seconds = 10, .conns = 8, .videos = 10000,
                     .users = 1000000, .probes = 50, .seed = 1, .hot = 0.3,
                     .batch = 1, .depth = 1};
    char err[512], dir[256] = "";
    rg_conf_t *ca = NULL, *cs = NULL;
    rg_mock_t mock = {0};
    rg_serve_t *sv = NULL;
    MYSQL *adb = NULL, *sdb = NULL;
    pid_t job = -1;
    int rc = 1;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");
    if (rg_conf_add_table(cli.conf, rg_serve_conf_table(), err,
                          sizeof(err)) != 0)
        goto out;
    if ((rc = parse_args(&cli, &o, argc, argv)) != 0 || cli.help) {
        if (cli.help && rc == 0)
            usage();
        goto out;
    }
    rc = 1;
    if (strcmp(rg_conf_get_str(cli.conf, "sink"), "mysql") != 0) {
        rc = rg_cli_fail(&cli, "the comparison runs on MariaDB: -X sink=mysql "
                         "-X mysql.socket=... (tests/support/with_mariadb.sh "
                         "starts one)");
        goto out;
    }
    snprintf(dir, sizeof(dir), "%s/rg-bench-serve.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(dir) == NULL) {
        rg_cli_error(&cli, "mkdtemp: %s", strerror(errno));
        dir[0] = '\0';
        goto out;
    }
    if (rg_mock_open(&mock, 1, err, sizeof(err)) != 0 ||
        rg_mock_topic(&mock, rg_conf_get_str(cli.conf, "topic"), 16, 1, err,
                      sizeof(err)) != 0 ||
        rg_conf_set(cli.conf, "kafka.bootstrap.servers",
                    rg_mock_servers(&mock), err, sizeof(err)) != 0 ||
        (ca = bench_db(cli.conf, "async", err, sizeof(err))) == NULL ||
        (cs = bench_db(cli.conf, "sync", err, sizeof(err))) == NULL ||
        (adb = rg_naive_connect(ca, true, err, sizeof(err))) == NULL ||
        (sdb = rg_naive_connect(cs, true, err, sizeof(err))) == NULL) {
        rg_cli_error(&cli, "%s", err);
        goto out;
    }
    /* the job keeps the cache (railgun run's commit hook): it gets the
     * cache.redis.* rows, host included, so it updates Redis */
    bool job_cache = true;
    if ((job = start_job(ca, dir, job_cache, err, sizeof(err))) < 0) {
        rg_cli_error(&cli, "%s", err);
        goto out;
    }

    struct load_ctx x = {.o = &o};
    for (unsigned t = 0; t < 256; t++)
        rg_rng_seed(&x.rng[t], o.seed * 1000 + t);
    rg_zipf_init(&x.zipf, o.videos, 0.99);
    char threads[8];
    snprintf(threads, sizeof(threads), "%u", o.conns < 4 ? (unsigned)o.conns
                                                         : 4u);

    /* 1. writes, async: 202 from the producer, the job consuming */
    struct result wa, ws, ra, rd;
    uint64_t batch = o.batch;
    const char *async_x[] = {"serve.listen", "127.0.0.1:0", "serve.threads",
                             threads, NULL};
    if ((sv = serve_up(ca, async_x, err, sizeof(err))) == NULL) {
        rg_cli_error(&cli, "%s", err);
        goto out;
    }
    x.want = 202;
    run_load(sv, &x, false, (double)o.seconds, &wa);
    wa.rate *= (double)batch; /* likes/s */
    if (drain(adb, sv, 120) != 0) {
        rg_cli_error(&cli, "the job did not store the accepted likes within "
                     "120 s (see %s/run.log)", dir);
        goto out;
    }
    /* 2. freshness through the cache when the job keeps it, else through
     *    the database */
    rg_serve_t *fr = NULL;
    const char *fresh_x[] = {"serve.listen", "127.0.0.1:0", "serve.cache",
                             job_cache ? "true" : "false", NULL};
    double f50 = 0, f99 = 0;
    if ((fr = serve_up(ca, fresh_x, err, sizeof(err))) == NULL ||
        freshness(rg_serve_port(sv), rg_serve_port(fr), &o, &f50, &f99, err,
                  sizeof(err)) != 0) {
        rg_serve_destroy(fr);
        rg_cli_error(&cli, "%s", err);
        goto out;
    }
    rg_serve_destroy(fr);
    rg_serve_destroy(sv);
    sv = NULL;
    int jrc = stop_job(job);
    job = -1;
    if (jrc != 0) {
        rg_cli_error(&cli, "railgun run exited %d (see %s/run.log)", jrc, dir);
        goto out;
    }

    /* 3. reads: all hits against the database only. Nothing writes now,
     *    so where no job wrote `applied`, the bench says it is caught up
     *    (its version is the database's) */
    bool emulated = false;
    rg_cache_redis_options_t co;
    rg_serve_cache_options(ca, &co);
    {
        int64_t v = query_i64(adb, "SELECT v FROM railgun_meta WHERE k = "
                                   "'version'");
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "REDISCLI_AUTH='%s' redis-cli "
                 "--no-auth-warning -h '%s' -p %d SET '%sapplied' %lld NX "
                 ">/dev/null 2>&1", co.password, co.host, co.port, co.prefix,
                 (long long)(v < 0 ? 0 : v));
        emulated = !job_cache && system(cmd) == 0;
    }
    const char *cache_x[] = {"serve.listen", "127.0.0.1:0", "serve.threads",
                             threads, "serve.cache", "true", NULL};
    const char *db_x[] = {"serve.listen", "127.0.0.1:0", "serve.threads",
                          threads, "serve.cache", "false", NULL};
    x.want = 200;
    if ((sv = serve_up(ca, cache_x, err, sizeof(err))) == NULL) {
        rg_cli_error(&cli, "%s", err);
        goto out;
    }
    run_load(sv, &x, true, 2.0, &ra); /* warm: fill every video read */
    run_load(sv, &x, true, (double)o.seconds, &ra);
    rg_serve_destroy(sv);
    if ((sv = serve_up(ca, db_x, err, sizeof(err))) == NULL) {
        rg_cli_error(&cli, "%s", err);
        goto out;
    }
    run_load(sv, &x, true, (double)o.seconds, &rd);
    rg_serve_destroy(sv);

    /* 4. writes, sync, the same load on its own database */
    const char *sync_x[] = {"serve.listen", "127.0.0.1:0", "serve.threads",
                            threads, "serve.mode", "sync", "serve.cache",
                            "false", NULL};
    if ((sv = serve_up(cs, sync_x, err, sizeof(err))) == NULL) {
        rg_cli_error(&cli, "%s", err);
        goto out;
    }
    struct locks l0, l1;
    struct sampler smp = {.db = rg_naive_connect(cs, true, err, sizeof(err))};
    bool sampling = smp.db != NULL &&
                    pthread_create(&smp.th, NULL, sampler_main, &smp) == 0;
    lock_stats(sdb, &l0);
    x.want = 200;
    run_load(sv, &x, false, (double)o.seconds, &ws);
    ws.rate *= (double)batch;
    lock_stats(sdb, &l1);
    if (sampling) {
        atomic_store_explicit(&smp.stop, true, memory_order_relaxed);
        pthread_join(smp.th, NULL);
    }
    if (smp.db)
        mysql_close(smp.db);
    double waiting = smp.samples ? (double)smp.waiting / (double)smp.samples
                                 : 0;
    rg_serve_stats_t sst;
    rg_serve_stats(sv, &sst);
    rg_serve_destroy(sv);
    sv = NULL;

    double ratio = ws.rate > 0 ? wa.rate / ws.rate : 0;
    int64_t waits = l1.waits - l0.waits, wait_ms = l1.time_ms - l0.time_ms,
            dl = l1.deadlocks - l0.deadlocks;
    const char *fresh_via = job_cache ? "cache" : "database";
    if (cli.json) {
        printf("{\"suite\":\"serve\",\"seconds\":%" PRIu64 ",\"connections\":%"
               PRIu64 ",\"batch\":%" PRIu64 ",\"pipeline\":%" PRIu64 ",\"hot_share\":%.2f,\"async_likes_per_s\":%.0f,"
               "\"async_p99_s\":%.6f,\"async_failed\":%" PRIu64
               ",\"sync_likes_per_s\":%.0f,\"sync_p99_s\":%.6f,"
               "\"sync_failed\":%" PRIu64 ",\"ratio\":%.1f,"
               "\"sync_lock_waits\":%" PRId64 ",\"sync_lock_wait_ms\":%" PRId64
               ",\"sync_deadlocks\":%" PRId64 ",\"sync_retries\":%" PRIu64
               ",\"sync_lock_waiting_mean\":%.2f,\"sync_lock_waiting_max\":%"
               PRIu64
               ",\"fresh_via\":\"%s\",\"fresh_p50_s\":%.3f,"
               "\"fresh_p99_s\":%.3f,\"read_cache_per_s\":%.0f,"
               "\"read_cache_p99_s\":%.6f,\"read_cache_hit_ratio\":%.3f,"
               "\"read_db_per_s\":%.0f,\"read_db_p99_s\":%.6f,"
               "\"job_keeps_cache\":%s}\n",
               o.seconds, o.conns, batch, o.depth, o.hot, wa.rate, wa.p99, wa.failed,
               ws.rate, ws.p99, ws.failed, ratio, waits, wait_ms, dl,
               sst.sync_retries, waiting, smp.max, fresh_via, f50, f99, ra.rate, ra.p99,
               ra.ok ? (double)ra.hits / (double)ra.ok : 0, rd.rate, rd.p99,
               job_cache ? "true" : "false");
    } else {
        char h1[16], h2[16], h3[16], h4[16];
        printf("railgun bench serve: %" PRIu64 " connections x %" PRIu64
               " s, %" PRIu64 " like(s) per POST, %" PRIu64 " request(s) "
               "in flight per connection, video 1 takes %.0f%%\n",
               o.conns, o.seconds, batch, o.depth, o.hot * 100);
        printf("  write async (serve -> Kafka -> run)  %s likes/s  p50 %.2f "
               "ms  p99 %.2f ms  (%" PRIu64 " failed)\n",
               rg_human(wa.rate, h1, sizeof(h1)), wa.p50 * 1e3, wa.p99 * 1e3,
               wa.failed);
        printf("  write sync (a transaction per like)  %s likes/s  p50 %.2f "
               "ms  p99 %.2f ms  (%" PRIu64 " failed)\n",
               rg_human(ws.rate, h2, sizeof(h2)), ws.p50 * 1e3, ws.p99 * 1e3,
               ws.failed);
        printf("  ratio                                %.1fx\n", ratio);
        printf("  sync lock waits                      %" PRId64 " row-lock "
               "waits, %" PRId64 " ms waited, %" PRId64 " deadlocks, %"
               PRIu64 " retries\n", waits, wait_ms, dl, sst.sync_retries);
        printf("  sync transactions in LOCK WAIT       %.2f on average, %"
               PRIu64 " at most, of %" PRIu64 " connections (%" PRIu64
               " samples)\n", waiting, smp.max, o.conns, smp.samples);
        char fl[64];
        snprintf(fl, sizeof(fl), "freshness POST -> GET (%s)", fresh_via);
        printf("  %-36s p50 %.0f ms  p99 %.0f ms (%" PRIu64 " probes)\n", fl,
               f50 * 1e3, f99 * 1e3, o.probes);
        printf("  read, cache hits                     %s GETs/s  p50 %.2f "
               "ms  p99 %.2f ms  (%.1f%% hits%s)\n",
               rg_human(ra.rate, h3, sizeof(h3)), ra.p50 * 1e3, ra.p99 * 1e3,
               ra.ok ? 100.0 * (double)ra.hits / (double)ra.ok : 0,
               emulated ? "; job caught up, emulated" : "");
        printf("  read, database only                  %s GETs/s  p50 %.2f "
               "ms  p99 %.2f ms\n", rg_human(rd.rate, h4, sizeof(h4)),
               rd.p50 * 1e3, rd.p99 * 1e3);
    }
    rc = 0;
out:
    rg_serve_destroy(sv);
    stop_job(job);
    if (adb)
        mysql_close(adb);
    if (sdb)
        mysql_close(sdb);
    if (ca)
        rg_likes_drop_db(ca, err, sizeof(err));
    if (cs)
        rg_likes_drop_db(cs, err, sizeof(err));
    rg_conf_destroy(ca);
    rg_conf_destroy(cs);
    rg_mock_close(&mock);
    if (dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "railgun bench serve: could not remove %s\n", dir);
    }
    rg_conf_destroy(cli.conf);
    return rc;
}
