/*
 * epoch_dispatch.c - the dispatcher's side of the epoch protocol (epoch.h,
 * step 2): offset snapshots and barriers, on the ingest thread holding
 * the handle (or on the flusher holding an idle handle, or on stop), plus
 * rg_dispatcher_poll() and rg_dispatcher_flush().
 *
 * Invariants
 *   - Dispatcher d's offsets at barrier E live in d->snap[E % nslots],
 *     published by a release store of d->snapped = E (S2) after the
 *     barrier is in every ring, and reused for E + nslots only after the
 *     flusher's release of committed_epoch >= E (C1).
 *   - d->dead_open collects the open epoch's dead letters; at barrier E
 *     they move into d->dead[E % nslots] with the snapshot (same
 *     publication, same reuse rule).
 *   - A barrier is written into every ring of d right after its snapshot,
 *     so every event below the snapshot is ahead of the barrier in its
 *     ring and every later event behind it.
 *   - With a push_burst_for() deadline, room for a barrier is made in
 *     every ring before anything of the epoch is written, so a timed-out
 *     call never leaves an epoch half sent.
 */
#define _GNU_SOURCE
#include <string.h>
#include <time.h>
#include "railgun/error.h"
#include "engine_int.h"

/* How long rg_dispatcher_flush() sleeps between looks at the commit. */
#define FLUSH_POLL_NS (500 * 1000)

bool rg__epoch_slot_free(rg_engine_t *e, uint64_t ep)
{
    /* acquire: pairs with C1 after the flusher is done with
     * snap[ep - nslots] */
    return ep <= e->nslots ||
           atomic_load_explicit(&e->committed_epoch, memory_order_acquire) >=
               ep - e->nslots;
}

bool rg__epoch_send_barriers(rg_dispatcher_t *d, uint64_t upto)
{
    rg_engine_t *e = d->e;
    while (d->epoch <= upto) {
        uint64_t ep = d->epoch;
        if (!rg__epoch_slot_free(e, ep)) {
            /* what we wrote must reach the workers first */
            rg__dispatch_publish_all(d);
            unsigned tries = 0;
            while (!rg__epoch_slot_free(e, ep)) {
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
        if (d->deadline != 0)
            for (unsigned w = 0; w < e->nworkers; w++)
                if (!rg__dispatch_ensure_room(d, w, 1))
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
        /* the epoch's dead letters (undecodable messages) go with its
         * snapshot: swap the open list into the free slot */
        struct rg__fails t = d->dead[k];
        d->dead[k] = d->dead_open;
        d->dead_open = t;
        rg_event_t b;
        memset(&b, 0, sizeof(b));
        b.flags = RG__EVENT_F_BARRIER;
        b.offset = (int64_t)ep;
        for (unsigned w = 0; w < e->nworkers; w++)
            rg__dispatch_write(d, w, &b, 0);
        rg__dispatch_publish_all(d);
        d->epoch = ep + 1;
        /* release (S2): the snapshot happens before the flusher's acquire */
        atomic_store_explicit(&d->snapped, ep, memory_order_release);
        rg__park_wake_if_sleeping(&e->flush_wake.park);
    }
    return true;
}

bool rg__dispatcher_takeover(rg_dispatcher_t *d, uint64_t upto)
{
    uint32_t exp = CALL_FREE;
    /* acquire (A3): pairs with R1 in rg__dispatch_exit(); the handle's
     * private state is ours while we hold it */
    if (!atomic_compare_exchange_strong_explicit(&d->in_call, &exp,
                                                 CALL_HELD,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        return false;
    /* acquire: as in rg__dispatch_enter(); stop waits for our release */
    if (atomic_load_explicit(&d->e->state, memory_order_acquire) ==
        ST_RUNNING) {
        rg__epoch_send_barriers(d, upto);
        rg__dispatch_hk_tick(d); /* an idle handle's keys cool too */
    }
    /* release (R1): our writes to the handle happen before its next
     * user's acquire CAS */
    atomic_store_explicit(&d->in_call, CALL_FREE, memory_order_release);
    return true;
}

void rg__epoch_maybe_barrier(rg_dispatcher_t *d)
{
    if (!d->e->epoch_mode)
        return;
    /* relaxed: a trigger; the snapshot and rings carry their own order */
    uint64_t req = atomic_load_explicit(&d->e->epoch_req,
                                        memory_order_relaxed);
    if (req >= d->epoch)
        rg__epoch_send_barriers(d, req);
}

int rg_dispatcher_poll(rg_dispatcher_t *d)
{
    if (d == NULL)
        return RG_EINVAL;
    int rc = rg__dispatch_enter(d);
    if (rc != 0)
        return rc;
    rg__epoch_maybe_barrier(d);
    rg__dispatch_exit(d);
    return 0;
}

int rg_dispatcher_flush(rg_dispatcher_t *d, int timeout_ms)
{
    if (d == NULL || timeout_ms < 0)
        return RG_EINVAL;
    int rc = rg__dispatch_enter(d);
    if (rc != 0)
        return rc;
    rg_engine_t *e = d->e;
    if (!e->epoch_mode) {
        rg__dispatch_publish_all(d);
        rg__dispatch_exit(d);
        return 0;
    }
    uint64_t ep = d->epoch; /* the open epoch: close it now */
    rg__epoch_request(e, ep);
    bool sent = rg__epoch_send_barriers(d, ep);
    rg__dispatch_exit(d);
    /* the other dispatchers send theirs from their pushes, or the flusher
     * for them when they are idle */
    rg__park_wake(&e->flush_wake.park);
    int64_t deadline = rg__now_ns() + (int64_t)timeout_ms * 1000000;
    /* acquire: pairs with rg_engine_shutdown_begin(): never past it */
    int64_t sd = atomic_load_explicit(&e->stop_deadline_ns,
                                      memory_order_acquire);
    if (sd != 0 && sd < deadline)
        deadline = sd;
    for (;;) {
        /* acquire: pairs with C1 after the commit */
        if (sent && atomic_load_explicit(&e->committed_epoch,
                                         memory_order_acquire) >= ep)
            return 0;
        /* acquire: pairs with the release in rg__engine_fail() */
        if (!sent || atomic_load_explicit(&e->failed, memory_order_acquire))
            return RG_ESTOPPED;
        if (rg__now_ns() >= deadline)
            return RG_ETIMEDOUT;
        struct timespec ts = {0, FLUSH_POLL_NS};
        nanosleep(&ts, NULL);
    }
}
