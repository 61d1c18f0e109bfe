/*
 * like_codec.c - strict decoding and encoding of like events (see
 * like_codec.h for the wire contract), and a fast path in front of the
 * strict decoder for the values our own encoder writes.
 *
 * The JSON decoder is a single pass over the bytes with no allocation:
 * it validates every string (escapes, UTF-8, no control bytes), every
 * number against JSON's grammar, skips unknown values up to a depth
 * limit, and reads the three (or four) fields it knows as plain integers.
 * It never reads past value_len, so values need no NUL terminator and
 * embedded NULs are just invalid bytes.
 *
 * The fast path (at the end) only ever accepts: for a message in the
 * canonical shape it returns what the strict decoder would, and for any
 * other it declines and the strict decoder runs. It never rejects, so
 * every error comes from one place.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "like_codec.h"

#define MAX_DEPTH 32

static const char *const names[] = {
#define XX(name, msg) #name,
    RG_LIKE_ERRORS(XX)
#undef XX
};

static const char *const msgs[] = {
#define XX(name, msg) msg,
    RG_LIKE_ERRORS(XX)
#undef XX
};

const char *rg_like_err_name(rg_like_err_t e)
{
    return (unsigned)e < RG_LIKE_E__COUNT ? names[e] : "UNKNOWN";
}

const char *rg_like_err_msg(rg_like_err_t e)
{
    return (unsigned)e < RG_LIKE_E__COUNT ? msgs[e] : "unknown error";
}

/* ---- a tiny strict JSON reader ----------------------------------------- */

typedef struct reader {
    const uint8_t *s, *end;
} reader_t;

static void ws(reader_t *r)
{
    while (r->s < r->end &&
           (*r->s == ' ' || *r->s == '\t' || *r->s == '\n' || *r->s == '\r'))
        r->s++;
}

static bool eat(reader_t *r, uint8_t c)
{
    if (r->s < r->end && *r->s == c) {
        r->s++;
        return true;
    }
    return false;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0. */
static size_t utf8_len(const uint8_t *s, const uint8_t *end)
{
    uint8_t c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/*
 * Reads a string (the opening quote already consumed). When `out` is not
 * NULL, decodes ASCII content into it (out_size bytes, NUL-terminated);
 * content that does not fit, or that is not ASCII, makes *out_ok false
 * (such a name matches no known field).
 */
static rg_like_err_t read_string(reader_t *r, char *out, size_t out_size,
                                 bool *out_ok)
{
    size_t n = 0;
    if (out_ok != NULL)
        *out_ok = true;
    for (;;) {
        if (r->s >= r->end)
            return RG_LIKE_E_BAD_JSON;
        uint8_t c = *r->s++;
        uint32_t ch;
        if (c == '"')
            break;
        if (c < 0x20)
            return RG_LIKE_E_BAD_UTF8; /* control byte, NUL included */
        if (c == '\\') {
            if (r->s >= r->end)
                return RG_LIKE_E_BAD_JSON;
            uint8_t e = *r->s++;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u':
                if (r->end - r->s < 4)
                    return RG_LIKE_E_BAD_JSON;
                ch = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(r->s[i]);
                    if (h < 0)
                        return RG_LIKE_E_BAD_JSON;
                    ch = ch << 4 | (uint32_t)h;
                }
                r->s += 4;
                break;
            default:
                return RG_LIKE_E_BAD_JSON;
            }
        } else if (c >= 0x80) {
            size_t len = utf8_len(r->s - 1, r->end);
            if (len == 0)
                return RG_LIKE_E_BAD_UTF8;
            r->s += len - 1;
            ch = 0x80; /* any non-ASCII: no field name contains it */
        } else {
            ch = c;
        }
        if (out != NULL) {
            /* a NUL (\u0000) would end the name early: "video_id\u0000x"
             * is not "video_id" */
            if (ch == 0 || ch >= 0x80 || n + 1 >= out_size)
                *out_ok = false;
            else
                out[n++] = (char)ch;
        }
    }
    if (out != NULL)
        out[n] = '\0';
    return RG_LIKE_E_NONE;
}

/* A JSON number: sets *is_int (no fraction, no exponent), *neg, and the
 * magnitude of an integer in *mag (*overflow when it exceeds uint64). */
