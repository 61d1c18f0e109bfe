/*
 * ring.h - bounded single-producer single-consumer ring of fixed-size items.
 *
 * Invariants
 *   - capacity is a power of two in [2, RG_RING_CAPACITY_MAX]; all capacity
 *     slots are usable (full when head - tail == capacity).
 *   - head and tail are free-running 32-bit counters; they wrap, and every
 *     comparison is an unsigned difference, so wrap-around is harmless.
 *   - Four cache lines of state: prod.* (producer-private), head (the
 *     published producer index), cons.* (consumer-private), tail (the
 *     published consumer index). A side loads only its private line and,
 *     rarely, the other side's published index: it re-reads that only when
 *     its cached copy says "full" (producer) or "empty" (consumer). The
 *     other side polling our published index therefore never stalls our
 *     loads; it only costs our store of that index an ownership transfer,
 *     which the store buffer absorbs.
 *   - Single pops publish the tail once per cache line of slots (or when
 *     they run dry); bursts publish once per burst.
 *   - One call moves at most n items and never blocks or allocates.
 *   - Pops slip behind a busy producer: when fewer than 16 lines of slots
 *     (single pops) or less than the asked-for burst (burst pops) are ready
 *     and the producer is streaming, a pop waits about 0.4 us (1024 TSC
 *     ticks) before it takes what is there, so slot lines cross between
 *     the cores once per line rather than once per item or two. That wait
 *     is the one latency a pop adds; a producer that sends items one at a
 *     time with gaps turns it off (the first wait that brings fewer than
 *     two new items), and a burst pop that finds a whole burst turns it
 *     back on.
 *   - Single pushes prefetch the slot 8 lines ahead for writing; burst
 *     pops read-prefetch the next burst where it is ready already.
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

    /* private: producer side, touched only by the producer */
    struct {
        alignas(RG_CACHELINE) uint32_t head; /* next slot to write */
        uint32_t cached_tail;       /* last published tail seen */
        uint32_t mask;              /* copies of read-only fields, so a */
        unsigned char *slots;       /* push needs only this line        */
        uint32_t prefetch;          /* single pushes prefetch the slot this
                                       many items ahead for writing */
        bool prefetchw;             /* ... with PREFETCHW (x86 CPUs that
                                       have it; set by rg_ring_init) */
    } prod;

    /* published producer index: written by the producer, read by the
     * consumer; alone on its line so the consumer's polling never steals
     * a line the producer loads from */
    alignas(RG_CACHELINE) _Atomic uint32_t head;

    /* private: consumer side, touched only by the consumer */
    struct {
        alignas(RG_CACHELINE) uint32_t tail; /* next slot to read */
        uint32_t cached_head;       /* last published head seen */
        uint32_t batch_mask;        /* single pops publish the tail every
                                       batch_mask + 1 items */
        uint32_t mask;
        unsigned char *slots;
        uint32_t slip;              /* single pops let the producer get this
                                       many items ahead (see pop1) */
        bool streaming;             /* the producer was busy last we waited */
        uint64_t slips;             /* waits taken so far (a statistic) */
    } cons;

    /* published consumer index: written by the consumer, read by the
     * producer */
    alignas(RG_CACHELINE) _Atomic uint32_t tail;
} rg_ring_t;

/*
 * Allocates a ring of `capacity` items of `esize` bytes each (cache-line
 * aligned). capacity must be a power of two in [2, RG_RING_CAPACITY_MAX]
 * and esize in [1, 4096]. Returns NULL otherwise, or when out of memory,
 * with a one-line reason in errstr (which may be NULL).
 */
RG_EXPORT rg_ring_t *rg_ring_new(uint32_t capacity, size_t esize,
                                 char *errstr, size_t errstr_size);

/* Frees a ring from rg_ring_new(); NULL is fine. No call may be running. */
RG_EXPORT void rg_ring_destroy(rg_ring_t *r);

/*
 * Initializes a caller-allocated ring over caller-owned `slots`
 * (capacity * esize bytes). Returns 0 or RG_EINVAL.
 */
