/*
 * test_like_codec.c - like events on the wire: good events decode exactly
 * (JSON and binary, with and without ts, unknown fields ignored); every
 * kind of bad payload is rejected with its own named error, never read as
 * something else; encoders round-trip. The fast path in front of the
 * strict decoder takes every canonical value and agrees with the strict
 * decoder, code and fields, on 1M canonical values, 3M edited ones and
 * the edges (overflow at 2^63, leading zeros, -0, size bounds, prefixes,
 * trailing bytes, NULs, keys).
 */
#include "support/test.h"
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "like_codec.h"
#include "zipf.h"

/* field by field: the struct has padding */
static int same(const rg_like_t *a, const rg_like_t *b)
{
    return a->video_id == b->video_id && a->user_id == b->user_id &&
           a->ts == b->ts && a->state == b->state;
}

static rg_like_err_t dec(const char *key, const char *value, rg_like_t *out)
{
    return rg_like_decode(key, key ? strlen(key) : 0, value, strlen(value),
                          4096, out);
}

Test(like_codec, good_json_decodes_exactly)
{
    rg_like_t l;
    cr_assert_eq(dec("42", "{\"video_id\": 42, \"user_id\": 7, \"state\": 1}",
                     &l), RG_LIKE_E_NONE);
    cr_assert_eq(l.video_id, 42);
    cr_assert_eq(l.user_id, 7);
    cr_assert_eq(l.state, 1);
    cr_assert_eq(l.ts, -1);
    cr_assert_eq(dec("9223372036854775807",
                     " {\"state\":0,\"ts\":1700000000000,\"user_id\":1,"
                     "\"video_id\":9223372036854775807} \n", &l),
                 RG_LIKE_E_NONE);
    cr_assert_eq(l.video_id, 9223372036854775807ull);
    cr_assert_eq(l.state, 0);
    cr_assert_eq(l.ts, 1700000000000);
    /* unknown fields of every type are ignored, escaped names decode */
    cr_assert_eq(dec("5", "{\"x\":[1,{\"y\":null},\"a\\\"b\",true,false,-1.5e3],"
                          "\"video\\u005fid\":5,\"user_id\":2,\"state\":1,"
                          "\"note\":\"caf\xc3\xa9 \\u00e9\"}", &l),
                 RG_LIKE_E_NONE);
    cr_assert_eq(l.video_id, 5);
    /* a name with a NUL in it is another name: "video_id\u0000x" and
     * "state\u0000" are unknown fields, not video_id or state */
    cr_assert_eq(dec("5", "{\"video_id\\u0000x\":9,\"video_id\":5,"
                          "\"user_id\":2,\"state\\u0000\":0,\"state\":1}",
                     &l),
                 RG_LIKE_E_NONE);
    cr_assert_eq(l.video_id, 5);
    cr_assert_eq(l.state, 1);
    /* names that share a first letter or a prefix with a field */
    cr_assert_eq(dec("5", "{\"video\":1,\"video_idx\":1,\"v\":1,"
                          "\"user_i\":1,\"stat\":1,\"t\":1,\"tsx\":1,"
                          "\"video_id\":5,\"user_id\":2,\"state\":1}", &l),
                 RG_LIKE_E_NONE);
    cr_assert_eq(l.ts, -1, "\"t\" and \"tsx\" are not ts");
}

struct bad {
    const char *key, *value;
    rg_like_err_t want;
};

