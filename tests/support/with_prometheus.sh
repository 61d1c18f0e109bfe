#!/usr/bin/env bash
# with_prometheus.sh [--target HOST:PORT]... CMD [ARGS...]
# Runs CMD with a fresh Prometheus server started on loopback in a temp
# dir (tests/support/prometheus.sh: 1 s scrapes of the given targets) and
# stops it afterwards, whatever CMD did. CMD sees RG_PROM_URL (the
# server's base URL, for /api/v1/query), RG_PROM_CTL and RG_PROM_DIR:
# "$RG_PROM_CTL targets $RG_PROM_DIR HOST:PORT..." sets the targets once
# CMD knows its ports.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
targets=()
while [ "${1:-}" = "--target" ]; do
    targets+=("${2:?--target HOST:PORT}")
    shift 2
done
[ $# -gt 0 ] || { echo "usage: with_prometheus.sh [--target HOST:PORT]... CMD [ARGS...]" >&2; exit 2; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/rg-prometheus.XXXXXX")
cleanup() { "$here/prometheus.sh" stop "$dir"; rm -rf "$dir"; }
trap cleanup EXIT
"$here/prometheus.sh" start "$dir" "${targets[@]}" || exit 1
export RG_PROM_URL="http://127.0.0.1:$(cat "$dir/port")"
export RG_PROM_CTL=$here/prometheus.sh RG_PROM_DIR=$dir
"$@"
