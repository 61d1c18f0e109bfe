/*
 * test_flow_redis.c - the global rate through real Redis
 * (engine/src/adapters/redis, railgun/redis.h), run by
 * tests/support/with_redis.sh.
 *
 * Simulated nodes in one process: each has its own token bucket, fed by
 * its lease client's set_rate(), and a consumer thread that takes bursts
 * of 32 as fast as the bucket allows (or at a fixed demand). Checked:
 * three nodes share the global rate within 10% over every 2 s window and
 * the registry shows them; an idle node leaves its share to busy ones; a
 * node that dies (no leave) has its share taken by the others within 2 s;
 * a new global rate is applied within one lease period and a bit; the
 * unix socket works and a wrong password degrades with a clear error;
 * redis-server SIGKILLed and restarted, and SIGSTOPped and resumed: the
 * nodes keep running within their fallback rates, report degraded mode,
 * and return to the global rate (remembering a rate set before the
 * outage).
 *
 * Built a second time with RG_FLOW_SENTINEL_TESTS (test_flow_redis_sentinel,
 * run by with_redis.sh --sentinel): the primary is killed and Sentinel
 * promotes the replica, then a planned failover moves it back; the nodes
 * follow without a restart.
 *
 * Outages last RG_FLOW_OUTAGE_S seconds (default 5; the figure is
 * 20): past the lease TTL plus the decay (2 s here), an outage is steady
 * state, so 5 s already covers holding, decay and fallback with whole 2 s
 * windows inside each, and keeps the suite short. RG_FLOW_OUTAGE_S=20
 * runs the durations.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "bucket.h"
#include "railgun/conf.h"
#include "railgun/error.h"
#include "railgun/redis.h"

#define MS ((int64_t)1000000)
#define SEC ((int64_t)1000000000)

static int64_t now_ns(void)
{
    return rg__bucket_clock_ns();
}

static void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {ns / SEC, ns % SEC};
    nanosleep(&ts, NULL);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert_not_null(v, "%s is not set: run through tests/support/"
                          "with_redis.sh", name);
    return v;
}

/* Runs the Redis control script: ctl("kill", "r0"), ctl("failover", NULL). */
static void ctl(const char *verb, const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s %s %s >/dev/null", env("RG_REDIS_CTL"),
             verb, name ? name : "", env("RG_REDIS_DIR"));
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

/* ---- a simulated node --------------------------------------------------- */

struct node {
    struct rg__bucket b;
    rg_flow_redis_t *c;
    pthread_t th;
    bool running;
    _Atomic int stop;
    _Atomic uint64_t demand;     /* events/s wanted; 0: all it can get */
    _Atomic uint64_t consumed;   /* events taken */
    _Atomic uint64_t rate;       /* the last set_rate() */
    _Atomic uint64_t set_calls;
    _Atomic int hook_errors;     /* set_rate() got a rate the bucket refused */
    char id[64];
};

static void hook_set_rate(void *opaque, uint64_t rate, uint64_t burst)
{
    struct node *n = opaque;
    int64_t now = now_ns();
    /* no assertion here: this is the lease thread (checked at stop) */
    if (burst != 0 && rg__bucket_set_burst(&n->b, burst, now) != 0)
        atomic_fetch_add(&n->hook_errors, 1);
    if (rg__bucket_set_limit(&n->b, RG__BUCKET_LEASE, rate, now) != 0)
        atomic_fetch_add(&n->hook_errors, 1);
    /* relaxed: read by the test thread for progress checks only */
    atomic_store_explicit(&n->rate, rate, memory_order_relaxed);
    atomic_fetch_add_explicit(&n->set_calls, 1, memory_order_relaxed);
}

static void hook_usage(void *opaque, rg_flow_usage_t *u)
{
    struct node *n = opaque;
    struct rg__bucket_stats st;
    rg__bucket_stats(&n->b, &st);
    u->consumed = st.granted;
    u->throttled = st.throttled;
}

