/*
 * doctor.c - the analysis of scrapes into findings (see doctor.h).
 *
 * Model: per node, the good scrapes in time order (first .. last, their
 * span dt) and whether the last attempt failed. Every finding reads
 * either the last good scrape (states: connected, degraded, ages, lag)
 * or the change from the first to the last (rates: counters' increase
 * over dt; a counter that went down gives no rate), or each step between
 * scrapes (trends: "grew at every scrape"). Nothing is remembered between
 * runs: rg_doctor_run() is a pure function of what was added.
 *
 * The metric names are those of NOTES-metrics.md ("Proposed metric
 * names"); a metric a node does not export simply makes no finding (and
 * its value is NaN in the evidence), so an older or partial exporter gives
 * fewer findings, never wrong ones.
 *
 * Bottleneck, by stage: backpressure runs upstream (a slow sink fills the
 * workers' rings, full rings make the dispatcher wait, a waiting
 * dispatcher stops fetching), so the stage named is the most downstream
 * one that is saturated, checked in this order: flow control (throttling
 * on purpose), the sink, the workers and lanes, the dispatcher's waits,
 * and the source when every later stage has room.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "doctor.h"
#include "railgun/error.h"

/* ---- the metrics read (NOTES-metrics.md) --------------------------- */

#define M_CONSUMED "railgun_events_consumed_total"
#define M_PROCESSED "railgun_events_processed_total"
#define M_RETRIED "railgun_events_retried_total"
#define M_DELAYED "railgun_events_delayed_total"
#define M_DLQ "railgun_events_dead_lettered_total"
#define M_COMMITTED "railgun_partition_committed_offset"
#define M_HW "railgun_partition_high_watermark"
#define M_LAG "railgun_partition_lag"
#define M_PENDING "railgun_partition_pending_events"
#define M_AGE "railgun_partition_oldest_pending_age_seconds"
#define M_PAUSED "railgun_partition_paused"
#define M_W_EVENTS "railgun_worker_events_total"
#define M_W_BUSY "railgun_worker_busy_seconds_total"
#define M_W_FILL "railgun_worker_ring_fill_ratio"
#define M_W_PARKS "railgun_worker_parks_total"
#define M_LANE "railgun_lane_events_total"
#define M_D_WAITS "railgun_dispatcher_waits_total"
#define M_TX_SUM "railgun_epoch_transaction_seconds_sum"
#define M_TX_COUNT "railgun_epoch_transaction_seconds_count"
#define M_ROWS_SUM "railgun_epoch_rows_sum"
#define M_ROWS_COUNT "railgun_epoch_rows_count"
#define M_EPOCHS "railgun_epochs_total"
#define M_PENDING_EPOCHS "railgun_epochs_pending"
#define M_HOT "railgun_hot_key_share_ratio"
#define M_FLOW_LIMIT "railgun_flow_limit_events_per_second"
#define M_FLOW_LEASE "railgun_flow_lease_events_per_second"
#define M_FLOW_THROTTLED "railgun_flow_throttled_seconds_total"
#define M_FLOW_DEGRADED "railgun_flow_degraded"
#define M_CONNECTED "railgun_connected"
#define M_CONN_ERRORS "railgun_connection_errors_total"
#define M_FALLBACK "railgun_producer_fallback_active"
#define M_SPOOLED "railgun_producer_spooled_events"

/* ---- the builder ----------------------------------------------------- */

struct snap {
    double t;
    rg_prom_t *p;   /* NULL: the scrape failed */
    char *err;
};

struct node {
    char name[256];
    struct snap *s;
    size_t n, cap;
};

struct rg_doctor_s {
    rg_doctor_opts_t o;
    struct node *nodes;
    size_t nnodes, nodes_cap;
    rg_doctor_member_t *members;
    size_t nmembers, members_cap;
    bool registry_failed;
    char registry_err[256];
};

static int grow(void **a, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 8;
    while (c < need)
        c *= 2;
    void *n = realloc(*a, c * size);
    if (n == NULL)
        return RG_ENOMEM;
    *a = n;
    *cap = c;
    return 0;
}

void rg_doctor_opts_init(rg_doctor_opts_t *o)
{
    *o = (rg_doctor_opts_t){.stuck_s = 30, .lag_min = 1000, .skew = 4,
                            .node_skew = 2, .busy = 0.9, .rate_min = 100,
                            .retry_ratio = 0.01, .hot_share = 0.3,
                            .throttled = 0.5};
}

const char *rg_lag_status_name(int s)
{
    static const char *const names[] = {"OK", "WARN", "STALL", "STOP",
                                        "REWIND", "UNKNOWN"};
    return s >= 0 && s <= RG_LAG_UNKNOWN ? names[s] : "UNKNOWN";
}

rg_doctor_t *rg_doctor_new(const rg_doctor_opts_t *o)
{
    rg_doctor_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    if (o != NULL)
        d->o = *o;
    else
        rg_doctor_opts_init(&d->o);
    return d;
}

void rg_doctor_destroy(rg_doctor_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nnodes; i++) {
        for (size_t j = 0; j < d->nodes[i].n; j++) {
            rg_prom_free(d->nodes[i].s[j].p);
            free(d->nodes[i].s[j].err);
        }
        free(d->nodes[i].s);
    }
    free(d->nodes);
    free(d->members);
    free(d);
}

int rg_doctor_node(rg_doctor_t *d, const char *name)
{
    if (grow((void **)&d->nodes, &d->nodes_cap, d->nnodes + 1,
             sizeof(*d->nodes)) != 0)
        return RG_ENOMEM;
    struct node *n = &d->nodes[d->nnodes];
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    return (int)d->nnodes++;
}

static int add_snap(rg_doctor_t *d, int n, double t, rg_prom_t *p,
                    const char *why)
{
    if (n < 0 || (size_t)n >= d->nnodes || !isfinite(t)) {
        rg_prom_free(p);
        return RG_EINVAL;
    }
    struct node *nd = &d->nodes[n];
    if (nd->n > 0 && t < nd->s[nd->n - 1].t) {
        rg_prom_free(p);
        return RG_EINVAL;
    }
    char *err = why != NULL ? strdup(why) : NULL;
    if ((why != NULL && err == NULL) ||
        grow((void **)&nd->s, &nd->cap, nd->n + 1, sizeof(*nd->s)) != 0) {
        free(err);
        rg_prom_free(p);
        return RG_ENOMEM;
    }
    nd->s[nd->n++] = (struct snap){t, p, err};
    return 0;
}

int rg_doctor_scrape(rg_doctor_t *d, int n, double t_s, rg_prom_t *snap)
{
    if (snap == NULL)
        return RG_EINVAL;
    return add_snap(d, n, t_s, snap, NULL);
}

int rg_doctor_scrape_failed(rg_doctor_t *d, int n, double t_s,
                            const char *why)
{
    return add_snap(d, n, t_s, NULL, why != NULL ? why : "failed");
}

int rg_doctor_member(rg_doctor_t *d, const rg_doctor_member_t *m)
{
    if (grow((void **)&d->members, &d->members_cap, d->nmembers + 1,
             sizeof(*d->members)) != 0)
        return RG_ENOMEM;
    d->members[d->nmembers++] = *m;
    return 0;
}

int rg_doctor_registry_failed(rg_doctor_t *d, const char *why)
{
    d->registry_failed = true;
    snprintf(d->registry_err, sizeof(d->registry_err), "%s", why);
    return 0;
}

