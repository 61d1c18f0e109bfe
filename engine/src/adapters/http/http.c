/*
 * http.c - the HTTP listener over libmicrohttpd (see railgun/http.h).
 *
 * Mode: libmicrohttpd's internal polling threads (epoll on Linux), a pool
 * of `threads`, each owning the connections it accepted. Not a thread per
 * connection: a slow or idle client would pin a thread (and its stack)
 * for as long as it dawdles, so a few hundred slowloris sockets would
 * exhaust threads; here it holds only its socket and memory pool.
 * Not an external select loop either: the engine has no event loop to
 * lend, and a listener that needs none is what an embedder expects.
 *
 * We bind and listen ourselves and hand the socket to libmicrohttpd
 * (MHD_OPTION_LISTEN_SOCKET), so a bind failure has a precise reason,
 * port 0 can be reported before start, and shutdown closes the socket
 * exactly once: MHD_stop_daemon() closes the socket it was given; we
 * close it only when no daemon ever took it. Not MHD_quiesce_daemon():
 * in libmicrohttpd 0.9.75 it races the polling thread, which takes the
 * listen socket out of its epoll set at the connection limit, and
 * aborts the process ("Failed to remove listen FD from epoll set": seen
 * once in CI, in the trickling-client test).
 *
 * Per request (libmicrohttpd calls the access handler several times):
 *   1st call, headers in: route it; 404/405 or a Content-Length above
 *     body_max is answered now (libmicrohttpd then reads no body and
 *     closes the connection after the reply).
 *   body calls: append up to body_max; past it, drop what came and what
 *     comes (a chunked body), remember it is too large.
 *   last call: 413, or the handler; its reply is queued.
 *
 * Request deadline (slowloris): libmicrohttpd's timeout is an idle
 * timeout, which a client trickling one byte a second never trips. So
 * every connection carries a deadline: request_timeout_s after it opened,
 * or after its previous reply was sent; none from the moment its request
 * is whole (the handler's time and the reply's are not the client's). A watchdog thread shuts down (shutdown(2), both ways) every
 * connection past its deadline; libmicrohttpd sees the socket end and
 * closes it. The watchdog touches a connection's fd only under h->mu,
 * and the connection leaves the list under h->mu in the CLOSED
 * notification, which libmicrohttpd sends before it closes the fd: the
 * watchdog can never shut a reused descriptor.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "railgun/error.h"
#include "railgun/http.h"

#define WATCHDOG_TICK_MS 100
#define THREADS_MAX 64
#define TIMEOUT_MAX_S 3600

struct route {
    char *method; /* NULL: any */
    char *path;
    size_t plen;
    bool prefix;
    rg_http_handler *fn;
    void *opaque;
};

/* The probes of rg_http_serve_health(). */
struct probes {
    rg_http_probe_cb *alive, *ready;
    void *opaque;
};

/* One TCP connection (libmicrohttpd's socket context). */
struct conn {
    struct conn *prev, *next;
    int fd;
    int64_t deadline_ms; /* CLOCK_MONOTONIC; 0: none */
};

struct rg_http_request_s {
    rg_http_t *h;
    struct MHD_Connection *mc;
    struct conn *conn;
    const struct route *route;
    const char *method, *path;
    char *body;
    size_t len, cap;
    bool too_big;
    struct MHD_Response *resp;
    unsigned status;
};

struct rg_http_s {
    rg_http_options_t o;
    int fd;
    uint16_t port;
    bool v6;
    struct MHD_Daemon *d;
    struct route *routes;
    unsigned nroutes, routes_cap;
    bool started;
    struct probes probes;
    /* guards the connection list and the watchdog's stop flag */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn conns; /* list head */
    bool stopping;
    bool watchdog_running;
    pthread_t watchdog;
    /* statistics: relaxed counters, read by rg_http_stats() */
    _Atomic uint64_t requests, errors_4xx, too_large, errors_5xx,
        connections, timed_out;
};

