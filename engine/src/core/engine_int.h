/*
 * engine_int.h - the engine's internal structures and the calls its files
 * make to each other. Nothing here is public API.
 *
 * The engine is split by thread role, one role per file:
 *
 *   engine.c          lifecycle (new, start, stop, destroy), stats,
 *                     accessors: the caller's thread
 *   dispatch.c        the dispatcher: push paths, routing, ACK tracking,
 *                     ring writes and waits: an ingest thread
 *   worker.c          the worker: pop, process, ACK done, idle policy: a
 *                     pinned worker thread
 *   committer.c       the committer: watermarks -> commit callback
 *   delta.c           a worker's per-epoch delta (merged keys, staged rows,
 *                     failure rows)
 *   retry.c           failures (railgun/retry.h): marks, parked keys,
 *                     backoff, delayed and dead events: a worker thread
 *   epoch.h           the epoch protocol, as one story, and its three
 *                     sides:
 *     epoch_dispatch.c  barriers and offset snapshots (ingest thread, or
 *                       the flusher holding an idle dispatcher's handle)
 *     epoch_worker.c    aligning barriers and sealing deltas (worker)
 *     epoch_flush.c     the flusher thread: one sink transaction per epoch
 *
 * Run-time modes are named flags set once before start:
 *   e->epoch_mode   a sink is set (rg_engine_set_sink()): events are done
 *                   when their epoch commits, not when processed
 *   e->align        epoch mode with more than one dispatcher: a worker
 *                   holds a ring that delivered barrier E until every ring
 *                   did (aligned barriers)
 *   e->idle_yield   idle.policy, resolved at start: waiting threads yield
 *                   the CPU instead of spinning on it
 */
#ifndef RG_ENGINE_INT_H
#define RG_ENGINE_INT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "railgun/ack.h"
#include "railgun/conf.h"
#include "railgun/engine.h"
#include "railgun/flush.h"
#include "railgun/merge.h"
#include "railgun/retry.h"
#include "railgun/ring.h"
#include "railgun/sink.h"
#include "../common/util.h"
#include "bucket.h"
#include "flow_adapt.h"
#include "hotkey.h"
#include "park.h"

RG_RING_PROTOTYPE(ev, rg_event_t)

_Static_assert(sizeof(rg_event_t) == 64, "an event is one cache line");
_Static_assert(RG_CACHELINE == 64, "the layout assumes 64-byte lines");

/* Events a burst push writes into a worker's ring before publishing them. */
#define PUBLISH_EVERY 32

/* rg_event_t.flags bit (internal): an epoch barrier; offset = its epoch. */
#define RG__EVENT_F_BARRIER 0x80u
/* ... (internal, worker only): the processor marked it in this call */
#define RG__EVENT_F_MARKED 0x40u
/* ... (internal): a key's move to or from the hot lanes (epoch_dispatch.c,
 * the protocol): key = the routing key, offset = the epoch E of the
 * move's barrier, reserved = RG__MOVE_OUT (to an old route, ahead of
 * barrier E) or RG__MOVE_IN (to a new route, behind it), partition = 1
 * when the key moves to the lanes, 0 when back to its worker. */
#define RG__EVENT_F_MOVE 0x20u
#define RG__EVENT_F_CTRL (RG__EVENT_F_BARRIER | RG__EVENT_F_MOVE)
/* the engine's own bits, cleared on every event a push writes */
#define RG__EVENT_F_INTERNAL \
    (RG__EVENT_F_BARRIER | RG__EVENT_F_MARKED | RG__EVENT_F_MOVE)
enum { RG__MOVE_OUT = 1, RG__MOVE_IN = 2 };

enum { ST_NEW = 0, ST_RUNNING, ST_STOPPING, ST_STOPPED };

/* in_call of a dispatcher handle (dispatch.c): who uses it. */
enum { CALL_FREE = 0, CALL_INGEST = 1, CALL_HELD = 2 };

/* A parking spot on its own cache line. */
struct spot {
    alignas(RG_CACHELINE) struct rg__park park;
};

/* A byte-string key's entry in a delta (delta.c). */
struct bkey {
    uint64_t hash;
    uint32_t off;            /* into the delta's arena */
    uint32_t len;            /* 0: free slot */
    int64_t value;
};

