#!/usr/bin/env bash
# Call-rate benchmark: sipp callers (digest auth, 407 then INVITE, ring, answer,
# 0.5 s talk, BYE) through ShardPBX to a registered sipp UAS, on 127.0.0.1.
#
# usage: bench-scenarios/run-calls.sh [--rate CPS] [--calls N] [--shards K] [--bin PATH] [--no-auth]
#            [--perf PROFILE] [--media MODE] [--server-latency N] [--router]
#            [--transport udp|tcp|tls] [--conn single|per-call]
#
# --transport: how the callers reach the server (the callee stays on UDP,
# so each call has one leg of each). tcp: sipp over TCP to [proxy]
# tcp_port; tls: sipp over TCP through a local stunnel that speaks TLS to
# [proxy] tls_port and verifies the server's self-signed certificate
# (stunnel's CPU is not in the server's figure). --conn single: all calls
# over one connection (sipp -t t1); per-call: a new connection per call
# (sipp -t tn), so every call also pays a connect (and a TLS handshake).
#
# --router: every INVITE asks an HTTP router (API.md 2.1) first: a fast local
# stand-in (perf/router_hook.rs, built with the bench tools in
# bench-scenarios/rtp-load) that forwards to sip:1002@127.0.0.1. Compare
# with the same run without it for what the router costs per call; the
# stand-in's CPU is reported apart from the server's.
#
# --media MODE: [proxy] media_proxy of the server (none). The issue's scenario
# carries no RTP, so `none` compares with a stateful proxy; `always` also
# allocates and frees the relay's four sockets per call.
#
# --server-latency N: also read the SIP flows of N calls from the middle of the
# run (REST, call-records sip-flow) and report the server's own share of the
# setup time: caller's INVITE in -> 200 out to the caller, in the server's
# clock (ms steps). sipp's setup time also holds sipp's and the callee
# sipp's scheduling on the shared cores.
#
# --no-auth: callers come from a trunk's inbound_hosts (127.0.0.1) and use
# sipp's built-in uac (INVITE/100/180/200/ACK/BYE), the shape of a stateful
# proxy benchmark; without it every call also answers a 407 digest challenge.
#
# Prints calls attempted/successful/failed, achieved CPS, the server's CPU
# microseconds per call (utime+stime of all its threads from /proc) and the
# CDR count. Everything is bounded: sipp runs -m N under a hard timeout.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
BENCH=run-calls
# shellcheck source=bench-scenarios/lib.sh
source "$SCRIPT_DIR/lib.sh"
RATE=200 CALLS=2000 SHARDS=1 BIN="$REPO/target/release/shardpbx" NOAUTH=0 PERF=() MEDIA=none SAMPLE=0 ROUTER=0
TRANSPORT=udp CONN=single
while (( $# > 0 )); do
  case "$1" in
    --rate) RATE="$2"; shift 2 ;;
    --calls) CALLS="$2"; shift 2 ;;
    --shards) SHARDS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --no-auth) NOAUTH=1; shift ;;
    --media) MEDIA="$2"; shift 2 ;;
    --server-latency) SAMPLE="$2"; shift 2 ;;
    --router) ROUTER=1; shift ;;
    --transport) TRANSPORT="$2"; shift 2 ;;
    --conn) CONN="$2"; shift 2 ;;
    --perf) PERF=(--perf "$(realpath "$2")"); shift 2 ;;
    *) echo "run-calls: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ "$TRANSPORT" =~ ^(udp|tcp|tls)$ ]] || { echo "run-calls: --transport udp, tcp or tls" >&2; exit 2; }
