#!/usr/bin/env bash
# Runs every test of moim: formatting, lints, Rust unit and integration
# tests (SQLite and PostgreSQL), and the end-to-end tests in Chromium.
# Installs what is missing first (scripts/setup.sh) and starts a throwaway
# PostgreSQL when none answers. Nothing is skipped: a missing service fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo and the tools built here into ~/.cargo/bin.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# Builds are reused across clones and runs (CI clones afresh every time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/moim/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Incremental data is keyed by the clone's path, so every fresh clone would
# add gigabytes of it to the shared cache; whole-crate builds are enough here.
export CARGO_INCREMENTAL=0
started=$(date +%s)
step() { printf '\n\033[1m==> %s\033[0m (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }

step "Rust toolchain: wasm32 target, clippy, rustfmt"
scripts/setup.sh --toolchain

# The other tools (cargo-leptos and wasm-bindgen compiled from crates.io,
# 5-10 minutes the first time; Chromium, coturn and the Playwright
# packages) are needed only from the site build on: they install while
# clippy and the Rust tests compile, and the tests run once they are there.
step "installing what is missing, beside the build (first time: 5-10 minutes)"
scripts/setup.sh --test &
setup_pid=$!

# Artifacts of moim's own crates pile up as the code changes (each set of
# sources, features and dependencies gets names of its own): drop the ones
# no run has touched for two hours, so the shared cache stays bounded.
# Clones share these names (cargo hashes a workspace member's path relative
# to the workspace), and cargo takes a source file older than the last
# build as built: a fresh clone's files are new, but a working copy edited
# before another clone's build may need its changed files touched.
for deps in "$CARGO_TARGET_DIR"/debug/deps "$CARGO_TARGET_DIR"/release/deps \
            "$CARGO_TARGET_DIR"/front/*/deps "$CARGO_TARGET_DIR"/front/*/*/deps; do
  [ -d "$deps" ] || continue
  find "$deps" -maxdepth 1 -mmin +120 \( \
    -name 'libapp-*' -o -name 'app-*' -o -name 'libmoim_server-*' -o -name 'moim_server-*' \
    -o -name 'moim-*' -o -name 'libfrontend-*' -o -name 'frontend-*' \
    -o -name '*accounts-*' -o -name '*meetings-*' -o -name '*lobby-*' -o -name '*startup-*' \) \
    -delete 2>/dev/null || true
done
rm -rf "$CARGO_TARGET_DIR"/debug/incremental "$CARGO_TARGET_DIR"/front/*/debug/incremental

step "rustfmt"
cargo fmt --all -- --check
step "no import cycles between the modules of any crate"
for crate in protocol domain app server; do
  python3 scripts/module-cycles.py "$crate/src"
done

# clippy runs inside the builds the tests need, not as builds of its own:
# `cargo clippy` is a `cargo check`, whose artifacts (metadata only) no
# later build can use, so every dependency was compiled twice on a fresh
# machine, once checked for clippy and once built for the tests (and the
# browser bundle's twice again). clippy-driver as cargo's wrapper for the
# workspace's own crates is what `cargo clippy` runs, here in a build that
# also makes the code; the dependencies compile once, with plain rustc.
# CLIPPY_ARGS carries `-D warnings` as `cargo clippy -- -D warnings` hands
# it to clippy-driver (its encoding of one argument per field).
# Every cargo build of the workspace below runs under it, so none rebuilds
# the workspace's crates for want of it.
# They also run under the LEPTOS_* variables cargo-leptos builds the
# server with (scripts/leptos-env.sh), since the end-to-end tests run the
# server the Rust tests are built with: leptos names the bundle in its
# pages from LEPTOS_OUTPUT_NAME at compile time (`moim_bg.wasm` without
# it, where cargo-leptos writes `moim.wasm`). Their values are leptos's
# own defaults at run time.
source scripts/leptos-env.sh
clippy_driver="$(rustup which clippy-driver)"
lint=(env "${leptos_env[@]}" RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__")
# That encoding is clippy's own, not a documented interface: should a
# toolchain stop reading it, warnings would pass unseen. A file with one
# clippy warning must fail under it, or the run stops here.
lint_probe="$(mktemp -d /tmp/moim-lint-probe.XXXXXX)"
printf 'fn main() {\n    let v = vec![1, 2];\n    println!("{}", v.len());\n}\n' >"$lint_probe/probe.rs"
if "${lint[@]}" "$clippy_driver" --edition 2021 --crate-type bin --emit=metadata \
    -o "$lint_probe/probe.rmeta" "$lint_probe/probe.rs" >/dev/null 2>&1; then
  echo "clippy-driver let a warning through with -D warnings in CLIPPY_ARGS: scripts/test.sh must hand it over another way" >&2
  exit 1
fi
rm -rf "$lint_probe"
# The packages the tests are built, linted and run for: one set for every
# command, since another set resolves the dependencies' features otherwise
# and would compile them again.
packages=(-p protocol -p domain -p app -p moim-server -p moim-bench)

# The Redis outage test keeps a call going through five minutes without
# Redis and mostly waits meanwhile, so it runs while the rest compiles
# (not beside other tests: its Redis port stays free for those minutes,
# and a test binding a port could take it). Its test binary is built
# first, then run directly (a second `cargo` would wait for the build
# directory's lock), in the package directory, as `cargo test` runs it.
step "compiling the Redis outage test, with clippy (first time: about 10 minutes, beside the tools)"
outage_test=redis_down_for_minutes_keeps_same_instance_calls_and_recovers_by_itself
faults_bin="$("${lint[@]}" cargo test --locked "${packages[@]}" --no-run --test faults --message-format=json-render-diagnostics \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "faults" and m.get("executable"):
        print(m["executable"])')"
[ -x "$faults_bin" ] || { echo "the faults test binary was not built" >&2; exit 1; }

# The Rust tests, the outage test among them, need PostgreSQL and Redis
# (Debian packages scripts/setup.sh installs when missing).
step "waiting for the tools"
wait "$setup_pid" || { echo "installing the tools failed (scripts/setup.sh --test)" >&2; exit 1; }

# ---------------------------------------------------------------- PostgreSQL
pg_tmp=""
e2e_db=""
redis_pid=""
outage_pid=""
cleanup() {
  if [ -n "$outage_pid" ]; then kill "$outage_pid" 2>/dev/null || true; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
  if [ -n "$e2e_db" ]; then
    psql "$MOIM_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $e2e_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ -n "$pg_tmp" ]; then
    run_as_pg "$pg_bin/pg_ctl" -D "$pg_tmp/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_tmp"
  fi
}
trap cleanup EXIT
run_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
postgres_answers() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

if [ -n "${MOIM_TEST_POSTGRES_URL:-}" ]; then
  postgres_answers "$MOIM_TEST_POSTGRES_URL" || { echo "MOIM_TEST_POSTGRES_URL does not answer" >&2; exit 1; }
elif postgres_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
  export MOIM_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
else
  step "starting a throwaway PostgreSQL"
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  pg_tmp="$(mktemp -d /tmp/moim-pg.XXXXXX)"
  pg_port=55432
  [ "$(id -u)" -eq 0 ] && chown postgres "$pg_tmp"
  run_as_pg "$pg_bin/initdb" -D "$pg_tmp/data" -A trust -U postgres >/dev/null
  run_as_pg "$pg_bin/pg_ctl" -D "$pg_tmp/data" -l "$pg_tmp/log" -w \
    -o "-p $pg_port -k $pg_tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  export MOIM_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  postgres_answers "$MOIM_TEST_POSTGRES_URL" || { cat "$pg_tmp/log" >&2; exit 1; }
fi
echo "PostgreSQL for tests: $MOIM_TEST_POSTGRES_URL"

outage_log="$(mktemp /tmp/moim-outage-test.XXXXXX)"
step "Redis outage test (five minutes, beside the builds below; output in $outage_log)"
(cd server && CARGO_MANIFEST_DIR="$PWD" exec "$faults_bin" --exact "$outage_test" >"$outage_log" 2>&1) &
outage_pid=$!

step "compiling the other Rust tests, with clippy"
"${lint[@]}" cargo test --locked "${packages[@]}" --no-run

# The end-to-end tests run the server binary just built for the Rust
# tests (target/debug/moim, the same sources): cargo-leptos builds the
# browser bundle only, with clippy on the browser's code (`hydrate`).
step "building the site, with clippy (cargo leptos build --split --frontend-only; first time: about 4 minutes)"
"${lint[@]}" cargo leptos build --split --frontend-only
# gzip copies made once, so the servers do not compress the debug bundle
# (about 10 MB for the call page) again for every browser of every test.
node scripts/precompress.mjs --quick target/site/pkg

step "waiting for the Redis outage test"
outage_status=0
wait "$outage_pid" || outage_status=$?
outage_pid=""
cat "$outage_log"
[ "$outage_status" -eq 0 ] || { echo "the Redis outage test failed" >&2; exit "$outage_status"; }

# The tests share the two cores with nothing: several of them measure a
# real call (packets lost, a peer silent for seconds), which a compiler
# beside them can upset.
step "Rust unit and integration tests (SQLite and PostgreSQL)"
"${lint[@]}" cargo test --locked "${packages[@]}" -- --skip "$outage_test"

# Two moim instances for the scale-out end-to-end test share a fresh
# PostgreSQL database and a throwaway Redis (the Rust tests start their own).
step "PostgreSQL database and Redis for the multi-instance end-to-end test"
e2e_db="moim_e2e_$$"
psql "$MOIM_TEST_POSTGRES_URL" -qc "CREATE DATABASE $e2e_db" >/dev/null
export MOIM_E2E_DATABASE_URL="${MOIM_TEST_POSTGRES_URL%/*}/$e2e_db"
redis_port=56379
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
redis_pid=$!
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null || { echo "redis-server did not start" >&2; exit 1; }
export MOIM_E2E_REDIS_URL="redis://127.0.0.1:$redis_port/"

step "end-to-end tests in Chromium (Playwright)"
export MOIM_BIN="$CARGO_TARGET_DIR/debug/moim"
export MOIM_SITE_ROOT="$PWD/target/site"
# The moim servers Playwright starts log here, one file each.
export MOIM_E2E_LOG_DIR="$(mktemp -d /tmp/moim-e2e-logs.XXXXXX)"
e2e_status=0
(cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npx playwright test) || e2e_status=$?

# A panic in a server task need not fail a browser test (the page may
# retry, or the test not look there), so any panic in a server's log fails
# the run. (The Rust tests' in-process servers are checked by their own
# harness: see server/tests/common/mod.rs.)
step "server logs of the end-to-end tests: no panics"
# One known upstream race is set aside, by its exact message: leptos_i18n
# 0.6.2 spawns an effect that writes its language cookie and that can run
# after the request's reactive owner is gone (the response has been sent;
# nothing is lost). Every other panic fails the run.
server_panics() {
  awk '/panicked at/ { held = FILENAME ":" FNR ": " $0; next }
       held != "" { if ($0 !~ /leptos_i18n-0\.6\.2\/src\/context\.rs.*already been disposed/) print held "\n" $0; held = "" }
       END { if (held != "") print held }' "$MOIM_E2E_LOG_DIR"/* 2>/dev/null
}
if [ -n "$(server_panics)" ]; then
  server_panics
  echo "a moim server panicked during the end-to-end tests (logs: $MOIM_E2E_LOG_DIR)" >&2
  exit 1
fi
if [ "$e2e_status" -ne 0 ]; then
  echo "end-to-end tests failed (server logs: $MOIM_E2E_LOG_DIR)" >&2
  exit "$e2e_status"
fi

step "all tests passed"