RG_EXPORT int rg_ring_init(rg_ring_t *r, void *slots, uint32_t capacity,
                           size_t esize);

/* Items in the ring as published; exact only when neither side runs. */
static inline uint32_t rg_ring_count(const rg_ring_t *r)
{
    /* relaxed: a statistic; either side may move on right after the read */
    uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    return h - t;
}

/* ---- private inline implementation: call the typed wrappers instead ---- */

/* Producer: free slots, refreshing the cached tail when `want` don't fit. */
static inline uint32_t rg__ring_free(rg_ring_t *r, uint32_t want)
{
    uint32_t cap = r->prod.mask + 1;
    uint32_t free_slots = cap - (r->prod.head - r->prod.cached_tail);
    if (free_slots < want) {
        /* acquire: pairs with the release stores of tail in
         * rg__ring_pop*(); the consumer has finished reading every slot
         * below the tail we see, so we may overwrite them. */
        r->prod.cached_tail =
            atomic_load_explicit(&r->tail, memory_order_acquire);
        free_slots = cap - (r->prod.head - r->prod.cached_tail);
    }
    return free_slots;
}

/* Consumer: items available, refreshing the cached head when needed. */
static inline uint32_t rg__ring_avail(rg_ring_t *r, uint32_t want)
{
    uint32_t avail = r->cons.cached_head - r->cons.tail;
    if (avail < want) {
        /* acquire: pairs with the release stores of head in
         * rg__ring_push*(); the slots below that head are fully written. */
        r->cons.cached_head =
            atomic_load_explicit(&r->head, memory_order_acquire);
        avail = r->cons.cached_head - r->cons.tail;
    }
    return avail;
}

/*
 * Copies n items into the slots from index idx on, wrapping once at cap.
 * Two contiguous runs with a constant esize let the compiler emit plain
 * (vector) moves instead of one masked copy per item.
 */
static inline void rg__ring_copy_in(unsigned char *slots, uint32_t idx,
                                    uint32_t cap, const void *items,
                                    uint32_t n, size_t esize)
{
    const unsigned char *src = (const unsigned char *)items;
    uint32_t first = cap - idx < n ? cap - idx : n;
    unsigned char *dst = slots + (size_t)idx * esize;
    for (uint32_t i = 0; i < first; i++)
        memcpy(dst + (size_t)i * esize, src + (size_t)i * esize, esize);
    for (uint32_t i = first; i < n; i++)
        memcpy(slots + (size_t)(i - first) * esize, src + (size_t)i * esize,
               esize);
}

static inline void rg__ring_copy_out(void *items, const unsigned char *slots,
                                     uint32_t idx, uint32_t cap, uint32_t n,
                                     size_t esize)
{
    unsigned char *dst = (unsigned char *)items;
    uint32_t first = cap - idx < n ? cap - idx : n;
    const unsigned char *src = slots + (size_t)idx * esize;
    for (uint32_t i = 0; i < first; i++)
        memcpy(dst + (size_t)i * esize, src + (size_t)i * esize, esize);
    for (uint32_t i = first; i < n; i++)
        memcpy(dst + (size_t)i * esize, slots + (size_t)(i - first) * esize,
               esize);
}

/* How long a pop lets a busy producer run ahead: TSC ticks on x86
 * (about 0.4 us at 2.3 GHz), pause instructions elsewhere. */
#define RG_RING_SLIP_TICKS 1024u
#define RG_RING_SLIP_PAUSES 32

static inline void rg__ring_slip_wait(void)
{
#if defined(__x86_64__) || defined(__i386__)
    uint64_t t0 = __builtin_ia32_rdtsc();
    while (__builtin_ia32_rdtsc() - t0 < RG_RING_SLIP_TICKS)
        __builtin_ia32_pause();
#else
    for (int i = 0; i < RG_RING_SLIP_PAUSES; i++) {
#  if defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#  else
        atomic_signal_fence(memory_order_seq_cst); /* keep the loop */
#  endif
    }
#endif
}

