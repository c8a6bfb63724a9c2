#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite: unit tests of the
# sans-IO state machines and integration tests that start the real binary and
# drive it with sipp and raw UDP on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --locked --all-targets
cargo test --locked --workspace -- --test-threads="${TEST_THREADS:-4}"
