#!/usr/bin/env bash
# mariadb.sh start DIR | stop DIR | kill DIR
# Starts a throwaway MariaDB server (Debian's mariadbd) on a temp datadir
# under DIR, listening on DIR/mysqld.sock and on 127.0.0.1 only (a free
# port, written to DIR/port), with root allowed in without a password.
# `stop` shuts it down cleanly; `kill` stops it hard (outage tests).
# Prints nothing on success; on failure the server log's tail.
set -euo pipefail
cmd=${1:?start|stop|kill} dir=${2:?DIR}
bin=$(command -v mariadbd || echo /usr/sbin/mariadbd)
sock=$dir/mysqld.sock

wait_ready() {
    for _ in $(seq 1 200); do
        if mariadb-admin --no-defaults --socket="$sock" -uroot ping \
            >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "mariadb.sh: server did not come up; log tail:" >&2
    tail -20 "$dir/server.log" >&2
    return 1
}

case $cmd in
start)
    mkdir -p "$dir"
    if [ ! -d "$dir/data/mysql" ]; then
        mariadb-install-db --no-defaults --datadir="$dir/data" \
            --user="$(id -un)" --auth-root-authentication-method=normal \
            --skip-test-db >"$dir/install.log" 2>&1 ||
            { tail -20 "$dir/install.log" >&2; exit 1; }
    fi
    if [ ! -f "$dir/port" ]; then
        # a loopback port nobody listens on
        for _ in $(seq 1 50); do
            port=$((20000 + RANDOM % 12000))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                echo "$port" >"$dir/port"
                break
            fi
        done
    fi
    "$bin" --no-defaults --datadir="$dir/data" --socket="$sock" \
        --port="$(cat "$dir/port")" --bind-address=127.0.0.1 \
        --user="$(id -un)" --pid-file="$dir/mysqld.pid" \
        --log-error="$dir/server.log" --skip-log-bin \
        --innodb-buffer-pool-size=256M --max-connections=200 \
        2>>"$dir/server.log" &
    wait_ready
    ;;
stop)
    if [ -f "$dir/mysqld.pid" ]; then
        mariadb-admin --no-defaults --socket="$sock" -uroot shutdown \
            >/dev/null 2>&1 || kill "$(cat "$dir/mysqld.pid")" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ -f "$dir/mysqld.pid" ] || break
            sleep 0.1
        done
    fi
    ;;
kill)
    if [ -f "$dir/mysqld.pid" ]; then
        kill -9 "$(cat "$dir/mysqld.pid")" 2>/dev/null || true
        rm -f "$dir/mysqld.pid" "$sock"
        sleep 0.2
    fi
    ;;
*)
    echo "usage: mariadb.sh start|stop|kill DIR" >&2
    exit 2
    ;;
esac
