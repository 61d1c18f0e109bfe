#!/usr/bin/env bash
# flow_group_test.sh RAILGUN [group|outage|sentinel]
# Issue 14's group test: the global rate through Redis across three
# `railgun run` processes of one consumer group, the broker a `railgun
# mock-kafka` process of its own, one MariaDB for the three. 2M likes are
# on the topic; the group's rate is 30000/s (flow.global.rate.events.per.s).
# The group's total is sampled every 2 s from the nodes' /metrics
# (railgun_events_accepted_total: what their buckets let in):
#   1. three nodes: each 2 s window within 10% of 60000 (the first window
#      after the join is skipped);
#   2. node C SIGKILLed: from 2 s after the kill (its lease's TTL is 1 s)
#      A and B together are back within 10% of 60000 per 2 s;
#   3. `railgun flow set --rate 10000`: from 1 s after it the group does
#      10000/s (20000 per 2 s, within 10%); `railgun flow show --json` says
#      so, with the two live nodes;
#   4. `railgun flow set --rate 0` (unlimited): the rest drains (C's
#      partitions move on after kafka.session.timeout.ms), every count is
#      exact (`railgun demo --verify-only`), A and B stop with SIGTERM,
#      exit 0.
# 2M at 30k/s alone would be 66 s; the windows take ~25 s of it and the
# rest drains unlimited: about 2 minutes on the 2-vCPU VM.
# outage: the group at 20000/s (2M then outlast the windows); after step
# 1, Redis SIGKILLed for RG_FLOW_OUTAGE_S (20) s and restarted, then
# SIGSTOPped as long and resumed: every node reports degraded
# (railgun_flow_degraded 1, railgun_connected{component="redis"} 0), the
# group holds its rate at the nodes' fallback (the last fair share each:
# windows within 10%), every node leases again after, windows back at the
# rate; then unlimited, A, B and C drain the rest themselves, exact, and
# stop with SIGTERM (exit 0).
# sentinel (through with_redis.sh --sentinel): the three nodes find the
# primary through three sentinels (flow.redis.sentinels), 800k likes at
# 20000/s; after step 1 the primary is SIGKILLed: every node keeps
# running and reports degraded (railgun_flow_degraded 1, or lease errors
# in its stats when the failover was followed between two samples), the
# group stays within its rate (the nodes' fallback, the last fair share:
# windows never above the rate + 10%), every node leases again from the
# promoted replica (its --json stats: "flow_server" on the replica's port,
# "flow_master_changes" >= 1) within 20 s and without a restart, and the
# windows are back at the rate; then unlimited, A, B and C drain the rest
# themselves, exact, and stop with SIGTERM (exit 0). About 70 s.
# RG_FLOW_GROUP_VERBOSE=1 prints every window.
# Run through tests/support/with_mariadb.sh tests/support/with_redis.sh
# (--sentinel for the sentinel mode).
set -u
rg=$1
mode=${2:-group}
outage_s=${RG_FLOW_OUTAGE_S:-20}
: "${RG_MYSQL_SOCKET:?run through with_mariadb.sh}"
: "${RG_REDIS_PORT:?run through with_redis.sh}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/support/free_port.sh"
tmp=$(mktemp -d)
mk= pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -n "$mk" ] && kill -TERM "$mk" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.err; do
        echo "--- $f"
        grep -v '"stats":"interval"' "$f" | tail -8
    done
    if [ "$mode" = sentinel ]; then # the flow state every 500 ms
        for f in "$tmp"/[ABC].err; do
            echo "--- $f: flow, every 500 ms"
            grep '"stats":"interval"' "$f" | tail -40 |
                grep -o '"consumed":[0-9]*\|"flow_rate.*' | paste -d' ' - -
        done
    fi
    echo "FAIL: $(printf '%s\n' "$*" | head -1)"
    exit 1
}
say() { [ "${RG_FLOW_GROUP_VERBOSE:-0}" = 1 ] && echo "$*"; return 0; }

parts=64 events=2000000 rate=30000
# the outages take ~60 s of windows: at 20000/s 2M last through them
[ "$mode" = outage ] && rate=20000
# the failover ~25 s: 800k last through them at 20000/s
[ "$mode" = sentinel ] && rate=20000 events=800000
if [ "$mode" = sentinel ]; then
    : "${RG_SENTINELS:?run through with_redis.sh --sentinel}"
