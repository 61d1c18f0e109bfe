/*
 * doctor_unit.c - `railgun doctor`'s analysis (apps/railgun/doctor) on
 * synthetic scrapes: the Prometheus text parser, a healthy run that
 * reports nothing, and each finding made on purpose (and its near miss
 * not made), with the evidence it must carry.
 *
 * A scenario is a list of node states, one per scrape one second apart,
 * rendered as the exposition `railgun run` serves (the names of
 * NOTES-metrics.md) and parsed back, so the parser is in every test.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "doctor.h"
#include "prom.h"
#include "railgun/error.h"
#include "support/test.h"

/* ---- the parser -------------------------------------------------------- */

static rg_prom_t *parse(const char *text)
{
    rg_prom_t *p = NULL;
    char err[256] = "";
    int rc = rg_prom_parse(text, strlen(text), &p, err, sizeof(err));
    cr_assert_eq(rc, 0, "parse failed: %s", err);
    return p;
}

Test(doctor_prom, samples_labels_escapes_and_values)
{
    rg_prom_t *p = parse(
        "# HELP railgun_x_total Help with \\\\ and \\n.\n"
        "# TYPE railgun_x_total counter\n"
        "railgun_x_total 12\n"
        "  railgun_y{a=\"1\",b=\"q\\\"uo\\\\te\\nnl\",} 1.5e3 1700000000000\n"
        "\n"
        "# a comment\n"
        "railgun_z{le=\"+Inf\"} +Inf\n"
        "railgun_z{le=\"0.5\"}\t-Inf\n"
        "railgun_n NaN\n"
        "railgun_big 18446744073709551615\n");
    cr_assert_eq(p->n, 6);
    cr_assert_str_eq(p->samples[0].name, "railgun_x_total");
    cr_assert_eq(p->samples[0].value, 12);
    cr_assert_eq(p->samples[0].nlabels, 0);
    cr_assert_eq(p->samples[1].nlabels, 2);
    cr_assert_str_eq(rg_prom_label(&p->samples[1], "a"), "1");
    cr_assert_str_eq(rg_prom_label(&p->samples[1], "b"), "q\"uo\\te\nnl");
    cr_assert_null(rg_prom_label(&p->samples[1], "c"));
    cr_assert_eq(p->samples[1].value, 1500);
    cr_assert(isinf(p->samples[2].value) && p->samples[2].value > 0);
    cr_assert(isinf(p->samples[3].value) && p->samples[3].value < 0);
    cr_assert(isnan(p->samples[4].value));
    cr_assert_eq(p->samples[5].value, 18446744073709551615.0);
    cr_assert_str_eq(rg_prom_type(p, "railgun_x_total"), "counter");
    cr_assert_null(rg_prom_type(p, "railgun_y"));
    cr_assert_eq(rg_prom_next(p, "railgun_z", 0), 2);
    cr_assert_eq(rg_prom_next(p, "railgun_z", 3), 3);
    cr_assert_eq(rg_prom_next(p, "railgun_z", 4), p->n);
    rg_prom_free(p);
}

Test(doctor_prom, refuses_what_is_not_the_text_format)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"<html><body>502 Bad Gateway</body></html>\n", "line 1: expected a metric name"},
        {"ok 1\nx{a=\"1} 2\n", "line 2: unterminated label value or bad escape"},
        {"x{a=1} 2\n", "line 1: expected a quoted label value"},
        {"x{a\"1\"} 2\n", "line 1: expected '=' after a label name"},
        {"x{a=\"1\" b=\"2\"} 2\n", "line 1: expected ',' or '}' after a label"},
        {"x{a=\"\\t\"} 2\n", "line 1: unterminated label value or bad escape"},
        {"x\n", "line 1: expected a blank before the value"},
        {"x 1 2 3\n", "line 1: trailing text after the timestamp"},
        {"x one\n", "line 1: the value is not a number"},
        {"x 1 now\n", "line 1: trailing text after the value"},
        {"# TYPE x countr\n", "line 1: TYPE is not counter, gauge, histogram, summary or untyped"},
        {"x{1a=\"2\"} 1\n", "line 1: expected a label name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rg_prom_t *p = (rg_prom_t *)1;
        char err[256] = "";
        int rc = rg_prom_parse(bad[i].text, strlen(bad[i].text), &p, err,
                               sizeof(err));
        cr_assert_eq(rc, RG_EDECODE, "case %zu accepted", i);
        cr_assert_null(p);
        cr_assert_str_eq(err, bad[i].why, "case %zu: %s", i, err);
    }
    /* a NUL inside a line, and too many labels */
    rg_prom_t *p = NULL;
    char err[256];
    cr_assert_eq(rg_prom_parse("x 1\0 2\n", 7, &p, err, sizeof(err)),
                 RG_EDECODE);
    char many[2048] = "x{";
    for (int i = 0; i <= RG_PROM_LABELS_MAX; i++)
        sprintf(many + strlen(many), "l%d=\"v\",", i);
    strcat(many, "} 1\n");
    cr_assert_eq(rg_prom_parse(many, strlen(many), &p, err, sizeof(err)),
                 RG_ERANGE);
    /* empty input: no samples */
    cr_assert_eq(rg_prom_parse("", 0, &p, err, sizeof(err)), 0);
    cr_assert_eq(p->n, 0);
    rg_prom_free(p);
}

/* ---- scenarios ---------------------------------------------------------- */

#define NP 4
#define NW 4

struct pst {
    double committed, hw, age, pending;
    int paused;
};

