#!/usr/bin/env bash
# spool_rounds.sh - the spool suite in interleaved rounds: each round runs
# spool/railgun, spool/railgun_burst32 and spool/write_fdatasync once each
# (rotating which goes first, so disk weather hits all three alike) and
# prints their items/s and the ratios to the peer of that round; the last
# lines are the medians over rounds. The disk is shared and noisy: read
# the medians, not one round.
#
#   bench/spool_rounds.sh [BENCH_BINARY] [ROUNDS] [SYNC_BYTES]
#   RG_BENCH_DIR=/dev/shm bench/spool_rounds.sh   # tmpfs: CPU cost only
set -euo pipefail
bin=${1:-build/bin/railgun-bench}
rounds=${2:-9}
sync=${3:-1048576}
impls=(railgun railgun_burst32 write_fdatasync)
declare -A all
for ((r = 0; r < rounds; r++)); do
    line="round $r:"
    declare -A got=()
    for ((k = 0; k < 3; k++)); do
        impl=${impls[$(((r + k) % 3))]}
        v=$("$bin" --benchmark_filter="^spool/$impl/$sync/" \
              --benchmark_min_time=1 --benchmark_format=csv 2>/dev/null |
            awk -F, -v n="\"spool/$impl/$sync/real_time\"" \
              '$1 == n { print $7 }')
        got[$impl]=$v
    done
    for impl in "${impls[@]}"; do
        line+=" $impl=$(awk -v v="${got[$impl]}" 'BEGIN{printf "%.3gM", v/1e6}')"
    done
    rr=$(awk -v a="${got[railgun]}" -v b="${got[write_fdatasync]}" \
        'BEGIN{printf "%.3f", a/b}')
    rb=$(awk -v a="${got[railgun_burst32]}" -v b="${got[write_fdatasync]}" \
        'BEGIN{printf "%.3f", a/b}')
    echo "$line railgun/peer=$rr burst32/peer=$rb"
    all[rr]+="$rr "
    all[rb]+="$rb "
    for impl in "${impls[@]}"; do all[$impl]+="${got[$impl]} "; done
done
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for impl in "${impls[@]}"; do
    echo "median $impl items/s: $(echo "${all[$impl]}" | med)"
done
echo "median railgun/write_fdatasync: $(echo "${all[rr]}" | med)"
echo "median railgun_burst32/write_fdatasync: $(echo "${all[rb]}" | med)"