fi
"$rg" mock-kafka --topic likes:$parts >"$tmp/servers" 2>"$tmp/mk.err" &
mk=$!
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka printed nothing"

# the mock keeps only the newest 5 MB of each partition: 2M fit when they
# spread evenly (uniform over many videos) and are compressed
stream=(--events $events --seed 14 --videos 100000 --zipf 0)
db=(-X sink=mysql -X "mysql.socket=$RG_MYSQL_SOCKET" -X "mysql.database=flow_$$")
"$rg" produce "${stream[@]}" -X "kafka.bootstrap.servers=$servers" \
    -X kafka.compression.type=lz4 --json >"$tmp/produce" 2>&1 ||
    fail "produce: $(cat "$tmp/produce")"
grep -q "\"produced\":$events" "$tmp/produce" ||
    fail "produce: $(cat "$tmp/produce")"

# a session timeout longer than the windows after the kill: C's
# partitions stay unassigned (no rebalance pauses A and B) until it ends
redis=(flow.redis.port=$RG_REDIS_PORT flow.redis.password=$RG_REDIS_PASSWORD)
[ "$mode" = sentinel ] &&
    redis=("flow.redis.sentinels=$RG_SENTINELS" flow.redis.password=$RG_REDIS_PASSWORD
           "flow.redis.master=$RG_REDIS_MASTER")
cat >"$tmp/run.conf" <<CONF
kafka.bootstrap.servers=$servers
kafka.auto.offset.reset=earliest
kafka.session.timeout.ms=15000
kafka.heartbeat.interval.ms=500
sink=mysql
mysql.socket=$RG_MYSQL_SOCKET
mysql.database=flow_$$
group.id=flow-group-test
flush.interval.ms=100
workers=1
flow.global.rate.events.per.s=$rate
${redis[0]}
${redis[1]}
CONF
# outage: a bucket of 150 ms at the fallback share instead of the automatic
# 10 ms, so that a node the loaded VM leaves without a CPU for a few time
# slices catches up within its window (at most 3000 events, 7.5% of one)
[ "$mode" = outage ] && echo "flow.burst.events=1000" >>"$tmp/run.conf"
# sentinel: the master name, and a stats line every 500 ms (the server
# each node leases from)
[ "$mode" = sentinel ] &&
    printf '%s\n' "${redis[2]}" stats.interval.ms=500 >>"$tmp/run.conf"
flow() { "$rg" flow "$@" --config "$tmp/run.conf"; }

declare -A port
spawn() { # NAME [ARGS]: starts a member, its metrics on a free port
    local name=$1 p
    shift
    p=$(free_port) || fail "no free port"
    port[$name]=$p
    "$rg" run --config "$tmp/run.conf" --json -X "metrics.listen=127.0.0.1:$p" \
        -X "flow.node.id=$name" "$@" 2>"$tmp/$name.err" &
    local pid=$!
    pids+=($pid)
    eval "$name=$pid"
}
serving() { # NAME: until it serves its metrics (the sink is open then)
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:${port[$1]}/healthz" >/dev/null && return 0
        kill -0 "${!1}" 2>/dev/null || fail "$1 exited"
        sleep 0.1
    done
    fail "$1 serves no metrics"
}

metric() { # NAME METRIC: its value on NAME's /metrics ("" when absent)
    curl -sf --max-time 1 "http://127.0.0.1:${port[$1]}/metrics" |
        awk -v m="$2" '$1 == m { printf "%d\n", $2; exit }'
}
held() { # NAME: partitions NAME holds now
    curl -sf --max-time 1 "http://127.0.0.1:${port[$1]}/metrics" |
        grep -c '^railgun_partition_paused{'
}

