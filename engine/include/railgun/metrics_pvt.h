/*
 * metrics_pvt.h - PRIVATE: the layout of metric cells and the inline value
 * calls. Included by railgun/metrics.h (C only); call only what metrics.h
 * documents. The layout may change in any release.
 *
 * Why inline: a counter update is one load, one add and one store; a call
 * would cost as much again on the hot path (`metrics_counter/railgun` in
 * railgun-bench).
 *
 * Cells
 *   - Every cell starts on its own cache line and fills whole lines, so
 *     two writers' cells never share a line (no false sharing), and a
 *     reader's loads only ever pull lines that hold the cells it sums.
 *   - Counters hold a uint64 that wraps only after 2^64 increments.
 *     Gauges and histogram sums hold a double's bits in a uint64, so a
 *     reader always loads a whole, untorn value.
 *   - A histogram cell points to its family's read-only lookup tables
 *     (struct rg__histogram_meta), so an observation touches the cell's
 *     own line(s) and shared, read-only lines only. Observations in ns
 *     (the engine's clock) sum into an integer, those in seconds into a
 *     double; a render adds the two.
 *
 * Memory orders: every access is relaxed. A cell publishes nothing but
 * itself: no reader infers anything about other memory from a value it
 * loads, so no acquire/release pairs are needed. Per-location coherence
 * alone gives what a render promises: each cell's loads never go back in
 * time, so a sum of monotonic cells never goes down between renders.
 * _sw calls are a relaxed load and a relaxed store by the one writer
 * (plain moves on x86-64 and aarch64: no lock prefix); the reader may see
 * the old or the new value, never a mix, because the store is atomic.
 */
#ifndef RAILGUN_METRICS_PVT_H
#define RAILGUN_METRICS_PVT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define RG__METRICS_CACHELINE 64

struct rg_counter_s {
    alignas(RG__METRICS_CACHELINE) _Atomic uint64_t v;
};

struct rg_gauge_s {
    alignas(RG__METRICS_CACHELINE) _Atomic uint64_t bits; /* a double */
};

/*
 * A histogram family's read-only lookup tables, shared by its cells.
 * The bucket of an observation is found in O(1): the binade of the value
 * (a double's exponent field, or an integer's bit length) indexes a table
 * giving the first bucket whose bound reaches that binade, and `steps`
 * comparisons (the most bounds any one binade holds: 1 for the default
 * 1-2.5-5 per decade) move it up. No data-dependent branch, and a short
 * dependency chain, whatever the values.
 */
struct rg__histogram_meta {
    const double *bounds;     /* nbounds + 1: the last is +Inf */
    const int64_t *bounds_ns; /* the same in ns: the largest ns whose
                                 ns * 1e-9 <= bound (-1 for none); the
                                 last INT64_MAX */
    uint32_t nbounds;
    uint32_t steps, steps_ns;
    uint8_t lut_ns[65];       /* by bit length of the ns value */
    uint8_t lut_exp[2048];    /* by exponent field of a positive double */
};

struct rg_histogram_s {
    /* read-only after creation */
    alignas(RG__METRICS_CACHELINE) const struct rg__histogram_meta *meta;
    /* written by observations */
    _Atomic uint64_t sum_bits;      /* a double: the _sw/_mw observations */
    _Atomic uint64_t sum_ns;        /* the _ns observations, in ns */
    _Atomic uint64_t counts[];      /* nbounds + 1, the last is +Inf */
};

static inline uint64_t rg__metrics_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static inline double rg__metrics_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static inline void rg__counter_add_sw(struct rg_counter_s *c, uint64_t n)
{
    /* relaxed: single writer; the value publishes nothing else */
    uint64_t v = atomic_load_explicit(&c->v, memory_order_relaxed);
    atomic_store_explicit(&c->v, v + n, memory_order_relaxed);
}

