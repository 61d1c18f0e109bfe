/*
 * run_metrics.c - `railgun run`'s metrics listener (run_metrics.h).
 *
 * Every value is collected: one collector reads the pipeline's stats
 * snapshots at render time, so scraping adds nothing to the workers',
 * the dispatcher's or the flusher's paths, and a render costs one pass
 * over the held partitions (bounded by ack.max.partitions).
 *
 * Invariants
 *   - Only what the engine measures today is exported (NOTES-wire15.md
 *     lists what is not: retries, DLQ, hot keys, per-worker
 *     busy time, the transaction histogram): a missing family makes
 *     doctor say nothing, a constant zero would make it wrong.
 *   - Label sets are bounded: partitions by ack.max.partitions (the
 *     families' cap equals it), workers by `workers`, reasons by the
 *     codec's fixed list, components and classes by constants.
 *   - Teardown order: listener (no handler after it), doctor's sampler
 *     (no render after it), registry. The collector reads the listener's
 *     stats through `http` under `mu`, cleared before the listener goes:
 *     the sampler may render between the two.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dashboard.h"
#include "live.h"
#include "railgun/http.h"
#include "railgun/metrics.h"
#include "run_metrics.h"

enum {
    F_CONSUMED, F_ACCEPTED, F_PROCESSED, F_UNDECODABLE, F_REASON,
    F_REJECTED, F_COMMITTED, F_HW, F_LAG, F_PENDING, F_AGE, F_PAUSED,
    F_W_EVENTS, F_D_WAITS, F_D_PARKS, F_EPOCHS, F_TRANSACTIONS,
    F_EPOCH_RETRIES, F_EPOCHS_PENDING, F_SINK_FAILING, F_CONNECTED,
    F_CONN_ERRORS, F_KAFKA_COMMITS, F_KAFKA_COMMIT_ERRORS, F_SOURCE_PAUSES,
    F_CACHE_SKIPPED, F_CACHE_DROPPED, F_CACHE_RESYNCS, F_CACHE_ERRORS,
    F_FLOW_LIMIT, F_FLOW_TOKENS, F_FLOW_THROTTLED, F_FLOW_LEASE,
    F_FLOW_DEGRADED, F_FLOW_ADAPTIVE, F_FLOW_TARGET, F_FLOW_SINK_LATENCY,
    F_FLOW_CUTS, F_FLOW_RAISES, F_HTTP,
    F_RETRIED, F_DELAYED, F_DEAD, F_WAITING, F_RECOVERED,
    F_DLQ_FORWARDED, F_DLQ_FAILED, F_DLQ_PENDING,
    F_W_BUSY, F_W_PARKS, F_W_RING, F_TXN_SECONDS, F_TXN_ROWS,
    F_HOT_SHARE, F_HOT_KEYS, F_HOT_CHANGES, F_LANE_EVENTS,
    F__COUNT
};

static const char *const l_tp[] = {"topic", "partition"};
static const char *const l_w[] = {"worker"};
static const char *const l_lane[] = {"lane"};
static const char *const l_d[] = {"dispatcher"};
static const char *const l_comp[] = {"component"};
static const char *const l_reason[] = {"reason"};
static const char *const l_class[] = {"class"};
static const char *const l_key[] = {"key"};
static const char *const l_dir[] = {"direction"};

/* hot keys exported by share: the top few (a bounded label set) */
#define HOT_TOP 10

