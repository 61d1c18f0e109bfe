#!/usr/bin/env bash
# flow_adaptive_test.sh RAILGUN
# Issue 14's adaptive test: one `railgun run` into MariaDB with
# flow.sink.latency.target.ms (T) set, a `railgun mock-kafka` topic
# holding enough likes, and a MariaDB made slow on purpose in stretches.
#
# How the DB is made slow: a trigger on the counts table that sleeps
# SLOW_ROW_MS per row it inserts or updates (`SET @x = SLEEP(..)`; it
# changes no data). An epoch's transaction then takes time in proportion
# to the rows it writes, as on a saturated disk or a contended server, so
# the rate decides the commit time and a controller can bring it back to
# T. (A lock held for seconds would stall every commit whatever the rate:
# nothing a rate limit can fix.) The node's own limit
# (flow.rate.events.per.s = LOCAL) keeps the fast rate where one epoch at
# it takes about 4 x T while the trigger is there.
#
# Phases: fast (no trigger) FAST_S s, slow SLOW_S s, fast, slow, then the
# trigger gone and the rest drained. /metrics is sampled every 250 ms:
# the events let in, the adaptive limit, the last transaction's time and
# the cuts. Asserted:
#   (a) each slow stretch cuts: the adaptive limit is set (non-zero) and
#       below LOCAL, cuts grew, and the throughput in its second half is
#       at most 70% of LOCAL;
#   (b) in the second half of each slow stretch (after the cuts settled)
#       the median sampled transaction time is within [T/4, 1.25 x T]
#       and at most 1 in 4 samples is above 2 x T. "Near": AIMD holds the
#       commit time in a sawtooth between the raise threshold (0.8 x T)
#       and the cut (above T, two in a row), and the epoch under way at a
#       cut commits at the old rate, so single samples pass T; the tail
#       bound is the 3rd quartile, not p90, because with other work on
#       the VM's two CPUs the database's own per-row time jitters (p90
#       123 ms once, median 52). Without the controller the commit time
#       grows without bound (the database takes under half the input):
#       the whole stretch's max is printed (0.5-1.7 s before the cuts
#       took hold);
#   (c) the rate comes back after a slow stretch (raises, and the fast
#       phase's last second at least 1.5 x the stretch's second half; on
#       a quiet VM it is back at LOCAL), every count is exact at the end
#       (`railgun demo --verify-only`), and SIGTERM exits 0 with the
#       adaptive state in its final --json stats line.
# Prints the figures (rates, commit times, cuts) per phase;
# RG_ADAPT_VERBOSE=1 every sample.
# Run through tests/support/with_mariadb.sh.
set -u
rg=$1
: "${RG_MYSQL_SOCKET:?run through with_mariadb.sh}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/support/free_port.sh"
tmp=$(mktemp -d)
mk= node=
cleanup() {
    [ -n "$node" ] && kill -KILL "$node" 2>/dev/null
    [ -n "$mk" ] && kill -TERM "$mk" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$tmp/node.err" ] && grep -v '"stats":"interval"' "$tmp/node.err" | tail -8
    [ -f "$tmp/samples" ] && tail -20 "$tmp/samples"
    echo "FAIL: $(printf '%s\n' "$*" | head -1)"
    exit 1
}

parts=8 events=${RG_ADAPT_EVENTS:-450000}
target=${RG_ADAPT_TARGET_MS:-60} local_rate=${RG_ADAPT_LOCAL:-20000}
fast_s=${RG_ADAPT_FAST_S:-5} slow_s=${RG_ADAPT_SLOW_S:-12}
slow_row_ms=${RG_ADAPT_SLOW_ROW_MS:-0.05}
dbname=adapt_$$
sql() { mariadb -S "$RG_MYSQL_SOCKET" -uroot -N -B "$dbname" -e "$1"; }

"$rg" mock-kafka --topic likes:$parts >"$tmp/servers" 2>"$tmp/mk.err" &
mk=$!
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka printed nothing"
stream=(--events $events --seed 7 --videos 100000 --zipf 0)
db=(-X sink=mysql -X "mysql.socket=$RG_MYSQL_SOCKET" -X "mysql.database=$dbname")
"$rg" produce "${stream[@]}" -X "kafka.bootstrap.servers=$servers" \
    -X kafka.compression.type=lz4 --json >"$tmp/produce" 2>&1 ||
    fail "produce: $(cat "$tmp/produce")"
grep -q "\"produced\":$events" "$tmp/produce" ||
    fail "produce: $(cat "$tmp/produce")"

port=$(free_port) || fail "no free port"
"$rg" run --init-schema --create-database --json "${db[@]}" \
    -X "kafka.bootstrap.servers=$servers" -X kafka.auto.offset.reset=earliest \
    -X group.id=flow-adaptive-test -X flush.interval.ms=100 -X workers=1 \
    -X "flow.rate.events.per.s=$local_rate" \
    -X "flow.sink.latency.target.ms=$target" -X stats.interval.ms=1000 \
    -X "metrics.listen=127.0.0.1:$port" 2>"$tmp/node.err" &
