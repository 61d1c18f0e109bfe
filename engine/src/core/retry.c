/*
 * retry.c - failures (railgun/retry.h): the marks a processor makes on
 * the events of a call, the parked keys with their queues of waiting
 * events, in-place backoff and the delayed queue on the worker's own
 * timer, dead letters. A worker thread, except rg_engine_requeue() (any
 * thread: the mailbox) and rg__retry_dead_msg() (an ingest thread).
 *
 * Invariants
 *   - A key is parked (in keys[] and map[]) exactly while it has waiting
 *     events; its queue holds them in the order the worker received them,
 *     so a key's events are applied in order: events of a parked key
 *     coming from the rings are appended (rg__retry_divert) before any
 *     call sees them, and in a call the events after a retried one of its
 *     key are left alone (rg_ctx_blocked) and appended by settle.
 *   - Only a queue's head is ever run again; the events behind it run,
 *     in order, right after it succeeded or became a dead letter.
 *   - The order unit is the processor's order_key (default: the routing
 *     key) with retry.order=key; with none it is the event itself
 *     (partition, offset), so nothing waits behind a failed event.
 *   - Waits come from a pool of retry.max.parked.events: the worker pops
 *     at most rg__retry_room() events from its rings, so every event of a
 *     call can be parked without an allocation, and at the bound it stops
 *     reading (backpressure), never drops.
 *   - Epoch mode, a sink that keeps failures: at every seal each wait
 *     not yet stored gets a DELAYED row in the sealing delta (it is then
 *     "stored"); a stored wait that is applied at last adds a CLEARED row
 *     to the delta that holds its effect, one that dies adds a DEAD row.
 *     So the rows of an epoch, its offsets and its failure rows always
 *     agree, and a crash neither loses nor repeats a retry.
 *   - Without a sink a waiting event's offset is done only when it was
 *     applied or dead-lettered (rg_ack_done then), holding the watermark.
 *   - Stats: plain counters (this worker only), published with relaxed
 *     stores; readers only need values that were true once.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/ack.h"
#include "railgun/error.h"
#include "railgun/hash.h"
#include "conf_props.h"
#include "engine_int.h"

enum { MARK_RETRY = 1, MARK_FAIL = 2 };

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t order_key(const rg_engine_t *e, const rg_event_t *ev)
{
    if (e->rc.by_key)
        return e->proc.order_key != NULL
                   ? e->proc.order_key(e->proc.opaque, ev)
                   : ev->key;
    return rg_hash64((uint64_t)(uint32_t)ev->partition << 40 ^
                       (uint64_t)ev->offset);
}

void rg__retry_conf(rg_engine_t *e)
{
    const rg_conf_t *c = e->conf;
    e->rc.backoff_ns = (uint64_t)rg__conf_int(c, RG_P_RETRY_BACKOFF_MS) *
                       1000000u;
    e->rc.backoff_max_ns =
        (uint64_t)rg__conf_int(c, RG_P_RETRY_BACKOFF_MAX_MS) * 1000000u;
    e->rc.delay_ns = (uint64_t)rg__conf_int(c, RG_P_RETRY_DELAY_MS) * 1000000u;
    e->rc.delay_max_ns =
        (uint64_t)rg__conf_int(c, RG_P_RETRY_DELAY_MAX_MS) * 1000000u;
    e->rc.inplace = (uint32_t)rg__conf_int(c, RG_P_RETRY_INPLACE_ATTEMPTS);
    e->rc.max_attempts = (uint32_t)rg__conf_int(c, RG_P_RETRY_MAX_ATTEMPTS);
    e->rc.max_parked = (uint32_t)rg__conf_int(c, RG_P_RETRY_MAX_PARKED_EVENTS);
    e->rc.payload_max = (uint32_t)rg__conf_int(c, RG_P_RETRY_PAYLOAD_MAX_BYTES);
    e->rc.max_age_ms = rg__conf_int(c, RG_P_RETRY_MAX_AGE_MS);
    e->rc.by_key = strcmp(rg__conf_str(c, RG_P_RETRY_ORDER), "key") == 0;
}

int rg__retry_init(rg__worker_t *w)
{
    rg_engine_t *e = w->e;
    struct rg__retry *r = &w->rt;
    uint32_t n = e->rc.max_parked;
    r->pool = calloc(n, sizeof(*r->pool));
    r->free_waits = malloc(sizeof(uint32_t) * n);
    r->keys = malloc(sizeof(*r->keys) * n);
    r->map_mask = 15;
    while (r->map_mask + 1 < 2u * n)
        r->map_mask = r->map_mask * 2 + 1;
    r->map = calloc((size_t)r->map_mask + 1, sizeof(uint32_t));
    r->marks = malloc(sizeof(*r->marks) * e->batch_max);
    r->touched = malloc(sizeof(uint32_t) * e->batch_max);
    if (!r->pool || !r->free_waits || !r->keys || !r->map || !r->marks ||
        !r->touched)
        return RG_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        r->free_waits[i] = n - 1 - i;
    r->nfree = r->cap = n;
    r->next_due_ns = INT64_MAX;
    r->rng = 0x9e3779b97f4a7c15ull * (w->idx + 1) | 1;
    pthread_mutex_init(&r->lock, NULL);
    r->lock_ok = true;
    return 0;
}

static void free_payload(void *ptr, void *opaque)
{
    (void)opaque;
    free(ptr);
}

static void release_ev(rg_event_t *ev)
{
    if ((ev->flags & RG_EVENT_F_EXTERNAL) && ev->data.ext.release != NULL)
        ev->data.ext.release(ev->data.ext.ptr, ev->data.ext.opaque);
}

void rg__retry_free(rg__worker_t *w)
{
    struct rg__retry *r = &w->rt;
    if (r->pool == NULL && r->map == NULL)
        return;
    for (uint32_t k = 0; k < r->nkeys; k++)
        for (uint32_t i = r->keys[k].head; i != 0; i = r->pool[i - 1].next) {
            release_ev(&r->pool[i - 1].ev);
            free(r->pool[i - 1].reasons);
        }
    for (int l = 0; l < 2; l++)
        for (struct rg__requeued *m = l ? r->hand_head : r->mail_head, *nx;
             m != NULL; m = nx) {
            nx = m->next;
            release_ev(&m->w.ev);
            free(m->w.reasons);
            free(m);
        }
    free(r->pool);
    free(r->free_waits);
    free(r->keys);
    free(r->map);
    free(r->marks);
    free(r->touched);
    free(r->rel_parts);
    if (r->lock_ok)
        pthread_mutex_destroy(&r->lock);
    memset(r, 0, sizeof(*r));
}

/* ---- the key map ------------------------------------------------------ */

static uint32_t slot_of(const struct rg__retry *r, uint64_t key)
{
    return (uint32_t)rg_hash64(key) & r->map_mask;
}

