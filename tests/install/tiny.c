/* tiny.c - built against an installed railgun by tests/install_test.sh. */
#include <stdio.h>
#include <railgun/railgun.h>

static unsigned long seen;

static int unpack(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque;
    ev->key = (uint64_t)m->offset;
    return 0;
}

static void count(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
    seen++; /* one worker: no sharing */
}

/* The tracker's inline calls reach its out-of-line paths (the advance
 * over done offsets, the full-window check) in the installed library. */
static int ack_ok(void)
{
    rg_ack_t *a = rg_ack_new(64, 0, NULL, 0);
    if (a == NULL)
        return 0;
    int ok = 1;
    for (int64_t o = 0; o < 64; o++)
        ok &= rg_ack_begin(a, o) == 0;
    ok &= rg_ack_begin(a, 64) == RG_EFULL;
    for (int64_t o = 63; o >= 1; o--)
        ok &= rg_ack_done(a, rg_ack_generation(a), o) == 0;
    ok &= rg_ack_watermark(a) == 0;
    ok &= rg_ack_done(a, rg_ack_generation(a), 0) == 0;
    ok &= rg_ack_watermark(a) == 64;
    rg_ack_destroy(a);
    return ok;
}

int main(void)
{
    if (!ack_ok()) {
        fprintf(stderr, "tiny: the ACK tracker's watermark is wrong\n");
        return 1;
    }
    char err[256];
    rg_conf_t *conf = rg_conf_new();
    if (rg_conf_set(conf, "workers", "1", err, sizeof(err)) != 0)
        return 1;
    rg_processor_t proc = {.unpack = unpack, .do_event = count};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    if (e == NULL || rg_engine_start(e, err, sizeof(err)) != 0) {
        fprintf(stderr, "tiny: %s\n", err);
        return 1;
    }
    for (int64_t i = 0; i < 1000; i++) {
        rg_msg_t m = {.offset = i};
        rg_dispatcher_push(rg_engine_dispatcher(e, 0), &m);
    }
    rg_engine_destroy(e);
    printf("railgun %s: %lu of 1000 events\n", rg_version(), seen);
    return seen == 1000 ? 0 : 1;
}
