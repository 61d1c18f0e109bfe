/*
 * cmd_doctor.c - `railgun doctor`: watches the group's nodes for a few
 * seconds (two or more scrapes of each one's /metrics) and names what is
 * wrong, with its evidence and what to do (apps/railgun/doctor/doctor.h
 * lists the findings). Exit 0 healthy, 1 it found something (or could not
 * reach a node), 2 bad input.
 *
 * The nodes: --metrics URL[,URL...]; else, when flow control uses Redis
 * (flow.global.rate.events.per.s or flow.redis.* set), the group's
 * registry there (rg_flow_redis_show()): each live member is scraped at
 * the address after the last '@' of its node id (`railgun run` registers
 * as NAME@HOST:PORT, its metrics listener; a loopback or wildcard HOST on
 * another host means that node's registered host name), else at its host and
 * --metrics-port (or metrics.listen's port); else metrics.listen itself.
 *
 * Each node is scraped on a thread of its own, every --interval-ms for
 * --watch-ms, so a node that does not answer delays no other.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "commands.h"
#include "doctor.h"
#include "fetch.h"
#include "likes_job.h"
#include "prom.h"
#include "railgun/railgun.h"
#include "railgun/redis.h"

#define NODES_MAX 256
#define BODY_MAX (64u << 20)

struct scrape {
    double t;
    rg_prom_t *p;   /* NULL: failed, err says why */
    char err[300];
};

struct target {
    char name[288];     /* as reported: http://host:port (a 255-byte host, brackets, port) */
    rg_url_t url;
    /* the scraping thread's */
    pthread_t th;
    bool started;
    struct scrape *s;
    size_t n, cap;
    bool oom;
};

struct plan {
    double t0;          /* CLOCK_MONOTONIC seconds */
    unsigned watch_ms, interval_ms, timeout_ms;
};

static struct plan plan;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - mono();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void scrape_once(struct target *tg)
{
    if (tg->n == tg->cap) {
        size_t cap = tg->cap ? tg->cap * 2 : 8;
        struct scrape *s = realloc(tg->s, cap * sizeof(*s));
        if (s == NULL) {
            tg->oom = true;
            return;
        }
        tg->s = s;
        tg->cap = cap;
    }
    struct scrape *sc = &tg->s[tg->n++];
    memset(sc, 0, sizeof(*sc));
    char *body = NULL, err[256];
    size_t len = 0;
    int status = 0;
    int rc = rg_fetch(&tg->url, (int)plan.timeout_ms, BODY_MAX, &status,
                      &body, &len, err, sizeof(err));
    sc->t = mono();
    if (rc != 0) {
        snprintf(sc->err, sizeof(sc->err), "%s", err);
    } else if (status != 200) {
        snprintf(sc->err, sizeof(sc->err), "HTTP %d from %.120s%.120s", status,
                 tg->name, tg->url.path);
    } else if ((rc = rg_prom_parse(body, len, &sc->p, err, sizeof(err))) !=
               0) {
        snprintf(sc->err, sizeof(sc->err), "%.100s%.60s is not Prometheus text: "
                 "%.100s", tg->name, tg->url.path, err);
    } else if (sc->p->n == 0) {
        snprintf(sc->err, sizeof(sc->err), "%.120s%.120s serves no sample",
                 tg->name, tg->url.path);
        rg_prom_free(sc->p);
        sc->p = NULL;
    }
    free(body);
}

/* Scrapes at t0, t0 + interval, ... up to t0 + watch. */
static void *scraper(void *arg)
{
    struct target *tg = arg;
    double end = plan.t0 + plan.watch_ms / 1e3;
    for (unsigned i = 0;; i++) {
        double at = plan.t0 + i * (plan.interval_ms / 1e3);
        if (at > end + 1e-9)
            break;
        sleep_until(at);
        scrape_once(tg);
    }
    return NULL;
}

static void usage(void)
{
    printf("usage: railgun doctor [--metrics URL[,URL...]] [--watch-ms N] "
           "[--interval-ms N]\n"
           "                      [--timeout-ms N] [--metrics-port PORT] "
           "[--stuck-s S]\n"
           "                      [--lag-min N] [--json] [--config FILE] "
           "[-X name=value]\n\n"
           "Scrapes each node's /metrics every --interval-ms (1000) for "
           "--watch-ms\n(3000: four scrapes) and names what is wrong: "
           "partition imbalance,\nrunaway retries and the DLQ, the "
           "bottleneck stage (source, dispatcher,\nworker or lane, sink, "
           "flow control), stuck watermarks with their offset,\ndegraded "
           "mode (Redis, Kafka, the sink, the producer's fallback), and\n"
           "each partition's lag status (OK, WARN, STALL, STOP, REWIND).\n\n"
           "Nodes: --metrics URL (http://host:port, /metrics implied), "
           "else the group's\nregistry in Redis when flow control uses it "
           "(flow.redis.*, as for\n`railgun run`), else metrics.listen. "
           "--json prints the report as JSON\n(the shape of GET "
           "/doctor.json). Exit 0 healthy, 1 something found, 2 bad\n"
           "input.\n");
}

