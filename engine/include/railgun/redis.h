/*
 * redis.h - the Redis adapter (librailgun_redis): a consumer group's
 * global rate, leased to its nodes in slices that follow their demand,
 * and the group's node registry.
 *
 *   rg_flow_redis_opts_t *o = rg_flow_redis_opts_new();
 *   rg_flow_redis_opts_from_conf(o, conf, err, sizeof(err)); // or _set()
 *   rg_flow_redis_hooks_t h = {set_rate, usage, engine};
 *   rg_flow_redis_t *c = rg_flow_redis_new(o, &h, err, sizeof(err));
 *   rg_flow_redis_start(c, err, sizeof(err));  // first lease, then its thread
 *   ...                                        // set_rate() feeds the bucket
 *   rg_flow_redis_destroy(c);                  // stops, leaves the group
 *
 * The lease client runs on its own thread: every `flow.lease.ms` it runs
 * ONE Lua script on the Redis primary (EVALSHA, EVAL when the script cache
 * lost it) that records this node's demand and consumption, expires dead
 * nodes, and grants this node a slice of the group's global rate; it then
 * calls hooks.set_rate() with the rate the node's bucket should enforce.
 * The ingest path never waits for Redis: it only ever sees the bucket.
 *
 * Keys (prefix = flow.redis.prefix, g = group.id; the braces are a Redis
 * Cluster hash tag, so both keys live in one slot):
 *   <prefix>{<g>}:rate   the global rate, events/s (0: unlimited). Set by
 *                        rg_flow_redis_set_global_rate() (`railgun flow set
 *                        --rate N`); when missing, the first lease writes
 *                        the rate this node last saw there, else its
 *                        flow.global.rate.events.per.s.
 *   <prefix>{<g>}:nodes  hash: node id -> "expires_ms granted wants
 *                        consumed_rate consumed_total seen_ms pid mode
 *                        host" (times in Redis server ms); a node whose
 *                        entry is past expires_ms is dropped by the next
 *                        lease of any node.
 *
 * Grants: the group's rate is divided by max-min fairness (water-filling)
 * over the live nodes' wants: a node that was never throttled in its last
 * period wants 1.25 x what it consumed, a throttled one wants everything it
 * can get (at most its own limits, hooks.usage()'s cap); every node wants
 * at least rate / (8 x nodes). A node's grant is min(its fair target,
 * max(min(its current grant, target), rate - the others' current grants)):
 * it may shrink at once, and grows only into what the others leave, so
 * the sum of live grants never exceeds the global rate (except for one
 * lease period after the rate was lowered, while the others still hold
 * their old grants).
 *
 * Failures (NOTES-flow.md has the bounds): a lease is valid for
 * flow.lease.ttl.ms from the moment its request was sent, which ends no
 * later than Redis keeps counting it. Redis unreachable, slow (commands
 * are bounded by flow.redis.timeout.ms) or failing over: the node keeps
 * its last lease while valid (mode HOLDING), then moves linearly over
 * flow.fallback.decay.ms to flow.fallback.rate.events.per.s (default: the
 * last fair share, global / live nodes) and stays there (mode FALLBACK);
 * it reconnects with exponential backoff up to flow.redis.backoff.max.ms
 * and leases again when Redis answers. Coming back, a node asks for at
 * most its fallback rate until flow.redis.backoff.max.ms +
 * flow.lease.ttl.ms have passed, unless the registry shows every node it
 * knew before: the others may still be in fallback and not registered
 * again (a restarted Redis lost them), and must not lose their share. With flow.redis.sentinels set, the
 * primary's address comes from the first sentinel that answers SENTINEL
 * get-master-addr-by-name, re-checked every second and after any error,
 * and a server that does not report ROLE master is not used.
 *
 * Threads: rg_flow_redis_new/start/stop/destroy from one controlling
 * thread; rg_flow_redis_stats() from any thread. hooks.set_rate() and
 * hooks.usage() run on the lease thread (each also once inside
 * rg_flow_redis_start(), on its caller's thread, before the lease thread
 * exists), never at the same time as each other. The control calls
 * (rg_flow_redis_show(), rg_flow_redis_set_global_rate()) open their own
 * connection and may run on any thread, blocking up to a few timeouts.
 */
#ifndef RAILGUN_REDIS_H
#define RAILGUN_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_flow_redis_opts_s rg_flow_redis_opts_t;
typedef struct rg_flow_redis_s rg_flow_redis_t;

