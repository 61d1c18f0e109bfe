#!/usr/bin/env bash
# doctor_run_test.sh SCENARIO RAILGUN
# `railgun doctor` against real `railgun run` processes (mock-kafka, the
# likes job, SQLite), each condition created on purpose:
#   healthy     caught up, then under a paced load: exit 0, no finding
#   slow_sink   another process holds the SQLite write lock while events
#               keep coming: bottleneck (stage sink) or commits_stopped
#   fail_key    the processor fails one video forever
#               (-X likes.fault.fail.video=42): runaway_retries or
#               retry_storm, then dead_letters
#   skew        all the load on 2 of 8 partitions: partition_rate_skew
#   stuck       one event blocks its worker (-X likes.fault.stall.video=42
#               -X likes.fault.stall.ms=60000): stuck_watermark naming the
#               partition of video 42 and its offset (--stuck-s 3)
#   redis       flow control through Redis (run via with_redis.sh): doctor
#               without --metrics finds the node through Redis; Redis
#               killed: redis_unreachable
#   paused      two nodes in one group, one SIGSTOPped: node_unreachable
#               for that one, nothing for the other
#
# `railgun run` serves /metrics on -X metrics.listen (apps/railgun/
# run_metrics.c). NOTES-ctl.md lists, per scenario, the metrics each
# depends on.
set -uo pipefail
scenario=${1:?SCENARIO} rg=${2:?RAILGUN}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rg-doctor-run.XXXXXX")
pids=()
# shellcheck source=support/stop_pids.sh
. "$(dirname "$0")/support/stop_pids.sh"
cleanup() {
    stop_pids "${pids[@]}"
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL ($scenario): $*"; exit 1; }

cfg=$("$rg" config 2>&1)
cfg_rc=$?
grep -q '^metrics.listen=' <<<"$cfg" ||
    fail "railgun config (exit $cfg_rc) lists no metrics.listen: $(tail -3 <<<"$cfg")"

# shellcheck source=support/free_port.sh
. "$(dirname "$0")/support/free_port.sh"

"$rg" mock-kafka --topic likes:8 >"$tmp/servers" 2>"$tmp/mk.err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka: $(cat "$tmp/mk.err")"
kafka=(-X "kafka.bootstrap.servers=$servers")

# start_run NAME EXTRA...: a `railgun run` on its own metrics port;
# sets url_NAME and pid_NAME, waits for /readyz
start_run() {
    local name=$1 port
    shift
    port=$(free_port) || fail "no free port"
    "$rg" run "${kafka[@]}" -X "sqlite.path=$tmp/likes.db" -X group.id=doctor-run \
        -X kafka.auto.offset.reset=earliest -X "metrics.listen=127.0.0.1:$port" \
        --init-schema "$@" 2>"$tmp/run.$name.err" &
    local pid=$!
    pids+=($pid)
    printf -v "url_$name" 'http://127.0.0.1:%s' "$port"
    printf -v "pid_$name" '%s' $pid
    # up to 60 s: a second member waits for the group's rebalance
    for _ in $(seq 1 600); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 $pid 2>/dev/null || fail "run $name died: $(tail -5 "$tmp/run.$name.err")"
        sleep 0.1
    done
    fail "run $name never ready: $(tail -5 "$tmp/run.$name.err")"
}

# trickle RATE SECONDS VIDEOS: RATE likes/s for SECONDS as KEY<TAB>VALUE
trickle() {
    awk -v rate="$1" -v secs="$2" -v videos="$3" 'BEGIN {
        srand(7); per = rate / 10
        for (t = 0; t < secs * 10; t++) {
            for (i = 0; i < per; i++) {
                v = 1 + int(rand() * videos); u = 1 + int(rand() * 100000)
                printf "%d\t{\"video_id\": %d, \"user_id\": %d, \"state\": 1}\n", v, v, u
            }
            fflush(); system("sleep 0.1")
        }
    }'
}

load() { # RATE SECONDS VIDEOS: a paced producer in the background
    trickle "$@" | "$rg" produce --stdin "${kafka[@]}" >"$tmp/load.out" 2>&1 &
    pids+=($!)
}

caught_up() { # URL: until its lag is 0
    for _ in $(seq 1 300); do
        if curl -fs "$1/metrics" | awk '/^railgun_partition_lag[{ ]/ {s += $2; n++}
            END {exit !(n > 0 && s == 0)}'; then return 0; fi
        sleep 0.2
    done
    fail "never caught up: $(curl -fs "$1/metrics" | grep '^railgun_partition_lag' | head)"
}

doctor() { # OUT ARGS...: rc in $rc
    local out=$1
    shift
    "$rg" doctor "$@" --json >"$out" 2>"$out.err"
    rc=$?
}

expect() { # FILE [--arg VALUE] JQ WHAT  (VALUE is $u in JQ)
    local f=$1 u=""
    shift
    if [ "$1" = --arg ]; then u=$2; shift 2; fi
    jq -e --arg u "$u" "$1" "$f" >/dev/null || fail "$2: $(cat "$f" "$f.err")"
}

"$rg" produce --events 20000 --seed 5 "${kafka[@]}" >"$tmp/produce" 2>&1 ||
    fail "produce: $(cat "$tmp/produce")"

case $scenario in
healthy)
    start_run a
    caught_up "$url_a"
    doctor "$tmp/idle" --metrics "$url_a"
    [ $rc -eq 0 ] || fail "idle and caught up: exit $rc: $(cat "$tmp/idle")"
    load 2000 12 10000
    sleep 2
    doctor "$tmp/busy" --metrics "$url_a" --watch-ms 4000
    [ $rc -eq 0 ] || fail "under 2000/s: exit $rc: $(cat "$tmp/busy")"
    expect "$tmp/busy" '.healthy and all(.partitions[]; .status == "OK") and
        .nodes[0].processed_per_second > 500' "healthy under load"
    ;;
