/*
 * engine.c - the engine's lifecycle: new, start, stop, destroy; its
 * counters and accessors; the log (railgun/engine.h). Runs on the
 * caller's thread.
 *
 * Invariants
 *   - state moves NEW -> RUNNING -> STOPPING -> STOPPED, only under
 *     stop_lock (rg__engine_fail() moves RUNNING -> STOPPING with a CAS);
 *     an engine starts at most once.
 *   - Stop protocol: state := STOPPING, heavy fence (F2), take every
 *     handle (CAS in_call 0 -> 2, A2, waiting while a call is inside), in
 *     epoch mode send the final barrier on every handle, then drain := 1
 *     and wake the workers; a worker exits only when drain is set and all
 *     its rings are empty; then the flusher writes through the final
 *     epoch, then the committer's last tick. A push that starts after
 *     STOPPING fails with RG_ESTOPPED (F1 in rg__dispatch_enter()).
 *   - A failed start leaves no thread running and the engine startable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "railgun/ack.h"
#include "railgun/engine.h"
#include "railgun/error.h"
#include "railgun/hash.h"
#include "railgun/ring.h"
#include "conf_props.h"
#include "engine_int.h"
#include "park.h"

unsigned rg_engine_worker_of(const rg_engine_t *e, uint64_t key)
{
    return rg__route(e, key);
}

void rg__idle_step(const rg_engine_t *e)
{
    if (e->idle_yield)
        sched_yield();
    else
        rg__cpu_relax();
}

/* idle.policy: auto spins when every busy thread can have a CPU. */
static void resolve_idle_policy(rg_engine_t *e)
{
    const char *p = rg__conf_str(e->conf, RG_P_IDLE_POLICY);
    int cpus[CPU_SETSIZE];
    int ncpu = rg__cpus_allowed(cpus, CPU_SETSIZE);
    unsigned busy = e->nworkers + e->ndispatchers + (e->epoch_mode ? 1 : 0);
    if (strcmp(p, "auto") == 0) {
        e->idle_yield = busy > (unsigned)ncpu;
        rg__log(e, RG_LOG_INFO, "idle.policy=auto: %s (%u busy threads, %d "
                "CPUs)", e->idle_yield ? "yield" : "spin", busy, ncpu);
    } else {
        e->idle_yield = strcmp(p, "yield") == 0;
    }
}

void rg__log(rg_engine_t *e, rg_log_level_t level, const char *fmt, ...)
{
    if (level <= RG_LOG_WARN)
        /* relaxed: a counter */
        atomic_fetch_add_explicit(&e->warnings, 1, memory_order_relaxed);
    void *opaque;
    rg_log_cb *cb = rg_conf_log_cb(e->conf, &opaque);
    if (cb == NULL)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    cb(opaque, level, "engine", line);
}

static void free_engine(rg_engine_t *e)
{
    rg__epoch_destroy(e);
    if (e->rings != NULL)
        for (size_t i = 0; i < (size_t)e->ndispatchers * e->nworkers; i++)
            rg_ring_destroy(e->rings[i]);
    if (e->workers != NULL)
        for (unsigned w = 0; w < e->nworkers; w++) {
            free(e->workers[w].in);
            free(e->workers[w].buf);
            rg__retry_free(&e->workers[w]);
        }
    if (e->dispatchers != NULL)
        for (unsigned d = 0; d < e->ndispatchers; d++) {
            free(e->dispatchers[d].out);
            free(e->dispatchers[d].npend);
            free(e->dispatchers[d].room);
            rg__hk_destroy(e->dispatchers[d].hk);
            if (e->dispatchers[d].route != NULL)
                rg__hkset_fini(e->dispatchers[d].route);
            free(e->dispatchers[d].route);
            free(e->dispatchers[d].force);
            free(e->dispatchers[d].mv);
            free(e->dispatchers[d].members);
            free(e->dispatchers[d].mcount);
        }
    free(e->hk_one);
    free(e->hk_all);
    if (e->hk_mu_ok)
        pthread_mutex_destroy(&e->hk_mu);
    if (e->acks != NULL)
        for (uint32_t p = 0; p < e->max_partitions; p++)
            rg_ack_destroy(e->acks[p]);
    free((void *)e->acks);
    free((void *)e->owner);
    free(e->cst);
    free((void *)e->moved_ns);
    free(e->batch);
    free(e->rings);
    free(e->spaces);
    free(e->workers);
    free(e->dispatchers);
    if (e->bucket != NULL) {
        rg__bucket_fini(e->bucket);
        free(e->bucket);
    }
    pthread_mutex_destroy(&e->stop_lock);
    pthread_mutex_destroy(&e->sink_err_lock);
    free(e);
}

