#!/usr/bin/env bash
# rules_names_test.sh SOURCE_DIR FAKE_EXPORTER
# One set of metric names everywhere: the table "Proposed metric names" of
# NOTES-metrics.md (or wherever docs/ holds it now) is THE list, and
#   - the fake exporter serves exactly its families (no more, no fewer),
#     and `promtool check metrics` has nothing to say about its text;
#   - every metric the alert and recording rules read is one of them
#     (or Prometheus' own `up`);
#   - every metric doctor reads (apps/railgun/doctor/doctor.c) and the
#     dashboard page shows (apps/railgun/dashboard/index.html) is one.
set -euo pipefail
src=${1:?SOURCE_DIR} fake=${2:?FAKE_EXPORTER}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rg-names.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "rules_names_test: FAIL: $*" >&2; exit 1; }

notes=$src/NOTES-metrics.md
[ -f "$notes" ] || notes=$(grep -l "Proposed metric names" "$src"/docs/*.md 2>/dev/null | head -1)
[ -n "$notes" ] && [ -f "$notes" ] || fail "no table of proposed metric names"
# the table's rows: | `railgun_x` | type | ...
awk -F'|' '/^## Proposed metric names/ {on = 1; next} /^## / {on = 0}
    on && $2 ~ /`railgun_/ { n = $2; t = $3; gsub(/[` ]/, "", n); gsub(/^ +| +$/, "", t)
        split(t, w, " "); print n, w[1] }' "$notes" >"$tmp/table"
[ "$(wc -l <"$tmp/table")" -ge 30 ] || fail "only $(wc -l <"$tmp/table") names read from $notes"
cut -d' ' -f1 "$tmp/table" | sort -u >"$tmp/families"
# the sample names each family exposes
awk '{ if ($2 == "histogram") { print $1 "_bucket"; print $1 "_sum"; print $1 "_count" }
       else print $1 }' "$tmp/table" | sort -u >"$tmp/samples"
echo up >>"$tmp/samples"

"$fake" "$tmp/port" 2>"$tmp/fake.err" &
pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || fail "fake_exporter: $(cat "$tmp/fake.err")"
base=http://127.0.0.1:$(cat "$tmp/port")
curl -fs "$base/metrics" >"$tmp/metrics.txt"
promtool check metrics <"$tmp/metrics.txt" >"$tmp/promtool" 2>&1 && [ ! -s "$tmp/promtool" ] ||
    fail "promtool check metrics: $(cat "$tmp/promtool")"
curl -fs "$base/stats.json" | jq -r 'keys[]' | sort -u >"$tmp/served"
diff "$tmp/families" "$tmp/served" >"$tmp/diff" ||
    fail "the fake's families differ from the table (< table, > fake): $(cat "$tmp/diff")"

# names read elsewhere: not part of a recorded name (a:b:c)
refs() { grep -oE '(^|[^:A-Za-z0-9_])railgun_[a-z0-9_]*[a-z0-9]' "$1" |
         sed 's/^[^r]*//' | sort -u; }
check() { # FILE WHAT [NAMES]: NAMES default the sample names
    refs "$1" >"$tmp/refs"
    [ -s "$tmp/refs" ] || fail "no metric names found in $1"
    local extra
    extra=$(comm -23 "$tmp/refs" "${3:-$tmp/samples}" || true)
    [ -z "$extra" ] || fail "$2 reads names that are not in the table: $extra"
}
check "$src/docs/prometheus/railgun.rules.yml" "the rules"
grep '^#define M_' "$src/apps/railgun/doctor/doctor.c" >"$tmp/doctor.defs"
check "$tmp/doctor.defs" "doctor"
grep -oE '"railgun_[a-z0-9_]+"' "$src/apps/railgun/dashboard/index.html" | tr -d '"' >"$tmp/page"
# the page reads /stats.json: family names (a histogram's without suffix)
sort -u "$tmp/families" "$tmp/samples" >"$tmp/both"
check "$tmp/page" "the dashboard" "$tmp/both"
echo "rules_names_test: $(wc -l <"$tmp/families") families; the fake, the rules," \
    "doctor and the dashboard use the table's names; promtool silent"
