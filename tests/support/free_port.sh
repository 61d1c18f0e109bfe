# free_port.sh - sourced by the test scripts that start listeners:
# free_port prints a loopback port nobody listens on, below Linux's
# ephemeral range (32768-60999), where outgoing connections take ports a
# connect probe cannot see; 1 when 50 tries found none.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo $p; return 0; fi
    done
    return 1
}
