/*
 * test_cache_redis.c - the read cache's rules (railgun/redis_cache.h)
 * against a real redis-server (run by tests/support/with_redis.sh) and a
 * real SQLite database holding the sink's tables and the version row.
 *
 * Rules, one test each: a fill needs a job keeping the cache (applied);
 * newer versions win; a fill older than an epoch the job began is refused
 * even after the job's entry was evicted; entries below floor are misses
 * and fills below it refused; apply rewrites cached entries only and
 * skips superseded epochs; the updater resyncs on reconnect.
 *
 * The race: a simulated job commits random likes (hot videos, 1 in 8
 * transactions rolled back) into SQLite, bumping the version in the same
 * transaction, and hands each committed epoch to the cache updater
 * (cache_job.h); four readers hammer the same hot videos through the
 * serve read path (get, database on a miss, fill), sleeping between
 * their database read and their fill so that fills often race with
 * epochs; a chaos thread evicts entries, flushes the whole cache and
 * kills every connection. After the stream drains, every valid cached
 * entry must equal the database; and fills must have been refused (each
 * one a race that a plain SET would have lost: the schedule does race).
 *
 * Redis killed and restarted under the readers: every read still
 * answers (from the database, fast), and once Redis is back the cache
 * converges (hits again, all equal to the database).
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cache_job.h"
#include "railgun/conf.h"
#include "railgun/error.h"
#include "railgun/redis_cache.h"
#include "railgun/sinks.h"
#include "serve.h"
#include "serve_db.h"

#define VIDEOS 40
#define HOT 4
#define USERS 50

static const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert_not_null(v, "%s is not set: run through tests/support/"
                          "with_redis.sh", name);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void ctl(const char *verb)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s r0 %s >/dev/null", env("RG_REDIS_CTL"),
             verb, env("RG_REDIS_DIR"));
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

/* ---- fixture: a database, a conf, a prefix of our own ------------------- */

static const rg_conf_prop_t sink_row[] = {
    {"sink", RG_CONF_STR, "sqlite", 0, 0, "test: the sink", NULL},
};
static const rg_conf_table_t sink_table = {
    .layer = "test", .scope = RG_CONF_SCOPE_APP, .props = sink_row,
    .count = 1};

struct fx {
    char dir[256], path[300], prefix[64];
    rg_conf_t *conf;
    rg_cache_redis_options_t o;
};

static unsigned test_no;