[[ "$CONN" =~ ^(single|per-call)$ ]] || { echo "run-calls: --conn single or per-call" >&2; exit 2; }
[[ -x "$BIN" ]] || (cd "$REPO" && cargo build --release --locked)
command -v sipp >/dev/null || { echo "run-calls: sipp missing (scripts/install-deps.sh)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TMP="$(mktemp -d)"; SRV=""; UAS=""; HOOK=""; TUN=""
cleanup() { [[ -n "$UAS" ]] && kill "$UAS" 2>/dev/null || true; [[ -n "$SRV" ]] && kill "$SRV" 2>/dev/null || true; [[ -n "$HOOK" ]] && kill "$HOOK" 2>/dev/null || true; [[ -n "$TUN" ]] && kill "$TUN" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

SIP=$(( 41000 + RANDOM % 4000 )); HTTP=$(free_port); UASP=$(( 45500 + RANDOM % 4000 ))
TCP_PORT=0 TLS_PORT=0
[[ "$TRANSPORT" == tcp ]] && TCP_PORT=$SIP
[[ "$TRANSPORT" == tls ]] && TLS_PORT=$(( SIP + 1 ))
cat > "$TMP/pbx.toml" <<CFG
http_addr = "127.0.0.1:$HTTP"
data_dir = "$TMP/data"
log_level = "warn"
[runtime]
shards = $SHARDS
[proxy]
addr = "127.0.0.1"
udp_port = $SIP
tcp_port = $TCP_PORT
tls_port = $TLS_PORT
tcp_max_connections_per_ip = 100000   # the load generator is one source
realms = ["127.0.0.1"]
routes_files = []
trunks_files = ["$TMP/trunks.toml"]
max_ring_time = 30
media_proxy = "$MEDIA"
[[proxy.user_backends]]
type = "memory"
users = [{ username = "1001", password = "secret1001" }, { username = "1002", password = "secret1002" }]
[media]
rtp_port_start = 20000
rtp_port_end = 30000
[security]
trusted = ["127.0.0.0/8"]   # the load generator: no flood limit
CFG
if (( ROUTER )); then
  TOOLS="$REPO/bench-scenarios/rtp-load"
  (cd "$TOOLS" && cargo build --release --quiet --bin router-hook)
  HOOKP=$(free_port)
  "$TOOLS/target/release/router-hook" "$HOOKP" '{"action": "forward", "targets": ["sip:1002@127.0.0.1"]}' & HOOK=$!
  printf '[proxy.http_router]\nurl = "http://127.0.0.1:%s/route"\nfallback_to_static = false\ntimeout_ms = 2000\n' "$HOOKP" >> "$TMP/pbx.toml"
fi
if (( NOAUTH )); then
  printf '[trunks.loadgen]\ninbound_hosts = ["127.0.0.1"]\n' > "$TMP/trunks.toml"
else
  : > "$TMP/trunks.toml"
fi
TOKEN=""
if (( SAMPLE > 0 )); then
  TOKEN=$("$BIN" token create --name bench --scopes read --config "$TMP/pbx.toml" | tail -n1)
fi
"$BIN" run --config "$TMP/pbx.toml" "${PERF[@]}" 2> "$TMP/server.log" & SRV=$!
for _ in $(seq 50); do
  python3 - "$SIP" <<'PY' && break || sleep 0.2
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
p = int(sys.argv[1])
s.sendto(f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{s.getsockname()[1] if s.getsockname()[1] else 9};branch=z9hG4bKprobe;rport\r\nFrom: <sip:p@x>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode(), ("127.0.0.1", p))
s.recv(4096)
PY
done
# The callee: sipp UAS registered as 1002.
(cd "$TMP" && timeout $(( CALLS / RATE + 60 )) sipp -sn uas -i 127.0.0.1 -p "$UASP" -nostdin -buff_size 4194304 -m "$CALLS" > /dev/null 2>&1) & UAS=$!
python3 - "$SIP" "$UASP" <<'PY'
import hashlib, re, socket, sys
sip, uas = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(2)
me = "127.0.0.1:%d" % s.getsockname()[1]
def reg(cseq, auth=""):
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg{cseq};rport\r\nFrom: <sip:1002@127.0.0.1>;tag=1\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: bench-reg\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1002@127.0.0.1:{uas}>\r\n{auth}Expires: 3600\r\nContent-Length: 0\r\n\r\n").encode()
s.sendto(reg(1), ("127.0.0.1", sip)); r = s.recv(4096).decode()
nonce = re.search('nonce="([^"]+)"', r).group(1)
h = lambda x: hashlib.md5(x.encode()).hexdigest()
resp = h(f"{h('1002:127.0.0.1:secret1002')}:{nonce}:00000001:c:auth:{h('REGISTER:sip:127.0.0.1')}")
s.sendto(reg(2, f'Authorization: Digest username="1002", realm="127.0.0.1", nonce="{nonce}", uri="sip:127.0.0.1", response="{resp}", cnonce="c", nc=00000001, qop=auth\r\n'), ("127.0.0.1", sip))
assert s.recv(4096).startswith(b"SIP/2.0 200"), "callee registration failed"
PY
cpu() { awk '{t+=$14+$15} END {print t}' /proc/"$SRV"/task/*/stat; }
ksys() { awk '{t+=$15} END {print t}' /proc/"$SRV"/task/*/stat; }
hook_cpu() { if [[ -n "$HOOK" ]]; then awk '{t+=$14+$15} END {print t}' /proc/"$HOOK"/task/*/stat; else echo 0; fi; }
# Where the callers send: the server's UDP or TCP port, or the stunnel in
# front of its TLS port.
TARGET="127.0.0.1:$SIP"; TFLAG=()
if [[ "$TRANSPORT" != udp ]]; then
  if [[ "$CONN" == single ]]; then TFLAG=(-t t1); else TFLAG=(-t tn -max_socket 10000); fi
fi
if [[ "$TRANSPORT" == tls ]]; then
  TUNP=$(free_port)
  stunnel_client "$TMP" "$TUNP" $(( SIP + 1 )) "$TMP/data/tls/self-signed.crt"
  TUN=$TUN_PID
  TARGET="127.0.0.1:$TUNP"
fi
C0=$(cpu); K0=$(ksys); H0=$(hook_cpu); T0=$(date +%s.%N)
set +e
if (( NOAUTH )); then SCEN=(-sn uac); else SCEN=(-sf "$REPO/bench-scenarios/uac_auth.xml" -key caller 1001 -au 1001 -ap secret1001); fi
(cd "$TMP" && timeout $(( CALLS / RATE + 60 )) sipp "$TARGET" "${TFLAG[@]}" "${SCEN[@]}" -s 1002 \
   -i 127.0.0.1 -r "$RATE" -m "$CALLS" -l $(( RATE * 2 + 10 )) -nostdin -buff_size 4194304 \
   -trace_stat -stf stat.csv -trace_rtt -rtt_freq 1 > "$TMP/uac.out" 2>&1)
RC=$?
set -e
T1=$(date +%s.%N); C1=$(cpu); K1=$(ksys); H1=$(hook_cpu)
sleep 1
STATS=$(tail -1 "$TMP/stat.csv" 2>/dev/null || true)
OK=$(echo "$STATS" | awk -F';' '{print $16}' 2>/dev/null)
FAILED=$(echo "$STATS" | awk -F';' '{print $18}' 2>/dev/null)
CDRS=$("$BIN" cdr list --config "$TMP/pbx.toml" --json --limit 1000000 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
TICK=$(getconf CLK_TCK)
if (( SAMPLE > 0 )); then
  python3 - "$HTTP" "$TOKEN" "$SAMPLE" "$CDRS" <<'PY'
import json, math, sys, urllib.parse, urllib.request
from datetime import datetime
http, token, n, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def get(path):
    req = urllib.request.Request(f"http://127.0.0.1:{http}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)
per = min(n, 500)
page = max(1, (total // 2) // per)
ids = [urllib.parse.quote(c["callId"]) for c in get(f"/console/call-records?per_page={per}&page={page}")["items"]]
ts = lambda m: datetime.fromisoformat(m["ts"].replace("Z", "+00:00")).timestamp() * 1000
lat = []
for i in ids:
    msgs = get(f"/console/call-records/{i}/sip-flow")["messages"]
    inv = next((m for m in msgs if m["leg"] == "caller" and m["direction"] == "in" and m.get("method") == "INVITE"), None)
    ok = next((m for m in msgs if m["leg"] == "caller" and m["direction"] == "out" and m.get("status") == 200 and "INVITE" in m["raw"].split("CSeq:", 1)[-1].split("\n", 1)[0]), None)
    if inv and ok:
        lat.append(ts(ok) - ts(inv))
lat.sort()
pct = lambda q: lat[max(0, math.ceil(q * len(lat)) - 1)] if lat else float("nan")
print(f"  server's own setup time (caller INVITE in -> 200 out, server clock, 1 ms steps, {len(lat)} calls from the middle of the run): p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, max {lat[-1] if lat else float('nan'):.0f} ms")
PY
fi
BENCH_TRANSPORT="$TRANSPORT/$CONN" python3 - "$CALLS" "${OK:-0}" "${FAILED:-0}" "$T0" "$T1" "$C0" "$C1" "$TICK" "$CDRS" "$SHARDS" "$RATE" "$RC" "$TMP" "$NOAUTH" "$K0" "$K1" "$H0" "$H1" "$ROUTER" <<'PY'
import glob, math, os, sys
calls, ok, failed, t0, t1, c0, c1, tick, cdrs, shards, rate, rc, tmp, noauth, k0, k1, h0, h1, router = sys.argv[1:]
rtts = []
for p in glob.glob(os.path.join(tmp, "*_rtt.csv")):
    for line in open(p):
        parts = line.strip().split(";")
        if len(parts) >= 2:
            try:
                rtts.append(float(parts[1]))
            except ValueError:
                pass
rtts.sort()
pct = lambda q: rtts[max(0, math.ceil(q * len(rtts)) - 1)] if rtts else float("nan")
ok, failed = int(ok or 0), int(failed or 0)
wall = float(t1) - float(t0)
cpu_s = (int(c1) - int(c0)) / int(tick)
print(f"shards {shards}, offered {rate} cps, {calls} calls, callers over {os.environ.get('BENCH_TRANSPORT', 'udp')} (sipp exit {rc})")
print(f"  successful {ok}, failed {failed}, achieved {ok / wall:.0f} cps over {wall:.1f} s")
shape = "INVITE/100/180/200/ACK/BYE/200, caller from a trusted trunk host" if noauth == "1" else "INVITE/407/ACK/INVITE/100/180/200/ACK/BYE/200"
print(f"  server CPU {cpu_s:.2f} s = {cpu_s * 1e6 / max(ok, 1):.0f} us per call ({shape}, both legs)")
sys_s = (int(k1) - int(k0)) / int(tick)
print(f"    of which in the kernel (stime) {sys_s:.2f} s = {sys_s * 1e6 / max(ok, 1):.0f} us per call")
if router == "1":
    hook_s = (int(h1) - int(h0)) / int(tick)
    print(f"  HTTP router stand-in CPU {hook_s:.2f} s = {hook_s * 1e6 / max(ok, 1):.0f} us per call (not in the server's figure)")
print(f"  setup time (INVITE -> 200, sipp rtd, 1 ms steps): p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms ({len(rtts)} samples)")
print(f"  CDRs stored {cdrs}")
PY
