/*
 * test_http.c - the HTTP listener over real libmicrohttpd on loopback,
 * driven by raw sockets: exact and prefix routes, query parameters,
 * bodies and HEAD; 404, 405 with Allow, 500 for a handler that does not
 * reply; 413 for a 10 MB body (Content-Length or chunked) with the
 * handler never called and memory bounded; a body of exactly body_max
 * passes; headers or a URI beyond header_max get 431 and 414; a slowloris that stops sending does not hold up other clients
 * and is closed after the idle timeout, one that trickles is shut at the
 * request deadline, which spares slow handlers and busy keep-alive
 * connections; past max_connections a client waits in the backlog
 * until a slot frees; /metrics, /stats.json, /healthz, /readyz; bad listen
 * addresses and a port in use are refused with a reason; many clients
 * at once all get their answers; destroy is prompt and frees the port.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include "support/raw_http.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "railgun/error.h"
#include "railgun/http.h"
#include "railgun/metrics.h"

/* ---- handlers ----------------------------------------------------------- */

static _Atomic unsigned handled;

static bool append_arg(void *opaque, const char *name, const char *value)
{
    char *out = opaque;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "[%s=%s]", name, value ? value : "(none)");
    return true;
}

static void on_echo(rg_http_request_t *req, void *opaque)
{
    (void)opaque;
    /* relaxed: a count the test reads after the replies came back */
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    size_t blen;
    const char *body = rg_http_body(req, &blen);
    char args[512] = "";
    rg_http_query_each(req, append_arg, args);
    const char *name = rg_http_query(req, "name");
    rg_http_replyf(req, 200, "text/plain", "%s %s name=%s args=%s len=%zu "
                   "body=%.32s", rg_http_method(req), rg_http_path(req),
                   name ? name : "(absent)", args, blen, body);
    cr_assert_eq(rg_http_reply(req, 200, NULL, "x", 1), RG_ESTATE,
                 "one reply per request");
    rg_http_reply_header(req, "X-Test", "yes");
}

static void on_silent(rg_http_request_t *req, void *opaque)
{
    (void)req, (void)opaque;
}

static void on_tree(rg_http_request_t *req, void *opaque)
{
    rg_http_replyf(req, 200, NULL, "%s under %s", rg_http_path(req),
                   (const char *)opaque);
}

static rg_http_t *listener(const rg_http_options_t *o)
{
    char err[256] = "";
    rg_http_t *h = rg_http_new("127.0.0.1:0", o, err, sizeof(err));
    cr_assert_not_null(h, "new: %s", err);
    cr_assert_gt(rg_http_port(h), 0);
    cr_assert_eq(rg_http_route(h, "GET", "/echo", 0, on_echo, NULL), 0);
    cr_assert_eq(rg_http_route(h, "POST", "/echo", 0, on_echo, NULL), 0);
    cr_assert_eq(rg_http_route(h, "GET", "/silent", 0, on_silent, NULL), 0);
    cr_assert_eq(rg_http_route(h, NULL, "/v1/", RG_HTTP_PREFIX, on_tree,
                               (void *)"/v1/"), 0);
    cr_assert_eq(rg_http_route(h, NULL, "/v1/videos/", RG_HTTP_PREFIX,
                               on_tree, (void *)"/v1/videos/"), 0);
    cr_assert_eq(rg_http_route(h, "GET", "/echo", 0, on_echo, NULL), RG_EEXIST);
    cr_assert_eq(rg_http_route(h, "GET", "no-slash", 0, on_echo, NULL),
                 RG_EINVAL);
    return h;
}

static rg_http_t *started(const rg_http_options_t *o)
{
    rg_http_t *h = listener(o);
    char err[256] = "";
    cr_assert_eq(rg_http_start(h, err, sizeof(err)), 0, "start: %s", err);
    cr_assert_eq(rg_http_start(h, err, sizeof(err)), RG_ESTATE);
    cr_assert_eq(rg_http_route(h, "GET", "/late", 0, on_echo, NULL), RG_ESTATE);
    return h;
}

/* ---- routes -------------------------------------------------------------- */

