/*
 * cmd_run.c - `railgun run`: the likes job for production. Kafka in (a
 * consumer group: more processes share the partitions), the likes job on
 * the engine, SQLite or MariaDB out. Stats on SIGUSR1 and every
 * `stats.interval.ms`, and served on `metrics.listen` (run_metrics.c:
 * /metrics, /readyz, the dashboard); SIGTERM or SIGINT stops it gracefully: the source
 * leaves the group (flush, commit), the engine drains, exit 0, and a
 * restart reprocesses nothing. With flow.global.rate.events.per.s > 0
 * the node leases its share of the group's rate from Redis (run_flow.c).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cache_job.h"
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "pipeline.h"
#include "railgun/kafka.h"
#include "railgun/railgun.h"
#include "railgun/sinks.h"
#include "dlq_json.h"
#include "run_dlq.h"
#include "run_flow.h"
#include "run_metrics.h"
#include "serve.h"

struct runner {
    rg_pipeline_t pl;
    rg_cache_job_t *cache;  /* the read cache's updater, or NULL: set
                               before the engine starts, read by the
                               flusher's hook and the source's claims */
    const rg_conf_t *conf;  /* the command's (the log, the app's rows) */
    rg_run_metrics_t *metrics; /* the metrics listener, or NULL (off) */
    rg_run_flow_t *flow;    /* the Redis lease client, or NULL (no
                               global rate): made before the listener,
                               destroyed after the source stopped */
    rg_run_dlq_t *dlq;      /* the dlq.topic forwarder, or NULL: made
                               before the listener, stopped after the
                               pipeline (its last look), destroyed after
                               the listener */
    sigset_t sigs;
    bool json;
    /* teardown: `closing` (under lock) ends the signal and stats threads,
     * and both are joined before anything they print from is destroyed */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool closing;
    pthread_t sig_th, stats_th;
    bool sig_started, stats_started;
};

/* The undecodable watch (watch thread only). */
struct alert {
    int64_t since;          /* the window started (ns), 0: not yet */
    uint64_t consumed, bad; /* the counters then */
    int64_t warned;         /* the last warning (ns) */
    double share;
    int64_t window_ms;
};

/* "bad_json 3, state 25000" (the reasons with a count) into buf; in JSON
 * as {"bad_json":3,...}. */
static void reasons(const rg_likes_stats_t *ls, bool json, char *buf,
                    size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    if (json)
        n += (size_t)snprintf(buf, size, "{");
    for (int k = 1; k < RG_LIKE_E__COUNT && n < size; k++) {
        if (ls->by_reason[k] == 0)
            continue;
        bool first = json ? buf[n - 1] == '{' : n == 0;
        n += (size_t)snprintf(buf + n, size - n,
                              json ? "%s\"%s\":%" PRIu64 : "%s%s %" PRIu64,
                              first ? "" : (json ? "," : ", "),
                              rg_like_err_name((rg_like_err_t)k),
                              ls->by_reason[k]);
    }
    if (json && n < size)
        snprintf(buf + n, size - n, "}");
}

