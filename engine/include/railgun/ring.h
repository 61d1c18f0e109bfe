/*
 * ring.h - bounded single-producer single-consumer ring of fixed-size items.
 *
 * Invariants
 *   - capacity is a power of two in [2, RG_RING_CAPACITY_MAX]; all capacity
 *     slots are usable (full when head - tail == capacity).
 *   - head and tail are free-running 32-bit counters; they wrap, and every
 *     comparison is an unsigned difference, so wrap-around is harmless.
 *   - The producer owns prod.*, the consumer owns cons.*; each lives on its
 *     own cache line. Each side caches the other side's index and re-reads
 *     the shared one only when the cached value says "full" (producer) or
 *     "empty" (consumer), so in steady state a call touches no cache line
 *     the other side writes, except the slots themselves.
 *   - One call moves at most n items and never blocks or allocates.
 *
 * Synchronization table (may these run at the same time on one ring?)
 *
 *                     push, push_burst   pop, pop_burst      init, destroy
 *   push, push_burst   no (one producer)  yes                 no
 *   pop, pop_burst     yes                no (one consumer)   no
 *   rg_ring_count      yes (approximate)  yes (approximate)   no
 *
 * Item types: RG_RING_PROTOTYPE(name, type) defines typed inline calls
 * rg_ring_push_spsc_<name>, rg_ring_push_burst_spsc_<name>,
 * rg_ring_pop_spsc_<name> and rg_ring_pop_burst_spsc_<name>; the item size
 * is then a compile-time constant and copies compile to plain moves. A ring
 * must only ever be used with the type it was created for (rg_ring_new()'s
 * esize). `u64` (uint64_t items) is predefined.
 *
 * This header is C only (it uses <stdatomic.h> inline).
 */
#ifndef RAILGUN_RING_H
#define RAILGUN_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "railgun/export.h"

#define RG_CACHELINE 64
#define RG_RING_CAPACITY_MAX (1u << 24)

typedef struct rg_ring_s {
    /* read-only after init */
    alignas(RG_CACHELINE) uint32_t capacity;
    uint32_t esize;

    /* private: producer side (written by the producer only) */
    struct {
        alignas(RG_CACHELINE) _Atomic uint32_t head;
        uint32_t cached_tail;       /* last tail seen; may lag behind */
        uint32_t mask;              /* copies of read-only fields, so the */
        unsigned char *slots;       /* producer needs only this line      */
    } prod;

    /* private: consumer side (written by the consumer only) */
    struct {
        alignas(RG_CACHELINE) _Atomic uint32_t tail;
        uint32_t cached_head;       /* last head seen; may lag behind */
        uint32_t mask;
        unsigned char *slots;
    } cons;
} rg_ring_t;

/*
 * Allocates a ring of `capacity` items of `esize` bytes each (cache-line
 * aligned). capacity must be a power of two in [2, RG_RING_CAPACITY_MAX]
 * and esize in [1, 4096]. Returns NULL (errno EINVAL or ENOMEM) otherwise.
 */
RG_EXPORT rg_ring_t *rg_ring_new(uint32_t capacity, size_t esize);

/* Frees a ring from rg_ring_new(); NULL is fine. No call may be running. */
RG_EXPORT void rg_ring_destroy(rg_ring_t *r);

/*
 * Initializes a caller-allocated ring over caller-owned `slots`
 * (capacity * esize bytes). Returns 0 or RG_EINVAL.
 */
RG_EXPORT int rg_ring_init(rg_ring_t *r, void *slots, uint32_t capacity,
                           size_t esize);

/* Items in the ring right now; exact only when neither side is running. */
static inline uint32_t rg_ring_count(const rg_ring_t *r)
{
    /* relaxed: a statistic; either side may move on right after the read */
    uint32_t h = atomic_load_explicit(&r->prod.head, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&r->cons.tail, memory_order_relaxed);
    return h - t;
}

/* ---- private inline implementation: call the typed wrappers instead ---- */

/* Producer: free slots, refreshing the cached tail when `want` don't fit. */
static inline uint32_t rg__ring_free(rg_ring_t *r, uint32_t head,
                                     uint32_t want)
{
    uint32_t cap = r->prod.mask + 1;
    uint32_t free_slots = cap - (head - r->prod.cached_tail);
    if (free_slots < want) {
        /* acquire: pairs with the release store of cons.tail in
         * rg__ring_pop(); the consumer has finished reading every slot
         * below the tail we see, so we may overwrite them. */
        r->prod.cached_tail =
            atomic_load_explicit(&r->cons.tail, memory_order_acquire);
        free_slots = cap - (head - r->prod.cached_tail);
    }
    return free_slots;
}

