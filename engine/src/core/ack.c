/*
 * ack.c - the ordered ACK tracker (see railgun/ack.h for the contract).
 *
 * Each generation owns a window: `window` slots of 64 bits, slot
 * (offset & mask) holding offset + 1 while that offset is pending and 0
 * otherwise, plus two published positions:
 *
 *   base <= watermark <= head,  head - base <= window
 *
 *   - head: every begun offset is below it (written by the producer with
 *     release after the slot, so a reader that sees head sees the slot).
 *   - base: every offset below it is done. Advanced by any thread with a
 *     CAS after scanning slots [base, head); a CAS that succeeds proves no
 *     slot it scanned was reused meanwhile (reuse of slot x needs base > x,
 *     i.e. a base change, which fails the CAS).
 *
 * Invariants that make the checks exact:
 *   - A slot is nonzero only while its offset is pending, so gap offsets
 *     (skipped by the source) read as done with no work.
 *   - Two pending offsets never share a slot: begin() refuses an offset
 *     whose distance from the watermark is >= window (RG_EFULL).
 *   - done() clears a slot only if it holds exactly offset + 1, so a done
 *     for an offset never begun, a gap, or an offset a lap below or above
 *     in the window is rejected instead of corrupting another offset (and
 *     needs no look at head, which every begin writes).
 *   - A generation's window is reused by the generation four later only
 *     after it drained (base == head), so a late completion of a revoked
 *     generation lands in its own window; once reused, its id no longer
 *     matches and the completion is ignored.
 *
 * Costs: begin is two plain stores (and a scan only when the window looks
 * full); done is a load and a store (no read-modify-write); watermark
 * scans the offsets done since the last call, then one CAS.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/ack.h"
#include "railgun/error.h"

#define CACHELINE 64
#define NO_GEN UINT32_MAX /* id of a window no generation uses yet */

struct window {
    /* read-mostly */
    alignas(CACHELINE) _Atomic uint64_t *slots;
    _Atomic uint32_t id;
    /* written by every begin(); read by advance() */
    alignas(CACHELINE) _Atomic uint64_t head;
    /* written when the watermark moves */
    alignas(CACHELINE) _Atomic uint64_t base;
};

struct rg_ack_s {
    /* read-mostly: every done() reads these */
    uint32_t window, mask;
    _Atomic uint32_t gen;  /* current generation */
    struct window w[RG_ACK_GENERATIONS];
    /* producer-private, on its own line: written by every begin() */
    alignas(CACHELINE) uint64_t next;
};

static inline struct window *win(rg_ack_t *a, uint32_t gen)
{
    return &a->w[gen % RG_ACK_GENERATIONS];
}

static inline uint32_t current_gen(const rg_ack_t *a)
{
    /* acquire: pairs with the release store in rg_ack_reset(); the new
     * window is initialized before its number is seen */
    return atomic_load_explicit(&a->gen, memory_order_acquire);
}

