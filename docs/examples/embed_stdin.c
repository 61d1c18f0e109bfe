/* embed_stdin.c - count how often each id (one per line on stdin) occurs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <railgun/railgun.h>

#define MAX_ID 1024
static unsigned long counts[MAX_ID]; /* each id is written by one worker */

static int unpack(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    char buf[32], *end;
    (void)opaque;
    if (m->value_len == 0 || m->value_len >= sizeof(buf))
        return RG_EDECODE;
    memcpy(buf, m->value, m->value_len);
    buf[m->value_len] = '\0';
    ev->key = strtoul(buf, &end, 10);
    return (*end != '\0' || ev->key >= MAX_ID) ? RG_EDECODE : 0;
}

static void count(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx;
    counts[ev->key]++;
}

int main(void)
{
    char err[256], line[64];
    rg_processor_t proc = {.unpack = unpack, .do_event = count};
    rg_engine_t *e = rg_engine_new(rg_conf_new(), &proc, err, sizeof(err));
    if (e == NULL || rg_engine_start(e, err, sizeof(err)) != 0) {
        fprintf(stderr, "railgun: %s\n", err);
        return 1;
    }
    rg_dispatcher_t *d = rg_engine_dispatcher(e, 0);
    for (int64_t off = 0; fgets(line, sizeof(line), stdin); off++) {
        rg_msg_t m = {.offset = off, .value = line,
                      .value_len = strcspn(line, "\n")};
        if (rg_dispatcher_push(d, &m) == RG_EDECODE)
            fprintf(stderr, "line %lld: not an id below %d\n",
                    (long long)off + 1, MAX_ID);
    }
    rg_engine_stop(e); /* drains: every accepted line has been counted */
    for (int id = 0; id < MAX_ID; id++)
        if (counts[id] != 0)
            printf("%d %lu\n", id, counts[id]);
    rg_engine_destroy(e);
    return 0;
}