static void fx_init(struct fx *f)
{
    snprintf(f->dir, sizeof(f->dir), "%s/rg-cache.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/likes.db", f->dir);
    snprintf(f->prefix, sizeof(f->prefix), "t%d.%u:", (int)getpid(),
             test_no++);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(f->path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE counts(video_id INTEGER PRIMARY KEY, count INTEGER NOT "
        "NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL);"
        "CREATE TABLE actions(video_id INTEGER NOT NULL, user_id INTEGER NOT "
        "NULL, state INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER "
        "NOT NULL, PRIMARY KEY (video_id, user_id)) WITHOUT ROWID;"
        "CREATE TABLE railgun_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
        "INSERT INTO railgun_meta VALUES ('version', 0);",
        NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    f->conf = rg_conf_new();
    cr_assert_not_null(f->conf);
    char err[256];
    cr_assert_eq(rg_conf_add_table(f->conf, rg_sqlite_conf_table(), err,
                                   sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_add_table(f->conf, &sink_table, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(rg_conf_add_table(f->conf, rg_serve_conf_table(), err,
                                   sizeof(err)), 0, "%s", err);
    const char *sets[][2] = {
        {"sqlite.path", f->path},
        {"cache.redis.port", env("RG_REDIS_PORT")},
        {"cache.redis.password", env("RG_REDIS_PASSWORD")},
        {"cache.redis.prefix", f->prefix},
        {"cache.redis.timeout.ms", "200"},
        {"cache.redis.backoff.max.ms", "200"},
    };
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
        cr_assert_eq(rg_conf_set(f->conf, sets[i][0], sets[i][1], err,
                                 sizeof(err)), 0, "%s", err);
    rg_serve_cache_options(f->conf, &f->o);
}

static void fx_fini(struct fx *f)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    cr_assert_eq(system(cmd), 0);
    rg_conf_destroy(f->conf);
}

static rg_cache_redis_t *handle(struct fx *f)
{
    char err[256];
    rg_cache_redis_t *c = rg_cache_redis_new(&f->o, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    return c;
}

static rg_serve_db_t *reader_db(struct fx *f)
{
    char err[256];
    rg_serve_db_t *d = rg_serve_db_open(f->conf, true, NULL, err,
                                        sizeof(err));
    cr_assert_not_null(d, "%s", err);
    return d;
}

/* A raw connection for checks and chaos. */
static redisContext *raw(void)
{
    struct timeval tv = {2, 0};
    redisContext *r = redisConnectWithTimeout(
        "127.0.0.1", atoi(env("RG_REDIS_PORT")), tv);
    cr_assert(r != NULL && r->err == 0);
    redisReply *a = redisCommand(r, "AUTH %s", env("RG_REDIS_PASSWORD"));
    cr_assert(a != NULL && a->type != REDIS_REPLY_ERROR);
    freeReplyObject(a);
    return r;
}

static void raw_cmd(redisContext *r, const char *fmt, const char *arg)
{
    redisReply *x = redisCommand(r, fmt, arg);
    cr_assert_not_null(x);
    freeReplyObject(x);
}

/* ---- the simulated job: likes into SQLite, one version per epoch ------- */

struct writer {
    sqlite3 *db;
    sqlite3_stmt *sel, *act, *cnt, *ver, *getver;
    uint64_t rng;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void writer_open(struct writer *w, const struct fx *f, uint64_t seed)
{
    cr_assert_eq(sqlite3_open(f->path, &w->db), SQLITE_OK);
    sqlite3_busy_timeout(w->db, 5000);
    cr_assert_eq(sqlite3_prepare_v2(w->db, "SELECT state FROM actions WHERE "
                 "video_id = ?1 AND user_id = ?2", -1, &w->sel, NULL), 0);
    cr_assert_eq(sqlite3_prepare_v2(w->db, "INSERT INTO actions VALUES (?1, "
                 "?2, ?3, 0, 0) ON CONFLICT (video_id, user_id) DO UPDATE SET "
                 "state = excluded.state", -1, &w->act, NULL), 0);
    cr_assert_eq(sqlite3_prepare_v2(w->db, "INSERT INTO counts VALUES (?1, "
                 "?2, 0, 0) ON CONFLICT (video_id) DO UPDATE SET count = "
                 "count + excluded.count", -1, &w->cnt, NULL), 0);
    cr_assert_eq(sqlite3_prepare_v2(w->db, "UPDATE railgun_meta SET v = v + "
                 "1 WHERE k = 'version'", -1, &w->ver, NULL), 0);
    cr_assert_eq(sqlite3_prepare_v2(w->db, "SELECT v FROM railgun_meta "
                 "WHERE k = 'version'", -1, &w->getver, NULL), 0);
    w->rng = seed | 1;
}

static void writer_close(struct writer *w)
{
    sqlite3_finalize(w->sel);
    sqlite3_finalize(w->act);
    sqlite3_finalize(w->cnt);
    sqlite3_finalize(w->ver);
    sqlite3_finalize(w->getver);
    sqlite3_close(w->db);
}

static void step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    cr_assert(rc == SQLITE_DONE || rc == SQLITE_ROW, "sqlite step %d", rc);
    sqlite3_reset(st);
}

/*
 * One epoch of `n` likes (video forced when >= 1, else 3 in 4 on a hot
 * video). Commits (returns the version, fills videos/rows) or, when
 * rollback, rolls back (returns 0).
 */
static int64_t writer_epoch(struct writer *w, int n, int64_t video,
                            bool rollback, int64_t *videos, size_t *nv,
                            rg_row_t *rows, size_t *nr)
{
    cr_assert_eq(sqlite3_exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), 0);
    *nv = *nr = 0;
    for (int i = 0; i < n; i++) {
        int64_t v = video > 0 ? video
                    : rnd(&w->rng) % 4 ? 1 + (int64_t)(rnd(&w->rng) % HOT)
                                       : 1 + (int64_t)(rnd(&w->rng) % VIDEOS);
        int64_t u = 1 + (int64_t)(rnd(&w->rng) % USERS);
        int want = (int)(rnd(&w->rng) % 2);
        sqlite3_bind_int64(w->sel, 1, v);
        sqlite3_bind_int64(w->sel, 2, u);
        int cur = sqlite3_step(w->sel) == SQLITE_ROW
                      ? sqlite3_column_int(w->sel, 0)
                      : 0;
        sqlite3_reset(w->sel);
        if (cur == want)
            continue;
        sqlite3_bind_int64(w->act, 1, v);
        sqlite3_bind_int64(w->act, 2, u);
        sqlite3_bind_int64(w->act, 3, want);
        step(w->act);
        sqlite3_bind_int64(w->cnt, 1, v);
        sqlite3_bind_int64(w->cnt, 2, want ? 1 : -1);
        step(w->cnt);
        rows[(*nr)++] = (rg_row_t){v, u, want, 0};
        bool seen = false;
        for (size_t k = 0; k < *nv; k++)
            seen |= videos[k] == v;
        if (!seen)
            videos[(*nv)++] = v;
    }
    step(w->ver);
    int64_t version = 0;
    cr_assert_eq(sqlite3_step(w->getver), SQLITE_ROW);
    version = sqlite3_column_int64(w->getver, 0);
    sqlite3_reset(w->getver);
    if (rollback) {
        cr_assert_eq(sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL), 0);
        return 0;
    }
    cr_assert_eq(sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL), 0);
    return version;
}

/* ---- the rules, one by one ----------------------------------------------- */

static int64_t get1(rg_cache_redis_t *c, rg_cache_kind_t kind, int64_t v,
                    int64_t u, bool *hit)
{
    int64_t val = -1;
    rg_cache_key_t k = {v, u};
    cr_assert_eq(rg_cache_redis_get(c, kind, &k, 1, &val, hit), 0);
    return val;
}

static int fill1(rg_cache_redis_t *c, rg_cache_kind_t kind, int64_t ver,
                 int64_t v, int64_t u, int64_t val)
{
    rg_cache_key_t k = {v, u};
    return rg_cache_redis_fill(c, kind, ver, &k, &val, 1);
}

Test(cache_redis, fill_needs_a_job_and_newer_versions_win)
{
    struct fx f;
    fx_init(&f);
    rg_cache_redis_t *c = handle(&f);
    rg_serve_db_t *db = reader_db(&f);
    bool hit;
    /* no job has ever written `applied`: fills are refused */
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, 5, 1, 0, 7), 0);
    get1(c, RG_CACHE_COUNT, 1, 0, &hit);
    cr_assert_not(hit, "a fill without a job keeping the cache landed");
    /* the job's first apply (epoch 5, nothing cached) */
    cr_assert_eq(rg_cache_redis_apply(c, 5, NULL, 0, NULL, 0,
                                      rg_serve_db_read_cb, db), 0);
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, 5, 1, 0, 7), 1);
    cr_assert_eq(get1(c, RG_CACHE_COUNT, 1, 0, &hit), 7);
    cr_assert(hit);
    /* same version again, and an older one: refused; a newer one wins */
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, 5, 1, 0, 8), 0);
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, 4, 1, 0, 9), 0);
    cr_assert_eq(get1(c, RG_CACHE_COUNT, 1, 0, &hit), 7);
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, 6, 1, 0, 10), 1);
    cr_assert_eq(get1(c, RG_CACHE_COUNT, 1, 0, &hit), 10);
    /* states are keyed per pair */
    cr_assert_eq(fill1(c, RG_CACHE_STATE, 6, 1, 2, 1), 1);
    cr_assert_eq(get1(c, RG_CACHE_STATE, 1, 2, &hit), 1);
    cr_assert(hit);
    get1(c, RG_CACHE_STATE, 1, 3, &hit);
    cr_assert_not(hit);
    rg_serve_db_close(db);
    rg_cache_redis_destroy(c);
    fx_fini(&f);
}

