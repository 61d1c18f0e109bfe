/* wordcount.c - count the words of stdin into SQLite, exactly once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <railgun/railgun.h>

static void release(void *ptr, void *opaque) { (void)opaque; free(ptr); }

/* The word rides in the event: inline up to 32 bytes, else a copy. The
 * routing key stays the engine's default, the hash of the message key. */
static int unpack(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    if (m->key_len == 0 || m->key_len > RG_DELTA_KEY_MAX)
        return RG_EDECODE;
    ev->len = (uint32_t)m->key_len;
    if (m->key_len <= RG_EVENT_INLINE_MAX) {
        memcpy(ev->data.bytes, m->key, m->key_len);
        return 0;
    }
    if ((ev->data.ext.ptr = malloc(m->key_len)) == NULL)
        return RG_ENOMEM;
    memcpy(ev->data.ext.ptr, m->key, m->key_len);
    ev->data.ext.release = release;
    ev->flags |= RG_EVENT_F_EXTERNAL;
    return 0;
}

static void count(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque;
    const void *w = ev->flags & RG_EVENT_F_EXTERNAL ? ev->data.ext.ptr
                                                    : (void *)ev->data.bytes;
    if (rg_delta_merge_bytes(rg_ctx_delta(ctx), w, ev->len, 1) != 0)
        abort(); /* one key per event: within the delta's bound */
}

int main(int argc, char **argv)
{
    char err[512], word[512];
    rg_conf_t *conf = rg_conf_new();
    rg_sink_t sink;
    int32_t part = 0;
    int64_t next = -1, off = 0;
    if (argc != 2 || rg_conf_add_table(conf, rg_sqlite_conf_table(), err,
                                       sizeof(err)) ||
        rg_conf_set(conf, "sqlite.path", argv[1], err, sizeof(err)) ||
        rg_conf_set(conf, "sink.table.merged_bytes", "words", err,
                    sizeof(err)) ||
        rg_conf_set(conf, "sink.table.staged", "", err, sizeof(err)) ||
        rg_sink_sqlite_open(conf, RG_SINK_INIT_SCHEMA, &sink, err,
                            sizeof(err)) ||
        sink.claim(sink.self, &part, 1, &next, err, sizeof(err))) {
        fprintf(stderr, "wordcount: %s\n", argc == 2 ? err : "usage: "
                "wordcount DB < text");
        return 2;
    }
    rg_processor_t proc = {.unpack = unpack, .do_event = count};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    if (e == NULL || rg_engine_set_sink(e, &sink, err, sizeof(err)) ||
        rg_engine_start(e, err, sizeof(err))) {
        fprintf(stderr, "wordcount: %s\n", err);
        return 1;
    }
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    /* word i of stdin is offset i of partition 0: a rerun skips what the
     * sink already stores */
    while (scanf("%511s", word) == 1) {
        rg_msg_t m = {.partition = 0, .offset = off++, .key = word,
                      .key_len = strlen(word)};
        if (m.offset >= next && rg_dispatcher_push(d, &m) == RG_EDECODE)
            fprintf(stderr, "word %lld: too long\n", (long long)m.offset);
    }
    rg_engine_stop(e); /* the last epoch is committed before it returns */
    int rc = rg_engine_error(e) != NULL;
    if (rc)
        fprintf(stderr, "wordcount: %s\n", rg_engine_error(e));
    else
        printf("%lld words, %lld new\n", (long long)off,
               (long long)(off > next && next > 0 ? off - next
                                                  : next > 0 ? 0 : off));
    rg_engine_destroy(e); /* closes the sink */
    return rc;
}
