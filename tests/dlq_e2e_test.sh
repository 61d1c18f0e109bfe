#!/usr/bin/env bash
# dlq_e2e_test.sh RAILGUN
# The dead-letter queue end to end, real processes: a `railgun mock-kafka`
# cluster, `railgun produce` for the stream and kcat for bad messages.
#  1. An undecodable message and an oversized one, produced with kcat, land
#     in the failures table as dead letters with the coordinates kcat
#     reads back for them (partition, offset), their raw key, the value
#     (cut, and flagged, past retry.payload.max.bytes) and the codec's
#     reason; every other like is counted.
#  2. `railgun run` with 20 likes poisoned (likes.fault.poison.*): the 20
#     are dead letters and the counts match the stream without them; after
#     "fixing" the job (a run without the poison) `railgun dlq replay`
#     produces them again and the next run brings the counts to the whole
#     stream's, exactly; a second replay replays nothing.
set -u
rg=$1
tmp=$(mktemp -d)
mk= run=
cleanup() {
    [ -n "$run" ] && kill -KILL "$run" 2>/dev/null
    [ -n "$mk" ] && kill -TERM "$mk" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.err; do [ -f "$f" ] && { echo "--- $f"; tail -5 "$f"; }; done
    exit 1
}
command -v kcat >/dev/null || fail "kcat is not installed (scripts/deps.sh)"

"$rg" mock-kafka --topic likes:4 >"$tmp/servers" 2>"$tmp/mk.err" &
mk=$!
for _ in $(seq 1 100); do [ -s "$tmp/servers" ] && break; sleep 0.1; done
servers=$(cat "$tmp/servers")
[ -n "$servers" ] || fail "mock-kafka printed nothing"

n=20000
stream=(--events $n --seed 11)
"$rg" produce "${stream[@]}" -X "kafka.bootstrap.servers=$servers" \
    >"$tmp/produce.out" 2>"$tmp/produce.err" || fail "produce"
# the bad ones, with keys of their own
printf '7\t{"video_id":7,"user_id":' | kcat -P -b "$servers" -t likes -K '\t' ||
    fail "kcat produce"
head -c 70000 /dev/zero | tr '\0' 'x' | sed 's/^/big-1\t/' |
    kcat -P -b "$servers" -t likes -K '\t' || fail "kcat produce (big)"
# where they landed, as kcat reads them back
kcat -C -b "$servers" -t likes -e -q -f '%p:%o %k %S\n' >"$tmp/all" 2>/dev/null ||
    fail "kcat consume"
bad_at=$(awk '$2 == "7" && $3 == 24 { print $1 }' "$tmp/all")
big_at=$(awk '$2 == "big-1" { print $1, $3 }' "$tmp/all")
[ -n "$bad_at" ] && [ -n "$big_at" ] || fail "kcat did not read the bad messages back"

db="$tmp/likes.db"
common=(-X "kafka.bootstrap.servers=$servers" -X "sqlite.path=$db"
        -X retry.payload.max.bytes=4096)
poison=(-X likes.fault.poison.step=1000 -X likes.fault.poison.count=20)

# until railgun blocks SIGUSR1 (bit 10 of SigBlk), the signal kills it
ready() {
    for _ in $(seq 1 100); do
        local blk
        blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
        [ -n "$blk" ] && (( 0x$blk & 0x200 )) && return 0
        sleep 0.05
    done
    fail "railgun run did not start"
}

# consume until everything (n + 2 messages) is stored, then stop
run_all() { # NAME COUNT [ARGS]: runs until COUNT consumed, none waiting
    local name=$1 count=$2
    shift 2
    "$rg" run "${common[@]}" --json "$@" 2>"$tmp/$name.err" &
    run=$!
    ready "$run"
    for _ in $(seq 1 600); do
        kill -USR1 "$run" 2>/dev/null
        sleep 0.2
        local c w
        c=$(grep '"stats":"now"' "$tmp/$name.err" | tail -1 |
            sed -n 's/.*"consumed":\([0-9]*\),"processed":\([0-9]*\),"in_flight":0.*/\1/p')
        w=$(grep '"stats":"now"' "$tmp/$name.err" | tail -1 |
            sed -n 's/.*"waiting":\([0-9]*\).*/\1/p')
        [ -n "$c" ] && [ "$c" -ge "$count" ] && [ "${w:-1}" -eq 0 ] && break
    done
    kill -TERM "$run"
    wait "$run" || fail "$name exited $?"
    run=
}

