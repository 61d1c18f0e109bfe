/*
 * engine.h - the railgun pipeline: dispatchers, rings, pinned workers.
 *
 *   ingest thread(s)               workers (pinned threads)
 *   rg_dispatcher_push*() --unpack-+-> ring[d][0] -> worker 0: do / batch_do
 *                                  +-> ring[d][1] -> worker 1: do / batch_do
 *
 * An engine has `dispatchers` dispatcher handles and `workers` workers, with
 * one SPSC ring per (dispatcher, worker) pair, so no ring ever has two
 * producers. Each ingest thread owns one dispatcher handle. A message is
 * unpacked on the ingest thread into an rg_event_t whose 64-bit routing key
 * picks the worker (rg_hash64 + rg_hash_reduce): all events of one key go to
 * one worker and, from one dispatcher, arrive there in push order. Before
 * unpack runs, ev->key holds rg_hash_bytes() of the message key (0 when
 * the message has none), so an unpack that does not set a routing key of
 * its own routes by the message key.
 *
 * Offsets: every accepted event is begun in its partition's ACK tracker
 * (railgun/ack.h) and done once its processor returns. (In epoch mode,
 * with a sink set, an event is done when the transaction of its epoch
 * commits instead: see railgun/flush.h.) A committer thread
 * advances each partition's watermark, the next offset below which
 * everything is processed, and hands the partitions whose watermark moved
 * to the commit callback, at most every `ack.commit.interval.ms` or after
 * `ack.commit.max.events` completions on a worker. A partition belongs to
 * the dispatcher that first pushed it; its offsets must increase (gaps
 * count as done).
 *
 * Backpressure, never loss: when a worker's ring is full the pushing
 * dispatcher waits (spins, then yields, then parks on a futex) until the
 * worker frees space. Idle workers spin briefly, then park too, so an idle
 * engine uses no CPU.
 *
 * Threads and callbacks
 *   - processor->unpack runs on the ingest thread that calls push.
 *   - processor->do_event, pre_do and batch_do run on the owning worker
 *     thread, never concurrently for the same worker, and get that
 *     worker's context (rg_ctx_t): its index, the engine, its delta; an
 *     event's external payload release callback runs on that worker right
 *     after processing.
 *   - the commit callback runs on the engine's committer thread, never on a
 *     worker or an ingest thread, one call at a time.
 *   - the log callback (railgun/conf.h) runs on the thread that logs.
 *
 * Memory ordering a caller may rely on
 *   - Whatever the ingest thread wrote before a push (the message, memory
 *     an external payload points to) is visible to the worker processing
 *     the event; nothing else is ordered between ingest threads and
 *     workers.
 *   - A processor's writes for an event happen before any watermark that
 *     passes the event's offset (rg_engine_partition_stats()) and before
 *     the commit callback call that reports that offset. In epoch mode
 *     (railgun/flush.h) they also happen before the epoch's sink
 *     transaction.
 *   - After rg_engine_stop() returns, every processor write is visible to
 *     the caller.
 *
 * Synchronization table ("push*" includes rg_dispatcher_reset and
 * rg_dispatcher_poll)
 *                          push* (same d)  push* (other d)  stop   destroy
 *   rg_dispatcher_push*     no              yes              yes    no
 *   rg_engine_stop          yes             yes              yes    no
 *   rg_engine_stats,
 *   rg_engine_partition_stats yes           yes              yes    no
 */
#ifndef RAILGUN_ENGINE_H
#define RAILGUN_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RG_EVENT_INLINE_MAX 32

struct rg_mark_s; /* railgun/sink.h */

/* Release callback of an external payload: (payload pointer, opaque). */
typedef void (rg_release_cb)(void *ptr, void *opaque);

enum {
    /* payload is data.ext (pointer + release), not data.bytes */
    RG_EVENT_F_EXTERNAL = 1u << 0,
};

/*
 * One event: 64 bytes, one cache line (a static assertion in the library
 * holds it to that). The payload is either up to
 * RG_EVENT_INLINE_MAX bytes inline, or a pointer whose release callback the
 * worker calls once the processor is done with it.
 */
