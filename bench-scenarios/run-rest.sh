#!/usr/bin/env bash
# REST-load benchmark: does a wrk load on the REST API slow down SIP call setup?
# N held calls keep the server busy with live dialogs; a probe of new calls
# measures the setup time (INVITE -> 200) twice: (a) with no REST load, (b) while
# two wrk processes hammer GET /ami/v1/health and GET /console/calls/active
# (the latter with a read-scope API token). Everything runs on 127.0.0.1.
#
# usage: bench-scenarios/run-rest.sh [--live N] [--probe-rate R] [--phase S]
#            [--shards K] [--bin PATH] [--keep]
#
#   --live N        held calls (sipp built-in uac, -r 200 -m N -l N, a long -d pause)
#                   that must show in /ami/v1/health activeCalls before the probes (1000)
#   --probe-rate R  probe calls per second, sipp built-in uac with -d 500 (20)
#   --phase S       seconds of each probe phase: -m R*S calls; wrk runs S+3 s,
#                   starting 1 s before the probe so it covers the probe's tail (20)
#   --shards K      [runtime] shards of the generated config (2)
#   --bin PATH      the shardpbx binary (target/release/shardpbx; built with
#                   `cargo build --release` when it is missing or too old to have
#                   the `token` subcommand)
#   --keep          keep the temp dir (config, server log, sipp and wrk output) and
#                   print its path
#
# Setup: the config of run-calls.sh --no-auth (callers come from a trunk with
# inbound_hosts = ["127.0.0.1"], so sipp's built-in uac needs no digest; the callee
# is a sipp built-in uas registered as 1002) with media_proxy = "none", so held
# calls cost no RTP. wrk (Debian package `wrk`) is installed with apt-get when it
# is not on PATH. Each wrk is `-t1 -c8 --latency`.
#
# Prints: live calls confirmed (before (a), before (b), after (b)); per phase the
# probe calls ok/failed, setup time p50/p99/max (sipp rtd, 1 ms steps), server CPU
# (utime+stime from /proc/PID/stat) and whole-machine CPU over the probe; wrk
# requests/s, latency and errors per endpoint; the p99 increase (b) vs (a) and
# PASS/FAIL against the 10% target.
# Exit status: 0 PASS, 1 FAIL (p99 up more than 10%, failed probe calls, live calls
# lost or REST errors), 2 setup error.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"

LIVE=1000
PROBE_RATE=20
PHASE=20
SHARDS=2
BIN="$REPO/target/release/shardpbx"
BIN_GIVEN=0
KEEP=0
LIVE_RATE=200          # held calls set up per second
PROBE_TALK_MS=500      # probe calls: pause between ACK and BYE
TARGET_PCT=10

die() { echo "run-rest: $*" >&2; exit 2; }
note() { echo "run-rest: $*" >&2; }
need_int() { [[ "$2" =~ ^[0-9]+$ ]] && (( "$2" > 0 )) || die "$1 needs a positive integer, got '$2'"; }

while (( $# > 0 )); do
    case "$1" in
        --live) need_int "$1" "${2-}"; LIVE="$2"; shift 2 ;;
        --probe-rate) need_int "$1" "${2-}"; PROBE_RATE="$2"; shift 2 ;;
        --phase) need_int "$1" "${2-}"; PHASE="$2"; shift 2 ;;
        --shards) need_int "$1" "${2-}"; SHARDS="$2"; shift 2 ;;
        --bin) [[ -n "${2-}" ]] || die "--bin needs a path"; BIN="$(realpath -m "$2")"; BIN_GIVEN=1; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

# --- tools --------------------------------------------------------------------
command -v sipp >/dev/null || die "sipp is not installed (scripts/install-deps.sh)"
command -v python3 >/dev/null || die "python3 is not installed"
command -v curl >/dev/null || die "curl is not installed"
if ! command -v wrk >/dev/null; then
    note "installing wrk (Debian package wrk)"
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null || die "apt-get install wrk failed"
    command -v wrk >/dev/null || die "wrk still missing after apt-get"
