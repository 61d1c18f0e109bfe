/*
 * merge.h - worker-local per-key merge table.
 *
 * Each key has one owner worker, so its table needs no lock and no atomic:
 * a worker merges every event's delta into its own table and, at a flush,
 * hands the whole table over and clears it. One DB write per key per flush
 * replaces one per event.
 *
 * Merge ops, fixed per table:
 *   RG_MERGE_SUM  value += delta                       (counts)
 *   RG_MERGE_MAX  value = max(value, delta)
 *   RG_MERGE_LWW  last write wins: keep the (value, version) with the
 *                 greater version; on equal versions the later add wins.
 *
 * Memory: open addressing with linear probing over a power-of-two array
 * of 24-byte entries plus one control byte per slot, grown by doubling
 * while it is at most 3/4 full, never past the capacity max_keys needs.
 * rg_merge_add() returns RG_EFULL instead of growing past max_keys
 * distinct keys: the caller flushes, then adds again.
 *
 * Synchronization: none. One thread owns a table (its worker), or hands
 * it over with an ordinary release/acquire handoff.
 */
#ifndef RAILGUN_MERGE_H
#define RAILGUN_MERGE_H

#include <stddef.h>
#include <stdint.h>
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rg_merge_op_e {
    RG_MERGE_SUM = 0,
    RG_MERGE_MAX,
    RG_MERGE_LWW,
} rg_merge_op_t;

typedef struct rg_merge_s rg_merge_t;

/* One merged row. */
typedef struct rg_merge_row_s {
    uint64_t key;
    int64_t  value;
    int64_t  version;  /* RG_MERGE_LWW: the winning version; else 0 */
} rg_merge_row_t;

/*
 * A table for at most max_keys distinct keys (1 .. 2^30). It starts small
 * and grows as keys arrive. NULL on a bad op or bound, or out of memory,
 * with a one-line reason in errstr (which may be NULL).
 */
RG_EXPORT rg_merge_t *rg_merge_new(rg_merge_op_t op, uint32_t max_keys,
                                   char *errstr, size_t errstr_size);

/* Frees the table; NULL is fine. */
RG_EXPORT void rg_merge_destroy(rg_merge_t *m);

/*
 * Merges (value, version) into key's row, creating it if needed.
 * Returns 0, RG_EFULL (key is new and max_keys keys are present: nothing
 * changed) or RG_ENOMEM (growth failed: nothing changed). Never blocks.
 */
RG_EXPORT int rg_merge_add(rg_merge_t *m, uint64_t key, int64_t value,
                           int64_t version);

/* Looks key up; returns 1 and fills *row (when not NULL) when present,
 * else 0. */
RG_EXPORT int rg_merge_get(const rg_merge_t *m, uint64_t key,
                           rg_merge_row_t *row);

/* Distinct keys present. */
RG_EXPORT size_t rg_merge_count(const rg_merge_t *m);

/*
 * Iterates over the rows in no particular order: start with *cursor = 0;
 * each call fills *row and returns 1, then 0 at the end. The table must
 * not change during the iteration.
 */
RG_EXPORT int rg_merge_next(const rg_merge_t *m, size_t *cursor,
                            rg_merge_row_t *row);

/* Removes every row; keeps the memory for the next epoch. */
RG_EXPORT void rg_merge_clear(rg_merge_t *m);

/* Bytes the table holds now (entries and control bytes). */
RG_EXPORT size_t rg_merge_memory(const rg_merge_t *m);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_MERGE_H */
