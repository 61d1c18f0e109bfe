/*
 * ack.h - ordered ACK tracker: the watermark below which every event of a
 * partition is done, over completions that arrive in any order.
 *
 * Kafka keeps one committed offset per partition, but workers finish out
 * of order. A tracker per partition records which offsets are pending and
 * reports the watermark: the lowest offset not yet done, i.e. the next
 * offset to commit. Committing it never skips an event that is not done.
 *
 * Model
 *   - begin(o) (one producer thread: the partition's dispatcher) marks o
 *     pending. Offsets must increase; offsets the source skipped (gaps:
 *     compaction, transaction markers, undecodable messages) count as done.
 *   - done(gen, o) (any thread, lock-free) marks a begun offset done.
 *   - watermark() (any thread, lock-free) advances over done offsets and
 *     returns the lowest offset not done, or the next offset expected when
 *     nothing is pending. Within a generation it never moves backwards and
 *     never passes an offset that is not done.
 *   - reset(next) (producer thread) starts a new generation at `next`
 *     (after a seek, an assign or a revoke). Completions of older
 *     generations still land in their own window and never count in the
 *     new one; done() with a generation that has been retired is ignored.
 *
 * Memory: window slots of 8 bytes for the live generation (plus at most
 * RG_ACK_GENERATIONS - 1 older windows, allocated only when a reset happens
 * while events are still pending). begin() returns RG_EFULL instead of
 * growing when `offset - watermark >= window`: one stuck event stops
 * intake instead of growing memory.
 *
 * Synchronization table
 *                     begin/reset   done      watermark   destroy
 *   begin/reset        no (1 thread) yes       yes         no
 *   done               yes           yes       yes         no
 *   watermark/stats    yes           yes       yes         no
 *
 * The per-event calls (begin, done, generation, watermark) are inline in
 * C (railgun/ack_pvt.h, which uses <stdatomic.h>). C++ has no _Atomic, so
 * there they are ordinary calls of the same functions, exported by the
 * library.
 */
#ifndef RAILGUN_ACK_H
#define RAILGUN_ACK_H

#include <stddef.h>
#include <stdint.h>
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Windows kept for generations whose events may still complete. */
#define RG_ACK_GENERATIONS 4
/* Largest offset begin() accepts, so that offset + 1 stays an int64. */
#define RG_ACK_OFFSET_MAX (INT64_MAX - 1)

typedef struct rg_ack_s rg_ack_t;

/* How the per-event calls are declared: static inline in C (the library
 * itself defines RG__ACK_INLINE once to emit the exported copies), plain
 * exported functions in C++. */
#ifdef __cplusplus
#undef RG__ACK_INLINE
#define RG__ACK_INLINE RG_EXPORT
#elif !defined(RG__ACK_INLINE)
#define RG__ACK_INLINE static inline
#endif

/*
 * A tracker whose first expected offset is next_offset (>= 0), with a
 * window of `window` offsets (a power of two in [64, 2^24]). NULL on bad
 * arguments or out of memory, with a one-line reason in errstr (which may
 * be NULL).
 */
RG_EXPORT rg_ack_t *rg_ack_new(uint32_t window, int64_t next_offset,
                               char *errstr, size_t errstr_size);

/* Frees a tracker; NULL is fine. No call may be running on it. */
RG_EXPORT void rg_ack_destroy(rg_ack_t *a);

/*
 * Marks `offset` pending in the current generation. Producer thread only.
 * Returns 0; RG_EINVAL when offset is below the next expected one
 * (offsets must increase) or negative; RG_ERANGE above RG_ACK_OFFSET_MAX;
 * RG_EFULL when offset - watermark >= window (retry after completions).
 * Offsets between the previous begin and this one count as done. A failed
 * call changes nothing. Never blocks.
 */
RG__ACK_INLINE int rg_ack_begin(rg_ack_t *a, int64_t offset);

/*
 * Marks `offset` of generation `gen` done. Any thread, lock-free.
 * Returns 0; RG_ENOENT when the offset is not pending in that generation
 * (never begun, a gap, or done already): nothing changes; RG_ESTALE when
 * the generation has been retired: ignored. Each begun offset must be done
 * exactly once; a duplicate done is detected and rejected when it does not
 * race the first one.
 */
RG__ACK_INLINE int rg_ack_done(rg_ack_t *a, uint32_t gen, int64_t offset);

/* The current generation, to pass to rg_ack_done(). Any thread. */
RG__ACK_INLINE uint32_t rg_ack_generation(const rg_ack_t *a);

/*
 * Advances and returns the current generation's watermark: the lowest
 * offset not yet done, or the next expected offset when none is pending.
 * Any thread, lock-free.
 */
RG__ACK_INLINE int64_t rg_ack_watermark(rg_ack_t *a);

/*
 * Starts a new generation whose next expected offset is next_offset.
 * Producer thread only. Returns 0; RG_EINVAL (negative offset);
 * RG_EFULL when RG_ACK_GENERATIONS generations still have pending events
 * (the oldest must drain first); RG_ENOMEM.
 */
RG_EXPORT int rg_ack_reset(rg_ack_t *a, int64_t next_offset);

typedef struct rg_ack_stats_s {
    uint32_t generation;
    int64_t watermark;     /* lowest offset not done */
    int64_t next;          /* next offset expected (all begun are below) */
    uint64_t pending;      /* begun, not done (current generation) */
} rg_ack_stats_t;

/* A snapshot of the current generation. Any thread. */
RG_EXPORT void rg_ack_stats(rg_ack_t *a, rg_ack_stats_t *out);

/* begin, done, generation and watermark: inline, as the ring's calls are */
#ifndef __cplusplus
#include "railgun/ack_pvt.h"
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_ACK_H */
