/*
 * test_serve.c - `railgun serve` (apps/serve) in-process over real HTTP:
 * the API's answers to good and bad requests, its bounds against hostile
 * clients, and the synchronous baseline on SQLite.
 *
 * The async service produces through the producer SDK to librdkafka's
 * in-client mock cluster (kafka.test.mock.num.brokers), so delivery
 * reports are real; reads go to a SQLite database in a temp dir (cache
 * off: the cache has its own test, test_cache_redis.c, and the end-to-end
 * one, serve_e2e_test.sh).
 *
 * Bad requests (each gets its 4xx and a one-line reason, and the server
 * keeps serving): malformed JSON, trailing bytes, missing and duplicated
 * fields, wrong types (string ids, fractions, booleans), ids out of
 * 1..2^63-1, a state not 0/1, a negative ts, a known field of the wrong
 * type among unknown ones (unknown fields of any type are ignored), bad
 * batches (empty, not objects, unclosed, over serve.batch.max), bad path
 * and query ids, unknown paths (404), wrong methods (405), a 10 MB body
 * with Content-Length and chunked (413, memory bounded), slowloris
 * clients (others served at once, the slow ones cut at the deadline).
 */
#define _GNU_SOURCE
#include "support/test.h"
#include "support/raw_http.h"
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "likes_job.h"
#include "railgun/error.h"
#include "railgun/sinks.h"
#include "serve.h"

/* ---- a service on a temp SQLite database ---------------------------------- */

struct svc {
    char dir[256];
    rg_conf_t *conf;
    rg_serve_t *s;
    uint16_t port;
};

