/*
 * fuzz_like_codec.c - libFuzzer target for the like decoders.
 *
 * Every input is used twice:
 *  1. raw: the first byte splits the rest into a key and a value;
 *  2. near-canonical: the input's bytes pick a like (ids from small to
 *     2^63-1), encode it as the encoder does (JSON or binary, key in
 *     decimal), then edit the value and sometimes the key as the rest of
 *     the bytes say (flip, set, insert, delete a byte, truncate, splice a
 *     boundary number in), so most of the inputs keep a canonical prefix
 *     and probe the fast path's edges.
 * Each message goes through rg_like_decode (the fast path in front) and
 * rg_like_decode_strict, and the target aborts when they disagree in any
 * way: return code, any field, or a rejection that wrote the output. When
 * the fast path alone (rg__like_decode_fast) accepts, the strict
 * decoder must accept the same like; an unedited canonical message must be
 * taken by the fast path. Decoding must never crash or read out of bounds
 * (ASan: key and value are copied to buffers of their exact size), and a
 * decoded like re-encoded as JSON and as binary decodes to itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "like_codec.h"

#define CHECK(cond, what)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_like_codec: %s\n", what);                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* field by field: the struct has padding */
static int same(const rg_like_t *a, const rg_like_t *b)
{
    return a->video_id == b->video_id && a->user_id == b->user_id &&
           a->ts == b->ts && a->state == b->state;
}

/*
 * Decodes one message with both decoders from exact-size copies and
 * checks that they agree. Returns the (common) code; *out gets the like.
 */
static rg_like_err_t check_message(const uint8_t *k, size_t klen,
                                   bool key_null, const uint8_t *v,
                                   size_t vlen, size_t max, rg_like_t *out)
{
    uint8_t *key = malloc(klen ? klen : 1), *val = malloc(vlen ? vlen : 1);
    CHECK(key != NULL && val != NULL, "out of memory");
    if (klen)
        memcpy(key, k, klen);
    if (vlen)
        memcpy(val, v, vlen);
    const uint8_t *kp = key_null ? NULL : key;
    rg_like_t fast, strict, alone, sentinel;
    memset(&sentinel, 0xA5, sizeof(sentinel));
    memcpy(&fast, &sentinel, sizeof(fast)); /* padding included */
    memcpy(&strict, &sentinel, sizeof(strict));
    memcpy(&alone, &sentinel, sizeof(alone));
    rg_like_err_t ef = rg_like_decode(kp, klen, val, vlen, max, &fast);
    rg_like_err_t es = rg_like_decode_strict(kp, klen, val, vlen, max, &strict);
    bool took = rg__like_decode_fast(kp, klen, val, vlen, max, &alone);
    CHECK((unsigned)ef < RG_LIKE_E__COUNT, "unknown error code");
    CHECK(ef == es, "fast and strict decoders return different codes");
    if (es != RG_LIKE_E_NONE) {
        CHECK(memcmp(&fast, &sentinel, sizeof(fast)) == 0 &&
                  memcmp(&strict, &sentinel, sizeof(strict)) == 0,
              "rejected message wrote the output");
        CHECK(!took, "fast path accepted what the strict decoder rejects");
        CHECK(memcmp(&alone, &sentinel, sizeof(alone)) == 0,
              "fast path wrote the output and declined");
    } else {
        CHECK(same(&fast, &strict), "fast and strict decoders differ");
        if (took)
            CHECK(same(&alone, &strict), "fast path alone differs");
        else
            CHECK(memcmp(&alone, &sentinel, sizeof(alone)) == 0,
                  "fast path wrote the output and declined");
    }
    free(key);
    free(val);
    *out = strict;
    return es;
}

/* a decoded like re-encodes to messages that decode to itself */
static void check_round_trip(const rg_like_t *like)
{
    CHECK(like->video_id >= 1 && like->video_id <= RG_LIKE_ID_MAX &&
              like->user_id >= 1 && like->user_id <= RG_LIKE_ID_MAX &&
              like->state <= 1 && like->ts >= -1,
          "decoded like out of range");
    char k[21], json[RG_LIKE_JSON_MAX];
    uint8_t bin[26];
    size_t kl = rg_like_encode_key(like->video_id, k);
    size_t jl = rg_like_encode_json(like, json);
    size_t bl = rg_like_encode_binary(like, bin);
    rg_like_t a, b;
    CHECK(check_message((const uint8_t *)k, kl, false, (const uint8_t *)json,
                        jl, 0, &a) == RG_LIKE_E_NONE && same(&a, like),
          "JSON round trip differs");
    CHECK(check_message((const uint8_t *)k, kl, false, bin, bl, 0, &b) ==
                  RG_LIKE_E_NONE && same(&b, like),
          "binary round trip differs");
    CHECK(rg__like_decode_fast(k, kl, json, jl, 0, &a) && same(&a, like),
          "the fast path declined our own encoder's JSON");
}

/* ---- near-canonical messages from the input's bytes -------------------- */

typedef struct bytes {
    const uint8_t *p;
    size_t n;
} bytes_t;

static uint8_t take(bytes_t *b)
{
    if (b->n == 0)
        return 0;
    b->n--;
    return *b->p++;
}

/* An id in 1..2^63-1 (ts: 0..2^63-1) in a class the byte picks: small,
 * a power-of-ten edge, near 2^63-1, or any 63-bit value. */
