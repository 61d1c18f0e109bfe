/*
 * test.h - the test framework include for every tests/test_*.c.
 *
 * Normally this is Criterion. Criterion cannot start under ThreadSanitizer
 * (its boxfort arena probes random addresses inside TSan's shadow ranges
 * and aborts: "Could not initialize inheritable arena", upstream issue
 * Snaipe/Criterion#274), so the TSan build defines RG_TEST_MINI and the
 * same sources compile against the small in-process runner below: the
 * same Test() and cr_assert_* macros, each test run in turn in one
 * process, a failed assertion ending that test, and a closing line
 * "tsan: N passed, N failed".
 */
#ifndef RG_TEST_H
#define RG_TEST_H

#ifndef RG_TEST_MINI
#include <criterion/criterion.h>
#else

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef void (rgt_fn)(void);
void rgt_register(const char *suite, const char *name, rgt_fn *fn);
void rgt_check(bool ok, const char *file, int line, const char *expr,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define Test(suite, name, ...)                                              \
    static void suite##_##name(void);                                       \
    __attribute__((constructor)) static void rgt_reg_##suite##_##name(void) \
    {                                                                       \
        rgt_register(#suite, #name, suite##_##name);                        \
    }                                                                       \
    static void suite##_##name(void)

#define RGT_CHECK(cond, expr, ...)                                          \
    rgt_check((cond), __FILE__, __LINE__, expr, "" __VA_ARGS__)

#define cr_assert(c, ...) RGT_CHECK(!!(c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...) RGT_CHECK(!(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) RGT_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) RGT_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) RGT_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) RGT_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) RGT_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) RGT_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) RGT_CHECK((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) RGT_CHECK((p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) RGT_CHECK(strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) RGT_CHECK(strcmp((a), (b)) != 0, #a " != " #b, __VA_ARGS__)
#define cr_assert_fail(...) RGT_CHECK(false, "fail", __VA_ARGS__)

#endif /* RG_TEST_MINI */
#endif /* RG_TEST_H */
