/*
 * cmd_mock_kafka.c - `railgun mock-kafka`: librdkafka's mock cluster (the
 * real Kafka protocol, consumer groups, offset commits) in a process of
 * its own. Prints the bootstrap servers on one line and serves until
 * SIGTERM or SIGINT, so crash tests can kill consumers without killing
 * the broker, and kcat can talk to it.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "commands.h"

#define MAX_TOPICS 32

struct topic {
    char name[250];
    int partitions;
};

static void usage(void)
{
    printf("usage: railgun mock-kafka [--brokers N] [--topic NAME:PARTITIONS "
           "...] [--json]\n\n"
           "Runs librdkafka's mock Kafka cluster (default 3 brokers, topic "
           "likes:8),\nprints its bootstrap servers on one line, and serves "
           "until SIGTERM or\nSIGINT. Point clients at it with "
           "-X kafka.bootstrap.servers=...\n");
}

static int parse_topic(rg_cli_t *cli, const char *v, struct topic *t)
{
    const char *colon = strrchr(v, ':');
    uint64_t n = 0;
    size_t len = colon ? (size_t)(colon - v) : 0;
    if (colon == NULL || len == 0 || len >= sizeof(t->name))
        return rg_cli_fail(cli, "--topic: \"%s\" is not NAME:PARTITIONS", v);
    for (size_t i = 0; i < len; i++)
        if (!(v[i] == '.' || v[i] == '_' || v[i] == '-' ||
              (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
              (v[i] >= '0' && v[i] <= '9')))
            return rg_cli_fail(cli, "--topic: \"%.*s\" is not a legal topic "
                               "name ([a-zA-Z0-9._-])", (int)len, v);
    if (rg_cli_u64(cli, "--topic", colon + 1, 1, 100000, &n))
        return 2;
    memcpy(t->name, v, len);
    t->name[len] = '\0';
    t->partitions = (int)n;
    return 0;
}

int rg_cmd_mock_kafka(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "mock-kafka", .conf = rg_conf_new()};
    uint64_t brokers = 3;
    struct topic topics[MAX_TOPICS];
    int ntopics = 0, rc = 0;
    if (cli.conf == NULL)
        return rg_cli_fail(&cli, "out of memory");
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v;
        int c = rg_cli_common(&cli, argc, argv, &i);
        if (c < 0) {
            rc = 2;
        } else if (c > 0) {
            continue;
        } else if (rg_cli_is(a, "--brokers")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--brokers");
            rc = !v || rg_cli_u64(&cli, "--brokers", v, 1, 64, &brokers)
                     ? 2 : 0;
        } else if (rg_cli_is(a, "--topic")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--topic");
            if (v == NULL)
                rc = 2;
            else if (ntopics == MAX_TOPICS)
                rc = rg_cli_fail(&cli, "--topic: at most %d topics",
                                 MAX_TOPICS);
            else
                rc = parse_topic(&cli, v, &topics[ntopics++]);
        } else if (rg_cli_is(a, "--port")) {
            rc = rg_cli_fail(&cli, "--port: the mock cluster of this "
                             "librdkafka (%s) picks its own ports",
                             rd_kafka_version_str());
        } else {
            rc = rg_cli_fail(&cli, "unknown option \"%s\"", a);
        }
    }
    if (rc != 0 || cli.help) {
        if (rc == 0)
            usage();
        rg_conf_destroy(cli.conf);
        return rc;
    }
    if (ntopics == 0) {
        snprintf(topics[0].name, sizeof(topics[0].name), "likes");
        topics[0].partitions = 8;
        ntopics = 1;
    }
    rg_conf_destroy(cli.conf);

    /* block the stop signals before librdkafka starts its threads, so
     * only sigwait() below receives them */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    if (rk == NULL)
        return rg_cli_fail(&cli, "%s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (mc == NULL) {
        rd_kafka_destroy(rk);
        return rg_cli_fail(&cli, "cannot start the mock cluster");
    }
    for (int t = 0; t < ntopics; t++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
            mc, topics[t].name, topics[t].partitions,
            brokers < 3 ? (int)brokers : 3);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return rg_cli_fail(&cli, "--topic %s: %s", topics[t].name,
                               rd_kafka_err2str(e));
        }
    }
    const char *servers = rd_kafka_mock_cluster_bootstraps(mc);
    if (cli.json)
        printf("{\"bootstrap_servers\":\"%s\"}\n", servers);
    else
        printf("%s\n", servers);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
