/*
 * zipf.h - deterministic random numbers for generators, tests and benches.
 *
 * rg_rng_*: splitmix64-seeded xoshiro256**, fast and reproducible from a
 * seed on every platform. rg_zipf_*: Zipf(s) over 1..n by rejection-
 * inversion (W. Hörmann, G. Derflinger, 1996): O(1) per sample, no table,
 * so 1M keys cost nothing to set up.
 */
#ifndef RG_ZIPF_H
#define RG_ZIPF_H

#include <stdint.h>

typedef struct rg_rng_s {
    uint64_t s[4];
} rg_rng_t;

void rg_rng_seed(rg_rng_t *r, uint64_t seed);

static inline uint64_t rg_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rg_rng_next(rg_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rg_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rg_rng_rotl(s[3], 45);
    return result;
}

/* Uniform double in [0, 1). */
static inline double rg_rng_double(rg_rng_t *r)
{
    return (double)(rg_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n). */
static inline uint64_t rg_rng_below(rg_rng_t *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rg_rng_next(r) * n) >> 64);
}

typedef struct rg_zipf_s {
    uint64_t n;
    double s;            /* exponent; 0 means uniform */
    double h_x1;         /* H(1.5) - 1 */
    double h_n;          /* H(n + 0.5) */
    double cut;          /* 2 - H^-1(H(2.5) - h(2)) */
} rg_zipf_t;

/* Zipf over 1..n with exponent s >= 0 (s == 0: uniform). */
void rg_zipf_init(rg_zipf_t *z, uint64_t n, double s);

/* One sample in 1..n. */
uint64_t rg_zipf_next(const rg_zipf_t *z, rg_rng_t *r);

#endif /* RG_ZIPF_H */
