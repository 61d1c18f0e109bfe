/*
 * peers.h - benchmark workloads, written in C so railgun's inline ring and
 * its peers (ck_ring, liburcu wfcqueue, a mutex+condvar queue) run the
 * exact same loop; bench_main.cc only registers them with google-benchmark.
 *
 * Ring workloads: the calling thread produces, a consumer thread pinned to
 * another CPU consumes and checks that every item arrives once and in
 * order. Pipeline workloads: the calling thread is the in-memory source,
 * one worker counts events per key.
 */
#ifndef RG_BENCH_PEERS_H
#define RG_BENCH_PEERS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum rgb_ring_impl {
    RGB_RING_RAILGUN,          /* rg_ring, one item per call */
    RGB_RING_RAILGUN_BURST32,  /* rg_ring, bursts of 32 */
    RGB_RING_CK,               /* ck_ring_enqueue_spsc/dequeue_spsc */
    RGB_RING_URCU_WFCQ,        /* liburcu wait-free concurrent queue */
    RGB_RING_MUTEX,            /* bounded queue, mutex + condvars */
};

typedef struct rgb_ring rgb_ring;

/* Starts the consumer thread on cpu_cons and pins the caller to cpu_prod. */
rgb_ring *rgb_ring_open(int impl, unsigned capacity, int cpu_prod,
                        int cpu_cons);
/* Produces the next n items (8-byte payloads) from the calling thread. */
void rgb_ring_produce(rgb_ring *r, uint64_t n);
/* Waits for the consumer to drain; 0 when every item arrived once and in
 * order. Restores the caller's CPU affinity. */
int rgb_ring_close(rgb_ring *r);

enum rgb_pipe_impl {
    RGB_PIPE_RAILGUN,   /* rg_engine: dispatcher -> ring -> 1 worker */
    RGB_PIPE_MUTEX,     /* the same over a mutex + condvar queue */
    RGB_PIPE_RAILGUN_SCRAPED_10HZ, /* RAILGUN while a thread renders a
                                      registry of its counters at 10 Hz */
};

typedef struct rgb_pipe rgb_pipe;

/* keys: the source's key stream (cycled); counts go into keyspace slots. */
rgb_pipe *rgb_pipe_open(int impl, const uint64_t *keys, size_t nkeys,
                        uint64_t keyspace, int cpu_src, int cpu_worker);
/* Pushes n events and waits until the worker has counted all of them. */
void rgb_pipe_run(rgb_pipe *p, uint64_t n);
/* 0 when the per-key counts equal what was pushed. */
int rgb_pipe_close(rgb_pipe *p);

enum rgb_ack_impl {
    RGB_ACK_RAILGUN,     /* rg_ack, one thread */
    RGB_ACK_LIST,        /* mutex + ordered linked list, ACK the head */
    RGB_ACK_RAILGUN_MT,  /* rg_ack, two threads completing */
    RGB_ACK_LIST_MT,     /* the list, two threads completing */
};

typedef struct rgb_ack rgb_ack;

rgb_ack *rgb_ack_open(int impl, uint64_t n);
/* begin + done + advance for every offset of one pass over `order`;
 * 0 when the watermark ends exactly past the last offset. */
int64_t rgb_ack_run(rgb_ack *b, const int64_t *order, uint64_t n);
void rgb_ack_close(rgb_ack *b);

enum rgb_merge_impl {
    RGB_MERGE_RAILGUN,    /* worker-local rg_merge tables, keys owned */
    RGB_MERGE_URCU_LFHT,  /* shared liburcu lock-free hash table */
    RGB_MERGE_MUTEX,      /* shared table behind a mutex */
};

typedef struct rgb_merge rgb_merge;

/* Two threads (CPUs 0 and 1) merge +1 for every key of `keys`. */
rgb_merge *rgb_merge_open(int impl, const uint64_t *keys, size_t nkeys,
                          uint32_t keyspace);
void rgb_merge_run(rgb_merge *m);
/* 0 when the tables' totals equal the events merged. */
int rgb_merge_close(rgb_merge *m);

enum rgb_metrics_impl {
    RGB_METRICS_COUNTER,                /* rg_counter_add_sw, own cell */
    RGB_METRICS_COUNTER_SCRAPED_10HZ,   /* ... while a thread renders at 10 Hz */
    RGB_METRICS_COUNTER_SCRAPED_BUSY,   /* ... while it renders flat out */
    RGB_METRICS_COUNTER_ATOMIC,         /* one shared cell, atomic add */
    RGB_METRICS_COUNTER_MUTEX,          /* a counter behind a mutex */
    RGB_METRICS_HISTOGRAM,              /* rg_histogram_observe_ns_sw */
    RGB_METRICS_HISTOGRAM_STEADY,       /* ... durations in one bucket */
    RGB_METRICS_HISTOGRAM_SCRAPED_10HZ,
    RGB_METRICS_HISTOGRAM_SCRAPED_BUSY,
    RGB_METRICS_HISTOGRAM_MUTEX,        /* buckets + sum behind a mutex */
    RGB_METRICS_RENDER_TEXT,            /* one "update" = one text render */
    RGB_METRICS_RENDER_JSON,            /* ... one JSON render */
};

typedef struct rgb_metrics rgb_metrics;

/* Pins the caller to cpu_writer; starts the scraper where impl has one. */
rgb_metrics *rgb_metrics_open(int impl, int cpu_writer, int cpu_scraper);
/* n updates from the calling thread. */
void rgb_metrics_run(rgb_metrics *b, uint64_t n);
/* 0 when the rendered total equals the updates made. Restores the
 * caller's CPU affinity. (open returns once the scraper has rendered.) */
int rgb_metrics_close(rgb_metrics *b);

/* A thread rendering, hz times a second, a registry whose collectors read
 * engine e's counters (pipeline/railgun_scraped_10hz). */
typedef struct rgb_scraper rgb_scraper;
struct rg_engine_s;
rgb_scraper *rgb_scraper_start(struct rg_engine_s *e, unsigned hz);
/* Stops it; returns how many renders it made. NULL is fine. */
uint64_t rgb_scraper_stop(rgb_scraper *x);

/* Pins the calling thread to one CPU (ignored when cpu < 0). */
void rgb_pin(int cpu);

#ifdef __cplusplus
}
#endif
#endif /* RG_BENCH_PEERS_H */
