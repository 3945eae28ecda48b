"""Key rotation through the runtime is audited and keeps the whole log verifiable."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrid_audit import OutcomeKind
from astrid_core import ApprovalOption
from astrid_crypto import KeyPair

from .conftest import Human, collect, open_runtime, turns

pytestmark = pytest.mark.anyio


async def test_rotation_is_signed_by_the_old_key_and_the_log_verifies_after_restart(
    tmp_path: Path, workspace: Path
) -> None:
    key_file = tmp_path / "home" / "keys" / "runtime.key"
    script = turns(
        ("Deleting.", [("delete_file", {"path": "old.log"})]),
        ("Done.", []),
    )
    runtime = await open_runtime(tmp_path, script)
    runtime.set_frontend(Human([ApprovalOption.ALLOW_ALWAYS]))  # type: ignore[arg-type]
    try:
        old = KeyPair.load(key_file)
        info = await runtime.create_session(str(workspace))
        result = await runtime.rotate_key()
        assert result["old_key_id"] == old.key_id
        new = KeyPair.load(key_file)
        assert result["new_key_id"] == new.key_id != old.key_id
        assert not key_file.with_name("runtime.key.new").exists()
        retired = key_file.parent / "retired" / f"{old.key_id}.pub"
        assert retired.read_text().strip() == old.public_key.b64  # the old entries' root of trust
        rotation = (await runtime.audit.entries(outcome=OutcomeKind.KEY_ROTATION))[0]
        assert rotation.key_id == old.key_id  # signed by the key it replaces
        assert rotation.outcome.detail["new_public_key"] == new.public_key.b64
        assert str(rotation.id) == result["audit_entry"]
        # A grant made after the rotation is signed by the new key and works at once.
        await collect(runtime, info.session_id, "delete old.log")
        assert not (workspace / "old.log").exists()
        tokens = await runtime.list_tokens()
        assert [row["status"] for row in tokens] == ["valid"]
    finally:
        await runtime.aclose()
    runtime = await open_runtime(tmp_path, turns(("ok", [])))
    try:
        assert runtime.key.key_id == new.key_id
        report = await runtime.audit_verify()
        assert report["ok"] is True
        kinds = [e.key_id for e in await runtime.audit.entries()]
        assert old.key_id in kinds
        assert new.key_id in kinds  # entries on both sides of the rotation verified
    finally:
        await runtime.aclose()
