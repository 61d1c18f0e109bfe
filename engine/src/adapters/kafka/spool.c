/*
 * spool.c - the producer's durable spool (spool.h): segmented, checksummed
 * records, group commit by one syncer thread, recovery of a torn tail,
 * done marks kept in a bitmap and checkpointed atomically.
 *
 * Byte layout (every integer little-endian; records are not padded)
 *
 *   segment header, 32 bytes
 *     0  8  magic "RGSPSEG1"
 *     8  4  format version (1)
 *    12  4  header bytes (32)
 *    16  8  base LSN (the LSN of the segment's first record; also its name)
 *    24  4  reserved (0)
 *    28  4  CRC32C of bytes [0, 28)
 *
 *   record, 56 bytes + key + value
 *     0  4  CRC32C of bytes [4, end of value)
 *     4  2  magic 0x5352 ("RS")
 *     6  1  format version (1)
 *     7  1  type (1: a message)
 *     8  8  LSN
 *    16  8  producer id
 *    24  8  per-producer sequence
 *    32  8  timestamp, ms (signed)
 *    40  4  partition hint (signed, -1: none)
 *    44  4  flags (0; reserved)
 *    48  4  key bytes
 *    52  4  value bytes
 *    56     key, then value
 *
 *   done.ckpt
 *     0  8  magic "RGSPCKP1"
 *     8  4  format version (1)
 *    12  4  reserved (0)
 *    16  8  done LSN D: every record below it is done
 *    24  8  durable LSN when written: every record below it was fdatasynced
 *           (so recovery can tell corruption from a torn tail there)
 *    32  8  nbits: bits for the LSNs [D, D + nbits) follow
 *    40     ceil(nbits / 64) 64-bit words; bit i (LSB first) = LSN D + i
 *     end   4  CRC32C of every byte before it
 *
 * Why CRC32C: it is what Kafka's record batches, ext4 and iSCSI use to
 * catch torn and corrupt writes; it detects every burst of up to 32 bits
 * and, over records this short, every error of up to a few bits; and x86
 * (SSE4.2) and ARMv8 compute it in hardware at several GB/s, so checking a
 * 100-byte record costs a few ns and needs no library. A non-cryptographic
 * hash like xxhash is as fast in software but gives no such guarantee.
 *
 * Threads. Appenders stage records into the active half of a two-half
 * buffer under `mu`; the syncer thread swaps halves and, without the lock,
 * write()s the full half (one call; two when the half starts a segment)
 * and fdatasync()s it, then publishes the new durable LSN. It alone writes
 * segment files, the checkpoint and unlinks, so the file-side state
 * (wfd, segment creation) is the syncer's; `segs` and the logical counters
 * are under `mu`. Done marks are under their own `done_mu` so that marking
 * never waits behind appends. Lock order: mu, then done_mu (cursor
 * seeking and the syncer take done_mu alone; no path takes mu inside it).
 *
 * Bounds: a half holds at most sync.bytes plus one record (an append goes
 * in while the half is below sync.bytes), so staging is at most 2 x
 * (sync.bytes + largest record); a half starts at most one segment (an
 * append that needs a second waits for the swap).
 */
#define _GNU_SOURCE
#include "spool.h"
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "railgun/error.h"

#define SEG_HDR RG_SPOOL_SEG_HDR_BYTES
#define REC_HDR RG_SPOOL_REC_HDR_BYTES
#define FORMAT_VERSION 1u
#define REC_MAGIC 0x5352u
#define REC_TYPE_MSG 1u
#define CKPT_HDR 40u
#define CKPT_NAME "done.ckpt"
#define CKPT_TMP "done.ckpt.tmp"
#define LOCK_NAME "lock"
#define SEG_SUFFIX ".seg"
#define SEG_NAME_DIGITS 20
#define NO_ROLL SIZE_MAX
#define READ_CHUNK (256u << 10)

_Static_assert(REC_HDR == 56, "record header layout");
_Static_assert(SEG_HDR == 32, "segment header layout");

/* ---- little-endian fields ------------------------------------------------ */

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- CRC32C -------------------------------------------------------------- */

/* Software: slicing by 8 over tables built once (0x82F63B78 is the
 * reflected Castagnoli polynomial). */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
                              crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = c ^ get32(p);
        uint32_t hi = get32(p + 4);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
/* Hardware: the SSE4.2 crc32 instruction, eight bytes at a time. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c,
                                                        const uint8_t *p,
                                                        size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#define HAVE_CRC_HW 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __crc32cd(c, v);
        p += 8;
        n -= 8;
    }
    while (n--)
        c = __crc32cb(c, *p++);
    return c;
}
#define HAVE_CRC_HW 1
#endif

/* 1 hardware, 0 software; decided once by crc_pick() */
static int crc_use_hw;

static void crc_pick(void)
{
    crc_init();
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_use_hw = __builtin_cpu_supports("sse4.2");
#elif defined(HAVE_CRC_HW)
    crc_use_hw = 1;
#endif
}

uint32_t rg__crc32c(uint32_t crc, const void *p, size_t len)
{
    /* pthread_once orders crc_pick()'s writes before every caller's reads */
    pthread_once(&crc_once, crc_pick);
    crc = ~crc;
#ifdef HAVE_CRC_HW
    if (crc_use_hw)
        return ~crc_hw(crc, p, len);
#endif
    return ~crc_sw(crc, p, len);
}

/* ---- errors -------------------------------------------------------------- */

static _Thread_local char last_error[320];

const char *rg__spool_last_error(void)
{
    return last_error;
}

static int fail(int rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- options ------------------------------------------------------------- */

struct prop {
    const char *name;
    bool is_str;
    const char *def;
    int64_t min, max;
};

static const struct prop props[] = {
#define INT 0
#define STR 1
#define RG__SPOOL_PROP_ROW(id, name, type, def, min, max, check, doc)       \
    {name, type, def, min, max},
    RG_SPOOL_PROPS(RG__SPOOL_PROP_ROW)
#undef RG__SPOOL_PROP_ROW
#undef INT
#undef STR
};

enum {
#define RG__SPOOL_PROP_ENUM(id, name, type, def, min, max, check, doc) P_##id,
    RG_SPOOL_PROPS(RG__SPOOL_PROP_ENUM)
#undef RG__SPOOL_PROP_ENUM
    P__COUNT
};

static int64_t *opt_field(rg_spool_opts_t *o, int id)
{
    switch (id) {
    case P_FALLBACK_SPOOL_SEGMENT_BYTES: return &o->segment_bytes;
    case P_FALLBACK_SPOOL_MAX_BYTES: return &o->max_bytes;
    case P_FALLBACK_SPOOL_SYNC_MS: return &o->sync_ms;
    case P_FALLBACK_SPOOL_SYNC_BYTES: return &o->sync_bytes;
    case P_FALLBACK_SPOOL_CHECKPOINT_MS: return &o->checkpoint_ms;
    default: return NULL;
    }
}

void rg__spool_opts_default(rg_spool_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->dir = props[P_FALLBACK_SPOOL_DIR].def;
    for (int i = 0; i < P__COUNT; i++) {
        int64_t *f = opt_field(opts, i);
        if (f != NULL)
            *f = strtoll(props[i].def, NULL, 10);
    }
}

static int check_opts(const rg_spool_opts_t *o, char *errstr, size_t n)
{
    rg_spool_opts_t c = *o;
    for (int i = 0; i < P__COUNT; i++) {
        int64_t *f = opt_field(&c, i);
        if (f == NULL)
            continue;
        if (*f < props[i].min || *f > props[i].max) {
            snprintf(errstr, n, "%s: %" PRId64 " is %s the %s %" PRId64,
                     props[i].name, *f,
                     *f < props[i].min ? "below" : "above",
                     *f < props[i].min ? "minimum" : "maximum",
                     *f < props[i].min ? props[i].min : props[i].max);
            return RG_ERANGE;
        }
    }
    if (o->max_bytes < 2 * o->segment_bytes) {
        snprintf(errstr, n,
                 "fallback.spool.max.bytes: %" PRId64 " is below twice "
                 "fallback.spool.segment.bytes (%" PRId64 ")",
                 o->max_bytes, o->segment_bytes);
        return RG_ERANGE;
    }
    if (o->dir == NULL || o->dir[0] == '\0') {
        snprintf(errstr, n, "fallback.spool.dir: no directory given");
        return RG_EINVAL;
    }
    return 0;
}

int rg__spool_opts_from_conf(rg_spool_opts_t *opts, const rg_conf_t *conf,
                             char *errstr, size_t errstr_size)
{
    rg_spool_opts_t o;
    rg__spool_opts_default(&o);
    for (int i = 0; i < P__COUNT; i++) {
        const char *text = rg_conf_get_str(conf, props[i].name);
        char buf[32];
        if (text == NULL) {
            /* an INT row of the core table, or a name it lacks */
            size_t sz = sizeof(buf);
            int rc = rg_conf_get(conf, props[i].name, buf, &sz);
            if (rc == RG_ENOENT)
                continue;
            if (rc != 0) {
                snprintf(errstr, errstr_size, "%s: value too long",
                         props[i].name);
                return RG_EINVAL;
            }
            text = buf;
        }
        if (props[i].is_str) {
            o.dir = text;
            continue;
        }
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0') {
            snprintf(errstr, errstr_size, "%s: '%s' is not an integer",
                     props[i].name, text);
            return RG_EINVAL;
        }
        *opt_field(&o, i) = v;
    }
    char msg[256];
    int rc = check_opts(&o, msg, sizeof(msg));
    /* an empty dir is "no spool", which is the caller's to decide */
    if (rc != 0 && !(rc == RG_EINVAL && o.dir[0] == '\0')) {
        snprintf(errstr, errstr_size, "%s", msg);
        return rc;
    }
    *opts = o;
    return 0;
}

