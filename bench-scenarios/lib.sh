# Shared by the bench-scenarios runners: source it after setting SRV_PID
# (the server's pid, "" when none) and BENCH (the runner's name for messages).

# Stops the server: SIGTERM, up to 15 s, then SIGKILL. Sets STOP_STATUS (the
# server's exit status, "n/a" before) and clears SRV_PID.
STOP_STATUS="n/a"
stop_server() {
    [[ -n "$SRV_PID" ]] || return 0
    local pid="$SRV_PID" i st=0
    SRV_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for (( i = 0; i < 150; i++ )); do
        kill -0 "$pid" 2>/dev/null || break
        # a child that exited but was not reaped yet is a zombie: done
        [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == "Z" ]] && break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]]; then
        echo "$BENCH: server $pid ignored SIGTERM for 15 s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || st=$?
    STOP_STATUS="$st"
}
