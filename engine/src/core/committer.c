/*
 * committer.c - the committer thread: advances each partition's watermark
 * and hands the partitions whose watermark moved to the commit callback
 * (railgun/engine.h), at most every `ack.commit.interval.ms`, earlier
 * when a worker completed `ack.commit.max.events`; plus the per-partition
 * stats read from any thread.
 *
 * Invariants
 *   - The commit callback runs on this thread only, one call at a time,
 *     never on a worker or an ingest thread.
 *   - Without a sink the watermark is the ACK tracker's (every offset below
 *     it done: release in rg_ack_done(), acquire in the scan); in epoch
 *     mode it is committed_next[p], moved by the flusher only after the
 *     sink committed it (release, paired with the acquire load here).
 *   - The last tick runs after rg_engine_stop() joined the workers (and the
 *     flusher), so the final watermarks cover every accepted event.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include "railgun/ack.h"
#include "railgun/error.h"
#include "engine_int.h"

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
        int64_t wm = e->epoch_mode
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

void *rg__committer_main(void *arg)
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
    if (e->epoch_mode) {
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
