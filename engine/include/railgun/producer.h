/*
 * producer.h - the producer SDK: how services send events to railgun's
 * Kafka topic (librailgun_kafka, librdkafka underneath).
 *
 *   rg_producer_t *p = rg_producer_new(conf, on_delivery, me, err, size);
 *   rg_producer_send_string(p, "42", "{\"video_id\": 42, ...}", NULL);
 *   rg_producer_flush(p, 10000);
 *   rg_producer_destroy(p);
 *
 * Configuration: `topic`, and librdkafka's own properties with a `kafka.`
 * prefix (`kafka.bootstrap.servers` is required): the Kafka table
 * (rg_kafka_conf_table(), railgun/kafka.h), which rg_producer_new() adds
 * to its own copy of conf. The key picks the
 * partition with Kafka's default partitioner (murmur2, as the Java client
 * does), so one key always lands on one partition, in send order.
 *
 * Bad input is refused at the call with RG_EINVAL and a reason from
 * rg_producer_last_error(), and nothing is sent: a NULL or empty key (the
 * topic is keyed: the key is what keeps one video's events in order), a
 * value over `message.max.bytes`, a send_json() value that is not one
 * well-formed JSON value. RG_EFULL: librdkafka's queue is full (poll or
 * flush, then send again).
 *
 * Delivery: every accepted message gets exactly one delivery callback with
 * its final status (partition and offset, or the error), from
 * rg_producer_poll() or rg_producer_flush() on the calling thread.
 *
 * Threads: one producer may be used from several threads for sends; the
 * callbacks run on whichever thread polls or flushes.
 *
 * Degraded mode (only when `fallback.spool.dir` is set; otherwise none of
 * this happens): when librdkafka reports every broker down, when a
 * delivery fails because Kafka is unavailable, or when messages wait with
 * none delivered for `fallback.after.ms`, the producer switches to
 * degraded mode and appends every send to a durable local spool (group
 * commit with fdatasync; see docs/CONFIGURATION.md, fallback.*). The calls
 * do not change; a send blocks at most `fallback.block.max.ms`. Such a
 * message's delivery callback comes once it is durable on disk, with err
 * 0, partition -1 and offset -1 ("spooled": it will reach Kafka by the
 * replay). A message librdkafka held when Kafka went away and then gave up
 * on (timed out, or purged by destroy) is spooled the same way instead of
 * failing. When deliveries succeed again, poll and flush replay the spool
 * to Kafka in spool order (new sends keep going to the spool meanwhile, so
 * one key's messages stay in send order); once every spooled message is
 * in librdkafka's queue the producer sends directly again (behind them),
 * and deletes the spool's segments once Kafka acknowledged them all. A
 * producer created over a spool that still holds records (a process that
 * died degraded) starts degraded and replays them first. Replayed messages
 * carry the headers `rg-producer-id` (16 hex digits) and `rg-seq`
 * (decimal), the exactly-once identity of the spooled message: a job whose
 * sink keeps producer marks applies it once even if it reaches Kafka twice
 * (the replay never runs more than RG_MARK_WINDOW records ahead of the
 * oldest one Kafka has not acknowledged, the bound that check relies on;
 * railgun/engine.h, rg_msg_t). Degraded
 * sends fail with RG_EFULL at `fallback.spool.max.bytes` (nothing already
 * accepted is dropped), RG_ETIMEDOUT when the spool did not take the
 * message within fallback.block.max.ms, RG_EIO when the spool failed.
 * rg_producer_flush() in degraded mode syncs the spool and waits for every
 * callback; messages librdkafka held from before the outage cannot
 * complete until Kafka is back, so it may return RG_ETIMEDOUT saying so
 * (rg_producer_destroy() spools them).
 * Entering and leaving degraded mode is logged through the conf's log
 * callback (who "producer"), naming the cause.
 */
#ifndef RAILGUN_PRODUCER_H
#define RAILGUN_PRODUCER_H

#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_producer_s rg_producer_t;

/* A message's final status, for the delivery callback. */
typedef struct rg_delivery_s {
    int err;              /* 0, or RG_EIO (errstr says why) */
    const char *errstr;   /* NULL on success */
    int32_t partition;
    int64_t offset;       /* -1 when not delivered */
    const void *key;
    size_t key_len;
    void *msg_opaque;     /* what the send call was given */
} rg_delivery_t;

typedef void (rg_delivery_cb)(void *opaque, const rg_delivery_t *d);

