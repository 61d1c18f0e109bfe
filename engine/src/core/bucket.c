/*
 * bucket.c - the token bucket's out-of-line paths: the shared GCRA take
 * (one CAS), cache refills and give-backs, and the setters that rescale
 * the state into new parameters. The algorithm, the bounds and the
 * synchronization table are in bucket.h.
 *
 * Labels (bucket.h names them too):
 *   R1  setter: release CAS that installs a rescaled TAT naming slot g,
 *       after slot g was written.
 *   A1  take: acquire load (or failed CAS) of TAT; pairs with R1, so the
 *       slot TAT names is read as the setter wrote it.
 *   R2  setter: release store of cfg, after R1.
 *   A2  refill: acquire load of cfg; pairs with R2, so a refill that sees
 *       "limited" reads a TAT at least as new as the one installed with
 *       it (never the unwritten state of an unlimited bucket).
 */
#define _POSIX_C_SOURCE 200809L
#include "bucket.h"
#include <string.h>
#include <time.h>
#include "railgun/error.h"

#define GEN_MASK ((uint64_t)RG__BUCKET_GEN_MASK)
#define UNITS_PER_S (64000000000ull)   /* 1/64 ns */
#define SKEW_U ((uint64_t)RG__BUCKET_SKEW_NS << RG__BUCKET_NS_SHIFT)

static inline uint64_t to_units(int64_t now_ns)
{
    /* wraps every 2^54 ns; every use is an unsigned difference */
    return (uint64_t)now_ns << RG__BUCKET_NS_SHIFT;
}

/* Units (state units, 1/1024 ns) to whole ns, rounded up. */
static inline int64_t to_ns(uint64_t u)
{
    return (int64_t)((u + (1u << RG__BUCKET_NS_SHIFT) - 1) >>
                     RG__BUCKET_NS_SHIFT);
}

struct view {
    uint64_t t, tau, burst, chunk;
    uint64_t base;  /* max(TAT, now) */
    uint64_t debt;  /* base - now */
};

/* Interprets state word w at now_u with the slot it names. */
static inline void view_of(struct rg__bucket *b, uint64_t w, uint64_t now_u,
                           struct view *v)
{
    const struct rg__bucket_params *p = &b->slot[w & GEN_MASK];
    /* relaxed: A1 (the caller's acquire of w) made the slot visible as
     * written before R1; a slot refilled since is caught by the caller's
     * CAS or re-read of TAT */
    v->t = atomic_load_explicit(&p->t, memory_order_relaxed);
    v->tau = atomic_load_explicit(&p->tau, memory_order_relaxed);
    v->burst = atomic_load_explicit(&p->burst, memory_order_relaxed);
    v->chunk = atomic_load_explicit(&p->chunk, memory_order_relaxed);
    uint64_t vt = w & ~GEN_MASK;
    uint64_t debt = vt - now_u; /* huge when vt is behind now */
    if (debt > v->tau + SKEW_U) {
        /* idle (TAT in the past), or a stale reading: no debt */
        v->base = now_u;
        v->debt = 0;
    } else {
        v->base = vt;
        v->debt = debt;
    }
}

/*
 * Takes up to `want` tokens (at least `need`'s worth of asking: want >=
 * need >= 1) from the shared state. fill: ask for a cache chunk beyond
 * need. Returns the count (0..want); *wait_u gets the units until the
 * next token after them (0 when every token asked for was granted).
 */
static uint64_t gcra_take(struct rg__bucket *b, uint64_t now_u,
                          uint64_t need, bool fill, uint64_t *wait_u)
{
    /* acquire (A1): pairs with R1 in apply() */
    uint64_t w = atomic_load_explicit(&b->tat, memory_order_acquire);
    for (;;) {
        struct view v;
        view_of(b, w, now_u, &v);
        uint64_t want = need;
        if (fill && v.chunk > want)
            want = v.chunk;
        if (want > v.burst)
            want = v.burst;
        uint64_t room = v.tau > v.debt ? v.tau - v.debt : 0;
        uint64_t k = want * v.t <= room ? want : room / v.t;
        if (k == 0) {
            /* refused: check that w was current, so the wait is not
             * computed from a slot a setter was refilling */
            /* acquire (A1): pairs with R1 in apply() */
            uint64_t w2 = atomic_load_explicit(&b->tat, memory_order_acquire);
            if (w2 != w) {
                w = w2;
                continue;
            }
            *wait_u = v.debt + v.t - v.tau;
            return 0;
        }
        uint64_t nw = (v.base + k * v.t) | (w & GEN_MASK);
        /* acquire on failure (A1): the new w names a slot to read; the
         * success order only has to be as strong (C11); the CAS is what
         * makes two takes never hand out the same tokens */
        if (atomic_compare_exchange_weak_explicit(&b->tat, &w, nw,
                                                  memory_order_acquire,
                                                  memory_order_acquire)) {
            uint64_t after = v.debt + k * v.t + v.t;
            *wait_u = (k < need && after > v.tau) ? after - v.tau : 0;
            return k;
        }
    }
}

