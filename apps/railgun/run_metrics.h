/*
 * run_metrics.h - `railgun run`'s metrics listener: a registry whose
 * values are read from the pipeline's stats calls at every render
 * (rg_engine_stats, rg_engine_flush_stats, rg_engine_partition_stats,
 * rg_kafka_source_stats and _partitions, rg_likes_job_stats, the cache
 * job's), so the hot path writes nothing for it; served on
 * `metrics.listen` with /metrics, /stats.json, /healthz, /readyz,
 * /doctor.json (doctor inside the node) and the dashboard at /.
 *
 *   rg_run_metrics_t *rm;
 *   rg_run_metrics_start(conf, &pl, cache, flow, dlq, &rm, err,
 *                        sizeof(err));
 *                                   // after rg_pipeline_open(), before
 *                                   // the run
 *   ... the run ...
 *   rg_run_metrics_stop(rm);        // before rg_pipeline_close()
 *
 * Threads: start and stop on the command's main thread. The collectors
 * and the probes run on the listener's polling threads and on doctor's
 * sampler thread; they only call the pipeline's stats functions, which
 * are any-thread, and read the listener's stats under `mu` (stop clears
 * the pointer under it before the listener goes).
 */
#ifndef RG_RUN_METRICS_H
#define RG_RUN_METRICS_H

#include <stddef.h>
#include "cache_job.h"
#include "pipeline.h"
#include "railgun/redis.h"
#include "run_dlq.h"

typedef struct rg_run_metrics_s rg_run_metrics_t;

/*
 * Builds the registry over pl (and cache, NULL when there is none; and
 * flow, the Redis lease client, NULL when there is none: its lease,
 * degraded mode and railgun_connected{component="redis"} are exported
 * only with it, once it tried its first lease; and dlq, the dlq.topic
 * forwarder, NULL when there is none: railgun_dlq_* only with it), binds
 * metrics.listen and starts serving. pl and cache must stay open until
 * rg_run_metrics_stop(). Returns 0 with *out set, or *out NULL and 0 when
 * there is no listener: metrics.listen is "", or it is the default and
 * that address is taken (warned through conf's log: the run goes on
 * without one). Else a negative RG_E* code with a one-line reason in
 * errstr and *out NULL: an address set explicitly that cannot be bound
 * or is malformed (RG_EINVAL: the command refuses to start), out of
 * memory (RG_ENOMEM), threads that could not start (RG_ESYS).
 */
int rg_run_metrics_start(const rg_conf_t *conf, rg_pipeline_t *pl,
                         rg_cache_job_t *cache, rg_flow_redis_t *flow,
                         rg_run_dlq_t *dlq, rg_run_metrics_t **out,
                         char *errstr, size_t errstr_size);

/* The address served ("127.0.0.1:9464", the port picked for 0). */
const char *rg_run_metrics_address(const rg_run_metrics_t *rm);

/* Stops the listener (no handler runs after it), doctor's sampler, and
 * frees the registry. NULL is fine. */
void rg_run_metrics_stop(rg_run_metrics_t *rm);

#endif /* RG_RUN_METRICS_H */
