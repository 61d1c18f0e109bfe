/*
 * hash.c - rg_hash_bytes(): a small, fast, stable 64-bit hash of bytes.
 *
 * Reads 8 bytes at a time (little-endian, any alignment), folds each word
 * through a 128-bit multiply, and finishes with rg_hash64(). Keys here are
 * short (decimal ids, UUIDs), so simplicity beats wide SIMD lanes.
 */
#include <string.h>
#include "railgun/hash.h"

static inline uint64_t load64le(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t fold(uint64_t a, uint64_t b)
{
    unsigned __int128 m = (unsigned __int128)a * b;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

uint64_t rg_hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)len;
    while (len >= 8) {
        h = fold(h ^ load64le(s), 0xa0761d6478bd642full);
        s += 8;
        len -= 8;
    }
    if (len > 0) {
        unsigned char tail[8] = {0};
        memcpy(tail, s, len);
        h = fold(h ^ load64le(tail), 0xe7037ed1a0b428dbull);
    }
    return rg_hash64(h);
}
