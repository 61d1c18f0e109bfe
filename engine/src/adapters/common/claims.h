/*
 * claims.h - the partitions a sink has claimed and the owner_epoch it
 * claimed each with (railgun/sink.h, fencing), and the next offset the
 * sink stored then. Shared by the SQL sinks; a handful of partitions per
 * process, so a flat array.
 *
 * Why the stored offset: an epoch's write of a partition's next offset
 * that changes no row means either that an earlier attempt's commit
 * landed (its reply lost: the epoch is stored, RG_EEXIST) or that the
 * partition came back to this process where the sink already holds it
 * (claimed at N, nothing new processed, the engine writes N again:
 * nothing to change, and the epoch's other rows must be written). The
 * second is told by the value: it equals what the claim read.
 *
 * What that relies on: the engine writes a partition's offset only when
 * it moved since its last write, so a transaction with rows always moves
 * some offset, and a lost reply is still told by that one (RG_EEXIST on
 * the retry). The one transaction it cannot tell is one whose rows came
 * only from partitions rewound to exactly their claimed offsets inside
 * the epoch (a reset after events were processed, which reprocesses them
 * anyway). Left: the engine could re-seed its last-written offset at a
 * reset instead and never send an unchanged one.
 */
#ifndef RG_ADAPTER_CLAIMS_H
#define RG_ADAPTER_CLAIMS_H

#include <stdint.h>
#include <stdlib.h>

struct rg_claim {
    int32_t partition;
    int64_t owner_epoch;
    int64_t claimed_next;   /* stored next offset at the claim, -1: none */
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
                                int64_t owner_epoch, int64_t claimed_next)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].partition == p) {
            c->v[i].owner_epoch = owner_epoch;
            c->v[i].claimed_next = claimed_next;
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
    c->v[c->n++] = (struct rg_claim){p, owner_epoch, claimed_next};
    return 0;
}

static inline void rg_claims_free(struct rg_claims *c)
{
    free(c->v);
    c->v = NULL;
    c->n = c->cap = 0;
}

#endif /* RG_ADAPTER_CLAIMS_H */