static inline uint32_t rg__ring_push(rg_ring_t *r, const void *items,
                                     uint32_t n, size_t esize)
{
    uint32_t free_slots = rg__ring_free(r, n);
    if (n > free_slots)
        n = free_slots;
    if (n == 0)
        return 0;
    uint32_t head = r->prod.head;
    rg__ring_copy_in(r->prod.slots, head & r->prod.mask, r->prod.mask + 1,
                     items, n, esize);
    r->prod.head = head + n;
    /* release: publishes the slot writes above; pairs with the acquire
     * load of head in rg__ring_avail() */
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    return n;
}

static inline uint32_t rg__ring_pop(rg_ring_t *r, void *items, uint32_t n,
                                    size_t esize)
{
    uint32_t avail = rg__ring_avail(r, n);
    if (avail < n) {
        /* temporal slipping, as in rg__ring_pop1(): less than a burst is
         * there while the producer streams, so let it get ahead */
        if (r->cons.streaming) {
            uint32_t before = avail;
            rg__ring_slip_wait();
            r->cons.slips++;
            avail = rg__ring_avail(r, n);
            r->cons.streaming = avail - before > 1;
        }
        if (avail < n)
            n = avail;
        if (n == 0)
            return 0;
    } else {
        r->cons.streaming = true; /* a whole burst was waiting */
    }
    uint32_t tail = r->cons.tail;
    /* Read-prefetch the next burst where it is written already: its
     * lines' transfers from the producer's core then overlap with this
     * copy instead of stalling the next pop. */
    uint32_t ahead = avail - n < n ? avail - n : n;
    uint32_t step = esize >= RG_CACHELINE ? 1 : (uint32_t)(RG_CACHELINE /
                                                          esize);
    for (uint32_t i = 0; i < ahead; i += step)
        __builtin_prefetch(r->cons.slots +
                               (size_t)((tail + n + i) & r->cons.mask) *
                                   esize,
                           0, 3);
    rg__ring_copy_out(items, r->cons.slots, tail & r->cons.mask,
                      r->cons.mask + 1, n, esize);
    r->cons.tail = tail + n;
    /* release: our reads of the slots happen before the producer may
     * reuse them; pairs with the acquire load in rg__ring_free() */
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    return n;
}

/* Prefetch for writing. gcc emits a read prefetch for
 * __builtin_prefetch(p, 1) unless built with -mprfchw, so on x86 CPUs that
 * have PREFETCHW (rg_ring_init checks CPUID) it is issued directly. */
static inline void rg__ring_prefetch_w(const rg_ring_t *r, const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    if (r->prod.prefetchw) {
        __asm__ __volatile__("prefetchw %0" : : "m"(*(const char *)p));
        return;
    }
#else
    (void)r;
#endif
    __builtin_prefetch(p, 1, 3);
}

/* One item: no wrap to handle, so no run splitting. */
static inline bool rg__ring_push1(rg_ring_t *r, const void *item,
                                  size_t esize)
{
    uint32_t head = r->prod.head;
    if (head - r->prod.cached_tail > r->prod.mask && rg__ring_free(r, 1) == 0)
        return false;
    /* Ask for the line a few slots ahead in writable state now, so the
     * store there does not wait for the consumer's copy to be invalidated.
     * A hint only: it never faults and never changes what anyone reads. */
    rg__ring_prefetch_w(r, r->prod.slots +
                               (size_t)((head + r->prod.prefetch) &
                                        r->prod.mask) * esize);
    memcpy(r->prod.slots + (size_t)(head & r->prod.mask) * esize, item,
           esize);
    r->prod.head = head + 1;
    /* release: as in rg__ring_push() */
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return true;
}

