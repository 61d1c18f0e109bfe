/*
 * test_producer.c - the producer SDK against librdkafka's mock cluster
 * (the real Kafka protocol, in process): a batch is delivered with one
 * callback per message, one key always lands on one partition in send
 * order, and bad input (no key, an oversized value, malformed JSON, an
 * unknown kafka.* property, no bootstrap servers) is refused at the call
 * with a reason and nothing sent.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/railgun.h"
#include "railgun/kafka.h"
#include "railgun/producer.h"

#define NPART 8
#define NKEYS 50

struct cluster {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

static void cluster_start(struct cluster *c)
{
    char err[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    cr_assert_not_null(c->rk, "%s", err);
    c->mc = rd_kafka_mock_cluster_new(c->rk, 3);
    cr_assert_not_null(c->mc);
    cr_assert_eq(rd_kafka_mock_topic_create(c->mc, "likes", NPART, 1),
                 RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void cluster_stop(struct cluster *c)
{
    rd_kafka_mock_cluster_destroy(c->mc);
    rd_kafka_destroy(c->rk);
}

static rg_conf_t *producer_conf(struct cluster *c)
{
    rg_conf_t *conf = rg_conf_new();
    rg_conf_add_table(conf, rg_kafka_conf_table(), NULL, 0);
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "kafka.bootstrap.servers",
                             rd_kafka_mock_cluster_bootstraps(c->mc), err,
                             sizeof(err)), 0, "%s", err);
    rg_conf_set(conf, "kafka.log_level", "0", err, sizeof(err));
    return conf;
}

struct seen {
    size_t calls, errors;
    int32_t part_of[NKEYS];
    int64_t last_off[NKEYS];
    size_t misplaced, out_of_order;
};

static void on_delivery(void *opaque, const rg_delivery_t *d)
{
    struct seen *s = opaque;
    s->calls++;
    if (d->err) {
        s->errors++;
        return;
    }
    int k = (int)(intptr_t)d->msg_opaque;
    if (s->part_of[k] < 0)
        s->part_of[k] = d->partition;
    else if (s->part_of[k] != d->partition)
        s->misplaced++;
    if (d->offset <= s->last_off[k])
        s->out_of_order++;
    s->last_off[k] = d->offset;
}

Test(producer, batch_delivered_once_each_key_on_one_partition_in_order)
{
    struct cluster c;
    cluster_start(&c);
    rg_conf_t *conf = producer_conf(&c);
    struct seen s = {0};
    for (int k = 0; k < NKEYS; k++) {
        s.part_of[k] = -1;
        s.last_off[k] = -1;
    }
    char err[256];
    rg_producer_t *p = rg_producer_new(conf, on_delivery, &s, err,
                                       sizeof(err));
    cr_assert_not_null(p, "%s", err);
    enum { N = 5000 };
    static char keys[N][8], vals[N][64];
    static rg_produce_msg_t msgs[N];
    for (int i = 0; i < N; i++) {
        int k = i % NKEYS;
        int kl = snprintf(keys[i], sizeof(keys[i]), "%d", k + 1);
        int vl = snprintf(vals[i], sizeof(vals[i]), "{\"video_id\": %d, "
                          "\"user_id\": %d, \"state\": 1}", k + 1, i + 1);
        msgs[i] = (rg_produce_msg_t){keys[i], (size_t)kl, vals[i],
                                     (size_t)vl, (void *)(intptr_t)k};
    }
    cr_assert_eq(rg_producer_send_batch(p, msgs, N), (size_t)N, "%s",
                 rg_producer_last_error());
    cr_assert_eq(rg_producer_flush(p, 30000), 0, "%s",
                 rg_producer_last_error());
    cr_assert_eq(s.calls, (size_t)N, "one delivery callback per message");
    cr_assert_eq(s.errors, 0u);
    cr_assert_eq(s.misplaced, 0u, "a key moved between partitions");
    cr_assert_eq(s.out_of_order, 0u, "a key's messages out of send order");
    cr_assert_eq(rg_producer_in_flight(p), 0u);
    /* several partitions are in use: the key decides, not one default */
    int used[NPART] = {0}, nused = 0;
    for (int k = 0; k < NKEYS; k++)
        if (!used[s.part_of[k]]++)
            nused++;
    cr_assert_gt(nused, 4);
    rg_producer_destroy(p);
    rg_conf_destroy(conf);
    cluster_stop(&c);
}

