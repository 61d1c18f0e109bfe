/*
 * test_ring.c - rg_ring: exactly-once in-order delivery across two threads,
 * burst/single mixes, tiny capacities, counter wrap-around, bad geometry.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <pthread.h>
#include <stdlib.h>
#include "railgun/railgun.h"
#include "zipf.h"

struct xfer {
    rg_ring_t *r;
    uint64_t n;
    uint32_t max_burst;
    pthread_barrier_t *start;
    uint64_t bad_at;      /* first index that arrived wrong, or UINT64_MAX */
    uint64_t received;
};

/* Producer: values 0..n-1, alternating single pushes and random bursts. */
static void *producer(void *arg)
{
    struct xfer *x = arg;
    rg_rng_t rng;
    rg_rng_seed(&rng, 42);
    uint64_t buf[64];
    pthread_barrier_wait(x->start);
    for (uint64_t next = 0; next < x->n;) {
        if (rg_rng_next(&rng) & 1) {
            if (rg_ring_push_spsc_u64(x->r, &next))
                next++;
        } else {
            uint32_t want = 1 + (uint32_t)rg_rng_below(&rng, x->max_burst);
            if (want > x->n - next)
                want = (uint32_t)(x->n - next);
            for (uint32_t i = 0; i < want; i++)
                buf[i] = next + i;
            next += rg_ring_push_burst_spsc_u64(x->r, buf, want);
        }
    }
    return NULL;
}

/* Consumer: checks every value arrives once, in order. */
static void *consumer(void *arg)
{
    struct xfer *x = arg;
    rg_rng_t rng;
    rg_rng_seed(&rng, 7);
    uint64_t buf[64], expect = 0;
    x->bad_at = UINT64_MAX;
    pthread_barrier_wait(x->start);
    while (expect < x->n) {
        uint32_t got;
        if (rg_rng_next(&rng) & 1) {
            got = rg_ring_pop_spsc_u64(x->r, buf) ? 1 : 0;
        } else {
            uint32_t want = 1 + (uint32_t)rg_rng_below(&rng, x->max_burst);
            got = rg_ring_pop_burst_spsc_u64(x->r, buf, want);
        }
        for (uint32_t i = 0; i < got; i++, expect++)
            if (buf[i] != expect && x->bad_at == UINT64_MAX)
                x->bad_at = expect;
    }
    x->received = expect;
    return NULL;
}

static void transfer(uint32_t capacity, uint64_t n, uint32_t max_burst)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    struct xfer x = {.r = rg_ring_new(capacity, sizeof(uint64_t), NULL, 0), .n = n,
                     .max_burst = max_burst, .start = &start};
    cr_assert_not_null(x.r);
    pthread_t p, c;
    pthread_create(&c, NULL, consumer, &x);
    pthread_create(&p, NULL, producer, &x);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    cr_assert_eq(x.bad_at, UINT64_MAX, "item %llu arrived out of order",
                 (unsigned long long)x.bad_at);
    cr_assert_eq(x.received, n);
    cr_assert_eq(rg_ring_count(x.r), 0, "ring not empty after transfer");
    uint64_t v = 0;
    cr_assert_not(rg_ring_pop_spsc_u64(x.r, &v), "extra item");
    rg_ring_destroy(x.r);
    pthread_barrier_destroy(&start);
}

Test(ring, ten_million_items_once_in_order_mixed_calls, .timeout = 300)
{
    transfer(1024, 10000000, 64);
}

Test(ring, wraps_at_capacity_2, .timeout = 300)
{
    transfer(2, 1000000, 8);
}

Test(ring, wraps_at_capacity_4, .timeout = 300)
{
    transfer(4, 1000000, 8);
}

