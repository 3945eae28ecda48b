"""A state directory written before format v2 still verifies where `astrid audit verify` runs
(the daemon's auditVerify is ``AgentRuntime.audit_verify``), then takes v2 entries and
capability tokens, floats included, on the same SurrealDB embedded store."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from astrid_audit import Outcome, OutcomeKind
from astrid_capabilities._store import NS_TOKENS
from astrid_core import TokenId
from astrid_core.storage import open_storage

from .conftest import open_runtime, turns

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
AUDIT_V1 = ROOT / "astrid-audit" / "tests" / "fixtures" / "audit_v1_storage.json"
TOKEN_V1 = ROOT / "astrid-capabilities" / "tests" / "vectors" / "token_v1.json"


async def test_v1_state_verifies_and_goes_on_in_v2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    key_file = home / "keys" / "runtime.key"
    key_file.write_bytes(bytes(range(32)))  # the key the v1 fixtures were signed with
    os.chmod(key_file, 0o600)
    storage = await open_storage(f"surrealkv://{home / 'state'}")
    try:
        for namespace, rows in json.loads(AUDIT_V1.read_text())["rows"].items():
            for name, value in rows:
                await storage.put(namespace, name, value)
        token = json.loads(TOKEN_V1.read_text())["token"]
        await storage.put(NS_TOKENS, token["id"], token)
    finally:
        await storage.aclose()

    runtime = await open_runtime(tmp_path, turns(("ok", [])))
    try:
        report = await runtime.audit_verify()
        assert report["ok"] is True
        assert isinstance(report["entries"], int)
        assert report["entries"] >= 7
        await runtime.capabilities.load()
        assert runtime.capabilities.tampered_count == 0
        # (The v1 token is issued in 2027: loaded and verified, then refused as not yet valid.)
        explained = await runtime.capabilities.explain(TokenId.parse(token["id"]))
        assert explained.tampered_ignored == 0
        assert explained.reason.startswith("not valid before") or explained.allowed, (
            explained.reason
        )
        info = await runtime.create_session(str(tmp_path))
        await runtime.audit.append(
            Outcome(kind=OutcomeKind.ALLOWED, detail={"x": 98.7}),
            session_id=info.session_id,
        )
        entries = await runtime.audit.entries()
        assert {e.v for e in entries} == {1, 2}
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()


def test_astrid_audit_verify_accepts_the_v1_state(tmp_path: Path) -> None:
    """The real command: `astrid audit verify` against astridd on a v1 state directory."""
    import anyio

    from astrid_gateway.testing import run_cli, start_daemon, stop_daemon

    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    key_file = home / "keys" / "runtime.key"
    key_file.write_bytes(bytes(range(32)))
    os.chmod(key_file, 0o600)

    async def load() -> None:
        storage = await open_storage(f"surrealkv://{home / 'state'}")
        try:
            for namespace, rows in json.loads(AUDIT_V1.read_text())["rows"].items():
                for name, value in rows:
                    await storage.put(namespace, name, value)
        finally:
            await storage.aclose()

    anyio.run(load)
    daemon = start_daemon(home)
    try:
        done = run_cli(home, "audit", "verify")
        assert done.returncode == 0, done.stderr
        found = re.search(r"audit log verified: OK: (\d+) entries", done.stdout)
        assert found is not None, done.stdout
        assert int(found.group(1)) >= 7  # the v1 entries (and what the daemon added)
    finally:
        stop_daemon(daemon)
