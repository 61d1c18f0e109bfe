/*
 * test_metrics.c - the metrics registry: the text exposition and the JSON
 * are exactly what Prometheus 0.0.4 and the documented object say
 * (HELP/TYPE lines, _total, cumulative _bucket ending in +Inf, _sum,
 * _count, escaping of help and label values, invalid UTF-8, shortest
 * round-trip numbers); histogram bucket edges (v == bound, NaN, +Inf);
 * bad descriptions are refused with a reason; label caps hold for owned
 * series (overflow series, exact totals) and collected samples (left
 * out, repeats refused), counted as dropped; a caller buffer too small
 * says how much is needed; and, with writer threads updating while a
 * reader renders, every render's counters only grow and the final
 * totals are exact, and concurrent series creation honours the cap.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/metrics.h"

/* the registry's own family, first in every render of prefix "t" */
#define DROPPED_HEAD                                                        \
    "# HELP t_metrics_series_dropped_total Label sets refused by a "        \
    "family's series cap: owned ones when first used (their updates go "    \
    "to the _overflow series), collected ones at every render that emits " \
    "them.\n"                                                               \
    "# TYPE t_metrics_series_dropped_total counter\n"

static char *render(rg_metrics_t *m, rg_metrics_format_t fmt)
{
    char *out = NULL;
    size_t len = 0;
    int rc = rg_metrics_render(m, fmt, &out, &len);
    cr_assert_eq(rc, 0, "render: %s", rg_strerror(rc));
    cr_assert_eq(strlen(out), len);
    return out;
}

static rg_metric_family_t *family(rg_metrics_t *m, rg_metric_desc_t d)
{
    char err[256] = "";
    rg_metric_family_t *f = rg_metrics_family_new(m, &d, err, sizeof(err));
    cr_assert_not_null(f, "family %s: %s", d.name, err);
    return f;
}

/* The value on the line that starts with `series` + ' ', or NAN. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return NAN;
}

static unsigned count_lines_starting(const char *text, const char *prefix)
{
    unsigned k = 0;
    size_t n = strlen(prefix);
    for (const char *p = text; *p;) {
        if (strncmp(p, prefix, n) == 0)
            k++;
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return k;
}

/* ---- rendering exactness --------------------------------------------- */

static rg_metric_family_t *c_events, *c_lag, *c_rows;

static void collect_all(rg_metrics_scrape_t *s, void *opaque)
{
    (void)opaque;
    const char *p0[] = {"0"}, *p1[] = {"1"};
    cr_assert_eq(rg_metrics_collect_u64(s, c_events, NULL,
                                        18446744073709551615ull), 0);
    cr_assert_eq(rg_metrics_collect_i64(s, c_lag, p0, -3), 0);
    cr_assert_eq(rg_metrics_collect_f64(s, c_lag, p1, 0.1 + 0.2), 0);
    const uint64_t counts[] = {1, 0, 2}; /* le=1, le=2, +Inf */
    cr_assert_eq(rg_metrics_collect_histogram(s, c_rows, NULL, counts, 3,
                                              12.5), 0);
}