/* keys index of `key`, or UINT32_MAX. */
static uint32_t find_key(const struct rg__retry *r, uint64_t key)
{
    for (uint32_t h = slot_of(r, key);; h = (h + 1) & r->map_mask) {
        uint32_t v = r->map[h];
        if (v == 0)
            return UINT32_MAX;
        if (r->keys[v - 1].key == key)
            return v - 1;
    }
}

static void grow(rg__worker_t *w);

static uint32_t add_key(rg__worker_t *w, uint64_t key)
{
    struct rg__retry *r = &w->rt;
    if (r->nkeys >= r->cap || r->nfree == 0)
        grow(w); /* a key gets a wait next: room for both */
    uint32_t k = r->nkeys++;
    r->keys[k] = (struct rg__wkey){key, 0, 0, UINT32_MAX, 0};
    uint32_t h = slot_of(r, key);
    while (r->map[h] != 0)
        h = (h + 1) & r->map_mask;
    r->map[h] = k + 1;
    return k;
}

/* The map slot that holds keys index k. */
static uint32_t slot_holding(const struct rg__retry *r, uint32_t k)
{
    uint32_t h = slot_of(r, r->keys[k].key);
    while (r->map[h] != k + 1)
        h = (h + 1) & r->map_mask;
    return h;
}

/* Removes keys[k] (its queue is empty): backward-shift deletion in the
 * map, and the last key moves into k. */
static void drop_key(struct rg__retry *r, uint32_t k)
{
    uint32_t h = slot_holding(r, k);
    for (uint32_t j = (h + 1) & r->map_mask; r->map[j] != 0;
         j = (j + 1) & r->map_mask) {
        uint32_t home = slot_of(r, r->keys[r->map[j] - 1].key);
        /* can the entry at j move into the hole at h? */
        if (((j - home) & r->map_mask) >= ((j - h) & r->map_mask)) {
            r->map[h] = r->map[j];
            h = j;
        }
    }
    r->map[h] = 0;
    uint32_t last = r->nkeys - 1;
    if (k != last) {
        r->map[slot_holding(r, last)] = k + 1;
        r->keys[k] = r->keys[last];
    }
    r->nkeys--;
}

/* ---- stats -------------------------------------------------------------- */

static void publish(struct rg__retry *r)
{
    /* relaxed: statistics, single writer */
    atomic_store_explicit(&r->retried, r->l_retried, memory_order_relaxed);
    atomic_store_explicit(&r->failed, r->l_failed, memory_order_relaxed);
    atomic_store_explicit(&r->delayed, r->l_delayed, memory_order_relaxed);
    atomic_store_explicit(&r->dead, r->l_dead, memory_order_relaxed);
    atomic_store_explicit(&r->recovered, r->l_recovered, memory_order_relaxed);
    atomic_store_explicit(&r->requeued, r->l_requeued, memory_order_relaxed);
    atomic_store_explicit(&r->released, r->l_released, memory_order_relaxed);
    atomic_store_explicit(&r->full_waits, r->l_full, memory_order_relaxed);
    atomic_store_explicit(&r->parked_now, r->cap - r->nfree,
                          memory_order_relaxed);
    atomic_store_explicit(&r->keys_now, r->nkeys, memory_order_relaxed);
    for (int i = 0; i < RG_DEAD__COUNT; i++)
        atomic_store_explicit(&r->dead_by[i], r->l_dead_by[i],
                              memory_order_relaxed);
}

/* ---- the calls a processor makes --------------------------------------- */

static int mark(rg_ctx_t *ctx, const rg_event_t *ev, int kind,
                const char *reason)
{
    struct rg__retry *r = &ctx->rt;
    if (ctx == NULL || ev == NULL || r->call_evs == NULL ||
        ev < r->call_evs || ev >= r->call_evs + r->call_n)
        return RG_EINVAL;
    uint32_t i = (uint32_t)(ev - r->call_evs);
    rg_event_t *me = &r->call_evs[i];
    if (me->flags & RG__EVENT_F_MARKED)
        return RG_EINVAL;
    me->flags |= RG__EVENT_F_MARKED;
    if (r->cut_on_mark) {
        r->cut_on_mark = false;
        r->call_n = i + 1; /* worker.c: the fast loop ends after i */
    }
    struct rg__mark *m = &r->marks[r->nmarks++];
    m->idx = i;
    m->kind = (uint8_t)kind;
    snprintf(m->reason, sizeof(m->reason), "%s",
             reason && reason[0] ? reason
                                 : kind == MARK_RETRY ? "retry" : "failed");
    if (kind == MARK_RETRY && !r->rerun) {
        /* later events of its key in this call are blocked from now on */
        uint64_t key = order_key(ctx->e, me);
        uint32_t k = find_key(r, key);
        if (k == UINT32_MAX) {
            k = add_key(ctx, key);
            r->touched[r->ntouched++] = k;
        }
        if (r->keys[k].since == UINT32_MAX || i < r->keys[k].since)
            r->keys[k].since = i;
    }
    return 0;
}

int rg_ctx_retry(rg_ctx_t *ctx, const rg_event_t *ev, const char *reason)
{
    if (ctx == NULL)
        return RG_EINVAL;
    return mark(ctx, ev, MARK_RETRY, reason);
}

int rg_ctx_fail(rg_ctx_t *ctx, const rg_event_t *ev, const char *reason)
{
    if (ctx == NULL)
        return RG_EINVAL;
    return mark(ctx, ev, MARK_FAIL, reason);
}

bool rg__retry_blocked_at(const rg__worker_t *w, uint32_t i)
{
    const struct rg__retry *r = &w->rt;
    if (r->rerun)
        return false;
    const rg_event_t *ev = &r->call_evs[i];
    if (ev->flags & RG__EVENT_F_MARKED)
        return true;
    uint32_t k = find_key(r, order_key(w->e, ev));
    return k != UINT32_MAX && r->keys[k].since < i;
}

bool rg_ctx_blocked(const rg_ctx_t *ctx, const rg_event_t *ev)
{
    if (ctx == NULL || ev == NULL || ctx->rt.call_evs == NULL ||
        ev < ctx->rt.call_evs || ev >= ctx->rt.call_evs + ctx->rt.call_n)
        return false;
    if (ctx->rt.nmarks == 0 && !(ev->flags & RG__EVENT_F_MARKED))
        return false;
    return rg__retry_blocked_at(ctx, (uint32_t)(ev - ctx->rt.call_evs));
}

unsigned rg_ctx_attempt(const rg_ctx_t *ctx, const rg_event_t *ev)
{
    (void)ev;
    if (ctx == NULL)
        return 1;
    return ctx->rt.rerun ? ctx->rt.rerun_attempt : 1;
}

/* ---- waits ---------------------------------------------------------------- */

static void add_reason(struct rg__wait *wt, const char *reason)
{
    if (wt->reasons == NULL) {
        wt->reasons = malloc(RG_FAILURE_REASONS_MAX);
        if (wt->reasons == NULL)
            return; /* the reasons are lost, the event is not */
        wt->reasons[0] = '\0';
    }
    size_t len = strlen(wt->reasons);
    if (len + 3 >= RG_FAILURE_REASONS_MAX)
        return;
    snprintf(wt->reasons + len, RG_FAILURE_REASONS_MAX - len, "%s%s",
             len ? "; " : "", reason);
}

