"""``astrid chat`` in a real pseudo-terminal, answered by keystrokes the way a person would.

The daemon is the real one the chat auto-starts; the model is the scripted provider, so the
only thing under test is what a person sees and types: the ``you>`` prompt, the approval panel
(summary, risk, five numbered options), the ``Your choice`` question and the slash commands.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pexpect
import pytest

from astrid_gateway.testing import run_cli, write_scripted_config

EXPECT_TIMEOUT = 30  # seconds per expected line; the first one includes the daemon start
COLUMNS, LINES = 200, 50  # wide enough that no pytest tmp path wraps inside the panel
PROMPT = "you> "
CHOICE = "Your choice [y/s/w/a/n/d] (n): "  # letters or digits; Enter is the default (Deny)
# Each option on its own line, saying what it grants (a key, its digit, the grant's words).
OPTION_LINES = (
    "[y] 1 Allow once: this call only; nothing is kept",
    "[s] 2 Allow for this session and its sub-agents: ",
    "[w] 3 Allow in this workspace (",
    "[a] 4 Always (1 h, every session and workspace): ",
    "[n] 5 Deny: the call does not run",
    "[d]   Deny and tell the model what to do instead",
)


def delete_turn(name: str) -> dict[str, Any]:
    return {
        "text": f"deleting {name}",
        "tool_calls": [{"tool": "delete_file", "arguments": {"path": name}}],
    }


def terminal_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE")}
    # TERM=dumb keeps rich from emitting escape codes; rich then ignores the real window size
    # and uses COLUMNS/LINES, so those pin the layout.
    env.update(
        ASTRID_HOME=str(home), TERM="dumb", NO_COLOR="1", COLUMNS=str(COLUMNS), LINES=str(LINES)
    )
    return env


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited; only reaping is left


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """ASTRID_HOME for one test; afterwards the daemon the chat auto-started must really stop."""
    home = tmp_path / "home"
    yield home
    pid_file = home / "daemon.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip())
    stopped = run_cli(home, "daemon", "stop", env=terminal_env(home), timeout=60)
    deadline = time.monotonic() + 20
    while _running(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"daemon {pid} still running 20 s after `astrid daemon stop`")
        time.sleep(0.1)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "victim.txt").write_text("precious")
    (ws / "keeper.txt").write_text("keep me")
    return ws.resolve()


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def chat(home: Path, workspace: Path, *, sigint_ignored: bool = False) -> Iterator[pexpect.spawn]:
    """``astrid chat`` in a PTY; ``sigint_ignored`` starts it the way a background job would."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "astrid_cli", "chat", "--workspace", str(workspace)],
        preexec_fn=_ignore_ctrl_c if sigint_ignored else None,
        env=terminal_env(home),
        dimensions=(LINES, COLUMNS),
        encoding="utf-8",
        codec_errors="replace",
        timeout=EXPECT_TIMEOUT,
    )
    child.logfile_read = sys.stdout  # pytest shows the whole transcript when a test fails
    try:
        child.expect_exact(PROMPT)
        yield child
    finally:
        child.close(force=True)


def expect_approval(child: pexpect.spawn, target: Path, verb: str = "Delete") -> None:
    child.expect_exact("Approval needed")
    child.expect_exact(f"{verb} file: {target}")
    child.expect_exact("risk: HIGH" if verb == "Delete" else "risk: MEDIUM")
    child.expect_exact("why:  ")
    for line in OPTION_LINES:
        child.expect_exact(line)
    child.expect_exact(CHOICE)


def leave(child: pexpect.spawn) -> None:
    child.sendline("/exit")
    child.expect_exact("session saved: astrid chat --resume")
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)


def test_person_allows_a_delete_once(home: Path, workspace: Path) -> None:
    victim = workspace / "victim.txt"
    write_scripted_config(
        home, workspace, [delete_turn("victim.txt"), {"text": "Done."}], mode="safe"
    )
    with chat(home, workspace) as child:
        child.sendline("please delete victim.txt")
        expect_approval(child, victim)
        assert victim.exists()  # nothing happens while the question is open

        child.sendline("1")
        child.expect_exact("approval: allowed once (by you)")
        child.expect_exact(f"✓ deleted {victim}")
        child.expect_exact("Done.")
        child.expect_exact(PROMPT)
        assert not victim.exists()

        child.sendline("/budget")
        # the two scripted turns cost something, shown in dollars (not micro-dollars)
        child.expect(r"spent \$0\.\d*[1-9]\d* of \$5\.00 for this session")
        child.expect_exact("at most $1.00 per action")
        child.expect_exact(PROMPT)
        leave(child)


