// bench_main.cc - railgun-bench: every suite is SUITE/IMPL, railgun beside
// its peers in one binary, so every figure can be read as a ratio from one
// run. Counter: items_per_second (wall-clock, since work spans threads).
#include <benchmark/benchmark.h>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>
#include "peers.h"
extern "C" {
#include "workload.h"
#include "zipf.h"
}

namespace {

// Producer and consumer on different CPUs; with one CPU both share it.
int cpu_a() { return 0; }
int cpu_b() { return std::thread::hardware_concurrency() > 1 ? 1 : 0; }

constexpr unsigned kRingCapacity = 4096;
constexpr uint64_t kRingChunk = 1 << 20;

void ring_spsc(benchmark::State &state, int impl)
{
    rgb_ring *r = rgb_ring_open(impl, kRingCapacity, cpu_a(), cpu_b());
    for (auto _ : state)
        rgb_ring_produce(r, kRingChunk);
    if (rgb_ring_close(r) != 0)
        state.SkipWithError("items lost or out of order");
    state.SetItemsProcessed(state.iterations() * kRingChunk);
}

constexpr uint64_t kPipeKeys = 1000000;   // 1M keys, Zipf 0.99
constexpr size_t kPipeStream = 1 << 22;   // source cycles over 4M draws
constexpr uint64_t kPipeChunk = 1 << 20;

const std::vector<uint64_t> &zipf_stream()
{
    static std::vector<uint64_t> keys = [] {
        std::vector<uint64_t> k(kPipeStream);
        rg_rng_t rng;
        rg_zipf_t z;
        rg_rng_seed(&rng, 1);
        rg_zipf_init(&z, kPipeKeys, 0.99);
        for (auto &v : k)
            v = rg_zipf_next(&z, &rng);
        return k;
    }();
    return keys;
}

void pipeline(benchmark::State &state, int impl)
{
    const auto &keys = zipf_stream();
    rgb_pipe *p = rgb_pipe_open(impl, keys.data(), keys.size(),
                                kPipeKeys + 1, cpu_a(), cpu_b());
    for (auto _ : state)
        rgb_pipe_run(p, kPipeChunk);
    if (rgb_pipe_close(p) != 0)
        state.SkipWithError("per-key counts wrong");
    state.SetItemsProcessed(state.iterations() * kPipeChunk);
}

void merge(benchmark::State &state, int impl)
{
    const auto &keys = zipf_stream();
    rgb_merge *m = rgb_merge_open(impl, keys.data(), keys.size(),
                                  (uint32_t)kPipeKeys + 1);
    for (auto _ : state)
        rgb_merge_run(m);
    if (rgb_merge_close(m) != 0)
        state.SkipWithError("merged totals wrong");
    state.SetItemsProcessed(state.iterations() * keys.size());
}

constexpr uint64_t kAckOffsets = 1000000;

void ack(benchmark::State &state, int impl)
{
    static int64_t *order = rg_completion_order(kAckOffsets, 4096, 5);
    rgb_ack *b = rgb_ack_open(impl, kAckOffsets);
    bool ok = true;
    for (auto _ : state)
        ok &= rgb_ack_run(b, order, kAckOffsets) == 0;
    rgb_ack_close(b);
    if (!ok)
        state.SkipWithError("watermark did not reach the end");
    state.SetItemsProcessed(state.iterations() * kAckOffsets);
}

constexpr uint64_t kMetricsChunk = 1 << 22;

void metrics(benchmark::State &state, int impl)
{
    rgb_metrics *b = rgb_metrics_open(impl, cpu_a(), cpu_b());
    for (auto _ : state)
        rgb_metrics_run(b, kMetricsChunk);
    if (rgb_metrics_close(b) != 0)
        state.SkipWithError("rendered total differs from the updates");
    state.SetItemsProcessed(state.iterations() * kMetricsChunk);
}

// A whole scrape of the engine-shaped registry (items = renders).
void metrics_render(benchmark::State &state, int impl)
{
    rgb_metrics *b = rgb_metrics_open(impl, cpu_a(), cpu_b());
    for (auto _ : state)
        rgb_metrics_run(b, 16);
    if (rgb_metrics_close(b) != 0)
        state.SkipWithError("render lost a sample");
    state.SetItemsProcessed(state.iterations() * 16);
}

} // namespace

