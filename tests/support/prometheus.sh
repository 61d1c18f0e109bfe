#!/usr/bin/env bash
# prometheus.sh start DIR [TARGET...] | targets DIR [TARGET...] | stop DIR
# Starts a throwaway Prometheus server (Debian's prometheus) with its
# config and TSDB under DIR, listening on 127.0.0.1 only (a free port,
# written to DIR/port), scraping every second the HOST:PORT targets
# given (job "railgun", metrics path /metrics). `targets` replaces the
# target list of a running server (file-based discovery: picked up within
# about a second). `stop` shuts it down (SIGTERM, then SIGKILL after 10 s).
# Prints nothing on success; on failure the server log's tail.
set -euo pipefail
cmd=${1:?start|targets|stop} dir=${2:?DIR}
shift 2 || true

write_targets() {
    local list="" t
    for t in "$@"; do
        list+="${list:+, }\"$t\""
    done
    printf '[{"targets": [%s], "labels": {"instance_kind": "test"}}]\n' \
        "$list" >"$dir/targets.json.tmp"
    mv "$dir/targets.json.tmp" "$dir/targets.json"
}

case $cmd in
start)
    command -v prometheus >/dev/null ||
        { echo "prometheus.sh: prometheus not found (apt-get install prometheus)" >&2; exit 1; }
    mkdir -p "$dir/data"
    write_targets "$@"
    cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: railgun
    metrics_path: /metrics
    file_sd_configs:
      - files: ['$dir/targets.json']
        refresh_interval: 1s
YAML
    # a loopback port nobody listens on
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port" >"$dir/port"
            break
        fi
    done
    [ -f "$dir/port" ] || { echo "prometheus.sh: no free port" >&2; exit 1; }
    prometheus --config.file="$dir/prometheus.yml" \
        --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$(cat "$dir/port")" \
        --log.level=warn >"$dir/prometheus.log" 2>&1 &
    echo $! >"$dir/prometheus.pid"
    for _ in $(seq 1 300); do
        if curl -fs "http://127.0.0.1:$(cat "$dir/port")/-/ready" \
            >/dev/null 2>&1; then exit 0; fi
        if ! kill -0 "$(cat "$dir/prometheus.pid")" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "prometheus.sh: server did not come up; log tail:" >&2
    tail -20 "$dir/prometheus.log" >&2
    exit 1
    ;;
targets)
    write_targets "$@"
    ;;
stop)
    if [ -f "$dir/prometheus.pid" ]; then
        pid=$(cat "$dir/prometheus.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/prometheus.pid"
    fi
    ;;
*)
    echo "usage: prometheus.sh start|targets|stop DIR [TARGET...]" >&2
    exit 2
    ;;
esac
