/*
 * flush.c - epoch mode: worker deltas and the flusher thread (see
 * railgun/flush.h for the model, engine_int.h for the structures).
 *
 * Invariants
 *   - Epoch E of worker w lives in w->slots[E % nslots]. The worker writes
 *     it while open, publishes it with a release store of w->sealed = E,
 *     and reuses the slot for E + nslots only after the flusher's release
 *     store of committed_epoch >= E (after it cleared the slot).
 *   - Dispatcher d's offsets at barrier E live in d->snap[E % nslots],
 *     published by a release store of d->snapped = E, reused likewise.
 *   - Epoch E is written once every worker sealed E and every dispatcher
 *     snapped E, in ONE sink transaction; epochs commit in order.
 *   - committed_next[p] (the commit callback's offset) moves only after
 *     the transaction holding it committed, so the committed Kafka offset
 *     never passes an event whose rows are not stored.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/error.h"
#include "railgun/hash.h"
#include "conf_props.h"
#include "engine_int.h"

/* How long a requested barrier may stay unsent before the flusher sends
 * it for an idle dispatcher. */
#define TAKEOVER_AFTER_NS (1000 * 1000)

/* Rows handed to write_merged per call. */
#define ROW_CHUNK 1024

/* ------------------------------------------------------------------ */
/* deltas                                                               */

int rg__delta_init(rg_delta_t *d, uint32_t max_rows)
{
    memset(d, 0, sizeof(*d));
    d->max_rows = max_rows;
    d->merged = rg_merge_new(RG_MERGE_SUM, max_rows);
    d->staged_cap = max_rows < 1024 ? max_rows : 1024;
    d->staged = malloc(sizeof(rg_row_t) * d->staged_cap);
    d->index_mask = 2u * 1024 - 1;
    while (d->index_mask + 1 < 2u * d->staged_cap)
        d->index_mask = d->index_mask * 2 + 1;
    d->index = calloc((size_t)d->index_mask + 1, sizeof(uint32_t));
    if (d->merged == NULL || d->staged == NULL || d->index == NULL) {
        rg__delta_free(d);
        return RG_ENOMEM;
    }
    return 0;
}

void rg__delta_free(rg_delta_t *d)
{
    rg_merge_destroy(d->merged);
    free(d->staged);
    free(d->index);
    memset(d, 0, sizeof(*d));
}

static inline uint32_t pair_hash(int64_t key, int64_t key2)
{
    return (uint32_t)rg_hash64((uint64_t)key * 0x9E3779B97F4A7C15ull ^
                               (uint64_t)key2);
}

void rg__delta_clear(rg_delta_t *d)
{
    rg_merge_clear(d->merged);
    /* unset only the index slots in use: cheaper than the whole index */
    for (uint32_t i = 0; i < d->nstaged; i++) {
        uint32_t h = pair_hash(d->staged[i].key, d->staged[i].key2);
        for (;; h++) {
            uint32_t *slot = &d->index[h & d->index_mask];
            if (*slot == i + 1) {
                *slot = 0;
                break;
            }
        }
    }
    d->nstaged = 0;
}

int rg_delta_merge(rg_delta_t *d, int64_t key, int64_t value)
{
    return rg_merge_add(d->merged, (uint64_t)key, value, 0);
}

/* Doubles the staged array and rebuilds the index. */
static int grow_staged(rg_delta_t *d)
{
    uint32_t cap = d->staged_cap * 2;
    if (cap > d->max_rows)
        cap = d->max_rows;
    uint32_t mask = d->index_mask;
    while (mask + 1 < 2u * cap)
        mask = mask * 2 + 1;
    rg_row_t *rows = realloc(d->staged, sizeof(rg_row_t) * cap);
    if (rows == NULL)
        return RG_ENOMEM;
    d->staged = rows;
    d->staged_cap = cap;
    if (mask != d->index_mask) {
        uint32_t *idx = calloc((size_t)mask + 1, sizeof(uint32_t));
        if (idx == NULL)
            return RG_ENOMEM;
        for (uint32_t i = 0; i < d->nstaged; i++) {
            uint32_t h = pair_hash(d->staged[i].key, d->staged[i].key2);
            while (idx[h & mask] != 0)
                h++;
            idx[h & mask] = i + 1;
        }
        free(d->index);
        d->index = idx;
        d->index_mask = mask;
    }
    return 0;
}

