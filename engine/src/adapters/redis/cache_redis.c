/*
 * cache_redis.c - the read side's versioned cache in Redis (see
 * railgun/redis_cache.h for the keys and the rules; NOTES-serve.md for
 * why they hold under every interleaving of fills, applies, expiry,
 * eviction and restarts).
 *
 * Every write is one of four Lua scripts, loaded on connect (SCRIPT LOAD)
 * and run with EVALSHA (loaded again once when the server answers
 * NOSCRIPT). A script runs atomically, so "compare the version, then set"
 * never interleaves with another client's write of the same key.
 *
 * One handle is one hiredis context, used by one thread at a time. Any
 * failed exchange closes it (a hiredis context is unusable after an I/O
 * error, and a timed-out reply may still arrive later); the next call
 * dials again once the backoff has passed. Counters are relaxed atomics so
 * rg_cache_redis_stats() may read them from another thread; last_error is
 * under a mutex.
 *
 * Bounds: at most CHUNK keys per command; the argument scratch grows to
 * the largest call (about CHUNK x 60 bytes) and is reused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "railgun/error.h"
#include "railgun/redis_cache.h"
#include "../../common/util.h"

#define CHUNK 256          /* keys per script call / MGET */
#define GET_MAX 4096       /* keys per rg_cache_redis_get() */
#define PREFIX_MAX 200
#define VERSION_MAX ((int64_t)1 << 53) /* Lua numbers are doubles */

/* ---- the scripts --------------------------------------------------------- */

/*
 * Entries are "VERSION:VALUE". In every script a missing or malformed
 * version reads as older than anything (it is replaced).
 */

/* fill: KEYS[1] floor, KEYS[2] applied, KEYS[3..] entries; ARGV[1] ttl
 * ms, ARGV[2] the version W the reader read, ARGV[3..] the values.
 * Returns the number stored, or -1 (no applied: no job keeps the cache),
 * -2 (W < applied: an epoch was written since the read), -3 (W < floor). */
static const char fill_lua[] =
    "local a = redis.call('GET', KEYS[2])\n"
    "if not a then return -1 end\n"
    "local w = tonumber(ARGV[2])\n"
    "if w < tonumber(a) then return -2 end\n"
    "if w < tonumber(redis.call('GET', KEYS[1]) or '0') then return -3 end\n"
    "local n = 0\n"
    "for i = 3, #KEYS do\n"
    "  local cur = redis.call('GET', KEYS[i])\n"
    "  local cv = cur and tonumber(string.match(cur, '^(%d+):'))\n"
    "  if not cv or cv < w then\n"
    "    redis.call('SET', KEYS[i], ARGV[2] .. ':' .. ARGV[i], 'PX', ARGV[1])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* begin: KEYS[1] floor, KEYS[2] applied, KEYS[3..] count entries; ARGV[1]
 * the epoch's version V. Raises applied to V, returns {floor, exists
 * of each entry}. */
static const char begin_lua[] =
    "local v = tonumber(ARGV[1])\n"
    "if v > tonumber(redis.call('GET', KEYS[2]) or '-1') then\n"
    "  redis.call('SET', KEYS[2], ARGV[1])\n"
    "end\n"
    "local out = { tonumber(redis.call('GET', KEYS[1]) or '0') }\n"
    "for i = 3, #KEYS do out[#out + 1] = redis.call('EXISTS', KEYS[i]) end\n"
    "return out\n";

/* apply: KEYS[1] floor, KEYS[2..] entries; ARGV[1] ttl ms, then for the
 * entry KEYS[i] its version ARGV[2i-2] and value ARGV[2i-1]. Rewrites an
 * entry that exists with an older version, when its version is not below
 * floor; returns how many it rewrote. */
static const char apply_lua[] =
    "local f = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local n = 0\n"
    "for i = 2, #KEYS do\n"
    "  local w = tonumber(ARGV[2 * i - 2])\n"
    "  if w >= f then\n"
    "    local cur = redis.call('GET', KEYS[i])\n"
    "    if cur then\n"
    "      local cv = tonumber(string.match(cur, '^(%d+):'))\n"
    "      if not cv or cv < w then\n"
    "        redis.call('SET', KEYS[i], ARGV[2 * i - 2] .. ':' ..\n"
    "                   ARGV[2 * i - 1], 'PX', ARGV[1])\n"
    "        n = n + 1\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return n\n";