Test(metrics, text_exposition_is_exact_for_every_kind)
{
    rg_metrics_t *m = rg_metrics_new("t");
    cr_assert_not_null(m);
    const char *wl[] = {"worker"};
    rg_metric_family_t *ev = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "events_processed",
        .help = "Events the processors finished.", .labels = wl,
        .nlabels = 1, .max_series = 8});
    rg_metric_family_t *inflight = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "inflight",
        .help = "Events in flight."});
    const double b[] = {0.001, 0.01, 0.1};
    rg_metric_family_t *tx = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "epoch_transaction",
        .unit = "seconds", .help = "Sink transaction time.",
        .buckets = b, .nbuckets = 3});
    c_events = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "events_consumed",
        .help = "Consumed.", .collected = true});
    const char *pl[] = {"partition"};
    c_lag = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "partition_lag", .help = "Lag.",
        .labels = pl, .nlabels = 1, .collected = true});
    const double rb[] = {1, 2};
    c_rows = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "epoch_rows", .help = "Rows.",
        .buckets = rb, .nbuckets = 2, .collected = true});
    cr_assert_eq(rg_metrics_collector_add(m, collect_all, NULL), 0);

    const char *w0[] = {"0"}, *w1[] = {"1"};
    rg_counter_add_sw(rg_metrics_counter(ev, w1, 0), 7);
    rg_counter_add_sw(rg_metrics_counter(ev, w0, 0), 5);
    rg_counter_add_mw(rg_metrics_counter(ev, w0, 0), 1);
    rg_gauge_set(rg_metrics_gauge(inflight, NULL, 0), 2.5);
    rg_histogram_t *h = rg_metrics_histogram(tx, NULL, 0);
    rg_histogram_observe_sw(h, 0.001);  /* on a bound: le="0.001" */
    rg_histogram_observe_sw(h, 0.05);
    rg_histogram_observe_ns_sw(h, 2000000000); /* 2 s: +Inf */

    char *text = render(m, RG_METRICS_TEXT);
    const char *want =
        DROPPED_HEAD
        "t_metrics_series_dropped_total 0\n"
        "# HELP t_events_processed_total Events the processors finished.\n"
        "# TYPE t_events_processed_total counter\n"
        "t_events_processed_total{worker=\"1\"} 7\n"
        "t_events_processed_total{worker=\"0\"} 6\n"
        "# HELP t_inflight Events in flight.\n"
        "# TYPE t_inflight gauge\n"
        "t_inflight 2.5\n"
        "# HELP t_epoch_transaction_seconds Sink transaction time.\n"
        "# TYPE t_epoch_transaction_seconds histogram\n"
        "t_epoch_transaction_seconds_bucket{le=\"0.001\"} 1\n"
        "t_epoch_transaction_seconds_bucket{le=\"0.01\"} 1\n"
        "t_epoch_transaction_seconds_bucket{le=\"0.1\"} 2\n"
        "t_epoch_transaction_seconds_bucket{le=\"+Inf\"} 3\n"
        "t_epoch_transaction_seconds_sum 2.051\n"
        "t_epoch_transaction_seconds_count 3\n"
        "# HELP t_events_consumed_total Consumed.\n"
        "# TYPE t_events_consumed_total counter\n"
        "t_events_consumed_total 18446744073709551615\n"
        "# HELP t_partition_lag Lag.\n"
        "# TYPE t_partition_lag gauge\n"
        "t_partition_lag{partition=\"0\"} -3\n"
        "t_partition_lag{partition=\"1\"} 0.30000000000000004\n"
        "# HELP t_epoch_rows Rows.\n"
        "# TYPE t_epoch_rows histogram\n"
        "t_epoch_rows_bucket{le=\"1\"} 1\n"
        "t_epoch_rows_bucket{le=\"2\"} 1\n"
        "t_epoch_rows_bucket{le=\"+Inf\"} 3\n"
        "t_epoch_rows_sum 12.5\n"
        "t_epoch_rows_count 3\n";
    cr_assert_str_eq(text, want, "got:\n%s", text);
    free(text);

    char *json = render(m, RG_METRICS_JSON);
    const char *want_json =
        "{\"t_metrics_series_dropped_total\":{\"type\":\"counter\",\"help\":"
        "\"Label sets refused by a family's series cap: owned ones when "
        "first used (their updates go to the _overflow series), collected "
        "ones at every render that emits them.\",\"unit\":\"\",\"labels\":[],"
        "\"series\":[{\"labels\":{},\"value\":0}]},"
        "\"t_events_processed_total\":{\"type\":\"counter\",\"help\":"
        "\"Events the processors finished.\",\"unit\":\"\",\"labels\":"
        "[\"worker\"],\"series\":[{\"labels\":{\"worker\":\"1\"},\"value\":7},"
        "{\"labels\":{\"worker\":\"0\"},\"value\":6}]},"
        "\"t_inflight\":{\"type\":\"gauge\",\"help\":\"Events in flight.\","
        "\"unit\":\"\",\"labels\":[],\"series\":[{\"labels\":{},\"value\":2.5}]},"
        "\"t_epoch_transaction_seconds\":{\"type\":\"histogram\",\"help\":"
        "\"Sink transaction time.\",\"unit\":\"seconds\",\"labels\":[],"
        "\"buckets\":[0.001,0.01,0.1],\"series\":[{\"labels\":{},\"counts\":"
        "[1,1,2,3],\"sum\":2.051,\"count\":3}]},"
        "\"t_events_consumed_total\":{\"type\":\"counter\",\"help\":"
        "\"Consumed.\",\"unit\":\"\",\"labels\":[],\"series\":[{\"labels\":{},"
        "\"value\":18446744073709551615}]},"
        "\"t_partition_lag\":{\"type\":\"gauge\",\"help\":\"Lag.\",\"unit\":"
        "\"\",\"labels\":[\"partition\"],\"series\":[{\"labels\":"
        "{\"partition\":\"0\"},\"value\":-3},{\"labels\":{\"partition\":"
        "\"1\"},\"value\":0.30000000000000004}]},"
        "\"t_epoch_rows\":{\"type\":\"histogram\",\"help\":\"Rows.\",\"unit\":"
        "\"\",\"labels\":[],\"buckets\":[1,2],\"series\":[{\"labels\":{},"
        "\"counts\":[1,1,3],\"sum\":12.5,\"count\":3}]}}\n";
    cr_assert_str_eq(json, want_json, "got:\n%s", json);
    free(json);
    rg_metrics_destroy(m);
}

