# stop_pids.sh - sourced by the test scripts that start servers in the
# background: stop_pids PID... stops them newest first (SIGCONT, for a
# stopped one, then SIGTERM), waiting for each before the next. Newest
# first because a `railgun run` stopped after the mock-kafka it reads from
# waits ~45 s for a group coordinator that is gone.
stop_pids() {
    local a=("$@") i
    for ((i = ${#a[@]} - 1; i >= 0; i--)); do
        kill -CONT "${a[i]}" 2>/dev/null
        kill -TERM "${a[i]}" 2>/dev/null
        wait "${a[i]}" 2>/dev/null
    done
}
