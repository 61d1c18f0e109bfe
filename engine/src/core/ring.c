/*
 * ring.c - allocation and initialization of rg_ring_t; the push/pop fast
 * paths are inline in railgun/ring.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdlib.h>
#include "railgun/error.h"
#include "railgun/ring.h"
#include "../common/util.h"

/* PREFETCHW: CPUID 0x80000001, ECX bit 8 (3DNowPrefetch); every x86-64
 * AMD CPU and Intel's since Broadwell. Older ones may not accept it. */
static bool cpu_has_prefetchw(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & (1u << 8));
#else
    return false;
#endif
}

static bool valid_geometry(uint32_t capacity, size_t esize)
{
    return capacity >= 2 && capacity <= RG_RING_CAPACITY_MAX &&
           (capacity & (capacity - 1)) == 0 && esize >= 1 && esize <= 4096;
}

int rg_ring_init(rg_ring_t *r, void *slots, uint32_t capacity, size_t esize)
{
    if (r == NULL || slots == NULL || !valid_geometry(capacity, esize))
        return RG_EINVAL;
    memset(r, 0, sizeof(*r));
    r->capacity = capacity;
    r->esize = (uint32_t)esize;
    r->prod.mask = r->cons.mask = capacity - 1;
    /* one cache line of slots per tail publication, and at most a quarter
     * of the ring, so the producer always sees most of the free space */
    uint32_t batch = (uint32_t)(RG_CACHELINE / esize);
    if (batch > capacity / 4)
        batch = capacity / 4;
    if (batch == 0)
        batch = 1;
    /* round down to a power of two */
    while (batch & (batch - 1))
        batch &= batch - 1;
    r->cons.batch_mask = batch - 1;
    /* slip 16 lines of slots behind a busy producer (a quarter of the ring
     * at most); prefetch 8 lines ahead of the producer's head */
    uint32_t lines = (uint32_t)(((size_t)capacity * esize) / RG_CACHELINE);
    uint32_t per_line =
        esize >= RG_CACHELINE ? 1 : RG_CACHELINE / (uint32_t)esize;
    r->cons.slip = (lines >= 64 ? 16 : lines / 4) * per_line;
    if (r->cons.slip > capacity / 4)
        r->cons.slip = capacity / 4;
    r->prod.prefetch = (lines >= 32 ? 8 : lines / 4) * per_line;
    if (r->prod.prefetch > capacity / 4)
        r->prod.prefetch = capacity / 4;
    r->prod.prefetchw = cpu_has_prefetchw();
    r->prod.slots = r->cons.slots = slots;
    /* relaxed: no other thread can see the ring before it is handed over
     * (thread creation or a release store publishes it) */
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
    atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
    return 0;
}

rg_ring_t *rg_ring_new(uint32_t capacity, size_t esize, char *errstr,
                       size_t errstr_size)
{
    if (!valid_geometry(capacity, esize)) {
        rg__seterr(errstr, errstr_size, "rg_ring_new: capacity %u is not a "
                   "power of two in 2 .. %u, or item size %zu is outside "
                   "1 .. 4096", capacity, RG_RING_CAPACITY_MAX, esize);
        return NULL;
    }
    size_t bytes = (size_t)capacity * esize;
    bytes = (bytes + RG_CACHELINE - 1) & ~(size_t)(RG_CACHELINE - 1);
    rg_ring_t *r = aligned_alloc(RG_CACHELINE, sizeof(*r));
    void *slots = aligned_alloc(RG_CACHELINE, bytes);
    if (r == NULL || slots == NULL) {
        free(r);
        free(slots);
        rg__seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    rg_ring_init(r, slots, capacity, esize);
    return r;
}

void rg_ring_destroy(rg_ring_t *r)
{
    if (r == NULL)
        return;
    free(r->prod.slots);
    free(r);
}