typedef struct rg_event_s {
    uint64_t key;        /* routing key: picks the worker */
    int64_t  offset;     /* position in the source partition */
    int32_t  partition;  /* source partition */
    uint32_t len;        /* payload length in bytes */
    uint16_t source;     /* dispatcher index (set by the engine) */
    uint8_t  flags;      /* RG_EVENT_F_*; the engine clears other bits
                            as it pushes (they are its own) */
    uint8_t  reserved;
    uint32_t ack_gen;    /* ACK tracker generation (set by the engine) */
    union {
        unsigned char bytes[RG_EVENT_INLINE_MAX];
        struct {
            void        *ptr;
            rg_release_cb *release;
            void        *opaque;
        } ext;
    } data;
} rg_event_t;

/* A raw message as an ingest adapter received it. Borrowed for the call. */
typedef struct rg_msg_s {
    int32_t     partition;
    int64_t     offset;
    const void *key;
    size_t      key_len;
    const void *value;
    size_t      value_len;
    /* The message's identity, for exactly-once across redelivery:
     * producer_id 0 means none (the message is applied as it comes). With
     * an id, and a sink that stores producer marks (rg_sink_t.write_marks),
     * the dispatcher applies (partition, producer_id, seq) at most once:
     * a copy of one already applied (a replay whose acknowledgement was
     * lost, a restarted producer replaying its spool) is skipped, its
     * offset done, and counted in rg_engine_stats_t.deduplicated. A
     * producer's seqs must rise in the order it first sends them, and a
     * redelivery may come at most RG_MARK_WINDOW seqs behind the highest
     * one applied (railgun/sink.h, rg_mark_t). The Kafka source fills
     * these from the headers rg-producer-id and rg-seq (railgun/producer.h
     * sets them on replayed messages) when source.identity is on. */
    uint64_t    producer_id;
    uint64_t    seq;
} rg_msg_t;

typedef struct rg_engine_s rg_engine_t;
typedef struct rg_dispatcher_s rg_dispatcher_t;

/*
 * A worker's context, handed to the processor's worker callbacks: from it
 * a processor reaches the engine, the worker's index (for per-worker
 * state) and, in epoch mode, the worker's open delta (railgun/flush.h),
 * without globals. Owned by the engine; valid during the callback only.
 */
typedef struct rg_ctx_s rg_ctx_t;

/* The engine the calling worker belongs to. */
RG_EXPORT rg_engine_t *rg_ctx_engine(const rg_ctx_t *ctx);

/* The calling worker's index, 0 .. workers - 1, or for a hot lane
 * (hotkey.lanes) workers + its lane number: size per-thread state for
 * workers + hotkey.lanes. */
RG_EXPORT unsigned rg_ctx_worker(const rg_ctx_t *ctx);

/*
 * A processor, as in the reference SDK. Single mode sets do_event; batch
 * mode sets batch_do (and optionally pre_do). Exactly one mode must be set.
 *
 * unpack (ingest thread, required): fill the payload (and, optionally,
 * ev->key) from msg; partition and offset are already set, and ev->key
 *   holds the hash of the message key. Return 0, or a negative RG_E* code
 *   (RG_EDECODE for bad input): the message is then counted as
 *   undecodable and skipped; the pipeline keeps flowing. An event whose
 *   ev->len exceeds RG_EVENT_INLINE_MAX without RG_EVENT_F_EXTERNAL is a
 *   processor bug: the push rejects it (RG_EINVAL, counted as rejected,
 *   logged once).
 * do_event (worker thread): process one event.
 * pre_do (worker thread): called once per batch before batch_do, e.g. to
 *   load state for every event of the batch with one query.
 * batch_do (worker thread): process up to `batch.max.events` events that
 *   arrived together, in arrival order.
 * do_event, pre_do and batch_do may change an event's payload (e.g. pre_do
 * attaching loaded state) but not its key, partition, offset, source or
 * ack_gen: the engine marks the offset done from those after the call.
 * They may mark events for a retry or as failed (railgun/retry.h).
 * order_key (worker thread, optional): the event's order unit for
 *   retries (railgun/retry.h): while an event waits for a retry, later
 *   events with the same order key wait behind it. NULL: the routing key
 *   (every event of a key waits). A job that needs order only per
 *   finer unit (the likes job: per (video, user)) returns a hash of it,
 *   so one failed like does not hold up its whole video. Called only
 *   while something waits for a retry, and, with `split` and hot lanes,
 *   on the ingest thread for each hot key's event (to pick its lane); it
 *   must not change the event, and must be a function of it alone.
 * forget (worker thread, optional; hot lanes): the worker or lane that
 *   calling it has just received `key` (the routing key moved to it at an
 *   epoch barrier), and the epoch of the move has committed: whatever it
 *   keeps in memory for the key from an earlier stay is stale (the
 *   other route changed it since, and the sink has that now). Drop it.
 * split (hot lanes): nonzero when the processor's events of one key
 *   commute except within an order unit (order_key, required then): a
 *   hot key is spread over every lane by its order unit, and each lane
 *   keeps its share (a count merged from several lanes adds up in the
 *   epoch). Zero: a hot key goes to one lane, whole.
 */
