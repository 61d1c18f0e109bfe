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
#include "../common/failures.h"
#include "../common/props.h"

static const rg_conf_prop_t sqlite_props[] = {
    {"sqlite.path", RG_CONF_STR, "", 0, 0,
     "SQLite database file (created if missing). Empty: the command picks "
     "one (demo: a temporary file); required by `railgun run`.", NULL},
    {"sqlite.cache.mb", RG_CONF_INT, "64", 1, 65536,
     "Page cache of each SQLite connection (the flusher's and each "
     "worker's reader), in MiB, taken as pages are touched. SQLite's own "
     "default is 2 MiB: a staged table larger than that is re-read from "
     "the OS page cache on every insert and lookup. Per connection: with "
     "W workers up to (W + 1) x this, as the tables are touched.", NULL},
    RG_SQL_SINK_PROPS,
};

static const rg_conf_table_t sqlite_table = {
    .layer = "sqlite",
    .scope = RG_CONF_SCOPE_SINK,
    .props = sqlite_props,
    .count = sizeof(sqlite_props) / sizeof(sqlite_props[0]),
};

const rg_conf_table_t *rg_sqlite_conf_table(void)
{
    return &sqlite_table;
}

/* The tables this sink writes (names from sink.table.*; "" = none). */
enum {
    T_MERGED, T_BYTES, T_STAGED, T_OFFSETS, T_META, T_FAILURES, T_MARKS,
    T__COUNT
};

typedef struct sqlite_sink {
    sqlite3 *db;
    char *path, *group, *topic;
    char *handover;          /* sink.handover.from, "" = none */
    rg_log_cb *log;          /* the conf's log callback */
    void *log_opaque;
    char *table[T__COUNT];
    struct staged_at *sorted; /* write_staged's scratch, grow-only */
    size_t sorted_cap;
    char cache_pragma[48];   /* "PRAGMA cache_size=-KiB" (sqlite.cache.mb) */
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *up_count, *up_bytes, *up_action, *up_offset, *sel_offset;
    sqlite3_stmt *up_version, *sel_version; /* sink.version=true only */
    /* sink.table.failures set only: the upsert (delayed, dead), the
     * delete (cleared), the scans of every partition and of one, and
     * the same for the dead rows not forwarded yet */
    sqlite3_stmt *up_failure, *del_failure, *sel_failures, *sel_failures_p;
    sqlite3_stmt *sel_unfwd, *sel_unfwd_p;
    /* sink.table.producers set only: the producer marks' upsert, scan */
    sqlite3_stmt *up_mark, *sel_marks;
    int64_t version;         /* what the open transaction set */
    struct rg_claims claims;
} sqlite_sink;

struct rg_sink_reader_s {
    sqlite3 *db;
    sqlite3_stmt *lookup, *begin, *end;
};

#define seterr rg__seterr

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

/* Each kind of table: its CREATE (the name is %s), its columns (the key
 * columns first) and how many columns form its primary key. */
static const struct {
    const char *create;
    const char *cols[20];
    unsigned nkey;
} shapes[T__COUNT] = {
    [T_MERGED] = {"CREATE TABLE IF NOT EXISTS %s("
                  " video_id INTEGER PRIMARY KEY,"
                  " count INTEGER NOT NULL,"
                  " mtime INTEGER NOT NULL,"
                  " ctime INTEGER NOT NULL)",
                  {"video_id", "count", "mtime", "ctime", NULL}, 1},
    [T_BYTES] = {"CREATE TABLE IF NOT EXISTS %s("
                 " key_bytes BLOB NOT NULL PRIMARY KEY,"
                 " count INTEGER NOT NULL,"
                 " mtime INTEGER NOT NULL,"
                 " ctime INTEGER NOT NULL) WITHOUT ROWID",
                 {"key_bytes", "count", "mtime", "ctime", NULL}, 1},
    [T_STAGED] = {"CREATE TABLE IF NOT EXISTS %s("
                  " video_id INTEGER NOT NULL,"
                  " user_id INTEGER NOT NULL,"
                  " state INTEGER NOT NULL,"
                  " mtime INTEGER NOT NULL,"
                  " ctime INTEGER NOT NULL,"
                  " PRIMARY KEY (video_id, user_id)) WITHOUT ROWID",
                  {"video_id", "user_id", "state", "mtime", "ctime", NULL},
                  2},
    [T_OFFSETS] = {"CREATE TABLE IF NOT EXISTS %s("
                   " consumer_group TEXT NOT NULL,"
                   " topic TEXT NOT NULL,"
                   " partition INTEGER NOT NULL,"
                   " next_offset INTEGER NOT NULL,"
                   " owner_epoch INTEGER NOT NULL,"
                   " PRIMARY KEY (consumer_group, topic, partition))",
                   {"consumer_group", "topic", "partition", "next_offset",
                    "owner_epoch", NULL}, 3},
    [T_META] = {"CREATE TABLE IF NOT EXISTS %s("
                " k TEXT NOT NULL PRIMARY KEY,"
                " v TEXT NOT NULL,"
                " n INTEGER NOT NULL,"
                " mtime INTEGER NOT NULL)",
                {"k", "v", "n", "mtime", NULL}, 1},
    /* a rowid table: payloads can be kilobytes, which WITHOUT ROWID
     * tables store badly */
    [T_FAILURES] = {"CREATE TABLE IF NOT EXISTS %s("
                    " partition_id INTEGER NOT NULL,"
                    " offset_id INTEGER NOT NULL,"
                    " state INTEGER NOT NULL,"
                    " route_key INTEGER NOT NULL,"
                    " msg_key BLOB,"
                    " attempts INTEGER NOT NULL,"
                    " flags INTEGER NOT NULL,"
                    " first_ms INTEGER NOT NULL,"
                    " last_ms INTEGER NOT NULL,"
                    " due_ms INTEGER NOT NULL,"
                    " reasons TEXT NOT NULL,"
                    " payload BLOB NOT NULL,"
                    " event_len INTEGER NOT NULL,"
                    " replayed_ms INTEGER,"
                    " forwarded_ms INTEGER,"
                    " mtime INTEGER NOT NULL,"
                    " PRIMARY KEY (partition_id, offset_id))",
                    {RG_FAILURE_COL_NAMES, NULL}, 2},
    [T_MARKS] = {"CREATE TABLE IF NOT EXISTS %s("
                 " partition_id INTEGER NOT NULL,"
                 " producer_id INTEGER NOT NULL,"
                 " hi INTEGER NOT NULL,"
                 " seen BLOB NOT NULL,"
                 " mtime INTEGER NOT NULL,"
                 " PRIMARY KEY (partition_id, producer_id)) WITHOUT ROWID",
                 {"partition_id", "producer_id", "hi", "seen", "mtime", NULL},
                 2},
};

