/*
 * stream.c - the demo's like stream: generation, truth, verification and
 * producing (see stream.h).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "stream.h"
#include "zipf.h"

int rg_stream_option(rg_cli_t *cli, rg_stream_spec_t *spec, int argc,
                     char **argv, int *i)
{
    uint64_t parts = spec->partitions;
    const struct {
        const char *name;
        uint64_t min, max;
        uint64_t *to;
    } opts[] = {
        {"--events", 1, 1000000000ull, &spec->events},
        {"--videos", 1, 100000000ull, &spec->videos},
        {"--users", 1, 1000000000000ull, &spec->users},
        {"--seed", 0, UINT64_MAX, &spec->seed},
        {"--partitions", 1, 1024, &parts},
    };
    const char *a = argv[*i], *v;
    if (rg_cli_is(a, "--format")) {
        v = rg_cli_value(cli, argc, argv, i, "--format");
        if (v == NULL)
            return -1;
        if (strcmp(v, "json") != 0 && strcmp(v, "binary") != 0) {
            rg_cli_fail(cli, "--format: \"%s\": json or binary", v);
            return -1;
        }
        spec->binary = strcmp(v, "binary") == 0;
        return 1;
    }
    if (rg_cli_is(a, "--hot-share")) {
        v = rg_cli_value(cli, argc, argv, i, "--hot-share");
        if (v == NULL || rg_cli_double(cli, "--hot-share", v, 0, 1,
                                       &spec->hot) != 0)
            return -1;
        if (spec->hot >= 1) {
            rg_cli_fail(cli, "--hot-share: %s: below 1 (the other videos "
                        "need some events)", v);
            return -1;
        }
        return 1;
    }
    if (rg_cli_is(a, "--zipf")) {
        v = rg_cli_value(cli, argc, argv, i, "--zipf");
        return v && rg_cli_double(cli, "--zipf", v, 0, 10, &spec->zipf) == 0
                   ? 1 : -1;
    }
    for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
        if (!rg_cli_is(a, opts[k].name))
            continue;
        v = rg_cli_value(cli, argc, argv, i, opts[k].name);
        if (v == NULL || rg_cli_u64(cli, opts[k].name, v, opts[k].min,
                                    opts[k].max, opts[k].to) != 0)
            return -1;
        spec->partitions = (unsigned)parts;
        return 1;
    }
    return 0;
}

static rg_stream_pair_t *pair_slot(const rg_stream_t *s, int64_t v,
                                   int64_t u)
{
    size_t i = (size_t)rg_hash64((uint64_t)v * 0x9E3779B97F4A7C15ull ^
                                 (uint64_t)u) & s->mask;
    while (s->pairs[i].video != 0 &&
           !(s->pairs[i].video == v && s->pairs[i].user == u))
        i = (i + 1) & s->mask;
    return &s->pairs[i];
}

uint64_t rg_stream_poison_step(const rg_stream_spec_t *spec)
{
    if (spec->poison == 0 || spec->events == 0)
        return 0;
    uint64_t step = spec->events / spec->poison;
    return step ? step : 1;
}

bool rg_stream_poisoned(const rg_stream_spec_t *spec, uint64_t i)
{
    uint64_t step = rg_stream_poison_step(spec);
    return step != 0 && i % step == step / 2 && i / step < spec->poison;
}

int rg_stream_generate(rg_stream_t *s, const rg_stream_spec_t *spec)
{
    uint64_t n = spec->events;
    size_t size = 1024;
    while (size < 2 * n)
        size *= 2;
    *s = (rg_stream_t){.spec = *spec, .n = n, .mask = size - 1};
    s->video = malloc(sizeof(int64_t) * n);
    s->user = malloc(sizeof(int64_t) * n);
    s->state = malloc(n);
    s->part = malloc(sizeof(int32_t) * n);
    s->off = malloc(sizeof(int64_t) * n);
    s->pairs = calloc(size, sizeof(rg_stream_pair_t));
    s->count = calloc(spec->videos + 1, sizeof(int64_t));
    int64_t *next = calloc(spec->partitions, sizeof(int64_t));
    if (!s->video || !s->user || !s->state || !s->part || !s->off ||
        !s->pairs || !s->count || !next) {
        free(next);
        rg_stream_free(s);
        return RG_ENOMEM;
    }
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, spec->seed);
    rg_zipf_init(&zipf, spec->videos, spec->zipf);
    for (uint64_t i = 0; i < n; i++) {
        /* the hot video's draw only with --hot-share, so that every
         * other stream stays what it was */
        int64_t v = spec->hot > 0 && (double)rg_rng_below(&rng, 1u << 30) <
                                         spec->hot * (double)(1u << 30)
                        ? 1
                        : (int64_t)rg_zipf_next(&zipf, &rng);
        int64_t u = 1 + (int64_t)rg_rng_below(&rng, spec->users);
        /* 2 in 3 events are likes, so unlikes find likes to undo */
        uint8_t st = rg_rng_below(&rng, 3) != 0;
        int32_t p = (int32_t)rg_hash_reduce(rg_hash64((uint64_t)v),
                                            spec->partitions);
        s->video[i] = v;
        s->user[i] = u;
        s->state[i] = st;
        s->part[i] = p;
        s->off[i] = next[p]++;
        /* the truth: the job's transition rule, in stream order; a
         * poisoned event is never applied */
        if (rg_stream_poisoned(spec, i))
            continue;
        rg_stream_pair_t *tp = pair_slot(s, v, u);
        if (tp->video == 0)
            *tp = (rg_stream_pair_t){v, u, 0};
        if (tp->state != st) {
            s->count[v] += st ? 1 : -1;
            s->likes += st ? 1 : (size_t)-1;
            tp->state = st;
        }
    }
    free(next);
    return 0;
}

