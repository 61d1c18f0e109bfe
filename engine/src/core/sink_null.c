/*
 * sink_null.c - a sink that stores nothing: rows are dropped, offsets are
 * kept in memory for this process only. For benchmarks and for engines
 * whose processors have their own side effects (railgun/sinks.h).
 */
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/sinks.h"

static int null_begin(void *self, uint64_t epoch, char *e, size_t n)
{
    (void)self, (void)epoch, (void)e, (void)n;
    return 0;
}

static int null_rows(void *self, const rg_row_t *rows, size_t n, char *e,
                     size_t sz)
{
    (void)self, (void)rows, (void)n, (void)e, (void)sz;
    return 0;
}

static int null_bytes(void *self, const rg_bytes_row_t *rows, size_t n,
                      char *e, size_t sz)
{
    (void)self, (void)rows, (void)n, (void)e, (void)sz;
    return 0;
}

static int null_offsets(void *self, const rg_offset_t *offs, size_t n,
                        char *e, size_t sz)
{
    (void)self, (void)offs, (void)n, (void)e, (void)sz;
    return 0;
}

static int null_commit(void *self, char *e, size_t n)
{
    (void)self, (void)e, (void)n;
    return 0;
}

static void null_rollback(void *self)
{
    (void)self;
}

static int null_claim(void *self, const int32_t *parts, size_t n,
                      int64_t *next_out, char *e, size_t sz)
{
    (void)self, (void)parts, (void)e, (void)sz;
    for (size_t i = 0; i < n; i++)
        next_out[i] = -1; /* nothing is ever stored */
    return 0;
}

int rg_sink_null_open(rg_sink_t *out)
{
    if (out == NULL)
        return RG_EINVAL;
    memset(out, 0, sizeof(*out));
    out->begin = null_begin;
    out->write_merged = null_rows;
    out->write_merged_bytes = null_bytes;
    out->write_staged = null_rows;
    out->write_offsets = null_offsets;
    out->commit = null_commit;
    out->rollback = null_rollback;
    out->claim = null_claim;
    return 0;
}
