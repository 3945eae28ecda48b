"""A capsule's [[mcp_server]] inside real sessions: the real installer, runtime, interceptor,
Landlock launcher and an MCP server written with the `mcp` SDK; only the model is scripted.

No [[servers]] are configured: the runtime makes its MCP bridge when the first session loads
the capsule, starts one server process per workspace with that workspace's accepted paths as
its roots and sandbox, and stops it when the runtime's background work ends.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from astrid_audit import OutcomeKind
from astrid_capsule.errors import CapsuleLoadRefused
from astrid_capsule.install import CapsuleInstaller, TrustAck
from astrid_core import ApprovalOption, JsonObject, McpToolCall, SessionId
from astrid_runtime.llm import ModelRequest, ScriptedTurn
from astrid_runtime.runtime import AgentRuntime
from astrid_workspace import ENV_ALLOW_LIST

from .conftest import Human, collect, open_runtime

pytestmark = pytest.mark.anyio

SERVER = """
import json
import os
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("probe")


@server.tool(description="Report this process: pid, environment and the client's roots.")
async def probe(ctx: Context) -> str:
    roots = await ctx.session.list_roots()
    return json.dumps(
        {
            "pid": os.getpid(),
            "env": sorted(os.environ),
            "token": os.environ.get("PROBE_TOKEN"),
            "mode": os.environ.get("PROBE_MODE"),
            "roots": [str(root.uri) for root in roots.roots],
        }
    )


@server.tool(description="Read a file.")
def read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        return f"refused: {exc.strerror}"


server.run()
"""

MANIFEST = f"""
[package]
name = "probe"
version = "0.1.0"

[capabilities]
fs_read = ["notes/**"]

[env.PROBE_TOKEN]
secret = true

[env.PROBE_MODE]
default = "careful"

[[mcp_server]]
id = "files"
command = {json.dumps(sys.executable)}
args = ["server.py"]
env = {{ PROBE_GREETING = "hi" }}
"""

TOOL = "mcp__capsule-probe-files__probe"
READ = "mcp__capsule-probe-files__read_text"
TOKEN = "tok-3f9a0c12-not-a-real-key"


@dataclass
class Model:
    """The scripted model's turns, keeping every request so tests can read what it was shown."""

    turns: list[ScriptedTurn]
    requests: list[ModelRequest] = field(default_factory=list[ModelRequest])

    def __call__(self, request: ModelRequest) -> ScriptedTurn:
        self.requests.append(request)
        return self.turns.pop(0) if self.turns else ScriptedTurn("done")


def make_workspace(root: Path) -> Path:
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "todo.txt").write_text("buy milk\n")
    (root / "private.txt").write_text("not for capsules\n")
    return Path(os.path.realpath(root))


async def install(runtime: AgentRuntime, source: Path) -> None:
    installer = CapsuleInstaller(runtime.home, runtime.storage)
    await installer.commit(await installer.plan(source), TrustAck(method="flag", actor="test"))


def outputs(events: list[dict[str, Any]]) -> list[str]:
    return [e["output"] for e in events if e["type"] == "tool_call_result"]


async def turn(runtime: AgentRuntime, session: SessionId, text: str) -> list[str]:
    return outputs(await collect(runtime, session, text))


T = TypeVar("T")


