/*
 * peers_ack.c - the ACK tracker against the reference system's first
 * design: a mutex-protected ordered linked list of in-flight events whose
 * head is ACKed once done. Same completion order for both: 1M offsets,
 * each completed at a random point within a 4096-offset window. One item
 * = begin + done + advance (a watermark read after every completion).
 * The list is given its best case: each event carries its node, so done()
 * needs no search, and nodes come from a free list kept under the same
 * lock (malloc per node made its figure depend on the heap state earlier
 * suites left: 14M to 35M/s). The _mt variants complete on two threads (the source
 * thread begins and hands offsets over SPSC rings), where the list's one
 * lock is contended as it was in the reference system.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include "park.h"
#include "peers.h"
#include "railgun/ack.h"
#include "railgun/error.h"
#include "railgun/ring.h"

RG_RING_PROTOTYPE(off, int64_t)

/* ---- railgun, one thread ------------------------------------------------ */

struct rgb_ack {
    int impl;
    rg_ack_t *a;
    uint64_t base;        /* offsets of this run start here */
    int64_t begun;
    /* ordered list */
    pthread_mutex_t mu;
    struct lnode *head, *tail;
    struct lnode *pool, *free_nodes; /* node storage, free list */
    struct lnode **nodes; /* [n]: what an event would carry */
    uint64_t n;
    /* mt */
    rg_ring_t *rings[2];
    pthread_t th[2];
    _Atomic int stop;
};

struct lnode {
    int64_t offset;
    bool done;
    struct lnode *next;
};

rgb_ack *rgb_ack_open(int impl, uint64_t n)
{
    struct rgb_ack *b = calloc(1, sizeof(*b));
    b->impl = impl;
    b->a = rg_ack_new(4096, 0, NULL, 0);
    pthread_mutex_init(&b->mu, NULL);
    b->nodes = calloc(n, sizeof(*b->nodes));
    b->n = n;
    /* at most a window of nodes is live; 8192 leaves room for the _mt
     * variants' hand-off lag */
    b->pool = calloc(8192, sizeof(*b->pool));
    for (int i = 0; i < 8192; i++) {
        b->pool[i].next = b->free_nodes;
        b->free_nodes = &b->pool[i];
    }
    return b;
}

static void list_begin(struct rgb_ack *b, int64_t o, uint64_t idx)
{
    pthread_mutex_lock(&b->mu);
    struct lnode *nd = b->free_nodes;
    b->free_nodes = nd->next;
    nd->offset = o;
    nd->done = false;
    nd->next = NULL;
    if (b->tail)
        b->tail->next = nd;
    else
        b->head = nd;
    b->tail = nd;
    pthread_mutex_unlock(&b->mu);
    b->nodes[idx] = nd;
}

/* done + advance: ACK the head while it is done; returns the watermark */
static int64_t list_done(struct rgb_ack *b, struct lnode *nd, int64_t next)
{
    pthread_mutex_lock(&b->mu);
    nd->done = true;
    while (b->head != NULL && b->head->done) {
        struct lnode *h = b->head;
        b->head = h->next;
        if (b->head == NULL)
            b->tail = NULL;
        h->next = b->free_nodes;
        b->free_nodes = h;
    }
    int64_t wm = b->head ? b->head->offset : next;
    pthread_mutex_unlock(&b->mu);
    return wm;
}

static int64_t list_watermark(struct rgb_ack *b)
{
    pthread_mutex_lock(&b->mu);
    int64_t wm = b->head ? b->head->offset : b->begun;
    pthread_mutex_unlock(&b->mu);
    return wm;
}

