/*
 * peers_metrics.c - what a metric update costs the hot path, and whether
 * reading metrics slows it: the calling thread (pinned, as a worker is)
 * bumps a counter or observes a duration in a loop (durations hopping
 * over 0..8 ms, a new bucket most times: the worst case; or steady, in
 * one bucket), alone, while another
 * thread renders the whole registry at 10 Hz (a 100 ms scrape interval:
 * ten times the 1 s scrape of the tests, 150 times a common 15 s), and
 * while it renders
 * flat out (the worst a reader can do). Peers: one shared atomic cell
 * (what most metrics libraries do) and a mutex-guarded counter and
 * histogram.
 *
 * The registry looks like the engine's will: per-worker and per-reason
 * owned families, a 256-partition collected gauge family and a top-10
 * hot-key family filled by a collector at every render, so a render does
 * the work a real scrape does. Close renders once more and checks the
 * rendered totals against the updates made.
 *
 * rgb_scraper_*: the same scraping thread over an engine's own counters
 * (rg_engine_stats(), per-worker processed, partition stats: collected
 * families), for pipeline/railgun_scraped_10hz.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdalign.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "peers.h"
#include "railgun/railgun.h"

#define PARTITIONS 256
#define HOT_KEYS 10

struct scraper {
    rg_metrics_t *m;
    unsigned hz;          /* 0: flat out */
    int cpu;              /* pinned there (-1: anywhere) */
    pthread_t thread;
    _Atomic bool stop;
    _Atomic uint64_t renders;
};

struct rgb_metrics {
    int impl;
    cpu_set_t saved;
    rg_metrics_t *m;
    rg_metric_family_t *lag, *hot;
    rg_counter_t *counter;
    rg_histogram_t *hist;
    uint64_t ops, tick;
    struct scraper scr;
    bool scraping;
    /* peers */
    alignas(64) _Atomic uint64_t shared;
    alignas(64) pthread_mutex_t mu;
    uint64_t mutex_count;
    uint64_t mutex_buckets[RG_METRICS_BUCKETS_MAX + 1];
    double mutex_sum;
};

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

static void *scrape_main(void *arg)
{
    struct scraper *s = arg;
    rgb_pin(s->cpu);
    /* relaxed: a stop flag; close joins the thread before reading renders */
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        char *text = NULL;
        /* relaxed: only this thread writes it */
        rg_metrics_format_t fmt =
            atomic_load_explicit(&s->renders, memory_order_relaxed) % 2 ?
            RG_METRICS_JSON : RG_METRICS_TEXT;
        if (rg_metrics_render(s->m, fmt, &text, NULL) == 0)
            free(text);
        /* release: pairs with the acquire in scraper_start(), which waits
         * for the first render so every timed run has a scraper going */
        atomic_fetch_add_explicit(&s->renders, 1, memory_order_release);
        if (s->hz > 0)
            sleep_ns(1000000000u / s->hz);
    }
    return NULL;
}

static void scraper_start(struct scraper *s, rg_metrics_t *m, unsigned hz,
                          int cpu)
{
    s->m = m;
    s->hz = hz;
    s->cpu = cpu;
    atomic_store_explicit(&s->stop, false, memory_order_relaxed);
    atomic_store_explicit(&s->renders, 0, memory_order_relaxed);
    if (pthread_create(&s->thread, NULL, scrape_main, s) != 0) {
        fprintf(stderr, "railgun-bench: cannot start the scraper\n");
        abort();
    }
    /* acquire: pairs with the release in scrape_main() */
    while (atomic_load_explicit(&s->renders, memory_order_acquire) == 0)
        sched_yield();
}

static void scraper_stop(struct scraper *s)
{
    atomic_store_explicit(&s->stop, true, memory_order_relaxed);
    pthread_join(s->thread, NULL);
}

