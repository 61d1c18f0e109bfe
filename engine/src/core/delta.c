/*
 * delta.c - one worker's changes in one epoch (railgun/flush.h): merged
 * integer keys (an rg_merge table), merged byte-string keys, and staged
 * rows. Owned by one thread at a time (epoch.h: the worker while open,
 * the flusher once sealed), so nothing here is atomic.
 *
 * Invariants
 *   - keys(merged) + nbkeys <= max_rows, nstaged <= max_rows: the bound
 *     rg_engine_set_sink() checked against what can arrive before a
 *     barrier.
 *   - Byte-string keys: open addressing over a power-of-two table at most
 *     half full, each entry the key's 64-bit hash, its bytes' offset and
 *     length in the arena (len 0 marks a free slot: keys are 1 ..
 *     RG_DELTA_KEY_MAX bytes), and the summed value. The arena holds at
 *     most max_rows x 64 bytes; a key that does not fit gets RG_EFULL.
 *   - Staged rows are kept in first-staged order; index[] maps (key, key2)
 *     to 1 + its row's position, 0 = free, at most half full.
 *   - Tables that a hot path probes before it writes are zeroed with
 *     rg__zalloc(), never calloc (see util.h).
 *   - Failure rows (struct rg__fails, also a dispatcher's per-epoch dead
 *     letters) own one allocation each, starting at row.reasons: the
 *     reasons, then the message key, then the payload.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/hash.h"
#include "engine_int.h"

#define STAGED_START 1024u
#define BKEYS_START 1024u
#define ARENA_START 65536u

int rg__delta_init(rg_delta_t *d, uint32_t max_rows, bool has_bytes,
                   bool has_staged)
{
    memset(d, 0, sizeof(*d));
    d->max_rows = max_rows;
    d->has_bytes = has_bytes;
    d->has_staged = has_staged;
    d->merged = rg_merge_new(RG_MERGE_SUM, max_rows, NULL, 0);
    d->staged_cap = max_rows < STAGED_START ? max_rows : STAGED_START;
    d->staged = malloc(sizeof(rg_row_t) * d->staged_cap);
    d->index_mask = 2u * STAGED_START - 1;
    while (d->index_mask + 1 < 2u * d->staged_cap)
        d->index_mask = d->index_mask * 2 + 1;
    d->index = rg__zalloc(((size_t)d->index_mask + 1) * sizeof(uint32_t));
    uint64_t amax = (uint64_t)max_rows * 64;
    d->arena_max = amax > UINT32_MAX ? UINT32_MAX : (uint32_t)amax;
    if (d->merged == NULL || d->staged == NULL || d->index == NULL) {
        rg__delta_free(d);
        return RG_ENOMEM;
    }
    return 0;
}

int rg__fails_add(struct rg__fails *f, const rg_failure_t *row)
{
    if (f->n == f->cap) {
        uint32_t cap = f->cap ? f->cap * 2 : 16;
        rg_failure_t *r = realloc(f->rows, sizeof(*r) * cap);
        if (r == NULL)
            return RG_ENOMEM;
        f->rows = r;
        f->cap = cap;
    }
    const char *reasons = row->reasons ? row->reasons : "";
    size_t rl = strlen(reasons) + 1;
    char *b = malloc(rl + row->msg_key_len + row->payload_len);
    if (b == NULL)
        return RG_ENOMEM;
    rg_failure_t *out = &f->rows[f->n++];
    *out = *row;
    memcpy(b, reasons, rl);
    out->reasons = b;
    out->msg_key = row->msg_key_len ? b + rl : NULL;
    if (row->msg_key_len)
        memcpy(b + rl, row->msg_key, row->msg_key_len);
    out->payload = row->payload_len ? b + rl + row->msg_key_len : NULL;
    if (row->payload_len)
        memcpy(b + rl + row->msg_key_len, row->payload, row->payload_len);
    return 0;
}

void rg__fails_clear(struct rg__fails *f)
{
    for (uint32_t i = 0; i < f->n; i++)
        free((void *)f->rows[i].reasons);
    f->n = 0;
}

void rg__fails_free(struct rg__fails *f)
{
    rg__fails_clear(f);
    free(f->rows);
    memset(f, 0, sizeof(*f));
}

void rg__delta_free(rg_delta_t *d)
{
    rg__fails_free(&d->fails);
    rg_merge_destroy(d->merged);
    free(d->bkeys);
    free(d->arena);
    free(d->staged);
    free(d->index);
    memset(d, 0, sizeof(*d));
}

void rg__delta_clear(rg_delta_t *d)
{
    rg__fails_clear(&d->fails);
    rg_merge_clear(d->merged);
    /* unset only the index slots in use: cheaper than the whole index */
    for (uint32_t i = 0; i < d->nstaged; i++) {
        uint32_t h = rg__pair_hash(d->staged[i].key, d->staged[i].key2);
        for (;; h++) {
            uint32_t *slot = &d->index[h & d->index_mask];
            if (*slot == i + 1) {
                *slot = 0;
                break;
            }
        }
    }
    d->nstaged = 0;
    if (d->nbkeys > 0)
        memset(d->bkeys, 0, sizeof(struct bkey) * ((size_t)d->bkey_mask + 1));
    d->nbkeys = 0;
    d->arena_used = 0;
}