/* One node at one scrape. NaN: the metric is not exported. */
struct st {
    double consumed, processed, retried, delayed, dlq_retries, dlq_bad;
    struct pst p[NP];
    int np;
    double busy[NW]; /* busy seconds, cumulative */
    int nw;
    double fill, waits, parks;
    double tx_sum, tx_count, epochs, pending_epochs;
    double throttled, limit, lease;
    double kafka, sink, redis, flow_degraded, fallback, spooled;
    const char *hot;
    double hot_share;
    double lane[2];
    int nl;
};

static void put(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        *cap *= 2;
        *buf = realloc(*buf, *cap);
        cr_assert_not_null(*buf);
    }
}

#define PUT(...) put(&b, &len, &cap, __VA_ARGS__)
#define G(name, v) do { if (!isnan(v)) PUT("%s %.17g\n", name, (double)(v)); } while (0)

static char *render(const struct st *s)
{
    size_t len = 0, cap = 256;
    char *b = malloc(cap);
    cr_assert_not_null(b);
    PUT("# TYPE railgun_events_consumed_total counter\n");
    G("railgun_events_consumed_total", s->consumed);
    G("railgun_events_processed_total", s->processed);
    G("railgun_events_retried_total", s->retried);
    G("railgun_events_delayed_total", s->delayed);
    if (!isnan(s->dlq_retries))
        PUT("railgun_events_dead_lettered_total{reason=\"retries\"} %.17g\n"
            "railgun_events_dead_lettered_total{reason=\"undecodable\"} "
            "%.17g\n", s->dlq_retries, s->dlq_bad);
    for (int i = 0; i < s->np; i++) {
        const struct pst *p = &s->p[i];
        const char *l = "topic=\"likes\",partition=";
        PUT("railgun_partition_committed_offset{%s\"%d\"} %.17g\n", l, i,
            p->committed);
        PUT("railgun_partition_high_watermark{%s\"%d\"} %.17g\n", l, i, p->hw);
        PUT("railgun_partition_lag{%s\"%d\"} %.17g\n", l, i,
            p->hw - p->committed);
        PUT("railgun_partition_pending_events{%s\"%d\"} %.17g\n", l, i,
            p->pending);
        PUT("railgun_partition_oldest_pending_age_seconds{%s\"%d\"} %.17g\n",
            l, i, p->age);
        PUT("railgun_partition_paused{%s\"%d\"} %d\n", l, i, p->paused);
    }
    for (int w = 0; w < s->nw; w++) {
        PUT("railgun_worker_busy_seconds_total{worker=\"%d\"} %.17g\n", w,
            s->busy[w]);
        PUT("railgun_worker_ring_fill_ratio{worker=\"%d\"} %.17g\n", w,
            s->fill);
        PUT("railgun_worker_parks_total{worker=\"%d\"} %.17g\n", w, s->parks);
    }
    for (int l = 0; l < s->nl; l++)
        PUT("railgun_lane_events_total{lane=\"%d\"} %.17g\n", l, s->lane[l]);
    PUT("railgun_dispatcher_waits_total{dispatcher=\"0\"} %.17g\n", s->waits);
    PUT("railgun_epoch_transaction_seconds_bucket{le=\"+Inf\"} %.17g\n",
        s->tx_count);
    G("railgun_epoch_transaction_seconds_sum", s->tx_sum);
    G("railgun_epoch_transaction_seconds_count", s->tx_count);
    G("railgun_epoch_rows_sum", s->tx_count * 100);
    G("railgun_epoch_rows_count", s->tx_count);
    G("railgun_epochs_total", s->epochs);
    G("railgun_epochs_pending", s->pending_epochs);
    if (s->hot != NULL)
        PUT("railgun_hot_key_share_ratio{key=\"%s\"} %.17g\n"
            "railgun_hot_key_share_ratio{key=\"7\"} 0.01\n", s->hot,
            s->hot_share);
    G("railgun_flow_limit_events_per_second", s->limit);
    G("railgun_flow_lease_events_per_second", s->lease);
    G("railgun_flow_throttled_seconds_total", s->throttled);
    G("railgun_flow_degraded", s->flow_degraded);
    if (!isnan(s->kafka))
        PUT("railgun_connected{component=\"kafka\"} %.17g\n"
            "railgun_connected{component=\"sink\"} %.17g\n"
            "railgun_connected{component=\"redis\"} %.17g\n"
            "railgun_connection_errors_total{component=\"kafka\"} 0\n",
            s->kafka, s->sink, s->redis);
    G("railgun_producer_fallback_active", s->fallback);
    G("railgun_producer_spooled_events", s->spooled);
    PUT("railgun_build_info{version=\"0.1.0\",compiler=\"gcc\"} 1\n");
    return b;
}

/* A healthy node at scrape i: 4000 events/s over 4 partitions, lag a few
 * hundred, workers 30% busy, quick transactions, everything connected. */
