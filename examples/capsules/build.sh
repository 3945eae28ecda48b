#!/usr/bin/env bash
# Build the example capsules that have a WASM component from their C sources, and record each
# build's BLAKE3 in its Capsule.toml ([component] hash), which the installer and the runtime
# check before loading it.
#
# Usage: examples/capsules/build.sh [DIR]
#   DIR holds the capsule directories to build (default: this directory, i.e. the committed
#   capsules). The tests pass a copy, so checking that the sources reproduce the committed
#   component.wasm never writes into the repository.
#
# Needs Debian clang + lld (scripts/install-test-deps installs them) and a Python with the
# workspace installed (PYTHON, else the repository's .venv, else `uv run`) for the hash.
# Idempotent: a file is only rewritten when its content changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="$(cd "${1:-$here}" && pwd)"
pdk="$repo/packages/astrid-capsule/wasm" # astrid_pdk.h: the guest-side ABI, shared

if [ -n "${PYTHON:-}" ]; then
  python=("$PYTHON")
elif [ -x "$repo/.venv/bin/python" ]; then
  python=("$repo/.venv/bin/python")
else
  python=(uv run --frozen --project "$repo" python)
fi

# -fno-builtin: without libc there is no memcpy/memset, so clang must not turn loops into them.
cflags=(--target=wasm32-unknown-unknown -O2 -nostdlib -fno-builtin -Wall -Wextra
  -isystem "$pdk" -Wl,--no-entry -Wl,--export-dynamic)

build() { # build CAPSULE SOURCE
  local dir="$dest/$1" source="$2"
  local tmp
  tmp="$(mktemp "$dir/.component.wasm.XXXXXX")"
  # A failed build must not leave a stray file in the capsule: it would be installed with it.
  if ! clang "${cflags[@]}" -o "$tmp" "$dir/$source"; then
    rm -f "$tmp"
    exit 1
  fi
  if cmp -s "$tmp" "$dir/component.wasm"; then
    rm -f "$tmp"
  else
    chmod 0644 "$tmp"
    mv -f "$tmp" "$dir/component.wasm"
  fi
  "${python[@]}" - "$dir/Capsule.toml" "$dir/component.wasm" <<'PY'
import re
import sys
from pathlib import Path

from astrid_crypto import hash_file

manifest, wasm = Path(sys.argv[1]), Path(sys.argv[2])
text = manifest.read_text(encoding="utf-8")
digest = hash_file(wasm).hex
updated, count = re.subn(r'(?m)^hash = "[0-9a-f]{64}"$', f'hash = "{digest}"', text, count=1)
if count != 1:
    sys.exit(f'{manifest}: no `hash = "<64 hex>"` line under [component] to update')
if updated != text:
    manifest.write_text(updated, encoding="utf-8")
print(f"{manifest.parent.name}: component.wasm {wasm.stat().st_size} bytes, blake3 {digest}")
PY
}

if [ -d "$dest/weather-notes" ]; then
  build weather-notes src/weather_notes.c
fi

# Seed 001's github-agent: its manifest (the seed's, verbatim) gives no hash; the installer
# hashes the component and binds the trust record to it.
if [ -d "$dest/github-agent/src" ]; then
  mkdir -p "$dest/github-agent/bin"
  clang "${cflags[@]}" -o "$dest/github-agent/bin/github_agent.wasm" \
    "$dest/github-agent/src/github_agent.c"
  echo "github-agent: bin/github_agent.wasm (hashed at install)"
fi