/* Doubles the pool, the keys and the map: only a restart's requeue can
 * pass max_parked (the rings are read within it). Indexes stay valid;
 * pointers into the pool do not (none is held across an append). */
static void grow(rg__worker_t *w)
{
    struct rg__retry *r = &w->rt;
    uint32_t cap = r->cap * 2;
    struct rg__wait *pool = realloc(r->pool, sizeof(*pool) * cap);
    uint32_t *fw = pool ? realloc(r->free_waits, sizeof(uint32_t) * cap)
                        : NULL;
    if (pool != NULL)
        r->pool = pool;
    if (fw != NULL)
        r->free_waits = fw;
    struct rg__wkey *keys = fw ? realloc(r->keys, sizeof(*keys) * cap) : NULL;
    if (keys != NULL)
        r->keys = keys;
    uint32_t mask = r->map_mask * 2 + 1;
    uint32_t *map = keys ? calloc((size_t)mask + 1, sizeof(uint32_t)) : NULL;
    if (map == NULL) {
        /* a worker cannot go on without a place for the event */
        rg__log(w->e, RG_LOG_ERR, "retry: worker %u: out of memory for "
                "%u waiting events", w->idx, cap);
        abort();
    }
    free(r->map);
    r->map = map;
    r->map_mask = mask;
    for (uint32_t k = 0; k < r->nkeys; k++) {
        uint32_t h = slot_of(r, r->keys[k].key);
        while (r->map[h] != 0)
            h = (h + 1) & r->map_mask;
        r->map[h] = k + 1;
    }
    for (uint32_t i = cap; i-- > r->cap;)
        r->free_waits[r->nfree++] = i;
    r->cap = cap;
}

/* Appends ev to its key's queue (the key must be parked). */
static struct rg__wait *append(rg__worker_t *w, uint32_t k,
                               const rg_event_t *ev)
{
    struct rg__retry *r = &w->rt;
    if (r->nfree == 0)
        grow(w);
    uint32_t i = r->free_waits[--r->nfree];
    struct rg__wait *wt = &r->pool[i];
    memset(wt, 0, sizeof(*wt));
    wt->ev = *ev;
    wt->ev.flags &= (uint8_t)~RG__EVENT_F_MARKED;
    for (uint32_t p = 0; p < r->nrel; p++)
        if (r->rel_parts[p] == ev->partition) {
            /* its partition is being given up: stored at the next seal,
             * never run here */
            wt->frozen = 1;
            r->nfrozen++;
            break;
        }
    struct rg__wkey *key = &r->keys[k];
    if (key->tail != 0)
        r->pool[key->tail - 1].next = i + 1;
    else
        key->head = i + 1;
    key->tail = i + 1;
    key->count++;
    return wt;
}

static uint64_t jitter(struct rg__retry *r, uint64_t ns)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    uint64_t half = ns / 2;
    return half + (half ? r->rng % (half + 1) : 0);
}

/* When the next attempt of wt (attempts made) is due. */
static int64_t due_after(rg__worker_t *w, struct rg__wait *wt, int64_t now)
{
    const struct rg__retry_conf *c = &w->e->rc;
    uint64_t base = c->backoff_ns, cap = c->backoff_max_ns;
    uint32_t n = wt->attempts;
    if (wt->attempts >= c->inplace) {
        if (!wt->delayed) {
            wt->delayed = 1;
            w->rt.l_delayed++;
        }
        base = c->delay_ns;
        cap = c->delay_max_ns;
        n = wt->attempts - c->inplace + 1;
    }
    uint64_t d = base;
    for (uint32_t i = 1; i < n && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    /* relaxed: see rg__retry_tick(); stopping, no wait is long */
    if (atomic_load_explicit(&w->e->retry_stopping, memory_order_relaxed) &&
        d > c->backoff_ns)
        d = c->backoff_ns;
    return now + (int64_t)jitter(&w->rt, d);
}

static void fill_row(const rg__worker_t *w, const struct rg__wait *wt,
                     int state, rg_failure_t *row)
{
    const rg_event_t *ev = &wt->ev;
    memset(row, 0, sizeof(*row));
    row->state = state;
    row->partition = ev->partition;
    row->offset = ev->offset;
    row->key = ev->key;
    row->attempts = wt->attempts;
    row->first_ms = wt->first_ms;
    row->last_ms = wt->last_ms;
    row->reasons = wt->reasons ? wt->reasons : "";
    row->event_len = ev->len;
    const void *p = (ev->flags & RG_EVENT_F_EXTERNAL) ? ev->data.ext.ptr
                                                      : ev->data.bytes;
    size_t len = ev->len;
    if (len > w->e->rc.payload_max) {
        len = w->e->rc.payload_max;
        row->flags |= RG_FAILURE_F_TRUNCATED;
    }
    if (wt->truncated)
        row->flags |= RG_FAILURE_F_TRUNCATED;
    row->payload = p;
    row->payload_len = p != NULL ? len : 0;
}

/* A row into the open delta; a sink that keeps failures only. */
static void add_row(rg__worker_t *w, const rg_failure_t *row)
{
    if (!w->e->rc.keep)
        return;
    if (rg__fails_add(&w->cur->fails, row) != 0)
        rg__engine_fail(w->e, "retry: out of memory for a failure row "
                        "(partition %d offset %lld)", (int)row->partition,
                        (long long)row->offset);
}

/* The offset of ev is done (no sink: ACK; epoch mode: its epoch). */
static void offset_done(rg__worker_t *w, const rg_event_t *ev)
{
    rg_engine_t *e = w->e;
    if (e->epoch_mode)
        return;
    /* relaxed: the tracker was published before the event was pushed */
    rg_ack_t *a = atomic_load_explicit(&e->acks[ev->partition],
                                       memory_order_relaxed);
    rg_ack_done(a, ev->ack_gen, ev->offset);
    rg__park_wake(&e->commit_wake.park);
}

static void dead_letter(rg__worker_t *w, struct rg__wait *wt,
                        rg_dead_reason_t why)
{
    w->rt.l_dead_by[why]++;
    rg_failure_t row;
    fill_row(w, wt, RG_FAILURE_DEAD, &row);
    if (w->e->epoch_mode)
        add_row(w, &row);
    if (w->e->dl_cb != NULL)
        w->e->dl_cb(w->e->dl_opaque, &row);
    w->rt.l_dead++;
}

enum { APPLIED = -1 };

/* The head of keys[k] is finished (applied: why APPLIED, else dead for
 * that reason): done, freed, the next one is due at once. */
static void finish_head(rg__worker_t *w, uint32_t k, int why)
{
    bool dead = why != APPLIED;
    struct rg__retry *r = &w->rt;
    struct rg__wkey *key = &r->keys[k];
    uint32_t i = key->head - 1;
    struct rg__wait *wt = &r->pool[i];
    if (dead) {
        dead_letter(w, wt, (rg_dead_reason_t)why);
    } else {
        r->l_recovered++;
        if (wt->stored) {
            rg_failure_t row;
            fill_row(w, wt, RG_FAILURE_CLEARED, &row);
            row.payload = NULL;
            row.payload_len = 0;
            add_row(w, &row);
        }
    }
    offset_done(w, &wt->ev);
    w->processed_local++;
    /* relaxed: a statistic, single writer */
    atomic_store_explicit(&w->processed, w->processed_local,
                          memory_order_relaxed);
    release_ev(&wt->ev);
    free(wt->reasons);
    if (wt->requeued)
        r->nrequeued--;
    key->head = wt->next;
    if (key->head == 0)
        key->tail = 0;
    else
        r->pool[key->head - 1].due_ns = 0;
    key->count--;
    r->free_waits[r->nfree++] = i;
}

static bool too_old(const rg_engine_t *e, const struct rg__wait *wt,
                    int64_t now_ms)
{
    return e->rc.max_age_ms > 0 && now_ms - wt->first_ms > e->rc.max_age_ms;
}

/* ---- before and after a call ------------------------------------------ */

uint32_t rg__retry_divert(rg__worker_t *w, rg_event_t *evs, uint32_t n)
{
    struct rg__retry *r = &w->rt;
    uint32_t out = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = find_key(r, order_key(w->e, &evs[i]));
        if (k == UINT32_MAX) {
            if (out != i)
                evs[out] = evs[i];
            out++;
            continue;
        }
        append(w, k, &evs[i])->due_ns = 0;
    }
    return out;
}