Test(metrics, help_and_label_values_are_escaped_and_kept_valid_utf8)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const char *ll[] = {"key"};
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "hot_key",
        .help = "Back\\slash and\nnewline \"quoted\".", .labels = ll,
        .nlabels = 1});
    const char *v1[] = {"a\\b\"c\nd"};
    const char *v2[] = {"bad\xff" "byte \xc3\xa9"}; /* 0xff invalid, é ok */
    const char *v3[] = {"tab\there\x01"};
    rg_gauge_set(rg_metrics_gauge(f, v1, 0), 1);
    rg_gauge_set(rg_metrics_gauge(f, v2, 0), 2);
    rg_gauge_set(rg_metrics_gauge(f, v3, 0), 3);
    char *text = render(m, RG_METRICS_TEXT);
    const char *want =
        "# HELP t_hot_key Back\\\\slash and\\nnewline \"quoted\".\n"
        "# TYPE t_hot_key gauge\n"
        "t_hot_key{key=\"a\\\\b\\\"c\\nd\"} 1\n"
        "t_hot_key{key=\"bad\xef\xbf\xbd" "byte \xc3\xa9\"} 2\n"
        "t_hot_key{key=\"tab\there\x01\"} 3\n";
    cr_assert_not_null(strstr(text, want), "got:\n%s", text);
    free(text);
    char *json = render(m, RG_METRICS_JSON);
    cr_assert_not_null(strstr(json,
        "\"help\":\"Back\\\\slash and\\nnewline \\\"quoted\\\".\""), "%s",
        json);
    cr_assert_not_null(strstr(json, "{\"key\":\"a\\\\b\\\"c\\nd\"}"), "%s", json);
    cr_assert_not_null(strstr(json, "{\"key\":\"tab\\there\\u0001\"}"), "%s",
                       json);
    free(json);
    rg_metrics_destroy(m);
}

Test(metrics, long_label_values_are_cut_at_a_character_boundary)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const char *ll[] = {"key"};
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "k", .help = "K.", .labels = ll,
        .nlabels = 1});
    /* 127 ASCII bytes then a 2-byte character: it cannot fit whole */
    char v[300];
    memset(v, 'x', 127);
    strcpy(v + 127, "\xc3\xa9yyyy");
    const char *vals[] = {v};
    rg_counter_add_sw(rg_metrics_counter(f, vals, 0), 1);
    /* the same first 128 bytes: the same (cut) series */
    v[129] = 'z';
    rg_counter_add_sw(rg_metrics_counter(f, vals, 0), 1);
    char *text = render(m, RG_METRICS_TEXT);
    char want[200];
    snprintf(want, sizeof(want), "t_k_total{key=\"%.127s\"} 2\n", v);
    cr_assert_not_null(strstr(text, want), "got:\n%s", text);
    free(text);
    rg_metrics_destroy(m);
}

Test(metrics, histogram_bucket_edges_nan_and_infinity)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const double b[] = {1, 2, 4};
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "x", .help = "X.", .buckets = b,
        .nbuckets = 3});
    rg_histogram_t *h = rg_metrics_histogram(f, NULL, 0);
    const double obs[] = {-5, 0.5, 1, 1.0000001, 2, 4, 4.5, INFINITY};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        rg_histogram_observe_sw(h, obs[i]);
    char *text = render(m, RG_METRICS_TEXT);
    cr_assert_eq(value_of(text, "t_x_bucket{le=\"1\"}"), 3);  /* -5 .5 1 */
    cr_assert_eq(value_of(text, "t_x_bucket{le=\"2\"}"), 5);
    cr_assert_eq(value_of(text, "t_x_bucket{le=\"4\"}"), 6);
    cr_assert_eq(value_of(text, "t_x_bucket{le=\"+Inf\"}"), 8);
    cr_assert_eq(value_of(text, "t_x_count"), 8);
    cr_assert_not_null(strstr(text, "t_x_sum +Inf\n"), "%s", text);
    free(text);
    rg_histogram_observe_mw(h, NAN);
    text = render(m, RG_METRICS_TEXT);
    cr_assert_eq(value_of(text, "t_x_bucket{le=\"4\"}"), 6);
    cr_assert_eq(value_of(text, "t_x_bucket{le=\"+Inf\"}"), 9);
    cr_assert_not_null(strstr(text, "t_x_sum NaN\n"), "%s", text);
    free(text);
    char *json = render(m, RG_METRICS_JSON);
    cr_assert_not_null(strstr(json, "\"counts\":[3,5,6,9],\"sum\":\"NaN\","
                                    "\"count\":9"), "%s", json);
    free(json);
    rg_metrics_destroy(m);
}

Test(metrics, default_and_exponential_buckets)
{
    rg_metrics_t *m = rg_metrics_new("t");
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "d", .unit = "seconds",
        .help = "D."});
    rg_histogram_observe_ns_sw(rg_metrics_histogram(f, NULL, 0), 3000);
    char *text = render(m, RG_METRICS_TEXT);
    /* 1, 2.5, 5 per decade from 10 us to 10 s: 19 bounds and +Inf */
    cr_assert_eq(count_lines_starting(text, "t_d_seconds_bucket{"), 20);
    cr_assert_eq(value_of(text, "t_d_seconds_bucket{le=\"1e-05\"}"), 1);
    cr_assert_eq(value_of(text, "t_d_seconds_bucket{le=\"0.00025\"}"), 1);
    cr_assert_eq(value_of(text, "t_d_seconds_bucket{le=\"10\"}"), 1);
    cr_assert_eq(value_of(text, "t_d_seconds_sum"), 3e-6);
    free(text);

    double e[8];
    cr_assert_eq(rg_metrics_buckets_exp(0.001, 2, 8, e), 0);
    cr_assert_eq(e[0], 0.001);
    cr_assert_eq(e[7], 0.128);
    cr_assert_eq(rg_metrics_buckets_exp(0, 2, 8, e), RG_EINVAL);
    cr_assert_eq(rg_metrics_buckets_exp(1, 1, 8, e), RG_EINVAL);
    cr_assert_eq(rg_metrics_buckets_exp(1, 2, 0, e), RG_EINVAL);
    cr_assert_eq(rg_metrics_buckets_exp(1, 2, RG_METRICS_BUCKETS_MAX + 1, e),
                 RG_EINVAL);
    rg_metrics_destroy(m);
}

