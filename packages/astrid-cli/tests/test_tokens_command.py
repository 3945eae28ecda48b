"""``astrid tokens list/revoke`` against a real daemon on a real store (subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from astrid_capabilities import CapabilityStore, CapabilityToken, ResourcePattern
from astrid_core import AuditEntryId, Permission
from astrid_core.storage import open_storage, state_url
from astrid_crypto import KeyPair

from .test_basic_commands import astrid


async def _grant(home: Path) -> tuple[str, str]:
    """An "Allow Always" token and a child narrowed from it, stored as the runtime stores them."""
    key = KeyPair.load_or_create(home / "keys" / "runtime.key")
    storage = await open_storage(state_url(home / "state"))
    try:
        store = CapabilityStore(storage, [key.public_key])
        parent = CapabilityToken.issue(
            key,
            ResourcePattern("file:///srv/data/*"),
            [Permission.READ, Permission.WRITE],
            scope="persistent",
            ttl_seconds=3600,
            approval_audit_id=AuditEntryId.new(),
        )
        await store.add(parent)
        child = parent.attenuate(
            key,
            permissions=[Permission.READ],
            resource=ResourcePattern("file:///srv/data/reports.txt"),
            ttl_seconds=1800,
        )
        await store.add(child)
        return str(parent.id), str(child.id)
    finally:
        await storage.aclose()


def test_tokens_list_and_revoke_cascades_and_is_audited(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    parent, child = anyio.run(_grant, home)
    try:
        listed = astrid(home, "tokens", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert {row["id"]: row["status"] for row in rows} == {parent: "valid", child: "valid"}
        revoked = astrid(home, "tokens", "revoke", parent, "--reason", "test")
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked 2 token(s)" in revoked.stdout
        assert astrid(home, "tokens", "list").stdout.startswith("no persistent tokens in force")
        every = json.loads(astrid(home, "tokens", "list", "--all", "--json").stdout)
        assert {row["id"]: row["status"] for row in every}[parent] == "revoked"
        assert "revoked" in {row["id"]: row["status"] for row in every}[child]
        unknown = astrid(home, "tokens", "revoke", "00000000-0000-4000-8000-000000000000")
        assert unknown.returncode != 0
        assert "astrid tokens list" in unknown.stderr
    finally:
        astrid(home, "daemon", "stop")


@pytest.mark.parametrize("args", [["tokens", "revoke"], ["tokens", "nope"]])
def test_tokens_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    assert astrid(tmp_path, *args).returncode == 2
