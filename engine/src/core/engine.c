/*
 * engine.c - dispatchers, per-(dispatcher, worker) SPSC rings and pinned
 * worker threads (see railgun/engine.h for the model and the contract).
 *
 * Invariants
 *   - ring[d][w] has exactly one producer (the thread holding dispatcher d)
 *     and one consumer (worker w).
 *   - An event is "accepted" once its push returned; from then on exactly
 *     one worker processes it exactly once, even across rg_engine_stop().
 *   - A dispatcher handle is used by one thread at a time: its ingest
 *     thread (in_call 0 -> 1 by CAS), or the flusher sending an idle
 *     handle's barriers, or rg_engine_stop() (0 -> 2). Acquire CAS and
 *     release store hand the handle's private state between them.
 *   - Stop protocol: state := STOPPING, heavy fence, take every handle
 *     (CAS in_call 0 -> 2, waiting while a call is inside), in epoch mode
 *     send the final barrier on every handle, then drain := 1 and wake
 *     the workers; a worker exits only when drain is set and all its rings
 *     are empty; then the flusher writes through the final epoch. A push
 *     that starts after STOPPING fails with RG_ESTOPPED.
 *   - Epoch mode (flush.c has the rest): a barrier is written into every
 *     ring of a dispatcher right after its offsets snapshot, so every event
 *     below the snapshot is ahead of the barrier in its ring.
 *   - Every accepted event was begun in its partition's ACK tracker before
 *     it entered a ring, and is done right after its processor returned;
 *     a partition's tracker is created by its owning dispatcher and
 *     published (release) before its first event is pushed.
 *   - The committer's last tick runs after the workers were joined, so the
 *     final watermarks cover every accepted event.
 *   - Hot paths take no lock, make no syscall and allocate nothing; the
 *     only syscalls are futex waits/wakes and membarrier when a thread
 *     parks (see park.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/ack.h"
#include "railgun/engine.h"
#include "railgun/error.h"
#include "railgun/hash.h"
#include "railgun/ring.h"
#include "conf_props.h"
#include "engine_int.h"
#include "park.h"

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...)
{
    if (errstr == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

static inline unsigned route(const rg_engine_t *e, uint64_t key)
{
    return rg_hash_reduce(rg_hash64(key), e->nworkers);
}

unsigned rg_engine_worker_of(const rg_engine_t *e, uint64_t key)
{
    return route(e, key);
}

/* The spot where dispatcher d waits for space in ring (d, w). */
static inline struct spot *space_of(rg_engine_t *e, unsigned d, unsigned w)
{
    return &e->spaces[(size_t)d * e->nworkers + w];
}

/* ------------------------------------------------------------------ */
/* workers                                                              */

static void release_payloads(rg_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((evs[i].flags & RG_EVENT_F_EXTERNAL) &&
            evs[i].data.ext.release != NULL)
            evs[i].data.ext.release(evs[i].data.ext.ptr,
                                    evs[i].data.ext.opaque);
}

static void process(struct worker *w, rg_event_t *evs, size_t n)
{
    const rg_processor_t *p = &w->e->proc;
    if (p->batch_do != NULL) {
        if (p->pre_do != NULL)
            p->pre_do(p->opaque, w->idx, evs, n);
        p->batch_do(p->opaque, w->idx, evs, n);
    } else {
        for (size_t i = 0; i < n; i++)
            p->do_event(p->opaque, w->idx, &evs[i]);
    }
    release_payloads(evs, n);
    rg_engine_t *e = w->e;
    w->processed_local += n;
    /* relaxed: a statistic; single writer, readers only need a value
     * that was true at some point */
    atomic_store_explicit(&w->processed, w->processed_local,
                          memory_order_relaxed);
    if (e->has_sink) {
        /* epoch mode: the events are done when their epoch commits */
        if (!w->requested &&
            (rg_delta_keys(w->cur) >= e->flush_max_keys ||
             rg_delta_staged(w->cur) >= e->flush_max_keys)) {
            w->requested = true;
            rg__epoch_request(e, w->epoch);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /* relaxed: the tracker was published before the event was pushed,
         * and the ring's release/acquire carries that to us */
        rg_ack_t *a = atomic_load_explicit(&e->acks[evs[i].partition],
                                           memory_order_relaxed);
        rg_ack_done(a, evs[i].ack_gen, evs[i].offset);
    }
    w->since_signal += n;
    if (w->since_signal >= e->commit_max_events) {
        w->since_signal = 0;
        rg__park_wake(&e->commit_wake.park);
    }
}

/* Seals the open delta as epoch E and opens E + 1, waiting while every
 * slot still holds a sealed epoch the sink has not committed. */
static void seal(struct worker *w, uint64_t epoch)
{
    rg_engine_t *e = w->e;
    w->cur->epoch = epoch;
    /* release: the delta's contents happen before the flusher's acquire
     * load of sealed */
    atomic_store_explicit(&w->sealed, epoch, memory_order_release);
    rg__park_wake_if_sleeping(&e->flush_wake.park);
    uint64_t next = epoch + 1;
    rg_delta_t *d = &w->slots[next % e->nslots];
    /* slot of `next` held epoch next - nslots: free once that committed */
    while (next > e->nslots &&
           atomic_load_explicit(&e->committed_epoch, memory_order_acquire) <
               next - e->nslots) {
        /* acquire: pairs with the release in rg__engine_fail() */
        if (atomic_load_explicit(&e->failed, memory_order_acquire)) {
            rg__delta_clear(d); /* nothing will be written any more */
            break;
        }
        uint32_t seq = rg__park_prepare(&w->slot_wait.park);
        if (atomic_load_explicit(&e->committed_epoch, memory_order_acquire) >=
                next - e->nslots ||
            atomic_load_explicit(&e->failed, memory_order_acquire))
            rg__park_cancel(&w->slot_wait.park);
        else
            rg__park_commit(&w->slot_wait.park, seq);
    }
    w->cur = d;
    w->cur->epoch = next;
    w->epoch = next;
    w->requested = false;
}

/* Barrier `epoch` came from dispatcher d: with every dispatcher's barrier
 * in (aligned), seal. Returns true when ring d must wait for the others. */
static bool barrier(struct worker *w, unsigned d, uint64_t epoch)
{
    unsigned nd = w->e->ndispatchers;
    if (nd == 1) {
        seal(w, epoch);
        return false;
    }
    w->blocked[d] = true;
    if (++w->nblocked < nd)
        return true;
    seal(w, epoch);
    for (unsigned i = 0; i < nd; i++)
        w->blocked[i] = false;
    w->nblocked = 0;
    return false;
}

/* Processes evs[0..n) from dispatcher d, sealing at barriers; what follows
 * a barrier that must wait for other rings is held for later. */
static void consume(struct worker *w, unsigned d, rg_event_t *evs,
                    uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        uint32_t j = i;
        while (j < n && !(evs[j].flags & RG__EVENT_F_BARRIER))
            j++;
        if (j > i)
            process(w, evs + i, j - i);
        if (j == n)
            return;
        i = j + 1;
        if (barrier(w, d, (uint64_t)evs[j].offset)) {
            memmove(w->held[d], evs + i, sizeof(rg_event_t) * (n - i));
            w->held_n[d] = n - i;
            return;
        }
    }
}

