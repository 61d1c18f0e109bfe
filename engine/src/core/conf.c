/*
 * conf.c - configuration objects over layered property tables
 * (railgun/conf.h). The core's table comes from conf_props.h; adapters
 * and programs add theirs with rg_conf_add_table().
 *
 * Invariants
 *   - conf->layers[0] is the core table, so rg__conf_int(conf, RG_P_X)
 *     reads conf->layers[0].v[RG_P_X] without a name lookup.
 *   - Every name is defined by at most one row across the added tables;
 *     a row another table already defines identically is an alias of the
 *     first one (same value), marked by its layer's `alias` entry.
 *   - rg_conf_set() parses into a temporary and commits only after every
 *     check passed, so a failed set leaves the object unchanged.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "railgun/error.h"
#include "conf_props.h"
#include "../common/util.h"

static rg_conf_check_cb check_pow2, check_cpulist, check_idle_policy,
    check_retry_order;

static const rg_conf_prop_t core_props[RG_P__COUNT] = {
#define RG__PROP_ROW(id, name, type, def, min, max, check, doc)              \
    [RG_P_##id] = {name, RG_CONF_##type, def, min, max, doc, check},
    RG_CONF_PROPS(RG__PROP_ROW)
#undef RG__PROP_ROW
};

static const rg_conf_table_t core_table = {
    .layer = "core",
    .scope = RG_CONF_SCOPE_CORE,
    .props = core_props,
    .count = RG_P__COUNT,
};

const rg_conf_table_t *rg_conf_core_table(void)
{
    return &core_table;
}

union value {
    int64_t i;
    char *s;
};

/* One added table and its values. alias[i] >= 0: row i is defined by an
 * earlier layer (layer alias[i] >> 16, row alias[i] & 0xffff) and holds
 * no value of its own. */
struct layer {
    const rg_conf_table_t *t;
    union value *v;
    bool *set;
    int32_t *alias;
};

/* Properties passed through to a library (a table's prefix + the
 * library's own name), checked by that library, in the order set. */
struct pass {
    char *name, *value;
};

struct rg_conf_s {
    struct layer *layers;
    size_t nlayers;
    rg_log_cb *log_cb;
    void *log_opaque;
    struct pass *pass;
    size_t npass, cap;
};

/* Where a name lives: layer and row of its defining (non-alias) entry. */
struct where {
    size_t l, i;
};

static bool find(const rg_conf_t *conf, const char *name, struct where *w)
{
    for (size_t l = 0; l < conf->nlayers; l++) {
        const struct layer *ly = &conf->layers[l];
        for (size_t i = 0; i < ly->t->count; i++)
            if (ly->alias[i] < 0 && strcmp(ly->t->props[i].name, name) == 0) {
                *w = (struct where){l, i};
                return true;
            }
    }
    return false;
}

static const rg_conf_prop_t *prop_of(const rg_conf_t *conf, struct where w)
{
    return &conf->layers[w.l].t->props[w.i];
}

static union value *value_of(const rg_conf_t *conf, struct where w)
{
    return &conf->layers[w.l].v[w.i];
}

static bool is_pass(const rg_conf_t *conf, const char *name)
{
    for (size_t l = 0; l < conf->nlayers; l++) {
        const char *pre = conf->layers[l].t->passthrough;
        size_t n = pre ? strlen(pre) : 0;
        if (n > 0 && strncmp(name, pre, n) == 0 && name[n] != '\0')
            return true;
    }
    return false;
}

static struct pass *pass_find(const rg_conf_t *conf, const char *name)
{
    for (size_t i = 0; i < conf->npass; i++)
        if (strcmp(conf->pass[i].name, name) == 0)
            return &conf->pass[i];
    return NULL;
}

