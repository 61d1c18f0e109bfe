#!/usr/bin/env bash
# dlq_test.sh RAILGUN DLQ_FILL sqlite|mysql
# `railgun dlq list` and `show` over the known rows tests/support/dlq_fill.c
# writes through the sink API (mysql: under tests/support/with_mariadb.sh,
# RG_MYSQL_SOCKET set): every dead letter listed once, in (partition,
# offset) order; the filters (--reason, --partition, --since, --state)
# select exactly their rows; show prints every field, a text payload as
# text and a binary one in hex; --json is one object; bad input exits 2,
# a missing row or database 1; the command writes nothing.
set -u
rg=$1 fill=$2 kind=$3
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok()  { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

if [ "$kind" = mysql ]; then
  : "${RG_MYSQL_SOCKET:?run through tests/support/with_mariadb.sh}"
  db=(-X sink=mysql -X "mysql.socket=$RG_MYSQL_SOCKET" -X mysql.database=dlq_test)
  "$fill" sink=mysql "mysql.socket=$RG_MYSQL_SOCKET" mysql.database=dlq_test ||
    { echo "FAIL: dlq_fill"; exit 1; }
else
  db=(--db "$tmp/dlq.db")
  "$fill" sink=sqlite "sqlite.path=$tmp/dlq.db" || { echo "FAIL: dlq_fill"; exit 1; }
fi

# the partition:offset column of list's output, one per line
coords() { awk 'NR > 1 && /^[0-9]+:[0-9]+ / { print $1 }' <<<"$1" | tr '\n' ' '; }

# list: the dead letters only, in order, with the summary line
out=$("$rg" dlq list "${db[@]}" 2>"$tmp/err"); rc=$?
if [ $rc -eq 0 ] && [ "$(coords "$out")" = "0:5 1:3 2:7 3:11 " ] &&
   grep -q '^PARTITION:OFFSET' <<<"$out" &&
   [ "$(tail -n1 <<<"$out")" = "4 of 4 dead letters" ]; then ok
else bad "list (rc=$rc): $out $(cat "$tmp/err")"; fi
# each line: state, attempts, both times, size, reasons, the preview
line=$(grep '^1:3 ' <<<"$out")
if grep -Eq '^1:3 +dead +5 +2025-12-01 14:40:01\.000 +2025-12-01 14:41:40\.000 +8 +state: lookup timed out x5; gave up \| "\.\.\.\.\.ab\."$' <<<"$line"
then ok; else bad "list line 1:3: $line"; fi
line=$(grep '^2:7 ' <<<"$out")
if grep -q 'oversized | (cut) "xxxx' <<<"$line" && grep -q ' 100 ' <<<"$line"
then ok; else bad "list line 2:7: $line"; fi

# the filters
out=$("$rg" dlq list "${db[@]}" --partition 1)
if [ "$(coords "$out")" = "1:3 " ] &&
   [ "$(tail -n1 <<<"$out")" = "1 of 1 dead letter of these partitions" ]
then ok; else bad "list --partition 1: $out"; fi
out=$("$rg" dlq list "${db[@]}" --partition 2,0 --partition 0)
if [ "$(coords "$out")" = "0:5 2:7 " ]; then ok
else bad "list --partition 2,0 --partition 0: $out"; fi
out=$("$rg" dlq list "${db[@]}" --reason "bad_json: exp")
if [ "$(coords "$out")" = "0:5 " ] &&
   [ "$(tail -n1 <<<"$out")" = "1 of 4 dead letters" ]; then ok
else bad "list --reason: $out"; fi
out=$("$rg" dlq list "${db[@]}" --since 1764600100000)
if [ "$(coords "$out")" = "1:3 2:7 3:11 " ]; then ok
else bad "list --since: $out"; fi
out=$("$rg" dlq list "${db[@]}" --reason "timed out" --since 1764600100001)
if [ "$(coords "$out")" = "" ] &&
   [ "$(tail -n1 <<<"$out")" = "0 of 4 dead letters" ]; then ok
else bad "list: filters combine: $out"; fi
out=$("$rg" dlq list "${db[@]}" --state delayed)
if [ "$(coords "$out")" = "0:9 " ] && grep -q '^0:9 *delayed' <<<"$out"
then ok; else bad "list --state delayed: $out"; fi
out=$("$rg" dlq list "${db[@]}" --state all)
if [ "$(coords "$out")" = "0:5 0:9 1:3 2:7 3:11 " ]; then ok
else bad "list --state all: $out"; fi

# --json: one object; the rows' fields
out=$("$rg" dlq list "${db[@]}" --json --reason oversized)
if python3 -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["count"] == 1, o
r = o["rows"][0]
assert (r["partition"], r["offset"], r["state"]) == (2, 7, "dead"), r
assert r["message"] and r["truncated"] and r["payload_len"] == 100, r
assert r["reasons"] == "oversized" and r["last_ms"] == 1764600200000, r
' "$out"; then ok; else bad "list --json: $out"; fi

# show: every field; a text payload as text
out=$("$rg" dlq show 0:5 "${db[@]}"); rc=$?
if [ $rc -eq 0 ] && grep -q '^dead letter 0:5$' <<<"$out" &&
   grep -q 'kind *message$' <<<"$out" &&
   grep -q 'attempts *0$' <<<"$out" &&
   grep -q "reasons *bad_json: expected '{'$" <<<"$out" &&
   grep -q 'message key *42 (2 bytes)' <<<"$out" &&
   grep -q 'payload *15 bytes (message value), text:' <<<"$out" &&
   [ "$(tail -n1 <<<"$out")" = "not json at all" ]; then ok
else bad "show 0:5 (rc=$rc): $out"; fi
# a binary payload in hex, the full uint64 routing key
out=$("$rg" dlq show 1:3 "${db[@]}")
if grep -q 'route key *18446744073709551615$' <<<"$out" &&
   grep -q 'payload *8 bytes (event payload), hex:' <<<"$out" &&
   grep -q '00000000  00 01 02 ff 00 61 62 00 .*|\.\.\.\.\.ab\.|' <<<"$out" &&
   grep -q 'message key *none' <<<"$out"; then ok
else bad "show 1:3: $out"; fi
# a delayed event shows when it is due
out=$("$rg" dlq show 0:9 "${db[@]}")
if grep -q '^delayed event 0:9$' <<<"$out" &&
   grep -q 'due *2025-12-01 14:48:20\.000 UTC (1764600500000)' <<<"$out"
then ok; else bad "show 0:9: $out"; fi
out=$("$rg" dlq show 1:3 "${db[@]}" --json)
if python3 -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["route_key"] == 18446744073709551615, o
assert o["payload_hex"] == "000102ff00616200" and o["msg_key"] is None, o
assert o["attempts"] == 5 and o["state"] == "dead" and o["event_len"] == 8, o
' "$out"; then ok; else bad "show --json: $out"; fi
out=$("$rg" dlq show 0:5 "${db[@]}" --json)
if python3 -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["payload_text"] == "not json at all" and o["msg_key_text"] == "42", o
' "$out"; then ok; else bad "show --json text: $out"; fi

# a row that is not there: exit 1, one line
"$rg" dlq show 1:4 "${db[@]}" >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
   grep -q 'no failed event at partition 1 offset 4' "$tmp/err"; then ok
else bad "show 1:4 (rc=$rc): $(cat "$tmp/err")"; fi

# bad input: exit 2 with one line each
for args in "" "bogus" "show" "show 1" "show x:3" "show 1:3 2:4" \
            "show 1:3 --reason x" "list --partition a" "list --partition 1,,x" \
            "list --since -5" "list --state gone" "list --nope"; do
  # shellcheck disable=SC2086
  "$rg" dlq $args "${db[@]}" >/dev/null 2>"$tmp/err"; rc=$?
  if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
     grep -q '^railgun dlq: ' "$tmp/err"; then ok
  else bad "dlq $args: rc=$rc $(cat "$tmp/err")"; fi
done
"$rg" dlq list "${db[@]}" -X sink.table.failures= >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -eq 2 ] && grep -q 'keeps no failures' "$tmp/err"; then ok
else bad "list with no failures table (rc=$rc): $(cat "$tmp/err")"; fi