/* resync: KEYS[1] floor, KEYS[2] applied; ARGV[1] the database's version
 * F. Raises both to F; returns floor. */
static const char resync_lua[] =
    "for i = 1, 2 do\n"
    "  if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[i]) or '-1') "
    "then\n"
    "    redis.call('SET', KEYS[i], ARGV[1])\n"
    "  end\n"
    "end\n"
    "return tonumber(redis.call('GET', KEYS[1]))\n";

enum script { S_FILL, S_BEGIN, S_APPLY, S_RESYNC, S__COUNT };

static const char *const script_src[S__COUNT] = {fill_lua, begin_lua,
                                                 apply_lua, resync_lua};

/* ---- the handle ---------------------------------------------------------- */

/* Arguments of one command, built in a reused buffer. */
struct args {
    char *buf;
    size_t len, cap;
    size_t *off, *lens;
    const char **ptr;
    size_t n, ncap;
};

struct rg_cache_redis_s {
    char *host, *socket, *user, *password, *prefix;
    int port;
    int64_t ttl_ms;
    unsigned timeout_ms, backoff_max_ms;
    struct timeval tv;

    redisContext *ctx;
    char sha[S__COUNT][41];
    bool synced;          /* updater: resynced on this connection */
    bool resync_wanted;   /* a failed or dropped apply since */
    int64_t retry_at_ns;  /* no dialing before this (backoff) */
    unsigned backoff_ms;
    unsigned fails;       /* failures since the last good connect */

    struct args a;
    /* apply's scratch */
    rg_cache_key_t *pkeys;
    int64_t *pvals, *pver;
    size_t pcap;
    int32_t *seen;        /* dedup of staged pairs: indices, -1 empty */
    size_t seen_cap;

    /* statistics (relaxed: read by rg_cache_redis_stats() only) */
    _Atomic uint64_t hits, misses, fills, fills_refused, applies, updated,
        superseded, skipped, resyncs, errors, connects;
    _Atomic int64_t floor;
    _Atomic bool connected;
    pthread_mutex_t mu; /* guards last_error */
    char last_error[160];
};