Test(cache_redis, a_fill_older_than_an_applied_epoch_never_lands)
{
    struct fx f;
    fx_init(&f);
    rg_cache_redis_t *c = handle(&f);
    rg_serve_db_t *db = reader_db(&f);
    struct writer w;
    writer_open(&w, &f, 1);
    int64_t vids[8];
    rg_row_t rows[8];
    size_t nv, nr;
    bool hit;
    cr_assert_eq(rg_cache_redis_apply(c, 0, NULL, 0, NULL, 0,
                                      rg_serve_db_read_cb, db), 0);
    /* a reader reads video 1 at version 0 (count 0) ... */
    int64_t cnt, ver;
    char err[256];
    cr_assert_eq(rg_serve_db_counts(db, (int64_t[]){1}, 1, &cnt, &ver, err,
                                    sizeof(err)), 0, "%s", err);
    cr_assert_eq(ver, 0);
    /* ... the job commits likes of video 1 and applies them (video 1 is
     * not cached: nothing rewritten, applied raised) ... */
    int64_t v1 = 0;
    while (v1 == 0 || nr == 0)
        v1 = writer_epoch(&w, 4, 1, false, vids, &nv, rows, &nr);
    cr_assert_eq(rg_cache_redis_apply(c, v1, vids, nv, rows, nr,
                                      rg_serve_db_read_cb, db), 0);
    /* ... and only then the reader's fill arrives: refused */
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, ver, 1, 0, cnt), 0);
    get1(c, RG_CACHE_COUNT, 1, 0, &hit);
    cr_assert_not(hit, "a fill read before epoch %" PRId64 " landed after "
                  "it", v1);
    /* a fresh read fills, and the job's next epoch rewrites it */
    cr_assert_eq(rg_serve_db_counts(db, (int64_t[]){1}, 1, &cnt, &ver, err,
                                    sizeof(err)), 0);
    cr_assert_eq(ver, v1);
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, ver, 1, 0, cnt), 1);
    int64_t v2 = 0;
    while (v2 == 0 || nr == 0)
        v2 = writer_epoch(&w, 4, 1, false, vids, &nv, rows, &nr);
    /* evicted before the job's write (the job then leaves it absent) */
    redisContext *r = raw();
    char key[128];
    rg_cache_redis_key(c, RG_CACHE_COUNT, &(rg_cache_key_t){1, 0}, key,
                       sizeof(key));
    cr_assert_eq(rg_cache_redis_apply(c, v2, vids, nv, rows, nr,
                                      rg_serve_db_read_cb, db), 0);
    int64_t now_cnt, now_ver;
    cr_assert_eq(rg_serve_db_counts(db, (int64_t[]){1}, 1, &now_cnt,
                                    &now_ver, err, sizeof(err)), 0);
    cr_assert_eq(get1(c, RG_CACHE_COUNT, 1, 0, &hit), now_cnt);
    cr_assert(hit, "the job did not rewrite a cached count");
    raw_cmd(r, "DEL %s", key);
    /* the fill read at v1 (before v2) comes late, after the eviction */
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, v1, 1, 0, cnt), 0);
    get1(c, RG_CACHE_COUNT, 1, 0, &hit);
    cr_assert_not(hit, "an evicted entry came back older");
    redisFree(r);
    writer_close(&w);
    rg_serve_db_close(db);
    rg_cache_redis_destroy(c);
    fx_fini(&f);
}

