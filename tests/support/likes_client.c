/*
 * likes_client.c - drives `railgun serve` for the end-to-end tests
 * (tests/serve_e2e_test.sh) over HTTP, with a ground truth.
 *
 *   likes_client post   PORT EVENTS VIDEOS USERS SEED [CONNS] [BATCH]
 *   likes_client verify PORT EVENTS VIDEOS USERS SEED WAIT_S SAMPLE [hits]
 *   likes_client reads  PORT EVENTS VIDEOS USERS SEED SECONDS
 *
 * The stream is a function of (EVENTS, VIDEOS, USERS, SEED): Zipf(0.99)
 * videos, uniform users, 2 in 3 likes. post sends it as batches of up to
 * BATCH likes (default 100) over CONNS keep-alive connections (default
 * 4); a video's likes all go over one connection, in stream order, each
 * POST after the previous one's 202, so its order survives (503s are
 * retried from the first like not accepted). verify compares every
 * video's count (GET /v1/likes?video_ids=, 500 at a time) and SAMPLE
 * users' states (GET /v1/videos/V/likes/U, half of them pairs the
 * stream touched) with the truth, retrying the counts for up to WAIT_S
 * seconds while the job catches up; with `hits`, a second pass must be
 * answered from the cache only (X-Cache: hit). reads GETs random counts
 * for SECONDS (the stream drained): every answer must be 200 and exact.
 * Prints one summary line; exit 0, or 1 with the first difference.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "loadgen.h"
#include "zipf.h"

struct pair {
    int64_t video, user;
    int state; /* -1: empty slot */
};

static uint64_t n_events, n_videos, n_users, seed;
static int64_t *ev_video, *ev_user;
static uint8_t *ev_state;
static int64_t *truth_count;
static struct pair *pairs;
static size_t pmask;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct pair *slot(int64_t v, int64_t u)
{
    uint64_t h = ((uint64_t)v * 0x9E3779B97F4A7C15ull) ^
                 ((uint64_t)u * 0xC2B2AE3D27D4EB4Full);
    for (size_t i = (size_t)(h >> 17) & pmask;; i = (i + 1) & pmask)
        if (pairs[i].state < 0 ||
            (pairs[i].video == v && pairs[i].user == u))
            return &pairs[i];
}

static void generate(void)
{
    ev_video = malloc(n_events * sizeof(*ev_video));
    ev_user = malloc(n_events * sizeof(*ev_user));
    ev_state = malloc(n_events);
    truth_count = calloc(n_videos + 1, sizeof(*truth_count));
    size_t cap = 16;
    while (cap < 2 * n_events)
        cap *= 2;
    pairs = malloc(cap * sizeof(*pairs));
    if (!ev_video || !ev_user || !ev_state || !truth_count || !pairs) {
        fprintf(stderr, "likes_client: out of memory\n");
        exit(1);
    }
    pmask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        pairs[i].state = -1;
    rg_rng_t rng;
    rg_zipf_t z;
    rg_rng_seed(&rng, seed);
    rg_zipf_init(&z, n_videos, 0.99);
    for (uint64_t i = 0; i < n_events; i++) {
        int64_t v = (int64_t)rg_zipf_next(&z, &rng);
        int64_t u = 1 + (int64_t)rg_rng_below(&rng, n_users);
        int s = rg_rng_below(&rng, 3) != 0;
        ev_video[i] = v;
        ev_user[i] = u;
        ev_state[i] = (uint8_t)s;
        struct pair *p = slot(v, u);
        int cur = p->state < 0 ? 0 : p->state;
        p->video = v;
        p->user = u;
        p->state = s;
        truth_count[v] += s - cur;
    }
}

/* ---- post ----------------------------------------------------------------- */

static uint16_t port;
static unsigned conns = 4, batch = 100;
static _Atomic uint64_t posted, retried;
static _Atomic int post_failed;