/* Sorts the call's marks by index (few, usually in order already). */
static void sort_marks(struct rg__retry *r)
{
    for (uint32_t i = 1; i < r->nmarks; i++) {
        struct rg__mark m = r->marks[i];
        uint32_t j = i;
        for (; j > 0 && r->marks[j - 1].idx > m.idx; j--)
            r->marks[j] = r->marks[j - 1];
        r->marks[j] = m;
    }
}

uint32_t rg__retry_settle(rg__worker_t *w, rg_event_t *evs, uint32_t n)
{
    rg_engine_t *e = w->e;
    struct rg__retry *r = &w->rt;
    sort_marks(r);
    int64_t now = rg__now_ns(), now_ms = wall_ms();
    uint32_t out = 0, m = 0;
    for (uint32_t i = 0; i < n; i++) {
        rg_event_t *ev = &evs[i];
        struct rg__mark *mk = m < r->nmarks && r->marks[m].idx == i
                                  ? &r->marks[m++] : NULL;
        ev->flags &= (uint8_t)~RG__EVENT_F_MARKED;
        uint32_t k = r->ntouched ? find_key(r, order_key(e, ev)) : UINT32_MAX;
        bool behind = k != UINT32_MAX && r->keys[k].since < i;
        if (mk != NULL && mk->kind == MARK_RETRY) {
            struct rg__wait *wt = append(w, k, ev);
            wt->attempts = 1;
            wt->first_ms = wt->last_ms = now_ms;
            add_reason(wt, mk->reason);
            r->l_retried++;
            if (r->keys[k].head - 1 == (uint32_t)(wt - r->pool)) {
                if (e->rc.max_attempts <= 1) {
                    wt->due_ns = 0; /* dies at the tick */
                } else {
                    wt->due_ns = due_after(w, wt, now);
                }
            }
            if (wt->due_ns < r->next_due_ns)
                r->next_due_ns = wt->due_ns;
        } else if (behind) {
            /* left alone behind a retried event of its key (a fail mark
             * here is the processor's own; the event runs again in turn) */
            append(w, k, ev)->due_ns = 0;
        } else if (mk != NULL) {
            struct rg__wait tmp;
            memset(&tmp, 0, sizeof(tmp));
            tmp.ev = *ev;
            tmp.attempts = 1;
            tmp.first_ms = tmp.last_ms = now_ms;
            char buf[RG_FAILURE_REASONS_MAX];
            snprintf(buf, sizeof(buf), "%s", mk->reason);
            tmp.reasons = buf;
            r->l_failed++;
            dead_letter(w, &tmp, RG_DEAD_FAILED);
            evs[out++] = *ev; /* its offset is done, its payload freed */
        } else {
            if (out != i)
                evs[out] = *ev;
            out++;
        }
    }
    for (uint32_t t = 0; t < r->ntouched; t++)
        if (r->touched[t] < r->nkeys)
            r->keys[r->touched[t]].since = UINT32_MAX;
    r->ntouched = 0;
    r->nmarks = 0;
    publish(r);
    return out;
}

/* ---- the timer ------------------------------------------------------------ */

/* Runs the processor on one waiting event; returns its mark (0: done). */
static int rerun(rg__worker_t *w, struct rg__wait *wt, char *reason,
                 size_t size)
{
    rg_engine_t *e = w->e;
    struct rg__retry *r = &w->rt;
    const rg_processor_t *p = &e->proc;
    rg_event_t ev = wt->ev; /* each attempt starts from the payload as
                               unpacked */
    r->call_evs = &ev;
    r->call_n = 1;
    r->rerun = true;
    r->rerun_attempt = wt->attempts + 1;
    r->nmarks = 0;
    if (p->batch_do != NULL) {
        if (p->pre_do != NULL)
            p->pre_do(p->opaque, w, &ev, 1);
        if (r->nmarks == 0)
            p->batch_do(p->opaque, w, &ev, 1);
    } else {
        p->do_event(p->opaque, w, &ev);
    }
    r->rerun = false;
    r->call_evs = NULL;
    int kind = 0;
    if (r->nmarks > 0) {
        kind = r->marks[0].kind;
        snprintf(reason, size, "%s", r->marks[0].reason);
    }
    r->nmarks = 0;
    return kind;
}

/* Runs keys[k]'s due heads, and what follows them, until one waits.
 * Returns how many waits it finished or ran. */
static unsigned run_key(rg__worker_t *w, uint32_t k, int64_t now,
                        int64_t now_ms)
{
    rg_engine_t *e = w->e;
    struct rg__retry *r = &w->rt;
    unsigned ran = 0;
    for (;; ran++) {
        if (r->keys[k].head == 0)
            return ran;
        struct rg__wait *wt = &r->pool[r->keys[k].head - 1];
        if (wt->due_ns > now || wt->frozen)
            return ran;
        /* relaxed: a failed engine writes nothing more; waits stay */
        if (atomic_load_explicit(&e->failed, memory_order_relaxed))
            return ran;
        if (wt->attempts >= e->rc.max_attempts) {
            /* e.g. max.attempts 1, or lowered since it was stored */
            finish_head(w, k, RG_DEAD_ATTEMPTS);
            continue;
        }
        if (wt->truncated) {
            add_reason(wt, "payload cut when stored: cannot run again");
            finish_head(w, k, RG_DEAD_UNRUNNABLE);
            continue;
        }
        char reason[RG_RETRY_REASON_MAX];
        int kind = rerun(w, wt, reason, sizeof(reason));
        if (wt->attempts == 0)
            wt->first_ms = now_ms;
        wt->attempts++;
        wt->last_ms = now_ms;
        if (kind == 0) {
            finish_head(w, k, APPLIED);
            continue;
        }
        add_reason(wt, reason);
        if (wt->stored)
            wt->dirty = 1;
        if (kind == MARK_FAIL) {
            r->l_failed++;
            finish_head(w, k, RG_DEAD_FAILED);
            continue;
        }
        r->l_retried++;
        if (wt->attempts >= e->rc.max_attempts) {
            finish_head(w, k, RG_DEAD_ATTEMPTS);
            continue;
        }
        if (too_old(e, wt, now_ms)) {
            finish_head(w, k, RG_DEAD_AGE);
            continue;
        }
        wt->due_ns = due_after(w, wt, now);
        return ran + 1;
    }
}