static rg_like_err_t read_number(reader_t *r, bool *is_int, bool *neg,
                                 uint64_t *mag, bool *overflow)
{
    *neg = eat(r, '-');
    *is_int = true;
    *overflow = false;
    *mag = 0;
    if (r->s >= r->end || *r->s < '0' || *r->s > '9')
        return RG_LIKE_E_BAD_JSON;
    if (*r->s == '0') {
        r->s++;
        if (r->s < r->end && *r->s >= '0' && *r->s <= '9')
            return RG_LIKE_E_BAD_JSON; /* leading zero */
    } else {
        while (r->s < r->end && *r->s >= '0' && *r->s <= '9') {
            uint64_t d = (uint64_t)(*r->s++ - '0');
            if (*mag > (UINT64_MAX - d) / 10)
                *overflow = true;
            else
                *mag = *mag * 10 + d;
        }
    }
    if (eat(r, '.')) {
        *is_int = false;
        if (r->s >= r->end || *r->s < '0' || *r->s > '9')
            return RG_LIKE_E_BAD_JSON;
        while (r->s < r->end && *r->s >= '0' && *r->s <= '9')
            r->s++;
    }
    if (r->s < r->end && (*r->s == 'e' || *r->s == 'E')) {
        *is_int = false;
        r->s++;
        if (r->s < r->end && (*r->s == '+' || *r->s == '-'))
            r->s++;
        if (r->s >= r->end || *r->s < '0' || *r->s > '9')
            return RG_LIKE_E_BAD_JSON;
        while (r->s < r->end && *r->s >= '0' && *r->s <= '9')
            r->s++;
    }
    return RG_LIKE_E_NONE;
}

static bool literal(reader_t *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->s) < n || memcmp(r->s, word, n) != 0)
        return false;
    r->s += n;
    return true;
}

/* Skips any JSON value, validating it. */
static rg_like_err_t skip_value(reader_t *r, int depth)
{
    if (depth > MAX_DEPTH)
        return RG_LIKE_E_TOO_DEEP;
    ws(r);
    if (r->s >= r->end)
        return RG_LIKE_E_BAD_JSON;
    rg_like_err_t e;
    switch (*r->s) {
    case '"':
        r->s++;
        return read_string(r, NULL, 0, NULL);
    case '{':
    case '[': {
        uint8_t close = *r->s == '{' ? '}' : ']';
        bool object = close == '}';
        r->s++;
        ws(r);
        if (eat(r, close))
            return RG_LIKE_E_NONE;
        for (;;) {
            if (object) {
                ws(r);
                if (!eat(r, '"'))
                    return RG_LIKE_E_BAD_JSON;
                if ((e = read_string(r, NULL, 0, NULL)) != RG_LIKE_E_NONE)
                    return e;
                ws(r);
                if (!eat(r, ':'))
                    return RG_LIKE_E_BAD_JSON;
            }
            if ((e = skip_value(r, depth + 1)) != RG_LIKE_E_NONE)
                return e;
            ws(r);
            if (eat(r, close))
                return RG_LIKE_E_NONE;
            if (!eat(r, ','))
                return RG_LIKE_E_BAD_JSON;
        }
    }
    case 't':
        return literal(r, "true") ? RG_LIKE_E_NONE : RG_LIKE_E_BAD_JSON;
    case 'f':
        return literal(r, "false") ? RG_LIKE_E_NONE : RG_LIKE_E_BAD_JSON;
    case 'n':
        return literal(r, "null") ? RG_LIKE_E_NONE : RG_LIKE_E_BAD_JSON;
    default: {
        bool is_int, neg, overflow;
        uint64_t mag;
        return read_number(r, &is_int, &neg, &mag, &overflow);
    }
    }
}

enum { F_VIDEO, F_USER, F_STATE, F_TS, F_COUNT };

/* Field names, zero-padded to 16 bytes like the buffer a name is read
 * into, so a name is one of them when both 8-byte halves are equal. */
static const char field_names[F_COUNT][16] = {"video_id", "user_id", "state",
                                              "ts"};

static inline uint64_t load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* The field a name read into a zeroed 16-byte buffer is, or F_COUNT. The
 * first letter picks the one candidate; two 8-byte compares settle it
 * (strcmp, a library call per field, cost more than the rest of a
 * decode). */
