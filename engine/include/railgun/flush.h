/*
 * flush.h - epochs: per-worker deltas, barriers and the flusher.
 *
 * With a sink set (rg_engine_set_sink()), the engine runs in epoch mode:
 *
 *   dispatcher: every `flush.interval.ms` (or when a worker's delta holds
 *     `flush.max.keys` keys) it puts barrier E into every worker ring and
 *     snapshots, for each partition it owns, the next offset after its
 *     last event before the barrier.
 *   worker: processors merge into the worker's current delta
 *     (rg_ctx_delta()); at barrier E (from every dispatcher: aligned)
 *     the worker seals its delta of epoch E and starts E + 1.
 *   flusher thread: once every worker sealed E, writes all the sealed
 *     deltas of E and the offsets snapshot as ONE sink transaction. Only
 *     after the commit are those offsets handed to the commit callback
 *     (railgun/engine.h) as committable.
 *
 * So the sink always holds rows and offsets that match: after a crash,
 * resuming from the stored offsets applies every event exactly once.
 *
 * A delta merges counts per key, integer keys (rg_delta_merge()) and byte
 * strings of up to RG_DELTA_KEY_MAX bytes (rg_delta_merge_bytes(), e.g.
 * words), and stages rows for the sink's staged table (rg_delta_stage()).
 * Which of them a sink stores is the sink's business (railgun/sink.h): a
 * call the sink cannot store fails with RG_EINVAL at once, not at the
 * flush.
 *
 * Memory: a worker keeps at most `flush.max.pending.epochs` sealed deltas
 * waiting for the sink; at the bound it waits at the next barrier, its
 * rings fill and intake waits. Nothing is dropped. A delta holds at most
 * `merge.max.keys` keys (integer and byte-string keys together, the bytes
 * of the latter in an arena of up to merge.max.keys x 64 bytes) and as
 * many staged rows; a processor may merge at most one key and stage at
 * most one row per event, which the bound check in rg_engine_set_sink()
 * relies on.
 *
 * Ordering: everything a worker merged or staged before barrier E is in
 * epoch E's transaction; the transaction commits before the commit
 * callback reports E's offsets and before rg_engine_committed_epoch()
 * returns E (an acquire load: the caller then sees what E wrote).
 *
 * Sink failures: a retriable error (rg_err_is_retriable()) rolls back and
 * retries after `sink.retry.backoff.ms`, doubling up to
 * `sink.retry.backoff.max.ms`, with jitter; it is logged (a warning with
 * the sink's message, at most every 5 s with the count since the last
 * line) and shown in rg_engine_flush_stats().failing and
 * rg_engine_sink_error(). Any other error stops the engine: pushes fail
 * with RG_ESTOPPED, rg_engine_error() names the cause, and nothing more is
 * written (the stored offsets still match the rows). rg_engine_stop()
 * retries a failing sink for at most `shutdown.timeout.ms`, then stops
 * the same way: what was not stored is reprocessed after a restart.
 *
 * Threads: rg_ctx_delta() and rg_delta_*() on the owning worker only;
 * rg_dispatcher_poll() on the dispatcher's ingest thread; the rest on any
 * thread. The epoch hook runs on the flusher thread.
 */
#ifndef RAILGUN_FLUSH_H
#define RAILGUN_FLUSH_H

#include <stddef.h>
#include <stdint.h>
#include "railgun/engine.h"
#include "railgun/export.h"
#include "railgun/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_delta_s rg_delta_t;

/* Longest byte-string key rg_delta_merge_bytes() takes. */
#define RG_DELTA_KEY_MAX 256

/*
 * Puts the engine in epoch mode with `sink` (copied). On success the
 * engine owns it and closes it in rg_engine_destroy(); on failure it is
 * still the caller's. Once, before rg_engine_start(). Returns 0,
 * RG_ESTATE, RG_EINVAL (a required function is missing: see
 * railgun/sink.h), RG_ERANGE (merge.max.keys leaves no room above
 * flush.max.keys, see conf) or RG_ENOMEM, with a one-line reason in
 * errstr.
 */
