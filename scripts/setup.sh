#!/usr/bin/env bash
# Installs what building and testing moim needs, when it is missing, from
# crates.io, npm and Debian only (nothing downloads a prebuilt binary).
# Usage: scripts/setup.sh [--run | --test]
#   --run   what `scripts/run.sh` needs (Rust tools, wasm-opt for --release)
#   --test  what `scripts/test.sh` needs (Rust tools, Chromium, Playwright, services)
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo and the tools built here into ~/.cargo/bin.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

mode="${1:---test}"
CARGO_LEPTOS_VERSION="0.3.10"   # 0.3.11 needs rustc 1.96
WASM_OPT_VERSION="0.116.1"

setup_started=$(date +%s)
log() { printf '\033[1msetup (%ss):\033[0m %s\n' "$(( $(date +%s) - setup_started ))" "$*" >&2; }

# The tools are build helpers, not hot code: their own release profiles ask
# for fat LTO with one codegen unit (cargo-leptos: about 24 minutes on two
# cores). Without LTO, in parallel codegen units and at opt-level 2 they
# compile in a fraction of that and run as fast as a build needs.
tool_profile() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=2 CARGO_PROFILE_RELEASE_DEBUG=false "$@"
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
  local want have
  want="$(wasm_bindgen_version)"
  have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
  [ "$have" = "$want" ] && return 0
  log "installing wasm-bindgen-cli $want (from crates.io)"
  if tool_profile cargo install wasm-bindgen-cli --version "$want" --locked --force >/tmp/moim-wasm-bindgen.log 2>&1; then
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
  tool_profile cargo install --path "$src" --locked --force
  rm -rf "$tmp"
}

install_rust_tools() {
  command -v cargo >/dev/null || { log "cargo is required (install Rust with rustup)"; exit 1; }
  if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
    log "installing cargo-leptos $CARGO_LEPTOS_VERSION (from crates.io, about 8 minutes once)"
    tool_profile cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
  fi
  install_wasm_bindgen
}

# Binaryen's wasm-opt as published on npm (compiled to wasm, run by Node):
# installs in seconds, where `cargo install wasm-opt` compiles Binaryen's
# C++ for about 15 minutes and Debian's binaryen (108) predates the wasm
# features rustc emits today. scripts/run.sh puts its bin directory on PATH,
# where cargo-leptos looks for wasm-opt.
BINARYEN_VERSION="132.0.0"
TOOLS_DIR="${MOIM_TOOLS_DIR:-$HOME/.cache/moim/tools}"
install_wasm_opt() {
  if [ "$("$TOOLS_DIR/node_modules/.bin/wasm-opt" --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_VERSION%%.*}" ]; then
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

case "$mode" in
  --run)
    install_wasm_opt
    install_rust_tools ;;
  --test)
    # Debian packages and npm wait on the network, the Rust tools on the
    # CPU: both at once.
    install_test_tools &
    test_tools=$!
    install_rust_tools
    wait "$test_tools" || { log "installing the test tools failed"; exit 1; } ;;
  *) echo "usage: $0 [--run|--test]" >&2; exit 2 ;;
esac
log "tools ready"
