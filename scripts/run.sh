#!/usr/bin/env bash
# Installs what is missing, builds ShardPBX in release mode and runs it with
# config/shardpbx.toml (or the config given as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked
exec target/release/shardpbx run --config "${1:-config/shardpbx.toml}"