static void errf(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *errstr, size_t size, const char *fmt, ...)
{
    if (errstr == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(_Atomic uint64_t *c)
{
    /* relaxed: a statistic; nothing is published through it */
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void rg_http_options_init(rg_http_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->threads = 2;
    o->max_connections = 64;
    o->max_per_ip = 0;
    o->idle_timeout_s = 10;
    o->request_timeout_s = 30;
    o->body_max = 1u << 20;
    o->header_max = 32u << 10;
}

static int check_options(const rg_http_options_t *o, char *errstr,
                         size_t errstr_size)
{
    if (o->threads < 1 || o->threads > THREADS_MAX) {
        errf(errstr, errstr_size, "http: threads %u is outside 1..%d",
             o->threads, THREADS_MAX);
        return RG_ERANGE;
    }
    if (o->max_connections < o->threads || o->max_connections > 65536) {
        errf(errstr, errstr_size,
             "http: max_connections %u is outside %u..65536 (at least one "
             "per thread)", o->max_connections, o->threads);
        return RG_ERANGE;
    }
    if (o->idle_timeout_s < 1 || o->idle_timeout_s > TIMEOUT_MAX_S ||
        o->request_timeout_s < 1 || o->request_timeout_s > TIMEOUT_MAX_S) {
        errf(errstr, errstr_size,
             "http: idle_timeout_s %u and request_timeout_s %u must be in "
             "1..%d", o->idle_timeout_s, o->request_timeout_s,
             TIMEOUT_MAX_S);
        return RG_ERANGE;
    }
    if (o->body_max > (size_t)1 << 30) {
        errf(errstr, errstr_size, "http: body_max %zu is above 1 GiB",
             o->body_max);
        return RG_ERANGE;
    }
    if (o->header_max < 4096 || o->header_max > (size_t)1 << 20) {
        errf(errstr, errstr_size, "http: header_max %zu is outside 4 KiB..1 "
             "MiB", o->header_max);
        return RG_ERANGE;
    }
    return 0;
}

/* Splits "host:port" / "[v6]:port" into host and port. */
static int split_listen(const char *listen, char *host, size_t host_size,
                        char *port, size_t port_size)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (end == NULL || end[1] != ':')
            return RG_EINVAL;
        if ((size_t)(end - listen - 1) >= host_size)
            return RG_EINVAL;
        memcpy(host, listen + 1, (size_t)(end - listen - 1));
        host[end - listen - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (colon == NULL || (size_t)(colon - listen) >= host_size ||
            memchr(listen, ':', (size_t)(colon - listen)) != NULL)
            return RG_EINVAL;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = 0;
    }
    const char *p = colon + 1;
    if (*p == 0 || strlen(p) >= port_size)
        return RG_EINVAL;
    long v = 0;
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9')
            return RG_EINVAL;
        v = v * 10 + (*q - '0');
        if (v > 65535)
            return RG_EINVAL;
    }
    snprintf(port, port_size, "%ld", v);
    return 0;
}

static int bind_listen(rg_http_t *h, const char *addr, char *errstr,
                       size_t errstr_size)
{
    char host[256], port[8];
    if (addr == NULL ||
        split_listen(addr, host, sizeof(host), port, sizeof(port)) != 0) {
        errf(errstr, errstr_size,
             "http: listen address %s is not host:port or [v6]:port",
             addr ? addr : "(null)");
        return RG_EINVAL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] ? host : "0.0.0.0", port, &hints, &res);
    if (gai != 0) {
        errf(errstr, errstr_size, "http: listen address %s: %s", addr,
             gai_strerror(gai));
        return RG_EINVAL;
    }
    int err = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(fd, SOMAXCONN) != 0) {
            err = errno;
            close(fd);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        h->port = ntohs(ss.ss_family == AF_INET6 ?
                        ((struct sockaddr_in6 *)&ss)->sin6_port :
                        ((struct sockaddr_in *)&ss)->sin_port);
        h->v6 = ss.ss_family == AF_INET6;
        h->fd = fd;
        freeaddrinfo(res);
        return 0;
    }
    freeaddrinfo(res);
    errf(errstr, errstr_size, "http: cannot listen on %s: %s", addr,
         strerror(err ? err : EADDRNOTAVAIL));
    return RG_ESYS;
}

