/*
 * dlq_store.c - replayed_ms and forwarded_ms of the failures table, on a
 * connection of its
 * own (see dlq_store.h). Table names come from sink.table.failures, which
 * the configuration table checks to be a plain identifier.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlq_store.h"
#include "naive.h"
#include "railgun/error.h"

struct replayed {
    int32_t partition;
    int64_t offset;
    int64_t ms;     /* replayed_ms, 0: NULL */
    int64_t fwd_ms; /* forwarded_ms, 0: NULL */
};

struct rg_dlq_store_s {
    sqlite3 *lite;           /* sink=sqlite */
    MYSQL *my;               /* sink=mysql */
    char table[80];
    struct replayed *rows;   /* sorted by (partition, offset) */
    size_t n, cap;
};

static int push(rg_dlq_store_t *st, int32_t p, int64_t off, int64_t ms,
                int64_t fwd_ms, char *errstr, size_t size)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 64;
        struct replayed *r = realloc(st->rows, cap * sizeof(*r));
        if (r == NULL) {
            snprintf(errstr, size, "dlq: out of memory");
            return RG_ENOMEM;
        }
        st->rows = r;
        st->cap = cap;
    }
    st->rows[st->n++] = (struct replayed){p, off, ms, fwd_ms};
    return 0;
}

/* ---- SQLite -------------------------------------------------------------- */

static int lite_err(rg_dlq_store_t *st, int rc, const char *what,
                    char *errstr, size_t size)
{
    snprintf(errstr, size, "sqlite: %s: %s", what, sqlite3_errmsg(st->lite));
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_IOERR
               ? RG_EIO
               : RG_ESTATE;
}

static int lite_open(rg_dlq_store_t *st, const rg_conf_t *conf,
                     unsigned flags, char *errstr, size_t size)
{
    const char *path = rg_conf_get_str(conf, "sqlite.path");
    int rc = sqlite3_open_v2(path, &st->lite, flags & RG_DLQ_WRITE
                                                  ? SQLITE_OPEN_READWRITE
                                                  : SQLITE_OPEN_READONLY,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(errstr, size, "sqlite: cannot open %s: %s", path,
                 st->lite ? sqlite3_errmsg(st->lite) : sqlite3_errstr(rc));
        return RG_EIO;
    }
    sqlite3_busy_timeout(st->lite, 5000);
    char sql[320];
    /* without RG_DLQ_LOAD the query only checks that the columns exist */
    snprintf(sql, sizeof(sql), "SELECT partition_id, offset_id, replayed_ms, "
             "forwarded_ms FROM %s WHERE %s ORDER BY partition_id, "
             "offset_id", st->table, flags & RG_DLQ_LOAD
             ? "replayed_ms IS NOT NULL OR forwarded_ms IS NOT NULL" : "0");
    sqlite3_stmt *q;
    if ((rc = sqlite3_prepare_v2(st->lite, sql, -1, &q, NULL)) != SQLITE_OK)
        return lite_err(st, rc, "marked rows", errstr, size);
    int ret = 0;
    while (ret == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW)
        ret = push(st, sqlite3_column_int(q, 0), sqlite3_column_int64(q, 1),
                   sqlite3_column_int64(q, 2), sqlite3_column_int64(q, 3),
                   errstr, size);
    sqlite3_finalize(q);
    if (ret == 0 && rc != SQLITE_DONE)
        ret = lite_err(st, rc, "marked rows", errstr, size);
    return ret;
}

static int lite_mark(rg_dlq_store_t *st, const char *col,
                     const rg_dlq_at_t *at, size_t n, int64_t ms,
                     size_t *marked, char *errstr, size_t size)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE %s SET %s = ?1 WHERE "
             "partition_id = ?2 AND offset_id = ?3 AND state = 2", st->table,
             col);
    sqlite3_stmt *u = NULL;
    int rc = sqlite3_exec(st->lite, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->lite, sql, -1, &u, NULL);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        sqlite3_bind_int64(u, 1, ms);
        sqlite3_bind_int(u, 2, at[i].partition);
        sqlite3_bind_int64(u, 3, at[i].offset);
        rc = sqlite3_step(u);
        sqlite3_reset(u);
        if (rc == SQLITE_DONE) {
            *marked += (size_t)sqlite3_changes(st->lite);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(u);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->lite, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int ret = lite_err(st, rc, col, errstr, size);
        if (!sqlite3_get_autocommit(st->lite))
            sqlite3_exec(st->lite, "ROLLBACK", NULL, NULL, NULL);
        *marked = 0;
        return ret;
    }
    return 0;
}

/* ---- MariaDB ------------------------------------------------------------- */

static int my_code(unsigned e)
{
    return e == ER_NO_SUCH_TABLE || e == ER_BAD_FIELD_ERROR ? RG_ESTATE
                                                            : RG_EIO;
}

static int my_stmt_err(MYSQL_STMT *q, const char *what, char *errstr,
                       size_t size)
{
    unsigned e = mysql_stmt_errno(q);
    snprintf(errstr, size, "mysql: %s: %s (%u)", what, mysql_stmt_error(q),
             e);
    return my_code(e);
}

