/*
 * peers_lanes.c - what hot lanes buy on a skewed stream: one source
 * pushes at a steady rate, one key takes `hot` of the events, the rest
 * spread over 10,000 cold keys; each event costs the processor `cost_ns`
 * of waiting (a batch sleeps n x cost_ns: a lookup in a remote store, not
 * CPU, so the threads do not compete for the VM's 2 vCPUs and the run
 * shows the queueing each thread sees, as on cores of their own; with
 * CPU-bound work 2 vCPUs cannot run four threads at once, and lanes add
 * no capacity there).
 * The same stream runs through the same engine twice: with
 * hotkey.enable only (the hot key stays on the worker it hashes to), and
 * with hotkey.lanes too (it moves to the lanes at the first barrier after
 * detection, split over them by a subkey). After a warm-up (detection and
 * the move), it measures
 *   - imbalance: the busiest thread's events / the mean over the threads
 *     that process (workers, and lanes when there are any);
 *   - cold latency: p50 and p99 of the time from the push of a cold key's
 *     event to its processing (every 8th cold event sampled).
 * Epoch mode with the null sink (lanes need barriers); per-key order is
 * the engine's to keep, and the counts per key are checked at the end.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "peers.h"
#include "railgun/railgun.h"
#include "railgun/sinks.h"

#define COLD_KEYS 10000u
#define HOT_KEY (COLD_KEYS + 1)
#define MAX_THREADS 64

struct lanes_run {
    uint64_t cost_ns, warm_ns;
    _Atomic int64_t t_warm;     /* push time after which samples count */
    uint64_t *lat[MAX_THREADS]; /* per thread: sampled latencies (ns) */
    size_t nlat[MAX_THREADS], cap;
    uint32_t *counts[MAX_THREADS]; /* per thread, per key */
};

