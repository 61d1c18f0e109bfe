/*
 * hotkey.c - the hot-key sketch's out-of-line parts (see hotkey.h): the
 * miss path of an add, the tick (evaluate, publish, slide), the snapshot
 * reader, and the small hot-key set.
 *
 * Per counter e (bucket b = e / WAYS, way i = e % WAYS); an add touches
 * only the first line:
 *   win[i]        = the window count, the current slice included
 *   base[e]       = sum of hist[e][*], the ended slices still in the
 *                   window (ended slice j's count sits in hist[e][j %
 *                   KEPT]); win[i] - base[e] is the current slice's count
 *   adm[e]        = the slice in which the counter's key was admitted; it
 *                   took the counter over with the victim's counts, win
 *                   adm_win[e] then, of which adm_cur[e] (set when that
 *                   slice ends) in the admission slice
 *   lower bound   = win less the inherited counts still in the window
 *                   (none once slices - adm[e] >= RG__HK_SLICES)
 * and the sketch's T = kept_total + slice_events, with kept_total the sum
 * of slice_total[*] (the same ring as hist).
 *
 * The hot set: hot[0 .. nhot) and the head's rg__hkset_t hold the same
 * keys. cooled[0 .. ncooled) holds the keys that turned cold less than
 * cool_ns ago; it never needs more than max_hot places, because every key
 * in it was hot at the instant cool_ns before now (it turned hot at least
 * cool_ns before it cooled, and cooled after that instant).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotkey.h"
#include "park.h"
#include "railgun/error.h"

#define KEPT (RG__HK_SLICES - 1)   /* ended slices a window keeps */
#define DOOR_PER_COUNTER 2          /* doorkeeper slots per counter */

/* Debug builds check the invariants the code relies on. */
#ifndef NDEBUG
#include <assert.h>
#define RG_DASSERT(x) assert(x)
#else
#define RG_DASSERT(x) ((void)0)
#endif

struct cold {
    uint64_t hist[KEPT];   /* kept ended slices' counts; slice j at j % KEPT */
    uint64_t base;         /* their sum (win at the last slide) */
    uint64_t adm;          /* the slice the key was admitted in */
    uint64_t adm_win;      /* the window count it inherited */
    uint64_t adm_cur;      /* of which in the admission slice (set when
                              that slice ends) */
};

struct hot_key {
    uint64_t key, h, since_ns, count;
    double share;
};

struct cooled_key {
    uint64_t key, at_ns;
};

struct cand {
    uint64_t key, h, count;
};

/* What a tick publishes for other threads: written under the sequence
 * lock `seq` (odd while a tick writes). */
struct pub_key {
    _Atomic uint64_t key, count, since_ns, share_bits;
};

struct rg__hk_s {
    struct rg__hk_head f;         /* must stay first (hotkey.h) */
    rg__hk_conf_t conf;
    uint64_t slice_ns;
    uint64_t slice_start_ns;      /* start of the current slice */
    uint32_t nbuckets;
    uint64_t slice_total[KEPT];   /* events of each kept slice; slice j
                                     at j % KEPT, as hist */
    uint64_t kept_total;
    struct cold *cold;            /* capacity */
    struct hot_key *hot;          /* max_hot */
    uint32_t nhot;
    struct cooled_key *cooled;    /* max_hot */
    uint32_t ncooled;
    struct cand *cand;            /* capacity */
    rg__hk_change_t *changes;     /* 2 * max_hot */
    uint64_t ticks, turned_hot, turned_cold;

    /* published; read by rg__hk_snapshot() on any thread */
    alignas(64) _Atomic uint64_t seq;
    _Atomic uint64_t p_tick_ns, p_ticks, p_window, p_turned_hot,
        p_turned_cold, p_nhot;
    struct pub_key *pub;          /* max_hot */
};

/* ------------------------------------------------------------------ */
/* the hot-key set                                                      */

