/*
 * kafka.h - the Kafka ingest adapter (librailgun_kafka): a consumer in a
 * consumer group whose poll loop is one of the engine's dispatchers.
 *
 *   rg_kafka_source_t *src = rg_kafka_source_new(engine, 0, conf, &sink,
 *                                                err, sizeof(err));
 *   rg_engine_start(engine, ...);
 *   rg_kafka_source_run(src);      // until rg_kafka_source_stop()
 *   rg_kafka_source_close(src);    // leaves the group: flush + commit
 *   rg_engine_stop(engine);
 *   rg_kafka_source_destroy(src);  // the engine no longer calls it
 *
 * It uses only the public engine API: messages go in with
 * rg_dispatcher_push_burst_for() (the engine copies what it keeps, so
 * each librdkafka message is released right after its burst).
 *
 * Backpressure: when the engine holds a burst longer than
 * `source.pause.after.ms` (full rings, a sink that is behind), the adapter
 * pauses its whole assignment, so librdkafka stops fetching, and seeks
 * each partition back to its first message the engine did not take. It
 * keeps polling (rebalances and heartbeats go on) and resumes when
 * rg_dispatcher_ready() says there is room again, or on a new assignment.
 *
 * Configuration: the Kafka table (rg_kafka_conf_table(), scope source):
 * `topic`, `group.id`, `source.pause.after.ms`, and librdkafka's
 * properties with a `kafka.` prefix (`kafka.bootstrap.servers` required,
 * not empty). The source and the producer add the table to their own
 * copy of the conf they are given. The adapter sets
 * enable.auto.commit=false and enable.auto.offset.store=false, and refuses
 * either set to true: offsets are committed from the engine's commit
 * callback only (which the adapter installs), i.e. only what the sink has
 * stored. It defaults auto.offset.reset to earliest (a new group counts
 * the backlog) and queued.min.messages to 1000000 (kafka.* overrides
 * both): librdkafka 2.0 counts the whole consumer queue against the
 * latter and refetches up to a second after crossing it, which capped a
 * backpressured engine at about 100k events per second. Where each
 * assigned partition starts, and why (stored in the sink, the group's
 * committed offset, or auto.offset.reset), is logged through the conf's
 * log callback (railgun/conf.h).
 *
 * Rebalance (eager protocol):
 *   revoke: rg_dispatcher_flush() (every event accepted from the revoked
 *     partitions is stored, with its offsets), a synchronous commit of
 *     those offsets, then the partitions are given up.
 *   assign: the sink claims the partitions (fencing any previous owner:
 *     its flushes change nothing from now on) and returns the stored next
 *     offsets; consumption starts there, else at the group's committed
 *     offset, else per auto.offset.reset (earliest unless set).
 *
 * Errors: librdkafka retries transport errors and broker outages itself;
 * they are counted in the stats and logged through the conf's log
 * callback (librdkafka's errors with their reason at most every
 * `source.warn.after.ms` with the count since; its own warning lines;
 * "all brokers down for N s" and "no partitions assigned for N s" once
 * they have lasted `source.warn.after.ms`). A fatal consumer error, or a
 * sink that cannot claim, stops the loop with the error
 * (rg_kafka_source_error()).
 *
 * A log that went backwards: when the sink stores a next offset past the
 * end of a partition's log (the topic was deleted and recreated,
 * truncated, restored), or a fetched offset is below one already seen,
 * the loop stops with an error that says so: going on would drop those
 * events as done. `source.reset.offsets` (`all` or a list of partitions;
 * `railgun run --reset-offsets`) accepts the reset: the stored position
 * moves to the start of the log, in the sink's offsets table, and the
 * log is counted from there. A sink position below the start of the log
 * (retention deleted events before they were consumed) is logged as a
 * warning and consumption goes on from the start.
 *
 * Shutdown: the revoke's flush and leaving the group are each bounded by
 * `shutdown.timeout.ms`; with the brokers down the group is not left (its
 * other members notice after session.timeout.ms) and nothing is lost.
 */
#ifndef RAILGUN_KAFKA_H
#define RAILGUN_KAFKA_H

#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"
#include "railgun/engine.h"
#include "railgun/export.h"
#include "railgun/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_kafka_source_s rg_kafka_source_t;

/* The Kafka adapter's configuration table (source and producer). */
RG_EXPORT const rg_conf_table_t *rg_kafka_conf_table(void);

