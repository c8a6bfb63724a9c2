#!/usr/bin/env bash
# Overload benchmark (issue 14, "Overload"): offers twice the sustainable call
# rate for a window, then a quarter of it, and reports what the server made of it.
#
# usage: bench-scenarios/overload.sh [--max CPS] [--seconds S] [--recovery S] [--shards K]
#            [--bin PATH] [--calls N] [--keep]
#
#   --max CPS      the maximum sustainable rate (run-calls.sh --no-auth finds it); the
#                  window offers 2*CPS (default 4000)
#   --seconds S    the overload window (default 30)
#   --recovery S   then max/4 CPS for S seconds (default 10)
#   --shards K     [runtime] shards (default 1)
#   --calls N      cap on the calls of the window (default 2*max*seconds)
#   --bin PATH     the server (default target/release/shardpbx)
#   --proxy LINE   an extra line for the server's [proxy] table, e.g.
#                  'overload_max_delay_ms = 100' (repeatable)
#   --keep         keep the temp dir (config, server log, sipp stats) and print it
#
# Setup as run-calls.sh --no-auth: callers from a trunk's inbound_hosts (127.0.0.1),
# no media, callee a sipp uas registered as 1002. The callers run
# bench-scenarios/uac_overload.xml (sipp's built-in uac that also takes a 503 and
# checks its Retry-After): one sipp for the window, a second one for the recovery
# phase started when the window ends, each with -trace_counts and -trace_stat -fd 1.
#
# Prints: offered and achieved rates, goodput (completed calls, INVITE..BYE/200, per
# second of the window) and its ratio to --max, calls answered 503 (and how many
# lacked Retry-After), calls with no final answer (sipp gave up: -recv_timeout 10 s or
# its INVITE retransmissions ran out), other failures, the server's memory each second
# from /proc/<pid>/status (start, peak, end, growth of VmRSS, of RssAnon = the heap
# (mimalloc) and other anonymous memory, and of RssFile = mostly LMDB map pages, which
# VmRSS counts too), how long 503s went on after the load dropped (the last 503 the
# recovery sipp got, from its start), and the server's shed counters from /metrics.
# Goodput counts only calls completed within the window (sipp -trace_counts, one row a
# second); calls that complete later are listed apart. Everything is bounded: each sipp
# runs -m N under a hard timeout, the sampler stops with the run.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
MAX=4000 SECONDS_=30 RECOVERY=10 SHARDS=1 CALLS="" BIN="$REPO/target/release/shardpbx" KEEP=0 PROXY_EXTRA=""
while (( $# > 0 )); do
  case "$1" in
    --max) MAX="$2"; shift 2 ;;
    --seconds) SECONDS_="$2"; shift 2 ;;
    --recovery) RECOVERY="$2"; shift 2 ;;
    --shards) SHARDS="$2"; shift 2 ;;
    --calls) CALLS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --proxy) PROXY_EXTRA+="$2"$'\n'; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "overload: unknown option $1" >&2; exit 2 ;;
  esac
done
for v in MAX SECONDS_ RECOVERY SHARDS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "overload: --${v,,} must be a positive integer" >&2; exit 2; }
done
OFFER=$(( MAX * 2 )); LOW=$(( MAX / 4 > 0 ? MAX / 4 : 1 ))
N1=$(( OFFER * SECONDS_ )); [[ -n "$CALLS" ]] && (( CALLS < N1 )) && N1=$CALLS
N2=$(( LOW * RECOVERY ))
[[ -x "$BIN" ]] || (cd "$REPO" && nice -n 10 cargo build --release --locked)
command -v sipp >/dev/null || { echo "overload: sipp missing (scripts/install-deps.sh)" >&2; exit 2; }