int rg_delta_stage(rg_delta_t *d, const rg_row_t *row)
{
    uint32_t h = pair_hash(row->key, row->key2);
    for (;; h++) {
        uint32_t *slot = &d->index[h & d->index_mask];
        if (*slot == 0)
            break;
        rg_row_t *r = &d->staged[*slot - 1];
        if (r->key == row->key && r->key2 == row->key2) {
            *r = *row; /* the later row of a pair wins */
            return 0;
        }
    }
    if (d->nstaged == d->staged_cap) {
        if (d->staged_cap == d->max_rows)
            return RG_EFULL;
        int rc = grow_staged(d);
        if (rc != 0)
            return rc;
        /* the index may have been rebuilt: find the free slot again */
        h = pair_hash(row->key, row->key2);
        while (d->index[h & d->index_mask] != 0)
            h++;
    }
    d->staged[d->nstaged] = *row;
    d->index[h & d->index_mask] = ++d->nstaged;
    return 0;
}

uint64_t rg_delta_epoch(const rg_delta_t *d)
{
    return d->epoch;
}

size_t rg_delta_keys(const rg_delta_t *d)
{
    return rg_merge_count(d->merged);
}

size_t rg_delta_staged(const rg_delta_t *d)
{
    return d->nstaged;
}

rg_delta_t *rg_engine_delta(rg_engine_t *e, unsigned worker)
{
    if (e == NULL || !e->has_sink || worker >= e->nworkers)
        return NULL;
    return e->workers[worker].cur;
}

uint64_t rg_engine_committed_epoch(const rg_engine_t *e)
{
    /* acquire: what the epoch wrote is visible to the caller's reads */
    return atomic_load_explicit(&e->committed_epoch, memory_order_acquire);
}

/* ------------------------------------------------------------------ */
/* requests and failure                                                 */

