/*
 * props.h - property rows more than one adapter shares (internal,
 * header-only). rg_conf_add_table() merges identical rows of different
 * tables into one property, so each adapter's table lists them and a
 * program that adds several tables gets one `topic`, one `group.id`.
 *
 *   RG_STREAM_PROPS      topic, group.id: the Kafka source and producer
 *                        read them, and the sinks key their offsets rows
 *                        by them
 *   RG_SQL_SINK_PROPS    the SQL sinks' table names
 */
#ifndef RG_ADAPTER_PROPS_H
#define RG_ADAPTER_PROPS_H

#include <ctype.h>
#include <string.h>
#include "railgun/conf.h"
#include "railgun/error.h"
#include "../../common/util.h"

#define RG_STREAM_PROPS                                                      \
    {"topic", RG_CONF_STR, "likes", 0, 0,                                    \
     "Topic the events come from (Kafka source) or go to (producer); the "  \
     "sinks store positions in their offsets table under it.", NULL},       \
    {"group.id", RG_CONF_STR, "railgun", 0, 0,                               \
     "Consumer group: the Kafka source joins it, and the sinks store "      \
     "positions in their offsets table under it.", NULL}

/* A table name the SQL sinks put into statements: identifiers cannot be
 * bound as parameters, so only [A-Za-z_][A-Za-z0-9_]* up to 64 bytes. An
 * empty name means "no such table" where the row's doc allows it. */
__attribute__((unused)) static int rg__sql_ident_check(const char *name,
                                                       const char *value,
                                                       int64_t ival,
                                                       char *errstr,
                                                       size_t size)
{
    (void)ival;
    size_t n = strlen(value);
    bool ok = n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = value[i] == '_' || isalpha((unsigned char)value[i]) ||
             (i > 0 && isdigit((unsigned char)value[i]));
    if (ok)
        return 0;
    rg__seterr(errstr, size, "%s: \"%s\" is not a table name (letters, "
               "digits and _, not starting with a digit, at most 64)", name,
               value);
    return RG_EINVAL;
}

/* The same, but an empty name is refused too. */
__attribute__((unused)) static int rg__sql_ident_required(const char *name,
                                                          const char *value,
                                                          int64_t ival,
                                                          char *errstr,
                                                          size_t size)
{
    if (value[0] == '\0') {
        rg__seterr(errstr, size, "%s: must not be empty", name);
        return RG_EINVAL;
    }
    return rg__sql_ident_check(name, value, ival, errstr, size);
}

#define RG_SQL_SINK_PROPS                                                    \
    RG_STREAM_PROPS,                                                         \
    {"sink.table.merged", RG_CONF_STR, "counts", 0, 0,                       \
     "SQL sinks: table of merged rows with integer keys, columns "          \
     "(video_id, count, mtime, ctime); each epoch adds to count.",          \
     rg__sql_ident_required},                                                \
    {"sink.table.merged_bytes", RG_CONF_STR, "", 0, 0,                       \
     "SQL sinks: table of merged rows with byte-string keys (up to 256 "    \
     "bytes), columns (key_bytes, count, mtime, ctime); empty: the sink "   \
     "stores no byte-string keys.", rg__sql_ident_check},                    \
    {"sink.table.staged", RG_CONF_STR, "actions", 0, 0,                      \
     "SQL sinks: table of staged rows, columns (video_id, user_id, state, " \
     "mtime, ctime), upserted per (video_id, user_id); empty: the sink "    \
     "has no staged table (and no read side).", rg__sql_ident_check},        \
    {"sink.table.offsets", RG_CONF_STR, "offsets", 0, 0,                     \
     "SQL sinks: table of stored positions, columns (consumer_group, "      \
     "topic, partition, next_offset, owner_epoch).",                         \
     rg__sql_ident_required},                                                \
    {"sink.table.meta", RG_CONF_STR, "railgun_meta", 0, 0,                   \
     "SQL sinks: table of the sink's own facts, columns (k, v, n, mtime): " \
     "which job (consumer group and topic) owns the merged tables, so a "   \
     "second job on the same database is refused instead of counting "      \
     "every event twice.", rg__sql_ident_required},                          \
    {"sink.table.failures", RG_CONF_STR, "railgun_failures", 0, 0,          \
     "SQL sinks: table of failed events, per (partition_id, offset_id): "   \
     "the delayed retry queue (state 1) and the dead-letter queue (state "  \
     "2), columns (partition_id, offset_id, state, route_key, msg_key, "    \
     "attempts, flags, first_ms, last_ms, due_ms, reasons, payload, "       \
     "event_len, replayed_ms, mtime), written in each epoch's "             \
     "transaction; `railgun dlq` reads it. Empty: the sink keeps no "       \
     "failures (delayed events stay in memory, dead letters go to the "     \
     "engine's dead-letter callback only).", rg__sql_ident_check},           \
    {"sink.table.producers", RG_CONF_STR, "railgun_producers", 0, 0,        \
     "SQL sinks: table of producer marks, per (partition_id, producer_id): " \
     "the highest sequence applied and the window below it (hi, seen), "    \
     "columns (partition_id, producer_id, hi, seen, mtime), written in "    \
     "each epoch's transaction beside the offsets, so a message a "         \
     "producer replayed twice (railgun/producer.h's spool) is applied "     \
     "once, across crashes too. Empty: no exactly-once across replays "     \
     "(such a copy counts twice).", rg__sql_ident_check},                    \
    {"sink.version", RG_CONF_BOOL, "false", 0, 1,                           \
     "SQL sinks: bump the row k='version' of sink.table.meta (n, and v as " \
     "text) first thing in every epoch's transaction, so readers (railgun " \
     "serve's cache) can tell which epochs a read includes; its row lock " \
     "orders the epochs of every process on the database. railgun run "    \
     "turns it on when the read cache is configured (cache.redis.host or " \
     "cache.redis.socket).", NULL},                                          \
    {"sink.handover.from", RG_CONF_STR, "", 0, 0,                            \
     "SQL sinks: move the ownership of the tables from this consumer group " \
     "to group.id, deliberately (a blue/green deploy under a new group): "  \
     "the old group's positions are copied to the new one and fenced (a "  \
     "process of the old group still running stops at its next write). "   \
     "Empty: a database owned by another group is refused (`railgun run "  \
     "--handover-from GROUP`).", NULL}

#endif /* RG_ADAPTER_PROPS_H */