static void *consume_main(void *arg)
{
    struct node *n = arg;
    struct rg__bucket_cache cache = {0};
    int64_t t0 = now_ns();
    uint64_t mine = 0, base = 0;
    uint64_t last_demand = 0;
    /* relaxed: flags and figures, no data behind them */
    while (!atomic_load_explicit(&n->stop, memory_order_relaxed)) {
        uint64_t demand = atomic_load_explicit(&n->demand,
                                               memory_order_relaxed);
        if (demand != last_demand) { /* restart the pacing */
            t0 = now_ns();
            base = mine;
            last_demand = demand;
        }
        if (demand != 0) {
            uint64_t due = (uint64_t)((double)demand *
                                      (double)(now_ns() - t0) / 1e9);
            if (mine - base >= due) {
                sleep_ns(MS);
                continue;
            }
        }
        int64_t wait = 0;
        uint32_t got = rg__bucket_take(&n->b, &cache, 32, now_ns(), &wait);
        mine += got;
        atomic_fetch_add_explicit(&n->consumed, got, memory_order_relaxed);
        if (got < 32)
            sleep_ns(wait < 2 * MS ? wait : 2 * MS);
    }
    rg__bucket_cache_release(&n->b, &cache, now_ns());
    return NULL;
}

struct group {
    char name[64];
    uint64_t global;
    bool socket;           /* connect through the unix socket */
    const char *password;  /* NULL: the server's */
    bool sentinels;
    bool leave;
};

static rg_flow_redis_opts_t *opts_for(const struct group *g, const char *id)
{
    rg_flow_redis_opts_t *o = rg_flow_redis_opts_new();
    cr_assert_not_null(o);
    char err[256], num[32];
#define SET(k, v)                                                            \
    cr_assert_eq(rg_flow_redis_opts_set(o, k, v, err, sizeof(err)), 0,      \
                 "%s", err)
    if (g->sentinels) {
        SET("flow.redis.sentinels", env("RG_SENTINELS"));
        SET("flow.redis.master", env("RG_REDIS_MASTER"));
    } else if (g->socket) {
        SET("flow.redis.socket", env("RG_REDIS_SOCKET"));
    } else {
        SET("flow.redis.host", "127.0.0.1");
        SET("flow.redis.port", env("RG_REDIS_PORT"));
    }
    SET("flow.redis.password", g->password ? g->password
                                           : env("RG_REDIS_PASSWORD"));
    SET("group.id", g->name);
    snprintf(num, sizeof(num), "%" PRIu64, g->global);
    SET("flow.global.rate.events.per.s", num);
    SET("flow.lease.ms", "100");
    SET("flow.lease.ttl.ms", "1000");
    SET("flow.redis.timeout.ms", "50");
    SET("flow.redis.backoff.max.ms", "1000");
    SET("flow.fallback.decay.ms", "1000");
    SET("flow.lease.leave", g->leave ? "true" : "false");
    if (id != NULL)
        SET("flow.node.id", id);
#undef SET
    return o;
}

static void node_start(struct node *n, const struct group *g, const char *id,
                       uint64_t demand)
{
    memset(n, 0, sizeof(*n));
    snprintf(n->id, sizeof(n->id), "%s", id);
    cr_assert_eq(rg__bucket_init(&n->b), 0);
    atomic_store(&n->demand, demand);
    rg_flow_redis_opts_t *o = opts_for(g, id);
    rg_flow_redis_hooks_t h = {hook_set_rate, hook_usage, n};
    char err[256];
    n->c = rg_flow_redis_new(o, &h, err, sizeof(err));
    rg_flow_redis_opts_destroy(o);
    cr_assert_not_null(n->c, "%s", err);
    cr_assert_eq(rg_flow_redis_start(n->c, err, sizeof(err)), 0, "%s", err);
    cr_assert_gt(atomic_load(&n->set_calls), 0, "start() set no rate");
    cr_assert_eq(pthread_create(&n->th, NULL, consume_main, n), 0);
    n->running = true;
}