static int field_of(const char name[16])
{
    int f = name[0] == 'v' ? F_VIDEO : name[0] == 'u' ? F_USER
          : name[0] == 's' ? F_STATE : name[0] == 't' ? F_TS : F_COUNT;
    if (f == F_COUNT || load8(name) != load8(field_names[f]) ||
        load8(name + 8) != load8(field_names[f] + 8))
        return F_COUNT;
    return f;
}

/* A known field's value: a plain non-negative integer in [lo, hi]. */
static rg_like_err_t read_field(reader_t *r, uint64_t lo, uint64_t hi,
                                uint64_t *out)
{
    ws(r);
    if (r->s >= r->end)
        return RG_LIKE_E_BAD_JSON;
    uint8_t c = *r->s;
    if (c != '-' && (c < '0' || c > '9')) {
        /* another kind of value: valid JSON but the wrong type? */
        rg_like_err_t e = skip_value(r, 1);
        return e != RG_LIKE_E_NONE ? e : RG_LIKE_E_BAD_TYPE;
    }
    bool is_int, neg, overflow;
    uint64_t mag;
    rg_like_err_t e = read_number(r, &is_int, &neg, &mag, &overflow);
    if (e != RG_LIKE_E_NONE)
        return e;
    if (!is_int)
        return RG_LIKE_E_BAD_TYPE;
    if (neg || overflow || mag < lo || mag > hi)
        return RG_LIKE_E_OUT_OF_RANGE;
    *out = mag;
    return RG_LIKE_E_NONE;
}

static rg_like_err_t decode_json(const uint8_t *v, size_t len, rg_like_t *out)
{
    reader_t r = {v, v + len};
    uint64_t val[F_COUNT] = {0};
    bool seen[F_COUNT] = {false};
    rg_like_err_t e;
    ws(&r);
    if (!eat(&r, '{'))
        return r.s < r.end && (*r.s == '[' || *r.s == '"' || *r.s == '-' ||
                               (*r.s >= '0' && *r.s <= '9') || *r.s == 't' ||
                               *r.s == 'f' || *r.s == 'n')
                   ? RG_LIKE_E_NOT_OBJECT
                   : RG_LIKE_E_BAD_JSON;
    ws(&r);
    if (!eat(&r, '}')) {
        for (;;) {
            char name[16] = {0};
            bool name_ok;
            ws(&r);
            if (!eat(&r, '"'))
                return RG_LIKE_E_BAD_JSON;
            e = read_string(&r, name, sizeof(name), &name_ok);
            if (e != RG_LIKE_E_NONE)
                return e;
            ws(&r);
            if (!eat(&r, ':'))
                return RG_LIKE_E_BAD_JSON;
            int f = name_ok ? field_of(name) : F_COUNT;
            if (f == F_COUNT) {
                e = skip_value(&r, 1);
            } else if (seen[f]) {
                return RG_LIKE_E_DUPLICATE_FIELD;
            } else {
                uint64_t lo = (f == F_VIDEO || f == F_USER) ? 1 : 0;
                uint64_t hi = f == F_STATE ? 1 : RG_LIKE_ID_MAX;
                e = read_field(&r, lo, hi, &val[f]);
                seen[f] = true;
            }
            if (e != RG_LIKE_E_NONE)
                return e;
            ws(&r);
            if (eat(&r, '}'))
                break;
            if (!eat(&r, ','))
                return RG_LIKE_E_BAD_JSON;
        }
    }
    ws(&r);
    if (r.s != r.end)
        return RG_LIKE_E_TRAILING;
    if (!seen[F_VIDEO] || !seen[F_USER] || !seen[F_STATE])
        return RG_LIKE_E_MISSING_FIELD;
    out->video_id = val[F_VIDEO];
    out->user_id = val[F_USER];
    out->state = (uint8_t)val[F_STATE];
    out->ts = seen[F_TS] ? (int64_t)val[F_TS] : -1;
    return RG_LIKE_E_NONE;
}

/* 8 bytes as a little-endian word: byte i of the word is p[i] (the
 * binary form's integers, and the fast path's SWAR words). */
