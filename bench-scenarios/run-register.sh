#!/usr/bin/env bash
# REGISTER load benchmark: digest-authenticated registrations (401 then 200)
# driven by sipp against a throw-away ShardPBX on 127.0.0.1.
#
# usage: bench-scenarios/run-register.sh [--users N] [--rate R] [--duration S]
#            [--shards K] [--perf PROFILE] [--bin PATH] [--limit L] [--keep]
#
#   --users N      distinct users in the memory backend and the sipp injection file (5000)
#   --rate R       new registrations per second sipp starts (1000)
#   --duration S   seconds of load; sipp runs -m R*S calls under a hard timeout (20)
#   --shards K     [runtime] shards of the generated config (2); a --perf profile's
#                  own `shards` key wins over this (the shard count actually used is printed)
#   --perf FILE    perf profile passed to `shardpbx run --perf`
#   --bin PATH     the shardpbx binary (target/release/shardpbx; built with
#                  `cargo build --release` when it is missing)
#   --limit L      sipp -l: most registrations in flight at once (max(R, 100))
#   --transport T  sipp -t: u1 = all calls from one UDP socket (default), un = one
#                  socket per call (many source ports, so SO_REUSEPORT spreads them),
#                  t1 = all over one TCP connection, tn = a new TCP connection per
#                  registration (the server then listens on TCP too, no per-source cap),
#                  tls1 = all over one TLS connection: sipp's TCP goes through a local
#                  stunnel4 that verifies the server's self-signed certificate (stunnel's
#                  CPU is not in the server's figure)
#   --sipp-buf B   sipp -buff_size: SO_RCVBUF/SO_SNDBUF of sipp's socket, bytes (4194304;
#                  sipp's own default of 65535 drops responses in bursts; the kernel caps
#                  it at net.core.rmem_max)
#   --keep         keep the temp dir (config, server log, sipp traces) and print its path
#
# Prints: calls attempted / successful / failed, achieved rate (successful / wall
# time of the sipp run), p50/p99/max of the whole two-round-trip registration (ms,
# sipp rtd from the first REGISTER to the 200), server CPU (utime+stime of all its
# threads) per successful registration in µs, retransmissions, server counters and
# the bindings count from `shardpbx registrations list --json`.
# Exit status: 0 when every call succeeded, 1 when some failed or sipp timed out,
# 2 on a setup error.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"

USERS=5000
RATE=1000
DURATION=20
SHARDS=2
PERF=""
BIN="$REPO/target/release/shardpbx"
BIN_GIVEN=0
LIMIT=""
TRANSPORT=u1
SIPP_BUF=4194304
KEEP=0

die() { echo "run-register: $*" >&2; exit 2; }
need_int() { [[ "$2" =~ ^[0-9]+$ ]] && (( "$2" > 0 )) || die "$1 needs a positive integer, got '$2'"; }

while (( $# > 0 )); do
    case "$1" in
        --users) need_int "$1" "${2-}"; USERS="$2"; shift 2 ;;
        --rate) need_int "$1" "${2-}"; RATE="$2"; shift 2 ;;
        --duration) need_int "$1" "${2-}"; DURATION="$2"; shift 2 ;;
        --shards) need_int "$1" "${2-}"; SHARDS="$2"; shift 2 ;;
        --limit) need_int "$1" "${2-}"; LIMIT="$2"; shift 2 ;;
        --perf) [[ -n "${2-}" ]] || die "--perf needs a file"; PERF="$(realpath "$2")"; shift 2 ;;
        --bin) [[ -n "${2-}" ]] || die "--bin needs a path"; BIN="$(realpath -m "$2")"; BIN_GIVEN=1; shift 2 ;;
        --transport) [[ "${2-}" =~ ^(u1|un|t1|tn|tls1)$ ]] || die "--transport is u1, un, t1, tn or tls1"; TRANSPORT="$2"; shift 2 ;;
        --sipp-buf) need_int "$1" "${2-}"; SIPP_BUF="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

[[ -z "$PERF" || -f "$PERF" ]] || die "perf profile $PERF not found"
command -v sipp >/dev/null || die "sipp is not installed"
command -v python3 >/dev/null || die "python3 is not installed"
CALLS=$(( RATE * DURATION ))
[[ -n "$LIMIT" ]] || LIMIT=$(( RATE > 100 ? RATE : 100 ))
CLK_TCK="$(getconf CLK_TCK)"
SIPP_TIMEOUT=$(( DURATION * 2 + 40 ))   # start phase + retransmission tail + slack