/* One pass over every input ring; returns how many events it processed. */
static size_t poll_once(struct worker *w)
{
    size_t got = 0;
    for (unsigned d = 0; d < w->e->ndispatchers; d++) {
        if (w->blocked != NULL) {
            if (w->blocked[d])
                continue; /* behind a barrier: the others first */
            uint32_t h = w->held_n[d];
            if (h > 0) {
                memcpy(w->buf, w->held[d], sizeof(rg_event_t) * h);
                w->held_n[d] = 0;
                consume(w, d, w->buf, h);
                got += h;
                continue;
            }
        }
        uint32_t n = rg_ring_pop_burst_spsc_ev(w->in[d], w->buf,
                                               w->e->batch_max);
        if (n == 0)
            continue;
        /* the slots are free now: let a dispatcher waiting for space go
         * on while we process */
        rg__park_wake_if_sleeping(&space_of(w->e, d, w->idx)->park);
        if (w->e->has_sink)
            consume(w, d, w->buf, n);
        else
            process(w, w->buf, n);
        got += n;
    }
    return got;
}

/* True when no ring this worker may read now has an event. A ring behind
 * a barrier waits for the others, so it counts as empty here. */
static bool inputs_empty(struct worker *w)
{
    for (unsigned d = 0; d < w->e->ndispatchers; d++) {
        if (w->blocked != NULL) {
            if (w->blocked[d])
                continue;
            if (w->held_n[d] > 0)
                return false;
        }
        if (!rg__ring_is_empty(w->in[d]))
            return false;
    }
    return true;
}

