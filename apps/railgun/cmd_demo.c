/*
 * cmd_demo.c - `railgun demo --source memory`: N synthetic events with
 * Zipf-distributed keys, pushed by `dispatchers` ingest threads through the
 * engine into a counting processor, then checked key by key against the
 * counts that were generated.
 *
 * The events are generated before the clock starts, so events/s measures
 * the pipeline, not the random number generator. Each worker counts into
 * its own array; verification also checks ownership: a key's events must
 * all have landed on the one worker rg_engine_worker_of() names.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/railgun.h"
#include "cli.h"
#include "commands.h"
#include "zipf.h"

struct demo {
    uint64_t events, keys, seed;
    double zipf;
    uint64_t *stream;       /* [events] keys, in push order */
    uint32_t **counts;      /* [workers][keys + 1], one writer each */
    rg_engine_t *engine;
};

struct ingest {
    struct demo *demo;
    rg_dispatcher_t *d;
    unsigned idx;
    uint64_t begin, end;    /* slice of the stream */
};

static int unpack_u64(void *opaque, const rg_msg_t *msg, rg_event_t *ev)
{
    (void)opaque;
    if (msg->key_len != sizeof(uint64_t))
        return RG_EDECODE;
    memcpy(&ev->key, msg->key, sizeof(uint64_t));
    return 0;
}

static void count_one(void *opaque, unsigned worker, rg_event_t *ev)
{
    struct demo *demo = opaque;
    demo->counts[worker][ev->key]++;
}

static void *ingest_main(void *arg)
{
    struct ingest *in = arg;
    enum { BURST = 256 };
    rg_msg_t msgs[BURST];
    for (uint64_t i = in->begin; i < in->end;) {
        size_t n = 0;
        for (; n < BURST && i < in->end; n++, i++) {
            msgs[n] = (rg_msg_t){
                .partition = (int32_t)in->idx,
                .offset = (int64_t)(i - in->begin),
                .key = &in->demo->stream[i],
                .key_len = sizeof(uint64_t),
            };
        }
        if (rg_dispatcher_push_burst(in->d, msgs, n) < n)
            break; /* stopped: cannot happen in the demo */
    }
    return NULL;
}

static void usage(void)
{
    printf("usage: railgun demo [--source memory] [--events N] [--keys K]\n"
           "                    [--zipf S] [--workers W] [--dispatchers D]\n"
           "                    [--seed N] [--json] [--config FILE] "
           "[-X name=value]\n\n"
           "Pushes N events with Zipf(S)-distributed keys over K keys "
           "through the\nengine into a counting processor and verifies "
           "every key's count.\nEnds with `verify: exact` (exit 0) or "
           "`verify: MISMATCH ...` (exit 1).\n");
}

/* Compares every key; returns 0 or fills msg with the first mismatch. */
static int verify(struct demo *demo, unsigned workers, const uint32_t *truth,
                  char *msg, size_t msg_size)
{
    for (uint64_t k = 1; k <= demo->keys; k++) {
        unsigned owner = rg_engine_worker_of(demo->engine, k);
        for (unsigned w = 0; w < workers; w++) {
            uint32_t want = w == owner ? truth[k] : 0;
            if (demo->counts[w][k] != want) {
                snprintf(msg, msg_size, "key %" PRIu64 ": worker %u "
                         "counted %u, expected %u (owner is worker %u)", k,
                         w, demo->counts[w][k], want, owner);
                return -1;
            }
        }
    }
    return 0;
}