rg_ack_t *rg_ack_new(uint32_t window, int64_t next_offset)
{
    if (window < 64 || window > (1u << 24) || (window & (window - 1)) ||
        next_offset < 0 || next_offset > RG_ACK_OFFSET_MAX + 1) {
        errno = EINVAL;
        return NULL;
    }
    rg_ack_t *a = aligned_alloc(CACHELINE, (sizeof(*a) + CACHELINE - 1) &
                                               ~(size_t)(CACHELINE - 1));
    if (a == NULL)
        return NULL;
    memset(a, 0, sizeof(*a));
    a->window = window;
    a->mask = window - 1;
    a->next = (uint64_t)next_offset;
    for (int i = 0; i < RG_ACK_GENERATIONS; i++)
        atomic_init(&a->w[i].id, NO_GEN);
    a->w[0].slots = calloc(window, sizeof(uint64_t));
    if (a->w[0].slots == NULL) {
        free(a);
        errno = ENOMEM;
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

/* Scans done offsets from base and CASes base forward; returns the new
 * base (a watermark of this window). Any thread. */
static uint64_t advance(rg_ack_t *a, struct window *w)
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
        uint64_t x = b;
        /* acquire: pairs with the release store of 0 in rg_ack_done(),
         * so the processing that preceded a done happens before whatever
         * the caller does with the watermark (commit it) */
        while (x < h && atomic_load_explicit(&slots[x & mask],
                                             memory_order_acquire) != x + 1)
            x++;
        if (x == b)
            return b;
        /* release: publishes our acquired view to the next advancer.
         * On failure b is reloaded; rescan from there. */
        if (atomic_compare_exchange_weak_explicit(&w->base, &b, x,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return x;
    }
}

int rg_ack_begin(rg_ack_t *a, int64_t offset)
{
    if (offset < 0)
        return RG_EINVAL;
    if (offset > RG_ACK_OFFSET_MAX)
        return RG_ERANGE;
    uint64_t o = (uint64_t)offset;
    if (o < a->next)
        return RG_EINVAL;
    /* relaxed: only this (producer) thread changes the generation */
    struct window *w = win(a, atomic_load_explicit(&a->gen,
                                                   memory_order_relaxed));
    /* acquire: pairs with the release CAS in advance(); the slots below
     * base are done, so their offsets' slots may be reused */
    uint64_t b = atomic_load_explicit(&w->base, memory_order_acquire);
    if (o - b >= a->window) {
        b = advance(a, w);
        if (o - b >= a->window) {
            if (b != a->next)
                return RG_EFULL; /* an offset below is still pending */
            /* nothing pending: every offset in [next, o) is a gap, and
             * every slot is 0. Jump: head first, so base <= head. */
            atomic_store_explicit(&w->head, o, memory_order_release);
            /* release: as any base update; no one else can move base
             * while it equals head, so a plain store is enough */
            atomic_store_explicit(&w->base, o, memory_order_release);
        }
    }
    /* relaxed: published by the release store of head below (to
     * advance()) and by the ring that carries the event (to done()) */
    atomic_store_explicit(&w->slots[o & a->mask], o + 1,
                          memory_order_relaxed);
    a->next = o + 1;
    /* release: pairs with the acquire loads of head in advance() and
     * rg_ack_done() */
    atomic_store_explicit(&w->head, o + 1, memory_order_release);
    return 0;
}

int rg_ack_done(rg_ack_t *a, uint32_t gen, int64_t offset)
{
    struct window *w = win(a, gen);
    /* acquire: pairs with the release store of id in rg_ack_reset() */
    if (gen == NO_GEN ||
        atomic_load_explicit(&w->id, memory_order_acquire) != gen)
        return RG_ESTALE;
    if (offset < 0)
        return RG_ENOENT;
    uint64_t o = (uint64_t)offset;
    _Atomic uint64_t *slot = &w->slots[o & a->mask];
    /* No check against head is needed (and head's line is written by
     * every begin, so reading it would cost a transfer per event): a slot
     * holds x + 1 only for a pending x below head, so an offset never
     * begun never matches. The slot is ours to clear only if it holds
     * o + 1; no other thread writes a pending slot except its one done().
     * relaxed: the event reached us through the ring's release/acquire,
     * which ordered the begin's slot store before this load. */
    if (atomic_load_explicit(slot, memory_order_relaxed) != o + 1)
        return RG_ENOENT;
    /* release: pairs with the acquire loads in advance(); whatever the
     * caller did for this event happens before the watermark passes it */
    atomic_store_explicit(slot, 0, memory_order_release);
    return 0;
}

uint32_t rg_ack_generation(const rg_ack_t *a)
{
    return current_gen(a);
}

int64_t rg_ack_watermark(rg_ack_t *a)
{
    return (int64_t)advance(a, win(a, current_gen(a)));
}

int rg_ack_reset(rg_ack_t *a, int64_t next_offset)
{
    if (next_offset < 0 || next_offset > RG_ACK_OFFSET_MAX + 1)
        return RG_EINVAL;
    /* relaxed: only this (producer) thread changes the generation */
    uint32_t ng = atomic_load_explicit(&a->gen, memory_order_relaxed) + 1;
    struct window *w = win(a, ng);
    if (w->slots == NULL) {
        w->slots = calloc(a->window, sizeof(uint64_t));
        if (w->slots == NULL)
            return RG_ENOMEM;
    } else {
        /* reuse only a drained window: all its slots are 0 again */
        uint64_t head = atomic_load_explicit(&w->head, memory_order_acquire);
        if (advance(a, w) != head)
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
    /* release: pairs with the acquire load in rg_ack_generation() */
    atomic_store_explicit(&a->gen, ng, memory_order_release);
    return 0;
}

void rg_ack_stats(rg_ack_t *a, rg_ack_stats_t *out)
{
    out->generation = current_gen(a);
    struct window *w = win(a, out->generation);
    uint64_t b = advance(a, w);
    uint64_t h = atomic_load_explicit(&w->head, memory_order_acquire);
    out->watermark = (int64_t)b;
    out->next = (int64_t)h;
    out->pending = 0;
    for (uint64_t x = b; x < h; x++)
        /* relaxed: a statistic */
        out->pending += atomic_load_explicit(&w->slots[x & a->mask],
                                             memory_order_relaxed) == x + 1;
}
