/*
 * bench_kafka.h - `railgun bench kafka` and `railgun bench produce`
 * (bench_kafka.c): railgun's Kafka paths against bare librdkafka clients,
 * in interleaved rounds, with medians and CPU per event by thread group.
 */
#ifndef RG_BENCH_KAFKA_H
#define RG_BENCH_KAFKA_H

#include <stdbool.h>
#include <stdint.h>
#include "cli.h"

typedef struct rg_bench_kafka_opts_s {
    bool consume;     /* kafka (true) or produce (false) */
    bool binary;      /* values in the compact binary form */
    bool bare_batch;  /* kafka: the bare loop batch-consumes, as railgun's
                       * source does (default: one consumer_poll() per
                       * message, the common loop) */
    uint64_t events;  /* per side and round */
    uint64_t seed;
    unsigned rounds;  /* 1 .. 99 */
} rg_bench_kafka_opts_t;

/* Runs the suite and prints its report (cli->json: one JSON line). The
 * exit status: 0, 1 a run failed (said on stderr), 2 bad options. */
int rg_bench_kafka(rg_cli_t *cli, const rg_bench_kafka_opts_t *o);

#endif /* RG_BENCH_KAFKA_H */
