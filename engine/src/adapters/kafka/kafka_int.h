/*
 * kafka_int.h - what the Kafka adapter's files share (internal).
 */
#ifndef RG_KAFKA_INT_H
#define RG_KAFKA_INT_H

#include <stddef.h>
#include "railgun/conf.h"

/* A copy of `given` with the Kafka table added (defaults for what the
 * caller did not set); NULL with errstr. The caller destroys it. */
rg_conf_t *rg__kafka_conf(const rg_conf_t *given, char *errstr, size_t size);

#endif /* RG_KAFKA_INT_H */
