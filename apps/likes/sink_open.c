/*
 * sink_open.c - picks the sink adapter the `sink` property names, and
 * drops a database the commands created for themselves.
 */
#define _GNU_SOURCE
#include <mysql.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "likes_job.h"
#include "naive.h"
#include "railgun/sinks.h"

int rg_likes_open_sink(const rg_conf_t *conf, unsigned flags, rg_sink_t *out,
                       char *errstr, size_t errstr_size)
{
    const char *kind = rg_conf_get_str(conf, "sink");
    if (kind != NULL && strcmp(kind, "sqlite") == 0)
        return rg_sink_sqlite_open(conf, flags, out, errstr, errstr_size);
    if (kind != NULL && strcmp(kind, "mysql") == 0)
        return rg_sink_mysql_open(conf, flags, out, errstr, errstr_size);
    if (kind != NULL && strcmp(kind, "null") == 0)
        return rg_sink_null_open(out);
    snprintf(errstr, errstr_size, "sink: unknown sink \"%s\"",
             kind ? kind : "");
    return RG_EINVAL;
}

int rg_likes_drop_db(const rg_conf_t *conf, char *errstr, size_t size)
{
    if (strcmp(rg_conf_get_str(conf, "sink"), "mysql") != 0) {
        const char *p = rg_conf_get_str(conf, "sqlite.path");
        char side[4096];
        unlink(p);
        snprintf(side, sizeof(side), "%s-wal", p);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", p);
        unlink(side);
        return 0;
    }
    MYSQL *db = rg_naive_connect(conf, false, errstr, size);
    if (db == NULL)
        return -1;
    const char *name = rg_conf_get_str(conf, "mysql.database");
    char sql[128];
    if (strchr(name, '`') || strlen(name) > 64) {
        mysql_close(db);
        snprintf(errstr, size, "bad database name");
        return -1;
    }
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS `%s`", name);
    MYSQL_STMT *st = mysql_stmt_init(db);
    int rc = (st && !mysql_stmt_prepare(st, sql, strlen(sql)) &&
              !mysql_stmt_execute(st)) ? 0 : -1;
    if (rc)
        snprintf(errstr, size, "%s", mysql_error(db));
    if (st)
        mysql_stmt_close(st);
    mysql_close(db);
    return rc;
}
