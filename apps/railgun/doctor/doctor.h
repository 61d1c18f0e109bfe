/*
 * doctor.h - the analysis behind `railgun doctor` and GET /doctor.json:
 * from two or more scrapes of each node's metrics (prom.h), plus what the
 * group's registry in Redis says, name what is wrong, with its evidence
 * and what to do.
 *
 *   rg_doctor_t *d = rg_doctor_new(NULL);               // default thresholds
 *   int n = rg_doctor_node(d, "http://127.0.0.1:9464");
 *   rg_doctor_scrape(d, n, t0, snap0);                  // takes the snapshots
 *   rg_doctor_scrape(d, n, t1, snap1);
 *   rg_doctor_report_t *r;
 *   rg_doctor_run(d, &r);                               // r->nfindings == 0: healthy
 *   rg_doctor_report_json(r, &json, &len);              // the /doctor.json body
 *   rg_doctor_report_free(r);
 *   rg_doctor_destroy(d);
 *
 * Findings (id: what it means), each with a node (or "" for the group), a
 * subject, a one-line title, the evidence (the numbers it read) and an
 * action:
 *   node_unreachable      a node's last scrape failed
 *   kafka_unreachable     railgun_connected{component="kafka"} == 0
 *   sink_unreachable      railgun_connected{component="sink"} == 0
 *   redis_unreachable     railgun_connected{component="redis"} == 0 or
 *                         railgun_flow_degraded == 1
 *   producer_fallback     railgun_producer_fallback_active == 1
 *   registry_unreachable  the group's registry could not be read
 *   member_degraded       a registry member reports holding or fallback
 *   node_not_consuming    consumed nothing over the window, with lag
 *   stuck_watermark       a partition's oldest pending event is older
 *                         than stuck_s (its offset: the committed one)
 *   lag_growing           Burrow WARN: offsets move, lag grows every time
 *   lag_stalled           Burrow STALL: offset stands while lag > 0
 *   commits_stopped       Burrow STOP: the node commits nothing at all
 *   offset_rewind         Burrow REWIND: a committed offset went back
 *   partition_lag_skew    one partition's lag far above the median's
 *   partition_rate_skew   one partition receives far more than the median
 *   node_imbalance        one node processes far more than the others
 *   worker_imbalance      one worker busy, the others idle
 *   retry_storm           retries over retry_ratio of the processed
 *   runaway_retries       retries grow every time and events move on to
 *                         the delayed queue or the DLQ
 *   dead_letters          events were dead-lettered in the window
 *   bottleneck            the node does not keep up; `stage` names the
 *                         stage that holds it: flow, sink, worker, lane,
 *                         dispatcher or source
 * and, per partition, a Burrow-style lag status (OK, WARN, STALL, STOP,
 * REWIND; UNKNOWN with a single scrape and lag > 0).
 *
 * Rates need two scrapes of a node: with one, only the findings read from
 * a single scrape (degraded mode, stuck watermark, lag skew) are made.
 * Counters that went down between scrapes (a restart) give no rate.
 *
 * Threads: an rg_doctor_t is used by one thread at a time; a report is
 * immutable.
 */
#ifndef RG_DOCTOR_H
#define RG_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "prom.h"

typedef enum rg_doctor_severity_e {
    RG_DOCTOR_WARNING = 1,
    RG_DOCTOR_CRITICAL = 2
} rg_doctor_severity_t;

/* Burrow's lag statuses. */
typedef enum rg_lag_status_e {
    RG_LAG_OK = 0,
    RG_LAG_WARN,     /* offsets move, but lag grew at every scrape */
    RG_LAG_STALL,    /* the offset stands while lag > 0; the node commits */
    RG_LAG_STOP,     /* the node commits nothing (or stopped answering) */
    RG_LAG_REWIND,   /* the committed offset went back */
    RG_LAG_UNKNOWN   /* one scrape with lag > 0: no trend yet */
} rg_lag_status_t;

/* "OK", "WARN", "STALL", "STOP", "REWIND", "UNKNOWN". */
const char *rg_lag_status_name(int status);

/* Thresholds. rg_doctor_opts_init() fills the defaults given here. */
typedef struct rg_doctor_opts_s {
    double stuck_s;      /* oldest pending age of a stuck watermark (30) */
    double lag_min;      /* lag under this is never a backlog or skew (1000) */
    double skew;         /* partition skew: max > skew x median (4) */
    double node_skew;    /* node or worker skew: max > this x the others' mean (2) */
    double busy;         /* busy ratio of a saturated stage (0.9) */
    double rate_min;     /* events/s under which no rate is skewed (100) */
    double retry_ratio;  /* retried / processed of a retry storm (0.01) */
    double hot_share;    /* a hot key's share that explains a busy worker (0.3) */
    double throttled;    /* share of time waiting for tokens (0.5) */
} rg_doctor_opts_t;

void rg_doctor_opts_init(rg_doctor_opts_t *o);

#define RG_DOCTOR_VALUES_MAX 10

/* One number the finding read, named as the metric (or a derived name). */
typedef struct rg_doctor_value_s {
    char name[96];
    double value;
} rg_doctor_value_t;

