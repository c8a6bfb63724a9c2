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

# ---------------------------------------------------------------------------
# What the compare-*.sh and sustained.sh scripts share: one place for each rule.
# Functions only; nothing runs when this file is sourced. BENCH names the
# caller in messages.

bench_die() { echo "${BENCH:-bench}: $*" >&2; exit 2; }

# need_int OPTION VALUE: dies unless VALUE is a positive integer.
need_int() { [[ "$2" =~ ^[0-9]+$ ]] && (( "$2" > 0 )) || bench_die "$1 needs a positive integer, got '$2'"; }

# need_shards_and_rounds "K ..." ROUNDS: the compare-*.sh checks of --shards
# (positive integers, at least one) and --rounds (at most 20).
need_shards_and_rounds() {
    local k
    for k in $1; do need_int --shards "$k"; done
    [[ -n "${1// /}" ]] || bench_die "--shards needs at least one shard count"
    (( $2 <= 20 )) || bench_die "--rounds is at most 20"
}

# need_tool CMD PACKAGE: dies with how to install CMD when it is missing.
need_tool() {
    command -v "$1" >/dev/null 2>&1 && return 0
    bench_die "$1 is not installed: apt-get install -y $2 (Debian; scripts/install-deps.sh installs sipp, kamailio and gcc)"
}

# ensure_release_bin REPO BIN: builds target/release/shardpbx when BIN is the
# default path and missing (a clean clone); dies when a given BIN is missing.
ensure_release_bin() {
    local repo="$1" bin="$2"
    [[ -x "$bin" ]] && return 0
    [[ "$bin" == "$repo/target/release/shardpbx" ]] || bench_die "$bin is not an executable"
    echo "${BENCH:-bench}: $bin missing, running cargo build --release --locked" >&2
    (cd "$repo" && nice -n 10 cargo build --release --locked) || bench_die "cargo build --release --locked failed"
    [[ -x "$bin" ]] || bench_die "the build did not produce $bin"
}

# ensure_rtp_load REPO: builds bench-scenarios/rtp-load (the RTP generator and
# the tools beside it) when its release binaries are missing.
ensure_rtp_load() {
    local dir="$1/bench-scenarios/rtp-load"
    [[ -x "$dir/target/release/rtp-load" && -x "$dir/target/release/rtp-reflector" ]] && return 0
    nice -n 10 cargo build --release --locked --manifest-path "$dir/Cargo.toml" \
        || nice -n 10 cargo build --release --locked --offline --manifest-path "$dir/Cargo.toml" \
        || bench_die "cannot build $dir"
}

# --- port picking -------------------------------------------------------------
# free_ports N: N distinct ports in 40000-65000, each free on 127.0.0.1 for both
# UDP and TCP (above the default RTP range 20000-39999), on one line.
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
want, ports = int(sys.argv[1]), []
for _ in range(500):
    p = random.randint(40000, 65000)
    if p in ports:
        continue
    ok = True
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        ports.append(p)
        if len(ports) == want:
            break
if len(ports) < want:
    sys.exit("no free ports")
print(*ports)
PY
}

