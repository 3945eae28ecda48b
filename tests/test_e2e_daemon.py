"""End to end against real daemon subprocesses: the CLI, approvals across clients, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_gateway.client import GatewayClient
from astrid_gateway.protocol import DeferredApprovals, dump_event
from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "victim.txt").write_text("precious")
    return ws.resolve()


@pytest.mark.parametrize("decision", ["allow_always", "deny"])
def test_demo_runs_non_interactively_and_verifies_the_audit(tmp_path: Path, decision: str) -> None:
    out = run_cli(tmp_path / "unused-home", "demo", "--auto", decision)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "audit log verified" in out.stdout
    assert "blocked (sudo)" in out.stdout
    if decision == "deny":
        assert "denied by the user" in out.stdout
    else:
        assert "budget:" in out.stdout  # the budget warning is shown
        # The MCP step: a real server (SDK-written, under Landlock) answered the approved call.
        assert "Call MCP tool docs/search_docs" in out.stdout
        assert "greeting: Greetings end with an exclamation mark" in out.stdout


def test_run_exit_codes(tmp_path: Path, workspace: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(
        home,
        workspace,
        [
            {
                "text": "trying",
                "tool_calls": [{"tool": "bash", "arguments": {"command": "sudo id"}}],
            },
            {"text": "blocked"},
            {
                "text": "reading",
                "tool_calls": [{"tool": "read_file", "arguments": {"path": "victim.txt"}}],
            },
            {"text": "done"},
        ],
    )
    denied = run_cli(home, "run", "get root", "--workspace", str(workspace), "--json")
    assert denied.returncode == 3, denied.stderr
    assert json.loads(denied.stdout)["denied"] == 1
    fine = run_cli(home, "run", "read it", "--workspace", str(workspace), "--json")
    assert fine.returncode == 0, fine.stderr
    run_cli(home, "daemon", "stop")


async def _events_until(
    client: GatewayClient, kind: str, timeout: float = 30
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(timeout):
        async for event in client.events():
            seen.append(dump_event(event))  # the wire form, as a client reads it
            if event.type == kind:
                return seen
    return seen


async def test_approval_answered_by_a_second_client(tmp_path: Path, workspace: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(
        home,
        workspace,
        [
            {
                "text": "deleting",
                "tool_calls": [{"tool": "delete_file", "arguments": {"path": "victim.txt"}}],
            },
            {"text": "done"},
        ],
    )
    proc = start_daemon(home)
    try:
        async with (
            await GatewayClient.open(home, autostart=False) as first,
            await GatewayClient.open(home, autostart=False, client_name="phone") as second,
        ):
            session = (await first.call("createSession", workspace=str(workspace)))["session_id"]
            await first.subscribe(session)
            await second.subscribe(session)
            await first.call("sendInput", session_id=session, text="delete victim.txt")
            needed = (await _events_until(second, "approval_needed"))[-1]
            request_id = needed["request"]["request_id"]
            assert (
                await second.call("approvalResponse", request_id=request_id, option="allow_once")
            )["accepted"]
            with pytest.raises(Exception, match="not pending"):  # the first answer won
                await first.call("approvalResponse", request_id=request_id, option="deny")
            events = await _events_until(first, "turn_complete")
            assert any(
                e.get("type") == "approval_resolved" and e.get("resolved_by") == "phone"
                for e in events
            )
        assert not (workspace / "victim.txt").exists()
    finally:
        stop_daemon(proc)


async def test_deferred_approval_is_delivered_after_reconnect(
    tmp_path: Path, workspace: Path
) -> None:
    home = tmp_path / "home"
    write_scripted_config(
        home,
        workspace,
        [
            {
                "text": "deleting",
                "tool_calls": [{"tool": "delete_file", "arguments": {"path": "victim.txt"}}],
            },
            {"text": "it was deferred"},
        ],
    )
    proc = start_daemon(home)
    try:
        async with await GatewayClient.open(home, autostart=False) as client:
            session = (await client.call("createSession", workspace=str(workspace)))["session_id"]
            await client.call(
                "sendInput", session_id=session, text="delete victim.txt"
            )  # nobody subscribed
            with anyio.fail_after(20):
                while not await client.call("listDeferred"):
                    await anyio.sleep(0.05)
        assert (workspace / "victim.txt").exists()
        async with await GatewayClient.open(home, autostart=False) as later:
            await later.subscribe(session)
            event = await later.next_event(timeout=10)
            assert isinstance(event, DeferredApprovals)
            request_id = event.items[0]["request"]["request_id"]  # pyright: ignore[reportIndexIssue,reportCallIssue,reportArgumentType,reportOptionalSubscript]
            reply = await later.call("approvalResponse", request_id=request_id, option="allow_once")
            assert reply == {"accepted": True, "deferred": True}
            # The replay ran the live tool path, and its events reach the session's subscribers.
            seen = await _events_until(later, "tool_call_result", timeout=20)
            assert [e["type"] for e in seen if e["type"].startswith("tool_call")] == [
                "tool_call_start",
                "tool_call_result",
            ]
        assert not (workspace / "victim.txt").exists()  # replayed exactly once
    finally:
        stop_daemon(proc)


async def test_kill9_mid_turn_then_resume_and_verify(tmp_path: Path, workspace: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(
        home,
        workspace,
        [
            {
                "text": "working",
                "tool_calls": [{"tool": "bash", "arguments": {"command": "sleep 30"}}],
            },
            {"text": "never reached"},
            {"text": "back after the crash"},
        ],
        mode="autonomous",
    )
    proc = start_daemon(home)
    async with await GatewayClient.open(home, autostart=False) as client:
        session = (await client.call("createSession", workspace=str(workspace)))["session_id"]
        await client.subscribe(session)
        await client.call("sendInput", session_id=session, text="run the long job")
        await _events_until(client, "tool_call_start")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (home / "daemon.port").unlink(missing_ok=True)
    proc = start_daemon(home)
    try:
        async with await GatewayClient.open(home, autostart=False) as client:
            info = await client.call("resumeSession", session_id=session)
            assert info["session_id"] == session
            report = await client.call("auditVerify")
            assert report["ok"] is True
            # At least the model call's decision. The record that the call finished rides with
            # the next decision's write (the bash call's), which a kill -9 right after the
            # tool_call_start event can beat: a crash may lose an outcome record, never a
            # decision, and the log still verifies.
            assert report["entries"] >= 2
    finally:
        stop_daemon(proc)


def test_sessions_and_audit_commands(tmp_path: Path, workspace: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(
        home,
        workspace,
        [
            {
                "text": "reading",
                "tool_calls": [{"tool": "read_file", "arguments": {"path": "victim.txt"}}],
            },
            {"text": "done"},
            {"text": "just talking"},
        ],
    )
    try:
        ran = run_cli(home, "run", "read it", "--workspace", str(workspace), "--json")
        assert ran.returncode == 0, ran.stderr
        listed = run_cli(home, "sessions", "list", "--json")
        [session] = json.loads(listed.stdout)
        sid = session["session_id"]
        assert session["workspace"] == str(workspace)
        assert sid[:8] in run_cli(home, "sessions", "list").stdout  # short ids for people

        shown = run_cli(home, "audit", "show", sid)
        assert shown.returncode == 0, shown.stderr
        assert "session_start" in shown.stdout
        assert "file_read" in shown.stdout
        verified = run_cli(home, "audit", "verify")
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.startswith("audit log verified: OK")

        assert sid in run_cli(home, "audit", "list").stdout
        stats = json.loads(run_cli(home, "audit", "stats", "--json").stdout)
        assert stats["by_chain"][sid] >= 3
        assert stats["by_outcome"]["session_start"] == 1

        export = tmp_path / "audit.jsonl"
        exported = run_cli(home, "audit", "export", str(export))
        assert exported.returncode == 0, exported.stderr
        offline = subprocess.run(
            [sys.executable, "-m", "astrid_audit", "verify", str(export), "--key", f"{export}.pub"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert offline.returncode == 0, offline.stdout + offline.stderr
        lines = export.read_text().splitlines()
        tampered = [line.replace("file_read", "file_list", 1) for line in lines]
        export.write_text("\n".join(tampered) + "\n")
        broken = subprocess.run(
            [sys.executable, "-m", "astrid_audit", "verify", str(export), "--key", f"{export}.pub"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert broken.returncode == 1, broken.stdout + broken.stderr

        refused = run_cli(home, "sessions", "delete", sid)  # no --yes and no terminal: aborted
        assert refused.returncode != 0
        deleted = run_cli(home, "sessions", "delete", sid, "--yes")
        assert deleted.returncode == 0, deleted.stderr
        assert json.loads(run_cli(home, "sessions", "list", "--json").stdout) == []
        # The log is append-only: deleting a session keeps its audit trail, still verifying.
        assert "file_read" in run_cli(home, "audit", "show", sid).stdout
        assert run_cli(home, "audit", "verify").returncode == 0

        assert run_cli(home, "run", "hello", "--workspace", str(workspace)).returncode == 0
        kept = run_cli(home, "sessions", "cleanup", "--older-than", "1", "--yes")
        assert "no session idle for more than 1 days" in kept.stdout
        cleaned = run_cli(home, "sessions", "cleanup", "--older-than", "0", "--yes")
        assert "deleted 1 session(s)" in cleaned.stdout, cleaned.stderr
        assert json.loads(run_cli(home, "sessions", "list", "--json").stdout) == []
    finally:
        run_cli(home, "daemon", "stop")
