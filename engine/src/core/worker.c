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
 *   - Failures (retry.c): events of a parked key wait behind it; a worker
 *     takes at most rg__retry_room() events at a time, and with events
 *     waiting it parks no longer than until the next one is due.
 *   - Idle: spin `worker.idle.spins` polls (each a pause, or a
 *     sched_yield() under the yield idle policy), yield
 *     `worker.idle.yields` times, then park on w->wake; dispatchers wake
 *     it after a publish (park.h's fence pair: a wake is never lost).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <time.h>
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

/* Runs the processor over evs[0..n) and completes them. Events of a
 * parked key go behind it first, and what the processor marked is parked
 * or dead-lettered after (retry.c); both cost one load and a branch per
 * call while nothing fails. */
static void process(rg__worker_t *w, rg_event_t *evs, size_t n)
{
    rg_engine_t *e = w->e;
    const rg_processor_t *p = &e->proc;
    struct rg__retry *r = &w->rt;
    if (r->nkeys > 0)
        n = rg__retry_divert(w, evs, (uint32_t)n);
    if (n > 0) {
        r->call_evs = evs;
        r->call_n = (uint32_t)n;
        if (p->batch_do != NULL) {
            if (p->pre_do != NULL)
                p->pre_do(p->opaque, w, evs, n);
            p->batch_do(p->opaque, w, evs, n);
        } else {
            /* the loop bound is r->call_n: a mark cuts it to the marked
             * event (retry.c), so the common case costs no test of its
             * own; after a mark the rest goes through the blocked check */
            r->cut_on_mark = true;
            size_t i = 0;
            for (; i < r->call_n; i++)
                p->do_event(p->opaque, w, &evs[i]);
            r->cut_on_mark = false;
            r->call_n = (uint32_t)n;
            for (; i < n; i++) {
                if (rg__retry_blocked_at(w, (uint32_t)i))
                    continue; /* behind a retried event of its key */
                p->do_event(p->opaque, w, &evs[i]);
            }
        }
        r->call_evs = NULL;
        if (r->nmarks > 0)
            n = rg__retry_settle(w, evs, (uint32_t)n);
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
    /* at most what can be parked: room 0 stops reading (backpressure) */
    uint32_t room = rg__retry_room(w);
    uint32_t max = room < e->batch_max ? room : e->batch_max;
    /* relaxed: a flag rg_engine_stop() sets; what the rings hold is
     * ordered by the rings. Stopping, the rings are read past the bound
     * (the pool grows, by at most what the bounded rings hold), so a push
     * still inside finishes and the final barrier is reached without
     * waiting for every waiting event to die first */
    bool stopping = w->rt.nkeys > 0 &&
                    atomic_load_explicit(&e->retry_stopping,
                                         memory_order_relaxed);
    if (stopping)
        max = room = e->batch_max;
    if (max == 0) {
        if (!w->rt.full) {
            w->rt.full = true;
            w->rt.l_full++;
            /* relaxed: a statistic, single writer */
            atomic_store_explicit(&w->rt.full_waits, w->rt.l_full,
                                  memory_order_relaxed);
        }
        return 0;
    }
    w->rt.full = false;
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        if (d > 0 && !stopping) {
            /* what the rings before took of the room */
            room = rg__retry_room(w);
            max = room < e->batch_max ? room : e->batch_max;
            if (max == 0)
                break;
        }
        if (e->align) {
            if (w->blocked[d])
                continue; /* behind a barrier: the others first */
            uint32_t h = w->held_n[d];
            if (h > 0 && h > room)
                continue; /* wait until they can all be parked */
            if (h > 0) {
                memcpy(w->buf, w->held[d], sizeof(rg_event_t) * h);
                w->held_n[d] = 0;
                rg__worker_idle_end(w);
                rg__epoch_consume(w, d, w->buf, h);
                got += h;
                continue;
            }
        }
        uint32_t n = rg_ring_pop_burst_spsc_ev(w->in[d], w->buf, max);
        if (n == 0)
            continue;
        rg__worker_idle_end(w); /* before the work, which is busy time */
        /* relaxed: rg_engine_requeue() published its mail before the
         * source pushed what we just popped (its claim comes first), and
         * the pop's acquire pairs with that push's release: mail for
         * these keys is visible now and must go first */
        if (atomic_load_explicit(&w->rt.mail_n, memory_order_relaxed))
            rg__retry_take_mail(w);
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

/* Draining: done when nothing is left, held or half-aligned, and no
 * event waits for a retry in memory only (those get until the shutdown
 * deadline; stored ones wait in the sink). */
static bool drained(rg__worker_t *w, int64_t *since)
{
    rg_engine_t *e = w->e;
    if (w->rt.nkeys > 0 && !e->rc.keep && e->epoch_mode && !w->rt.gave_up) {
        /* past the final barrier what they apply is in no epoch the
         * flusher writes: waiting longer cannot store them */
        rg__log(e, RG_LOG_WARN, "retry: worker %u stopped with %u events "
                "still waiting for a retry, in memory only: not applied "
                "(their offsets are stored: lost; the sink keeps no "
                "failures)", w->idx, rg__retry_used(w));
        w->rt.gave_up = true;
    }
    if (w->rt.nkeys > 0 && !e->rc.keep && !w->rt.gave_up) {
        int64_t now = rg__now_ns();
        if (*since == 0)
            *since = now;
        if (e->shutdown_timeout_ns == 0 ||
            now - *since < e->shutdown_timeout_ns)
            return false; /* 0: until they end (they do: retry.h) */
        rg__log(e, RG_LOG_WARN, "retry: worker %u stopped with %u events "
                "still waiting for a retry, in memory only: not applied "
                "(their offsets are not done: a restart delivers them "
                "again)", w->idx, rg__retry_used(w));
        w->rt.gave_up = true;
    }
    if (e->align) {
        if (w->nblocked > 0)
            return false;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            if (w->held_n[d] > 0)
                return false;
    }
    return inputs_empty(w);
}

/* Sleeps until the next retry is due, at most 1 ms (a publish does not
 * wake this sleep, so it stays short). */
static void nap_until_due(rg__worker_t *w)
{
    int64_t left = w->rt.next_due_ns - rg__now_ns();
    if (left <= 0)
        return;
    if (left > 1000000)
        left = 1000000;
    struct timespec ts = {0, (long)left};
    nanosleep(&ts, NULL);
}

void *rg__worker_main(void *arg)
{
    rg__worker_t *w = arg;
    rg_engine_t *e = w->e;
    uint32_t idle = 0;
    int64_t drain_since = 0;
    /* relaxed: statistics, single writer */
    atomic_store_explicit(&w->started_ns, rg__now_ns(), memory_order_relaxed);
    for (;;) {
        size_t got = poll_once(w);
        if (w->rt.nkeys > 0 && rg__retry_tick(w, rg__now_ns()))
            got++;
        if (got > 0) {
            idle = 0;
            rg__worker_idle_end(w); /* a retry's run (poll_once ends the others) */
            continue;
        }
        /* relaxed: see poll_once(); an idle worker also takes its mail */
        if (atomic_load_explicit(&w->rt.mail_n, memory_order_relaxed)) {
            rg__retry_take_mail(w);
            continue;
        }
        /* acquire: pairs with the release store in rg_engine_stop(); every
         * push that was accepted before is visible in the rings now */
        if (atomic_load_explicit(&e->drain, memory_order_acquire)) {
            if (drained(w, &drain_since))
                break;
            if (w->rt.nkeys > 0)
                nap_until_due(w);
            continue;
        }
        rg__worker_idle_begin(w);
        idle++;
        if (idle <= e->worker_spins) {
            rg__idle_step(e);
        } else if (idle <= e->worker_spins + e->worker_yields) {
            sched_yield();
        } else if (w->rt.nkeys > 0) {
            /* the retry timer: park, but not past the next due retry; a
             * publish wakes it as usual */
            int64_t left = w->rt.next_due_ns - rg__now_ns();
            if (left > 0) {
                uint32_t seq = rg__park_prepare(&w->wake.park);
                if (!inputs_empty(w) ||
                    atomic_load_explicit(&w->rt.mail_n,
                                         memory_order_relaxed) ||
                    atomic_load_explicit(&e->drain, memory_order_acquire))
                    rg__park_cancel(&w->wake.park);
                else {
                    rg__futex_wait_ns(&w->wake.park.seq, seq,
                                      left < 1000000000 ? left : 1000000000);
                    rg__park_cancel(&w->wake.park);
                }
            }
            idle = 0;
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
