/*
 * test_spool.c - the producer's durable spool: records come back exactly
 * as appended and in order, across segments and restarts; a torn last
 * record (the file cut at every byte offset of it, and a record in the
 * middle cut and followed by garbage) is detected, the records before it
 * kept and appending resumes; corruption of durable data is refused, not
 * truncated; a full spool fails the append with a clear error and loses
 * nothing it accepted; done marks in any order delete whole segments and
 * survive restarts, and never outlive a record that was not durable;
 * concurrent appenders' records are all there exactly once; the group
 * commit really calls fdatasync (wrapped: the test links with
 * -Wl,--wrap=fdatasync) and a durable ticket is always covered by one;
 * a child killed with SIGKILL loses none of its durable records.
 *
 * Every test works in its own directory under $TMPDIR (or /tmp), removed
 * at the end, and at exit if a test failed before its end.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "railgun/error.h"
#include "spool.h"

#ifdef RG_TEST_MINI
#define SCALE 1   /* TSan: about 10x slower */
#else
#define SCALE 10
#endif

/* ---- fdatasync, wrapped: what each inode was synced up to ---------------- */

int __real_fdatasync(int fd);

#define MAX_SYNCED 256
static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    ino_t ino;
    off_t size;
    uint64_t calls;
} synced[MAX_SYNCED];
static int nsynced;

int __wrap_fdatasync(int fd)
{
    int rc = __real_fdatasync(fd);
    struct stat st;
    if (rc == 0 && fstat(fd, &st) == 0) {
        pthread_mutex_lock(&sync_mu);
        int i = 0;
        while (i < nsynced && synced[i].ino != st.st_ino)
            i++;
        if (i == nsynced && nsynced < MAX_SYNCED) {
            synced[i].ino = st.st_ino;
            synced[i].size = 0;
            synced[i].calls = 0;
            nsynced++;
        }
        if (i < nsynced) {
            if (st.st_size > synced[i].size)
                synced[i].size = st.st_size;
            synced[i].calls++;
        }
        pthread_mutex_unlock(&sync_mu);
    }
    return rc;
}

static void synced_reset(void)
{
    pthread_mutex_lock(&sync_mu);
    nsynced = 0;
    pthread_mutex_unlock(&sync_mu);
}

/* Size the file with this inode had at its last fdatasync; calls in *n. */
static off_t synced_size(ino_t ino, uint64_t *n)
{
    off_t s = -1;
    pthread_mutex_lock(&sync_mu);
    for (int i = 0; i < nsynced; i++)
        if (synced[i].ino == ino) {
            s = synced[i].size;
            if (n)
                *n = synced[i].calls;
        }
    pthread_mutex_unlock(&sync_mu);
    return s;
}

/* ---- temp dirs ----------------------------------------------------------- */

#define MAX_ROOTS 8
static char tmp_roots[MAX_ROOTS][256];

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void rm_rf(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void rm_roots(void)
{
    for (int i = 0; i < MAX_ROOTS; i++)
        if (tmp_roots[i][0])
            rm_rf(tmp_roots[i]);
}

/* A fresh directory for this test, removed by done_root() or at exit. */
static const char *new_root(void)
{
    static int registered;
    if (!registered) {
        atexit(rm_roots);
        registered = 1;
    }
    const char *t = getenv("TMPDIR");
    /* a free slot (the mini runner runs every test in one process) */
    int i = 0;
    while (i < MAX_ROOTS && tmp_roots[i][0] != '\0')
        i++;
    if (i == MAX_ROOTS)
        abort();
    char *p = tmp_roots[i];
    snprintf(p, sizeof(tmp_roots[0]), "%s/rg-spool-XXXXXX",
             t && *t ? t : "/tmp");
    cr_assert_not_null(mkdtemp(p), "mkdtemp: %s", strerror(errno));
    return p;
}

static void done_root(const char *p)
{
    rm_rf(p);
    for (int i = 0; i < MAX_ROOTS; i++)
        if (tmp_roots[i] == p)
            tmp_roots[i][0] = '\0';
}

/* ---- helpers ------------------------------------------------------------- */

static rg_spool_opts_t opts_for(const char *dir, int64_t seg, int64_t max,
                                int64_t sync_ms, int64_t sync_bytes)
{
    rg_spool_opts_t o;
    rg__spool_opts_default(&o);
    o.dir = dir;
    o.segment_bytes = seg;
    o.max_bytes = max;
    o.sync_ms = sync_ms;
    o.sync_bytes = sync_bytes;
    o.checkpoint_ms = 5;
    return o;
}

static rg_spool_t *must_open(const rg_spool_opts_t *o)
{
    char err[512];
    rg_spool_t *sp = rg__spool_open(o, err, sizeof(err));
    cr_assert_not_null(sp, "open: %s", err);
    return sp;
}

/* Value of record (pid, seq): its length varies with seq; every byte
 * depends on both, so a mixed-up record cannot pass for another. */
static uint32_t value_len(uint64_t seq, uint32_t base)
{
    return base + (uint32_t)(seq * 7919 % 97);
}

static void fill_value(uint8_t *v, uint32_t n, uint64_t pid, uint64_t seq)
{
    uint64_t x = pid * 0x9E3779B97F4A7C15ull ^ (seq + 1) * 0xBF58476D1CE4E5B9ull;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x >> 29;
        x *= 0x94D049BB133111EBull;
        v[i] = (uint8_t)(x >> 56);
    }
}

static uint64_t append_one(rg_spool_t *sp, uint64_t pid, uint64_t seq,
                           uint32_t vbase)
{
    char key[32];
    uint8_t val[8192];
    uint32_t vl = value_len(seq, vbase);
    cr_assert_leq(vl, sizeof(val));
    int kl = snprintf(key, sizeof(key), "k%" PRIu64, seq % 1000);
    fill_value(val, vl, pid, seq);
    rg_spool_msg_t m = {.key = key, .key_len = (uint32_t)kl, .value = val,
                        .value_len = vl, .producer_id = pid, .seq = seq,
                        .ts_ms = (int64_t)seq * 3 - 1000,
                        .partition = (int32_t)(seq % 5) - 1};
    uint64_t lsn = UINT64_MAX;
    int rc = rg__spool_append(sp, &m, &lsn, 10000);
    cr_assert_eq(rc, 0, "append: %s", rg__spool_last_error());
    return lsn;
}

/* True when r is exactly what append_one(pid, seq, vbase) appended. */
static bool rec_is(const rg_spool_rec_t *r, uint64_t pid, uint64_t seq,
                   uint32_t vbase)
{
    char key[32];
    uint8_t val[8192];
    uint32_t vl = value_len(seq, vbase);
    int kl = snprintf(key, sizeof(key), "k%" PRIu64, seq % 1000);
    fill_value(val, vl, pid, seq);
    return r->msg.producer_id == pid && r->msg.seq == seq &&
           r->msg.ts_ms == (int64_t)seq * 3 - 1000 &&
           r->msg.partition == (int32_t)(seq % 5) - 1 &&
           r->msg.key_len == (uint32_t)kl &&
           memcmp(r->msg.key, key, (size_t)kl) == 0 &&
           r->msg.value_len == vl && memcmp(r->msg.value, val, vl) == 0;
}

/* Replays everything not done; checks it is records with seq = lsn of
 * producer `pid` (skipping those in `skip`, if given), in order; returns
 * how many. */