/* Failure rows for a sink's failures table (delta.c): each row's
 * reasons, msg_key and payload live in one allocation starting at
 * reasons, freed with the row. */
struct rg__fails {
    rg_failure_t *rows;
    uint32_t n, cap;
};

/* Producer marks (dedup.c): the open table of one dispatcher, and the
 * marks that changed in one epoch (copied at its barrier). */
struct rg__mark_ent {
    rg_mark_t m;
    uint64_t used;              /* the table's clock at the last use */
    bool dirty;                 /* changed since the last barrier */
};
struct rg__marks {
    rg_mark_t *rows;
    uint32_t n, cap;
};
struct rg__dedup {
    struct rg__mark_ent *ents;  /* dense; [0, n) */
    uint32_t n, cap, max;
    uint32_t *idx;              /* open addressing: entry index + 1 */
    uint32_t idx_cap;           /* power of two, >= 2 x cap */
    uint32_t ndirty;
    uint64_t clock;
    bool warned_over;           /* grew past max (all dirty), logged */
};

/* One worker's changes in one epoch (flush.h). Owned by the worker while
 * open, by the flusher once sealed, handed back when the epoch commits. */
struct rg_delta_s {
    rg_merge_t *merged;      /* integer key -> summed value */
    struct bkey *bkeys;      /* byte-string keys: open addressing */
    uint32_t bkey_mask, nbkeys;
    unsigned char *arena;    /* their bytes */
    uint32_t arena_used, arena_cap, arena_max;
    rg_row_t *staged;        /* in first-staged order, last value wins */
    uint32_t nstaged, staged_cap, max_rows;
    uint32_t *index;         /* open addressing: staged index + 1, 0 free */
    uint32_t index_mask;
    struct rg__fails fails;  /* failure rows, in order (retry.c) */
    uint64_t epoch;
    bool has_bytes, has_staged; /* what the sink stores */
};

/* One event waiting for a retry, or behind one (retry.c). */
struct rg__wait {
    rg_event_t ev;           /* as unpacked; an external payload is kept */
    int64_t first_ms, last_ms; /* wall clock of its first, last attempt */
    int64_t due_ns;          /* next attempt not before (rg__now_ns()) */
    char *reasons;           /* NULL or RG_FAILURE_REASONS_MAX bytes */
    uint32_t attempts;       /* made so far */
    uint32_t next;           /* the key's next wait: index + 1, 0 none */
    uint8_t stored;          /* its delayed row is in a sealed delta */
    uint8_t dirty;           /* attempts changed since that row */
    uint8_t delayed;         /* joined the delayed queue */
    uint8_t truncated;       /* payload was cut when it was stored */
    uint8_t frozen;          /* its partition was released: stored at the
                                next seal, then forgotten, never run */
    uint8_t requeued;        /* handed back by rg_engine_requeue() */
};

/* A parked key: its queue of waits, oldest first (retry.c). */
struct rg__wkey {
    uint64_t key;            /* the order unit (see retry.c) */
    uint32_t head, tail;     /* wait index + 1; 0: none */
    uint32_t since;          /* this call: index of its first mark */
    uint32_t count;
};

/* A mark a callback made in the current call (retry.c). */
struct rg__mark {
    uint32_t idx;
    uint8_t kind;            /* MARK_RETRY, MARK_FAIL */
    char reason[RG_RETRY_REASON_MAX];
};

/* A delayed event handed back by rg_engine_requeue() (any thread) to
 * its worker's mailbox. */
struct rg__requeued {
    struct rg__requeued *next;
    int32_t release;         /* >= 0: rg_engine_release() of this
                                partition, w unused */
    int32_t unrelease;       /* >= 0: rg_engine_requeue() of this
                                partition, w unused */
    bool handed;             /* handed over by its old route at the move
                                of its key at barrier `epoch` (hot lanes):
                                w's flags as they were */
    uint64_t epoch;
    struct rg__wait w;
};

/* A worker's failure state (retry.c); the worker's only, except the
 * mailbox (lock) and the stats (relaxed, single writer). */
