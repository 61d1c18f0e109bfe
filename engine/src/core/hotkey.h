/*
 * hotkey.h - hot-key detection on one ingest thread at a time (internal).
 *
 * "Ingest thread" below means whoever holds the dispatcher handle that
 * owns the sketch: the ingest thread inside a push call, or the flusher
 * in rg__dispatcher_takeover() (the handle's in_call CAS, acquire A1/A3,
 * and its release R1 order one holder's calls before the next's).
 *
 * A dispatcher feeds every event's routing key into its own sketch
 * (rg__hk_add*) and calls rg__hk_tick() as its clock moves. At the end of
 * each slice of the window the sketch evaluates every key it tracks and
 * reports the keys that turned hot or cold. It never moves anything: the
 * dispatcher applies the reported changes to its own routing set
 * (rg__hkset_t) at an epoch barrier, and tests that set per event.
 *
 * What "hot" means (all counts are events, a weighted add counts n):
 *   - The window is the last RG__HK_SLICES slices of window_ns /
 *     RG__HK_SLICES each, the one that just ended included; it slides by
 *     one slice per tick. T is the window's events, c a key's events in it.
 *   - A cold key turns hot when c >= min_events and (c > share * T or,
 *     with rate > 0, c > rate * the window's covered seconds).
 *   - A hot key turns cold when c == 0, or when c < cool_share * T and
 *     (rate == 0 or c < rate * cool_share / share * seconds): hysteresis,
 *     so a key at the threshold does not flap.
 *   - A key changes state at most once per cool_ns (anti-flap): a key
 *     that turned hot stays hot that long, one that cooled stays cold.
 *   - At most max_hot keys are hot; past that, the strongest candidates
 *     win and the rest wait for a free place.
 *   Detection delay: a key whose share of the last window passes share is
 *   reported at the next slice end, so at most window_ns / RG__HK_SLICES
 *   after its window share crossed; a key that jumps from nothing to a
 *   share q is reported within (share / q) * window_ns + one slice.
 *
 * The sketch: capacity counters in buckets of RG__HK_WAYS (one cache line
 * of keys and one of counts), a key's bucket chosen by the low bits of
 * rg_hash64(key), plus a tag byte per counter so a lookup compares one
 * word, not eight keys. Within a bucket it is Space-Saving (Metwally et
 * al., 2005): a key not in its bucket takes over the bucket's smallest
 * counter, inheriting its count as a possible error; done per bucket, an
 * update never needs a global minimum. In front of it a doorkeeper (as in
 * TinyLFU): a direct-mapped table of fingerprints lets a key take a
 * counter only on its second miss, so the long tail of keys seen once
 * costs a load and a store and never evicts a counter. Every counter
 * keeps one count per slice, so the window slides exactly, and what a key
 * inherited slides out with the slices it was counted in: the smallest
 * counts stay about one window's admissions per counter instead of
 * growing with the stream. Decisions use the lower bound (the count less
 * what it inherited): a key that stayed in its bucket since the window
 * began is counted exactly. Why this and not HeavyKeeper, a global
 * Space-Saving, an exact map or sampling: NOTES-hotkey.md (measured).
 *
 * Invariants and bounds
 *   - capacity is a power of two in [RG__HK_CAP_MIN, RG__HK_CAP_MAX]; max_hot
 *     in [1, min(capacity, RG__HK_MAX_HOT_MAX)]. Memory: 113 bytes per
 *     counter (33 of them touched by adds: counts, keys, tags, doorkeeper)
 *     plus about 280 per max_hot, allocated in rg__hk_new(); nothing
 *     allocates afterwards. Defaults (1024, 64): 131 KiB, 33 KiB hot.
 *   - An add is O(1) for any weight: a hit reads the tag word and one key
 *     and adds to one count; a miss also reads and writes one doorkeeper
 *     slot; an admission also takes the bucket's minimum of 8 counts.
 *   - Window counts stay below 2^61 (they carry a way number in 3 bits
 *     while the minimum is taken).
 *   - A tick that ends a slice costs O(capacity) (scan and slide, up to
 *     RG__HK_SLICES slides after an idle gap), plus O(c log c + c *
 *     max_hot) for the c tracked keys above the heat threshold (c <=
 *     capacity, a handful in practice); a tick that does not end one is
 *     one compare (inline).
 *   - A slot's initial key never hashes to its own bucket, so it can never
 *     match a lookup: no empty marker is needed and every key, 0 and
 *     UINT64_MAX included, can be tracked. A tag byte always equals the
 *     top byte of its counter's key's hash.
 *   - The hot set has at most max_hot keys; a key is in it iff the last
 *     reported change for it was "hot".

 * Synchronization table (may these run at the same time on one sketch?)
 *
 *                        add, tick, is_hot,   snapshot      new, destroy
 *                        estimate
 *   add, tick, is_hot,   no (one ingest       yes           no
 *   estimate             thread owns it)
 *   snapshot             yes                  yes           no
 *
 * rg__hk_snapshot() reads what the last evaluating tick published through
 * a sequence lock: it sees one tick's hot set whole, never a mix of two.
 * No other ordering is provided.
 */
