"""/cancel during a long tool: the turn ends promptly and the command's processes are gone."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from astrid_telegram.bot import CANCELLED_TEXT
from astrid_telegram.testing import FakeBotApi

from .conftest import OWNER, approval_message, chat_text, press, running_bot, wait_until

pytestmark = pytest.mark.anyio

SLEEP = {"tool": "bash", "arguments": {"command": "echo napping; sleep 30; echo woke up"}}
AWAKE_TEXT = "Ready for the next thing."


@dataclass(frozen=True)
class _Proc:
    pid: int
    command: str
    state: str
    parent: int
    group: int


def _processes() -> list[_Proc]:
    found: list[_Proc] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue  # exited while we looked
        # "pid (command) state ppid pgrp ...": the command may itself contain spaces or ")".
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, parent, group = stat[stat.rindex(")") + 2 :].split()[:3]
        found.append(_Proc(int(name), command, state, int(parent), int(group)))
    return found


def _alive(proc: _Proc) -> bool:
    return proc.state not in ("Z", "X")  # a zombie has exited, only its parent has not reaped it


def _tool_sleeps(daemon_pid: int) -> list[_Proc]:
    """``sleep`` processes descending from a child the daemon started for a bash tool call
    (the command runs in bubblewrap's own session and pid namespace, below that child)."""
    procs = _processes()
    parent_of = {p.pid: p.parent for p in procs}

    def below_daemon(pid: int) -> bool:
        for _ in range(64):  # bounded walk up the tree
            pid = parent_of.get(pid, 0)
            if pid in (0, 1):
                return False
            if pid == daemon_pid:
                return True
        return False

    return [p for p in procs if p.command == "sleep" and below_daemon(p.pid) and _alive(p)]


async def test_cancel_ends_a_long_bash_call_and_kills_its_process_group(
    api: FakeBotApi, start_daemon: Callable[[list[Any]], Path]
) -> None:
    home = start_daemon(
        [{"text": "Taking a nap first.", "tool_calls": [SLEEP]}, {"text": AWAKE_TEXT}]
    )
    daemon_pid = int((home / "daemon.pid").read_text())
    async with running_bot(api, home, (OWNER,)):
        api.send_user_message(OWNER, "take a nap")
        await wait_until(api, lambda: approval_message(api, OWNER) is not None, "approval")
        approval = approval_message(api, OWNER)
        assert approval is not None
        assert await press(api, OWNER, OWNER, approval, "Allow Once") == "Allow Once"
        await wait_until(api, lambda: bool(_tool_sleeps(daemon_pid)), "the sleep to start", 15)
        [sleeper] = _tool_sleeps(daemon_pid)

        asked = time.monotonic()
        api.send_user_message(OWNER, "/cancel")
        await wait_until(api, lambda: CANCELLED_TEXT in chat_text(api, OWNER), "cancelled", 10)
        took = time.monotonic() - asked
        assert took < 5, f"the turn took {took:.1f} s to end after /cancel"

        group = [p for p in _processes() if p.group == sleeper.group and _alive(p)]
        assert group == [], f"processes of the cancelled command survive: {group}"
        assert "Cancelling the running turn" in chat_text(api, OWNER)
        results = [m.text for m in api.bot_messages(OWNER) if m.text.startswith(("✅", "❌"))]
        assert results == ["❌ cancelled by the user"]

        # The session is free again: the next message starts a new turn.
        api.send_user_message(OWNER, "what now?")
        await wait_until(api, lambda: AWAKE_TEXT in chat_text(api, OWNER), "the next reply")