void rg_stream_free(rg_stream_t *s)
{
    free(s->video);
    free(s->user);
    free(s->state);
    free(s->part);
    free(s->off);
    free(s->pairs);
    free(s->count);
    *s = (rg_stream_t){0};
}

void rg_stream_msg(const rg_stream_t *s, uint64_t i, char *key, char *val,
                   rg_msg_t *msg)
{
    rg_like_t like = {(uint64_t)s->video[i], (uint64_t)s->user[i],
                      RG_STREAM_BASE_TS + (int64_t)i, s->state[i]};
    size_t kl = rg_like_encode_key(like.video_id, key);
    size_t vl = s->spec.binary ? rg_like_encode_binary(&like, (uint8_t *)val)
                               : rg_like_encode_json(&like, val);
    *msg = (rg_msg_t){s->part[i], s->off[i], key, kl, val, vl, 0, 0};
}

/* ---- verification ------------------------------------------------------ */

struct check {
    const rg_stream_t *s;
    char msg[256];
    bool bad;
    uint64_t rows, liked_rows, videos_seen;
};

static void check_count(void *arg, const rg_row_t *row)
{
    struct check *c = arg;
    c->rows++;
    if (c->bad)
        return;
    int64_t want = row->key >= 1 && (uint64_t)row->key <= c->s->spec.videos
                       ? c->s->count[row->key]
                       : -1;
    if (row->value != want) {
        snprintf(c->msg, sizeof(c->msg), "video %" PRId64 ": count %"
                 PRId64 " in the database, %" PRId64 " expected", row->key,
                 row->value, want);
        c->bad = true;
    }
    if (want > 0)
        c->videos_seen++;
}

static void check_action(void *arg, const rg_row_t *row)
{
    struct check *c = arg;
    c->rows++;
    if (c->bad)
        return;
    const rg_stream_pair_t *tp = pair_slot(c->s, row->key, row->key2);
    if (tp->video == 0 || tp->state != row->value) {
        snprintf(c->msg, sizeof(c->msg), "action (video %" PRId64 ", user %"
                 PRId64 "): state %" PRId64 " in the database, %d expected",
                 row->key, row->key2, row->value,
                 tp->video ? tp->state : 0);
        c->bad = true;
    }
    if (row->value == 1)
        c->liked_rows++;
}

int rg_stream_verify(const rg_stream_t *s, const rg_sink_t *sink, char *msg,
                     size_t size, uint64_t *count_rows,
                     uint64_t *action_rows)
{
    char err[512];
    struct check c = {.s = s};
    *count_rows = *action_rows = 0;
    if (sink->scan == NULL) {
        snprintf(msg, size, "the sink cannot be read back (no scan)");
        return 1;
    }
    if (sink->scan(sink->self, RG_SINK_MERGED, check_count, &c, err,
                   sizeof(err)) != 0) {
        snprintf(msg, size, "cannot read counts: %.200s", err);
        return 1;
    }
    *count_rows = c.rows;
    uint64_t want_videos = 0;
    for (uint64_t v = 1; v <= s->spec.videos; v++)
        want_videos += s->count[v] > 0;
    if (!c.bad && c.videos_seen != want_videos) {
        snprintf(c.msg, sizeof(c.msg), "%" PRIu64 " videos with likes in "
                 "the database, %" PRIu64 " expected", c.videos_seen,
                 want_videos);
        c.bad = true;
    }
    if (!c.bad) {
        c.rows = 0;
        if (sink->scan(sink->self, RG_SINK_STAGED, check_action, &c, err,
                       sizeof(err)) != 0) {
            snprintf(msg, size, "cannot read actions: %.200s", err);
            return 1;
        }
        *action_rows = c.rows;
        if (!c.bad && c.liked_rows != s->likes) {
            snprintf(c.msg, sizeof(c.msg), "%" PRIu64 " liked actions in "
                     "the database, %zu expected", c.liked_rows, s->likes);
            c.bad = true;
        }
    }
    snprintf(msg, size, "%s", c.msg);
    return c.bad ? 1 : 0;
}

/* ---- producing ---------------------------------------------------------- */

static void on_delivered(void *opaque, const rg_delivery_t *d)
{
    rg_stream_producer_t *pr = opaque;
    if (d->err && pr->failed++ == 0)
        snprintf(pr->first_err, sizeof(pr->first_err), "%s",
                 d->errstr ? d->errstr : "not delivered");
}

