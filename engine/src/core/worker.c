/*
 * worker.c - a worker: one pinned thread that pops events from its rings
 * (one per dispatcher), runs the processor on them and completes their
 * offsets (railgun/engine.h).
 *
 * Invariants
 *   - Worker w is the only consumer of ring[d][w] for every d, and the
 *     only thread that runs the processor's worker callbacks for the keys
 *     that route to it, so per-key state needs no lock.
 *   - Events of one ring are processed in ring order; with aligned
 *     barriers (e->align, epoch_worker.c) a ring is not read past a
 *     barrier until every ring delivered it.
 *   - Without a sink an event's offset is done right after its processor
 *     returned (release store in rg_ack_done(): the processor's writes
 *     happen before any watermark that passes it); in epoch mode it is
 *     done when its epoch commits (epoch.h).
 *   - The worker exits only when drain is set and every ring is empty,
 *     nothing held and no barrier half-aligned: every accepted event is
 *     processed before rg_engine_stop() joins it.
 *   - Idle: spin `worker.idle.spins` polls (each a pause, or a
 *     sched_yield() under the yield idle policy), yield
 *     `worker.idle.yields` times, then park on w->wake; dispatchers wake
 *     it after a publish (park.h's fence pair: a wake is never lost).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include "railgun/ack.h"
#include "railgun/error.h"
#include "engine_int.h"

rg_engine_t *rg_ctx_engine(const rg_ctx_t *ctx)
{
    return ctx->e;
}

unsigned rg_ctx_worker(const rg_ctx_t *ctx)
{
    return ctx->idx;
}

static void release_payloads(rg_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((evs[i].flags & RG_EVENT_F_EXTERNAL) &&
            evs[i].data.ext.release != NULL)
            evs[i].data.ext.release(evs[i].data.ext.ptr,
                                    evs[i].data.ext.opaque);
}

/* Runs the processor over evs[0..n) and completes them. */
static void process(rg__worker_t *w, rg_event_t *evs, size_t n)
{
    rg_engine_t *e = w->e;
    const rg_processor_t *p = &e->proc;
    if (p->batch_do != NULL) {
        if (p->pre_do != NULL)
            p->pre_do(p->opaque, w, evs, n);
        p->batch_do(p->opaque, w, evs, n);
    } else {
        for (size_t i = 0; i < n; i++)
            p->do_event(p->opaque, w, &evs[i]);
    }
    release_payloads(evs, n);
    w->processed_local += n;
    /* relaxed: a statistic; single writer, readers only need a value
     * that was true at some point */
    atomic_store_explicit(&w->processed, w->processed_local,
                          memory_order_relaxed);
    if (e->epoch_mode) {
        /* the events are done when their epoch commits */
        rg__epoch_after_batch(w);
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

/* Called by epoch_worker.c for the events between barriers. */
void rg__worker_process(rg__worker_t *w, rg_event_t *evs, size_t n)
{
    process(w, evs, n);
}

/* One pass over every input ring; returns how many events it took. */
static size_t poll_once(rg__worker_t *w)
{
    rg_engine_t *e = w->e;
    size_t got = 0;
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        if (e->align) {
            if (w->blocked[d])
                continue; /* behind a barrier: the others first */
            uint32_t h = w->held_n[d];
            if (h > 0) {
                memcpy(w->buf, w->held[d], sizeof(rg_event_t) * h);
                w->held_n[d] = 0;
                rg__epoch_consume(w, d, w->buf, h);
                got += h;
                continue;
            }
        }
        uint32_t n = rg_ring_pop_burst_spsc_ev(w->in[d], w->buf,
                                               e->batch_max);
        if (n == 0)
            continue;
        /* the slots are free now: let a dispatcher waiting for space go
         * on while we process */
        rg__park_wake_if_sleeping(&rg__space_of(e, d, w->idx)->park);
        if (e->epoch_mode)
            rg__epoch_consume(w, d, w->buf, n);
        else
            process(w, w->buf, n);
        got += n;
    }
    return got;
}

/* True when no ring this worker may read now has an event. A ring behind
 * a barrier waits for the others, so it counts as empty here. */
static bool inputs_empty(rg__worker_t *w)
{
    rg_engine_t *e = w->e;
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        if (e->align) {
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
static bool drained(rg__worker_t *w)
{
    rg_engine_t *e = w->e;
    if (e->align) {
        if (w->nblocked > 0)
            return false;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            if (w->held_n[d] > 0)
                return false;
    }
    return inputs_empty(w);
}

void *rg__worker_main(void *arg)
{
    rg__worker_t *w = arg;
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
            rg__idle_step(e);
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