struct pl {
    int64_t push_ns;
    uint32_t sub;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int unpack_unused(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque, (void)m, (void)ev;
    return RG_EDECODE;
}

static uint64_t sub_of(void *opaque, const rg_event_t *ev)
{
    (void)opaque;
    struct pl p;
    memcpy(&p, ev->data.bytes, sizeof(p));
    return ev->key * 1000003u + p.sub;
}

static void work(void *opaque, rg_ctx_t *ctx, rg_event_t *evs, size_t n)
{
    struct lanes_run *r = opaque;
    unsigned t = rg_ctx_worker(ctx);
    int64_t t0 = now_ns(), ns = (int64_t)(r->cost_ns * n);
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    nanosleep(&ts, NULL);
    int64_t done = now_ns();
    (void)t0;
    /* relaxed: set once by the pusher; a late view only drops samples */
    int64_t warm = atomic_load_explicit(&r->t_warm, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        const rg_event_t *ev = &evs[i];
        struct pl p;
        memcpy(&p, ev->data.bytes, sizeof(p));
        r->counts[t][ev->key]++;
        if (ev->key != HOT_KEY && (ev->offset & 7) == 0 &&
            p.push_ns >= warm && r->nlat[t] < r->cap)
            r->lat[t][r->nlat[t]++] = (uint64_t)(done - p.push_ns);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int rgb_lanes_run(unsigned lanes, double hot, double rate, double seconds,
                  uint64_t cost_ns, rgb_lanes_result *out)
{
    memset(out, 0, sizeof(*out));
    char err[256], v[32];
    rg_conf_t *conf = rg_conf_new();
    if (conf == NULL)
        return -1;
    snprintf(v, sizeof(v), "%u", lanes);
    const char *xs[] = {
        "workers", "2", "dispatchers", "1", "hotkey.enable", "true",
        "hotkey.window.ms", "100", "hotkey.min.events", "100",
        "hotkey.lanes", v, "flush.interval.ms", "20", NULL};
    for (int i = 0; xs[i] != NULL; i += 2)
        if (rg_conf_set(conf, xs[i], xs[i + 1], err, sizeof(err)) != 0) {
            fprintf(stderr, "lanes: %s\n", err);
            rg_conf_destroy(conf);
            return -1;
        }
    static struct lanes_run r;
    memset(&r, 0, sizeof(r));
    r.cost_ns = cost_ns;
    r.warm_ns = 1000000000; /* detection (100 ms window) and the move */
    /* relaxed: before the engine's threads start (their creation orders
     * it); no sample counts until the pusher lowers it */
    atomic_store_explicit(&r.t_warm, INT64_MAX, memory_order_relaxed);
    uint64_t total = (uint64_t)(rate * seconds);
    unsigned threads = 2 + lanes;
    r.cap = (size_t)(total / 8 + 1);
    for (unsigned t = 0; t < threads; t++) {
        r.lat[t] = malloc(sizeof(uint64_t) * r.cap);
        r.counts[t] = calloc(HOT_KEY + 1, sizeof(uint32_t));
        if (r.lat[t] == NULL || r.counts[t] == NULL)
            return -1;
    }
    rg_processor_t proc = {.unpack = unpack_unused, .batch_do = work,
                           .opaque = &r, .order_key = sub_of, .split = 1};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    rg_sink_t sink;
    if (e == NULL || rg_sink_null_open(&sink) != 0 ||
        rg_engine_set_sink(e, &sink, err, sizeof(err)) != 0 ||
        rg_engine_start(e, err, sizeof(err)) != 0) {
        fprintf(stderr, "lanes: %s\n", err);
        return -1;
    }
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    uint32_t *sent = calloc(HOT_KEY + 1, sizeof(uint32_t));
    uint64_t rng = 0x9e3779b97f4a7c15ull, hot_ppm = (uint64_t)(hot * 1e6);
    enum { BURST = 256 };
    rg_event_t evs[BURST];
    int64_t t0 = now_ns();
    uint64_t warm_snap[MAX_THREADS] = {0};
    bool warm = false;
    for (uint64_t n = 0; n < total; n += BURST) {
        /* paced: burst n is due at t0 + n / rate; sleep most of the
         * gap (a spinning source would take a CPU from the workers) */
        int64_t due = t0 + (int64_t)((double)n / rate * 1e9), left;
        while ((left = due - now_ns()) > 0) {
            if (left > 80000) {
                struct timespec ts = {0, left - 60000};
                nanosleep(&ts, NULL);
            }
        }
        int64_t t = now_ns();
        if (!warm && t - t0 >= (int64_t)r.warm_ns) {
            warm = true;
            for (unsigned w = 0; w < threads; w++)
                warm_snap[w] = rg_engine_worker_processed(e, w);
            /* relaxed: a threshold; see work() */
            atomic_store_explicit(&r.t_warm, t, memory_order_relaxed);
        }
        for (int i = 0; i < BURST; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            uint64_t k = (rng >> 40) % 1000000 < hot_ppm
                             ? HOT_KEY
                             : 1 + (rng >> 8) % COLD_KEYS;
            struct pl p = {t, (uint32_t)(rng >> 20) % 100000};
            memset(&evs[i], 0, sizeof(evs[i]));
            evs[i].key = k;
            evs[i].offset = (int64_t)(n + (uint64_t)i);
            evs[i].len = sizeof(p);
            memcpy(evs[i].data.bytes, &p, sizeof(p));
            sent[k]++;
        }
        if (rg_dispatcher_push_events(d, evs, BURST) != BURST)
            return -1;
    }
    double pushed_s = (double)(now_ns() - t0) / 1e9;
    if (rg_dispatcher_flush(d, 60000) != 0)
        return -1;
    uint64_t per[MAX_THREADS], sum = 0, mx = 0;
    for (unsigned w = 0; w < threads; w++) {
        per[w] = rg_engine_worker_processed(e, w) - warm_snap[w];
        sum += per[w];
        if (per[w] > mx)
            mx = per[w];
    }
    if (rg_engine_stop(e) != 0)
        return -1;
    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    int bad = 0;
    for (uint64_t k = 0; k <= HOT_KEY; k++) {
        uint64_t got = 0;
        for (unsigned t = 0; t < threads; t++)
            got += r.counts[t][k];
        bad |= got != sent[k];
    }
    size_t nl = 0;
    for (unsigned t = 0; t < threads; t++)
        nl += r.nlat[t];
    uint64_t *all = malloc(sizeof(uint64_t) * (nl + 1));
    size_t j = 0;
    for (unsigned t = 0; t < threads; t++) {
        memcpy(all + j, r.lat[t], sizeof(uint64_t) * r.nlat[t]);
        j += r.nlat[t];
        free(r.lat[t]);
        free(r.counts[t]);
    }
    qsort(all, nl, sizeof(uint64_t), cmp_u64);
    out->imbalance = sum ? (double)mx * threads / (double)sum : 0;
    out->cold_p50_us = nl ? (double)all[nl / 2] / 1e3 : 0;
    out->cold_p99_us = nl ? (double)all[nl * 99 / 100] / 1e3 : 0;
    out->events_per_s = (double)total / pushed_s;
    out->moves = st.moves;
    out->threads = threads;
    free(all);
    free(sent);
    rg_engine_destroy(e);
    return bad ? -2 : 0;
}