rg_http_t *rg_http_new(const char *listen, const rg_http_options_t *opts,
                       char *errstr, size_t errstr_size)
{
    rg_http_options_t o;
    if (opts == NULL)
        rg_http_options_init(&o);
    else
        o = *opts;
    if (check_options(&o, errstr, errstr_size) != 0)
        return NULL;
    rg_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        errf(errstr, errstr_size, "http: out of memory");
        return NULL;
    }
    h->o = o;
    h->fd = -1;
    h->conns.prev = h->conns.next = &h->conns;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (bind_listen(h, listen, errstr, errstr_size) != 0) {
        rg_http_destroy(h);
        return NULL;
    }
    return h;
}

uint16_t rg_http_port(const rg_http_t *h)
{
    return h->port;
}

int rg_http_route(rg_http_t *h, const char *method, const char *path,
                  unsigned flags, rg_http_handler *fn, void *opaque)
{
    if (h == NULL || path == NULL || path[0] != '/' || fn == NULL ||
        (flags & ~RG_HTTP_PREFIX) != 0 || (method != NULL && method[0] == 0))
        return RG_EINVAL;
    if (h->started)
        return RG_ESTATE;
    bool prefix = (flags & RG_HTTP_PREFIX) != 0;
    for (unsigned i = 0; i < h->nroutes; i++) {
        const struct route *r = &h->routes[i];
        bool same_method = (r->method == NULL && method == NULL) ||
                           (r->method != NULL && method != NULL &&
                            strcmp(r->method, method) == 0);
        if (same_method && r->prefix == prefix && strcmp(r->path, path) == 0)
            return RG_EEXIST;
    }
    if (h->nroutes == h->routes_cap) {
        unsigned cap = h->routes_cap ? h->routes_cap * 2 : 8;
        struct route *a = realloc(h->routes, cap * sizeof(*a));
        if (a == NULL)
            return RG_ENOMEM;
        h->routes = a;
        h->routes_cap = cap;
    }
    struct route r = {.prefix = prefix, .fn = fn, .opaque = opaque,
                      .plen = strlen(path)};
    r.path = strdup(path);
    r.method = method ? strdup(method) : NULL;
    if (r.path == NULL || (method != NULL && r.method == NULL)) {
        free(r.path);
        free(r.method);
        return RG_ENOMEM;
    }
    h->routes[h->nroutes++] = r;
    return 0;
}

static bool method_matches(const struct route *r, const char *method)
{
    if (r->method == NULL || strcmp(r->method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
}

/* The route for (method, path); NULL with *path_known set when some
 * route has the path but wants another method. */
static const struct route *find_route(const rg_http_t *h, const char *method,
                                      const char *path, bool *path_known)
{
    const struct route *best = NULL;
    *path_known = false;
    for (int pass = 0; pass < 2 && best == NULL; pass++) {
        bool want_prefix = pass == 1;
        for (unsigned i = 0; i < h->nroutes; i++) {
            const struct route *r = &h->routes[i];
            if (r->prefix != want_prefix)
                continue;
            bool hit = want_prefix ? strncmp(path, r->path, r->plen) == 0 :
                                     strcmp(path, r->path) == 0;
            if (!hit)
                continue;
            if (!method_matches(r, method)) {
                *path_known = true;
                continue;
            }
            if (best == NULL || r->plen > best->plen)
                best = r;
        }
    }
    return best;
}

/* "GET, POST" for a 405 on this path. */
static void allowed_methods(const rg_http_t *h, const char *path, char *out,
                            size_t size)
{
    size_t n = 0;
    out[0] = 0;
    for (unsigned i = 0; i < h->nroutes; i++) {
        const struct route *r = &h->routes[i];
        bool hit = r->prefix ? strncmp(path, r->path, r->plen) == 0 :
                               strcmp(path, r->path) == 0;
        if (!hit || r->method == NULL || strstr(out, r->method) != NULL)
            continue;
        int k = snprintf(out + n, size - n, "%s%s", n ? ", " : "", r->method);
        if (k < 0 || (size_t)k >= size - n)
            break;
        n += (size_t)k;
    }
}

/* ---- replies --------------------------------------------------------- */

static int reply_resp(rg_http_request_t *r, int status,
                      const char *content_type, struct MHD_Response *resp)
{
    if (resp == NULL)
        return RG_ENOMEM;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type ? content_type :
                                "text/plain; charset=utf-8") != MHD_YES) {
        MHD_destroy_response(resp);
        return RG_ENOMEM;
    }
    r->resp = resp;
    r->status = (unsigned)status;
    return 0;
}

