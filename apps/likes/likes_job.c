/*
 * likes_job.c - the likes job (see likes_job.h): decode, load state, apply
 * transitions, stage rows and merge counts per epoch.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "likes_job.h"

/* What unpack leaves in the event's inline payload (32 bytes). */
struct like_ev {
    int64_t video, user, ts;
    uint8_t state;
};
_Static_assert(sizeof(struct like_ev) <= RG_EVENT_INLINE_MAX,
               "a like fits inline");

/* Cache entry: (video, user) -> state and the epoch that last changed it
 * (0: loaded from the sink, unchanged since). video 0 marks a free slot. */
struct centry {
    int64_t video, user;
    uint64_t epoch_state;     /* epoch << 1 | state */
};

struct wstate {
    struct centry *tab;
    size_t mask, count;
    struct centry *spare;     /* the last table, when its size stayed */
    size_t spare_size;
    size_t evict_at;          /* evict committed entries past this count */
    rg_sink_reader_t *reader;
    rg_row_t *miss;           /* batch.max.events pairs */
    size_t miss_cap;
    /* the batch's misses, deduplicated: open addressing over miss[]
     * indexes + 1, valid where dedup_stamp[i] == stamp (no clearing) */
    uint32_t *dedup, *dedup_stamp, dedup_mask, stamp;
    size_t *slot;             /* each event's first cache slot */
    size_t slot_cap;
    /* counters, single writer (this worker); relaxed for readers */
    _Atomic uint64_t applied, unchanged, lookups, retries;
    uint64_t retries_logged;  /* retries when the last line went out */
    int64_t last_retry_log;   /* its time, in seconds */
    char pad[64];
};

struct rg_likes_job_s {
    unsigned workers;
    rg_sink_t sink;
    bool has_reader;
    size_t cache_max, max_value_len;
    struct wstate *ws;
    const rg_conf_t *log;      /* where lines go (rg_conf_log) */
    /* unpack runs on ingest threads: atomic counters */
    _Atomic uint64_t decoded, undecodable;
    _Atomic uint64_t by_reason[RG_LIKE_E__COUNT];
    /* where the last message of each reason was (a sample for alerts) */
    _Atomic int32_t last_partition[RG_LIKE_E__COUNT];
    _Atomic int64_t last_offset[RG_LIKE_E__COUNT];
    /* likes.fault.stall.*: set before the engine starts (its threads'
     * creation orders it before every read), read-only afterwards */
    int64_t stall_video;      /* < 0: off */
    unsigned stall_ms;
    _Atomic int stall_released; /* rg_likes_job_fault_release() */
    /* likes.fault.fail.* and likes.fault.poison.*: likewise set before */
    uint64_t fail_below;      /* hash < this fails transiently; 0 off */
    int64_t fail_video;       /* < 0: off; else fails at every attempt */
    unsigned fail_attempts;
    int64_t poison_step, poison_count, poison_base;
};

static inline size_t pair_slot(int64_t v, int64_t u, size_t mask)
{
    return (size_t)rg_hash64((uint64_t)v * 0x9E3779B97F4A7C15ull ^
                             (uint64_t)u) & mask;
}

/* The entry of (v, u), probing from slot i (its first slot), or NULL. */
static struct centry *cache_find_at(struct wstate *w, size_t i, int64_t v,
                                    int64_t u)
{
    for (;; i = (i + 1) & w->mask) {
        struct centry *c = &w->tab[i];
        if (c->video == 0)
            return NULL;
        if (c->video == v && c->user == u)
            return c;
    }
}

static struct centry *cache_find(struct wstate *w, int64_t v, int64_t u)
{
    return cache_find_at(w, pair_slot(v, u, w->mask), v, u);
}

/* Room for a batch of n events: the miss list, the slots, and a dedup
 * table at most half full. */
