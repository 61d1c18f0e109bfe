/*
 * spool.h - the producer's durable local spool (internal to the Kafka
 * adapter). While Kafka is down the producer appends every message here;
 * when Kafka is back it replays the spool to Kafka in order and the spool
 * deletes what is done. A producer killed in degraded mode replays what it
 * had not finished when it starts again.
 *
 * On disk (one directory, `fallback.spool.dir`; byte layout in spool.c):
 *   NNNNNNNNNNNNNNNNNNNN.seg  segments named by the LSN of their first
 *                             record; a 32-byte header, then records
 *   done.ckpt                 the done state (watermark + bits above it),
 *                             replaced atomically (write, fdatasync,
 *                             rename, fsync of the directory)
 *   lock                      flock()ed while a spool is open: one
 *                             process per directory
 * Every record is checksummed (CRC32C) and numbered by its LSN, the
 * record's index in the spool, counting up from 0 across segments and
 * restarts (an LSN is never reused while a record or a done bit may still
 * name it).
 *
 * Invariants
 *   S1 Records are durable in LSN order: when LSN n is durable, so is
 *      every record below n (one writer, the syncer thread, writes and
 *      fdatasyncs in order).
 *   S2 A segment receives its first byte only after the segment before it
 *      was fdatasynced whole, so only the newest segment can hold a torn
 *      record; a bad record in an older one is corruption, and open()
 *      refuses it rather than drop durable records.
 *   S3 A segment file is unlinked only after a durable checkpoint whose
 *      watermark passes its last record.
 *   S4 The checkpoint never holds a done mark for a record that is not
 *      durable (marks above the durable LSN wait for the next one), so a
 *      torn tail can never take a done bit with it onto a new record.
 *   S5 Bounded: bytes on disk plus bytes staged <= fallback.spool.max.bytes;
 *      staging memory <= 2 x (fallback.spool.sync.bytes + largest record);
 *      done bits <= max.bytes / 56 (a record is at least 56 bytes).
 *
 * Durability: rg__spool_append() copies the record into the staging buffer
 * and returns its LSN (a ticket) without waiting for the disk. The syncer
 * thread writes the staging buffer with one write() and makes it durable
 * with one fdatasync() when it holds fallback.spool.sync.bytes, or when its
 * oldest record has waited fallback.spool.sync.ms, whichever comes first
 * (group commit: every record of the batch shares one fdatasync). A ticket
 * is durable once rg__spool_wait() returns 0 for it.
 *
 * Synchronization table (any call may run on any thread)
 *                   append  wait/sync/  mark_done  cursor_*  stats   close
 *                           flush
 *   append(_burst)   yes     yes         yes        yes       yes     no
 *   wait/sync/flush  yes     yes         yes        yes       yes     no
 *   mark_done        yes     yes         yes        yes       yes     no
 *   cursor_* (own)   yes     yes         yes        no (1)    yes     no
 *   stats            yes     yes         yes        yes       yes     no
 * (1) one cursor is used by one thread at a time; distinct cursors may run
 *     together. Every cursor must be destroyed before rg__spool_close().
 * What a caller may rely on: a record's bytes are read back by a cursor
 * exactly as appended; a cursor yields records in LSN order; once
 * rg__spool_wait(lsn) returned 0 the record survives kill -9 and power
 * loss (it was fdatasynced), and a record appended by one thread gets a
 * higher LSN than every record that thread appended before it.
 */
#ifndef RG_SPOOL_H
#define RG_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"

/*
 * The spool's properties, in the core table's row format
 * (engine/src/core/conf_props.h: ID, name, TYPE, default, min, max, check,
 * doc), so the integrator can splice these rows into the table. Until then
 * rg__spool_opts_from_conf() falls back to these defaults for any name the
 * table does not know, and checks the bounds itself.
 */