bool rg__retry_tick(rg__worker_t *w, int64_t now)
{
    struct rg__retry *r = &w->rt;
    /* relaxed: a flag; rg_engine_stop() waits (a while) for the waits to
     * end, so none waits longer than retry.backoff.ms from now on */
    if (r->nkeys > 0 && !r->stop_capped &&
        atomic_load_explicit(&w->e->retry_stopping, memory_order_relaxed)) {
        r->stop_capped = true;
        int64_t cap = now + (int64_t)w->e->rc.backoff_ns;
        for (uint32_t k = 0; k < r->nkeys; k++) {
            struct rg__wait *h = &r->pool[r->keys[k].head - 1];
            if (h->due_ns > cap)
                h->due_ns = cap;
        }
        if (r->next_due_ns > cap)
            r->next_due_ns = cap;
    }
    if (r->nkeys == 0 || now < r->next_due_ns)
        return false;
    /* relaxed: a failed engine writes nothing more: its waits stay where
     * they are (stored, or lost with the process), looked at rarely */
    if (atomic_load_explicit(&w->e->failed, memory_order_relaxed)) {
        r->next_due_ns = now + 10 * 1000000;
        return false;
    }
    int64_t now_ms = wall_ms();
    unsigned ran = 0;
    for (uint32_t k = 0; k < r->nkeys;) {
        ran += run_key(w, k, now, now_ms);
        if (r->keys[k].head == 0)
            drop_key(r, k); /* the last key moved into k: look at it */
        else
            k++;
    }
    int64_t next = INT64_MAX;
    for (uint32_t k = 0; k < r->nkeys; k++) {
        const struct rg__wait *h = &r->pool[r->keys[k].head - 1];
        if (!h->frozen && h->due_ns < next)
            next = h->due_ns;
    }
    r->next_due_ns = next;
    if (ran == 0)
        return false; /* e.g. the engine failed: let the worker drain */
    publish(r);
    if (w->e->epoch_mode)
        rg__epoch_after_batch(w);
    return true;
}

/* Takes every wait that `take` claims out of its key's queue, in queue
 * order: take(w, wt, arg) returns true when it took wt (its payload and
 * reasons are then the callee's); its slot is freed, an emptied key
 * dropped, a key with a new head runs it now. */
static void remove_waits(rg__worker_t *w,
                         bool (*take)(rg__worker_t *, struct rg__wait *,
                                      void *),
                         void *arg)
{
    struct rg__retry *r = &w->rt;
    for (uint32_t k = 0; k < r->nkeys;) {
        struct rg__wkey *key = &r->keys[k];
        uint32_t prev = 0, old_head = key->head;
        for (uint32_t i = key->head; i != 0;) {
            struct rg__wait *wt = &r->pool[i - 1];
            uint32_t next = wt->next;
            bool requeued = wt->requeued;
            if (!take(w, wt, arg)) {
                prev = i;
                i = next;
                continue;
            }
            if (prev == 0)
                key->head = next;
            else
                r->pool[prev - 1].next = next;
            if (key->tail == i)
                key->tail = prev;
            key->count--;
            if (requeued)
                r->nrequeued--;
            r->free_waits[r->nfree++] = i - 1;
            i = next;
        }
        if (key->head == 0) {
            drop_key(r, k);
        } else {
            if (key->head != old_head)
                r->pool[key->head - 1].due_ns = 0; /* a new head runs now */
            k++;
        }
    }
    r->next_due_ns = 0; /* the tick recomputes it */
}

static bool take_frozen(rg__worker_t *w, struct rg__wait *wt, void *arg)
{
    (void)arg;
    if (!wt->frozen)
        return false;
    release_ev(&wt->ev);
    free(wt->reasons);
    w->rt.nfrozen--;
    w->rt.l_released++;
    /* done here: its row is stored, its next owner runs it */
    w->processed_local++;
    return true;
}

/* Frees every frozen wait (their rows are in the sealing delta). */
static void forget_frozen(rg__worker_t *w)
{
    remove_waits(w, take_frozen, NULL);
    /* relaxed: a statistic, single writer */
    atomic_store_explicit(&w->processed, w->processed_local,
                          memory_order_relaxed);
}

/* A delayed row for wt in the open delta, unless it has one up to date
 * (a sink that keeps failures: the caller checked e->rc.keep). */
static void store(rg__worker_t *w, struct rg__wait *wt)
{
    struct rg__retry *r = &w->rt;
    if (wt->stored && !wt->dirty)
        return;
    if (!wt->delayed) {
        wt->delayed = 1;
        r->l_delayed++;
    }
    rg_failure_t row;
    fill_row(w, wt, RG_FAILURE_DELAYED, &row);
    row.due_ms = wt->due_ns == 0 ? wall_ms()
                 : wall_ms() + (wt->due_ns - rg__now_ns()) / 1000000;
    add_row(w, &row);
    wt->stored = 1;
    wt->dirty = 0;
    if (row.flags & RG_FAILURE_F_TRUNCATED)
        wt->truncated = 1;
}

struct hand_over {
    uint64_t key, h, epoch;
    unsigned source;
    bool to_hot;
};

static bool take_moved(rg__worker_t *w, struct rg__wait *wt, void *arg)
{
    const struct hand_over *ho = arg;
    rg_engine_t *e = w->e;
    if (wt->ev.key != ho->key || wt->ev.source != ho->source || wt->frozen)
        return false;
    struct rg__requeued *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        rg__log(e, RG_LOG_ERR, "retry: worker %u: out of memory handing a "
                "waiting event of a moved key over", w->idx);
        abort(); /* keeping it here would break the key's order */
    }
    /* its offset is below the move's barrier: the epoch that commits it
     * must hold its row (the new route clears it) */
    if (e->rc.keep)
        store(w, wt);
    m->release = m->unrelease = -1;
    m->handed = true;
    m->epoch = ho->epoch;
    m->w = *wt; /* the payload and reasons go with it */
    m->w.next = 0;
    rg__worker_t *to = &e->workers[ho->to_hot
                                       ? rg__lane_of(e, &m->w.ev, ho->h)
                                       : rg_hash_reduce(ho->h, e->ncold)];
    pthread_mutex_lock(&to->rt.lock);
    if (to->rt.hand_tail != NULL)
        to->rt.hand_tail->next = m;
    else
        to->rt.hand_head = m;
    to->rt.hand_tail = m;
    /* relaxed: a count for the stop's look; the list is under the lock */
    atomic_fetch_add_explicit(&to->rt.hand_n, 1, memory_order_relaxed);
    pthread_mutex_unlock(&to->rt.lock);
    return true;
}

