/*
 * cmd_produce.c - `railgun produce`: like events into Kafka with the
 * producer SDK. Either the demo's stream for the given stream options
 * (stream.h: so `railgun demo --verify-only` with the same options checks
 * what `railgun run` stored from it), or with --stdin one message per
 * line, KEY<TAB>VALUE. Every message is delivered or the command fails.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "stream.h"

static void usage(void)
{
    printf("usage: railgun produce [--events N] [--videos V] [--users U] "
           "[--zipf S]\n"
           "                       [--hot-share S] [--seed N] "
           "[--partitions P] "
           "[--format json|binary]\n"
           "                       [--stdin] [--json]\n"
           "                       [--config FILE] [-X name=value]\n\n"
           "Produces like events into `topic` at -X kafka.bootstrap.servers "
           "with the\nproducer SDK: the demo's stream for these options "
           "(default 200000\nevents; values as JSON, or the compact binary "
           "form with --format\nbinary; `railgun demo --verify-only` with "
           "the same options checks what\n`railgun run` stored), or with "
           "--stdin one message per line,\nKEY<TAB>VALUE. Every message is "
           "delivered or the command fails (exit 1;\n2 for bad input).\n\n"
           "With -X fallback.spool.dir=DIR the producer's degraded mode is "
           "on: while\nKafka is down messages go to the spool in DIR (each "
           "counts as delivered\nonce on disk), and the command waits until "
           "the spool is replayed into\nKafka; SIGINT or SIGTERM stop that "
           "wait, leaving the rest in DIR for the\nnext producer on it. It "
           "ends with the producer's figures (mode,\nspooled, replayed, "
           "left in the spool).\n");
}

static int parse_args(rg_cli_t *cli, rg_stream_spec_t *spec, bool *lines,
                      int argc, char **argv)
{
    const char *stream_opt = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c == 0 && (c = rg_stream_option(cli, spec, argc, argv, &i)) > 0)
            stream_opt = a;
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        if (strcmp(argv[i], "--stdin") != 0)
            return rg_cli_fail(cli, "unknown option \"%s\"", argv[i]);
        *lines = true;
    }
    if (*lines && stream_opt != NULL && !cli->help)
        return rg_cli_fail(cli, "%s describes the generated stream, which "
                           "--stdin does not send (it sends stdin's lines): "
                           "use one or the other", stream_opt);
    return cli->help ? 0 : rg_cli_finish(cli);
}

/* Sends stdin's KEY<TAB>VALUE lines; the exit status, *sent the count. */
static int send_lines(rg_cli_t *cli, rg_stream_producer_t *pr,
                      uint64_t *sent)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        char *tab = memchr(line, '\t', (size_t)len);
        if (tab == NULL) {
            rc = rg_cli_fail(cli, "stdin line %" PRIu64 ": no TAB between "
                             "key and value", lineno);
            break;
        }
        int r;
        while ((r = rg_producer_send_bytes(
                    pr->p, line, (size_t)(tab - line), tab + 1,
                    (size_t)(line + len - tab - 1), NULL)) == RG_EFULL)
            rg_producer_poll(pr->p, 10);
        if (r != 0)
            rc = rg_cli_report(cli, r, "stdin line %" PRIu64 ": %s", lineno,
                               rg_producer_last_error());
        else
            (*sent)++;
    }
    free(line);
    if (rg_stream_producer_flush(pr) != 0 && rc == 0)
        rc = rg_cli_error(cli, "%s", pr->err);
    return rc;
}

static volatile sig_atomic_t stop_waiting;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_waiting = 1;
}

/* With a spool (fallback.spool.dir): waits until what it holds is in
 * Kafka (the producer back in direct mode, nothing pending), saying every
 * 5 s what it waits for; SIGINT or SIGTERM stop the wait, leaving the
 * rest in the spool for the next producer on it. Then the producer's
 * degraded-mode figures, one line. */
