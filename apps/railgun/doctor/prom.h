/*
 * prom.h - a parser of the Prometheus text exposition format (0.0.4) into
 * samples, for `railgun doctor`: one scrape of /metrics becomes one
 * rg_prom_t that the analysis (doctor.h) reads.
 *
 * What it accepts: `# HELP` and `# TYPE` lines (the types are kept),
 * other comments, blank lines, and samples
 *     name{label="value",...} value [timestamp]
 * with the escapes \\ \" \n in label values, values as Go's ParseFloat
 * reads them (NaN, +Inf, -Inf included); the timestamp is ignored.
 * Anything else is an error naming the line: a truncated scrape or an
 * HTML error page is never taken for metrics.
 *
 * Bounds: at most RG_PROM_SAMPLES_MAX samples and RG_PROM_LABELS_MAX
 * labels per sample (a scrape with more is refused, not cut: an analysis
 * of part of a scrape would be wrong without saying so).
 *
 * Threads: a parsed rg_prom_t is immutable; any thread may read it.
 */
#ifndef RG_PROM_H
#define RG_PROM_H

#include <stddef.h>

#define RG_PROM_SAMPLES_MAX 1000000
#define RG_PROM_LABELS_MAX 16

typedef struct rg_prom_label_s {
    const char *name;
    const char *value;
} rg_prom_label_t;

typedef struct rg_prom_sample_s {
    const char *name;               /* as exposed: with _total, _bucket... */
    const rg_prom_label_t *labels;  /* in exposition order */
    unsigned nlabels;
    double value;
} rg_prom_sample_t;

typedef struct rg_prom_s {
    rg_prom_sample_t *samples;      /* in exposition order */
    size_t n;
    /* private */
    char *arena;
    rg_prom_label_t *labels;
    struct rg_prom_type_s *types;
    size_t ntypes;
} rg_prom_t;

/*
 * Parses len bytes of text into a new snapshot (*out; rg_prom_free()).
 * Returns 0, RG_EDECODE (not the text format: errstr says which line and
 * why), RG_ERANGE (over the bounds above) or RG_ENOMEM; *out is NULL on
 * failure.
 */
int rg_prom_parse(const char *text, size_t len, rg_prom_t **out,
                  char *errstr, size_t errstr_size);

/* Frees p; NULL is fine. */
void rg_prom_free(rg_prom_t *p);

/* The value of label `name` of s, or NULL when s has no such label. */
const char *rg_prom_label(const rg_prom_sample_t *s, const char *name);

/* The index of the first sample named `name` at or after `from`, or p->n
 * when there is none. Loop: for (i = rg_prom_next(p, n, 0); i < p->n;
 * i = rg_prom_next(p, n, i + 1)). */
size_t rg_prom_next(const rg_prom_t *p, const char *name, size_t from);

/* The TYPE line's type of family `name` ("counter", "gauge", ...), or
 * NULL when the scrape gave none. */
const char *rg_prom_type(const rg_prom_t *p, const char *name);

#endif /* RG_PROM_H */
