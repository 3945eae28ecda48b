"""Attack: terminal escapes from an upstream reach the MCP client through `astrid mcp serve`
by any field other than a tool result's text blocks — resource and prompt listings, a prompt
result's description, a tool's annotation title, a structured tool result
(mcp_upstreams/inky.py). The client (Claude Code, a terminal UI) must see none of them.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_gateway.mcp_testing import answer_approvals, stdio_gateway_client
from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config

pytestmark = pytest.mark.anyio

INKY = Path(__file__).resolve().parent / "mcp_upstreams" / "inky.py"


def _controls(value: Any) -> list[str]:
    """Every string in ``value`` (a dumped MCP result) holding a control character."""
    found: list[str] = []
    if isinstance(value, str):
        if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
            found.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():  # pyright: ignore[reportUnknownVariableType]
            found += _controls(key) + _controls(item)
    elif isinstance(value, list):
        for item in value:  # pyright: ignore[reportUnknownVariableType]
            found += _controls(item)
    return found


async def test_no_terminal_escape_reaches_the_client_through_listings_prompts_or_structure(
    tmp_path: Path,
) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    workspace.mkdir()
    write_scripted_config(home, workspace, [{"text": "unused"}], mode="autonomous")
    with (home / "config.toml").open("a") as config:
        config.write(
            f'[[servers]]\nname = "inky"\ntrusted = true\ncommand = {json.dumps(sys.executable)}\n'
            f"args = [{json.dumps(str(INKY))}]\n"
        )
    daemon = start_daemon(home)
    try:
        listed = run_cli(home, "mcp", "tools", "--json")
        assert listed.returncode == 0, listed.stderr
        [row] = [r for r in json.loads(listed.stdout) if r["name"] == "inky__lookup"]
        assert row["state"] == "flagged, waiting for approval"  # its annotation title is screened
        approved = run_cli(home, "mcp", "approve", "inky", "lookup")
        assert approved.returncode == 0, approved.stderr
        seen: dict[str, Any] = {}
        with anyio.fail_after(120):
            async with (
                stdio_gateway_client(home, workspace.resolve()) as client,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(answer_approvals, home, "allow_once", [])
                await anyio.sleep(1)  # the person's frontend subscribes
                seen["tools"] = await client.list_tools()
                seen["resources"] = await client.list_resources()
                seen["prompts"] = await client.list_prompts()
                seen["read"] = await client.read_resource("note://readme")
                seen["prompt"] = await client.get_prompt("inky__greet", {"who": "Ann"})
                seen["call"] = await client.call_tool("inky__lookup", {"q": "x"})
                tg.cancel_scope.cancel()
        assert not seen["call"].is_error, seen["call"]
        assert seen["call"].structured_content is not None
        dumped = {k: v.model_dump(mode="json") for k, v in seen.items()}
        leaks = {k: _controls(v) for k, v in dumped.items()}
        assert not any(leaks.values()), leaks
        assert "docs" in json.dumps(dumped["prompts"])  # the text stays, the escapes go
    finally:
        stop_daemon(daemon)
