/*
 * likes_conf.c - the `railgun` program's own configuration rows (layer
 * "railgun", scope app) and the configuration every command starts from:
 * the core's table plus the Kafka, SQLite, MariaDB and program tables.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "likes_job.h"
#include "railgun/kafka.h"
#include "railgun/sinks.h"

static int check_sink(const char *name, const char *sval, int64_t v,
                      char *errstr, size_t errstr_size)
{
    (void)v;
    if (strcmp(sval, "sqlite") == 0 || strcmp(sval, "mysql") == 0 ||
        strcmp(sval, "null") == 0)
        return 0;
    snprintf(errstr, errstr_size, "%s: unknown sink \"%s\" (expected "
             "sqlite, mysql or null)", name, sval);
    return RG_EINVAL;
}

static const rg_conf_prop_t app_props[] = {
    {"sink", RG_CONF_STR, "sqlite", 0, 0,
     "Where merged epochs go: `sqlite` (embedded, the default), `mysql` "
     "(MariaDB/MySQL) or `null` (discard; for benchmarks).", check_sink},
    {"stats.interval.ms", RG_CONF_INT, "0", 0, 86400000,
     "railgun run: print the stats every this many ms (0: only on SIGUSR1 "
     "and at the end).", NULL},
    {"undecodable.alert.share", RG_CONF_DOUBLE, "0.01", 0, 0,
     "railgun run: warn loudly (naming the reasons and a sample partition "
     "and offset) when more than this share of the messages consumed over "
     "undecodable.alert.window.ms could not be decoded; 0 warns at the "
     "first one.", rg_conf_check_share},
    {"undecodable.alert.window.ms", RG_CONF_INT, "10000", 100, 86400000,
     "railgun run: the window undecodable.alert.share looks at; the "
     "warning repeats at most once per window while it holds.", NULL},
    {"produce.timeout.ms", RG_CONF_INT, "30000", 100, 86400000,
     "railgun produce: give up on messages not delivered within this long "
     "(librdkafka's message.timeout.ms; kafka.message.timeout.ms "
     "overrides) and fail with the cause, instead of waiting the default "
     "five minutes when no broker is reachable.", NULL},
    {"dlq.topic", RG_CONF_STR, "", 0, 0,
     "railgun run: also produce every dead letter to this Kafka topic (on "
     "the job's cluster), after the epoch holding it committed, at least "
     "once: keyed \"TOPIC/PARTITION/OFFSET\" (its coordinates), the value "
     "one JSON object (the fields of `railgun dlq show --json` and the "
     "source \"topic\"). Each node forwards the dead letters of the "
     "partitions it holds and marks them (forwarded_ms) once Kafka "
     "acknowledged them; one left unmarked (a crash, Kafka down) goes out "
     "again later. Needs a sink with a failures table; not the job's own "
     "topic. \"\": off.", NULL},
    {"dlq.topic.poll.ms", RG_CONF_INT, "1000", 10, 3600000,
     "railgun run: how often the dlq.topic forwarder looks for dead "
     "letters not forwarded yet (an indexed query per held partition).",
     NULL},
    {"dlq.topic.timeout.ms", RG_CONF_INT, "30000", 1000, 3600000,
     "railgun run: a dead letter Kafka did not acknowledge within this "
     "long stays unmarked and goes out at a later look (librdkafka's "
     "message.timeout.ms for the forwarder's producer).", NULL},
    {"likes.fault.stall.video", RG_CONF_INT, "-1", -1, INT64_MAX,
     "A TEST AID, never for production: the likes job's worker sleeps "
     "likes.fault.stall.ms before applying each event of this video, so "
     "its partition's watermark stands on it (tests/doctor_run_test.sh "
     "makes `railgun doctor` name a stuck watermark with it). -1: off.",
     NULL},
    {"likes.fault.stall.ms", RG_CONF_INT, "0", 0, 3600000,
     "A TEST AID: how long likes.fault.stall.video's events hold their "
     "worker (0: off). A stop request ends every stall at once.", NULL},
    {"likes.fault.fail.ratio", RG_CONF_STR, "0", 0, 0,
     "A TEST AID (`railgun demo --fail-ratio`): this share (0 .. 1) of "
     "events fails transiently, chosen by a hash of the event's timestamp "
     "(so the same events in every run); each recovers after 1 .. "
     "likes.fault.fail.attempts attempts. 0: off.", NULL},
    {"likes.fault.fail.video", RG_CONF_INT, "-1", -1, INT64_MAX,
     "A TEST AID: every event of this video fails transiently at every "
     "attempt, so each becomes a dead letter after retry.max.attempts "
     "(tests/doctor_run_test.sh makes `railgun doctor` name the runaway "
     "retries with it). -1: off.", NULL},
    {"likes.fault.fail.attempts", RG_CONF_INT, "5", 1, 1000,
     "A TEST AID: most attempts a likes.fault.fail.ratio event fails "
     "before it succeeds.", NULL},
    {"likes.fault.poison.step", RG_CONF_INT, "0", 0, INT64_MAX,
     "A TEST AID (`railgun demo --poison`): with the stream's events "
     "numbered by timestamp from likes.fault.poison.base, event i fails "
     "for good when i % step == step / 2 and i / step < "
     "likes.fault.poison.count. 0: off.", NULL},
    {"likes.fault.poison.count", RG_CONF_INT, "0", 0, INT64_MAX,
     "A TEST AID: how many events likes.fault.poison.step poisons.", NULL},
    {"likes.fault.poison.base", RG_CONF_INT, "1700000000000", 0, INT64_MAX,
     "A TEST AID: the timestamp of event 0 for likes.fault.poison.step.",
     NULL},
};

/* The metrics listener of `railgun run` (run_metrics.c); in every
 * command's conf, so `railgun doctor` and `bench e2e` find it too. */