struct rg__retry {
    struct rg__wait *pool;   /* [cap]: max_parked, more only while a
                                restart's requeue hands back more */
    uint32_t *free_waits;    /* stack of free indexes */
    uint32_t nfree, cap;
    struct rg__wkey *keys;   /* dense [nkeys] */
    uint32_t nkeys;
    uint32_t *map;           /* open addressing: keys index + 1, 0 free */
    uint32_t map_mask;
    int64_t next_due_ns;     /* earliest head due (INT64_MAX: none) */
    uint64_t rng;
    /* the current callback's call */
    rg_event_t *call_evs;
    uint32_t call_n;
    bool rerun;              /* it retries one waiting event */
    bool cut_on_mark;        /* single mode: a mark ends the fast loop */
    uint32_t rerun_attempt;
    struct rg__mark *marks;  /* [batch.max.events] */
    uint32_t nmarks;
    uint32_t *touched;       /* keys marked in this call: [batch max] */
    uint32_t ntouched;
    bool volatile_warned;    /* logged: waits kept in memory only */
    bool full;               /* at max_parked: not reading the rings */
    bool stop_capped;        /* retry_stopping seen: due times capped */
    uint32_t nfrozen;        /* waits frozen by a release */
    int32_t *rel_parts;      /* partitions released and not requeued */
    uint32_t nrel, rel_cap;
    uint32_t nrequeued;      /* live waits handed back by a requeue: the
                                bound is max_parked above them */
    bool gave_up;            /* the drain gave up on in-memory waits */
    /* mailbox from rg_engine_requeue() */
    pthread_mutex_t lock;
    bool lock_ok;
    struct rg__requeued *mail_head, *mail_tail;
    /* handed over at moves (hot lanes), under the same lock: taken only
     * at a MOVE_IN, once the move's epoch committed */
    struct rg__requeued *hand_head, *hand_tail;
    _Atomic uint32_t hand_n; /* on the list (the stop's look, relaxed) */
    _Atomic uint32_t mail_n; /* nonzero: mail to take */
    /* stats (single writer) */
    uint64_t l_retried, l_failed, l_delayed, l_dead, l_recovered,
        l_requeued, l_full, l_released, l_dead_by[RG_DEAD__COUNT];
    _Atomic uint64_t retried, failed, delayed, dead, recovered, requeued,
        released, parked_now, keys_now, full_waits, dead_by[RG_DEAD__COUNT];
};

/* A worker. It is also the context its processor callbacks get
 * (rg_ctx_t is this struct, opaque to users), so reaching the engine or
 * the open delta from a callback is one load. */
typedef struct rg_ctx_s rg__worker_t;

struct rg_ctx_s {
    rg_engine_t *e;
    unsigned idx;
    int cpu;
    pthread_t thread;
    bool joinable;
    rg_ring_t **in;          /* [dispatchers]: ring[d][idx] */
    rg_event_t *buf;         /* batch.max.events */
    uint64_t processed_local;
    uint64_t parks_local;
    int64_t idle_t0;         /* the open idle stretch's start, 0: busy */
    uint64_t idle_acc;       /* ended idle stretches (idle_ns's source) */
    uint64_t since_signal;   /* completions since the committer was woken */
    /* epoch mode (epoch_worker.c) */
    rg_delta_t *slots;       /* [nslots]: epoch E lives in slots[E % n] */
    rg_delta_t *cur;         /* the open delta */
    uint64_t epoch;          /* the open epoch */
    bool requested;          /* asked for a barrier in this epoch */
    /* aligned barriers (e->align only) */
    bool *blocked;           /* [dispatchers]: barrier seen, waiting */
    unsigned nblocked;
    rg_event_t **held;       /* [dispatchers]: popped after a barrier */
    uint32_t *held_n;
    struct rg__retry rt;     /* failures (retry.c) */
    /* stats, read by other threads; single writer (this worker) */
    alignas(RG_CACHELINE) _Atomic uint64_t processed;
    _Atomic uint64_t parks;
    _Atomic uint64_t sealed; /* newest sealed epoch (flusher reads) */
    _Atomic int64_t started_ns;  /* rg__now_ns() when its loop began */
    _Atomic uint64_t idle_ns;    /* ended idle stretches, in all */
    _Atomic int64_t idle_since;  /* the open stretch's start, 0: busy */
    /* where this worker sleeps when idle */
    struct spot wake;
    /* where it waits for a free delta slot */
    struct spot slot_wait;
    /* hot lanes (epoch_worker.c): the newest epoch of a move in whose
     * commit this worker waited for */
    uint64_t move_waited;
};

