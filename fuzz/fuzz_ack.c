/*
 * fuzz_ack.c - libFuzzer target for the ACK tracker (railgun/ack.h).
 *
 * Input bytes become a sequence of operations: begin (small steps, gaps,
 * out-of-window jumps, offsets near RG_ACK_OFFSET_MAX), done of a pending
 * offset (on this thread, or handed to a second thread that runs it while
 * this one waits: a deterministic interleaving that still crosses threads),
 * done of offsets that are not pending (never begun, gaps, duplicates,
 * stale generations), watermark, and reset. Every return code and every
 * watermark is checked against a reference model that keeps, per
 * generation, a sorted array of pending offsets. Any divergence aborts.
 *
 * The same file builds into a plain replay driver (fuzz/replay.c) that runs
 * the saved corpus as an ordinary test.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "railgun/ack.h"
#include "railgun/error.h"

/* ---- reference model -------------------------------------------------- */

#define MAXP 8192

struct mgen {
    bool live;
    int64_t next;
    int64_t pending[MAXP]; /* sorted ascending */
    int n;
};

static struct mgen model[RG_ACK_GENERATIONS];
static uint32_t mgen_cur;
static int64_t mwindow;

static struct mgen *mg(uint32_t g)
{
    return &model[g % RG_ACK_GENERATIONS];
}

static int64_t m_watermark(uint32_t g)
{
    struct mgen *m = mg(g);
    return m->n ? m->pending[0] : m->next;
}

static int m_begin(int64_t o)
{
    struct mgen *m = mg(mgen_cur);
    if (o < 0)
        return RG_EINVAL;
    if (o > RG_ACK_OFFSET_MAX)
        return RG_ERANGE;
    if (o < m->next)
        return RG_EINVAL;
    if (m->n > 0 && (uint64_t)o - (uint64_t)m->pending[0] >= (uint64_t)mwindow)
        return RG_EFULL;
    if (m->n == MAXP)
        return RG_EFULL; /* cannot happen: window <= MAXP */
    m->pending[m->n++] = o;
    m->next = o + 1;
    return 0;
}

/* generation g is still tracked unless its window was reused */
static bool m_gen_live(uint32_t g)
{
    return g <= mgen_cur && mgen_cur - g < RG_ACK_GENERATIONS &&
           mg(g)->live;
}

static int m_done(uint32_t g, int64_t o)
{
    if (!m_gen_live(g))
        return RG_ESTALE;
    struct mgen *m = mg(g);
    for (int i = 0; i < m->n; i++) {
        if (m->pending[i] == o) {
            memmove(&m->pending[i], &m->pending[i + 1],
                    sizeof(int64_t) * (size_t)(m->n - i - 1));
            m->n--;
            return 0;
        }
    }
    return RG_ENOENT;
}

static int m_reset(int64_t next)
{
    if (next < 0 || next > RG_ACK_OFFSET_MAX + 1)
        return RG_EINVAL;
    struct mgen *m = mg(mgen_cur + 1);
    if (m->live && m->n > 0)
        return RG_EFULL;
    mgen_cur++;
    m->live = true;
    m->next = next;
    m->n = 0;
    return 0;
}

/* ---- the second thread ------------------------------------------------- */

static struct {
    _Atomic int cmd; /* 1: run done(gen, off); 0: idle/finished */
    uint32_t gen;
    int64_t off;
    int result;
    rg_ack_t *a;
} mb;
static pthread_once_t helper_once = PTHREAD_ONCE_INIT;

static void *helper_main(void *arg)
{
    (void)arg;
    for (;;) {
        unsigned spins = 0;
        /* acquire: pairs with the release store in done_remote() */
        while (atomic_load_explicit(&mb.cmd, memory_order_acquire) != 1)
            if (++spins > 100)
                sched_yield();
        mb.result = rg_ack_done(mb.a, mb.gen, mb.off);
        /* release: pairs with the acquire wait in done_remote() */
        atomic_store_explicit(&mb.cmd, 0, memory_order_release);
    }
    return NULL;
}

static void start_helper(void)
{
    pthread_t t;
    pthread_create(&t, NULL, helper_main, NULL);
    pthread_detach(t);
}

static int done_remote(rg_ack_t *a, uint32_t gen, int64_t off)
{
    pthread_once(&helper_once, start_helper);
    mb.a = a;
    mb.gen = gen;
    mb.off = off;
    /* release: publishes the arguments; pairs with the helper's acquire */
    atomic_store_explicit(&mb.cmd, 1, memory_order_release);
    unsigned spins = 0;
    while (atomic_load_explicit(&mb.cmd, memory_order_acquire) != 0)
        if (++spins > 100)
            sched_yield();
    return mb.result;
}