/* ---- reading snapshots ------------------------------------------------ */

/* Up to two label pairs a sample must have; NULL keys match anything. */
struct match {
    const char *k1, *v1, *k2, *v2;
};

static bool matches(const rg_prom_sample_t *s, const struct match *m)
{
    if (m == NULL)
        return true;
    const char *v;
    if (m->k1 && ((v = rg_prom_label(s, m->k1)) == NULL || strcmp(v, m->v1)))
        return false;
    if (m->k2 && ((v = rg_prom_label(s, m->k2)) == NULL || strcmp(v, m->v2)))
        return false;
    return true;
}

/* The sum of the matching samples of `name`, NaN when none matches. */
static double sum_m(const rg_prom_t *p, const char *name, const struct match *m)
{
    double s = 0;
    bool any = false;
    if (p == NULL)
        return NAN;
    for (size_t i = rg_prom_next(p, name, 0); i < p->n;
         i = rg_prom_next(p, name, i + 1))
        if (matches(&p->samples[i], m)) {
            s += p->samples[i].value;
            any = true;
        }
    return any ? s : NAN;
}

static double sum1(const rg_prom_t *p, const char *name, const char *k,
                   const char *v)
{
    struct match m = {k, v, NULL, NULL};
    return sum_m(p, name, k ? &m : NULL);
}

/* The distinct values of label `label` among the samples of `name`. */
static size_t label_values(const rg_prom_t *p, const char *name,
                           const char *label, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = rg_prom_next(p, name, 0); i < p->n;
         i = rg_prom_next(p, name, i + 1)) {
        const char *v = rg_prom_label(&p->samples[i], label);
        if (v == NULL)
            continue;
        size_t j = 0;
        while (j < n && strcmp(out[j], v) != 0)
            j++;
        if (j == n && n < max)
            out[n++] = v;
    }
    return n;
}

/* One node's good scrapes. */
struct view {
    const struct node *nd;
    const struct snap **ok;
    size_t k;
    const rg_prom_t *first, *last;
    double dt;
    bool last_failed;
    const char *last_err;
    unsigned failures;
};

static double rate_m(const struct view *v, const char *name,
                     const struct match *m)
{
    if (v->k < 2 || !(v->dt > 0))
        return NAN;
    double a = sum_m(v->first, name, m), b = sum_m(v->last, name, m);
    if (isnan(a) || isnan(b) || b < a)
        return NAN;
    return (b - a) / v->dt;
}

static double rate1(const struct view *v, const char *name, const char *k,
                    const char *val)
{
    struct match m = {k, val, NULL, NULL};
    return rate_m(v, name, k ? &m : NULL);
}

/* True when the sum of `name` grew at every step between scrapes. */
static bool grows_each(const struct view *v, const char *name)
{
    if (v->k < 2)
        return false;
    for (size_t i = 1; i < v->k; i++) {
        double a = sum_m(v->ok[i - 1]->p, name, NULL);
        double b = sum_m(v->ok[i]->p, name, NULL);
        if (!(b > a))
            return false;
    }
    return true;
}

/* True when the sum of `name` grew between the first and last scrape. */
static bool grew(const struct view *v, const char *name)
{
    return v->k >= 2 && sum_m(v->last, name, NULL) >
                        sum_m(v->first, name, NULL);
}

/* The largest value over every good scrape of the matching samples. */
static double max_over(const struct view *v, const char *name)
{
    double mx = NAN;
    for (size_t i = 0; i < v->k; i++) {
        const rg_prom_t *p = v->ok[i]->p;
        for (size_t j = rg_prom_next(p, name, 0); j < p->n;
             j = rg_prom_next(p, name, j + 1))
            if (isnan(mx) || p->samples[j].value > mx)
                mx = p->samples[j].value;
    }
    return mx;
}

/* ---- the report being built ----------------------------------------- */

struct rep {
    rg_doctor_report_t *r;
    size_t fcap, pcap, ncap;
    bool oom;
    const rg_doctor_opts_t *o;
};

static rg_doctor_finding_t *finding(struct rep *rp, const char *id, int sev,
                                    const char *node)
{
    rg_doctor_report_t *r = rp->r;
    if (grow((void **)&r->findings, &rp->fcap, r->nfindings + 1,
             sizeof(*r->findings)) != 0) {
        rp->oom = true;
        return NULL;
    }
    rg_doctor_finding_t *f = &r->findings[r->nfindings++];
    memset(f, 0, sizeof(*f));
    f->id = id;
    f->severity = sev;
    f->partition = -1;
    f->offset = -1;
    snprintf(f->node, sizeof(f->node), "%s", node ? node : "");
    return f;
}

static void setf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void setf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

static void addf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void addf(char *buf, size_t size, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, size - n, fmt, ap);
    va_end(ap);
}

#define SET(f, field, ...) setf((f)->field, sizeof((f)->field), __VA_ARGS__)
#define ADD(f, field, ...) addf((f)->field, sizeof((f)->field), __VA_ARGS__)

static void value(rg_doctor_finding_t *f, const char *name, double v)
{
    if (f->nvalues < RG_DOCTOR_VALUES_MAX && !isnan(v)) {
        snprintf(f->values[f->nvalues].name,
                 sizeof(f->values[f->nvalues].name), "%s", name);
        f->values[f->nvalues++].value = v;
    }
}

/* A figure for people: 12, 3.5, 250, 5000, 12.3k, 4.56M; "n/a" for NaN. */
struct num {
    char s[32];
};

static struct num num(double v)
{
    struct num n;
    double a = fabs(v);
    if (isnan(v))
        snprintf(n.s, sizeof(n.s), "n/a");
    else if (a >= 1e9)
        snprintf(n.s, sizeof(n.s), "%.3gG", v / 1e9);
    else if (a >= 1e6)
        snprintf(n.s, sizeof(n.s), "%.3gM", v / 1e6);
    else if (a >= 1e4)
        snprintf(n.s, sizeof(n.s), "%.3gk", v / 1e3);
    else if (a >= 100 || v == floor(v))
        snprintf(n.s, sizeof(n.s), "%.0f", v);
    else
        snprintf(n.s, sizeof(n.s), "%.3g", v);
    return n;
}
#define N(v) (num(v).s)

static struct num pct(double ratio)
{
    struct num n;
    if (isnan(ratio))
        snprintf(n.s, sizeof(n.s), "n/a");
    else
        snprintf(n.s, sizeof(n.s), "%.0f%%", ratio * 100);
    return n;
}
#define P(v) (pct(v).s)

/* ---- per node: the partitions --------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The value of a partition's metric in scrape p. */
static double pval(const rg_prom_t *p, const char *name, const char *topic,
                   const char *part)
{
    struct match m = {"topic", topic, "partition", part};
    return sum_m(p, name, &m);
}

/* Burrow's evaluation of one partition over the node's good scrapes.
 * node_commits: the node committed something in the window (epochs or
 * any partition's offset moved). */