static int grow_batch(struct wstate *w, size_t n)
{
    size_t dsize = 64;
    while (dsize < 2 * n)
        dsize *= 2;
    rg_row_t *miss = realloc(w->miss, sizeof(*miss) * n);
    if (miss != NULL)
        w->miss = miss;
    size_t *slot = realloc(w->slot, sizeof(*slot) * n);
    if (slot != NULL)
        w->slot = slot;
    uint32_t *dd = malloc(sizeof(uint32_t) * dsize);
    uint32_t *ds = calloc(dsize, sizeof(uint32_t));
    if (miss == NULL || slot == NULL || dd == NULL || ds == NULL) {
        free(dd);
        free(ds);
        return -1;
    }
    free(w->dedup);
    free(w->dedup_stamp);
    w->dedup = dd;
    w->dedup_stamp = ds;
    w->dedup_mask = (uint32_t)dsize - 1;
    w->stamp = 0;
    w->miss_cap = w->slot_cap = n;
    return 0;
}

static void cache_put_raw(struct centry *tab, size_t mask,
                          const struct centry *e)
{
    size_t i = pair_slot(e->video, e->user, mask);
    while (tab[i].video != 0)
        i = (i + 1) & mask;
    tab[i] = *e;
}

/* memset through a volatile pointer: gcc at -O3 turns malloc + memset
 * into calloc, which is what tab_get() must avoid */
static void *(*volatile zero_fn)(void *, int, size_t) = memset;

/* A zeroed table of `size` slots: the spare one when it has that size.
 * Zeroed by writing, not calloc: calloc maps the zero page, and the first
 * store to each page of it (after a probe read it) then costs a
 * copy-on-write fault plus a TLB shootdown across the CPUs; a written
 * page faults once, cheaply, here. */
static struct centry *tab_get(struct wstate *w, size_t size)
{
    struct centry *tab;
    if (w->spare != NULL && w->spare_size == size) {
        tab = w->spare;
        w->spare = NULL;
    } else {
        tab = malloc(size * sizeof(*tab));
        if (tab == NULL)
            return NULL;
    }
    zero_fn(tab, 0, size * sizeof(*tab));
    return tab;
}

/* The table size that holds `entries` at most 3/4 full. */
static size_t size_for(size_t entries)
{
    size_t size = 1024;
    while (size / 4 * 3 < entries)
        size *= 2;
    return size;
}

/* Rebuilds the table at `size` slots, dropping the entries the sink holds
 * (changed in epochs up to `committed`; UINT64_MAX keeps all). The old
 * table is kept as the spare when the size stays: eviction passes then
 * reuse memory that is already mapped. */
static int cache_rebuild(struct wstate *w, size_t size, uint64_t committed)
{
    struct centry *tab = tab_get(w, size);
    if (tab == NULL)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i <= w->mask; i++) {
        struct centry *c = &w->tab[i];
        if (c->video == 0)
            continue;
        /* changed in an epoch not committed yet: the sink does not hold
         * it, so the cache must */
        if (committed != UINT64_MAX && (c->epoch_state >> 1) <= committed)
            continue;
        cache_put_raw(tab, size - 1, c);
        n++;
    }
    free(w->spare);
    w->spare = NULL;
    if (w->mask + 1 == size) {
        w->spare = w->tab;
        w->spare_size = size;
    } else {
        free(w->tab);
    }
    w->tab = tab;
    w->mask = size - 1;
    w->count = n;
    return 0;
}

static struct centry *cache_insert(rg_likes_job_t *job, struct wstate *w,
                                   int64_t v, int64_t u, uint8_t state)
{
    if ((w->count + 1) * 4 > (w->mask + 1) * 3) {
        size_t size = (w->mask + 1) * 2;
        if (cache_rebuild(w, size, UINT64_MAX) != 0)
            return NULL;
    }
    (void)job;
    struct centry e = {v, u, state};
    size_t i = pair_slot(v, u, w->mask);
    while (w->tab[i].video != 0)
        i = (i + 1) & w->mask;
    w->tab[i] = e;
    w->count++;
    return &w->tab[i];
}

