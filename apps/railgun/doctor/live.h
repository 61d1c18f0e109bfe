/*
 * live.h - doctor inside a running node: GET /doctor.json serves the same
 * report as `railgun doctor --json --metrics <this node>`, computed from
 * the node's own registry.
 *
 *   rg_doctor_live_t *l = rg_doctor_live_new(registry, "self", NULL,
 *                                            1000, 5000, err, sizeof(err));
 *   rg_http_route(h, "GET", "/doctor.json", 0, rg_doctor_live_http, l);
 *   ...
 *   rg_http_destroy(h);           // no handler runs after this
 *   rg_doctor_live_destroy(l);    // before the registry goes
 *
 * A sampler thread renders the registry as Prometheus text every
 * interval_ms and keeps the renders of the last window_ms (at least two);
 * each request parses them and runs the analysis (doctor.h) over them, so
 * a report always covers the last few seconds, however often it is asked.
 * A render takes the registry's mutex for well under a millisecond, once
 * per interval: the hot path never waits for it.
 *
 * Threads: rg_doctor_live_json() and the handler from any thread, at the
 * same time too; new/destroy from one controlling thread.
 */
#ifndef RG_DOCTOR_LIVE_H
#define RG_DOCTOR_LIVE_H

#include <stddef.h>
#include "doctor.h"
#include "railgun/http.h"
#include "railgun/metrics.h"

typedef struct rg_doctor_live_s rg_doctor_live_t;

/*
 * Starts sampling registry m (which must outlive the handle) as node
 * `node` (the name in the report), with thresholds o (NULL: defaults),
 * every interval_ms (50..60000) over window_ms (interval_ms..600000).
 * Takes the first sample before returning. NULL with a one-line reason in
 * errstr: a bound out of range, no thread, out of memory.
 */
rg_doctor_live_t *rg_doctor_live_new(rg_metrics_t *m, const char *node,
                                     const rg_doctor_opts_t *o,
                                     unsigned interval_ms,
                                     unsigned window_ms, char *errstr,
                                     size_t errstr_size);

/* Stops the sampler and frees; NULL is fine. No call may be running. */
void rg_doctor_live_destroy(rg_doctor_live_t *l);

/* The report over the samples kept, as JSON (*out malloc'ed, *len bytes).
 * 0 or RG_ENOMEM. */
int rg_doctor_live_json(rg_doctor_live_t *l, char **out, size_t *len);

/* An rg_http handler (opaque: the rg_doctor_live_t) answering with
 * rg_doctor_live_json(): 200 application/json, or 500. */
void rg_doctor_live_http(rg_http_request_t *req, void *opaque);

#endif /* RG_DOCTOR_LIVE_H */