/* max 0: per-partition families, capped at ack.max.partitions */
static const struct fam {
    rg_metric_kind_t kind;
    const char *name, *unit, *help;
    const char *const *labels;
    unsigned nlabels, max;
    bool cache; /* only with the read cache */
    bool flow;  /* only with the lease client */
    bool adapt; /* only with flow.sink.latency.target.ms */
    bool dlq;   /* only with dlq.topic */
    bool hot;   /* only with hotkey.enable */
    bool lanes; /* only with hotkey.lanes */
} fams[F__COUNT] = {
    [F_CONSUMED] = {RG_METRIC_COUNTER, "events_consumed", NULL,
        "Messages the Kafka source handed to the engine.", NULL, 0, 1, 0},
    [F_ACCEPTED] = {RG_METRIC_COUNTER, "events_accepted", NULL,
        "Events the engine accepted into its rings.", NULL, 0, 1, 0},
    [F_PROCESSED] = {RG_METRIC_COUNTER, "events_processed", NULL,
        "Events the processors finished.", NULL, 0, 1, 0},
    [F_UNDECODABLE] = {RG_METRIC_COUNTER, "events_undecodable", NULL,
        "Messages that did not decode (skipped; their offsets count as "
        "done).", NULL, 0, 1, 0},
    [F_REASON] = {RG_METRIC_COUNTER, "likes_undecodable", NULL,
        "Messages the likes job could not decode, by reason.", l_reason, 1,
        RG_LIKE_E__COUNT, 0},
    [F_REJECTED] = {RG_METRIC_COUNTER, "events_rejected", NULL,
        "Pushes the engine refused (bad partition or offset).", NULL, 0, 1,
        0},
    [F_COMMITTED] = {RG_METRIC_GAUGE, "partition_committed_offset", NULL,
        "The first offset not done yet (the engine's watermark; what the "
        "next epoch stores).", l_tp, 2, 0, 0},
    [F_HW] = {RG_METRIC_GAUGE, "partition_high_watermark", NULL,
        "The end of the partition's log, as the last fetch saw it.", l_tp,
        2, 0, 0},
    [F_LAG] = {RG_METRIC_GAUGE, "partition_lag", NULL,
        "High watermark minus committed offset.", l_tp, 2, 0, 0},
    [F_PENDING] = {RG_METRIC_GAUGE, "partition_pending_events", NULL,
        "Events accepted and not processed yet.", l_tp, 2, 0, 0},
    [F_AGE] = {RG_METRIC_GAUGE, "partition_oldest_pending_age", "seconds",
        "How long the watermark has stood on its oldest pending event (0: "
        "nothing pending).", l_tp, 2, 0, 0},
    [F_PAUSED] = {RG_METRIC_GAUGE, "partition_paused", NULL,
        "1 while the partition is paused for backpressure.", l_tp, 2, 0, 0},
    [F_W_EVENTS] = {RG_METRIC_COUNTER, "worker_events", NULL,
        "Events each worker processed.", l_w, 1, 1024, 0},
    [F_D_WAITS] = {RG_METRIC_COUNTER, "dispatcher_waits", NULL,
        "Times the dispatcher waited for ring space.", l_d, 1, 1, 0},
    [F_D_PARKS] = {RG_METRIC_COUNTER, "dispatcher_parks", NULL,
        "Times the dispatcher parked waiting for ring space.", l_d, 1, 1,
        0},
    [F_EPOCHS] = {RG_METRIC_COUNTER, "epochs", NULL,
        "Epochs committed to the sink.", NULL, 0, 1, 0},
    [F_TRANSACTIONS] = {RG_METRIC_COUNTER, "epoch_transactions", NULL,
        "Sink transactions committed (non-empty epochs).", NULL, 0, 1, 0},
    [F_EPOCH_RETRIES] = {RG_METRIC_COUNTER, "epoch_retries", NULL,
        "Sink transactions rolled back and retried.", NULL, 0, 1, 0},
    [F_EPOCHS_PENDING] = {RG_METRIC_GAUGE, "epochs_pending", NULL,
        "Epochs sealed or requested, not committed yet.", NULL, 0, 1, 0},
    [F_SINK_FAILING] = {RG_METRIC_GAUGE, "sink_failing_attempts", NULL,
        "Failed attempts of the epoch being written now (0: the sink is "
        "healthy).", NULL, 0, 1, 0},
    [F_CONNECTED] = {RG_METRIC_GAUGE, "connected", NULL,
        "1 while the component answers (kafka: some broker is up; sink: "
        "the last transaction attempt succeeded; redis, with a global "
        "rate: the last lease succeeded).", l_comp, 1, 4, 0},
    [F_CONN_ERRORS] = {RG_METRIC_COUNTER, "connection_errors", NULL,
        "Errors librdkafka reported (it retries them).", l_comp, 1, 4, 0},
    [F_KAFKA_COMMITS] = {RG_METRIC_COUNTER, "kafka_commits", NULL,
        "Offset commits sent to the consumer group.", NULL, 0, 1, 0},
    [F_KAFKA_COMMIT_ERRORS] = {RG_METRIC_COUNTER, "kafka_commit_errors",
        NULL, "Offset commits that failed (retried with the next).", NULL,
        0, 1, 0},
    [F_SOURCE_PAUSES] = {RG_METRIC_COUNTER, "source_pauses", NULL,
        "Times the source paused its partitions for backpressure.", NULL, 0,
        1, 0},
    [F_CACHE_SKIPPED] = {RG_METRIC_COUNTER, "cache_updates_skipped", NULL,
        "Cache updates skipped (the entry was newer).", NULL, 0, 1, 1},
    [F_CACHE_DROPPED] = {RG_METRIC_COUNTER, "cache_epochs_dropped", NULL,
        "Committed epochs the cache updater dropped (queue full: resync).",
        NULL, 0, 1, 1},
    [F_CACHE_RESYNCS] = {RG_METRIC_COUNTER, "cache_resyncs", NULL,
        "Times the read cache was resynced.", NULL, 0, 1, 1},
    [F_CACHE_ERRORS] = {RG_METRIC_COUNTER, "cache_errors", NULL,
        "Errors of the cache updater's Redis calls.", NULL, 0, 1, 1},
    [F_FLOW_LIMIT] = {RG_METRIC_GAUGE, "flow_limit_events_per_second", NULL,
        "The rate the node's token bucket enforces now (the lowest of its "
        "limits; 0: unlimited).", NULL, 0, 1, 0},
    [F_FLOW_TOKENS] = {RG_METRIC_GAUGE, "flow_tokens", NULL,
        "Tokens in the node's bucket now (0 while unlimited).", NULL, 0, 1,
        0},
    [F_FLOW_THROTTLED] = {RG_METRIC_COUNTER, "flow_throttled", "seconds",
        "Time the ingest path waited for flow control's tokens.", NULL, 0,
        1, 0},
    [F_FLOW_LEASE] = {RG_METRIC_GAUGE, "flow_lease_events_per_second", NULL,
        "This node's lease of the group's global rate (the last grant from "
        "Redis).", NULL, 0, 1, 0, 1},
    [F_FLOW_DEGRADED] = {RG_METRIC_GAUGE, "flow_degraded", NULL,
        "1 while the node has no fresh lease from Redis (holding its last "
        "one, or at its fallback rate).", NULL, 0, 1, 0, 1},
    [F_FLOW_ADAPTIVE] = {RG_METRIC_GAUGE,
        "flow_adaptive_limit_events_per_second", NULL,
        "The adaptive limit (flow.sink.latency.target.ms): the rate the "
        "sink's transaction times allow now; 0 while it does not limit.",
        NULL, 0, 1, 0, 0, 1},
    [F_FLOW_TARGET] = {RG_METRIC_GAUGE, "flow_sink_latency_target",
        "seconds", "The transaction time the adaptive limit aims at "
        "(flow.sink.latency.target.ms).", NULL, 0, 1, 0, 0, 1},
    [F_FLOW_SINK_LATENCY] = {RG_METRIC_GAUGE, "flow_sink_latency",
        "seconds", "The last epoch's transaction time (begin to commit "
        "returned, millisecond resolution): what the adaptive limit "
        "compares with its target (absent before the first).", NULL, 0, 1, 0, 0, 1},
    [F_FLOW_CUTS] = {RG_METRIC_COUNTER, "flow_adaptive_cuts", NULL,
        "Times the adaptive limit cut the rate (transactions slower than "
        "the target).", NULL, 0, 1, 0, 0, 1},
    [F_FLOW_RAISES] = {RG_METRIC_COUNTER, "flow_adaptive_raises", NULL,
        "Times the adaptive limit raised the rate again, or let go (its "
        "limit no longer binds).", NULL, 0, 1, 0, 0, 1},
    [F_HTTP] = {RG_METRIC_COUNTER, "http_requests", NULL,
        "Requests this listener answered, by status class.", l_class, 1, 3,
        0},
    /* failures (railgun/retry.h) */
    [F_RETRIED] = {RG_METRIC_COUNTER, "events_retried", NULL,
        "Attempts a processor marked for a retry (rg_ctx_retry()).", NULL,
        0, 1, 0},
    [F_DELAYED] = {RG_METRIC_COUNTER, "events_delayed", NULL,
        "Events that moved to the delayed retry queue (in-place attempts "
        "used up, or waiting at an epoch's barrier).", NULL, 0, 1, 0},
    [F_DEAD] = {RG_METRIC_COUNTER, "events_dead_lettered", NULL,
        "Events and messages dead-lettered, by reason (failed, attempts, "
        "age, undecodable, unrunnable).", l_reason, 1, RG_DEAD__COUNT, 0},
    [F_WAITING] = {RG_METRIC_GAUGE, "events_waiting", NULL,
        "Events waiting now for a retry, or behind one of their key.", NULL,
        0, 1, 0},
    [F_RECOVERED] = {RG_METRIC_COUNTER, "events_recovered", NULL,
        "Waiting events applied at last.", NULL, 0, 1, 0},
    /* the workers' load (rg_engine_worker_stats()) */
    [F_W_BUSY] = {RG_METRIC_COUNTER, "worker_busy", "seconds",
        "Time each worker was not idle (rate(): its busy ratio).", l_w, 1,
        1024, 0},
    [F_W_PARKS] = {RG_METRIC_COUNTER, "worker_parks", NULL,
        "Times each worker parked with nothing to do.", l_w, 1, 1024, 0},
    [F_W_RING] = {RG_METRIC_GAUGE, "worker_ring_fill", "ratio",
        "The share of each worker's input ring slots holding events now "
        "(1: full, intake waits).", l_w, 1, 1024, 0},
    /* the sink's transactions (rg_engine_flush_hist()) */
    [F_TXN_SECONDS] = {RG_METRIC_HISTOGRAM, "epoch_transaction", "seconds",
        "Committed epoch transactions by time, begin to commit returned.",
        NULL, 0, 1, 0},
    [F_TXN_ROWS] = {RG_METRIC_HISTOGRAM, "epoch_rows", NULL,
        "Committed epoch transactions by rows written (merged + staged).",
        NULL, 0, 1, 0},
    /* the dlq.topic forwarder (run_dlq.h) */
    [F_DLQ_FORWARDED] = {RG_METRIC_COUNTER, "dlq_forwarded", NULL,
        "Dead letters produced to dlq.topic and marked forwarded.", NULL, 0,
        1, 0, 0, 0, 1},
    [F_DLQ_FAILED] = {RG_METRIC_COUNTER, "dlq_forward_failures", NULL,
        "Deliveries to dlq.topic that failed (the letter goes out again at "
        "a later look).", NULL, 0, 1, 0, 0, 0, 1},
    [F_DLQ_PENDING] = {RG_METRIC_GAUGE, "dlq_forward_pending", NULL,
        "Dead letters of the held partitions not forwarded after the last "
        "look.", NULL, 0, 1, 0, 0, 0, 1},
    /* hot-key detection (rg_engine_hot_keys()) */
    [F_HOT_SHARE] = {RG_METRIC_GAUGE, "hot_key_share", "ratio",
        "The hottest keys' share of the window's events (the top 10 of "
        "the hot ones; the key is the routing key, the video for likes).",
        l_key, 1, HOT_TOP, 0, 0, 0, 0, 1},
    [F_HOT_KEYS] = {RG_METRIC_GAUGE, "hot_keys", NULL,
        "Keys hot now (hotkey.share of a dispatcher's window).", NULL, 0, 1,
        0, 0, 0, 0, 1},
    [F_HOT_CHANGES] = {RG_METRIC_COUNTER, "hot_key_changes", NULL,
        "Keys that turned hot and that cooled again, so far.", l_dir, 1, 2,
        0, 0, 0, 0, 1},
    [F_LANE_EVENTS] = {RG_METRIC_COUNTER, "lane_events", NULL,
        "Events each hot lane processed (hotkey.lanes).", l_lane, 1, 1024,
        0, 0, 0, 0, 1, 1},
};