struct rg_dispatcher_s {
    alignas(RG_CACHELINE) rg_engine_t *e;
    unsigned idx;
    _Atomic uint32_t in_call;   /* CALL_*: who uses the handle */
    rg_ring_t **out;            /* [workers]: ring[idx][w] */
    struct spot *space;         /* [workers]: where this d waits for w */
    uint32_t *npend;            /* [workers]: written, not yet published */
    uint32_t *room;             /* [workers]: free slots known, from the
                                   published head on */
    /* stats; single writer (the ingest thread holding this handle) */
    uint64_t accepted_local, undecodable_local, waits_local, parks_local;
    uint64_t rejected_local, ack_waits_local;
    int64_t deadline;           /* push_burst_for: give up waiting at
                                   this rg__now_ns() (0: wait for ever) */
    bool timed_out;             /* ... and a wait did */
    uint64_t flow_waits_local, flow_wait_ns_local; /* token waits */
    struct rg__bucket_cache bcache; /* flow control: this handle's tokens
                                   (the ingest thread's; the flusher's
                                   barrier takeover never touches it) */
    int32_t last_p;             /* the partition last tracked, and its */
    rg_ack_t *last_ack;         /* tracker (events come in runs) */
    _Atomic uint64_t accepted, undecodable, waits, parks, rejected, ack_waits;
    _Atomic uint64_t flow_waits, flow_wait_ns;
    /* epoch mode (epoch_dispatch.c) */
    uint64_t epoch;             /* the open epoch (barriers below it sent) */
    int32_t *owned;             /* partitions this dispatcher owns */
    uint32_t nowned;
    rg_offset_t **snap;         /* [nslots][max_partitions]: offsets at the
                                   barrier of epoch E in snap[E % n] */
    uint32_t *snap_n;           /* [nslots] */
    struct rg__fails *dead;     /* [nslots]: undecodable messages of
                                   epoch E in dead[E % n], published and
                                   cleared with its snapshot */
    struct rg__fails dead_open; /* ... of the open epoch */
    struct rg__dedup *dd;       /* producer marks (dedup.c), NULL: the
                                   sink keeps none */
    struct rg__marks *marks;    /* [nslots]: marks changed in epoch E, in
                                   marks[E % n], written and cleared with
                                   its snapshot */
    uint64_t dups_local, evicted_local;
    _Atomic uint64_t dups, evicted;
    _Atomic uint64_t snapped;   /* newest epoch whose barrier is out */
    rg__hk_t *hk;               /* hot-key sketch (hotkey.enable), else
                                   NULL: fed by the handle's holder, which
                                   also ticks it at the end of each call
                                   (and the flusher's takeover of an idle
                                   handle); snapshots from any thread */
    /* hot lanes (hotkey.lanes > 0), the ingest thread holding the handle
     * (epoch_dispatch.c): the keys routed to the lanes now, changed only
     * at barriers; the overrides of rg_dispatcher_force_hot(); scratch */
    rg__hkset_t *route;         /* NULL: no lanes */
    struct rg__force { uint64_t key; int state; } *force;
    uint32_t nforce;
    struct rg__move { uint64_t key, h; bool hot; } *mv;
    uint64_t *members;          /* [max keys] */
    uint32_t *mcount;           /* [workers + lanes] markers per ring */
    uint64_t moves_local, moves_hot_local;
    _Atomic uint64_t moves;     /* keys moved (single writer, relaxed) */
    _Atomic uint64_t moves_hot; /* ... to the lanes */
};