int main(int argc, char **argv)
{
    // glibc skips the atomic instructions of mutex lock/unlock while a
    // process has never started a thread. An engine always has threads,
    // so start one first: every suite then measures the multi-threaded
    // case, whatever ran before it (the lock-based peers ran 2x faster
    // when they happened to run first).
    std::thread([] {}).join();
    struct {
        const char *name;
        int impl;
    } rings[] = {
        {"ring_spsc/railgun", RGB_RING_RAILGUN},
        {"ring_spsc/railgun_burst32", RGB_RING_RAILGUN_BURST32},
        {"ring_spsc/ck_ring", RGB_RING_CK},
        {"ring_spsc/urcu_wfcq", RGB_RING_URCU_WFCQ},
        {"ring_spsc/mutex_queue", RGB_RING_MUTEX},
    };
    for (auto &r : rings)
        benchmark::RegisterBenchmark(r.name, ring_spsc, r.impl)->UseRealTime();
    benchmark::RegisterBenchmark("pipeline/railgun", pipeline,
                                 RGB_PIPE_RAILGUN)->UseRealTime();
    benchmark::RegisterBenchmark("pipeline/mutex_queue", pipeline,
                                 RGB_PIPE_MUTEX)->UseRealTime();
    benchmark::RegisterBenchmark("pipeline/railgun_scraped_10hz", pipeline,
                                 RGB_PIPE_RAILGUN_SCRAPED_10HZ)->UseRealTime();
    benchmark::RegisterBenchmark("merge/railgun", merge, RGB_MERGE_RAILGUN)
        ->UseRealTime();
    benchmark::RegisterBenchmark("merge/urcu_lfht", merge, RGB_MERGE_URCU_LFHT)
        ->UseRealTime();
    benchmark::RegisterBenchmark("merge/mutex_map", merge, RGB_MERGE_MUTEX)
        ->UseRealTime();
    benchmark::RegisterBenchmark("ack/railgun", ack, RGB_ACK_RAILGUN)
        ->UseRealTime();
    benchmark::RegisterBenchmark("ack/ordered_list", ack, RGB_ACK_LIST)
        ->UseRealTime();
    benchmark::RegisterBenchmark("ack/railgun_mt", ack, RGB_ACK_RAILGUN_MT)
        ->UseRealTime();
    benchmark::RegisterBenchmark("ack/ordered_list_mt", ack, RGB_ACK_LIST_MT)
        ->UseRealTime();
    struct {
        const char *name;
        int impl;
    } metric_peers[] = {
        {"metrics_counter/railgun", RGB_METRICS_COUNTER},
        {"metrics_counter/railgun_scraped_10hz", RGB_METRICS_COUNTER_SCRAPED_10HZ},
        {"metrics_counter/railgun_scraped_busy", RGB_METRICS_COUNTER_SCRAPED_BUSY},
        {"metrics_counter/atomic_shared", RGB_METRICS_COUNTER_ATOMIC},
        {"metrics_counter/mutex", RGB_METRICS_COUNTER_MUTEX},
        {"metrics_histogram/railgun", RGB_METRICS_HISTOGRAM},
        {"metrics_histogram/railgun_steady", RGB_METRICS_HISTOGRAM_STEADY},
        {"metrics_histogram/railgun_scraped_10hz",
         RGB_METRICS_HISTOGRAM_SCRAPED_10HZ},
        {"metrics_histogram/railgun_scraped_busy",
         RGB_METRICS_HISTOGRAM_SCRAPED_BUSY},
        {"metrics_histogram/mutex", RGB_METRICS_HISTOGRAM_MUTEX},
    };
    for (auto &m : metric_peers)
        benchmark::RegisterBenchmark(m.name, metrics, m.impl)->UseRealTime();
    benchmark::RegisterBenchmark("metrics_render/text", metrics_render,
                                 RGB_METRICS_RENDER_TEXT)->UseRealTime();
    benchmark::RegisterBenchmark("metrics_render/json", metrics_render,
                                 RGB_METRICS_RENDER_JSON)->UseRealTime();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