node=$!
base=http://127.0.0.1:$port
for _ in $(seq 1 100); do
    curl -sf "$base/healthz" >/dev/null && break
    kill -0 $node 2>/dev/null || fail "railgun run exited"
    sleep 0.1
done
curl -sf "$base/healthz" >/dev/null || fail "railgun run serves no metrics"

# the families exist only with a target: each one is there
curl -sf "$base/metrics" >"$tmp/m0" || fail "no /metrics"
for f in railgun_flow_adaptive_limit_events_per_second \
    railgun_flow_sink_latency_target_seconds railgun_flow_adaptive_cuts_total \
    railgun_flow_adaptive_raises_total; do
    grep -q "^$f " "$tmp/m0" || fail "no $f on /metrics"
done

# the sampler: "TIME_MS ACCEPTED LIMIT LATENCY_MS CUTS RAISES PHASE" every
# 250 ms into $tmp/samples; the phase is what the file $tmp/phase says
echo warm >"$tmp/phase"
sampler() {
    local v
    while :; do
        v=$(curl -sf --max-time 1 "$base/metrics" | awk '
            $1 == "railgun_events_accepted_total" { a = $2 }
            $1 == "railgun_flow_adaptive_limit_events_per_second" { l = $2 }
            $1 == "railgun_flow_sink_latency_seconds" { s = $2 }
            $1 == "railgun_flow_adaptive_cuts_total" { c = $2 }
            $1 == "railgun_flow_adaptive_raises_total" { r = $2 }
            END { if (a != "") printf "%d %d %d %d %d\n", a, l, s * 1000 + 0.5, c, r }')
        [ -n "$v" ] && echo "$(($(date +%s%N) / 1000000)) $v $(cat "$tmp/phase")" >>"$tmp/samples"
        sleep 0.25
    done
}
sampler &
sampler_pid=$!
trap 'kill $sampler_pid 2>/dev/null; cleanup' EXIT

slow_on() {
    sql "CREATE TRIGGER rg_slow BEFORE INSERT ON counts FOR EACH ROW SET @rg_x = SLEEP($slow_row_ms / 1000)" ||
        fail "could not create the slow triggers"
}
slow_off() {
    sql "DROP TRIGGER rg_slow" || fail "could not drop the triggers"
}
phase() { echo "$1" >"$tmp/phase"; sleep "$2"; }

# until events flow
for _ in $(seq 1 100); do
    [ "$(curl -sf "$base/metrics" | awk '$1 == "railgun_events_accepted_total" { print $2 }')" -gt 0 ] 2>/dev/null && break
    sleep 0.1
done
phase fast0 "$fast_s"
slow_on
phase slow1 "$slow_s"
slow_off
phase fast1 "$fast_s"
slow_on
phase slow2 "$slow_s"
slow_off
phase drain 0
kill $sampler_pid 2>/dev/null
wait $sampler_pid 2>/dev/null

# the figures per phase: its throughput (whole, and second half for a slow
# stretch, the last second for a fast one), the sampled transaction times
# (median, p75, p90, max) over the same part, the adaptive limit's range, cuts
report() { # PHASE PART(all|half|last): one line "key=value ..."
    awk -v ph="$1" -v part="$2" -v half_ms=$((slow_s * 500)) '
        BEGIN { n = 0 }
        $7 != ph { next }
        { t[n] = $1; a[n] = $2; l[n] = $3; s[n] = $4; c[n] = $5; n++ }
        END {
            if (n < 2) { print "n=0"; exit }
            from = 0
            if (part == "half") while (from < n - 1 && t[from] - t[0] < half_ms) from++
            if (part == "last") while (from < n - 1 && t[n - 1] - t[from] > 1000) from++
            k = 0; lo = -1; hi = 0
            for (i = from; i < n; i++) {
                lat[k++] = s[i]
                if (lo < 0 || l[i] < lo) lo = l[i]
                if (l[i] > hi) hi = l[i]
            }
            # insertion sort: a few dozen samples
            for (i = 1; i < k; i++) { v = lat[i]; j = i - 1
                while (j >= 0 && lat[j] > v) { lat[j + 1] = lat[j]; j-- }
                lat[j + 1] = v }
            dt = t[n - 1] - t[from]
            rate = dt > 0 ? int((a[n - 1] - a[from]) * 1000 / dt) : 0
            printf "rate=%d median=%d p75=%d p90=%d max=%d limit_lo=%d limit_hi=%d cuts=%d samples=%d\n",
                rate, lat[int(k / 2)], lat[int(k * 3 / 4)], lat[int(k * 9 / 10)], lat[k - 1], lo, hi,
                c[n - 1] - c[from], k
        }' "$tmp/samples"
}
get() { sed -n "s/.*\b$1=\([0-9-]*\).*/\1/p" <<<"$2"; }
# RG_ADAPT_VERBOSE=1: every sample, "ms since the start, events since
# the last sample, limit, last commit ms, cuts, raises, phase"
[ "${RG_ADAPT_VERBOSE:-0}" = 1 ] &&
    awk 'NR == 1 { t0 = $1 } { print $1 - t0, $2 - a, $3, $4, $5, $6, $7; a = $2 }' "$tmp/samples"
for ph in fast0 slow1 fast1 slow2; do
    all=$(report $ph all)
    echo "$ph (whole): $all"
done
for ph in slow1 slow2; do
    r=$(report $ph half)
    echo "$ph (second half): $r"
    rate=$(get rate "$r") median=$(get median "$r") p75=$(get p75 "$r")
    lo=$(get limit_lo "$r") hi=$(get limit_hi "$r")
    cuts=$(get cuts "$(report $ph all)")
    # (a) the adaptive limit cut the rate
    [ "$cuts" -gt 0 ] || fail "$ph: no cut"
    [ "$lo" -gt 0 ] && [ "$hi" -lt "$local_rate" ] ||
        fail "$ph: the adaptive limit was not set below $local_rate in the second half ($lo..$hi)"
    [ $((rate * 10)) -le $((local_rate * 7)) ] ||
        fail "$ph: $rate events/s in the second half, not cut (local $local_rate)"
    # (b) commit times near the target
    [ $((median * 4)) -ge "$target" ] && [ $((median * 4)) -le $((target * 5)) ] ||
        fail "$ph: median transaction $median ms, want $target ms within [T/4, 1.25 T]"
    [ "$p75" -le $((target * 2)) ] ||
        fail "$ph: p75 transaction $p75 ms, above 2 x $target ms"
done
# (c) the rate came back between the stretches: raised while the commits
# were fast, its last second at least 1.5 x the slow stretch's second half
# (at the local rate, 4 x, when the VM is quiet; with other work on its
# two CPUs the fast phase's own commits can pass the target and cut too)
r=$(report fast1 last)
echo "fast1 (last second): $r"
slow_half=$(get rate "$(report slow1 half)")
raises=$(awk '$7 == "fast1" { if (f == "") f = $6; l = $6 } END { print l - f }' "$tmp/samples")
[ "$raises" -gt 0 ] || fail "fast1: the adaptive limit never raised the rate"
[ $(( $(get rate "$r") * 2)) -ge $((slow_half * 3)) ] ||
    fail "fast1: the rate did not come back ($(get rate "$r")/s in its last second, $slow_half/s in slow1's second half, local $local_rate)"

# the rest drains at the local rate; then every count is exact
drained=no
for _ in $(seq 1 600); do
    m=$(curl -sf --max-time 1 "$base/metrics")
    acc=$(awk '$1 == "railgun_events_accepted_total" { print $2 }' <<<"$m")
    pend=$(awk '$1 == "railgun_epochs_pending" { print $2 }' <<<"$m")
    lag=$(awk '/^railgun_partition_lag\{/ { s += $2; k++ } END { print k == '$parts' ? s : -1 }' <<<"$m")
    if [ "${acc:-0}" -ge $events ] && [ "${pend:-1}" = 0 ] && [ "$lag" = 0 ]; then
        drained=yes; break
    fi
    sleep 0.2
done
[ $drained = yes ] || fail "never drained (accepted $acc of $events, lag $lag, pending $pend)"
exact=no
for _ in $(seq 1 10); do
    if "$rg" demo "${stream[@]}" "${db[@]}" --verify-only >"$tmp/verify" 2>&1; then
        exact=yes; break
    fi
    sleep 1
done
[ $exact = yes ] || fail "never exact: $(cat "$tmp/verify")"
kill -TERM $node
wait $node
rc=$?
node=
[ $rc -eq 0 ] || fail "railgun run exited $rc after SIGTERM"
final=$(grep '"stats":"final"' "$tmp/node.err")
grep -q "\"flow_target_ms\":$target,\"flow_adaptive_limit\":[0-9]*,\"flow_sink_latency_ms\":[0-9]*,\"flow_adaptive_cuts\":[1-9]" <<<"$final" ||
    fail "the final stats line has no adaptive state: $final"
"$rg" demo "${stream[@]}" "${db[@]}" --verify-only >/dev/null ||
    fail "not exact after SIGTERM"
echo "flow adaptive: $events likes, local $local_rate/s, target $target ms," \
    "two stretches of $slow_row_ms ms per counts row: cut, commits near the" \
    "target, back to the rate between; exact"