static uint64_t replay_check(rg_spool_t *sp, uint64_t pid, uint32_t vbase,
                             uint64_t first, const bool *skip)
{
    rg_spool_cursor_t *c = rg__spool_cursor_new(sp);
    cr_assert_not_null(c);
    rg_spool_rec_t r;
    uint64_t n = 0, want = first;
    int rc;
    while ((rc = rg__spool_cursor_next(c, &r)) == 1) {
        while (skip != NULL && skip[want])
            want++;
        cr_assert_eq(r.lsn, want, "record %" PRIu64 " where %" PRIu64
                     " was due", r.lsn, want);
        cr_assert(rec_is(&r, pid, r.lsn, vbase), "record %" PRIu64
                  " differs from what was appended", r.lsn);
        want++;
        n++;
    }
    cr_assert_eq(rc, 0, "cursor: %s", rg__spool_last_error());
    rg__spool_cursor_destroy(c);
    return n;
}

static char *path_of(const char *dir, const char *name)
{
    static _Thread_local char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

static char *seg_path(const char *dir, uint64_t base)
{
    char name[64];
    snprintf(name, sizeof(name), "%020" PRIu64 ".seg", base);
    return path_of(dir, name);
}

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".seg") != NULL;
    closedir(d);
    return n;
}

static uint8_t *read_file(const char *p, size_t *n)
{
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    cr_assert_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *n = (size_t)st.st_size;
    return b;
}

static void write_file(const char *p, const uint8_t *b, size_t n)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
    cr_assert_eq(write(fd, b, n), (ssize_t)n);
    close(fd);
}

static uint64_t rec_size(uint64_t seq, uint32_t vbase)
{
    char key[32];
    int kl = snprintf(key, sizeof(key), "k%" PRIu64, seq % 1000);
    return rg__spool_record_bytes((uint32_t)kl, value_len(seq, vbase));
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- format -------------------------------------------------------------- */

Test(spool, crc32c_is_castagnoli)
{
    /* the check value of CRC-32C (RFC 3720 B.4; "123456789") */
    cr_assert_eq(rg__crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    cr_assert_eq(rg__crc32c(0, zeros, 32), 0x8A9136AAu);
    /* continuing equals one pass, at every split */
    const char *s = "the quick brown fox jumps over the lazy dog, twice!";
    size_t n = strlen(s);
    for (size_t k = 0; k <= n; k++)
        cr_assert_eq(rg__crc32c(rg__crc32c(0, s, k), s + k, n - k),
                     rg__crc32c(0, s, n));
}

Test(spool, records_round_trip_across_restart)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 1 << 20, 1, 4096);
    rg_spool_t *sp = must_open(&o);
    for (uint64_t i = 0; i < 50; i++)
        cr_assert_eq(append_one(sp, 77, i, 0), i);
    /* an empty key and value, and extreme fields */
    rg_spool_msg_t m = {.key = NULL, .key_len = 0, .value = NULL,
                        .value_len = 0, .producer_id = UINT64_MAX,
                        .seq = UINT64_MAX, .ts_ms = INT64_MIN,
                        .partition = INT32_MAX};
    uint64_t lsn;
    cr_assert_eq(rg__spool_append(sp, &m, &lsn, 0), 0);
    cr_assert_eq(lsn, 50);
    cr_assert_eq(rg__spool_wait(sp, lsn, 10000), 0);
    rg__spool_close(sp);
    sp = must_open(&o);
    rg_spool_stats_t st;
    rg__spool_stats(sp, &st);
    cr_assert_eq(st.next_lsn, 51);
    cr_assert_eq(st.recovered, 51);
    cr_assert_eq(st.truncated_bytes, 0);
    cr_assert(st.has_last && st.last_producer_id == UINT64_MAX &&
              st.last_seq == UINT64_MAX);
    rg_spool_cursor_t *c = rg__spool_cursor_new(sp);
    rg_spool_rec_t r;
    for (uint64_t i = 0; i < 50; i++) {
        cr_assert_eq(rg__spool_cursor_next(c, &r), 1);
        cr_assert(rec_is(&r, 77, i, 0));
    }
    cr_assert_eq(rg__spool_cursor_next(c, &r), 1);
    cr_assert(r.lsn == 50 && r.msg.key_len == 0 && r.msg.value_len == 0 &&
              r.msg.producer_id == UINT64_MAX && r.msg.ts_ms == INT64_MIN &&
              r.msg.partition == INT32_MAX);
    cr_assert_eq(rg__spool_cursor_next(c, &r), 0);
    rg__spool_cursor_destroy(c);
    rg__spool_close(sp);
    done_root(root);
}

/* ---- torn tails ---------------------------------------------------------- */

/* Builds a one-segment spool of n records of producer 1 (closed), and
 * returns its segment's bytes and each record's start offset. */
static uint8_t *pristine(const char *dir, int n, uint32_t vbase,
                         uint64_t *starts, size_t *size)
{
    rg_spool_opts_t o = opts_for(dir, 1 << 20, 4 << 20, 0, 1);
    rg_spool_t *sp = must_open(&o);
    uint64_t off = RG_SPOOL_SEG_HDR_BYTES;
    for (int i = 0; i < n; i++) {
        append_one(sp, 1, (uint64_t)i, vbase);
        starts[i] = off;
        off += rec_size((uint64_t)i, vbase);
    }
    starts[n] = off;
    rg__spool_close(sp);
    uint8_t *b = read_file(seg_path(dir, 0), size);
    cr_assert_eq(*size, off);
    rm_rf(dir);
    return b;
}

/* Writes the first `cut` bytes of seg (+ garbage) as the only segment of
 * a fresh spool in dir, opens it and checks the records 0..keep-1 are
 * there, nothing else, and `trunc` bytes were cut; then appends one more
 * and checks it follows them after another restart. */
static void torn_case(const char *dir, const uint8_t *seg, size_t cut,
                      const uint8_t *garbage, size_t glen, uint64_t keep,
                      uint64_t keep_end, uint32_t vbase)
{
    mkdir(dir, 0750);
    uint8_t *b = malloc(cut + glen + 1);
    memcpy(b, seg, cut);
    if (glen)
        memcpy(b + cut, garbage, glen);
    write_file(seg_path(dir, 0), b, cut + glen);
    free(b);
    rg_spool_opts_t o = opts_for(dir, 1 << 20, 4 << 20, 0, 1);
    rg_spool_t *sp = must_open(&o);
    rg_spool_stats_t st;
    rg__spool_stats(sp, &st);
    cr_assert_eq(st.next_lsn, keep, "cut at %zu (+%zu garbage): %" PRIu64
                 " records kept, %" PRIu64 " expected", cut, glen,
                 st.next_lsn, keep);
    cr_assert_eq(st.truncated_bytes, cut + glen - keep_end,
                 "cut at %zu (+%zu)", cut, glen);
    cr_assert_eq(replay_check(sp, 1, vbase, 0, NULL), keep);
    struct stat fs;
    cr_assert_eq(stat(seg_path(dir, 0), &fs), 0);
    cr_assert_eq((uint64_t)fs.st_size, keep_end, "file cut back to the "
                 "last whole record");
    /* appending resumes right after the last whole record */
    cr_assert_eq(append_one(sp, 1, keep, vbase), keep);
    rg__spool_close(sp);
    sp = must_open(&o);
    cr_assert_eq(replay_check(sp, 1, vbase, 0, NULL), keep + 1);
    rg__spool_stats(sp, &st);
    cr_assert_eq(st.truncated_bytes, 0);
    rg__spool_close(sp);
    rm_rf(dir);
}

