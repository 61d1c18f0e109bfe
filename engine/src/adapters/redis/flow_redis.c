/*
 * flow_redis.c - the global rate's lease client, its options, and the
 * control calls (show, set rate). The protocol, the keys and the failure
 * behaviour are in railgun/redis.h; the bounds in NOTES-flow.md.
 *
 * One thread role per part:
 *   - options, new/start/stop/destroy: the controlling thread;
 *   - step() and everything below it (the hiredis contexts, the lease
 *     state): the lease thread only (and start()'s caller for the first
 *     step, before the thread exists);
 *   - stats: under c->mu, written by the lease thread, read by anyone.
 *
 * Every Redis call is bounded: connects and commands time out after
 * flow.redis.timeout.ms (hiredis sets SO_RCVTIMEO/SO_SNDTIMEO), and a
 * context that failed once is closed, never reused (hiredis contexts are
 * unusable after an I/O error; a timed-out reply may still arrive later).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "flow_redis_props.h"
#include "railgun/error.h"
#include "railgun/redis.h"

#define RATE_MAX 64000000000ll

/* ---- options ---------------------------------------------------------- */

enum prop_id {
#define RG__FR_ENUM(id, name, type, def, min, max, scope, doc) P_##id,
    RG_FLOW_REDIS_PROPS(RG__FR_ENUM)
#undef RG__FR_ENUM
    P__COUNT
};

