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

/* Sends one message (copied). 0, RG_EINVAL, RG_EFULL or RG_EIO. */
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

/* Why the last refused call of this thread was refused ("" if none). */
RG_EXPORT const char *rg_producer_last_error(void);

/* Flushes for up to 10 s, then frees; NULL is fine. */
RG_EXPORT void rg_producer_destroy(rg_producer_t *p);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_PRODUCER_H */