static void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: a statistic, nothing is published through it; fetch_add
     * because rg_cache_redis_stats() readers race with this writer only */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void rg_cache_redis_options_init(rg_cache_redis_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 6379;
    o->prefix = "railgun:cache:";
    o->ttl_ms = 60000;
    o->timeout_ms = 100;
    o->backoff_max_ms = 1000;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

void rg_cache_redis_destroy(rg_cache_redis_t *c)
{
    if (c == NULL)
        return;
    if (c->ctx != NULL)
        redisFree(c->ctx);
    free(c->host);
    free(c->socket);
    free(c->user);
    free(c->password);
    free(c->prefix);
    free(c->a.buf);
    free(c->a.off);
    free(c->a.lens);
    free(c->a.ptr);
    free(c->pkeys);
    free(c->pvals);
    free(c->pver);
    free(c->seen);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

rg_cache_redis_t *rg_cache_redis_new(const rg_cache_redis_options_t *o,
                                     char *errstr, size_t size)
{
    const char *prefix = o->prefix ? o->prefix : "";
    bool sock = o->socket != NULL && o->socket[0] != '\0';
    if (!sock && (o->host == NULL || o->host[0] == '\0')) {
        rg__seterr(errstr, size, "cache.redis: no address: set a host or a "
                                 "socket");
        return NULL;
    }
    if (!sock && (o->port < 1 || o->port > 65535)) {
        rg__seterr(errstr, size, "cache.redis: port %d is outside 1..65535",
                   o->port);
        return NULL;
    }
    if (o->ttl_ms < 1 || o->ttl_ms > INT32_MAX) {
        rg__seterr(errstr, size, "cache.redis: ttl %" PRId64 " ms is "
                   "outside 1..%d", o->ttl_ms, INT32_MAX);
        return NULL;
    }
    if (o->timeout_ms < 1 || o->timeout_ms > 60000 ||
        o->backoff_max_ms > 600000) {
        rg__seterr(errstr, size, "cache.redis: timeout %u ms must be in "
                   "1..60000 and the backoff at most 600000 ms",
                   o->timeout_ms);
        return NULL;
    }
    if (strlen(prefix) > PREFIX_MAX) {
        rg__seterr(errstr, size, "cache.redis: prefix longer than %d bytes",
                   PREFIX_MAX);
        return NULL;
    }
    if (o->user != NULL && o->user[0] != '\0' &&
        (o->password == NULL || o->password[0] == '\0')) {
        rg__seterr(errstr, size, "cache.redis: a user needs a password");
        return NULL;
    }
    rg_cache_redis_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        rg__seterr(errstr, size, "cache.redis: out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->host = dup_or_empty(o->host);
    c->socket = dup_or_empty(sock ? o->socket : "");
    c->user = dup_or_empty(o->user);
    c->password = dup_or_empty(o->password);
    c->prefix = dup_or_empty(prefix);
    if (!c->host || !c->socket || !c->user || !c->password || !c->prefix) {
        rg_cache_redis_destroy(c);
        rg__seterr(errstr, size, "cache.redis: out of memory");
        return NULL;
    }
    c->port = o->port;
    c->ttl_ms = o->ttl_ms;
    c->timeout_ms = o->timeout_ms;
    c->backoff_max_ms = o->backoff_max_ms < o->timeout_ms ? o->timeout_ms
                                                          : o->backoff_max_ms;
    c->backoff_ms = c->timeout_ms;
    c->tv.tv_sec = o->timeout_ms / 1000;
    c->tv.tv_usec = (o->timeout_ms % 1000) * 1000;
    atomic_init(&c->floor, -1);
    return c;
}

size_t rg_cache_redis_key(const rg_cache_redis_t *c, rg_cache_kind_t kind,
                          const rg_cache_key_t *k, char *buf, size_t size)
{
    int n = kind == RG_CACHE_STATE
                ? snprintf(buf, size, "%ss:%" PRId64 ":%" PRId64, c->prefix,
                           k->video, k->user)
                : snprintf(buf, size, "%sc:%" PRId64, c->prefix, k->video);
    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* ---- argument lists ------------------------------------------------------ */

static void args_reset(struct args *a)
{
    a->len = 0;
    a->n = 0;
}

/* Appends one argument (printf); false when out of memory. */
__attribute__((format(printf, 2, 3))) static bool
args_add(struct args *a, const char *fmt, ...)
{
    if (a->n == a->ncap) {
        size_t nc = a->ncap ? a->ncap * 2 : 64;
        size_t *off = realloc(a->off, nc * sizeof(*off));
        if (off == NULL)
            return false;
        a->off = off;
        size_t *lens = realloc(a->lens, nc * sizeof(*lens));
        if (lens == NULL)
            return false;
        a->lens = lens;
        const char **ptr = realloc(a->ptr, nc * sizeof(*ptr));
        if (ptr == NULL)
            return false;
        a->ptr = ptr;
        a->ncap = nc;
    }
    for (;;) {
        size_t room = a->cap - a->len;
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(a->buf ? a->buf + a->len : NULL, room, fmt, ap);
        va_end(ap);
        if (w < 0)
            return false;
        if ((size_t)w < room) {
            a->off[a->n] = a->len;
            a->lens[a->n] = (size_t)w;
            a->n++;
            a->len += (size_t)w + 1;
            return true;
        }
        size_t nc = a->cap ? a->cap * 2 : 4096;
        while (nc - a->len <= (size_t)w)
            nc *= 2;
        char *b = realloc(a->buf, nc);
        if (b == NULL)
            return false;
        a->buf = b;
        a->cap = nc;
    }
}

/* Pointers into the buffer, once it no longer moves. */
static const char **args_ptrs(struct args *a)
{
    for (size_t i = 0; i < a->n; i++)
        a->ptr[i] = a->buf + a->off[i];
    return a->ptr;
}

static bool add_key(rg_cache_redis_t *c, rg_cache_kind_t kind,
                    const rg_cache_key_t *k)
{
    if (kind == RG_CACHE_STATE)
        return args_add(&c->a, "%ss:%" PRId64 ":%" PRId64, c->prefix,
                        k->video, k->user);
    return args_add(&c->a, "%sc:%" PRId64, c->prefix, k->video);
}

/* ---- the connection ------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) static void
set_error(rg_cache_redis_t *c, const char *fmt, ...)
{
    pthread_mutex_lock(&c->mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->mu);
}

/* Closes the connection after a failure and starts the backoff. */
static int fail(rg_cache_redis_t *c)
{
    stat_add(&c->errors, 1);
    if (c->ctx != NULL) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
    c->synced = false;
    /* relaxed: a statistic */
    atomic_store_explicit(&c->connected, false, memory_order_relaxed);
    /* the first failure dials again at once (a killed connection, a
     * restarted server); then the backoff, doubling */
    if (c->fails++ == 0) {
        c->retry_at_ns = 0;
        return RG_EIO;
    }
    c->retry_at_ns = rg__now_ns() + (int64_t)c->backoff_ms * 1000000;
    c->backoff_ms = c->backoff_ms * 2 > c->backoff_max_ms
                        ? c->backoff_max_ms
                        : c->backoff_ms * 2;
    return RG_EIO;
}

static const char *where(const rg_cache_redis_t *c, char *buf, size_t size)
{
    if (c->socket[0])
        snprintf(buf, size, "%s", c->socket);
    else
        snprintf(buf, size, "%s:%d", c->host, c->port);
    return buf;
}

/* One command on the open connection; NULL after fail(). An error reply
 * is returned to the caller (it decides). */
static redisReply *command(rg_cache_redis_t *c, int argc, const char **argv,
                           const size_t *lens)
{
    redisReply *r = redisCommandArgv(c->ctx, argc, argv, lens);
    if (r == NULL) {
        char w[300];
        set_error(c, "redis %s: %s", where(c, w, sizeof(w)),
                  c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
        fail(c);
    }
    return r;
}

static int load_scripts(rg_cache_redis_t *c)
{
    for (int s = 0; s < S__COUNT; s++) {
        const char *argv[] = {"SCRIPT", "LOAD", script_src[s]};
        size_t lens[] = {6, 4, strlen(script_src[s])};
        redisReply *r = command(c, 3, argv, lens);
        if (r == NULL)
            return RG_EIO;
        bool ok = r->type == REDIS_REPLY_STRING && r->len == 40;
        if (ok)
            memcpy(c->sha[s], r->str, 41);
        else
            set_error(c, "redis: SCRIPT LOAD: %s",
                      r->type == REDIS_REPLY_ERROR ? r->str
                                                   : "unexpected reply");
        freeReplyObject(r);
        if (!ok)
            return fail(c);
    }
    return 0;
}

/* Dials when not connected and the backoff has passed. 0 or RG_EIO. */
static int ensure(rg_cache_redis_t *c)
{
    if (c->ctx != NULL)
        return 0;
    if (rg__now_ns() < c->retry_at_ns) {
        stat_add(&c->errors, 1);
        return RG_EIO; /* in backoff: last_error still says why */
    }
    char w[300];
    c->ctx = c->socket[0] ? redisConnectUnixWithTimeout(c->socket, c->tv)
                          : redisConnectWithTimeout(c->host, c->port, c->tv);
    if (c->ctx == NULL || c->ctx->err != 0 ||
        redisSetTimeout(c->ctx, c->tv) != REDIS_OK) {
        set_error(c, "redis %s: %s", where(c, w, sizeof(w)),
                  c->ctx ? c->ctx->errstr : "out of memory");
        return fail(c);
    }
    if (c->password[0]) {
        const char *argv[] = {"AUTH", c->user, c->password};
        size_t lens[] = {4, strlen(c->user), strlen(c->password)};
        int argc = 3;
        if (c->user[0] == '\0') {
            argv[1] = c->password;
            lens[1] = lens[2];
            argc = 2;
        }
        redisReply *r = command(c, argc, argv, lens);
        if (r == NULL)
            return RG_EIO;
        bool ok = r->type != REDIS_REPLY_ERROR;
        if (!ok)
            set_error(c, "redis %s: AUTH: %s", where(c, w, sizeof(w)),
                      r->str);
        freeReplyObject(r);
        if (!ok)
            return fail(c);
    }
    if (load_scripts(c) != 0)
        return RG_EIO;
    c->synced = false;
    c->backoff_ms = c->timeout_ms;
    c->fails = 0;
    stat_add(&c->connects, 1);
    /* relaxed: a statistic */
    atomic_store_explicit(&c->connected, true, memory_order_relaxed);
    return 0;
}

/*
 * EVALSHA of script s with the arguments in c->a (after the first three:
 * "EVALSHA", sha, numkeys, which run_script fills in). Loads the scripts
 * again once on NOSCRIPT (a SCRIPT FLUSH, a restarted server behind the
 * same connection). NULL after fail(); an error reply fails too.
 */
static redisReply *run_script(rg_cache_redis_t *c, enum script s)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        const char **argv = args_ptrs(&c->a);
        argv[0] = "EVALSHA";
        c->a.lens[0] = 7;
        argv[1] = c->sha[s];
        c->a.lens[1] = 40;
        redisReply *r = command(c, (int)c->a.n, argv, c->a.lens);
        if (r == NULL)
            return NULL;
        if (r->type != REDIS_REPLY_ERROR)
            return r;
        bool noscript = strncmp(r->str, "NOSCRIPT", 8) == 0;
        set_error(c, "redis: script: %s", r->str);
        freeReplyObject(r);
        if (!noscript || attempt == 1 || load_scripts(c) != 0) {
            if (c->ctx != NULL)
                fail(c);
            return NULL;
        }
    }
    return NULL;
}

/* Starts an EVALSHA argument list: placeholders for EVALSHA and the sha,
 * then numkeys. */
static bool script_args(rg_cache_redis_t *c, size_t numkeys)
{
    args_reset(&c->a);
    return args_add(&c->a, "EVALSHA") && args_add(&c->a, "sha") &&
           args_add(&c->a, "%zu", numkeys);
}

static bool add_meta(rg_cache_redis_t *c, bool applied)
{
    return args_add(&c->a, "%sfloor", c->prefix) &&
           (!applied || args_add(&c->a, "%sapplied", c->prefix));
}

/* ---- readers ------------------------------------------------------------- */

/* Parses "VERSION:VALUE". */
static bool parse_entry(const char *s, size_t len, int64_t *version,
                        int64_t *value)
{
    char buf[48];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *colon = strchr(buf, ':'), *end;
    if (colon == NULL)
        return false;
    *colon = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0' || end == buf || errno != 0)
        return false;
    long long x = strtoll(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || errno != 0)
        return false;
    *version = v;
    *value = x;
    return true;
}

static int64_t reply_int(const redisReply *r, int64_t dflt)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING) {
        char *end;
        long long v = strtoll(r->str, &end, 10);
        return *end == '\0' && end != r->str ? v : dflt;
    }
    return dflt;
}

int rg_cache_redis_get(rg_cache_redis_t *c, rg_cache_kind_t kind,
                       const rg_cache_key_t *keys, size_t n, int64_t *values,
                       bool *hit)
{
    if ((kind != RG_CACHE_COUNT && kind != RG_CACHE_STATE) || n > GET_MAX)
        return RG_EINVAL;
    for (size_t i = 0; i < n; i++)
        hit[i] = false;
    if (n == 0)
        return 0;
    if (ensure(c) != 0) {
        stat_add(&c->misses, n);
        return RG_EIO;
    }
    /* MGET floor k1..kn: one atomic read of the floor and the entries */
    args_reset(&c->a);
    bool ok = args_add(&c->a, "MGET") && add_meta(c, false);
    for (size_t i = 0; ok && i < n; i++)
        ok = add_key(c, kind, &keys[i]);
    if (!ok) {
        stat_add(&c->misses, n);
        return RG_ENOMEM;
    }
    redisReply *r = command(c, (int)c->a.n, args_ptrs(&c->a), c->a.lens);
    if (r == NULL) {
        stat_add(&c->misses, n);
        return RG_EIO;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n + 1) {
        set_error(c, "redis: MGET: unexpected reply");
        freeReplyObject(r);
        stat_add(&c->misses, n);
        return fail(c);
    }
    int64_t floor = reply_int(r->element[0], 0);
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i + 1];
        int64_t ver, val;
        if (e->type == REDIS_REPLY_STRING &&
            parse_entry(e->str, e->len, &ver, &val) && ver >= floor) {
            values[i] = val;
            hit[i] = true;
            hits++;
        }
    }
    freeReplyObject(r);
    stat_add(&c->hits, hits);
    stat_add(&c->misses, n - hits);
    return 0;
}

