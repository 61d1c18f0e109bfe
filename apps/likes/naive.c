/*
 * naive.c - one transaction per event (see naive.h), for SQLite and
 * MariaDB/MySQL.
 */
#define _GNU_SOURCE
#include <mysql.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "naive.h"

struct rg_naive_s {
    bool mysql;
    sqlite3 *lite;
    sqlite3_stmt *l_begin, *l_sel, *l_act, *l_cnt, *l_commit;
    MYSQL *my;
    MYSQL_STMT *m_sel, *m_act, *m_cnt;
    MYSQL_BIND b_sel[2], b_act[5], b_cnt[4], r_sel[1];
    long long v, u, st, ts, delta, out;
    bool retriable; /* the last failure may pass on a retry */
};

static MYSQL_STMT *my_prep(MYSQL *db, const char *sql, MYSQL_BIND *b)
{
    MYSQL_STMT *st = mysql_stmt_init(db);
    if (st == NULL || mysql_stmt_prepare(st, sql, strlen(sql)) ||
        mysql_stmt_bind_param(st, b)) {
        if (st)
            mysql_stmt_close(st);
        return NULL;
    }
    return st;
}

static void bind_ll(MYSQL_BIND *b, long long *p)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = p;
}

MYSQL *rg_naive_connect(const rg_conf_t *conf, bool with_db, char *errstr,
                        size_t size)
{
    MYSQL *db = mysql_init(NULL);
    const char *sock = rg_conf_get_str(conf, "mysql.socket");
    const char *pw = rg_conf_get_str(conf, "mysql.password");
    if (db == NULL ||
        !mysql_real_connect(db, sock[0] ? "localhost"
                                        : rg_conf_get_str(conf, "mysql.host"),
                            rg_conf_get_str(conf, "mysql.user"),
                            pw[0] ? pw : NULL,
                            with_db ? rg_conf_get_str(conf, "mysql.database")
                                    : NULL,
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

rg_naive_t *rg_naive_open(const rg_conf_t *conf, char *errstr, size_t size)
{
    rg_naive_t *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        snprintf(errstr, size, "naive: out of memory");
        return NULL;
    }
    n->mysql = strcmp(rg_conf_get_str(conf, "sink"), "mysql") == 0;
    if (n->mysql) {
        if ((n->my = rg_naive_connect(conf, true, errstr, size)) == NULL)
            goto fail;
        mysql_autocommit(n->my, 0);
        bind_ll(&n->b_sel[0], &n->v);
        bind_ll(&n->b_sel[1], &n->u);
        bind_ll(&n->r_sel[0], &n->out);
        bind_ll(&n->b_act[0], &n->v);
        bind_ll(&n->b_act[1], &n->u);
        bind_ll(&n->b_act[2], &n->st);
        bind_ll(&n->b_act[3], &n->ts);
        bind_ll(&n->b_act[4], &n->ts);
        bind_ll(&n->b_cnt[0], &n->v);
        bind_ll(&n->b_cnt[1], &n->delta);
        bind_ll(&n->b_cnt[2], &n->ts);
        bind_ll(&n->b_cnt[3], &n->ts);
        n->m_sel = my_prep(n->my, "SELECT state FROM actions WHERE "
                           "video_id = ? AND user_id = ? FOR UPDATE",
                           n->b_sel);
        n->m_act = my_prep(n->my, "INSERT INTO actions (video_id, user_id, "
                           "state, mtime, ctime) VALUES (?, ?, ?, ?, ?) ON "
                           "DUPLICATE KEY UPDATE state = VALUES(state), "
                           "mtime = VALUES(mtime)", n->b_act);
        n->m_cnt = my_prep(n->my, "INSERT INTO counts (video_id, count, "
                           "mtime, ctime) VALUES (?, ?, ?, ?) ON DUPLICATE "
                           "KEY UPDATE count = count + VALUES(count), "
                           "mtime = VALUES(mtime)", n->b_cnt);
        if (!n->m_sel || !n->m_act || !n->m_cnt ||
            mysql_stmt_bind_result(n->m_sel, n->r_sel)) {
            snprintf(errstr, size, "naive: prepare: %s", mysql_error(n->my));
            goto fail;
        }
        return n;
    }
    if (sqlite3_open(rg_conf_get_str(conf, "sqlite.path"), &n->lite) !=
        SQLITE_OK) {
        snprintf(errstr, size, "naive: %s", sqlite3_errmsg(n->lite));
        goto fail;
    }
    sqlite3_busy_timeout(n->lite, 5000);
    sqlite3_exec(n->lite, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                 NULL, NULL, NULL);
    if (sqlite3_prepare_v2(n->lite, "BEGIN IMMEDIATE", -1, &n->l_begin,
                           NULL) ||
        sqlite3_prepare_v2(n->lite, "SELECT state FROM actions WHERE "
                           "video_id = ?1 AND user_id = ?2", -1, &n->l_sel,
                           NULL) ||
        sqlite3_prepare_v2(n->lite, "INSERT INTO actions VALUES (?1, ?2, ?3, "
                           "?4, ?4) ON CONFLICT (video_id, user_id) DO UPDATE "
                           "SET state = excluded.state, mtime = "
                           "excluded.mtime", -1, &n->l_act, NULL) ||
        sqlite3_prepare_v2(n->lite, "INSERT INTO counts VALUES (?1, ?2, ?3, "
                           "?3) ON CONFLICT (video_id) DO UPDATE SET count = "
                           "count + excluded.count, mtime = excluded.mtime",
                           -1, &n->l_cnt, NULL) ||
        sqlite3_prepare_v2(n->lite, "COMMIT", -1, &n->l_commit, NULL)) {
        snprintf(errstr, size, "naive: prepare: %s", sqlite3_errmsg(n->lite));
        goto fail;
    }
    return n;
fail:
    rg_naive_close(n);
    return NULL;
}

static int lite_step(rg_naive_t *n, sqlite3_stmt *st, char *errstr,
                     size_t size)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        n->retriable = rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
        snprintf(errstr, size, "naive: %s", sqlite3_errmsg(n->lite));
        return -1;
    }
    return 0;
}