async def hosted(runtime: AgentRuntime, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` while the runtime's background work (its MCP servers) runs, as in the
    daemon; the servers stop when it ends. Bounded: a hang fails the test."""
    results: list[T] = []
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run_background)
            results.append(await work())
            tg.cancel_scope.cancel()
    return results[0]


def holders_of(variable: str) -> list[int]:
    """Live host processes whose environment holds `variable` (NAME=value)."""
    needle = variable.encode() + b"\0"
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and needle in (entry / "environ").read_bytes()
                and not gone(int(entry.name))
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited; only waiting to be reaped


async def test_capsule_mcp_server_runs_untrusted_per_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-must-never-reach-a-server")
    source = tmp_path / "src-probe"
    source.mkdir()
    (source / "Capsule.toml").write_text(MANIFEST)
    (source / "server.py").write_text(SERVER)
    first = make_workspace(tmp_path / "first")
    second = make_workspace(tmp_path / "second")
    model = Model(
        [
            ScriptedTurn("Probing.", ((TOOL, {}),)),
            ScriptedTurn("Probed."),
            ScriptedTurn(
                "Reading.",
                (
                    (READ, {"path": str(first / "notes" / "todo.txt")}),
                    (READ, {"path": str(first / "private.txt")}),
                ),
            ),
            ScriptedTurn("Read."),
            ScriptedTurn("Probing.", ((TOOL, {}),)),
            ScriptedTurn("Probed."),
        ]
    )
    # A roomy hook timeout: the first turn waits in the capsule hook for the server to start.
    runtime = await open_runtime(tmp_path, model, config="[hooks]\ntimeout_seconds = 30\n")
    human = Human([ApprovalOption.ALLOW_ONCE] * 4)
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        await install(runtime, source)
        await runtime.capsules.secrets.store("probe", {"PROBE_TOKEN": TOKEN})
        assert runtime.mcp.status() == []  # nothing configured, nothing made yet

        async def work() -> tuple[SessionId, list[str], list[JsonObject]]:
            one = (await runtime.create_session(str(first))).session_id
            texts = await turn(runtime, one, "probe") + await turn(runtime, one, "read")
            two = (await runtime.create_session(str(second))).session_id
            return one, texts + await turn(runtime, two, "probe"), await runtime.list_servers()

        one, [probed, todo, private, probed_second], servers = await hosted(runtime, work)

        # The tool was offered to the model under its capsule's name, marked untrusted.
        [spec] = [t for t in model.requests[0].tools if t.name == TOOL]
        assert "untrusted" in spec.description
        # Intercepted like any MCP tool: the person was asked, for this exact server instance.
        names = [str(s["name"]) for s in servers]
        assert len(names) == 2
        assert all(name.startswith("capsule-probe-files-") for name in names)
        assert all(s["state"] == "running" and s["sandboxed"] for s in servers)
        first_call, *_, second_call = [request.action for request in human.asked]
        assert isinstance(first_call, McpToolCall)
        assert isinstance(second_call, McpToolCall)
        assert (first_call.tool, first_call.args) == ("probe", {})
        assert first_call.server in names
        assert second_call.server in names
        assert second_call.server != first_call.server  # the second workspace: its own process

        report = json.loads(probed)
        # Scrubbed environment: the host's API key stayed behind; the declared variables came.
        assert "ANTHROPIC_API_KEY" not in report["env"]
        declared = {"PROBE_TOKEN", "PROBE_MODE", "PROBE_GREETING"}
        assert declared <= set(report["env"]) <= set(ENV_ALLOW_LIST) | declared
        assert (report["token"], report["mode"]) == (TOKEN, "careful")
        # Roots: exactly the accepted paths of this session's workspace, and the sandbox agrees.
        assert report["roots"] == [(first / "notes").as_uri()]
        assert todo == "buy milk\n"
        assert private.startswith("refused")
        other = json.loads(probed_second)
        assert other["roots"] == [(second / "notes").as_uri()]
        # Two processes (their roots differ), each in its own pid namespace (bubblewrap):
        # inside, both may well be pid 2, so the pids they report do not tell them apart.

        entries = await runtime.audit.entries(session_id=one)
        assert [e.outcome.kind for e in entries].count(OutcomeKind.APPROVAL_GRANTED) == 3
        # The secret the server printed is masked in the audit log.
        assert TOKEN not in json.dumps([e.model_dump(mode="json") for e in entries])
    finally:
        await runtime.aclose()
    with anyio.fail_after(5):
        while holders_of(f"PROBE_TOKEN={TOKEN}"):  # the servers, found by their environment
            await anyio.sleep(0.05)


async def test_an_updated_capsule_old_server_is_not_launched_again(tmp_path: Path) -> None:
    source = tmp_path / "src-probe"
    source.mkdir()
    (source / "Capsule.toml").write_text(MANIFEST)
    (source / "server.py").write_text(SERVER)
    workspace = make_workspace(tmp_path / "ws")
    runtime = await open_runtime(tmp_path, Model([]), config="[hooks]\ntimeout_seconds = 30\n")
    try:
        await install(runtime, source)

        async def work() -> None:
            session = (await runtime.create_session(str(workspace))).session_id
            await collect(runtime, session, "hello")
            [name] = [str(s["name"]) for s in runtime.mcp.status()]
            await runtime.stop_server(name)
            (source / "server.py").write_text(SERVER + "\n# version 2\n")
            await install(runtime, source)
            # Restarting the old instance would run files the user no longer has installed.
            with pytest.raises(CapsuleLoadRefused, match="updated since"):
                await runtime.start_server(name)

        await hosted(runtime, work)
    finally:
        await runtime.aclose()
