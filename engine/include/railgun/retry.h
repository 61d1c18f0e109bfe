/*
 * retry.h - failures: what a processor says about an event it could not
 * apply, and what the engine does with it: in-place backoff that parks
 * the event's key (not the worker), the delayed retry queue, and the
 * dead-letter queue. Per-key order is kept throughout, and nothing is
 * retried for ever.
 *
 * Results. A worker callback (do_event, pre_do, batch_do) that returns
 * without a call below has applied the event: done, as always. Otherwise,
 * for an event of the array the callback was handed:
 *   rg_ctx_retry(ctx, ev, reason)  transient: the processor applied
 *       nothing of the event; the engine runs it again later.
 *   rg_ctx_fail(ctx, ev, reason)   permanent: the processor applied
 *       nothing of it and never will; it becomes a dead letter.
 * A retried event's later events of the same order unit (with
 * `retry.order=key`: the processor's order_key, by default the routing
 * key, railgun/engine.h) must not be applied before it: in single mode the
 * engine holds them back itself; in batch mode pre_do and batch_do must
 * leave alone every event for which rg_ctx_blocked() is true (the event
 * they marked, and the later events of its key in the same call), and the
 * engine queues those behind it in order: a key's events count as
 * decided in the order of the array (a batch_do that applies them out of
 * that order must not retry an earlier one after applying a later one of
 * its key). Events of other keys flow on.
 * (Below, "key" means the order unit.)
 *
 * The path of a retried event (a worker's own timer, no thread):
 *   1. in place: it waits `retry.backoff.ms` x 2^(attempt - 1) (at most
 *      `retry.backoff.max.ms`, with jitter: half fixed, half random), its
 *      key parked: later events of the key queue behind it, in order.
 *   2. delayed: after `retry.inplace.attempts`, or when an epoch barrier
 *      reaches the worker while it waits, it joins the delayed retry
 *      queue: with a sink that keeps failures (railgun/sink.h:
 *      write_failures) its row, and the rows of the events queued behind
 *      it, are written in the epoch's transaction, and its removal commits
 *      with the epoch that finally applies it. So an epoch is complete:
 *      every event below its offsets is applied, delayed or dead-lettered
 *      in it. Once its in-place attempts are used up its attempts wait
 *      `retry.delay.ms` x 2^k (at most `retry.delay.max.ms`); one stored
 *      at a barrier earlier keeps its in-place schedule until then. The worker keeps its delayed events in
 *      memory too and schedules them itself; after a restart
 *      rg_engine_requeue() hands the stored ones back to their workers.
 *   3. dead: after `retry.max.attempts` attempts in all, or when its first
 *      attempt is older than `retry.max.age.ms`, or at rg_ctx_fail(), the
 *      event becomes a dead letter: a RG_FAILURE_DEAD row in the epoch's
 *      transaction (sinks that keep failures) and a call of the dead-letter
 *      callback. The events behind it then go on.
 * Messages that unpack rejects are dead letters too (RG_FAILURE_F_MESSAGE,
 * the raw key and value up to `retry.payload.max.bytes`), in the epoch
 * whose offsets pass them.
 *
 * Bounds. A worker holds at most `retry.max.parked.events` events that
 * wait (parked in place, delayed, or queued behind one of them), above
 * what a restart handed back; at the bound it reads no more from its
 * rings, so its rings fill and intake waits, as for a slow worker:
 * nothing is dropped. Like a slow worker it then also holds up the
 * node's epochs (its next barrier is behind what it does not read) until
 * a waiting event ends. A stop reads on past the bound. Reasons are cut to
 * RG_FAILURE_REASONS_MAX bytes, payloads in rows to
 * `retry.payload.max.bytes` (flagged RG_FAILURE_F_TRUNCATED; such an event
 * cannot be retried after a restart and becomes a dead letter then).
 *
 * Without a sink (no epoch mode) an event's offset is done when it was
 * applied or dead-lettered: a waiting event holds its partition's
 * watermark, and a crash redelivers it (at least once, as every event
 * there). With a sink that keeps no failures, events still waiting when
 * their epoch closes are in memory only: a crash loses them (logged at
 * stop when any were left). rg_engine_stop() gives waiting events until
 * `shutdown.timeout.ms` to finish when they are in memory only.
 *
 * Threads: rg_ctx_* from the worker callbacks, for the callback's own
 * events only. The dead-letter callback runs on worker threads (several
 * at once: it must be thread-safe) and on ingest threads (undecodable
 * messages), before the epoch holding the letter commits: after a crash
 * the same letter may be reported again (at least once).
 */
#ifndef RAILGUN_RETRY_H
#define RAILGUN_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/engine.h"
#include "railgun/export.h"
#include "railgun/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest reason of one attempt kept, the NUL included. */
#define RG_RETRY_REASON_MAX 64

/*
 * Marks ev (of the array the current callback got) for a retry, with a
 * short reason (may be NULL; cut to RG_RETRY_REASON_MAX - 1 bytes).
 * Returns 0, or RG_EINVAL when ev is not an event of the current call or
 * was marked already (then nothing changes).
 */
RG_EXPORT int rg_ctx_retry(rg_ctx_t *ctx, const rg_event_t *ev,
                           const char *reason);

/* Marks ev as failed for good (a dead letter). Same rules as retry. */
RG_EXPORT int rg_ctx_fail(rg_ctx_t *ctx, const rg_event_t *ev,
                          const char *reason);