static int lag_status(const struct view *v, const struct rep *rp,
                      const char *topic, const char *part, bool node_commits)
{
    size_t k = v->k;
    double lag[64], off[64];
    size_t n = 0;
    size_t from = k > 64 ? k - 64 : 0;
    for (size_t i = from; i < k; i++, n++) {
        const rg_prom_t *p = v->ok[i]->p;
        off[n] = pval(p, M_COMMITTED, topic, part);
        lag[n] = pval(p, M_LAG, topic, part);
        if (isnan(lag[n]))
            lag[n] = pval(p, M_HW, topic, part) - off[n];
    }
    if (v->last_failed && !isnan(lag[n - 1]) && lag[n - 1] > 0)
        return RG_LAG_STOP; /* the node stopped answering with lag */
    for (size_t i = 1; i < n; i++)
        if (off[i] < off[i - 1])
            return RG_LAG_REWIND;
    for (size_t i = 0; i < n; i++)
        if (lag[i] == 0)
            return RG_LAG_OK;
    if (n < 2)
        return isnan(lag[0]) ? RG_LAG_OK : RG_LAG_UNKNOWN;
    bool stands = true;
    for (size_t i = 1; i < n; i++)
        if (off[i] != off[0])
            stands = false;
    if (stands && !isnan(off[0]))
        return node_commits ? RG_LAG_STALL : RG_LAG_STOP;
    bool grows = true;
    for (size_t i = 1; i < n; i++)
        if (!(lag[i] > lag[i - 1]))
            grows = false;
    /* Burrow's WARN, with a floor so that noise around a small lag is no
     * warning: the lag must be a backlog and have grown by a tenth */
    if (grows && lag[n - 1] >= rp->o->lag_min &&
        lag[n - 1] - lag[0] >= 0.1 * lag[0])
        return RG_LAG_WARN;
    return RG_LAG_OK;
}

/* Lists the partitions of one status on a node into buf. */
static void list_parts(char *buf, size_t size, const rg_doctor_report_t *r,
                       size_t from, size_t to, int status)
{
    unsigned shown = 0, more = 0;
    buf[0] = '\0';
    for (size_t i = from; i < to; i++) {
        const rg_doctor_partition_t *p = &r->partitions[i];
        if (p->status != status)
            continue;
        if (shown < 8)
            addf(buf, size, "%s%s[%d]", shown ? ", " : "", p->topic,
                 p->partition);
        else
            more++;
        shown++;
    }
    if (more)
        addf(buf, size, " and %u more", more);
}

/* Adds the node's partitions to the report, with their lag statuses and
 * the findings they make. */
static void partitions(struct rep *rp, const struct view *v,
                       rg_doctor_node_t *nout)
{
    const rg_doctor_opts_t *o = rp->o;
    rg_doctor_report_t *r = rp->r;
    const rg_prom_t *last = v->last;
    const char *node = v->nd->name;
    /* the node commits when its epoch counter moves or any offset does */
    bool commits = grew(v, M_EPOCHS);
    if (!commits && v->k >= 2)
        for (size_t i = rg_prom_next(last, M_COMMITTED, 0); i < last->n;
             i = rg_prom_next(last, M_COMMITTED, i + 1)) {
            const char *t = rg_prom_label(&last->samples[i], "topic");
            const char *pa = rg_prom_label(&last->samples[i], "partition");
            if (t && pa && pval(v->first, M_COMMITTED, t, pa) !=
                               last->samples[i].value)
                commits = true;
        }
    size_t from = r->npartitions;
    static const char *const names[] = {M_LAG, M_COMMITTED, M_HW, M_AGE,
                                        M_PENDING};
    for (size_t m = 0; m < sizeof(names) / sizeof(names[0]); m++)
        for (size_t i = rg_prom_next(last, names[m], 0); i < last->n;
             i = rg_prom_next(last, names[m], i + 1)) {
            const char *t = rg_prom_label(&last->samples[i], "topic");
            const char *pa = rg_prom_label(&last->samples[i], "partition");
            if (t == NULL || pa == NULL)
                continue;
            bool seen = false;
            for (size_t j = from; j < r->npartitions && !seen; j++)
                seen = !strcmp(r->partitions[j].topic, t) &&
                       r->partitions[j].partition == atoi(pa);
            if (seen)
                continue;
            if (grow((void **)&r->partitions, &rp->pcap, r->npartitions + 1,
                     sizeof(*r->partitions)) != 0) {
                rp->oom = true;
                return;
            }
            rg_doctor_partition_t *p = &r->partitions[r->npartitions++];
            memset(p, 0, sizeof(*p));
            snprintf(p->node, sizeof(p->node), "%s", node);
            snprintf(p->topic, sizeof(p->topic), "%s", t);
            p->partition = atoi(pa);
            p->committed = pval(last, M_COMMITTED, t, pa);
            p->high_watermark = pval(last, M_HW, t, pa);
            p->lag = pval(last, M_LAG, t, pa);
            if (isnan(p->lag))
                p->lag = p->high_watermark - p->committed;
            p->oldest_age_s = pval(last, M_AGE, t, pa);
            p->pending = pval(last, M_PENDING, t, pa);
            p->paused = pval(last, M_PAUSED, t, pa) == 1;
            struct match mm = {"topic", t, "partition", pa};
            p->consumed_rate = NAN;
            p->produced_rate = NAN;
            if (v->k >= 2 && v->dt > 0) {
                double a = sum_m(v->first, M_COMMITTED, &mm);
                p->consumed_rate = (p->committed - a) / v->dt;
                a = sum_m(v->first, M_HW, &mm);
                p->produced_rate = (p->high_watermark - a) / v->dt;
            }
            p->status = lag_status(v, rp, t, pa, commits);
        }
    size_t to = r->npartitions;
    nout->partitions = (unsigned)(to - from);
    double lag = 0;
    for (size_t i = from; i < to; i++)
        if (!isnan(r->partitions[i].lag))
            lag += r->partitions[i].lag;
    nout->lag = lag;

    /* stuck watermarks, one finding each */
    for (size_t i = from; i < to; i++) {
        rg_doctor_partition_t *p = &r->partitions[i];
        if (!(p->oldest_age_s >= o->stuck_s))
            continue;
        rg_doctor_finding_t *f = finding(rp, "stuck_watermark",
                                         RG_DOCTOR_CRITICAL, node);
        if (f == NULL)
            return;
        SET(f, subject, "%s[%d]", p->topic, p->partition);
        snprintf(f->topic, sizeof(f->topic), "%s", p->topic);
        f->partition = p->partition;
        f->offset = isnan(p->committed) ? -1 : (int64_t)p->committed;
        if (f->offset >= 0)
            SET(f, title, "%s[%d]: an event has been pending for %s s at "
                "offset %" PRId64 "; the watermark cannot pass it", p->topic,
                p->partition, N(p->oldest_age_s), f->offset);
        else
            SET(f, title, "%s[%d]: an event has been pending for %s s; the "
                "watermark cannot pass it", p->topic, p->partition,
                N(p->oldest_age_s));
        SET(f, evidence, "%s=%s s (threshold %s s), %s=%s, committed "
            "offset %s, lag %s", M_AGE, N(p->oldest_age_s), N(o->stuck_s),
            M_PENDING, N(p->pending), N(p->committed), N(p->lag));
        SET(f, action, "Look at the event (kcat -C -t %s -p %d -o %" PRId64
            " -c 1) and at its key's processing: a processor that blocks, "
            "or a key whose retries have not given up yet. Until it is "
            "done, delayed or dead-lettered, the partition's committed "
            "offset stays at %" PRId64 " and a restart replays from there.",
            p->topic, p->partition, f->offset < 0 ? 0 : f->offset,
            f->offset < 0 ? 0 : f->offset);
        value(f, M_AGE, p->oldest_age_s);
        value(f, M_PENDING, p->pending);
        value(f, M_COMMITTED, p->committed);
        value(f, M_LAG, p->lag);
    }

    /* lag statuses, one finding per node and status */
    static const struct {
        int status;
        const char *id;
        int sev;
    } st[] = {{RG_LAG_STALL, "lag_stalled", RG_DOCTOR_CRITICAL},
              {RG_LAG_STOP, "commits_stopped", RG_DOCTOR_CRITICAL},
              {RG_LAG_WARN, "lag_growing", RG_DOCTOR_WARNING},
              {RG_LAG_REWIND, "offset_rewind", RG_DOCTOR_WARNING}};
    for (size_t s = 0; s < sizeof(st) / sizeof(st[0]); s++) {
        unsigned count = 0;
        double lag_sum = 0;
        const rg_doctor_partition_t *one = NULL;
        for (size_t i = from; i < to; i++)
            if (r->partitions[i].status == st[s].status) {
                count++;
                lag_sum += isnan(r->partitions[i].lag) ? 0 :
                           r->partitions[i].lag;
                one = &r->partitions[i];
            }
        if (count == 0)
            continue;
        rg_doctor_finding_t *f = finding(rp, st[s].id, st[s].sev, node);
        if (f == NULL)
            return;
        char list[600];
        list_parts(list, sizeof(list), r, from, to, st[s].status);
        SET(f, subject, "%s", list);
        if (count == 1) {
            snprintf(f->topic, sizeof(f->topic), "%s", one->topic);
            f->partition = one->partition;
        }
        value(f, "partitions", count);
        value(f, M_LAG, lag_sum);
        switch (st[s].status) {
        case RG_LAG_STALL:
            SET(f, title, "%u partition%s stall%s: the committed offset "
                "stands while lag > 0 (Burrow STALL)", count,
                count > 1 ? "s" : "", count > 1 ? "" : "s");
            SET(f, evidence, "%s: %s unchanged over %s s with lag %s in "
                "total, while the node commits its other work", list,
                M_COMMITTED, N(v->dt), N(lag_sum));
            SET(f, action, "Something holds these partitions' watermark: "
                "see stuck_watermark for the event and its offset, or a "
                "worker or key that stopped (bottleneck).");
            if (count == 1)
                value(f, M_COMMITTED, one->committed);
            break;
        case RG_LAG_STOP:
            SET(f, title, "%u partition%s with lag get no commits: the "
                "node commits nothing (Burrow STOP)", count,
                count > 1 ? "s" : "");
            SET(f, evidence, "%s: no committed offset moved and %s did not "
                "grow over %s s; lag %s in total%s", list, M_EPOCHS,
                N(v->dt), N(lag_sum),
                v->last_failed ? "; the node stopped answering" : "");
            SET(f, action, "The node's epochs do not complete: a sink "
                "that does not answer or a transaction that hangs (see "
                "sink_unreachable and bottleneck), or the process is "
                "paused or dead.");
            break;
        case RG_LAG_WARN:
            SET(f, title, "%u partition%s fall%s behind: lag grew at every "
                "scrape though offsets move (Burrow WARN)", count,
                count > 1 ? "s" : "", count > 1 ? "" : "s");
            SET(f, evidence, "%s: lag %s in total and growing over %s s",
                list, N(lag_sum), N(v->dt));
            SET(f, action, "The node consumes slower than the topic grows: "
                "see the bottleneck finding for the stage that holds it.");
            break;
        default:
            SET(f, title, "%u partition%s went back: a committed offset "
                "decreased (Burrow REWIND)", count, count > 1 ? "s" : "");
            SET(f, evidence, "%s: %s lower at a later scrape", list,
                M_COMMITTED);
            SET(f, action, "An offset reset or a new owner that starts "
                "from older stored offsets: events are replayed (counted "
                "once, but processed again). Check kafka.auto.offset.reset "
                "and the offsets table.");
            break;
        }
    }
}