int rg_http_reply(rg_http_request_t *r, int status, const char *content_type,
                  const void *body, size_t len)
{
    if (r == NULL || status < 100 || status > 599 || (body == NULL && len))
        return RG_EINVAL;
    if (r->resp != NULL)
        return RG_ESTATE;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    return reply_resp(r, status, content_type, resp);
}

int rg_http_reply_take(rg_http_request_t *r, int status,
                       const char *content_type, void *body, size_t len)
{
    if (r == NULL || status < 100 || status > 599 || (body == NULL && len)) {
        free(body);
        return RG_EINVAL;
    }
    if (r->resp != NULL) {
        free(body);
        return RG_ESTATE;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(
        len, body ? body : (void *)"", body ? free : NULL);
    if (resp == NULL)
        free(body);
    return reply_resp(r, status, content_type, resp);
}

int rg_http_replyf(rg_http_request_t *r, int status, const char *content_type,
                   const char *fmt, ...)
{
    if (fmt == NULL)
        return RG_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RG_ENOMEM;
    return rg_http_reply_take(r, status, content_type, s, (size_t)n);
}

int rg_http_reply_header(rg_http_request_t *r, const char *name,
                         const char *value)
{
    if (r == NULL || name == NULL || value == NULL || name[0] == 0 ||
        strpbrk(name, ":\r\n ") != NULL || strpbrk(value, "\r\n") != NULL)
        return RG_EINVAL;
    if (r->resp == NULL)
        return RG_ESTATE;
    return MHD_add_response_header(r->resp, name, value) == MHD_YES ?
           0 : RG_EINVAL;
}

/* The request is whole (or answered early): the client has done its
 * part, so its connection has no deadline while the handler runs and the
 * reply is sent; on_completed() sets the next one. */
static void request_whole(rg_http_request_t *r)
{
    if (r->conn == NULL)
        return;
    pthread_mutex_lock(&r->h->mu);
    r->conn->deadline_ms = 0;
    pthread_mutex_unlock(&r->h->mu);
}

/* Queues r's reply. */
static enum MHD_Result queue(rg_http_request_t *r)
{
    rg_http_t *h = r->h;
    if (r->resp == NULL) {
        count(&h->errors_5xx);
        rg_http_reply(r, 500, NULL, "500 the handler gave no reply\n", 30);
        if (r->resp == NULL)
            return MHD_NO; /* out of memory: drop the connection */
    } else if (r->status >= 500) {
        count(&h->errors_5xx);
    } else if (r->status >= 400) {
        count(&h->errors_4xx);
        if (r->status == 413)
            count(&h->too_large);
    }
    count(&h->requests);
    request_whole(r);
    enum MHD_Result rc = MHD_queue_response(r->mc, r->status, r->resp);
    MHD_destroy_response(r->resp); /* the connection holds its reference */
    r->resp = NULL;
    return rc;
}

/* A one-line text/plain error reply (with an Allow header when given),
 * queued at once. */
static enum MHD_Result reply_error(rg_http_request_t *r, int status,
                                   const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result reply_error(rg_http_request_t *r, int status,
                                   const char *allow, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    if (r->resp != NULL) {
        MHD_destroy_response(r->resp);
        r->resp = NULL;
    }
    rg_http_reply(r, status, NULL, line, (size_t)n);
    if (allow != NULL && r->resp != NULL)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_ALLOW, allow);
    return queue(r);
}

/* ---- request accessors ----------------------------------------------- */

const char *rg_http_method(const rg_http_request_t *r)
{
    return r->method;
}

const char *rg_http_path(const rg_http_request_t *r)
{
    return r->path;
}

const char *rg_http_query(const rg_http_request_t *r, const char *name)
{
    const char *v = NULL;
    size_t vlen = 0;
    if (name == NULL ||
        MHD_lookup_connection_value_n(r->mc, MHD_GET_ARGUMENT_KIND, name,
                                      strlen(name), &v, &vlen) != MHD_YES)
        return NULL;
    return v ? v : "";
}

struct each {
    bool (*fn)(void *, const char *, const char *);
    void *opaque;
    unsigned n;
};

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind,
                                const char *key, const char *value)
{
    (void)kind;
    struct each *e = cls;
    e->n++;
    return e->fn(e->opaque, key, value) ? MHD_YES : MHD_NO;
}