/* The bucket counts of family `name` in a render, in order. */
static unsigned buckets_of(const char *text, const char *name, double *out)
{
    unsigned k = 0;
    char want[64];
    snprintf(want, sizeof(want), "%s_bucket{", name);
    for (const char *p = strstr(text, want); p != NULL;
         p = strstr(p + 1, want))
        out[k++] = strtod(strchr(p, '}') + 2, NULL);
    return k;
}

Test(metrics, ns_observations_land_where_seconds_would)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const double odd[] = {-1, 0, 1e-10, 2e-10, 3.3e-9, 0.001, 0.0010000001,
                          7, 1e6};
    struct { const double *b; unsigned n; } sets[] = {{NULL, 0}, {odd, 9}};
    for (unsigned k = 0; k < 2; k++) {
        char a_name[16], b_name[16];
        snprintf(a_name, sizeof(a_name), "sec%u", k);
        snprintf(b_name, sizeof(b_name), "ns%u", k);
        rg_metric_family_t *fa = family(m, (rg_metric_desc_t){
            .kind = RG_METRIC_HISTOGRAM, .name = a_name, .help = "A.",
            .buckets = sets[k].b, .nbuckets = sets[k].n});
        rg_metric_family_t *fb = family(m, (rg_metric_desc_t){
            .kind = RG_METRIC_HISTOGRAM, .name = b_name, .help = "B.",
            .buckets = sets[k].b, .nbuckets = sets[k].n, .writers = 2});
        rg_histogram_t *ha = rg_metrics_histogram(fa, NULL, 0);
        rg_histogram_t *hb = rg_metrics_histogram(fb, NULL, 0);
        rg_histogram_t *hb2 = rg_metrics_histogram(fb, NULL, 1);
        uint64_t x = 88172645463325252ull;
        for (unsigned i = 0; i < 200000; i++) {
            /* xorshift: values of every magnitude, and near the bounds */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t ns = x >> (x % 64);
            if (i % 4 == 0) {
                const double *b = sets[k].b ? sets[k].b : (const double[]){
                    0.00001, 0.000025, 0.001, 2.5, 10};
                double bound = b[i / 4 % (sets[k].b ? sets[k].n : 5)];
                ns = bound < 0 ? 0 : (uint64_t)(bound * 1e9) + (x % 3) - 1;
            }
            if (ns >= (1ull << 53))
                ns %= 1ull << 53;
            rg_histogram_observe_sw(ha, (double)ns * 1e-9);
            if (i % 2)
                rg_histogram_observe_ns_sw(hb, ns);
            else
                rg_histogram_observe_ns_mw(hb2, ns);
        }
        char *text = render(m, RG_METRICS_TEXT);
        double ca[40], cb[40];
        char full_a[32], full_b[32];
        snprintf(full_a, sizeof(full_a), "t_%s", a_name);
        snprintf(full_b, sizeof(full_b), "t_%s", b_name);
        unsigned na = buckets_of(text, full_a, ca);
        unsigned nb = buckets_of(text, full_b, cb);
        cr_assert_eq(na, nb);
        cr_assert_gt(na, 2);
        for (unsigned i = 0; i < na; i++)
            cr_assert_eq(ca[i], cb[i], "set %u bucket %u: %.0f vs %.0f", k, i,
                         ca[i], cb[i]);
        free(text);
    }
    rg_metrics_destroy(m);
}

Test(metrics, numbers_render_shortest_and_exact)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const char *ll[] = {"v"};
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "g", .help = "G.", .labels = ll,
        .nlabels = 1});
    struct { const char *label; double v; const char *want; } cases[] = {
        {"a", 0.1, "0.1"}, {"b", 1e-7, "1e-07"}, {"c", 123456789012.0,
        "123456789012"}, {"d", -2.5, "-2.5"}, {"e", -INFINITY, "-Inf"},
        {"f", 1.0 / 3, "0.3333333333333333"}, {"g", 9007199254740993.0,
        "9007199254740992"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *vals[] = {cases[i].label};
        rg_gauge_set(rg_metrics_gauge(f, vals, 0), cases[i].v);
    }
    char *text = render(m, RG_METRICS_TEXT);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[80];
        snprintf(line, sizeof(line), "t_g{v=\"%s\"} %s\n", cases[i].label,
                 cases[i].want);
        cr_assert_not_null(strstr(text, line), "want %s in:\n%s", line, text);
    }
    free(text);
    char *json = render(m, RG_METRICS_JSON);
    cr_assert_not_null(strstr(json, "{\"v\":\"e\"},\"value\":\"-Inf\""), "%s",
                       json);
    free(json);
    rg_metrics_destroy(m);
}

