/*
 * likes_job.h - the likes job: the reference processor, in batch mode.
 *
 *   unpack   (ingest thread) decodes a like (JSON or binary, like_codec.h)
 *            into the event's inline payload; key = video_id. Undecodable
 *            messages are counted per reason, logged once per
 *            `log_every`, and skipped (their offsets count as done).
 *   pre_do   (worker) loads the stored like state of every (video, user)
 *            in the batch that its worker cache does not hold, with one
 *            lookup query per 64 pairs.
 *   batch_do (worker) applies each transition: like when not liked: +1;
 *            unlike when liked: -1; a repeated like or unlike changes
 *            nothing. A change stages the `actions` row and merges the
 *            count delta into the worker's epoch delta (railgun/flush.h).
 *            Replayed events therefore change nothing.
 *
 * The worker cache maps (video, user) to its state and the epoch that last
 * changed it. Videos belong to one worker, so the cache is authoritative
 * for its pairs; an entry may be evicted only once the epoch that changed
 * it is committed (the database then holds that state). Past
 * `cache_max` entries the cache drops the committed ones.
 */
#ifndef RG_LIKES_JOB_H
#define RG_LIKES_JOB_H

#include <stddef.h>
#include <stdint.h>
#include "like_codec.h"
#include "railgun/railgun.h"

typedef struct rg_likes_job_s rg_likes_job_t;

typedef struct rg_likes_stats_s {
    uint64_t decoded;                      /* events unpack accepted */
    uint64_t undecodable;                  /* ... and rejected */
    uint64_t by_reason[RG_LIKE_E__COUNT];  /* rejections per reason */
    int32_t last_partition[RG_LIKE_E__COUNT]; /* where the last one of */
    int64_t last_offset[RG_LIKE_E__COUNT];    /* each reason was */
    uint64_t applied;                      /* state changes (+1 / -1) */
    uint64_t unchanged;                    /* repeats: no change */
    uint64_t lookups;                      /* pairs loaded from the sink */
    uint64_t lookup_retries;               /* failed lookups retried */
} rg_likes_stats_t;

/*
 * A job for `workers` threads (the engine's workers plus its hot lanes,
 * hotkey.lanes: rg_ctx_worker() of either) reading through `sink` (its reader side;
 * may lack one, then every pair starts not liked). `max_value_len` bounds
 * a message value (0: 64 KiB). NULL when out of memory.
 */
rg_likes_job_t *rg_likes_job_new(unsigned workers, const rg_sink_t *sink,
                                 size_t cache_max, size_t max_value_len);

/* The processor to create the engine with. */
void rg_likes_job_processor(rg_likes_job_t *job, rg_processor_t *out);

/* Where the job's lines go: conf's log callback (railgun/conf.h); conf
 * must outlive the job. Without it the job logs nothing. */
void rg_likes_job_set_log(rg_likes_job_t *job, const rg_conf_t *conf);

/*
 * A test aid (likes.fault.stall.*): every event of video `video` makes
 * its worker sleep `ms` ms before applying it, so its partition's
 * watermark stands on it (what `railgun doctor` calls a stuck watermark).
 * video < 0 or ms 0: off (the default). Before the engine starts.
 */
void rg_likes_job_set_fault_stall(rg_likes_job_t *job, int64_t video,
                                  unsigned ms);

/* Ends the stalls of rg_likes_job_set_fault_stall() now and for good (a
 * stop was asked: the stalled events are applied, so the drain ends).
 * Any thread; async-signal-safe. */
void rg_likes_job_fault_release(rg_likes_job_t *job);

/* The timestamp of the like a failure row holds (its payload: the
 * unpacked event, or the raw message for an undecodable one): 0, or
 * RG_EDECODE when the row holds no readable like. */
int rg_likes_failure_ts(const rg_failure_t *row, int64_t *ts);

/* The like a failure row of an unpacked event holds (not a raw message:
 * RG_EDECODE then, as for a payload that is not one). */
int rg_likes_failure_like(const rg_failure_t *row, rg_like_t *out);

/* The fault rows' values in conf into job (likes.fault.*: the stall,
 * transient failures and poison for the engine's retries, retry.h).
 * Before the engine starts. 0, or RG_EINVAL with errstr. */
int rg_likes_job_set_faults(rg_likes_job_t *job, const rg_conf_t *conf,
                            char *errstr, size_t size);

/* The metrics listener's rows (metrics.*), in every command's conf. */
const rg_conf_table_t *rg_likes_metrics_conf_table(void);

/* Counters summed over threads; call after the engine stopped for exact
 * figures (relaxed snapshots while it runs). */
void rg_likes_job_stats(rg_likes_job_t *job, rg_likes_stats_t *out);

/* Closes the readers and frees the job: after rg_engine_stop(), before
 * rg_engine_destroy() closes the sink the readers belong to. */
void rg_likes_job_destroy(rg_likes_job_t *job);

/* The `railgun` program's rows (layer "railgun", scope app): sink,
 * stats.interval.ms. */
const rg_conf_table_t *rg_likes_conf_table(void);

/* A configuration with every table the program uses: core, kafka,
 * sqlite, mysql and its own. NULL when out of memory. */
rg_conf_t *rg_likes_conf_new(void);

/*
 * Opens the sink the `sink` property names (sqlite, mysql, null) with its
 * properties; flags as in railgun/sinks.h. 0 or RG_E* with errstr.
 */
int rg_likes_open_sink(const rg_conf_t *conf, unsigned flags,
                       rg_sink_t *out, char *errstr, size_t errstr_size);

/*
 * Drops the database (mysql.database) or deletes the file and its WAL
 * side files (sqlite.path) that conf names: for the temporary databases
 * of `railgun demo` and `railgun bench`. 0, or -1 with errstr.
 */
int rg_likes_drop_db(const rg_conf_t *conf, char *errstr, size_t size);

#endif /* RG_LIKES_JOB_H */
