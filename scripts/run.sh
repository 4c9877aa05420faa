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
started=$(date +%s)
step() { printf '\n\033[1m==> %s\033[0m (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }

scripts/setup.sh --toolchain
source scripts/leptos-env.sh
# wasm-opt from npm (scripts/setup.sh), where cargo-leptos looks for it.
export PATH="${MOIM_TOOLS_DIR:-$HOME/.cache/moim/tools}/node_modules/.bin:$PATH"

# The server is compiled by plain cargo under the LEPTOS_* variables
# cargo-leptos 0.3.10 would set (scripts/leptos-env.sh), as scripts/test.sh
# does, and cargo-leptos builds only the browser bundle: the two then run
# side by side. The server's release build is the longest part of a first
# run (its last crates, moim's own, compile one after the other), and the
# site's post-processing (splitting, wasm-bindgen, wasm-opt, compression:
# about two minutes, mostly one core) fits beside it instead of after it.
build_server() {
  env "${leptos_env[@]}" cargo build --locked --package=moim-server --bin=moim --release
}
build_site() {
  cargo leptos build --release --split --frontend-only
  # brotli and gzip copies of the bundle, made once (server::bundle sends them).
  node scripts/precompress.mjs target/site/pkg
}

if scripts/setup.sh --run --ready; then
  step "building moim (release) and the site beside it (cargo leptos build --release --split --frontend-only)"
  build_server &
  server_pid=$!
  build_site || { kill "$server_pid" 2>/dev/null; echo "building the site failed" >&2; exit 1; }
else
  # The first time, cargo-leptos and wasm-bindgen compile from crates.io
  # (5-10 minutes on two cores) before they can build anything. moim's own
  # dependencies need neither, so they compile meanwhile: the server, and
  # the browser bundle into the cache cargo-leptos's build then finds
  # filled (the command, profile, flags and LEPTOS_* variables
  # cargo-leptos 0.3.10 uses for this workspace).
  step "installing the build tools, and meanwhile compiling moim (first time: 20-35 minutes)"
  scripts/setup.sh --run &
  setup_pid=$!
  env "${leptos_env[@]}" RUSTFLAGS="-Clink-args=--emit-relocs" \
    cargo build --locked --package=frontend --lib --target-dir="$CARGO_TARGET_DIR/front" \
    --target=wasm32-unknown-unknown --profile=wasm-release &
  wasm_pid=$!
  build_server &
  server_pid=$!
  wait "$wasm_pid" || echo "compiling the browser bundle ahead of the tools failed; the build below says why" >&2
  step "waiting for the build tools"
  wait "$setup_pid" || { echo "installing the build tools failed (scripts/setup.sh --run)" >&2; exit 1; }
  step "building the site (cargo leptos build --release --split --frontend-only), moim's release build beside it"
  build_site || { kill "$server_pid" 2>/dev/null; echo "building the site failed" >&2; exit 1; }
  step "waiting for moim's release build"
fi
wait "$server_pid" || { echo "building moim failed (cargo build --release, above)" >&2; exit 1; }
step "serving on the address moim prints below"
exec "$CARGO_TARGET_DIR/release/moim" --site-root "$PWD/target/site" "$@"
