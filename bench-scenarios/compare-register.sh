#!/usr/bin/env bash
# REGISTER with digest, side by side in one run: Kamailio's registrar (the
# peers' kamailio/registrar.cfg: digest, in-memory usrloc) against ShardPBX
# (run-register.sh: digest, bindings in LMDB), the same sipp load on each:
# REGISTER -> 401 -> REGISTER with Authorization -> 200, all on 127.0.0.1.
#
# usage: bench-scenarios/compare-register.sh [--rate R] [--duration S] [--shards "K ..."]
#            [--rounds N] [--children W] [--users N] [--mm MM] [--transport T] [--bin PATH]
#            [--peers DIR] [--out DIR]
#
#   --rate R         registrations per second offered to both (6000)
#   --duration S     seconds of load per run: R*S registrations (10)
#   --shards "K ..." ShardPBX shard counts, one run each per round ("2 1")
#   --rounds N       rounds (1). Order: Kamailio, ShardPBX with each shard count,
#                    Kamailio, then again for the next round (shards reversed)
#   --children W     Kamailio workers, -A KAM_CHILDREN=W (2)
#   --users N        users of ShardPBX's run (20000: as many as the peers' sipp/users.csv,
#                    which Kamailio's run reads)
#   --mm MM          Kamailio memory manager, -x/-X (fm, as scripts/bench_reg.py)
#   --transport T    how sipp reaches both: u1 (default: one UDP socket), t1 (every
#                    registration over one TCP connection; Kamailio's config gets
#                    disable_tcp=no and a tcp listener on its port) or tls1 (one TLS
#                    connection: sipp -t t1 through a local stunnel4 that verifies the
#                    server's certificate; Kamailio gets its tls module with a fresh
#                    self-signed P-256 certificate, ShardPBX its own; stunnel's CPU is
#                    in neither figure)
#   --bin PATH       the server (target/release/shardpbx, built when missing)
#   --peers DIR      the peers' setup (../shared/peers beside the repository)
#   --out DIR        where each run's logs go (a new /tmp/shardpbx-compare-register.* dir)
#
# Kamailio runs as scripts/bench_reg.py runs it (kamailio -DD -E -m 512 -M 16
# -x MM -X MM), on a free port (its config copied with 5070 replaced), against
# sipp with the options run-register.sh gives sipp (-t u1 -r R -rp 1000 -l
# max(R,100) -buff_size 4194304) and the peers' reg_auth.xml and users.csv. Its
# CPU is utime+stime of its process tree (/proc) over sipp's run; ShardPBX's is
# the same window in run-register.sh.
#
# Prints one line per run (CPU per registration and its kernel share in µs, the
# ratio ShardPBX/Kamailio against the mean of the Kamailio runs, failed
# registrations, achieved/offered rate, p50/p99; a run with failures or under
# 95 % of the offered rate is FLAGGED) and a summary.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
BENCH=compare-register
BENCH_CMDLINE="bench-scenarios/compare-register.sh $*"
SRV_PID=""
# shellcheck source=bench-scenarios/lib.sh
source "$SCRIPT_DIR/lib.sh"

RATE=6000 DURATION=10 SHARDS="2 1" ROUNDS=1 CHILDREN=2 USERS="" MM=fm TRANSPORT=u1
BIN="$REPO/target/release/shardpbx" PEERS="$REPO/../shared/peers" OUT=""
while (( $# > 0 )); do
    case "$1" in
        --rate) need_int "$1" "${2-}"; RATE="$2"; shift 2 ;;
        --duration) need_int "$1" "${2-}"; DURATION="$2"; shift 2 ;;
        --shards) SHARDS="${2-}"; shift 2 ;;
        --rounds) need_int "$1" "${2-}"; ROUNDS="$2"; shift 2 ;;
        --children) need_int "$1" "${2-}"; CHILDREN="$2"; shift 2 ;;
        --users) need_int "$1" "${2-}"; USERS="$2"; shift 2 ;;
        --mm) MM="${2-}"; shift 2 ;;
        --transport) [[ "${2-}" =~ ^(u1|t1|tls1)$ ]] || bench_die "--transport is u1, t1 or tls1"; TRANSPORT="$2"; shift 2 ;;
        --bin) BIN="$(realpath -m "${2-}")"; shift 2 ;;
        --peers) PEERS="${2-}"; shift 2 ;;
        --out) OUT="${2-}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) bench_die "unknown option '$1' (see --help)" ;;
    esac
done
need_shards_and_rounds "$SHARDS" "$ROUNDS"
PEERS="$(realpath -m "$PEERS")"
for f in kamailio/registrar.cfg sipp/reg_auth.xml sipp/users.csv; do
    [[ -f "$PEERS/$f" ]] || bench_die "no $PEERS/$f (give --peers DIR)"
done
USERS="${USERS:-$(( $(grep -c . "$PEERS/sipp/users.csv") - 1 ))}"
need_tool sipp sip-tester
need_tool kamailio kamailio
need_tool python3 python3
ensure_release_bin "$REPO" "$BIN"
OUT="${OUT:-$(mktemp -d /tmp/shardpbx-compare-register.XXXXXX)}"
mkdir -p "$OUT"
TSV="$OUT/runs.tsv"
: > "$TSV"
REGS=$(( RATE * DURATION ))
LIMIT=$(( RATE > 100 ? RATE : 100 ))
BOUND=$(( DURATION * 2 + 40 ))   # sipp's hard timeout, as run-register.sh