/* ---- options ---------------------------------------------------------- */

/* The adapter's properties (flow.redis.*, flow.lease.*, flow.global.*,
 * flow.fallback.*), plus the core's flow.rate.events.per.s,
 * flow.burst.events and group.id that the lease client reads too. */
RG_EXPORT size_t rg_flow_redis_prop_count(void);
RG_EXPORT const rg_conf_prop_t *rg_flow_redis_prop_at(size_t i);

/* Options holding every default; NULL when out of memory. */
RG_EXPORT rg_flow_redis_opts_t *rg_flow_redis_opts_new(void);
RG_EXPORT void rg_flow_redis_opts_destroy(rg_flow_redis_opts_t *o);

/*
 * Sets one of the properties above by name. Returns 0, RG_ENOENT
 * (unknown), RG_EINVAL (malformed), RG_ERANGE (out of bounds or too
 * long); on failure o is unchanged and errstr names the property.
 */
RG_EXPORT int rg_flow_redis_opts_set(rg_flow_redis_opts_t *o,
                                     const char *name, const char *value,
                                     char *errstr, size_t errstr_size);

/* Copies every one of the properties above that conf knows (rg_conf_get()
 * finds it) into o. Same errors as rg_flow_redis_opts_set(). */
RG_EXPORT int rg_flow_redis_opts_from_conf(rg_flow_redis_opts_t *o,
                                           const rg_conf_t *conf,
                                           char *errstr, size_t errstr_size);

/* ---- the lease client ------------------------------------------------- */

/* What the node did since the client started (cumulative counters). */
typedef struct rg_flow_usage_s {
    uint64_t consumed;   /* events the bucket admitted */
    uint64_t throttled;  /* takes that came back short (the node wanted
                            more than its rate) */
    uint64_t cap;        /* the lowest of the node's other limits now
                            (local rate, adaptive controller), events/s;
                            0: none. The node never asks for more. */
} rg_flow_usage_t;

typedef struct rg_flow_redis_hooks_s {
    /* The rate the node's bucket should enforce for the group's limit:
     * events/s, 0 meaning no global limit; burst: flow.burst.events, 0
     * for the bucket's automatic burst. Called when the rate changes. */
    void (*set_rate)(void *opaque, uint64_t events_per_s, uint64_t burst);
    /* Fills *out (zeroed before the call); once per lease period. */
    void (*usage)(void *opaque, rg_flow_usage_t *out);
    void *opaque;
} rg_flow_redis_hooks_t;

typedef enum rg_flow_mode_e {
    RG_FLOW_LEASED = 0,  /* the last lease succeeded */
    RG_FLOW_HOLDING,     /* Redis failing; the last lease is still valid */
    RG_FLOW_FALLBACK     /* no valid lease: decaying to, or at, fallback */
} rg_flow_mode_t;

/* Returns "leased", "holding", "fallback" ("unknown" otherwise). */
RG_EXPORT const char *rg_flow_mode_name(int mode);

typedef struct rg_flow_redis_stats_s {
    int mode;               /* rg_flow_mode_t */
    bool degraded;          /* mode != RG_FLOW_LEASED */
    uint64_t rate;          /* what set_rate() last got (0: unlimited) */
    uint64_t lease;         /* events/s of the last grant */
    uint64_t global_rate;   /* the group's, as last read (0: unlimited) */
    uint64_t fair_share;    /* global / live nodes, at the last lease */
    double share;           /* lease / global (0 when unlimited) */
    uint32_t nodes;         /* live nodes at the last lease */
    int64_t lease_age_ms;   /* since the last good lease; -1: none yet */
    uint64_t leases;        /* successful leases */
    uint64_t lease_errors;  /* failed attempts */
    uint64_t reconnects;    /* connections opened after the first */
    uint64_t master_changes;/* primary address changes (Sentinel) */
    uint64_t consumed;      /* the node's events, as usage() reported */
    uint64_t throttled;
    char server[272];       /* host:port or socket in use ("" if none) */
    char last_error[160];   /* the last failure, "" if none yet */
} rg_flow_redis_stats_t;

/*
 * A lease client for the group with options o (copied) and hooks h
 * (copied; set_rate and usage required). Nothing is connected yet.
 * NULL with a one-line reason in errstr (bad combination of options:
 * ttl below twice the lease period, no address, bad sentinel list).
 */
