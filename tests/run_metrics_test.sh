#!/usr/bin/env bash
# run_metrics_test.sh RAILGUN
# `railgun run`'s own metrics listener (apps/railgun/run_metrics.c), with
# mock-kafka and SQLite in a temp dir:
#   - /readyz turns 200; /healthz 200; the dashboard and /doctor.json answer
#   - `promtool check metrics` accepts /metrics with no complaint
#   - processed and consumed totals equal the events produced, the lag of
#     every partition comes back to 0, /stats.json says the same
#   - with hotkey.enable, the hot video (--hot-share 0.5) is the one hot
#     key in railgun_hot_key_share_ratio, /stats.json and the stats line
#   - with hotkey.lanes=2, one railgun_lane_events_total series per lane,
#     the workers' and lanes' events adding up to the events, and the
#     lanes and key moves in the stats line
#   - an explicit metrics.listen that is taken refuses to start: exit 2,
#     one line naming the property
#   - the default address taken: a loud warning naming it and the
#     property, and the run goes on (consumes everything, exit 0)
set -uo pipefail
rg=${1:?RAILGUN}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rg-run-metrics.XXXXXX")
pids=()
# shellcheck source=support/stop_pids.sh
. "$(dirname "$0")/support/stop_pids.sh"
cleanup() {
    stop_pids "${pids[@]}"
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v promtool >/dev/null || fail "promtool missing (scripts/deps.sh: prometheus)"
command -v jq >/dev/null || fail "jq missing (scripts/deps.sh)"

# shellcheck source=support/free_port.sh
. "$(dirname "$0")/support/free_port.sh"

"$rg" mock-kafka --topic likes:4 >"$tmp/servers" 2>"$tmp/mk.err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka: $(cat "$tmp/mk.err")"
kafka=(-X "kafka.bootstrap.servers=$servers")
events=3000
"$rg" produce --events $events --seed 9 --hot-share 0.5 "${kafka[@]}" >"$tmp/produce" 2>&1 ||
    fail "produce: $(cat "$tmp/produce")"

port=$(free_port) || fail "no free port"
url=http://127.0.0.1:$port
"$rg" run "${kafka[@]}" -X "sqlite.path=$tmp/a.db" -X group.id=metrics-a \
    -X "metrics.listen=127.0.0.1:$port" --init-schema \
    -X hotkey.enable=true -X hotkey.min.events=100 -X hotkey.cool.ms=600000 \
    -X hotkey.window.ms=20000 -X hotkey.lanes=2 \
    2>"$tmp/a.err" &
pid_a=$!
pids+=($pid_a)
ok=no
for _ in $(seq 1 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ]; then ok=yes; break; fi
    kill -0 $pid_a 2>/dev/null || fail "run died: $(tail -5 "$tmp/a.err")"
    sleep 0.1
done
[ $ok = yes ] || fail "/readyz never 200: $(curl -s "$url/readyz"); $(tail -3 "$tmp/a.err")"
[ "$(curl -s "$url/healthz")" = ok ] || fail "/healthz"
grep -q "serving $url/metrics" "$tmp/a.err" || fail "no 'serving' line: $(head -5 "$tmp/a.err")"

# every event processed, lag 0 everywhere
done_=no
for _ in $(seq 1 300); do
    curl -fs "$url/metrics" >"$tmp/m.txt" || fail "GET /metrics"
    if awk -v n=$events '
        /^railgun_events_processed_total / {p = $2}
        /^railgun_events_consumed_total / {c = $2}
        /^railgun_partition_lag[{]/ {lag += $2; parts++}
        END {exit !(p == n && c == n && parts == 4 && lag == 0)}' "$tmp/m.txt"; then
        done_=yes; break
    fi
    sleep 0.2
done
[ $done_ = yes ] || fail "not caught up: $(grep -E '^railgun_(events_processed|events_consumed|partition_lag)' "$tmp/m.txt")"
# the held partitions' committed offsets add up to the events (one run, from 0)
sum=$(awk '/^railgun_partition_committed_offset[{]/ {s += $2} END {print s}' "$tmp/m.txt")
[ "$sum" = $events ] || fail "committed offsets sum to $sum, not $events"
grep -q '^railgun_build_info{version="[0-9.]*",compiler="' "$tmp/m.txt" || fail "build_info"
grep -q '^railgun_connected{component="kafka"} 1$' "$tmp/m.txt" || fail "kafka connected"
grep -q '^railgun_connected{component="sink"} 1$' "$tmp/m.txt" || fail "sink connected"

# the workers' load and the transaction histograms (every committed
# transaction once in each; the workers busy for some of the time)
awk '
    /^railgun_epoch_transactions_total / {t = $2}
    /^railgun_epoch_transaction_seconds_count / {c = $2}
    /^railgun_epoch_rows_count / {r = $2}
    /^railgun_epoch_rows_sum / {rows = $2}
    /^railgun_worker_busy_seconds_total[{]/ {busy += $2; nb++}
    /^railgun_worker_ring_fill_ratio[{]/ {if ($2 < 0 || $2 > 1) bad = 1; nf++}
    END {exit !(t > 0 && c == t && r == t && rows > 0 && nb == 2 && busy > 0 &&
                busy < 60 && nf == 2 && !bad)}' "$tmp/m.txt" ||
    fail "worker load or transaction histograms: $(grep -E '^railgun_(epoch_transaction|epoch_rows|worker_busy|worker_ring)' "$tmp/m.txt" | grep -v _bucket)"
# the hot video, and only it, is hot: judged at a slice end (5 s) after
# its events (an idle dispatcher is judged at each epoch), its share of
# the window about 0.5 for the 20 s the burst stays in the window (the
# share is of the current window), cooled only after hotkey.cool.ms
hot=no
for _ in $(seq 1 150); do
    curl -fs "$url/metrics" >"$tmp/m.txt" || fail "GET /metrics"
    grep -q '^railgun_hot_keys 1$' "$tmp/m.txt" && { hot=yes; break; }
    sleep 0.1
done
[ $hot = yes ] || fail "no hot key: $(grep '^railgun_hot' "$tmp/m.txt")"
awk '/^railgun_hot_key_share_ratio[{]/ {n++; if ($1 == "railgun_hot_key_share_ratio{key=\"1\"}" && $2 > 0.4 && $2 < 0.6) ok = 1}
     /^railgun_hot_key_changes_total[{]direction="hot"[}]/ {h = $2}
     END {exit !(n == 1 && ok && h >= 1)}' "$tmp/m.txt" ||
    fail "hot key series: $(grep '^railgun_hot' "$tmp/m.txt")"
awk -v n=$events '
    /^railgun_lane_events_total[{]lane="[01]"[}] / {l += $2; nl++}
    /^railgun_worker_events_total[{]/ {w += $2}
    END {exit !(nl == 2 && l + w == n)}' "$tmp/m.txt" ||
    fail "lane series: $(grep -E '^railgun_(lane|worker)_events' "$tmp/m.txt")"
out=$(promtool check metrics <"$tmp/m.txt" 2>&1) || fail "promtool check metrics: $out"
[ -z "$out" ] || fail "promtool complained: $out"

curl -fs "$url/stats.json" >"$tmp/s.json" || fail "GET /stats.json"
jq -e --argjson n $events '.railgun_events_processed_total.series[0].value == $n and
    ([.railgun_partition_lag.series[].value] | length == 4 and add == 0)' \
    "$tmp/s.json" >/dev/null || fail "/stats.json: $(head -c 400 "$tmp/s.json")"
jq -e '.railgun_hot_keys.series[0].value == 1' "$tmp/s.json" >/dev/null ||
    fail "/stats.json hot keys: $(jq -c .railgun_hot_keys "$tmp/s.json")"
kill -USR1 $pid_a
for _ in $(seq 1 50); do grep -q 'hot keys 1 ' "$tmp/a.err" && break; sleep 0.1; done
grep -q 'hot keys 1 (1 turned hot, 0 cold): key 1 ' "$tmp/a.err" ||
    fail "stats line without the hot key: $(grep 'railgun run:' "$tmp/a.err" | tail -1)"
grep -Eq '; lanes [0-9]+ [0-9]+ events, [0-9]+ key moves \([0-9]+ to the lanes\)' "$tmp/a.err" ||
    fail "stats line without the lanes: $(grep 'railgun run:' "$tmp/a.err" | tail -1)"
curl -fs "$url/doctor.json" | jq -e '.version == 1 and (.nodes | length == 1)' \
    >/dev/null || fail "/doctor.json"
# into a file first: grep -q stops reading at the match, and under
# pipefail curl's write error on the closed pipe failed the check
curl -fs "$url/" >"$tmp/page.html" && grep -q '<html' "$tmp/page.html" ||
    fail "dashboard page"

# an explicit address already taken: refused before anything runs
"$rg" run "${kafka[@]}" -X "sqlite.path=$tmp/b.db" -X group.id=metrics-b \
    -X "metrics.listen=127.0.0.1:$port" --init-schema >"$tmp/b.out" 2>"$tmp/b.err"
rc=$?
[ $rc -eq 2 ] || fail "explicit busy address: exit $rc, not 2: $(cat "$tmp/b.err")"
[ "$(wc -l <"$tmp/b.err")" -eq 1 ] && grep -q "metrics.listen=127.0.0.1:$port" "$tmp/b.err" ||
    fail "explicit busy address: not one line naming the property: $(cat "$tmp/b.err")"

# the default address taken (by us if nobody else holds it): warned, runs on
python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", 9464)); s.listen(1)
except OSError:
    pass               # someone holds it already: just as good
print("ready", flush=True)
time.sleep(120)' >"$tmp/holder" &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$tmp/holder" ] && break; sleep 0.1; done
"$rg" run "${kafka[@]}" -X "sqlite.path=$tmp/c.db" -X group.id=metrics-c \
    --init-schema 2>"$tmp/c.err" &
pid_c=$!
pids+=($pid_c)
ok=no
for _ in $(seq 1 300); do
    sqlite3 "$tmp/c.db" "select sum(next_offset) from offsets" 2>/dev/null |
        grep -qx $events && { ok=yes; break; }
    kill -0 $pid_c 2>/dev/null || break
    sleep 0.2
done
grep -q "warning: metrics: NO METRICS LISTENER: .*127.0.0.1:9464.*metrics.listen" "$tmp/c.err" ||
    fail "default address taken: no loud warning: $(head -8 "$tmp/c.err")"
[ $ok = yes ] || fail "default address taken: the run did not go on: $(tail -5 "$tmp/c.err")"
kill -TERM $pid_c
wait $pid_c
rc=$?
[ $rc -eq 0 ] || fail "default address taken: exit $rc: $(tail -3 "$tmp/c.err")"
echo "run_metrics: ready, promtool-clean, exact totals, listen errors as documented"