TMP="$(mktemp -d)"; SRV_PID=""; UAS=""; P1=""; P2=""; SAMPLER=""
BENCH=overload
# shellcheck source=lib.sh
source "$SCRIPT_DIR/lib.sh"
cleanup() {
  for p in "$P1" "$P2" "$SAMPLER" "$UAS"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  stop_server
  wait 2>/dev/null || true
  if (( KEEP )); then echo "kept: $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

# free_ports picks above the RTP range (20000-39999).
read -r SIP HTTP UASP < <(free_ports 3)
write_noauth_config "$TMP" "$SIP" "$HTTP" "$SHARDS" "" "$PROXY_EXTRA"
"$BIN" run --config "$TMP/pbx.toml" 2> "$TMP/server.log" & SRV_PID=$!
wait_sip_ready "$SIP" "$SRV_PID" 10 || { tail -5 "$TMP/server.log" >&2; bench_die "server did not answer OPTIONS"; }

# The callee: sipp uas registered as 1002.
WALL=$(( SECONDS_ + RECOVERY + 60 ))
(cd "$TMP" && timeout "$WALL" sipp -sn uas -i 127.0.0.1 -p "$UASP" -nostdin -buff_size 4194304 \
   -m $(( N1 + N2 )) > /dev/null 2>&1) & UAS=$!
register_user "$SIP" 1002 secret1002 "$UASP" || bench_die "callee registration failed"

metrics() { python3 - "$HTTP" <<'PY' || true
import sys, urllib.request
try:
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode())
except Exception as e:
    print(f"# metrics unavailable: {e}")
PY
}
metrics > "$TMP/metrics.before"
# RSS each second (bounded: stops with the run or after WALL s).
( for (( i = 0; i < WALL * 2; i++ )); do
    r=$(awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s ", $2}' "/proc/$SRV_PID/status" 2>/dev/null) || break
    [[ -n "$r" ]] || break
    echo "$(date +%s.%N) $r"
    sleep 1
  done > "$TMP/rss.log" ) & SAMPLER=$!

SIPP_COMMON=(-sf "$SCRIPT_DIR/uac_overload.xml" -s 1002 -i 127.0.0.1 -nostdin -buff_size 4194304
             -recv_timeout 10000 -trace_stat -trace_counts -fd 1)
cpu() { awk '{t+=$14+$15} END {print t}' /proc/"$SRV_PID"/task/*/stat; }
udp_drops() { awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $6}' /proc/net/snmp; }
D0=$(udp_drops)
C0=$(cpu)
T0=$(date +%s.%N)
(cd "$TMP" && mkdir -p p1 && cd p1 && timeout "$WALL" sipp "127.0.0.1:$SIP" "${SIPP_COMMON[@]}" \
   -r "$OFFER" -m "$N1" -l $(( OFFER * 15 + 100 )) -stf stat.csv > out.txt 2>&1) & P1=$!
sleep "$SECONDS_"
T2=$(date +%s.%N); C2=$(cpu)
(cd "$TMP" && mkdir -p p2 && cd p2 && timeout $(( RECOVERY + 40 )) sipp "127.0.0.1:$SIP" "${SIPP_COMMON[@]}" \
   -r "$LOW" -m "$N2" -l $(( LOW * 15 + 100 )) -stf stat.csv -trace_logs -log_file shed.log \
   > out.txt 2>&1) & P2=$!
set +e
wait "$P1"; RC1=$?; P1=""
wait "$P2"; RC2=$?; P2=""
set -e
T3=$(date +%s.%N)
D3=$(udp_drops)
sleep 1
kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""
metrics > "$TMP/metrics.after"

python3 - "$TMP" "$MAX" "$OFFER" "$LOW" "$SECONDS_" "$RECOVERY" "$SHARDS" "$N1" "$N2" "$RC1" "$RC2" "$T0" "$T2" "$T3" "$C0" "$C2" "$(getconf CLK_TCK)" "$D0" "$D3" <<'PY'
import csv, glob, os, re, sys
tmp, mx, offer, low, win, rec, shards, n1, n2, rc1, rc2 = sys.argv[1:12]
t0, t2, t3 = map(float, sys.argv[12:15])
c0, c2, tick, d0, d3 = map(int, sys.argv[15:20])
mx, offer, low, win, rec = int(mx), int(offer), int(low), int(win), int(rec)

def last_row(path):
    rows = list(csv.reader(open(path), delimiter=";")) if os.path.exists(path) else []
    return dict(zip(rows[0], rows[-1])) if len(rows) > 1 else {}

def count_rows(d):
    """sipp's -trace_counts rows (cumulative per scenario step, one a second): (elapsed s, {step: n})."""
    files = glob.glob(os.path.join(tmp, d, "*_counts.csv"))
    rows = list(csv.reader(open(files[0]), delimiter=";")) if files else []
    out = []
    for r in rows[1:]:
        row = dict(zip(rows[0], r))
        h, m, sec, us = (int(x) for x in row.get("ElapsedTime", "0:0:0:0").split(":"))
        out.append((h * 3600 + m * 60 + sec + us / 1e6, {k: int(v) for k, v in row.items() if v.isdigit()}))
    return out

def counts(d):
    rows = count_rows(d)
    return rows[-1][1] if rows else {}

def window_goodput(d, secs):
    """Up to the end of the window: completed calls (the BYE's 200) per second, the same
    second by second, and new INVITEs sent per second (what sipp really offered)."""
    rows = [(t, c.get("9_200_Recv", 0), c.get("0_INVITE_Sent", 0))
            for t, c in count_rows(d) if t <= secs + 0.5]
    if not rows:
        return 0.0, [], 0.0
    per = [b - a for (_, a, _), (_, b, _) in zip([(0, 0, 0)] + rows, rows)]
    span = max(rows[-1][0], 1e-3)
    return rows[-1][1] / span, per, rows[-1][2] / span

def phase(d):
    st = last_row(os.path.join(tmp, d, "stat.csv"))
    c = counts(d)
    # Step columns are "<index>_<message>_<what>"; the INVITE is step 0, the 503 is step 4,
    # the 200 of the INVITE step 5, the 200 of the BYE step 9 (see uac_overload.xml).
    g = lambda key: sum(v for k, v in c.items() if k.startswith(key))
    num = lambda k: int(st.get(k, "0") or 0)
    created = num("TotalCallCreated")
    got503, ok200, done = g("4_503_Recv"), g("5_200_Recv"), g("9_200_Recv")
    unexp = num("FailedUnexpectedMessage(C)")
    no_ra = num("FailedRegexpHdrNotFound(C)") + num("FailedRegexpDoesntMatch(C)")
    return dict(created=created, got503=got503, answered=ok200, completed=done, unexpected=unexp,
                no_ra=no_ra, no_final=max(0, created - ok200 - got503 - unexp),
                retrans=num("Retransmissions(C)"), failed=num("FailedCall(C)"),
                timeouts=num("FailedMaxUDPRetrans(C)"), raw=c)

p1, p2 = phase("p1"), phase("p2")
print(f"overload: shards {shards}, max {mx} cps, offered {offer} cps for {win} s ({n1} calls), "
      f"then {low} cps for {rec} s ({n2} calls); sipp exit {rc1}/{rc2}")
good1, per1, sent1 = window_goodput("p1", win)
for name, p, secs, rate in (("window", p1, win, offer), ("recovery", p2, rec, low)):
    good = good1
    print(f"  {name}: offered {sent1:.0f} cps (new INVITEs sipp sent in the window; target {rate}), "
          f"goodput {good:.0f} cps = {100 * good / mx:.0f} % of max" if name == "window" else
          f"  {name}: created {p['created']}, completed {p['completed']}")
    if name == "window":
        print(f"    completed per second in the window: {' '.join(map(str, per1))}; "
              f"completed in all (late ones included) {p['completed']}")
    print(f"    503 {p['got503']} (without Retry-After: {p['no_ra']}), no final answer {p['no_final']}, "
          f"other failures {p['unexpected']} unexpected, {p['timeouts']} retransmissions ran out; "
          f"sipp retransmissions {p['retrans']}")
cpu_s = (c2 - c0) / tick
print(f"  server CPU in the window {cpu_s:.2f} s of {t2 - t0:.1f} s = {100 * cpu_s / (t2 - t0):.0f} % of a core "
      f"(all threads; 1 shard = at most one core for SIP)")
print(f"  UDP receive-buffer drops on the host during the run (/proc/net/snmp RcvbufErrors: "
      f"the server's and sipp's sockets): {d3 - d0}")
if p1["created"] == 0:
    print("  (sipp counted nothing: see out.txt with --keep)")
# RSS
samples = []
for line in open(os.path.join(tmp, "rss.log")):
    parts = line.split()
    if len(parts) >= 4:
        samples.append((float(parts[0]), [int(x) for x in parts[1:4]]))
for i, what in ((0, "RSS (VmRSS)"), (1, "heap and other anonymous memory (RssAnon)"),
                (2, "file pages mapped, mostly the LMDB map (RssFile)")):
    if not samples:
        break
    start = next((v[i] for t, v in samples if t >= t0 - 1.5), samples[0][1][i])
    peak = max(v[i] for _, v in samples)
    end = samples[-1][1][i]
    print(f"  server {what}, each second: start {start / 1024:.0f} MB, peak {peak / 1024:.0f} MB, "
          f"end {end / 1024:.0f} MB, growth {(peak - start) / 1024:.0f} MB")
# Recovery: when the recovery sipp got its last 503 (ms since it started).
ticks = []
for path in glob.glob(os.path.join(tmp, "p2", "shed.log")):
    for line in open(path):
        m = re.search(r"shed (\d+)", line)
        if m:
            ticks.append(int(m.group(1)))
if ticks:
    print(f"  recovery: 503s went on {max(ticks) / 1000:.1f} s after the load dropped ({len(ticks)} in the recovery phase)")
else:
    print("  recovery: no 503 after the load dropped")
def metric(path, name):
    tot = 0
    for line in open(path):
        if line.startswith(name):
            try:
                tot += float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return tot
before, after = os.path.join(tmp, "metrics.before"), os.path.join(tmp, "metrics.after")
for name in ("shardpbx_overload_shed_recv_backlog_total", "shardpbx_overload_shed_store_backlog_total", "shardpbx_overload_shed_peer_backlog_total", "shardpbx_tx_evicted_total", "shardpbx_handoff_dropped_total",
             "shardpbx_calls_completed_total", "shardpbx_calls_failed_total"):
    d = metric(after, name) - metric(before, name)
    print(f"  /metrics {name}: +{d:.0f}")
sent503 = lambda path: sum(float(l.rsplit(" ", 1)[1]) for l in open(path)
                           if l.startswith("shardpbx_sip_responses_sent_total") and 'code="503"' in l)
print(f"  /metrics 503 sent by the server: +{sent503(after) - sent503(before):.0f}")
PY
