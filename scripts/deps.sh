#!/usr/bin/env bash
# deps.sh - installs the Debian packages railgun needs that are missing.
# Quick when everything is there: it asks dpkg, not the network.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  clang libclang-rt-14-dev          # make fuzz (libFuzzer), sanitizers
  liburcu-dev libck-dev libjemalloc-dev
  libcriterion-dev libbenchmark-dev
  libsqlite3-dev libmariadb-dev     # the sinks (engine/src/adapters)
  mariadb-server mariadb-client     # real MariaDB for tests and benchmarks
  librdkafka-dev                    # Kafka: client and mock cluster
  redis-server redis-sentinel       # real Redis (and Sentinel) for flow tests
  libhiredis-dev                    # the Redis adapter (hiredis 0.14)
  bsdutils                          # script(1): the TTY progress-bar test
  sqlite3                           # the sqlite3 shell: tests/loud_test.sh
  libmicrohttpd-dev                 # the HTTP listener: /metrics, health
  prometheus curl jq                # promtool, a real Prometheus scraping
  chromium python3 python3-websocket  # the serve page and the dashboard in headless Chromium
  wrk sqlite3                       # railgun bench serve's peer load; tests
  gnuplot-nox                       # bench e2e's plot
  kcat                              # tests reading topics (dlq replay, doctor)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
