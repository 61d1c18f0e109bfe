#!/usr/bin/env bash
# bench_e2e_test.sh RAILGUN
# `railgun bench e2e` end to end at a small size: producer SDK ->
# `railgun mock-kafka` -> `railgun run` -> SQLite, each its own process.
# It exits 0 and writes its JSON report and an SVG plot beside it: every
# event counted, probes measured (p50 <= p99 <= max, none negative), a
# throughput, a timeline; --json prints the summary line; bad input exits
# 2; nothing is left in the temp dir it used.
set -uo pipefail
rg=${1:?RAILGUN}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rg-e2e-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export TMPDIR=$tmp/scratch
mkdir -p "$TMPDIR"

for bad in "--rate x" "--events 0" "--bogus" "-X sink=null" "--out="; do
    # shellcheck disable=SC2086
    "$rg" bench e2e $bad >"$tmp/bad" 2>&1
    rc=$?
    [ $rc -eq 2 ] || fail "bench e2e $bad exited $rc: $(cat "$tmp/bad")"
done

"$rg" bench e2e --events 6000 --rate 4000 --partitions 8 --out "$tmp/r.json" \
    --json >"$tmp/out" 2>"$tmp/err" || fail "bench e2e: $(cat "$tmp/out" "$tmp/err")"
jq -e '.suite == "e2e" and .events == 6000 and .partitions == 8 and
       .rate_target == 4000 and .sink == "sqlite" and .delivery_failures == 0 and
       .throughput_events_per_second > 0 and .end_to_end_seconds >= .produce_seconds and
       .latency_ms.probes >= 20 and .latency_ms.min >= 0 and
       .latency_ms.min <= .latency_ms.p50 and .latency_ms.p50 <= .latency_ms.p99 and
       .latency_ms.p99 <= .latency_ms.max and (.timeline | length) >= 4 and
       .timeline[-1].produced == 6000 and .plot == "'"$tmp/r.svg"'"' \
    "$tmp/r.json" >/dev/null || fail "report: $(cat "$tmp/r.json")"
jq -e '.suite == "e2e" and .report == "'"$tmp/r.json"'" and .latency_ms_p50 > 0' \
    "$tmp/out" >/dev/null || fail "--json line: $(cat "$tmp/out")"
grep -q '<svg' "$tmp/r.svg" && grep -q 'probe latency' "$tmp/r.svg" ||
    fail "no SVG plot at $tmp/r.svg"
[ -z "$(ls -A "$TMPDIR")" ] || fail "left behind: $(ls -A "$TMPDIR")"
echo "bench e2e: $(jq -r '"\(.events) events, \(.throughput_events_per_second | floor)/s end to end, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms"' "$tmp/r.json"); report and plot written"
