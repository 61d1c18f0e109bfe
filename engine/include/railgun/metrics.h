/*
 * metrics.h - the metrics registry: counters, gauges and histograms that
 * the engine, its adapters and an embedder report into, rendered on demand
 * as Prometheus text (exposition format 0.0.4) or as one JSON object. The
 * registry does no I/O: a listener (railgun/http.h) or the embedder asks
 * for the text and sends it.
 *
 * Model
 *   - A family is one metric: kind, name, help, unit, label names, a cap
 *     on its label sets (series), and where its values come from:
 *       owned:     the registry holds the value cells; hot paths update
 *                  them inline, lock-free (rg_counter_add_sw() and co);
 *       collected: a collector callback fills the values at every render
 *                  (rg_metrics_collect_*()), so counters that already
 *                  exist elsewhere (rg_engine_stats()) need no change.
 *   - Names: "<prefix>_<name>[_<unit>]" plus "_total" for counters; the
 *     prefix is "railgun" unless rg_metrics_new() says otherwise. Values
 *     are in base units (seconds, bytes); the unit is part of the name.
 *   - An owned series has `writers` cells, each on its own cache line(s).
 *     Its value is the sum of its cells. A cell updated by one thread only
 *     takes the _sw calls (a plain load and store, no lock prefix: about
 *     1 ns); a cell several threads update takes the _mw calls (an atomic
 *     read-modify-write). Give each hot thread its own cell (writer index)
 *     and use _sw: no lock, no contended line, no false sharing.
 *   - A histogram counts observations per bucket (v <= upper bound; the
 *     +Inf bucket is implicit) and sums them. Its _count is the sum of the
 *     buckets read in the same render, so _count always equals the +Inf
 *     bucket and buckets are cumulative; _sum is read beside them and may
 *     lag or lead them by the observations in flight.
 *
 * Bounded cardinality, whatever the input
 *   - At most RG_METRICS_LABELS_MAX label names per family and
 *     `max_series` label sets (at most RG_METRICS_SERIES_MAX).
 *   - Owned: the label set after the cap resolves to one extra series
 *     whose every label value is RG_METRICS_OVERFLOW, so updates are
 *     never lost and totals stay exact; at most max_series + 1 series.
 *   - Collected: samples after the cap in one render are left out, as are
 *     repeats of a label set already collected in that render.
 *   - Both count into "<prefix>_metrics_series_dropped_total", which every
 *     registry exposes.
 *   - Label values and help text are kept as valid UTF-8 (an invalid byte
 *     becomes U+FFFD) and label values are cut to RG_METRICS_LABEL_VALUE_MAX
 *     bytes (at a character boundary), so memory and output are bounded
 *     and every render parses.
 *
 * Threads
 *   The value calls (rg_counter_*, rg_gauge_*, rg_histogram_*) never
 *   block, never allocate and take no lock; a render only loads the cells
 *   (relaxed), so a scrape never stalls a writer beyond the cache-line
 *   transfer its loads cause. Everything else (families, series lookups,
 *   collectors, renders) is serialized by one registry mutex that no
 *   value call takes: look series up at set-up time, not per event.
 *   Collector callbacks run on the rendering thread, one at a time, with
 *   that mutex held: they may only call rg_metrics_collect_*().
 *
 * Ordering: none beyond each value itself. A render sees every update
 * that happened before the render started (e.g. before a thread join) and
 * possibly some that race with it; a counter's rendered value never goes
 * down from one render to the next.
 *
 * Synchronization table (may these run at the same time?)
 *                        value calls     lookups, collect,   destroy
 *                        (other cells)   family, render
 *   value call (_sw)      yes             yes                 no
 *   value call (_mw)      yes (any cell)  yes                 no
 *   lookups, family,
 *   render, collector_add yes             yes (serialized)    no
 *   A _sw call must have no other writer on the same cell at any time.
 */