Test(http, routes_query_parameters_bodies_and_head)
{
    rg_http_t *h = started(NULL);
    uint16_t port = rg_http_port(h);

    struct reply r = request(port, "GET", "/echo?name=a%20b&flag&x=1", NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_str_eq(r.body, "GET /echo name=a b args=[name=a b][flag=(none)]"
                     "[x=1] len=0 body=", "%s", r.raw);
    cr_assert(has_header(&r, "\r\nX-Test: yes\r\n"), "%s", r.raw);
    cr_assert(has_header(&r, "\r\nContent-Type: text/plain\r\n"), "%s", r.raw);
    reply_free(&r);

    r = request(port, "POST", "/echo", "{\"video_id\":42}");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "POST /echo name=(absent) args= len=15 "
                     "body={\"video_id\":42}", "%s", r.raw);
    reply_free(&r);

    /* the longest prefix wins; any method on a NULL-method route */
    r = request(port, "DELETE", "/v1/videos/7/likes", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "/v1/videos/7/likes under /v1/videos/");
    reply_free(&r);
    r = request(port, "GET", "/v1/likes", NULL);
    cr_assert_str_eq(r.body, "/v1/likes under /v1/");
    reply_free(&r);

    /* HEAD on a GET route: the headers, no body */
    r = request(port, "HEAD", "/echo", NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_str_eq(r.body, "", "%s", r.raw);
    reply_free(&r);
    rg_http_destroy(h);
}

Test(http, unknown_path_404_wrong_method_405_silent_handler_500)
{
    rg_http_t *h = started(NULL);
    uint16_t port = rg_http_port(h);
    unsigned before = atomic_load(&handled);

    struct reply r = request(port, "GET", "/nope", NULL);
    cr_assert_eq(r.status, 404, "%s", r.raw);
    cr_assert_str_eq(r.body, "404 no such path\n");
    reply_free(&r);

    r = request(port, "PUT", "/echo", "x");
    cr_assert_eq(r.status, 405, "%s", r.raw);
    cr_assert(has_header(&r, "\r\nAllow: GET, POST\r\n"), "%s", r.raw);
    cr_assert_str_eq(r.body, "405 method PUT not allowed on this path\n");
    reply_free(&r);

    r = request(port, "GET", "/silent", NULL);
    cr_assert_eq(r.status, 500, "%s", r.raw);
    cr_assert_str_eq(r.body, "500 the handler gave no reply\n");
    reply_free(&r);

    cr_assert_eq(atomic_load(&handled), before, "no echo handler ran");
    rg_http_stats_t st;
    rg_http_stats(h, &st);
    cr_assert_eq(st.requests, 3);
    cr_assert_eq(st.errors_4xx, 2);
    cr_assert_eq(st.errors_5xx, 1);
    rg_http_destroy(h);
}

/* ---- bodies --------------------------------------------------------------- */

#define TEN_MB (10u << 20)

/* POSTs a 10 MB body (Content-Length or chunked) as fast as the server
 * takes it; returns the reply (the server may stop reading early). */
static struct reply post_10mb(uint16_t port, bool chunked)
{
    int fd = dial(port, 10);
    char head[256];
    if (chunked)
        snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: x\r\n"
                 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    else
        snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: %u\r\nConnection: close\r\n\r\n", TEN_MB);
    cr_assert(send_all(fd, head, strlen(head)));
    static char chunk[64 << 10];
    memset(chunk, 'a', sizeof(chunk));
    for (size_t sent = 0; sent < TEN_MB; sent += sizeof(chunk)) {
        bool ok;
        if (chunked) {
            char size[16];
            snprintf(size, sizeof(size), "%zx\r\n", sizeof(chunk));
            ok = send_all(fd, size, strlen(size)) &&
                 send_all(fd, chunk, sizeof(chunk)) && send_all(fd, "\r\n", 2);
        } else {
            ok = send_all(fd, chunk, sizeof(chunk));
        }
        if (!ok)
            break; /* the server answered and closed: read its reply */
    }
    if (chunked)
        send_all(fd, "0\r\n\r\n", 5);
    char *raw = read_all(fd, NULL);
    close(fd);
    return parse(raw);
}

Test(http, ten_megabyte_body_gets_413_handler_never_runs_memory_bounded,
     .timeout = 300)
{
    rg_http_options_t o;
    rg_http_options_init(&o);
    o.body_max = 64 << 10;
    rg_http_t *h = started(&o);
    uint16_t port = rg_http_port(h);
    unsigned before = atomic_load(&handled);

    struct reply r = post_10mb(port, false);
    cr_assert_eq(r.status, 413, "Content-Length: %s", r.raw);
    cr_assert_str_eq(r.body, "413 request body too large: limit 65536 bytes\n");
    reply_free(&r);
    r = post_10mb(port, true);
    cr_assert_eq(r.status, 413, "chunked: %s", r.raw);
    reply_free(&r);

    long rss0 = rss_kib();
    for (int i = 0; i < 5; i++) {
        r = post_10mb(port, i % 2 == 0);
        cr_assert_eq(r.status, 413);
        reply_free(&r);
    }
    long grown = rss_kib() - rss0;
    cr_assert_lt(grown, 4096, "RSS grew %ld KiB over five 10 MB bodies",
                 grown);
    cr_assert_eq(atomic_load(&handled), before, "the handler never ran");

    /* exactly body_max passes, one byte more does not */
    char *body = malloc(o.body_max + 2);
    memset(body, 'b', o.body_max + 1);
    body[o.body_max] = 0;
    r = request(port, "POST", "/echo", body);
    cr_assert_eq(r.status, 200, "%.200s", r.raw);
    cr_assert_not_null(strstr(r.body, "len=65536 "));
    reply_free(&r);
    body[o.body_max] = 'b';
    body[o.body_max + 1] = 0;
    r = request(port, "POST", "/echo", body);
    cr_assert_eq(r.status, 413);
    reply_free(&r);
    free(body);

    /* and the listener still serves */
    r = request(port, "GET", "/echo", NULL);
    cr_assert_eq(r.status, 200);
    reply_free(&r);
    rg_http_stats_t st;
    rg_http_stats(h, &st);
    cr_assert_eq(st.too_large, 8);
    rg_http_destroy(h);
}

Test(http, oversized_headers_431_and_uri_414_then_still_serving)
{
    rg_http_t *h = started(NULL); /* header_max 32 KiB */
    uint16_t port = rg_http_port(h);
    size_t n = 64 << 10;
    char *big = malloc(n + 256);
    int k = snprintf(big, 256, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + k, 'a', n);
    strcpy(big + k + n, "\r\n\r\n");
    int fd = dial(port, 5);
    send_all(fd, big, strlen(big)); /* the server may stop reading early */
    struct reply r = parse(read_all(fd, NULL));
    close(fd);
    cr_assert_eq(r.status, 431, "%.200s", r.raw);
    reply_free(&r);

    k = snprintf(big, 256, "GET /echo?q=");
    memset(big + k, 'b', 40000);
    strcpy(big + k + 40000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    fd = dial(port, 5);
    send_all(fd, big, strlen(big));
    r = parse(read_all(fd, NULL));
    close(fd);
    cr_assert_eq(r.status, 414, "%.200s", r.raw);
    reply_free(&r);
    free(big);

    r = request(port, "GET", "/echo", NULL);
    cr_assert_eq(r.status, 200);
    reply_free(&r);
    rg_http_destroy(h);
}

/* ---- slow clients ------------------------------------------------------------ */

/* Seconds until the server closes fd (recv returns 0 or an error). */
static double seconds_until_closed(int fd, double t0)
{
    char b[256];
    for (;;) {
        ssize_t k = recv(fd, b, sizeof(b), 0);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR))
            return now_s() - t0;
        if (k < 0 && now_s() - t0 > 20)
            return -1;
    }
}

