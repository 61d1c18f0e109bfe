/*
 * workload.c - see workload.h.
 */
#include <stdbool.h>
#include <stdlib.h>
#include "workload.h"
#include "zipf.h"

int64_t *rg_completion_order(uint64_t n, uint32_t window, uint64_t seed)
{
    int64_t *order = malloc(sizeof(int64_t) * (n ? n : 1));
    int64_t *pool = malloc(sizeof(int64_t) * window);
    bool *done = calloc(n ? n : 1, 1);
    if (order == NULL || pool == NULL || done == NULL) {
        free(order);
        free(pool);
        free(done);
        return NULL;
    }
    rg_rng_t rng;
    rg_rng_seed(&rng, seed);
    uint64_t next = 0, out = 0, wm = 0;
    uint32_t inflight = 0;
    while (out < n) {
        while (next < n && next - wm < window)
            pool[inflight++] = (int64_t)next++;
        uint32_t k = (uint32_t)rg_rng_below(&rng, inflight);
        order[out++] = pool[k];
        done[pool[k]] = true;
        pool[k] = pool[--inflight];
        while (wm < next && done[wm])
            wm++;
    }
    free(done);
    free(pool);
    return order;
}