Test(producer, bad_input_is_refused_with_a_reason_and_nothing_sent)
{
    struct cluster c;
    cluster_start(&c);
    rg_conf_t *conf = producer_conf(&c);
    char err[256];
    rg_conf_set(conf, "kafka.message.max.bytes", "10000", err, sizeof(err));
    struct seen s = {0};
    for (int k = 0; k < NKEYS; k++)
        s.part_of[k] = -1, s.last_off[k] = -1;
    rg_producer_t *p = rg_producer_new(conf, on_delivery, &s, err,
                                       sizeof(err));
    cr_assert_not_null(p, "%s", err);

    cr_assert_eq(rg_producer_send_string(p, NULL, "{}", NULL), RG_EINVAL);
    cr_assert(strstr(rg_producer_last_error(), "key") != NULL);
    cr_assert_eq(rg_producer_send_bytes(p, "", 0, "{}", 2, NULL), RG_EINVAL);
    static char big[20000];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(rg_producer_send_bytes(p, "1", 1, big, sizeof(big), NULL),
                 RG_EINVAL);
    cr_assert(strstr(rg_producer_last_error(), "message.max.bytes") != NULL,
              "%s", rg_producer_last_error());
    static const char *const bad_json[] = {
        "", "{", "{\"a\": 1,}", "[1 2]", "{\"a\" 1}", "01", "1.", "-",
        "\"unterminated", "\"bad \\x escape\"", "{\"a\": 1} trailing",
        "\"\xff\"", "\"\xed\xa0\x80\"", "nul", "{'a': 1}", "[1,]",
        "\"ctl \x01\"",
    };
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        cr_assert_eq(rg_producer_send_json(p, "1", bad_json[i], NULL),
                     RG_EINVAL, "accepted bad JSON #%zu: %s", i,
                     bad_json[i]);
        cr_assert(strstr(rg_producer_last_error(), "JSON") != NULL);
    }
    char deep[201];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    cr_assert_eq(rg_producer_send_json(p, "1", deep, NULL), RG_EINVAL,
                 "nesting past 64 levels");
    cr_assert_eq(rg_producer_in_flight(p), 0u, "a refusal sent something");
    static const char *const good_json[] = {
        "{\"video_id\": 1, \"user_id\": 2, \"state\": 1}", " [1, -2.5e+3, "
        "true, false, null, \"\\u00e9\\n\", {}] ", "\"caf\xc3\xa9\"", "0",
    };
    for (size_t i = 0; i < sizeof(good_json) / sizeof(good_json[0]); i++)
        cr_assert_eq(rg_producer_send_json(p, "1", good_json[i],
                                           (void *)(intptr_t)0),
                     0, "refused good JSON #%zu: %s", i,
                     rg_producer_last_error());
    cr_assert_eq(rg_producer_flush(p, 30000), 0);
    cr_assert_eq(s.calls, sizeof(good_json) / sizeof(good_json[0]),
                 "only the accepted messages were delivered");
    rg_producer_destroy(p);

    /* configuration errors name the property */
    rg_conf_set(conf, "kafka.no.such.property", "1", err, sizeof(err));
    cr_assert_null(rg_producer_new(conf, NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "kafka.no.such.property") != NULL, "%s", err);
    rg_conf_destroy(conf);
    rg_conf_t *empty = rg_conf_new();
    rg_conf_add_table(empty, rg_kafka_conf_table(), NULL, 0);
    cr_assert_null(rg_producer_new(empty, NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "kafka.bootstrap.servers") != NULL, "%s", err);
    rg_conf_destroy(empty);
    cluster_stop(&c);
}