static int my_open(rg_dlq_store_t *st, const rg_conf_t *conf, unsigned flags,
                   char *errstr, size_t size)
{
    if ((st->my = rg_naive_connect(conf, true, errstr, size)) == NULL)
        return RG_EIO;
    mysql_autocommit(st->my, 0);
    char sql[320];
    snprintf(sql, sizeof(sql), "SELECT partition_id, offset_id, "
             "COALESCE(replayed_ms, 0), COALESCE(forwarded_ms, 0) FROM `%s` "
             "WHERE %s ORDER BY partition_id, offset_id", st->table,
             flags & RG_DLQ_LOAD
             ? "replayed_ms IS NOT NULL OR forwarded_ms IS NOT NULL" : "0");
    MYSQL_STMT *q = mysql_stmt_init(st->my);
    if (q == NULL) {
        snprintf(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    long long out[4];
    MYSQL_BIND r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++) {
        r[i].buffer_type = MYSQL_TYPE_LONGLONG;
        r[i].buffer = &out[i];
    }
    int ret = 0, f = 0;
    if (mysql_stmt_prepare(q, sql, strlen(sql)) || mysql_stmt_execute(q) ||
        mysql_stmt_bind_result(q, r)) {
        ret = my_stmt_err(q, "marked rows", errstr, size);
    } else {
        while (ret == 0 && (f = mysql_stmt_fetch(q)) == 0)
            ret = push(st, (int32_t)out[0], out[1], out[2], out[3], errstr,
                       size);
        if (ret == 0 && f != MYSQL_NO_DATA)
            ret = my_stmt_err(q, "marked rows", errstr, size);
    }
    mysql_stmt_close(q);
    mysql_commit(st->my); /* end the read snapshot */
    return ret;
}

static int my_mark(rg_dlq_store_t *st, const char *col,
                   const rg_dlq_at_t *at, size_t n, int64_t ms,
                   size_t *marked, char *errstr, size_t size)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE `%s` SET %s = ? WHERE "
             "partition_id = ? AND offset_id = ? AND state = 2", st->table,
             col);
    long long v[3] = {ms, 0, 0};
    MYSQL_BIND b[3];
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 3; i++) {
        b[i].buffer_type = MYSQL_TYPE_LONGLONG;
        b[i].buffer = &v[i];
    }
    MYSQL_STMT *u = mysql_stmt_init(st->my);
    if (u == NULL) {
        snprintf(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    int ret = 0;
    if (mysql_stmt_prepare(u, sql, strlen(sql)) ||
        mysql_stmt_bind_param(u, b))
        ret = my_stmt_err(u, col, errstr, size);
    for (size_t i = 0; i < n && ret == 0; i++) {
        v[1] = at[i].partition;
        v[2] = at[i].offset;
        if (mysql_stmt_execute(u))
            ret = my_stmt_err(u, col, errstr, size);
        else
            *marked += (size_t)mysql_stmt_affected_rows(u);
    }
    mysql_stmt_close(u);
    if (ret == 0 && mysql_commit(st->my)) {
        unsigned e = mysql_errno(st->my);
        snprintf(errstr, size, "mysql: mark %s: %s (%u)", col,
                 mysql_error(st->my), e);
        ret = my_code(e);
    }
    if (ret != 0) {
        mysql_rollback(st->my);
        *marked = 0;
    }
    return ret;
}

/* ---- the store ------------------------------------------------------------ */

int rg_dlq_store_open(const rg_conf_t *conf, unsigned flags,
                      rg_dlq_store_t **out, char *errstr, size_t size)
{
    *out = NULL;
    const char *kind = rg_conf_get_str(conf, "sink");
    const char *table = rg_conf_get_str(conf, "sink.table.failures");
    bool lite = strcmp(kind, "sqlite") == 0;
    if ((!lite && strcmp(kind, "mysql") != 0) || table[0] == '\0' ||
        strlen(table) >= sizeof(((rg_dlq_store_t *)0)->table)) {
        snprintf(errstr, size, "dlq: sink=%s, sink.table.failures=\"%s\": "
                 "no failures table", kind, table);
        return RG_EINVAL;
    }
    rg_dlq_store_t *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(errstr, size, "dlq: out of memory");
        return RG_ENOMEM;
    }
    snprintf(st->table, sizeof(st->table), "%s", table);
    int rc = lite ? lite_open(st, conf, flags, errstr, size)
                  : my_open(st, conf, flags, errstr, size);
    if (rc != 0) {
        rg_dlq_store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

static const struct replayed *find(const rg_dlq_store_t *st,
                                   int32_t partition, int64_t offset)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct replayed *r = &st->rows[mid];
        if (r->partition < partition ||
            (r->partition == partition && r->offset < offset))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < st->n && st->rows[lo].partition == partition &&
        st->rows[lo].offset == offset)
        return &st->rows[lo];
    return NULL;
}

int64_t rg_dlq_store_replayed(const rg_dlq_store_t *st, int32_t partition,
                              int64_t offset)
{
    const struct replayed *r = find(st, partition, offset);
    return r ? r->ms : 0;
}

int64_t rg_dlq_store_forwarded(const rg_dlq_store_t *st, int32_t partition,
                               int64_t offset)
{
    const struct replayed *r = find(st, partition, offset);
    return r ? r->fwd_ms : 0;
}

int rg_dlq_store_mark(rg_dlq_store_t *st, rg_dlq_mark_t which,
                      const rg_dlq_at_t *at, size_t n, int64_t ms,
                      size_t *marked, char *errstr, size_t size)
{
    *marked = 0;
    const char *col = which == RG_DLQ_FORWARDED ? "forwarded_ms"
                                                : "replayed_ms";
    return st->lite ? lite_mark(st, col, at, n, ms, marked, errstr, size)
                    : my_mark(st, col, at, n, ms, marked, errstr, size);
}

void rg_dlq_store_close(rg_dlq_store_t *st)
{
    if (st == NULL)
        return;
    if (st->lite)
        sqlite3_close(st->lite);
    if (st->my)
        mysql_close(st->my);
    free(st->rows);
    free(st);
}
