/*
 * railgun.h - the whole public API of the railgun engine.
 *
 * railgun turns a stream of keyed events (from Kafka or any other source)
 * into per-key processing on pinned worker threads, in per-key order, with
 * backpressure instead of loss, and (with a sink) into exact epochs of
 * merged rows and offsets.
 *
 * Libraries: librailgun (railgun::core: everything declared here but the
 * shipped sinks), librailgun_sqlite (railgun::sqlite) and
 * librailgun_mysql (railgun::mysql) for railgun/sinks.h, librailgun_kafka
 * (railgun::kafka) for railgun/kafka.h and railgun/producer.h, which this
 * header does not include. railgun.h compiles as C11 (also -Wpedantic)
 * and as C++17; railgun/ring.h's inline ring is C only.
 */
#ifndef RAILGUN_H
#define RAILGUN_H

#define RG_VERSION_MAJOR 0
#define RG_VERSION_MINOR 1
#define RG_VERSION_PATCH 0
#define RG_VERSION_STR "0.1.0"

#include "railgun/error.h"
#include "railgun/ack.h"
#include "railgun/conf.h"
#include "railgun/hash.h"
#include "railgun/engine.h"
#include "railgun/merge.h"
#include "railgun/metrics.h"
#include "railgun/sink.h"
#include "railgun/flush.h"
#include "railgun/retry.h"
#include "railgun/sinks.h"   /* the shipped sinks (their own libraries) */
#ifndef __cplusplus
#include "railgun/ring.h"   /* C only: inline <stdatomic.h> code */
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* The library's version string, e.g. "0.1.0". */
RG_EXPORT const char *rg_version(void);
#ifdef __cplusplus
}
#endif

#endif /* RAILGUN_H */
