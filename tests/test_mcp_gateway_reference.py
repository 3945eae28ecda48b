"""`astrid mcp serve` over streamable HTTP, in front of the npm reference servers.

The `mcp` SDK client speaks to the daemon's endpoint (bearer token from $ASTRID_HOME); behind
it run server-everything and server-filesystem, installed by scripts/install-test-deps,
sandboxed by Astrid. Each call, read and prompt is approved by a person (a daemon client
answering approvals, as `astrid approvals` does) and audited.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from astrid_gateway.client import GatewayClient
from astrid_gateway.mcp_testing import answer_approvals, result_text
from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config

pytestmark = [pytest.mark.anyio, pytest.mark.needs_node]

NODE_BIN = Path(__file__).resolve().parents[1] / ".cache" / "node" / "node_modules" / ".bin"


def _bin(name: str) -> str:
    path = NODE_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/install-test-deps (installs the npm servers)")
    # Resolved: in a git worktree .cache/node may be a symlink into the main checkout, which the
    # sandbox does not follow.
    return str(path.resolve())


@asynccontextmanager
async def over_http(home: Path, workspace: Path) -> AsyncIterator[ClientSession]:
    async with await GatewayClient.open(home, autostart=False) as daemon:
        info = await daemon.call("mcpEndpoint", timeout=120)
    token = (home / "mcp.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}", "X-Astrid-Workspace": str(workspace)}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(info["url"], http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _wait_running(home: Path, names: set[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = run_cli(home, "servers", "list", "--json")
        rows = json.loads(out.stdout) if out.returncode == 0 else []
        if names <= {r["name"] for r in rows if r["state"] == "running"}:
            return
        time.sleep(0.5)
    raise AssertionError(f"servers did not start: {run_cli(home, 'servers', 'list').stdout}")


async def test_reference_servers_through_the_gateway_over_http(tmp_path: Path) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    workspace.mkdir()
    workspace = workspace.resolve()
    (workspace / "notes.txt").write_text("kept in the workspace\x1b[31m red\x1b[0m")
    write_scripted_config(home, workspace, [{"text": "unused"}], mode="safe")
    # Unsandboxed here (an admin-layer setting): the sandbox of these very servers is tested in
    # astrid-mcp (test_reference_servers.py); this test is about the gateway in front of them.
    everything = json.dumps(_bin("mcp-server-everything"))
    filesystem = json.dumps(_bin("mcp-server-filesystem"))
    with (home / "config.toml").open("a") as config:
        config.write(
            f'[[servers]]\nname = "everything"\ntrusted = true\nsandbox = false\n'
            f"command = {everything}\n"
            f'[[servers]]\nname = "fs"\ntrusted = true\nsandbox = false\n'
            f"command = {filesystem}\n"
            f"args = [{json.dumps(str(workspace))}]\n"
        )
    daemon = start_daemon(home)
    seen: list[dict[str, Any]] = []
    try:
        _wait_running(home, {"everything", "fs"})
        for server in ("everything", "fs"):
            approved = run_cli(home, "mcp", "approve", server)
            assert approved.returncode == 0, approved.stdout + approved.stderr
        with anyio.fail_after(180):
            async with anyio.create_task_group() as tg:
                tg.start_soon(answer_approvals, home, "allow_once", seen)
                async with over_http(home, workspace) as client:
                    names = {t.name for t in (await client.list_tools()).tools}
                    assert {
                        "everything__echo",
                        "everything__get-sum",
                        "fs__read_text_file",
                    } <= names

                    steps: list[tuple[float, float | None]] = []

                    async def on_progress(
                        progress: float, total: float | None, message: str | None
                    ) -> None:
                        steps.append((progress, total))

                    slow = await client.call_tool(
                        "everything__trigger-long-running-operation",
                        {"duration": 0.3, "steps": 3},
                        progress_callback=on_progress,
                    )
                    assert not slow.is_error, result_text(slow)
                    assert steps == [(1, 3), (2, 3), (3, 3)]  # relayed from upstream

                    echo = await client.call_tool("everything__echo", {"message": "hi"})
                    assert result_text(echo).endswith("hi")
                    read = await client.call_tool(
                        "fs__read_text_file", {"path": str(workspace / "notes.txt")}
                    )
                    assert "kept in the workspace" in result_text(read)
                    assert "\x1b" not in result_text(read)  # neutralized on the way through

                    resources = (await client.list_resources()).resources
                    assert resources
                    contents = await client.read_resource(resources[0].uri)
                    assert contents.contents
                    templates = (await client.list_resource_templates()).resource_templates
                    assert templates
                    prompts = (await client.list_prompts()).prompts
                    simple = next(p for p in prompts if not p.arguments)
                    assert simple.name.startswith("everything__")
                    assert (await client.get_prompt(simple.name)).messages
                tg.cancel_scope.cancel()
        summaries = [request["summary"] for request in seen]
        assert "Call MCP tool everything/echo" in summaries
        assert "Call MCP tool fs/read_text_file" in summaries
        assert "Call MCP tool everything/#resources.read" in summaries
        assert "Call MCP tool everything/#prompts.get" in summaries
    finally:
        stop_daemon(daemon)
