#!/usr/bin/env bash
# doctor_cli_test.sh RAILGUN FAKE_EXPORTER [redis]
# `railgun doctor` as a command, against tests/support/fake_exporter
# (clocked metrics of every proposed name; its broken scenario has a stuck
# partition, Redis unreachable, runaway retries, a hot worker):
#   - bad input exits 2 with one line (bad URL, bad number, unknown
#     option, no node to watch);
#   - a healthy node: exit 0, "healthy", --json healthy with every scrape;
#   - a broken node: exit 1, names the stuck watermark with its partition
#     and offset, Redis unreachable, runaway retries; --json carries them;
#   - a paused node (SIGSTOP) beside a healthy one: exit 1, that node
#     unreachable (timed out), nothing said of the other; a closed port:
#     connection refused;
#   - GET /doctor.json on the node is the same report shape.
# redis (run through tests/support/with_redis.sh): both exporters join a
# group in a real Redis; doctor without --metrics finds them in the
# registry (NAME@HOST:PORT ids) and reports each; then Redis is killed:
# the nodes turn degraded and doctor names redis_unreachable on each, and
# the registry as unreachable.
set -uo pipefail
rg=${1:?RAILGUN} fake=${2:?FAKE_EXPORTER} mode=${3:-plain}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rg-doctor.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

start_fake() { # NAME SCENARIO [ARGS...]: sets port_NAME, pid_NAME
    local name=$1 sc=$2
    shift 2
    "$fake" --scenario "$sc" "$@" "$tmp/port.$name" 2>"$tmp/fake.$name.err" &
    local pid=$!
    pids+=($pid)
    for _ in $(seq 1 200); do
        [ -s "$tmp/port.$name" ] && break
        kill -0 $pid 2>/dev/null || fail "fake_exporter $name: $(cat "$tmp/fake.$name.err")"
        sleep 0.05
    done
    [ -s "$tmp/port.$name" ] || fail "fake_exporter $name never listened"
    printf -v "port_$name" '%s' "$(cat "$tmp/port.$name")"
    printf -v "pid_$name" '%s' $pid
}

doctor() { # OUT ARGS...: runs doctor, stdout to OUT, stderr to OUT.err; rc in $rc
    local out=$1
    shift
    "$rg" doctor "$@" >"$out" 2>"$out.err"
    rc=$?
}

if [ "$mode" = plain ]; then
    # bad input: 2, one line on stderr
    for args in "--metrics ftp://x" "--metrics http://h:0" "--watch-ms abc" \
        "--interval-ms 1" "--bogus" "--metrics"; do
        # shellcheck disable=SC2086
        doctor "$tmp/bad" $args
        [ $rc -eq 2 ] || fail "doctor $args exited $rc, not 2"
        [ "$(wc -l <"$tmp/bad.err")" -eq 1 ] || fail "doctor $args: not one line: $(cat "$tmp/bad.err")"
    done
    # metrics.listen has a default (this host's `railgun run`): "" leaves
    # doctor nothing to watch
    doctor "$tmp/none" -X metrics.listen=
    [ $rc -eq 2 ] && grep -q "no node to watch" "$tmp/none.err" ||
        fail "doctor without nodes: rc $rc, $(cat "$tmp/none.err")"

    start_fake ok healthy
    start_fake broken broken
    ok=http://127.0.0.1:$port_ok broken=http://127.0.0.1:$port_broken

    doctor "$tmp/h" --metrics "$ok" --watch-ms 2000 --interval-ms 500
    [ $rc -eq 0 ] || fail "healthy node: exit $rc: $(cat "$tmp/h" "$tmp/h.err")"
    grep -q "^railgun doctor: healthy: 1 node, 8 partitions (8 OK), 5 scrapes over 2.0 s" "$tmp/h" ||
        fail "healthy report: $(cat "$tmp/h")"
    doctor "$tmp/hj" --metrics "$ok/metrics" --watch-ms 1000 --interval-ms 500 --json
    [ $rc -eq 0 ] || fail "healthy --json: exit $rc"
    jq -e '.healthy == true and .findings == [] and (.nodes | length) == 1 and
           .nodes[0].scrapes == 3 and .nodes[0].ok and
           (.partitions | length) == 8 and all(.partitions[]; .status == "OK")' \
        "$tmp/hj" >/dev/null || fail "healthy JSON: $(cat "$tmp/hj")"

    doctor "$tmp/b" --metrics "$broken" --watch-ms 2000 --interval-ms 500
    [ $rc -eq 1 ] || fail "broken node: exit $rc"
    for want in "CRITICAL stuck_watermark  $broken" "at offset 100000" \
        "kcat -C -t likes -p 3 -o 100000 -c 1" "WARNING  redis_unreachable" \
        "CRITICAL runaway_retries" "STALL 1"; do
        grep -qF "$want" "$tmp/b" || fail "broken report lacks \"$want\": $(cat "$tmp/b")"
    done
    doctor "$tmp/bj" --metrics "$broken" --watch-ms 1000 --interval-ms 500 --json
    [ $rc -eq 1 ] || fail "broken --json: exit $rc"
    jq -e '.healthy == false and
           any(.findings[]; .id == "stuck_watermark" and .partition == 3 and
               .offset == 100000 and .topic == "likes" and .severity == "critical") and
           any(.findings[]; .id == "redis_unreachable") and
           any(.findings[]; .id == "runaway_retries") and
           any(.partitions[]; .partition == 3 and .status == "STALL")' \
        "$tmp/bj" >/dev/null || fail "broken JSON: $(cat "$tmp/bj")"

    # the node's own /doctor.json: the same shape and the same findings
    curl -fs "$broken/doctor.json" >"$tmp/live.json" || fail "GET /doctor.json"
    jq -e '.version == 1 and .healthy == false and .nodes[0].node == "fake" and
           any(.findings[]; .id == "stuck_watermark" and .offset == 100000)' \
        "$tmp/live.json" >/dev/null || fail "/doctor.json: $(cat "$tmp/live.json")"
    curl -fs "$ok/doctor.json" | jq -e '.healthy == true' >/dev/null ||
        fail "/doctor.json of the healthy node is not healthy"

    # a paused node beside a healthy one
    start_fake paused healthy
    paused=http://127.0.0.1:$port_paused
    kill -STOP "$pid_paused"
    doctor "$tmp/p" --metrics "$ok,$paused" --watch-ms 1000 --interval-ms 500 \
        --timeout-ms 300 --json
    kill -CONT "$pid_paused"
    [ $rc -eq 1 ] || fail "paused node: exit $rc"
    jq -e --arg p "$paused" --arg o "$ok" '
        [.findings[] | .id] == ["node_unreachable"] and .findings[0].node == $p and
        (.findings[0].evidence | test("timed out")) and
        any(.nodes[]; .node == $o and .ok) and any(.nodes[]; .node == $p and (.ok | not))' \
        "$tmp/p" >/dev/null || fail "paused node report: $(cat "$tmp/p")"
    # a closed port
    closed=http://127.0.0.1:1
    doctor "$tmp/c" --metrics "$closed" --watch-ms 0
    [ $rc -eq 1 ] && grep -q "Connection refused" "$tmp/c" ||
        fail "closed port: rc $rc, $(cat "$tmp/c")"
    echo "doctor CLI: bad input 2; healthy 0; broken 1 with the stuck offset," \
        "Redis and retries; paused node unreachable; /doctor.json alike"
    exit 0
