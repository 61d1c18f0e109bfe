/*
 * conf.c - the configuration object, driven by the table in conf_props.h.
 *
 * Values are stored per property id: integers as int64_t, strings as owned
 * heap copies. rg_conf_set() parses into a temporary and commits only after
 * every check passed, so a failed set leaves the object unchanged.
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

typedef int (check_fn)(const char *name, const char *sval, int64_t ival,
                       char *errstr, size_t errstr_size);
static check_fn check_pow2, check_cpulist, check_sink;

struct prop {
    rg_conf_prop_t pub;
    check_fn *check;
};

static const struct prop props[RG_P__COUNT] = {
#define RG__PROP_ROW(id, name, type, def, min, max, check, doc)              \
    [RG_P_##id] = {{name, RG_CONF_##type, def, min, max, doc}, check},
    RG_CONF_PROPS(RG__PROP_ROW)
#undef RG__PROP_ROW
};

union value {
    int64_t i;
    char *s;
};

/* Properties passed through to a library (`kafka.` + its own name),
 * checked by that library when it is configured, in the order set. */
struct pass {
    char *name, *value;
};

struct rg_conf_s {
    union value v[RG_P__COUNT];
    struct pass *pass;
    size_t npass, cap;
};

static const char *const pass_prefixes[] = {"kafka."};