static int pass_set(rg_conf_t *conf, const char *name, const char *value)
{
    char *v = strdup(value);
    if (v == NULL)
        return RG_ENOMEM;
    struct pass *p = pass_find(conf, name);
    if (p != NULL) {
        free(p->value);
        p->value = v;
        return 0;
    }
    if (conf->npass == conf->cap) {
        size_t cap = conf->cap ? conf->cap * 2 : 8;
        struct pass *np = realloc(conf->pass, sizeof(*np) * cap);
        if (np == NULL) {
            free(v);
            return RG_ENOMEM;
        }
        conf->pass = np;
        conf->cap = cap;
    }
    char *n = strdup(name);
    if (n == NULL) {
        free(v);
        return RG_ENOMEM;
    }
    conf->pass[conf->npass++] = (struct pass){n, v};
    return 0;
}

/* Strict decimal int64: optional sign, digits, nothing else. */
static int parse_int(const char *s, int64_t *out)
{
    if (*s == '\0')
        return RG_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || isspace((unsigned char)*s))
        return RG_EINVAL;
    if (errno == ERANGE)
        return RG_ERANGE;
    *out = v;
    return 0;
}

/* Strict finite decimal: digits, a point, an exponent; nothing else. */
static int parse_double(const char *s, double *out)
{
    if (*s == '\0' || isspace((unsigned char)*s))
        return RG_EINVAL;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p))
            return RG_EINVAL; /* no "nan", "inf", hex */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0')
        return RG_EINVAL;
    if (errno == ERANGE || v != v || v - v != 0)
        return RG_ERANGE;
    *out = v;
    return 0;
}

int rg_conf_check_share(const char *name, const char *value, int64_t ival,
                        char *errstr, size_t errstr_size)
{
    (void)ival;
    double d = 0;
    if (parse_double(value, &d) == 0 && d >= 0 && d <= 1)
        return 0;
    rg__seterr(errstr, errstr_size, "%s: %s is not a share between 0 and 1",
               name, value);
    return RG_ERANGE;
}

/* DOUBLE values are kept as the text given, like strings. */
static bool is_text(rg_conf_type_t t)
{
    return t == RG_CONF_STR || t == RG_CONF_DOUBLE;
}

static int parse_bool(const char *s, int64_t *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "1")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(s, "false") || !strcmp(s, "0")) {
        *out = 0;
        return 0;
    }
    return RG_EINVAL;
}

static int check_pow2(const char *name, const char *sval, int64_t v,
                      char *errstr, size_t errstr_size)
{
    (void)sval;
    if (v <= 0 || (v & (v - 1)) != 0) {
        rg__seterr(errstr, errstr_size, "%s: %" PRId64 " is not a power of two",
               name, v);
        return RG_EINVAL;
    }
    return 0;
}

int rg__cpus_allowed(int *cpus, int max)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE && n < max; c++)
            if (CPU_ISSET(c, &set))
                cpus[n++] = c;
    }
    if (n == 0) /* affinity unknown: assume CPU 0 exists */
        cpus[n++] = 0;
    return n;
}

/* Parses a list like "0-3,8" into cpus[]; checks only its syntax. */
static int cpulist_read(const char *s, int *cpus, int max, char *errstr,
                        size_t errstr_size)
{
    int n = 0;
    const char *p = s;
    while (*p != '\0') {
        char *end;
        if (!isdigit((unsigned char)*p))
            goto bad;
        long lo = strtol(p, &end, 10), hi = lo;
        p = end;
        if (*p == '-') {
            p++;
            if (!isdigit((unsigned char)*p))
                goto bad;
            hi = strtol(p, &end, 10);
            p = end;
        }
        if (*p == ',')
            p++;
        else if (*p != '\0')
            goto bad;
        if (hi < lo || hi >= CPU_SETSIZE) {
            rg__seterr(errstr, errstr_size, "workers.cpus: bad range %ld-%ld in "
                   "\"%s\"", lo, hi, s);
            return RG_EINVAL;
        }
        for (long c = lo; c <= hi; c++) {
            if (n >= max) {
                rg__seterr(errstr, errstr_size, "workers.cpus: more than %d "
                       "CPUs listed", max);
                return RG_ERANGE;
            }
            cpus[n++] = (int)c;
        }
    }
    return n;
bad:
    rg__seterr(errstr, errstr_size, "workers.cpus: cannot parse \"%s\" "
           "(expected a list like 0-3,8)", s);
    return RG_EINVAL;
}

