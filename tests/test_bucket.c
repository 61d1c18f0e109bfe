/*
 * test_bucket.c - the local token bucket (engine/src/core/bucket.h).
 *
 * With a fake clock (deterministic): 10 s at a rate admit rate x 10 s +
 * burst within 2% and never more; the wait a refusal reports is exact to
 * the ns; an idle bucket holds exactly one burst; a rate change takes
 * effect at once and never adds a burst; the lowest limit wins; unlimited
 * and back; bad parameters change nothing. Concurrency: two threads
 * racing on a frozen clock (with a third changing the rate under them)
 * hand out exactly the burst, never a token twice; two threads on the
 * real clock never exceed rate x time + burst.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include "bucket.h"
#include "railgun/error.h"

#define SEC 1000000000ll

static uint64_t tokens_in(struct rg__bucket *b)
{
    struct rg__bucket_stats st;
    rg__bucket_stats(b, &st);
    return st.granted;
}

/* Takes bursts of 32 as fast as the fake clock allows from t0 for dur ns,
 * jumping the clock by each refusal's wait. Returns the events admitted;
 * checks every wait against the ns before it. */
static uint64_t consume(struct rg__bucket *b, struct rg__bucket_cache *c,
                        int64_t t0, int64_t dur, int64_t *t_end)
{
    uint64_t admitted = 0;
    int64_t now = t0;
    while (now < t0 + dur) {
        int64_t wait = -1;
        uint32_t got = rg__bucket_take(b, c, 32, now, &wait);
        admitted += got;
        if (got < 32) {
            cr_assert_gt(wait, 0, "a short take reports no wait");
            if (wait > 1) {
                /* a ns before the reported time: still nothing there
                 * (through the shared path, so the cache cannot hide it) */
                int64_t w2;
                cr_assert_eq(rg__bucket_take_shared(b, now + wait - 1, 1, &w2),
                             0, "a token before the reported wait");
            }
            now += wait;
            /* and at the reported time there is one */
            uint32_t one = rg__bucket_take(b, c, 1, now, NULL);
            cr_assert_eq(one, 1, "no token at the reported wait");
            admitted += one;
            /* then a little later, so that fast rates refill in chunks
             * rather than one token per step (10 us: far below a burst) */
            now += 10000;
        } else {
            cr_assert_eq(wait, 0);
        }
    }
    *t_end = now;
    return admitted;
}

Test(bucket, ten_seconds_admit_rate_times_time_plus_burst)
{
    const uint64_t rates[] = {1000, 100000, 30000000};
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        uint64_t rate = rates[i];
        struct rg__bucket b;
        cr_assert_eq(rg__bucket_init(&b), 0);
        cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LOCAL, rate, 0), 0);
        struct rg__bucket_stats st;
        rg__bucket_stats(&b, &st);
        cr_assert_eq(st.rate, rate);
        struct rg__bucket_cache c = {0};
        int64_t end;
        uint64_t got = consume(&b, &c, 0, 10 * SEC, &end);
        double ideal = (double)rate * (double)end / 1e9 + (double)st.burst;
        cr_assert_leq((double)got, ideal, "rate %llu: %llu admitted > %.0f",
                      (unsigned long long)rate, (unsigned long long)got, ideal);
        cr_assert_geq((double)got, 0.98 * ideal,
                      "rate %llu: %llu admitted < 98%% of %.0f",
                      (unsigned long long)rate, (unsigned long long)got, ideal);
        /* nothing handed out twice: the cache holds the difference */
        cr_assert_eq(tokens_in(&b), got + c.tokens);
        rg__bucket_fini(&b);
    }
}

Test(bucket, idle_bucket_holds_exactly_one_burst)
{
    struct rg__bucket b;
    cr_assert_eq(rg__bucket_init(&b), 0);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LOCAL, 10000, 0), 0);
    cr_assert_eq(rg__bucket_set_burst(&b, 500, 0), 0);
    struct rg__bucket_cache c = {0};
    for (int round = 0; round < 3; round++) {
        /* idle 1 s (and, the last time, an hour): 10000+ tokens' worth
         * of time, but the bucket holds 500 */
        int64_t now = (int64_t)(round + 1) * SEC + (round == 2 ? 3600 * SEC : 0);
        uint64_t got = 0;
        uint32_t k;
        while ((k = rg__bucket_take(&b, &c, 32, now, NULL)) == 32)
            got += k;
        got += k;
        cr_assert_eq(got, 500, "round %d: %llu tokens at one instant", round,
                     (unsigned long long)got);
    }
    /* one shared take asking for more than the burst gets the burst */
    int64_t now = 10000 * SEC;
    cr_assert_eq(rg__bucket_take_shared(&b, now, 100000, NULL), 500);
    rg__bucket_fini(&b);
}