# wait_udp_bound PORT SECONDS [PID]: waits until something binds UDP
# 127.0.0.1:PORT (/proc/net/udp); fails after SECONDS or when PID exits.
wait_udp_bound() {
    local want i
    want="$(printf '0100007F:%04X' "$1")"
    for (( i = 0; i < $2 * 20; i++ )); do
        awk -v w="$want" 'NR > 1 && $2 == w {f = 1} END {exit !f}' /proc/net/udp && return 0
        [[ -z "${3:-}" ]] || kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# --- CPU from /proc -----------------------------------------------------------
# tree_pids PID: PID and its live descendants, one a line.
tree_pids() {
    local todo=("$1") p c
    while (( ${#todo[@]} > 0 )); do
        p="${todo[0]}"; todo=("${todo[@]:1}")
        echo "$p"
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do todo+=("$c"); done
    done
}

# tree_cpu_ticks PID: "total kernel" CPU ticks (utime+stime, stime) of PID and its
# live descendants, all threads of each (field 14 and 15 of /proc/PID/stat,
# which count the process's exited threads too). CLK_TCK ticks a second.
tree_cpu_ticks() {
    local p s t=0 k=0
    for p in $(tree_pids "$1"); do
        { read -r s < "/proc/$p/stat"; } 2>/dev/null || continue
        s="${s##*) }"
        # shellcheck disable=SC2086
        set -- $s
        t=$(( t + ${12} + ${13} )); k=$(( k + ${13} ))
    done
    echo "$t $k"
}

# mem_kb PID: "VmRSS RssAnon" in KiB (RssAnon: anonymous memory, the heap;
# VmRSS also counts the LMDB map's file pages).
mem_kb() {
    awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} END {print r + 0, a + 0}' "/proc/$1/status" 2>/dev/null || echo "0 0"
}

# --- Kamailio (the peers' configs) ---------------------------------------------
# kam_start CFG DIR PORT DEST_PORT SHM_MB [kamailio args...]: copies CFG into DIR
# with its fixed ports replaced (5070 -> PORT, where it listens; 5080 ->
# DEST_PORT, where the proxy relays), starts `kamailio -DD -E` (foreground, logs
# to DIR/kamailio.log) and waits until it binds PORT. Sets KAM_PID.
KAM_PID=""
kam_start() {
    local cfg="$1" dir="$2" port="$3" dest="$4" shm="$5"; shift 5
    mkdir -p "$dir/run"
    sed -e "s/127\.0\.0\.1:5070/127.0.0.1:$port/g" -e "s/127\.0\.0\.1:5080/127.0.0.1:$dest/g" "$cfg" > "$dir/kamailio.cfg"
    kamailio -f "$dir/kamailio.cfg" -DD -E -m "$shm" -M 16 -P "$dir/run/kamailio.pid" -Y "$dir/run" "$@" \
        > "$dir/kamailio.log" 2>&1 &
    KAM_PID=$!
    if ! wait_udp_bound "$port" 10 "$KAM_PID"; then
        tail -n 20 "$dir/kamailio.log" >&2 || true
        kam_stop
        bench_die "kamailio did not bind 127.0.0.1:$port (log above)"
    fi
    sleep 1   # its workers finish starting after the bind, as scripts/bench_cps.py waits
}

# stunnel_client DIR ACCEPT CONNECT CAFILE: a stunnel4 in client mode (TLS
# 1.2+ to 127.0.0.1:CONNECT, verifying the server's certificate against
# CAFILE and the IP 127.0.0.1) taking plain TCP on 127.0.0.1:ACCEPT, for
# sipp (Debian's is built without TLS). Sets TUN_PID; returns once ACCEPT
# takes connections (5 s at most). Its CPU is not the server's.
stunnel_client() {
    local dir="$1" accept="$2" connect="$3" ca="$4"
    command -v stunnel4 >/dev/null || bench_die "stunnel4 missing (scripts/install-deps.sh)"
    printf 'foreground = yes\npid =\nsyslog = no\ndebug = 3\noutput = %s/stunnel.log\n[sip]\nclient = yes\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\nCAfile = %s\nverifyChain = yes\ncheckIP = 127.0.0.1\n' \
        "$dir" "$accept" "$connect" "$ca" > "$dir/stunnel.conf"
    stunnel4 "$dir/stunnel.conf" &
    TUN_PID=$!
    local _
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$accept") 2>/dev/null && return 0; sleep 0.1; done
    bench_die "stunnel did not listen on 127.0.0.1:$accept ($dir/stunnel.log)"
}

# kam_transport_cfg SRC DIR T: the peers' Kamailio config SRC made to take
# SIP over T as well as UDP, written in DIR; prints "CFG TLS_PORT". T: udp
# (SRC as it is), tcp (disable_tcp=no, a tcp listener on its own port), tls
# (also its tls module listening on a free port, with a fresh self-signed
# P-256 certificate DIR/cert.pem for clients to verify). SRC must have one
# `listen=udp:127.0.0.1:5070` line; kam_start puts the real port in.
kam_transport_cfg() {
    local src="$1" dir="$2" t="$3" cfg tp=0
    case "$t" in
        udp) echo "$src 0"; return 0 ;;
        tcp)
            cfg="$dir/kamailio-tcp.cfg"
            sed -e 's/^disable_tcp=yes/disable_tcp=no/' \
                -e 's/^listen=udp:127\.0\.0\.1:5070$/&\nlisten=tcp:127.0.0.1:5070/' "$src" > "$cfg"
            grep -q '^listen=tcp:' "$cfg" || bench_die "no udp listen line to add tcp to in $src"
            ;;
        tls)
            read -r tp < <(free_ports 1)
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
                -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
                -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || bench_die "openssl req failed"
            printf '[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = %s/key.pem\ncertificate = %s/cert.pem\n' \
                "$dir" "$dir" > "$dir/tls.cfg"
            cfg="$dir/kamailio-tls.cfg"
            sed -e 's/^disable_tcp=yes/disable_tcp=no/' \
                -e "s/^listen=udp:127\\.0\\.0\\.1:5070\$/&\\nenable_tls=yes\\nlisten=tls:127.0.0.1:$tp/" \
                -e "0,/^loadmodule /s#^loadmodule .*#loadmodule \"tls.so\"\\nmodparam(\"tls\", \"config\", \"$dir/tls.cfg\")\\n&#" \
                "$src" > "$cfg"
            grep -q '^listen=tls:' "$cfg" && grep -q 'tls.so' "$cfg" || bench_die "could not add tls to $src"
            ;;
        *) bench_die "kam_transport_cfg: unknown transport $t" ;;
    esac
    echo "$cfg $tp"
}

