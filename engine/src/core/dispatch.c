/*
 * dispatch.c - the dispatcher: an ingest thread's push paths (see
 * railgun/engine.h for the contract). Unpack, route, track the offset,
 * write the event straight into its worker's ring slot, wait (spin,
 * yield, park) while a ring is full.
 *
 * Invariants
 *   - ring[d][w] has exactly one producer: the thread holding handle d.
 *     A handle is used by one thread at a time: its ingest thread
 *     (in_call 0 -> 1 by CAS, rg__dispatch_enter()), or the flusher
 *     sending an idle handle's barriers, or rg_engine_stop() (0 -> 2). The
 *     acquire CAS (A1, A2 in engine.c, A3 in epoch_dispatch.c) and the
 *     release store (R1) hand the handle's private state between them.
 *   - An event is "accepted" once its push returned it accepted; from then
 *     on exactly one worker processes it exactly once, even across
 *     rg_engine_stop().
 *   - Every accepted event was begun in its partition's ACK tracker before
 *     it entered a ring (in epoch mode: its offset recorded in part_next);
 *     a partition's tracker is created by its owning dispatcher and
 *     published (release) before its first event is pushed.
 *   - Written slots are published in order, at most PUBLISH_EVERY at a
 *     time and before any wait, so a worker never waits on an event the
 *     dispatcher holds back; npend[w] <= room[w] always.
 *   - Hot paths take no lock, make no syscall and allocate nothing; the
 *     only syscalls are futex waits/wakes and membarrier when a thread
 *     parks (see park.h), and the naps of a push that waits for flow
 *     control's tokens.
 *   - Flow control: every message a push consumes was granted a token by
 *     the engine's bucket first (bucket.h: at most rate x time + burst
 *     over any run); a push that has no token waits, never drops. Tokens
 *     are taken per burst (up to PUBLISH_EVERY messages), before any of
 *     the burst is unpacked.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <time.h>
#include "railgun/ack.h"
#include "railgun/engine.h"
#include "railgun/error.h"
#include "railgun/hash.h"
#include "engine_int.h"

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
            rg__idle_step(e);
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

/* How long one nap of a push waiting for tokens lasts at most: the
 * engine's stop and push_burst_for's deadline are seen this soon. */
#define FLOW_SLICE_NS 10000000

/* The slow half of flow_take(): no token was there. Publishes what this
 * handle wrote (a worker must not wait for events held here), then naps
 * until tokens come, at most FLOW_SLICE_NS at a time, sending due epoch
 * barriers between naps so epochs keep closing while the input is
 * throttled. Returns the tokens granted (1..k), or 0 when the
 * engine is stopping or the push's deadline passed (d->timed_out). */
static void publish_stats(rg_dispatcher_t *d);

static __attribute__((noinline)) uint32_t flow_wait(rg_dispatcher_t *d,
                                                    uint32_t k, int64_t wait)
{
    rg_engine_t *e = d->e;
    rg__dispatch_publish_all(d);
    d->flow_waits_local++;
    /* the counters now, not at the end of a call that may last seconds:
     * the adaptive limit reads waits and accepted after each commit */
    publish_stats(d);
    int64_t t0 = rg__now_ns(), now = t0;
    uint32_t got = 0;
    for (;;) {
        /* acquire: as in rg__dispatch_enter(); rg_engine_stop() waits for
         * this call to return, so it must see ST_STOPPING soon */
        if (atomic_load_explicit(&e->state, memory_order_acquire) !=
            ST_RUNNING)
            break;
        if (d->deadline != 0 && now >= d->deadline) {
            d->timed_out = true;
            break;
        }
        int64_t nap = wait < 1000 ? 1000 : wait;
        if (nap > FLOW_SLICE_NS)
            nap = FLOW_SLICE_NS;
        if (d->deadline != 0 && nap > d->deadline - now)
            nap = d->deadline - now;
        struct timespec ts = {0, (long)nap};
        nanosleep(&ts, NULL);
        rg__epoch_maybe_barrier(d);
        now = rg__now_ns();
        if ((got = rg__bucket_take(e->bucket, &d->bcache, k, now, &wait)) >
            0)
            break;
    }
    d->flow_wait_ns_local += (uint64_t)(rg__now_ns() - t0);
    return got;
}

/* Tokens for the next k (1 ..) messages of this call: how many may go now
 * (1..k), or 0 when the engine is stopping or the deadline passed.
 * Unlimited or served from the handle's cache: a load and two compares. */
static inline uint32_t flow_take(rg_dispatcher_t *d, uint32_t k)
{
    int64_t wait;
    uint32_t got = rg__bucket_take_lazy(d->e->bucket, &d->bcache, k, &wait);
    return got > 0 ? got : flow_wait(d, k, wait);
}

