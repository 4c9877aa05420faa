#!/usr/bin/env bash
# Fuzzes every target that parses or writes attacker input (protocol
# decoder, meeting codes, chat text cleaning, transcript and calendar
# writers, server-function forms) for a set time each, optimised, and
# prints executions and failures per target. `scripts/test.sh` runs the
# same targets for a few seconds each.
# Usage: scripts/fuzz.sh [seconds per target, default 300]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/moim/target}"
export MOIM_FUZZ_SECONDS="${1:-300}"
cargo test --locked --release -p moim-server --test fuzz -- --nocapture --test-threads 1 2>&1 \
  | grep -E '^fuzz |test result|panicked|FAILED'
