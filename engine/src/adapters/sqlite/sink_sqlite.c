/*
 * sink_sqlite.c - the embedded sink: one SQLite write transaction per
 * epoch, prepared statements only (railgun/sinks.h, railgun/sink.h).
 *
 * WAL mode lets the workers' readers (reader_open) look rows up while the
 * flusher writes. synchronous=NORMAL: a committed transaction survives the
 * process being killed (the WAL is in the OS's page cache); a power loss
 * may lose the last epochs, and then rows and offsets are lost together,
 * so replaying from the stored offsets is still exact.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/error.h"
#include "railgun/sinks.h"
#include "../common/claims.h"

typedef struct sqlite_sink {
    sqlite3 *db;
    char *path, *group, *topic;
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *up_count, *up_action, *up_offset, *sel_offset;
    struct rg_claims claims;
} sqlite_sink;

struct rg_sink_reader_s {
    sqlite3 *db;
    sqlite3_stmt *lookup, *begin, *end;
};

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...)
{
    if (errstr == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

/* SQLite result -> RG_E*: what may pass on a retry is RG_EIO. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_PROTOCOL:
        return RG_EIO;
    case SQLITE_NOMEM:
        return RG_ENOMEM;
    default:
        return RG_ESTATE;
    }
}

static int fail(sqlite3 *db, int rc, const char *what, char *errstr,
                size_t size)
{
    seterr(errstr, size, "sqlite: %s: %s", what,
           db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return map_rc(rc);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs a prepared statement that returns no rows, then resets it. */
static int run(sqlite_sink *s, sqlite3_stmt *st, const char *what,
               char *errstr, size_t size)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail(s->db, rc, what, errstr, size);
    return 0;
}

static const char *const schema_sql[] = {
    "CREATE TABLE IF NOT EXISTS counts("
    " video_id INTEGER PRIMARY KEY,"
    " count INTEGER NOT NULL,"
    " mtime INTEGER NOT NULL,"
    " ctime INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS actions("
    " video_id INTEGER NOT NULL,"
    " user_id INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " mtime INTEGER NOT NULL,"
    " ctime INTEGER NOT NULL,"
    " PRIMARY KEY (video_id, user_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS offsets("
    " consumer_group TEXT NOT NULL,"
    " topic TEXT NOT NULL,"
    " partition INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL,"
    " owner_epoch INTEGER NOT NULL,"
    " PRIMARY KEY (consumer_group, topic, partition))",
};

/* Every table with the columns it must have. */
static const struct {
    const char *table;
    const char *cols[6];
} shapes[] = {
    {"counts", {"video_id", "count", "mtime", "ctime", NULL}},
    {"actions", {"video_id", "user_id", "state", "mtime", "ctime", NULL}},
    {"offsets", {"consumer_group", "topic", "partition", "next_offset",
                 "owner_epoch", NULL}},
};

/* Checks that each table exists with its columns and its unique key. */
static int check_schema(sqlite_sink *s, char *errstr, size_t size)
{
    for (size_t t = 0; t < sizeof(shapes) / sizeof(shapes[0]); t++) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db,
                                    "SELECT name, pk FROM pragma_table_info(?)",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
            return fail(s->db, rc, "schema check", errstr, size);
        sqlite3_bind_text(st, 1, shapes[t].table, -1, SQLITE_STATIC);
        unsigned seen = 0, ncols = 0, pk = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            ncols++;
            for (unsigned c = 0; shapes[t].cols[c]; c++)
                if (name && strcmp(name, shapes[t].cols[c]) == 0) {
                    seen |= 1u << c;
                    /* the key columns come first in each shape */
                    if (sqlite3_column_int(st, 1) > 0)
                        pk |= 1u << c;
                }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return fail(s->db, rc, "schema check", errstr, size);
        if (ncols == 0) {
            seterr(errstr, size, "sqlite: table %s is missing in %s (run "
                   "with --init-schema to create it)", shapes[t].table,
                   s->path);
            return RG_ESTATE;
        }
        for (unsigned c = 0; shapes[t].cols[c]; c++)
            if (!(seen & (1u << c))) {
                seterr(errstr, size, "sqlite: table %s in %s has the wrong "
                       "shape: no column %s", shapes[t].table, s->path,
                       shapes[t].cols[c]);
                return RG_ESTATE;
            }
        /* the unique key: counts(video_id), actions(video_id, user_id),
         * offsets(group, topic, partition) */
        unsigned want = t == 0 ? 0x1u : t == 1 ? 0x3u : 0x7u;
        if ((pk & want) != want) {
            seterr(errstr, size, "sqlite: table %s in %s has the wrong "
                   "shape: its primary key is not (%s%s%s)",
                   shapes[t].table, s->path, shapes[t].cols[0],
                   t ? ", " : "", t ? shapes[t].cols[1] : "");
            return RG_ESTATE;
        }
    }
    return 0;
}

