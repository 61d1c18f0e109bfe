/*
 * run_dlq.h - `railgun run`'s dead-letter topic (dlq.topic): every dead
 * letter the sink's failures table holds for a partition this node holds
 * is also produced to a Kafka topic, after the epoch that holds it
 * committed, at least once, and marked forwarded (forwarded_ms) once
 * Kafka acknowledged it.
 *
 *   if (rg_run_dlq_wanted(conf))
 *       rg_run_dlq_new(conf, source, &d, ...);  // checked, connected
 *   rg_run_dlq_start(d, ...);                   // the forwarder thread
 *   ... the run ...
 *   rg_run_dlq_note_held(d);                    // the source stopped
 *                                               // polling, not closed yet
 *   rg_run_dlq_stop(d, timeout_ms);             // after the source closed:
 *                                               // a last look, then joined
 *   rg_run_dlq_destroy(d);
 *
 * How (the forwarder thread; its own connection to the database, its own
 * producer): every dlq.topic.poll.ms it asks the sink for the dead rows
 * not forwarded yet of the partitions the source holds now
 * (scan_failures(RG_FAILURE_UNFORWARDED), an indexed query per partition:
 * only committed rows are visible, so nothing is forwarded that a
 * rollback could take back), produces each keyed "TOPIC/PARTITION/OFFSET"
 * with one JSON object as the value (dlq_json.h, with the source's
 * "topic" added), waits for every delivery report (librdkafka's
 * message.timeout.ms is dlq.topic.timeout.ms, so each message has its
 * final status before the next look), and marks the delivered rows in one
 * transaction. A row produced but not marked (a crash between the two, a
 * lost acknowledgement) is produced again by the next look, on this node
 * or on the partition's next owner: at least once, and a consumer of the
 * topic drops repeats by the key. Two nodes forward one partition only
 * around a rebalance (each looks at the partitions it holds). The
 * producer keeps no spool: Kafka down means the rows wait in the table.
 * A partition that arrives is looked at at once; the held set is read
 * every 100 ms. A look sends at most 1000 letters (a full one is followed
 * by the next at once); a letter the producer refuses (larger than the
 * topic takes) is counted as failed and skipped, the others go on. Before
 * a look sends, every message of the one before has its report, so no
 * letter is in flight twice and a report always belongs to the look that
 * is running.
 *
 * Threads and data:
 *   main thread       new, start, note_held, stop, destroy
 *   forwarder thread  every scan, send, mark; the items and held sets
 *   any thread        rg_run_dlq_stats(): `stats` under `lock`
 *   `stopping`        set by stop under `lock` (the forwarder's wait);
 *                     read relaxed by the forwarder's sends too
 *   `final`           written by note_held under `lock`, read by the
 *                     forwarder under it
 */
#ifndef RG_RUN_DLQ_H
#define RG_RUN_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"
#include "railgun/kafka.h"

typedef struct rg_run_dlq_s rg_run_dlq_t;

/* The forwarder's counters; monotonic but `pending` and `last_error`. */
typedef struct rg_run_dlq_stats_s {
    uint64_t forwarded; /* letters delivered and marked */
    uint64_t failed;    /* deliveries that failed (produced again later) */
    uint64_t looks;     /* looks at the table */
    uint64_t pending;   /* not forwarded after the last look */
    uint64_t errors;    /* looks or marks the database failed */
    char last_error[256]; /* the last failure's reason, "" when none */
} rg_run_dlq_stats_t;

/* dlq.topic is set. */
bool rg_run_dlq_wanted(const rg_conf_t *conf);

/*
 * Checks the options (a sink with a failures table; dlq.topic is not the
 * source's topic), opens the database connections and the producer for
 * src's node. 0 with *out, or *out NULL and RG_EINVAL (errstr names the
 * property), RG_EIO / RG_ESTATE (the database), RG_ENOMEM.
 */
int rg_run_dlq_new(const rg_conf_t *conf, rg_kafka_source_t *src,
                   rg_run_dlq_t **out, char *errstr, size_t errstr_size);

/* Starts the forwarder thread. 0 or RG_ESYS with errstr. */
int rg_run_dlq_start(rg_run_dlq_t *d, char *errstr, size_t errstr_size);

/* Ends the thread after a last look (at the partitions noted, else at the
 * last ones seen held) whose
 * deliveries it waits for at most timeout_ms (what is left unmarked goes
 * out again from the next run). NULL or a never-started d is fine. */
void rg_run_dlq_stop(rg_run_dlq_t *d, int timeout_ms);

/* Notes the partitions the source holds now, for the stop's look: call it
 * once the source's run returned and before it closes (the close gives
 * them up). NULL is fine. */
void rg_run_dlq_note_held(rg_run_dlq_t *d);

void rg_run_dlq_stats(rg_run_dlq_t *d, rg_run_dlq_stats_t *out);

/* Stops if needed and frees. NULL is fine. */
void rg_run_dlq_destroy(rg_run_dlq_t *d);

#endif /* RG_RUN_DLQ_H */
