"""What servers say is screened, renames wait, sampling floods are bounded — through
`astrid mcp serve`, with a misbehaving upstream written with the SDK (mcp_upstreams/shifty.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_gateway.mcp_testing import (
    ListChanged,
    answer_approvals,
    audit_entries,
    result_text,
    stdio_gateway_client,
)
from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config

pytestmark = pytest.mark.anyio

LAB = Path(__file__).resolve().parents[1] / "packages/astrid-mcp/tests/servers/lab_server.py"
SHIFTY = Path(__file__).resolve().parent / "mcp_upstreams" / "shifty.py"


def _rows(home: Path) -> dict[str, dict[str, Any]]:
    out = run_cli(home, "mcp", "tools", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}


async def test_poisoned_tools_wait_renames_wait_and_sampling_floods_are_refused(
    tmp_path: Path,
) -> None:
    home, workspace, state = tmp_path / "home", tmp_path / "ws", tmp_path / "state"
    workspace.mkdir()
    state.mkdir()
    write_scripted_config(home, workspace, [{"text": "unused"}], mode="safe")
    python = json.dumps(sys.executable)
    with (home / "config.toml").open("a") as config:
        config.write(
            # Every sampling costs more than one action may: the flood is refused, each audited.
            "[budget]\nper_action_limit_micros = 1\n"
            f'[[servers]]\nname = "shifty"\ntrusted = true\ncommand = {python}\n'
            f"args = [{json.dumps(str(SHIFTY))}, {json.dumps(str(state))}]\n"
            f'[[servers]]\nname = "lab"\ntrusted = true\ncommand = {python}\n'
            f"args = [{json.dumps(str(LAB))}]\n"
        )
    daemon = start_daemon(home)
    try:
        approved = run_cli(home, "mcp", "approve", "shifty")
        assert approved.returncode == 0, approved.stderr
        rows = _rows(home)
        add = rows["shifty__add"]
        assert add["state"] == "flagged, waiting for approval"
        kinds = " ".join(add["findings"])
        for kind in ("hidden_unicode", "addressed_to_model", "other_server_tool"):
            assert kind in kinds
        assert rows["shifty__shout"]["state"] == "offered"
        listed = run_cli(home, "servers", "list")
        assert "shifty: flagged tools (hidden instructions?): add" in listed.stdout
        as_json = json.loads(run_cli(home, "servers", "list", "--json").stdout)
        assert next(r for r in as_json if r["name"] == "shifty")["flagged"] == ["add"]

        notes = ListChanged()
        with anyio.fail_after(120):
            async with stdio_gateway_client(home, workspace, notes) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert "shifty__add" not in names
                assert "shifty__shout" in names
                refused = await client.call_tool("shifty__add", {"a": 1, "b": 2})
                assert refused.is_error
                assert "flagged, waiting for approval" in result_text(refused)

                # The person read the findings and accepts it anyway: offered from now on.
                notes.reset()
                assert run_cli(home, "mcp", "approve", "shifty", "add").returncode == 0
                await notes.tools_changed.wait()
                assert "shifty__add" in {t.name for t in (await client.list_tools()).tools}

                # Renamed after approval: the new name waits; the old one is gone.
                notes.reset()
                (state / "renamed").write_text("yes")
                assert run_cli(home, "servers", "restart", "shifty").returncode == 0
                await notes.tools_changed.wait()
                names = {t.name for t in (await client.list_tools()).tools}
                assert "shifty__shout" not in names
                assert "shifty__shout_v2" not in names
                assert _rows(home)["shifty__shout_v2"]["state"] == "waiting for approval"

                # A sampling flood: every request is an LLM call through the interceptor.
                flood = None
                async with anyio.create_task_group() as tg:
                    tg.start_soon(answer_approvals, home, "allow_once", [])
                    await anyio.sleep(1)  # the person's frontend subscribes
                    flood = await client.call_tool("shifty__flood", {"n": 25})
                    tg.cancel_scope.cancel()
                assert flood is not None
                assert result_text(flood) == "answered=0 refused=25"
        entries = await audit_entries(home)
        sampling = [
            e
            for e in entries
            if (e.get("action") or {}).get("kind") == "mcp_sampling"
            and (e.get("action") or {}).get("server") == "shifty"
        ]
        assert len(sampling) == 25  # each one refused, and each refusal on the log
        assert all(e["outcome"]["kind"] == "denied" for e in sampling)
    finally:
        stop_daemon(daemon)