static void node_stop(struct node *n)
{
    if (!n->running)
        return;
    atomic_store(&n->stop, 1);
    pthread_join(n->th, NULL);
    rg_flow_redis_destroy(n->c);
    rg__bucket_fini(&n->b);
    n->running = false;
    cr_assert_eq(atomic_load(&n->hook_errors), 0, "%s: a rate the bucket "
                 "refused", n->id);
}

static void group_name(struct group *g, const char *test)
{
    snprintf(g->name, sizeof(g->name), "%s-%d-%lld", test, (int)getpid(),
             (long long)(now_ns() % 1000000));
}

/* Events the nodes [from, to) consumed over the next `dur` ns. */
static uint64_t window(struct node *ns, int from, int to, int64_t dur,
                       uint64_t *per_node)
{
    uint64_t before[8];
    for (int i = from; i < to; i++)
        before[i] = atomic_load(&ns[i].consumed);
    sleep_ns(dur);
    uint64_t total = 0;
    for (int i = from; i < to; i++) {
        uint64_t d = atomic_load(&ns[i].consumed) - before[i];
        if (per_node)
            per_node[i] = d;
        total += d;
    }
    return total;
}

static void assert_within(uint64_t got, double want, double tol,
                          const char *what)
{
    if (getenv("RG_FLOW_TEST_VERBOSE"))
        fprintf(stderr, "  %-44s %8" PRIu64 " events (want %.0f +-%.0f%%)\n",
                what, got, want, tol * 100);
    cr_assert(got >= want * (1 - tol) && got <= want * (1 + tol),
              "%s: %" PRIu64 " events, not within %.0f%% of %.0f", what, got,
              tol * 100, want);
}

/* The nodes [from, to) over 2 s windows: within tol of want. Above it
 * fails at once (the group's rate is a bound); below it is measured
 * again, up to 3 windows: a node starved of CPU by a loaded machine (CI
 * runs two sanitizer tests at once on 2 cores) consumes less than its
 * tokens for a while, which is not the bound's business, while a rate
 * that stays low fails all three. */
static void assert_window_within(struct node *ns, int from, int to,
                                 double want, double tol, const char *what)
{
    uint64_t got = 0;
    for (int i = 0; i < 3; i++) {
        got = window(ns, from, to, 2 * SEC, NULL);
        if (got > want * (1 + tol) || got >= want * (1 - tol))
            break;
        if (getenv("RG_FLOW_TEST_VERBOSE"))
            fprintf(stderr, "  %s: %" PRIu64 " events, low: again\n", what,
                    got);
    }
    assert_within(got, want, tol, what);
}

/* Waits up to `limit` ns until every node's client is in `mode`; returns
 * how long it took, or -1. */
static int64_t wait_mode(struct node *ns, int k, int mode, int64_t limit)
{
    int64_t t0 = now_ns();
    while (now_ns() - t0 < limit) {
        int ok = 1;
        for (int i = 0; i < k; i++) {
            rg_flow_redis_stats_t st;
            rg_flow_redis_stats(ns[i].c, &st);
            ok &= st.mode == mode;
        }
        if (ok)
            return now_ns() - t0;
        sleep_ns(10 * MS);
    }
    return -1;
}

#ifndef RG_FLOW_SENTINEL_TESTS

/* ---- options ------------------------------------------------------------ */

