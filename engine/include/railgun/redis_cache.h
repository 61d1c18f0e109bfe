/*
 * redis_cache.h - the read side's cache in Redis (librailgun_redis): the
 * versioned entries that `railgun serve` reads first and fills on a miss,
 * and that the job (`railgun run`) updates after each committed epoch.
 *
 *   rg_cache_redis_options_t o;
 *   rg_cache_redis_options_init(&o);            // then host, port, ...
 *   rg_cache_redis_t *c = rg_cache_redis_new(&o, err, sizeof(err));
 *   // reader (serve): Redis first, the database on a miss, then fill
 *   rg_cache_redis_get(c, RG_CACHE_COUNT, keys, n, values, hit);
 *   rg_cache_redis_fill(c, RG_CACHE_COUNT, db_version, keys, values, n);
 *   // updater (the job), after epoch `version` committed
 *   rg_cache_redis_apply(c, version, videos, n, staged, m, read_counts, db);
 *   rg_cache_redis_destroy(c);
 *
 * Versions. The database keeps one number, `version`, that every epoch
 * transaction bumps (a `railgun_meta` row written in the same
 * transaction as the epoch's rows). A value read from the database is
 * tagged with the version read in the same snapshot; the job tags an
 * epoch's values with that epoch's version. Entries are "VERSION:VALUE"
 * strings; every write is a Lua script that keeps the newer version.
 *
 * Keys (prefix = o.prefix):
 *   <prefix>c:<video>         count of a video, "V:COUNT"
 *   <prefix>s:<video>:<user>  a user's state for a video, "V:0|1"
 *   <prefix>floor             entries below this version are not valid
 *   <prefix>applied           the newest epoch version the job started
 *                             to write; absent: no job keeps the cache
 *   Entries expire after o.ttl_ms; floor and applied never expire (run
 *   the cache with `maxmemory-policy volatile-lru`/`volatile-ttl` or
 *   `noeviction`, so eviction takes entries only).
 *
 * The rules (NOTES-serve.md has the argument, case by case):
 *   read    an entry is a hit iff its version >= floor.
 *   fill    (reader, version W read from the database) stores an entry
 *           iff `applied` exists, W >= applied, W >= floor, and the key
 *           has no entry or an older one. So a fill that read the
 *           database before an epoch the job already began to write is
 *           dropped: it can never bring back a value the job replaced,
 *           even when the job's entry has expired or was evicted since.
 *   apply   (job, epoch V committed) first raises applied to V, then
 *           rewrites the entries of the epoch's videos (counts read back
 *           from the database after the commit, tagged with the version
 *           of that read) and pairs (states from the epoch's rows, tagged
 *           V) that exist in Redis with an older version; absent entries
 *           are left absent (the next reader fills them). Values below
 *           floor are never written.
 *   resync  whenever an updater (re)connects, and after any failed or
 *           dropped apply, it raises floor and applied to the database's
 *           current version before it writes again: whatever the job
 *           could not write (Redis down, a crash between commit and
 *           cache update, a restart that lost or restored entries) is
 *           older than floor, so it reads as a miss.
 * Together: a hit never shows a value the database may roll back (the
 * job writes after commit, readers fill from committed snapshots), and
 * no race between fills and applies leaves an entry older than the
 * database once the job's updates are through.
 *
 * Redis unreachable: calls fail fast with RG_EIO. The first failure
 * after a good connection dials again at the next call (a killed
 * connection, a restarted server); after two in a row the handle does not
 * dial for a backoff that doubles from o.timeout_ms up to
 * o.backoff_max_ms (calls in between return RG_EIO at once), so a
 * reader falls through to the database without waiting on a dead Redis.
 * The updater counts what it could not write (stats.skipped) and resyncs
 * at the next call that reaches Redis (rg_cache_redis_tick() lets an idle
 * job notice a restarted Redis too).
 *
 * Bounds: versions below 2^53 (Lua numbers), keys per script call at most
 * 256 (longer calls are split), every command bounded by o.timeout_ms.
 *
 * Threads: a handle is one connection: one thread at a time (give each
 * reader thread its own handle); rg_cache_redis_stats() from any thread.
 * The read callback of apply/tick runs on the calling thread.
 */
#ifndef RAILGUN_REDIS_CACHE_H
#define RAILGUN_REDIS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/export.h"
#include "railgun/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_cache_redis_s rg_cache_redis_t;

typedef struct rg_cache_redis_options_s {
    const char *host;         /* default "127.0.0.1" */
    int port;                 /* default 6379 */
    const char *socket;       /* unix socket; NULL or "": TCP */
    const char *user;         /* ACL user; NULL or "": default user */
    const char *password;     /* NULL or "": no AUTH */
    const char *prefix;       /* key prefix; default "railgun:cache:" */
    int64_t ttl_ms;           /* entries' TTL (1..2^31); default 60000 */
    unsigned timeout_ms;      /* connect and command bound (1..60000);
                                 default 100 */
    unsigned backoff_max_ms;  /* longest pause before dialing again after
                                 a failure; default 1000 */
} rg_cache_redis_options_t;

/* Fills o with the defaults. */
RG_EXPORT void rg_cache_redis_options_init(rg_cache_redis_options_t *o);

/*
 * A handle for options o (strings copied). Nothing is connected yet: the
 * first call dials. NULL with a one-line reason in errstr (an option out
 * of range, a prefix over 200 bytes, a user without a password, no
 * address), or when out of memory.
 */
