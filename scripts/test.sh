#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test. The frontend crate
# is only built for wasm: building it with the server would mix the `ssr` and
# `hydrate` features of `app` in one build.
#
#   1. formatting and clippy (server and browser builds), warnings are errors
#   2. unit and integration tests (cargo test), beside a throwaway PostgreSQL
#      server (scripts/with-postgres.sh) so the store is tested on it too
#   3. a release build with cargo leptos, then the Playwright end-to-end tests
#      against it in Debian's Chromium, beside a throwaway PostgreSQL too (the
#      tests of two server processes share a database there; they start their
#      own Redis and nginx)
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/setup.sh"
source "$here/env.sh"
cd "$root"

# A fresh checkout gains nothing from incremental compilation, which would
# roughly double the debug target directory on disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# Some tests hold a few thousand loopback connections (two files each).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

step "Disk space (the builds below need a few gigabytes)"
df -h "$root"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (server side and tests)"
cargo clippy -p app -p server -p parley-bench --all-targets --locked -- -D warnings
step "cargo clippy (browser side, wasm32)"
cargo clippy -p app -p frontend --features app/hydrate --target wasm32-unknown-unknown --locked -- -D warnings

step "Unit and integration tests (with PostgreSQL)"
"$root/scripts/with-postgres.sh" cargo test -p app -p server -p parley-bench --locked

step "Release build (cargo leptos build --release --precompress)"
cargo leptos build --release --precompress

step "End-to-end tests (Playwright, Chromium, with PostgreSQL)"
cd end2end
"$root/scripts/with-postgres.sh" npx playwright test