typedef struct rg_processor_s {
    int  (*unpack)(void *opaque, const rg_msg_t *msg, rg_event_t *ev);
    void (*do_event)(void *opaque, rg_ctx_t *ctx, rg_event_t *ev);
    void (*pre_do)(void *opaque, rg_ctx_t *ctx, rg_event_t *evs, size_t n);
    void (*batch_do)(void *opaque, rg_ctx_t *ctx, rg_event_t *evs,
                     size_t n);
    void *opaque;
    uint64_t (*order_key)(void *opaque, const rg_event_t *ev);
    void (*forget)(void *opaque, rg_ctx_t *ctx, uint64_t key);
    int split;
} rg_processor_t;

/* One partition's committable position, as handed to the commit callback. */
typedef struct rg_commit_s {
    int32_t  partition;
    uint32_t generation; /* ACK generation (see rg_dispatcher_reset()) */
    int64_t  offset;     /* next offset to consume: all below are done */
} rg_commit_t;

/*
 * Commit callback: `n` partitions whose watermark moved since the last
 * call (or whose generation changed). Committer thread. The array is valid
 * for the call only.
 */
typedef void (rg_commit_cb)(void *opaque, const rg_commit_t *commits,
                            size_t n);

/* Counters; all monotonic. `processed` counts events the processors
 * finished (in epoch mode: not yet necessarily stored). */
typedef struct rg_engine_stats_s {
    unsigned workers;          /* the workers: hash owners of cold keys */
    unsigned dispatchers;
    uint64_t accepted;         /* events pushed into rings */
    uint64_t undecodable;      /* messages unpack rejected */
    uint64_t processed;        /* events processors finished */
    uint64_t dispatcher_waits; /* times a dispatcher waited for ring space */
    uint64_t dispatcher_parks; /* ... and had to park */
    uint64_t worker_parks;     /* times a worker parked while idle */
    uint64_t rejected;         /* pushes refused: bad partition or offset */
    uint64_t ack_waits;        /* times a push waited for the ACK window */
    uint64_t commits;          /* commit callback calls */
    uint64_t warnings;         /* warnings logged (or dropped: no log
                                  callback) */
    unsigned lanes;            /* hot lanes (hotkey.lanes): threads
                                  workers .. workers + lanes - 1 of
                                  rg_engine_worker_stats() */
    uint64_t moves;            /* keys moved to or from the lanes, at
                                  barriers, all dispatchers */
    uint64_t moves_to_lanes;   /* ... of them to the lanes (the rest went
                                  back to their workers) */
    uint64_t deduplicated;     /* messages skipped as copies of ones
                                  already applied (rg_msg_t.producer_id) */
    uint64_t marks_evicted;    /* producer marks dropped at
                                  dedup.producers.max (their producers'
                                  later copies would count again) */
} rg_engine_stats_t;

