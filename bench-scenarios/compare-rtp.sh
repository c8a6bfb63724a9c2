#!/usr/bin/env bash
# RTP relay, side by side in one run: the kernel's floor for a userspace relay
# (the peers' udp/udpbench.c `reflect`: recvmmsg/sendmmsg, batch 64), and
# optionally userspace rtpengine (the peers' rtpengine/bench_rtpengine.py),
# against ShardPBX's relay (run-rtp.sh --skip-reflector), at the same packet
# rate: N G.711 calls x 2 directions x 50 packets/s, all on 127.0.0.1.
#
# usage: bench-scenarios/compare-rtp.sh [--calls N] [--seconds S] [--shards "K ..."] [--rounds N]
#            [--batch B] [--setup-rate R] [--rtpengine] [--warmup W] [--bin PATH] [--peers DIR] [--out DIR]
#
#   --calls N        concurrent calls (400); the reflector gets 2N streams from
#                    bench-scenarios/rtp-load, the same packets per second
#   --seconds S      media seconds per run (15)
#   --shards "K ..." ShardPBX shard counts, one run each per round ("2 1"); a
#                    count with a "u" suffix ("2u") runs with the relay in user
#                    space only ([media] kernel_forwarding = "off")
#   --rounds N       rounds (1). Order: peer(s), ShardPBX with each shard count,
#                    peer(s), then again for the next round (shards reversed)
#   --batch B        udpbench reflect batch (64, as the peers' README measured it)
#   --setup-rate R   ShardPBX calls set up per second (200, run-rtp.sh's default)
#   --rtpengine      also run rtpengine (needs rtpengine-daemon; fixed ports:
#                    NG 2223, RTP 20000-24000; at most 1000 calls)
#   --warmup W       rtpengine's run: seconds sent before counting (3); it sends S+W s
#   --bin PATH       the server (target/release/shardpbx, built when missing)
#   --peers DIR      the peers' setup (../shared/peers beside the repository)
#   --out DIR        where each run's logs go (a new /tmp/shardpbx-compare-rtp.* dir)
#
# CPU per packet: utime+stime (/proc) of the relay between rtp-load's MEDIA
# START and MEDIA END markers over the packets it relayed (one datagram in, one
# out): udpbench's own count for the reflector, the delta of
# shardpbx_rtp_tx_total for ShardPBX (run-rtp.sh); rtpengine's from
# bench_rtpengine.py (CPU over its window / packets sent into it; no kernel
# share, no seq/ts check). Loss and seq/timestamp breaks are rtp-load's counts.
# Machine-wide: every CPU's busy time (/proc/stat, the generator and softirqs
# included) over the same window / the same packets: where the kernel relays
# a packet, its cost is charged to whichever process the softirq ran in, so
# only this figure compares an in-kernel path fairly.
# A run with loss, breaks or under 95 % of the offered packet rate is FLAGGED.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
BENCH=compare-rtp
BENCH_CMDLINE="bench-scenarios/compare-rtp.sh $*"
SRV_PID=""
# shellcheck source=bench-scenarios/lib.sh
source "$SCRIPT_DIR/lib.sh"

CALLS=400 SECONDS_=15 SHARDS="2 1" ROUNDS=1 BATCH=64 SETUP_RATE=200 RTPE=0 WARMUP=3
BIN="$REPO/target/release/shardpbx" PEERS="$REPO/../shared/peers" OUT=""
while (( $# > 0 )); do
    case "$1" in
        --calls) need_int "$1" "${2-}"; CALLS="$2"; shift 2 ;;
        --seconds) need_int "$1" "${2-}"; SECONDS_="$2"; shift 2 ;;
        --shards) SHARDS="${2-}"; shift 2 ;;
        --rounds) need_int "$1" "${2-}"; ROUNDS="$2"; shift 2 ;;
        --batch) need_int "$1" "${2-}"; BATCH="$2"; shift 2 ;;
        --setup-rate) need_int "$1" "${2-}"; SETUP_RATE="$2"; shift 2 ;;
        --rtpengine) RTPE=1; shift ;;
        --warmup) need_int "$1" "${2-}"; WARMUP="$2"; shift 2 ;;
        --bin) BIN="$(realpath -m "${2-}")"; shift 2 ;;
        --peers) PEERS="${2-}"; shift 2 ;;
        --out) OUT="${2-}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) bench_die "unknown option '$1' (see --help)" ;;
    esac