/* Checks that each configured table exists with its columns and its
 * primary key. */
static int check_schema(sqlite_sink *s, char *errstr, size_t size)
{
    for (size_t t = 0; t < T__COUNT; t++) {
        if (s->table[t][0] == '\0')
            continue;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db,
                                    "SELECT name, pk FROM pragma_table_info(?)",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
            return fail(s->db, rc, "schema check", errstr, size);
        sqlite3_bind_text(st, 1, s->table[t], -1, SQLITE_STATIC);
        unsigned seen = 0, ncols = 0, pk = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            ncols++;
            for (unsigned c = 0; shapes[t].cols[c]; c++)
                if (name && strcmp(name, shapes[t].cols[c]) == 0) {
                    seen |= 1u << c;
                    if (sqlite3_column_int(st, 1) > 0)
                        pk |= 1u << c;
                }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return fail(s->db, rc, "schema check", errstr, size);
        if (ncols == 0) {
            seterr(errstr, size, "sqlite: table %s is missing in %s "
                   "(`railgun run --init-schema` creates it)", s->table[t],
                   s->path);
            return RG_ESTATE;
        }
        for (unsigned c = 0; shapes[t].cols[c]; c++)
            if (!(seen & (1u << c))) {
                seterr(errstr, size, "sqlite: table %s in %s has the wrong "
                       "shape: no column %s", s->table[t], s->path,
                       shapes[t].cols[c]);
                return RG_ESTATE;
            }
        unsigned want = (1u << shapes[t].nkey) - 1;
        if ((pk & want) != want) {
            seterr(errstr, size, "sqlite: table %s in %s has the wrong "
                   "shape: its primary key is not its first %u column(s) "
                   "(%s, ...)", s->table[t], s->path, shapes[t].nkey,
                   shapes[t].cols[0]);
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

/* prep() of a statement naming table t (every %s in fmt is its name). */
static int prep_t(sqlite_sink *s, const char *fmt, int t, sqlite3_stmt **st,
                  char *errstr, size_t size)
{
    char sql[1024];
    const char *n = s->table[t];
    snprintf(sql, sizeof(sql), fmt, n, n, n, n);
    return prep(s, sql, st, errstr, size);
}

static int sq_begin(void *self, uint64_t epoch, char *errstr, size_t size)
{
    (void)epoch;
    sqlite_sink *s = self;
    int rc = run(s, s->begin, "begin", errstr, size);
    if (rc != 0 || s->up_version == NULL)
        return rc;
    /* sink.version: first thing in the transaction */
    sqlite3_bind_int64(s->up_version, 1, now_ms());
    if ((rc = run(s, s->up_version, "bump the version", errstr, size)) != 0)
        return rc;
    int src = sqlite3_step(s->sel_version);
    s->version = src == SQLITE_ROW ? sqlite3_column_int64(s->sel_version, 0)
                                   : 0;
    sqlite3_reset(s->sel_version);
    if (src != SQLITE_ROW)
        return fail(s->db, src, "read the version", errstr, size);
    return 0;
}

static int64_t sq_version(void *self)
{
    return ((sqlite_sink *)self)->version;
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

static int sq_write_bytes(void *self, const rg_bytes_row_t *rows, size_t n,
                          char *errstr, size_t size)
{
    sqlite_sink *s = self;
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        if (rows[i].value == 0)
            continue;
        sqlite3_bind_blob(s->up_bytes, 1, rows[i].key, (int)rows[i].len,
                          SQLITE_STATIC);
        sqlite3_bind_int64(s->up_bytes, 2, rows[i].value);
        sqlite3_bind_int64(s->up_bytes, 3, now);
        int rc = run(s, s->up_bytes, "write merged bytes", errstr, size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A staged row and its place in the call's input, for the sort below. */
struct staged_at {
    rg_row_t row;
    size_t at;
};

static int staged_cmp(const void *pa, const void *pb)
{
    const struct staged_at *a = pa, *b = pb;
    if (a->row.key != b->row.key)
        return a->row.key < b->row.key ? -1 : 1;
    if (a->row.key2 != b->row.key2)
        return a->row.key2 < b->row.key2 ? -1 : 1;
    return a->at < b->at ? -1 : a->at > b->at;
}

/* The rows arrive in event order, which is random over the table's
 * (key, key2) primary key: each upsert would descend to a different leaf.
 * Upserting them sorted by the key walks the tree once per call, and only
 * the last row of a pair (the largest `at` among equals) needs writing:
 * the same table as the rows in order, as the contract says, in fewer and
 * cheaper steps. */
static int sq_write_staged(void *self, const rg_row_t *rows, size_t n,
                           char *errstr, size_t size)
{
    sqlite_sink *s = self;
    if (n > s->sorted_cap) {
        size_t cap = n > 2 * s->sorted_cap ? n : 2 * s->sorted_cap;
        struct staged_at *p = realloc(s->sorted, cap * sizeof(*p));
        if (p == NULL) {
            seterr(errstr, size, "sqlite: out of memory sorting %zu staged "
                   "rows", n);
            return RG_ENOMEM;
        }
        s->sorted = p;
        s->sorted_cap = cap;
    }
    for (size_t i = 0; i < n; i++)
        s->sorted[i] = (struct staged_at){rows[i], i};
    qsort(s->sorted, n, sizeof(*s->sorted), staged_cmp);
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        const rg_row_t *r = &s->sorted[i].row;
        if (i + 1 < n && s->sorted[i + 1].row.key == r->key &&
            s->sorted[i + 1].row.key2 == r->key2)
            continue; /* a later row of this pair wins */
        int64_t t = r->ts ? r->ts : now;
        sqlite3_bind_int64(s->up_action, 1, r->key);
        sqlite3_bind_int64(s->up_action, 2, r->key2);
        sqlite3_bind_int64(s->up_action, 3, r->value);
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
            if (owner == c->owner_epoch && next == offs[i].next_offset &&
                next == c->claimed_next)
                continue; /* back where the claim found it: no change */
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

/* Runs fmt (every %s is table t's name) with text parameters ?1.. from
 * args; for a SELECT, the first row's first two columns into out[0..1]
 * (NULL: "" each). SQLITE_DONE/ROW result, or the error code. */
static int exec_t(sqlite_sink *s, const char *fmt, int t, int nargs,
                  const char *const *args, char out[2][256])
{
    char sql[512];
    const char *nm = s->table[t];
    snprintf(sql, sizeof(sql), fmt, nm, nm, nm, nm);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    for (int i = 0; i < nargs; i++)
        sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (out != NULL) {
        out[0][0] = out[1][0] = '\0';
        if (rc == SQLITE_ROW)
            for (int c = 0; c < 2; c++) {
                const unsigned char *v = sqlite3_column_text(st, c);
                snprintf(out[c], 256, "%s", v ? (const char *)v : "");
            }
    }
    sqlite3_finalize(st);
    return rc;
}

/*
 * Ownership (inside the claim's transaction): the merged tables belong to
 * one job, (group.id, topic), recorded at its first claim. Another job is
 * refused, unless sink.handover.from names the owner: then the owner's
 * positions are copied to our group and fenced (owner_epoch + 1), and the
 * ownership moves. 0, RG_ESTATE (refused; errstr says who owns it and
 * what to do) or the SQLite error mapped.
 */
static int own(sqlite_sink *s, char *errstr, size_t size)
{
    char now[32], got[2][256], since[2][256];
    snprintf(now, sizeof(now), "%lld", (long long)now_ms());
    const char *a1[] = {s->group, s->topic, now};
    int rc = exec_t(s, "INSERT OR IGNORE INTO %s VALUES ('owner.group', ?1, "
                       "0, ?3), ('owner.topic', ?2, 0, ?3)", T_META, 3, a1,
                    NULL);
    if (rc != SQLITE_DONE)
        return fail(s->db, rc, "ownership", errstr, size);
    rc = exec_t(s, "SELECT (SELECT v FROM %s WHERE k = 'owner.group'), "
                   "(SELECT v FROM %s WHERE k = 'owner.topic')", T_META, 0,
                NULL, got);
    if (rc != SQLITE_ROW)
        return fail(s->db, rc, "ownership", errstr, size);
    if (strcmp(got[0], s->group) == 0 && strcmp(got[1], s->topic) == 0)
        return 0;
    exec_t(s, "SELECT datetime(mtime / 1000, 'unixepoch'), '' FROM %s "
              "WHERE k = 'owner.group'", T_META, 0, NULL, since);
    if (s->handover[0] == '\0' || strcmp(got[0], s->handover) != 0 ||
        strcmp(got[1], s->topic) != 0) {
        seterr(errstr, size, "sqlite: the tables in %s belong to consumer "
               "group %s, topic %s (since %s UTC): a second job writing "
               "them would count every event twice. To move the job to "
               "group %s deliberately, stop %s's processes, then start "
               "this one with --handover-from %s (docs/OPERATIONS.md)",
               s->path, got[0], got[1], since[0], s->group, got[0], got[0]);
        return RG_ESTATE;
    }
    const char *a2[] = {s->handover, s->topic, s->group, now};
    if ((rc = exec_t(s, "INSERT OR IGNORE INTO %s SELECT ?3, topic, "
                        "partition, next_offset, 0 FROM %s WHERE "
                        "consumer_group = ?1 AND topic = ?2", T_OFFSETS, 3,
                     a2, NULL)) != SQLITE_DONE ||
        (rc = exec_t(s, "UPDATE %s SET owner_epoch = owner_epoch + 1 WHERE "
                        "consumer_group = ?1 AND topic = ?2", T_OFFSETS, 2,
                     a2, NULL)) != SQLITE_DONE)
        return fail(s->db, rc, "handover", errstr, size);
    const char *a3[] = {s->group, now};
    if ((rc = exec_t(s, "UPDATE %s SET v = ?1, mtime = ?2 WHERE k = "
                        "'owner.group'", T_META, 2, a3, NULL)) !=
        SQLITE_DONE)
        return fail(s->db, rc, "handover", errstr, size);
    if (s->log != NULL) {
        char line[1400];
        snprintf(line, sizeof(line), "handover: the tables in %s move from "
                 "consumer group %s to %s, which continues at %s's stored "
                 "positions; %s is fenced", s->path, got[0], s->group,
                 got[0], got[0]);
        s->log(s->log_opaque, RG_LOG_WARN, "sqlite", line);
    }
    return 0;
}

static int sq_claim(void *self, const int32_t *parts, size_t n,
                    int64_t *next_out, char *errstr, size_t size)
{
    sqlite_sink *s = self;
    static const char *const fmt[] = {
        "INSERT OR IGNORE INTO %s VALUES (?1, ?2, ?3, -1, 0)",
        "UPDATE %s SET owner_epoch = owner_epoch + 1 "
        "WHERE consumer_group = ?1 AND topic = ?2 AND partition = ?3",
        "SELECT next_offset, owner_epoch FROM %s "
        "WHERE consumer_group = ?1 AND topic = ?2 AND partition = ?3",
    };
    char sql[3][256];
    for (int i = 0; i < 3; i++)
        snprintf(sql[i], sizeof(sql[i]), fmt[i], s->table[T_OFFSETS]);
    sqlite3_stmt *st[3] = {NULL, NULL, NULL};
    int64_t *epochs = malloc(sizeof(int64_t) * (n ? n : 1));
    if (epochs == NULL) {
        seterr(errstr, size, "sqlite: out of memory");
        return RG_ENOMEM;
    }
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        int orc = own(s, errstr, size);
        if (orc != 0) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            free(epochs);
            return orc;
        }
    }
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
        if (rg_claims_put(&s->claims, parts[i], epochs[i], next_out[i]) !=
            0) {
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
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT state FROM %s WHERE video_id = ?1 "
             "AND user_id = ?2", s->table[T_STAGED]);
    int rc = sqlite3_open_v2(s->path, &r->db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(r->db, 5000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(r->db, s->cache_pragma, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &r->lookup, NULL);
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
    char sql[256];
    if (table == RG_SINK_MERGED)
        snprintf(sql, sizeof(sql), "SELECT video_id, 0, count, mtime FROM %s",
                 s->table[T_MERGED]);
    else if (table == RG_SINK_STAGED && s->table[T_STAGED][0])
        snprintf(sql, sizeof(sql), "SELECT video_id, user_id, state, mtime "
                 "FROM %s", s->table[T_STAGED]);
    else {
        seterr(errstr, size, "sqlite: no such table to scan (%d)", table);
        return RG_EINVAL;
    }
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

/* A blob parameter; a zero-length one is bound as an empty blob, never
 * as NULL (the payload column is NOT NULL, a NULL pointer binds NULL). */
static void bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
    sqlite3_bind_blob64(st, i, len ? p : "", len, SQLITE_STATIC);
}

/* In order: delayed and dead rows upsert every column but replayed_ms
 * (the CLI's), cleared rows delete the delayed row of their event. The
 * statements run in the epoch's transaction, so they commit or roll back
 * with its rows and offsets. */
static int sq_write_failures(void *self, const rg_failure_t *rows, size_t n,
                             char *errstr, size_t size)
{
    sqlite_sink *s = self;
    int rc = rg__failures_check("sqlite", rows, n, errstr, size);
    if (rc != 0)
        return rc;
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        const rg_failure_t *f = &rows[i];
        sqlite3_stmt *st;
        if (f->state == RG_FAILURE_CLEARED) {
            st = s->del_failure;
            sqlite3_bind_int(st, 1, f->partition);
            sqlite3_bind_int64(st, 2, f->offset);
            if ((rc = run(s, st, "clear a delayed event", errstr, size)) != 0)
                return rc;
            continue;
        }
        st = s->up_failure;
        sqlite3_bind_int(st, 1, f->partition);
        sqlite3_bind_int64(st, 2, f->offset);
        sqlite3_bind_int(st, 3, f->state);
        sqlite3_bind_int64(st, 4, (int64_t)f->key);
        if (f->msg_key != NULL)
            bind_blob(st, 5, f->msg_key, f->msg_key_len);
        else
            sqlite3_bind_null(st, 5);
        sqlite3_bind_int64(st, 6, f->attempts);
        sqlite3_bind_int64(st, 7, f->flags);
        sqlite3_bind_int64(st, 8, f->first_ms);
        sqlite3_bind_int64(st, 9, f->last_ms);
        sqlite3_bind_int64(st, 10, f->due_ms);
        sqlite3_bind_text(st, 11, f->reasons ? f->reasons : "",
                          (int)rg__failure_reasons_len(f->reasons),
                          SQLITE_STATIC);
        bind_blob(st, 12, f->payload, f->payload_len);
        sqlite3_bind_int64(st, 13, f->event_len);
        sqlite3_bind_int64(st, 14, now);
        rc = run(s, st, f->state == RG_FAILURE_DEAD ? "write a dead letter"
                                                    : "write a delayed event",
                 errstr, size);
        /* the row's memory is the caller's: no pointer outlives the call */
        sqlite3_clear_bindings(st);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Runs one prepared scan to its end, calling cb per row; the column
 * pointers are SQLite's, valid until the next step. */
static int scan_failures_run(sqlite_sink *s, sqlite3_stmt *st,
                             void (*cb)(void *arg, const rg_failure_t *row),
                             void *arg, char *errstr, size_t size)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rg_failure_t f = {
            .partition = sqlite3_column_int(st, RG_FC_PARTITION),
            .offset = sqlite3_column_int64(st, RG_FC_OFFSET),
            .state = sqlite3_column_int(st, RG_FC_STATE),
            .key = (uint64_t)sqlite3_column_int64(st, RG_FC_ROUTE_KEY),
            .attempts = (uint32_t)sqlite3_column_int64(st, RG_FC_ATTEMPTS),
            .flags = (uint32_t)sqlite3_column_int64(st, RG_FC_FLAGS),
            .first_ms = sqlite3_column_int64(st, RG_FC_FIRST_MS),
            .last_ms = sqlite3_column_int64(st, RG_FC_LAST_MS),
            .due_ms = sqlite3_column_int64(st, RG_FC_DUE_MS),
            .event_len = (uint32_t)sqlite3_column_int64(st, RG_FC_EVENT_LEN),
        };
        if (sqlite3_column_type(st, RG_FC_MSG_KEY) != SQLITE_NULL) {
            /* a zero-length blob reads back as NULL: keep "present" */
            f.msg_key = sqlite3_column_blob(st, RG_FC_MSG_KEY);
            f.msg_key_len = (size_t)sqlite3_column_bytes(st, RG_FC_MSG_KEY);
            if (f.msg_key == NULL)
                f.msg_key = "";
        }
        f.reasons = (const char *)sqlite3_column_text(st, RG_FC_REASONS);
        if (f.reasons == NULL)
            f.reasons = "";
        f.payload = sqlite3_column_blob(st, RG_FC_PAYLOAD);
        f.payload_len = (size_t)sqlite3_column_bytes(st, RG_FC_PAYLOAD);
        cb(arg, &f);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(s->db, rc, "scan failures", errstr,
                                        size);
}

/* Per partition asked for (sorted), or the whole table: both in
 * (partition_id, offset_id) order, the primary key's. */
static int sq_scan_failures(void *self, int state, const int32_t *parts,
                            size_t nparts,
                            void (*cb)(void *arg, const rg_failure_t *row),
                            void *arg, char *errstr, size_t size)
{
    sqlite_sink *s = self;
    int32_t *p;
    size_t np;
    int rc = rg__failures_filter("sqlite", state, parts, nparts, &p, &np,
                                 errstr, size);
    if (rc != 0)
        return rc;
    bool unfwd = state == RG_FAILURE_UNFORWARDED;
    sqlite3_stmt *all = unfwd ? s->sel_unfwd : s->sel_failures;
    sqlite3_stmt *one = unfwd ? s->sel_unfwd_p : s->sel_failures_p;
    if (nparts == 0) {
        if (!unfwd)
            sqlite3_bind_int(all, 1, state);
        rc = scan_failures_run(s, all, cb, arg, errstr, size);
    }
    for (size_t i = 0; i < np && rc == 0; i++) {
        if (!unfwd)
            sqlite3_bind_int(one, 1, state);
        sqlite3_bind_int(one, 2, p[i]);
        rc = scan_failures_run(s, one, cb, arg, errstr, size);
    }
    free(p);
    return rc;
}

/* The epoch's changed producer marks, in its transaction. */
static int sq_write_marks(void *self, const rg_mark_t *marks, size_t n,
                          char *errstr, size_t size)
{
    sqlite_sink *s = self;
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = s->up_mark;
        sqlite3_bind_int(st, 1, marks[i].partition);
        sqlite3_bind_int64(st, 2, (int64_t)marks[i].producer_id);
        sqlite3_bind_int64(st, 3, (int64_t)marks[i].hi);
        sqlite3_bind_blob(st, 4, marks[i].seen, (int)sizeof(marks[i].seen),
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now);
        int rc = run(s, st, "write a producer mark", errstr, size);
        sqlite3_clear_bindings(st);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int sq_scan_marks(void *self, const int32_t *parts, size_t nparts,
                         void (*cb)(void *arg, const rg_mark_t *mark),
                         void *arg, char *errstr, size_t size)
{
    sqlite_sink *s = self;
    sqlite3_stmt *st = s->sel_marks;
    for (size_t i = 0; i < nparts; i++) {
        sqlite3_bind_int(st, 1, parts[i]);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            rg_mark_t m = {
                .partition = parts[i],
                .producer_id = (uint64_t)sqlite3_column_int64(st, 0),
                .hi = (uint64_t)sqlite3_column_int64(st, 1),
            };
            const void *b = sqlite3_column_blob(st, 2);
            if (b == NULL ||
                sqlite3_column_bytes(st, 2) != (int)sizeof(m.seen)) {
                sqlite3_reset(st);
                seterr(errstr, size, "sqlite: %s: the mark of partition %d, "
                       "producer %016llx has a seen window of %d bytes, not "
                       "%zu", s->table[T_MARKS], (int)parts[i],
                       (unsigned long long)m.producer_id,
                       sqlite3_column_bytes(st, 2), sizeof(m.seen));
                return RG_ESTATE;
            }
            memcpy(m.seen, b, sizeof(m.seen));
            cb(arg, &m);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return fail(s->db, rc, "scan producer marks", errstr, size);
    }
    return 0;
}

static void sq_close(void *self)
{
    sqlite_sink *s = self;
    if (s == NULL)
        return;
    sqlite3_stmt *sts[] = {s->begin, s->commit, s->rollback, s->up_count,
                           s->up_bytes, s->up_action, s->up_offset,
                           s->sel_offset, s->up_version, s->sel_version,
                           s->up_failure, s->del_failure, s->sel_failures,
                           s->sel_failures_p, s->sel_unfwd, s->sel_unfwd_p,
                           s->up_mark, s->sel_marks};
    for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++)
        sqlite3_finalize(sts[i]);
    sqlite3_close(s->db);
    free(s->path);
    free(s->group);
    free(s->topic);
    free(s->handover);
    free(s->sorted);
    for (int t = 0; t < T__COUNT; t++)
        free(s->table[t]);
    rg_claims_free(&s->claims);
    free(s);
}

int rg_sink_sqlite_open(const rg_conf_t *given, unsigned flags,
                        rg_sink_t *out, char *errstr, size_t size)
{
    /* our own rows, with their defaults where the caller set none */
    rg_conf_t *conf = rg_conf_dup(given);
    if (conf == NULL ||
        rg_conf_add_table(conf, &sqlite_table, errstr, size) != 0) {
        if (conf == NULL)
            seterr(errstr, size, "sqlite: out of memory");
        rg_conf_destroy(conf);
        return conf == NULL ? RG_ENOMEM : RG_EINVAL;
    }
    const char *path = rg_conf_get_str(conf, "sqlite.path");
    if (path[0] == '\0') {
        seterr(errstr, size, "sqlite.path: not set (which database file?)");
        rg_conf_destroy(conf);
        return RG_EINVAL;
    }
    sqlite_sink *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        seterr(errstr, size, "sqlite: out of memory");
        rg_conf_destroy(conf);
        return RG_ENOMEM;
    }
    static const char *const names[T__COUNT] = {
        "sink.table.merged", "sink.table.merged_bytes", "sink.table.staged",
        "sink.table.offsets", "sink.table.meta", "sink.table.failures",
        "sink.table.producers"};
    int rc = 0;
    bool ok = true;
    for (int t = 0; t < T__COUNT; t++)
        ok &= (s->table[t] = strdup(rg_conf_get_str(conf, names[t]))) != NULL;
    s->path = strdup(path);
    s->group = strdup(rg_conf_get_str(conf, "group.id"));
    s->topic = strdup(rg_conf_get_str(conf, "topic"));
    s->handover = strdup(rg_conf_get_str(conf, "sink.handover.from"));
    bool versioned = rg_conf_get_int(conf, "sink.version") != 0;
    snprintf(s->cache_pragma, sizeof(s->cache_pragma),
             "PRAGMA cache_size=-%lld",
             (long long)rg_conf_get_int(conf, "sqlite.cache.mb") * 1024);
    s->log = rg_conf_log_cb(conf, &s->log_opaque);
    rg_conf_destroy(conf);
    if (!ok || !s->path || !s->group || !s->topic || !s->handover) {
        seterr(errstr, size, "sqlite: out of memory");
        rc = RG_ENOMEM;
        goto out;
    }
    int src = sqlite3_open_v2(s->path, &s->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              NULL);
    if (src != SQLITE_OK) {
        seterr(errstr, size, "sqlite: cannot open %s: %s", s->path,
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
    if ((src = sqlite3_exec(s->db, s->cache_pragma, NULL, NULL, NULL)) !=
        SQLITE_OK) {
        rc = fail(s->db, src, "cannot set the cache size", errstr, size);
        goto out;
    }
    if (flags & RG_SINK_INIT_SCHEMA)
        for (int t = 0; t < T__COUNT; t++) {
            if (s->table[t][0] == '\0')
                continue;
            char sql[1024];
            snprintf(sql, sizeof(sql), shapes[t].create, s->table[t]);
            if ((src = sqlite3_exec(s->db, sql, NULL, NULL, NULL)) !=
                SQLITE_OK) {
                rc = fail(s->db, src, "create schema", errstr, size);
                goto out;
            }
            /* the dead letters still to forward (dlq.topic), found
             * without reading the others */
            if (t == T_FAILURES) {
                snprintf(sql, sizeof(sql), "CREATE INDEX IF NOT EXISTS "
                         "%s_unforwarded ON %s (state, forwarded_ms, "
                         "partition_id, offset_id)", s->table[t],
                         s->table[t]);
                if ((src = sqlite3_exec(s->db, sql, NULL, NULL, NULL)) !=
                    SQLITE_OK) {
                    rc = fail(s->db, src, "create schema", errstr, size);
                    goto out;
                }
            }
        }
    if ((rc = check_schema(s, errstr, size)) != 0)
        goto out;
    if ((rc = prep(s, "BEGIN IMMEDIATE", &s->begin, errstr, size)) ||
        (rc = prep(s, "COMMIT", &s->commit, errstr, size)) ||
        (rc = prep(s, "ROLLBACK", &s->rollback, errstr, size)) ||
        (rc = prep_t(s, "INSERT INTO %s (video_id, count, mtime, ctime) "
                        "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (video_id) DO "
                        "UPDATE SET count = count + excluded.count, "
                        "mtime = excluded.mtime",
                     T_MERGED, &s->up_count, errstr, size)) ||
        (s->table[T_BYTES][0] &&
         (rc = prep_t(s, "INSERT INTO %s (key_bytes, count, mtime, ctime) "
                         "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (key_bytes) DO "
                         "UPDATE SET count = count + excluded.count, "
                         "mtime = excluded.mtime",
                      T_BYTES, &s->up_bytes, errstr, size))) ||
        (s->table[T_STAGED][0] &&
         (rc = prep_t(s, "INSERT INTO %s (video_id, user_id, state, "
                         "mtime, ctime) VALUES (?1, ?2, ?3, ?4, ?4) ON "
                         "CONFLICT (video_id, user_id) DO UPDATE SET "
                         "state = excluded.state, mtime = excluded.mtime",
                      T_STAGED, &s->up_action, errstr, size))) ||
        (rc = prep_t(s, "UPDATE %s SET next_offset = ?1 WHERE "
                        "consumer_group = ?4 AND topic = ?5 AND "
                        "partition = ?2 AND owner_epoch = ?3 AND "
                        "next_offset <> ?1",
                     T_OFFSETS, &s->up_offset, errstr, size)) ||
        (rc = prep_t(s, "SELECT next_offset, owner_epoch FROM %s WHERE "
                        "consumer_group = ?2 AND topic = ?3 AND "
                        "partition = ?1",
                     T_OFFSETS, &s->sel_offset, errstr, size)) ||
        (versioned &&
         ((rc = prep_t(s, "INSERT INTO %s (k, v, n, mtime) VALUES "
                          "('version', '1', 1, ?1) ON CONFLICT (k) DO UPDATE "
                          "SET n = n + 1, v = CAST(n + 1 AS TEXT), "
                          "mtime = excluded.mtime",
                       T_META, &s->up_version, errstr, size)) ||
          (rc = prep_t(s, "SELECT n FROM %s WHERE k = 'version'", T_META,
                       &s->sel_version, errstr, size)))))
        goto out;
    bool failures = s->table[T_FAILURES][0] != '\0';
    if (failures &&
        ((rc = prep_t(s, "INSERT INTO %s (partition_id, offset_id, state, "
                         "route_key, msg_key, attempts, flags, first_ms, "
                         "last_ms, due_ms, reasons, payload, event_len, "
                         "mtime) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                         "?10, ?11, ?12, ?13, ?14) ON CONFLICT (partition_id, "
                         "offset_id) DO UPDATE SET state = excluded.state, "
                         "route_key = excluded.route_key, msg_key = "
                         "excluded.msg_key, attempts = excluded.attempts, "
                         "flags = excluded.flags, first_ms = "
                         "excluded.first_ms, last_ms = excluded.last_ms, "
                         "due_ms = excluded.due_ms, reasons = "
                         "excluded.reasons, payload = excluded.payload, "
                         "event_len = excluded.event_len, mtime = "
                         "excluded.mtime",
                      T_FAILURES, &s->up_failure, errstr, size)) ||
         (rc = prep_t(s, "DELETE FROM %s WHERE partition_id = ?1 AND "
                         "offset_id = ?2 AND state = 1",
                      T_FAILURES, &s->del_failure, errstr, size)) ||
         (rc = prep_t(s, "SELECT " RG_FAILURE_COLS " FROM %s WHERE (?1 = 0 "
                         "OR state = ?1) ORDER BY partition_id, offset_id",
                      T_FAILURES, &s->sel_failures, errstr, size)) ||
         (rc = prep_t(s, "SELECT " RG_FAILURE_COLS " FROM %s WHERE "
                         "partition_id = ?2 AND (?1 = 0 OR state = ?1) "
                         "ORDER BY offset_id",
                      T_FAILURES, &s->sel_failures_p, errstr, size)) ||
         /* the index (state, forwarded_ms, partition_id, offset_id)
          * answers these without reading the forwarded rows */
         (rc = prep_t(s, "SELECT " RG_FAILURE_COLS " FROM %s WHERE state = "
                         "2 AND forwarded_ms IS NULL ORDER BY partition_id, "
                         "offset_id",
                      T_FAILURES, &s->sel_unfwd, errstr, size)) ||
         (rc = prep_t(s, "SELECT " RG_FAILURE_COLS " FROM %s WHERE state = "
                         "2 AND forwarded_ms IS NULL AND partition_id = ?2 "
                         "ORDER BY offset_id",
                      T_FAILURES, &s->sel_unfwd_p, errstr, size))))
        goto out;
    bool marks = s->table[T_MARKS][0] != '\0';
    /* ids and seqs are 64-bit unsigned: stored as their signed bits */
    if (marks &&
        ((rc = prep_t(s, "INSERT INTO %s (partition_id, producer_id, hi, "
                         "seen, mtime) VALUES (?1, ?2, ?3, ?4, ?5) ON "
                         "CONFLICT (partition_id, producer_id) DO UPDATE SET "
                         "hi = excluded.hi, seen = excluded.seen, mtime = "
                         "excluded.mtime",
                      T_MARKS, &s->up_mark, errstr, size)) ||
         /* oldest first: the newest are the last a full table keeps */
         (rc = prep_t(s, "SELECT producer_id, hi, seen FROM %s WHERE "
                         "partition_id = ?1 ORDER BY mtime",
                      T_MARKS, &s->sel_marks, errstr, size))))
        goto out;
    sqlite3_bind_text(s->sel_offset, 2, s->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->sel_offset, 3, s->topic, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->up_offset, 4, s->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->up_offset, 5, s->topic, -1, SQLITE_STATIC);
    bool staged = s->table[T_STAGED][0] != '\0';
    *out = (rg_sink_t){
        .begin = sq_begin,
        .write_merged = sq_write_merged,
        .write_merged_bytes = s->table[T_BYTES][0] ? sq_write_bytes : NULL,
        .write_staged = staged ? sq_write_staged : NULL,
        .write_offsets = sq_write_offsets,
        .commit = sq_commit,
        .rollback = sq_rollback,
        .claim = sq_claim,
        .reader_open = staged ? sq_reader_open : NULL,
        .lookup = staged ? sq_lookup : NULL,
        .reader_close = staged ? sq_reader_close : NULL,
        .scan = sq_scan,
        .write_failures = failures ? sq_write_failures : NULL,
        .scan_failures = failures ? sq_scan_failures : NULL,
        .write_marks = marks ? sq_write_marks : NULL,
        .scan_marks = marks ? sq_scan_marks : NULL,
        .close = sq_close,
        .version = versioned ? sq_version : NULL,
        .self = s,
    };
    return 0;
out:
    sq_close(s);
    return rc;
}