static rg_metric_family_t *must(rg_metrics_t *m, rg_metric_desc_t d)
{
    char err[256];
    rg_metric_family_t *f = rg_metrics_family_new(m, &d, err, sizeof(err));
    if (f == NULL) {
        fprintf(stderr, "railgun-bench: %s\n", err);
        abort();
    }
    return f;
}

static void collect_bench(rg_metrics_scrape_t *s, void *opaque)
{
    struct rgb_metrics *b = opaque;
    for (int p = 0; p < PARTITIONS; p++) {
        char part[8];
        snprintf(part, sizeof(part), "%d", p);
        const char *v[] = {part};
        rg_metrics_collect_i64(s, b->lag, v, p * 3);
    }
    for (int k = 0; k < HOT_KEYS; k++) {
        char key[24];
        snprintf(key, sizeof(key), "%d", 1000000 + k);
        const char *v[] = {key};
        rg_metrics_collect_u64(s, b->hot, v, (uint64_t)(HOT_KEYS - k) * 1000);
    }
}

rgb_metrics *rgb_metrics_open(int impl, int cpu_writer, int cpu_scraper)
{
    struct rgb_metrics *b = aligned_alloc(64, (sizeof(*b) + 63) & ~63ul);
    memset(b, 0, sizeof(*b));
    b->impl = impl;
    pthread_mutex_init(&b->mu, NULL);
    pthread_getaffinity_np(pthread_self(), sizeof(b->saved), &b->saved);
    rgb_pin(cpu_writer);

    rg_metrics_t *m = b->m = rg_metrics_new(NULL);
    const char *wl[] = {"worker"}, *rl[] = {"reason"};
    rg_metric_family_t *ev = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "worker_events",
        .help = "Events per worker.", .labels = wl, .nlabels = 1});
    rg_metric_family_t *dlq = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "events_dead_lettered",
        .help = "By reason.", .labels = rl, .nlabels = 1});
    rg_metric_family_t *busy = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "worker_busy", .unit = "ratio",
        .help = "Busy.", .labels = wl, .nlabels = 1});
    rg_metric_family_t *proc = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "process", .unit = "seconds",
        .help = "Per-event processing time.", .labels = wl, .nlabels = 1});
    b->lag = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "partition_lag",
        .help = "Lag.", .labels = (const char *[]){"partition"},
        .nlabels = 1, .max_series = 1024, .collected = true});
    b->hot = must(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "hot_key_events",
        .help = "Top keys.", .labels = (const char *[]){"key"},
        .nlabels = 1, .max_series = HOT_KEYS, .collected = true});
    rg_metrics_collector_add(m, collect_bench, b);
    for (int w = 0; w < 8; w++) {
        char id[4];
        snprintf(id, sizeof(id), "%d", w);
        const char *v[] = {id};
        rg_counter_add_sw(rg_metrics_counter(ev, v, 0), 0);
        rg_gauge_set(rg_metrics_gauge(busy, v, 0), 0.5);
        rg_metrics_histogram(proc, v, 0);
    }
    const char *reasons[] = {"undecodable", "attempts", "oversized"};
    for (int r = 0; r < 3; r++)
        rg_metrics_counter(dlq, &reasons[r], 0);
    const char *w0[] = {"0"};
    b->counter = rg_metrics_counter(ev, w0, 0);
    b->hist = rg_metrics_histogram(proc, w0, 0);

    unsigned hz = 0;
    switch (impl) {
    case RGB_METRICS_COUNTER_SCRAPED_10HZ:
    case RGB_METRICS_HISTOGRAM_SCRAPED_10HZ:
        hz = 10;
        /* fallthrough */
    case RGB_METRICS_COUNTER_SCRAPED_BUSY:
    case RGB_METRICS_HISTOGRAM_SCRAPED_BUSY:
        b->scraping = true;
        scraper_start(&b->scr, m, hz, cpu_scraper);
        break;
    default:
        break;
    }
    return b;
}