# read-only: a table that is not there is not made, and a database that
# is not there is not created
"$rg" dlq list "${db[@]}" -X sink.table.failures=elsewhere >/dev/null \
  2>"$tmp/err"; rc=$?
if [ $rc -eq 1 ] && grep -q 'elsewhere' "$tmp/err" &&
   grep -q 'missing' "$tmp/err"; then ok
else bad "list of a missing table (rc=$rc): $(cat "$tmp/err")"; fi
"$rg" dlq list "${db[@]}" -X sink.table.failures=elsewhere >/dev/null \
  2>"$tmp/err"
if grep -q 'missing' "$tmp/err"; then ok
else bad "list made the missing table: $(cat "$tmp/err")"; fi
if [ "$kind" = sqlite ]; then
  "$rg" dlq list --db "$tmp/none.db" >/dev/null 2>"$tmp/err"; rc=$?
  if [ $rc -eq 1 ] && grep -q 'no such file' "$tmp/err" &&
     [ ! -e "$tmp/none.db" ]; then ok
  else bad "list of a missing file (rc=$rc): $(cat "$tmp/err")"; fi
else
  "$rg" dlq list -X sink=mysql -X "mysql.socket=$RG_MYSQL_SOCKET" \
    -X mysql.database=dlq_none >/dev/null 2>"$tmp/err"; rc=$?
  if [ $rc -ne 0 ] && grep -q 'dlq_none' "$tmp/err"; then ok
  else bad "list of a missing database (rc=$rc): $(cat "$tmp/err")"; fi
