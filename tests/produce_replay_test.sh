#!/usr/bin/env bash
# produce_replay_test.sh RAILGUN
# A spool replayed into Kafka twice, applied once: each part its own
# process (`railgun mock-kafka`, `railgun produce` with a spool, `railgun
# run` into SQLite), all in a temp dir.
#
#  1. SIGUSR1 sets every mock broker down; `railgun produce` (degraded
#     mode) spools the whole stream and waits for Kafka; it is SIGKILLed.
#  2. SIGUSR2 brings the brokers back; a producer on the same spool starts
#     degraded and replays it; it is SIGKILLed part way, before its spool
#     checkpoint recorded what Kafka acknowledged (checkpoint.ms 60 s).
#  3. A third producer replays what the spool still calls pending, the
#     acknowledged records again among it, and exits 0 once the spool is
#     empty: the topic holds copies.
#  4. `railgun run`, consuming throughout: every consumed message is applied
#     once or skipped as a copy (consumed = stream + copies skipped, with
#     copies > 0), and `railgun demo --verify-only` finds the database
#     exact.
set -uo pipefail
rg=${1:?RAILGUN}
command -v sqlite3 >/dev/null || { echo "FAIL: sqlite3 missing (scripts/deps.sh)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rg-produce-replay.XXXXXX")
pids=()
# shellcheck source=support/stop_pids.sh
. "$(dirname "$0")/support/stop_pids.sh"
cleanup() {
    stop_pids "${pids[@]}"
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.err; do echo "--- $f"; tail -5 "$f"; done
    echo "FAIL: $(printf '%s\n' "$*" | head -1)"
    exit 1
}
events=60000
stream=(--events $events --videos 500 --users 5000 --seed 11)

"$rg" mock-kafka --topic likes:16 >"$tmp/servers" 2>"$tmp/mk.err" &
mk=$!
pids+=($mk)
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka printed nothing"
kafka=(-X "kafka.bootstrap.servers=$servers")
spool=(-X "fallback.spool.dir=$tmp/spool" -X fallback.after.ms=300
       -X kafka.message.timeout.ms=2000 -X fallback.spool.checkpoint.ms=60000)

wait_for() { # FILE PATTERN SECONDS
    local end=$((SECONDS + $3))
    while [ $SECONDS -lt $end ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# the mock keeps only the newest 5 MB of a partition (librdkafka's mock
# cluster): 16 partitions keep the stream and its copies (~1.5 MB each)
# whole even when the consumer joins late (a slow CI machine's rebalance
# after the outage); it runs throughout all the same
"$rg" run "${kafka[@]}" -X "sqlite.path=$tmp/likes.db" --init-schema \
    -X group.id=replay -X kafka.session.timeout.ms=6000 -X source.identity=true \
    -X flush.interval.ms=100 --json 2>"$tmp/run.err" &
run=$!
pids+=($run)
wait_for "$tmp/run.err" "starts at offset" 60 || fail "railgun run never got its partitions"

# 1. the outage: everything into the spool
kill -USR1 $mk
"$rg" produce "${stream[@]}" "${kafka[@]}" "${spool[@]}" >"$tmp/p1.out" \
    2>"$tmp/p1.err" &
p1=$!
pids+=($p1)
wait_for "$tmp/p1.err" "wait for Kafka" 90 ||
    fail "the first producer never waited for Kafka with a full spool"
grep -q "messages in the spool .* wait for Kafka" "$tmp/p1.err" ||
    fail "no spool figures while waiting: $(cat "$tmp/p1.err")"
kill -KILL $p1
wait $p1 2>/dev/null

# 2. Kafka back: a replay killed part way
kill -USR2 $mk
"$rg" produce --stdin "${kafka[@]}" "${spool[@]}" </dev/null >"$tmp/p2.out" \
    2>"$tmp/p2.err" &
p2=$!
pids+=($p2)
wait_for "$tmp/p2.err" "replaying the spool" 60 ||
    fail "the second producer never replayed: $(cat "$tmp/p2.err")"
sleep 0.1
kill -KILL $p2
wait $p2 2>/dev/null
rc=$?
[ $rc -eq 137 ] || fail "the second producer ended (exit $rc) before it was killed: the replay was too quick to cut"

# 3. the rest, acknowledged records again among it
timeout 120 "$rg" produce --stdin "${kafka[@]}" "${spool[@]}" </dev/null \
    >"$tmp/p3.out" 2>"$tmp/p3.err" || fail "the third producer failed"
grep -q "producer direct: .* 0 left in the spool" "$tmp/p3.err" ||
    fail "the spool was not drained: $(cat "$tmp/p3.err")"
segs=$(find "$tmp/spool" -name '*.seg' | wc -l)
[ "$segs" -eq 0 ] || fail "$segs spool segments left after the replay"

# 4. consumed once each, the copies skipped
exact=no
for _ in $(seq 1 180); do
    if [ -s "$tmp/likes.db" ] &&
        "$rg" demo "${stream[@]}" --db "$tmp/likes.db" --verify-only \
            >"$tmp/verify" 2>&1; then exact=yes; break; fi
    sleep 1
done
[ $exact = yes ] || fail "not exact: $(tail -3 "$tmp/verify")"
kill -TERM $run
wait $run
rc=$?
[ $rc -eq 0 ] || fail "railgun run exited $rc"
pids=($mk)
final=$(grep '"stats":"final"' "$tmp/run.err") || fail "no final stats"
consumed=$(printf '%s' "$final" | sed -n 's/.*"consumed":\([0-9]*\).*/\1/p')
copies=$(printf '%s' "$final" | sed -n 's/.*"deduplicated":\([0-9]*\).*/\1/p')
[ -n "$consumed" ] && [ -n "$copies" ] || fail "stats without consumed or deduplicated: $final"
[ "$copies" -gt 0 ] || fail "no copies in the topic: the kill did not leave acknowledged records pending"
[ "$consumed" -eq $((events + copies)) ] ||
    fail "consumed $consumed, not the $events likes + $copies copies skipped: a copy was applied, or a like lost"
n=$(sqlite3 "$tmp/likes.db" "SELECT count(*) FROM railgun_producers") ||
    fail "no producer marks table"
[ "$n" -gt 0 ] || fail "no producer marks stored"
echo "produce_replay: $events likes spooled in an outage, replayed twice" \
    "in part (a replay killed before its checkpoint): the topic held" \
    "$copies copies, railgun run consumed $consumed, skipped the $copies" \
    "copies ($n producer marks stored) and $(tail -1 "$tmp/verify")"