/* Where one partition stands. */
typedef struct rg_partition_stats_s {
    uint32_t generation;
    int64_t  committable;      /* watermark: lowest offset not done */
    int64_t  next;             /* next offset expected from the source */
    uint64_t pending;          /* accepted, not processed yet */
    int64_t  oldest_pending;   /* == committable when pending > 0, else -1 */
    uint64_t oldest_pending_ms;/* how long the watermark has been stuck on
                                  it (0 when nothing is pending) */
} rg_partition_stats_t;

/*
 * Creates an engine from conf and a processor (copied). Takes ownership of
 * conf on success; on failure conf is still the caller's. Threads are not
 * started yet. Returns NULL on failure with a one-line reason in errstr
 * (bad processor, bad combination of properties, out of memory). More
 * workers than online CPUs is allowed (workers then share CPUs and each
 * waits for the others' time slices), and warned once through the log
 * callback.
 */
RG_EXPORT rg_engine_t *rg_engine_new(rg_conf_t *conf,
                                     const rg_processor_t *proc,
                                     char *errstr, size_t errstr_size);

/*
 * Starts the worker threads, each pinned to its CPU. Returns 0,
 * RG_ESTATE (already started, or stopped: an engine starts once; errstr
 * says which), or RG_ESYS (thread creation or pinning failed: errstr says
 * which; no thread is left running, and the engine may be started again).
 */
RG_EXPORT int rg_engine_start(rg_engine_t *e, char *errstr,
                              size_t errstr_size);

/* The dispatcher handle `idx` (< `dispatchers`), or NULL. Owned by e. */
RG_EXPORT rg_dispatcher_t *rg_engine_dispatcher(rg_engine_t *e,
                                                unsigned idx);

/* Which worker owns `key` while it is cold (stable for the engine's
 * lifetime); a hot key is on a lane (hotkey.lanes) meanwhile. */
RG_EXPORT unsigned rg_engine_worker_of(const rg_engine_t *e, uint64_t key);

/*
 * Sets the commit callback (see rg_commit_cb). Before rg_engine_start()
 * only: RG_ESTATE afterwards. Returns 0.
 */
RG_EXPORT int rg_engine_set_commit_cb(rg_engine_t *e, rg_commit_cb *cb,
                                      void *opaque);

/*
 * The committable offset of `partition` (all offsets below are processed)
 * and its stats. Returns 0, or RG_ENOENT when the partition has not been
 * seen. Any thread.
 */
RG_EXPORT int rg_engine_partition_stats(rg_engine_t *e, int32_t partition,
                                        rg_partition_stats_t *out);

/*
 * Unpacks msg with the processor and routes the event to its worker.
 * Blocks while the worker's ring is full, or while the partition's ACK
 * window (`ack.window.events`) is full. Returns 0 (accepted: it will be
 * processed exactly once), the unpack error (counted as undecodable; its
 * offset counts as done), RG_ERANGE (partition outside
 * [0, ack.max.partitions)), RG_EINVAL (NULL d or msg; offset not above the
 * partition's previous one; the partition belongs to another dispatcher;
 * an event unpack left too long for inline, see rg_processor_t), RG_ESTATE
 * (the engine is not started yet) or RG_ESTOPPED (the engine is stopping:
 * not accepted). Ingest thread of d only.
 */
RG_EXPORT int rg_dispatcher_push(rg_dispatcher_t *d, const rg_msg_t *msg);

/*
 * rg_dispatcher_push() for up to n messages; returns how many were consumed
 * (accepted, counted as undecodable, or rejected for a bad partition or
 * offset). Fewer than n only when the engine is not running (0), stops
 * while the call waits (for flow control's tokens: the prefix consumed so
 * far), or d or msgs is NULL (0).
 */
RG_EXPORT size_t rg_dispatcher_push_burst(rg_dispatcher_t *d,
                                          const rg_msg_t *msgs, size_t n);