int rg_cmd_demo(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "demo", .conf = rg_conf_new()};
    struct demo demo = {.events = 10000000, .keys = 1000000, .seed = 1,
                        .zipf = 0.99};
    const char *source = "memory";
    int rc = 0;
    char err[512];
    if (cli.conf == NULL)
        return rg_cli_fail(&cli, "out of memory");

    for (int i = 0; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v;
        int c = rg_cli_common(&cli, argc, argv, &i);
        if (c < 0) {
            rc = 2;
        } else if (c > 0) {
            continue;
        } else if (rg_cli_is(a, "--source")) {
            if (!(source = rg_cli_value(&cli, argc, argv, &i, "--source")))
                rc = 2;
        } else if (rg_cli_is(a, "--events")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--events");
            rc = !v || rg_cli_u64(&cli, "--events", v, 1, 2000000000ull,
                                  &demo.events) ? 2 : 0;
        } else if (rg_cli_is(a, "--keys")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--keys");
            rc = !v || rg_cli_u64(&cli, "--keys", v, 1, 100000000ull,
                                  &demo.keys) ? 2 : 0;
        } else if (rg_cli_is(a, "--seed")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--seed");
            rc = !v || rg_cli_u64(&cli, "--seed", v, 0, UINT64_MAX,
                                  &demo.seed) ? 2 : 0;
        } else if (rg_cli_is(a, "--zipf")) {
            v = rg_cli_value(&cli, argc, argv, &i, "--zipf");
            rc = !v || rg_cli_double(&cli, "--zipf", v, 0, 10, &demo.zipf)
                     ? 2 : 0;
        } else if (rg_cli_is(a, "--workers") ||
                   rg_cli_is(a, "--dispatchers")) {
            /* shorthands for -X workers=W and -X dispatchers=D */
            bool wk = rg_cli_is(a, "--workers");
            v = rg_cli_value(&cli, argc, argv, &i,
                             wk ? "--workers" : "--dispatchers");
            if (v == NULL)
                rc = 2;
            else if (rg_conf_set(cli.conf, wk ? "workers" : "dispatchers",
                                 v, err, sizeof(err)) != 0)
                rc = rg_cli_fail(&cli, "%s", err);
        } else {
            rc = rg_cli_fail(&cli, "unknown option \"%s\"", a);
        }
    }
    if (rc == 0 && cli.help) {
        usage();
        rg_conf_destroy(cli.conf);
        return 0;
    }
    if (rc == 0 && strcmp(source, "memory") != 0)
        rc = rg_cli_fail(&cli, "--source: \"%s\" is not available (this "
                         "build has: memory)", source);
    if (rc != 0) {
        rg_conf_destroy(cli.conf);
        return rc;
    }

    unsigned workers = (unsigned)rg_conf_get_int(cli.conf, "workers");
    unsigned ndisp = (unsigned)rg_conf_get_int(cli.conf, "dispatchers");

    /* generate the stream and its ground truth before the clock starts */
    uint32_t *truth = calloc(demo.keys + 1, sizeof(uint32_t));
    demo.stream = malloc(sizeof(uint64_t) * demo.events);
    demo.counts = calloc(workers, sizeof(uint32_t *));
    if (!truth || !demo.stream || !demo.counts) {
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "out of memory for %" PRIu64 " events",
                           demo.events);
    }
    for (unsigned w = 0; w < workers; w++)
        if (!(demo.counts[w] = calloc(demo.keys + 1, sizeof(uint32_t)))) {
            rg_conf_destroy(cli.conf);
            return rg_cli_fail(&cli, "out of memory for %" PRIu64 " keys",
                               demo.keys);
        }
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, demo.seed);
    rg_zipf_init(&zipf, demo.keys, demo.zipf);
    for (uint64_t i = 0; i < demo.events; i++) {
        demo.stream[i] = rg_zipf_next(&zipf, &rng);
        truth[demo.stream[i]]++;
    }

    rg_processor_t proc = {.unpack = unpack_u64, .do_event = count_one,
                           .opaque = &demo};
    demo.engine = rg_engine_new(cli.conf, &proc, err, sizeof(err));
    if (demo.engine == NULL) {
        rg_conf_destroy(cli.conf);
        return rg_cli_fail(&cli, "%s", err);
    }
    if (rg_engine_start(demo.engine, err, sizeof(err)) != 0) {
        rg_engine_destroy(demo.engine);
        return rg_cli_fail(&cli, "%s", err);
    }

    struct ingest *ins = calloc(ndisp, sizeof(*ins));
    pthread_t *th = calloc(ndisp, sizeof(*th));
    rg_progress_t prog;
    rg_progress_init(&prog, "demo", demo.events, cli.json);
    double t0 = rg_now();
    for (unsigned d = 0; d < ndisp; d++) {
        ins[d] = (struct ingest){
            .demo = &demo, .d = rg_engine_dispatcher(demo.engine, d),
            .idx = d, .begin = demo.events * d / ndisp,
            .end = demo.events * (d + 1) / ndisp};
        pthread_create(&th[d], NULL, ingest_main, &ins[d]);
    }
    rg_engine_stats_t st;
    for (;;) {
        rg_engine_stats(demo.engine, &st);
        rg_progress_update(&prog, st.processed);
        if (st.processed >= demo.events)
            break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (unsigned d = 0; d < ndisp; d++)
        pthread_join(th[d], NULL);
    rg_engine_stop(demo.engine);
    double secs = rg_now() - t0;
    rg_progress_finish(&prog);
    rg_engine_stats(demo.engine, &st);

    char mismatch[256] = "";
    int bad = verify(&demo, workers, truth, mismatch, sizeof(mismatch));
    if (bad == 0 && st.processed != demo.events) {
        snprintf(mismatch, sizeof(mismatch), "processed %" PRIu64
                 " events, generated %" PRIu64, st.processed, demo.events);
        bad = -1;
    }
    double rate = secs > 0 ? (double)demo.events / secs : 0;

    if (cli.json) {
        printf("{\"source\":\"memory\",\"events\":%" PRIu64 ",\"keys\":%"
               PRIu64 ",\"zipf\":%g,\"seed\":%" PRIu64 ",\"workers\":%u,"
               "\"dispatchers\":%u,\"seconds\":%.6f,\"events_per_s\":%.0f,"
               "\"worker_share\":[", demo.events, demo.keys, demo.zipf,
               demo.seed, workers, ndisp, secs, rate);
        for (unsigned w = 0; w < workers; w++)
            printf("%s%.6f", w ? "," : "",
                   (double)rg_engine_worker_processed(demo.engine, w) /
                       (double)demo.events);
        printf("],\"dispatcher_waits\":%" PRIu64 ",\"verify\":\"%s\"",
               st.dispatcher_waits, bad ? "MISMATCH" : "exact");
        if (bad) {
            printf(",\"mismatch\":\"");
            for (const char *p = mismatch; *p; p++)
                putchar(*p == '"' ? '\'' : *p);
            putchar('"');
        }
        printf("}\n");
    } else {
        char h[16];
        printf("railgun demo: memory source -> %u dispatcher(s) -> %u "
               "worker(s), counting per key\n", ndisp, workers);
        printf("  events       %" PRIu64 "\n", demo.events);
        printf("  keys         %" PRIu64 " (zipf %.2f, seed %" PRIu64 ")\n",
               demo.keys, demo.zipf, demo.seed);
        printf("  seconds      %.3f\n", secs);
        printf("  events/s     %s\n", rg_human(rate, h, sizeof(h)));
        for (unsigned w = 0; w < workers; w++) {
            uint64_t n = rg_engine_worker_processed(demo.engine, w);
            printf("  worker %-4u  %5.1f%%  (%" PRIu64 " events)\n", w,
                   100.0 * (double)n / (double)demo.events, n);
        }
        printf("  ring waits   %" PRIu64 " (dispatcher found a ring full)\n",
               st.dispatcher_waits);
        if (bad)
            printf("verify: MISMATCH %s\n", mismatch);
        else
            printf("verify: exact\n");
    }

    rg_engine_destroy(demo.engine);
    for (unsigned w = 0; w < workers; w++)
        free(demo.counts[w]);
    free(demo.counts);
    free(demo.stream);
    free(truth);
    free(ins);
    free(th);
    return bad ? 1 : 0;
}
