/*
 * cmd_mock_kafka.c - `railgun mock-kafka`: librdkafka's mock cluster (the
 * real Kafka protocol, consumer groups, offset commits) in a process of
 * its own. Prints the bootstrap servers on one line and serves until
 * SIGTERM or SIGINT, so crash tests can kill consumers without killing
 * the broker, and kcat can talk to it. SIGUSR1 sets every broker down
 * (connections cut, new ones refused: a Kafka outage for every client),
 * SIGUSR2 up again; each is confirmed by a line on stderr.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "mock.h"

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
           "-X kafka.bootstrap.servers=...\n\n"
           "An outage on demand: SIGUSR1 sets every broker down (clients' "
           "connections\nare cut and refused), SIGUSR2 brings them back; "
           "each prints a line on\nstderr.\n");
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

static int parse_args(rg_cli_t *cli, uint64_t *brokers, struct topic *topics,
                      int *ntopics, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        if (rg_cli_is(a, "--brokers")) {
            v = rg_cli_value(cli, argc, argv, &i, "--brokers");
            if (!v || rg_cli_u64(cli, "--brokers", v, 1, 64, brokers))
                return 2;
        } else if (rg_cli_is(a, "--topic")) {
            v = rg_cli_value(cli, argc, argv, &i, "--topic");
            if (v == NULL)
                return 2;
            if (*ntopics == MAX_TOPICS)
                return rg_cli_fail(cli, "--topic: at most %d topics",
                                   MAX_TOPICS);
            if (parse_topic(cli, v, &topics[(*ntopics)++]) != 0)
                return 2;
        } else if (rg_cli_is(a, "--port")) {
            return rg_cli_fail(cli, "--port: the mock cluster of this "
                               "librdkafka (%s) picks its own ports",
                               rd_kafka_version_str());
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", a);
        }
    }
    if (*ntopics == 0) {
        snprintf(topics[0].name, sizeof(topics[0].name), "likes");
        topics[0].partitions = 8;
        *ntopics = 1;
    }
    return cli->help ? 0 : rg_cli_finish(cli);
}

int rg_cmd_mock_kafka(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "mock-kafka", .conf = rg_likes_conf_new()};
    uint64_t brokers = 3;
    struct topic topics[MAX_TOPICS];
    int ntopics = 0, rc;
    rg_mock_t mock = {0};
    char err[512];
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");

    /* the command line */
    if ((rc = parse_args(&cli, &brokers, topics, &ntopics, argc, argv)) !=
            0 ||
        cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }

    /* block the stop signals before librdkafka starts its threads, so
     * only sigwait() below receives them */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGUSR1);
    sigaddset(&stop, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    /* the cluster, until a stop signal */
    if (rg_mock_open(&mock, (int)brokers, err, sizeof(err)) != 0) {
        rc = rg_cli_error(&cli, "%s", err);
        goto out;
    }
    for (int t = 0; t < ntopics; t++)
        if (rg_mock_topic(&mock, topics[t].name, topics[t].partitions,
                          brokers < 3 ? (int)brokers : 3, err,
                          sizeof(err)) != 0) {
            rc = rg_cli_error(&cli, "--topic %s", err);
            goto out;
        }
    const char *servers = rg_mock_servers(&mock);
    if (cli.json)
        printf("{\"bootstrap_servers\":\"%s\"}\n", servers);
    else
        printf("%s\n", servers);
    fflush(stdout);
    for (;;) {
        int sig = 0;
        if (sigwait(&stop, &sig) != 0)
            continue;
        if (sig != SIGUSR1 && sig != SIGUSR2)
            break;
        bool down = sig == SIGUSR1;
        /* the mock's brokers are numbered 1 .. brokers */
        for (int32_t b = 1; b <= (int32_t)brokers; b++) {
            rd_kafka_resp_err_t e =
                down ? rd_kafka_mock_broker_set_down(mock.mc, b)
                     : rd_kafka_mock_broker_set_up(mock.mc, b);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
                fprintf(stderr, "railgun mock-kafka: broker %d: %s\n",
                        (int)b, rd_kafka_err2str(e));
        }
        fprintf(stderr, "railgun mock-kafka: %" PRIu64 " brokers %s\n",
                brokers, down ? "down (SIGUSR1)" : "up (SIGUSR2)");
    }

out:
    rg_mock_close(&mock);
    rg_conf_destroy(cli.conf);
    return rc;
}