void rg__retry_hand_over(rg__worker_t *w, uint64_t key, unsigned source,
                         bool to_hot, uint64_t epoch)
{
    struct hand_over ho = {key, rg_hash64(key), epoch, source, to_hot};
    if (w->rt.nkeys == 0)
        return;
    remove_waits(w, take_moved, &ho);
    publish(&w->rt);
}

void rg__retry_seal(rg__worker_t *w)
{
    rg_engine_t *e = w->e;
    struct rg__retry *r = &w->rt;
    if (r->nkeys == 0)
        return;
    if (!e->rc.keep) {
        if (!r->volatile_warned) {
            r->volatile_warned = true;
            rg__log(e, RG_LOG_WARN, "retry: worker %u: %u events wait for "
                    "a retry past an epoch's barrier, and the sink keeps no "
                    "failures: they are in memory only (a crash loses them)",
                    w->idx, rg__retry_used(w));
        }
        return;
    }
    for (uint32_t k = 0; k < r->nkeys; k++)
        for (uint32_t i = r->keys[k].head; i != 0; i = r->pool[i - 1].next)
            store(w, &r->pool[i - 1]);
    if (r->nfrozen > 0)
        forget_frozen(w);
    publish(r);
}

/* ---- the mailbox ------------------------------------------------------------ */

/* m's wait joins its order unit's queue, at the end; m is freed. */
static void take_one(rg__worker_t *w, struct rg__requeued *m)
{
    struct rg__retry *r = &w->rt;
    uint64_t key = order_key(w->e, &m->w.ev);
    uint32_t k = find_key(r, key);
    if (k == UINT32_MAX)
        k = add_key(w, key);
    struct rg__wait *wt = append(w, k, &m->w.ev);
    uint32_t next = wt->next;
    uint8_t frozen = wt->frozen; /* append's: its partition is released */
    *wt = m->w;
    wt->next = next;
    wt->frozen = frozen;
    if (!m->handed) {
        wt->stored = 1;
        wt->delayed = 1;
        r->l_requeued++;
    }
    wt->requeued = 1;
    r->nrequeued++;
    if (wt->due_ns < r->next_due_ns)
        r->next_due_ns = wt->due_ns;
    free(m);
}

void rg__retry_take_handed(rg__worker_t *w, uint64_t key, uint64_t upto)
{
    struct rg__retry *r = &w->rt;
    pthread_mutex_lock(&r->lock);
    struct rg__requeued **at = &r->hand_head, *last = NULL;
    while (*at != NULL) {
        struct rg__requeued *m = *at;
        if (m->w.ev.key == key && m->epoch <= upto) {
            *at = m->next; /* in order: a unit's waits keep theirs */
            take_one(w, m);
            /* relaxed: as in take_moved() */
            atomic_fetch_sub_explicit(&r->hand_n, 1, memory_order_relaxed);
        } else {
            last = m;
            at = &m->next;
        }
    }
    r->hand_tail = last;
    pthread_mutex_unlock(&r->lock);
    publish(r);
}

void rg__retry_take_mail(rg__worker_t *w)
{
    struct rg__retry *r = &w->rt;
    pthread_mutex_lock(&r->lock);
    struct rg__requeued *m = r->mail_head;
    /* relaxed: under the lock, which orders the list */
    while (m != NULL) {
        struct rg__requeued *nx = m->next;
        if (m->unrelease >= 0) {
            for (uint32_t p = 0; p < r->nrel; p++)
                if (r->rel_parts[p] == m->unrelease) {
                    r->rel_parts[p] = r->rel_parts[--r->nrel];
                    break;
                }
            free(m);
            m = nx;
            /* relaxed: under the lock, as below */
            atomic_fetch_sub_explicit(&r->mail_n, 1, memory_order_relaxed);
            continue;
        }
        if (m->release >= 0) {
            bool known = false;
            for (uint32_t p = 0; p < r->nrel && !known; p++)
                known = r->rel_parts[p] == m->release;
            if (!known) {
                if (r->nrel == r->rel_cap) {
                    uint32_t cap = r->rel_cap ? r->rel_cap * 2 : 16;
                    int32_t *a = realloc(r->rel_parts, sizeof(int32_t) * cap);
                    if (a == NULL) {
                        rg__log(w->e, RG_LOG_ERR, "retry: worker %u: out of "
                                "memory releasing partition %d", w->idx,
                                (int)m->release);
                        abort(); /* running its waits here could apply
                                    them twice */
                    }
                    r->rel_parts = a;
                    r->rel_cap = cap;
                }
                r->rel_parts[r->nrel++] = m->release;
            }
            for (uint32_t k = 0; k < r->nkeys; k++)
                for (uint32_t i = r->keys[k].head; i != 0;
                     i = r->pool[i - 1].next)
                    if (r->pool[i - 1].ev.partition == m->release &&
                        !r->pool[i - 1].frozen) {
                        r->pool[i - 1].frozen = 1;
                        r->nfrozen++;
                    }
            free(m);
            m = nx;
            /* relaxed: under the lock, as below */
            atomic_fetch_sub_explicit(&r->mail_n, 1, memory_order_relaxed);
            continue;
        }
        take_one(w, m);
        m = nx;
        atomic_fetch_sub_explicit(&r->mail_n, 1, memory_order_relaxed);
    }
    r->mail_head = m;
    if (m == NULL)
        r->mail_tail = NULL;
    pthread_mutex_unlock(&r->lock);
    publish(r);
}

/* ---- undecodable messages (ingest thread) --------------------------------- */

/* unpack's reason for its error: set and read on the same ingest thread
 * within one push, so thread-local, no atomics */
static _Thread_local const char *unpack_reason;

void rg_unpack_reason(const char *reason)
{
    unpack_reason = reason;
}