if [[ ! -x "$BIN" ]]; then
    (( BIN_GIVEN == 0 )) || die "$BIN is not an executable"
    echo "run-register: $BIN missing, running cargo build --release" >&2
    (cd "$REPO" && timeout 3600 cargo build --release) || die "cargo build --release failed"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/shardpbx-bench-register.XXXXXX")"
SRV_PID=""
SIPP_JOB=""

BENCH=run-register
# shellcheck source=bench-scenarios/lib.sh
source "$SCRIPT_DIR/lib.sh"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$SIPP_JOB" ]]; then
        # interrupted while sipp runs: TERM its `timeout` (which passes it on to sipp)
        local tpid
        tpid="$(cat "$TMP/sipp.pid" 2>/dev/null || true)"
        [[ -z "$tpid" ]] || kill -TERM "$tpid" 2>/dev/null || true
        timeout 10 tail --pid="$SIPP_JOB" -f /dev/null 2>/dev/null || kill -KILL "$SIPP_JOB" 2>/dev/null || true
    fi
    if [[ -n "$TUN_PID" ]]; then kill "$TUN_PID" 2>/dev/null || true; fi
    if [[ -n "$SRV_PID" ]]; then stop_server; fi
    if (( KEEP )); then
        echo "run-register: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ports, users, config ---------------------------------------------------
TCP_PORT=0   # set to the SIP port below for -t t1/tn
# Two distinct ports free on 127.0.0.1: SIP (UDP) and HTTP (TCP). Both above
# 40000, outside the default RTP range 20000-39999 the SIP port must not be in.
read -r SIP_PORT HTTP_PORT < <(python3 - <<'EOF'
import random, socket
ports, socks = [], []
for _ in range(200):
    p = random.randint(40000, 65000)
    if p in ports:
        continue
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        u.bind(("127.0.0.1", p))
        t.bind(("127.0.0.1", p))
    except OSError:
        u.close(); t.close(); continue
    socks += [u, t]
    ports.append(p)
    if len(ports) == 2:
        break
print(*ports)
EOF
)
[[ "$TRANSPORT" == t[1n] ]] && TCP_PORT=$SIP_PORT
TLS_PORT=0 TUN_PORT="" TUN_PID="" SIPP_T="$TRANSPORT" SIPP_TO="127.0.0.1:$SIP_PORT"
if [[ "$TRANSPORT" == tls1 ]]; then
    read -r TLS_PORT TUN_PORT < <(free_ports 2)
    SIPP_T=t1 SIPP_TO="127.0.0.1:$TUN_PORT"
fi
[[ -n "${HTTP_PORT:-}" ]] || die "could not find two free ports"

python3 "$SCRIPT_DIR/gen-users.py" "$USERS" 127.0.0.1 "$TMP/users.csv" "$TMP/users.toml"
cp "$SCRIPT_DIR/register_auth.xml" "$TMP/register_auth.xml"
CFG="$TMP/shardpbx.toml"
{
    cat <<EOF
# generated by bench-scenarios/run-register.sh
http_addr = "127.0.0.1:$HTTP_PORT"
data_dir = "$TMP/data"
log_level = "info"

[runtime]
shards = $SHARDS

[proxy]
addr = "127.0.0.1"
udp_port = $SIP_PORT
tcp_port = $TCP_PORT
tls_port = $TLS_PORT
tcp_max_connections_per_ip = 100000   # the load generator is one source
realms = ["127.0.0.1"]
routes_files = []
trunks_files = []

EOF
    cat "$TMP/users.toml"
    printf '\n[security]\ntrusted = ["127.0.0.0/8"]   # the load generator: no flood limit\n'
} > "$CFG"

# --- server -----------------------------------------------------------------
SRV_ARGS=(run --config "$CFG")
[[ -z "$PERF" ]] || SRV_ARGS+=(--perf "$PERF")
"$BIN" "${SRV_ARGS[@]}" >"$TMP/server.log" 2>&1 &
SRV_PID=$!