static const rg_conf_prop_t metrics_props[] = {
    {"metrics.listen", RG_CONF_STR, "127.0.0.1:9464", 0, 0,
     "railgun run: where to serve /metrics (Prometheus text), /stats.json, "
     "/healthz, /readyz, /doctor.json and the dashboard at / "
     "(\"host:port\", \"[v6]:port\"; port 0 picks a free one; \"\" "
     "turns the listener off). When the default address is taken (another "
     "`railgun run` on this host) the run warns and goes on without a "
     "listener; an address set explicitly that cannot be bound refuses to "
     "start.", NULL},
    {"metrics.threads", RG_CONF_INT, "2", 1, 64,
     "railgun run: the metrics listener's polling threads.", NULL},
    {"metrics.max.connections", RG_CONF_INT, "64", 1, 100000,
     "railgun run: open connections the metrics listener accepts at once "
     "(more wait in the backlog).", NULL},
    {"metrics.timeout.ms", RG_CONF_INT, "10000", 1000, 3600000,
     "railgun run: the metrics listener closes a connection idle this "
     "long (whole seconds).", NULL},
    {"metrics.request.timeout.ms", RG_CONF_INT, "30000", 1000, 3600000,
     "railgun run: a request to the metrics listener must arrive whole "
     "within this long (whole seconds), else its connection is closed.",
     NULL},
};

static const rg_conf_table_t app_table = {
    .layer = "railgun",
    .scope = RG_CONF_SCOPE_APP,
    .props = app_props,
    .count = sizeof(app_props) / sizeof(app_props[0]),
};

static const rg_conf_table_t metrics_table = {
    .layer = "metrics",
    .scope = RG_CONF_SCOPE_APP,
    .props = metrics_props,
    .count = sizeof(metrics_props) / sizeof(metrics_props[0]),
};

const rg_conf_table_t *rg_likes_metrics_conf_table(void)
{
    return &metrics_table;
}

const rg_conf_table_t *rg_likes_conf_table(void)
{
    return &app_table;
}

rg_conf_t *rg_likes_conf_new(void)
{
    rg_conf_t *c = rg_conf_new();
    const rg_conf_table_t *tables[] = {rg_kafka_conf_table(),
                                       rg_sqlite_conf_table(),
                                       rg_mysql_conf_table(), &app_table,
                                       &metrics_table};
    for (size_t i = 0; c != NULL && i < sizeof(tables) / sizeof(tables[0]);
         i++)
        if (rg_conf_add_table(c, tables[i], NULL, 0) != 0) {
            rg_conf_destroy(c);
            c = NULL;
        }
    return c;
}
