/*
 * serve_db.c - versioned batch reads of counts and states (serve_db.h),
 * for SQLite and MariaDB/MySQL.
 *
 * The SQL, with T the version table, M the merged table, S the staged
 * table and a chunk of k keys:
 *   version   SELECT v FROM T WHERE k = 'version'
 *   counts    SELECT 0, v FROM T WHERE k = 'version'
 *             UNION ALL SELECT video_id, count FROM M WHERE video_id IN
 *             (?, ... k)
 *   states    SELECT 0, 0, v FROM T WHERE k = 'version'
 *             UNION ALL SELECT video_id, user_id, state FROM S WHERE
 *             (video_id, user_id) IN ((?, ?), ... k)       -- MariaDB
 *             ... WHERE (video_id = ? AND user_id = ?) OR ...  -- SQLite
 *             (a row-value IN list makes SQLite scan the table; an OR of
 *             key equalities is one index probe per term)
 * The version row is told apart by its first column, 0 (ids are >= 1).
 * Unversioned handles leave out the UNION's first half.
 */
#define _GNU_SOURCE
#include "serve_db.h"
#include <mysql.h>
#include <mysqld_error.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"

#define CLASSES 3
static const size_t class_size[CLASSES] = {1, 8, RG_SERVE_DB_CHUNK};

enum { Q_COUNTS = 0, Q_STATES = 1 };

struct rg_serve_db_s {
    bool mysql, versioned;
    char *vtable, *mtable, *stable;
    /* SQLite */
    sqlite3 *lite;
    sqlite3_stmt *l_ver, *l_q[2][CLASSES];
    /* MariaDB */
    rg_conf_t *conf; /* a copy, for reconnecting */
    MYSQL *my;
    MYSQL_STMT *m_ver, *m_q[2][CLASSES];
    MYSQL_BIND in[2 * RG_SERVE_DB_CHUNK], out[3];
    long long inv[2 * RG_SERVE_DB_CHUNK], outv[3];
    my_bool outnull[3];
};

static size_t class_of(size_t n)
{
    for (size_t c = 0; c < CLASSES; c++)
        if (n <= class_size[c])
            return c;
    return CLASSES - 1;
}

/* The statement text for query q over k keys into buf. */
static void build_sql(const rg_serve_db_t *d, int q, size_t k, char *buf,
                      size_t size)
{
    size_t len = 0;
#define PUT(...)                                                           \
    len += (size_t)snprintf(buf + len, len < size ? size - len : 0,        \
                            __VA_ARGS__)
    const char *q_ = d->mysql ? "`" : "\"";
    if (d->versioned)
        PUT("SELECT 0, %sv FROM %s%s%s WHERE k = 'version' UNION ALL ",
            q == Q_STATES ? "0, " : "", q_, d->vtable, q_);
    if (q == Q_COUNTS) {
        PUT("SELECT video_id, count FROM %s%s%s WHERE video_id IN (", q_,
            d->mtable, q_);
        for (size_t i = 0; i < k; i++)
            PUT("%s?", i ? ", " : "");
        PUT(")");
    } else if (d->mysql) {
        PUT("SELECT video_id, user_id, state FROM `%s` WHERE (video_id, "
            "user_id) IN (", d->stable);
        for (size_t i = 0; i < k; i++)
            PUT("%s(?, ?)", i ? ", " : "");
        PUT(")");
    } else {
        PUT("SELECT video_id, user_id, state FROM \"%s\" WHERE ", d->stable);
        for (size_t i = 0; i < k; i++)
            PUT("%s(video_id = ? AND user_id = ?)", i ? " OR " : "");
    }
#undef PUT
}

/* ---- SQLite --------------------------------------------------------------- */

