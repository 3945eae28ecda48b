"""An agent round (LLM call + tool call, each authorized and audited, budget reserved and
settled) costs at most two storage transactions on the default (durable) storage: the budget
rides in the audit transactions and each outcome rides with the next decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from astrid_audit import verify_storage
from astrid_core.storage._sqlite import SqliteStorage

from .conftest import open_runtime, turns

pytestmark = pytest.mark.anyio
ROUNDS = 6


async def test_a_round_is_at_most_two_storage_transactions(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "a.txt").write_text("a")
    script = turns(*[("", [("read_file", {"path": "a.txt"})])] * ROUNDS, ("done", []))
    runtime = await open_runtime(tmp_path, script, mode="autonomous")
    assert isinstance(runtime.storage, SqliteStorage)  # the default backend
    calls: list[int] = []
    original = SqliteStorage.transaction

    async def counting(self: SqliteStorage, *args: Any, **kwargs: Any) -> bool:
        calls.append(1)
        return await original(self, *args, **kwargs)

    try:
        session = (await runtime.create_session(str(workspace))).session_id
        monkeypatch.setattr(SqliteStorage, "transaction", counting)
        async for _ in runtime.run_turn(session, "read it"):
            pass
        monkeypatch.setattr(SqliteStorage, "transaction", original)
        # Two per round, plus the turn's last LLM call (its decision), the flush of its
        # outcome at the end of the turn and the session save: 15 here (29 before, 4 a round).
        assert len(calls) <= 2 * ROUNDS + 3, f"{len(calls)} transactions for {ROUNDS} rounds"
        budget = await runtime.storage.get("budget", f"session:{session}")
        assert isinstance(budget, dict)
        assert budget["reserved"] == 0  # every reservation settled
        report = await verify_storage(runtime.storage, [runtime.key.public_key])
        assert report.entries >= 4 * ROUNDS
    finally:
        await runtime.aclose()
