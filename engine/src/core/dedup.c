/*
 * dedup.c - exactly once across redelivery: the producer marks of one
 * dispatcher (ingest thread role: the thread holding the handle, which is
 * also the flusher while it takes over an idle handle for a barrier).
 *
 * A message with an identity (rg_msg_t.producer_id != 0, seq) is applied
 * at most once per (partition, producer): the dispatcher keeps a mark per
 * pair (rg_mark_t, railgun/sink.h): the highest seq applied and a ring of
 * RG_MARK_WINDOW bits below it. A seq above hi is new (the ring's bits for
 * the seqs between are cleared: they leave the window); a seq inside the
 * window is new when its bit is clear; a seq at or below
 * hi - RG_MARK_WINDOW is a copy. That last rule is what the producer's
 * replay guarantees (producer.c, F5): it never sends a record more than
 * RG_MARK_WINDOW records past its oldest one not yet acknowledged, so a
 * record that far below hi was acknowledged before hi was sent, and a
 * partition delivers in order: it came before hi.
 *
 * Invariants
 *   D1 A mark changes only here, on the thread holding the handle, and is
 *      marked dirty; barrier E copies every dirty mark into marks[E % n]
 *      (rg__dedup_snapshot(), beside the offsets' snapshot) and clears the
 *      flags, so the marks written with epoch E describe exactly the
 *      messages below E's offsets: a crash restores marks and offsets
 *      from one transaction.
 *   D2 A copy is skipped like an undecodable message: its offset is done,
 *      nothing enters a ring.
 *   D3 Memory is bounded by dedup.producers.max marks; at the bound the
 *      least recently used clean mark goes (counted, logged once). Dirty
 *      marks are never dropped (they must reach the sink): when every mark
 *      changed in the open epoch the table grows past the bound until the
 *      next barrier cleans them (logged once). Only malloc failing stops
 *      the engine, and the message is then applied (not skipped).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/hash.h"
#include "conf_props.h"
#include "engine_int.h"

static uint32_t hash_pair(int32_t p, uint64_t pid)
{
    return (uint32_t)(rg_hash64(pid ^ ((uint64_t)(uint32_t)p << 40)) >> 32);
}

/* Rebuilds the index over ents[0, n) at capacity idx_cap. */
static void reindex(struct rg__dedup *t)
{
    memset(t->idx, 0, sizeof(uint32_t) * t->idx_cap);
    uint32_t mask = t->idx_cap - 1;
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t h = hash_pair(t->ents[i].m.partition,
                               t->ents[i].m.producer_id) & mask;
        while (t->idx[h] != 0)
            h = (h + 1) & mask;
        t->idx[h] = i + 1;
    }
}

int rg__dedup_init(rg_dispatcher_t *d)
{
    rg_engine_t *e = d->e;
    struct rg__dedup *t = calloc(1, sizeof(*t));
    d->marks = calloc(e->nslots, sizeof(struct rg__marks));
    if (t == NULL || d->marks == NULL) {
        free(t);
        return RG_ENOMEM;
    }
    t->max = (uint32_t)rg__conf_int(e->conf, RG_P_DEDUP_PRODUCERS_MAX);
    d->dd = t;
    return 0;
}

void rg__dedup_free(rg_dispatcher_t *d)
{
    if (d->dd != NULL) {
        free(d->dd->ents);
        free(d->dd->idx);
        free(d->dd);
        d->dd = NULL;
    }
    if (d->marks != NULL) {
        for (uint32_t k = 0; k < d->e->nslots; k++)
            free(d->marks[k].rows);
        free(d->marks);
        d->marks = NULL;
    }
}

static struct rg__mark_ent *find(struct rg__dedup *t, int32_t p, uint64_t pid)
{
    if (t->idx_cap == 0)
        return NULL;
    uint32_t mask = t->idx_cap - 1;
    for (uint32_t h = hash_pair(p, pid) & mask; t->idx[h] != 0;
         h = (h + 1) & mask) {
        struct rg__mark_ent *m = &t->ents[t->idx[h] - 1];
        if (m->m.partition == p && m->m.producer_id == pid)
            return m;
    }
    return NULL;
}