static void *mt_complete(void *arg)
{
    void **args = arg;
    struct rgb_ack *b = args[0];
    rg_ring_t *r = args[1];
    free(args);
    int64_t batch[32];
    unsigned idle = 0;
    for (;;) {
        uint32_t k = rg_ring_pop_burst_spsc_off(r, batch, 32);
        for (uint32_t i = 0; i < k; i++) {
            if (b->impl == RGB_ACK_RAILGUN_MT) {
                rg_ack_done(b->a, 0, batch[i]);
            } else {
                int64_t o = batch[i];
                list_done(b, b->nodes[(uint64_t)o % b->n], o + 1);
            }
        }
        if (k > 0) {
            idle = 0;
            continue;
        }
        /* relaxed: a stop flag; the rings carry the data */
        if (atomic_load_explicit(&b->stop, memory_order_relaxed))
            return NULL;
        /* 3 threads share 2 CPUs here: do not starve the source */
        if (++idle > 64)
            sched_yield();
        else
            rg__cpu_relax();
    }
}

/* Runs n begin+done+advance with the given completion order. */
int64_t rgb_ack_run(rgb_ack *b, const int64_t *order, uint64_t n)
{
    int64_t base = (int64_t)b->base, wm = 0, sink = 0;
    b->begun = base;
    switch (b->impl) {
    case RGB_ACK_RAILGUN: {
        /* locals: the tracker's atomic stores could alias b's fields, so
         * the compiler would reload them after each call */
        rg_ack_t *a = b->a;
        int64_t begun = base;
        for (uint64_t i = 0; i < n; i++) {
            int64_t o = base + order[i];
            while (begun <= o)
                rg_ack_begin(a, begun++);
            rg_ack_done(a, 0, o);
            sink += rg_ack_watermark(a);
        }
        b->begun = begun;
        wm = rg_ack_watermark(a);
        break;
    }
    case RGB_ACK_LIST: {
        int64_t begun = base; /* a local, as for railgun */
        for (uint64_t i = 0; i < n; i++) {
            int64_t o = base + order[i];
            while (begun <= o) {
                list_begin(b, begun, (uint64_t)(begun - base));
                begun++;
            }
            sink += list_done(b, b->nodes[o - base], begun);
        }
        b->begun = begun;
        wm = list_watermark(b);
        break;
    }
    case RGB_ACK_RAILGUN_MT:
    case RGB_ACK_LIST_MT:
        if (b->rings[0] == NULL) {
            for (int t = 0; t < 2; t++) {
                b->rings[t] = rg_ring_new(1024, sizeof(int64_t), NULL, 0);
                void **args = malloc(2 * sizeof(void *));
                args[0] = b;
                args[1] = b->rings[t];
                pthread_create(&b->th[t], NULL, mt_complete, args);
            }
        }
        for (uint64_t i = 0; i < n; i++) {
            int64_t o = base + order[i];
            while (b->begun <= o) {
                if (b->impl == RGB_ACK_LIST_MT) {
                    /* the same 4096-offset window railgun enforces */
                    while (b->begun - list_watermark(b) >= 4096)
                        sched_yield();
                    list_begin(b, b->begun, (uint64_t)(b->begun - base));
                } else {
                    unsigned tries = 0;
                    while (rg_ack_begin(b->a, b->begun) == RG_EFULL)
                        if (++tries > 64)
                            sched_yield();
                }
                b->begun++;
            }
            rg_ring_t *r = b->rings[i & 1];
            while (!rg_ring_push_spsc_off(r, &o))
                sched_yield();
            if ((i & 63) == 0 && b->impl == RGB_ACK_RAILGUN_MT)
                sink += rg_ack_watermark(b->a);
        }
        for (;;) {
            wm = b->impl == RGB_ACK_RAILGUN_MT ? rg_ack_watermark(b->a)
                                                : list_watermark(b);
            if (wm >= base + (int64_t)n)
                break;
            sched_yield();
        }
        break;
    }
    (void)sink;
    b->base += n;
    return wm == base + (int64_t)n ? 0 : -1;
}

void rgb_ack_close(rgb_ack *b)
{
    if (b->rings[0] != NULL) {
        atomic_store_explicit(&b->stop, 1, memory_order_relaxed);
        for (int t = 0; t < 2; t++) {
            pthread_join(b->th[t], NULL);
            rg_ring_destroy(b->rings[t]);
        }
    }
    free(b->pool);
    rg_ack_destroy(b->a);
    pthread_mutex_destroy(&b->mu);
    free(b->nodes);
    free(b);
}