RG_EXPORT int rg_engine_set_sink(rg_engine_t *e, const rg_sink_t *sink,
                                 char *errstr, size_t errstr_size);

/* The calling worker's open delta; NULL without a sink. Worker callbacks
 * only (the delta changes at every barrier: do not keep it). */
RG_EXPORT rg_delta_t *rg_ctx_delta(rg_ctx_t *ctx);

/* counts[key] += value in this epoch. 0 or RG_EFULL (see the bound). */
RG_EXPORT int rg_delta_merge(rg_delta_t *d, int64_t key, int64_t value);

/*
 * counts[key bytes] += value in this epoch; the bytes are copied. 0,
 * RG_EFULL (see the bound), RG_ENOMEM, or RG_EINVAL (len 0 or above
 * RG_DELTA_KEY_MAX, or the sink stores no byte-string keys: it has no
 * write_merged_bytes).
 */
RG_EXPORT int rg_delta_merge_bytes(rg_delta_t *d, const void *key,
                                   size_t len, int64_t value);

/*
 * Stages a row for the sink's staged table; a later row for the same
 * (key, key2) in the same epoch replaces it. 0, RG_EFULL, RG_ENOMEM, or
 * RG_EINVAL (the sink has no staged table: no write_staged).
 */
RG_EXPORT int rg_delta_stage(rg_delta_t *d, const rg_row_t *row);

/* The epoch this delta belongs to (1, 2, ...). */
RG_EXPORT uint64_t rg_delta_epoch(const rg_delta_t *d);

/* Keys merged (integer and byte-string keys) and rows staged in this
 * delta so far. */
RG_EXPORT size_t rg_delta_keys(const rg_delta_t *d);
RG_EXPORT size_t rg_delta_staged(const rg_delta_t *d);

/* The newest epoch the sink committed (0 before the first); any thread. */
RG_EXPORT uint64_t rg_engine_committed_epoch(const rg_engine_t *e);

/*
 * Inserts the barriers that are due (a flush was requested) without
 * pushing an event. Ingest loops call it when the source is idle, at
 * least every `flush.interval.ms`, as they would call rd_kafka_poll().
 * Returns 0 or RG_ESTOPPED. Ingest thread of d only.
 */
RG_EXPORT int rg_dispatcher_poll(rg_dispatcher_t *d);

/*
 * Closes d's open epoch now and waits until the sink committed it, for up
 * to timeout_ms: afterwards everything d accepted before the call is
 * stored, with its offsets (e.g. before a revoked partition is given up).
 * Returns 0, RG_ETIMEDOUT (the epoch is still on its way), RG_ESTOPPED
 * (the engine stopped or failed), RG_ESTATE (not started), RG_EINVAL
 * (timeout_ms < 0). Without a sink it only publishes what d wrote and
 * returns 0. Ingest thread of d only.
 */
RG_EXPORT int rg_dispatcher_flush(rg_dispatcher_t *d, int timeout_ms);

/* Points of an epoch's flush, for the epoch hook. */
typedef enum rg_epoch_stage_e {
    RG_EPOCH_BEFORE_COMMIT = 1, /* rows and offsets written, not committed */
    RG_EPOCH_COMMITTED,         /* committed, offsets not handed off yet */
} rg_epoch_stage_t;

/* Epoch hook: observes the flusher (tests kill the process here). */
typedef void (rg_epoch_hook_cb)(void *opaque, uint64_t epoch,
                                rg_epoch_stage_t stage);

/* Sets the epoch hook; before rg_engine_start() only (RG_ESTATE after). */
RG_EXPORT int rg_engine_set_epoch_hook(rg_engine_t *e, rg_epoch_hook_cb *cb,
                                       void *opaque);

/* A committed epoch, for the commit hook. Valid during the call only. */
typedef struct rg_epoch_commit_s {
    uint64_t epoch;
    int64_t version;        /* the sink's version after this epoch's
                               transaction (rg_sink_t.version); 0 when
                               the sink keeps none or it is unknown (a
                               retried commit that had landed: the caller
                               should treat what it derives from versions
                               as stale) */
    const int64_t *merged;  /* integer keys whose merged value changed */
    size_t nmerged;
    const rg_row_t *staged; /* the epoch's staged rows, each worker's in
                               its order */
    size_t nstaged;
} rg_epoch_commit_t;