static void bump(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: a counter with one writer (this worker) */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static int likes_unpack(void *opaque, const rg_msg_t *msg, rg_event_t *ev)
{
    rg_likes_job_t *job = opaque;
    rg_like_t like;
    rg_like_err_t e = rg_like_decode(msg->key, msg->key_len, msg->value,
                                     msg->value_len, job->max_value_len,
                                     &like);
    if (e != RG_LIKE_E_NONE) {
        /* relaxed: counters */
        uint64_t n = atomic_fetch_add_explicit(&job->undecodable, 1,
                                               memory_order_relaxed);
        atomic_fetch_add_explicit(&job->by_reason[e], 1,
                                  memory_order_relaxed);
        /* relaxed: a sample; the two may come from different messages */
        atomic_store_explicit(&job->last_partition[e], msg->partition,
                              memory_order_relaxed);
        atomic_store_explicit(&job->last_offset[e], msg->offset,
                              memory_order_relaxed);
        if (n % 10000 == 0)
            rg_conf_log(job->log, RG_LOG_WARN, "likes", "partition %" PRId32
                        " offset %" PRId64 ": undecodable (%s: %s); skipped "
                        "(%" PRIu64 " so far; logged once per 10000, the "
                        "stats count them by reason)", msg->partition,
                        msg->offset, rg_like_err_name(e), rg_like_err_msg(e),
                        n + 1);
        rg_unpack_reason(rg_like_err_name(e));
        return RG_EDECODE;
    }
    atomic_fetch_add_explicit(&job->decoded, 1, memory_order_relaxed);
    /* padding zeroed too: the bytes go into dead-letter rows and to
     * dlq.topic as they are */
    struct like_ev le;
    memset(&le, 0, sizeof(le));
    le.video = (int64_t)like.video_id;
    le.user = (int64_t)like.user_id;
    le.ts = like.ts;
    le.state = like.state;
    ev->key = like.video_id;
    ev->len = sizeof(le);
    memcpy(ev->data.bytes, &le, sizeof(le));
    return 0;
}

static void nap_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Loads the misses from the sink. false when they could not be loaded:
 * a retriable error leaves the batch to the engine's retries (reason in
 * `why`); any other stops the engine (nothing of the batch can be
 * committed any more, and a restart reprocesses it). */
static bool load(rg_likes_job_t *job, rg_ctx_t *ctx, struct wstate *w,
                 size_t n, char *why, size_t why_size)
{
    unsigned worker = rg_ctx_worker(ctx);
    char err[512];
    if (w->reader == NULL) {
        w->reader = job->sink.reader_open(job->sink.self, err, sizeof(err));
        if (w->reader == NULL)
            goto failed;
    }
    int rc = job->sink.lookup(w->reader, w->miss, n, err, sizeof(err));
    if (rc == 0) {
        bump(&w->lookups, n);
        return true;
    }
    job->sink.reader_close(w->reader);
    w->reader = NULL;
    if (!rg_err_is_retriable(rc)) {
        rg_engine_fail(rg_ctx_engine(ctx), "likes: worker %u: state "
                       "lookup: %s", worker, err);
        snprintf(why, why_size, "state lookup: fatal");
        return false;
    }
failed:;
    int64_t now = (int64_t)time(NULL);
    if (w->retries_logged == 0 || now - w->last_retry_log >= 5) {
        rg_conf_log(job->log, RG_LOG_WARN, "likes", "worker %u: state "
                    "lookup failed, the batch is retried with backoff: %s "
                    "(%" PRIu64 " failed lookups since the last line)",
                    worker, err,
                    atomic_load_explicit(&w->retries, memory_order_relaxed) -
                        w->retries_logged + 1);
        w->last_retry_log = now;
        w->retries_logged =
            atomic_load_explicit(&w->retries, memory_order_relaxed) + 1;
    }
    bump(&w->retries, 1);
    snprintf(why, why_size, "state lookup: %.40s", err);
    return false;
}