/* Gives `tokens` back to the shared state (never below no debt). */
static void give_back(struct rg__bucket *b, uint64_t tokens, uint64_t now_u)
{
    /* acquire (A1): pairs with R1 in apply() */
    uint64_t w = atomic_load_explicit(&b->tat, memory_order_acquire);
    for (;;) {
        struct view v;
        view_of(b, w, now_u, &v);
        if (v.debt == 0)
            return; /* full already: the tokens would overflow it */
        uint64_t back = tokens * v.t;
        if (tokens > v.burst || back > v.debt)
            back = v.debt;
        uint64_t nw = (v.base - back) | (w & GEN_MASK);
        /* acquire on failure (A1), as in gcra_take() */
        if (atomic_compare_exchange_weak_explicit(&b->tat, &w, nw,
                                                  memory_order_acquire,
                                                  memory_order_acquire)) {
            /* relaxed: a statistic */
            atomic_fetch_add_explicit(&b->returned, back / v.t,
                                      memory_order_relaxed);
            return;
        }
    }
}

uint32_t rg__bucket_take_shared(struct rg__bucket *b, int64_t now_ns,
                                uint32_t n, int64_t *wait_ns)
{
    /* acquire (A2): pairs with R2 in apply() */
    uint64_t cfg = atomic_load_explicit(&b->cfg, memory_order_acquire);
    if (cfg == 0 || n == 0) {
        if (wait_ns != NULL)
            *wait_ns = 0;
        return n;
    }
    uint64_t wait_u = 0;
    uint64_t k = gcra_take(b, to_units(now_ns), n, false, &wait_u);
    /* relaxed: statistics */
    if (k != 0)
        atomic_fetch_add_explicit(&b->granted, k, memory_order_relaxed);
    if (k < n)
        atomic_fetch_add_explicit(&b->throttled, 1, memory_order_relaxed);
    if (wait_ns != NULL)
        *wait_ns = k < n ? to_ns(wait_u) : 0;
    return (uint32_t)k;
}

uint32_t rg__bucket_refill(struct rg__bucket *b, struct rg__bucket_cache *c,
                           uint32_t n, int64_t now_ns, int64_t *wait_ns)
{
    uint64_t now_u = to_units(now_ns);
    /* acquire (A2): pairs with R2 in apply() */
    uint64_t cfg = atomic_load_explicit(&b->cfg, memory_order_acquire);
    if (wait_ns != NULL)
        *wait_ns = 0;
    if (cfg == 0) {
        /* unlimited now: cached tokens mean nothing any more (a switch
         * back to limited starts full) */
        c->tokens = 0;
        c->cfg = 0;
        return n;
    }
    if (c->cfg != cfg) {
        /* taken under other parameters: hand them back, start over */
        if (c->tokens != 0 && c->cfg != 0)
            give_back(b, c->tokens, now_u);
        c->tokens = 0;
        c->cfg = cfg;
    }
    if (c->tokens >= n) { /* a race with the fast path's check only */
        c->tokens -= n;
        return n;
    }
    uint64_t have = c->tokens, wait_u = 0;
    uint64_t k = gcra_take(b, now_u, n - have, true, &wait_u);
    /* relaxed: statistics */
    if (k != 0)
        atomic_fetch_add_explicit(&b->granted, k, memory_order_relaxed);
    uint64_t total = have + k;
    if (total >= n) {
        c->tokens = total - n;
        return n;
    }
    c->tokens = 0;
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&b->throttled, 1, memory_order_relaxed);
    if (wait_ns != NULL)
        *wait_ns = to_ns(wait_u);
    return (uint32_t)total;
}

void rg__bucket_cache_release(struct rg__bucket *b,
                              struct rg__bucket_cache *c, int64_t now_ns)
{
    /* relaxed: a stale value only makes us give back under parameters
     * that just changed, which give_back() tolerates (bounded by chunk) */
    uint64_t cfg = atomic_load_explicit(&b->cfg, memory_order_relaxed);
    if (c->tokens != 0 && c->cfg != 0 && cfg != 0)
        give_back(b, c->tokens, to_units(now_ns));
    c->tokens = 0;
    c->cfg = 0;
}

