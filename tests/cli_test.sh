#!/usr/bin/env bash
# cli_test.sh RAILGUN EMBED_STDIN SRCDIR [KAFKA]
# KAFKA=0 (the ThreadSanitizer build): librdkafka is not instrumented and
# its threads crash TSan's runtime, so the demos run with --source memory
# and the Kafka processes are left out; the Release and ASan runs do all.
# The command line behaves as documented (exact demo, --json, one-line
# errors with exit 2 on bad input and exit 1 when the work fails, -X over
# --config, --help), and the docs stay true: the generated configuration
# reference and the embedding example.
set -u
rg=$1 embed=$2 src=$3 kafka=${4:-1}
if [ "$kafka" = 1 ]; then via=(); else via=(--source memory); fi
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok()  { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# demo: the likes job into SQLite, exact, report fields, exit 0
out=$("$rg" demo "${via[@]}" --events 300000 --videos 5000 --workers 3 \
      --db "$tmp/demo.db" 2>"$tmp/err"); rc=$?
if [ $rc -eq 0 ] && [ "$(tail -n1 <<<"$out")" = "verify: exact" ] &&
   grep -q 'events/s' <<<"$out" && grep -q 'transactions' <<<"$out" &&
   grep -q 'fewer than one per event' <<<"$out" &&
   grep -q 'rows written' <<<"$out"; then ok
else bad "demo text report (rc=$rc): $out $(cat "$tmp/err")"; fi
# over Kafka the consumer group's join is part of the clock, and said
if [ "${via[*]}" = "" ]; then
  if grep -Eq 'group join +[0-9.]+ s of it .* events/s after it' <<<"$out"
  then ok; else bad "demo: the group join is not reported: $out"; fi
fi
# rerun on the same database: everything is stored, nothing is redone
out=$("$rg" demo "${via[@]}" --events 300000 --videos 5000 --db "$tmp/demo.db" --json)
if grep -q '"resumed_after":300000' <<<"$out" &&
   grep -q '"verify":"exact"' <<<"$out"; then ok
else bad "demo rerun on a finished database: $out"; fi

# --source memory: the engine without Kafka, several ingest threads
out=$("$rg" demo --source memory --events 200000 --dispatchers 2 --json)
if grep -q '"source":"memory"' <<<"$out" && grep -q '"verify":"exact"' <<<"$out"
then ok; else bad "demo --source memory: $out"; fi

# --hotkey-lanes: a pass without lanes, then the run with them, exact;
# the hot video moved to the lanes, both imbalances reported. 1M events:
# the move needs a barrier after detection, and under load (CI) a 300k
# run lasted 3 epochs and ended before one (key_moves 0)
out=$("$rg" demo --source memory --events 1000000 --hot-share 0.5 \
      --hotkey-lanes 2 -X hotkey.window.ms=100 --json)
if grep -q '"verify":"exact"' <<<"$out" && grep -q '"lanes":2,' <<<"$out" &&
   python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(not (d["key_moves"] >= 1 and d["imbalance_without_lanes"] > 1.2 and 0 < d["imbalance_since_move"]))' "$out"
then ok; else bad "demo --hotkey-lanes: $out"; fi

# --json: one object, exact; the temporary database (no --db) is removed
mkdir "$tmp/tmpdir"
out=$(TMPDIR="$tmp/tmpdir" "$rg" demo "${via[@]}" --events 100000 --videos 100 --json); rc=$?
if [ $rc -eq 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
   [[ "$out" == \{*\} ]] && grep -q '"verify":"exact"' <<<"$out" &&
   grep -q '"events_per_s":' <<<"$out" &&
   grep -q '"transactions":' <<<"$out"; then ok
else bad "demo --json: $out"; fi
if [ -z "$(ls -A "$tmp/tmpdir")" ]; then ok
else bad "demo left its temporary database: $(ls -A "$tmp/tmpdir")"; fi

# --config FILE and -X apply in order
printf '# demo settings\nworkers=3\nring.capacity=64\n' >"$tmp/demo.conf"
out=$("$rg" demo "${via[@]}" --events 10000 --json --config "$tmp/demo.conf" -X workers=4)
if grep -q '"workers":4' <<<"$out"; then ok; else bad "--config then -X: $out"; fi

# -X wins over --config wherever it stands on the line
printf 'workers=2\n' >"$tmp/w2.conf"
for args in "-X workers=3 --config $tmp/w2.conf" "--config $tmp/w2.conf -X workers=3"; do
    # shellcheck disable=SC2086 # split on purpose: the options
    out=$("$rg" config $args)
    if grep -qx 'workers=3' <<<"$out"; then ok
    else bad "config $args: $(grep '^workers=' <<<"$out")"; fi
done

# --crash-at: killed mid-flush (before and after the commit), resumed from
# the stored offsets, exact in the end (tests/crash_test.sh does 20 rounds)
db="$tmp/crash.db"
for at in 1 2:after; do
    "$rg" demo "${via[@]}" --events 100000 --db "$db" --seed 9 -X flush.max.keys=2000 \
        --crash-at "$at" >/dev/null 2>"$tmp/err"; rc=$?
    if [ $rc -eq 137 ] && grep -q 'killing myself' "$tmp/err"; then ok
    else bad "--crash-at $at: rc=$rc $(cat "$tmp/err")"; fi
done
out=$("$rg" demo "${via[@]}" --events 100000 --db "$db" --seed 9 --json)
if grep -q '"verify":"exact"' <<<"$out" &&
   ! grep -q '"resumed_after":0,' <<<"$out"; then ok
else bad "resume after crashes: $out"; fi

# bench likes: both paths run and the report has the three figures
out=$("$rg" bench likes --events 20000 --naive-events 2000 -X sink=sqlite \
      -X sqlite.path="$tmp/bench.db" --json); rc=$?
if [ $rc -eq 0 ] && grep -q '"naive_events_per_s":' <<<"$out" &&
   grep -q '"railgun_events_per_s":' <<<"$out" &&
   grep -q '"ratio":' <<<"$out" && ! ls "$tmp"/bench.db-* >/dev/null 2>&1
then ok; else bad "bench likes (rc=$rc): $out"; fi

if [ "$kafka" = 1 ]; then
# mock-kafka: one line of bootstrap servers, then serves until SIGTERM
"$rg" mock-kafka --brokers 2 --topic likes:4 >"$tmp/mk" 2>"$tmp/mkerr" &
mk=$!
for _ in $(seq 1 50); do [ -s "$tmp/mk" ] && break; sleep 0.1; done
if grep -Eq '^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$' "$tmp/mk"; then ok
else bad "mock-kafka printed: $(cat "$tmp/mk" "$tmp/mkerr")"; fi
kill -TERM $mk
if wait $mk; then ok; else bad "mock-kafka did not exit 0 on SIGTERM"; fi
fi

# bad input: exit 2, exactly one line on stderr naming the culprit
expect_usage_error() { # WORD ARGS...
    local word=$1; shift
    "$rg" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
       grep -q -- "$word" "$tmp/err"; then ok
    else bad "railgun $* -> rc=$rc, stderr: $(cat "$tmp/err")"; fi
}
expect_usage_error "--events" demo --events abc
expect_usage_error "--events" demo --events 0
expect_usage_error "--events" demo --events
expect_usage_error "--zipf" demo --zipf nan
expect_usage_error "--hot-share" demo --hot-share 1
expect_usage_error "--hotkey-lanes" demo --source memory --hotkey-lanes 0
expect_usage_error "needs --source memory" demo --hotkey-lanes 2 --events 10
expect_usage_error "hotkey.enable" demo --source memory --events 10 -X hotkey.lanes=2
expect_usage_error "--hot-share" produce --hot-share 1.5
expect_usage_error "hotkey.cool.share" demo --source memory --events 100 -X hotkey.enable=true -X hotkey.cool.share=0.5
expect_usage_error "hotkey.share" demo -X hotkey.share=2
expect_usage_error "workers" demo --workers 0
expect_usage_error "ring.capacity" demo -X ring.capacity=3
expect_usage_error "workers.cpus" demo -X workers.cpus=4000
expect_usage_error "no.such" demo -X no.such=1
expect_usage_error "name=value" demo -X workers
expect_usage_error "--source" demo --source redis
expect_usage_error "dispatchers" demo --dispatchers 2
expect_usage_error "mock cluster" demo -X kafka.bootstrap.servers=localhost:9092
expect_usage_error "--bogus" demo --bogus
expect_usage_error "--crash-at" demo --crash-at 0
expect_usage_error "--crash-at" demo --crash-at 2:during
expect_usage_error "sink" demo -X sink=postgres
expect_usage_error "nothing to verify" demo -X sink=null
expect_usage_error "missing.conf" demo --config "$tmp/missing.conf"
expect_usage_error "frobnicate" frobnicate
expect_usage_error "unknown suite" bench ring
expect_usage_error "likes suite only" bench kafka --fail-ratio 0.1
expect_usage_error "out of range" demo --fail-ratio 2
expect_usage_error "more than the" demo --poison 5 --events 3
expect_usage_error "NAME:PARTITIONS" mock-kafka --topic likes
expect_usage_error "legal topic" mock-kafka --topic 'a b:3'
expect_usage_error "--port" mock-kafka --port 9092
expect_usage_error "sqlite.path" run -X kafka.bootstrap.servers=x:1
expect_usage_error "kafka.bootstrap.servers" run -X sqlite.path=/tmp/x.db
expect_usage_error "--bogus" run --bogus
expect_usage_error "kafka.bootstrap.servers" produce --events 10
[ "$kafka" = 1 ] && expect_usage_error "stdin line 1" produce --stdin -X kafka.bootstrap.servers=127.0.0.1:1 -X kafka.log_level=0 <<<"no-tab-here"
expect_usage_error "sink=null" bench likes -X sink=null
printf 'workers=2\nbatch.max.events=-1\n' >"$tmp/bad.conf"
expect_usage_error "bad.conf:2" demo --config "$tmp/bad.conf"
expect_usage_error "batch.max.events" demo --source memory -X batch.max.events=128 -X ring.capacity=64
for c in demo config bench mock-kafka run produce; do
    expect_usage_error "--bogus" "$c" --bogus
done

# the work failed: exit 1, the reason on stderr (an unreachable sink, a
# database that cannot be opened, messages that are never delivered)
expect_runtime_error() { # WORD ARGS...
    local word=$1; shift
    "$rg" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
    if [ $rc -eq 1 ] && grep -q -- "$word" "$tmp/err"; then ok
    else bad "railgun $* -> rc=$rc (1 expected), stderr: $(cat "$tmp/err")"; fi
}
nodb="$tmp/no/such/dir/likes.db"
expect_runtime_error "cannot open" demo "${via[@]}" --events 1000 --db "$nodb"
expect_runtime_error "cannot open" demo --source memory --events 1000 --db "$nodb"
expect_runtime_error "cannot connect" demo --source memory --events 1000 \
    -X sink=mysql -X mysql.host=127.0.0.1 -X mysql.port=1 -X mysql.socket=
expect_runtime_error "cannot open" demo --verify-only --events 1000 --db "$nodb"
expect_runtime_error "cannot open" run -X kafka.bootstrap.servers=127.0.0.1:1 \
    -X sqlite.path="$nodb" --init-schema
expect_runtime_error "cannot open" bench likes --events 100 -X sqlite.path="$nodb"
[ "$kafka" = 1 ] && expect_runtime_error "not delivered" produce --events 10 \
    -X kafka.bootstrap.servers=127.0.0.1:1 -X kafka.message.timeout.ms=500 \
    -X kafka.log_level=0
# railgun flow (issue 14): bad input is 2, Redis not answering is 1
expect_usage_error "show or set" flow
expect_usage_error "unknown subcommand" flow drop
expect_usage_error "--rate" flow set
expect_usage_error "--rate" flow set --rate x
expect_usage_error "--rate" flow show --rate 5
expect_usage_error "flow.redis.port" flow show -X flow.redis.port=0
expect_usage_error "flow.global.rate.events.per.s" run \
    -X kafka.bootstrap.servers=127.0.0.1:1 -X sqlite.path="$tmp/flow.db" \
    -X flow.global.rate.events.per.s=-1
expect_runtime_error "Connection refused" flow show -X flow.redis.port=1
expect_runtime_error "Connection refused" flow set --rate 5 -X flow.redis.port=1

# --help everywhere
for c in demo config bench mock-kafka run produce flow; do
    if "$rg" "$c" --help | grep -q usage; then ok; else bad "$c --help"; fi
done
if "$rg" --help | grep -q demo; then ok; else bad "railgun --help"; fi

# progress bar only on a TTY
if command -v script >/dev/null; then
    script -qec "$rg demo ${via[*]} --events 300000 --videos 100" /dev/null >"$tmp/tty"
    if grep -q '\[#' "$tmp/tty"; then ok; else bad "no progress bar on a TTY"; fi
    if "$rg" demo "${via[@]}" --events 300000 --videos 100 2>&1 | grep -q '\[#'; then
        bad "progress bar drawn without a TTY"; else ok; fi
fi

# docs/CONFIGURATION.md is generated from the table and must not be stale
if "$rg" config --markdown | diff -u "$src/docs/CONFIGURATION.md" - >"$tmp/diff"; then ok
else bad "docs/CONFIGURATION.md is stale (run make docs): $(head -20 "$tmp/diff")"; fi

# the embedding example in docs/EMBEDDING.md is the file we compile
awk '/^```c$/{f=1; next} /^```$/{if (f) exit} f' "$src/docs/EMBEDDING.md" >"$tmp/doc.c"
if diff -q "$tmp/doc.c" "$src/docs/examples/embed_stdin.c" >/dev/null; then ok
else bad "docs/EMBEDDING.md differs from docs/examples/embed_stdin.c"; fi
lines=$(wc -l <"$src/docs/examples/embed_stdin.c")
if [ "$lines" -le 60 ]; then ok; else bad "embedding example has $lines lines"; fi

# ... and it runs: counts per id, bad lines reported, nothing lost
printf '5\n7\n5\nnot-a-number\n7\n5\n2000\n' | "$embed" >"$tmp/out" 2>"$tmp/err"
if [ "$(cat "$tmp/out")" = $'5 3\n7 2' ] && grep -q 'line 4' "$tmp/err" &&
   grep -q 'line 7' "$tmp/err"; then ok
else bad "embed_stdin: $(cat "$tmp/out") / $(cat "$tmp/err")"; fi
seq 1 1000 | awk '{print $1 % 10}' | "$embed" >"$tmp/out"
if [ "$(awk '{s += $2} END {print s}' "$tmp/out")" = 1000 ]; then ok
else bad "embed_stdin lost lines: $(cat "$tmp/out")"; fi

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
