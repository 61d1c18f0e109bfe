// cxx.cc - railgun.h from C++17, built against an installed railgun by
// tests/install_test.sh (-Wall -Wextra -Wpedantic -Werror): the whole
// public header compiles, and the engine and the ACK tracker's calls
// (plain exported functions in C++) work.
#include <railgun/railgun.h>
#include <atomic>
#include <cstdio>

static std::atomic<unsigned long> seen{0};

static int unpack(void *, const rg_msg_t *m, rg_event_t *ev)
{
    ev->key = static_cast<uint64_t>(m->offset);
    return 0;
}

static void count(void *, rg_ctx_t *ctx, rg_event_t *)
{
    if (rg_ctx_worker(ctx) == 0)
        seen.fetch_add(1, std::memory_order_relaxed);
}

int main()
{
    char err[256];
    rg_ack_t *a = rg_ack_new(64, 0, err, sizeof(err));
    if (a == nullptr || rg_ack_begin(a, 0) != 0 ||
        rg_ack_done(a, rg_ack_generation(a), 0) != 0 ||
        rg_ack_watermark(a) != 1) {
        std::fprintf(stderr, "cxx: the ACK tracker misbehaves\n");
        return 1;
    }
    rg_ack_destroy(a);
    rg_conf_t *conf = rg_conf_new();
    if (rg_conf_set(conf, "workers", "1", err, sizeof(err)) != 0)
        return 1;
    rg_processor_t proc = {unpack, count, nullptr, nullptr, nullptr, nullptr,
                           nullptr, 0};
    rg_engine_t *e = rg_engine_new(conf, &proc, err, sizeof(err));
    if (e == nullptr || rg_engine_start(e, err, sizeof(err)) != 0) {
        std::fprintf(stderr, "cxx: %s\n", err);
        return 1;
    }
    for (int64_t i = 0; i < 1000; i++) {
        rg_msg_t m = {0, i, nullptr, 0, nullptr, 0, 0, 0};
        rg_dispatcher_push(rg_engine_dispatcher(e, 0), &m);
    }
    rg_engine_destroy(e);
    std::printf("railgun %s from C++: %lu of 1000 events\n", rg_version(),
                seen.load());
    return seen.load() == 1000 ? 0 : 1;
}