int rg_naive_apply(rg_naive_t *n, int64_t video, int64_t user, int state,
                   int64_t ts, char *errstr, size_t size)
{
    n->v = video, n->u = user, n->st = state, n->ts = ts;
    n->delta = state ? 1 : -1;
    if (n->mysql) {
        /* autocommit is off: the SELECT opens the transaction */
        if (mysql_stmt_execute(n->m_sel))
            goto my_fail;
        long long cur = 0;
        if (mysql_stmt_fetch(n->m_sel) == 0)
            cur = n->out;
        mysql_stmt_free_result(n->m_sel);
        if (cur != state &&
            (mysql_stmt_execute(n->m_act) || mysql_stmt_execute(n->m_cnt)))
            goto my_fail;
        if (mysql_commit(n->my))
            goto my_fail;
        return 0;
    my_fail:
        n->retriable = mysql_errno(n->my) == 1213 /* ER_LOCK_DEADLOCK */ ||
                       mysql_errno(n->my) == 1205; /* ER_LOCK_WAIT_TIMEOUT */
        snprintf(errstr, size, "naive: %s", mysql_error(n->my));
        mysql_rollback(n->my);
        return -1;
    }
    if (lite_step(n, n->l_begin, errstr, size))
        return -1;
    sqlite3_bind_int64(n->l_sel, 1, video);
    sqlite3_bind_int64(n->l_sel, 2, user);
    int cur = sqlite3_step(n->l_sel) == SQLITE_ROW
                  ? sqlite3_column_int(n->l_sel, 0)
                  : 0;
    sqlite3_reset(n->l_sel);
    if (cur != state) {
        sqlite3_bind_int64(n->l_act, 1, video);
        sqlite3_bind_int64(n->l_act, 2, user);
        sqlite3_bind_int64(n->l_act, 3, state);
        sqlite3_bind_int64(n->l_act, 4, ts);
        sqlite3_bind_int64(n->l_cnt, 1, video);
        sqlite3_bind_int64(n->l_cnt, 2, state ? 1 : -1);
        sqlite3_bind_int64(n->l_cnt, 3, ts);
        if (lite_step(n, n->l_act, errstr, size) ||
            lite_step(n, n->l_cnt, errstr, size)) {
            sqlite3_exec(n->lite, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    if (lite_step(n, n->l_commit, errstr, size) != 0) {
        /* a failed COMMIT leaves the transaction open: end it, so the
         * next BEGIN (a retry) starts clean */
        sqlite3_exec(n->lite, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

bool rg_naive_retriable(const rg_naive_t *n)
{
    return n->retriable;
}

void rg_naive_close(rg_naive_t *n)
{
    if (n == NULL)
        return;
    if (n->m_sel)
        mysql_stmt_close(n->m_sel);
    if (n->m_act)
        mysql_stmt_close(n->m_act);
    if (n->m_cnt)
        mysql_stmt_close(n->m_cnt);
    if (n->my)
        mysql_close(n->my);
    sqlite3_stmt *ls[] = {n->l_begin, n->l_sel, n->l_act, n->l_cnt,
                          n->l_commit};
    for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++)
        sqlite3_finalize(ls[i]);
    if (n->lite)
        sqlite3_close(n->lite);
    free(n);
}