static struct st healthy(int i)
{
    struct st s = {.np = NP, .nw = NW, .nl = 0};
    double t = i;
    s.consumed = s.processed = 100000 + 4000 * t;
    s.retried = 10 + t;       /* 1/s of 4000/s: far under 1% */
    s.delayed = 0;
    s.dlq_retries = s.dlq_bad = 0;
    for (int p = 0; p < NP; p++) {
        s.p[p].hw = 25000 + 1000 * t + 50 * p;
        /* lag wobbles between 100 and 400: never steadily growing */
        s.p[p].committed = s.p[p].hw - 100 - 100 * ((i + p) % 4);
        s.p[p].age = 0.05;
        s.p[p].pending = 20;
    }
    for (int w = 0; w < NW; w++)
        s.busy[w] = 0.3 * t;
    s.fill = 0.1;
    s.waits = 5;
    s.parks = 100 + 10 * t;
    s.tx_count = 10 * t;
    s.tx_sum = 0.01 * s.tx_count;
    s.epochs = s.tx_count;
    s.pending_epochs = 0;
    s.throttled = 0;
    s.limit = 0;
    s.lease = 0;
    s.kafka = s.sink = s.redis = 1;
    s.flow_degraded = 0;
    s.fallback = 0;
    s.spooled = 0;
    return s;
}

typedef void (mutate_fn)(struct st *s, int i);

/* Feeds k scrapes of node n, each healthy(i) changed by fn, at t = i s. */
static void feed(rg_doctor_t *d, int n, int k, mutate_fn *fn)
{
    for (int i = 0; i < k; i++) {
        struct st s = healthy(i);
        if (fn != NULL)
            fn(&s, i);
        char *text = render(&s);
        rg_prom_t *p = parse(text);
        free(text);
        cr_assert_eq(rg_doctor_scrape(d, n, i, p), 0);
    }
}

static rg_doctor_report_t *scenario(int k, mutate_fn *fn)
{
    rg_doctor_t *d = rg_doctor_new(NULL);
    cr_assert_not_null(d);
    int n = rg_doctor_node(d, "http://n1:9464");
    cr_assert_eq(n, 0);
    feed(d, n, k, fn);
    rg_doctor_report_t *r = NULL;
    cr_assert_eq(rg_doctor_run(d, &r), 0);
    rg_doctor_destroy(d);
    return r;
}

static void dump(const rg_doctor_report_t *r)
{
    for (size_t i = 0; i < r->nfindings; i++)
        fprintf(stderr, "  finding %s [%s]: %s | %s\n", r->findings[i].id,
                r->findings[i].stage, r->findings[i].title,
                r->findings[i].evidence);
}

/* Exactly these findings (ids, in any order), nothing else. */
static void expect(const rg_doctor_report_t *r, const char *const *ids,
                   size_t n)
{
    bool ok = r->nfindings == n;
    for (size_t i = 0; i < n && ok; i++)
        ok = rg_doctor_find(r, ids[i], NULL) != NULL;
    if (!ok)
        dump(r);
    cr_assert(ok, "expected %zu findings (%s...), got %zu", n,
              n ? ids[0] : "none", r->nfindings);
}
#define EXPECT(r, ...) do { \
    static const char *const ids_[] = {__VA_ARGS__}; \
    expect((r), ids_, sizeof(ids_) / sizeof(ids_[0])); } while (0)

static double val(const rg_doctor_finding_t *f, const char *name)
{
    for (unsigned i = 0; i < f->nvalues; i++)
        if (!strcmp(f->values[i].name, name))
            return f->values[i].value;
    cr_assert_fail("finding %s has no value %s", f->id, name);
    return NAN;
}

static const rg_doctor_partition_t *part(const rg_doctor_report_t *r, int p)
{
    for (size_t i = 0; i < r->npartitions; i++)
        if (r->partitions[i].partition == p)
            return &r->partitions[i];
    cr_assert_fail("no partition %d", p);
    return NULL;
}

/* ---- healthy ------------------------------------------------------------- */

Test(doctor, healthy_run_reports_nothing)
{
    rg_doctor_report_t *r = scenario(4, NULL);
    if (r->nfindings)
        dump(r);
    cr_assert_eq(r->nfindings, 0);
    cr_assert_eq(r->npartitions, NP);
    for (int p = 0; p < NP; p++)
        cr_assert_eq(part(r, p)->status, RG_LAG_OK, "partition %d: %s", p,
                     rg_lag_status_name(part(r, p)->status));
    cr_assert_eq(r->nnodes, 1);
    cr_assert(r->nodes[0].ok);
    cr_assert_eq(r->nodes[0].scrapes, 4);
    cr_assert_eq(r->window_s, 3);
    cr_assert_eq(r->nodes[0].processed_rate, 4000);
    cr_assert_eq(part(r, 2)->produced_rate, 1000);
    char *json;
    size_t len;
    cr_assert_eq(rg_doctor_report_json(r, &json, &len), 0);
    cr_assert_eq(strlen(json), len);
    cr_assert(strstr(json, "{\"version\":1,\"healthy\":true,") == json, "%s",
              json);
    cr_assert(strstr(json, "\"findings\":[]"));
    cr_assert(strstr(json, "\"status\":\"OK\""));
    free(json);
    rg_doctor_report_free(r);
}

Test(doctor, healthy_group_of_two_and_a_single_scrape)
{
    rg_doctor_t *d = rg_doctor_new(NULL);
    feed(d, rg_doctor_node(d, "a"), 3, NULL);
    feed(d, rg_doctor_node(d, "b"), 3, NULL);
    rg_doctor_member_t m = {.id = "a@127.0.0.1:1", .host = "h",
                            .mode = "leased", .granted = 5000,
                            .consumed_rate = 4000};
    rg_doctor_member(d, &m);
    snprintf(m.id, sizeof(m.id), "b@127.0.0.1:2");
    rg_doctor_member(d, &m);
    rg_doctor_report_t *r;
    cr_assert_eq(rg_doctor_run(d, &r), 0);
    if (r->nfindings)
        dump(r);
    cr_assert_eq(r->nfindings, 0);
    cr_assert_eq(r->npartitions, 2 * NP);
    rg_doctor_report_free(r);
    rg_doctor_destroy(d);
    /* one scrape: no rates, statuses UNKNOWN where lag > 0, no finding */
    r = scenario(1, NULL);
    cr_assert_eq(r->nfindings, 0);
    cr_assert_eq(part(r, 0)->status, RG_LAG_UNKNOWN);
    cr_assert(isnan(r->nodes[0].processed_rate));
    rg_doctor_report_free(r);
}

