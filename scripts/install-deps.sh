#!/usr/bin/env bash
# Installs what ShardPBX needs on a fresh Debian machine with Rust, only what
# is missing: sipp (package sip-tester), baresip (package baresip-core, the
# stock libre phone of tests/registrar.rs), cmake and a C toolchain (bundled
# libopus), clang (builds the kernel's SIP steering and RTP programs,
# shards/bpf/; without it both stay in user space), pkg-config, iproute2 and
# libcap2-bin (tests), stunnel4 (TLS in front of sipp, tests/tls.rs), tcpdump (tests/srtp.rs: the wire of an SRTP call), chromium (the browser
# tests of the /phone page), and from PyPI, each in a venv under target/ unless
# it is on PATH: schemathesis (tests/openapi.rs) and moto[server] (the S3
# server of tests/cdr_push.rs), and from npm the locked playwright-core of
# tests/browser/ (npm ci; it drives Debian's chromium and downloads no
# browser). Safe to run again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
st_venv="$root/target/schemathesis"
st_spec='schemathesis>=4.32,<5'   # tested with 4.32.5
py_needed=0
if ! command -v schemathesis >/dev/null 2>&1 && ! "$st_venv/bin/schemathesis" --version >/dev/null 2>&1; then
  py_needed=1
fi
moto_venv="$root/target/moto"
moto_spec='moto[server]>=5.0,<6'   # tested with 5.2.1
if ! command -v moto_server >/dev/null 2>&1 && [ ! -x "$moto_venv/bin/moto_server" ]; then
  py_needed=$(( py_needed | 2 ))
fi

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)   # the peer of bench-scenarios/compare-calls.sh, compare-register.sh
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v capsh >/dev/null 2>&1 || need+=(libcap2-bin)   # tests/steering.rs, media_kernel.rs drop CAP_BPF with it
command -v ip >/dev/null 2>&1 || need+=(iproute2)   # tests/media_kernel.rs: a veth pair into a namespace of its own
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || need+=(stunnel4)   # tests/tls.rs: sipp over TLS
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)   # tests/srtp.rs: no plaintext RTP on the SRTP leg
command -v python3 >/dev/null 2>&1 || need+=(python3)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)   # media::webrtc tests: OpenSSL as an independent DTLS-SRTP peer
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # tests/browser/phone.mjs: the /phone page, headless
command -v npm >/dev/null 2>&1 || need+=(npm)   # tests/browser/ (playwright-core wants Node.js >= 20)
if [ "$py_needed" != 0 ]; then
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

if (( py_needed & 1 )); then
  echo "install-deps: installing $st_spec into $st_venv"
  rm -rf "$st_venv"
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q --disable-pip-version-check "$st_spec"
fi
if (( py_needed & 2 )); then
  echo "install-deps: installing $moto_spec into $moto_venv"
  rm -rf "$moto_venv"
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install -q --disable-pip-version-check "$moto_spec"
fi
browser="$root/tests/browser"
if [ ! -f "$browser/node_modules/.package-lock.json" ] || [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
  echo "install-deps: npm ci --prefix tests/browser"
  npm ci --prefix "$browser" --no-audit --no-fund >/dev/null
fi