#ifndef RG_HOTKEY_H
#define RG_HOTKEY_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/hash.h"

#define RG__HK_WAYS 8       /* counters per bucket: one cache line of keys */
#define RG__HK_SLICES 4     /* slices per window; a tick ends one */
#define RG__HK_CAP_MIN 64u
#define RG__HK_CAP_MAX 65536u
#define RG__HK_MAX_HOT_MAX 4096u

/* Parameters (the hotkey.* properties; see NOTES-hotkey.md for bounds). */
typedef struct rg__hk_conf_s {
    uint64_t window_ns;    /* hotkey.window.ms */
    double share;          /* hotkey.share: heat above this share of T */
    double cool_share;     /* hotkey.cool.share: cool below it, <= share */
    uint64_t rate;         /* hotkey.rate.events.per.s, 0 = off */
    uint64_t cool_ns;      /* hotkey.cool.ms: least time between changes */
    uint64_t min_events;   /* hotkey.min.events: least c to turn hot */
    uint32_t capacity;     /* hotkey.capacity: counters, a power of two */
    uint32_t max_hot;      /* hotkey.max.keys: most keys hot at once */
} rg__hk_conf_t;

/* One change reported by a tick. */
typedef struct rg__hk_change_s {
    uint64_t key;
    uint64_t hash;           /* rg_hash64(key) */
    uint64_t count;          /* c at the tick (lower bound) */
    uint64_t window_events;  /* T at the tick */
    double share;            /* c / T (0 when T is 0) */
    uint64_t since_ns;       /* the tick's now_ns: when it changed */
    bool hot;                /* true: turned hot; false: turned cold */
} rg__hk_change_t;

/* One hot key as rg__hk_snapshot() reports it. */
typedef struct rg__hk_hot_s {
    uint64_t key;
    uint64_t count;       /* c at the last tick */
    double share;         /* c / T at the last tick */
    uint64_t since_ns;    /* when it turned hot */
} rg__hk_hot_t;

typedef struct rg__hk_stats_s {
    uint64_t tick_ns;        /* now_ns of the last evaluating tick (0: none) */
    uint64_t ticks;          /* evaluating ticks so far */
    uint64_t window_events;  /* T at the last tick */
    uint64_t turned_hot;     /* changes to hot so far */
    uint64_t turned_cold;    /* changes to cold so far */
    uint32_t nhot;           /* hot keys now (may exceed the keys copied) */
} rg__hk_stats_t;

/* ------------------------------------------------------------------ */
/* rg__hkset_t: a small set of keys for a per-event membership test.    */