int rg_delta_merge(rg_delta_t *d, int64_t key, int64_t value)
{
    if (d->nbkeys > 0 && rg_merge_count(d->merged) + d->nbkeys >= d->max_rows &&
        rg_merge_get(d->merged, (uint64_t)key, NULL) == 0)
        return RG_EFULL;
    return rg_merge_add(d->merged, (uint64_t)key, value, 0);
}

/* Doubles the byte-key table (or creates it). */
static int grow_bkeys(rg_delta_t *d)
{
    uint32_t size = d->bkeys == NULL ? BKEYS_START : (d->bkey_mask + 1) * 2;
    struct bkey *t = rg__zalloc(sizeof(*t) * size);
    if (t == NULL)
        return RG_ENOMEM;
    for (uint32_t i = 0; d->bkeys != NULL && i <= d->bkey_mask; i++) {
        if (d->bkeys[i].len == 0)
            continue;
        uint32_t j = (uint32_t)d->bkeys[i].hash & (size - 1);
        while (t[j].len != 0)
            j = (j + 1) & (size - 1);
        t[j] = d->bkeys[i];
    }
    free(d->bkeys);
    d->bkeys = t;
    d->bkey_mask = size - 1;
    return 0;
}

/* Room for `len` more arena bytes; false when the bound is reached. */
static int arena_room(rg_delta_t *d, size_t len)
{
    if ((uint64_t)d->arena_used + len > d->arena_max)
        return RG_EFULL;
    if (d->arena_used + len <= d->arena_cap)
        return 0;
    uint64_t cap = d->arena_cap ? d->arena_cap : ARENA_START;
    while (cap < (uint64_t)d->arena_used + len)
        cap *= 2;
    if (cap > d->arena_max)
        cap = d->arena_max;
    unsigned char *a = realloc(d->arena, (size_t)cap);
    if (a == NULL)
        return RG_ENOMEM;
    d->arena = a;
    d->arena_cap = (uint32_t)cap;
    return 0;
}

