#!/usr/bin/env bash
# Runs one fuzz target under AFL++ (cargo afl) for a number of seconds, at
# the lowest CPU priority, starting from the committed corpus.
#
#   fuzz/run.sh <target> <seconds>          e.g. fuzz/run.sh sdp 1800
#
# Needs `cargo install cargo-afl` (builds AFL++ from the crate's bundled
# source with the system C compiler; stable Rust is enough). Findings go to
# fuzz/out/<target>/default/ (crashes/, hangs/, queue/, fuzzer_stats); the
# run's figures are printed at the end. `fuzz/run.sh <target> min` folds the
# queue of the last run back into fuzz/corpus/<target> (afl-cmin).
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
    tmp=$(mktemp -d)
    cp out/"$target"/default/queue/id* corpus/"$target"/ 2>/dev/null || true
    nice -n 19 cargo afl cmin -i corpus/"$target" -o "$tmp/min" -- "$bin"
    rm -rf corpus/"$target" && mv "$tmp/min" corpus/"$target" && rm -rf "$tmp"
    # Stable names (AFL's queue names carry ':' and ',').
    (cd corpus/"$target" && for f in *; do
        h=$(sha1sum "$f" | cut -c1-16)
        [[ $f == "$h" ]] || mv -f "$f" "$h"
    done)
    du -sh corpus/"$target"
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