/*
 * Cuckoo hashing with two homes per key, (h >> 32) & mask and (h >> 8) &
 * mask, in at most 1/8 of the slots: a member sits in one of its homes
 * (or, if 64 displacements found no room, in `over`, which stays empty
 * in practice: no insert has needed it in the tests). A slot with no
 * member holds a foreign key, one whose homes are both elsewhere, so no
 * lookup can match it: a test is two loads and two compares, no branch
 * on the answer. The dispatcher keeps one as its routing set, stamped
 * with the epoch whose barrier last changed it. Caller-owned; one thread.
 */
typedef struct rg__hkset_s {
    uint64_t *slots;      /* a member, or the slot's foreign key */
    uint32_t mask, n, max;
    uint32_t nover;       /* members in over[] */
    uint64_t *over;       /* max */
    uint8_t *used;        /* 1 where slots[i] is a member */
    uint64_t epoch;       /* the caller's: rg__hkset_apply() sets it */
} rg__hkset_t;

/* A set for up to max keys (1 .. RG__HK_MAX_HOT_MAX). 0, RG_EINVAL or
 * RG_ENOMEM (then *s is unusable, and fini is still fine). */
int rg__hkset_init(rg__hkset_t *s, uint32_t max);
void rg__hkset_fini(rg__hkset_t *s);
/* 0; RG_EEXIST when key is a member already; RG_EFULL at max members. */
int rg__hkset_add(rg__hkset_t *s, uint64_t key, uint64_t h);
/* 0; RG_ENOENT when key is not a member. */
int rg__hkset_del(rg__hkset_t *s, uint64_t key, uint64_t h);
/* Applies changes in order (hot: add, cold: del), then sets s->epoch.
 * 0, or the first error of add/del (the changes before it are applied). */
int rg__hkset_apply(rg__hkset_t *s, const rg__hk_change_t *changes,
                    size_t n, uint64_t epoch);

/* Copies up to max members into out (any order); returns how many. */
size_t rg__hkset_members(const rg__hkset_t *s, uint64_t *out, size_t max);

/* Out of line (hotkey.c): the scan of over[]. */
bool rg__hkset_over_has(const rg__hkset_t *s, uint64_t key);

static inline uint32_t rg__hkset_home_a(uint64_t h, uint32_t mask)
{
    return (uint32_t)(h >> 32) & mask;
}

static inline uint32_t rg__hkset_home_b(uint64_t h, uint32_t mask)
{
    return (uint32_t)(h >> 8) & mask;
}

/*
 * Is key (with h == rg_hash64(key)) a member? An empty set answers at the
 * first (predictable) branch; otherwise two loads and two compares, with
 * no branch on the answer, so a caller that routes on it pays no
 * misprediction here (hot_set/railgun in railgun-bench).
 */
static inline bool rg__hkset_has(const rg__hkset_t *s, uint64_t key,
                                 uint64_t h)
{
    if (s->n == 0) /* no member: the common case */
        return false;
    bool hit = (s->slots[rg__hkset_home_a(h, s->mask)] == key) |
               (s->slots[rg__hkset_home_b(h, s->mask)] == key);
    if (__builtin_expect(s->nover != 0, 0) && !hit)
        return rg__hkset_over_has(s, key);
    return hit;
}

/* ------------------------------------------------------------------ */
/* rg__hk_t: the sketch.                                                */

typedef struct rg__hk_s rg__hk_t;

/* A bucket: RG__HK_WAYS counters, the per-event part in 2 cache lines. */
struct rg__hk_bucket {
    alignas(64) uint64_t key[RG__HK_WAYS];
    uint64_t win[RG__HK_WAYS];    /* count in the window, this slice too */
};

/*
 * PRIVATE: the fields the inline calls use; the first member of
 * struct rg__hk_s (hotkey.c), so a rg__hk_t * points at it.
 */