fi

# ---- replay: the raw messages back to the topic, then marked ----------
# (mock-kafka: librdkafka's mock cluster in its own process; kcat reads)
"$rg" mock-kafka --brokers 1 --topic likes:4 >"$tmp/mk" 2>"$tmp/mkerr" &
mk=$!
trap 'kill $mk 2>/dev/null; wait $mk 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 100); do [ -s "$tmp/mk" ] && break; sleep 0.1; done
bs=$(cat "$tmp/mk")
# every message of the topic as "KEYHEX VALUEHEX" lines, sorted
topic_hex() {
  timeout 20 kcat -b "$bs" -C -t likes -o beginning -e -q -f '%k\t%s\n' |
    python3 -c '
import sys
for line in sorted(sys.stdin.buffer.read().split(b"\n")[:-1]):
    k, v = line.split(b"\t", 1)
    print(k.hex(), v.hex())'
}

# --dry-run: what would go, why the others do not; nothing produced
out=$("$rg" dlq replay "${db[@]}" --topic likes --dry-run); rc=$?
if [ $rc -eq 0 ] && grep -q '^would  *0:5: key 2 bytes, value 15 bytes$' <<<"$out" &&
   grep -q '^would  *3:11: key 3 bytes, value 4 bytes$' <<<"$out" &&
   grep -q "^skipped  *1:3: an unpacked event's payload" <<<"$out" &&
   grep -q '^skipped  *2:7: the value was cut' <<<"$out" &&
   [ "$(tail -n1 <<<"$out")" = "would replay 2 of 4 dead letters to likes, skipped 2, failed 0" ] &&
   [ -z "$(topic_hex)" ]; then ok
else bad "replay --dry-run (rc=$rc): $out"; fi

