/*
 * conf.h - configuration properties, in layers.
 *
 * Configuration is a set of librdkafka-style `name=value` properties with
 * dotted lowercase names ending in their unit (`flush.interval.ms`). Each
 * layer of a program owns a table of its properties (name, type, default,
 * bounds, an optional extra check, documentation) with a scope, as
 * librdkafka's table has a scope column:
 *
 *   core    the engine itself (rg_conf_core_table(); every rg_conf_t has it)
 *   source  ingest adapters (the Kafka source and producer: kafka.h)
 *   sink    sink adapters (SQLite, MariaDB: sinks.h)
 *   app     programs built on railgun (the `railgun` command line)
 *
 * A rg_conf_t holds the values of the tables added to it; one table per
 * layer, one validation path (rg_conf_set(), also behind `-X` lines and
 * files), one generator (`railgun config --markdown` writes
 * docs/CONFIGURATION.md grouped by scope). A name no added table defines
 * is rejected with "NAME: unknown property". Constructors of adapters add
 * their own table to a private copy of the conf they are given, so a
 * property left unset has its default even when the caller never added
 * the table.
 *
 * A rg_conf_t is plain data: not thread-safe, but independent objects may
 * be used from different threads. rg_engine_new() takes ownership of one.
 */
#ifndef RAILGUN_CONF_H
#define RAILGUN_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_conf_s rg_conf_t;

typedef enum rg_conf_type_e {
    RG_CONF_INT = 0,  /* 64-bit signed integer within [min, max] */
    RG_CONF_STR,      /* string, optionally checked by the property */
    RG_CONF_BOOL,     /* "true"/"false" (also 1/0) */
    RG_CONF_DOUBLE    /* a finite decimal number (bounds: the check) */
} rg_conf_type_t;

/* Where a property belongs (the order of docs/CONFIGURATION.md). */
typedef enum rg_conf_scope_e {
    RG_CONF_SCOPE_CORE = 0,
    RG_CONF_SCOPE_SOURCE,
    RG_CONF_SCOPE_SINK,
    RG_CONF_SCOPE_APP,
    RG_CONF_SCOPE__COUNT
} rg_conf_scope_t;

/*
 * An extra check of a value that passed its type and bounds: 0, or a
 * negative RG_E* code with a one-line message naming `name` in errstr.
 * ival is the parsed value of INT and BOOL properties.
 */
typedef int (rg_conf_check_cb)(const char *name, const char *value,
                               int64_t ival, char *errstr,
                               size_t errstr_size);

/* One property. */
typedef struct rg_conf_prop_s {
    const char       *name;
    rg_conf_type_t    type;
    const char       *def;    /* default, as text */
    int64_t           min;    /* RG_CONF_INT only */
    int64_t           max;    /* RG_CONF_INT only */
    const char       *doc;    /* one paragraph; mentions extra checks */
    rg_conf_check_cb *check;  /* NULL: type and bounds only */
} rg_conf_prop_t;

/* A check for RG_CONF_DOUBLE shares: the value lies in [0, 1]. */
RG_EXPORT int rg_conf_check_share(const char *name, const char *value,
                                  int64_t ival, char *errstr,
                                  size_t errstr_size);

/* One layer's table. It must outlive every conf it is added to (static
 * storage in practice). */
typedef struct rg_conf_table_s {
    const char            *layer;  /* "core", "kafka", "sqlite", ... */
    rg_conf_scope_t        scope;
    const rg_conf_prop_t  *props;
    size_t                 count;
    /* Names starting with this prefix (e.g. "kafka.") are stored as given
     * and passed to a library that checks them itself; NULL: none. */
    const char            *passthrough;
    const char            *passthrough_doc;  /* for the reference */
} rg_conf_table_t;

/* The engine's own table (scope core). */
RG_EXPORT const rg_conf_table_t *rg_conf_core_table(void);

/* A new configuration holding the core table's defaults. NULL when out of
 * memory. */
RG_EXPORT rg_conf_t *rg_conf_new(void);

/*
 * Adds a layer's table, with its defaults, to conf. Adding a table that is
 * already in conf does nothing. A property that an added table already
 * defines is shared when both rows agree (type, default, bounds), as the
 * sinks and the Kafka source share `topic` and `group.id`; otherwise the
 * call fails. Returns 0, RG_EEXIST (a conflicting row: errstr names the
 * property and both layers), RG_EINVAL (a bad table: a default that fails
 * its own checks), RG_ENOMEM. On failure conf is unchanged.
 */
RG_EXPORT int rg_conf_add_table(rg_conf_t *conf, const rg_conf_table_t *t,
                                char *errstr, size_t errstr_size);

/* The tables in conf, in the order they were added (the core table is
 * first); NULL past the end. */
RG_EXPORT size_t rg_conf_table_count(const rg_conf_t *conf);
RG_EXPORT const rg_conf_table_t *rg_conf_table_at(const rg_conf_t *conf,
                                                  size_t i);