struct rg_run_metrics_s {
    rg_pipeline_t *pl;
    rg_cache_job_t *cache;
    rg_flow_redis_t *flow;       /* the lease client, or NULL */
    rg_run_dlq_t *dlq;           /* the dlq.topic forwarder, or NULL */
    bool hot;                    /* hotkey.enable */
    bool lanes;                  /* hotkey.lanes > 0 */
    int64_t target_ms;           /* flow.sink.latency.target.ms, 0: off */
    const rg_conf_t *conf;
    const char *topic;
    rg_metrics_t *m;
    rg_metric_family_t *f[F__COUNT];
    rg_kafka_partition_t *parts; /* [max_parts], the collector's scratch
                                    (renders are serialized) */
    size_t max_parts;
    uint64_t busy_last[1024];    /* the collector's: worker_busy as
                                    exported last (kept monotonic) */
    rg_doctor_live_t *doctor;
    pthread_mutex_t mu;          /* http, for the collector */
    rg_http_t *http;
    char address[300];
};

static void collect(rg_metrics_scrape_t *s, void *opaque)
{
    rg_run_metrics_t *rm = opaque;
    rg_engine_t *e = rm->pl->engine;
    rg_engine_stats_t st;
    rg_flush_stats_t fs;
    rg_kafka_stats_t ks;
    rg_likes_stats_t ls;
    rg_engine_stats(e, &st);
    rg_engine_flush_stats(e, &fs);
    rg_kafka_source_stats(rm->pl->source, &ks);
    rg_likes_job_stats(rm->pl->job, &ls);
    rg_metric_family_t *const *f = rm->f;

    rg_metrics_collect_u64(s, f[F_CONSUMED], NULL, ks.consumed);
    rg_metrics_collect_u64(s, f[F_ACCEPTED], NULL, st.accepted);
    rg_metrics_collect_u64(s, f[F_PROCESSED], NULL, st.processed);
    rg_metrics_collect_u64(s, f[F_UNDECODABLE], NULL, st.undecodable);
    for (int k = 1; k < RG_LIKE_E__COUNT; k++)
        rg_metrics_collect_u64(s, f[F_REASON],
                               (const char *[]){
                                   rg_like_err_name((rg_like_err_t)k)},
                               ls.by_reason[k]);
    rg_metrics_collect_u64(s, f[F_REJECTED], NULL, st.rejected);

    /* the partitions held now: an unheld one is another node's */
    size_t n = rg_kafka_source_partitions(rm->pl->source, rm->parts,
                                          rm->max_parts);
    if (n > rm->max_parts)
        n = rm->max_parts;
    for (size_t i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%" PRId32, rm->parts[i].partition);
        const char *v[] = {rm->topic, id};
        int64_t hw = rm->parts[i].high_watermark;
        rg_partition_stats_t ps;
        /* RG_ENOENT until its first event: nothing pending, and where
         * it stands is not known here (no committed offset nor lag) */
        bool seen = rg_engine_partition_stats(e, rm->parts[i].partition,
                                              &ps) == 0;
        if (seen)
            rg_metrics_collect_i64(s, f[F_COMMITTED], v, ps.committable);
        if (hw >= 0)
            rg_metrics_collect_i64(s, f[F_HW], v, hw);
        if (seen && hw >= 0) /* the fetch may predate the watermark */
            rg_metrics_collect_i64(s, f[F_LAG], v, hw > ps.committable
                                                      ? hw - ps.committable
                                                      : 0);
        rg_metrics_collect_u64(s, f[F_PENDING], v, seen ? ps.pending : 0);
        rg_metrics_collect_f64(s, f[F_AGE], v,
                               seen ? (double)ps.oldest_pending_ms / 1e3
                                    : 0.0);
        /* the source pauses its whole assignment */
        rg_metrics_collect_u64(s, f[F_PAUSED], v, ks.paused ? 1 : 0);
    }

    for (unsigned w = 0; w < st.workers; w++) {
        char id[16];
        snprintf(id, sizeof(id), "%u", w);
        rg_metrics_collect_u64(s, f[F_W_EVENTS], (const char *[]){id},
                               rg_engine_worker_processed(e, w));
        rg_worker_stats_t ws;
        if (rg_engine_worker_stats(e, w, &ws) != 0)
            continue;
        if (w < 1024) {
            if (ws.busy_ns < rm->busy_last[w])
                ws.busy_ns = rm->busy_last[w]; /* see the call's doc */
            rm->busy_last[w] = ws.busy_ns;
        }
        rg_metrics_collect_f64(s, f[F_W_BUSY], (const char *[]){id},
                               (double)ws.busy_ns / 1e9);
        rg_metrics_collect_u64(s, f[F_W_PARKS], (const char *[]){id},
                               ws.parks);
        rg_metrics_collect_f64(s, f[F_W_RING], (const char *[]){id},
                               ws.ring_capacity
                                   ? (double)ws.ring_used /
                                         (double)ws.ring_capacity
                                   : 0.0);
    }
    for (unsigned l = 0; l < st.lanes; l++) {
        char id[16];
        snprintf(id, sizeof(id), "%u", l);
        rg_metrics_collect_u64(s, f[F_LANE_EVENTS], (const char *[]){id},
                               rg_engine_worker_processed(e, st.workers + l));
    }
    rg_flush_hist_t fh;
    rg_engine_flush_hist(e, &fh);
    rg_metrics_collect_histogram(s, f[F_TXN_SECONDS], NULL, fh.txn_counts,
                                 RG_FLUSH_TXN_BUCKETS + 1,
                                 fh.txn_seconds_sum);
    rg_metrics_collect_histogram(s, f[F_TXN_ROWS], NULL, fh.rows_counts,
                                 RG_FLUSH_ROWS_BUCKETS + 1,
                                 (double)fh.rows_sum);
    /* the engine counts over its dispatchers; `run` has one */
    if (st.dispatchers == 1) {
        rg_metrics_collect_u64(s, f[F_D_WAITS], (const char *[]){"0"},
                               st.dispatcher_waits);
        rg_metrics_collect_u64(s, f[F_D_PARKS], (const char *[]){"0"},
                               st.dispatcher_parks);
    }

    rg_metrics_collect_u64(s, f[F_EPOCHS], NULL, fs.epochs);
    rg_metrics_collect_u64(s, f[F_TRANSACTIONS], NULL, fs.transactions);
    rg_metrics_collect_u64(s, f[F_EPOCH_RETRIES], NULL, fs.retries);
    rg_metrics_collect_u64(s, f[F_EPOCHS_PENDING], NULL, fs.pending_epochs);
    rg_metrics_collect_u64(s, f[F_SINK_FAILING], NULL, fs.failing);
    rg_metrics_collect_u64(s, f[F_CONNECTED], (const char *[]){"kafka"},
                           ks.brokers_down_ms == 0);
    rg_metrics_collect_u64(s, f[F_CONNECTED], (const char *[]){"sink"},
                           fs.failing == 0);
    rg_metrics_collect_u64(s, f[F_CONN_ERRORS], (const char *[]){"kafka"},
                           ks.errors);
    rg_metrics_collect_u64(s, f[F_KAFKA_COMMITS], NULL, ks.commits);
    rg_metrics_collect_u64(s, f[F_KAFKA_COMMIT_ERRORS], NULL,
                           ks.commit_errors);
    rg_metrics_collect_u64(s, f[F_SOURCE_PAUSES], NULL, ks.pauses);
    rg_flow_stats_t fl;
    rg_engine_flow_stats(e, &fl);
    rg_metrics_collect_u64(s, f[F_FLOW_LIMIT], NULL, fl.rate);
    rg_metrics_collect_u64(s, f[F_FLOW_TOKENS], NULL, fl.tokens);
    rg_metrics_collect_f64(s, f[F_FLOW_THROTTLED], NULL,
                           (double)fl.wait_ms / 1e3);
    if (rm->target_ms > 0) {
        rg_metrics_collect_u64(s, f[F_FLOW_ADAPTIVE], NULL,
                               fl.limit[RG_FLOW_ADAPTIVE]);
        rg_metrics_collect_f64(s, f[F_FLOW_TARGET], NULL,
                               (double)rm->target_ms / 1e3);
        if (fs.transactions > 0) /* none before the first commit */
            rg_metrics_collect_f64(s, f[F_FLOW_SINK_LATENCY], NULL,
                                   (double)fl.sink_latency_ms / 1e3);
        rg_metrics_collect_u64(s, f[F_FLOW_CUTS], NULL, fl.adaptive_cuts);
        rg_metrics_collect_u64(s, f[F_FLOW_RAISES], NULL,
                               fl.adaptive_raises);
    }

    /* the lease client, once it tried a first lease (before that its
     * state says nothing) */
    rg_flow_redis_stats_t fr = {0};
    if (rm->flow != NULL)
        rg_flow_redis_stats(rm->flow, &fr);
    if (fr.leases + fr.lease_errors > 0) {
        rg_metrics_collect_u64(s, f[F_FLOW_LEASE], NULL, fr.lease);
        rg_metrics_collect_u64(s, f[F_FLOW_DEGRADED], NULL, fr.degraded);
        rg_metrics_collect_u64(s, f[F_CONNECTED], (const char *[]){"redis"},
                               !fr.degraded);
    }

    rg_retry_stats_t rt;
    rg_engine_retry_stats(e, &rt);
    rg_metrics_collect_u64(s, f[F_RETRIED], NULL, rt.retried);
    rg_metrics_collect_u64(s, f[F_DELAYED], NULL, rt.delayed);
    for (int i = 0; i < RG_DEAD__COUNT; i++)
        rg_metrics_collect_u64(s, f[F_DEAD],
                               (const char *[]){rg_dead_reason_name(i)},
                               rt.dead_by[i]);
    rg_metrics_collect_u64(s, f[F_WAITING], NULL, rt.parked_now);
    rg_metrics_collect_u64(s, f[F_RECOVERED], NULL, rt.recovered);
    if (rm->dlq != NULL) {
        rg_run_dlq_stats_t ds;
        rg_run_dlq_stats(rm->dlq, &ds);
        rg_metrics_collect_u64(s, f[F_DLQ_FORWARDED], NULL, ds.forwarded);
        rg_metrics_collect_u64(s, f[F_DLQ_FAILED], NULL, ds.failed);
        rg_metrics_collect_u64(s, f[F_DLQ_PENDING], NULL, ds.pending);
    }

    if (rm->hot) {
        rg_hotkey_stats_t hs;
        rg_hot_key_t hk[HOT_TOP];
        size_t n = rg_engine_hot_keys(e, &hs, hk, HOT_TOP);
        for (size_t i = 0; i < n; i++) {
            char id[24];
            snprintf(id, sizeof(id), "%" PRIu64, hk[i].key);
            rg_metrics_collect_f64(s, f[F_HOT_SHARE], (const char *[]){id},
                                   hk[i].share);
        }
        rg_metrics_collect_u64(s, f[F_HOT_KEYS], NULL, hs.nhot);
        rg_metrics_collect_u64(s, f[F_HOT_CHANGES], (const char *[]){"hot"},
                               hs.turned_hot);
        rg_metrics_collect_u64(s, f[F_HOT_CHANGES], (const char *[]){"cold"},
                               hs.turned_cold);
    }

    if (rm->cache != NULL) {
        rg_cache_job_stats_t c;
        rg_cache_job_stats(rm->cache, &c);
        rg_metrics_collect_u64(s, f[F_CACHE_SKIPPED], NULL, c.redis.skipped);
        rg_metrics_collect_u64(s, f[F_CACHE_DROPPED], NULL, c.dropped);
        rg_metrics_collect_u64(s, f[F_CACHE_RESYNCS], NULL, c.redis.resyncs);
        rg_metrics_collect_u64(s, f[F_CACHE_ERRORS], NULL, c.redis.errors);
    }

    pthread_mutex_lock(&rm->mu);
    if (rm->http != NULL) {
        rg_http_stats_t hs;
        rg_http_stats(rm->http, &hs);
        uint64_t bad = hs.errors_4xx + hs.errors_5xx;
        rg_metrics_collect_u64(s, f[F_HTTP], (const char *[]){"2xx"},
                               hs.requests > bad ? hs.requests - bad : 0);
        rg_metrics_collect_u64(s, f[F_HTTP], (const char *[]){"4xx"},
                               hs.errors_4xx);
        rg_metrics_collect_u64(s, f[F_HTTP], (const char *[]){"5xx"},
                               hs.errors_5xx);
    }
    pthread_mutex_unlock(&rm->mu);
}