fi

has_token_cmd() { "$BIN" token --help >/dev/null 2>&1; }
if [[ ! -x "$BIN" ]] || ! has_token_cmd; then
    (( BIN_GIVEN == 0 )) || die "$BIN is not an executable shardpbx with the 'token' subcommand"
    note "$BIN missing or without 'token', running cargo build --release"
    (cd "$REPO" && timeout 3600 cargo build --release) || die "cargo build --release failed"
    has_token_cmd || die "$BIN still has no 'token' subcommand"
fi
if (( BIN_GIVEN == 0 )) && [[ -n "$(find "$REPO/src" "$REPO/shards" -name '*.rs' -newer "$BIN" -print -quit 2>/dev/null)" ]]; then
    note "warning: sources are newer than $BIN (run cargo build --release to measure the current code)"
fi

CLK_TCK="$(getconf CLK_TCK)"
NCPU="$(nproc)"
PROBE_CALLS=$(( PROBE_RATE * PHASE ))
PROBE_LIMIT=$(( PROBE_RATE * 2 + 10 ))
PROBE_TIMEOUT=$(( PHASE + 30 ))
WRK_SECS=$(( PHASE + 3 ))
LIVE_UP_SECS=$(( LIVE / LIVE_RATE + 30 ))          # bound on waiting for the held calls
# Held calls outlive the run (teardown kills them): setup + settle + two phases + slack.
HOLD_S=$(( PHASE * 3 + 30 ))
MIN_HOLD=$(( LIVE_UP_SECS + 2 * (PHASE + 30) + 30 ))
(( HOLD_S >= MIN_HOLD )) || HOLD_S=$MIN_HOLD
UAS_TIMEOUT=$(( HOLD_S + 120 ))

TMP="$(mktemp -d "${TMPDIR:-/tmp}/shardpbx-bench-rest.XXXXXX")"
SRV_PID=""
BG_PIDS=()   # `timeout` wrappers of sipp and wrk (TERM is passed on to the child)

BENCH=run-rest
# shellcheck source=bench-scenarios/lib.sh
source "$SCRIPT_DIR/lib.sh"

stop_bg() {
    # TERM every `timeout` wrapper still running (it passes TERM on and SIGKILLs
    # its child 5 s later), wait 10 s at most, then SIGKILL the wrapper.
    local pid i
    for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${BG_PIDS[@]}"; do
        for (( i = 0; i < 100; i++ )); do
            kill -0 "$pid" 2>/dev/null || break
            [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == "Z" ]] && break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    BG_PIDS=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_bg
    stop_server
    if (( KEEP )); then
        note "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ports, config, token -----------------------------------------------------
# SIP (UDP), HTTP (TCP), the uas, the held-call uac, the probe uac, and a media
# port for each sipp (sipp binds one even though these scenarios send no RTP).
# All above 40000, outside the RTP range 20000-39999 the SIP port must not be in.
read -r SIP_PORT HTTP_PORT UAS_PORT HELD_PORT PROBE_PORT UAS_MP HELD_MP PROBE_MP < <(python3 - <<'EOF'
import random, socket
ports, socks = [], []
for _ in range(500):
    p = random.randint(40000, 64000) & ~3     # media ports want p..p+3 free
    if any(abs(p - q) < 4 for q in ports):
        continue
    try:
        for q in range(p, p + 4):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", q)); socks.append(u)
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", q)); socks.append(t)
    except OSError:
        continue
    ports.append(p)
    if len(ports) == 8:
        break
print(*ports)
EOF
)
[[ -n "${PROBE_MP:-}" ]] || die "could not find eight free ports"

CFG="$TMP/shardpbx.toml"
printf '[trunks.loadgen]\ninbound_hosts = ["127.0.0.1"]\n' > "$TMP/trunks.toml"
cat > "$CFG" <<EOF
# generated by bench-scenarios/run-rest.sh
http_addr = "127.0.0.1:$HTTP_PORT"
data_dir = "$TMP/data"
log_level = "warn"