static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static void store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static rg_like_err_t decode_binary(const uint8_t *v, size_t len,
                                   rg_like_t *out)
{
    if (len < 2 || (v[1] & ~3u) != 0)
        return RG_LIKE_E_BAD_BINARY;
    bool has_ts = v[1] & 2;
    if (len != (has_ts ? 26u : 18u))
        return RG_LIKE_E_BAD_BINARY;
    uint64_t video = load_le64(v + 2), user = load_le64(v + 10);
    uint64_t ts = has_ts ? load_le64(v + 18) : 0;
    if (video < 1 || video > RG_LIKE_ID_MAX || user < 1 ||
        user > RG_LIKE_ID_MAX || ts > (uint64_t)INT64_MAX)
        return RG_LIKE_E_OUT_OF_RANGE;
    out->video_id = video;
    out->user_id = user;
    out->state = v[1] & 1;
    out->ts = has_ts ? (int64_t)ts : -1;
    return RG_LIKE_E_NONE;
}

/* Strict decimal id in 1..2^63-1: digits only, no leading zero. */
static rg_like_err_t parse_key(const uint8_t *k, size_t len, uint64_t *id)
{
    if (len == 0 || len > 19 || k[0] == '0')
        return RG_LIKE_E_BAD_KEY;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (k[i] < '0' || k[i] > '9')
            return RG_LIKE_E_BAD_KEY;
        v = v * 10 + (uint64_t)(k[i] - '0'); /* 19 digits fit in u64 */
    }
    if (v > RG_LIKE_ID_MAX)
        return RG_LIKE_E_BAD_KEY;
    *id = v;
    return RG_LIKE_E_NONE;
}

rg_like_err_t rg_like_decode_strict(const void *key, size_t key_len,
                                    const void *value, size_t value_len,
                                    size_t max_value_len, rg_like_t *out)
{
    const uint8_t *v = value;
    if (value == NULL || value_len == 0)
        return RG_LIKE_E_EMPTY;
    if (max_value_len != 0 && value_len > max_value_len)
        return RG_LIKE_E_TOO_LARGE;
    if (key == NULL || key_len == 0)
        return RG_LIKE_E_MISSING_KEY;
    uint64_t key_id;
    rg_like_err_t e = parse_key(key, key_len, &key_id);
    if (e != RG_LIKE_E_NONE)
        return e;
    rg_like_t like;
    e = v[0] == RG_LIKE_BINARY_MAGIC ? decode_binary(v, value_len, &like)
                                     : decode_json(v, value_len, &like);
    if (e != RG_LIKE_E_NONE)
        return e;
    if (like.video_id != key_id)
        return RG_LIKE_E_KEY_MISMATCH;
    /* field by field: the decoders just wrote `like` one field at a time,
     * and a 16-byte struct copy reading those narrower stores back cannot
     * be forwarded from the store buffer (it stalled the binary path for
     * a third of its time) */
    out->video_id = like.video_id;
    out->user_id = like.user_id;
    out->ts = like.ts;
    out->state = like.state;
    return RG_LIKE_E_NONE;
}

rg_like_err_t rg_like_decode_unkeyed(const void *value, size_t value_len,
                                     size_t max_value_len, rg_like_t *out)
{
    const uint8_t *v = value;
    if (value == NULL || value_len == 0)
        return RG_LIKE_E_EMPTY;
    if (max_value_len != 0 && value_len > max_value_len)
        return RG_LIKE_E_TOO_LARGE;
    rg_like_t like;
    rg_like_err_t e = v[0] == RG_LIKE_BINARY_MAGIC
                          ? decode_binary(v, value_len, &like)
                          : decode_json(v, value_len, &like);
    if (e != RG_LIKE_E_NONE)
        return e;
    *out = like;
    return RG_LIKE_E_NONE;
}

/* ---- the canonical fast path -------------------------------------------- */