Test(cache_redis, floor_invalidates_and_apply_writes_cached_entries_only)
{
    struct fx f;
    fx_init(&f);
    rg_cache_redis_t *c = handle(&f), *job = handle(&f);
    rg_serve_db_t *db = reader_db(&f);
    struct writer w;
    writer_open(&w, &f, 2);
    int64_t vids[16];
    rg_row_t rows[16];
    size_t nv, nr;
    bool hit;
    cr_assert_eq(rg_cache_redis_apply(job, 0, NULL, 0, NULL, 0,
                                      rg_serve_db_read_cb, db), 0);
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, 0, 1, 0, 0), 1);
    cr_assert_eq(fill1(c, RG_CACHE_STATE, 0, 1, 1, 0), 1);
    /* epoch on video 1 (cached) and 2 (not cached) */
    int64_t v = 0;
    while (v == 0 || nv < 2) {
        int64_t a[8], b[8];
        rg_row_t ra[8], rb[8];
        size_t na, nb, ma, mb;
        int64_t x = writer_epoch(&w, 6, 1, false, a, &na, ra, &ma);
        int64_t y = writer_epoch(&w, 6, 2, false, b, &nb, rb, &mb);
        if (x && y && na && nb) {
            /* hand both as one epoch (the later version covers both) */
            nv = 0;
            vids[nv++] = 1;
            vids[nv++] = 2;
            nr = 0;
            for (size_t i = 0; i < ma; i++)
                rows[nr++] = ra[i];
            for (size_t i = 0; i < mb; i++)
                rows[nr++] = rb[i];
            v = y;
        }
    }
    /* the pair (1,1) last state from the rows, if any */
    int64_t want11 = 0;
    char err[256];
    cr_assert_eq(rg_serve_db_states(db, &(rg_cache_key_t){1, 1}, 1, &want11,
                                    &(int64_t){0}, err, sizeof(err)), 0);
    cr_assert_eq(rg_cache_redis_apply(job, v, vids, nv, rows, nr,
                                      rg_serve_db_read_cb, db), 0);
    int64_t c1, c2, ver;
    cr_assert_eq(rg_serve_db_counts(db, (int64_t[]){1}, 1, &c1, &ver, err,
                                    sizeof(err)), 0);
    cr_assert_eq(rg_serve_db_counts(db, (int64_t[]){2}, 1, &c2, &ver, err,
                                    sizeof(err)), 0);
    cr_assert_eq(get1(c, RG_CACHE_COUNT, 1, 0, &hit), c1);
    cr_assert(hit);
    get1(c, RG_CACHE_COUNT, 2, 0, &hit);
    cr_assert_not(hit, "apply created an entry nobody read");
    int64_t s11 = get1(c, RG_CACHE_STATE, 1, 1, &hit);
    cr_assert(hit);
    cr_assert_eq(s11, want11);
    rg_cache_redis_stats_t st;
    rg_cache_redis_stats(job, &st);
    cr_assert_geq(st.updated, 1);
    /* a reconnect resyncs: floor = the database's version; older entries
     * are misses, fills below floor refused, older epochs superseded */
    int64_t v3 = 0;
    while (v3 == 0)
        v3 = writer_epoch(&w, 3, 3, false, vids, &nv, rows, &nr);
    rg_cache_redis_invalidate(job);
    cr_assert_eq(rg_cache_redis_tick(job, rg_serve_db_read_cb, db), 0);
    rg_cache_redis_stats(job, &st);
    cr_assert_eq(st.floor, v3);
    get1(c, RG_CACHE_COUNT, 1, 0, &hit);
    cr_assert_not(hit, "an entry below floor was a hit");
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, v, 1, 0, c1), 0);
    cr_assert_eq(rg_cache_redis_apply(job, v, vids, nv, rows, nr,
                                      rg_serve_db_read_cb, db), 0);
    rg_cache_redis_stats(job, &st);
    cr_assert_eq(st.superseded, 1);
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, v3, 1, 0, c1), 1);
    cr_assert_eq(get1(c, RG_CACHE_COUNT, 1, 0, &hit), c1);
    cr_assert(hit);
    writer_close(&w);
    rg_serve_db_close(db);
    rg_cache_redis_destroy(c);
    rg_cache_redis_destroy(job);
    fx_fini(&f);
}

