/*
 * metrics.c - the metrics registry and its renderers (see railgun/metrics.h).
 *
 * Layout
 *   registry -> families (a list, in the order added) -> owned series
 *   (an array of pointers, so cells never move) -> cells (writers x
 *   stride bytes, 64-byte aligned, see railgun/metrics_pvt.h).
 *   Collected families keep, instead, one render's samples: an array of
 *   samples and an arena holding their label values, both reused from
 *   render to render (so a steady scrape allocates nothing).
 *
 * Invariants
 *   - Everything here except the cells is guarded by m->mu; value calls
 *     never take it, and a render only loads cells (relaxed: see
 *     metrics_pvt.h), so the hot path never waits for a scrape.
 *   - A family holds at most max_series series plus the overflow series;
 *     a collected family at most max_series samples per render. Label
 *     values are sanitized (valid UTF-8, at most RG_METRICS_LABEL_VALUE_MAX
 *     bytes) before they are compared or stored, so equal stored values
 *     mean one series, and every value renders as valid text and JSON.
 *   - The label-set index (struct lindex) maps a label set's hash to its
 *     series or sample; a sample slot is valid only when its generation
 *     equals the family's current render generation, so a render starts
 *     with an empty index without clearing it.
 *   - The dropped counter is updated only under m->mu, so its one cell
 *     has a single writer at a time (the mutex orders them): _sw is right.
 */
#define _GNU_SOURCE /* strdup */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/metrics.h"

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "metric cells need lock-free 64-bit atomics");

#define HELP_MAX 1024         /* bytes kept of a help text */
#define PREFIX_MAX 32

/* the default histogram bounds: 1, 2.5, 5 per decade, 10 us .. 10 s */
static const double default_bounds[] = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define DEFAULT_NBOUNDS (sizeof(default_bounds) / sizeof(default_bounds[0]))

enum { V_U64, V_I64, V_F64, V_HIST };

struct series {
    char *values[RG_METRICS_LABELS_MAX]; /* sanitized; one allocation */
    unsigned char *cells;                /* writers x stride bytes */
};

/* One collected sample of the current render. */
struct sample {
    size_t labels;  /* arena offset of nlabels NUL-terminated values */
    size_t hist;    /* histograms: index of its counts in f->hcounts */
    int type;
    union {
        uint64_t u;
        int64_t i;
        double d;
    } v;
};

/* Open addressing over label-set hashes: slot = index + 1, 0 empty. */
struct lindex {
    uint32_t *slot;
    uint32_t *gen;  /* collected families only: the render of each slot */
    uint32_t cap;   /* a power of two, or 0 */
    uint32_t count;
};

struct rg_metric_family_s {
    rg_metrics_t *m;
    struct rg_metric_family_s *next;
    rg_metric_kind_t kind;
    bool collected;
    char name[RG_METRICS_NAME_MAX + 1];   /* as exposed (counters: _total) */
    char *help;
    char unit[32];
    unsigned nlabels;
    char *labels[RG_METRICS_LABELS_MAX];
    unsigned max_series, writers;
    double *bounds;     /* histograms: nbounds + 1, the last +Inf */
    char (*le)[32];     /* the bounds as le label values, "+Inf" last */
    int64_t *bounds_ns; /* the same in ns (see rg__histogram_meta) */
    uint32_t nbounds;
    struct rg__histogram_meta *meta;
    size_t stride;      /* bytes per cell */
    /* owned */
    struct series **series;
    uint32_t nseries, series_cap;
    struct series *overflow;
    struct lindex index;
    /* collected: the current render's samples */
    struct sample *samples;
    uint32_t nsamples, samples_cap;
    char *arena;
    size_t arena_len, arena_cap;
    uint64_t *hcounts;
    size_t nhcounts, hcounts_cap;
    uint32_t gen;
};

struct rg_metrics_scrape_s {
    rg_metrics_t *m;
    bool live;
};

struct collector {
    rg_metrics_collect_cb *cb;
    void *opaque;
};

struct rg_metrics_s {
    pthread_mutex_t mu;
    char prefix[PREFIX_MAX + 1];
    rg_metric_family_t *head, *tail;
    struct collector *collectors;
    unsigned ncollectors, collectors_cap;
    rg_counter_t *dropped;
    struct rg_metrics_scrape_s scrape;
    size_t last_len; /* the last render's length: the next one's first
                        allocation (guarded by mu) */
};

/* ---- text helpers --------------------------------------------------- */