Test(spool, torn_last_record_at_every_byte_offset)
{
    const char *root = new_root();
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/s", root);
    uint64_t st[6];
    size_t size;
    uint8_t *seg = pristine(dir, 5, 40, st, &size);
    /* every cut inside the last record: record 4 is gone, 0..3 kept */
    for (uint64_t cut = st[4]; cut < st[5]; cut++)
        torn_case(dir, seg, cut, NULL, 0, 4, st[4], 40);
    /* the whole file: nothing torn */
    torn_case(dir, seg, st[5], NULL, 0, 5, st[5], 40);
    free(seg);
    done_root(root);
}

Test(spool, torn_middle_record_followed_by_garbage)
{
    const char *root = new_root();
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/s", root);
    uint64_t st[11];
    size_t size;
    uint8_t *seg = pristine(dir, 10, 20, st, &size);
    uint8_t rnd[300], zeros[4096] = {0};
    uint64_t x = 12345;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        rnd[i] = (uint8_t)(x >> 56);
    }
    /* a whole, valid record in the wrong place (record 7 after a cut in
     * record 5): its checksum holds, its LSN does not */
    const uint8_t *r7 = seg + st[7];
    size_t r7n = st[8] - st[7];
    for (uint64_t cut = st[5]; cut < st[6]; cut++) {
        torn_case(dir, seg, cut, rnd, sizeof(rnd), 5, st[5], 20);
        torn_case(dir, seg, cut, zeros, sizeof(zeros), 5, st[5], 20);
        torn_case(dir, seg, cut, r7, r7n, 5, st[5], 20);
    }
    /* records after a flipped bit in record 5 go with it (the newest
     * segment, and no checkpoint says they were durable) */
    uint8_t *flip = malloc(size);
    memcpy(flip, seg, size);
    flip[st[5] + 60] ^= 0x10;
    torn_case(dir, flip, st[5], flip + st[5], size - st[5], 5, st[5], 20);
    free(flip);
    free(seg);
    done_root(root);
}

Test(spool, torn_new_segment_header_is_dropped)
{
    const char *root = new_root();
    /* fill segment 0 until a record goes into segment N */
    rg_spool_opts_t o = opts_for(root, 65536, 1 << 20, 0, 1);
    rg_spool_t *sp = must_open(&o);
    uint64_t i = 0;
    rg_spool_stats_t s;
    do {
        append_one(sp, 1, i++, 1000);
        cr_assert_eq(rg__spool_flush(sp, 10000), 0);
        rg__spool_stats(sp, &s);
    } while (s.segments < 2);
    uint64_t second = i - 1; /* base of the second segment */
    rg__spool_close(sp);
    size_t n;
    uint8_t *b = read_file(seg_path(root, second), &n);
    /* the checkpoint says the second segment's first record was
     * fdatasynced: a torn header there is corruption */
    write_file(seg_path(root, second), b, RG_SPOOL_SEG_HDR_BYTES - 1);
    char err[512];
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert(strstr(err, "bad header") && strstr(err, "fdatasynced"), "%s",
              err);
    /* a crash before any checkpoint saw it durable: torn, dropped */
    cr_assert_eq(unlink(path_of(root, "done.ckpt")), 0);
    for (size_t cut = 0; cut <= RG_SPOOL_SEG_HDR_BYTES; cut++) {
        write_file(seg_path(root, second), b, cut);
        sp = must_open(&o);
        rg__spool_stats(sp, &s);
        cr_assert_eq(s.next_lsn, second, "cut at %zu", cut);
        cr_assert_eq(s.segments, cut == RG_SPOOL_SEG_HDR_BYTES ? 2u : 1u,
                     "a torn header removes the segment; a whole one "
                     "stays (empty)");
        cr_assert_eq(replay_check(sp, 1, 1000, 0, NULL), second);
        rg__spool_close(sp);
    }
    /* and appending goes on into a new second segment */
    sp = must_open(&o);
    append_one(sp, 1, second, 1000);
    rg__spool_close(sp);
    sp = must_open(&o);
    cr_assert_eq(replay_check(sp, 1, 1000, 0, NULL), second + 1);
    rg__spool_close(sp);
    free(b);
    done_root(root);
}

Test(spool, corruption_of_durable_records_is_refused)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 1 << 20, 0, 1);
    rg_spool_t *sp = must_open(&o);
    rg_spool_stats_t s;
    uint64_t i = 0;
    do {
        append_one(sp, 1, i++, 1000);
        rg__spool_stats(sp, &s);
    } while (s.segments < 3 || s.next_lsn < 150);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0); /* the checkpoint too */
    rg__spool_close(sp);
    char err[512];

    /* a sealed segment: refused, and left as it was */
    size_t n;
    uint8_t *b = read_file(seg_path(root, 0), &n);
    b[RG_SPOOL_SEG_HDR_BYTES + 70] ^= 1;
    write_file(seg_path(root, 0), b, n);
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert_eq(errno, EIO);
    cr_assert(strstr(err, "00000000000000000000.seg") &&
              strstr(err, "corruption"), "%s", err);
    struct stat fs;
    stat(seg_path(root, 0), &fs);
    cr_assert_eq((size_t)fs.st_size, n);
    b[RG_SPOOL_SEG_HDR_BYTES + 70] ^= 1;
    write_file(seg_path(root, 0), b, n);
    free(b);

    /* the newest segment, below the durable LSN in done.ckpt: refused */
    sp = must_open(&o);
    rg__spool_stats(sp, &s);
    rg__spool_close(sp);
    DIR *d = opendir(root);
    struct dirent *e;
    uint64_t newest = 0;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".seg")) {
            uint64_t v = strtoull(e->d_name, NULL, 10);
            newest = v > newest ? v : newest;
        }
    closedir(d);
    b = read_file(seg_path(root, newest), &n);
    b[n - 3] ^= 0x40; /* the last record: durable per the checkpoint */
    write_file(seg_path(root, newest), b, n);
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert_eq(errno, EIO);
    cr_assert(strstr(err, "fdatasynced"), "%s", err);
    b[n - 3] ^= 0x40;
    write_file(seg_path(root, newest), b, n);
    free(b);

    /* a corrupt checkpoint: refused, with what to do */
    b = read_file(path_of(root, "done.ckpt"), &n);
    b[17] ^= 1;
    write_file(path_of(root, "done.ckpt"), b, n);
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert_eq(errno, EIO);
    cr_assert(strstr(err, "done.ckpt") && strstr(err, "checksum"), "%s",
              err);
    b[17] ^= 1;
    write_file(path_of(root, "done.ckpt"), b, n);
    free(b);

    /* a missing middle segment: refused */
    char keep[512];
    d = opendir(root);
    uint64_t mid = UINT64_MAX;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".seg")) {
            uint64_t v = strtoull(e->d_name, NULL, 10);
            if (v != 0 && v != newest)
                mid = v;
        }
    closedir(d);
    cr_assert_neq(mid, UINT64_MAX);
    snprintf(keep, sizeof(keep), "%s", seg_path(root, mid));
    cr_assert_eq(rename(keep, path_of(root, "away")), 0);
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert(strstr(err, "does not follow"), "%s", err);
    cr_assert_eq(rename(path_of(root, "away"), keep), 0);

    /* all whole again: everything is there */
    sp = must_open(&o);
    cr_assert_eq(replay_check(sp, 1, 1000, 0, NULL), s.next_lsn);
    rg__spool_close(sp);
    done_root(root);
}