/* ---- driver ------------------------------------------------------------ */

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_ack: divergence: " __VA_ARGS__);          \
            fputc('\n', stderr);                                             \
            abort();                                                         \
        }                                                                    \
    } while (0)

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t byte(struct input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static uint64_t u64(struct input *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | byte(in);
    return v;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* an offset step: mostly small, sometimes a gap, sometimes past the window */
static int64_t step(struct input *in)
{
    uint8_t b = byte(in);
    switch (b >> 6) {
    case 0: return 0;
    case 1: return b & 7;
    case 2: return (int64_t)(b & 63) * 7;
    default: return mwindow - 2 + (b & 7);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    static const uint32_t windows[4] = {64, 128, 256, 4096};
    mwindow = windows[byte(&in) & 3];
    int64_t start;
    uint8_t sb = byte(&in);
    if (sb & 1) /* near the top of the offset range */
        start = RG_ACK_OFFSET_MAX - (int64_t)(u64(&in) % 20000);
    else
        start = (int64_t)(u64(&in) % 1000000);
    rg_ack_t *a = rg_ack_new((uint32_t)mwindow, start, NULL, 0);
    CHECK(a != NULL, "rg_ack_new(%lld, %lld, NULL, 0) failed", (long long)mwindow,
          (long long)start);
    memset(model, 0, sizeof(model));
    mgen_cur = 0;
    model[0].live = true;
    model[0].next = start;

    while (in.n > 0) {
        uint8_t op = byte(&in);
        struct mgen *m = mg(mgen_cur);
        switch (op % 8) {
        case 0:
        case 1: { /* begin */
            int64_t o = sat_add(m->next, step(&in));
            if ((op & 0x80) && m->next > 0) /* not increasing */
                o = m->next - 1 - (byte(&in) & 3);
            int want = m_begin(o), got = rg_ack_begin(a, o);
            CHECK(got == want, "begin(%lld) = %d, model %d", (long long)o,
                  got, want);
            break;
        }
        case 2:
        case 3:
        case 4: { /* done of a pending offset, maybe on the other thread */
            uint32_t g = mgen_cur - (byte(&in) % RG_ACK_GENERATIONS);
            if (!m_gen_live(g) || mg(g)->n == 0)
                g = mgen_cur;
            struct mgen *mm = mg(g);
            if (mm->n == 0)
                break;
            int64_t o = mm->pending[byte(&in) % mm->n];
            int want = m_done(g, o);
            int got = (op % 8) == 4 ? done_remote(a, g, o)
                                    : rg_ack_done(a, g, o);
            CHECK(got == want, "done(gen %u, %lld) = %d, model %d", g,
                  (long long)o, got, want);
            break;
        }
        case 5: { /* done of something not pending, or a stale gen */
            uint8_t k = byte(&in);
            uint32_t g = mgen_cur - (k & 7);
            int64_t base = m_watermark(mgen_cur);
            int64_t o;
            switch ((k >> 3) & 3) {
            case 0: o = sat_add(base, byte(&in)); break;        /* any */
            case 1: o = sat_add(m->next, byte(&in)); break;     /* future */
            case 2: o = base - 1 - (int64_t)byte(&in); break;   /* done */
            default: /* the same slot, a lap or two away */
                o = sat_add(base, mwindow * (1 + (byte(&in) & 1)));
                break;
            }
            int want = m_done(g, o);
            int got = (k & 0x80) ? done_remote(a, g, o) : rg_ack_done(a, g, o);
            CHECK(got == want, "done(gen %u, %lld) = %d, model %d", g,
                  (long long)o, got, want);
            break;
        }
        case 6: { /* watermark */
            int64_t want = m_watermark(mgen_cur);
            int64_t got = rg_ack_watermark(a);
            CHECK(got == want, "watermark = %lld, model %lld",
                  (long long)got, (long long)want);
            rg_ack_stats_t st;
            rg_ack_stats(a, &st);
            CHECK(st.pending == (uint64_t)m->n && st.next == m->next &&
                      st.generation == mgen_cur,
                  "stats pending %llu next %lld gen %u, model %d %lld %u",
                  (unsigned long long)st.pending, (long long)st.next,
                  st.generation, m->n, (long long)m->next, mgen_cur);
            break;
        }
        case 7: { /* reset */
            uint8_t k = byte(&in);
            int64_t n = (k & 1) ? sat_add(m->next, step(&in))
                                : m_watermark(mgen_cur) - (k >> 1);
            int want = m_reset(n), got = rg_ack_reset(a, n);
            CHECK(got == want, "reset(%lld) = %d, model %d", (long long)n,
                  got, want);
            CHECK(rg_ack_generation(a) == mgen_cur, "generation %u, model "
                  "%u", rg_ack_generation(a), mgen_cur);
            break;
        }
        }
        /* after every operation: the watermark never passes a pending
         * offset and matches the model */
        int64_t wm = rg_ack_watermark(a);
        CHECK(wm == m_watermark(mgen_cur), "watermark %lld, model %lld",
              (long long)wm, (long long)m_watermark(mgen_cur));
    }
    rg_ack_destroy(a);
    return 0;
}