/* ---- descriptions ------------------------------------------------------ */

static void refused(rg_metrics_t *m, rg_metric_desc_t d, const char *why)
{
    char err[256] = "";
    cr_assert_null(rg_metrics_family_new(m, &d, err, sizeof(err)),
                   "accepted: %s", why);
    cr_assert_neq(err[0], 0, "no reason given for: %s", why);
    cr_assert_null(strchr(err, '\n'), "reason is one line: %s", err);
}

Test(metrics, bad_descriptions_are_refused_with_a_reason)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const char *two[] = {"a", "a"}, *dunder[] = {"__a"}, *le[] = {"le"};
    const char *bad[] = {"1a"}, *five[] = {"a", "b", "c", "d", "e"};
    const double desc[] = {2, 1}, inf[] = {1, INFINITY};
    rg_metric_desc_t ok = {.kind = RG_METRIC_GAUGE, .name = "ok", .help = "H."};
    rg_metric_desc_t d;
    d = ok, d.name = "9lives", refused(m, d, "name starts with a digit");
    d = ok, d.name = "a-b", refused(m, d, "dash in name");
    d = ok, d.name = NULL, refused(m, d, "no name");
    d = ok, d.help = "", refused(m, d, "empty help");
    d = ok, d.kind = RG_METRIC_COUNTER, d.name = "x_total",
        refused(m, d, "counter named _total");
    d = ok, d.unit = "Seconds", refused(m, d, "unit with a capital");
    d = ok, d.labels = two, d.nlabels = 2, refused(m, d, "label twice");
    d = ok, d.labels = dunder, d.nlabels = 1, refused(m, d, "__ label");
    d = ok, d.labels = bad, d.nlabels = 1, refused(m, d, "label 1a");
    d = ok, d.labels = five, d.nlabels = 5, refused(m, d, "five labels");
    d = ok, d.max_series = RG_METRICS_SERIES_MAX + 1,
        refused(m, d, "max_series too high");
    d = ok, d.writers = RG_METRICS_WRITERS_MAX + 1, refused(m, d, "writers");
    d = ok, d.kind = RG_METRIC_HISTOGRAM, d.labels = le, d.nlabels = 1,
        refused(m, d, "le on a histogram");
    d = ok, d.kind = RG_METRIC_HISTOGRAM, d.buckets = desc, d.nbuckets = 2,
        refused(m, d, "decreasing buckets");
    d = ok, d.kind = RG_METRIC_HISTOGRAM, d.buckets = inf, d.nbuckets = 2,
        refused(m, d, "infinite bucket");
    d = ok, d.kind = RG_METRIC_HISTOGRAM, d.name = "h_sum",
        refused(m, d, "histogram named _sum");
    char longname[200];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    d = ok, d.name = longname, refused(m, d, "name too long");
    d = ok, d.kind = 7, refused(m, d, "unknown kind");

    /* clashes: the same name; a gauge named like a histogram's sample */
    family(m, ok);
    refused(m, ok, "same name twice");
    rg_metric_desc_t h = {.kind = RG_METRIC_HISTOGRAM, .name = "lat",
                          .help = "H."};
    family(m, h);
    d = ok, d.name = "lat_count", refused(m, d, "gauge = histogram _count");
    /* the unit is appended once, not twice */
    rg_metric_desc_t u = {.kind = RG_METRIC_GAUGE, .name = "age_seconds",
                          .unit = "seconds", .help = "A."};
    family(m, u);
    char *text = render(m, RG_METRICS_TEXT);
    cr_assert_not_null(strstr(text, "\nt_age_seconds 0\n"), "%s", text);
    free(text);

    errno = 0;
    cr_assert_null(rg_metrics_new("bad-prefix"));
    cr_assert_eq(errno, EINVAL);
    rg_metrics_destroy(m);
    rg_metrics_destroy(NULL);
}

Test(metrics, cell_lookups_refuse_wrong_kind_writer_or_labels)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const char *ll[] = {"a", "b"};
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "c", .help = "C.", .labels = ll,
        .nlabels = 2, .writers = 4});
    const char *v[] = {"x", "y"}, *half[] = {"x", NULL};
    cr_assert_null(rg_metrics_gauge(f, v, 0));
    cr_assert_null(rg_metrics_histogram(f, v, 0));
    cr_assert_null(rg_metrics_counter(f, v, 4));
    cr_assert_null(rg_metrics_counter(f, half, 0));
    cr_assert_null(rg_metrics_counter(f, NULL, 0));
    /* each writer's cell is its own cache line; the same cell on repeat */
    rg_counter_t *c0 = rg_metrics_counter(f, v, 0);
    rg_counter_t *c3 = rg_metrics_counter(f, v, 3);
    cr_assert_not_null(c0);
    cr_assert_eq((char *)c3 - (char *)c0, 3 * 64);
    cr_assert_eq((uintptr_t)c0 % 64, 0);
    cr_assert_eq(rg_metrics_counter(f, v, 0), c0);
    for (unsigned w = 0; w < 4; w++)
        rg_counter_add_sw(rg_metrics_counter(f, v, w), w + 1);
    char *text = render(m, RG_METRICS_TEXT);
    cr_assert_eq(value_of(text, "t_c_total{a=\"x\",b=\"y\"}"), 10);
    free(text);
    rg_metrics_destroy(m);
}

