#!/usr/bin/env bash
# prometheus_test.sh METRICS_SERVE   (run under tests/support/with_prometheus.sh)
# A real Prometheus scrapes a small program serving a registry
# (tests/support/metrics_serve.c) every second; the test asks Prometheus'
# HTTP API (/api/v1/query) until it holds the counter's exact value, the
# target is up, and a histogram and a collected gauge came through.
set -euo pipefail
bin=${1:?METRICS_SERVE}
: "${RG_PROM_URL:?run me under tests/support/with_prometheus.sh}"
events=424242
tmp=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
"$bin" serve "$tmp/port" "$events" &
pid=$!
for _ in $(seq 1 100); do [ -f "$tmp/port" ] && break; sleep 0.05; done
[ -f "$tmp/port" ] || { echo "prometheus_test: metrics_serve did not start" >&2; exit 1; }
port=$(cat "$tmp/port")
curl -fs "http://127.0.0.1:$port/metrics" >/dev/null
"$RG_PROM_CTL" targets "$RG_PROM_DIR" "127.0.0.1:$port"

# query EXPR -> the first result's value ("" when none yet)
query() {
    curl -fsG "$RG_PROM_URL/api/v1/query" --data-urlencode "query=$1" |
        jq -r '.data.result[0].value[1] // ""'
}

want() { # want EXPR VALUE: waits up to 30 s for EXPR to equal VALUE
    local got=""
    for _ in $(seq 1 150); do
        got=$(query "$1")
        [ "$got" = "$2" ] && return 0
        sleep 0.2
    done
    echo "prometheus_test: $1 is '$got', want '$2'" >&2
    exit 1
}

want 'up{job="railgun"}' 1
want 'railgun_test_events_total' "$events"
want 'railgun_test_transaction_seconds_count{sink="mysql"}' 1000
want 'railgun_test_partition_lag{partition="2",topic="likes"}' 20
want 'railgun_test_dead_lettered_total{reason="_overflow"}' 7
# PromQL over the buckets works: the median of 37 us .. 37 ms
p50=$(query 'histogram_quantile(0.5, railgun_test_transaction_seconds_bucket)')
awk -v v="$p50" 'BEGIN { exit !(v > 0.01 && v < 0.025) }' ||
    { echo "prometheus_test: p50 is $p50, want about 0.0185" >&2; exit 1; }
echo "prometheus: scraped 127.0.0.1:$port, railgun_test_events_total = $events, p50 = $p50"
