/*
 * sink.h - where merged epochs go: the interface the core flushes through.
 *
 * The core never names a database. A sink is a struct of function pointers
 * plus an opaque pointer; the adapters (railgun/sinks.h: SQLite, MariaDB)
 * fill one in, and so can any store that has transactions. The flusher
 * drives it, one epoch at a time:
 *
 *   begin -> write_offsets -> write_merged* -> write_merged_bytes*
 *         -> write_staged* -> write_failures* -> write_marks* -> commit
 *                       (any failure)  -> rollback, then retry or stop
 *
 * so the merged rows and each partition's next offset land in ONE
 * transaction: after a crash the stored offsets say exactly which events
 * the stored rows contain.
 *
 * What each call stores (table names and columns are the sink's own
 * configuration):
 *   write_merged        per integer key: stored value += row.value
 *   write_merged_bytes  per byte-string key: stored value += row.value
 *   write_staged        upsert (key, key2) -> (value, ts), in order: the
 *                       last row of a pair wins
 *   write_offsets       per partition: next offset (all below are stored),
 *                       fenced by the owner epoch that claim() took
 *   write_failures      per failed event (partition, offset): the
 *                       delayed retry queue and the dead-letter queue
 *                       (rg_failure_t below), in order
 *   write_marks         per (partition, producer): the producer marks
 *                       (rg_mark_t below) that changed in the epoch
 *
 * Required: begin, write_merged, write_offsets, commit, rollback.
 * Optional, and what their absence (NULL) means:
 *   write_merged_bytes  the sink stores no byte-string keys:
 *                       rg_delta_merge_bytes() fails with RG_EINVAL
 *   write_staged        the sink has no staged table: rg_delta_stage()
 *                       fails with RG_EINVAL
 *   write_failures, scan_failures (both or neither)
 *                       the sink keeps no failures: events still waiting
 *                       for a retry when their epoch closes stay in
 *                       memory only (lost by a crash), and dead letters go
 *                       to the engine's dead-letter callback only
 *                       (railgun/engine.h, rg_engine_set_dead_letter_cb)
 *   claim               no fencing and no stored positions: a source
 *                       starts where its own offsets say
 *   reader_open, lookup, reader_close (all three or none)
 *                       no read side: a processor that needs stored state
 *                       (the likes job) starts every pair from nothing
 *   scan                rows cannot be read back (verification)
 *   write_marks, scan_marks (both or neither)
 *                       no exactly-once across redelivery: a message's
 *                       identity (rg_msg_t.producer_id) is ignored, so a
 *                       message a producer replayed twice counts twice
 *   close               nothing to free
 *
 * Fencing: claim() makes this sink the owner of a partition (owner_epoch
 * + 1) and returns the stored next offset; write_offsets() updates a row
 * only while owner_epoch is still ours. When another process claimed the
 * partition since, the update touches 0 rows and write_offsets() returns
 * RG_ESTALE: the flusher rolls back, so a stale owner's flush changes
 * nothing.
 *
 * Ambiguous commits: a connection lost during COMMIT leaves the client not
 * knowing whether the epoch landed. The flusher then retries it, and
 * write_offsets() (which the flusher calls first in a transaction) must
 * return RG_EEXIST when the row already holds next_offset with our
 * owner_epoch: that epoch is stored, and the flusher rolls the retry back
 * instead of adding its counts twice. The flusher never writes an offset
 * equal to the stored one otherwise.
 *
 * Errors: every call returns 0 or a negative RG_E* code with a one-line
 * message in errstr. rg_err_is_retriable(code) (RG_EIO: connection lost,
 * lock timeout, deadlock, busy, disk full) makes the flusher roll back and
 * retry with backoff; any other code (schema missing, access denied,
 * RG_ESTALE) stops the engine with the message.
 *
 * Threads: begin .. commit, rollback, claim and close run on one thread at
 * a time: the flusher's, or the caller's while the flusher has nothing to
 * write (before the engine starts; the Kafka source claims from its
 * rebalance callback, where nothing is in flight: before the first event,
 * or after the revoke's rg_dispatcher_flush()). A reader (reader_open ..
 * reader_close) belongs to one worker thread and may run concurrently with
 * the flusher and other readers.
 */
#ifndef RAILGUN_SINK_H
#define RAILGUN_SINK_H

#include <stddef.h>
#include <stdint.h>
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One row: merged (key, value) or staged (key, key2, value, ts). */
typedef struct rg_row_s {
    int64_t key;
    int64_t key2;
    int64_t value;
    int64_t ts;     /* epoch milliseconds; 0 = now */
} rg_row_t;