[runtime]
shards = $SHARDS

[proxy]
addr = "127.0.0.1"
udp_port = $SIP_PORT
realms = ["127.0.0.1"]
routes_files = []
trunks_files = ["$TMP/trunks.toml"]
max_ring_time = 30
media_proxy = "none"
[[proxy.user_backends]]
type = "memory"
users = [{ username = "1002", password = "secret1002" }]
EOF

# The token is minted into a fresh data_dir before the server starts (the CLI
# creates the store); the server reads tokens from the store per request.
TOKEN="$(timeout 60 "$BIN" token create --name bench --scopes read --config "$CFG" 2>"$TMP/token.err" | tail -n1)" \
    || die "token create failed: $(cat "$TMP/token.err")"
[[ -n "$TOKEN" ]] || die "token create printed no token"

# --- server -------------------------------------------------------------------
"$BIN" run --config "$CFG" >"$TMP/server.log" 2>&1 &
SRV_PID=$!

health() { curl -s --max-time 3 "http://127.0.0.1:$HTTP_PORT/ami/v1/health" 2>/dev/null || true; }
active_calls() {
    # activeCalls of /ami/v1/health, or -1 when it does not answer.
    health | python3 -c 'import json,sys
try: print(int(json.load(sys.stdin)["activeCalls"]))
except Exception: print(-1)'
}
alive() { [[ -n "$SRV_PID" ]] && kill -0 "$SRV_PID" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$SRV_PID/stat" 2>/dev/null)" != "Z" ]]; }

ready=0
for (( i = 0; i < 100; i++ )); do          # 20 s at most
    alive || break
    if [[ "$(active_calls)" -ge 0 ]]; then ready=1; break; fi
    sleep 0.2
done
if (( ! ready )); then
    echo "--- server log ---" >&2; tail -n 40 "$TMP/server.log" >&2 || true
    die "server not ready (GET /ami/v1/health) within 20 s"
fi

# --- callee: sipp uas registered as 1002 -------------------------------------
mkdir -p "$TMP/uas" "$TMP/held" "$TMP/probe-a" "$TMP/probe-b"
(cd "$TMP/uas" && exec timeout --kill-after=5 "$UAS_TIMEOUT" sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -mp "$UAS_MP" \
    -nostdin -buff_size 4194304 -trace_err -error_file errors.log > uas.out 2>&1) &
BG_PIDS+=($!)

python3 - "$SIP_PORT" "$UAS_PORT" <<'PY' || die "callee registration (1002) failed"
import hashlib, re, socket, sys, time
sip, uas = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(1)
me = "127.0.0.1:%d" % s.getsockname()[1]
def reg(cseq, auth=""):
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg{cseq};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:1002@127.0.0.1>;tag=1\r\nTo: <sip:1002@127.0.0.1>\r\n"
            f"Call-ID: bench-rest-reg\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1002@127.0.0.1:{uas}>\r\n"
            f"{auth}Expires: 3600\r\nContent-Length: 0\r\n\r\n").encode()
h = lambda x: hashlib.md5(x.encode()).hexdigest()
for attempt in range(10):
    try:
        cseq = 2 * attempt + 1
        s.sendto(reg(cseq), ("127.0.0.1", sip)); r = s.recv(4096).decode()
        nonce = re.search('nonce="([^"]+)"', r).group(1)
        resp = h(f"{h('1002:127.0.0.1:secret1002')}:{nonce}:00000001:c:auth:{h('REGISTER:sip:127.0.0.1')}")
        s.sendto(reg(cseq + 1, f'Authorization: Digest username="1002", realm="127.0.0.1", nonce="{nonce}", '
                      f'uri="sip:127.0.0.1", response="{resp}", cnonce="c", nc=00000001, qop=auth\r\n'),
                 ("127.0.0.1", sip))
        if s.recv(4096).startswith(b"SIP/2.0 200"):
            sys.exit(0)
    except (socket.timeout, AttributeError):
        pass
    time.sleep(0.5)