/* Consumer: items available, refreshing the cached head when needed. */
static inline uint32_t rg__ring_avail(rg_ring_t *r, uint32_t tail,
                                      uint32_t want)
{
    uint32_t avail = r->cons.cached_head - tail;
    if (avail < want) {
        /* acquire: pairs with the release store of prod.head in
         * rg__ring_push(); the slots below that head are fully written. */
        r->cons.cached_head =
            atomic_load_explicit(&r->prod.head, memory_order_acquire);
        avail = r->cons.cached_head - tail;
    }
    return avail;
}

static inline uint32_t rg__ring_push(rg_ring_t *r, const void *items,
                                     uint32_t n, size_t esize)
{
    /* relaxed: only this (producer) thread writes head */
    uint32_t head = atomic_load_explicit(&r->prod.head, memory_order_relaxed);
    uint32_t free_slots = rg__ring_free(r, head, n);
    if (n > free_slots)
        n = free_slots;
    if (n == 0)
        return 0;
    const unsigned char *src = (const unsigned char *)items;
    uint32_t mask = r->prod.mask;
    for (uint32_t i = 0; i < n; i++)
        memcpy(r->prod.slots + (size_t)((head + i) & mask) * esize,
               src + (size_t)i * esize, esize);
    /* release: publishes the slot writes above; pairs with the acquire
     * load of prod.head in rg__ring_avail() */
    atomic_store_explicit(&r->prod.head, head + n, memory_order_release);
    return n;
}

static inline uint32_t rg__ring_pop(rg_ring_t *r, void *items, uint32_t n,
                                    size_t esize)
{
    /* relaxed: only this (consumer) thread writes tail */
    uint32_t tail = atomic_load_explicit(&r->cons.tail, memory_order_relaxed);
    uint32_t avail = rg__ring_avail(r, tail, n);
    if (n > avail)
        n = avail;
    if (n == 0)
        return 0;
    unsigned char *dst = (unsigned char *)items;
    uint32_t mask = r->cons.mask;
    for (uint32_t i = 0; i < n; i++)
        memcpy(dst + (size_t)i * esize,
               r->cons.slots + (size_t)((tail + i) & mask) * esize, esize);
    /* release: our reads of the slots happen before the producer may
     * reuse them; pairs with the acquire load in rg__ring_free() */
    atomic_store_explicit(&r->cons.tail, tail + n, memory_order_release);
    return n;
}

/* Producer side: true when at least `want` items would fit now. */
static inline bool rg__ring_has_space(rg_ring_t *r, uint32_t want)
{
    uint32_t head = atomic_load_explicit(&r->prod.head, memory_order_relaxed);
    return rg__ring_free(r, head, want) >= want;
}

/* Consumer side: true when the ring holds no item. */
static inline bool rg__ring_is_empty(rg_ring_t *r)
{
    uint32_t tail = atomic_load_explicit(&r->cons.tail, memory_order_relaxed);
    return rg__ring_avail(r, tail, 1) == 0;
}

/*
 * Typed calls. push/pop move one item and return whether they did;
 * push_burst/pop_burst move up to n items and return how many moved.
 */
#define RG_RING_PROTOTYPE(name, type)                                        \
    static inline bool rg_ring_push_spsc_##name(rg_ring_t *r,                \
                                                const type *item)            \
    {                                                                        \
        return rg__ring_push(r, item, 1, sizeof(type)) == 1;                 \
    }                                                                        \
    static inline uint32_t rg_ring_push_burst_spsc_##name(                   \
        rg_ring_t *r, const type *items, uint32_t n)                         \
    {                                                                        \
        return rg__ring_push(r, items, n, sizeof(type));                     \
    }                                                                        \
    static inline bool rg_ring_pop_spsc_##name(rg_ring_t *r, type *item)     \
    {                                                                        \
        return rg__ring_pop(r, item, 1, sizeof(type)) == 1;                  \
    }                                                                        \
    static inline uint32_t rg_ring_pop_burst_spsc_##name(                    \
        rg_ring_t *r, type *items, uint32_t n)                               \
    {                                                                        \
        return rg__ring_pop(r, items, n, sizeof(type));                      \
    }

RG_RING_PROTOTYPE(u64, uint64_t)

#endif /* RAILGUN_RING_H */
