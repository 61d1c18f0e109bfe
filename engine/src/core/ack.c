/*
 * ack.c - the ACK tracker's out-of-line paths: creation, generations, the
 * scan that advances the watermark, the window-full path of begin(), and
 * stats. The layout, its invariants and the inline fast paths (begin,
 * done, the watermark check) are in railgun/ack_pvt.h; the contract is in
 * railgun/ack.h.
 *
 * Costs: begin is two plain stores (and a scan only when the window looks
 * full); done is a load and a store (no read-modify-write); the watermark
 * is one slot load while base is pending, else a scan of the offsets done
 * since (eight slots per test) and one CAS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/ack.h"
#include "../common/util.h"
#include "railgun/error.h"

#define CACHELINE RG__ACK_CACHELINE
#define NO_GEN RG__ACK_NO_GEN

/* A zeroed window, on whole cache lines so that each aligned run of eight
 * slots the scan tests is one line. */
static _Atomic uint64_t *new_slots(uint32_t window)
{
    _Atomic uint64_t *s = aligned_alloc(CACHELINE, window * sizeof(*s));
    if (s != NULL)
        memset((void *)s, 0, window * sizeof(*s));
    return s;
}

rg_ack_t *rg_ack_new(uint32_t window, int64_t next_offset, char *errstr,
                     size_t errstr_size)
{
    if (window < 64 || window > (1u << 24) || (window & (window - 1))) {
        rg__seterr(errstr, errstr_size, "rg_ack_new: window %u is not a "
                   "power of two in 64 .. 2^24", window);
        return NULL;
    }
    if (next_offset < 0 || next_offset > RG_ACK_OFFSET_MAX + 1) {
        rg__seterr(errstr, errstr_size, "rg_ack_new: offset %lld is "
                   "outside 0 .. RG_ACK_OFFSET_MAX + 1",
                   (long long)next_offset);
        return NULL;
    }
    rg_ack_t *a = aligned_alloc(CACHELINE, (sizeof(*a) + CACHELINE - 1) &
                                               ~(size_t)(CACHELINE - 1));
    if (a == NULL) {
        rg__seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    memset(a, 0, sizeof(*a));
    a->window = window;
    a->mask = window - 1;
    a->next = (uint64_t)next_offset;
    a->pw = &a->w[0];
    for (int i = 0; i < RG_ACK_GENERATIONS; i++)
        atomic_init(&a->w[i].id, NO_GEN);
    a->w[0].slots = new_slots(window);
    if (a->w[0].slots == NULL) {
        free(a);
        rg__seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    /* relaxed throughout: the tracker is not shared yet; handing the
     * pointer to other threads publishes it */
    atomic_init(&a->w[0].head, (uint64_t)next_offset);
    atomic_init(&a->w[0].base, (uint64_t)next_offset);
    atomic_store_explicit(&a->w[0].id, 0, memory_order_relaxed);
    atomic_init(&a->gen, 0);
    return a;
}

void rg_ack_destroy(rg_ack_t *a)
{
    if (a == NULL)
        return;
    for (int i = 0; i < RG_ACK_GENERATIONS; i++)
        free((void *)a->w[i].slots);
    free(a);
}

/* The OR of eight slots, written out: compilers keep a loop of atomic
 * loads rolled, and its counter and branch then cost as much as the loads
 * (about +7% on `ack/railgun`). */
static inline uint64_t any_of_8(_Atomic uint64_t *s)
{
#define LD(i) atomic_load_explicit(&s[i], memory_order_acquire)
    return (LD(0) | LD(1) | LD(2) | LD(3)) | (LD(4) | LD(5) | LD(6) | LD(7));
#undef LD
}

/* The first offset in [x, h) whose slot is nonzero, or h. A zero slot
 * below head proves its offset done or a gap (ack_pvt.h), so aligned runs
 * of eight slots are tested with one OR; a run never wraps the window,
 * which is a multiple of eight slots.
 * acquire on every load: pairs with the release store of 0 in
 * rg_ack_done(), so the processing that preceded a done happens before
 * whatever the caller does with the watermark (commit it). */
static uint64_t first_pending(_Atomic uint64_t *slots, uint64_t mask,
                              uint64_t x, uint64_t h)
{
    for (; x < h && (x & 7) != 0; x++)
        if (atomic_load_explicit(&slots[x & mask], memory_order_acquire))
            return x;
    for (; h - x >= 8; x += 8)
        if (any_of_8(&slots[x & mask]))
            break;
    while (x < h &&
           !atomic_load_explicit(&slots[x & mask], memory_order_acquire))
        x++;
    return x;
}

uint64_t rg__ack_advance(rg_ack_t *a, struct rg__ack_window *w)
{
    /* the slot array and mask never change while the window is in use;
     * locals spare a reload after every acquire load below */
    _Atomic uint64_t *slots = w->slots;
    const uint64_t mask = a->mask;
    /* acquire: pairs with the release CAS below in another thread, so
     * that thread's view of the done slots is ours too */
    uint64_t b = atomic_load_explicit(&w->base, memory_order_acquire);
    for (;;) {
        /* acquire: pairs with the release store of head in begin(); the
         * slots of every offset below it are written */
        uint64_t h = atomic_load_explicit(&w->head, memory_order_acquire);
        uint64_t x = first_pending(slots, mask, b, h);
        if (x == b)
            return b;
        /* The CAS keeps base monotonic against a racing advancer that
         * got further. release: publishes our acquired view to the next
         * advancer. On failure b is reloaded; rescan from there. */
        if (atomic_compare_exchange_weak_explicit(&w->base, &b, x,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return x;
    }
}

int rg__ack_begin_slow(rg_ack_t *a, uint64_t o)
{
    struct rg__ack_window *w = a->pw; /* producer-private, as next */
    uint64_t b = rg__ack_advance(a, w);
    if (o - b >= a->window) {
        if (b != a->next)
            return RG_EFULL; /* an offset below is still pending */
        /* nothing pending: every offset in [next, o) is a gap, and every
         * slot is 0. Jump: head first, so base <= head. */
        atomic_store_explicit(&w->head, o, memory_order_release);
        /* release: as any base update; no one else can move base while
         * it equals head, so a plain store is enough */
        atomic_store_explicit(&w->base, o, memory_order_release);
    }
    rg__ack_mark_pending(a, w, o);
    return 0;
}

int rg_ack_reset(rg_ack_t *a, int64_t next_offset)
{
    if (next_offset < 0 || next_offset > RG_ACK_OFFSET_MAX + 1)
        return RG_EINVAL;
    /* relaxed: only this (producer) thread changes the generation */
    uint32_t ng = atomic_load_explicit(&a->gen, memory_order_relaxed) + 1;
    struct rg__ack_window *w = rg__ack_win(a, ng);
    if (w->slots == NULL) {
        w->slots = new_slots(a->window);
        if (w->slots == NULL)
            return RG_ENOMEM;
    } else {
        /* reuse only a drained window: all its slots are 0 again */
        uint64_t head = atomic_load_explicit(&w->head, memory_order_acquire);
        if (rg__ack_advance(a, w) != head)
            return RG_EFULL;
    }
    /* relaxed: published by the release store of id below */
    atomic_store_explicit(&w->head, (uint64_t)next_offset,
                          memory_order_relaxed);
    atomic_store_explicit(&w->base, (uint64_t)next_offset,
                          memory_order_relaxed);
    /* release: pairs with the acquire load of id in rg_ack_done() */
    atomic_store_explicit(&w->id, ng, memory_order_release);
    a->next = (uint64_t)next_offset;
    a->pw = w;
    /* release: pairs with the acquire load in rg_ack_generation() */
    atomic_store_explicit(&a->gen, ng, memory_order_release);
    return 0;
}

void rg_ack_stats(rg_ack_t *a, rg_ack_stats_t *out)
{
    out->generation = rg_ack_generation(a);
    struct rg__ack_window *w = rg__ack_win(a, out->generation);
    uint64_t b = rg__ack_advance(a, w);
    uint64_t h = atomic_load_explicit(&w->head, memory_order_acquire);
    out->watermark = (int64_t)b;
    out->next = (int64_t)h;
    out->pending = 0;
    for (uint64_t x = b; x < h; x++)
        /* relaxed: a statistic */
        out->pending += atomic_load_explicit(&w->slots[x & a->mask],
                                             memory_order_relaxed) == x + 1;
}