/* ---- bounds and options -------------------------------------------------- */

Test(spool, full_spool_fails_clearly_and_keeps_everything)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 131072, 1, 8192);
    rg_spool_t *sp = must_open(&o);
    uint64_t accepted = 0;
    int rc;
    for (;;) {
        char key[32];
        uint8_t val[8192];
        uint32_t vl = value_len(accepted, 1500);
        int kl = snprintf(key, sizeof(key), "k%" PRIu64, accepted % 1000);
        fill_value(val, vl, 3, accepted);
        rg_spool_msg_t m = {.key = key, .key_len = (uint32_t)kl,
                            .value = val, .value_len = vl, .producer_id = 3,
                            .seq = accepted,
                            .ts_ms = (int64_t)accepted * 3 - 1000,
                            .partition = (int32_t)(accepted % 5) - 1};
        uint64_t lsn;
        rc = rg__spool_append(sp, &m, &lsn, 10000);
        if (rc != 0)
            break;
        cr_assert_eq(lsn, accepted);
        accepted++;
        cr_assert_lt(accepted, 1000u, "never full");
    }
    cr_assert_eq(rc, RG_EFULL);
    const char *why = rg__spool_last_error();
    cr_assert(strstr(why, "full") && strstr(why, "fallback.spool.max.bytes") &&
              strstr(why, "nothing was dropped"), "%s", why);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    cr_assert_leq(s.bytes, 131072u);
    cr_assert_eq(s.next_lsn, accepted, "a refused append takes no LSN");
    /* refused again: a full spool stays full until records are done */
    {
        char key[32];
        uint8_t val[8192];
        uint32_t vl = value_len(accepted, 1500);
        int kl = snprintf(key, sizeof(key), "k%" PRIu64, accepted % 1000);
        fill_value(val, vl, 3, accepted);
        rg_spool_msg_t m = {.key = key, .key_len = (uint32_t)kl,
                            .value = val, .value_len = vl, .producer_id = 3,
                            .seq = accepted};
        uint64_t lsn;
        cr_assert_eq(rg__spool_append(sp, &m, &lsn, 1000), RG_EFULL);
    }
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg__spool_close(sp);

    /* everything accepted is there after a restart */
    sp = must_open(&o);
    rg_spool_cursor_t *c = rg__spool_cursor_new(sp);
    rg_spool_rec_t r;
    uint64_t n = 0;
    while (rg__spool_cursor_next(c, &r) == 1) {
        cr_assert(rec_is(&r, 3, n, 1500), "record %" PRIu64, n);
        cr_assert_eq(r.lsn, n);
        n++;
    }
    rg__spool_cursor_destroy(c);
    cr_assert_eq(n, accepted);
    /* done marks on the first segment give its space back */
    rg__spool_stats(sp, &s);
    cr_assert_geq(s.segments, 2);
    for (uint64_t l = 0; l < accepted; l++)
        cr_assert_eq(rg__spool_mark_done(sp, l), 0);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.segments, 0);
    cr_assert_eq(s.bytes, 0);
    cr_assert_eq(append_one(sp, 3, 0, 1500), accepted);
    rg__spool_close(sp);
    done_root(root);
}

Test(spool, bad_options_and_records_are_refused_clearly)
{
    const char *root = new_root();
    char err[512];
    rg_spool_opts_t o = opts_for(root, 65536, 100000, 1, 4096);
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert_eq(errno, EINVAL);
    cr_assert(strstr(err, "fallback.spool.max.bytes"), "%s", err);
    o = opts_for(root, 1000, 1 << 20, 1, 4096);
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert(strstr(err, "fallback.spool.segment.bytes: 1000 is below the "
                          "minimum 65536"), "%s", err);
    o = opts_for("", 65536, 1 << 20, 1, 4096);
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert(strstr(err, "fallback.spool.dir"), "%s", err);

    /* the conf table does not have the rows yet: defaults */
    rg_conf_t *conf = rg_conf_new();
    rg_spool_opts_t d, def;
    rg__spool_opts_default(&def);
    cr_assert_eq(rg__spool_opts_from_conf(&d, conf, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert(d.segment_bytes == def.segment_bytes &&
              d.max_bytes == def.max_bytes && d.sync_ms == def.sync_ms &&
              d.sync_bytes == def.sync_bytes && d.dir[0] == '\0');
    cr_assert_eq(def.segment_bytes, 64 << 20);
    rg_conf_destroy(conf);

    /* a record larger than a segment */
    o = opts_for(root, 65536, 1 << 20, 1, 4096);
    rg_spool_t *sp = must_open(&o);
    static uint8_t big[65536];
    rg_spool_msg_t m = {.key = "k", .key_len = 1, .value = big,
                        .value_len = sizeof(big) - 80};
    uint64_t lsn;
    cr_assert_eq(rg__spool_append(sp, &m, &lsn, 0), RG_EINVAL);
    cr_assert(strstr(rg__spool_last_error(), "fallback.spool.segment.bytes"));
    m.value_len = 65536 - RG_SPOOL_SEG_HDR_BYTES - RG_SPOOL_REC_HDR_BYTES - 1;
    cr_assert_eq(rg__spool_append(sp, &m, &lsn, 0), 0, "the largest fits");
    cr_assert_eq(rg__spool_wait(sp, lsn + 1, 0), RG_ERANGE);
    cr_assert_eq(rg__spool_mark_done(sp, lsn + 1), RG_ERANGE);

    /* one producer per directory */
    cr_assert_null(rg__spool_open(&o, err, sizeof(err)));
    cr_assert_eq(errno, EBUSY);
    cr_assert(strstr(err, "in use"), "%s", err);
    rg__spool_close(sp);
    sp = must_open(&o);
    rg__spool_close(sp);
    done_root(root);
}

Test(spool, bursts_keep_order_and_stop_at_the_bound)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 131072, 1, 4096);
    rg_spool_t *sp = must_open(&o);
    enum { B = 64 };
    char keys[B][32];
    uint8_t vals[B][2048];
    rg_spool_msg_t m[B];
    uint64_t seq = 0;
    int rc = 0;
    bool partial = false;
    for (;;) {
        for (int i = 0; i < B; i++) {
            uint64_t q = seq + (uint64_t)i;
            uint32_t vl = value_len(q, 900);
            int kl = snprintf(keys[i], sizeof(keys[i]), "k%" PRIu64, q % 1000);
            fill_value(vals[i], vl, 6, q);
            m[i] = (rg_spool_msg_t){.key = keys[i], .key_len = (uint32_t)kl,
                                    .value = vals[i], .value_len = vl,
                                    .producer_id = 6, .seq = q,
                                    .ts_ms = (int64_t)q * 3 - 1000,
                                    .partition = (int32_t)(q % 5) - 1};
        }
        uint64_t first = UINT64_MAX;
        rc = rg__spool_append_burst(sp, m, B, &first, 10000);
        if (rc < 0)
            break;
        cr_assert_eq(first, seq, "a burst's LSNs follow the last append");
        cr_assert_gt(rc, 0);
        cr_assert_leq(rc, B);
        partial |= rc < B; /* stopped at a full half (sync.bytes 4096) */
        seq += (uint64_t)rc;
        cr_assert_lt(seq, 10000u, "never full");
    }
    cr_assert(partial, "bursts are cut where a half fills");
    cr_assert_eq(rc, RG_EFULL, "%s", rg__spool_last_error());
    cr_assert(strstr(rg__spool_last_error(), "full"));
    uint64_t first;
    cr_assert_eq(rg__spool_append_burst(sp, m, 0, &first, 0), RG_EINVAL);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.next_lsn, seq);
    rg__spool_close(sp);
    sp = must_open(&o);
    cr_assert_eq(replay_check(sp, 6, 900, 0, NULL), seq);
    rg__spool_close(sp);
    done_root(root);
}