fi

# ---- redis: discovery through the group's registry ----------------------
: "${RG_REDIS_PORT:?run through tests/support/with_redis.sh}"
redis=(-X "flow.redis.port=$RG_REDIS_PORT" -X "flow.redis.password=$RG_REDIS_PASSWORD"
       -X group.id=doctor-test)
start_fake ok healthy --redis-port "$RG_REDIS_PORT" --redis-password "$RG_REDIS_PASSWORD" --group doctor-test
start_fake broken broken --redis-port "$RG_REDIS_PORT" --redis-password "$RG_REDIS_PASSWORD" --group doctor-test
ok=http://127.0.0.1:$port_ok broken=http://127.0.0.1:$port_broken
found=no
for _ in $(seq 1 20); do
    doctor "$tmp/d" "${redis[@]}" --watch-ms 1000 --interval-ms 500 --json
    if jq -e --arg o "$ok" --arg b "$broken" '
        ([.nodes[].node] | sort) == ([$o, $b] | sort)' "$tmp/d" >/dev/null 2>&1; then
        found=yes
        break
    fi
    sleep 0.5
done
[ $found = yes ] || fail "doctor did not find both nodes in Redis: $(cat "$tmp/d" "$tmp/d.err")"
[ $rc -eq 1 ] || fail "discovery: exit $rc"
jq -e --arg o "$ok" --arg b "$broken" '
    any(.findings[]; .id == "stuck_watermark" and .node == $b) and
    all(.findings[]; .node != $o) and
    all(.findings[]; .id != "redis_unreachable")' "$tmp/d" >/dev/null ||
    fail "discovered report: $(cat "$tmp/d")"

# Redis killed: both nodes turn degraded, the registry is unreachable
"$RG_REDIS_CTL" kill r0 "$RG_REDIS_DIR" >/dev/null
degraded=no
for _ in $(seq 1 40); do
    doctor "$tmp/k" --metrics "$ok" --watch-ms 0 --json
    if jq -e '[.findings[] | .id] == ["redis_unreachable"]' "$tmp/k" >/dev/null 2>&1; then
        degraded=yes
        break
    fi
    sleep 0.25
done
[ $degraded = yes ] || fail "Redis killed: the healthy node never reported redis_unreachable: $(cat "$tmp/k")"
doctor "$tmp/r" "${redis[@]}" --watch-ms 0
[ $rc -eq 1 ] && grep -q "CRITICAL registry_unreachable" "$tmp/r" ||
    fail "Redis killed: discovery rc $rc: $(cat "$tmp/r" "$tmp/r.err")"
echo "doctor (Redis): both nodes found in the registry and reported; Redis" \
    "killed: redis_unreachable on the node, the registry unreachable"