# Ready when it answers OPTIONS (20 s at most; fails early if it exits).
if ! python3 - "$SIP_PORT" "$SRV_PID" <<'EOF'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
lport = s.getsockname()[1]
s.settimeout(0.2)
deadline = time.monotonic() + 20
n = 0
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while time.monotonic() < deadline:
    if not alive():
        sys.exit("server exited before answering OPTIONS")
    n += 1
    req = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-probe-{n};rport\r\n"
           f"Max-Forwards: 70\r\n"
           f"From: <sip:probe@127.0.0.1>;tag=probe{n}\r\n"
           f"To: <sip:127.0.0.1:{port}>\r\n"
           f"Call-ID: probe-{n}@127.0.0.1\r\n"
           f"CSeq: {n} OPTIONS\r\n"
           f"Content-Length: 0\r\n\r\n")
    s.sendto(req.encode(), ("127.0.0.1", port))
    try:
        data, _ = s.recvfrom(65535)
        if data.startswith(b"SIP/2.0 "):
            sys.exit(0)
    except (socket.timeout, ConnectionRefusedError):
        time.sleep(0.05)
sys.exit("server did not answer OPTIONS within 20 s")
EOF
then
    echo "--- server log ---" >&2
    tail -n 40 "$TMP/server.log" >&2 || true
    die "server not ready"
fi

cpu_ticks() {
    # utime + stime of the whole process (all threads, live and exited), in clock ticks.
    python3 -c 'import sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print(int(f[11])+int(f[12]))' "$1"
}

sys_ticks() {
    # stime alone: the kernel's share.
    python3 -c 'import sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print(int(f[12]))' "$1"
}

thread_ticks() {
    # "tid name ticks" per live thread, for the per-thread breakdown.
    python3 - "$1" <<'PY'
import os, sys
base = f"/proc/{sys.argv[1]}/task"
for tid in sorted(os.listdir(base), key=int):
    try:
        raw = open(f"{base}/{tid}/stat").read()
    except OSError:
        continue
    name = raw[raw.index("(") + 1:raw.rindex(")")].replace(" ", "_")
    f = raw.rsplit(")", 1)[1].split()
    print(tid, name, int(f[11]) + int(f[12]))
PY
}

metrics() {
    curl -s --max-time 5 "http://127.0.0.1:$HTTP_PORT/metrics" || true
}

# Idle baseline: CPU the server burns with no traffic, over 2 s.
IDLE0="$(cpu_ticks "$SRV_PID")"
sleep 2
IDLE1="$(cpu_ticks "$SRV_PID")"

if [[ "$TRANSPORT" == tls1 ]]; then
    stunnel_client "$TMP" "$TUN_PORT" "$TLS_PORT" "$TMP/data/tls/self-signed.crt"
fi
metrics > "$TMP/metrics-before.txt"

# --- load -------------------------------------------------------------------
echo "run-register: shardpbx on 127.0.0.1:$SIP_PORT (pid $SRV_PID), sipp -r $RATE -m $CALLS -l $LIMIT, $USERS users" >&2
udp_counters() {
    # System-wide UDP RcvbufErrors (all sockets, sipp's too), then the drops
    # counted on the server's SIP socket(s) (/proc/net/udp, last column).
    python3 - "$SIP_PORT" <<'PY'
import sys
port = "%04X" % int(sys.argv[1])
lines = open("/proc/net/snmp").read().splitlines()
udp = [l.split() for l in lines if l.startswith("Udp:")]
rcvbuf = dict(zip(udp[0][1:], udp[1][1:])).get("RcvbufErrors", "0")
drops = 0
for line in open("/proc/net/udp").read().splitlines()[1:]:
    f = line.split()
    if f[1].split(":")[1] == port:
        drops += int(f[-1])
print(rcvbuf, drops)
PY
}

# sipp -t un opens a socket per call; keep its socket table under RLIMIT_NOFILE.
NOFILE="$(ulimit -n)"
MAX_SOCKET=$(( LIMIT + 1000 ))
if [[ "$NOFILE" =~ ^[0-9]+$ ]] && (( MAX_SOCKET > NOFILE - 100 )); then MAX_SOCKET=$(( NOFILE - 100 )); fi