struct rg__hk_head {
    struct rg__hk_bucket *buckets;
    uint64_t *tags;          /* per bucket: way i's tag in byte i */
    uint64_t bmask;          /* buckets - 1 */
    uint64_t slice_events;   /* events of the current slice */
    uint64_t next_ns;        /* when the current slice ends */
    uint64_t *door;          /* the doorkeeper (see rg__hk_add_hashed) */
    uint64_t door_mask;
    uint64_t slices;         /* slices ended so far: the current one's
                                number */
    rg__hkset_t hot;         /* the sketch's current hot set */
};

/* Fills conf with the defaults (window 1 s, share 0.05, cool share 0.04,
 * rate off, cool 10 s, min events 1000, capacity 1024, max hot 64). */
void rg__hk_conf_default(rg__hk_conf_t *conf);

/*
 * Checks conf; on error writes a one-line reason into errstr (when not
 * NULL) and returns RG_EINVAL or RG_ERANGE.
 */
int rg__hk_conf_check(const rg__hk_conf_t *conf, char *errstr,
                      size_t errstr_size);

/*
 * A sketch whose first slice starts at now_ns (the caller's monotonic
 * clock, any origin). 0, or RG_EINVAL / RG_ERANGE (conf, see
 * rg__hk_conf_check) or RG_ENOMEM; *out is set only on success. Does
 * not block beyond allocation. Any thread; the sketch then belongs to
 * the thread that adds (snapshot excepted).
 */
int rg__hk_new(rg__hk_t **out, const rg__hk_conf_t *conf, uint64_t now_ns);

/* Frees the sketch; NULL is fine. No snapshot may be in progress. */
void rg__hk_destroy(rg__hk_t *hk);

#define RG__HK_BYTES_01 0x0101010101010101ull
#define RG__HK_BYTES_7F 0x7f7f7f7f7f7f7f7full

/* A counter's tag: the top byte of its key's hash (the bucket index uses
 * the low bits). */
static inline uint64_t rg__hk_tag(uint64_t h)
{
    return h >> 56;
}

/* Bit 7 of byte i set iff byte i of tags equals tag (exact: no false
 * positives from borrows, unlike the (x - 0x01..) & ~x trick). */
static inline uint64_t rg__hk_match(uint64_t tags, uint64_t tag)
{
    uint64_t x = tags ^ (tag * RG__HK_BYTES_01);
    return ~(((x & RG__HK_BYTES_7F) + RG__HK_BYTES_7F) | x | RG__HK_BYTES_7F);
}

/* Out of line (hotkey.c): a key takes a counter over; the tick's work. */
void rg__hk_admit(rg__hk_t *hk, size_t bi, uint64_t key, uint64_t h,
                  uint64_t n);
size_t rg__hk_tick_slow(rg__hk_t *hk, uint64_t now_ns,
                        const rg__hk_change_t **changes);

/*
 * Counts n events of key, whose rg_hash64() the caller has already (the
 * dispatcher computes it to route). The same as n calls with 1 in a row.
 * O(1) for any n; never blocks, never allocates. Ingest thread only.
 */
static inline void rg__hk_add_hashed(rg__hk_t *hk, uint64_t key,
                                     uint64_t h, uint64_t n)
{
    struct rg__hk_head *x = (struct rg__hk_head *)hk;
    size_t bi = h & x->bmask;
    struct rg__hk_bucket *b = &x->buckets[bi];
    x->slice_events += n;
    /* tags first: one word for all ways, no branch per way (a loop over
     * the keys cost a mispredicted exit per event) */
    for (uint64_t m = rg__hk_match(x->tags[bi], rg__hk_tag(h)); m != 0;
         m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctzll(m) >> 3;
        if (b->key[i] == key) {
            b->win[i] += n;
            return;
        }
    }
    /* The doorkeeper: a key takes a counter only on its second miss while
     * its fingerprint stays in its direct-mapped slot, so keys seen once
     * (most misses, on a long tail) cost a load and a store here and
     * never evict a counter. The slot keeps the slice of the first miss:
     * when the second comes in the same slice, the first is counted too
     * (exact); from an earlier slice it is lost (still a lower bound).
     * Admission clears the slot, so no event is credited twice; n events
     * in one call do what n calls with 1 would. Slot from bits 16..,
     * fingerprint from bits 32.. (the bucket uses the low bits). */
    if (n == 0)
        return;
    uint64_t *slot = &x->door[(h >> 16) & x->door_mask];
    uint64_t fp = ((h >> 32) | 1) << 32; /* 0: an empty slot */
    uint64_t now = (uint32_t)x->slices;
    if ((*slot & ~0xffffffffull) != fp) {
        if (n == 1) {
            *slot = fp | now;
            return;
        }
        /* of n, the first is the first miss and the second admits */
    } else if ((*slot & 0xffffffffull) == now) {
        n += 1;
    }
    *slot = 0;
    rg__hk_admit(hk, bi, key, h, n);
}

