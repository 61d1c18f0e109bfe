/*
 * report.c - a doctor report as JSON (`railgun doctor --json`, GET
 * /doctor.json) and as text for a terminal (see doctor.h; the JSON shape
 * is documented in NOTES-ctl.md, "doctor.json").
 *
 * JSON numbers: NaN (a metric the node does not export, a rate from one
 * scrape) is null; offsets and counts are integers.
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

struct buf {
    char *s;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *x = realloc(b->s, cap);
        if (x == NULL) {
            b->oom = true;
            return;
        }
        b->s = x;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A JSON string; bytes >= 0x80 pass as they are (the inputs are UTF-8:
 * metric label values are, and our texts are ASCII). */
static void str(struct buf *b, const char *s)
{
    put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(b, run, (size_t)(s - run));
        if (c == '"')
            puts_(b, "\\\"");
        else if (c == '\\')
            puts_(b, "\\\\");
        else if (c == '\n')
            puts_(b, "\\n");
        else
            putf(b, "\\u%04x", c);
        run = s + 1;
    }
    put(b, run, (size_t)(s - run));
    put(b, "\"", 1);
}

static void number(struct buf *b, double v)
{
    if (!isfinite(v))
        puts_(b, "null");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        putf(b, "%.0f", v);
    else
        putf(b, "%.6g", v);
}

static void key(struct buf *b, const char *k, bool first)
{
    if (!first)
        put(b, ",", 1);
    str(b, k);
    put(b, ":", 1);
}

static const char *severity(int s)
{
    return s == RG_DOCTOR_CRITICAL ? "critical" : "warning";
}

int rg_doctor_report_json(const rg_doctor_report_t *r, char **out,
                          size_t *len)
{
    struct buf b = {0};
    *out = NULL;
    puts_(&b, "{\"version\":1,\"healthy\":");
    puts_(&b, r->nfindings == 0 ? "true" : "false");
    key(&b, "window_seconds", false);
    number(&b, r->window_s);
    unsigned crit = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        crit += r->findings[i].severity == RG_DOCTOR_CRITICAL;
    key(&b, "critical", false);
    putf(&b, "%u", crit);
    key(&b, "warnings", false);
    putf(&b, "%zu", r->nfindings - crit);
    key(&b, "nodes", false);
    put(&b, "[", 1);
    for (size_t i = 0; i < r->nnodes; i++) {
        const rg_doctor_node_t *n = &r->nodes[i];
        puts_(&b, i ? ",{" : "{");
        key(&b, "node", true);
        str(&b, n->node);
        key(&b, "ok", false);
        puts_(&b, n->ok ? "true" : "false");
        key(&b, "scrapes", false);
        putf(&b, "%u", n->scrapes);
        key(&b, "failures", false);
        putf(&b, "%u", n->failures);
        key(&b, "error", false);
        str(&b, n->error);
        key(&b, "window_seconds", false);
        number(&b, n->window_s);
        key(&b, "consumed_per_second", false);
        number(&b, n->consumed_rate);
        key(&b, "processed_per_second", false);
        number(&b, n->processed_rate);
        key(&b, "lag", false);
        number(&b, n->lag);
        key(&b, "partitions", false);
        putf(&b, "%u", n->partitions);
        put(&b, "}", 1);
    }
    put(&b, "]", 1);
    key(&b, "findings", false);
    put(&b, "[", 1);
    for (size_t i = 0; i < r->nfindings; i++) {
        const rg_doctor_finding_t *f = &r->findings[i];
        puts_(&b, i ? ",{" : "{");
        key(&b, "id", true);
        str(&b, f->id);
        key(&b, "severity", false);
        str(&b, severity(f->severity));
        key(&b, "node", false);
        str(&b, f->node);
        key(&b, "subject", false);
        str(&b, f->subject);
        key(&b, "stage", false);
        if (f->stage[0])
            str(&b, f->stage);
        else
            puts_(&b, "null");
        key(&b, "topic", false);
        if (f->topic[0])
            str(&b, f->topic);
        else
            puts_(&b, "null");
        key(&b, "partition", false);
        if (f->partition >= 0)
            putf(&b, "%" PRId32, f->partition);
        else
            puts_(&b, "null");
        key(&b, "offset", false);
        if (f->offset >= 0)
            putf(&b, "%" PRId64, f->offset);
        else
            puts_(&b, "null");
        key(&b, "title", false);
        str(&b, f->title);
        key(&b, "evidence", false);
        str(&b, f->evidence);
        key(&b, "action", false);
        str(&b, f->action);
        key(&b, "values", false);
        put(&b, "{", 1);
        for (unsigned j = 0; j < f->nvalues; j++) {
            key(&b, f->values[j].name, j == 0);
            number(&b, f->values[j].value);
        }
        puts_(&b, "}}");
    }
    put(&b, "]", 1);
    key(&b, "partitions", false);
    put(&b, "[", 1);
    for (size_t i = 0; i < r->npartitions; i++) {
        const rg_doctor_partition_t *p = &r->partitions[i];
        puts_(&b, i ? ",{" : "{");
        key(&b, "node", true);
        str(&b, p->node);
        key(&b, "topic", false);
        str(&b, p->topic);
        key(&b, "partition", false);
        putf(&b, "%" PRId32, p->partition);
        key(&b, "status", false);
        str(&b, rg_lag_status_name(p->status));
        key(&b, "lag", false);
        number(&b, p->lag);
        key(&b, "committed_offset", false);
        number(&b, p->committed);
        key(&b, "high_watermark", false);
        number(&b, p->high_watermark);
        key(&b, "consumed_per_second", false);
        number(&b, p->consumed_rate);
        key(&b, "produced_per_second", false);
        number(&b, p->produced_rate);
        key(&b, "oldest_pending_age_seconds", false);
        number(&b, p->oldest_age_s);
        key(&b, "pending_events", false);
        number(&b, p->pending);
        key(&b, "paused", false);
        puts_(&b, p->paused ? "true" : "false");
        put(&b, "}", 1);
    }
    puts_(&b, "]}\n");
    if (b.oom) {
        free(b.s);
        return RG_ENOMEM;
    }
    *out = b.s;
    if (len != NULL)
        *len = b.len;
    return 0;
}