/* Drops ents[i] (clean) and rebuilds the index. */
static void drop(struct rg__dedup *t, uint32_t i)
{
    t->ents[i] = t->ents[--t->n];
    reindex(t);
}

/* A new entry for (p, pid), all bits clear; NULL when out of memory. */
static struct rg__mark_ent *add(rg_dispatcher_t *d, int32_t p, uint64_t pid)
{
    struct rg__dedup *t = d->dd;
    if (t->n >= t->max) {
        /* D3: the least recently used clean one */
        uint32_t victim = UINT32_MAX;
        for (uint32_t i = 0; i < t->n; i++)
            if (!t->ents[i].dirty &&
                (victim == UINT32_MAX || t->ents[i].used < t->ents[victim].used))
                victim = i;
        if (victim == UINT32_MAX) {
            /* D3: all changed in the open epoch; grow past the bound */
            if (!t->warned_over) {
                t->warned_over = true;
                rg__log(d->e, RG_LOG_WARN, "dedup: more than %u producer "
                        "marks (dedup.producers.max) changed in one epoch "
                        "on one dispatcher: the table grows past the bound "
                        "until the barrier. Logged once", t->max);
            }
        } else if (d->evicted_local++ == 0) {
            rg__log(d->e, RG_LOG_WARN, "dedup: %u producer marks "
                    "(dedup.producers.max) are in use: the least recently "
                    "used goes (partition %d, producer %016llx); a copy of "
                    "its messages arriving later would count again. "
                    "Logged once", t->max, (int)t->ents[victim].m.partition,
                    (unsigned long long)t->ents[victim].m.producer_id);
            drop(t, victim);
        } else {
            drop(t, victim);
        }
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 16;
        struct rg__mark_ent *ne = realloc(t->ents, sizeof(*ne) * cap);
        if (ne == NULL)
            return NULL;
        t->ents = ne;
        t->cap = cap;
    }
    if (t->idx_cap < 2 * t->cap) {
        uint32_t ic = t->idx_cap ? t->idx_cap : 32;
        while (ic < 2 * t->cap)
            ic *= 2;
        uint32_t *ni = realloc(t->idx, sizeof(uint32_t) * ic);
        if (ni == NULL)
            return NULL;
        t->idx = ni;
        t->idx_cap = ic;
        reindex(t);
    }
    struct rg__mark_ent *m = &t->ents[t->n];
    memset(m, 0, sizeof(*m));
    m->m.partition = p;
    m->m.producer_id = pid;
    uint32_t mask = t->idx_cap - 1, h = hash_pair(p, pid) & mask;
    while (t->idx[h] != 0)
        h = (h + 1) & mask;
    t->idx[h] = ++t->n;
    return m;
}

static inline bool bit(const rg_mark_t *m, uint64_t s)
{
    uint32_t b = (uint32_t)(s % RG_MARK_WINDOW);
    return (m->seen[b / 8] >> (b % 8)) & 1;
}

static inline void set_bit(rg_mark_t *m, uint64_t s)
{
    uint32_t b = (uint32_t)(s % RG_MARK_WINDOW);
    m->seen[b / 8] |= (unsigned char)(1u << (b % 8));
}

static inline void clear_bit(rg_mark_t *m, uint64_t s)
{
    uint32_t b = (uint32_t)(s % RG_MARK_WINDOW);
    m->seen[b / 8] &= (unsigned char)~(1u << (b % 8));
}