static int assign_cpus(rg_engine_t *e, char *errstr, size_t errstr_size)
{
    int *cpus = malloc(sizeof(int) * CPU_SETSIZE);
    if (cpus == NULL) {
        rg__seterr(errstr, errstr_size, "out of memory");
        return RG_ENOMEM;
    }
    const char *list = rg__conf_str(e->conf, RG_P_WORKERS_CPUS);
    int n = (list[0] == '\0')
                ? rg__cpus_allowed(cpus, CPU_SETSIZE)
                : rg__cpulist_parse(list, cpus, CPU_SETSIZE, errstr,
                                    errstr_size);
    if (n > 0)
        for (unsigned w = 0; w < e->nworkers; w++)
            e->workers[w].cpu = cpus[w % (unsigned)n];
    const char *lanes = rg__conf_str(e->conf, RG_P_HOTKEY_LANES_CPUS);
    if (n > 0 && e->nlanes > 0 && lanes[0] != '\0') {
        n = rg__cpulist_parse(lanes, cpus, CPU_SETSIZE, errstr, errstr_size);
        if (n > 0)
            for (unsigned l = 0; l < e->nlanes; l++)
                e->workers[e->ncold + l].cpu = cpus[l % (unsigned)n];
    }
    free(cpus);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (n > 0 && online > 0 && e->nworkers > (unsigned long)online)
        rg__log(e, RG_LOG_WARN, "%u worker threads (workers=%u, "
                "hotkey.lanes=%u) is more than the %ld online CPUs: they "
                "will share CPUs, and each waits for the others' time "
                "slices", e->nworkers, e->ncold, e->nlanes, online);
    return n > 0 ? 0 : (n < 0 ? n : RG_EINVAL);
}

/* The token bucket with flow.rate.events.per.s and flow.burst.events
 * (both 0: unlimited, and a take costs one relaxed load). */
static int init_flow(rg_engine_t *e, char *errstr, size_t errstr_size)
{
    e->bucket = aligned_alloc(RG__BUCKET_LINE, sizeof(*e->bucket));
    if (e->bucket == NULL || rg__bucket_init(e->bucket) != 0) {
        free(e->bucket);
        e->bucket = NULL;
        rg__seterr(errstr, errstr_size, "flow: cannot make the token bucket");
        return RG_ENOMEM;
    }
    rg__adapt_init(&e->adapt, (uint64_t)rg__conf_int(
                                  e->conf, RG_P_FLOW_SINK_LATENCY_TARGET_MS));
    int64_t now = rg__now_ns();
    uint64_t rate = (uint64_t)rg__conf_int(e->conf, RG_P_FLOW_RATE);
    uint64_t burst = (uint64_t)rg__conf_int(e->conf, RG_P_FLOW_BURST);
    if (rg__bucket_set_burst(e->bucket, burst, now) != 0 ||
        rg__bucket_set_limit(e->bucket, RG__BUCKET_LOCAL, rate, now) != 0) {
        rg__seterr(errstr, errstr_size, "flow.burst.events: %llu is more "
                   "than a day of flow.rate.events.per.s (%llu)",
                   (unsigned long long)burst, (unsigned long long)rate);
        return RG_ERANGE;
    }
    return 0;
}

/* hotkey.enable: a sketch per dispatcher, from the hotkey.* rows. */
static int init_hotkeys(rg_engine_t *e, char *errstr, size_t errstr_size)
{
    if (!rg__conf_int(e->conf, RG_P_HOTKEY_ENABLE))
        return 0;
    rg__hk_conf_t c = {
        .window_ns = (uint64_t)rg__conf_int(e->conf, RG_P_HOTKEY_WINDOW_MS) *
                     1000000u,
        .share = rg_conf_get_double(e->conf, "hotkey.share"),
        .cool_share = rg_conf_get_double(e->conf, "hotkey.cool.share"),
        .rate = (uint64_t)rg__conf_int(e->conf, RG_P_HOTKEY_RATE),
        .cool_ns = (uint64_t)rg__conf_int(e->conf, RG_P_HOTKEY_COOL_MS) *
                   1000000u,
        .min_events = (uint64_t)rg__conf_int(e->conf, RG_P_HOTKEY_MIN_EVENTS),
        .capacity = (uint32_t)rg__conf_int(e->conf, RG_P_HOTKEY_CAPACITY),
        .max_hot = (uint32_t)rg__conf_int(e->conf, RG_P_HOTKEY_MAX_KEYS),
    };
    int rc = rg__hk_conf_check(&c, errstr, errstr_size);
    if (rc != 0)
        return rc;
    uint64_t now = (uint64_t)rg__now_ns();
    e->hk_born_ns = now;
    e->hk_one = malloc(sizeof(*e->hk_one) * c.max_hot);
    e->hk_all = malloc(sizeof(*e->hk_all) * c.max_hot * e->ndispatchers);
    if (e->hk_one == NULL || e->hk_all == NULL ||
        pthread_mutex_init(&e->hk_mu, NULL) != 0) {
        rg__seterr(errstr, errstr_size, "hotkey: out of memory");
        return RG_ENOMEM;
    }
    e->hk_mu_ok = true;
    for (unsigned d = 0; rc == 0 && d < e->ndispatchers; d++)
        if ((rc = rg__hk_new(&e->dispatchers[d].hk, &c, now)) == RG_ENOMEM)
            rg__seterr(errstr, errstr_size, "hotkey: out of memory "
                       "(hotkey.capacity=%u)", c.capacity);
    for (unsigned d = 0; rc == 0 && e->nlanes > 0 && d < e->ndispatchers;
         d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        dp->route = calloc(1, sizeof(*dp->route));
        dp->force = calloc(c.max_hot, sizeof(*dp->force));
        dp->mv = calloc(2 * (size_t)c.max_hot, sizeof(*dp->mv));
        dp->members = calloc(c.max_hot, sizeof(*dp->members));
        dp->mcount = calloc(e->nworkers, sizeof(*dp->mcount));
        if (dp->route == NULL || !dp->force || !dp->mv || !dp->members ||
            !dp->mcount || rg__hkset_init(dp->route, c.max_hot) != 0) {
            rg__seterr(errstr, errstr_size, "hotkey: out of memory");
            rc = RG_ENOMEM;
        }
    }
    return rc;
}

