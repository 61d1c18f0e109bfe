/*
 * peers_flow.c - the flow-control check on the ingest path: railgun's
 * token bucket (engine/src/core/bucket.h) against a mutex-guarded classic
 * token bucket (a token count in a double and the last refill time, as
 * Guava's RateLimiter and most hand-written limiters keep it).
 *
 * One item = one event; events come in bursts of 32 and each burst is one
 * check (the _per_event peer checks every event). The rate is set far
 * above what the loop can do (32e9 events/s) so the figure is the cost of
 * the check itself, never the limit; close() fails the run if any check
 * was refused. Time: the caller passes it, from a fake clock that moves
 * The main pair reads CLOCK_MONOTONIC inside the check, as each design
 * needs it: the classic bucket on every check (it refills from the time
 * elapsed), railgun's lazy take only when it refills its thread's cache
 * (one check in thousands at high rates). The _given_time pair isolates
 * the check itself: the caller passes the time from a fake clock that
 * moves 32 ns per burst, so reading it costs nothing and both designs see
 * the same times.
 *
 * _mt2: two threads (CPUs 0 and 1) check against one bucket at once.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include "bucket.h"
#include "park.h"
#include "peers.h"

#define BURST 32
#define RATE 32000000000.0 /* events/s: never the limit here */

struct mutex_bucket {
    pthread_mutex_t mu;
    double tokens, burst, per_ns;
    int64_t last;
};

struct rgb_flow {
    int impl;
    int threads;
    struct rg__bucket b;
    struct mutex_bucket mb;
    /* helper thread (mt2): runs the same loop on CPU 1 */
    pthread_t helper;
    alignas(64) _Atomic uint64_t go;    /* run number to do */
    _Atomic uint64_t done;               /* run number finished */
    _Atomic int quit;
    uint64_t helper_n;                   /* events per run for the helper */
    uint64_t admitted[2];
    int64_t clock[2];                    /* each thread's fake clock */
    /* each thread's token cache, on its own line */
    struct {
        alignas(64) struct rg__bucket_cache c;
    } cache[2];
    int refused;
};

static inline bool mutex_take(struct mutex_bucket *m, uint32_t n, int64_t now)
{
    pthread_mutex_lock(&m->mu);
    double t = m->tokens;
    if (now > m->last) {
        t += (double)(now - m->last) * m->per_ns;
        m->last = now;
    }
    if (t > m->burst)
        t = m->burst;
    bool ok = t >= n;
    m->tokens = ok ? t - n : t;
    pthread_mutex_unlock(&m->mu);
    return ok;
}

static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool own_clock(int impl)
{
    return impl == RGB_FLOW_RAILGUN || impl == RGB_FLOW_MUTEX ||
           impl == RGB_FLOW_RAILGUN_MT2 || impl == RGB_FLOW_MUTEX_MT2;
}

/* One loop per design, each its own function so that no design's
 * registers are spent on another's locals. Each returns the events
 * admitted; `now` is the fake clock (moved 32 ns per burst). */
#define NOINLINE __attribute__((noinline))
#define KEEP(x) __asm__ volatile("" : "+r"(x))

static NOINLINE uint64_t loop_none(uint64_t bursts)
{
    uint64_t admitted = 0;
    for (uint64_t i = 0; i < bursts; i++) {
        admitted += BURST;
        KEEP(admitted);
    }
    return admitted;
}

static NOINLINE uint64_t loop_railgun_given(struct rg__bucket *b,
                                            struct rg__bucket_cache *c,
                                            uint64_t bursts, int64_t *now)
{
    uint64_t admitted = 0;
    int64_t t = *now;
    for (uint64_t i = 0; i < bursts; i++) {
        t += BURST;
        admitted += rg__bucket_take(b, c, BURST, t, NULL);
        KEEP(admitted);
    }
    *now = t;
    return admitted;
}

static NOINLINE uint64_t loop_railgun_lazy(struct rg__bucket *b,
                                           struct rg__bucket_cache *c,
                                           uint64_t bursts)
{
    uint64_t admitted = 0;
    for (uint64_t i = 0; i < bursts; i++) {
        admitted += rg__bucket_take_lazy(b, c, BURST, NULL);
        KEEP(admitted);
    }
    return admitted;
}

static NOINLINE uint64_t loop_railgun_shared(struct rg__bucket *b,
                                             uint64_t bursts, int64_t *now)
{
    uint64_t admitted = 0;
    int64_t t = *now;
    for (uint64_t i = 0; i < bursts; i++) {
        t += BURST;
        admitted += rg__bucket_take_shared(b, t, BURST, NULL);
        KEEP(admitted);
    }
    *now = t;
    return admitted;
}

static NOINLINE uint64_t loop_mutex_given(struct mutex_bucket *m,
                                          uint64_t bursts, int64_t *now)
{
    uint64_t admitted = 0;
    int64_t t = *now;
    for (uint64_t i = 0; i < bursts; i++) {
        t += BURST;
        admitted += mutex_take(m, BURST, t) ? BURST : 0;
        KEEP(admitted);
    }
    *now = t;
    return admitted;
}

static NOINLINE uint64_t loop_mutex_clock(struct mutex_bucket *m,
                                          uint64_t bursts)
{
    uint64_t admitted = 0;
    for (uint64_t i = 0; i < bursts; i++) {
        admitted += mutex_take(m, BURST, mono_ns()) ? BURST : 0;
        KEEP(admitted);
    }
    return admitted;
}