Test(cache_redis, job_resync_covers_an_epoch_another_process_left_out)
{
    struct fx f;
    fx_init(&f);
    char err[256];
    rg_cache_job_t *job = rg_cache_job_new(f.conf, err, sizeof(err));
    cr_assert_not_null(job, "%s", err);
    rg_cache_redis_t *c = handle(&f);
    struct writer w;
    writer_open(&w, &f, 3);
    int64_t vids[16];
    rg_row_t rows[16];
    size_t nv, nr;
    int64_t v = 0;
    while (v == 0)
        v = writer_epoch(&w, 4, 1, false, vids, &nv, rows, &nr);
    rg_cache_job_commit(job, v, vids, nv, rows, nr);
    cr_assert_eq(rg_cache_job_flush(job, 5000), 0);
    int64_t cnt, ver;
    rg_serve_db_t *db = reader_db(&f);
    cr_assert_eq(rg_serve_db_counts(db, (int64_t[]){1}, 1, &cnt, &ver, err,
                                    sizeof(err)), 0);
    cr_assert_eq(fill1(c, RG_CACHE_COUNT, ver, 1, 0, cnt), 1);
    /* another owner commits video 1 and dies before its cache update */
    int64_t lost = 0;
    while (lost == 0 || nv == 0)
        lost = writer_epoch(&w, 4, 1, false, vids, &nv, rows, &nr);
    bool hit;
    get1(c, RG_CACHE_COUNT, 1, 0, &hit);
    cr_assert(hit, "the stale entry is there before the resync");
    rg_cache_job_resync(job); /* this process got the partitions */
    cr_assert_eq(rg_cache_job_flush(job, 5000), 0);
    rg_cache_job_stats_t js;
    rg_cache_job_stats(job, &js);
    cr_assert_eq(js.redis.floor, lost);
    get1(c, RG_CACHE_COUNT, 1, 0, &hit);
    cr_assert_not(hit, "an entry older than the lost epoch is still a hit");
    writer_close(&w);
    rg_serve_db_close(db);
    rg_cache_redis_destroy(c);
    rg_cache_job_destroy(job);
    fx_fini(&f);
}

/* ---- the race -------------------------------------------------------------- */

struct race {
    struct fx *f;
    bool naive;              /* control: plain SET, no versions */
    _Atomic bool stop_readers, stop_chaos, calm;
    _Atomic uint64_t reads, hits, fills, refused;
    rg_cache_job_t *job;
    rg_cache_redis_t *naive_job;
};

/* The naive cache of the control: unconditional SETs. */
static void naive_set(redisContext *r, const char *prefix,
                      rg_cache_kind_t kind, int64_t v, int64_t u,
                      int64_t val)
{
    redisReply *x =
        kind == RG_CACHE_COUNT
            ? redisCommand(r, "SET %sc:%lld 0:%lld", prefix, (long long)v,
                           (long long)val)
            : redisCommand(r, "SET %ss:%lld:%lld 0:%lld", prefix,
                           (long long)v, (long long)u, (long long)val);
    if (x)
        freeReplyObject(x);
}

static void *reader_main(void *arg)
{
    struct race *rc = arg;
    rg_cache_redis_t *c = handle(rc->f);
    rg_serve_db_t *db = reader_db(rc->f);
    redisContext *r = rc->naive ? raw() : NULL;
    uint64_t rng = (uint64_t)(uintptr_t)&c | 1;
    char err[256];
    /* relaxed: a stop flag; the join orders the rest */
    while (!atomic_load_explicit(&rc->stop_readers, memory_order_relaxed)) {
        bool state = rnd(&rng) % 3 == 0;
        rg_cache_kind_t kind = state ? RG_CACHE_STATE : RG_CACHE_COUNT;
        int64_t v = rnd(&rng) % 4 ? 1 + (int64_t)(rnd(&rng) % HOT)
                                  : 1 + (int64_t)(rnd(&rng) % VIDEOS);
        int64_t u = state ? 1 + (int64_t)(rnd(&rng) % USERS) : 0;
        rg_cache_key_t k = {v, u};
        int64_t val;
        bool hit = false;
        rg_cache_redis_get(c, kind, &k, 1, &val, &hit);
        atomic_fetch_add_explicit(&rc->reads, 1, memory_order_relaxed);
        if (hit) {
            atomic_fetch_add_explicit(&rc->hits, 1, memory_order_relaxed);
            continue;
        }
        int64_t ver;
        int e = state ? rg_serve_db_states(db, &k, 1, &val, &ver, err,
                                           sizeof(err))
                      : rg_serve_db_counts(db, &v, 1, &val, &ver, err,
                                           sizeof(err));
        cr_assert_eq(e, 0, "%s", err);
        sleep_us((long)(rnd(&rng) % 3000)); /* widen the race */
        if (rc->naive)
            naive_set(r, rc->f->prefix, kind, v, u, val);
        else if (rg_cache_redis_fill(c, kind, ver, &k, &val, 1) > 0)
            atomic_fetch_add_explicit(&rc->fills, 1, memory_order_relaxed);
    }
    if (r)
        redisFree(r);
    rg_cache_redis_stats_t st;
    rg_cache_redis_stats(c, &st);
    atomic_fetch_add_explicit(&rc->refused, st.fills_refused,
                              memory_order_relaxed);
    rg_serve_db_close(db);
    rg_cache_redis_destroy(c);
    return NULL;
}

