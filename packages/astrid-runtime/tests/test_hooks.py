"""Hooks around the agent loop, with real subprocess hooks and the real interceptor.

The shell hooks are a small Python script run with this interpreter: it records the event it was
given (and the names in its environment) and answers as told on its command line.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_audit import OutcomeKind
from astrid_core import ApprovalOption, ConfigError, JsonObject
from astrid_runtime.agent import HOOK_EVENTS, HookDecision, HookRunner
from astrid_runtime.config import load_config
from astrid_runtime.llm import ScriptedTurn
from astrid_runtime.runtime import AgentRuntime

from .conftest import Human, collect, open_runtime, turns

pytestmark = pytest.mark.anyio

HOOK_SCRIPT = """
import json, os, subprocess, sys, time

log, mode = sys.argv[1], sys.argv[2]
payload = json.load(sys.stdin)
payload["_env"] = sorted(os.environ)
with open(log, "a") as f:
    f.write(json.dumps(payload) + "\\n")
if mode == "deny":
    print(json.dumps({"decision": "deny", "reason": "no writes today"}))
elif mode == "rewrite-path":
    arguments = dict(payload["arguments"], path=sys.argv[3])
    print(json.dumps({"decision": "rewrite", "arguments": arguments}))
elif mode == "print":
    print(sys.argv[3])
elif mode == "fail":
    sys.stderr.write("hook broke\\n")
    sys.exit(3)