/* ---- stuck watermark, Burrow statuses ------------------------------------ */

/* partition 2 holds one event at offset 25000 for 40 s and more: its
 * offset stands while the others move */
static void stuck(struct st *s, int i)
{
    s->p[2].committed = 25000;
    s->p[2].age = 40 + i;
    s->p[2].pending = 1 + 1000 * i;
}

Test(doctor, stuck_watermark_names_partition_and_offset)
{
    rg_doctor_report_t *r = scenario(4, stuck);
    EXPECT(r, "stuck_watermark", "lag_stalled", "partition_lag_skew");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "stuck_watermark", NULL);
    cr_assert_eq(f->severity, RG_DOCTOR_CRITICAL);
    cr_assert_str_eq(f->node, "http://n1:9464");
    cr_assert_str_eq(f->topic, "likes");
    cr_assert_eq(f->partition, 2);
    cr_assert_eq(f->offset, 25000);
    cr_assert_str_eq(f->subject, "likes[2]");
    cr_assert(strstr(f->title, "at offset 25000"), "%s", f->title);
    cr_assert(strstr(f->action, "kcat -C -t likes -p 2 -o 25000 -c 1"));
    cr_assert_eq(val(f, "railgun_partition_oldest_pending_age_seconds"), 43);
    cr_assert_eq(part(r, 2)->status, RG_LAG_STALL);
    cr_assert_eq(part(r, 1)->status, RG_LAG_OK);
    f = rg_doctor_find(r, "lag_stalled", NULL);
    cr_assert_eq(f->partition, 2);
    cr_assert_eq(val(f, "railgun_partition_committed_offset"), 25000);
    /* the critical findings come first */
    cr_assert_eq(r->findings[0].severity, RG_DOCTOR_CRITICAL);
    rg_doctor_report_free(r);
}

/* under the threshold: an event pending 29 s makes no finding */
static void almost_stuck(struct st *s, int i)
{
    s->p[2].age = 26 + i;
}

Test(doctor, pending_under_the_threshold_is_no_finding)
{
    rg_doctor_report_t *r = scenario(4, almost_stuck);
    EXPECT(r);
    rg_doctor_report_free(r);
}

/* nothing commits: every offset and the epoch counter stand */
static void stopped(struct st *s, int i)
{
    (void)i;
    struct st s0 = healthy(0);
    for (int p = 0; p < NP; p++)
        s->p[p].committed = s0.p[p].committed;
    s->epochs = s0.epochs;
    s->tx_count = s0.tx_count;
    s->tx_sum = s0.tx_sum + i; /* one transaction hangs */
    s->pending_epochs = 1;
}

Test(doctor, commits_stopped_is_burrow_stop_and_the_sink_bottleneck)
{
    rg_doctor_report_t *r = scenario(4, stopped);
    EXPECT(r, "commits_stopped", "bottleneck");
    for (int p = 0; p < NP; p++)
        cr_assert_eq(part(r, p)->status, RG_LAG_STOP);
    const rg_doctor_finding_t *f = rg_doctor_find(r, "commits_stopped", NULL);
    cr_assert_eq(val(f, "partitions"), NP);
    cr_assert(strstr(f->subject, "likes[0], likes[1], likes[2], likes[3]"),
              "%s", f->subject);
    f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "sink");
    rg_doctor_report_free(r);
}

/* offsets move, but slower than the topic grows: lag grows every scrape */
static void falling_behind(struct st *s, int i)
{
    for (int p = 0; p < NP; p++)
        s->p[p].committed = s->p[p].hw - 2000 - 800 * i;
    s->consumed = s->processed = 100000 + 800 * i; /* slow */
}

Test(doctor, falling_behind_is_warn_and_a_source_bottleneck)
{
    rg_doctor_report_t *r = scenario(4, falling_behind);
    EXPECT(r, "lag_growing", "bottleneck");
    for (int p = 0; p < NP; p++)
        cr_assert_eq(part(r, p)->status, RG_LAG_WARN);
    const rg_doctor_finding_t *f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "source", "stage %s", f->stage);
    cr_assert(strstr(f->title, "fetch-starved"), "%s", f->title);
    cr_assert_eq(val(f, "railgun_partition_lag"), 4 * (2000 + 800 * 3));
    rg_doctor_report_free(r);
}

static void rewound(struct st *s, int i)
{
    if (i == 2)
        s->p[1].committed -= 5000;
}

Test(doctor, an_offset_going_back_is_rewind)
{
    rg_doctor_report_t *r = scenario(4, rewound);
    EXPECT(r, "offset_rewind");
    cr_assert_eq(part(r, 1)->status, RG_LAG_REWIND);
    cr_assert_eq(rg_doctor_find(r, "offset_rewind", NULL)->partition, 1);
    rg_doctor_report_free(r);
}

/* ---- degraded mode ------------------------------------------------------- */

static void no_kafka(struct st *s, int i)
{
    (void)i;
    s->kafka = 0;
}