void rg__epoch_request(rg_engine_t *e, uint64_t epoch)
{
    /* relaxed: a trigger (see maybe_barrier() in engine.c) */
    uint64_t cur = atomic_load_explicit(&e->epoch_req, memory_order_relaxed);
    while (cur < epoch &&
           !atomic_compare_exchange_weak_explicit(&e->epoch_req, &cur, epoch,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

void rg__engine_fail(rg_engine_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->errmsg, sizeof(e->errmsg), fmt, ap);
    va_end(ap);
    /* release: errmsg happens before any acquire load that sees failed */
    atomic_store_explicit(&e->failed, 1, memory_order_release);
    /* new pushes fail with RG_ESTOPPED; rg_engine_stop() still runs the
     * usual stop protocol. relaxed: the failed flag carries the order */
    int st = ST_RUNNING;
    atomic_compare_exchange_strong_explicit(&e->state, &st, ST_STOPPING,
                                            memory_order_relaxed,
                                            memory_order_relaxed);
    for (unsigned w = 0; w < e->nworkers; w++) {
        rg__park_wake(&e->workers[w].slot_wait.park);
        rg__park_wake(&e->workers[w].wake.park);
    }
}

const char *rg_engine_error(rg_engine_t *e)
{
    /* acquire: pairs with the release in rg__engine_fail() */
    if (e == NULL || !atomic_load_explicit(&e->failed, memory_order_acquire))
        return NULL;
    return e->errmsg;
}

void rg_engine_flush_stats(rg_engine_t *e, rg_flush_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    /* relaxed everywhere: counters */
    out->epochs = atomic_load_explicit(&e->st_epochs, memory_order_relaxed);
    out->transactions = atomic_load_explicit(&e->st_txns,
                                             memory_order_relaxed);
    out->merged_rows = atomic_load_explicit(&e->st_merged,
                                            memory_order_relaxed);
    out->staged_rows = atomic_load_explicit(&e->st_staged,
                                            memory_order_relaxed);
    out->retries = atomic_load_explicit(&e->st_retries, memory_order_relaxed);
    uint64_t req = atomic_load_explicit(&e->epoch_req, memory_order_relaxed);
    uint64_t done = atomic_load_explicit(&e->committed_epoch,
                                         memory_order_relaxed);
    out->pending_epochs = req > done ? req - done : 0;
}

/* ------------------------------------------------------------------ */
/* the flusher                                                          */

static inline void bump(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: a counter with one writer (the flusher) */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* True once every worker sealed `epoch` and every dispatcher sent it. */
static bool epoch_ready(rg_engine_t *e, uint64_t epoch)
{
    for (unsigned w = 0; w < e->nworkers; w++)
        /* acquire: pairs with the release in seal(); the delta is ours */
        if (atomic_load_explicit(&e->workers[w].sealed,
                                 memory_order_acquire) < epoch)
            return false;
    for (unsigned d = 0; d < e->ndispatchers; d++)
        /* acquire: pairs with the release in send_barriers() */
        if (atomic_load_explicit(&e->dispatchers[d].snapped,
                                 memory_order_acquire) < epoch)
            return false;
    return true;
}

/* The offsets of `epoch` that moved since the last write, into e->offs. */
static size_t gather_offsets(rg_engine_t *e, uint64_t epoch)
{
    size_t n = 0;
    uint32_t k = epoch % e->nslots;
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        for (uint32_t i = 0; i < dp->snap_n[k]; i++) {
            rg_offset_t o = dp->snap[k][i];
            if (e->written_next[o.partition] < 0)
                /* first sight: where the source started is what the sink
                 * holds (or the start of the partition). relaxed: set
                 * before the partition's first snapshot was published */
                e->written_next[o.partition] = atomic_load_explicit(
                    &e->committed_next[o.partition], memory_order_relaxed);
            if (o.next_offset != e->written_next[o.partition])
                e->offs[n++] = o;
        }
    }
    return n;
}

/* Writes one epoch as one transaction. 0 or the sink's error code. */
static int write_epoch(rg_engine_t *e, uint64_t epoch, size_t noffs,
                       uint64_t *merged, uint64_t *staged, char *err,
                       size_t errsz)
{
    const rg_sink_t *s = &e->sink;
    uint32_t k = epoch % e->nslots;
    *merged = *staged = 0;
    int rc = s->begin(s->self, epoch, err, errsz);
    if (rc != 0)
        return rc;
    /* offsets first: on the retry of a commit that did land, the sink
     * says RG_EEXIST before any row is written twice */
    if (noffs > 0 &&
        (rc = s->write_offsets(s->self, e->offs, noffs, err, errsz)) != 0)
        return rc;
    for (unsigned w = 0; w < e->nworkers; w++) {
        rg_delta_t *d = &e->workers[w].slots[k];
        size_t cursor = 0, n = 0;
        rg_merge_row_t mr;
        for (;;) {
            int more = rg_merge_next(d->merged, &cursor, &mr);
            if (more && mr.value != 0)
                e->rows[n++] = (rg_row_t){(int64_t)mr.key, 0, mr.value, 0};
            if (n == ROW_CHUNK || (!more && n > 0)) {
                if ((rc = s->write_merged(s->self, e->rows, n, err,
                                          errsz)) != 0)
                    return rc;
                *merged += n;
                n = 0;
            }
            if (!more)
                break;
        }
        if (d->nstaged > 0) {
            if ((rc = s->write_staged(s->self, d->staged, d->nstaged, err,
                                      errsz)) != 0)
                return rc;
            *staged += d->nstaged;
        }
    }
    if (e->hook != NULL)
        e->hook(e->hook_opaque, epoch, RG_EPOCH_BEFORE_COMMIT);
    return s->commit(s->self, err, errsz);
}

static bool stop_asked(rg_engine_t *e)
{
    /* acquire: pairs with the release in rg_engine_stop() */
    return atomic_load_explicit(&e->flusher_stop, memory_order_acquire);
}

/* Sleeps `ns` with jitter in [ns/2, ns]. */
static void backoff_sleep(uint64_t ns, uint64_t *rng)
{
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    uint64_t half = ns / 2;
    uint64_t t = half + (half ? *rng % (half + 1) : 0);
    struct timespec ts = {(time_t)(t / 1000000000u),
                          (long)(t % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* Writes epoch E (retrying what may pass later), then hands it off.
 * Returns false when the engine failed. */
static bool flush_epoch(rg_engine_t *e, uint64_t epoch, uint64_t *rng)
{
    size_t noffs = gather_offsets(e, epoch);
    bool empty = noffs == 0;
    uint32_t k = epoch % e->nslots;
    for (unsigned w = 0; w < e->nworkers && empty; w++)
        empty = rg_delta_keys(&e->workers[w].slots[k]) == 0 &&
                e->workers[w].slots[k].nstaged == 0;
    if (!empty) {
        uint64_t wait = e->backoff_ns;
        unsigned attempt = 0;
        for (;;) {
            char err[512] = "";
            uint64_t merged, staged;
            int rc = write_epoch(e, epoch, noffs, &merged, &staged, err,
                                 sizeof(err));
            if (rc == 0) {
                bump(&e->st_txns, 1);
                bump(&e->st_merged, merged);
                bump(&e->st_staged, staged);
                break;
            }
            e->sink.rollback(e->sink.self);
            if (rc == RG_EEXIST && attempt > 0) {
                /* an earlier attempt's commit landed after all (its
                 * reply was lost): the epoch is stored */
                bump(&e->st_txns, 1);
                break;
            }
            attempt++;
            if (!rg_err_is_retriable(rc)) {
                rg__engine_fail(e, "sink: %s (%s); epoch %llu not written",
                                err[0] ? err : rg_strerror(rc),
                                rg_err_name(rc), (unsigned long long)epoch);
                return false;
            }
            bump(&e->st_retries, 1);
            backoff_sleep(wait, rng);
            wait = wait * 2 > e->backoff_max_ns ? e->backoff_max_ns
                                                : wait * 2;
        }
        if (e->hook != NULL)
            e->hook(e->hook_opaque, epoch, RG_EPOCH_COMMITTED);
    }
    /* hand-off: the offsets are stored, so they are committable */
    for (size_t i = 0; i < noffs; i++) {
        e->written_next[e->offs[i].partition] = e->offs[i].next_offset;
        /* release: pairs with the committer's acquire in commit_tick() */
        atomic_store_explicit(&e->committed_next[e->offs[i].partition],
                              e->offs[i].next_offset, memory_order_release);
    }
    for (unsigned w = 0; w < e->nworkers; w++)
        rg__delta_clear(&e->workers[w].slots[k]);
    bump(&e->st_epochs, 1);
    /* release: the cleared slots and snapshots go back to their owners */
    atomic_store_explicit(&e->committed_epoch, epoch, memory_order_release);
    for (unsigned w = 0; w < e->nworkers; w++)
        rg__park_wake_if_sleeping(&e->workers[w].slot_wait.park);
    if (noffs > 0)
        rg__park_wake(&e->commit_wake.park);
    return true;
}

void *rg__flusher_main(void *arg)
{
    rg_engine_t *e = arg;
    uint64_t rng = (uint64_t)rg__now_ns() | 1;
    int64_t last_req = rg__now_ns();
    for (;;) {
        uint64_t next = atomic_load_explicit(&e->committed_epoch,
                                             memory_order_relaxed) + 1;
        int64_t now = rg__now_ns();
        /* relaxed: a trigger */
        if (atomic_load_explicit(&e->epoch_req, memory_order_relaxed) <
                next &&
            now - last_req >= (int64_t)e->flush_interval_ns) {
            rg__epoch_request(e, next);
            last_req = now;
        }
        if (epoch_ready(e, next)) {
            if (!flush_epoch(e, next, &rng))
                break;
            continue;
        }
        /* a source that went quiet sends no barrier: after a grace period
         * (active ones send within 32 events) send it on its behalf */
        if (atomic_load_explicit(&e->epoch_req, memory_order_relaxed) >=
                next &&
            now - last_req >= TAKEOVER_AFTER_NS) {
            bool took = false;
            for (unsigned d = 0; d < e->ndispatchers; d++)
                /* acquire: pairs with the release in send_barriers() */
                if (atomic_load_explicit(&e->dispatchers[d].snapped,
                                         memory_order_acquire) < next)
                    took |= rg__dispatcher_takeover(&e->dispatchers[d],
                                                    next);
            if (took)
                continue;
        }
        /* acquire: pairs with the release in rg__engine_fail() */
        if (atomic_load_explicit(&e->failed, memory_order_acquire))
            break;
        uint32_t seq = rg__park_prepare(&e->flush_wake.park);
        if (stop_asked(e)) {
            rg__park_cancel(&e->flush_wake.park);
            /* acquire: pairs with the release in rg_engine_stop() */
            uint64_t fin = atomic_load_explicit(&e->final_epoch,
                                                memory_order_acquire);
            if (next > fin)
                break;
            /* the final epoch is not sealed yet: wait briefly */
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (epoch_ready(e, next)) {
            rg__park_cancel(&e->flush_wake.park);
            continue;
        }
        int64_t until = last_req + (int64_t)e->flush_interval_ns - now;
        if (atomic_load_explicit(&e->epoch_req, memory_order_relaxed) >=
            next)
            until = TAKEOVER_AFTER_NS; /* waiting for barriers */
        if (until < TAKEOVER_AFTER_NS)
            until = TAKEOVER_AFTER_NS;
        rg__futex_wait_ns(&e->flush_wake.park.seq, seq, (uint64_t)until);
        rg__park_cancel(&e->flush_wake.park);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* setup                                                                */

static void epoch_free(rg_engine_t *e)
{
    if (e->workers != NULL)
        for (unsigned w = 0; w < e->nworkers; w++) {
            struct worker *wk = &e->workers[w];
            if (wk->slots != NULL)
                for (uint32_t i = 0; i < e->nslots; i++)
                    rg__delta_free(&wk->slots[i]);
            free(wk->slots);
            free(wk->blocked);
            if (wk->held != NULL)
                for (unsigned d = 0; d < e->ndispatchers; d++)
                    free(wk->held[d]);
            free(wk->held);
            free(wk->held_n);
            wk->slots = NULL;
            wk->blocked = NULL;
            wk->held = NULL;
            wk->held_n = NULL;
        }
    if (e->dispatchers != NULL)
        for (unsigned d = 0; d < e->ndispatchers; d++) {
            rg_dispatcher_t *dp = &e->dispatchers[d];
            if (dp->snap != NULL)
                for (uint32_t i = 0; i < e->nslots; i++)
                    free(dp->snap[i]);
            free(dp->snap);
            free(dp->snap_n);
            free(dp->owned);
            dp->snap = NULL;
            dp->snap_n = NULL;
            dp->owned = NULL;
        }
    free((void *)e->part_next);
    free((void *)e->committed_next);
    free(e->written_next);
    free(e->offs);
    free(e->rows);
    e->part_next = e->committed_next = NULL;
    e->written_next = NULL;
    e->offs = NULL;
    e->rows = NULL;
}

void rg__epoch_destroy(rg_engine_t *e)
{
    if (!e->has_sink)
        return;
    epoch_free(e);
    if (e->sink.close != NULL)
        e->sink.close(e->sink.self);
    e->has_sink = false;
}

static int epoch_alloc(rg_engine_t *e)
{
    uint32_t np = e->max_partitions, ns = e->nslots;
    e->part_next = calloc(np, sizeof(*e->part_next));
    e->committed_next = calloc(np, sizeof(*e->committed_next));
    e->written_next = malloc(sizeof(int64_t) * np);
    e->offs = malloc(sizeof(rg_offset_t) * np);
    e->rows = malloc(sizeof(rg_row_t) * ROW_CHUNK);
    if (!e->part_next || !e->committed_next || !e->written_next ||
        !e->offs || !e->rows)
        return RG_ENOMEM;
    for (uint32_t p = 0; p < np; p++)
        e->written_next[p] = -1;
    for (unsigned w = 0; w < e->nworkers; w++) {
        struct worker *wk = &e->workers[w];
        wk->slots = calloc(ns, sizeof(rg_delta_t));
        if (wk->slots == NULL)
            return RG_ENOMEM;
        for (uint32_t i = 0; i < ns; i++)
            if (rg__delta_init(&wk->slots[i], e->merge_max_keys) != 0)
                return RG_ENOMEM;
        wk->epoch = 1;
        wk->cur = &wk->slots[1 % ns];
        wk->cur->epoch = 1;
        if (e->ndispatchers > 1) {
            wk->blocked = calloc(e->ndispatchers, sizeof(bool));
            wk->held = calloc(e->ndispatchers, sizeof(rg_event_t *));
            wk->held_n = calloc(e->ndispatchers, sizeof(uint32_t));
            if (!wk->blocked || !wk->held || !wk->held_n)
                return RG_ENOMEM;
            for (unsigned d = 0; d < e->ndispatchers; d++)
                if ((wk->held[d] = malloc(sizeof(rg_event_t) *
                                          e->batch_max)) == NULL)
                    return RG_ENOMEM;
        }
    }
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        dp->epoch = 1;
        dp->owned = malloc(sizeof(int32_t) * np);
        dp->snap = calloc(ns, sizeof(rg_offset_t *));
        dp->snap_n = calloc(ns, sizeof(uint32_t));
        if (!dp->owned || !dp->snap || !dp->snap_n)
            return RG_ENOMEM;
        for (uint32_t i = 0; i < ns; i++)
            if ((dp->snap[i] = malloc(sizeof(rg_offset_t) * np)) == NULL)
                return RG_ENOMEM;
    }
    return 0;
}

int rg_engine_set_sink(rg_engine_t *e, const rg_sink_t *sink, char *errstr,
                       size_t errstr_size)
{
    if (e == NULL || sink == NULL || !sink->begin || !sink->write_merged ||
        !sink->write_staged || !sink->write_offsets || !sink->commit ||
        !sink->rollback) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "sink: a required function "
                     "(begin, write_*, commit, rollback) is missing");
        return RG_EINVAL;
    }
    /* what may arrive between a worker's flush.max.keys request and the
     * barrier: every ring full, plus one publish batch each */
    uint64_t margin = (uint64_t)e->ndispatchers *
                      (rg__conf_int(e->conf, RG_P_RING_CAPACITY) +
                       PUBLISH_EVERY + e->batch_max);
    if ((uint64_t)e->merge_max_keys < e->flush_max_keys + margin) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "merge.max.keys: %u is too small: "
                     "need at least flush.max.keys + dispatchers x "
                     "(ring.capacity + %u) = %llu", e->merge_max_keys,
                     PUBLISH_EVERY + e->batch_max,
                     (unsigned long long)(e->flush_max_keys + margin));
        return RG_ERANGE;
    }
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock */
    int rc = atomic_load_explicit(&e->state, memory_order_relaxed) == ST_NEW
                 ? 0
                 : RG_ESTATE;
    if (rc == 0 && e->has_sink)
        rc = RG_ESTATE; /* one sink per engine */
    if (rc != 0 && errstr && errstr_size)
        snprintf(errstr, errstr_size, "sink: set it once, before "
                 "rg_engine_start()");
    if (rc == 0) {
        e->sink = *sink;
        e->has_sink = true;
        if ((rc = epoch_alloc(e)) != 0) {
            if (errstr && errstr_size)
                snprintf(errstr, errstr_size, "sink: out of memory for %u "
                         "delta slots of merge.max.keys %u", e->nslots,
                         e->merge_max_keys);
            epoch_free(e);
            e->has_sink = false;
        }
    }
    pthread_mutex_unlock(&e->stop_lock);
    return rc;
}

int rg_engine_set_epoch_hook(rg_engine_t *e, rg_epoch_hook_cb *cb,
                             void *opaque)
{
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock */
    int st = atomic_load_explicit(&e->state, memory_order_relaxed);
    if (st == ST_NEW) {
        e->hook = cb;
        e->hook_opaque = opaque;
    }
    pthread_mutex_unlock(&e->stop_lock);
    return st == ST_NEW ? 0 : RG_ESTATE;
}