static void svc_start(struct svc *v, const char *const *xs)
{
    snprintf(v->dir, sizeof(v->dir), "%s/rg-serve.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(v->dir));
    char path[400], err[512];
    snprintf(path, sizeof(path), "%s/likes.db", v->dir);
    v->conf = rg_likes_conf_new();
    cr_assert_not_null(v->conf);
    cr_assert_eq(rg_conf_add_table(v->conf, rg_serve_conf_table(), err,
                                   sizeof(err)), 0, "%s", err);
    const char *base[] = {
        "sqlite.path", path, "serve.listen", "127.0.0.1:0", "serve.cache",
        "false", "serve.threads", "2", "serve.request.timeout.ms", "2000",
        "kafka.bootstrap.servers", "mock:9092",
        "kafka.test.mock.num.brokers", "1", NULL};
    for (int i = 0; base[i] != NULL; i += 2)
        cr_assert_eq(rg_conf_set(v->conf, base[i], base[i + 1], err,
                                 sizeof(err)), 0, "%s", err);
    for (int i = 0; xs != NULL && xs[i] != NULL; i += 2)
        cr_assert_eq(rg_conf_set(v->conf, xs[i], xs[i + 1], err,
                                 sizeof(err)), 0, "%s", err);
    rg_sink_t sink;
    cr_assert_eq(rg_likes_open_sink(v->conf, RG_SINK_INIT_SCHEMA, &sink, err,
                                    sizeof(err)), 0, "%s", err);
    sink.close(sink.self);
    int e = 0;
    v->s = rg_serve_new(v->conf, &e, err, sizeof(err));
    cr_assert_not_null(v->s, "%s", err);
    cr_assert_eq(rg_serve_start(v->s, err, sizeof(err)), 0, "%s", err);
    v->port = rg_serve_port(v->s);
}

static void svc_stop(struct svc *v)
{
    rg_serve_destroy(v->s);
    rg_conf_destroy(v->conf);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", v->dir);
    cr_assert_eq(system(cmd), 0);
}

static void expect(uint16_t port, const char *method, const char *target,
                   const char *body, int status, const char *reason)
{
    struct reply r = request(port, method, target, body);
    cr_assert_eq(r.status, status, "%s %s %s: got %d, not %d: %s", method,
                 target, body ? body : "", r.status, status, r.raw);
    if (reason != NULL) {
        cr_assert(strstr(r.body, reason) != NULL, "%s %s %s: reason \"%s\" "
                  "lacks \"%s\"", method, target, body ? body : "", r.body,
                  reason);
        /* errors: one line */
        const char *nl = strchr(r.body, '\n');
        cr_assert(status < 400 || (nl != NULL && nl[1] == '\0'),
                  "not one line: \"%s\"", r.body);
    }
    free(r.raw);
}

Test(serve, bad_requests_get_4xx_with_a_reason_and_good_ones_202)
{
    struct svc v;
    svc_start(&v, (const char *[]){"serve.batch.max", "3", "serve.read.max",
                                   "4", NULL});
    uint16_t p = v.port;
    static const struct {
        const char *body;
        int status;
        const char *reason;
    } posts[] = {
        {"{\"video_id\":1,\"user_id\":2,\"state\":1}", 202, NULL},
        {"  {\"user_id\":2,\"state\":0,\"video_id\":1}\n", 202, NULL},
        {"{\"video_id\":1,\"user_id\":2,\"state\":1,\"ts\":1700000000000}",
         202, NULL},
        /* unknown fields of any type are ignored, as on the wire */
        {"{\"video_id\":1,\"user_id\":2,\"state\":1,\"x\":[1,{\"a\":null}],"
         "\"y\":\"z\"}", 202, NULL},
        {"[{\"video_id\":1,\"user_id\":2,\"state\":1},"
         "{\"video_id\":9,\"user_id\":2,\"state\":0}]", 202, NULL},
        {"", 400, "empty body"},
        {"   ", 400, "empty body"},
        {"{\"video_id\":1,", 400, "malformed JSON"},
        {"{\"video_id\":1,\"user_id\":2,\"state\":1}x", 400,
         "bytes after the JSON object"},
        {"{\"video_id\":1,\"user_id\":2}", 400, "missing"},
        {"{\"video_id\":1,\"video_id\":1,\"user_id\":2,\"state\":1}", 400,
         "appears twice"},
        {"{\"video_id\":\"1\",\"user_id\":2,\"state\":1}", 400,
         "not a plain integer"},
        {"{\"video_id\":1.5,\"user_id\":2,\"state\":1}", 400,
         "not a plain integer"},
        {"{\"video_id\":1,\"user_id\":2,\"state\":true}", 400,
         "not a plain integer"},
        {"{\"video_id\":1,\"user_id\":2,\"state\":1,\"ts\":\"now\"}", 400,
         "not a plain integer"},
        {"{\"video_id\":0,\"user_id\":2,\"state\":1}", 400, "outside"},
        {"{\"video_id\":9223372036854775808,\"user_id\":2,\"state\":1}", 400,
         "outside"},
        {"{\"video_id\":-1,\"user_id\":2,\"state\":1}", 400, NULL},
        {"{\"video_id\":1,\"user_id\":2,\"state\":2}", 400, "state not 0/1"},
        {"{\"video_id\":1,\"user_id\":2,\"state\":1,\"ts\":-5}", 400,
         "ts < 0"},
        {"[1,2]", 400, "likes[0]: value is not a JSON object"},
        {"[]", 400, "empty batch"},
        {"[{\"video_id\":1,\"user_id\":2,\"state\":1}", 400,
         "does not close"},
        {"[{\"video_id\":1,\"user_id\":2,\"state\":1},{\"video_id\":1}]", 400,
         "likes[1]"},
        {"[{\"video_id\":1,\"user_id\":2,\"state\":1}] x", 400,
         "after the batch"},
        {"[{\"video_id\":1,\"user_id\":2,\"state\":1};]", 400,
         "expected , or ]"},
        {"[{\"video_id\":1,\"user_id\":2,\"state\":1},"
         "{\"video_id\":1,\"user_id\":2,\"state\":1},"
         "{\"video_id\":1,\"user_id\":2,\"state\":1},"
         "{\"video_id\":1,\"user_id\":2,\"state\":1}]", 413,
         "serve.batch.max"},
        {"\"like\"", 400, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(posts) / sizeof(posts[0]); i++)
        expect(p, "POST", "/v1/likes", posts[i].body, posts[i].status,
               posts[i].reason);
    /* the binary form of the wire format, and a malformed one */
    unsigned char bin[26] = {0xB1, 0x01};
    bin[2] = 5;  /* video 5 */
    bin[10] = 6; /* user 6 */
    struct reply r = request_n(p, "POST", "/v1/likes", (char *)bin, 18);
    cr_assert_eq(r.status, 202, "%s", r.raw);
    free(r.raw);
    r = request_n(p, "POST", "/v1/likes", (char *)bin, 17);
    cr_assert_eq(r.status, 400, "%s", r.raw);
    cr_assert(strstr(r.body, "binary") != NULL, "%s", r.body);
    free(r.raw);
    /* reads */
    expect(p, "GET", "/v1/videos/1/likes", NULL, 200, NULL);
    expect(p, "GET", "/v1/videos/0/likes", NULL, 400, "video id");
    expect(p, "GET", "/v1/videos/01/likes", NULL, 400, "video id");
    expect(p, "GET", "/v1/videos/abc/likes", NULL, 400, "video id");
    expect(p, "GET", "/v1/videos/99999999999999999999/likes", NULL, 400,
           "video id");
    expect(p, "GET", "/v1/videos/1/likes/-3", NULL, 400, "user id");
    expect(p, "GET", "/v1/videos/1/comments", NULL, 404, "no such resource");
    expect(p, "GET", "/v1/videos/1", NULL, 404, "no such resource");
    expect(p, "GET", "/v1/likes", NULL, 400, "video_ids missing");
    expect(p, "GET", "/v1/likes?video_ids=1,,2", NULL, 400, "video_ids");
    expect(p, "GET", "/v1/likes?video_ids=1,2&user_id=x", NULL, 400,
           "user_id");
    expect(p, "GET", "/v1/likes?video_ids=1,2,3,4,5", NULL, 413,
           "serve.read.max");
    expect(p, "GET", "/v1/likes?video_ids=1,2,3,4&user_id=2", NULL, 200,
           NULL);
    expect(p, "GET", "/v1/nothing", NULL, 404, NULL);
    expect(p, "PUT", "/v1/likes", "{}", 405, NULL);
    expect(p, "DELETE", "/v1/videos/1/likes", NULL, 405, NULL);
    r = request(p, "GET", "/", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "<title>railgun likes</title>") != NULL);
    cr_assert(strstr(r.body, "http://") == NULL &&
                  strstr(r.body, "https://") == NULL,
              "the page refers to something outside the server");
    free(r.raw);
    /* every accepted like gets its delivery report */
    rg_serve_stats_t st;
    double until = now_s() + 20;
    do {
        usleep(50000);
        rg_serve_stats(v.s, &st);
    } while (st.delivered < st.likes_accepted && now_s() < until);
    cr_assert_eq(st.likes_accepted, 7, "accepted %" PRIu64,
                 st.likes_accepted);
    cr_assert_eq(st.delivered, 7, "delivered %" PRIu64, st.delivered);
    cr_assert_eq(st.delivery_failed, 0);
    cr_assert_eq(st.likes_rejected, 24);
    svc_stop(&v);
}

/* ---- hostile clients ------------------------------------------------------- */

#define TEN_MB (10u << 20)

struct big {
    uint16_t port;
    bool chunked;
    int status;
};

static void *post_10mb(void *arg)
{
    struct big *b = arg;
    int fd = dial(b->port, 10);
    char head[256];
    if (b->chunked)
        snprintf(head, sizeof(head), "POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
                 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    else
        snprintf(head, sizeof(head), "POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: %u\r\nConnection: close\r\n\r\n", TEN_MB);
    cr_assert(send_all(fd, head, strlen(head)));
    static char chunk[64 << 10];
    memset(chunk, '[', sizeof(chunk));
    for (size_t sent = 0; sent < TEN_MB; sent += sizeof(chunk)) {
        bool ok;
        if (b->chunked) {
            char size[16];
            snprintf(size, sizeof(size), "%zx\r\n", sizeof(chunk));
            ok = send_all(fd, size, strlen(size)) &&
                 send_all(fd, chunk, sizeof(chunk)) && send_all(fd, "\r\n", 2);
        } else {
            ok = send_all(fd, chunk, sizeof(chunk));
        }
        if (!ok)
            break; /* answered and closed */
    }
    if (b->chunked)
        send_all(fd, "0\r\n\r\n", 5);
    struct reply r = parse(read_all(fd, NULL));
    close(fd);
    b->status = r.status;
    free(r.raw);
    return NULL;
}

Test(serve, ten_megabyte_bodies_413_memory_bounded_others_served,
     .timeout = 300)
{
    struct svc v;
    svc_start(&v, NULL);
    expect(v.port, "GET", "/v1/videos/1/likes", NULL, 200, NULL);
    long before = rss_kib();
    struct big b[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        b[i] = (struct big){v.port, i % 2 == 1, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, post_10mb, &b[i]), 0);
    }
    /* served while the big bodies come in */
    for (int i = 0; i < 10; i++)
        expect(v.port, "POST", "/v1/likes",
               "{\"video_id\":3,\"user_id\":4,\"state\":1}", 202, NULL);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(b[i].status, 413, "%s 10 MB body: %d",
                     b[i].chunked ? "chunked" : "sized", b[i].status);
    }
    long grew = rss_kib() - before;
    fprintf(stderr, "serve: 8 x 10 MB bodies: RSS grew %ld KiB\n", grew);
    cr_assert_lt(grew, 24 * 1024, "RSS grew by %ld KiB", grew);
    expect(v.port, "GET", "/v1/videos/3/likes", NULL, 200, NULL);
    svc_stop(&v);
}