/* One merged row with a byte-string key (1 .. RG_DELTA_KEY_MAX bytes,
 * railgun/flush.h); key points into the engine's memory for the call. */
typedef struct rg_bytes_row_s {
    const void *key;
    size_t      len;
    int64_t     value;
} rg_bytes_row_t;

/* One partition's position: everything below next_offset is stored. */
typedef struct rg_offset_s {
    int32_t partition;
    int64_t next_offset;
} rg_offset_t;

typedef struct rg_sink_reader_s rg_sink_reader_t;

/* Sequences a producer mark remembers below its highest one. */
#define RG_MARK_WINDOW 8192

/*
 * A producer mark: which sequences of one producer (rg_msg_t.producer_id)
 * one partition has applied. Every seq <= hi - RG_MARK_WINDOW counts as
 * applied; of the seqs in (hi - RG_MARK_WINDOW, hi], those whose bit is
 * set: seq s is bit (s % RG_MARK_WINDOW) % 8 of byte
 * (s % RG_MARK_WINDOW) / 8 of seen (a ring over the window, so the bytes
 * mean the same on any machine). Written in the epoch's transaction beside
 * the partition's offset, so after a crash the marks say exactly which
 * identities the stored rows hold.
 */
typedef struct rg_mark_s {
    int32_t       partition;
    uint64_t      producer_id;
    uint64_t      hi;
    unsigned char seen[RG_MARK_WINDOW / 8];
} rg_mark_t;

/* What a failure row is, or what write_failures() does with it. */
enum {
    RG_FAILURE_DELAYED = 1, /* waits for a retry: upsert as delayed */
    RG_FAILURE_DEAD = 2,    /* dead letter: upsert as dead (replaces a
                               delayed row of the same event) */
    RG_FAILURE_CLEARED = 3, /* applied at last: delete the delayed row of
                               (partition, offset), if any; a dead row
                               stays (write only, never scanned) */
    RG_FAILURE_UNFORWARDED = 4, /* scan_failures only: the dead rows not
                               yet forwarded to a dead-letter topic (the
                               SQL sinks: forwarded_ms IS NULL; railgun/
                               sinks.h); rows come back as DEAD */
};

enum {
    /* payload is the raw message value (and msg_key its key): unpack
     * rejected it. Otherwise payload is the unpacked event's payload,
     * what a retry hands the processor again. */
    RG_FAILURE_F_MESSAGE = 1u << 0,
    /* payload was cut at the engine's retry.payload.max.bytes */
    RG_FAILURE_F_TRUNCATED = 1u << 1,
};

/* Longest reasons string of a failure row, the NUL included. */
#define RG_FAILURE_REASONS_MAX 512

/*
 * One failed event, keyed by where it came from: (partition, offset) is
 * unique (an event fails for good once). Pointers point into the
 * engine's (or the sink's, for scan_failures) memory for the call.
 */
typedef struct rg_failure_s {
    int32_t     state;       /* RG_FAILURE_* */
    int32_t     partition;
    int64_t     offset;
    uint64_t    key;         /* routing key (rg_event_t.key) */
    uint32_t    attempts;    /* attempts made so far (0: never run, e.g.
                                undecodable) */
    uint32_t    flags;       /* RG_FAILURE_F_* */
    int64_t     first_ms;    /* wall clock, epoch ms: first attempt */
    int64_t     last_ms;     /* ... last attempt */
    int64_t     due_ms;      /* DELAYED: next attempt not before */
    const char *reasons;     /* NUL-terminated: the reason of each attempt,
                                "; "-joined, oldest first, cut to
                                RG_FAILURE_REASONS_MAX - 1 bytes */
    const void *msg_key;     /* RG_FAILURE_F_MESSAGE: the message key */
    size_t      msg_key_len;
    const void *payload;
    size_t      payload_len;
    uint32_t    event_len;   /* rg_event_t.len of the event (payload is
                                its bytes); 0 for a message */
} rg_failure_t;

/* Tables for rg_sink_t.scan. */
enum { RG_SINK_MERGED = 0, RG_SINK_STAGED = 1 };