#define RG_SPOOL_PROPS(XX)                                                   \
    XX(FALLBACK_SPOOL_DIR, "fallback.spool.dir", STR, "", 0, 0, NULL,        \
       "Degraded mode: directory of the producer's durable spool (created " \
       "if missing; one producer process per directory, enforced with a "   \
       "lock file). Empty: no spool.")                                      \
    XX(FALLBACK_SPOOL_SEGMENT_BYTES, "fallback.spool.segment.bytes", INT,    \
       "67108864", 65536, 1073741824, NULL,                                  \
       "Degraded mode: size of one spool segment file. A segment is "      \
       "deleted once every record in it is done, so this is also the "      \
       "granularity at which replayed space is given back. A record "       \
       "larger than a segment is refused.")                                 \
    XX(FALLBACK_SPOOL_MAX_BYTES, "fallback.spool.max.bytes", INT,            \
       "1073741824", 131072, 1125899906842624LL, NULL,                       \
       "Degraded mode: most bytes the spool may hold on disk, headers "     \
       "included; at the bound a send fails with RG_EFULL and nothing "     \
       "already accepted is dropped. At least twice "                       \
       "fallback.spool.segment.bytes.")                                      \
    XX(FALLBACK_SPOOL_SYNC_MS, "fallback.spool.sync.ms", INT, "10", 0,       \
       60000, NULL,                                                          \
       "Degraded mode: longest time an appended record waits before the "   \
       "group commit (one write() and one fdatasync() for every record "    \
       "staged) that makes it durable. 0: commit as soon as one is "        \
       "staged.")                                                            \
    XX(FALLBACK_SPOOL_SYNC_BYTES, "fallback.spool.sync.bytes", INT,          \
       "1048576", 1, 268435456, NULL,                                        \
       "Degraded mode: a group commit starts as soon as this many bytes "   \
       "are staged, before fallback.spool.sync.ms is up. Staging memory "   \
       "is about twice this; appends wait (within their time budget) "      \
       "while both halves are full.")                                       \
    XX(FALLBACK_SPOOL_CHECKPOINT_MS, "fallback.spool.checkpoint.ms", INT,    \
       "100", 1, 60000, NULL,                                                \
       "Degraded mode: how often the spool's done marks are written to "    \
       "its checkpoint file (atomically, with fsync) and fully done "       \
       "segments deleted. After a crash, records done within the last "     \
       "interval are replayed again (and deduplicated by their producer "   \
       "sequence).")

/* Fixed sizes of the on-disk format (spool.c). */
#define RG_SPOOL_SEG_HDR_BYTES 32u
#define RG_SPOOL_REC_HDR_BYTES 56u

typedef struct rg_spool_s rg_spool_t;
typedef struct rg_spool_cursor_s rg_spool_cursor_t;

typedef struct rg_spool_opts_s {
    const char *dir;          /* kept by reference until open returns */
    int64_t segment_bytes;
    int64_t max_bytes;
    int64_t sync_ms;
    int64_t sync_bytes;
    int64_t checkpoint_ms;
} rg_spool_opts_t;

/* What a producer needs to send a message again later. */
typedef struct rg_spool_msg_s {
    const void *key;
    uint32_t key_len;
    const void *value;
    uint32_t value_len;
    uint64_t producer_id;     /* with seq: the exactly-once identity */
    uint64_t seq;             /* per-producer sequence */
    int64_t ts_ms;            /* the message's timestamp */
    int32_t partition;        /* partition hint; -1 when none */
} rg_spool_msg_t;

/* A record read back by a cursor. key and value point into the cursor's
 * buffer and stay valid until its next call. */
typedef struct rg_spool_rec_s {
    uint64_t lsn;
    rg_spool_msg_t msg;
} rg_spool_rec_t;

