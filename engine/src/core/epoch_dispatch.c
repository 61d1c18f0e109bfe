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
 *   - With a push_burst_for() deadline, room for a barrier (and the
 *     epoch's move markers) is made in every ring before anything of the
 *     epoch is written, so a timed-out call never leaves an epoch half
 *     sent.
 *
 * Hot lanes: the move protocol (docs/ARCHITECTURE.md "Hot lanes")
 *   A key changes route only at a barrier E sent by the ingest thread
 *   holding d (never by the flusher's takeover or the stop, which must
 *   not wait on a lane that waits for them). d->route, the keys routed to
 *   the lanes, is compared with what is wanted (the override of
 *   rg_dispatcher_force_hot(), else the sketch's judgement); for each
 *   key that changes: a MOVE_OUT marker into each old route's ring ahead
 *   of barrier E, the barrier, the route changed, E's snapshot published,
 *   then a MOVE_IN marker into each new route's ring behind the barrier,
 *   ahead of every later event. Every event of the key before the move is
 *   thus ahead of barrier E on its old route, every later one behind the
 *   MOVE_IN on its new route.
 *   Invariant M: no event of a key moved at barrier E is processed on its
 *   new route before epoch E has committed. The new route waits for the
 *   commit at the MOVE_IN (epoch_worker.c); E commits only after every old
 *   route sealed E, having processed every event of the key before the
 *   move, and having handed the key's events that wait for a retry to the
 *   new route at the MOVE_OUT (retry.c), so they run ahead of its later
 *   events. So per-key (per order unit) order holds across the move, and
 *   the sink holds everything the old route did before the new route
 *   reads state from it (the new route forgets what it kept of the key
 *   from an earlier stay: rg_processor_t.forget).
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

/* ---- hot lanes: the moves of a barrier ---------------------------------- */

/* What d wants for key: the override, else the sketch's judgement. */
static bool wanted_hot(const rg_dispatcher_t *d, uint64_t key, uint64_t h)
{
    for (uint32_t i = 0; i < d->nforce; i++)
        if (d->force[i].key == key)
            return d->force[i].state == 1;
    return d->hk != NULL && rg__hk_is_hot_hashed(d->hk, key, h);
}

/* The moves due now into d->mv (cold ones first, then hot ones while the
 * route set has room); returns how many. */
static uint32_t plan_moves(rg_dispatcher_t *d)
{
    rg__hkset_t *r = d->route;
    uint32_t n = 0, left = r->n;
    size_t k = rg__hkset_members(r, d->members, r->max);
    for (size_t i = 0; i < k; i++) {
        uint64_t key = d->members[i], h = rg_hash64(key);
        if (!wanted_hot(d, key, h)) {
            d->mv[n++] = (struct rg__move){key, h, false};
            left--;
        }
    }
    if (d->hk != NULL) {
        const rg__hkset_t *hot = &((const struct rg__hk_head *)d->hk)->hot;
        k = rg__hkset_members(hot, d->members, r->max);
        for (size_t i = 0; i < k && left < r->max; i++) {
            uint64_t key = d->members[i], h = rg_hash64(key);
            if (wanted_hot(d, key, h) && !rg__hkset_has(r, key, h)) {
                d->mv[n++] = (struct rg__move){key, h, true};
                left++;
            }
        }
    }
    for (uint32_t i = 0; i < d->nforce && left < r->max; i++) {
        uint64_t key = d->force[i].key, h = rg_hash64(key);
        if (d->force[i].state == 1 && !rg__hkset_has(r, key, h) &&
            !(d->hk != NULL && rg__hk_is_hot_hashed(d->hk, key, h))) {
            d->mv[n++] = (struct rg__move){key, h, true};
            left++;
        }
    }
    return n;
}

/* Writes move m's marker of `kind` into each ring of the routes it names
 * (the old ones for MOVE_OUT, the new ones for MOVE_IN), or only counts
 * them into d->mcount when count is true. */
static void mark(rg_dispatcher_t *d, const struct rg__move *m, int kind,
                 uint64_t ep, bool count)
{
    rg_engine_t *e = d->e;
    bool lanes = kind == RG__MOVE_OUT ? !m->hot : m->hot;
    unsigned from, to;
    if (!lanes) {
        from = rg_hash_reduce(m->h, e->ncold);
        to = from + 1;
    } else if (e->proc.split) {
        from = e->ncold;
        to = e->nworkers;
    } else {
        from = e->ncold + rg_hash_reduce(m->h, e->nlanes);
        to = from + 1;
    }
    rg_event_t c;
    memset(&c, 0, sizeof(c));
    c.flags = RG__EVENT_F_MOVE;
    c.reserved = (uint8_t)kind;
    c.key = m->key;
    c.offset = (int64_t)ep;
    c.partition = m->hot ? 1 : 0;
    for (unsigned w = from; w < to; w++) {
        if (count)
            d->mcount[w]++;
        else
            rg__dispatch_write(d, w, &c, 0);
    }
}

int rg_dispatcher_force_hot(rg_dispatcher_t *d, uint64_t key, int state)
{
    if (d == NULL || state < -1 || state > 1)
        return RG_EINVAL;
    int rc = rg__dispatch_enter(d);
    if (rc != 0)
        return rc;
    uint32_t i = 0;
    while (i < d->nforce && d->force[i].key != key)
        i++;
    if (d->route == NULL) {
        rc = RG_EINVAL;
    } else if (state == -1) {
        if (i < d->nforce)
            d->force[i] = d->force[--d->nforce];
    } else if (i < d->nforce) {
        d->force[i].state = state;
    } else if (d->nforce == d->route->max) {
        rc = RG_EFULL;
    } else {
        d->force[d->nforce++] = (struct rg__force){key, state};
    }
    rg__dispatch_exit(d);
    return rc;
}

bool rg__epoch_send_barriers(rg_dispatcher_t *d, uint64_t upto)
{
    rg_engine_t *e = d->e;
    /* moves only on the ingest thread (see the top of this file); relaxed:
     * our own store, we hold the handle */
    bool moving = d->route != NULL &&
                  atomic_load_explicit(&d->in_call, memory_order_relaxed) ==
                      CALL_INGEST;
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
        uint32_t nmv = moving ? plan_moves(d) : 0;
        if (d->deadline != 0) {
            if (nmv > 0) {
                memset(d->mcount, 0, sizeof(uint32_t) * e->nworkers);
                for (uint32_t i = 0; i < nmv; i++) {
                    mark(d, &d->mv[i], RG__MOVE_OUT, ep, true);
                    mark(d, &d->mv[i], RG__MOVE_IN, ep, true);
                }
            }
            for (unsigned w = 0; w < e->nworkers; w++)
                if (!rg__dispatch_ensure_room(d, w,
                                              1 + (nmv ? d->mcount[w] : 0)))
                    return false;
        }
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
        /* the producer marks that changed, with the offsets they match
         * (dedup.c, D1) */
        if (d->dd != NULL)
            rg__dedup_snapshot(d, k);
        for (uint32_t i = 0; i < nmv; i++)
            mark(d, &d->mv[i], RG__MOVE_OUT, ep, false);
        rg_event_t b;
        memset(&b, 0, sizeof(b));
        b.flags = RG__EVENT_F_BARRIER;
        b.offset = (int64_t)ep;
        for (unsigned w = 0; w < e->nworkers; w++)
            rg__dispatch_write(d, w, &b, 0);
        for (uint32_t i = 0; i < nmv; i++) {
            const struct rg__move *m = &d->mv[i];
            /* cannot fail: plan_moves() kept the set within its bound */
            if (m->hot)
                rg__hkset_add(d->route, m->key, m->h);
            else
                rg__hkset_del(d->route, m->key, m->h);
        }
        rg__dispatch_publish_all(d);
        d->epoch = ep + 1;
        /* release (S2): the snapshot happens before the flusher's acquire */
        atomic_store_explicit(&d->snapped, ep, memory_order_release);
        rg__park_wake_if_sleeping(&e->flush_wake.park);
        if (nmv > 0) {
            /* after the snapshot: the new routes wait for E's commit, which
             * must not wait for us */
            for (uint32_t i = 0; i < nmv; i++) {
                mark(d, &d->mv[i], RG__MOVE_IN, ep, false);
                d->moves_hot_local += d->mv[i].hot;
            }
            rg__dispatch_publish_all(d);
            d->moves_local += nmv;
            /* relaxed: statistics, single writer */
            atomic_store_explicit(&d->moves, d->moves_local,
                                  memory_order_relaxed);
            atomic_store_explicit(&d->moves_hot, d->moves_hot_local,
                                  memory_order_relaxed);
        }
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