Test(like_codec, every_bad_payload_gets_its_named_error)
{
    static const struct bad cases[] = {
        {"1", "", RG_LIKE_E_EMPTY},
        {NULL, "{\"video_id\":1,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_MISSING_KEY},
        {"", "{\"video_id\":1,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_MISSING_KEY},
        {"01", "{\"video_id\":1,\"user_id\":1,\"state\":1}", RG_LIKE_E_BAD_KEY},
        {"-1", "{\"video_id\":1,\"user_id\":1,\"state\":1}", RG_LIKE_E_BAD_KEY},
        {"1 ", "{\"video_id\":1,\"user_id\":1,\"state\":1}", RG_LIKE_E_BAD_KEY},
        {"9223372036854775808", "{\"video_id\":1,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_BAD_KEY},
        {"2", "{\"video_id\":1,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_KEY_MISMATCH},
        {"1", "{\"video_id\":1,\"user_id\":1}", RG_LIKE_E_MISSING_FIELD},
        {"1", "{}", RG_LIKE_E_MISSING_FIELD},
        {"1", "{\"video_id\":1,\"video_id\":1,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_DUPLICATE_FIELD},
        {"1", "{\"video_id\":\"1\",\"user_id\":1,\"state\":1}",
         RG_LIKE_E_BAD_TYPE},
        {"1", "{\"video_id\":1.0,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_BAD_TYPE},
        {"1", "{\"video_id\":1e0,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_BAD_TYPE},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":true}",
         RG_LIKE_E_BAD_TYPE},
        {"1", "{\"video_id\":1,\"user_id\":null,\"state\":1}",
         RG_LIKE_E_BAD_TYPE},
        {"1", "{\"video_id\":-1,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_OUT_OF_RANGE},
        {"1", "{\"video_id\":0,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_OUT_OF_RANGE},
        {"1", "{\"video_id\":1,\"user_id\":9223372036854775808,\"state\":1}",
         RG_LIKE_E_OUT_OF_RANGE},
        {"1", "{\"video_id\":1,\"user_id\":99999999999999999999999,"
              "\"state\":1}", RG_LIKE_E_OUT_OF_RANGE},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":2}",
         RG_LIKE_E_OUT_OF_RANGE},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1,\"ts\":-5}",
         RG_LIKE_E_OUT_OF_RANGE},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1}x",
         RG_LIKE_E_TRAILING},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1}{}",
         RG_LIKE_E_TRAILING},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1", RG_LIKE_E_BAD_JSON},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":01}",
         RG_LIKE_E_BAD_JSON},
        {"1", "{\"video_id\":1,,\"user_id\":1,\"state\":1}",
         RG_LIKE_E_BAD_JSON},
        {"1", "{'video_id':1}", RG_LIKE_E_BAD_JSON},
        {"1", "[1,2]", RG_LIKE_E_NOT_OBJECT},
        {"1", "42", RG_LIKE_E_NOT_OBJECT},
        /* the hostile payloads */
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1,"
              "\"c\":\"'); DROP TABLE counts;--\"}", RG_LIKE_E_NONE},
        {"1", "{\"video_id\":\"1'); DROP TABLE counts;--\",\"user_id\":1,"
              "\"state\":1}", RG_LIKE_E_BAD_TYPE},
        {"1'); DROP TABLE counts;--", "{\"video_id\":1,\"user_id\":1,"
                                      "\"state\":1}", RG_LIKE_E_BAD_KEY},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1,\"q\":\"a\"b\"}",
         RG_LIKE_E_BAD_JSON},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1,\"u\":\"\xff\xfe\"}",
         RG_LIKE_E_BAD_UTF8},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1,\"u\":\"\xc0\xaf\"}",
         RG_LIKE_E_BAD_UTF8}, /* overlong '/' */
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1,\"u\":\"\xed\xa0\x80\"}",
         RG_LIKE_E_BAD_UTF8}, /* a UTF-16 surrogate */
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":1,\"t\":\"a\tb\"}",
         RG_LIKE_E_BAD_UTF8}, /* raw control byte */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rg_like_t l = {.video_id = 777};
        rg_like_err_t got = dec(cases[i].key, cases[i].value, &l);
        cr_assert_eq(got, cases[i].want, "case %zu (%s): got %s, want %s", i,
                     cases[i].value, rg_like_err_name(got),
                     rg_like_err_name(cases[i].want));
        if (got != RG_LIKE_E_NONE)
            cr_assert_eq(l.video_id, 777, "case %zu wrote the output", i);
    }
}