struct rg_engine_s {
    rg_conf_t *conf;
    rg_processor_t proc;
    unsigned nworkers, ndispatchers; /* nworkers: workers + lanes */
    unsigned ncold, nlanes;     /* workers (cold keys hash over them) and
                                   hot lanes (threads ncold .. nworkers) */
    uint32_t batch_max;
    uint32_t worker_spins, worker_yields;
    uint32_t disp_spins, disp_yields;
    bool idle_yield;            /* idle.policy resolved: sched_yield()
                                   instead of a pause while waiting */
    bool epoch_mode;            /* see the top of this file */
    bool align;
    /* ST_*: read by every push (acquire) */
    alignas(RG_CACHELINE) _Atomic int state;
    _Atomic int drain;
    /* epoch mode: highest epoch whose barrier is due (dispatchers poll it
     * with a relaxed load on the push path) */
    _Atomic uint64_t epoch_req;
    pthread_mutex_t stop_lock;
    rg__worker_t *workers;
    rg_dispatcher_t *dispatchers;
    /* flow control (bucket.h): the ingest paths take tokens from it, per
     * burst; its own allocation, for its cache-line alignment */
    struct rg__bucket *bucket;
    uint64_t hk_born_ns;        /* when the hot-key sketches were made */
    pthread_mutex_t hk_mu;      /* rg_engine_hot_keys(): its scratch */
    bool hk_mu_ok;
    struct rg__hk_hot_s *hk_one;   /* [hotkey.max.keys] */
    struct rg_hot_key_s *hk_all;   /* [hotkey.max.keys * dispatchers] */
    rg_ring_t **rings;          /* [dispatchers * workers] */
    struct spot *spaces;        /* [dispatchers * workers] */
    _Atomic uint64_t warnings;  /* lines logged at RG_LOG_WARN */
    _Atomic int warned_len;     /* the too-long event was logged */

    /* ACK tracking: one tracker per partition, created by its owner */
    uint32_t ack_window, max_partitions;
    uint64_t commit_interval_ns, commit_max_events;
    rg_ack_t *_Atomic *acks;    /* [max_partitions] */
    _Atomic uint32_t *owner;    /* [max_partitions]: dispatcher + 1 */
    _Atomic int32_t npartitions;/* 1 + highest partition with a tracker */
    rg_commit_cb *commit_cb;
    void *commit_opaque;
    pthread_t committer;
    bool committer_joinable;
    _Atomic int committer_stop;
    struct spot commit_wake;    /* the committer sleeps here */
    _Atomic uint64_t commits;
    /* committer-private: last position handed to the callback */
    struct commit_state {
        int64_t wm;
        uint32_t gen;
        bool seen;
    } *cst;                     /* [max_partitions] */
    _Atomic int64_t *moved_ns;  /* [max_partitions]: when the watermark
                                   last moved (committer writes) */
    rg_commit_t *batch;         /* [max_partitions]: callback argument */

    /* failures (retry.c): policy, set before start */
    struct rg__retry_conf {
        uint64_t backoff_ns, backoff_max_ns, delay_ns, delay_max_ns;
        uint32_t inplace, max_attempts, max_parked, payload_max;
        int64_t max_age_ms;      /* 0: none */
        bool by_key;             /* retry.order=key */
        bool keep;               /* the sink keeps failures */
    } rc;
    rg_dead_letter_cb *dl_cb;
    void *dl_opaque;
    _Atomic uint64_t st_dead_msgs; /* undecodable messages dead-lettered */
    _Atomic int retry_stopping; /* rg_engine_stop() began: waits retry
                                   at retry.backoff.ms at the latest, and
                                   the rings are read past the bound */

