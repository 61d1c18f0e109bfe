/*
 * claims.h - the partitions a sink has claimed and the owner_epoch it
 * claimed each with (railgun/sink.h, fencing). Shared by the SQL sinks;
 * a handful of partitions per process, so a flat array.
 */
#ifndef RG_ADAPTER_CLAIMS_H
#define RG_ADAPTER_CLAIMS_H

#include <stdint.h>
#include <stdlib.h>

struct rg_claim {
    int32_t partition;
    int64_t owner_epoch;
};

struct rg_claims {
    struct rg_claim *v;
    size_t n, cap;
};

/* The claim of partition p, or NULL when this sink never claimed it. */
static inline const struct rg_claim *rg_claims_find(const struct rg_claims *c,
                                                    int32_t p)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].partition == p)
            return &c->v[i];
    return NULL;
}

/* Records (or renews) a claim. 0, or -1 when out of memory. */
static inline int rg_claims_put(struct rg_claims *c, int32_t p,
                                int64_t owner_epoch)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].partition == p) {
            c->v[i].owner_epoch = owner_epoch;
            return 0;
        }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct rg_claim *v = realloc(c->v, sizeof(*v) * cap);
        if (v == NULL)
            return -1;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = (struct rg_claim){p, owner_epoch};
    return 0;
}

static inline void rg_claims_free(struct rg_claims *c)
{
    free(c->v);
    c->v = NULL;
    c->n = c->cap = 0;
}

#endif /* RG_ADAPTER_CLAIMS_H */
