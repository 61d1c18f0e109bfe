/*
 * workload.h - workloads shared by tests and benchmarks, so both measure
 * and check the same thing.
 */
#ifndef RG_WORKLOAD_H
#define RG_WORKLOAD_H

#include <stdint.h>

/*
 * Completion order for offsets 0..n-1 begun in order: each completes at a
 * random (seeded) point while the newest begun offset stays less than
 * `window` past the oldest pending one (the ACK tracker's bound). Returns
 * a malloc'ed array of n offsets in completion order, or NULL.
 */
int64_t *rg_completion_order(uint64_t n, uint32_t window, uint64_t seed);

#endif /* RG_WORKLOAD_H */