/* ---- the spool ----------------------------------------------------------- */

/* A segment file on disk: records [base, end), `bytes` long (durable). */
struct seg {
    uint64_t base, end;
    uint64_t bytes;
};

/* One half of the staging buffer: records [first_lsn, end_lsn). */
struct half {
    uint8_t *data;
    size_t len, cap;
    uint64_t first_lsn, end_lsn;
    size_t roll_off;      /* NO_ROLL, or where a new segment's header is */
    uint64_t roll_lsn;    /* that segment's base */
    int64_t first_ns;     /* when its first record was staged */
};

struct rg_spool_s {
    char *dir;
    int dirfd, lockfd;
    uint64_t seg_bytes, max_bytes, sync_bytes;
    int64_t sync_ns, ckpt_ns;

    pthread_mutex_t mu;
    pthread_cond_t cv_sync;      /* the syncer waits here for work */
    pthread_cond_t cv_progress;  /* appenders, waiters, flushers */
    /* under mu */
    struct half half[2];
    int active;                  /* appends go into half[active] */
    bool busy;                   /* the syncer is writing the other half */
    bool urgent;                 /* an append waits for the swap */
    bool closing;
    uint64_t flush_req, flush_done, flush_target;
    uint64_t sync_target;        /* rg__spool_sync(): commit up to here now */
    int failed;                  /* 0 or RG_EIO: no more appends */
    char fail_msg[256];
    uint64_t next;               /* LSN of the next append */
    uint64_t bytes;              /* on disk + staged */
    bool tail_open;              /* appends may go into the newest segment */
    uint64_t tail_bytes;         /* its size, staged bytes included */
    struct seg *segs;            /* on disk, by base */
    size_t nsegs, segs_cap;
    int cursors;
    bool has_last;
    uint64_t last_pid, last_seq;
    uint64_t st_appended, st_syncs, st_synced_bytes, st_ckpts, st_deleted;
    uint64_t st_recovered, st_truncated;

    /* syncer thread only (and open/close around it) */
    int wfd;                     /* the newest segment on disk, or -1 */
    uint64_t ckpt_lsn;           /* D of the newest durable checkpoint */
    uint64_t ckpt_durable;       /* and the durable LSN it recorded */

    /* R1: stored with release by the syncer once a half is durable;
     * loaded with acquire by waiters and cursors before they read files */
    _Atomic uint64_t durable_lsn;
    /* R2: stored with release by append (under mu) after the record is
     * staged; loaded with acquire by mark_done() to bound the LSN */
    _Atomic uint64_t next_lsn;

    pthread_mutex_t done_mu;
    /* under done_mu */
    uint64_t done_lsn;           /* every LSN below is done */
    uint64_t done_hi;            /* highest marked LSN + 1 */
    uint64_t *bits;              /* ring of words; bit of LSN L is word */
    size_t nwords;               /* (L >> 6) & (nwords - 1), bit L & 63 */
    uint64_t bits_set;           /* bits set (all at or above done_lsn) */
    bool done_dirty;             /* changed since the last checkpoint */

    pthread_t syncer;
    bool syncer_started;
};

struct rg_spool_cursor_s {
    rg_spool_t *sp;
    uint64_t from;               /* yield no LSN below this */
    int fd;                      /* the segment being read, or -1 */
    uint64_t seg_base, seg_end;  /* its records, as far as known durable */
    uint64_t lsn;                /* LSN of the record at `off` */
    uint64_t off;
    uint8_t *buf;                /* file bytes [boff, boff + blen) */
    size_t cap, blen;
    uint64_t boff;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec abs_ts(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000,
                          .tv_nsec = ns % 1000000000};
    return ts;
}

