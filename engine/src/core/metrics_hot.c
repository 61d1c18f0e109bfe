/*
 * metrics_hot.c - out-of-line copies of the inline value calls of
 * railgun/metrics.h, for C++ callers (<stdatomic.h> is C only there) and
 * anything that wants a symbol. RG__METRICS_EXTERN makes metrics.h declare
 * them as exported functions; the bodies are metrics_pvt.h's.
 */
#define RG__METRICS_EXTERN 1
#include "railgun/metrics.h"
#include "railgun/metrics_pvt.h"

void rg_counter_add_sw(rg_counter_t *c, uint64_t n)
{
    rg__counter_add_sw(c, n);
}

void rg_counter_add_mw(rg_counter_t *c, uint64_t n)
{
    rg__counter_add_mw(c, n);
}

void rg_gauge_set(rg_gauge_t *g, double v)
{
    rg__gauge_set(g, v);
}

void rg_gauge_add_sw(rg_gauge_t *g, double d)
{
    rg__gauge_add_sw(g, d);
}

void rg_gauge_add_mw(rg_gauge_t *g, double d)
{
    rg__gauge_add_mw(g, d);
}

void rg_histogram_observe_sw(rg_histogram_t *h, double v)
{
    rg__histogram_observe_sw(h, v);
}

void rg_histogram_observe_mw(rg_histogram_t *h, double v)
{
    rg__histogram_observe_mw(h, v);
}

void rg_histogram_observe_ns_sw(rg_histogram_t *h, uint64_t ns)
{
    rg__histogram_observe_ns_sw(h, ns);
}

void rg_histogram_observe_ns_mw(rg_histogram_t *h, uint64_t ns)
{
    rg__histogram_observe_ns_mw(h, ns);
}