read -r RCVBUF0 SRVDROP0 < <(udp_counters)
thread_ticks "$SRV_PID" > "$TMP/threads-before.txt"
CPU0="$(cpu_ticks "$SRV_PID")"
SYS0="$(sys_ticks "$SRV_PID")"
T0="$(date +%s.%N)"
SIPP_RC=0
# sipp runs in the background so that a signal to this script is handled at
# once (bash runs traps only after a foreground child ends); the cleanup trap
# stops it through the pid of its `timeout`.
(
    cd "$TMP"
    rc=0
    timeout --kill-after=5 "$SIPP_TIMEOUT" sipp "$SIPP_TO" \
        -i 127.0.0.1 -t "$SIPP_T" -max_socket "$MAX_SOCKET" -buff_size "$SIPP_BUF" -sf register_auth.xml -inf users.csv \
        -r "$RATE" -rp 1000 -m "$CALLS" -l "$LIMIT" \
        -trace_rtt -rtt_freq 1 \
        -trace_stat -stf stat.csv -fd 1 \
        -trace_err -error_file errors.log \
        -trace_screen -screen_file screen.log \
        -nostdin &
    echo $! > sipp.pid
    wait $! || rc=$?
    times > sipp.times   # second line: user and system CPU of sipp (children)
    exit "$rc"
) > "$TMP/sipp.out" 2>&1 &
SIPP_JOB=$!
wait "$SIPP_JOB" || SIPP_RC=$?
SIPP_JOB=""
T1="$(date +%s.%N)"
CPU1="$(cpu_ticks "$SRV_PID")"
SYS1="$(sys_ticks "$SRV_PID")"
thread_ticks "$SRV_PID" > "$TMP/threads-after.txt"
read -r RCVBUF1 SRVDROP1 < <(udp_counters)
metrics > "$TMP/metrics-after.txt"

BINDINGS_JSON="$TMP/bindings.json"
BINDINGS="?"
if timeout 60 "$BIN" registrations list --config "$CFG" --json > "$BINDINGS_JSON" 2>"$TMP/bindings.err"; then
    BINDINGS="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$BINDINGS_JSON" 2>/dev/null || echo "?")"
fi

stop_server

# --- report -----------------------------------------------------------------
python3 - "$TMP" "$SIPP_RC" "$T0" "$T1" "$CPU0" "$CPU1" "$CLK_TCK" "$BINDINGS" "$STOP_STATUS" \
    "$USERS" "$RATE" "$DURATION" "$SHARDS" "$CALLS" "$LIMIT" "${PERF:-none}" "$TRANSPORT" \
    "$IDLE0" "$IDLE1" "$((RCVBUF1 - RCVBUF0))" "$((SRVDROP1 - SRVDROP0))" "$((SYS1 - SYS0))" <<'EOF'
import csv, glob, math, os, re, sys
(tmp, sipp_rc, t0, t1, cpu0, cpu1, clk, bindings, stop_status,
 users, rate, duration, shards, calls, limit, perf, transport, idle0, idle1, rcvbuf_errs, srv_drops,
 sys_ticks) = sys.argv[1:]
sipp_rc, cpu0, cpu1, clk = int(sipp_rc), int(cpu0), int(cpu1), int(clk)
wall = float(t1) - float(t0)

stat = {}
path = os.path.join(tmp, "stat.csv")
if os.path.exists(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=";") if r]
    if len(rows) >= 2:
        stat = dict(zip(rows[0], rows[-1]))
def num(key):
    try:
        return int(stat[key])
    except (KeyError, ValueError):
        return None

created = num("TotalCallCreated")
ok = num("SuccessfulCall(C)")
failed = num("FailedCall(C)")
retrans = num("Retransmissions(C)")
dead = num("DeadCallMsgs(C)")
ooc = num("OutOfCallMsgs(C)")
fail_kinds = {k[:-3] if k.endswith("(C)") else k: num(k) for k in stat
              if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and num(k)}

rtts = []
for p in glob.glob(os.path.join(tmp, "*_rtt.csv")):
    with open(p) as f:
        for line in f:
            parts = line.strip().split(";")
            if len(parts) >= 2:
                try:
                    rtts.append(float(parts[1]))
                except ValueError:
                    pass
rtts.sort()
def pct(q):
    if not rtts:
        return "n/a"
    v = rtts[max(0, math.ceil(q * len(rtts)) - 1)]
    return "<1" if v < 1 else f"{v:.0f}"

def metric_sums(name):
    out = {}
    try:
        with open(os.path.join(tmp, name)) as f:
            for line in f:
                m = re.match(r'shardpbx_(\w+)_total\{shard="(\d+)"\} (\d+)', line)
                if m:
                    out.setdefault(m.group(1), {})[int(m.group(2))] = int(m.group(3))
    except OSError:
        pass
    return out
before, after = metric_sums("metrics-before.txt"), metric_sums("metrics-after.txt")
def delta(name):
    a = after.get(name, {})
    b = before.get(name, {})
    return sum(a.values()) - sum(b.values()) if a else None
shards_used = len(after.get("registers", {})) or "?"

