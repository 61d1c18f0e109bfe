/*
 * mock.c - starting and stopping librdkafka's mock cluster (see mock.h).
 */
#include <stdio.h>
#include "mock.h"

int rg_mock_open(rg_mock_t *m, int brokers, char *errstr, size_t size)
{
    char err[512];
    *m = (rg_mock_t){0};
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "log_level", "0", NULL, 0);
    if ((m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err))) ==
        NULL) {
        rd_kafka_conf_destroy(kc);
        snprintf(errstr, size, "cannot start the mock cluster: %s", err);
        return -1;
    }
    if ((m->mc = rd_kafka_mock_cluster_new(m->rk, brokers)) == NULL) {
        rg_mock_close(m);
        snprintf(errstr, size, "cannot start the mock cluster (%d "
                 "brokers)", brokers);
        return -1;
    }
    return 0;
}

int rg_mock_topic(rg_mock_t *m, const char *topic, int partitions,
                  int replication, char *errstr, size_t size)
{
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->mc, topic,
                                                       partitions,
                                                       replication);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    snprintf(errstr, size, "topic %s: %s", topic, rd_kafka_err2str(e));
    return -1;
}

const char *rg_mock_servers(const rg_mock_t *m)
{
    return rd_kafka_mock_cluster_bootstraps(m->mc);
}

void rg_mock_close(rg_mock_t *m)
{
    if (m->mc != NULL)
        rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk != NULL)
        rd_kafka_destroy(m->rk);
    *m = (rg_mock_t){0};
}