static void print_stats(struct runner *r, const char *when)
{
    rg_engine_stats_t st;
    rg_flush_stats_t fs;
    rg_kafka_stats_t ks;
    rg_likes_stats_t ls;
    rg_engine_stats(r->pl.engine, &st);
    rg_engine_flush_stats(r->pl.engine, &fs);
    rg_kafka_source_stats(r->pl.source, &ks);
    rg_likes_job_stats(r->pl.job, &ls);
    /* consumed = processed + in flight + undecodable + rejected: what the
     * source handed over is processed, on its way, or refused (the
     * snapshots are taken one after the other: in flight absorbs it) */
    uint64_t done = st.processed + st.undecodable + st.rejected +
                    st.deduplicated;
    uint64_t flight = ks.consumed > done ? ks.consumed - done : 0;
    char why[512] = "", kerr[256] = "", rs[512];
    rg_engine_sink_error(r->pl.engine, why, sizeof(why));
    rg_kafka_source_last_error(r->pl.source, kerr, sizeof(kerr));
    reasons(&ls, r->json, rs, sizeof(rs));
    /* flow control, when a limit is set or was */
    rg_flow_stats_t fl;
    rg_engine_flow_stats(r->pl.engine, &fl);
    char fc[200] = "";
    if (r->json)
        snprintf(fc, sizeof(fc), ",\"flow_rate\":%" PRIu64
                 ",\"flow_waited_ms\":%" PRIu64, fl.rate, fl.wait_ms);
    else if (fl.rate != 0)
        snprintf(fc, sizeof(fc), ", flow %" PRIu64 "/s (waited %.1f s for "
                 "tokens)", fl.rate, (double)fl.wait_ms / 1e3);
    else if (fl.wait_ms != 0)
        snprintf(fc, sizeof(fc), ", flow unlimited now (waited %.1f s for "
                 "tokens)", (double)fl.wait_ms / 1e3);
    /* the adaptive limit, when flow.sink.latency.target.ms is set: the
     * limit it holds now (0: not limiting), the last epoch's transaction
     * time against the target, its cuts and raises */
    char ad[300] = "";
    int64_t target_ms = rg_conf_get_int(rg_engine_conf(r->pl.engine),
                                        "flow.sink.latency.target.ms");
    /* the latency is the last transaction's: none before the first */
    char lat[32] = "";
    if (fs.transactions > 0)
        snprintf(lat, sizeof(lat), "%" PRIu64, fl.sink_latency_ms);
    if (target_ms > 0 && r->json)
        snprintf(ad, sizeof(ad), ",\"flow_target_ms\":%" PRId64
                 ",\"flow_adaptive_limit\":%" PRIu64
                 ",\"flow_sink_latency_ms\":%s"
                 ",\"flow_adaptive_cuts\":%" PRIu64
                 ",\"flow_adaptive_raises\":%" PRIu64, target_ms,
                 fl.limit[RG_FLOW_ADAPTIVE], lat[0] ? lat : "null",
                 fl.adaptive_cuts, fl.adaptive_raises);
    else if (target_ms > 0) {
        char lim[64] = "not limiting";
        if (fl.limit[RG_FLOW_ADAPTIVE] != 0)
            snprintf(lim, sizeof(lim), "limit %" PRIu64 "/s",
                     fl.limit[RG_FLOW_ADAPTIVE]);
        snprintf(ad, sizeof(ad), ", adaptive %s (last commit %s%s, target %"
                 PRId64 " ms; %" PRIu64 " cuts, %" PRIu64 " raises)", lim,
                 lat[0] ? lat : "none yet", lat[0] ? " ms" : "", target_ms,
                 fl.adaptive_cuts, fl.adaptive_raises);
    }
    /* the group's lease, when the lease client runs */
    char lease[700] = "";
    if (r->flow != NULL) {
        rg_flow_redis_stats_t fr;
        rg_flow_redis_stats(rg_run_flow_client(r->flow), &fr);
        /* the server in use (the primary Sentinel named), JSON-safe: an
         * address or a socket path, anything else dropped */
        char srv[sizeof(fr.server)];
        size_t k = 0;
        for (const char *c = fr.server; *c != '\0'; c++)
            if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20)
                srv[k++] = *c;
        srv[k] = '\0';
        if (r->json)
            snprintf(lease, sizeof(lease), ",\"flow_mode\":\"%s\","
                     "\"flow_degraded\":%s,\"flow_lease\":%" PRIu64
                     ",\"flow_global\":%" PRIu64 ",\"flow_share\":%.4f,"
                     "\"flow_nodes\":%u,\"flow_lease_errors\":%" PRIu64
                     ",\"flow_server\":\"%s\",\"flow_master_changes\":%"
                     PRIu64, rg_flow_mode_name(fr.mode),
                     fr.degraded ? "true" : "false", fr.lease,
                     fr.global_rate, fr.share, fr.nodes, fr.lease_errors,
                     srv, fr.master_changes);
        else
            snprintf(lease, sizeof(lease), ", lease %s %" PRIu64 "/s of %"
                     PRIu64 "/s (share %.1f%%, %u nodes, %" PRIu64
                     " lease errors, redis %s, %" PRIu64 " primary changes)",
                     rg_flow_mode_name(fr.mode), fr.lease, fr.global_rate,
                     100.0 * fr.share, fr.nodes, fr.lease_errors,
                     srv[0] ? srv : "none", fr.master_changes);
    }
    /* the read cache's updater, when there is one */
    char cs[300] = "";
    if (r->cache != NULL) {
        rg_cache_job_stats_t c;
        rg_cache_job_stats(r->cache, &c);
        snprintf(cs, sizeof(cs), r->json
                 ? ",\"cache_epochs\":%" PRIu64 ",\"cache_dropped\":%" PRIu64
                   ",\"cache_skipped\":%" PRIu64 ",\"cache_resyncs\":%" PRIu64
                   ",\"cache_errors\":%" PRIu64
                 : ", cache: epochs %" PRIu64 ", dropped %" PRIu64
                   ", skipped %" PRIu64 ", resyncs %" PRIu64 ", errors %"
                   PRIu64, c.redis.applies, c.dropped, c.redis.skipped,
                 c.redis.resyncs, c.redis.errors);
    }
    /* failures (railgun/retry.h): always in JSON, in text once any */
    char fails[300] = "";
    rg_retry_stats_t rt;
    rg_engine_retry_stats(r->pl.engine, &rt);
    if (r->json || rt.retried || rt.dead_lettered || rt.requeued)
        snprintf(fails, sizeof(fails), r->json
                 ? ",\"retried\":%" PRIu64 ",\"waiting\":%" PRIu64
                   ",\"delayed\":%" PRIu64 ",\"recovered\":%" PRIu64
                   ",\"dead_lettered\":%" PRIu64 ",\"requeued\":%" PRIu64
                 : ", failures: retried %" PRIu64 ", waiting %" PRIu64
                   ", delayed %" PRIu64 ", recovered %" PRIu64
                   ", dead letters %" PRIu64 ", requeued %" PRIu64,
                 rt.retried, rt.parked_now, rt.delayed, rt.recovered,
                 rt.dead_lettered, rt.requeued);
    /* the dlq.topic forwarder, only when there is one */
    char dlq[2048] = "";
    if (r->dlq != NULL) {
        rg_run_dlq_stats_t ds;
        rg_run_dlq_stats(r->dlq, &ds);
        if (r->json) {
            int k = snprintf(dlq, sizeof(dlq), ",\"dlq_forwarded\":%" PRIu64
                             ",\"dlq_forward_failures\":%" PRIu64
                             ",\"dlq_forward_pending\":%" PRIu64
                             ",\"dlq_looks\":%" PRIu64
                             ",\"dlq_forward_error\":", ds.forwarded,
                             ds.failed, ds.pending, ds.looks);
            FILE *m = fmemopen(dlq + k, sizeof(dlq) - (size_t)k - 1, "w");
            if (m != NULL) { /* the reason as a JSON string */
                rg_dlq_json_bytes(m, ds.last_error, strlen(ds.last_error));
                fclose(m);
            }
        } else {
            snprintf(dlq, sizeof(dlq), ", dlq.topic: forwarded %" PRIu64
                     ", failed %" PRIu64 ", pending %" PRIu64 "%s%s%s",
                     ds.forwarded, ds.failed, ds.pending,
                     ds.last_error[0] ? " (last error: " : "", ds.last_error,
                     ds.last_error[0] ? ")" : "");
        }
    }
    /* hot keys (hotkey.enable): the hottest few, share and since when */
    char hot[400] = "";
    rg_hotkey_stats_t hs;
    rg_hot_key_t hk[3];
    size_t nh = rg_engine_hot_keys(r->pl.engine, &hs, hk, 3);
    if (hs.enabled) {
        size_t k = (size_t)snprintf(hot, sizeof(hot), r->json
                                    ? ",\"hot_keys\":["
                                    : ", hot keys %u (%" PRIu64 " turned hot, %"
                                      PRIu64 " cold)", hs.nhot,
                                    hs.turned_hot, hs.turned_cold);
        for (size_t i = 0; i < nh && k < sizeof(hot); i++) {
            const char *sep = i ? (r->json ? "," : ", ")
                                : (r->json ? "" : ": ");
            if (r->json)
                k += (size_t)snprintf(hot + k, sizeof(hot) - k, "%s{\"key\":%"
                                      PRIu64 ",\"share\":%.4f,\"hot_ms\":%"
                                      PRIu64 "}", sep, hk[i].key,
                                      hk[i].share, hk[i].hot_ms);
            else
                k += (size_t)snprintf(hot + k, sizeof(hot) - k, "%skey %"
                                      PRIu64 " %.1f%% for %.1f s", sep,
                                      hk[i].key, 100 * hk[i].share,
                                      (double)hk[i].hot_ms / 1e3);
        }
        if (r->json && k < sizeof(hot))
            k += (size_t)snprintf(hot + k, sizeof(hot) - k,
                                  "],\"hot_keys_now\":%u,\"hot_turned\":%"
                                  PRIu64 ",\"hot_cooled\":%" PRIu64,
                                  hs.nhot, hs.turned_hot, hs.turned_cold);
        /* hot lanes (hotkey.lanes): each lane's events, the moves */
        for (unsigned l = 0; l < st.lanes && k < sizeof(hot); l++) {
            const char *sep = l ? (r->json ? "," : " ")
                                : (r->json ? ",\"lane_events\":[" : "; lanes ");
            k += (size_t)snprintf(hot + k, sizeof(hot) - k, "%s%" PRIu64, sep,
                                  rg_engine_worker_processed(r->pl.engine,
                                                             st.workers + l));
        }
        if (st.lanes > 0 && k < sizeof(hot))
            snprintf(hot + k, sizeof(hot) - k, r->json
                     ? "],\"key_moves\":%" PRIu64 ",\"moves_to_lanes\":%"
                       PRIu64
                     : " events, %" PRIu64 " key moves (%" PRIu64
                       " to the lanes)", st.moves, st.moves_to_lanes);
    }
    if (r->json) {
        fprintf(stderr, "{\"stats\":\"%s\",\"consumed\":%" PRIu64
                ",\"processed\":%" PRIu64 ",\"in_flight\":%" PRIu64
                ",\"undecodable\":%" PRIu64 ",\"undecodable_by_reason\":%s"
                ",\"rejected\":%" PRIu64 ",\"deduplicated\":%" PRIu64
                ",\"applied\":%" PRIu64
                ",\"epochs\":%" PRIu64 ",\"transactions\":%" PRIu64
                ",\"sink_retries\":%" PRIu64 ",\"sink_failing\":%" PRIu64
                ",\"partitions\":%u,\"kafka_errors\":%" PRIu64
                ",\"brokers_down_ms\":%" PRIu64 ",\"kafka_commits\":%" PRIu64
                ",\"paused\":%u,\"pauses\":%" PRIu64 "%s%s%s%s%s%s%s}\n", when,
                ks.consumed, st.processed, flight, st.undecodable, rs,
                st.rejected, st.deduplicated, ls.applied, fs.epochs, fs.transactions,
                fs.retries, fs.failing, ks.partitions, ks.errors,
                ks.brokers_down_ms, ks.commits, ks.paused, ks.pauses, fc,
                ad, lease, cs, fails, dlq, hot);
        return;
    }
    char sink[700] = "", kafka[400] = "", dups[64] = "";
    /* copies of replayed messages skipped (exactly once across replays) */
    if (st.deduplicated > 0)
        snprintf(dups, sizeof(dups), " + copies skipped %" PRIu64,
                 st.deduplicated);
    if (fs.failing > 0)
        snprintf(sink, sizeof(sink), " (failing now, %" PRIu64 " attempts: "
                 "%s)", fs.failing, why);
    if (ks.brokers_down_ms > 0)
        snprintf(kafka, sizeof(kafka), " (all brokers down for %.0f s: %s)",
                 (double)ks.brokers_down_ms / 1000, kerr);
    fprintf(stderr, "railgun run: %s: consumed %" PRIu64 " = processed %"
            PRIu64 " + in flight %" PRIu64 " + undecodable %" PRIu64
            "%s%s%s + rejected %" PRIu64 "%s; applied %" PRIu64 ", epochs %"
            PRIu64 ", transactions %" PRIu64 ", sink retries %" PRIu64 "%s"
            ", partitions %u, kafka errors %" PRIu64 "%s, commits %" PRIu64
            ", paused %s (%" PRIu64 " times)%s%s%s%s%s%s%s\n", when, ks.consumed,
            st.processed, flight, st.undecodable, rs[0] ? " (" : "", rs,
            rs[0] ? ")" : "", st.rejected, dups, ls.applied, fs.epochs,
            fs.transactions, fs.retries, sink, ks.partitions, ks.errors,
            kafka, ks.commits, ks.paused ? "yes" : "no", ks.pauses, fc, ad,
            lease, cs, fails, dlq, hot);
}