Test(serve, slowloris_clients_do_not_hold_up_others_and_are_cut,
     .timeout = 300)
{
    struct svc v;
    svc_start(&v, NULL);
    int slow[16];
    for (int i = 0; i < 16; i++) {
        slow[i] = dial(v.port, 10);
        /* half a request: a POST that never finishes its headers or body */
        const char *part = i % 2 ? "POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
                                 : "POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Length: 100\r\n\r\n{\"vid";
        cr_assert(send_all(slow[i], part, strlen(part)));
    }
    double t0 = now_s(), worst = 0;
    for (int i = 0; i < 20; i++) {
        double a = now_s();
        expect(v.port, "POST", "/v1/likes",
               "{\"video_id\":3,\"user_id\":4,\"state\":1}", 202, NULL);
        double d = now_s() - a;
        worst = d > worst ? d : worst;
    }
    cr_assert_lt(worst, 0.5, "a request waited %.3f s behind slow clients",
                 worst);
    /* trickle one byte per 300 ms on one of them: still cut at ~2 s */
    for (int k = 0; k < 12; k++) {
        send_all(slow[0], " ", 1);
        usleep(300000);
    }
    for (int i = 0; i < 16; i++) {
        char buf[512];
        ssize_t n = recv(slow[i], buf, sizeof(buf), 0);
        /* closed (0), answered with an error and closed, or reset */
        cr_assert(n <= 0 || strncmp(buf, "HTTP/1.1 4", 10) == 0 ||
                      strncmp(buf, "HTTP/1.1 5", 10) == 0,
                  "slow client %d was served as if whole", i);
        close(slow[i]);
    }
    cr_assert_lt(now_s() - t0, 12.0);
    expect(v.port, "GET", "/v1/videos/3/likes", NULL, 200, NULL);
    svc_stop(&v);
}

