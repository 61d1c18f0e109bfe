/*
 * sink_open.c - picks the sink adapter the `sink` property names.
 */
#include <stdio.h>
#include <string.h>
#include "likes_job.h"
#include "railgun/sinks.h"

int rg_likes_open_sink(const rg_conf_t *conf, unsigned flags, rg_sink_t *out,
                       char *errstr, size_t errstr_size)
{
    const char *kind = rg_conf_get_str(conf, "sink");
    if (kind != NULL && strcmp(kind, "sqlite") == 0)
        return rg_sink_sqlite_open(conf, flags, out, errstr, errstr_size);
    if (kind != NULL && strcmp(kind, "mysql") == 0)
        return rg_sink_mysql_open(conf, flags, out, errstr, errstr_size);
    if (kind != NULL && strcmp(kind, "null") == 0)
        return rg_sink_null_open(out);
    snprintf(errstr, errstr_size, "sink: unknown sink \"%s\"",
             kind ? kind : "");
    return RG_EINVAL;
}
