"""The model writes inside and outside the workspace under each mode and escape policy: who is
asked, what is refused outright, and that nothing outside is written without a yes."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrid_core import ApprovalOption

from .conftest import Human, collect, open_runtime, turns

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["safe", "guided", "autonomous"])
@pytest.mark.parametrize("escape", ["ask", "deny"])
async def test_a_write_outside_the_workspace(
    tmp_path: Path, workspace: Path, mode: str, escape: str
) -> None:
    outside = tmp_path / "outside.txt"
    script = turns(
        ("writing", [("write_file", {"path": str(outside), "content": "x"})]), ("ok", [])
    )
    runtime = await open_runtime(
        tmp_path, script, mode=mode, config=f'escape_policy = "{escape}"\n'
    )
    human = Human([ApprovalOption.DENY])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        session = (await runtime.create_session(str(workspace))).session_id
        events = await collect(runtime, session, "write it")
        [result] = [e for e in events if e["type"] == "tool_call_result"]
        assert result["denied"] is True
        assert not outside.exists()
        # ask: every mode puts the question to the person; deny: nobody is asked.
        assert len(human.asked) == (1 if escape == "ask" else 0)
    finally:
        await runtime.aclose()


@pytest.mark.parametrize(("mode", "asked"), [("safe", 1), ("guided", 1), ("autonomous", 0)])
async def test_a_write_inside_the_workspace(
    tmp_path: Path, workspace: Path, mode: str, asked: int
) -> None:
    inside = workspace / "notes.md"
    script = turns(("writing", [("write_file", {"path": "notes.md", "content": "x"})]), ("ok", []))
    runtime = await open_runtime(tmp_path, script, mode=mode)
    human = Human([ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        session = (await runtime.create_session(str(workspace))).session_id
        await collect(runtime, session, "write it")
        assert inside.read_text() == "x"
        assert len(human.asked) == asked
    finally:
        await runtime.aclose()


@pytest.mark.parametrize(("mode", "asked"), [("safe", 1), ("guided", 0), ("autonomous", 0)])
async def test_a_read_inside_the_workspace(
    tmp_path: Path, workspace: Path, mode: str, asked: int
) -> None:
    script = turns(("reading", [("read_file", {"path": "important.txt"})]), ("ok", []))
    runtime = await open_runtime(tmp_path, script, mode=mode)
    human = Human([ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        session = (await runtime.create_session(str(workspace))).session_id
        events = await collect(runtime, session, "read it")
        [result] = [e for e in events if e["type"] == "tool_call_result"]
        assert result["ok"] is True
        assert len(human.asked) == asked
    finally:
        await runtime.aclose()