/* ---- the synchronous baseline ---------------------------------------------- */

static int64_t count_of(uint16_t port, int video)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/videos/%d/likes", video);
    struct reply r = request(port, "GET", path, NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    const char *c = strstr(r.body, "\"count\":");
    cr_assert_not_null(c, "%s", r.body);
    int64_t n = atoll(c + 8);
    free(r.raw);
    return n;
}

Test(serve, sync_mode_commits_each_like_and_reads_see_it_at_once)
{
    struct svc v;
    svc_start(&v, (const char *[]){"serve.mode", "sync", NULL});
    const char *like = "{\"video_id\":7,\"user_id\":1,\"state\":1}";
    expect(v.port, "POST", "/v1/likes", like, 200, "\"applied\":1");
    cr_assert_eq(count_of(v.port, 7), 1);
    expect(v.port, "POST", "/v1/likes", like, 200, NULL); /* a repeat */
    cr_assert_eq(count_of(v.port, 7), 1);
    expect(v.port, "POST", "/v1/likes",
           "[{\"video_id\":7,\"user_id\":2,\"state\":1},"
           "{\"video_id\":7,\"user_id\":3,\"state\":1},"
           "{\"video_id\":7,\"user_id\":1,\"state\":0},"
           "{\"video_id\":8,\"user_id\":1,\"state\":1}]", 200,
           "\"applied\":4");
    cr_assert_eq(count_of(v.port, 7), 2);
    cr_assert_eq(count_of(v.port, 8), 1);
    struct reply r = request(v.port, "GET", "/v1/videos/7/likes/3", NULL);
    cr_assert(strstr(r.body, "\"state\":1") != NULL, "%s", r.body);
    free(r.raw);
    r = request(v.port, "GET", "/v1/likes?video_ids=8,7,9&user_id=1", NULL);
    cr_assert_str_eq(r.body, "{\"videos\":[{\"video_id\":8,\"count\":1,"
                     "\"state\":1},{\"video_id\":7,\"count\":2,\"state\":0},"
                     "{\"video_id\":9,\"count\":0,\"state\":0}]}");
    cr_assert(strstr(r.raw, "X-Cache: off") != NULL, "%s", r.raw);
    free(r.raw);
    svc_stop(&v);
}

Test(serve, configuration_mistakes_are_refused_with_a_reason)
{
    char err[512];
    rg_conf_t *c = rg_likes_conf_new();
    cr_assert_eq(rg_conf_add_table(c, rg_serve_conf_table(), err,
                                   sizeof(err)), 0);
    cr_assert_neq(rg_conf_set(c, "serve.mode", "fast", err, sizeof(err)), 0);
    cr_assert(strstr(err, "serve.mode") != NULL, "%s", err);
    cr_assert_neq(rg_conf_set(c, "cache.version.table", "a-b", err,
                              sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(c, "serve.mode", "sync", err, sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(c, "serve.cache", "true", err, sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(c, "sqlite.path", "/nonexistent/x.db", err,
                             sizeof(err)), 0);
    int e = 0;
    cr_assert_null(rg_serve_new(c, &e, err, sizeof(err)));
    cr_assert_eq(e, RG_EINVAL);
    cr_assert(strstr(err, "serve.cache") != NULL, "%s", err);
    cr_assert_eq(rg_conf_set(c, "serve.cache", "false", err, sizeof(err)), 0);
    cr_assert_null(rg_serve_new(c, &e, err, sizeof(err)));
    cr_assert(strstr(err, "/nonexistent/x.db") != NULL, "%s", err);
    rg_conf_destroy(c);
}