/* A deep copy (same tables, same values), or NULL when out of memory. */
RG_EXPORT rg_conf_t *rg_conf_dup(const rg_conf_t *conf);

/* Frees conf; NULL is fine. */
RG_EXPORT void rg_conf_destroy(rg_conf_t *conf);

/* Severity of a log line. */
typedef enum rg_log_level_e {
    RG_LOG_ERR = 3,
    RG_LOG_WARN = 4,
    RG_LOG_INFO = 6,
} rg_log_level_t;

/*
 * Log callback: one line (no newline) from `who` ("engine", "kafka",
 * "sqlite", ...). It runs on the thread that logs (an ingest thread, a
 * worker, the flusher, an adapter's thread), possibly on several at once,
 * and must not call back into railgun. The core does no I/O of its own:
 * without a callback its lines are dropped (rg_engine_stats() still
 * counts its warnings); the `railgun` program prints them on stderr.
 */
typedef void (rg_log_cb)(void *opaque, rg_log_level_t level, const char *who,
                         const char *line);

/* Sets the log callback that engines and adapters built from conf (or a
 * copy of it) use; NULL turns logging off. */
RG_EXPORT void rg_conf_set_log_cb(rg_conf_t *conf, rg_log_cb *cb,
                                  void *opaque);

/* The callback set on conf (NULL when none) and its opaque. */
RG_EXPORT rg_log_cb *rg_conf_log_cb(const rg_conf_t *conf, void **opaque);

/* Logs a line through conf's callback (printf format); nothing without
 * one. For adapters and programs that share the engine's log. */
RG_EXPORT void rg_conf_log(const rg_conf_t *conf, rg_log_level_t level,
                           const char *who, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/*
 * Sets property `name` to `value` after checking its type, bounds and
 * extra check. Returns 0, or RG_ENOENT (unknown name), RG_EINVAL
 * (malformed value), RG_ERANGE (out of bounds), RG_ENOMEM. On failure
 * conf is unchanged and errstr (when not NULL) receives a one-line
 * message that names the property, e.g. `workers: 0 is below the minimum
 * 1`. A name starting with a table's pass-through prefix is stored as
 * given (see rg_conf_table_t).
 */
RG_EXPORT int rg_conf_set(rg_conf_t *conf, const char *name,
                          const char *value, char *errstr,
                          size_t errstr_size);

/* True when `name` was set (rg_conf_set(), a line or a file), false when
 * it holds its default or is unknown. */
RG_EXPORT bool rg_conf_is_set(const rg_conf_t *conf, const char *name);

/*
 * Copies the value of `name`, as text, into dest. *dest_size is the size of
 * dest on input and the size needed (with the NUL) on output; dest may be
 * NULL to ask for the size. Returns 0, RG_ENOENT, or RG_ERANGE when dest is
 * too small (dest untouched).
 */
RG_EXPORT int rg_conf_get(const rg_conf_t *conf, const char *name,
                          char *dest, size_t *dest_size);

/* The integer value of an RG_CONF_INT or RG_CONF_BOOL property; 0 if none. */
RG_EXPORT int64_t rg_conf_get_int(const rg_conf_t *conf, const char *name);

/* The value of an RG_CONF_DOUBLE property; 0 if none. */
RG_EXPORT double rg_conf_get_double(const rg_conf_t *conf, const char *name);

/* The text of an RG_CONF_STR or pass-through property, owned by conf;
 * NULL if none. */
RG_EXPORT const char *rg_conf_get_str(const rg_conf_t *conf,
                                      const char *name);

/*
 * Iterates over the pass-through properties whose names start with
 * `prefix` (e.g. "kafka."), in the order they were first set: start with
 * *cursor = 0; each call fills *name (without the prefix) and *value and
 * returns 1, then 0 at the end. Both stay owned by conf.
 */
RG_EXPORT int rg_conf_next_passthrough(const rg_conf_t *conf,
                                       const char *prefix, size_t *cursor,
                                       const char **name,
                                       const char **value);

/*
 * Applies a `name=value` line (as given to `-X`). Surrounding blanks are
 * trimmed. Same errors as rg_conf_set(); RG_EINVAL when there is no '='.
 */
RG_EXPORT int rg_conf_set_line(rg_conf_t *conf, const char *line,
                               char *errstr, size_t errstr_size);

/*
 * Reads a properties file: one `name=value` per line, `#` starts a comment
 * line, blank lines ignored. Stops at the first bad line; errstr then says
 * `FILE:LINE: message`. Properties set before the bad line stay set.
 * Returns 0, RG_EIO (cannot read), or rg_conf_set()'s errors.
 */
RG_EXPORT int rg_conf_load_file(rg_conf_t *conf, const char *path,
                                char *errstr, size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_CONF_H */
