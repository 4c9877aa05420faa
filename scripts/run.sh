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
# moim's browser bundle and server, with the commands, profiles, flags and
# LEPTOS_* variables (scripts/leptos-env.sh) cargo-leptos 0.3.10 uses for
# this workspace, so its own build below finds them built.
compile_bundle() {
  env "${leptos_env[@]}" RUSTFLAGS="-Clink-args=--emit-relocs" \
    cargo build --locked --package=frontend --lib --target-dir="$CARGO_TARGET_DIR/front" \
    --target=wasm32-unknown-unknown --profile=wasm-release
}
compile_server() {
  env "${leptos_env[@]}" cargo build --locked --package=moim-server --bin=moim --release
}
first_time=false
scripts/setup.sh --run --ready || first_time=true
if $first_time; then
  # The first time, cargo-leptos and wasm-bindgen compile from crates.io
  # (5-10 minutes on two cores) before they can build anything. moim's own
  # dependencies need neither, so they compile meanwhile, into the cache
  # the build below then finds filled.
  step "installing the build tools, and meanwhile compiling moim (first time: 20-30 minutes)"
  scripts/setup.sh --run &
  setup_pid=$!
else
  # Seconds when nothing changed; otherwise what changed compiles here.
  step "compiling what changed in moim"
fi
compile_bundle &
wasm_pid=$!
compile_server || echo "compiling moim failed; the build below says why" >&2
wait "$wasm_pid" || echo "compiling the browser bundle failed; the build below says why" >&2
if $first_time; then
  step "waiting for the build tools"
  wait "$setup_pid" || { echo "installing the build tools failed (scripts/setup.sh --run)" >&2; exit 1; }
fi
# wasm-opt from npm (scripts/setup.sh), where cargo-leptos looks for it.
export PATH="${MOIM_TOOLS_DIR:-$HOME/.cache/moim/tools}/node_modules/.bin:$PATH"
# cargo-leptos makes the site again on every start (wasm-bindgen, the
# split, wasm-opt under Node: about two minutes on two cores), even when
# nothing changed. Skipped when what it is made from (the compiled bundle
# and server, the styles and assets) and what it made (every file of
# target/site, which `scripts/test.sh`'s debug site would have replaced)
# are as the last build here left them.
site_stamp="target/.moim-release-site"
site_fingerprint() {
  {
    sha256sum "$CARGO_TARGET_DIR/front/wasm32-unknown-unknown/wasm-release/frontend.wasm" \
      "$CARGO_TARGET_DIR/release/moim" Cargo.toml
    find style public target/site -type f -print0 | sort -z | xargs -0 sha256sum
  } 2>/dev/null | sha256sum | cut -d' ' -f1
}
if [ -f "$site_stamp" ] && [ "$(cat "$site_stamp")" = "$(site_fingerprint)" ]; then
  step "the site in target/site is up to date"
else
  rm -f "$site_stamp"
  step "building the site (cargo leptos build --release --split)"
  cargo leptos build --release --split
  # brotli and gzip copies of the bundle, made once (server::bundle sends them).
  node scripts/precompress.mjs target/site/pkg
  site_fingerprint > "$site_stamp"
fi
step "serving on the address moim prints below"
exec "$CARGO_TARGET_DIR/release/moim" --site-root "$PWD/target/site" "$@"
