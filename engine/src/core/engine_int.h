/*
 * engine_int.h - the engine's internal structures, shared by engine.c
 * (dispatch, workers, lifecycle) and flush.c (deltas, the flusher).
 * Nothing here is public API.
 */
#ifndef RG_ENGINE_INT_H
#define RG_ENGINE_INT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "railgun/ack.h"
#include "railgun/engine.h"
#include "railgun/flush.h"
#include "railgun/merge.h"
#include "railgun/ring.h"
#include "railgun/sink.h"
#include "park.h"

RG_RING_PROTOTYPE(ev, rg_event_t)

/* Events a burst push writes into a worker's ring before publishing them. */
#define PUBLISH_EVERY 32

/* rg_event_t.flags bit (internal): an epoch barrier; offset = its epoch. */
#define RG__EVENT_F_BARRIER 0x80u

enum { ST_NEW = 0, ST_RUNNING, ST_STOPPING, ST_STOPPED };

/* A parking spot on its own cache line. */
struct spot {
    alignas(RG_CACHELINE) struct rg__park park;
};

/* One worker's changes in one epoch (flush.h). Owned by the worker while
 * open, by the flusher once sealed, handed back when the epoch commits. */
struct rg_delta_s {
    rg_merge_t *merged;     /* key -> summed value */
    rg_row_t *staged;       /* in first-staged order, last value wins */
    uint32_t nstaged, staged_cap, max_rows;
    uint32_t *index;        /* open addressing: staged index + 1, 0 free */
    uint32_t index_mask;
    uint64_t epoch;
};

struct worker {
    rg_engine_t *e;
    unsigned idx;
    int cpu;
    pthread_t thread;
    bool joinable;
    rg_ring_t **in;          /* [dispatchers]: ring[d][idx] */
    rg_event_t *buf;         /* batch.max.events */
    uint64_t processed_local;
    uint64_t parks_local;
    uint64_t since_signal;   /* completions since the committer was woken */
    /* epoch mode */
    rg_delta_t *slots;       /* [nslots]: epoch E lives in slots[E % n] */
    rg_delta_t *cur;         /* the open delta */
    uint64_t epoch;          /* the open epoch */
    bool requested;          /* asked for a barrier in this epoch */
    bool *blocked;           /* [dispatchers]: barrier seen, waiting */
    unsigned nblocked;
    rg_event_t **held;       /* [dispatchers]: popped after a barrier */
    uint32_t *held_n;
    /* stats, read by other threads; single writer (this worker) */
    alignas(RG_CACHELINE) _Atomic uint64_t processed;
    _Atomic uint64_t parks;
    _Atomic uint64_t sealed; /* newest sealed epoch (flusher reads) */
    /* where this worker sleeps when idle */
    struct spot wake;
    /* where it waits for a free delta slot */
    struct spot slot_wait;
};

struct rg_dispatcher_s {
    alignas(RG_CACHELINE) rg_engine_t *e;
    unsigned idx;
    _Atomic uint32_t in_call;   /* who uses the handle (engine.c) */
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
    int32_t last_p;             /* the partition last tracked, and its */
    rg_ack_t *last_ack;         /* tracker (events come in runs) */
    _Atomic uint64_t accepted, undecodable, waits, parks, rejected, ack_waits;
    /* epoch mode */
    uint64_t epoch;             /* the open epoch (barriers below it sent) */
    int32_t *owned;             /* partitions this dispatcher owns */
    uint32_t nowned;
    rg_offset_t **snap;         /* [nslots][max_partitions]: offsets at the
                                   barrier of epoch E in snap[E % n] */
    uint32_t *snap_n;           /* [nslots] */
    _Atomic uint64_t snapped;   /* newest epoch whose barrier is out */
};

struct rg_engine_s {
    rg_conf_t *conf;
    rg_processor_t proc;
    unsigned nworkers, ndispatchers;
    uint32_t batch_max;
    uint32_t worker_spins, worker_yields;
    uint32_t disp_spins, disp_yields;
    /* ST_*: read by every push (acquire) */
    alignas(RG_CACHELINE) _Atomic int state;
    _Atomic int drain;
    /* epoch mode: highest epoch whose barrier is due (dispatchers poll it
     * with a relaxed load on the push path) */
    _Atomic uint64_t epoch_req;
    pthread_mutex_t stop_lock;
    struct worker *workers;
    rg_dispatcher_t *dispatchers;
    rg_ring_t **rings;          /* [dispatchers * workers] */
    struct spot *spaces;        /* [dispatchers * workers] */

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

    /* epoch mode (has_sink) */
    bool has_sink;
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
    rg_epoch_hook_cb *hook;
    void *hook_opaque;
    pthread_t flusher;
    bool flusher_joinable;
    _Atomic int flusher_stop;
    _Atomic uint64_t final_epoch;  /* 0: not stopping */
    _Atomic uint64_t committed_epoch;
    _Atomic int failed;
    char errmsg[512];           /* written before failed is set */
    struct spot flush_wake;     /* the flusher sleeps here */
    _Atomic uint64_t st_epochs, st_txns, st_merged, st_staged, st_retries;
};

/* flush.c */
int rg__delta_init(rg_delta_t *d, uint32_t max_rows);
void rg__delta_free(rg_delta_t *d);
void rg__delta_clear(rg_delta_t *d);
void *rg__flusher_main(void *arg);
/* Frees the epoch structures and closes the sink (rg_engine_destroy()). */
void rg__epoch_destroy(rg_engine_t *e);
/* Asks for barrier `epoch` (no-op when one at or past it is due). */
void rg__epoch_request(rg_engine_t *e, uint64_t epoch);
/* engine.c: sends an idle dispatcher's barriers (flusher thread). */
bool rg__dispatcher_takeover(rg_dispatcher_t *d, uint64_t upto);
/* Stops the engine on its own with a message (flusher thread). */
void rg__engine_fail(rg_engine_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int64_t rg__now_ns(void);

#endif /* RG_ENGINE_INT_H */
