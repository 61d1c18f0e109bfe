/*
 * loadgen.h - a small HTTP/1.1 client and a closed-loop load driver for
 * `railgun serve`: what `railgun bench serve` and the end-to-end test's
 * client (tests/support/likes_client.c) drive the service with.
 *
 * Why not wrk alone: the benchmark needs every POST's answer counted
 * exactly (202s, 503s), bodies generated per request from a seeded
 * stream (a hot video's share, a ground truth to check afterwards),
 * latency percentiles of our own requests in the same run as the peer,
 * and the freshness probe (a POST, then GETs until the count moves);
 * wrk's Lua hooks can do parts of it but report only its own summary.
 * The client is blocking, one keep-alive connection per thread, to
 * 127.0.0.1 only; every reply must carry Content-Length (serve's do).
 *
 * Threads: a connection belongs to one thread; rg_load_run() starts its
 * own threads and joins them.
 */
#ifndef RG_LOADGEN_H
#define RG_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rg_hc_s {
    uint16_t port;
    int fd;
    char *buf;          /* reply bytes */
    size_t cap, len;
    size_t next;        /* where the next pipelined reply starts in buf */
    char *req;          /* queued request bytes (rg_hc_queue) */
    size_t req_cap, req_len;
    /* the last reply */
    int status;
    const char *body;
    size_t body_len;
    char xcache[16];    /* X-Cache value, "" when none */
} rg_hc_t;

/* A client for 127.0.0.1:port (connects lazily). */
void rg_hc_init(rg_hc_t *c, uint16_t port);
void rg_hc_fini(rg_hc_t *c);

/*
 * One request on the keep-alive connection (reconnecting once when the
 * server closed it). 0 with c->status/body set, or -1 (no connection, a
 * malformed or missing reply, a timeout of 30 s).
 */
int rg_hc_request(rg_hc_t *c, const char *method, const char *path,
                  const char *body, size_t len);

/*
 * Pipelining (HTTP/1.1): rg_hc_queue() appends a request to the
 * connection's queue, rg_hc_send() writes the queue at once (dialing when
 * not connected), rg_hc_read() reads the next reply in order (status and
 * body set as rg_hc_request() sets them; the body is not NUL-terminated
 * when a later reply follows it). Each returns 0 or -1; a failure closes
 * the connection, and the replies not read are lost with it.
 */
int rg_hc_queue(rg_hc_t *c, const char *method, const char *path,
                const char *body, size_t len);
int rg_hc_send(rg_hc_t *c);
int rg_hc_read(rg_hc_t *c);

/* Latency histogram: log buckets, 1 us .. 100 s. */
#define RG_LAT_BUCKETS 256
typedef struct rg_lat_s {
    uint64_t n[RG_LAT_BUCKETS];
    uint64_t count;
} rg_lat_t;

void rg_lat_add(rg_lat_t *h, double seconds);
void rg_lat_merge(rg_lat_t *into, const rg_lat_t *h);
/* The q quantile (0..1) in seconds (a bucket's upper bound). */
double rg_lat_quantile(const rg_lat_t *h, double q);

/*
 * One request of a load: fill method, path and body (body_len) for
 * request number i of thread t; return false to stop the thread. After
 * the reply, done() (may be NULL) sees it; it returns false to count the
 * request as failed.
 */
typedef struct rg_load_s {
    uint16_t port;
    unsigned threads;
    double seconds;          /* stop after this long (0: no limit) */
    uint64_t max_requests;   /* per thread (0: no limit) */
    unsigned depth;          /* requests in flight per connection
                              * (pipelined; 0 or 1: one at a time) */
    bool (*next)(void *opaque, unsigned t, uint64_t i, const char **method,
                 char *path, size_t path_size, char *body,
                 size_t body_size, size_t *body_len);
    bool (*done)(void *opaque, unsigned t, const rg_hc_t *c);
    void *opaque;
    /* results */
    uint64_t ok, failed;
    double elapsed;
    rg_lat_t lat;
} rg_load_t;

/* Runs the load; 0, or -1 when a thread could not start. */
int rg_load_run(rg_load_t *l);

#endif /* RG_LOADGEN_H */