typedef struct rg_spool_stats_s {
    uint64_t bytes;           /* on disk + staged, headers included */
    uint64_t max_bytes;
    uint64_t segments;        /* segment files on disk */
    uint64_t next_lsn;        /* LSN the next append gets */
    uint64_t durable_lsn;     /* every LSN below is durable */
    uint64_t done_lsn;        /* every LSN below is done */
    uint64_t pending;         /* appended and not done */
    uint64_t appended;        /* appends since open */
    uint64_t syncs;           /* group commits (fdatasync batches) */
    uint64_t synced_bytes;    /* bytes written by them */
    uint64_t checkpoints;     /* checkpoint files written */
    uint64_t deleted_segments;
    uint64_t recovered;       /* records found at open, not done */
    uint64_t truncated_bytes; /* torn tail cut at open */
    bool has_last;            /* a record was found or appended: */
    uint64_t last_producer_id; /* the newest record's identity, so a */
    uint64_t last_seq;         /* restarted producer can go on after it */
} rg_spool_stats_t;

/* opts = every property's default (dir ""). */
void rg__spool_opts_default(rg_spool_opts_t *opts);

/*
 * Reads the fallback.spool.* properties from conf into opts; a property the
 * conf table does not have keeps its default. opts->dir points into conf.
 * Returns 0, or RG_EINVAL / RG_ERANGE with a one-line message naming the
 * property in errstr.
 */
int rg__spool_opts_from_conf(rg_spool_opts_t *opts, const rg_conf_t *conf,
                             char *errstr, size_t errstr_size);

/*
 * Opens (creating if missing) the spool in opts->dir, recovers it and
 * starts its syncer thread. Recovery keeps every valid record, cuts a torn
 * tail off the newest segment (counted in stats.truncated_bytes), deletes
 * segments the checkpoint shows done, and makes what it keeps durable.
 * NULL on failure with errno and a one-line reason in errstr: EINVAL (bad
 * options), EBUSY (another process has the directory open), EIO (a record
 * that was durable is bad: in a sealed segment, or below the durable LSN
 * the checkpoint recorded; or the checkpoint itself is corrupt, or a
 * segment is missing: the message names the file and offset and what to
 * do; that file was not changed), or the failing system call's errno.
 * Blocks for the recovery scan (it reads every segment once).
 */
rg_spool_t *rg__spool_open(const rg_spool_opts_t *opts, char *errstr,
                           size_t errstr_size);

/*
 * Makes everything appended durable, writes the checkpoint, deletes fully
 * done segments, stops the syncer and frees the spool; NULL is fine. Every
 * cursor must be destroyed first and no other call may be running.
 */
void rg__spool_close(rg_spool_t *sp);

/* Bytes a record of this key and value takes in a segment. */
static inline uint64_t rg__spool_record_bytes(uint32_t key_len,
                                              uint32_t value_len)
{
    return RG_SPOOL_REC_HDR_BYTES + (uint64_t)key_len + value_len;
}

/*
 * Appends one record (copied) and returns its LSN in *lsn: a ticket for
 * rg__spool_wait(). The record is staged, not yet durable. Waits up to
 * timeout_ms (0: not at all) only when both staging halves are full (the
 * disk is behind). Returns 0, or:
 *   RG_EFULL      the spool holds fallback.spool.max.bytes: nothing is
 *                 dropped; space comes back as records are marked done
 *   RG_ETIMEDOUT  staging stayed full for timeout_ms
 *   RG_EINVAL     the record is larger than a segment
 *   RG_EIO        an earlier write or fdatasync failed; the spool takes no
 *                 more appends (what was durable stays; reopen to go on)
 *   RG_ESTOPPED   the spool is closing
 * On failure nothing was appended, and rg__spool_last_error() says why.
 */
int rg__spool_append(rg_spool_t *sp, const rg_spool_msg_t *m, uint64_t *lsn,
                     int timeout_ms);

/*
 * Appends msgs[0..n) in order under one lock hold, as long as they fit
 * without waiting (the first may wait up to timeout_ms, as in
 * rg__spool_append()); their LSNs are *first_lsn, *first_lsn + 1, ...
 * Returns how many were appended (at least 1), or, when none was, the
 * negative error rg__spool_append() would return for msgs[0]. A count
 * below n is not an error: append the rest again (the call then waits, or
 * says why it cannot go on).
 */
