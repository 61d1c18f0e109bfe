/*
 * util.h - small helpers shared by the core and the adapters (internal,
 * header-only: every library of railgun compiles its own copy, so no
 * internal symbol has to be exported).
 *
 *   rg__seterr()     one-line message into a caller's errstr (NULL-safe)
 *   rg__now_ns()     monotonic clock in ns
 *   rg__stat_add()   add to a counter that has one writer
 *   rg__pair_hash()  hash of an (int64, int64) pair, for open addressing
 *   rg__zalloc()     zeroed memory whose pages are written, not mapped
 *                    from the zero page (see below)
 *   RG_DASSERT()     an invariant checked in debug and sanitizer builds
 *                    (RG_DEBUG defined), free in Release builds
 */
#ifndef RG_UTIL_H
#define RG_UTIL_H

/* rg__now_ns() needs POSIX clocks: every file that includes this one
 * defines _GNU_SOURCE first, as the rest of railgun's sources do. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#error "define _GNU_SOURCE before the first #include"
#endif

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/hash.h"

__attribute__((format(printf, 3, 4), unused)) static void
rg__seterr(char *errstr, size_t size, const char *fmt, ...)
{
    if (errstr == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

static inline int64_t rg__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Adds n to a counter that only the calling thread writes. relaxed: a
 * statistic; readers need a value that was true at some point, and the
 * single writer makes load + store equal to an atomic add. */
static inline void rg__stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint32_t rg__pair_hash(int64_t a, int64_t b)
{
    return (uint32_t)rg_hash64((uint64_t)a * 0x9E3779B97F4A7C15ull ^
                               (uint64_t)b);
}

/*
 * Zeroed memory for tables a hot path fills: malloc, then memset through
 * a volatile pointer. calloc (and gcc at -O3 turns malloc + memset into
 * calloc) maps large blocks from the kernel's zero page; a table that is
 * probed (read) before its slots are written then takes a copy-on-write
 * fault, with a TLB shootdown across CPUs, on the first store to every
 * page. Written once here, each page faults once, in the allocating
 * thread. NULL when out of memory.
 */
static void *(*volatile rg__memset_fn)(void *, int, size_t) = memset;

__attribute__((unused)) static void *rg__zalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p != NULL)
        rg__memset_fn(p, 0, n);
    return p;
}

#ifdef RG_DEBUG
#define RG_DASSERT(cond)                                                     \
    ((cond) ? (void)0                                                        \
            : (fprintf(stderr, "railgun: %s:%d: invariant failed: %s\n",   \
                       __FILE__, __LINE__, #cond),                           \
               abort()))
#else
#define RG_DASSERT(cond) ((void)0)
#endif

#endif /* RG_UTIL_H */