done
need_shards_and_rounds "${SHARDS//u/}" "$ROUNDS"
(( BATCH <= 256 )) || bench_die "--batch is at most 256 (udpbench's MAXB)"
(( RTPE == 0 || CALLS <= 1000 )) || bench_die "--rtpengine takes at most 1000 calls (bench_rtpengine.py's port plan)"
PEERS="$(realpath -m "$PEERS")"
[[ -f "$PEERS/udp/udpbench.c" ]] || bench_die "no $PEERS/udp/udpbench.c (give --peers DIR)"
need_tool gcc gcc
need_tool python3 python3
if (( RTPE )); then
    need_tool rtpengine rtpengine-daemon
    [[ -f "$PEERS/rtpengine/bench_rtpengine.py" ]] || bench_die "no $PEERS/rtpengine/bench_rtpengine.py"
fi
ensure_release_bin "$REPO" "$BIN"
ensure_rtp_load "$REPO"
LOAD="$REPO/bench-scenarios/rtp-load/target/release/rtp-load"
UDPBENCH="$REPO/target/peers/udpbench"
if [[ ! -x "$UDPBENCH" || "$PEERS/udp/udpbench.c" -nt "$UDPBENCH" ]]; then
    mkdir -p "$(dirname "$UDPBENCH")"
    gcc -O2 -Wall -o "$UDPBENCH" "$PEERS/udp/udpbench.c" || bench_die "gcc could not build udpbench"
fi
OUT="${OUT:-$(mktemp -d /tmp/shardpbx-compare-rtp.XXXXXX)}"
mkdir -p "$OUT"
TSV="$OUT/runs.tsv"
: > "$TSV"
OFFERED=$(( CALLS * 100 ))   # packets per second into the relay: N calls x 2 directions x 50
BOUND=$(( SECONDS_ + 40 ))   # the generator's hard timeout in the reflector run

GEN="" REFL="" SUB=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z "$GEN" ]] || stop_tree "$GEN" 5
    [[ -z "$REFL" ]] || stop_tree "$REFL" 5
    [[ -z "$SUB" ]] || stop_tree "$SUB" 20
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

udpbench_run() {
    local d="$OUT/run$RUN_NO-udpbench" rp rc=0 i
    mkdir -p "$d"
    read -r rp < <(free_ports 1)
    echo "$BENCH: run $RUN_NO: udpbench reflect (batch $BATCH) on 127.0.0.1:$rp, $(( 2 * CALLS )) streams for $SECONDS_ s" >&2
    "$UDPBENCH" reflect "$rp" "$BATCH" $(( BOUND + 10 )) > "$d/reflector.out" 2>&1 &
    REFL=$!
    wait_udp_bound "$rp" 10 "$REFL" || bench_die "udpbench did not bind 127.0.0.1:$rp"
    timeout -k 5 "$BOUND" "$LOAD" --reflector "127.0.0.1:$rp" --calls $(( 2 * CALLS )) --seconds "$SECONDS_" --json \
        > "$d/gen.out" 2> "$d/gen.err" &
    GEN=$!
    sample_on_markers "$d/gen.err" "$GEN" "$REFL" "$BOUND"
    wait "$GEN" || rc=$?
    GEN=""
    # udpbench prints its count when a 4-byte STOP datagram arrives.
    printf STOP > "/dev/udp/127.0.0.1/$rp" || true
    for (( i = 0; i < 50; i++ )); do kill -0 "$REFL" 2>/dev/null || break; sleep 0.1; done
    stop_tree "$REFL" 5
    REFL=""
    python3 - "$d" "$rc" "$OFFERED" "${MARK_C0:-}" "${MARK_K0:-}" "${MARK_C1:-}" "${MARK_K1:-}" "$(getconf CLK_TCK)" \
        "${MARK_M0:-}" "${MARK_M1:-}" >> "$TSV" <<'PY'
import json, sys
d, rc, offered, c0, k0, c1, k1, hz, m0, m1 = sys.argv[1:]
def last_json(path):
    try:
        lines = [l for l in open(path) if l.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}
g, r = last_json(f"{d}/gen.out"), last_json(f"{d}/reflector.out")
pk = r.get("packets") or g.get("received") or 0
flag = []
if rc != "0":
    flag.append(f"rtp-load exit {rc}")
if not (c0 and c1):
    flag.append("no MEDIA START/END")
per = lambda a, b: f"{(int(b) - int(a)) / int(hz) * 1e6 / pk:.2f}" if a and b and pk else "nan"
frac = g.get("ticks_sent", 0) / g["ticks"] if g.get("ticks") else 0
note = (f"{pk} packets; sent {g.get('sent')} echoed {g.get('received')} lost {g.get('lost')} "
        f"seq breaks {g.get('seq_breaks')} ts breaks {g.get('ts_breaks')}")
print("\t".join(["peer", "udpbench reflector", per(c0, c1), per(k0, k1), str(g.get("lost", 0)),
                 str(g.get("seq_breaks", 0) + g.get("ts_breaks", 0)), f"{int(offered) * frac:.0f}", offered, note,
                 "; ".join(flag), per(m0, m1)]))
PY
}