/* Puts k tokens flow_take() granted but the call did not spend back into
 * the handle's cache, when they came from it under the bucket's current
 * parameters. Else they were free (unlimited), or they were granted
 * under parameters that changed since: those few (at most one block per
 * change) are dropped rather than given back, an under-admission that
 * `granted` still counts. */
static void flow_unspend(rg_dispatcher_t *d, uint32_t k)
{
    /* relaxed: as in rg__bucket_take() */
    uint64_t cfg = atomic_load_explicit(&d->e->bucket->cfg,
                                        memory_order_relaxed);
    if (k != 0 && cfg != 0 && d->bcache.cfg == cfg)
        d->bcache.tokens += k;
}

void rg__dispatch_publish(rg_dispatcher_t *d, unsigned w)
{
    uint32_t n = d->npend[w];
    if (n == 0)
        return;
    RG_DASSERT(atomic_load_explicit(&d->in_call, memory_order_relaxed) !=
               CALL_FREE);
    RG_DASSERT(n <= d->room[w] && n <= rg__ring_free(d->out[w], n));
    rg__ring_publish(d->out[w], n);
    d->room[w] -= n;
    d->npend[w] = 0;
    rg__park_wake_if_sleeping(&d->e->workers[w].wake.park);
}

void rg__dispatch_publish_all(rg_dispatcher_t *d)
{
    for (unsigned w = 0; w < d->e->nworkers; w++)
        rg__dispatch_publish(d, w);
}

/* Writes ev straight into its worker's ring (no intermediate copy),
 * publishing every PUBLISH_EVERY events and whenever the ring fills. */