rg_engine_t *rg_engine_new(rg_conf_t *conf, const rg_processor_t *proc,
                           char *errstr, size_t errstr_size)
{
    if (conf == NULL || proc == NULL) {
        rg__seterr(errstr, errstr_size, "rg_engine_new: NULL conf or processor");
        return NULL;
    }
    if (proc->unpack == NULL) {
        rg__seterr(errstr, errstr_size, "processor: unpack is required");
        return NULL;
    }
    if (proc->split && proc->order_key == NULL) {
        rg__seterr(errstr, errstr_size, "processor: split needs order_key "
                   "(the order unit a hot key is spread by)");
        return NULL;
    }
    if (rg__conf_int(conf, RG_P_HOTKEY_LANES) > 0 &&
        !rg__conf_int(conf, RG_P_HOTKEY_ENABLE)) {
        rg__seterr(errstr, errstr_size, "hotkey.lanes=%lld needs "
                   "hotkey.enable=true (the lanes take the keys the "
                   "detection finds hot)",
                   (long long)rg__conf_int(conf, RG_P_HOTKEY_LANES));
        return NULL;
    }
    if ((proc->do_event == NULL) == (proc->batch_do == NULL)) {
        rg__seterr(errstr, errstr_size, "processor: set exactly one of do_event "
               "(single mode) and batch_do (batch mode)");
        return NULL;
    }
    if (proc->pre_do != NULL && proc->batch_do == NULL) {
        rg__seterr(errstr, errstr_size, "processor: pre_do needs batch_do");
        return NULL;
    }
    int64_t cap = rg__conf_int(conf, RG_P_RING_CAPACITY);
    int64_t batch = rg__conf_int(conf, RG_P_BATCH_MAX_EVENTS);
    if (batch > cap) {
        rg__seterr(errstr, errstr_size, "batch.max.events: %lld exceeds "
               "ring.capacity %lld", (long long)batch, (long long)cap);
        return NULL;
    }

    rg__fence_init();
    rg_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        rg__seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->stop_lock, NULL);
    pthread_mutex_init(&e->sink_err_lock, NULL);
    e->proc = *proc;
    e->ncold = (unsigned)rg__conf_int(conf, RG_P_WORKERS);
    e->nlanes = (unsigned)rg__conf_int(conf, RG_P_HOTKEY_LANES);
    e->nworkers = e->ncold + e->nlanes;
    e->ndispatchers = (unsigned)rg__conf_int(conf, RG_P_DISPATCHERS);
    e->batch_max = (uint32_t)batch;
    e->worker_spins = (uint32_t)rg__conf_int(conf, RG_P_WORKER_IDLE_SPINS);
    e->worker_yields = (uint32_t)rg__conf_int(conf, RG_P_WORKER_IDLE_YIELDS);
    e->disp_spins = (uint32_t)rg__conf_int(conf, RG_P_DISPATCHER_WAIT_SPINS);
    e->disp_yields =
        (uint32_t)rg__conf_int(conf, RG_P_DISPATCHER_WAIT_YIELDS);
    e->conf = conf;
    atomic_init(&e->state, ST_NEW);
    atomic_init(&e->drain, 0);
    e->ack_window = (uint32_t)rg__conf_int(conf, RG_P_ACK_WINDOW_EVENTS);
    e->max_partitions = (uint32_t)rg__conf_int(conf, RG_P_ACK_MAX_PARTITIONS);
    e->commit_interval_ns =
        (uint64_t)rg__conf_int(conf, RG_P_ACK_COMMIT_INTERVAL_MS) * 1000000u;
    e->commit_max_events =
        (uint64_t)rg__conf_int(conf, RG_P_ACK_COMMIT_MAX_EVENTS);
    e->acks = calloc(e->max_partitions, sizeof(*e->acks));
    e->owner = calloc(e->max_partitions, sizeof(*e->owner));
    e->cst = calloc(e->max_partitions, sizeof(*e->cst));
    e->moved_ns = calloc(e->max_partitions, sizeof(*e->moved_ns));
    e->batch = calloc(e->max_partitions, sizeof(*e->batch));
    e->nslots = (uint32_t)rg__conf_int(conf, RG_P_FLUSH_MAX_PENDING_EPOCHS) + 1;
    e->flush_interval_ns =
        (uint64_t)rg__conf_int(conf, RG_P_FLUSH_INTERVAL_MS) * 1000000u;
    e->flush_max_keys = (uint32_t)rg__conf_int(conf, RG_P_FLUSH_MAX_KEYS);
    e->merge_max_keys = (uint32_t)rg__conf_int(conf, RG_P_MERGE_MAX_KEYS);
    e->backoff_ns =
        (uint64_t)rg__conf_int(conf, RG_P_SINK_RETRY_BACKOFF_MS) * 1000000u;
    e->backoff_max_ns =
        (uint64_t)rg__conf_int(conf, RG_P_SINK_RETRY_BACKOFF_MAX_MS) *
        1000000u;
    e->shutdown_timeout_ns =
        rg__conf_int(conf, RG_P_SHUTDOWN_TIMEOUT_MS) * 1000000;

    rg__retry_conf(e);
    size_t nrings = (size_t)e->ndispatchers * e->nworkers;
    e->workers = aligned_alloc(RG_CACHELINE,
                               sizeof(rg__worker_t) * e->nworkers);
    e->dispatchers = aligned_alloc(RG_CACHELINE,
                                   sizeof(rg_dispatcher_t) * e->ndispatchers);
    e->rings = calloc(nrings, sizeof(rg_ring_t *));
    e->spaces = aligned_alloc(RG_CACHELINE, sizeof(struct spot) * nrings);
    if (!e->workers || !e->dispatchers || !e->rings || !e->spaces ||
        !e->acks || !e->owner || !e->cst || !e->moved_ns || !e->batch)
        goto nomem;
    memset(e->workers, 0, sizeof(rg__worker_t) * e->nworkers);
    memset(e->dispatchers, 0, sizeof(rg_dispatcher_t) * e->ndispatchers);
    memset(e->spaces, 0, sizeof(struct spot) * nrings);
    for (size_t i = 0; i < nrings; i++)
        if ((e->rings[i] = rg_ring_new((uint32_t)cap, sizeof(rg_event_t),
                                       NULL, 0)) == NULL)
            goto nomem;

    /* ring (d, w) and its space spot live at index d * workers + w */
    for (unsigned w = 0; w < e->nworkers; w++) {
        rg__worker_t *wk = &e->workers[w];
        wk->e = e;
        wk->idx = w;
        wk->in = calloc(e->ndispatchers, sizeof(rg_ring_t *));
        wk->buf = malloc(sizeof(rg_event_t) * (size_t)batch);
        if (!wk->in || !wk->buf || rg__retry_init(wk) != 0)
            goto nomem;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            wk->in[d] = e->rings[(size_t)d * e->nworkers + w];
    }
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        dp->e = e;
        dp->idx = d;
        dp->epoch = 1; /* epoch mode: the first open epoch */
        dp->out = calloc(e->nworkers, sizeof(rg_ring_t *));
        dp->npend = calloc(e->nworkers, sizeof(uint32_t));
        dp->room = calloc(e->nworkers, sizeof(uint32_t));
        if (!dp->out || !dp->npend || !dp->room)
            goto nomem;
        dp->space = rg__space_of(e, d, 0);
        for (unsigned w = 0; w < e->nworkers; w++)
            dp->out[w] = e->rings[(size_t)d * e->nworkers + w];
    }
    if (assign_cpus(e, errstr, errstr_size) != 0 ||
        init_flow(e, errstr, errstr_size) != 0 ||
        init_hotkeys(e, errstr, errstr_size) != 0) {
        e->conf = NULL; /* still the caller's */
        free_engine(e);
        return NULL;
    }
    return e;