static NOINLINE uint64_t loop_mutex_per_event(struct mutex_bucket *m,
                                              uint64_t bursts, int64_t *now)
{
    uint64_t admitted = 0;
    int64_t t = *now;
    for (uint64_t i = 0; i < bursts; i++) {
        t += BURST;
        for (int e = 0; e < BURST; e++)
            admitted += mutex_take(m, 1, t);
        KEEP(admitted);
    }
    *now = t;
    return admitted;
}

/* One thread's share of a run: n events in bursts of 32. The thread's
 * token cache lives in its slot of f, as a dispatcher's would in the
 * dispatcher. */
static void run_loop(struct rgb_flow *f, int who, uint64_t n)
{
    uint64_t admitted = 0, bursts = n / BURST;
    int64_t *now = &f->clock[who];
    struct rg__bucket_cache *c = &f->cache[who].c;
    switch (f->impl) {
    case RGB_FLOW_NONE:
        admitted = loop_none(bursts);
        break;
    case RGB_FLOW_RAILGUN_GIVEN:
    case RGB_FLOW_RAILGUN_UNLIMITED:
        admitted = loop_railgun_given(&f->b, c, bursts, now);
        break;
    case RGB_FLOW_RAILGUN:
    case RGB_FLOW_RAILGUN_MT2:
        admitted = loop_railgun_lazy(&f->b, c, bursts);
        break;
    case RGB_FLOW_RAILGUN_SHARED:
        admitted = loop_railgun_shared(&f->b, bursts, now);
        break;
    case RGB_FLOW_MUTEX_GIVEN:
        admitted = loop_mutex_given(&f->mb, bursts, now);
        break;
    case RGB_FLOW_MUTEX:
    case RGB_FLOW_MUTEX_MT2:
        admitted = loop_mutex_clock(&f->mb, bursts);
        break;
    case RGB_FLOW_MUTEX_PER_EVENT:
        admitted = loop_mutex_per_event(&f->mb, bursts, now);
        break;
    }
    f->admitted[who] += admitted;
    if (admitted != bursts * BURST)
        f->refused = 1;
}

static void *helper_main(void *arg)
{
    struct rgb_flow *f = arg;
    rgb_pin(1);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        /* acquire: pairs with the release in rgb_flow_run(); helper_n
         * is set before it */
        while ((g = atomic_load_explicit(&f->go, memory_order_acquire)) ==
               seen) {
            /* relaxed: a stop flag */
            if (atomic_load_explicit(&f->quit, memory_order_relaxed))
                return NULL;
            rg__cpu_relax();
        }
        seen = g;
        run_loop(f, 1, f->helper_n);
        /* release: our admitted count happens before run() reads it */
        atomic_store_explicit(&f->done, g, memory_order_release);
    }
}

rgb_flow *rgb_flow_open(int impl)
{
    struct rgb_flow *f = aligned_alloc(64, sizeof(*f));
    if (f == NULL)
        return NULL;
    *f = (struct rgb_flow){0};
    f->impl = impl;
    f->threads = (impl == RGB_FLOW_RAILGUN_MT2 || impl == RGB_FLOW_MUTEX_MT2)
                     ? 2 : 1;
    if (rg__bucket_init(&f->b) != 0) {
        free(f);
        return NULL;
    }
    int64_t t0 = 1000000000;
    f->clock[0] = f->clock[1] = t0;
    if (impl != RGB_FLOW_RAILGUN_UNLIMITED && impl != RGB_FLOW_NONE)
        rg__bucket_set_limit(&f->b, RG__BUCKET_LOCAL, (uint64_t)RATE,
                             own_clock(impl) ? rg__bucket_clock_ns() : t0);
    pthread_mutex_init(&f->mb.mu, NULL);
    f->mb.burst = RATE / 100;
    f->mb.tokens = f->mb.burst;
    f->mb.per_ns = RATE / 1e9;
    f->mb.last = own_clock(impl) ? mono_ns() : t0;
    rgb_pin(0);
    if (f->threads == 2)
        pthread_create(&f->helper, NULL, helper_main, f);
    return f;
}

void rgb_flow_run(rgb_flow *f, uint64_t n)
{
    if (f->threads == 1) {
        run_loop(f, 0, n);
        return;
    }
    f->helper_n = n / 2;
    /* relaxed: only this thread writes go */
    uint64_t g = atomic_load_explicit(&f->go, memory_order_relaxed) + 1;
    /* release: pairs with the acquire in helper_main() */
    atomic_store_explicit(&f->go, g, memory_order_release);
    run_loop(f, 0, n - n / 2);
    /* acquire: pairs with the helper's release store of done */
    while (atomic_load_explicit(&f->done, memory_order_acquire) != g)
        rg__cpu_relax();
}

int rgb_flow_close(rgb_flow *f, uint64_t expected)
{
    if (f->threads == 2) {
        /* relaxed: the join orders everything after */
        atomic_store_explicit(&f->quit, 1, memory_order_relaxed);
        pthread_join(f->helper, NULL);
    }
    for (int i = 0; i < 2; i++)
        rg__bucket_cache_release(&f->b, &f->cache[i].c,
                                 own_clock(f->impl) ? rg__bucket_clock_ns()
                                                    : f->clock[i]);
    struct rg__bucket_stats st;
    rg__bucket_stats(&f->b, &st);
    int bad = f->refused || st.throttled != 0 ||
              f->admitted[0] + f->admitted[1] != expected;
    pthread_mutex_destroy(&f->mb.mu);
    rg__bucket_fini(&f->b);
    free(f);
    /* let the next suite run anywhere again */
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int i = 0; i < CPU_SETSIZE; i++)
        CPU_SET(i, &all);
    pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
    return bad ? -1 : 0;
}