/* A write that fails (here: past RLIMIT_FSIZE, EFBIG) fails the spool
 * closed: what was durable stays, nothing more is taken, and the next
 * open cuts the half-written batch off. */
Test(spool, a_failed_write_fails_closed_and_keeps_what_was_durable)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 1 << 20, 4 << 20, 1, 4096);
    rg_spool_t *sp = must_open(&o);
    uint64_t n = 0;
    for (; n < 100; n++)
        append_one(sp, 2, n, 200);
    cr_assert_eq(rg__spool_sync(sp, 10000), 0);
    struct stat fs;
    cr_assert_eq(stat(seg_path(root, 0), &fs), 0);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)fs.st_size + 10000; /* a few batches more */
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = 0;
    uint64_t lsn = 0, durable_before = 0;
    for (; n < 100000 && rc == 0; n++) {
        char key[32];
        uint8_t val[8192];
        uint32_t vl = value_len(n, 200);
        int kl = snprintf(key, sizeof(key), "k%" PRIu64, n % 1000);
        fill_value(val, vl, 2, n);
        rg_spool_msg_t m = {.key = key, .key_len = (uint32_t)kl,
                            .value = val, .value_len = vl, .producer_id = 2,
                            .seq = n, .ts_ms = (int64_t)n * 3 - 1000,
                            .partition = (int32_t)(n % 5) - 1};
        rc = rg__spool_append(sp, &m, &lsn, 10000);
        if (rc == 0)
            rc = rg__spool_wait(sp, lsn, 10000);
        if (rc == 0)
            durable_before = lsn + 1;
    }
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    cr_assert_eq(rc, RG_EIO, "%s", rg__spool_last_error());
    cr_assert(strstr(rg__spool_last_error(), "writing"), "%s",
              rg__spool_last_error());
    rg_spool_msg_t m = {.key = "k", .key_len = 1, .value = "v",
                        .value_len = 1};
    cr_assert_eq(rg__spool_append(sp, &m, &lsn, 0), RG_EIO,
                 "no appends after a failed write");
    cr_assert_eq(rg__spool_flush(sp, 10000), RG_EIO);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.durable_lsn, durable_before);
    rg__spool_close(sp);
    sp = must_open(&o);
    rg__spool_stats(sp, &s);
    cr_assert_geq(s.next_lsn, durable_before, "every durable record kept");
    cr_assert_eq(replay_check(sp, 2, 200, 0, NULL), s.next_lsn);
    /* and the spool takes appends again */
    cr_assert_eq(append_one(sp, 2, s.next_lsn, 200), s.next_lsn);
    rg__spool_close(sp);
    done_root(root);
}

/* ---- order, done marks --------------------------------------------------- */

Test(spool, order_holds_across_segments_and_restarts)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 64 << 20, 1, 16384);
    uint64_t seq = 0;
    for (int round = 0; round < 5; round++) {
        rg_spool_t *sp = must_open(&o);
        rg_spool_stats_t s;
        rg__spool_stats(sp, &s);
        cr_assert_eq(s.next_lsn, seq);
        if (seq > 0)
            cr_assert(s.has_last && s.last_seq == seq - 1,
                      "a restarted producer learns where it was");
        cr_assert_eq(replay_check(sp, 9, 600, 0, NULL), seq);
        for (int i = 0; i < 150; i++, seq++)
            cr_assert_eq(append_one(sp, 9, seq, 600), seq);
        rg__spool_stats(sp, &s);
        cr_assert_gt(s.segments, (uint64_t)round, "records span segments");
        rg__spool_close(sp);
    }
    rg_spool_t *sp = must_open(&o);
    cr_assert_eq(replay_check(sp, 9, 600, 0, NULL), seq);
    rg__spool_close(sp);
    done_root(root);
}

Test(spool, done_marks_delete_segments_and_survive_restarts)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 64 << 20, 1, 16384);
    rg_spool_t *sp = must_open(&o);
    const uint64_t n = 1200;
    for (uint64_t i = 0; i < n; i++)
        append_one(sp, 5, i, 700);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    uint64_t segs = s.segments;
    cr_assert_geq(segs, 6u);
    /* the first half, in a shuffled order, and every 7th record above */
    uint64_t half = n / 2;
    uint64_t *perm = malloc(half * sizeof(*perm));
    for (uint64_t i = 0; i < half; i++)
        perm[i] = i;
    uint64_t x = 99;
    for (uint64_t i = half - 1; i > 0; i--) {
        x = x * 6364136223846793005ull + 1;
        uint64_t j = (x >> 33) % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    bool *skip = calloc(n + 1, 1);
    for (uint64_t i = 0; i < half; i++) {
        cr_assert_eq(rg__spool_mark_done(sp, perm[i]), 0);
        skip[perm[i]] = true;
    }
    for (uint64_t i = half + 1; i < n; i += 7) {
        cr_assert_eq(rg__spool_mark_done(sp, i), 0);
        cr_assert_eq(rg__spool_mark_done(sp, i), 0, "twice is fine");
        skip[i] = true;
    }
    free(perm);
    /* a cursor made before the marks skips them too */
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.done_lsn, half);
    uint64_t left = n - half - (n - half - 1 + 6) / 7;
    cr_assert_eq(s.pending, left);
    cr_assert_lt(s.segments, segs, "fully done segments are deleted");
    cr_assert_eq(s.deleted_segments, segs - s.segments);
    cr_assert_eq(count_segments(root), s.segments);
    cr_assert_eq(replay_check(sp, 5, 700, half, skip), left);
    rg__spool_close(sp);

    /* after a restart: exactly what was not done */
    sp = must_open(&o);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.recovered, left);
    cr_assert_eq(replay_check(sp, 5, 700, half, skip), left);
    /* all done: every segment goes, and LSNs are not reused */
    for (uint64_t i = 0; i < n; i++)
        cr_assert_eq(rg__spool_mark_done(sp, i), 0);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg__spool_stats(sp, &s);
    cr_assert(s.segments == 0 && s.bytes == 0 && s.pending == 0);
    cr_assert_eq(count_segments(root), 0);
    rg__spool_close(sp);
    sp = must_open(&o);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.next_lsn, n);
    cr_assert_eq(s.recovered, 0);
    cr_assert_eq(append_one(sp, 5, n, 700), n);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0); /* cursors see durable */
    memset(skip, 1, n);
    skip[n] = false;
    cr_assert_eq(replay_check(sp, 5, 700, n, skip), 1);
    rg__spool_close(sp);
    free(skip);
    done_root(root);
}