/* /readyz: assigned, the engine running, Kafka answering, and either
 * events flowed or every held partition's log end is known (a fetch
 * answered: idle and caught up). */
static bool ready(void *opaque, char *why, size_t size)
{
    rg_run_metrics_t *rm = opaque;
    const char *err = rg_engine_error(rm->pl->engine);
    if (err != NULL) {
        snprintf(why, size, "the engine stopped: %s", err);
        return false;
    }
    rg_kafka_stats_t ks;
    rg_kafka_source_stats(rm->pl->source, &ks);
    if (ks.brokers_down_ms > 0) {
        snprintf(why, size, "every Kafka broker has been down for %.1f s",
                 (double)ks.brokers_down_ms / 1e3);
        return false;
    }
    if (ks.partitions == 0) {
        snprintf(why, size, "no partition assigned yet (for %.1f s)",
                 (double)ks.no_partitions_ms / 1e3);
        return false;
    }
    if (ks.consumed > 0)
        return true;
    rg_kafka_partition_t p[64];
    size_t n = rg_kafka_source_partitions(rm->pl->source, p, 64);
    for (size_t i = 0; i < n && i < 64; i++)
        if (p[i].high_watermark < 0) {
            snprintf(why, size, "%u partitions assigned, nothing consumed "
                     "and partition %" PRId32 " not fetched yet",
                     ks.partitions, p[i].partition);
            return false;
        }
    return n > 0;
}

