/*
 * merge.c - worker-local merge table (see railgun/merge.h).
 *
 * Open addressing, linear probing. A control byte per slot is 0 when the
 * slot is empty, else 0x80 | 7 bits of the key's hash, so a probe compares
 * one byte before touching the 24-byte entry, and a key of any value
 * (0 and UINT64_MAX included) can be stored. No deletions (a flush clears
 * everything), so no tombstones: a probe stops at the first empty slot.
 *
 * Invariants: count <= max_keys; count <= 3/4 of cap after every add;
 * cap is a power of two, at least 16, at most the smallest power of two
 * holding max_keys at 3/4 load.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/hash.h"
#include "railgun/merge.h"
#include "../common/util.h"

#define MIN_CAP 16u

struct rg_merge_s {
    rg_merge_op_t op;
    uint32_t max_keys;
    size_t cap, mask, count, max_cap;
    uint8_t *ctrl;
    rg_merge_row_t *rows;
};

static size_t cap_for(uint32_t keys)
{
    size_t cap = MIN_CAP;
    while (cap / 4 * 3 < keys)
        cap <<= 1;
    return cap;
}

static int alloc_arrays(size_t cap, uint8_t **ctrl, rg_merge_row_t **rows)
{
    /* written zeros, not calloc's zero page: every add probes ctrl
     * before it stores (util.h) */
    *ctrl = rg__zalloc(cap);
    *rows = malloc(cap * sizeof(rg_merge_row_t));
    if (*ctrl == NULL || *rows == NULL) {
        free(*ctrl);
        free(*rows);
        return RG_ENOMEM;
    }
    return 0;
}

rg_merge_t *rg_merge_new(rg_merge_op_t op, uint32_t max_keys, char *errstr,
                         size_t errstr_size)
{
    if ((unsigned)op > RG_MERGE_LWW) {
        rg__seterr(errstr, errstr_size, "rg_merge_new: unknown op %d",
                   (int)op);
        return NULL;
    }
    if (max_keys == 0 || max_keys > (1u << 30)) {
        rg__seterr(errstr, errstr_size, "rg_merge_new: max_keys %u is "
                   "outside 1 .. 2^30", max_keys);
        return NULL;
    }
    rg_merge_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        rg__seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    m->op = op;
    m->max_keys = max_keys;
    m->max_cap = cap_for(max_keys);
    m->cap = MIN_CAP < m->max_cap ? MIN_CAP : m->max_cap;
    m->mask = m->cap - 1;
    if (alloc_arrays(m->cap, &m->ctrl, &m->rows) != 0) {
        free(m);
        rg__seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    return m;
}

void rg_merge_destroy(rg_merge_t *m)
{
    if (m == NULL)
        return;
    free(m->ctrl);
    free(m->rows);
    free(m);
}

static inline uint8_t tag_of(uint64_t h)
{
    return (uint8_t)(0x80 | (h >> 57));
}

/* Slot of key, or of the empty slot where it would go. */
static inline size_t find(const rg_merge_t *m, uint64_t key, uint64_t h,
                          bool *found)
{
    uint8_t tag = tag_of(h);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint8_t c = m->ctrl[i];
        if (c == 0) {
            *found = false;
            return i;
        }
        if (c == tag && m->rows[i].key == key) {
            *found = true;
            return i;
        }
    }
}

static int grow(rg_merge_t *m)
{
    size_t ncap = m->cap << 1;
    uint8_t *nctrl;
    rg_merge_row_t *nrows;
    if (alloc_arrays(ncap, &nctrl, &nrows) != 0)
        return RG_ENOMEM;
    size_t nmask = ncap - 1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->ctrl[i] == 0)
            continue;
        uint64_t h = rg_hash64(m->rows[i].key);
        size_t j = h & nmask;
        while (nctrl[j] != 0)
            j = (j + 1) & nmask;
        nctrl[j] = m->ctrl[i];
        nrows[j] = m->rows[i];
    }
    free(m->ctrl);
    free(m->rows);
    m->ctrl = nctrl;
    m->rows = nrows;
    m->cap = ncap;
    m->mask = nmask;
    return 0;
}

int rg_merge_add(rg_merge_t *m, uint64_t key, int64_t value,
                 int64_t version)
{
    uint64_t h = rg_hash64(key);
    bool found;
    size_t i = find(m, key, h, &found);
    if (found) {
        rg_merge_row_t *r = &m->rows[i];
        switch (m->op) {
        case RG_MERGE_SUM:
            /* wraps like the int64 column it feeds would overflow; the
             * caller bounds deltas (likes: +-1 per event) */
            r->value = (int64_t)((uint64_t)r->value + (uint64_t)value);
            break;
        case RG_MERGE_MAX:
            if (value > r->value)
                r->value = value;
            break;
        case RG_MERGE_LWW:
            if (version >= r->version) {
                r->value = value;
                r->version = version;
            }
            break;
        }
        return 0;
    }
    if (m->count >= m->max_keys)
        return RG_EFULL;
    if ((m->count + 1) > m->cap / 4 * 3) {
        if (m->cap >= m->max_cap || grow(m) != 0)
            return RG_ENOMEM;
        i = find(m, key, h, &found);
    }
    m->ctrl[i] = tag_of(h);
    m->rows[i] = (rg_merge_row_t){key, value,
                                  m->op == RG_MERGE_LWW ? version : 0};
    m->count++;
    return 0;
}

int rg_merge_get(const rg_merge_t *m, uint64_t key, rg_merge_row_t *row)
{
    bool found;
    size_t i = find(m, key, rg_hash64(key), &found);
    if (found && row != NULL)
        *row = m->rows[i];
    return found;
}

size_t rg_merge_count(const rg_merge_t *m)
{
    return m->count;
}

int rg_merge_next(const rg_merge_t *m, size_t *cursor, rg_merge_row_t *row)
{
    for (size_t i = *cursor; i < m->cap; i++) {
        if (m->ctrl[i] != 0) {
            *row = m->rows[i];
            *cursor = i + 1;
            return 1;
        }
    }
    *cursor = m->cap;
    return 0;
}

void rg_merge_clear(rg_merge_t *m)
{
    memset(m->ctrl, 0, m->cap);
    m->count = 0;
}

size_t rg_merge_memory(const rg_merge_t *m)
{
    return m->cap * (1 + sizeof(rg_merge_row_t));
}