typedef void (rg_epoch_commit_cb)(void *opaque, const rg_epoch_commit_t *c);

/*
 * Sets the commit hook: called on the flusher thread after each epoch's
 * sink transaction committed (never for a rolled-back one, not for
 * epochs with nothing to write), before the next epoch's begin; keep it
 * short (copy what you need and return: the write path waits for it).
 * Epoch mode only; before rg_engine_start() only (RG_ESTATE after).
 * A read cache beside the database is what it is for (railgun serve).
 */
RG_EXPORT int rg_engine_set_commit_hook(rg_engine_t *e,
                                        rg_epoch_commit_cb *cb, void *opaque);

/* Flush counters; monotonic. */
typedef struct rg_flush_stats_s {
    uint64_t epochs;          /* epochs committed */
    uint64_t transactions;    /* sink transactions committed (non-empty
                                 epochs) */
    uint64_t merged_rows;     /* merged rows written (both key kinds) */
    uint64_t staged_rows;     /* staged rows written */
    uint64_t retries;         /* transactions rolled back and retried */
    uint64_t failing;         /* failed attempts of the epoch being
                                 written now (0: the sink is healthy) */
    uint64_t pending_epochs;  /* sealed or requested, not committed yet */
} rg_flush_stats_t;

RG_EXPORT void rg_engine_flush_stats(rg_engine_t *e, rg_flush_stats_t *out);

/* Bucket counts of rg_flush_hist_t (the +Inf bucket comes on top). */
#define RG_FLUSH_TXN_BUCKETS 12
#define RG_FLUSH_ROWS_BUCKETS 12

/*
 * The committed sink transactions (non-empty epochs, as
 * rg_flush_stats_t.transactions; an attempt that failed and was retried
 * is not one) by how long the committed attempt took, begin to commit
 * returned, and by how many rows it wrote (merged + staged). counts[i]:
 * the transactions above bound i - 1 and at most bound i
 * (rg_flush_txn_bounds(), rg_flush_rows_bounds()); the last entry: above
 * the last bound. Not cumulative; monotonic. For Prometheus histograms.
 */
typedef struct rg_flush_hist_s {
    uint64_t txn_counts[RG_FLUSH_TXN_BUCKETS + 1];
    double txn_seconds_sum;
    uint64_t rows_counts[RG_FLUSH_ROWS_BUCKETS + 1];
    uint64_t rows_sum;
} rg_flush_hist_t;

/* The upper bounds: seconds (1 ms .. 10 s), and rows (1 .. 10M). */
RG_EXPORT const double *rg_flush_txn_bounds(void);
RG_EXPORT const double *rg_flush_rows_bounds(void);

/* Any thread; each count is a value it had (not one snapshot). */
RG_EXPORT void rg_engine_flush_hist(rg_engine_t *e, rg_flush_hist_t *out);

/*
 * The sink's last error message (the last failed attempt, even one a
 * retry then cured) into buf; returns 1 when there was one, else 0 (buf
 * gets ""). Any thread.
 */
RG_EXPORT int rg_engine_sink_error(rg_engine_t *e, char *buf, size_t size);

/*
 * Stops the engine on its own, as a fatal sink error does: new pushes fail
 * with RG_ESTOPPED, nothing more is written (what was not stored is
 * reprocessed after a restart) and rg_engine_error() returns the message.
 * For a processor that meets an error it cannot get past (skipping the
 * event would let its epoch commit without it). The first call's message
 * wins. Any thread, also a worker's callback; does not block.
 */
RG_EXPORT void rg_engine_fail(rg_engine_t *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Why the engine stopped on its own (a fatal sink error, or a stop that
 * gave up after shutdown.timeout.ms), as one line, or NULL while it has
 * not. Valid until rg_engine_destroy().
 */
RG_EXPORT const char *rg_engine_error(rg_engine_t *e);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_FLUSH_H */