/* Why messages were not delivered: the first delivery error and what the
 * producer last heard from the brokers. */
static void undelivered(rg_stream_producer_t *pr, const char *what)
{
    char broker[256] = "";
    rg_producer_broker_error(pr->p, broker, sizeof(broker));
    snprintf(pr->err, sizeof(pr->err), "%s within %lld ms (%s%s%s)", what,
             (long long)pr->timeout_ms,
             pr->first_err[0] ? pr->first_err : "not delivered",
             broker[0] ? "; brokers: " : "", broker);
}

int rg_stream_producer_open(rg_stream_producer_t *pr, const rg_stream_t *s,
                            const rg_conf_t *conf, char *errstr,
                            size_t size)
{
    *pr = (rg_stream_producer_t){.s = s};
    rg_conf_t *pc = rg_conf_dup(conf);
    if (pc == NULL) {
        snprintf(errstr, size, "out of memory");
        return RG_ENOMEM;
    }
    int rc;
    /* give up (and say why) after produce.timeout.ms, not librdkafka's
     * five minutes, unless the user set message.timeout.ms */
    char tmo[32];
    pr->timeout_ms = rg_conf_get_int(conf, "produce.timeout.ms");
    if (rg_conf_is_set(conf, "kafka.message.timeout.ms"))
        pr->timeout_ms = strtoll(rg_conf_get_str(conf,
                                                 "kafka.message.timeout.ms"),
                                 NULL, 10);
    snprintf(tmo, sizeof(tmo), "%lld", (long long)pr->timeout_ms);
    if ((rc = rg_conf_set(pc, "kafka.enable.idempotence", "true", errstr,
                          size)) != 0 ||
        (rc = rg_conf_set(pc, "kafka.linger.ms", "5", errstr, size)) != 0 ||
        (rc = rg_conf_set(pc, "kafka.message.timeout.ms", tmo, errstr,
                          size)) != 0) {
        rg_conf_destroy(pc);
        return rc;
    }
    pr->p = rg_producer_new(pc, on_delivered, pr, errstr, size);
    rg_conf_destroy(pc);
    return pr->p != NULL ? 0 : RG_EINVAL;
}

int rg_stream_producer_flush(rg_stream_producer_t *pr)
{
    char what[128];
    if (rg_producer_flush(pr->p, (int)pr->timeout_ms + 5000) != 0) {
        snprintf(what, sizeof(what), "%zu messages not delivered",
                 rg_producer_in_flight(pr->p));
        undelivered(pr, what);
        return -1;
    }
    if (pr->failed) {
        snprintf(what, sizeof(what), "%" PRIu64 " messages not delivered",
                 pr->failed);
        undelivered(pr, what);
        return -1;
    }
    return 0;
}

/* Waits while the paced engine is RG_STREAM_PRODUCE_LAG events behind
 * event i, or until told to stop. */
static void pace(rg_stream_producer_t *pr, uint64_t i)
{
    for (;;) {
        rg_engine_stats_t st;
        rg_engine_stats(pr->pace, &st);
        /* relaxed: a flag */
        if (i < pr->skipped + st.accepted + st.undecodable +
                    RG_STREAM_PRODUCE_LAG ||
            atomic_load_explicit(&pr->stop, memory_order_relaxed))
            return;
        rg_producer_poll(pr->p, 5);
    }
}

static void produce(rg_stream_producer_t *pr)
{
    const rg_stream_t *s = pr->s;
    for (uint64_t i = 0; i < s->n; i++) {
        /* relaxed: a flag */
        if (atomic_load_explicit(&pr->stop, memory_order_relaxed))
            break;
        if ((i & 1023) == 0 && pr->pace != NULL)
            pace(pr, i);
        char key[RG_STREAM_KEY_MAX], val[RG_LIKE_JSON_MAX];
        rg_msg_t m;
        rg_stream_msg(s, i, key, val, &m);
        int rc;
        while ((rc = rg_producer_send_bytes(pr->p, m.key, m.key_len,
                                            m.value, m.value_len, NULL)) ==
               RG_EFULL)
            rg_producer_poll(pr->p, 10);
        if (rc != 0) {
            snprintf(pr->err, sizeof(pr->err), "%s",
                     rg_producer_last_error());
            return;
        }
        if ((i & 1023) == 0)
            rg_producer_poll(pr->p, 0);
    }
    rg_stream_producer_flush(pr);
}

void *rg_stream_produce_main(void *arg)
{
    rg_stream_producer_t *pr = arg;
    produce(pr);
    /* release: pairs with the acquire in rg_stream_producer_done(); err
     * and failed are written before */
    atomic_store_explicit(&pr->done, 1, memory_order_release);
    return NULL;
}

bool rg_stream_producer_done(rg_stream_producer_t *pr)
{
    /* acquire: pairs with the release in rg_stream_produce_main() */
    return atomic_load_explicit(&pr->done, memory_order_acquire) != 0;
}

void rg_stream_producer_close(rg_stream_producer_t *pr)
{
    rg_producer_destroy(pr->p);
    pr->p = NULL;
}
