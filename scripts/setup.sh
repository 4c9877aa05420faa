#!/usr/bin/env bash
# Installs what building and testing moim needs, when it is missing, from
# crates.io, npm and Debian only (nothing downloads a prebuilt binary).
# Usage: scripts/setup.sh [--toolchain | --run | --test] [--ready]
#   --toolchain  the wasm32 target, clippy and rustfmt (seconds)
#   --run        what `scripts/run.sh` needs (Rust tools, wasm-opt for --release)
#   --test       what `scripts/test.sh` needs (Rust tools, Chromium, Playwright, services)
#   --ready      install nothing: exit 0 when everything the mode needs is
#                there, 1 when something would be installed
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo and the tools built here into ~/.cargo/bin.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

mode="${1:---test}"
only_check="${2:-}"
CARGO_LEPTOS_VERSION="0.3.10"   # 0.3.11 needs rustc 1.96
WASM_OPT_VERSION="0.116.1"

setup_started=$(date +%s)
log() { printf '\033[1msetup (%ss):\033[0m %s\n' "$(( $(date +%s) - setup_started ))" "$*" >&2; }

# The tools are build helpers, not hot code: their own release profiles ask
# for fat LTO with one codegen unit (cargo-leptos: about 24 minutes on two
# cores). Without LTO, in parallel codegen units and unoptimised
# (opt-level 0) they compile in a fraction of that and still run in
# seconds on moim's bundle (splitting it, wasm-bindgen, the CSS and JS
# minifiers). Measured on two cores, 2026-11-28, the two levels compiled
# side by side: cargo-leptos 378 s at opt-level 0 against 659 s at 1,
# wasm-bindgen-cli 83 s against 136 s; what that costs each build is
# about 3 s (a debug site's split and wasm-bindgen steps 1.5 s -> 5 s; a
# release site's post-processing, mostly wasm-opt, 51 s -> 52 s).
# Each `cargo install` builds in a directory of its own, not a
# CARGO_TARGET_DIR the caller set: a shared one is locked by one cargo at a
# time, and the tools compile beside each other and beside moim's own build.
# cargo-leptos asks for a vendored OpenSSL (through cargo-generate), which
# compiles OpenSSL's C sources for minutes; OPENSSL_NO_VENDOR, openssl-sys's
# documented switch, links Debian's libssl instead.
tool_profile() {
  env -u CARGO_TARGET_DIR OPENSSL_NO_VENDOR=1 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false "$@"
}

apt_updated=""
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The wasm-bindgen CLI must match the library version in Cargo.lock exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

install_wasm_bindgen() {
  local want
  want="$(wasm_bindgen_version)"
  wasm_bindgen_ready && return 0
  log "installing wasm-bindgen-cli $want (from crates.io, about 2 minutes once)"
  if tool_profile cargo install wasm-bindgen-cli --version "$want" --locked --force >/tmp/moim-wasm-bindgen.log 2>&1; then
    log "wasm-bindgen-cli installed"
    return 0
  fi
  # Its published lockfile can pin a crate the registry mirror lacks
  # (webpki-roots 1.0.11 for 0.2.130): rebuild it from the downloaded source
  # with that one crate stepped back.
  log "retrying wasm-bindgen-cli $want with an adjusted lockfile"
  local crate src tmp
  crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/wasm-bindgen-cli-"$want".crate 2>/dev/null | head -n1)"
  if [ -z "$crate" ]; then
    cat /tmp/moim-wasm-bindgen.log >&2
    log "wasm-bindgen-cli $want could not be downloaded"; exit 1
  fi
  tmp="$(mktemp -d)"
  tar -xzf "$crate" -C "$tmp"
  src="$tmp/wasm-bindgen-cli-$want"
  grep -q '^\[workspace\]' "$src/Cargo.toml" || printf '\n[workspace]\n' >> "$src/Cargo.toml"
  (cd "$src" && cargo update -p webpki-roots --precise 1.0.10 >/dev/null 2>&1 || true)
  tool_profile cargo install --path "$src" --locked --force >>/tmp/moim-wasm-bindgen.log 2>&1 \
    || { tail -n 40 /tmp/moim-wasm-bindgen.log >&2; log "installing wasm-bindgen-cli failed"; exit 1; }
  rm -rf "$tmp"
  log "wasm-bindgen-cli installed"
}

