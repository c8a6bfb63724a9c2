#!/usr/bin/env bash
# Setup latency (issue 14, "Latency"): the server's own share of call setup, in
# µs, from a packet capture on lo, at a given call rate (default half of the
# 4500 CPS this 2-core box sustains).
#
# usage: bench-scenarios/setup-latency.sh [--rate CPS] [--seconds S] [--shards K]
#            [--runtime LINE] [--bin PATH] [--keep]
#        bench-scenarios/setup-latency.sh --kamailio [--children W] [--peers DIR]
#            [--rate CPS] [--seconds S] [--keep]
#
#   --runtime LINE  an extra line for the server's [runtime] table, e.g.
#                   'poll_interval_us = 0' (repeatable)
#   --kamailio      the same measurement of the peer: Kamailio's stateful proxy
#                   (PEERS/kamailio/proxy.cfg, W workers, default 1, as in
#                   compare-calls.sh) between the same sipp caller and callee,
#                   so the VM's own tail can be told from ours. A proxy keeps
#                   the Call-ID, so the pairing below works unchanged.
#
# Setup as overload.sh: callers from a trunk's inbound_hosts (127.0.0.1) running
# bench-scenarios/uac_overload.xml (sipp's built-in uac; its SDP session id is the
# call number), no media, callee a sipp uas registered as 1002. tcpdump captures
# the server's SIP port on lo for the whole run; each packet on lo is captured
# once, stamped by the kernel when it is sent.
#
# Per call, from the capture:
#   invite  = our INVITE to the callee  - the caller's INVITE to us
#             (paired by the SDP session id, which the body carries through)
#   answer  = our 200 to the caller     - the callee's 200 to us
#             (paired through the callee leg's Call-ID)
#   setup   = invite + answer: the time the call waited on the server, from
#             the kernel's send of each datagram to the kernel's send of the
#             next, so socket queueing, wake-up and processing all count.
# Prints p50, p90, p99, p99.9 and max of each in µs, the calls paired, and
# sipp's own response time (INVITE sent to 200 received, ms) for comparison.
# Needs tcpdump (apt-get install -y tcpdump). The capture costs CPU on the same
# two cores; the figures include that disturbance.
# Everything is bounded: sipp runs -m N under a hard timeout, tcpdump stops
# with the run.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
RATE=2250 SECS=20 SHARDS=2 BIN="$REPO/target/release/shardpbx" KEEP=0 RUNTIME_EXTRA="" ARGS="$*"
KAM=0 CHILDREN=1 PEERS="${PEERS:-$REPO/../shared/peers}"
while (( $# > 0 )); do
  case "$1" in
    --rate) RATE="$2"; shift 2 ;;
    --seconds) SECS="$2"; shift 2 ;;
    --shards) SHARDS="$2"; shift 2 ;;
    --runtime) RUNTIME_EXTRA+="$2"$'\n'; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --kamailio) KAM=1; shift ;;
    --children) CHILDREN="$2"; shift 2 ;;
    --peers) PEERS="$2"; shift 2 ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    *) echo "setup-latency: unknown option $1" >&2; exit 2 ;;
  esac
done
for v in RATE SECS SHARDS CHILDREN; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "setup-latency: --${v,,} must be a positive integer" >&2; exit 2; }
done
N=$(( RATE * SECS ))
BENCH=setup-latency SRV_PID="" UAS="" CAP="" UAC="" KAM_PID=""
# shellcheck source=bench-scenarios/lib.sh
source "$SCRIPT_DIR/lib.sh"
need_tool sipp sip-tester
need_tool tcpdump tcpdump
if (( KAM )); then
  need_tool kamailio kamailio
  [[ -f "$PEERS/kamailio/proxy.cfg" ]] || bench_die "no $PEERS/kamailio/proxy.cfg (give --peers DIR)"
else
  ensure_release_bin "$REPO" "$BIN"