static const rg_conf_prop_t props[P__COUNT] = {
#define RG__FR_ROW(id, name, type, def, min, max, scope, doc)                \
    [P_##id] = {name, RG_CONF_##type, def, min, max, doc},
    RG_FLOW_REDIS_PROPS(RG__FR_ROW)
#undef RG__FR_ROW
};

#define STR_MAX 1023 /* longest string value */

struct rg_flow_redis_opts_s {
    int64_t i[P__COUNT];
    char *s[P__COUNT];
};

size_t rg_flow_redis_prop_count(void)
{
    return P__COUNT;
}

const rg_conf_prop_t *rg_flow_redis_prop_at(size_t i)
{
    return i < P__COUNT ? &props[i] : NULL;
}

static int find_prop(const char *name)
{
    for (int i = 0; i < P__COUNT; i++)
        if (strcmp(props[i].name, name) == 0)
            return i;
    return -1;
}

static void seterr(char *errstr, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *errstr, size_t n, const char *fmt, ...)
{
    if (errstr == NULL || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, n, fmt, ap);
    va_end(ap);
}

/* Parses value for property id into *iv / *sv (a new copy). */
static int parse(int id, const char *value, int64_t *iv, char **sv,
                 char *errstr, size_t n)
{
    const rg_conf_prop_t *p = &props[id];
    *sv = NULL;
    if (p->type == RG_CONF_STR) {
        if (strlen(value) > STR_MAX) {
            seterr(errstr, n, "%s: longer than %d characters", p->name,
                   STR_MAX);
            return RG_ERANGE;
        }
        *sv = strdup(value);
        return *sv == NULL ? RG_ENOMEM : 0;
    }
    if (p->type == RG_CONF_BOOL) {
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *iv = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *iv = 0;
        else {
            seterr(errstr, n, "%s: '%s' is not true or false", p->name,
                   value);
            return RG_EINVAL;
        }
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (value[0] == '\0' || *end != '\0' || errno == ERANGE) {
        seterr(errstr, n, "%s: '%s' is not an integer", p->name, value);
        return errno == ERANGE ? RG_ERANGE : RG_EINVAL;
    }
    if (v < p->min) {
        seterr(errstr, n, "%s: %lld is below the minimum %" PRId64, p->name,
               v, p->min);
        return RG_ERANGE;
    }
    if (v > p->max) {
        seterr(errstr, n, "%s: %lld is above the maximum %" PRId64, p->name,
               v, p->max);
        return RG_ERANGE;
    }
    *iv = v;
    return 0;
}

void rg_flow_redis_opts_destroy(rg_flow_redis_opts_t *o)
{
    if (o == NULL)
        return;
    for (int i = 0; i < P__COUNT; i++)
        free(o->s[i]);
    free(o);
}

rg_flow_redis_opts_t *rg_flow_redis_opts_new(void)
{
    rg_flow_redis_opts_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    for (int i = 0; i < P__COUNT; i++)
        if (parse(i, props[i].def, &o->i[i], &o->s[i], NULL, 0) != 0) {
            rg_flow_redis_opts_destroy(o);
            return NULL;
        }
    return o;
}

int rg_flow_redis_opts_set(rg_flow_redis_opts_t *o, const char *name,
                           const char *value, char *errstr, size_t n)
{
    int id = find_prop(name);
    if (id < 0) {
        seterr(errstr, n, "%s: no such property", name);
        return RG_ENOENT;
    }
    int64_t iv = 0;
    char *sv = NULL;
    int rc = parse(id, value, &iv, &sv, errstr, n);
    if (rc != 0)
        return rc;
    if (props[id].type == RG_CONF_STR) {
        free(o->s[id]);
        o->s[id] = sv;
    } else {
        o->i[id] = iv;
    }
    return 0;
}

int rg_flow_redis_opts_from_conf(rg_flow_redis_opts_t *o,
                                 const rg_conf_t *conf, char *errstr,
                                 size_t n)
{
    char buf[STR_MAX + 1];
    for (int i = 0; i < P__COUNT; i++) {
        size_t sz = sizeof(buf);
        int rc = rg_conf_get(conf, props[i].name, buf, &sz);
        if (rc == RG_ENOENT)
            continue; /* not in this configuration's table */
        if (rc != 0) {
            seterr(errstr, n, "%s: value longer than %d characters",
                   props[i].name, STR_MAX);
            return rc;
        }
        rc = rg_flow_redis_opts_set(o, props[i].name, buf, errstr, n);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- where Redis is ------------------------------------------------------ */

struct hostport {
    char host[256];
    int port;
};

/* Everything needed to reach the primary: a copy of the options' part. */
struct endpoint {
    struct hostport direct;
    char socket[108];
    char user[256], password[256], master[256];
    struct hostport *sentinels;
    size_t nsentinels, next_sentinel;  /* ask this one first */
    struct timeval tv;
    char rate_key[1200], nodes_key[1200];
};

/* Parses "host:port,host:port" (IPv6 as [addr]:port). */
static int parse_sentinels(const char *list, struct endpoint *ep,
                           char *errstr, size_t n)
{
    ep->sentinels = NULL;
    ep->nsentinels = 0;
    if (list[0] == '\0')
        return 0;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    ep->sentinels = calloc(cap, sizeof(*ep->sentinels));
    if (ep->sentinels == NULL)
        return RG_ENOMEM;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[300];
        if (len == 0 || len >= sizeof(item))
            goto bad;
        memcpy(item, p, len);
        item[len] = '\0';
        char *colon = strrchr(item, ':');
        if (colon == NULL || colon == item)
            goto bad;
        *colon = '\0';
        char *host = item, *e;
        if (host[0] == '[') {
            size_t hl = strlen(host);
            if (hl < 3 || host[hl - 1] != ']')
                goto bad;
            host[hl - 1] = '\0';
            host++;
        }
        long port = strtol(colon + 1, &e, 10);
        if (*e != '\0' || colon[1] == '\0' || port < 1 || port > 65535 ||
            strlen(host) >= sizeof(ep->sentinels[0].host))
            goto bad;
        struct hostport *hp = &ep->sentinels[ep->nsentinels++];
        strcpy(hp->host, host);
        hp->port = (int)port;
        p += len;
        if (*p == ',')
            p++;
        continue;
    bad:
        seterr(errstr, n, "flow.redis.sentinels: '%.*s' is not host:port",
               (int)len, p);
        free(ep->sentinels);
        ep->sentinels = NULL;
        ep->nsentinels = 0;
        return RG_EINVAL;
    }
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src, const char *name,
                    char *errstr, size_t n)
{
    if (strlen(src) >= cap) {
        seterr(errstr, n, "%s: longer than %zu characters", name, cap - 1);
        return RG_ERANGE;
    }
    strcpy(dst, src);
    return 0;
}

static int endpoint_init(struct endpoint *ep, const rg_flow_redis_opts_t *o,
                         char *errstr, size_t n)
{
    memset(ep, 0, sizeof(*ep));
    int rc;
    if ((rc = copy_str(ep->direct.host, sizeof(ep->direct.host),
                       o->s[P_HOST], props[P_HOST].name, errstr, n)) ||
        (rc = copy_str(ep->socket, sizeof(ep->socket), o->s[P_SOCKET],
                       props[P_SOCKET].name, errstr, n)) ||
        (rc = copy_str(ep->user, sizeof(ep->user), o->s[P_USER],
                       props[P_USER].name, errstr, n)) ||
        (rc = copy_str(ep->password, sizeof(ep->password),
                       o->s[P_PASSWORD], props[P_PASSWORD].name, errstr, n)) ||
        (rc = copy_str(ep->master, sizeof(ep->master), o->s[P_MASTER],
                       props[P_MASTER].name, errstr, n)))
        return rc;
    ep->direct.port = (int)o->i[P_PORT];
    if (ep->user[0] != '\0' && ep->password[0] == '\0') {
        seterr(errstr, n, "flow.redis.user needs flow.redis.password");
        return RG_EINVAL;
    }
    if ((rc = parse_sentinels(o->s[P_SENTINELS], ep, errstr, n)) != 0)
        return rc;
    if (ep->nsentinels > 0 && ep->master[0] == '\0') {
        seterr(errstr, n, "flow.redis.sentinels needs flow.redis.master");
        free(ep->sentinels);
        return RG_EINVAL;
    }
    if (ep->nsentinels == 0 && ep->socket[0] == '\0' &&
        ep->direct.host[0] == '\0') {
        seterr(errstr, n, "no Redis address: set flow.redis.host, "
                          "flow.redis.socket or flow.redis.sentinels");
        return RG_EINVAL;
    }
    int64_t ms = o->i[P_TIMEOUT_MS];
    ep->tv.tv_sec = ms / 1000;
    ep->tv.tv_usec = (ms % 1000) * 1000;
    snprintf(ep->rate_key, sizeof(ep->rate_key), "%s{%s}:rate",
             o->s[P_PREFIX], o->s[P_GROUP]);
    snprintf(ep->nodes_key, sizeof(ep->nodes_key), "%s{%s}:nodes",
             o->s[P_PREFIX], o->s[P_GROUP]);
    return 0;
}

static void endpoint_fini(struct endpoint *ep)
{
    free(ep->sentinels);
    ep->sentinels = NULL;
}

static redisReply *command(redisContext *ctx, int argc, const char **argv)
{
    size_t len[16];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    return redisCommandArgv(ctx, argc, argv, len);
}

/* A connection with timeouts set; NULL with why in err. */
static redisContext *dial(const struct endpoint *ep, const char *host,
                          int port, const char *sock, char *err, size_t n)
{
    redisContext *ctx = sock != NULL
                            ? redisConnectUnixWithTimeout(sock, ep->tv)
                            : redisConnectWithTimeout(host, port, ep->tv);
    if (ctx == NULL) {
        seterr(err, n, "out of memory connecting");
        return NULL;
    }
    if (ctx->err == 0 && redisSetTimeout(ctx, ep->tv) != REDIS_OK)
        ctx->err = REDIS_ERR_IO;
    if (ctx->err != 0) {
        if (sock != NULL)
            seterr(err, n, "redis %s: %s", sock, ctx->errstr);
        else
            seterr(err, n, "redis %s:%d: %s", host, port, ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

/* Asks the sentinels, in turn from the last one that answered, for the
 * primary's address. 0, or RG_EIO with why in err. */
static int ask_sentinels(struct endpoint *ep, struct hostport *out,
                         char *err, size_t n)
{
    seterr(err, n, "no sentinel answered");
    for (size_t k = 0; k < ep->nsentinels; k++) {
        size_t i = (ep->next_sentinel + k) % ep->nsentinels;
        struct hostport *s = &ep->sentinels[i];
        redisContext *sc = dial(ep, s->host, s->port, NULL, err, n);
        if (sc == NULL)
            continue;
        const char *argv[] = {"SENTINEL", "get-master-addr-by-name",
                              ep->master};
        redisReply *r = command(sc, 3, argv);
        int ok = r != NULL && r->type == REDIS_REPLY_ARRAY &&
                 r->elements == 2 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 r->element[1]->type == REDIS_REPLY_STRING &&
                 r->element[0]->len < sizeof(out->host);
        if (ok) {
            strcpy(out->host, r->element[0]->str);
            out->port = atoi(r->element[1]->str);
            ok = out->port > 0 && out->port < 65536;
        }
        if (!ok)
            seterr(err, n, "sentinel %s:%d: %s", s->host, s->port,
                   r == NULL ? sc->errstr
                   : r->type == REDIS_REPLY_ERROR ? r->str
                   : "no such master");
        if (r != NULL)
            freeReplyObject(r);
        redisFree(sc);
        if (ok) {
            ep->next_sentinel = i;
            return 0;
        }
    }
    return RG_EIO;
}

/*
 * Connects to the primary (through the sentinels when there are some),
 * logs in and, via sentinels, checks that it is one. *where gets the
 * address used. NULL with why in err.
 */
static redisContext *open_primary(struct endpoint *ep, char *where,
                                  size_t where_n, char *err, size_t n)
{
    struct hostport hp = ep->direct;
    const char *sock = NULL;
    if (ep->nsentinels > 0) {
        if (ask_sentinels(ep, &hp, err, n) != 0)
            return NULL;
    } else if (ep->socket[0] != '\0') {
        sock = ep->socket;
    }
    if (sock != NULL)
        snprintf(where, where_n, "%s", sock);
    else
        snprintf(where, where_n, "%s:%d", hp.host, hp.port);
    redisContext *ctx = dial(ep, hp.host, hp.port, sock, err, n);
    if (ctx == NULL)
        return NULL;
    redisReply *r = NULL;
    if (ep->password[0] != '\0') {
        const char *argv[] = {"AUTH", ep->user, ep->password};
        int argc = 3;
        if (ep->user[0] == '\0') {
            argv[1] = ep->password;
            argc = 2;
        }
        r = command(ctx, argc, argv);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            goto fail;
        freeReplyObject(r);
    }
    if (ep->nsentinels > 0) {
        /* a sentinel's answer can be stale in a failover: use a primary
         * only, never a demoted one */
        const char *argv[] = {"ROLE"};
        r = command(ctx, 1, argv);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            goto fail;
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            strcmp(r->element[0]->str, "master") != 0) {
            seterr(err, n, "redis %s: not the primary (sentinel view "
                           "stale)", where);
            freeReplyObject(r);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(r);
    }
    return ctx;
fail:
    seterr(err, n, "redis %s: %s", where,
           r == NULL ? ctx->errstr : r->str);
    if (r != NULL)
        freeReplyObject(r);
    redisFree(ctx);
    return NULL;
}

/* ---- the lease script ---------------------------------------------------- */

/*
 * KEYS[1] rate, KEYS[2] nodes. ARGV: id, seed rate (when the rate key is
 * missing), ttl ms, wants (-1: all it can get), consumed rate, consumed
 * total, pid, mode, host. Returns {grant, rate, live nodes, fair share,
 * server ms}. Expiry uses the server's clock (TIME; scripts replicate
 * their effects, Redis >= 5), so node clocks never matter.
 */
static const char lease_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local rate = tonumber(redis.call('GET', KEYS[1]))\n"
    "if rate == nil then\n"
    "  rate = tonumber(ARGV[2])\n"
    "  redis.call('SET', KEYS[1], ARGV[2])\n"
    "end\n"
    "local id, ttl, wants = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local raw = redis.call('HGETALL', KEYS[2])\n"
    "local others, live, cur, list = 0, 1, 0, {}\n"
    "for i = 1, #raw, 2 do\n"
    "  local f = raw[i]\n"
    "  local exp, g, w = string.match(raw[i + 1], '^(%d+) (%d+) (%-?%d+) ')\n"
    "  exp, g, w = tonumber(exp), tonumber(g), tonumber(w)\n"
    "  if exp == nil or exp <= now then\n"
    "    if f ~= id then redis.call('HDEL', KEYS[2], f) end\n"
    "  elseif f == id then\n"
    "    cur = g\n"
    "  else\n"
    "    others = others + g\n"
    "    live = live + 1\n"
    "    list[#list + 1] = w\n"
    "  end\n"
    "end\n"
    "local grant = 0\n"
    "if rate > 0 then\n"
    "  local floor = math.floor(rate / (8 * live))\n"
    "  local function eff(x)\n"
    "    if x < 0 then return math.huge end\n"
    "    if x < floor then return floor end\n"
    "    return x\n"
    "  end\n"
    "  local e = { eff(wants) }\n"
    "  for i = 1, #list do e[#e + 1] = eff(list[i]) end\n"
    "  table.sort(e)\n"
    "  local level, left = math.huge, rate\n"
    "  for i = 1, #e do\n"
    "    local share = left / (#e - i + 1)\n"
    "    if e[i] > share then level = share break end\n"
    "    left = left - e[i]\n"
    "  end\n"
    "  local target = math.min(eff(wants), level)\n"
    "  grant = math.min(target, math.max(math.min(cur, target),\n"
    "                                    rate - others))\n"
    "  grant = math.floor(math.max(grant, 0))\n"
    "end\n"
    "redis.call('HSET', KEYS[2], id, string.format(\n"
    "  '%d %d %d %d %d %d %d %d %s', now + ttl, grant, wants,\n"
    "  tonumber(ARGV[5]), tonumber(ARGV[6]), now, tonumber(ARGV[7]),\n"
    "  tonumber(ARGV[8]), ARGV[9]))\n"
    "redis.call('PEXPIRE', KEYS[2], ttl * 10 + 60000)\n"
    "return { grant, rate, live, math.floor(rate / live), now }\n";

/* ---- the lease client ---------------------------------------------------- */

struct lease_reply {
    uint64_t grant, rate, live, fair;
};

struct rg_flow_redis_s {
    /* read-only after new() */
    struct endpoint ep;            /* next_sentinel: lease thread only */
    rg_flow_redis_hooks_t h;
    char node_id[160], host[160];
    int64_t pid;
    uint64_t global_conf, burst, fallback_rate;
    int64_t lease_ns, ttl_ms, ttl_ns, backoff_max_ns, decay_ns;
    bool leave;

    /* lease thread (or start()'s caller before the thread exists) */
    redisContext *ctx;
    char sha[48];                  /* "" until SCRIPT LOAD answered */
    char server[272];              /* address ctx is connected to */
    bool connected_once;
    int64_t next_attempt, backoff, next_sentinel_check;
    uint64_t last_consumed, last_throttled;
    int64_t last_usage;            /* when usage was last read (0: never) */
    bool seen_rate_valid;
    uint64_t seen_rate;            /* the group's rate, as last read */
    bool ever_leased;
    uint64_t lease, fair;          /* last grant, last fair share */
    uint32_t live;
    int64_t leased_at, valid_until;
    int64_t recover_until;         /* after an outage: ask for at most */
    uint64_t recover_cap;          /* this until then */
    int mode;
    bool applied;
    uint64_t applied_rate;
    uint64_t rng;

    /* thread control */
    pthread_t th;
    bool started, joined;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop_req;                 /* under mu */
    rg_flow_redis_stats_t st;      /* under mu */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sanitize(char *s)
{
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == ':' || ch == '@' || ch == '-' || ch == '[' || ch == ']'))
            *s = '_';
    }
}

static void free_unstarted(rg_flow_redis_t *c)
{
    endpoint_fini(&c->ep);
    free(c);
}

/* Distinct default ids for clients of one process (simulated nodes). */
static _Atomic unsigned next_local_id;

rg_flow_redis_t *rg_flow_redis_new(const rg_flow_redis_opts_t *o,
                                   const rg_flow_redis_hooks_t *h,
                                   char *errstr, size_t n)
{
    if (o == NULL || h == NULL || h->set_rate == NULL || h->usage == NULL) {
        seterr(errstr, n, "flow redis: options and both hooks are required");
        return NULL;
    }
    if (o->i[P_LEASE_TTL_MS] < 2 * o->i[P_LEASE_MS]) {
        seterr(errstr, n, "flow.lease.ttl.ms: %" PRId64 " is below twice "
                          "flow.lease.ms (%" PRId64 ")",
               o->i[P_LEASE_TTL_MS], o->i[P_LEASE_MS]);
        return NULL;
    }
    rg_flow_redis_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        seterr(errstr, n, "out of memory");
        return NULL;
    }
    if (endpoint_init(&c->ep, o, errstr, n) != 0) {
        free(c);
        return NULL;
    }
    c->h = *h;
    c->pid = getpid();
    if (gethostname(c->host, 65) != 0) /* HOST_NAME_MAX is 64 */
        strcpy(c->host, "unknown");
    c->host[64] = '\0';
    sanitize(c->host);
    if (o->s[P_NODE_ID][0] != '\0') {
        if (strlen(o->s[P_NODE_ID]) > 127) {
            seterr(errstr, n, "flow.node.id: longer than 127 characters");
            free_unstarted(c);
            return NULL;
        }
        snprintf(c->node_id, sizeof(c->node_id), "%s", o->s[P_NODE_ID]);
    } else {
        /* relaxed: only distinctness matters */
        unsigned k = atomic_fetch_add_explicit(&next_local_id, 1,
                                               memory_order_relaxed);
        snprintf(c->node_id, sizeof(c->node_id), "%.64s:%" PRId64 ":%u",
                 c->host, c->pid, k);
    }
    sanitize(c->node_id);
    c->global_conf = (uint64_t)o->i[P_GLOBAL_RATE];
    c->burst = (uint64_t)o->i[P_BURST];
    c->fallback_rate = (uint64_t)o->i[P_FALLBACK_RATE];
    c->lease_ns = o->i[P_LEASE_MS] * 1000000;
    c->ttl_ms = o->i[P_LEASE_TTL_MS];
    c->ttl_ns = c->ttl_ms * 1000000;
    c->backoff_max_ns = o->i[P_BACKOFF_MAX_MS] * 1000000;
    c->decay_ns = o->i[P_FALLBACK_DECAY_MS] * 1000000;
    c->leave = o->i[P_LEASE_LEAVE] != 0;
    c->mode = RG_FLOW_FALLBACK;
    c->rng = (uint64_t)mono_ns() ^ ((uint64_t)c->pid << 32) ^
             (uint64_t)(uintptr_t)c;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&c->mu, NULL) != 0 ||
        pthread_cond_init(&c->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        endpoint_fini(&c->ep);
        free(c);
        seterr(errstr, n, "flow redis: cannot make a mutex");
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    c->st.mode = RG_FLOW_FALLBACK;
    c->st.degraded = true;
    c->st.lease_age_ms = -1;
    return c;
}

static void close_ctx(rg_flow_redis_t *c)
{
    if (c->ctx != NULL)
        redisFree(c->ctx);
    c->ctx = NULL;
    c->sha[0] = '\0';
}

/* Connects and loads the script. 0, or RG_EIO with why in err. */
static int ensure_connected(rg_flow_redis_t *c, char *err, size_t n)
{
    if (c->ctx != NULL)
        return 0;
    char where[sizeof(c->server)];
    c->ctx = open_primary(&c->ep, where, sizeof(where), err, n);
    if (c->ctx == NULL)
        return RG_EIO;
    const char *argv[] = {"SCRIPT", "LOAD", lease_lua};
    redisReply *r = command(c->ctx, 3, argv);
    if (r == NULL || r->type != REDIS_REPLY_STRING ||
        r->len >= sizeof(c->sha)) {
        seterr(err, n, "redis %s: SCRIPT LOAD: %s", where,
               r == NULL ? c->ctx->errstr
               : r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
        if (r != NULL)
            freeReplyObject(r);
        close_ctx(c);
        return RG_EIO;
    }
    strcpy(c->sha, r->str);
    freeReplyObject(r);
    pthread_mutex_lock(&c->mu);
    if (c->connected_once)
        c->st.reconnects++;
    if (c->ep.nsentinels > 0 && c->server[0] != '\0' &&
        strcmp(c->server, where) != 0)
        c->st.master_changes++;
    snprintf(c->st.server, sizeof(c->st.server), "%s", where);
    pthread_mutex_unlock(&c->mu);
    snprintf(c->server, sizeof(c->server), "%s", where);
    c->connected_once = true;
    c->next_sentinel_check = mono_ns() + 1000000000;
    return 0;
}

/* With sentinels: once a second, asks whether the primary moved (a
 * failover that our connection did not notice, e.g. a partitioned old
 * primary that still answers). A sentinel that does not answer changes
 * nothing. */
static void check_primary(rg_flow_redis_t *c, int64_t now)
{
    if (c->ep.nsentinels == 0 || c->ctx == NULL || now < c->next_sentinel_check)
        return;
    c->next_sentinel_check = now + 1000000000;
    struct hostport hp;
    char err[160];
    if (ask_sentinels(&c->ep, &hp, err, sizeof(err)) != 0)
        return;
    char where[sizeof(c->server)];
    snprintf(where, sizeof(where), "%s:%d", hp.host, hp.port);
    if (strcmp(where, c->server) != 0)
        close_ctx(c); /* reconnect to the new primary now */
}

static int lease_once(rg_flow_redis_t *c, int64_t wants, uint64_t cons_rate,
                      uint64_t cons_total, struct lease_reply *out,
                      char *err, size_t n)
{
    if (ensure_connected(c, err, n) != 0)
        return RG_EIO;
    char seed[24], ttl[24], w[24], cr[24], ct[24], pid[24], mode[8];
    snprintf(seed, sizeof(seed), "%" PRIu64,
             c->seen_rate_valid ? c->seen_rate : c->global_conf);
    snprintf(ttl, sizeof(ttl), "%" PRId64, c->ttl_ms);
    snprintf(w, sizeof(w), "%" PRId64, wants);
    snprintf(cr, sizeof(cr), "%" PRIu64, cons_rate);
    snprintf(ct, sizeof(ct), "%" PRIu64, cons_total);
    snprintf(pid, sizeof(pid), "%" PRId64, c->pid);
    snprintf(mode, sizeof(mode), "%d", c->mode);
    const char *argv[] = {"EVALSHA", c->sha, "2", c->ep.rate_key,
                          c->ep.nodes_key, c->node_id, seed, ttl, w, cr,
                          ct, pid, mode, c->host};
    enum { ARGC = sizeof(argv) / sizeof(argv[0]) };
    redisReply *r = command(c->ctx, ARGC, argv);
    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* the script cache was flushed (SCRIPT FLUSH, a restarted or
         * promoted server behind the same address): EVAL loads it again */
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = lease_lua;
        r = command(c->ctx, ARGC, argv);
    }
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 5;
    for (size_t i = 0; ok && i < 5; i++)
        ok = r->element[i]->type == REDIS_REPLY_INTEGER &&
             r->element[i]->integer >= 0;
    if (!ok) {
        seterr(err, n, "redis %s: lease: %s", c->server,
               r == NULL ? c->ctx->errstr
               : r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
        if (r != NULL)
            freeReplyObject(r);
        close_ctx(c);
        return RG_EIO;
    }
    out->grant = (uint64_t)r->element[0]->integer;
    out->rate = (uint64_t)r->element[1]->integer;
    out->live = (uint64_t)r->element[2]->integer;
    out->fair = (uint64_t)r->element[3]->integer;
    freeReplyObject(r);
    return 0;
}

static uint64_t jitter(rg_flow_redis_t *c, int64_t ns)
{
    /* xorshift64: +-20% so nodes that failed together do not retry
     * together */
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    int64_t spread = ns / 5;
    if (spread <= 0)
        return (uint64_t)ns;
    return (uint64_t)(ns - spread + (int64_t)(c->rng % (uint64_t)(2 * spread)));
}

/* The rate a node falls back to without a lease: the configured one,
 * else its last fair share, else (never leased) the global rate; 0 means
 * unlimited. */
static uint64_t fallback_target(const rg_flow_redis_t *c)
{
    uint64_t global = c->seen_rate_valid ? c->seen_rate : c->global_conf;
    if (c->fallback_rate != 0)
        return c->fallback_rate;
    if (!c->ever_leased || global == 0)
        return global;
    return c->fair ? c->fair : 1;
}

/* The rate the bucket should enforce now (0: unlimited). */
static uint64_t rate_now(rg_flow_redis_t *c, int64_t now)
{
    uint64_t global = c->seen_rate_valid ? c->seen_rate : c->global_conf;
    if (c->mode != RG_FLOW_FALLBACK) {
        if (global == 0)
            return 0;
        return c->lease > 0 ? c->lease : 1; /* 0 would mean unlimited */
    }
    uint64_t target = fallback_target(c);
    if (!c->ever_leased || c->decay_ns == 0 || target == 0 || global == 0)
        return target;
    int64_t since = now - c->valid_until;
    if (since >= c->decay_ns)
        return target;
    uint64_t from = c->lease > 0 ? c->lease : 1;
    double f = since <= 0 ? 0.0 : (double)since / (double)c->decay_ns;
    double r = (double)from + ((double)target - (double)from) * f;
    return r < 1 ? 1 : (uint64_t)r;
}

/* One lease period's work. */
static void step(rg_flow_redis_t *c)
{
    int64_t now = mono_ns();
    rg_flow_usage_t u;
    memset(&u, 0, sizeof(u));
    c->h.usage(c->h.opaque, &u);
    uint64_t dcons = u.consumed - c->last_consumed;
    bool throttled = u.throttled != c->last_throttled;
    int64_t elapsed = c->last_usage ? now - c->last_usage : 0;
    uint64_t cons_rate = elapsed > 0
                             ? (uint64_t)((double)dcons * 1e9 / (double)elapsed)
                             : 0;
    int64_t wants;
    if (c->last_usage == 0 || throttled)
        wants = u.cap > 0 ? (int64_t)u.cap : -1; /* all it can get */
    else
        wants = (int64_t)(cons_rate + cons_rate / 4 + 1);
    if (u.cap > 0 && wants > (int64_t)u.cap)
        wants = (int64_t)u.cap;
    /* coming back from a degraded period: other nodes may still be in
     * fallback and not registered again (a restarted or promoted Redis
     * lost them, or their entries expired), so the registry would hand
     * us their share while they still use it. Ask for at most our
     * fallback rate until they had time to come back. */
    uint64_t cap = 0;
    if (c->ever_leased && c->mode != RG_FLOW_LEASED)
        cap = fallback_target(c); /* the share from before the outage */
    else if (now < c->recover_until)
        cap = c->recover_cap;
    if (cap > 0 && (wants < 0 || wants > (int64_t)cap))
        wants = (int64_t)cap;

    bool tried = false, ok = false;
    char err[160] = "";
    struct lease_reply lr = {0};
    if (now >= c->next_attempt) {
        tried = true;
        check_primary(c, now);
        int64_t sent = mono_ns();
        ok = lease_once(c, wants, cons_rate, u.consumed, &lr, err,
                        sizeof(err)) == 0;
        int64_t back = mono_ns();
        if (ok) {
            if (c->mode != RG_FLOW_LEASED && cap > 0 && lr.live < c->live) {
                /* nodes are missing: they may be on their way back */
                c->recover_until = back + c->backoff_max_ns + c->ttl_ns;
                c->recover_cap = cap;
            } else if (c->mode != RG_FLOW_LEASED) {
                c->recover_until = 0; /* everyone is back already */
            }
            c->ever_leased = true;
            c->lease = lr.grant;
            c->seen_rate = lr.rate;
            c->seen_rate_valid = true;
            /* while others may still be missing, the fair share Redis
             * computes is too large to fall back to */
            c->fair = back < c->recover_until && lr.fair > c->recover_cap
                          ? c->recover_cap
                          : lr.fair;
            c->live = (uint32_t)lr.live;
            c->leased_at = back;
            /* valid from when the request left: Redis's expiry starts
             * later, so we stop counting on it first */
            c->valid_until = sent + c->ttl_ns;
            c->backoff = 0;
            c->next_attempt = 0;
        } else {
            c->backoff = c->backoff == 0 ? c->lease_ns : 2 * c->backoff;
            if (c->backoff > c->backoff_max_ns)
                c->backoff = c->backoff_max_ns;
            c->next_attempt = back + (int64_t)jitter(c, c->backoff);
        }
        /* the usage reported goes with this attempt */
        c->last_consumed = u.consumed;
        c->last_throttled = u.throttled;
        c->last_usage = now;
    } else if (c->last_usage == 0) {
        c->last_usage = now;
    }
    now = mono_ns();
    if (ok)
        c->mode = RG_FLOW_LEASED;
    else /* failed now, or backing off after a failure */
        c->mode = c->ever_leased && now < c->valid_until ? RG_FLOW_HOLDING
                                                         : RG_FLOW_FALLBACK;
    uint64_t rate = rate_now(c, now);
    if (!c->applied || rate != c->applied_rate) {
        c->h.set_rate(c->h.opaque, rate, c->burst);
        c->applied = true;
        c->applied_rate = rate;
    }

    pthread_mutex_lock(&c->mu);
    rg_flow_redis_stats_t *st = &c->st;
    st->mode = c->mode;
    st->degraded = c->mode != RG_FLOW_LEASED;
    st->rate = rate;
    st->lease = c->lease;
    st->global_rate = c->seen_rate_valid ? c->seen_rate : c->global_conf;
    st->fair_share = c->fair;
    st->share = st->global_rate ? (double)c->lease / (double)st->global_rate
                                : 0.0;
    st->nodes = c->live;
    st->lease_age_ms = c->ever_leased ? (now - c->leased_at) / 1000000 : -1;
    if (ok)
        st->leases++;
    if (tried && !ok) {
        st->lease_errors++;
        snprintf(st->last_error, sizeof(st->last_error), "%s", err);
    }
    if (c->ctx == NULL)
        st->server[0] = '\0';
    st->consumed = u.consumed;
    st->throttled = u.throttled;
    pthread_mutex_unlock(&c->mu);
}

static void *lease_main(void *arg)
{
    rg_flow_redis_t *c = arg;
    int64_t next = mono_ns() + c->lease_ns;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop_req) {
            int64_t now = mono_ns();
            if (now >= next)
                break;
            struct timespec ts = {next / 1000000000, next % 1000000000};
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        if (c->stop_req)
            break;
        pthread_mutex_unlock(&c->mu);
        step(c);
        int64_t now = mono_ns();
        next += c->lease_ns;
        if (next <= now) /* an exchange ran long: restart the schedule */
            next = now + c->lease_ns;
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int rg_flow_redis_set_node_id(rg_flow_redis_t *c, const char *id,
                              char *errstr, size_t n)
{
    if (c->started) {
        seterr(errstr, n, "flow redis: the node id is set before start");
        return RG_ESTATE;
    }
    if (strlen(id) > 127) {
        seterr(errstr, n, "flow.node.id: longer than 127 characters");
        return RG_ERANGE;
    }
    snprintf(c->node_id, sizeof(c->node_id), "%s", id);
    sanitize(c->node_id);
    return 0;
}

const char *rg_flow_redis_node_id(const rg_flow_redis_t *c)
{
    return c->node_id;
}

int rg_flow_redis_start(rg_flow_redis_t *c, char *errstr, size_t n)
{
    if (c->started) {
        seterr(errstr, n, "flow redis: started already");
        return RG_ESTATE;
    }
    step(c);
    int rc = pthread_create(&c->th, NULL, lease_main, c);
    if (rc != 0) {
        seterr(errstr, n, "flow redis: cannot start the lease thread: %s",
               strerror(rc));
        close_ctx(c);
        return RG_ESYS;
    }
    c->started = true;
    return 0;
}

void rg_flow_redis_stop(rg_flow_redis_t *c)
{
    if (c == NULL || !c->started || c->joined)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop_req = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->th, NULL);
    c->joined = true;
    if (c->leave && c->ctx != NULL) {
        const char *argv[] = {"HDEL", c->ep.nodes_key, c->node_id};
        redisReply *r = command(c->ctx, 3, argv);
        if (r != NULL)
            freeReplyObject(r);
    }
    close_ctx(c);
}

void rg_flow_redis_destroy(rg_flow_redis_t *c)
{
    if (c == NULL)
        return;
    rg_flow_redis_stop(c);
    close_ctx(c);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    endpoint_fini(&c->ep);
    free(c);
}

void rg_flow_redis_stats(rg_flow_redis_t *c, rg_flow_redis_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}

const char *rg_flow_mode_name(int mode)
{
    switch (mode) {
    case RG_FLOW_LEASED: return "leased";
    case RG_FLOW_HOLDING: return "holding";
    case RG_FLOW_FALLBACK: return "fallback";
    default: return "unknown";
    }
}

/* ---- control ----------------------------------------------------------- */

static int cmp_node(const void *a, const void *b)
{
    return strcmp(((const rg_flow_node_t *)a)->id,
                  ((const rg_flow_node_t *)b)->id);
}

/* Parses one registry entry; false when it is not ours. */
static bool parse_entry(const char *id, const char *v, rg_flow_node_t *nd)
{
    memset(nd, 0, sizeof(*nd));
    long long exp, seen, pid;
    unsigned long long grant, cr, ct;
    long long wants;
    int mode, used = 0;
    if (sscanf(v, "%lld %llu %lld %llu %llu %lld %lld %d %n", &exp, &grant,
               &wants, &cr, &ct, &seen, &pid, &mode, &used) != 8 ||
        used == 0)
        return false;
    snprintf(nd->id, sizeof(nd->id), "%s", id);
    snprintf(nd->host, sizeof(nd->host), "%s", v + used);
    nd->pid = pid;
    nd->last_seen_ms = seen;
    nd->expires_in_ms = exp; /* made relative by the caller */
    nd->wants = wants;
    nd->granted = grant;
    nd->consumed_rate = cr;
    nd->consumed = ct;
    nd->mode = mode;
    return true;
}

int rg_flow_redis_show(const rg_flow_redis_opts_t *o, rg_flow_group_t *out,
                       char *errstr, size_t n)
{
    memset(out, 0, sizeof(*out));
    struct endpoint ep;
    int rc = endpoint_init(&ep, o, errstr, n);
    if (rc != 0)
        return rc;
    char where[272];
    redisContext *ctx = open_primary(&ep, where, sizeof(where), errstr, n);
    if (ctx == NULL) {
        endpoint_fini(&ep);
        return RG_EIO;
    }
    redisReply *t = NULL, *r = NULL, *h = NULL;
    const char *a_time[] = {"TIME"};
    const char *a_get[] = {"GET", ep.rate_key};
    const char *a_all[] = {"HGETALL", ep.nodes_key};
    rc = RG_EIO;
    if ((t = command(ctx, 1, a_time)) == NULL ||
        (r = command(ctx, 2, a_get)) == NULL ||
        (h = command(ctx, 2, a_all)) == NULL) {
        seterr(errstr, n, "redis %s: %s", where, ctx->errstr);
        goto out;
    }
    if (t->type != REDIS_REPLY_ARRAY || t->elements != 2 ||
        (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL) ||
        h->type != REDIS_REPLY_ARRAY || h->elements % 2 != 0) {
        const redisReply *bad = t->type == REDIS_REPLY_ERROR ? t
                                : r->type == REDIS_REPLY_ERROR ? r : h;
        seterr(errstr, n, "redis %s: %s", where,
               bad->type == REDIS_REPLY_ERROR ? bad->str : "odd reply");
        goto out;
    }
    out->server_time_ms = atoll(t->element[0]->str) * 1000 +
                          atoll(t->element[1]->str) / 1000;
    out->rate_set = r->type == REDIS_REPLY_STRING;
    out->global_rate = out->rate_set ? strtoull(r->str, NULL, 10) : 0;
    size_t cap = h->elements / 2;
    out->nodes = calloc(cap ? cap : 1, sizeof(*out->nodes));
    if (out->nodes == NULL) {
        rc = RG_ENOMEM;
        seterr(errstr, n, "out of memory");
        goto out;
    }
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        rg_flow_node_t *nd = &out->nodes[out->nnodes];
        if (h->element[i]->type != REDIS_REPLY_STRING ||
            h->element[i + 1]->type != REDIS_REPLY_STRING ||
            !parse_entry(h->element[i]->str, h->element[i + 1]->str, nd)) {
            seterr(errstr, n, "redis %s: %s holds an entry that is not a "
                              "railgun node's", where, ep.nodes_key);
            rc = RG_EDECODE;
            rg_flow_group_free(out);
            goto out;
        }
        if (nd->expires_in_ms <= out->server_time_ms)
            continue; /* dead: the next lease drops it */
        nd->expires_in_ms -= out->server_time_ms;
        nd->age_ms = out->server_time_ms - nd->last_seen_ms;
        out->granted_total += nd->granted;
        out->nnodes++;
    }
    qsort(out->nodes, out->nnodes, sizeof(*out->nodes), cmp_node);
    rc = 0;
out:
    if (t != NULL)
        freeReplyObject(t);
    if (r != NULL)
        freeReplyObject(r);
    if (h != NULL)
        freeReplyObject(h);
    redisFree(ctx);
    endpoint_fini(&ep);
    return rc;
}

void rg_flow_group_free(rg_flow_group_t *g)
{
    if (g == NULL)
        return;
    free(g->nodes);
    g->nodes = NULL;
    g->nnodes = 0;
}

int rg_flow_redis_set_global_rate(const rg_flow_redis_opts_t *o,
                                  uint64_t events_per_s, char *errstr,
                                  size_t n)
{
    if (events_per_s > (uint64_t)RATE_MAX) {
        seterr(errstr, n, "flow set: %" PRIu64 " events/s is above the "
                          "maximum %lld", events_per_s, RATE_MAX);
        return RG_ERANGE;
    }
    struct endpoint ep;
    int rc = endpoint_init(&ep, o, errstr, n);
    if (rc != 0)
        return rc;
    char where[272], val[24];
    redisContext *ctx = open_primary(&ep, where, sizeof(where), errstr, n);
    if (ctx == NULL) {
        endpoint_fini(&ep);
        return RG_EIO;
    }
    snprintf(val, sizeof(val), "%" PRIu64, events_per_s);
    const char *argv[] = {"SET", ep.rate_key, val};
    redisReply *r = command(ctx, 3, argv);
    rc = 0;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        seterr(errstr, n, "redis %s: SET: %s", where,
               r == NULL ? ctx->errstr : r->str);
        rc = RG_EIO;
    }
    if (r != NULL)
        freeReplyObject(r);
    redisFree(ctx);
    endpoint_fini(&ep);
    return rc;
}