def test_allow_once_does_not_carry_over_and_deny_keeps_the_file(
    home: Path, workspace: Path
) -> None:
    victim, keeper = workspace / "victim.txt", workspace / "keeper.txt"
    turns = [
        delete_turn("victim.txt"),
        {"text": "Done."},
        delete_turn("keeper.txt"),
        {"text": "Left it in place."},
    ]
    write_scripted_config(home, workspace, turns, mode="safe")
    with chat(home, workspace) as child:
        child.sendline("delete victim.txt")
        expect_approval(child, victim)
        child.sendline("1")
        child.expect_exact("Done.")
        child.expect_exact(PROMPT)

        child.sendline("now delete keeper.txt")
        expect_approval(child, keeper)  # Allow Once granted nothing for the next action
        child.sendline("7")  # a slip of the finger is asked again, not taken as an answer
        child.expect_exact("Please select one of the available options")
        child.expect_exact(CHOICE)
        child.sendline("5")
        child.expect_exact("approval: denied (by you)")
        child.expect_exact("✗ denied: DENIED: denied by the user")
        child.expect_exact("Left it in place.")
        child.expect_exact(PROMPT)
        assert not victim.exists()
        assert keeper.read_text() == "keep me"

        child.sendline("/status")
        child.expect(r"runtime.pending_approvals\s+0\s")
        child.expect_exact(PROMPT)
        leave(child)


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["plain", "started-ignoring-sigint"])
def test_ctrl_c_at_the_prompt_leaves(home: Path, workspace: Path, sigint_ignored: bool) -> None:
    """Ctrl-C leaves, also when chat inherited an ignored SIGINT (the CLI takes it back).

    A process started from a shell's background job or a task runner inherits SIGINT as
    *ignored*; this test then timed out whenever the test run itself was started that way.
    """
    write_scripted_config(home, workspace, [{"text": "unused"}], mode="safe")
    with chat(home, workspace, sigint_ignored=sigint_ignored) as child:
        child.sendintr()
        child.expect(pexpect.EOF, timeout=10)


def test_ctrl_c_at_an_open_approval_withdraws_it_and_cancels_the_turn(
    home: Path, workspace: Path
) -> None:
    turns = [delete_turn("victim.txt"), {"text": "x"}, {"text": "Still here."}]
    write_scripted_config(home, workspace, turns, mode="safe")
    with chat(home, workspace) as child:
        child.sendline("please delete victim.txt")
        expect_approval(child, workspace / "victim.txt")
        child.sendintr()
        child.expect_exact("cancelling the turn (Ctrl-C again to quit)")
        child.expect_exact("question withdrawn: denied")
        child.expect_exact(PROMPT)  # the turn ended without anyone pressing Enter
        assert (workspace / "victim.txt").exists()
        child.sendline("are you there?")  # the session goes on
        child.expect_exact(PROMPT)
        leave(child)
    assert (workspace / "victim.txt").exists()


def test_an_edit_shows_its_diff_and_y_allows_it(home: Path, workspace: Path) -> None:
    notes = workspace / "notes.md"
    notes.write_text("# Notes\n\nHelo world\n")
    edit = {
        "text": "fixing the typo",
        "tool_calls": [
            {
                "tool": "edit_file",
                "arguments": {"path": "notes.md", "old_string": "Helo", "new_string": "Hello"},
            }
        ],
    }
    write_scripted_config(home, workspace, [edit, {"text": "Fixed."}], mode="safe")
    with chat(home, workspace) as child:
        child.sendline("fix the typo in notes.md")
        child.expect_exact("Approval needed")
        child.expect_exact(f"Write file: {notes}")
        # the unified diff of what will change, before anything is asked
        child.expect_exact(f"--- a{notes}")
        child.expect_exact(f"+++ b{notes}")
        child.expect_exact("-Helo world")
        child.expect_exact("+Hello world")
        # each option names the exact grant it would mint
        child.expect_exact(
            f"[s] 2 Allow for this session and its sub-agents: exactly `file://{notes}` write"
        )
        child.expect_exact(
            f"[a] 4 Always (1 h, every session and workspace): exactly `file://{notes}`"
        )
        child.expect_exact(CHOICE)
        assert notes.read_text() == "# Notes\n\nHelo world\n"  # nothing happens while asked

        child.sendline("y")  # a letter answers, not only a digit
        child.expect_exact("approval: allowed once (by you)")
        child.expect_exact("✓ replaced 1 occurrence(s)")
        child.expect_exact("Fixed.")
        child.expect_exact(PROMPT)
        assert notes.read_text() == "# Notes\n\nHello world\n"
        leave(child)