sys.exit("no 200 to REGISTER 1002 after 10 tries")
PY

# --- helpers for the phases ----------------------------------------------------
proc_ticks() {
    # utime + stime of a whole process (all threads), in clock ticks.
    python3 -c 'import sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print(int(f[11])+int(f[12]))' "$1"
}
machine_ticks() {
    # "busy total" jiffies of the whole machine (/proc/stat cpu line; idle+iowait are not busy).
    awk '/^cpu /{t=0; for(i=2;i<=9;i++) t+=$i; print t-$5-$6, t; exit}' /proc/stat
}
thread_ticks() {
    # "name ticks" per live thread of the server, summed by name.
    python3 - "$1" <<'PY'
import os, sys
base = f"/proc/{sys.argv[1]}/task"
out = {}
for tid in os.listdir(base):
    try:
        raw = open(f"{base}/{tid}/stat").read()
    except OSError:
        continue
    name = raw[raw.index("(") + 1:raw.rindex(")")].replace(" ", "_")
    f = raw.rsplit(")", 1)[1].split()
    out[name] = out.get(name, 0) + int(f[11]) + int(f[12])
for k, v in out.items():
    print(k, v)
PY
}

WAIT_RC=0
wait_bounded() {
    # wait for a background pid, at most $2 s (its own `timeout` is the real bound);
    # sets WAIT_RC (not a $(...) subshell: only this shell can wait for its children).
    local pid="$1" secs="$2" i rc=0
    for (( i = 0; i < secs * 10; i++ )); do
        kill -0 "$pid" 2>/dev/null || break
        [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == "Z" ]] && break
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || rc=$?
    WAIT_RC="$rc"
}

run_probe() {
    # run_probe DIR: the probe sipp in DIR; records CPU/wall around it into DIR/window.
    local dir="$1" pid rc c0 c1 m0 m1 t0 t1
    thread_ticks "$SRV_PID" > "$dir/threads-before.txt"
    c0="$(proc_ticks "$SRV_PID")"; m0="$(machine_ticks)"; t0="$(date +%s.%N)"
    (cd "$dir" && exec timeout --kill-after=5 "$PROBE_TIMEOUT" sipp 127.0.0.1:"$SIP_PORT" -sn uac -s 1002 \
        -i 127.0.0.1 -p "$PROBE_PORT" -mp "$PROBE_MP" -buff_size 4194304 -nostdin \
        -r "$PROBE_RATE" -m "$PROBE_CALLS" -l "$PROBE_LIMIT" -d "$PROBE_TALK_MS" \
        -trace_rtt -rtt_freq 1 -trace_stat -stf stat.csv -fd 1 \
        -trace_err -error_file errors.log > sipp.out 2>&1) &
    pid=$!
    BG_PIDS+=("$pid")
    wait_bounded "$pid" $(( PROBE_TIMEOUT + 15 )); rc="$WAIT_RC"
    t1="$(date +%s.%N)"; c1="$(proc_ticks "$SRV_PID")"; m1="$(machine_ticks)"
    thread_ticks "$SRV_PID" > "$dir/threads-after.txt"
    echo "$rc $t0 $t1 $c0 $c1 $m0 $m1" > "$dir/window"
}

wait_live() {
    # wait_live WANT SECS: poll activeCalls until it equals WANT (SECS at most); prints the last value.
    local want="$1" secs="$2" n=-1 i
    for (( i = 0; i < secs * 4; i++ )); do
        n="$(active_calls)"
        [[ "$n" == "$want" ]] && break
        alive || break
        sleep 0.25
    done
    echo "$n"
}

