/*
 * park.c - futex calls and the membarrier-based heavy fence (see park.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "park.h"

_Atomic bool rg__fence_asym;
#ifdef RG__TSAN
_Atomic unsigned rg__tsan_fence_word;
#endif

static pthread_once_t fence_once = PTHREAD_ONCE_INIT;

static void fence_setup(void)
{
    long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    bool ok = cmds > 0 &&
              (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
              syscall(__NR_membarrier,
                      MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#ifdef RG__TSAN
    /* TSan does not model membarrier; full fences on both sides keep its
     * view of the program the same as the hardware's */
    ok = false;
#endif
    /* relaxed: published to later threads by pthread_once and by
     * thread creation */
    atomic_store_explicit(&rg__fence_asym, ok, memory_order_relaxed);
}

void rg__fence_init(void)
{
    pthread_once(&fence_once, fence_setup);
}

void rg__fence_heavy(void)
{
    /* relaxed: see rg__fence_light() */
    if (atomic_load_explicit(&rg__fence_asym, memory_order_relaxed) &&
        syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) ==
            0)
        return;
    rg__fence_full();
}

void rg__futex_wait(_Atomic uint32_t *word, uint32_t expected)
{
    /* EAGAIN (value changed) and EINTR are ordinary: callers re-check */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL,
            NULL, 0);
}

void rg__futex_wait_ns(_Atomic uint32_t *word, uint32_t expected,
                       uint64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000u),
                          (long)(timeout_ns % 1000000000u)};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, &ts,
            NULL, 0);
}

void rg__futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL,
            0);
}
