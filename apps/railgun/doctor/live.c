/*
 * live.c - doctor over the node's own registry (see live.h).
 *
 * Invariants: the ring holds the renders of the last window (oldest
 * first), at most `cap` of them, each with its CLOCK_MONOTONIC time; it
 * and `stopping` are guarded by mu. The sampler renders outside mu (the
 * registry has its own), then swaps the text in under mu. A request
 * parses the kept texts under mu: requests are serialized with each
 * other and with the sampler's swap, never with the hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "live.h"
#include "railgun/error.h"

struct sample {
    double t;
    char *text;
    size_t len;
};

struct rg_doctor_live_s {
    rg_metrics_t *m;
    char node[256];
    rg_doctor_opts_t o;
    unsigned interval_ms, window_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    pthread_t th;
    struct sample *ring;
    size_t cap, head, n; /* ring[(head + i) % cap], i < n, oldest first */
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Renders the registry and keeps it, dropping what left the window. */
static void sample(rg_doctor_live_t *l)
{
    char *text = NULL;
    size_t len = 0;
    if (rg_metrics_render(l->m, RG_METRICS_TEXT, &text, &len) != 0)
        return; /* out of memory: this sample is skipped */
    double t = mono();
    pthread_mutex_lock(&l->mu);
    if (l->n == l->cap) {
        free(l->ring[l->head].text);
        l->head = (l->head + 1) % l->cap;
        l->n--;
    }
    l->ring[(l->head + l->n) % l->cap] = (struct sample){t, text, len};
    l->n++;
    /* keep two samples at least, else the window's */
    while (l->n > 2 && t - l->ring[l->head].t > l->window_ms / 1e3) {
        free(l->ring[l->head].text);
        l->head = (l->head + 1) % l->cap;
        l->n--;
    }
    pthread_mutex_unlock(&l->mu);
}

static void *sampler(void *arg)
{
    rg_doctor_live_t *l = arg;
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    pthread_mutex_lock(&l->mu);
    while (!l->stopping) {
        at.tv_sec += l->interval_ms / 1000;
        at.tv_nsec += (long)(l->interval_ms % 1000) * 1000000;
        if (at.tv_nsec >= 1000000000) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000;
        }
        while (!l->stopping &&
               pthread_cond_timedwait(&l->cv, &l->mu, &at) != ETIMEDOUT)
            ;
        if (l->stopping)
            break;
        pthread_mutex_unlock(&l->mu);
        sample(l);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

rg_doctor_live_t *rg_doctor_live_new(rg_metrics_t *m, const char *node,
                                     const rg_doctor_opts_t *o,
                                     unsigned interval_ms,
                                     unsigned window_ms, char *errstr,
                                     size_t errstr_size)
{
    if (m == NULL || interval_ms < 50 || interval_ms > 60000 ||
        window_ms < interval_ms || window_ms > 600000) {
        snprintf(errstr, errstr_size, "doctor: interval %u ms (50..60000) "
                 "and window %u ms (interval..600000) out of range",
                 interval_ms, window_ms);
        return NULL;
    }
    rg_doctor_live_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(errstr, errstr_size, "doctor: out of memory");
        return NULL;
    }
    l->m = m;
    snprintf(l->node, sizeof(l->node), "%s", node ? node : "self");
    if (o != NULL)
        l->o = *o;
    else
        rg_doctor_opts_init(&l->o);
    l->interval_ms = interval_ms;
    l->window_ms = window_ms;
    l->cap = window_ms / interval_ms + 2;
    l->ring = calloc(l->cap, sizeof(*l->ring));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int e = l->ring == NULL ? ENOMEM : pthread_mutex_init(&l->mu, NULL);
    if (e == 0 && (e = pthread_cond_init(&l->cv, &ca)) != 0)
        pthread_mutex_destroy(&l->mu);
    pthread_condattr_destroy(&ca);
    if (e != 0) {
        free(l->ring);
        free(l);
        snprintf(errstr, errstr_size, "doctor: %s", strerror(e));
        return NULL;
    }
    sample(l);
    if ((e = pthread_create(&l->th, NULL, sampler, l)) != 0) {
        snprintf(errstr, errstr_size, "doctor: cannot start its thread: %s",
                 strerror(e));
        l->th = 0;
        l->stopping = true;
        rg_doctor_live_destroy(l);
        return NULL;
    }
    return l;
}

void rg_doctor_live_destroy(rg_doctor_live_t *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    bool running = !l->stopping;
    l->stopping = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (running)
        pthread_join(l->th, NULL);
    for (size_t i = 0; i < l->n; i++)
        free(l->ring[(l->head + i) % l->cap].text);
    free(l->ring);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

int rg_doctor_live_json(rg_doctor_live_t *l, char **out, size_t *len)
{
    *out = NULL;
    rg_doctor_t *d = rg_doctor_new(&l->o);
    if (d == NULL)
        return RG_ENOMEM;
    int n = rg_doctor_node(d, l->node), rc = n < 0 ? n : 0;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        const struct sample *s = &l->ring[(l->head + i) % l->cap];
        rg_prom_t *p = NULL;
        char err[256];
        if (rg_prom_parse(s->text, s->len, &p, err, sizeof(err)) == 0)
            rc = rg_doctor_scrape(d, n, s->t, p);
        else /* the registry's own render: cannot happen, but say so */
            rc = rg_doctor_scrape_failed(d, n, s->t, err);
    }
    pthread_mutex_unlock(&l->mu);
    rg_doctor_report_t *r = NULL;
    if (rc == 0)
        rc = rg_doctor_run(d, &r);
    if (rc == 0)
        rc = rg_doctor_report_json(r, out, len);
    rg_doctor_report_free(r);
    rg_doctor_destroy(d);
    return rc;
}

void rg_doctor_live_http(rg_http_request_t *req, void *opaque)
{
    char *json;
    size_t len;
    if (rg_doctor_live_json(opaque, &json, &len) != 0) {
        rg_http_replyf(req, 500, NULL, "doctor: out of memory\n");
        return;
    }
    rg_http_reply_take(req, 200, "application/json", json, len);
    rg_http_reply_header(req, "Cache-Control", "no-store");
}