    /* epoch mode */
    rg_sink_t sink;
    uint32_t nslots;            /* flush.max.pending.epochs + 1 */
    uint64_t flush_interval_ns;
    uint32_t flush_max_keys, merge_max_keys;
    uint64_t backoff_ns, backoff_max_ns;
    _Atomic int64_t *part_next; /* [max_partitions]: next offset expected;
                                   written by the owning dispatcher */
    _Atomic int64_t *committed_next; /* [max_partitions]: stored in the
                                   sink; written by the flusher */
    int64_t *written_next;      /* flusher-private: last offset written */
    rg_offset_t *offs;          /* flusher-private scratch */
    rg_row_t *rows;             /* flusher-private scratch */
    rg_bytes_row_t *brows;      /* flusher-private scratch */
    rg_epoch_hook_cb *hook;
    void *hook_opaque;
    rg_epoch_commit_cb *cm_cb;  /* rg_engine_set_commit_hook() */
    void *cm_opaque;
    int64_t *cm_keys;           /* flusher-private: the epoch's changed */
    size_t cm_nkeys, cm_keys_cap; /* keys, for cm_cb */
    rg_row_t *cm_rows;          /* flusher-private: its staged rows */
    size_t cm_nrows, cm_rows_cap;
    pthread_t flusher;
    bool flusher_joinable;
    _Atomic int flusher_stop;
    _Atomic uint64_t final_epoch;  /* 0: not stopping */
    _Atomic uint64_t committed_epoch;
    _Atomic int failed;
    _Atomic int failing;        /* the first failure claims errmsg */
    char errmsg[512];           /* written before failed is set */
    struct spot flush_wake;     /* the flusher sleeps here */
    _Atomic uint64_t st_epochs, st_txns, st_merged, st_staged, st_retries;
    /* flow control's adaptive limit (flow_adapt.h): flusher-private
     * state, and what it last saw for stats (flusher writes) */
    struct rg__adapt adapt;
    uint64_t adapt_waits;       /* flusher-private: flow waits seen */
    _Atomic uint64_t st_sink_lat_ns, st_adapt_cuts, st_adapt_raises;
    /* committed transactions by time and by rows (rg_flush_hist_t;
     * flusher writes, single writer) */
    _Atomic uint64_t st_txn_hist[RG_FLUSH_TXN_BUCKETS + 1];
    _Atomic uint64_t st_rows_hist[RG_FLUSH_ROWS_BUCKETS + 1];
    _Atomic uint64_t st_txn_ns_sum, st_rows_sum;
    /* stop: give up retrying the sink at this rg__now_ns() (0: never);
     * written by rg_engine_stop() before it wakes the flusher */
    _Atomic int64_t stop_deadline_ns;
    int64_t shutdown_timeout_ns;
    /* the sink's health, for stats and logs: consecutive failed attempts
     * of the epoch being written (flusher writes) and the last message */
    _Atomic uint64_t st_failing;
    pthread_mutex_t sink_err_lock;
    char sink_err[512];
};

/* ---- dispatch.c ------------------------------------------------------- */

/*
 * Takes d for the calling ingest thread: in_call 0 -> 1 by CAS (waiting
 * while the flusher holds it), then checks the state. Returns 0, RG_ESTATE
 * (not started) or RG_ESTOPPED. The protocol (stop, takeover) is at the
 * top of dispatch.c.
 */
static inline int rg__dispatch_enter(rg_dispatcher_t *d)
{
    uint32_t exp = CALL_FREE;
    /* acquire (A1): what a thread that held the handle wrote into it (the
     * flusher's barriers) happens before our use of it; pairs with R1 */
    while (!atomic_compare_exchange_weak_explicit(&d->in_call, &exp,
                                                  CALL_INGEST,
                                                  memory_order_acquire,
                                                  memory_order_relaxed)) {
        if (exp == CALL_HELD) {
            /* acquire: as below */
            int st = atomic_load_explicit(&d->e->state, memory_order_acquire);
            if (st != ST_RUNNING)
                return st == ST_NEW ? RG_ESTATE : RG_ESTOPPED;
            rg__cpu_relax(); /* the flusher is done in microseconds */
        }
        exp = CALL_FREE;
    }
    /* F1: pairs with rg__fence_heavy() (F2) in rg_engine_stop(): either
     * stop sees in_call == 1 and waits for us, or we see ST_STOPPING */
    rg__fence_light();
    /* acquire: pairs with the release store in rg_engine_start(), which
     * published the started workers */
    int st = atomic_load_explicit(&d->e->state, memory_order_acquire);
    if (st != ST_RUNNING) {
        /* release (R1): nothing written, but the next holder pairs */
        atomic_store_explicit(&d->in_call, CALL_FREE, memory_order_release);
        return st == ST_NEW ? RG_ESTATE : RG_ESTOPPED;
    }
    return 0;
}

static inline void rg__dispatch_exit(rg_dispatcher_t *d)
{
    RG_DASSERT(atomic_load_explicit(&d->in_call, memory_order_relaxed) ==
               CALL_INGEST);
    /* release (R1): our ring writes happen before stop's (or the
     * flusher's) acquire CAS of in_call (A1, A2) */
    atomic_store_explicit(&d->in_call, CALL_FREE, memory_order_release);
}

