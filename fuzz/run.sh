#!/usr/bin/env bash
# Runs one fuzz target under AFL++ (cargo afl) for a number of seconds, at
# the lowest CPU priority, starting from the committed corpus.
#
#   fuzz/run.sh <target> <seconds>          e.g. fuzz/run.sh sdp 1800
#
# Targets: the [[bin]]s of Cargo.toml (sip_parse_roundtrip, sdp, sdp_webrtc,
# digest_params, rtp_rtcp, flow_decoder, stream_framer, ws_codec, ice_stun,
# srtp, webhook_json); dict/<target>.dict is used when there is one.
#
# Needs `cargo install cargo-afl` (builds AFL++ from the crate's bundled
# source with the system C compiler; stable Rust is enough). Findings go to
# fuzz/out/<target>/default/ (crashes/, hangs/, queue/, fuzzer_stats); the
# run's figures are printed at the end. `fuzz/run.sh <target> min` folds the
# queue of the last run into fuzz/corpus/<target> (afl-cmin: the smallest
# set of inputs with the same coverage).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: run.sh <target> <seconds>|min}
secs=${2:?usage: run.sh <target> <seconds>|min}
features=()
[[ $target == webhook_json ]] && features=(--features webhook)

# FUZZ_NO_BUILD=1: use the binary already built (a batch of runs builds once).
[[ ${FUZZ_NO_BUILD:-} == 1 ]] || nice -n 10 cargo afl build --release --bin "$target" "${features[@]}"
bin=target/release/$target
export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1

if [[ $secs == min ]]; then
    # afl-cmin.bash: the Python afl-cmin of this AFL++ finds no tuples with
    # Rust targets reading stdin.
    afl_bin=${AFL_BIN:-$(ls -d "$HOME"/.local/share/afl.rs/rustc-*/afl.rs-*/afl/bin | tail -1)}
    tmp=$(mktemp -d)
    mkdir "$tmp/in"
    cp corpus/"$target"/* "$tmp/in/"
    cp out/"$target"/default/queue/id* "$tmp/in/" 2>/dev/null || true
    nice -n 19 "$afl_bin"/afl-cmin.bash -i "$tmp/in" -o "$tmp/min" -- "$bin" > "$tmp/cmin.log" 2>&1
    if [[ -z $(ls -A "$tmp/min" 2>/dev/null) ]]; then
        echo "afl-cmin kept nothing; corpus unchanged (see $tmp/cmin.log)" >&2
        exit 1
    fi
    rm -rf corpus/"$target" && mkdir corpus/"$target"
    # Stable names (AFL's queue names carry ':' and ',').
    for f in "$tmp"/min/*; do
        cp "$f" corpus/"$target"/"$(sha1sum "$f" | cut -c1-16)"
    done
    rm -rf "$tmp"
    echo "$(ls corpus/"$target" | wc -l) files, $(cat corpus/"$target"/* | wc -c) bytes"
    exit 0
fi

dict=()
[[ -f dict/$target.dict ]] && dict=(-x "dict/$target.dict")
rm -rf out/"$target"
mkdir -p out
AFL_NO_UI=1 nice -n 19 cargo afl fuzz -i corpus/"$target" -o out/"$target" \
    -V "$secs" "${dict[@]}" -- "$bin" > out/"$target".log 2>&1 || true
stats=out/$target/default/fuzzer_stats
grep -E '^(start_time|last_update|run_time|execs_done|execs_per_sec|corpus_count|edges_found|total_edges|bitmap_cvg|saved_crashes|saved_hangs|command_line)' "$stats"
ls out/"$target"/default/crashes