Test(like_codec, nul_bytes_truncation_size_and_depth)
{
    rg_like_t l;
    const char good[] = "{\"video_id\":1,\"user_id\":1,\"state\":1}";
    /* an embedded NUL inside a string value is a control byte */
    const char nul[] = "{\"video_id\":1,\"user_id\":1,\"state\":1,\"n\":\"a\0b\"}";
    cr_assert_eq(rg_like_decode("1", 1, nul, sizeof(nul) - 1, 0, &l),
                 RG_LIKE_E_BAD_UTF8);
    /* ... and after the object it is trailing garbage */
    char tail[64];
    memcpy(tail, good, sizeof(good)); /* includes the NUL */
    cr_assert_eq(rg_like_decode("1", 1, tail, sizeof(good), 0, &l),
                 RG_LIKE_E_TRAILING);
    /* every truncation of a good message is rejected */
    for (size_t n = 1; n < sizeof(good) - 1; n++)
        cr_assert_neq(rg_like_decode("1", 1, good, n, 0, &l), RG_LIKE_E_NONE,
                      "truncated to %zu bytes accepted", n);
    cr_assert_eq(rg_like_decode("1", 1, good, sizeof(good) - 1, 10, &l),
                 RG_LIKE_E_TOO_LARGE);
    /* deep nesting in an unknown field is bounded */
    char deep[200] = "{\"video_id\":1,\"user_id\":1,\"state\":1,\"d\":";
    size_t k = strlen(deep);
    for (int i = 0; i < 40; i++)
        deep[k++] = '[';
    for (int i = 0; i < 40; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    cr_assert_eq(rg_like_decode("1", 1, deep, k, 0, &l), RG_LIKE_E_TOO_DEEP);
}

Test(like_codec, binary_form_and_round_trips)
{
    rg_like_t in[] = {{1, 1, -1, 0}, {42, 7, 1700000000000, 1},
                      {9223372036854775807ull, 9223372036854775807ull, 0, 1}};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char key[21], json[RG_LIKE_JSON_MAX];
        uint8_t bin[26];
        size_t kl = rg_like_encode_key(in[i].video_id, key);
        size_t jl = rg_like_encode_json(&in[i], json);
        size_t bl = rg_like_encode_binary(&in[i], bin);
        cr_assert_eq(bl, in[i].ts >= 0 ? 26u : 18u);
        rg_like_t a, b;
        cr_assert_eq(rg_like_decode(key, kl, json, jl, 0, &a), RG_LIKE_E_NONE,
                     "%s", json);
        cr_assert_eq(rg_like_decode(key, kl, bin, bl, 0, &b), RG_LIKE_E_NONE);
        cr_assert(same(&a, &in[i]), "json round trip");
        cr_assert(same(&b, &in[i]), "binary round trip");
        /* binary: every other length, unknown flags, zero ids */
        for (size_t n = 1; n < 30; n++)
            if (n != bl)
                cr_assert_neq(rg_like_decode(key, kl, bin, n, 0, &b),
                              RG_LIKE_E_NONE, "length %zu", n);
    }
    uint8_t bin[26];
    rg_like_t l = {5, 6, -1, 1};
    size_t bl = rg_like_encode_binary(&l, bin);
    bin[1] |= 4;
    cr_assert_eq(rg_like_decode("5", 1, bin, bl, 0, &l), RG_LIKE_E_BAD_BINARY);
    bin[1] &= 3;
    memset(bin + 10, 0, 8); /* user_id 0 */
    cr_assert_eq(rg_like_decode("5", 1, bin, bl, 0, &l),
                 RG_LIKE_E_OUT_OF_RANGE);
    for (int e = 0; e < RG_LIKE_E__COUNT; e++) {
        cr_assert_str_neq(rg_like_err_name((rg_like_err_t)e), "UNKNOWN");
        cr_assert_gt(strlen(rg_like_err_msg((rg_like_err_t)e)), 1);
    }
}

/* ---- the fast path against the strict decoder --------------------------- */

#define BASE_TS 1700000000000ll /* the demo's first ts */

/* A value as C source would write it, for failure messages. */
static const char *show(const void *p, size_t n)
{
    static char buf[1024];
    const uint8_t *s = p;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < sizeof(buf); i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                              s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\'
                                  ? "%c" : "\\x%02x", s[i]);
    buf[o] = '\0';
    return buf;
}

typedef struct verdict {
    rg_like_err_t code;  /* both decoders' code */
    bool took;           /* the fast path alone accepted it */
    rg_like_t like;      /* the like when code is NONE */
} verdict_t;

/*
 * Runs rg_like_decode, rg_like_decode_strict and the fast path alone on
 * one message, into outputs filled alike beforehand, and asserts that the
 * two decoders agree in code and every field, that a rejection wrote
 * neither output, and that the fast path accepts only what the strict
 * decoder accepts, with the same like.
 */
