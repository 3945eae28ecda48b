"""Find and finish a stdio server's process group.

The SDK starts each server in a new session (so its pid is its process-group id) and kills the
group only when the server ignores the closing of its stdin. A server that exits politely can
leave children behind in that group. We look the group up right after launch and SIGKILL what
remains of it after the transport is closed: no orphans, whichever way the server ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

__all__ = ["find_server_group", "kill_group_remains"]

_PROC = Path("/proc")


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = (_PROC / pid / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return text[text.rindex(")") + 2 :].split()


def find_server_group(argv: list[str], claimed: set[int]) -> int | None:
    """The pid of our child that leads a new session with this exact argv (Linux /proc)."""
    if not _PROC.is_dir():
        return None
    me = str(os.getpid())
    wanted = ("\0".join(argv) + "\0").encode()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in claimed:
            continue
        fields = _stat_fields(entry.name)
        # fields: state ppid pgrp session ...
        if fields is None or fields[1] != me or fields[3] != entry.name:
            continue
        try:
            if (entry / "cmdline").read_bytes() == wanted:
                return int(entry.name)
        except OSError:
            continue
    return None


def _group_has_members(pgid: int) -> bool:
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False


def kill_group_remains(pgid: int) -> None:
    # A live member keeps the group id allocated, so it cannot have been reused by an
    # unrelated process; with no members left there is nothing to kill.
    if pgid == os.getpgid(0) or not _group_has_members(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