/* ---- worker.c --------------------------------------------------------- */
void *rg__worker_main(void *arg);
/* Runs the processor over evs[0..n) and completes them (worker thread). */
void rg__worker_process(rg__worker_t *w, rg_event_t *evs, size_t n);

/* ---- retry.c (worker thread unless said) ------------------------------ */
int rg__retry_init(rg__worker_t *w);         /* rg_engine_new() */
void rg__retry_free(rg__worker_t *w);        /* rg_engine_destroy() */
void rg__retry_conf(rg_engine_t *e);         /* reads the policy */
/* Before a call on evs[0..n) from the rings: moves events of parked keys
 * behind their key; returns how many are left (compacted, in order). */
uint32_t rg__retry_divert(rg__worker_t *w, rg_event_t *evs, uint32_t n);
/* After the call: parks marked events and the ones blocked behind them,
 * dead-letters failed ones; leaves the events that are done in
 * evs[0..return) (failed ones included: their offsets are done). */
uint32_t rg__retry_settle(rg__worker_t *w, rg_event_t *evs, uint32_t n);
/* True when event i of the current call must be left alone. */
bool rg__retry_blocked_at(const rg__worker_t *w, uint32_t i);
/* Runs the waiting events that are due; true when it ran any. */
bool rg__retry_tick(rg__worker_t *w, int64_t now_ns);
/* True while some worker holds waiting events or mail (any thread). */
bool rg__retry_any_waiting(rg_engine_t *e);
/* Takes what rg_engine_requeue() left in the mailbox. */
void rg__retry_take_mail(rg__worker_t *w);
/* At a seal (epoch mode): every wait not stored yet gets its delayed row
 * in the sealing delta. */
void rg__retry_seal(rg__worker_t *w);
/* At a key's MOVE_OUT marker from dispatcher `source` (hot lanes): every
 * waiting event of routing key `key` that came through that dispatcher
 * (another one routes the key on its own judgement) is stored in the open
 * epoch (when the sink keeps failures) and posted, in order, to the
 * hand-off list of its new route (a lane when to_hot, else its worker). */
void rg__retry_hand_over(rg__worker_t *w, uint64_t key, unsigned source,
                         bool to_hot, uint64_t epoch);
/* Takes the events of routing key `key` handed over at its moves of
 * epochs up to `upto` (which has committed), at the key's MOVE_IN, right
 * before the processor forgets the key: they go ahead of everything the
 * rings bring next, and never run before that forget. */
void rg__retry_take_handed(rg__worker_t *w, uint64_t key, uint64_t upto);
/* Events waiting in this worker now. */
static inline uint32_t rg__retry_used(const rg__worker_t *w)
{
    return w->rt.cap - w->rt.nfree;
}

/* Events this worker may still take without passing max_parked (above
 * what a restart handed back). */
static inline uint32_t rg__retry_room(const rg__worker_t *w)
{
    uint32_t used = rg__retry_used(w),
             max = w->e->rc.max_parked + w->rt.nrequeued;
    return used < max ? max - used : 0;
}
/* Dead-letters an undecodable message (ingest thread of d): the
 * callback, and in epoch mode a row in d's open epoch. */
void rg__retry_dead_msg(rg_dispatcher_t *d, const rg_msg_t *msg, int rc);

/* delta.c: failure rows */
int rg__fails_add(struct rg__fails *f, const rg_failure_t *row);
void rg__fails_clear(struct rg__fails *f);

/* dedup.c (the ingest thread holding the handle; the barrier's snapshot
 * may run on the flusher's takeover, which holds it too) */
int rg__dedup_init(rg_dispatcher_t *d);
void rg__dedup_free(rg_dispatcher_t *d);
/* true: msg is a copy of one applied (skip it); false: new, remembered
 * in the open epoch. */
bool rg__dedup_seen(rg_dispatcher_t *d, const rg_msg_t *msg);
/* At barrier E: the changed marks into marks[E % nslots]. */
void rg__dedup_snapshot(rg_dispatcher_t *d, uint32_t slot);
void rg__fails_free(struct rg__fails *f);

/* dispatch.c */
/* Publishes what d wrote into worker w's ring and wakes w if idle. */
void rg__dispatch_publish(rg_dispatcher_t *d, unsigned w);
void rg__dispatch_publish_all(rg_dispatcher_t *d);
/* Writes ev into worker w's ring (waiting for room), with generation
 * gen; the engine's fields are set on the slot. */