static void seg_name(char *dst, size_t n, uint64_t base)
{
    snprintf(dst, n, "%0*" PRIu64 SEG_SUFFIX, SEG_NAME_DIGITS, base);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- encoding ------------------------------------------------------------ */

void rg__spool_segment_header(void *dst, uint64_t base_lsn)
{
    uint8_t *p = dst;
    memcpy(p, "RGSPSEG1", 8);
    put32(p + 8, FORMAT_VERSION);
    put32(p + 12, SEG_HDR);
    put64(p + 16, base_lsn);
    put32(p + 24, 0);
    put32(p + 28, rg__crc32c(0, p, 28));
}

size_t rg__spool_record_encode(void *dst, const rg_spool_msg_t *m,
                               uint64_t lsn)
{
    uint8_t *p = dst;
    put16(p + 4, REC_MAGIC);
    p[6] = FORMAT_VERSION;
    p[7] = REC_TYPE_MSG;
    put64(p + 8, lsn);
    put64(p + 16, m->producer_id);
    put64(p + 24, m->seq);
    put64(p + 32, (uint64_t)m->ts_ms);
    put32(p + 40, (uint32_t)m->partition);
    put32(p + 44, 0);
    put32(p + 48, m->key_len);
    put32(p + 52, m->value_len);
    if (m->key_len > 0)
        memcpy(p + REC_HDR, m->key, m->key_len);
    if (m->value_len > 0)
        memcpy(p + REC_HDR + m->key_len, m->value, m->value_len);
    size_t n = REC_HDR + (size_t)m->key_len + m->value_len;
    put32(p, rg__crc32c(0, p + 4, n - 4));
    return n;
}

/* Why bytes [0, avail) do not start a valid record numbered `lsn`, or NULL
 * when they do (then *len is its size). */
static const char *record_check(const uint8_t *p, uint64_t avail,
                                uint64_t lsn, uint64_t *len)
{
    if (avail < REC_HDR)
        return "a record header cut short";
    if (get16(p + 4) != REC_MAGIC || p[6] != FORMAT_VERSION ||
        p[7] != REC_TYPE_MSG)
        return "no record marker";
    uint64_t n = REC_HDR + (uint64_t)get32(p + 48) + get32(p + 52);
    if (n > avail)
        return "a record cut short";
    if (rg__crc32c(0, p + 4, n - 4) != get32(p))
        return "a checksum mismatch";
    if (get64(p + 8) != lsn)
        return "a record out of sequence";
    *len = n;
    return NULL;
}

static void record_decode(const uint8_t *p, rg_spool_rec_t *r)
{
    r->lsn = get64(p + 8);
    r->msg.producer_id = get64(p + 16);
    r->msg.seq = get64(p + 24);
    r->msg.ts_ms = (int64_t)get64(p + 32);
    r->msg.partition = (int32_t)get32(p + 40);
    r->msg.key_len = get32(p + 48);
    r->msg.value_len = get32(p + 52);
    r->msg.key = p + REC_HDR;
    r->msg.value = p + REC_HDR + r->msg.key_len;
}

static bool segment_header_ok(const uint8_t *p, uint64_t base)
{
    return memcmp(p, "RGSPSEG1", 8) == 0 && get32(p + 8) == FORMAT_VERSION &&
           get32(p + 12) == SEG_HDR && get64(p + 16) == base &&
           get32(p + 28) == rg__crc32c(0, p, 28);
}

/* ---- done marks (done_mu held) ------------------------------------------- */

static bool done_test(const rg_spool_t *sp, uint64_t lsn)
{
    if (lsn < sp->done_lsn)
        return true;
    if ((lsn >> 6) - (sp->done_lsn >> 6) >= sp->nwords)
        return false;
    return (sp->bits[(lsn >> 6) & (sp->nwords - 1)] >> (lsn & 63)) & 1;
}

/* The done bits of LSNs [lsn, lsn + 64), lsn >= done_lsn; bit i = lsn + i.
 * Bits past the ring's window are 0 (nothing there is marked). */
static uint64_t done_bits64(const rg_spool_t *sp, uint64_t lsn)
{
    uint64_t first = sp->done_lsn >> 6, w = lsn >> 6;
    unsigned b = lsn & 63;
    uint64_t lo = 0, hi = 0;
    if (w - first < sp->nwords)
        lo = sp->bits[w & (sp->nwords - 1)] >> b;
    if (b != 0 && w + 1 - first < sp->nwords)
        hi = sp->bits[(w + 1) & (sp->nwords - 1)] << (64 - b);
    return lo | hi;
}

/* Makes the ring cover LSN `lsn` (>= done_lsn). The span it needs is
 * bounded by the records in the spool (S5). */
static int done_reserve(rg_spool_t *sp, uint64_t lsn)
{
    uint64_t span = (lsn >> 6) - (sp->done_lsn >> 6) + 1;
    if (span <= sp->nwords)
        return 0;
    size_t n = sp->nwords ? sp->nwords : 64;
    while (n < span)
        n *= 2;
    uint64_t *w = calloc(n, sizeof(*w));
    if (w == NULL)
        return RG_ENOMEM;
    uint64_t first = sp->done_lsn >> 6;
    for (size_t i = 0; i < sp->nwords; i++)
        w[(first + i) & (n - 1)] = sp->bits[(first + i) & (sp->nwords - 1)];
    free(sp->bits);
    sp->bits = w;
    sp->nwords = n;
    return 0;
}

/* Moves done_lsn over the run of set bits it sits on, clearing them. */
static void done_advance(rg_spool_t *sp)
{
    while (sp->bits_set > 0) {
        uint64_t *w = &sp->bits[(sp->done_lsn >> 6) & (sp->nwords - 1)];
        unsigned b = sp->done_lsn & 63;
        uint64_t v = *w >> b;
        if (!(v & 1))
            break;
        unsigned run = ~v == 0 ? 64 : (unsigned)__builtin_ctzll(~v);
        if (run > 64 - b)
            run = 64 - b;
        uint64_t mask = run == 64 ? ~0ull : ((1ull << run) - 1) << b;
        *w &= ~mask;
        sp->done_lsn += run;
        sp->bits_set -= run;
    }
    if (sp->bits_set == 0 && sp->done_hi < sp->done_lsn)
        sp->done_hi = sp->done_lsn;
}

static int done_set(rg_spool_t *sp, uint64_t lsn)
{
    if (lsn < sp->done_lsn)
        return 0;
    int rc = done_reserve(sp, lsn);
    if (rc != 0)
        return rc;
    uint64_t *w = &sp->bits[(lsn >> 6) & (sp->nwords - 1)];
    uint64_t bit = 1ull << (lsn & 63);
    if (*w & bit)
        return 0;
    *w |= bit;
    sp->bits_set++;
    if (lsn + 1 > sp->done_hi)
        sp->done_hi = lsn + 1;
    sp->done_dirty = true;
    if (lsn == sp->done_lsn)
        done_advance(sp);
    return 0;
}

int rg__spool_mark_done(rg_spool_t *sp, uint64_t lsn)
{
    /* acquire pairs with R2's release in rg__spool_append(): an LSN read
     * below next was appended */
    if (lsn >= atomic_load_explicit(&sp->next_lsn, memory_order_acquire))
        return fail(RG_ERANGE, "spool: LSN %" PRIu64 " was never appended",
                    lsn);
    pthread_mutex_lock(&sp->done_mu);
    int rc = done_set(sp, lsn);
    pthread_mutex_unlock(&sp->done_mu);
    if (rc != 0)
        return fail(rc, "spool: out of memory for done marks");
    return 0;
}

/* ---- the checkpoint ------------------------------------------------------ */

/*
 * Writes done.ckpt: done LSN and bits, clipped at the durable LSN (S4),
 * when the done marks changed, or (`force`: a flush or close) when the
 * durable LSN moved since the last one. Syncer thread, without mu. Sets
 * *written_lsn to the checkpoint's D. Returns 0, or RG_EIO with the
 * message in `msg`.
 */
static int checkpoint_write(rg_spool_t *sp, bool force, uint64_t *written_lsn,
                            bool *wrote, char *msg, size_t msgn)
{
    /* relaxed: the syncer itself stores durable_lsn */
    uint64_t durable = atomic_load_explicit(&sp->durable_lsn,
                                            memory_order_relaxed);
    *wrote = false;
    pthread_mutex_lock(&sp->done_mu);
    if (!sp->done_dirty && !(force && durable != sp->ckpt_durable)) {
        pthread_mutex_unlock(&sp->done_mu);
        return 0;
    }
    uint64_t d = sp->done_lsn < durable ? sp->done_lsn : durable;
    uint64_t hi = sp->done_hi < durable ? sp->done_hi : durable;
    uint64_t nbits = hi > d ? hi - d : 0;
    size_t nw = (size_t)((nbits + 63) / 64);
    size_t size = CKPT_HDR + nw * 8 + 4;
    uint8_t *b = calloc(1, size);
    if (b == NULL) {
        pthread_mutex_unlock(&sp->done_mu);
        snprintf(msg, msgn, "spool: out of memory for the checkpoint");
        return RG_EIO;
    }
    /* nbits > 0 only when d == done_lsn (else hi <= durable < done_lsn) */
    for (uint64_t i = 0; i < nbits; i += 64) {
        uint64_t v = done_bits64(sp, d + i);
        if (nbits - i < 64)
            v &= (1ull << (nbits - i)) - 1;
        put64(b + CKPT_HDR + i / 8, v);
    }
    /* marks still above the durable LSN go into a later checkpoint */
    sp->done_dirty = sp->done_lsn > durable || sp->done_hi > durable;
    pthread_mutex_unlock(&sp->done_mu);

    memcpy(b, "RGSPCKP1", 8);
    put32(b + 8, FORMAT_VERSION);
    put64(b + 16, d);
    put64(b + 24, durable);
    put64(b + 32, nbits);
    put32(b + size - 4, rg__crc32c(0, b, size - 4));
    int rc = 0;
    int fd = openat(sp->dirfd, CKPT_TMP,
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write_all(fd, b, size) != 0 || fdatasync(fd) != 0 ||
        renameat(sp->dirfd, CKPT_TMP, sp->dirfd, CKPT_NAME) != 0 ||
        fsync(sp->dirfd) != 0) {
        snprintf(msg, msgn, "spool: writing %s/%s failed: %s", sp->dir,
                 CKPT_NAME, strerror(errno));
        rc = RG_EIO;
        /* the marks are not on disk: keep them for the next try */
        pthread_mutex_lock(&sp->done_mu);
        sp->done_dirty = true;
        pthread_mutex_unlock(&sp->done_mu);
    } else {
        *written_lsn = d;
        *wrote = true;
        sp->ckpt_durable = durable;
    }
    if (fd >= 0)
        close(fd);
    free(b);
    return rc;
}

/* Reads done.ckpt into *d, *durable and a bit array (caller frees); no
 * file: zeros, no bits. Returns 0 or RG_EIO with errstr. */
static int checkpoint_read(rg_spool_t *sp, uint64_t *d, uint64_t *durable,
                           uint8_t **bits, uint64_t *nbits, char *errstr,
                           size_t n)
{
    *d = 0;
    *durable = 0;
    *bits = NULL;
    *nbits = 0;
    int fd = openat(sp->dirfd, CKPT_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(errstr, n, "spool: cannot open %s/%s: %s", sp->dir,
                 CKPT_NAME, strerror(errno));
        return RG_EIO;
    }
    struct stat st;
    uint8_t *b = NULL;
    const char *why = NULL;
    if (fstat(fd, &st) != 0) {
        why = strerror(errno);
    } else if ((uint64_t)st.st_size < CKPT_HDR + 4 ||
               (uint64_t)st.st_size > (1ull << 34)) {
        why = "its size is wrong";
    } else if ((b = malloc((size_t)st.st_size)) == NULL) {
        why = "out of memory";
    } else if (pread(fd, b, (size_t)st.st_size, 0) != st.st_size) {
        why = "it cannot be read";
    } else {
        size_t size = (size_t)st.st_size;
        uint64_t nb = get64(b + 32);
        if (memcmp(b, "RGSPCKP1", 8) != 0 || get32(b + 8) != FORMAT_VERSION)
            why = "it has no checkpoint marker";
        else if (get32(b + size - 4) != rg__crc32c(0, b, size - 4))
            why = "its checksum does not match";
        else if (nb > (uint64_t)(size - CKPT_HDR - 4) * 8 ||
                 (nb + 63) / 64 * 8 != size - CKPT_HDR - 4)
            why = "its bit count does not match its size";
        else {
            *d = get64(b + 16);
            *durable = get64(b + 24);
            *nbits = nb;
            memmove(b, b + CKPT_HDR, size - CKPT_HDR - 4);
            *bits = b;
            b = NULL;
        }
    }
    close(fd);
    free(b);
    if (why != NULL) {
        snprintf(errstr, n,
                 "spool: checkpoint %s/%s is unusable (%s); remove it to "
                 "replay every record again (done ones are then deduplicated "
                 "by their producer sequence)",
                 sp->dir, CKPT_NAME, why);
        return RG_EIO;
    }
    return 0;
}

/* ---- the syncer ---------------------------------------------------------- */

static void spool_fail(rg_spool_t *sp, const char *msg)
{
    if (sp->failed == 0) {
        sp->failed = RG_EIO;
        snprintf(sp->fail_msg, sizeof(sp->fail_msg), "%s", msg);
    }
}

/* Writes and fdatasyncs the active half. mu held on entry and exit,
 * released around the I/O. */
static void commit_half(rg_spool_t *sp)
{
    struct half *h = &sp->half[sp->active];
    sp->active ^= 1;
    sp->busy = true;
    sp->urgent = false;
    /* appenders waiting for room fill the other half during the I/O */
    pthread_cond_broadcast(&sp->cv_progress);
    pthread_mutex_unlock(&sp->mu);

    char msg[256] = "";
    char name[SEG_NAME_DIGITS + 8];
    size_t first = h->roll_off == NO_ROLL ? h->len : h->roll_off;
    int nfd = -1;
    if (first > 0) {
        assert(sp->wfd >= 0);
        if (write_all(sp->wfd, h->data, first) != 0 ||
            fdatasync(sp->wfd) != 0)
            snprintf(msg, sizeof(msg), "spool: writing %s failed: %s",
                     sp->dir, strerror(errno));
    }
    /* S2: the new segment gets bytes only after the old one is durable */
    if (msg[0] == '\0' && h->roll_off != NO_ROLL) {
        seg_name(name, sizeof(name), h->roll_lsn);
        nfd = openat(sp->dirfd, name,
                     O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
        if (nfd < 0 || write_all(nfd, h->data + h->roll_off,
                                 h->len - h->roll_off) != 0 ||
            fdatasync(nfd) != 0 || fsync(sp->dirfd) != 0)
            snprintf(msg, sizeof(msg), "spool: writing %s/%s failed: %s",
                     sp->dir, name, strerror(errno));
    }

    pthread_mutex_lock(&sp->mu);
    if (msg[0] != '\0') {
        /* fsync errors cannot be retried safely (the kernel may have
         * dropped the dirty pages): stop taking appends; recovery on the
         * next open keeps whatever reached the disk whole */
        if (nfd >= 0)
            close(nfd);
        sp->bytes -= h->len; /* never written */
        spool_fail(sp, msg);
    } else {
        if (first > 0) {
            struct seg *t = &sp->segs[sp->nsegs - 1];
            t->end = h->roll_off == NO_ROLL ? h->end_lsn : h->roll_lsn;
            t->bytes += first;
        }
        if (h->roll_off != NO_ROLL) {
            if (sp->wfd >= 0)
                close(sp->wfd);
            sp->wfd = nfd;
            /* room was reserved by the append that set roll_off */
            assert(sp->nsegs < sp->segs_cap);
            sp->segs[sp->nsegs++] = (struct seg){
                .base = h->roll_lsn, .end = h->end_lsn,
                .bytes = h->len - h->roll_off};
        }
        sp->st_syncs++;
        sp->st_synced_bytes += h->len;
        /* R1: the records of h are in the file and durable */
        atomic_store_explicit(&sp->durable_lsn, h->end_lsn,
                              memory_order_release);
    }
    h->len = 0;
    h->roll_off = NO_ROLL;
    sp->busy = false;
    pthread_cond_broadcast(&sp->cv_progress);
}

/* Writes the checkpoint, then unlinks the segments it shows done (S3).
 * mu held on entry and exit, released around the I/O. */
static void checkpoint_and_delete(rg_spool_t *sp, bool force)
{
    pthread_mutex_unlock(&sp->mu);
    char msg[256] = "";
    uint64_t d = sp->ckpt_lsn;
    bool wrote;
    int rc = checkpoint_write(sp, force, &d, &wrote, msg, sizeof(msg));
    pthread_mutex_lock(&sp->mu);
    if (rc != 0) {
        spool_fail(sp, msg);
        return;
    }
    if (wrote) {
        sp->ckpt_lsn = d;
        sp->st_ckpts++;
    }
    /* the newest segment only when nothing is staged: then its end on
     * disk is its end, and no append targets it mid-flight */
    size_t n = 0;
    while (n < sp->nsegs && sp->segs[n].end <= sp->ckpt_lsn &&
           (n + 1 < sp->nsegs ||
            (sp->half[sp->active].len == 0 && !sp->busy)))
        n++;
    uint64_t *bases = n > 0 ? malloc(n * sizeof(*bases)) : NULL;
    if (bases == NULL)
        return; /* none due, or no memory: the next pass tries again */
    for (size_t i = 0; i < n; i++) {
        bases[i] = sp->segs[i].base;
        sp->bytes -= sp->segs[i].bytes;
    }
    if (n == sp->nsegs) {
        /* the newest segment goes too: the next append starts another */
        if (sp->wfd >= 0)
            close(sp->wfd);
        sp->wfd = -1;
        sp->tail_open = false;
        sp->tail_bytes = 0;
    }
    memmove(sp->segs, sp->segs + n, (sp->nsegs - n) * sizeof(*sp->segs));
    sp->nsegs -= n;
    sp->st_deleted += n;
    /* unlink outside mu: cursors open segments under mu, and a segment
     * no longer listed is never opened again */
    pthread_mutex_unlock(&sp->mu);
    char name[SEG_NAME_DIGITS + 8];
    for (size_t i = 0; i < n && msg[0] == '\0'; i++) {
        seg_name(name, sizeof(name), bases[i]);
        if (unlinkat(sp->dirfd, name, 0) != 0 && errno != ENOENT)
            snprintf(msg, sizeof(msg), "spool: removing %s/%s failed: %s",
                     sp->dir, name, strerror(errno));
    }
    free(bases);
    pthread_mutex_lock(&sp->mu);
    if (msg[0] != '\0')
        spool_fail(sp, msg);
}

static void *syncer_main(void *arg)
{
    rg_spool_t *sp = arg;
    pthread_mutex_lock(&sp->mu);
    int64_t last_ckpt = now_ns();
    for (;;) {
        struct half *a = &sp->half[sp->active];
        int64_t now = now_ns();
        bool want_flush = sp->flush_req != sp->flush_done;
        /* relaxed: the syncer stores durable_lsn itself */
        uint64_t durable = atomic_load_explicit(&sp->durable_lsn,
                                                memory_order_relaxed);
        if (a->len > 0 && sp->failed == 0 &&
            (a->len >= sp->sync_bytes || sp->urgent || sp->closing ||
             (want_flush && durable < sp->flush_target) ||
             durable < sp->sync_target ||
             now - a->first_ns >= sp->sync_ns)) {
            commit_half(sp);
            continue;
        }
        if (sp->failed != 0 && a->len > 0) {
            /* never written: give their room back */
            sp->bytes -= a->len;
            a->len = 0;
            a->roll_off = NO_ROLL;
        }
        sp->urgent = false;
        if (want_flush || sp->closing || now - last_ckpt >= sp->ckpt_ns) {
            uint64_t req = sp->flush_req;
            checkpoint_and_delete(sp, want_flush || sp->closing);
            last_ckpt = now_ns();
            if (req != sp->flush_done) {
                sp->flush_done = req;
                pthread_cond_broadcast(&sp->cv_progress);
            }
            if (sp->closing && sp->half[sp->active].len == 0)
                break;
            continue;
        }
        int64_t wake = last_ckpt + sp->ckpt_ns;
        if (a->len > 0 && a->first_ns + sp->sync_ns < wake)
            wake = a->first_ns + sp->sync_ns;
        struct timespec ts = abs_ts(wake);
        pthread_cond_timedwait(&sp->cv_sync, &sp->mu, &ts);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

/* ---- appends and waits --------------------------------------------------- */

/* append_locked(): the record would have to wait for room */
#define WOULD_WAIT 1

/*
 * Stages one record; mu held (released only inside the condition wait).
 * With may_wait false, returns WOULD_WAIT instead of waiting for room.
 */
static int append_locked(rg_spool_t *sp, const rg_spool_msg_t *m,
                         uint64_t *lsn, int timeout_ms, bool may_wait)
{
    uint64_t rec = rg__spool_record_bytes(m->key_len, m->value_len);
    if (rec + SEG_HDR > sp->seg_bytes)
        return fail(RG_EINVAL,
                    "spool: a record of %" PRIu64 " bytes does not fit in a "
                    "segment (fallback.spool.segment.bytes=%" PRIu64 ")",
                    rec, sp->seg_bytes);
    int64_t deadline = 0;
    struct half *a;
    bool roll;
    for (;;) {
        if (sp->failed != 0)
            return fail(sp->failed, "%s", sp->fail_msg);
        if (sp->closing)
            return fail(RG_ESTOPPED, "spool: closing");
        roll = !sp->tail_open || sp->tail_bytes + rec > sp->seg_bytes;
        uint64_t add = rec + (roll ? SEG_HDR : 0);
        if (sp->bytes + add > sp->max_bytes)
            return fail(RG_EFULL,
                        "spool %s is full: %" PRIu64 " of %" PRIu64
                        " bytes (fallback.spool.max.bytes) hold records not "
                        "yet replayed; nothing was dropped",
                        sp->dir, sp->bytes, sp->max_bytes);
        a = &sp->half[sp->active];
        bool second_roll = roll && a->roll_off != NO_ROLL;
        if (a->len < sp->sync_bytes && !second_roll)
            break;
        /* both halves busy (or this half already starts a segment): the
         * syncer takes this half as soon as it is done with the other */
        if (second_roll)
            sp->urgent = true;
        pthread_cond_signal(&sp->cv_sync);
        if (!may_wait)
            return WOULD_WAIT;
        int64_t now = now_ns();
        if (deadline == 0)
            deadline = timeout_ms < 0 ? INT64_MAX
                                      : now + (int64_t)timeout_ms * 1000000;
        if (timeout_ms == 0 || now >= deadline)
            return fail(RG_ETIMEDOUT,
                        "spool %s: the disk is behind: %" PRIu64
                        " bytes wait for fdatasync (fallback.spool.sync."
                        "bytes=%" PRIu64 "); waited %d ms",
                        sp->dir, (uint64_t)(sp->half[0].len + sp->half[1].len),
                        sp->sync_bytes, timeout_ms);
        if (deadline == INT64_MAX) {
            pthread_cond_wait(&sp->cv_progress, &sp->mu);
        } else {
            struct timespec ts = abs_ts(deadline);
            pthread_cond_timedwait(&sp->cv_progress, &sp->mu, &ts);
        }
    }
    size_t need = a->len + (size_t)rec + (roll ? SEG_HDR : 0);
    if (need > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *d = realloc(a->data, cap);
        if (d == NULL)
            return fail(RG_ENOMEM, "spool: out of memory for staging");
        a->data = d;
        a->cap = cap;
    }
    if (roll && sp->nsegs + 1 >= sp->segs_cap) {
        /* room for the segment the syncer will list (commit_half()) */
        size_t cap = sp->segs_cap ? sp->segs_cap * 2 : 16;
        struct seg *s = realloc(sp->segs, cap * sizeof(*s));
        if (s == NULL)
            return fail(RG_ENOMEM, "spool: out of memory");
        sp->segs = s;
        sp->segs_cap = cap;
    }
    bool was_empty = a->len == 0;
    if (roll) {
        a->roll_off = a->len;
        a->roll_lsn = sp->next;
        rg__spool_segment_header(a->data + a->len, sp->next);
        a->len += SEG_HDR;
        sp->tail_open = true;
        sp->tail_bytes = SEG_HDR;
        sp->bytes += SEG_HDR;
    }
    if (was_empty) {
        a->first_lsn = sp->next;
        a->first_ns = now_ns();
    }
    rg__spool_record_encode(a->data + a->len, m, sp->next);
    a->len += rec;
    *lsn = sp->next;
    a->end_lsn = ++sp->next;
    /* R2: the LSN is allocated before anyone may mark it done */
    atomic_store_explicit(&sp->next_lsn, sp->next, memory_order_release);
    sp->tail_bytes += rec;
    sp->bytes += rec;
    sp->has_last = true;
    sp->last_pid = m->producer_id;
    sp->last_seq = m->seq;
    sp->st_appended++;
    /* the syncer sleeps without a deadline for an empty half; a full one
     * is due now */
    if (was_empty || a->len >= sp->sync_bytes)
        pthread_cond_signal(&sp->cv_sync);
    return 0;
}

int rg__spool_append(rg_spool_t *sp, const rg_spool_msg_t *m, uint64_t *lsn,
                     int timeout_ms)
{
    pthread_mutex_lock(&sp->mu);
    int rc = append_locked(sp, m, lsn, timeout_ms, true);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

int rg__spool_append_burst(rg_spool_t *sp, const rg_spool_msg_t *msgs,
                           size_t n, uint64_t *first_lsn, int timeout_ms)
{
    if (n == 0)
        return fail(RG_EINVAL, "spool: an empty burst");
    if (n > INT_MAX)
        n = INT_MAX;
    pthread_mutex_lock(&sp->mu);
    int rc = append_locked(sp, &msgs[0], first_lsn, timeout_ms, true);
    size_t done = rc == 0;
    /* the rest only while they fit without waiting: one lock hold, so
     * their LSNs follow the first's */
    uint64_t lsn;
    while (rc == 0 && done < n &&
           append_locked(sp, &msgs[done], &lsn, 0, false) == 0)
        done++;
    pthread_mutex_unlock(&sp->mu);
    return done > 0 ? (int)done : rc;
}

uint64_t rg__spool_durable_lsn(rg_spool_t *sp)
{
    /* acquire pairs with R1's release in commit_half() */
    return atomic_load_explicit(&sp->durable_lsn, memory_order_acquire);
}

int rg__spool_wait(rg_spool_t *sp, uint64_t lsn, int timeout_ms)
{
    /* acquire pairs with R2's release in rg__spool_append() */
    if (lsn >= atomic_load_explicit(&sp->next_lsn, memory_order_acquire))
        return fail(RG_ERANGE, "spool: LSN %" PRIu64 " was never appended",
                    lsn);
    if (rg__spool_durable_lsn(sp) > lsn)
        return 0;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX
                                      : now_ns() + (int64_t)timeout_ms * 1000000;
    struct timespec ts = abs_ts(deadline);
    int rc = 0;
    pthread_mutex_lock(&sp->mu);
    /* relaxed under mu: commit_half() stores it under mu too */
    while (atomic_load_explicit(&sp->durable_lsn, memory_order_relaxed) <=
           lsn) {
        if (sp->failed != 0) {
            rc = fail(sp->failed, "%s", sp->fail_msg);
            break;
        }
        if (deadline != INT64_MAX && now_ns() >= deadline) {
            rc = fail(RG_ETIMEDOUT,
                      "spool: LSN %" PRIu64 " not durable after %d ms", lsn,
                      timeout_ms);
            break;
        }
        if (deadline == INT64_MAX)
            pthread_cond_wait(&sp->cv_progress, &sp->mu);
        else
            pthread_cond_timedwait(&sp->cv_progress, &sp->mu, &ts);
    }
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

int rg__spool_sync(rg_spool_t *sp, int timeout_ms)
{
    pthread_mutex_lock(&sp->mu);
    uint64_t target = sp->next;
    if (target > sp->sync_target)
        sp->sync_target = target;
    pthread_cond_signal(&sp->cv_sync);
    pthread_mutex_unlock(&sp->mu);
    return target == 0 ? 0 : rg__spool_wait(sp, target - 1, timeout_ms);
}

int rg__spool_flush(rg_spool_t *sp, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX
                                      : now_ns() + (int64_t)timeout_ms * 1000000;
    struct timespec ts = abs_ts(deadline);
    int rc = 0;
    pthread_mutex_lock(&sp->mu);
    uint64_t req = ++sp->flush_req;
    if (sp->next > sp->flush_target)
        sp->flush_target = sp->next;
    pthread_cond_signal(&sp->cv_sync);
    while (sp->flush_done < req) {
        if (deadline != INT64_MAX && now_ns() >= deadline) {
            rc = fail(RG_ETIMEDOUT, "spool: flush not done after %d ms",
                      timeout_ms);
            break;
        }
        if (deadline == INT64_MAX)
            pthread_cond_wait(&sp->cv_progress, &sp->mu);
        else
            pthread_cond_timedwait(&sp->cv_progress, &sp->mu, &ts);
    }
    if (rc == 0 && sp->failed != 0)
        rc = fail(sp->failed, "%s", sp->fail_msg);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

void rg__spool_stats(rg_spool_t *sp, rg_spool_stats_t *o)
{
    memset(o, 0, sizeof(*o));
    pthread_mutex_lock(&sp->mu);
    o->bytes = sp->bytes;
    o->max_bytes = sp->max_bytes;
    o->segments = sp->nsegs;
    o->next_lsn = sp->next;
    o->appended = sp->st_appended;
    o->syncs = sp->st_syncs;
    o->synced_bytes = sp->st_synced_bytes;
    o->checkpoints = sp->st_ckpts;
    o->deleted_segments = sp->st_deleted;
    o->recovered = sp->st_recovered;
    o->truncated_bytes = sp->st_truncated;
    o->has_last = sp->has_last;
    o->last_producer_id = sp->last_pid;
    o->last_seq = sp->last_seq;
    /* relaxed under mu: stored under mu */
    o->durable_lsn = atomic_load_explicit(&sp->durable_lsn,
                                          memory_order_relaxed);
    pthread_mutex_lock(&sp->done_mu);
    o->done_lsn = sp->done_lsn;
    uint64_t below = sp->done_lsn < sp->next ? sp->next - sp->done_lsn : 0;
    o->pending = below - sp->bits_set;
    pthread_mutex_unlock(&sp->done_mu);
    pthread_mutex_unlock(&sp->mu);
}

/* ---- cursors ------------------------------------------------------------- */

rg_spool_cursor_t *rg__spool_cursor_new(rg_spool_t *sp)
{
    rg_spool_cursor_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->sp = sp;
    c->fd = -1;
    pthread_mutex_lock(&sp->mu);
    sp->cursors++;
    pthread_mutex_lock(&sp->done_mu);
    c->from = sp->done_lsn;
    pthread_mutex_unlock(&sp->done_mu);
    pthread_mutex_unlock(&sp->mu);
    return c;
}

void rg__spool_cursor_destroy(rg_spool_cursor_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->sp->mu);
    c->sp->cursors--;
    pthread_mutex_unlock(&c->sp->mu);
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c);
}

/*
 * Points the cursor at the segment holding its next LSN. Returns 1 when it
 * has a record to read, 0 when there is none on disk yet, or RG_EIO.
 */
static int cursor_seek(rg_spool_cursor_t *c)
{
    rg_spool_t *sp = c->sp;
    uint64_t want = c->fd >= 0 ? c->lsn : c->from;
    int rc = 0;
    pthread_mutex_lock(&sp->mu);
    size_t i = 0;
    while (i < sp->nsegs && sp->segs[i].end <= want)
        i++;
    if (i == sp->nsegs) {
        rc = 0;
    } else if (c->fd >= 0 && sp->segs[i].base == c->seg_base) {
        c->seg_end = sp->segs[i].end; /* the newest segment grew */
        rc = 1;
    } else {
        /* opened under mu: the syncer unlinks only segments it has
         * already taken off the list (checkpoint_and_delete()) */
        char name[SEG_NAME_DIGITS + 8];
        seg_name(name, sizeof(name), sp->segs[i].base);
        int fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = fail(RG_EIO, "spool: cannot open %s/%s: %s", sp->dir, name,
                      strerror(errno));
        } else {
            if (c->fd >= 0)
                close(c->fd);
            c->fd = fd;
            c->seg_base = sp->segs[i].base;
            c->seg_end = sp->segs[i].end;
            c->lsn = c->seg_base;
            c->off = SEG_HDR;
            c->blen = 0;
            c->boff = 0;
            /* LSNs below the first listed segment were deleted: done */
            if (c->from < c->seg_base)
                c->from = c->seg_base;
            rc = 1;
        }
    }
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

/* Makes file bytes [off, off + n) readable in the buffer; returns a
 * pointer to them, or NULL when the file is shorter (or on error). */
static const uint8_t *cursor_bytes(rg_spool_cursor_t *c, uint64_t off,
                                   size_t n)
{
    if (off >= c->boff && off + n <= c->boff + c->blen)
        return c->buf + (off - c->boff);
    size_t want = n > READ_CHUNK ? n : READ_CHUNK;
    if (want > c->cap) {
        uint8_t *b = realloc(c->buf, want);
        if (b == NULL)
            return NULL;
        c->buf = b;
        c->cap = want;
    }
    ssize_t r;
    do {
        r = pread(c->fd, c->buf, c->cap, (off_t)off);
    } while (r < 0 && errno == EINTR);
    c->boff = off;
    c->blen = r > 0 ? (size_t)r : 0;
    return c->blen >= n ? c->buf : NULL;
}

int rg__spool_cursor_next(rg_spool_cursor_t *c, rg_spool_rec_t *rec)
{
    rg_spool_t *sp = c->sp;
    for (;;) {
        /* acquire pairs with R1's release in commit_half(): the records
         * below it are in the file before we read it */
        uint64_t durable = rg__spool_durable_lsn(sp);
        uint64_t at = c->fd >= 0 ? c->lsn : c->from;
        if (at < c->from)
            at = c->from;
        if (at >= durable)
            return 0;
        if (c->fd < 0 || c->lsn >= c->seg_end) {
            int rc = cursor_seek(c);
            if (rc <= 0)
                return rc;
            if (c->lsn >= c->seg_end)
                return 0;
        }
        char name[SEG_NAME_DIGITS + 8];
        const uint8_t *p = cursor_bytes(c, c->off, REC_HDR);
        uint64_t len = 0;
        const char *why = "a record cut short";
        if (p != NULL) {
            size_t n = REC_HDR + (size_t)get32(p + 48) + get32(p + 52);
            p = cursor_bytes(c, c->off, n);
            if (p != NULL)
                why = record_check(p, n, c->lsn, &len);
        }
        if (why != NULL) {
            seg_name(name, sizeof(name), c->seg_base);
            return fail(RG_EIO,
                        "spool: %s/%s: record %" PRIu64 " at offset %" PRIu64
                        " read back with %s",
                        sp->dir, name, c->lsn, c->off, why);
        }
        uint64_t l = c->lsn++;
        c->off += len;
        if (l < c->from)
            continue;
        pthread_mutex_lock(&sp->done_mu);
        bool done = done_test(sp, l);
        pthread_mutex_unlock(&sp->done_mu);
        if (done)
            continue;
        record_decode(p, rec);
        return 1;
    }
}

/* ---- open and recovery --------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The base LSNs of the segment files, sorted; *n of them. */
static int list_segments(rg_spool_t *sp, uint64_t **out, size_t *n)
{
    int fd = dup(sp->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    rewinddir(d);
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        size_t len = strlen(s);
        if (len != SEG_NAME_DIGITS + strlen(SEG_SUFFIX) ||
            strcmp(s + SEG_NAME_DIGITS, SEG_SUFFIX) != 0)
            continue;
        uint64_t base = 0;
        bool ok = true;
        for (int i = 0; i < SEG_NAME_DIGITS && ok; i++) {
            ok = s[i] >= '0' && s[i] <= '9' &&
                 base <= (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10;
            base = base * 10 + (uint64_t)(s[i] - '0');
        }
        if (!ok)
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, cap * sizeof(*v));
            if (nv == NULL) {
                free(v);
                closedir(d);
                errno = ENOMEM;
                return -1;
            }
            v = nv;
        }
        v[cnt++] = base;
    }
    closedir(d);
    if (cnt > 0)
        qsort(v, cnt, sizeof(*v), cmp_u64);
    *out = v;
    *n = cnt;
    return 0;
}

/*
 * Scans segment `base`: checks its header and every record, numbering
 * from base. The newest segment (`newest`) is cut at its first bad record
 * (the torn tail) unless that record is below `floor`, the durable LSN the
 * checkpoint saw (then it was fdatasynced: corruption); any other segment
 * must be whole (S2). Fills *s. Returns 0, 1 when the newest segment has
 * no valid header (it was being created: the caller removes it), or
 * RG_EIO with errstr.
 */
static int scan_segment(rg_spool_t *sp, uint64_t base, bool newest,
                        uint64_t floor, struct seg *s, char *errstr,
                        size_t n)
{
    char name[SEG_NAME_DIGITS + 8];
    seg_name(name, sizeof(name), base);
    int fd = openat(sp->dirfd, name, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(errstr, n, "spool: cannot open %s/%s: %s", sp->dir, name,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return RG_EIO;
    }
    uint64_t size = (uint64_t)st.st_size;
    rg_spool_cursor_t c = {.sp = sp, .fd = fd};
    int rc = 0;
    const uint8_t *h = cursor_bytes(&c, 0, SEG_HDR);
    if (h == NULL || !segment_header_ok(h, base)) {
        if (newest && floor <= base) {
            sp->st_truncated += size;
            rc = 1;
        } else {
            snprintf(errstr, n,
                     "spool: %s/%s has a bad header, and %s, so this is "
                     "corruption, not a torn write; move the file away to "
                     "open the spool",
                     sp->dir, name,
                     newest ? "its records were fdatasynced (done.ckpt "
                              "says so)"
                            : "it is not the newest segment");
            rc = RG_EIO;
        }
        goto out;
    }
    uint64_t off = SEG_HDR, lsn = base;
    const char *why = NULL;
    while (off < size) {
        uint64_t avail = size - off, len = 0;
        const uint8_t *p = cursor_bytes(&c, off, REC_HDR);
        if (p == NULL) {
            why = "a record header cut short";
            break;
        }
        uint64_t want = REC_HDR + (uint64_t)get32(p + 48) + get32(p + 52);
        if (want > avail) {
            why = "a record cut short";
            break;
        }
        p = cursor_bytes(&c, off, (size_t)want);
        if (p == NULL) {
            why = "a record that cannot be read";
            break;
        }
        why = record_check(p, avail, lsn, &len);
        if (why != NULL)
            break;
        sp->has_last = true;
        sp->last_pid = get64(p + 16);
        sp->last_seq = get64(p + 24);
        off += len;
        lsn++;
    }
    if (why != NULL && (!newest || lsn < floor)) {
        snprintf(errstr, n,
                 "spool: %s/%s: record %" PRIu64 " at offset %" PRIu64
                 " has %s, and %s, so this is corruption, not a torn "
                 "write; move the file away to open the spool",
                 sp->dir, name, lsn, off, why,
                 newest ? "it was fdatasynced (done.ckpt says so)"
                        : "it is not in the newest segment");
        rc = RG_EIO;
        goto out;
    }
    if (off < size) {
        /* the torn tail: keep every record before it */
        if (ftruncate(fd, (off_t)off) != 0) {
            snprintf(errstr, n, "spool: cannot truncate %s/%s: %s", sp->dir,
                     name, strerror(errno));
            rc = RG_EIO;
            goto out;
        }
        sp->st_truncated += size - off;
    }
    /* after a process crash the records may be in the page cache only */
    if (newest && fdatasync(fd) != 0) {
        snprintf(errstr, n, "spool: fdatasync %s/%s: %s", sp->dir, name,
                 strerror(errno));
        rc = RG_EIO;
        goto out;
    }
    *s = (struct seg){.base = base, .end = lsn, .bytes = off};
out:
    free(c.buf);
    close(fd);
    return rc;
}

static int recover(rg_spool_t *sp, char *errstr, size_t n)
{
    if (unlinkat(sp->dirfd, CKPT_TMP, 0) != 0 && errno != ENOENT) {
        snprintf(errstr, n, "spool: cannot remove %s/%s: %s", sp->dir,
                 CKPT_TMP, strerror(errno));
        return RG_EIO;
    }
    uint64_t d, was_durable;
    uint8_t *bits = NULL;
    uint64_t nbits;
    int rc = checkpoint_read(sp, &d, &was_durable, &bits, &nbits, errstr, n);
    if (rc != 0)
        return rc;
    uint64_t *bases = NULL;
    size_t nb = 0;
    if (list_segments(sp, &bases, &nb) != 0) {
        snprintf(errstr, n, "spool: cannot list %s: %s", sp->dir,
                 strerror(errno));
        free(bits);
        return RG_EIO;
    }
    sp->segs_cap = nb + 16;
    sp->segs = calloc(sp->segs_cap, sizeof(*sp->segs));
    if (sp->segs == NULL) {
        snprintf(errstr, n, "spool: out of memory");
        rc = RG_ENOMEM;
        goto out;
    }
    bool changed = false;
    for (size_t i = 0; i < nb; i++) {
        struct seg s;
        rc = scan_segment(sp, bases[i], i + 1 == nb, was_durable, &s,
                          errstr, n);
        if (rc == 1) {
            char name[SEG_NAME_DIGITS + 8];
            seg_name(name, sizeof(name), bases[i]);
            if (unlinkat(sp->dirfd, name, 0) != 0) {
                snprintf(errstr, n, "spool: cannot remove %s/%s: %s",
                         sp->dir, name, strerror(errno));
                rc = RG_EIO;
                goto out;
            }
            changed = true;
            rc = 0;
            continue;
        }
        if (rc != 0)
            goto out;
        if (sp->nsegs > 0 && s.base != sp->segs[sp->nsegs - 1].end) {
            snprintf(errstr, n,
                     "spool: %s: segment %" PRIu64 " does not follow the "
                     "one before it (ends at %" PRIu64 "): a segment file is "
                     "missing or foreign",
                     sp->dir, s.base, sp->segs[sp->nsegs - 1].end);
            rc = RG_EIO;
            goto out;
        }
        sp->segs[sp->nsegs++] = s;
    }
    uint64_t end = sp->nsegs ? sp->segs[sp->nsegs - 1].end : d;
    if (end < was_durable) {
        snprintf(errstr, n,
                 "spool: %s: records up to LSN %" PRIu64 " were fdatasynced "
                 "(done.ckpt says so) but the segments end at %" PRIu64
                 ": segment files are missing",
                 sp->dir, was_durable, end);
        rc = RG_EIO;
        goto out;
    }
    uint64_t done = d;
    if (sp->nsegs > 0 && sp->segs[0].base > done)
        done = sp->segs[0].base; /* deleted after the checkpoint: done */
    if (done > end)
        end = done; /* all on disk is done; LSNs go on after D (S4) */
    /* segments the checkpoint shows done (a crash before their unlink) */
    size_t k = 0;
    while (k < sp->nsegs && sp->segs[k].end <= done) {
        char name[SEG_NAME_DIGITS + 8];
        seg_name(name, sizeof(name), sp->segs[k].base);
        if (unlinkat(sp->dirfd, name, 0) != 0) {
            snprintf(errstr, n, "spool: cannot remove %s/%s: %s", sp->dir,
                     name, strerror(errno));
            rc = RG_EIO;
            goto out;
        }
        changed = true;
        k++;
    }
    memmove(sp->segs, sp->segs + k, (sp->nsegs - k) * sizeof(*sp->segs));
    sp->nsegs -= k;
    if (changed && fsync(sp->dirfd) != 0) {
        snprintf(errstr, n, "spool: fsync %s: %s", sp->dir, strerror(errno));
        rc = RG_EIO;
        goto out;
    }
    sp->next = end;
    sp->bytes = 0;
    for (size_t i = 0; i < sp->nsegs; i++)
        sp->bytes += sp->segs[i].bytes;
    if (sp->nsegs > 0) {
        struct seg *t = &sp->segs[sp->nsegs - 1];
        char name[SEG_NAME_DIGITS + 8];
        seg_name(name, sizeof(name), t->base);
        sp->wfd = openat(sp->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (sp->wfd < 0) {
            snprintf(errstr, n, "spool: cannot open %s/%s: %s", sp->dir,
                     name, strerror(errno));
            rc = RG_EIO;
            goto out;
        }
        sp->tail_open = t->end == end;
        sp->tail_bytes = t->bytes;
    }
    sp->done_lsn = done;
    sp->done_hi = done;
    for (uint64_t i = 0; i < nbits; i++) {
        uint64_t l = d + i;
        if (l >= done && l < end && ((bits[i / 8] >> (i % 8)) & 1)) {
            rc = done_set(sp, l);
            if (rc != 0) {
                snprintf(errstr, n, "spool: out of memory");
                goto out;
            }
        }
    }
    sp->done_dirty = false;
    sp->ckpt_lsn = d;
    sp->ckpt_durable = was_durable;
    sp->st_recovered = end - sp->done_lsn - sp->bits_set;
    /* not shared yet: pthread_create() of the syncer publishes them */
    atomic_init(&sp->next_lsn, end);
    atomic_init(&sp->durable_lsn, end);
out:
    free(bits);
    free(bases);
    return rc;
}

rg_spool_t *rg__spool_open(const rg_spool_opts_t *opts, char *errstr,
                           size_t errstr_size)
{
    char tmp[1];
    if (errstr == NULL || errstr_size == 0) {
        errstr = tmp;
        errstr_size = sizeof(tmp);
    }
    errstr[0] = '\0';
    int rc = check_opts(opts, errstr, errstr_size);
    if (rc != 0) {
        errno = EINVAL;
        return NULL;
    }
    rg_spool_t *sp = calloc(1, sizeof(*sp));
    if (sp == NULL || (sp->dir = strdup(opts->dir)) == NULL) {
        free(sp);
        snprintf(errstr, errstr_size, "spool: out of memory");
        errno = ENOMEM;
        return NULL;
    }
    sp->dirfd = sp->lockfd = sp->wfd = -1;
    sp->seg_bytes = (uint64_t)opts->segment_bytes;
    sp->max_bytes = (uint64_t)opts->max_bytes;
    sp->sync_bytes = (uint64_t)opts->sync_bytes;
    sp->sync_ns = opts->sync_ms * 1000000;
    sp->ckpt_ns = opts->checkpoint_ms * 1000000;
    sp->half[0].roll_off = sp->half[1].roll_off = NO_ROLL;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_mutex_init(&sp->done_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sp->cv_sync, &ca);
    pthread_cond_init(&sp->cv_progress, &ca);
    pthread_condattr_destroy(&ca);
    int err = 0;
    if (mkdir_p(sp->dir) != 0 ||
        (sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (sp->lockfd = openat(sp->dirfd, LOCK_NAME,
                             O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0) {
        err = errno;
        snprintf(errstr, errstr_size, "spool: cannot open %s: %s", sp->dir,
                 strerror(err));
        goto fail;
    }
    if (flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
        err = errno == EWOULDBLOCK ? EBUSY : errno;
        snprintf(errstr, errstr_size,
                 err == EBUSY ? "spool: %s is in use by another producer"
                              : "spool: cannot lock %s: %s",
                 sp->dir, strerror(err));
        goto fail;
    }
    rc = recover(sp, errstr, errstr_size);
    if (rc != 0) {
        err = rc == RG_ENOMEM ? ENOMEM : EIO;
        goto fail;
    }
    err = pthread_create(&sp->syncer, NULL, syncer_main, sp);
    if (err != 0) {
        snprintf(errstr, errstr_size, "spool: cannot start the syncer: %s",
                 strerror(err));
        goto fail;
    }
    sp->syncer_started = true;
    return sp;
fail:
    rg__spool_close(sp);
    errno = err;
    return NULL;
}

void rg__spool_close(rg_spool_t *sp)
{
    if (sp == NULL)
        return;
    if (sp->syncer_started) {
        pthread_mutex_lock(&sp->mu);
        assert(sp->cursors == 0);
        sp->closing = true;
        pthread_cond_signal(&sp->cv_sync);
        pthread_cond_broadcast(&sp->cv_progress);
        pthread_mutex_unlock(&sp->mu);
        pthread_join(sp->syncer, NULL);
    }
    if (sp->wfd >= 0)
        close(sp->wfd);
    if (sp->lockfd >= 0)
        close(sp->lockfd); /* releases the flock */
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    for (int i = 0; i < 2; i++)
        free(sp->half[i].data);
    free(sp->segs);
    free(sp->bits);
    pthread_cond_destroy(&sp->cv_sync);
    pthread_cond_destroy(&sp->cv_progress);
    pthread_mutex_destroy(&sp->mu);
    pthread_mutex_destroy(&sp->done_mu);
    free(sp->dir);
    free(sp);
}
