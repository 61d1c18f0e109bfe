/*
 * peers_spool.c - the degraded mode's spool append rate with fsync group
 * commit, against writing the same records by hand:
 *   railgun:          rg__spool_append() for every record from the calling
 *                     thread (the syncer thread writes and fdatasyncs each
 *                     sync_bytes batch), then rg__spool_sync() for the last
 *                     partial batch: every record is durable when a pass
 *                     ends.
 *   railgun_burst32:  the same through rg__spool_append_burst(), 32
 *                     records per call (one lock hold), as a producer's
 *                     send_batch() would.
 *   write_fdatasync:  the same records, encoded with the same format and
 *                     checksum (rg__spool_record_encode()) into a buffer,
 *                     one write() + one fdatasync() per batch of the same
 *                     sync_bytes, on the calling thread.
 * Both start on fresh space every pass: between passes (untimed) the
 * spool's records are marked done and its segments deleted, the peer's
 * file truncated. The records are like events: a 7-digit key and a
 * 53-byte JSON value, from a pool of 4096 distinct ones, 116 bytes each
 * on disk.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>
#include "peers.h"
#include "spool.h"

#define POOL 4096
#define KEY_LEN 7
#define VALUE_LEN 53

struct rgb_spool {
    int impl;
    char dir[512];
    char fs[32];
    char err[320];
    uint64_t sync_bytes;
    char keys[POOL][KEY_LEN + 1];
    char values[POOL][VALUE_LEN + 1];
    uint64_t seq;
    /* railgun */
    rg_spool_t *sp;
    /* write_fdatasync */
    int fd;
    uint8_t *buf;
    size_t len;
    uint64_t syncs;
    uint64_t lsn;
};

static const char *fs_name(const char *dir, char *out, size_t n)
{
    struct statfs st;
    const char *name = "unknown";
    if (statfs(dir, &st) == 0) {
        switch ((unsigned long)st.f_type) {
        case 0xEF53: name = "ext4"; break;       /* ext2/3/4 share it */
        case 0x58465342: name = "xfs"; break;
        case 0x9123683E: name = "btrfs"; break;
        case 0x01021994: name = "tmpfs"; break;
        case 0x794C7630: name = "overlayfs"; break;
        default: break;
        }
    }
    snprintf(out, n, "%s", name);
    return out;
}

rgb_spool *rgb_spool_open(int impl, uint64_t sync_bytes, char *errbuf,
                          size_t errlen)
{
    rgb_spool *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->impl = impl;
    s->fd = -1;
    s->sync_bytes = sync_bytes;
    const char *root = getenv("RG_BENCH_DIR");
    if (root == NULL || !*root)
        root = getenv("TMPDIR");
    if (root == NULL || !*root)
        root = "/tmp";
    snprintf(s->dir, sizeof(s->dir), "%s/rg-bench-spool-XXXXXX", root);
    if (mkdtemp(s->dir) == NULL) {
        snprintf(errbuf, errlen, "mkdtemp %s: %s", s->dir, strerror(errno));
        free(s);
        return NULL;
    }
    fs_name(s->dir, s->fs, sizeof(s->fs));
    for (int i = 0; i < POOL; i++) {
        unsigned video = 1000000u + (unsigned)i * 2654435761u % 9000000u;
        unsigned user = 1000000u + (unsigned)i * 40503u % 9000000u;
        snprintf(s->keys[i], sizeof(s->keys[i]), "%07u", video);
        snprintf(s->values[i], sizeof(s->values[i]),
                 "{\"video_id\": %07u, \"user_id\": %07u, \"state\": %d}",
                 video, user, i & 1);
    }
    if (impl != RGB_SPOOL_WRITE_FDATASYNC) {
        rg_spool_opts_t o;
        rg__spool_opts_default(&o);
        o.dir = s->dir;
        o.sync_bytes = (int64_t)sync_bytes;
        o.max_bytes = 4ll << 30;
        s->sp = rg__spool_open(&o, errbuf, errlen);
        if (s->sp == NULL) {
            rgb_spool_close(s);
            return NULL;
        }
    } else {
        char path[600];
        snprintf(path, sizeof(path), "%s/by-hand.seg", s->dir);
        s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
                     O_CLOEXEC, 0640);
        s->buf = malloc(sync_bytes + 4096);
        if (s->fd < 0 || s->buf == NULL) {
            snprintf(errbuf, errlen, "open %s: %s", path, strerror(errno));
            rgb_spool_close(s);
            return NULL;
        }
        rg__spool_segment_header(s->buf, 0);
        s->len = RG_SPOOL_SEG_HDR_BYTES;
    }
    return s;
}

