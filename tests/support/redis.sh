#!/usr/bin/env bash
# redis.sh - throwaway Redis servers (Debian's redis-server, redis-sentinel)
# on loopback in a temp dir, and the controls the outage tests need.
#
#   redis.sh start DIR [--sentinel] [--password PW]
#       r0: a primary on a free 127.0.0.1 port and on DIR/r0.sock, no
#       persistence. --sentinel adds r1 (a replica of r0) and three
#       sentinels s1..s3 monitoring r0 as "mymaster" (quorum 2, down after
#       1 s), and waits until they see each other and the replica.
#   redis.sh stop DIR              stops every process started in DIR
#   redis.sh kill NAME DIR         SIGKILL (NAME: r0, r1, s1, s2, s3)
#   redis.sh pause NAME DIR        SIGSTOP: the server hangs, connections
#                                  stay open (a slow or frozen Redis)
#   redis.sh resume NAME DIR       SIGCONT
#   redis.sh restart NAME DIR      starts NAME again, same port and config
#                                  (after kill; its data is gone)
#   redis.sh failover DIR          SENTINEL FAILOVER, waits for the new
#                                  primary; prints its port
#   redis.sh primary DIR           prints the primary's port (sentinels)
#   redis.sh port NAME DIR         prints NAME's port
# Prints nothing else on success; on failure the log's tail, exit 1.
set -euo pipefail
cmd=${1:?start|stop|kill|pause|resume|restart|failover|primary|port}
shift

free_port() {
    for _ in $(seq 1 100); do
        # below Linux's ephemeral range (32768-60999), where outgoing
        # connections (Kafka mocks, clients) take ports a probe misses
        local p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            ! grep -qx "$p" "$dir"/*.port 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "redis.sh: no free port" >&2
    return 1
}

cli() { # cli PORT ARGS... (the password from the environment, not argv)
    local p=$1
    shift
    REDISCLI_AUTH=$(cat "$dir/password" 2>/dev/null || true) \
        redis-cli --no-auth-warning -h 127.0.0.1 -p "$p" "$@" 2>/dev/null
}

scli() { # a sentinel (no password)
    local p=$1
    shift
    redis-cli -h 127.0.0.1 -p "$p" "$@" 2>/dev/null
}

fail() {
    echo "redis.sh: $1; log tail:" >&2
    tail -20 "$dir/$2.log" >&2 2>/dev/null || true
    exit 1
}

launch() { # launch NAME: runs NAME's config in the background
    local name=$1 bin=redis-server
    [[ $name == s* ]] && bin=redis-sentinel
    local port try
    for try in 1 2 3 4 5; do
        "$bin" "$dir/$name.conf" >>"$dir/$name.log" 2>&1 &
        echo $! >"$dir/$name.pid"
        port=$(cat "$dir/$name.port")
        for _ in $(seq 1 200); do
            if [[ $name == s* ]]; then
                [ "$(scli "$port" ping)" = PONG ] && return 0
            else
                [ "$(cli "$port" ping)" = PONG ] && return 0
            fi
            kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break
            sleep 0.05
        done
        # the free port was taken meanwhile (or the probe missed a socket
        # bound without listening): another one, before anyone names it
        grep -q "Address already in use" "$dir/$name.log" 2>/dev/null ||
            break
        port=$(free_port) || break
        sed -i "s/^port .*/port $port/" "$dir/$name.conf"
        echo "$port" >"$dir/$name.port"
        : >"$dir/$name.log"
    done
    fail "$name did not come up (attempt $try)" "$name"
}

write_server_conf() { # NAME PORT [PRIMARY_PORT]
    local name=$1 port=$2 primary=${3:-}
    {
        echo "port $port"
        echo "bind 127.0.0.1"
        echo "unixsocket $dir/$name.sock"
        echo "unixsocketperm 700"
        echo "dir $dir"
        echo "dbfilename $name.rdb"
        echo 'save ""'
        echo "appendonly no"
        echo "daemonize no"
        echo "logfile \"\""
        if [ -s "$dir/password" ]; then
            echo "requirepass $(cat "$dir/password")"
            echo "masterauth $(cat "$dir/password")"
        fi
        [ -n "$primary" ] && echo "replicaof 127.0.0.1 $primary"
    } >"$dir/$name.conf"
    echo "$port" >"$dir/$name.port"
}

