#!/usr/bin/env bash
# run_test.sh RAILGUN [sqlite|mysql]
# The production path end to end, each part its own process: `railgun
# mock-kafka` serves the cluster; `railgun produce` puts the likes on it
# (sqlite: 200k over 32 partitions; mysql: 500k over 8, lz4-compressed,
# since the mock keeps only 5 MB per partition); `railgun run` consumes
# them into the sink. Stopped with SIGTERM under load it exits 0, and the
# restarted run processes exactly the rest (processor invocations add up to
# the events: none twice) until the database matches the stream (`railgun
# demo --verify-only`); a run restarted after that processes nothing.
# A run given only -X flags (no --config, no kafka.auto.offset.reset) in a
# fresh group counts the topic's backlog exactly, and logs where each
# partition starts (the start of the log).
# Then 5 quick stops while stats print every ms and SIGUSR1s arrive.
# mysql: run through tests/support/with_mariadb.sh (RG_MYSQL_SOCKET).
set -u
rg=$1
sink=${2:-sqlite}
tmp=$(mktemp -d)
mk=
cleanup() {
    [ -n "$mk" ] && kill -TERM "$mk" 2>/dev/null
    [ -n "${mk2:-}" ] && kill -TERM "$mk2" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
# the reason's first line is said again last: CI shows a log's tail
fail() {
    echo "FAIL: $*"
    echo "FAIL: $(printf '%s\n' "$*" | head -1)"
    exit 1
}
# a run's stderr without the bulk of its 20 ms interval lines
log() {
    grep -v '"stats":"interval"' "$1"
    grep '"stats":"interval"' "$1" | tail -3
}

if [ "$sink" = mysql ]; then
    events=500000 parts=8
    db=(-X sink=mysql -X "mysql.socket=${RG_MYSQL_SOCKET:?run through with_mariadb.sh}"
        -X "mysql.database=run_$$")
    dbconf="sink=mysql
mysql.socket=$RG_MYSQL_SOCKET
mysql.database=run_$$"
    # the -X only run's own database
    xdb=(-X sink=mysql -X "mysql.socket=$RG_MYSQL_SOCKET"
         -X "mysql.database=xonly_$$")
    xverify=("${xdb[@]}")
else
    events=200000 parts=32
    db=(--db "$tmp/likes.db")
    dbconf="sqlite.path=$tmp/likes.db"
    xdb=(-X "sqlite.path=$tmp/xonly.db")
    xverify=(--db "$tmp/xonly.db")
fi

"$rg" mock-kafka --topic likes:$parts >"$tmp/servers" 2>"$tmp/mk.err" &
mk=$!
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka printed nothing: $(cat "$tmp/mk.err")"

stream=(--events $events --seed 11)
"$rg" produce "${stream[@]}" -X "kafka.bootstrap.servers=$servers" \
    -X kafka.compression.type=lz4 --json \
    >"$tmp/produce" 2>&1 || fail "produce: $(cat "$tmp/produce")"
grep -q "\"produced\":$events" "$tmp/produce" ||
    fail "produce: $(cat "$tmp/produce")"

final() { # FILE FIELD: FIELD of the final stats line
    grep '"stats":"final"' "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}

# only -X flags, a fresh group (the default group.id), no
# kafka.auto.offset.reset: the backlog already in the topic is counted,
# exactly, and each partition's start is logged (librdkafka's own default
# is the end of the log: that once consumed 0 of 61k events)
"$rg" run -X "kafka.bootstrap.servers=$servers" "${xdb[@]}" --init-schema --create-database \
    --json 2>"$tmp/xonly.err" &
run=$!
exact=no
for _ in $(seq 1 120); do
    sleep 1
    kill -0 $run 2>/dev/null || break # died: wait says how
    if "$rg" demo "${stream[@]}" "${xverify[@]}" --verify-only \
        >"$tmp/verify" 2>/dev/null; then exact=yes; break; fi
done
kill -TERM $run
wait $run; rc=$?
[ $rc -eq 0 ] || fail "-X only: run exited $rc: $(log "$tmp/xonly.err")"
[ $exact = yes ] ||
    fail "-X only: never exact: $(cat "$tmp/verify"; log "$tmp/xonly.err")"
px=$(final "$tmp/xonly.err" processed)
[ "${px:-0}" -eq $events ] ||
    fail "-X only: processed ${px:-?} of $events: $(log "$tmp/xonly.err")"
for p in $(seq 0 $((parts - 1))); do
    grep -q "kafka: likes \[$p\]: starts at offset 0, the start of the log" \
        "$tmp/xonly.err" ||
        fail "-X only: no start line for partition $p: $(log "$tmp/xonly.err")"
done

cat >"$tmp/run.conf" <<CONF
kafka.bootstrap.servers=$servers
kafka.auto.offset.reset=earliest
$dbconf
group.id=run-test
flush.interval.ms=50
kafka.session.timeout.ms=6000
CONF

# SIGTERM under load: stopped while events flow, it flushes and commits
"$rg" run --config "$tmp/run.conf" --init-schema --create-database --json \
    -X stats.interval.ms=20 2>"$tmp/run0.err" &
run=$!
for _ in $(seq 1 1200); do
    sleep 0.05
    kill -0 $run 2>/dev/null || break # died: wait says how
    grep '"stats":"interval"' "$tmp/run0.err" | tail -1 |
        grep -q '"processed":[1-9]' && break
done
kill -TERM $run
wait $run; rc=$?
[ $rc -eq 0 ] || fail "run exited $rc after SIGTERM: $(log "$tmp/run0.err")"
p0=$(final "$tmp/run0.err" processed)
[ -n "$p0" ] && [ "$p0" -gt 0 ] && [ "$p0" -lt $events ] ||
    fail "not stopped under load (processed ${p0:-?} of $events)"

"$rg" run --config "$tmp/run.conf" --json 2>"$tmp/run1.err" &
run=$!
exact=no
for _ in $(seq 1 120); do
    sleep 1
    if "$rg" demo "${stream[@]}" "${db[@]}" --verify-only \
        >"$tmp/verify" 2>/dev/null; then exact=yes; break; fi
done
kill -TERM $run
wait $run; rc=$?
[ $exact = yes ] || fail "never exact: $(cat "$tmp/verify"; log "$tmp/run1.err")"
[ $rc -eq 0 ] || fail "run exited $rc after SIGTERM: $(log "$tmp/run1.err")"
grep -q '"stats":"final"' "$tmp/run1.err" || fail "no final stats"
# every event went through the processor once: none twice across the stop
p1=$(final "$tmp/run1.err" processed)
[ $((p0 + p1)) -eq $events ] ||
    fail "processor invocations: $p0 before SIGTERM + $p1 after = " \
        "$((p0 + p1)), not $events"

# restart: the stored offsets cover everything, nothing is processed again
"$rg" run --config "$tmp/run.conf" --json 2>"$tmp/run2.err" &
run=$!
# the group hands the partitions over once the old member's session ends
assigned=no
for _ in $(seq 1 40); do
    sleep 1
    kill -USR1 $run
    sleep 0.2
    if grep '"stats":"now"' "$tmp/run2.err" | tail -1 |
        grep -q "\"partitions\":$parts"; then assigned=yes; break; fi
done
sleep 2
kill -TERM $run
wait $run; rc=$?
[ $rc -eq 0 ] || fail "restarted run exited $rc: $(log "$tmp/run2.err")"
[ $assigned = yes ] ||
    fail "no stats on SIGUSR1, or no assignment: $(log "$tmp/run2.err")"
grep '"stats":"final"' "$tmp/run2.err" | grep -q '"processed":0,' ||
    fail "events processed again: $(grep final "$tmp/run2.err")"
grep '"stats":"final"' "$tmp/run2.err" | grep -q '"partitions":0' ||
    fail "partitions still held at exit: $(grep final "$tmp/run2.err")"
"$rg" demo "${stream[@]}" "${db[@]}" --verify-only >/dev/null ||
    fail "not exact after the restart"

# teardown while stats print every ms and SIGUSR1s arrive: the stats and
# signal threads end before what they read is destroyed (they once outlived
# it: a SIGSEGV after the final stats, found by CI)
for i in 1 2 3 4 5; do
    # the last stop's lines must be gone before the wait below reads the
    # file: the child truncates it only once it runs, and a stale
    # "interval" line sent the signals to a process not yet started
    rm -f "$tmp/run3.err"
    "$rg" run --config "$tmp/run.conf" --json -X stats.interval.ms=1 \
        2>"$tmp/run3.err" &
    run=$!
    for _ in $(seq 1 200); do
        grep -q '"stats":"interval"' "$tmp/run3.err" && break
        sleep 0.05
    done
    kill -TERM $run
    for _ in $(seq 1 20); do kill -USR1 $run 2>/dev/null; done
    wait $run; rc=$?
    [ $rc -eq 0 ] || fail "stop $i with stats every ms exited $rc: $(log "$tmp/run3.err")"
    grep -q '"stats":"final"' "$tmp/run3.err" || fail "stop $i: no final stats"
done
# the compact binary form end to end: produce --format binary, run, and
# the database exact (its own cluster and database; SQLite only: the
# decoding is the same whatever the sink)
if [ "$sink" = sqlite ]; then
    "$rg" mock-kafka --topic likes:4 >"$tmp/servers2" 2>"$tmp/mk2.err" &
    mk2=$!
    for _ in $(seq 1 100); do [ -s "$tmp/servers2" ] && break; sleep 0.1; done
    servers2=$(cat "$tmp/servers2")
    [ -n "$servers2" ] || fail "binary: mock-kafka printed nothing"
    bstream=(--events 20000 --seed 5)
    "$rg" produce "${bstream[@]}" --format binary --json \
        -X "kafka.bootstrap.servers=$servers2" >"$tmp/produce2" 2>&1 ||
        fail "binary: produce: $(cat "$tmp/produce2")"
    "$rg" run -X "kafka.bootstrap.servers=$servers2" -X group.id=BIN \
        -X "sqlite.path=$tmp/bin.db" --init-schema --json 2>"$tmp/bin.err" &
    run=$!
    exact=no
    for _ in $(seq 1 60); do
        sleep 1
        kill -0 $run 2>/dev/null || break
        if "$rg" demo "${bstream[@]}" --db "$tmp/bin.db" --verify-only \
            >/dev/null 2>&1; then exact=yes; break; fi
    done
    kill -TERM $run
    wait $run; rc=$?
    [ $rc -eq 0 ] && [ $exact = yes ] ||
        fail "binary: rc $rc, exact $exact: $(log "$tmp/bin.err")"
    grep '"stats":"final"' "$tmp/bin.err" | grep -q '"undecodable":0' ||
        fail "binary: undecodable: $(grep final "$tmp/bin.err")"
fi

echo "run ($sink): produce $events; -X only: all $events counted from the" \
    "start of the log, exact; SIGTERM under load after $p0, restart" \
    "processed $p1 (sum exact, none twice); exact; restart reprocessed" \
    "nothing; 5 stops with stats every ms; --format binary exact"
