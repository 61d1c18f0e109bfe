/*
 * fetch.c - the HTTP GET client (see fetch.h).
 *
 * A non-blocking socket and poll() against one deadline: connect (each
 * resolved address in turn), send the request, read until the server
 * closes or the body is complete, then parse status line, headers and
 * body. The whole answer is buffered (at most max plus the headers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "fetch.h"
#include "railgun/error.h"

#define HEADERS_MAX (64 * 1024)

static void seterr(char *e, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *e, size_t n, const char *fmt, ...)
{
    if (e == NULL || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e, n, fmt, ap);
    va_end(ap);
}

int rg_url_parse(const char *url, rg_url_t *out, char *errstr, size_t n)
{
    memset(out, 0, sizeof(*out));
    const char *s = url;
    if (strncmp(s, "http://", 7) == 0)
        s += 7;
    else if (strstr(s, "://") != NULL) {
        seterr(errstr, n, "%s: only http:// URLs", url);
        return RG_EINVAL;
    }
    const char *hend, *rest;
    if (*s == '[') {
        hend = strchr(s, ']');
        if (hend == NULL) {
            seterr(errstr, n, "%s: unterminated [IPv6 address]", url);
            return RG_EINVAL;
        }
        if ((size_t)(hend - s - 1) >= sizeof(out->host) || hend == s + 1) {
            seterr(errstr, n, "%s: bad host", url);
            return RG_EINVAL;
        }
        memcpy(out->host, s + 1, (size_t)(hend - s - 1));
        rest = hend + 1;
    } else {
        hend = s + strcspn(s, ":/?");
        if (hend == s || (size_t)(hend - s) >= sizeof(out->host)) {
            seterr(errstr, n, "%s: no host", url);
            return RG_EINVAL;
        }
        memcpy(out->host, s, (size_t)(hend - s));
        rest = hend;
    }
    snprintf(out->port, sizeof(out->port), "80");
    if (*rest == ':') {
        rest++;
        size_t k = strspn(rest, "0123456789");
        long port = k > 0 && k < 6 ? strtol(rest, NULL, 10) : 0;
        if (port < 1 || port > 65535) {
            seterr(errstr, n, "%s: bad port", url);
            return RG_EINVAL;
        }
        snprintf(out->port, sizeof(out->port), "%ld", port);
        rest += k;
    }
    if (*rest != '\0' && *rest != '/' && *rest != '?') {
        seterr(errstr, n, "%s: unexpected \"%s\" after the host", url, rest);
        return RG_EINVAL;
    }
    if (strlen(rest) + 2 > sizeof(out->path)) {
        seterr(errstr, n, "%s: path too long", url);
        return RG_EINVAL;
    }
    snprintf(out->path, sizeof(out->path), "%s%s", *rest == '/' ? "" : "/",
             rest);
    for (const char *p = out->path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            seterr(errstr, n, "%s: a blank or control character in the "
                   "path", url);
            return RG_EINVAL;
        }
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Waits for ev on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short ev, double deadline)
{
    for (;;) {
        double left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, (int)(left + 1));
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static int dial(const rg_url_t *u, double deadline, char *errstr, size_t n)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(u->host, u->port, &hints, &res);
    if (gai != 0) {
        seterr(errstr, n, "%s: %s", u->host, gai_strerror(gai));
        return RG_EIO;
    }
    int rc = RG_EIO;
    seterr(errstr, n, "%s:%s: no address", u->host, u->port);
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
                        SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            freeaddrinfo(res);
            return fd;
        }
        if (errno == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline);
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (w > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) ==
                             0 && soerr == 0) {
                freeaddrinfo(res);
                return fd;
            }
            if (w == 0) {
                seterr(errstr, n, "%s:%s: connect timed out", u->host,
                       u->port);
                rc = RG_ETIMEDOUT;
            } else {
                seterr(errstr, n, "%s:%s: connect: %s", u->host, u->port,
                       strerror(soerr ? soerr : errno));
                rc = RG_EIO;
            }
        } else {
            seterr(errstr, n, "%s:%s: connect: %s", u->host, u->port,
                   strerror(errno));
        }
        close(fd);
        if (rc == RG_ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

/* The value of header `name` in [h, end) (CRLF lines), into v; false if
 * absent. */
static bool header(const char *h, const char *end, const char *name,
                   char *v, size_t vsize)
{
    size_t nl = strlen(name);
    while (h < end) {
        const char *e = memmem(h, (size_t)(end - h), "\r\n", 2);
        if (e == NULL)
            e = end;
        if ((size_t)(e - h) > nl && h[nl] == ':' &&
            strncasecmp(h, name, nl) == 0) {
            const char *s = h + nl + 1;
            while (s < e && (*s == ' ' || *s == '\t'))
                s++;
            size_t k = (size_t)(e - s);
            while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t'))
                k--;
            if (k >= vsize)
                k = vsize - 1;
            memcpy(v, s, k);
            v[k] = '\0';
            return true;
        }
        h = e + 2;
    }
    return false;
}

