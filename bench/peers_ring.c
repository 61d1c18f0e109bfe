/*
 * peers_ring.c - SPSC transfer of 8-byte items: railgun's ring (single and
 * burst 32) against ck_ring, liburcu's wfcqueue and a mutex+condvar queue.
 * Every implementation is bounded by the same capacity; the consumer
 * verifies order, so a broken queue cannot post a good figure. Both sides
 * poll in a tight loop (no pause on empty/full), as ck's and rigtorp's
 * own ring benchmarks do; docs/benchmarks.md also shows the figures with
 * a pause, which flatters designs that re-read the other side's index.
 */
#define _GNU_SOURCE
#define _LGPL_SOURCE /* liburcu: the inline (fastest) wfcqueue */
#include <ck_ring.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <urcu/wfcqueue.h>
#include "park.h"
#include "peers.h"
#include "railgun/ring.h"

struct wnode {
    struct cds_wfcq_node node;
    uint64_t v;
};

struct rgb_ring {
    int impl;
    unsigned cap;
    pthread_t consumer;
    cpu_set_t saved;
    uint64_t produced;
    /* UINT64_MAX until close() says how many to expect */
    alignas(64) _Atomic uint64_t total;
    alignas(64) _Atomic uint64_t consumed;  /* published by the consumer */
    uint64_t cached_consumed;               /* producer's copy */
    int error;
    rg_ring_t *rg;
    struct ck_ring ck;
    struct ck_ring_buffer *ckbuf;
    struct cds_wfcq_head whead;
    struct cds_wfcq_tail wtail;
    struct wnode *pool;
    /* mutex queue */
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    uint64_t *mq;
    uint64_t mq_head, mq_tail;
    int cpu_cons;
};

void rgb_pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static inline bool want_more(struct rgb_ring *r, uint64_t got)
{
    /* relaxed: total only goes from UINT64_MAX to the final count once;
     * a stale read just means one more empty poll */
    return got < atomic_load_explicit(&r->total, memory_order_relaxed);
}

static void *consume(void *arg)
{
    struct rgb_ring *r = arg;
    rgb_pin(r->cpu_cons);
    /* locals only: the per-item state must not share a cache line with
     * anything the producer reads; one tight loop per implementation */
    uint64_t expect = 0, buf[32];
    int error = 0;
    rg_ring_t *rg = r->rg;
    struct ck_ring *ck = &r->ck;
    struct ck_ring_buffer *ckbuf = r->ckbuf;
    switch (r->impl) {
    case RGB_RING_RAILGUN:
        while (want_more(r, expect))
            if (rg_ring_pop_spsc_u64(rg, buf))
                error |= buf[0] != expect++;
        break;
    case RGB_RING_RAILGUN_BURST32:
        while (want_more(r, expect)) {
            uint32_t n = rg_ring_pop_burst_spsc_u64(rg, buf, 32);
            for (uint32_t i = 0; i < n; i++)
                error |= buf[i] != expect++;
        }
        break;
    case RGB_RING_CK:
        while (want_more(r, expect)) {
            void *p;
            if (ck_ring_dequeue_spsc(ck, ckbuf, &p))
                error |= (uint64_t)(uintptr_t)p != expect++;
        }
        break;
    case RGB_RING_URCU_WFCQ:
        while (want_more(r, expect)) {
            struct cds_wfcq_node *n =
                __cds_wfcq_dequeue_blocking(&r->whead, &r->wtail);
            if (n == NULL)
                continue;
            struct wnode *w = caa_container_of(n, struct wnode, node);
            error |= w->v != expect++;
            /* release: the producer may reuse the node after reading this
             * (its acquire in wfcq_wait_pool()) */
            atomic_store_explicit(&r->consumed, expect, memory_order_release);
        }
        break;
    case RGB_RING_MUTEX:
        while (want_more(r, expect)) {
            pthread_mutex_lock(&r->mu);
            while (r->mq_head == r->mq_tail && want_more(r, expect))
                pthread_cond_wait(&r->not_empty, &r->mu);
            if (r->mq_head != r->mq_tail) {
                bool was_full = r->mq_tail - r->mq_head == r->cap;
                error |= r->mq[r->mq_head % r->cap] != expect++;
                r->mq_head++;
                if (was_full)
                    pthread_cond_signal(&r->not_full);
            }
            pthread_mutex_unlock(&r->mu);
        }
        break;
    }
    r->error = error;
    return NULL;
}