void rg__retry_dead_msg(rg_dispatcher_t *d, const rg_msg_t *msg, int rc)
{
    rg_engine_t *e = d->e;
    if (e->dl_cb == NULL && !(e->epoch_mode && e->rc.keep)) {
        unpack_reason = NULL;
        return;
    }
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&e->st_dead_msgs, 1, memory_order_relaxed);
    char reason[RG_RETRY_REASON_MAX + 32];
    if (unpack_reason != NULL)
        snprintf(reason, sizeof(reason), "undecodable: %.*s",
                 RG_RETRY_REASON_MAX - 1, unpack_reason);
    else
        snprintf(reason, sizeof(reason), "undecodable: %s (%s)",
                 rg_strerror(rc), rg_err_name(rc));
    unpack_reason = NULL;
    rg_failure_t row;
    memset(&row, 0, sizeof(row));
    row.state = RG_FAILURE_DEAD;
    row.partition = msg->partition;
    row.offset = msg->offset;
    row.key = msg->key_len > 0 && msg->key != NULL
                  ? rg_hash_bytes(msg->key, msg->key_len) : 0;
    row.flags = RG_FAILURE_F_MESSAGE;
    row.first_ms = row.last_ms = wall_ms();
    row.reasons = reason;
    row.msg_key = msg->key;
    row.msg_key_len = msg->key != NULL ? msg->key_len : 0;
    if (row.msg_key_len > e->rc.payload_max) {
        row.msg_key_len = e->rc.payload_max;
        row.flags |= RG_FAILURE_F_TRUNCATED;
    }
    row.payload = msg->value;
    row.payload_len = msg->value != NULL ? msg->value_len : 0;
    if (row.payload_len > e->rc.payload_max) {
        row.payload_len = e->rc.payload_max;
        row.flags |= RG_FAILURE_F_TRUNCATED;
    }
    if (e->epoch_mode && e->rc.keep &&
        rg__fails_add(&d->dead_open, &row) != 0)
        rg__engine_fail(e, "retry: out of memory for a dead letter "
                        "(partition %d offset %lld)", (int)msg->partition,
                        (long long)msg->offset);
    if (e->dl_cb != NULL)
        e->dl_cb(e->dl_opaque, &row);
}

/* ---- public: callback, requeue, stats ------------------------------------- */

int rg_engine_set_dead_letter_cb(rg_engine_t *e, rg_dead_letter_cb *cb,
                                 void *opaque)
{
    if (e == NULL)
        return RG_EINVAL;
    /* relaxed: the caller's thread is the only one before start */
    if (atomic_load_explicit(&e->state, memory_order_relaxed) != ST_NEW)
        return RG_ESTATE;
    e->dl_cb = cb;
    e->dl_opaque = opaque;
    return 0;
}

/* Appends m to worker w's mailbox (any thread). */
static void post(rg__worker_t *w, struct rg__requeued *m)
{
    pthread_mutex_lock(&w->rt.lock);
    if (w->rt.mail_tail != NULL)
        w->rt.mail_tail->next = m;
    else
        w->rt.mail_head = m;
    w->rt.mail_tail = m;
    /* relaxed: the flag only makes the worker look; the list itself is
     * read under the lock. A ring event pushed after this call (the
     * source's first push after requeue, the barrier of the flush after
     * release) carries it to the worker through the ring's release and
     * the pop's acquire, see worker.c */
    atomic_fetch_add_explicit(&w->rt.mail_n, 1, memory_order_relaxed);
    pthread_mutex_unlock(&w->rt.lock);
}

struct requeue_ctx {
    rg_engine_t *e;
    int64_t count;
    int rc;
    struct rg__requeued *head, *tail; /* collected, posted after the scan */
};

static void requeue_row(void *arg, const rg_failure_t *row)
{
    struct requeue_ctx *c = arg;
    if (c->rc != 0 || row->state != RG_FAILURE_DELAYED)
        return;
    struct rg__requeued *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        c->rc = RG_ENOMEM;
        return;
    }
    m->release = m->unrelease = -1;
    struct rg__wait *wt = &m->w;
    wt->ev.key = row->key;
    wt->ev.offset = row->offset;
    wt->ev.partition = row->partition;
    wt->ev.len = row->event_len;
    if (row->flags & RG_FAILURE_F_TRUNCATED) {
        wt->truncated = 1;
        wt->ev.len = 0;
    } else if (row->event_len > RG_EVENT_INLINE_MAX) {
        void *p = malloc(row->event_len);
        if (p == NULL) {
            free(m);
            c->rc = RG_ENOMEM;
            return;
        }
        memcpy(p, row->payload, row->payload_len < row->event_len
                                    ? row->payload_len : row->event_len);
        wt->ev.flags = RG_EVENT_F_EXTERNAL;
        wt->ev.data.ext.ptr = p;
        wt->ev.data.ext.release = free_payload;
    } else {
        memcpy(wt->ev.data.bytes, row->payload,
               row->payload_len < RG_EVENT_INLINE_MAX ? row->payload_len
                                                      : RG_EVENT_INLINE_MAX);
    }
    wt->attempts = row->attempts;
    wt->first_ms = row->first_ms;
    wt->last_ms = row->last_ms;
    int64_t left = row->due_ms - wall_ms();
    wt->due_ns = left <= 0 ? 0 : rg__now_ns() + left * 1000000;
    if (row->reasons != NULL && row->reasons[0]) {
        wt->reasons = malloc(RG_FAILURE_REASONS_MAX);
        if (wt->reasons != NULL)
            snprintf(wt->reasons, RG_FAILURE_REASONS_MAX, "%s", row->reasons);
    }
    /* posted only once the scan is over: a worker that ran them now
     * could make the flusher write while the scan still reads on the
     * sink's connection (sink.h: one thread at a time) */
    if (c->tail != NULL)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->count++;
}

int rg_engine_release(rg_engine_t *e, const int32_t *partitions, size_t n)
{
    if (e == NULL || (n > 0 && partitions == NULL))
        return RG_EINVAL;
    if (!e->epoch_mode || !e->rc.keep)
        return 0;
    /* every message first: a release half posted would leave some
     * workers running waits the next owner also runs */
    size_t total = n * e->nworkers;
    struct rg__requeued **ms = calloc(total ? total : 1, sizeof(*ms));
    for (size_t i = 0; ms != NULL && i < total; i++)
        if ((ms[i] = calloc(1, sizeof(*ms[i]))) == NULL) {
            while (i-- > 0)
                free(ms[i]);
            free(ms);
            ms = NULL;
        }
    if (ms == NULL)
        return RG_ENOMEM;
    for (size_t i = 0; i < n; i++)
        for (unsigned w = 0; w < e->nworkers; w++) {
            struct rg__requeued *m = ms[i * e->nworkers + w];
            m->release = partitions[i];
            m->unrelease = -1;
            post(&e->workers[w], m);
        }
    free(ms);
    for (unsigned w = 0; w < e->nworkers; w++)
        rg__park_wake(&e->workers[w].wake.park);
    return 0;
}

/* Where a handed-back event goes: its key's route now. Without lanes its
 * worker. With lanes, the route of the dispatcher that owns its
 * partition (the one its later events come through: rg_dispatcher_reset()
 * of the partition, which the Kafka source makes before the hand-back,
 * sets the owner; dispatcher 0 until one is set), read while holding that
 * handle so no move (made only by the handle's holder, at a barrier)
 * slips between this choice and the post: a later move's MOVE_OUT
 * reaches the worker behind the mail, which it takes first, and the
 * event carries that dispatcher as its source, so it is handed over with
 * the key's others. Before the start route sets are empty: the worker.
 * While stopping: UINT32_MAX, not handed back (its row stays stored). */
