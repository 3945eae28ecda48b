#!/usr/bin/env bash
# Build the capsule WASM modules from their C sources (needs Debian clang + lld; installed by
# scripts/install-test-deps). Output: packages/astrid-capsule/wasm/build/<name>.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/build"
mkdir -p "$out"
for src in "$here"/*.c; do
  name="$(basename "$src" .c)"
  clang --target=wasm32-unknown-unknown -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
    -o "$out/$name.wasm" "$src"
done
echo "built: $(ls "$out")"