static inline bool rg__ring_pop1(rg_ring_t *r, void *item, size_t esize)
{
    uint32_t tail = r->cons.tail;
    if (r->cons.cached_head == tail) {
        /* acquire: as in rg__ring_avail() */
        uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (head == tail)
            return false;
        /* Temporal slipping. A consumer right behind a busy producer pulls
         * the slot line being filled, and the head line, across for every
         * item or two, and both sides stall on the transfers. So when
         * fewer than cons.slip items are there and the producer is busy
         * (it was the last time we waited, or more than one item came
         * since we looked), wait a moment without touching its lines, then
         * take what is there. A producer that sends one item at a time
         * with gaps gets no wait: the first wait that brings fewer than
         * two new items turns it off. */
        uint32_t avail = head - tail;
        if (avail < r->cons.slip && (r->cons.streaming || avail > 1)) {
            rg__ring_slip_wait();
            r->cons.slips++;
            uint32_t before = head;
            /* acquire: as above */
            head = atomic_load_explicit(&r->head, memory_order_acquire);
            r->cons.streaming = head - before > 1;
        }
        r->cons.cached_head = head;
    }
    memcpy(item, r->cons.slots + (size_t)(tail & r->cons.mask) * esize,
           esize);
    r->cons.tail = ++tail;
    /* Publish the tail once per cache line of slots, or when we have taken
     * everything we know of: the producer then re-reads the tail line at
     * most once per slot line instead of once per item. Publishing late is
     * safe (the producer sees less free space, never more) and bounded
     * (fewer than batch_mask + 1 slots, and none once we run dry). */
    if ((tail & r->cons.batch_mask) == 0 || tail == r->cons.cached_head)
        /* release: as in rg__ring_pop() */
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    return true;
}

/*
 * Zero-copy production: write items straight into the slots, then publish.
 * rg__ring_slot(r, i) is the slot i places past the producer's head, valid
 * for i below what rg__ring_free() reported; rg__ring_publish(r, n) makes
 * the first n of them visible at once (one release store for a burst).
 */
static inline void *rg__ring_slot(rg_ring_t *r, uint32_t i, size_t esize)
{
    return r->prod.slots + (size_t)((r->prod.head + i) & r->prod.mask) * esize;
}

static inline void rg__ring_publish(rg_ring_t *r, uint32_t n)
{
    r->prod.head += n;
    /* release: publishes the slots written through rg__ring_slot();
     * pairs with the acquire load of head in rg__ring_avail() */
    atomic_store_explicit(&r->head, r->prod.head, memory_order_release);
}

/* Producer side: true when at least `want` items would fit now. */
static inline bool rg__ring_has_space(rg_ring_t *r, uint32_t want)
{
    return rg__ring_free(r, want) >= want;
}

/* Consumer side: true when the ring holds no item. */
static inline bool rg__ring_is_empty(rg_ring_t *r)
{
    return rg__ring_avail(r, 1) == 0;
}

#if defined(__GNUC__)
#  define RG__RING_UNUSED __attribute__((unused)) /* a user may need few */
#else
#  define RG__RING_UNUSED
#endif

/*
 * Typed calls. push/pop move one item and return whether they did;
 * push_burst/pop_burst move up to n items and return how many moved.
 */
#define RG_RING_PROTOTYPE(name, type)                                        \
    static inline RG__RING_UNUSED bool rg_ring_push_spsc_##name(rg_ring_t *r,                \
                                                const type *item)            \
    {                                                                        \
        return rg__ring_push1(r, item, sizeof(type));                        \
    }                                                                        \
    static inline RG__RING_UNUSED uint32_t rg_ring_push_burst_spsc_##name(                   \
        rg_ring_t *r, const type *items, uint32_t n)                         \
    {                                                                        \
        return rg__ring_push(r, items, n, sizeof(type));                     \
    }                                                                        \
    static inline RG__RING_UNUSED bool rg_ring_pop_spsc_##name(rg_ring_t *r, type *item)     \
    {                                                                        \
        return rg__ring_pop1(r, item, sizeof(type));                         \
    }                                                                        \
    static inline RG__RING_UNUSED uint32_t rg_ring_pop_burst_spsc_##name(                    \
        rg_ring_t *r, type *items, uint32_t n)                               \
    {                                                                        \
        return rg__ring_pop(r, items, n, sizeof(type));                      \
    }

RG_RING_PROTOTYPE(u64, uint64_t)

#endif /* RAILGUN_RING_H */