uint64_t rgb_spool_record_bytes(const rgb_spool *s)
{
    (void)s;
    return rg__spool_record_bytes(KEY_LEN, VALUE_LEN);
}

static void msg_at(rgb_spool *s, uint64_t seq, rg_spool_msg_t *m)
{
    size_t i = seq % POOL;
    *m = (rg_spool_msg_t){.key = s->keys[i], .key_len = KEY_LEN,
                          .value = s->values[i], .value_len = VALUE_LEN,
                          .producer_id = 1, .seq = seq,
                          .ts_ms = 1700000000000 + (int64_t)seq,
                          .partition = -1};
}

static int flush_batch(rgb_spool *s)
{
    const uint8_t *p = s->buf;
    size_t n = s->len;
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(s->err, sizeof(s->err), "write: %s", strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    if (fdatasync(s->fd) != 0) {
        snprintf(s->err, sizeof(s->err), "fdatasync: %s", strerror(errno));
        return -1;
    }
    s->len = 0;
    s->syncs++;
    return 0;
}

int rgb_spool_run(rgb_spool *s, uint64_t n)
{
    rg_spool_msg_t m;
    if (s->impl == RGB_SPOOL_RAILGUN_BURST32) {
        rg_spool_msg_t b[32];
        for (uint64_t i = 0; i < n;) {
            size_t k = n - i < 32 ? (size_t)(n - i) : 32;
            for (size_t j = 0; j < k; j++)
                msg_at(s, s->seq + j, &b[j]);
            size_t sent = 0;
            while (sent < k) {
                uint64_t first;
                int rc = rg__spool_append_burst(s->sp, b + sent, k - sent,
                                                &first, -1);
                if (rc < 0) {
                    snprintf(s->err, sizeof(s->err), "%s",
                             rg__spool_last_error());
                    return -1;
                }
                sent += (size_t)rc;
            }
            s->seq += k;
            i += k;
        }
        if (n > 0 && rg__spool_sync(s->sp, -1) != 0) {
            snprintf(s->err, sizeof(s->err), "%s", rg__spool_last_error());
            return -1;
        }
        return 0;
    }
    if (s->impl == RGB_SPOOL_RAILGUN) {
        uint64_t lsn;
        for (uint64_t i = 0; i < n; i++) {
            msg_at(s, s->seq++, &m);
            if (rg__spool_append(s->sp, &m, &lsn, -1) != 0) {
                snprintf(s->err, sizeof(s->err), "%s",
                         rg__spool_last_error());
                return -1;
            }
        }
        /* the last batch now, as the peer writes its last at once */
        if (n > 0 && rg__spool_sync(s->sp, -1) != 0) {
            snprintf(s->err, sizeof(s->err), "%s", rg__spool_last_error());
            return -1;
        }
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        msg_at(s, s->seq++, &m);
        s->len += rg__spool_record_encode(s->buf + s->len, &m, s->lsn++);
        if (s->len >= s->sync_bytes && flush_batch(s) != 0)
            return -1;
    }
    return s->len > 0 ? flush_batch(s) : 0;
}

int rgb_spool_reset(rgb_spool *s)
{
    if (s->impl != RGB_SPOOL_WRITE_FDATASYNC) {
        rg_spool_stats_t st;
        rg__spool_stats(s->sp, &st);
        for (uint64_t l = st.done_lsn; l < st.next_lsn; l++)
            rg__spool_mark_done(s->sp, l);
        if (rg__spool_flush(s->sp, -1) != 0) {
            snprintf(s->err, sizeof(s->err), "%s", rg__spool_last_error());
            return -1;
        }
        return 0;
    }
    if (ftruncate(s->fd, 0) != 0) {
        snprintf(s->err, sizeof(s->err), "ftruncate: %s", strerror(errno));
        return -1;
    }
    return 0;
}

uint64_t rgb_spool_syncs(rgb_spool *s)
{
    if (s->impl == RGB_SPOOL_WRITE_FDATASYNC)
        return s->syncs;
    rg_spool_stats_t st;
    rg__spool_stats(s->sp, &st);
    return st.syncs;
}

const char *rgb_spool_error(const rgb_spool *s)
{
    return s->err;
}

const char *rgb_spool_fs(const rgb_spool *s)
{
    return s->fs;
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

void rgb_spool_close(rgb_spool *s)
{
    if (s == NULL)
        return;
    rg__spool_close(s->sp);
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    nftw(s->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(s);
}