void rg_doctor_report_text(const rg_doctor_report_t *r, FILE *f)
{
    unsigned scrapes = 0;
    for (size_t i = 0; i < r->nnodes; i++)
        scrapes += r->nodes[i].scrapes;
    unsigned count[RG_LAG_UNKNOWN + 1] = {0};
    for (size_t i = 0; i < r->npartitions; i++)
        count[r->partitions[i].status]++;
    if (r->nfindings == 0) {
        fprintf(f, "railgun doctor: healthy: %zu node%s, %zu partition%s "
                "(%u OK), %u scrapes over %.1f s\n", r->nnodes,
                r->nnodes == 1 ? "" : "s", r->npartitions,
                r->npartitions == 1 ? "" : "s", count[RG_LAG_OK], scrapes,
                r->window_s);
        return;
    }
    fprintf(f, "railgun doctor: %zu finding%s: %zu node%s, %zu "
            "partition%s, %u scrapes over %.1f s\n", r->nfindings,
            r->nfindings == 1 ? "" : "s", r->nnodes,
            r->nnodes == 1 ? "" : "s", r->npartitions,
            r->npartitions == 1 ? "" : "s", scrapes, r->window_s);
    for (size_t i = 0; i < r->nfindings; i++) {
        const rg_doctor_finding_t *x = &r->findings[i];
        fprintf(f, "\n%s %s%s%s%s%s  %s\n", x->severity == RG_DOCTOR_CRITICAL ?
                "CRITICAL" : "WARNING ", x->id, x->stage[0] ? " (" : "",
                x->stage, x->stage[0] ? ")" : "", x->node[0] ? "" : "",
                x->node[0] ? x->node : "the group");
        fprintf(f, "  %s\n", x->title);
        fprintf(f, "  evidence: %s\n", x->evidence);
        fprintf(f, "  do: %s\n", x->action);
    }
    fprintf(f, "\nlag status:");
    for (int s = 0; s <= RG_LAG_UNKNOWN; s++)
        if (count[s])
            fprintf(f, " %s %u", rg_lag_status_name(s), count[s]);
    fprintf(f, "%s\n", r->npartitions ? "" : " no partitions seen");
}
