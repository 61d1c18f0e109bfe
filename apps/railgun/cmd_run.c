/*
 * cmd_run.c - `railgun run`: the likes job for production. Kafka in (a
 * consumer group: more processes share the partitions), the likes job on
 * the engine, SQLite or MariaDB out. Stats on SIGUSR1 and every
 * `stats.interval.ms`; SIGTERM or SIGINT stops it gracefully: the source
 * leaves the group (flush, commit), the engine drains, exit 0, and a
 * restart reprocesses nothing.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "railgun/kafka.h"
#include "railgun/railgun.h"
#include "railgun/sinks.h"

struct runner {
    rg_engine_t *e;
    rg_likes_job_t *job;
    rg_kafka_source_t *src;
    sigset_t sigs;
    bool json;
    /* teardown: `closing` (under lock) ends the signal and stats threads,
     * and both are joined before anything they print from is destroyed */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool closing;
};

static void print_stats(struct runner *r, const char *when)
{
    rg_engine_stats_t st;
    rg_flush_stats_t fs;
    rg_kafka_stats_t ks;
    rg_likes_stats_t ls;
    rg_engine_stats(r->e, &st);
    rg_engine_flush_stats(r->e, &fs);
    rg_kafka_source_stats(r->src, &ks);
    rg_likes_job_stats(r->job, &ls);
    if (r->json)
        fprintf(stderr, "{\"stats\":\"%s\",\"consumed\":%" PRIu64
                ",\"processed\":%" PRIu64 ",\"undecodable\":%" PRIu64
                ",\"applied\":%" PRIu64 ",\"epochs\":%" PRIu64
                ",\"transactions\":%" PRIu64 ",\"sink_retries\":%" PRIu64
                ",\"partitions\":%u,\"kafka_errors\":%" PRIu64
                ",\"kafka_commits\":%" PRIu64 ",\"paused\":%u"
                ",\"pauses\":%" PRIu64 "}\n", when, ks.consumed,
                st.processed, st.undecodable, ls.applied, fs.epochs,
                fs.transactions, fs.retries, ks.partitions, ks.errors,
                ks.commits, ks.paused, ks.pauses);
    else
        fprintf(stderr, "railgun run: %s: consumed %" PRIu64 ", processed %"
                PRIu64 ", undecodable %" PRIu64 ", applied %" PRIu64
                ", epochs %" PRIu64 ", transactions %" PRIu64
                ", sink retries %" PRIu64 ", partitions %u, kafka errors %"
                PRIu64 ", commits %" PRIu64 ", paused %s (%" PRIu64
                " times)\n", when, ks.consumed,
                st.processed, st.undecodable, ls.applied, fs.epochs,
                fs.transactions, fs.retries, ks.partitions, ks.errors,
                ks.commits, ks.paused ? "yes" : "no", ks.pauses);
}

/* Signal thread: SIGTERM/SIGINT stop, SIGUSR1 prints the stats. Once
 * closing, any signal (teardown sends one) ends it. */
static void *signals_main(void *arg)
{
    struct runner *r = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&r->sigs, &sig) != 0)
            continue;
        pthread_mutex_lock(&r->lock);
        bool closing = r->closing;
        if (!closing && sig == SIGUSR1)
            print_stats(r, "now");
        pthread_mutex_unlock(&r->lock);
        if (closing)
            return NULL;
        if (sig != SIGUSR1)
            rg_kafka_source_stop(r->src);
    }
}