static int lite_open(rg_serve_db_t *d, const rg_conf_t *conf, char *errstr,
                     size_t size)
{
    const char *path = rg_conf_get_str(conf, "sqlite.path");
    if (sqlite3_open_v2(path, &d->lite, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        snprintf(errstr, size, "sqlite: cannot open %s: %s", path,
                 d->lite ? sqlite3_errmsg(d->lite) : "out of memory");
        return RG_EIO;
    }
    sqlite3_busy_timeout(d->lite, 2000);
    char sql[8192];
    if (d->versioned) {
        snprintf(sql, sizeof(sql), "SELECT v FROM \"%s\" WHERE k = "
                 "'version'", d->vtable);
        if (sqlite3_prepare_v2(d->lite, sql, -1, &d->l_ver, NULL) !=
            SQLITE_OK)
            goto bad;
    }
    for (int q = 0; q < 2; q++)
        for (size_t c = 0; c < CLASSES; c++) {
            build_sql(d, q, class_size[c], sql, sizeof(sql));
            if (sqlite3_prepare_v2(d->lite, sql, -1, &d->l_q[q][c], NULL) !=
                SQLITE_OK)
                goto bad;
        }
    return 0;
bad:
    snprintf(errstr, size, "sqlite: %s in %s", sqlite3_errmsg(d->lite),
             path);
    return strstr(sqlite3_errmsg(d->lite), "no such table") ? RG_ENOENT
                                                            : RG_EIO;
}

/* Runs query q over keys (1 or 2 ints each) and hands each row to row(). */
static int lite_run(rg_serve_db_t *d, int q, const int64_t *k1,
                    const int64_t *k2, size_t n, int64_t *version,
                    void (*row)(void *, const int64_t *), void *arg,
                    char *errstr, size_t size)
{
    size_t c = class_of(n);
    sqlite3_stmt *st = d->l_q[q][c];
    int col = 1;
    for (size_t i = 0; i < class_size[c]; i++) {
        size_t j = i < n ? i : n - 1; /* pad with the last key */
        sqlite3_bind_int64(st, col++, k1[j]);
        if (q == Q_STATES)
            sqlite3_bind_int64(st, col++, k2[j]);
    }
    int rc;
    *version = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t v[3];
        for (int i = 0; i < (q == Q_STATES ? 3 : 2); i++)
            v[i] = sqlite3_column_int64(st, i);
        if (v[0] == 0)
            *version = v[q == Q_STATES ? 2 : 1];
        else
            row(arg, v);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        snprintf(errstr, size, "sqlite: %s", sqlite3_errmsg(d->lite));
        return RG_EIO;
    }
    return 0;
}

/* ---- MariaDB ---------------------------------------------------------------- */

static void my_close(rg_serve_db_t *d)
{
    if (d->m_ver)
        mysql_stmt_close(d->m_ver);
    d->m_ver = NULL;
    for (int q = 0; q < 2; q++)
        for (size_t c = 0; c < CLASSES; c++) {
            if (d->m_q[q][c])
                mysql_stmt_close(d->m_q[q][c]);
            d->m_q[q][c] = NULL;
        }
    if (d->my)
        mysql_close(d->my);
    d->my = NULL;
}

static MYSQL_STMT *my_prepare(rg_serve_db_t *d, const char *sql)
{
    MYSQL_STMT *st = mysql_stmt_init(d->my);
    if (st != NULL && mysql_stmt_prepare(st, sql, strlen(sql)) == 0)
        return st;
    if (st != NULL)
        mysql_stmt_close(st);
    return NULL;
}

/* A connection with the mysql.* properties (as the sink's), bounded by
 * a connect timeout so that a dead server fails a read, not hangs it. */
static MYSQL *my_dial(const rg_conf_t *conf, char *errstr, size_t size)
{
    MYSQL *db = mysql_init(NULL);
    const char *sock = rg_conf_get_str(conf, "mysql.socket");
    const char *pw = rg_conf_get_str(conf, "mysql.password");
    unsigned timeout = 5;
    if (db != NULL) {
        mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
        mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &timeout);
        mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    }
    if (db == NULL ||
        !mysql_real_connect(db, sock[0] ? "localhost"
                                        : rg_conf_get_str(conf, "mysql.host"),
                            rg_conf_get_str(conf, "mysql.user"),
                            pw[0] ? pw : NULL,
                            rg_conf_get_str(conf, "mysql.database"),
                            (unsigned)rg_conf_get_int(conf, "mysql.port"),
                            sock[0] ? sock : NULL, 0)) {
        snprintf(errstr, size, "mysql: cannot connect: %s",
                 db ? mysql_error(db) : "out of memory");
        if (db)
            mysql_close(db);
        return NULL;
    }
    return db;
}

static int my_connect(rg_serve_db_t *d, char *errstr, size_t size)
{
    if ((d->my = my_dial(d->conf, errstr, size)) == NULL)
        return RG_EIO;
    char sql[16384];
    if (mysql_query(d->my, "SET SESSION TRANSACTION ISOLATION LEVEL "
                           "REPEATABLE READ") != 0)
        goto bad;
    if (d->versioned) {
        snprintf(sql, sizeof(sql), "SELECT v FROM `%s` WHERE k = 'version'",
                 d->vtable);
        if ((d->m_ver = my_prepare(d, sql)) == NULL)
            goto bad;
    }
    for (int q = 0; q < 2; q++)
        for (size_t c = 0; c < CLASSES; c++) {
            build_sql(d, q, class_size[c], sql, sizeof(sql));
            if ((d->m_q[q][c] = my_prepare(d, sql)) == NULL)
                goto bad;
        }
    return 0;
bad:;
    unsigned no = mysql_errno(d->my);
    snprintf(errstr, size, "mysql: %s", mysql_error(d->my));
    my_close(d);
    return no == ER_NO_SUCH_TABLE ? RG_ENOENT : RG_EIO;
}