nomem:
    rg__seterr(errstr, errstr_size, "out of memory (workers=%u dispatchers=%u "
           "ring.capacity=%lld)", e->nworkers, e->ndispatchers,
           (long long)cap);
    e->conf = NULL;
    free_engine(e);
    return NULL;
}

/* Sets drain, wakes every worker and joins the started ones. Each exits
 * once its rings are empty. Caller holds stop_lock. */
static void drain_workers(rg_engine_t *e)
{
    /* release: pairs with the acquire loads of drain in worker_main() */
    atomic_store_explicit(&e->drain, 1, memory_order_release);
    for (unsigned w = 0; w < e->nworkers; w++)
        rg__park_wake(&e->workers[w].wake.park);
    /* acquire: pairs with the release store in rg_engine_stop() */
    int64_t dl = atomic_load_explicit(&e->stop_deadline_ns,
                                      memory_order_acquire);
    for (unsigned w = 0; w < e->nworkers; w++) {
        if (!e->workers[w].joinable)
            continue;
        /* a worker held up by the sink (its slots full, a processor
         * retrying a lookup) past shutdown.timeout.ms: stop the engine,
         * which lets it through (nothing more is written) */
        while (dl != 0) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 100 * 1000 * 1000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            if (pthread_timedjoin_np(e->workers[w].thread, NULL, &until) ==
                0) {
                e->workers[w].joinable = false;
                break;
            }
            if (rg__now_ns() >= dl) {
                rg__engine_fail(e, "stopped after shutdown.timeout.ms (%lld "
                                "ms) with events not stored: the workers "
                                "were held up by the sink; what was not "
                                "stored is reprocessed after a restart",
                                (long long)(e->shutdown_timeout_ns /
                                            1000000));
                dl = 0;
            }
        }
        if (e->workers[w].joinable) {
            pthread_join(e->workers[w].thread, NULL);
            e->workers[w].joinable = false;
        }
    }
}

