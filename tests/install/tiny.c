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

static void count(void *opaque, unsigned worker, rg_event_t *ev)
{
    (void)opaque, (void)worker, (void)ev;
    seen++; /* one worker: no sharing */
}

int main(void)
{
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
