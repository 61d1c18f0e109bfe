/*
 * http.h - the HTTP listener adapter (librailgun_http, over libmicrohttpd):
 * one loopback or network listener that serves /metrics, /stats.json,
 * health probes, pages and, for `railgun serve`, a JSON API.
 *
 *   rg_http_options_t o;
 *   rg_http_options_init(&o);
 *   rg_http_t *h = rg_http_new("127.0.0.1:9464", &o, err, sizeof(err));
 *   rg_http_serve_metrics(h, registry);           // GET /metrics, /stats.json
 *   rg_http_serve_health(h, NULL, ready_cb, x);   // GET /healthz, /readyz
 *   rg_http_route(h, "POST", "/v1/likes", 0, on_like, ctx);
 *   rg_http_start(h, err, sizeof(err));
 *   ...
 *   rg_http_destroy(h);                           // clean shutdown
 *
 * Requests
 *   A route matches a method (NULL: any; a GET route also answers HEAD)
 *   and a path: exact, or with RG_HTTP_PREFIX every path starting with it
 *   (the longest prefix wins; exact routes first). A path no route matches
 *   gets 404, a path whose routes all want other methods 405 with Allow.
 *   The handler sees method, path (without the query string), query
 *   parameters, headers and the whole body, and replies once with
 *   status, content type and body; a handler that does not reply answers
 *   500. Error replies are text/plain, one line saying why.
 *
 * Robustness against bad clients (each bound is an option)
 *   - Bodies: at most body_max bytes are ever buffered. A Content-Length
 *     above it gets 413 at once, before the body is read, and the
 *     connection is closed; a chunked body that grows past it is
 *     discarded as it arrives and answered 413.
 *   - Headers: a connection's request line and headers must fit in
 *     header_max bytes (libmicrohttpd's per-connection memory pool), else
 *     libmicrohttpd answers 431 (headers) or 414 (URI) and closes.
 *   - Slow clients: a connection idle for idle_timeout_s is closed; one
 *     that trickles bytes but has not completed its request within
 *     request_timeout_s (slowloris) is shut down by a watchdog. A slow
 *     client holds only its socket and memory pool, never a thread.
 *   - At most max_connections connections (max_per_ip from one address,
 *     0: no per-address limit); more wait in the kernel's backlog.
 *   Memory is therefore bounded by about max_connections x (header_max +
 *   body_max) plus what handlers allocate.
 *
 * Threads: `threads` polling threads (libmicrohttpd's internal epoll
 * thread pool), each serving its own connections; handlers run on them,
 * so different requests' handlers run at the same time and must be
 * thread-safe, and a handler that blocks stalls the other connections of
 * its thread only. Routes are fixed once the listener starts.
 *
 * Synchronization table
 *                     route, serve_*   start    port   destroy
 *   route, serve_*     no               no       yes    no
 *   start              no               no       yes    no
 *   port               yes              yes      yes    no
 *   handlers (while running) may call the request calls below on their
 *   own request only.
 */
#ifndef RAILGUN_HTTP_H
#define RAILGUN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/export.h"
#include "railgun/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_http_s rg_http_t;
typedef struct rg_http_request_s rg_http_request_t;

typedef struct rg_http_options_s {
    unsigned threads;           /* polling threads (1..64; default 2) */
    unsigned max_connections;   /* open connections (default 64) */
    unsigned max_per_ip;        /* from one address (0: no limit; default) */
    unsigned idle_timeout_s;    /* close after this long without traffic
                                   (1..3600; default 10) */
    unsigned request_timeout_s; /* a request must be whole this long after
                                   the connection opened or its previous
                                   reply was sent (1..3600; default 30) */
    size_t body_max;            /* request body bytes (default 1 MiB) */
    size_t header_max;          /* per-connection memory for the request
                                   line and headers (4 KiB..1 MiB; default
                                   32 KiB) */
    /* optional: libmicrohttpd's own error messages, one line each, on a
     * polling thread; NULL drops them */
    void (*log)(void *opaque, const char *line);
    void *log_opaque;
} rg_http_options_t;

/* Fills o with the defaults. */
RG_EXPORT void rg_http_options_init(rg_http_options_t *o);

/*
 * Creates a listener bound to `listen` ("host:port", "[v6addr]:port";
 * port 0 picks a free port, see rg_http_port(); an empty host means every
 * IPv4 address). The socket listens from now on (connections wait in the
 * backlog until rg_http_start()). opts NULL: the defaults. Returns NULL
 * with a one-line reason in errstr: bad address, an option out of range,
 * bind failure (address in use...), out of memory.
 */
RG_EXPORT rg_http_t *rg_http_new(const char *listen,
                                 const rg_http_options_t *opts,
                                 char *errstr, size_t errstr_size);

/* The bound port (the one picked when 0 was asked). */
RG_EXPORT uint16_t rg_http_port(const rg_http_t *h);

/*
 * A request handler: runs on a polling thread; replies with
 * rg_http_reply*() before it returns (else 500).
 */
typedef void (rg_http_handler)(rg_http_request_t *req, void *opaque);