static void likes_pre_do(void *opaque, rg_ctx_t *ctx, rg_event_t *evs,
                         size_t n)
{
    rg_likes_job_t *job = opaque;
    struct wstate *w = &job->ws[rg_ctx_worker(ctx)];
    if (w->count > w->evict_at) {
        /* keep what the sink does not hold yet. When most entries are
         * that young, wait for twice as many before the next pass, so a
         * pass is never repeated per batch */
        uint64_t committed = rg_engine_committed_epoch(rg_ctx_engine(ctx));
        cache_rebuild(w, w->mask + 1, committed);
        w->evict_at = w->count * 2 > job->cache_max ? w->count * 2
                                                    : job->cache_max;
    }
    if (n > w->slot_cap && grow_batch(w, n) != 0)
        abort(); /* a worker cannot go on without its state */
    /* every event's first slot, prefetched: the probes below then wait
     * for one cache (and TLB) miss at a time, not one per event */
    for (size_t i = 0; i < n; i++) {
        const struct like_ev *le = (const struct like_ev *)evs[i].data.bytes;
        w->slot[i] = pair_slot(le->video, le->user, w->mask);
        __builtin_prefetch(&w->tab[w->slot[i]]);
    }
    size_t m = 0;
    if (++w->stamp == 0) { /* wrapped: every stamp is stale again */
        memset(w->dedup_stamp, 0, sizeof(uint32_t) * (w->dedup_mask + 1));
        w->stamp = 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct like_ev *le = (struct like_ev *)evs[i].data.bytes;
        if (cache_find_at(w, w->slot[i], le->video, le->user) != NULL)
            continue;
        /* a pair missing twice in one batch is loaded once */
        uint32_t h = (uint32_t)w->slot[i] & w->dedup_mask;
        bool dup = false;
        for (; w->dedup_stamp[h] == w->stamp; h = (h + 1) & w->dedup_mask) {
            const rg_row_t *r = &w->miss[w->dedup[h]];
            if (r->key == le->video && r->key2 == le->user) {
                dup = true;
                break;
            }
        }
        if (dup)
            continue;
        w->dedup_stamp[h] = w->stamp;
        w->dedup[h] = (uint32_t)m;
        w->miss[m++] = (rg_row_t){le->video, le->user, -1, 0};
    }
    if (m == 0)
        return;
    char why[RG_RETRY_REASON_MAX];
    if (job->has_reader && !load(job, ctx, w, m, why, sizeof(why))) {
        /* nothing of the batch is applied: every event is retried (or,
         * after a fatal error, nothing more is written anyway) */
        for (size_t i = 0; i < n; i++)
            rg_ctx_retry(ctx, &evs[i], why);
        return;
    }
    for (size_t k = 0; k < m; k++) {
        uint8_t state = w->miss[k].value == 1 ? 1 : 0;
        if (cache_insert(job, w, w->miss[k].key, w->miss[k].key2, state) ==
            NULL)
            abort();
    }
}

/* likes.fault.*: true when the event must not be applied now (marked). */
static bool faulty(const rg_likes_job_t *job, rg_ctx_t *ctx, rg_event_t *ev,
                   const struct like_ev *le)
{
    if (le->video == job->fail_video) {
        rg_ctx_retry(ctx, ev, "transient (likes.fault.fail.video)");
        return true;
    }
    if (job->poison_step > 0) {
        int64_t i = le->ts - job->poison_base;
        if (i >= 0 && i % job->poison_step == job->poison_step / 2 &&
            i / job->poison_step < job->poison_count) {
            rg_ctx_fail(ctx, ev, "poison (likes.fault.poison)");
            return true;
        }
    }
    if (job->fail_below > 0) {
        uint64_t h = rg_hash64((uint64_t)le->ts ^ 0x5bd1e9955bd1e995ull);
        if (h < job->fail_below &&
            rg_ctx_attempt(ctx, ev) <= 1 + (unsigned)(rg_hash64(h) %
                                                      job->fail_attempts)) {
            rg_ctx_retry(ctx, ev, "transient (likes.fault.fail.ratio)");
            return true;
        }
    }
    return false;
}

