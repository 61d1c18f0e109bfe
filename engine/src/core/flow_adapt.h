/*
 * flow_adapt.h - the adaptive limit of flow control: the node's rate
 * follows what the database can take (flow.sink.latency.target.ms).
 *
 * Input: each committed epoch's transaction time (begin .. commit
 * returned), measured by the flusher. Output: the bucket's ADAPTIVE limit
 * (0: none). The controller is AIMD on that limit:
 *
 *   RG__ADAPT_SLOW_COMMITS commits in a row slower than the target (one
 *   slow commit, a checkpoint or a lock, is not a trend), the last of an
 *   epoch opened after the last cut (the epochs already under way then
 *   were filled at the old rate: their slow commits say nothing new),
 *   or one more than twice as slow as the commit that made the last cut
 *   (the cut was not enough: the sink falls further behind, and as the
 *   flusher seals the next epoch only after a commit, every epoch grows
 *   with the commit before it; waiting for an epoch filled after the
 *   cut can then take several ever longer commits):
 *       base = min(rate, measured input rate)
 *       f    = 0.7, or 0.7 x 8 x target / latency when the commit took
 *              more than 8 x target, at least 0.3 (far too slow: a
 *              deeper cut, the next epochs are as far over)
 *       rate = max(floor, f x base)
 *       step = max(base / 20, peak / 50)  (5% of the rate that was too
 *                                          much, at least 2% of the peak)
 *   where peak is the highest input rate seen and floor the larger of
 *   RG__ADAPT_FLOOR and 1% of the peak: a run of slow commits cannot
 *   starve the node, and it climbs back in tens of epochs, not thousands.
 *   commit faster than 0.8 x target while the limit binds (pushes waited
 *   for tokens since the last commit):
 *       rate += step; once it reaches the node's other limits, 0 (they
 *       bind, not this one)
 *   faster and not binding for RG__ADAPT_IDLE_COMMITS commits in a row:
 *       0 (off until the next slow commit)
 *
 * Additive increase between cuts is linear (one step per fast commit, an
 * epoch apart), a cut is multiplicative: the classic sawtooth around the
 * rate whose transactions take the target. Never above the node's local
 * and global limits (the bucket enforces the lowest anyway; the cap here
 * only switches the controller off).
 *
 * Pure arithmetic on caller-owned state: no clock, no I/O, no atomics.
 * Thread: the flusher owns a struct rg__adapt.
 */
#ifndef RG_FLOW_ADAPT_H
#define RG_FLOW_ADAPT_H

#include <stdbool.h>
#include <stdint.h>

#define RG__ADAPT_FLOOR 10u          /* events/s: never cut below */
#define RG__ADAPT_IDLE_COMMITS 10u   /* fast, unthrottled commits -> off */
#define RG__ADAPT_SLOW_COMMITS 2u    /* slow commits in a row -> cut */

struct rg__adapt {
    uint64_t target_ns;      /* 0: off */
    uint64_t rate;           /* the ADAPTIVE limit now, 0: none */
    uint64_t step;           /* additive increase per fast commit */
    uint64_t cut_epoch;      /* the epoch open when it last cut */
    uint64_t cut_lat_ns;     /* the commit time that made the last cut */
    int64_t prev_ns;         /* the previous update, for the input rate */
    uint64_t prev_accepted;
    uint64_t peak;           /* the highest input rate seen */
    unsigned idle;           /* fast commits in a row, not binding */
    unsigned slow;           /* slow commits in a row */
    uint64_t cuts, raises;   /* counters for stats */
};

/* A controller for target_ms (0: off). */
void rg__adapt_init(struct rg__adapt *a, uint64_t target_ms);

/*
 * After epoch `epoch`'s commit, which took lat_ns, at now_ns (monotonic);
 * open_epoch: the epoch the dispatchers fill now. accepted: the
 * engine's accepted events so far (for the input rate since the last
 * call); others: the lowest non-zero of the node's other limits (0:
 * none); throttled: pushes waited for tokens since the last call.
 * Returns true when a->rate changed (the caller sets the bucket's
 * ADAPTIVE limit to it).
 */
bool rg__adapt_update(struct rg__adapt *a, uint64_t epoch,
                      uint64_t open_epoch, int64_t now_ns, uint64_t lat_ns,
                      uint64_t accepted, uint64_t others, bool throttled);

#endif /* RG_FLOW_ADAPT_H */