/* Signal thread: SIGTERM, SIGINT and SIGHUP stop gracefully; a second one
 * stops at once (what was not stored is reprocessed after a restart, as
 * after a crash); SIGUSR1 prints the stats. Once closing, any signal
 * (teardown sends one) ends it. */
static void *signals_main(void *arg)
{
    struct runner *r = arg;
    bool stopping = false;
    for (;;) {
        int sig = 0;
        if (sigwait(&r->sigs, &sig) != 0)
            continue;
        pthread_mutex_lock(&r->lock);
        bool closing = r->closing;
        if (!closing && sig == SIGUSR1)
            print_stats(r, "now");
        pthread_mutex_unlock(&r->lock);
        if (closing)
            return NULL;
        if (sig == SIGUSR1)
            continue;
        if (stopping) {
            static const char msg[] = "railgun run: second signal: "
                "stopping at once; what was not stored is reprocessed "
                "after a restart\n";
            ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
            (void)w;
            _exit(1);
        }
        stopping = true;
        rg_conf_log(r->conf, RG_LOG_INFO, "run", "%s: stopping (storing "
                    "what was consumed, within shutdown.timeout.ms; a "
                    "second signal stops at once)", strsignal(sig));
        rg_likes_job_fault_release(r->pl.job); /* likes.fault.stall */
        rg_kafka_source_stop(r->pl.source);
    }
}