# one sample: "RETRIES TIME_NS ACCEPTED WAITED_MS ..." (a triple per
# node): the sink transactions the named nodes retried (summed), and per
# node when its /metrics answered (the middle of its request: on the
# loaded VM one request can take a few hundred ms, and one time for all
# the nodes, read before their requests, made windows off by that), the
# events its bucket let in and the time its ingest waited for tokens
sample() {
    local r=0 v n out="" va vr vw ta tb
    for n in "$@"; do
        ta=$(date +%s%N)
        v=$(curl -sf --max-time 1 "http://127.0.0.1:${port[$n]}/metrics" |
            awk '$1 == "railgun_events_accepted_total" { a = $2 }
                 $1 == "railgun_epoch_retries_total" { r = $2 }
                 $1 == "railgun_flow_throttled_seconds_total" { w = $2 }
                 END { if (a != "") printf "%d %d %d\n", a, r, w * 1000 }')
        tb=$(date +%s%N)
        [ -n "$v" ] || fail "$n: no railgun_events_accepted_total"
        read -r va vr vw <<<"$v"
        r=$((r + vr)) out+=" $(( (ta + tb) / 2 )) $va $vw"
    done
    echo "$r$out"
}

# diag NODES...: each node's events per s (over about 1 s, by the times
# its /metrics answered), lease, limit, pauses (for a failing window's
# message)
diag() {
    local n out="" s0 s1 k=0
    s0=($(sample "$@"))
    sleep 1
    s1=($(sample "$@"))
    for n in "$@"; do
        out+="$n: $(( (s1[k * 3 + 2] - s0[k * 3 + 2]) * 1000000000 / (s1[k * 3 + 1] - s0[k * 3 + 1]) ))/s"
        out+=", lease $(metric "$n" railgun_flow_lease_events_per_second)"
        out+=", limit $(metric "$n" railgun_flow_limit_events_per_second)"
        out+=", pauses $(metric "$n" railgun_source_pauses_total)"
        out+=", sink retries $(metric "$n" railgun_epoch_retries_total); "
        k=$((k + 1))
    done
    echo "$out"
}

# windows LABEL COUNT PER2S NODES...: COUNT windows of 2 s, each within
# 10% of PER2S events (each node's events over its own interval between
# two samples, normalized to 2 s, summed). Never
# above: that is flow control's bound. Below is judged in the windows
# where the limit was what held the nodes back: every node waited for
# tokens for at least a quarter of the window, and no node's sink retried
# a transaction. (On the shared 2-vCPU VM, MariaDB lock waits and
# deadlocks between the nodes' upserts held all three for seconds: they
# consume less, which no rate limit can make up.) Another window is
# taken for each one not judged, at most COUNT more.
windows() {
    local label=$1 count=$2 want=$3 a b got judged=0 i=0 bound k dt waits
    shift 3
    a=($(sample "$@"))
    while [ $judged -lt "$count" ]; do
        i=$((i + 1))
        [ $i -le $((count * 2)) ] ||
            fail "$label: only $judged of $((i - 1)) windows were limited by the rate ($(diag "$@"))"
        sleep 2
        b=($(sample "$@"))
        got=0 bound=yes waits=""
        for ((k = 0; k < $#; k++)); do
            dt=$((b[k * 3 + 1] - a[k * 3 + 1]))
            got=$((got + (b[k * 3 + 2] - a[k * 3 + 2]) * 2000000000 / dt))
            [ $(( (b[k * 3 + 3] - a[k * 3 + 3]) * 4000000 )) -ge $dt ] || bound=no
            waits+="$((b[k * 3 + 3] - a[k * 3 + 3])) "
        done
        [ $((got * 10)) -le $((want * 11)) ] ||
            fail "$label window $i: $got events per 2 s, above $want + 10% ($(diag "$@"))"
        if [ "${b[0]}" -ne "${a[0]}" ] || [ $bound = no ]; then
            say "$label window $i: $got events per 2 s, not judged below (sink retries $((b[0] - a[0])), token waits ms: $waits)"
        else
            say "$label window $i: $got events per 2 s (want $want ± 10%)"
            [ $((got * 10)) -ge $((want * 9)) ] ||
                fail "$label window $i: $got events per 2 s, want $want ± 10% ($(diag "$@"))"
            judged=$((judged + 1))
        fi
        a=("${b[@]}")
    done
}

# the tables first, by a member of another group on an empty topic: then
# A, B and C start at once, so that no partition moves from one of them
# to another and back (see NOTES-flow2.md: the engine's flusher keeps a
# returning partition's last written offset, and the sink refuses the
# unchanged offset as a lost commit's retry)
spawn S --init-schema --create-database -X group.id=flow-group-schema \
    -X topic=flow-schema
serving S
kill -TERM "$S"
wait "$S"
spawn A
spawn B
spawn C
serving A
serving B
serving C
joined=no
for _ in $(seq 1 300); do
    a=$(held A) b=$(held B) c=$(held C)
    if [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$c" -gt 0 ] &&
        [ $((a + b + c)) -eq $parts ]; then joined=yes; break; fi
    sleep 0.1
done
[ $joined = yes ] || fail "the three never shared the $parts partitions ($a $b $c)"
say "joined: A $a, B $b, C $c partitions"

# the lease is visible: stats, metrics, the registry
for n in A B C; do
    [ "$(metric $n railgun_flow_degraded)" = 0 ] || fail "$n: flow degraded"
    [ "$(metric $n 'railgun_connected{component="redis"}')" = 1 ] ||
        fail "$n: redis not connected"
    [ -n "$(metric $n railgun_flow_lease_events_per_second)" ] ||
        fail "$n: no railgun_flow_lease_events_per_second"
done
flow show --json >"$tmp/show" 2>"$tmp/show.err" || fail "flow show: $(cat "$tmp/show.err")"
grep -q "\"global_rate\":$rate," "$tmp/show" || fail "flow show: $(cat "$tmp/show")"
[ "$(grep -o '"id":"[ABC]"' "$tmp/show" | wc -l)" -eq 3 ] ||
    fail "flow show: not the three nodes: $(cat "$tmp/show")"
kill -USR1 "$A"
sleep 0.3
grep '"stats":"now"' "$tmp/A.err" | tail -1 | grep -q '"flow_mode":"leased".*"flow_nodes":3' ||
    fail "A's stats: no lease: $(grep '"stats":"now"' "$tmp/A.err" | tail -1)"

# 1. three nodes at the group's rate, once each one consumes (skip the
# first window: the join)
for n in A B C; do
    for _ in $(seq 1 100); do
        [ "$(metric $n railgun_events_accepted_total)" -gt 0 ] && break
        sleep 0.1
    done
done
sleep 2
windows three 4 $((rate * 2)) A B C

lag() { # NODES...: the lag summed over their partitions; -1 until every
        # one of the topic's has a lag (a committed offset and a fetch)
    local n
    for n in "$@"; do
        curl -sf --max-time 1 "http://127.0.0.1:${port[$n]}/metrics"
    done | awk -v n=$parts '/^railgun_partition_lag\{/ { s += $2; k++ }
        END { print k == n ? s : -1 }'
}
# drain NODES...: until they consumed the whole topic and stored it all,
# then every count exact
drain() {
    local drained=no n pending
    for _ in $(seq 1 600); do
        pending=0
        for n in "$@"; do
            pending=$((pending + $(metric "$n" railgun_epochs_pending)))
        done
        if [ "$(lag "$@")" -eq 0 ] && [ $pending -eq 0 ]; then
            drained=yes; break
        fi
        sleep 0.2
    done
    [ $drained = yes ] || fail "$* never drained the topic (lag $(lag "$@"))"
    ! grep -q '(log [1-9]' "$tmp"/*.err ||
        fail "the mock dropped the head of a partition: $(grep -h '(log [1-9]' "$tmp"/*.err | head -1)"
    exact=no
    for _ in $(seq 1 10); do
        if "$rg" demo "${stream[@]}" "${db[@]}" --verify-only >"$tmp/verify" \
            2>&1; then exact=yes; break; fi
        sleep 1
    done
    [ $exact = yes ] || fail "never exact: $(cat "$tmp/verify")"
}
# stop NODES...: SIGTERM at once, each exits 0 with the lease in its final
# stats; still exact
stop() {
    local n rc
    for n in "$@"; do kill -TERM "${!n}"; done
    for n in "$@"; do
        wait "${!n}"
        rc=$?
        [ $rc -eq 0 ] || fail "$n exited $rc after SIGTERM"
        grep '"stats":"final"' "$tmp/$n.err" | grep -q '"flow_mode":"leased"' ||
            fail "$n: no lease in its final stats"
    done
    "$rg" demo "${stream[@]}" "${db[@]}" --verify-only >/dev/null ||
        fail "not exact after $* stopped"
}
# all NODES... METRIC VALUE: until every node's METRIC is VALUE (5 s)
all() {
    local want=$(($# - 2)) m=${@: -2:1} v=${@: -1} n ok
    for _ in $(seq 1 50); do
        ok=0
        for n in "${@:1:want}"; do [ "$(metric "$n" "$m")" = "$v" ] && ok=$((ok + 1)); done
        [ $ok -eq $want ] && return 0
        sleep 0.1
    done
    return 1
}
# outage DOWN UP LABEL: Redis DOWN (kill, pause) for outage_s s, then UP
# (restart, resume): the nodes report degraded and hold the group's rate
# at their fallback (the last fair share: rate/3 each), then lease again
outage() {
    local until=$(( $(date +%s) + outage_s ))
    "$RG_REDIS_CTL" "$1" r0 "$RG_REDIS_DIR" >/dev/null || fail "redis.sh $1"
    all A B C railgun_flow_degraded 1 || fail "$3: not every node degraded"
    all A B C 'railgun_connected{component="redis"}' 0 ||
        fail "$3: not every node says Redis is down"
    sleep 2.5 # the lease's ttl (1 s) and the decay (1 s): at the fallback
    windows "$3" 3 $((rate * 2)) A B C
    while [ "$(date +%s)" -lt $until ]; do sleep 0.2; done
    "$RG_REDIS_CTL" "$2" r0 "$RG_REDIS_DIR" >/dev/null || fail "redis.sh $2"
    # reconnect backoff up to flow.redis.backoff.max.ms (2 s)
    for _ in 1 2 3; do all A B C railgun_flow_degraded 0 && break; done
    all A B C railgun_flow_degraded 0 || fail "$3: not every node leases again"
    sleep 3 # the recovery cap: backoff.max + ttl
    windows "$3, back" 2 $((rate * 2)) A B C
}

# last NAME KEY: KEY's value in NAME's newest --json stats line
last() {
    grep '"stats":"interval"' "$tmp/$1.err" | tail -1 |
        sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

if [ "$mode" = sentinel ]; then
    p0=$RG_REDIS_PORT p1=$RG_REDIS_REPLICA_PORT
    for n in A B C; do
        [ "$(last $n flow_server)" = "127.0.0.1:$p0" ] ||
            fail "$n leases from $(last $n flow_server), not the primary :$p0"
    done
    declare -A errs0 seen
    for n in A B C; do errs0[$n]=$(last $n flow_lease_errors) seen[$n]=no; done
    "$RG_REDIS_CTL" kill r0 "$RG_REDIS_DIR" >/dev/null || fail "redis.sh kill"
    t_kill=$(date +%s%N)
    # degraded, each node, at least once: seen on /metrics, or (a fast
    # failover followed between two samples) its lease errors grew
    for _ in $(seq 1 100); do
        ok=0
        for n in A B C; do
            kill -0 "${!n}" 2>/dev/null || fail "$n exited after the primary died"
            [ "$(metric $n railgun_flow_degraded)" = 1 ] && seen[$n]=yes
            [ "$(last $n flow_lease_errors)" -gt "${errs0[$n]}" ] && seen[$n]=yes
            [ ${seen[$n]} = yes ] && ok=$((ok + 1))
        done
        [ $ok -eq 3 ] && break
        sleep 0.05
    done
    [ $ok -eq 3 ] || fail "not every node degraded after the primary died (A ${seen[A]}, B ${seen[B]}, C ${seen[C]})"
    say "degraded: A ${seen[A]}, B ${seen[B]}, C ${seen[C]} after $(( ($(date +%s%N) - t_kill) / 1000000 )) ms"
    # while degraded each node's bucket holds its last lease or decays to
    # its fallback (the last fair share): at most rate/3 + 10% (all three
    # were hungry: equal leases)
    most=$((rate * 11 / 30)) nsamp=0
    for _ in $(seq 1 15); do
        for n in A B C; do
            [ "$(metric $n railgun_flow_degraded)" = 1 ] || continue
            lim=$(metric $n railgun_flow_limit_events_per_second)
            [ "${lim:-0}" -gt 0 ] && [ "$lim" -le $most ] ||
                fail "$n: degraded with its bucket at ${lim:-none}/s, want 1..$most"
            nsamp=$((nsamp + 1))
        done
        sleep 0.1
    done
    say "degraded samples within $most/s: $nsamp"
    # while Sentinel promotes the replica: never above the rate (the
    # fallback is the last fair share), at it where the limit holds
    windows "failover" 2 $((rate * 2)) A B C
    # every node leases again, from the promoted replica, without a restart
    followed=no
    for _ in $(seq 1 200); do
        ok=0
        for n in A B C; do
            kill -0 "${!n}" 2>/dev/null || fail "$n exited during the failover"
            [ "$(last $n flow_mode)" = leased ] &&
                [ "$(last $n flow_server)" = "127.0.0.1:$p1" ] &&
                [ "$(last $n flow_master_changes)" -ge 1 ] && ok=$((ok + 1))
        done
        [ $ok -eq 3 ] && { followed=yes; break; }
        [ $(( $(date +%s%N) - t_kill )) -lt 20000000000 ] || break
        sleep 0.1
    done
    [ $followed = yes ] || fail "not every node follows the new primary :$p1 within 20 s ($(for n in A B C; do printf '%s: %s %s; ' $n "$(last $n flow_mode)" "$(last $n flow_server)"; done))"
    say "followed :$p1 after $(( ($(date +%s%N) - t_kill) / 1000000 )) ms"
    all A B C railgun_flow_degraded 0 || fail "not every node says it leases again"
    sleep 3 # the recovery cap: backoff.max + ttl
    windows "after the failover" 2 $((rate * 2)) A B C
    flow show --json >"$tmp/show" 2>"$tmp/show.err" || fail "flow show: $(cat "$tmp/show.err")"
    grep -q "\"global_rate\":$rate," "$tmp/show" || fail "flow show: $(cat "$tmp/show")"
    [ "$(grep -o '"id":"[ABC]"' "$tmp/show" | wc -l)" -eq 3 ] ||
        fail "flow show after the failover: not the three nodes: $(cat "$tmp/show")"
    flow set --rate 0 >"$tmp/set" 2>&1 || fail "flow set: $(cat "$tmp/set")"
    drain A B C
    stop A B C
    echo "flow group sentinel: $events likes, 3 nodes at $rate/s; the primary" \
        "SIGKILLed: degraded, within the rate, followed the promoted replica" \
        "without a restart, back at the rate; exact"
    exit 0
fi

if [ "$mode" = outage ]; then
    outage kill restart "redis killed ${outage_s} s"
    outage pause resume "redis stopped ${outage_s} s"
    flow set --rate 0 >"$tmp/set" 2>&1 || fail "flow set: $(cat "$tmp/set")"
    drain A B C
    stop A B C
    echo "flow group outage: 2M likes, 3 nodes at $rate/s; Redis SIGKILLed" \
        "${outage_s} s and restarted, SIGSTOPped ${outage_s} s: degraded, at" \
        "the fallback, back; exact"
    exit 0
fi

# 2. C killed: A and B take its share once its lease expired (1 s)
kill -KILL "$C"
sleep 2
windows survivors 2 $((rate * 2)) A B
flow show --json >"$tmp/show" 2>&1 || fail "flow show: $(cat "$tmp/show")"
[ "$(grep -o '"id":"[ABC]"' "$tmp/show" | wc -l)" -eq 2 ] ||
    fail "flow show: C still listed: $(cat "$tmp/show")"

# 3. a new rate, within 1 s
flow set --rate 10000 >"$tmp/set" 2>&1 || fail "flow set: $(cat "$tmp/set")"
sleep 1
windows "set 10000" 2 20000 A B
flow show --json >"$tmp/show" 2>&1 || fail "flow show: $(cat "$tmp/show")"
grep -q '"global_rate":10000,' "$tmp/show" || fail "flow show: $(cat "$tmp/show")"
flow show >"$tmp/show.txt" 2>&1 || fail "flow show: $(cat "$tmp/show.txt")"
grep -q "global rate 10000/s" "$tmp/show.txt" || fail "flow show: $(cat "$tmp/show.txt")"

# 4. unlimited: A and B crash too, and a fresh D drains the rest once
# the session timeouts moved every partition to it: exactly
flow set --rate 0 >"$tmp/set" 2>&1 || fail "flow set: $(cat "$tmp/set")"
kill -KILL "$A" "$B"
spawn D
serving D
drain D
[ "$(held D)" -eq $parts ] || fail "D does not hold all $parts partitions"
stop D
echo "flow group: 2M likes, 3 nodes at $rate/s, C killed (A and B took its" \
    "share within 2 s), flow set 10000 within 1 s, then unlimited (A, B" \
    "killed, D drained the rest): exact"
