/*
 * prom.c - the Prometheus text format parser (see prom.h).
 *
 * One pass over the text. Every string (names, unescaped label values)
 * goes into one arena allocated up front at 2 x len + 1 bytes: a string
 * is never longer than its source bytes, and there are fewer strings than
 * source bytes (each NUL stands for at least one separator), so the arena
 * never moves and its pointers stay valid. Labels go into one growable
 * array; samples keep their first label's index until the end of the
 * parse, when the pointers are set (the array may move while it grows).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "prom.h"
#include "railgun/error.h"

struct rg_prom_type_s {
    const char *name;
    const char *type;
};

struct parser {
    const char *s, *end;   /* the current line: [s, end) */
    size_t line;
    char *arena;
    size_t arena_len;
    rg_prom_t *p;
    size_t samples_cap, labels_cap, types_cap, nlabels;
    size_t *first_label;   /* per sample, until the fix-up */
    size_t first_cap;
    char *err;
    size_t err_size;
};

static int fail(struct parser *ps, const char *why)
{
    if (ps->err != NULL && ps->err_size > 0)
        snprintf(ps->err, ps->err_size, "line %zu: %s", ps->line, why);
    return RG_EDECODE;
}

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static void skip_ws(struct parser *ps)
{
    while (ps->s < ps->end && (*ps->s == ' ' || *ps->s == '\t'))
        ps->s++;
}

/* Copies [a, b) into the arena as a string. */
static const char *keep(struct parser *ps, const char *a, const char *b)
{
    char *d = ps->arena + ps->arena_len;
    memcpy(d, a, (size_t)(b - a));
    d[b - a] = '\0';
    ps->arena_len += (size_t)(b - a) + 1;
    return d;
}

/* A metric or label name at s (label names take no ':'); NULL if none. */
static const char *take_name(struct parser *ps, bool label)
{
    const char *a = ps->s;
    if (ps->s >= ps->end || !name_start(*ps->s) || (label && *ps->s == ':'))
        return NULL;
    while (ps->s < ps->end && name_char(*ps->s) && !(label && *ps->s == ':'))
        ps->s++;
    return keep(ps, a, ps->s);
}

/* A quoted label value with its escapes, s at the opening quote. */
static const char *take_value(struct parser *ps)
{
    ps->s++; /* the quote */
    char *d = ps->arena + ps->arena_len, *w = d;
    while (ps->s < ps->end && *ps->s != '"') {
        char c = *ps->s++;
        if (c == '\\') {
            if (ps->s >= ps->end)
                return NULL;
            c = *ps->s++;
            if (c == 'n')
                c = '\n';
            else if (c != '\\' && c != '"')
                return NULL;
        }
        *w++ = c;
    }
    if (ps->s >= ps->end)
        return NULL;
    ps->s++; /* the closing quote */
    *w = '\0';
    ps->arena_len += (size_t)(w - d) + 1;
    return d;
}

static int grow(void **a, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *n = realloc(*a, c * size);
    if (n == NULL)
        return RG_ENOMEM;
    *a = n;
    *cap = c;
    return 0;
}

/* `# TYPE name type`: kept; other comments are skipped. */
static int comment(struct parser *ps)
{
    ps->s++;
    skip_ws(ps);
    if (ps->end - ps->s < 5 || memcmp(ps->s, "TYPE", 4) != 0 ||
        (ps->s[4] != ' ' && ps->s[4] != '\t'))
        return 0;
    ps->s += 4;
    skip_ws(ps);
    const char *name = take_name(ps, false);
    if (name == NULL)
        return fail(ps, "TYPE without a metric name");
    skip_ws(ps);
    const char *a = ps->s;
    while (ps->s < ps->end && *ps->s != ' ' && *ps->s != '\t')
        ps->s++;
    if (a == ps->s)
        return fail(ps, "TYPE without a type");
    const char *type = keep(ps, a, ps->s);
    if (strcmp(type, "counter") && strcmp(type, "gauge") &&
        strcmp(type, "histogram") && strcmp(type, "summary") &&
        strcmp(type, "untyped"))
        return fail(ps, "TYPE is not counter, gauge, histogram, summary or "
                        "untyped");
    rg_prom_t *p = ps->p;
    if (grow((void **)&p->types, &ps->types_cap, p->ntypes + 1,
             sizeof(*p->types)) != 0)
        return RG_ENOMEM;
    p->types[p->ntypes++] = (struct rg_prom_type_s){name, type};
    return 0;
}