# kam_stop: stops kamailio (its main process stops its children).
kam_stop() {
    [[ -n "$KAM_PID" ]] || return 0
    local pid="$KAM_PID"
    KAM_PID=""
    stop_tree "$pid" 10
}

# stop_tree PID SECONDS: SIGTERM to PID (a process this script started), up to
# SECONDS for it to exit, then SIGKILL to it and to every descendant it had
# when asked to stop, by pid.
stop_tree() {
    local pid="$1" kids i
    kids="$(tree_pids "$pid" | tail -n +2)"
    kill -TERM "$pid" 2>/dev/null || true
    for (( i = 0; i < $2 * 10; i++ )); do
        kill -0 "$pid" 2>/dev/null || break
        [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == "Z" ]] && break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for i in $kids; do kill -KILL "$i" 2>/dev/null || true; done
}

# run_interleaved ROUNDS "K1 K2 ..." PEER_FN PBX_FN: the order of the runs of a
# comparison: the peer, then ShardPBX with each shard count, then the peer
# again, ROUNDS times (a peer run closes one round and opens the next; the
# shard order is reversed every other round so drift hits each alike). With
# ROUNDS 1 and "2 1": peer, 2 shards, 1 shard, peer. Sets RUN_NO before each call.
RUN_NO=0
run_interleaved() {
    local rounds="$1" r k list
    local -a order
    read -r -a order <<< "$2"
    RUN_NO=$(( RUN_NO + 1 )); "$3"
    for (( r = 1; r <= rounds; r++ )); do
        list=("${order[@]}")
        if (( r % 2 == 0 )); then
            list=()
            for (( k = ${#order[@]} - 1; k >= 0; k-- )); do list+=("${order[k]}"); done
        fi
        for k in "${list[@]}"; do RUN_NO=$(( RUN_NO + 1 )); "$4" "$k"; done
        RUN_NO=$(( RUN_NO + 1 )); "$3"
    done
}

# per_op TICKS OPS: CPU ticks as µs per operation, 1 decimal ("nan" when OPS is 0).
per_op() {
    awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "nan" }'
}

# --- sipp results -----------------------------------------------------------------
# sipp_summary DIR: "successful failed p50_ms p99_ms" from DIR/stat.csv (last
# row, by column name) and DIR/*_rtt.csv (sipp -trace_stat -trace_rtt).
sipp_summary() {
    python3 - "$1" <<'PY'
import csv, glob, math, os, sys
d = sys.argv[1]
st = {}
try:
    with open(os.path.join(d, "stat.csv"), newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=";") if r]
    st = dict(zip(rows[0], rows[-1])) if len(rows) >= 2 else {}
except OSError:
    pass
rtt = []
for p in glob.glob(os.path.join(d, "*_rtt.csv")):
    for line in open(p):
        parts = line.strip().split(";")
        try:
            rtt.append(float(parts[1]))
        except (IndexError, ValueError):
            pass
rtt.sort()
pct = lambda q: f"{rtt[max(0, math.ceil(q * len(rtt)) - 1)]:.0f}" if rtt else "nan"
print(st.get("SuccessfulCall(C)", "0") or 0, st.get("FailedCall(C)", "0") or 0, pct(0.5), pct(0.99))
PY
}

# --- the report of a comparison ---------------------------------------------------
# print_header TITLE: date, machine and command line (for perf/RESULTS.md).
print_header() {
    echo "== $1"
    echo "date $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "command: $BENCH_CMDLINE"
}

# add_run TSV SIDE LABEL CPU_US KERN_US FAILED BREAKS ACHIEVED OFFERED NOTE [FLAG]:
# one run of a comparison. SIDE is peer or shardpbx; CPU_US and KERN_US are CPU
# per operation (total, kernel; "nan" when unknown); FAILED counts failed
# operations (calls, registrations, lost packets), BREAKS seq/timestamp breaks
# (RTP; 0 elsewhere); ACHIEVED and OFFERED the rate; FLAG a reason to flag the run
# beyond the rule below (e.g. the runner failed).
add_run() {
    local tsv="$1"; shift
    local IFS=$'\t'
    echo "$*" >> "$tsv"
}

# print_comparison TSV OP RATE_UNIT: the table of runs in order and the ratios
# ShardPBX / peer. An optional 11th TSV field is the machine's busy CPU per
# operation (every process and softirq, the load generator included); when
# runs have it, the summary gives those ratios too. The rule for flagging a run lives here alone: failures, seq
# or timestamp breaks, an achieved rate under 95 % of the offered one, or a
# FLAG from the runner. Ratios are against the mean of the first peer's unflagged
# runs (all its runs when every one is flagged); the summary gives every peer.
print_comparison() {
    python3 - "$@" <<'PY'
import math, statistics, sys
tsv, op, unit = sys.argv[1:4]
runs = []
for n, line in enumerate(open(tsv), 1):
    f = line.rstrip("\n").split("\t")
    f += [""] * (11 - len(f))
    side, label, cpu, kern, failed, breaks, ach, off, note, flag, mach = f[:11]
    num = lambda v: float(v) if v not in ("", "nan") else math.nan
    r = dict(n=n, side=side, label=label, cpu=num(cpu), kern=num(kern), failed=int(num(failed) if failed not in ("", "nan") else 0),
             breaks=int(num(breaks) if breaks not in ("", "nan") else 0), ach=num(ach), off=num(off), note=note, flag=flag,
             mach=num(mach))
    why = []
    if r["flag"]:
        why.append(r["flag"])
    if r["failed"]:
        why.append(f"{r['failed']} failed")
    if r["breaks"]:
        why.append(f"{r['breaks']} seq/ts breaks")
    if not (r["ach"] >= 0.95 * r["off"]):
        why.append("under 95 % of the offered rate")
    if math.isnan(r["cpu"]):
        why.append("no CPU figure")
    r["why"] = "; ".join(why)
    runs.append(r)
peers = []
for r in runs:
    if r["side"] == "peer" and r["label"] not in peers:
        peers.append(r["label"])
def mean(rs, key):
    good = [r[key] for r in rs if not r["why"] and not math.isnan(r[key])]
    if not good:
        good = [r[key] for r in rs if not math.isnan(r[key])]
    return statistics.fmean(good) if good else math.nan
pmean = {p: (mean([r for r in runs if r["label"] == p], "cpu"), mean([r for r in runs if r["label"] == p], "kern")) for p in peers}
base = pmean[peers[0]] if peers else (math.nan, math.nan)
fmt = lambda v, d=1: "-" if math.isnan(v) else f"{v:.{d}f}"
ratio = lambda a, b: "-" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"
print(f"{'run':>3}  {'side':<8}  {'what':<26}  {'CPU/' + op + ' µs':>12}  {'kernel µs':>9}  {'ratio':>6}  {'kernel':>6}  {'failed':>6}  {'achieved/offered ' + unit:<26}  note")
for r in runs:
    rr = ratio(r["cpu"], base[0]) if r["side"] != "peer" else ""
    rk = ratio(r["kern"], base[1]) if r["side"] != "peer" else ""
    rate = f"{fmt(r['ach'], 0)}/{fmt(r['off'], 0)}"
    print(f"{r['n']:>3}  {r['side']:<8}  {r['label']:<26}  {fmt(r['cpu']):>12}  {fmt(r['kern']):>9}  {rr:>6}  {rk:>6}  {r['failed']:>6}  {rate:<26}  {r['note']}"
          + (f"  FLAGGED: {r['why']}" if r["why"] else ""))
print("summary (means of unflagged runs; ratio = ShardPBX / peer, CPU per " + op + ", total and kernel):")
for p in peers:
    rs = [r for r in runs if r["label"] == p]
    print(f"  peer {p}: {', '.join(fmt(r['cpu']) for r in rs)} µs; mean {fmt(pmean[p][0])} µs (kernel {fmt(pmean[p][1])} µs)")
labels = []
for r in runs:
    if r["side"] != "peer" and r["label"] not in labels:
        labels.append(r["label"])
for l in labels:
    rs = [r for r in runs if r["label"] == l]
    c, k = mean(rs, "cpu"), mean(rs, "kern")
    vs = "; ".join(f"{ratio(c, pmean[p][0])} {p} (kernel {ratio(k, pmean[p][1])})" for p in peers)
    print(f"  shardpbx {l}: {', '.join(fmt(r['cpu']) for r in rs)} µs; mean {fmt(c)} µs (kernel {fmt(k)} µs) -> {vs}")
if any(not math.isnan(r["mach"]) for r in runs):
    print("machine-wide (every CPU busy, load generator and softirqs included), CPU per " + op + ":")
    pm = {p: mean([r for r in runs if r["label"] == p], "mach") for p in peers}
    for p in peers:
        print(f"  peer {p}: {', '.join(fmt(r['mach']) for r in runs if r['label'] == p)} µs; mean {fmt(pm[p])} µs")
    for l in labels:
        m = mean([r for r in runs if r["label"] == l], "mach")
        vs = "; ".join(f"{ratio(m, pm[p])} {p}" for p in peers)
        print(f"  shardpbx {l}: {', '.join(fmt(r['mach']) for r in runs if r['label'] == l)} µs; mean {fmt(m)} µs -> {vs}")
flagged = [r for r in runs if r["why"]]
print(f"  flagged runs: {len(flagged)} of {len(runs)}" + (" (" + ", ".join(f"run {r['n']}" for r in flagged) + ")" if flagged else ""))
PY
}

# sample_on_markers ERRFILE GEN_PID WATCH_PID BOUND_S: while an rtp-load
# generator (GEN_PID, its stderr in ERRFILE) runs, samples WATCH_PID's CPU
# (tree_cpu_ticks) and the machine's busy time (machine_busy_ticks) at its
# "MEDIA START" and "MEDIA END" lines. Each wait is bounded by BOUND_S and by
# the generator's life. Sets MARK_C0 MARK_K0 MARK_C1 MARK_K1 MARK_M0 MARK_M1
# (ticks; empty when a marker never came).
sample_on_markers() {
    local err="$1" gen="$2" watch="$3" bound="$4" i
    MARK_C0="" MARK_K0="" MARK_C1="" MARK_K1="" MARK_M0="" MARK_M1=""
    for (( i = 0; i < bound * 20; i++ )); do
        grep -qs '^MEDIA START' "$err" && break
        kill -0 "$gen" 2>/dev/null || break
        sleep 0.05
    done
    grep -qs '^MEDIA START' "$err" || return 0
    read -r MARK_C0 MARK_K0 < <(tree_cpu_ticks "$watch")
    MARK_M0=$(machine_busy_ticks)
    for (( i = 0; i < bound * 20; i++ )); do
        grep -qs '^MEDIA END' "$err" && break
        kill -0 "$gen" 2>/dev/null || break
        sleep 0.05
    done
    grep -qs '^MEDIA END' "$err" || return 0
    read -r MARK_C1 MARK_K1 < <(tree_cpu_ticks "$watch")
    MARK_M1=$(machine_busy_ticks)
}

# machine_busy_ticks: the ticks every CPU of the machine spent busy (user,
# nice, system, irq, softirq, steal of /proc/stat's "cpu" line): the work
# of every process, and of the kernel's softirqs whoever they ran for. What
# an in-kernel path costs shows here, not in its own process's time.
machine_busy_ticks() {
    local cpu user nice sys idle iowait irq softirq steal
    read -r cpu user nice sys idle iowait irq softirq steal _ < /proc/stat
    echo $(( user + nice + sys + irq + softirq + steal ))
}

# --- a ShardPBX of the script's own ------------------------------------------------
# write_noauth_config DIR SIP HTTP SHARDS RUNTIME_EXTRA PROXY_EXTRA: DIR/pbx.toml
# and DIR/trunks.toml for the no-auth call shape (run-calls.sh --no-auth,
# overload.sh, setup-latency.sh): callers from a trunk whose inbound_hosts is
# 127.0.0.1, callee 1002 (password secret1002) in a memory backend, media
# none, SIP on 127.0.0.1:SIP, HTTP on 127.0.0.1:HTTP, data in DIR/data, the
# load generator trusted (no flood limit). The extras are extra lines for the
# [runtime] and [proxy] tables ("" for none).
write_noauth_config() {
    local dir="$1" sip="$2" http="$3" shards="$4" runtime_extra="$5" proxy_extra="$6"
    cat > "$dir/pbx.toml" <<CFG
http_addr = "127.0.0.1:$http"
data_dir = "$dir/data"
log_level = "warn"
[runtime]
shards = $shards
$runtime_extra
[proxy]
addr = "127.0.0.1"
udp_port = $sip
realms = ["127.0.0.1"]
routes_files = []
trunks_files = ["$dir/trunks.toml"]
max_ring_time = 30
media_proxy = "none"
$proxy_extra
[[proxy.user_backends]]
type = "memory"
users = [{ username = "1002", password = "secret1002" }]
[security]
trusted = ["127.0.0.0/8"]   # the load generator: no flood limit
CFG
    printf '[trunks.loadgen]\ninbound_hosts = ["127.0.0.1"]\n' > "$dir/trunks.toml"
}

# wait_sip_ready PORT PID SECONDS: waits until the server (PID) answers an
# OPTIONS on 127.0.0.1:PORT; fails when it exits or after SECONDS.
wait_sip_ready() {
    python3 - "$@" <<'PY'
import socket, sys, time
port, pid, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(0.2)
me = s.getsockname()[1]
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
end, n = time.monotonic() + secs, 0
while time.monotonic() < end and alive():
    n += 1
    s.sendto((f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-ready-{n};rport\r\n"
              f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
              f"Call-ID: ready-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
    try:
        if s.recv(65535).startswith(b"SIP/2.0 "):
            sys.exit(0)
    except (socket.timeout, ConnectionRefusedError):
        time.sleep(0.05)
sys.exit(1)
PY
}

# register_user SIP_PORT USER PASSWORD CONTACT_PORT: registers
# sip:USER@127.0.0.1:CONTACT_PORT (digest, realm 127.0.0.1), as run-calls.sh
# registers its callee. Fails unless the server answers 200.
register_user() {
    python3 - "$@" <<'PY'
import hashlib, re, socket, sys
sip, user, pw, contact = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(2)
me = "127.0.0.1:%d" % s.getsockname()[1]
def reg(cseq, auth=""):
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg{cseq};rport\r\n"
            f"From: <sip:{user}@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: bench-reg-{user}\r\n"
            f"CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{contact}>\r\n{auth}Expires: 3600\r\n"
            "Content-Length: 0\r\n\r\n").encode()
s.sendto(reg(1), ("127.0.0.1", sip))
m = re.search('nonce="([^"]+)"', s.recv(4096).decode(errors="replace"))
if not m:
    sys.exit("no digest challenge")
h = lambda x: hashlib.md5(x.encode()).hexdigest()
resp = h(f"{h(f'{user}:127.0.0.1:{pw}')}:{m.group(1)}:00000001:c:auth:{h('REGISTER:sip:127.0.0.1')}")
s.sendto(reg(2, f'Authorization: Digest username="{user}", realm="127.0.0.1", nonce="{m.group(1)}", '
                f'uri="sip:127.0.0.1", response="{resp}", cnonce="c", nc=00000001, qop=auth\r\n'), ("127.0.0.1", sip))
if not s.recv(4096).startswith(b"SIP/2.0 200"):
    sys.exit(f"registration of {user} failed")
PY
}