/* The online CPUs: the kernel's list, else 0 .. online count - 1. */
static int cpus_online(int *cpus, int max)
{
    char buf[4096];
    int n = 0;
    FILE *f = fopen("/sys/devices/system/cpu/online", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof(buf), f) != NULL) {
            buf[strcspn(buf, "\n")] = '\0';
            n = cpulist_read(buf, cpus, max, NULL, 0);
        }
        fclose(f);
    }
    if (n <= 0) {
        long k = sysconf(_SC_NPROCESSORS_ONLN);
        for (n = 0; n < k && n < max; n++)
            cpus[n] = n;
    }
    if (n <= 0) /* unknown: assume CPU 0 exists */
        cpus[n++] = 0;
    return n;
}

/*
 * Every listed CPU must be online. Not checked against the calling
 * thread's affinity: a thread pinned to one CPU may well create an engine
 * whose workers run on others (the kernel refuses CPUs outside the
 * process's cpuset when the worker starts; rg_engine_start says so).
 */
int rg__cpulist_parse(const char *s, int *cpus, int max, char *errstr,
                      size_t errstr_size)
{
    int n = cpulist_read(s, cpus, max, errstr, errstr_size);
    if (n <= 0)
        return n;
    int online[CPU_SETSIZE];
    int nonline = cpus_online(online, CPU_SETSIZE);
    for (int i = 0; i < n; i++) {
        bool ok = false;
        for (int j = 0; j < nonline && !ok; j++)
            ok = online[j] == cpus[i];
        if (!ok) {
            rg__seterr(errstr, errstr_size, "workers.cpus: CPU %d is not "
                   "online", cpus[i]);
            return RG_EINVAL;
        }
    }
    return n;
}

static int check_cpulist(const char *name, const char *sval, int64_t v,
                         char *errstr, size_t errstr_size)
{
    (void)name;
    (void)v;
    int tmp[CPU_SETSIZE];
    int n = rg__cpulist_parse(sval, tmp, CPU_SETSIZE, errstr, errstr_size);
    return n < 0 ? n : 0;
}


static int check_idle_policy(const char *name, const char *sval, int64_t v,
                             char *errstr, size_t errstr_size)
{
    (void)v;
    if (strcmp(sval, "auto") == 0 || strcmp(sval, "spin") == 0 ||
        strcmp(sval, "yield") == 0)
        return 0;
    rg__seterr(errstr, errstr_size, "%s: \"%s\" is not auto, spin or yield",
               name, sval);
    return RG_EINVAL;
}

static int check_retry_order(const char *name, const char *sval, int64_t v,
                             char *errstr, size_t errstr_size)
{
    (void)v;
    if (strcmp(sval, "key") == 0 || strcmp(sval, "none") == 0)
        return 0;
    rg__seterr(errstr, errstr_size, "%s: \"%s\" is not key or none", name,
               sval);
    return RG_EINVAL;
}

/* Parses and checks `value` for property p; on success *iv holds the
 * integer (INT, BOOL). */
static int validate(const rg_conf_prop_t *p, const char *value, int64_t *iv,
                    char *errstr, size_t errstr_size)
{
    int rc;
    *iv = 0;
    switch (p->type) {
    case RG_CONF_INT:
        rc = parse_int(value, iv);
        if (rc != 0) {
            rg__seterr(errstr, errstr_size, "%s: \"%s\" is not an integer%s",
                       p->name, value, rc == RG_ERANGE ? " in range" : "");
            return rc;
        }
        if (*iv < p->min) {
            rg__seterr(errstr, errstr_size, "%s: %" PRId64 " is below the "
                       "minimum %" PRId64, p->name, *iv, p->min);
            return RG_ERANGE;
        }
        if (*iv > p->max) {
            rg__seterr(errstr, errstr_size, "%s: %" PRId64 " is above the "
                       "maximum %" PRId64, p->name, *iv, p->max);
            return RG_ERANGE;
        }
        break;
    case RG_CONF_BOOL:
        if (parse_bool(value, iv) != 0) {
            rg__seterr(errstr, errstr_size, "%s: \"%s\" is not true or false",
                       p->name, value);
            return RG_EINVAL;
        }
        break;
    case RG_CONF_DOUBLE: {
        double d;
        rc = parse_double(value, &d);
        if (rc != 0) {
            rg__seterr(errstr, errstr_size, "%s: \"%s\" is not a %s number",
                       p->name, value, rc == RG_ERANGE ? "finite" : "decimal");
            return rc;
        }
        break;
    }
    case RG_CONF_STR:
        break;
    }
    return p->check != NULL ? p->check(p->name, value, *iv, errstr,
                                       errstr_size)
                            : 0;
}

