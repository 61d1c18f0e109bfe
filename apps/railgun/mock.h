/*
 * mock.h - librdkafka's mock Kafka cluster (the real protocol, consumer
 * groups, offset commits; in this process), as `railgun demo`, `bench`
 * and `mock-kafka` start it: a producer handle that carries the cluster,
 * its log silenced, and the brokers.
 *
 * The mock keeps only the newest few MB (or 100000 batches) of each
 * partition and drops older messages silently; a user sizes what it
 * produces ahead of its consumer accordingly.
 */
#ifndef RG_MOCK_H
#define RG_MOCK_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

typedef struct rg_mock_s {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
} rg_mock_t;

/* Starts a cluster of `brokers` brokers into the zeroed m. 0, or -1 with
 * a one-line reason in errstr and m zeroed. */
int rg_mock_open(rg_mock_t *m, int brokers, char *errstr, size_t size);

/* Creates `topic` with `partitions` partitions, each on `replication`
 * brokers. 0, or -1 with a one-line reason in errstr. */
int rg_mock_topic(rg_mock_t *m, const char *topic, int partitions,
                  int replication, char *errstr, size_t size);

/* The bootstrap servers ("host:port,..."), owned by the cluster. */
const char *rg_mock_servers(const rg_mock_t *m);

/* Stops the cluster and leaves m zeroed; a zeroed m is fine. */
void rg_mock_close(rg_mock_t *m);

#endif /* RG_MOCK_H */