#ifndef RAILGUN_METRICS_H
#define RAILGUN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RG_METRICS_LABELS_MAX 4          /* label names per family */
#define RG_METRICS_SERIES_MAX 65536      /* max_series ceiling */
#define RG_METRICS_SERIES_DEFAULT 64     /* max_series when 0 is given */
#define RG_METRICS_WRITERS_MAX 1024      /* cells per owned series */
#define RG_METRICS_BUCKETS_MAX 32        /* histogram upper bounds */
#define RG_METRICS_LABEL_VALUE_MAX 128   /* bytes kept of a label value */
#define RG_METRICS_NAME_MAX 128          /* bytes of a full metric name */
#define RG_METRICS_OVERFLOW "_overflow"  /* label value past the cap */

typedef struct rg_metrics_s rg_metrics_t;
typedef struct rg_metric_family_s rg_metric_family_t;
typedef struct rg_metrics_scrape_s rg_metrics_scrape_t;
typedef struct rg_counter_s rg_counter_t;
typedef struct rg_gauge_s rg_gauge_t;
typedef struct rg_histogram_s rg_histogram_t;

typedef enum rg_metric_kind_e {
    RG_METRIC_COUNTER = 0, /* monotonic; exposed with _total */
    RG_METRIC_GAUGE,       /* goes up and down */
    RG_METRIC_HISTOGRAM    /* buckets, sum and count of observations */
} rg_metric_kind_t;

typedef enum rg_metrics_format_e {
    RG_METRICS_TEXT = 0,   /* Prometheus text exposition format 0.0.4 */
    RG_METRICS_JSON        /* one JSON object (see rg_metrics_render()) */
} rg_metrics_format_t;

/* The Content-Type of each format, for a listener. */
#define RG_METRICS_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define RG_METRICS_JSON_CONTENT_TYPE "application/json"

/* One family; read by rg_metrics_family_new() and not kept. */
typedef struct rg_metric_desc_s {
    rg_metric_kind_t kind;
    const char *name;   /* [a-zA-Z_][a-zA-Z0-9_]*, without prefix, unit
                           or _total: "events_processed" */
    const char *help;   /* one line; required */
    const char *unit;   /* base unit, [a-z]+ ("seconds", "bytes"), or
                           NULL/"" for none; appended to the name unless
                           the name already ends with it */
    const char *const *labels; /* label names, nlabels of them */
    unsigned nlabels;   /* <= RG_METRICS_LABELS_MAX */
    unsigned max_series;/* label sets kept (see above); 0: the default;
                           ignored (1) when nlabels is 0 */
    unsigned writers;   /* owned: cells per series (writer indexes
                           0..writers-1); 0 means 1 */
    bool collected;     /* values come from collectors, not cells */
    const double *buckets; /* histograms: strictly increasing finite upper
                              bounds, +Inf implied; NULL: the default
                              (1, 2.5, 5 per decade, 10 us .. 10 s) */
    unsigned nbuckets;  /* 1..RG_METRICS_BUCKETS_MAX when buckets given */
} rg_metric_desc_t;

/*
 * A new, empty registry whose names start with `prefix` + "_" (NULL:
 * "railgun"). Returns NULL on a bad prefix (errno EINVAL) or out of
 * memory (ENOMEM). Any thread.
 */
RG_EXPORT rg_metrics_t *rg_metrics_new(const char *prefix);

/* Frees the registry, its families and cells; NULL is fine. No call on
 * it, and no value call on any of its cells, may be running or follow. */
RG_EXPORT void rg_metrics_destroy(rg_metrics_t *m);

/*
 * Adds a family. Returns it (owned by m), or NULL with a one-line reason
 * in errstr: bad name, unit, label name or buckets; a name whose samples
 * would clash with another family's; a bound out of range; out of
 * memory. An owned family without labels gets its one series now, so it
 * renders 0 before its first update. Takes the registry mutex.
 */
RG_EXPORT rg_metric_family_t *rg_metrics_family_new(rg_metrics_t *m,
                                                    const rg_metric_desc_t *d,
                                                    char *errstr,
                                                    size_t errstr_size);