/* ---- cardinality caps ------------------------------------------------------ */

Test(metrics, owned_label_cap_folds_into_overflow_with_exact_totals)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const char *ll[] = {"key"};
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "hits", .help = "Hits.",
        .labels = ll, .nlabels = 1, .max_series = 3});
    uint64_t total = 0;
    for (int k = 0; k < 1000; k++) {
        char key[16];
        snprintf(key, sizeof(key), "%d", k);
        const char *v[] = {key};
        rg_counter_t *c = rg_metrics_counter(f, v, 0);
        cr_assert_not_null(c);
        rg_counter_add_sw(c, (uint64_t)k);
        total += (uint64_t)k;
    }
    const char *ov[] = {RG_METRICS_OVERFLOW};
    rg_counter_t *o = rg_metrics_counter(f, ov, 0);
    const char *k5[] = {"5"};
    cr_assert_eq(rg_metrics_counter(f, k5, 0), o, "past the cap: overflow");
    char *text = render(m, RG_METRICS_TEXT);
    cr_assert_eq(count_lines_starting(text, "t_hits_total{"), 4);
    cr_assert_eq(value_of(text, "t_hits_total{key=\"0\"}"), 0);
    cr_assert_eq(value_of(text, "t_hits_total{key=\"1\"}"), 1);
    cr_assert_eq(value_of(text, "t_hits_total{key=\"2\"}"), 2);
    cr_assert_eq(value_of(text, "t_hits_total{key=\"_overflow\"}"),
                 (double)(total - 3));
    /* 997 refused on first use, plus the "5" looked up again */
    cr_assert_eq(value_of(text, "t_metrics_series_dropped_total"), 998);
    free(text);
    rg_metrics_destroy(m);
}

static rg_metric_family_t *c_top, *c_hist, *c_owned;
static int collect_rc[32];
static rg_metrics_scrape_t *saved_scrape;

static void collect_many(rg_metrics_scrape_t *s, void *opaque)
{
    (void)opaque;
    for (int k = 0; k < 10; k++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", k);
        const char *v[] = {key};
        collect_rc[k] = rg_metrics_collect_u64(s, c_top, v, (uint64_t)k);
    }
    const char *v0[] = {"k0"};
    collect_rc[10] = rg_metrics_collect_u64(s, c_top, v0, 99); /* repeat */
    collect_rc[11] = rg_metrics_collect_i64(s, c_top, v0, -1);
    collect_rc[12] = rg_metrics_collect_f64(s, c_top, v0, NAN);
    const uint64_t counts[] = {1, 2};
    collect_rc[13] = rg_metrics_collect_histogram(s, c_hist, NULL, counts, 3,
                                                  1);
    collect_rc[14] = rg_metrics_collect_histogram(s, c_hist, NULL, counts, 2,
                                                  1);
    collect_rc[15] = rg_metrics_collect_u64(s, c_hist, NULL, 1);
    collect_rc[16] = rg_metrics_collect_u64(s, c_owned, NULL, 1);
    saved_scrape = s;
}

Test(metrics, collected_label_cap_leaves_samples_out_and_refuses_repeats)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const char *ll[] = {"key"};
    c_top = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "hot_key_events", .help = "Top.",
        .labels = ll, .nlabels = 1, .max_series = 4, .collected = true});
    const double b[] = {1};
    c_hist = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "hh", .help = "H.", .buckets = b,
        .nbuckets = 1, .collected = true});
    c_owned = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "owned", .help = "O."});
    cr_assert_null(rg_metrics_counter(c_top, (const char *[]){"x"}, 0),
                   "a collected family has no cells");
    cr_assert_eq(rg_metrics_collector_add(m, collect_many, NULL), 0);
    cr_assert_eq(rg_metrics_collector_add(m, NULL, NULL), RG_EINVAL);

    for (int round = 1; round <= 3; round++) {
        char *text = render(m, RG_METRICS_TEXT);
        for (int k = 0; k < 4; k++)
            cr_assert_eq(collect_rc[k], 0);
        for (int k = 4; k < 10; k++)
            cr_assert_eq(collect_rc[k], RG_EFULL, "k%d past the cap", k);
        cr_assert_eq(collect_rc[10], RG_EFULL, "repeat refused");
        cr_assert_eq(collect_rc[11], RG_EINVAL, "negative counter");
        cr_assert_eq(collect_rc[12], RG_EINVAL, "NaN counter");
        cr_assert_eq(collect_rc[13], RG_EINVAL, "wrong bucket count");
        cr_assert_eq(collect_rc[14], 0);
        cr_assert_eq(collect_rc[15], RG_EINVAL, "scalar into a histogram");
        cr_assert_eq(collect_rc[16], RG_EINVAL, "into an owned family");
        cr_assert_eq(count_lines_starting(text, "t_hot_key_events_total{"), 4,
                     "%s", text);
        cr_assert_eq(value_of(text, "t_hot_key_events_total{key=\"k0\"}"), 0);
        cr_assert_eq(value_of(text, "t_hot_key_events_total{key=\"k3\"}"), 3);
        cr_assert_eq(value_of(text, "t_hh_bucket{le=\"+Inf\"}"), 3);
        /* 6 past the cap + 1 repeat, in every render */
        cr_assert_eq(value_of(text, "t_metrics_series_dropped_total"),
                     7.0 * round);
        free(text);
    }
    /* outside a collector: refused */
    const char *k0[] = {"k0"};
    cr_assert_eq(rg_metrics_collect_u64(saved_scrape, c_top, k0, 1),
                 RG_EINVAL);
    cr_assert_eq(rg_metrics_collect_u64(NULL, c_top, k0, 1), RG_EINVAL);
    rg_metrics_destroy(m);
}