Test(bucket, rate_change_takes_effect_at_once_and_adds_no_burst)
{
    struct rg__bucket b;
    cr_assert_eq(rg__bucket_init(&b), 0);
    cr_assert_eq(rg__bucket_set_burst(&b, 1000, 0), 0);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LEASE, 50000, 0), 0);
    struct rg__bucket_cache c = {0};
    const uint64_t rates[] = {50000, 5000, 200000, 20000};
    int64_t now = 0;
    double bound = 1000; /* one burst for the whole run */
    uint64_t total = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i > 0)
            cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LEASE, rates[i],
                                              now), 0);
        int64_t end;
        uint64_t got = consume(&b, &c, now, 2 * SEC, &end);
        double want = (double)rates[i] * (double)(end - now) / 1e9;
        /* each phase: its own rate within 2% (the burst at most once) */
        cr_assert_geq((double)got, 0.98 * want, "phase %zu: %llu < %.0f", i,
                      (unsigned long long)got, want);
        cr_assert_leq((double)got, want + 1000 + 1024, "phase %zu: %llu", i,
                      (unsigned long long)got);
        bound += want;
        total += got;
        now = end;
    }
    cr_assert_leq((double)total, bound, "%llu admitted > %.0f",
                  (unsigned long long)total, bound);

    /* drained at one instant, changes there never hand out tokens */
    rg__bucket_cache_release(&b, &c, now);
    while (rg__bucket_take_shared(&b, now, 32, NULL) != 0)
        ;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LEASE,
                                          (uint64_t)(1000 + i * 7919), now), 0);
        cr_assert_eq(rg__bucket_take_shared(&b, now, 1, NULL), 0,
                     "change %d gave a token", i);
    }
    rg__bucket_fini(&b);
}

Test(bucket, lowest_limit_wins_and_unlimited_is_free)
{
    struct rg__bucket b;
    cr_assert_eq(rg__bucket_init(&b), 0);
    struct rg__bucket_cache c = {0};
    int64_t wait = -1;
    /* unlimited: every take is granted whole, at any time */
    cr_assert_eq(rg__bucket_take(&b, &c, 1000000, 5, &wait), 1000000);
    cr_assert_eq(wait, 0);
    cr_assert_eq(rg__bucket_take_shared(&b, 5, 77, NULL), 77);
    cr_assert_eq(tokens_in(&b), 0, "unlimited takes count nothing");

    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LOCAL, 100000, 0), 0);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LEASE, 30000, 0), 0);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_ADAPTIVE, 60000, 0), 0);
    struct rg__bucket_stats st;
    rg__bucket_stats(&b, &st);
    cr_assert_eq(st.rate, 30000);
    cr_assert_eq(st.burst, 300, "auto burst: 10 ms of the rate");
    cr_assert_eq(st.limit[RG__BUCKET_ADAPTIVE], 60000);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LEASE, 0, 0), 0);
    rg__bucket_stats(&b, &st);
    cr_assert_eq(st.rate, 60000);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_ADAPTIVE, 0, 0), 0);
    rg__bucket_stats(&b, &st);
    cr_assert_eq(st.rate, 100000);
    int64_t end;
    uint64_t got = consume(&b, &c, SEC, SEC, &end);
    cr_assert_geq(got, 98000);
    cr_assert_leq(got, 100000 + 1000 + 1);

    /* back to unlimited, then limited again: starts with a full burst */
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LOCAL, 0, end), 0);
    rg__bucket_stats(&b, &st);
    cr_assert_eq(st.rate, 0);
    cr_assert_eq(rg__bucket_take(&b, &c, 5000, end, &wait), 5000);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LOCAL, 1000, end), 0);
    cr_assert_eq(rg__bucket_take_shared(&b, end, 100, NULL), 32,
                 "min(rate, 32) burst, full");
    /* tiny rates: 1 event/s, burst 1 */
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LOCAL, 1, end), 0);
    rg__bucket_stats(&b, &st);
    cr_assert_eq(st.burst, 1);
    uint64_t n = 0;
    for (int64_t t = end; t < end + 10 * SEC; t += SEC / 10)
        n += rg__bucket_take_shared(&b, t, 1, NULL);
    cr_assert(n >= 9 && n <= 11, "1/s for 10 s gave %llu", (unsigned long long)n);
    rg__bucket_fini(&b);
}

Test(bucket, bad_parameters_change_nothing)
{
    struct rg__bucket b;
    cr_assert_eq(rg__bucket_init(&b), 0);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LOCAL, 1000, 0), 0);
    struct rg__bucket_stats before, after;
    rg__bucket_stats(&b, &before);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_NLIMITS, 5, 0), RG_EINVAL);
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LEASE,
                                      RG__BUCKET_RATE_MAX + 1, 0), RG_ERANGE);
    /* more than a day of the rate as burst */
    cr_assert_eq(rg__bucket_set_burst(&b, 1000ull * 86400 + 1, 0), RG_ERANGE);
    rg__bucket_stats(&b, &after);
    cr_assert_eq(after.rate, before.rate);
    cr_assert_eq(after.burst, before.burst);
    cr_assert_eq(after.limit[RG__BUCKET_LEASE], 0);
    /* the top of the range works, and is not limiting at 1e9/s */
    cr_assert_eq(rg__bucket_set_limit(&b, RG__BUCKET_LOCAL,
                                      RG__BUCKET_RATE_MAX, 0), 0);
    rg__bucket_fini(&b);
}