typedef struct rg_kafka_stats_s {
    uint64_t consumed;      /* messages handed to the engine */
    uint64_t errors;        /* consumer errors seen (retried by librdkafka) */
    uint64_t assigned;      /* partitions assigned, summed over rebalances */
    uint64_t revoked;       /* partitions revoked, summed */
    uint64_t commits;       /* offset commits sent to Kafka */
    uint64_t commit_errors; /* ... and failed (retried with the next) */
    uint32_t partitions;    /* partitions held now */
    uint32_t paused;        /* 1 while paused for backpressure */
    uint64_t pauses;        /* times paused (source.pause.after.ms) */
    uint64_t resumes;       /* ... and resumed */
    uint64_t queued;        /* entries in librdkafka's consumer queue not
                               polled yet: fetched messages, plus the odd
                               event (a statistics report, an error) that
                               waits there a moment; 0 or near it while
                               paused */
    uint64_t brokers_down_ms;  /* how long every broker has been down
                                  (0: reachable) */
    uint64_t no_partitions_ms; /* how long nothing has been assigned */
} rg_kafka_stats_t;

/*
 * Checks conf's consumer settings the way rg_kafka_source_new() will,
 * without connecting: the kafka.* pass-through names and values
 * (librdkafka's own check), an empty kafka.bootstrap.servers, settings
 * railgun refuses (kafka.enable.auto.commit=true). Lets a program refuse
 * bad settings before it opens a database. 0, or RG_EINVAL with a
 * one-line reason in errstr.
 */
RG_EXPORT int rg_kafka_source_check(const rg_conf_t *conf, char *errstr,
                                    size_t errstr_size);

/*
 * A consumer for conf's topic in conf's group, feeding dispatcher
 * `dispatcher` of e. `sink` (may be NULL: then positions come from the
 * group's committed offsets) is the engine's sink, used here for claim()
 * only. Before rg_engine_start() (it installs the commit callback). NULL
 * with a one-line reason in errstr.
 */
RG_EXPORT rg_kafka_source_t *rg_kafka_source_new(rg_engine_t *e,
                                                 unsigned dispatcher,
                                                 const rg_conf_t *conf,
                                                 const rg_sink_t *sink,
                                                 char *errstr,
                                                 size_t errstr_size);

/*
 * The poll loop: consumes and pushes until rg_kafka_source_stop() or a
 * fatal error. Returns 0, or a negative RG_E* code (see
 * rg_kafka_source_error()). The calling thread is the dispatcher's ingest
 * thread.
 */
RG_EXPORT int rg_kafka_source_run(rg_kafka_source_t *src);

/* Makes run() return soon; any thread, async-signal-safe. */
RG_EXPORT void rg_kafka_source_stop(rg_kafka_source_t *src);

/* Counters; any thread. */
RG_EXPORT void rg_kafka_source_stats(rg_kafka_source_t *src,
                                     rg_kafka_stats_t *out);

/* One partition the source holds (rg_kafka_source_partitions()). */
typedef struct rg_kafka_partition_s {
    int32_t partition;
    int64_t high_watermark; /* the end of its log as librdkafka's last fetch
                               response for it said (no broker round trip),
                               -1 until one came; it stands still while the
                               source is paused (no fetches) */
} rg_kafka_partition_t;

/*
 * The partitions held now, ascending, into out (the first max of them);
 * returns how many are held (may exceed max). 0 after close. Any thread;
 * takes the source's lock for a scan of ack.max.partitions flags, so it
 * is meant for a stats reader, not a hot path.
 */
RG_EXPORT size_t rg_kafka_source_partitions(rg_kafka_source_t *src,
                                            rg_kafka_partition_t *out,
                                            size_t max);

/* The last error librdkafka reported (its name and reason) into buf;
 * 1 when there was one, else 0. Any thread. */
RG_EXPORT int rg_kafka_source_last_error(rg_kafka_source_t *src, char *buf,
                                         size_t size);

/* Why run() failed, or NULL. */
RG_EXPORT const char *rg_kafka_source_error(rg_kafka_source_t *src);

/*
 * Leaves the group (the revoke flushes and commits what was consumed).
 * After run() returned, before rg_engine_stop() (the flush needs the
 * engine). Calling it again is harmless.
 */
RG_EXPORT void rg_kafka_source_close(rg_kafka_source_t *src);

/*
 * Closes (if needed) and frees the source. After rg_engine_stop(): the
 * engine's commit callback points here until then. NULL is fine.
 */
RG_EXPORT void rg_kafka_source_destroy(rg_kafka_source_t *src);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_KAFKA_H */