write_sentinel_conf() { # NAME PORT PRIMARY_PORT
    local name=$1 port=$2 primary=$3
    {
        echo "port $port"
        echo "bind 127.0.0.1"
        echo "dir $dir"
        echo "daemonize no"
        echo "logfile \"\""
        echo "sentinel monitor mymaster 127.0.0.1 $primary 2"
        echo "sentinel down-after-milliseconds mymaster 1000"
        echo "sentinel failover-timeout mymaster 5000"
        echo "sentinel parallel-syncs mymaster 1"
        if [ -s "$dir/password" ]; then
            echo "sentinel auth-pass mymaster $(cat "$dir/password")"
        fi
    } >"$dir/$name.conf"
    echo "$port" >"$dir/$name.port"
}

primary_port() {
    for s in s1 s2 s3; do
        [ -f "$dir/$s.port" ] || continue
        local out
        out=$(scli "$(cat "$dir/$s.port")" SENTINEL get-master-addr-by-name \
            mymaster | tail -1) || true
        if [ -n "$out" ]; then
            echo "$out"
            return 0
        fi
    done
    return 1
}

signal() { # signal SIG NAME
    local pidf="$dir/$2.pid"
    [ -f "$pidf" ] || { echo "redis.sh: no process $2 in $dir" >&2; exit 1; }
    kill "-$1" "$(cat "$pidf")" 2>/dev/null || true
}

case $cmd in
start)
    dir=${1:?DIR}
    shift
    sentinel=0 password=""
    while [ $# -gt 0 ]; do
        case $1 in
        --sentinel) sentinel=1 ;;
        --password) password=${2:?PW}; shift ;;
        *) echo "redis.sh start: unknown option $1" >&2; exit 2 ;;
        esac
        shift
    done
    mkdir -p "$dir"
    printf '%s' "$password" >"$dir/password"
    p0=$(free_port)
    write_server_conf r0 "$p0"
    launch r0
    p0=$(cat "$dir/r0.port") # launch may have moved it
    if [ $sentinel = 1 ]; then
        write_server_conf r1 "$(free_port)" "$p0"
        launch r1
        for _ in $(seq 1 200); do
            cli "$(cat "$dir/r1.port")" INFO replication |
                grep -q '^master_link_status:up' && break
            sleep 0.05
        done
        cli "$(cat "$dir/r1.port")" INFO replication |
            grep -q '^master_link_status:up' || fail "r1 did not sync" r1
        for s in s1 s2 s3; do
            write_sentinel_conf "$s" "$(free_port)" "$p0"
            launch "$s"
        done
        # sentinels find each other through hello messages (every 2 s)
        ok=0
        for _ in $(seq 1 300); do
            ok=1
            for s in s1 s2 s3; do
                info=$(scli "$(cat "$dir/$s.port")" SENTINEL master mymaster |
                    tr -d '\r' | paste - -)
                echo "$info" | grep -q $'^num-other-sentinels\t2$' || ok=0
                echo "$info" | grep -q $'^num-slaves\t1$' || ok=0
            done
            [ $ok = 1 ] && break
            sleep 0.1
        done
        [ $ok = 1 ] || fail "sentinels did not see each other" s1
    fi
    ;;
stop)
    dir=${1:?DIR}
    for name in s1 s2 s3 r1 r0; do
        pidf="$dir/$name.pid"
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf")
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for name in s1 s2 s3 r1 r0; do
        pidf="$dir/$name.pid"
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf")
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$pidf"
    done
    ;;
kill) dir=${2:?DIR}; signal KILL "${1:?NAME}"; sleep 0.1 ;;
pause) dir=${2:?DIR}; signal STOP "${1:?NAME}" ;;
resume) dir=${2:?DIR}; signal CONT "${1:?NAME}" ;;
restart)
    name=${1:?NAME} dir=${2:?DIR}
    signal KILL "$name"
    sleep 0.1
    launch "$name"
    ;;
failover)
    dir=${1:?DIR}
    before=$(primary_port) || { echo "redis.sh: no sentinel answers" >&2; exit 1; }
    scli "$(cat "$dir/s1.port")" SENTINEL FAILOVER mymaster >/dev/null
    for _ in $(seq 1 300); do
        now=$(primary_port) || true
        if [ -n "$now" ] && [ "$now" != "$before" ] &&
            cli "$now" ROLE | head -1 | grep -qx master; then
            echo "$now"
            exit 0
        fi
        sleep 0.1
    done
    fail "no failover within 30 s" s1
    ;;
primary) dir=${1:?DIR}; primary_port ;;
port) dir=${2:?DIR}; cat "$dir/${1:?NAME}.port" ;;
*)
    echo "usage: redis.sh start|stop|kill|pause|resume|restart|failover|primary|port" >&2
    exit 2
    ;;
esac