int rg_cache_redis_fill(rg_cache_redis_t *c, rg_cache_kind_t kind,
                        int64_t version, const rg_cache_key_t *keys,
                        const int64_t *values, size_t n)
{
    if ((kind != RG_CACHE_COUNT && kind != RG_CACHE_STATE) || version < 0 ||
        version >= VERSION_MAX)
        return RG_EINVAL;
    if (n == 0)
        return 0;
    if (ensure(c) != 0)
        return RG_EIO;
    int stored = 0;
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t k = n - at < CHUNK ? n - at : CHUNK;
        /* EVALSHA sha numkeys floor applied k1..kk ttl W v1..vk */
        bool ok = script_args(c, k + 2) && add_meta(c, true);
        for (size_t i = 0; ok && i < k; i++)
            ok = add_key(c, kind, &keys[at + i]);
        ok = ok && args_add(&c->a, "%" PRId64, c->ttl_ms) &&
             args_add(&c->a, "%" PRId64, version);
        for (size_t i = 0; ok && i < k; i++)
            ok = args_add(&c->a, "%" PRId64, values[at + i]);
        if (!ok)
            return RG_ENOMEM;
        redisReply *r = run_script(c, S_FILL);
        if (r == NULL)
            return RG_EIO;
        int64_t got = reply_int(r, -9);
        freeReplyObject(r);
        if (got < 0) { /* refused as a whole: the same for the rest */
            stat_add(&c->fills_refused, n - at);
            break;
        }
        stored += (int)got;
        stat_add(&c->fills, (uint64_t)got);
        stat_add(&c->fills_refused, k - (uint64_t)got);
    }
    return stored;
}

