"""Sub-agents (the ``task`` tool) never get more than their parent: capabilities attenuated from
the parent's, the parent's policy, a slice of its budget, depth and concurrency limits."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import pytest

from astrid_audit import OutcomeKind
from astrid_capabilities import CapabilityToken, ResourcePattern
from astrid_core import ApprovalOption, AuditEntryId, Permission, SessionId
from astrid_runtime.agent import SUBAGENT_PROMPT_MARK
from astrid_runtime.llm import ModelRequest, ScriptedTurn

from .conftest import Human, collect, open_runtime

pytestmark = pytest.mark.anyio

Call = tuple[str, dict[str, Any]]


class TwoScripts:
    """The parent and its sub-agents each follow their own script (told apart by the
    sub-agent system prompt), so the test does not depend on how calls interleave."""

    def __init__(self, parent: list[ScriptedTurn], child: list[ScriptedTurn]) -> None:
        self.parent = deque(parent)
        self.child = deque(child)
        self.parent_requests: list[ModelRequest] = []
        self.child_requests: list[ModelRequest] = []

    def __call__(self, request: ModelRequest) -> ScriptedTurn:
        is_child = SUBAGENT_PROMPT_MARK in request.system
        (self.child_requests if is_child else self.parent_requests).append(request)
        queue = self.child if is_child else self.parent
        return queue.popleft() if queue else ScriptedTurn("(nothing more)")


def turn(text: str, *calls: Call, output_tokens: int | None = None) -> ScriptedTurn:
    return ScriptedTurn(text, tuple(calls), output_tokens)


def tool_outputs(events: list[dict[str, Any]], tool: str) -> list[str]:
    return [e["output"] for e in events if e["type"] == "tool_call_result" and e["tool"] == tool]


async def test_child_inherits_the_parent_session_answers_and_nothing_more(
    tmp_path: Path, workspace: Path
) -> None:
    script = TwoScripts(
        parent=[
            turn("deleting", ("delete_file", {"path": "old.log"})),
            turn("done"),
            turn("delegating", ("task", {"prompt": "clean up the workspace"})),
            turn("the sub-agent reported back"),
        ],
        child=[
            turn(
                "",
                ("delete_file", {"path": "old.log"}),
                ("delete_file", {"path": "important.txt"}),
            ),
            turn("deleted old.log; important.txt was refused"),
        ],
    )
    runtime = await open_runtime(tmp_path, script)
    human = Human([ApprovalOption.ALLOW_SESSION, ApprovalOption.ALLOW_ONCE, ApprovalOption.DENY])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        parent = (await runtime.create_session(str(workspace))).session_id
        await collect(runtime, parent, "delete old.log")
        (workspace / "old.log").write_text("recreated")
        events = await collect(runtime, parent, "let a sub-agent clean up")
        # The spawn is asked; the child's old.log is covered by the parent's Allow Session;
        # important.txt is asked, labelled as the sub-agent's, routed to the parent's frontend.
        assert [q.action.kind for q in human.asked] == [
            "file_delete",
            "subagent_spawn",
            "file_delete",
        ]
        child_question = human.asked[2]
        assert child_question.summary.startswith("[sub-agent] ")
        assert child_question.session_id == parent
        assert "important.txt" in child_question.summary
        assert not (workspace / "old.log").exists()
        assert (workspace / "important.txt").exists()
        report = tool_outputs(events, "task")[0]
        assert "important.txt was refused" in report
        child_id = SessionId(report.split()[1])
        kinds = [e.outcome.kind for e in await runtime.audit.entries(session_id=child_id)]
        assert OutcomeKind.APPROVAL_DENIED in kinds  # the child has its own audit chain
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()


async def test_child_session_tokens_are_attenuated_from_the_parent_and_die_with_it(
    tmp_path: Path, workspace: Path
) -> None:
    (workspace / "notes").mkdir()
    for name in ("a.txt", "b.txt"):
        (workspace / "notes" / name).write_text(name)
    script = TwoScripts(
        parent=[
            turn("", ("task", {"prompt": "tidy notes"})),
            turn("ok"),
            turn("", ("task", {"prompt": "tidy notes again"})),
            turn("ok"),
        ],
        child=[
            turn("", ("delete_file", {"path": "notes/a.txt"})),
            turn("deleted a"),
            turn("", ("delete_file", {"path": "notes/b.txt"})),
            turn("b refused"),
        ],
    )
    runtime = await open_runtime(tmp_path, script)
    human = Human([ApprovalOption.ALLOW_ONCE, ApprovalOption.ALLOW_ONCE, ApprovalOption.DENY])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    added: list[CapabilityToken] = []
    real_add = runtime.capabilities.add

    async def recording_add(token: CapabilityToken) -> None:
        added.append(token)
        await real_add(token)

    runtime.capabilities.add = recording_add  # type: ignore[method-assign]
    try:
        parent = (await runtime.create_session(str(workspace))).session_id
        grant = CapabilityToken.issue(
            runtime.key,
            ResourcePattern(f"file://{workspace}/notes/**"),
            [Permission.DELETE],
            scope="session",
            session_id=parent,
            ttl_seconds=600,
            approval_audit_id=AuditEntryId.new(),
        )
        await runtime.capabilities.add(grant)
        events = await collect(runtime, parent, "tidy")
        assert [q.action.kind for q in human.asked] == ["subagent_spawn"]
        assert not (workspace / "notes" / "a.txt").exists()
        derived = [t for t in added if t.parent_id == grant.id]
        assert len(derived) == 1
        child_id = SessionId(tool_outputs(events, "task")[0].split()[1])
        assert derived[0].session_id == child_id
        assert derived[0].resource == grant.resource
        assert (derived[0].expires_at or 0) <= (grant.expires_at or 0)
        assert await runtime.capabilities.get(derived[0].id) is None  # gone with the child
        # Revoke the parent's token: the next child gets nothing and must ask (and is refused).
        await runtime.capabilities.revoke(grant.id)
        await collect(runtime, parent, "tidy again")
        assert [q.action.kind for q in human.asked] == [
            "subagent_spawn",
            "subagent_spawn",
            "file_delete",
        ]
        assert (workspace / "notes" / "b.txt").exists()
    finally:
        await runtime.aclose()


async def test_child_is_bound_by_the_parent_policy(tmp_path: Path, workspace: Path) -> None:
    script = TwoScripts(
        parent=[turn("", ("task", {"prompt": "get root"})), turn("ok")],
        child=[
            turn("", ("bash", {"command": "echo hi | sudo tee /etc/x"})),
            turn("", ("read_file", {"path": "/etc/shadow"})),
            turn("could not"),
        ],
    )
    runtime = await open_runtime(tmp_path, script, mode="autonomous")
    human = Human([ApprovalOption.ALLOW_ONCE])  # at most the spawn; nothing else is asked
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        parent = (await runtime.create_session(str(workspace))).session_id
        events = await collect(runtime, parent, "go")
        report = tool_outputs(events, "task")[0]
        assert "could not" in report
        assert all(q.action.kind == "subagent_spawn" for q in human.asked)
        child_results = [
            m.content for r in script.child_requests[1:] for m in r.messages if m.role == "tool"
        ]
        assert any("DENIED" in c and "sudo" in c for c in child_results)
        assert any("DENIED" in c and "/etc" in c for c in child_results)
    finally:
        await runtime.aclose()


async def test_child_spends_only_its_slice_and_the_parent_pays_for_it(
    tmp_path: Path, workspace: Path
) -> None:
    # Session limit $1, share 10% -> a $0.10 slice. The child's first turn costs ~$0.093
    # (6,000 output tokens at $15/M plus input); the estimate of its second no longer fits
    # the slice, so the child's own budget stops it (the person, asked, says no).
    script = TwoScripts(
        parent=[turn("", ("task", {"prompt": "think hard"})), turn("ok")],
        child=[
            turn("thinking", ("list_directory", {"path": "."}), output_tokens=6000),
            turn("more thinking", output_tokens=10),
        ],
    )
    config = (
        "[budget]\nsession_limit_micros = 1000000\nper_action_limit_micros = 1000000\n"
        "[subagents]\nbudget_share_percent = 10\n"
    )
    runtime = await open_runtime(tmp_path, script, config=config)
    human = Human([ApprovalOption.ALLOW_ONCE, ApprovalOption.ALLOW_ONCE, ApprovalOption.DENY])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        parent = (await runtime.create_session(str(workspace))).session_id
        before = await runtime.session_budget(parent)
        events = await collect(runtime, parent, "delegate")
        report = tool_outputs(events, "task")[0]
        # 10% of what the parent had left after its own first call: just under $0.10.
        child_cost, share = (int(float(p.split()[0]) * 1e6) for p in report.split("$")[1:3])
        assert 90_000 < share <= 100_000
        assert 0 < child_cost <= share
        after = await runtime.session_budget(parent)
        parent_llm = sum(e["cost_micros"] for e in events if e["type"] == "usage")
        spent = int(after["spent_micros"]) - int(before["spent_micros"])  # type: ignore[arg-type]
        # The child's spending landed on the parent (the report rounds to $0.0001).
        assert abs(spent - (parent_llm + child_cost)) < 100
        assert after["reserved_micros"] == 0
    finally:
        await runtime.aclose()


async def test_depth_limit_takes_the_task_tool_away(tmp_path: Path, workspace: Path) -> None:
    script = TwoScripts(
        parent=[turn("", ("task", {"prompt": "nest"})), turn("ok")],
        child=[turn("", ("task", {"prompt": "deeper"})), turn("could not nest")],
    )
    runtime = await open_runtime(tmp_path, script, config="[subagents]\nmax_depth = 1\n")
    runtime.set_frontend(Human([ApprovalOption.ALLOW_ONCE]))  # type: ignore[arg-type]
    try:
        parent = (await runtime.create_session(str(workspace))).session_id
        await collect(runtime, parent, "go")
        child_tools = {t.name for t in script.child_requests[0].tools}
        assert "task" not in child_tools
        second = script.child_requests[1].messages[-1].content
        assert "no tool named 'task'" in second
    finally:
        await runtime.aclose()


async def test_no_subagents_when_depth_is_zero(tmp_path: Path, workspace: Path) -> None:
    script = TwoScripts(parent=[turn("hi")], child=[])
    runtime = await open_runtime(tmp_path, script, config="[subagents]\nmax_depth = 0\n")
    try:
        parent = (await runtime.create_session(str(workspace))).session_id
        await collect(runtime, parent, "hello")
        names = {t.name for t in script.parent_requests[0].tools}
        assert "read_file" in names
        assert "task" not in names
    finally:
        await runtime.aclose()


async def test_concurrency_limit_refuses_a_nested_spawn(tmp_path: Path, workspace: Path) -> None:
    script = TwoScripts(
        parent=[turn("", ("task", {"prompt": "nest"})), turn("ok")],
        child=[turn("", ("task", {"prompt": "deeper"})), turn("blocked")],
    )
    runtime = await open_runtime(
        tmp_path, script, config="[subagents]\nmax_depth = 2\nmax_concurrent = 1\n"
    )
    human = Human([ApprovalOption.ALLOW_ONCE, ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        parent = (await runtime.create_session(str(workspace))).session_id
        await collect(runtime, parent, "go")
        nested = script.child_requests[1].messages[-1].content
        assert "1 sub-agents are already running" in nested
    finally:
        await runtime.aclose()


async def test_child_questions_are_never_deferred(tmp_path: Path, workspace: Path) -> None:
    script = TwoScripts(
        parent=[turn("", ("task", {"prompt": "delete"})), turn("ok")],
        child=[turn("", ("delete_file", {"path": "important.txt"})), turn("refused")],
    )
    runtime = await open_runtime(tmp_path, script)
    human = Human([ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        parent = (await runtime.create_session(str(workspace))).session_id

        async def leave_after_spawn(request: Any) -> Any:
            decision = await Human.request_approval(human, request)
            human.present = False  # the person answers the spawn, then walks away
            return decision

        human.request_approval = leave_after_spawn  # type: ignore[method-assign]
        await collect(runtime, parent, "go")
        assert (workspace / "important.txt").exists()
        assert await runtime.deferred.pending() == []
        result = script.child_requests[1].messages[-1].content
        assert "DENIED" in result
        assert "not deferred" in result
    finally:
        await runtime.aclose()
