#!/usr/bin/env bash
# RTP relay benchmark: N concurrent G.711 calls (50 packets/s each way) through
# ShardPBX's media relay, against the kernel's floor (a recvmmsg/sendmmsg UDP
# reflector), all on 127.0.0.1 with the generator on the same machine.
#
# usage: bench-scenarios/run-rtp.sh [--calls N] [--seconds S] [--shards K] [--bin PATH]
#                                   [--setup-rate R] [--reflector-streams M] [--perf FILE] [--keep]
#
#   --calls N              concurrent calls (default 800)
#   --seconds S            media time of each run (default 20)
#   --shards K             [runtime] shards of the generated config (default 2)
#   --bin PATH             the server (default target/release/shardpbx; `cargo build
#                          --release` when the default is missing)
#   --setup-rate R         calls set up per second (default 200)
#   --perf FILE            perf profile passed to `shardpbx run --perf`
#   --reflector-streams M  streams in the reflector run (default 2*N: the same packet
#                          rate as the relay run, which carries N calls x 2 directions)
#   --kernel-forwarding M  [media] kernel_forwarding of the generated config: auto
#                          (default: steady streams relayed in the kernel where it
#                          allows) or off (user space only)
#   --skip-reflector       only the ShardPBX run
#   --skip-pbx             only the reflector run
#   --keep                 keep the temp dir (config, logs, generator output, /metrics)
#
# (a) reflector run: bench-scenarios/rtp-load's rtp-reflector (perf/rtp_reflector.rs)
#     on a free port; rtp-load --reflector sends M streams from one socket and counts
#     the echoes. The reflector's utime+stime (/proc/PID/stat, CLK_TCK ticks) between
#     the generator's MEDIA START and MEDIA END markers / packets reflected = its CPU
#     per packet (one datagram in, one out).
# (b) ShardPBX run: a config in a temp dir (media_proxy = "always"), a trunk whose
#     dest is the generator and a route ^load -> that trunk; rtp-load --pbx is caller
#     and callee of every call. Server CPU over the same markers / the delta of
#     sum(shardpbx_rtp_tx_total) = its CPU per relayed packet. RSS (VmRSS) before the
#     calls and the highest seen during the media phase -> RSS per call.
#
# Every wait is bounded (generator under `timeout`, marker polls, server stop 15 s).
# Exit 0 when the runs completed (targets met or not), 1 on setup errors.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
CALLS=800 MEDIA_S=20 SHARDS=2 BIN="$REPO/target/release/shardpbx" KEEP=0 RATE=200 RSTREAMS=""
DO_REFL=1 DO_PBX=1 PERF=() KFWD=auto
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
while (( $# > 0 )); do
  case "$1" in
    --calls) CALLS="$2"; shift 2 ;;
    --seconds) MEDIA_S="$2"; shift 2 ;;
    --shards) SHARDS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --setup-rate) RATE="$2"; shift 2 ;;
    --reflector-streams) RSTREAMS="$2"; shift 2 ;;
    --kernel-forwarding) KFWD="$2"; shift 2 ;;
    --skip-reflector) DO_REFL=0; shift ;;
    --skip-pbx) DO_PBX=0; shift ;;
    --keep) KEEP=1; shift ;;
    --perf) PERF=(--perf "$(realpath "$2")"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run-rtp: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in CALLS MEDIA_S SHARDS RATE; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && (( ${!v} > 0 )) || { echo "run-rtp: bad ${v} '${!v}'" >&2; exit 2; }
done
RSTREAMS="${RSTREAMS:-$(( 2 * CALLS ))}"
fail() { echo "run-rtp: $*" >&2; exit 1; }

LOADDIR="$SCRIPT_DIR/rtp-load"
LOAD="$LOADDIR/target/release/rtp-load"
REFL="$LOADDIR/target/release/rtp-reflector"
if [[ ! -x "$LOAD" || ! -x "$REFL" ]]; then
  cargo build --release --manifest-path "$LOADDIR/Cargo.toml" \
    || cargo build --release --offline --manifest-path "$LOADDIR/Cargo.toml" \
    || fail "cannot build rtp-load"
fi
if (( DO_PBX )) && [[ ! -x "$BIN" ]]; then
  [[ "$BIN" == "$REPO/target/release/shardpbx" ]] || fail "$BIN is not executable"
  (cd "$REPO" && cargo build --release) || fail "cannot build shardpbx"
fi
command -v python3 >/dev/null || fail "python3 missing"

TMP="$(mktemp -d)"
STARTED=()   # pids this script started
cleanup() {
  local p
  for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if (( KEEP )); then echo "run-rtp: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port in 41000-48999 (outside the RTP range 30000-34000 used below):
# udp, tcp, or "pair" (UDP P and P+2, P even: the generator's two RTP sockets).
free_port() {
  python3 - "$1" <<'PY'
import random, socket, sys
kind = sys.argv[1]
def ok(p, t):
    s = socket.socket(socket.AF_INET, t)
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    p = random.randrange(41000, 48998, 2)
    if kind == "tcp" and ok(p, socket.SOCK_STREAM): print(p); break
    if kind == "udp" and ok(p, socket.SOCK_DGRAM): print(p); break
    if kind == "pair" and ok(p, socket.SOCK_DGRAM) and ok(p + 2, socket.SOCK_DGRAM): print(p); break
else:
    sys.exit(1)
PY
}
TICK=$(getconf CLK_TCK)
# "utime stime" of the whole process (all threads), in ticks; comm may hold spaces.
cpu_us() { local s; read -r s < "/proc/$1/stat"; s="${s##*) }"; set -- $s; echo "${12} ${13}"; }
cpu_ticks() { local u s; read -r u s < <(cpu_us "$1"); echo $(( u + s )); }
# The machine: the "cpu" line of /proc/stat (user nice system idle iowait irq softirq steal).
machine() { local l; read -r l < /proc/stat; echo "${l#cpu }"; }
# "tid comm ticks" of every thread of PID.
thread_ticks() {
  local t s c
  for t in /proc/"$1"/task/*; do
    { read -r s < "$t/stat"; } 2>/dev/null || continue
    { read -r c < "$t/comm"; } 2>/dev/null || c=?
    s="${s##*) }"; set -- $s; echo "${t##*/} ${c// /_} $(( ${12} + ${13} ))"
  done
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
alive() { kill -0 "$1" 2>/dev/null; }

# run_gen LABEL WATCH_PID BOUND_S ARGS...: runs rtp-load under `timeout BOUND_S`,
# samples WATCH_PID's CPU (and RSS, /metrics when HTTP is set) at MEDIA START and
# MEDIA END. Sets G_RC, C0, C1 (CPU ticks), RSS_MAX (KB); samples go to
# $TMP/LABEL.{threads,us,machine,metrics}{0,1}, the generator's output to $TMP/LABEL.{out,err}.
run_gen() {
  local label="$1" watch="$2" bound="$3"; shift 3
  local out="$TMP/$label.out" err="$TMP/$label.err" g i
  : > "$err"
  timeout -k 5 "$bound" "$LOAD" "$@" > "$out" 2> "$err" & g=$!
  STARTED+=("$g")
  C0="" C1="" RSS_MAX=0
  # Each wait is bounded by BOUND_S worth of 50 ms polls and by the generator's life.
  for (( i = 0; i < (bound * 20); i++ )); do
    grep -qs '^MEDIA START' "$err" && break
    alive "$g" || break
    sleep 0.05
  done
  if grep -q '^MEDIA START' "$err"; then
    C0=$(cpu_ticks "$watch"); thread_ticks "$watch" > "$TMP/$label.threads0"
    cpu_us "$watch" > "$TMP/$label.us0"; machine > "$TMP/$label.machine0"
    [[ -n "${HTTP:-}" ]] && metrics > "$TMP/$label.metrics0"
    RSS_MAX=$(rss_kb "$watch")
    for (( i = 0; i < (bound * 20); i++ )); do
      grep -q '^MEDIA END' "$err" && break
      alive "$g" || break
      if (( i % 20 == 10 )); then local r; r=$(rss_kb "$watch"); (( r > RSS_MAX )) && RSS_MAX=$r; fi
      sleep 0.05
    done
    if grep -q '^MEDIA END' "$err"; then
      C1=$(cpu_ticks "$watch"); thread_ticks "$watch" > "$TMP/$label.threads1"
      cpu_us "$watch" > "$TMP/$label.us1"; machine > "$TMP/$label.machine1"
      [[ -n "${HTTP:-}" ]] && metrics > "$TMP/$label.metrics1"
    fi
  fi
  set +e; wait "$g"; G_RC=$?; set -e
}
metrics() { curl -s --max-time 5 "http://127.0.0.1:$HTTP/metrics" || true; }
msum() { awk -v n="$1" 'index($0, n "{") == 1 {s += $NF} END {printf "%d\n", s}' "$2" 2>/dev/null || echo 0; }
json_of() { grep '^{' "$1" | tail -1; }

REFL_JSON="" REFL_PKTS=0 REFL_CPU_TICKS=0
GEN_BOUND=$(( CALLS / RATE + 10 + MEDIA_S + 2 + 10 + 20 ))

# ---------------------------------------------------------------- (a) reflector
if (( DO_REFL )); then
  RPORT=$(free_port udp) || fail "no free port"
  "$REFL" --port "$RPORT" --seconds $(( GEN_BOUND + 30 )) > "$TMP/reflector-proc.out" 2> "$TMP/reflector-proc.err" & RPID=$!
  STARTED+=("$RPID")
  for _ in $(seq 50); do grep -qs listening "$TMP/reflector-proc.err" && break; alive "$RPID" || break; sleep 0.1; done
  grep -qs listening "$TMP/reflector-proc.err" || fail "reflector did not start: $(cat "$TMP/reflector-proc.err" 2>/dev/null)"
  echo "run-rtp: (a) reflector 127.0.0.1:$RPORT, $RSTREAMS streams for $MEDIA_S s" >&2
  HTTP="" run_gen gen-reflector "$RPID" $(( MEDIA_S + 30 )) --reflector "127.0.0.1:$RPORT" \
    --calls "$RSTREAMS" --seconds "$MEDIA_S" --json
  [[ -n "$C0" && -n "$C1" ]] || fail "reflector run: no MEDIA START/END (rc $G_RC): $(tail -5 "$TMP/gen-reflector.err")"
  kill -TERM "$RPID" 2>/dev/null || true
  for _ in $(seq 50); do alive "$RPID" || break; sleep 0.1; done
  wait "$RPID" 2>/dev/null || true
  REFL_PKTS=$(awk '/^reflected/ {print $2}' "$TMP/reflector-proc.out")
  [[ -n "$REFL_PKTS" ]] || fail "reflector printed no count"
  REFL_CPU_TICKS=$(( C1 - C0 ))
  REFL_JSON=$(json_of "$TMP/gen-reflector.out")
  grep -v '^{' "$TMP/gen-reflector.out" >&2 || true
  cat "$TMP/reflector-proc.out" >&2
fi

# ---------------------------------------------------------------- (b) ShardPBX
PBX_JSON="" SRV_CPU_TICKS="" SRV_RC="" RTP_TX=0 RTP_RX=0 RTP_DROP=0 RSS0=0 SRV_RSS_MAX=0
if (( DO_PBX )); then
  SIP=$(free_port udp) || fail "no free port"
  HTTP=$(free_port tcp) || fail "no free port"
  GSIP=$(free_port udp) || fail "no free port"
  GRTP=$(free_port pair) || fail "no free port"
  mkdir -p "$TMP/data"
  cat > "$TMP/pbx.toml" <<CFG
http_addr = "127.0.0.1:$HTTP"
data_dir = "$TMP/data"
log_level = "warn"
[runtime]
shards = $SHARDS
[proxy]
addr = "127.0.0.1"
udp_port = $SIP
realms = ["127.0.0.1"]
routes_files = ["$TMP/routes.toml"]
trunks_files = ["$TMP/trunks.toml"]
max_ring_time = 30
media_proxy = "always"
rtp_timeout = 60
[[proxy.user_backends]]
type = "memory"
users = [{ username = "1001", password = "secret1001" }]
[media]
rtp_port_start = 30000
rtp_port_end = 34000
kernel_forwarding = "$KFWD"
[ami]
drain_timeout_secs = 5
[security]
trusted = ["127.0.0.0/8"]   # the load generator: no flood limit
CFG
  cat > "$TMP/trunks.toml" <<TRUNK
[trunks.loadgen]
dest = "sip:127.0.0.1:$GSIP"
inbound_hosts = ["127.0.0.1"]
TRUNK
  cat > "$TMP/routes.toml" <<'ROUTE'
[[routes]]
name = "load"
priority = 10
match = { "source" = "loadgen", "to.user" = "^load" }  # calls from the generator's trunk, back to it
action = "forward"
dest = ["loadgen"]
ROUTE
  timeout 30 "$BIN" check-config --config "$TMP/pbx.toml" > "$TMP/check.out" 2>&1 \
    || fail "config rejected: $(cat "$TMP/check.out")"
  "$BIN" run --config "$TMP/pbx.toml" "${PERF[@]}" > "$TMP/server.out" 2> "$TMP/server.log" & SRV=$!
  STARTED+=("$SRV")
  UP=0
  for _ in $(seq 50); do
    alive "$SRV" || break
    if python3 - "$SIP" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2); s.bind(("127.0.0.1", 0))
me = s.getsockname()[1]
s.sendto(f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKprobe;rport\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: probe-rtp\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode(), ("127.0.0.1", int(sys.argv[1])))
s.recv(4096)
PY
    then UP=1; break; fi
    sleep 0.2
  done
  (( UP )) || fail "server did not answer OPTIONS on 127.0.0.1:$SIP: $(tail -20 "$TMP/server.log")"
  sleep 1
  RSS0=$(rss_kb "$SRV")
  echo "run-rtp: (b) ShardPBX pid $SRV, SIP 127.0.0.1:$SIP, $SHARDS shards, $CALLS calls at $RATE/s for $MEDIA_S s" >&2
  run_gen gen-pbx "$SRV" "$GEN_BOUND" --pbx "127.0.0.1:$SIP" --calls "$CALLS" --seconds "$MEDIA_S" \
    --setup-rate "$RATE" --sip-port "$GSIP" --rtp-port "$GRTP" --json
  grep -v '^MEDIA' "$TMP/gen-pbx.err" >&2 || true
  if [[ -z "$C0" ]]; then
    cat "$TMP/gen-pbx.out" >&2 || true
    fail "ShardPBX run: the generator never reached the media phase (rc $G_RC)"
  fi
  [[ -n "$C1" ]] || fail "ShardPBX run: no MEDIA END (rc $G_RC)"
  if (( G_RC == 3 )); then
    cat "$TMP/gen-pbx.out" >&2 || true
    fail "ShardPBX run: no call was set up (server log: $(tail -5 "$TMP/server.log"))"
  fi
  SRV_CPU_TICKS=$(( C1 - C0 ))
  SRV_RSS_MAX=$RSS_MAX
  RTP_TX=$(( $(msum shardpbx_rtp_tx_total "$TMP/gen-pbx.metrics1") - $(msum shardpbx_rtp_tx_total "$TMP/gen-pbx.metrics0") ))
  RTP_RX=$(( $(msum shardpbx_rtp_rx_total "$TMP/gen-pbx.metrics1") - $(msum shardpbx_rtp_rx_total "$TMP/gen-pbx.metrics0") ))
  RTP_DROP=$(( $(msum shardpbx_rtp_dropped_total "$TMP/gen-pbx.metrics1") - $(msum shardpbx_rtp_dropped_total "$TMP/gen-pbx.metrics0") ))
  PBX_JSON=$(json_of "$TMP/gen-pbx.out")
  grep -v '^{' "$TMP/gen-pbx.out" >&2 || true
  (( G_RC == 0 )) || echo "run-rtp: generator exit status $G_RC" >&2
  metrics > "$TMP/pbx.metrics2"
  kill -TERM "$SRV" 2>/dev/null || true
  for _ in $(seq 150); do alive "$SRV" || break; sleep 0.1; done
  alive "$SRV" && { echo "run-rtp: server still running 15 s after SIGTERM, killing" >&2; kill -KILL "$SRV" 2>/dev/null || true; }
  set +e; wait "$SRV"; SRV_RC=$?; set -e
fi

# ---------------------------------------------------------------- report
python3 - <<PY
import json, os
tick = $TICK
def threads(label):
    def load(f):
        d = {}
        try:
            for l in open(f):
                tid, comm, t = l.split()
                d[tid] = (comm, int(t))
        except OSError:
            pass
        return d
    a, b = load(f"$TMP/{label}.threads0"), load(f"$TMP/{label}.threads1")
    out = {}
    for tid, (comm, t) in b.items():
        dt = t - a.get(tid, (comm, 0))[1]
        if dt > 0:
            out[comm] = out.get(comm, 0) + dt
    return "  ".join(f"{c}={v / tick:.2f}s" for c, v in sorted(out.items(), key=lambda x: -x[1]))
def split(label):
    try:
        u0, s0 = map(int, open(f"$TMP/{label}.us0").read().split())
        u1, s1 = map(int, open(f"$TMP/{label}.us1").read().split())
        return f"user {(u1 - u0) / tick:.2f} s, sys {(s1 - s0) / tick:.2f} s"
    except (OSError, ValueError):
        return "?"
def machine(label):
    try:
        a = list(map(int, open(f"$TMP/{label}.machine0").read().split()))
        b = list(map(int, open(f"$TMP/{label}.machine1").read().split()))
    except (OSError, ValueError):
        return "?"
    d = [y - x for x, y in zip(a, b)]
    tot = sum(d[:8]) or 1
    names = ["user", "nice", "sys", "idle", "iowait", "irq", "softirq", "steal"]
    return ", ".join(f"{n} {v * 100 / tot:.0f}%" for n, v in zip(names, d[:8]) if v * 100 / tot >= 0.5)
def machine_busy(label):
    try:
        a = list(map(int, open(f"$TMP/{label}.machine0").read().split()))
        b = list(map(int, open(f"$TMP/{label}.machine1").read().split()))
    except (OSError, ValueError):
        return None
    d = [y - x for x, y in zip(a, b)]
    return (d[0] + d[1] + d[2] + d[5] + d[6] + d[7]) / tick
def offered(j):
    return j.get('ticks_sent', j['ticks']) / j['ticks']
calls, media_s, shards = $CALLS, $MEDIA_S, $SHARDS
refl = json.loads('''${REFL_JSON:-null}''')
pbx = json.loads('''${PBX_JSON:-null}''')
print(f"RTP relay benchmark: {calls} calls, {media_s} s media, ptime 20 ms, {shards} shards, generator on the same host")
refl_us = None
if refl is not None:
    pk = $REFL_PKTS
    cpu = ${REFL_CPU_TICKS:-0} / tick
    refl_us = cpu * 1e6 / pk if pk else float("nan")
    print(f"  (a) reflector    {refl['calls']} streams: sent {refl['sent']} echoed {refl['received']} lost {refl['lost']} "
          f"seq breaks {refl['seq_breaks']} ts breaks {refl['ts_breaks']}")
    print(f"      reflector CPU {cpu:.2f} s ({split('gen-reflector')}) for {pk} packets = {refl_us:.2f} us per packet (in + out)")
    print(f"      machine (both CPUs) over the media phase: {machine('gen-reflector')}")
    print(f"      generator CPU {refl['gen_cpu_s']:.2f} s; offered load achieved {offered(refl)*100:.1f}% "
          f"({refl.get('ticks_sent')} of {refl['ticks']} ticks, {refl['late_ticks']} late, max {refl['max_late_ms']} ms)")
if pbx is not None:
    cpu = ${SRV_CPU_TICKS:-0} / tick
    tx, rx, drop = $RTP_TX, $RTP_RX, $RTP_DROP
    up = pbx['calls_up']
    srv_us = cpu * 1e6 / tx if tx else float("nan")
    rss0, rss1 = $RSS0, $SRV_RSS_MAX
    rss_call = (rss1 - rss0) / up if up else float("nan")
    print(f"  (b) ShardPBX     calls up {up}, failed {pbx['calls_failed']} (setup {pbx['setup_s']:.2f} s); "
          f"BYE 200s {pbx['bye_200']}/{pbx['byes_sent']}, callee BYEs {pbx['callee_byes']}")
    for d in pbx['directions']:
        print(f"      {d['dir']:<15} sent {d['sent']} received {d['received']} lost {d['lost']} seq breaks {d['seq_breaks']} "
              f"ts breaks {d['ts_breaks']}; delay (send -> generator read) p50 {d['delay_p50_us']} us p99 {d['delay_p99_us']} us max {d['delay_max_us']/1000:.1f} ms")
    skipped = pbx['ticks'] - pbx.get('ticks_sent', pbx['ticks'])
    print(f"      offered load achieved {offered(pbx)*100:.1f}% ({pbx.get('ticks_sent')} of {pbx['ticks']} ticks sent"
          + (f"; {skipped} skipped: the generator could not keep up, the machine was saturated)" if skipped else ")"))
    print(f"      total loss {pbx['lost']} of {pbx['sent']} ({pbx['lost']*100/max(pbx['sent'],1):.4f}%), seq breaks {pbx['seq_breaks']}, ts breaks {pbx['ts_breaks']}, "
          f"late ticks {pbx['late_ticks']} (max {pbx['max_late_ms']} ms)")
    print(f"      server: rtp_rx {rx} rtp_tx {tx} rtp_dropped {drop} over the media phase")
    wall = pbx['media_s'] + 1.0
    print(f"      server CPU {cpu:.2f} s = {cpu*100/wall:.0f}% of one core over media + 1 s drain; {srv_us:.2f} us per relayed packet")
    print(f"      server CPU {split('gen-pbx')}; by thread: {threads('gen-pbx')}")
    print(f"      machine (both CPUs) over the media phase: {machine('gen-pbx')}")
    busy = machine_busy('gen-pbx')
    if busy is not None and tx:
        print(f"      machine busy {busy:.2f} s = {busy * 1e6 / tx:.2f} us per relayed packet (every CPU, generator and softirqs included)")
    print(f"      server RSS {rss0} KB before, {rss1} KB peak during media -> {rss_call:.1f} KB per call")
    print(f"      generator CPU {pbx['gen_cpu_s']:.2f} s over media + 1 s drain")
    print(f"      server exit status {'$SRV_RC'} after SIGTERM")
    print("  targets")
    if refl_us:
        ratio = srv_us / refl_us
        print(f"      CPU per packet   {ratio:.2f}x the reflector (target <= 1.25x): {'met' if ratio <= 1.25 else 'MISSED'}")
    loss_ok = pbx['lost'] == 0 and pbx['calls_failed'] == 0
    full = offered(pbx) >= 0.99
    print(f"      loss             {pbx['lost']} packets, {pbx['calls_failed']} failed calls (target 0 at {calls} calls): "
          f"{('met' if full else 'met only at ' + format(offered(pbx)*100, '.0f') + '% of the offered packet rate') if loss_ok else 'MISSED'}")
    print(f"      RSS per call     {rss_call:.1f} KB (target <= 64 KB): {'met' if rss_call <= 64 else 'MISSED'}")
PY