static unsigned requeue_route(rg_engine_t *e, rg_event_t *ev,
                              rg_dispatcher_t **held)
{
    *held = NULL;
    int32_t p = ev->partition;
    if (e->nlanes == 0 || p < 0 || (uint32_t)p >= e->max_partitions)
        return rg__route(e, ev->key);
    /* relaxed: written once, by the owner inside a push call; a stale 0
     * picks dispatcher 0, the Kafka source's one (a memory pipeline hands
     * rows back before the start, when every route is the worker) */
    uint32_t owner = atomic_load_explicit(&e->owner[p], memory_order_relaxed);
    rg_dispatcher_t *d = &e->dispatchers[owner ? owner - 1 : 0];
    int rc = rg__dispatch_enter(d);
    if (rc == RG_ESTATE) /* not started: no key is on a lane yet */
        return rg__route(e, ev->key);
    if (rc != 0) /* stopping: the route may be a lane still busy with
                    the key; the row stays stored for the next start */
        return UINT32_MAX;
    *held = d; /* the caller posts, then lets go */
    ev->source = (uint16_t)d->idx; /* a later move of d hands it over */
    return rg__route_ev(d, d->route, ev, rg_hash64(ev->key));
}

int64_t rg_engine_requeue(rg_engine_t *e, const int32_t *partitions, size_t n,
                          char *errstr, size_t errstr_size)
{
    if (e == NULL || (n > 0 && partitions == NULL))
        return RG_EINVAL;
    if (!e->epoch_mode) {
        rg__seterr(errstr, errstr_size, "requeue: the engine has no sink");
        return RG_ESTATE;
    }
    if (!e->rc.keep || n == 0)
        return 0;
    /* the partitions are ours again: their waits may run here (a
     * release of theirs before is over); ahead of their requeued rows */
    for (size_t i = 0; i < n; i++)
        for (unsigned w = 0; w < e->nworkers; w++) {
            struct rg__requeued *m = calloc(1, sizeof(*m));
            if (m == NULL)
                return RG_ENOMEM;
            m->release = -1;
            m->unrelease = partitions[i];
            post(&e->workers[w], m);
        }
    struct requeue_ctx c = {e, 0, 0, NULL, NULL};
    int rc = e->sink.scan_failures(e->sink.self, RG_FAILURE_DELAYED,
                                   partitions, n, requeue_row, &c, errstr,
                                   errstr_size);
    if (rc == 0)
        rc = c.rc;
    if (rc != 0) {
        for (struct rg__requeued *m = c.head, *nx; m != NULL; m = nx) {
            nx = m->next;
            free(m->w.reasons);
            release_ev(&m->w.ev);
            free(m);
        }
        return rc;
    }
    for (struct rg__requeued *m = c.head, *nx; m != NULL; m = nx) {
        nx = m->next;
        m->next = NULL;
        rg_dispatcher_t *held = NULL;
        unsigned w = requeue_route(e, &m->w.ev, &held);
        if (w == UINT32_MAX) {
            free(m->w.reasons);
            release_ev(&m->w.ev);
            free(m);
            c.count--;
            continue;
        }
        post(&e->workers[w], m);
        if (held != NULL)
            rg__dispatch_exit(held);
    }
    if (c.count > 0) {
        for (unsigned i = 0; i < e->nworkers; i++)
            rg__park_wake(&e->workers[i].wake.park);
        rg__log(e, RG_LOG_INFO, "retry: %lld delayed events handed back to "
                "their workers", (long long)c.count);
    }
    return c.count;
}

int rg_engine_retry_finish(rg_engine_t *e, int timeout_ms)
{
    if (e == NULL || timeout_ms < 0)
        return RG_EINVAL;
    /* relaxed: a flag; the workers only shorten their waits on it */
    atomic_store_explicit(&e->retry_stopping, 1, memory_order_relaxed);
    for (unsigned w = 0; w < e->nworkers; w++)
        rg__park_wake(&e->workers[w].wake.park);
    int64_t until = timeout_ms > 0
                        ? rg__now_ns() + (int64_t)timeout_ms * 1000000
                        : INT64_MAX;
    while (rg__retry_any_waiting(e)) {
        /* acquire: pairs with the release in rg__engine_fail() */
        if (atomic_load_explicit(&e->failed, memory_order_acquire) ||
            rg__now_ns() >= until)
            return RG_ETIMEDOUT;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

bool rg__retry_any_waiting(rg_engine_t *e)
{
    for (unsigned i = 0; i < e->nworkers; i++)
        /* relaxed: a gauge; the stop only polls it for a while */
        if (atomic_load_explicit(&e->workers[i].rt.parked_now,
                                 memory_order_relaxed) != 0 ||
            atomic_load_explicit(&e->workers[i].rt.mail_n,
                                 memory_order_relaxed) != 0 ||
            atomic_load_explicit(&e->workers[i].rt.hand_n,
                                 memory_order_relaxed) != 0)
            return true;
    return false;
}

void rg_engine_retry_stats(rg_engine_t *e, rg_retry_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (e == NULL || e->workers == NULL)
        return;
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct rg__retry *r = &e->workers[i].rt;
        /* relaxed: statistics */
        out->retried += atomic_load_explicit(&r->retried, memory_order_relaxed);
        out->failed += atomic_load_explicit(&r->failed, memory_order_relaxed);
        out->delayed += atomic_load_explicit(&r->delayed, memory_order_relaxed);
        out->dead_lettered +=
            atomic_load_explicit(&r->dead, memory_order_relaxed);
        out->recovered +=
            atomic_load_explicit(&r->recovered, memory_order_relaxed);
        out->requeued +=
            atomic_load_explicit(&r->requeued, memory_order_relaxed);
        out->released +=
            atomic_load_explicit(&r->released, memory_order_relaxed);
        out->parked_now +=
            atomic_load_explicit(&r->parked_now, memory_order_relaxed);
        out->keys_now += atomic_load_explicit(&r->keys_now,
                                              memory_order_relaxed);
        out->full_waits +=
            atomic_load_explicit(&r->full_waits, memory_order_relaxed);
    }
    for (unsigned i = 0; i < e->nworkers; i++)
        for (int k = 0; k < RG_DEAD__COUNT; k++)
            /* relaxed: statistics */
            out->dead_by[k] += atomic_load_explicit(
                &e->workers[i].rt.dead_by[k], memory_order_relaxed);
    /* relaxed: a statistic */
    uint64_t msgs = atomic_load_explicit(&e->st_dead_msgs,
                                         memory_order_relaxed);
    out->dead_lettered += msgs;
    out->dead_by[RG_DEAD_UNDECODABLE] += msgs;
}

const char *rg_dead_reason_name(rg_dead_reason_t r)
{
    static const char *const names[RG_DEAD__COUNT] = {
        "failed", "attempts", "age", "undecodable", "unrunnable"};
    return (unsigned)r < RG_DEAD__COUNT ? names[r] : "unknown";
}