static inline void rg__counter_add_mw(struct rg_counter_s *c, uint64_t n)
{
    /* relaxed: an atomic add loses no update; it publishes nothing else */
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

static inline void rg__gauge_set(struct rg_gauge_s *g, double v)
{
    /* relaxed: the value publishes nothing else; the last store wins */
    atomic_store_explicit(&g->bits, rg__metrics_bits(v), memory_order_relaxed);
}

static inline void rg__gauge_add_sw(struct rg_gauge_s *g, double d)
{
    /* relaxed: single writer */
    uint64_t b = atomic_load_explicit(&g->bits, memory_order_relaxed);
    atomic_store_explicit(&g->bits, rg__metrics_bits(rg__metrics_double(b) + d),
                          memory_order_relaxed);
}

static inline void rg__metrics_fadd_mw(_Atomic uint64_t *bits, double d)
{
    /* relaxed: the CAS makes the add atomic; nothing else is published */
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(
        bits, &old, rg__metrics_bits(rg__metrics_double(old) + d),
        memory_order_relaxed, memory_order_relaxed)) {
    }
}

static inline void rg__gauge_add_mw(struct rg_gauge_s *g, double d)
{
    rg__metrics_fadd_mw(&g->bits, d);
}

/* The bucket of v: the first bound >= v (Prometheus' le), else +Inf
 * (also for NaN). Positive values (and +Inf, NaN) take the table; zero
 * and negative ones a branch-free binary search. */
static inline uint32_t rg__histogram_bucket(const struct rg__histogram_meta *m,
                                            double v)
{
    const double *b = m->bounds;
    uint64_t bits = rg__metrics_bits(v);
    uint32_t i;
    if ((int64_t)bits > 0) {
        i = m->lut_exp[bits >> 52];
        /* bounds[nbounds] is +Inf: a step never passes it */
        for (uint32_t s = 0; s < m->steps; s++)
            i += b[i] < v;
        return i;
    }
    if (v != v)
        return m->nbounds;
    uint32_t lo = 0, n = m->nbounds; /* the answer is in [lo, lo + n] */
    while (n > 1) {
        uint32_t half = n / 2;
        /* a mask, not a ?: : gcc turns the ?: into a branch */
        lo += half & (0u - (uint32_t)(b[lo + half - 1] < v));
        n -= half;
    }
    return lo + (b[lo] < v);
}

/* The bucket of ns * 1e-9, exactly as rg__histogram_bucket() would put it
 * (for ns below 2^53), from integers only. */
static inline uint32_t rg__histogram_bucket_ns(
    const struct rg__histogram_meta *m, uint64_t ns)
{
    int64_t x = ns > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)ns;
    uint32_t len = ns ? 64u - (uint32_t)__builtin_clzll(ns) : 0;
    uint32_t i = m->lut_ns[len];
    for (uint32_t s = 0; s < m->steps_ns; s++)
        i += m->bounds_ns[i] < x;
    return i;
}

static inline void rg__metrics_inc_sw(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: single writer; see the module comment */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void rg__histogram_observe_sw(struct rg_histogram_s *h, double v)
{
    rg__metrics_inc_sw(&h->counts[rg__histogram_bucket(h->meta, v)], 1);
    /* relaxed: single writer */
    uint64_t s = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    atomic_store_explicit(&h->sum_bits,
                          rg__metrics_bits(rg__metrics_double(s) + v),
                          memory_order_relaxed);
}

static inline void rg__histogram_observe_ns_sw(struct rg_histogram_s *h,
                                               uint64_t ns)
{
    rg__metrics_inc_sw(&h->counts[rg__histogram_bucket_ns(h->meta, ns)], 1);
    rg__metrics_inc_sw(&h->sum_ns, ns);
}

static inline void rg__histogram_observe_mw(struct rg_histogram_s *h, double v)
{
    /* relaxed: atomic adds lose nothing; nothing else is published */
    atomic_fetch_add_explicit(&h->counts[rg__histogram_bucket(h->meta, v)], 1,
                              memory_order_relaxed);
    rg__metrics_fadd_mw(&h->sum_bits, v);
}

static inline void rg__histogram_observe_ns_mw(struct rg_histogram_s *h,
                                               uint64_t ns)
{
    /* relaxed: atomic adds lose nothing; nothing else is published */
    atomic_fetch_add_explicit(&h->counts[rg__histogram_bucket_ns(h->meta, ns)],
                              1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

#endif /* RAILGUN_METRICS_PVT_H */
