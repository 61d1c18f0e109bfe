# railgun - the front door. `make demo` and `make check` are the quick start.
#
#   make deps    install missing Debian packages (apt-get; sudo when not root);
#                every build runs it first, and it is quick when all are there
#   make         Release build; every executable lands in build/bin/
#   make demo    the demo: likes through Kafka (mock) into SQLite, verify: exact
#   make check   all tests: Release, then ASan+UBSan (all but the tests
#                labelled slow: the doctor runs and the browser test, which
#                mostly wait), then TSan on the concurrency tests
#   make bench   railgun-bench (google-benchmark), peers in the same run
#   make fuzz    libFuzzer targets (clang) for FUZZ_SECONDS each (default 60)
#   make docs    regenerate docs/CONFIGURATION.md from the property table
#   make clean

SHELL  := /bin/bash
JOBS   ?= $(shell nproc)
CMAKE  ?= cmake
GEN    := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CTEST  := ctest --output-on-failure -j$(JOBS)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ack like_codec

.PHONY: all build deps demo check check-release check-asan check-tsan \
        bench docs clean fuzz fuzz-build

all: build

deps:
	@scripts/deps.sh

# Every build first checks the Debian packages (quick when all are there),
# so `make demo` and `make check` work on a fresh machine.
build/CMakeCache.txt: | deps
	$(CMAKE) -S . -B build $(GEN) -DCMAKE_BUILD_TYPE=Release

build: deps build/CMakeCache.txt
	$(CMAKE) --build build -j$(JOBS)

demo: build
	build/bin/railgun demo

# Each ctest run keeps its log; the closing line sums them (reached only
# when every step passed, since make stops at the first failure).
check: check-release check-asan check-tsan
	$(MAKE) fuzz FUZZ_SECONDS=30
	@n=$$(cat build/ctest.log build-asan/ctest.log build-tsan/ctest.log | \
	  sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' | \
	  awk '{s += $$1} END {print s}'); \
	echo "check: $$((n + $(words $(FUZZ_TARGETS)))) passed, 0 failed"

check-release: build
	cd build && $(CTEST) 2>&1 | tee ctest.log; test $${PIPESTATUS[0]} -eq 0

build-asan/CMakeCache.txt: | deps
	$(CMAKE) -S . -B build-asan $(GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRG_SANITIZE=address,undefined -DRG_BUILD_BENCH=OFF

check-asan: build-asan/CMakeCache.txt
	$(CMAKE) --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 $(CTEST) -LE slow 2>&1 | \
	  tee ctest.log; \
	  test $${PIPESTATUS[0]} -eq 0

build-tsan/CMakeCache.txt: | deps
	$(CMAKE) -S . -B build-tsan $(GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRG_SANITIZE=thread -DRG_BUILD_BENCH=OFF

check-tsan: build-tsan/CMakeCache.txt
	$(CMAKE) --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 $(CTEST) -L concurrency \
	  2>&1 | tee ctest.log; test $${PIPESTATUS[0]} -eq 0

build-fuzz/CMakeCache.txt: | deps
	CC=clang CXX=clang++ $(CMAKE) -S . -B build-fuzz $(GEN) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRG_BUILD_FUZZ=ON \
	  -DRG_SANITIZE=address,undefined -DRG_BUILD_TESTS=OFF \
	  -DRG_BUILD_BENCH=OFF -DRG_BUILD_APPS=OFF

fuzz-build: build-fuzz/CMakeCache.txt
	$(CMAKE) --build build-fuzz -j$(JOBS)

# New inputs go to build-fuzz/corpus/T; fuzz/corpus/T (committed) seeds it.
# A crash or a model divergence aborts, and the target exits non-zero.
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t && \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s" && \
	  build-fuzz/bin/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/ build-fuzz/corpus/$$t fuzz/corpus/$$t \
	    2>build-fuzz/fuzz_$$t.log || { tail -n 40 build-fuzz/fuzz_$$t.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units|stat::new_units_added" build-fuzz/fuzz_$$t.log; \
	done

# micro suites, then the likes benchmark against a MariaDB started here
bench: build
	build/bin/railgun-bench
	build/bin/railgun bench kafka
	build/bin/railgun bench produce
	tests/support/with_mariadb.sh sh -c 'build/bin/railgun bench likes \
	  -X sink=mysql -X mysql.socket=$$RG_MYSQL_SOCKET'

docs: build
	build/bin/railgun config --markdown > docs/CONFIGURATION.md

clean:
	rm -rf build build-asan build-tsan build-fuzz
