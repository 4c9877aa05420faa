#!/usr/bin/env bash
# Runs moim's benchmarks against a release build and prints their tables.
# Usage: scripts/bench.sh [fanout] [connections] [chat]   (all when none)
# Figures, not pass/fail: see bench/src/main.rs for what each one measures.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/moim/target}"

printf '\033[1m==> building moim and the benchmarks (release)\033[0m\n' >&2
cargo build --locked --release -p moim-server -p moim-bench >&2

# The fan-out baseline: Socket.IO 4.8 from npm, once.
if [ ! -d bench/socketio/node_modules ]; then
  printf '\033[1m==> installing the Socket.IO baseline (npm)\033[0m\n' >&2
  (cd bench/socketio && npm ci --no-audit --no-fund >&2)
fi

printf '\033[1m==> machine\033[0m %s, %s CPU(s), %s\n' "$(uname -m)" "$(nproc)" \
  "$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)" >&2
"$CARGO_TARGET_DIR/release/moim-bench" --moim "$CARGO_TARGET_DIR/release/moim" "$@"