Test(http, slowloris_does_not_block_others_and_is_closed_after_timeout,
     .timeout = 300)
{
    rg_http_options_t o;
    rg_http_options_init(&o);
    o.threads = 1;              /* one thread: a blocking design would stall */
    o.idle_timeout_s = 1;
    o.request_timeout_s = 30;
    rg_http_t *h = started(&o);
    uint16_t port = rg_http_port(h);

    /* four clients send half a request and stop */
    int slow[4];
    double t0 = now_s();
    for (int i = 0; i < 4; i++) {
        slow[i] = dial(port, 0.1);
        const char *part = "GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow";
        cr_assert(send_all(slow[i], part, strlen(part)));
    }
    /* others are served at once meanwhile */
    for (int i = 0; i < 20; i++) {
        double t = now_s();
        struct reply r = request(port, "GET", "/echo?name=fast", NULL);
        cr_assert_eq(r.status, 200);
        cr_assert_lt(now_s() - t, 0.5, "a fast client waited %.3f s",
                     now_s() - t);
        reply_free(&r);
    }
    /* the idle ones are closed after about the idle timeout */
    for (int i = 0; i < 4; i++) {
        double s = seconds_until_closed(slow[i], t0);
        cr_assert_geq(s, 0.9, "closed too early: %.3f s", s);
        cr_assert_lt(s, 4.0, "slowloris %d open after %.3f s", i, s);
        close(slow[i]);
    }
    rg_http_destroy(h);
}