static void errf(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *errstr, size_t size, const char *fmt, ...)
{
    if (errstr == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/*
 * Copies in to out as valid UTF-8 of at most max bytes (plus a NUL; out
 * has max + 1 bytes): an invalid byte becomes U+FFFD, and the copy stops
 * before a character that would not fit whole. Returns the length.
 */
static size_t sanitize(const char *in, char *out, size_t max)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t len = 0;
    while (*s != 0) {
        size_t n = utf8_seq(s);
        const unsigned char *src = s;
        size_t take = n;
        if (n == 0) {
            src = (const unsigned char *)"\xef\xbf\xbd";
            take = 3;
            n = 1;
        }
        if (len + take > max)
            break;
        memcpy(out + len, src, take);
        len += take;
        s += n;
    }
    out[len] = 0;
    return len;
}

static bool name_ok(const char *s, bool allow_empty)
{
    if (*s == 0)
        return allow_empty;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- output: a growable buffer or the caller's fixed one ------------ */

struct out {
    char *buf;
    size_t len;     /* bytes produced (may exceed cap when fixed) */
    size_t cap;     /* bytes at buf */
    bool grow;
    bool oom;
};

/* The slow path of put(): grow (growable), or count what does not fit. */
static void put_slow(struct out *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap && o->grow) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *b = realloc(o->buf, cap);
        if (b == NULL) {
            o->oom = true;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    if (o->len < o->cap) {
        size_t room = o->cap - o->len - 1; /* keep one byte for the NUL */
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static inline void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n < o->cap) { /* fits, with the NUL */
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        return;
    }
    put_slow(o, s, n);
}

static inline void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static inline void putc_(struct out *o, char c)
{
    if (o->len + 1 < o->cap) {
        o->buf[o->len++] = c;
        return;
    }
    put_slow(o, &c, 1);
}

static void finish(struct out *o)
{
    if (o->cap > 0)
        o->buf[o->len < o->cap ? o->len : o->cap - 1] = 0;
}

/* Decimal digits of v into the end of tmp[24]; returns the first. */
static char *u64_digits(char *tmp, uint64_t v)
{
    char *p = tmp + 23;
    *p = 0;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

/* The shortest decimal that reads back as d; integers without a point. */
static void fmt_double(char *tmp, size_t size, double d)
{
    /* the range test first: converting NaN or a huge d to int64 is UB */
    if (d > -9007199254740992.0 && d < 9007199254740992.0 &&
        d == (double)(int64_t)d && !(d == 0 && signbit(d))) {
        /* an integer below 2^53: exact as digits, no snprintf/strtod */
        char digits[24];
        int64_t i = (int64_t)d;
        const char *p = u64_digits(digits, i < 0 ? 0 - (uint64_t)i :
                                                   (uint64_t)i);
        size_t n = (size_t)(digits + 23 - p), at = i < 0;
        if (n + at + 1 <= size) {
            tmp[0] = '-';
            memcpy(tmp + at, p, n + 1);
            return;
        }
    }
    if (isnan(d)) {
        snprintf(tmp, size, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(tmp, size, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, size, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            return;
    }
}

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    const char *p = u64_digits(tmp, v);
    put(o, p, (size_t)(tmp + 23 - p));
}

static void put_i64(struct out *o, int64_t v)
{
    if (v < 0)
        putc_(o, '-');
    put_u64(o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

static void put_f64(struct out *o, double v, bool json)
{
    char tmp[40];
    fmt_double(tmp, sizeof(tmp), v);
    if (json && !isfinite(v)) {
        putc_(o, '"');
        puts_(o, tmp);
        putc_(o, '"');
    } else {
        puts_(o, tmp);
    }
}

/* Exposition escaping: help escapes \ and newline; label values also ". */
static void put_text_escaped(struct out *o, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quote)
            esc = "\\\"";
        if (esc != NULL) {
            put(o, run, (size_t)(s - run));
            puts_(o, esc);
            run = s + 1;
        }
    }
    put(o, run, (size_t)(s - run));
}

/* A JSON string (input is valid UTF-8: sanitized when stored). */
static void put_json_str(struct out *o, const char *s)
{
    putc_(o, '"');
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(o, run, (size_t)(s - run));
        char tmp[8];
        if (c == '"')
            puts_(o, "\\\"");
        else if (c == '\\')
            puts_(o, "\\\\");
        else if (c == '\n')
            puts_(o, "\\n");
        else if (c == '\t')
            puts_(o, "\\t");
        else if (c == '\r')
            puts_(o, "\\r");
        else {
            snprintf(tmp, sizeof(tmp), "\\u%04x", c);
            puts_(o, tmp);
        }
        run = s + 1;
    }
    put(o, run, (size_t)(s - run));
    putc_(o, '"');
}

/* ---- label-set index ------------------------------------------------ */

static uint64_t labels_hash(char *const *values, unsigned n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (unsigned i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: no UTF-8 byte */
    }
    return h;
}

typedef bool (lindex_eq)(const rg_metric_family_t *f, uint32_t idx,
                         char *const *values);

/* The slot holding this label set, or the empty slot where it goes. */
static uint32_t lindex_find(const struct lindex *x, const rg_metric_family_t *f,
                            uint64_t h, char *const *values, lindex_eq *eq,
                            uint32_t gen, bool *found)
{
    uint32_t mask = x->cap - 1, i = (uint32_t)h & mask;
    for (;; i = (i + 1) & mask) {
        bool live = x->slot[i] != 0 && (x->gen == NULL || x->gen[i] == gen);
        if (!live) {
            *found = false;
            return i;
        }
        if (eq(f, x->slot[i] - 1, values)) {
            *found = true;
            return i;
        }
    }
}

/* Makes room for one more entry (load <= 1/2). `hash_of` rehashes
 * entry idx. Returns 0 or RG_ENOMEM (index unchanged). */
static int lindex_reserve(struct lindex *x, const rg_metric_family_t *f,
                          uint32_t gen,
                          uint64_t (*hash_of)(const rg_metric_family_t *,
                                              uint32_t))
{
    if (x->cap != 0 && (x->count + 1) * 2 <= x->cap)
        return 0;
    uint32_t cap = x->cap ? x->cap * 2 : 16;
    uint32_t *slot = calloc(cap, sizeof(*slot));
    uint32_t *gens = x->gen != NULL || f->collected ?
                     calloc(cap, sizeof(*gens)) : NULL;
    if (slot == NULL || (f->collected && gens == NULL)) {
        free(slot);
        free(gens);
        return RG_ENOMEM;
    }
    for (uint32_t i = 0; i < x->cap; i++) {
        if (x->slot[i] == 0 || (x->gen != NULL && x->gen[i] != gen))
            continue;
        uint32_t j = (uint32_t)hash_of(f, x->slot[i] - 1) & (cap - 1);
        while (slot[j] != 0)
            j = (j + 1) & (cap - 1);
        slot[j] = x->slot[i];
        if (gens != NULL)
            gens[j] = gen;
    }
    free(x->slot);
    free(x->gen);
    x->slot = slot;
    x->gen = gens;
    x->cap = cap;
    return 0;
}

static void lindex_free(struct lindex *x)
{
    free(x->slot);
    free(x->gen);
}

/* owned series: entry idx is f->series[idx] */
static bool series_eq(const rg_metric_family_t *f, uint32_t idx,
                      char *const *values)
{
    for (unsigned i = 0; i < f->nlabels; i++)
        if (strcmp(f->series[idx]->values[i], values[i]) != 0)
            return false;
    return true;
}

static uint64_t series_hash(const rg_metric_family_t *f, uint32_t idx)
{
    return labels_hash(f->series[idx]->values, f->nlabels);
}

/* the k label values of a sample, as pointers into the arena */
static void sample_values(const rg_metric_family_t *f, const struct sample *s,
                          const char **out)
{
    const char *p = f->arena + s->labels;
    for (unsigned i = 0; i < f->nlabels; i++) {
        out[i] = p;
        p += strlen(p) + 1;
    }
}

static bool sample_eq(const rg_metric_family_t *f, uint32_t idx,
                      char *const *values)
{
    const char *v[RG_METRICS_LABELS_MAX];
    sample_values(f, &f->samples[idx], v);
    for (unsigned i = 0; i < f->nlabels; i++)
        if (strcmp(v[i], values[i]) != 0)
            return false;
    return true;
}

static uint64_t sample_hash(const rg_metric_family_t *f, uint32_t idx)
{
    const char *v[RG_METRICS_LABELS_MAX];
    sample_values(f, &f->samples[idx], v);
    return labels_hash((char *const *)v, f->nlabels);
}

/* ---- registry and families ------------------------------------------ */

static void family_free(rg_metric_family_t *f)
{
    if (f == NULL)
        return;
    for (uint32_t i = 0; i < f->nseries; i++) {
        free(f->series[i]->values[0]);
        free(f->series[i]->cells);
        free(f->series[i]);
    }
    if (f->overflow != NULL) {
        free(f->overflow->values[0]);
        free(f->overflow->cells);
        free(f->overflow);
    }
    free(f->series);
    lindex_free(&f->index);
    free(f->samples);
    free(f->arena);
    free(f->hcounts);
    for (unsigned i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->help);
    free(f->bounds);
    free(f->bounds_ns);
    free(f->le);
    free(f->meta);
    free(f);
}

rg_metrics_t *rg_metrics_new(const char *prefix)
{
    if (prefix == NULL)
        prefix = "railgun";
    if (!name_ok(prefix, false) || strlen(prefix) > PREFIX_MAX) {
        errno = EINVAL;
        return NULL;
    }
    rg_metrics_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    snprintf(m->prefix, sizeof(m->prefix), "%s", prefix);
    m->scrape.m = m;
    rg_metric_desc_t d = {
        .kind = RG_METRIC_COUNTER,
        .name = "metrics_series_dropped",
        .help = "Label sets refused by a family's series cap: owned ones "
                "when first used (their updates go to the _overflow "
                "series), collected ones at every render that emits them.",
    };
    rg_metric_family_t *f = rg_metrics_family_new(m, &d, NULL, 0);
    if (f == NULL || (m->dropped = rg_metrics_counter(f, NULL, 0)) == NULL) {
        rg_metrics_destroy(m);
        errno = ENOMEM;
        return NULL;
    }
    return m;
}

void rg_metrics_destroy(rg_metrics_t *m)
{
    if (m == NULL)
        return;
    for (rg_metric_family_t *f = m->head, *next; f != NULL; f = next) {
        next = f->next;
        family_free(f);
    }
    free(m->collectors);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* The sample names a family exposes (besides its own name). */
static unsigned sample_names(const rg_metric_family_t *f, char out[4][160])
{
    snprintf(out[0], 160, "%s", f->name);
    if (f->kind != RG_METRIC_HISTOGRAM)
        return 1;
    snprintf(out[1], 160, "%s_bucket", f->name);
    snprintf(out[2], 160, "%s_sum", f->name);
    snprintf(out[3], 160, "%s_count", f->name);
    return 4;
}

static bool clashes(const rg_metrics_t *m, const rg_metric_family_t *nf)
{
    char a[4][160], b[4][160];
    unsigned na = sample_names(nf, a);
    for (const rg_metric_family_t *f = m->head; f != NULL; f = f->next) {
        unsigned nb = sample_names(f, b);
        for (unsigned i = 0; i < na; i++)
            for (unsigned j = 0; j < nb; j++)
                if (strcmp(a[i], b[j]) == 0)
                    return true;
    }
    return false;
}

static struct series *series_alloc(rg_metric_family_t *f, char *const *values);

/* The largest ns whose (double)ns * 1e-9 <= bound: the ns path then puts
 * every value below 2^53 ns exactly where the double path would (both
 * products are monotonic in ns). -1 when no ns qualifies. */
static int64_t bound_ns(double bound)
{
    if (bound < 0)
        return -1;
    if (bound * 1e9 >= 9.2e18)
        return INT64_MAX - 1;
    if (bound * 1e9 >= 9007199254740992.0) /* 2^53: doubles skip integers */
        return (int64_t)(bound * 1e9);
    int64_t x = (int64_t)(bound * 1e9); /* >= 0: truncation is floor */
    while ((double)(x + 1) * 1e-9 <= bound)
        x++;
    while (x >= 0 && (double)x * 1e-9 > bound)
        x--;
    return x;
}

/* The lowest positive double of exponent field e (e = 0: denormals). */
static double binade_low(unsigned e)
{
    /* 2^(e - 1023), built from its bits: the core needs no libm */
    return rg__metrics_double(e == 0 ? 1 : (uint64_t)e << 52);
}

/* The bounds (with a +Inf sentinel), their ns twins and the binade
 * tables of rg__histogram_meta. Returns 0 or RG_ENOMEM. */
static int histogram_tables(rg_metric_family_t *f, const double *b)
{
    uint32_t n = f->nbounds;
    f->bounds = malloc((n + 1) * sizeof(double));
    f->bounds_ns = malloc((n + 1) * sizeof(int64_t));
    f->meta = calloc(1, sizeof(*f->meta));
    if (f->bounds == NULL || f->bounds_ns == NULL || f->meta == NULL)
        return RG_ENOMEM;
    memcpy(f->bounds, b, n * sizeof(double));
    f->bounds[n] = INFINITY;
    for (uint32_t i = 0; i < n; i++)
        f->bounds_ns[i] = bound_ns(b[i]);
    f->bounds_ns[n] = INT64_MAX;
    if ((f->le = malloc((n + 1) * sizeof(*f->le))) == NULL)
        return RG_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        fmt_double(f->le[i], sizeof(f->le[i]), b[i]);
    snprintf(f->le[n], sizeof(f->le[n]), "+Inf");
    struct rg__histogram_meta *m = f->meta;
    m->bounds = f->bounds;
    m->bounds_ns = f->bounds_ns;
    m->nbounds = n;
    /* doubles: binade e is [low(e), low(e + 1)); e = 2047 holds +Inf, NaN */
    for (unsigned e = 0; e < 2048; e++) {
        double lo = e < 2047 ? binade_low(e) : INFINITY;
        double hi = e < 2046 ? binade_low(e + 1) : INFINITY;
        uint32_t first = 0, in = 0;
        while (first < n && b[first] < lo)
            first++;
        while (first + in < n && b[first + in] < hi)
            in++;
        m->lut_exp[e] = (uint8_t)first;
        if (e < 2047 && in > m->steps)
            m->steps = in;
    }
    /* integers: bit length k holds [2^(k-1), 2^k) (k = 0: just 0) */
    for (unsigned k = 0; k <= 64; k++) {
        int64_t lo = k == 0 ? 0 : k >= 64 ? INT64_MAX : (int64_t)1 << (k - 1);
        int64_t hi = k == 0 ? 1 : k >= 63 ? INT64_MAX : (int64_t)1 << k;
        uint32_t first = 0, in = 0;
        while (first < n && f->bounds_ns[first] < lo)
            first++;
        while (first + in < n && f->bounds_ns[first + in] < hi)
            in++;
        m->lut_ns[k] = (uint8_t)first;
        if (in > m->steps_ns)
            m->steps_ns = in;
    }
    /* a value at the top of its binade can be past every bound inside */
    if (m->steps == 0)
        m->steps = 1;
    if (m->steps_ns == 0)
        m->steps_ns = 1;
    return 0;
}

static int check_desc(const rg_metrics_t *m, const rg_metric_desc_t *d,
                      char *errstr, size_t errstr_size)
{
    const char *name = d->name ? d->name : "(null)";
    if ((unsigned)d->kind > RG_METRIC_HISTOGRAM) {
        errf(errstr, errstr_size, "metric %s: unknown kind %d", name, d->kind);
        return RG_EINVAL;
    }
    if (d->name == NULL || !name_ok(d->name, false)) {
        errf(errstr, errstr_size, "metric %s: a name is [a-zA-Z_][a-zA-Z0-9_]*",
             name);
        return RG_EINVAL;
    }
    if (ends_with(d->name, "_total") ||
        (d->kind == RG_METRIC_HISTOGRAM &&
         (ends_with(d->name, "_bucket") || ends_with(d->name, "_sum") ||
          ends_with(d->name, "_count")))) {
        errf(errstr, errstr_size,
             "metric %s: the registry adds the suffix (_total, _bucket, "
             "_sum, _count) itself", name);
        return RG_EINVAL;
    }
    if (strlen(d->name) > RG_METRICS_NAME_MAX) {
        errf(errstr, errstr_size, "metric %.40s...: the name is too long",
             name);
        return RG_EINVAL;
    }
    if (d->help == NULL || d->help[0] == 0) {
        errf(errstr, errstr_size, "metric %s: help text is required", name);
        return RG_EINVAL;
    }
    if (d->unit != NULL) {
        size_t n = strlen(d->unit);
        bool ok = n < 32;
        for (size_t i = 0; i < n && ok; i++)
            ok = d->unit[i] >= 'a' && d->unit[i] <= 'z';
        if (!ok) {
            errf(errstr, errstr_size,
                 "metric %s: a unit is [a-z]+ (a base unit: seconds, bytes)",
                 name);
            return RG_EINVAL;
        }
    }
    if (d->nlabels > RG_METRICS_LABELS_MAX ||
        (d->nlabels > 0 && d->labels == NULL)) {
        errf(errstr, errstr_size, "metric %s: at most %d label names", name,
             RG_METRICS_LABELS_MAX);
        return RG_EINVAL;
    }
    for (unsigned i = 0; i < d->nlabels; i++) {
        const char *l = d->labels[i];
        if (l == NULL || !name_ok(l, false) || strncmp(l, "__", 2) == 0 ||
            (d->kind == RG_METRIC_HISTOGRAM && strcmp(l, "le") == 0) ||
            strlen(l) > RG_METRICS_NAME_MAX) {
            errf(errstr, errstr_size,
                 "metric %s: bad label name %s (a name not starting with __, "
                 "not le on a histogram)", name, l ? l : "(null)");
            return RG_EINVAL;
        }
        for (unsigned j = 0; j < i; j++)
            if (strcmp(l, d->labels[j]) == 0) {
                errf(errstr, errstr_size, "metric %s: label %s given twice",
                     name, l);
                return RG_EINVAL;
            }
    }
    if (d->max_series > RG_METRICS_SERIES_MAX) {
        errf(errstr, errstr_size, "metric %s: max_series %u is above %d",
             name, d->max_series, RG_METRICS_SERIES_MAX);
        return RG_ERANGE;
    }
    if (d->writers > RG_METRICS_WRITERS_MAX) {
        errf(errstr, errstr_size, "metric %s: writers %u is above %d", name,
             d->writers, RG_METRICS_WRITERS_MAX);
        return RG_ERANGE;
    }
    if (d->kind == RG_METRIC_HISTOGRAM && d->buckets != NULL) {
        if (d->nbuckets < 1 || d->nbuckets > RG_METRICS_BUCKETS_MAX) {
            errf(errstr, errstr_size, "metric %s: 1 to %d buckets", name,
                 RG_METRICS_BUCKETS_MAX);
            return RG_ERANGE;
        }
        for (unsigned i = 0; i < d->nbuckets; i++)
            if (!isfinite(d->buckets[i]) ||
                (i > 0 && !(d->buckets[i] > d->buckets[i - 1]))) {
                errf(errstr, errstr_size,
                     "metric %s: bucket bounds must be finite and strictly "
                     "increasing (bound %u)", name, i);
                return RG_EINVAL;
            }
    }
    (void)m;
    return 0;
}

rg_metric_family_t *rg_metrics_family_new(rg_metrics_t *m,
                                          const rg_metric_desc_t *d,
                                          char *errstr, size_t errstr_size)
{
    if (m == NULL || d == NULL) {
        errf(errstr, errstr_size, "metrics: NULL registry or description");
        return NULL;
    }
    if (check_desc(m, d, errstr, errstr_size) != 0)
        return NULL;
    const char *unit = d->unit ? d->unit : "";
    char full[RG_METRICS_NAME_MAX * 2];
    int n = snprintf(full, sizeof(full), "%s_%s", m->prefix, d->name);
    if (unit[0] != 0) {
        char suffix[40];
        snprintf(suffix, sizeof(suffix), "_%s", unit);
        if (!ends_with(full, suffix))
            n += snprintf(full + n, sizeof(full) - (size_t)n, "%s", suffix);
    }
    if (d->kind == RG_METRIC_COUNTER)
        n += snprintf(full + n, sizeof(full) - (size_t)n, "_total");
    /* room for the longest suffix a sample adds (_bucket, _count) */
    if ((size_t)n + 7 > RG_METRICS_NAME_MAX) {
        errf(errstr, errstr_size, "metric %s: the name is longer than %d bytes",
             full, RG_METRICS_NAME_MAX - 7);
        return NULL;
    }

    rg_metric_family_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        goto nomem;
    f->m = m;
    f->kind = d->kind;
    f->collected = d->collected;
    memcpy(f->name, full, (size_t)n + 1);
    snprintf(f->unit, sizeof(f->unit), "%s", unit);
    f->nlabels = d->nlabels;
    f->max_series = d->nlabels == 0 ? 1 :
                    d->max_series ? d->max_series : RG_METRICS_SERIES_DEFAULT;
    f->writers = d->writers ? d->writers : 1;
    if ((f->help = malloc(HELP_MAX + 1)) == NULL)
        goto nomem;
    sanitize(d->help, f->help, HELP_MAX);
    for (unsigned i = 0; i < d->nlabels; i++)
        if ((f->labels[i] = strdup(d->labels[i])) == NULL)
            goto nomem;
    if (d->kind == RG_METRIC_HISTOGRAM) {
        const double *b = d->buckets ? d->buckets : default_bounds;
        f->nbounds = d->buckets ? d->nbuckets : (uint32_t)DEFAULT_NBOUNDS;
        if (histogram_tables(f, b) != 0)
            goto nomem;
        size_t bytes = offsetof(struct rg_histogram_s, counts) +
                       (f->nbounds + 1) * sizeof(uint64_t);
        f->stride = (bytes + RG__METRICS_CACHELINE - 1) &
                    ~(size_t)(RG__METRICS_CACHELINE - 1);
    } else {
        f->stride = sizeof(struct rg_counter_s);
        _Static_assert(sizeof(struct rg_counter_s) == RG__METRICS_CACHELINE &&
                       sizeof(struct rg_gauge_s) == RG__METRICS_CACHELINE,
                       "a counter or gauge cell is one cache line");
    }

    pthread_mutex_lock(&m->mu);
    if (clashes(m, f)) {
        pthread_mutex_unlock(&m->mu);
        errf(errstr, errstr_size,
             "metric %s: its name clashes with another family's samples",
             f->name);
        family_free(f);
        return NULL;
    }
    if (!f->collected && f->nlabels == 0) {
        struct series *s = series_alloc(f, NULL);
        if (s == NULL || lindex_reserve(&f->index, f, 0, series_hash) != 0) {
            pthread_mutex_unlock(&m->mu);
            if (s != NULL) {
                free(s->values[0]);
                free(s->cells);
                free(s);
            }
            goto nomem;
        }
        f->series = malloc(sizeof(*f->series));
        if (f->series == NULL) {
            pthread_mutex_unlock(&m->mu);
            free(s->values[0]);
            free(s->cells);
            free(s);
            goto nomem;
        }
        f->series[0] = s;
        f->nseries = f->series_cap = 1;
    }
    if (m->tail != NULL)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    pthread_mutex_unlock(&m->mu);
    return f;

nomem:
    family_free(f);
    errf(errstr, errstr_size, "metric %s: out of memory", full);
    return NULL;
}

/* A series with these (sanitized) values and zeroed cells. */
static struct series *series_alloc(rg_metric_family_t *f, char *const *values)
{
    struct series *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    size_t bytes = 1;
    for (unsigned i = 0; i < f->nlabels; i++)
        bytes += strlen(values[i]) + 1;
    char *p = malloc(bytes);
    s->cells = aligned_alloc(RG__METRICS_CACHELINE, f->writers * f->stride);
    if (p == NULL || s->cells == NULL) {
        free(p);
        free(s->cells);
        free(s);
        return NULL;
    }
    s->values[0] = p;
    for (unsigned i = 0; i < f->nlabels; i++) {
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        s->values[i] = p;
        p += n;
    }
    if (f->nlabels == 0)
        *p = 0;
    memset(s->cells, 0, f->writers * f->stride);
    if (f->kind == RG_METRIC_HISTOGRAM) {
        for (unsigned w = 0; w < f->writers; w++) {
            struct rg_histogram_s *h =
                (struct rg_histogram_s *)(s->cells + w * f->stride);
            h->meta = f->meta;
        }
    }
    return s;
}

static void dropped_add(rg_metrics_t *m, uint64_t n)
{
    /* under m->mu: the mutex makes this the cell's single writer */
    rg_counter_add_sw(m->dropped, n);
}

/* Sanitized copies of the caller's label values into buf; false when one
 * is NULL. */
static bool take_values(const rg_metric_family_t *f,
                        const char *const *label_values,
                        char buf[][RG_METRICS_LABEL_VALUE_MAX + 1],
                        char **values)
{
    for (unsigned i = 0; i < f->nlabels; i++) {
        if (label_values == NULL || label_values[i] == NULL)
            return false;
        sanitize(label_values[i], buf[i], RG_METRICS_LABEL_VALUE_MAX);
        values[i] = buf[i];
    }
    return true;
}

static bool all_overflow(const rg_metric_family_t *f, char *const *values)
{
    if (f->nlabels == 0)
        return false;
    for (unsigned i = 0; i < f->nlabels; i++)
        if (strcmp(values[i], RG_METRICS_OVERFLOW) != 0)
            return false;
    return true;
}

static unsigned char *cell_of(rg_metric_family_t *f, rg_metric_kind_t kind,
                              const char *const *label_values, unsigned writer)
{
    if (f == NULL || f->kind != kind || f->collected || writer >= f->writers)
        return NULL;
    char buf[RG_METRICS_LABELS_MAX][RG_METRICS_LABEL_VALUE_MAX + 1];
    char *values[RG_METRICS_LABELS_MAX];
    if (!take_values(f, label_values, buf, values))
        return NULL;
    rg_metrics_t *m = f->m;
    struct series *s = NULL;
    pthread_mutex_lock(&m->mu);
    if (f->nlabels == 0) {
        s = f->series[0];
        goto done;
    }
    if (all_overflow(f, values))
        goto overflow;
    uint64_t h = labels_hash(values, f->nlabels);
    bool found = false;
    uint32_t slot = 0;
    if (f->index.cap != 0)
        slot = lindex_find(&f->index, f, h, values, series_eq, 0, &found);
    if (found) {
        s = f->series[f->index.slot[slot] - 1];
        goto done;
    }
    if (f->nseries >= f->max_series) {
        dropped_add(m, 1);
        goto overflow;
    }
    if (f->nseries == f->series_cap) {
        uint32_t cap = f->series_cap ? f->series_cap * 2 : 8;
        struct series **a = realloc(f->series, cap * sizeof(*a));
        if (a == NULL)
            goto done;
        f->series = a;
        f->series_cap = cap;
    }
    if (lindex_reserve(&f->index, f, 0, series_hash) != 0)
        goto done;
    if ((s = series_alloc(f, values)) == NULL)
        goto done;
    slot = lindex_find(&f->index, f, h, values, series_eq, 0, &found);
    f->index.slot[slot] = f->nseries + 1;
    f->index.count++;
    f->series[f->nseries++] = s;
    goto done;

overflow:
    if (f->overflow == NULL) {
        char *ov[RG_METRICS_LABELS_MAX];
        for (unsigned i = 0; i < f->nlabels; i++)
            ov[i] = (char *)RG_METRICS_OVERFLOW;
        f->overflow = series_alloc(f, ov);
    }
    s = f->overflow;
done:
    pthread_mutex_unlock(&m->mu);
    return s ? s->cells + (size_t)writer * f->stride : NULL;
}

rg_counter_t *rg_metrics_counter(rg_metric_family_t *f,
                                 const char *const *label_values,
                                 unsigned writer)
{
    return (rg_counter_t *)cell_of(f, RG_METRIC_COUNTER, label_values, writer);
}

rg_gauge_t *rg_metrics_gauge(rg_metric_family_t *f,
                             const char *const *label_values, unsigned writer)
{
    return (rg_gauge_t *)cell_of(f, RG_METRIC_GAUGE, label_values, writer);
}

rg_histogram_t *rg_metrics_histogram(rg_metric_family_t *f,
                                     const char *const *label_values,
                                     unsigned writer)
{
    return (rg_histogram_t *)cell_of(f, RG_METRIC_HISTOGRAM, label_values,
                                     writer);
}

int rg_metrics_collector_add(rg_metrics_t *m, rg_metrics_collect_cb *cb,
                             void *opaque)
{
    if (m == NULL || cb == NULL)
        return RG_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    if (m->ncollectors == m->collectors_cap) {
        unsigned cap = m->collectors_cap ? m->collectors_cap * 2 : 4;
        struct collector *c = realloc(m->collectors, cap * sizeof(*c));
        if (c == NULL) {
            rc = RG_ENOMEM;
            goto out;
        }
        m->collectors = c;
        m->collectors_cap = cap;
    }
    m->collectors[m->ncollectors++] = (struct collector){cb, opaque};
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- collected samples ---------------------------------------------- */

static int arena_put(rg_metric_family_t *f, const char *s, size_t n)
{
    if (f->arena_len + n > f->arena_cap) {
        size_t cap = f->arena_cap ? f->arena_cap : 256;
        while (cap < f->arena_len + n)
            cap *= 2;
        char *a = realloc(f->arena, cap);
        if (a == NULL)
            return RG_ENOMEM;
        f->arena = a;
        f->arena_cap = cap;
    }
    memcpy(f->arena + f->arena_len, s, n);
    f->arena_len += n;
    return 0;
}

/* Appends a sample for these label values; *out is it. RG_EFULL past the
 * cap or for a repeat (counted as dropped). */
static int sample_add(rg_metrics_scrape_t *s, rg_metric_family_t *f,
                      const char *const *label_values, struct sample **out)
{
    char buf[RG_METRICS_LABELS_MAX][RG_METRICS_LABEL_VALUE_MAX + 1];
    char *values[RG_METRICS_LABELS_MAX];
    if (!take_values(f, label_values, buf, values))
        return RG_EINVAL;
    if (f->nsamples >= f->max_series) {
        dropped_add(s->m, 1);
        return RG_EFULL;
    }
    uint64_t h = labels_hash(values, f->nlabels);
    bool found = false;
    uint32_t slot = 0;
    if (f->index.cap != 0)
        slot = lindex_find(&f->index, f, h, values, sample_eq, f->gen, &found);
    if (found) {
        dropped_add(s->m, 1);
        return RG_EFULL;
    }
    if (f->nsamples == f->samples_cap) {
        uint32_t cap = f->samples_cap ? f->samples_cap * 2 : 8;
        struct sample *a = realloc(f->samples, cap * sizeof(*a));
        if (a == NULL)
            return RG_ENOMEM;
        f->samples = a;
        f->samples_cap = cap;
    }
    if (lindex_reserve(&f->index, f, f->gen, sample_hash) != 0)
        return RG_ENOMEM;
    size_t at = f->arena_len;
    for (unsigned i = 0; i < f->nlabels; i++)
        if (arena_put(f, values[i], strlen(values[i]) + 1) != 0) {
            f->arena_len = at;
            return RG_ENOMEM;
        }
    struct sample *smp = &f->samples[f->nsamples];
    memset(smp, 0, sizeof(*smp));
    smp->labels = at;
    slot = lindex_find(&f->index, f, h, values, sample_eq, f->gen, &found);
    f->index.slot[slot] = f->nsamples + 1;
    f->index.gen[slot] = f->gen;
    f->index.count++;
    f->nsamples++;
    *out = smp;
    return 0;
}

static bool collect_ok(const rg_metrics_scrape_t *s, const rg_metric_family_t *f,
                       bool histogram)
{
    return s != NULL && s->live && f != NULL && f->m == s->m && f->collected &&
           (f->kind == RG_METRIC_HISTOGRAM) == histogram;
}

static int collect_value(rg_metrics_scrape_t *s, rg_metric_family_t *f,
                         const char *const *label_values, int type,
                         uint64_t u, int64_t i, double d)
{
    if (!collect_ok(s, f, false))
        return RG_EINVAL;
    if (f->kind == RG_METRIC_COUNTER &&
        ((type == V_I64 && i < 0) || (type == V_F64 && !(d >= 0))))
        return RG_EINVAL;
    struct sample *smp;
    int rc = sample_add(s, f, label_values, &smp);
    if (rc != 0)
        return rc;
    smp->type = type;
    if (type == V_U64)
        smp->v.u = u;
    else if (type == V_I64)
        smp->v.i = i;
    else
        smp->v.d = d;
    return 0;
}

int rg_metrics_collect_u64(rg_metrics_scrape_t *s, rg_metric_family_t *f,
                           const char *const *label_values, uint64_t value)
{
    return collect_value(s, f, label_values, V_U64, value, 0, 0);
}

int rg_metrics_collect_i64(rg_metrics_scrape_t *s, rg_metric_family_t *f,
                           const char *const *label_values, int64_t value)
{
    return collect_value(s, f, label_values, V_I64, 0, value, 0);
}

int rg_metrics_collect_f64(rg_metrics_scrape_t *s, rg_metric_family_t *f,
                           const char *const *label_values, double value)
{
    return collect_value(s, f, label_values, V_F64, 0, 0, value);
}

int rg_metrics_collect_histogram(rg_metrics_scrape_t *s, rg_metric_family_t *f,
                                 const char *const *label_values,
                                 const uint64_t *counts, size_t n, double sum)
{
    if (!collect_ok(s, f, true) || counts == NULL || n != f->nbounds + 1)
        return RG_EINVAL;
    if (f->nhcounts + n > f->hcounts_cap) {
        size_t cap = f->hcounts_cap ? f->hcounts_cap : 64;
        while (cap < f->nhcounts + n)
            cap *= 2;
        uint64_t *a = realloc(f->hcounts, cap * sizeof(*a));
        if (a == NULL)
            return RG_ENOMEM;
        f->hcounts = a;
        f->hcounts_cap = cap;
    }
    struct sample *smp;
    int rc = sample_add(s, f, label_values, &smp);
    if (rc != 0)
        return rc;
    smp->type = V_HIST;
    smp->hist = f->nhcounts;
    smp->v.d = sum;
    memcpy(f->hcounts + f->nhcounts, counts, n * sizeof(uint64_t));
    f->nhcounts += n;
    return 0;
}

/* ---- rendering ------------------------------------------------------ */

/* One series' value, read from its cells or its sample. */
struct value {
    int type;
    uint64_t u;
    int64_t i;
    double d;
    uint64_t counts[RG_METRICS_BUCKETS_MAX + 1]; /* cumulative */
};

static void read_cells(const rg_metric_family_t *f, const struct series *s,
                       struct value *v)
{
    memset(v, 0, offsetof(struct value, counts));
    if (f->kind == RG_METRIC_COUNTER) {
        v->type = V_U64;
        for (unsigned w = 0; w < f->writers; w++) {
            const struct rg_counter_s *c =
                (const struct rg_counter_s *)(s->cells + w * f->stride);
            /* relaxed: a statistic; see metrics_pvt.h */
            v->u += atomic_load_explicit(&c->v, memory_order_relaxed);
        }
    } else if (f->kind == RG_METRIC_GAUGE) {
        v->type = V_F64;
        for (unsigned w = 0; w < f->writers; w++) {
            const struct rg_gauge_s *g =
                (const struct rg_gauge_s *)(s->cells + w * f->stride);
            /* relaxed: a statistic; see metrics_pvt.h */
            v->d += rg__metrics_double(
                atomic_load_explicit(&g->bits, memory_order_relaxed));
        }
    } else {
        v->type = V_HIST;
        memset(v->counts, 0, (f->nbounds + 1) * sizeof(uint64_t));
        for (unsigned w = 0; w < f->writers; w++) {
            const struct rg_histogram_s *h =
                (const struct rg_histogram_s *)(s->cells + w * f->stride);
            /* relaxed: a statistic; _count is computed from these very
             * loads, so buckets and count agree whatever races */
            for (uint32_t b = 0; b <= f->nbounds; b++)
                v->counts[b] += atomic_load_explicit(&h->counts[b],
                                                     memory_order_relaxed);
            v->d += rg__metrics_double(
                atomic_load_explicit(&h->sum_bits, memory_order_relaxed));
            v->d += (double)atomic_load_explicit(&h->sum_ns,
                                                 memory_order_relaxed) * 1e-9;
        }
        for (uint32_t b = 1; b <= f->nbounds; b++)
            v->counts[b] += v->counts[b - 1];
    }
}

static void read_sample(const rg_metric_family_t *f, const struct sample *smp,
                        struct value *v)
{
    memset(v, 0, offsetof(struct value, counts));
    v->type = smp->type;
    v->u = smp->v.u;
    v->i = smp->v.i;
    v->d = smp->v.d;
    if (smp->type == V_HIST) {
        const uint64_t *c = f->hcounts + smp->hist;
        uint64_t cum = 0;
        for (uint32_t b = 0; b <= f->nbounds; b++)
            v->counts[b] = cum += c[b];
    }
}

static void put_scalar(struct out *o, const struct value *v, bool json)
{
    if (v->type == V_U64)
        put_u64(o, v->u);
    else if (v->type == V_I64)
        put_i64(o, v->i);
    else
        put_f64(o, v->d, json);
}

/* {a="x",b="y"} with an optional le at the end; nothing when empty. */
static void put_text_labels(struct out *o, const rg_metric_family_t *f,
                            const char *const *values, const char *le)
{
    if (f->nlabels == 0 && le == NULL)
        return;
    putc_(o, '{');
    for (unsigned i = 0; i < f->nlabels; i++) {
        if (i > 0)
            putc_(o, ',');
        puts_(o, f->labels[i]);
        puts_(o, "=\"");
        put_text_escaped(o, values[i], true);
        putc_(o, '"');
    }
    if (le != NULL) {
        puts_(o, f->nlabels ? ",le=\"" : "le=\"");
        puts_(o, le);
        putc_(o, '"');
    }
    putc_(o, '}');
}

static void put_text_series(struct out *o, const rg_metric_family_t *f,
                            const char *const *values, const struct value *v)
{
    if (f->kind != RG_METRIC_HISTOGRAM) {
        puts_(o, f->name);
        put_text_labels(o, f, values, NULL);
        putc_(o, ' ');
        put_scalar(o, v, false);
        putc_(o, '\n');
        return;
    }
    for (uint32_t b = 0; b <= f->nbounds; b++) {
        puts_(o, f->name);
        puts_(o, "_bucket");
        put_text_labels(o, f, values, f->le[b]);
        putc_(o, ' ');
        put_u64(o, v->counts[b]);
        putc_(o, '\n');
    }
    puts_(o, f->name);
    puts_(o, "_sum");
    put_text_labels(o, f, values, NULL);
    putc_(o, ' ');
    put_f64(o, v->d, false);
    putc_(o, '\n');
    puts_(o, f->name);
    puts_(o, "_count");
    put_text_labels(o, f, values, NULL);
    putc_(o, ' ');
    put_u64(o, v->counts[f->nbounds]);
    putc_(o, '\n');
}

static void put_json_series(struct out *o, const rg_metric_family_t *f,
                            const char *const *values, const struct value *v,
                            bool first)
{
    puts_(o, first ? "{\"labels\":{" : ",{\"labels\":{");
    for (unsigned i = 0; i < f->nlabels; i++) {
        if (i > 0)
            putc_(o, ',');
        put_json_str(o, f->labels[i]);
        putc_(o, ':');
        put_json_str(o, values[i]);
    }
    putc_(o, '}');
    if (f->kind != RG_METRIC_HISTOGRAM) {
        puts_(o, ",\"value\":");
        put_scalar(o, v, true);
    } else {
        puts_(o, ",\"counts\":[");
        for (uint32_t b = 0; b <= f->nbounds; b++) {
            if (b > 0)
                putc_(o, ',');
            put_u64(o, v->counts[b]);
        }
        puts_(o, "],\"sum\":");
        put_f64(o, v->d, true);
        puts_(o, ",\"count\":");
        put_u64(o, v->counts[f->nbounds]);
    }
    putc_(o, '}');
}

static const char *kind_name(rg_metric_kind_t k)
{
    return k == RG_METRIC_COUNTER ? "counter" :
           k == RG_METRIC_GAUGE ? "gauge" : "histogram";
}

static void render_family(struct out *o, const rg_metric_family_t *f,
                          bool json, bool first)
{
    if (json) {
        if (!first)
            putc_(o, ',');
        put_json_str(o, f->name);
        puts_(o, ":{\"type\":\"");
        puts_(o, kind_name(f->kind));
        puts_(o, "\",\"help\":");
        put_json_str(o, f->help);
        puts_(o, ",\"unit\":");
        put_json_str(o, f->unit);
        puts_(o, ",\"labels\":[");
        for (unsigned i = 0; i < f->nlabels; i++) {
            if (i > 0)
                putc_(o, ',');
            put_json_str(o, f->labels[i]);
        }
        putc_(o, ']');
        if (f->kind == RG_METRIC_HISTOGRAM) {
            puts_(o, ",\"buckets\":[");
            for (uint32_t b = 0; b < f->nbounds; b++) {
                if (b > 0)
                    putc_(o, ',');
                put_f64(o, f->bounds[b], true);
            }
            putc_(o, ']');
        }
        puts_(o, ",\"series\":[");
    } else {
        puts_(o, "# HELP ");
        puts_(o, f->name);
        putc_(o, ' ');
        put_text_escaped(o, f->help, false);
        puts_(o, "\n# TYPE ");
        puts_(o, f->name);
        putc_(o, ' ');
        puts_(o, kind_name(f->kind));
        putc_(o, '\n');
    }
    struct value v;
    bool first_series = true;
    if (!f->collected) {
        for (uint32_t i = 0; i <= f->nseries; i++) {
            const struct series *s = i < f->nseries ? f->series[i] : f->overflow;
            if (s == NULL)
                continue;
            read_cells(f, s, &v);
            if (json)
                put_json_series(o, f, (const char *const *)s->values, &v,
                                first_series);
            else
                put_text_series(o, f, (const char *const *)s->values, &v);
            first_series = false;
        }
    } else {
        for (uint32_t i = 0; i < f->nsamples; i++) {
            const char *values[RG_METRICS_LABELS_MAX];
            sample_values(f, &f->samples[i], values);
            read_sample(f, &f->samples[i], &v);
            if (json)
                put_json_series(o, f, values, &v, first_series);
            else
                put_text_series(o, f, values, &v);
            first_series = false;
        }
    }
    if (json)
        puts_(o, "]}");
}

static int render(rg_metrics_t *m, rg_metrics_format_t fmt, struct out *o)
{
    if (m == NULL || (fmt != RG_METRICS_TEXT && fmt != RG_METRICS_JSON))
        return RG_EINVAL;
    bool json = fmt == RG_METRICS_JSON;
    pthread_mutex_lock(&m->mu);
    if (o->grow && o->buf == NULL) {
        /* one allocation for a render like the last one (a few KiB more
         * in case it grew); put() grows it otherwise */
        size_t cap = m->last_len + 4096;
        if ((o->buf = malloc(cap)) != NULL)
            o->cap = cap;
    }
    for (rg_metric_family_t *f = m->head; f != NULL; f = f->next) {
        if (!f->collected)
            continue;
        f->nsamples = 0;
        f->arena_len = 0;
        f->nhcounts = 0;
        f->index.count = 0;
        /* a new generation empties the index; on wrap, clear it for real */
        if (++f->gen == 0 && f->index.cap != 0) {
            memset(f->index.slot, 0, f->index.cap * sizeof(uint32_t));
            f->gen = 1;
        }
    }
    m->scrape.live = true;
    for (unsigned i = 0; i < m->ncollectors; i++)
        m->collectors[i].cb(&m->scrape, m->collectors[i].opaque);
    m->scrape.live = false;
    if (json)
        putc_(o, '{');
    bool first = true;
    for (rg_metric_family_t *f = m->head; f != NULL; f = f->next) {
        render_family(o, f, json, first);
        first = false;
    }
    if (json)
        puts_(o, "}\n");
    m->last_len = o->len;
    pthread_mutex_unlock(&m->mu);
    finish(o);
    return o->oom ? RG_ENOMEM : 0;
}

int rg_metrics_render(rg_metrics_t *m, rg_metrics_format_t fmt, char **out,
                      size_t *len)
{
    if (out == NULL)
        return RG_EINVAL;
    *out = NULL;
    struct out o = {.grow = true};
    int rc = render(m, fmt, &o);
    if (rc != 0) {
        free(o.buf);
        return rc;
    }
    *out = o.buf;
    if (len != NULL)
        *len = o.len;
    return 0;
}

int rg_metrics_render_to(rg_metrics_t *m, rg_metrics_format_t fmt, char *buf,
                         size_t size, size_t *len)
{
    if (buf == NULL || size == 0)
        return RG_EINVAL;
    struct out o = {.buf = buf, .cap = size, .grow = false};
    int rc = render(m, fmt, &o);
    if (len != NULL)
        *len = o.len;
    if (rc != 0)
        return rc;
    return o.len + 1 > size ? RG_ERANGE : 0;
}

int rg_metrics_buckets_exp(double start, double factor, unsigned n,
                           double *out)
{
    if (!(start > 0) || !(factor > 1) || !isfinite(start) ||
        !isfinite(factor) || n < 1 || n > RG_METRICS_BUCKETS_MAX ||
        out == NULL)
        return RG_EINVAL;
    double v = start;
    for (unsigned i = 0; i < n; i++, v *= factor) {
        if (!isfinite(v))
            return RG_EINVAL;
        out[i] = v;
    }
    return 0;
}
