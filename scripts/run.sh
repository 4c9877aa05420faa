#!/usr/bin/env bash
# Builds moim (release) and runs it on http://127.0.0.1:3000 with a SQLite
# file in ./data. Any flag is passed to moim (see `--help`), e.g.
#   scripts/run.sh --listen 0.0.0.0:3000 --public-url https://meet.example.org
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo and the tools built here into ~/.cargo/bin.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/moim/target}"
export CARGO_INCREMENTAL=0
scripts/setup.sh --run
# wasm-opt from npm (scripts/setup.sh), where cargo-leptos looks for it.
export PATH="${MOIM_TOOLS_DIR:-$HOME/.cache/moim/tools}/node_modules/.bin:$PATH"
cargo leptos build --release --split
# brotli and gzip copies of the bundle, made once (server::bundle sends them).
node scripts/precompress.mjs target/site/pkg
exec "$CARGO_TARGET_DIR/release/moim" --site-root "$PWD/target/site" "$@"
