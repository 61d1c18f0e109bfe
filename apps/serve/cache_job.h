/*
 * cache_job.h - the job's side of the read cache: `railgun run` hands
 * each committed epoch (its version, the videos whose count changed, its
 * staged rows) to rg_cache_job_commit() from the engine's after-commit
 * hook; an updater thread of its own writes them to Redis with
 * rg_cache_redis_apply() (railgun/redis_cache.h), reading the counts back
 * over its own database connection (serve_db.h).
 *
 * Why a thread: the hook runs on the flusher, between one epoch's commit
 * and the next one's transaction; Redis latency, a Redis outage or the
 * read-back must never slow the write path. The hook only copies the
 * epoch into a bounded queue (cache.update.queue.rows) and returns.
 *
 * Order and loss: epochs are written in commit order. An epoch that does
 * not fit in the queue is dropped, counted, and the updater resyncs
 * (raises the cache's floor to the database's version) before it writes
 * the next one, so what the drop left out reads as a miss, never as a
 * stale hit. A Redis outage is the same: rg_cache_redis_apply() counts
 * what it skipped and the next call that reaches Redis resyncs. While no
 * epoch comes, the updater ticks every second (a restarted Redis is found
 * and resynced).
 *
 * Threads: new and destroy on one controlling thread; commit from one
 * thread at a time (the flusher); stats and flush from any thread.
 */
#ifndef RG_CACHE_JOB_H
#define RG_CACHE_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"
#include "railgun/redis_cache.h"
#include "railgun/sink.h"

typedef struct rg_cache_job_s rg_cache_job_t;

typedef struct rg_cache_job_stats_s {
    uint64_t epochs;          /* handed to commit() */
    uint64_t dropped;         /* of which dropped: the queue was full */
    uint64_t dropped_rows;    /* their videos + rows */
    uint64_t queued;          /* waiting now */
    rg_cache_redis_stats_t redis; /* the updater's handle: applies,
                                     skipped, resyncs, errors ... */
} rg_cache_job_stats_t;

/*
 * The updater for conf's cache.* and sink properties: connects to the
 * database now (the version table must exist: cache.version.table), to
 * Redis lazily, and starts its thread. NULL with errstr when something
 * is wrong. Call it only when rg_serve_cache_wanted(conf).
 */
rg_cache_job_t *rg_cache_job_new(const rg_conf_t *conf, char *errstr,
                                 size_t size);

/*
 * Queues committed epoch `version` (copies the arrays; never blocks
 * beyond a short mutex, never fails: a full queue drops the epoch).
 * videos[0..n): merged keys whose count changed; staged[0..m): the
 * epoch's staged rows (video, user, state).
 */
void rg_cache_job_commit(rg_cache_job_t *j, int64_t version,
                         const int64_t *videos, size_t n,
                         const rg_row_t *staged, size_t m);

/*
 * Makes the updater resync (raise the cache's floor to the database's
 * version) before it writes the next epoch, or now when idle. Call it on
 * every partition assignment: a process that owned those partitions may
 * have died between an epoch's commit and its cache update. Any thread.
 */
void rg_cache_job_resync(rg_cache_job_t *j);

/* Waits until the queue is empty, no resync pending and the updater
 * idle, up to timeout_ms.
 * 0 or RG_ETIMEDOUT. */
int rg_cache_job_flush(rg_cache_job_t *j, int timeout_ms);

void rg_cache_job_stats(rg_cache_job_t *j, rg_cache_job_stats_t *out);

/* Writes what is queued (up to 5 s), stops the thread, frees; NULL is
 * fine. */
void rg_cache_job_destroy(rg_cache_job_t *j);

#endif /* RG_CACHE_JOB_H */