int rg__spool_append_burst(rg_spool_t *sp, const rg_spool_msg_t *msgs,
                           size_t n, uint64_t *first_lsn, int timeout_ms);

/*
 * Waits up to timeout_ms until record `lsn` is durable. Does not hurry the
 * group commit: the record is durable within fallback.spool.sync.ms plus
 * one write and fdatasync. Returns 0; RG_ETIMEDOUT (the record stays
 * appended and becomes durable later); RG_EIO (the write failed: the
 * record is not durable); RG_ERANGE (lsn was never appended).
 */
int rg__spool_wait(rg_spool_t *sp, uint64_t lsn, int timeout_ms);

/* Every LSN below this is durable (lock-free; for a poll loop that turns
 * tickets into delivery reports). */
uint64_t rg__spool_durable_lsn(rg_spool_t *sp);

/*
 * Starts a group commit now for everything appended (without waiting for
 * fallback.spool.sync.ms or .sync.bytes) and waits up to timeout_ms until
 * it is durable. For a producer's flush. Returns 0, RG_ETIMEDOUT or
 * RG_EIO.
 */
int rg__spool_sync(rg_spool_t *sp, int timeout_ms);

/*
 * Starts a group commit now for everything appended, then writes the
 * checkpoint and deletes fully done segments; waits up to timeout_ms for
 * all of it. Returns 0, RG_ETIMEDOUT or RG_EIO.
 */
int rg__spool_flush(rg_spool_t *sp, int timeout_ms);

/*
 * Marks record `lsn` done (replayed to Kafka, or applied directly by the
 * node that owns its partition), in any order. Returns 0 (also when it was
 * done already), or RG_ERANGE when lsn was never appended. A done mark
 * reaches the disk with the next checkpoint (fallback.spool.checkpoint.ms)
 * once the record is durable; a segment whose records are all done is then
 * deleted. Never blocks on I/O.
 */
int rg__spool_mark_done(rg_spool_t *sp, uint64_t lsn);

/*
 * A cursor over the records not done, oldest first. Starts at the oldest
 * record not done; sees a record once it is durable. NULL when out of
 * memory.
 */
rg_spool_cursor_t *rg__spool_cursor_new(rg_spool_t *sp);

/*
 * The next durable record not done, into *rec (its key and value point
 * into the cursor and stay valid until the next call). Returns 1, 0 when
 * the cursor has caught up (call again later: it resumes where it was), or
 * RG_EIO when a record read back fails its checksum (the message names the
 * file and offset). Skips records marked done, also those marked after the
 * cursor was created. Blocks on a pread() of the segment.
 */
int rg__spool_cursor_next(rg_spool_cursor_t *c, rg_spool_rec_t *rec);

/* Frees a cursor; NULL is fine. */
void rg__spool_cursor_destroy(rg_spool_cursor_t *c);

/* A snapshot of the counters. */
void rg__spool_stats(rg_spool_t *sp, rg_spool_stats_t *out);

/* Why the last failed call of this thread failed ("" if none). */
const char *rg__spool_last_error(void);

/* ---- the format's building blocks, for tests and the benchmark peer ---- */

/* CRC32C (Castagnoli) of len bytes, continuing from crc (start with 0). */
uint32_t rg__crc32c(uint32_t crc, const void *p, size_t len);

/* Encodes m as record `lsn` at dst (rg__spool_record_bytes() bytes);
 * returns the bytes written. */
size_t rg__spool_record_encode(void *dst, const rg_spool_msg_t *m,
                               uint64_t lsn);

/* Encodes a segment header for a segment whose first record is base_lsn
 * (RG_SPOOL_SEG_HDR_BYTES bytes). */
void rg__spool_segment_header(void *dst, uint64_t base_lsn);

#endif /* RG_SPOOL_H */
