/*
 * run_flow.h - the group's global rate in `railgun run`: the Redis lease
 * client (railgun/redis.h) wired to the engine's token bucket, and the
 * Redis adapter's properties in a command's configuration (also for
 * `railgun flow`).
 *
 *   rg_run_flow_add_props(conf, ...);          // before --config / -X
 *   if (rg_run_flow_wanted(conf))
 *       rg_run_flow_new(conf, engine, &f, ...); // options checked here
 *   rg_engine_start(engine) ...
 *   rg_run_flow_start(f, ...);                 // before the source runs
 *   ... the run ...
 *   rg_run_flow_destroy(f);                    // after the source stopped,
 *                                              // before the engine goes
 *
 * The hooks (lease thread): set_rate sets the engine's RG_FLOW_GLOBAL
 * limit (and flow.burst.events when not 0); usage reports the engine's
 * accepted events (cumulative, monotonic whatever the limits do), the
 * bucket's throttled takes, and as cap the lowest non-zero of the LOCAL
 * and ADAPTIVE limits, so the node never asks the group for quota it
 * cannot use.
 *
 * Threads: new/start/destroy on the command's main thread; the client
 * (rg_run_flow_client()) may be read by rg_flow_redis_stats() from any
 * thread until destroy.
 */
#ifndef RG_RUN_FLOW_H
#define RG_RUN_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include "railgun/engine.h"
#include "railgun/redis.h"

typedef struct rg_run_flow_s rg_run_flow_t;

/* Adds the Redis adapter's rows (flow.redis.*, flow.lease.*,
 * flow.global.*, flow.fallback.*; the rows it shares with the core merge)
 * to conf. 0, or the rg_conf_add_table() error with errstr. */
int rg_run_flow_add_props(rg_conf_t *conf, char *errstr, size_t errstr_size);

/* True when the group's global rate is on: flow.global.rate.events.per.s
 * > 0 (the Redis rate key, once there, wins over it). */
bool rg_run_flow_wanted(const rg_conf_t *conf);

/* Options from conf into a new *out (rg_flow_redis_opts_destroy()).
 * 0, RG_ENOMEM, or RG_EINVAL / RG_ERANGE with errstr naming the
 * property. */
int rg_run_flow_opts(const rg_conf_t *conf, rg_flow_redis_opts_t **out,
                     char *errstr, size_t errstr_size);

/* The lease client for engine e, from conf; not started, nothing
 * connected. 0 with *out, or *out NULL and RG_ENOMEM, RG_EINVAL /
 * RG_ERANGE (a bad property or combination: errstr says which). */
int rg_run_flow_new(const rg_conf_t *conf, rg_engine_t *e,
                    rg_run_flow_t **out, char *errstr, size_t errstr_size);

/* The first lease (blocking up to a few flow.redis.timeout.ms), then the
 * lease thread. Redis not answering is not an error: the client starts
 * degraded, *degraded is set and errstr says where and why. Returns 0,
 * or RG_ESYS (no thread) with errstr. */
int rg_run_flow_start(rg_run_flow_t *f, bool *degraded, char *errstr,
                      size_t errstr_size);

/* The client, for its stats (NULL for NULL f). */
rg_flow_redis_t *rg_run_flow_client(const rg_run_flow_t *f);

/* Stops the client (it leaves the group unless flow.lease.leave=false)
 * and frees f; the engine's GLOBAL limit is left as it was. NULL is
 * fine. */
void rg_run_flow_destroy(rg_run_flow_t *f);

#endif /* RG_RUN_FLOW_H */
