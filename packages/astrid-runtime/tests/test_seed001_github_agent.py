"""Seed 001's example ``github-agent`` Capsule.toml, verbatim, installed and run.

Its component is built from ``examples/capsules/github-agent/src/github_agent.c`` with clang;
``npx -y @modelcontextprotocol/server-git`` is a fake ``npx`` on ``PATH`` that serves a fake
server-git written with the ``mcp`` SDK (stdio, in the capsule's sandbox). Everything else is
real: the daemon's install flow (plan, disclosure, trust, secret), the runtime, the
interceptor, the MCP bridge, the cron runner. The disclosure a person sees is printed
(``pytest -s``) and checked line by line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_core import ApprovalOption, CapsuleHostCall, FileRead, McpToolCall
from astrid_runtime.llm import ScriptedTurn

from .conftest import Human, collect, open_runtime

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "capsules" / "github-agent"
STATUS = "mcp__capsule-github-agent-local-git__git_status"
RESET = "mcp__capsule-github-agent-local-git__git_reset"
SYNC = "capsule__github-agent__sync"

FAKE_SERVER_GIT = '''#!{python}
"""A fake @modelcontextprotocol/server-git: answers as the real one would, changes nothing."""
from mcp.server.mcpserver import MCPServer

server = MCPServer("mcp-server-git")


@server.tool(description="Shows the working tree status")
def git_status(repo_path: str) -> str:
    clean = "nothing to commit, working tree clean"
    return f"Repository status:\\nOn branch main\\n{{clean}} ({{repo_path}})"


@server.tool(description="Unstages all staged changes")
def git_reset(repo_path: str) -> str:
    return "Unstaged all changes"


server.run()
'''


def build_example(tmp_path: Path) -> Path:
    """A copy of seed 001's github-agent example with its component built from source by
    ``examples/capsules/build.sh`` (the manifest untouched)."""
    if shutil.which("clang") is None:
        pytest.fail("clang is not installed: run scripts/install-test-deps (installs clang + lld)")
    examples = Path(__file__).resolve().parents[3] / "examples" / "capsules"
    copies = tmp_path / "examples"
    source = copies / "github-agent"
    shutil.copytree(examples / "github-agent", source, ignore=shutil.ignore_patterns("bin"))
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(
        [str(examples / "build.sh"), str(copies)], check=True, capture_output=True, env=env
    )
    return source


def fake_npx(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    npx = bin_dir / "npx"
    npx.write_text(FAKE_SERVER_GIT.format(python=sys.executable))
    npx.chmod(0o755)
    return bin_dir


def test_the_example_manifest_is_seed_001s_verbatim() -> None:
    text = (EXAMPLE / "Capsule.toml").read_text()
    for line in (
        '[component]\nentrypoint = "bin/github_agent.wasm"\n',
        'fs_read = ["/home/user/.gitconfig"]',
        '[env.GITHUB_TOKEN]\ntype = "secret"',
        'command = "npx"\nargs = ["-y", "@modelcontextprotocol/server-git"]',
        'action = "astrid.github.sync"',
        '[[interceptor]]\nevent = "BeforeToolCall"\n\n',
        'capabilities = ["text", "vision", "tools"]',
    ):
        assert line in text
    assert "hash" not in text
    assert "export" not in text


async def test_seed_001_github_agent_installs_as_written_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = build_example(tmp_path)
    monkeypatch.setenv("PATH", f"{fake_npx(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    workspace = tmp_path / "repo"
    workspace.mkdir()
    workspace = workspace.resolve()
    model = [
        ScriptedTurn("Syncing.", ((SYNC, {}),)),
        ScriptedTurn("Synced."),
        ScriptedTurn("Checking.", ((STATUS, {"repo_path": str(workspace)}),)),
        ScriptedTurn("Clean."),
        ScriptedTurn("Resetting.", ((RESET, {"repo_path": str(workspace)}),)),
        ScriptedTurn("Refused."),
    ]
    config = f'root = "{workspace}"\n[hooks]\ntimeout_seconds = 30\n'
    runtime = await open_runtime(tmp_path, model, config=config)
    runtime.cron.clock = lambda: datetime(2030, 1, 1, 9, 59)  # local time the jobs see
    # The job's export, allowed for the workspace (so its unattended runs may call it); the
    # read of /home/user/.gitconfig it makes, denied; the git status, allowed once.
    allow = ApprovalOption
    human = Human([allow.ALLOW_WORKSPACE, allow.DENY, allow.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        # ------------------------------------------------ install, as `astrid capsule install`
        planned: dict[str, Any] = dict(await runtime.capsule_plan(str(source)))
        disclosure: dict[str, Any] = planned["disclosure"]
        text: str = disclosure["text"]
        print("\n" + text)  # what the person reviewing the install reads
        digest = disclosure["component_hash"]
        assert disclosure["needs_trust"] is True
        assert f"component:    bin/github_agent.wasm BLAKE3 {digest} (hashed now" in text
        assert "*** READ OUTSIDE THE WORKSPACE: /home/user/.gitconfig ***" in text
        assert "network hosts: api.github.com" in text
        assert "secrets you will be asked for: GITHUB_TOKEN" in text
        assert "local-git: npx -y @modelcontextprotocol/server-git" in text
        assert "scheduled task sync-issues (0 * * * *): runs its export sync" in text
        assert "sees every BeforeToolCall event" in text
        assert "offers the model provider claude-3-5-sonnet" in text
        assert "UNSIGNED" in text
        result: Any = await runtime.capsule_commit(
            planned["plan_id"], "interactive", "cli:test", {"GITHUB_TOKEN": "ghp_" + "x" * 36}
        )
        record = result["record"]
        assert record["component_hash"] == digest
        assert result["secrets_stored"] == ["GITHUB_TOKEN"]

        # ------------------------------------------------ a session: MCP tools + interceptor
        async def chat() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            info = await runtime.create_session(str(workspace))
            synced = await collect(runtime, info.session_id, "sync now")
            [sync] = [e["output"] for e in synced if e["type"] == "tool_call_result"]
            assert "denied" in sync  # the person denied the read outside the workspace
            first = await collect(runtime, info.session_id, "is my repo clean?")
            second = await collect(runtime, info.session_id, "reset it")
            return first, second

        turns: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run_background)
                turns.append(await chat())
                tg.cancel_scope.cancel()
        [(first, second)] = turns
        [status] = [e["output"] for e in first if e["type"] == "tool_call_result"]
        assert "nothing to commit, working tree clean" in status
        [reset] = [e for e in second if e["type"] == "tool_call_result"]
        assert "github-agent never resets a repository" in reset["output"]
        # The sync, its read of ~/.gitconfig, the status call; the reset was refused by the
        # capsule's interceptor before anyone was asked.
        assert [type(r.action) for r in human.asked] == [CapsuleHostCall, FileRead, McpToolCall]
        assert human.asked[1].action == FileRead(path="/home/user/.gitconfig")
        assert runtime.capsules.warnings == []

        # ------------------------------------------------ the cron entry, unattended
        assert await runtime.cron.run_due(datetime(2030, 1, 1, 9, 59)) == []
        [run] = await runtime.cron.run_due(datetime(2030, 1, 1, 10, 0))
        assert (run.capsule, run.job) == ("github-agent", "sync-issues")
        # `astrid.github.sync` ran the component's `sync` export (allowed for the workspace
        # above); its read outside the workspace needs a person, so unattended it was denied.
        assert run.status == "ok"
        assert "runs unattended" in run.detail
        [job] = runtime.cron.jobs()
        assert job.action == "astrid.github.sync"
        print(json.dumps({"cron": run.status, "detail": run.detail[:120]}))
    finally:
        await runtime.aclose()