/* Evicts entries, flushes our keys, kills every connection. */
static void *chaos_main(void *arg)
{
    struct race *rc = arg;
    redisContext *r = raw();
    uint64_t rng = 99;
    char key[128];
    unsigned round = 0;
    while (!atomic_load_explicit(&rc->stop_chaos, memory_order_relaxed)) {
        sleep_us(2000);
        round++;
        int64_t v = 1 + (int64_t)(rnd(&rng) % HOT);
        snprintf(key, sizeof(key), "%sc:%lld", rc->f->prefix, (long long)v);
        raw_cmd(r, "DEL %s", key);
        if (atomic_load_explicit(&rc->calm, memory_order_relaxed))
            continue; /* the final sweep: evictions only */
        if (round % 300 == 0) { /* lose everything: floor and applied too */
            redisReply *x = redisCommand(r, "EVAL %s 0 %s",
                "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do "
                "redis.call('DEL', k) end", rc->f->prefix);
            if (x)
                freeReplyObject(x);
        }
        if (round % 170 == 0) {
            redisReply *x =
                redisCommand(r, "CLIENT KILL TYPE normal SKIPME yes");
            if (x)
                freeReplyObject(x);
        }
    }
    redisFree(r);
    return NULL;
}

/* Every valid cached entry against the database; returns the mismatches
 * and fills *checked. */
static int compare_all(struct fx *f, int *checked)
{
    rg_cache_redis_t *c = handle(f);
    rg_serve_db_t *db = reader_db(f);
    int bad = 0;
    *checked = 0;
    char err[256];
    for (int64_t v = 1; v <= VIDEOS; v++) {
        bool hit;
        int64_t val, dbv, ver;
        rg_cache_key_t k = {v, 0};
        cr_assert_eq(rg_cache_redis_get(c, RG_CACHE_COUNT, &k, 1, &val,
                                        &hit), 0);
        cr_assert_eq(rg_serve_db_counts(db, &v, 1, &dbv, &ver, err,
                                        sizeof(err)), 0);
        if (hit) {
            (*checked)++;
            if (val != dbv) {
                bad++;
                fprintf(stderr, "  count of video %lld: cache %lld, "
                        "database %lld\n", (long long)v, (long long)val,
                        (long long)dbv);
            }
        }
        for (int64_t u = 1; u <= USERS; u++) {
            k.user = u;
            cr_assert_eq(rg_cache_redis_get(c, RG_CACHE_STATE, &k, 1, &val,
                                            &hit), 0);
            if (!hit)
                continue;
            (*checked)++;
            cr_assert_eq(rg_serve_db_states(db, &k, 1, &dbv, &ver, err,
                                            sizeof(err)), 0);
            if (val != dbv)
                bad++;
        }
    }
    rg_serve_db_close(db);
    rg_cache_redis_destroy(c);
    return bad;
}

/* The naive control's job write: plain SETs of the new values. */
static void naive_apply(struct fx *f, redisContext *r, rg_serve_db_t *db,
                        const int64_t *vids, size_t nv, const rg_row_t *rows,
                        size_t nr)
{
    char err[256];
    for (size_t i = 0; i < nv; i++) {
        int64_t cnt, ver;
        cr_assert_eq(rg_serve_db_counts(db, &vids[i], 1, &cnt, &ver, err,
                                        sizeof(err)), 0);
        naive_set(r, f->prefix, RG_CACHE_COUNT, vids[i], 0, cnt);
    }
    for (size_t i = 0; i < nr; i++)
        naive_set(r, f->prefix, RG_CACHE_STATE, rows[i].key, rows[i].key2,
                  rows[i].value);
}