static int add_families(rg_run_metrics_t *rm, unsigned max_parts,
                        char *errstr, size_t size)
{
    for (int i = 0; i < F__COUNT; i++) {
        const struct fam *d = &fams[i];
        if ((d->cache && rm->cache == NULL) ||
            (d->flow && rm->flow == NULL) ||
            (d->adapt && rm->target_ms <= 0) || (d->dlq && rm->dlq == NULL) ||
            (d->hot && !rm->hot) || (d->lanes && !rm->lanes))
            continue;
        rg_metric_desc_t desc = {
            .kind = d->kind, .name = d->name, .unit = d->unit,
            .help = d->help, .labels = d->labels, .nlabels = d->nlabels,
            .max_series = d->max ? d->max : max_parts, .collected = true};
        if (i == F_TXN_SECONDS) {
            desc.buckets = rg_flush_txn_bounds();
            desc.nbuckets = RG_FLUSH_TXN_BUCKETS;
        } else if (i == F_TXN_ROWS) {
            desc.buckets = rg_flush_rows_bounds();
            desc.nbuckets = RG_FLUSH_ROWS_BUCKETS;
        }
        if ((rm->f[i] = rg_metrics_family_new(rm->m, &desc, errstr, size)) ==
            NULL)
            return RG_EINVAL; /* a bug in the table above, or memory */
    }
    /* build info: an owned gauge set once */
    static const char *const bl[] = {"version", "compiler"};
    rg_metric_family_t *bi = rg_metrics_family_new(rm->m, &(rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "build_info",
        .help = "Always 1; the labels say which build serves.",
        .labels = bl, .nlabels = 2, .max_series = 1}, errstr, size);
#if defined(__clang__)
    const char *cc = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *cc = "gcc " __VERSION__;
#else
    const char *cc = "unknown";
#endif
    rg_gauge_t *g = bi ? rg_metrics_gauge(bi, (const char *[]){rg_version(),
                                                                cc}, 0)
                       : NULL;
    if (g == NULL) {
        if (bi != NULL)
            snprintf(errstr, size, "metrics: out of memory");
        return RG_ENOMEM;
    }
    rg_gauge_set(g, 1);
    return 0;
}

