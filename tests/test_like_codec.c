/*
 * test_like_codec.c - like events on the wire: good events decode exactly
 * (JSON and binary, with and without ts, unknown fields ignored); every
 * kind of bad payload is rejected with its own named error, never read as
 * something else; encoders round-trip.
 */
#include "support/test.h"
#include <stdlib.h>
#include <string.h>
#include "like_codec.h"

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