/* A key whose homes are both not slot i: what slot i holds while empty. */
static uint64_t foreign_key(uint32_t i, uint32_t mask)
{
    for (uint64_t k = 0;; k++) {
        uint64_t h = rg_hash64(k);
        if (rg__hkset_home_a(h, mask) != i && rg__hkset_home_b(h, mask) != i)
            return k;
    }
}

int rg__hkset_init(rg__hkset_t *s, uint32_t max)
{
    memset(s, 0, sizeof(*s));
    if (max == 0 || max > RG__HK_MAX_HOT_MAX)
        return RG_EINVAL;
    uint32_t cap = 16;
    while (cap < 8 * max)
        cap <<= 1;
    s->slots = malloc(cap * sizeof(*s->slots));
    s->used = calloc(cap, 1);
    s->over = malloc(max * sizeof(*s->over));
    if (s->slots == NULL || s->used == NULL || s->over == NULL) {
        rg__hkset_fini(s);
        return RG_ENOMEM;
    }
    s->mask = cap - 1;
    s->max = max;
    for (uint32_t i = 0; i < cap; i++)
        s->slots[i] = foreign_key(i, s->mask);
    return 0;
}

void rg__hkset_fini(rg__hkset_t *s)
{
    if (s == NULL)
        return;
    free(s->slots);
    free(s->used);
    free(s->over);
    memset(s, 0, sizeof(*s));
}

bool rg__hkset_over_has(const rg__hkset_t *s, uint64_t key)
{
    for (uint32_t i = 0; i < s->nover; i++)
        if (s->over[i] == key)
            return true;
    return false;
}

size_t rg__hkset_members(const rg__hkset_t *s, uint64_t *out, size_t max)
{
    size_t n = 0;
    for (uint32_t i = 0; i <= s->mask && n < max && n < s->n; i++)
        if (s->used[i])
            out[n++] = s->slots[i];
    for (uint32_t i = 0; i < s->nover && n < max; i++)
        out[n++] = s->over[i];
    return n;
}

/* The slot holding member key, or -1. */
static long member_slot(const rg__hkset_t *s, uint64_t key, uint64_t h)
{
    uint32_t a = rg__hkset_home_a(h, s->mask);
    uint32_t b = rg__hkset_home_b(h, s->mask);
    if (s->used[a] && s->slots[a] == key)
        return a;
    if (s->used[b] && s->slots[b] == key)
        return b;
    return -1;
}

int rg__hkset_add(rg__hkset_t *s, uint64_t key, uint64_t h)
{
    if (member_slot(s, key, h) >= 0 || rg__hkset_over_has(s, key))
        return RG_EEXIST;
    if (s->n == s->max)
        return RG_EFULL;
    s->n++;
    /* Put key in a free home, else displace the occupant of one home to
     * its other home, and so on; at 1/8 load a free home is nearly
     * always there at once. */
    uint64_t cur = key, hc = h;
    uint32_t p = rg__hkset_home_a(hc, s->mask);
    for (int kicks = 0; kicks < 64; kicks++) {
        uint32_t a = rg__hkset_home_a(hc, s->mask);
        uint32_t b = rg__hkset_home_b(hc, s->mask);
        uint32_t at = !s->used[a] ? a : !s->used[b] ? b : UINT32_MAX;
        if (at != UINT32_MAX) {
            s->slots[at] = cur;
            s->used[at] = 1;
            return 0;
        }
        /* both taken: cur takes p, and p's occupant moves on to its
         * other home */
        uint64_t victim = s->slots[p];
        s->slots[p] = cur;
        cur = victim;
        hc = rg_hash64(cur);
        uint32_t va = rg__hkset_home_a(hc, s->mask);
        p = va != p ? va : rg__hkset_home_b(hc, s->mask);
    }
    s->over[s->nover++] = cur; /* n <= max, so there is room */
    return 0;
}