RG_EXPORT rg_flow_redis_t *rg_flow_redis_new(const rg_flow_redis_opts_t *o,
                                             const rg_flow_redis_hooks_t *h,
                                             char *errstr,
                                             size_t errstr_size);

/*
 * Replaces the node's id (flow.node.id, or the default HOST:PID:N) before
 * rg_flow_redis_start(): `railgun run` appends "@HOST:PORT", its metrics
 * listener's address, so that `railgun doctor` finds every node of the
 * group through Redis. Characters other than [A-Za-z0-9._:@[]-] become
 * '_'. 0, RG_ESTATE (started), RG_ERANGE (over 127 characters: errstr).
 */
RG_EXPORT int rg_flow_redis_set_node_id(rg_flow_redis_t *c, const char *id,
                                        char *errstr, size_t errstr_size);

/* The node's id as registered in Redis (valid until destroy). */
RG_EXPORT const char *rg_flow_redis_node_id(const rg_flow_redis_t *c);

/*
 * Tries a first lease (blocking up to a few flow.redis.timeout.ms: one
 * per sentinel asked, one per command), calls set_rate() with the leased
 * rate, or with the fallback when Redis did not answer, then starts the
 * lease thread. Returns 0, RG_ESTATE (started already) or RG_ESYS (no
 * thread: errstr says why). A Redis failure is not an error: the client
 * starts degraded and keeps trying.
 */
RG_EXPORT int rg_flow_redis_start(rg_flow_redis_t *c, char *errstr,
                                  size_t errstr_size);

/* Stops the lease thread (waits for an exchange in flight, at most a few
 * timeouts) and, unless flow.lease.leave is false, removes the node from
 * the registry so that the others get its share at once. set_rate() is
 * not called again. Harmless when not started or stopped already. */
RG_EXPORT void rg_flow_redis_stop(rg_flow_redis_t *c);

/* Stops (if needed) and frees; NULL is fine. */
RG_EXPORT void rg_flow_redis_destroy(rg_flow_redis_t *c);

/* A snapshot of the client's state; any thread. */
RG_EXPORT void rg_flow_redis_stats(rg_flow_redis_t *c,
                                   rg_flow_redis_stats_t *out);

/* ---- control: `railgun flow show|set`, `railgun doctor` ---------------- */

typedef struct rg_flow_node_s {
    char id[128];
    char host[128];
    int64_t pid;
    int64_t last_seen_ms;    /* Redis server time, ms since the epoch */
    int64_t age_ms;          /* how long before the read it leased */
    int64_t expires_in_ms;   /* when Redis stops counting its grant */
    int64_t wants;           /* events/s it asked for; -1: all it can get */
    uint64_t granted;        /* events/s leased */
    uint64_t consumed_rate;  /* events/s in its last period */
    uint64_t consumed;       /* events since it started */
    int mode;                /* rg_flow_mode_t it reported */
} rg_flow_node_t;

typedef struct rg_flow_group_s {
    uint64_t global_rate;    /* events/s; 0: unlimited */
    bool rate_set;           /* false: no rate key yet (no node leased) */
    int64_t server_time_ms;  /* Redis TIME at the read */
    uint64_t granted_total;  /* sum of the live nodes' grants */
    size_t nnodes;
    rg_flow_node_t *nodes;   /* live nodes, by id; rg_flow_group_free() */
} rg_flow_group_t;

/*
 * Reads the group's rate and its live nodes (expired entries are left
 * out). Returns 0, or RG_EIO (Redis unreachable, failed or timed out;
 * errstr says which), RG_EDECODE (an entry that is not ours), RG_ENOMEM.
 * Blocks up to a few timeouts; any thread.
 */
RG_EXPORT int rg_flow_redis_show(const rg_flow_redis_opts_t *o,
                                 rg_flow_group_t *out, char *errstr,
                                 size_t errstr_size);

/* Frees what rg_flow_redis_show() filled; NULL is fine. */
RG_EXPORT void rg_flow_group_free(rg_flow_group_t *g);

/*
 * Sets the group's global rate (0: unlimited); every node applies it at
 * its next lease, within one flow.lease.ms. Returns 0, RG_ERANGE (above
 * the bucket's maximum, 64e9), or RG_EIO. Blocks up to a few timeouts;
 * any thread.
 */
RG_EXPORT int rg_flow_redis_set_global_rate(const rg_flow_redis_opts_t *o,
                                            uint64_t events_per_s,
                                            char *errstr,
                                            size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_REDIS_H */
