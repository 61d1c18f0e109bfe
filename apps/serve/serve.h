/*
 * serve.h - `railgun serve`: the like service's stateless HTTP/1.1 JSON
 * front (the read and write API of the CQRS pair), as a library that the
 * command, `railgun bench serve` and the tests start in-process.
 *
 * API (JSON bodies; errors are one text/plain line saying why)
 *   POST /v1/likes            {"video_id":V,"user_id":U,"state":0|1}
 *                             (optional "ts" in epoch ms; the compact
 *                             binary form of the wire format too), or a
 *                             batch: a JSON array of such objects. Each
 *                             like is validated exactly as the wire
 *                             format says (like_codec.h), re-encoded in
 *                             the canonical JSON (ts stamped by serve
 *                             when absent) and produced keyed by video.
 *                             async: 202 {"accepted":N} once the producer
 *                             took every like; sync: 200 {"applied":N}
 *                             once each like's transaction committed.
 *                             400 bad like (the batch index and reason),
 *                             413 body or batch too large, 503 the
 *                             producer's queue full (Retry-After; a batch
 *                             says how many it took) or the database
 *                             down (sync).
 *   GET /v1/videos/V/likes    {"video_id":V,"count":N}
 *   GET /v1/videos/V/likes/U  {"video_id":V,"user_id":U,"state":0|1}
 *   GET /v1/likes?video_ids=V1,V2,...[&user_id=U]
 *                             {"videos":[{"video_id":V1,"count":N
 *                             [,"state":S]},...]} in the order asked
 *   GET /                     the page: videos, counts, like buttons
 *   GET /healthz, /readyz, /metrics, /stats.json
 *   Reads answer X-Cache: hit (every value from Redis), miss (some from
 *   the database), off (serve.cache=false or mode sync), down (Redis
 *   unreachable: the database answered).
 *
 * Reads are cache-aside (railgun/redis_cache.h): Redis first, the
 * database on a miss (serve_db.h: its own connections, one snapshot with
 * the version per batch), then a versioned fill. Writes never touch the
 * cache: the job updates it after each commit (cache_job.h).
 *
 * Bounds: memory is bounded by serve.max.connections x (32 KiB headers +
 * serve.body.max.bytes) plus per-thread scratch sized by serve.batch.max
 * and serve.read.max; slow clients are cut after
 * serve.request.timeout.ms (railgun/http.h has the listener's defenses).
 *
 * Threads: serve.threads HTTP threads; each owns one slot (a database
 * reader, a Redis handle, the sync writer, scratch) while it handles a
 * request. new/start/destroy on one controlling thread; stats from any.
 */
#ifndef RG_SERVE_H
#define RG_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "railgun/conf.h"
#include "railgun/redis_cache.h"

/* The rows of serve.* and cache.* (layer "serve", scope app). */
const rg_conf_table_t *rg_serve_conf_table(void);

/* The cache.redis.* properties of conf as options (strings owned by
 * conf). */
void rg_serve_cache_options(const rg_conf_t *conf,
                            rg_cache_redis_options_t *o);

/* True when conf sets cache.redis.host or cache.redis.socket: then
 * `railgun run` updates the cache (cache_job.h). */
bool rg_serve_cache_wanted(const rg_conf_t *conf);

typedef struct rg_serve_s rg_serve_t;

typedef struct rg_serve_stats_s {
    uint64_t requests;        /* answered by the API handlers */
    uint64_t likes_accepted;  /* async: taken by the producer */
    uint64_t likes_applied;   /* sync: committed */
    uint64_t likes_rejected;  /* 400: bad likes (batches count once) */
    uint64_t busy;            /* 503: producer full, database down */
    uint64_t delivered;       /* async: delivery reports, success */
    uint64_t delivery_failed; /* ... and failures (after 202) */
    uint64_t sync_retries;    /* sync: deadlocks/lock waits retried */
    uint64_t reads;           /* keys read */
    uint64_t db_reads;        /* of which from the database */
    uint64_t db_errors;       /* failed database reads */
    rg_cache_redis_stats_t cache; /* summed over the slots */
} rg_serve_stats_t;

/*
 * Builds the service from conf (copied): checks the properties, opens one
 * database reader per thread (and one sync writer in mode sync), the
 * producer in mode async, the Redis handles, and binds serve.listen.
 * NULL with a one-line reason in errstr; *err (may be NULL) gets the
 * RG_E* code (RG_EINVAL/RG_ERANGE/RG_ENOENT for bad configuration or a
 * missing table, RG_EIO for a server that cannot be reached or a port in
 * use). A missing cache.version.table with serve.cache=true is not an
 * error: reads then go to the database only, and a warning says so.
 */
rg_serve_t *rg_serve_new(const rg_conf_t *conf, int *err, char *errstr,
                         size_t size);

/* Starts serving. 0 or RG_ESTATE/RG_ESYS with errstr. */
int rg_serve_start(rg_serve_t *s, char *errstr, size_t size);

/* The bound port. */
uint16_t rg_serve_port(const rg_serve_t *s);

/* True when reads use the cache (serve.cache, mode async, the version
 * table present). */
bool rg_serve_caching(const rg_serve_t *s);

void rg_serve_stats(rg_serve_t *s, rg_serve_stats_t *out);

/* Stops the listener (handlers in flight finish), flushes the producer
 * (up to 10 s), frees; NULL is fine. */
void rg_serve_destroy(rg_serve_t *s);

/* The page at / (embedded at build time from apps/serve/page.html). */
extern const char rg_serve_page[];
extern const size_t rg_serve_page_len;

#endif /* RG_SERVE_H */