static int prep(sqlite_sink *s, const char *sql, sqlite3_stmt **st,
                char *errstr, size_t size)
{
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                st, NULL);
    if (rc != SQLITE_OK)
        return fail(s->db, rc, "prepare", errstr, size);
    return 0;
}

static int sq_begin(void *self, uint64_t epoch, char *errstr, size_t size)
{
    (void)epoch;
    sqlite_sink *s = self;
    return run(s, s->begin, "begin", errstr, size);
}

static int sq_write_merged(void *self, const rg_row_t *rows, size_t n,
                           char *errstr, size_t size)
{
    sqlite_sink *s = self;
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        if (rows[i].value == 0)
            continue;
        int64_t t = rows[i].ts ? rows[i].ts : now;
        sqlite3_bind_int64(s->up_count, 1, rows[i].key);
        sqlite3_bind_int64(s->up_count, 2, rows[i].value);
        sqlite3_bind_int64(s->up_count, 3, t);
        int rc = run(s, s->up_count, "write counts", errstr, size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int sq_write_staged(void *self, const rg_row_t *rows, size_t n,
                           char *errstr, size_t size)
{
    sqlite_sink *s = self;
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        int64_t t = rows[i].ts ? rows[i].ts : now;
        sqlite3_bind_int64(s->up_action, 1, rows[i].key);
        sqlite3_bind_int64(s->up_action, 2, rows[i].key2);
        sqlite3_bind_int64(s->up_action, 3, rows[i].value);
        sqlite3_bind_int64(s->up_action, 4, t);
        int rc = run(s, s->up_action, "write actions", errstr, size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int sq_write_offsets(void *self, const rg_offset_t *offs, size_t n,
                            char *errstr, size_t size)
{
    sqlite_sink *s = self;
    for (size_t i = 0; i < n; i++) {
        const struct rg_claim *c = rg_claims_find(&s->claims,
                                                  offs[i].partition);
        if (c == NULL) {
            seterr(errstr, size, "sqlite: partition %" PRId32 " was never "
                   "claimed by this process", offs[i].partition);
            return RG_ESTATE;
        }
        sqlite3_stmt *st = s->up_offset;
        sqlite3_bind_int64(st, 1, offs[i].next_offset);
        sqlite3_bind_int(st, 2, offs[i].partition);
        sqlite3_bind_int64(st, 3, c->owner_epoch);
        int rc = run(s, st, "write offsets", errstr, size);
        if (rc != 0)
            return rc;
        if (sqlite3_changes(s->db) != 1) {
            /* stored already by a commit whose reply was lost, or fenced */
            sqlite3_stmt *q = s->sel_offset;
            sqlite3_bind_int(q, 1, offs[i].partition);
            int64_t next = -2, owner = -1;
            if (sqlite3_step(q) == SQLITE_ROW) {
                next = sqlite3_column_int64(q, 0);
                owner = sqlite3_column_int64(q, 1);
            }
            sqlite3_reset(q);
            if (owner == c->owner_epoch && next == offs[i].next_offset) {
                seterr(errstr, size, "sqlite: partition %" PRId32 " already "
                       "stores next offset %" PRId64, offs[i].partition,
                       next);
                return RG_EEXIST;
            }
            seterr(errstr, size, "sqlite: partition %" PRId32 " is owned "
                   "by a newer owner (owner_epoch moved past %" PRId64
                   "): this process is fenced", offs[i].partition,
                   c->owner_epoch);
            return RG_ESTALE;
        }
    }
    return 0;
}

static int sq_commit(void *self, char *errstr, size_t size)
{
    sqlite_sink *s = self;
    return run(s, s->commit, "commit", errstr, size);
}

static void sq_rollback(void *self)
{
    sqlite_sink *s = self;
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_step(s->rollback);
        sqlite3_reset(s->rollback);
    }
}

static int sq_claim(void *self, const int32_t *parts, size_t n,
                    int64_t *next_out, char *errstr, size_t size)
{
    sqlite_sink *s = self;
    static const char *const sql[] = {
        "INSERT OR IGNORE INTO offsets VALUES (?1, ?2, ?3, -1, 0)",
        "UPDATE offsets SET owner_epoch = owner_epoch + 1 "
        "WHERE consumer_group = ?1 AND topic = ?2 AND partition = ?3",
        "SELECT next_offset, owner_epoch FROM offsets "
        "WHERE consumer_group = ?1 AND topic = ?2 AND partition = ?3",
    };
    sqlite3_stmt *st[3] = {NULL, NULL, NULL};
    int64_t *epochs = malloc(sizeof(int64_t) * (n ? n : 1));
    if (epochs == NULL) {
        seterr(errstr, size, "sqlite: out of memory");
        return RG_ENOMEM;
    }
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v2(s->db, sql[i], -1, &st[i], NULL);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        for (int k = 0; k < 3; k++) {
            sqlite3_bind_text(st[k], 1, s->group, -1, SQLITE_STATIC);
            sqlite3_bind_text(st[k], 2, s->topic, -1, SQLITE_STATIC);
            sqlite3_bind_int(st[k], 3, parts[i]);
        }
        if ((rc = sqlite3_step(st[0])) != SQLITE_DONE ||
            (rc = sqlite3_step(st[1])) != SQLITE_DONE ||
            (rc = sqlite3_step(st[2])) != SQLITE_ROW)
            break;
        next_out[i] = sqlite3_column_int64(st[2], 0);
        epochs[i] = sqlite3_column_int64(st[2], 1);
        for (int k = 0; k < 3; k++)
            sqlite3_reset(st[k]);
        rc = SQLITE_OK;
    }
    for (int k = 0; k < 3; k++)
        sqlite3_finalize(st[k]);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int ret = fail(s->db, rc, "claim", errstr, size);
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        free(epochs);
        return ret;
    }
    /* only a committed claim counts */
    for (size_t i = 0; i < n; i++)
        if (rg_claims_put(&s->claims, parts[i], epochs[i]) != 0) {
            free(epochs);
            seterr(errstr, size, "sqlite: out of memory");
            return RG_ENOMEM;
        }
    free(epochs);
    return 0;
}

static void sq_reader_close(rg_sink_reader_t *r)
{
    if (r == NULL)
        return;
    sqlite3_finalize(r->lookup);
    sqlite3_finalize(r->begin);
    sqlite3_finalize(r->end);
    sqlite3_close(r->db);
    free(r);
}

static rg_sink_reader_t *sq_reader_open(void *self, char *errstr,
                                        size_t size)
{
    sqlite_sink *s = self;
    rg_sink_reader_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        seterr(errstr, size, "sqlite: out of memory");
        return NULL;
    }
    int rc = sqlite3_open_v2(s->path, &r->db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(r->db, 5000);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(r->db,
                                "SELECT state FROM actions WHERE "
                                "video_id = ?1 AND user_id = ?2",
                                -1, SQLITE_PREPARE_PERSISTENT, &r->lookup,
                                NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(r->db, "BEGIN", -1,
                                SQLITE_PREPARE_PERSISTENT, &r->begin, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(r->db, "COMMIT", -1,
                                SQLITE_PREPARE_PERSISTENT, &r->end, NULL);
    if (rc != SQLITE_OK) {
        fail(r->db, rc, "reader", errstr, size);
        sq_reader_close(r);
        return NULL;
    }
    return r;
}

/* Embedded, a lookup costs no round trip: one read transaction (one
 * snapshot) with a primary-key point read per pair is the fastest form;
 * a row-value IN list makes SQLite scan the table. */
static int sq_lookup(rg_sink_reader_t *r, rg_row_t *rows, size_t n,
                     char *errstr, size_t size)
{
    int rc = sqlite3_step(r->begin);
    sqlite3_reset(r->begin);
    if (rc != SQLITE_DONE)
        return fail(r->db, rc, "lookup", errstr, size);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(r->lookup, 1, rows[i].key);
        sqlite3_bind_int64(r->lookup, 2, rows[i].key2);
        rc = sqlite3_step(r->lookup);
        rows[i].value = rc == SQLITE_ROW ? sqlite3_column_int64(r->lookup, 0)
                                         : -1;
        sqlite3_reset(r->lookup);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            break;
    }
    int erc = sqlite3_step(r->end);
    sqlite3_reset(r->end);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail(r->db, rc, "lookup", errstr, size);
    if (erc != SQLITE_DONE)
        return fail(r->db, erc, "lookup", errstr, size);
    return 0;
}

static int sq_scan(void *self, int table,
                   void (*cb)(void *arg, const rg_row_t *row), void *arg,
                   char *errstr, size_t size)
{
    sqlite_sink *s = self;
    const char *sql = table == RG_SINK_MERGED
                          ? "SELECT video_id, 0, count, mtime FROM counts"
                          : "SELECT video_id, user_id, state, mtime FROM "
                            "actions";
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail(s->db, rc, "scan", errstr, size);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rg_row_t row = {sqlite3_column_int64(st, 0),
                        sqlite3_column_int64(st, 1),
                        sqlite3_column_int64(st, 2),
                        sqlite3_column_int64(st, 3)};
        cb(arg, &row);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : fail(s->db, rc, "scan", errstr, size);
}

static void sq_close(void *self)
{
    sqlite_sink *s = self;
    if (s == NULL)
        return;
    sqlite3_stmt *sts[] = {s->begin, s->commit, s->rollback, s->up_count,
                           s->up_action, s->up_offset, s->sel_offset};
    for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++)
        sqlite3_finalize(sts[i]);
    sqlite3_close(s->db);
    free(s->path);
    free(s->group);
    free(s->topic);
    rg_claims_free(&s->claims);
    free(s);
}

int rg_sink_sqlite_open(const rg_conf_t *conf, unsigned flags,
                        rg_sink_t *out, char *errstr, size_t size)
{
    const char *path = rg_conf_get_str(conf, "sqlite.path");
    if (path == NULL || path[0] == '\0') {
        seterr(errstr, size, "sqlite.path: not set");
        return RG_EINVAL;
    }
    sqlite_sink *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        seterr(errstr, size, "sqlite: out of memory");
        return RG_ENOMEM;
    }
    s->path = strdup(path);
    s->group = strdup(rg_conf_get_str(conf, "group.id"));
    s->topic = strdup(rg_conf_get_str(conf, "topic"));
    int rc = 0;
    if (!s->path || !s->group || !s->topic) {
        seterr(errstr, size, "sqlite: out of memory");
        rc = RG_ENOMEM;
        goto out;
    }
    int src = sqlite3_open_v2(path, &s->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              NULL);
    if (src != SQLITE_OK) {
        seterr(errstr, size, "sqlite: cannot open %s: %s", path,
               s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
        rc = RG_EIO;
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    const char *pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL";
    if ((src = sqlite3_exec(s->db, pragmas, NULL, NULL, NULL)) != SQLITE_OK) {
        rc = fail(s->db, src, "cannot set WAL mode", errstr, size);
        goto out;
    }
    if (flags & RG_SINK_INIT_SCHEMA)
        for (size_t i = 0; i < sizeof(schema_sql) / sizeof(schema_sql[0]);
             i++)
            if ((src = sqlite3_exec(s->db, schema_sql[i], NULL, NULL,
                                    NULL)) != SQLITE_OK) {
                rc = fail(s->db, src, "create schema", errstr, size);
                goto out;
            }
    if ((rc = check_schema(s, errstr, size)) != 0)
        goto out;
    if ((rc = prep(s, "BEGIN IMMEDIATE", &s->begin, errstr, size)) ||
        (rc = prep(s, "COMMIT", &s->commit, errstr, size)) ||
        (rc = prep(s, "ROLLBACK", &s->rollback, errstr, size)) ||
        (rc = prep(s, "INSERT INTO counts (video_id, count, mtime, ctime) "
                      "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (video_id) DO "
                      "UPDATE SET count = count + excluded.count, "
                      "mtime = excluded.mtime",
                   &s->up_count, errstr, size)) ||
        (rc = prep(s, "INSERT INTO actions (video_id, user_id, state, "
                      "mtime, ctime) VALUES (?1, ?2, ?3, ?4, ?4) ON "
                      "CONFLICT (video_id, user_id) DO UPDATE SET "
                      "state = excluded.state, mtime = excluded.mtime",
                   &s->up_action, errstr, size)) ||
        (rc = prep(s, "UPDATE offsets SET next_offset = ?1 WHERE "
                      "consumer_group = ?4 AND topic = ?5 AND partition = ?2 "
                      "AND owner_epoch = ?3 AND next_offset <> ?1",
                   &s->up_offset, errstr, size)) ||
        (rc = prep(s, "SELECT next_offset, owner_epoch FROM offsets WHERE "
                      "consumer_group = ?2 AND topic = ?3 AND partition = ?1",
                   &s->sel_offset, errstr, size)))
        goto out;
    sqlite3_bind_text(s->sel_offset, 2, s->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->sel_offset, 3, s->topic, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->up_offset, 4, s->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->up_offset, 5, s->topic, -1, SQLITE_STATIC);
    *out = (rg_sink_t){
        .begin = sq_begin,
        .write_merged = sq_write_merged,
        .write_staged = sq_write_staged,
        .write_offsets = sq_write_offsets,
        .commit = sq_commit,
        .rollback = sq_rollback,
        .claim = sq_claim,
        .reader_open = sq_reader_open,
        .lookup = sq_lookup,
        .reader_close = sq_reader_close,
        .scan = sq_scan,
        .close = sq_close,
        .self = s,
    };
    return 0;
out:
    sq_close(s);
    return rc;
}