int64_t rg__bucket_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- setters -------------------------------------------------------- */

static uint64_t auto_burst(uint64_t rate)
{
    uint64_t b = rate / RG__BUCKET_AUTO_BURST_DIV;
    uint64_t floor = rate < RG__BUCKET_AUTO_BURST_MIN
                         ? rate
                         : RG__BUCKET_AUTO_BURST_MIN;
    return b > floor ? b : floor;
}

/*
 * Checks what limits + burst_conf would give, without applying it.
 * Returns 0 or RG_ERANGE; *rate (0: unlimited) and *burst get the result.
 */
static int resolve(const uint64_t *limit, uint64_t burst_conf,
                   uint64_t *rate, uint64_t *burst)
{
    uint64_t r = 0;
    for (int i = 0; i < RG__BUCKET_NLIMITS; i++)
        if (limit[i] != 0 && (r == 0 || limit[i] < r))
            r = limit[i];
    *rate = r;
    *burst = 0;
    if (r == 0)
        return 0;
    if (r > RG__BUCKET_RATE_MAX)
        return RG_ERANGE;
    uint64_t bu = burst_conf != 0 ? burst_conf : auto_burst(r);
    /* tau <= a day: burst <= rate x 86400 (no overflow: r <= 64e9) */
    if (bu > r * (RG__BUCKET_TAU_MAX_NS / 1000000000ull))
        return RG_ERANGE;
    *burst = bu;
    return 0;
}

/* Installs rate/burst (resolve()d) at now. Under b->lock. */
static void apply(struct rg__bucket *b, uint64_t rate, uint64_t burst,
                  int64_t now_ns)
{
    /* relaxed: setters are serialized by b->lock, which orders their
     * stores of cfg, the slots and wgen among themselves */
    uint64_t old_cfg = atomic_load_explicit(&b->cfg, memory_order_relaxed);
    if (rate == 0) {
        if (old_cfg != 0) {
            b->changes++;
            /* release (R2): nothing to publish; for symmetry with the
             * limited case below */
            atomic_store_explicit(&b->cfg, 0, memory_order_release);
        }
        atomic_store_explicit(&b->rate, 0, memory_order_relaxed);
        atomic_store_explicit(&b->burst, 0, memory_order_relaxed);
        return;
    }
    /* relaxed: written under b->lock only */
    if (old_cfg != 0 &&
        atomic_load_explicit(&b->rate, memory_order_relaxed) == rate &&
        atomic_load_explicit(&b->burst, memory_order_relaxed) == burst)
        return; /* unchanged: keep the caches valid */
    uint64_t t = ((UNITS_PER_S + rate - 1) / rate) << 4;
    uint64_t tau = burst * t;
    /* a quarter of the burst, at most a millisecond of the rate */
    uint64_t chunk = burst / 4;
    if (chunk > rate / 1000)
        chunk = rate / 1000;
    if (chunk == 0)
        chunk = 1;
    if (chunk > RG__BUCKET_CHUNK_MAX)
        chunk = RG__BUCKET_CHUNK_MAX;
    unsigned g = (b->wgen + 1) & RG__BUCKET_GEN_MASK;
    struct rg__bucket_params *p = &b->slot[g];
    /* relaxed: no TAT names slot g now (TAT names wgen); R1 publishes */
    atomic_store_explicit(&p->t, t, memory_order_relaxed);
    atomic_store_explicit(&p->tau, tau, memory_order_relaxed);
    atomic_store_explicit(&p->burst, burst, memory_order_relaxed);
    atomic_store_explicit(&p->chunk, chunk, memory_order_relaxed);

    uint64_t now_u = to_units(now_ns);
    /* relaxed: the slot this names was written under b->lock */
    uint64_t w = atomic_load_explicit(&b->tat, memory_order_relaxed);
    for (;;) {
        uint64_t avail;
        if (old_cfg == 0) {
            avail = burst; /* from unlimited: start full */
        } else {
            struct view v;
            view_of(b, w, now_u, &v);
            avail = v.tau > v.debt ? (v.tau - v.debt) / v.t : 0;
        }
        if (avail > burst)
            avail = burst;
        uint64_t nw = (now_u + (tau - avail * t)) | g;
        /* release (R1): slot g's stores above happen before any take
         * that reads this TAT (A1) */
        if (atomic_compare_exchange_weak_explicit(&b->tat, &w, nw,
                                                  memory_order_release,
                                                  memory_order_relaxed))
            break;
    }
    b->wgen = g;
    b->changes++;
    /* release (R2): pairs with A2; a refill that sees this cfg sees the
     * TAT installed by R1 or a later one */
    atomic_store_explicit(&b->cfg, (b->changes << 1) | 1,
                          memory_order_release);
    /* relaxed: statistics */
    atomic_store_explicit(&b->rate, rate, memory_order_relaxed);
    atomic_store_explicit(&b->burst, burst, memory_order_relaxed);
}

