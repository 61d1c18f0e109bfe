/*
 * like_codec.c - strict decoding and encoding of like events (see
 * like_codec.h for the wire contract).
 *
 * The JSON decoder is a single pass over the bytes with no allocation:
 * it validates every string (escapes, UTF-8, no control bytes), every
 * number against JSON's grammar, skips unknown values up to a depth
 * limit, and reads the three (or four) fields it knows as plain integers.
 * It never reads past value_len, so values need no NUL terminator and
 * embedded NULs are just invalid bytes.
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

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
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

rg_like_err_t rg_like_decode(const void *key, size_t key_len,
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
    *out = like;
    return RG_LIKE_E_NONE;
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