# --- held calls ------------------------------------------------------------------
note "shardpbx pid $SRV_PID sip 127.0.0.1:$SIP_PORT http :$HTTP_PORT shards=$SHARDS; setting up $LIVE held calls at $LIVE_RATE/s (hold ${HOLD_S}s)"
(cd "$TMP/held" && exec timeout --kill-after=5 "$UAS_TIMEOUT" sipp 127.0.0.1:"$SIP_PORT" -sn uac -s 1002 \
    -i 127.0.0.1 -p "$HELD_PORT" -mp "$HELD_MP" -buff_size 4194304 -nostdin \
    -r "$LIVE_RATE" -m "$LIVE" -l "$LIVE" -d $(( HOLD_S * 1000 )) \
    -trace_stat -stf stat.csv -fd 1 -trace_err -error_file errors.log > sipp.out 2>&1) &
HELD_PID=$!
BG_PIDS+=("$HELD_PID")

LIVE_A="$(wait_live "$LIVE" "$LIVE_UP_SECS")"
if [[ "$LIVE_A" != "$LIVE" ]]; then
    echo "--- held sipp ---" >&2; tail -n 5 "$TMP/held/sipp.out" >&2 || true
    die "only $LIVE_A of $LIVE held calls are up after ${LIVE_UP_SECS}s (activeCalls)"
fi
note "$LIVE_A live calls confirmed; settling 2 s"
sleep 2

# The token works and the endpoint answers (also: the list has the held calls).
CONSOLE_CHECK="$(curl -s --max-time 10 -o "$TMP/active.json" -w '%{http_code}' \
    -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP_PORT/console/calls/active" || true)"
[[ "$CONSOLE_CHECK" == 200 ]] || die "GET /console/calls/active with the token answered '$CONSOLE_CHECK'"
CONSOLE_ITEMS="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$TMP/active.json" 2>/dev/null || echo '?')"
CONSOLE_BYTES="$(stat -c %s "$TMP/active.json")"

# --- (a) probe without REST load ---------------------------------------------------
LIVE_A="$(active_calls)"
note "(a) probe: $PROBE_CALLS calls at $PROBE_RATE/s, no REST load"
run_probe "$TMP/probe-a"
LIVE_MID="$(wait_live "$LIVE" 10)"     # probe calls end 0.5 s after their 200

# --- (b) probe under REST load -----------------------------------------------------
note "(b) probe: $PROBE_CALLS calls at $PROBE_RATE/s while wrk loads /ami/v1/health and /console/calls/active"
sleep 2
(exec timeout --kill-after=5 $(( WRK_SECS + 20 )) wrk -t1 -c8 -d"${WRK_SECS}s" --latency \
    "http://127.0.0.1:$HTTP_PORT/ami/v1/health" > "$TMP/wrk-health.out" 2>&1) &
WRK1=$!; BG_PIDS+=("$WRK1")
(exec timeout --kill-after=5 $(( WRK_SECS + 20 )) wrk -t1 -c8 -d"${WRK_SECS}s" --latency \
    -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$HTTP_PORT/console/calls/active" > "$TMP/wrk-active.out" 2>&1) &
WRK2=$!; BG_PIDS+=("$WRK2")
sleep 1
run_probe "$TMP/probe-b"
wait_bounded "$WRK1" $(( WRK_SECS + 30 )); WRK1_RC="$WAIT_RC"
wait_bounded "$WRK2" $(( WRK_SECS + 30 )); WRK2_RC="$WAIT_RC"
LIVE_END="$(wait_live "$LIVE" 10)"

# --- teardown --------------------------------------------------------------------------
stop_bg            # held calls' sipp (no BYE: the server is stopped next), the uas
stop_server

# --- report ------------------------------------------------------------------------------
set +e
python3 - "$TMP" "$LIVE" "$LIVE_A" "$LIVE_MID" "$LIVE_END" "$PROBE_RATE" "$PHASE" "$PROBE_CALLS" \
    "$SHARDS" "$CLK_TCK" "$NCPU" "$WRK_SECS" "$WRK1_RC" "$WRK2_RC" "$STOP_STATUS" "$TARGET_PCT" \
    "$CONSOLE_ITEMS" "$CONSOLE_BYTES" <<'EOF'
import csv, glob, math, os, re, sys
(tmp, live, live_a, live_mid, live_end, rate, phase, probe_calls, shards, clk, ncpu,
 wrk_secs, wrk1_rc, wrk2_rc, stop_status, target, console_items, console_bytes) = sys.argv[1:]
live, clk, ncpu, target = int(live), int(clk), int(ncpu), float(target)
fails = []

def sipp_stat(d):
    p = os.path.join(d, "stat.csv")
    try:
        with open(p, newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=";") if r]
        return dict(zip(rows[0], rows[-1])) if len(rows) >= 2 else {}
    except OSError:
        return {}

