"""MCP servers inside the runtime: the real interceptor decides, the real server answers.

The agent (a scripted model) calls a tool of an SDK-written MCP server that runs under the
Landlock launcher. The call is approved by a person at the frontend, audited, and executed
exactly once; a denied call never runs; sampling by the server is an LLM call of the session
whose tool call is in flight.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_audit import OutcomeKind
from astrid_core import (
    ApprovalOption,
    McpToolCall,
    SessionId,
)
from astrid_core.testing import ScriptedFrontend
from astrid_runtime.config import load_config
from astrid_runtime.llm import ScriptedProvider, ScriptedTurn
from astrid_runtime.runtime import AgentRuntime

pytestmark = pytest.mark.anyio

LAB = Path(__file__).resolve().parents[1] / "packages/astrid-mcp/tests/servers/lab_server.py"


Person = ScriptedFrontend  # a scripted person at a frontend (astrid_core.testing)


async def turn(runtime: AgentRuntime, session: Any, text: str) -> list[dict[str, Any]]:
    return [json.loads(e.model_dump_json()) async for e in runtime.run_turn(session, text)]


async def _exercise(
    runtime: AgentRuntime, person: Person, workspace: Path, state: Path
) -> SessionId:
    with anyio.fail_after(30):
        await runtime.mcp.running.wait()
    [server] = await runtime.list_servers()
    assert server["state"] == "running", server
    assert server["sandboxed"] is True
    tools = {t["name"]: t for t in await runtime.list_tools()}
    assert tools["mcp__lab__echo"]["source"] == "mcp:lab"
    assert "untrusted" in tools["mcp__lab__echo"]["description"]

    info = await runtime.create_session(str(workspace))
    [result] = _results(await turn(runtime, info.session_id, "echo"))
    assert result["ok"] is True
    assert result["output"] == "through astrid"
    assert person.asked[0].action == McpToolCall(
        server="lab", tool="echo", args={"text": "through astrid"}
    )
    [result] = _results(await turn(runtime, info.session_id, "ask"))
    assert result["output"] == "four"
    [result] = _results(await turn(runtime, info.session_id, "mark"))
    assert result["denied"] is True
    assert not (state / "m").exists()
    return info.session_id


def _results(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "tool_call_result"]


async def test_mcp_tool_call_is_approved_audited_and_sandboxed(tmp_path: Path) -> None:
    home, workspace, state = tmp_path / "home", tmp_path / "ws", tmp_path / "state"
    for directory in (home, workspace, state):
        directory.mkdir()
    config = f"""
[workspace]
mode = "safe"

[[servers]]
name = "lab"
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(LAB))}]
env = {{ LAB_STATE = {json.dumps(str(state))} }}
"""
    (home / "config.toml").write_text(config)
    script = [
        ScriptedTurn("Echoing.", (("mcp__lab__echo", {"text": "through astrid"}),)),
        ScriptedTurn("Done.", ()),
        ScriptedTurn("Asking the server.", (("mcp__lab__ask_llm", {"question": "2+2?"}),)),
        ScriptedTurn("four", ()),  # the sampling request the server makes during the call
        ScriptedTurn("It said four.", ()),
        ScriptedTurn("Writing a marker.", (("mcp__lab__write_marker", {"name": "m"}),)),
        ScriptedTurn("Refused.", ()),
    ]
    runtime = await AgentRuntime.open(
        home, config=load_config(home, env={}), provider=ScriptedProvider(script)
    )
    # echo, ask_llm, the server's sampling request (its own action, asked in safe mode), then
    # write_marker is refused.
    once = ApprovalOption.ALLOW_ONCE
    person = Person([once, once, once, ApprovalOption.DENY])
    runtime.set_frontend(person)  # type: ignore[arg-type]
    try:
        # Bounded: a shutdown that hangs must fail this test, not stall CI.
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run_background)
                session = await _exercise(runtime, person, workspace, state)
                tg.cancel_scope.cancel()
        entries = await runtime.audit.entries(session_id=session)
        kinds = [e.outcome.kind for e in entries]
        assert kinds.count(OutcomeKind.APPROVAL_GRANTED) == 3
        assert OutcomeKind.APPROVAL_DENIED in kinds
        llm_for_sampling = [
            e for e in entries if e.action is not None and "sampling" in json.dumps(e.action)
        ]
        assert llm_for_sampling, "the server's sampling request was not authorized by the session"
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()


def test_cli_servers_commands(tmp_path: Path) -> None:
    from astrid_gateway.testing import run_cli as astrid
    from astrid_gateway.testing import start_daemon
    from astrid_gateway.testing import stop_daemon as stop

    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    state.mkdir()
    (home / "config.toml").write_text(
        f"""
[[servers]]
name = "lab"
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(LAB))}]
env = {{ LAB_STATE = {json.dumps(str(state))} }}

[[servers]]
name = "ghost"
command = "no-such-mcp-server"
"""
    )
    daemon = start_daemon(home)
    try:
        listed = astrid(home, "servers", "list")
        assert listed.returncode == 0, listed.stderr
        assert re.search(
            r"^lab +running +tools=1\d +namespaces \(bubblewrap\), Landlock ABI \d+, seccomp, "
            r"network: none",
            listed.stdout,
            re.MULTILINE,
        )
        assert "ghost                failed" in listed.stdout
        assert "executable not found: 'no-such-mcp-server'" in listed.stdout
        running = astrid(home, "servers", "running")
        assert "lab " in running.stdout
        assert "ghost" not in running.stdout
        tools = astrid(home, "servers", "tools")
        assert "mcp__lab__echo" in tools.stdout
        stopped = astrid(home, "servers", "stop", "lab")
        assert "lab                  stopped" in stopped.stdout
        started = astrid(home, "servers", "start", "lab")
        assert "running" in started.stdout
        unknown = astrid(home, "servers", "start", "nope")
        assert unknown.returncode != 0
        assert "no MCP server named 'nope'" in unknown.stderr
    finally:
        stop(daemon)