static int run_race(bool naive, double seconds, int *checked,
                    struct race *out)
{
    struct fx f;
    fx_init(&f);
    struct race *rc = calloc(1, sizeof(*rc));
    rc->f = &f;
    rc->naive = naive;
    char err[256];
    redisContext *nr_ctx = NULL;
    rg_serve_db_t *ndb = NULL;
    if (naive) {
        nr_ctx = raw();
        ndb = reader_db(&f);
    } else {
        rc->job = rg_cache_job_new(f.conf, err, sizeof(err));
        cr_assert_not_null(rc->job, "%s", err);
    }
    pthread_t rd[4], ch;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&rd[i], NULL, reader_main, rc), 0);
    cr_assert_eq(pthread_create(&ch, NULL, chaos_main, rc), 0);
    struct writer w;
    writer_open(&w, &f, naive ? 7 : 8);
    int64_t vids[64];
    rg_row_t rows[64];
    size_t nv, nrow;
    uint64_t epochs = 0, rolled = 0;
    double end = now_s() + seconds;
    for (unsigned i = 0; now_s() < end; i++) {
        bool rollback = i % 8 == 7;
        int64_t v = writer_epoch(&w, 1 + (int)(i % 12), 0, rollback, vids,
                                 &nv, rows, &nrow);
        if (v == 0) {
            rolled++;
            continue;
        }
        epochs++;
        if (naive)
            naive_apply(&f, nr_ctx, ndb, vids, nv, rows, nrow);
        else
            rg_cache_job_commit(rc->job, v, vids, nv, rows, nrow);
        sleep_us(500);
    }
    /* the last change of every video and of many pairs races too (with
     * evictions, but no flush: what survives is what gets checked) */
    atomic_store_explicit(&rc->calm, true, memory_order_relaxed);
    for (int64_t v = 1; v <= VIDEOS; v++) {
        int64_t ver = writer_epoch(&w, 6, v, false, vids, &nv, rows, &nrow);
        if (ver == 0)
            continue;
        if (naive)
            naive_apply(&f, nr_ctx, ndb, vids, nv, rows, nrow);
        else
            rg_cache_job_commit(rc->job, ver, vids, nv, rows, nrow);
        sleep_us(1000);
    }
    writer_close(&w);
    atomic_store_explicit(&rc->stop_chaos, true, memory_order_relaxed);
    pthread_join(ch, NULL);
    atomic_store_explicit(&rc->stop_readers, true, memory_order_relaxed);
    for (int i = 0; i < 4; i++)
        pthread_join(rd[i], NULL);
    if (!naive) {
        cr_assert_eq(rg_cache_job_flush(rc->job, 10000), 0);
        rg_cache_job_stats_t js;
        rg_cache_job_stats(rc->job, &js);
        fprintf(stderr, "race: %" PRIu64 " epochs (%" PRIu64 " rolled back)"
                ", %" PRIu64 " reads, %" PRIu64 " hits, %" PRIu64 " fills; "
                "updater: %" PRIu64 " applied, %" PRIu64 " rewritten, %"
                PRIu64 " skipped, %" PRIu64 " resyncs, %" PRIu64
                " superseded\n", epochs, rolled, rc->reads, rc->hits,
                rc->fills, js.redis.applies, js.redis.updated,
                js.redis.skipped, js.redis.resyncs, js.redis.superseded);
        cr_assert_gt(js.redis.updated, 0, "the job never rewrote an entry");
        cr_assert_gt(js.redis.resyncs, 1, "no reconnect happened");
        rg_cache_job_destroy(rc->job);
    } else {
        redisFree(nr_ctx);
        rg_serve_db_close(ndb);
    }
    int bad = compare_all(&f, checked);
    *out = *rc;
    free(rc);
    fx_fini(&f);
    return bad;
}

Test(cache_redis, readers_racing_the_job_never_leave_an_older_value)
{
    int checked;
    struct race r;
    int bad = run_race(false, 8.0, &checked, &r);
    fprintf(stderr, "race: %d valid entries checked, %d differ from the "
            "database\n", checked, bad);
    cr_assert_gt(r.fills, 100, "readers hardly filled (%" PRIu64 ")",
                 r.fills);
    cr_assert_gt(r.hits, 100, "readers hardly hit (%" PRIu64 ")", r.hits);
    /* each refused fill is a race the versions decided: a plain SET
     * would have stored a value older than the database's there */
    fprintf(stderr, "race: %" PRIu64 " fills refused (read before an epoch "
            "the job had begun, or older than the entry)\n", r.refused);
    cr_assert_gt(r.refused, 0, "no fill ever raced with the job: the "
                 "schedule proves nothing");
    cr_assert_gt(checked, 0);
    cr_assert_eq(bad, 0, "%d cached entries differ from the database", bad);
}

/* ---- Redis killed and restarted under the readers ------------------------- */