struct opts {
    const char *metrics[NODES_MAX];
    int nmetrics;
    uint64_t watch_ms, interval_ms, timeout_ms, metrics_port;
    double stuck_s, lag_min;
};

static int parse_args(rg_cli_t *cli, struct opts *o, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        if (rg_cli_is(a, "--metrics")) {
            if ((v = rg_cli_value(cli, argc, argv, &i, "--metrics")) == NULL)
                return 2;
            if (o->nmetrics == NODES_MAX)
                return rg_cli_fail(cli, "--metrics: at most %d nodes",
                                   NODES_MAX);
            o->metrics[o->nmetrics++] = v;
        } else if (rg_cli_is(a, "--watch-ms")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--watch-ms")) ||
                rg_cli_u64(cli, "--watch-ms", v, 0, 3600000, &o->watch_ms))
                return 2;
        } else if (rg_cli_is(a, "--interval-ms")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--interval-ms")) ||
                rg_cli_u64(cli, "--interval-ms", v, 50, 600000,
                           &o->interval_ms))
                return 2;
        } else if (rg_cli_is(a, "--timeout-ms")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--timeout-ms")) ||
                rg_cli_u64(cli, "--timeout-ms", v, 10, 600000,
                           &o->timeout_ms))
                return 2;
        } else if (rg_cli_is(a, "--metrics-port")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--metrics-port")) ||
                rg_cli_u64(cli, "--metrics-port", v, 1, 65535,
                           &o->metrics_port))
                return 2;
        } else if (rg_cli_is(a, "--stuck-s")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--stuck-s")) ||
                rg_cli_double(cli, "--stuck-s", v, 0.001, 1e9, &o->stuck_s))
                return 2;
        } else if (rg_cli_is(a, "--lag-min")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--lag-min")) ||
                rg_cli_double(cli, "--lag-min", v, 0, 1e18, &o->lag_min))
                return 2;
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", a);
        }
    }
    return cli->help ? 0 : rg_cli_finish(cli);
}

/* Adds the target "http://HOST:PORT" (the path /metrics unless the URL
 * names one). 0, or 2 after the error. */
static int add_target(rg_cli_t *cli, struct target *tg, size_t *n,
                      const char *url)
{
    char err[300];
    if (*n == NODES_MAX)
        return rg_cli_fail(cli, "at most %d nodes", NODES_MAX);
    struct target *t = &tg[*n];
    memset(t, 0, sizeof(*t));
    if (rg_url_parse(url, &t->url, err, sizeof(err)) != 0)
        return rg_cli_fail(cli, "--metrics: %s", err);
    if (!strcmp(t->url.path, "/"))
        snprintf(t->url.path, sizeof(t->url.path), "/metrics");
    bool v6 = strchr(t->url.host, ':') != NULL;
    snprintf(t->name, sizeof(t->name), "http://%s%s%s:%s", v6 ? "[" : "",
             t->url.host, v6 ? "]" : "", t->url.port);
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(tg[i].name, t->name) &&
            !strcmp(tg[i].url.path, t->url.path))
            return 0; /* named twice: scraped once */
    (*n)++;
    return 0;
}

/* Splits a comma list of URLs into targets. */
static int add_list(rg_cli_t *cli, struct target *tg, size_t *n,
                    const char *list)
{
    char *dup = strdup(list), *save = NULL;
    if (dup == NULL)
        return rg_cli_error(cli, "out of memory");
    int rc = 0;
    for (char *u = strtok_r(dup, ",", &save); u != NULL && rc == 0;
         u = strtok_r(NULL, ",", &save))
        rc = add_target(cli, tg, n, u);
    free(dup);
    return rc;
}

/* The port of metrics.listen ("host:port"), or 0. */
static unsigned listen_port(const rg_conf_t *conf, char *host, size_t hsize)
{
    const char *l = rg_conf_get_str(conf, "metrics.listen");
    host[0] = '\0';
    if (l == NULL || l[0] == '\0')
        return 0;
    const char *c = strrchr(l, ':');
    if (c == NULL)
        return 0;
    size_t hl = (size_t)(c - l);
    if (hl > 1 && l[0] == '[' && l[hl - 1] == ']')
        snprintf(host, hsize, "%.*s", (int)(hl - 2), l + 1);
    else
        snprintf(host, hsize, "%.*s", (int)hl, l);
    long p = strtol(c + 1, NULL, 10);
    return p > 0 && p < 65536 ? (unsigned)p : 0;
}

