#!/usr/bin/env bash
# install_test.sh BUILD_DIR SRCDIR
# Installs railgun into a temporary prefix, then builds and runs, against
# the installed package only (no path into the source or build tree):
#   tiny.c          the core, with find_package(railgun) and with
#                   pkg-config, also under -Wpedantic
#   wordcount.c     docs/EMBEDDING.md's SQLite example (railgun::sqlite,
#                   pkg-config railgun-sqlite): exact counts, twice
#   kafka_mock.c    the Kafka source and producer (railgun::kafka) against
#                   librdkafka's mock cluster
#   cxx.cc          railgun.h from C++17 -Wpedantic
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null

# the SQLite example docs/EMBEDDING.md shows is the file built here
awk '/^```c$/{f=1; buf=""; next} /^```$/{if (f && buf ~ /^\/\* wordcount\.c/) {printf "%s", buf; exit} f=0} f{buf = buf $0 "\n"}' \
    "$src/docs/EMBEDDING.md" >"$tmp/doc.c"
diff -q "$tmp/doc.c" "$src/docs/examples/wordcount.c" >/dev/null ||
    { echo "docs/EMBEDDING.md's wordcount listing differs from docs/examples/wordcount.c"; exit 1; }

mkdir -p "$tmp/proj"
cp "$src/tests/install/tiny.c" "$src/tests/install/kafka_mock.c" \
   "$src/tests/install/cxx.cc" "$src/docs/examples/wordcount.c" "$tmp/proj/"
cat >"$tmp/proj/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(users C CXX)
set(CMAKE_C_STANDARD 11)
set(CMAKE_CXX_STANDARD 17)
find_package(railgun 0.1 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
add_compile_options(-Wall -Wextra -Wpedantic -Werror)
add_executable(tiny tiny.c)
target_link_libraries(tiny PRIVATE railgun::core)
add_executable(wordcount wordcount.c)
target_link_libraries(wordcount PRIVATE railgun::sqlite)
add_executable(kafka_mock kafka_mock.c)
target_link_libraries(kafka_mock PRIVATE railgun::kafka PkgConfig::RDKAFKA)
add_executable(cxx cxx.cc)
target_link_libraries(cxx PRIVATE railgun::core)
CMAKE
cmake -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$prefix" \
    >/dev/null
cmake --build "$tmp/proj/build" >/dev/null
"$tmp/proj/build/tiny"
"$tmp/proj/build/cxx"
"$tmp/proj/build/kafka_mock"
db=$tmp/words.db
printf 'the cat and the hat\nthe end\n' | "$tmp/proj/build/wordcount" "$db"
out=$(printf 'the cat and the hat\nthe end\nthe\n' |
      "$tmp/proj/build/wordcount" "$db")
[ "$out" = "8 words, 1 new" ] || { echo "wordcount rerun: $out"; exit 1; }
echo "find_package(railgun): ok"

pcdir=$(dirname "$(find "$prefix" -name railgun.pc | head -n1)")
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir railgun)
pc() { PKG_CONFIG_PATH=$pcdir pkg-config "$@"; }
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$tmp/tiny-pc" \
   "$tmp/proj/tiny.c" $(pc --cflags --libs railgun)
LD_LIBRARY_PATH=$libdir "$tmp/tiny-pc"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$tmp/wc-pc" \
   "$tmp/proj/wordcount.c" $(pc --cflags --libs railgun-sqlite)
printf 'a b a\n' | LD_LIBRARY_PATH=$libdir "$tmp/wc-pc" "$tmp/pc.db" |
    grep -qx '3 words, 3 new'
# shellcheck disable=SC2046
c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -o "$tmp/cxx-pc" \
    "$tmp/proj/cxx.cc" $(pc --cflags --libs railgun)
LD_LIBRARY_PATH=$libdir "$tmp/cxx-pc"
pc --exists railgun-kafka railgun-mysql
echo "pkg-config railgun, railgun-sqlite, railgun-kafka, railgun-mysql: ok"