slow_sink)
    start_run a
    caught_up "$url_a"
    load 3000 30 10000
    sleep 1
    # hold SQLite's write lock: every epoch transaction waits
    # (.timeout: the run commits several times a second; wait for a gap)
    (echo ".timeout 10000"; echo "BEGIN EXCLUSIVE;"; sleep 25; echo "COMMIT;") | sqlite3 "$tmp/likes.db" &
    pids+=($!)
    sleep 3
    doctor "$tmp/d" --metrics "$url_a" --watch-ms 4000
    [ $rc -eq 1 ] || fail "slow sink: exit $rc"
    expect "$tmp/d" 'any(.findings[]; (.id == "bottleneck" and .stage == "sink") or
        .id == "commits_stopped" or .id == "sink_unreachable")' "slow sink not named"
    ;;
fail_key)
    start_run a -X likes.fault.fail.video=42
    load 2000 20 50
    sleep 3
    doctor "$tmp/d" --metrics "$url_a" --watch-ms 4000
    [ $rc -eq 1 ] || fail "failing key: exit $rc"
    expect "$tmp/d" 'any(.findings[]; .id == "runaway_retries" or .id == "retry_storm")' \
        "retries not named"
    ;;
skew)
    start_run a
    caught_up "$url_a"
    load 4000 15 2   # two videos: at most two partitions get anything
    sleep 2
    doctor "$tmp/d" --metrics "$url_a" --watch-ms 4000
    [ $rc -eq 1 ] || fail "skewed topic: exit $rc"
    expect "$tmp/d" 'any(.findings[]; .id == "partition_rate_skew")' "skew not named"
    ;;
stuck)
    start_run a -X likes.fault.stall.video=42 -X likes.fault.stall.ms=60000
    printf '42\t{"video_id": 42, "user_id": 1, "state": 1}\n' |
        "$rg" produce --stdin "${kafka[@]}" >/dev/null 2>&1 || fail "produce 42"
    load 1000 15 10000
    sleep 5
    doctor "$tmp/d" --metrics "$url_a" --watch-ms 3000 --stuck-s 3
    [ $rc -eq 1 ] || fail "stuck event: exit $rc"
    expect "$tmp/d" 'any(.findings[]; .id == "stuck_watermark" and .partition != null and
        .offset != null)' "stuck watermark not named with its partition and offset"
    ;;
redis)
    : "${RG_REDIS_PORT:?run through tests/support/with_redis.sh}"
    start_run a -X flow.global.rate.events.per.s=1000000 -X "flow.redis.port=$RG_REDIS_PORT" \
        -X "flow.redis.password=$RG_REDIS_PASSWORD"
    caught_up "$url_a"
    doctor "$tmp/before" --metrics "$url_a"
    [ $rc -eq 0 ] || fail "with Redis up: exit $rc: $(cat "$tmp/before")"
    # no --metrics: the group's nodes come from Redis, each at the metrics
    # address it registered (NAME@HOST:PORT)
    doctor "$tmp/found" -X group.id=doctor-run -X "flow.redis.port=$RG_REDIS_PORT" \
        -X "flow.redis.password=$RG_REDIS_PASSWORD" -X metrics.listen=127.0.0.1:1
    [ $rc -eq 0 ] || fail "discovered through Redis: exit $rc: $(cat "$tmp/found" "$tmp/found.err")"
    expect "$tmp/found" --arg "$url_a" '[.nodes[].node] == [$u] and .nodes[0].ok' \
        "node a not found through Redis"
    # a group with no node registered is not healthy
    doctor "$tmp/none" -X group.id=nobody -X "flow.redis.port=$RG_REDIS_PORT" \
        -X "flow.redis.password=$RG_REDIS_PASSWORD" -X metrics.listen=127.0.0.1:1
    [ $rc -eq 1 ] && grep -q "no node of group nobody registered in Redis" "$tmp/none.err" ||
        fail "an empty group: exit $rc: $(cat "$tmp/none" "$tmp/none.err")"
    "$RG_REDIS_CTL" kill r0 "$RG_REDIS_DIR" >/dev/null
    sleep 3
    doctor "$tmp/d" --metrics "$url_a" --watch-ms 2000
    [ $rc -eq 1 ] || fail "Redis killed: exit $rc"
    expect "$tmp/d" 'any(.findings[]; .id == "redis_unreachable")' "Redis down not named"
    ;;
paused)
    # the mock cluster completes a rebalance only when the session
    # timeout ends (45 s by default): b's join took 45-70 s under CI's
    # load, past start_run's 60 s. 6 s is still longer than the doctor
    # run below (2.5 s), so the stopped b stays a member while it runs.
    grp=(-X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=500)
    start_run a "${grp[@]}"
    start_run b "${grp[@]}"
    caught_up "$url_a"
    kill -STOP "$pid_b"
    doctor "$tmp/d" --metrics "$url_a,$url_b" --watch-ms 2000 --timeout-ms 500
    kill -CONT "$pid_b"
    [ $rc -eq 1 ] || fail "paused node: exit $rc"
    jq -e --arg b "$url_b" --arg a "$url_a" '
        any(.findings[]; .id == "node_unreachable" and .node == $b) and
        all(.findings[]; .node != $a)' "$tmp/d" >/dev/null ||
        fail "paused node not named: $(cat "$tmp/d")"
    ;;
*)
    fail "unknown scenario"
    ;;
esac
echo "doctor_run ($scenario): named as expected"