/* ---- the updater ----------------------------------------------------------- */

static int resync(rg_cache_redis_t *c, rg_cache_read_cb *read, void *opaque)
{
    char err[256] = "";
    int64_t f = 0;
    int rc = read(opaque, NULL, 0, NULL, &f, err, sizeof(err));
    if (rc != 0) {
        set_error(c, "cache resync: %s", err);
        return rc;
    }
    if (f < 0 || f >= VERSION_MAX) {
        set_error(c, "cache resync: database version %" PRId64
                     " outside 0..2^53", f);
        return RG_ERANGE;
    }
    if (!script_args(c, 2) || !add_meta(c, true) ||
        !args_add(&c->a, "%" PRId64, f))
        return RG_ENOMEM;
    redisReply *r = run_script(c, S_RESYNC);
    if (r == NULL)
        return RG_EIO;
    int64_t floor = reply_int(r, f);
    freeReplyObject(r);
    /* relaxed: a statistic */
    atomic_store_explicit(&c->floor, floor, memory_order_relaxed);
    stat_add(&c->resyncs, 1);
    c->synced = true;
    c->resync_wanted = false;
    return 0;
}

/* Connected and resynced, or why not. */
static int ready(rg_cache_redis_t *c, rg_cache_read_cb *read, void *opaque)
{
    if (ensure(c) != 0)
        return RG_EIO;
    if (!c->synced || c->resync_wanted)
        return resync(c, read, opaque);
    return 0;
}

