/*
 * ack_pvt.h - PRIVATE: the ACK tracker's layout and its inline fast paths.
 * Included by railgun/ack.h; call only what ack.h documents. The layout may
 * change in any release.
 *
 * Why inline: begin, done and the watermark check are each about ten
 * instructions, and a dispatcher or worker calls them once per event; the
 * calls themselves cost as much again (`ack/railgun`, docs/benchmarks.md).
 * The rare paths (a full-looking window, an advance over done offsets)
 * stay out of line in ack.c.
 *
 * Each generation owns a window: `window` slots of 64 bits, slot
 * (offset & mask) holding offset + 1 while that offset is pending and 0
 * otherwise, plus two published positions:
 *
 *   base <= watermark <= head,  head - base <= window
 *
 *   - head: every begun offset is below it (written by the producer with
 *     release after the slot, so a reader that sees head sees the slot).
 *   - base: every offset below it is done. Any thread moves it up with a
 *     CAS after scanning slots from base; it never moves down.
 *
 * Invariants that make the checks exact:
 *   - A slot is nonzero only while an offset that maps to it is pending,
 *     so gap offsets (skipped by the source) read as done with no work.
 *   - Two pending offsets never share a slot: begin() refuses an offset
 *     whose distance from the watermark is >= window (RG_EFULL).
 *   - Hence for an offset x below head, a slot that reads 0 proves x is
 *     done (or a gap): if the last write was done(y) for y != x mapping to
 *     the same slot, then y = x + k * window was begun after x was done.
 *     A slot that reads nonzero stops the scan, which is only ever
 *     conservative. The scan therefore needs one test per slot, and
 *     eight slots at a time are one OR.
 *   - done() clears a slot only if it holds exactly offset + 1, so a done
 *     for an offset never begun, a gap, or an offset a lap below or above
 *     in the window is rejected instead of corrupting another offset (and
 *     needs no look at head, which every begin writes).
 *   - A generation's window is reused by the generation four later only
 *     after it drained (base == head), so a late completion of a revoked
 *     generation lands in its own window; once reused, its id no longer
 *     matches and the completion is ignored.
 */
#ifndef RAILGUN_ACK_PVT_H
#define RAILGUN_ACK_PVT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include "railgun/error.h"
#include "railgun/export.h"

#define RG__ACK_CACHELINE 64
#define RG__ACK_NO_GEN UINT32_MAX /* id of a window no generation uses yet */

struct rg__ack_window {
    /* read-mostly */
    alignas(RG__ACK_CACHELINE) _Atomic uint64_t *slots;
    _Atomic uint32_t id;
    /* written by every begin(); read by advances */
    alignas(RG__ACK_CACHELINE) _Atomic uint64_t head;
    /* written when the watermark moves */
    alignas(RG__ACK_CACHELINE) _Atomic uint64_t base;
};

struct rg_ack_s {
    /* read-only after rg_ack_new(): every call reads these */
    uint32_t window, mask;
    _Atomic uint32_t gen; /* current generation */
    struct rg__ack_window w[RG_ACK_GENERATIONS];
    /* producer-private, on its own line: written by every begin() */
    alignas(RG__ACK_CACHELINE) uint64_t next;
    struct rg__ack_window *pw; /* the current generation's window, so
                                  begin() needs no load of gen */
};

/* Out of line (ack.c). begin() when o looks a window or more above base. */
RG_EXPORT int rg__ack_begin_slow(rg_ack_t *a, uint64_t o);
/* Scans the done offsets from base, moves base up, returns it. */
RG_EXPORT uint64_t rg__ack_advance(rg_ack_t *a, struct rg__ack_window *w);

static inline struct rg__ack_window *rg__ack_win(rg_ack_t *a, uint32_t gen)
{
    return &a->w[gen % RG_ACK_GENERATIONS];
}

/* begin()'s stores, once o fits the window w: mark o pending, then
 * publish it. Producer thread only. */
static inline void rg__ack_mark_pending(rg_ack_t *a,
                                        struct rg__ack_window *w, uint64_t o)
{
    /* relaxed: published by the release store of head below (to the
     * advances) and by the ring that carries the event (to done()) */
    atomic_store_explicit(&w->slots[o & a->mask], o + 1,
                          memory_order_relaxed);
    a->next = o + 1;
    /* release: pairs with the acquire load of head in rg__ack_advance() */
    atomic_store_explicit(&w->head, o + 1, memory_order_release);
}

RG__ACK_INLINE int rg_ack_begin(rg_ack_t *a, int64_t offset)
{
    /* one test for both bounds; the error says which */
    if ((uint64_t)offset > (uint64_t)RG_ACK_OFFSET_MAX)
        return offset < 0 ? RG_EINVAL : RG_ERANGE;
    uint64_t o = (uint64_t)offset;
    if (o < a->next)
        return RG_EINVAL;
    struct rg__ack_window *w = a->pw;
    /* acquire: pairs with the release CAS in rg__ack_advance(); the slots
     * below base are done, so their offsets' slots may be reused */
    uint64_t b = atomic_load_explicit(&w->base, memory_order_acquire);
    if (o - b >= a->window)
        return rg__ack_begin_slow(a, o);
    rg__ack_mark_pending(a, w, o);
    return 0;
}

RG__ACK_INLINE int rg_ack_done(rg_ack_t *a, uint32_t gen, int64_t offset)
{
    struct rg__ack_window *w = rg__ack_win(a, gen);
    /* acquire: pairs with the release store of id in rg_ack_reset() */
    if (gen == RG__ACK_NO_GEN ||
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
    /* release: pairs with the acquire loads in rg__ack_advance(); whatever
     * the caller did for this event happens before the watermark passes
     * it */
    atomic_store_explicit(slot, 0, memory_order_release);
    return 0;
}

RG__ACK_INLINE uint32_t rg_ack_generation(const rg_ack_t *a)
{
    /* acquire: pairs with the release store in rg_ack_reset(); the new
     * window is initialized before its number is seen */
    return atomic_load_explicit(&a->gen, memory_order_acquire);
}

RG__ACK_INLINE int64_t rg_ack_watermark(rg_ack_t *a)
{
    struct rg__ack_window *w = rg__ack_win(a, rg_ack_generation(a));
    /* acquire: pairs with the release CAS in rg__ack_advance(); offsets
     * below base are done, and so is everything their processing did */
    uint64_t b = atomic_load_explicit(&w->base, memory_order_acquire);
    /* Most calls find base itself pending (the watermark moves about once
     * per few hundred completions in a shuffled window): return it with
     * one slot load. A nonzero slot means an offset mapping to it is
     * pending, which is b, or b + window begun after b was done: either
     * way b is a watermark this window had.
     * relaxed: a nonzero value orders nothing; 0 is re-read with acquire
     * by the advance. */
    if (atomic_load_explicit(&w->slots[b & a->mask], memory_order_relaxed))
        return (int64_t)b;
    return (int64_t)rg__ack_advance(a, w);
}

#endif /* RAILGUN_ACK_PVT_H */