/* A duration that walks the buckets: 0 .. about 10 ms. */
static inline uint64_t duration_ns(uint64_t i)
{
    return (i * 2654435761u) & ((1u << 23) - 1);
}

void rgb_metrics_run(rgb_metrics *b, uint64_t n)
{
    switch (b->impl) {
    case RGB_METRICS_COUNTER:
    case RGB_METRICS_COUNTER_SCRAPED_10HZ:
    case RGB_METRICS_COUNTER_SCRAPED_BUSY:
        for (uint64_t i = 0; i < n; i++)
            rg_counter_add_sw(b->counter, 1);
        break;
    case RGB_METRICS_COUNTER_ATOMIC:
        for (uint64_t i = 0; i < n; i++)
            /* relaxed: the peer does what a shared counter cell does */
            atomic_fetch_add_explicit(&b->shared, 1, memory_order_relaxed);
        break;
    case RGB_METRICS_COUNTER_MUTEX:
        for (uint64_t i = 0; i < n; i++) {
            pthread_mutex_lock(&b->mu);
            b->mutex_count++;
            pthread_mutex_unlock(&b->mu);
        }
        break;
    case RGB_METRICS_HISTOGRAM:
    case RGB_METRICS_HISTOGRAM_SCRAPED_10HZ:
    case RGB_METRICS_HISTOGRAM_SCRAPED_BUSY:
        for (uint64_t i = 0; i < n; i++)
            rg_histogram_observe_ns_sw(b->hist, duration_ns(b->tick + i));
        break;
    case RGB_METRICS_RENDER_TEXT:
    case RGB_METRICS_RENDER_JSON:
        for (uint64_t i = 0; i < n; i++) {
            char *text = NULL;
            if (rg_metrics_render(b->m, b->impl == RGB_METRICS_RENDER_TEXT ?
                                  RG_METRICS_TEXT : RG_METRICS_JSON,
                                  &text, NULL) != 0)
                abort();
            free(text);
        }
        break;
    case RGB_METRICS_HISTOGRAM_STEADY:
        /* 30..46 us: all in the (25 us, 50 us] bucket, as a steady
         * workload's durations mostly are */
        for (uint64_t i = 0; i < n; i++)
            rg_histogram_observe_ns_sw(b->hist, 30000 +
                                       (duration_ns(b->tick + i) & 0x3fff));
        break;
    case RGB_METRICS_HISTOGRAM_MUTEX: {
        /* the same default bounds, searched the same way */
        static const double bounds[] = {
            0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
            0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
        for (uint64_t i = 0; i < n; i++) {
            double v = (double)duration_ns(b->tick + i) * 1e-9;
            uint32_t lo = 0, k = 19;
            while (k > 0) {
                uint32_t half = k / 2;
                if (bounds[lo + half] < v) {
                    lo += half + 1;
                    k -= half + 1;
                } else {
                    k = half;
                }
            }
            pthread_mutex_lock(&b->mu);
            b->mutex_buckets[lo]++;
            b->mutex_sum += v;
            b->mutex_count++;
            pthread_mutex_unlock(&b->mu);
        }
        break;
    }
    }
    b->tick += n;
    b->ops += n;
}

static double rendered(rg_metrics_t *m, const char *series)
{
    char *text = NULL;
    double v = NAN;
    if (rg_metrics_render(m, RG_METRICS_TEXT, &text, NULL) != 0)
        return v;
    char *p = strstr(text, series);
    if (p != NULL)
        v = strtod(p + strlen(series), NULL);
    free(text);
    return v;
}

int rgb_metrics_close(rgb_metrics *b)
{
    if (b->scraping)
        scraper_stop(&b->scr);
    bool ok = true;
    switch (b->impl) {
    case RGB_METRICS_COUNTER:
    case RGB_METRICS_COUNTER_SCRAPED_10HZ:
    case RGB_METRICS_COUNTER_SCRAPED_BUSY:
        ok = rendered(b->m, "\nrailgun_worker_events_total{worker=\"0\"} ") ==
             (double)b->ops;
        break;
    case RGB_METRICS_HISTOGRAM:
    case RGB_METRICS_HISTOGRAM_STEADY:
    case RGB_METRICS_HISTOGRAM_SCRAPED_10HZ:
    case RGB_METRICS_HISTOGRAM_SCRAPED_BUSY:
        ok = rendered(b->m, "\nrailgun_process_seconds_count{worker=\"0\"} ") ==
             (double)b->ops;
        break;
    case RGB_METRICS_COUNTER_ATOMIC:
        ok = atomic_load_explicit(&b->shared, memory_order_relaxed) == b->ops;
        break;
    case RGB_METRICS_RENDER_TEXT:
    case RGB_METRICS_RENDER_JSON:
        ok = rendered(b->m, "\nrailgun_partition_lag{partition=\"255\"} ") ==
             255 * 3;
        break;
    default:
        ok = b->mutex_count == b->ops;
        break;
    }
    pthread_setaffinity_np(pthread_self(), sizeof(b->saved), &b->saved);
    rg_metrics_destroy(b->m);
    pthread_mutex_destroy(&b->mu);
    free(b);
    return ok ? 0 : -1;
}

/* ---- a scraper over an engine's counters --------------------------------- */

struct rgb_scraper {
    rg_engine_t *e;
    rg_metrics_t *m;
    rg_metric_family_t *accepted, *processed, *waits, *worker, *lag;
    struct scraper scr;
};

static void collect_engine(rg_metrics_scrape_t *s, void *opaque)
{
    struct rgb_scraper *x = opaque;
    rg_engine_stats_t st;
    rg_engine_stats(x->e, &st);
    rg_metrics_collect_u64(s, x->accepted, NULL, st.accepted);
    rg_metrics_collect_u64(s, x->processed, NULL, st.processed);
    rg_metrics_collect_u64(s, x->waits, NULL, st.dispatcher_waits);
    for (unsigned w = 0; w < st.workers; w++) {
        char id[12];
        snprintf(id, sizeof(id), "%u", w);
        const char *v[] = {id};
        rg_metrics_collect_u64(s, x->worker, v,
                               rg_engine_worker_processed(x->e, w));
    }
    rg_partition_stats_t ps;
    if (rg_engine_partition_stats(x->e, 0, &ps) == 0) {
        const char *v[] = {"0"};
        rg_metrics_collect_i64(s, x->lag, v, ps.next - ps.committable);
    }
}

rgb_scraper *rgb_scraper_start(rg_engine_t *e, unsigned hz)
{
    struct rgb_scraper *x = calloc(1, sizeof(*x));
    x->e = e;
    x->m = rg_metrics_new(NULL);
    x->accepted = must(x->m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "events_accepted",
        .help = "Accepted.", .collected = true});
    x->processed = must(x->m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "events_processed",
        .help = "Processed.", .collected = true});
    x->waits = must(x->m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "dispatcher_waits",
        .help = "Waits.", .collected = true});
    x->worker = must(x->m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "worker_events",
        .help = "Per worker.", .labels = (const char *[]){"worker"},
        .nlabels = 1, .max_series = 1024, .collected = true});
    x->lag = must(x->m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "partition_pending",
        .help = "Pending.", .labels = (const char *[]){"partition"},
        .nlabels = 1, .max_series = 1024, .collected = true});
    rg_metrics_collector_add(x->m, collect_engine, x);
    scraper_start(&x->scr, x->m, hz, -1);
    return x;
}

uint64_t rgb_scraper_stop(rgb_scraper *x)
{
    if (x == NULL)
        return 0;
    scraper_stop(&x->scr);
    /* relaxed: the thread is joined */
    uint64_t n = atomic_load_explicit(&x->scr.renders, memory_order_relaxed);
    rg_metrics_destroy(x->m);
    free(x);
    return n;
}