cpu_s = (cpu1 - cpu0) / clk
sipp_cpu = None
try:
    line = open(os.path.join(tmp, "sipp.times")).read().splitlines()[1]
    sipp_cpu = sum(int(m) * 60 + float(sec) for m, sec in re.findall(r"(\d+)m([\d.]+)s", line))
except (OSError, IndexError, ValueError):
    pass
def fmt(v, spec="{}"):
    return "n/a" if v is None else spec.format(v)

print()
print(f"REGISTER benchmark  users={users} rate={rate}/s duration={duration}s shards={shards} "
      f"(running: {shards_used}) perf={perf} limit={limit} sipp -t {transport}")
if sipp_rc == 124 or sipp_rc == 137:
    print(f"  WARNING: sipp hit the hard timeout (rc {sipp_rc}); figures are partial")
print(f"  calls attempted      {fmt(created)} (asked for {calls})")
print(f"  successful           {fmt(ok)}")
print(f"  failed               {fmt(failed)}" + (f"  {fail_kinds}" if fail_kinds else ""))
print(f"  sipp wall time       {wall:.2f} s (sipp exit {sipp_rc})")
print(f"  achieved rate        {fmt(ok / wall if ok is not None and wall > 0 else None, '{:.0f}')} registrations/s")
print(f"  response time        p50 {pct(0.50)} ms  p99 {pct(0.99)} ms  "
      f"max {rtts[-1] if rtts else float('nan'):.0f} ms  ({len(rtts)} samples, REGISTER -> 401 -> REGISTER -> 200;"
      " sipp's clock has 1 ms steps)")
print(f"  sipp retransmissions {fmt(retrans)}  out-of-call msgs {fmt(ooc)}  dead-call msgs {fmt(dead)}")
print(f"  UDP receive drops    {srv_drops} on the server's SIP socket(s), {rcvbuf_errs} RcvbufErrors system-wide"
      " (the rest are sipp's socket or other programs)")
print(f"  server CPU           {cpu_s:.2f} s over the run = {cpu_s / wall * 100 if wall > 0 else 0:.0f}% of one core")
print(f"  server CPU per reg   {fmt(cpu_s * 1e6 / ok if ok else None, '{:.1f}')} µs per successful registration")
sys_s = int(sys_ticks) / clk
print(f"    in the kernel      {fmt(sys_s * 1e6 / ok if ok else None, '{:.1f}')} µs of it (stime)")
print(f"  sipp CPU             {fmt(sipp_cpu, '{:.2f}')} s = {fmt(sipp_cpu / wall * 100 if sipp_cpu is not None and wall > 0 else None, '{:.0f}')}% of one core (same 2 cores)")
print(f"  server idle CPU      {(int(idle1) - int(idle0)) / clk / 2 * 100:.1f}% of one core (2 s before the load)")
def threads(name):
    out = {}
    try:
        for line in open(os.path.join(tmp, name)):
            tid, comm, ticks = line.split()
            out[tid] = (comm, int(ticks))
    except OSError:
        pass
    return out
tb, ta = threads("threads-before.txt"), threads("threads-after.txt")
by_name = {}
for tid, (comm, ticks) in ta.items():
    by_name[comm] = by_name.get(comm, 0) + ticks - tb.get(tid, (comm, 0))[1]
if by_name:
    print("  CPU by thread        " + "  ".join(
        f"{c}={t / clk:.2f}s" for c, t in sorted(by_name.items(), key=lambda kv: -kv[1]) if t))
print(f"  bindings stored      {bindings} (expected {min(int(users), int(ok or 0))} after the run)")
keys = ["rx_datagrams", "registers", "registrations_ok", "auth_challenges", "auth_failures",
        "retransmissions", "handoff_out", "handoff_dropped", "dropped", "parse_errors", "tx_errors"]
if after:
    print("  server counters      " + "  ".join(f"{k}={fmt(delta(k))}" for k in keys))
print(f"  server stop          exit status {stop_status} after SIGTERM")
EOF

# Unexpected messages / errors sipp saw, and server warnings: first lines only.
if [[ -s "$TMP/errors.log" ]]; then
    echo "  sipp errors (first 5 of $(grep -c . "$TMP/errors.log") lines):"
    head -n 5 "$TMP/errors.log" | sed 's/^/    /'
fi
if grep -qiE ' (WARN|ERROR) ' "$TMP/server.log"; then
    echo "  server warnings/errors (first 5):"
    grep -iE ' (WARN|ERROR) ' "$TMP/server.log" | head -n 5 | sed 's/^/    /'
fi

if [[ "$SIPP_RC" != 0 ]]; then exit 1; fi