/* A failed start: no event was accepted, so the started workers have
 * nothing to do; stop them and leave the engine startable again. */
static int abort_start(rg_engine_t *e)
{
    drain_workers(e);
    /* relaxed: no worker runs now */
    atomic_store_explicit(&e->drain, 0, memory_order_relaxed);
    pthread_mutex_unlock(&e->stop_lock);
    return RG_ESYS;
}

int rg_engine_start(rg_engine_t *e, char *errstr, size_t errstr_size)
{
    if (e == NULL)
        return RG_EINVAL;
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock, which we hold */
    int st = atomic_load_explicit(&e->state, memory_order_relaxed);
    if (st != ST_NEW) {
        pthread_mutex_unlock(&e->stop_lock);
        rg__seterr(errstr, errstr_size, st == ST_RUNNING
                       ? "engine already started"
                       : "engine stopped: an engine starts once; create a "
                         "new one");
        return RG_ESTATE;
    }
    if (e->nlanes > 0 && !e->epoch_mode) {
        pthread_mutex_unlock(&e->stop_lock);
        rg__seterr(errstr, errstr_size, "hotkey.lanes=%u needs a sink "
                   "(rg_engine_set_sink()): keys move to and from the "
                   "lanes at epoch barriers", e->nlanes);
        return RG_ESTATE;
    }
    /* before any thread starts: thread creation publishes it to them */
    resolve_idle_policy(e);
    for (unsigned w = 0; w < e->nworkers; w++) {
        rg__worker_t *wk = &e->workers[w];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(wk->cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        int rc = pthread_create(&wk->thread, &attr, rg__worker_main, wk);
        pthread_attr_destroy(&attr);
        if (rc == 0) {
            char name[16];
            if (w < e->ncold)
                snprintf(name, sizeof(name), "rg:w%u", w);
            else
                snprintf(name, sizeof(name), "rg:lane%u", w - e->ncold);
            pthread_setname_np(wk->thread, name);
        }
        if (rc != 0) {
            rg__seterr(errstr, errstr_size, "worker %u on CPU %d: cannot start "
                   "thread: %s%s", w, wk->cpu, strerror(rc),
                   rc == EINVAL ? " (is the CPU outside this process's "
                                  "cpuset? see workers.cpus)" : "");
            return abort_start(e);
        }
        wk->joinable = true;
    }
    int crc = pthread_create(&e->committer, NULL, rg__committer_main, e);
    if (crc != 0) {
        rg__seterr(errstr, errstr_size, "cannot start the committer thread: %s",
               strerror(crc));
        return abort_start(e);
    }
    e->committer_joinable = true;
    pthread_setname_np(e->committer, "rg:commit");
    if (e->epoch_mode) {
        int frc = pthread_create(&e->flusher, NULL, rg__flusher_main, e);
        if (frc != 0) {
            rg__seterr(errstr, errstr_size, "cannot start the flusher thread: "
                   "%s", strerror(frc));
            /* release: pairs with the acquire load in rg__committer_main() */
            atomic_store_explicit(&e->committer_stop, 1,
                                  memory_order_release);
            rg__park_wake(&e->commit_wake.park);
            pthread_join(e->committer, NULL);
            e->committer_joinable = false;
            atomic_store_explicit(&e->committer_stop, 0,
                                  memory_order_relaxed);
            return abort_start(e);
        }
        e->flusher_joinable = true;
        pthread_setname_np(e->flusher, "rg:flush");
    }
    /* release: pairs with the acquire load in rg__dispatch_enter() */
    atomic_store_explicit(&e->state, ST_RUNNING, memory_order_release);
    pthread_mutex_unlock(&e->stop_lock);
    return 0;
}

rg_dispatcher_t *rg_engine_dispatcher(rg_engine_t *e, unsigned idx)
{
    if (e == NULL || idx >= e->ndispatchers)
        return NULL;
    return &e->dispatchers[idx];
}

void rg_engine_shutdown_begin(rg_engine_t *e)
{
    if (e == NULL || !e->epoch_mode || e->shutdown_timeout_ns <= 0)
        return;
    int64_t none = 0;
    /* release: pairs with the acquires in the flusher, drain_workers()
     * and rg_dispatcher_flush(); the first call sets the deadline */
    atomic_compare_exchange_strong_explicit(
        &e->stop_deadline_ns, &none, rg__now_ns() + e->shutdown_timeout_ns,
        memory_order_release, memory_order_relaxed);
    rg__park_wake(&e->flush_wake.park);
}

/* Stop, before the handles are taken (the flusher still closes epochs
 * for idle dispatchers): events waiting for a retry get until
 * shutdown.timeout.ms to end (retry.h, rg_engine_retry_finish()). What
 * still waits then is stored as delayed at the final barrier (a sink that
 * keeps failures), or given up by the drain. */
static void wait_for_retries(rg_engine_t *e)
{
    int64_t ms = e->shutdown_timeout_ns / 1000000;
    rg_engine_retry_finish(e, ms > INT32_MAX ? INT32_MAX : (int)ms);
}

int rg_engine_stop(rg_engine_t *e)
{
    if (e == NULL)
        return RG_EINVAL;
    pthread_mutex_lock(&e->stop_lock);
    /* relaxed: state only changes under stop_lock, which we hold */
    int st = atomic_load_explicit(&e->state, memory_order_relaxed);
    if (st == ST_STOPPED || st == ST_NEW) {
        atomic_store_explicit(&e->state, ST_STOPPED, memory_order_relaxed);
        pthread_mutex_unlock(&e->stop_lock);
        return 0;
    }
    atomic_store_explicit(&e->state, ST_STOPPING, memory_order_relaxed);
    /* from now on a failing sink is retried for shutdown.timeout.ms at
     * most (from rg_engine_shutdown_begin() when that came first): the
     * final barriers below wait for it, and so do the workers */
    rg_engine_shutdown_begin(e);
    /* F2: pairs with F1 in rg__dispatch_enter() */
    rg__fence_heavy();
    wait_for_retries(e);
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        /* take every handle for good. acquire (A2): pairs with R1 in
         * rg__dispatch_exit(); that push's events are in the rings before
         * we set drain */
        uint32_t exp = CALL_FREE;
        while (!atomic_compare_exchange_weak_explicit(
                   &e->dispatchers[d].in_call, &exp, CALL_HELD,
                   memory_order_acquire, memory_order_relaxed)) {
            exp = CALL_FREE; /* the ingest thread or the flusher */
            struct timespec ts = {0, 50 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (e->epoch_mode) {
        /* close every open epoch at one final barrier F, on behalf of the
         * quiesced dispatchers (their last push released in_call above) */
        uint64_t fin = 0;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            if (e->dispatchers[d].epoch > fin)
                fin = e->dispatchers[d].epoch;
        for (unsigned d = 0; d < e->ndispatchers; d++)
            rg__epoch_send_barriers(&e->dispatchers[d], fin);
        /* release: pairs with the flusher's acquire; it writes up to fin */
        atomic_store_explicit(&e->final_epoch, fin, memory_order_release);
        rg__park_wake(&e->flush_wake.park);
    }
    drain_workers(e);
    if (e->flusher_joinable) {
        /* release: pairs with stop_asked() in the flusher */
        atomic_store_explicit(&e->flusher_stop, 1, memory_order_release);
        rg__park_wake(&e->flush_wake.park);
        pthread_join(e->flusher, NULL);
        e->flusher_joinable = false;
    }
    /* release: pairs with the acquire load in rg__committer_main(); every
     * done() of the joined workers happens before its last tick */
    atomic_store_explicit(&e->committer_stop, 1, memory_order_release);
    rg__park_wake(&e->commit_wake.park);
    if (e->committer_joinable) {
        pthread_join(e->committer, NULL);
        e->committer_joinable = false;
    }
    atomic_store_explicit(&e->state, ST_STOPPED, memory_order_relaxed);
    pthread_mutex_unlock(&e->stop_lock);
    return 0;
}

void rg_engine_destroy(rg_engine_t *e)
{
    if (e == NULL)
        return;
    rg_engine_stop(e);
    rg_conf_destroy(e->conf);
    free_engine(e);
}

void rg_engine_stats(rg_engine_t *e, rg_engine_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->workers = e->ncold;
    out->lanes = e->nlanes;
    out->dispatchers = e->ndispatchers;
    /* relaxed everywhere: counters, each a value that was true once */
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg_dispatcher_t *dp = &e->dispatchers[d];
        out->accepted += atomic_load_explicit(&dp->accepted,
                                              memory_order_relaxed);
        out->undecodable += atomic_load_explicit(&dp->undecodable,
                                                 memory_order_relaxed);
        out->dispatcher_waits += atomic_load_explicit(&dp->waits,
                                                      memory_order_relaxed);
        out->dispatcher_parks += atomic_load_explicit(&dp->parks,
                                                      memory_order_relaxed);
        out->rejected += atomic_load_explicit(&dp->rejected,
                                              memory_order_relaxed);
        out->ack_waits += atomic_load_explicit(&dp->ack_waits,
                                               memory_order_relaxed);
        out->moves += atomic_load_explicit(&dp->moves, memory_order_relaxed);
        out->moves_to_lanes += atomic_load_explicit(&dp->moves_hot,
                                                    memory_order_relaxed);
        out->deduplicated += atomic_load_explicit(&dp->dups,
                                                  memory_order_relaxed);
        out->marks_evicted += atomic_load_explicit(&dp->evicted,
                                                   memory_order_relaxed);
    }
    out->commits = atomic_load_explicit(&e->commits, memory_order_relaxed);
    out->warnings = atomic_load_explicit(&e->warnings, memory_order_relaxed);
    for (unsigned w = 0; w < e->nworkers; w++) {
        out->processed += atomic_load_explicit(&e->workers[w].processed,
                                               memory_order_relaxed);
        out->worker_parks += atomic_load_explicit(&e->workers[w].parks,
                                                  memory_order_relaxed);
    }
}

/* ---- flow control ------------------------------------------------------ */

int rg_engine_flow_set_limit(rg_engine_t *e, rg_flow_limit_t which,
                             uint64_t events_per_s)
{
    if (e == NULL || (unsigned)which >= RG_FLOW_NLIMITS)
        return RG_EINVAL;
    static const enum rg__bucket_limit map[RG_FLOW_NLIMITS] = {
        [RG_FLOW_LOCAL] = RG__BUCKET_LOCAL,
        [RG_FLOW_GLOBAL] = RG__BUCKET_LEASE,
        [RG_FLOW_ADAPTIVE] = RG__BUCKET_ADAPTIVE,
    };
    return rg__bucket_set_limit(e->bucket, map[which], events_per_s,
                                rg__now_ns());
}

int rg_engine_flow_set_burst(rg_engine_t *e, uint64_t burst)
{
    if (e == NULL)
        return RG_EINVAL;
    return rg__bucket_set_burst(e->bucket, burst, rg__now_ns());
}

void rg_engine_flow_stats(rg_engine_t *e, rg_flow_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    struct rg__bucket_stats bs;
    rg__bucket_stats(e->bucket, &bs);
    out->rate = bs.rate;
    out->burst = bs.burst;
    out->limit[RG_FLOW_LOCAL] = bs.limit[RG__BUCKET_LOCAL];
    out->limit[RG_FLOW_GLOBAL] = bs.limit[RG__BUCKET_LEASE];
    out->limit[RG_FLOW_ADAPTIVE] = bs.limit[RG__BUCKET_ADAPTIVE];
    out->granted = bs.granted;
    out->throttled = bs.throttled;
    out->tokens = bs.available;
    uint64_t ns = 0;
    /* relaxed: counters, each a value that was true once */
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        out->waits += atomic_load_explicit(&e->dispatchers[d].flow_waits,
                                           memory_order_relaxed);
        ns += atomic_load_explicit(&e->dispatchers[d].flow_wait_ns,
                                   memory_order_relaxed);
    }
    out->wait_ms = ns / 1000000;
    out->sink_latency_ms = atomic_load_explicit(&e->st_sink_lat_ns,
                                                memory_order_relaxed) /
                           1000000;
    out->adaptive_cuts = atomic_load_explicit(&e->st_adapt_cuts,
                                              memory_order_relaxed);
    out->adaptive_raises = atomic_load_explicit(&e->st_adapt_raises,
                                                memory_order_relaxed);
}

uint64_t rg_engine_worker_processed(const rg_engine_t *e, unsigned w)
{
    if (e == NULL || w >= e->nworkers)
        return 0;
    /* relaxed: a counter */
    return atomic_load_explicit(&e->workers[w].processed,
                                memory_order_relaxed);
}

static int hot_by_events(const void *a, const void *b)
{
    const rg_hot_key_t *x = a, *y = b;
    return x->events < y->events ? 1 : x->events > y->events ? -1
           : x->key > y->key ? 1 : x->key < y->key ? -1 : 0;
}

static int hot_by_key(const void *a, const void *b)
{
    const rg_hot_key_t *x = a, *y = b;
    return x->key > y->key ? 1 : x->key < y->key ? -1 : 0;
}

size_t rg_engine_hot_keys(rg_engine_t *e, rg_hotkey_stats_t *st,
                          rg_hot_key_t *keys, size_t max)
{
    rg_hotkey_stats_t s = {0};
    if (e == NULL || e->ndispatchers == 0 || e->dispatchers[0].hk == NULL) {
        if (st != NULL)
            *st = s;
        return 0;
    }
    s.enabled = true;
    uint32_t per = (uint32_t)rg__conf_int(e->conf, RG_P_HOTKEY_MAX_KEYS);
    pthread_mutex_lock(&e->hk_mu);
    rg__hk_hot_t *one = e->hk_one;
    rg_hot_key_t *all = e->hk_all;
    size_t n = 0;
    uint64_t now = (uint64_t)rg__now_ns(), oldest = now;
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        rg__hk_stats_t hs;
        size_t k = rg__hk_snapshot(e->dispatchers[d].hk, &hs, one, per);
        s.window_events += hs.window_events;
        s.turned_hot += hs.turned_hot;
        s.turned_cold += hs.turned_cold;
        /* not judged yet: as old as the sketch */
        uint64_t t = hs.tick_ns > e->hk_born_ns ? hs.tick_ns : e->hk_born_ns;
        if (t < oldest)
            oldest = t;
        for (size_t i = 0; i < k; i++)
            all[n++] = (rg_hot_key_t){
                one[i].key, one[i].count, 0,
                now > one[i].since_ns ? (now - one[i].since_ns) / 1000000u
                                      : 0};
    }
    /* one entry per key: a key hot on several dispatchers adds up */
    if (n > 1)
        qsort(all, n, sizeof(*all), hot_by_key);
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        if (m > 0 && all[m - 1].key == all[j].key) {
            all[m - 1].events += all[j].events;
            if (all[j].hot_ms > all[m - 1].hot_ms)
                all[m - 1].hot_ms = all[j].hot_ms;
        } else {
            all[m++] = all[j];
        }
    }
    s.nhot = (uint32_t)m;
    s.age_ms = (now - oldest) / 1000000u;
    for (size_t j = 0; j < m; j++)
        all[j].share = s.window_events
                           ? (double)all[j].events / (double)s.window_events
                           : 0;
    if (m > 1)
        qsort(all, m, sizeof(*all), hot_by_events);
    size_t out = keys == NULL ? 0 : m < max ? m : max;
    if (out > 0)
        memcpy(keys, all, sizeof(*all) * out);
    pthread_mutex_unlock(&e->hk_mu);
    if (st != NULL)
        *st = s;
    return out;
}