/* ---- per node: degraded mode ------------------------------------------ */

static void degraded(struct rep *rp, const struct view *v)
{
    const rg_prom_t *p = v->last;
    const char *node = v->nd->name;
    double kafka = sum1(p, M_CONNECTED, "component", "kafka");
    double sink = sum1(p, M_CONNECTED, "component", "sink");
    double redis = sum1(p, M_CONNECTED, "component", "redis");
    double flow = sum1(p, M_FLOW_DEGRADED, NULL, NULL);
    double fb = sum1(p, M_FALLBACK, NULL, NULL);
    rg_doctor_finding_t *f;
    if (kafka == 0 && (f = finding(rp, "kafka_unreachable",
                                   RG_DOCTOR_CRITICAL, node)) != NULL) {
        double errs = rate1(v, M_CONN_ERRORS, "component", "kafka");
        SET(f, subject, "kafka");
        SET(f, title, "Kafka is unreachable: the node consumes nothing");
        SET(f, evidence, "%s{component=\"kafka\"}=0, connection errors "
            "%s/s, consumed %s/s", M_CONNECTED, N(errs),
            N(rate1(v, M_CONSUMED, NULL, NULL)));
        SET(f, action, "Check kafka.bootstrap.servers and the brokers. "
            "Producers with fallback.spool.dir spool durably meanwhile "
            "(degraded mode) and replay when Kafka is back.");
        value(f, M_CONNECTED, 0);
        value(f, M_CONN_ERRORS "_per_second", errs);
    }
    if (sink == 0 && (f = finding(rp, "sink_unreachable",
                                  RG_DOCTOR_CRITICAL, node)) != NULL) {
        SET(f, subject, "sink");
        SET(f, title, "the database is unreachable: epochs cannot be "
            "stored");
        SET(f, evidence, "%s{component=\"sink\"}=0, %s=%s, connection "
            "errors %s/s", M_CONNECTED, M_PENDING_EPOCHS,
            N(sum1(p, M_PENDING_EPOCHS, NULL, NULL)),
            N(rate1(v, M_CONN_ERRORS, "component", "sink")));
        SET(f, action, "Check the database (sqlite.path, mysql.*). The "
            "rings fill and intake pauses until it answers: nothing is "
            "lost, the epoch is retried.");
        value(f, M_CONNECTED, 0);
    }
    if ((redis == 0 || flow == 1) &&
        (f = finding(rp, "redis_unreachable", RG_DOCTOR_WARNING, node)) !=
            NULL) {
        SET(f, subject, "redis");
        SET(f, title, "flow control is degraded: Redis is unreachable, "
            "the node runs on its last lease or its fallback rate");
        SET(f, evidence, "%s{component=\"redis\"}=%s, %s=%s, lease %s/s, "
            "limit %s/s", M_CONNECTED, N(redis), M_FLOW_DEGRADED, N(flow),
            N(sum1(p, M_FLOW_LEASE, NULL, NULL)),
            N(sum1(p, M_FLOW_LIMIT, NULL, NULL)));
        SET(f, action, "Check Redis (flow.redis.host and port, or "
            "flow.redis.sentinels). The node holds its last lease for "
            "flow.lease.ttl.ms, then decays to "
            "flow.fallback.rate.events.per.s, and leases again once Redis "
            "answers.");
        value(f, M_CONNECTED, redis);
        value(f, M_FLOW_DEGRADED, flow);
    }
    if (fb == 1 && (f = finding(rp, "producer_fallback", RG_DOCTOR_WARNING,
                                node)) != NULL) {
        double spooled = sum1(p, M_SPOOLED, NULL, NULL);
        SET(f, subject, "producer");
        SET(f, title, "the producer is in degraded mode: Kafka is down "
            "for it, its sends go to the local spool");
        SET(f, evidence, "%s=1, %s=%s", M_FALLBACK, M_SPOOLED, N(spooled));
        SET(f, action, "Check Kafka (kafka.bootstrap.servers, the "
            "brokers). Accepted messages are spooled durably "
            "(fallback.spool.dir) and replayed into Kafka, in order, when "
            "it is back; the consumers' counts stand still meanwhile. "
            "Watch the spool's size against fallback.spool.max.bytes: at "
            "the bound sends are refused.");
        value(f, M_FALLBACK, 1);
        value(f, M_SPOOLED, spooled);
    }
}

