"""Session records and the audit log: deleting a session is audited, and a session exists only
once its first entry is on the log."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from astrid_audit import AuditLog, OutcomeKind
from astrid_core import StorageError
from astrid_core.storage import open_storage

from .conftest import open_runtime, turns

pytestmark = pytest.mark.anyio


async def test_deleting_a_session_is_audited_on_its_chain(tmp_path: Path, workspace: Path) -> None:
    runtime = await open_runtime(tmp_path, turns(("ok", [])))
    try:
        info = await runtime.create_session(str(workspace))
        await runtime.delete_session(info.session_id)
        kinds = [e.outcome.kind for e in await runtime.audit.entries(session_id=info.session_id)]
        assert kinds == [OutcomeKind.SESSION_START, OutcomeKind.SESSION_DELETED]
        assert await runtime.list_sessions() == []
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()


async def test_a_session_whose_start_cannot_be_recorded_is_not_saved(
    tmp_path: Path, workspace: Path
) -> None:
    runtime = await open_runtime(tmp_path, turns(("ok", [])))
    audit_dir = tmp_path / "audit-only"
    audit_storage = await open_storage(f"surrealkv://{audit_dir}")
    try:
        runtime.audit = await AuditLog.open(audit_storage, runtime.key)
        shutil.rmtree(audit_dir)  # the audit store goes; the session store still works
        with pytest.raises(StorageError, match="audit log unavailable"):
            await runtime.create_session(str(workspace))
        assert await runtime.list_sessions() == []  # no session without its first entry
    finally:
        await audit_storage.aclose()
        await runtime.storage.aclose()