/* Binds metrics.listen; 0 with rm->http NULL when the default address
 * is taken (warned), else an error with errstr. */
static int bind_listener(rg_run_metrics_t *rm, const char *listen,
                         char *errstr, size_t size)
{
    rg_http_options_t o;
    rg_http_options_init(&o);
    o.threads = (unsigned)rg_conf_get_int(rm->conf, "metrics.threads");
    o.max_connections =
        (unsigned)rg_conf_get_int(rm->conf, "metrics.max.connections");
    o.idle_timeout_s =
        (unsigned)(rg_conf_get_int(rm->conf, "metrics.timeout.ms") / 1000);
    o.request_timeout_s = (unsigned)(
        rg_conf_get_int(rm->conf, "metrics.request.timeout.ms") / 1000);
    char why[400];
    rg_http_t *h = rg_http_new(listen, &o, why, sizeof(why));
    if (h != NULL) {
        rm->http = h;
        return 0;
    }
    if (rg_conf_is_set(rm->conf, "metrics.listen")) {
        snprintf(errstr, size, "metrics.listen=%s: %s", listen, why);
        return RG_EINVAL;
    }
    rg_conf_log(rm->conf, RG_LOG_WARN, "metrics", "NO METRICS LISTENER: "
                "%s (the default metrics.listen=%s; another `railgun run` "
                "on this host?). Running on without /metrics, /readyz and "
                "the dashboard: set metrics.listen to a free address (port "
                "0 picks one), or \"\" to turn this off", why, listen);
    return 0;
}