static void no_sink(struct st *s, int i)
{
    (void)i;
    s->sink = 0;
}

static void no_redis(struct st *s, int i)
{
    (void)i;
    s->redis = 0;
    s->flow_degraded = 1;
    s->lease = 2000;
    s->limit = 5000;
}

static void producer_down(struct st *s, int i)
{
    s->fallback = 1;
    s->spooled = 1000 * i + 5;
}

Test(doctor, degraded_mode_each_cause_named)
{
    rg_doctor_report_t *r = scenario(3, no_kafka);
    EXPECT(r, "kafka_unreachable");
    cr_assert_eq(rg_doctor_find(r, "kafka_unreachable", NULL)->severity,
                 RG_DOCTOR_CRITICAL);
    rg_doctor_report_free(r);
    r = scenario(3, no_sink);
    EXPECT(r, "sink_unreachable");
    rg_doctor_report_free(r);
    r = scenario(3, no_redis);
    EXPECT(r, "redis_unreachable");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "redis_unreachable",
                                                  NULL);
    cr_assert_str_eq(f->subject, "redis");
    cr_assert(strstr(f->evidence, "lease 2000/s"), "%s", f->evidence);
    cr_assert_eq(val(f, "railgun_flow_degraded"), 1);
    rg_doctor_report_free(r);
    r = scenario(3, producer_down);
    EXPECT(r, "producer_fallback");
    cr_assert_eq(val(rg_doctor_find(r, "producer_fallback", NULL),
                     "railgun_producer_spooled_events"), 2005);
    rg_doctor_report_free(r);
    /* degraded states need no rate: one scrape is enough */
    r = scenario(1, no_kafka);
    EXPECT(r, "kafka_unreachable");
    rg_doctor_report_free(r);
}

Test(doctor, node_unreachable_and_its_partitions_stop)
{
    rg_doctor_t *d = rg_doctor_new(NULL);
    int n = rg_doctor_node(d, "a");
    feed(d, n, 2, NULL);
    cr_assert_eq(rg_doctor_scrape_failed(d, n, 2.5, "connect: Connection "
                                         "refused"), 0);
    /* time cannot go back */
    cr_assert_eq(rg_doctor_scrape_failed(d, n, 2, "x"), RG_EINVAL);
    cr_assert_eq(rg_doctor_scrape(d, 7, 3, NULL), RG_EINVAL);
    rg_doctor_report_t *r;
    cr_assert_eq(rg_doctor_run(d, &r), 0);
    EXPECT(r, "node_unreachable", "commits_stopped");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "node_unreachable", "a");
    cr_assert(strstr(f->evidence, "1 of 3 scrapes failed; the last: connect: "
                     "Connection refused; it last answered 1.5 s before"),
              "%s", f->evidence);
    cr_assert_not(r->nodes[0].ok);
    cr_assert_eq(r->nodes[0].failures, 1);
    cr_assert_str_eq(r->nodes[0].error, "connect: Connection refused");
    rg_doctor_report_free(r);
    rg_doctor_destroy(d);
    /* never answered */
    d = rg_doctor_new(NULL);
    rg_doctor_scrape_failed(d, rg_doctor_node(d, "b"), 0, "timed out");
    cr_assert_eq(rg_doctor_run(d, &r), 0);
    EXPECT(r, "node_unreachable");
    rg_doctor_report_free(r);
    rg_doctor_destroy(d);
}

/* paused intake: nothing consumed, every partition paused, lag held */
static void paused(struct st *s, int i)
{
    (void)i;
    struct st s0 = healthy(0);
    s->consumed = s->processed = s0.consumed;
    s->retried = s0.retried;
    for (int p = 0; p < NP; p++) {
        s->p[p].paused = 1;
        s->p[p].committed = s0.p[p].committed;
        s->p[p].hw = s0.p[p].hw + 5000;
    }
    s->busy[0] = s->busy[1] = s->busy[2] = s->busy[3] = 0;
    s->fill = 1;
    s->pending_epochs = 3;
    s->tx_count = s0.tx_count;
    s->epochs = s0.epochs;
    s->tx_sum = s0.tx_sum + i;
}

Test(doctor, node_not_consuming_with_paused_intake)
{
    rg_doctor_report_t *r = scenario(4, paused);
    EXPECT(r, "node_not_consuming", "commits_stopped", "bottleneck");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "node_not_consuming",
                                                  NULL);
    cr_assert_eq(val(f, "paused_partitions"), NP);
    cr_assert(strstr(f->action, "backpressure"), "%s", f->action);
    cr_assert_str_eq(rg_doctor_find(r, "bottleneck", NULL)->stage, "sink");
    cr_assert(part(r, 0)->paused);
    rg_doctor_report_free(r);
}

/* ---- retries and the DLQ ------------------------------------------------- */

/* one key fails forever: retries grow every scrape, events move on to the
 * delayed queue and to the DLQ after their attempts */
static void failing_key(struct st *s, int i)
{
    s->retried = 10 + 50 * i;
    s->delayed = 3 * i;
    s->dlq_retries = i;
    s->hot = "42";
    s->hot_share = 0.02;
}

