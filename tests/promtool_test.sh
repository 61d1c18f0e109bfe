#!/usr/bin/env bash
# promtool_test.sh METRICS_SERVE
# `promtool check metrics` (Debian prometheus) accepts, with nothing to
# say, the exposition of a registry holding every kind of metric
# (tests/support/metrics_serve.c), while it does reject broken input
# (so the check can fail); the JSON render of the same registry parses.
set -euo pipefail
bin=${1:?METRICS_SERVE}
command -v promtool >/dev/null ||
    { echo "promtool_test: promtool not found (apt-get install prometheus)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" print text >"$tmp/metrics.txt"
for kind in counter gauge histogram; do
    grep -q "^# TYPE railgun_[a-z_]* $kind\$" "$tmp/metrics.txt" ||
        { echo "promtool_test: no $kind in the exposition" >&2; exit 1; }
done
if ! promtool check metrics <"$tmp/metrics.txt" >"$tmp/out" 2>&1 ||
    [ -s "$tmp/out" ]; then
    echo "promtool_test: promtool check metrics complained:" >&2
    cat "$tmp/out" >&2
    exit 1
fi
# the check is not vacuous: a counter without _total, a bad label escape
if printf '# HELP x X.\n# TYPE x counter\nx 1\n' |
    promtool check metrics >/dev/null 2>&1; then
    echo "promtool_test: promtool accepted a counter without _total" >&2
    exit 1
fi
if printf 'x{a="1} 1\n' | promtool check metrics >/dev/null 2>&1; then
    echo "promtool_test: promtool accepted a broken label" >&2
    exit 1
fi
"$bin" print json | jq -e '.railgun_test_events_total.series[0].value == 1000' \
    >/dev/null || { echo "promtool_test: the JSON render does not parse" >&2; exit 1; }
echo "promtool check metrics: ok ($(grep -c '^# TYPE' "$tmp/metrics.txt") families, $(grep -vc '^#' "$tmp/metrics.txt") samples)"
