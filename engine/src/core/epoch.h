/*
 * epoch.h - the epoch protocol (epoch mode: a sink is set), as one story,
 * and the calls of its three sides. Internal; included by engine_int.h.
 *
 * The story of epoch E
 *
 *   1. Request. Every `flush.interval.ms` the flusher (epoch_flush.c), or
 *      a worker whose delta reached `flush.max.keys` (epoch_worker.c),
 *      raises e->epoch_req to E (rg__epoch_request()).
 *   2. Barrier (epoch_dispatch.c, ingest thread). A dispatcher sees the
 *      request on its push path (one relaxed load per 32 events), writes
 *      the next offset of every partition it owns into snap[E % nslots],
 *      then a barrier event E into every worker ring, then publishes
 *      d->snapped = E (release). Every event below the snapshot is ahead
 *      of the barrier in its ring, every later event behind it. A quiet
 *      dispatcher's handle is taken by the flusher after 1 ms
 *      (rg__dispatcher_takeover()), which sends the barrier for it.
 *   3. Seal (epoch_worker.c, worker). A worker processes everything ahead
 *      of barrier E into its open delta; with several dispatchers
 *      (e->align) it holds each ring that delivered barrier E until all of
 *      them did, so the delta holds exactly the events below every
 *      dispatcher's snapshot. Then it publishes w->sealed = E (release)
 *      and opens E + 1 in slot (E + 1) % nslots, waiting while that slot
 *      still holds an uncommitted epoch (bounded memory).
 *   4. Write (epoch_flush.c, flusher). Once every worker sealed E and every
 *      dispatcher snapped E (acquire loads), the flusher writes all sealed
 *      deltas of E and the offsets of the snapshots as ONE sink
 *      transaction, retrying retriable errors with backoff; any other
 *      error stops the engine (rg__engine_fail()).
 *   5. Hand-off. After the commit: committed_next[p] := the snapshot
 *      (release; the committer hands it to the commit callback), the
 *      slots of E are cleared and committed_epoch := E (release), which
 *      frees slot E for epoch E + nslots in every worker and dispatcher.
 *
 * Invariant: the rows of epoch E count exactly the events below E's
 * offsets, and both land in one transaction; the commit callback never
 * reports an offset whose events are not stored. Stop sends one final
 * barrier on every (held) handle and the flusher writes through it.
 */
#ifndef RG_EPOCH_H
#define RG_EPOCH_H

/* engine_int.h includes this after its structures. */

/* ---- epoch_dispatch.c: the dispatcher's side ------------------------- */

/* Sends the barriers that are due; one relaxed load when none is. */
void rg__epoch_maybe_barrier(rg_dispatcher_t *d);

/* Closes every open epoch of d up to `upto` (snapshot, barriers).
 * Returns false when the engine failed meanwhile, or when a
 * push_burst_for() deadline passed first (d->timed_out is then set). */
bool rg__epoch_send_barriers(rg_dispatcher_t *d, uint64_t upto);

/* True when epoch ep's snapshot slot is free (the sink committed the
 * epoch that used it before). */
bool rg__epoch_slot_free(rg_engine_t *e, uint64_t ep);

/* The flusher sends barriers up to `upto` for a dispatcher whose ingest
 * thread is not inside a call; false when the handle was busy. */
bool rg__dispatcher_takeover(rg_dispatcher_t *d, uint64_t upto);

/* ---- epoch_worker.c: the worker's side ------------------------------- */

/* Processes evs[0..n) from dispatcher d's ring, sealing at barriers;
 * with aligned barriers what follows a barrier that must wait for the
 * other rings is held for later. */
void rg__epoch_consume(rg__worker_t *w, unsigned d, rg_event_t *evs,
                       uint32_t n);

/* After a batch was processed: asks for a barrier when the open delta
 * reached flush.max.keys. */
void rg__epoch_after_batch(rg__worker_t *w);

/* ---- epoch_flush.c: the flusher thread -------------------------------- */

void *rg__flusher_main(void *arg);
/* Asks for barrier `epoch` (no-op when one at or past it is due). */
void rg__epoch_request(rg_engine_t *e, uint64_t epoch);
/* Stops the engine on its own with a message (any thread). */
void rg__engine_fail(rg_engine_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees the epoch structures and closes the sink (rg_engine_destroy()). */
void rg__epoch_destroy(rg_engine_t *e);

/* ---- delta.c: the per-epoch delta ------------------------------------- */

int rg__delta_init(rg_delta_t *d, uint32_t max_rows, bool has_bytes,
                   bool has_staged);
void rg__delta_free(rg_delta_t *d);
void rg__delta_clear(rg_delta_t *d);
/* Iterates the byte-string keys: *cursor from 0; 1 per row, then 0. */
int rg__delta_next_bytes(const rg_delta_t *d, size_t *cursor,
                         rg_bytes_row_t *row);

#endif /* RG_EPOCH_H */
