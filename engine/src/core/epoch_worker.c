/*
 * epoch_worker.c - the worker's side of the epoch protocol (epoch.h,
 * steps 3 and 1): processing up to barriers, aligning them across
 * dispatchers, sealing the open delta, asking for an early barrier.
 * Worker thread only.
 *
 * Invariants
 *   - Epoch E of worker w lives in w->slots[E % nslots]. The worker writes
 *     it while open, publishes it with a release store of w->sealed = E
 *     (S1), and reuses the slot for E + nslots only after the flusher's
 *     release store of committed_epoch >= E (C1, epoch_flush.c), which it
 *     makes after clearing the slot.
 *   - With aligned barriers (e->align) a ring that delivered barrier E is
 *     not read (w->blocked[d]) until every ring delivered E; what was
 *     popped behind the barrier waits in w->held[d], in ring order. So
 *     the sealed delta holds exactly the events below every dispatcher's
 *     snapshot of E.
 *   - Hot lanes (epoch_dispatch.c has the protocol): at a MOVE_OUT marker
 *     the old route hands the key's waiting events to their new route
 *     (they are stored in its open epoch first); at a MOVE_IN marker of
 *     epoch E the new route processes nothing more until E committed
 *     (invariant M), then takes the handed events, then calls the
 *     processor's forget for the key.
 */
#define _GNU_SOURCE
#include <string.h>
#include "railgun/error.h"
#include "engine_int.h"

rg_delta_t *rg_ctx_delta(rg_ctx_t *ctx)
{
    return ctx->e->epoch_mode ? ctx->cur : NULL;
}

/* Waits until epoch ep committed, or the engine failed (then nothing is
 * written any more and the order of what follows does not matter):
 * idle time, parked on slot_wait, which the flusher wakes after every
 * commit. */
static void wait_committed(rg__worker_t *w, uint64_t ep)
{
    rg_engine_t *e = w->e;
    bool waited = false;
    /* acquire: pairs with C1; what the flusher did up to the commit (the
     * sink holds the epoch, its slots are cleared) happens before us */
    while (atomic_load_explicit(&e->committed_epoch, memory_order_acquire) <
           ep) {
        /* acquire: pairs with the release in rg__engine_fail() */
        if (atomic_load_explicit(&e->failed, memory_order_acquire))
            break;
        if (!waited) {
            waited = true;
            rg__worker_idle_begin(w);
        }
        /* the flusher wakes slot_wait after every commit; look again
         * after preparing, or a wake between the look and the park is
         * lost (acquire, both: as the loads above) */
        uint32_t seq = rg__park_prepare(&w->slot_wait.park);
        if (atomic_load_explicit(&e->committed_epoch, memory_order_acquire) >=
                ep ||
            atomic_load_explicit(&e->failed, memory_order_acquire))
            rg__park_cancel(&w->slot_wait.park);
        else
            rg__park_commit(&w->slot_wait.park, seq);
    }
    if (waited)
        rg__worker_idle_end(w);
}

/* Seals the open delta as epoch E and opens E + 1, waiting while every
 * slot still holds a sealed epoch the sink has not committed. */
static void seal(rg__worker_t *w, uint64_t epoch)
{
    rg_engine_t *e = w->e;
    w->cur->epoch = epoch;
    /* every event before the barrier is applied, dead, or waiting: the
     * waiting ones get their delayed rows in this epoch (retry.c) */
    rg__retry_seal(w);
    /* release (S1): the delta's contents happen before the flusher's
     * acquire load of sealed */
    atomic_store_explicit(&w->sealed, epoch, memory_order_release);
    rg__park_wake_if_sleeping(&e->flush_wake.park);
    uint64_t next = epoch + 1;
    rg_delta_t *d = &w->slots[next % e->nslots];
    /* slot of `next` held epoch next - nslots: free once that committed
     * (the flusher cleared it; C1's acquire in wait_committed()); waiting
     * for it is idle time (the sink is behind, not this worker) */
    if (next > e->nslots) {
        wait_committed(w, next - e->nslots);
        /* acquire: pairs with C1, as in wait_committed() */
        if (atomic_load_explicit(&e->committed_epoch, memory_order_acquire) <
            next - e->nslots)
            rg__delta_clear(d); /* failed: nothing is written any more */
    }
    RG_DASSERT(rg_delta_keys(d) == 0 && rg_delta_staged(d) == 0);
    w->cur = d;
    w->cur->epoch = next;
    w->epoch = next;
    w->requested = false;
}

/* Barrier `epoch` came from dispatcher d: with every dispatcher's barrier
 * in (aligned), seal. Returns true when ring d must wait for the others. */
static bool barrier(rg__worker_t *w, unsigned d, uint64_t epoch)
{
    rg_engine_t *e = w->e;
    if (!e->align) {
        seal(w, epoch);
        return false;
    }
    RG_DASSERT(!w->blocked[d]);
    w->blocked[d] = true;
    if (++w->nblocked < e->ndispatchers)
        return true;
    seal(w, epoch);
    for (unsigned i = 0; i < e->ndispatchers; i++)
        w->blocked[i] = false;
    w->nblocked = 0;
    return false;
}

/* A move marker (hot lanes). */
static void moved(rg__worker_t *w, const rg_event_t *m)
{
    rg_engine_t *e = w->e;
    if (m->reserved == RG__MOVE_OUT) {
        rg__retry_hand_over(w, m->key, m->source, m->partition == 1,
                            (uint64_t)m->offset);
        return;
    }
    uint64_t ep = (uint64_t)m->offset;
    if (w->move_waited < ep) {
        wait_committed(w, ep); /* invariant M */
        w->move_waited = ep;
    }
    /* the old route handed the key's waits over before it sealed ep */
    rg__retry_take_handed(w, m->key, w->move_waited);
    if (e->proc.forget != NULL)
        e->proc.forget(e->proc.opaque, w, m->key);
}

void rg__epoch_consume(rg__worker_t *w, unsigned d, rg_event_t *evs,
                       uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        uint32_t j = i;
        while (j < n && !(evs[j].flags & RG__EVENT_F_CTRL))
            j++;
        if (j > i)
            rg__worker_process(w, evs + i, j - i);
        if (j == n)
            return;
        i = j + 1;
        if (evs[j].flags & RG__EVENT_F_MOVE) {
            moved(w, &evs[j]);
            continue;
        }
        if (barrier(w, d, (uint64_t)evs[j].offset)) {
            memmove(w->held[d], evs + i, sizeof(rg_event_t) * (n - i));
            w->held_n[d] = n - i;
            return;
        }
    }
}

void rg__epoch_after_batch(rg__worker_t *w)
{
    rg_engine_t *e = w->e;
    if (!w->requested && (rg_delta_keys(w->cur) >= e->flush_max_keys ||
                          rg_delta_staged(w->cur) >= e->flush_max_keys)) {
        w->requested = true;
        rg__epoch_request(e, w->epoch);
    }
}
