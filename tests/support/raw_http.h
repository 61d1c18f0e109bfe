/*
 * raw_http.h - a raw-socket HTTP/1.1 client for the tests of the HTTP
 * listener and of railgun serve (test_http.c, test_serve.c): dial,
 * send, read to EOF, parse the status and the body. Deliberately not a
 * library client: the tests check what goes over the wire, byte by byte
 * (slow clients, bodies with NULs, oversized headers). Criterion asserts
 * inside, so include it after support/test.h.
 */
#ifndef RG_TEST_RAW_HTTP_H
#define RG_TEST_RAW_HTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* each test uses some of these */
#define RG_RAW_HTTP_FN __attribute__((unused)) static

RG_RAW_HTTP_FN double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

RG_RAW_HTTP_FN int dial(uint16_t port, double timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0,
                 "connect: %s", strerror(errno));
    struct timeval tv = {.tv_sec = (time_t)timeout_s,
                         .tv_usec = (suseconds_t)((timeout_s -
                                                   (time_t)timeout_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends all of buf; false when the peer stopped taking it. */
RG_RAW_HTTP_FN bool send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Reads until EOF (or the receive timeout) into a new string. */
RG_RAW_HTTP_FN char *read_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1024 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = 0;
    if (len != NULL)
        *len = n;
    return buf;
}

struct reply {
    int status;
    char *raw;     /* status line, headers, body */
    const char *body;
};

RG_RAW_HTTP_FN void reply_free(struct reply *r)
{
    free(r->raw);
}

RG_RAW_HTTP_FN struct reply parse(char *raw)
{
    struct reply r = {.raw = raw, .status = -1, .body = ""};
    if (strncmp(raw, "HTTP/1.", 7) == 0)
        r.status = atoi(raw + 9);
    char *sep = strstr(raw, "\r\n\r\n");
    if (sep != NULL)
        r.body = sep + 4;
    return r;
}

/* One request on its own connection ("Connection: close" added); the
 * body may hold NULs (len). */
RG_RAW_HTTP_FN struct reply request_n(uint16_t port, const char *method,
                              const char *target, const char *body,
                              size_t len)
{
    int fd = dial(port, 10);
    char head[2048];
    snprintf(head, sizeof(head),
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             "Content-Length: %zu\r\n\r\n", method, target, len);
    cr_assert(send_all(fd, head, strlen(head)));
    if (len > 0)
        cr_assert(send_all(fd, body, len));
    char *raw = read_all(fd, NULL);
    close(fd);
    return parse(raw);
}

RG_RAW_HTTP_FN struct reply request(uint16_t port, const char *method,
                            const char *target, const char *body)
{
    return request_n(port, method, target, body, body ? strlen(body) : 0);
}

RG_RAW_HTTP_FN bool has_header(const struct reply *r, const char *line)
{
    const char *end = strstr(r->raw, "\r\n\r\n");
    const char *hit = strcasestr(r->raw, line);
    return hit != NULL && (end == NULL || hit < end);
}

RG_RAW_HTTP_FN long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return v;
}

#endif /* RG_TEST_RAW_HTTP_H */
