/*
 * test_mini.c - the in-process runner behind test.h's RG_TEST_MINI mode
 * (used only where Criterion cannot run: under ThreadSanitizer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "test.h"

#define MAX_TESTS 256

static struct {
    const char *suite, *name;
    rgt_fn *fn;
} tests[MAX_TESTS];
static int ntests;
static jmp_buf on_fail;

void rgt_register(const char *suite, const char *name, rgt_fn *fn)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "test_mini: more than %d tests\n", MAX_TESTS);
        abort();
    }
    tests[ntests].suite = suite;
    tests[ntests].name = name;
    tests[ntests++].fn = fn;
}

void rgt_check(bool ok, const char *file, int line, const char *expr,
               const char *fmt, ...)
{
    if (ok)
        return;
    fprintf(stderr, "%s:%d: assertion failed: %s", file, line, expr);
    if (fmt[0] != '\0') {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    longjmp(on_fail, 1);
}

int main(void)
{
    /* volatile: live across setjmp/longjmp */
    volatile int passed = 0, failed = 0;
    for (volatile int i = 0; i < ntests; i++) {
        if (setjmp(on_fail) == 0) {
            tests[i].fn();
            passed++;
            printf("[PASS] %s::%s\n", tests[i].suite, tests[i].name);
        } else {
            failed++;
            printf("[FAIL] %s::%s\n", tests[i].suite, tests[i].name);
        }
    }
    printf("tsan: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