/* The redis adapter's rows, as a table the CLI's conf can hold (rows it
 * shares with the core are shared: same type, default and bounds). */
static int add_redis_table(rg_conf_t *conf, char *err, size_t size)
{
    static rg_conf_table_t t;
    t = (rg_conf_table_t){.layer = "redis", .scope = RG_CONF_SCOPE_SOURCE,
                          .props = rg_flow_redis_prop_at(0),
                          .count = rg_flow_redis_prop_count()};
    return rg_conf_add_table(conf, &t, err, size);
}

static bool redis_configured(const rg_conf_t *c)
{
    return rg_conf_get_int(c, "flow.global.rate.events.per.s") > 0 ||
           rg_conf_is_set(c, "flow.redis.host") ||
           rg_conf_is_set(c, "flow.redis.port") ||
           rg_conf_is_set(c, "flow.redis.socket") ||
           rg_conf_is_set(c, "flow.redis.sentinels");
}

/* The group's members from Redis into d, and a target per member. */
static int discover(rg_cli_t *cli, const struct opts *o, rg_doctor_t *d,
                    struct target *tg, size_t *n, bool *answered)
{
    *answered = false;
    char err[512], lhost[256], url[600], myhost[256] = "";
    rg_flow_redis_opts_t *ro = rg_flow_redis_opts_new();
    if (ro == NULL)
        return rg_cli_error(cli, "out of memory");
    int rc = rg_flow_redis_opts_from_conf(ro, cli->conf, err, sizeof(err));
    if (rc != 0) {
        rg_flow_redis_opts_destroy(ro);
        return rg_cli_report(cli, rc, "%s", err);
    }
    rg_flow_group_t g = {0};
    rc = rg_flow_redis_show(ro, &g, err, sizeof(err));
    rg_flow_redis_opts_destroy(ro);
    if (rc != 0) {
        rg_doctor_registry_failed(d, err);
        return 0;
    }
    *answered = true;
    unsigned port = (unsigned)o->metrics_port;
    unsigned lport = listen_port(cli->conf, lhost, sizeof(lhost));
    if (port == 0)
        port = lport;
    gethostname(myhost, sizeof(myhost) - 1);
    for (size_t i = 0; i < g.nnodes && rc == 0; i++) {
        const rg_flow_node_t *m = &g.nodes[i];
        rg_doctor_member_t dm = {0};
        snprintf(dm.id, sizeof(dm.id), "%s", m->id);
        snprintf(dm.host, sizeof(dm.host), "%s", m->host);
        dm.mode = rg_flow_mode_name(m->mode);
        dm.granted = m->granted;
        dm.consumed_rate = m->consumed_rate;
        dm.age_ms = m->age_ms;
        if (rg_doctor_member(d, &dm) != 0) {
            rc = rg_cli_error(cli, "out of memory");
            break;
        }
        /* where its metrics are: NAME@HOST:PORT, else host and port. A
         * loopback or wildcard HOST (the default listener is 127.0.0.1)
         * means the node's own host: as is on this host, else its
         * registered host name with that port */
        const char *at = strrchr(m->id, '@');
        const char *colon = at ? strrchr(at, ':') : NULL;
        if (colon != NULL) {
            char ah[160];
            snprintf(ah, sizeof(ah), "%.*s", (int)(colon - at - 1), at + 1);
            bool local = !strncmp(ah, "127.", 4) || !strcmp(ah, "localhost") ||
                         !strcmp(ah, "0.0.0.0") || !strcmp(ah, "[::1]") ||
                         !strcmp(ah, "[::]");
            if (local && strcmp(m->host, myhost) != 0)
                snprintf(url, sizeof(url), "http://%s%s", m->host, colon);
            else
                snprintf(url, sizeof(url), "http://%s", at + 1);
        } else if (port != 0)
            snprintf(url, sizeof(url), "http://%s:%u",
                     !strcmp(m->host, myhost) && lhost[0] ? lhost : m->host,
                     port);
        else
            continue; /* registry findings only */
        rg_url_t u;
        if (rg_url_parse(url, &u, err, sizeof(err)) == 0)
            rc = add_target(cli, tg, n, url);
    }
    rg_flow_group_free(&g);
    return rc;
}

