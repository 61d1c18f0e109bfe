#!/usr/bin/env bash
# with_redis.sh [--sentinel] CMD [ARGS...]
# Runs CMD with a fresh Redis started on loopback in a temp dir
# (tests/support/redis.sh; with a password) and stops it afterwards,
# whatever CMD did. --sentinel adds a replica and three sentinels.
# CMD sees:
#   RG_REDIS_PORT, RG_REDIS_SOCKET   the primary r0 (TCP on 127.0.0.1, unix)
#   RG_REDIS_PASSWORD                its password
#   RG_REDIS_CTL, RG_REDIS_DIR       "$RG_REDIS_CTL kill r0 $RG_REDIS_DIR"
#                                    (pause, resume, restart, failover...)
#   with --sentinel: RG_REDIS_REPLICA_PORT, RG_SENTINELS (host:port,...)
#   and RG_REDIS_MASTER (the name the sentinels monitor).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sentinel=()
if [ "${1:-}" = --sentinel ]; then
    sentinel=(--sentinel)
    shift
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/rg-redis.XXXXXX")
cleanup() { "$here/redis.sh" stop "$dir"; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
password=rg-test-$$
"$here/redis.sh" start "$dir" "${sentinel[@]}" --password "$password" || exit 1
export RG_REDIS_PORT RG_REDIS_SOCKET=$dir/r0.sock RG_REDIS_PASSWORD=$password
RG_REDIS_PORT=$(cat "$dir/r0.port")
export RG_REDIS_CTL=$here/redis.sh RG_REDIS_DIR=$dir
if [ ${#sentinel[@]} -gt 0 ]; then
    export RG_REDIS_REPLICA_PORT RG_SENTINELS RG_REDIS_MASTER=mymaster
    RG_REDIS_REPLICA_PORT=$(cat "$dir/r1.port")
    RG_SENTINELS=127.0.0.1:$(cat "$dir/s1.port"),127.0.0.1:$(cat "$dir/s2.port"),127.0.0.1:$(cat "$dir/s3.port")
fi
"$@"
