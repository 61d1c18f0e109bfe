#!/usr/bin/env bash
# loud_test.sh RAILGUN [sqlite|mysql]
# Nothing fails quietly (issue 18): each situation an operator met where
# railgun lost, doubled or hung without a word, reproduced with real
# processes, and what it does now.
#   reset    a recreated topic (a new cluster, fewer events than stored):
#            run refuses with the partition, the offsets and what to do;
#            --reset-offsets all counts the new log, the reset is in the
#            offsets table, nothing is rejected
#   owner    a second job (group GB) on GA's database is refused, naming
#            GA; --handover-from GA continues at GA's positions (nothing
#            reprocessed, counts unchanged), and GA is then refused
#   sink     (sqlite) a full disk (a 1 MB tmpfs): the error text is
#            logged, the stats show the sink failing, SIGTERM stops within
#            shutdown.timeout.ms (exit 1, saying what was not stored), a
#            second SIGTERM stops at once; after the disk grows a restart
#            is exact. (mysql) the server killed: its error is logged,
#            SIGTERM stops in time; the server back, a restart is exact
#            (the stream is produced twice: once stored before the kill,
#            once to be written during the outage)
#   kafka    every broker gone: "all brokers down for N s" with the cause,
#            kafka errors counted, SIGTERM stops in time; a missing topic:
#            "no partitions ... assigned for N s"
#   bad      25,000 messages with "state":7: a loud warning naming the
#            reason and a partition and offset, the reasons in every stats
#            line
#   traps    SIGHUP stops gracefully; produce to an unreachable broker
#            fails in produce.timeout.ms with the cause; (mysql)
#            --init-schema with a mistyped database creates nothing and
#            says --create-database
# mysql: run through tests/support/with_mariadb.sh.
set -u
rg=$1
sink=${2:-sqlite}
tmp=$(mktemp -d)
pids=()
mnt=
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}
passed=()
ok() { passed+=("$1"); }
final() { # FILE FIELD: FIELD of the final stats line
    grep '"stats":"final"' "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}
# waits up to $2 s for the pattern $3 in file $1
wait_for() {
    for _ in $(seq 1 $(($2 * 10))); do
        grep -q -- "$3" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# seconds (one decimal) since $1 (date +%s.%N)
since() { echo "$(date +%s.%N) $1" | awk '{printf "%.1f", $1 - $2}'; }
mock() { # NAME PARTITIONS: starts a mock cluster, sets $servers and $mk
    "$rg" mock-kafka --topic likes:$2 >"$tmp/$1.servers" 2>"$tmp/$1.err" &
    mk=$!
    pids+=($mk)
    for _ in $(seq 1 100); do [ -s "$tmp/$1.servers" ] && break; sleep 0.1; done
    servers=$(cat "$tmp/$1.servers")
    [ -n "$servers" ] || fail "mock-kafka $1 printed nothing: $(cat "$tmp/$1.err")"
}
# runs `railgun run` in the background with the common flags; $run, $runlog
start_run() { # LOG ARGS...
    runlog=$tmp/$1
    shift
    "$rg" run --json -X flush.interval.ms=50 -X source.warn.after.ms=1000 \
        -X shutdown.timeout.ms=3000 -X kafka.session.timeout.ms=6000 \
        -X kafka.log_level=0 "$@" 2>"$runlog" &
    run=$!
    pids+=($run)
    # the engine started (so signals are the signal thread's), or it died
    for _ in $(seq 1 100); do
        grep -q "idle.policy" "$runlog" 2>/dev/null && return 0
        kill -0 "$run" 2>/dev/null || return 0
        sleep 0.1
    done
}
stop_run() { # stops $run with SIGTERM; $rc, $took
    local t0
    t0=$(date +%s.%N)
    kill -TERM "$run"
    wait "$run"
    rc=$?
    took=$(since "$t0")
}
# polls SIGUSR1 stats until processed reaches $1 (up to $2 s)
wait_processed() {
    for _ in $(seq 1 $(($2 * 5))); do
        kill -0 "$run" 2>/dev/null || return 1
        kill -USR1 "$run"
        sleep 0.2
        grep '"stats":"now"' "$runlog" | tail -1 |
            grep -q "\"processed\":$1," && return 0
    done
    return 1
}

if [ "$sink" = mysql ]; then
    sock=${RG_MYSQL_SOCKET:?run through with_mariadb.sh}
    dbargs() { echo "-X sink=mysql -X mysql.socket=$sock -X mysql.database=loud_$1_$$"; }
    dbnew() { echo "--create-database"; }
    sql() { mariadb --no-defaults -uroot --socket="$sock" -N -B "loud_$1_$$" -e "$2"; }
else
    dbargs() { echo "-X sqlite.path=$tmp/$1.db"; }
    dbnew() { :; }
    sql() { sqlite3 "$tmp/$1.db" "$2"; }
fi

# ---- reset: a recreated topic --------------------------------------------
mock A 4
"$rg" produce --events 8000 --partitions 4 --seed 1 \
    -X "kafka.bootstrap.servers=$servers" >/dev/null 2>"$tmp/pA" ||
    fail "produce A: $(cat "$tmp/pA")"
# shellcheck disable=SC2046
start_run reset1.err -X "kafka.bootstrap.servers=$servers" -X kafka.group.id=K1 \
    -X group.id=RR $(dbargs reset) $(dbnew) --init-schema
wait_processed 8000 60 || fail "reset: first run never processed 8000: $(tail -5 "$runlog")"
stop_run
[ "$rc" -eq 0 ] || fail "reset: first run exited $rc: $(tail -5 "$runlog")"
kill -9 "$mk"; wait "$mk" 2>/dev/null
mock B 4
"$rg" produce --events 4000 --partitions 4 --seed 2 \
    -X "kafka.bootstrap.servers=$servers" >/dev/null 2>"$tmp/pB" ||
    fail "produce B: $(cat "$tmp/pB")"
# shellcheck disable=SC2046
start_run reset2.err -X "kafka.bootstrap.servers=$servers" -X kafka.group.id=K2 \
    -X group.id=RR $(dbargs reset)
for _ in $(seq 1 300); do kill -0 "$run" 2>/dev/null || break; sleep 0.1; done
kill -0 "$run" 2>/dev/null && fail "reset: the run went on over a recreated topic: $(tail -5 "$runlog")"
wait "$run"; rc=$?
[ "$rc" -eq 1 ] || fail "reset: exit $rc, not 1: $(tail -5 "$runlog")"
grep -q "but the log ends at" "$runlog" && grep -q -- "--reset-offsets" "$runlog" ||
    fail "reset: no message saying what happened and what to do: $(tail -5 "$runlog")"
# shellcheck disable=SC2046
start_run reset3.err -X "kafka.bootstrap.servers=$servers" -X kafka.group.id=K2 \
    -X group.id=RR $(dbargs reset) --reset-offsets all
wait_processed 4000 60 || fail "reset: --reset-offsets all did not count the new log: $(tail -5 "$runlog")"
stop_run
[ "$rc" -eq 0 ] || fail "reset: accepted run exited $rc: $(tail -5 "$runlog")"
[ "$(final "$runlog" rejected)" = 0 ] || fail "reset: events rejected: $(grep final "$runlog")"
grep -q "reset accepted" "$runlog" || fail "reset: the reset is not logged"
stored=$(sql reset "SELECT SUM(next_offset) FROM offsets WHERE consumer_group = 'RR'")
[ "$stored" = 4000 ] || fail "reset: the offsets table holds $stored, not 4000"
ok reset

# ---- owner: a second job on one database ---------------------------------
# shellcheck disable=SC2046
start_run ownA.err -X "kafka.bootstrap.servers=$servers" -X group.id=GA \
    $(dbargs own) $(dbnew) --init-schema
wait_processed 4000 60 || fail "owner: GA never processed 4000: $(tail -5 "$runlog")"
stop_run
counts_a=$(sql own "SELECT SUM(count) FROM counts")
# shellcheck disable=SC2046
start_run ownB.err -X "kafka.bootstrap.servers=$servers" -X group.id=GB $(dbargs own)
for _ in $(seq 1 300); do kill -0 "$run" 2>/dev/null || break; sleep 0.1; done
kill -0 "$run" 2>/dev/null && fail "owner: GB ran on GA's database: $(tail -5 "$runlog")"
wait "$run"; rc=$?
[ "$rc" -ne 0 ] || fail "owner: GB exited 0"
grep -q "belong to consumer group GA" "$runlog" && grep -q -- "--handover-from GA" "$runlog" ||
    fail "owner: the refusal does not name the owner and the handover: $(tail -3 "$runlog")"
# shellcheck disable=SC2046
start_run ownC.err -X "kafka.bootstrap.servers=$servers" -X group.id=GB \
    $(dbargs own) --handover-from GA
wait_for "$runlog" 30 "starts at offset" ||
    fail "owner: the handover run did not start: $(tail -5 "$runlog")"
sleep 1
stop_run
[ "$rc" -eq 0 ] || fail "owner: the handover run exited $rc: $(tail -5 "$runlog")"
[ "$(final "$runlog" processed)" = 0 ] || fail "owner: GB reprocessed GA's events: $(grep final "$runlog")"
[ "$(sql own "SELECT SUM(count) FROM counts")" = "$counts_a" ] || fail "owner: counts changed in the handover"
grep -q "handover:" "$runlog" || fail "owner: the handover is not logged"
# shellcheck disable=SC2046
start_run ownD.err -X "kafka.bootstrap.servers=$servers" -X group.id=GA $(dbargs own)
wait "$run"; rc=$?
[ "$rc" -ne 0 ] && grep -q "belong to consumer group GB" "$runlog" ||
    fail "owner: GA still writes after the handover: rc $rc $(tail -3 "$runlog")"
ok owner

# ---- sink: a failing sink is loud, and stops in time ----------------------
if [ "$sink" = sqlite ]; then
    mnt=$tmp/small
    mkdir -p "$mnt"
    if ! mount -t tmpfs -o size=1m tmpfs "$mnt" 2>"$tmp/mount.err"; then
        mnt=
        echo "loud_test: cannot mount a tmpfs ($(cat "$tmp/mount.err")): the full-disk case needs root" >&2
        exit 77
    fi
    "$rg" produce --events 60000 --partitions 4 --seed 3 \
        -X "kafka.bootstrap.servers=$servers" -X topic=full >/dev/null 2>"$tmp/pF" ||
        fail "produce full: $(cat "$tmp/pF")"
    start_run full1.err -X "kafka.bootstrap.servers=$servers" -X topic=full \
        -X group.id=FULL -X "sqlite.path=$mnt/full.db" --init-schema \
        -X stats.interval.ms=500
    wait_for "$runlog" 60 "disk is full" ||
        fail "sink: no line names the full disk: $(tail -5 "$runlog")"
    wait_for "$runlog" 10 '"sink_failing":[1-9]' ||
        fail "sink: the stats do not show the sink failing"
    stop_run
    [ "$rc" -eq 1 ] || fail "sink: exit $rc after SIGTERM on a full disk, not 1"
    awk -v t="$took" 'BEGIN {exit !(t < 8)}' ||
        fail "sink: SIGTERM took $took s with shutdown.timeout.ms=3000"
    echo "loud: measured: SIGTERM on a full disk stopped in $took s (shutdown.timeout.ms=3000)"
    grep -q "not stored" "$runlog" || fail "sink: the exit does not say what was not stored"
    # a second SIGTERM stops at once: room for the claim, then full again
    used=$(du -sk "$mnt" | cut -f1)
    mount -o remount,size=$((used + 200))k "$mnt"
    start_run full2.err -X "kafka.bootstrap.servers=$servers" -X topic=full \
        -X group.id=FULL -X "sqlite.path=$mnt/full.db" -X shutdown.timeout.ms=60000
    wait_for "$runlog" 30 "disk is full" || fail "sink: second run: no full disk"
    t0=$(date +%s.%N)
    kill -TERM "$run"; sleep 0.3; kill -TERM "$run"
    wait "$run"; rc=$?
    took=$(since "$t0")
    awk -v t="$took" 'BEGIN {exit !(t < 3)}' || fail "sink: a second SIGTERM took $took s"
    echo "loud: measured: a second SIGTERM stopped it in $took s"
    grep -q "second signal" "$runlog" || fail "sink: the second signal is not said"
    # room again: what was not stored is reprocessed, and it adds up
    mount -o remount,size=256m "$mnt"
    start_run full3.err -X "kafka.bootstrap.servers=$servers" -X topic=full \
        -X group.id=FULL -X "sqlite.path=$mnt/full.db"
    ok=no
    for _ in $(seq 1 60); do
        sleep 1
        if "$rg" demo --events 60000 --partitions 4 --seed 3 --db "$mnt/full.db" \
            --verify-only -X topic=full -X group.id=FULL >"$tmp/verify" 2>&1; then ok=yes; break; fi
    done
    stop_run
    [ $ok = yes ] || fail "sink: not exact after the disk grew: $(cat "$tmp/verify")"
    umount "$mnt"; mnt=
else
    "$rg" produce --events 60000 --partitions 4 --seed 3 \
        -X "kafka.bootstrap.servers=$servers" -X topic=down >/dev/null 2>"$tmp/pF" ||
        fail "produce down: $(cat "$tmp/pF")"
    # shellcheck disable=SC2046
    start_run down1.err -X "kafka.bootstrap.servers=$servers" -X topic=down \
        -X group.id=DOWN $(dbargs down) $(dbnew) --init-schema -X stats.interval.ms=500
    wait_processed 60000 30 || fail "sink: the stream was not processed before the outage"
    "$RG_MYSQL_CTL" kill "$RG_MYSQL_DIR"
    # the same stream again, so the job must write during the outage; a
    # replay changes no state (a repeated like is no transition), so the
    # database must end as after one pass
    "$rg" produce --events 60000 --partitions 4 --seed 3 \
        -X "kafka.bootstrap.servers=$servers" -X topic=down >/dev/null 2>"$tmp/pF" ||
        fail "produce down again: $(cat "$tmp/pF")"
    wait_for "$runlog" 30 "mysql: .*([0-9]*)" ||
        fail "sink: the server's error is not logged: $(tail -5 "$runlog")"
    stop_run
    awk -v t="$took" 'BEGIN {exit !(t < 10)}' ||
        fail "sink: SIGTERM took $took s with the server down"
    echo "loud: measured: SIGTERM with the database server down stopped in $took s"
    "$RG_MYSQL_CTL" start "$RG_MYSQL_DIR" || fail "sink: server did not come back"
    # shellcheck disable=SC2046
    start_run down2.err -X "kafka.bootstrap.servers=$servers" -X topic=down \
        -X group.id=DOWN $(dbargs down)
    ok=no
    for _ in $(seq 1 60); do
        sleep 1
        # shellcheck disable=SC2046
        if "$rg" demo --events 60000 --partitions 4 --seed 3 $(dbargs down) \
            --verify-only -X topic=down -X group.id=DOWN >"$tmp/verify" 2>&1; then ok=yes; break; fi
    done
    stop_run
    [ $ok = yes ] || fail "sink: not exact after the server came back: $(cat "$tmp/verify")"
    # a mistyped database is not created by --init-schema
    "$rg" run -X "kafka.bootstrap.servers=$servers" -X sink=mysql \
        -X "mysql.socket=$sock" -X mysql.database=loud_tpyo_$$ --init-schema \
        2>"$tmp/typo.err"; rc=$?
    [ $rc -eq 2 ] && grep -q -- "--create-database" "$tmp/typo.err" ||
        fail "traps: a mistyped database: rc $rc: $(cat "$tmp/typo.err")"
    mariadb --no-defaults -uroot --socket="$sock" -N -B -e "SHOW DATABASES" |
        grep -q "loud_tpyo_$$" && fail "traps: --init-schema created the mistyped database"
fi
ok sink

# ---- kafka: every broker gone, a missing topic ---------------------------
# shellcheck disable=SC2046
start_run kafka1.err -X "kafka.bootstrap.servers=$servers" -X group.id=KD \
    $(dbargs kafka) $(dbnew) --init-schema
for _ in $(seq 1 300); do
    [ "$(grep -c "starts at offset" "$runlog")" -ge 4 ] && break
    sleep 0.1
done
[ "$(grep -c "starts at offset" "$runlog")" -ge 4 ] ||
    fail "kafka: never assigned: $(tail -5 "$runlog")"
kill -9 "$mk"; wait "$mk" 2>/dev/null
wait_for "$runlog" 30 "all brokers down for" ||
    fail "kafka: the outage is not said: $(tail -5 "$runlog")"
kill -USR1 "$run"; sleep 0.3
grep '"stats":"now"' "$runlog" | tail -1 | grep -q '"kafka_errors":[1-9]' ||
    fail "kafka: errors not counted: $(grep '"stats":"now"' "$runlog" | tail -1)"
stop_run
awk -v t="$took" 'BEGIN {exit !(t < 12)}' || fail "kafka: SIGTERM took $took s with Kafka dead"
echo "loud: measured: SIGTERM with every broker dead stopped in $took s"
[ "$rc" -eq 0 ] || fail "kafka: exit $rc with Kafka dead: $(tail -3 "$runlog")"
mock C 2
# shellcheck disable=SC2046
start_run kafka2.err -X "kafka.bootstrap.servers=$servers" -X group.id=KM \
    -X topic=no_such_topic $(dbargs kafkam) $(dbnew) --init-schema
wait_for "$runlog" 30 "no partitions of no_such_topic assigned for" ||
    fail "kafka: zero partitions is not said: $(tail -5 "$runlog")"
stop_run
ok kafka

# ---- bad: undecodable messages are loud ----------------------------------
for i in $(seq 1 25000); do printf '%d\t{"video_id":%d,"user_id":%d,"state":7}\n' \
    $((i % 50 + 1)) $((i % 50 + 1)) "$i"; done >"$tmp/bad.txt"
"$rg" produce --stdin -X "kafka.bootstrap.servers=$servers" <"$tmp/bad.txt" \
    >/dev/null 2>"$tmp/pbad" || fail "produce bad: $(cat "$tmp/pbad")"
# shellcheck disable=SC2046
start_run bad.err -X "kafka.bootstrap.servers=$servers" -X group.id=BAD \
    $(dbargs bad) $(dbnew) --init-schema -X undecodable.alert.window.ms=1000 \
    -X stats.interval.ms=500
wait_for "$runlog" 60 "were undecodable" ||
    fail "bad: no loud warning: $(tail -5 "$runlog")"
grep "were undecodable" "$runlog" | grep -q "OUT_OF_RANGE" &&
    grep "were undecodable" "$runlog" | grep -q "partition [0-9]* offset [0-9]*" ||
    fail "bad: the warning does not name the reason and where: $(grep "were undecodable" "$runlog")"
wait_for "$runlog" 10 '"stats":"interval".*"undecodable_by_reason":{"OUT_OF_RANGE":' ||
    fail "bad: the stats lines do not show the reasons"
stop_run
grep '"stats":"final"' "$runlog" | grep -q '"undecodable_by_reason":{"OUT_OF_RANGE":25000}' ||
    fail "bad: the final stats do not count the reason: $(grep final "$runlog")"
ok bad

# ---- traps ------------------------------------------------------------------
# shellcheck disable=SC2046
start_run hup.err -X "kafka.bootstrap.servers=$servers" -X group.id=HUP \
    $(dbargs hup) $(dbnew) --init-schema
wait_for "$runlog" 30 "starts at offset" || fail "traps: SIGHUP run never assigned"
kill -HUP "$run"
wait "$run"; rc=$?
[ "$rc" -eq 0 ] && grep -q '"stats":"final"' "$runlog" ||
    fail "traps: SIGHUP did not stop gracefully: rc $rc $(tail -3 "$runlog")"
t0=$(date +%s.%N)
"$rg" produce --events 10 -X kafka.bootstrap.servers=127.0.0.1:1 \
    -X produce.timeout.ms=2000 >/dev/null 2>"$tmp/unreach.err"; rc=$?
took=$(since "$t0")
[ "$rc" -eq 1 ] && grep -q "not delivered within 2000 ms" "$tmp/unreach.err" ||
    fail "traps: produce to an unreachable broker: rc $rc: $(cat "$tmp/unreach.err")"
awk -v t="$took" 'BEGIN {exit !(t < 15)}' || fail "traps: produce took $took s to fail"
echo "loud: measured: produce to a dead address gave up in $took s (produce.timeout.ms=2000)"
# flags a mode ignores, and settings railgun cannot honour, are refused
# with the reason (exit 2)
refused() { # WHAT GREP ARGS...: the command exits 2 saying GREP
    local what=$1 want=$2
    shift 2
    "$rg" "$@" >/dev/null 2>"$tmp/refused.err"; local rc=$?
    [ $rc -eq 2 ] && grep -q -- "$want" "$tmp/refused.err" ||
        fail "traps: $what: rc $rc: $(cat "$tmp/refused.err")"
}
refused "demo --verify-only --crash-at" "use one or the other" \
    demo --verify-only --crash-at 3
refused "produce --stdin --events" "use one or the other" \
    produce --stdin --events 10 -X "kafka.bootstrap.servers=$servers"
refused "an empty kafka.bootstrap.servers" "not set or empty" \
    run -X "kafka.bootstrap.servers= " -X "sqlite.path=$tmp/e.db"
[ ! -e "$tmp/e.db" ] || fail "traps: an empty kafka.bootstrap.servers opened the database first"
refused "kafka.enable.auto.commit=true" "refused: railgun commits offsets" \
    run -X "kafka.bootstrap.servers=$servers" -X kafka.enable.auto.commit=true \
    -X "sqlite.path=$tmp/e.db" --init-schema
ok traps

echo "loud ($sink): ${passed[*]}: each situation stops or shouts, with the cause named"
