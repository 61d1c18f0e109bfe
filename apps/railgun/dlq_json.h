/*
 * dlq_json.h - a failure row (railgun/sink.h, rg_failure_t) as JSON, the
 * same way in `railgun dlq show --json` and in the dead letters `railgun
 * run` forwards to dlq.topic (run_dlq.c); and the text checks both use.
 * Bytes that are printable UTF-8 go out as a JSON string ("NAME_text"),
 * any others in hex ("NAME_hex"). Pure formatting: no I/O but the FILE
 * it is given.
 */
#ifndef RG_DLQ_JSON_H
#define RG_DLQ_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "railgun/sink.h"

/* The length of the valid UTF-8 sequence at p (up to n bytes), 0 if none
 * starts there. */
size_t rg_dlq_utf8_len(const unsigned char *p, size_t n);

/* Text a terminal shows as it is: valid UTF-8 without control characters
 * other than tab, newline and carriage return. */
bool rg_dlq_printable(const void *data, size_t n);

/* data as a JSON string (invalid UTF-8 as U+FFFD); as a hex string. */
void rg_dlq_json_bytes(FILE *f, const void *data, size_t n);
void rg_dlq_json_hex(FILE *f, const void *data, size_t n);

/*
 * The row's fields as JSON members, without braces: "partition",
 * "offset", "route_key", "attempts", "flags", "message", "truncated",
 * "first_ms", "last_ms", "event_len", "reasons", "msg_key_text" /
 * "msg_key_hex" / "msg_key": null, "payload_len", "payload_text" /
 * "payload_hex", and "like" (the likes job's event as the JSON like it
 * was) when the row holds one.
 */
void rg_dlq_json_fields(FILE *out, const rg_failure_t *f);

#endif /* RG_DLQ_JSON_H */