/* ---- per node: retries and the DLQ ------------------------------------ */

static void retries(struct rep *rp, const struct view *v)
{
    const rg_doctor_opts_t *o = rp->o;
    const char *node = v->nd->name;
    if (v->k < 2)
        return;
    double retried = rate1(v, M_RETRIED, NULL, NULL);
    double delayed = rate1(v, M_DELAYED, NULL, NULL);
    double dlq = rate1(v, M_DLQ, NULL, NULL);
    double processed = rate1(v, M_PROCESSED, NULL, NULL);
    bool runaway = (grows_each(v, M_RETRIED) &&
                    (grew(v, M_DELAYED) || grew(v, M_DLQ))) ||
                   grows_each(v, M_DELAYED);
    /* the hottest key, since one key failing forever is the usual cause */
    const char *hot = NULL;
    double share = NAN;
    for (size_t i = rg_prom_next(v->last, M_HOT, 0); i < v->last->n;
         i = rg_prom_next(v->last, M_HOT, i + 1))
        if (isnan(share) || v->last->samples[i].value > share) {
            share = v->last->samples[i].value;
            hot = rg_prom_label(&v->last->samples[i], "key");
        }
    char reasons[300] = "";
    const char *rs[16];
    size_t nr = label_values(v->last, M_DLQ, "reason", rs, 16);
    for (size_t i = 0; i < nr; i++) {
        double x = rate1(v, M_DLQ, "reason", rs[i]);
        if (x > 0)
            addf(reasons, sizeof(reasons), "%s%s %s/s", reasons[0] ? ", " :
                 "", rs[i], N(x));
    }
    rg_doctor_finding_t *f;
    if (runaway && (f = finding(rp, "runaway_retries", RG_DOCTOR_CRITICAL,
                                node)) != NULL) {
        SET(f, subject, "retries");
        SET(f, title, "runaway retries: attempts keep growing and events "
            "move on to the delayed queue%s", grew(v, M_DLQ) ?
            " and the DLQ" : "");
        SET(f, evidence, "over %s s: retried %s/s (of %s/s processed), "
            "delayed %s/s, dead-lettered %s/s%s%s", N(v->dt), N(retried),
            N(processed), N(delayed), N(dlq), reasons[0] ? ": " : "",
            reasons);
        if (hot != NULL)
            ADD(f, evidence, "; hottest key %s (%s of the events)", hot,
                P(share));
        SET(f, action, "Events fail past their in-place retries: usually "
            "one key (a poison event) or a dependency that is down. Find "
            "the key in the delayed or dead-letter table (`railgun dlq`), "
            "fix the processor or the input; each event gives up after its "
            "attempts, so nothing retries forever.");
        value(f, M_RETRIED "_per_second", retried);
        value(f, M_DELAYED "_per_second", delayed);
        value(f, M_DLQ "_per_second", dlq);
    } else if (retried >= 1 && retried >= o->retry_ratio * processed &&
               (f = finding(rp, "retry_storm", RG_DOCTOR_WARNING, node)) !=
                   NULL) {
        SET(f, subject, "retries");
        SET(f, title, "retry storm: %s of the processed events are "
            "retries", P(processed > 0 ? retried / processed : 1));
        SET(f, evidence, "retried %s/s, processed %s/s (threshold %s)",
            N(retried), N(processed), P(o->retry_ratio));
        SET(f, action, "A dependency fails intermittently or a key keeps "
            "failing: check the processor's errors; retries in place "
            "slow the worker that owns the key.");
        value(f, M_RETRIED "_per_second", retried);
        value(f, M_PROCESSED "_per_second", processed);
    }
    if (dlq > 0 && (f = finding(rp, "dead_letters", RG_DOCTOR_WARNING,
                                node)) != NULL) {
        SET(f, subject, "dlq");
        SET(f, title, "events are being dead-lettered (%s/s)", N(dlq));
        SET(f, evidence, "%s grew by %s/s over %s s%s%s", M_DLQ, N(dlq),
            N(v->dt), reasons[0] ? ": " : "", reasons);
        SET(f, action, "Inspect them with `railgun dlq` (coordinates and "
            "reasons), fix the processor or the input, then replay them.");
        value(f, M_DLQ "_per_second", dlq);
    }
}

/* ---- per node: consumption, bottleneck, workers ---------------------- */

