/*
 * peers_hotkey.c - hot-key detection on one ingest thread, every event
 * counted, the same sliding window (4 slices of 250 ms, 1M events a
 * second of synthetic time) and the same rules (heat above share, cool
 * below cool share, anti-flap, at most max_hot) for every peer:
 *   railgun:      rg__hk (hotkey.c): per-bucket Space-Saving, 1024
 *                 counters in buckets of 8, slice counts per counter.
 *   exact_map:    an exact counter per distinct key in an open-addressing
 *                 table (pre-sized for the 1M keys: its best case), slice
 *                 counts per key; each tick scans the table to slide it
 *                 and to find the keys above the threshold.
 *   space_saving: Space-Saving (Metwally et al.) as commonly implemented:
 *                 1024 counters, a min-heap on their counts and a hash
 *                 index from key to counter; a miss takes the global
 *                 minimum over. Slice counts per counter; each tick
 *                 re-heapifies.
 *   heavykeeper:  HeavyKeeper (Gong et al., ATC'18) as in Bilibili's
 *                 go-kratos aegis (its hot-key detector), without its
 *                 mutex: 2 rows of 1024 (fingerprint, count) buckets with
 *                 exponential decay (b = 1.08), a 128-key min-heap with an
 *                 index map. One sketch per slice; a key's window count
 *                 is the sum over the 4 slice sketches.
 *   sampled16:    sampling: one event in 16 on average (a random gap of
 *                 1..31 events) goes into an exact_map with weight 16; the
 *                 other events cost a decrement and a branch. Its table
 *                 is sized for the sampled keys (1/8 of the keys) and
 *                 drops the keys that left the window at every slide.
 * Each peer uses the count it can vouch for (Space-Saving: its count less
 * what it inherited; railgun the same). All see the same key stream, one
 * add per event (keys hashed by each peer itself), a tick check per event.
 * rgb_hk_accuracy() runs one pass from a fresh start against exact_map's
 * hot sets at every tick: precision and recall of the reported hot sets.
 *
 * The per-event membership test a dispatcher routes by (hot_set/): the
 * rg__hkset_t against a scan of the hot keys' array, the top ranks of the
 * stream as members; each key's rg_hash64() comes with it (a dispatcher
 * has it already: it routes by it).
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "hotkey.h"
#include "peers.h"
#include "railgun/hash.h"

#define EVENT_NS 1000ull
#define WINDOW_NS 1000000000ull
#define SLICES RG__HK_SLICES
#define KEPT (SLICES - 1)
#define SLICE_NS (WINDOW_NS / SLICES)
#define MAXH 64
#define CAPACITY 1024u

static void rgb_hk_conf(rg__hk_conf_t *c)
{
    rg__hk_conf_default(c);
    c->window_ns = WINDOW_NS;
    c->share = 0.01;
    c->cool_share = 0.008;
    c->cool_ns = 2 * WINDOW_NS;
    c->capacity = CAPACITY;
    c->max_hot = MAXH;
}

/* ---- the rules, for the peers (railgun has them in hotkey.c) ----------- */

struct hk_ent {
    uint64_t key, at;
};

struct cand {
    uint64_t key, count;
};

struct rules {
    rg__hk_conf_t c;
    struct hk_ent hot[MAXH], cooled[MAXH];
    uint32_t nhot, ncooled;
};

typedef uint64_t (*count_fn)(void *peer, uint64_t key);

static bool rules_heats(const struct rules *r, uint64_t c, uint64_t t)
{
    return c >= r->c.min_events && (double)c > r->c.share * (double)t;
}

static bool in_list(const struct hk_ent *l, uint32_t n, uint64_t key)
{
    for (uint32_t i = 0; i < n; i++)
        if (l[i].key == key)
            return true;
    return false;
}