static verdict_t agree(const void *key, size_t kl, const void *val,
                       size_t vl, size_t max)
{
    rg_like_t fast, strict, alone, sentinel;
    memset(&sentinel, 0x5A, sizeof(sentinel));
    fast = strict = alone = sentinel;
    verdict_t v;
    rg_like_err_t ef = rg_like_decode(key, kl, val, vl, max, &fast);
    v.code = rg_like_decode_strict(key, kl, val, vl, max, &strict);
    v.took = rg__like_decode_fast(key, kl, val, vl, max, &alone);
    v.like = strict;
    if (ef != v.code || (v.code == RG_LIKE_E_NONE && !same(&fast, &strict)) ||
        (v.code != RG_LIKE_E_NONE && !same(&fast, &sentinel)) ||
        (v.took && (v.code != RG_LIKE_E_NONE || !same(&alone, &strict))) ||
        (!v.took && !same(&alone, &sentinel))) {
        char k[64] = "(null)";
        if (key != NULL)
            snprintf(k, sizeof(k), "%.60s", show(key, kl));
        cr_assert(false,
                  "decoders disagree: key %s value \"%s\" max %zu: fast %s, "
                  "strict %s, fast path alone %s", k, show(val, vl), max,
                  rg_like_err_name(ef), rg_like_err_name(v.code),
                  v.took ? "took it" : "declined");
    }
    return v;
}

/* The demo's stream (apps/railgun/cmd_demo.c draws these in this order),
 * or, one draw in eight, an edge: ids of every digit count around powers
 * of ten and 2^63-1, ts absent, 0 or at its edges. */
static rg_like_t draw(rg_rng_t *rng, const rg_zipf_t *zipf, uint64_t i)
{
    rg_like_t l;
    l.video_id = rg_zipf_next(zipf, rng);
    l.user_id = 1 + rg_rng_below(rng, 100000);
    l.state = rg_rng_below(rng, 3) != 0;
    l.ts = BASE_TS + (int64_t)i;
    if (rg_rng_below(rng, 8) != 0)
        return l;
    uint64_t pick[3];
    for (int f = 0; f < 3; f++) {
        uint64_t p = 1, r = rg_rng_next(rng);
        switch (r % 4) {
        case 0: /* 10^k - 1, 10^k, 10^k + 1 for k in 0..18 */
            for (uint64_t k = (r >> 8) % 19; k > 0; k--)
                p *= 10;
            pick[f] = p - 1 + (r >> 16) % 3;
            break;
        case 1:
            pick[f] = (uint64_t)RG_LIKE_ID_MAX - (r >> 8) % 1000;
            break;
        case 2:
            pick[f] = (r >> 1) & (uint64_t)RG_LIKE_ID_MAX;
            break;
        default:
            pick[f] = (r >> 8) % 1000;
            break;
        }
    }
    l.video_id = pick[0] ? pick[0] : 1;
    l.user_id = pick[1] ? pick[1] : 1;
    uint64_t r = rg_rng_next(rng) % 4;
    l.ts = r == 0 ? -1 : r == 1 ? 0 : (int64_t)pick[2];
    return l;
}

Test(like_codec, fast_path_takes_every_canonical_value)
{
    enum { N = 1000000 };
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, 19);
    rg_zipf_init(&zipf, 10000, 0.99);
    uint64_t took_json = 0, took_bin = 0, short_keys = 0;
    for (uint64_t i = 0; i < N; i++) {
        rg_like_t l = draw(&rng, &zipf, i);
        char key[21], json[RG_LIKE_JSON_MAX];
        uint8_t bin[26];
        size_t kl = rg_like_encode_key(l.video_id, key);
        size_t jl = rg_like_encode_json(&l, json);
        size_t bl = rg_like_encode_binary(&l, bin);
        verdict_t v = agree(key, kl, json, jl, 4096);
        cr_assert(v.code == RG_LIKE_E_NONE && same(&v.like, &l), "%s",
                  json);
        took_json += v.took;
        v = agree(key, kl, bin, bl, 4096);
        cr_assert(v.code == RG_LIKE_E_NONE && same(&v.like, &l));
        took_bin += v.took;
        short_keys += kl <= 16;
    }
    cr_assert_eq(took_json, N, "the fast path declined %" PRIu64
                 " canonical values", N - took_json);
    /* binary: keys of 17-19 digits are left to the strict decoder */
    cr_assert_eq(took_bin, short_keys);
    cr_assert_lt(short_keys, N, "the draw covers long keys too");
}

