/*
 * run_flow.c - the Redis lease client wired to `railgun run`'s engine
 * (run_flow.h).
 *
 * Invariants
 *   - The hooks only call the engine's any-thread flow calls; they run on
 *     the lease thread (and once on the caller's in start, before that
 *     thread exists), never two at a time, so `warned` needs no lock.
 *   - usage()'s consumed is the engine's `accepted`: cumulative and
 *     monotonic whatever the limits do (the bucket's `granted` counts only
 *     while limited, and the client subtracts successive values).
 *   - The engine outlives the client: destroy stops the lease thread
 *     before the command destroys the engine.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include "railgun/error.h"
#include "run_flow.h"

struct rg_run_flow_s {
    rg_engine_t *engine;
    const rg_conf_t *conf;   /* the command's: its log */
    rg_flow_redis_t *client;
    bool warned;             /* a refused limit was said (lease thread) */
};

int rg_run_flow_add_props(rg_conf_t *conf, char *errstr, size_t size)
{
    /* rg_conf_add_table() keeps the pointer: static storage */
    static rg_conf_table_t t;
    t = (rg_conf_table_t){.layer = "redis", .scope = RG_CONF_SCOPE_SOURCE,
                          .props = rg_flow_redis_prop_at(0),
                          .count = rg_flow_redis_prop_count()};
    return rg_conf_add_table(conf, &t, errstr, size);
}

bool rg_run_flow_wanted(const rg_conf_t *conf)
{
    return rg_conf_get_int(conf, "flow.global.rate.events.per.s") > 0;
}

int rg_run_flow_opts(const rg_conf_t *conf, rg_flow_redis_opts_t **out,
                     char *errstr, size_t size)
{
    rg_flow_redis_opts_t *o = rg_flow_redis_opts_new();
    *out = NULL;
    if (o == NULL) {
        snprintf(errstr, size, "flow: out of memory");
        return RG_ENOMEM;
    }
    int rc = rg_flow_redis_opts_from_conf(o, conf, errstr, size);
    if (rc != 0) {
        rg_flow_redis_opts_destroy(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* hooks.set_rate (lease thread): the group's share into the bucket */
static void set_rate(void *opaque, uint64_t rate, uint64_t burst)
{
    rg_run_flow_t *f = opaque;
    int rc = 0;
    if (burst != 0)
        rc = rg_engine_flow_set_burst(f->engine, burst);
    if (rc == 0)
        rc = rg_engine_flow_set_limit(f->engine, RG_FLOW_GLOBAL, rate);
    if (rc != 0) {
        /* the bucket refuses a burst above a day of the rate. Keeping the
         * previous (higher) limit would take more than the group granted:
         * fail safe to the lease's rate with the automatic burst */
        int rc2 = rg_engine_flow_set_burst(f->engine, 0);
        if (rc2 == 0)
            rc2 = rg_engine_flow_set_limit(f->engine, RG_FLOW_GLOBAL, rate);
        if (!f->warned) {
            rg_conf_log(f->conf, RG_LOG_WARN, "flow", "the bucket refused "
                        "the lease's rate %" PRIu64 "/s with burst %" PRIu64
                        " (%s): %s (said once)", rate, burst,
                        rg_strerror(rc),
                        rc2 == 0 ? "enforcing it with the automatic burst"
                                 : "the previous limit stays");
            f->warned = true;
        }
    }
}

/* hooks.usage (lease thread): what the node consumed and wanted */
static void usage(void *opaque, rg_flow_usage_t *out)
{
    rg_run_flow_t *f = opaque;
    rg_engine_stats_t st;
    rg_flow_stats_t fl;
    rg_engine_stats(f->engine, &st);
    rg_engine_flow_stats(f->engine, &fl);
    out->consumed = st.accepted;
    out->throttled = fl.throttled;
    uint64_t cap = 0;
    static const rg_flow_limit_t own[] = {RG_FLOW_LOCAL, RG_FLOW_ADAPTIVE};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        uint64_t l = fl.limit[own[i]];
        if (l != 0 && (cap == 0 || l < cap))
            cap = l;
    }
    out->cap = cap;
}

int rg_run_flow_new(const rg_conf_t *conf, rg_engine_t *e,
                    rg_run_flow_t **out, char *errstr, size_t size)
{
    *out = NULL;
    rg_flow_redis_opts_t *o = NULL;
    int rc = rg_run_flow_opts(conf, &o, errstr, size);
    if (rc != 0)
        return rc;
    rg_run_flow_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        rg_flow_redis_opts_destroy(o);
        snprintf(errstr, size, "flow: out of memory");
        return RG_ENOMEM;
    }
    f->engine = e;
    f->conf = conf;
    rg_flow_redis_hooks_t h = {.set_rate = set_rate, .usage = usage,
                               .opaque = f};
    char why[400];
    f->client = rg_flow_redis_new(o, &h, why, sizeof(why));
    rg_flow_redis_opts_destroy(o);
    if (f->client == NULL) {
        snprintf(errstr, size, "flow: %s", why);
        free(f);
        return RG_EINVAL;
    }
    *out = f;
    return 0;
}

int rg_run_flow_start(rg_run_flow_t *f, bool *degraded, char *errstr,
                      size_t size)
{
    *degraded = false;
    int rc = rg_flow_redis_start(f->client, errstr, size);
    if (rc != 0)
        return rc;
    rg_flow_redis_stats_t st;
    rg_flow_redis_stats(f->client, &st);
    if (st.degraded) {
        *degraded = true;
        snprintf(errstr, size, "Redis not answering (%s): enforcing %"
                 PRIu64 "/s without a lease (flow.fallback.rate.events."
                 "per.s, else the global rate) and retrying",
                 st.last_error[0] ? st.last_error : "no reply", st.rate);
    }
    return 0;
}

rg_flow_redis_t *rg_run_flow_client(const rg_run_flow_t *f)
{
    return f != NULL ? f->client : NULL;
}

void rg_run_flow_destroy(rg_run_flow_t *f)
{
    if (f == NULL)
        return;
    rg_flow_redis_destroy(f->client); /* no hook runs after it */
    free(f);
}