Test(http, trickling_client_is_shut_at_the_request_deadline, .timeout = 300)
{
    rg_http_options_t o;
    rg_http_options_init(&o);
    o.idle_timeout_s = 1;
    o.request_timeout_s = 2;
    rg_http_t *h = started(&o);
    uint16_t port = rg_http_port(h);
    int fd = dial(port, 0.05);
    const char *req = "GET /echo HTTP/1.1\r\nHost: x\r\nX-Pad: "
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    double t0 = now_s(), closed = -1;
    /* one byte every 0.3 s: never idle for 1 s, never a whole request */
    for (size_t i = 0; i < strlen(req) && closed < 0; i++) {
        if (!send_all(fd, req + i, 1)) {
            closed = now_s() - t0;
            break;
        }
        double until = now_s() + 0.3;
        while (now_s() < until) {
            char b[64];
            ssize_t k = recv(fd, b, sizeof(b), 0);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                closed = now_s() - t0;
                break;
            }
        }
    }
    close(fd);
    cr_assert_geq(closed, 1.8, "shut at %.3f s, before the deadline", closed);
    cr_assert_lt(closed, 3.5, "shut at %.3f s (-1: never)", closed);
    rg_http_stats_t st;
    rg_http_stats(h, &st);
    cr_assert_eq(st.timed_out, 1, "timed_out = %llu",
                 (unsigned long long)st.timed_out);
    rg_http_destroy(h);
}

Test(http, connection_limit_keeps_extra_clients_waiting_not_served_unbounded,
     .timeout = 300)
{
    rg_http_options_t o;
    rg_http_options_init(&o);
    o.threads = 1;
    o.max_connections = 2;
    o.idle_timeout_s = 1;
    rg_http_t *h = started(&o);
    uint16_t port = rg_http_port(h);
    int idle[2];
    for (int i = 0; i < 2; i++) {
        idle[i] = dial(port, 5);
        cr_assert(send_all(idle[i], "GET /echo HTTP/1.1\r\n", 20));
    }
    usleep(100000);
    /* a third waits in the backlog until the idle ones time out */
    double t0 = now_s();
    struct reply r = request(port, "GET", "/echo", NULL);
    double waited = now_s() - t0;
    cr_assert_eq(r.status, 200, "%s", r.raw);
    reply_free(&r);
    cr_assert_geq(waited, 0.5, "served at once beyond the limit (%.3f s)",
                  waited);
    cr_assert_lt(waited, 4.0, "waited %.3f s", waited);
    for (int i = 0; i < 2; i++)
        close(idle[i]);
    rg_http_destroy(h);
}

static void on_slow(rg_http_request_t *req, void *opaque)
{
    (void)opaque;
    usleep(1500000);
    rg_http_reply(req, 200, NULL, "slow\n", 5);
}

