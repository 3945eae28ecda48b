"""`astrid audit verify` as a user runs it: online through the daemon (keeping the tree head it
verified), and --offline on a stopped daemon's store, under the store's lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from astrid_audit import Outcome, OutcomeKind
from astrid_audit._log import NS_CHECKPOINT, NS_ENTRY, NS_META
from astrid_core.storage import open_storage, state_url
from astrid_runtime.config import load_config
from astrid_runtime.llm import ScriptedProvider
from astrid_runtime.runtime import AgentRuntime


def astrid(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASTRID_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "astrid_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


async def _fill(home: Path, n: int) -> None:
    runtime = await AgentRuntime.open(
        home, config=load_config(home, env={}), provider=ScriptedProvider([])
    )
    try:
        for i in range(n):
            await runtime.audit.append(Outcome(kind=OutcomeKind.DENIED, reason=f"step {i}"))
    finally:
        await runtime.aclose()


async def _cut(home: Path, keep: int) -> None:
    storage = await open_storage(state_url(home / "state"))
    try:
        for key, _ in await storage.scan(NS_ENTRY):
            if int(key) >= keep:
                await storage.delete(NS_ENTRY, key)
        await storage.put(NS_META, "size", keep)
        for key, raw in await storage.scan(NS_CHECKPOINT):
            if raw["tree_size"] > keep:  # type: ignore[index, operator]
                await storage.delete(NS_CHECKPOINT, key)
    finally:
        await storage.aclose()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[audit]\ncheckpoint_every = 10\n")
    anyio.run(_fill, home, 50)
    return home


def test_offline_verify_reads_the_store_and_keeps_the_head(home: Path) -> None:
    out = astrid(home, "audit", "verify", "--offline")
    assert out.returncode == 0, out.stderr
    assert "audit log verified: OK: 50 entries" in out.stdout
    kept = json.loads((home / "witness" / "client-cli.json").read_text())
    assert kept["checkpoint"]["tree_size"] == 50


def test_offline_verify_names_a_cut_tail(home: Path) -> None:
    anyio.run(_cut, home, 40)
    out = astrid(home, "audit", "verify", "--offline")
    assert out.returncode == 1
    assert "entries 40..49 are missing" in out.stderr
    assert "tree of 50 entries" in out.stderr


def test_offline_verify_names_the_process_holding_the_store(home: Path) -> None:
    async def held() -> subprocess.CompletedProcess[str]:
        storage = await open_storage(state_url(home / "state"))
        try:
            return await anyio.to_thread.run_sync(
                lambda: astrid(home, "audit", "verify", "--offline")
            )
        finally:
            await storage.aclose()

    out = anyio.run(held)
    assert out.returncode == 1
    assert f"pid {os.getpid()}" in out.stderr


def test_online_verify_keeps_the_head_that_later_catches_a_rollback_of_the_witness(
    home: Path,
) -> None:
    try:
        out = astrid(home, "audit", "verify", timeout=120)
        assert out.returncode == 0, out.stderr
        assert "audit log verified: OK: 50 entries" in out.stdout
        export = home.parent / "audit.jsonl"
        out = astrid(home, "audit", "export", str(export))
        assert out.returncode == 0, out.stderr
        kept_file = str(home / "witness" / "client-cli.json")
        offline = subprocess.run(
            [
                sys.executable,
                "-m",
                "astrid_audit",
                "verify",
                str(export),
                "--key",
                f"{export}.pub",
                "--checkpoint",
                kept_file,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert offline.returncode == 0, offline.stderr
        assert offline.stdout.startswith("OK: 50 entries")
    finally:
        astrid(home, "daemon", "stop")
    kept = json.loads((home / "witness" / "client-cli.json").read_text())
    assert kept["checkpoint"]["tree_size"] == 50
    anyio.run(_cut, home, 30)  # the store and the daemon's witness rolled back together
    witness = home / "witness" / "checkpoints"
    heads = witness.read_text().splitlines(keepends=True)
    witness.write_text("".join(h for h in heads if json.loads(h)["tree_size"] <= 30))
    out = astrid(home, "audit", "verify", "--offline")
    assert out.returncode == 1
    assert "entries 30..49 are missing" in out.stderr
    assert "tree head kept by the client" in out.stderr
