/*
 * serve.c - the like service's HTTP front (serve.h): routes, request
 * parsing, the write paths (producer or per-like transactions) and the
 * cache-aside read path.
 *
 * Slots: every handler takes one slot for the length of its request: a
 * database reader, a Redis handle, the sync writer and scratch sized by
 * serve.batch.max / serve.read.max. There is one slot per HTTP thread and
 * a handler runs on an HTTP thread, so a slot is always free; the pool's
 * mutex only hands them out. Nothing in a slot is shared.
 *
 * Counters are relaxed atomics (statistics: read by /metrics and
 * rg_serve_stats() on other threads; nothing is published through them).
 */
#define _GNU_SOURCE
#include "serve.h"
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "like_codec.h"
#include "naive.h"
#include "railgun/error.h"
#include "railgun/http.h"
#include "railgun/metrics.h"
#include "railgun/producer.h"
#include "serve_db.h"

#define NESTING_MAX 64     /* nesting inside one like object of a batch */
#define KEY_MAX 24

/* A growable output buffer. */
struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

__attribute__((format(printf, 2, 3))) static void bprintf(struct buf *b,
                                                         const char *fmt,
                                                         ...)
{
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)w < room) {
            b->len += (size_t)w;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc - b->len <= (size_t)w)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

/* serve's metric families (collect(), metrics_init()) */
enum {
    F_REQUESTS, F_ACCEPTED, F_APPLIED, F_REJECTED, F_BUSY, F_DELIVERED,
    F_DELIVERY_FAILED, F_READS, F_DB_READS, F_DB_ERRORS, F_CACHE, F_FILLS,
    /* the producer's degraded mode (async only): gauges, then counters */
    F_P_ACTIVE, F_P_PENDING, F_P_BYTES, F_P_DEGRADED, F_P_SPOOLED,
    F_P_REPLAYED,
    F__COUNT
};

struct slot {
    struct slot *next_free;
    rg_serve_db_t *db;
    rg_cache_redis_t *cache; /* NULL when not caching */
    rg_naive_t *naive;       /* mode sync */
    /* writes: serve.batch.max of each */
    rg_like_t *likes;
    char (*keys)[KEY_MAX];
    char (*vals)[RG_LIKE_JSON_MAX];
    /* reads: serve.read.max of each */
    rg_cache_key_t *rkeys;
    int64_t *rvals, *rids, *rout;
    bool *rhit;
    size_t *rmiss;
    struct buf out;
};

struct rg_serve_s {
    rg_conf_t *conf;
    rg_http_t *http;
    rg_metrics_t *metrics;
    rg_producer_t *producer;
    bool sync, caching, started;
    size_t batch_max, read_max;
    int64_t sync_retries;

    struct slot *slots;
    size_t nslots;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct slot *free_slots;

    pthread_t poll_th;
    bool poll_started;
    _Atomic bool stop;

    _Atomic uint64_t requests, accepted, applied, rejected, busy, delivered,
        delivery_failed, retries, reads, db_reads, db_errors;
    rg_metric_family_t *f[F__COUNT];
};

static void add(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *c)
{
    /* relaxed: a statistic */
    return atomic_load_explicit(c, memory_order_relaxed);
}

static struct slot *slot_take(rg_serve_t *s)
{
    pthread_mutex_lock(&s->pool_mu);
    while (s->free_slots == NULL)
        pthread_cond_wait(&s->pool_cv, &s->pool_mu);
    struct slot *sl = s->free_slots;
    s->free_slots = sl->next_free;
    pthread_mutex_unlock(&s->pool_mu);
    sl->out.len = 0;
    sl->out.oom = false;
    return sl;
}

