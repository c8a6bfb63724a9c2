#!/usr/bin/env bash
# Installs what ShardPBX needs on a fresh Debian machine with Rust, only what
# is missing: sipp (package sip-tester), cmake and a C toolchain (bundled
# libopus), pkg-config, and schemathesis (PyPI, for tests/openapi.rs) in a
# venv under target/ unless it is on PATH. Safe to run again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
st_venv="$root/target/schemathesis"
st_spec='schemathesis>=4.32,<5'   # tested with 4.32.5
st_needed=0
if ! command -v schemathesis >/dev/null 2>&1 && ! "$st_venv/bin/schemathesis" --version >/dev/null 2>&1; then
  st_needed=1
fi

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "$st_needed" = 1 ]; then
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "install-deps: Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }

if [ "$st_needed" = 1 ]; then
  echo "install-deps: installing $st_spec into $st_venv"
  rm -rf "$st_venv"
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q --disable-pip-version-check "$st_spec"
fi
