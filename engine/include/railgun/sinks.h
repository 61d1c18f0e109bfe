/*
 * sinks.h - the sink adapters that ship with railgun (engine/src/adapters).
 *
 * Each fills an rg_sink_t (railgun/sink.h) from configuration properties
 * and owns a configuration table (railgun/conf.h, scope sink):
 *   SQLite   sqlite.path, sink.table.*, group.id, topic
 *            (librailgun_sqlite: railgun::sqlite, pkg-config railgun-sqlite)
 *   MariaDB  mysql.host, mysql.port, mysql.socket, mysql.user,
 *            mysql.password, mysql.database, sink.table.*, group.id, topic
 *            (librailgun_mysql: railgun::mysql, pkg-config railgun-mysql)
 *   null     discards rows, stores offsets in memory (the core library)
 * The open calls add their table to a private copy of conf, so what the
 * caller did not set has its default; a caller that sets the properties
 * by name adds the table first (rg_conf_add_table(conf,
 * rg_sqlite_conf_table(), ...)).
 *
 * Tables (names from sink.table.*), times in epoch milliseconds:
 *   merged (counts):  video_id PK, count, mtime, ctime
 *   merged_bytes:     key_bytes PK (up to 256 bytes), count, mtime, ctime;
 *                     only when sink.table.merged_bytes is set
 *   staged (actions): video_id, user_id, state, mtime, ctime, PK
 *                     (video_id, user_id); none when sink.table.staged is
 *                     empty (then the sink has no read side)
 *   offsets:          consumer_group, topic, partition, next_offset,
 *                     owner_epoch, PK (consumer_group, topic, partition)
 *   meta:             k PK, v, n, mtime: the sink's own facts; the
 *                     owner of the tables (owner.group, owner.topic)
 *   failures:         partition_id, offset_id, state (1 delayed, 2 dead),
 *                     route_key (rg_failure_t.key as a signed 64-bit
 *                     integer, exact both ways), msg_key (NULL: none),
 *                     attempts, flags, first_ms, last_ms, due_ms,
 *                     reasons (bytes, up to RG_FAILURE_REASONS_MAX - 1),
 *                     payload, event_len, replayed_ms (NULL until
 *                     `railgun dlq replay`; the sink's writes leave it
 *                     alone), forwarded_ms (NULL until `railgun run`
 *                     produced the dead letter to dlq.topic; left alone
 *                     the same way; indexed with state), mtime, PK
 *                     (partition_id, offset_id): the
 *                     delayed retry queue and the dead letters
 *                     (write_failures, scan_failures); none, and neither
 *                     call, when sink.table.failures is empty. Like the
 *                     merged tables it belongs to the owning job: no
 *                     group or topic column, a handover takes it along
 *
 * Ownership: the tables belong to one job, (group.id, topic), recorded at
 * its first claim(). A claim by another job is refused (RG_ESTATE, the
 * message names the owner): two jobs on one database would each add every
 * event to the counts. sink.handover.from = the owner's group moves the
 * ownership deliberately: the owner's positions are copied to group.id
 * and fenced, so the new group continues where the old one stopped and a
 * process of the old one still running stops at its next write.
 * With RG_SINK_INIT_SCHEMA missing tables are created; without it a
 * missing table is an error. A missing MariaDB database is an error
 * unless RG_SINK_CREATE_DATABASE is given too: a mistyped mysql.database
 * must not quietly start an empty one. An existing table without the expected
 * columns or key is always an error naming the table and the column,
 * never written to.
 *
 * All SQL is prepared statements with bound parameters; table names, which
 * cannot be parameters, are checked to be plain identifiers when set.
 */
#ifndef RAILGUN_SINKS_H
#define RAILGUN_SINKS_H

#include <stddef.h>
#include "railgun/conf.h"
#include "railgun/export.h"
#include "railgun/flush.h"
#include "railgun/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    RG_SINK_INIT_SCHEMA = 1u << 0,     /* create missing tables */
    RG_SINK_CREATE_DATABASE = 1u << 1, /* MariaDB: create mysql.database
                                          when missing (tables: see
                                          RG_SINK_INIT_SCHEMA) */
};

/* The SQLite sink's configuration table (librailgun_sqlite). */
RG_EXPORT const rg_conf_table_t *rg_sqlite_conf_table(void);

/*
 * Opens the SQLite database at sqlite.path (WAL mode, synchronous=NORMAL:
 * a committed epoch survives the process being killed). Returns 0 and
 * fills *out, or a negative RG_E* code with a one-line reason in errstr.
 * (librailgun_sqlite)
 */
RG_EXPORT int rg_sink_sqlite_open(const rg_conf_t *conf, unsigned flags,
                                  rg_sink_t *out, char *errstr,
                                  size_t errstr_size);

/* The MariaDB/MySQL sink's configuration table (librailgun_mysql). */
RG_EXPORT const rg_conf_table_t *rg_mysql_conf_table(void);

/*
 * Connects to MariaDB/MySQL with the mysql.* properties. Transient errors
 * (connection lost, deadlock, lock wait timeout) are RG_EIO and the next
 * begin() reconnects; access denied or a missing database or table are
 * fatal. Returns 0 and fills *out, or a negative RG_E* code and errstr.
 * (librailgun_mysql)
 */
RG_EXPORT int rg_sink_mysql_open(const rg_conf_t *conf, unsigned flags,
                                 rg_sink_t *out, char *errstr,
                                 size_t errstr_size);

/* A sink that writes nothing and keeps offsets in memory (benchmarks). */
RG_EXPORT int rg_sink_null_open(rg_sink_t *out);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_SINKS_H */
