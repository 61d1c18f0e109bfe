/*
 * loadgen.c - the blocking HTTP/1.1 client and the load driver
 * (loadgen.h).
 */
#define _GNU_SOURCE
#include "loadgen.h"
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void rg_hc_init(rg_hc_t *c, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    c->port = port;
    c->fd = -1;
}

static void hang_up(rg_hc_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = c->next = 0;
}

void rg_hc_fini(rg_hc_t *c)
{
    hang_up(c);
    free(c->buf);
    free(c->req);
    c->buf = c->req = NULL;
}

static int dial(rg_hc_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(c->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Reads one reply; 0, or -1 (closed, timeout, malformed). Bytes past it
 * (the next pipelined reply's) stay in the buffer for the next call. */
static int read_reply(rg_hc_t *c)
{
    if (c->next > 0) {
        memmove(c->buf, c->buf + c->next, c->len - c->next);
        c->len -= c->next;
        c->next = 0;
        c->buf[c->len] = '\0';
    }
    size_t head = 0, need = 0;
    bool have_head = false, closes = false;
    for (;;) {
        if (!have_head && c->len > 0) {
            char *sep = strstr(c->buf, "\r\n\r\n");
            if (sep != NULL) {
                head = (size_t)(sep - c->buf) + 4;
                if (strncmp(c->buf, "HTTP/1.", 7) != 0)
                    return -1;
                c->status = atoi(c->buf + 9);
                const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
                if (cl == NULL || cl > sep)
                    return -1;
                need = head + (size_t)strtoull(cl + 17, NULL, 10);
                const char *xc = strcasestr(c->buf, "\r\nX-Cache:");
                c->xcache[0] = '\0';
                if (xc != NULL && xc < sep)
                    sscanf(xc + 10, " %15[a-z]", c->xcache);
                const char *cn = strcasestr(c->buf, "\r\nConnection: close");
                closes = cn != NULL && cn < sep;
                have_head = true;
            }
        }
        if (have_head && c->len >= need)
            break;
        if (c->len + 4096 > c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 16384;
            char *b = realloc(c->buf, nc);
            if (b == NULL)
                return -1;
            c->buf = b;
            c->cap = nc;
        }
        ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (k <= 0)
            return -1;
        c->len += (size_t)k;
        c->buf[c->len] = '\0';
    }
    c->body = c->buf + head;
    c->body_len = need - head;
    c->next = need;
    if (closes) {
        close(c->fd);
        c->fd = -1;
        c->len = c->next = 0;
    }
    return 0;
}

int rg_hc_queue(rg_hc_t *c, const char *method, const char *path,
                const char *body, size_t len)
{
    size_t want = c->req_len + strlen(method) + strlen(path) + len + 256;
    if (want > c->req_cap) {
        size_t nc = c->req_cap ? c->req_cap : 4096;
        while (nc < want)
            nc *= 2;
        char *r = realloc(c->req, nc);
        if (r == NULL)
            return -1;
        c->req = r;
        c->req_cap = nc;
    }
    size_t room = c->req_cap - c->req_len;
    int n = snprintf(c->req + c->req_len, room,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                     "%zu\r\n%s\r\n", method, path, len,
                     len ? "Content-Type: application/json\r\n" : "");
    if (n < 0 || (size_t)n + len >= room)
        return -1; /* a method longer than the slack: refused, not cut */
    c->req_len += (size_t)n;
    if (len > 0)
        memcpy(c->req + c->req_len, body, len);
    c->req_len += len;
    return 0;
}

int rg_hc_send(rg_hc_t *c)
{
    size_t n = c->req_len;
    c->req_len = 0;
    if (c->fd < 0 && dial(c) != 0)
        return -1;
    if (!send_all(c->fd, c->req, n)) {
        hang_up(c);
        return -1;
    }
    return 0;
}

int rg_hc_read(rg_hc_t *c)
{
    if (c->fd < 0 || read_reply(c) != 0) {
        hang_up(c);
        return -1;
    }
    return 0;
}

int rg_hc_request(rg_hc_t *c, const char *method, const char *path,
                  const char *body, size_t len)
{
    c->req_len = 0;
    if (rg_hc_queue(c, method, path, body, len) != 0)
        return -1;
    size_t n = c->req_len;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = c->fd < 0;
        c->req_len = n; /* rg_hc_send() consumes the queue */
        if (rg_hc_send(c) == 0 && rg_hc_read(c) == 0)
            return 0;
        if (fresh)
            return -1; /* a new connection failed: do not loop */
    }
    return -1;
}

/* ---- latency ------------------------------------------------------------- */

/* bucket b covers up to 1e-6 * 10^(b / 32) s: 32 per decade, 8 decades */
void rg_lat_add(rg_lat_t *h, double s)
{
    int b = s <= 1e-6 ? 0 : (int)ceil(log10(s * 1e6) * 32);
    if (b >= RG_LAT_BUCKETS)
        b = RG_LAT_BUCKETS - 1;
    h->n[b]++;
    h->count++;
}

void rg_lat_merge(rg_lat_t *into, const rg_lat_t *h)
{
    for (int b = 0; b < RG_LAT_BUCKETS; b++)
        into->n[b] += h->n[b];
    into->count += h->count;
}

double rg_lat_quantile(const rg_lat_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count), seen = 0;
    if (rank == 0)
        rank = 1;
    for (int b = 0; b < RG_LAT_BUCKETS; b++) {
        seen += h->n[b];
        if (seen >= rank)
            return 1e-6 * pow(10, b / 32.0);
    }
    return 100;
}

/* ---- the driver ------------------------------------------------------------ */

struct worker {
    rg_load_t *l;
    unsigned t;
    pthread_t th;
    uint64_t ok, failed;
    rg_lat_t lat;
};

static void count(struct worker *w, const rg_hc_t *c, bool replied)
{
    rg_load_t *l = w->l;
    if (replied && (l->done ? l->done(l->opaque, w->t, c) : c->status < 400))
        w->ok++;
    else
        w->failed++;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    rg_load_t *l = w->l;
    rg_hc_t c;
    rg_hc_init(&c, l->port);
    char path[8192];
    size_t body_cap = 1 << 20;
    char *body = malloc(body_cap);
    unsigned depth = l->depth > 1 ? l->depth : 1;
    double end = l->seconds > 0 ? now_s() + l->seconds : 0;
    bool more = body != NULL;
    for (uint64_t i = 0; more;) {
        if ((l->max_requests && i >= l->max_requests) ||
            (end > 0 && now_s() >= end))
            break;
        const char *method = "GET";
        size_t blen = 0;
        if (depth == 1) {
            /* one request at a time; rg_hc_request() redials a
             * connection the server closed while it was idle */
            if (!l->next(l->opaque, w->t, i++, &method, path, sizeof(path),
                         body, body_cap, &blen))
                break;
            double t0 = now_s();
            int rc = rg_hc_request(&c, method, path, body, blen);
            rg_lat_add(&w->lat, now_s() - t0);
            count(w, &c, rc == 0);
            continue;
        }
        /* HTTP/1.1 pipelining: `depth` requests written at once, then
         * their replies in order; each is still its own request */
        unsigned n = 0;
        while (n < depth && !(l->max_requests && i >= l->max_requests)) {
            if (!l->next(l->opaque, w->t, i, &method, path, sizeof(path),
                         body, body_cap, &blen) ||
                rg_hc_queue(&c, method, path, body, blen) != 0) {
                more = false;
                break;
            }
            n++, i++;
        }
        if (n == 0)
            break;
        double t0 = now_s();
        unsigned got = 0;
        if (rg_hc_send(&c) == 0)
            for (; got < n && rg_hc_read(&c) == 0; got++) {
                rg_lat_add(&w->lat, now_s() - t0);
                count(w, &c, true);
            }
        for (; got < n; got++)
            count(w, &c, false); /* the connection failed under them */
    }
    free(body);
    rg_hc_fini(&c);
    return NULL;
}

int rg_load_run(rg_load_t *l)
{
    struct worker *w = calloc(l->threads, sizeof(*w));
    if (w == NULL)
        return -1;
    double t0 = now_s();
    unsigned started = 0;
    for (; started < l->threads; started++) {
        w[started].l = l;
        w[started].t = started;
        if (pthread_create(&w[started].th, NULL, worker_main, &w[started]))
            break;
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(w[i].th, NULL);
        l->ok += w[i].ok;
        l->failed += w[i].failed;
        rg_lat_merge(&l->lat, &w[i].lat);
    }
    l->elapsed = now_s() - t0;
    free(w);
    return started == l->threads ? 0 : -1;
}