/* The node's partitions are r->partitions[from, r->npartitions). */
static void consumption(struct rep *rp, const struct view *v,
                        rg_doctor_node_t *nout, size_t from)
{
    const rg_doctor_opts_t *o = rp->o;
    const char *node = v->nd->name;
    const rg_prom_t *last = v->last;
    double consumed = rate1(v, M_CONSUMED, NULL, NULL);
    double processed = rate1(v, M_PROCESSED, NULL, NULL);
    nout->consumed_rate = consumed;
    nout->processed_rate = processed;
    if (v->k < 2)
        return;
    /* the backlog that throughput explains: a stalled partition's lag
     * grows whatever the throughput (lag_stalled names it) */
    double lag_first = 0, lag_last = 0;
    for (size_t i = from; i < rp->r->npartitions; i++) {
        const rg_doctor_partition_t *pp = &rp->r->partitions[i];
        char pa[16];
        if (pp->status == RG_LAG_STALL || isnan(pp->lag))
            continue;
        snprintf(pa, sizeof(pa), "%d", pp->partition);
        double a = pval(v->first, M_LAG, pp->topic, pa);
        if (isnan(a))
            a = pval(v->first, M_HW, pp->topic, pa) -
                pval(v->first, M_COMMITTED, pp->topic, pa);
        lag_first += isnan(a) ? 0 : a;
        lag_last += pp->lag;
    }
    unsigned paused = 0, parts = 0;
    for (size_t i = rg_prom_next(last, M_PAUSED, 0); i < last->n;
         i = rg_prom_next(last, M_PAUSED, i + 1)) {
        parts++;
        paused += last->samples[i].value == 1;
    }
    double pending_epochs = max_over(v, M_PENDING_EPOCHS);
    double in = isnan(consumed) ? processed : consumed;
    rg_doctor_finding_t *f;
    if (in == 0 && nout->lag > 0 &&
        (f = finding(rp, "node_not_consuming", RG_DOCTOR_CRITICAL, node)) !=
            NULL) {
        SET(f, subject, "node");
        SET(f, title, "the node consumes nothing while its partitions have "
            "lag %s", N(nout->lag));
        SET(f, evidence, "consumed 0/s over %s s, lag %s on %u partitions, "
            "%u of %u paused, %s=%s", N(v->dt), N(nout->lag),
            nout->partitions, paused, parts, M_PENDING_EPOCHS,
            N(pending_epochs));
        if (parts > 0 && paused == parts)
            SET(f, action, "Intake is paused by backpressure: its rings are "
                "full. See the bottleneck finding (usually the sink) and "
                "fix that stage; intake resumes by itself.");
        else
            SET(f, action, "The node holds partitions but fetches nothing: "
                "check its Kafka connection and its log; a node that stays "
                "stuck should be restarted (its partitions then move to "
                "the others).");
        value(f, M_CONSUMED "_per_second", 0);
        value(f, M_LAG, nout->lag);
        value(f, "paused_partitions", paused);
    }

    /* the stages' indicators */
    double throttled = rate1(v, M_FLOW_THROTTLED, NULL, NULL);
    double limit = sum1(last, M_FLOW_LIMIT, NULL, NULL);
    double lease = sum1(last, M_FLOW_LEASE, NULL, NULL);
    double sink_busy = rate1(v, M_TX_SUM, NULL, NULL);
    double tx_n = rate1(v, M_TX_COUNT, NULL, NULL);
    double tx_mean = tx_n > 0 ? sink_busy / tx_n : NAN;
    double rows_n = rate1(v, M_ROWS_COUNT, NULL, NULL);
    double rows_mean = rows_n > 0 ? rate1(v, M_ROWS_SUM, NULL, NULL) /
                                        rows_n : NAN;
    double waits = rate1(v, M_D_WAITS, NULL, NULL);
    double fill = NAN;
    for (size_t i = rg_prom_next(last, M_W_FILL, 0); i < last->n;
         i = rg_prom_next(last, M_W_FILL, i + 1))
        if (isnan(fill) || last->samples[i].value > fill)
            fill = last->samples[i].value;
    const char *ws[256];
    size_t nw = label_values(last, M_W_BUSY, "worker", ws, 256);
    double busy_max = NAN, busy_sum = 0;
    const char *busy_w = NULL;
    size_t busy_n = 0;
    for (size_t i = 0; i < nw; i++) {
        double b = rate1(v, M_W_BUSY, "worker", ws[i]);
        if (isnan(b))
            continue;
        busy_sum += b;
        busy_n++;
        if (isnan(busy_max) || b > busy_max) {
            busy_max = b;
            busy_w = ws[i];
        }
    }
    double others = busy_n > 1 ? (busy_sum - busy_max) / (double)(busy_n - 1)
                               : NAN;
    const char *hot = NULL;
    double share = NAN;
    for (size_t i = rg_prom_next(last, M_HOT, 0); i < last->n;
         i = rg_prom_next(last, M_HOT, i + 1))
        if (isnan(share) || last->samples[i].value > share) {
            share = last->samples[i].value;
            hot = rg_prom_label(&last->samples[i], "key");
        }
    const char *ls[64];
    size_t nl = label_values(last, M_LANE, "lane", ls, 64);
    double lane_max = NAN, lane_sum = 0;
    const char *lane = NULL;
    for (size_t i = 0; i < nl; i++) {
        double x = rate1(v, M_LANE, "lane", ls[i]);
        if (isnan(x))
            continue;
        lane_sum += x;
        if (isnan(lane_max) || x > lane_max) {
            lane_max = x;
            lane = ls[i];
        }
    }
    char ind[600];
    setf(ind, sizeof(ind), "consumed %s/s, lag %s -> %s over %s s; flow "
         "throttled %s of the time (limit %s/s, lease %s/s); sink busy %s "
         "(mean transaction %s s, %s rows, pending epochs up to %s); "
         "workers busy up to %s (worker %s; the others %s); rings up to %s "
         "full; dispatcher waits %s/s", N(in), N(lag_first), N(lag_last),
         N(v->dt), P(throttled), N(limit), N(lease), P(sink_busy),
         N(tx_mean), N(rows_mean), N(pending_epochs), P(busy_max),
         busy_w ? busy_w : "n/a", P(others), P(fill), N(waits));
    if (hot != NULL)
        addf(ind, sizeof(ind), "; hottest key %s (%s)", hot, P(share));

    /* a bottleneck shows as lag that grows (a steady lag is the events in
     * flight: the node keeps up), or as a node that consumes nothing */
    bool backlog = (lag_last >= o->lag_min &&
                    lag_last - lag_first >= fmax(0.05 * lag_first,
                                                 o->lag_min / 10)) ||
                   (in == 0 && nout->lag > 0);
    bool worker_named = false;
    if (backlog) {
        const char *stage;
        f = finding(rp, "bottleneck", RG_DOCTOR_WARNING, node);
        if (f == NULL)
            return;
        SET(f, evidence, "%s", ind);
        value(f, M_LAG, lag_last);
        value(f, "consumed_per_second", in);
        if (throttled >= o->throttled ||
            (limit > 0 && in >= 0.9 * limit)) {
            stage = "flow";
            SET(f, title, "flow control holds the node at %s/s (throttled "
                "%s of the time) while the lag is %s", N(limit > 0 ? limit :
                in), P(throttled), N(lag_last));
            SET(f, action, "The configured rate is the limit: raise it "
                "(`railgun flow set --rate N` for the group, "
                "flow.rate.events.per.s for the node) if the database can "
                "take more, or accept the lag.");
            value(f, M_FLOW_THROTTLED "_ratio", throttled);
            value(f, M_FLOW_LIMIT, limit);
        } else if (sink_busy >= 0.8 || pending_epochs >= 2 ||
                   (tx_n == 0 && pending_epochs >= 1)) {
            stage = "sink";
            SET(f, title, "the sink is the bottleneck: busy %s, mean "
                "transaction %s s, up to %s epochs pending", P(sink_busy),
                N(tx_mean), N(pending_epochs));
            SET(f, action, "The database does not keep up: check its "
                "latency and load (locks, disk, network). A longer "
                "flush.interval.ms makes fewer, larger transactions; "
                "intake pauses meanwhile, nothing is lost.");
            value(f, "sink_busy_ratio", sink_busy);
            value(f, "epoch_transaction_mean_seconds", tx_mean);
            value(f, M_PENDING_EPOCHS, pending_epochs);
        } else if (busy_max >= o->busy) {
            worker_named = true;
            bool all = busy_n > 1 && others >= 0.8 * o->busy;
            if (!all && hot != NULL && share >= o->hot_share) {
                stage = nl > 0 ? "lane" : "worker";
                SET(f, title, "worker %s is saturated (%s busy) by one hot "
                    "key: %s takes %s of the events", busy_w, P(busy_max),
                    hot, P(share));
                SET(f, action, "One key's events all go to one thread "
                    "(hot lanes, which would take it off, are not built). "
                    "Spread the other keys over more workers or nodes so "
                    "fewer wait behind it, and make the processor's work "
                    "for that key cheaper (merge its events per epoch).");
            } else if (all) {
                stage = "worker";
                SET(f, title, "every worker is busy (up to %s, the others "
                    "%s): the node has no processing left", P(busy_max),
                    P(others));
                SET(f, action, "Add workers (workers=N, up to the cores) or "
                    "nodes (more `railgun run` processes: the partitions "
                    "spread over them); or make the processor cheaper.");
            } else {
                stage = "worker";
                SET(f, title, "worker %s is saturated (%s busy) while the "
                    "others are at %s", busy_w, P(busy_max), P(others));
                SET(f, action, "Its keys cost more than the others': look "
                    "at the hot keys (railgun_hot_key_share_ratio) and the "
                    "processor's cost per key (hotkey.enable=true names "
                    "the hot keys).");
            }
            SET(f, subject, "worker %s", busy_w);
            if (lane != NULL)
                ADD(f, evidence, "; lane %s takes %s/s of %s/s in lanes",
                    lane, N(lane_max), N(lane_sum));
            value(f, M_W_BUSY "_ratio", busy_max);
            value(f, M_HOT, share);
        } else if (waits > 0 && (fill >= o->busy || waits >= 10)) {
            stage = "dispatcher";
            SET(f, title, "the dispatcher waits on full rings (%s/s, rings "
                "up to %s full) though no worker is saturated", N(waits),
                P(fill));
            SET(f, action, "The workers drain their rings slowly without "
                "being busy: they wait on something else (parks, a "
                "processor that sleeps or blocks on I/O). Check "
                "railgun_worker_parks_total and the processor's blocking "
                "calls; more workers help a blocking processor.");
            value(f, M_D_WAITS "_per_second", waits);
            value(f, M_W_FILL, fill);
        } else {
            stage = "source";
            SET(f, title, "the source is fetch-starved: it delivers %s/s "
                "while lag is %s and every later stage has room", N(in),
                N(lag_last));
            SET(f, action, "Kafka does not deliver faster: check the "
                "brokers and the network, kafka.fetch.max.bytes and "
                "kafka.queued.min.messages, and the partition count (one "
                "node fetches its partitions on one thread; more nodes "
                "fetch in parallel). `railgun bench kafka` measures the "
                "bare consumer on the same cluster.");
        }
        snprintf(f->stage, sizeof(f->stage), "%s", stage);
        if (f->subject[0] == '\0')
            SET(f, subject, "%s", stage);
    }
    if (!worker_named && busy_n > 1 && busy_max >= 0.5 &&
        busy_max > o->node_skew * others &&
        (f = finding(rp, "worker_imbalance", RG_DOCTOR_WARNING, node)) !=
            NULL) {
        SET(f, subject, "worker %s", busy_w);
        SET(f, title, "worker %s is busy %s while the others average %s",
            busy_w, P(busy_max), P(others));
        SET(f, evidence, "%s", ind);
        if (hot != NULL && share >= o->hot_share)
            SET(f, action, "One hot key (%s, %s of the events) lands on "
                "one worker: give hot keys lanes (hotkey.lanes, with "
                "hotkey.enable; a split processor such as the likes job "
                "spreads the key over them), or spread the other keys "
                "over more workers or nodes.", hot, P(share));
        else
            SET(f, action, "Its keys cost more than the others': look at "
                "the hot keys and the processor's cost per key.");
        value(f, M_W_BUSY "_ratio", busy_max);
        value(f, "others_busy_ratio", others);
    }
}