static void layer_free(struct layer *ly)
{
    if (ly->v != NULL && ly->t != NULL)
        for (size_t i = 0; i < ly->t->count; i++)
            if (ly->alias[i] < 0 && is_text(ly->t->props[i].type))
                free(ly->v[i].s);
    free(ly->v);
    free(ly->set);
    free(ly->alias);
}

static bool same_row(const rg_conf_prop_t *a, const rg_conf_prop_t *b)
{
    return a->type == b->type && strcmp(a->def, b->def) == 0 &&
           a->min == b->min && a->max == b->max;
}

int rg_conf_add_table(rg_conf_t *conf, const rg_conf_table_t *t,
                      char *errstr, size_t errstr_size)
{
    if (conf == NULL || t == NULL || (t->count > 0 && t->props == NULL) ||
        t->count > 0xffff || t->layer == NULL) {
        rg__seterr(errstr, errstr_size, "rg_conf_add_table: bad table");
        return RG_EINVAL;
    }
    for (size_t l = 0; l < conf->nlayers; l++)
        if (conf->layers[l].t == t)
            return 0;
    struct layer ly = {t, calloc(t->count ? t->count : 1, sizeof(union value)),
                       calloc(t->count ? t->count : 1, sizeof(bool)),
                       malloc(sizeof(int32_t) * (t->count ? t->count : 1))};
    struct layer *nl = realloc(conf->layers,
                               sizeof(*nl) * (conf->nlayers + 1));
    if (nl != NULL)
        conf->layers = nl;
    if (ly.v == NULL || ly.set == NULL || ly.alias == NULL || nl == NULL) {
        free(ly.v);
        free(ly.set);
        free(ly.alias);
        rg__seterr(errstr, errstr_size, "out of memory");
        return RG_ENOMEM;
    }
    int rc = 0;
    size_t i;
    for (i = 0; i < t->count && rc == 0; i++) {
        const rg_conf_prop_t *p = &t->props[i];
        struct where w;
        ly.alias[i] = -1;
        if (find(conf, p->name, &w)) {
            if (!same_row(prop_of(conf, w), p)) {
                rg__seterr(errstr, errstr_size, "%s: defined differently by "
                           "layers %s and %s", p->name,
                           conf->layers[w.l].t->layer, t->layer);
                rc = RG_EEXIST;
            }
            ly.alias[i] = (int32_t)(w.l << 16 | w.i);
            continue;
        }
        for (size_t k = 0; k < i && rc == 0; k++)
            if (ly.alias[k] < 0 && strcmp(t->props[k].name, p->name) == 0) {
                rg__seterr(errstr, errstr_size, "%s: defined twice by layer "
                           "%s", p->name, t->layer);
                rc = RG_EEXIST;
            }
        if (rc != 0)
            break;
        char msg[256];
        rc = validate(p, p->def, &ly.v[i].i, msg, sizeof(msg));
        if (rc != 0) {
            rg__seterr(errstr, errstr_size, "layer %s: bad default: %s",
                       t->layer, msg);
            rc = RG_EINVAL;
        } else if (is_text(p->type) &&
                   (ly.v[i].s = strdup(p->def)) == NULL) {
            rg__seterr(errstr, errstr_size, "out of memory");
            rc = RG_ENOMEM;
        }
    }
    if (rc != 0) {
        /* rows from i on hold nothing yet: mark them as aliases */
        for (; i < t->count; i++)
            ly.alias[i] = 0;
        layer_free(&ly);
        return rc;
    }
    conf->layers[conf->nlayers++] = ly;
    return 0;
}

