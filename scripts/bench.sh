#!/usr/bin/env bash
# Runs moim's benchmarks against a release build and prints their tables.
# Usage: scripts/bench.sh [fanout] [connections] [chat] [sfu-soak] [sfu-load] [pages] [join]   (all when none)
# Figures, not pass/fail: see bench/src/main.rs for what each one measures,
# bench/pages/pages.mjs for `pages` (page weight and time to interactive
# in Chromium, against the release site) and bench/join/join.mjs for `join`
# (click on "Join now" to the first remote video frame, 1:1, mesh and
# through the media server, in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/moim/target}"

# `pages` and `join` run in Chromium (Node); the others are `moim-bench`'s.
pages=false
joins=false
rest=()
for arg in "$@"; do
  case "$arg" in
    pages) pages=true ;;
    join) joins=true ;;
    *) rest+=("$arg") ;;
  esac
done
[ $# -eq 0 ] && pages=true && joins=true

printf '\033[1m==> building moim and the benchmarks (release)\033[0m\n' >&2
# moim under the LEPTOS_* variables cargo-leptos sets (scripts/leptos-env.sh),
# so the site build below finds it built; a plain build compiled the leptos
# crates a second time (about 10 minutes on two cores). The benchmarks
# apart: built with moim, their features would unify with its and make yet
# another build of it.
source scripts/leptos-env.sh
env "${leptos_env[@]}" cargo build --locked --release --package=moim-server --bin=moim >&2
cargo build --locked --release -p moim-bench >&2

# The fan-out baseline: Socket.IO 4.8 from npm, once.
if [ ! -d bench/socketio/node_modules ]; then
  printf '\033[1m==> installing the Socket.IO baseline (npm)\033[0m\n' >&2
  (cd bench/socketio && npm ci --no-audit --no-fund >&2)
fi

# `sfu-load` compares with Janus (Debian's package), installed once.
sfu_load=false
[ $# -eq 0 ] && sfu_load=true
for arg in "${rest[@]+"${rest[@]}"}"; do [ "$arg" = sfu-load ] && sfu_load=true; done
if $sfu_load && ! command -v janus >/dev/null; then
  printf '\033[1m==> installing Janus, the sfu-load baseline (Debian)\033[0m\n' >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends janus >&2 \
    || printf 'Janus could not be installed: sfu-load runs without it\n' >&2
fi

printf '\033[1m==> machine\033[0m %s, %s CPU(s), %s\n' "$(uname -m)" "$(nproc)" \
  "$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)" >&2
if [ $# -eq 0 ] || [ ${#rest[@]} -gt 0 ]; then
  "$CARGO_TARGET_DIR/release/moim-bench" --moim "$CARGO_TARGET_DIR/release/moim" "${rest[@]}"
fi

if $pages || $joins; then
  # The site as `scripts/run.sh` builds it (release wasm, wasm-opt: only
  # `--run` installs it), and Chromium and Playwright as the end-to-end
  # tests have them.
  scripts/setup.sh --run >&2
  scripts/setup.sh --test >&2
  export PATH="${MOIM_TOOLS_DIR:-$HOME/.cache/moim/tools}/node_modules/.bin:$PATH"
  printf '\033[1m==> building the release site\033[0m\n' >&2
  cargo leptos build --release --split >&2
  node scripts/precompress.mjs target/site/pkg
  if $pages; then
    node bench/pages/pages.mjs "$CARGO_TARGET_DIR/release/moim" "$PWD/target/site" "${MOIM_BENCH_PAGE_RUNS:-5}"
  fi
  if $joins; then
    node bench/join/join.mjs "$CARGO_TARGET_DIR/release/moim" "$PWD/target/site" "${MOIM_BENCH_JOINS:-20}"
  fi
fi
