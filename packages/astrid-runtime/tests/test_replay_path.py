"""A deferred call approved later runs through the agent loop's tool path, like a live call:
``before_tool_call`` hooks (and so capsule ``BeforeToolCall`` interceptors) may still deny it,
``after_tool_call`` hooks fire, and its events are emitted. Before, the replayer called
``tool.run`` directly and skipped all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from astrid_audit import OutcomeKind
from astrid_core import ApprovalDecision, JsonObject
from astrid_runtime.agent import HookDecision, HookEvent
from astrid_runtime.events import AgentEvent, ToolCallFinished, ToolCallStarted

from .conftest import Human, collect, open_runtime, turns

pytestmark = pytest.mark.anyio


async def _deferred_delete(tmp_path: Path, workspace: Path) -> tuple[Any, Any, ApprovalDecision]:
    runtime = await open_runtime(
        tmp_path, turns(("deleting", [("delete_file", {"path": "important.txt"})]), ("ok", []))
    )
    runtime.set_frontend(Human(present=False))  # type: ignore[arg-type]
    info = await runtime.create_session(str(workspace))
    await collect(runtime, info.session_id, "delete important.txt")
    [pending] = await runtime.list_deferred()
    request = pending["request"]
    assert isinstance(request, dict)
    decision = ApprovalDecision.model_validate(
        {"request_id": request["request_id"], "option": "allow_once"}
    )
    return runtime, info.session_id, decision


async def test_a_denying_before_tool_call_interceptor_stops_a_replay(
    tmp_path: Path, workspace: Path
) -> None:
    runtime, session, decision = await _deferred_delete(tmp_path, workspace)
    seen: list[AgentEvent] = []

    async def listener(session_id: str, event: AgentEvent) -> None:
        seen.append(event)

    async def refuse_deletes(event: JsonObject) -> HookDecision | None:
        if event.get("tool") == "delete_file":
            return HookDecision.deny("deletes need the weekly review")
        return None

    runtime.replay_listener = listener
    runtime.hooks.add(HookEvent.BEFORE_TOOL_CALL, refuse_deletes)
    try:
        assert await runtime.resolve_approval(decision) is True  # answered, not pending
        assert (workspace / "important.txt").exists()  # the interceptor's denial held
        finished = [e for e in seen if isinstance(e, ToolCallFinished)]
        assert [e.denied for e in finished] == [True]
        assert "deletes need the weekly review" in finished[0].output
        entries = await runtime.audit.entries(session_id=session)
        assert any(
            e.outcome.kind is OutcomeKind.DENIED
            and "deletes need the weekly review" in (e.outcome.reason or "")
            for e in entries
        )
        assert await runtime.resolve_approval(decision) is False  # exactly once
    finally:
        await runtime.aclose()


async def test_an_approved_replay_runs_with_hooks_and_events(
    tmp_path: Path, workspace: Path
) -> None:
    runtime, session, decision = await _deferred_delete(tmp_path, workspace)
    seen: list[AgentEvent] = []
    after: list[JsonObject] = []

    async def listener(session_id: str, event: AgentEvent) -> None:
        seen.append(event)

    async def record(event: JsonObject) -> HookDecision | None:
        after.append(event)
        return None

    runtime.replay_listener = listener
    runtime.hooks.add(HookEvent.AFTER_TOOL_CALL, record)
    try:
        assert await runtime.resolve_approval(decision) is True
        assert not (workspace / "important.txt").exists()  # replayed
        assert [type(e) for e in seen if isinstance(e, ToolCallStarted | ToolCallFinished)] == [
            ToolCallStarted,
            ToolCallFinished,
        ]
        assert [a["tool"] for a in after] == ["delete_file"]
        assert after[0]["ok"] is True
        history = await runtime.session_history(session)
        assert "deferred action replayed after approval" in str(history[-1])
    finally:
        await runtime.aclose()