/*
 * The exact shape rg_like_encode_json writes, and nothing else:
 *
 *   value := '{"video_id":' ID ',"user_id":' ID ',"state":' STATE
 *            [ ',"ts":' TS ] '}'          (then the end of the value)
 *   ID    := [1-9][0-9]{0,18}             with a value <= 2^63-1
 *   TS    := '0' | [1-9][0-9]{0,18}       with a value <= 2^63-1
 *   STATE := '0' | '1'
 *   key   := the bytes of the value's ID for video_id, exactly
 *   and max_value_len == 0 or the value's length <= max_value_len.
 *
 * No whitespace, no other field, no escape, no sign, no fraction. Every
 * such message is one the strict decoder accepts with the same fields
 * (NOTES-codec.md has the argument, field by field); every other message
 * is not handled here at all, so each rejection and its reason come from
 * the strict decoder.
 *
 * Digits are read 8 at a time (SWAR): a word's non-digit bytes are found
 * with two masks and the digits combined with three multiplies, so a
 * number costs no branch per digit, and the id lengths the Zipf stream
 * varies no misprediction per digit. Loads stay inside the value: near
 * its end the last 8 bytes are loaded and shifted (a value is at least
 * CANON_MIN >= 8 bytes long).
 */
#define CANON_MIN 36 /* {"video_id":1,"user_id":1,"state":0} */
#define CANON_MAX 97 /* two 19-digit ids and a 19-digit ts */
#define CANON_DIGITS 19 /* the most an id or ts may have (2^63-1 has 19) */

_Static_assert(CANON_MIN >= 8, "load_near_end reads 8 bytes before end");

/* True when the constant literal `lit` is at p, within end. The constant
 * size lets the compiler turn memcmp into a few loads. */
#define CANON_LIT(p, end, lit)                                               \
    ((size_t)((end) - (p)) >= sizeof(lit) - 1 &&                             \
     memcmp((p), (lit), sizeof(lit) - 1) == 0)

#define ONES 0x0101010101010101ull

/* The bytes q[0 .. min(8, end - q)) as a little-endian word, zero bytes
 * above them; never reads outside [end - 8, end) or [q, q + 8). */
static inline uint64_t load_near_end(const uint8_t *q, const uint8_t *end)
{
    size_t room = (size_t)(end - q);
    if (room >= 8)
        return load_le64(q);
    if (room == 0)
        return 0;
    return load_le64(end - 8) >> (8 * (8 - room));
}

/* Index of the first byte of w that is not an ASCII digit, 8 when all
 * are. Mask a flags a byte whose high nibble is not 3, mask b one whose
 * low nibble is over 9 (adding 6 carries it into the high nibble). A
 * carry out of a byte (only from one >= 0xFA, itself not a digit) can
 * spoil b's bytes above it, never the first non-digit. */
static inline unsigned first_nondigit(uint64_t w)
{
    uint64_t a = (w & 0xF0 * ONES) ^ (0x30 * ONES);
    uint64_t b = ((w + 0x06 * ONES) & 0xF0 * ONES) ^ (0x30 * ONES);
    uint64_t t = a | b;
    return t == 0 ? 8u : (unsigned)__builtin_ctzll(t) / 8;
}

/* The number written by the 8 digit values in the bytes of d, the first
 * (most significant) in byte 0: pairs of digits first (10 * d[i] +
 * d[i + 1] into byte i), then the four pairs weighted 10^6, 10^4, 10^2, 1
 * by two multiplies whose upper halves sum them. */
static inline uint64_t swar8_value(uint64_t d)
{
    d = d * 10 + (d >> 8);
    d = (d & 0x000000FF000000FFull) * (100 + (1000000ull << 32)) +
        ((d >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32));
    return d >> 32;
}

static const uint64_t pow10_u64[9] = {1, 10, 100, 1000, 10000, 100000,
                                      1000000, 10000000, 100000000};

/* The number written by the n (1..8) digits in the low bytes of w: their
 * values moved to the top bytes, so the bytes below read as leading
 * zeros. */
static inline uint64_t digits_value(uint64_t w, unsigned n)
{
    uint64_t d = w & 0x0F * ONES;
    if (n < 8)
        d <<= 8 * (8 - n);
    return swar8_value(d);
}

/* 4 bytes as a little-endian word, like load_le64. */
static inline uint32_t load_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/*
 * The message key as a plain decimal id when it has 1..16 digits and no
 * leading zero (so it is at most 10^16 - 1, inside 1..2^63-1): true with
 * *id set. False for every other key, which the strict parse_key then
 * judges; 17 to 19 digits are valid keys that this one just leaves to
 * it. The key is read with loads that never leave its key_len bytes: for
 * 1..3 bytes k[0], k[n/2], k[n-1] (placed so that, masked to n bytes, the
 * word is the key); for 4..8 two overlapping 4-byte loads; for 9..16 two
 * overlapping 8-byte loads. The size classes are three predictable-enough
 * branches in place of a loop whose exit mispredicts on every change of
 * key length the Zipf stream makes.
 */
