/*
 * test_hash.c - routing hashes (stable, in range, spread evenly) and the
 * Zipf generator the demo and benchmarks rely on.
 */
#include "support/test.h"
#include <math.h>
#include <stdlib.h>
#include "railgun/railgun.h"
#include "zipf.h"

Test(hash, values_are_stable_across_versions)
{
    /* where a key is routed must not change on upgrade */
    cr_assert_eq(rg_hash64(0), 0);
    cr_assert_eq(rg_hash64(1), 0x5692161d100b05e5ull);
    /* golden values: a change here moves keys between workers */
    cr_assert_eq(rg_hash_bytes("", 0), 0xe220a8397b1dcdafull);
    cr_assert_eq(rg_hash_bytes("42", 2), 0xb4670f4955987acfull);
    cr_assert_eq(rg_hash_bytes("abcdefgh1", 9), 0xb16b9e8d6f153430ull);
    cr_assert_eq(rg_hash_bytes("a", 1), 0x91d52884157103a2ull);
    cr_assert_neq(rg_hash_bytes("42", 2), rg_hash_bytes("43", 2));
    cr_assert_neq(rg_hash_bytes("abcdefgh1", 9),
                  rg_hash_bytes("abcdefgh2", 9));
    cr_assert_neq(rg_hash_bytes("a", 1), rg_hash_bytes("a\0", 2),
                  "length is part of the hash");
}

Test(hash, reduce_spreads_keys_evenly)
{
    enum { N = 7, KEYS = 700000 };
    unsigned hist[N] = {0};
    for (uint64_t k = 1; k <= KEYS; k++) {
        uint32_t w = rg_hash_reduce(rg_hash64(k), N);
        cr_assert_lt(w, N);
        hist[w]++;
    }
    for (int i = 0; i < N; i++)
        cr_assert(fabs((double)hist[i] - KEYS / N) < 0.01 * KEYS / N,
                  "bucket %d holds %u of %d", i, hist[i], KEYS);
}

Test(zipf, matches_the_exact_distribution)
{
    enum { N = 50, SAMPLES = 2000000 };
    double s = 0.99, norm = 0;
    for (int k = 1; k <= N; k++)
        norm += pow(k, -s);
    unsigned hist[N + 1] = {0};
    rg_rng_t r;
    rg_zipf_t z;
    rg_rng_seed(&r, 3);
    rg_zipf_init(&z, N, s);
    for (int i = 0; i < SAMPLES; i++) {
        uint64_t k = rg_zipf_next(&z, &r);
        cr_assert(k >= 1 && k <= N);
        hist[k]++;
    }
    for (int k = 1; k <= N; k++) {
        double want = SAMPLES * pow(k, -s) / norm;
        cr_assert(fabs(hist[k] - want) < 5 * sqrt(want) + 10,
                  "rank %d: %u samples, expected %.0f", k, hist[k], want);
    }
}

Test(zipf, same_seed_same_stream)
{
    rg_rng_t a, b;
    rg_zipf_t z;
    rg_zipf_init(&z, 1000000, 0.99);
    rg_rng_seed(&a, 99);
    rg_rng_seed(&b, 99);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(rg_zipf_next(&z, &a), rg_zipf_next(&z, &b));
}
