"""The engine build: cached by the hash of its inputs, and reproducible (the same inputs give
the same engine.wasm, byte for byte)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from astrid_openclaw import find_toolchain

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "build-openclaw-engine"


def test_an_unchanged_build_is_skipped(toolchain: None) -> None:
    engine = find_toolchain().engine
    before = engine.stat().st_mtime_ns
    run = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # nothing built
    assert engine.stat().st_mtime_ns == before


@pytest.mark.slow
def test_the_engine_build_is_reproducible(toolchain: None, tmp_path: Path) -> None:
    chain = find_toolchain()
    home = tmp_path / "openclaw"
    home.mkdir()
    # Reuse the pinned sdist (its hash is checked again) instead of downloading it.
    for sdist in chain.home.glob("quickjs_ng-*.tar.gz"):
        (home / sdist.name).write_bytes(sdist.read_bytes())
    env = {**os.environ, "ASTRID_OPENCLAW_HOME": str(home)}
    run = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stderr
    digest = hashlib.sha256((home / "engine.wasm").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(chain.engine.read_bytes()).hexdigest()