static int my_run(rg_serve_db_t *d, int q, const int64_t *k1,
                  const int64_t *k2, size_t n, int64_t *version,
                  void (*row)(void *, const int64_t *), void *arg,
                  char *errstr, size_t size)
{
    int rc;
    if (d->my == NULL && (rc = my_connect(d, errstr, size)) != 0)
        return rc == RG_ENOENT ? RG_ENOENT : RG_EIO;
    size_t c = class_of(n);
    MYSQL_STMT *st = d->m_q[q][c];
    size_t nin = 0;
    for (size_t i = 0; i < class_size[c]; i++) {
        size_t j = i < n ? i : n - 1;
        d->inv[nin++] = k1[j];
        if (q == Q_STATES)
            d->inv[nin++] = k2[j];
    }
    memset(d->in, 0, nin * sizeof(d->in[0]));
    for (size_t i = 0; i < nin; i++) {
        d->in[i].buffer_type = MYSQL_TYPE_LONGLONG;
        d->in[i].buffer = &d->inv[i];
    }
    int ncol = q == Q_STATES ? 3 : 2;
    memset(d->out, 0, sizeof(d->out));
    for (int i = 0; i < ncol; i++) {
        d->out[i].buffer_type = MYSQL_TYPE_LONGLONG;
        d->out[i].buffer = &d->outv[i];
        d->out[i].is_null = &d->outnull[i];
    }
    *version = 0;
    if (mysql_stmt_bind_param(st, d->in) || mysql_stmt_execute(st) ||
        mysql_stmt_bind_result(st, d->out))
        goto bad;
    while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
        int64_t v[3];
        for (int i = 0; i < ncol; i++)
            v[i] = d->outnull[i] ? 0 : d->outv[i];
        if (v[0] == 0)
            *version = v[ncol - 1];
        else
            row(arg, v);
    }
    if (rc != MYSQL_NO_DATA)
        goto bad;
    mysql_stmt_free_result(st);
    return 0;
bad:
    snprintf(errstr, size, "mysql: %s", mysql_stmt_error(st)[0]
                                            ? mysql_stmt_error(st)
                                            : mysql_error(d->my));
    my_close(d); /* reconnect at the next call */
    return RG_EIO;
}

/* ---- the handle ------------------------------------------------------------ */

void rg_serve_db_close(rg_serve_db_t *d)
{
    if (d == NULL)
        return;
    my_close(d);
    rg_conf_destroy(d->conf);
    if (d->l_ver)
        sqlite3_finalize(d->l_ver);
    for (int q = 0; q < 2; q++)
        for (size_t c = 0; c < CLASSES; c++)
            if (d->l_q[q][c])
                sqlite3_finalize(d->l_q[q][c]);
    if (d->lite)
        sqlite3_close(d->lite);
    free(d->vtable);
    free(d->mtable);
    free(d->stable);
    free(d);
}

rg_serve_db_t *rg_serve_db_open(const rg_conf_t *conf, bool versioned,
                                int *err, char *errstr, size_t size)
{
    int rc = RG_ENOMEM;
    rg_serve_db_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        goto fail;
    const char *sink = rg_conf_get_str(conf, "sink");
    const char *staged = rg_conf_get_str(conf, "sink.table.staged");
    d->mysql = sink != NULL && strcmp(sink, "mysql") == 0;
    d->versioned = versioned;
    if (sink == NULL || (!d->mysql && strcmp(sink, "sqlite") != 0)) {
        snprintf(errstr, size, "serve: sink=%s has nothing to read (use "
                 "sqlite or mysql)", sink ? sink : "?");
        rc = RG_EINVAL;
        goto fail;
    }
    if (staged == NULL || staged[0] == '\0') {
        snprintf(errstr, size, "serve: sink.table.staged is empty: no "
                 "like states to read");
        rc = RG_EINVAL;
        goto fail;
    }
    const char *vt = rg_conf_get_str(conf, "cache.version.table");
    d->vtable = strdup(vt ? vt : "railgun_meta");
    d->mtable = strdup(rg_conf_get_str(conf, "sink.table.merged"));
    d->stable = strdup(staged);
    if (!d->vtable || !d->mtable || !d->stable)
        goto fail;
    if (d->mysql) {
        if ((d->conf = rg_conf_dup(conf)) == NULL)
            goto fail;
        mysql_library_init(0, NULL, NULL);
        rc = my_connect(d, errstr, size);
    } else {
        rc = lite_open(d, conf, errstr, size);
    }
    if (rc != 0)
        goto fail;
    return d;
fail:
    if (rc == RG_ENOMEM)
        snprintf(errstr, size, "serve: out of memory");
    if (err != NULL)
        *err = rc;
    rg_serve_db_close(d);
    return NULL;
}

