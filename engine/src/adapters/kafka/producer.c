/*
 * producer.c - the producer SDK over librdkafka (railgun/producer.h).
 *
 * A thin, strict layer: it refuses what would go wrong later (no key, an
 * oversized value, malformed JSON) at the call with a reason, counts what
 * is in flight, and turns librdkafka's delivery reports into one callback
 * per accepted message.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/error.h"
#include "railgun/producer.h"
#include "kafka_int.h"

struct rg_producer_s {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    rg_delivery_cb *cb;
    void *opaque;
    size_t max_bytes;              /* message.max.bytes */
    _Atomic size_t in_flight;
    pthread_mutex_t err_lock;      /* broker_err, from librdkafka's threads */
    char broker_err[256];
};

/* librdkafka's error callback (its threads): keep the last one, so a
 * delivery that times out can say why (no broker reachable, ...). */
static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque)
{
    (void)rk;
    rg_producer_t *p = opaque;
    pthread_mutex_lock(&p->err_lock);
    snprintf(p->broker_err, sizeof(p->broker_err), "%s: %s",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    pthread_mutex_unlock(&p->err_lock);
}

int rg_producer_broker_error(rg_producer_t *p, char *buf, size_t size)
{
    pthread_mutex_lock(&p->err_lock);
    int has = p->broker_err[0] != '\0';
    snprintf(buf, size, "%s", p->broker_err);
    pthread_mutex_unlock(&p->err_lock);
    return has;
}

static _Thread_local char last_error[256];

static int refuse(int rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int refuse(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return rc;
}

const char *rg_producer_last_error(void)
{
    return last_error;
}

/* ---- a strict JSON checker (RFC 8259), no allocation ------------------- */

#define JSON_MAX_DEPTH 64

struct jp {
    const char *s, *end;
};

static void ws(struct jp *p)
{
    while (p->s < p->end &&
           (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static bool lit(struct jp *p, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n) != 0)
        return false;
    p->s += n;
    return true;
}

static bool hex4(struct jp *p)
{
    for (int i = 0; i < 4; i++, p->s++)
        if (p->s >= p->end ||
            !((*p->s >= '0' && *p->s <= '9') ||
              ((*p->s | 0x20) >= 'a' && (*p->s | 0x20) <= 'f')))
            return false;
    return true;
}

/* A string, with UTF-8 checked (no overlongs, surrogates, > U+10FFFF). */
static bool string(struct jp *p)
{
    p->s++; /* the opening quote */
    while (p->s < p->end) {
        unsigned char c = (unsigned char)*p->s;
        if (c == '"') {
            p->s++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (++p->s >= p->end)
                return false;
            char e = *p->s++;
            if (e == 'u') {
                if (!hex4(p))
                    return false;
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return false;
            }
            continue;
        }
        if (c < 0x80) {
            p->s++;
            continue;
        }
        int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : -1;
        if (n < 0 || c > 0xF4 || p->end - p->s <= n)
            return false;
        unsigned char c1 = (unsigned char)p->s[1];
        if ((c1 & 0xC0) != 0x80 || (c == 0xE0 && c1 < 0xA0) ||
            (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
            (c == 0xF4 && c1 > 0x8F))
            return false;
        for (int i = 2; i <= n; i++)
            if (((unsigned char)p->s[i] & 0xC0) != 0x80)
                return false;
        p->s += n + 1;
    }
    return false;
}

static bool digits(struct jp *p)
{
    const char *b = p->s;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9')
        p->s++;
    return p->s > b;
}

static bool number(struct jp *p)
{
    if (*p->s == '-')
        p->s++;
    if (p->s < p->end && *p->s == '0')
        p->s++;
    else if (!digits(p))
        return false;
    if (p->s < p->end && *p->s == '.') {
        p->s++;
        if (!digits(p))
            return false;
    }
    if (p->s < p->end && (*p->s == 'e' || *p->s == 'E')) {
        p->s++;
        if (p->s < p->end && (*p->s == '+' || *p->s == '-'))
            p->s++;
        if (!digits(p))
            return false;
    }
    return true;
}

static bool value(struct jp *p, int depth)
{
    ws(p);
    if (p->s >= p->end || depth > JSON_MAX_DEPTH)
        return false;
    char c = *p->s;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p->s++;
        ws(p);
        if (p->s < p->end && *p->s == close) {
            p->s++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                ws(p);
                if (p->s >= p->end || *p->s != '"' || !string(p))
                    return false;
                ws(p);
                if (p->s >= p->end || *p->s++ != ':')
                    return false;
            }
            if (!value(p, depth + 1))
                return false;
            ws(p);
            if (p->s >= p->end)
                return false;
            if (*p->s == close) {
                p->s++;
                return true;
            }
            if (*p->s++ != ',')
                return false;
        }
    }
    if (c == '"')
        return string(p);
    if (c == '-' || (c >= '0' && c <= '9'))
        return number(p);
    return lit(p, "true") || lit(p, "false") || lit(p, "null");
}

/* True when text[0..len) is exactly one JSON value (whitespace around). */
static bool json_ok(const char *text, size_t len)
{
    struct jp p = {text, text + len};
    if (!value(&p, 0))
        return false;
    ws(&p);
    return p.s == p.end;
}

/* ---- the producer ------------------------------------------------------ */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    (void)rk;
    rg_producer_t *p = opaque;
    if (p->cb != NULL) {
        rg_delivery_t d = {
            .err = m->err ? RG_EIO : 0,
            .errstr = m->err ? rd_kafka_err2str(m->err) : NULL,
            .partition = m->partition,
            .offset = m->err ? -1 : m->offset,
            .key = m->key,
            .key_len = m->key_len,
            .msg_opaque = m->_private,
        };
        p->cb(p->opaque, &d);
    }
    /* relaxed: a counter; flush() waits on librdkafka, not on this */
    atomic_fetch_sub_explicit(&p->in_flight, 1, memory_order_relaxed);
}

rg_producer_t *rg_producer_new(const rg_conf_t *given, rg_delivery_cb *cb,
                               void *opaque, char *errstr, size_t size)
{
    char rkerr[512];
    rg_conf_t *conf = rg__kafka_conf(given, errstr, size);
    if (conf == NULL)
        return NULL;
    rg_producer_t *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (p == NULL || kc == NULL) {
        snprintf(errstr, size, "producer: out of memory");
        goto fail;
    }
    pthread_mutex_init(&p->err_lock, NULL);
    /* Kafka's default partitioner (the Java client's murmur2) unless the
     * configuration names another */
    rd_kafka_conf_set(kc, "partitioner", "murmur2_random", NULL, 0);
    size_t cur = 0;
    const char *name, *val;
    bool servers = false;
    while (rg_conf_next_passthrough(conf, "kafka.", &cur, &name, &val)) {
        if (rd_kafka_conf_set(kc, name, val, rkerr, sizeof(rkerr)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "kafka.%s: %s", name, rkerr);
            goto fail;
        }
        if (strcmp(name, "bootstrap.servers") == 0)
            servers = val[strspn(val, " \t,")] != '\0';
    }
    if (!servers) {
        snprintf(errstr, size, "kafka.bootstrap.servers: not set or empty "
                 "(where is the cluster?)");
        goto fail;
    }
    char mb[32];
    size_t mbs = sizeof(mb);
    if (rd_kafka_conf_get(kc, "message.max.bytes", mb, &mbs) ==
        RD_KAFKA_CONF_OK)
        p->max_bytes = (size_t)strtoull(mb, NULL, 10);
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_error_cb(kc, on_error);
    rd_kafka_conf_set_opaque(kc, p);
    p->cb = cb;
    p->opaque = opaque;
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, rkerr, sizeof(rkerr));
    if (p->rk == NULL) {
        snprintf(errstr, size, "producer: %s", rkerr);
        goto fail;
    }
    kc = NULL; /* owned by rk now */
    const char *topic = rg_conf_get_str(conf, "topic");
    p->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (p->rkt == NULL) {
        snprintf(errstr, size, "topic: \"%s\": %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    rg_conf_destroy(conf);
    return p;
fail:
    if (kc != NULL)
        rd_kafka_conf_destroy(kc);
    if (p != NULL && p->rk != NULL)
        rd_kafka_destroy(p->rk);
    if (p != NULL)
        pthread_mutex_destroy(&p->err_lock);
    free(p);
    rg_conf_destroy(conf);
    return NULL;
}

static int send_one(rg_producer_t *p, const void *key, size_t key_len,
                    const void *value, size_t value_len, void *msg_opaque)
{
    if (key == NULL || key_len == 0)
        return refuse(RG_EINVAL, "no key: every message needs one (it keeps "
                      "one key's events in order on one partition)");
    if (p->max_bytes && key_len + value_len > p->max_bytes)
        return refuse(RG_EINVAL, "message of %zu bytes is over "
                      "message.max.bytes (%zu)", key_len + value_len,
                      p->max_bytes);
    /* relaxed: a counter (see on_delivery) */
    atomic_fetch_add_explicit(&p->in_flight, 1, memory_order_relaxed);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_RKT(p->rkt),
        RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    atomic_fetch_sub_explicit(&p->in_flight, 1, memory_order_relaxed);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return refuse(RG_EFULL, "the producer queue is full (poll or "
                      "flush, then send again)");
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        return refuse(RG_EINVAL, "message over message.max.bytes");
    return refuse(RG_EIO, "produce: %s", rd_kafka_err2str(err));
}

int rg_producer_send_bytes(rg_producer_t *p, const void *key, size_t key_len,
                           const void *value, size_t value_len,
                           void *msg_opaque)
{
    return send_one(p, key, key_len, value, value_len, msg_opaque);
}

int rg_producer_send_string(rg_producer_t *p, const char *key,
                            const char *value, void *msg_opaque)
{
    if (value == NULL)
        return refuse(RG_EINVAL, "NULL value");
    return send_one(p, key, key ? strlen(key) : 0, value, strlen(value),
                    msg_opaque);
}

int rg_producer_send_json(rg_producer_t *p, const char *key,
                          const char *json, void *msg_opaque)
{
    if (json == NULL)
        return refuse(RG_EINVAL, "NULL value");
    size_t len = strlen(json);
    if (!json_ok(json, len))
        return refuse(RG_EINVAL, "value is not one well-formed JSON value");
    return send_one(p, key, key ? strlen(key) : 0, json, len, msg_opaque);
}

size_t rg_producer_send_batch(rg_producer_t *p, const rg_produce_msg_t *msgs,
                              size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (send_one(p, msgs[i].key, msgs[i].key_len, msgs[i].value,
                     msgs[i].value_len, msgs[i].msg_opaque) != 0)
            return i;
    return n;
}

int rg_producer_poll(rg_producer_t *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

int rg_producer_flush(rg_producer_t *p, int timeout_ms)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    return refuse(RG_ETIMEDOUT, "flush: %s (%zu messages in flight)",
                  rd_kafka_err2str(err), rg_producer_in_flight(p));
}

size_t rg_producer_in_flight(const rg_producer_t *p)
{
    /* relaxed: a counter */
    return atomic_load_explicit(&p->in_flight, memory_order_relaxed);
}

void rg_producer_destroy(rg_producer_t *p)
{
    if (p == NULL)
        return;
    rd_kafka_flush(p->rk, 10000);
    rd_kafka_topic_destroy(p->rkt);
    rd_kafka_destroy(p->rk);
    pthread_mutex_destroy(&p->err_lock);
    free(p);
}
