#!/usr/bin/env bash
# Calls, side by side in one run: Kamailio's stateful proxy (the peers'
# kamailio/proxy.cfg) against ShardPBX (run-calls.sh --no-auth, media none),
# the same sipp load on each: built-in uac -> server -> built-in uas,
# INVITE/100/180/200/ACK/BYE/200, no media, all on 127.0.0.1.
#
# usage: bench-scenarios/compare-calls.sh [--rate CPS] [--calls N] [--shards "K ..."]
#            [--rounds N] [--children W] [--mm MM] [--shm MB] [--transport T] [--bin PATH]
#            [--peers DIR] [--out DIR]
#
#   --rate CPS       calls per second offered to both (3000)
#   --calls N        calls per run (45000: 15 s at 3000 CPS)
#   --shards "K ..." ShardPBX shard counts, one run each per round ("2 1")
#   --rounds N       rounds (1). Order: Kamailio, ShardPBX with each shard count,
#                    Kamailio, then again for the next round (shards reversed)
#   --children W     Kamailio workers, -A KAM_CHILDREN=W (1)
#   --mm MM          Kamailio memory manager, -x/-X (fm, as scripts/bench_cps.py)
#   --shm MB         Kamailio shared memory, -m (4096, as scripts/bench_cps.py)
#   --transport T    the callers' leg: udp (default), tcp (every call over one TCP
#                    connection, sipp -t t1) or tls (the same through a local
#                    stunnel4 that verifies the server's certificate; stunnel's CPU
#                    is in neither figure). The callee leg (sipp uas) stays UDP.
#                    Kamailio gets a tcp listener, and for tls its tls module
#                    (lib.sh kam_transport_cfg); ShardPBX run-calls.sh --transport T
#                    --conn single.
#   --bin PATH       the server (target/release/shardpbx, built when missing)
#   --peers DIR      the peers' setup (../shared/peers beside the repository)
#   --out DIR        where each run's logs go (a new /tmp/shardpbx-compare-calls.* dir)
#
# Kamailio runs as scripts/bench_cps.py runs it (kamailio -DD -E -m SHM -M 16
# -x MM -X MM), on free ports: its config is copied with 5070/5080 replaced. Its
# CPU is utime+stime of its whole process tree (/proc) from just before the
# sipp caller starts to just after it exits; ShardPBX's is the same window in
# run-calls.sh. sipp runs with the same options on both sides.
#
# Prints one line per run (CPU per call and its kernel share in µs, the ratio
# ShardPBX/Kamailio against the mean of the Kamailio runs, failed calls,
# achieved/offered CPS, setup p50/p99; a run with failed calls or under 95 % of
# the offered rate is FLAGGED) and a summary. Exit 0 when every run completed.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
BENCH=compare-calls
BENCH_CMDLINE="bench-scenarios/compare-calls.sh $*"
SRV_PID=""
# shellcheck source=bench-scenarios/lib.sh
source "$SCRIPT_DIR/lib.sh"

RATE=3000 CALLS=45000 SHARDS="2 1" ROUNDS=1 CHILDREN=1 MM=fm SHM=4096 TRANSPORT=udp
BIN="$REPO/target/release/shardpbx" PEERS="$REPO/../shared/peers" OUT=""
while (( $# > 0 )); do
    case "$1" in
        --rate) need_int "$1" "${2-}"; RATE="$2"; shift 2 ;;
        --calls) need_int "$1" "${2-}"; CALLS="$2"; shift 2 ;;
        --shards) SHARDS="${2-}"; shift 2 ;;
        --rounds) need_int "$1" "${2-}"; ROUNDS="$2"; shift 2 ;;
        --children) need_int "$1" "${2-}"; CHILDREN="$2"; shift 2 ;;
        --mm) MM="${2-}"; shift 2 ;;
        --shm) need_int "$1" "${2-}"; SHM="$2"; shift 2 ;;
        --transport) [[ "${2-}" =~ ^(udp|tcp|tls)$ ]] || bench_die "--transport is udp, tcp or tls"; TRANSPORT="$2"; shift 2 ;;
        --bin) BIN="$(realpath -m "${2-}")"; shift 2 ;;
        --peers) PEERS="${2-}"; shift 2 ;;
        --out) OUT="${2-}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) bench_die "unknown option '$1' (see --help)" ;;
    esac
done
need_shards_and_rounds "$SHARDS" "$ROUNDS"
PEERS="$(realpath -m "$PEERS")"
[[ -f "$PEERS/kamailio/proxy.cfg" ]] || bench_die "no $PEERS/kamailio/proxy.cfg (give --peers DIR)"
need_tool sipp sip-tester
need_tool kamailio kamailio
need_tool python3 python3
ensure_release_bin "$REPO" "$BIN"
OUT="${OUT:-$(mktemp -d /tmp/shardpbx-compare-calls.XXXXXX)}"
mkdir -p "$OUT"
TSV="$OUT/runs.tsv"
: > "$TSV"
BOUND=$(( CALLS / RATE + 60 ))   # every sipp runs under this hard timeout