Test(metrics, render_into_a_caller_buffer_says_what_it_needs)
{
    rg_metrics_t *m = rg_metrics_new("t");
    family(m, (rg_metric_desc_t){.kind = RG_METRIC_GAUGE, .name = "g",
                                 .help = "G."});
    char *full = render(m, RG_METRICS_TEXT);
    size_t need = strlen(full);
    char small[64], *exact = malloc(need + 1);
    size_t len = 0;
    cr_assert_eq(rg_metrics_render_to(m, RG_METRICS_TEXT, small, sizeof(small),
                                      &len), RG_ERANGE);
    cr_assert_eq(len, need);
    cr_assert_eq(strlen(small), sizeof(small) - 1, "a NUL-terminated prefix");
    cr_assert_eq(strncmp(small, full, sizeof(small) - 1), 0);
    cr_assert_eq(rg_metrics_render_to(m, RG_METRICS_TEXT, exact, need + 1,
                                      &len), 0);
    cr_assert_str_eq(exact, full);
    cr_assert_eq(rg_metrics_render_to(m, RG_METRICS_TEXT, exact, need, &len),
                 RG_ERANGE, "no room for the NUL");
    cr_assert_eq(rg_metrics_render_to(m, 9, exact, need + 1, &len), RG_EINVAL);
    free(exact);
    free(full);
    rg_metrics_destroy(m);
}

Test(metrics, gauges_set_and_add_from_one_or_many_writers)
{
    rg_metrics_t *m = rg_metrics_new("t");
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_GAUGE, .name = "g", .help = "G.", .writers = 2});
    rg_gauge_t *a = rg_metrics_gauge(f, NULL, 0), *b = rg_metrics_gauge(f, NULL, 1);
    rg_gauge_set(a, 10);
    rg_gauge_add_sw(a, -2.5);
    rg_gauge_add_mw(b, 0.25);
    char *text = render(m, RG_METRICS_TEXT);
    cr_assert_eq(value_of(text, "t_g"), 7.75, "%s", text);
    free(text);
    rg_metrics_destroy(m);
}

/* ---- concurrency ------------------------------------------------------- */

#define WRITERS 4
#define PER_WRITER 400000

struct conc {
    rg_metrics_t *m;
    rg_counter_t *own[WRITERS];   /* writer w's cell of a sharded counter */
    rg_counter_t *shared;         /* one cell, every writer (mw) */
    rg_histogram_t *hist[WRITERS];
    pthread_barrier_t start;
    _Atomic bool done;
    unsigned renders, regressions;
};

struct writer_arg {
    struct conc *c;
    unsigned w;
};

static void *writer(void *arg)
{
    struct writer_arg *a = arg;
    struct conc *c = a->c;
    pthread_barrier_wait(&c->start);
    for (uint64_t i = 0; i < PER_WRITER; i++) {
        rg_counter_add_sw(c->own[a->w], 1);
        rg_counter_add_mw(c->shared, 1);
        rg_histogram_observe_sw(c->hist[a->w], (double)(i % 4) * 0.001);
    }
    return NULL;
}

static void *reader(void *arg)
{
    struct conc *c = arg;
    double last_own = 0, last_shared = 0, last_count = 0;
    pthread_barrier_wait(&c->start);
    /* relaxed: a stop flag; the final check joins the writers first */
    while (!atomic_load_explicit(&c->done, memory_order_relaxed)) {
        char *text = render(c->m, RG_METRICS_TEXT);
        double own = value_of(text, "t_own_total");
        double shared = value_of(text, "t_shared_total");
        double count = value_of(text, "t_lat_seconds_count");
        double inf = value_of(text, "t_lat_seconds_bucket{le=\"+Inf\"}");
        double b1 = value_of(text, "t_lat_seconds_bucket{le=\"0.001\"}");
        double b2 = value_of(text, "t_lat_seconds_bucket{le=\"0.002\"}");
        c->regressions += own < last_own || shared < last_shared ||
                          count < last_count || count != inf || b1 > b2 ||
                          b2 > inf;
        last_own = own, last_shared = shared, last_count = count;
        c->renders++;
        free(text);
        char *json = render(c->m, RG_METRICS_JSON);
        free(json);
    }
    return NULL;
}