Test(ring, full_and_empty_single_thread)
{
    rg_ring_t *r = rg_ring_new(8, sizeof(uint64_t), NULL, 0);
    uint64_t v = 0, buf[16] = {0};
    cr_assert_not(rg_ring_pop_spsc_u64(r, &v), "pop from empty ring");
    cr_assert_eq(rg_ring_pop_burst_spsc_u64(r, buf, 4), 0);
    for (uint64_t i = 0; i < 8; i++)
        cr_assert(rg_ring_push_spsc_u64(r, &i), "push %llu of 8",
                  (unsigned long long)i);
    cr_assert_not(rg_ring_push_spsc_u64(r, &v), "push into full ring");
    cr_assert_eq(rg_ring_push_burst_spsc_u64(r, buf, 4), 0);
    cr_assert_eq(rg_ring_count(r), 8);
    cr_assert_eq(rg_ring_pop_burst_spsc_u64(r, buf, 3), 3);
    cr_assert_eq(buf[0], 0);
    cr_assert_eq(buf[2], 2);
    /* only 3 free: a burst of 5 moves 3 and says so */
    uint64_t more[5] = {100, 101, 102, 103, 104};
    cr_assert_eq(rg_ring_push_burst_spsc_u64(r, more, 5), 3);
    cr_assert_eq(rg_ring_pop_burst_spsc_u64(r, buf, 16), 8);
    uint64_t want[8] = {3, 4, 5, 6, 7, 100, 101, 102};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(buf[i], want[i], "slot %d", i);
    rg_ring_destroy(r);
}

Test(ring, counters_wrap_past_uint32_max)
{
    rg_ring_t *r = rg_ring_new(4, sizeof(uint64_t), NULL, 0);
    /* start both sides just below the 32-bit wrap point */
    uint32_t start = UINT32_MAX - 5;
    atomic_store(&r->head, start);
    atomic_store(&r->tail, start);
    r->prod.head = r->cons.tail = start;
    r->prod.cached_tail = r->cons.cached_head = start;
    uint64_t v = 0, next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        while (rg_ring_push_spsc_u64(r, &next_in))
            next_in++;
        cr_assert_eq(rg_ring_count(r), 4, "round %d: full ring holds 4",
                     round);
        for (int k = 0; k < 3; k++) {
            cr_assert(rg_ring_pop_spsc_u64(r, &v));
            cr_assert_eq(v, next_out++, "round %d", round);
        }
    }
    while (rg_ring_pop_spsc_u64(r, &v))
        cr_assert_eq(v, next_out++);
    cr_assert_eq(next_in, next_out);
    rg_ring_destroy(r);
}

Test(ring, lazy_tail_never_hides_the_last_free_slots)
{
    /* single pops publish the tail once per cache line of slots; once the
     * consumer has drained everything it knows of, all space is free */
    rg_ring_t *r = rg_ring_new(16, sizeof(uint64_t), NULL, 0);
    uint64_t v = 0;
    for (uint64_t i = 0; i < 16; i++)
        cr_assert(rg_ring_push_spsc_u64(r, &i));
    for (int i = 0; i < 3; i++)
        cr_assert(rg_ring_pop_spsc_u64(r, &v));
    /* capacity 16: the tail is published every 4 single pops (a cache
     * line of u64 slots is 8, capped at a quarter of the ring) */
    cr_assert_eq(rg_ring_count(r), 16, "3 pops must not be published yet");
    cr_assert_not(rg_ring_push_spsc_u64(r, &v), "producer saw hidden space");
    cr_assert(rg_ring_pop_spsc_u64(r, &v));
    cr_assert_eq(rg_ring_count(r), 12, "the 4th pop publishes the tail");
    for (int i = 4; i < 16; i++)
        cr_assert(rg_ring_pop_spsc_u64(r, &v));
    cr_assert_eq(rg_ring_count(r), 0, "drained ring must publish its tail");
    for (uint64_t i = 0; i < 16; i++)
        cr_assert(rg_ring_push_spsc_u64(r, &i), "slot %llu hidden",
                  (unsigned long long)i);
    rg_ring_destroy(r);
}

Test(ring, rejects_bad_geometry)
{
    cr_assert_null(rg_ring_new(0, 8, NULL, 0));
    cr_assert_null(rg_ring_new(1, 8, NULL, 0));
    cr_assert_null(rg_ring_new(3, 8, NULL, 0));
    cr_assert_null(rg_ring_new(RG_RING_CAPACITY_MAX * 2u, 8, NULL, 0));
    cr_assert_null(rg_ring_new(16, 0, NULL, 0));
    rg_ring_t r;
    uint64_t slots[4];
    cr_assert_eq(rg_ring_init(&r, slots, 3, 8), RG_EINVAL);
    cr_assert_eq(rg_ring_init(&r, NULL, 4, 8), RG_EINVAL);
    cr_assert_eq(rg_ring_init(&r, slots, 4, 8), 0);
    rg_ring_destroy(NULL);
}

RG_RING_PROTOTYPE(ev, rg_event_t)