/* The share of undecodable messages over the last window: loud when it
 * passes undecodable.alert.share, naming the reasons and where the last
 * one of the commonest reason was. */
static void check_undecodable(struct runner *r, struct alert *a, int64_t now)
{
    rg_engine_stats_t st;
    rg_kafka_stats_t ks;
    rg_engine_stats(r->pl.engine, &st);
    rg_kafka_source_stats(r->pl.source, &ks);
    if (a->since == 0) {
        a->since = now;
        a->consumed = ks.consumed;
        a->bad = st.undecodable;
        return;
    }
    if (now - a->since < a->window_ms * 1000000)
        return;
    uint64_t n = ks.consumed - a->consumed, bad = st.undecodable - a->bad;
    if (bad > 0 && (double)bad > a->share * (double)n &&
        (a->warned == 0 || now - a->warned >= a->window_ms * 1000000)) {
        rg_likes_stats_t ls;
        rg_likes_job_stats(r->pl.job, &ls);
        int top = 1;
        for (int k = 1; k < RG_LIKE_E__COUNT; k++)
            if (ls.by_reason[k] > ls.by_reason[top])
                top = k;
        char rs[512];
        reasons(&ls, false, rs, sizeof(rs));
        rg_conf_log(r->conf, RG_LOG_WARN, "run", "%" PRIu64 " of the %"
                    PRIu64 " messages of the last %.0f s were undecodable "
                    "(%.1f%%, above undecodable.alert.share %.1f%%): %s; "
                    "the last %s was partition %d offset %lld (%s). They "
                    "are skipped: check the producers", bad, n,
                    (double)a->window_ms / 1000, 100.0 * (double)bad /
                    (double)(n ? n : 1), 100.0 * a->share, rs,
                    rg_like_err_name((rg_like_err_t)top),
                    (int)ls.last_partition[top],
                    (long long)ls.last_offset[top],
                    rg_like_err_msg((rg_like_err_t)top));
        a->warned = now;
    }
    a->since = now;
    a->consumed = ks.consumed;
    a->bad = st.undecodable;
}