static void slot_give(rg_serve_t *s, struct slot *sl)
{
    /* keep a large reply's buffer from pinning memory per slot */
    if (sl->out.cap > (1u << 20)) {
        free(sl->out.p);
        sl->out = (struct buf){0};
    }
    pthread_mutex_lock(&s->pool_mu);
    sl->next_free = s->free_slots;
    s->free_slots = sl;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

/* One-line text replies (the listener's own errors look the same). */
__attribute__((format(printf, 3, 4))) static void
fail(rg_http_request_t *req, int status, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    rg_http_reply(req, status, "text/plain; charset=utf-8", line,
                  (size_t)n);
}

static void reply_json(rg_http_request_t *req, int status, struct buf *b,
                       const char *xcache)
{
    if (b->oom) {
        fail(req, 500, "out of memory building the reply");
        return;
    }
    rg_http_reply(req, status, "application/json", b->p, b->len);
    if (xcache != NULL)
        rg_http_reply_header(req, "X-Cache", xcache);
}

/* A strict id: 1..2^63-1 in plain decimal (no sign, no leading zero,
 * no blanks), exactly len bytes. */
static bool parse_id(const char *p, size_t len, int64_t *out)
{
    if (len == 0 || len > 19 || p[0] == '0')
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- writes -------------------------------------------------------------- */

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/*
 * The extent of the object at p (a batch element): the matching '}',
 * aware of strings and escapes. NULL when it does not close or nests
 * deeper than NESTING_MAX. The element's own decoder then checks it
 * strictly; this only finds where it ends.
 */
static const char *object_end(const char *p, const char *end)
{
    int depth = 0;
    for (; p < end; p++) {
        char ch = *p;
        if (ch == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            if (p >= end)
                return NULL;
        } else if (ch == '{' || ch == '[') {
            if (++depth > NESTING_MAX)
                return NULL;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return p + 1;
            if (depth < 0)
                return NULL;
        }
    }
    return NULL;
}

/* Decodes one like (a JSON object or the binary form) into *like. */
static bool decode_one(rg_http_request_t *req, const char *v, size_t len,
                       long idx, rg_like_t *like)
{
    rg_like_err_t e = rg_like_decode_unkeyed(v, len, 0, like);
    if (e == RG_LIKE_E_NONE)
        return true;
    if (idx < 0)
        fail(req, 400, "bad like: %s", rg_like_err_msg(e));
    else
        fail(req, 400, "bad like at likes[%ld]: %s", idx, rg_like_err_msg(e));
    return false;
}

/* Parses the body into sl->likes; returns how many, or 0 after replying. */
static size_t parse_likes(rg_serve_t *s, struct slot *sl,
                          rg_http_request_t *req)
{
    size_t len;
    const char *body = rg_http_body(req, &len);
    const char *end = body + len, *p = ws(body, end);
    if (p == end) {
        fail(req, 400, "empty body: expected a like {\"video_id\":V,"
                       "\"user_id\":U,\"state\":0|1} or an array of them");
        return 0;
    }
    if (*p != '[')
        return decode_one(req, body, len, -1, &sl->likes[0]) ? 1 : 0;
    size_t n = 0;
    p = ws(p + 1, end);
    if (p < end && *p == ']') {
        fail(req, 400, "empty batch: no likes in the array");
        return 0;
    }
    for (;;) {
        if (p == end || *p != '{') {
            fail(req, 400, "bad like at likes[%zu]: %s", n,
                 p == end ? "the array does not close"
                          : rg_like_err_msg(RG_LIKE_E_NOT_OBJECT));
            return 0;
        }
        const char *oe = object_end(p, end);
        if (oe == NULL) {
            fail(req, 400, "bad like at likes[%zu]: %s", n,
                 rg_like_err_msg(RG_LIKE_E_BAD_JSON));
            return 0;
        }
        if (n == s->batch_max) {
            fail(req, 413, "batch larger than serve.batch.max (%zu likes)",
                 s->batch_max);
            return 0;
        }
        if (!decode_one(req, p, (size_t)(oe - p), (long)n, &sl->likes[n]))
            return 0;
        n++;
        p = ws(oe, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            p = ws(p + 1, end);
            if (p != end) {
                fail(req, 400, "bytes after the batch's closing ]");
                return 0;
            }
            return n;
        }
        if (p == end)
            fail(req, 400, "bad batch: the array does not close after "
                 "likes[%zu]", n - 1);
        else
            fail(req, 400, "malformed batch after likes[%zu]: expected , "
                 "or ]", n - 1);
        return 0;
    }
}

/* The canonical message of like i: key (the video id) and the JSON the
 * encoder writes, which the job's decoder takes on its fast path. */
static void encode(struct slot *sl, size_t i, int64_t ts, size_t *klen,
                   size_t *vlen)
{
    rg_like_t *l = &sl->likes[i];
    if (l->ts < 0)
        l->ts = ts;
    *klen = rg_like_encode_key(l->video_id, sl->keys[i]);
    *vlen = rg_like_encode_json(l, sl->vals[i]);
#ifdef RG_DEBUG
    rg_like_t back;
    rg_like_err_t e = rg_like_decode(sl->keys[i], *klen, sl->vals[i], *vlen,
                                     0, &back);
    if (e != RG_LIKE_E_NONE || back.video_id != l->video_id ||
        back.user_id != l->user_id || back.state != l->state ||
        back.ts != l->ts)
        abort();
#endif
}

static void post_async(rg_serve_t *s, struct slot *sl, rg_http_request_t *req,
                       size_t n)
{
    int64_t ts = now_ms();
    size_t taken = 0;
    int rc = 0;
    for (; taken < n; taken++) {
        size_t klen, vlen;
        encode(sl, taken, ts, &klen, &vlen);
        rc = rg_producer_send_bytes(s->producer, sl->keys[taken], klen,
                                    sl->vals[taken], vlen, NULL);
        if (rc != 0)
            break;
    }
    add(&s->accepted, taken);
    if (taken == n) {
        bprintf(&sl->out, "{\"accepted\":%zu}", n);
        reply_json(req, 202, &sl->out, NULL);
        return;
    }
    add(&s->busy, 1);
    char acc[24];
    snprintf(acc, sizeof(acc), "%zu", taken);
    if (rc == RG_EFULL) {
        fail(req, 503, "producer queue full: %zu of %zu likes accepted "
             "(the first ones); send the rest again", taken, n);
        rg_http_reply_header(req, "Retry-After", "1");
    } else {
        fail(req, 503, "producer: %s (%zu of %zu likes accepted)",
             rg_producer_last_error(), taken, n);
    }
    rg_http_reply_header(req, "X-Accepted", acc);
}

static void post_sync(rg_serve_t *s, struct slot *sl, rg_http_request_t *req,
                      size_t n)
{
    int64_t ts = now_ms();
    char err[512];
    for (size_t i = 0; i < n; i++) {
        rg_like_t *l = &sl->likes[i];
        int64_t t = l->ts >= 0 ? l->ts : ts;
        int64_t tries = 0;
        while (rg_naive_apply(sl->naive, (int64_t)l->video_id,
                              (int64_t)l->user_id, l->state, t, err,
                              sizeof(err)) != 0) {
            if (!rg_naive_retriable(sl->naive) || tries++ >= s->sync_retries) {
                add(&s->applied, i);
                add(&s->busy, 1);
                fail(req, 503, "database: %s (%zu of %zu likes applied)", err,
                     i, n);
                return;
            }
            add(&s->retries, 1);
        }
    }
    add(&s->applied, n);
    bprintf(&sl->out, "{\"applied\":%zu}", n);
    reply_json(req, 200, &sl->out, NULL);
}

static void on_post_likes(rg_http_request_t *req, void *opaque)
{
    rg_serve_t *s = opaque;
    add(&s->requests, 1);
    struct slot *sl = slot_take(s);
    size_t n = parse_likes(s, sl, req);
    if (n == 0)
        add(&s->rejected, 1);
    else if (s->sync)
        post_sync(s, sl, req, n);
    else
        post_async(s, sl, req, n);
    slot_give(s, sl);
}

/* ---- reads --------------------------------------------------------------- */

/*
 * The values of sl->rkeys[0..n) (kind) into sl->rout: Redis first, the
 * database for the misses (chunks of RG_SERVE_DB_CHUNK, each one snapshot
 * and one fill). 0, or after replying 503 -1. *xcache says where they
 * came from.
 */
static int read_values(rg_serve_t *s, struct slot *sl, rg_http_request_t *req,
                       rg_cache_kind_t kind, size_t n, const char **xcache)
{
    size_t nmiss = 0;
    bool redis_ok = false;
    add(&s->reads, n);
    if (sl->cache != NULL &&
        rg_cache_redis_get(sl->cache, kind, sl->rkeys, n, sl->rvals,
                           sl->rhit) == 0) {
        redis_ok = true;
        for (size_t i = 0; i < n; i++) {
            if (sl->rhit[i])
                sl->rout[i] = sl->rvals[i];
            else
                sl->rmiss[nmiss++] = i;
        }
        *xcache = nmiss == 0 ? "hit" : "miss";
    } else {
        for (size_t i = 0; i < n; i++)
            sl->rmiss[nmiss++] = i;
        *xcache = sl->cache != NULL ? "down" : "off";
    }
    add(&s->db_reads, nmiss);
    for (size_t at = 0; at < nmiss; at += RG_SERVE_DB_CHUNK) {
        size_t k = nmiss - at < RG_SERVE_DB_CHUNK ? nmiss - at
                                                  : RG_SERVE_DB_CHUNK;
        rg_cache_key_t keys[RG_SERVE_DB_CHUNK];
        int64_t vals[RG_SERVE_DB_CHUNK], ids[RG_SERVE_DB_CHUNK], version;
        for (size_t i = 0; i < k; i++) {
            keys[i] = sl->rkeys[sl->rmiss[at + i]];
            ids[i] = keys[i].video;
        }
        char err[512];
        int rc = kind == RG_CACHE_COUNT
                     ? rg_serve_db_counts(sl->db, ids, k, vals, &version, err,
                                          sizeof(err))
                     : rg_serve_db_states(sl->db, keys, k, vals, &version,
                                          err, sizeof(err));
        if (rc != 0) {
            add(&s->db_errors, 1);
            add(&s->busy, 1);
            fail(req, 503, "database: %s", err);
            return -1;
        }
        for (size_t i = 0; i < k; i++)
            sl->rout[sl->rmiss[at + i]] = vals[i];
        if (redis_ok)
            redis_ok = rg_cache_redis_fill(sl->cache, kind, version, keys,
                                           vals, k) >= 0;
    }
    return 0;
}

/* GET /v1/videos/V/likes and /v1/videos/V/likes/U */
static void on_video(rg_http_request_t *req, void *opaque)
{
    rg_serve_t *s = opaque;
    add(&s->requests, 1);
    const char *path = rg_http_path(req) + strlen("/v1/videos/");
    const char *slash = strchr(path, '/');
    int64_t video, user = 0;
    if (slash == NULL || strncmp(slash, "/likes", 6) != 0 ||
        (slash[6] != '\0' && slash[6] != '/')) {
        fail(req, 404, "no such resource: expected /v1/videos/ID/likes or "
                       "/v1/videos/ID/likes/USER_ID");
        return;
    }
    if (!parse_id(path, (size_t)(slash - path), &video)) {
        fail(req, 400, "video id \"%.*s\" is not an id in 1..2^63-1",
             (int)(slash - path > 40 ? 40 : slash - path), path);
        return;
    }
    bool state = slash[6] == '/';
    if (state && !parse_id(slash + 7, strlen(slash + 7), &user)) {
        fail(req, 400, "user id \"%.40s\" is not an id in 1..2^63-1",
             slash + 7);
        return;
    }
    struct slot *sl = slot_take(s);
    sl->rkeys[0] = (rg_cache_key_t){video, user};
    const char *xc = "off";
    if (read_values(s, sl, req, state ? RG_CACHE_STATE : RG_CACHE_COUNT, 1,
                    &xc) == 0) {
        if (state)
            bprintf(&sl->out, "{\"video_id\":%" PRId64 ",\"user_id\":%" PRId64
                    ",\"state\":%" PRId64 "}", video, user, sl->rout[0]);
        else
            bprintf(&sl->out, "{\"video_id\":%" PRId64 ",\"count\":%" PRId64
                    "}", video, sl->rout[0]);
        reply_json(req, 200, &sl->out, xc);
    }
    slot_give(s, sl);
}

/* GET /v1/likes?video_ids=1,2,3[&user_id=U] */
static void on_many(rg_http_request_t *req, void *opaque)
{
    rg_serve_t *s = opaque;
    add(&s->requests, 1);
    const char *ids = rg_http_query(req, "video_ids");
    const char *u = rg_http_query(req, "user_id");
    int64_t user = 0;
    if (ids == NULL || ids[0] == '\0') {
        fail(req, 400, "video_ids missing: GET /v1/likes?video_ids=1,2,3"
                       "[&user_id=U]");
        return;
    }
    if (u != NULL && !parse_id(u, strlen(u), &user)) {
        fail(req, 400, "user_id \"%.40s\" is not an id in 1..2^63-1", u);
        return;
    }
    struct slot *sl = slot_take(s);
    size_t n = 0;
    for (const char *p = ids;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == s->read_max) {
            fail(req, 413, "more than serve.read.max (%zu) video ids",
                 s->read_max);
            goto out;
        }
        if (!parse_id(p, len, &sl->rids[n])) {
            fail(req, 400, "video_ids: \"%.*s\" is not an id in 1..2^63-1",
                 (int)(len > 40 ? 40 : len), p);
            goto out;
        }
        n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    for (size_t i = 0; i < n; i++)
        sl->rkeys[i] = (rg_cache_key_t){sl->rids[i], 0};
    const char *xc = "off", *xs = "off";
    if (read_values(s, sl, req, RG_CACHE_COUNT, n, &xc) != 0)
        goto out;
    bprintf(&sl->out, "{\"videos\":[");
    if (u == NULL) {
        for (size_t i = 0; i < n; i++)
            bprintf(&sl->out, "%s{\"video_id\":%" PRId64 ",\"count\":%" PRId64
                    "}", i ? "," : "", sl->rids[i], sl->rout[i]);
    } else {
        /* keep the counts while the states are read */
        int64_t *counts = malloc(n * sizeof(*counts));
        if (counts == NULL) {
            fail(req, 500, "out of memory");
            goto out;
        }
        memcpy(counts, sl->rout, n * sizeof(*counts));
        for (size_t i = 0; i < n; i++)
            sl->rkeys[i] = (rg_cache_key_t){sl->rids[i], user};
        if (read_values(s, sl, req, RG_CACHE_STATE, n, &xs) != 0) {
            free(counts);
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            bprintf(&sl->out, "%s{\"video_id\":%" PRId64 ",\"count\":%" PRId64
                    ",\"state\":%" PRId64 "}", i ? "," : "", sl->rids[i],
                    counts[i], sl->rout[i]);
        free(counts);
        if (strcmp(xs, "hit") != 0)
            xc = xs;
    }
    bprintf(&sl->out, "]}");
    reply_json(req, 200, &sl->out, xc);
out:
    slot_give(s, sl);
}

static void on_page(rg_http_request_t *req, void *opaque)
{
    (void)opaque;
    rg_http_reply(req, 200, "text/html; charset=utf-8", rg_serve_page,
                  rg_serve_page_len);
    rg_http_reply_header(req, "Cache-Control", "no-cache");
}

/* ---- metrics --------------------------------------------------------------- */


static void collect(rg_metrics_scrape_t *sc, void *opaque)
{
    rg_serve_t *s = opaque;
    rg_serve_stats_t st;
    rg_serve_stats(s, &st);
    rg_metrics_collect_u64(sc, s->f[F_REQUESTS], NULL, st.requests);
    rg_metrics_collect_u64(sc, s->f[F_ACCEPTED], NULL, st.likes_accepted);
    rg_metrics_collect_u64(sc, s->f[F_APPLIED], NULL, st.likes_applied);
    rg_metrics_collect_u64(sc, s->f[F_REJECTED], NULL, st.likes_rejected);
    rg_metrics_collect_u64(sc, s->f[F_BUSY], NULL, st.busy);
    rg_metrics_collect_u64(sc, s->f[F_DELIVERED], NULL, st.delivered);
    rg_metrics_collect_u64(sc, s->f[F_DELIVERY_FAILED], NULL,
                           st.delivery_failed);
    rg_metrics_collect_u64(sc, s->f[F_READS], NULL, st.reads);
    rg_metrics_collect_u64(sc, s->f[F_DB_READS], NULL, st.db_reads);
    rg_metrics_collect_u64(sc, s->f[F_DB_ERRORS], NULL, st.db_errors);
    rg_metrics_collect_u64(sc, s->f[F_CACHE], (const char *[]){"hit"},
                           st.cache.hits);
    rg_metrics_collect_u64(sc, s->f[F_CACHE], (const char *[]){"miss"},
                           st.cache.misses);
    rg_metrics_collect_u64(sc, s->f[F_FILLS], (const char *[]){"stored"},
                           st.cache.fills);
    rg_metrics_collect_u64(sc, s->f[F_FILLS], (const char *[]){"refused"},
                           st.cache.fills_refused);
    if (s->producer != NULL) {
        rg_producer_stats_t ps;
        rg_producer_stats(s->producer, &ps);
        rg_metrics_collect_u64(sc, s->f[F_P_ACTIVE], NULL,
                               ps.mode != RG_PRODUCER_DIRECT);
        rg_metrics_collect_u64(sc, s->f[F_P_PENDING], NULL, ps.spool_pending);
        rg_metrics_collect_u64(sc, s->f[F_P_BYTES], NULL, ps.spool_bytes);
        rg_metrics_collect_u64(sc, s->f[F_P_DEGRADED], NULL, ps.degraded);
        rg_metrics_collect_u64(sc, s->f[F_P_SPOOLED], NULL, ps.spooled);
        rg_metrics_collect_u64(sc, s->f[F_P_REPLAYED], NULL, ps.replayed);
    }
}

static int metrics_init(rg_serve_t *s, char *errstr, size_t size)
{
    static const struct {
        const char *name, *help, *label;
    } d[F__COUNT] = {
        {"serve_requests", "API requests answered.", NULL},
        {"serve_likes_accepted", "Likes the producer accepted (async).",
         NULL},
        {"serve_likes_applied", "Likes committed one by one (sync).", NULL},
        {"serve_likes_rejected", "POSTs refused as bad input (400).", NULL},
        {"serve_busy", "Requests answered 503 (producer full, database "
                       "down).", NULL},
        {"serve_delivered", "Likes delivered to Kafka.", NULL},
        {"serve_delivery_failed", "Likes accepted but not delivered.", NULL},
        {"serve_reads", "Values read (counts and states).", NULL},
        {"serve_db_reads", "Values read from the database.", NULL},
        {"serve_db_errors", "Failed database reads.", NULL},
        {"serve_cache_lookups", "Cache lookups by result.", "result"},
        {"serve_cache_fills", "Cache fills by result.", "result"},
        {"producer_fallback_active", "1 while the producer is in degraded "
         "mode (Kafka down for it: sends go to the spool) or drains its "
         "spool into Kafka.", NULL},
        {"producer_spooled_events", "Messages in the spool not replayed "
         "to Kafka yet.", NULL},
        {"producer_spool", "Bytes the spool holds (headers included).",
         NULL},
        {"producer_degraded", "Times the producer entered degraded mode.",
         NULL},
        {"producer_spooled", "Messages appended to the spool (degraded "
         "sends and messages librdkafka gave up on).", NULL},
        {"producer_replayed", "Spooled messages delivered to Kafka since.",
         NULL},
    };
    if ((s->metrics = rg_metrics_new(NULL)) == NULL) {
        snprintf(errstr, size, "serve: out of memory");
        return RG_ENOMEM;
    }
    for (int i = 0; i < F__COUNT; i++) {
        const char *labels[1] = {d[i].label};
        if (i >= F_P_ACTIVE && s->producer == NULL) {
            s->f[i] = NULL; /* sync mode: no producer */
            continue;
        }
        bool gauge = i >= F_P_ACTIVE && i <= F_P_BYTES;
        s->f[i] = rg_metrics_family_new(
            s->metrics,
            &(rg_metric_desc_t){.kind = gauge ? RG_METRIC_GAUGE
                                              : RG_METRIC_COUNTER,
                                .name = d[i].name,
                                .unit = i == F_P_BYTES ? "bytes" : NULL,
                                .help = d[i].help,
                                .labels = d[i].label ? labels : NULL,
                                .nlabels = d[i].label ? 1 : 0,
                                .collected = true},
            errstr, size);
        if (s->f[i] == NULL)
            return RG_EINVAL;
    }
    return rg_metrics_collector_add(s->metrics, collect, s);
}

/* ---- lifecycle ------------------------------------------------------------- */

static void on_delivery(void *opaque, const rg_delivery_t *d)
{
    rg_serve_t *s = opaque;
    add(d->err == 0 ? &s->delivered : &s->delivery_failed, 1);
}

static void *poll_main(void *arg)
{
    rg_serve_t *s = arg;
    /* relaxed: a stop flag; the join orders everything after it */
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed))
        rg_producer_poll(s->producer, 100);
    return NULL;
}

static bool ready(void *opaque, char *reason, size_t size)
{
    rg_serve_t *s = opaque;
    if (s->started)
        return true;
    snprintf(reason, size, "starting");
    return false;
}

static void http_log(void *opaque, const char *line)
{
    rg_conf_log(opaque, RG_LOG_WARN, "http", "%s", line);
}

static void slot_fini(struct slot *sl)
{
    rg_serve_db_close(sl->db);
    rg_cache_redis_destroy(sl->cache);
    rg_naive_close(sl->naive);
    free(sl->likes);
    free(sl->keys);
    free(sl->vals);
    free(sl->rkeys);
    free(sl->rvals);
    free(sl->rids);
    free(sl->rout);
    free(sl->rhit);
    free(sl->rmiss);
    free(sl->out.p);
}

static int slot_init(rg_serve_t *s, struct slot *sl, char *errstr,
                     size_t size)
{
    int rc = 0;
    char err[512];
    size_t b = s->batch_max, r = s->read_max;
    sl->likes = calloc(b, sizeof(*sl->likes));
    sl->keys = calloc(b, sizeof(*sl->keys));
    sl->vals = calloc(b, sizeof(*sl->vals));
    sl->rkeys = calloc(r, sizeof(*sl->rkeys));
    sl->rvals = calloc(r, sizeof(*sl->rvals));
    sl->rids = calloc(r, sizeof(*sl->rids));
    sl->rout = calloc(r, sizeof(*sl->rout));
    sl->rhit = calloc(r, sizeof(*sl->rhit));
    sl->rmiss = calloc(r, sizeof(*sl->rmiss));
    if (!sl->likes || !sl->keys || !sl->vals || !sl->rkeys || !sl->rvals ||
        !sl->rids || !sl->rout || !sl->rhit || !sl->rmiss) {
        snprintf(errstr, size, "serve: out of memory");
        return RG_ENOMEM;
    }
    if ((sl->db = rg_serve_db_open(s->conf, s->caching, &rc, err,
                                   sizeof(err))) == NULL) {
        snprintf(errstr, size, "%s", err);
        return rc;
    }
    if (s->caching) {
        rg_cache_redis_options_t o;
        rg_serve_cache_options(s->conf, &o);
        if ((sl->cache = rg_cache_redis_new(&o, errstr, size)) == NULL)
            return RG_EINVAL;
    }
    if (s->sync && (sl->naive = rg_naive_open(s->conf, errstr, size)) == NULL)
        return RG_EIO;
    return 0;
}

/* Which read mode: fails on missing tables, warns (and reads the database
 * only) on a missing version table. */
static int probe_db(rg_serve_t *s, char *errstr, size_t size)
{
    int rc = 0;
    char err[512];
    rg_serve_db_t *d = rg_serve_db_open(s->conf, false, &rc, err,
                                        sizeof(err));
    if (d == NULL) {
        snprintf(errstr, size, "%s%s", err,
                 rc == RG_ENOENT ? " (create the tables: railgun run "
                                   "--init-schema, or serve --init-schema)"
                                 : "");
        return rc;
    }
    rg_serve_db_close(d);
    if (!s->caching)
        return 0;
    if ((d = rg_serve_db_open(s->conf, true, &rc, err, sizeof(err))) ==
        NULL) {
        if (rc != RG_ENOENT) {
            snprintf(errstr, size, "%s", err);
            return rc;
        }
        rg_conf_log(s->conf, RG_LOG_WARN, "serve",
                    "no cache: table %s is missing (the job does not "
                    "version its epochs), so reads go to the database: %s",
                    rg_conf_get_str(s->conf, "cache.version.table"), err);
        s->caching = false;
        return 0;
    }
    rg_serve_db_close(d);
    return 0;
}

void rg_serve_destroy(rg_serve_t *s)
{
    if (s == NULL)
        return;
    rg_http_destroy(s->http);
    if (s->poll_started) {
        /* relaxed: the join below is the synchronization */
        atomic_store_explicit(&s->stop, true, memory_order_relaxed);
        pthread_join(s->poll_th, NULL);
    }
    rg_producer_destroy(s->producer);
    for (size_t i = 0; s->slots != NULL && i < s->nslots; i++)
        slot_fini(&s->slots[i]);
    free(s->slots);
    rg_metrics_destroy(s->metrics);
    rg_conf_destroy(s->conf);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->pool_mu);
    free(s);
}