Test(doctor, runaway_retries_and_dead_letters)
{
    rg_doctor_report_t *r = scenario(4, failing_key);
    EXPECT(r, "runaway_retries", "dead_letters");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "runaway_retries", NULL);
    cr_assert_eq(f->severity, RG_DOCTOR_CRITICAL);
    cr_assert_eq(val(f, "railgun_events_retried_total_per_second"), 50);
    cr_assert_eq(val(f, "railgun_events_delayed_total_per_second"), 3);
    cr_assert(strstr(f->evidence, "retries 1/s"), "%s", f->evidence);
    f = rg_doctor_find(r, "dead_letters", NULL);
    cr_assert_eq(val(f, "railgun_events_dead_lettered_total_per_second"), 1);
    cr_assert(strstr(f->evidence, "retries 1/s"), "%s", f->evidence);
    cr_assert_null(strstr(f->evidence, "undecodable"), "%s", f->evidence);
    rg_doctor_report_free(r);
}

/* 5% retries that succeed in place: a storm, not runaway */
static void storm(struct st *s, int i)
{
    s->retried = 10 + 200 * i;
}

/* 0.5% retries: under the 1% threshold */
static void few_retries(struct st *s, int i)
{
    s->retried = 10 + 20 * i;
}

Test(doctor, retry_storm_over_the_ratio_only)
{
    rg_doctor_report_t *r = scenario(4, storm);
    EXPECT(r, "retry_storm");
    cr_assert(strstr(rg_doctor_find(r, "retry_storm", NULL)->title, "5%"));
    rg_doctor_report_free(r);
    r = scenario(4, few_retries);
    EXPECT(r);
    rg_doctor_report_free(r);
}

/* ---- bottleneck by stage -------------------------------------------------- */

/* the node does not keep up: 3000/s of 4000/s, lag grows 250/s per
 * partition */
static void backlog(struct st *s, int i)
{
    for (int p = 0; p < NP; p++)
        s->p[p].committed = s->p[p].hw - 5000 - 250 * i;
    s->consumed = s->processed = 100000 + 3000 * i;
}

static void throttled(struct st *s, int i)
{
    backlog(s, i);
    s->throttled = 0.8 * i;
    s->limit = 3000;
    s->lease = 3000;
}

static void slow_sink(struct st *s, int i)
{
    backlog(s, i);
    s->tx_count = 2 * i;
    s->tx_sum = 0.95 * i;
    s->pending_epochs = 2;
    s->fill = 1;
    s->waits = 5 + 1000 * i;
}

static void hot_worker(struct st *s, int i)
{
    backlog(s, i);
    s->busy[1] = 0.97 * i;
    s->hot = "42";
    s->hot_share = 0.55;
    s->fill = 1;
    s->waits = 5 + 500 * i;
}

static void hot_lane(struct st *s, int i)
{
    hot_worker(s, i);
    s->nl = 2;
    s->lane[0] = 2000 * i;
    s->lane[1] = 10 * i;
}

static void all_busy(struct st *s, int i)
{
    backlog(s, i);
    for (int w = 0; w < NW; w++)
        s->busy[w] = 0.95 * i;
}

static void one_busy(struct st *s, int i)
{
    backlog(s, i);
    s->busy[3] = 0.93 * i;
}

static void dispatcher_waits(struct st *s, int i)
{
    backlog(s, i);
    s->fill = 0.97;
    s->waits = 5 + 2000 * i;
}

Test(doctor, bottleneck_stage_flow)
{
    rg_doctor_report_t *r = scenario(4, throttled);
    EXPECT(r, "bottleneck", "lag_growing");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "flow");
    cr_assert(strstr(f->title, "3000/s"), "%s", f->title);
    cr_assert(fabs(val(f, "railgun_flow_throttled_seconds_total_ratio") - 0.8) < 1e-9);
    rg_doctor_report_free(r);
}

Test(doctor, bottleneck_stage_sink)
{
    rg_doctor_report_t *r = scenario(4, slow_sink);
    EXPECT(r, "bottleneck", "lag_growing");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "sink");
    cr_assert(fabs(val(f, "sink_busy_ratio") - 0.95) < 1e-9);
    cr_assert(fabs(val(f, "epoch_transaction_mean_seconds") - 0.475) < 1e-9);
    cr_assert_eq(val(f, "railgun_epochs_pending"), 2);
    rg_doctor_report_free(r);
}

Test(doctor, bottleneck_stage_worker_with_its_hot_key)
{
    rg_doctor_report_t *r = scenario(4, hot_worker);
    EXPECT(r, "bottleneck", "lag_growing");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "worker");
    cr_assert_str_eq(f->subject, "worker 1");
    cr_assert(strstr(f->title, "42 takes 55% of the events"), "%s", f->title);
    cr_assert(fabs(val(f, "railgun_worker_busy_seconds_total_ratio") - 0.97) < 1e-9);
    /* named by the bottleneck, so no separate worker_imbalance */
    cr_assert_null(rg_doctor_find(r, "worker_imbalance", NULL));
    rg_doctor_report_free(r);
    r = scenario(4, hot_lane);
    f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "lane");
    cr_assert(strstr(f->evidence, "lane 0 takes 2000/s"), "%s", f->evidence);
    rg_doctor_report_free(r);
}

Test(doctor, bottleneck_stage_worker_all_busy_or_one)
{
    rg_doctor_report_t *r = scenario(4, all_busy);
    const rg_doctor_finding_t *f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_not_null(f);
    cr_assert_str_eq(f->stage, "worker");
    cr_assert(strstr(f->title, "every worker is busy"), "%s", f->title);
    rg_doctor_report_free(r);
    r = scenario(4, one_busy);
    f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "worker");
    cr_assert_str_eq(f->subject, "worker 3");
    cr_assert(strstr(f->title, "while the others are at 0%") ||
              strstr(f->title, "while the others are at 30%"), "%s",
              f->title);
    rg_doctor_report_free(r);
}

