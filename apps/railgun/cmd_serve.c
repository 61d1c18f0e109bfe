/*
 * cmd_serve.c - `railgun serve`: the like service's HTTP API and page
 * (apps/serve/serve.h) until SIGTERM or SIGINT. Prints one line with the
 * address once it listens (port 0 picks one), and the final counters at
 * the end (--json: one object).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "railgun/railgun.h"
#include "railgun/sinks.h"
#include "serve.h"

static void usage(void)
{
    printf("usage: railgun serve [--init-schema] [--json] [--config FILE] "
           "[-X name=value]\n\n"
           "Serves the like service on serve.listen (default "
           "127.0.0.1:8080) until SIGTERM:\n"
           "  POST /v1/likes                 {\"video_id\":V,\"user_id\":U,"
           "\"state\":0|1} or [..]\n"
           "  GET  /v1/videos/V/likes        the count\n"
           "  GET  /v1/videos/V/likes/U      the user's state\n"
           "  GET  /v1/likes?video_ids=V,..  many counts (&user_id=U: and "
           "states)\n"
           "  GET  /                         a page to click likes on\n"
           "  GET  /metrics, /healthz, /readyz\n"
           "serve.mode=async (default) produces to Kafka (topic, kafka.*) "
           "for `railgun run`;\nserve.mode=sync writes each like in its own "
           "transaction. Reads: Redis\n(cache.redis.*) first, the database "
           "(sink, sqlite.* or mysql.*) on a miss;\nserve.cache=false reads "
           "the database only. --init-schema creates missing\ntables first "
           "(counts, actions, offsets).\n");
}

int rg_cmd_serve(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "serve", .conf = rg_likes_conf_new()};
    rg_serve_t *s = NULL;
    bool init_schema = false;
    char err[512];
    int rc = 0;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");
    /* until the program's conf has the serve table (rg_likes_conf_new) */
    if (rg_conf_add_table(cli.conf, rg_serve_conf_table(), err,
                          sizeof(err)) != 0) {
        rc = rg_cli_error(&cli, "%s", err);
        goto out;
    }
    for (int i = 0; i < argc; i++) {
        int c = rg_cli_common(&cli, argc, argv, &i);
        if (c < 0) {
            rc = 2;
            goto out;
        }
        if (c > 0)
            continue;
        if (strcmp(argv[i], "--init-schema") == 0) {
            init_schema = true;
            continue;
        }
        rc = rg_cli_fail(&cli, "unknown option \"%s\"", argv[i]);
        goto out;
    }
    if (cli.help) {
        usage();
        goto out;
    }
    if ((rc = rg_cli_finish(&cli)) != 0)
        goto out;
    if (init_schema) {
        rg_sink_t sink;
        int r = rg_likes_open_sink(cli.conf, RG_SINK_INIT_SCHEMA, &sink, err,
                                   sizeof(err));
        if (r != 0) {
            rc = rg_cli_report(&cli, r, "%s", err);
            goto out;
        }
        if (sink.close)
            sink.close(sink.self);
    }

    /* signals go to sigwait below, not to the HTTP or producer threads */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    int e = 0;
    if ((s = rg_serve_new(cli.conf, &e, err, sizeof(err))) == NULL) {
        rc = rg_cli_report(&cli, e, "%s", err);
        goto out;
    }
    if ((e = rg_serve_start(s, err, sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, e, "%s", err);
        goto out;
    }
    const char *listen = rg_conf_get_str(cli.conf, "serve.listen");
    const char *colon = strrchr(listen, ':');
    int hostlen = colon ? (int)(colon - listen) : 0;
    printf("serve: http://%.*s:%u/ (mode %s, %s)\n",
           hostlen ? hostlen : 7, hostlen ? listen : "0.0.0.0",
           rg_serve_port(s), rg_conf_get_str(cli.conf, "serve.mode"),
           rg_serve_caching(s) ? "reads: Redis, then the database"
                               : "reads: the database");
    fflush(stdout);
    int sig;
    while (sigwait(&sigs, &sig) != 0)
        ;
    rg_serve_stats_t st;
    rg_serve_stats(s, &st);
    rg_serve_destroy(s);
    s = NULL;
    if (cli.json)
        printf("{\"requests\":%" PRIu64 ",\"likes_accepted\":%" PRIu64
               ",\"likes_applied\":%" PRIu64 ",\"likes_rejected\":%" PRIu64
               ",\"busy\":%" PRIu64 ",\"delivery_failed\":%" PRIu64
               ",\"sync_retries\":%" PRIu64 ",\"reads\":%" PRIu64
               ",\"db_reads\":%" PRIu64 ",\"cache_hits\":%" PRIu64
               ",\"cache_fills\":%" PRIu64 "}\n", st.requests,
               st.likes_accepted, st.likes_applied, st.likes_rejected,
               st.busy, st.delivery_failed, st.sync_retries, st.reads,
               st.db_reads, st.cache.hits, st.cache.fills);
    else
        printf("serve: %" PRIu64 " requests, %" PRIu64 " likes accepted, %"
               PRIu64 " applied, %" PRIu64 " rejected, %" PRIu64
               " busy; reads %" PRIu64 " (%" PRIu64 " from the database, %"
               PRIu64 " cache hits)\n", st.requests, st.likes_accepted,
               st.likes_applied, st.likes_rejected, st.busy, st.reads,
               st.db_reads, st.cache.hits);
out:
    rg_serve_destroy(s);
    rg_conf_destroy(cli.conf);
    return rc;
}
