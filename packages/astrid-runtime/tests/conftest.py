"""Shared test helpers: a scripted person at the frontend, a runtime on the scripted model, and
the workspace most runtime tests act on. Test modules import them with ``from .conftest import``
(the tests folder is a package, so that works under ``--import-mode=importlib``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from astrid_core import (
    SessionId,
)
from astrid_core.testing import ScriptedFrontend
from astrid_runtime.config import load_config
from astrid_runtime.llm import ModelRequest, ScriptedProvider, ScriptedTurn
from astrid_runtime.runtime import AgentRuntime

# The capsule PDK header (astrid_pdk.h) the C test capsules include.
PDK_DIR = Path(__file__).resolve().parents[2] / "astrid-capsule" / "wasm"


def build_c_capsule(source: str, out_dir: Path, name: str) -> Path:
    """Compile one C test capsule to ``out_dir/name.wasm`` with clang (wasm32, no libc);
    fail (not skip) when the toolchain is missing."""
    if shutil.which("clang") is None:
        pytest.fail("clang is not installed: run scripts/install-test-deps (installs clang + lld)")
    (out_dir / f"{name}.c").write_text(source)
    wasm = out_dir / f"{name}.wasm"
    subprocess.run(
        [
            "clang",
            "--target=wasm32-unknown-unknown",
            "-O2",
            "-nostdlib",
            "-Wl,--no-entry",
            "-Wl,--export-dynamic",
            f"-I{PDK_DIR}",
            "-o",
            str(wasm),
            str(out_dir / f"{name}.c"),
        ],
        check=True,
        capture_output=True,
    )
    return wasm


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A project with a file worth keeping and one worth deleting (modules may override)."""
    ws = tmp_path / "project"
    ws.mkdir()
    (ws / "important.txt").write_text("important")
    (ws / "old.log").write_text("old")
    return ws.resolve()


Human = ScriptedFrontend  # a scripted person at a frontend (astrid_core.testing)


def turns(*items: tuple[str, list[tuple[str, dict[str, Any]]]]) -> list[ScriptedTurn]:
    return [ScriptedTurn(text, tuple(calls)) for text, calls in items]


async def open_runtime(
    tmp_path: Path,
    script: Sequence[ScriptedTurn] | Callable[[ModelRequest], ScriptedTurn],
    *,
    mode: str = "safe",
    config: str = "",
) -> AgentRuntime:
    """A runtime in ``tmp_path/home`` on the scripted model; ``config`` is appended to the
    ``config.toml`` after the ``[workspace]`` table that sets ``mode``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f'[workspace]\nmode = "{mode}"\n' + config)
    return await AgentRuntime.open(
        home, config=load_config(home, env={}), provider=ScriptedProvider(script)
    )


async def collect(runtime: AgentRuntime, session: SessionId, text: str) -> list[dict[str, Any]]:
    """Every event of one turn, as the JSON a frontend receives."""
    return [json.loads(e.model_dump_json()) async for e in runtime.run_turn(session, text)]
