# The LEPTOS_* variables cargo-leptos 0.3.10 sets when it builds moim's
# server for this workspace (Cargo.toml's [[workspace.metadata.leptos]]).
# Sourced by scripts/run.sh, scripts/bench.sh and scripts/test.sh, which
# build the server with plain cargo under the same variables, so
# cargo-leptos's own build afterwards finds it built, and the server names
# the bundle as cargo-leptos writes it: leptos reads LEPTOS_OUTPUT_NAME at
# compile time (without it, pages ask for `moim_bg.wasm`), and a build
# under other values compiles the leptos crates again.
leptos_env=(
  LEPTOS_OUTPUT_NAME=moim LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg
  LEPTOS_SITE_ADDR=127.0.0.1:3000 LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=frontend
  LEPTOS_BIN_DIR=server LEPTOS_JS_MINIFY=true LEPTOS_HASH_FILES=false
)