/* Watch thread: every second the undecodable share; every
 * stats.interval.ms (when set) the stats line; until closing. */
static void *watch_main(void *arg)
{
    struct runner *r = arg;
    const rg_conf_t *c = rg_engine_conf(r->pl.engine);
    int64_t every = rg_conf_get_int(c, "stats.interval.ms") * 1000000;
    struct alert a = {0};
    a.share = rg_conf_get_double(r->conf, "undecodable.alert.share");
    a.window_ms = rg_conf_get_int(r->conf, "undecodable.alert.window.ms");
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    int64_t next_stats = every > 0 ? (int64_t)at.tv_sec * 1000000000 +
                                         at.tv_nsec + every
                                   : 0;
    pthread_mutex_lock(&r->lock);
    while (!r->closing) {
        at.tv_nsec += 200 * 1000 * 1000;
        if (at.tv_nsec >= 1000000000) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000;
        }
        while (!r->closing &&
               pthread_cond_timedwait(&r->wake, &r->lock, &at) == 0)
            ;
        if (r->closing)
            break;
        int64_t now = (int64_t)at.tv_sec * 1000000000 + at.tv_nsec;
        check_undecodable(r, &a, now);
        if (next_stats != 0 && now >= next_stats) {
            print_stats(r, "interval");
            next_stats += every;
            if (next_stats <= now)
                next_stats = now + every;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* The engine's commit hook (flusher): hands the epoch to the cache's
 * updater; an epoch whose version is unknown makes it resync instead. */
static void on_commit(void *opaque, const rg_epoch_commit_t *c)
{
    struct runner *r = opaque;
    if (r->cache == NULL)
        return;
    if (c->version <= 0)
        rg_cache_job_resync(r->cache);
    else
        rg_cache_job_commit(r->cache, c->version, c->merged, c->nmerged,
                            c->staged, c->nstaged);
}

/* Every partition assignment (the source's thread): a previous owner may
 * have died between a commit and its cache update. */
static void on_claim(void *opaque)
{
    struct runner *r = opaque;
    if (r->cache != NULL)
        rg_cache_job_resync(r->cache);
}

static void usage(void)
{
    printf("usage: railgun run [--config FILE] [-X name=value] "
           "[--init-schema]\n"
           "                   [--create-database] [--reset-offsets P,...|all]\n"
           "                   [--handover-from GROUP] [--json]\n\n"
           "Consumes like events from `topic` in consumer group `group.id` "
           "at\n-X kafka.bootstrap.servers, runs the likes job and stores "
           "counts,\nactions and offsets in the sink (sink=sqlite with "
           "sqlite.path, or\nsink=mysql with mysql.*).\n\n"
           "  --init-schema        create missing tables\n"
           "  --create-database    (MariaDB) create mysql.database when "
           "missing\n"
           "  --reset-offsets P    accept that these partitions' logs went "
           "backwards\n"
           "                       (topic recreated, truncated, restored): "
           "count them\n"
           "                       from the start of the log "
           "(-X source.reset.offsets)\n"
           "  --handover-from G    take the tables over from consumer group "
           "G, whose\n"
           "                       stored positions this group continues "
           "from\n"
           "                       (-X sink.handover.from)\n\n"
           "With -X flow.global.rate.events.per.s=N the group's nodes share "
           "N events/s\nthrough Redis (flow.redis.*; `railgun flow show|set` "
           "reads and changes it).\n\n"
           "Stats on SIGUSR1 and every stats.interval.ms; Prometheus metrics, "
           "/readyz\nand a dashboard on metrics.listen (default "
           "127.0.0.1:9464). SIGTERM, SIGINT or SIGHUP\nstops it gracefully (flush, commit, exit 0) within "
           "shutdown.timeout.ms;\na second one stops at once. Exit 1 when "
           "the run failed, 2 on bad input.\ndocs/OPERATIONS.md says what "
           "each warning means; docs/examples/likes.conf\nis a start.\n");
}

/* --reset-offsets and --handover-from are shorthands for properties. */
static int set_prop(rg_cli_t *cli, const char *name, const char *v)
{
    char err[512];
    if (rg_conf_set(cli->conf, name, v, err, sizeof(err)) != 0)
        return rg_cli_fail(cli, "%s", err);
    return 0;
}

static int parse_args(rg_cli_t *cli, unsigned *flags, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *v;
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        if (strcmp(argv[i], "--init-schema") == 0) {
            *flags |= RG_SINK_INIT_SCHEMA;
        } else if (strcmp(argv[i], "--create-database") == 0) {
            *flags |= RG_SINK_CREATE_DATABASE;
        } else if (rg_cli_is(argv[i], "--reset-offsets")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--reset-offsets")) ||
                set_prop(cli, "source.reset.offsets", v) != 0)
                return 2;
        } else if (rg_cli_is(argv[i], "--handover-from")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--handover-from")) ||
                set_prop(cli, "sink.handover.from", v) != 0)
                return 2;
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", argv[i]);
        }
    }
    return cli->help ? 0 : rg_cli_finish(cli);
}

