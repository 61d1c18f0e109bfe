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
 * they are counted in the stats. A fatal consumer error, or a sink that
 * cannot claim, stops the loop with the error (rg_kafka_source_error()).
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
    uint64_t queued;        /* messages librdkafka has fetched for us and
                               we have not polled yet */
} rg_kafka_stats_t;

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