void rg__dispatch_write(rg_dispatcher_t *d, unsigned w, const rg_event_t *ev,
                        uint32_t gen);
/* Makes room for `need` more events in worker w's ring without a wait;
 * false when a push_burst_for() deadline passed first. */
bool rg__dispatch_ensure_room(rg_dispatcher_t *d, unsigned w, uint32_t need);

/* committer.c */
void *rg__committer_main(void *arg);

/* engine.c: logs through the conf's log callback (any thread). */
void rg__log(rg_engine_t *e, rg_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The spot where dispatcher d waits for space in ring (d, w). */
static inline struct spot *rg__space_of(rg_engine_t *e, unsigned d,
                                        unsigned w)
{
    return &e->spaces[(size_t)d * e->nworkers + w];
}

/* One step of a wait loop's first phase: a pause, or under the yield
 * policy a sched_yield() (engine.c resolves idle.policy at start). */
void rg__idle_step(const rg_engine_t *e);

/* The worker of a cold key. */
static inline unsigned rg__route(const rg_engine_t *e, uint64_t key)
{
    return rg_hash_reduce(rg_hash64(key), e->ncold);
}

/* The lane of a hot key's event, h == rg_hash64(ev->key): by its order
 * unit for a split processor, else by the key (one lane, whole). */
static inline unsigned rg__lane_of(const rg_engine_t *e, const rg_event_t *ev,
                                   uint64_t h)
{
    if (e->proc.split)
        h = rg_hash64(e->proc.order_key(e->proc.opaque, ev));
    return e->ncold + rg_hash_reduce(h, e->nlanes);
}

/* Where d routes ev now (h == rg_hash64(ev->key)), route being the
 * caller's copy of d->route (held in a register across its loop: the
 * ring stores in between would make the compiler load it again): a lane
 * while the key is in the route set, else its worker. Without lanes one
 * predictable branch on a register. Ingest thread. */
static inline unsigned rg__route_ev(const rg_dispatcher_t *d,
                                    const rg__hkset_t *route,
                                    const rg_event_t *ev, uint64_t h)
{
    const rg_engine_t *e = d->e;
    if (__builtin_expect(route != NULL, 0) && rg__hkset_has(route, ev->key, h))
        return rg__lane_of(e, ev, h);
    return rg_hash_reduce(h, e->ncold);
}

/* Ticks d's hot-key sketch (the changes stay in its snapshot: nothing is
 * moved by them yet). The handle's holder only. */
static inline void rg__dispatch_hk_tick(rg_dispatcher_t *d)
{
    if (d->hk != NULL) {
        const rg__hk_change_t *ch;
        rg__hk_tick(d->hk, (uint64_t)rg__now_ns(), &ch);
    }
}

#include "epoch.h"

/* Idle stretches (rg_engine_worker_stats(): busy = up - idle), on the
 * worker's own thread. The clock is read only where a stretch starts and
 * ends, never on the busy path (which tests idle_t0 once per batch). A
 * stretch: polling empty rings (spinning, yielding, parked) and waiting
 * for a free delta slot (the sink behind). */
static inline void rg__worker_idle_begin(rg__worker_t *w)
{
    if (w->idle_t0 != 0)
        return;
    w->idle_t0 = rg__now_ns();
    /* relaxed: a statistic (a reader that sees it adds the open stretch) */
    atomic_store_explicit(&w->idle_since, w->idle_t0, memory_order_relaxed);
}

static inline void rg__worker_idle_end(rg__worker_t *w)
{
    if (w->idle_t0 == 0)
        return;
    w->idle_acc += (uint64_t)(rg__now_ns() - w->idle_t0);
    w->idle_t0 = 0;
    /* relaxed: idle_ns is published by the release below */
    atomic_store_explicit(&w->idle_ns, w->idle_acc, memory_order_relaxed);
    /* release: pairs with the acquire in rg_engine_worker_stats(); a
     * reader that sees the stretch closed sees its time in idle_ns */
    atomic_store_explicit(&w->idle_since, 0, memory_order_release);
}

#endif /* RG_ENGINE_INT_H */