/* Stats thread: every stats.interval.ms until closing. */
static void *stats_main(void *arg)
{
    struct runner *r = arg;
    int64_t ms = rg_conf_get_int(rg_engine_conf(r->e), "stats.interval.ms");
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    pthread_mutex_lock(&r->lock);
    while (!r->closing) {
        at.tv_sec += (time_t)(ms / 1000);
        at.tv_nsec += (long)(ms % 1000) * 1000000;
        if (at.tv_nsec >= 1000000000) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000;
        }
        while (!r->closing &&
               pthread_cond_timedwait(&r->wake, &r->lock, &at) == 0)
            ;
        if (!r->closing)
            print_stats(r, "interval");
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void usage(void)
{
    printf("usage: railgun run [--config FILE] [-X name=value] "
           "[--init-schema] [--json]\n\n"
           "Consumes like events from `topic` in consumer group `group.id` "
           "at\n-X kafka.bootstrap.servers, runs the likes job and stores "
           "counts,\nactions and offsets in the sink (sink=sqlite with "
           "sqlite.path, or\nsink=mysql with mysql.*). --init-schema creates "
           "missing tables. Stats\non SIGUSR1 and every stats.interval.ms; "
           "SIGTERM or SIGINT stops it\ngracefully (flush, commit, exit 0). "
           "docs/examples/likes.conf is a start.\n");
}

int rg_cmd_run(int argc, char **argv)
{
    /* block the stop and stats signals first thing, before any thread
     * starts: the signal thread takes them. A SIGUSR1 or SIGTERM sent
     * while we start up then waits for it instead of killing us */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    rg_cli_t cli = {.cmd = "run", .conf = rg_conf_new()};
    bool init = false;
    int rc = 0;
    char err[512];
    if (cli.conf == NULL)
        return rg_cli_fail(&cli, "out of memory");
    for (int i = 0; i < argc && rc == 0; i++) {
        int c = rg_cli_common(&cli, argc, argv, &i);
        if (c < 0)
            rc = 2;
        else if (c > 0)
            continue;
        else if (!strcmp(argv[i], "--init-schema"))
            init = true;
        else
            rc = rg_cli_fail(&cli, "unknown option \"%s\"", argv[i]);
    }
    if (rc != 0 || cli.help) {
        if (rc == 0)
            usage();
        rg_conf_destroy(cli.conf);
        return rc;
    }
    const char *kind = rg_conf_get_str(cli.conf, "sink");
    if (strcmp(kind, "null") != 0 && strcmp(kind, "mysql") != 0 &&
        rg_conf_get_str(cli.conf, "sqlite.path")[0] == '\0')
        rc = rg_cli_fail(&cli, "sqlite.path: not set (where do the counts "
                         "go?)");
    else if (rg_conf_get_str(cli.conf, "kafka.bootstrap.servers") == NULL)
        rc = rg_cli_fail(&cli, "kafka.bootstrap.servers: not set (where is "
                         "the cluster?)");
    else if (rg_conf_get_int(cli.conf, "dispatchers") != 1)
        rc = rg_cli_fail(&cli, "dispatchers: the Kafka source is one "
                         "dispatcher; scale out with more processes");
    if (rc != 0) {
        rg_conf_destroy(cli.conf);
        return rc;
    }

    struct runner r = {.json = cli.json, .sigs = sigs};

    rg_sink_t sink;
    if (rg_likes_open_sink(cli.conf, init ? RG_SINK_INIT_SCHEMA : 0, &sink,
                           err, sizeof(err)) != 0) {
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "%s", err);
    }
    rg_conf_t *kconf = rg_conf_dup(cli.conf);
    unsigned workers = (unsigned)rg_conf_get_int(cli.conf, "workers");
    r.job = rg_likes_job_new(workers, &sink, 0, 0);
    rg_processor_t proc;
    if (r.job == NULL || kconf == NULL) {
        snprintf(err, sizeof(err), "out of memory");
    } else {
        rg_likes_job_processor(r.job, &proc);
        r.e = rg_engine_new(cli.conf, &proc, err, sizeof(err));
    }
    if (r.e == NULL || rg_engine_set_sink(r.e, &sink, err, sizeof(err)) != 0) {
        if (r.e == NULL)
            rg_conf_destroy(cli.conf);
        rg_likes_job_destroy(r.job);
        rg_engine_destroy(r.e);
        sink.close(sink.self);
        rg_conf_destroy(kconf);
        return rg_cli_fail(&cli, "%s", err);
    }
    rg_likes_job_bind(r.job, r.e);
    r.src = rg_kafka_source_new(r.e, 0, kconf, &sink, err, sizeof(err));
    rg_conf_destroy(kconf);
    if (r.src == NULL || rg_engine_start(r.e, err, sizeof(err)) != 0) {
        rg_kafka_source_destroy(r.src);
        rg_likes_job_destroy(r.job);
        rg_engine_destroy(r.e);
        return rg_cli_fail(&cli, "%s", err);
    }
    pthread_t sig_th, stats_th;
    pthread_mutex_init(&r.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r.wake, &ca);
    pthread_condattr_destroy(&ca);
    bool sig_ok = pthread_create(&sig_th, NULL, signals_main, &r) == 0;
    bool stats_ok =
        rg_conf_get_int(rg_engine_conf(r.e), "stats.interval.ms") > 0 &&
        pthread_create(&stats_th, NULL, stats_main, &r) == 0;
    char why[600] = "";
    if (!sig_ok) {
        snprintf(why, sizeof(why), "cannot start the signal thread");
        rg_kafka_source_stop(r.src);
    }

    int src_rc = rg_kafka_source_run(r.src);
    if (src_rc != 0 && rg_kafka_source_error(r.src) != NULL)
        snprintf(why, sizeof(why), "%s", rg_kafka_source_error(r.src));
    rg_kafka_source_close(r.src); /* leaves the group: flush + commit */
    rg_engine_stop(r.e);
    if (rg_engine_error(r.e) != NULL)
        snprintf(why, sizeof(why), "%s", rg_engine_error(r.e));
    /* the signal and stats threads end before what they read goes */
    pthread_mutex_lock(&r.lock);
    r.closing = true;
    pthread_cond_signal(&r.wake);
    pthread_mutex_unlock(&r.lock);
    if (stats_ok)
        pthread_join(stats_th, NULL);
    if (sig_ok) {
        pthread_kill(sig_th, SIGUSR1); /* its sigwait() takes it */
        pthread_join(sig_th, NULL);
    }
    pthread_cond_destroy(&r.wake);
    pthread_mutex_destroy(&r.lock);
    print_stats(&r, "final");
    rg_likes_job_destroy(r.job);
    rg_kafka_source_destroy(r.src);
    rg_engine_destroy(r.e);
    if (why[0]) {
        fprintf(stderr, "railgun run: %s\n", why);
        return 1;
    }
    return 0;
}
