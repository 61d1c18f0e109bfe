// bench_main.cc - railgun-bench: every suite is SUITE/IMPL, railgun beside
// its peers in one binary, so every figure can be read as a ratio from one
// run. Counter: items_per_second (wall-clock, since work spans threads).
#include <benchmark/benchmark.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
#include "peers.h"
#include "railgun/hash.h"
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

constexpr size_t kDecodeValues = 1 << 16; // about 4 MB of JSON

void decode(benchmark::State &state, int impl)
{
    rgb_decode *d = rgb_decode_open(impl, kDecodeValues, 1);
    if (d == nullptr) {
        state.SkipWithError("out of memory");
        return;
    }
    bool ok = true;
    for (auto _ : state)
        ok &= rgb_decode_run(d) == 0;
    if (!ok)
        state.SkipWithError("a value decoded wrong");
    state.SetItemsProcessed(state.iterations() * kDecodeValues);
    state.SetBytesProcessed(state.iterations() * rgb_decode_bytes(d));
    rgb_decode_close(d);
}

// Hot-key detection: the detection test's streams (10M draws over 1M
// keys, Zipf 0.9 / 1.1 / 1.3), ranks turned into arbitrary 64-bit keys.
constexpr uint64_t kHkKeys = 1000000;
constexpr size_t kHkStream = 10000000;
constexpr uint64_t kHkChunk = 1 << 20;
constexpr double kHkSkews[] = {0.9, 1.1, 1.3};

const std::vector<uint64_t> &hk_stream(int si)
{
    static std::vector<uint64_t> keys[3];
    if (keys[si].empty()) {
        keys[si].resize(kHkStream);
        rg_rng_t rng;
        rg_zipf_t z;
        rg_rng_seed(&rng, 100 + si);
        rg_zipf_init(&z, kHkKeys, kHkSkews[si]);
        for (auto &v : keys[si])
            v = rg_zipf_next(&z, &rng) * 0x9E3779B97F4A7C15ull;
    }
    return keys[si];
}

void hotkey(benchmark::State &state, int impl, int si)
{
    const auto &keys = hk_stream(si);
    // accuracy against the exact counter, once per (impl, stream)
    static double acc[5][3][2];
    static uint64_t hot[5][3];
    static bool done[5][3];
    if (!done[impl][si]) {
        rgb_hk_accuracy(impl, keys.data(), keys.size(), kHkKeys,
                        &acc[impl][si][0], &acc[impl][si][1], &hot[impl][si]);
        done[impl][si] = true;
    }
    rgb_hk *b = rgb_hk_open(impl, keys.data(), keys.size(), kHkKeys);
    for (auto _ : state)
        rgb_hk_run(b, kHkChunk);
    if (rgb_hk_close(b) != 0)
        state.SkipWithError("window total wrong");
    state.SetItemsProcessed(state.iterations() * kHkChunk);
    state.counters["precision"] = acc[impl][si][0];
    state.counters["recall"] = acc[impl][si][1];
    state.counters["hot_pairs"] = (double)hot[impl][si];
}

// The per-event test a dispatcher routes by: keys of the Zipf 1.1 stream
// against its top `members` keys (0: no hot key, the common case). The
// first 64Ki events, cycled, so the keys and their hashes stay in cache as
// they would be in registers in a dispatcher: the figure is the test's.
void hot_set(benchmark::State &state, int impl, unsigned members)
{
    constexpr size_t kWin = 65536;
    const auto &stream = hk_stream(1);
    std::vector<uint64_t> keys(stream.begin(), stream.begin() + kWin);
    std::vector<uint64_t> hashes(kWin);
    for (size_t i = 0; i < kWin; i++)
        hashes[i] = rg_hash64(keys[i]);
    std::vector<uint64_t> hot(members);
    for (unsigned i = 0; i < members; i++)
        hot[i] = (i + 1) * 0x9E3779B97F4A7C15ull;
    rgb_hkset *s = rgb_hkset_open(impl, hot.data(), members);
    uint64_t hits = 0;
    for (auto _ : state)
        for (size_t r = 0; r < kHkChunk / kWin; r++)
            hits += rgb_hkset_run(s, keys.data(), hashes.data(), kWin);
    rgb_hkset_close(s);
    if (members > 0 && hits == 0)
        state.SkipWithError("no hot key found");
    state.SetItemsProcessed(state.iterations() * kHkChunk);
    state.counters["hit_share"] =
        (double)hits / (double)(state.iterations() * kHkChunk);
}