elif mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(sys.argv[3], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(60)
"""


@dataclass
class Hooks:
    """Builds hook command lines around the recording script, and reads what it recorded."""

    script: Path
    log: Path

    def command(self, mode: str = "record", *extra: str) -> str:
        argv = [sys.executable, str(self.script), str(self.log), mode, *extra]
        return shlex.join(argv)

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def events(self) -> list[str]:
        return [record["event"] for record in self.records()]


@pytest.fixture
def hooks(tmp_path: Path) -> Hooks:
    script = tmp_path / "hook.py"
    script.write_text(HOOK_SCRIPT)
    return Hooks(script, tmp_path / "hooks.jsonl")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "project"
    ws.mkdir()
    return ws.resolve()


async def open_hooked_runtime(
    tmp_path: Path,
    script: list[ScriptedTurn],
    shell: dict[str, list[str]],
    *,
    mode: str = "autonomous",
    timeout: float = 10.0,
) -> AgentRuntime:
    lines = [f"[hooks]\ntimeout_seconds = {timeout}\n[hooks.shell]"]
    lines += [f"{event} = {json.dumps(commands)}" for event, commands in shell.items()]
    return await open_runtime(tmp_path, script, mode=mode, config="\n".join(lines) + "\n")


def results(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "tool_call_result"]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie nobody reaped yet is dead all the same


async def test_every_event_reaches_a_shell_hook(
    tmp_path: Path, workspace: Path, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    monkeypatch.setenv("ASTRID_API_KEY", "sk-host-secret")
    monkeypatch.setenv("ASTRID_PROFILE", "ci")
    script = turns(
        ("writing", [("write_file", {"path": "a.txt", "content": "hello"})]),
        ("reading", [("read_file", {"path": "missing.txt"})]),
        ("done", []),
    )
    shell = {event: [hooks.command()] for event in HOOK_EVENTS}
    runtime = await open_hooked_runtime(tmp_path, script, shell, mode="safe")
    human = Human([ApprovalOption.ALLOW_ONCE] * 2)  # safe mode asks every time
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        info = await runtime.create_session(str(workspace))
        events = await collect(runtime, info.session_id, "write a.txt then read missing.txt")
        await runtime.hooks.fire("compaction", {"session_id": str(info.session_id), "before": 9})
        await runtime.end_session(info.session_id)
    finally:
        await runtime.aclose()
    assert (workspace / "a.txt").read_text() == "hello"
    assert len(human.asked) == 2
    assert [r["ok"] for r in results(events)] == [True, False]

    records = hooks.records()
    assert set(hooks.events()) == set(HOOK_EVENTS)
    assert hooks.events()[:2] == ["session_start", "user_prompt"]
    assert hooks.events()[-1] == "session_end"
    assert {r["session_id"] for r in records} == {str(info.session_id)}
    by_event = {r["event"]: r for r in records}
    assert by_event["user_prompt"]["prompt"] == "write a.txt then read missing.txt"
    before = [r for r in records if r["event"] == "before_tool_call"]
    assert [(r["tool"], r["arguments"]["path"]) for r in before] == [
        ("write_file", "a.txt"),
        ("read_file", "missing.txt"),
    ]
    needed = [r["summary"] for r in records if r["event"] == "approval_needed"]
    assert [s.rsplit("/", 1)[-1] for s in needed] == ["a.txt (5 bytes)", "missing.txt"]
    assert by_event["approval_resolved"]["outcome"] == "allowed"
    assert by_event["approval_resolved"]["option"] == ApprovalOption.ALLOW_ONCE.value
    after = [r for r in records if r["event"] == "after_tool_call"]
    assert [(r["tool"], r["ok"], r["denied"]) for r in after] == [
        ("write_file", True, False),
        ("read_file", False, False),
    ]
    assert by_event["tool_error"]["tool"] == "read_file"
    assert by_event["tool_error"]["error"].startswith("error:")
    assert by_event["turn_complete"]["stop_reason"] == "end_turn"
    assert by_event["compaction"]["before"] == 9
    # The environment is an allow-list: no host secrets, the non-secret ASTRID_* variables pass.
    env = set(by_event["before_tool_call"]["_env"])
    assert {"OPENAI_API_KEY", "ASTRID_API_KEY"}.isdisjoint(env)
    assert {"ASTRID_PROFILE", "ASTRID_HOOK_EVENT", "PATH"} <= env


async def test_a_denying_hook_stops_the_call_and_the_model_is_told(
    tmp_path: Path, workspace: Path, hooks: Hooks
) -> None:
    script = turns(("writing", [("write_file", {"path": "a.txt", "content": "x"})]), ("ok", []))
    runtime = await open_hooked_runtime(
        tmp_path, script, {"before_tool_call": [hooks.command("deny")]}
    )
    try:
        info = await runtime.create_session(str(workspace))
        events = await collect(runtime, info.session_id, "write it")
        history = await runtime.session_history(info.session_id)
        entries = await runtime.audit.entries(session_id=info.session_id)
    finally:
        await runtime.aclose()
    assert not (workspace / "a.txt").exists()
    [result] = results(events)
    assert result["denied"] is True
    assert result["output"] == "DENIED by hook: no writes today"
    assert any("DENIED by hook: no writes today" in str(m["content"]) for m in history)
    # The refusal is audited with the action it refused, and the write was never authorized.
    writes = [e for e in entries if e.action is not None and e.action["kind"] == "file_write"]
    assert [(e.outcome.kind, e.outcome.detail.get("layer")) for e in writes] == [
        (OutcomeKind.DENIED, "hook")
    ]


async def test_a_rewritten_call_is_intercepted_again(
    tmp_path: Path, workspace: Path, hooks: Hooks
) -> None:
    outside = tmp_path / "outside" / "stolen.txt"
    outside.parent.mkdir()
    script = turns(("writing", [("write_file", {"path": "a.txt", "content": "x"})]), ("ok", []))
    rewrite = hooks.command("rewrite-path", str(outside))
    runtime = await open_hooked_runtime(tmp_path, script, {"before_tool_call": [rewrite]})
    human = Human([ApprovalOption.DENY])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        info = await runtime.create_session(str(workspace))
        events = await collect(runtime, info.session_id, "write it")
    finally:
        await runtime.aclose()
    # Inside the workspace an autonomous write needs no one; the rewritten path outside did.
    [asked] = human.asked
    assert str(outside) in asked.summary
    [result] = results(events)
    assert result["denied"] is True
    assert result["output"].startswith("DENIED: denied by the user")
    assert not outside.exists()
    assert not (workspace / "a.txt").exists()


async def test_a_hook_that_times_out_denies_and_its_process_group_is_killed(
    tmp_path: Path, workspace: Path, hooks: Hooks
) -> None:
    pids = tmp_path / "pids"
    script = turns(("running", [("bash", {"command": "echo ran > ran.txt"})]), ("ok", []))
    hang = hooks.command("hang", str(pids))
    runtime = await open_hooked_runtime(tmp_path, script, {"before_tool_call": [hang]}, timeout=1.5)
    try:
        info = await runtime.create_session(str(workspace))
        started = time.monotonic()
        events = await collect(runtime, info.session_id, "run it")
        elapsed = time.monotonic() - started
    finally:
        await runtime.aclose()
    [result] = results(events)
    assert result["denied"] is True
    assert "DENIED by hook: hook timed out after 1.5 s" in result["output"]
    assert not (workspace / "ran.txt").exists()
    assert elapsed < 10
    hook_pid, child_pid = map(int, pids.read_text().split())
    with anyio.fail_after(5):
        while alive(hook_pid) or alive(child_pid):
            await anyio.sleep(0.05)


async def test_a_hook_that_exits_non_zero_denies(
    tmp_path: Path, workspace: Path, hooks: Hooks
) -> None:
    script = turns(("writing", [("write_file", {"path": "a.txt", "content": "x"})]), ("ok", []))
    runtime = await open_hooked_runtime(
        tmp_path, script, {"before_tool_call": [hooks.command("fail")]}
    )
    try:
        info = await runtime.create_session(str(workspace))
        events = await collect(runtime, info.session_id, "write it")
    finally:
        await runtime.aclose()
    [result] = results(events)
    assert result["denied"] is True
    assert "exited with status 3: hook broke" in result["output"]
    assert not (workspace / "a.txt").exists()


async def test_failing_hooks_on_other_events_never_break_the_turn(
    tmp_path: Path, workspace: Path, hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    script = turns(("writing", [("write_file", {"path": "a.txt", "content": "x"})]), ("ok", []))
    failing = [hooks.command("fail")]
    shell = {"user_prompt": failing, "after_tool_call": failing, "turn_complete": failing}
    runtime = await open_hooked_runtime(tmp_path, script, shell)

    async def crash(payload: JsonObject) -> None:
        raise RuntimeError("handler bug")

    runtime.add_hook("after_tool_call", crash)
    try:
        info = await runtime.create_session(str(workspace))
        events = await collect(runtime, info.session_id, "write it")
    finally:
        await runtime.aclose()
    assert (workspace / "a.txt").read_text() == "x"
    assert events[-1]["type"] == "turn_complete"
    assert events[-1]["stop_reason"] == "end_turn"
    assert hooks.events() == ["user_prompt", "after_tool_call", "turn_complete"]
    assert "handler bug" in caplog.text
    assert "exited with status 3" in caplog.text


async def test_python_handlers_can_rewrite_deny_and_observe(
    tmp_path: Path, workspace: Path
) -> None:
    script = turns(
        ("first", [("write_file", {"path": "draft.txt", "content": "x"})]),
        ("second", [("bash", {"command": "echo hi > bash.txt"})]),
        ("done", []),
    )
    runtime = await open_hooked_runtime(tmp_path, script, {})
    seen: list[tuple[str, str]] = []

    async def redirect_writes(payload: JsonObject) -> HookDecision | None:
        if payload["tool"] == "write_file":
            arguments = payload["arguments"]
            assert isinstance(arguments, dict)
            return HookDecision.rewrite({**arguments, "path": "final.txt"})
        return None

    async def no_bash(payload: JsonObject) -> HookDecision:
        return HookDecision.deny("bash is off") if payload["tool"] == "bash" else HookDecision()

    async def observe(payload: JsonObject) -> None:
        seen.append((str(payload["tool"]), str(payload["output"])))

    runtime.add_hook("before_tool_call", redirect_writes)
    runtime.add_hook("before_tool_call", no_bash)
    runtime.add_hook("after_tool_call", observe)
    with pytest.raises(ConfigError, match="before_tool_call"):
        runtime.add_hook("before_tools", observe)
    try:
        info = await runtime.create_session(str(workspace))
        events = await collect(runtime, info.session_id, "go")
    finally:
        await runtime.aclose()
    assert (workspace / "final.txt").read_text() == "x"
    assert not (workspace / "draft.txt").exists()
    assert not (workspace / "bash.txt").exists()
    assert [r["denied"] for r in results(events)] == [False, True]
    assert seen[1] == ("bash", "DENIED by hook: bash is off")
    assert seen[0][0] == "write_file"


async def test_python_handler_that_raises_or_hangs_denies_the_call() -> None:
    runner = HookRunner(timeout_seconds=0.2)

    async def broken(payload: JsonObject) -> None:
        raise ValueError("oops")

    runner.add("before_tool_call", broken)
    decision = await runner.fire("before_tool_call", {"tool": "bash", "arguments": {}})
    assert decision.denied
    assert "raised ValueError: oops" in decision.reason

    slow = HookRunner(timeout_seconds=0.2)

    async def hang(payload: JsonObject) -> None:
        await anyio.sleep(30)

    slow.add("before_tool_call", hang)
    with anyio.fail_after(5):
        decision = await slow.fire("before_tool_call", {"tool": "bash", "arguments": {}})
    assert decision.denied
    assert decision.reason.startswith("hook timed out")


@pytest.mark.parametrize(
    ("printed", "fragment"),
    [
        ("not json at all", "not a JSON decision"),
        ('["deny"]', "not an object"),
        ('{"decision": "allow"}', "unknown decision 'allow'"),
        ('{"decision": "rewrite"}', 'without an "arguments" object'),
    ],
)
async def test_unreadable_shell_answers_deny(hooks: Hooks, printed: str, fragment: str) -> None:
    runner = HookRunner({"before_tool_call": [hooks.command("print", printed)]})
    decision = await runner.fire("before_tool_call", {"tool": "bash", "arguments": {}})
    assert decision.denied
    assert fragment in decision.reason


async def test_shell_rewrites_chain_and_a_missing_program_denies(
    hooks: Hooks, tmp_path: Path
) -> None:
    first = hooks.command("rewrite-path", "b.txt")
    second = hooks.command("record")
    runner = HookRunner({"before_tool_call": [first, second]})
    decision = await runner.fire(
        "before_tool_call", {"tool": "write_file", "arguments": {"path": "a"}}
    )
    assert decision == HookDecision.rewrite({"path": "b.txt"})
    assert [r["arguments"]["path"] for r in hooks.records()] == ["a", "b.txt"]

    missing = HookRunner({"before_tool_call": [str(tmp_path / "no-such-program")]})
    decision = await missing.fire("before_tool_call", {"tool": "bash", "arguments": {}})
    assert decision.denied
    assert "cannot start" in decision.reason


def test_unknown_hook_event_in_config_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[hooks.shell]\nbefore_tool = ["true"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={})
    message = str(caught.value)
    assert "'before_tool'" in message
    assert all(event in message for event in HOOK_EVENTS)

    (tmp_path / "config.toml").write_text('[hooks.shell]\nsession_start = ["echo \'open"]\n')
    with pytest.raises(ConfigError, match="cannot be split"):
        load_config(tmp_path, env={})

    with pytest.raises(ConfigError, match="not a hook event"):
        HookRunner({"bogus": ["true"]})