/* likes.fault.stall: stall_ms in 10 ms naps, until released. Relaxed:
 * the flag publishes nothing, the nap only has to end soon after. */
static void stall(rg_likes_job_t *job)
{
    for (unsigned t = 0; t < job->stall_ms; t += 10) {
        if (atomic_load_explicit(&job->stall_released, memory_order_relaxed))
            return;
        nap_ms(job->stall_ms - t < 10 ? job->stall_ms - t : 10);
    }
}

static void likes_batch_do(void *opaque, rg_ctx_t *ctx, rg_event_t *evs,
                           size_t n)
{
    rg_likes_job_t *job = opaque;
    struct wstate *w = &job->ws[rg_ctx_worker(ctx)];
    rg_delta_t *delta = rg_ctx_delta(ctx);
    uint64_t epoch = rg_delta_epoch(delta);
    uint64_t applied = 0, unchanged = 0;
    for (size_t i = 0; i < n; i++) {
        const struct like_ev *le = (const struct like_ev *)evs[i].data.bytes;
        if (rg_ctx_blocked(ctx, &evs[i]))
            continue; /* retried, or behind a retried like of its video */
        if ((job->fail_below > 0 || job->poison_step > 0 ||
             job->fail_video >= 0) &&
            faulty(job, ctx, &evs[i], le))
            continue;
        if (job->stall_ms > 0 && le->video == job->stall_video)
            stall(job); /* the test aid: holds the watermark */
        struct centry *c = cache_find(w, le->video, le->user);
        if (c == NULL)
            abort(); /* pre_do loaded every pair of the batch */
        if ((c->epoch_state & 1u) == le->state) {
            unchanged++;
            continue;
        }
        rg_row_t row = {le->video, le->user, le->state,
                        le->ts >= 0 ? le->ts : 0};
        /* at most one key and one row per event: within the delta's bound
         * (railgun/flush.h), so neither can be full */
        if (rg_delta_merge(delta, le->video, le->state ? 1 : -1) != 0 ||
            rg_delta_stage(delta, &row) != 0)
            abort();
        c->epoch_state = epoch << 1 | le->state;
        applied++;
    }
    bump(&w->applied, applied);
    bump(&w->unchanged, unchanged);
}

rg_likes_job_t *rg_likes_job_new(unsigned workers, const rg_sink_t *sink,
                                 size_t cache_max, size_t max_value_len)
{
    rg_likes_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    job->workers = workers;
    job->sink = *sink;
    job->has_reader = sink->reader_open != NULL && sink->lookup != NULL;
    job->cache_max = cache_max ? cache_max : 1u << 20;
    job->max_value_len = max_value_len ? max_value_len : 65536;
    job->stall_video = -1;
    job->fail_video = -1;
    job->ws = calloc(workers, sizeof(*job->ws));
    if (job->ws == NULL) {
        free(job);
        return NULL;
    }
    /* each worker's table sized for its bound at once: growing it in
     * steps costs a rehash and a fresh table of first-touch page faults
     * per doubling, on the worker */
    size_t size = size_for(job->cache_max);
    for (unsigned i = 0; i < workers; i++) {
        job->ws[i].mask = size - 1;
        job->ws[i].evict_at = job->cache_max;
        job->ws[i].tab = tab_get(&job->ws[i], size);
        if (job->ws[i].tab == NULL) {
            rg_likes_job_destroy(job);
            return NULL;
        }
    }
    return job;
}

/* The likes job needs order per (video, user) only: a failed like holds
 * up its pair, not its video (railgun/retry.h). */