int rg_run_metrics_start(const rg_conf_t *conf, rg_pipeline_t *pl,
                         rg_cache_job_t *cache, rg_flow_redis_t *flow,
                         rg_run_dlq_t *dlq,
                         rg_run_metrics_t **out,
                         char *errstr, size_t errstr_size)
{
    *out = NULL;
    const char *listen = rg_conf_get_str(conf, "metrics.listen");
    if (listen == NULL || listen[0] == '\0')
        return 0;
    rg_run_metrics_t *rm = calloc(1, sizeof(*rm));
    if (rm == NULL) {
        snprintf(errstr, errstr_size, "metrics: out of memory");
        return RG_ENOMEM;
    }
    pthread_mutex_init(&rm->mu, NULL);
    rm->pl = pl;
    rm->cache = cache;
    rm->flow = flow;
    rm->dlq = dlq;
    rm->hot = rg_conf_get_int(rg_engine_conf(pl->engine), "hotkey.enable") != 0;
    rm->lanes = rg_conf_get_int(rg_engine_conf(pl->engine), "hotkey.lanes") > 0;
    rm->conf = conf;
    rm->target_ms = rg_conf_get_int(rg_engine_conf(pl->engine),
                                    "flow.sink.latency.target.ms");
    rm->topic = rg_conf_get_str(conf, "topic");
    int rc = bind_listener(rm, listen, errstr, errstr_size);
    if (rc != 0 || rm->http == NULL)
        goto fail;
    unsigned max_parts = (unsigned)rg_conf_get_int(rg_engine_conf(pl->engine),
                                                   "ack.max.partitions");
    rm->max_parts = max_parts;
    rc = RG_ENOMEM;
    snprintf(errstr, errstr_size, "metrics: out of memory");
    if ((rm->parts = calloc(max_parts, sizeof(*rm->parts))) == NULL ||
        (rm->m = rg_metrics_new(NULL)) == NULL)
        goto fail;
    if ((rc = add_families(rm, max_parts, errstr, errstr_size)) != 0)
        goto fail;
    if ((rc = rg_metrics_collector_add(rm->m, collect, rm)) != 0) {
        snprintf(errstr, errstr_size, "metrics: %s", rg_strerror(rc));
        goto fail;
    }
    /* the node's name in doctor's report: its own URL */
    uint16_t port = rg_http_port(rm->http);
    const char *c = strrchr(listen, ':');
    int hl = c ? (int)(c - listen) : 0;
    snprintf(rm->address, sizeof(rm->address), "%.*s:%u", hl, listen,
             (unsigned)port);
    char node[320];
    snprintf(node, sizeof(node), "http://%s", rm->address);
    char why[300];
    if ((rm->doctor = rg_doctor_live_new(rm->m, node, NULL, 1000, 5000, why,
                                         sizeof(why))) == NULL) {
        snprintf(errstr, errstr_size, "metrics: doctor: %s", why);
        rc = RG_ESYS;
        goto fail;
    }
    if ((rc = rg_http_serve_metrics(rm->http, rm->m)) != 0 ||
        (rc = rg_http_serve_health(rm->http, NULL, ready, rm)) != 0 ||
        (rc = rg_http_route(rm->http, "GET", "/", 0, rg_dashboard_http,
                            NULL)) != 0 ||
        (rc = rg_http_route(rm->http, "GET", "/doctor.json", 0,
                            rg_doctor_live_http, rm->doctor)) != 0) {
        snprintf(errstr, errstr_size, "metrics: routes: %s", rg_strerror(rc));
        goto fail;
    }
    if ((rc = rg_http_start(rm->http, errstr, errstr_size)) != 0)
        goto fail;
    rg_conf_log(conf, RG_LOG_INFO, "metrics", "serving http://%s/metrics "
                "(/stats.json, /healthz, /readyz, /doctor.json, dashboard "
                "at /)", rm->address);
    *out = rm;
    return 0;
fail:
    rg_run_metrics_stop(rm);
    return rc;
}

const char *rg_run_metrics_address(const rg_run_metrics_t *rm)
{
    return rm->address;
}

void rg_run_metrics_stop(rg_run_metrics_t *rm)
{
    if (rm == NULL)
        return;
    pthread_mutex_lock(&rm->mu);
    rg_http_t *h = rm->http;
    rm->http = NULL; /* the sampler's renders no longer read it */
    pthread_mutex_unlock(&rm->mu);
    rg_http_destroy(h);                /* no handler runs after it */
    rg_doctor_live_destroy(rm->doctor); /* no render after it */
    rg_metrics_destroy(rm->m);
    pthread_mutex_destroy(&rm->mu);
    free(rm->parts);
    free(rm);
}
