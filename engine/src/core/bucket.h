/*
 * bucket.h - the local token bucket (flow control on the ingest path).
 *
 * A bucket admits at most rate x time + burst events, shared by every
 * ingest thread of one engine, and is checked once per burst of events,
 * not per event. Rate 0 means unlimited. The rate and the burst may change
 * at any time from other threads (the Redis lease thread, the adaptive
 * controller), each of which owns one of the bucket's limits; the bucket
 * enforces the lowest.
 *
 * Algorithm: GCRA (the generic cell rate algorithm, ITU-T I.371's virtual
 * scheduling form), which keeps one word of state instead of a token
 * count and a refill time, so a take is one compare-and-swap:
 *
 *   T   = 1 / rate            time one token costs (emission interval)
 *   tau = burst x T           how far ahead of now the bucket may run
 *   TAT = theoretical arrival time: the virtual clock of the tokens
 *         handed out so far; debt = max(TAT - now, 0) <= tau
 *
 *   take k tokens at now:  ok while max(TAT, now) + k x T - now <= tau;
 *                          then TAT = max(TAT, now) + k x T
 *
 * debt / T is the number of tokens in use, (tau - debt) / T the tokens
 * available; a classic token bucket with `burst` tokens is the same
 * thing, sampled at takes.
 *
 * Per-thread token caches. Even one uncontended CAS per burst costs about
 * as much as a mutex lock, so each ingest thread keeps a small cache
 * (struct rg__bucket_cache, caller-owned, one per thread): a refill takes
 * up to `chunk` tokens from the shared bucket in one CAS (chunk = burst/4,
 * at most 1 ms of the rate and RG__BUCKET_CHUNK_MAX), and the bursts after it are served from
 * the cache with plain arithmetic and one relaxed load of a read-mostly
 * word. A cached token was granted by the shared bucket, so the bound
 * below holds whatever the caches do; what a cache changes is when a
 * token is spent (at most chunk tokens per thread late), never how many.
 *
 * Invariants and bounds
 *   - Over any run, tokens granted <= rate x elapsed + burst (+ one burst
 *     per switch from unlimited to limited, which starts full). A rate or
 *     burst change keeps the tokens available (clamped to the new burst),
 *     as a classic token bucket does, so changes never add a burst.
 *   - Events admitted in a window W <= rate x W + burst + the tokens the
 *     threads' caches held when W began (<= threads x chunk).
 *   - Time is kept in units of 1/64 ns (T = ceil(64e9 / rate) units,
 *     rounded up: the rate is never exceeded; at most 0.3% below it up to
 *     300M events/s, exact at 1e9; above 4e9/s, where the rounding costs
 *     up to 10%, a limit is only a "no practical limit"). The state word is (virtual time << 4 | generation):
 *     60 bits of virtual time wrap every 2^54 ns (208 days) and are
 *     compared by unsigned difference, so the wrap is harmless; a debt
 *     that reads larger than tau + RG__BUCKET_SKEW_NS is taken as an
 *     idle bucket (its clock long past).
 *   - rate <= RG__BUCKET_RATE_MAX; burst <= rate x 86400 s (tau <= a day).
 *   - A take never blocks, never allocates, never makes a system call
 *     (rg__bucket_take_lazy() reads CLOCK_MONOTONIC on a refill only).
 *
 * Why the generation: a parameter change rescales TAT into the new
 * parameters (keeping the tokens available), so TAT and the parameters
 * that interpret it must be read together. The parameters live in 16
 * slots; a setter fills the next slot, then installs the rescaled TAT
 * with that slot's number in its low 4 bits in one release CAS (R1). A
 * take reads TAT with acquire (A1, pairs with R1) and interprets it with
 * the slot its low bits name, so the pair is always consistent; its CAS
 * fails if TAT changed meanwhile. A take that stalls across 16 changes
 * may read a slot being refilled; its CAS (or, on a refusal, a re-read of
 * TAT) then sees TAT moved, and it retries.
 *
 * Synchronization table (may these run at the same time on one bucket?)
 *
 *                       take*, cache_release   set_limit, set_burst   stats
 *   take*, cache_release  yes (lock-free)       yes                    yes
 *   set_limit, set_burst  yes                   yes (serialized by a   yes
 *                                                mutex; not lock-free)
 *   init, fini            no                    no                     no
 *
 * A struct rg__bucket_cache belongs to one thread at a time.
 * Ordering: a take orders nothing but the token count itself; it is not a
 * synchronization point for the caller's data.
 */