def test_deny_with_a_message_returns_the_words_to_the_model(home: Path, workspace: Path) -> None:
    """The model is the real Anthropic SDK against FakeAnthropicServer, so the test reads the
    tool result exactly as the model received it in the next request."""
    from astrid_runtime.testing.fake_anthropic import FakeAnthropicServer, FakeTurn

    victim = workspace / "victim.txt"
    script = [
        FakeTurn("deleting it", tool_calls=(("delete_file", {"path": "victim.txt"}),)),
        FakeTurn("Understood, I will move it instead."),
    ]
    with FakeAnthropicServer(script) as server:
        anthropic_config(home, workspace, server)
        with chat(home, workspace) as child:
            child.sendline("please delete victim.txt")
            expect_approval(child, victim)
            child.sendline("d")
            child.expect_exact("Tell the model what to do instead: ")
            child.sendline("move it to old/ instead, never delete")
            child.expect_exact("approval: denied (by you)")
            child.expect_exact(
                "✗ denied: DENIED: denied by the user: move it to old/ instead, never delete"
            )
            child.expect_exact("Understood, I will move it instead.")
            child.expect_exact(PROMPT)
            leave(child)
        bodies = server.message_bodies
    assert victim.read_text() == "precious"
    results = [
        block
        for message in bodies[-1]["messages"]
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    assert len(results) == 1
    seen = json.dumps(results[0])
    assert "denied by the user: move it to old/ instead, never delete" in seen


def anthropic_config(home: Path, workspace: Path, server: Any) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[model]\nprovider = "anthropic"\nmodel = "claude-sonnet-4-6"\n'
        f'api_key = "{server.api_key}"\nbase_url = "{server.base_url}"\n'
        f'[workspace]\nroot = "{workspace}"\nmode = "safe"\n'
    )


def test_ctrl_c_cancels_a_stalled_model_without_waiting_for_it(home: Path, workspace: Path) -> None:
    """The model starts to answer, then sends nothing (FakeStall): Ctrl-C ends the turn at
    once — the daemon abandons the stream instead of waiting for the model's next byte — and
    the session goes on."""
    from astrid_runtime.testing.fake_anthropic import FakeAnthropicServer, FakeStall, FakeTurn

    stall = FakeStall(text_before="Let me think about", max_seconds=60)
    with FakeAnthropicServer([stall, FakeTurn("Back again.")]) as server:
        anthropic_config(home, workspace, server)
        try:
            with chat(home, workspace) as child:
                child.sendline("hello")
                # The model's request arrived (TERM=dumb shows streamed text only when the
                # turn ends, so the transcript cannot tell us): a bounded wait on the server.
                deadline = time.monotonic() + EXPECT_TIMEOUT
                while not server.message_bodies:
                    assert time.monotonic() < deadline, "the model was never called"
                    time.sleep(0.05)
                child.sendintr()
                # The model would stay silent for 60 s: ending within 10 s proves the turn did
                # not wait for it (no tighter timing here: CI hosts are loaded; the runtime
                # test and the README give the measured figure).
                child.expect_exact("(turn ended: cancelled)", timeout=10)
                child.expect_exact(PROMPT)
                child.sendline("still there?")
                child.expect_exact("Back again.")
                child.expect_exact(PROMPT)
                leave(child)
        finally:
            stall.release.set()


def test_ctrl_c_withdraws_an_open_demo_approval_at_once(tmp_path: Path) -> None:
    """`astrid demo` used to read the answer in a thread that Ctrl-C could not stop: the demo
    hung until Enter. Now the question is withdrawn (denied) and the demo stops."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "astrid_cli", "demo"],
        env=terminal_env(tmp_path / "unused-home"),
        dimensions=(LINES, COLUMNS),
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,  # the demo starts its own daemon and an MCP server
        cwd=str(tmp_path),
    )
    child.logfile_read = sys.stdout
    try:
        child.expect_exact("Approval needed")
        child.expect_exact(CHOICE)
        child.sendintr()
        child.expect_exact("question withdrawn: denied", timeout=10)
        child.expect_exact("approval: denied (by you)", timeout=10)
        child.expect_exact("demo stopped (Ctrl-C)", timeout=20)
        child.expect(pexpect.EOF, timeout=20)
        child.wait()
        assert child.exitstatus == 130, (child.exitstatus, child.signalstatus)
    finally:
        child.close(force=True)
