/*
 * test_hotkey.c - the hot-key sketch (engine/src/core/hotkey.c):
 *   - detection quality on Zipf streams (s = 0.9, 1.1, 1.3; 10M events
 *     over 1M keys) against an exact reference: exact per-slice counts of
 *     every key with the same sliding window, fed through a plain copy of
 *     the documented rules (heat, hysteresis, anti-flap). Precision and
 *     recall are printed and must be at least 0.99, both against that
 *     reference and against the bare "share above the threshold" set;
 *   - a key that jumps to 30% of the traffic is reported within a window;
 *   - a key oscillating around the threshold changes state at most once
 *     per cool period (and does flap without it);
 *   - a weighted add equals the same number of unit adds;
 *   - the rate criterion, the max_hot bound, idle gaps, extreme keys, the
 *     hot-key set against a reference, configuration checks.
 * The snapshot read from another thread: test_hotkey_snapshot.c.
 */
#include "support/test.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotkey.h"
#include "railgun/error.h"
#include "zipf.h"

#define NKEYS 1000000u
#define NEVENTS 10000000u
#define EVENT_NS 1000ull                 /* 1M events per second */
#define WINDOW_NS 1000000000ull          /* 1M events per window */
#define SLICES RG__HK_SLICES
#define MAXH 64

/* Zipf ranks become arbitrary 64-bit keys (an odd multiplier is a
 * bijection); the reference indexes by rank. */
#define KEY_MUL 0x9E3779B97F4A7C15ull

static uint64_t key_of(uint32_t rank)
{
    return (uint64_t)rank * KEY_MUL;
}

static uint64_t mul_inverse(uint64_t a)
{
    uint64_t x = a; /* Newton: each step doubles the correct low bits */
    for (int i = 0; i < 6; i++)
        x *= 2 - a * x;
    return x;
}

static uint32_t rank_of(uint64_t key)
{
    static uint64_t inv;
    if (inv == 0)
        inv = mul_inverse(KEY_MUL);
    uint64_t r = key * inv;
    cr_assert_leq(r, NKEYS, "reported key %" PRIu64 " is no stream key", key);
    return (uint32_t)r;
}

static rg__hk_conf_t conf_of(double share, double cool, uint64_t cool_ns)
{
    rg__hk_conf_t c;
    rg__hk_conf_default(&c);
    c.window_ns = WINDOW_NS;
    c.share = share;
    c.cool_share = cool;
    c.cool_ns = cool_ns;
    c.max_hot = MAXH;
    return c;
}

static rg__hk_t *new_hk(const rg__hk_conf_t *c, uint64_t now)
{
    rg__hk_t *hk = NULL;
    int rc = rg__hk_new(&hk, c, now);
    cr_assert_eq(rc, 0, "rg__hk_new: %s", rg_strerror(rc));
    return hk;
}

/* ------------------------------------------------------------------ */
/* the exact reference                                                  */

#define SLICE_EVENTS (WINDOW_NS / SLICES / EVENT_NS)

/* The window's count of every rank; each slice's ranks are logged so the
 * slice can be taken out again when it leaves the window. */
struct exact {
    uint32_t *win;
    uint32_t *log[SLICES];   /* ring of slices */
    uint64_t tot[SLICES];
    unsigned cur;
};

static void exact_init(struct exact *x)
{
    memset(x, 0, sizeof(*x));
    for (int i = 0; i < SLICES; i++) {
        x->log[i] = malloc(SLICE_EVENTS * sizeof(uint32_t));
        cr_assert_not_null(x->log[i]);
    }
    x->win = calloc(NKEYS + 1, sizeof(uint32_t));
    cr_assert_not_null(x->win);
}

static void exact_fini(struct exact *x)
{
    for (int i = 0; i < SLICES; i++)
        free(x->log[i]);
    free(x->win);
}

static inline void exact_add(struct exact *x, uint32_t rank)
{
    cr_assert_lt(x->tot[x->cur], SLICE_EVENTS);
    x->log[x->cur][x->tot[x->cur]++] = rank;
    x->win[rank]++;
}

static uint64_t exact_total(const struct exact *x)
{
    uint64_t t = 0;
    for (int i = 0; i < SLICES; i++)
        t += x->tot[i];
    return t;
}

/* The next slice reuses the oldest one's place. */
static void exact_slide(struct exact *x)
{
    x->cur = (x->cur + 1) % SLICES;
    for (uint64_t i = 0; i < x->tot[x->cur]; i++)
        x->win[x->log[x->cur][i]]--;
    x->tot[x->cur] = 0;
}

