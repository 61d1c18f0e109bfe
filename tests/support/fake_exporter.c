/*
 * fake_exporter.c - a stand-in for `railgun run`'s metrics listener, for
 * the dashboard and doctor tests before (and beside) the real engine:
 * the metrics registry (railgun/metrics.h) with every family of
 * NOTES-metrics.md's "Proposed metric names", filled by a collector from
 * clocked formulas (counters grow at fixed rates from the start), served
 * by the real listener (railgun/http.h):
 *
 *   GET /metrics, /stats.json   the registry (text, JSON)
 *   GET /healthz, /readyz       200 ok
 *   GET /doctor.json            doctor over the registry (doctor/live.h)
 *   GET /                       the dashboard page (dashboard.h)
 *
 *   fake_exporter [--scenario healthy|broken]
 *                 [--redis-port P [--redis-password PW] [--group G]] PORT_FILE
 *
 * Listens on 127.0.0.1 (a free port, written to PORT_FILE once serving)
 * until SIGTERM or SIGINT. The rates (per second) are fixed so a test can
 * check a figure against them: processed 5000, consumed 5000, each of 8
 * partitions 625, each of 4 workers 1250 events and 0.3 busy (broken:
 * worker 2 0.95), epochs 10. The broken scenario also has partition 3
 * stuck (oldest pending age 45 s + t, offset 100000 standing), Redis
 * unreachable (flow degraded), retries 50/s, delayed 3/s and dead letters
 * 1/s, partition 5 paused and hot key "42" at 60%.
 *
 * With --redis-port the exporter also joins group G (default "railgun")
 * through the real lease client (railgun/redis.h) as node
 * "fake-SCENARIO-PID@127.0.0.1:PORT", so doctor finds it in the registry;
 * then railgun_flow_degraded and railgun_connected{component="redis"}
 * follow the client's real state (kill Redis: they turn degraded).
 *
 * Exits 0, or 1 with a one-line reason on stderr.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "dashboard.h"
#include "live.h"
#include "railgun/error.h"
#include "railgun/http.h"
#include "railgun/metrics.h"
#include "railgun/redis.h"

#define PARTS 8
#define WORKERS 4

enum {
    F_CONSUMED, F_ACCEPTED, F_PROCESSED, F_UNDECODABLE, F_REJECTED,
    F_RETRIED, F_DELAYED, F_DLQ, F_COMMITTED, F_HW, F_LAG, F_PENDING,
    F_AGE, F_PAUSED, F_W_EVENTS, F_W_BUSY, F_W_FILL, F_W_PARKS, F_LANE,
    F_D_WAITS, F_D_PARKS, F_TX, F_ROWS, F_EPOCHS, F_EPOCH_RETRIES,
    F_EPOCHS_PENDING, F_HOT, F_HOT_KEYS, F_HOT_CHANGES, F_FLOW_LIMIT, F_FLOW_TOKENS, F_FLOW_LEASE,
    F_FLOW_THROTTLED, F_FLOW_DEGRADED, F_FLOW_ADAPTIVE, F_FLOW_TARGET,
    F_FLOW_SINK_LATENCY, F_FLOW_CUTS, F_FLOW_RAISES, F_CONNECTED, F_CONN_ERRORS,
    F_FALLBACK, F_SPOOLED, F_CACHE_SKIPPED, F_HTTP, F__COUNT
};

static const char *const l_tp[] = {"topic", "partition"};
static const char *const l_w[] = {"worker"};
static const char *const l_lane[] = {"lane"};
static const char *const l_d[] = {"dispatcher"};
static const char *const l_key[] = {"key"};
static const char *const l_comp[] = {"component"};
static const char *const l_reason[] = {"reason"};
static const char *const l_class[] = {"class"};
static const char *const l_dir[] = {"direction"};

static double rows_bounds[11];

static const struct fam {
    rg_metric_kind_t kind;
    const char *name, *unit, *help;
    const char *const *labels;
    unsigned nlabels, max;
} fams[F__COUNT] = {
    [F_CONSUMED] = {RG_METRIC_COUNTER, "events_consumed", NULL, "Events the source consumed.", NULL, 0, 0},
    [F_ACCEPTED] = {RG_METRIC_COUNTER, "events_accepted", NULL, "Events the engine accepted.", NULL, 0, 0},
    [F_PROCESSED] = {RG_METRIC_COUNTER, "events_processed", NULL, "Events processed.", NULL, 0, 0},
    [F_UNDECODABLE] = {RG_METRIC_COUNTER, "events_undecodable", NULL, "Events that did not decode.", NULL, 0, 0},
    [F_REJECTED] = {RG_METRIC_COUNTER, "events_rejected", NULL, "Events rejected.", NULL, 0, 0},
    [F_RETRIED] = {RG_METRIC_COUNTER, "events_retried", NULL, "Processing attempts retried.", NULL, 0, 0},
    [F_DELAYED] = {RG_METRIC_COUNTER, "events_delayed", NULL, "Events handed to the delayed queue.", NULL, 0, 0},
    [F_DLQ] = {RG_METRIC_COUNTER, "events_dead_lettered", NULL, "Events dead-lettered, by reason.", l_reason, 1, 8},
    [F_COMMITTED] = {RG_METRIC_GAUGE, "partition_committed_offset", NULL, "Committed offset.", l_tp, 2, 1024},
    [F_HW] = {RG_METRIC_GAUGE, "partition_high_watermark", NULL, "High watermark.", l_tp, 2, 1024},
    [F_LAG] = {RG_METRIC_GAUGE, "partition_lag", NULL, "High watermark minus committed offset.", l_tp, 2, 1024},
    [F_PENDING] = {RG_METRIC_GAUGE, "partition_pending_events", NULL, "Events begun and not done.", l_tp, 2, 1024},
    [F_AGE] = {RG_METRIC_GAUGE, "partition_oldest_pending_age", "seconds", "Age of the oldest pending event.", l_tp, 2, 1024},
    [F_PAUSED] = {RG_METRIC_GAUGE, "partition_paused", NULL, "1 while the partition is paused.", l_tp, 2, 1024},
    [F_W_EVENTS] = {RG_METRIC_COUNTER, "worker_events", NULL, "Events each worker processed.", l_w, 1, 64},
    [F_W_BUSY] = {RG_METRIC_COUNTER, "worker_busy", "seconds", "Time each worker spent processing.", l_w, 1, 64},
    [F_W_FILL] = {RG_METRIC_GAUGE, "worker_ring_fill", "ratio", "Fullest ring of each worker.", l_w, 1, 64},
    [F_W_PARKS] = {RG_METRIC_COUNTER, "worker_parks", NULL, "Times each worker parked.", l_w, 1, 64},
    [F_LANE] = {RG_METRIC_COUNTER, "lane_events", NULL, "Events each hot lane processed.", l_lane, 1, 16},
    [F_D_WAITS] = {RG_METRIC_COUNTER, "dispatcher_waits", NULL, "Waits on full rings.", l_d, 1, 16},
    [F_D_PARKS] = {RG_METRIC_COUNTER, "dispatcher_parks", NULL, "Dispatcher parks.", l_d, 1, 16},
    [F_TX] = {RG_METRIC_HISTOGRAM, "epoch_transaction", "seconds", "Sink transaction time of an epoch.", NULL, 0, 0},
    [F_ROWS] = {RG_METRIC_HISTOGRAM, "epoch_rows", NULL, "Rows per epoch.", NULL, 0, 0},
    [F_EPOCHS] = {RG_METRIC_COUNTER, "epochs", NULL, "Epochs stored.", NULL, 0, 0},
    [F_EPOCH_RETRIES] = {RG_METRIC_COUNTER, "epoch_retries", NULL, "Sink transactions retried.", NULL, 0, 0},
    [F_EPOCHS_PENDING] = {RG_METRIC_GAUGE, "epochs_pending", NULL, "Sealed epochs waiting for the sink.", NULL, 0, 0},
    [F_HOT] = {RG_METRIC_GAUGE, "hot_key_share", "ratio", "Share of the events of the hottest keys.", l_key, 1, 10},
    [F_HOT_KEYS] = {RG_METRIC_GAUGE, "hot_keys", NULL, "Keys hot now.", NULL, 0, 0},
    [F_HOT_CHANGES] = {RG_METRIC_COUNTER, "hot_key_changes", NULL, "Keys that turned hot and cooled.", l_dir, 1, 2},
    [F_FLOW_LIMIT] = {RG_METRIC_GAUGE, "flow_limit_events_per_second", NULL, "The rate the node enforces.", NULL, 0, 0},
    [F_FLOW_TOKENS] = {RG_METRIC_GAUGE, "flow_tokens", NULL, "Tokens in the bucket.", NULL, 0, 0},
    [F_FLOW_LEASE] = {RG_METRIC_GAUGE, "flow_lease_events_per_second", NULL, "This node's lease of the global rate.", NULL, 0, 0},
    [F_FLOW_THROTTLED] = {RG_METRIC_COUNTER, "flow_throttled", "seconds", "Time spent waiting for tokens.", NULL, 0, 0},
    [F_FLOW_DEGRADED] = {RG_METRIC_GAUGE, "flow_degraded", NULL, "1 while Redis is unreachable.", NULL, 0, 0},
    [F_FLOW_ADAPTIVE] = {RG_METRIC_GAUGE, "flow_adaptive_limit_events_per_second", NULL, "The adaptive limit (0: not limiting).", NULL, 0, 0},
    [F_FLOW_TARGET] = {RG_METRIC_GAUGE, "flow_sink_latency_target", "seconds", "The adaptive limit's target transaction time.", NULL, 0, 0},
    [F_FLOW_SINK_LATENCY] = {RG_METRIC_GAUGE, "flow_sink_latency", "seconds", "The last epoch's transaction time.", NULL, 0, 0},
    [F_FLOW_CUTS] = {RG_METRIC_COUNTER, "flow_adaptive_cuts", NULL, "Times the adaptive limit cut the rate.", NULL, 0, 0},
    [F_FLOW_RAISES] = {RG_METRIC_COUNTER, "flow_adaptive_raises", NULL, "Times the adaptive limit raised it or let go.", NULL, 0, 0},
    [F_CONNECTED] = {RG_METRIC_GAUGE, "connected", NULL, "1 while the component answers.", l_comp, 1, 8},
    [F_CONN_ERRORS] = {RG_METRIC_COUNTER, "connection_errors", NULL, "Connection failures.", l_comp, 1, 8},
    [F_FALLBACK] = {RG_METRIC_GAUGE, "producer_fallback_active", NULL, "1 while the producer is in degraded mode.", NULL, 0, 0},
    [F_SPOOLED] = {RG_METRIC_GAUGE, "producer_spooled_events", NULL, "Events in the producer's spool.", NULL, 0, 0},
    [F_CACHE_SKIPPED] = {RG_METRIC_COUNTER, "cache_updates_skipped", NULL, "Cache updates skipped.", NULL, 0, 0},
    [F_HTTP] = {RG_METRIC_COUNTER, "http_requests", NULL, "HTTP requests answered, by status class.", l_class, 1, 3},
};

static rg_metric_family_t *f[F__COUNT];
static bool broken;
static double t0;
static rg_flow_redis_t *flow;  /* set before the listener starts */
/* the listener, for its request counts; the collector runs on the
 * listener's threads and on doctor's sampler, so it reads this under
 * http_mu, and teardown clears it under http_mu before destroying it */