unsigned rg_http_query_each(const rg_http_request_t *r,
                            bool (*fn)(void *, const char *, const char *),
                            void *opaque)
{
    if (fn == NULL)
        return 0;
    struct each e = {fn, opaque, 0};
    MHD_get_connection_values(r->mc, MHD_GET_ARGUMENT_KIND, each_arg, &e);
    return e.n;
}

const char *rg_http_header(const rg_http_request_t *r, const char *name)
{
    if (name == NULL)
        return NULL;
    return MHD_lookup_connection_value(r->mc, MHD_HEADER_KIND, name);
}

const char *rg_http_body(const rg_http_request_t *r, size_t *len)
{
    if (len != NULL)
        *len = r->body ? r->len : 0;
    return r->body ? r->body : "";
}

/* ---- libmicrohttpd callbacks ------------------------------------------ */

static struct conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Body bytes: append while within body_max, else drop them all. */
static void take_body(rg_http_request_t *r, const char *data, size_t n)
{
    if (r->too_big)
        return;
    if (n > r->h->o.body_max - r->len) {
        r->too_big = true;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n + 1)
            cap *= 2;
        if (cap > r->h->o.body_max + 1)
            cap = r->h->o.body_max + 1;
        char *b = realloc(r->body, cap);
        if (b == NULL) { /* treat as too large: never fail open */
            r->too_big = true;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return;
        }
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    rg_http_t *h = cls;
    rg_http_request_t *r = *con_cls;
    if (r == NULL) {
        /* headers are in: route now, so a refusal needs no body */
        if ((r = calloc(1, sizeof(*r))) == NULL)
            return MHD_NO;
        *con_cls = r;
        r->h = h;
        r->mc = mc;
        r->conn = conn_of(mc);
        r->method = method;
        r->path = url;
        bool path_known;
        r->route = find_route(h, method, url, &path_known);
        if (r->route == NULL && path_known) {
            char allow[128];
            allowed_methods(h, url, allow, sizeof(allow));
            return reply_error(r, 405, allow,
                               "405 method %.16s not allowed on this path\n",
                               method);
        }
        if (r->route == NULL)
            return reply_error(r, 404, NULL, "404 no such path\n");
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                     "Content-Length");
        if (cl != NULL) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno != 0 || *end != 0 || n > h->o.body_max)
                return reply_error(r, 413, NULL,
                                   "413 request body too large: limit %zu "
                                   "bytes\n", h->o.body_max);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        take_body(r, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    request_whole(r); /* a slow handler is not the client's fault */
    if (r->too_big)
        return reply_error(r, 413, NULL,
                           "413 request body too large: limit %zu bytes\n",
                           h->o.body_max);
    r->route->fn(r, r->route->opaque);
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    rg_http_t *h = cls;
    rg_http_request_t *r = *con_cls;
    if (r != NULL) {
        if (r->resp != NULL)
            MHD_destroy_response(r->resp);
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
    /* the next request on this connection has its own deadline */
    struct conn *c = conn_of(mc);
    if (c != NULL) {
        pthread_mutex_lock(&h->mu);
        c->deadline_ms = now_ms() + (int64_t)h->o.request_timeout_s * 1000;
        pthread_mutex_unlock(&h->mu);
    }
}

static void on_connection(void *cls, struct MHD_Connection *mc,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    rg_http_t *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn *c = calloc(1, sizeof(*c));
        *socket_context = c;
        if (c == NULL)
            return; /* no deadline for it: the idle timeout still applies */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        count(&h->connections);
        pthread_mutex_lock(&h->mu);
        c->deadline_ms = now_ms() + (int64_t)h->o.request_timeout_s * 1000;
        c->next = h->conns.next;
        c->prev = &h->conns;
        h->conns.next->prev = c;
        h->conns.next = c;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    /* CLOSED: called before libmicrohttpd closes the fd (see the top) */
    struct conn *c = *socket_context;
    if (c == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    pthread_mutex_unlock(&h->mu);
    free(c);
    *socket_context = NULL;
}

static void *watchdog_main(void *arg)
{
    rg_http_t *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        int64_t now = now_ms();
        for (struct conn *c = h->conns.next; c != &h->conns; c = c->next) {
            if (c->deadline_ms != 0 && now >= c->deadline_ms && c->fd >= 0) {
                /* counted first, so a client that sees the socket end
                 * sees the count too */
                count(&h->timed_out);
                /* under h->mu: c is live, so c->fd is still its socket */
                shutdown(c->fd, SHUT_RDWR);
                c->deadline_ms = 0;
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    rg_http_t *h = cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    h->o.log(h->o.log_opaque, line);
}

int rg_http_start(rg_http_t *h, char *errstr, size_t errstr_size)
{
    if (h == NULL)
        return RG_EINVAL;
    if (h->started)
        return RG_ESTATE;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
#ifdef __linux__
    flags |= MHD_USE_EPOLL;
#else
    flags |= MHD_USE_POLL;
#endif
    if (h->v6)
        flags |= MHD_USE_IPv6;
    if (h->o.log != NULL)
        flags |= MHD_USE_ERROR_LOG;
    struct MHD_OptionItem ops[16];
    unsigned n = 0;
    if (h->o.log != NULL)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER,
                                           (intptr_t)on_log, h};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, h->fd, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                       (intptr_t)h->o.max_connections, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                       (intptr_t)h->o.idle_timeout_s, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                       (intptr_t)h->o.header_max, NULL};
    if (h->o.max_per_ip > 0)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                           (intptr_t)h->o.max_per_ip, NULL};
    if (h->o.threads > 1)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                           (intptr_t)h->o.threads, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                       (intptr_t)on_completed, h};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                       (intptr_t)on_connection, h};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    pthread_mutex_lock(&h->mu);
    h->stopping = false;
    pthread_mutex_unlock(&h->mu);
    if (pthread_create(&h->watchdog, NULL, watchdog_main, h) != 0) {
        errf(errstr, errstr_size, "http: cannot start the watchdog thread");
        return RG_ESYS;
    }
    h->watchdog_running = true;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                            MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (h->d == NULL) {
        errf(errstr, errstr_size,
             "http: libmicrohttpd did not start on port %u", h->port);
        pthread_mutex_lock(&h->mu);
        h->stopping = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->watchdog, NULL);
        h->watchdog_running = false;
        return RG_ESYS;
    }
    h->started = true;
    return 0;
}