Test(ring, sixty_four_byte_events_keep_every_field)
{
    cr_assert_eq(sizeof(rg_event_t), 64);
    rg_ring_t *r = rg_ring_new(16, sizeof(rg_event_t), NULL, 0);
    rg_event_t in[10], out[10];
    for (int i = 0; i < 10; i++) {
        memset(&in[i], 0, sizeof(in[i]));
        in[i].key = (uint64_t)i * 0x100000001ull;
        in[i].offset = INT64_MAX - i;
        in[i].partition = -i;
        in[i].len = 32;
        memset(in[i].data.bytes, 'a' + i, 32);
    }
    cr_assert_eq(rg_ring_push_burst_spsc_ev(r, in, 10), 10);
    cr_assert_eq(rg_ring_pop_burst_spsc_ev(r, out, 10), 10);
    cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
    rg_ring_destroy(r);
}

Test(ring, single_pops_do_not_slip_behind_a_sparse_producer)
{
    /* 4096 x 8 bytes: single pops would slip 128 items behind a busy
     * producer. One item at a time, or a few with nothing arriving during
     * the wait, must leave the consumer taking items as they come. */
    rg_ring_t *r = rg_ring_new(4096, sizeof(uint64_t), NULL, 0);
    cr_assert_not_null(r);
    cr_assert_eq(r->cons.slip, 128);
    uint64_t v = 0, next = 0, expect = 0;
    for (int i = 0; i < 1000; i++) {
        cr_assert(rg_ring_push_spsc_u64(r, &next));
        next++;
        cr_assert(rg_ring_pop_spsc_u64(r, &v));
        cr_assert_eq(v, expect++);
        cr_assert_not(r->cons.streaming, "one item at a time: no slip");
    }
    cr_assert_eq(r->cons.slips, 0u, "waited for a one-at-a-time producer");
    for (int i = 0; i < 10; i++, next++)
        cr_assert(rg_ring_push_spsc_u64(r, &next));
    while (rg_ring_pop_spsc_u64(r, &v))
        cr_assert_eq(v, expect++);
    cr_assert_eq(expect, next);
    /* ten at once look like a stream: one wait, which brought nothing */
    cr_assert_eq(r->cons.slips, 1u);
    cr_assert_not(r->cons.streaming, "nothing came during the wait");
    for (int i = 0; i < 100; i++, next++) {
        cr_assert(rg_ring_push_spsc_u64(r, &next));
        cr_assert(rg_ring_pop_spsc_u64(r, &v));
        cr_assert_eq(v, expect++);
    }
    cr_assert_eq(r->cons.slips, 1u, "the wait did not turn itself off");
    rg_ring_destroy(r);
}

Test(ring, burst_pops_slip_only_behind_a_streaming_producer)
{
    rg_ring_t *r = rg_ring_new(4096, sizeof(uint64_t), NULL, 0);
    cr_assert_not_null(r);
    uint64_t buf[32], next = 0, expect = 0;
    /* a sparse producer: a few items per pop, never a whole burst */
    for (int i = 0; i < 1000; i++) {
        for (int k = 0; k < 3; k++, next++)
            cr_assert(rg_ring_push_spsc_u64(r, &next));
        cr_assert_eq(rg_ring_pop_burst_spsc_u64(r, buf, 32), 3u);
        for (int k = 0; k < 3; k++)
            cr_assert_eq(buf[k], expect++);
    }
    cr_assert_eq(r->cons.slips, 0u, "waited for a sparse producer");
    /* a whole burst was waiting: the producer streams, so the next short
     * pop waits once; nothing came meanwhile, so the wait turns off */
    for (int k = 0; k < 40; k++, next++)
        cr_assert(rg_ring_push_spsc_u64(r, &next));
    cr_assert_eq(rg_ring_pop_burst_spsc_u64(r, buf, 32), 32u);
    cr_assert(r->cons.streaming);
    for (int k = 0; k < 32; k++)
        cr_assert_eq(buf[k], expect++);
    cr_assert_eq(rg_ring_pop_burst_spsc_u64(r, buf, 32), 8u);
    cr_assert_eq(r->cons.slips, 1u);
    cr_assert_not(r->cons.streaming, "nothing came during the wait");
    for (int k = 0; k < 8; k++)
        cr_assert_eq(buf[k], expect++);
    cr_assert_eq(rg_ring_pop_burst_spsc_u64(r, buf, 32), 0u);
    cr_assert_eq(r->cons.slips, 1u, "the wait did not turn itself off");
    cr_assert_eq(expect, next);
    rg_ring_destroy(r);
}
