/*
 * serve_db.h - the read side's own database reads (`railgun serve` and
 * the job's cache updater): counts and like states from the sink's
 * tables (sink.table.merged, sink.table.staged), each batch read in ONE
 * snapshot together with the version row of cache.version.table, over a
 * connection of its own, through prepared statements.
 *
 * One snapshot: a single SELECT (the version row UNION ALL the rows),
 * which InnoDB answers from one read view (the connection runs REPEATABLE
 * READ with autocommit) and SQLite from one read transaction. So the
 * version returned is exactly the version of the values: the property the
 * cache's rules rest on (railgun/redis_cache.h).
 *
 * Batches: up to RG_SERVE_DB_CHUNK keys per statement (longer calls are
 * split, each chunk with its own snapshot; the version returned is then
 * the oldest chunk's, which is safe for a fill: a value tagged older than
 * its snapshot can only be refused, never win wrongly). Statements are
 * prepared per chunk size class (1, 8, 64; the last key repeated to pad).
 *
 * Errors: 0 or a negative RG_E* code with a one-line reason; RG_EIO for a
 * lost or failing server (the next call reconnects), RG_ENOENT for a
 * missing table at open.
 *
 * Threads: a handle is one connection: one thread at a time.
 */
#ifndef RG_SERVE_DB_H
#define RG_SERVE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"
#include "railgun/redis_cache.h"

#define RG_SERVE_DB_CHUNK 64

typedef struct rg_serve_db_s rg_serve_db_t;

/*
 * Opens a read connection to the database that conf's `sink` names
 * (sqlite: sqlite.path, read-only; mysql: mysql.*) and prepares the
 * statements. versioned: read cache.version.table's `version` row with
 * every batch (when false the version reads as 0 and the table may be
 * absent). NULL with errstr (the database or a table missing, the server
 * unreachable); *err (may be NULL) receives the code.
 */
rg_serve_db_t *rg_serve_db_open(const rg_conf_t *conf, bool versioned,
                                int *err, char *errstr, size_t size);

/* counts[i] = the count of videos[i] (0 without a row), *version = the
 * snapshot's version. n may be 0 (the version only). */
int rg_serve_db_counts(rg_serve_db_t *d, const int64_t *videos, size_t n,
                       int64_t *counts, int64_t *version, char *errstr,
                       size_t size);

/* states[i] = the state of pairs[i] (0 without a row). */
int rg_serve_db_states(rg_serve_db_t *d, const rg_cache_key_t *pairs,
                       size_t n, int64_t *states, int64_t *version,
                       char *errstr, size_t size);

/* rg_serve_db_counts() as the cache updater's read callback (opaque is
 * the rg_serve_db_t). */
int rg_serve_db_read_cb(void *opaque, const int64_t *videos, size_t n,
                        int64_t *counts, int64_t *version, char *errstr,
                        size_t size);

void rg_serve_db_close(rg_serve_db_t *d);

#endif /* RG_SERVE_DB_H */
