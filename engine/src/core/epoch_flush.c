/*
 * epoch_flush.c - the flusher thread: the sink side of the epoch protocol
 * (epoch.h, steps 1, 4 and 5), and epoch mode's setup (railgun/flush.h).
 *
 * Invariants
 *   - Epoch E is written once every worker sealed E (acquire of
 *     w->sealed, pairs with S1) and every dispatcher snapped E (acquire of
 *     d->snapped, pairs with S2), in ONE sink transaction; epochs commit in
 *     order, one at a time.
 *   - committed_next[p] (the commit callback's offset) moves only after
 *     the transaction holding it committed, so the committed Kafka offset
 *     never passes an event whose rows are not stored.
 *   - The slots of E are cleared before committed_epoch := E (release,
 *     C1): a worker or dispatcher that sees E committed may reuse them.
 *   - Only the flusher touches the sink while the engine runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/error.h"
#include "conf_props.h"
#include "engine_int.h"

/* How long a requested barrier may stay unsent before the flusher sends
 * it for an idle dispatcher. */
#define TAKEOVER_AFTER_NS (1000 * 1000)

/* Rows handed to write_merged per call. */
#define ROW_CHUNK 1024

/* ------------------------------------------------------------------ */
/* requests and failure                                                 */

void rg__epoch_request(rg_engine_t *e, uint64_t epoch)
{
    /* relaxed: a trigger (see rg__epoch_maybe_barrier()) */
    uint64_t cur = atomic_load_explicit(&e->epoch_req, memory_order_relaxed);
    while (cur < epoch &&
           !atomic_compare_exchange_weak_explicit(&e->epoch_req, &cur, epoch,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* The message and the flag; the rest of a failure is the same for every
 * caller. The first failure's message wins (CAS on failing). */
static void vfail(rg_engine_t *e, const char *fmt, va_list ap)
{
    int zero = 0;
    /* acq_rel: the winner writes errmsg; losers return */
    if (!atomic_compare_exchange_strong_explicit(&e->failing, &zero, 1,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire))
        return;
    vsnprintf(e->errmsg, sizeof(e->errmsg), fmt, ap);
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
    rg__park_wake(&e->flush_wake.park);
    rg__log(e, RG_LOG_ERR, "stopped: %s", e->errmsg);
}

void rg__engine_fail(rg_engine_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(e, fmt, ap);
    va_end(ap);
}

void rg_engine_fail(rg_engine_t *e, const char *fmt, ...)
{
    if (e == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfail(e, fmt, ap);
    va_end(ap);
}

int rg_engine_sink_error(rg_engine_t *e, char *buf, size_t size)
{
    pthread_mutex_lock(&e->sink_err_lock);
    int has = e->sink_err[0] != '\0';
    if (buf != NULL && size > 0)
        snprintf(buf, size, "%s", e->sink_err);
    pthread_mutex_unlock(&e->sink_err_lock);
    return has;
}

uint64_t rg_engine_committed_epoch(const rg_engine_t *e)
{
    /* acquire: pairs with C1; what the epoch wrote is visible to the
     * caller's reads */
    return atomic_load_explicit(&e->committed_epoch, memory_order_acquire);
}

const char *rg_engine_error(rg_engine_t *e)
{
    /* acquire: pairs with the release in rg__engine_fail() */
    if (e == NULL || !atomic_load_explicit(&e->failed, memory_order_acquire))
        return NULL;
    return e->errmsg;
}

static const double txn_bounds[RG_FLUSH_TXN_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
static const double rows_bounds[RG_FLUSH_ROWS_BUCKETS] = {
    1, 10, 100, 1e3, 5e3, 1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 1e7};

const double *rg_flush_txn_bounds(void) { return txn_bounds; }
const double *rg_flush_rows_bounds(void) { return rows_bounds; }

/* The bucket of v among bounds[0..n): the first bound >= v, n above. */
static unsigned bucket_of(const double *bounds, unsigned n, double v)
{
    unsigned i = 0;
    while (i < n && v > bounds[i])
        i++;
    return i;
}

/* A committed transaction into the histograms (flusher thread). */
static void note_txn(rg_engine_t *e, uint64_t ns, uint64_t rows)
{
    rg__stat_add(&e->st_txn_hist[bucket_of(txn_bounds, RG_FLUSH_TXN_BUCKETS,
                                           (double)ns / 1e9)], 1);
    rg__stat_add(&e->st_rows_hist[bucket_of(rows_bounds,
                                            RG_FLUSH_ROWS_BUCKETS,
                                            (double)rows)], 1);
    rg__stat_add(&e->st_txn_ns_sum, ns);
    rg__stat_add(&e->st_rows_sum, rows);
}

void rg_engine_flush_hist(rg_engine_t *e, rg_flush_hist_t *out)
{
    memset(out, 0, sizeof(*out));
    /* relaxed everywhere: counters */
    for (unsigned i = 0; i <= RG_FLUSH_TXN_BUCKETS; i++)
        out->txn_counts[i] = atomic_load_explicit(&e->st_txn_hist[i],
                                                  memory_order_relaxed);
    for (unsigned i = 0; i <= RG_FLUSH_ROWS_BUCKETS; i++)
        out->rows_counts[i] = atomic_load_explicit(&e->st_rows_hist[i],
                                                   memory_order_relaxed);
    out->txn_seconds_sum = (double)atomic_load_explicit(
                               &e->st_txn_ns_sum, memory_order_relaxed) /
                           1e9;
    out->rows_sum = atomic_load_explicit(&e->st_rows_sum,
                                         memory_order_relaxed);
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
    out->failing = atomic_load_explicit(&e->st_failing, memory_order_relaxed);
    uint64_t req = atomic_load_explicit(&e->epoch_req, memory_order_relaxed);
    uint64_t done = atomic_load_explicit(&e->committed_epoch,
                                         memory_order_relaxed);
    out->pending_epochs = req > done ? req - done : 0;
}

/* ------------------------------------------------------------------ */
/* the flusher                                                          */

/* True once every worker sealed `epoch` and every dispatcher sent it. */
static bool epoch_ready(rg_engine_t *e, uint64_t epoch)
{
    for (unsigned w = 0; w < e->nworkers; w++)
        /* acquire: pairs with S1 in seal(); the delta is ours */
        if (atomic_load_explicit(&e->workers[w].sealed,
                                 memory_order_acquire) < epoch)
            return false;
    for (unsigned d = 0; d < e->ndispatchers; d++)
        /* acquire: pairs with S2 in rg__epoch_send_barriers() */
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

/* Appends n items of size sz to *buf (cap *cap, count *len) for the
 * commit hook. false when out of memory. */
static bool cm_append(void **buf, size_t *len, size_t *cap, const void *src,
                      size_t n, size_t sz)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n)
            c *= 2;
        void *p = realloc(*buf, c * sz);
        if (p == NULL)
            return false;
        *buf = p;
        *cap = c;
    }
    memcpy((char *)*buf + *len * sz, src, n * sz);
    *len += n;
    return true;
}

/* Writes one epoch as one transaction. 0 or the sink's error code. */
static int write_epoch(rg_engine_t *e, uint64_t epoch, size_t noffs,
                       uint64_t *merged, uint64_t *staged, char *err,
                       size_t errsz)
{
    const rg_sink_t *s = &e->sink;
    uint32_t k = epoch % e->nslots;
    *merged = *staged = 0;
    e->cm_nkeys = e->cm_nrows = 0;
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
                for (size_t i = 0; e->cm_cb != NULL && i < n; i++)
                    if (!cm_append((void **)&e->cm_keys, &e->cm_nkeys,
                                   &e->cm_keys_cap, &e->rows[i].key, 1,
                                   sizeof(int64_t)))
                        return RG_ENOMEM;
                *merged += n;
                n = 0;
            }
            if (!more)
                break;
        }
        size_t bcur = 0, nb = 0;
        rg_bytes_row_t br;
        for (;;) {
            int more = rg__delta_next_bytes(d, &bcur, &br);
            if (more && br.value != 0)
                e->brows[nb++] = br;
            if (nb == ROW_CHUNK || (!more && nb > 0)) {
                if ((rc = s->write_merged_bytes(s->self, e->brows, nb, err,
                                                errsz)) != 0)
                    return rc;
                *merged += nb;
                nb = 0;
            }
            if (!more)
                break;
        }
        if (d->nstaged > 0) {
            if ((rc = s->write_staged(s->self, d->staged, d->nstaged, err,
                                      errsz)) != 0)
                return rc;
            if (e->cm_cb != NULL &&
                !cm_append((void **)&e->cm_rows, &e->cm_nrows,
                           &e->cm_rows_cap, d->staged, d->nstaged,
                           sizeof(rg_row_t)))
                return RG_ENOMEM;
            *staged += d->nstaged;
        }
        if (d->fails.n > 0 && s->write_failures != NULL &&
            (rc = s->write_failures(s->self, d->fails.rows, d->fails.n, err,
                                    errsz)) != 0)
            return rc;
    }
    for (unsigned d = 0; d < e->ndispatchers && s->write_failures != NULL;
         d++) {
        const struct rg__fails *f = &e->dispatchers[d].dead[k];
        if (f->n > 0 &&
            (rc = s->write_failures(s->self, f->rows, f->n, err, errsz)) != 0)
            return rc;
    }
    /* the producer marks of the epoch (dedup.c, D1), after its offsets */
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        const struct rg__marks *m = e->dispatchers[d].marks;
        if (m == NULL || m[k].n == 0)
            continue;
        if (m[k].n == UINT32_MAX) {
            /* the barrier could not copy them: never commit without */
            rg__seterr(err, errsz, "dedup: the epoch's producer marks are "
                       "missing (out of memory at its barrier)");
            return RG_ESTATE; /* not retriable: the engine stops */
        }
        if ((rc = s->write_marks(s->self, m[k].rows, m[k].n, err, errsz)) !=
            0)
            return rc;
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

/* Sleeps `ns` with jitter in [ns/2, ns], but not past a stop deadline. */
static void backoff_sleep(rg_engine_t *e, uint64_t ns, uint64_t *rng)
{
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    uint64_t half = ns / 2;
    uint64_t t = half + (half ? *rng % (half + 1) : 0);
    /* acquire: pairs with the release in rg_engine_stop() */
    int64_t dl = atomic_load_explicit(&e->stop_deadline_ns,
                                      memory_order_acquire);
    if (dl != 0) {
        int64_t left = dl - rg__now_ns();
        t = left <= 0 ? 0 : (uint64_t)left < t ? (uint64_t)left : t;
    }
    struct timespec ts = {(time_t)(t / 1000000000u),
                          (long)(t % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* Keeps the sink's last error for rg_engine_sink_error(). */
static void set_sink_error(rg_engine_t *e, const char *msg)
{
    pthread_mutex_lock(&e->sink_err_lock);
    snprintf(e->sink_err, sizeof(e->sink_err), "%s", msg);
    pthread_mutex_unlock(&e->sink_err_lock);
}

/* How often a sink that keeps failing is logged again. */
#define SINK_LOG_EVERY_NS (5ll * 1000 * 1000 * 1000)

/* Writes epoch E (retrying what may pass later), then hands it off.
 * Returns false when the engine failed. */
/* The commit hook for the epoch write_epoch() just stored; the rows it
 * collected are this epoch's (a retry collects them again). */
static void committed_hook(rg_engine_t *e, uint64_t epoch, bool known)
{
    if (e->cm_cb == NULL)
        return;
    rg_epoch_commit_t c = {
        .epoch = epoch,
        .version = known && e->sink.version != NULL
                       ? e->sink.version(e->sink.self) : 0,
        .merged = e->cm_keys, .nmerged = known ? e->cm_nkeys : 0,
        .staged = e->cm_rows, .nstaged = known ? e->cm_nrows : 0};
    e->cm_cb(e->cm_opaque, &c);
}

/* Flow control's adaptive limit, after a transaction that took lat_ns
 * (flow_adapt.h): the flusher owns RG__BUCKET_ADAPTIVE. */
static void adapt_after_commit(rg_engine_t *e, uint64_t epoch,
                               uint64_t lat_ns)
{
    /* relaxed: statistics, and counters read for the controller's input
     * (a value that was true once is all it needs) */
    atomic_store_explicit(&e->st_sink_lat_ns, lat_ns, memory_order_relaxed);
    if (e->adapt.target_ns == 0)
        return;
    uint64_t accepted = 0, waits = 0;
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        accepted += atomic_load_explicit(&e->dispatchers[d].accepted,
                                         memory_order_relaxed);
        waits += atomic_load_explicit(&e->dispatchers[d].flow_waits,
                                      memory_order_relaxed);
    }
    bool throttled = waits != e->adapt_waits;
    e->adapt_waits = waits;
    uint64_t others = 0;
    for (int i = 0; i < RG__BUCKET_NLIMITS; i++) {
        uint64_t l = atomic_load_explicit(&e->bucket->limit[i],
                                          memory_order_relaxed);
        if (i != RG__BUCKET_ADAPTIVE && l != 0 && (others == 0 || l < others))
            others = l;
    }
    int64_t now = rg__now_ns();
    uint64_t cuts = e->adapt.cuts;
    /* relaxed: the highest epoch whose barrier is due (the one after it
     * is being filled); an estimate is all the controller needs */
    uint64_t open = atomic_load_explicit(&e->epoch_req,
                                         memory_order_relaxed) + 1;
    if (open <= epoch)
        open = epoch + 1;
    uint64_t before = e->adapt.rate;
    if (rg__adapt_update(&e->adapt, epoch, open, now, lat_ns, accepted,
                         others, throttled)) {
        /* refused when a configured flow.burst.events is more than a day
         * of the new rate: the controller then keeps what the bucket has */
        if (rg__bucket_set_limit(e->bucket, RG__BUCKET_ADAPTIVE,
                                 e->adapt.rate, now) != 0) {
            e->adapt.rate = before;
            if (e->adapt.cuts != cuts)
                e->adapt.cuts = cuts;
            return;
        }
        if (e->adapt.cuts != cuts)
            rg__stat_add(&e->st_adapt_cuts, 1);
        else
            rg__stat_add(&e->st_adapt_raises, 1); /* a raise, or let go */
    }
}

static bool flush_epoch(rg_engine_t *e, uint64_t epoch, uint64_t *rng)
{
    size_t noffs = gather_offsets(e, epoch);
    bool empty = noffs == 0;
    uint32_t k = epoch % e->nslots;
    for (unsigned w = 0; w < e->nworkers && empty; w++)
        empty = rg_delta_keys(&e->workers[w].slots[k]) == 0 &&
                rg_delta_staged(&e->workers[w].slots[k]) == 0 &&
                e->workers[w].slots[k].fails.n == 0;
    for (unsigned d = 0; d < e->ndispatchers && empty; d++)
        empty = e->dispatchers[d].dead[k].n == 0 &&
                (e->dispatchers[d].marks == NULL ||
                 e->dispatchers[d].marks[k].n == 0);
    if (!empty) {
        uint64_t wait = e->backoff_ns;
        unsigned attempt = 0;
        int64_t first_fail = 0, last_log = 0;
        uint64_t since_log = 0;
        for (;;) {
            char err[512] = "";
            uint64_t merged, staged;
            int64_t t0 = rg__now_ns();
            int rc = write_epoch(e, epoch, noffs, &merged, &staged, err,
                                 sizeof(err));
            if (rc == 0) {
                uint64_t took = (uint64_t)(rg__now_ns() - t0);
                rg__stat_add(&e->st_txns, 1);
                rg__stat_add(&e->st_merged, merged);
                rg__stat_add(&e->st_staged, staged);
                note_txn(e, took, merged + staged);
                committed_hook(e, epoch, true);
                adapt_after_commit(e, epoch, took);
                break;
            }
            e->sink.rollback(e->sink.self);
            if (rc == RG_EEXIST && attempt > 0) {
                /* an earlier attempt's commit landed after all (its
                 * reply was lost): the epoch is stored, its version
                 * unknown */
                rg__stat_add(&e->st_txns, 1);
                committed_hook(e, epoch, false);
                break;
            }
            attempt++;
            if (!rg_err_is_retriable(rc)) {
                rg__engine_fail(e, "sink: %s (%s); epoch %llu not written",
                                err[0] ? err : rg_strerror(rc),
                                rg_err_name(rc), (unsigned long long)epoch);
                return false;
            }
            int64_t now = rg__now_ns();
            set_sink_error(e, err[0] ? err : rg_strerror(rc));
            rg__stat_add(&e->st_retries, 1);
            /* relaxed: a gauge for stats */
            atomic_store_explicit(&e->st_failing, attempt,
                                  memory_order_relaxed);
            /* loud, but once per SINK_LOG_EVERY_NS with the count */
            since_log++;
            if (first_fail == 0)
                first_fail = now;
            if (last_log == 0 || now - last_log >= SINK_LOG_EVERY_NS) {
                rg__log(e, RG_LOG_WARN, "sink: %s (%s): epoch %llu not "
                        "stored, retrying (%llu attempts in %.1f s, %llu "
                        "since the last line)", err[0] ? err : "no message",
                        rg_err_name(rc), (unsigned long long)epoch,
                        (unsigned long long)attempt,
                        (double)(now - first_fail) / 1e9,
                        (unsigned long long)since_log);
                last_log = now;
                since_log = 0;
            }
            /* acquire: pairs with the release in rg_engine_stop() */
            int64_t dl = atomic_load_explicit(&e->stop_deadline_ns,
                                              memory_order_acquire);
            if (dl != 0 && now >= dl) {
                uint64_t req = atomic_load_explicit(&e->epoch_req,
                                                    memory_order_relaxed);
                rg__engine_fail(e, "stopped after shutdown.timeout.ms with "
                                "epochs %llu .. %llu not stored: the sink "
                                "kept failing (%s); they are reprocessed "
                                "after a restart",
                                (unsigned long long)epoch,
                                (unsigned long long)(req > epoch ? req
                                                                 : epoch),
                                err[0] ? err : rg_strerror(rc));
                return false;
            }
            backoff_sleep(e, wait, rng);
            wait = wait * 2 > e->backoff_max_ns ? e->backoff_max_ns
                                                : wait * 2;
        }
        if (attempt > 0) {
            rg__log(e, RG_LOG_INFO, "sink: epoch %llu stored after %u "
                    "failed attempts (%.1f s)", (unsigned long long)epoch,
                    attempt, first_fail
                        ? (double)(rg__now_ns() - first_fail) / 1e9 : 0.0);
            atomic_store_explicit(&e->st_failing, 0, memory_order_relaxed);
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
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg__fails_clear(&e->dispatchers[d].dead[k]);
        if (e->dispatchers[d].marks != NULL)
            e->dispatchers[d].marks[k].n = 0;
    }
    rg__stat_add(&e->st_epochs, 1);
    /* release (C1): the cleared slots and snapshots go back to their
     * owners */
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
                /* acquire: pairs with S2 in rg__epoch_send_barriers() */
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
            rg__worker_t *wk = &e->workers[w];
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
            if (dp->dead != NULL)
                for (uint32_t i = 0; i < e->nslots; i++)
                    rg__fails_free(&dp->dead[i]);
            free(dp->dead);
            dp->dead = NULL;
            rg__fails_free(&dp->dead_open);
            rg__dedup_free(dp);
            dp->snap = NULL;
            dp->snap_n = NULL;
            dp->owned = NULL;
        }
    free((void *)e->part_next);
    free((void *)e->committed_next);
    free(e->written_next);
    free(e->offs);
    free(e->rows);
    free(e->brows);
    free(e->cm_keys);
    free(e->cm_rows);
    e->cm_keys = NULL;
    e->cm_rows = NULL;
    e->cm_nkeys = e->cm_keys_cap = e->cm_nrows = e->cm_rows_cap = 0;
    e->part_next = e->committed_next = NULL;
    e->written_next = NULL;
    e->offs = NULL;
    e->rows = NULL;
    e->brows = NULL;
}

void rg__epoch_destroy(rg_engine_t *e)
{
    if (!e->epoch_mode)
        return;
    epoch_free(e);
    if (e->sink.close != NULL)
        e->sink.close(e->sink.self);
    e->epoch_mode = false;
    e->align = false;
}

static int epoch_alloc(rg_engine_t *e)
{
    uint32_t np = e->max_partitions, ns = e->nslots;
    e->part_next = calloc(np, sizeof(*e->part_next));
    e->committed_next = calloc(np, sizeof(*e->committed_next));
    e->written_next = malloc(sizeof(int64_t) * np);
    e->offs = malloc(sizeof(rg_offset_t) * np);
    e->rows = malloc(sizeof(rg_row_t) * ROW_CHUNK);
    e->brows = malloc(sizeof(rg_bytes_row_t) * ROW_CHUNK);
    if (!e->part_next || !e->committed_next || !e->written_next ||
        !e->offs || !e->rows || !e->brows)
        return RG_ENOMEM;
    for (uint32_t p = 0; p < np; p++)
        e->written_next[p] = -1;
    for (unsigned w = 0; w < e->nworkers; w++) {
        rg__worker_t *wk = &e->workers[w];
        wk->slots = calloc(ns, sizeof(rg_delta_t));
        if (wk->slots == NULL)
            return RG_ENOMEM;
        for (uint32_t i = 0; i < ns; i++)
            if (rg__delta_init(&wk->slots[i], e->merge_max_keys,
                               e->sink.write_merged_bytes != NULL,
                               e->sink.write_staged != NULL) != 0)
                return RG_ENOMEM;
        wk->epoch = 1;
        wk->cur = &wk->slots[1 % ns];
        wk->cur->epoch = 1;
        if (e->align) {
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
        dp->dead = calloc(ns, sizeof(struct rg__fails));
        if (!dp->owned || !dp->snap || !dp->snap_n || !dp->dead)
            return RG_ENOMEM;
        for (uint32_t i = 0; i < ns; i++)
            if ((dp->snap[i] = malloc(sizeof(rg_offset_t) * np)) == NULL)
                return RG_ENOMEM;
        if (e->sink.write_marks != NULL && rg__dedup_init(dp) != 0)
            return RG_ENOMEM;
    }
    return 0;
}

int rg_engine_set_sink(rg_engine_t *e, const rg_sink_t *sink, char *errstr,
                       size_t errstr_size)
{
    if (e == NULL || sink == NULL) {
        rg__seterr(errstr, errstr_size, "rg_engine_set_sink: NULL argument");
        return RG_EINVAL;
    }
    const char *missing = !sink->begin           ? "begin"
                          : !sink->write_merged  ? "write_merged"
                          : !sink->write_offsets ? "write_offsets"
                          : !sink->commit        ? "commit"
                          : !sink->rollback      ? "rollback"
                                                 : NULL;
    bool ro = sink->reader_open != NULL, lk = sink->lookup != NULL,
         rc_ = sink->reader_close != NULL;
    if (missing == NULL && (ro != lk || ro != rc_))
        missing = "reader_open, lookup and reader_close (all or none)";
    if (missing == NULL &&
        (sink->write_failures != NULL) != (sink->scan_failures != NULL))
        missing = "write_failures or scan_failures (both or neither)";
    if (missing == NULL &&
        (sink->write_marks != NULL) != (sink->scan_marks != NULL))
        missing = "write_marks or scan_marks (both or neither)";
    if (missing != NULL) {
        rg__seterr(errstr, errstr_size, "sink: %s is missing (railgun/sink.h "
                   "says which functions are required)", missing);
        return RG_EINVAL;
    }
    /* what may arrive between a worker's flush.max.keys request and the
     * barrier: every ring full, plus one publish batch each, plus every
     * event waiting for a retry (retry.h: applied into whatever epoch is
     * open when it finally runs) */
    uint64_t margin = (uint64_t)e->ndispatchers *
                      (rg__conf_int(e->conf, RG_P_RING_CAPACITY) +
                       PUBLISH_EVERY + e->batch_max) +
                      e->rc.max_parked;
    if ((uint64_t)e->merge_max_keys < e->flush_max_keys + margin) {
        rg__seterr(errstr, errstr_size, "merge.max.keys: %u is too small: "
                   "need at least flush.max.keys + dispatchers x "
                   "(ring.capacity + %u) + retry.max.parked.events = %llu",
                   e->merge_max_keys, PUBLISH_EVERY + e->batch_max,
                   (unsigned long long)(e->flush_max_keys + margin));
        return RG_ERANGE;
    }
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock */
    int rc = atomic_load_explicit(&e->state, memory_order_relaxed) == ST_NEW
                 ? 0
                 : RG_ESTATE;
    if (rc == 0 && e->epoch_mode)
        rc = RG_ESTATE; /* one sink per engine */
    if (rc != 0)
        rg__seterr(errstr, errstr_size, "sink: set it once, before "
                   "rg_engine_start()");
    if (rc == 0) {
        e->sink = *sink;
        e->epoch_mode = true;
        e->rc.keep = sink->write_failures != NULL;
        e->align = e->ndispatchers > 1;
        if ((rc = epoch_alloc(e)) != 0) {
            rg__seterr(errstr, errstr_size, "sink: out of memory for %u "
                       "delta slots of merge.max.keys %u", e->nslots,
                       e->merge_max_keys);
            epoch_free(e);
            e->epoch_mode = false;
            e->align = false;
        }
    }
    pthread_mutex_unlock(&e->stop_lock);
    return rc;
}

int rg_engine_set_commit_hook(rg_engine_t *e, rg_epoch_commit_cb *cb,
                              void *opaque)
{
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock */
    int st = atomic_load_explicit(&e->state, memory_order_relaxed);
    if (st == ST_NEW) {
        e->cm_cb = cb;
        e->cm_opaque = opaque;
    }
    pthread_mutex_unlock(&e->stop_lock);
    return st == ST_NEW ? 0 : RG_ESTATE;
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
