"""[sessions] retention_days: stored sessions older than it are deleted, at start and daily."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from astrid_core import NotFoundError, SessionId
from astrid_runtime.runtime import AgentRuntime

from .conftest import collect, open_runtime, turns

pytestmark = pytest.mark.anyio

RETENTION = "[sessions]\nretention_days = 30\n"


async def _age(runtime: AgentRuntime, session_id: SessionId, days: float) -> None:
    """Rewrite the stored record as last updated ``days`` ago (save() would stamp it now)."""
    session = await runtime.sessions.load(session_id)
    session.updated_at = time.time() - days * 86_400
    await runtime.storage.put("sessions", str(session_id), session.to_json())


async def test_old_sessions_go_recent_and_open_ones_stay(tmp_path: Path, workspace: Path) -> None:
    runtime = await open_runtime(tmp_path, turns(("hi", [])), config=RETENTION)
    try:
        old = (await runtime.create_session(str(workspace))).session_id
        recent = (await runtime.create_session(str(workspace))).session_id
        await collect(runtime, old, "hello")
    finally:
        await runtime.aclose()

    again = await open_runtime(tmp_path, turns(("hi", [])), config=RETENTION)
    try:
        await _age(again, old, 31)
        await _age(again, recent, 29)
        open_now = (await again.create_session(str(workspace))).session_id
        await _age(again, open_now, 400)  # old by its record, but open in this daemon

        assert await again.expire_sessions() == 1
        with pytest.raises(NotFoundError):
            await again.sessions.load(old)
        kept = {s.id for s in await again.sessions.list()}
        assert kept == {recent, open_now}
        assert await again.expire_sessions() == 0  # nothing left to expire
        # The audit log keeps what the deleted session did, and still verifies.
        assert (await again.audit_verify())["ok"] is True
    finally:
        await again.aclose()