/*
 * rg_dispatcher_push_burst() that stops waiting: when the engine's
 * backpressure (a full worker ring, an epoch the sink has not taken yet,
 * or flow control's tokens) holds it longer than timeout_ms in all, it
 * returns RG_ETIMEDOUT.
 * *consumed says how many messages, a prefix of msgs, were consumed as in
 * rg_dispatcher_push_burst(); the processor's unpack was not called for
 * the rest, so they can be pushed again later, or re-read from the source.
 * Returns 0 (all consumed), RG_ETIMEDOUT, RG_EINVAL (timeout_ms < 0, a
 * NULL argument), RG_ESTATE (not started) or RG_ESTOPPED (also after a
 * prefix was consumed, when the engine stopped during a token wait). Not
 * bounded: the wait for a full ACK window (engines without a sink).
 * Ingest thread of d only.
 */
RG_EXPORT int rg_dispatcher_push_burst_for(rg_dispatcher_t *d,
                                           const rg_msg_t *msgs, size_t n,
                                           int timeout_ms, size_t *consumed);

/*
 * True when the backpressure behind an RG_ETIMEDOUT has eased: every
 * worker ring of d is at most half full, the sink has room for the next
 * epoch and flow control has a token. A source that paused its input
 * resumes it then. Ingest
 * thread of d only.
 */
RG_EXPORT bool rg_dispatcher_ready(rg_dispatcher_t *d);

/*
 * Routes already-unpacked events (the processor's unpack is not called).
 * Returns how many were accepted: fewer than n when the engine is stopping
 * (0, or the prefix accepted before it stopped during a token wait) or
 * when events were rejected for a bad partition or offset (as in
 * rg_dispatcher_push(); counted in rg_engine_stats().rejected).
 */
RG_EXPORT size_t rg_dispatcher_push_events(rg_dispatcher_t *d,
                                           const rg_event_t *evs, size_t n);

/*
 * Repositions `partition` at next_offset (after a seek, an assign or a
 * revoke): a new ACK generation, so events of the old one that complete
 * late never count in the new one. Ingest thread of d only (the
 * partition's dispatcher, which becomes its owner). Returns 0, RG_ERANGE,
 * RG_EINVAL, RG_EFULL (older generations still have pending events),
 * RG_ENOMEM, RG_ESTOPPED.
 */
RG_EXPORT int rg_dispatcher_reset(rg_dispatcher_t *d, int32_t partition,
                                  int64_t next_offset);

/*
 * Epoch mode with a sink that stores producer marks (rg_sink_t.write_marks
 * and scan_marks): replaces what d remembers of partitions[0..nparts) by
 * marks[0..n) (rg_mark_t, railgun/sink.h; each of one of those
 * partitions), what the sink stores for
 * them. A source calls it on the ingest thread at an assignment, after
 * claim() and before it pushes the partitions' messages, as with
 * rg_dispatcher_reset(). A mark changed since the last barrier is kept
 * (it is newer than the sink's). 0, RG_EINVAL (a mark of another
 * partition, a bad partition), RG_ESTATE (no marks: not epoch mode, or the
 * sink keeps none), RG_ENOMEM, RG_ESTOPPED.
 */
RG_EXPORT int rg_dispatcher_load_marks(rg_dispatcher_t *d,
                                       const int32_t *partitions,
                                       size_t nparts,
                                       const struct rg_mark_s *marks,
                                       size_t n);

/*
 * Stops the engine gracefully: new pushes fail with RG_ESTOPPED, every
 * event accepted before is processed exactly once, then the worker threads
 * exit and are joined. Blocks until then. Any thread may call it, also
 * while dispatchers are pushing; calling it again is harmless. After the
 * workers are done, the commit callback gets a last call with the final
 * watermarks. Returns 0.
 */
RG_EXPORT int rg_engine_stop(rg_engine_t *e);

/*
 * Starts the shutdown clock without stopping: from now on a failing sink
 * is retried for at most `shutdown.timeout.ms` (epoch mode), pushes are
 * still accepted (a source storing its revoked partitions on the way
 * out), rg_dispatcher_flush() waits no longer than the deadline, and
 * rg_engine_stop() keeps it. So a program's whole stop (the source's last
 * flush, then the engine's) is bounded by one shutdown.timeout.ms. Calling
 * it again, or stop without it, is fine. Any thread.
 */
RG_EXPORT void rg_engine_shutdown_begin(rg_engine_t *e);

