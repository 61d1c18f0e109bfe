/*
 * serve_conf.c - the rows of `railgun serve` and of the read cache
 * (layer "serve", scope app): serve.* for the service, cache.* for the
 * Redis cache that serve reads and `railgun run` updates.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include "railgun/error.h"
#include "serve.h"

static int check_mode(const char *name, const char *v, int64_t iv,
                      char *errstr, size_t size)
{
    (void)iv;
    if (strcmp(v, "async") == 0 || strcmp(v, "sync") == 0)
        return 0;
    snprintf(errstr, size, "%s: unknown mode \"%s\" (expected async or "
             "sync)", name, v);
    return RG_EINVAL;
}

static int check_ident(const char *name, const char *v, int64_t iv,
                       char *errstr, size_t size)
{
    (void)iv;
    size_t n = strlen(v);
    bool ok = n > 0 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = v[i] == '_' || (v[i] >= 'a' && v[i] <= 'z') ||
             (v[i] >= 'A' && v[i] <= 'Z') ||
             (i > 0 && v[i] >= '0' && v[i] <= '9');
    if (ok)
        return 0;
    snprintf(errstr, size, "%s: \"%s\" is not a table name (letters, "
             "digits and _, not starting with a digit, 1 to 64)", name, v);
    return RG_EINVAL;
}

static int check_prefix(const char *name, const char *v, int64_t iv,
                        char *errstr, size_t size)
{
    (void)iv;
    if (strlen(v) <= 200 && strpbrk(v, " \t\r\n") == NULL)
        return 0;
    snprintf(errstr, size, "%s: at most 200 bytes, no blanks", name);
    return RG_EINVAL;
}

static const rg_conf_prop_t serve_props[] = {
    {"serve.listen", RG_CONF_STR, "127.0.0.1:8080", 0, 0,
     "railgun serve: the HTTP listener, `host:port` (`[v6]:port`; port 0 "
     "picks a free one, printed at start; an empty host: every IPv4 "
     "address).", NULL},
    {"serve.mode", RG_CONF_STR, "async", 0, 0,
     "railgun serve: `async` produces each like to Kafka (`topic`, "
     "`kafka.*`) and answers 202 once the producer accepted it; `sync` is "
     "the synchronous baseline: each like in its own database transaction "
     "(state lookup FOR UPDATE, action upsert, count update), answered "
     "200 after the commit. sync writes no cache versions, so it reads "
     "the database only.", check_mode},
    {"serve.cache", RG_CONF_BOOL, "true", 0, 1,
     "railgun serve: read Redis first (cache.redis.*) and the database on "
     "a miss, then fill the cache; false reads the database only.", NULL},
    {"serve.threads", RG_CONF_INT, "4", 1, 64,
     "railgun serve: HTTP polling threads; each has its own database and "
     "Redis connections (a database read blocks only its own thread's "
     "connections).", NULL},
    {"serve.max.connections", RG_CONF_INT, "256", 1, 65536,
     "railgun serve: open HTTP connections at most (more wait in the "
     "kernel's backlog).", NULL},
    {"serve.body.max.bytes", RG_CONF_INT, "1048576", 64, 67108864,
     "railgun serve: largest request body; above it 413, before the body "
     "is read.", NULL},
    {"serve.request.timeout.ms", RG_CONF_INT, "10000", 1000, 3600000,
     "railgun serve: a request must be whole this long after its "
     "connection opened or its previous reply went out, else the "
     "connection is shut (slowloris); idle keep-alive connections close "
     "after the same time. Whole seconds (rounded up).", NULL},
    {"serve.batch.max", RG_CONF_INT, "1000", 1, 100000,
     "railgun serve: likes in one POST /v1/likes batch at most (413 "
     "above).", NULL},
    {"serve.read.max", RG_CONF_INT, "1000", 1, 4096,
     "railgun serve: video ids in one GET /v1/likes?video_ids= at most "
     "(413 above).", NULL},
    {"serve.sync.retries", RG_CONF_INT, "20", 0, 1000,
     "railgun serve, mode sync: times a like's transaction is retried "
     "after a deadlock or lock wait timeout before the request gets 503.",
     NULL},
    {"cache.redis.host", RG_CONF_STR, "127.0.0.1", 0, 0,
     "Read cache: Redis host (ignored when cache.redis.socket is set). "
     "railgun run updates the cache after each committed epoch only when "
     "cache.redis.host or cache.redis.socket is set.", NULL},
    {"cache.redis.port", RG_CONF_INT, "6379", 1, 65535,
     "Read cache: Redis TCP port.", NULL},
    {"cache.redis.socket", RG_CONF_STR, "", 0, 0,
     "Read cache: unix socket of Redis; when set, used instead of host "
     "and port.", NULL},
    {"cache.redis.user", RG_CONF_STR, "", 0, 0,
     "Read cache: Redis ACL user (empty: the default user; needs "
     "cache.redis.password).", NULL},
    {"cache.redis.password", RG_CONF_STR, "", 0, 0,
     "Read cache: Redis password (empty: no AUTH).", NULL},
    {"cache.redis.prefix", RG_CONF_STR, "railgun:cache:", 0, 0,
     "Read cache: prefix of every key (entries <prefix>c:VIDEO and "
     "<prefix>s:VIDEO:USER, the <prefix>floor and <prefix>applied "
     "versions).", check_prefix},
    {"cache.redis.ttl.ms", RG_CONF_INT, "60000", 1000, 86400000,
     "Read cache: entries expire this long after their last write: the "
     "longest a value can stay wrong when updates could not be written "
     "and no resync came (see docs).", NULL},
    {"cache.redis.timeout.ms", RG_CONF_INT, "100", 1, 60000,
     "Read cache: longest wait for a Redis connect or command; a slower "
     "Redis counts as down (reads go to the database).", NULL},
    {"cache.redis.backoff.max.ms", RG_CONF_INT, "1000", 1, 600000,
     "Read cache: after a failure a connection waits before dialing "
     "again, from cache.redis.timeout.ms doubling up to this.", NULL},
    {"cache.version.table", RG_CONF_STR, "railgun_meta", 0, 0,
     "Read cache: table (k, v) whose row k='version' every epoch "
     "transaction bumps; readers read it in the same snapshot as the "
     "values they cache.", check_ident},
    {"cache.update.queue.rows", RG_CONF_INT, "1000000", 1000, 100000000,
     "railgun run with a cache: rows (changed videos + staged pairs) of "
     "committed epochs waiting for the cache updater at most; an epoch "
     "that does not fit is dropped and the cache resynced (its entries "
     "read as misses).", NULL},
};

static const rg_conf_table_t serve_table = {
    .layer = "serve",
    .scope = RG_CONF_SCOPE_APP,
    .props = serve_props,
    .count = sizeof(serve_props) / sizeof(serve_props[0]),
};

const rg_conf_table_t *rg_serve_conf_table(void)
{
    return &serve_table;
}

void rg_serve_cache_options(const rg_conf_t *conf,
                            rg_cache_redis_options_t *o)
{
    rg_cache_redis_options_init(o);
    o->host = rg_conf_get_str(conf, "cache.redis.host");
    o->port = (int)rg_conf_get_int(conf, "cache.redis.port");
    o->socket = rg_conf_get_str(conf, "cache.redis.socket");
    o->user = rg_conf_get_str(conf, "cache.redis.user");
    o->password = rg_conf_get_str(conf, "cache.redis.password");
    o->prefix = rg_conf_get_str(conf, "cache.redis.prefix");
    o->ttl_ms = rg_conf_get_int(conf, "cache.redis.ttl.ms");
    o->timeout_ms = (unsigned)rg_conf_get_int(conf, "cache.redis.timeout.ms");
    o->backoff_max_ms =
        (unsigned)rg_conf_get_int(conf, "cache.redis.backoff.max.ms");
}

bool rg_serve_cache_wanted(const rg_conf_t *conf)
{
    return rg_conf_is_set(conf, "cache.redis.host") ||
           rg_conf_is_set(conf, "cache.redis.socket");
}