// flow control: one token bucket check per burst of 32 events
constexpr uint64_t kFlowChunk = 1 << 20;

void flow(benchmark::State &state, int impl)
{
    rgb_flow *f = rgb_flow_open(impl);
    for (auto _ : state)
        rgb_flow_run(f, kFlowChunk);
    if (rgb_flow_close(f, state.iterations() * kFlowChunk) != 0)
        state.SkipWithError("a check was refused or events went missing");
    state.SetItemsProcessed(state.iterations() * kFlowChunk);
    // ns per event, so the per-event cost reads off directly
    state.counters["ns_per_event"] = benchmark::Counter(
        static_cast<double>(state.iterations() * kFlowChunk),
        benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// 32 MiB of records per pass, all durable at its end
constexpr uint64_t kSpoolPassBytes = 32u << 20;

void spool(benchmark::State &state, int impl)
{
    char err[320] = "";
    uint64_t sync_bytes = (uint64_t)state.range(0);
    rgb_spool *s = rgb_spool_open(impl, sync_bytes, err, sizeof(err));
    if (s == nullptr) {
        state.SkipWithError(err);
        return;
    }
    uint64_t rec = rgb_spool_record_bytes(s);
    uint64_t n = kSpoolPassBytes / rec;
    bool ok = true;
    for (auto _ : state) {
        if (rgb_spool_run(s, n) != 0) {
            ok = false;
            break;
        }
        state.PauseTiming();
        ok = rgb_spool_reset(s) == 0;
        state.ResumeTiming();
        if (!ok)
            break;
    }
    if (!ok)
        state.SkipWithError(rgb_spool_error(s));
    uint64_t items = state.iterations() * n;
    state.SetItemsProcessed((int64_t)items);
    state.SetBytesProcessed((int64_t)(items * rec));
    state.counters["MB/s"] = benchmark::Counter(
        (double)(items * rec) / 1e6, benchmark::Counter::kIsRate);
    state.counters["syncs/pass"] = (double)rgb_spool_syncs(s) /
                                   (double)(state.iterations() ? state.iterations() : 1);
    state.SetLabel(rgb_spool_fs(s));
    rgb_spool_close(s);
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

// Hot lanes on a skewed stream (peers_lanes.c): the same paced stream,
// half of it on one key, each event 2 us of work, 600k events/s for 3 s
// (1.2 CPUs of work: the hot key's worker would need 0.9 of a CPU
// alone), without lanes and with 2, in one iteration; counters carry the
// imbalance and the cold keys' latency of both and their ratios.
void lanes(benchmark::State &state)
{
    rgb_lanes_result without_lanes{}, with_lanes{};
    for (auto _ : state) {
        if (rgb_lanes_run(0, 0.5, 600000, 3.0, 2000, &without_lanes) != 0 ||
            rgb_lanes_run(2, 0.5, 600000, 3.0, 2000, &with_lanes) != 0) {
            state.SkipWithError("a run failed or a key's count is wrong");
            return;
        }
    }
    state.counters["imbalance_without"] = without_lanes.imbalance;
    state.counters["imbalance_with"] = with_lanes.imbalance;
    state.counters["cold_p50_us_without"] = without_lanes.cold_p50_us;
    state.counters["cold_p50_us_with"] = with_lanes.cold_p50_us;
    state.counters["cold_p99_us_without"] = without_lanes.cold_p99_us;
    state.counters["cold_p99_us_with"] = with_lanes.cold_p99_us;
    state.counters["p99_ratio"] =
        with_lanes.cold_p99_us > 0
            ? without_lanes.cold_p99_us / with_lanes.cold_p99_us : 0;
    state.counters["eps_without"] = without_lanes.events_per_s;
    state.counters["eps_with"] = with_lanes.events_per_s;
    state.counters["moves_with"] = (double)with_lanes.moves;
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
    benchmark::RegisterBenchmark("pipeline/railgun_flow_limited", pipeline,
                                 RGB_PIPE_RAILGUN_FLOW)->UseRealTime();
    benchmark::RegisterBenchmark("pipeline/railgun_hotkey", pipeline,
                                 RGB_PIPE_RAILGUN_HOTKEY)->UseRealTime();
    benchmark::RegisterBenchmark("lanes/railgun_skewed", lanes)
        ->UseRealTime()->Iterations(1)->Unit(benchmark::kSecond);
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
    benchmark::RegisterBenchmark("decode/railgun_fast", decode,
                                 RGB_DECODE_FAST)->UseRealTime();
    benchmark::RegisterBenchmark("decode/strict", decode, RGB_DECODE_STRICT)
        ->UseRealTime();
    benchmark::RegisterBenchmark("decode/binary", decode, RGB_DECODE_BINARY)
        ->UseRealTime();
    struct {
        const char *name;
        int impl;
    } hks[] = {
        {"hotkey/railgun", RGB_HK_RAILGUN},
        {"hotkey/exact_map", RGB_HK_EXACT},
        {"hotkey/space_saving", RGB_HK_SPACE_SAVING},
        {"hotkey/heavykeeper", RGB_HK_HEAVYKEEPER},
        {"hotkey/sampled16", RGB_HK_SAMPLED16},
    };
    for (int si = 0; si < 3; si++)
        for (auto &h : hks) {
            char name[64];
            snprintf(name, sizeof(name), "%s/zipf:%.1f", h.name,
                     kHkSkews[si]);
            benchmark::RegisterBenchmark(name, hotkey, h.impl, si)
                ->UseRealTime();
        }
    for (unsigned members : {0u, 8u, 64u}) {
        char name[64];
        snprintf(name, sizeof(name), "hot_set/railgun/members:%u", members);
        benchmark::RegisterBenchmark(name, hot_set, RGB_HKSET_RAILGUN, members)
            ->UseRealTime();
        snprintf(name, sizeof(name), "hot_set/linear_scan/members:%u",
                 members);
        benchmark::RegisterBenchmark(name, hot_set, RGB_HKSET_SCAN, members)
            ->UseRealTime();
    }
    struct {
        const char *name;
        int impl;
    } flows[] = {
        {"flow/railgun", RGB_FLOW_RAILGUN},
        {"flow/mutex_bucket", RGB_FLOW_MUTEX},
        {"flow/railgun_given_time", RGB_FLOW_RAILGUN_GIVEN},
        {"flow/mutex_bucket_given_time", RGB_FLOW_MUTEX_GIVEN},
        {"flow/railgun_shared", RGB_FLOW_RAILGUN_SHARED},
        {"flow/mutex_bucket_per_event", RGB_FLOW_MUTEX_PER_EVENT},
        {"flow/railgun_unlimited", RGB_FLOW_RAILGUN_UNLIMITED},
        {"flow/none", RGB_FLOW_NONE},
        {"flow/railgun_mt2", RGB_FLOW_RAILGUN_MT2},
        {"flow/mutex_bucket_mt2", RGB_FLOW_MUTEX_MT2},
    };
    for (auto &f : flows)
        benchmark::RegisterBenchmark(f.name, flow, f.impl)->UseRealTime();
    // the same sync_bytes for both: the group commit's batch size
    for (auto &sp : {std::make_pair("spool/railgun", RGB_SPOOL_RAILGUN),
                     std::make_pair("spool/railgun_burst32",
                                    RGB_SPOOL_RAILGUN_BURST32),
                     std::make_pair("spool/write_fdatasync",
                                    RGB_SPOOL_WRITE_FDATASYNC)})
        benchmark::RegisterBenchmark(sp.first, spool, sp.second)
            ->Arg(64 << 10)->Arg(1 << 20)->UseRealTime();
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