Test(spool, done_marks_in_reverse_over_a_wide_window)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 16 << 20, 64 << 20, 1, 1 << 20);
    rg_spool_t *sp = must_open(&o);
    const uint64_t n = 20000 * SCALE;
    rg_spool_msg_t m = {.key = "k", .key_len = 1, .value = "v",
                        .value_len = 1};
    for (uint64_t i = 0; i < n; i++) {
        uint64_t lsn;
        m.seq = i;
        cr_assert_eq(rg__spool_append(sp, &m, &lsn, 10000), 0);
    }
    rg_spool_stats_t s;
    for (uint64_t i = n; i-- > 1;) {
        cr_assert_eq(rg__spool_mark_done(sp, i), 0);
        if (i % 4096 == 0) {
            rg__spool_stats(sp, &s);
            cr_assert_eq(s.done_lsn, 0);
            cr_assert_eq(s.pending, i);
        }
    }
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg__spool_close(sp);
    /* the bits above the watermark were checkpointed */
    sp = must_open(&o);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.recovered, 1);
    rg_spool_cursor_t *c = rg__spool_cursor_new(sp);
    rg_spool_rec_t r;
    cr_assert_eq(rg__spool_cursor_next(c, &r), 1);
    cr_assert_eq(r.lsn, 0);
    cr_assert_eq(rg__spool_cursor_next(c, &r), 0);
    rg__spool_cursor_destroy(c);
    cr_assert_eq(rg__spool_mark_done(sp, 0), 0);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.done_lsn, n, "one mark closes the whole window");
    rg__spool_close(sp);
    done_root(root);
}

/* ---- concurrency --------------------------------------------------------- */

#define NTHREADS 8

struct appender {
    rg_spool_t *sp;
    pthread_barrier_t *go;
    uint64_t pid, n;
    uint64_t *lsns;
    bool ok;
    bool waits;           /* wait for durability after every 10th */
};

static void *appender_main(void *arg)
{
    struct appender *a = arg;
    pthread_barrier_wait(a->go);
    a->ok = true;
    for (uint64_t i = 0; i < a->n; i++) {
        uint8_t val[256];
        uint32_t vl = value_len(i, 20);
        fill_value(val, vl, a->pid, i);
        char key[32];
        int kl = snprintf(key, sizeof(key), "k%" PRIu64, i % 1000);
        rg_spool_msg_t m = {.key = key, .key_len = (uint32_t)kl,
                            .value = val, .value_len = vl,
                            .producer_id = a->pid, .seq = i,
                            .ts_ms = (int64_t)i * 3 - 1000,
                            .partition = (int32_t)(i % 5) - 1};
        uint64_t lsn;
        if (rg__spool_append(a->sp, &m, &lsn, 30000) != 0 ||
            (i > 0 && lsn <= a->lsns[i - 1]) ||
            (a->waits && i % 10 == 0 &&
             rg__spool_wait(a->sp, lsn, 30000) != 0)) {
            a->ok = false;
            break;
        }
        a->lsns[i] = lsn;
    }
    return NULL;
}

Test(spool, concurrent_appenders_each_record_exactly_once)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 256 << 20, 2, 8192);
    rg_spool_t *sp = must_open(&o);
    const uint64_t n = 400 * SCALE;
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NTHREADS);
    struct appender a[NTHREADS];
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        a[t] = (struct appender){.sp = sp, .go = &go, .pid = 100 + t, .n = n,
                                 .lsns = malloc(n * sizeof(uint64_t)),
                                 .waits = t % 2 == 0};
        pthread_create(&th[t], NULL, appender_main, &a[t]);
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        cr_assert(a[t].ok, "appender %d: %s", t, rg__spool_last_error());
    }
    pthread_barrier_destroy(&go);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.next_lsn, NTHREADS * n);
    cr_assert_gt(s.segments, 1u);
    rg__spool_close(sp);

    sp = must_open(&o);
    bool *seen = calloc(NTHREADS * n, 1);
    uint64_t next_seq[NTHREADS] = {0};
    rg_spool_cursor_t *c = rg__spool_cursor_new(sp);
    rg_spool_rec_t r;
    uint64_t total = 0;
    int rc;
    while ((rc = rg__spool_cursor_next(c, &r)) == 1) {
        uint64_t t = r.msg.producer_id - 100;
        cr_assert_lt(t, (uint64_t)NTHREADS);
        cr_assert_eq(r.msg.seq, next_seq[t], "producer %" PRIu64
                     ": its records come back in its order", t);
        cr_assert(rec_is(&r, 100 + t, r.msg.seq, 20));
        cr_assert_eq(a[t].lsns[r.msg.seq], r.lsn, "the LSN its append got");
        cr_assert_not(seen[t * n + r.msg.seq]);
        seen[t * n + r.msg.seq] = true;
        next_seq[t]++;
        total++;
    }
    cr_assert_eq(rc, 0);
    rg__spool_cursor_destroy(c);
    cr_assert_eq(total, NTHREADS * n, "every record exactly once");
    rg__spool_close(sp);
    free(seen);
    for (int t = 0; t < NTHREADS; t++)
        free(a[t].lsns);
    done_root(root);
}

/* Appends, marks done and replays at once: the cursor sees every record
 * not marked, in order, and marks race neither appends nor deletions. */
struct marker {
    rg_spool_t *sp;
    _Atomic uint64_t *appended;
    _Atomic bool *stop;
    uint64_t marked;
};

static void *marker_main(void *arg)
{
    struct marker *m = arg;
    uint64_t next = 0;
    /* relaxed: the flag only ends the loop */
    while (!atomic_load_explicit(m->stop, memory_order_relaxed) ||
           next < atomic_load_explicit(m->appended, memory_order_acquire)) {
        /* acquire pairs with the appender's release: next was appended */
        uint64_t top = atomic_load_explicit(m->appended, memory_order_acquire);
        for (; next < top; next++)
            if (next % 3 != 0) { /* leave every third for the replay */
                if (rg__spool_mark_done(m->sp, next) != 0)
                    return NULL;
                m->marked++;
            }
        sched_yield();
    }
    return NULL;
}

Test(spool, marks_appends_and_replay_run_together)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 256 << 20, 1, 4096);
    rg_spool_t *sp = must_open(&o);
    _Atomic uint64_t appended = 0;
    _Atomic bool stop = false;
    struct marker mk = {.sp = sp, .appended = &appended, .stop = &stop};
    pthread_t th;
    pthread_create(&th, NULL, marker_main, &mk);
    const uint64_t n = 1000 * SCALE;
    rg_spool_cursor_t *c = rg__spool_cursor_new(sp);
    rg_spool_rec_t r;
    uint64_t replayed = 0;
    for (uint64_t i = 0; i < n; i++) {
        cr_assert_eq(append_one(sp, 4, i, 100), i);
        /* release: the marker may mark it done */
        atomic_store_explicit(&appended, i + 1, memory_order_release);
        while (rg__spool_cursor_next(c, &r) == 1) {
            cr_assert(rec_is(&r, 4, r.lsn, 100));
            if (r.lsn % 3 == 0) {
                replayed++;
                cr_assert_eq(rg__spool_mark_done(sp, r.lsn), 0);
            }
        }
    }
    atomic_store_explicit(&stop, true, memory_order_relaxed);
    pthread_join(th, NULL);
    cr_assert_eq(mk.marked, n - (n + 2) / 3);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    int rc;
    while ((rc = rg__spool_cursor_next(c, &r)) == 1) {
        cr_assert(rec_is(&r, 4, r.lsn, 100));
        cr_assert_eq(r.lsn % 3, 0, "a marked record was replayed");
        replayed++;
        cr_assert_eq(rg__spool_mark_done(sp, r.lsn), 0);
    }
    cr_assert_eq(rc, 0, "%s", rg__spool_last_error());
    rg__spool_cursor_destroy(c);
    cr_assert_eq(replayed, (n + 2) / 3);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.pending, 0);
    cr_assert_eq(s.done_lsn, n);
    cr_assert_eq(s.segments, 0, "all done, all deleted");
    rg__spool_close(sp);
    done_root(root);
}