rgb_ring *rgb_ring_open(int impl, unsigned cap, int cpu_prod, int cpu_cons)
{
    struct rgb_ring *r = aligned_alloc(64, (sizeof(*r) + 63) & ~63ul);
    memset(r, 0, sizeof(*r));
    r->impl = impl;
    r->cap = cap;
    r->cpu_cons = cpu_cons;
    atomic_init(&r->total, UINT64_MAX);
    atomic_init(&r->consumed, 0);
    switch (impl) {
    case RGB_RING_RAILGUN:
    case RGB_RING_RAILGUN_BURST32:
        r->rg = rg_ring_new(cap, sizeof(uint64_t), NULL, 0);
        break;
    case RGB_RING_CK:
        r->ckbuf = calloc(cap, sizeof(struct ck_ring_buffer));
        ck_ring_init(&r->ck, cap);
        break;
    case RGB_RING_URCU_WFCQ:
        cds_wfcq_init(&r->whead, &r->wtail);
        r->pool = calloc(cap, sizeof(struct wnode));
        break;
    case RGB_RING_MUTEX:
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->not_empty, NULL);
        pthread_cond_init(&r->not_full, NULL);
        r->mq = calloc(cap, sizeof(uint64_t));
        break;
    }
    pthread_getaffinity_np(pthread_self(), sizeof(r->saved), &r->saved);
    rgb_pin(cpu_prod);
    pthread_create(&r->consumer, NULL, consume, r);
    return r;
}

/* wfcqueue is unbounded: bound it like the others by reusing a pool of
 * `cap` nodes, and wait until the consumer is done with a node. */
static struct wnode *wfcq_wait_pool(struct rgb_ring *r, uint64_t i)
{
    while (i - r->cached_consumed >= r->cap) {
        /* acquire: pairs with the consumer's release store of consumed */
        r->cached_consumed =
            atomic_load_explicit(&r->consumed, memory_order_acquire);
    }
    return &r->pool[i % r->cap];
}

void rgb_ring_produce(rgb_ring *r, uint64_t n)
{
    uint64_t i = r->produced, end = r->produced + n;
    rg_ring_t *rg = r->rg;
    struct ck_ring *ck = &r->ck;
    struct ck_ring_buffer *ckbuf = r->ckbuf;
    switch (r->impl) {
    case RGB_RING_RAILGUN:
        while (i < end)
            if (rg_ring_push_spsc_u64(rg, &i))
                i++;
        break;
    case RGB_RING_RAILGUN_BURST32: {
        uint64_t buf[32];
        while (i < end) {
            uint32_t want = end - i < 32 ? (uint32_t)(end - i) : 32;
            for (uint32_t k = 0; k < want; k++)
                buf[k] = i + k;
            uint32_t n = rg_ring_push_burst_spsc_u64(rg, buf, want);
            i += n;
        }
        break;
    }
    case RGB_RING_CK:
        while (i < end)
            if (ck_ring_enqueue_spsc(ck, ckbuf, (void *)(uintptr_t)i))
                i++;
        break;
    case RGB_RING_URCU_WFCQ:
        for (; i < end; i++) {
            struct wnode *w = wfcq_wait_pool(r, i);
            cds_wfcq_node_init(&w->node);
            w->v = i;
            cds_wfcq_enqueue(&r->whead, &r->wtail, &w->node);
        }
        break;
    case RGB_RING_MUTEX:
        for (; i < end; i++) {
            pthread_mutex_lock(&r->mu);
            while (r->mq_tail - r->mq_head == r->cap)
                pthread_cond_wait(&r->not_full, &r->mu);
            bool was_empty = r->mq_tail == r->mq_head;
            r->mq[r->mq_tail % r->cap] = i;
            r->mq_tail++;
            if (was_empty)
                pthread_cond_signal(&r->not_empty);
            pthread_mutex_unlock(&r->mu);
        }
        break;
    }
    r->produced = end;
}

int rgb_ring_close(rgb_ring *r)
{
    if (r->impl == RGB_RING_MUTEX)
        pthread_mutex_lock(&r->mu);
    /* relaxed: the consumer only compares against it */
    atomic_store_explicit(&r->total, r->produced, memory_order_relaxed);
    if (r->impl == RGB_RING_MUTEX) {
        pthread_cond_signal(&r->not_empty);
        pthread_mutex_unlock(&r->mu);
    }
    pthread_join(r->consumer, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof(r->saved), &r->saved);
    int err = r->error;
    rg_ring_destroy(r->rg);
    free(r->ckbuf);
    free(r->pool);
    free(r->mq);
    if (r->impl == RGB_RING_MUTEX) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->not_empty);
        pthread_cond_destroy(&r->not_full);
    }
    free(r);
    return err ? -1 : 0;
}