#define RG_HTTP_PREFIX 1u   /* the route matches every path under it */

/*
 * Adds a route: method ("GET", "POST"...; NULL any), path (starting with
 * '/'), flags (RG_HTTP_PREFIX or 0). Returns 0, RG_EINVAL (bad argument),
 * RG_EEXIST (the same method and path are routed already), RG_ESTATE
 * (the listener is running), RG_ENOMEM.
 */
RG_EXPORT int rg_http_route(rg_http_t *h, const char *method,
                            const char *path, unsigned flags,
                            rg_http_handler *fn, void *opaque);

/*
 * Starts the polling threads. Returns 0, RG_ESTATE (started already) or
 * RG_ESYS (libmicrohttpd could not start: errstr says so).
 */
RG_EXPORT int rg_http_start(rg_http_t *h, char *errstr, size_t errstr_size);

/*
 * Stops and frees the listener; NULL is fine. Stops accepting, lets the
 * handlers running finish, closes every connection, joins the threads
 * and closes the socket. Blocks until then; not from a handler.
 */
RG_EXPORT void rg_http_destroy(rg_http_t *h);

/* Counters since rg_http_new(); any thread. */
typedef struct rg_http_stats_s {
    uint64_t requests;      /* requests answered (any status) */
    uint64_t errors_4xx;    /* of which 4xx: 404, 405, 413 ... */
    uint64_t too_large;     /* of which 413: body above body_max */
    uint64_t errors_5xx;    /* of which 5xx */
    uint64_t connections;   /* connections opened */
    uint64_t timed_out;     /* connections shut by the request deadline */
} rg_http_stats_t;

RG_EXPORT void rg_http_stats(const rg_http_t *h, rg_http_stats_t *out);

/* ---- inside a handler: the request ---------------------------------- */

RG_EXPORT const char *rg_http_method(const rg_http_request_t *r);
RG_EXPORT const char *rg_http_path(const rg_http_request_t *r);

/* The (decoded) value of query parameter `name`, "" for a parameter
 * without '=', NULL when absent. Valid until the handler returns. */
RG_EXPORT const char *rg_http_query(const rg_http_request_t *r,
                                    const char *name);

/* Calls fn for each query parameter in order (value NULL when it has no
 * '='); stops when fn returns false. Returns how many were visited. */
RG_EXPORT unsigned rg_http_query_each(const rg_http_request_t *r,
                                      bool (*fn)(void *opaque,
                                                 const char *name,
                                                 const char *value),
                                      void *opaque);

/* A request header (case-insensitive name), or NULL. */
RG_EXPORT const char *rg_http_header(const rg_http_request_t *r,
                                     const char *name);

/* The body (NUL-terminated for convenience; *len bytes, may contain NULs)
 * and its length; "" and 0 without one. At most body_max bytes. */
RG_EXPORT const char *rg_http_body(const rg_http_request_t *r, size_t *len);

/*
 * Replies: status (100..599), content type (NULL: text/plain), body (len
 * bytes, copied; NULL with 0). Once per request: RG_ESTATE when a reply
 * was given already, RG_EINVAL, RG_ENOMEM.
 */
RG_EXPORT int rg_http_reply(rg_http_request_t *r, int status,
                            const char *content_type, const void *body,
                            size_t len);

/* rg_http_reply() that takes ownership of body (a malloc()ed buffer, freed
 * after sending, and also when the call fails). */
RG_EXPORT int rg_http_reply_take(rg_http_request_t *r, int status,
                                 const char *content_type, void *body,
                                 size_t len);

/* rg_http_reply() with a printf-formatted body. */
RG_EXPORT int rg_http_replyf(rg_http_request_t *r, int status,
                             const char *content_type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds a header to the reply given (after rg_http_reply*()). Returns 0,
 * RG_ESTATE (no reply yet), RG_EINVAL (bad name or value). */
RG_EXPORT int rg_http_reply_header(rg_http_request_t *r, const char *name,
                                   const char *value);

/* ---- helpers --------------------------------------------------------- */

/*
 * Routes GET /metrics (Prometheus text 0.0.4, RG_METRICS_TEXT_CONTENT_TYPE)
 * and GET /stats.json (the same as one JSON object) to registry m, which
 * must outlive the listener. Each scrape renders m on a polling thread.
 * Returns as rg_http_route().
 */
RG_EXPORT int rg_http_serve_metrics(rg_http_t *h, rg_metrics_t *m);

/*
 * A probe: true when healthy; otherwise it may write a one-line reason.
 * Runs on a polling thread, at every request of its path.
 */
typedef bool (rg_http_probe_cb)(void *opaque, char *reason,
                                size_t reason_size);

/*
 * Routes GET /healthz (alive) and GET /readyz (ready): 200 "ok" when the
 * probe says true (a NULL probe always does), else 503 with its reason.
 * Returns as rg_http_route().
 */
RG_EXPORT int rg_http_serve_health(rg_http_t *h, rg_http_probe_cb *alive,
                                   rg_http_probe_cb *ready, void *opaque);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_HTTP_H */
