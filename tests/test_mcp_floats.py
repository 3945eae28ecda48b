"""A float in an MCP tool's arguments gets a decision and a verifiable audit entry, through the
real runtime, interceptor, SurrealDB embedded store and an SDK-written MCP server (before
format v2 the decision raised "canonical JSON refuses the float" and the turn aborted)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import blake3
import nacl.signing
import pytest
import rfc8785

from astrid_audit import OutcomeKind
from astrid_audit._log import NS_ENTRY
from astrid_core import ApprovalOption, SessionId
from astrid_core.testing import ScriptedFrontend
from astrid_runtime.config import load_config
from astrid_runtime.llm import ScriptedProvider, ScriptedTurn
from astrid_runtime.runtime import AgentRuntime

pytestmark = pytest.mark.anyio

LAB = Path(__file__).resolve().parents[1] / "packages/astrid-mcp/tests/servers/lab_server.py"


Person = ScriptedFrontend  # a scripted person at a frontend (astrid_core.testing)


async def test_an_mcp_call_with_a_float_is_decided_run_and_audited(tmp_path: Path) -> None:
    home, workspace, state = tmp_path / "home", tmp_path / "ws", tmp_path / "state"
    for directory in (home, workspace, state):
        directory.mkdir()
    (home / "config.toml").write_text(
        f"""
[workspace]
mode = "safe"

[[servers]]
name = "lab"
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(LAB))}]
env = {{ LAB_STATE = {json.dumps(str(state))} }}
"""
    )
    script = [
        ScriptedTurn("Waiting.", (("mcp__lab__slow", {"seconds": 0.05}),)),
        ScriptedTurn("Done.", ()),
    ]
    runtime = await AgentRuntime.open(
        home, config=load_config(home, env={}), provider=ScriptedProvider(script)
    )
    person = Person(then=ApprovalOption.ALLOW_ONCE)
    runtime.set_frontend(person)  # type: ignore[arg-type]
    events: list[dict[str, Any]] = []
    session: SessionId | None = None
    try:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run_background)
                with anyio.fail_after(30):
                    await runtime.mcp.running.wait()
                session = (await runtime.create_session(str(workspace))).session_id
                events = [
                    json.loads(e.model_dump_json())
                    async for e in runtime.run_turn(session, "wait a bit")
                ]
                tg.cancel_scope.cancel()
        [result] = [e for e in events if e["type"] == "tool_call_result"]
        assert result["ok"] is True, result
        assert len(person.asked) == 1
        assert session is not None
        entries = await runtime.audit.entries(session_id=session)
        calls = [e for e in entries if e.action is not None and e.action.get("tool") == "slow"]
        kinds = [e.outcome.kind for e in calls]
        assert OutcomeKind.ALLOWED in kinds
        assert OutcomeKind.EXECUTED in kinds
        assert all(e.v == 2 for e in calls)
        assert all(e.action["args"] == {"seconds": 0.05} for e in calls)  # type: ignore[index]
        assert (await runtime.audit_verify())["ok"] is True
        # And without astrid: RFC 8785 + BLAKE3 + Ed25519 over every stored v2 entry.
        key = nacl.signing.VerifyKey(runtime.key.public_key.raw)
        for _, raw in await runtime.storage.scan(NS_ENTRY):
            assert isinstance(raw, dict)
            if raw["v"] != 2:
                continue
            body = {k: v for k, v in raw.items() if k not in {"hash", "signature"}}
            digest = blake3.blake3(rfc8785.dumps(body)).hexdigest()  # pyright: ignore[reportArgumentType]
            assert digest == raw["hash"]
            key.verify(bytes.fromhex(digest), base64.b64decode(str(raw["signature"])))
    finally:
        await runtime.aclose()