int rg_engine_worker_stats(const rg_engine_t *e, unsigned w,
                           rg_worker_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (e == NULL || w >= e->nworkers)
        return RG_EINVAL;
    const rg__worker_t *wk = &e->workers[w];
    /* relaxed everywhere: statistics, each a value it had */
    out->processed = atomic_load_explicit(&wk->processed,
                                          memory_order_relaxed);
    out->parks = atomic_load_explicit(&wk->parks, memory_order_relaxed);
    int64_t start = atomic_load_explicit(&wk->started_ns,
                                         memory_order_relaxed);
    if (start != 0) {
        int64_t now = rg__now_ns();
        /* acquire: pairs with the release in rg__worker_idle_end(): a
         * stretch seen closed has its time in idle_ns (one seen open
         * and closed since may count twice: busy steps back, see the
         * header) */
        int64_t since = atomic_load_explicit(&wk->idle_since,
                                             memory_order_acquire);
        uint64_t idle = atomic_load_explicit(&wk->idle_ns,
                                             memory_order_relaxed);
        if (since != 0 && since < now)
            idle += (uint64_t)(now - since);
        uint64_t up = now > start ? (uint64_t)(now - start) : 0;
        out->busy_ns = up > idle ? up - idle : 0;
    }
    for (unsigned d = 0; d < e->ndispatchers; d++) {
        const rg_ring_t *r = wk->in[d];
        uint32_t n = rg_ring_count(r);
        /* the two ends are read one after the other: clamp */
        out->ring_used += n <= r->capacity ? n : r->capacity;
        out->ring_capacity += r->capacity;
    }
    return 0;
}

const rg_conf_t *rg_engine_conf(const rg_engine_t *e)
{
    return e->conf;
}