bool rg__dedup_seen(rg_dispatcher_t *d, const rg_msg_t *msg)
{
    struct rg__dedup *t = d->dd;
    uint64_t s = msg->seq;
    struct rg__mark_ent *m = find(t, msg->partition, msg->producer_id);
    if (m == NULL) {
        if ((m = add(d, msg->partition, msg->producer_id)) == NULL) {
            /* applied without a mark (a later copy could count again)
             * rather than skipped: never lose a message */
            rg__engine_fail(d->e, "dedup: out of memory for the producer "
                            "mark of partition %d, producer %016llx",
                            (int)msg->partition,
                            (unsigned long long)msg->producer_id);
            return false;
        }
        m->m.hi = s;
        set_bit(&m->m, s);
    } else if (s > m->m.hi) {
        if (s - m->m.hi >= RG_MARK_WINDOW) {
            memset(m->m.seen, 0, sizeof(m->m.seen));
        } else {
            for (uint64_t x = m->m.hi + 1; x < s; x++)
                clear_bit(&m->m, x);
        }
        m->m.hi = s;
        set_bit(&m->m, s);
    } else if (m->m.hi - s < RG_MARK_WINDOW && !bit(&m->m, s)) {
        set_bit(&m->m, s);
    } else {
        m->used = ++t->clock;
        return true;
    }
    m->used = ++t->clock;
    if (!m->dirty) {
        m->dirty = true;
        t->ndirty++;
    }
    return false;
}

void rg__dedup_snapshot(rg_dispatcher_t *d, uint32_t slot)
{
    struct rg__dedup *t = d->dd;
    struct rg__marks *out = &d->marks[slot];
    out->n = 0;
    if (t->ndirty == 0)
        return;
    if (out->cap < t->ndirty) {
        /* the slot is free (its epoch committed): ours to grow */
        uint32_t cap = out->cap ? out->cap : 16;
        while (cap < t->ndirty)
            cap *= 2;
        rg_mark_t *nr = realloc(out->rows, sizeof(rg_mark_t) * cap);
        if (nr == NULL) {
            /* the flusher refuses an epoch whose marks are missing */
            out->n = UINT32_MAX;
            rg__engine_fail(d->e, "dedup: out of memory for the %u producer "
                            "marks of an epoch", t->ndirty);
            return;
        }
        out->rows = nr;
        out->cap = cap;
    }
    for (uint32_t i = 0; i < t->n; i++)
        if (t->ents[i].dirty) {
            out->rows[out->n++] = t->ents[i].m;
            t->ents[i].dirty = false;
        }
    t->ndirty = 0;
}

int rg_dispatcher_load_marks(rg_dispatcher_t *d, const int32_t *partitions,
                             size_t nparts, const rg_mark_t *marks, size_t n)
{
    if (d == NULL || (partitions == NULL && nparts > 0) ||
        (marks == NULL && n > 0))
        return RG_EINVAL;
    rg_engine_t *e = d->e;
    for (size_t i = 0; i < nparts; i++)
        if (partitions[i] < 0 || (uint32_t)partitions[i] >= e->max_partitions)
            return RG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        bool listed = false;
        for (size_t j = 0; !listed && j < nparts; j++)
            listed = marks[i].partition == partitions[j];
        if (!listed)
            return RG_EINVAL;
    }
    int rc = rg__dispatch_enter(d);
    if (rc != 0)
        return rc;
    struct rg__dedup *t = d->dd;
    if (t == NULL) {
        rg__dispatch_exit(d);
        return RG_ESTATE;
    }
    /* the clean marks of these partitions go (a dirty one is newer than
     * anything stored: it stays, and the stored one is not loaded) */
    bool dropped = false;
    for (uint32_t i = 0; i < t->n;) {
        bool listed = false;
        for (size_t j = 0; !listed && j < nparts; j++)
            listed = t->ents[i].m.partition == partitions[j];
        if (listed && !t->ents[i].dirty) {
            t->ents[i] = t->ents[--t->n];
            dropped = true;
        } else {
            i++;
        }
    }
    if (dropped)
        reindex(t);
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (find(t, marks[i].partition, marks[i].producer_id) != NULL)
            continue;
        struct rg__mark_ent *m = add(d, marks[i].partition,
                                     marks[i].producer_id);
        if (m == NULL) {
            rc = RG_ENOMEM;
            break;
        }
        m->m = marks[i];
        m->used = ++t->clock;
    }
    rg__dispatch_exit(d);
    return rc;
}
