/*
 * conf_props.h - THE property table (internal). One line per property:
 *
 *   XX(ID, "name", TYPE, "default", min, max, check, "doc")
 *
 * TYPE is INT, STR or BOOL; min/max bound INT values; check is NULL or a
 * function in conf.c that validates further (power of two, CPU list). The
 * enum RG_P_<ID>, the core layer's table (rg_conf_core_table()),
 * rg_conf_set() validation and docs/CONFIGURATION.md (`railgun config
 * --markdown`) all come from here. Only properties the core itself reads
 * belong here: adapters and programs have tables of their own
 * (railgun/conf.h).
 */
#ifndef RG_CONF_PROPS_H
#define RG_CONF_PROPS_H

#define RG_CONF_PROPS(XX)                                                    \
    XX(WORKERS, "workers", INT, "2", 1, 1024, NULL,                          \
       "Worker threads. Each is pinned to one CPU and owns the keys that "   \
       "hash to it, so no two workers ever touch the same key.")             \
    XX(WORKERS_CPUS, "workers.cpus", STR, "", 0, 0, check_cpulist,           \
       "CPUs to pin workers to, as a list of numbers and ranges "           \
       "(`0-3,8`). Worker i runs on the i-th CPU of the list, wrapping "    \
       "around. Every CPU must be online (and in the process's cpuset, "    \
       "checked when the workers start). Empty: spread workers over the "   \
       "CPUs the thread creating the engine may run on.")                    \
    XX(DISPATCHERS, "dispatchers", INT, "1", 1, 64, NULL,                    \
       "Dispatcher handles, one per ingest thread. Each (dispatcher, "      \
       "worker) pair has its own SPSC ring.")                                \
    XX(RING_CAPACITY, "ring.capacity", INT, "4096", 2, 1048576,              \
       check_pow2,                                                           \
       "Events per (dispatcher, worker) ring; a power of two. Each event "  \
       "takes 64 bytes, so memory is dispatchers x workers x capacity x "   \
       "64 bytes.")                                                          \
    XX(BATCH_MAX_EVENTS, "batch.max.events", INT, "64", 1, 4096, NULL,       \
       "Most events a worker takes from one ring at a time; in batch mode " \
       "the most events one batch_do call sees. At most ring.capacity.")     \
    XX(ACK_WINDOW_EVENTS, "ack.window.events", INT, "8192", 64, 16777216,    \
       check_pow2,                                                           \
       "Offsets a partition may have in flight between its watermark and "  \
       "its newest event; a power of two. When full, the dispatcher waits " \
       "(one stuck event stops intake instead of growing memory). Memory: " \
       "8 bytes per offset per partition.")                                  \
    XX(ACK_MAX_PARTITIONS, "ack.max.partitions", INT, "1024", 1, 65536,      \
       NULL,                                                                 \
       "Partitions are numbered 0 .. ack.max.partitions - 1; an event of "  \
       "another partition is rejected.")                                     \
    XX(ACK_COMMIT_INTERVAL_MS, "ack.commit.interval.ms", INT, "1000", 1,     \
       3600000, NULL,                                                        \
       "Longest time between two commit callbacks while watermarks move.")  \
    XX(ACK_COMMIT_MAX_EVENTS, "ack.commit.max.events", INT, "100000", 1,     \
       1000000000, NULL,                                                     \
       "A worker that has completed this many events since its last "       \
       "signal wakes the committer early.")                                  \
    XX(WORKER_IDLE_SPINS, "worker.idle.spins", INT, "2000", 0, 100000000,    \
       NULL,                                                                 \
       "Polls of empty rings an idle worker spins through before it "       \
       "starts yielding the CPU.")                                           \
    XX(WORKER_IDLE_YIELDS, "worker.idle.yields", INT, "50", 0, 1000000,      \
       NULL,                                                                 \
       "sched_yield() calls an idle worker makes after spinning, before "   \
       "it parks (sleeps until a dispatcher wakes it).")                     \
    XX(IDLE_POLICY, "idle.policy", STR, "auto", 0, 0, check_idle_policy,     \
       "How a worker with empty rings, or a dispatcher facing a full one, "  \
       "waits before it parks: `spin` polls with a pause instruction "      \
       "(worker.idle.spins, dispatcher.wait.spins times; the fastest "      \
       "hand-off when every thread has a core of its own), `yield` calls "  \
       "sched_yield() instead of each pause (the CPU goes to another "      \
       "runnable thread: librdkafka's, the sink's), `auto` picks `spin` "   \
       "when the process may use at least as many CPUs as the engine runs " \
       "busy threads (workers + dispatchers + the flusher in epoch mode) "  \
       "and `yield` otherwise, and logs the choice.")                       \
    XX(DISPATCHER_WAIT_SPINS, "dispatcher.wait.spins", INT, "1000", 0,       \
       100000000, NULL,                                                      \
       "Polls a dispatcher spins through while a worker's ring is full, "   \
       "before it starts yielding.")                                         \
    XX(DISPATCHER_WAIT_YIELDS, "dispatcher.wait.yields", INT, "100", 0,      \
       1000000, NULL,                                                        \
       "sched_yield() calls a dispatcher makes while a ring is full, "      \
       "before it parks until the worker frees space.")                     \
    XX(FLUSH_INTERVAL_MS, "flush.interval.ms", INT, "100", 1, 3600000, NULL, \
       "Epoch mode (a sink is set): how often the dispatchers put an "      \
       "epoch barrier into every worker ring; each epoch is written as "    \
       "one sink transaction.")                                              \
    XX(FLUSH_MAX_KEYS, "flush.max.keys", INT, "100000", 1, 1073741824, NULL, \
       "Epoch mode: a worker whose open delta holds this many keys (or "    \
       "staged rows) asks for a barrier before flush.interval.ms is up.")   \
    XX(FLUSH_MAX_PENDING_EPOCHS, "flush.max.pending.epochs", INT, "4", 1,    \
       64, NULL,                                                             \
       "Epoch mode: sealed epochs a worker keeps while the sink is behind. " \
       "At the bound the worker waits at the next barrier, its rings fill " \
       "and intake waits: memory stays bounded, nothing is dropped.")        \
    XX(MERGE_MAX_KEYS, "merge.max.keys", INT, "1048576", 16, 1073741824,     \
       NULL,                                                                 \
       "Epoch mode: most keys (and staged rows) one worker's delta may "    \
       "hold. Must leave room for what arrives between the flush.max.keys " \
       "trigger and the barrier: at least flush.max.keys + dispatchers x "  \
       "(ring.capacity + 32).")                                              \
    XX(SINK_RETRY_BACKOFF_MS, "sink.retry.backoff.ms", INT, "100", 1,        \
       3600000, NULL,                                                        \
       "First wait before retrying a sink transaction that failed with a "  \
       "retriable error; doubles on each retry, with jitter.")              \
    XX(SINK_RETRY_BACKOFF_MAX_MS, "sink.retry.backoff.max.ms", INT, "10000", \
       1, 3600000, NULL,                                                     \
       "Longest wait between two sink retries.")                             \
    XX(SHUTDOWN_TIMEOUT_MS, "shutdown.timeout.ms", INT, "30000", 0,          \
       86400000, NULL,                                                       \
       "How long rg_engine_stop() keeps retrying a failing sink to store "  \
       "what was accepted before it gives up (epoch mode), and how long it " \
       "first gives events waiting for a retry to end (retried at "         \
       "retry.backoff.ms by then; what still waits is stored as delayed). "  \
       "0: for ever. Giving up writes nothing more: the epochs not stored "  \
       "are reprocessed after a restart, as after a crash, and "            \
       "rg_engine_error() says how many. A sink call that hangs is bounded " \
       "by the sink's own timeouts on top of this.")                          \
    XX(FLOW_RATE, "flow.rate.events.per.s", INT, "0", 0, 64000000000, NULL,  \
       "This node's own limit, enforced by its token bucket on the ingest " \
       "path, checked per burst of events (0: unlimited). With a global "   \
       "rate the node enforces the lower of the two and never asks the "    \
       "group for more than this.")                                          \
    XX(FLOW_BURST, "flow.burst.events", INT, "0", 0, 1000000000000, NULL,    \
       "Events the bucket may admit at once above the rate (its depth). "   \
       "0: automatic, 10 ms of the rate but at least min(rate, 32). At "    \
       "most a day of the rate.")                                            \
    XX(FLOW_SINK_LATENCY_TARGET_MS, "flow.sink.latency.target.ms", INT, "0", \
       0, 600000, NULL,                                                      \
       "Epoch mode: 0 is off. Else the node follows what the database can " \
       "take: when an epoch's transaction takes longer than this it cuts "  \
       "its own rate to 0.7 x what came in (deeper, down to 0.3 x, when "  \
       "one took more than 8 x this), and while transactions take less "    \
       "than 0.8 x this and the cut binds it raises the rate again by 5% "  \
       "of the rate that was too much per epoch (AIMD), never above its "   \
       "other limits. Keep it below flush.interval.ms.")                     \
    XX(RETRY_BACKOFF_MS, "retry.backoff.ms", INT, "100", 1, 3600000, NULL,  \
       "First in-place wait of an event a processor retried "               \
       "(rg_ctx_retry()); doubles per attempt, with jitter. The event's "   \
       "key is parked meanwhile, the worker's other keys flow on.")          \
    XX(RETRY_BACKOFF_MAX_MS, "retry.backoff.max.ms", INT, "10000", 1,        \
       3600000, NULL, "Longest in-place wait.")                             \
    XX(RETRY_INPLACE_ATTEMPTS, "retry.inplace.attempts", INT, "3", 1, 1000,  \
       NULL,                                                                 \
       "Attempts with in-place backoff before an event joins the delayed "  \
       "retry queue (written in the epoch's transaction when the sink "     \
       "keeps failures).")                                                   \
    XX(RETRY_DELAY_MS, "retry.delay.ms", INT, "1000", 1, 86400000, NULL,     \
       "First wait of an event in the delayed retry queue; doubles per "    \
       "attempt, with jitter.")                                              \
    XX(RETRY_DELAY_MAX_MS, "retry.delay.max.ms", INT, "60000", 1, 86400000,  \
       NULL, "Longest wait in the delayed retry queue.")                     \
    XX(RETRY_MAX_ATTEMPTS, "retry.max.attempts", INT, "10", 1, 1000000,      \
       NULL,                                                                 \
       "Attempts in all (in place and delayed, across restarts) before an " \
       "event becomes a dead letter.")                                       \
    XX(RETRY_MAX_AGE_MS, "retry.max.age.ms", INT, "3600000", 0,              \
       31536000000, NULL,                                                    \
       "An event whose first attempt is older than this becomes a dead "    \
       "letter at its next failure. 0: no age limit.")                       \
    XX(RETRY_MAX_PARKED_EVENTS, "retry.max.parked.events", INT, "4096", 16,  \
       16777216, NULL,                                                       \
       "Events a worker may hold waiting (retried, delayed, or queued "     \
       "behind one of them, 128 bytes each). At the bound the worker reads " \
       "no more from its rings, like a slow worker: nothing is dropped.")    \
    XX(RETRY_ORDER, "retry.order", STR, "key", 0, 0, check_retry_order,      \
       "`key`: while an event of a key waits for a retry, the key's later " \
       "events wait behind it (per-key order). `none`: they go on (for "    \
       "processors whose events of one key commute).")                       \
    XX(RETRY_PAYLOAD_MAX_BYTES, "retry.payload.max.bytes", INT, "1024", 0,   \
       1048576, NULL,                                                        \
       "Most payload bytes a failure row keeps (the event's payload, or "   \
       "the raw message of a dead letter that did not decode).")             \
    XX(HOTKEY_ENABLE, "hotkey.enable", BOOL, "false", 0, 1, NULL,            \
       "Detect hot keys on every dispatcher: each event's routing key "     \
       "goes into the dispatcher's top-k sketch (7-20 ns), and the "      \
       "hot keys, their share and since when are in the stats and "         \
       "metrics. False: the dispatcher never calls the sketch.")             \
    XX(HOTKEY_WINDOW_MS, "hotkey.window.ms", INT, "1000", 4, 3600000, NULL,  \
       "The window a key's share is measured over. It slides in 4 slices; " \
       "keys are judged at each slice end, so a key whose share passes "    \
       "hotkey.share is reported within window/4, one jumping from "        \
       "nothing to a share q within (share/q) x window + window/4.")         \
    XX(HOTKEY_SHARE, "hotkey.share", DOUBLE, "0.05", 0, 0,                   \
       rg_conf_check_share,                                                  \
       "A key turns hot when its share of the window's events (on its "     \
       "dispatcher) passes this, and it has hotkey.min.events. Above 0.")    \
    XX(HOTKEY_COOL_SHARE, "hotkey.cool.share", DOUBLE, "0.04", 0, 0,         \
       rg_conf_check_share,                                                  \
       "A hot key turns cold when its share falls below this, at most "     \
       "hotkey.share (hysteresis: between the two a key keeps its state), " \
       "or when it has no event in the window.")                             \
    XX(HOTKEY_RATE, "hotkey.rate.events.per.s", INT, "0", 0,                 \
       1000000000000, NULL,                                                  \
       "Also hot when a key's rate over the window passes this many "       \
       "events a second, whatever its share; cold again below rate x "      \
       "cool.share / share. 0: off.")                                        \
    XX(HOTKEY_COOL_MS, "hotkey.cool.ms", INT, "10000", 0, 3600000, NULL,     \
       "Least time between two changes of one key's state (anti-flap): a "  \
       "key that turned hot stays hot this long, one that cooled stays "    \
       "cold.")                                                              \
    XX(HOTKEY_MIN_EVENTS, "hotkey.min.events", INT, "1000", 1,               \
       1099511627776, NULL,                                                  \
       "Least events a key needs in the window to turn hot, so a quiet "    \
       "stream's top key is not called hot.")                                \
    XX(HOTKEY_CAPACITY, "hotkey.capacity", INT, "1024", 64, 65536,           \
       check_pow2,                                                           \
       "Counters per dispatcher, a power of two, 113 bytes each. Keep it "  \
       "at least 4 / hotkey.cool.share (the default covers cool shares "    \
       "down to 0.4%).")                                                     \
    XX(HOTKEY_MAX_KEYS, "hotkey.max.keys", INT, "64", 1, 4096, NULL,         \
       "Most keys hot at once per dispatcher (at most hotkey.capacity); "   \
       "past it the strongest candidates win.")                              \
    XX(HOTKEY_LANES, "hotkey.lanes", INT, "0", 0, 1024, NULL,                \
       "Hot lanes: threads beside the workers that take the hot keys, so "  \
       "cold keys no longer wait behind one (needs hotkey.enable and a "    \
       "sink: keys move at epoch barriers). A processor that declares "     \
       "split spreads a hot key over every lane by its order unit; "        \
       "otherwise a hot key goes to one lane, whole. 0: no lanes.")          \
    XX(HOTKEY_LANES_CPUS, "hotkey.lanes.cpus", STR, "", 0, 0, check_cpulist, \
       "CPUs the lanes are pinned to, in order, as workers.cpus (empty: "   \
       "the CPUs after the workers' in the workers' list, round robin).")   \
    XX(DEDUP_PRODUCERS_MAX, "dedup.producers.max", INT, "4096", 16, 1048576, \
       NULL,                                                                 \
       "Exactly-once across redelivery (a sink that stores producer marks, " \
       "messages with a producer identity: railgun/producer.h's replayed "  \
       "spool): the (partition, producer) marks each dispatcher keeps in "  \
       "memory, about 1 KiB each. At the bound the least recently used one " \
       "is dropped (logged, counted): a later copy of that producer's "     \
       "messages would count again. Marks changed since the last barrier "  \
       "are never dropped: the table grows past the bound until it.")

enum rg_prop_id {
#define RG__PROP_ENUM(id, name, type, def, min, max, check, doc) RG_P_##id,
    RG_CONF_PROPS(RG__PROP_ENUM)
#undef RG__PROP_ENUM
    RG_P__COUNT
};

#include "railgun/conf.h"

/* Fast internal accessors by id (no name lookup). */
int64_t rg__conf_int(const rg_conf_t *conf, enum rg_prop_id id);
const char *rg__conf_str(const rg_conf_t *conf, enum rg_prop_id id);

/* Parses a CPU list ("0-3,8") into cpus[] (at most max entries). Returns
 * the count, or a negative RG_E* code with a message in errstr. */
int rg__cpulist_parse(const char *s, int *cpus, int max, char *errstr,
                      size_t errstr_size);

/* The CPUs this process may run on, in ascending order; returns the count
 * (at least 1). */
int rg__cpus_allowed(int *cpus, int max);

#endif /* RG_CONF_PROPS_H */