/*
 * The cell of writer `writer` in the series of owned family f with these
 * label values (nlabels strings; NULL when the family has none), creating
 * the series on first use. Past the family's cap, the overflow series'
 * cell. NULL when f has another kind (rg_metrics_counter on a gauge),
 * is collected, writer >= writers, a value is NULL, or out of memory.
 * The cell lives as long as the registry. Takes the registry mutex: call
 * it at set-up, keep the pointer for the hot path.
 */
RG_EXPORT rg_counter_t *rg_metrics_counter(rg_metric_family_t *f,
                                           const char *const *label_values,
                                           unsigned writer);
RG_EXPORT rg_gauge_t *rg_metrics_gauge(rg_metric_family_t *f,
                                       const char *const *label_values,
                                       unsigned writer);
RG_EXPORT rg_histogram_t *rg_metrics_histogram(rg_metric_family_t *f,
                                               const char *const *label_values,
                                               unsigned writer);

/*
 * A collector: fills collected families at every render by calling
 * rg_metrics_collect_*() on s. Runs on the rendering thread with the
 * registry mutex held; must not call other registry functions.
 */
typedef void (rg_metrics_collect_cb)(rg_metrics_scrape_t *s, void *opaque);

/* Adds a collector (run in the order added). Returns 0, RG_EINVAL (NULL
 * cb) or RG_ENOMEM. Takes the registry mutex. */
RG_EXPORT int rg_metrics_collector_add(rg_metrics_t *m,
                                       rg_metrics_collect_cb *cb,
                                       void *opaque);

/*
 * One sample of collected family f (a counter or a gauge) with these
 * label values, inside a collector only. Returns 0; RG_EINVAL (f is not
 * a collected counter or gauge of this registry, a label value is NULL,
 * a counter value is negative or NaN, or s is not live); RG_EFULL (the
 * family's cap is reached or this label set was collected already in
 * this render: left out, counted as dropped); RG_ENOMEM.
 * u64 and i64 values are rendered exactly as integers.
 */
RG_EXPORT int rg_metrics_collect_u64(rg_metrics_scrape_t *s,
                                     rg_metric_family_t *f,
                                     const char *const *label_values,
                                     uint64_t value);
RG_EXPORT int rg_metrics_collect_i64(rg_metrics_scrape_t *s,
                                     rg_metric_family_t *f,
                                     const char *const *label_values,
                                     int64_t value);
RG_EXPORT int rg_metrics_collect_f64(rg_metrics_scrape_t *s,
                                     rg_metric_family_t *f,
                                     const char *const *label_values,
                                     double value);

/*
 * One series of collected histogram f: counts[i] observations in bucket i
 * (not cumulative; nbuckets + 1 entries, the last the +Inf bucket) and
 * their sum. Returns as rg_metrics_collect_u64(), and RG_EINVAL when n
 * is not the family's nbuckets + 1.
 */
RG_EXPORT int rg_metrics_collect_histogram(rg_metrics_scrape_t *s,
                                           rg_metric_family_t *f,
                                           const char *const *label_values,
                                           const uint64_t *counts, size_t n,
                                           double sum);

/*
 * Renders every family, in the order added, into a new buffer (*out,
 * NUL-terminated, *len bytes without the NUL; free() it). Runs the
 * collectors first. Returns 0, RG_EINVAL or RG_ENOMEM (*out NULL).
 *
 * RG_METRICS_TEXT: "# HELP", "# TYPE", then one line per sample; label
 * values escaped (\\, \", \n), histograms as _bucket{le=...} (cumulative,
 * ending with le="+Inf"), _sum and _count; values as integers when they
 * are integers, else the shortest decimal that reads back exactly; NaN,
 * +Inf, -Inf as Prometheus spells them.
 * RG_METRICS_JSON: {"<name>": {"type": "counter", "help": "...", "unit":
 * "...", "labels": [...], "series": [{"labels": {...}, "value": v}]}, ...}
 * with, for histograms, "buckets": [upper bounds] per family and
 * "counts" (cumulative, +Inf last), "sum" and "count" per series;
 * non-finite numbers as the strings "NaN", "+Inf", "-Inf".
 * Takes the registry mutex (renders are serialized). Any thread.
 */