/* bytes that change how JSON reads when put anywhere */
static const uint8_t odd_bytes[] = {
    ' ', '\t', '\n', '\r', '"', ',', ':', '{', '}', '[', '0', '1', '9',
    '-', '+', '.', 'e', 'E', '\\', 'u', 'x', '\0', 0x1f, 0x7f, 0x80,
    0xB1, 0xC3, 0xFF,
};

/* numbers spliced in place of a digit run */
static const char *const odd_numbers[] = {
    "0", "00", "01", "-0", "-1", "1.0", "1e3", "1E+2", "0.5", "2",
    "9223372036854775807", "9223372036854775806", "9223372036854775808",
    "09223372036854775807", "18446744073709551615", "18446744073709551616",
    "99999999999999999999", "10000000000000000000", "1000000000000000000",
    "999999999999999999", "9999999999999999", "10000000000000000",
    "\"1\"", "true", "null", "[]", " 1", "1 ",
};

struct mut_ctx {
    uint64_t runs;
    uint64_t fast_taken;
};

static void run(struct mut_ctx *c, const char *key, size_t kl,
                const uint8_t *val, size_t vl, size_t max)
{
    verdict_t v = agree(key, kl, val, vl, max);
    c->runs++;
    c->fast_taken += v.took;
}

/* Every single-byte edit of one message, its truncations, its numbers
 * replaced, its key varied, its size bound at the edge. */
static void mutate_all(struct mut_ctx *c, rg_rng_t *rng, const char *key,
                       size_t kl, const uint8_t *val, size_t vl)
{
    uint8_t buf[RG_LIKE_JSON_MAX + 64];
    for (size_t i = 0; i < vl; i++) { /* flip one bit, set an odd byte */
        memcpy(buf, val, vl);
        buf[i] ^= (uint8_t)(1u << rg_rng_below(rng, 8));
        run(c, key, kl, buf, vl, 4096);
        buf[i] = odd_bytes[rg_rng_below(rng, sizeof(odd_bytes))];
        run(c, key, kl, buf, vl, 4096);
    }
    for (size_t i = 0; i <= vl; i++) { /* insert an odd byte */
        memcpy(buf, val, i);
        buf[i] = odd_bytes[rg_rng_below(rng, sizeof(odd_bytes))];
        memcpy(buf + i + 1, val + i, vl - i);
        run(c, key, kl, buf, vl + 1, 4096);
    }
    for (size_t i = 0; i < vl; i++) { /* delete a byte */
        memcpy(buf, val, i);
        memcpy(buf + i, val + i + 1, vl - i - 1);
        run(c, key, kl, buf, vl - 1, 4096);
    }
    for (size_t n = 0; n < vl; n++) /* every truncation, the empty one too */
        run(c, key, kl, val, n, 4096);
    /* the canonical value, then garbage after it */
    memcpy(buf, val, vl);
    memcpy(buf + vl, "}x", 2);
    run(c, key, kl, buf, vl + 1, 4096);
    run(c, key, kl, buf, vl + 2, 4096);
    /* every digit run replaced by each odd number */
    for (size_t s = 0; s < vl; s++) {
        if (val[s] < '0' || val[s] > '9' || (s > 0 && val[s - 1] >= '0' &&
                                              val[s - 1] <= '9'))
            continue;
        size_t e = s;
        while (e < vl && val[e] >= '0' && val[e] <= '9')
            e++;
        for (size_t j = 0; j < sizeof(odd_numbers) / sizeof(*odd_numbers);
             j++) {
            size_t nl = strlen(odd_numbers[j]);
            memcpy(buf, val, s);
            memcpy(buf + s, odd_numbers[j], nl);
            memcpy(buf + s + nl, val + e, vl - e);
            run(c, key, kl, buf, s + nl + vl - e, 4096);
        }
    }
    /* the key: a leading zero, a digit more or less, a byte changed, a
     * long valid one, none, empty */
    char k2[32];
    k2[0] = '0';
    memcpy(k2 + 1, key, kl);
    run(c, k2, kl + 1, val, vl, 4096);
    memcpy(k2, key, kl);
    k2[kl] = '7';
    run(c, k2, kl + 1, val, vl, 4096);
    run(c, key, kl - 1, val, vl, 4096);
    k2[rg_rng_below(rng, kl)] ^= 1;
    run(c, k2, kl, val, vl, 4096);
    run(c, "12345678901234567", 17, val, vl, 4096);
    run(c, NULL, 0, val, vl, 4096);
    run(c, key, 0, val, vl, 4096);
    /* the size bound: just too small, exact, none */
    run(c, key, kl, val, vl, vl - 1);
    run(c, key, kl, val, vl, vl);
    run(c, key, kl, val, vl, 0);
}

