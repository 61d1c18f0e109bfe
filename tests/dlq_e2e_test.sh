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
#  3. dlq.topic: run 1 also produces its 22 dead letters to the topic
#     likes-dlq, each once, keyed likes/PARTITION/OFFSET with the row as
#     JSON, and marks each forwarded. A run killed (-9) after the epoch
#     holding two new dead letters committed, before any look, leaves them
#     unmarked; the next run forwards them: at least once across the
#     crash. A dlq.topic that is
#     the job's own topic, or without a failures table, exits 2.
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

"$rg" mock-kafka --topic likes:4 --topic likes-dlq:2 >"$tmp/servers" 2>"$tmp/mk.err" &
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
# a short session for every run (one group: the mock cluster mishandles
# members with different session timeouts): r4 below joins while the
# killed r3 is still a member, and the mock ends that rebalance only at
# r3's session timeout
common=(-X "kafka.bootstrap.servers=$servers" -X "sqlite.path=$db"
        -X retry.payload.max.bytes=4096
        -X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=500)
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
    -X dlq.topic=likes-dlq 2>"$tmp/r1.err" &
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
# 3: every dead letter on likes-dlq once, marked forwarded
kcat -C -b "$servers" -t likes-dlq -e -q -f '%k\t%s\n' >"$tmp/dlq.topic" 2>/dev/null ||
    fail "kcat consume likes-dlq"
python3 - "$tmp/dlq.json" "$tmp/dlq.topic" "$bad_at" <<'PY' || fail "dlq.topic"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
msgs = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]) if l.strip()]
def need(c, m):
    if not c:
        print("FAIL:", m)
        sys.exit(1)
want = {"likes/%d/%d" % (r["partition"], r["offset"]) for r in rows}
keys = [k for k, _ in msgs]
need(len(rows) == 22, "%d dead letters" % len(rows))
need(sorted(keys) == sorted(want), "likes-dlq keys %s, dead letters %s"
     % (sorted(keys), sorted(want)))
for k, v in msgs:
    o = json.loads(v)
    need(o["topic"] == "likes" and "likes/%d/%d" % (o["partition"],
         o["offset"]) == k, "value %s under key %s" % (v[:200], k))
    need(o["reasons"], "no reasons: %s" % v[:200])
bad = [json.loads(v) for k, v in msgs if k == "likes/" + sys.argv[3].replace(":", "/")]
need(bad and bad[0]["message"] and bad[0]["payload_text"] ==
     '{"video_id":7,"user_id":', "the undecodable one: %s" % bad)
need(all("like" in json.loads(v) for k, v in msgs if "poison" in v),
     "a poisoned like without its like")
need(all(r["forwarded_ms"] for r in rows), "rows not marked forwarded: %s"
     % [r for r in rows if not r["forwarded_ms"]])
print("dlq.topic: 22 dead letters forwarded once each, marked")
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

# 3, across a crash: two new undecodable messages
for i in 1 2; do
    printf 'crash-%s\t{"video_id":' "$i" | kcat -P -b "$servers" -t likes -K '\t' ||
        fail "kcat produce"
done
# r3 forwards nothing (no dlq.topic: a look at its assignment could
# otherwise come after the letters' commit); its letters are committed
# and unmarked when it is killed, as a forwarder's would be between the
# commit and its look
"$rg" run "${common[@]}" --json 2>"$tmp/r3.err" &
run=$!
ready "$run"
committed=
for _ in $(seq 1 300); do
    sleep 0.2
    "$rg" dlq list --db "$db" --json 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["rows"]; sys.exit(0 if sum(1 for x in r if not x["forwarded_ms"]) == 2 else 1)' &&
        { committed=1; break; }
done
[ -n "$committed" ] || fail "the two new dead letters never committed"
kill -KILL "$run"
wait "$run" 2>/dev/null
run=
n_topic=$(kcat -C -b "$servers" -t likes-dlq -e -q -f '%k\n' 2>/dev/null | wc -l)
[ "$n_topic" -eq 22 ] || fail "likes-dlq has $n_topic messages before any look (want 22)"
"$rg" run "${common[@]}" --json -X dlq.topic=likes-dlq \
    -X dlq.topic.poll.ms=200 2>"$tmp/r4.err" &
run=$!
ready "$run"
fwd=
for _ in $(seq 1 300); do
    kill -USR1 "$run" 2>/dev/null
    sleep 0.2
    f=$(grep '"stats":"now"' "$tmp/r4.err" | tail -1 |
        sed -n 's/.*"dlq_forwarded":\([0-9]*\).*/\1/p')
    [ -n "$f" ] && [ "$f" -ge 2 ] && { fwd=$f; break; }
done
kill -TERM "$run"
wait "$run" || fail "r4 exited $?"
run=
[ "$fwd" = 2 ] || fail "the next run forwarded ${fwd:-nothing} (want 2)"
kcat -C -b "$servers" -t likes-dlq -e -q -f '%k\n' 2>/dev/null | sort >"$tmp/keys"
[ "$(wc -l <"$tmp/keys")" -eq 24 ] && [ "$(sort -u "$tmp/keys" | wc -l)" -eq 24 ] ||
    fail "likes-dlq after the restart: $(wc -l <"$tmp/keys") messages: $(cat "$tmp/keys")"
"$rg" dlq list --db "$db" --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["rows"]; sys.exit(0 if len(r) == 24 and all(x["forwarded_ms"] for x in r) else 1)' ||
    fail "not every dead letter marked forwarded"
echo "dlq.topic: the two letters of a run killed before any look were forwarded by the next run"

# bad dlq.topic settings exit 2, naming the property
"$rg" run "${common[@]}" -X dlq.topic=likes >"$tmp/bad1" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q 'dlq.topic: "likes" is the topic the job consumes' "$tmp/bad1" ||
    fail "dlq.topic=likes: exit $rc: $(cat "$tmp/bad1")"
"$rg" run "${common[@]}" -X dlq.topic=likes-dlq -X sink.table.failures= >"$tmp/bad2" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q 'dlq.topic: .*keeps no dead letters' "$tmp/bad2" ||
    fail "dlq.topic without a failures table: exit $rc: $(cat "$tmp/bad2")"
echo "dlq e2e: bad dlq.topic settings refused"
