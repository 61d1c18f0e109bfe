#!/usr/bin/env bash
# serve_fallback_test.sh RAILGUN LIKES_CLIENT
# `railgun serve` through a Kafka outage, each part its own process:
# `railgun mock-kafka`, `railgun run` into SQLite, one `railgun serve`
# (fallback.spool.dir set, database reads), all in a temp dir.
#
#  1. SIGUSR1 sets every mock broker down: serve's producer turns degraded
#     (railgun_producer_fallback_active 1 on serve's /metrics) and
#     `railgun doctor --metrics` on serve names producer_fallback (exit 1).
#  2. 30k likes POSTed during the outage: all 202 (spooled durably:
#     railgun_producer_spooled_events 30000); the database has none of
#     them (nothing reached Kafka).
#  3. SIGUSR2 brings the brokers back: the spool replays (fallback 0,
#     spooled 0, replayed 30000, its segments removed) and every count
#     and 500 sampled states read through serve equal the ground truth.
#  4. SIGTERM: every process exits 0.
set -uo pipefail
rg=${1:?RAILGUN}
client=${2:?LIKES_CLIENT}
for t in curl jq sqlite3; do
    command -v $t >/dev/null || { echo "FAIL: $t missing (scripts/deps.sh)"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rg-serve-fallback.XXXXXX")
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
events=30000 videos=500 users=5000 seed=3
stream=($events $videos $users $seed)

"$rg" mock-kafka --topic likes:4 >"$tmp/servers" 2>"$tmp/mk.err" &
mk=$!
pids+=($mk)
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka printed nothing"
kafka=(-X "kafka.bootstrap.servers=$servers")

# a short session: the mock ends a rebalance only at the session timeout
"$rg" run "${kafka[@]}" -X "sqlite.path=$tmp/likes.db" --init-schema \
    -X group.id=fallback -X kafka.session.timeout.ms=6000 \
    -X kafka.heartbeat.interval.ms=500 -X flush.interval.ms=100 \
    2>"$tmp/run.err" &
run=$!
pids+=($run)
for _ in $(seq 1 100); do
    [ -s "$tmp/likes.db" ] && grep -q 'partitions' "$tmp/run.err" 2>/dev/null && break
    sleep 0.1
done
"$rg" serve "${kafka[@]}" -X "sqlite.path=$tmp/likes.db" -X serve.cache=false \
    -X serve.listen=127.0.0.1:0 -X "fallback.spool.dir=$tmp/spool" \
    -X fallback.after.ms=300 >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve=$!
pids+=($serve)
for _ in $(seq 1 100); do [ -s "$tmp/serve.out" ] && break; sleep 0.1; done
port=$(sed -n 's/^serve: http:\/\/[^:]*:\([0-9]*\)\/.*/\1/p' "$tmp/serve.out")
[ -n "$port" ] || fail "serve did not start: $(cat "$tmp/serve.err")"
url=http://127.0.0.1:$port

metric() { # NAME: its value on serve's /metrics ("" when absent)
    curl -fs "$url/metrics" | awk -v n="$1" '$1 == n {print $2}'
}
wait_metrics() { # "NAME=VALUE ..." SECONDS: until all hold
    local want=$1 end=$((SECONDS + $2)) kv ok
    while [ $SECONDS -lt $end ]; do
        ok=yes
        for kv in $want; do
            [ "$(metric "${kv%%=*}")" = "${kv#*=}" ] || { ok=no; break; }
        done
        [ $ok = yes ] && return 0
        sleep 0.2
    done
    return 1
}
[ "$(metric railgun_producer_fallback_active)" = 0 ] ||
    fail "degraded before the outage: $(curl -s "$url/metrics" | grep '^railgun_producer')"

# 1. the outage
kill -USR1 $mk
wait_metrics "railgun_producer_fallback_active=1" 30 ||
    fail "the producer never turned degraded: $(curl -s "$url/metrics" | grep '^railgun_producer'); $(cat "$tmp/mk.err")"
"$rg" doctor --metrics "$url" --watch-ms 2000 --json >"$tmp/doctor.json" 2>"$tmp/doctor.err"
rc=$?
[ $rc -eq 1 ] || fail "doctor exit $rc, not 1: $(cat "$tmp/doctor.err" "$tmp/doctor.json")"
jq -e '[.findings[].id] | index("producer_fallback") != null' "$tmp/doctor.json" >/dev/null ||
    fail "doctor did not name producer_fallback: $(cat "$tmp/doctor.json")"

# 2. likes during the outage: accepted into the spool, none stored
timeout 60 "$client" post "$port" "${stream[@]}" 4 50 >"$tmp/post.out" 2>&1 ||
    fail "post: $(cat "$tmp/post.out")"
[ "$(metric railgun_producer_spooled_events)" = $events ] ||
    fail "spooled $(metric railgun_producer_spooled_events), not $events"
[ "$(metric railgun_producer_fallback_active)" = 1 ] || fail "not degraded any more"
n=$(sqlite3 "$tmp/likes.db" "SELECT count(*) FROM counts") ||
    fail "cannot read the database"
[ "$n" = 0 ] || fail "$n count rows during the outage: nothing reached Kafka"

# 3. Kafka back: the spool drains, counts and states exact
kill -USR2 $mk
wait_metrics "railgun_producer_fallback_active=0 railgun_producer_spooled_events=0 railgun_producer_replayed_total=$events" 60 ||
    fail "the spool did not drain: $(curl -s "$url/metrics" | grep '^railgun_producer')"
segs=$(find "$tmp/spool" -name '*.seg' | wc -l)
[ "$segs" -eq 0 ] || fail "$segs spool segments left after the replay"
"$client" verify "$port" "${stream[@]}" 120 500 >"$tmp/verify.out" 2>&1 ||
    fail "verify: $(cat "$tmp/verify.out")"

# 4. every process exits 0
for p in $serve $run $mk; do
    kill -TERM $p
    wait $p
    rc=$?
    [ $rc -eq 0 ] || fail "process $p exited $rc"
done
pids=()
echo "serve_fallback: the outage turned serve's producer degraded (doctor:" \
    "producer_fallback), $events likes accepted into the spool and none" \
    "stored meanwhile; Kafka back, the spool replayed and" \
    "$(sed 's/^likes_client: //' "$tmp/verify.out")"