Test(doctor, bottleneck_stage_dispatcher_and_source)
{
    rg_doctor_report_t *r = scenario(4, dispatcher_waits);
    EXPECT(r, "bottleneck", "lag_growing");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "dispatcher");
    cr_assert_eq(val(f, "railgun_dispatcher_waits_total_per_second"), 2000);
    rg_doctor_report_free(r);
    r = scenario(4, backlog);
    f = rg_doctor_find(r, "bottleneck", NULL);
    cr_assert_str_eq(f->stage, "source");
    rg_doctor_report_free(r);
}

/* a backlog that drains is no bottleneck */
static void draining(struct st *s, int i)
{
    for (int p = 0; p < NP; p++)
        s->p[p].committed = s->p[p].hw - 50000 + 3000 * i;
    s->consumed = s->processed = 100000 + 16000 * i;
}

Test(doctor, a_draining_backlog_is_healthy)
{
    rg_doctor_report_t *r = scenario(4, draining);
    EXPECT(r);
    rg_doctor_report_free(r);
}

/* ---- imbalance ------------------------------------------------------------ */

static void one_worker_skewed(struct st *s, int i)
{
    s->busy[0] = 0.7 * i;
    s->busy[1] = s->busy[2] = s->busy[3] = 0.1 * i;
    s->hot = "9";
    s->hot_share = 0.45;
}

Test(doctor, worker_imbalance_without_a_backlog)
{
    rg_doctor_report_t *r = scenario(4, one_worker_skewed);
    EXPECT(r, "worker_imbalance");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "worker_imbalance", NULL);
    cr_assert_str_eq(f->subject, "worker 0");
    cr_assert(strstr(f->action, "One hot key (9, 45% of the events)"), "%s",
              f->action);
    rg_doctor_report_free(r);
}

/* partition 0 receives 8000/s, the others 1000/s; its lag is 60k */
static void skewed_topic(struct st *s, int i)
{
    s->p[0].hw = 25000 + 8000 * i;
    s->p[0].committed = s->p[0].hw - 60000 + 100 * (i % 2);
}

Test(doctor, skewed_topic_is_rate_and_lag_skew)
{
    rg_doctor_report_t *r = scenario(4, skewed_topic);
    EXPECT(r, "partition_rate_skew", "partition_lag_skew");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "partition_rate_skew",
                                                  NULL);
    cr_assert_eq(f->partition, 0);
    cr_assert_eq(val(f, "railgun_partition_high_watermark_per_second"), 8000);
    cr_assert_eq(val(f, "median_per_second"), 1000);
    f = rg_doctor_find(r, "partition_lag_skew", NULL);
    cr_assert_eq(f->partition, 0);
    cr_assert_str_eq(f->node, "http://n1:9464");
    cr_assert_geq(val(f, "railgun_partition_lag"), 59900);
    rg_doctor_report_free(r);
}

/* 2.5x the median: under the 4x threshold */
static void mildly_skewed(struct st *s, int i)
{
    s->p[0].hw = 25000 + 2500 * i;
    s->p[0].committed = s->p[0].hw - 300;
}

Test(doctor, mild_skew_is_no_finding)
{
    rg_doctor_report_t *r = scenario(4, mildly_skewed);
    EXPECT(r);
    rg_doctor_report_free(r);
}

static void slow_node(struct st *s, int i)
{
    s->consumed = s->processed = 100000 + 400 * i;
}

Test(doctor, node_imbalance_across_the_group)
{
    rg_doctor_t *d = rg_doctor_new(NULL);
    feed(d, rg_doctor_node(d, "fast"), 3, NULL);
    feed(d, rg_doctor_node(d, "slow1"), 3, slow_node);
    feed(d, rg_doctor_node(d, "slow2"), 3, slow_node);
    rg_doctor_report_t *r;
    cr_assert_eq(rg_doctor_run(d, &r), 0);
    EXPECT(r, "node_imbalance");
    const rg_doctor_finding_t *f = rg_doctor_find(r, "node_imbalance", NULL);
    cr_assert_str_eq(f->node, "");
    cr_assert_str_eq(f->subject, "fast");
    cr_assert_eq(val(f, "railgun_events_processed_total_per_second"), 4000);
    cr_assert_eq(val(f, "others_per_second"), 400);
    rg_doctor_report_free(r);
    rg_doctor_destroy(d);
}

/* ---- the registry --------------------------------------------------------- */

Test(doctor, registry_findings)
{
    rg_doctor_t *d = rg_doctor_new(NULL);
    rg_doctor_registry_failed(d, "redis 127.0.0.1:1: Connection refused");
    rg_doctor_report_t *r;
    cr_assert_eq(rg_doctor_run(d, &r), 0);
    EXPECT(r, "registry_unreachable");
    cr_assert(strstr(r->findings[0].evidence, "Connection refused"));
    rg_doctor_report_free(r);
    rg_doctor_destroy(d);

    d = rg_doctor_new(NULL);
    rg_doctor_member_t a = {.id = "a", .host = "h1", .mode = "leased",
                            .granted = 3000, .consumed_rate = 2500};
    rg_doctor_member_t b = {.id = "b", .host = "h2", .mode = "fallback",
                            .granted = 0, .consumed_rate = 0};
    rg_doctor_member(d, &a);
    rg_doctor_member(d, &b);
    cr_assert_eq(rg_doctor_run(d, &r), 0);
    EXPECT(r, "member_degraded", "node_not_consuming");
    cr_assert_str_eq(rg_doctor_find(r, "member_degraded", NULL)->node, "b");
    cr_assert_str_eq(rg_doctor_find(r, "node_not_consuming", NULL)->node, "b");
    rg_doctor_report_free(r);
    rg_doctor_destroy(d);
}

