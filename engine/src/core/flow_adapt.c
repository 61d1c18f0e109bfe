/*
 * flow_adapt.c - the adaptive limit's controller (flow_adapt.h has the
 * rules). Runs on the flusher, after each committed transaction.
 */
#include <string.h>
#include "flow_adapt.h"

void rg__adapt_init(struct rg__adapt *a, uint64_t target_ms)
{
    memset(a, 0, sizeof(*a));
    a->target_ns = target_ms * 1000000u;
}

bool rg__adapt_update(struct rg__adapt *a, uint64_t epoch,
                      uint64_t open_epoch, int64_t now_ns, uint64_t lat_ns,
                      uint64_t accepted, uint64_t others, bool throttled)
{
    if (a->target_ns == 0)
        return false;
    /* the input rate since the last commit (0 on the first) */
    uint64_t in = 0;
    if (a->prev_ns != 0 && now_ns > a->prev_ns && accepted >= a->prev_accepted)
        in = (uint64_t)((double)(accepted - a->prev_accepted) * 1e9 /
                        (double)(now_ns - a->prev_ns));
    a->prev_ns = now_ns;
    a->prev_accepted = accepted;
    if (in > a->peak)
        a->peak = in;
    uint64_t before = a->rate;

    if (lat_ns > a->target_ns) {
        a->idle = 0;
        a->slow++;
        uint64_t base = a->rate != 0 && (in == 0 || a->rate < in) ? a->rate
                                                                  : in;
        if (a->slow >= RG__ADAPT_SLOW_COMMITS &&
            (a->cuts == 0 || epoch > a->cut_epoch ||
             lat_ns / 2 > a->cut_lat_ns) && base != 0) {
            uint64_t floor = a->peak / 100 > RG__ADAPT_FLOOR
                                 ? a->peak / 100 : RG__ADAPT_FLOOR;
            uint64_t cut = base / 10 * 7 + base % 10 * 7 / 10;
            if (lat_ns / 8 > a->target_ns) {
                /* 0.7 x 8 x target / latency, at least 0.3 x base */
                double f = 5.6 * (double)a->target_ns / (double)lat_ns;
                cut = f > 0.3 ? (uint64_t)((double)base * f)
                              : base / 10 * 3 + base % 10 * 3 / 10;
            }
            a->rate = cut > floor ? cut : floor;
            uint64_t step = base / 20 > a->peak / 50 ? base / 20
                                                     : a->peak / 50;
            a->step = step > 0 ? step : 1;
            a->cut_epoch = open_epoch;
            a->cut_lat_ns = lat_ns;
            a->cuts++;
        }
        return a->rate != before;
    }
    a->slow = 0;
    if (a->rate != 0 && lat_ns * 10 < a->target_ns * 8) {
        if (throttled) {
            a->idle = 0;
            a->rate += a->step;
            a->raises++;
            if (others != 0 && a->rate >= others)
                a->rate = 0; /* the other limits bind now */
        } else if (++a->idle >= RG__ADAPT_IDLE_COMMITS) {
            a->rate = 0; /* demand is below it: off until the next cut */
            a->idle = 0;
        }
    }
    return a->rate != before;
}