static inline void write_to(rg_dispatcher_t *d, unsigned w,
                            const rg_event_t *ev, uint32_t gen, bool user)
{
    if (d->npend[w] == d->room[w]) {
        /* let the worker see (and free) what we wrote before we wait */
        rg__dispatch_publish(d, w);
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
    if (user) /* a processor's bits only: none of the engine's markers */
        slot->flags &= (uint8_t)~RG__EVENT_F_INTERNAL;
    slot->source = (uint16_t)d->idx;
    slot->ack_gen = gen;
    if (++d->npend[w] == PUBLISH_EVERY)
        rg__dispatch_publish(d, w);
}

void rg__dispatch_write(rg_dispatcher_t *d, unsigned w, const rg_event_t *ev,
                        uint32_t gen)
{
    write_to(d, w, ev, gen, false);
}

bool rg__dispatch_ensure_room(rg_dispatcher_t *d, unsigned w, uint32_t need)
{
    while (d->room[w] - d->npend[w] < need) {
        rg__dispatch_publish(d, w);
        uint32_t f = wait_for_space(d, w, need);
        if (f == 0)
            return false;
        d->room[w] = f;
    }
    return true;
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
    a = rg_ack_new(e->ack_window, first, NULL, 0);
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
    if (e->epoch_mode) {
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
    if (e->epoch_mode) {
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
        rg__dispatch_publish_all(d);
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
    rg__dispatch_hk_tick(d); /* once per call: one compare until a slice
                              * ends (and a clock read) */
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
    atomic_store_explicit(&d->flow_waits, d->flow_waits_local,
                          memory_order_relaxed);
    atomic_store_explicit(&d->flow_wait_ns, d->flow_wait_ns_local,
                          memory_order_relaxed);
    atomic_store_explicit(&d->dups, d->dups_local, memory_order_relaxed);
    atomic_store_explicit(&d->evicted, d->evicted_local,
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
    if (e->epoch_mode) {
        /* relaxed: this thread is the only writer */
        _Atomic int64_t *next = &e->part_next[msg->partition];
        if (msg->offset >= atomic_load_explicit(next, memory_order_relaxed))
            atomic_store_explicit(next, msg->offset + 1,
                                  memory_order_relaxed);
    } else if (rg_ack_begin(a, msg->offset) == 0) {
        rg_ack_done(a, rg_ack_generation(a), msg->offset);
    }
}

static void release_payload(rg_event_t *ev)
{
    if ((ev->flags & RG_EVENT_F_EXTERNAL) && ev->data.ext.release != NULL)
        ev->data.ext.release(ev->data.ext.ptr, ev->data.ext.opaque);
}

/* Unpacks msg into ev. 0, or the unpack error (counted as undecodable,
 * its offset skipped), or RG_EINVAL for an event the processor made too
 * long for inline without RG_EVENT_F_EXTERNAL (counted as rejected). */
static inline int unpack(rg_dispatcher_t *d, const rg_msg_t *msg,
                         rg_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->partition = msg->partition;
    ev->offset = msg->offset;
    /* the routing key when unpack sets none: the message key's hash */
    if (msg->key_len > 0 && msg->key != NULL)
        ev->key = rg_hash_bytes(msg->key, msg->key_len);
    rg_engine_t *e = d->e;
    int rc = e->proc.unpack(e->proc.opaque, msg, ev);
    if (rc != 0) {
        release_payload(ev);
        d->undecodable_local++;
        rg__retry_dead_msg(d, msg, rc < 0 ? rc : RG_EDECODE);
        skip_offset(d, msg);
        return rc < 0 ? rc : RG_EDECODE;
    }
    if (ev->len > RG_EVENT_INLINE_MAX && !(ev->flags & RG_EVENT_F_EXTERNAL)) {
        int first = 0;
        /* relaxed: a once-flag; the log line carries no data to order */
        if (atomic_compare_exchange_strong_explicit(&e->warned_len, &first, 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed))
            rg__log(e, RG_LOG_WARN, "unpack set ev->len = %u, above the "
                    "%d inline bytes, without RG_EVENT_F_EXTERNAL "
                    "(partition %d offset %lld): rejected; logged once",
                    ev->len, RG_EVENT_INLINE_MAX, (int)msg->partition,
                    (long long)msg->offset);
        d->rejected_local++;
        return RG_EINVAL;
    }
    return 0;
}

/* Unpacks, tracks and writes one message (into hk too, the caller's copy
 * of d->hk, held in a register across its loop). Returns 0 (accepted),
 * or why not: the unpack error (counted as undecodable) or track()'s (counted as
 * rejected). */
static inline int push_msg(rg_dispatcher_t *d, const rg_msg_t *msg,
                           rg__hk_t *hk, const rg__hkset_t *route)
{
    /* exactly once across redelivery (dedup.c): a copy is done at once,
     * like an undecodable message (one test per message without an id) */
    if (__builtin_expect(msg->producer_id != 0, 0) && d->dd != NULL &&
        (uint32_t)msg->partition < d->e->max_partitions &&
        rg__dedup_seen(d, msg)) {
        d->dups_local++;
        skip_offset(d, msg);
        return 0;
    }
    rg_event_t ev;
    int rc = unpack(d, msg, &ev);
    if (rc != 0)
        return rc;
    int64_t gen = track(d, &ev);
    if (gen < 0) {
        release_payload(&ev);
        d->rejected_local++;
        return (int)gen;
    }
    uint64_t h = rg_hash64(ev.key);
    if (__builtin_expect(hk != NULL, 0))
        rg__hk_add_hashed(hk, ev.key, h, 1);
    write_to(d, rg__route_ev(d, route, &ev, h), &ev, (uint32_t)gen, true);
    d->accepted_local++;
    return 0;
}

int rg_dispatcher_push(rg_dispatcher_t *d, const rg_msg_t *msg)
{
    if (d == NULL || msg == NULL)
        return RG_EINVAL;
    int rc = rg__dispatch_enter(d);
    if (rc != 0)
        return rc;
    rg__epoch_maybe_barrier(d);
    rc = flow_take(d, 1) == 1 ? push_msg(d, msg, d->hk, d->route) : RG_ESTOPPED;
    rg__dispatch_publish_all(d);
    publish_stats(d);
    rg__dispatch_exit(d);
    return rc;
}

size_t rg_dispatcher_push_burst(rg_dispatcher_t *d, const rg_msg_t *msgs,
                                size_t n)
{
    if (d == NULL || msgs == NULL || rg__dispatch_enter(d) != 0)
        return 0;
    size_t i = 0;
    rg__hk_t *const hk = d->hk;
    const rg__hkset_t *const route = d->route;
    while (i < n) {
        rg__epoch_maybe_barrier(d);
        uint32_t k = n - i < PUBLISH_EVERY ? (uint32_t)(n - i) : PUBLISH_EVERY;
        uint32_t got = flow_take(d, k);
        if (got == 0)
            break; /* stopping */
        for (size_t end = i + got; i < end; i++)
            push_msg(d, &msgs[i], hk, route);
    }
    rg__dispatch_publish_all(d);
    publish_stats(d);
    rg__dispatch_exit(d);
    return i;
}

int rg_dispatcher_push_burst_for(rg_dispatcher_t *d, const rg_msg_t *msgs,
                                 size_t n, int timeout_ms, size_t *consumed)
{
    if (consumed == NULL)
        return RG_EINVAL;
    *consumed = 0;
    if (d == NULL || (msgs == NULL && n > 0) || timeout_ms < 0)
        return RG_EINVAL;
    int rc = rg__dispatch_enter(d);
    if (rc != 0)
        return rc;
    rg_engine_t *e = d->e;
    /* events per room check: all of them must fit without a wait, into
     * whichever ring they go */
    uint32_t cap = d->out[0]->capacity;
    uint32_t block = cap / 2 < PUBLISH_EVERY ? cap / 2 : PUBLISH_EVERY;
    d->deadline = rg__now_ns() + (int64_t)timeout_ms * 1000000 + 1;
    d->timed_out = false;
    bool stopped = false;
    size_t i = 0;
    rg__hk_t *const hk = d->hk;
    const rg__hkset_t *const route = d->route;
    while (i < n) {
        rg__epoch_maybe_barrier(d);
        /* tokens first: their wait may send barriers, which take room */
        uint32_t k = n - i < block ? (uint32_t)(n - i) : block;
        uint32_t got = flow_take(d, k);
        if (got == 0) {
            if (!d->timed_out)
                stopped = true;
            break;
        }
        for (unsigned w = 0; !d->timed_out && w < e->nworkers; w++)
            rg__dispatch_ensure_room(d, w, block);
        if (d->timed_out) {
            flow_unspend(d, got); /* the next push's */
            break;
        }
        for (size_t end = i + got; i < end; i++)
            push_msg(d, &msgs[i], hk, route);
    }
    rc = stopped ? RG_ESTOPPED : d->timed_out ? RG_ETIMEDOUT : 0;
    d->deadline = 0;
    d->timed_out = false;
    rg__dispatch_publish_all(d);
    publish_stats(d);
    rg__dispatch_exit(d);
    *consumed = i;
    return rc;
}

bool rg_dispatcher_ready(rg_dispatcher_t *d)
{
    if (d == NULL || rg__dispatch_enter(d) != 0)
        return true; /* a push says why at once */
    rg_engine_t *e = d->e;
    bool ready = true;
    for (unsigned w = 0; ready && w < e->nworkers; w++) {
        uint32_t cap = d->out[w]->capacity;
        /* published or pending, ours are not free either */
        ready = rg__ring_free(d->out[w], cap) - d->npend[w] >= cap / 2;
    }
    /* the barrier of the open epoch could go out without a wait */
    if (ready && e->epoch_mode)
        ready = rg__epoch_slot_free(e, d->epoch);
    /* and flow control has a token (kept in the cache for the push) */
    if (ready) {
        int64_t wait;
        ready = rg__bucket_take_lazy(e->bucket, &d->bcache, 1, &wait) == 1;
        if (ready)
            flow_unspend(d, 1);
    }
    rg__dispatch_exit(d);
    return ready;
}

size_t rg_dispatcher_push_events(rg_dispatcher_t *d, const rg_event_t *evs,
                                 size_t n)
{
    if (d == NULL || evs == NULL || rg__dispatch_enter(d) != 0)
        return 0;
    size_t accepted = 0, granted = 0;
    rg__hk_t *const hk = d->hk; /* in a register: one test per event */
    const rg__hkset_t *const route = d->route; /* likewise */
    for (size_t i = 0; i < n; i++) {
        if ((i & (PUBLISH_EVERY - 1)) == 0)
            rg__epoch_maybe_barrier(d);
        if (granted == 0) {
            uint32_t k = n - i < PUBLISH_EVERY ? (uint32_t)(n - i)
                                               : PUBLISH_EVERY;
            if ((granted = flow_take(d, k)) == 0)
                break; /* stopping */
        }
        granted--;
        if (evs[i].len > RG_EVENT_INLINE_MAX &&
            !(evs[i].flags & RG_EVENT_F_EXTERNAL)) {
            d->rejected_local++;
            continue;
        }
        int64_t gen = track(d, &evs[i]);
        if (gen < 0) {
            d->rejected_local++;
            continue;
        }
        uint64_t h = rg_hash64(evs[i].key);
        if (__builtin_expect(hk != NULL, 0))
            rg__hk_add_hashed(hk, evs[i].key, h, 1);
        write_to(d, rg__route_ev(d, route, &evs[i], h), &evs[i],
                 (uint32_t)gen, true);
        accepted++;
    }
    flow_unspend(d, (uint32_t)granted); /* the next push's */
    rg__dispatch_publish_all(d);
    d->accepted_local += accepted;
    publish_stats(d);
    rg__dispatch_exit(d);
    return accepted;
}

int rg_dispatcher_reset(rg_dispatcher_t *d, int32_t partition,
                        int64_t next_offset)
{
    if (d == NULL)
        return RG_EINVAL;
    int rc = rg__dispatch_enter(d);
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
        if (a != NULL && rc == 0 && e->epoch_mode)
            /* relaxed: this thread is the only writer */
            atomic_store_explicit(&e->part_next[partition], next_offset,
                                  memory_order_relaxed);
    }
    rg__dispatch_exit(d);
    return rc;
}
