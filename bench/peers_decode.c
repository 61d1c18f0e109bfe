/*
 * peers_decode.c - decoding like events, the likes job's unpack step, over
 * the same pre-generated stream in three forms:
 *   railgun_fast:  rg_like_decode on JSON values (the canonical fast path,
 *                  what the job runs);
 *   strict:        rg_like_decode_strict on the same JSON values;
 *   binary:        rg_like_decode on the compact binary form of the same
 *                  likes (shared/DESIGN.md §4).
 * The stream is the demo's: videos Zipf 0.99 over 10,000, users uniform
 * over 100,000, 2 in 3 likes, ts counting up from 1700000000000 (63-byte
 * JSON values for 5-digit ids). Values lie packed one after another, as in
 * a fetched Kafka batch. Every pass checks that each value decoded to the
 * like it was encoded from (a sum over the fields, and no error).
 */
#include <stdlib.h>
#include <string.h>
#include "like_codec.h"
#include "peers.h"
#include "zipf.h"

#define DEMO_VIDEOS 10000
#define DEMO_USERS 100000
#define DEMO_ZIPF 0.99
#define DEMO_BASE_TS 1700000000000ll

struct rgb_decode {
    int impl;
    size_t n;
    uint8_t *keys, *vals;      /* packed bytes */
    uint32_t *koff, *voff;     /* [n + 1]: where each one starts */
    uint64_t want;             /* the fields' sum over the stream */
};

static uint64_t fold(const rg_like_t *l)
{
    return l->video_id * 3 + l->user_id * 5 + l->state * 7 +
           (uint64_t)l->ts * 11;
}

rgb_decode *rgb_decode_open(int impl, size_t n, uint64_t seed)
{
    rgb_decode *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->impl = impl;
    d->n = n;
    d->keys = malloc(n * 20);
    d->vals = malloc(n * RG_LIKE_JSON_MAX);
    d->koff = malloc((n + 1) * sizeof(uint32_t));
    d->voff = malloc((n + 1) * sizeof(uint32_t));
    if (!d->keys || !d->vals || !d->koff || !d->voff) {
        rgb_decode_close(d);
        return NULL;
    }
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, seed);
    rg_zipf_init(&zipf, DEMO_VIDEOS, DEMO_ZIPF);
    size_t ko = 0, vo = 0;
    for (size_t i = 0; i < n; i++) {
        /* the same draws, in the same order, as the demo's generator */
        rg_like_t l;
        l.video_id = rg_zipf_next(&zipf, &rng);
        l.user_id = 1 + rg_rng_below(&rng, DEMO_USERS);
        l.state = rg_rng_below(&rng, 3) != 0;
        l.ts = DEMO_BASE_TS + (int64_t)i;
        char key[21], json[RG_LIKE_JSON_MAX];
        size_t kl = rg_like_encode_key(l.video_id, key);
        d->koff[i] = (uint32_t)ko;
        memcpy(d->keys + ko, key, kl);
        ko += kl;
        d->voff[i] = (uint32_t)vo;
        if (impl == RGB_DECODE_BINARY) {
            vo += rg_like_encode_binary(&l, d->vals + vo);
        } else {
            size_t jl = rg_like_encode_json(&l, json);
            memcpy(d->vals + vo, json, jl);
            vo += jl;
        }
        d->want += fold(&l);
    }
    d->koff[n] = (uint32_t)ko;
    d->voff[n] = (uint32_t)vo;
    return d;
}

int rgb_decode_run(rgb_decode *d)
{
    rg_like_err_t (*decode)(const void *, size_t, const void *, size_t,
                            size_t, rg_like_t *) =
        d->impl == RGB_DECODE_STRICT ? rg_like_decode_strict : rg_like_decode;
    uint64_t sum = 0, bad = 0;
    for (size_t i = 0; i < d->n; i++) {
        rg_like_t l;
        rg_like_err_t e = decode(d->keys + d->koff[i],
                                 d->koff[i + 1] - d->koff[i],
                                 d->vals + d->voff[i],
                                 d->voff[i + 1] - d->voff[i], 4096, &l);
        if (e != RG_LIKE_E_NONE)
            bad++;
        else
            sum += fold(&l);
    }
    return bad == 0 && sum == d->want ? 0 : -1;
}

size_t rgb_decode_bytes(const rgb_decode *d)
{
    return d->voff[d->n];
}

void rgb_decode_close(rgb_decode *d)
{
    if (d == NULL)
        return;
    free(d->keys);
    free(d->vals);
    free(d->koff);
    free(d->voff);
    free(d);
}
