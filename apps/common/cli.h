/*
 * cli.h - what every `railgun` subcommand shares: --config FILE,
 * -X name=value overrides (as kcat does), --json, one-line errors, number
 * parsing, a clock, the log on stderr, and a progress bar drawn only on a
 * TTY.
 *
 * Order: --config files load as they come; every -X is applied after all
 * of them (rg_cli_finish()), so -X wins wherever it appears, as the
 * example configuration promises.
 */
#ifndef RG_CLI_H
#define RG_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include "railgun/conf.h"

typedef struct rg_cli_s {
    const char *cmd;     /* subcommand name, for messages */
    rg_conf_t *conf;     /* built from --config, then -X */
    bool json;           /* --json: the final report as one JSON object */
    bool help;           /* --help was given */
    bool no_info;        /* the log shows warnings and errors only (demo,
                          * bench: per-partition lines would bury the
                          * report) */
    const char *xs[256]; /* the -X lines, applied by rg_cli_finish() */
    int nx;
} rg_cli_t;

/* Prints `railgun CMD: message` on stderr; returns 2 (usage error). */
int rg_cli_fail(const rg_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints `railgun CMD: message` on stderr; returns 1 (the work failed). */
int rg_cli_error(const rg_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints `railgun CMD: message` on stderr; returns the exit status that
 * the RG_E* code `err` of the failed call stands for: 2 when it refused
 * the input (RG_EINVAL, RG_ERANGE, RG_ENOENT: a value, a combination of
 * values, a name), else 1 (the work failed: a server, a file, memory). */
int rg_cli_report(const rg_cli_t *cli, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The exit status rg_cli_report() returns for err, without printing. */
int rg_cli_status(int err);

/* Applies the -X lines (after every --config) and sets the log callback
 * (rg_cli_log) on cli->conf. 0, or 2 after printing the error. */
int rg_cli_finish(rg_cli_t *cli);

/* Log callback (railgun/conf.h): `railgun CMD: WHO: line` on stderr (with
 * "warning: " or "error: " before the line at those levels); opaque is
 * the rg_cli_t. */
void rg_cli_log(void *opaque, rg_log_level_t level, const char *who,
                const char *line);

/*
 * Consumes a common option at argv[*i] (advancing *i past its value).
 * Returns 1 when consumed, 0 when not a common option, -1 after printing
 * an error.
 */
int rg_cli_common(rg_cli_t *cli, int argc, char **argv, int *i);

/* The value of option argv[*i] (`--opt V` or `--opt=V`), or NULL after an
 * error. `name` is the option without its value. */
const char *rg_cli_value(rg_cli_t *cli, int argc, char **argv, int *i,
                         const char *name);

/* True when argv[i] is `name` or `name=...`. */
bool rg_cli_is(const char *arg, const char *name);

/* Strict number parsing with a one-line error naming the option. */
int rg_cli_u64(rg_cli_t *cli, const char *opt, const char *s, uint64_t min,
               uint64_t max, uint64_t *out);
int rg_cli_double(rg_cli_t *cli, const char *opt, const char *s, double min,
                  double max, double *out);

/* Monotonic seconds. */
double rg_now(void);

/* "12.3M" style figure into buf. */
const char *rg_human(double v, char *buf, int size);

typedef struct rg_progress_s {
    bool enabled;
    const char *label;
    uint64_t total;
    double start;
    double last;
} rg_progress_t;

/* A progress bar on stderr, enabled only when stderr is a TTY and `quiet`
 * is false. */
void rg_progress_init(rg_progress_t *p, const char *label, uint64_t total,
                      bool quiet);
void rg_progress_update(rg_progress_t *p, uint64_t done);
void rg_progress_finish(rg_progress_t *p);

#endif /* RG_CLI_H */