/* What must be set before anything starts; 0, or 2 after the error. */
static int check_args(rg_cli_t *cli)
{
    const char *kind = rg_conf_get_str(cli->conf, "sink");
    if (strcmp(kind, "null") != 0 && strcmp(kind, "mysql") != 0 &&
        rg_conf_get_str(cli->conf, "sqlite.path")[0] == '\0')
        return rg_cli_fail(cli, "sqlite.path: not set (where do the counts "
                           "go?)");
    if (rg_conf_get_str(cli->conf, "kafka.bootstrap.servers") == NULL)
        return rg_cli_fail(cli, "kafka.bootstrap.servers: not set (where is "
                           "the cluster?)");
    if (rg_conf_get_int(cli->conf, "dispatchers") != 1)
        return rg_cli_fail(cli, "dispatchers: the Kafka source is one "
                           "dispatcher; scale out with more processes");
    return 0;
}

/* Starts the signal thread and, with stats.interval.ms, the stats
 * thread. 0, or the pthread_create() error with why filled. */
static int start_threads(struct runner *r, char *why, size_t size)
{
    int rc = pthread_create(&r->sig_th, NULL, signals_main, r);
    if (rc != 0) {
        snprintf(why, size, "cannot start the signal thread: %s",
                 strerror(rc));
        return rc;
    }
    r->sig_started = true;
    if ((rc = pthread_create(&r->stats_th, NULL, watch_main, r)) != 0) {
        snprintf(why, size, "cannot start the watch thread: %s",
                 strerror(rc));
        return rc;
    }
    r->stats_started = true;
    return 0;
}