/*
 * True when the processor must leave ev alone in this call: ev was
 * marked, or an earlier event of its key in this call was retried (the
 * engine queues ev behind it). Always false in a call that retries a
 * waiting event (that event is the call's only one).
 */
RG_EXPORT bool rg_ctx_blocked(const rg_ctx_t *ctx, const rg_event_t *ev);

/* Which attempt this call is for ev: 1 the first time, 2 the first
 * retry, and so on (counted across restarts when the sink keeps
 * failures). */
RG_EXPORT unsigned rg_ctx_attempt(const rg_ctx_t *ctx, const rg_event_t *ev);

/*
 * From a processor's unpack, before it returns an error: `reason` (a
 * string that outlives the call, e.g. a literal) becomes the reason of
 * the message's dead letter instead of the error's name. Ingest thread.
 */
RG_EXPORT void rg_unpack_reason(const char *reason);

/* Dead-letter callback (see Threads above). row's pointers are valid for
 * the call. */
typedef void (rg_dead_letter_cb)(void *opaque, const rg_failure_t *row);

/* Sets it, before rg_engine_start() (RG_ESTATE after). Returns 0. */
RG_EXPORT int rg_engine_set_dead_letter_cb(rg_engine_t *e,
                                           rg_dead_letter_cb *cb,
                                           void *opaque);

/*
 * Loads the delayed events of partitions[0..n) from the engine's sink
 * (scan_failures) and hands each to the worker that owns its key, ahead
 * of anything pushed for those partitions afterwards. Call it after the
 * sink claimed the partitions and before pushing their messages (the
 * Kafka source does, at assign). With hot lanes (hotkey.lanes) an event
 * goes to its key's route on the dispatcher that owns its partition:
 * with several dispatchers, rg_dispatcher_reset() the partitions on
 * theirs first (as the Kafka source does); while the engine stops, rows
 * are left stored, not handed back. Returns the number of events handed
 * back, or a negative RG_E* code: RG_ESTATE (no sink), RG_ENOMEM, the
 * sink's error (errstr). Before or after rg_engine_start(). A sink
 * without failures returns 0.
 */
RG_EXPORT int64_t rg_engine_requeue(rg_engine_t *e, const int32_t *partitions,
                                    size_t n, char *errstr,
                                    size_t errstr_size);

/*
 * Before a source gives partitions[0..n) up (a rebalance's revoke), and
 * before its rg_dispatcher_flush(): their waiting events are stored with
 * the flush's epoch (delayed rows) and then forgotten here, never run
 * again by this engine; the partitions' next owner requeues them. Without
 * a sink that keeps failures it does nothing. Any thread. Returns 0,
 * RG_EINVAL, RG_ENOMEM.
 */
RG_EXPORT int rg_engine_release(rg_engine_t *e, const int32_t *partitions,
                                size_t n);

/* Why an event became a dead letter (a fixed set, for metrics). */
typedef enum rg_dead_reason_e {
    RG_DEAD_FAILED = 0,     /* the processor said so (rg_ctx_fail()) */
    RG_DEAD_ATTEMPTS,       /* retry.max.attempts used up */
    RG_DEAD_AGE,            /* older than retry.max.age.ms */
    RG_DEAD_UNDECODABLE,    /* unpack rejected the message */
    RG_DEAD_UNRUNNABLE,     /* a stored payload was cut: cannot run again */
    RG_DEAD__COUNT
} rg_dead_reason_t;

/* "failed", "attempts", "age", "undecodable", "unrunnable". */
RG_EXPORT const char *rg_dead_reason_name(rg_dead_reason_t r);

/*
 * For an engine about to stop (a source that is closing, before it gives
 * its partitions up): from now on waiting events retry at
 * `retry.backoff.ms` at the latest, and this call waits up to timeout_ms
 * (0: until they end; they do, after their attempts) for none to wait.
 * Returns 0, RG_ETIMEDOUT (some still wait, or the engine failed),
 * RG_EINVAL. rg_engine_stop() calls it with shutdown.timeout.ms. Any
 * thread but a worker.
 */
RG_EXPORT int rg_engine_retry_finish(rg_engine_t *e, int timeout_ms);

/* Failure counters, monotonic except the gauges. */
typedef struct rg_retry_stats_s {
    uint64_t retried;       /* retry marks (attempts that failed) */
    uint64_t failed;        /* fail marks */
    uint64_t delayed;       /* events that joined the delayed queue */
    uint64_t dead_lettered; /* events and messages dead-lettered */
    uint64_t recovered;     /* waiting events applied at last */
    uint64_t requeued;      /* delayed events loaded back from the sink */
    uint64_t released;      /* waiting events given up to a partition's
                               next owner (rg_engine_release(); counted
                               as processed here) */
    uint64_t parked_now;    /* gauge: events waiting now (in place,
                               delayed or queued behind) */
    uint64_t keys_now;      /* gauge: keys parked now */
    uint64_t full_waits;    /* times a worker stopped reading its rings at
                               retry.max.parked.events */
    uint64_t dead_by[RG_DEAD__COUNT]; /* dead_lettered, by reason */
} rg_retry_stats_t;

/* Sums every worker's counters. Any thread. */
RG_EXPORT void rg_engine_retry_stats(rg_engine_t *e, rg_retry_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_RETRY_H */
