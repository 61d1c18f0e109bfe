/*
 * peers_merge.c - per-key merging of +1 deltas, 2 threads, Zipf 0.99 over
 * 1M keys:
 *   railgun:    each thread owns the keys that hash to it (as a worker
 *               does) and merges into its own rg_merge table: no lock, no
 *               atomic.
 *   urcu_lfht:  one liburcu lock-free hash table shared by both threads,
 *               each taking half of the stream: RCU read lock, lookup,
 *               atomic add (or add_unique for a new key).
 *   mutex_map:  one rg_merge table shared by both threads behind a mutex.
 * Every pass ends with a check that the table totals equal the events.
 */
#define _GNU_SOURCE
#define _LGPL_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <urcu.h>
#include <urcu/rculfhash.h>
#include "peers.h"
#include "railgun/hash.h"
#include "railgun/merge.h"

struct lnode {
    struct cds_lfht_node n;
    uint64_t key;
    _Atomic int64_t value;
};

struct rgb_merge {
    int impl;
    const uint64_t *keys;
    size_t nkeys;
    uint64_t *part[2];     /* railgun: each thread's own keys */
    size_t npart[2];
    rg_merge_t *tables[2];
    struct cds_lfht *ht;
    rg_merge_t *shared;
    pthread_mutex_t mu;
    uint64_t total;        /* events merged so far */
};

struct worker_arg {
    struct rgb_merge *m;
    int t;
};

static int match(struct cds_lfht_node *node, const void *key)
{
    return caa_container_of(node, struct lnode, n)->key ==
           *(const uint64_t *)key;
}

static void lfht_add(struct cds_lfht *ht, uint64_t key)
{
    uint64_t h = rg_hash64(key);
    struct cds_lfht_iter it;
    rcu_read_lock();
    cds_lfht_lookup(ht, h, match, &key, &it);
    struct cds_lfht_node *found = cds_lfht_iter_get_node(&it);
    if (found == NULL) {
        struct lnode *nd = malloc(sizeof(*nd));
        cds_lfht_node_init(&nd->n);
        nd->key = key;
        atomic_init(&nd->value, 0);
        found = cds_lfht_add_unique(ht, h, match, &key, &nd->n);
        if (found != &nd->n)
            free(nd); /* the other thread inserted it first */
    }
    /* relaxed: a counter; read after the threads are joined */
    atomic_fetch_add_explicit(&caa_container_of(found, struct lnode, n)->value,
                              1, memory_order_relaxed);
    rcu_read_unlock();
}

static void *merge_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct rgb_merge *m = wa->m;
    int t = wa->t;
    rgb_pin(t);
    switch (m->impl) {
    case RGB_MERGE_RAILGUN: {
        rg_merge_t *tab = m->tables[t];
        const uint64_t *k = m->part[t];
        for (size_t i = 0; i < m->npart[t]; i++)
            rg_merge_add(tab, k[i], 1, 0);
        break;
    }
    case RGB_MERGE_URCU_LFHT: {
        rcu_register_thread();
        size_t half = m->nkeys / 2;
        size_t lo = t ? half : 0, hi = t ? m->nkeys : half;
        for (size_t i = lo; i < hi; i++)
            lfht_add(m->ht, m->keys[i]);
        rcu_unregister_thread();
        break;
    }
    case RGB_MERGE_MUTEX: {
        size_t half = m->nkeys / 2;
        size_t lo = t ? half : 0, hi = t ? m->nkeys : half;
        for (size_t i = lo; i < hi; i++) {
            pthread_mutex_lock(&m->mu);
            rg_merge_add(m->shared, m->keys[i], 1, 0);
            pthread_mutex_unlock(&m->mu);
        }
        break;
    }
    }
    return NULL;
}

rgb_merge *rgb_merge_open(int impl, const uint64_t *keys, size_t nkeys,
                          uint32_t keyspace)
{
    struct rgb_merge *m = calloc(1, sizeof(*m));
    m->impl = impl;
    m->keys = keys;
    m->nkeys = nkeys;
    pthread_mutex_init(&m->mu, NULL);
    switch (impl) {
    case RGB_MERGE_RAILGUN:
        for (int t = 0; t < 2; t++) {
            m->part[t] = malloc(sizeof(uint64_t) * nkeys);
            m->tables[t] = rg_merge_new(RG_MERGE_SUM, keyspace, NULL, 0);
        }
        for (size_t i = 0; i < nkeys; i++) {
            int t = (int)rg_hash_reduce(rg_hash64(keys[i]), 2);
            m->part[t][m->npart[t]++] = keys[i];
        }
        break;
    case RGB_MERGE_URCU_LFHT:
        rcu_register_thread();
        m->ht = cds_lfht_new(1 << 16, 1 << 16, 1 << 22,
                             CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                             NULL);
        break;
    case RGB_MERGE_MUTEX:
        m->shared = rg_merge_new(RG_MERGE_SUM, keyspace, NULL, 0);
        break;
    }
    return m;
}

void rgb_merge_run(rgb_merge *m)
{
    pthread_t th[2];
    struct worker_arg wa[2] = {{m, 0}, {m, 1}};
    for (int t = 0; t < 2; t++)
        pthread_create(&th[t], NULL, merge_main, &wa[t]);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    m->total += m->nkeys;
}

static int64_t table_sum(rg_merge_t *t)
{
    int64_t sum = 0;
    size_t cursor = 0;
    rg_merge_row_t row;
    while (rg_merge_next(t, &cursor, &row))
        sum += row.value;
    return sum;
}

int rgb_merge_close(rgb_merge *m)
{
    int64_t sum = 0;
    switch (m->impl) {
    case RGB_MERGE_RAILGUN:
        for (int t = 0; t < 2; t++) {
            sum += table_sum(m->tables[t]);
            rg_merge_destroy(m->tables[t]);
            free(m->part[t]);
        }
        break;
    case RGB_MERGE_URCU_LFHT: {
        struct cds_lfht_iter it;
        struct lnode *nd;
        size_t n = 0, cap = 1024;
        struct lnode **dead = malloc(sizeof(*dead) * cap);
        rcu_read_lock();
        cds_lfht_for_each_entry(m->ht, &it, nd, n) {
            sum += atomic_load_explicit(&nd->value, memory_order_relaxed);
            cds_lfht_del(m->ht, &nd->n);
            if (n == cap)
                dead = realloc(dead, sizeof(*dead) * (cap *= 2));
            dead[n++] = nd;
        }
        rcu_read_unlock();
        synchronize_rcu(); /* no reader can still see a deleted node */
        for (size_t i = 0; i < n; i++)
            free(dead[i]);
        free(dead);
        cds_lfht_destroy(m->ht, NULL);
        rcu_unregister_thread();
        break;
    }
    case RGB_MERGE_MUTEX:
        sum = table_sum(m->shared);
        rg_merge_destroy(m->shared);
        break;
    }
    int ok = sum == (int64_t)m->total;
    pthread_mutex_destroy(&m->mu);
    free(m);
    return ok ? 0 : -1;
}