int rg_delta_merge_bytes(rg_delta_t *d, const void *key, size_t len,
                         int64_t value)
{
    if (!d->has_bytes || key == NULL || len == 0 || len > RG_DELTA_KEY_MAX)
        return RG_EINVAL;
    uint64_t h = rg_hash_bytes(key, len);
    if (d->bkeys != NULL) {
        for (uint32_t i = (uint32_t)h & d->bkey_mask;;
             i = (i + 1) & d->bkey_mask) {
            struct bkey *b = &d->bkeys[i];
            if (b->len == 0)
                break;
            if (b->hash == h && b->len == len &&
                memcmp(d->arena + b->off, key, len) == 0) {
                b->value += value;
                return 0;
            }
        }
    }
    if (rg_merge_count(d->merged) + d->nbkeys >= d->max_rows)
        return RG_EFULL;
    int rc = arena_room(d, len);
    if (rc != 0)
        return rc;
    if (d->bkeys == NULL || (d->nbkeys + 1) * 2 > d->bkey_mask + 1)
        if ((rc = grow_bkeys(d)) != 0)
            return rc;
    uint32_t i = (uint32_t)h & d->bkey_mask;
    while (d->bkeys[i].len != 0)
        i = (i + 1) & d->bkey_mask;
    memcpy(d->arena + d->arena_used, key, len);
    d->bkeys[i] = (struct bkey){h, d->arena_used, (uint32_t)len, value};
    d->arena_used += (uint32_t)len;
    d->nbkeys++;
    return 0;
}

int rg__delta_next_bytes(const rg_delta_t *d, size_t *cursor,
                         rg_bytes_row_t *row)
{
    if (d->bkeys == NULL || d->nbkeys == 0)
        return 0;
    for (; *cursor <= d->bkey_mask; (*cursor)++) {
        const struct bkey *b = &d->bkeys[*cursor];
        if (b->len != 0) {
            *row = (rg_bytes_row_t){d->arena + b->off, b->len, b->value};
            (*cursor)++;
            return 1;
        }
    }
    return 0;
}

/* Doubles the staged array and rebuilds the index. */
static int grow_staged(rg_delta_t *d)
{
    uint32_t cap = d->staged_cap * 2;
    if (cap > d->max_rows)
        cap = d->max_rows;
    uint32_t mask = d->index_mask;
    while (mask + 1 < 2u * cap)
        mask = mask * 2 + 1;
    rg_row_t *rows = realloc(d->staged, sizeof(rg_row_t) * cap);
    if (rows == NULL)
        return RG_ENOMEM;
    d->staged = rows;
    d->staged_cap = cap;
    if (mask != d->index_mask) {
        uint32_t *idx = rg__zalloc(((size_t)mask + 1) * sizeof(uint32_t));
        if (idx == NULL)
            return RG_ENOMEM;
        for (uint32_t i = 0; i < d->nstaged; i++) {
            uint32_t h = rg__pair_hash(d->staged[i].key, d->staged[i].key2);
            while (idx[h & mask] != 0)
                h++;
            idx[h & mask] = i + 1;
        }
        free(d->index);
        d->index = idx;
        d->index_mask = mask;
    }
    return 0;
}

int rg_delta_stage(rg_delta_t *d, const rg_row_t *row)
{
    if (!d->has_staged)
        return RG_EINVAL;
    uint32_t h = rg__pair_hash(row->key, row->key2);
    for (;; h++) {
        uint32_t *slot = &d->index[h & d->index_mask];
        if (*slot == 0)
            break;
        rg_row_t *r = &d->staged[*slot - 1];
        if (r->key == row->key && r->key2 == row->key2) {
            *r = *row; /* the later row of a pair wins */
            return 0;
        }
    }
    if (d->nstaged == d->staged_cap) {
        if (d->staged_cap == d->max_rows)
            return RG_EFULL;
        int rc = grow_staged(d);
        if (rc != 0)
            return rc;
        /* the index may have been rebuilt: find the free slot again */
        h = rg__pair_hash(row->key, row->key2);
        while (d->index[h & d->index_mask] != 0)
            h++;
    }
    d->staged[d->nstaged] = *row;
    d->index[h & d->index_mask] = ++d->nstaged;
    return 0;
}

uint64_t rg_delta_epoch(const rg_delta_t *d)
{
    return d->epoch;
}

size_t rg_delta_keys(const rg_delta_t *d)
{
    return rg_merge_count(d->merged) + d->nbkeys;
}

size_t rg_delta_staged(const rg_delta_t *d)
{
    return d->nstaged;
}