typedef struct rg_doctor_finding_s {
    const char *id;          /* static: one of the ids above */
    int severity;            /* rg_doctor_severity_t */
    char node[256];          /* the node's name; "" for the group */
    char subject[160];       /* "likes[3]", "worker 2", "sink", "redis" */
    char stage[16];          /* bottleneck only, else "" */
    char topic[128];         /* with a partition, else "" */
    int32_t partition;       /* -1: none */
    int64_t offset;          /* -1: none (stuck_watermark: the event's) */
    char title[320];         /* one line: what is wrong */
    char evidence[900];      /* the numbers behind it */
    char action[600];        /* what to do */
    unsigned nvalues;
    rg_doctor_value_t values[RG_DOCTOR_VALUES_MAX];
} rg_doctor_finding_t;

typedef struct rg_doctor_partition_s {
    char node[256];
    char topic[128];
    int32_t partition;
    int status;              /* rg_lag_status_t */
    double lag;              /* at the last scrape (NaN: not exported) */
    double committed;        /* committed offset at the last scrape */
    double high_watermark;
    double consumed_rate;    /* committed offsets per second (NaN: one scrape) */
    double produced_rate;    /* high watermark per second */
    double oldest_age_s;     /* oldest pending event's age (NaN: not exported) */
    double pending;
    bool paused;
} rg_doctor_partition_t;

typedef struct rg_doctor_node_s {
    char node[256];
    bool ok;                 /* its last scrape succeeded */
    unsigned scrapes, failures;
    char error[256];         /* the last failure, "" if none */
    double window_s;         /* between its first and last good scrapes */
    double consumed_rate;    /* NaN: fewer than two scrapes */
    double processed_rate;
    double lag;              /* sum over its partitions, last scrape */
    unsigned partitions;
} rg_doctor_node_t;

typedef struct rg_doctor_report_s {
    double window_s;         /* the longest node window */
    rg_doctor_finding_t *findings;   /* critical first */
    size_t nfindings;
    rg_doctor_partition_t *partitions;
    size_t npartitions;
    rg_doctor_node_t *nodes;
    size_t nnodes;
} rg_doctor_report_t;

/* A member of the group as its registry in Redis shows it (redis.h's
 * rg_flow_node_t, without the dependency). */
typedef struct rg_doctor_member_s {
    char id[128];
    char host[128];
    const char *mode;        /* "leased", "holding", "fallback" */
    uint64_t granted;        /* events/s leased */
    uint64_t consumed_rate;  /* events/s in its last lease period */
    int64_t age_ms;          /* since its last lease */
} rg_doctor_member_t;

typedef struct rg_doctor_s rg_doctor_t;

/* A new analysis with thresholds o (copied; NULL: the defaults); NULL
 * when out of memory. */
rg_doctor_t *rg_doctor_new(const rg_doctor_opts_t *o);

/* Frees d and the snapshots it took; NULL is fine. */
void rg_doctor_destroy(rg_doctor_t *d);

/* Adds a node (a metrics endpoint); returns its index, or RG_ENOMEM. */
int rg_doctor_node(rg_doctor_t *d, const char *name);

/*
 * One good scrape of node n at time t_s (seconds, any monotonic clock,
 * increasing per node). Takes snap, also on failure. Returns 0, RG_EINVAL
 * (bad node, time going back) or RG_ENOMEM.
 */
int rg_doctor_scrape(rg_doctor_t *d, int n, double t_s, rg_prom_t *snap);

/* A failed scrape of node n at t_s, and why (one line). Returns as
 * rg_doctor_scrape(). */
int rg_doctor_scrape_failed(rg_doctor_t *d, int n, double t_s,
                            const char *why);

/* A member of the group's registry (copied). 0 or RG_ENOMEM. */
int rg_doctor_member(rg_doctor_t *d, const rg_doctor_member_t *m);

/* The group's registry could not be read: why (one line). 0 or RG_ENOMEM. */
int rg_doctor_registry_failed(rg_doctor_t *d, const char *why);

/*
 * Analyzes what was added into a new report (*out; rg_doctor_report_free()).
 * d is not changed: run it again after more scrapes. Returns 0 or
 * RG_ENOMEM (*out NULL).
 */
int rg_doctor_run(const rg_doctor_t *d, rg_doctor_report_t **out);

void rg_doctor_report_free(rg_doctor_report_t *r);

/* The first finding with this id (and node, when not NULL), or NULL. */
const rg_doctor_finding_t *rg_doctor_find(const rg_doctor_report_t *r,
                                          const char *id, const char *node);

/*
 * The report as one JSON object (NOTES-ctl.md, "doctor.json"), into a new
 * buffer (*out, NUL-terminated, *len bytes; free()). 0 or RG_ENOMEM.
 */
int rg_doctor_report_json(const rg_doctor_report_t *r, char **out,
                          size_t *len);

/* The report for a terminal: one block per finding, then the partitions'
 * lag statuses. */
void rg_doctor_report_text(const rg_doctor_report_t *r, FILE *f);

#endif /* RG_DOCTOR_H */