/* ---- the group: skews across partitions and nodes --------------------- */

static void skews(struct rep *rp)
{
    const rg_doctor_opts_t *o = rp->o;
    rg_doctor_report_t *r = rp->r;
    size_t n = r->npartitions;
    double *v = malloc((n ? n : 1) * sizeof(double));
    if (v == NULL) {
        rp->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *topic = r->partitions[i].topic;
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = strcmp(r->partitions[j].topic, topic) != 0;
        if (!first)
            continue;
        /* lag skew */
        size_t m = 0, at = i;
        for (size_t j = i; j < n; j++)
            if (!strcmp(r->partitions[j].topic, topic) &&
                !isnan(r->partitions[j].lag)) {
                v[m++] = r->partitions[j].lag;
                if (r->partitions[j].lag > r->partitions[at].lag ||
                    isnan(r->partitions[at].lag))
                    at = j;
            }
        double mx = r->partitions[at].lag, med = median(v, m);
        rg_doctor_finding_t *f;
        if (m >= 2 && mx >= o->lag_min && mx > o->skew * (med + 100) &&
            (f = finding(rp, "partition_lag_skew", RG_DOCTOR_WARNING,
                         r->partitions[at].node)) != NULL) {
            const rg_doctor_partition_t *p = &r->partitions[at];
            SET(f, subject, "%s[%d]", topic, p->partition);
            snprintf(f->topic, sizeof(f->topic), "%s", topic);
            f->partition = p->partition;
            SET(f, title, "%s[%d] lags %s behind, over %sx the median "
                "partition's %s", topic, p->partition, N(mx), N(o->skew),
                N(med));
            SET(f, evidence, "%s: max %s (%s[%d], lag status %s), median %s "
                "over %zu partitions", M_LAG, N(mx), topic, p->partition,
                rg_lag_status_name(p->status), N(med), m);
            SET(f, action, "One partition falls behind: its keys are hotter "
                "(see partition_rate_skew and the hot keys), its owner is "
                "slower, or it holds a stuck event (lag status STALL). "
                "Isolate hot keys with hot lanes; spread keys over more "
                "partitions.");
            value(f, M_LAG, mx);
            value(f, "median_lag", med);
        }
        /* rate skew: what the partitions receive */
        m = 0;
        at = i;
        for (size_t j = i; j < n; j++)
            if (!strcmp(r->partitions[j].topic, topic) &&
                !isnan(r->partitions[j].produced_rate)) {
                v[m++] = r->partitions[j].produced_rate;
                if (!(r->partitions[at].produced_rate >=
                      r->partitions[j].produced_rate))
                    at = j;
            }
        mx = r->partitions[at].produced_rate;
        med = median(v, m);
        if (m >= 2 && mx >= o->rate_min && mx > o->skew * med &&
            (f = finding(rp, "partition_rate_skew", RG_DOCTOR_WARNING,
                         r->partitions[at].node)) != NULL) {
            const rg_doctor_partition_t *p = &r->partitions[at];
            SET(f, subject, "%s[%d]", topic, p->partition);
            snprintf(f->topic, sizeof(f->topic), "%s", topic);
            f->partition = p->partition;
            SET(f, title, "%s[%d] receives %s events/s, over %sx the median "
                "partition's %s/s", topic, p->partition, N(mx), N(o->skew),
                N(med));
            SET(f, evidence, "%s per second: max %s (%s[%d]), median %s "
                "over %zu partitions", M_HW, N(mx), topic, p->partition,
                N(med), m);
            SET(f, action, "The topic is skewed: the producers' keys (one "
                "hot video) or their partitioner put most events on one "
                "partition, which one node's one fetch serves. Spread the "
                "keys, or let hot lanes isolate the hot key.");
            value(f, M_HW "_per_second", mx);
            value(f, "median_per_second", med);
        }
    }
    free(v);

    /* nodes */
    size_t k = 0;
    double sum = 0, mx = NAN;
    const rg_doctor_node_t *top = NULL;
    for (size_t i = 0; i < r->nnodes; i++) {
        double x = r->nodes[i].processed_rate;
        if (isnan(x))
            x = r->nodes[i].consumed_rate;
        if (isnan(x) || !r->nodes[i].ok)
            continue;
        k++;
        sum += x;
        if (isnan(mx) || x > mx) {
            mx = x;
            top = &r->nodes[i];
        }
    }
    double others = k > 1 ? (sum - mx) / (double)(k - 1) : NAN;
    rg_doctor_finding_t *f;
    if (k > 1 && mx >= o->rate_min && mx > o->node_skew * others &&
        (f = finding(rp, "node_imbalance", RG_DOCTOR_WARNING, "")) != NULL) {
        SET(f, subject, "%s", top->node);
        SET(f, title, "one node processes %s events/s, over %sx the "
            "others' mean of %s/s", N(mx), N(o->node_skew), N(others));
        SET(f, evidence, "processed per second:");
        for (size_t i = 0; i < r->nnodes; i++)
            ADD(f, evidence, "%s %s %s/s (%u partitions, lag %s)",
                i ? "," : "", r->nodes[i].node,
                N(isnan(r->nodes[i].processed_rate) ?
                  r->nodes[i].consumed_rate : r->nodes[i].processed_rate),
                r->nodes[i].partitions, N(r->nodes[i].lag));
        SET(f, action, "Partitions are unevenly assigned or unevenly "
            "loaded: compare the partitions per node and their rates "
            "(partition_rate_skew). A node that consumes nothing is named "
            "by node_not_consuming or node_unreachable.");
        value(f, M_PROCESSED "_per_second", mx);
        value(f, "others_per_second", others);
    }
}

