/*
 * dlq_store.h - the two columns of the failures table that the sink API
 * does not carry: replayed_ms, which `railgun dlq replay` sets, and
 * forwarded_ms, which `railgun run` sets once it produced a dead letter to
 * dlq.topic (railgun/sinks.h: the sink's upserts leave both alone). A
 * connection of its own to the sink's database (sink=sqlite: sqlite.path;
 * sink=mysql: mysql.*), and the table sink.table.failures.
 *
 * Opening (with RG_DLQ_LOAD) loads every marked row's (partition, offset,
 * replayed_ms, forwarded_ms), sorted, so a scan through the sink can ask
 * for each row's without a query per row. rg_dlq_store_mark() sets one of
 * the columns on dead rows in one transaction. The rows are the job's own
 * (the engine never rewrites a dead row), so the store and a running
 * `railgun run` do not fight over them; on SQLite the mark waits for the
 * flusher's lock (5 s at most).
 *
 * Errors: 0 or a negative RG_E* code with a one-line message. Threads:
 * one at a time.
 */
#ifndef RG_DLQ_STORE_H
#define RG_DLQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"

typedef struct rg_dlq_store_s rg_dlq_store_t;

/* One row's coordinates. */
typedef struct rg_dlq_at_s {
    int32_t partition;
    int64_t offset;
} rg_dlq_at_t;

/* rg_dlq_store_open() flags. */
enum {
    RG_DLQ_WRITE = 1u << 0, /* read-write (mark); else read-only */
    RG_DLQ_LOAD = 1u << 1,  /* load the marks (replayed(), forwarded()) */
};

/* The columns rg_dlq_store_mark() sets. */
typedef enum rg_dlq_mark_e {
    RG_DLQ_REPLAYED, /* replayed_ms */
    RG_DLQ_FORWARDED /* forwarded_ms */
} rg_dlq_mark_t;

/*
 * Connects and, with RG_DLQ_LOAD, loads the marked rows. 0, RG_EINVAL
 * (sink is neither sqlite nor mysql, or no failures table), RG_EIO
 * (cannot connect), RG_ESTATE (the table or a column is missing),
 * RG_ENOMEM.
 */
int rg_dlq_store_open(const rg_conf_t *conf, unsigned flags,
                      rg_dlq_store_t **out, char *errstr, size_t size);

/* When (partition, offset) was replayed, or forwarded to dlq.topic, epoch
 * ms, as loaded at open; 0: never (or not loaded). */
int64_t rg_dlq_store_replayed(const rg_dlq_store_t *st, int32_t partition,
                              int64_t offset);
int64_t rg_dlq_store_forwarded(const rg_dlq_store_t *st, int32_t partition,
                               int64_t offset);

/*
 * Sets the column `which` = ms on the dead rows at[0..n), in one
 * transaction. *marked: how many rows it changed (a row that is no longer
 * dead, or no longer there, is not). 0 or RG_EIO / RG_ESTATE.
 */
int rg_dlq_store_mark(rg_dlq_store_t *st, rg_dlq_mark_t which,
                      const rg_dlq_at_t *at, size_t n, int64_t ms,
                      size_t *marked, char *errstr, size_t size);

/* Closes the connection; NULL is fine. */
void rg_dlq_store_close(rg_dlq_store_t *st);

#endif /* RG_DLQ_STORE_H */
