/*
 * metrics_serve.c - a registry holding every kind of metric (owned and
 * collected counters, gauges and histograms, labelled and not, an
 * overflowed family, label values that need escaping or are not UTF-8),
 * for the exposition checks:
 *
 *   metrics_serve print [text|json]   renders it once to stdout
 *   metrics_serve serve PORT_FILE N   serves it on 127.0.0.1 (a free
 *       port, written to PORT_FILE) after counting N events into
 *       railgun_test_events_total; until SIGTERM or SIGINT
 *
 * Exits 0, or 1 with a one-line reason on stderr.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/http.h"
#include "railgun/metrics.h"

static rg_metric_family_t *c_consumed, *c_lag, *c_rows;

static void collect(rg_metrics_scrape_t *s, void *opaque)
{
    (void)opaque;
    rg_metrics_collect_u64(s, c_consumed, NULL, 123456789);
    for (int p = 0; p < 3; p++) {
        char part[8];
        snprintf(part, sizeof(part), "%d", p);
        const char *v[] = {"likes", part};
        rg_metrics_collect_i64(s, c_lag, v, p * 10);
    }
    const uint64_t counts[] = {4, 3, 2, 1}; /* 3 bounds and +Inf */
    rg_metrics_collect_histogram(s, c_rows, NULL, counts, 4, 1234.5);
}

static rg_metric_family_t *must(rg_metrics_t *m, rg_metric_desc_t d)
{
    char err[256];
    rg_metric_family_t *f = rg_metrics_family_new(m, &d, err, sizeof(err));
    if (f == NULL) {
        fprintf(stderr, "metrics_serve: %s\n", err);
        exit(1);
    }
    return f;
}

static rg_metrics_t *build(uint64_t events)
{
    rg_metrics_t *m = rg_metrics_new(NULL);
    if (m == NULL) {
        fprintf(stderr, "metrics_serve: out of memory\n");
        exit(1);
    }
    rg_metric_family_t *ev = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "test_events",
        .help = "Events counted by the test program.", .writers = 2});
    rg_counter_add_sw(rg_metrics_counter(ev, NULL, 0), events / 2);
    rg_counter_add_sw(rg_metrics_counter(ev, NULL, 1), events - events / 2);

    const char *rl[] = {"reason"};
    rg_metric_family_t *dlq = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "test_dead_lettered",
        .help = "Dead-lettered, by reason (capped at 2: \"the rest\" -> "
                "_overflow).\nSecond line, a \\ backslash.",
        .labels = rl, .nlabels = 1, .max_series = 2});
    const char *reasons[] = {"undecodable", "attempts \"exhausted\"\n\\",
                             "bad\xff" "utf8", "fourth"};
    for (int i = 0; i < 4; i++) {
        const char *v[] = {reasons[i]};
        rg_counter_add_mw(rg_metrics_counter(dlq, v, 0), (uint64_t)i + 1);
    }

    const char *wl[] = {"worker"};
    rg_metric_family_t *fill = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "test_ring_fill", .unit = "ratio",
        .help = "Ring fill.", .labels = wl, .nlabels = 1});
    for (int w = 0; w < 2; w++) {
        char id[4];
        snprintf(id, sizeof(id), "%d", w);
        const char *v[] = {id};
        rg_gauge_set(rg_metrics_gauge(fill, v, 0), 0.25 * (w + 1));
    }
    rg_metric_family_t *up = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "test_degraded",
        .help = "1 while degraded."});
    rg_gauge_set(rg_metrics_gauge(up, NULL, 0), 0);

    rg_metric_family_t *tx = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "test_transaction",
        .unit = "seconds", .help = "Sink transaction time.",
        .labels = (const char *[]){"sink"}, .nlabels = 1});
    const char *sink[] = {"mysql"};
    rg_histogram_t *h = rg_metrics_histogram(tx, sink, 0);
    for (int i = 1; i <= 1000; i++)
        rg_histogram_observe_ns_sw(h, (uint64_t)i * 37000);

    c_consumed = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "test_consumed",
        .help = "Consumed (collected).", .collected = true});
    const char *pl[] = {"topic", "partition"};
    c_lag = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "test_partition_lag",
        .help = "Lag (collected).", .labels = pl, .nlabels = 2,
        .max_series = 1024, .collected = true});
    const double rb[] = {10, 100, 1000};
    c_rows = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "test_epoch_rows",
        .help = "Rows per epoch (collected).", .buckets = rb, .nbuckets = 3,
        .collected = true});
    rg_metrics_collector_add(m, collect, NULL);
    return m;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "print") == 0) {
        bool json = argc >= 3 && strcmp(argv[2], "json") == 0;
        rg_metrics_t *m = build(1000);
        char *out;
        int rc = rg_metrics_render(m, json ? RG_METRICS_JSON : RG_METRICS_TEXT,
                                   &out, NULL);
        if (rc != 0) {
            fprintf(stderr, "metrics_serve: render: %s\n", rg_strerror(rc));
            return 1;
        }
        fputs(out, stdout);
        free(out);
        rg_metrics_destroy(m);
        return 0;
    }
    if (argc != 4 || strcmp(argv[1], "serve") != 0) {
        fprintf(stderr, "usage: metrics_serve print [text|json] | "
                "metrics_serve serve PORT_FILE EVENTS\n");
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts */
    rg_metrics_t *m = build(strtoull(argv[3], NULL, 10));
    char err[256];
    rg_http_t *h = rg_http_new("127.0.0.1:0", NULL, err, sizeof(err));
    if (h == NULL || rg_http_serve_metrics(h, m) != 0 ||
        rg_http_serve_health(h, NULL, NULL, NULL) != 0 ||
        rg_http_start(h, err, sizeof(err)) != 0) {
        fprintf(stderr, "metrics_serve: %s\n", err);
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", argv[2]);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", rg_http_port(h)) < 0 ||
        fclose(f) != 0 || rename(tmp, argv[2]) != 0) {
        fprintf(stderr, "metrics_serve: cannot write %s\n", argv[2]);
        return 1;
    }
    int sig;
    sigwait(&set, &sig);
    rg_http_destroy(h);
    rg_metrics_destroy(m);
    return 0;
}
