#!/usr/bin/env bash
# install_test.sh BUILD_DIR SRCDIR
# Installs railgun into a temporary prefix, then builds and runs a tiny
# program against it twice: with CMake's find_package(railgun) and with
# pkg-config. Both must run the engine end to end.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null

mkdir -p "$tmp/proj"
cp "$src/tests/install/tiny.c" "$tmp/proj/tiny.c"
cat >"$tmp/proj/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(tiny C)
find_package(railgun 0.1 REQUIRED)
add_executable(tiny tiny.c)
target_link_libraries(tiny PRIVATE railgun::core)
CMAKE
cmake -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/proj/build" >/dev/null
"$tmp/proj/build/tiny"
echo "find_package(railgun): ok"

pcdir=$(dirname "$(find "$prefix" -name railgun.pc | head -n1)")
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir railgun)
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/tiny-pc" "$tmp/proj/tiny.c" \
   $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs railgun)
LD_LIBRARY_PATH=$libdir "$tmp/tiny-pc"
echo "pkg-config railgun: ok"