static int cand_desc(const void *a, const void *b)
{
    uint64_t x = ((const struct cand *)a)->count;
    uint64_t y = ((const struct cand *)b)->count;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* cands: keys that heat (rules_heats), any order, no duplicates. */
static void rules_tick(struct rules *r, uint64_t now, uint64_t t,
                       struct cand *cands, size_t ncands, count_fn count,
                       void *peer)
{
    for (uint32_t i = 0; i < r->ncooled;)
        if (now - r->cooled[i].at >= r->c.cool_ns)
            r->cooled[i] = r->cooled[--r->ncooled];
        else
            i++;
    for (uint32_t i = 0; i < r->nhot;) {
        uint64_t c = count(peer, r->hot[i].key);
        if ((c > 0 && (double)c >= r->c.cool_share * (double)t) ||
            now - r->hot[i].at < r->c.cool_ns) {
            i++;
            continue;
        }
        if (r->c.cool_ns > 0 && r->ncooled < MAXH)
            r->cooled[r->ncooled++] =
                (struct hk_ent){.key = r->hot[i].key, .at = now};
        r->hot[i] = r->hot[--r->nhot];
    }
    size_t n = 0;
    for (size_t j = 0; j < ncands; j++)
        if (!in_list(r->hot, r->nhot, cands[j].key) &&
            !in_list(r->cooled, r->ncooled, cands[j].key))
            cands[n++] = cands[j];
    qsort(cands, n, sizeof(*cands), cand_desc);
    for (size_t j = 0; j < n && r->nhot < r->c.max_hot; j++)
        r->hot[r->nhot++] = (struct hk_ent){.key = cands[j].key, .at = now};
}

/* ---- exact_map --------------------------------------------------------- */

struct xent {
    uint64_t key;          /* 0: empty (key 0 lives in `zero`) */
    uint32_t cur, base;
    uint32_t hist[KEPT];
};

struct exact {
    struct xent *slots, zero;
    uint64_t mask;
};

static void exact_init(struct exact *x, uint64_t keys)
{
    uint64_t cap = 16;
    while (cap < 2 * keys)
        cap <<= 1;
    x->slots = calloc(cap, sizeof(*x->slots));
    x->mask = cap - 1;
    memset(&x->zero, 0, sizeof(x->zero));
}

/* Keeps only the keys with events in the window. */
static void exact_compact(struct exact *x)
{
    struct xent *old = x->slots;
    uint64_t cap = x->mask + 1;
    x->slots = calloc(cap, sizeof(*x->slots));
    for (uint64_t i = 0; i < cap; i++) {
        if (old[i].key == 0 || old[i].base == 0)
            continue;
        uint64_t j = rg_hash64(old[i].key) & x->mask;
        while (x->slots[j].key != 0)
            j = (j + 1) & x->mask;
        x->slots[j] = old[i];
    }
    free(old);
}

static inline struct xent *exact_find(struct exact *x, uint64_t key,
                                      bool insert)
{
    if (key == 0)
        return &x->zero;
    for (uint64_t i = rg_hash64(key) & x->mask;; i = (i + 1) & x->mask) {
        struct xent *e = &x->slots[i];
        if (e->key == key)
            return e;
        if (e->key == 0) {
            if (!insert)
                return NULL;
            e->key = key;
            return e;
        }
    }
}

static inline void exact_add(struct exact *x, uint64_t key, uint32_t w)
{
    exact_find(x, key, true)->cur += w;
}

static uint64_t exact_count(void *peer, uint64_t key)
{
    struct xent *e = exact_find(peer, key, false);
    return e ? (uint64_t)e->base + e->cur : 0;
}

/* ---- space_saving ------------------------------------------------------ */

struct ssc {
    uint64_t key;
    uint64_t cur, base, hist[KEPT];
    uint64_t adm, adm_cur;   /* as in hotkey.c: what it inherited */
    uint32_t hpos;
};

struct ss {
    struct ssc *c;
    uint32_t *heap;          /* counter indices; min-heap on base + cur */
    uint32_t *index;         /* counter index + 1; 0 = empty */
    uint64_t imask;
    uint32_t k, used;
    uint64_t slices;
};

static inline uint64_t ss_w(const struct ss *s, uint32_t i)
{
    return s->c[i].base + s->c[i].cur;
}

static void ss_sift_down(struct ss *s, uint32_t pos)
{
    uint32_t n = s->used, i = s->heap[pos];
    uint64_t w = ss_w(s, i);
    for (;;) {
        uint32_t l = 2 * pos + 1, m = pos;
        if (l >= n)
            break;
        uint64_t mw = w;
        if (ss_w(s, s->heap[l]) < mw) {
            m = l;
            mw = ss_w(s, s->heap[l]);
        }
        if (l + 1 < n && ss_w(s, s->heap[l + 1]) < mw)
            m = l + 1;
        if (m == pos)
            break;
        s->heap[pos] = s->heap[m];
        s->c[s->heap[pos]].hpos = pos;
        pos = m;
    }
    s->heap[pos] = i;
    s->c[i].hpos = pos;
}

static void ss_sift_up(struct ss *s, uint32_t pos)
{
    uint32_t i = s->heap[pos];
    uint64_t w = ss_w(s, i);
    while (pos > 0) {
        uint32_t p = (pos - 1) / 2;
        if (ss_w(s, s->heap[p]) <= w)
            break;
        s->heap[pos] = s->heap[p];
        s->c[s->heap[pos]].hpos = pos;
        pos = p;
    }
    s->heap[pos] = i;
    s->c[i].hpos = pos;
}

static void ss_init(struct ss *s, uint32_t k)
{
    memset(s, 0, sizeof(*s));
    s->k = k;
    s->c = calloc(k, sizeof(*s->c));
    s->heap = calloc(k, sizeof(*s->heap));
    s->index = calloc(4 * (size_t)k, sizeof(*s->index));
    s->imask = 4 * (uint64_t)k - 1;
}

/* The index slot holding key, or the empty slot where it would go. */
static inline uint64_t ss_slot(const struct ss *s, uint64_t key)
{
    for (uint64_t j = rg_hash64(key) & s->imask;; j = (j + 1) & s->imask) {
        uint32_t v = s->index[j];
        if (v == 0 || s->c[v - 1].key == key)
            return j;
    }
}

static void ss_index_del(struct ss *s, uint64_t key)
{
    uint64_t i = ss_slot(s, key);
    for (uint64_t j = (i + 1) & s->imask;; j = (j + 1) & s->imask) {
        uint32_t v = s->index[j];
        if (v == 0)
            break;
        uint64_t home = rg_hash64(s->c[v - 1].key) & s->imask;
        if (((j - home) & s->imask) >= ((j - i) & s->imask)) {
            s->index[i] = v;
            i = j;
        }
    }
    s->index[i] = 0;
}

static inline void ss_add(struct ss *s, uint64_t key)
{
    uint64_t j = ss_slot(s, key);
    uint32_t v = s->index[j];
    if (v != 0) {
        s->c[v - 1].cur++;
        ss_sift_down(s, s->c[v - 1].hpos);
        return;
    }
    uint32_t i;
    if (s->used < s->k) {
        i = s->used++;
        s->c[i] = (struct ssc){.key = key, .cur = 1, .adm = s->slices};
        s->heap[i] = i;
        s->index[j] = i + 1;
        ss_sift_up(s, i);
        return;
    }
    i = s->heap[0]; /* the global minimum takes key over */
    ss_index_del(s, s->c[i].key);
    s->c[i].key = key;
    s->c[i].adm = s->slices;
    s->c[i].adm_cur = s->c[i].cur;
    s->c[i].cur++;
    s->index[ss_slot(s, key)] = i + 1;
    ss_sift_down(s, 0);
}

static uint64_t ss_lower(const struct ss *s, uint32_t i)
{
    const struct ssc *c = &s->c[i];
    uint64_t w = c->base + c->cur;
    if (s->slices - c->adm >= SLICES)
        return w;
    uint64_t inh = c->adm_cur;
    uint64_t first = s->slices >= KEPT ? s->slices - KEPT : 0;
    for (uint64_t j = first; j < c->adm; j++)
        inh += c->hist[j % KEPT];
    return w - inh;
}

static uint64_t ss_count(void *peer, uint64_t key)
{
    struct ss *s = peer;
    uint32_t v = s->index[ss_slot(s, key)];
    return v ? ss_lower(s, v - 1) : 0;
}

/* ---- heavykeeper ------------------------------------------------------- */

#define HK_D 2
#define HK_W 1024u
#define HK_K 128u
#define HK_DECAY_MAX 4096u   /* b^-c below 2^-32 past this: never decays */

struct hkbucket {
    uint32_t fp, cnt;
};

struct hkslice {
    struct hkbucket row[HK_D][HK_W];
    struct {
        uint64_t key;
        uint32_t est;
    } heap[HK_K];            /* min-heap on est */
    uint32_t n;
    struct {
        uint64_t key;
        uint32_t pos1;         /* heap position + 1; 0 = empty */
    } index[4 * HK_K];         /* by key hash */
};

struct heavy {
    struct hkslice *s[SLICES];
    unsigned cur;
    uint32_t decay[HK_DECAY_MAX]; /* 2^32 * 1.08^-c */
    uint64_t rng;
};

static void heavy_init(struct heavy *h)
{
    for (int i = 0; i < SLICES; i++)
        h->s[i] = calloc(1, sizeof(struct hkslice));
    for (uint32_t c = 0; c < HK_DECAY_MAX; c++)
        h->decay[c] = (uint32_t)fmin(pow(1.08, -(double)c) * 4294967296.0,
                                     4294967295.0);
    h->cur = 0;
    h->rng = 0x9E3779B97F4A7C15ull;
}

static inline uint32_t heavy_rand(struct heavy *h)
{
    h->rng ^= h->rng << 13; /* xorshift64 */
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    return (uint32_t)h->rng;
}

static inline uint32_t hk_col(uint64_t hv, int d)
{
    return (uint32_t)((d ? hv : hv >> 20) & (HK_W - 1));
}

static inline uint32_t hk_fp(uint64_t hv)
{
    return (uint32_t)(hv >> 32) | 1;
}

static uint32_t hk_query(const struct hkslice *s, uint64_t hv)
{
    uint32_t fp = hk_fp(hv), est = 0;
    for (int d = 0; d < HK_D; d++) {
        const struct hkbucket *b = &s->row[d][hk_col(hv, d)];
        if (b->fp == fp && b->cnt > est)
            est = b->cnt;
    }
    return est;
}

static inline uint32_t hk_home(uint64_t key)
{
    return (uint32_t)(rg_hash64(key) >> 40) & (4 * HK_K - 1);
}

/* The index entry of key, or the empty one where it would go. */
static inline uint32_t hk_islot(const struct hkslice *s, uint64_t key)
{
    uint32_t m = 4 * HK_K - 1;
    for (uint32_t j = hk_home(key);; j = (j + 1) & m)
        if (s->index[j].pos1 == 0 || s->index[j].key == key)
            return j;
}

static void hk_iset(struct hkslice *s, uint32_t pos)
{
    uint32_t j = hk_islot(s, s->heap[pos].key);
    s->index[j].key = s->heap[pos].key;
    s->index[j].pos1 = pos + 1;
}

static void hk_idel(struct hkslice *s, uint64_t key)
{
    uint32_t m = 4 * HK_K - 1;
    uint32_t i = hk_islot(s, key);
    for (uint32_t j = (i + 1) & m;; j = (j + 1) & m) {
        if (s->index[j].pos1 == 0)
            break;
        uint32_t home = hk_home(s->index[j].key);
        if (((j - home) & m) >= ((j - i) & m)) {
            s->index[i] = s->index[j];
            i = j;
        }
    }
    s->index[i].pos1 = 0;
}

static void hk_sift_down(struct hkslice *s, uint32_t pos)
{
    for (;;) {
        uint32_t l = 2 * pos + 1, m = pos;
        if (l < s->n && s->heap[l].est < s->heap[m].est)
            m = l;
        if (l + 1 < s->n && s->heap[l + 1].est < s->heap[m].est)
            m = l + 1;
        if (m == pos)
            return;
        __typeof__(s->heap[0]) t = s->heap[pos];
        s->heap[pos] = s->heap[m];
        s->heap[m] = t;
        hk_iset(s, pos);
        hk_iset(s, m);
        pos = m;
    }
}

static void hk_sift_up(struct hkslice *s, uint32_t pos)
{
    while (pos > 0) {
        uint32_t p = (pos - 1) / 2;
        if (s->heap[p].est <= s->heap[pos].est)
            return;
        __typeof__(s->heap[0]) t = s->heap[pos];
        s->heap[pos] = s->heap[p];
        s->heap[p] = t;
        hk_iset(s, pos);
        hk_iset(s, p);
        pos = p;
    }
}

static inline void heavy_add(struct heavy *h, uint64_t key)
{
    struct hkslice *s = h->s[h->cur];
    uint64_t hv = rg_hash64(key);
    uint32_t fp = hk_fp(hv), est = 0;
    for (int d = 0; d < HK_D; d++) {
        struct hkbucket *b = &s->row[d][hk_col(hv, d)];
        if (b->fp == fp) {
            b->cnt++;
        } else if (b->cnt == 0) {
            b->fp = fp;
            b->cnt = 1;
        } else if (b->cnt < HK_DECAY_MAX && heavy_rand(h) < h->decay[b->cnt]) {
            if (--b->cnt == 0) {
                b->fp = fp;
                b->cnt = 1;
            }
        }
        if (b->fp == fp && b->cnt > est)
            est = b->cnt;
    }
    if (est == 0)
        return;
    uint32_t slot = hk_islot(s, key);
    if (s->index[slot].pos1 != 0) {
        uint32_t pos = s->index[slot].pos1 - 1;
        s->heap[pos].est = est;
        hk_sift_down(s, pos);
    } else if (s->n < HK_K) {
        uint32_t pos = s->n++;
        s->heap[pos].key = key;
        s->heap[pos].est = est;
        s->index[slot].key = key;
        s->index[slot].pos1 = pos + 1;
        hk_sift_up(s, pos);
    } else if (est > s->heap[0].est) {
        hk_idel(s, s->heap[0].key);
        s->heap[0].key = key;
        s->heap[0].est = est;
        hk_iset(s, 0);
        hk_sift_down(s, 0);
    }
}

static uint64_t heavy_count(void *peer, uint64_t key)
{
    struct heavy *h = peer;
    uint64_t hv = rg_hash64(key), c = 0;
    for (int i = 0; i < SLICES; i++)
        c += hk_query(h->s[i], hv);
    return c;
}

/* ---- the benchmark object ---------------------------------------------- */

struct rgb_hk {
    int impl;
    const uint64_t *keys;
    size_t nkeys, pos;
    uint64_t events, next_tick, slices;
    uint64_t total[SLICES];   /* events per slice, ring by slice number */
    rg__hk_t *hk;
    struct rules rules;
    struct exact x;
    struct ss ss;
    struct heavy heavy;
    struct cand *cands;
    size_t maxcands;
    uint32_t skip;            /* sampled16: events until the next sample */
    uint64_t rng;
    /* accuracy pass: the reference hot set of every tick */
    uint64_t (*truth)[MAXH + 1];  /* [0]: count */
    size_t ntruth, tticks;
    uint64_t tp, fp, fn;
    bool record, compare;
};

static uint64_t window_total(const struct rgb_hk *b)
{
    uint64_t t = 0;
    for (int i = 0; i < SLICES; i++)
        t += b->total[i];
    return t;
}

static void add_cand(struct rgb_hk *b, size_t *n, uint64_t key, uint64_t c)
{
    if (*n == b->maxcands) {
        b->maxcands *= 2;
        b->cands = realloc(b->cands, b->maxcands * sizeof(*b->cands));
    }
    b->cands[(*n)++] = (struct cand){.key = key, .count = c};
}

/* The hot set after this tick, into out[1..], count in out[0]. */
static void hot_set(struct rgb_hk *b, uint64_t *out)
{
    if (b->impl == RGB_HK_RAILGUN) {
        rg__hk_hot_t k[MAXH];
        size_t n = rg__hk_snapshot(b->hk, NULL, k, MAXH);
        out[0] = n;
        for (size_t i = 0; i < n; i++)
            out[1 + i] = k[i].key;
    } else {
        out[0] = b->rules.nhot;
        for (uint32_t i = 0; i < b->rules.nhot; i++)
            out[1 + i] = b->rules.hot[i].key;
    }
}

static bool has(const uint64_t *set, uint64_t key)
{
    for (uint64_t i = 1; i <= set[0]; i++)
        if (set[i] == key)
            return true;
    return false;
}

static void after_tick(struct rgb_hk *b)
{
    if (!b->record && !b->compare)
        return;
    uint64_t got[MAXH + 1];
    hot_set(b, got);
    if (b->record) {
        if (b->ntruth == b->tticks) {
            b->tticks = b->tticks ? 2 * b->tticks : 64;
            b->truth = realloc(b->truth, b->tticks * sizeof(*b->truth));
        }
        memcpy(b->truth[b->ntruth++], got, sizeof(got));
        return;
    }
    const uint64_t *want = b->truth[b->ntruth++];
    for (uint64_t i = 1; i <= got[0]; i++)
        has(want, got[i]) ? b->tp++ : b->fp++;
    for (uint64_t i = 1; i <= want[0]; i++)
        b->fn += !has(got, want[i]);
}

/* A slice ended at now: the peer's evaluation, then its slide. */
static void peer_tick(struct rgb_hk *b, uint64_t now)
{
    uint64_t t = window_total(b);
    size_t n = 0;
    unsigned o = b->slices % KEPT;
    switch (b->impl) {
    case RGB_HK_EXACT:
    case RGB_HK_SAMPLED16: {
        struct exact *x = &b->x;
        for (uint64_t i = 0; i <= x->mask + 1; i++) {
            struct xent *e = i <= x->mask ? &x->slots[i] : &x->zero;
            if (i <= x->mask && e->key == 0)
                continue;
            uint64_t c = (uint64_t)e->base + e->cur;
            if (rules_heats(&b->rules, c, t))
                add_cand(b, &n, e->key, c);
        }
        rules_tick(&b->rules, now, t, b->cands, n, exact_count, x);
        for (uint64_t i = 0; i <= x->mask + 1; i++) {
            struct xent *e = i <= x->mask ? &x->slots[i] : &x->zero;
            e->base += e->cur - e->hist[o];
            e->hist[o] = e->cur;
            e->cur = 0;
        }
        if (b->impl == RGB_HK_SAMPLED16)
            exact_compact(x);
        break;
    }
    case RGB_HK_SPACE_SAVING: {
        struct ss *s = &b->ss;
        for (uint32_t i = 0; i < s->used; i++) {
            uint64_t c = ss_lower(s, i);
            if (rules_heats(&b->rules, c, t))
                add_cand(b, &n, s->c[i].key, c);
        }
        rules_tick(&b->rules, now, t, b->cands, n, ss_count, s);
        for (uint32_t i = 0; i < s->used; i++) {
            struct ssc *c = &s->c[i];
            c->base += c->cur - c->hist[o];
            c->hist[o] = c->cur;
            c->cur = 0;
        }
        s->slices++;
        for (uint32_t p = s->used / 2; p-- > 0;)
            ss_sift_down(s, p);
        break;
    }
    case RGB_HK_HEAVYKEEPER: {
        struct heavy *h = &b->heavy;
        for (int i = 0; i < SLICES; i++) {
            const struct hkslice *sl = h->s[i];
            for (uint32_t j = 0; j < sl->n; j++) {
                uint64_t key = sl->heap[j].key;
                bool dup = false;
                for (size_t q = 0; q < n && !dup; q++)
                    dup = b->cands[q].key == key;
                uint64_t c = dup ? 0 : heavy_count(h, key);
                if (!dup && rules_heats(&b->rules, c, t))
                    add_cand(b, &n, key, c);
            }
        }
        rules_tick(&b->rules, now, t, b->cands, n, heavy_count, h);
        h->cur = (h->cur + 1) % SLICES;
        memset(h->s[h->cur], 0, sizeof(struct hkslice));
        break;
    }
    }
}

static void tick(struct rgb_hk *b, uint64_t now)
{
    if (b->impl == RGB_HK_RAILGUN) {
        const rg__hk_change_t *ch;
        rg__hk_tick(b->hk, now, &ch);
    } else {
        peer_tick(b, now);
    }
    after_tick(b);
    b->slices++;
    b->total[b->slices % SLICES] = 0; /* the slice that starts now */
    b->next_tick += SLICE_NS;
}

rgb_hk *rgb_hk_open(int impl, const uint64_t *keys, size_t nkeys,
                    uint64_t distinct)
{
    struct rgb_hk *b = calloc(1, sizeof(*b));
    b->impl = impl;
    b->keys = keys;
    b->nkeys = nkeys;
    b->next_tick = SLICE_NS;
    b->maxcands = 256;
    b->cands = malloc(b->maxcands * sizeof(*b->cands));
    rgb_hk_conf(&b->rules.c);
    switch (impl) {
    case RGB_HK_RAILGUN:
        if (rg__hk_new(&b->hk, &b->rules.c, 0) != 0)
            abort();
        break;
    case RGB_HK_EXACT:
    case RGB_HK_SAMPLED16:
        exact_init(&b->x, impl == RGB_HK_EXACT ? distinct : distinct / 8);
        b->skip = 1;
        b->rng = 0x9E3779B97F4A7C15ull;
        break;
    case RGB_HK_SPACE_SAVING:
        ss_init(&b->ss, CAPACITY);
        break;
    case RGB_HK_HEAVYKEEPER:
        heavy_init(&b->heavy);
        break;
    }
    return b;
}

/* One loop per peer, so each inlines its own add. */
#define RUN_LOOP(ADD)                                                       \
    for (uint64_t i = 0; i < n; i++) {                                      \
        uint64_t now = b->events * EVENT_NS;                                \
        if (now >= b->next_tick)                                            \
            tick(b, now);                                                   \
        uint64_t key = keys[pos];                                           \
        pos = pos + 1 == nk ? 0 : pos + 1;                                  \
        ADD;                                                                \
        b->events++;                                                        \
        b->total[b->slices % SLICES]++;                                     \
    }

void rgb_hk_run(rgb_hk *b, uint64_t n)
{
    const uint64_t *keys = b->keys;
    size_t nk = b->nkeys, pos = b->pos;
    switch (b->impl) {
    case RGB_HK_RAILGUN: {
        rg__hk_t *hk = b->hk;
        RUN_LOOP(rg__hk_add(hk, key, 1))
        break;
    }
    case RGB_HK_EXACT:
        RUN_LOOP(exact_add(&b->x, key, 1))
        break;
    case RGB_HK_SAMPLED16:
        RUN_LOOP(if (--b->skip == 0) {
            b->rng ^= b->rng << 13; /* xorshift64 */
            b->rng ^= b->rng >> 7;
            b->rng ^= b->rng << 17;
            b->skip = 1 + (uint32_t)(b->rng % 31);
            exact_add(&b->x, key, 16);
        })
        break;
    case RGB_HK_SPACE_SAVING:
        RUN_LOOP(ss_add(&b->ss, key))
        break;
    case RGB_HK_HEAVYKEEPER:
        RUN_LOOP(heavy_add(&b->heavy, key))
        break;
    }
    b->pos = pos;
}

int rgb_hk_close(rgb_hk *b)
{
    /* sane when the sketch counted every event into its window */
    int rc = 0;
    if (b->impl == RGB_HK_RAILGUN &&
        rg__hk_window_events(b->hk) != window_total(b))
        rc = -1;
    rg__hk_destroy(b->hk);
    free(b->x.slots);
    free(b->ss.c);
    free(b->ss.heap);
    free(b->ss.index);
    for (int i = 0; i < SLICES; i++)
        free(b->heavy.s[i]);
    free(b->cands);
    free(b->truth);
    free(b);
    return rc;
}

void rgb_hk_accuracy(int impl, const uint64_t *keys, size_t nkeys,
                     uint64_t distinct, double *precision, double *recall,
                     uint64_t *hot_keys)
{
    rgb_hk *ref = rgb_hk_open(RGB_HK_EXACT, keys, nkeys, distinct);
    ref->record = true;
    rgb_hk_run(ref, nkeys);
    rgb_hk *b = rgb_hk_open(impl, keys, nkeys, distinct);
    b->compare = true;
    b->truth = ref->truth;
    rgb_hk_run(b, nkeys);
    *precision = b->tp + b->fp ? (double)b->tp / (double)(b->tp + b->fp) : 1;
    *recall = b->tp + b->fn ? (double)b->tp / (double)(b->tp + b->fn) : 1;
    *hot_keys = b->tp + b->fn; /* (key, tick) pairs the reference reports */
    b->truth = NULL;
    rgb_hk_close(b);
    rgb_hk_close(ref);
}

/* ---- membership per event ---------------------------------------------- */

struct rgb_hkset {
    int impl;
    rg__hkset_t set;
    uint64_t members[RG__HK_MAX_HOT_MAX];
    unsigned n;
};

rgb_hkset *rgb_hkset_open(int impl, const uint64_t *hot, unsigned n)
{
    struct rgb_hkset *s = calloc(1, sizeof(*s));
    s->impl = impl;
    s->n = n;
    if (rg__hkset_init(&s->set, n ? n : 1) != 0)
        abort();
    for (unsigned i = 0; i < n; i++) {
        s->members[i] = hot[i];
        if (rg__hkset_add(&s->set, hot[i], rg_hash64(hot[i])) != 0)
            abort();
    }
    return s;
}

uint64_t rgb_hkset_run(rgb_hkset *s, const uint64_t *keys,
                       const uint64_t *hashes, size_t n)
{
    uint64_t hits = 0;
    /* the barrier stands for the dispatcher's other work between two
     * tests: the set is read again for every event, not hoisted */
    if (s->impl == RGB_HKSET_RAILGUN) {
        for (size_t i = 0; i < n; i++) {
            hits += rg__hkset_has(&s->set, keys[i], hashes[i]);
            __asm__ volatile("" ::: "memory");
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            bool in = false;
            for (unsigned j = 0; j < s->n && !in; j++)
                in = s->members[j] == keys[i];
            hits += in;
            __asm__ volatile("" ::: "memory");
        }
    }
    return hits;
}

void rgb_hkset_close(rgb_hkset *s)
{
    rg__hkset_fini(&s->set);
    free(s);
}
