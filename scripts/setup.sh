#!/usr/bin/env bash
# Installs everything Parley needs to build, run and test, skipping whatever
# is already there. Safe to run again and again.
#
#   - Rust's wasm32-unknown-unknown target
#   - cargo-leptos (pinned), and wasm-bindgen-cli at the exact version in Cargo.lock
#   - Debian's Chromium, for the end-to-end tests (skip with PARLEY_SKIP_BROWSER=1)
#   - Debian's PostgreSQL binaries, which scripts/with-postgres.sh runs for the
#     store's tests (skip with PARLEY_SKIP_POSTGRES=1; the server itself needs no
#     database server, SQLite is the default)
#   - Debian's redis-server and nginx, which the tests of several server
#     processes start as processes of their own, on free loopback ports with
#     throwaway directories (skip with PARLEY_SKIP_CLUSTER=1)
#
# Packages are installed with their services kept from starting (policy-rc.d):
# tests never use a system service, and none is left running on a CI machine.
#   - the npm packages in end2end/: Playwright, and binaryen's wasm-opt, which
#     release builds need (Debian's binaryen produces wasm that fails to hydrate)
set -euo pipefail

CARGO_LEPTOS_VERSION=0.3.6

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "Adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [[ "$(cargo leptos --version 2>/dev/null)" != *"$CARGO_LEPTOS_VERSION"* ]]; then
  say "Installing cargo-leptos $CARGO_LEPTOS_VERSION (about 10 minutes)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

bindgen_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$root/Cargo.lock")"
if [[ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $bindgen_version" ]]; then
  say "Installing wasm-bindgen-cli $bindgen_version (about 6 minutes)"
  # Not --locked: one of its pinned dependencies is no longer on crates.io.
  cargo install wasm-bindgen-cli --version "$bindgen_version" --force
fi

# Installs Debian packages without starting their services: policy-rc.d
# answering 101 is Debian's way to tell the maintainer scripts "not now".
apt_install() {
  local sudo="" policy=/usr/sbin/policy-rc.d own_policy=""
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    own_policy=1
  fi
  local status=0
  $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$@" || status=$?
  [[ -z "$own_policy" ]] || $sudo rm -f "$policy"
  return "$status"
}

if [[ "${PARLEY_SKIP_BROWSER:-0}" != 1 ]] && [[ ! -x /usr/bin/chromium ]]; then
  say "Installing Debian's Chromium"
  apt_install chromium
fi

if [[ "${PARLEY_SKIP_POSTGRES:-0}" != 1 ]] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  say "Installing Debian's PostgreSQL"
  apt_install postgresql
fi

if [[ "${PARLEY_SKIP_CLUSTER:-0}" != 1 ]]; then
  missing=()
  [[ -x /usr/bin/redis-server ]] || missing+=(redis-server)
  # `nginx`, not `nginx-light`: the one name every Debian release has.
  [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  if [[ ${#missing[@]} -gt 0 ]]; then
    say "Installing Debian's ${missing[*]}"
    apt_install "${missing[@]}"
  fi
fi

lock="$root/end2end/package-lock.json"
stamp="$root/end2end/node_modules/.installed-lock"
if [[ ! -f "$stamp" ]] || ! cmp -s "$lock" "$stamp"; then
  say "Installing npm packages in end2end/"
  # Playwright drives the system Chromium; it must never download its own.
  (cd "$root/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  cp "$lock" "$stamp"
fi
