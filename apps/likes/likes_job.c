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
    uint8_t skip;     /* pre_do could not load its state: not applied */
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
    /* counters, single writer (this worker); relaxed for readers */
    _Atomic uint64_t applied, unchanged, lookups, retries;
    char pad[64];
};

struct rg_likes_job_s {
    unsigned workers;
    rg_sink_t sink;
    bool has_reader;
    size_t cache_max, max_value_len;
    struct wstate *ws;
    /* unpack runs on ingest threads: atomic counters */
    _Atomic uint64_t decoded, undecodable;
    _Atomic uint64_t by_reason[RG_LIKE_E__COUNT];
};

static inline size_t pair_slot(int64_t v, int64_t u, size_t mask)
{
    return (size_t)rg_hash64((uint64_t)v * 0x9E3779B97F4A7C15ull ^
                             (uint64_t)u) & mask;
}

static struct centry *cache_find(struct wstate *w, int64_t v, int64_t u)
{
    for (size_t i = pair_slot(v, u, w->mask);; i = (i + 1) & w->mask) {
        struct centry *c = &w->tab[i];
        if (c->video == 0)
            return NULL;
        if (c->video == v && c->user == u)
            return c;
    }
}

static void cache_put_raw(struct centry *tab, size_t mask,
                          const struct centry *e)
{
    size_t i = pair_slot(e->video, e->user, mask);
    while (tab[i].video != 0)
        i = (i + 1) & mask;
    tab[i] = *e;
}

/* A zeroed table of `size` slots: the spare one when it has that size.
 * memset, not calloc: calloc maps the zero page, and the first store to
 * each page of it then costs a copy-on-write fault plus a TLB shootdown
 * across the CPUs; a written page faults once, cheaply. */
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
    memset(tab, 0, size * sizeof(*tab));
    return tab;
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
        if (n % 10000 == 0)
            fprintf(stderr, "railgun: likes: partition %" PRId32 " offset %"
                    PRId64 ": undecodable (%s: %s); skipped (%" PRIu64
                    " so far, logged once per 10000)\n", msg->partition,
                    msg->offset, rg_like_err_name(e), rg_like_err_msg(e),
                    n + 1);
        return RG_EDECODE;
    }
    atomic_fetch_add_explicit(&job->decoded, 1, memory_order_relaxed);
    struct like_ev le = {(int64_t)like.video_id, (int64_t)like.user_id,
                         like.ts, like.state, 0};
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

/* Loads the misses from the sink, retrying what may pass later. Returns
 * false when the engine gave up (the batch is then skipped: nothing of it
 * can be committed any more). */
static bool load(rg_likes_job_t *job, rg_ctx_t *ctx, struct wstate *w,
                 size_t n)
{
    unsigned worker = rg_ctx_worker(ctx);
    char err[512];
    unsigned wait = 10;
    for (;;) {
        if (w->reader == NULL) {
            w->reader = job->sink.reader_open(job->sink.self, err,
                                              sizeof(err));
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
            fprintf(stderr, "railgun: likes: worker %u: %s\n", worker, err);
            return false;
        }
    failed:
        if (rg_engine_error(rg_ctx_engine(ctx)) != NULL)
            return false;
        if (atomic_load_explicit(&w->retries, memory_order_relaxed) % 100 ==
            0)
            fprintf(stderr, "railgun: likes: worker %u: lookup failed, "
                    "retrying: %s\n", worker, err);
        bump(&w->retries, 1);
        nap_ms(wait);
        wait = wait * 2 > 1000 ? 1000 : wait * 2;
    }
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
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        struct like_ev *le = (struct like_ev *)evs[i].data.bytes;
        if (cache_find(w, le->video, le->user) != NULL)
            continue;
        bool dup = false;
        for (size_t k = 0; k < m && !dup; k++)
            dup = w->miss[k].key == le->video && w->miss[k].key2 == le->user;
        if (dup)
            continue;
        if (m == w->miss_cap) {
            size_t cap = w->miss_cap ? w->miss_cap * 2 : 64;
            rg_row_t *r = realloc(w->miss, sizeof(*r) * cap);
            if (r == NULL)
                abort(); /* a worker cannot go on without its state */
            w->miss = r;
            w->miss_cap = cap;
        }
        w->miss[m++] = (rg_row_t){le->video, le->user, -1, 0};
    }
    if (m == 0)
        return;
    bool ok = !job->has_reader || load(job, ctx, w, m);
    for (size_t k = 0; k < m; k++) {
        if (!ok)
            break;
        uint8_t state = w->miss[k].value == 1 ? 1 : 0;
        if (cache_insert(job, w, w->miss[k].key, w->miss[k].key2, state) ==
            NULL)
            abort();
    }
    if (!ok)
        for (size_t i = 0; i < n; i++)
            ((struct like_ev *)evs[i].data.bytes)->skip = 1;
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
        if (le->skip)
            continue;
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
    job->ws = calloc(workers, sizeof(*job->ws));
    if (job->ws == NULL) {
        free(job);
        return NULL;
    }
    for (unsigned i = 0; i < workers; i++) {
        job->ws[i].mask = 1024 - 1;
        job->ws[i].evict_at = job->cache_max;
        job->ws[i].tab = calloc(1024, sizeof(struct centry));
        if (job->ws[i].tab == NULL) {
            rg_likes_job_destroy(job);
            return NULL;
        }
    }
    return job;
}

void rg_likes_job_processor(rg_likes_job_t *job, rg_processor_t *out)
{
    *out = (rg_processor_t){.unpack = likes_unpack,
                            .pre_do = likes_pre_do,
                            .batch_do = likes_batch_do,
                            .opaque = job};
}

void rg_likes_job_stats(rg_likes_job_t *job, rg_likes_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    /* relaxed everywhere: counters */
    out->decoded = atomic_load_explicit(&job->decoded, memory_order_relaxed);
    out->undecodable = atomic_load_explicit(&job->undecodable,
                                            memory_order_relaxed);
    for (int r = 0; r < RG_LIKE_E__COUNT; r++)
        out->by_reason[r] = atomic_load_explicit(&job->by_reason[r],
                                                 memory_order_relaxed);
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
        }
    free(job->ws);
    free(job);
}