Test(http, deadline_spares_slow_handlers_and_busy_keepalive_connections,
     .timeout = 300)
{
    rg_http_options_t o;
    rg_http_options_init(&o);
    o.idle_timeout_s = 2;
    o.request_timeout_s = 1;
    rg_http_t *h = listener(&o);
    cr_assert_eq(rg_http_route(h, "GET", "/slow", 0, on_slow, NULL), 0);
    cr_assert_eq(rg_http_start(h, NULL, 0), 0);
    uint16_t port = rg_http_port(h);

    /* the handler takes 1.5 s > request_timeout_s: still answered */
    struct reply r = request(port, "GET", "/slow", NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    reply_free(&r);

    /* one keep-alive connection, a request every 0.6 s for 3 s: each
     * reply restarts the deadline, so it is never cut */
    int fd = dial(port, 5);
    for (int i = 0; i < 5; i++) {
        const char *req = "GET /echo?name=ka HTTP/1.1\r\nHost: x\r\n\r\n";
        cr_assert(send_all(fd, req, strlen(req)), "request %d", i);
        char buf[1024];
        ssize_t k = recv(fd, buf, sizeof(buf) - 1, 0);
        cr_assert_gt(k, 0, "request %d: connection cut", i);
        buf[k] = 0;
        cr_assert_not_null(strstr(buf, "name=ka"), "%s", buf);
        usleep(600000);
    }
    close(fd);
    rg_http_stats_t st;
    rg_http_stats(h, &st);
    cr_assert_eq(st.timed_out, 0);
    rg_http_destroy(h);
}

/* ---- helpers: metrics and health ------------------------------------------- */

static _Atomic bool ready_flag;

static bool is_ready(void *opaque, char *reason, size_t size)
{
    (void)opaque;
    /* relaxed: a flag the test flips between requests */
    if (atomic_load_explicit(&ready_flag, memory_order_relaxed))
        return true;
    snprintf(reason, size, "no partitions assigned\nyet");
    return false;
}

Test(http, metrics_stats_json_healthz_and_readyz)
{
    rg_metrics_t *m = rg_metrics_new(NULL);
    rg_metric_desc_t d = {.kind = RG_METRIC_COUNTER, .name = "events_processed",
                          .help = "Events."};
    rg_metric_family_t *f = rg_metrics_family_new(m, &d, NULL, 0);
    rg_counter_add_sw(rg_metrics_counter(f, NULL, 0), 41);
    rg_http_t *h = listener(NULL);
    cr_assert_eq(rg_http_serve_metrics(h, m), 0);
    cr_assert_eq(rg_http_serve_health(h, NULL, is_ready, NULL), 0);
    cr_assert_eq(rg_http_start(h, NULL, 0), 0);
    uint16_t port = rg_http_port(h);

    char *want;
    cr_assert_eq(rg_metrics_render(m, RG_METRICS_TEXT, &want, NULL), 0);
    struct reply r = request(port, "GET", "/metrics", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(has_header(&r, "\r\nContent-Type: text/plain; version=0.0.4; "
                             "charset=utf-8\r\n"), "%s", r.raw);
    cr_assert_str_eq(r.body, want);
    cr_assert_not_null(strstr(r.body, "\nrailgun_events_processed_total 41\n"));
    reply_free(&r);
    free(want);

    r = request(port, "GET", "/stats.json", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(has_header(&r, "\r\nContent-Type: application/json\r\n"));
    cr_assert_not_null(strstr(r.body, "\"railgun_events_processed_total\":"
                                      "{\"type\":\"counter\""), "%s", r.body);
    reply_free(&r);

    r = request(port, "POST", "/metrics", "x");
    cr_assert_eq(r.status, 405);
    reply_free(&r);

    r = request(port, "GET", "/healthz", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok\n");
    reply_free(&r);
    r = request(port, "GET", "/readyz", NULL);
    cr_assert_eq(r.status, 503);
    cr_assert_str_eq(r.body, "503 no partitions assigned yet\n");
    reply_free(&r);
    atomic_store(&ready_flag, true);
    r = request(port, "GET", "/readyz", NULL);
    cr_assert_eq(r.status, 200);
    reply_free(&r);
    rg_http_destroy(h);
    rg_metrics_destroy(m);
}

/* ---- listen addresses, shutdown ---------------------------------------------- */

Test(http, bad_listen_addresses_and_port_in_use_are_refused)
{
    const char *bad[] = {"nohost", "127.0.0.1:99999", "127.0.0.1:", ":abc",
                         "[::1:80", "256.1.1.1:80", NULL};
    char err[256];
    for (int i = 0; bad[i]; i++) {
        err[0] = 0;
        cr_assert_null(rg_http_new(bad[i], NULL, err, sizeof(err)), "%s",
                       bad[i]);
        cr_assert_neq(err[0], 0, "no reason for %s", bad[i]);
    }
    cr_assert_null(rg_http_new(NULL, NULL, err, sizeof(err)));
    rg_http_options_t o;
    rg_http_options_init(&o);
    o.threads = 0;
    cr_assert_null(rg_http_new("127.0.0.1:0", &o, err, sizeof(err)));
    cr_assert_not_null(strstr(err, "threads"), "%s", err);

    rg_http_t *a = rg_http_new("127.0.0.1:0", NULL, err, sizeof(err));
    cr_assert_not_null(a);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", rg_http_port(a));
    cr_assert_null(rg_http_new(addr, NULL, err, sizeof(err)));
    cr_assert_not_null(strstr(err, "in use"), "%s", err);
    rg_http_destroy(a);
    rg_http_destroy(NULL);
}

Test(http, destroy_is_prompt_with_clients_connected_and_frees_the_port,
     .timeout = 300)
{
    rg_http_options_t o;
    rg_http_options_init(&o);
    o.idle_timeout_s = 60;
    rg_http_t *h = started(&o);
    uint16_t port = rg_http_port(h);
    int slow = dial(port, 5);
    cr_assert(send_all(slow, "GET /echo HTTP/1.1\r\n", 20));
    struct reply r = request(port, "GET", "/echo", NULL);
    cr_assert_eq(r.status, 200);
    reply_free(&r);
    double t0 = now_s();
    rg_http_destroy(h);
    cr_assert_lt(now_s() - t0, 2.0, "destroy took %.3f s", now_s() - t0);
    cr_assert_geq(seconds_until_closed(slow, t0), 0, "client not closed");
    close(slow);
    char addr[32], err[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    rg_http_t *again = rg_http_new(addr, NULL, err, sizeof(err));
    cr_assert_not_null(again, "port not freed: %s", err);
    rg_http_destroy(again);
}

/* ---- many clients at once ------------------------------------------------------ */

#define CLIENTS 8
#define REQUESTS_EACH 40

struct client_arg {
    uint16_t port;
    unsigned id, ok;
};

static void *client(void *arg)
{
    struct client_arg *a = arg;
    for (unsigned i = 0; i < REQUESTS_EACH; i++) {
        char target[64], want[96];
        snprintf(target, sizeof(target), "/echo?name=c%u-%u", a->id, i);
        snprintf(want, sizeof(want), "GET /echo name=c%u-%u ", a->id, i);
        struct reply r = request(a->port, "GET", target, NULL);
        a->ok += r.status == 200 && strncmp(r.body, want, strlen(want)) == 0;
        reply_free(&r);
    }
    return NULL;
}

Test(http, many_clients_at_once_all_answered, .timeout = 300)
{
    rg_http_t *h = started(NULL);
    unsigned before = atomic_load(&handled);
    pthread_t t[CLIENTS];
    struct client_arg args[CLIENTS];
    for (unsigned i = 0; i < CLIENTS; i++) {
        args[i] = (struct client_arg){rg_http_port(h), i, 0};
        pthread_create(&t[i], NULL, client, &args[i]);
    }
    for (unsigned i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(args[i].ok, REQUESTS_EACH, "client %u", i);
    }
    cr_assert_eq(atomic_load(&handled) - before, CLIENTS * REQUESTS_EACH);
    rg_http_destroy(h);
}