static int sample(struct parser *ps)
{
    rg_prom_t *p = ps->p;
    const char *name = take_name(ps, false);
    if (name == NULL)
        return fail(ps, "expected a metric name");
    if (p->n >= RG_PROM_SAMPLES_MAX) {
        if (ps->err != NULL && ps->err_size > 0)
            snprintf(ps->err, ps->err_size, "more than %d samples",
                     RG_PROM_SAMPLES_MAX);
        return RG_ERANGE;
    }
    size_t first = ps->nlabels;
    unsigned nl = 0;
    const char *ws = ps->s;
    skip_ws(ps);
    if (ps->s < ps->end && *ps->s == '{') {
        ps->s++;
        for (;;) {
            skip_ws(ps);
            if (ps->s < ps->end && *ps->s == '}') {
                ps->s++;
                break;
            }
            const char *ln = take_name(ps, true);
            if (ln == NULL)
                return fail(ps, "expected a label name");
            skip_ws(ps);
            if (ps->s >= ps->end || *ps->s != '=')
                return fail(ps, "expected '=' after a label name");
            ps->s++;
            skip_ws(ps);
            if (ps->s >= ps->end || *ps->s != '"')
                return fail(ps, "expected a quoted label value");
            const char *lv = take_value(ps);
            if (lv == NULL)
                return fail(ps, "unterminated label value or bad escape");
            if (nl == RG_PROM_LABELS_MAX) {
                if (ps->err != NULL && ps->err_size > 0)
                    snprintf(ps->err, ps->err_size, "line %zu: more than %d "
                             "labels", ps->line, RG_PROM_LABELS_MAX);
                return RG_ERANGE;
            }
            if (grow((void **)&p->labels, &ps->labels_cap, ps->nlabels + 1,
                     sizeof(*p->labels)) != 0)
                return RG_ENOMEM;
            p->labels[ps->nlabels++] = (rg_prom_label_t){ln, lv};
            nl++;
            skip_ws(ps);
            if (ps->s < ps->end && *ps->s == ',')
                ps->s++;
            else if (ps->s >= ps->end || *ps->s != '}')
                return fail(ps, "expected ',' or '}' after a label");
        }
        ws = ps->s;
        skip_ws(ps);
    }
    if (ps->s == ws)
        return fail(ps, "expected a blank before the value");
    const char *a = ps->s;
    while (ps->s < ps->end && *ps->s != ' ' && *ps->s != '\t')
        ps->s++;
    char num[64];
    size_t n = (size_t)(ps->s - a);
    if (n == 0 || n >= sizeof(num))
        return fail(ps, "expected a value");
    memcpy(num, a, n);
    num[n] = '\0';
    char *e = NULL;
    double v = strtod(num, &e);
    if (e != num + n)
        return fail(ps, "the value is not a number");
    skip_ws(ps);
    if (ps->s < ps->end) { /* a timestamp: an integer, ignored */
        const char *t = ps->s;
        if (*ps->s == '-')
            ps->s++;
        while (ps->s < ps->end && *ps->s >= '0' && *ps->s <= '9')
            ps->s++;
        if (ps->s == t)
            return fail(ps, "trailing text after the value");
        skip_ws(ps);
        if (ps->s < ps->end)
            return fail(ps, "trailing text after the timestamp");
    }
    if (grow((void **)&p->samples, &ps->samples_cap, p->n + 1,
             sizeof(*p->samples)) != 0 ||
        grow((void **)&ps->first_label, &ps->first_cap, p->n + 1,
             sizeof(*ps->first_label)) != 0)
        return RG_ENOMEM;
    size_t *fl = ps->first_label;
    fl[p->n] = first;
    p->samples[p->n++] = (rg_prom_sample_t){name, NULL, nl, v};
    return 0;
}

int rg_prom_parse(const char *text, size_t len, rg_prom_t **out,
                  char *errstr, size_t errstr_size)
{
    if (out == NULL || (text == NULL && len > 0))
        return RG_EINVAL;
    *out = NULL;
    rg_prom_t *p = calloc(1, sizeof(*p));
    struct parser ps = {.p = p, .err = errstr, .err_size = errstr_size};
    if (p == NULL || (p->arena = malloc(2 * len + 1)) == NULL) {
        free(p);
        return RG_ENOMEM;
    }
    ps.arena = p->arena;
    int rc = 0;
    const char *s = text, *end = text + len;
    while (rc == 0 && s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        ps.line++;
        ps.s = s;
        ps.end = le;
        skip_ws(&ps);
        if (ps.s < ps.end && memchr(ps.s, '\0', (size_t)(ps.end - ps.s)))
            rc = fail(&ps, "a NUL byte");
        else if (ps.s == ps.end)
            ;
        else if (*ps.s == '#')
            rc = comment(&ps);
        else
            rc = sample(&ps);
        s = nl ? nl + 1 : end;
    }
    if (rc == 0)
        for (size_t i = 0; i < p->n; i++)
            p->samples[i].labels = p->labels + ps.first_label[i];
    free(ps.first_label);
    if (rc != 0) {
        rg_prom_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void rg_prom_free(rg_prom_t *p)
{
    if (p == NULL)
        return;
    free(p->samples);
    free(p->labels);
    free(p->types);
    free(p->arena);
    free(p);
}

const char *rg_prom_label(const rg_prom_sample_t *s, const char *name)
{
    for (unsigned i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}

size_t rg_prom_next(const rg_prom_t *p, const char *name, size_t from)
{
    for (size_t i = from; i < p->n; i++)
        if (strcmp(p->samples[i].name, name) == 0)
            return i;
    return p->n;
}

const char *rg_prom_type(const rg_prom_t *p, const char *name)
{
    for (size_t i = 0; i < p->ntypes; i++)
        if (strcmp(p->types[i].name, name) == 0)
            return p->types[i].type;
    return NULL;
}