#ifndef RG_BUCKET_H
#define RG_BUCKET_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RG__BUCKET_LINE 64
#define RG__BUCKET_GENS 16u            /* parameter slots: 4 bits of TAT */
#define RG__BUCKET_GEN_MASK 15u
#define RG__BUCKET_NS_SHIFT 10         /* state units per ns: 64 x 16 */
#define RG__BUCKET_RATE_MAX 64000000000ull  /* events/s: T >= 1/64 ns */
#define RG__BUCKET_TAU_MAX_NS 86400000000000ull /* one day */
#define RG__BUCKET_SKEW_NS 1000000000ull    /* how stale a caller's clock
                                               may be (1 s) */
#define RG__BUCKET_CHUNK_MAX 65536u    /* most tokens one refill caches */
#define RG__BUCKET_AUTO_BURST_MIN 32u  /* auto burst: a dispatcher burst */
#define RG__BUCKET_AUTO_BURST_DIV 100u /* ... or 10 ms of the rate */

/* Who set a limit; the bucket enforces the lowest nonzero one. */
enum rg__bucket_limit {
    RG__BUCKET_LOCAL = 0,    /* flow.rate.events.per.s */
    RG__BUCKET_LEASE,        /* the global rate's lease (Redis) */
    RG__BUCKET_ADAPTIVE,     /* the sink latency controller */
    RG__BUCKET_NLIMITS
};

/* One parameter set; written by setters only, into a slot no TAT names. */
struct rg__bucket_params {
    _Atomic uint64_t t;      /* state units per token (multiple of 16) */
    _Atomic uint64_t tau;    /* burst x t */
    _Atomic uint64_t burst;  /* tokens */
    _Atomic uint64_t chunk;  /* tokens one cache refill asks for */
};

struct rg__bucket {
    /* read-mostly, read by every take: 0 while unlimited, else
     * (change counter << 1 | 1); a cache is valid while it matches */
    alignas(RG__BUCKET_LINE) _Atomic uint64_t cfg;
    /* written by refills of every thread: virtual time << 4 | slot */
    alignas(RG__BUCKET_LINE) _Atomic uint64_t tat;
    /* read by refills; slot TAT & 15 interprets TAT */
    alignas(RG__BUCKET_LINE) struct rg__bucket_params slot[RG__BUCKET_GENS];
    /* stats: written once per refill, never by the cached fast path */
    alignas(RG__BUCKET_LINE) _Atomic uint64_t granted;  /* tokens handed
                                                          out (refills) */
    _Atomic uint64_t returned;   /* ... and given back by caches */
    _Atomic uint64_t throttled;  /* takes that got fewer than asked */
    _Atomic uint64_t rate;       /* effective rate (0: unlimited) */
    _Atomic uint64_t burst;      /* effective burst */
    _Atomic uint64_t limit[RG__BUCKET_NLIMITS]; /* as set, 0: none */
    /* setters only, under lock */
    pthread_mutex_t lock;
    uint64_t burst_conf;         /* 0: automatic */
    uint64_t changes;            /* counter in cfg */
    unsigned wgen;               /* the slot TAT names */
};

/* One ingest thread's cache of tokens. Zero it (or = {0}) before use. */
struct rg__bucket_cache {
    uint64_t cfg;     /* b->cfg when the tokens were taken */
    uint64_t tokens;  /* granted, not yet handed to the caller */
};

struct rg__bucket_stats {
    uint64_t rate;        /* effective events/s, 0: unlimited */
    uint64_t burst;       /* effective burst (tokens) */
    uint64_t limit[RG__BUCKET_NLIMITS];
    uint64_t granted;     /* tokens handed out, net of those given back
                             (includes tokens sitting in caches) */
    uint64_t throttled;   /* takes that came back short */
    uint64_t available;   /* tokens in the shared bucket now (not those
                             in caches); 0 while unlimited */
};

/* An unlimited bucket. Returns 0, or RG_ESYS when the mutex cannot be
 * made. Not thread-safe (before the bucket is shared). */
int rg__bucket_init(struct rg__bucket *b);

/* Frees what init made; NULL is fine. No take may run. */
void rg__bucket_fini(struct rg__bucket *b);

