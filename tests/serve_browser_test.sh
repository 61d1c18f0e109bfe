#!/usr/bin/env bash
# serve_browser_test.sh RAILGUN
# The page of `railgun serve` in headless Chromium (tests/support/cdp.py):
# `railgun mock-kafka`, `railgun run` (SQLite, 200 ms epochs) and `railgun
# serve` as separate processes; the page lists videos 1-5 for user 4242,
# the test clicks Like on video 3 and the count must go up by one (and the
# button read Unlike) within 2 s of the job's next epoch: 0.2 + 2 s. Then
# the count is checked through the API too. RG_SCREENSHOT=FILE.png keeps
# a screenshot of the page after the click.
set -u
rg=$1
chromium=${RG_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "FAIL: no $chromium (make deps installs chromium)"; exit 1; }
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import websocket' 2>/dev/null ||
    { echo "FAIL: /usr/bin/python3 with python3-websocket needed (make deps)"; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.err; do echo "--- $f"; tail -5 "$f"; done
    echo "FAIL: $(printf '%s\n' "$*" | head -1)"
    exit 1
}
"$rg" mock-kafka --topic likes:4 >"$tmp/servers" 2>"$tmp/mk.err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka printed nothing"
db=(-X "sqlite.path=$tmp/likes.db" -X "kafka.bootstrap.servers=$servers")
# 200 ms epochs; fetches that do not wait 500 ms for more on an idle
# partition (librdkafka's fetch.wait.max.ms), as a latency-minded job runs
"$rg" run "${db[@]}" --init-schema -X flush.interval.ms=200 \
    -X kafka.fetch.wait.max.ms=10 2>"$tmp/run.err" &
pids+=($!)
# the job owns every partition before the click (a group join takes s)
for _ in $(seq 1 300); do
    [ "$(grep -c 'starts at offset' "$tmp/run.err")" -ge 4 ] && break
    sleep 0.1
done
[ "$(grep -c 'starts at offset' "$tmp/run.err")" -ge 4 ] ||
    fail "railgun run did not get its partitions"
"$rg" serve "${db[@]}" -X serve.listen=127.0.0.1:0 -X serve.cache=false \
    >"$tmp/serve.out" 2>"$tmp/serve.err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/serve.out" ] && break; sleep 0.1; done
port=$(sed -n 's/^serve: http:\/\/[^:]*:\([0-9]*\)\/.*/\1/p' "$tmp/serve.out")
[ -n "$port" ] || fail "serve did not start"

# TMPDIR: Chromium leaves its org.chromium.Chromium.* dirs there
TMPDIR=$tmp /usr/bin/python3 "$here/support/cdp.py" "$chromium" \
    "http://127.0.0.1:$port/?videos=1-5&user=4242" 3 4242 2.2 \
    ${RG_SCREENSHOT:+"$RG_SCREENSHOT"} >"$tmp/cdp.out" 2>&1 ||
    fail "the click did not show: $(cat "$tmp/cdp.out")"
count=$(curl -s "http://127.0.0.1:$port/v1/videos/3/likes")
state=$(curl -s "http://127.0.0.1:$port/v1/videos/3/likes/4242")
[ "$count" = '{"video_id":3,"count":1}' ] || fail "API count: $count"
[ "$state" = '{"video_id":3,"user_id":4242,"state":1}' ] || fail "API state: $state"
echo "serve_browser: clicked Like on video 3 in headless Chromium: $(cat "$tmp/cdp.out")"