struct collect {
    const int64_t *k1, *k2;
    size_t n;
    int64_t *out;
};

static void on_row(void *arg, const int64_t *v)
{
    struct collect *c = arg;
    for (size_t i = 0; i < c->n; i++)
        if (c->k1[i] == v[0] && (c->k2 == NULL || c->k2[i] == v[1]))
            c->out[i] = c->k2 == NULL ? v[1] : v[2];
}

static int run(rg_serve_db_t *d, int q, const int64_t *k1, const int64_t *k2,
               size_t n, int64_t *out, int64_t *version, char *errstr,
               size_t size)
{
    struct collect col = {k1, k2, n, out};
    for (size_t i = 0; i < n; i++)
        out[i] = 0;
    return d->mysql ? my_run(d, q, k1, k2, n, version, on_row, &col, errstr,
                             size)
                    : lite_run(d, q, k1, k2, n, version, on_row, &col,
                               errstr, size);
}

static int version_only(rg_serve_db_t *d, int64_t *version, char *errstr,
                        size_t size)
{
    *version = 0;
    if (!d->versioned)
        return 0;
    if (!d->mysql) {
        int rc = sqlite3_step(d->l_ver);
        if (rc == SQLITE_ROW)
            *version = sqlite3_column_int64(d->l_ver, 0);
        sqlite3_reset(d->l_ver);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            snprintf(errstr, size, "sqlite: %s", sqlite3_errmsg(d->lite));
            return RG_EIO;
        }
        return 0;
    }
    int rc;
    if (d->my == NULL && (rc = my_connect(d, errstr, size)) != 0)
        return RG_EIO;
    memset(d->out, 0, sizeof(d->out[0]));
    d->out[0].buffer_type = MYSQL_TYPE_LONGLONG;
    d->out[0].buffer = &d->outv[0];
    d->out[0].is_null = &d->outnull[0];
    if (mysql_stmt_execute(d->m_ver) ||
        mysql_stmt_bind_result(d->m_ver, d->out))
        goto bad;
    rc = mysql_stmt_fetch(d->m_ver);
    if (rc == 0 && !d->outnull[0])
        *version = d->outv[0];
    if (rc != 0 && rc != MYSQL_NO_DATA)
        goto bad;
    mysql_stmt_free_result(d->m_ver);
    return 0;
bad:
    snprintf(errstr, size, "mysql: %s", mysql_error(d->my));
    my_close(d);
    return RG_EIO;
}

int rg_serve_db_counts(rg_serve_db_t *d, const int64_t *videos, size_t n,
                       int64_t *counts, int64_t *version, char *errstr,
                       size_t size)
{
    if (n == 0)
        return version_only(d, version, errstr, size);
    int64_t oldest = INT64_MAX;
    for (size_t at = 0; at < n; at += RG_SERVE_DB_CHUNK) {
        size_t k = n - at < RG_SERVE_DB_CHUNK ? n - at : RG_SERVE_DB_CHUNK;
        int64_t v;
        int rc = run(d, Q_COUNTS, videos + at, NULL, k, counts + at, &v,
                     errstr, size);
        if (rc != 0)
            return rc;
        if (v < oldest)
            oldest = v;
    }
    *version = oldest;
    return 0;
}

int rg_serve_db_states(rg_serve_db_t *d, const rg_cache_key_t *pairs,
                       size_t n, int64_t *states, int64_t *version,
                       char *errstr, size_t size)
{
    if (n == 0)
        return version_only(d, version, errstr, size);
    int64_t oldest = INT64_MAX;
    int64_t vs[RG_SERVE_DB_CHUNK], us[RG_SERVE_DB_CHUNK];
    for (size_t at = 0; at < n; at += RG_SERVE_DB_CHUNK) {
        size_t k = n - at < RG_SERVE_DB_CHUNK ? n - at : RG_SERVE_DB_CHUNK;
        for (size_t i = 0; i < k; i++) {
            vs[i] = pairs[at + i].video;
            us[i] = pairs[at + i].user;
        }
        int64_t v;
        int rc = run(d, Q_STATES, vs, us, k, states + at, &v, errstr, size);
        if (rc != 0)
            return rc;
        if (v < oldest)
            oldest = v;
    }
    *version = oldest;
    return 0;
}

int rg_serve_db_read_cb(void *opaque, const int64_t *videos, size_t n,
                        int64_t *counts, int64_t *version, char *errstr,
                        size_t size)
{
    return rg_serve_db_counts(opaque, videos, n, counts, version, errstr,
                              size);
}