/* Draining: done when nothing is left, held or half-aligned. */
static bool drained(struct worker *w)
{
    if (w->blocked != NULL) {
        if (w->nblocked > 0)
            return false;
        for (unsigned d = 0; d < w->e->ndispatchers; d++)
            if (w->held_n[d] > 0)
                return false;
    }
    return inputs_empty(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    rg_engine_t *e = w->e;
    uint32_t idle = 0;
    for (;;) {
        if (poll_once(w) > 0) {
            idle = 0;
            continue;
        }
        /* acquire: pairs with the release store in rg_engine_stop(); every
         * push that was accepted before is visible in the rings now */
        if (atomic_load_explicit(&e->drain, memory_order_acquire)) {
            if (drained(w))
                break;
            continue;
        }
        idle++;
        if (idle <= e->worker_spins) {
            rg__cpu_relax();
        } else if (idle <= e->worker_spins + e->worker_yields) {
            sched_yield();
        } else {
            uint32_t seq = rg__park_prepare(&w->wake.park);
            if (!inputs_empty(w) ||
                atomic_load_explicit(&e->drain, memory_order_acquire)) {
                rg__park_cancel(&w->wake.park);
            } else {
                rg__park_commit(&w->wake.park, seq);
                w->parks_local++;
                /* relaxed: statistic, single writer */
                atomic_store_explicit(&w->parks, w->parks_local,
                                      memory_order_relaxed);
            }
            idle = 0;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* dispatchers                                                          */

/* in_call: 0 free, 1 the ingest thread is inside a call, 2 another thread
 * holds the handle (the flusher sending an idle dispatcher's barriers, or
 * rg_engine_stop() for good). */
enum { CALL_FREE = 0, CALL_INGEST = 1, CALL_HELD = 2 };

static inline int dispatcher_enter(rg_dispatcher_t *d)
{
    uint32_t exp = CALL_FREE;
    /* acquire: what a thread that held the handle wrote into it (the
     * flusher's barriers) happens before our use of it */
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
    /* pairs with rg__fence_heavy() in rg_engine_stop(): either stop sees
     * in_call == 1 and waits for us, or we see ST_STOPPING */
    rg__fence_light();
    /* acquire: pairs with the release store in rg_engine_start(), which
     * published the started workers */
    int st = atomic_load_explicit(&d->e->state, memory_order_acquire);
    if (st != ST_RUNNING) {
        atomic_store_explicit(&d->in_call, 0, memory_order_release);
        return st == ST_NEW ? RG_ESTATE : RG_ESTOPPED;
    }
    return 0;
}

static inline void dispatcher_exit(rg_dispatcher_t *d)
{
    /* release: our ring writes happen before stop's (or the flusher's)
     * acquire CAS of in_call */
    atomic_store_explicit(&d->in_call, CALL_FREE, memory_order_release);
}

/* Waits until worker w's ring has `need` free slots (spin, yield, then
 * park until the worker frees space); returns the free slots. With a
 * deadline set (push_burst_for), returns 0 once it has passed. */
static uint32_t wait_for_space(rg_dispatcher_t *d, unsigned w, uint32_t need)
{
    rg_engine_t *e = d->e;
    rg_ring_t *r = d->out[w];
    struct rg__park *wk = &e->workers[w].wake.park;
    uint32_t free_slots, tries = 0;
    bool waited = false;
    /* ask for a burst's worth, so a stale cached tail that shows a few
     * free slots is refreshed now rather than a few events later */
    uint32_t ask = need > PUBLISH_EVERY ? need : PUBLISH_EVERY;
    while ((free_slots = rg__ring_free(r, ask)) < need) {
        if (!waited) {
            waited = true;
            d->waits_local++;
        }
        /* make sure the worker is awake to drain what we already put in */
        rg__park_wake_if_sleeping(wk);
        tries++;
        if (tries <= e->disp_spins) {
            rg__cpu_relax();
        } else if (tries <= e->disp_spins + e->disp_yields) {
            sched_yield();
        } else {
            int64_t left = 0;
            if (d->deadline != 0 &&
                (left = d->deadline - rg__now_ns()) <= 0) {
                d->timed_out = true;
                return 0;
            }
            struct rg__park *sp = &d->space[w].park;
            uint32_t seq = rg__park_prepare(sp);
            if (rg__ring_has_space(r, need)) {
                rg__park_cancel(sp);
            } else {
                if (d->deadline != 0) {
                    rg__futex_wait_ns(&sp->seq, seq, (uint64_t)left);
                    rg__park_cancel(sp);
                } else {
                    rg__park_commit(sp, seq);
                }
                d->parks_local++;
            }
            tries = 0;
        }
    }
    return free_slots;
}

/* Publishes what was written into worker w's ring and wakes it if idle. */
static void publish(rg_dispatcher_t *d, unsigned w)
{
    uint32_t n = d->npend[w];
    if (n == 0)
        return;
    rg__ring_publish(d->out[w], n);
    d->room[w] -= n;
    d->npend[w] = 0;
    rg__park_wake_if_sleeping(&d->e->workers[w].wake.park);
}

/* Writes ev straight into its worker's ring (no intermediate copy),
 * publishing every PUBLISH_EVERY events and whenever the ring fills. The
 * engine's fields are set on the slot. */
static inline void write_to(rg_dispatcher_t *d, unsigned w,
                            const rg_event_t *ev, uint32_t gen)
{
    if (d->npend[w] == d->room[w]) {
        /* let the worker see (and free) what we wrote before we wait */
        publish(d, w);
        d->room[w] = wait_for_space(d, w, 1);
    }
    rg_ring_t *r = d->out[w];
    rg_event_t *slot = rg__ring_slot(r, d->npend[w], sizeof(rg_event_t));
    /* an event is a line: ask for the one a few events ahead in writable
     * state now, so this store does not wait for the worker's copy of it
     * to be invalidated (as rg_ring's single push does) */
    rg__ring_prefetch_w(r, rg__ring_slot(r, d->npend[w] + r->prod.prefetch,
                                         sizeof(rg_event_t)));
    *slot = *ev;
    slot->source = (uint16_t)d->idx;
    slot->ack_gen = gen;
    if (++d->npend[w] == PUBLISH_EVERY)
        publish(d, w);
}

static inline void write_event(rg_dispatcher_t *d, const rg_event_t *ev,
                               uint32_t gen)
{
    write_to(d, route(d->e, ev->key), ev, gen);
}

/* Makes sure `need` more events fit into worker w's ring without a wait
 * (publishing what is pending to get there). False when the deadline
 * passed first. */
static bool ensure_room(rg_dispatcher_t *d, unsigned w, uint32_t need)
{
    while (d->room[w] - d->npend[w] < need) {
        publish(d, w);
        uint32_t f = wait_for_space(d, w, need);
        if (f == 0)
            return false;
        d->room[w] = f;
    }
    return true;
}

static void flush_all(rg_dispatcher_t *d)
{
    for (unsigned w = 0; w < d->e->nworkers; w++)
        publish(d, w);
}

/* True when epoch ep's snapshot slot is free: the sink has committed the
 * epoch that used it before (ep - nslots). */
static inline bool epoch_slot_free(rg_engine_t *e, uint64_t ep)
{
    /* acquire: pairs with the flusher's release store after it is done
     * with snap[ep - nslots] */
    return ep <= e->nslots ||
           atomic_load_explicit(&e->committed_epoch, memory_order_acquire) >=
               ep - e->nslots;
}

/*
 * Closes every open epoch up to `upto`: snapshots the next offset of each
 * partition d owns, then puts barrier E into every worker ring. Waits
 * while the snapshot slot still holds an epoch the sink has not
 * committed. Returns false when the engine failed meanwhile, or when a
 * push_burst_for() deadline passed first (d->timed_out is then set).
 */
static bool send_barriers(rg_dispatcher_t *d, uint64_t upto)
{
    rg_engine_t *e = d->e;
    while (d->epoch <= upto) {
        uint64_t ep = d->epoch;
        if (!epoch_slot_free(e, ep)) {
            flush_all(d); /* what we wrote must reach the workers first */
            unsigned tries = 0;
            while (!epoch_slot_free(e, ep)) {
                /* acquire: pairs with the release in rg__engine_fail() */
                if (atomic_load_explicit(&e->failed, memory_order_acquire))
                    return false;
                if (d->deadline != 0 && tries % 64 == 0 &&
                    rg__now_ns() >= d->deadline) {
                    d->timed_out = true;
                    return false;
                }
                if (++tries < 1000) {
                    rg__cpu_relax();
                } else {
                    struct timespec ts = {0, 200 * 1000};
                    nanosleep(&ts, NULL);
                }
            }
        }
        /* with a deadline, barrier writes must not wait: make room in
         * every ring first, before anything of epoch ep is written */
        if (d->deadline != 0)
            for (unsigned w = 0; w < e->nworkers; w++)
                if (!ensure_room(d, w, 1))
                    return false;
        uint32_t k = ep % e->nslots, n = 0;
        rg_offset_t *snap = d->snap[k];
        for (uint32_t i = 0; i < d->nowned; i++) {
            int32_t p = d->owned[i];
            /* relaxed: this thread is the only writer */
            snap[n++] = (rg_offset_t){
                p, atomic_load_explicit(&e->part_next[p],
                                        memory_order_relaxed)};
        }
        d->snap_n[k] = n;
        rg_event_t b;
        memset(&b, 0, sizeof(b));
        b.flags = RG__EVENT_F_BARRIER;
        b.offset = (int64_t)ep;
        for (unsigned w = 0; w < e->nworkers; w++)
            write_to(d, w, &b, 0);
        flush_all(d);
        d->epoch = ep + 1;
        /* release: the snapshot happens before the flusher's acquire */
        atomic_store_explicit(&d->snapped, ep, memory_order_release);
        rg__park_wake_if_sleeping(&e->flush_wake.park);
    }
    return true;
}

/*
 * Flusher: sends barriers up to `upto` for a dispatcher whose ingest thread
 * is not inside a call (an idle or finished source), so one quiet source
 * never holds an epoch back. upto <= committed_epoch + 1, so
 * send_barriers() never waits for the flusher itself. Returns false when
 * the handle was busy (its ingest thread will send them).
 */
bool rg__dispatcher_takeover(rg_dispatcher_t *d, uint64_t upto)
{
    uint32_t exp = CALL_FREE;
    /* acquire: pairs with the release in dispatcher_exit(); the handle's
     * private state is ours while we hold it */
    if (!atomic_compare_exchange_strong_explicit(&d->in_call, &exp,
                                                 CALL_HELD,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        return false;
    /* acquire: as in dispatcher_enter(); stop waits for our release */
    if (atomic_load_explicit(&d->e->state, memory_order_acquire) ==
        ST_RUNNING)
        send_barriers(d, upto);
    /* release: our writes to the handle happen before its next user's
     * acquire CAS */
    atomic_store_explicit(&d->in_call, CALL_FREE, memory_order_release);
    return true;
}

/* Sends the barriers that are due; one relaxed load when none is. */
static inline void maybe_barrier(rg_dispatcher_t *d)
{
    /* relaxed: a trigger; the snapshot and rings carry their own order */
    uint64_t req = atomic_load_explicit(&d->e->epoch_req,
                                        memory_order_relaxed);
    if (req >= d->epoch)
        send_barriers(d, req);
}

/* The partition's tracker, created (and owned by d) on first use. */
static rg_ack_t *tracker_for(rg_dispatcher_t *d, int32_t p, int64_t first,
                             int *rc)
{
    rg_engine_t *e = d->e;
    if (p < 0 || (uint32_t)p >= e->max_partitions) {
        *rc = RG_ERANGE;
        return NULL;
    }
    /* acquire: pairs with the release CAS below in another dispatcher */
    rg_ack_t *a = atomic_load_explicit(&e->acks[p], memory_order_acquire);
    if (a != NULL) {
        /* relaxed: the owner is this thread, or the check fails anyway */
        if (atomic_load_explicit(&e->owner[p], memory_order_relaxed) !=
            d->idx + 1) {
            *rc = RG_EINVAL;
            return NULL;
        }
        return a;
    }
    if (first < 0) {
        *rc = RG_EINVAL;
        return NULL;
    }
    a = rg_ack_new(e->ack_window, first);
    if (a == NULL) {
        *rc = RG_ENOMEM;
        return NULL;
    }
    rg_ack_t *none = NULL;
    /* release: publishes the tracker to the committer and to stats
     * readers (acquire loads); workers get it through the ring */
    if (!atomic_compare_exchange_strong_explicit(&e->acks[p], &none, a,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        rg_ack_destroy(a); /* another dispatcher owns it */
        *rc = RG_EINVAL;
        return NULL;
    }
    /* relaxed: read back by this thread only (others fail the check) */
    atomic_store_explicit(&e->owner[p], d->idx + 1, memory_order_relaxed);
    if (e->has_sink) {
        /* relaxed: single writer each (this thread; the flusher after the
         * partition's first snapshot, which the snapped release orders) */
        atomic_store_explicit(&e->part_next[p], first, memory_order_relaxed);
        atomic_store_explicit(&e->committed_next[p], first,
                              memory_order_relaxed);
        d->owned[d->nowned++] = p;
    }
    int32_t np = atomic_load_explicit(&e->npartitions, memory_order_relaxed);
    /* release: the committer scans [0, npartitions) with acquire */
    while (np < p + 1 &&
           !atomic_compare_exchange_weak_explicit(&e->npartitions, &np, p + 1,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        ;
    return a;
}

/* Begins ev's offset in its partition's tracker, waiting while the ACK
 * window is full. Returns the generation (>= 0), or RG_ERANGE, RG_EINVAL,
 * RG_ENOMEM. */
static int64_t track(rg_dispatcher_t *d, const rg_event_t *ev)
{
    int rc = 0;
    rg_ack_t *a = d->last_ack;
    if (a == NULL || ev->partition != d->last_p) {
        a = tracker_for(d, ev->partition, ev->offset, &rc);
        if (a == NULL)
            return rc;
        d->last_p = ev->partition;
        d->last_ack = a;
    }
    rg_engine_t *e = d->e;
    if (e->has_sink) {
        /* epoch mode: offsets are done when their epoch commits; only
         * their order is checked here. relaxed: this thread writes it */
        _Atomic int64_t *next = &e->part_next[ev->partition];
        if (ev->offset < atomic_load_explicit(next, memory_order_relaxed))
            return RG_EINVAL;
        atomic_store_explicit(next, ev->offset + 1, memory_order_relaxed);
        return 0;
    }
    rc = rg_ack_begin(a, ev->offset);
    if (rc == RG_EFULL) {
        d->ack_waits_local++;
        /* what we wrote but did not publish must reach the workers
         * before it can complete */
        flush_all(d);
        for (unsigned tries = 1; (rc = rg_ack_begin(a, ev->offset)) ==
                                 RG_EFULL; tries++) {
            if (tries < 1000) {
                rg__cpu_relax();
            } else if (tries < 1100) {
                sched_yield();
            } else {
                struct timespec ts = {0, 100 * 1000};
                nanosleep(&ts, NULL);
            }
        }
    }
    if (rc != 0)
        return rc;
    return rg_ack_generation(a);
}

static void publish_stats(rg_dispatcher_t *d)
{
    /* relaxed: statistics; single writer (this dispatcher's thread) */
    atomic_store_explicit(&d->accepted, d->accepted_local,
                          memory_order_relaxed);
    atomic_store_explicit(&d->undecodable, d->undecodable_local,
                          memory_order_relaxed);
    atomic_store_explicit(&d->waits, d->waits_local, memory_order_relaxed);
    atomic_store_explicit(&d->parks, d->parks_local, memory_order_relaxed);
    atomic_store_explicit(&d->rejected, d->rejected_local,
                          memory_order_relaxed);
    atomic_store_explicit(&d->ack_waits, d->ack_waits_local,
                          memory_order_relaxed);
}

/* An undecodable message's offset counts as done: it is skipped like a
 * gap (begun and done at once; in epoch mode the next offset moves past
 * it). Bad partitions or offsets are simply not tracked. */
static void skip_offset(rg_dispatcher_t *d, const rg_msg_t *msg)
{
    int rc = 0;
    rg_engine_t *e = d->e;
    rg_ack_t *a = tracker_for(d, msg->partition, msg->offset, &rc);
    if (a == NULL)
        return;
    if (e->has_sink) {
        /* relaxed: this thread is the only writer */
        _Atomic int64_t *next = &e->part_next[msg->partition];
        if (msg->offset >= atomic_load_explicit(next, memory_order_relaxed))
            atomic_store_explicit(next, msg->offset + 1,
                                  memory_order_relaxed);
    } else if (rg_ack_begin(a, msg->offset) == 0) {
        rg_ack_done(a, rg_ack_generation(a), msg->offset);
    }
}

static inline int unpack(rg_dispatcher_t *d, const rg_msg_t *msg,
                         rg_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->partition = msg->partition;
    ev->offset = msg->offset;
    int rc = d->e->proc.unpack(d->e->proc.opaque, msg, ev);
    if (rc != 0) {
        if ((ev->flags & RG_EVENT_F_EXTERNAL) && ev->data.ext.release)
            ev->data.ext.release(ev->data.ext.ptr, ev->data.ext.opaque);
        d->undecodable_local++;
        skip_offset(d, msg);
        return rc < 0 ? rc : RG_EDECODE;
    }
    return 0;
}

/* Unpacks, tracks and writes one message. Returns 0 (accepted), or why
 * not: the unpack error (counted as undecodable) or track()'s (counted as
 * rejected). */
static inline int push_msg(rg_dispatcher_t *d, const rg_msg_t *msg)
{
    rg_event_t ev;
    int rc = unpack(d, msg, &ev);
    if (rc != 0)
        return rc;
    int64_t gen = track(d, &ev);
    if (gen < 0) {
        d->rejected_local++;
        return (int)gen;
    }
    write_event(d, &ev, (uint32_t)gen);
    d->accepted_local++;
    return 0;
}

int rg_dispatcher_push(rg_dispatcher_t *d, const rg_msg_t *msg)
{
    int rc = dispatcher_enter(d);
    if (rc != 0)
        return rc;
    maybe_barrier(d);
    rc = push_msg(d, msg);
    flush_all(d);
    publish_stats(d);
    dispatcher_exit(d);
    return rc;
}

size_t rg_dispatcher_push_burst(rg_dispatcher_t *d, const rg_msg_t *msgs,
                                size_t n)
{
    if (dispatcher_enter(d) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((i & (PUBLISH_EVERY - 1)) == 0)
            maybe_barrier(d);
        push_msg(d, &msgs[i]);
    }
    flush_all(d);
    publish_stats(d);
    dispatcher_exit(d);
    return n;
}

int rg_dispatcher_push_burst_for(rg_dispatcher_t *d, const rg_msg_t *msgs,
                                 size_t n, int timeout_ms, size_t *consumed)
{
    *consumed = 0;
    if (timeout_ms < 0)
        return RG_EINVAL;
    int rc = dispatcher_enter(d);
    if (rc != 0)
        return rc;
    rg_engine_t *e = d->e;
    /* events per room check: all of them must fit without a wait, into
     * whichever ring they go */
    uint32_t cap = d->out[0]->capacity;
    uint32_t block = cap / 2 < PUBLISH_EVERY ? cap / 2 : PUBLISH_EVERY;
    d->deadline = rg__now_ns() + (int64_t)timeout_ms * 1000000 + 1;
    d->timed_out = false;
    size_t i = 0;
    while (i < n) {
        maybe_barrier(d);
        for (unsigned w = 0; !d->timed_out && w < e->nworkers; w++)
            ensure_room(d, w, block);
        if (d->timed_out)
            break;
        for (size_t end = i + block < n ? i + block : n; i < end; i++) {
            push_msg(d, &msgs[i]);
        }
    }
    rc = d->timed_out ? RG_ETIMEDOUT : 0;
    d->deadline = 0;
    d->timed_out = false;
    flush_all(d);
    publish_stats(d);
    dispatcher_exit(d);
    *consumed = i;
    return rc;
}

bool rg_dispatcher_ready(rg_dispatcher_t *d)
{
    if (dispatcher_enter(d) != 0)
        return true; /* a push says why at once */
    rg_engine_t *e = d->e;
    bool ready = true;
    for (unsigned w = 0; ready && w < e->nworkers; w++) {
        uint32_t cap = d->out[w]->capacity;
        /* published or pending, ours are not free either */
        ready = rg__ring_free(d->out[w], cap) - d->npend[w] >= cap / 2;
    }
    /* the barrier of the open epoch could go out without a wait */
    if (ready && e->has_sink)
        ready = epoch_slot_free(e, d->epoch);
    dispatcher_exit(d);
    return ready;
}

size_t rg_dispatcher_push_events(rg_dispatcher_t *d, const rg_event_t *evs,
                                 size_t n)
{
    if (dispatcher_enter(d) != 0)
        return 0;
    size_t accepted = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i & (PUBLISH_EVERY - 1)) == 0)
            maybe_barrier(d);
        int64_t gen = track(d, &evs[i]);
        if (gen < 0) {
            d->rejected_local++;
            continue;
        }
        write_event(d, &evs[i], (uint32_t)gen);
        accepted++;
    }
    flush_all(d);
    d->accepted_local += accepted;
    publish_stats(d);
    dispatcher_exit(d);
    return accepted;
}

int rg_dispatcher_reset(rg_dispatcher_t *d, int32_t partition,
                        int64_t next_offset)
{
    int rc = dispatcher_enter(d);
    if (rc != 0)
        return rc;
    rg_engine_t *e = d->e;
    if (next_offset < 0) {
        rc = RG_EINVAL;
    } else if (partition < 0 || (uint32_t)partition >= e->max_partitions) {
        rc = RG_ERANGE;
    } else {
        /* acquire: pairs with the release CAS in tracker_for() */
        bool existed = atomic_load_explicit(&e->acks[partition],
                                            memory_order_acquire) != NULL;
        rg_ack_t *a = tracker_for(d, partition, next_offset, &rc);
        if (a != NULL && existed)
            rc = rg_ack_reset(a, next_offset);
        if (a != NULL && rc == 0 && e->has_sink)
            /* relaxed: this thread is the only writer */
            atomic_store_explicit(&e->part_next[partition], next_offset,
                                  memory_order_relaxed);
    }
    dispatcher_exit(d);
    return rc;
}

int rg_dispatcher_flush(rg_dispatcher_t *d, int timeout_ms)
{
    int rc = dispatcher_enter(d);
    if (rc != 0)
        return rc;
    rg_engine_t *e = d->e;
    if (!e->has_sink) {
        flush_all(d);
        dispatcher_exit(d);
        return 0;
    }
    uint64_t ep = d->epoch; /* the open epoch: close it now */
    rg__epoch_request(e, ep);
    bool sent = send_barriers(d, ep);
    dispatcher_exit(d);
    /* the other dispatchers send theirs from their pushes, or the flusher
     * for them when they are idle */
    rg__park_wake(&e->flush_wake.park);
    int64_t deadline = rg__now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        /* acquire: pairs with the flusher's release after the commit */
        if (sent && atomic_load_explicit(&e->committed_epoch,
                                         memory_order_acquire) >= ep)
            return 0;
        /* acquire: pairs with the release in rg__engine_fail() */
        if (!sent || atomic_load_explicit(&e->failed, memory_order_acquire))
            return RG_ESTOPPED;
        if (rg__now_ns() >= deadline)
            return RG_EIO;
        struct timespec ts = {0, 500 * 1000};
        nanosleep(&ts, NULL);
    }
}

int rg_dispatcher_poll(rg_dispatcher_t *d)
{
    int rc = dispatcher_enter(d);
    if (rc != 0)
        return rc;
    maybe_barrier(d);
    dispatcher_exit(d);
    return 0;
}

/* ------------------------------------------------------------------ */
/* committer                                                            */

int64_t rg__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Hands every partition whose watermark moved to the commit callback. */
static void commit_tick(rg_engine_t *e)
{
    /* acquire: pairs with the release CAS in tracker_for() */
    int32_t np = atomic_load_explicit(&e->npartitions, memory_order_acquire);
    size_t n = 0;
    int64_t now = rg__now_ns();
    for (int32_t p = 0; p < np; p++) {
        /* acquire: pairs with the release CAS in tracker_for() */
        rg_ack_t *a = atomic_load_explicit(&e->acks[p], memory_order_acquire);
        if (a == NULL)
            continue;
        uint32_t gen = rg_ack_generation(a);
        /* acquire: pairs with the flusher's release store after the
         * epoch holding these offsets committed */
        int64_t wm = e->has_sink
                         ? atomic_load_explicit(&e->committed_next[p],
                                                memory_order_acquire)
                         : rg_ack_watermark(a);
        struct commit_state *cs = &e->cst[p];
        if (cs->seen && cs->gen == gen && cs->wm >= wm)
            continue; /* not moved: its stuck clock keeps running */
        cs->seen = true;
        cs->gen = gen;
        cs->wm = wm;
        /* relaxed: read by stats, a timestamp */
        atomic_store_explicit(&e->moved_ns[p], now, memory_order_relaxed);
        e->batch[n++] = (rg_commit_t){p, gen, wm};
    }
    if (n > 0 && e->commit_cb != NULL) {
        e->commit_cb(e->commit_opaque, e->batch, n);
        /* relaxed: a counter; single writer (this thread) */
        atomic_store_explicit(&e->commits,
                              atomic_load_explicit(&e->commits,
                                                   memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
}

static void *committer_main(void *arg)
{
    rg_engine_t *e = arg;
    for (;;) {
        uint32_t seq = rg__park_prepare(&e->commit_wake.park);
        /* acquire: pairs with the release store in rg_engine_stop(),
         * made after the workers were joined: this tick is the last and
         * sees every completion */
        int stop = atomic_load_explicit(&e->committer_stop,
                                        memory_order_acquire);
        commit_tick(e);
        if (stop) {
            rg__park_cancel(&e->commit_wake.park);
            break;
        }
        rg__futex_wait_ns(&e->commit_wake.park.seq, seq,
                          e->commit_interval_ns);
        rg__park_cancel(&e->commit_wake.park);
    }
    return NULL;
}

int rg_engine_set_commit_cb(rg_engine_t *e, rg_commit_cb *cb, void *opaque)
{
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock */
    int st = atomic_load_explicit(&e->state, memory_order_relaxed);
    if (st == ST_NEW) {
        e->commit_cb = cb;
        e->commit_opaque = opaque;
    }
    pthread_mutex_unlock(&e->stop_lock);
    return st == ST_NEW ? 0 : RG_ESTATE;
}

int rg_engine_partition_stats(rg_engine_t *e, int32_t partition,
                              rg_partition_stats_t *out)
{
    if (partition < 0 || (uint32_t)partition >= e->max_partitions)
        return RG_ENOENT;
    /* acquire: pairs with the release CAS in tracker_for() */
    rg_ack_t *a = atomic_load_explicit(&e->acks[partition],
                                       memory_order_acquire);
    if (a == NULL)
        return RG_ENOENT;
    rg_ack_stats_t st;
    rg_ack_stats(a, &st);
    if (e->has_sink) {
        /* epoch mode: pending = offsets past the stored position.
         * relaxed: a snapshot for stats (each has one writer) */
        int64_t next = atomic_load_explicit(&e->part_next[partition],
                                            memory_order_relaxed);
        int64_t done = atomic_load_explicit(&e->committed_next[partition],
                                            memory_order_relaxed);
        st.watermark = done;
        st.next = next;
        st.pending = next > done ? (uint64_t)(next - done) : 0;
    }
    out->generation = st.generation;
    out->committable = st.watermark;
    out->next = st.next;
    out->pending = st.pending;
    out->oldest_pending = st.pending ? st.watermark : -1;
    out->oldest_pending_ms = 0;
    if (st.pending) {
        /* relaxed: a timestamp written by the committer */
        int64_t moved = atomic_load_explicit(&e->moved_ns[partition],
                                             memory_order_relaxed);
        int64_t age = moved ? rg__now_ns() - moved : 0;
        out->oldest_pending_ms = age > 0 ? (uint64_t)age / 1000000 : 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                            */

static void free_engine(rg_engine_t *e)
{
    rg__epoch_destroy(e);
    if (e->rings != NULL)
        for (size_t i = 0; i < (size_t)e->ndispatchers * e->nworkers; i++)
            rg_ring_destroy(e->rings[i]);
    if (e->workers != NULL)
        for (unsigned w = 0; w < e->nworkers; w++) {
            free(e->workers[w].in);
            free(e->workers[w].buf);
        }
    if (e->dispatchers != NULL)
        for (unsigned d = 0; d < e->ndispatchers; d++) {
            free(e->dispatchers[d].out);
            free(e->dispatchers[d].npend);
            free(e->dispatchers[d].room);
        }
    if (e->acks != NULL)
        for (uint32_t p = 0; p < e->max_partitions; p++)
            rg_ack_destroy(e->acks[p]);
    free((void *)e->acks);
    free((void *)e->owner);
    free(e->cst);
    free((void *)e->moved_ns);
    free(e->batch);
    free(e->rings);
    free(e->spaces);
    free(e->workers);
    free(e->dispatchers);
    pthread_mutex_destroy(&e->stop_lock);
    free(e);
}

static int assign_cpus(rg_engine_t *e, char *errstr, size_t errstr_size)
{
    int *cpus = malloc(sizeof(int) * CPU_SETSIZE);
    if (cpus == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        return RG_ENOMEM;
    }
    const char *list = rg__conf_str(e->conf, RG_P_WORKERS_CPUS);
    int n = (list[0] == '\0')
                ? rg__cpus_allowed(cpus, CPU_SETSIZE)
                : rg__cpulist_parse(list, cpus, CPU_SETSIZE, errstr,
                                    errstr_size);
    if (n > 0)
        for (unsigned w = 0; w < e->nworkers; w++)
            e->workers[w].cpu = cpus[w % (unsigned)n];
    free(cpus);
    return n > 0 ? 0 : (n < 0 ? n : RG_EINVAL);
}

rg_engine_t *rg_engine_new(rg_conf_t *conf, const rg_processor_t *proc,
                           char *errstr, size_t errstr_size)
{
    if (conf == NULL || proc == NULL) {
        seterr(errstr, errstr_size, "rg_engine_new: NULL conf or processor");
        return NULL;
    }
    if (proc->unpack == NULL) {
        seterr(errstr, errstr_size, "processor: unpack is required");
        return NULL;
    }
    if ((proc->do_event == NULL) == (proc->batch_do == NULL)) {
        seterr(errstr, errstr_size, "processor: set exactly one of do_event "
               "(single mode) and batch_do (batch mode)");
        return NULL;
    }
    if (proc->pre_do != NULL && proc->batch_do == NULL) {
        seterr(errstr, errstr_size, "processor: pre_do needs batch_do");
        return NULL;
    }
    int64_t cap = rg__conf_int(conf, RG_P_RING_CAPACITY);
    int64_t batch = rg__conf_int(conf, RG_P_BATCH_MAX_EVENTS);
    if (batch > cap) {
        seterr(errstr, errstr_size, "batch.max.events: %lld exceeds "
               "ring.capacity %lld", (long long)batch, (long long)cap);
        return NULL;
    }

    rg__fence_init();
    rg_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->stop_lock, NULL);
    e->proc = *proc;
    e->nworkers = (unsigned)rg__conf_int(conf, RG_P_WORKERS);
    e->ndispatchers = (unsigned)rg__conf_int(conf, RG_P_DISPATCHERS);
    e->batch_max = (uint32_t)batch;
    e->worker_spins = (uint32_t)rg__conf_int(conf, RG_P_WORKER_IDLE_SPINS);
    e->worker_yields = (uint32_t)rg__conf_int(conf, RG_P_WORKER_IDLE_YIELDS);
    e->disp_spins = (uint32_t)rg__conf_int(conf, RG_P_DISPATCHER_WAIT_SPINS);
    e->disp_yields =
        (uint32_t)rg__conf_int(conf, RG_P_DISPATCHER_WAIT_YIELDS);
    e->conf = conf;
    atomic_init(&e->state, ST_NEW);
    atomic_init(&e->drain, 0);
    e->ack_window = (uint32_t)rg__conf_int(conf, RG_P_ACK_WINDOW_EVENTS);
    e->max_partitions = (uint32_t)rg__conf_int(conf, RG_P_ACK_MAX_PARTITIONS);
    e->commit_interval_ns =
        (uint64_t)rg__conf_int(conf, RG_P_ACK_COMMIT_INTERVAL_MS) * 1000000u;
    e->commit_max_events =
        (uint64_t)rg__conf_int(conf, RG_P_ACK_COMMIT_MAX_EVENTS);
    e->acks = calloc(e->max_partitions, sizeof(*e->acks));
    e->owner = calloc(e->max_partitions, sizeof(*e->owner));
    e->cst = calloc(e->max_partitions, sizeof(*e->cst));
    e->moved_ns = calloc(e->max_partitions, sizeof(*e->moved_ns));
    e->batch = calloc(e->max_partitions, sizeof(*e->batch));
    e->nslots = (uint32_t)rg__conf_int(conf, RG_P_FLUSH_MAX_PENDING_EPOCHS) + 1;
    e->flush_interval_ns =
        (uint64_t)rg__conf_int(conf, RG_P_FLUSH_INTERVAL_MS) * 1000000u;
    e->flush_max_keys = (uint32_t)rg__conf_int(conf, RG_P_FLUSH_MAX_KEYS);
    e->merge_max_keys = (uint32_t)rg__conf_int(conf, RG_P_MERGE_MAX_KEYS);
    e->backoff_ns =
        (uint64_t)rg__conf_int(conf, RG_P_SINK_RETRY_BACKOFF_MS) * 1000000u;
    e->backoff_max_ns =
        (uint64_t)rg__conf_int(conf, RG_P_SINK_RETRY_BACKOFF_MAX_MS) *
        1000000u;

    size_t nrings = (size_t)e->ndispatchers * e->nworkers;
    e->workers = aligned_alloc(RG_CACHELINE,
                               sizeof(struct worker) * e->nworkers);
    e->dispatchers = aligned_alloc(RG_CACHELINE,
                                   sizeof(rg_dispatcher_t) * e->ndispatchers);
    e->rings = calloc(nrings, sizeof(rg_ring_t *));
    e->spaces = aligned_alloc(RG_CACHELINE, sizeof(struct spot) * nrings);
    if (!e->workers || !e->dispatchers || !e->rings || !e->spaces ||
        !e->acks || !e->owner || !e->cst || !e->moved_ns || !e->batch)
        goto nomem;
    memset(e->workers, 0, sizeof(struct worker) * e->nworkers);
    memset(e->dispatchers, 0, sizeof(rg_dispatcher_t) * e->ndispatchers);
    memset(e->spaces, 0, sizeof(struct spot) * nrings);
    for (size_t i = 0; i < nrings; i++)
        if ((e->rings[i] = rg_ring_new((uint32_t)cap,
                                       sizeof(rg_event_t))) == NULL)
            goto nomem;

    /* ring (d, w) and its space spot live at index d * workers + w */
    for (unsigned w = 0; w < e->nworkers; w++) {
        struct worker *wk = &e->workers[w];
        wk->e = e;
        wk->idx = w;
        wk->in = calloc(e->ndispatchers, sizeof(rg_ring_t *));
        wk->buf = malloc(sizeof(rg_event_t) * (size_t)batch);
        if (!wk->in || !wk->buf)
            goto nomem;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            wk->in[d] = e->rings[(size_t)d * e->nworkers + w];
    }
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        dp->e = e;
        dp->idx = d;
        dp->epoch = 1; /* epoch mode: the first open epoch */
        dp->out = calloc(e->nworkers, sizeof(rg_ring_t *));
        dp->npend = calloc(e->nworkers, sizeof(uint32_t));
        dp->room = calloc(e->nworkers, sizeof(uint32_t));
        if (!dp->out || !dp->npend || !dp->room)
            goto nomem;
        dp->space = space_of(e, d, 0);
        for (unsigned w = 0; w < e->nworkers; w++)
            dp->out[w] = e->rings[(size_t)d * e->nworkers + w];
    }
    if (assign_cpus(e, errstr, errstr_size) != 0) {
        e->conf = NULL; /* still the caller's */
        free_engine(e);
        return NULL;
    }
    return e;
nomem:
    seterr(errstr, errstr_size, "out of memory (workers=%u dispatchers=%u "
           "ring.capacity=%lld)", e->nworkers, e->ndispatchers,
           (long long)cap);
    e->conf = NULL;
    free_engine(e);
    return NULL;
}

/* Sets drain, wakes every worker and joins the started ones. Each exits
 * once its rings are empty. Caller holds stop_lock. */
static void drain_workers(rg_engine_t *e)
{
    /* release: pairs with the acquire loads of drain in worker_main() */
    atomic_store_explicit(&e->drain, 1, memory_order_release);
    for (unsigned w = 0; w < e->nworkers; w++)
        rg__park_wake(&e->workers[w].wake.park);
    for (unsigned w = 0; w < e->nworkers; w++) {
        if (e->workers[w].joinable) {
            pthread_join(e->workers[w].thread, NULL);
            e->workers[w].joinable = false;
        }
    }
}

/* A failed start: no event was accepted, so the started workers have
 * nothing to do; stop them and leave the engine startable again. */
static int abort_start(rg_engine_t *e)
{
    drain_workers(e);
    /* relaxed: no worker runs now */
    atomic_store_explicit(&e->drain, 0, memory_order_relaxed);
    pthread_mutex_unlock(&e->stop_lock);
    return RG_ESYS;
}

int rg_engine_start(rg_engine_t *e, char *errstr, size_t errstr_size)
{
    if (e == NULL)
        return RG_EINVAL;
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock, which we hold */
    if (atomic_load_explicit(&e->state, memory_order_relaxed) != ST_NEW) {
        pthread_mutex_unlock(&e->stop_lock);
        seterr(errstr, errstr_size, "engine already started");
        return RG_ESTATE;
    }
    for (unsigned w = 0; w < e->nworkers; w++) {
        struct worker *wk = &e->workers[w];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(wk->cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        int rc = pthread_create(&wk->thread, &attr, worker_main, wk);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            seterr(errstr, errstr_size, "worker %u on CPU %d: cannot start "
                   "thread: %s%s", w, wk->cpu, strerror(rc),
                   rc == EINVAL ? " (is the CPU outside this process's "
                                  "cpuset? see workers.cpus)" : "");
            return abort_start(e);
        }
        wk->joinable = true;
    }
    int crc = pthread_create(&e->committer, NULL, committer_main, e);
    if (crc != 0) {
        seterr(errstr, errstr_size, "cannot start the committer thread: %s",
               strerror(crc));
        return abort_start(e);
    }
    e->committer_joinable = true;
    if (e->has_sink) {
        int frc = pthread_create(&e->flusher, NULL, rg__flusher_main, e);
        if (frc != 0) {
            seterr(errstr, errstr_size, "cannot start the flusher thread: "
                   "%s", strerror(frc));
            /* release: pairs with the acquire load in committer_main() */
            atomic_store_explicit(&e->committer_stop, 1,
                                  memory_order_release);
            rg__park_wake(&e->commit_wake.park);
            pthread_join(e->committer, NULL);
            e->committer_joinable = false;
            atomic_store_explicit(&e->committer_stop, 0,
                                  memory_order_relaxed);
            return abort_start(e);
        }
        e->flusher_joinable = true;
    }
    /* release: pairs with the acquire load in dispatcher_enter() */
    atomic_store_explicit(&e->state, ST_RUNNING, memory_order_release);
    pthread_mutex_unlock(&e->stop_lock);
    return 0;
}

rg_dispatcher_t *rg_engine_dispatcher(rg_engine_t *e, unsigned idx)
{
    if (e == NULL || idx >= e->ndispatchers)
        return NULL;
    return &e->dispatchers[idx];
}

int rg_engine_stop(rg_engine_t *e)
{
    if (e == NULL)
        return RG_EINVAL;
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock, which we hold */
    int st = atomic_load_explicit(&e->state, memory_order_relaxed);
    if (st == ST_STOPPED || st == ST_NEW) {
        atomic_store_explicit(&e->state, ST_STOPPED, memory_order_relaxed);
        pthread_mutex_unlock(&e->stop_lock);
        return 0;
    }
    atomic_store_explicit(&e->state, ST_STOPPING, memory_order_relaxed);
    /* pairs with rg__fence_light() in dispatcher_enter() */
    rg__fence_heavy();
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        /* take every handle for good. acquire: pairs with the release in
         * dispatcher_exit(); that push's events are in the rings before
         * we set drain */
        uint32_t exp = CALL_FREE;
        while (!atomic_compare_exchange_weak_explicit(
                   &e->dispatchers[d].in_call, &exp, CALL_HELD,
                   memory_order_acquire, memory_order_relaxed)) {
            exp = CALL_FREE; /* the ingest thread or the flusher */
            struct timespec ts = {0, 50 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (e->has_sink) {
        /* close every open epoch at one final barrier F, on behalf of the
         * quiesced dispatchers (their last push released in_call above) */
        uint64_t fin = 0;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            if (e->dispatchers[d].epoch > fin)
                fin = e->dispatchers[d].epoch;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            send_barriers(&e->dispatchers[d], fin);
        /* release: pairs with the flusher's acquire; it writes up to fin */
        atomic_store_explicit(&e->final_epoch, fin, memory_order_release);
    }
    drain_workers(e);
    if (e->flusher_joinable) {
        /* release: pairs with stop_asked() in the flusher */
        atomic_store_explicit(&e->flusher_stop, 1, memory_order_release);
        rg__park_wake(&e->flush_wake.park);
        pthread_join(e->flusher, NULL);
        e->flusher_joinable = false;
    }
    /* release: pairs with the acquire load in committer_main(); every
     * done() of the joined workers happens before its last tick */
    atomic_store_explicit(&e->committer_stop, 1, memory_order_release);
    rg__park_wake(&e->commit_wake.park);
    if (e->committer_joinable) {
        pthread_join(e->committer, NULL);
        e->committer_joinable = false;
    }
    atomic_store_explicit(&e->state, ST_STOPPED, memory_order_relaxed);
    pthread_mutex_unlock(&e->stop_lock);
    return 0;
}

void rg_engine_destroy(rg_engine_t *e)
{
    if (e == NULL)
        return;
    rg_engine_stop(e);
    rg_conf_destroy(e->conf);
    free_engine(e);
}

void rg_engine_stats(rg_engine_t *e, rg_engine_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->workers = e->nworkers;
    out->dispatchers = e->ndispatchers;
    /* relaxed everywhere: counters, each a value that was true once */
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        out->accepted += atomic_load_explicit(&dp->accepted,
                                              memory_order_relaxed);
        out->undecodable += atomic_load_explicit(&dp->undecodable,
                                                 memory_order_relaxed);
        out->dispatcher_waits += atomic_load_explicit(&dp->waits,
                                                      memory_order_relaxed);
        out->dispatcher_parks += atomic_load_explicit(&dp->parks,
                                                      memory_order_relaxed);
        out->rejected += atomic_load_explicit(&dp->rejected,
                                              memory_order_relaxed);
        out->ack_waits += atomic_load_explicit(&dp->ack_waits,
                                               memory_order_relaxed);
    }
    out->commits = atomic_load_explicit(&e->commits, memory_order_relaxed);
    for (unsigned w = 0; w < e->nworkers; w++) {
        out->processed += atomic_load_explicit(&e->workers[w].processed,
                                               memory_order_relaxed);
        out->worker_parks += atomic_load_explicit(&e->workers[w].parks,
                                                  memory_order_relaxed);
    }
}

uint64_t rg_engine_worker_processed(const rg_engine_t *e, unsigned w)
{
    if (e == NULL || w >= e->nworkers)
        return 0;
    /* relaxed: a counter */
    return atomic_load_explicit(&e->workers[w].processed,
                                memory_order_relaxed);
}

const rg_conf_t *rg_engine_conf(const rg_engine_t *e)
{
    return e->conf;
}