static uint64_t likes_order_key(void *opaque, const rg_event_t *ev)
{
    (void)opaque;
    const struct like_ev *le = (const struct like_ev *)ev->data.bytes;
    return rg_hash64((uint64_t)le->video * 0x9E3779B97F4A7C15ull ^
                     (uint64_t)le->user);
}

/* Hot lanes: this worker or lane has just received the video (routing
 * key) back, and the move's epoch has committed, so the sink holds every
 * pair the other routes changed while it was away; the entries it kept
 * from its last stay may be stale. It drops the video's entries the sink
 * holds (unchanged since loaded, or changed in a committed epoch); one
 * changed in an epoch not committed yet is this thread's own newer state
 * (the video's events from another dispatcher, which routed it here
 * already) and stays. In place: linear probing's backward-shift delete,
 * no allocation; a scan of the table per move, at most once per
 * hotkey.cool.ms per video. */
static void likes_forget(void *opaque, rg_ctx_t *ctx, uint64_t key)
{
    rg_likes_job_t *job = opaque;
    struct wstate *w = &job->ws[rg_ctx_worker(ctx)];
    uint64_t committed = rg_engine_committed_epoch(rg_ctx_engine(ctx));
    for (size_t i = 0; i <= w->mask;) {
        struct centry *c = &w->tab[i];
        if (c->video != (int64_t)key || c->video == 0 ||
            (c->epoch_state >> 1) > committed) {
            i++;
            continue;
        }
        /* delete slot i: pull later entries of the cluster back over it
         * when their first slot allows; slot i is then looked at again */
        size_t hole = i;
        for (size_t j = (hole + 1) & w->mask; w->tab[j].video != 0;
             j = (j + 1) & w->mask) {
            size_t home = pair_slot(w->tab[j].video, w->tab[j].user, w->mask);
            /* j may move to the hole when its home is not in (hole, j] */
            if (((j - home) & w->mask) >= ((j - hole) & w->mask)) {
                w->tab[hole] = w->tab[j];
                hole = j;
            }
        }
        w->tab[hole] = (struct centry){0};
        w->count--;
    }
}

void rg_likes_job_processor(rg_likes_job_t *job, rg_processor_t *out)
{
    /* split: a video's likes commute except per (video, user), and its
     * counts are merged deltas, so a hot video is spread over every lane
     * by its order unit and the epoch adds the lanes' counts up */
    *out = (rg_processor_t){.unpack = likes_unpack,
                            .pre_do = likes_pre_do,
                            .batch_do = likes_batch_do,
                            .opaque = job,
                            .order_key = likes_order_key,
                            .forget = likes_forget,
                            .split = 1};
}

void rg_likes_job_set_fault_stall(rg_likes_job_t *job, int64_t video,
                                  unsigned ms)
{
    job->stall_video = video;
    job->stall_ms = video < 0 ? 0 : ms;
}

void rg_likes_job_fault_release(rg_likes_job_t *job)
{
    /* relaxed: see stall() */
    atomic_store_explicit(&job->stall_released, 1, memory_order_relaxed);
}

int rg_likes_job_set_faults(rg_likes_job_t *job, const rg_conf_t *conf,
                            char *errstr, size_t size)
{
    rg_likes_job_set_fault_stall(
        job, rg_conf_get_int(conf, "likes.fault.stall.video"),
        (unsigned)rg_conf_get_int(conf, "likes.fault.stall.ms"));
    const char *r = rg_conf_get_str(conf, "likes.fault.fail.ratio");
    char *end = NULL;
    double ratio = r ? strtod(r, &end) : 0;
    if (r == NULL || end == r || *end != '\0' || !(ratio >= 0) ||
        ratio > 1) {
        snprintf(errstr, size, "likes.fault.fail.ratio: \"%s\" is not a "
                 "number from 0 to 1", r ? r : "");
        return RG_EINVAL;
    }
    job->fail_below = ratio >= 1 ? UINT64_MAX
                                 : (uint64_t)(ratio * 18446744073709551616.0);
    job->fail_attempts =
        (unsigned)rg_conf_get_int(conf, "likes.fault.fail.attempts");
    job->fail_video = rg_conf_get_int(conf, "likes.fault.fail.video");
    job->poison_step = rg_conf_get_int(conf, "likes.fault.poison.step");
    job->poison_count = rg_conf_get_int(conf, "likes.fault.poison.count");
    job->poison_base = rg_conf_get_int(conf, "likes.fault.poison.base");
    return 0;
}