Test(flow_redis, options_reject_bad_values_with_one_line_errors)
{
    rg_flow_redis_opts_t *o = rg_flow_redis_opts_new();
    cr_assert_not_null(o);
    char err[256];
    cr_assert_eq(rg_flow_redis_opts_set(o, "flow.redis.nope", "1", err,
                                        sizeof(err)), RG_ENOENT);
    cr_assert_eq(rg_flow_redis_opts_set(o, "flow.lease.ms", "abc", err,
                                        sizeof(err)), RG_EINVAL);
    cr_assert(strstr(err, "flow.lease.ms") != NULL, "%s", err);
    cr_assert_eq(rg_flow_redis_opts_set(o, "flow.lease.ms", "5", err,
                                        sizeof(err)), RG_ERANGE);
    cr_assert(strstr(err, "below the minimum 10") != NULL, "%s", err);
    cr_assert_eq(rg_flow_redis_opts_set(o, "flow.lease.leave", "maybe", err,
                                        sizeof(err)), RG_EINVAL);
    /* every row has a name, a doc, and a default that parses */
    size_t np = rg_flow_redis_prop_count();
    cr_assert_gt(np, 15);
    for (size_t i = 0; i < np; i++) {
        const rg_conf_prop_t *p = rg_flow_redis_prop_at(i);
        cr_assert(p->name[0] && p->doc[0]);
        cr_assert_eq(rg_flow_redis_opts_set(o, p->name, p->def, err,
                                            sizeof(err)), 0, "%s", err);
    }
    cr_assert_null(rg_flow_redis_prop_at(np));

    rg_flow_redis_hooks_t h = {hook_set_rate, hook_usage, NULL};
    cr_assert_eq(rg_flow_redis_opts_set(o, "flow.lease.ttl.ms", "150", err,
                                        sizeof(err)), 0);
    cr_assert_null(rg_flow_redis_new(o, &h, err, sizeof(err)));
    cr_assert(strstr(err, "twice") != NULL, "%s", err);
    cr_assert_eq(rg_flow_redis_opts_set(o, "flow.lease.ttl.ms", "1000", err,
                                        sizeof(err)), 0);
    cr_assert_eq(rg_flow_redis_opts_set(o, "flow.redis.sentinels",
                                        "127.0.0.1:26379,nohostport", err,
                                        sizeof(err)), 0);
    cr_assert_null(rg_flow_redis_new(o, &h, err, sizeof(err)));
    cr_assert(strstr(err, "nohostport") != NULL, "%s", err);
    cr_assert_eq(rg_flow_redis_set_global_rate(o, 64000000001ull, err,
                                               sizeof(err)), RG_ERANGE);
    rg_flow_redis_hooks_t bad = {NULL, hook_usage, NULL};
    cr_assert_null(rg_flow_redis_new(o, &bad, err, sizeof(err)));

    /* the properties a configuration's tables know come from it (here a
     * table of the program's that defines group.id, as the Kafka
     * adapter's does) */
    static const rg_conf_prop_t group_row[] = {
        {"group.id", RG_CONF_STR, "railgun", 0, 0, "the group", NULL}};
    static const rg_conf_table_t group_table = {
        "test", RG_CONF_SCOPE_APP, group_row, 1, NULL, NULL};
    rg_conf_t *conf = rg_conf_new();
    cr_assert_eq(rg_conf_add_table(conf, &group_table, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(rg_conf_set(conf, "group.id", "from-conf", err,
                             sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_flow_redis_opts_from_conf(o, conf, err, sizeof(err)), 0,
                 "%s", err);
    rg_conf_destroy(conf);
    rg_flow_redis_opts_destroy(o);
}

/* ---- sharing ------------------------------------------------------------ */

Test(flow_redis, three_nodes_share_the_global_rate, .timeout = 120)
{
    struct group g = {.global = 30000, .leave = true};
    group_name(&g, "share");
    struct node ns[3];
    node_start(&ns[0], &g, "a", 0);
    node_start(&ns[1], &g, "b", 0);
    node_start(&ns[2], &g, "c", 0);
    cr_assert_geq(wait_mode(ns, 3, RG_FLOW_LEASED, 2 * SEC), 0);
    sleep_ns(SEC); /* the first leases settle */
    for (int w = 0; w < 3; w++) {
        uint64_t per[3];
        uint64_t total = window(ns, 0, 3, 2 * SEC, per);
        assert_within(total, 60000, 0.10, "group over 2 s");
        for (int i = 0; i < 3; i++)
            assert_within(per[i], 20000, 0.25, "one node's share");
    }
    /* the registry shows every node, within the global rate */
    rg_flow_redis_opts_t *o = opts_for(&g, NULL);
    rg_flow_group_t grp;
    char err[256];
    cr_assert_eq(rg_flow_redis_show(o, &grp, err, sizeof(err)), 0, "%s", err);
    cr_assert(grp.rate_set);
    cr_assert_eq(grp.global_rate, 30000);
    cr_assert_eq(grp.nnodes, 3);
    cr_assert_leq(grp.granted_total, 30000);
    cr_assert_geq(grp.granted_total, 27000);
    static const char *const ids[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(grp.nodes[i].id, ids[i]);
        cr_assert_eq(grp.nodes[i].pid, getpid());
        cr_assert_eq(grp.nodes[i].wants, -1, "a hungry node wants all");
        cr_assert_eq(grp.nodes[i].mode, RG_FLOW_LEASED);
        cr_assert_gt(grp.nodes[i].consumed, 0);
        cr_assert(grp.nodes[i].expires_in_ms > 0 &&
                  grp.nodes[i].expires_in_ms <= 1000);
        cr_assert(grp.nodes[i].host[0] != '\0');
    }
    rg_flow_group_free(&grp);
    rg_flow_redis_stats_t st;
    rg_flow_redis_stats(ns[0].c, &st);
    cr_assert_eq(st.nodes, 3);
    cr_assert_eq(st.global_rate, 30000);
    cr_assert_eq(st.fair_share, 10000);
    cr_assert(!st.degraded);
    cr_assert(st.share > 0.25 && st.share < 0.42, "share %f", st.share);
    cr_assert_gt(st.leases, 20);
    for (int i = 0; i < 3; i++)
        node_stop(&ns[i]);
    /* the nodes left: nothing is reserved any more */
    cr_assert_eq(rg_flow_redis_show(o, &grp, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(grp.nnodes, 0);
    rg_flow_group_free(&grp);
    rg_flow_redis_opts_destroy(o);
}

Test(flow_redis, idle_node_leaves_its_share_to_busy_ones, .timeout = 120)
{
    struct group g = {.global = 30000, .leave = true};
    group_name(&g, "idle");
    struct node ns[3];
    node_start(&ns[0], &g, "idle", 1000);
    node_start(&ns[1], &g, "busy1", 0);
    node_start(&ns[2], &g, "busy2", 0);
    sleep_ns(2 * SEC);
    for (int w = 0; w < 2; w++) {
        uint64_t per[3];
        uint64_t total = window(ns, 0, 3, 2 * SEC, per);
        cr_assert_leq(total, 66000, "group over 2 s: %" PRIu64, total);
        assert_within(per[0], 2000, 0.15, "the idle node's own demand");
        /* the busy pair gets all but what the idle node holds: its wants
         * (1.25 x 1000) or the floor, rate / 24 = 1250 */
        assert_within(per[1] + per[2], 2 * (30000 - 1250), 0.10,
                      "the busy pair");
    }
    for (int i = 0; i < 3; i++)
        node_stop(&ns[i]);
}

Test(flow_redis, dead_node_share_goes_to_the_others_within_2s, .timeout = 120)
{
    struct group g = {.global = 30000, .leave = false};
    group_name(&g, "dead");
    struct node ns[3];
    for (int i = 0; i < 3; i++)
        node_start(&ns[i], &g, (const char *[]){"n0", "n1", "n2"}[i], 0);
    sleep_ns(2 * SEC);
    assert_window_within(ns, 0, 3, 60000, 0.10, "before");
    /* n2 "crashes": no leave, its entry stays until it expires */
    node_stop(&ns[2]);
    sleep_ns(2 * SEC);
    assert_window_within(ns, 0, 2, 60000, 0.10,
                         "the two survivors, 2 s after the death");
    for (int i = 0; i < 2; i++)
        node_stop(&ns[i]);
}

Test(flow_redis, new_global_rate_applies_within_a_lease_period, .timeout = 120)
{
    struct group g = {.global = 30000, .leave = true};
    group_name(&g, "set");
    struct node ns[2];
    node_start(&ns[0], &g, "x", 0);
    node_start(&ns[1], &g, "y", 0);
    sleep_ns(2 * SEC);
    rg_flow_redis_opts_t *o = opts_for(&g, NULL);
    char err[256];
    int64_t t0 = now_ns();
    cr_assert_eq(rg_flow_redis_set_global_rate(o, 10000, err, sizeof(err)),
                 0, "%s", err);
    /* every node's bucket enforces its new share within 100 ms + a bit */
    int64_t took = -1;
    while (now_ns() - t0 < SEC) {
        uint64_t sum = atomic_load(&ns[0].rate) + atomic_load(&ns[1].rate);
        if (sum <= 10000 && atomic_load(&ns[0].rate) > 0 &&
            atomic_load(&ns[1].rate) > 0) {
            took = now_ns() - t0;
            break;
        }
        sleep_ns(MS);
    }
    if (getenv("RG_FLOW_TEST_VERBOSE"))
        fprintf(stderr, "  new rate in every bucket after %" PRId64 " ms\n",
                took / MS);
    cr_assert(took >= 0 && took <= 250 * MS,
              "new rate applied after %" PRId64 " ms", took / MS);
    sleep_ns(500 * MS);
    assert_window_within(ns, 0, 2, 20000, 0.10,
                         "the group after the change");
    rg_flow_group_t grp;
    cr_assert_eq(rg_flow_redis_show(o, &grp, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(grp.global_rate, 10000);
    cr_assert_leq(grp.granted_total, 10000);
    rg_flow_group_free(&grp);
    /* 0: unlimited, at the next lease too */
    cr_assert_eq(rg_flow_redis_set_global_rate(o, 0, err, sizeof(err)), 0);
    sleep_ns(300 * MS);
    cr_assert_eq(atomic_load(&ns[0].rate), 0);
    cr_assert_eq(atomic_load(&ns[1].rate), 0);
    rg_flow_redis_opts_destroy(o);
    for (int i = 0; i < 2; i++)
        node_stop(&ns[i]);
}

Test(flow_redis, unix_socket_and_a_wrong_password, .timeout = 60)
{
    struct group g = {.global = 5000, .socket = true, .leave = true};
    group_name(&g, "sock");
    struct node ok, bad;
    node_start(&ok, &g, "sock", 0);
    cr_assert_geq(wait_mode(&ok, 1, RG_FLOW_LEASED, SEC), 0);
    rg_flow_redis_stats_t st;
    rg_flow_redis_stats(ok.c, &st);
    cr_assert_str_eq(st.server, env("RG_REDIS_SOCKET"));
    cr_assert_eq(st.lease, 5000);
    cr_assert_eq(atomic_load(&ok.rate), 5000);

    struct group wrong = g;
    wrong.password = "not-the-password";
    node_start(&bad, &wrong, "wrong", 0);
    sleep_ns(500 * MS);
    rg_flow_redis_stats(bad.c, &st);
    cr_assert(st.degraded);
    cr_assert_eq(st.mode, RG_FLOW_FALLBACK);
    cr_assert_eq(st.leases, 0);
    cr_assert_gt(st.lease_errors, 0);
    cr_assert(strstr(st.last_error, "WRONGPASS") != NULL ||
                  strstr(st.last_error, "invalid") != NULL,
              "%s", st.last_error);
    /* never leased: the configured global rate, fail-open but bounded */
    cr_assert_eq(atomic_load(&bad.rate), 5000);
    node_stop(&bad);
    node_stop(&ok);
}

/* ---- outages ------------------------------------------------------------ */

static int outage_s(void)
{
    const char *v = getenv("RG_FLOW_OUTAGE_S");
    int s = v ? atoi(v) : 5;
    return s >= 3 ? s : 3;
}

/*
 * Three hungry nodes at `global`; `outage` takes Redis away for
 * RG_FLOW_OUTAGE_S seconds and brings it back. Before it, the rate is set
 * to 24000 through Redis, so the nodes' fallback is 8000 each and the
 * rate they must remember across a Redis that lost its data is 24000.
 */
static void outage_test(const char *name, const char *down, const char *up)
{
    struct group g = {.global = 30000, .leave = true};
    group_name(&g, name);
    struct node ns[3];
    for (int i = 0; i < 3; i++)
        node_start(&ns[i], &g, (const char *[]){"o0", "o1", "o2"}[i], 0);
    rg_flow_redis_opts_t *o = opts_for(&g, NULL);
    char err[256];
    cr_assert_eq(rg_flow_redis_set_global_rate(o, 24000, err, sizeof(err)),
                 0, "%s", err);
    sleep_ns(2 * SEC);
    assert_window_within(ns, 0, 3, 48000, 0.10, "before");

    int64_t t_down = now_ns();
    ctl(down, "r0");
    /* the lease holds for its TTL (1 s), then the nodes fall back */
    int64_t t = wait_mode(ns, 3, RG_FLOW_FALLBACK, 3 * SEC);
    cr_assert_geq(t, 0, "the nodes did not fall back");
    for (int i = 0; i < 3; i++) {
        rg_flow_redis_stats_t st;
        rg_flow_redis_stats(ns[i].c, &st);
        cr_assert(st.degraded);
        cr_assert_gt(st.lease_errors, 0);
        cr_assert(st.last_error[0] != '\0');
    }
    /* during the outage: each node within its fallback (its last fair
     * share, 8000), the group within the rate; and still running */
    int64_t left = t_down + (int64_t)outage_s() * SEC - now_ns();
    int windows = 0;
    while (left >= 2 * SEC) {
        uint64_t per[3];
        uint64_t total = window(ns, 0, 3, 2 * SEC, per);
        for (int i = 0; i < 3; i++)
            cr_assert_leq(per[i], 16000 * 1.05 + 300,
                          "node %d above its fallback: %" PRIu64, i, per[i]);
        assert_within(total, 48000, 0.10, "the group in fallback");
        left -= 2 * SEC;
        windows++;
    }
    cr_assert_geq(windows, 1);
    sleep_ns(left);
    ctl(up, "r0");
    /* while the nodes come back (each within its backoff, up to 1 s
     * apart), the first ones must not take the share of those still in
     * fallback: the group stays within the rate */
    uint64_t rec = window(ns, 0, 3, SEC + SEC / 2, NULL);
    if (getenv("RG_FLOW_TEST_VERBOSE"))
        fprintf(stderr, "  %-44s %8" PRIu64 " events (want <= %.0f)\n",
                "the 1.5 s after Redis is back", rec, 36000 * 1.05);
    cr_assert_leq(rec, 36000 * 1.05, "recovery overshoot: %" PRIu64, rec);
    int64_t back = wait_mode(ns, 3, RG_FLOW_LEASED, 5 * SEC);
    cr_assert_geq(back, 0, "the nodes did not lease again");
    sleep_ns(2 * SEC);
    assert_window_within(ns, 0, 3, 48000, 0.10, "after");
    /* the rate set before the outage survived it */
    rg_flow_group_t grp;
    cr_assert_eq(rg_flow_redis_show(o, &grp, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(grp.global_rate, 24000);
    cr_assert_eq(grp.nnodes, 3);
    rg_flow_group_free(&grp);
    for (int i = 0; i < 3; i++) {
        rg_flow_redis_stats_t st;
        rg_flow_redis_stats(ns[i].c, &st);
        cr_assert(!st.degraded);
        cr_assert_gt(st.reconnects, 0);
    }
    rg_flow_redis_opts_destroy(o);
    for (int i = 0; i < 3; i++)
        node_stop(&ns[i]);
}

Test(flow_redis, redis_killed_then_restarted, .timeout = 300)
{
    outage_test("kill", "kill", "restart");
}

Test(flow_redis, redis_stopped_then_continued, .timeout = 300)
{
    outage_test("stop", "pause", "resume");
}

#else /* RG_FLOW_SENTINEL_TESTS */

/* ---- Sentinel ------------------------------------------------------------ */

static void wait_server(struct node *ns, int k, const char *port)
{
    int64_t t0 = now_ns();
    for (;;) {
        int ok = 1;
        for (int i = 0; i < k; i++) {
            rg_flow_redis_stats_t st;
            rg_flow_redis_stats(ns[i].c, &st);
            const char *colon = strrchr(st.server, ':');
            ok &= st.mode == RG_FLOW_LEASED && colon != NULL &&
                  strcmp(colon + 1, port) == 0;
        }
        if (ok)
            return;
        cr_assert_lt(now_ns() - t0, 20 * SEC, "nodes not on port %s", port);
        sleep_ns(20 * MS);
    }
}

/* Windows of 2 s until `until`: within 10% of the rate (fallback is the
 * fair share, so the group keeps it through the failover). */
static void windows_until(struct node *ns, int k, double per_2s,
                          int64_t dur)
{
    int64_t end = now_ns() + dur;
    while (end - now_ns() >= 2 * SEC)
        cr_assert_leq(window(ns, 0, k, 2 * SEC, NULL), per_2s * 1.10);
}

Test(flow_redis_sentinel, failovers_are_followed_without_a_restart,
     .timeout = 300)
{
    struct group g = {.global = 30000, .sentinels = true, .leave = true};
    group_name(&g, "sentinel");
    struct node ns[3];
    for (int i = 0; i < 3; i++)
        node_start(&ns[i], &g, (const char *[]){"s0", "s1", "s2"}[i], 0);
    const char *p0 = env("RG_REDIS_PORT"), *p1 = env("RG_REDIS_REPLICA_PORT");
    wait_server(ns, 3, p0);
    sleep_ns(SEC);
    assert_window_within(ns, 0, 3, 60000, 0.10, "before");

    /* the primary dies: Sentinel promotes the replica (down after 1 s) */
    ctl("kill", "r0");
    int64_t t = wait_mode(ns, 3, RG_FLOW_FALLBACK, 5 * SEC);
    int64_t t_deg = now_ns();
    for (int i = 0; i < 3 && t < 0; i++) {
        /* a fast failover may be followed before every node fell back:
         * then each must at least have been degraded once */
        rg_flow_redis_stats_t st;
        rg_flow_redis_stats(ns[i].c, &st);
        cr_assert_gt(st.lease_errors, 0);
    }
    windows_until(ns, 3, 60000, 2 * SEC);
    wait_server(ns, 3, p1);
    cr_assert_lt(now_ns() - t_deg, 20 * SEC);
    for (int i = 0; i < 3; i++) {
        rg_flow_redis_stats_t st;
        rg_flow_redis_stats(ns[i].c, &st);
        cr_assert_geq(st.master_changes, 1);
    }
    sleep_ns(2 * SEC);
    if (getenv("RG_FLOW_TEST_VERBOSE"))
        for (int i = 0; i < 3; i++) {
            rg_flow_redis_stats_t st;
            rg_flow_redis_stats(ns[i].c, &st);
            fprintf(stderr, "  node %d: %s rate %" PRIu64 " lease %" PRIu64
                    " nodes %u errors %" PRIu64 " server %s\n", i,
                    rg_flow_mode_name(st.mode), st.rate, st.lease, st.nodes,
                    st.lease_errors, st.server);
        }
    assert_window_within(ns, 0, 3, 60000, 0.10,
                         "after the promotion");

    /* the old primary comes back as a replica; a planned failover moves
     * the primary back to it, and the nodes follow again */
    ctl("restart", "r0");
    sleep_ns(3 * SEC); /* Sentinel reconfigures it as r1's replica */
    ctl("failover", NULL);
    wait_server(ns, 3, p0);
    sleep_ns(2 * SEC);
    assert_window_within(ns, 0, 3, 60000, 0.10,
                         "after the planned failover");
    for (int i = 0; i < 3; i++)
        node_stop(&ns[i]);
}

#endif /* RG_FLOW_SENTINEL_TESTS */