install_toolchain() {
  command -v cargo >/dev/null || { log "cargo is required (install Rust with rustup)"; exit 1; }
  if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
}

cargo_leptos_ready() {
  [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" = "$CARGO_LEPTOS_VERSION" ]
}

wasm_bindgen_ready() {
  [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)" = "$(wasm_bindgen_version)" ]
}

install_cargo_leptos() {
  cargo_leptos_ready && return 0
  log "installing cargo-leptos $CARGO_LEPTOS_VERSION (from crates.io, 5-10 minutes once; output in /tmp/moim-cargo-leptos.log)"
  if ! tool_profile cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked \
      >/tmp/moim-cargo-leptos.log 2>&1; then
    tail -n 40 /tmp/moim-cargo-leptos.log >&2
    log "installing cargo-leptos failed"; exit 1
  fi
  log "cargo-leptos installed"
}

# The two tools compile side by side rather than one after the other:
# wasm-bindgen's couple of minutes fill the moments where cargo-leptos's
# build waits on one crate.
# What building cargo-leptos against Debian's OpenSSL needs (see
# tool_profile). Called before anything else installs beside it: apt runs
# one at a time.
install_tool_build_packages() {
  cargo_leptos_ready || apt_install libssl-dev pkg-config
}

install_rust_tools() {
  install_toolchain
  install_tool_build_packages
  install_cargo_leptos &
  local cargo_leptos=$!
  local status=0
  ( install_wasm_bindgen ) || status=$?
  wait "$cargo_leptos" || status=$?
  [ "$status" -eq 0 ] || exit "$status"
}

# Binaryen's wasm-opt as published on npm (compiled to wasm, run by Node):
# installs in seconds, where `cargo install wasm-opt` compiles Binaryen's
# C++ for about 15 minutes and Debian's binaryen (108) predates the wasm
# features rustc emits today. scripts/run.sh puts its bin directory on PATH,
# where cargo-leptos looks for wasm-opt.
BINARYEN_VERSION="132.0.0"
TOOLS_DIR="${MOIM_TOOLS_DIR:-$HOME/.cache/moim/tools}"
wasm_opt_ready() {
  [ "$("$TOOLS_DIR/node_modules/.bin/wasm-opt" --version 2>/dev/null | awk '{print $3}')" = "${BINARYEN_VERSION%%.*}" ]
}

install_wasm_opt() {
  if ! wasm_opt_ready; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing wasm-opt (Binaryen ${BINARYEN_VERSION%%.*}, from npm, seconds)"
    mkdir -p "$TOOLS_DIR"
    npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --loglevel=error "binaryen@$BINARYEN_VERSION" >/dev/null
  fi
}

install_test_tools() {
  # coturn: the real TURN server of the relay test; redis-server: the
  # scale-out tests start a throwaway one when none answers.
  # python3-aiosmtpd: the mail tests start a real SMTP server (aiosmtpd)
  # that writes what it receives to a directory.
  apt_install chromium postgresql coturn redis-server python3-aiosmtpd
  if [ ! -d end2end/node_modules/@playwright/test ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing end-to-end test packages (npm, browser download off)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [ "$only_check" = "--ready" ]; then
  case "$mode" in
    --run) wasm_opt_ready && cargo_leptos_ready && wasm_bindgen_ready ;;
    *) echo "usage: $0 --run --ready" >&2; exit 2 ;;
  esac
  exit
elif [ -n "$only_check" ]; then
  echo "usage: $0 [--toolchain|--run|--test] [--ready]" >&2; exit 2
fi

case "$mode" in
  --toolchain)
    install_toolchain
    exit 0 ;;
  --run)
    install_wasm_opt
    install_rust_tools ;;
  --test)
    # Debian packages and npm wait on the network, the Rust tools on the
    # CPU: both at once.
    install_tool_build_packages
    install_test_tools &
    test_tools=$!
    install_rust_tools
    wait "$test_tools" || { log "installing the test tools failed"; exit 1; } ;;
  *) echo "usage: $0 [--toolchain|--run|--test] [--ready]" >&2; exit 2 ;;
esac
log "tools ready"