RG_EXPORT rg_cache_redis_t *
rg_cache_redis_new(const rg_cache_redis_options_t *o, char *errstr,
                   size_t errstr_size);

/* Closes the connection and frees; NULL is fine. */
RG_EXPORT void rg_cache_redis_destroy(rg_cache_redis_t *c);

/* What an entry holds. */
typedef enum rg_cache_kind_e {
    RG_CACHE_COUNT = 0, /* key: video; value: its like count */
    RG_CACHE_STATE = 1  /* key: (video, user); value: 0 or 1 */
} rg_cache_kind_t;

typedef struct rg_cache_key_s {
    int64_t video;
    int64_t user; /* RG_CACHE_STATE only */
} rg_cache_key_t;

/*
 * Looks up keys[0..n) in one round trip: hit[i] true and values[i] set
 * for a valid entry (version >= floor), hit[i] false otherwise. Returns
 * 0, RG_EINVAL (bad kind, n > 4096), or RG_EIO (Redis unreachable, in
 * backoff, or a malformed reply: every hit[i] false). Blocks up to
 * timeout_ms (twice when it dials).
 */
RG_EXPORT int rg_cache_redis_get(rg_cache_redis_t *c, rg_cache_kind_t kind,
                                 const rg_cache_key_t *keys, size_t n,
                                 int64_t *values, bool *hit);

/*
 * A reader's fill: values[0..n) were read from the database in one
 * snapshot whose version is `version`. Stores each under the rules above
 * (one script call per 256 keys). Returns how many entries it stored (0
 * when the rules refused them all: no job keeps the cache, an epoch was
 * written since the read, newer entries), RG_EINVAL or RG_EIO.
 */
RG_EXPORT int rg_cache_redis_fill(rg_cache_redis_t *c, rg_cache_kind_t kind,
                                  int64_t version,
                                  const rg_cache_key_t *keys,
                                  const int64_t *values, size_t n);

/*
 * Reads the counts of videos[0..n) and the database's version in ONE
 * snapshot (n may be 0: the version only). counts[i] is 0 for a video
 * without a row. Returns 0 or a negative RG_E* code with a one-line
 * reason in errstr. Runs on the thread that called apply/tick.
 */
typedef int (rg_cache_read_cb)(void *opaque, const int64_t *videos,
                               size_t n, int64_t *counts, int64_t *version,
                               char *errstr, size_t errstr_size);

/*
 * The updater's write of committed epoch `version`: videos[0..n) are the
 * videos whose count changed, staged[0..m) the epoch's rows (key video,
 * key2 user, value state; for a pair that appears twice the later row
 * wins). Resyncs first when needed, raises applied, reads the counts of
 * the videos that are cached back through read (in chunks, each with the
 * version of its snapshot), and rewrites the cached entries. Call it for
 * each committed epoch in commit order, from one thread per handle.
 * Returns 0 (written, or nothing to write: an epoch below floor is
 * superseded by a resync), RG_EIO (Redis failed: what was not written is
 * counted in stats.skipped and the next call resyncs), the read
 * callback's error (same), RG_EINVAL, RG_ENOMEM.
 */
RG_EXPORT int rg_cache_redis_apply(rg_cache_redis_t *c, int64_t version,
                                   const int64_t *videos, size_t n,
                                   const rg_row_t *staged, size_t m,
                                   rg_cache_read_cb *read, void *opaque);

/*
 * The updater's heartbeat while no epoch comes: reconnects (after the
 * backoff) and resyncs when needed, else PINGs, so an idle job finds a
 * restarted Redis and raises floor over entries a restore brought back.
 * Returns 0, RG_EIO or the read callback's error.
 */
RG_EXPORT int rg_cache_redis_tick(rg_cache_redis_t *c, rg_cache_read_cb *read,
                                  void *opaque);

/* Makes the next apply/tick resync (an updater that dropped an epoch
 * without calling apply for it). Same thread rules as apply. */
RG_EXPORT void rg_cache_redis_invalidate(rg_cache_redis_t *c);

typedef struct rg_cache_redis_stats_s {
    /* readers */
    uint64_t hits, misses;     /* keys looked up */
    uint64_t fills;            /* entries a fill stored */
    uint64_t fills_refused;    /* ... and refused by the rules */
    /* updater */
    uint64_t applies;          /* epochs written */
    uint64_t updated;          /* entries rewritten */
    uint64_t superseded;       /* epochs below floor, not written */
    uint64_t skipped;          /* keys + rows not written: Redis or the
                                  read-back failed */
    uint64_t resyncs;          /* floor raises */
    int64_t floor;             /* the floor last seen or set; -1: none */
    /* both */
    uint64_t errors;           /* failed calls (RG_EIO) */
    uint64_t connects;         /* connections opened */
    bool connected;
    char last_error[160];      /* the last failure, "" if none */
} rg_cache_redis_stats_t;

/* A snapshot of the handle's counters; any thread. */
RG_EXPORT void rg_cache_redis_stats(rg_cache_redis_t *c,
                                    rg_cache_redis_stats_t *out);

/* The key of an entry (for tests and tools): prefix + "c:VIDEO" or
 * "s:VIDEO:USER" into buf; returns its length, or 0 when buf is too
 * small. */
RG_EXPORT size_t rg_cache_redis_key(const rg_cache_redis_t *c,
                                    rg_cache_kind_t kind,
                                    const rg_cache_key_t *key, char *buf,
                                    size_t size);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_REDIS_CACHE_H */