typedef struct rg_sink_s {
    /* Starts the transaction of `epoch`. */
    int (*begin)(void *self, uint64_t epoch, char *errstr, size_t size);
    /* stored value += value for each row (rows with value 0 may be
     * skipped). */
    int (*write_merged)(void *self, const rg_row_t *rows, size_t n,
                        char *errstr, size_t size);
    /* The same for byte-string keys. Optional. */
    int (*write_merged_bytes)(void *self, const rg_bytes_row_t *rows,
                              size_t n, char *errstr, size_t size);
    /* Upserts the staged rows in order. Optional. */
    int (*write_staged)(void *self, const rg_row_t *rows, size_t n,
                        char *errstr, size_t size);
    /* Stores next offsets of claimed partitions; RG_ESTALE when fenced,
     * RG_EEXIST when they are stored already (see above). */
    int (*write_offsets)(void *self, const rg_offset_t *offs, size_t n,
                         char *errstr, size_t size);
    int (*commit)(void *self, char *errstr, size_t size);
    /* Never fails in a way the caller can act on; the next begin starts
     * clean. */
    void (*rollback)(void *self);
    /*
     * Claims partitions[0..n) for this sink (owner_epoch + 1, one
     * transaction) and fills next_out[i] with the stored next offset, or
     * -1 when none is stored. Optional.
     */
    int (*claim)(void *self, const int32_t *partitions, size_t n,
                 int64_t *next_out, char *errstr, size_t size);
    /*
     * Point reads of staged rows for one worker: lookup fills rows[i].value
     * with the stored value of (key, key2), or -1 when there is no row.
     * Optional (all three or none).
     */
    rg_sink_reader_t *(*reader_open)(void *self, char *errstr, size_t size);
    int (*lookup)(rg_sink_reader_t *r, rg_row_t *rows, size_t n,
                  char *errstr, size_t size);
    void (*reader_close)(rg_sink_reader_t *r);
    /*
     * Reads a whole table back (verification, tests): calls cb once per
     * row of RG_SINK_MERGED (key, value = count) or RG_SINK_STAGED (key,
     * key2, value = state, ts = mtime). Optional.
     */
    int (*scan)(void *self, int table,
                void (*cb)(void *arg, const rg_row_t *row), void *arg,
                char *errstr, size_t size);
    /* Frees the sink (readers are closed first). Optional. */
    void (*close)(void *self);
    /*
     * The version the transaction just committed left in the sink: SQL
     * sinks with sink.version=true bump a version row first thing in
     * every epoch's transaction (its row lock orders the epochs of every
     * process sharing the database), so a reader can tell which epochs a
     * read includes. 0 when the sink keeps none. Called on the flusher
     * after commit. Optional.
     */
    int64_t (*version)(void *self);
    void *self;
    /* (After self: a sink that lists its functions in order without
     * these keeps none.)
     *
     * The failures of the epoch, in order (see RG_FAILURE_*), inside its
     * transaction: a delayed event's row, the row that turns it into a
     * dead letter, and the removal when a retry finally applied it, each
     * commit with the epoch whose rows they match. Optional (with
     * scan_failures).
     */
    int (*write_failures)(void *self, const rg_failure_t *rows, size_t n,
                          char *errstr, size_t size);
    /*
     * Reads failure rows back: state RG_FAILURE_DELAYED or _DEAD (0: both;
     * _UNFORWARDED: the dead ones not forwarded yet, for sinks that keep
     * that mark, RG_EINVAL from the others),
     * of partitions[0..nparts) (nparts 0: every partition), in (partition,
     * offset) order; cb once per row (its pointers valid for the call).
     * Restart and rebalance reload delayed events from here; operators
     * list dead letters. Same threads as claim. Optional (with
     * write_failures).
     */
    int (*scan_failures)(void *self, int state, const int32_t *partitions,
                         size_t nparts,
                         void (*cb)(void *arg, const rg_failure_t *row),
                         void *arg, char *errstr, size_t size);
    /*
     * Producer marks (rg_mark_t): write_marks upserts the marks that
     * changed in the epoch, per (partition, producer_id), inside its
     * transaction (after write_offsets); scan_marks reads back the marks
     * of partitions[0..nparts) (cb once per row, valid for the call), on
     * the threads of claim, after claim. Optional, both or neither;
     * without them a message's identity is ignored (applied as it comes).
     */
    int (*write_marks)(void *self, const rg_mark_t *marks, size_t n,
                       char *errstr, size_t size);
    int (*scan_marks)(void *self, const int32_t *partitions, size_t nparts,
                      void (*cb)(void *arg, const rg_mark_t *mark),
                      void *arg, char *errstr, size_t size);
} rg_sink_t;

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_SINK_H */
