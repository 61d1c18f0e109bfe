/*
 * sinks.h - the sink adapters that ship with railgun (engine/src/adapters).
 *
 * Each fills an rg_sink_t (railgun/sink.h) from configuration properties:
 *   SQLite   sqlite.path, group.id, topic            (librailgun_sqlite)
 *   MariaDB  mysql.host, mysql.port, mysql.socket, mysql.user,
 *            mysql.password, mysql.database, group.id, topic
 *                                                    (librailgun_mysql)
 *   null     discards rows, stores offsets in memory (core)
 *
 * Schema (shared/DESIGN.md §4), times in epoch milliseconds:
 *   counts(video_id PK, count, mtime, ctime)
 *   actions(video_id, user_id, state, mtime, ctime), unique (video_id,
 *     user_id)
 *   offsets(consumer_group, topic, partition, next_offset, owner_epoch),
 *     unique (consumer_group, topic, partition)
 * With RG_SINK_INIT_SCHEMA missing tables are created; without it a
 * missing table is an error. An existing table without the expected
 * columns is always an error naming the table and the column, never
 * written to.
 *
 * All SQL is prepared statements with bound parameters.
 */
#ifndef RAILGUN_SINKS_H
#define RAILGUN_SINKS_H

#include <stddef.h>
#include "railgun/conf.h"
#include "railgun/export.h"
#include "railgun/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    RG_SINK_INIT_SCHEMA = 1u << 0, /* create missing tables */
};

/*
 * Opens the SQLite database at sqlite.path (WAL mode, synchronous=NORMAL:
 * a committed epoch survives the process being killed). Returns 0 and
 * fills *out, or a negative RG_E* code with a one-line reason in errstr.
 */
int rg_sink_sqlite_open(const rg_conf_t *conf, unsigned flags,
                        rg_sink_t *out, char *errstr, size_t errstr_size);

/*
 * Connects to MariaDB/MySQL with the mysql.* properties. Transient errors
 * (connection lost, deadlock, lock wait timeout) are RG_EIO and the next
 * begin() reconnects; access denied or a missing database or table are
 * fatal. Returns 0 and fills *out, or a negative RG_E* code and errstr.
 */
int rg_sink_mysql_open(const rg_conf_t *conf, unsigned flags,
                       rg_sink_t *out, char *errstr, size_t errstr_size);

/* A sink that writes nothing and keeps offsets in memory (benchmarks). */
RG_EXPORT int rg_sink_null_open(rg_sink_t *out);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_SINKS_H */
