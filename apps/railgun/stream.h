/*
 * stream.h - the generated like stream that `railgun demo` and `railgun
 * produce` share, its ground truth, and the check of a database against
 * it.
 *
 * A stream is a function of its spec: like/unlike events, Zipf(zipf)
 * over `videos` videos (with --hot-share S, video 1 takes a share S
 * first and the Zipf draw the rest), uniform over `users` users, 2 in 3 of them likes,
 * from an RNG seeded with `seed`. Event i has a fixed place: partition
 * hash(video) % partitions, offsets counting up per partition in stream
 * order, timestamp RG_STREAM_BASE_TS + i. So `railgun produce` with the
 * options of a `railgun demo --verify-only` produces the very stream that
 * the latter checks the database against.
 *
 * The truth applies the likes job's rule in stream order: a like of a
 * pair not liked counts +1, an unlike of a liked one -1, repeats nothing.
 */
#ifndef RG_STREAM_H
#define RG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cli.h"
#include "like_codec.h"
#include "railgun/producer.h"
#include "railgun/railgun.h"

#define RG_STREAM_BASE_TS 1700000000000ll
#define RG_STREAM_KEY_MAX 24 /* bytes of an encoded key (a video id) */

/* What a stream is made of: the options demo and produce share. The
 * format (--format json|binary) is how values are written, not what they
 * say: the truth is the same for both. */
typedef struct rg_stream_spec_s {
    uint64_t events, videos, users, seed;
    double zipf;
    double hot;   /* --hot-share: video 1 takes this share of the events
                     (drawn first; 0: the Zipf draw alone) */
    unsigned partitions;
    bool binary;  /* values in the compact binary form (like_codec.h) */
    uint64_t poison; /* `railgun demo --poison N`: N events the likes job
                        fails for good (rg_stream_poisoned()); the truth
                        leaves them out */
} rg_stream_spec_t;

/* The poison step of spec (0: no poison): event i is poisoned when
 * i % step == step / 2 and i / step < spec->poison, the rule of the
 * likes job's likes.fault.poison.* rows. */
uint64_t rg_stream_poison_step(const rg_stream_spec_t *spec);
bool rg_stream_poisoned(const rg_stream_spec_t *spec, uint64_t i);

/* The defaults, with `n` events. */
#define RG_STREAM_SPEC_DEFAULT(n)                                          \
    ((rg_stream_spec_t){.events = (n), .videos = 10000, .users = 100000,   \
                        .seed = 1, .zipf = 0.99, .partitions = 32})

/* A pair's final state in the truth. */
typedef struct rg_stream_pair_s {
    int64_t video, user;
    uint8_t state;
} rg_stream_pair_t;

/* The stream, in generation order, and its truth. A zeroed one is empty
 * (rg_stream_free() accepts it). */
typedef struct rg_stream_s {
    rg_stream_spec_t spec;
    uint64_t n;
    int64_t *video, *user;
    uint8_t *state;
    int32_t *part;
    int64_t *off;
    /* truth: (video, user) -> final state, open addressing */
    rg_stream_pair_t *pairs;
    size_t mask;
    size_t likes;    /* pairs whose final state is 1 */
    int64_t *count;  /* [videos + 1]: the final count of each video */
} rg_stream_t;

/*
 * Consumes a stream option at argv[*i] (--events N, --videos V, --users
 * U, --zipf S, --hot-share S, --seed N, --partitions P, --format
 * json|binary; `--opt=V`
 * too) into spec,
 * advancing *i past its value. 1 when consumed, 0 when not one of them,
 * -1 after printing the error (rg_cli_fail()).
 */
int rg_stream_option(rg_cli_t *cli, rg_stream_spec_t *spec, int argc,
                     char **argv, int *i);

/* Generates the stream of spec and its truth into the empty s. 0, or
 * RG_ENOMEM with s empty. */
int rg_stream_generate(rg_stream_t *s, const rg_stream_spec_t *spec);

/* Frees s and leaves it empty. */
void rg_stream_free(rg_stream_t *s);

/* Event i as a message: key (RG_STREAM_KEY_MAX bytes) and value
 * (RG_LIKE_JSON_MAX bytes; JSON, or binary with spec.binary) into the
 * caller's buffers; returns *msg with
 * the event's partition and offset, pointing at them. */
void rg_stream_msg(const rg_stream_t *s, uint64_t i, char *key, char *val,
                   rg_msg_t *msg);

/*
 * Compares what the sink stores (counts and actions, read with its scan)
 * with the truth. 0 when they match exactly; 1 with a one-line reason in
 * msg otherwise, or when the sink cannot be read. *count_rows and
 * *action_rows receive the rows read.
 */
int rg_stream_verify(const rg_stream_t *s, const rg_sink_t *sink, char *msg,
                     size_t msg_size, uint64_t *count_rows,
                     uint64_t *action_rows);

/*
 * Producing a stream with the producer SDK (railgun/producer.h): keyed
 * by video, in stream order, idempotent, so every run lays out the same
 * offsets. With an engine to pace against, it stays at most
 * RG_STREAM_PRODUCE_LAG events ahead of what the engine took: librdkafka's
 * mock cluster keeps only the newest few MB of each partition and drops
 * older messages silently, so a consumer left far behind would miss some
 * (measured: 14k of 600k when everything was produced first).
 */
#define RG_STREAM_PRODUCE_LAG 100000

typedef struct rg_stream_producer_s {
    const rg_stream_t *s;  /* NULL: the caller sends its own messages */
    rg_producer_t *p;
    rg_engine_t *pace;     /* NULL: as fast as the producer takes them */
    uint64_t skipped;      /* events below the stored offsets, which the
                              paced engine will not count */
    _Atomic int stop;      /* set by another thread: stop producing */
    _Atomic int done;      /* set by rg_stream_produce_main() on return:
                              then err and failed are final */
    uint64_t failed;       /* messages not delivered (delivery callback,
                              on the thread that polls p) */
    char err[768];         /* why produce_main() failed, "" when it did
                              not */
    char first_err[256];   /* the first delivery error (delivery cb) */
    int64_t timeout_ms;    /* produce.timeout.ms, or the user's
                              kafka.message.timeout.ms */
} rg_stream_producer_t;

/* Waits until every message sent is delivered or failed (within the
 * timeout, plus 5 s); 0, or -1 with pr->err saying how many were not
 * delivered, the first delivery error and what the brokers last said. */
int rg_stream_producer_flush(rg_stream_producer_t *pr);

/* Opens pr's producer from conf (kafka.*, topic) with idempotence and
 * linger.ms=5 for stream s (may be NULL). 0, or RG_EINVAL (what
 * rg_producer_new() refused, see pipeline.h) or RG_ENOMEM with errstr. */
int rg_stream_producer_open(rg_stream_producer_t *pr, const rg_stream_t *s,
                            const rg_conf_t *conf, char *errstr,
                            size_t errstr_size);

/* Sends the whole stream, then flushes; pr->err says why it stopped
 * short. A thread's main (arg: pr), or called directly. */
void *rg_stream_produce_main(void *arg);

/* True once rg_stream_produce_main() has returned; pr->err and
 * pr->failed may be read then. Any thread. */
bool rg_stream_producer_done(rg_stream_producer_t *pr);

/* Destroys the producer (flushing for up to 10 s); NULL p is fine. */
void rg_stream_producer_close(rg_stream_producer_t *pr);

#endif /* RG_STREAM_H */