/* rg__hk_add_hashed() that hashes key itself. */
static inline void rg__hk_add(rg__hk_t *hk, uint64_t key, uint64_t n)
{
    rg__hk_add_hashed(hk, key, rg_hash64(key), n);
}

/*
 * Ends the current slice when now_ns has reached its end: evaluates every
 * tracked key and every hot key, publishes the snapshot, slides the
 * window (by every slice that passed, so a late call lumps the events
 * since the last tick into one slice). Returns how many keys changed
 * state and points *changes at them (valid until the next tick); 0 when
 * nothing changed or the slice has not ended (then *changes is not
 * touched). Call it at least once per slice (window_ns / RG__HK_SLICES),
 * e.g. once per burst: before the slice's end it is one compare. now_ns
 * must not go backwards. Ingest thread only; never blocks or allocates.
 */
static inline size_t rg__hk_tick(rg__hk_t *hk, uint64_t now_ns,
                                 const rg__hk_change_t **changes)
{
    if (now_ns < ((const struct rg__hk_head *)hk)->next_ns)
        return 0;
    return rg__hk_tick_slow(hk, now_ns, changes);
}

/* When the current slice ends (the next tick that evaluates). */
static inline uint64_t rg__hk_next_tick_ns(const rg__hk_t *hk)
{
    return ((const struct rg__hk_head *)hk)->next_ns;
}

/*
 * Is key hot in the sketch's own view (the changes reported so far)? The
 * dispatcher routes by its rg__hkset_t instead, which changes only at
 * barriers. Ingest thread only.
 */
static inline bool rg__hk_is_hot_hashed(const rg__hk_t *hk, uint64_t key,
                                        uint64_t h)
{
    return rg__hkset_has(&((const struct rg__hk_head *)hk)->hot, key, h);
}

static inline bool rg__hk_is_hot(const rg__hk_t *hk, uint64_t key)
{
    return rg__hk_is_hot_hashed(hk, key, rg_hash64(key));
}

/*
 * What the sketch holds for key's events in the window so far (the
 * current slice included): *lo counts them since key last took a counter
 * (a lower bound; exact when it held one since the window began), *hi
 * adds what it inherited then (Space-Saving's estimate). False, and 0 and
 * 0, when key holds no counter. Ingest thread only (tests, diagnostics).
 */
bool rg__hk_estimate(const rg__hk_t *hk, uint64_t key, uint64_t *lo,
                     uint64_t *hi);

/* T so far: the window's ended slices plus the current one. Ingest
 * thread only. */
uint64_t rg__hk_window_events(const rg__hk_t *hk);

/*
 * Copies what the last evaluating tick published: *st (when not NULL)
 * and up to max hot keys into keys (strongest first). Returns how many
 * were copied. Any thread, concurrently with the ingest thread's calls;
 * may spin while a tick is publishing (a few hundred ns), never blocks
 * the ingest thread.
 */
size_t rg__hk_snapshot(const rg__hk_t *hk, rg__hk_stats_t *st,
                       rg__hk_hot_t *keys, size_t max);

#endif /* RG_HOTKEY_H */