void rg_cache_redis_invalidate(rg_cache_redis_t *c)
{
    c->resync_wanted = true;
}

int rg_cache_redis_tick(rg_cache_redis_t *c, rg_cache_read_cb *read,
                        void *opaque)
{
    bool was_synced = c->ctx != NULL && c->synced && !c->resync_wanted;
    int rc = ready(c, read, opaque);
    if (rc != 0 || !was_synced)
        return rc;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    redisReply *r = command(c, 1, argv, lens);
    if (r == NULL)
        return RG_EIO;
    freeReplyObject(r);
    return 0;
}

static bool grow_scratch(rg_cache_redis_t *c, size_t n)
{
    if (n <= c->pcap)
        return true;
    size_t nc = c->pcap ? c->pcap : 256;
    while (nc < n)
        nc *= 2;
    rg_cache_key_t *k = realloc(c->pkeys, nc * sizeof(*k));
    if (k == NULL)
        return false;
    c->pkeys = k;
    int64_t *v = realloc(c->pvals, nc * sizeof(*v));
    if (v == NULL)
        return false;
    c->pvals = v;
    int64_t *w = realloc(c->pver, nc * sizeof(*w));
    if (w == NULL)
        return false;
    c->pver = w;
    c->pcap = nc;
    return true;
}

