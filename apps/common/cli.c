/*
 * cli.c - shared command-line plumbing (see cli.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "railgun/error.h"

static void vreport(const rg_cli_t *cli, const char *fmt, va_list ap)
{
    fprintf(stderr, "railgun %s: ", cli->cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int rg_cli_fail(const rg_cli_t *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cli, fmt, ap);
    va_end(ap);
    return 2;
}

int rg_cli_error(const rg_cli_t *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cli, fmt, ap);
    va_end(ap);
    return 1;
}

int rg_cli_status(int err)
{
    return err == RG_EINVAL || err == RG_ERANGE || err == RG_ENOENT ? 2 : 1;
}

int rg_cli_report(const rg_cli_t *cli, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cli, fmt, ap);
    va_end(ap);
    return rg_cli_status(err);
}

void rg_cli_log(void *opaque, rg_log_level_t level, const char *who,
                const char *line)
{
    const rg_cli_t *cli = opaque;
    if (cli->no_info && level > RG_LOG_WARN)
        return;
    /* one write per line, so lines of several threads do not mix */
    char buf[1400];
    snprintf(buf, sizeof(buf), "railgun %s: %s%s: %s\n", cli->cmd,
             level == RG_LOG_ERR ? "error: "
             : level == RG_LOG_WARN ? "warning: " : "", who, line);
    fputs(buf, stderr);
}

int rg_cli_finish(rg_cli_t *cli)
{
    char err[512];
    for (int k = 0; k < cli->nx; k++)
        if (rg_conf_set_line(cli->conf, cli->xs[k], err, sizeof(err)) != 0)
            return rg_cli_fail(cli, "-X %s", err);
    cli->nx = 0;
    rg_conf_set_log_cb(cli->conf, rg_cli_log, cli);
    return 0;
}

bool rg_cli_is(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

const char *rg_cli_value(rg_cli_t *cli, int argc, char **argv, int *i,
                         const char *name)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (arg[n] == '=')
        return arg + n + 1;
    if (*i + 1 >= argc) {
        rg_cli_fail(cli, "%s needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

int rg_cli_common(rg_cli_t *cli, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    char err[512];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
        cli->help = true;
        return 1;
    }
    if (!strcmp(arg, "--json")) {
        cli->json = true;
        return 1;
    }
    if (rg_cli_is(arg, "--config")) {
        const char *path = rg_cli_value(cli, argc, argv, i, "--config");
        if (path == NULL)
            return -1;
        if (rg_conf_load_file(cli->conf, path, err, sizeof(err)) != 0) {
            rg_cli_fail(cli, "%s", err);
            return -1;
        }
        return 1;
    }
    if (!strncmp(arg, "-X", 2)) {
        const char *kv = arg + 2;
        if (*kv == '\0') {
            if (*i + 1 >= argc) {
                rg_cli_fail(cli, "-X needs name=value");
                return -1;
            }
            kv = argv[++*i];
        }
        if (strchr(kv, '=') == NULL) {
            rg_cli_fail(cli, "-X %s: expected name=value", kv);
            return -1;
        }
        if (cli->nx == (int)(sizeof(cli->xs) / sizeof(cli->xs[0]))) {
            rg_cli_fail(cli, "too many -X options");
            return -1;
        }
        cli->xs[cli->nx++] = kv;
        return 1;
    }
    return 0;
}

int rg_cli_u64(rg_cli_t *cli, const char *opt, const char *s, uint64_t min,
               uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        goto bad;
    if (v < min || v > max) {
        rg_cli_fail(cli, "%s: %llu is out of range [%llu, %llu]", opt, v,
                    (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
bad:
    rg_cli_fail(cli, "%s: \"%s\" is not a whole number", opt, s);
    return -1;
}

int rg_cli_double(rg_cli_t *cli, const char *opt, const char *s, double min,
                  double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno == ERANGE || isnan(v)) {
        rg_cli_fail(cli, "%s: \"%s\" is not a number", opt, s);
        return -1;
    }
    if (v < min || v > max) {
        rg_cli_fail(cli, "%s: %g is out of range [%g, %g]", opt, v, min,
                    max);
        return -1;
    }
    *out = v;
    return 0;
}

double rg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *rg_human(double v, char *buf, int size)
{
    if (v >= 1e9)
        snprintf(buf, size, "%.2fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, size, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, size, "%.1fk", v / 1e3);
    else
        snprintf(buf, size, "%.0f", v);
    return buf;
}

void rg_progress_init(rg_progress_t *p, const char *label, uint64_t total,
                      bool quiet)
{
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->label = label;
    p->total = total;
    p->start = p->last = rg_now();
}

void rg_progress_update(rg_progress_t *p, uint64_t done)
{
    if (!p->enabled)
        return;
    double now = rg_now();
    if (now - p->last < 0.1 && done < p->total)
        return;
    p->last = now;
    const int width = 30;
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    if (frac > 1)
        frac = 1;
    int fill = (int)(frac * width);
    char bar[64], a[16], b[16], r[16];
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(width - fill));
    bar[width] = '\0';
    double el = now - p->start;
    fprintf(stderr, "\r%s [%s] %3.0f%% %s/%s %s/s ", p->label, bar,
            frac * 100, rg_human((double)done, a, sizeof(a)),
            rg_human((double)p->total, b, sizeof(b)),
            rg_human(el > 0 ? (double)done / el : 0, r, sizeof(r)));
    fflush(stderr);
}

void rg_progress_finish(rg_progress_t *p)
{
    if (!p->enabled)
        return;
    rg_progress_update(p, p->total);
    fputc('\n', stderr);
}