int rg_likes_failure_ts(const rg_failure_t *row, int64_t *ts)
{
    if (row->flags & RG_FAILURE_F_MESSAGE) {
        rg_like_t like;
        if (rg_like_decode(row->msg_key, row->msg_key_len, row->payload,
                           row->payload_len, 65536, &like) != RG_LIKE_E_NONE)
            return RG_EDECODE;
        *ts = like.ts;
        return 0;
    }
    struct like_ev le;
    if (row->payload == NULL || row->payload_len < sizeof(le))
        return RG_EDECODE;
    memcpy(&le, row->payload, sizeof(le));
    *ts = le.ts;
    return 0;
}

int rg_likes_failure_like(const rg_failure_t *row, rg_like_t *out)
{
    struct like_ev le;
    if ((row->flags & RG_FAILURE_F_MESSAGE) || row->payload == NULL ||
        row->event_len != sizeof(le) || row->payload_len < sizeof(le))
        return RG_EDECODE;
    memcpy(&le, row->payload, sizeof(le));
    if (le.video <= 0 || le.user <= 0 || le.state > 1)
        return RG_EDECODE;
    *out = (rg_like_t){(uint64_t)le.video, (uint64_t)le.user, le.ts,
                       le.state};
    return 0;
}

void rg_likes_job_set_log(rg_likes_job_t *job, const rg_conf_t *conf)
{
    job->log = conf;
}

void rg_likes_job_stats(rg_likes_job_t *job, rg_likes_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    /* relaxed everywhere: counters */
    out->decoded = atomic_load_explicit(&job->decoded, memory_order_relaxed);
    out->undecodable = atomic_load_explicit(&job->undecodable,
                                            memory_order_relaxed);
    for (int r = 0; r < RG_LIKE_E__COUNT; r++) {
        out->by_reason[r] = atomic_load_explicit(&job->by_reason[r],
                                                 memory_order_relaxed);
        out->last_partition[r] = atomic_load_explicit(
            &job->last_partition[r], memory_order_relaxed);
        out->last_offset[r] = atomic_load_explicit(&job->last_offset[r],
                                                   memory_order_relaxed);
    }
    for (unsigned i = 0; i < job->workers; i++) {
        struct wstate *w = &job->ws[i];
        out->applied += atomic_load_explicit(&w->applied,
                                             memory_order_relaxed);
        out->unchanged += atomic_load_explicit(&w->unchanged,
                                               memory_order_relaxed);
        out->lookups += atomic_load_explicit(&w->lookups,
                                             memory_order_relaxed);
        out->lookup_retries += atomic_load_explicit(&w->retries,
                                                    memory_order_relaxed);
    }
}

void rg_likes_job_destroy(rg_likes_job_t *job)
{
    if (job == NULL)
        return;
    if (job->ws != NULL)
        for (unsigned i = 0; i < job->workers; i++) {
            if (job->ws[i].reader != NULL)
                job->sink.reader_close(job->ws[i].reader);
            free(job->ws[i].tab);
            free(job->ws[i].spare);
            free(job->ws[i].miss);
            free(job->ws[i].slot);
            free(job->ws[i].dedup);
            free(job->ws[i].dedup_stamp);
        }
    free(job->ws);
    free(job);
}