size_t rg_conf_table_count(const rg_conf_t *conf)
{
    return conf->nlayers;
}

const rg_conf_table_t *rg_conf_table_at(const rg_conf_t *conf, size_t i)
{
    return i < conf->nlayers ? conf->layers[i].t : NULL;
}

rg_conf_t *rg_conf_new(void)
{
    rg_conf_t *conf = calloc(1, sizeof(*conf));
    if (conf == NULL)
        return NULL;
    if (rg_conf_add_table(conf, &core_table, NULL, 0) != 0) {
        rg_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

rg_conf_t *rg_conf_dup(const rg_conf_t *src)
{
    rg_conf_t *conf = calloc(1, sizeof(*conf));
    if (conf == NULL)
        return NULL;
    for (size_t l = 0; l < src->nlayers; l++) {
        const struct layer *sl = &src->layers[l];
        if (rg_conf_add_table(conf, sl->t, NULL, 0) != 0)
            goto fail;
        struct layer *dl = &conf->layers[l];
        for (size_t i = 0; i < sl->t->count; i++) {
            if (sl->alias[i] >= 0)
                continue;
            dl->set[i] = sl->set[i];
            if (!is_text(sl->t->props[i].type)) {
                dl->v[i].i = sl->v[i].i;
                continue;
            }
            char *s = strdup(sl->v[i].s);
            if (s == NULL)
                goto fail;
            free(dl->v[i].s);
            dl->v[i].s = s;
        }
    }
    for (size_t i = 0; i < src->npass; i++)
        if (pass_set(conf, src->pass[i].name, src->pass[i].value) != 0)
            goto fail;
    conf->log_cb = src->log_cb;
    conf->log_opaque = src->log_opaque;
    return conf;
fail:
    rg_conf_destroy(conf);
    return NULL;
}

void rg_conf_destroy(rg_conf_t *conf)
{
    if (conf == NULL)
        return;
    for (size_t l = 0; l < conf->nlayers; l++)
        layer_free(&conf->layers[l]);
    free(conf->layers);
    for (size_t i = 0; i < conf->npass; i++) {
        free(conf->pass[i].name);
        free(conf->pass[i].value);
    }
    free(conf->pass);
    free(conf);
}

void rg_conf_set_log_cb(rg_conf_t *conf, rg_log_cb *cb, void *opaque)
{
    conf->log_cb = cb;
    conf->log_opaque = opaque;
}

rg_log_cb *rg_conf_log_cb(const rg_conf_t *conf, void **opaque)
{
    if (opaque != NULL)
        *opaque = conf->log_opaque;
    return conf->log_cb;
}

void rg_conf_log(const rg_conf_t *conf, rg_log_level_t level, const char *who,
                 const char *fmt, ...)
{
    if (conf == NULL || conf->log_cb == NULL)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    conf->log_cb(conf->log_opaque, level, who, line);
}

int rg_conf_set(rg_conf_t *conf, const char *name, const char *value,
                char *errstr, size_t errstr_size)
{
    if (conf == NULL || name == NULL || value == NULL) {
        rg__seterr(errstr, errstr_size, "rg_conf_set: NULL argument");
        return RG_EINVAL;
    }
    struct where w;
    if (!find(conf, name, &w)) {
        if (is_pass(conf, name)) {
            if (pass_set(conf, name, value) != 0) {
                rg__seterr(errstr, errstr_size, "%s: out of memory", name);
                return RG_ENOMEM;
            }
            return 0;
        }
        rg__seterr(errstr, errstr_size, "%s: unknown property", name);
        return RG_ENOENT;
    }
    const rg_conf_prop_t *p = prop_of(conf, w);
    int64_t iv;
    int rc = validate(p, value, &iv, errstr, errstr_size);
    if (rc != 0)
        return rc;
    union value *v = value_of(conf, w);
    if (is_text(p->type)) {
        char *s = strdup(value);
        if (s == NULL) {
            rg__seterr(errstr, errstr_size, "%s: out of memory", name);
            return RG_ENOMEM;
        }
        free(v->s);
        v->s = s;
    } else {
        v->i = iv;
    }
    conf->layers[w.l].set[w.i] = true;
    return 0;
}

bool rg_conf_is_set(const rg_conf_t *conf, const char *name)
{
    struct where w;
    if (find(conf, name, &w))
        return conf->layers[w.l].set[w.i];
    return pass_find(conf, name) != NULL;
}

int rg_conf_get(const rg_conf_t *conf, const char *name, char *dest,
                size_t *dest_size)
{
    struct where w;
    bool known = find(conf, name, &w);
    const struct pass *ps = known ? NULL : pass_find(conf, name);
    if (!known && ps == NULL)
        return RG_ENOENT;
    char buf[32];
    const char *text = buf;
    if (ps != NULL)
        text = ps->value;
    else if (is_text(prop_of(conf, w)->type))
        text = value_of(conf, w)->s;
    else if (prop_of(conf, w)->type == RG_CONF_BOOL)
        text = value_of(conf, w)->i ? "true" : "false";
    else
        snprintf(buf, sizeof(buf), "%" PRId64, value_of(conf, w)->i);
    size_t need = strlen(text) + 1;
    if (dest != NULL && *dest_size < need) {
        *dest_size = need;
        return RG_ERANGE;
    }
    if (dest != NULL)
        memcpy(dest, text, need);
    *dest_size = need;
    return 0;
}

int64_t rg_conf_get_int(const rg_conf_t *conf, const char *name)
{
    struct where w;
    if (!find(conf, name, &w) || is_text(prop_of(conf, w)->type))
        return 0;
    return value_of(conf, w)->i;
}

double rg_conf_get_double(const rg_conf_t *conf, const char *name)
{
    struct where w;
    double d = 0;
    if (find(conf, name, &w) && prop_of(conf, w)->type == RG_CONF_DOUBLE)
        parse_double(value_of(conf, w)->s, &d);
    return d;
}

const char *rg_conf_get_str(const rg_conf_t *conf, const char *name)
{
    struct where w;
    if (!find(conf, name, &w)) {
        const struct pass *ps = pass_find(conf, name);
        return ps ? ps->value : NULL;
    }
    if (prop_of(conf, w)->type != RG_CONF_STR)
        return NULL;
    return value_of(conf, w)->s;
}

int rg_conf_next_passthrough(const rg_conf_t *conf, const char *prefix,
                             size_t *cursor, const char **name,
                             const char **value)
{
    size_t n = strlen(prefix);
    for (; *cursor < conf->npass; (*cursor)++) {
        const struct pass *p = &conf->pass[*cursor];
        if (strncmp(p->name, prefix, n) == 0) {
            *name = p->name + n;
            *value = p->value;
            (*cursor)++;
            return 1;
        }
    }
    return 0;
}

int64_t rg__conf_int(const rg_conf_t *conf, enum rg_prop_id id)
{
    return conf->layers[0].v[id].i;
}

const char *rg__conf_str(const rg_conf_t *conf, enum rg_prop_id id)
{
    return conf->layers[0].v[id].s;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int rg_conf_set_line(rg_conf_t *conf, const char *line, char *errstr,
                     size_t errstr_size)
{
    char *copy = strdup(line);
    if (copy == NULL) {
        rg__seterr(errstr, errstr_size, "out of memory");
        return RG_ENOMEM;
    }
    char *eq = strchr(copy, '=');
    int rc;
    if (eq == NULL) {
        rg__seterr(errstr, errstr_size, "\"%s\": expected name=value", line);
        rc = RG_EINVAL;
    } else {
        *eq = '\0';
        rc = rg_conf_set(conf, trim(copy), trim(eq + 1), errstr,
                         errstr_size);
    }
    free(copy);
    return rc;
}

int rg_conf_load_file(rg_conf_t *conf, const char *path, char *errstr,
                      size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        rg__seterr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return RG_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char msg[512];
        rc = rg_conf_set_line(conf, s, msg, sizeof(msg));
        if (rc != 0) {
            rg__seterr(errstr, errstr_size, "%s:%d: %s", path, lineno, msg);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        rg__seterr(errstr, errstr_size, "%s: read error", path);
        rc = RG_EIO;
    }
    free(line);
    fclose(f);
    return rc;
}