static bool is_pass(const char *name)
{
    for (size_t i = 0; i < sizeof(pass_prefixes) / sizeof(pass_prefixes[0]);
         i++) {
        size_t n = strlen(pass_prefixes[i]);
        if (strncmp(name, pass_prefixes[i], n) == 0 && name[n] != '\0')
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

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...)
{
    if (errstr == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

static int find(const char *name)
{
    for (int i = 0; i < RG_P__COUNT; i++)
        if (strcmp(props[i].pub.name, name) == 0)
            return i;
    return -1;
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
        seterr(errstr, errstr_size, "%s: %" PRId64 " is not a power of two",
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
            seterr(errstr, errstr_size, "workers.cpus: bad range %ld-%ld in "
                   "\"%s\"", lo, hi, s);
            return RG_EINVAL;
        }
        for (long c = lo; c <= hi; c++) {
            if (n >= max) {
                seterr(errstr, errstr_size, "workers.cpus: more than %d "
                       "CPUs listed", max);
                return RG_ERANGE;
            }
            cpus[n++] = (int)c;
        }
    }
    return n;
bad:
    seterr(errstr, errstr_size, "workers.cpus: cannot parse \"%s\" "
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
            seterr(errstr, errstr_size, "workers.cpus: CPU %d is not "
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

static int check_sink(const char *name, const char *sval, int64_t v,
                      char *errstr, size_t errstr_size)
{
    (void)v;
    if (strcmp(sval, "sqlite") == 0 || strcmp(sval, "mysql") == 0 ||
        strcmp(sval, "null") == 0)
        return 0;
    seterr(errstr, errstr_size, "%s: unknown sink \"%s\" (expected "
           "sqlite, mysql or null)", name, sval);
    return RG_EINVAL;
}

static int set_default(rg_conf_t *conf, int id)
{
    const struct prop *p = &props[id];
    if (p->pub.type == RG_CONF_STR) {
        conf->v[id].s = strdup(p->pub.def);
        return conf->v[id].s ? 0 : RG_ENOMEM;
    }
    if (p->pub.type == RG_CONF_BOOL)
        return parse_bool(p->pub.def, &conf->v[id].i);
    return parse_int(p->pub.def, &conf->v[id].i);
}

rg_conf_t *rg_conf_new(void)
{
    rg_conf_t *conf = calloc(1, sizeof(*conf));
    if (conf == NULL)
        return NULL;
    for (int i = 0; i < RG_P__COUNT; i++) {
        if (set_default(conf, i) != 0) {
            rg_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

rg_conf_t *rg_conf_dup(const rg_conf_t *src)
{
    rg_conf_t *conf = calloc(1, sizeof(*conf));
    if (conf == NULL)
        return NULL;
    for (int i = 0; i < RG_P__COUNT; i++) {
        if (props[i].pub.type == RG_CONF_STR) {
            conf->v[i].s = strdup(src->v[i].s);
            if (conf->v[i].s == NULL) {
                rg_conf_destroy(conf);
                return NULL;
            }
        } else {
            conf->v[i].i = src->v[i].i;
        }
    }
    for (size_t i = 0; i < src->npass; i++)
        if (pass_set(conf, src->pass[i].name, src->pass[i].value) != 0) {
            rg_conf_destroy(conf);
            return NULL;
        }
    return conf;
}

void rg_conf_destroy(rg_conf_t *conf)
{
    if (conf == NULL)
        return;
    for (int i = 0; i < RG_P__COUNT; i++)
        if (props[i].pub.type == RG_CONF_STR)
            free(conf->v[i].s);
    for (size_t i = 0; i < conf->npass; i++) {
        free(conf->pass[i].name);
        free(conf->pass[i].value);
    }
    free(conf->pass);
    free(conf);
}

int rg_conf_set(rg_conf_t *conf, const char *name, const char *value,
                char *errstr, size_t errstr_size)
{
    if (conf == NULL || name == NULL || value == NULL) {
        seterr(errstr, errstr_size, "rg_conf_set: NULL argument");
        return RG_EINVAL;
    }
    int id = find(name);
    if (id < 0 && is_pass(name)) {
        if (pass_set(conf, name, value) != 0) {
            seterr(errstr, errstr_size, "%s: out of memory", name);
            return RG_ENOMEM;
        }
        return 0;
    }
    if (id < 0) {
        seterr(errstr, errstr_size, "%s: unknown property", name);
        return RG_ENOENT;
    }
    const struct prop *p = &props[id];
    int64_t iv = 0;
    int rc;
    switch (p->pub.type) {
    case RG_CONF_INT:
        rc = parse_int(value, &iv);
        if (rc != 0) {
            seterr(errstr, errstr_size, "%s: \"%s\" is not an integer%s",
                   name, value, rc == RG_ERANGE ? " in range" : "");
            return rc;
        }
        if (iv < p->pub.min) {
            seterr(errstr, errstr_size, "%s: %" PRId64 " is below the "
                   "minimum %" PRId64, name, iv, p->pub.min);
            return RG_ERANGE;
        }
        if (iv > p->pub.max) {
            seterr(errstr, errstr_size, "%s: %" PRId64 " is above the "
                   "maximum %" PRId64, name, iv, p->pub.max);
            return RG_ERANGE;
        }
        break;
    case RG_CONF_BOOL:
        if (parse_bool(value, &iv) != 0) {
            seterr(errstr, errstr_size, "%s: \"%s\" is not true or false",
                   name, value);
            return RG_EINVAL;
        }
        break;
    case RG_CONF_STR:
        break;
    }
    if (p->check != NULL) {
        rc = p->check(name, value, iv, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    if (p->pub.type == RG_CONF_STR) {
        char *s = strdup(value);
        if (s == NULL) {
            seterr(errstr, errstr_size, "%s: out of memory", name);
            return RG_ENOMEM;
        }
        free(conf->v[id].s);
        conf->v[id].s = s;
    } else {
        conf->v[id].i = iv;
    }
    return 0;
}

int rg_conf_get(const rg_conf_t *conf, const char *name, char *dest,
                size_t *dest_size)
{
    int id = find(name);
    const struct pass *ps = id < 0 ? pass_find(conf, name) : NULL;
    if (id < 0 && ps == NULL)
        return RG_ENOENT;
    char buf[32];
    const char *text = buf;
    if (ps != NULL)
        text = ps->value;
    else if (props[id].pub.type == RG_CONF_STR)
        text = conf->v[id].s;
    else if (props[id].pub.type == RG_CONF_BOOL)
        text = conf->v[id].i ? "true" : "false";
    else
        snprintf(buf, sizeof(buf), "%" PRId64, conf->v[id].i);
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
    int id = find(name);
    if (id < 0 || props[id].pub.type == RG_CONF_STR)
        return 0;
    return conf->v[id].i;
}

const char *rg_conf_get_str(const rg_conf_t *conf, const char *name)
{
    int id = find(name);
    if (id < 0) {
        const struct pass *ps = pass_find(conf, name);
        return ps ? ps->value : NULL;
    }
    if (props[id].pub.type != RG_CONF_STR)
        return NULL;
    return conf->v[id].s;
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
    return conf->v[id].i;
}

const char *rg__conf_str(const rg_conf_t *conf, enum rg_prop_id id)
{
    return conf->v[id].s;
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
        seterr(errstr, errstr_size, "out of memory");
        return RG_ENOMEM;
    }
    char *eq = strchr(copy, '=');
    int rc;
    if (eq == NULL) {
        seterr(errstr, errstr_size, "\"%s\": expected name=value", line);
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
        seterr(errstr, errstr_size, "%s: %s", path, strerror(errno));
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
            seterr(errstr, errstr_size, "%s:%d: %s", path, lineno, msg);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        seterr(errstr, errstr_size, "%s: read error", path);
        rc = RG_EIO;
    }
    free(line);
    fclose(f);
    return rc;
}

size_t rg_conf_prop_count(void)
{
    return RG_P__COUNT;
}

const rg_conf_prop_t *rg_conf_prop_at(size_t i)
{
    return i < RG_P__COUNT ? &props[i].pub : NULL;
}
