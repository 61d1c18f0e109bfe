/* kafka_mock.c - the Kafka source and the producer SDK from an installed
 * railgun (tests/install_test.sh): N messages produced into librdkafka's
 * mock cluster, consumed by rg_kafka_source into an engine with the null
 * sink; every message is processed exactly once. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <railgun/railgun.h>
#include <railgun/kafka.h>
#include <railgun/producer.h>

#define N 20000

static _Atomic unsigned long seen;

static int unpack(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque, (void)m, (void)ev; /* routed by the message key */
    return 0;
}

static void count(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
    atomic_fetch_add_explicit(&seen, 1, memory_order_relaxed);
}

static void *run(void *src)
{
    rg_kafka_source_run(src);
    return NULL;
}

int main(void)
{
    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "log_level", "0", NULL, 0);
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    rd_kafka_mock_cluster_t *mc = mrk ? rd_kafka_mock_cluster_new(mrk, 1)
                                      : NULL;
    if (mc == NULL || rd_kafka_mock_topic_create(mc, "likes", 4, 1)) {
        fprintf(stderr, "kafka_mock: no mock cluster\n");
        return 1;
    }
    rg_conf_t *conf = rg_conf_new();
    if (rg_conf_add_table(conf, rg_kafka_conf_table(), err, sizeof(err)) ||
        rg_conf_set(conf, "kafka.bootstrap.servers",
                    rd_kafka_mock_cluster_bootstraps(mc), err, sizeof(err)) ||
        rg_conf_set(conf, "kafka.log_level", "0", err, sizeof(err)) ||
        rg_conf_set(conf, "workers", "1", err, sizeof(err))) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    rg_producer_t *p = rg_producer_new(conf, NULL, NULL, err, sizeof(err));
    for (int i = 0; p != NULL && i < N; i++) {
        char key[16];
        snprintf(key, sizeof(key), "%d", i % 100);
        while (rg_producer_send_string(p, key, "v", NULL) == RG_EFULL)
            rg_producer_poll(p, 10);
    }
    if (p == NULL || rg_producer_flush(p, 30000) != 0) {
        fprintf(stderr, "kafka_mock: produce: %s\n",
                p ? rg_producer_last_error() : err);
        return 1;
    }
    rg_producer_destroy(p);
    rg_conf_t *sconf = rg_conf_dup(conf);
    rg_processor_t proc = {.unpack = unpack, .do_event = count};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    rg_sink_t sink;
    rg_sink_null_open(&sink);
    rg_kafka_source_t *src = NULL;
    if (e == NULL || rg_engine_set_sink(e, &sink, err, sizeof(err)) ||
        (src = rg_kafka_source_new(e, 0, sconf, &sink, err, sizeof(err))) ==
            NULL ||
        rg_engine_start(e, err, sizeof(err))) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, run, src);
    for (int t = 0; t < 3000 && atomic_load(&seen) < N; t++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rg_kafka_source_stop(src);
    pthread_join(th, NULL);
    rg_kafka_source_close(src);
    rg_engine_stop(e);
    rg_kafka_source_destroy(src);
    rg_engine_destroy(e);
    rg_conf_destroy(sconf);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    unsigned long n = atomic_load(&seen);
    printf("kafka source from an installed railgun: %lu of %d events\n", n,
           N);
    return n == N ? 0 : 1;
}
