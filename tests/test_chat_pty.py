"""``astrid chat`` in a real pseudo-terminal, answered by keystrokes the way a person would.

The daemon is the real one the chat auto-starts; the model is the scripted provider, so the
only thing under test is what a person sees and types: the ``you>`` prompt, the approval panel
(summary, risk, five numbered options), the ``Your choice`` question and the slash commands.
"""

from __future__ import annotations

import os
import re
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
CHOICE = "Your choice (5): "  # rich shows the default (Deny) in brackets
OPTIONS_LINE = re.compile(
    r"\[1\] Allow Once\s+\[2\] Allow Session\s+\[3\] Allow Workspace\s+"
    r"\[4\] Allow Always\s+\[5\] Deny"
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


def expect_approval(child: pexpect.spawn, target: Path) -> None:
    child.expect_exact("Approval needed")
    child.expect_exact(f"Delete file: {target}")
    child.expect_exact("risk: HIGH")
    child.expect(OPTIONS_LINE)
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
        child.expect_exact("approval allow_once (by cli)")
        child.expect_exact(f"✓ deleted {victim}")
        child.expect_exact("Done.")
        child.expect_exact(PROMPT)
        assert not victim.exists()

        child.sendline("/budget")
        child.expect(r'"spent_micros": [1-9]\d*')  # the two scripted turns cost something
        child.expect_exact('"session_limit_micros"')
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
        child.expect_exact("approval deny (by cli)")
        child.expect_exact("✗ denied: DENIED: denied by the user")
        child.expect_exact("Left it in place.")
        child.expect_exact(PROMPT)
        assert not victim.exists()
        assert keeper.read_text() == "keep me"

        child.sendline("/status")
        child.expect_exact('"pending_approvals": 0')
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