rg_serve_t *rg_serve_new(const rg_conf_t *conf, int *err, char *errstr,
                         size_t size)
{
    int rc = RG_ENOMEM;
    rg_serve_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(errstr, size, "serve: out of memory");
        goto fail0;
    }
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    if ((s->conf = rg_conf_dup(conf)) == NULL ||
        (rc = rg_conf_add_table(s->conf, rg_serve_conf_table(), errstr,
                                size)) != 0) {
        if (s->conf == NULL)
            snprintf(errstr, size, "serve: out of memory");
        rc = s->conf == NULL ? RG_ENOMEM : rc;
        goto fail;
    }
    s->sync = strcmp(rg_conf_get_str(s->conf, "serve.mode"), "sync") == 0;
    s->caching = rg_conf_get_int(s->conf, "serve.cache") != 0;
    if (s->sync && s->caching) {
        if (rg_conf_is_set(s->conf, "serve.cache")) {
            snprintf(errstr, size, "serve.cache=true: serve.mode=sync "
                     "writes the database without cache versions, so its "
                     "reads cannot use the cache (set serve.cache=false)");
            rc = RG_EINVAL;
            goto fail;
        }
        s->caching = false;
    }
    s->batch_max = (size_t)rg_conf_get_int(s->conf, "serve.batch.max");
    s->read_max = (size_t)rg_conf_get_int(s->conf, "serve.read.max");
    s->sync_retries = rg_conf_get_int(s->conf, "serve.sync.retries");
    if ((rc = probe_db(s, errstr, size)) != 0)
        goto fail;

    unsigned threads = (unsigned)rg_conf_get_int(s->conf, "serve.threads");
    s->nslots = threads;
    if ((s->slots = calloc(s->nslots, sizeof(*s->slots))) == NULL) {
        rc = RG_ENOMEM;
        snprintf(errstr, size, "serve: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->nslots; i++) {
        if ((rc = slot_init(s, &s->slots[i], errstr, size)) != 0)
            goto fail;
        s->slots[i].next_free = s->free_slots;
        s->free_slots = &s->slots[i];
    }
    if (!s->sync) {
        rg_conf_t *pc = rg_conf_dup(s->conf);
        char e2[512];
        if (pc == NULL) {
            rc = RG_ENOMEM;
            goto fail;
        }
        /* one video's likes stay in order through retries */
        if (!rg_conf_is_set(pc, "kafka.enable.idempotence"))
            rg_conf_set(pc, "kafka.enable.idempotence", "true", NULL, 0);
        s->producer = rg_producer_new(pc, on_delivery, s, e2, sizeof(e2));
        rg_conf_destroy(pc);
        if (s->producer == NULL) {
            snprintf(errstr, size, "%s", e2);
            rc = RG_EINVAL;
            goto fail;
        }
    }
    if ((rc = metrics_init(s, errstr, size)) != 0)
        goto fail;

    rg_http_options_t ho;
    rg_http_options_init(&ho);
    int64_t tmo = rg_conf_get_int(s->conf, "serve.request.timeout.ms");
    ho.threads = threads;
    ho.max_connections =
        (unsigned)rg_conf_get_int(s->conf, "serve.max.connections");
    if (ho.max_connections < threads)
        ho.max_connections = threads;
    ho.body_max = (size_t)rg_conf_get_int(s->conf, "serve.body.max.bytes");
    ho.request_timeout_s = (unsigned)((tmo + 999) / 1000);
    ho.idle_timeout_s = ho.request_timeout_s;
    ho.log = http_log;
    ho.log_opaque = s->conf;
    const char *listen = rg_conf_get_str(s->conf, "serve.listen");
    if ((s->http = rg_http_new(listen, &ho, errstr, size)) == NULL) {
        rc = RG_EIO;
        goto fail;
    }
    if ((rc = rg_http_route(s->http, "POST", "/v1/likes", 0, on_post_likes,
                            s)) != 0 ||
        (rc = rg_http_route(s->http, "GET", "/v1/likes", 0, on_many, s)) !=
            0 ||
        (rc = rg_http_route(s->http, "GET", "/v1/videos/", RG_HTTP_PREFIX,
                            on_video, s)) != 0 ||
        (rc = rg_http_route(s->http, "GET", "/", 0, on_page, s)) != 0 ||
        (rc = rg_http_serve_metrics(s->http, s->metrics)) != 0 ||
        (rc = rg_http_serve_health(s->http, NULL, ready, s)) != 0) {
        snprintf(errstr, size, "serve: routes: %s", rg_strerror(rc));
        goto fail;
    }
    return s;
fail:
    rg_serve_destroy(s);
fail0:
    if (err != NULL)
        *err = rc;
    return NULL;
}