def num(st, k):
    try:
        return int(st[k])
    except (KeyError, ValueError):
        return None

def rtts(d):
    out = []
    for p in glob.glob(os.path.join(d, "*_rtt.csv")):
        for line in open(p):
            parts = line.strip().split(";")
            if len(parts) >= 2:
                try:
                    out.append(float(parts[1]))
                except ValueError:
                    pass
    return sorted(out)

def pct(v, q):
    return v[max(0, math.ceil(q * len(v)) - 1)] if v else None

def threads(path):
    out = {}
    try:
        for line in open(path):
            name, t = line.split()
            out[name] = int(t)
    except OSError:
        pass
    return out

phases = {}
for key in ("a", "b"):
    d = os.path.join(tmp, f"probe-{key}")
    st = sipp_stat(d)
    rc, t0, t1, c0, c1, m0b, m0t, m1b, m1t = open(os.path.join(d, "window")).read().split()
    wall = float(t1) - float(t0)
    v = rtts(d)
    tb, ta = threads(os.path.join(d, "threads-before.txt")), threads(os.path.join(d, "threads-after.txt"))
    by = {n: (ta[n] - tb.get(n, 0)) / clk for n in ta}
    phases[key] = dict(
        rc=int(rc), wall=wall, created=num(st, "TotalCallCreated"), ok=num(st, "SuccessfulCall(C)"),
        failed=num(st, "FailedCall(C)"), retrans=num(st, "Retransmissions(C)"), rtts=v,
        p50=pct(v, 0.50), p99=pct(v, 0.99), max=v[-1] if v else None,
        cpu=(int(c1) - int(c0)) / clk,
        machine=(int(m1b) - int(m0b)) / max(1, int(m1t) - int(m0t)) * 100,
        threads=by)

def wrk(path):
    r = {"rps": None, "requests": None, "non2xx": 0, "errors": None, "p50": None, "p99": None, "max": None}
    try:
        text = open(path).read()
    except OSError:
        return r
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", text)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", text)
    r["errors"] = m.group(1).strip() if m else None
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", text, re.M)
        r["p" + q] = m.group(1) if m else None
    m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", text, re.M)
    r["max"] = m.group(1) if m else None
    return r

w_health, w_active = wrk(os.path.join(tmp, "wrk-health.out")), wrk(os.path.join(tmp, "wrk-active.out"))

def ms(v):
    return "n/a" if v is None else ("<1" if v < 1 else f"{v:.0f}")
def f(v, spec="{}"):
    return "n/a" if v is None else spec.format(v)

print()
print(f"REST-load benchmark  live={live} probe={rate}/s x {phase}s ({probe_calls} calls/phase) shards={shards} "
      f"media_proxy=none, wrk -t1 -c8 -d{wrk_secs}s x2, {ncpu} CPUs shared by all")
print(f"  live calls           {live_a} before (a), {live_mid} before (b), {live_end} after (b) "
      f"(GET /ami/v1/health activeCalls; asked for {live})")
for n in (live_a, live_mid, live_end):
    if n != str(live):
        fails.append(f"live calls {n} != {live}")
        break
