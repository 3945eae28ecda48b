"""Outcome records ride with the next decision's audit write; none is left unwritten when a
turn ends, however it ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from astrid_audit import OutcomeKind, verify_storage
from astrid_audit._log import NS_ENTRY
from astrid_runtime.runtime import AgentRuntime

from .conftest import open_runtime, turns

pytestmark = pytest.mark.anyio


async def _stored_kinds(runtime: AgentRuntime) -> list[str]:
    rows = await runtime.storage.scan(NS_ENTRY)
    entries: list[dict[str, Any]] = [row for _, row in rows]  # type: ignore[misc]
    return [entry["outcome"]["kind"] for entry in entries]


async def test_every_outcome_is_durable_when_the_turn_ends(tmp_path: Path, workspace: Path) -> None:
    (workspace / "a.txt").write_text("a")
    script = turns(
        ("", [("read_file", {"path": "a.txt"})]),
        ("", [("read_file", {"path": "a.txt"})]),
        ("done", []),
    )
    runtime = await open_runtime(tmp_path, script, mode="autonomous")
    try:
        session = (await runtime.create_session(str(workspace))).session_id
        async for _ in runtime.run_turn(session, "read it twice"):
            pass
        kinds = await _stored_kinds(runtime)
        # 3 LLM calls and 2 tool calls, each a decision and an outcome, all written.
        assert kinds.count(OutcomeKind.ALLOWED) == 5
        assert kinds.count(OutcomeKind.EXECUTED) == 5
        assert kinds[-1] == OutcomeKind.EXECUTED  # the last LLM call's outcome, not lost
        report = await verify_storage(runtime.storage, [runtime.key.public_key])
        assert report.entries == len(kinds)
    finally:
        await runtime.aclose()


async def test_a_turn_abandoned_by_its_frontend_still_writes_its_outcomes(
    tmp_path: Path, workspace: Path
) -> None:
    (workspace / "a.txt").write_text("a")
    script = turns(("", [("read_file", {"path": "a.txt"})]), ("done", []))
    runtime = await open_runtime(tmp_path, script, mode="autonomous")
    try:
        session = (await runtime.create_session(str(workspace))).session_id
        events = runtime.run_turn(session, "read it")
        async for event in events:
            if event.type == "tool_call_result":
                break  # the frontend went away right after the tool ran
        await events.aclose()
        kinds = await _stored_kinds(runtime)
        assert kinds.count(OutcomeKind.EXECUTED) == 2  # the LLM call's and the tool's
    finally:
        await runtime.aclose()