RG_EXPORT int rg_metrics_render(rg_metrics_t *m, rg_metrics_format_t fmt,
                                char **out, size_t *len);

/*
 * rg_metrics_render() into the caller's buffer of `size` bytes. Returns 0
 * (*len bytes written plus a NUL), RG_ERANGE when it does not fit (*len is
 * then the length needed, without the NUL; buf holds a truncated prefix),
 * RG_EINVAL or RG_ENOMEM (collectors' scratch space).
 */
RG_EXPORT int rg_metrics_render_to(rg_metrics_t *m, rg_metrics_format_t fmt,
                                   char *buf, size_t size, size_t *len);

/*
 * Fills out[0..n-1] with start * factor^i (start > 0, factor > 1, n in
 * 1..RG_METRICS_BUCKETS_MAX): log-spaced bucket bounds. Returns 0 or
 * RG_EINVAL.
 */
RG_EXPORT int rg_metrics_buckets_exp(double start, double factor, unsigned n,
                                     double *out);

/* ---- value calls (hot path) ------------------------------------------
 * _sw: the cell's single writer only (a plain load and store, relaxed).
 * _mw: any thread (an atomic read-modify-write, relaxed).
 * rg_gauge_set: any thread (a relaxed store; the last store wins).
 * All are lock-free, never block, never fail; c/g/h must be non-NULL.
 */
#if defined(__cplusplus) || defined(RG__METRICS_EXTERN)
/* C++ (and the library's own out-of-line copies): the same calls, out of
 * line, since <stdatomic.h> is C only. */
RG_EXPORT void rg_counter_add_sw(rg_counter_t *c, uint64_t n);
RG_EXPORT void rg_counter_add_mw(rg_counter_t *c, uint64_t n);
RG_EXPORT void rg_gauge_set(rg_gauge_t *g, double v);
RG_EXPORT void rg_gauge_add_sw(rg_gauge_t *g, double d);
RG_EXPORT void rg_gauge_add_mw(rg_gauge_t *g, double d);
RG_EXPORT void rg_histogram_observe_sw(rg_histogram_t *h, double v);
RG_EXPORT void rg_histogram_observe_mw(rg_histogram_t *h, double v);
RG_EXPORT void rg_histogram_observe_ns_sw(rg_histogram_t *h, uint64_t ns);
RG_EXPORT void rg_histogram_observe_ns_mw(rg_histogram_t *h, uint64_t ns);
#else
#include "railgun/metrics_pvt.h"
static inline void rg_counter_add_sw(rg_counter_t *c, uint64_t n)
{
    rg__counter_add_sw(c, n);
}
static inline void rg_counter_add_mw(rg_counter_t *c, uint64_t n)
{
    rg__counter_add_mw(c, n);
}
static inline void rg_gauge_set(rg_gauge_t *g, double v)
{
    rg__gauge_set(g, v);
}
static inline void rg_gauge_add_sw(rg_gauge_t *g, double d)
{
    rg__gauge_add_sw(g, d);
}
static inline void rg_gauge_add_mw(rg_gauge_t *g, double d)
{
    rg__gauge_add_mw(g, d);
}
static inline void rg_histogram_observe_sw(rg_histogram_t *h, double v)
{
    rg__histogram_observe_sw(h, v);
}
static inline void rg_histogram_observe_mw(rg_histogram_t *h, double v)
{
    rg__histogram_observe_mw(h, v);
}
/* A duration in nanoseconds into a histogram whose unit is seconds: the
 * bucket of ns * 1e-9, found and summed in integers (the cheapest call). */
static inline void rg_histogram_observe_ns_sw(rg_histogram_t *h, uint64_t ns)
{
    rg__histogram_observe_ns_sw(h, ns);
}
static inline void rg_histogram_observe_ns_mw(rg_histogram_t *h, uint64_t ns)
{
    rg__histogram_observe_ns_mw(h, ns);
}
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_METRICS_H */
