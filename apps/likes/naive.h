/*
 * naive.h - the reference system's first design, as the baseline of
 * `railgun bench likes`: one database transaction per like event (select
 * the pair's state, upsert the action, update the count, commit), on one
 * connection, through prepared statements. Same schema as the sinks.
 */
#ifndef RG_NAIVE_H
#define RG_NAIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"

typedef struct rg_naive_s rg_naive_t;

/* Connects with the sink properties of conf (sink=sqlite or mysql); the
 * tables must exist. NULL with errstr on failure. */
rg_naive_t *rg_naive_open(const rg_conf_t *conf, char *errstr, size_t size);

/* Applies one like event in its own transaction. 0 or -1 with errstr. */
int rg_naive_apply(rg_naive_t *n, int64_t video, int64_t user, int state,
                   int64_t ts, char *errstr, size_t size);

/* True when the last failed rg_naive_apply() may succeed if retried: a
 * deadlock or lock wait timeout (MariaDB), a busy database (SQLite). */
bool rg_naive_retriable(const rg_naive_t *n);

void rg_naive_close(rg_naive_t *n);

/* A plain client connection with the mysql.* properties of conf, into
 * mysql.database when with_db; NULL with errstr. */
struct st_mysql *rg_naive_connect(const rg_conf_t *conf, bool with_db,
                                  char *errstr, size_t size);

#endif /* RG_NAIVE_H */
