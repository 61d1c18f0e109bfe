#!/usr/bin/env bash
# rules_test.sh SOURCE_DIR
# The shipped Prometheus rules (docs/prometheus/railgun.rules.yml) pass
# `promtool check rules` and the unit tests of tests/rules_test.yml
# (`promtool test rules`). Then, so that the suite cannot pass vacuously:
#   - every alert has a firing case (an exp_alerts list that is not
#     empty) and a non-firing case (`exp_alerts: []`) in the test file;
#   - for each alert in turn, a copy of the rules where that alert never
#     fires (expr `vector(0) > 1`) makes its tests fail, and so does one
#     where it always fires (expr `vector(1)`).
set -euo pipefail
src=${1:?SOURCE_DIR}
rules=$src/docs/prometheus/railgun.rules.yml
tests=$src/tests/rules_test.yml
command -v promtool >/dev/null ||
    { echo "rules_test: promtool not found (apt-get install prometheus)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "rules_test: FAIL: $*" >&2; exit 1; }

promtool check rules "$rules" >"$tmp/check" 2>&1 || { cat "$tmp/check" >&2; fail "promtool check rules"; }
# the test file names the rules as ../docs/prometheus/railgun.rules.yml
mkdir -p "$tmp/docs/prometheus" "$tmp/tests"
cp "$tests" "$tmp/tests/rules_test.yml"
cp "$rules" "$tmp/docs/prometheus/railgun.rules.yml"
(cd "$tmp/tests" && promtool test rules rules_test.yml) >"$tmp/out" 2>&1 ||
    { cat "$tmp/out" >&2; fail "promtool test rules"; }

mapfile -t alerts < <(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules")
[ ${#alerts[@]} -ge 10 ] || fail "only ${#alerts[@]} alerts found in $rules"

# each alertname's cases: "empty" for exp_alerts: [], "firing" for a list
awk '
    /alertname:/ {
        name = $0; sub(/.*alertname: */, "", name); sub(/[,} ].*/, "", name)
        if ($0 ~ /exp_alerts: *\[\]/) { print name, "empty"; name = "" }
        next
    }
    name != "" && /exp_alerts: *\[\]/ { print name, "empty"; name = ""; next }
    name != "" && /- exp_labels:/ { print name, "firing"; name = ""; next }
' "$tests" | sort -u >"$tmp/cases"
for a in "${alerts[@]}"; do
    grep -qx "$a firing" "$tmp/cases" || fail "$a has no firing case in rules_test.yml"
    grep -qx "$a empty" "$tmp/cases" || fail "$a has no non-firing case in rules_test.yml"
done

# the rules with alert $1's expression (its expr line and the lines
# folded under it) replaced by $2
mutate() {
    awk -v want="$1" -v repl="$2" '
        /^ *- alert:/ { cur = $0; sub(/.*- alert: */, "", cur); inexpr = 0 }
        inexpr {
            match($0, /^ */)
            if (RLENGTH > ind) next
            inexpr = 0
        }
        cur == want && /^ *expr:/ {
            match($0, /^ */); ind = RLENGTH
            printf "%*sexpr: %s\n", ind, "", repl
            inexpr = 1
            next
        }
        { print }
    ' "$rules"
}
# the test file's header and the test groups that name alert $1 (the
# healthy group names them all): a mutation run evaluates only those
only() {
    awk -v want="$1" '
        /^  - name:/ { if (keep) printf "%s", blk; blk = ""; keep = 0; ingrp = 1 }
        !ingrp { print; next }
        { blk = blk $0 "\n" }
        index($0, "alertname: " want ",") || $0 ~ ("alertname: " want "$") { keep = 1 }
        END { if (keep) printf "%s", blk }
    ' "$tests"
}
# ALERT MUTATION: 0 when the tests caught the mutation
one() {
    local a=$1 m=$2 d
    d=$(mktemp -d "$tmp/m.XXXXXX")
    mkdir -p "$d/docs/prometheus" "$d/tests"
    only "$a" >"$d/tests/rules_test.yml"
    mutate "$a" "$m" >"$d/docs/prometheus/railgun.rules.yml"
    promtool check rules "$d/docs/prometheus/railgun.rules.yml" >/dev/null 2>&1 ||
        { echo "the mutation of $a to '$m' did not parse"; return 1; }
    if (cd "$d/tests" && promtool test rules rules_test.yml) >/dev/null 2>&1; then
        echo "the tests still pass with $a's expr replaced by '$m'"
        return 1
    fi
}
export -f mutate only one
export tmp tests rules
for a in "${alerts[@]}"; do
    printf '%s\0vector(0) > 1\0%s\0vector(1)\0' "$a" "$a"
done | xargs -0 -n 2 -P "$(nproc)" bash -c 'one "$0" "$1"' >"$tmp/mut" 2>&1 ||
    { cat "$tmp/mut" >&2; fail "a mutation was not caught"; }
echo "rules_test: promtool check + test rules ok; ${#alerts[@]} alerts, each" \
    "with a firing and a non-firing case; each caught when made never or" \
    "always firing"