/* The documented rules, written plainly (share criterion only). */
struct ref_key {
    uint32_t rank;
    uint64_t at_ns;   /* hot: since; cooled: when */
};

struct ref {
    rg__hk_conf_t c;
    struct ref_key hot[MAXH], cooled[MAXH];
    int nhot, ncooled;
};

static const uint32_t *sort_win; /* qsort's comparator reads counts here */

static int cmp_count_desc(const void *a, const void *b)
{
    uint32_t x = sort_win[*(const uint32_t *)a];
    uint32_t y = sort_win[*(const uint32_t *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

static bool ref_is_hot(const struct ref *r, uint32_t rank)
{
    for (int i = 0; i < r->nhot; i++)
        if (r->hot[i].rank == rank)
            return true;
    return false;
}

static bool ref_cooled(const struct ref *r, uint32_t rank)
{
    for (int i = 0; i < r->ncooled; i++)
        if (r->cooled[i].rank == rank)
            return true;
    return false;
}

/* cands: every rank whose window count passes the lowest threshold. */
static void ref_tick(struct ref *r, const struct exact *x, uint64_t now,
                     const uint32_t *cands, size_t ncands)
{
    double t = (double)exact_total(x);
    for (int i = 0; i < r->ncooled;)
        if (now - r->cooled[i].at_ns >= r->c.cool_ns)
            r->cooled[i] = r->cooled[--r->ncooled];
        else
            i++;
    for (int i = 0; i < r->nhot;) {
        uint32_t c = x->win[r->hot[i].rank];
        if ((c > 0 && (double)c >= r->c.cool_share * t) ||
            now - r->hot[i].at_ns < r->c.cool_ns) {
            i++;
            continue;
        }
        if (r->c.cool_ns > 0)
            r->cooled[r->ncooled++] =
                (struct ref_key){.rank = r->hot[i].rank, .at_ns = now};
        r->hot[i] = r->hot[--r->nhot];
    }
    uint32_t pick[MAXH * 4];
    size_t np = 0;
    for (size_t j = 0; j < ncands; j++) {
        uint32_t rank = cands[j], c = x->win[rank];
        if (c >= r->c.min_events && (double)c > r->c.share * t &&
            !ref_is_hot(r, rank) && !ref_cooled(r, rank) &&
            np < MAXH * 4)
            pick[np++] = rank;
    }
    sort_win = x->win;
    qsort(pick, np, sizeof(pick[0]), cmp_count_desc);
    for (size_t j = 0; j < np && r->nhot < (int)r->c.max_hot; j++)
        r->hot[r->nhot++] = (struct ref_key){.rank = pick[j], .at_ns = now};
}

/* ------------------------------------------------------------------ */
/* detection quality                                                    */

struct tally {
    uint64_t tp, fp, fn;      /* against the reference's hot set */
    uint64_t ttp, tfp, tfn;   /* against {share > hotkey.share} */
    uint64_t band;            /* reported keys inside [cool, share] */
};

static double ratio(uint64_t a, uint64_t b)
{
    return b == 0 ? 1.0 : (double)a / (double)b;
}

#define NCONF 6

static void quality(double s, uint64_t seed)
{
    static const double shares[3][2] = {
        {0.05, 0.04}, {0.01, 0.008}, {0.005, 0.004}};
    struct exact x;
    exact_init(&x);
    rg__hk_t *hk[NCONF];
    struct ref ref[NCONF];
    struct tally tal[NCONF];
    memset(tal, 0, sizeof(tal));
    for (int i = 0; i < NCONF; i++) {
        /* even: no cool-down; odd: 2 windows of cool-down */
        rg__hk_conf_t c = conf_of(shares[i / 2][0], shares[i / 2][1],
                                  i % 2 ? 2 * WINDOW_NS : 0);
        hk[i] = new_hk(&c, 0);
        memset(&ref[i], 0, sizeof(ref[i]));
        ref[i].c = c;
    }
    rg_rng_t rng;
    rg_zipf_t z;
    rg_rng_seed(&rng, seed);
    rg_zipf_init(&z, NKEYS, s);
    uint32_t *cands = malloc(sizeof(uint32_t) * 4096);
    cr_assert_not_null(cands);
    uint64_t next_tick = WINDOW_NS / SLICES;
    for (uint64_t i = 0; i <= NEVENTS; i++) {
        uint64_t now = i * EVENT_NS;
        if (now >= next_tick) {
            /* the slice ended: evaluate both sides, compare, slide */
            uint64_t t = exact_total(&x);
            double low = 0.004 * (double)t;
            size_t nc = 0;
            for (uint32_t r = 1; r <= NKEYS; r++)
                if ((double)x.win[r] > low && nc < 4096)
                    cands[nc++] = r;
            for (int k = 0; k < NCONF; k++) {
                const rg__hk_change_t *ch;
                rg__hk_tick(hk[k], now, &ch);
                ref_tick(&ref[k], &x, now, cands, nc);
                rg__hk_hot_t got[MAXH];
                rg__hk_stats_t st;
                size_t n = rg__hk_snapshot(hk[k], &st, got, MAXH);
                cr_assert_eq(st.window_events, t, "T is exact");
                cr_assert_eq(st.nhot, n);
                struct tally *ta = &tal[k];
                for (size_t j = 0; j < n; j++) {
                    uint32_t rank = rank_of(got[j].key);
                    if (ref_is_hot(&ref[k], rank))
                        ta->tp++;
                    else
                        ta->fp++;
                    double sh = (double)x.win[rank] / (double)t;
                    if (sh > ref[k].c.share)
                        ta->ttp++;
                    else if (sh >= ref[k].c.cool_share)
                        ta->band++;
                    else
                        ta->tfp++;
                }
                for (int j = 0; j < ref[k].nhot; j++) {
                    bool found = false;
                    for (size_t q = 0; q < n && !found; q++)
                        found = rank_of(got[q].key) == ref[k].hot[j].rank;
                    if (!found)
                        ta->fn++;
                }
                for (size_t j = 0; j < nc; j++) {
                    uint32_t rank = cands[j];
                    if ((double)x.win[rank] <= ref[k].c.share * (double)t)
                        continue;
                    bool found = false;
                    for (size_t q = 0; q < n && !found; q++)
                        found = rank_of(got[q].key) == rank;
                    if (!found)
                        ta->tfn++;
                }
            }
            exact_slide(&x);
            next_tick += WINDOW_NS / SLICES;
        }
        if (i == NEVENTS)
            break;
        uint32_t rank = (uint32_t)rg_zipf_next(&z, &rng);
        uint64_t key = key_of(rank), h = rg_hash64(key);
        exact_add(&x, rank);
        for (int k = 0; k < NCONF; k++)
            rg__hk_add_hashed(hk[k], key, h, 1);
    }
    for (int k = 0; k < NCONF; k++) {
        struct tally *ta = &tal[k];
        double p = ratio(ta->tp, ta->tp + ta->fp);
        double r = ratio(ta->tp, ta->tp + ta->fn);
        double tp = ratio(ta->ttp, ta->ttp + ta->tfp);
        double tr = ratio(ta->ttp, ta->ttp + ta->tfn);
        fprintf(stderr,
                "hotkey quality s=%.1f share=%.3f cool=%.3f cool.ms=%4" PRIu64
                ": vs reference P=%.4f R=%.4f (tp %" PRIu64 " fp %" PRIu64
                " fn %" PRIu64 "); vs share>threshold P=%.4f R=%.4f (tp %"
                PRIu64 " fp %" PRIu64 " fn %" PRIu64 ", band %" PRIu64 ")\n",
                s, ref[k].c.share, ref[k].c.cool_share,
                ref[k].c.cool_ns / 1000000, p, r, ta->tp, ta->fp, ta->fn, tp,
                tr, ta->ttp, ta->tfp, ta->tfn, ta->band);
        /* s = 0.9 has no key above 5% (the top one holds about 3.3%) */
        if (s > 1.0 || ref[k].c.share < 0.05)
            cr_assert_gt(ta->tp + ta->fn, 0, "the exact hot set is empty");
        cr_assert_geq(p, 0.99, "precision s=%.1f conf %d", s, k);
        cr_assert_geq(r, 0.99, "recall s=%.1f conf %d", s, k);
        cr_assert_geq(tp, 0.99, "threshold precision s=%.1f conf %d", s, k);
        cr_assert_geq(tr, 0.99, "threshold recall s=%.1f conf %d", s, k);
        rg__hk_destroy(hk[k]);
    }
    free(cands);
    exact_fini(&x);
}

Test(hotkey, zipf_0_9) { quality(0.9, 9); }
Test(hotkey, zipf_1_1) { quality(1.1, 11); }
Test(hotkey, zipf_1_3) { quality(1.3, 13); }

/* ------------------------------------------------------------------ */
/* a key jumps from cold to 30%                                         */

#define JUMP_EVENT_NS 5000ull /* 200k events per second */

static void jump_at(uint64_t jump_ns)
{
    rg__hk_conf_t c = conf_of(0.05, 0.04, 10 * WINDOW_NS);
    rg__hk_t *hk = new_hk(&c, 0);
    rg_rng_t rng;
    rg_zipf_t z;
    rg_rng_seed(&rng, jump_ns);
    rg_zipf_init(&z, NKEYS, 0.9);
    const uint64_t x = key_of(NKEYS); /* the coldest rank, then 30% */
    uint64_t seen_ns = 0, end = jump_ns + 2 * WINDOW_NS;
    for (uint64_t now = 0; now < end && seen_ns == 0; now += JUMP_EVENT_NS) {
        const rg__hk_change_t *ch;
        size_t n = rg__hk_tick(hk, now, &ch);
        for (size_t j = 0; j < n; j++) {
            if (ch[j].key == x) {
                cr_assert(ch[j].hot);
                cr_assert_geq(now, jump_ns, "hot before the jump");
                cr_assert_gt(ch[j].share, 0.05);
                cr_assert_eq(ch[j].since_ns, now);
                seen_ns = now;
            } else {
                cr_assert_lt(ch[j].share, 0.05 + 0.01,
                             "no other key of Zipf(0.9) reaches 5%%");
            }
        }
        bool hot = now >= jump_ns && rg_rng_below(&rng, 10) < 3;
        rg__hk_add(hk, hot ? x : key_of((uint32_t)rg_zipf_next(&z, &rng)),
                   1);
    }
    cr_assert_neq(seen_ns, 0, "jump at %" PRIu64 " ns never reported",
                  jump_ns);
    cr_assert_leq(seen_ns - jump_ns, WINDOW_NS, "reported after %" PRIu64
                  " ns", seen_ns - jump_ns);
    cr_assert(rg__hk_is_hot(hk, x));
    fprintf(stderr, "hotkey jump to 30%% at %.3f s: reported after %.3f "
            "windows\n", jump_ns / 1e9, (seen_ns - jump_ns) / (double)WINDOW_NS);
    rg__hk_destroy(hk);
}

/* just after, in the middle of and just before a slice's end, with the
 * window full and before it is */
Test(hotkey, jump_to_30_percent_within_a_window)
{
    const uint64_t sl = WINDOW_NS / SLICES;
    uint64_t at[] = {3 * WINDOW_NS + JUMP_EVENT_NS, 3 * WINDOW_NS + sl / 2,
                     4 * WINDOW_NS - JUMP_EVENT_NS, sl / 3};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        jump_at(at[i]);
}

/* ------------------------------------------------------------------ */
/* anti-flap                                                            */

/* Key x alternates between 7% and 3% of the events every 1.5 windows, so
 * its window share sweeps across both thresholds; returns its changes,
 * each time in ns into *at. */
static int oscillate(uint64_t cool_ns, uint64_t *at, int max)
{
    rg__hk_conf_t c = conf_of(0.05, 0.04, cool_ns);
    rg__hk_t *hk = new_hk(&c, 0);
    rg_rng_t rng;
    rg_rng_seed(&rng, 77);
    const uint64_t x = 42;
    int n = 0;
    /* 100k events per second */
    for (uint64_t now = 0; now < 60 * WINDOW_NS; now += 10000) {
        const rg__hk_change_t *ch;
        size_t nc = rg__hk_tick(hk, now, &ch);
        for (size_t j = 0; j < nc; j++) {
            cr_assert_eq(ch[j].key, x, "only x may change");
            cr_assert_eq(ch[j].hot, n % 2 == 0, "hot and cold alternate");
            cr_assert_lt(n, max);
            at[n++] = now;
        }
        bool high = (now / (WINDOW_NS * 3 / 2)) % 2 == 0;
        bool is_x = rg_rng_below(&rng, 100) < (high ? 7u : 3u);
        rg__hk_add(hk, is_x ? x : 1000 + rg_rng_below(&rng, 100000), 1);
    }
    rg__hk_destroy(hk);
    return n;
}

Test(hotkey, oscillating_key_changes_at_most_once_per_cool_period)
{
    uint64_t at[256];
    const uint64_t cool = 3 * WINDOW_NS;
    int n = oscillate(cool, at, 256);
    cr_assert_geq(n, 4, "x should still turn hot and cold (%d changes)", n);
    for (int i = 1; i < n; i++)
        cr_assert_geq(at[i] - at[i - 1], cool, "changes %d and %d are %"
                      PRIu64 " ns apart", i - 1, i, at[i] - at[i - 1]);
    /* without the cool-down the same stream does flap faster */
    int m = oscillate(0, at, 256);
    int fast = 0;
    for (int i = 1; i < m; i++)
        fast += at[i] - at[i - 1] < cool;
    cr_assert_gt(fast, 0, "the stream does not test anti-flap");
    fprintf(stderr, "hotkey oscillation: %d changes with cool %.0f s, %d "
            "without (%d closer than cool)\n", n, cool / 1e9, m, fast);
}

/* ------------------------------------------------------------------ */
/* weighted adds                                                        */

static void same_changes(const rg__hk_change_t *a, size_t na,
                         const rg__hk_change_t *b, size_t nb)
{
    cr_assert_eq(na, nb);
    for (size_t i = 0; i < na; i++) {
        cr_assert_eq(a[i].key, b[i].key);
        cr_assert_eq(a[i].hot, b[i].hot);
        cr_assert_eq(a[i].count, b[i].count);
        cr_assert_eq(a[i].window_events, b[i].window_events);
        cr_assert_eq(a[i].since_ns, b[i].since_ns);
    }
}

Test(hotkey, weighted_add_equals_unit_adds)
{
    rg__hk_conf_t c = conf_of(0.02, 0.015, WINDOW_NS);
    c.capacity = 64; /* small, so misses and replacements abound */
    c.min_events = 1;
    rg__hk_t *a = new_hk(&c, 0), *b = new_hk(&c, 0);
    rg_rng_t rng;
    rg_zipf_t z;
    rg_rng_seed(&rng, 5);
    rg_zipf_init(&z, 20000, 1.0);
    size_t changes = 0;
    /* the ranks move every 0.3 s, so keys keep turning hot and cold */
    uint64_t now = 0;
    for (int step = 0; step < 400000; step++) {
        now += 1 + rg_rng_below(&rng, 20000);
        const rg__hk_change_t *ca, *cb;
        size_t na = rg__hk_tick(a, now, &ca);
        size_t nb = rg__hk_tick(b, now, &cb);
        same_changes(ca, na, cb, nb);
        changes += na;
        uint64_t key = rg_zipf_next(&z, &rng) + 3 * (now / 300000000);
        uint64_t w = 1 + rg_rng_below(&rng, 50);
        rg__hk_add(a, key, w);
        for (uint64_t j = 0; j < w; j++)
            rg__hk_add(b, key, 1);
        /* weight 0 changes nothing: a's state must stay b's */
        if (step % 7 == 0)
            rg__hk_add(a, rg_zipf_next(&z, &rng) + 3 * (now / 300000000), 0);
        if (step % 1000 == 0) {
            cr_assert_eq(rg__hk_window_events(a), rg__hk_window_events(b));
            for (uint64_t k = 1; k <= 200; k++) {
                uint64_t la, ha, lb, hb;
                cr_assert_eq(rg__hk_estimate(a, k, &la, &ha),
                             rg__hk_estimate(b, k, &lb, &hb));
                cr_assert_eq(la, lb);
                cr_assert_eq(ha, hb);
            }
        }
    }
    cr_assert_gt(changes, 10, "the stream turned too few keys hot");
    rg__hk_destroy(a);
    rg__hk_destroy(b);
}

/* ------------------------------------------------------------------ */
/* the window, exactness, bounds                                        */

Test(hotkey, tracked_key_is_counted_exactly_and_slides_out)
{
    rg__hk_conf_t c = conf_of(0.05, 0.04, 0);
    rg__hk_t *hk = new_hk(&c, 0);
    const uint64_t sl = WINDOW_NS / SLICES;
    /* slice i holds i + 1 thousand events of key 9, nothing else */
    for (uint64_t i = 0; i < 8; i++) {
        rg__hk_add(hk, 9, (i + 1) * 1000);
        uint64_t lo, hi, want = 0;
        for (uint64_t j = (i >= SLICES ? i - SLICES + 1 : 0); j <= i; j++)
            want += (j + 1) * 1000;
        cr_assert(rg__hk_estimate(hk, 9, &lo, &hi));
        cr_assert_eq(lo, want, "slice %" PRIu64, i);
        cr_assert_eq(hi, want);
        cr_assert_eq(rg__hk_window_events(hk), want);
        const rg__hk_change_t *ch;
        size_t n = rg__hk_tick(hk, (i + 1) * sl, &ch);
        cr_assert_eq(n, i == 0 ? 1u : 0u, "key 9 turns hot once (%zu at "
                     "slice %" PRIu64 ")", n, i);
        if (i == 0) {
            cr_assert_eq(ch[0].count, 1000);
            cr_assert_eq(ch[0].window_events, 1000);
            cr_assert(ch[0].share == 1.0);
        }
    }
    /* an idle gap longer than the window empties it: key 9 cools */
    const rg__hk_change_t *ch;
    size_t n = rg__hk_tick(hk, 100 * sl, &ch);
    cr_assert_eq(n, 0, "the window had key 9 alone, at 100%%");
    cr_assert_eq(rg__hk_window_events(hk), 0);
    n = rg__hk_tick(hk, 101 * sl, &ch);
    cr_assert_eq(n, 1);
    cr_assert_not(ch[0].hot);
    cr_assert_eq(ch[0].count, 0);
    cr_assert_not(rg__hk_is_hot(hk, 9));
    cr_assert_eq(rg__hk_next_tick_ns(hk), 102 * sl);
    /* after the gap the slice numbers jump: keys taken in again are
     * still counted exactly, slice by slice (9 again from slice 101, 13
     * new from 103) */
    for (uint64_t i = 101; i < 109; i++) {
        rg__hk_add(hk, 9, 300);
        if (i >= 103)
            rg__hk_add(hk, 13, 700);
        uint64_t lo, hi;
        uint64_t n9 = i - 101 + 1, n13 = i >= 103 ? i - 103 + 1 : 0;
        uint64_t want9 = 300 * (n9 < SLICES ? n9 : SLICES);
        uint64_t want13 = 700 * (n13 < SLICES ? n13 : SLICES);
        cr_assert(rg__hk_estimate(hk, 9, &lo, &hi));
        cr_assert_eq(lo, want9, "key 9 in slice %" PRIu64 ": %" PRIu64, i, lo);
        cr_assert_eq(hi, want9);
        if (n13 > 0) {
            cr_assert(rg__hk_estimate(hk, 13, &lo, &hi));
            cr_assert_eq(lo, want13, "key 13 in slice %" PRIu64 ": %" PRIu64,
                         i, lo);
        }
        cr_assert_eq(rg__hk_window_events(hk), want9 + want13);
        rg__hk_tick(hk, (i + 1) * sl, &ch);
    }
    rg__hk_destroy(hk);
}

Test(hotkey, min_events_and_rate)
{
    rg__hk_conf_t c = conf_of(0.5, 0.4, 0);
    c.min_events = 100;
    c.rate = 2000; /* events/s: 2000 per 1-second window */
    rg__hk_t *hk = new_hk(&c, 0);
    const uint64_t sl = WINDOW_NS / SLICES;
    const rg__hk_change_t *ch;
    /* slice 0: key 1 has 99 of 100 events: above share, below min */
    rg__hk_add(hk, 1, 99);
    rg__hk_add(hk, 2, 1);
    cr_assert_eq(rg__hk_tick(hk, sl, &ch), 0);
    /* slices 1-4: key 3 at 10% share, 800 events per slice: after slice
     * 1, 800 in 0.5 s (1600/s); after slice 2, 1600 in 0.75 s (2133/s,
     * above 2000/s): hot by rate */
    size_t hot_at = 0;
    for (uint64_t i = 1; i <= 4; i++) {
        rg__hk_add(hk, 3, 800);
        for (uint64_t k = 0; k < 72; k++)
            rg__hk_add(hk, 100 + k + 1000 * i, 100);
        size_t n = rg__hk_tick(hk, (i + 1) * sl, &ch);
        for (size_t j = 0; j < n; j++) {
            cr_assert_eq(ch[j].key, 3);
            cr_assert_lt(ch[j].share, 0.5);
            hot_at = i;
        }
    }
    cr_assert_eq(hot_at, 2, "hot by rate in slice %zu", hot_at);
    /* rate staying: cool rate = 2000 * 0.4 / 0.5 = 1600 per second */
    for (uint64_t i = 5; i <= 12; i++) {
        rg__hk_add(hk, 3, 410); /* 1640 per window: stays */
        rg__hk_add(hk, 5, 4000);
        size_t n = rg__hk_tick(hk, (i + 1) * sl, &ch);
        for (size_t j = 0; j < n; j++)
            cr_assert_eq(ch[j].key, 5, "key 3 stays above the cool rate");
    }
    cr_assert(rg__hk_is_hot(hk, 3));
    rg__hk_destroy(hk);
}

Test(hotkey, at_most_max_hot_strongest_first)
{
    rg__hk_conf_t c = conf_of(0.1, 0.05, 0);
    c.max_hot = 2;
    rg__hk_t *hk = new_hk(&c, 0);
    /* extreme keys are keys like any other */
    uint64_t keys[4] = {0, UINT64_MAX, 12345, UINT64_MAX - 1};
    for (int i = 0; i < 4; i++)
        rg__hk_add(hk, keys[i], 2000 + 1000 * (uint64_t)i);
    const rg__hk_change_t *ch;
    size_t n = rg__hk_tick(hk, WINDOW_NS / SLICES, &ch);
    cr_assert_eq(n, 2);
    cr_assert(rg__hk_is_hot(hk, UINT64_MAX - 1));
    cr_assert(rg__hk_is_hot(hk, 12345));
    cr_assert_not(rg__hk_is_hot(hk, 0));
    cr_assert_not(rg__hk_is_hot(hk, UINT64_MAX));
    rg__hk_hot_t got[4];
    rg__hk_stats_t st;
    cr_assert_eq(rg__hk_snapshot(hk, &st, got, 4), 2);
    cr_assert_eq(got[0].key, UINT64_MAX - 1, "strongest first");
    cr_assert_eq(got[0].count, 5000);
    cr_assert_eq(got[1].key, 12345);
    cr_assert_eq(st.window_events, 14000);
    cr_assert_eq(st.turned_hot, 2);
    cr_assert_eq(st.ticks, 1);
    cr_assert_eq(rg__hk_snapshot(hk, NULL, got, 1), 1);
    uint64_t lo, hi;
    cr_assert(rg__hk_estimate(hk, 0, &lo, &hi));
    cr_assert_eq(lo, 2000);
    cr_assert_not(rg__hk_estimate(hk, 1, &lo, &hi));
    rg__hk_destroy(hk);
}

static void bad_conf(rg__hk_conf_t c, int want, const char *word)
{
    char err[128] = "";
    cr_assert_eq(rg__hk_conf_check(&c, err, sizeof(err)), want, "%s", word);
    cr_assert_not_null(strstr(err, word), "'%s' names %s", err, word);
    rg__hk_t *hk = (rg__hk_t *)&c;
    cr_assert_eq(rg__hk_new(&hk, &c, 0), want);
    cr_assert_eq(hk, (rg__hk_t *)&c, "a failed new leaves *out alone");
}

Test(hotkey, conf_checks)
{
    rg__hk_conf_t c, d;
    rg__hk_conf_default(&c);
    cr_assert_eq(rg__hk_conf_check(&c, NULL, 0), 0);
    d = c; d.share = 0;               bad_conf(d, RG_ERANGE, "hotkey.share");
    d = c; d.share = 1.5;             bad_conf(d, RG_ERANGE, "hotkey.share");
    d = c; d.cool_share = 0.06;       bad_conf(d, RG_ERANGE, "hotkey.cool.share");
    d = c; d.cool_share = -1;         bad_conf(d, RG_ERANGE, "hotkey.cool.share");
    d = c; d.window_ns = 1000;        bad_conf(d, RG_ERANGE, "hotkey.window.ms");
    d = c; d.capacity = 1000;         bad_conf(d, RG_EINVAL, "hotkey.capacity");
    d = c; d.capacity = 32;           bad_conf(d, RG_ERANGE, "hotkey.capacity");
    d = c; d.max_hot = 0;             bad_conf(d, RG_ERANGE, "hotkey.max.keys");
    d = c; d.capacity = 64; d.max_hot = 65;
    bad_conf(d, RG_ERANGE, "hotkey.max.keys");
    d = c; d.min_events = 0;          bad_conf(d, RG_ERANGE, "hotkey.min.events");
    d = c; d.rate = 2000000000000ull; bad_conf(d, RG_ERANGE, "hotkey.rate");
    d = c; d.cool_ns = 4000000000000ull;
    bad_conf(d, RG_ERANGE, "hotkey.cool.ms");
    cr_assert_eq(rg__hk_conf_check(NULL, NULL, 0), RG_EINVAL);
    rg__hk_destroy(NULL);
}

/* ------------------------------------------------------------------ */
/* the hot-key set                                                      */

/* Three keys with the same two homes cannot all sit in them: the third
 * goes to the overflow list, and every operation still holds. */
Test(hotkey, set_overflow)
{
    rg__hkset_t s;
    cr_assert_eq(rg__hkset_init(&s, 3), 0);
    cr_assert_eq(s.mask, 31);
    uint64_t k[3], pair[1024];
    int found = 0;
    for (uint64_t x = 0; x < 1024; x++)
        pair[x] = UINT64_MAX;
    for (uint64_t x = 1; found < 3; x++) {
        uint64_t h = rg_hash64(x);
        uint32_t a = rg__hkset_home_a(h, s.mask), b = rg__hkset_home_b(h, s.mask);
        uint32_t id = a * 32 + b;
        if (found == 0) {
            if (pair[id] == UINT64_MAX) {
                pair[id] = x;
                continue;
            }
            uint64_t first = pair[id];
            k[0] = first;
            k[1] = x;
            found = 2;
            /* now a third with the same homes */
            for (uint64_t y = x + 1;; y++) {
                uint64_t hy = rg_hash64(y);
                if (rg__hkset_home_a(hy, s.mask) == a &&
                    rg__hkset_home_b(hy, s.mask) == b) {
                    k[2] = y;
                    found = 3;
                    break;
                }
            }
        }
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rg__hkset_add(&s, k[i], rg_hash64(k[i])), 0);
    cr_assert_eq(s.nover, 1, "two homes, three keys");
    for (int i = 0; i < 3; i++)
        cr_assert(rg__hkset_has(&s, k[i], rg_hash64(k[i])));
    cr_assert_not(rg__hkset_has(&s, k[2] + 1, rg_hash64(k[2] + 1)));
    cr_assert_eq(rg__hkset_add(&s, k[1], rg_hash64(k[1])), RG_EEXIST);
    cr_assert_eq(rg__hkset_add(&s, 77, rg_hash64(77)), RG_EFULL);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rg__hkset_del(&s, k[i], rg_hash64(k[i])), 0);
        cr_assert_not(rg__hkset_has(&s, k[i], rg_hash64(k[i])));
        for (int j = i + 1; j < 3; j++)
            cr_assert(rg__hkset_has(&s, k[j], rg_hash64(k[j])));
    }
    cr_assert_eq(s.n, 0);
    cr_assert_eq(s.nover, 0);
    rg__hkset_fini(&s);
}

Test(hotkey, set_matches_reference)
{
    enum { SPACE = 300, MAX = 100 };
    rg__hkset_t s;
    cr_assert_eq(rg__hkset_init(&s, 0), RG_EINVAL);
    rg__hkset_fini(&s);
    cr_assert_eq(rg__hkset_init(&s, MAX), 0);
    bool in[SPACE] = {false};
    int n = 0;
    rg_rng_t rng;
    rg_rng_seed(&rng, 3);
    /* keys whose first homes are 4 of the 1024 slots (8 * MAX rounded
     * up), so most of them must displace each other into their second */
    cr_assert_eq(s.mask, 1023);
    uint64_t keys[SPACE];
    keys[0] = 0;
    keys[1] = UINT64_MAX;
    for (int i = 2, k = 1; i < SPACE; k++)
        if (rg__hkset_home_a(rg_hash64((uint64_t)k), s.mask) < 4)
            keys[i++] = (uint64_t)k;
    for (int step = 0; step < 200000; step++) {
        int i = (int)rg_rng_below(&rng, SPACE);
        uint64_t k = keys[i], h = rg_hash64(k);
        if (rg_rng_below(&rng, 2)) {
            int rc = rg__hkset_add(&s, k, h);
            int want = in[i] ? RG_EEXIST : n == MAX ? RG_EFULL : 0;
            cr_assert_eq(rc, want, "add %d", i);
            if (rc == 0) {
                in[i] = true;
                n++;
            }
        } else {
            int rc = rg__hkset_del(&s, k, h);
            cr_assert_eq(rc, in[i] ? 0 : RG_ENOENT, "del %d", i);
            if (rc == 0) {
                in[i] = false;
                n--;
            }
        }
        if (step % 97 == 0) {
            for (int j = 0; j < SPACE; j++)
                cr_assert_eq(rg__hkset_has(&s, keys[j], rg_hash64(keys[j])),
                             in[j], "member %d at step %d", j, step);
            cr_assert_eq(s.n, (uint32_t)n);
        }
    }
    rg__hk_change_t ch[2] = {
        {.key = 5, .hash = rg_hash64(5), .hot = true},
        {.key = 5, .hash = rg_hash64(5), .hot = false}};
    rg__hkset_t t;
    cr_assert_eq(rg__hkset_init(&t, 4), 0);
    cr_assert_eq(rg__hkset_apply(&t, ch, 1, 7), 0);
    cr_assert(rg__hkset_has(&t, 5, rg_hash64(5)));
    cr_assert_eq(t.epoch, 7);
    cr_assert_eq(rg__hkset_apply(&t, ch + 1, 1, 8), 0);
    cr_assert_not(rg__hkset_has(&t, 5, rg_hash64(5)));
    cr_assert_eq(t.n, 0);
    cr_assert_eq(rg__hkset_apply(&t, ch + 1, 1, 9), RG_ENOENT);
    cr_assert_eq(t.epoch, 8, "a failed apply keeps the epoch");
    rg__hkset_fini(&t);
    rg__hkset_fini(&s);
}
