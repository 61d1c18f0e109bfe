/*
 * conf.h - configuration properties.
 *
 * Configuration is a set of librdkafka-style `name=value` properties with
 * dotted lowercase names ending in their unit (`flush.interval.ms`). One
 * table inside the library holds every property's name, type, default,
 * bounds and documentation; it drives defaults, validation, rg_conf_set()
 * and the generated docs/CONFIGURATION.md (`railgun config --markdown`).
 *
 * A rg_conf_t is plain data: not thread-safe, but independent objects may be
 * used from different threads. rg_engine_new() takes ownership of one.
 */
#ifndef RAILGUN_CONF_H
#define RAILGUN_CONF_H

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
    RG_CONF_BOOL      /* "true"/"false" (also 1/0) */
} rg_conf_type_t;

/* Read-only description of one property, for tools and documentation. */
typedef struct rg_conf_prop_s {
    const char     *name;
    rg_conf_type_t  type;
    const char     *def;    /* default, as text */
    int64_t         min;    /* RG_CONF_INT only */
    int64_t         max;    /* RG_CONF_INT only */
    const char     *doc;    /* one paragraph; mentions extra constraints */
} rg_conf_prop_t;

/* A new configuration holding every default. NULL when out of memory. */
RG_EXPORT rg_conf_t *rg_conf_new(void);

/* A deep copy, or NULL when out of memory. */
RG_EXPORT rg_conf_t *rg_conf_dup(const rg_conf_t *conf);

/* Frees conf; NULL is fine. */
RG_EXPORT void rg_conf_destroy(rg_conf_t *conf);

/*
 * Sets property `name` to `value` after checking its type and bounds.
 * Returns 0, or RG_ENOENT (unknown name), RG_EINVAL (malformed value),
 * RG_ERANGE (out of bounds), RG_ENOMEM. On failure conf is unchanged and
 * errstr (when not NULL) receives a one-line message that names the
 * property, e.g. `workers: 0 is below the minimum 1`.
 *
 * Pass-through: a name starting with `kafka.` is stored as given and
 * handed to librdkafka (without the prefix) by the Kafka adapter, which
 * reports a bad one when it configures the client.
 */
RG_EXPORT int rg_conf_set(rg_conf_t *conf, const char *name,
                          const char *value, char *errstr,
                          size_t errstr_size);

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

/* Number of properties in the table, and the i-th one (NULL past the end). */
RG_EXPORT size_t rg_conf_prop_count(void);
RG_EXPORT const rg_conf_prop_t *rg_conf_prop_at(size_t i);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_CONF_H */