for key, title in (("a", "(a) no REST load"), ("b", "(b) under REST load")):
    p = phases[key]
    print(f"  {title}")
    print(f"    probe calls        ok {f(p['ok'])}, failed {f(p['failed'])}, created {f(p['created'])} "
          f"(asked {probe_calls}), sipp exit {p['rc']}, retransmissions {f(p['retrans'])}")
    print(f"    setup time         p50 {ms(p['p50'])} ms  p99 {ms(p['p99'])} ms  max {ms(p['max'])} ms  "
          f"({len(p['rtts'])} samples, INVITE -> 200, sipp rtd, 1 ms steps)")
    print(f"    server CPU         {p['cpu']:.2f} s over {p['wall']:.1f} s = {p['cpu'] / p['wall'] * 100:.0f}% of one core"
          f"  (machine: {p['machine']:.0f}% of {ncpu} CPUs busy)")
    top = sorted(((n, t) for n, t in p["threads"].items() if t > 0), key=lambda kv: -kv[1])[:6]
    if top:
        print("    by thread          " + "  ".join(f"{n}={t:.2f}s" for n, t in top))
    if p["failed"] or p["ok"] is None or p["ok"] < int(probe_calls) or p["rc"] != 0:
        fails.append(f"probe {key}: ok {p['ok']} of {probe_calls}, failed {p['failed']}, sipp exit {p['rc']}")
print("  REST load during (b)")
for name, w, rc in (("/ami/v1/health", w_health, wrk1_rc), (f"/console/calls/active ({console_items} items, {console_bytes} B)", w_active, wrk2_rc)):
    print(f"    {name:<40} {f(w['rps'], '{:.0f}')} req/s  ({f(w['requests'])} requests, non-2xx {w['non2xx']}, "
          f"latency p50 {f(w['p50'])} p99 {f(w['p99'])} max {f(w['max'])}"
          + (f", socket errors: {w['errors']}" if w["errors"] else "") + f", wrk exit {rc})")
    if w["rps"] is None or w["non2xx"] or w["errors"] or rc != "0":
        fails.append(f"REST {name.split()[0]}: errors (non-2xx {w['non2xx']}, {w['errors'] or 'no socket errors'}, exit {rc})")
a99, b99 = phases["a"]["p99"], phases["b"]["p99"]
if a99 is None or b99 is None:
    inc = None
    fails.append("no setup-time samples")
elif a99 == 0:
    inc = 0.0 if b99 == 0 else math.inf
else:
    inc = (b99 - a99) / a99 * 100
inc_s = "n/a" if inc is None else ("+inf" if math.isinf(inc) else f"{inc:+.1f}%")
print(f"  p99 setup time       {ms(a99)} ms -> {ms(b99)} ms = {inc_s} (target: at most +{target:.0f}%)"
      + (f"; the step is 1 ms, so at p99 = {ms(a99)} ms one step is "
         f"{(100 / a99) if a99 else math.inf:.0f}%" if a99 is not None and a99 < 20 else ""))
if inc is not None and inc > target:
    fails.append(f"p99 setup time up {inc_s}")
print(f"  server stop          exit status {stop_status} after SIGTERM")
if fails:
    print("  RESULT               FAIL: " + "; ".join(fails))
    sys.exit(1)
print("  RESULT               PASS")
EOF
RC=$?
set -e

for d in held probe-a probe-b uas; do
    if [[ -s "$TMP/$d/errors.log" ]]; then
        echo "  sipp $d errors (first 3 of $(grep -c . "$TMP/$d/errors.log") lines):"
        head -n 3 "$TMP/$d/errors.log" | sed 's/^/    /'
    fi
done
if grep -qiE '(WARN|ERROR)' "$TMP/server.log"; then
    echo "  server warnings/errors (first 5):"
    grep -iE '(WARN|ERROR)' "$TMP/server.log" | head -n 5 | sed 's/^/    /'
fi
exit "$RC"