int rg__hkset_del(rg__hkset_t *s, uint64_t key, uint64_t h)
{
    long i = member_slot(s, key, h);
    if (i >= 0) {
        s->slots[i] = foreign_key((uint32_t)i, s->mask);
        s->used[i] = 0;
        s->n--;
        return 0;
    }
    for (uint32_t j = 0; j < s->nover; j++) {
        if (s->over[j] == key) {
            s->over[j] = s->over[--s->nover];
            s->n--;
            return 0;
        }
    }
    return RG_ENOENT;
}

int rg__hkset_apply(rg__hkset_t *s, const rg__hk_change_t *changes,
                    size_t n, uint64_t epoch)
{
    for (size_t i = 0; i < n; i++) {
        const rg__hk_change_t *c = &changes[i];
        int rc = c->hot ? rg__hkset_add(s, c->key, c->hash)
                        : rg__hkset_del(s, c->key, c->hash);
        if (rc != 0)
            return rc;
    }
    s->epoch = epoch;
    return 0;
}

/* ------------------------------------------------------------------ */
/* configuration                                                        */

void rg__hk_conf_default(rg__hk_conf_t *c)
{
    c->window_ns = 1000ull * 1000 * 1000;
    c->share = 0.05;
    c->cool_share = 0.04;
    c->rate = 0;
    c->cool_ns = 10ull * 1000 * 1000 * 1000;
    c->min_events = 1000;
    c->capacity = 1024;
    c->max_hot = 64;
}

#define MS 1000000ull

int rg__hk_conf_check(const rg__hk_conf_t *c, char *errstr,
                      size_t errstr_size)
{
    const char *why = NULL;
    int rc = RG_ERANGE;
    if (c == NULL) {
        why = "no configuration";
        rc = RG_EINVAL;
    } else if (c->window_ns < 4 * MS || c->window_ns > 3600000 * MS)
        why = "hotkey.window.ms must be in 4 .. 3600000";
    else if (!(c->share > 0 && c->share <= 1))
        why = "hotkey.share must be in (0, 1]";
    else if (!(c->cool_share >= 0 && c->cool_share <= c->share))
        why = "hotkey.cool.share must be in [0, hotkey.share]";
    else if (c->rate > 1000000000000ull)
        why = "hotkey.rate.events.per.s must be in 0 .. 1e12";
    else if (c->cool_ns > 3600000 * MS)
        why = "hotkey.cool.ms must be in 0 .. 3600000";
    else if (c->min_events < 1 || c->min_events > (1ull << 40))
        why = "hotkey.min.events must be in 1 .. 2^40";
    else if (c->capacity < RG__HK_CAP_MIN || c->capacity > RG__HK_CAP_MAX ||
             (c->capacity & (c->capacity - 1)) != 0) {
        why = "hotkey.capacity must be a power of two in 64 .. 65536";
        rc = c->capacity & (c->capacity - 1) ? RG_EINVAL : RG_ERANGE;
    } else if (c->max_hot < 1 || c->max_hot > RG__HK_MAX_HOT_MAX)
        why = "hotkey.max.keys must be in 1 .. 4096";
    else if (c->max_hot > c->capacity)
        why = "hotkey.max.keys must be at most hotkey.capacity";
    if (why == NULL)
        return 0;
    if (errstr != NULL && errstr_size > 0)
        snprintf(errstr, errstr_size, "%s", why);
    return rc;
}

/* ------------------------------------------------------------------ */
/* new, destroy                                                         */

void rg__hk_destroy(rg__hk_t *hk)
{
    if (hk == NULL)
        return;
    free(hk->f.buckets);
    free(hk->f.tags);
    free(hk->f.door);
    rg__hkset_fini(&hk->f.hot);
    free(hk->cold);
    free(hk->hot);
    free(hk->cooled);
    free(hk->cand);
    free(hk->changes);
    free(hk->pub);
    free(hk);
}