static void *post_main(void *arg)
{
    unsigned c = (unsigned)(uintptr_t)arg;
    rg_hc_t hc;
    rg_hc_init(&hc, port);
    size_t cap = (size_t)batch * 96 + 16, len = 0;
    char *body = malloc(cap);
    uint64_t *idx = malloc(batch * sizeof(*idx));
    unsigned n = 0;
    for (uint64_t i = 0; i <= n_events; i++) {
        bool mine = i < n_events && (uint64_t)ev_video[i] % conns == c;
        if (mine)
            idx[n++] = i;
        if (n == 0 || (n < batch && i < n_events))
            continue;
        /* send idx[0..n), resending from the first not accepted */
        unsigned from = 0;
        for (int tries = 0; from < n; tries++) {
            len = 0;
            len += (size_t)snprintf(body + len, cap - len, "[");
            for (unsigned k = from; k < n; k++)
                len += (size_t)snprintf(
                    body + len, cap - len,
                    "%s{\"video_id\":%" PRId64 ",\"user_id\":%" PRId64
                    ",\"state\":%u}", k > from ? "," : "", ev_video[idx[k]],
                    ev_user[idx[k]], ev_state[idx[k]]);
            len += (size_t)snprintf(body + len, cap - len, "]");
            if (rg_hc_request(&hc, "POST", "/v1/likes", body, len) != 0 ||
                (hc.status != 202 && hc.status != 503) || tries > 200) {
                fprintf(stderr, "likes_client: POST failed (status %d): "
                        "%.*s\n", hc.status, (int)hc.body_len, hc.body);
                post_failed = 1;
                goto out;
            }
            if (hc.status == 202) {
                posted += n - from;
                break;
            }
            /* 503 "... N of M likes accepted ..." */
            const char *of = strstr(hc.body, " of ");
            unsigned took = 0;
            if (of != NULL) {
                const char *p = of;
                while (p > hc.body && p[-1] >= '0' && p[-1] <= '9')
                    p--;
                took = (unsigned)strtoul(p, NULL, 10);
            }
            posted += took;
            from += took;
            retried++;
            usleep(20000);
        }
        n = 0;
    }
out:
    free(body);
    free(idx);
    rg_hc_fini(&hc);
    return NULL;
}

static int cmd_post(void)
{
    pthread_t th[64];
    double t0 = now_s();
    for (unsigned c = 0; c < conns; c++)
        pthread_create(&th[c], NULL, post_main, (void *)(uintptr_t)c);
    for (unsigned c = 0; c < conns; c++)
        pthread_join(th[c], NULL);
    double dt = now_s() - t0;
    printf("likes_client: posted %" PRIu64 " likes in %.2f s (%.0f/s), %"
           PRIu64 " retries after 503\n", posted, dt,
           (double)posted / dt, retried);
    return post_failed || posted != n_events;
}

/* ---- verify ---------------------------------------------------------------- */

/* Reads every count; returns the number of differences (first printed
 * into why), -1 on a failed request. *hits: replies all from cache. */
static long check_counts(rg_hc_t *hc, char *why, size_t why_size,
                         uint64_t *hit_replies, uint64_t *replies)
{
    long bad = 0;
    char path[8192];
    for (uint64_t v0 = 1; v0 <= n_videos; v0 += 500) {
        size_t len = (size_t)snprintf(path, sizeof(path),
                                      "/v1/likes?video_ids=");
        uint64_t v1 = v0 + 500 > n_videos + 1 ? n_videos + 1 : v0 + 500;
        for (uint64_t v = v0; v < v1; v++)
            len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%"
                                    PRIu64, v > v0 ? "," : "", v);
        if (rg_hc_request(hc, "GET", path, NULL, 0) != 0 ||
            hc->status != 200) {
            snprintf(why, why_size, "GET counts: status %d: %.*s",
                     hc->status, (int)hc->body_len, hc->body);
            return -1;
        }
        (*replies)++;
        *hit_replies += strcmp(hc->xcache, "hit") == 0;
        const char *p = hc->body;
        for (uint64_t v = v0; v < v1; v++) {
            p = strstr(p, "\"count\":");
            if (p == NULL) {
                snprintf(why, why_size, "reply lacks video %" PRIu64, v);
                return -1;
            }
            p += 8;
            int64_t got = strtoll(p, NULL, 10);
            if (got != truth_count[v] && bad++ == 0)
                snprintf(why, why_size, "video %" PRIu64 ": count %" PRId64
                         ", truth %" PRId64, v, got, truth_count[v]);
        }
    }
    return bad;
}

