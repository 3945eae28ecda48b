"""The Landlock launcher's argv, and what this machine's kernel offers it.

A confined process is started as ``launcher_argv(command, args, read, write)`` instead of
``[command, *args]``. The launcher (``_launcher.py``) restricts itself with Landlock and then
``exec``s the command, so the command never runs a single instruction with more filesystem
access than granted. Importing this module is cheap (ctypes only).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._landlock import NETWORK_ABI, landlock_abi

__all__ = ["SandboxStatus", "sandbox_status", "launcher_argv"]

_LAUNCHER = Path(__file__).with_name("_launcher.py")
_NO_LANDLOCK = (
    "kernel has no Landlock (needs Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK and lsm=landlock)"
)


@dataclass(frozen=True)
class SandboxStatus:
    """Whether this kernel has Landlock, for `astrid status`-style reports."""

    available: bool
    abi: int
    detail: str

    @property
    def can_deny_network(self) -> bool:
        """Whether `network = false` (every TCP connect and listen denied) can be enforced."""
        return self.abi >= NETWORK_ABI


def sandbox_status() -> SandboxStatus:
    try:
        abi = landlock_abi()
    except OSError as exc:  # an errno other than "not supported": report, don't crash
        return SandboxStatus(False, 0, f"Landlock probe failed: {exc}")
    if abi == 0:
        return SandboxStatus(False, 0, _NO_LANDLOCK)
    return SandboxStatus(True, abi, f"Landlock ABI {abi}")


def launcher_argv(
    command: str,
    args: Iterable[str],
    read_paths: Iterable[str | os.PathLike[str]],
    write_paths: Iterable[str | os.PathLike[str]],
    allow_unsandboxed: bool = False,
    path_programs: bool = False,
    network: bool = True,
) -> list[str]:
    """The argv that runs `command args...` inside the sandbox.

    Equivalent to ``python -m astrid_workspace ...``, but runs the launcher file with
    ``-E -s -S`` (no PYTHON* variables, no site-packages): it starts in milliseconds instead
    of importing packages, and nothing on the host's Python path can
    inject code into the process that is about to sandbox itself. Options use the
    ``--opt=value`` form so a path starting with ``-`` cannot be taken for an option.
    """
    argv = [sys.executable, "-E", "-s", "-S", str(_LAUNCHER)]
    argv += [f"--read={os.fspath(p)}" for p in read_paths]
    argv += [f"--write={os.fspath(p)}" for p in write_paths]
    if allow_unsandboxed:
        argv.append("--allow-unsandboxed")
    if path_programs:
        argv.append("--shell")
    if not network:
        argv.append("--no-network")
    return [*argv, "--", command, *args]
