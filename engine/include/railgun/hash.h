/*
 * hash.h - the 64-bit hashes railgun routes with.
 *
 * rg_hash64() mixes a 64-bit routing key (a bijection: distinct keys never
 * collide); rg_hash_bytes() turns key bytes into a 64-bit routing key for
 * sources whose keys are not numbers. Both are stable across versions and
 * platforms, because where a key goes must not change on upgrade.
 */
#ifndef RAILGUN_HASH_H
#define RAILGUN_HASH_H

#include <stddef.h>
#include <stdint.h>
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A full-avalanche bijective mixer (xor-shift-multiply, as in splitmix64). */
static inline uint64_t rg_hash64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Maps a hash onto [0, n) without division (Lemire's multiply-shift). */
static inline uint32_t rg_hash_reduce(uint64_t h, uint32_t n)
{
    /* __extension__: ISO C and C++ have no 128-bit integer; gcc and
     * clang do, and -Wpedantic accepts it marked so */
    __extension__ typedef unsigned __int128 rg__u128;
    return (uint32_t)(((rg__u128)h * n) >> 64);
}

/* Hash of `len` bytes at `p` (any alignment). */
RG_EXPORT uint64_t rg_hash_bytes(const void *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_HASH_H */