void rg_http_destroy(rg_http_t *h)
{
    if (h == NULL)
        return;
    if (h->d != NULL) {
        /* closes the listen socket too (see the top of the file) */
        MHD_stop_daemon(h->d);
        h->fd = -1;
        h->d = NULL;
    }
    if (h->watchdog_running) {
        pthread_mutex_lock(&h->mu);
        h->stopping = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->watchdog, NULL);
    }
    if (h->fd >= 0)
        close(h->fd);
    for (unsigned i = 0; i < h->nroutes; i++) {
        free(h->routes[i].method);
        free(h->routes[i].path);
    }
    free(h->routes);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void rg_http_stats(const rg_http_t *h, rg_http_stats_t *out)
{
    rg_http_t *m = (rg_http_t *)h;
    /* relaxed: statistics, each counter on its own */
    out->requests = atomic_load_explicit(&m->requests, memory_order_relaxed);
    out->errors_4xx = atomic_load_explicit(&m->errors_4xx,
                                           memory_order_relaxed);
    out->too_large = atomic_load_explicit(&m->too_large, memory_order_relaxed);
    out->errors_5xx = atomic_load_explicit(&m->errors_5xx,
                                           memory_order_relaxed);
    out->connections = atomic_load_explicit(&m->connections,
                                            memory_order_relaxed);
    out->timed_out = atomic_load_explicit(&m->timed_out, memory_order_relaxed);
}

