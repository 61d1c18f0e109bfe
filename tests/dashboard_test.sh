#!/usr/bin/env bash
# dashboard_test.sh fake FAKE_EXPORTER SOURCE_DIR
# dashboard_test.sh run RAILGUN SOURCE_DIR
# The live dashboard page in a real browser: headless Chromium (Debian's
# /usr/bin/chromium, a fresh profile, driven over the DevTools protocol by
# tests/support/chromium_cdp.py) loads / of a metrics listener, waits for
# three reads of /stats.json, and tests/dashboard_check.py checks every
# figure it rendered against the JSON it read (and the doctor findings
# against /doctor.json), that nothing came from outside the listener, and
# the screenshot.
#   fake: against tests/support/fake_exporter (clocked metrics: the
#         rendered rates must match its rates), healthy then broken.
#   run:  against a `railgun run` (mock-kafka, 20k likes produced, SQLite,
#         hot-key detection on, one video taking half the paced load),
#         with -X metrics.listen: needs the engine's metrics wiring
#         (NOTES-ctl.md lists what it reads).
# Screenshots go to the test's temp dir, removed after unless KEEP=1 is
# set (then the dir is printed and kept).
set -uo pipefail
mode=${1:?fake|run} bin=${2:?BINARY} src=${3:?SOURCE_DIR}
py=$(command -v python3) || { echo "dashboard_test: python3 not found" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "dashboard_test: /usr/bin/chromium not found (apt-get install chromium)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rg-dashboard.XXXXXX")
pids=()
# shellcheck source=support/stop_pids.sh
. "$(dirname "$0")/support/stop_pids.sh"
cleanup() {
    stop_pids "${pids[@]}"
    if [ -n "${KEEP:-}" ]; then
        echo "dashboard_test: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

collect='JSON.stringify({figs: Array.from(document.querySelectorAll("[data-k]")).map(function (e) {
  return {k: e.getAttribute("data-k"), v: e.getAttribute("data-v") || "", text: e.textContent,
          id: e.getAttribute("data-id")}; }),
  last: rgDash.last, prev: rgDash.prev, dt: rgDash.dt, doctor: rgDash.doctor,
  refreshes: rgDash.refreshes, errors: rgDash.errors})'

# browse BASE_URL NAME CHECK_MODE
browse() {
    local base=$1 name=$2 check=$3
    # TMPDIR: Chromium leaves its org.chromium.Chromium.* dirs there
    TMPDIR=$tmp "$py" "$src/tests/support/chromium_cdp.py" --url "$base/" \
        --until 'window.rgDash && rgDash.refreshes >= 3' --collect "$collect" \
        --screenshot "$tmp/$name.png" --timeout 90 >"$tmp/$name.json" \
        2>"$tmp/$name.err" || fail "chromium ($name): $(cat "$tmp/$name.err")"
    "$py" "$src/tests/dashboard_check.py" "$tmp/$name.json" "$base" \
        "$tmp/$name.png" "$check" || fail "the $name page does not match its JSON"
    # the check can fail: one figure 10% off, or one partition's row gone
    for t in 'f["v"] = str(float(f["v"]) * 1.1) if f["k"] == "throughput" else f["v"]' \
             'f["k"] = "gone" if f["k"] == "partition_lag:likes:1" else f["k"]'; do
        "$py" -c 'import json, sys
r = json.load(open(sys.argv[1]))
for f in r["value"]["figs"]:
    '"$t"'
json.dump(r, open(sys.argv[2], "w"))' "$tmp/$name.json" "$tmp/$name.bad.json"
        if "$py" "$src/tests/dashboard_check.py" "$tmp/$name.bad.json" "$base" \
            "$tmp/$name.png" "$check" >/dev/null 2>&1; then
            fail "dashboard_check accepted a tampered page ($t)"
        fi
    done
}

wait_file() { # FILE PID: until FILE is not empty, while PID lives
    for _ in $(seq 1 200); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

case $mode in
fake)
    for sc in healthy broken; do
        "$bin" --scenario $sc "$tmp/port.$sc" 2>"$tmp/fake.$sc.err" &
        pids+=($!)
        wait_file "$tmp/port.$sc" $! || fail "fake_exporter: $(cat "$tmp/fake.$sc.err")"
        browse "http://127.0.0.1:$(cat "$tmp/port.$sc")" "fake-$sc" "fake-$sc"
    done
    echo "dashboard (fake exporter): healthy and broken pages match their JSON;" \
        "screenshots $( [ -n "${KEEP:-}" ] && echo "in $tmp" || echo "taken")"
    ;;
run)
    "$bin" mock-kafka --topic likes:8 >"$tmp/servers" 2>"$tmp/mk.err" &
    pids+=($!)
    wait_file "$tmp/servers" $! || fail "mock-kafka: $(cat "$tmp/mk.err")"
    servers=$(cat "$tmp/servers")
    "$bin" produce --events 20000 --seed 3 -X "kafka.bootstrap.servers=$servers" \
        >"$tmp/produce" 2>&1 || fail "produce: $(cat "$tmp/produce")"
    port=
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
    [ -n "$port" ] || fail "no free port"
    "$bin" run -X "kafka.bootstrap.servers=$servers" -X "sqlite.path=$tmp/likes.db" \
        -X "metrics.listen=127.0.0.1:$port" --init-schema \
        -X hotkey.enable=true -X hotkey.min.events=100 2>"$tmp/run.err" &
    pids+=($!)
    ok=no
    for _ in $(seq 1 200); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && { ok=yes; break; }
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    [ $ok = yes ] || fail "railgun run never ready on :$port: $(tail -5 "$tmp/run.err")"
    # likes keep coming while the page reads (2000/s for 60 s): the rates
    # it shows are not 0, so the tampered throughput below is caught;
    # video 1 takes half of them, so the hot-key table has its row
    awk 'BEGIN { srand(5); for (t = 0; t < 600; t++) {
        for (i = 0; i < 200; i++) { v = rand() < 0.5 ? 1 : 1 + int(rand() * 5000)
            printf "%d\t{\"video_id\": %d, \"user_id\": %d, \"state\": 1}\n", v, v, 1 + int(rand() * 100000) }
        fflush(); system("sleep 0.1") } }' |
        "$bin" produce --stdin -X "kafka.bootstrap.servers=$servers" >"$tmp/load.out" 2>&1 &
    pids+=($!)
    sleep 3
    browse "http://127.0.0.1:$port" run real
    echo "dashboard (railgun run): the page matches its JSON"
    ;;
*)
    echo "usage: dashboard_test.sh fake|run BINARY SOURCE_DIR" >&2
    exit 2
    ;;
esac
