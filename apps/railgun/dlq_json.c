/*
 * dlq_json.c - failure rows as JSON (see dlq_json.h).
 */
#define _GNU_SOURCE
#include "dlq_json.h"
#include <inttypes.h>
#include <string.h>
#include "like_codec.h"
#include "likes_job.h"

size_t rg_dlq_utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2
               : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || len > n || (len == 2 && p[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (len == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) ||
                     (p[0] == 0xed && p[1] >= 0xa0)))
        return 0; /* overlong, or a surrogate */
    if (len == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || p[0] > 0xf4 ||
                     (p[0] == 0xf4 && p[1] >= 0x90)))
        return 0;
    return len;
}

bool rg_dlq_printable(const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80 && ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' &&
                             p[i] != '\r') || p[i] == 0x7f))
            return false;
        size_t l = rg_dlq_utf8_len(p + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

void rg_dlq_json_bytes(FILE *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        if (p[i] == '"' || p[i] == '\\') {
            fprintf(f, "\\%c", p[i++]);
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            fprintf(f, "\\u%04x", p[i++]);
        } else {
            size_t l = rg_dlq_utf8_len(p + i, n - i);
            if (l == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(p + i, 1, l, f);
                i += l;
            }
        }
    }
    fputc('"', f);
}

void rg_dlq_json_hex(FILE *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    fputc('"', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
    fputc('"', f);
}

/* A key or payload: "NAME_text" when printable, else "NAME_hex"; null
 * when absent. */
static void json_blob(FILE *out, const char *name, const void *p, size_t n,
                      bool present)
{
    if (!present) {
        fprintf(out, ",\"%s\":null", name);
        return;
    }
    bool text = rg_dlq_printable(p, n);
    fprintf(out, ",\"%s_%s\":", name, text ? "text" : "hex");
    if (text)
        rg_dlq_json_bytes(out, p, n);
    else
        rg_dlq_json_hex(out, p, n);
}

void rg_dlq_json_fields(FILE *out, const rg_failure_t *f)
{
    fprintf(out, "\"partition\":%" PRId32 ",\"offset\":%" PRId64
            ",\"route_key\":%" PRIu64 ",\"attempts\":%" PRIu32
            ",\"flags\":%" PRIu32 ",\"message\":%s,\"truncated\":%s"
            ",\"first_ms\":%" PRId64 ",\"last_ms\":%" PRId64
            ",\"event_len\":%" PRIu32 ",\"reasons\":", f->partition,
            f->offset, f->key, f->attempts, f->flags,
            f->flags & RG_FAILURE_F_MESSAGE ? "true" : "false",
            f->flags & RG_FAILURE_F_TRUNCATED ? "true" : "false",
            f->first_ms, f->last_ms, f->event_len);
    rg_dlq_json_bytes(out, f->reasons, strlen(f->reasons));
    json_blob(out, "msg_key", f->msg_key, f->msg_key_len, f->msg_key != NULL);
    fprintf(out, ",\"payload_len\":%zu", f->payload_len);
    json_blob(out, "payload", f->payload, f->payload_len, true);
    rg_like_t like;
    if (rg_likes_failure_like(f, &like) == 0) {
        char buf[RG_LIKE_JSON_MAX];
        size_t n = rg_like_encode_json(&like, buf);
        fprintf(out, ",\"like\":%.*s", (int)n, buf);
    }
}