int rg__hk_new(rg__hk_t **out, const rg__hk_conf_t *conf, uint64_t now_ns)
{
    int rc = rg__hk_conf_check(conf, NULL, 0);
    if (rc != 0)
        return rc;
    rg__hk_t *hk = aligned_alloc(64, sizeof(*hk));
    if (hk == NULL)
        return RG_ENOMEM;
    memset(hk, 0, sizeof(*hk));
    hk->conf = *conf;
    uint32_t cap = conf->capacity, nb = cap / RG__HK_WAYS;
    hk->nbuckets = nb;
    hk->f.bmask = nb - 1;
    hk->f.buckets = aligned_alloc(64, nb * sizeof(struct rg__hk_bucket));
    hk->f.tags = aligned_alloc(64, nb * sizeof(uint64_t));
    hk->f.door = calloc(DOOR_PER_COUNTER * (size_t)cap, sizeof(*hk->f.door));
    hk->f.door_mask = DOOR_PER_COUNTER * (uint64_t)cap - 1;
    hk->cold = calloc(cap, sizeof(*hk->cold));
    hk->hot = calloc(conf->max_hot, sizeof(*hk->hot));
    hk->cooled = calloc(conf->max_hot, sizeof(*hk->cooled));
    hk->cand = calloc(cap, sizeof(*hk->cand));
    hk->changes = calloc(2 * (size_t)conf->max_hot, sizeof(*hk->changes));
    hk->pub = calloc(conf->max_hot, sizeof(*hk->pub));
    rc = rg__hkset_init(&hk->f.hot, conf->max_hot);
    if (rc != 0 || hk->f.buckets == NULL || hk->f.tags == NULL ||
        hk->f.door == NULL || hk->cold == NULL ||
        hk->hot == NULL || hk->cooled == NULL || hk->cand == NULL ||
        hk->changes == NULL || hk->pub == NULL) {
        rg__hk_destroy(hk);
        return RG_ENOMEM;
    }
    memset(hk->f.buckets, 0, nb * sizeof(struct rg__hk_bucket));
    /* Initial keys: for bucket b, the first integers that hash to another
     * bucket, so they can never match a lookup in b (nb >= 8). */
    for (uint32_t b = 0; b < nb; b++) {
        uint64_t k = 0;
        hk->f.tags[b] = 0;
        for (unsigned i = 0; i < RG__HK_WAYS; i++, k++) {
            while ((rg_hash64(k) & hk->f.bmask) == b)
                k++;
            hk->f.buckets[b].key[i] = k;
            hk->f.tags[b] |= rg__hk_tag(rg_hash64(k)) << (8 * i);
        }
    }
    for (uint32_t i = 0; i < conf->max_hot; i++) {
        atomic_init(&hk->pub[i].key, 0);
        atomic_init(&hk->pub[i].count, 0);
        atomic_init(&hk->pub[i].since_ns, 0);
        atomic_init(&hk->pub[i].share_bits, 0);
    }
    atomic_init(&hk->seq, 0);
    atomic_init(&hk->p_tick_ns, 0);
    atomic_init(&hk->p_ticks, 0);
    atomic_init(&hk->p_window, 0);
    atomic_init(&hk->p_turned_hot, 0);
    atomic_init(&hk->p_turned_cold, 0);
    atomic_init(&hk->p_nhot, 0);
    hk->slice_ns = conf->window_ns / RG__HK_SLICES;
    hk->slice_start_ns = now_ns;
    hk->f.next_ns = now_ns + hk->slice_ns;
    *out = hk;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the miss path                                                        */

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

void rg__hk_admit(rg__hk_t *hk, size_t bi, uint64_t key, uint64_t h,
                  uint64_t n)
{
    struct rg__hk_bucket *b = &hk->f.buckets[bi];
    /* the bucket's smallest window count, ties to the first way: each
     * count carries its way in the low 3 bits (counts stay below 2^61),
     * so plain minimums find both, as conditional moves (a compare and
     * branch per way was mispredicted about twice per admission) */
    _Static_assert(RG__HK_WAYS == 8, "the tree below is for 8 ways");
    uint64_t p[RG__HK_WAYS];
    for (unsigned i = 0; i < RG__HK_WAYS; i++)
        p[i] = b->win[i] << 3 | i;
    uint64_t m = min_u64(min_u64(min_u64(p[0], p[1]), min_u64(p[2], p[3])),
                         min_u64(min_u64(p[4], p[5]), min_u64(p[6], p[7])));
    unsigned v = (unsigned)(m & 7);
    /* key takes the counter over, slice counts and all: what it inherits
     * leaves the window slice by slice, as the victim's events would */
    struct cold *c = &hk->cold[bi * RG__HK_WAYS + v];
    c->adm = hk->f.slices;
    c->adm_win = b->win[v];
    b->key[v] = key;
    b->win[v] += n;
    unsigned sh = 8 * v;
    hk->f.tags[bi] = (hk->f.tags[bi] & ~(0xffull << sh)) | rg__hk_tag(h) << sh;
}

/* ------------------------------------------------------------------ */
/* tick                                                                 */

/* The counter's events since its key was admitted: the window count
 * less what it inherited (the victim's counts of the slices up to the
 * admission slice that are still in the window). */
static inline uint64_t lower_of(const rg__hk_t *hk, size_t e,
                                const struct rg__hk_bucket *b, unsigned i)
{
    uint64_t w = b->win[i];
    const struct cold *c = &hk->cold[e];
    uint64_t now = hk->f.slices; /* the current slice's number */
    if (now - c->adm >= RG__HK_SLICES)
        return w; /* everything inherited has left the window */
    /* the inherited part of the admission slice: still open, or ended */
    uint64_t inherited = c->adm == now ? c->adm_win - c->base : c->adm_cur;
    uint64_t first = now >= KEPT ? now - KEPT : 0; /* oldest kept slice */
    for (uint64_t j = first; j < c->adm; j++)
        inherited += c->hist[j % KEPT];
    return w - inherited;
}

/* Counter index of key, or -1. */
static long find(const rg__hk_t *hk, uint64_t key, uint64_t h)
{
    size_t bi = h & hk->f.bmask;
    const struct rg__hk_bucket *b = &hk->f.buckets[bi];
    for (unsigned i = 0; i < RG__HK_WAYS; i++)
        if (b->key[i] == key) {
            RG_DASSERT(((hk->f.tags[bi] >> (8 * i)) & 0xff) == rg__hk_tag(h));
            return (long)(bi * RG__HK_WAYS + i);
        }
    return -1;
}

static uint64_t lower_by_key(const rg__hk_t *hk, uint64_t key, uint64_t h)
{
    long e = find(hk, key, h);
    if (e < 0)
        return 0;
    return lower_of(hk, (size_t)e, &hk->f.buckets[e / RG__HK_WAYS],
                    (unsigned)(e % RG__HK_WAYS));
}

bool rg__hk_estimate(const rg__hk_t *hk, uint64_t key, uint64_t *lo,
                     uint64_t *hi)
{
    long e = find(hk, key, rg_hash64(key));
    if (e < 0) {
        *lo = *hi = 0;
        return false;
    }
    const struct rg__hk_bucket *b = &hk->f.buckets[e / RG__HK_WAYS];
    unsigned i = (unsigned)(e % RG__HK_WAYS);
    *hi = b->win[i];
    *lo = lower_of(hk, (size_t)e, b, i);
    return true;
}

uint64_t rg__hk_window_events(const rg__hk_t *hk)
{
    return hk->kept_total + hk->f.slice_events;
}

/* The thresholds of one evaluation, as counts. */
struct thresholds {
    uint64_t heat_share;   /* c >= this: above share * T */
    uint64_t heat_rate;    /* c >= this: above the rate (UINT64_MAX: off) */
    uint64_t stay_share;   /* c >= this: not below cool_share * T */
    uint64_t stay_rate;    /* (UINT64_MAX: off) */
    uint64_t min_events;
};

/* Smallest count c with c > x (x >= 0). */
static uint64_t above(double x)
{
    return x >= 18446744073709549568.0 ? UINT64_MAX : (uint64_t)x + 1;
}

/* Smallest count c with c >= x (x >= 0). */
static uint64_t at_least(double x)
{
    if (x >= 18446744073709549568.0)
        return UINT64_MAX;
    uint64_t c = (uint64_t)x;
    return (double)c < x ? c + 1 : c;
}

static struct thresholds thresholds_of(const rg__hk_t *hk, uint64_t t,
                                       uint64_t covered_ns)
{
    const rg__hk_conf_t *c = &hk->conf;
    struct thresholds th;
    th.heat_share = above(c->share * (double)t);
    th.stay_share = at_least(c->cool_share * (double)t);
    th.heat_rate = th.stay_rate = UINT64_MAX;
    if (c->rate > 0) {
        double per_window = (double)c->rate * (double)covered_ns / 1e9;
        th.heat_rate = above(per_window);
        th.stay_rate = at_least(per_window * c->cool_share / c->share);
    }
    th.min_events = c->min_events;
    return th;
}

static inline bool heats(const struct thresholds *th, uint64_t c)
{
    return c >= th->min_events && (c >= th->heat_share || c >= th->heat_rate);
}

/* A key with no events in the window never stays (whatever the bounds:
 * with T = 0 or cool_share = 0 every stay bound is 0). */
static inline bool stays(const struct thresholds *th, uint64_t c)
{
    return c > 0 && (c >= th->stay_share || c >= th->stay_rate);
}

static double share_of(uint64_t c, uint64_t t)
{
    return t ? (double)c / (double)t : 0.0;
}

static int by_count_desc(const void *a, const void *b)
{
    uint64_t x = ((const struct cand *)a)->count;
    uint64_t y = ((const struct cand *)b)->count;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int hot_by_count_desc(const void *a, const void *b)
{
    uint64_t x = ((const struct hot_key *)a)->count;
    uint64_t y = ((const struct hot_key *)b)->count;
    return x < y ? 1 : x > y ? -1 : 0;
}

static bool recently_cooled(const rg__hk_t *hk, uint64_t key)
{
    for (uint32_t i = 0; i < hk->ncooled; i++)
        if (hk->cooled[i].key == key)
            return true;
    return false;
}

static void emit(rg__hk_t *hk, size_t *nc, const struct hot_key *k,
                 uint64_t t, bool hot)
{
    rg__hk_change_t *c = &hk->changes[(*nc)++];
    c->key = k->key;
    c->hash = k->h;
    c->count = k->count;
    c->window_events = t;
    c->share = k->share;
    c->since_ns = k->since_ns;
    c->hot = hot;
}

/* Decides every hot and every tracked key; returns the changes. */
static size_t evaluate(rg__hk_t *hk, uint64_t now, uint64_t t,
                       uint64_t covered_ns)
{
    const rg__hk_conf_t *conf = &hk->conf;
    struct thresholds th = thresholds_of(hk, t, covered_ns);
    size_t nc = 0;

    /* 1. forget cool-downs that are over */
    for (uint32_t i = 0; i < hk->ncooled;) {
        if (now - hk->cooled[i].at_ns >= conf->cool_ns)
            hk->cooled[i] = hk->cooled[--hk->ncooled];
        else
            i++;
    }

    /* 2. hot keys: refresh, and cool the ones below the cool thresholds
     * that have been hot for cool_ns */
    for (uint32_t i = 0; i < hk->nhot;) {
        struct hot_key *k = &hk->hot[i];
        k->count = lower_by_key(hk, k->key, k->h);
        k->share = share_of(k->count, t);
        if (stays(&th, k->count) || now - k->since_ns < conf->cool_ns) {
            i++;
            continue;
        }
        k->since_ns = now;
        emit(hk, &nc, k, t, false);
        hk->turned_cold++;
        int rc = rg__hkset_del(&hk->f.hot, k->key, k->h);
        RG_DASSERT(rc == 0); /* a hot key is always in the set (hotkey.h) */
        (void)rc;
        /* never full: see the top of this file */
        RG_DASSERT(hk->ncooled < conf->max_hot);
        if (conf->cool_ns > 0 && hk->ncooled < conf->max_hot)
            hk->cooled[hk->ncooled++] =
                (struct cooled_key){.key = k->key, .at_ns = now};
        hk->hot[i] = hk->hot[--hk->nhot];
    }

    /* 3. tracked keys that pass the heat thresholds */
    size_t ncand = 0;
    for (uint32_t bi = 0; bi < hk->nbuckets; bi++) {
        const struct rg__hk_bucket *b = &hk->f.buckets[bi];
        for (unsigned i = 0; i < RG__HK_WAYS; i++) {
            /* cheap reject on the upper bound first */
            if (!heats(&th, b->win[i]))
                continue;
            size_t e = (size_t)bi * RG__HK_WAYS + i;
            uint64_t c = lower_of(hk, e, b, i);
            if (!heats(&th, c))
                continue;
            uint64_t key = b->key[i], h = rg_hash64(key);
            if (rg__hkset_has(&hk->f.hot, key, h) ||
                recently_cooled(hk, key))
                continue;
            hk->cand[ncand++] = (struct cand){.key = key, .h = h, .count = c};
        }
    }
    uint32_t room = conf->max_hot - hk->nhot;
    if (ncand > room) {
        qsort(hk->cand, ncand, sizeof(*hk->cand), by_count_desc);
        ncand = room;
    }
    for (size_t j = 0; j < ncand; j++) {
        struct hot_key *k = &hk->hot[hk->nhot++];
        k->key = hk->cand[j].key;
        k->h = hk->cand[j].h;
        k->count = hk->cand[j].count;
        k->share = share_of(k->count, t);
        k->since_ns = now;
        int rc = rg__hkset_add(&hk->f.hot, k->key, k->h);
        RG_DASSERT(rc == 0); /* room was checked; the key was not a member */
        (void)rc;
        emit(hk, &nc, k, t, true);
        hk->turned_hot++;
    }
    return nc;
}

static void publish(rg__hk_t *hk, uint64_t now, uint64_t t)
{
    qsort(hk->hot, hk->nhot, sizeof(*hk->hot), hot_by_count_desc);
    /* relaxed: only this thread writes seq */
    uint64_t s = atomic_load_explicit(&hk->seq, memory_order_relaxed);
    /* S1, relaxed: odd while writing. A reader that reads any value
     * stored below (S2, release) also sees this store, so its closing
     * check of seq fails. */
    atomic_store_explicit(&hk->seq, s + 1, memory_order_relaxed);
    /* S2, release: pairs with the acquire loads R2 in rg__hk_snapshot() */
#define PUB(field, v) atomic_store_explicit(&(field), (v), memory_order_release)
    PUB(hk->p_tick_ns, now);
    PUB(hk->p_ticks, hk->ticks);
    PUB(hk->p_window, t);
    PUB(hk->p_turned_hot, hk->turned_hot);
    PUB(hk->p_turned_cold, hk->turned_cold);
    PUB(hk->p_nhot, hk->nhot);
    for (uint32_t i = 0; i < hk->nhot; i++) {
        const struct hot_key *k = &hk->hot[i];
        uint64_t bits;
        memcpy(&bits, &k->share, sizeof(bits));
        PUB(hk->pub[i].key, k->key);
        PUB(hk->pub[i].count, k->count);
        PUB(hk->pub[i].since_ns, k->since_ns);
        PUB(hk->pub[i].share_bits, bits);
    }
#undef PUB
    /* S3, release: pairs with the acquire load R1 in rg__hk_snapshot();
     * a reader that sees s + 2 sees everything S2 stored */
    atomic_store_explicit(&hk->seq, s + 2, memory_order_release);
}

/* Ends the current slice: it becomes the newest kept slice, the oldest
 * kept one leaves the window. */
static void slide(rg__hk_t *hk)
{
    /* the ring place of the slice that ends now, which is that of the
     * oldest kept one (KEPT slices earlier): it leaves the window */
    unsigned o = (unsigned)(hk->f.slices % KEPT);
    hk->kept_total += hk->f.slice_events - hk->slice_total[o];
    hk->slice_total[o] = hk->f.slice_events;
    hk->f.slice_events = 0;
    for (uint32_t bi = 0; bi < hk->nbuckets; bi++) {
        struct rg__hk_bucket *b = &hk->f.buckets[bi];
        struct cold *c = &hk->cold[(size_t)bi * RG__HK_WAYS];
        for (unsigned i = 0; i < RG__HK_WAYS; i++) {
            uint64_t cur = b->win[i] - c[i].base;
            if (c[i].adm == hk->f.slices)
                c[i].adm_cur = c[i].adm_win - c[i].base;
            b->win[i] -= c[i].hist[o];
            c[i].hist[o] = cur;
            c[i].base = b->win[i];
        }
    }
    hk->f.slices++;
}

size_t rg__hk_tick_slow(rg__hk_t *hk, uint64_t now,
                        const rg__hk_change_t **changes)
{
    uint64_t passed = (now - hk->slice_start_ns) / hk->slice_ns;
    uint64_t kept = hk->f.slices < KEPT ? hk->f.slices : KEPT;
    uint64_t covered = kept * hk->slice_ns + (now - hk->slice_start_ns);
    uint64_t t = hk->kept_total + hk->f.slice_events;
    hk->ticks++;
    size_t nc = evaluate(hk, now, t, covered);
    publish(hk, now, t);
    slide(hk);
    /* slices that passed without a tick are empty; KEPT of them empty
     * the whole window and every ring place, after which the slice
     * numbers may jump (the rings hold only zeros) */
    for (uint64_t i = 1; i < passed && i <= KEPT; i++)
        slide(hk);
    if (passed > KEPT + 1)
        hk->f.slices += passed - KEPT - 1;
    hk->slice_start_ns += passed * hk->slice_ns;
    hk->f.next_ns = hk->slice_start_ns + hk->slice_ns;
    if (nc > 0)
        *changes = hk->changes;
    return nc;
}

/* ------------------------------------------------------------------ */
/* snapshot (any thread)                                                */

size_t rg__hk_snapshot(const rg__hk_t *hk, rg__hk_stats_t *st,
                       rg__hk_hot_t *keys, size_t max)
{
    rg__hk_t *m = (rg__hk_t *)hk; /* atomics are read, never written */
    for (unsigned tries = 0;; tries++) {
        /* R1, acquire: pairs with S3 in publish() */
        uint64_t s1 = atomic_load_explicit(&m->seq, memory_order_acquire);
        if (s1 & 1) {
            if (tries > 64)
                sched_yield();
            else
                rg__cpu_relax();
            continue;
        }
        /* R2, acquire: pairs with S2 in publish(); a value from a later
         * write section brings S1 with it, so the check below fails */
#define GET(field) atomic_load_explicit(&(field), memory_order_acquire)
        rg__hk_stats_t s;
        s.tick_ns = GET(m->p_tick_ns);
        s.ticks = GET(m->p_ticks);
        s.window_events = GET(m->p_window);
        s.turned_hot = GET(m->p_turned_hot);
        s.turned_cold = GET(m->p_turned_cold);
        s.nhot = (uint32_t)GET(m->p_nhot);
        size_t n = s.nhot < max ? s.nhot : max;
        if (n > m->conf.max_hot) /* a torn read; the check below fails */
            n = m->conf.max_hot;
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = GET(m->pub[i].share_bits);
            keys[i].key = GET(m->pub[i].key);
            keys[i].count = GET(m->pub[i].count);
            keys[i].since_ns = GET(m->pub[i].since_ns);
            memcpy(&keys[i].share, &bits, sizeof(bits));
        }
#undef GET
        /* relaxed: the acquire loads R2 keep it after them */
        uint64_t s2 = atomic_load_explicit(&m->seq, memory_order_relaxed);
        if (s1 != s2)
            continue;
        if (st != NULL)
            *st = s;
        return n;
    }
}
