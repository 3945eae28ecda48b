from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from astrid_core import Authorization, AuthorizationProof, DenialLayer, ProofKind, SensitiveAction

WASM_DIR = Path(__file__).resolve().parents[1] / "wasm"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def wasm_modules() -> dict[str, Path]:
    """Build the C capsules with clang; fail (not skip) when the toolchain is missing."""
    if shutil.which("clang") is None:
        pytest.fail("clang is not installed: run scripts/install-test-deps (installs clang + lld)")
    subprocess.run([str(WASM_DIR / "build.sh")], check=True, capture_output=True)
    return {p.stem: p for p in (WASM_DIR / "build").glob("*.wasm")}


@dataclass
class RecordingGuard:
    """A real Guard: allows everything except resources in ``deny``, records what it saw."""

    deny: set[str] = field(default_factory=set[str])
    seen: list[SensitiveAction] = field(default_factory=list[SensitiveAction])

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        self.seen.append(action)
        if action.resource in self.deny:
            return Authorization.deny(DenialLayer.POLICY, f"{action.resource} is blocked")
        return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))


@pytest.fixture
def guard() -> RecordingGuard:
    return RecordingGuard()