/* Stops (if needed) and frees e; NULL is fine. No push may be running. */
RG_EXPORT void rg_engine_destroy(rg_engine_t *e);

/* A snapshot of the counters; any thread. */
RG_EXPORT void rg_engine_stats(rg_engine_t *e, rg_engine_stats_t *out);

/* ---- flow control --------------------------------------------------------
 *
 * A token bucket on the ingest path (shared by every dispatcher of the
 * engine, taken per burst of events, with a small per-dispatcher cache):
 * a push waits for tokens, never drops. rg_dispatcher_push_burst() and
 * rg_dispatcher_push() wait as long as it takes (in slices of at most
 * 10 ms, sending due epoch barriers between them, and returning early
 * only when the engine stops); rg_dispatcher_push_burst_for() gives up at
 * its timeout with RG_ETIMEDOUT, so a source pauses its input as for any
 * backpressure, and rg_dispatcher_ready() is false until tokens are there.
 * Several limits may be set at once, each by its owner; the bucket
 * enforces the lowest non-zero one. With flow.sink.latency.target.ms the
 * flusher owns RG_FLOW_ADAPTIVE: it cuts the rate when an epoch's
 * transaction takes longer than the target and raises it again while
 * they are fast (AIMD; engine/src/core/flow_adapt.h). Unlimited (every
 * limit 0, the default) costs one relaxed load per burst. A rate change
 * keeps the tokens available (clamped to the new burst), so it never adds
 * a burst, except a switch from unlimited to limited, which starts full.
 */
typedef enum rg_flow_limit_e {
    RG_FLOW_LOCAL = 0,    /* flow.rate.events.per.s: this node's own */
    RG_FLOW_GLOBAL,       /* the node's share of a group's global rate
                             (the Redis lease client sets it) */
    RG_FLOW_ADAPTIVE,     /* a controller following the sink's latency */
    RG_FLOW_NLIMITS
} rg_flow_limit_t;

typedef struct rg_flow_stats_s {
    uint64_t rate;        /* the rate enforced, events/s (0: unlimited) */
    uint64_t burst;       /* the bucket's depth, events */
    uint64_t limit[RG_FLOW_NLIMITS]; /* each as set, 0: none */
    uint64_t granted;     /* tokens the bucket handed out while limited
                             (including those in dispatchers' caches) */
    uint64_t throttled;   /* takes that got fewer tokens than asked */
    uint64_t tokens;      /* tokens in the bucket now (0: unlimited) */
    uint64_t waits;       /* times a push waited for tokens */
    uint64_t wait_ms;     /* time pushes spent waiting for tokens, summed
                             over the dispatchers (with several it can
                             grow faster than the clock) */
    /* the adaptive limit (flow.sink.latency.target.ms; epoch mode) */
    uint64_t sink_latency_ms;  /* the last epoch's transaction time */
    uint64_t adaptive_cuts;    /* times it cut the rate */
    uint64_t adaptive_raises;  /* times it raised it again (or let go:
                                  its limit no longer binds) */
} rg_flow_stats_t;

/*
 * Sets limit `which` to events_per_s (0: that owner sets no limit).
 * Returns 0, RG_EINVAL (NULL e, bad which) or RG_ERANGE (above 64e9/s, or
 * the burst would be more than a day of the rate); on failure nothing
 * changes. Any thread, also while dispatchers push.
 */
RG_EXPORT int rg_engine_flow_set_limit(rg_engine_t *e, rg_flow_limit_t which,
                                       uint64_t events_per_s);

/* Sets the bucket's depth (flow.burst.events; 0: automatic, 10 ms of the
 * rate but at least min(rate, 32)). Same returns and threads as
 * rg_engine_flow_set_limit(). */
RG_EXPORT int rg_engine_flow_set_burst(rg_engine_t *e, uint64_t burst);

/* A snapshot of the bucket and the waits; any thread. */
RG_EXPORT void rg_engine_flow_stats(rg_engine_t *e, rg_flow_stats_t *out);

/* Events worker `w` has processed so far (0 for a bad index); any thread. */
RG_EXPORT uint64_t rg_engine_worker_processed(const rg_engine_t *e,
                                              unsigned w);