/* Rewrites the entries pkeys[0..n) of kind with pvals/pver (apply
 * script, in chunks). Returns 0 or RG_EIO/RG_ENOMEM; *updated counts. */
static int write_entries(rg_cache_redis_t *c, rg_cache_kind_t kind,
                         size_t n, uint64_t *updated)
{
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t k = n - at < CHUNK ? n - at : CHUNK;
        bool ok = script_args(c, k + 1) && add_meta(c, false);
        for (size_t i = 0; ok && i < k; i++)
            ok = add_key(c, kind, &c->pkeys[at + i]);
        ok = ok && args_add(&c->a, "%" PRId64, c->ttl_ms);
        for (size_t i = 0; ok && i < k; i++)
            ok = args_add(&c->a, "%" PRId64, c->pver[at + i]) &&
                 args_add(&c->a, "%" PRId64, c->pvals[at + i]);
        if (!ok)
            return RG_ENOMEM;
        redisReply *r = run_script(c, S_APPLY);
        if (r == NULL)
            return RG_EIO;
        *updated += (uint64_t)reply_int(r, 0);
        freeReplyObject(r);
    }
    return 0;
}

/* The staged rows, the last row of each pair only, into pkeys/pvals/pver
 * (version v). Returns how many, or (size_t)-1 when out of memory. */
