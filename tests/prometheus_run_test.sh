#!/usr/bin/env bash
# prometheus_run_test.sh RAILGUN   (run under tests/support/with_prometheus.sh)
# The issue's scrape test: a real Prometheus (1 s scrape) scrapes a real
# `railgun run` (mock-kafka, the likes job, SQLite) consuming 500k likes;
# the test asks Prometheus' HTTP API until railgun_events_processed_total
# is exactly the events, the partitions' lag is back at 0, and the epoch
# transaction histogram counts what railgun_epoch_transactions_total
# says, all from the scraped samples.
set -uo pipefail
rg=${1:?RAILGUN}
: "${RG_PROM_URL:?run me under tests/support/with_prometheus.sh}"
events=500000
tmp=$(mktemp -d)
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
    [ -f "$tmp/run.err" ] && tail -5 "$tmp/run.err"
    exit 1
}

# shellcheck source=support/free_port.sh
. "$(dirname "$0")/support/free_port.sh"

# 32 partitions: the mock cluster drops a partition's oldest messages past
# its size limit (with 8, the two hot partitions of these 500k Zipf likes
# started at offsets 3559 and 45953)
"$rg" mock-kafka --topic likes:32 >"$tmp/servers" 2>"$tmp/mk.err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka: $(cat "$tmp/mk.err")"
"$rg" produce --events $events --seed 21 -X "kafka.bootstrap.servers=$servers" \
    >"$tmp/produce" 2>&1 || fail "produce: $(cat "$tmp/produce")"

port=$(free_port) || fail "no free port"
"$rg" run -X "kafka.bootstrap.servers=$servers" -X "sqlite.path=$tmp/likes.db" \
    -X "metrics.listen=127.0.0.1:$port" --init-schema 2>"$tmp/run.err" &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
"$RG_PROM_CTL" targets "$RG_PROM_DIR" "127.0.0.1:$port"

# query EXPR -> the first result's value ("" when none yet)
query() {
    curl -fsG "$RG_PROM_URL/api/v1/query" --data-urlencode "query=$1" |
        jq -r '.data.result[0].value[1] // ""'
}

want() { # want EXPR VALUE SECONDS: waits for EXPR to equal VALUE
    local got=""
    for _ in $(seq 1 $(($3 * 5))); do
        got=$(query "$1")
        [ "$got" = "$2" ] && return 0
        sleep 0.2
    done
    fail "$1 is '$got' in Prometheus, want '$2'"
}

want 'up{job="railgun"}' 1 30
want 'railgun_events_processed_total' "$events" 240
want 'sum(railgun_partition_lag)' 0 60
want 'count(railgun_partition_lag)' 32 30
# the histogram as scraped: its count is the transactions counter
t=$(query 'railgun_epoch_transactions_total')
[ -n "$t" ] && [ "$t" -gt 0 ] || fail "railgun_epoch_transactions_total: '$t'"
want 'railgun_epoch_transaction_seconds_count' "$t" 30
p99=$(query 'histogram_quantile(0.99, railgun_epoch_transaction_seconds_bucket)')
awk -v v="$p99" 'BEGIN { exit !(v > 0 && v <= 10) }' ||
    fail "p99 transaction time '$p99'"
echo "prometheus_run: Prometheus scraped railgun run: processed $events, lag 0," \
    "$t transactions (p99 ${p99} s)"