int rg__bucket_init(struct rg__bucket *b)
{
    memset(b, 0, sizeof(*b));
    if (pthread_mutex_init(&b->lock, NULL) != 0)
        return RG_ESYS;
    /* relaxed throughout: the bucket is not shared yet. Slot 0 holds
     * harmless parameters so that no slot is ever all zero. */
    atomic_init(&b->cfg, 0);
    atomic_init(&b->tat, 0);
    for (unsigned i = 0; i < RG__BUCKET_GENS; i++) {
        atomic_init(&b->slot[i].t, 16);
        atomic_init(&b->slot[i].tau, 16);
        atomic_init(&b->slot[i].burst, 1);
        atomic_init(&b->slot[i].chunk, 1);
    }
    return 0;
}

void rg__bucket_fini(struct rg__bucket *b)
{
    if (b != NULL)
        pthread_mutex_destroy(&b->lock);
}

int rg__bucket_set_limit(struct rg__bucket *b, enum rg__bucket_limit which,
                         uint64_t rate, int64_t now_ns)
{
    if ((unsigned)which >= RG__BUCKET_NLIMITS)
        return RG_EINVAL;
    if (rate > RG__BUCKET_RATE_MAX)
        return RG_ERANGE;
    pthread_mutex_lock(&b->lock);
    uint64_t lim[RG__BUCKET_NLIMITS];
    for (int i = 0; i < RG__BUCKET_NLIMITS; i++)
        /* relaxed: writers hold b->lock */
        lim[i] = atomic_load_explicit(&b->limit[i], memory_order_relaxed);
    lim[which] = rate;
    uint64_t r, bu;
    int rc = resolve(lim, b->burst_conf, &r, &bu);
    if (rc == 0) {
        /* relaxed: read by stats only; writers hold b->lock */
        atomic_store_explicit(&b->limit[which], rate, memory_order_relaxed);
        apply(b, r, bu, now_ns);
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int rg__bucket_set_burst(struct rg__bucket *b, uint64_t burst, int64_t now_ns)
{
    pthread_mutex_lock(&b->lock);
    uint64_t lim[RG__BUCKET_NLIMITS];
    for (int i = 0; i < RG__BUCKET_NLIMITS; i++)
        /* relaxed: writers hold b->lock */
        lim[i] = atomic_load_explicit(&b->limit[i], memory_order_relaxed);
    uint64_t r, bu;
    int rc = resolve(lim, burst, &r, &bu);
    if (rc == 0) {
        b->burst_conf = burst;
        apply(b, r, bu, now_ns);
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void rg__bucket_stats(struct rg__bucket *b, struct rg__bucket_stats *out)
{
    /* relaxed: independent counters; a snapshot, not a consistent cut */
    out->rate = atomic_load_explicit(&b->rate, memory_order_relaxed);
    out->burst = atomic_load_explicit(&b->burst, memory_order_relaxed);
    for (int i = 0; i < RG__BUCKET_NLIMITS; i++)
        out->limit[i] = atomic_load_explicit(&b->limit[i],
                                             memory_order_relaxed);
    uint64_t g = atomic_load_explicit(&b->granted, memory_order_relaxed);
    uint64_t r = atomic_load_explicit(&b->returned, memory_order_relaxed);
    out->granted = g - r;
    out->throttled = atomic_load_explicit(&b->throttled,
                                          memory_order_relaxed);
    /* acquire (A2, A1): as a refill reads them */
    out->available = 0;
    if (atomic_load_explicit(&b->cfg, memory_order_acquire) != 0) {
        uint64_t w = atomic_load_explicit(&b->tat, memory_order_acquire);
        struct view v;
        view_of(b, w, to_units(rg__bucket_clock_ns()), &v);
        if (v.t != 0 && v.tau > v.debt)
            out->available = (v.tau - v.debt) / v.t;
    }
}