static inline bool key_fast(const uint8_t *k, size_t n, uint64_t *id)
{
    uint64_t lo, hi = 0;
    size_t nlo = n;
    if (n - 1 >= 16 || k[0] == '0')
        return false; /* n == 0 wraps to a huge n - 1 */
    if (n <= 3) {
        lo = (uint64_t)k[0] | (uint64_t)k[n >> 1] << 8 |
             (uint64_t)k[n - 1] << 16;
        lo &= (1ull << (8 * n)) - 1;
    } else if (n <= 8) {
        lo = (uint64_t)load_le32(k) | (uint64_t)load_le32(k + n - 4)
                                         << (8 * (n - 4));
    } else {
        lo = load_le64(k);
        hi = load_le64(k + n - 8) >> (8 * (16 - n)); /* bytes 8 .. n-1 */
        nlo = 8;
    }
    /* the bytes above nlo (and above n - 8 in hi) are zero: non-digits */
    if (first_nondigit(lo) != nlo)
        return false;
    uint64_t v = digits_value(lo, (unsigned)nlo);
    if (n > 8) {
        unsigned nhi = (unsigned)(n - 8);
        if (first_nondigit(hi) != nhi)
            return false;
        v = v * pow10_u64[nhi] + digits_value(hi, nhi);
    }
    *id = v;
    return true;
}

/*
 * A canonical integer at *pp: 1..19 digits, no leading zero (a lone "0"
 * only when zero_ok), value in [zero_ok ? 0 : 1, 2^63-1]. Moves *pp past
 * the digits and returns their count, or returns 0 when the number is not
 * canonical. Up to 19 digits the value is below 10^19 < 2^64, so v wraps
 * only once n is over 19, and then it is not used. The byte after the
 * digits is not a digit; the caller's next literal decides whether it is
 * the one the grammar wants.
 */
static inline size_t
canon_uint(const uint8_t **pp, const uint8_t *end, bool zero_ok,
           uint64_t *out)
{
    const uint8_t *p = *pp;
    size_t n = 0;
    uint64_t v = 0;
    for (;;) {
        uint64_t w = load_near_end(p + n, end);
        unsigned k = first_nondigit(w);
        if (k != 0)
            v = v * pow10_u64[k] + digits_value(w, k);
        n += k;
        if (k < 8 || n > CANON_DIGITS)
            break;
    }
    if (n == 0 || n > CANON_DIGITS || (p[0] == '0' && (n > 1 || !zero_ok)) ||
        v > (uint64_t)RG_LIKE_ID_MAX)
        return 0;
    *pp = p + n;
    *out = v;
    return n;
}

/* True, with *out written, when the JSON value has the canonical shape
 * above and the key is its ID's digits; false, nothing written,
 * otherwise. */
static bool decode_canonical_json(const uint8_t *key, size_t key_len,
                                  const uint8_t *v, size_t len,
                                  rg_like_t *out)
{
    if (len < CANON_MIN || len > CANON_MAX)
        return false;
    const uint8_t *p = v, *end = v + len, *video_digits;
    uint64_t video, user, ts_digits;
    int64_t ts = -1; /* absent */
    size_t video_n;
    if (!CANON_LIT(p, end, "{\"video_id\":"))
        return false;
    p += sizeof("{\"video_id\":") - 1;
    video_digits = p;
    if ((video_n = canon_uint(&p, end, false, &video)) == 0)
        return false;
    /* The key is a valid one equal to video_id exactly when it is the
     * same digits: both are plain decimals without a leading zero. (glibc
     * compares these few bytes with masked loads and no branch on the
     * length, which measured faster than key_fast here.) */
    if (key_len != video_n || memcmp(key, video_digits, video_n) != 0)
        return false;
    if (!CANON_LIT(p, end, ",\"user_id\":"))
        return false;
    p += sizeof(",\"user_id\":") - 1;
    if (canon_uint(&p, end, false, &user) == 0)
        return false;
    if (!CANON_LIT(p, end, ",\"state\":"))
        return false;
    p += sizeof(",\"state\":") - 1;
    if (end - p < 2 || (p[0] != '0' && p[0] != '1'))
        return false;
    uint8_t state = (uint8_t)(p[0] - '0');
    p++;
    if (p[0] != '}') {
        if (!CANON_LIT(p, end, ",\"ts\":"))
            return false;
        p += sizeof(",\"ts\":") - 1;
        if (canon_uint(&p, end, true, &ts_digits) == 0)
            return false;
        if (p == end || p[0] != '}')
            return false;
        ts = (int64_t)ts_digits; /* <= 2^63-1: canon_uint checked */
    }
    if (p + 1 != end)
        return false; /* bytes after the object */
    out->video_id = video;
    out->user_id = user;
    out->state = state;
    out->ts = ts;
    return true;
}