/* ---- concurrency ---------------------------------------------------- */

struct race {
    struct rg__bucket b;
    pthread_barrier_t start;
    _Atomic int64_t now;        /* the shared fake clock */
    _Atomic int stop;
    uint64_t got[2];
    bool real_clock;
};

struct taker {
    struct race *r;
    int idx;
};

static void *take_loop(void *arg)
{
    struct taker *tk = arg;
    struct race *r = tk->r;
    struct rg__bucket_cache c = {0};
    uint64_t got = 0;
    pthread_barrier_wait(&r->start);
    /* relaxed: a stop flag; the join orders the results */
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        int64_t now = r->real_clock
                          ? rg__bucket_clock_ns()
                          /* relaxed: a clock value, nothing published */
                          : atomic_load_explicit(&r->now, memory_order_relaxed);
        got += rg__bucket_take(&r->b, &c, 32, now, NULL);
    }
    rg__bucket_cache_release(&r->b, &c,
                             r->real_clock ? rg__bucket_clock_ns()
                                           : atomic_load_explicit(
                                                 &r->now, memory_order_relaxed));
    r->got[tk->idx] = got;
    return NULL;
}

Test(bucket, concurrent_takes_at_one_instant_hand_out_exactly_the_burst)
{
    struct race r = {0};
    cr_assert_eq(rg__bucket_init(&r.b), 0);
    cr_assert_eq(rg__bucket_set_burst(&r.b, 100000, 0), 0);
    cr_assert_eq(rg__bucket_set_limit(&r.b, RG__BUCKET_LOCAL, 1000000, 0), 0);
    for (int round = 0; round < 20; round++) {
        /* a full bucket (an idle second later), a frozen clock */
        atomic_store(&r.now, (int64_t)(round + 1) * 10 * SEC);
        atomic_store(&r.stop, 0);
        pthread_barrier_init(&r.start, NULL, 3);
        pthread_t th[2];
        struct taker tk[2] = {{&r, 0}, {&r, 1}};
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, take_loop, &tk[i]);
        pthread_barrier_wait(&r.start);
        /* on odd rounds a setter changes the rate under the takers: a
         * change keeps the tokens available, so still exactly the burst */
        if (round % 2 == 1)
            for (int i = 0; i < 200; i++)
                cr_assert_eq(rg__bucket_set_limit(&r.b, RG__BUCKET_ADAPTIVE,
                                                  (uint64_t)(500000 + i * 1000),
                                                  atomic_load(&r.now)), 0);
        /* let them drain it (at a frozen instant nothing refills) */
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        atomic_store(&r.stop, 1);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        /* whatever the caches gave back, drain at the same instant */
        uint64_t rest = 0, k;
        while ((k = rg__bucket_take_shared(&r.b, atomic_load(&r.now), 1000,
                                           NULL)) != 0)
            rest += k;
        uint64_t total = r.got[0] + r.got[1] + rest;
        cr_assert_eq(total, 100000,
                     "round %d: %llu + %llu + %llu tokens, not the burst",
                     round, (unsigned long long)r.got[0],
                     (unsigned long long)r.got[1], (unsigned long long)rest);
        cr_assert_gt(r.got[0] + r.got[1], 0, "the takers got nothing");
        r.got[0] = r.got[1] = 0;
        pthread_barrier_destroy(&r.start);
        rg__bucket_set_limit(&r.b, RG__BUCKET_ADAPTIVE, 0, atomic_load(&r.now));
    }
    rg__bucket_fini(&r.b);
}

Test(bucket, two_threads_on_the_real_clock_stay_within_rate_times_time)
{
    struct race r = {0};
    r.real_clock = true;
    const uint64_t rate = 2000000, burst = 20000;
    cr_assert_eq(rg__bucket_init(&r.b), 0);
    cr_assert_eq(rg__bucket_set_burst(&r.b, burst, 0), 0);
    int64_t t0 = rg__bucket_clock_ns();
    cr_assert_eq(rg__bucket_set_limit(&r.b, RG__BUCKET_LOCAL, rate, t0), 0);
    pthread_barrier_init(&r.start, NULL, 3);
    pthread_t th[2];
    struct taker tk[2] = {{&r, 0}, {&r, 1}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, take_loop, &tk[i]);
    pthread_barrier_wait(&r.start);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    int64_t t1 = rg__bucket_clock_ns();
    uint64_t total = r.got[0] + r.got[1];
    double bound = (double)rate * (double)(t1 - t0) / 1e9 + (double)burst;
    cr_assert_leq((double)total, bound, "%llu > %.0f",
                  (unsigned long long)total, bound);
    /* and it is not refusing for nothing (loose: the VM may preempt us) */
    cr_assert_geq((double)total, 0.5 * bound, "%llu < half of %.0f",
                  (unsigned long long)total, bound);
    /* handed out <= granted (a cache's give-back into a bucket that
     * refilled meanwhile may drop tokens, never add) */
    cr_assert_geq(tokens_in(&r.b), total, "a token handed out twice");
    pthread_barrier_destroy(&r.start);
    rg__bucket_fini(&r.b);
}