/* ---- the group's registry -------------------------------------------- */

static void registry(struct rep *rp, const rg_doctor_t *d)
{
    rg_doctor_finding_t *f;
    if (d->registry_failed &&
        (f = finding(rp, "registry_unreachable", RG_DOCTOR_CRITICAL, "")) !=
            NULL) {
        SET(f, subject, "redis");
        SET(f, title, "the group's registry in Redis cannot be read: the "
            "nodes cannot be found, and their flow control is degraded");
        SET(f, evidence, "%s", d->registry_err);
        SET(f, action, "Check Redis (flow.redis.*); or name the nodes with "
            "--metrics URL,URL.");
    }
    uint64_t total = 0;
    for (size_t i = 0; i < d->nmembers; i++)
        total += d->members[i].consumed_rate;
    for (size_t i = 0; i < d->nmembers; i++) {
        const rg_doctor_member_t *m = &d->members[i];
        if (m->mode != NULL && strcmp(m->mode, "leased") != 0 &&
            (f = finding(rp, "member_degraded", RG_DOCTOR_WARNING, m->id)) !=
                NULL) {
            SET(f, subject, "%s", m->id);
            SET(f, title, "node %s reports flow mode %s: it cannot lease "
                "from Redis although Redis answers here", m->id, m->mode);
            SET(f, evidence, "registry: mode %s, granted %llu/s, consumed "
                "%llu/s, last lease %lld ms ago, host %s", m->mode,
                (unsigned long long)m->granted,
                (unsigned long long)m->consumed_rate, (long long)m->age_ms,
                m->host);
            SET(f, action, "The node's path to Redis fails (network, "
                "timeouts: flow.redis.timeout.ms) while doctor's does not: "
                "check that node's connectivity.");
        }
        if (d->nmembers > 1 && m->consumed_rate == 0 &&
            (double)total >= rp->o->rate_min &&
            (f = finding(rp, "node_not_consuming", RG_DOCTOR_WARNING,
                         m->id)) != NULL) {
            SET(f, subject, "%s", m->id);
            SET(f, title, "node %s consumed nothing in its last lease "
                "period while the group consumed %llu/s", m->id,
                (unsigned long long)total);
            SET(f, evidence, "registry: consumed 0/s, granted %llu/s, mode "
                "%s, host %s", (unsigned long long)m->granted,
                m->mode ? m->mode : "?", m->host);
            SET(f, action, "It holds no partition (more nodes than "
                "partitions), or it is stuck: scrape it (--metrics) to "
                "tell them apart.");
        }
    }
}

/* ---- run -------------------------------------------------------------- */

int rg_doctor_run(const rg_doctor_t *d, rg_doctor_report_t **out)
{
    *out = NULL;
    rg_doctor_report_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return RG_ENOMEM;
    struct rep rp = {.r = r, .o = &d->o};
    r->nodes = calloc(d->nnodes ? d->nnodes : 1, sizeof(*r->nodes));
    const struct snap **ok = calloc(1, sizeof(*ok));
    if (r->nodes == NULL || ok == NULL) {
        free(ok);
        rg_doctor_report_free(r);
        return RG_ENOMEM;
    }
    for (size_t i = 0; i < d->nnodes && !rp.oom; i++) {
        const struct node *nd = &d->nodes[i];
        rg_doctor_node_t *no = &r->nodes[r->nnodes++];
        snprintf(no->node, sizeof(no->node), "%s", nd->name);
        no->consumed_rate = no->processed_rate = NAN;
        struct view v = {.nd = nd};
        const struct snap **a = realloc(ok, (nd->n ? nd->n : 1) *
                                                sizeof(*ok));
        if (a == NULL) {
            rp.oom = true;
            break;
        }
        ok = a;
        for (size_t j = 0; j < nd->n; j++) {
            if (nd->s[j].p != NULL) {
                ok[v.k++] = &nd->s[j];
                no->scrapes++;
            } else {
                v.failures++;
                no->failures++;
                snprintf(no->error, sizeof(no->error), "%s", nd->s[j].err);
            }
        }
        v.ok = ok;
        v.last_failed = nd->n > 0 && nd->s[nd->n - 1].p == NULL;
        v.last_err = v.last_failed ? nd->s[nd->n - 1].err : NULL;
        no->ok = nd->n > 0 && !v.last_failed;
        if (v.last_failed || nd->n == 0) {
            rg_doctor_finding_t *f = finding(&rp, "node_unreachable",
                                             RG_DOCTOR_CRITICAL, nd->name);
            if (f != NULL) {
                SET(f, subject, "node");
                SET(f, title, "the node does not answer its metrics "
                    "endpoint");
                SET(f, evidence, "%u of %zu scrapes failed; the last: %s",
                    v.failures, nd->n, v.last_err ? v.last_err :
                    "no scrape made");
                if (v.k > 0)
                    ADD(f, evidence, "; it last answered %s s before the "
                        "end", N(nd->s[nd->n - 1].t - v.ok[v.k - 1]->t));
                SET(f, action, "Check the process: running, paused "
                    "(SIGSTOP), or too loaded to answer? And its "
                    "metrics.listen address. Its partitions move to the "
                    "group's other nodes after kafka.session.timeout.ms.");
            }
        }
        if (v.k == 0)
            continue;
        v.first = v.ok[0]->p;
        v.last = v.ok[v.k - 1]->p;
        v.dt = v.ok[v.k - 1]->t - v.ok[0]->t;
        no->window_s = v.dt;
        if (v.dt > r->window_s)
            r->window_s = v.dt;
        if (!v.last_failed)
            degraded(&rp, &v);
        size_t from = r->npartitions;
        partitions(&rp, &v, no);
        if (!v.last_failed) {
            retries(&rp, &v);
            consumption(&rp, &v, no, from);
        }
    }
    free(ok);
    if (!rp.oom)
        skews(&rp);
    if (!rp.oom)
        registry(&rp, d);
    if (rp.oom) {
        rg_doctor_report_free(r);
        return RG_ENOMEM;
    }
    /* critical first, in the order found within a severity */
    for (size_t i = 1; i < r->nfindings; i++) {
        rg_doctor_finding_t x = r->findings[i];
        size_t j = i;
        while (j > 0 && r->findings[j - 1].severity < x.severity) {
            r->findings[j] = r->findings[j - 1];
            j--;
        }
        r->findings[j] = x;
    }
    *out = r;
    return 0;
}

void rg_doctor_report_free(rg_doctor_report_t *r)
{
    if (r == NULL)
        return;
    free(r->findings);
    free(r->partitions);
    free(r->nodes);
    free(r);
}

const rg_doctor_finding_t *rg_doctor_find(const rg_doctor_report_t *r,
                                          const char *id, const char *node)
{
    for (size_t i = 0; i < r->nfindings; i++)
        if (!strcmp(r->findings[i].id, id) &&
            (node == NULL || !strcmp(r->findings[i].node, node)))
            return &r->findings[i];
    return NULL;
}