/*
 * Sets limit `which` to rate events/s (0: that source sets no limit) and
 * re-applies the lowest of the limits, keeping the tokens available
 * (clamped to the new burst). now_ns: CLOCK_MONOTONIC, as takes pass it.
 * Returns 0, RG_EINVAL (bad which), or RG_ERANGE (rate above
 * RG__BUCKET_RATE_MAX, or the burst above a day of the rate); on failure
 * nothing changes. Any thread; may block briefly on other setters.
 */
int rg__bucket_set_limit(struct rg__bucket *b, enum rg__bucket_limit which,
                         uint64_t rate, int64_t now_ns);

/*
 * Sets the burst (flow.burst.events); 0: automatic, the larger of
 * min(rate, 32) and 10 ms of the rate. Same errors, threads and
 * behaviour as rg__bucket_set_limit().
 */
int rg__bucket_set_burst(struct rg__bucket *b, uint64_t burst,
                         int64_t now_ns);

/* A snapshot of the counters and the parameters; any thread. */
void rg__bucket_stats(struct rg__bucket *b, struct rg__bucket_stats *out);

/*
 * Takes up to n tokens from the shared bucket directly (no cache): one
 * CAS when tokens are there. Returns the count granted; when it is below
 * n, *wait_ns (may be NULL) receives how long until the next token (0
 * when all n were granted). Any thread; lock-free.
 */
uint32_t rg__bucket_take_shared(struct rg__bucket *b, int64_t now_ns,
                                uint32_t n, int64_t *wait_ns);

/* The refill behind rg__bucket_take() (out of line: bucket.c). */
uint32_t rg__bucket_refill(struct rg__bucket *b, struct rg__bucket_cache *c,
                           uint32_t n, int64_t now_ns, int64_t *wait_ns);

/* Gives a cache's tokens back (a thread that stops taking), at now_ns
 * (the caller's clock, as for takes); its owner thread, or any thread
 * once the owner is gone. Tokens that would overfill the bucket are
 * dropped. */
void rg__bucket_cache_release(struct rg__bucket *b,
                              struct rg__bucket_cache *c, int64_t now_ns);

/*
 * Takes up to n tokens for one burst of events through the calling
 * thread's cache c. Returns the count granted (n when unlimited); when
 * below n, *wait_ns (may be NULL) gets how long until the next token, and
 * the caller waits that long (or pauses its source) before asking for the
 * rest; it never drops. now_ns is read only when the cache must be
 * refilled, so a caller may pass a time up to RG__BUCKET_SKEW_NS stale.
 * Thread: c's owner. Lock-free; a cached take is a relaxed load, two
 * compares and a subtraction.
 */
static inline uint32_t rg__bucket_take(struct rg__bucket *b,
                                       struct rg__bucket_cache *c,
                                       uint32_t n, int64_t now_ns,
                                       int64_t *wait_ns)
{
    /* relaxed: cfg only says whether the cache is still of the current
     * parameters; a stale read serves tokens granted before the change,
     * which the bounds above already count */
    uint64_t cfg = atomic_load_explicit(&b->cfg, memory_order_relaxed);
    if (cfg == 0) {
        if (wait_ns != NULL)
            *wait_ns = 0;
        return n;
    }
    if (cfg == c->cfg && c->tokens >= n) {
        c->tokens -= n;
        if (wait_ns != NULL)
            *wait_ns = 0;
        return n;
    }
    return rg__bucket_refill(b, c, n, now_ns, wait_ns);
}

/* CLOCK_MONOTONIC in ns (out of line: the header needs no feature
 * macros). */
int64_t rg__bucket_clock_ns(void);

/* rg__bucket_take() for a caller without a clock at hand: reads
 * CLOCK_MONOTONIC only when the cache must be refilled. */
static inline uint32_t rg__bucket_take_lazy(struct rg__bucket *b,
                                            struct rg__bucket_cache *c,
                                            uint32_t n, int64_t *wait_ns)
{
    /* relaxed: as in rg__bucket_take() */
    uint64_t cfg = atomic_load_explicit(&b->cfg, memory_order_relaxed);
    if (cfg == 0 || (cfg == c->cfg && c->tokens >= n)) {
        if (cfg != 0)
            c->tokens -= n;
        if (wait_ns != NULL)
            *wait_ns = 0;
        return n;
    }
    return rg__bucket_refill(b, c, n, rg__bucket_clock_ns(), wait_ns);
}

#endif /* RG_BUCKET_H */