UAC="" SUB="" TUN_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z "$UAC" ]] || stop_tree "$UAC" 5
    [[ -z "$TUN_PID" ]] || kill "$TUN_PID" 2>/dev/null || true
    kam_stop
    [[ -z "$SUB" ]] || stop_tree "$SUB" 20
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kamailio_run() {
    local d="$OUT/run$RUN_NO-kamailio" kp c0 k0 c1 k1 t0 t1 rc=0 ok failed p50 p99
    mkdir -p "$d"
    read -r kp < <(free_ports 1)
    echo "$BENCH: run $RUN_NO: kamailio registrar ($CHILDREN workers) on 127.0.0.1:$kp, $REGS registrations at $RATE/s over $TRANSPORT" >&2
    local cfg tp tunp to="127.0.0.1:$kp" t=udp
    [[ "$TRANSPORT" == t1 ]] && t=tcp
    [[ "$TRANSPORT" == tls1 ]] && t=tls
    read -r cfg tp < <(kam_transport_cfg "$PEERS/kamailio/registrar.cfg" "$d" "$t")
    kam_start "$cfg" "$d" "$kp" "$kp" 512 -A "KAM_CHILDREN=$CHILDREN" -x "$MM" -X "$MM"
    if [[ "$TRANSPORT" == tls1 ]]; then
        read -r tunp < <(free_ports 1)
        stunnel_client "$d" "$tunp" "$tp" "$d/cert.pem"
        to="127.0.0.1:$tunp"
    fi
    read -r c0 k0 < <(tree_cpu_ticks "$KAM_PID")
    t0=$(date +%s.%N)
    (cd "$d" && exec timeout -k 5 "$BOUND" sipp "$to" -i 127.0.0.1 -t "${TRANSPORT/tls1/t1}" -buff_size 4194304 \
        -sf "$PEERS/sipp/reg_auth.xml" -inf "$PEERS/sipp/users.csv" -r "$RATE" -rp 1000 -m "$REGS" -l "$LIMIT" \
        -trace_rtt -rtt_freq 1 -trace_stat -stf stat.csv -fd 1 -nostdin > sipp.out 2>&1) &
    UAC=$!
    wait "$UAC" || rc=$?
    UAC=""
    t1=$(date +%s.%N)
    read -r c1 k1 < <(tree_cpu_ticks "$KAM_PID")
    [[ -z "$TUN_PID" ]] || { kill "$TUN_PID" 2>/dev/null || true; TUN_PID=""; }
    kam_stop
    read -r ok failed p50 p99 < <(sipp_summary "$d")
    rm -f "$d"/*_rtt.csv
    add_run "$TSV" peer "kamailio $CHILDREN workers" "$(per_op $(( c1 - c0 )) "$ok")" "$(per_op $(( k1 - k0 )) "$ok")" \
        "$failed" 0 "$(awk -v n="$ok" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')" "$RATE" \
        "p50 ${p50} ms p99 ${p99} ms" "$( (( rc == 0 )) || echo "sipp exit $rc")"
}

shardpbx_run() {
    local k="$1" d="$OUT/run$RUN_NO-shardpbx-$1" rc=0
    mkdir -p "$d"
    echo "$BENCH: run $RUN_NO: shardpbx $k shard(s), $REGS registrations at $RATE/s (run-register.sh)" >&2
    "$SCRIPT_DIR/run-register.sh" --bin "$BIN" --rate "$RATE" --duration "$DURATION" --shards "$k" \
        --users "$USERS" --transport "$TRANSPORT" > "$d/run-register.out" 2>&1 &
    SUB=$!
    wait "$SUB" || rc=$?
    SUB=""
    python3 - "$d/run-register.out" "$k" "$RATE" "$rc" >> "$TSV" <<'PY'
import re, sys
path, k, rate, rc = sys.argv[1:]
t = open(path, errors="replace").read()
def grab(pat, default="nan"):
    m = re.search(pat, t)
    return m.group(1) if m else default
ok = grab(r"successful\s+(\d+)", "0")
failed = grab(r"\n\s+failed\s+(\d+)", "0")
p50, p99 = grab(r"response time\s+p50 (\S+) ms"), grab(r"p99 (\S+) ms")
bindings = grab(r"bindings stored\s+(\S+)")
note = f"p50 {p50} ms p99 {p99} ms; bindings {bindings}"
# exit 1 = some registration failed (counted above); anything else is the runner failing
flag = "" if rc in ("0", "1") else f"run-register.sh exit {rc}"
print("\t".join(["shardpbx", f"{k} shard(s)", grab(r"server CPU per reg\s+([\d.]+)"), grab(r"in the kernel\s+([\d.]+)"),
                 failed, "0", grab(r"achieved rate\s+(\d+)"), rate, note, flag]))
PY
}

print_header "REGISTER with digest over $TRANSPORT: kamailio registrar.cfg ($CHILDREN workers) vs shardpbx (run-register.sh, $USERS users), $REGS registrations at $RATE/s, shards '$SHARDS', $ROUNDS round(s)"
echo "logs: $OUT"
run_interleaved "$ROUNDS" "$SHARDS" kamailio_run shardpbx_run
print_comparison "$TSV" reg reg/s