/* ---- group commit and durability ----------------------------------------- */

Test(spool, group_commit_syncs_every_sync_bytes)
{
    const char *root = new_root();
    synced_reset();
    /* fixed-size records: 100 bytes each with a 1-byte key, 43-byte value */
    const uint64_t rec = rg__spool_record_bytes(1, 43);
    cr_assert_eq(rec, 100u);
    /* the timer never fires: only sync.bytes starts a commit */
    rg_spool_opts_t o = opts_for(root, 1 << 20, 4 << 20, 60000, 10 * 100);
    o.checkpoint_ms = 60000;
    rg_spool_t *sp = must_open(&o);
    uint8_t val[43] = {0};
    rg_spool_msg_t m = {.key = "k", .key_len = 1, .value = val,
                        .value_len = 43};
    uint64_t lsn = 0;
    /* 32 header bytes + 10 records reach 1000 at the 10th record: the
     * first batch is 10 records, every later one too (1000 bytes) */
    for (int i = 0; i < 100; i++) {
        m.seq = (uint64_t)i;
        cr_assert_eq(rg__spool_append(sp, &m, &lsn, 10000), 0);
    }
    cr_assert_eq(rg__spool_wait(sp, lsn, 10000), 0, "%s",
                 rg__spool_last_error());
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.syncs, 10, "one fdatasync per sync.bytes: %" PRIu64,
                 s.syncs);
    struct stat fs;
    cr_assert_eq(stat(seg_path(root, 0), &fs), 0);
    uint64_t calls = 0;
    cr_assert_eq(synced_size(fs.st_ino, &calls), 32 + 100 * 100);
    cr_assert_eq(calls, 10, "fdatasync really ran, once per batch: %" PRIu64,
                 calls);
    /* a partial batch waits for the timer (60 s here) or a flush */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rg__spool_append(sp, &m, &lsn, 10000), 0);
    cr_assert_eq(rg__spool_wait(sp, lsn, 50), RG_ETIMEDOUT);
    cr_assert_eq(rg__spool_durable_lsn(sp), 100);
    cr_assert_eq(rg__spool_sync(sp, 10000), 0, "sync commits it now");
    cr_assert_eq(rg__spool_wait(sp, lsn, 0), 0);
    cr_assert_eq(synced_size(fs.st_ino, &calls), 32 + 105 * 100);
    cr_assert_eq(calls, 11);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.checkpoints, 0, "sync writes no checkpoint");
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.checkpoints, 1, "flush does");
    cr_assert_eq(synced_size(fs.st_ino, &calls), 32 + 105 * 100);
    cr_assert_eq(calls, 11, "nothing was staged for the flush");
    rg__spool_close(sp);
    done_root(root);
}

Test(spool, sync_ms_bounds_the_wait_for_a_lone_record)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 1 << 20, 4 << 20, 40, 1 << 20);
    rg_spool_t *sp = must_open(&o);
    rg_spool_msg_t m = {.key = "k", .key_len = 1, .value = "v",
                        .value_len = 1};
    uint64_t lsn;
    int64_t t0 = ms_now();
    cr_assert_eq(rg__spool_append(sp, &m, &lsn, 0), 0);
    cr_assert_eq(rg__spool_wait(sp, lsn, 20000), 0);
    int64_t took = ms_now() - t0;
    /* not before the timer: sync.bytes is far away */
    cr_assert_geq(took, 35, "durable after %" PRId64 " ms", took);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.syncs, 1);
    rg__spool_close(sp);
    done_root(root);
}

struct waiter {
    rg_spool_t *sp;
    pthread_barrier_t *go;
    ino_t ino;
    uint64_t n;
    bool ok;
    char why[128];
};

/* Fixed 100-byte records in one segment: record L ends at 32 + 100 (L+1). */
static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    uint8_t val[43] = {0};
    rg_spool_msg_t m = {.key = "k", .key_len = 1, .value = val,
                        .value_len = 43};
    pthread_barrier_wait(w->go);
    w->ok = true;
    for (uint64_t i = 0; i < w->n; i++) {
        uint64_t lsn;
        if (rg__spool_append(w->sp, &m, &lsn, 30000) != 0 ||
            rg__spool_wait(w->sp, lsn, 30000) != 0) {
            snprintf(w->why, sizeof(w->why), "%s", rg__spool_last_error());
            w->ok = false;
            return NULL;
        }
        off_t s = synced_size(w->ino, NULL);
        if (s < (off_t)(32 + 100 * (lsn + 1))) {
            snprintf(w->why, sizeof(w->why),
                     "LSN %" PRIu64 " reported durable, fdatasync covered "
                     "%lld bytes", lsn, (long long)s);
            w->ok = false;
            return NULL;
        }
    }
    return NULL;
}

Test(spool, durable_tickets_are_covered_by_a_shared_fdatasync)
{
    const char *root = new_root();
    synced_reset();
    rg_spool_opts_t o = opts_for(root, 64 << 20, 256 << 20, 5, 1 << 20);
    rg_spool_t *sp = must_open(&o);
    /* the segment exists once the first record is durable */
    rg_spool_msg_t m0 = {.key = "k", .key_len = 1, .value = (uint8_t[43]){0},
                         .value_len = 43};
    uint64_t lsn;
    cr_assert_eq(rg__spool_append(sp, &m0, &lsn, 0), 0);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    struct stat fs;
    cr_assert_eq(stat(seg_path(root, 0), &fs), 0);
    enum { NW = 4 };
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NW);
    struct waiter w[NW];
    pthread_t th[NW];
    const uint64_t per = 40 * SCALE;
    for (int t = 0; t < NW; t++) {
        w[t] = (struct waiter){.sp = sp, .go = &go, .ino = fs.st_ino,
                               .n = per};
        pthread_create(&th[t], NULL, waiter_main, &w[t]);
    }
    for (int t = 0; t < NW; t++) {
        pthread_join(th[t], NULL);
        cr_assert(w[t].ok, "waiter %d: %s", t, w[t].why);
    }
    pthread_barrier_destroy(&go);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    /* group commit: waiters of one window share its fdatasync */
    cr_assert_leq(s.syncs * 2, s.appended, "%" PRIu64 " syncs for %" PRIu64
                  " appends", s.syncs, s.appended);
    rg__spool_close(sp);
    done_root(root);
}

/*
 * Children. A forked child re-executes this binary with RG_SPOOL_CHILD set
 * and runs its part from a constructor, before any test framework starts:
 * a fresh process, so the child may start the syncer thread (TSan refuses
 * threads in the child of a multi-threaded fork) and dies without running
 * the parent's exit handlers.
 */