fi
TMP="$(mktemp -d)"
cleanup() {
  for p in "$UAC" "$CAP" "$UAS"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  stop_server
  kam_stop
  wait 2>/dev/null || true
  if (( KEEP )); then echo "kept: $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

# free_ports picks above the RTP range (20000-39999).
read -r SIP HTTP UASP < <(free_ports 3)
WALL=$(( SECS + 60 ))
if (( KAM )); then
  kam_start "$PEERS/kamailio/proxy.cfg" "$TMP/kam" "$SIP" "$UASP" 4096 -A "KAM_CHILDREN=$CHILDREN" -x fm -X fm
  (cd "$TMP" && timeout "$WALL" sipp -sn uas -i 127.0.0.1 -p "$UASP" -nostdin -buff_size 4194304 \
     -m "$N" > /dev/null 2>&1) & UAS=$!
  wait_udp_bound "$UASP" 10 "$UAS" || bench_die "sipp uas did not bind 127.0.0.1:$UASP"
  WHO="kamailio proxy.cfg ($CHILDREN worker(s))"
else
  write_noauth_config "$TMP" "$SIP" "$HTTP" "$SHARDS" "$RUNTIME_EXTRA" ""
  "$BIN" run --config "$TMP/pbx.toml" 2> "$TMP/server.log" & SRV_PID=$!
  wait_sip_ready "$SIP" "$SRV_PID" 10 || { tail -5 "$TMP/server.log" >&2; bench_die "server did not answer OPTIONS"; }
  (cd "$TMP" && timeout "$WALL" sipp -sn uas -i 127.0.0.1 -p "$UASP" -nostdin -buff_size 4194304 \
     -m "$N" > /dev/null 2>&1) & UAS=$!
  register_user "$SIP" 1002 secret1002 "$UASP" || bench_die "callee registration failed"
  WHO="shardpbx $SHARDS shard(s)"
fi

timeout "$WALL" tcpdump -i lo -n -B 65536 -s 4096 -w "$TMP/cap.pcap" "udp port $SIP" 2> "$TMP/tcpdump.log" & CAP=$!
for _ in $(seq 50); do grep -qs "listening on" "$TMP/tcpdump.log" && break; sleep 0.1; done

echo "== setup-latency: $WHO, $RATE CPS for $SECS s ($N calls, INVITE..BYE, media none), capture on lo"
echo "date $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: $(nproc) CPUs, kernel $(uname -r); command: bench-scenarios/setup-latency.sh $ARGS"
(cd "$TMP" && timeout "$WALL" sipp -sf "$SCRIPT_DIR/uac_overload.xml" -s 1002 -i 127.0.0.1 -p 0 \
   -r "$RATE" -m "$N" -l $(( RATE * 10 )) -nostdin -buff_size 4194304 -recv_timeout 10000 \
   -trace_stat -stf stat.csv -fd 60 -trace_rtt -rtt_freq "$N" \
   "127.0.0.1:$SIP" > sipp.out 2>&1) & UAC=$!
st=0; wait "$UAC" || st=$?; UAC=""
sleep 0.5
kill -INT "$CAP" 2>/dev/null || true; wait "$CAP" 2>/dev/null || true; CAP=""
grep -E "packets (captured|dropped by kernel)" "$TMP/tcpdump.log" | sed 's/^/  tcpdump: /'
echo "  sipp exit $st"

python3 - "$TMP/cap.pcap" "$SIP" "$UASP" "$TMP" <<'PY'
import glob, os, re, struct, sys
path, sip, uas, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = open(path, "rb").read()
magic = struct.unpack_from("<I", data, 0)[0]
if magic not in (0xa1b2c3d4, 0xa1b23c4d):
    sys.exit(f"not a little-endian pcap: {magic:#x}")
nano = magic == 0xa1b23c4d
link = struct.unpack_from("<I", data, 20)[0]
l2 = {1: 14, 113: 16, 0: 4}.get(link)
if l2 is None:
    sys.exit(f"link type {link} not handled")
cid_re = re.compile(rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]+)", re.I)
cseq_re = re.compile(rb"\r\nCSeq[ \t]*:[ \t]*\d+[ \t]+(\w+)", re.I)
oid_re = re.compile(rb"\r\no=\S+ (\d+) ")
inv_in, inv_out = {}, {}        # session id -> first stamp, µs
a_cid, b_cid = {}, {}           # caller Call-ID -> session id; callee Call-ID -> session id
ok_in, ok_out = {}, {}          # callee Call-ID / caller Call-ID -> first stamp
off, n = 24, 0
while off + 16 <= len(data):
    sec, frac, incl, _ = struct.unpack_from("<IIII", data, off)
    off += 16
    pkt = data[off:off + incl]
    off += incl
    n += 1
    t = sec * 1_000_000 + (frac // 1000 if nano else frac)
    ip = pkt[l2:]
    if len(ip) < 28 or ip[0] >> 4 != 4:
        continue
    ihl = (ip[0] & 15) * 4
    sport, dport = struct.unpack_from(">HH", ip, ihl)
    body = ip[ihl + 8:]
    m = cid_re.search(body)
    if not m:
        continue
    cid = m.group(1).strip()
    inbound = dport == sip
    if body.startswith(b"INVITE "):
        o = oid_re.search(body)
        if not o:
            continue
        sid = o.group(1)
        if inbound:
            inv_in.setdefault(sid, t)
            a_cid.setdefault(cid, sid)
        elif dport == uas:
            inv_out.setdefault(sid, t)
            b_cid.setdefault(cid, sid)
    elif body.startswith(b"SIP/2.0 200"):
        c = cseq_re.search(body)
        if not c or c.group(1).upper() != b"INVITE":
            continue
        if inbound and sport == uas:
            ok_in.setdefault(cid, t)
        elif not inbound:
            ok_out.setdefault(cid, t)
ok_in_by_sid = {b_cid[c]: t for c, t in ok_in.items() if c in b_cid}
ok_out_by_sid = {a_cid[c]: t for c, t in ok_out.items() if c in a_cid}
inv, ans, setup = [], [], []
for sid, t0 in inv_in.items():
    t1, t2, t3 = inv_out.get(sid), ok_in_by_sid.get(sid), ok_out_by_sid.get(sid)
    if None in (t1, t2, t3):
        continue
    inv.append(t1 - t0); ans.append(t3 - t2); setup.append((t1 - t0) + (t3 - t2))
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")
print(f"  capture: {n} packets; calls with all four stamps: {len(setup)} of {len(inv_in)} INVITEs seen")
print(f"  {'µs':<8}{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}{'max':>9}")
for name, v in (("invite", inv), ("answer", ans), ("setup", setup)):
    print(f"  {name:<8}" + "".join(f"{pct(v, p):>8}" for p in (0.5, 0.9, 0.99, 0.999)) + f"{max(v) if v else 'n/a':>9}")
stats = sorted(glob.glob(os.path.join(tmp, "stat.csv")) + glob.glob(os.path.join(tmp, "*_stat.csv")))
if stats:
    rows = [l.rstrip("\n").split(";") for l in open(stats[-1])]
    if len(rows) >= 2:
        head, last = rows[0], rows[-1]
        want = {k: last[i] for i, k in enumerate(head) if k in ("TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)", "ResponseTime1(C)")}
        print(f"  sipp: {want}")
PY