static void drain_spool(rg_cli_t *cli, rg_producer_t *p)
{
    const char *dir = rg_conf_get_str(cli->conf, "fallback.spool.dir");
    if (dir == NULL || dir[0] == '\0')
        return;
    struct sigaction sa = {.sa_handler = on_stop_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rg_producer_stats_t st;
    double next_say = rg_now() + 5;
    for (;;) {
        rg_producer_stats(p, &st);
        if ((st.mode == RG_PRODUCER_DIRECT && st.spool_pending == 0) ||
            stop_waiting)
            break;
        if (rg_now() >= next_say) {
            fprintf(stderr, "railgun produce: %s: %" PRIu64 " messages in "
                    "the spool %s wait for Kafka (%" PRIu64 " replayed so "
                    "far); Ctrl-C leaves them there for the next producer "
                    "on it\n", rg_producer_mode_name(st.mode),
                    st.spool_pending, dir, st.replayed);
            next_say = rg_now() + 5;
        }
        rg_producer_poll(p, 100);
    }
    /* a signal after the wait stops the command as before it */
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (cli->json)
        fprintf(stderr, "{\"producer\":\"%s\",\"degraded\":%" PRIu64
                ",\"spooled\":%" PRIu64 ",\"rescued\":%" PRIu64
                ",\"replayed\":%" PRIu64 ",\"spool_pending\":%" PRIu64
                ",\"spool_bytes\":%" PRIu64 "}\n",
                rg_producer_mode_name(st.mode), st.degraded, st.spooled,
                st.rescued, st.replayed, st.spool_pending, st.spool_bytes);
    else
        fprintf(stderr, "railgun produce: producer %s: degraded %" PRIu64
                " times, spooled %" PRIu64 " (%" PRIu64 " rescued from "
                "librdkafka), replayed %" PRIu64 ", %" PRIu64 " left in the "
                "spool (%" PRIu64 " bytes)\n", rg_producer_mode_name(st.mode),
                st.degraded, st.spooled, st.rescued, st.replayed,
                st.spool_pending, st.spool_bytes);
}

int rg_cmd_produce(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "produce", .conf = rg_likes_conf_new()};
    rg_stream_spec_t spec = RG_STREAM_SPEC_DEFAULT(200000);
    rg_stream_t s = {0};
    rg_stream_producer_t pr = {0};
    bool lines = false;
    char err[512];
    int rc;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");

    if ((rc = parse_args(&cli, &spec, &lines, argc, argv)) != 0 ||
        cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    if (!lines && rg_stream_generate(&s, &spec) != 0) {
        rc = rg_cli_error(&cli, "out of memory for %" PRIu64 " events",
                          spec.events);
        goto out;
    }
    if ((rc = rg_stream_producer_open(&pr, lines ? NULL : &s, cli.conf, err,
                                      sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }

    double t0 = rg_now();
    uint64_t sent = 0;
    if (lines) {
        rc = send_lines(&cli, &pr, &sent);
    } else {
        rg_progress_t prog;
        rg_progress_init(&prog, "produce", s.n, cli.json);
        rg_stream_produce_main(&pr); /* nothing to pace: no engine */
        rg_progress_finish(&prog);
        if (pr.err[0])
            rc = rg_cli_error(&cli, "%s", pr.err);
        sent = s.n;
    }
    if (rc == 0)
        drain_spool(&cli, pr.p);
    double secs = rg_now() - t0;
    if (rc == 0 && cli.json)
        printf("{\"produced\":%" PRIu64 ",\"seconds\":%.3f,"
               "\"events_per_s\":%.0f}\n", sent, secs,
               secs > 0 ? (double)sent / secs : 0);
    else if (rc == 0)
        printf("produced %" PRIu64 " messages in %.3f s\n", sent, secs);

out:
    rg_stream_producer_close(&pr);
    rg_stream_free(&s);
    rg_conf_destroy(cli.conf);
    return rc;
}
