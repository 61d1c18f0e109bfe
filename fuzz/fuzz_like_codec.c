/*
 * fuzz_like_codec.c - libFuzzer target for the like decoder.
 *
 * The first byte splits the input into a key and a value. Decoding must
 * never crash or read out of bounds (ASan), and must be consistent: a
 * decoded like re-encoded as JSON and as binary decodes to the same like
 * with the same key; a rejected message leaves the output untouched.
 */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t klen = data[0] % 24;
    if (klen > size - 1)
        klen = size - 1;
    /* copies, so ASan sees reads past either part */
    uint8_t *key = malloc(klen ? klen : 1), *val = malloc(size - 1 - klen + 1);
    memcpy(key, data + 1, klen);
    size_t vlen = size - 1 - klen;
    memcpy(val, data + 1 + klen, vlen);
    rg_like_t like, sentinel;
    memset(&like, 0xA5, sizeof(like));
    memcpy(&sentinel, &like, sizeof(like)); /* padding included */
    rg_like_err_t e = rg_like_decode(klen ? key : NULL, klen, val, vlen,
                                     4096, &like);
    CHECK((unsigned)e < RG_LIKE_E__COUNT, "unknown error code");
    if (e != RG_LIKE_E_NONE) {
        CHECK(memcmp(&like, &sentinel, sizeof(like)) == 0,
              "rejected message wrote the output");
    } else {
        CHECK(like.video_id >= 1 && like.video_id <= RG_LIKE_ID_MAX &&
                  like.user_id >= 1 && like.user_id <= RG_LIKE_ID_MAX &&
                  like.state <= 1 && like.ts >= -1,
              "decoded like out of range");
        char k[21], json[RG_LIKE_JSON_MAX];
        uint8_t bin[26];
        size_t kl = rg_like_encode_key(like.video_id, k);
        size_t jl = rg_like_encode_json(&like, json);
        size_t bl = rg_like_encode_binary(&like, bin);
        rg_like_t a, b;
        CHECK(rg_like_decode(k, kl, json, jl, 0, &a) == RG_LIKE_E_NONE &&
                  same(&a, &like),
              "JSON round trip differs");
        CHECK(rg_like_decode(k, kl, bin, bl, 0, &b) == RG_LIKE_E_NONE &&
                  same(&b, &like),
              "binary round trip differs");
    }
    free(key);
    free(val);
    return 0;
}
