#!/usr/bin/env bash
# Sets up what is missing, then runs Parley with live reload on
# http://127.0.0.1:3000 (override with LEPTOS_SITE_ADDR).
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
PARLEY_SKIP_BROWSER=1 PARLEY_SKIP_POSTGRES=1 "$here/setup.sh"
source "$here/env.sh"
cd "$root"
exec cargo leptos watch "$@"
