"""CapsuleAdmin: plans, trust, audit (fail closed), secrets sealed at rest."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from astrid_audit import AuditLog, OutcomeKind
from astrid_capsule.admin import CapsuleAdmin
from astrid_capsule.install import (
    TRUST_REQUIRED_MESSAGE,
    RenewTrust,
    TrustRequired,
    compile_capsule,
)
from astrid_core import BadInputError, ConfigError, NotFoundError, StorageError, VerificationError
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio

BASE = """[package]
name = "greeter"
version = "{version}"
description = "says hello"

[capabilities]
net = [{net}]

[[skill]]
name = "greet"
content = "Say hello."
{extra}"""

SECRET = """
[env.API_TOKEN]
description = "token for example.com"
secret = true
"""

MCP = """
[[mcp_server]]
id = "helper"
command = "helper-server"
"""


def capsule(
    root: Path, version: str = "0.1.0", net: str = '"api.example.com"', extra: str = ""
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Capsule.toml").write_text(BASE.format(version=version, net=net, extra=extra))
    return root


async def admin_for(
    home: Path, renew_trust: RenewTrust = "always"
) -> tuple[CapsuleAdmin, AuditLog, MemoryStorage]:
    storage = MemoryStorage()
    audit = await AuditLog.open(storage, KeyPair.generate())
    return CapsuleAdmin(home, storage, audit, renew_trust=renew_trust), audit, storage


async def plan(admin: CapsuleAdmin, source: str | Path) -> tuple[str, dict[str, Any]]:
    planned: dict[str, Any] = dict(await admin.plan(str(source)))
    return planned["plan_id"], planned["disclosure"]


async def commit(
    admin: CapsuleAdmin, plan_id: str, trust: str | None, secrets: dict[str, str] | None = None
) -> dict[str, Any]:
    return dict(await admin.commit(plan_id, trust, "cli:test", secrets))


def staging_dirs(home: Path) -> list[Path]:
    root = home / "capsules"
    return list(root.glob(".staging-*")) if root.exists() else []


async def test_fresh_install_needs_trust_and_is_audited_with_its_hash(tmp_path: Path) -> None:
    admin, audit, _ = await admin_for(tmp_path / "home")
    source = capsule(tmp_path / "src")
    plan_id, disclosure = await plan(admin, source)
    assert disclosure["needs_trust"] is True
    assert disclosure["publisher"] == {"signed": False, "key_id": None, "trusted": False}
    with pytest.raises(TrustRequired) as refused:
        await commit(admin, plan_id, None)
    assert refused.value.message == TRUST_REQUIRED_MESSAGE
    assert await admin.list() == []
    assert staging_dirs(tmp_path / "home") == []

    plan_id, disclosure = await plan(admin, source)
    record = (await commit(admin, plan_id, "flag"))["record"]
    assert record["trust_method"] == "flag"
    assert record["trust_actor"] == "cli:test"
    assert record["content_hash"] == disclosure["content_hash"]
    entries = await audit.entries(outcome=OutcomeKind.CAPSULE_INSTALL)
    assert len(entries) == 1
    assert entries[0].outcome.detail["content_hash"] == record["content_hash"]
    assert entries[0].outcome.detail["permissions_accepted"] == record["permissions_accepted"]
    assert (await admin.info("greeter"))["verified"] is True


async def test_no_audit_no_install(tmp_path: Path) -> None:
    home = tmp_path / "home"
    audit_storage = MemoryStorage()
    audit = await AuditLog.open(audit_storage, KeyPair.generate())
    admin = CapsuleAdmin(home, MemoryStorage(), audit)
    plan_id, _ = await plan(admin, capsule(tmp_path / "src"))
    await audit_storage.aclose()  # the audit log can no longer be written
    with pytest.raises(StorageError):
        await commit(admin, plan_id, "flag")
    assert await admin.list() == []
    installed = home / "capsules" / "greeter"
    assert not installed.exists() or list(installed.iterdir()) == []
    assert staging_dirs(home) == []


async def test_plan_is_used_once_and_expires(tmp_path: Path) -> None:
    now = [1000.0]
    admin, _, _ = await admin_for(tmp_path / "home")
    admin._clock = lambda: now[0]  # a clock moved by hand instead of waiting ten minutes
    source = capsule(tmp_path / "src")
    plan_id, _ = await plan(admin, source)
    now[0] += admin.plan_ttl_seconds + 1
    with pytest.raises(NotFoundError, match="no pending install plan"):
        await commit(admin, plan_id, "flag")
    assert staging_dirs(tmp_path / "home") == []

    plan_id, _ = await plan(admin, source)
    await commit(admin, plan_id, "flag")
    with pytest.raises(NotFoundError):
        await commit(admin, plan_id, "flag")


async def test_stale_plan_is_refused_after_another_install(tmp_path: Path) -> None:
    admin, _, _ = await admin_for(tmp_path / "home")
    first, _ = await plan(admin, capsule(tmp_path / "a"))
    second, _ = await plan(admin, capsule(tmp_path / "b", net='"evil.example.net"'))
    await commit(admin, first, "flag")
    # The second plan was disclosed as a fresh install; committing it now would replace the
    # first without showing that it widens it.
    with pytest.raises(ConfigError, match="since this plan was made"):
        await commit(admin, second, "flag")
    record = await admin.installer.require("greeter")
    assert record.permissions_accepted["net"] == ["api.example.com"]
    assert staging_dirs(tmp_path / "home") == []


async def test_update_adding_an_mcp_server_or_secret_needs_trust_again(tmp_path: Path) -> None:
    admin, audit, _ = await admin_for(tmp_path / "home", renew_trust="on_widening")
    plan_id, _ = await plan(admin, capsule(tmp_path / "v1"))
    await commit(admin, plan_id, "flag")

    plan_id, disclosure = await plan(admin, capsule(tmp_path / "v2", version="0.1.1"))
    assert disclosure["needs_trust"] is False
    await commit(admin, plan_id, None)

    plan_id, disclosure = await plan(
        admin, capsule(tmp_path / "v3", version="0.2.0", extra=MCP + SECRET)
    )
    assert disclosure["needs_trust"] is True
    assert disclosure["widened"] == ["mcp_server: helper (helper-server)", "secret: API_TOKEN"]
    assert "NEW permissions" in disclosure["text"]
    with pytest.raises(TrustRequired):
        await commit(admin, plan_id, None)
    assert (await admin.installer.require("greeter")).version == "0.1.1"
    kinds = [e.outcome.kind for e in await audit.entries()]
    assert kinds == [OutcomeKind.CAPSULE_INSTALL, OutcomeKind.CAPSULE_UPDATE]


async def test_secrets_are_sealed_at_rest_and_bound_to_their_name(tmp_path: Path) -> None:
    home = tmp_path / "home"
    admin, _, storage = await admin_for(home)
    source = capsule(tmp_path / "src", extra=SECRET)
    plan_id, _ = await plan(admin, source)
    with pytest.raises(BadInputError, match="needs the secret"):
        await commit(admin, plan_id, "flag")
    plan_id, _ = await plan(admin, source)
    with pytest.raises(BadInputError, match="declares no secret named OTHER"):
        await commit(admin, plan_id, "flag", {"OTHER": "x"})
    assert staging_dirs(home) == []

    plan_id, _ = await plan(admin, source)
    result = await commit(admin, plan_id, "flag", {"API_TOKEN": "tok-SECRET-123"})
    assert result["secrets_stored"] == ["API_TOKEN"]
    rows = [
        row
        for namespace in ("capsules", "capsule_secrets", "audit_entry")
        for row in await storage.scan(namespace)
    ]
    assert "API_TOKEN" in json.dumps(rows)
    assert "tok-SECRET-123" not in json.dumps(rows)
    assert await admin.secrets.reveal("greeter", "API_TOKEN") == "tok-SECRET-123"
    key_file = home / "keys" / "capsule-secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # A ciphertext moved to another name does not open.
    sealed: Any = await storage.get("capsule_secrets", "greeter")
    moved = {"v": 1, "values": {"OTHER": sealed["values"]["API_TOKEN"]}}
    await storage.put("capsule_secrets", "greeter", moved)
    with pytest.raises(VerificationError, match="does not open"):
        await admin.secrets.reveal("greeter", "OTHER")

    await admin.remove("greeter")
    assert await storage.get("capsule_secrets", "greeter") is None


async def test_trusted_publishers_come_from_keys_publishers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    admin, _, _ = await admin_for(home)
    publisher = KeyPair.generate()
    archive = tmp_path / "greeter.capsule"
    compile_capsule(capsule(tmp_path / "src"), archive, sign_with=publisher)

    plan_id, disclosure = await plan(admin, archive)
    assert disclosure["publisher"]["trusted"] is False
    await admin.discard(plan_id)

    (home / "keys" / "publishers").mkdir(parents=True)
    (home / "keys" / "publishers" / "acme.pub").write_text(publisher.public_key.b64 + "\n")
    plan_id, disclosure = await plan(admin, archive)
    assert disclosure["publisher"] == {
        "signed": True,
        "key_id": publisher.key_id,
        "trusted": True,
    }
    await admin.discard(plan_id)

    (home / "keys" / "publishers" / "broken.pub").write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"broken\.pub is not a base64 Ed25519 public key"):
        await plan(admin, archive)
    assert staging_dirs(home) == []


async def test_relative_source_is_refused(tmp_path: Path) -> None:
    admin, _, _ = await admin_for(tmp_path / "home")
    with pytest.raises(BadInputError, match="not an absolute path"):
        await admin.plan("src")


async def test_orphaned_staging_from_a_previous_daemon_is_removed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    orphan = home / "capsules" / ".staging-left-behind"
    orphan.mkdir(parents=True)
    admin, _, _ = await admin_for(home)
    plan_id, _ = await plan(admin, capsule(tmp_path / "src"))
    assert not orphan.exists()
    assert len(staging_dirs(home)) == 1  # only the live plan's copy
    await admin.discard(plan_id)
    assert staging_dirs(home) == []
