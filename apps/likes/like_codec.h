/*
 * like_codec.h - like events on the wire (shared/DESIGN.md §4), decoded
 * strictly and encoded for the producers.
 *
 * JSON: message key = the video id in decimal; value = an object
 *   {"video_id": 42, "user_id": 7, "state": 1, "ts": 1700000000000}
 * where state 1 = liked, 0 = not liked, and "ts" (epoch ms) is optional.
 * Unknown fields are ignored (any JSON value, nested up to 32 levels).
 * Undecodable, each with its own named error: a missing, duplicated or
 * ill-typed field; an id outside 1..2^63-1; a state other than 0 or 1; a
 * negative ts; a key that is missing, not a plain decimal, or disagrees
 * with video_id; malformed JSON, control bytes or invalid UTF-8 in a
 * string; trailing bytes after the object; a value over the size limit.
 *
 * Binary (compact): 0xB1, flags (bit 0 liked, bit 1 ts present),
 * video_id u64 LE, user_id u64 LE, then ts i64 LE when bit 1 is set:
 * 18 or 26 bytes exactly; unknown flag bits are an error.
 *
 * Two decoders, one answer: rg_like_decode_strict is the definition;
 * rg_like_decode first tries a fast path that accepts only the exact
 * shape rg_like_encode_json writes (and binary values with a short key)
 * and hands everything else to the strict decoder, so its result, code
 * and fields, is the strict decoder's on every input (the fuzzer and
 * tests/test_like_codec.c compare the two).
 */
#ifndef RG_LIKE_CODEC_H
#define RG_LIKE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RG_LIKE_ID_MAX INT64_MAX       /* ids are 1 .. 2^63 - 1 */
#define RG_LIKE_BINARY_MAGIC 0xB1
#define RG_LIKE_JSON_MAX 128           /* longest JSON rg_like_encode_json
                                          writes, with the NUL */

typedef struct rg_like_s {
    uint64_t video_id;
    uint64_t user_id;
    int64_t  ts;       /* epoch ms, or -1 when absent */
    uint8_t  state;    /* 1 liked, 0 not liked */
} rg_like_t;

#define RG_LIKE_ERRORS(XX)                                                   \
    XX(NONE, "ok")                                                           \
    XX(EMPTY, "empty value")                                                 \
    XX(TOO_LARGE, "value larger than the limit")                             \
    XX(BAD_JSON, "malformed JSON")                                           \
    XX(NOT_OBJECT, "value is not a JSON object")                             \
    XX(TRAILING, "bytes after the JSON object")                              \
    XX(BAD_UTF8, "invalid UTF-8 or control byte in a string")                \
    XX(TOO_DEEP, "unknown field nested too deep")                            \
    XX(MISSING_FIELD, "video_id, user_id or state missing")                  \
    XX(DUPLICATE_FIELD, "a field appears twice")                             \
    XX(BAD_TYPE, "a field is not a plain integer")                           \
    XX(OUT_OF_RANGE, "id outside 1..2^63-1, state not 0/1, or ts < 0")       \
    XX(MISSING_KEY, "message has no key")                                    \
    XX(BAD_KEY, "key is not a plain decimal id")                             \
    XX(KEY_MISMATCH, "key disagrees with video_id")                          \
    XX(BAD_BINARY, "malformed binary like")

typedef enum rg_like_err_e {
#define RG__LIKE_ENUM(name, msg) RG_LIKE_E_##name,
    RG_LIKE_ERRORS(RG__LIKE_ENUM)
#undef RG__LIKE_ENUM
    RG_LIKE_E__COUNT
} rg_like_err_t;

/* "MISSING_FIELD" style name (for counters), and a one-line message. */
const char *rg_like_err_name(rg_like_err_t e);
const char *rg_like_err_msg(rg_like_err_t e);

/*
 * Decodes a message (key may be NULL) into *out. The value is binary when
 * its first byte is RG_LIKE_BINARY_MAGIC (never valid JSON), else JSON.
 * max_value_len bounds the value (0: no bound). Returns RG_LIKE_E_NONE or
 * the reason; *out is written only on success. Never reads past len.
 * Values in exactly the shape rg_like_encode_json writes take a fast path;
 * every other message goes to rg_like_decode_strict, and the result (code
 * and fields) is the strict decoder's on every input. Thread-safe: no
 * state.
 */
rg_like_err_t rg_like_decode(const void *key, size_t key_len,
                             const void *value, size_t value_len,
                             size_t max_value_len, rg_like_t *out);

/* The strict decoder alone: the definition of what rg_like_decode
 * returns, reachable so tests, the fuzzer and the bench can compare. */
rg_like_err_t rg_like_decode_strict(const void *key, size_t key_len,
                                    const void *value, size_t value_len,
                                    size_t max_value_len, rg_like_t *out);

/* The value alone, for a like that comes without a message key (an HTTP
 * body; the key is then derived from video_id with rg_like_encode_key()):
 * every check of rg_like_decode_strict() except the key's, with the same
 * reasons. Thread-safe: no state. */
rg_like_err_t rg_like_decode_unkeyed(const void *value, size_t value_len,
                                     size_t max_value_len, rg_like_t *out);

/* Internal, for tests and the fuzzer: the fast path alone (canonical
 * JSON, binary with a key of up to 16 digits). True, *out written, when
 * it accepted the message, which the strict decoder then accepts alike;
 * false, nothing written, when it leaves it to the strict decoder. Not a
 * decoder: false is not a rejection. */
bool rg__like_decode_fast(const void *key, size_t key_len,
                          const void *value, size_t value_len,
                          size_t max_value_len, rg_like_t *out);

/* JSON value for `like` into buf (RG_LIKE_JSON_MAX bytes); returns the
 * length without the NUL. "ts" is written only when like->ts >= 0. */
size_t rg_like_encode_json(const rg_like_t *like, char *buf);

/* Binary value into buf (26 bytes); returns 18 or 26. */
size_t rg_like_encode_binary(const rg_like_t *like, uint8_t *buf);

/* The message key for a like: video_id in decimal into buf (21 bytes);
 * returns the length without the NUL. */
size_t rg_like_encode_key(uint64_t video_id, char *buf);

#endif /* RG_LIKE_CODEC_H */