static void child_append(const char *dir, int fd, uint64_t first);
static void child_undurable(const char *dir, int fd);

__attribute__((constructor)) static void child_hook(void)
{
    const char *role = getenv("RG_SPOOL_CHILD");
    if (role == NULL)
        return;
    const char *dir = getenv("RG_SPOOL_DIR");
    int fd = atoi(getenv("RG_SPOOL_FD"));
    if (strcmp(role, "append") == 0)
        child_append(dir, fd, strtoull(getenv("RG_SPOOL_FIRST"), NULL, 10));
    else
        child_undurable(dir, fd);
    _exit(0);
}

/* Starts a child in role `role` on dir, writing to the pipe's fd. */
static pid_t spawn(const char *role, const char *dir, int fd, uint64_t first)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid != 0)
        return pid;
    char buf[32];
    setenv("RG_SPOOL_CHILD", role, 1);
    setenv("RG_SPOOL_DIR", dir, 1);
    snprintf(buf, sizeof(buf), "%d", fd);
    setenv("RG_SPOOL_FD", buf, 1);
    snprintf(buf, sizeof(buf), "%" PRIu64, first);
    setenv("RG_SPOOL_FIRST", buf, 1);
    execl("/proc/self/exe", "test_spool", (char *)NULL);
    _exit(127);
}

/* The child appends with durability waits and reports each durable LSN on
 * the pipe; it is killed with SIGKILL wherever it is (mid-write, too). */
static void child_append(const char *dir, int fd, uint64_t first)
{
    rg_spool_opts_t o = opts_for(dir, 65536, 256 << 20, 1, 4096);
    char err[512];
    rg_spool_t *sp = rg__spool_open(&o, err, sizeof(err));
    if (sp == NULL)
        _exit(2);
    for (uint64_t i = first;; i++) {
        char key[32];
        uint8_t val[8192];
        uint32_t vl = value_len(i, 300);
        int kl = snprintf(key, sizeof(key), "k%" PRIu64, i % 1000);
        fill_value(val, vl, 8, i);
        rg_spool_msg_t m = {.key = key, .key_len = (uint32_t)kl,
                            .value = val, .value_len = vl, .producer_id = 8,
                            .seq = i, .ts_ms = (int64_t)i * 3 - 1000,
                            .partition = (int32_t)(i % 5) - 1};
        uint64_t lsn;
        if (rg__spool_append(sp, &m, &lsn, 30000) != 0 || lsn != i)
            _exit(3);
        /* every other record waits: the others ride along unwaited */
        if (i % 2 == 0) {
            if (rg__spool_wait(sp, lsn, 30000) != 0)
                _exit(4);
            if (write(fd, &lsn, sizeof(lsn)) != sizeof(lsn))
                _exit(5);
        }
    }
}

Test(spool, sigkill_loses_no_durable_record)
{
    const char *root = new_root();
    rg_spool_opts_t o = opts_for(root, 65536, 256 << 20, 1, 4096);
    uint64_t next = 0, acked_max = 0;
    bool any = false;
    for (int round = 0; round < 4; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = spawn("append", root, p[1], next);
        close(p[1]);
        uint64_t lsn, got = 0;
        const uint64_t want = 60 * SCALE + (uint64_t)round * 37;
        while (got < want && read(p[0], &lsn, sizeof(lsn)) == sizeof(lsn)) {
            acked_max = lsn;
            any = true;
            got++;
        }
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        close(p[0]);
        cr_assert(WIFSIGNALED(status), "the child failed on its own: %d",
                  WEXITSTATUS(status));
        cr_assert_eq(got, want);
        /* every durable record is there, whole and in order */
        rg_spool_t *sp = must_open(&o);
        rg_spool_stats_t s;
        rg__spool_stats(sp, &s);
        cr_assert(any && s.next_lsn > acked_max, "round %d: LSN %" PRIu64
                  " was durable, the spool ends at %" PRIu64, round,
                  acked_max, s.next_lsn);
        cr_assert_eq(replay_check(sp, 8, 300, 0, NULL), s.next_lsn);
        next = s.next_lsn;
        rg__spool_close(sp);
    }
    done_root(root);
}

static rg_spool_opts_t undurable_opts(const char *dir)
{
    rg_spool_opts_t o = opts_for(dir, 65536, 256 << 20, 60000, 1 << 20);
    o.checkpoint_ms = 1;
    return o;
}

/* Makes 5 records durable, stages 5 more, marks 1 and 6..9 done, lets
 * about 50 checkpoint passes run, reports, and waits to be killed. */
static void child_undurable(const char *dir, int fd)
{
    rg_spool_opts_t o = undurable_opts(dir);
    char err[512];
    rg_spool_t *sp = rg__spool_open(&o, err, sizeof(err));
    if (sp == NULL)
        _exit(2);
    rg_spool_msg_t m = {.key = "k", .key_len = 1, .value = "old",
                        .value_len = 3};
    uint64_t lsn;
    for (int i = 0; i < 10; i++) {
        if (rg__spool_append(sp, &m, &lsn, 0) != 0)
            _exit(3);
        if (i == 4 && rg__spool_flush(sp, 10000) != 0)
            _exit(3);
    }
    int marks[] = {1, 6, 7, 8, 9};
    for (int i = 0; i < 5; i++)
        if (rg__spool_mark_done(sp, (uint64_t)marks[i]) != 0)
            _exit(4);
    usleep(50000);
    char c = 1;
    if (write(fd, &c, 1) != 1)
        _exit(5);
    for (;;)
        pause();
}

/* Done marks for records that never became durable must not survive
 * them (S4): the child dies before its staged records are written. */
Test(spool, done_marks_never_outlive_an_undurable_record)
{
    const char *root = new_root();
    rg_spool_opts_t o = undurable_opts(root);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = spawn("undurable", root, p[1], 0);
    close(p[1]);
    char c;
    cr_assert_eq(read(p[0], &c, 1), 1, "the child failed");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(p[0]);
    rg_spool_t *sp = must_open(&o);
    rg_spool_stats_t s;
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.next_lsn, 5, "the 5 durable records are there");
    cr_assert_eq(s.recovered, 4, "the durable mark on 1 was kept");
    rg_spool_msg_t m = {.key = "k", .key_len = 1, .value = "new",
                        .value_len = 3};
    uint64_t lsn;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rg__spool_append(sp, &m, &lsn, 0), 0);
    cr_assert_eq(lsn, 9);
    cr_assert_eq(rg__spool_flush(sp, 10000), 0);
    rg__spool_close(sp);
    /* the new 5..9 took LSNs that had marks in memory: none are done */
    sp = must_open(&o);
    rg__spool_stats(sp, &s);
    cr_assert_eq(s.recovered, 9);
    rg_spool_cursor_t *cur = rg__spool_cursor_new(sp);
    rg_spool_rec_t r;
    uint64_t want[] = {0, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(rg__spool_cursor_next(cur, &r), 1);
        cr_assert_eq(r.lsn, want[i]);
        cr_assert_eq(memcmp(r.msg.value, i < 4 ? "old" : "new", 3), 0);
    }
    cr_assert_eq(rg__spool_cursor_next(cur, &r), 0);
    rg__spool_cursor_destroy(cur);
    rg__spool_close(sp);
    done_root(root);
}