/*
 * The fast path: true, with *out written, only for a message the strict
 * decoder accepts, with the fields it would write; false, nothing
 * written, for every other message (and for some valid ones: 17- to
 * 19-digit keys, JSON in any other shape), which the caller hands to the
 * strict decoder. The checks before the value are the strict decoder's,
 * as conditions to accept rather than errors to return. A binary value
 * goes through decode_binary itself, the strict code, with only the key
 * read faster.
 */
static bool decode_fast(const uint8_t *key, size_t key_len, const uint8_t *v,
                        size_t len, size_t max_value_len, rg_like_t *out)
{
    uint64_t key_id;
    if (v == NULL || len == 0 || key == NULL ||
        (max_value_len != 0 && len > max_value_len))
        return false;
    if (v[0] != RG_LIKE_BINARY_MAGIC)
        return decode_canonical_json(key, key_len, v, len, out);
    rg_like_t like;
    if (!key_fast(key, key_len, &key_id) ||
        decode_binary(v, len, &like) != RG_LIKE_E_NONE ||
        like.video_id != key_id)
        return false;
    out->video_id = like.video_id;
    out->user_id = like.user_id;
    out->ts = like.ts;
    out->state = like.state;
    return true;
}

rg_like_err_t rg_like_decode(const void *key, size_t key_len,
                             const void *value, size_t value_len,
                             size_t max_value_len, rg_like_t *out)
{
    if (decode_fast(key, key_len, value, value_len, max_value_len, out))
        return RG_LIKE_E_NONE;
    return rg_like_decode_strict(key, key_len, value, value_len,
                                 max_value_len, out);
}

bool rg__like_decode_fast(const void *key, size_t key_len,
                          const void *value, size_t value_len,
                          size_t max_value_len, rg_like_t *out)
{
    return decode_fast(key, key_len, value, value_len, max_value_len, out);
}

size_t rg_like_encode_json(const rg_like_t *like, char *buf)
{
    int n;
    if (like->ts >= 0)
        n = snprintf(buf, RG_LIKE_JSON_MAX,
                     "{\"video_id\":%llu,\"user_id\":%llu,\"state\":%u,"
                     "\"ts\":%lld}",
                     (unsigned long long)like->video_id,
                     (unsigned long long)like->user_id, like->state ? 1u : 0u,
                     (long long)like->ts);
    else
        n = snprintf(buf, RG_LIKE_JSON_MAX,
                     "{\"video_id\":%llu,\"user_id\":%llu,\"state\":%u}",
                     (unsigned long long)like->video_id,
                     (unsigned long long)like->user_id,
                     like->state ? 1u : 0u);
    return (size_t)n;
}

size_t rg_like_encode_binary(const rg_like_t *like, uint8_t *buf)
{
    bool has_ts = like->ts >= 0;
    buf[0] = RG_LIKE_BINARY_MAGIC;
    buf[1] = (uint8_t)((like->state ? 1 : 0) | (has_ts ? 2 : 0));
    store_le64(buf + 2, like->video_id);
    store_le64(buf + 10, like->user_id);
    if (!has_ts)
        return 18;
    store_le64(buf + 18, (uint64_t)like->ts);
    return 26;
}

size_t rg_like_encode_key(uint64_t video_id, char *buf)
{
    return (size_t)snprintf(buf, 21, "%llu", (unsigned long long)video_id);
}
