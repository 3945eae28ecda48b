"""Event ordering per session, against a real daemon: the approval question is delivered
before the turn goes on, and its resolution before the turn's next event (both are published
from the turn's own task; see ``astrid_runtime.events``)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from astrid_gateway.client import GatewayClient
from astrid_gateway.protocol import (
    AgentEvent,
    ApprovalNeeded,
    ApprovalResolved,
    ToolCallFinished,
    ToolCallStarted,
    TurnComplete,
)
from astrid_gateway.testing import start_daemon, stop_daemon, write_scripted_config

pytestmark = pytest.mark.anyio


def _delete(path: str) -> dict[str, object]:
    return {"tool": "delete_file", "arguments": {"path": path}}


async def test_each_approval_is_resolved_before_the_turn_goes_on(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (workspace / name).write_text(name)
    home = tmp_path / "home"
    write_scripted_config(
        home,
        workspace,
        [
            {"text": "deleting", "tool_calls": [_delete("a.txt"), _delete("b.txt")]},
            {"text": "and one more", "tool_calls": [_delete("c.txt")]},
            {"text": "done"},
        ],
        mode="safe",
    )
    proc = start_daemon(home)
    seen: list[AgentEvent] = []
    try:
        async with await GatewayClient.open(home, autostart=False) as client:
            session = (await client.call("createSession", workspace=str(workspace)))["session_id"]
            await client.subscribe(session)
            await client.call("sendInput", session_id=session, text="delete them")
            with anyio.fail_after(60):
                async for event in client.events():
                    seen.append(event)
                    if isinstance(event, ApprovalNeeded):
                        await client.call(
                            "approvalResponse",
                            request_id=str(event.request.request_id),
                            option="allow_once",
                        )
                    if isinstance(event, TurnComplete):
                        break
    finally:
        stop_daemon(proc)

    kinds = [type(e) for e in seen]
    questions = [i for i, e in enumerate(seen) if isinstance(e, ApprovalNeeded)]
    assert len(questions) == 3, kinds
    for i in questions:
        question, answer, result = seen[i], seen[i + 1], seen[i + 2]
        assert isinstance(question, ApprovalNeeded)
        # the question comes after its tool call started, and nothing of the turn between it
        # and its answer; the answer comes before the tool's result
        assert isinstance(seen[i - 1], ToolCallStarted), kinds
        assert isinstance(answer, ApprovalResolved), kinds
        assert answer.request_id == str(question.request.request_id)
        assert isinstance(result, ToolCallFinished), kinds
    assert isinstance(seen[-1], TurnComplete)
    assert not any(workspace.iterdir())
