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
#include "pipeline.h"
#include "railgun/kafka.h"
#include "railgun/railgun.h"
#include "railgun/sinks.h"

struct runner {
    rg_pipeline_t pl;
    sigset_t sigs;
    bool json;
    /* teardown: `closing` (under lock) ends the signal and stats threads,
     * and both are joined before anything they print from is destroyed */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool closing;
    pthread_t sig_th, stats_th;
    bool sig_started, stats_started;
};

static void print_stats(struct runner *r, const char *when)
{
    rg_engine_stats_t st;
    rg_flush_stats_t fs;
    rg_kafka_stats_t ks;
    rg_likes_stats_t ls;
    rg_engine_stats(r->pl.engine, &st);
    rg_engine_flush_stats(r->pl.engine, &fs);
    rg_kafka_source_stats(r->pl.source, &ks);
    rg_likes_job_stats(r->pl.job, &ls);
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
            rg_kafka_source_stop(r->pl.source);
    }
}

/* Stats thread: every stats.interval.ms until closing. */
static void *stats_main(void *arg)
{
    struct runner *r = arg;
    int64_t ms = rg_conf_get_int(rg_engine_conf(r->pl.engine),
                                 "stats.interval.ms");
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

static int parse_args(rg_cli_t *cli, bool *init, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        if (strcmp(argv[i], "--init-schema") != 0)
            return rg_cli_fail(cli, "unknown option \"%s\"", argv[i]);
        *init = true;
    }
    return cli->help ? 0 : rg_cli_finish(cli);
}

/* What must be set before anything starts; 0, or 2 after the error. */
static int check_args(rg_cli_t *cli)
{
    const char *kind = rg_conf_get_str(cli->conf, "sink");
    if (strcmp(kind, "null") != 0 && strcmp(kind, "mysql") != 0 &&
        rg_conf_get_str(cli->conf, "sqlite.path")[0] == '\0')
        return rg_cli_fail(cli, "sqlite.path: not set (where do the counts "
                           "go?)");
    if (rg_conf_get_str(cli->conf, "kafka.bootstrap.servers") == NULL)
        return rg_cli_fail(cli, "kafka.bootstrap.servers: not set (where is "
                           "the cluster?)");
    if (rg_conf_get_int(cli->conf, "dispatchers") != 1)
        return rg_cli_fail(cli, "dispatchers: the Kafka source is one "
                           "dispatcher; scale out with more processes");
    return 0;
}

/* Starts the signal thread and, with stats.interval.ms, the stats
 * thread. 0, or the pthread_create() error with why filled. */
static int start_threads(struct runner *r, char *why, size_t size)
{
    int rc = pthread_create(&r->sig_th, NULL, signals_main, r);
    if (rc != 0) {
        snprintf(why, size, "cannot start the signal thread: %s",
                 strerror(rc));
        return rc;
    }
    r->sig_started = true;
    if (rg_conf_get_int(rg_engine_conf(r->pl.engine),
                        "stats.interval.ms") == 0)
        return 0;
    if ((rc = pthread_create(&r->stats_th, NULL, stats_main, r)) != 0) {
        snprintf(why, size, "cannot start the stats thread: %s",
                 strerror(rc));
        return rc;
    }
    r->stats_started = true;
    return 0;
}

/* Ends the threads start_threads() started, before what they read
 * goes. */
static void end_threads(struct runner *r)
{
    pthread_mutex_lock(&r->lock);
    r->closing = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    if (r->stats_started)
        pthread_join(r->stats_th, NULL);
    if (r->sig_started) {
        pthread_kill(r->sig_th, SIGUSR1); /* its sigwait() takes it */
        pthread_join(r->sig_th, NULL);
    }
    r->sig_started = r->stats_started = false;
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
    rg_cli_t cli = {.cmd = "run", .conf = rg_likes_conf_new()};
    struct runner r = {.sigs = sigs, .lock = PTHREAD_MUTEX_INITIALIZER};
    bool init = false, cond_ok = false;
    char err[512], why[600] = "";
    int rc;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");

    /* the command line */
    if ((rc = parse_args(&cli, &init, argc, argv)) != 0 || cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    if ((rc = check_args(&cli)) != 0)
        goto out;
    r.json = cli.json;

    /* the pipeline, and the threads that watch it */
    rg_pipeline_opts_t po = {.sink_flags = init ? RG_SINK_INIT_SCHEMA : 0,
                             .kafka = true};
    if ((rc = rg_pipeline_open(&r.pl, cli.conf, &po, err, sizeof(err))) !=
            0 ||
        (rc = rg_pipeline_start(&r.pl, err, sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    pthread_condattr_t ca;
    if ((rc = pthread_condattr_init(&ca)) == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        rc = pthread_cond_init(&r.wake, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (rc != 0) {
        rc = rg_cli_error(&cli, "cannot make a condition variable: %s",
                          strerror(rc));
        goto out;
    }
    cond_ok = true;
    /* on failure `why` says so: the run is skipped, and the stop below
     * ends the thread that did start */
    start_threads(&r, why, sizeof(why));

    /* the run, on this thread, until SIGTERM or SIGINT */
    if (why[0] == '\0' && rg_kafka_source_run(r.pl.source) != 0 &&
        rg_kafka_source_error(r.pl.source) != NULL)
        snprintf(why, sizeof(why), "%s", rg_kafka_source_error(r.pl.source));
    rg_pipeline_stop(&r.pl); /* leaves the group: flush + commit */
    if (rg_engine_error(r.pl.engine) != NULL)
        snprintf(why, sizeof(why), "%s", rg_engine_error(r.pl.engine));
    end_threads(&r);
    print_stats(&r, "final");
    if (why[0] != '\0')
        rc = rg_cli_error(&cli, "%s", why);

out:
    if (cond_ok)
        pthread_cond_destroy(&r.wake);
    rg_pipeline_close(&r.pl);
    rg_conf_destroy(cli.conf);
    return rc;
}