/* ---- reports --------------------------------------------------------------- */

Test(doctor, json_and_text_reports)
{
    rg_doctor_report_t *r = scenario(4, stuck);
    char *json;
    size_t len;
    cr_assert_eq(rg_doctor_report_json(r, &json, &len), 0);
    cr_assert(strstr(json, "\"healthy\":false,\"window_seconds\":3,"
                     "\"critical\":2,\"warnings\":1,"), "%s", json);
    cr_assert(strstr(json, "{\"id\":\"stuck_watermark\",\"severity\":"
                     "\"critical\",\"node\":\"http://n1:9464\",\"subject\":"
                     "\"likes[2]\",\"stage\":null,\"topic\":\"likes\","
                     "\"partition\":2,\"offset\":25000,"), "%s", json);
    cr_assert(strstr(json, "\"values\":{\"railgun_partition_oldest_pending_"
                     "age_seconds\":43,"), "%s", json);
    cr_assert(strstr(json, "\"partition\":2,\"status\":\"STALL\""), "%s",
              json);
    cr_assert_eq(json[len - 1], '\n');
    free(json);
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    rg_doctor_report_text(r, f);
    fclose(f);
    cr_assert(strstr(text, "railgun doctor: 3 findings: 1 node, 4 partitions,"
                     " 4 scrapes over 3.0 s\n"), "%s", text);
    cr_assert(strstr(text, "\nCRITICAL stuck_watermark  http://n1:9464\n"),
              "%s", text);
    cr_assert(strstr(text, "lag status: OK 3 STALL 1\n"), "%s", text);
    free(text);
    rg_doctor_report_free(r);
}

/* ---- doctor inside a node (live.h) ---------------------------------------- */

#include <pthread.h>
#include <time.h>
#include "live.h"
#include "railgun/metrics.h"

static rg_metric_family_t *live_age;

static void live_collect(rg_metrics_scrape_t *s, void *opaque)
{
    (void)opaque;
    const char *v[] = {"likes", "5"};
    rg_metrics_collect_f64(s, live_age, v, 45.5);
}

struct live_writer {
    rg_counter_t *c;
    _Atomic int stop;
};

static void *live_write(void *arg)
{
    struct live_writer *w = arg;
    /* relaxed: a stop flag; the join orders the rest */
    while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
        rg_counter_add_sw(w->c, 100);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *live_read(void *arg)
{
    for (int i = 0; i < 20; i++) {
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(rg_doctor_live_json(arg, &json, &len), 0);
        cr_assert(strncmp(json, "{\"version\":1,", 13) == 0);
        cr_assert_eq(strlen(json), len);
        free(json);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

Test(doctor_live, samples_the_registry_while_it_is_written_and_read)
{
    char err[256];
    rg_metrics_t *m = rg_metrics_new(NULL);
    cr_assert_not_null(m);
    rg_metric_family_t *ev = rg_metrics_family_new(m, &(rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "events_processed",
        .help = "Events."}, err, sizeof(err));
    const char *tp[] = {"topic", "partition"};
    live_age = rg_metrics_family_new(m, &(rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "partition_oldest_pending_age",
        .unit = "seconds", .help = "Age.", .labels = tp, .nlabels = 2,
        .collected = true}, err, sizeof(err));
    cr_assert(ev != NULL && live_age != NULL, "%s", err);
    cr_assert_eq(rg_metrics_collector_add(m, live_collect, NULL), 0);
    cr_assert_null(rg_doctor_live_new(m, "x", NULL, 10, 100, err,
                                      sizeof(err)));
    cr_assert(strstr(err, "out of range"), "%s", err);
    struct live_writer w = {.c = rg_metrics_counter(ev, NULL, 0)};
    pthread_t wt, r1, r2;
    cr_assert_eq(pthread_create(&wt, NULL, live_write, &w), 0);
    rg_doctor_live_t *l = rg_doctor_live_new(m, "self", NULL, 50, 300, err,
                                             sizeof(err));
    cr_assert_not_null(l, "%s", err);
    cr_assert_eq(pthread_create(&r1, NULL, live_read, l), 0);
    cr_assert_eq(pthread_create(&r2, NULL, live_read, l), 0);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    char *json;
    size_t len;
    cr_assert_eq(rg_doctor_live_json(l, &json, &len), 0);
    /* the window keeps the last 300 ms (4 to 8 samples 50 ms apart) */
    cr_assert(strstr(json, "\"nodes\":[{\"node\":\"self\",\"ok\":true,"
                     "\"scrapes\":"), "%s", json);
    int scrapes = atoi(strstr(json, "\"scrapes\":") + 10);
    cr_assert(scrapes >= 3 && scrapes <= 8, "%d scrapes", scrapes);
    cr_assert(strstr(json, "{\"id\":\"stuck_watermark\",\"severity\":"
                     "\"critical\",\"node\":\"self\",\"subject\":\"likes[5]\""),
              "%s", json);
    cr_assert_null(strstr(json, "\"processed_per_second\":null"), "%s", json);
    free(json);
    rg_doctor_live_destroy(l);
    atomic_store_explicit(&w.stop, 1, memory_order_relaxed);
    pthread_join(wt, NULL);
    rg_metrics_destroy(m);
}