int rg_cmd_doctor(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "doctor", .conf = rg_likes_conf_new()};
    struct opts o = {.watch_ms = 3000, .interval_ms = 1000,
                     .timeout_ms = 2000};
    struct target *tg = NULL;
    size_t nt = 0;
    rg_doctor_t *d = NULL;
    rg_doctor_report_t *r = NULL;
    char err[512];
    int rc;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");
    if (add_redis_table(cli.conf, err, sizeof(err)) != 0) {
        rc = rg_cli_error(&cli, "%s", err);
        goto out;
    }
    if ((rc = parse_args(&cli, &o, argc, argv)) != 0 || cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    rg_doctor_opts_t dopts;
    rg_doctor_opts_init(&dopts);
    if (o.stuck_s > 0)
        dopts.stuck_s = o.stuck_s;
    if (o.lag_min > 0)
        dopts.lag_min = o.lag_min;
    tg = calloc(NODES_MAX, sizeof(*tg));
    d = rg_doctor_new(&dopts);
    if (tg == NULL || d == NULL) {
        rc = rg_cli_error(&cli, "out of memory");
        goto out;
    }

    /* the nodes */
    for (int i = 0; i < o.nmetrics; i++)
        if ((rc = add_list(&cli, tg, &nt, o.metrics[i])) != 0)
            goto out;
    if (o.nmetrics == 0 && redis_configured(cli.conf)) {
        bool answered;
        if ((rc = discover(&cli, &o, d, tg, &nt, &answered)) != 0)
            goto out;
        if (nt == 0 && answered) {
            /* nothing to watch is not healthy: say where it looked */
            rc = rg_cli_error(&cli, "no node of group %s registered in "
                              "Redis (flow.redis.*) with a metrics address "
                              "(is a railgun run with "
                              "flow.global.rate.events.per.s up? or give "
                              "--metrics URL, or --metrics-port)",
                              rg_conf_get_str(cli.conf, "group.id"));
            goto out;
        }
    } else if (o.nmetrics == 0) {
        char host[256];
        unsigned port = listen_port(cli.conf, host, sizeof(host));
        if (port == 0) {
            rc = rg_cli_fail(&cli, "no node to watch: give --metrics "
                             "URL[,URL...], or flow.redis.* to find the "
                             "group's nodes in Redis");
            goto out;
        }
        char url[300];
        snprintf(url, sizeof(url), "http://%s:%u",
                 host[0] ? host : "127.0.0.1", port);
        if ((rc = add_target(&cli, tg, &nt, url)) != 0)
            goto out;
    }

    /* the watch */
    plan = (struct plan){.t0 = mono(), .watch_ms = (unsigned)o.watch_ms,
                         .interval_ms = (unsigned)o.interval_ms,
                         .timeout_ms = (unsigned)o.timeout_ms};
    for (size_t i = 0; i < nt; i++) {
        int e = pthread_create(&tg[i].th, NULL, scraper, &tg[i]);
        if (e != 0) {
            rc = rg_cli_error(&cli, "cannot start a thread: %s", strerror(e));
            break;
        }
        tg[i].started = true;
    }
    rg_progress_t prog;
    rg_progress_init(&prog, "watching", o.watch_ms, cli.json);
    while (rc == 0 && mono() < plan.t0 + o.watch_ms / 1e3) {
        rg_progress_update(&prog, (uint64_t)((mono() - plan.t0) * 1e3));
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rg_progress_finish(&prog);
    for (size_t i = 0; i < nt; i++)
        if (tg[i].started)
            pthread_join(tg[i].th, NULL);
    if (rc != 0)
        goto out;

    /* the analysis */
    for (size_t i = 0; i < nt; i++) {
        if (tg[i].oom) {
            rc = rg_cli_error(&cli, "out of memory");
            goto out;
        }
        int n = rg_doctor_node(d, tg[i].name);
        if (n < 0) {
            rc = rg_cli_error(&cli, "out of memory");
            goto out;
        }
        for (size_t j = 0; j < tg[i].n; j++) {
            struct scrape *s = &tg[i].s[j];
            int e = s->p != NULL ? rg_doctor_scrape(d, n, s->t, s->p) :
                                   rg_doctor_scrape_failed(d, n, s->t, s->err);
            s->p = NULL; /* taken */
            if (e != 0) {
                rc = rg_cli_error(&cli, "out of memory");
                goto out;
            }
        }
    }
    if (rg_doctor_run(d, &r) != 0) {
        rc = rg_cli_error(&cli, "out of memory");
        goto out;
    }
    if (cli.json) {
        char *json;
        size_t len;
        if (rg_doctor_report_json(r, &json, &len) != 0) {
            rc = rg_cli_error(&cli, "out of memory");
            goto out;
        }
        fwrite(json, 1, len, stdout);
        free(json);
    } else {
        rg_doctor_report_text(r, stdout);
    }
    fflush(stdout);
    rc = r->nfindings > 0 ? 1 : 0;
out:
    rg_doctor_report_free(r);
    rg_doctor_destroy(d);
    if (tg != NULL)
        for (size_t i = 0; i < nt; i++) {
            for (size_t j = 0; j < tg[i].n; j++)
                rg_prom_free(tg[i].s[j].p);
            free(tg[i].s);
        }
    free(tg);
    rg_conf_destroy(cli.conf);
    return rc;
}
