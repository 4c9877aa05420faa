#!/usr/bin/env bash
# Takes the screenshots in docs/screenshots (the call, the lobby and the
# self-test page, at desktop and phone size) with the end-to-end set-up:
#   scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/moim/target}"
export CARGO_INCREMENTAL=0
scripts/setup.sh --test
cargo leptos build --split
export MOIM_BIN="$CARGO_TARGET_DIR/debug/moim"
export MOIM_SITE_ROOT="$PWD/target/site"
export MOIM_SCREENSHOTS_DIR="$PWD/docs/screenshots"
cd end2end
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npx playwright test tests/screenshots.spec.ts