static rg_http_t *http;
static pthread_mutex_t http_mu = PTHREAD_MUTEX_INITIALIZER;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define U(fam, labels, v) rg_metrics_collect_u64(s, f[fam], labels, (uint64_t)(v))
#define D(fam, labels, v) rg_metrics_collect_f64(s, f[fam], labels, (v))

static void collect(rg_metrics_scrape_t *s, void *opaque)
{
    (void)opaque;
    double t = mono() - t0;
    U(F_CONSUMED, NULL, 1000000 + 5000 * t);
    U(F_ACCEPTED, NULL, 1000000 + 5000 * t);
    U(F_PROCESSED, NULL, 1000000 + 5000 * t);
    U(F_UNDECODABLE, NULL, broken ? 2 * t : 0);
    U(F_REJECTED, NULL, 0);
    U(F_RETRIED, NULL, (broken ? 50 : 1) * t);
    U(F_DELAYED, NULL, broken ? 3 * t : 0);
    U(F_DLQ, (const char *[]){"retries"}, broken ? 1 * t : 0);
    U(F_DLQ, (const char *[]){"undecodable"}, broken ? 2 * t : 0);
    for (int p = 0; p < PARTS; p++) {
        char id[8];
        snprintf(id, sizeof(id), "%d", p);
        const char *v[] = {"likes", id};
        double hw = 100000 + 625 * t, lag = 100 + 37 * p, age = 0.05 * (p + 1);
        double committed = hw - lag, pending = 20 + p;
        if (broken && p == 3) {
            committed = 100000;
            lag = hw - committed;
            age = 45 + t;
            pending = 1 + 625 * t;
        }
        rg_metrics_collect_i64(s, f[F_COMMITTED], v, (int64_t)committed);
        rg_metrics_collect_i64(s, f[F_HW], v, (int64_t)hw);
        rg_metrics_collect_i64(s, f[F_LAG], v, (int64_t)hw - (int64_t)committed);
        U(F_PENDING, v, pending);
        D(F_AGE, v, age);
        U(F_PAUSED, v, broken && p == 5);
    }
    for (int w = 0; w < WORKERS; w++) {
        char id[8];
        snprintf(id, sizeof(id), "%d", w);
        const char *v[] = {id};
        bool hot = broken && w == 2;
        U(F_W_EVENTS, v, 1250 * t);
        D(F_W_BUSY, v, (hot ? 0.95 : 0.3) * t);
        D(F_W_FILL, v, hot ? 0.98 : 0.1);
        U(F_W_PARKS, v, 10 * t);
    }
    U(F_LANE, (const char *[]){"0"}, 300 * t);
    U(F_LANE, (const char *[]){"1"}, 100 * t);
    U(F_D_WAITS, (const char *[]){"0"}, (broken ? 400 : 5) * t);
    U(F_D_PARKS, (const char *[]){"0"}, 2 * t);
    /* 10 transactions a second, all in the 25 ms bucket, 20 ms each */
    uint64_t n = (uint64_t)(10 * t), counts[20] = {0};
    counts[10] = n; /* the default bounds: index 10 is 0.025 */
    rg_metrics_collect_histogram(s, f[F_TX], NULL, counts, 20, 0.02 * (double)n);
    uint64_t rows[12] = {0};
    rows[4] = n; /* 256 < rows <= 1024 */
    rg_metrics_collect_histogram(s, f[F_ROWS], NULL, rows, 12, 500.0 * (double)n);
    U(F_EPOCHS, NULL, n);
    U(F_EPOCH_RETRIES, NULL, 0);
    U(F_EPOCHS_PENDING, NULL, 0);
    D(F_HOT, (const char *[]){"42"}, broken ? 0.6 : 0.12);
    D(F_HOT, (const char *[]){"7"}, 0.05);
    D(F_HOT, (const char *[]){"1001"}, 0.02);
    U(F_HOT_KEYS, NULL, 3);
    U(F_HOT_CHANGES, (const char *[]){"hot"}, 5);
    U(F_HOT_CHANGES, (const char *[]){"cold"}, 2);
    U(F_FLOW_LIMIT, NULL, 10000);
    U(F_FLOW_TOKENS, NULL, 2500);
    U(F_FLOW_LEASE, NULL, 6000);
    D(F_FLOW_THROTTLED, NULL, 0.1 * t);
    bool redis_down = broken;
    if (flow != NULL) {
        rg_flow_redis_stats_t fs;
        rg_flow_redis_stats(flow, &fs);
        redis_down = fs.degraded;
    }
    U(F_FLOW_DEGRADED, NULL, redis_down);
    /* a slow sink: the adaptive limit holds the node below its lease */
    U(F_FLOW_ADAPTIVE, NULL, broken ? 4000 : 0);
    D(F_FLOW_TARGET, NULL, 0.05);
    D(F_FLOW_SINK_LATENCY, NULL, broken ? 0.12 : 0.02);
    U(F_FLOW_CUTS, NULL, broken ? 3 : 0);
    U(F_FLOW_RAISES, NULL, broken ? 1 : 0);
    static const char *const comps[] = {"kafka", "sink", "redis"};
    for (int c = 0; c < 3; c++) {
        const char *v[] = {comps[c]};
        bool down = c == 2 && redis_down;
        U(F_CONNECTED, v, !down);
        U(F_CONN_ERRORS, v, down ? 3 * t : 0);
    }
    U(F_FALLBACK, NULL, 0);
    U(F_SPOOLED, NULL, 0);
    U(F_CACHE_SKIPPED, NULL, 0);
    rg_http_stats_t hs = {0};
    pthread_mutex_lock(&http_mu);
    if (http != NULL)
        rg_http_stats(http, &hs);
    pthread_mutex_unlock(&http_mu);
    U(F_HTTP, (const char *[]){"2xx"}, hs.requests - hs.errors_4xx - hs.errors_5xx);
    U(F_HTTP, (const char *[]){"4xx"}, hs.errors_4xx);
    U(F_HTTP, (const char *[]){"5xx"}, hs.errors_5xx);
}