/* One message of a batch. */
typedef struct rg_produce_msg_s {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    void *msg_opaque;
} rg_produce_msg_t;

/*
 * A producer for conf's `topic` (conf is read, not kept). cb may be NULL.
 * NULL with a one-line reason in errstr (a bad kafka.* property named).
 */
RG_EXPORT rg_producer_t *rg_producer_new(const rg_conf_t *conf,
                                         rg_delivery_cb *cb, void *opaque,
                                         char *errstr, size_t errstr_size);

/* Sends one message (copied). 0, RG_EINVAL, RG_EFULL or RG_EIO; in
 * degraded mode also RG_ETIMEDOUT (see above). */
RG_EXPORT int rg_producer_send_bytes(rg_producer_t *p, const void *key,
                                     size_t key_len, const void *value,
                                     size_t value_len, void *msg_opaque);

/* rg_producer_send_bytes() with NUL-terminated key and value. */
RG_EXPORT int rg_producer_send_string(rg_producer_t *p, const char *key,
                                      const char *value, void *msg_opaque);

/* Sends the caller's JSON text after checking it is one well-formed JSON
 * value (RFC 8259; nothing is built or rewritten). */
RG_EXPORT int rg_producer_send_json(rg_producer_t *p, const char *key,
                                    const char *json, void *msg_opaque);

/*
 * Sends msgs[0..n) in order; stops at the first refusal. Returns how many
 * were accepted; when fewer than n, msgs[returned] was refused and
 * rg_producer_last_error() says why.
 */
RG_EXPORT size_t rg_producer_send_batch(rg_producer_t *p,
                                        const rg_produce_msg_t *msgs,
                                        size_t n);

/* Serves delivery callbacks for up to timeout_ms; returns how many. */
RG_EXPORT int rg_producer_poll(rg_producer_t *p, int timeout_ms);

/* Waits until every accepted message has its delivery callback, for up to
 * timeout_ms. 0, or RG_ETIMEDOUT (messages still in flight). */
RG_EXPORT int rg_producer_flush(rg_producer_t *p, int timeout_ms);

/* Messages accepted whose delivery callback has not run yet. */
RG_EXPORT size_t rg_producer_in_flight(const rg_producer_t *p);

/* What librdkafka last reported about the brokers (e.g. "_ALL_BROKERS_DOWN:
 * 1/1 brokers are down") into buf; 1 when there was something, else 0.
 * Any thread: for a delivery that failed, the reason behind it. */
RG_EXPORT int rg_producer_broker_error(rg_producer_t *p, char *buf,
                                       size_t size);

/* The producer's mode (rg_producer_stats_t.mode). */
typedef enum rg_producer_mode_e {
    RG_PRODUCER_DIRECT = 0,   /* sends go to librdkafka */
    RG_PRODUCER_DEGRADED,     /* Kafka unavailable: sends go to the spool */
    RG_PRODUCER_DRAINING      /* Kafka delivers again: the spool is being
                               * replayed; sends still go to the spool */
} rg_producer_mode_t;

/* Counters of one producer (all 0 but mode without a spool). */
typedef struct rg_producer_stats_s {
    rg_producer_mode_t mode;
    uint64_t degraded;        /* times degraded mode was entered */
    uint64_t spooled;         /* messages appended to the spool: sends in
                               * degraded mode and rescued ones */
    uint64_t rescued;         /* of those: given up on by librdkafka */
    uint64_t replayed;        /* spooled messages since delivered to Kafka */
    uint64_t spool_bytes;     /* bytes the spool holds (headers included) */
    uint64_t spool_pending;   /* spooled and not yet replayed */
} rg_producer_stats_t;

/* A snapshot of p's counters into *out. Any thread; never blocks. */
RG_EXPORT void rg_producer_stats(rg_producer_t *p, rg_producer_stats_t *out);

/* "direct", "degraded" or "draining". */
RG_EXPORT const char *rg_producer_mode_name(rg_producer_mode_t mode);

/* Why the last refused call of this thread was refused ("" if none). */
RG_EXPORT const char *rg_producer_last_error(void);

/* Flushes for up to 10 s, then frees; NULL is fine. With a spool, what
 * librdkafka still holds then is appended to the spool (and reported
 * spooled) before it is closed: a producer on the same directory replays
 * it. */
RG_EXPORT void rg_producer_destroy(rg_producer_t *p);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_PRODUCER_H */
