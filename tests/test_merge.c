/*
 * test_merge.c - the worker-local merge table: random operations against a
 * reference map for every merge op, growth to the bound and RG_EFULL past
 * it, last-write-wins ordering, iteration, clear and reuse.
 */
#include "support/test.h"
#include <stdlib.h>
#include "railgun/railgun.h"
#include "zipf.h"

#define SPACE 5000

/* keys: 0..SPACE-3 plus the extremes, which a sentinel design would lose */
static uint64_t key_at(uint64_t i)
{
    if (i == SPACE - 2)
        return UINT64_MAX;
    if (i == SPACE - 1)
        return UINT64_MAX - 1;
    return i;
}

static void random_ops(rg_merge_op_t op)
{
    rg_merge_t *m = rg_merge_new(op, SPACE, NULL, 0);
    cr_assert_not_null(m);
    int64_t val[SPACE], ver[SPACE];
    bool present[SPACE] = {false};
    rg_rng_t rng;
    rg_rng_seed(&rng, 100 + op);
    for (int step = 0; step < 300000; step++) {
        uint64_t i = rg_rng_below(&rng, SPACE);
        int64_t v = (int64_t)rg_rng_below(&rng, 2001) - 1000;
        int64_t version = (int64_t)rg_rng_below(&rng, 50);
        cr_assert_eq(rg_merge_add(m, key_at(i), v, version), 0);
        if (!present[i]) {
            present[i] = true;
            val[i] = v;
            ver[i] = op == RG_MERGE_LWW ? version : 0;
        } else if (op == RG_MERGE_SUM) {
            val[i] += v;
        } else if (op == RG_MERGE_MAX) {
            if (v > val[i])
                val[i] = v;
        } else if (version >= ver[i]) {
            val[i] = v;
            ver[i] = version;
        }
        if (step % 50000 == 49999) { /* a flush: compare, then clear */
            size_t n = 0;
            for (uint64_t k = 0; k < SPACE; k++) {
                rg_merge_row_t row;
                int got = rg_merge_get(m, key_at(k), &row);
                cr_assert_eq(got, present[k], "key %llu presence",
                             (unsigned long long)key_at(k));
                if (got) {
                    n++;
                    cr_assert_eq(row.value, val[k], "key %llu value",
                                 (unsigned long long)key_at(k));
                    cr_assert_eq(row.version, ver[k]);
                }
            }
            cr_assert_eq(rg_merge_count(m), n);
            size_t cursor = 0, seen = 0;
            rg_merge_row_t row;
            while (rg_merge_next(m, &cursor, &row))
                seen++;
            cr_assert_eq(seen, n, "iteration visits every row once");
            rg_merge_clear(m);
            memset(present, 0, sizeof(present));
            cr_assert_eq(rg_merge_count(m), 0);
        }
    }
    rg_merge_destroy(m);
}

Test(merge, sum_matches_reference) { random_ops(RG_MERGE_SUM); }
Test(merge, max_matches_reference) { random_ops(RG_MERGE_MAX); }
Test(merge, lww_matches_reference) { random_ops(RG_MERGE_LWW); }

Test(merge, grows_to_the_bound_then_refuses_new_keys)
{
    rg_merge_t *m = rg_merge_new(RG_MERGE_SUM, 1000, NULL, 0);
    size_t start = rg_merge_memory(m);
    for (uint64_t k = 0; k < 1000; k++)
        cr_assert_eq(rg_merge_add(m, k * 7919, 1, 0), 0, "key %llu",
                     (unsigned long long)k);
    size_t full = rg_merge_memory(m);
    cr_assert_gt(full, start, "table grew");
    cr_assert_eq(rg_merge_add(m, 123456789, 1, 0), RG_EFULL);
    rg_merge_row_t row;
    cr_assert_eq(rg_merge_get(m, 123456789, &row), 0, "refused key absent");
    cr_assert_eq(rg_merge_add(m, 7919, 5, 0), 0, "existing keys still merge");
    cr_assert_eq(rg_merge_get(m, 7919, &row), 1);
    cr_assert_eq(row.value, 6);
    cr_assert_eq(rg_merge_memory(m), full, "no growth past the bound");
    /* 1000 keys at <= 3/4 load: 2048 slots of 25 bytes */
    cr_assert_leq(full, 2048 * 25);
    rg_merge_clear(m);
    cr_assert_eq(rg_merge_memory(m), full, "clear keeps the memory");
    cr_assert_eq(rg_merge_add(m, 123456789, 1, 0), 0, "room after clear");
    rg_merge_destroy(m);
}

Test(merge, last_write_wins_by_version)
{
    rg_merge_t *m = rg_merge_new(RG_MERGE_LWW, 10, NULL, 0);
    rg_merge_row_t row;
    cr_assert_eq(rg_merge_add(m, 1, 100, 5), 0);
    cr_assert_eq(rg_merge_add(m, 1, 200, 3), 0); /* older: ignored */
    cr_assert_eq(rg_merge_get(m, 1, &row), 1);
    cr_assert_eq(row.value, 100);
    cr_assert_eq(rg_merge_add(m, 1, 300, 5), 0); /* equal: later wins */
    cr_assert_eq(rg_merge_get(m, 1, &row), 1);
    cr_assert_eq(row.value, 300);
    cr_assert_eq(row.version, 5);
    rg_merge_destroy(m);
}

Test(merge, rejects_bad_arguments)
{
    cr_assert_null(rg_merge_new(RG_MERGE_SUM, 0, NULL, 0));
    cr_assert_null(rg_merge_new((rg_merge_op_t)7, 10, NULL, 0));
    cr_assert_null(rg_merge_new(RG_MERGE_SUM, (1u << 30) + 1, NULL, 0));
    rg_merge_destroy(NULL);
}