static void set_rate(void *opaque, uint64_t events_per_s, uint64_t burst)
{
    (void)opaque;
    (void)events_per_s;
    (void)burst;
}

static void usage(void *opaque, rg_flow_usage_t *out)
{
    (void)opaque;
    out->consumed = (uint64_t)(1000000 + 5000 * (mono() - t0));
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fake_exporter: %s: %s\n", what, err);
    exit(1);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *redis_port = NULL, *redis_pw = NULL;
    const char *group = "railgun";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--redis-port") && i + 1 < argc) {
            redis_port = argv[++i];
        } else if (!strcmp(argv[i], "--redis-password") && i + 1 < argc) {
            redis_pw = argv[++i];
        } else if (!strcmp(argv[i], "--group") && i + 1 < argc) {
            group = argv[++i];
        } else if (!strcmp(argv[i], "--scenario") && i + 1 < argc) {
            const char *sc = argv[++i];
            if (strcmp(sc, "healthy") && strcmp(sc, "broken"))
                die("--scenario", "healthy or broken");
            broken = !strcmp(sc, "broken");
        } else if (port_file == NULL && argv[i][0] != '-') {
            port_file = argv[i];
        } else {
            die(argv[i], "usage: fake_exporter [--scenario healthy|broken] "
                         "[--redis-port P [--redis-password PW] [--group G]] "
                         "PORT_FILE");
        }
    }
    if (port_file == NULL)
        die("PORT_FILE", "missing");
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    t0 = mono();

    char err[256];
    rg_metrics_t *m = rg_metrics_new(NULL);
    if (m == NULL)
        die("registry", "out of memory");
    rg_metrics_buckets_exp(1, 4, 11, rows_bounds);
    for (int i = 0; i < F__COUNT; i++) {
        rg_metric_desc_t d = {.kind = fams[i].kind, .name = fams[i].name,
                              .unit = fams[i].unit, .help = fams[i].help,
                              .labels = fams[i].labels,
                              .nlabels = fams[i].nlabels,
                              .max_series = fams[i].max, .collected = true};
        if (i == F_ROWS) {
            d.buckets = rows_bounds;
            d.nbuckets = 11;
        }
        if ((f[i] = rg_metrics_family_new(m, &d, err, sizeof(err))) == NULL)
            die(fams[i].name, err);
    }
    const char *bl[] = {"version", "compiler"};
    rg_metric_family_t *bi = rg_metrics_family_new(m, &(rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "build_info",
        .help = "Build information (always 1).", .labels = bl, .nlabels = 2},
        err, sizeof(err));
    if (bi == NULL)
        die("build_info", err);
    rg_gauge_set(rg_metrics_gauge(bi, (const char *[]){"0.1.0", "fake"}, 0), 1);
    if (rg_metrics_collector_add(m, collect, NULL) != 0)
        die("collector", "out of memory");

    rg_http_t *h = rg_http_new("127.0.0.1:0", NULL, err, sizeof(err));
    if (h == NULL)
        die("listen", err);
    pthread_mutex_lock(&http_mu);
    http = h;
    pthread_mutex_unlock(&http_mu);
    rg_flow_redis_opts_t *fo = NULL;
    if (redis_port != NULL) {
        char id[160];
        snprintf(id, sizeof(id), "fake-%s-%d@127.0.0.1:%u",
                 broken ? "broken" : "healthy", (int)getpid(),
                 rg_http_port(h));
        rg_flow_redis_hooks_t hooks = {set_rate, usage, NULL};
        if ((fo = rg_flow_redis_opts_new()) == NULL ||
            rg_flow_redis_opts_set(fo, "flow.redis.port", redis_port, err,
                                   sizeof(err)) != 0 ||
            (redis_pw != NULL &&
             rg_flow_redis_opts_set(fo, "flow.redis.password", redis_pw, err,
                                    sizeof(err)) != 0) ||
            rg_flow_redis_opts_set(fo, "group.id", group, err,
                                   sizeof(err)) != 0 ||
            rg_flow_redis_opts_set(fo, "flow.global.rate.events.per.s",
                                   "100000", err, sizeof(err)) != 0 ||
            rg_flow_redis_opts_set(fo, "flow.node.id", id, err,
                                   sizeof(err)) != 0 ||
            (flow = rg_flow_redis_new(fo, &hooks, err, sizeof(err))) == NULL ||
            rg_flow_redis_start(flow, err, sizeof(err)) != 0)
            die("redis", err);
    }
    /* after `flow` is set: doctor's sampler runs the collector, which
     * reads it */
    rg_doctor_live_t *live = rg_doctor_live_new(m, "fake", NULL, 500, 3000,
                                                err, sizeof(err));
    if (live == NULL)
        die("doctor", err);
    if (rg_http_serve_metrics(h, m) != 0 ||
        rg_http_serve_health(h, NULL, NULL, NULL) != 0 ||
        rg_http_route(h, "GET", "/", 0, rg_dashboard_http, NULL) != 0 ||
        rg_http_route(h, "GET", "/doctor.json", 0, rg_doctor_live_http,
                      live) != 0)
        die("routes", "out of memory");
    if (rg_http_start(h, err, sizeof(err)) != 0)
        die("start", err);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
    FILE *pf = fopen(tmp, "w");
    if (pf == NULL || fprintf(pf, "%u\n", rg_http_port(h)) < 0 ||
        fclose(pf) != 0 || rename(tmp, port_file) != 0)
        die(port_file, "cannot write");
    int sig;
    sigwait(&sigs, &sig);
    pthread_mutex_lock(&http_mu);
    http = NULL;
    pthread_mutex_unlock(&http_mu);
    rg_http_destroy(h);
    rg_doctor_live_destroy(live);
    rg_flow_redis_destroy(flow);
    rg_flow_redis_opts_destroy(fo);
    rg_metrics_destroy(m);
    return 0;
}