UAS="" UAC="" SUB="" TUN_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z "$UAC" ]] || stop_tree "$UAC" 5
    [[ -z "$TUN_PID" ]] || kill "$TUN_PID" 2>/dev/null || true
    [[ -z "$UAS" ]] || stop_tree "$UAS" 5
    kam_stop
    [[ -z "$SUB" ]] || stop_tree "$SUB" 20
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kamailio_run() {
    local d="$OUT/run$RUN_NO-kamailio" kp up c0 k0 c1 k1 t0 t1 rc=0 ok failed p50 p99
    mkdir -p "$d"
    read -r kp up < <(free_ports 2)
    echo "$BENCH: run $RUN_NO: kamailio ($CHILDREN worker(s)) on 127.0.0.1:$kp, $CALLS calls at $RATE CPS, callers over $TRANSPORT" >&2
    local cfg tp tunp to="127.0.0.1:$kp" tflag=()
    read -r cfg tp < <(kam_transport_cfg "$PEERS/kamailio/proxy.cfg" "$d" "$TRANSPORT")
    kam_start "$cfg" "$d" "$kp" "$up" "$SHM" -A "KAM_CHILDREN=$CHILDREN" -x "$MM" -X "$MM"
    [[ "$TRANSPORT" == udp ]] || tflag=(-t t1)
    if [[ "$TRANSPORT" == tls ]]; then
        read -r tunp < <(free_ports 1)
        stunnel_client "$d" "$tunp" "$tp" "$d/cert.pem"
        to="127.0.0.1:$tunp"
    fi
    (cd "$d" && exec timeout -k 5 "$BOUND" sipp -sn uas -i 127.0.0.1 -p "$up" -nostdin -buff_size 4194304 \
        -m "$CALLS" > uas.out 2>&1) &
    UAS=$!
    wait_udp_bound "$up" 10 "$UAS" || bench_die "sipp uas did not bind 127.0.0.1:$up"
    sleep 0.5
    read -r c0 k0 < <(tree_cpu_ticks "$KAM_PID")
    t0=$(date +%s.%N)
    (cd "$d" && exec timeout -k 5 "$BOUND" sipp "$to" "${tflag[@]}" -sn uac -s 1002 -i 127.0.0.1 -r "$RATE" \
        -m "$CALLS" -l $(( RATE * 2 + 10 )) -nostdin -buff_size 4194304 \
        -trace_stat -stf stat.csv -trace_rtt -rtt_freq 1 > uac.out 2>&1) &
    UAC=$!
    wait "$UAC" || rc=$?
    UAC=""
    t1=$(date +%s.%N)
    read -r c1 k1 < <(tree_cpu_ticks "$KAM_PID")
    [[ -z "$TUN_PID" ]] || { kill "$TUN_PID" 2>/dev/null || true; TUN_PID=""; }
    stop_tree "$UAS" 5
    UAS=""
    kam_stop
    read -r ok failed p50 p99 < <(sipp_summary "$d")
    rm -f "$d"/*_rtt.csv
    add_run "$TSV" peer "kamailio $CHILDREN worker(s)" "$(per_op $(( c1 - c0 )) "$ok")" "$(per_op $(( k1 - k0 )) "$ok")" \
        "$failed" 0 "$(awk -v n="$ok" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')" "$RATE" \
        "setup p50 ${p50} ms p99 ${p99} ms" "$( (( rc == 0 )) || echo "sipp exit $rc")"
}

shardpbx_run() {
    local k="$1" d="$OUT/run$RUN_NO-shardpbx-$1" rc=0
    mkdir -p "$d"
    echo "$BENCH: run $RUN_NO: shardpbx $k shard(s), $CALLS calls at $RATE CPS (run-calls.sh --no-auth)" >&2
    "$SCRIPT_DIR/run-calls.sh" --bin "$BIN" --no-auth --rate "$RATE" --calls "$CALLS" --shards "$k" \
        --transport "$TRANSPORT" --conn single > "$d/run-calls.out" 2>&1 &
    SUB=$!
    wait "$SUB" || rc=$?
    SUB=""
    # run-calls.sh prints server CPU (s) and its stime (s) over sipp's run, successes and CDRs.
    python3 - "$d/run-calls.out" "$k" "$RATE" "$rc" "$CALLS" >> "$TSV" <<'PY'
import re, sys
path, k, rate, rc, calls = sys.argv[1:]
t = open(path, errors="replace").read()
def grab(pat, default="nan"):
    m = re.search(pat, t)
    return m.group(1) if m else default
ok = int(grab(r"successful (\d+), failed", "0"))
failed = grab(r"successful \d+, failed (\d+)", "0")
wall = float(grab(r"achieved \d+ cps over ([\d.]+) s"))
cpu = float(grab(r"server CPU ([\d.]+) s ="))
kern = float(grab(r"in the kernel \(stime\) ([\d.]+) s"))
per = lambda s: f"{s * 1e6 / ok:.1f}" if ok else "nan"
ach = f"{ok / wall:.0f}" if wall == wall and wall > 0 else "nan"
p50, p99, cdrs = grab(r"p50 (\d+) ms"), grab(r"p99 (\d+) ms"), grab(r"CDRs stored (\d+)")
note = f"setup p50 {p50} ms p99 {p99} ms; CDRs {cdrs}/{ok}"
flag = "" if rc == "0" else f"run-calls.sh exit {rc}"
if ok and cdrs != str(ok):
    note += " (CDRs missing)"
print("\t".join(["shardpbx", f"{k} shard(s)", per(cpu), per(kern), failed, "0", ach, rate, note, flag]))
PY
}

print_header "calls (callers over $TRANSPORT): kamailio proxy.cfg ($CHILDREN worker(s)) vs shardpbx (run-calls.sh --no-auth, media none), $CALLS calls at $RATE CPS, shards '$SHARDS', $ROUNDS round(s)"
echo "logs: $OUT"
run_interleaved "$ROUNDS" "$SHARDS" kamailio_run shardpbx_run
print_comparison "$TSV" call CPS
