# Sourced by the other scripts: puts the project's tools first on PATH.
# binaryen's wasm-opt from npm must shadow any other wasm-opt (see setup.sh).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$root/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
