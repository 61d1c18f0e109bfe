/*
 * park.h - parking threads on a futex, and the asymmetric fence pair.
 *
 * A sleeper and a waker must not both miss each other: the sleeper sets a
 * "sleeping" flag then checks for work; the waker publishes work then
 * checks the flag. That is Dekker's pattern and needs a full fence on both
 * sides. railgun's wakers are on the hot path (every dispatch, every pop)
 * and its sleepers are rare (a parking thread), so the cost is moved to
 * the rare side: rg__fence_heavy() runs membarrier(PRIVATE_EXPEDITED),
 * which executes a full barrier on every running thread of the process,
 * and the hot side's rg__fence_light() is then only a compiler barrier.
 * Where membarrier is unavailable both are a seq_cst fence. This is the
 * same asymmetric scheme liburcu's urcu-memb flavour uses.
 *
 * Rule: every rg__fence_light() pairs with an rg__fence_heavy() on the
 * other side; the call sites name their partner.
 */
#ifndef RG_PARK_H
#define RG_PARK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* True once rg__fence_init() found membarrier usable; never changes after. */
extern _Atomic bool rg__fence_asym;

#if defined(__SANITIZE_THREAD__)
#  define RG__TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define RG__TSAN 1
#  endif
#endif

/*
 * A full fence. TSan does not model standalone fences (gcc warns with
 * -Wtsan), so under TSan it is a seq_cst read-modify-write on one shared
 * word instead: the same full barrier on the hardware, and an atomic
 * access TSan understands.
 */
#ifdef RG__TSAN
extern _Atomic unsigned rg__tsan_fence_word;
#  define rg__fence_full()                                                   \
      ((void)atomic_fetch_add_explicit(&rg__tsan_fence_word, 0,             \
                                       memory_order_seq_cst))
#else
#  define rg__fence_full() atomic_thread_fence(memory_order_seq_cst)
#endif

/* Registers membarrier for the process (idempotent, thread-safe). Must run
 * before the threads that use the fences start. */
void rg__fence_init(void);

static inline void rg__fence_light(void)
{
    /* relaxed: written once in rg__fence_init() before any thread that
     * reads it was created (thread creation orders it) */
    if (atomic_load_explicit(&rg__fence_asym, memory_order_relaxed))
        atomic_signal_fence(memory_order_seq_cst);
    else
        rg__fence_full();
}

void rg__fence_heavy(void);

/* Sleeps while *word == expected (spurious returns are possible). */
void rg__futex_wait(_Atomic uint32_t *word, uint32_t expected);

/* Like rg__futex_wait(), but for at most timeout_ns. */
void rg__futex_wait_ns(_Atomic uint32_t *word, uint32_t expected,
                       uint64_t timeout_ns);

/* Wakes up to n threads sleeping on word. */
void rg__futex_wake(_Atomic uint32_t *word, int n);

static inline void rg__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * A parking spot for one sleeper and any number of wakers.
 * Sleeper: rg__park_prepare(), re-check for work, then rg__park_commit()
 * (or rg__park_cancel() when work appeared). Waker: publish work, then
 * rg__park_wake_if_sleeping().
 */
struct rg__park {
    _Atomic uint32_t seq;       /* futex word: bumped by every wake */
    _Atomic uint32_t sleeping;  /* 1 while the sleeper may be asleep */
};

static inline uint32_t rg__park_prepare(struct rg__park *p)
{
    /* acquire: pairs with the release bump in rg__park_wake(); whatever
     * a waker published before waking us is visible if seq moved */
    uint32_t seq = atomic_load_explicit(&p->seq, memory_order_acquire);
    /* relaxed: ordered against the sleeper's re-check by the heavy fence */
    atomic_store_explicit(&p->sleeping, 1, memory_order_relaxed);
    /* pairs with rg__fence_light() in rg__park_wake_if_sleeping(): either
     * the waker sees sleeping == 1, or our re-check sees its work */
    rg__fence_heavy();
    return seq;
}

static inline void rg__park_cancel(struct rg__park *p)
{
    /* relaxed: a stale 1 only costs a waker one spurious futex_wake */
    atomic_store_explicit(&p->sleeping, 0, memory_order_relaxed);
}

static inline void rg__park_commit(struct rg__park *p, uint32_t seq)
{
    rg__futex_wait(&p->seq, seq);
    rg__park_cancel(p);
}

/* Unconditional wake (used by stop). */
static inline void rg__park_wake(struct rg__park *p)
{
    /* relaxed: see rg__park_cancel() */
    atomic_store_explicit(&p->sleeping, 0, memory_order_relaxed);
    /* release: pairs with the acquire load in rg__park_prepare() */
    atomic_fetch_add_explicit(&p->seq, 1, memory_order_release);
    rg__futex_wake(&p->seq, 1);
}

static inline void rg__park_wake_if_sleeping(struct rg__park *p)
{
    /* pairs with rg__fence_heavy() in rg__park_prepare() */
    rg__fence_light();
    /* relaxed: the fence pair above orders it; the exchange makes only
     * one of several wakers pay for the syscall */
    if (atomic_load_explicit(&p->sleeping, memory_order_relaxed) &&
        atomic_exchange_explicit(&p->sleeping, 0, memory_order_relaxed)) {
        /* release: pairs with the acquire load in rg__park_prepare() */
        atomic_fetch_add_explicit(&p->seq, 1, memory_order_release);
        rg__futex_wake(&p->seq, 1);
    }
}

#endif /* RG_PARK_H */