static uint64_t pick(bytes_t *b, bool zero_ok)
{
    uint8_t sel = take(b);
    uint64_t v = 0;
    switch (sel % 5) {
    case 0:
        v = take(b);
        break;
    case 1:
        for (int i = 0; i < 3; i++)
            v = v << 8 | take(b);
        break;
    case 2: { /* 10^k - 1, 10^k, 10^k + 1 */
        uint64_t p = 1;
        for (int i = take(b) % 19; i > 0; i--)
            p *= 10;
        v = p + (uint64_t)(sel / 5 % 3) - 1;
        break;
    }
    case 3:
        v = (uint64_t)RG_LIKE_ID_MAX - take(b);
        break;
    default:
        for (int i = 0; i < 8; i++)
            v = v << 8 | take(b);
        v &= (uint64_t)RG_LIKE_ID_MAX;
        break;
    }
    if (!zero_ok && v == 0)
        v = 1;
    return v;
}

/* numbers to splice in over a digit run: range edges, overflows, the
 * forms the strict grammar rejects or reads differently */
static const char *const splices[] = {
    "0", "00", "01", "-0", "-1", "1.0", "1e3", "1E+2", "0.5",
    "9223372036854775807", "9223372036854775808", "09223372036854775807",
    "18446744073709551615", "18446744073709551616", "99999999999999999999",
    "10000000000000000000", "1000000000000000000", "999999999999999999",
    " 1", "1 ", "\"1\"", "true", "null", "[1]", "{}",
};
#define NSPLICES (sizeof(splices) / sizeof(splices[0]))

#define EDIT_CAP 256

static void edit(uint8_t *buf, size_t *len, bytes_t *b)
{
    uint8_t op = take(b), pos8 = take(b), val = take(b);
    size_t n = *len, pos = n ? pos8 % (n + 1) : 0;
    switch (op % 7) {
    case 0: /* flip bits */
        if (pos < n)
            buf[pos] ^= val ? val : 1;
        break;
    case 1: /* set a byte */
        if (pos < n)
            buf[pos] = val;
        break;
    case 2: /* insert a byte */
        if (n < EDIT_CAP) {
            memmove(buf + pos + 1, buf + pos, n - pos);
            buf[pos] = val;
            *len = n + 1;
        }
        break;
    case 3: /* delete a byte */
        if (pos < n) {
            memmove(buf + pos, buf + pos + 1, n - pos - 1);
            *len = n - 1;
        }
        break;
    case 4: /* truncate */
        *len = pos;
        break;
    case 5: { /* replace the digit run at or after pos with a splice */
        size_t s = pos;
        while (s < n && (buf[s] < '0' || buf[s] > '9'))
            s++;
        size_t e = s;
        while (e < n && buf[e] >= '0' && buf[e] <= '9')
            e++;
        const char *sp = splices[val % NSPLICES];
        size_t sl = strlen(sp);
        if (n - (e - s) + sl <= EDIT_CAP) {
            memmove(buf + s + sl, buf + e, n - e);
            memcpy(buf + s, sp, sl);
            *len = n - (e - s) + sl;
        }
        break;
    }
    default: /* insert a digit (longer numbers, overflow) */
        if (n < EDIT_CAP) {
            memmove(buf + pos + 1, buf + pos, n - pos);
            buf[pos] = (uint8_t)('0' + val % 10);
            *len = n + 1;
        }
        break;
    }
}

static void near_canonical(const uint8_t *data, size_t size)
{
    bytes_t b = {data, size};
    rg_like_t like;
    uint8_t flags = take(&b);
    like.video_id = pick(&b, false);
    like.user_id = pick(&b, false);
    like.state = flags & 1;
    like.ts = flags & 2 ? (int64_t)pick(&b, true) : -1;
    bool binary = flags & 4;
    uint8_t val[EDIT_CAP + 1], key[EDIT_CAP + 1];
    size_t vlen, klen = rg_like_encode_key(like.video_id, (char *)key);
    if (binary) {
        vlen = rg_like_encode_binary(&like, val);
    } else {
        char json[RG_LIKE_JSON_MAX];
        vlen = rg_like_encode_json(&like, json);
        memcpy(val, json, vlen);
    }
    /* the message as encoded: both decoders take it, and so does the
     * fast path (binary only with a key of up to 16 digits) */
    rg_like_t got;
    CHECK(check_message(key, klen, false, val, vlen, 4096, &got) ==
                  RG_LIKE_E_NONE && same(&got, &like),
          "an encoded like does not decode to itself");
    if (!binary || klen <= 16)
        CHECK(rg__like_decode_fast(key, klen, val, vlen, 4096, &got) &&
                  same(&got, &like),
              "the fast path declined an encoded like");
    /* then the edits */
    int edits = 1 + (flags >> 3 & 7);
    for (int i = 0; i < edits && b.n > 0; i++)
        edit(val, &vlen, &b);
    bool key_null = false;
    switch (flags >> 6) {
    case 1: /* edit the key too */
        edit(key, &klen, &b);
        break;
    case 2: /* a key from the stream: another id, sometimes none */
        key_null = (take(&b) & 7) == 0;
        klen = rg_like_encode_key(pick(&b, false), (char *)key);
        break;
    default:
        break;
    }
    uint8_t m = take(&b) % 4;
    size_t max = m == 0 ? 0 : m == 1 ? vlen : m == 2 ? (vlen ? vlen - 1 : 0)
                                                     : 4096;
    if (check_message(key, klen, key_null, val, vlen, max, &got) ==
        RG_LIKE_E_NONE)
        check_round_trip(&got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t klen = data[0] % 24;
    if (klen > size - 1)
        klen = size - 1;
    rg_like_t like;
    if (check_message(data + 1, klen, klen == 0, data + 1 + klen,
                      size - 1 - klen, 4096, &like) == RG_LIKE_E_NONE)
        check_round_trip(&like);
    near_canonical(data, size);
    return 0;
}