rtpengine_run() {
    local d="$OUT/run$RUN_NO-rtpengine" rc=0
    mkdir -p "$d"
    echo "$BENCH: run $RUN_NO: rtpengine userspace, $CALLS calls for $SECONDS_ s (+$WARMUP s warm-up)" >&2
    PEERS_OUT="$d" timeout -k 5 $(( SECONDS_ + WARMUP + CALLS / 50 + 90 )) python3 "$PEERS/rtpengine/bench_rtpengine.py" \
        --calls "$CALLS" --seconds $(( SECONDS_ + WARMUP )) --warmup "$WARMUP" --tag compare --out "$d/raw" \
        > "$d/bench_rtpengine.out" 2>&1 &
    SUB=$!
    wait "$SUB" || rc=$?
    SUB=""
    python3 - "$d/bench_rtpengine.out" "$rc" "$OFFERED" >> "$TSV" <<'PY'
import json, sys
path, rc, offered = sys.argv[1:]
j = {}
try:
    lines = [l for l in open(path) if l.startswith("{")]
    j = json.loads(lines[-1]) if lines else {}
except (OSError, ValueError):
    pass
loss = j.get("loss", {})
flag = "" if rc == "0" and j else f"bench_rtpengine.py exit {rc}"
note = f"sent {loss.get('sent')} received {loss.get('received')} lost {loss.get('lost')} (seq/ts not checked, no kernel share)"
print("\t".join(["peer", "rtpengine userspace", str(j.get("rtpengine_us_per_packet", "nan")), "nan",
                 str(max(0, loss.get("lost", 0))), "0", f"{loss.get('offered_pps_into_relay', 0):.0f}", offered, note, flag]))
PY
}

peers_run() {
    udpbench_run
    if (( RTPE )); then
        RUN_NO=$(( RUN_NO + 1 ))
        rtpengine_run
    fi
}

shardpbx_run() {
    local k="${1%u}" d="$OUT/run$RUN_NO-shardpbx-$1" rc=0 fwd=auto label="${1%u} shard(s)"
    if [[ "$1" == *u ]]; then
        fwd=off label="$k shard(s), user space"
    fi
    mkdir -p "$d"
    echo "$BENCH: run $RUN_NO: shardpbx $label, $CALLS calls for $SECONDS_ s (run-rtp.sh --skip-reflector)" >&2
    "$SCRIPT_DIR/run-rtp.sh" --skip-reflector --bin "$BIN" --calls "$CALLS" --seconds "$SECONDS_" --shards "$k" \
        --setup-rate "$SETUP_RATE" --kernel-forwarding "$fwd" > "$d/run-rtp.out" 2>&1 &
    SUB=$!
    wait "$SUB" || rc=$?
    SUB=""
    python3 - "$d/run-rtp.out" "$label" "$OFFERED" "$rc" >> "$TSV" <<'PY'
import re, sys
path, label, offered, rc = sys.argv[1:]
t = open(path, errors="replace").read()
def grab(pat, default="nan"):
    m = re.search(pat, t)
    return m.group(1) if m else default
tx = int(grab(r"rtp_tx (\d+)", "0"))
sys_s = float(grab(r"server CPU user [\d.]+ s, sys ([\d.]+) s"))
kern = f"{sys_s * 1e6 / tx:.2f}" if tx and sys_s == sys_s else "nan"
lost = grab(r"total loss (\d+) of", "0")
breaks = int(grab(r"seq breaks (\d+), ts breaks", "0")) + int(grab(r"ts breaks (\d+), late", "0"))
frac = float(grab(r"offered load achieved ([\d.]+)%", "0")) / 100
up, failed = grab(r"calls up (\d+)"), grab(r"calls up \d+, failed (\d+)", "0")
flag = []
if rc != "0":
    flag.append(f"run-rtp.sh exit {rc}")
if failed != "0":
    flag.append(f"{failed} calls failed")
note = f"{tx} packets relayed; calls up {up}; {grab(r'(server RSS .*? per call)')}"
print("\t".join(["shardpbx", label, grab(r"([\d.]+) us per relayed packet"), kern, lost, str(breaks),
                 f"{int(offered) * frac:.0f}", offered, note, "; ".join(flag),
                 grab(r"machine busy [\d.]+ s = ([\d.]+) us per relayed packet")]))
PY
}

print_header "RTP relay: udpbench reflector (batch $BATCH)$( (( RTPE )) && echo ", rtpengine userspace") vs shardpbx (run-rtp.sh), $CALLS calls x 2 x 50 packets/s for $SECONDS_ s, shards '$SHARDS', $ROUNDS round(s)"
echo "logs: $OUT"
run_interleaved "$ROUNDS" "$SHARDS" peers_run shardpbx_run
print_comparison "$TSV" packet "packets/s"
