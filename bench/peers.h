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
    RGB_PIPE_RAILGUN_FLOW,  /* RAILGUN with flow control on, at a rate
                               (1e10/s) that never binds: what the token
                               bucket's per-burst take costs */
    RGB_PIPE_RAILGUN_HOTKEY, /* RAILGUN with hotkey.enable=true: what the
                                per-event sketch update and the per-call
                                tick cost on the ingest path */
};

/* Hot lanes on a skewed stream (peers_lanes.c): one run of the stream
 * at `rate` events/s for `seconds`, `hot` of it on one key, each event
 * costing cost_ns, with `lanes` hot lanes (0: detection only). */
typedef struct rgb_lanes_result {
    double imbalance;     /* busiest thread / mean, after the warm-up */
    double cold_p50_us, cold_p99_us; /* push -> processed, cold keys */
    double events_per_s;  /* as pushed (the source's pace held or not) */
    unsigned long long moves;
    unsigned threads;
} rgb_lanes_result;

/* 0, -1 (setup failed: a line on stderr), -2 (a key's count is wrong). */
int rgb_lanes_run(unsigned lanes, double hot, double rate, double seconds,
                  uint64_t cost_ns, rgb_lanes_result *out);

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

enum rgb_decode_impl {
    RGB_DECODE_FAST,     /* rg_like_decode on JSON: the canonical fast path */
    RGB_DECODE_STRICT,   /* rg_like_decode_strict on the same JSON */
    RGB_DECODE_BINARY,   /* rg_like_decode on the compact binary form */
};

typedef struct rgb_decode rgb_decode;

/* n likes drawn as the demo draws them (seeded), encoded for impl. */
rgb_decode *rgb_decode_open(int impl, size_t n, uint64_t seed);
/* Decodes every value once; 0 when each decoded to what was encoded. */
int rgb_decode_run(rgb_decode *d);
/* The values' total size in bytes. */
size_t rgb_decode_bytes(const rgb_decode *d);
void rgb_decode_close(rgb_decode *d);
enum rgb_hk_impl {
    RGB_HK_RAILGUN,       /* rg__hk: per-bucket Space-Saving */
    RGB_HK_EXACT,         /* exact counter per key, open addressing */
    RGB_HK_SPACE_SAVING,  /* Space-Saving: min-heap + hash index */
    RGB_HK_HEAVYKEEPER,   /* HeavyKeeper + top-k heap, one per slice */
    RGB_HK_SAMPLED16,     /* 1 event in 16 into the exact counter */
};

typedef struct rgb_hk rgb_hk;

/* Hot-key detection over the key stream `keys` (cycled; `distinct` keys
 * at most), 1 us of synthetic time per event, a window of 4 slices. */
rgb_hk *rgb_hk_open(int impl, const uint64_t *keys, size_t nkeys,
                    uint64_t distinct);
/* Counts the next n events, ticking at every slice end. */
void rgb_hk_run(rgb_hk *b, uint64_t n);
/* 0 when the detector's window total equals the events of its window. */
int rgb_hk_close(rgb_hk *b);
/* One pass over keys from a fresh start, against exact counting with the
 * same rules: precision and recall of the hot sets over every tick, and
 * how many (key, tick) pairs the exact hot sets hold. */
void rgb_hk_accuracy(int impl, const uint64_t *keys, size_t nkeys,
                     uint64_t distinct, double *precision, double *recall,
                     uint64_t *hot_keys);

enum rgb_hkset_impl {
    RGB_HKSET_RAILGUN,   /* rg__hkset_has() */
    RGB_HKSET_SCAN,      /* a scan of the hot keys' array */
};

typedef struct rgb_hkset rgb_hkset;

/* A set of the n keys hot[] (n <= 4096; 0 is an empty set). */
rgb_hkset *rgb_hkset_open(int impl, const uint64_t *hot, unsigned n);
/* Tests every key of keys[0..n) (hashes[i] = rg_hash64(keys[i])); returns
 * the hits. */
uint64_t rgb_hkset_run(rgb_hkset *s, const uint64_t *keys,
                       const uint64_t *hashes, size_t n);
void rgb_hkset_close(rgb_hkset *s);
/* ---- flow control: the token bucket check (peers_flow.c) ---- */
enum rgb_flow_impl {
    /* the bucket reads CLOCK_MONOTONIC itself, as each design needs it */
    RGB_FLOW_RAILGUN,           /* rg__bucket_take_lazy: on refills only */
    RGB_FLOW_MUTEX,             /* mutex + classic bucket: every check */
    RGB_FLOW_RAILGUN_MT2,       /* the same, two threads, one bucket */
    RGB_FLOW_MUTEX_MT2,
    /* the caller passes the time (a fake clock: costs nothing) */
    RGB_FLOW_RAILGUN_GIVEN,     /* rg__bucket_take, thread cache */
    RGB_FLOW_MUTEX_GIVEN,       /* mutex + classic bucket */
    RGB_FLOW_RAILGUN_SHARED,    /* rg__bucket_take_shared: a CAS per burst */
    RGB_FLOW_MUTEX_PER_EVENT,   /* classic bucket, one check per event */
    RGB_FLOW_RAILGUN_UNLIMITED, /* rate 0 */
    RGB_FLOW_NONE,              /* no check: the loop alone */
};

typedef struct rgb_flow rgb_flow;

/* Pins the caller to CPU 0 (and a helper to CPU 1 for the _mt2 ones). */
rgb_flow *rgb_flow_open(int impl);
/* Checks n events in bursts of 32 (split over the threads). */
void rgb_flow_run(rgb_flow *f, uint64_t n);
/* 0 when exactly `expected` events were checked and none refused. */
int rgb_flow_close(rgb_flow *f, uint64_t expected);
enum rgb_spool_impl {
    RGB_SPOOL_RAILGUN,         /* rg__spool_append + group commit */
    RGB_SPOOL_RAILGUN_BURST32, /* rg__spool_append_burst, 32 at a time */
    RGB_SPOOL_WRITE_FDATASYNC, /* the same records, write()+fdatasync()
                                  per sync_bytes batch, by hand */
};

typedef struct rgb_spool rgb_spool;

/* A spool (or a file) in a fresh directory under $RG_BENCH_DIR, else
 * $TMPDIR, else /tmp; NULL with the reason in errbuf. */
rgb_spool *rgb_spool_open(int impl, uint64_t sync_bytes, char *errbuf,
                          size_t errlen);
/* Appends the next n records; every one is durable when it returns.
 * 0, or -1 (rgb_spool_error() says why). */
int rgb_spool_run(rgb_spool *s, uint64_t n);
/* Untimed: gives the space written so far back (done marks + segment
 * deletion, or truncation). */
int rgb_spool_reset(rgb_spool *s);
/* Bytes of one record on disk, and fdatasync batches so far. */
uint64_t rgb_spool_record_bytes(const rgb_spool *s);
uint64_t rgb_spool_syncs(rgb_spool *s);
const char *rgb_spool_error(const rgb_spool *s);
/* The filesystem type of the directory ("ext4"...). */
const char *rgb_spool_fs(const rgb_spool *s);
/* Closes and removes the directory. */
void rgb_spool_close(rgb_spool *s);
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
