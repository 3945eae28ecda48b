"""Revocations and single-use spends are on the audit log; a deleted row cannot revive a token.

Real SurrealDB embedded: the token is revoked (or spent) through the runtime, the runtime stops,
the ``cap_revoked`` / ``cap_used`` row is deleted straight from the store (what an attacker with
the state directory can do), and after a restart the token is still refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astrid_audit import OutcomeKind
from astrid_capabilities import CapabilityToken, ResourcePattern
from astrid_capabilities._store import NS_REVOKED, NS_USED
from astrid_core import (
    ApprovalOption,
    AuditEntryId,
    BadInputError,
    FileRead,
    NotFoundError,
    Permission,
    ProofKind,
)
from astrid_core.storage import open_storage, state_url
from astrid_runtime.runtime import AgentRuntime

from .conftest import Human, collect, open_runtime, turns

pytestmark = pytest.mark.anyio


async def _reopen(tmp_path: Path) -> AgentRuntime:
    return await open_runtime(tmp_path, turns(("ok", [])))


async def _delete_row(tmp_path: Path, namespace: str, key: str) -> None:
    store = await open_storage(state_url(tmp_path / "home" / "state"))
    try:
        assert await store.delete(namespace, key), f"no {namespace} row {key} to delete"
    finally:
        await store.aclose()


async def test_revoked_allow_always_token_stays_revoked_after_its_row_is_deleted(
    tmp_path: Path, workspace: Path
) -> None:
    script = turns(("Deleting.", [("delete_file", {"path": "old.log"})]), ("Done.", []))
    runtime = await open_runtime(tmp_path, script)
    runtime.set_frontend(Human([ApprovalOption.ALLOW_ALWAYS]))  # type: ignore[arg-type]
    try:
        info = await runtime.create_session(str(workspace))
        await collect(runtime, info.session_id, "delete old.log")
        listed = await runtime.list_tokens()
        assert [row["status"] for row in listed] == ["valid"]
        token_id = str(listed[0]["id"])
        result = await runtime.revoke_token(token_id, "no longer wanted")
        assert result["revoked"] == [token_id]
        revocations = await runtime.audit.entries(outcome=OutcomeKind.CAPABILITY_REVOKED)
        assert [e.outcome.detail["capability_ids"] for e in revocations] == [[token_id]]
        assert str(revocations[0].id) == result["audit_entry"]
        # Witnessed at once: cutting the revocation from the store's tail (with the row) is
        # caught at the next start, not only after the next 1,000 entries.
        assert runtime.audit.witness is not None
        newest = runtime.audit.witness.newest()
        assert newest is not None
        assert newest.checkpoint.tree_size > revocations[0].seq
        assert (await runtime.list_tokens())[0]["status"] == "revoked"
        with pytest.raises(NotFoundError):
            await runtime.revoke_token("00000000-0000-4000-8000-000000000000")
        with pytest.raises(BadInputError):
            await runtime.revoke_token("not-a-token")
    finally:
        await runtime.aclose()

    await _delete_row(tmp_path, NS_REVOKED, token_id)

    runtime = await _reopen(tmp_path)
    try:
        assert (await runtime.list_tokens())[0]["status"] == "revoked"
        status = await runtime.status()
        assert any(token_id in w and "cap_revoked" in w for w in status.warnings), status.warnings
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()


async def test_spent_single_use_token_stays_spent_after_its_row_is_deleted(
    tmp_path: Path, workspace: Path
) -> None:
    target = str(workspace / "important.txt")
    runtime = await open_runtime(tmp_path, turns(("ok", [])))
    try:
        info = await runtime.create_session(str(workspace))
        token = CapabilityToken.issue(
            runtime.key,
            ResourcePattern.literal(f"file://{target}"),
            [Permission.READ],
            scope="persistent",
            approval_audit_id=AuditEntryId.new(),
            single_use=True,
        )
        await runtime.capabilities.add(token)
        interceptor = runtime._live[str(info.session_id)].interceptor  # pyright: ignore[reportPrivateUsage]
        first = await interceptor.intercept(FileRead(path=target), "read it")
        assert first.allowed
        assert first.authorization.proof is not None
        assert first.authorization.proof.kind is ProofKind.CAPABILITY
        assert await runtime.capabilities.get(token.id) is None  # spent
    finally:
        await runtime.aclose()

    await _delete_row(tmp_path, NS_USED, str(token.id))

    runtime = await _reopen(tmp_path)
    try:
        assert await runtime.capabilities.get(token.id) is None
        explanation = await runtime.capabilities.explain(token.id)
        assert "single-use token already used" in explanation.reason
        assert any("cap_used" in w for w in (await runtime.status()).warnings)
    finally:
        await runtime.aclose()