/* ---- helpers ---------------------------------------------------------- */

static void serve_render(rg_http_request_t *req, rg_metrics_t *m,
                         rg_metrics_format_t fmt)
{
    char *text = NULL;
    size_t len = 0;
    int rc = rg_metrics_render(m, fmt, &text, &len);
    if (rc != 0) {
        rg_http_replyf(req, 500, NULL, "500 metrics: %s\n", rg_strerror(rc));
        return;
    }
    rg_http_reply_take(req, 200, fmt == RG_METRICS_TEXT ?
                       RG_METRICS_TEXT_CONTENT_TYPE :
                       RG_METRICS_JSON_CONTENT_TYPE, text, len);
    rg_http_reply_header(req, "Cache-Control", "no-store");
}

static void on_metrics(rg_http_request_t *req, void *opaque)
{
    serve_render(req, opaque, RG_METRICS_TEXT);
}

static void on_stats_json(rg_http_request_t *req, void *opaque)
{
    serve_render(req, opaque, RG_METRICS_JSON);
}

int rg_http_serve_metrics(rg_http_t *h, rg_metrics_t *m)
{
    if (m == NULL)
        return RG_EINVAL;
    int rc = rg_http_route(h, "GET", "/metrics", 0, on_metrics, m);
    if (rc == 0)
        rc = rg_http_route(h, "GET", "/stats.json", 0, on_stats_json, m);
    return rc;
}

static void probe(rg_http_request_t *req, rg_http_probe_cb *cb, void *opaque)
{
    char reason[200] = "";
    if (cb == NULL || cb(opaque, reason, sizeof(reason))) {
        rg_http_reply(req, 200, NULL, "ok\n", 3);
        return;
    }
    reason[sizeof(reason) - 1] = 0;
    for (char *p = reason; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    rg_http_replyf(req, 503, NULL, "503 %s\n", reason[0] ? reason : "not ok");
}

static void on_healthz(rg_http_request_t *req, void *opaque)
{
    struct probes *p = opaque;
    probe(req, p->alive, p->opaque);
}

static void on_readyz(rg_http_request_t *req, void *opaque)
{
    struct probes *p = opaque;
    probe(req, p->ready, p->opaque);
}

int rg_http_serve_health(rg_http_t *h, rg_http_probe_cb *alive,
                         rg_http_probe_cb *ready, void *opaque)
{
    if (h == NULL)
        return RG_EINVAL;
    if (h->started)
        return RG_ESTATE;
    h->probes = (struct probes){alive, ready, opaque};
    int rc = rg_http_route(h, "GET", "/healthz", 0, on_healthz, &h->probes);
    if (rc == 0)
        rc = rg_http_route(h, "GET", "/readyz", 0, on_readyz, &h->probes);
    return rc;
}