/* Decodes a chunked body in place; its length, or -1 when malformed or
 * incomplete. */
static long dechunk(char *b, size_t len)
{
    size_t r = 0, w = 0;
    for (;;) {
        char *e = memmem(b + r, len - r, "\r\n", 2);
        if (e == NULL)
            return -1;
        char *end;
        unsigned long sz = strtoul(b + r, &end, 16);
        if (end == b + r)
            return -1;
        r = (size_t)(e - b) + 2;
        if (sz == 0)
            return (long)w;
        if (sz > len - r || len - r - sz < 2)
            return -1;
        memmove(b + w, b + r, sz);
        w += sz;
        r += sz + 2;
    }
}

int rg_fetch(const rg_url_t *u, int timeout_ms, size_t max, int *status,
             char **body, size_t *len, char *errstr, size_t n)
{
    *body = NULL;
    *len = 0;
    *status = 0;
    double deadline = now_ms() + timeout_ms;
    int fd = dial(u, deadline, errstr, n);
    if (fd < 0)
        return fd;
    char req[1600];
    bool v6 = strchr(u->host, ':') != NULL;
    int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s%s%s:%s"
                      "\r\nUser-Agent: railgun\r\nAccept: */*\r\n"
                      "Connection: close\r\n\r\n", u->path, v6 ? "[" : "",
                      u->host, v6 ? "]" : "", u->port);
    int rc = 0;
    for (int off = 0; off < rl && rc == 0;) {
        ssize_t w = send(fd, req + off, (size_t)(rl - off), MSG_NOSIGNAL);
        if (w > 0) {
            off += (int)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r <= 0) {
                rc = r == 0 ? RG_ETIMEDOUT : RG_EIO;
                seterr(errstr, n, "%s:%s: send %s", u->host, u->port,
                       r == 0 ? "timed out" : strerror(errno));
            }
        } else {
            rc = RG_EIO;
            seterr(errstr, n, "%s:%s: send: %s", u->host, u->port,
                   strerror(errno));
        }
    }
    size_t cap = 16384, got = 0;
    char *b = rc == 0 ? malloc(cap) : NULL;
    if (rc == 0 && b == NULL)
        rc = RG_ENOMEM;
    while (rc == 0) {
        if (got + 1 >= cap) {
            if (cap >= max + HEADERS_MAX + 1) {
                rc = RG_ERANGE;
                seterr(errstr, n, "%s:%s%s: the answer is over %zu bytes",
                       u->host, u->port, u->path, max);
                break;
            }
            cap *= 2;
            char *nb = realloc(b, cap);
            if (nb == NULL) {
                rc = RG_ENOMEM;
                break;
            }
            b = nb;
        }
        ssize_t r = recv(fd, b + got, cap - got - 1, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w <= 0) {
                rc = w == 0 ? RG_ETIMEDOUT : RG_EIO;
                seterr(errstr, n, "%s:%s%s: %s after %zu bytes", u->host,
                       u->port, u->path, w == 0 ? "timed out" :
                       strerror(errno), got);
            }
        } else {
            rc = RG_EIO;
            seterr(errstr, n, "%s:%s: receive: %s", u->host, u->port,
                   strerror(errno));
        }
    }
    close(fd);
    if (rc != 0) {
        free(b);
        return rc;
    }
    b[got] = '\0';
    int st = 0;
    char *he = memmem(b, got, "\r\n\r\n", 4);
    if (he == NULL || sscanf(b, "HTTP/1.%*1[01] %3d", &st) != 1 || st < 100) {
        free(b);
        seterr(errstr, n, "%s:%s%s: the answer is not HTTP/1.x", u->host,
               u->port, u->path);
        return RG_EDECODE;
    }
    char *bs = he + 4;
    size_t blen = got - (size_t)(bs - b);
    char v[64];
    if (header(b, he, "Transfer-Encoding", v, sizeof(v)) &&
        strcasecmp(v, "chunked") == 0) {
        long k = dechunk(bs, blen);
        if (k < 0) {
            free(b);
            seterr(errstr, n, "%s:%s%s: a broken chunked body", u->host,
                   u->port, u->path);
            return RG_EDECODE;
        }
        blen = (size_t)k;
    } else if (header(b, he, "Content-Length", v, sizeof(v))) {
        char *end;
        unsigned long long cl = strtoull(v, &end, 10);
        if (*end != '\0' || cl > blen) {
            free(b);
            seterr(errstr, n, "%s:%s%s: the body ended after %zu of %s "
                   "bytes", u->host, u->port, u->path, blen, v);
            return RG_EDECODE;
        }
        blen = (size_t)cl;
    }
    if (blen > max) {
        free(b);
        seterr(errstr, n, "%s:%s%s: the body is over %zu bytes", u->host,
               u->port, u->path, max);
        return RG_ERANGE;
    }
    memmove(b, bs, blen);
    b[blen] = '\0';
    *body = b;
    *len = blen;
    *status = st;
    return 0;
}