Test(like_codec, fast_and_strict_agree_on_3m_mutations)
{
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, 2024);
    rg_zipf_init(&zipf, 10000, 0.99);
    struct mut_ctx c = {0, 0};
    uint64_t bases = 0;
    while (c.runs < 3000000) {
        rg_like_t l = draw(&rng, &zipf, bases);
        char key[21], json[RG_LIKE_JSON_MAX];
        uint8_t bin[26];
        size_t kl = rg_like_encode_key(l.video_id, key);
        size_t jl = rg_like_encode_json(&l, json);
        size_t bl = rg_like_encode_binary(&l, bin);
        mutate_all(&c, &rng, key, kl, (const uint8_t *)json, jl);
        mutate_all(&c, &rng, key, kl, bin, bl);
        bases++;
    }
    cr_assert_geq(c.runs, 3000000);
    /* the fast path did decide some of them itself (bounds and digit
     * edits that stay canonical), and left most to the strict decoder */
    cr_assert_gt(c.fast_taken, bases, "fast path took %" PRIu64 " of %"
                 PRIu64, c.fast_taken, c.runs);
    cr_assert_lt(c.fast_taken, c.runs / 2);
}

struct edge {
    const char *key, *value;
    size_t max;          /* 0: no bound; (size_t)-1: the value's length - 1 */
    rg_like_err_t want;
    bool fast;           /* the fast path takes it itself */
};

