/*
 * failures.h - what the SQL sinks share about their failures table
 * (sink.table.failures; internal, header-only): the column names, which
 * both sinks keep the same, and the checks of write_failures' and
 * scan_failures' arguments (railgun/sink.h).
 *
 * One row per failed event, keyed by where it came from:
 *   partition_id, offset_id  the source partition and offset (PK)
 *   state       1 delayed (waits for a retry), 2 dead (a dead letter)
 *   route_key   rg_failure_t.key, the uint64 stored as int64 (two's
 *               complement both ways: exact)
 *   msg_key     the message key (RG_FAILURE_F_MESSAGE), NULL when none
 *   attempts, flags, first_ms, last_ms, due_ms, reasons, payload,
 *   event_len   rg_failure_t's fields
 *   replayed_ms when `railgun dlq replay` produced the row's message
 *               again (NULL: never); the sink's upserts leave it alone
 *   forwarded_ms when `railgun run` produced the dead letter to dlq.topic
 *               (NULL: not yet); the sink's upserts leave it alone, and
 *               an index on (state, forwarded_ms) finds the rows still
 *               to forward (scan_failures(RG_FAILURE_UNFORWARDED))
 *   mtime       when the row was last written
 * No consumer_group or topic column: like the merged and staged tables
 * the failures table belongs to the one job that owns the tables
 * (railgun/sinks.h, "Ownership"), so a handover moves its delayed events
 * and dead letters to the new group with the counts, and every write is
 * fenced by the epoch's write_offsets().
 */
#ifndef RG_ADAPTER_FAILURES_H
#define RG_ADAPTER_FAILURES_H

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/sink.h"
#include "../../common/util.h"

/* The columns, in the order the sinks select them. */
#define RG_FAILURE_COLS                                                     \
    "partition_id, offset_id, state, route_key, msg_key, attempts, "        \
    "flags, first_ms, last_ms, due_ms, reasons, payload, event_len, "       \
    "replayed_ms, forwarded_ms, mtime"

/* Their places in a row of "SELECT " RG_FAILURE_COLS. */
enum {
    RG_FC_PARTITION, RG_FC_OFFSET, RG_FC_STATE, RG_FC_ROUTE_KEY,
    RG_FC_MSG_KEY, RG_FC_ATTEMPTS, RG_FC_FLAGS, RG_FC_FIRST_MS,
    RG_FC_LAST_MS, RG_FC_DUE_MS, RG_FC_REASONS, RG_FC_PAYLOAD,
    RG_FC_EVENT_LEN, RG_FC_REPLAYED_MS, RG_FC_FORWARDED_MS, RG_FC_MTIME,
    RG_FC__COUNT
};

/* The same as a list, the key columns first (the schema checks). */
#define RG_FAILURE_COL_NAMES                                                \
    "partition_id", "offset_id", "state", "route_key", "msg_key",           \
    "attempts", "flags", "first_ms", "last_ms", "due_ms", "reasons",        \
    "payload", "event_len", "replayed_ms", "forwarded_ms", "mtime"

/* The stored reasons' length: cut to RG_FAILURE_REASONS_MAX - 1 bytes
 * whatever the caller passed (NULL: none). */
static inline size_t rg__failure_reasons_len(const char *reasons)
{
    if (reasons == NULL)
        return 0;
    const void *nul = memchr(reasons, '\0', RG_FAILURE_REASONS_MAX - 1);
    return nul ? (size_t)((const char *)nul - reasons)
               : RG_FAILURE_REASONS_MAX - 1;
}

/* Every row's state is one write_failures() knows: 0, or RG_EINVAL with
 * the row named in errstr (nothing written). */
static inline int rg__failures_check(const char *who, const rg_failure_t *rows,
                                     size_t n, char *errstr, size_t size)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].state != RG_FAILURE_DELAYED &&
            rows[i].state != RG_FAILURE_DEAD &&
            rows[i].state != RG_FAILURE_CLEARED) {
            rg__seterr(errstr, size, "%s: failure row %zu (partition %"
                       PRId32 " offset %" PRId64 ") has unknown state %"
                       PRId32, who, i, rows[i].partition, rows[i].offset,
                       rows[i].state);
            return RG_EINVAL;
        }
    return 0;
}

static inline int rg__part_cmp(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

/*
 * scan_failures' filters, checked: state 0, DELAYED, DEAD or UNFORWARDED; the
 * partitions sorted and without repeats into a new array *out (*nout of
 * them; NULL and 0 for nparts 0, every partition), so that a scan per
 * partition in this order yields (partition, offset) order. 0, RG_EINVAL
 * or RG_ENOMEM with errstr. The caller frees *out.
 */
static inline int rg__failures_filter(const char *who, int state,
                                      const int32_t *parts, size_t nparts,
                                      int32_t **out, size_t *nout,
                                      char *errstr, size_t size)
{
    *out = NULL;
    *nout = 0;
    if (state != 0 && state != RG_FAILURE_DELAYED &&
        state != RG_FAILURE_DEAD && state != RG_FAILURE_UNFORWARDED) {
        rg__seterr(errstr, size, "%s: scan_failures: state %d is not 0, "
                   "delayed (1), dead (2) or unforwarded (4)", who, state);
        return RG_EINVAL;
    }
    if (nparts == 0)
        return 0;
    int32_t *p = malloc(nparts * sizeof(*p));
    if (p == NULL) {
        rg__seterr(errstr, size, "%s: out of memory", who);
        return RG_ENOMEM;
    }
    memcpy(p, parts, nparts * sizeof(*p));
    qsort(p, nparts, sizeof(*p), rg__part_cmp);
    size_t k = 0;
    for (size_t i = 0; i < nparts; i++)
        if (k == 0 || p[k - 1] != p[i])
            p[k++] = p[i];
    *out = p;
    *nout = k;
    return 0;
}

#endif /* RG_ADAPTER_FAILURES_H */