Test(cache_redis, redis_killed_reads_answer_from_the_database_then_converge)
{
    struct fx f;
    fx_init(&f);
    char err[256];
    rg_cache_job_t *job = rg_cache_job_new(f.conf, err, sizeof(err));
    cr_assert_not_null(job, "%s", err);
    rg_cache_redis_t *c = handle(&f);
    rg_serve_db_t *db = reader_db(&f);
    struct writer w;
    writer_open(&w, &f, 5);
    int64_t vids[64];
    rg_row_t rows[64];
    size_t nv, nr;
    /* warm: the job keeps the cache, readers fill */
    for (int i = 0; i < 20; i++) {
        int64_t v = writer_epoch(&w, 8, 0, false, vids, &nv, rows, &nr);
        if (v)
            rg_cache_job_commit(job, v, vids, nv, rows, nr);
    }
    cr_assert_eq(rg_cache_job_flush(job, 5000), 0);
    /* the serve read path: Redis, else the database; returns the value
     * and whether Redis answered */
#define READ(vid_, outval, redis_ok)                                      \
    do {                                                                   \
        rg_cache_key_t k_ = {(vid_), 0};                                   \
        bool h_ = false;                                                   \
        int g_ = rg_cache_redis_get(c, RG_CACHE_COUNT, &k_, 1, &(outval),  \
                                    &h_);                                  \
        (redis_ok) = g_ == 0;                                              \
        if (!h_) {                                                         \
            int64_t ver_;                                                  \
            cr_assert_eq(rg_serve_db_counts(db, &k_.video, 1, &(outval),   \
                                            &ver_, err, sizeof(err)), 0);  \
            if (g_ == 0)                                                   \
                rg_cache_redis_fill(c, RG_CACHE_COUNT, ver_, &k_,          \
                                    &(outval), 1);                         \
        }                                                                  \
    } while (0)
    int64_t val;
    bool ok;
    for (int64_t v = 1; v <= VIDEOS; v++)
        READ(v, val, ok);
    ctl("kill");
    /* Redis down: reads answer, from the database, each fast; the job's
     * epochs are skipped and counted */
    unsigned down = 0;
    double worst = 0;
    for (int i = 0; i < 200; i++) {
        int64_t v = 1 + i % VIDEOS, dbv, ver;
        if (i % 10 == 0) {
            int64_t e = writer_epoch(&w, 8, 0, false, vids, &nv, rows, &nr);
            if (e)
                rg_cache_job_commit(job, e, vids, nv, rows, nr);
        }
        double t0 = now_s();
        READ(v, val, ok);
        double dt = now_s() - t0;
        worst = dt > worst ? dt : worst;
        down += !ok;
        cr_assert_eq(rg_serve_db_counts(db, &v, 1, &dbv, &ver, err,
                                        sizeof(err)), 0);
        cr_assert_eq(val, dbv, "a read during the outage was wrong");
    }
    cr_assert_gt(down, 190, "Redis answered while killed? (%u)", down);
    cr_assert_lt(worst, 0.5, "a read waited %.3f s on a dead Redis", worst);
    cr_assert_eq(rg_cache_job_flush(job, 5000), 0);
    rg_cache_job_stats_t js;
    rg_cache_job_stats(job, &js);
    cr_assert_gt(js.redis.skipped, 0, "no skipped update was counted");
    ctl("restart");
    /* Redis back (empty): the updater resyncs within its tick, then the
     * readers fill again and every entry equals the database */
    double until = now_s() + 10;
    uint64_t resyncs = js.redis.resyncs;
    while (now_s() < until) {
        int64_t e = writer_epoch(&w, 4, 0, false, vids, &nv, rows, &nr);
        if (e)
            rg_cache_job_commit(job, e, vids, nv, rows, nr);
        rg_cache_job_flush(job, 2000);
        rg_cache_job_stats(job, &js);
        if (js.redis.resyncs > resyncs)
            break;
        sleep_us(100000);
    }
    cr_assert_gt(js.redis.resyncs, resyncs, "the updater never resynced");
    unsigned hits = 0;
    until = now_s() + 10;
    while (hits == 0 && now_s() < until) {
        sleep_us(50000);
        for (int64_t v = 1; v <= VIDEOS; v++) {
            READ(v, val, ok);
            rg_cache_key_t k = {v, 0};
            bool h;
            int64_t x;
            if (rg_cache_redis_get(c, RG_CACHE_COUNT, &k, 1, &x, &h) == 0 &&
                h)
                hits++;
        }
    }
    cr_assert_gt(hits, 0, "the cache never filled again after the restart");
    for (int i = 0; i < 10; i++) {
        int64_t e = writer_epoch(&w, 8, 0, false, vids, &nv, rows, &nr);
        if (e)
            rg_cache_job_commit(job, e, vids, nv, rows, nr);
    }
    cr_assert_eq(rg_cache_job_flush(job, 5000), 0);
    int checked;
    int bad = compare_all(&f, &checked);
    cr_assert_eq(bad, 0, "%d entries differ after convergence", bad);
    cr_assert_gt(checked, 0);
#undef READ
    writer_close(&w);
    rg_serve_db_close(db);
    rg_cache_redis_destroy(c);
    rg_cache_job_destroy(job);
    fx_fini(&f);
}
