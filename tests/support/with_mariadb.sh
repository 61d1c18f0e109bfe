#!/usr/bin/env bash
# with_mariadb.sh CMD [ARGS...]
# Runs CMD with a fresh MariaDB server started on loopback in a temp dir
# (tests/support/mariadb.sh) and stops it afterwards, whatever CMD did.
# CMD sees RG_MYSQL_SOCKET (the server's socket), RG_MYSQL_CTL and
# RG_MYSQL_DIR: "$RG_MYSQL_CTL stop $RG_MYSQL_DIR" (start, kill) controls
# the server, for outage tests.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/rg-mariadb.XXXXXX")
cleanup() { "$here/mariadb.sh" stop "$dir"; rm -rf "$dir"; }
trap cleanup EXIT
"$here/mariadb.sh" start "$dir" || exit 1
export RG_MYSQL_SOCKET=$dir/mysqld.sock
export RG_MYSQL_CTL=$here/mariadb.sh RG_MYSQL_DIR=$dir
"$@"
