/*
 * pipeline.h - the likes pipeline, assembled in one place for `railgun
 * demo`, `run` and `bench`: the sink the `sink` property names, the likes
 * job reading through it, the engine in epoch mode on that sink, and
 * optionally the epoch hook and a Kafka source feeding dispatcher 0.
 *
 * A command goes through the phases in this order:
 *
 *   rg_pipeline_t pl = {0};            closed: rg_pipeline_close() is a no-op
 *   rg_pipeline_open(&pl, conf, ...)   builds everything, or nothing
 *   rg_pipeline_claim(&pl, ...)        optional: the stored positions
 *   rg_pipeline_start(&pl, ...)        the engine's threads
 *   rg_pipeline_spawn_source(&pl, ...) optional: the source's poll loop on
 *                                      a thread of its own (else the
 *                                      caller runs rg_kafka_source_run())
 *   ... push or let the source run, read the stats ...
 *   rg_pipeline_stop(&pl)              graceful: the source stopped and
 *                                      joined, leaves its group (flush +
 *                                      commit), then the engine drains and
 *                                      stores its last epoch; stats read
 *                                      after it are final
 *   rg_pipeline_close(&pl)             stops if needed, frees in reverse
 *
 * Ownership: the pipeline owns everything it built. The sink belongs to
 * the engine once open() returns (rg_engine_destroy() closes it); `sink`
 * is a copy for claim() and the caller's read-backs (scan) until close().
 *
 * Errors: open, claim, start and spawn_source return 0 or a negative
 * RG_E* code with a one-line reason in errstr, and leave the pipeline as
 * it was. The engine's and the Kafka source's constructors say why they
 * failed in errstr only, and what they refuse is their configuration
 * (bad property combinations, a kafka.* setting librdkafka rejects), so
 * open() reports their failures as RG_EINVAL; out of memory there is
 * reported the same way.
 *
 * Threads: every call on the thread that opened the pipeline (the
 * command's main thread), except rg_pipeline_source_done(): any thread.
 */
#ifndef RG_PIPELINE_H
#define RG_PIPELINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "likes_job.h"
#include "railgun/kafka.h"
#include "railgun/railgun.h"

/* What to build beside the sink, job and engine. */
typedef struct rg_pipeline_opts_s {
    unsigned sink_flags;          /* RG_SINK_* (railgun/sinks.h) */
    bool kafka;                   /* a Kafka source on dispatcher 0 */
    rg_epoch_hook_cb *epoch_hook; /* NULL: none */
    void *epoch_hook_opaque;
    rg_epoch_commit_cb *commit_hook; /* NULL: none (the read cache) */
    void *commit_hook_opaque;
    /* after each successful claim of the Kafka source (every partition
     * assignment), on its thread; NULL: none */
    void (*on_claim)(void *opaque);
    void *on_claim_opaque;
} rg_pipeline_opts_t;

struct rg_claim_tap; /* pipeline.c: the source's view of the sink */

typedef struct rg_pipeline_s {
    /* read-only for the caller; NULL (zero) while closed */
    rg_engine_t *engine;
    rg_likes_job_t *job;
    rg_kafka_source_t *source; /* NULL without opts.kafka */
    rg_sink_t sink;            /* the engine's: for claim and scan */
    unsigned workers;
    /* private */
    bool started, stopped, source_spawned;
    uint64_t requeued;         /* delayed retries claim() handed back */
    pthread_t source_thread;
    _Atomic int source_done;
    struct rg_claim_tap *tap; /* with opts.on_claim */
} rg_pipeline_t;

/*
 * Builds the pipeline from conf (read, not kept: the engine and the
 * source take copies) into the closed pl. 0, or the sink's error code,
 * RG_ENOMEM, or RG_EINVAL (see Errors above), with pl still closed.
 */
int rg_pipeline_open(rg_pipeline_t *pl, const rg_conf_t *conf,
                     const rg_pipeline_opts_t *opts, char *errstr,
                     size_t errstr_size);

/*
 * Claims partitions 0 .. n - 1 in the sink (fencing any earlier owner)
 * and fills next[p] with the stored next offset of partition p, 0 where
 * none is stored (also for a sink that stores no positions). Without a
 * Kafka source it also hands the partitions' stored delayed retries back
 * to the workers (rg_engine_requeue(); the Kafka source does that at its
 * own assign). Before start(). 0, RG_ESTATE (started), RG_ENOMEM or the sink's error code.
 */
int rg_pipeline_claim(rg_pipeline_t *pl, unsigned n, int64_t *next,
                      char *errstr, size_t errstr_size);

/* Starts the engine (rg_engine_start()); its errors. */
int rg_pipeline_start(rg_pipeline_t *pl, char *errstr, size_t errstr_size);

/*
 * Runs the Kafka source's poll loop on a new thread, until stop(). After
 * start(). 0, RG_ESTATE (no source, not started, or spawned already) or
 * RG_ESYS (the thread could not be created).
 */
int rg_pipeline_spawn_source(rg_pipeline_t *pl, char *errstr,
                             size_t errstr_size);

/* True once the spawned source's poll loop has returned on its own (a
 * fatal error; rg_kafka_source_error() says which after stop()). */
bool rg_pipeline_source_done(rg_pipeline_t *pl);

/* The graceful stop (see above). Blocks until the engine has drained;
 * calling it again, or on a closed or never started pipeline, is
 * harmless. */
void rg_pipeline_stop(rg_pipeline_t *pl);

/* Stops if needed, frees everything, and leaves pl closed; a closed pl
 * is fine. */
void rg_pipeline_close(rg_pipeline_t *pl);

#endif /* RG_PIPELINE_H */