Test(metrics, writers_on_threads_while_a_reader_renders_totals_exact,
     .timeout = 300)
{
    struct conc c = {0};
    c.m = rg_metrics_new("t");
    rg_metric_family_t *own = family(c.m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "own", .help = "O.",
        .writers = WRITERS});
    rg_metric_family_t *shared = family(c.m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "shared", .help = "S."});
    const double b[] = {0.001, 0.002};
    rg_metric_family_t *lat = family(c.m, (rg_metric_desc_t){
        .kind = RG_METRIC_HISTOGRAM, .name = "lat", .unit = "seconds",
        .help = "L.", .buckets = b, .nbuckets = 2, .writers = WRITERS});
    for (unsigned w = 0; w < WRITERS; w++) {
        c.own[w] = rg_metrics_counter(own, NULL, w);
        c.hist[w] = rg_metrics_histogram(lat, NULL, w);
    }
    c.shared = rg_metrics_counter(shared, NULL, 0);
    pthread_barrier_init(&c.start, NULL, WRITERS + 1 + 1);
    pthread_t wt[WRITERS], rt;
    struct writer_arg args[WRITERS];
    for (unsigned w = 0; w < WRITERS; w++) {
        args[w] = (struct writer_arg){&c, w};
        pthread_create(&wt[w], NULL, writer, &args[w]);
    }
    pthread_create(&rt, NULL, reader, &c);
    pthread_barrier_wait(&c.start);
    for (unsigned w = 0; w < WRITERS; w++)
        pthread_join(wt[w], NULL);
    atomic_store_explicit(&c.done, true, memory_order_relaxed);
    pthread_join(rt, NULL);

    cr_assert_gt(c.renders, 0);
    cr_assert_eq(c.regressions, 0, "%u of %u renders went back or were "
                 "inconsistent", c.regressions, c.renders);
    char *text = render(c.m, RG_METRICS_TEXT);
    const double total = (double)WRITERS * PER_WRITER;
    cr_assert_eq(value_of(text, "t_own_total"), total, "%s", text);
    cr_assert_eq(value_of(text, "t_shared_total"), total);
    cr_assert_eq(value_of(text, "t_lat_seconds_count"), total);
    /* i % 4 in {0,1,2,3} ms: a quarter each */
    cr_assert_eq(value_of(text, "t_lat_seconds_bucket{le=\"0.001\"}"),
                 total / 2);
    cr_assert_eq(value_of(text, "t_lat_seconds_bucket{le=\"0.002\"}"),
                 total * 3 / 4);
    free(text);
    pthread_barrier_destroy(&c.start);
    rg_metrics_destroy(c.m);
}

#define CREATORS 8
#define KEYS_EACH 64

struct creator_arg {
    rg_metric_family_t *f;
    unsigned id;
    pthread_barrier_t *start;
};

static void *creator(void *arg)
{
    struct creator_arg *a = arg;
    pthread_barrier_wait(a->start);
    for (unsigned k = 0; k < KEYS_EACH; k++) {
        char key[24];
        snprintf(key, sizeof(key), "t%u-k%u", a->id, k);
        const char *v[] = {key};
        rg_counter_t *c = rg_metrics_counter(a->f, v, 0);
        /* the overflow cell is shared by every thread: mw */
        for (unsigned i = 0; i < 100; i++)
            rg_counter_add_mw(c, 1);
    }
    return NULL;
}

Test(metrics, concurrent_series_creation_honours_the_cap, .timeout = 300)
{
    rg_metrics_t *m = rg_metrics_new("t");
    const char *ll[] = {"key"};
    rg_metric_family_t *f = family(m, (rg_metric_desc_t){
        .kind = RG_METRIC_COUNTER, .name = "k", .help = "K.", .labels = ll,
        .nlabels = 1, .max_series = 100});
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, CREATORS);
    pthread_t t[CREATORS];
    struct creator_arg args[CREATORS];
    for (unsigned i = 0; i < CREATORS; i++) {
        args[i] = (struct creator_arg){f, i, &start};
        pthread_create(&t[i], NULL, creator, &args[i]);
    }
    for (unsigned i = 0; i < CREATORS; i++)
        pthread_join(t[i], NULL);
    char *text = render(m, RG_METRICS_TEXT);
    cr_assert_eq(count_lines_starting(text, "t_k_total{"), 101, "%s", text);
    /* sum every series: exact */
    double sum = 0;
    for (const char *p = strstr(text, "\nt_k_total{"); p != NULL;
         p = strstr(p + 1, "\nt_k_total{"))
        sum += strtod(strchr(p, '}') + 2, NULL);
    cr_assert_eq(sum, (double)CREATORS * KEYS_EACH * 100);
    cr_assert_eq(value_of(text, "t_k_total{key=\"_overflow\"}"),
                 (double)(CREATORS * KEYS_EACH - 100) * 100);
    cr_assert_eq(value_of(text, "t_metrics_series_dropped_total"),
                 CREATORS * KEYS_EACH - 100);
    free(text);
    pthread_barrier_destroy(&start);
    rg_metrics_destroy(m);
}