/* Ends the threads start_threads() started, before what they read
 * goes. */
static void end_threads(struct runner *r)
{
    pthread_mutex_lock(&r->lock);
    r->closing = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    if (r->stats_started)
        pthread_join(r->stats_th, NULL);
    if (r->sig_started) {
        pthread_kill(r->sig_th, SIGUSR1); /* its sigwait() takes it */
        pthread_join(r->sig_th, NULL);
    }
    r->sig_started = r->stats_started = false;
}

int rg_cmd_run(int argc, char **argv)
{
    /* block the stop and stats signals first thing, before any thread
     * starts: the signal thread takes them. A SIGUSR1 or SIGTERM sent
     * while we start up then waits for it instead of killing us */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    rg_cli_t cli = {.cmd = "run", .conf = rg_likes_conf_new()};
    struct runner r = {.sigs = sigs, .lock = PTHREAD_MUTEX_INITIALIZER};
    unsigned flags = 0;
    bool cond_ok = false;
    char err[512], why[600] = "";
    int rc;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");
    /* the read cache's rows (cache.*): run keeps the cache updated */
    if (rg_conf_add_table(cli.conf, rg_serve_conf_table(), err,
                          sizeof(err)) != 0) {
        rg_conf_destroy(cli.conf);
        return rg_cli_error(&cli, "%s", err);
    }
    /* the Redis adapter's rows (flow.redis.*, flow.global.*, ...): the
     * group's global rate */
    if (rg_run_flow_add_props(cli.conf, err, sizeof(err)) != 0) {
        rg_conf_destroy(cli.conf);
        return rg_cli_error(&cli, "%s", err);
    }

    /* the command line */
    if ((rc = parse_args(&cli, &flags, argc, argv)) != 0 || cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    if ((rc = check_args(&cli)) != 0)
        goto out;
    r.json = cli.json;
    r.conf = cli.conf;
    /* the read cache (docs/SERVE.md): the sink bumps a version in every
     * epoch's transaction, and each committed epoch goes to Redis */
    bool cache = rg_serve_cache_wanted(cli.conf);
    if (cache && rg_conf_set(cli.conf, "sink.version", "true", err,
                             sizeof(err)) != 0) {
        rc = rg_cli_fail(&cli, "%s", err);
        goto out;
    }

    /* the pipeline, and the threads that watch it */
    rg_pipeline_opts_t po = {.sink_flags = flags, .kafka = true,
                             .commit_hook = cache ? on_commit : NULL,
                             .commit_hook_opaque = &r,
                             .on_claim = cache ? on_claim : NULL,
                             .on_claim_opaque = &r};
    if ((rc = rg_pipeline_open(&r.pl, cli.conf, &po, err, sizeof(err))) !=
        0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    /* after the sink made its tables (the version row's among them) */
    if (cache && (r.cache = rg_cache_job_new(cli.conf, err, sizeof(err))) ==
                     NULL) {
        rc = rg_cli_report(&cli, RG_EINVAL, "cache: %s", err);
        goto out;
    }
    /* the test aid likes.fault.* (off by default) */
    if (rg_likes_job_set_faults(r.pl.job, cli.conf, err, sizeof(err)) != 0) {
        rc = rg_cli_report(&cli, RG_EINVAL, "%s", err);
        goto out;
    }
    /* the lease client (not started: its options are checked here, bad
     * ones refuse the run with exit 2 before anything was consumed) */
    if (rg_run_flow_wanted(cli.conf) &&
        (rc = rg_run_flow_new(cli.conf, r.pl.engine, &r.flow, err,
                              sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    /* the dead-letter topic: bad options exit 2 before anything is
     * consumed */
    if (rg_run_dlq_wanted(cli.conf) &&
        (rc = rg_run_dlq_new(cli.conf, r.pl.source, &r.dlq, err,
                             sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    /* the metrics listener: an address set explicitly that cannot be
     * bound refuses the run (exit 2) before anything was consumed */
    if ((rc = rg_run_metrics_start(cli.conf, &r.pl, r.cache,
                                   rg_run_flow_client(r.flow), r.dlq,
                                   &r.metrics,
                                   err, sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    if ((rc = rg_pipeline_start(&r.pl, err, sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    if (r.dlq != NULL && (rc = rg_run_dlq_start(r.dlq, err, sizeof(err))) !=
                             0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    /* the first lease, after the engine started (its hooks set the
     * bucket) and before the source pushes: Redis down is a warning, the
     * node runs at its fallback rate until Redis answers */
    /* the node registers as ID@HOST:PORT, its metrics listener, so that
     * `railgun doctor` finds it through Redis (unless flow.node.id says
     * otherwise) */
    if (r.flow != NULL && r.metrics != NULL &&
        !rg_conf_is_set(cli.conf, "flow.node.id")) {
        rg_flow_redis_t *fc = rg_run_flow_client(r.flow);
        char id[200];
        snprintf(id, sizeof(id), "%s@%s", rg_flow_redis_node_id(fc),
                 rg_run_metrics_address(r.metrics));
        if (rg_flow_redis_set_node_id(fc, id, err, sizeof(err)) != 0)
            rg_conf_log(cli.conf, RG_LOG_WARN, "flow", "%s (registered "
                        "as %s: doctor needs --metrics)", err,
                        rg_flow_redis_node_id(fc));
    }
    if (r.flow != NULL) {
        bool degraded = false;
        if ((rc = rg_run_flow_start(r.flow, &degraded, err, sizeof(err))) !=
            0) {
            rc = rg_cli_report(&cli, rc, "%s", err);
            goto out;
        }
        if (degraded)
            rg_conf_log(cli.conf, RG_LOG_WARN, "flow", "%s", err);
    }
    pthread_condattr_t ca;
    if ((rc = pthread_condattr_init(&ca)) == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        rc = pthread_cond_init(&r.wake, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (rc != 0) {
        rc = rg_cli_error(&cli, "cannot make a condition variable: %s",
                          strerror(rc));
        goto out;
    }
    cond_ok = true;
    /* on failure `why` says so: the run is skipped, and the stop below
     * ends the thread that did start */
    start_threads(&r, why, sizeof(why));

    /* the run, on this thread, until SIGTERM or SIGINT */
    if (why[0] == '\0' && rg_kafka_source_run(r.pl.source) != 0 &&
        rg_kafka_source_error(r.pl.source) != NULL)
        snprintf(why, sizeof(why), "%s", rg_kafka_source_error(r.pl.source));
    rg_run_dlq_note_held(r.dlq); /* still held: the stop gives them up */
    rg_pipeline_stop(&r.pl); /* leaves the group: flush + commit */
    /* the source pushes no more: the node leaves the flow group too, so
     * the others get its share at once (its stats stay readable) */
    if (r.flow != NULL)
        rg_flow_redis_stop(rg_run_flow_client(r.flow));
    if (r.cache != NULL) /* the last epochs into Redis (bounded) */
        rg_cache_job_flush(r.cache, 5000);
    /* the last epochs' dead letters to dlq.topic (bounded; what is left
     * goes out from the next run) */
    rg_run_dlq_stop(r.dlq, 5000);
    if (rg_engine_error(r.pl.engine) != NULL)
        snprintf(why, sizeof(why), "%s", rg_engine_error(r.pl.engine));
    end_threads(&r);
    /* scrapes read the pipeline: the listener goes before it does */
    rg_run_metrics_stop(r.metrics);
    r.metrics = NULL;
    print_stats(&r, "final");
    if (why[0] != '\0')
        rc = rg_cli_error(&cli, "%s", why);

out:
    if (cond_ok)
        pthread_cond_destroy(&r.wake);
    rg_run_metrics_stop(r.metrics);
    rg_run_dlq_destroy(r.dlq);
    /* its hooks touch the engine: before the pipeline closes */
    rg_run_flow_destroy(r.flow);
    rg_pipeline_close(&r.pl);
    rg_cache_job_destroy(r.cache);
    rg_conf_destroy(cli.conf);
    return rc;
}
