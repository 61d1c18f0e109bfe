/*
 * kafka_conf.c - the Kafka adapter's configuration table (railgun/kafka.h):
 * the rows the source and the producer read, and the `kafka.`
 * pass-through prefix for librdkafka's own properties.
 */
#define _GNU_SOURCE
#include "railgun/kafka.h"
#include "../common/props.h"
#include "spool.h"

/* spool.h's rows (core table format) as rows of this table */
#define SPOOL_ROW(id, name, type, def, min, max, check, doc) \
    {name, RG_CONF_##type, def, min, max, doc, check},

/* "", "all", or partition numbers separated by commas. */
static int check_partition_list(const char *name, const char *value,
                                int64_t ival, char *errstr, size_t size)
{
    (void)ival;
    if (value[0] == '\0' || strcmp(value, "all") == 0)
        return 0;
    for (const char *p = value; *p;) {
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == ',' && p[1] != '\0')
            p++;
        else if (*p != '\0')
            goto bad;
    }
    return 0;
bad:
    rg__seterr(errstr, size, "%s: \"%s\" is not `all` or a list of "
               "partitions like 0,3,7", name, value);
    return RG_EINVAL;
}

static const rg_conf_prop_t kafka_props[] = {
    RG_STREAM_PROPS,
    {"source.pause.after.ms", RG_CONF_INT, "1000", 1, 3600000,
     "Kafka source: when the engine's backpressure (full rings, a slow "
     "sink) holds a push this long, pause the assigned partitions and "
     "rewind them to the first message not taken, so librdkafka stops "
     "fetching and the consumer keeps polling (rebalances, group "
     "heartbeats); resume when every ring is at most half full and the "
     "sink has room for the next epoch.", NULL},
    {"source.identity", RG_CONF_BOOL, "false", 0, 1,
     "Kafka source: read each message's rg-producer-id / rg-seq headers "
     "(what a producer's spool replay sets, fallback.spool.dir) so a "
     "message that reached Kafka twice is applied once (the sink's "
     "producer marks, sink.table.producers). Off by default: to answer "
     "librdkafka parses every message's headers, also when it has none, "
     "about 130 ns per message on the ingest thread (docs/benchmarks.md). "
     "Turn it on where producers spool.", NULL},
    {"source.warn.after.ms", RG_CONF_INT, "10000", 100, 86400000,
     "Kafka source: warn when every broker has been down, or no partition "
     "has been assigned, for this long (and again every three times as "
     "long while it lasts); also the most often one librdkafka error is "
     "logged (with the count since the last line).", NULL},
    {"source.reset.offsets", RG_CONF_STR, "", 0, 0,
     "Kafka source: accept that these partitions' logs went backwards (the "
     "topic was deleted and recreated, truncated, restored): `all`, or a "
     "comma list of partition numbers. Their stored position moves to the "
     "start of the log, in the sink's offsets table, and the log is "
     "counted from there. Empty (the default): such a partition stops the "
     "source with an error that says what happened (`railgun run "
     "--reset-offsets`).", check_partition_list},
    /* the producer's degraded mode (producer.c), on only with a spool dir */
    {"fallback.after.ms", RG_CONF_INT, "5000", 1, 3600000,
     "Producer: with `fallback.spool.dir` set, switch to degraded mode "
     "(every send goes to the durable spool) when librdkafka reports every "
     "broker down, when a delivery fails because Kafka is unavailable (a "
     "timeout, a lost connection), or when messages are waiting and none "
     "has been delivered for this long. Back to direct sends once "
     "deliveries succeed again and the spool is replayed to Kafka in "
     "order.", NULL},
    {"fallback.block.max.ms", RG_CONF_INT, "100", 0, 60000,
     "Producer: the longest a send call blocks in degraded mode (waiting "
     "for the spool's lock or for its staging buffer while the disk is "
     "behind); past it the send fails with RG_ETIMEDOUT and nothing is "
     "sent. 0: never wait.", NULL},
    RG_SPOOL_PROPS(SPOOL_ROW)
};

static const rg_conf_table_t kafka_table = {
    .layer = "kafka",
    .scope = RG_CONF_SCOPE_SOURCE,
    .props = kafka_props,
    .count = sizeof(kafka_props) / sizeof(kafka_props[0]),
    .passthrough = "kafka.",
    .passthrough_doc =
        "Any property named `kafka.NAME` is handed to librdkafka as `NAME` "
        "(for example `kafka.bootstrap.servers`, `kafka.fetch.max.bytes`). "
        "railgun stores it as given; librdkafka checks it when the client "
        "is configured and a bad one is reported then, naming the "
        "property. The Kafka source sets `enable.auto.commit=false` and "
        "`enable.auto.offset.store=false` (offsets are committed from what "
        "the sink stored; `kafka.enable.auto.commit=true` is refused), "
        "defaults `auto.offset.reset` to `earliest` (a counting job must "
        "not skip the backlog of a new group) and `queued.min.messages` "
        "to 1000000: librdkafka 2.0 counts the whole consumer queue "
        "against it and refetches up to a second after crossing it, which "
        "capped a backpressured engine near 100k events/s. The prefetch "
        "stays bounded by `kafka.queued.max.messages.kbytes`.",
};

const rg_conf_table_t *rg_kafka_conf_table(void)
{
    return &kafka_table;
}

rg_conf_t *rg__kafka_conf(const rg_conf_t *given, char *errstr, size_t size)
{
    rg_conf_t *c = rg_conf_dup(given);
    if (c == NULL) {
        rg__seterr(errstr, size, "kafka: out of memory");
        return NULL;
    }
    if (rg_conf_add_table(c, &kafka_table, errstr, size) != 0) {
        rg_conf_destroy(c);
        return NULL;
    }
    return c;
}
