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
 *   - A histogram cell carries a copy of its family's bounds pointer and
 *     count (read-only after creation), so an observation touches the
 *     cell's own line(s) and the shared, read-only bounds only.
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

struct rg_histogram_s {
    /* read-only after creation */
    alignas(RG__METRICS_CACHELINE) const double *bounds;
    uint32_t nbounds;
    /* written by observations */
    _Atomic uint64_t sum_bits;      /* a double */
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
 * (also for NaN). Branch-free binary search (the step is a conditional
 * move): at most 5 steps for 32 bounds, and no mispredicted branch
 * however the observations fall. */
static inline uint32_t rg__histogram_bucket(const struct rg_histogram_s *h,
                                            double v)
{
    const double *b = h->bounds;
    uint32_t lo = 0, n = h->nbounds; /* the answer is in [lo, lo + n] */
    if (v != v)
        return n;
    while (n > 1) {
        uint32_t half = n / 2;
        /* a mask, not a ?: : gcc turns the ?: into a branch */
        lo += half & (0u - (uint32_t)(b[lo + half - 1] < v));
        n -= half;
    }
    return lo + (b[lo] < v);
}

static inline void rg__histogram_observe_sw(struct rg_histogram_s *h, double v)
{
    _Atomic uint64_t *c = &h->counts[rg__histogram_bucket(h, v)];
    /* relaxed: single writer; see the module comment */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    uint64_t s = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    atomic_store_explicit(&h->sum_bits,
                          rg__metrics_bits(rg__metrics_double(s) + v),
                          memory_order_relaxed);
}

static inline void rg__histogram_observe_mw(struct rg_histogram_s *h, double v)
{
    /* relaxed: atomic adds lose nothing; nothing else is published */
    atomic_fetch_add_explicit(&h->counts[rg__histogram_bucket(h, v)], 1,
                              memory_order_relaxed);
    rg__metrics_fadd_mw(&h->sum_bits, v);
}

#endif /* RAILGUN_METRICS_PVT_H */