int rg_serve_start(rg_serve_t *s, char *errstr, size_t size)
{
    if (s->started)
        return RG_ESTATE;
    if (s->producer != NULL) {
        int rc = pthread_create(&s->poll_th, NULL, poll_main, s);
        if (rc != 0) {
            snprintf(errstr, size, "serve: no thread: %s", strerror(rc));
            return RG_ESYS;
        }
        s->poll_started = true;
    }
    int rc = rg_http_start(s->http, errstr, size);
    if (rc != 0)
        return rc;
    s->started = true;
    return 0;
}

uint16_t rg_serve_port(const rg_serve_t *s)
{
    return rg_http_port(s->http);
}

bool rg_serve_caching(const rg_serve_t *s)
{
    return s->caching;
}

void rg_serve_stats(rg_serve_t *s, rg_serve_stats_t *o)
{
    memset(o, 0, sizeof(*o));
    o->requests = get(&s->requests);
    o->likes_accepted = get(&s->accepted);
    o->likes_applied = get(&s->applied);
    o->likes_rejected = get(&s->rejected);
    o->busy = get(&s->busy);
    o->delivered = get(&s->delivered);
    o->delivery_failed = get(&s->delivery_failed);
    o->sync_retries = get(&s->retries);
    o->reads = get(&s->reads);
    o->db_reads = get(&s->db_reads);
    o->db_errors = get(&s->db_errors);
    o->cache.floor = -1;
    for (size_t i = 0; i < s->nslots; i++) {
        if (s->slots[i].cache == NULL)
            continue;
        rg_cache_redis_stats_t c;
        rg_cache_redis_stats(s->slots[i].cache, &c);
        o->cache.hits += c.hits;
        o->cache.misses += c.misses;
        o->cache.fills += c.fills;
        o->cache.fills_refused += c.fills_refused;
        o->cache.errors += c.errors;
        o->cache.connects += c.connects;
        o->cache.connected |= c.connected;
        if (c.last_error[0])
            memcpy(o->cache.last_error, c.last_error,
                   sizeof(o->cache.last_error));
    }
}