# 1 + 2: the bad messages and the poisoned likes
"$rg" run "${common[@]}" --init-schema "${poison[@]}" --json \
    2>"$tmp/r1.err" &
run=$!
ready "$run"
want=$((n + 2))
for _ in $(seq 1 600); do
    kill -USR1 "$run" 2>/dev/null
    sleep 0.2
    line=$(grep '"stats":"now"' "$tmp/r1.err" | tail -1)
    c=$(sed -n 's/.*"consumed":\([0-9]*\).*/\1/p' <<<"$line")
    f=$(sed -n 's/.*"in_flight":\([0-9]*\).*/\1/p' <<<"$line")
    [ -n "$c" ] && [ "$c" -ge $want ] && [ "$f" -eq 0 ] && break
done
kill -TERM "$run"
wait "$run" || fail "run 1 exited $?"
run=

"$rg" dlq list --db "$db" --json >"$tmp/dlq.json" 2>"$tmp/dlq.err" ||
    fail "dlq list: $(cat "$tmp/dlq.err")"
python3 - "$tmp/dlq.json" "$bad_at" "$big_at" <<'PY' || fail "dead letters"
import json, sys
rows = json.load(open(sys.argv[1]))
rows = rows if isinstance(rows, list) else rows.get("rows", rows)
bad_at = sys.argv[2]
big_at, big_len = sys.argv[3].split()
at = {"%d:%d" % (r["partition"], r["offset"]): r for r in rows}
def need(c, m):
    if not c:
        print("FAIL:", m)
        sys.exit(1)
need(bad_at in at, "the undecodable message %s is not a dead letter: %s"
     % (bad_at, sorted(at)))
need(big_at in at, "the oversized message %s is not a dead letter" % big_at)
b, g = at[bad_at], at[big_at]
need(b["message"] and "undecodable" in b["reasons"], "bad: %r" % b)
need(g["message"] and g["truncated"] and g["payload_len"] == 4096,
     "big: %r" % g)
poisoned = [r for k, r in at.items() if k not in (bad_at, big_at)]
need(len(poisoned) == 20 and all("poison" in r["reasons"] for r in poisoned),
     "%d poisoned dead letters" % len(poisoned))
print("dlq e2e: undecodable %s (%s), oversized %s (%s bytes, kept 4096, "
      "cut), 20 poisoned" % (bad_at, b["reasons"], big_at, big_len))
PY
# the counts are the stream's without the poisoned likes
"$rg" demo "${stream[@]}" --poison 20 --db "$db" --verify-only \
    >"$tmp/v1" 2>&1 || fail "not exact without the poisoned: $(cat "$tmp/v1")"
"$rg" demo "${stream[@]}" --db "$db" --verify-only >"$tmp/v1b" 2>&1 &&
    fail "exact with the poisoned likes missing?"

# the job is fixed (no poison); replay the dead letters
"$rg" dlq replay --db "$db" --reason poison --topic likes \
    --bootstrap "$servers" >"$tmp/replay" 2>"$tmp/replay.err" ||
    fail "replay: $(cat "$tmp/replay" "$tmp/replay.err")"
grep -q '^replayed 20 of ' "$tmp/replay" || fail "replay: $(cat "$tmp/replay")"
run_all r2 20  # consumed counts this process's messages: the 20 replayed
"$rg" demo "${stream[@]}" --db "$db" --verify-only >"$tmp/v2" 2>&1 ||
    fail "not exact after the replay: $(cat "$tmp/v2")"
"$rg" dlq replay --db "$db" --reason poison --topic likes \
    --bootstrap "$servers" >"$tmp/replay2" 2>&1 || fail "second replay"
grep -q '^replayed 0 of .*skipped 20,' "$tmp/replay2" ||
    fail "second replay: $(cat "$tmp/replay2")"
echo "dlq e2e: replayed 20 poisoned likes after the fix: exact"