static size_t last_rows(rg_cache_redis_t *c, const rg_row_t *rows, size_t m,
                        int64_t v)
{
    if (!grow_scratch(c, m))
        return (size_t)-1;
    size_t cap = 16;
    while (cap < 2 * m)
        cap *= 2;
    if (cap > c->seen_cap) {
        int32_t *s = realloc(c->seen, cap * sizeof(*s));
        if (s == NULL)
            return (size_t)-1;
        c->seen = s;
        c->seen_cap = cap;
    }
    for (size_t i = 0; i < cap; i++)
        c->seen[i] = -1;
    size_t out = 0;
    /* backwards: the first occurrence met is the pair's last row */
    for (size_t i = m; i-- > 0;) {
        size_t h = rg__pair_hash(rows[i].key, rows[i].key2) & (cap - 1);
        bool dup = false;
        while (c->seen[h] >= 0) {
            const rg_row_t *o = &rows[c->seen[h]];
            if (o->key == rows[i].key && o->key2 == rows[i].key2) {
                dup = true;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (dup)
            continue;
        c->seen[h] = (int32_t)i;
        c->pkeys[out] = (rg_cache_key_t){rows[i].key, rows[i].key2};
        c->pvals[out] = rows[i].value;
        c->pver[out] = v;
        out++;
    }
    return out;
}

int rg_cache_redis_apply(rg_cache_redis_t *c, int64_t version,
                         const int64_t *videos, size_t n,
                         const rg_row_t *staged, size_t m,
                         rg_cache_read_cb *read, void *opaque)
{
    if (version < 0 || version >= VERSION_MAX || read == NULL ||
        m > INT32_MAX)
        return RG_EINVAL;
    int rc = ready(c, read, opaque);
    if (rc != 0)
        goto skipped;

    /* 1. raise applied to the epoch (from here on no fill of an older
     *    read lands), learn floor and which counts are cached */
    int64_t floor = 0;
    size_t present = 0;
    if (!grow_scratch(c, n)) {
        rc = RG_ENOMEM;
        goto skipped;
    }
    size_t at = 0;
    do {
        size_t k = n - at < CHUNK ? n - at : CHUNK;
        bool ok = script_args(c, k + 2) && add_meta(c, true);
        for (size_t i = 0; ok && i < k; i++)
            ok = add_key(c, RG_CACHE_COUNT,
                         &(rg_cache_key_t){videos[at + i], 0});
        if (!ok || !args_add(&c->a, "%" PRId64, version)) {
            rc = RG_ENOMEM;
            goto skipped;
        }
        redisReply *r = run_script(c, S_BEGIN);
        if (r == NULL) {
            rc = RG_EIO;
            goto skipped;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != k + 1) {
            set_error(c, "redis: begin: unexpected reply");
            freeReplyObject(r);
            rc = fail(c);
            goto skipped;
        }
        floor = reply_int(r->element[0], 0);
        for (size_t i = 0; i < k; i++)
            if (reply_int(r->element[i + 1], 0) == 1)
                c->pkeys[present++] = (rg_cache_key_t){videos[at + i], 0};
        freeReplyObject(r);
        at += k;
    } while (at < n);
    /* relaxed: a statistic */
    atomic_store_explicit(&c->floor, floor, memory_order_relaxed);
    if (version < floor) {
        stat_add(&c->superseded, 1);
        return 0; /* a resync since covers this epoch */
    }

    /* 2. the cached counts, read back after the commit: each chunk's
     *    values carry the version of its own snapshot (>= version) */
    uint64_t updated = 0;
    int64_t *ids = NULL;
    if (present > 0 && (ids = malloc(present * sizeof(*ids))) == NULL) {
        rc = RG_ENOMEM;
        goto skipped;
    }
    for (size_t i = 0; i < present; i++)
        ids[i] = c->pkeys[i].video;
    for (size_t i = 0; i < present; i += CHUNK) {
        size_t k = present - i < CHUNK ? present - i : CHUNK;
        char err[256] = "";
        int64_t ver = 0;
        rc = read(opaque, ids + i, k, c->pvals + i, &ver, err, sizeof(err));
        if (rc != 0) {
            set_error(c, "cache read-back: %s", err);
            free(ids);
            goto skipped;
        }
        for (size_t j = 0; j < k; j++)
            c->pver[i + j] = ver;
    }
    free(ids);
    if ((rc = write_entries(c, RG_CACHE_COUNT, present, &updated)) != 0)
        goto skipped;

    /* 3. the pairs' states, tagged with the epoch's version */
    size_t pairs = last_rows(c, staged, m, version);
    if (pairs == (size_t)-1) {
        rc = RG_ENOMEM;
        goto skipped;
    }
    if ((rc = write_entries(c, RG_CACHE_STATE, pairs, &updated)) != 0)
        goto skipped;
    stat_add(&c->applies, 1);
    stat_add(&c->updated, updated);
    return 0;

skipped:
    /* whatever part was not written is older than the floor the next
     * resync raises: it reads as a miss, never as a stale hit */
    stat_add(&c->skipped, n + m);
    c->resync_wanted = true;
    return rc;
}

void rg_cache_redis_stats(rg_cache_redis_t *c, rg_cache_redis_stats_t *o)
{
    memset(o, 0, sizeof(*o));
    /* relaxed throughout: statistics, each a value that was true once */
    o->hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
    o->misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
    o->fills = atomic_load_explicit(&c->fills, memory_order_relaxed);
    o->fills_refused =
        atomic_load_explicit(&c->fills_refused, memory_order_relaxed);
    o->applies = atomic_load_explicit(&c->applies, memory_order_relaxed);
    o->updated = atomic_load_explicit(&c->updated, memory_order_relaxed);
    o->superseded =
        atomic_load_explicit(&c->superseded, memory_order_relaxed);
    o->skipped = atomic_load_explicit(&c->skipped, memory_order_relaxed);
    o->resyncs = atomic_load_explicit(&c->resyncs, memory_order_relaxed);
    o->errors = atomic_load_explicit(&c->errors, memory_order_relaxed);
    o->connects = atomic_load_explicit(&c->connects, memory_order_relaxed);
    o->floor = atomic_load_explicit(&c->floor, memory_order_relaxed);
    o->connected = atomic_load_explicit(&c->connected, memory_order_relaxed);
    pthread_mutex_lock(&c->mu);
    memcpy(o->last_error, c->last_error, sizeof(o->last_error));
    pthread_mutex_unlock(&c->mu);
}