/* One worker, for a stats reader. */
typedef struct rg_worker_stats_s {
    uint64_t processed;     /* events it processed */
    uint64_t parks;         /* times it parked while idle */
    uint64_t busy_ns;       /* time since it started minus its idle
                               stretches (from the first empty poll to the
                               pop that finds work: spinning, yielding,
                               parked; and waits for a free epoch slot,
                               the sink being behind); the idle path
                               reads the clock, the busy path never */
    uint64_t ring_used;     /* events waiting in its input rings now (one
                               per dispatcher; a value each ring had) */
    uint64_t ring_capacity; /* those rings' slots */
} rg_worker_stats_t;

/* Fills out for worker w, or for lane w - workers (workers + lanes
 * threads in all): 0, or RG_EINVAL for a bad index. Any thread.
 * busy_ns may stand still or, while a stretch ends, step back by it once:
 * a reader that needs a monotonic counter keeps the largest it saw. */
RG_EXPORT int rg_engine_worker_stats(const rg_engine_t *e, unsigned w,
                                     rg_worker_stats_t *out);

/* ---- hot keys (hotkey.*) --------------------------------------------- */

/* One hot key, merged over the dispatchers that report it hot. */
typedef struct rg_hot_key_s {
    uint64_t key;        /* the routing key (rg_event_t.key after unpack) */
    uint64_t events;     /* its events in the window, summed over those
                            dispatchers (a lower bound: exact for a key
                            the sketch tracked all window) */
    double share;        /* events / rg_hotkey_stats_t.window_events: of
                            the current window, so a key kept hot by
                            hotkey.cool.ms after its traffic stopped
                            shows it falling, down to 0 */
    uint64_t hot_ms;     /* how long it has been hot (on the dispatcher
                            where it turned hot first) */
} rg_hot_key_t;

typedef struct rg_hotkey_stats_s {
    bool enabled;            /* hotkey.enable */
    uint64_t window_events;  /* the window's events, all dispatchers */
    uint64_t turned_hot;     /* changes to hot so far, all dispatchers */
    uint64_t turned_cold;    /* changes to cold so far */
    uint32_t nhot;           /* distinct hot keys now (may exceed max) */
    uint64_t age_ms;         /* since the oldest of the dispatchers' last
                                judgements (a dispatcher judges at the
                                first push call or, in epoch mode, the
                                first flush.interval.ms takeover of its
                                idle handle after each window/4) */
} rg_hotkey_stats_t;

/*
 * The hot keys as the dispatchers' sketches judged them at their last
 * slice end: *st (when not NULL) and up to max keys, hottest first.
 * Returns how many were copied; 0 with st->enabled false when
 * hotkey.enable is false. Without hotkey.lanes a hot key's events still
 * go to the worker its key hashes to; with lanes they go to the lanes
 * from the dispatcher's next epoch barrier on. Any thread, while the engine lives;
 * callers take turns on the engine's scratch copy (a mutex); it never
 * blocks an ingest thread (each sketch's snapshot is sequence-locked).
 */
RG_EXPORT size_t rg_engine_hot_keys(rg_engine_t *e, rg_hotkey_stats_t *st,
                                    rg_hot_key_t *keys, size_t max);

/*
 * Overrides the detection for `key` on dispatcher d (hot lanes only):
 * state 1 routes it to the lanes, 0 to its worker, -1 gives it back to
 * the sketch's judgement; the move happens at d's next epoch barrier,
 * as a detected one does (for a key known to turn hot, e.g. a scheduled
 * broadcast, and for tests that move keys on purpose). The caller's
 * ingest thread, as a push. Returns 0, RG_EINVAL (bad state, or no
 * lanes), RG_EFULL (hotkey.max.keys overrides already), RG_ESTATE or
 * RG_ESTOPPED (as a push).
 */
RG_EXPORT int rg_dispatcher_force_hot(rg_dispatcher_t *d, uint64_t key,
                                      int state);

/* The engine's configuration (read-only, owned by e). */
RG_EXPORT const rg_conf_t *rg_engine_conf(const rg_engine_t *e);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_ENGINE_H */