Test(like_codec, fast_path_edges_match_the_strict_decoder)
{
#define CANON(v, u, s, ts) "{\"video_id\":" v ",\"user_id\":" u \
                           ",\"state\":" s ",\"ts\":" ts "}"
#define MAX19 "9223372036854775807"
    static const struct edge cases[] = {
        /* canonical: taken by the fast path */
        {"70293", CANON("70293", "52044", "1", "1700000000000"), 0,
         RG_LIKE_E_NONE, true},
        {"1", "{\"video_id\":1,\"user_id\":1,\"state\":0}", 0,
         RG_LIKE_E_NONE, true},
        {MAX19, CANON(MAX19, MAX19, "1", MAX19), 0, RG_LIKE_E_NONE, true},
        {"5", CANON("5", "6", "0", "0"), 0, RG_LIKE_E_NONE, true},
        {"10000000000000000", CANON("10000000000000000", "1", "1", "1"), 0,
         RG_LIKE_E_NONE, true},
        /* at the size bound: taken; one byte over it: TOO_LARGE */
        {"5", "{\"video_id\":5,\"user_id\":6,\"state\":0}", 37,
         RG_LIKE_E_NONE, true},
        {"5", "{\"video_id\":5,\"user_id\":6,\"state\":0}", (size_t)-1,
         RG_LIKE_E_TOO_LARGE, false},
        /* overflow at 2^63: one past each id and ts */
        {"9223372036854775808", CANON("9223372036854775808", "1", "1", "1"),
         0, RG_LIKE_E_BAD_KEY, false},
        {"5", CANON("5", "9223372036854775808", "1", "1"), 0,
         RG_LIKE_E_OUT_OF_RANGE, false},
        {"5", CANON("5", "1", "1", "9223372036854775808"), 0,
         RG_LIKE_E_OUT_OF_RANGE, false},
        {"5", CANON("5", "1", "1", "18446744073709551616"), 0,
         RG_LIKE_E_OUT_OF_RANGE, false},
        {"5", CANON("5", "1", "1", "99999999999999999999"), 0,
         RG_LIKE_E_OUT_OF_RANGE, false},
        /* leading zeros, -0, zero ids, a state over 1 */
        {"5", CANON("05", "1", "1", "1"), 0, RG_LIKE_E_BAD_JSON, false},
        {"5", CANON("5", "1", "1", "00"), 0, RG_LIKE_E_BAD_JSON, false},
        {"5", CANON("5", "1", "1", "01"), 0, RG_LIKE_E_BAD_JSON, false},
        {"5", CANON("5", "1", "1", "-0"), 0, RG_LIKE_E_OUT_OF_RANGE, false},
        {"5", CANON("5", "-0", "1", "1"), 0, RG_LIKE_E_OUT_OF_RANGE, false},
        {"5", CANON("5", "0", "1", "1"), 0, RG_LIKE_E_OUT_OF_RANGE, false},
        {"5", CANON("5", "1", "10", "1"), 0, RG_LIKE_E_OUT_OF_RANGE, false},
        {"5", CANON("5", "1", "01", "1"), 0, RG_LIKE_E_BAD_JSON, false},
        {"5", CANON("5", "1", "1", "1.0"), 0, RG_LIKE_E_BAD_TYPE, false},
        {"5", CANON("5", "1", "1", "1e2"), 0, RG_LIKE_E_BAD_TYPE, false},
        /* keys: leading zero, mismatch, long but valid */
        {"05", CANON("5", "1", "1", "1"), 0, RG_LIKE_E_BAD_KEY, false},
        {"6", CANON("5", "1", "1", "1"), 0, RG_LIKE_E_KEY_MISMATCH, false},
        {"55", CANON("5", "1", "1", "1"), 0, RG_LIKE_E_KEY_MISMATCH, false},
        {NULL, CANON("5", "1", "1", "1"), 0, RG_LIKE_E_MISSING_KEY, false},
        /* a prefix of a canonical value, a canonical value then more */
        {"5", "{\"video_id\":5,\"user_id\":1,\"state\":1,\"ts\":1", 0,
         RG_LIKE_E_BAD_JSON, false},
        {"5", "{\"video_id\":5,\"user_id\":1,\"state\":1", 0,
         RG_LIKE_E_BAD_JSON, false},
        {"5", "{\"video_id\":5,\"user_id\":1,\"state\":1,", 0,
         RG_LIKE_E_BAD_JSON, false},
        {"5", CANON("5", "1", "1", "1") "x", 0, RG_LIKE_E_TRAILING, false},
        {"5", CANON("5", "1", "1", "1") " ", 0, RG_LIKE_E_NONE, false},
        {"5", CANON("5", "1", "1", "1") "}", 0, RG_LIKE_E_TRAILING, false},
        /* the same like in other shapes: strict takes them, fast does not */
        {"5", "{\"video_id\": 5,\"user_id\":1,\"state\":1}", 0,
         RG_LIKE_E_NONE, false},
        {"5", "{\"user_id\":1,\"video_id\":5,\"state\":1}", 0,
         RG_LIKE_E_NONE, false},
        {"5", "{\"video_id\":5,\"user_id\":1,\"state\":1,\"x\":0}", 0,
         RG_LIKE_E_NONE, false},
        {"5", "{\"video\\u005fid\":5,\"user_id\":1,\"state\":1}", 0,
         RG_LIKE_E_NONE, false},
        {"5", "{\"video_id\":5,\"user_id\":1,\"ts\":3,\"state\":1}", 0,
         RG_LIKE_E_NONE, false},
        {"5", "{\"video_id\":5,\"user_id\":1,\"state\":1,\"ts\":1,\"ts\":2}",
         0, RG_LIKE_E_DUPLICATE_FIELD, false},
        {"5", "{\"video_id\":5,\"user_id\":1,\"state\":true}", 0,
         RG_LIKE_E_BAD_TYPE, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct edge *c = &cases[i];
        size_t vl = strlen(c->value);
        size_t max = c->max == (size_t)-1 ? vl - 1 : c->max;
        verdict_t v = agree(c->key, c->key ? strlen(c->key) : 0, c->value,
                            vl, max);
        cr_assert_eq(v.code, c->want, "case %zu (%s): %s, want %s", i,
                     c->value, rg_like_err_name(v.code),
                     rg_like_err_name(c->want));
        cr_assert_eq(v.took, c->fast, "case %zu (%s): fast path %s", i,
                     c->value, v.took ? "took it" : "declined");
    }
    /* NULs: inside, after, and in place of the closing brace */
    const char nul_in[] = "{\"video_id\":5,\"user_id\":1\0,\"state\":1}";
    const char nul_after[] = "{\"video_id\":5,\"user_id\":1,\"state\":1}\0";
    const char nul_brace[] = "{\"video_id\":5,\"user_id\":1,\"state\":1\0";
    cr_assert_eq(agree("5", 1, nul_in, sizeof(nul_in) - 1, 0).code,
                 RG_LIKE_E_BAD_JSON);
    cr_assert_eq(agree("5", 1, nul_after, sizeof(nul_after) - 1, 0).code,
                 RG_LIKE_E_TRAILING);
    cr_assert_eq(agree("5", 1, nul_brace, sizeof(nul_brace) - 1, 0).code,
                 RG_LIKE_E_BAD_JSON);
    /* a key with a NUL after the digits is not the digits */
    cr_assert_eq(agree("5\0", 2, CANON("5", "1", "1", "1"),
                       strlen(CANON("5", "1", "1", "1")), 0).code,
                 RG_LIKE_E_BAD_KEY);
    /* binary: a short key is taken; 17 digits or a leading zero are the
     * strict decoder's */
    uint8_t bin[26];
    rg_like_t l = {12345678901234567ull, 4, 99, 1};
    size_t bl = rg_like_encode_binary(&l, bin);
    verdict_t v = agree("12345678901234567", 17, bin, bl, 0);
    cr_assert(v.code == RG_LIKE_E_NONE && !v.took);
    l.video_id = 1234567890123456ull;
    bl = rg_like_encode_binary(&l, bin);
    v = agree("1234567890123456", 16, bin, bl, 0);
    cr_assert(v.code == RG_LIKE_E_NONE && v.took);
    cr_assert_eq(agree("01234567890123456", 17, bin, bl, 0).code,
                 RG_LIKE_E_BAD_KEY);
    cr_assert_eq(agree("1234567890123457", 16, bin, bl, 0).code,
                 RG_LIKE_E_KEY_MISMATCH);
    bin[1] |= 4;
    cr_assert_eq(agree("1234567890123456", 16, bin, bl, 0).code,
                 RG_LIKE_E_BAD_BINARY);
#undef CANON
#undef MAX19
}

/* rg_like_decode_unkeyed: the strict decoder's answer for the value's own
 * key, on good and bad values alike (HTTP bodies carry no key). */
Test(like_codec, unkeyed_decode_is_the_strict_decoder_with_its_own_key)
{
    static const char *const vals[] = {
        "{\"video_id\":42,\"user_id\":7,\"state\":1}",
        " {\"state\":0,\"user_id\":9,\"video_id\":3,\"x\":[1,{}]} ",
        "{\"video_id\":42,\"user_id\":7,\"state\":1,\"ts\":5}",
        "{\"video_id\":42,\"user_id\":7}",
        "{\"video_id\":\"42\",\"user_id\":7,\"state\":1}",
        "{\"video_id\":0,\"user_id\":7,\"state\":1}",
        "{\"video_id\":42,\"user_id\":7,\"state\":1}x",
        "{\"video_id\":42,", "[]", "",
    };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        const char *v = vals[i];
        rg_like_t a = {0}, b = {0};
        rg_like_err_t ea = rg_like_decode_unkeyed(v, strlen(v), 0, &a);
        /* the key the strict decoder would need: the decoded video id */
        char key[24] = "1";
        if (ea == RG_LIKE_E_NONE)
            rg_like_encode_key(a.video_id, key);
        rg_like_err_t eb = rg_like_decode_strict(key, strlen(key), v,
                                                 strlen(v), 0, &b);
        cr_assert_eq(ea, eb, "%s: unkeyed %s, strict %s", v,
                     rg_like_err_name(ea), rg_like_err_name(eb));
        if (ea == RG_LIKE_E_NONE)
            cr_assert(a.video_id == b.video_id && a.user_id == b.user_id &&
                      a.state == b.state && a.ts == b.ts, "%s", v);
    }
    rg_like_t l;
    cr_assert_eq(rg_like_decode_unkeyed("{\"video_id\":1,\"user_id\":2,"
                                        "\"state\":1}", 34, 10, &l),
                 RG_LIKE_E_TOO_LARGE);
}