# a broker that does not answer: exit 1, nothing marked
"$rg" dlq replay "${db[@]}" --topic likes --bootstrap 127.0.0.1:1 \
  -X kafka.message.timeout.ms=1000 >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ $rc -eq 1 ] && grep -q '^failed  *0:5' "$tmp/out" &&
   grep -q 'not delivered' "$tmp/err" &&
   ! "$rg" dlq list "${db[@]}" | grep -q replayed; then ok
else bad "replay to no broker (rc=$rc): $(cat "$tmp/out" "$tmp/err")"; fi

# the replay: exactly the two raw messages, byte for byte, then marked
out=$("$rg" dlq replay "${db[@]}" --topic likes --bootstrap "$bs" 2>"$tmp/err"); rc=$?
want=$'006b31 7b007dff\n3432 6e6f74206a736f6e20617420616c6c'
if [ $rc -eq 0 ] &&
   grep -Eq '^replayed  *0:5 -> partition [0-3] offset 0$' <<<"$out" &&
   grep -Eq '^replayed  *3:11 -> partition [0-3] offset [0-9]+$' <<<"$out" &&
   [ "$(tail -n1 <<<"$out")" = "replayed 2 of 4 dead letters to likes, skipped 2, failed 0" ] &&
   [ "$(topic_hex)" = "$want" ]; then ok
else bad "replay (rc=$rc): $out $(cat "$tmp/err") topic: $(topic_hex)"; fi
out=$("$rg" dlq list "${db[@]}")
if [ "$(grep -c '(replayed 20[0-9-]* [0-9:.]*)$' <<<"$out")" -eq 2 ] &&
   grep -q '^0:5 .*(replayed ' <<<"$out" && grep -q '^3:11 .*(replayed ' <<<"$out"
then ok; else bad "list after replay: $out"; fi
out=$("$rg" dlq show 3:11 "${db[@]}" --json)
if python3 -c '
import json, sys, time
o = json.loads(sys.argv[1])
assert abs(o["replayed_ms"] - time.time() * 1000) < 600000, o
' "$out"; then ok; else bad "show --json after replay: $out"; fi
if "$rg" dlq show 1:3 "${db[@]}" | grep -q 'replayed *never'; then ok
else bad "show 1:3: not replayed"; fi

# again: skipped as replayed before; --again produces them once more
out=$("$rg" dlq replay "${db[@]}" --topic likes --bootstrap "$bs" --json); rc=$?
if [ $rc -eq 0 ] && python3 -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["replayed"] == 0 and o["skipped"] == 4 and o["failed"] == 0, o
why = {(r["partition"], r["offset"]): r["why"] for r in o["rows"]}
assert why[(0, 5)].startswith("replayed before"), why
assert why[(3, 11)].startswith("replayed before"), why
' "$out" && [ "$(topic_hex | wc -l)" -eq 2 ]; then ok
else bad "replay twice (rc=$rc): $out"; fi
out=$("$rg" dlq replay "${db[@]}" --topic likes --bootstrap "$bs" --again \
      --reason NUL); rc=$?
if [ $rc -eq 0 ] && grep -q '^replayed  *3:11 ' <<<"$out" &&
   ! grep -q '0:5' <<<"$out" && [ "$(topic_hex | wc -l)" -eq 3 ]; then ok
else bad "replay --again --reason NUL (rc=$rc): $out"; fi

# replay's bad input
for args in "replay" "replay --topic likes --state all" \
            "list --topic likes" "show 0:5 --again"; do
  # shellcheck disable=SC2086
  "$rg" dlq $args "${db[@]}" >/dev/null 2>"$tmp/err"; rc=$?
  if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ]; then ok
  else bad "dlq $args: rc=$rc $(cat "$tmp/err")"; fi
done
"$rg" dlq replay "${db[@]}" --topic likes >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -eq 2 ] && grep -q -- '--bootstrap' "$tmp/err"; then ok
else bad "replay without a cluster: rc=$rc $(cat "$tmp/err")"; fi

echo "dlq ($kind): $pass passed, $fail failed"
[ "$fail" -eq 0 ]