static int cmd_verify(double wait_s, uint64_t sample, bool hits)
{
    rg_hc_t hc;
    rg_hc_init(&hc, port);
    char why[512] = "";
    double until = now_s() + wait_s;
    long bad;
    uint64_t hr = 0, rr = 0;
    for (;;) {
        hr = rr = 0;
        bad = check_counts(&hc, why, sizeof(why), &hr, &rr);
        if (bad == 0 || now_s() > until)
            break;
        sleep(1);
    }
    if (bad != 0) {
        printf("likes_client: MISMATCH: %ld counts differ; %s\n", bad, why);
        return 1;
    }
    /* states: half from the stream's pairs, half random (mostly not) */
    rg_rng_t rng;
    rg_rng_seed(&rng, seed + 1);
    uint64_t liked = 0;
    for (uint64_t k = 0; k < sample; k++) {
        int64_t v, u;
        if (k % 2 == 0) {
            uint64_t i = rg_rng_below(&rng, n_events);
            v = ev_video[i];
            u = ev_user[i];
        } else {
            v = 1 + (int64_t)rg_rng_below(&rng, n_videos);
            u = 1 + (int64_t)rg_rng_below(&rng, n_users);
        }
        struct pair *p = slot(v, u);
        int want = p->state < 0 ? 0 : p->state;
        char path[96];
        snprintf(path, sizeof(path), "/v1/videos/%" PRId64 "/likes/%" PRId64,
                 v, u);
        if (rg_hc_request(&hc, "GET", path, NULL, 0) != 0 ||
            hc.status != 200) {
            printf("likes_client: MISMATCH: GET %s: status %d\n", path,
                   hc.status);
            return 1;
        }
        const char *s = strstr(hc.body, "\"state\":");
        if (s == NULL || atoi(s + 8) != want) {
            printf("likes_client: MISMATCH: %s: %.*s, truth state %d\n", path,
                   (int)hc.body_len, hc.body, want);
            return 1;
        }
        liked += want;
    }
    if (hits) {
        /* every count was read once above: cached now, all hits */
        uint64_t h2 = 0, r2 = 0;
        bad = check_counts(&hc, why, sizeof(why), &h2, &r2);
        if (bad != 0 || h2 != r2) {
            printf("likes_client: MISMATCH: second pass from the cache: %ld "
                   "differ, %" PRIu64 " of %" PRIu64 " replies hits; %s\n",
                   bad, h2, r2, why);
            return 1;
        }
        hr = h2;
        rr = r2;
    }
    printf("likes_client: exact: %" PRIu64 " video counts and %" PRIu64
           " user states (%" PRIu64 " liked) equal the truth; %" PRIu64
           " of %" PRIu64 " count replies from the cache\n", n_videos,
           sample, liked, hr, rr);
    rg_hc_fini(&hc);
    return 0;
}

/* ---- reads --------------------------------------------------------------- */

static int cmd_reads(double seconds)
{
    rg_hc_t hc;
    rg_hc_init(&hc, port);
    rg_rng_t rng;
    rg_rng_seed(&rng, seed + 2);
    uint64_t n = 0, by[4] = {0};
    static const char *const kinds[4] = {"hit", "miss", "down", "off"};
    double until = now_s() + seconds, worst = 0;
    while (now_s() < until) {
        int64_t v = 1 + (int64_t)rg_rng_below(&rng, n_videos < 50 ? n_videos
                                                                   : 50);
        char path[64];
        snprintf(path, sizeof(path), "/v1/videos/%" PRId64 "/likes", v);
        double t0 = now_s();
        int rc = rg_hc_request(&hc, "GET", path, NULL, 0);
        double dt = now_s() - t0;
        worst = dt > worst ? dt : worst;
        const char *c = rc == 0 ? strstr(hc.body, "\"count\":") : NULL;
        if (rc != 0 || hc.status != 200 || c == NULL ||
            strtoll(c + 8, NULL, 10) != truth_count[v]) {
            printf("likes_client: FAILED read %" PRIu64 ": GET %s: rc %d "
                   "status %d: %.*s (truth %" PRId64 ")\n", n, path, rc,
                   hc.status, rc == 0 ? (int)hc.body_len : 0,
                   rc == 0 ? hc.body : "", truth_count[v]);
            return 1;
        }
        for (int k = 0; k < 4; k++)
            by[k] += strcmp(hc.xcache, kinds[k]) == 0;
        n++;
        usleep(2000);
    }
    printf("likes_client: %" PRIu64 " reads, all exact: hit %" PRIu64
           ", miss %" PRIu64 ", down %" PRIu64 ", off %" PRIu64
           "; slowest %.3f s\n", n, by[0], by[1], by[2], by[3], worst);
    rg_hc_fini(&hc);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: likes_client post|verify|reads PORT EVENTS "
                        "VIDEOS USERS SEED ...\n");
        return 2;
    }
    port = (uint16_t)atoi(argv[2]);
    n_events = strtoull(argv[3], NULL, 10);
    n_videos = strtoull(argv[4], NULL, 10);
    n_users = strtoull(argv[5], NULL, 10);
    seed = strtoull(argv[6], NULL, 10);
    if (port == 0 || n_events == 0 || n_videos == 0 || n_users == 0) {
        fprintf(stderr, "likes_client: bad arguments\n");
        return 2;
    }
    generate();
    if (strcmp(argv[1], "post") == 0) {
        if (argc > 7)
            conns = (unsigned)atoi(argv[7]);
        if (argc > 8)
            batch = (unsigned)atoi(argv[8]);
        if (conns < 1 || conns > 64 || batch < 1 || batch > 10000)
            return 2;
        return cmd_post();
    }
    if (strcmp(argv[1], "verify") == 0 && argc >= 9)
        return cmd_verify(atof(argv[7]), strtoull(argv[8], NULL, 10),
                          argc > 9 && strcmp(argv[9], "hits") == 0);
    if (strcmp(argv[1], "reads") == 0 && argc >= 8)
        return cmd_reads(atof(argv[7]));
    fprintf(stderr, "likes_client: unknown command %s\n", argv[1]);
    return 2;
}
